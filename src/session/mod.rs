//! A session: DataFusion's `SessionContext` assembled with our catalog, file tables and
//! functions, and the one statement pipeline (parse → plan → execute → stream) that every
//! front end calls.

mod complexity;
mod copy_in;
mod create_table;
mod external_table;
mod functions;
mod hints;
mod model_files;
mod models;
mod pg_functions;
mod pg_proc;
mod pg_tables;
mod placeholders;
mod plan_cache;
mod plan_params;
mod postgres;
mod prepare;
mod result;
mod store_options;
mod transaction;
pub use transaction::BlockStatus;
mod variables;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, DynamicFileCatalog, MemoryCatalogProvider,
    MemoryCatalogProviderList,
};
use datafusion::common::ParamValues;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::catalog::delta_sources::{
    DeltaHistory, DeltaMaintenance, DeltaScanFunction, DeltaTableFactory, TableAsOf,
};
use crate::database::Database;
use crate::error::{AugurError, Result};
use crate::ml::registry::Registry;
pub use crate::notices::Notices;
use crate::parser::MAX_STATEMENT_BYTES;
use crate::planner::AugurQueryPlanner;
use crate::storage::sandbox::{self, Sandbox, SandboxedRegistry};
use crate::storage::{GuardedTableFactory, GuardedUrlFactory, ReadFiles};
pub use copy_in::{CopyFrom, CopyIn, parse as parse_copy_from};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use models::Planned;
pub use prepare::Prepared;
use result::{Interrupt, Message};
pub use result::{QueryResult, affected_rows};
pub use variables::Variables;

pub const CATALOG: &str = "augur";
pub const SCHEMA: &str = "public";

/// One user's connection to a database: its own settings, the database's objects.
#[derive(Clone)]
pub struct Session {
    db: Database,
    ctx: SessionContext,
    notices: Arc<Notices>,
    user_functions: functions::SharedRegistered,
    variables: Variables,
    interrupt: Interrupt,
    read_only: Arc<std::sync::atomic::AtomicBool>,
    sandbox: Option<Arc<Sandbox>>,
    transaction: transaction::Transaction,
    plans: Arc<plan_cache::PlanCache>,
}

impl Session {
    pub(crate) fn new(db: Database) -> Result<Session> {
        Self::build(db, None)
    }

    /// A session that reads and writes local files only under `allowed` (remote clients).
    pub fn sandboxed(db: Database, allowed: &[std::path::PathBuf]) -> Result<Session> {
        Self::build(db, Some(Arc::new(Sandbox::new(allowed))))
    }

