//! Ways a query reaches a Delta table besides a stored table's name: `CREATE EXTERNAL
//! TABLE … STORED AS DELTA`, `delta_scan('location')`, a past version (`t VERSION AS OF n`,
//! `t TIMESTAMP AS OF …`, planned as `table_as_of(…)`) and `delta_history('t')` behind
//! `DESCRIBE HISTORY t`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProviderFactory};
use datafusion::common::ScalarValue;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{CreateExternalTable, Expr};
use futures::TryStreamExt;

use super::delta_dml::{DeltaOp, DmlExec};
use super::delta_table::{DeltaProvider, block_on, column_names, delta_error};
use super::schema::DatabaseSchema;
use crate::storage::sandbox;

/// `STORED AS DELTA`: the Delta table at the one location given.
#[derive(Debug, Default)]
pub struct DeltaTableFactory;

#[async_trait]
impl TableProviderFactory for DeltaTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let location = match cmd.locations.as_slice() {
            [one] => one.as_str(),
            _ => {
                return Err(DataFusionError::Plan(
                    "a Delta table has one LOCATION (its directory)".into(),
                ));
            }
        };
        sandbox::check_location(location, true)?;
        let definition = cmd.definition.clone().unwrap_or_else(|| {
            format!(
                "CREATE EXTERNAL TABLE {} STORED AS DELTA LOCATION '{}'",
                cmd.name,
                location.replace('\'', "''")
            )
        });
        let runtime = state.runtime_env();
        let name = cmd.name.table();
        let declared = !cmd.schema.fields().is_empty();
        let table = match DeltaProvider::open(runtime, name, location, Some(definition.clone()))
            .await
        {
            Ok(table) => table,
            // With columns declared and no table there yet, make it (as Spark's
            // `CREATE TABLE … USING DELTA LOCATION` does): an empty Delta table to write to.
            Err(e)
                if declared
                    && (e.to_string().contains("is not a Delta table")
                        || e.to_string().contains("does not exist")) =>
            {
                let schema = Arc::new(cmd.schema.as_arrow().clone());
                DeltaProvider::create(runtime, name, location, &schema, &cmd.table_partition_cols)
                    .await?
                    .defined_by(definition)
            }
            Err(e) => return Err(e),
        };
        if !cmd.table_partition_cols.is_empty() {
            let actual = table.partition_columns().await;
            if actual != cmd.table_partition_cols {
                return Err(DataFusionError::Plan(format!(
                    "Delta table at '{location}' is partitioned by ({}), not by ({}); leave \
                     PARTITIONED BY out to take the table's own",
                    actual.join(", "),
                    cmd.table_partition_cols.join(", ")
                )));
            }
        }
        if declared {
            let actual = table.schema();
            for field in cmd.schema.fields() {
                if actual.field_with_name(field.name()).is_err() {
                    return Err(DataFusionError::Plan(format!(
                        "Delta table at '{location}' has no column '{}' (its columns: {}); \
                         leave the column list out to take the table's own",
                        field.name(),
                        column_names(&actual)
                    )));
                }
            }
        }
        Ok(Arc::new(table))
    }
}

/// A constant argument of a table function, as text or integer.
pub(super) fn literal(args: &[Expr], i: usize, function: &str, what: &str) -> Result<ScalarValue> {
    match args.get(i) {
        Some(Expr::Literal(value, _)) => Ok(value.clone()),
        Some(Expr::Cast(cast)) => match cast.expr.as_ref() {
            Expr::Literal(value, _) => value.cast_to(cast.field.data_type()),
            _ => Err(not_constant(function, what)),
        },
        Some(_) => Err(not_constant(function, what)),
        None => Err(DataFusionError::Plan(format!(
            "{function}() needs {what} as argument {}",
            i + 1
        ))),
    }
}

fn not_constant(function: &str, what: &str) -> DataFusionError {
    DataFusionError::Plan(format!("{function}(): {what} must be a constant"))
}

pub(super) fn text(value: ScalarValue, function: &str, what: &str) -> Result<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Ok(s),
        other => Err(DataFusionError::Plan(format!(
            "{function}(): {what} must be text, got {other}"
        ))),
    }
}

/// `delta_scan('location' [, version])`: a Delta table read without defining it.
#[derive(Debug, Default)]
pub struct DeltaScanFunction;

