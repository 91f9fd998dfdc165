//! `ANALYZE [t [(a, b)]]`, planned as `analyze_table('t', 'a,b')`: one aggregate per table
//! (row count; per column the non-NULL count, `approx_distinct`, min and max) planned and run
//! by DataFusion on all cores, its row stored in `catalog.json` (`statistics.rs`) for the
//! join-order search, and answered as one row per column.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::{SchemaProvider, Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, provider_as_source};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::expr_fn::{approx_distinct, count, max, min};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableType, cast, col, lit};
use datafusion::physical_expr::expressions;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream, collect,
};
use futures::StreamExt;

use super::delta_sources::{literal, text};
use super::float_bits::FloatBits;
use super::schema::DatabaseSchema;
use super::statistics::{ColumnStatistics, TableStatistics};
use super::store::CatalogStore;
use super::unreachable::Unreachable;

/// Longest min or max kept (longer text values are not worth a catalog entry).
const MAX_VALUE_CHARS: usize = 64;

/// `analyze_table('t', 'a,b')`; `''` as the table analyzes every table in the database.
#[derive(Debug)]
pub struct AnalyzeFunction {
    schema: Arc<DatabaseSchema>,
}

impl AnalyzeFunction {
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        AnalyzeFunction { schema }
    }

    /// The table `name` as ANALYZE can read it, or why not.
    fn target(&self, name: &str, columns: &[String]) -> Result<Target> {
        let provider = self.schema.provider(name).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "ANALYZE: table '{name}' does not exist (tables: {})",
                self.schema.table_names().join(", ")
            ))
        })?;
        if let Some(unreachable) = provider.downcast_ref::<Unreachable>() {
            return Err(unreachable.error());
        }
        if provider.table_type() == TableType::View {
            return Err(DataFusionError::Plan(format!(
                "ANALYZE: '{name}' is a view; analyze the tables it reads"
            )));
        }
        let schema = provider.schema();
        for column in columns {
            if schema.field_with_name(column).is_err() {
                return Err(DataFusionError::Plan(format!(
                    "ANALYZE {name} ({column}): no column '{column}' (columns: {})",
                    super::delta_table::column_names(&schema)
                )));
            }
        }
        let columns = if columns.is_empty() {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        } else {
            columns.to_vec()
        };
        Ok(Target {
            name: name.to_string(),
            provider,
            columns,
        })
    }
}

impl TableFunctionImpl for AnalyzeFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let f = "ANALYZE";
        let name = text(literal(exprs, 0, f, "the table")?, f, "the table")?;
        let columns: Vec<String> = text(literal(exprs, 1, f, "the columns")?, f, "the columns")?
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let targets = if name.is_empty() {
            // Every table it can read: views and tables that could not be opened are skipped.
            self.schema
                .table_names()
                .iter()
                .filter_map(|n| self.target(n, &[]).ok())
                .collect()
        } else {
            vec![self.target(&name, &columns)?]
        };
        Ok(Arc::new(Analyze {
            targets,
            store: Arc::clone(self.schema.store()),
        }))
    }
}

/// Whether `provider` is the relation `ANALYZE` reads (scanning it stores statistics).
pub(super) fn is_analyze(provider: &dyn TableProvider) -> bool {
    provider.downcast_ref::<Analyze>().is_some()
}

/// A table to analyze, and which of its columns.
#[derive(Debug)]
struct Target {
    name: String,
    provider: Arc<dyn TableProvider>,
    columns: Vec<String>,
}

/// The relation `ANALYZE` reads: one row per analyzed column.
#[derive(Debug)]
struct Analyze {
    targets: Vec<Target>,
    store: Arc<CatalogStore>,
}

fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("nulls", DataType::Int64, false),
        Field::new("distinct", DataType::Int64, true),
        Field::new("min", DataType::Utf8, true),
        Field::new("max", DataType::Utf8, true),
    ]))
}