    fn build(db: Database, sandbox: Option<Arc<Sandbox>>) -> Result<Session> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, SCHEMA);
        // COPY writes row groups the size stored tables use, so a file Augur wrote scans on
        // every core (DataFusion's default, 1Mi rows, leaves a 1M-row file in one group).
        config.options_mut().execution.parquet.max_row_group_size = crate::catalog::ROW_GROUP_ROWS;
        // Files written by COPY and INSERT carry no Arrow schema: DataFusion would record the
        // Utf8View it reads strings as, and a later scan of the folder could not merge that
        // with the Utf8 of files from other tools or earlier writes. Parquet's own types
        // describe every column; only Arrow-only details (time zone names) are not kept.
        config.options_mut().execution.parquet.skip_arrow_metadata = true;
        config
            .options_mut()
            .extensions
            .insert(crate::cluster::AugurOptions::with_cluster(
                db.config().cluster.as_deref(),
            ));
        crate::cluster::sync_engine_settings(config.options_mut())?;
        let notices = Arc::new(Notices::default());
        config = config.with_extension(Arc::clone(&notices));
        // What ANALYZE stored, for the join-order search's estimates.
        config = config.with_extension(Arc::clone(db.store()));
        config = config.with_extension(Arc::new(crate::cluster::remote::remote()));
        if let Some(n) = db.config().target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(SCHEMA, Arc::clone(db.schema()) as _)?;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(CATALOG.to_string(), Arc::new(catalog));
        let url_tables = Arc::new(GuardedUrlFactory::default());
        let catalogs = DynamicFileCatalog::new(Arc::new(catalogs), Arc::clone(&url_tables) as _);
        let file_tables = Arc::new(GuardedTableFactory::default());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(match &sandbox {
                Some(sandbox) => RuntimeEnvBuilder::from_runtime_env(db.runtime())
                    .with_object_store_registry(Arc::new(SandboxedRegistry {
                        inner: Arc::clone(&db.runtime().object_store_registry),
                        sandbox: sandbox.as_ref().clone(),
                    }))
                    .build_arc()?,
                None => Arc::clone(db.runtime()),
            })
            .with_default_features()
            .with_catalog_list(Arc::new(catalogs))
            .with_table_factory("CSV".into(), Arc::clone(&file_tables) as _)
            .with_table_factory("PARQUET".into(), file_tables)
            .with_table_factory("DELTA".into(), Arc::new(DeltaTableFactory))
            .with_physical_optimizer_rules(crate::optimizer::AntiBuildSide::with_defaults())
            .with_optimizer_rule(Arc::new(crate::optimizer::MagicSet))
            .with_optimizer_rule(Arc::new(crate::optimizer::FilteredJoinPushdown))
            .with_optimizer_rule(Arc::new(crate::optimizer::SemiJoinPushdown))
            .with_optimizer_rule(Arc::new(crate::optimizer::ShareSubplans))
            .with_optimizer_rule(Arc::new(crate::optimizer::RankingFilter))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::decimal64::rule()))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::eager_conjunctions::rule()))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::view_equality::rule()))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::ProbeFilter))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::OnePhaseQuantiles))
            .with_physical_optimizer_rule(Arc::new(crate::cluster::ShipToCluster))
            .with_type_planner(postgres::type_planner())
            .with_query_planner(Arc::new(AugurQueryPlanner::new(Registry::new(Arc::clone(
                db.store(),
            )))))
            .build();
        let ctx = SessionContext::new_with_state(state);
        url_tables.register_session(&ctx);
        ctx.register_udtf("read_csv", Arc::new(ReadFiles::csv()));
        ctx.register_udtf("read_parquet", Arc::new(ReadFiles::parquet()));
        ctx.register_udtf("delta_scan", Arc::new(DeltaScanFunction));
        ctx.register_udtf(
            "table_as_of",
            Arc::new(TableAsOf::new(Arc::clone(db.schema()))),
        );
        ctx.register_udtf(
            "delta_history",
            Arc::new(DeltaHistory::new(Arc::clone(db.schema()))),
        );
        ctx.register_udtf(
            "delta_optimize",
            Arc::new(DeltaMaintenance::optimize(Arc::clone(db.schema()))),
        );
        ctx.register_udtf(
            "analyze_table",
            Arc::new(crate::catalog::analyze::AnalyzeFunction::new(Arc::clone(
                db.schema(),
            ))),
        );
        ctx.register_udtf(
            "delta_vacuum",
            Arc::new(DeltaMaintenance::vacuum(Arc::clone(db.schema()))),
        );
        augur_udfs::register_all(&ctx)?;
        postgres::install(&ctx)?;
        let registry = Registry::new(Arc::clone(db.store()));
        let predict: Vec<Arc<datafusion::logical_expr::ScalarUDF>> =
            crate::ml::functions::Predict::udfs(&registry)
                .into_iter()
                .map(Arc::new)
                .collect();
        for udf in &predict {
            ctx.register_udf(udf.as_ref().clone());
        }
        let explain: Vec<Arc<datafusion::logical_expr::ScalarUDF>> =
            crate::ml::explain::Explanations::udfs(&registry)
                .into_iter()
                .map(Arc::new)
                .collect();
        let functions = crate::ml::relations::ModelFunctions {
            predict: Arc::clone(&predict[0]),
            predict_proba: Arc::clone(&predict[1]),
            explain: Arc::clone(&explain[0]),
            reasons: Arc::clone(&explain[1]),
            metrics: Arc::new(crate::ml::functions::ModelMetrics::udaf()),
        };
        let variables = Variables::default();
        ctx.register_udf(variables::current_setting(&variables));
        // Training on a cluster sends it to the executors by name.
        ctx.register_udaf(crate::ml::glm_sums::GlmSums::udaf());
        ctx.register_relation_planner(Arc::new(crate::ml::relations::ModelRelations::new(
            registry,
            Arc::clone(db.schema()),
            functions,
        )))?;
        Ok(Session {
            transaction: transaction::Transaction::new(Arc::clone(db.schema())),
            plans: Default::default(),
            db,
            ctx,
            notices,
            user_functions: Default::default(),
            variables,
            interrupt: Interrupt::default(),
            read_only: Default::default(),
            sandbox,
        })
    }

    /// DataFusion's context, for embedding: register your own functions and tables here.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Run one statement and stream its result. The statement runs on a runtime worker
    /// (large stack, isolated from panics); dropping the result cancels it.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult> {
        self.execute_with(sql, None).await
    }

    /// Run one statement with values for its `$1`, `$2`… placeholders (the wire protocol's
    /// Bind), substituted into the plan, never into the text.
    pub async fn execute_with(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<QueryResult> {
        check_size(sql)?;
        self.start(Input::Sql(sql.to_string(), params), sql).await
    }

    /// Run a plan built by Augur itself (COPY FROM STDIN's INSERT) through the same
    /// checks, transaction bookkeeping and execution as a statement.
    pub(crate) async fn execute_plan(&self, plan: LogicalPlan) -> Result<QueryResult> {
        self.start(Input::Plan(plan), "").await
    }

    async fn start(&self, input: Input, sql: &str) -> Result<QueryResult> {
        let (tx, mut rx) = mpsc::channel(4);
        let plan = Arc::new(Mutex::new(None));
        let work = run_statement(self.clone(), input, tx.clone(), Arc::clone(&plan));
        let work = within_sandbox(self.sandbox.clone(), work);
        let task = tokio::spawn(async move {
            if let Err(panic) = AssertUnwindSafe(work).catch_unwind().await {
                let _ = tx
                    .send(Message::Error(AugurError::Internal(panic_message(&panic))))
                    .await;
            }
        });
        let deadline = self
            .variables
            .statement_timeout()
            .map(|limit| tokio::time::Instant::now() + limit);
        let mut interrupt = self.interrupt.subscribe(deadline);
        let first = tokio::select! {
            first = rx.recv() => first,
            stop = interrupt.wait() => Some(Message::Error(stop)),
        };
        let result = QueryResult::new(first, rx, task, plan, interrupt);
        result.map_err(|e| hints::redact(self, hints::explain(self, e), sql))
    }

    /// Run one statement and collect all its rows.
    pub async fn execute_to_end(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.execute(sql)
            .await?
            .collect()
            .await
            .map_err(|e| hints::redact(self, hints::explain(self, e), sql))
    }

    /// Whether a transaction block is open and whether it failed (the wire protocol's
    /// ReadyForQuery status).
    pub fn transaction_status(&self) -> BlockStatus {
        self.transaction.status()
    }

    /// Warnings left by the statements run so far (training warnings), oldest first.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices.take()
    }

    /// Enrich an error from a running statement with the same hints as planning errors.
    pub fn explain_error(&self, e: AugurError) -> AugurError {
        hints::redact(self, hints::explain(self, e), "")
    }

    /// From now on refuse every statement that writes: DDL, INSERT, COPY, TRAIN/DROP MODEL,
    /// CREATE FUNCTION (`augur serve --read-only`).
    /// The user the session runs as (`current_user`, `session_user`), once a front end has
    /// authenticated one.
    pub fn set_user(&self, user: &str) {
        postgres::set_user(&self.ctx, user);
        self.plans.invalidate();
    }

    pub fn set_read_only(&self) {
        self.read_only
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_read_only(&self) -> bool {
        self.read_only.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A session variable (`statement_timeout`, `DateStyle`…), by case-insensitive name.
    pub fn variable(&self, name: &str) -> Option<String> {
        self.variables.get(name)
    }

    /// Stop the statement running now in this session (and its clones), from anywhere:
    /// the wire protocol's CancelRequest. Its result ends with a "cancelled" error.
    pub fn cancel_running(&self) {
        self.interrupt.cancel();
    }

    /// `sql` with credentials (`'aws.secret_access_key' '…'`) replaced by `***`, for history.
    pub fn redact_sql(sql: &str) -> String {
        store_options::redact_sql(sql)
    }
}

/// Parse with our parser first, DataFusion's otherwise, and plan; nothing runs yet except
/// our catalog statements answered from the registry (`SHOW MODELS`, `DROP MODEL`).
async fn plan_statement(session: &Session, sql: &str) -> Result<Planned> {
    if session.transaction.handle(sql, &session.notices)? {
        session.plans.invalidate();
        return Ok(Planned::Rows(vec![], Arc::new(Schema::empty())));
    }
    session.transaction.check()?;
    // The same query again: its plan, unless the catalog or the session changed since.
    let key = session.plans.key(session.db.store().generation());
    match session.plans.get(sql, key) {
        Some(plan_cache::Hit::Logical(plan)) => return Ok(Planned::Plan(plan)),
        Some(plan_cache::Hit::Physical(kept)) => return Ok(Planned::Cached(kept)),
        None => {}
    }
    match variables::augur_setting(sql) {
        Some(variables::AugurSetting::Reset(name)) => {
            session.plans.invalidate();
            reset_augur_option(session, &name)?;
            return Ok(Planned::Rows(vec![], Arc::new(Schema::empty())));
        }
        Some(variables::AugurSetting::Show(name)) => {
            return Ok(variables::show(&name, augur_option(session, &name)?));
        }
        None => {}
    }
    if let Some(outcome) = variables::handle(&session.variables, sql)? {
        session.plans.invalidate();
        return Ok(match outcome {
            variables::Outcome::Rows(rows) => rows,
            _ => Planned::Rows(vec![], Arc::new(Schema::empty())),
        });
    }
    functions::sync(session).await?;
    if let Some(ml) = crate::parser::ml::parse(sql).map_err(AugurError::Usage)? {
        session.plans.invalidate();
        if session.is_read_only() && ml.writes() {
            return Err(read_only_error());
        }
        if let Some(model) = ml.written_model() {
            let key = crate::catalog::undo::ObjectKey::Model(model.to_string());
            session.transaction.before_write(&[key])?;
        }
        return models::plan(session, ml).await;
    }
    let plan = plan_sql(session, sql).await?;
    if plan_cache::cacheable(&plan, session.db.schema()) {
        session.plans.put(sql, key, &plan);
    } else if writes(&plan) || matches!(plan, LogicalPlan::Statement(_)) {
        session.plans.invalidate();
    }
    check_write(session, &plan)?;
    if let LogicalPlan::Copy(copy) = &plan {
        // Checked before DataFusion writes: its writer reports a refused write only as a
        // failed "finalize".
        sandbox::check_location(&copy.output_url, true)?;
    }
    Ok(Planned::Plan(plan))
}

/// `augur.<name>`'s entry in `options`, or the error PostgreSQL gives for an unknown name.
fn augur_entry(
    options: &crate::cluster::AugurOptions,
    name: &str,
) -> Result<datafusion::config::ConfigEntry> {
    use datafusion::config::ExtensionOptions;
    let key = name.strip_prefix("augur.").unwrap_or(name);
    options
        .entries()
        .into_iter()
        .find(|entry| entry.key == key)
        .ok_or_else(|| {
            let own: Vec<String> = options
                .entries()
                .iter()
                .map(|e| format!("augur.{}", e.key))
                .collect();
            AugurError::Usage(format!(
                "unrecognized configuration parameter \"{name}\" (Augur's own: {})",
                own.join(", ")
            ))
        })
}

/// `SHOW augur.<name>`: the session's value.
fn augur_option(session: &Session, name: &str) -> Result<String> {
    let state = session.ctx.state_ref();
    let state = state.read();
    let options = state
        .config()
        .options()
        .extensions
        .get::<crate::cluster::AugurOptions>()
        .cloned()
        .unwrap_or_default();
    Ok(augur_entry(&options, name)?.value.unwrap_or_default())
}

/// `RESET augur.<name>`: the setting back to its default.
fn reset_augur_option(session: &Session, name: &str) -> Result<()> {
    use datafusion::config::ExtensionOptions;
    let default = augur_entry(&crate::cluster::AugurOptions::default(), name)?;
    let state = session.ctx.state_ref();
    let mut state = state.write();
    if let Some(options) = state
        .config_mut()
        .options_mut()
        .extensions
        .get_mut::<crate::cluster::AugurOptions>()
    {
        options.set(&default.key, default.value.as_deref().unwrap_or_default())?;
    }
    if default.key.eq_ignore_ascii_case("cluster") {
        crate::cluster::sync_engine_settings(state.config_mut().options_mut())?;
    }
    Ok(())
}

/// DataFusion's statements: parsed, checked, planned.
async fn plan_sql(session: &Session, sql: &str) -> Result<LogicalPlan> {
    let state = session.ctx.state();
    // Delta's `t VERSION AS OF n` and `DESCRIBE HISTORY t`, in forms DataFusion parses.
    // OPTIMIZE and VACUUM change a table: refused where writes are, held in a block.
    if let Some(table) = crate::parser::delta_syntax::maintained_table(sql) {
        if session.is_read_only() {
            return Err(read_only_error());
        }
        let key = crate::catalog::undo::ObjectKey::Relation(table);
        session.transaction.before_write(&[key])?;
    }
    // ANALYZE as a query of `analyze_table` (refused where writes are, as it stores).
    let analyze = crate::parser::analyze::rewrite(sql)?;
    let rewritten = analyze.or_else(|| crate::parser::delta_syntax::rewrite(sql));
    let sql = rewritten.as_deref().unwrap_or(sql);
    let mut statement = postgres::parse(&state, sql)?;
    if postgres::is_plain_show_tables(&statement) {
        statement = postgres::parse(&state, postgres::USER_TABLES)?;
    }
    complexity::check(&statement)?;
    functions::prepare(&mut statement)?;
    let stored_definition = store_options::prepare(session, &mut statement)?;
    unreachable_tables(session, &state, &statement)?;
    let plan = placeholders::type_from_casts(state.statement_to_plan(statement).await?)?;
    Ok(match (plan, stored_definition) {
        (LogicalPlan::Ddl(DdlStatement::CreateExternalTable(mut cmd)), Some(definition)) => {
            cmd.definition = Some(definition);
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd))
        }
        (plan, _) => plan,
    })
}

