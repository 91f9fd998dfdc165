//! The operator behind DELETE, UPDATE, TRUNCATE and MERGE on a Delta table: planned by
//! DataFusion, it runs delta-rs's operation when executed (so EXPLAIN changes nothing) and
//! answers one row, the number of rows affected, after the operation's single commit.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, TableReference};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::{MergeIntoAction, MergeIntoClause, MergeIntoClauseKind};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use deltalake::DeltaTable;
use deltalake::delta_datafusion::{DataFusionMixins, DeltaColumn};
use deltalake::operations::optimize::OptimizeType;

use super::delta_table::{DeltaProvider, delta_error};

/// A change to a Delta table, as DataFusion planned it.
#[derive(Debug, Clone)]
pub enum DeltaOp {
    /// Rows matching every filter go (no filters: every row).
    Delete { filters: Vec<Expr> },
    Update {
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    },
    Merge {
        source: Arc<dyn ExecutionPlan>,
        merge_schema: DFSchemaRef,
        on: Expr,
        clauses: Vec<MergeIntoClause>,
    },
    /// Compact small files (optionally Z-ordered by columns); answers the files replaced.
    Optimize { zorder: Vec<String> },
    /// Delete files no version within the retention needs; answers the files deleted.
    Vacuum {
        retain_hours: Option<u64>,
        dry_run: bool,
    },
}

impl DeltaOp {
    /// The verb for messages ("cannot delete from …").
    pub fn verb(&self) -> &'static str {
        match self {
            DeltaOp::Delete { .. } => "delete from",
            DeltaOp::Update { .. } => "update",
            DeltaOp::Merge { .. } => "merge into",
            DeltaOp::Optimize { .. } => "optimize",
            DeltaOp::Vacuum { .. } => "vacuum",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            DeltaOp::Delete { .. } => "DELETE",
            DeltaOp::Update { .. } => "UPDATE",
            DeltaOp::Merge { .. } => "MERGE",
            DeltaOp::Optimize { .. } => "OPTIMIZE",
            DeltaOp::Vacuum { .. } => "VACUUM",
        }
    }
}

/// Runs one [`DeltaOp`] against a table and answers `count`.
#[derive(Debug)]
pub struct DmlExec {
    table: DeltaProvider,
    op: DeltaOp,
    properties: Arc<PlanProperties>,
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DmlExec {
    pub fn new(table: DeltaProvider, op: DeltaOp) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DmlExec {
            table,
            op,
            properties,
        }
    }
}