#[async_trait]
impl TableProvider for Analyze {
    fn schema(&self) -> SchemaRef {
        output_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut measured = vec![];
        let mut plans = vec![];
        for target in &self.targets {
            let (aggregates, columns) = measures(target)?;
            let plan = LogicalPlanBuilder::scan(
                target.name.as_str(),
                provider_as_source(Arc::clone(&target.provider)),
                None,
            )?
            .aggregate(Vec::<Expr>::new(), aggregates)?
            .build()?;
            plans.push(state.create_physical_plan(&plan).await?);
            let all = target.provider.schema();
            measured.push(Measured {
                table: target.name.clone(),
                columns,
                table_columns: all.fields().iter().map(|f| f.name().clone()).collect(),
            });
        }
        let exec: Arc<dyn ExecutionPlan> =
            Arc::new(AnalyzeExec::new(measured, plans, Arc::clone(&self.store)));
        // Every column is measured and stored; the query sees the ones it asked for.
        let Some(projection) = projection else {
            return Ok(exec);
        };
        let schema = exec.schema();
        let columns = projection
            .iter()
            .map(|&i| {
                let name = schema.field(i).name();
                Ok((expressions::col(name, &schema)?, name.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(columns, exec)?))
    }
}

/// Where one column's numbers are in the aggregate's row.
#[derive(Debug, Clone)]
struct Measure {
    name: String,
    data_type: String,
    count: usize,
    distinct: Option<usize>,
    range: Option<(usize, usize)>,
}

/// A table's aggregate: what it computes and how to read it back.
#[derive(Debug, Clone)]
struct Measured {
    table: String,
    columns: Vec<Measure>,
    /// The table's columns now: earlier statistics of columns it lost are not kept.
    table_columns: Vec<String>,
}

/// The aggregate expressions for `target`: `count(*)` first, then per column its count,
/// distinct count and range where its type has them.
fn measures(target: &Target) -> Result<(Vec<Expr>, Vec<Measure>)> {
    let schema = target.provider.schema();
    let mut aggregates = vec![count(lit(1)).alias("rows")];
    let mut columns = vec![];
    for name in &target.columns {
        let field = schema.field_with_name(name)?;
        let column = col(datafusion::common::Column::new_unqualified(name));
        let at = |e: Expr, aggregates: &mut Vec<Expr>| {
            aggregates.push(e.alias(format!("m{}", aggregates.len())));
            aggregates.len() - 1
        };
        let count_at = at(count(column.clone()), &mut aggregates);
        let distinct = distinct_input(field.data_type(), column.clone())
            .map(|e| at(approx_distinct(e), &mut aggregates));
        let range = ordered(field.data_type()).then(|| {
            (
                at(min(column.clone()), &mut aggregates),
                at(max(column.clone()), &mut aggregates),
            )
        });
        columns.push(Measure {
            name: name.clone(),
            data_type: field.data_type().to_string(),
            count: count_at,
            distinct,
            range,
        });
    }
    Ok((aggregates, columns))
}

/// What `approx_distinct` counts for a column of `data_type`: the column where it takes the
/// type, the bits of floats (which it does not take), nothing for nested types.
fn distinct_input(data_type: &DataType, column: Expr) -> Option<Expr> {
    match data_type {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Some(FloatBits::udf().call(vec![cast(column, DataType::Float64)]))
        }
        DataType::Dictionary(_, value) => distinct_input(value, cast(column, *value.clone())),
        DataType::Struct(_) | DataType::Union(_, _) | DataType::Null => None,
        t if t.is_nested() => None,
        _ => Some(column),
    }
}

/// Types whose min and max mean something to a reader and to the estimates.
fn ordered(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || data_type.is_temporal()
        || matches!(
            data_type,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

/// Runs each table's aggregate in turn, stores what it measured, answers the rows.
#[derive(Debug)]
struct AnalyzeExec {
    measured: Vec<Measured>,
    plans: Vec<Arc<dyn ExecutionPlan>>,
    store: Arc<CatalogStore>,
    properties: Arc<PlanProperties>,
}

impl AnalyzeExec {
    fn new(
        measured: Vec<Measured>,
        plans: Vec<Arc<dyn ExecutionPlan>>,
        store: Arc<CatalogStore>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        AnalyzeExec {
            measured,
            plans,
            store,
            properties,
        }
    }
}

impl DisplayAs for AnalyzeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let tables: Vec<&str> = self.measured.iter().map(|m| m.table.as_str()).collect();
        write!(f, "AnalyzeExec: tables=[{}]", tables.join(", "))
    }
}

impl ExecutionPlan for AnalyzeExec {
    fn name(&self) -> &str {
        "AnalyzeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; self.plans.len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.plans.len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.plans.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.plans.len() {
            return Err(DataFusionError::Internal(
                "AnalyzeExec: wrong number of children".into(),
            ));
        }
        Ok(Arc::new(AnalyzeExec::new(
            self.measured.clone(),
            children,
            Arc::clone(&self.store),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "AnalyzeExec has one partition, asked for {partition}"
            )));
        }
        let work: Vec<(Measured, Arc<dyn ExecutionPlan>)> = self
            .measured
            .iter()
            .cloned()
            .zip(self.plans.iter().cloned())
            .collect();
        let store = Arc::clone(&self.store);
        let out = output_schema();
        let stream = futures::stream::iter(work).then(move |(measured, plan)| {
            let (store, context, out) = (Arc::clone(&store), Arc::clone(&context), out.clone());
            async move {
                let batches = collect(plan, context).await?;
                let stats = read_row(&measured, &batches)?;
                store
                    .commit(|catalog| {
                        catalog.put_statistics(stats.clone(), &measured.table_columns);
                        Ok(())
                    })
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                answer(&stats, out)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            output_schema(),
            stream,
        )))
    }
}