/// A statement that reads an external table which could not be opened fails with the
/// cause (before planning, which would only see a table without columns).
fn unreachable_tables(
    session: &Session,
    state: &datafusion::execution::SessionState,
    statement: &datafusion::sql::parser::Statement,
) -> Result<()> {
    use crate::catalog::unreachable::Unreachable;
    use datafusion::sql::parser::Statement as DF;
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    // Re-creating or dropping the table is how the user fixes it.
    match statement {
        DF::CreateExternalTable(_) => return Ok(()),
        DF::Statement(s) if matches!(s.as_ref(), Sql::Drop { .. }) => return Ok(()),
        _ => {}
    }
    let Ok(references) = state.resolve_table_references(statement) else {
        return Ok(());
    };
    for reference in references {
        if let Some(provider) = session.db.schema().provider(reference.table())
            && let Some(table) = provider.downcast_ref::<Unreachable>()
        {
            return Err(table.error().into());
        }
    }
    Ok(())
}

/// What a statement starts from: SQL text (with Bind values), or a plan Augur built.
enum Input {
    Sql(String, Option<ParamValues>),
    Plan(LogicalPlan),
}

/// A plan Augur built passes the checks a parsed statement does.
fn check_plan(session: &Session, plan: LogicalPlan) -> Result<Planned> {
    session.transaction.check()?;
    check_write(session, &plan)?;
    Ok(Planned::Plan(plan))
}