impl TableFunctionImpl for DeltaScanFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let location = text(
            literal(exprs, 0, "delta_scan", "the table's location")?,
            "delta_scan",
            "the location",
        )?;
        sandbox::check_location(&location, true)?;
        let runtime = args.session().runtime_env();
        let table = block_on(DeltaProvider::open(runtime, &location, &location, None))?;
        match exprs.get(1) {
            None => Ok(Arc::new(table)),
            Some(_) => {
                let version = literal(exprs, 1, "delta_scan", "the version")?
                    .cast_to(&DataType::Int64)
                    .map_err(|_| {
                        DataFusionError::Plan("delta_scan(): the version must be an integer".into())
                    })?;
                let ScalarValue::Int64(Some(v @ 0..)) = version else {
                    return Err(DataFusionError::Plan(
                        "delta_scan(): the version must be a whole number ≥ 0".into(),
                    ));
                };
                Ok(Arc::new(block_on(table.at_version(runtime, v as u64))?))
            }
        }
    }
}

/// The Delta table registered as `name`, or why there is none.
fn delta_named(schema: &DatabaseSchema, name: &str, function: &str) -> Result<DeltaProvider> {
    let provider = schema.provider(name).ok_or_else(|| {
        DataFusionError::Plan(format!("{function}: table '{name}' does not exist"))
    })?;
    provider
        .downcast_ref::<DeltaProvider>()
        .cloned()
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{function}: table '{name}' is not a Delta table (it has no versions); stored \
                 tables and STORED AS DELTA tables have"
            ))
        })
}

/// `table_as_of('t', 'version' | 'timestamp', value)`: what `t VERSION AS OF n` and
/// `t TIMESTAMP AS OF …` are planned as.
#[derive(Debug)]
pub struct TableAsOf {
    schema: Arc<DatabaseSchema>,
}

impl TableAsOf {
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        TableAsOf { schema }
    }
}

impl TableFunctionImpl for TableAsOf {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let f = "AS OF";
        let name = text(literal(exprs, 0, f, "the table")?, f, "the table")?;
        let kind = text(literal(exprs, 1, f, "VERSION or TIMESTAMP")?, f, "the kind")?;
        let table = delta_named(
            &self.schema,
            &name,
            &format!("{} AS OF", kind.to_uppercase()),
        )?;
        let runtime = args.session().runtime_env();
        let value = literal(exprs, 2, f, "the version or time")?;
        let past = if kind == "version" {
            let ScalarValue::Int64(Some(v @ 0..)) = value.cast_to(&DataType::Int64)? else {
                return Err(DataFusionError::Plan(
                    "VERSION AS OF needs a version number ≥ 0".into(),
                ));
            };
            block_on(table.at_version(runtime, v as u64))?
        } else {
            let when = value
                .cast_to(&DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("UTC".into()),
                ))
                .map_err(|e| {
                    DataFusionError::Plan(format!(
                        "TIMESTAMP AS OF needs a time such as '2026-12-01 09:30:00' ({e})"
                    ))
                })?;
            let ScalarValue::TimestampMicrosecond(Some(micros), _) = when else {
                return Err(DataFusionError::Plan(
                    "TIMESTAMP AS OF needs a time, not NULL".into(),
                ));
            };
            let when = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                DataFusionError::Plan(format!("TIMESTAMP AS OF: {value} is out of range"))
            })?;
            block_on(table.at_time(runtime, when))?
        };
        Ok(Arc::new(past))
    }
}

/// `delta_history('t')`: one row per commit, newest first (what DESCRIBE HISTORY shows).
#[derive(Debug)]
pub struct DeltaHistory {
    schema: Arc<DatabaseSchema>,
}

impl DeltaHistory {
    pub fn new(schema: Arc<DatabaseSchema>) -> Self {
        DeltaHistory { schema }
    }
}

/// Operation metrics that count rows a commit wrote, changed or removed, under the names
/// delta-rs, Spark and Databricks use.
const ROW_METRICS: &[&str] = &[
    "num_added_rows",
    "numOutputRows",
    "num_deleted_rows",
    "numDeletedRows",
    "num_updated_rows",
    "numUpdatedRows",
    "num_target_rows_inserted",
    "num_target_rows_updated",
    "num_target_rows_deleted",
    "numTargetRowsInserted",
    "numTargetRowsUpdated",
    "numTargetRowsDeleted",
];

