//! Postgres compatibility for every session: the `pg_catalog` schema (psql `\d`, BI tools)
//! and the rewrites that let DataFusion plan the catalog queries Postgres clients send
//! (`'t'::regclass`, `OPERATOR(pg_catalog.~)`, …), from datafusion-pg-catalog.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;

use datafusion::catalog::TableFunctionImpl;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables, setup_pg_catalog,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::pg_functions::{
    NULL_FUNCTIONS, json_build_object, null_functions, parse_ident, rewrite_like_escapes,
    rewrite_reg_types,
};
use super::pg_proc::{PgCatalog, Signatures};
use super::{CATALOG, SCHEMA};
use crate::error::{AugurError, Result};

/// Functions registered here on top of datafusion-pg-catalog's (not Augur functions of their own).
pub(super) const EXTRA_FUNCTIONS: &[&str] = &[
    "pg_function_is_visible",
    "pg_get_function_result",
    "pg_get_function_arguments",
    "pg_collation_is_visible",
];

/// What datafusion-pg-catalog's `setup_pg_catalog` adds to a session, made once per process:
/// it decodes Postgres's static catalog tables (milliseconds and megabytes), which every
/// session — each wire connection, each shell — would otherwise pay again.
struct Template {
    static_tables: Arc<PgCatalogStaticTables>,
    functions: Vec<ScalarUDF>,
    table_functions: Vec<(String, Arc<dyn TableFunctionImpl>)>,
    /// Every function name a session has before Augur adds its own (for pg_proc).
    names: HashSet<String>,
}

fn template() -> Result<&'static Template> {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    if let Some(template) = TEMPLATE.get() {
        return Ok(template);
    }
    let built = build_template()?;
    Ok(TEMPLATE.get_or_init(|| built))
}

/// Set up the pg catalog in a scratch context and keep what it added to a plain one.
fn build_template() -> Result<Template> {
    let config = || SessionConfig::new().with_default_catalog_and_schema(CATALOG, SCHEMA);
    let plain = SessionContext::new_with_config(config()).state();
    let ctx = SessionContext::new_with_config(config());
    setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider)
        .map_err(|e| AugurError::DataFusion(*e))?;
    let with_pg = ctx.state();
    let functions = with_pg
        .scalar_functions()
        .iter()
        .filter(|(name, udf)| plain.scalar_functions().get(*name) != Some(*udf))
        .map(|(_, udf)| udf.as_ref().clone())
        .collect();
    // generate_series and range are widened per session (they wrap the session's own).
    let table_functions = with_pg
        .table_functions()
        .iter()
        .filter(|(name, _)| !plain.table_functions().contains_key(*name))
        .map(|(name, function)| (name.clone(), Arc::clone(function.function())))
        .collect();
    let mut names: HashSet<String> = with_pg.scalar_functions().keys().cloned().collect();
    names.extend(with_pg.aggregate_functions().keys().cloned());
    names.extend(with_pg.window_functions().keys().cloned());
    names.extend(EXTRA_FUNCTIONS.iter().map(|n| n.to_string()));
    names.extend(NULL_FUNCTIONS.iter().map(|(n, _)| n.to_string()));
    names.insert("json_build_object".into());
    let mut static_tables = PgCatalogStaticTables::try_new()?;
    super::pg_tables::with_array_columns(&mut static_tables)?;
    Ok(Template {
        static_tables: Arc::new(static_tables),
        functions,
        table_functions,
        names,
    })
}

/// Function names every session has without Augur: DataFusion's and the pg catalog's.
pub(super) fn builtin_function_names() -> Result<&'static HashSet<String>> {
    Ok(&template()?.names)
}

/// Lets the planner read Postgres's oid-alias types (`::regclass`, `::regtype`…).
pub(super) fn type_planner() -> Arc<dyn TypePlanner> {
    Arc::new(PostgresTypes)
}

/// PostgreSQL's type names where DataFusion reads them otherwise: `FLOAT` and `FLOAT(p)`
/// with p > 24 are double precision (pandas creates float64 columns as `FLOAT(53)`); the
/// oid-alias types as datafusion-pg-catalog plans them.
#[derive(Debug)]
struct PostgresTypes;

impl TypePlanner for PostgresTypes {
    fn plan_type_field(
        &self,
        sql_type: &datafusion::sql::sqlparser::ast::DataType,
    ) -> datafusion::error::Result<Option<datafusion::arrow::datatypes::FieldRef>> {
        use datafusion::sql::sqlparser::ast::{DataType as Sql, ExactNumberInfo};
        let double = match sql_type {
            Sql::Float(ExactNumberInfo::None) => true,
            Sql::Float(
                ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _),
            ) => *p > 24,
            _ => false,
        };
        if double {
            return Ok(Some(Arc::new(datafusion::arrow::datatypes::Field::new(
                "",
                DataType::Float64,
                true,
            ))));
        }
        PgOidTypePlanner.plan_type_field(sql_type)
    }
}