/// A plan that writes: refused on a read-only server; in a transaction block, what it
/// changes is held and its undo image kept first.
fn check_write(session: &Session, plan: &LogicalPlan) -> Result<()> {
    if !writes(plan) {
        return Ok(());
    }
    if session.is_read_only() {
        return Err(read_only_error());
    }
    session
        .transaction
        .before_write(&transaction::written_objects(plan))
}

async fn run_statement(
    session: Session,
    input: Input,
    tx: mpsc::Sender<Message>,
    plan_slot: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
) {
    let fail = |e: AugurError| {
        session.transaction.mark_failed();
        Message::Error(e)
    };
    // What plans made now are cached under (a statement that changes the session or the
    // catalog moves it on, and its plan is not kept).
    let key = session.plans.key(session.db.store().generation());
    let (sql, planned, params) = match input {
        Input::Sql(sql, params) => {
            let planned = plan_statement(&session, &sql).await;
            (sql, planned, params)
        }
        Input::Plan(plan) => (String::new(), check_plan(&session, plan), None),
    };
    let outcome = async {
        let logical = match planned? {
            Planned::Plan(plan) => plan,
            Planned::Rows(batches, schema) => return Ok(Some(Ready::Rows(batches, schema))),
            Planned::Cached(kept) => {
                // Bind values go into the kept plan's slot, unless another execution holds
                // it (or they are not of its types): then plan with them as literals.
                let claim = match (&kept.params, &params) {
                    (None, None) => Some(None),
                    (Some(slot), Some(values)) => slot.bind(values).map(Some),
                    _ => None,
                };
                match claim {
                    Some(claim) => {
                        let physical = reset_plan_states(kept.plan)?;
                        if let Ok(mut slot) = plan_slot.lock() {
                            *slot = Some(Arc::clone(&physical));
                        }
                        let stream = execute_stream(physical, kept.task)?;
                        return Ok(Some(Ready::Stream(plan_params::holding(stream, claim))));
                    }
                    None => kept.logical,
                }
            }
        };
        // A cached query runs in its key's task context; one that needs no fresh planning
        // keeps its physical plan too, its parameters (if any) read from a slot.
        let cached = !sql.is_empty() && plan_cache::cacheable(&logical, session.db.schema());
        let mut reusable = cached && plan_cache::physically_reusable(&logical);
        let mut claim = None;
        let mut param_slot = None;
        let logical = match params {
            None => logical,
            Some(values) => {
                let bound = match reusable {
                    true => plan_params::parameterise(&logical, &values)?,
                    false => None,
                };
                match bound.and_then(|(plan, slot)| Some((plan, slot.bind(&values)?, slot))) {
                    Some((plan, held, slot)) => {
                        claim = Some(held);
                        param_slot = Some(slot);
                        plan
                    }
                    None => {
                        reusable = false;
                        logical.replace_params_with_values(&values)?
                    }
                }
            }
        };
        let frame = match logical {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)) => {
                create_table::create_table(&session, cmd).await?;
                return Ok::<_, AugurError>(None);
            }
            LogicalPlan::Ddl(DdlStatement::CreateFunction(cmd)) => {
                functions::create(&session, &cmd, &sql).await?;
                return Ok(None);
            }
            LogicalPlan::Ddl(DdlStatement::DropFunction(cmd)) => {
                functions::drop_function(&session, &cmd).await?;
                return Ok(None);
            }
            // DataFusion runs its own DDL and session statements.
            other @ (LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) => {
                let augur_setting = match &other {
                    LogicalPlan::Statement(datafusion::logical_expr::Statement::SetVariable(
                        set,
                    )) if set.variable.to_ascii_lowercase().starts_with("augur.") => {
                        Some(set.variable.clone())
                    }
                    _ => None,
                };
                let frame = match session.ctx.execute_logical_plan(other).await {
                    Ok(frame) => frame.into_parts(),
                    // DataFusion's message ("Error parsing 'abc' as bool") names no setting.
                    Err(e) => match &augur_setting {
                        Some(name) => {
                            let reason = e.strip_backtrace().replace('\n', " ");
                            let reason = reason.replace("Error parsing", "cannot read");
                            return Err(AugurError::Usage(format!("SET {name}: {reason}")));
                        }
                        None => return Err(e.into()),
                    },
                };
                // Only the cluster setting moves DataFusion's (a user's own SET of those stays).
                if augur_setting.is_some_and(|n| n.eq_ignore_ascii_case("augur.cluster")) {
                    let state = session.ctx.state_ref();
                    let mut state = state.write();
                    crate::cluster::sync_engine_settings(state.config_mut().options_mut())?;
                }
                frame
            }
            // Everything else is planned and run on one copy of the session state (each
            // copy clones every function registry: it shows in short statements' time).
            other => (session.ctx.state(), other),
        };
        let (state, logical) = frame;
        let physical = state.create_physical_plan(&logical).await?;
        if let Ok(mut slot) = plan_slot.lock() {
            *slot = Some(Arc::clone(&physical));
        }
        if reusable {
            session.plans.put_physical(&sql, key, &physical, param_slot);
        }
        let task = if cached {
            session
                .plans
                .task(key, || datafusion::execution::TaskContext::from(&state))
        } else {
            Arc::new(datafusion::execution::TaskContext::from(&state))
        };
        let stream = execute_stream(physical, task)?;
        Ok(Some(Ready::Stream(plan_params::holding(stream, claim))))
    }
    .await;
    let mut stream = match outcome {
        Ok(Some(Ready::Stream(stream))) => stream,
        Ok(Some(Ready::Rows(batches, schema))) => {
            if tx.send(Message::Schema(schema)).await.is_ok() {
                for batch in batches {
                    if tx.send(Message::Batch(batch)).await.is_err() {
                        break;
                    }
                }
            }
            return;
        }
        Ok(None) => {
            let _ = tx.send(Message::Schema(Arc::new(Schema::empty()))).await;
            return;
        }
        Err(e) => {
            let _ = tx.send(fail(e)).await;
            return;
        }
    };
    if tx.send(Message::Schema(stream.schema())).await.is_err() {
        return;
    }
    while let Some(batch) = stream.next().await {
        let message = match batch {
            Ok(batch) => Message::Batch(batch),
            Err(e) => fail(e.into()),
        };
        let stop = matches!(message, Message::Error(_));
        if tx.send(message).await.is_err() || stop {
            return;
        }
    }
}