impl DisplayAs for DmlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DeltaDmlExec: op={} table={}",
            self.op.name(),
            self.table.name()
        )?;
        let filters = match &self.op {
            DeltaOp::Delete { filters } | DeltaOp::Update { filters, .. } => filters.clone(),
            DeltaOp::Merge { on, .. } => vec![on.clone()],
            DeltaOp::Optimize { zorder } if !zorder.is_empty() => {
                write!(f, " zorder={}", zorder.join(","))?;
                vec![]
            }
            DeltaOp::Vacuum {
                retain_hours: Some(h),
                ..
            } => {
                write!(f, " retain_hours={h}")?;
                vec![]
            }
            _ => vec![],
        };
        if !filters.is_empty() {
            let text: Vec<String> = filters.iter().map(|e| e.to_string()).collect();
            write!(f, " predicate={}", text.join(" AND "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DmlExec {
    fn name(&self) -> &str {
        "DeltaDmlExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        // The operation's expressions are logical (delta-rs plans them when it runs).
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<datafusion::physical_plan::Distribution> {
        vec![datafusion::physical_plan::Distribution::SinglePartition; self.children().len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // One stream in: the operator runs its work once, after (or around) its input.
        vec![false; self.children().len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        match &self.op {
            DeltaOp::Merge { source, .. } => vec![source],
            _ => vec![],
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let op = match (&self.op, children.as_slice()) {
            (DeltaOp::Merge { .. }, [child]) => {
                let DeltaOp::Merge {
                    merge_schema,
                    on,
                    clauses,
                    ..
                } = self.op.clone()
                else {
                    unreachable!("matched above")
                };
                DeltaOp::Merge {
                    source: Arc::clone(child),
                    merge_schema,
                    on,
                    clauses,
                }
            }
            (op, []) => op.clone(),
            _ => {
                return Err(DataFusionError::Internal(
                    "DeltaDmlExec: wrong number of children".into(),
                ));
            }
        };
        Ok(Arc::new(DmlExec::new(self.table.clone(), op)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DeltaDmlExec has one partition, asked for {partition}"
            )));
        }
        let table = self.table.clone();
        let op = self.op.clone();
        let schema = count_schema();
        let out = Arc::clone(&schema);
        let work = async move {
            let rows = run(&table, op, context).await?;
            RecordBatch::try_new(out, vec![Arc::new(UInt64Array::from(vec![rows]))])
                .map_err(DataFusionError::from)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(work),
        )))
    }
}

/// A session for delta-rs's own plans: this statement's settings, object stores and
/// functions (a predicate may call any of them).
fn session_of(context: &TaskContext) -> SessionState {
    // delta-rs plans its operations with its own nodes (DeltaPlanner lowers them) and
    // reads strings as Utf8 (view types would not match the files it rewrites).
    let config = context.session_config().clone().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    SessionStateBuilder::new()
        .with_config(config)
        .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
        .with_runtime_env(context.runtime_env())
        .with_default_features()
        .with_scalar_functions(context.scalar_functions().values().cloned().collect())
        .with_aggregate_functions(context.aggregate_functions().values().cloned().collect())
        .build()
}

async fn run(table: &DeltaProvider, op: DeltaOp, context: Arc<TaskContext>) -> Result<u64> {
    let state = Arc::new(session_of(&context));
    let current = table.writable(op.verb()).await?;
    let location = table.location().to_string();
    let fail = |e| delta_error(&location, e);
    match op {
        DeltaOp::Delete { filters } => {
            let before = row_count(&current);
            let mut builder = current.delete().with_session_state(state);
            if let Some(predicate) = conjunction(filters) {
                builder = builder.with_predicate(unqualified(predicate)?);
            }
            let (_, metrics) = builder.await.map_err(fail)?;
            // Whole files removed by their statistics are not counted row by row.
            Ok(metrics
                .num_deleted_rows
                .map(|n| n as u64)
                .or(before)
                .unwrap_or(0))
        }
        DeltaOp::Update {
            assignments,
            filters,
        } => {
            let mut builder = current.update().with_session_state(state);
            if let Some(predicate) = conjunction(filters) {
                builder = builder.with_predicate(unqualified(predicate)?);
            }
            for (column, value) in assignments {
                // DataFusion lists every column; unchanged ones are assigned themselves.
                if matches!(&value, Expr::Column(c) if c.name == column) {
                    continue;
                }
                builder = builder.with_update(
                    DeltaColumn::from(Column::new_unqualified(column)),
                    unqualified(value)?,
                );
            }
            let (_, metrics) = builder.await.map_err(fail)?;
            Ok(metrics.num_updated_rows as u64)
        }
        DeltaOp::Optimize { zorder } => {
            let kind = if zorder.is_empty() {
                OptimizeType::Compact
            } else {
                OptimizeType::ZOrder(zorder)
            };
            let (_, metrics) = current
                .optimize()
                .with_type(kind)
                .with_session_state(state)
                .await
                .map_err(fail)?;
            Ok(metrics.num_files_removed)
        }
        DeltaOp::Vacuum {
            retain_hours,
            dry_run,
        } => {
            let mut builder = current.vacuum().with_dry_run(dry_run);
            if let Some(hours) = retain_hours {
                // An explicit RETAIN is the user's decision, even below the table's default:
                // versions older than it can no longer be read afterwards.
                builder = builder
                    .with_retention_period(chrono::Duration::hours(hours as i64))
                    .with_enforce_retention_duration(false);
            }
            let (_, metrics) = builder.await.map_err(fail)?;
            Ok(metrics.files_deleted.len() as u64)
        }
        DeltaOp::Merge {
            source,
            merge_schema,
            on,
            clauses,
        } => {
            // The source runs here, in the statement's own context (its scans were planned
            // in this session); delta-rs then reads its rows as a table.
            let schema = source.schema();
            let rows = datafusion::physical_plan::collect(source, Arc::clone(&context)).await?;
            let source = Arc::new(datafusion::datasource::MemTable::try_new(
                schema,
                vec![rows],
            )?);
            merge(
                current,
                state,
                source,
                &merge_schema,
                on,
                clauses,
                &location,
            )
            .await
        }
    }
}

/// Rows in the table's current version, from the files' statistics (when they all have them).
fn row_count(table: &DeltaTable) -> Option<u64> {
    let snapshot = table.snapshot().ok()?;
    let mut total = 0u64;
    for file in snapshot.log_data().iter() {
        total += file.num_records()? as u64;
    }
    Some(total)
}

fn conjunction(filters: Vec<Expr>) -> Option<Expr> {
    filters.into_iter().reduce(Expr::and)
}

/// `expr` with its columns unqualified: delta-rs resolves them against the table alone.
fn unqualified(expr: Expr) -> Result<Expr> {
    expr.unalias_nested()
        .data
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

const TARGET: &str = "__augur_target";
const SOURCE: &str = "__augur_source";

/// `expr` with the target table's columns under [`TARGET`] and the source's under [`SOURCE`].
fn requalified(expr: Expr, target: &Option<TableReference>) -> Result<Expr> {
    // Optimizer passes may have named the expression; delta-rs writes it as SQL text.
    expr.unalias_nested()
        .data
        .transform(|e| match e {
            Expr::Column(c) => {
                let side = if c.relation.is_some() && &c.relation == target {
                    TARGET
                } else {
                    SOURCE
                };
                Ok(Transformed::yes(Expr::Column(Column::new(
                    Some(TableReference::bare(side)),
                    c.name,
                ))))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

async fn merge(
    current: DeltaTable,
    state: Arc<SessionState>,
    source: Arc<dyn TableProvider>,
    merge_schema: &DFSchemaRef,
    on: Expr,
    clauses: Vec<MergeIntoClause>,
    location: &str,
) -> Result<u64> {
    let target_columns: Vec<String> = current
        .snapshot()
        .map_err(|e| delta_error(location, e))?
        .snapshot()
        .read_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let target = merge_schema.iter().next().and_then(|(q, _)| q.cloned());
    let ctx = SessionContext::new_with_state(state.as_ref().clone());
    let frame = ctx.read_table(source)?;
    let mut builder = current
        .merge(frame, requalified(on, &target)?)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_session_state(state);
    let fail = |e| delta_error(location, e);
    for clause in clauses {
        let predicate = clause
            .predicate
            .map(|p| requalified(p, &target))
            .transpose()?;
        builder = match (clause.kind.canonical(), clause.action) {
            (MergeIntoClauseKind::Matched, MergeIntoAction::Update(sets)) => {
                let sets = requalify_all(sets, &target)?;
                builder.when_matched_update(|mut u| {
                    if let Some(p) = predicate {
                        u = u.predicate(p);
                    }
                    for (c, v) in sets {
                        u = u.update(DeltaColumn::from(Column::new_unqualified(c)), v);
                    }
                    u
                })
            }
            (MergeIntoClauseKind::Matched, MergeIntoAction::Delete) => {
                builder.when_matched_delete(|mut d| {
                    if let Some(p) = predicate {
                        d = d.predicate(p);
                    }
                    d
                })
            }
            (MergeIntoClauseKind::NotMatchedBySource, MergeIntoAction::Update(sets)) => {
                let sets = requalify_all(sets, &target)?;
                builder.when_not_matched_by_source_update(|mut u| {
                    if let Some(p) = predicate {
                        u = u.predicate(p);
                    }
                    for (c, v) in sets {
                        u = u.update(DeltaColumn::from(Column::new_unqualified(c)), v);
                    }
                    u
                })
            }
            (MergeIntoClauseKind::NotMatchedBySource, MergeIntoAction::Delete) => builder
                .when_not_matched_by_source_delete(|mut d| {
                    if let Some(p) = predicate {
                        d = d.predicate(p);
                    }
                    d
                }),
            (_, MergeIntoAction::Insert { columns, values }) => {
                let columns = if columns.is_empty() {
                    target_columns.clone()
                } else {
                    columns
                };
                if columns.len() != values.len() {
                    return Err(DataFusionError::Plan(format!(
                        "MERGE INSERT names {} columns but gives {} values",
                        columns.len(),
                        values.len()
                    )));
                }
                let values = values
                    .into_iter()
                    .map(|v| requalified(v, &target))
                    .collect::<Result<Vec<_>>>()?;
                builder.when_not_matched_insert(|mut i| {
                    if let Some(p) = predicate {
                        i = i.predicate(p);
                    }
                    for (c, v) in columns.into_iter().zip(values) {
                        i = i.set(DeltaColumn::from(Column::new_unqualified(c)), v);
                    }
                    i
                })
            }
            (kind, action) => {
                return Err(DataFusionError::NotImplemented(format!(
                    "MERGE clause WHEN {kind:?} THEN {action:?} is not supported"
                )));
            }
        }
        .map_err(fail)?;
    }
    let (_, metrics) = builder.await.map_err(fail)?;
    Ok((metrics.num_target_rows_inserted
        + metrics.num_target_rows_updated
        + metrics.num_target_rows_deleted) as u64)
}

fn requalify_all(
    sets: Vec<(String, Expr)>,
    target: &Option<TableReference>,
) -> Result<Vec<(String, Expr)>> {
    sets.into_iter()
        .map(|(c, v)| Ok((c, requalified(v, target)?)))
        .collect()
}