/// The statistics in the aggregate's one row.
fn read_row(measured: &Measured, batches: &[RecordBatch]) -> Result<TableStatistics> {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Internal("ANALYZE: the aggregate gave no row".into()))?;
    let value = |i: usize| ScalarValue::try_from_array(batch.column(i), 0);
    let whole = |i: usize| -> Result<u64> {
        match value(i)?.cast_to(&DataType::UInt64)? {
            ScalarValue::UInt64(Some(n)) => Ok(n),
            _ => Ok(0),
        }
    };
    let rows = whole(0)?;
    let mut columns = vec![];
    for m in &measured.columns {
        let non_null = whole(m.count)?;
        let distinct = m.distinct.map(whole).transpose()?;
        let (min, max) = match m.range {
            Some((lo, hi)) => (shown(batch.column(lo))?, shown(batch.column(hi))?),
            None => (None, None),
        };
        columns.push(ColumnStatistics {
            name: m.name.clone(),
            data_type: m.data_type.clone(),
            nulls: rows.saturating_sub(non_null),
            // An empty or all-NULL column has no distinct values, whatever the sketch says.
            distinct: distinct.map(|d| {
                if non_null == 0 {
                    0
                } else {
                    d.clamp(1, non_null)
                }
            }),
            min,
            max,
        });
    }
    Ok(TableStatistics {
        table: measured.table.clone(),
        rows,
        columns,
    })
}

/// A min or max as kept: its text as query results print it (timestamps in ISO form, which
/// casts read back), if it has a value and is short.
fn shown(value: &ArrayRef) -> Result<Option<String>> {
    if value.is_null(0) {
        return Ok(None);
    }
    let text = array_value_to_string(value, 0)?;
    Ok((text.chars().count() <= MAX_VALUE_CHARS).then_some(text))
}

/// One row per analyzed column.
fn answer(stats: &TableStatistics, schema: SchemaRef) -> Result<RecordBatch> {
    let n = stats.columns.len();
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![stats.table.as_str(); n])),
        Arc::new(StringArray::from_iter_values(
            stats.columns.iter().map(|c| c.name.as_str()),
        )),
        Arc::new(Int64Array::from(vec![as_i64(stats.rows); n])),
        Arc::new(Int64Array::from_iter_values(
            stats.columns.iter().map(|c| as_i64(c.nulls)),
        )),
        Arc::new(Int64Array::from_iter(
            stats.columns.iter().map(|c| c.distinct.map(as_i64)),
        )),
        Arc::new(StringArray::from_iter(
            stats.columns.iter().map(|c| c.min.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            stats.columns.iter().map(|c| c.max.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