/// A statement ready to stream: executing, or answered already (catalog listings).
enum Ready {
    Stream(datafusion::physical_plan::SendableRecordBatchStream),
    Rows(Vec<RecordBatch>, Arc<Schema>),
}

/// `work` with a session's sandbox in force for the files it names.
async fn within_sandbox<F: std::future::Future>(
    sandbox: Option<Arc<Sandbox>>,
    work: F,
) -> F::Output {
    match sandbox {
        Some(sandbox) => sandbox::CURRENT.scope(sandbox, work).await,
        None => work.await,
    }
}

fn read_only_error() -> AugurError {
    AugurError::PermissionDenied(
        "this server is read-only (--read-only): only queries run here".into(),
    )
}

/// Whether running `plan` changes anything stored: EXPLAIN ANALYZE runs its statement, so
/// the statement inside counts; so do the table functions `ANALYZE`, `OPTIMIZE` and `VACUUM`
/// are planned as, called by name.
fn writes(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNode;
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => true,
            LogicalPlan::TableScan(scan) => {
                datafusion::datasource::source_as_provider(&scan.source)
                    .is_ok_and(|p| crate::catalog::writes_when_scanned(p.as_ref()))
            }
            _ => false,
        })
    })
    .unwrap_or(true)
}

fn check_size(sql: &str) -> Result<()> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(AugurError::TooComplex(format!(
            "statement is {} bytes, over the limit of {MAX_STATEMENT_BYTES}; split it or \
             load the values from a file",
            sql.len()
        )));
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a query panicked".to_string()
    }
}