impl TableFunctionImpl for DeltaHistory {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let f = "DESCRIBE HISTORY";
        let name = text(literal(args.exprs(), 0, f, "the table")?, f, "the table")?;
        let table = delta_named(&self.schema, &name, f)?;
        let infos = block_on(async {
            let current = table.current().await?;
            let latest = current.version().unwrap_or(0);
            let infos: Vec<_> = current
                .history(None)
                .try_collect()
                .await
                .map_err(|e| delta_error(table.location(), e))?;
            Ok::<_, DataFusionError>((latest, infos))
        })?;
        let (latest, infos) = infos;
        let mut version = vec![];
        let mut time = vec![];
        let mut operation = vec![];
        let mut rows = vec![];
        let mut parameters = vec![];
        let mut metrics = vec![];
        for (i, info) in infos.iter().enumerate() {
            version.push(latest.saturating_sub(i as u64) as i64);
            time.push(info.in_commit_timestamp.or(info.timestamp));
            operation.push(info.operation.clone());
            let m = info.info.get("operationMetrics");
            let count: Option<i64> = m.and_then(|m| {
                let found: Vec<i64> = ROW_METRICS
                    .iter()
                    .filter_map(|k| m.get(*k))
                    .filter_map(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .collect();
                (!found.is_empty()).then(|| found.iter().sum())
            });
            rows.push(count);
            parameters.push(
                info.operation_parameters
                    .as_ref()
                    .map(|p| serde_json::to_string(p).unwrap_or_default()),
            );
            metrics.push(m.map(|m| m.to_string()));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::Int64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("operation", DataType::Utf8, true),
            Field::new("rows", DataType::Int64, true),
            Field::new("parameters", DataType::Utf8, true),
            Field::new("metrics", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(version)),
            Arc::new(TimestampMillisecondArray::from(time).with_timezone("UTC")),
            Arc::new(StringArray::from(operation)),
            Arc::new(Int64Array::from(rows)),
            Arc::new(StringArray::from(parameters)),
            Arc::new(StringArray::from(metrics)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// `delta_optimize('t', 'a,b')` and `delta_vacuum('t', hours, dry_run)`: what `OPTIMIZE`
/// and `VACUUM` are planned as. Planning only looks the table up; the scan's operator does
/// the work when it runs.
#[derive(Debug)]
pub struct DeltaMaintenance {
    schema: Arc<DatabaseSchema>,
    optimize: bool,
}

impl DeltaMaintenance {
    pub fn optimize(schema: Arc<DatabaseSchema>) -> Self {
        DeltaMaintenance {
            schema,
            optimize: true,
        }
    }

    pub fn vacuum(schema: Arc<DatabaseSchema>) -> Self {
        DeltaMaintenance {
            schema,
            optimize: false,
        }
    }
}

impl TableFunctionImpl for DeltaMaintenance {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let f = if self.optimize { "OPTIMIZE" } else { "VACUUM" };
        let name = text(literal(exprs, 0, f, "the table")?, f, "the table")?;
        let table = delta_named(&self.schema, &name, f)?;
        table.check_writable(&f.to_lowercase())?;
        let op = if self.optimize {
            let columns = text(literal(exprs, 1, f, "the Z-order columns")?, f, "columns")?;
            let zorder: Vec<String> = columns
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let schema = table.schema();
            for column in &zorder {
                if schema.field_with_name(column).is_err() {
                    return Err(DataFusionError::Plan(format!(
                        "OPTIMIZE {name} ZORDER BY: no column '{column}' (columns: {})",
                        column_names(&schema)
                    )));
                }
            }
            DeltaOp::Optimize { zorder }
        } else {
            let retain_hours = match literal(exprs, 1, f, "the hours")? {
                ScalarValue::Null | ScalarValue::Int64(None) => None,
                other => match other.cast_to(&DataType::Int64)? {
                    ScalarValue::Int64(Some(h @ 0..)) => Some(h as u64),
                    _ => {
                        return Err(DataFusionError::Plan(
                            "VACUUM … RETAIN n HOURS needs a whole number ≥ 0".into(),
                        ));
                    }
                },
            };
            let dry_run = matches!(
                literal(exprs, 2, f, "DRY RUN")?,
                ScalarValue::Boolean(Some(true))
            );
            DeltaOp::Vacuum {
                retain_hours,
                dry_run,
            }
        };
        Ok(Arc::new(Maintenance { table, op }))
    }
}

/// Whether `provider` is the relation `OPTIMIZE` or `VACUUM` reads.
pub(super) fn is_maintenance(provider: &dyn TableProvider) -> bool {
    provider.downcast_ref::<Maintenance>().is_some()
}

/// The relation `OPTIMIZE`/`VACUUM` read: one row, `count`, produced by running the operation.
#[derive(Debug)]
struct Maintenance {
    table: DeltaProvider,
    op: DeltaOp,
}

#[async_trait]
impl TableProvider for Maintenance {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]))
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Ok(Arc::new(DmlExec::new(self.table.clone(), self.op.clone())))
    }
}