/// Register `pg_catalog` (tables and functions such as `pg_table_is_visible`) in `ctx`, with
/// a `pg_proc` that lists Augur's functions. The session's state must have `type_planner()`.
pub(super) fn install(ctx: &SessionContext) -> Result<()> {
    let template = template()?;
    for udf in &template.functions {
        ctx.register_udf(udf.clone());
    }
    for (name, function) in &template.table_functions {
        ctx.register_udtf(name, Arc::clone(function));
    }
    CoerceIntArgsToBigInt::widen(ctx);
    // What psql's \df asks of each function in pg_proc: every one is on the search path;
    // signatures are known for Augur's functions (pg_proc.rs), not for Postgres's.
    let signatures = Arc::new(Signatures::default());
    // Every function and collation is on the search path.
    for name in [EXTRA_FUNCTIONS[0], EXTRA_FUNCTIONS[3]] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int64],
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(|_: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
            }),
        ));
    }
    ctx.register_udf(signature_udf(
        EXTRA_FUNCTIONS[1],
        &signatures,
        |(result, _)| result,
    ));
    ctx.register_udf(signature_udf(
        EXTRA_FUNCTIONS[2],
        &signatures,
        |(_, arguments)| arguments,
    ));
    for udf in null_functions() {
        ctx.register_udf(udf);
    }
    ctx.register_udf(json_build_object());
    ctx.register_udf(parse_ident());
    // PostgreSQL's `version()`, not DataFusion's: clients parse its first two words.
    ctx.register_udf(constant_text("version", crate::config::version_string()));
    set_user(ctx, DEFAULT_USER);
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| AugurError::Internal("the session has no catalog".into()))?;
    let pg_catalog = PgCatalogSchemaProvider::try_new(
        ctx.state().catalog_list().clone(),
        Arc::clone(&template.static_tables),
        EmptyContextProvider,
    )?;
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalog::wrap(Arc::new(pg_catalog), signatures)),
    )?;
    Ok(())
}

/// Who a session is when nothing authenticated it (the shell, scripts, embedding).
pub(super) const DEFAULT_USER: &str = "postgres";

/// `current_user` (which the compatibility parser reads as `session_user()`),
/// `session_user` and `current_role` answer `user`.
pub(super) fn set_user(ctx: &SessionContext, user: &str) {
    for name in ["session_user", "current_role"] {
        ctx.register_udf(constant_text(name, user.to_string()));
    }
}

/// A function of no arguments that returns `text`.
fn constant_text(name: &str, text: String) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    )
}

/// `name(oid)`: one part of the signature pg_proc.rs recorded for the oid.
fn signature_udf(
    name: &str,
    signatures: &Arc<Signatures>,
    part: fn(&(String, String)) -> &String,
) -> ScalarUDF {
    let signatures = Arc::clone(signatures);
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = arrays[0].as_primitive::<Int64Type>();
            let texts: StringArray = oids
                .iter()
                .map(|oid| oid.map(|oid| part(&signatures.get(oid)).clone()))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts)))
        }),
    )
}

/// What `SHOW TABLES` answers: the user's tables and views, as psql's `\dt` lists them;
/// `pg_catalog` and `information_schema` stay queryable by name.
pub(super) const USER_TABLES: &str = "SELECT table_catalog, table_schema, table_name, table_type \
     FROM information_schema.tables \
     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
     ORDER BY table_schema, table_name";

/// `SHOW TABLES` with nothing after it (`IN`, `LIKE`… keep DataFusion's meaning).
pub(super) fn is_plain_show_tables(statement: &DFStatement) -> bool {
    let DFStatement::Statement(statement) = statement else {
        return false;
    };
    let Statement::ShowTables { show_options, .. } = statement.as_ref() else {
        return false;
    };
    show_options.show_in.is_none()
        && show_options.starts_with.is_none()
        && show_options.limit.is_none()
        && show_options.filter_position.is_none()
}

fn compatibility() -> &'static PostgresCompatibilityParser {
    static PARSER: OnceLock<PostgresCompatibilityParser> = OnceLock::new();
    PARSER.get_or_init(PostgresCompatibilityParser::new)
}

/// Parse one statement. Queries go through the Postgres-compatibility parser first (its
/// rewrites only touch Postgres-only forms); everything else, and any query it cannot
/// read, goes to DataFusion's parser, which knows `CREATE EXTERNAL TABLE`, `COPY` and the rest.
/// Either way `LIKE … ESCAPE` and `to_regtype()` are put in forms DataFusion runs.
pub(super) fn parse(state: &SessionState, sql: &str) -> Result<DFStatement> {
    let mut statement = match compatibility().parse(sql) {
        Ok(mut statements)
            if statements.len() == 1 && matches!(statements[0], Statement::Query(_)) =>
        {
            DFStatement::Statement(Box::new(statements.remove(0)))
        }
        _ => {
            let dialect = state.config().options().sql_parser.dialect;
            state.sql_to_statement(sql, &dialect)?
        }
    };
    rewrite_like_escapes(&mut statement);
    rewrite_reg_types(&mut statement);
    Ok(statement)
}
