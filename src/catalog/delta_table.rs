//! A Delta Lake table as a DataFusion table: stored tables (a Delta table under the
//! database) and external ones (`STORED AS DELTA`, `delta_scan`), read and written with
//! delta-rs. Every change is one Delta log commit; DataFusion plans INSERT, DELETE, UPDATE
//! and MERGE and calls this provider's hooks, which return the operator that commits.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchemaRef, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::dml::{InsertOp, MergeIntoClause};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{PROTOCOL, TransactionError};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use url::Url;

use super::delta_after_insert::{AfterInsertExec, Upkeep};
use super::delta_dml::{DeltaOp, DmlExec};

/// Which of its versions a provider shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AsOf {
    /// The newest committed version, re-read before every statement.
    Latest,
    /// A fixed past version (time travel): read-only.
    Version(u64),
}

/// A Delta table the session reads and writes. Clones share the loaded state.
#[derive(Debug, Clone)]
pub struct DeltaProvider {
    /// The name users call it by (for messages).
    name: String,
    /// Where the table lives, as the user or the catalog gave it.
    location: String,
    url: Url,
    table: Arc<tokio::sync::Mutex<DeltaTable>>,
    schema: Arc<RwLock<SchemaRef>>,
    as_of: AsOf,
    /// `CREATE EXTERNAL TABLE …` for external tables (kept in the catalog); `None` for
    /// stored tables, which the catalog records by location.
    definition: Option<String>,
    /// A stored table's location as the catalog records it (relative to the database).
    stored_at: Option<String>,
    /// Compact after an INSERT leaves more files than this (stored tables; 0: never).
    compact_after: Option<usize>,
}

/// The URL of `location`: `s3://`, `memory://` and `file://` URLs as given, any other
/// text a local path (made absolute; a directory URL ends in `/`).
pub fn location_url(location: &str) -> Result<Url> {
    if location.contains("://") {
        let mut url = Url::parse(location).map_err(|e| {
            DataFusionError::Plan(format!(
                "Delta table location '{location}' is not a URL: {e}"
            ))
        })?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        return Ok(url);
    }
    let path = std::path::absolute(location)
        .map_err(|e| DataFusionError::Plan(format!("Delta table location '{location}': {e}")))?;
    Url::from_directory_path(&path).map_err(|()| {
        DataFusionError::Plan(format!(
            "Delta table location '{}' is not a usable path",
            path.display()
        ))
    })
}

/// Delta commits on S3 through delta-rs's default log store: each commit is a conditional
/// put (`If-None-Match: *`), so of two writers racing for a version one gets it and the
/// other retries on top; no lock table is needed (S3 has had conditional writes since 2024).
struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_log_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                logstore_factories().insert(url, Arc::new(ConditionalPutLogStore));
            }
        }
    });
}

/// A builder for the table at `url`, reading and writing through the session's object
/// store for it (S3 with Augur's credential chain, local files, the in-memory store).
fn builder(runtime: &RuntimeEnv, url: &Url) -> Result<DeltaTableBuilder> {
    register_log_stores();
    let store_url = ObjectStoreUrl::parse(&url[..url::Position::BeforePath])?;
    let store = runtime.object_store(&store_url)?;
    Ok(DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| delta_error(url.as_ref(), e))?
        .with_storage_backend(store, url.clone()))
}

/// A Delta error as the user should read it: which table, what went wrong, what to do.
pub fn delta_error(location: &str, e: DeltaTableError) -> DataFusionError {
    match e {
        DeltaTableError::NotATable(_) => DataFusionError::Plan(format!(
            "'{location}' is not a Delta table (no _delta_log directory with a commit); \
             check the path, or read Parquet files with STORED AS PARQUET"
        )),
        DeltaTableError::InvalidVersion(v) => DataFusionError::Plan(format!(
            "Delta table '{location}' has no version {v}; DESCRIBE HISTORY lists its versions"
        )),
        // delta-rs reports a missing directory in several variants (kernel, object store).
        e if e.to_string().contains("does not exist") => DataFusionError::Plan(format!(
            "Delta table '{location}' does not exist (no such directory or bucket path); \
             check the location"
        )),
        DeltaTableError::Kernel { source } => {
            DataFusionError::Execution(format!("Delta table '{location}': {source}"))
        }
        other => DataFusionError::Execution(format!("Delta table '{location}': {other}")),
    }
}

impl DeltaProvider {
    /// Open the existing Delta table at `location`, at its newest version.
    pub async fn open(
        runtime: &RuntimeEnv,
        name: &str,
        location: &str,
        definition: Option<String>,
    ) -> Result<DeltaProvider> {
        let url = location_url(location)?;
        let table = builder(runtime, &url)?
            .load()
            .await
            .map_err(|e| delta_error(location, e))?;
        Self::wrap(name, location, url, table, AsOf::Latest, definition).await
    }

    /// Create an empty Delta table with `schema` at `location` (which must not hold one),
    /// its files laid out by the values of `partition_by` (Hive-style directories).
    pub async fn create(
        runtime: &RuntimeEnv,
        name: &str,
        location: &str,
        schema: &SchemaRef,
        partition_by: &[String],
    ) -> Result<DeltaProvider> {
        for column in partition_by {
            if schema.field_with_name(column).is_err() {
                return Err(DataFusionError::Plan(format!(
                    "table '{name}' is PARTITIONED BY '{column}', which is not one of its \
                     columns ({}); declare it in the column list",
                    column_names(schema)
                )));
            }
        }
        let url = location_url(location)?;
        let columns: StructType = schema.as_ref().try_into_kernel().map_err(|e| {
            DataFusionError::Plan(format!(
                "table '{name}' has a column type Delta Lake cannot store ({e}); cast it \
                 (for example to BIGINT, DOUBLE, VARCHAR or TIMESTAMP)"
            ))
        })?;
        let table = builder(runtime, &url)?
            .build()
            .map_err(|e| delta_error(location, e))?;
        let table = table
            .create()
            .with_table_name(name)
            .with_columns(columns.fields().cloned())
            .with_partition_columns(partition_by.iter().cloned())
            // Spark's interval rather than delta-rs's 100: every commit re-reads the log
            // since the last checkpoint, so single-row inserts slow down as it grows.
            .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
            .await
            .map_err(|e| delta_error(location, e))?;
        Self::wrap(name, location, url, table, AsOf::Latest, None).await
    }

    async fn wrap(
        name: &str,
        location: &str,
        url: Url,
        table: DeltaTable,
        as_of: AsOf,
        definition: Option<String>,
    ) -> Result<DeltaProvider> {
        let schema = arrow_schema(&table).await?;
        Ok(DeltaProvider {
            name: name.to_string(),
            location: location.to_string(),
            url,
            table: Arc::new(tokio::sync::Mutex::new(table)),
            schema: Arc::new(RwLock::new(schema)),
            as_of,
            definition,
            stored_at: None,
            compact_after: None,
        })
    }

    /// The same table as it was at `version` (time travel).
    pub async fn at_version(&self, runtime: &RuntimeEnv, version: u64) -> Result<DeltaProvider> {
        let latest = self.version().await?;
        if version > latest {
            return Err(DataFusionError::Plan(format!(
                "table '{}' has no version {version}: its newest is {latest}; DESCRIBE HISTORY \
                 lists its versions",
                self.name
            )));
        }
        let table = builder(runtime, &self.url)?
            .with_version(version)
            .load()
            .await
            .map_err(|e| delta_error(&self.location, e))?;
        self.pinned(table).await
    }

    /// The same table as it was at `when` (the newest version committed at or before it).
    pub async fn at_time(
        &self,
        runtime: &RuntimeEnv,
        when: chrono::DateTime<chrono::Utc>,
    ) -> Result<DeltaProvider> {
        let mut table = builder(runtime, &self.url)?
            .build()
            .map_err(|e| delta_error(&self.location, e))?;
        table.load_with_datetime(when).await.map_err(|e| match e {
            DeltaTableError::NotATable(_) | DeltaTableError::InvalidVersion(_) => {
                DataFusionError::Plan(format!(
                    "table '{}' has no version committed at or before {when}; DESCRIBE HISTORY \
                     lists its versions and their times",
                    self.name
                ))
            }
            other => delta_error(&self.location, other),
        })?;
        self.pinned(table).await
    }

    /// This table as `table` (loaded at an older version) has it, pinned there.
    async fn pinned(&self, table: DeltaTable) -> Result<DeltaProvider> {
        let version = table.version().unwrap_or(0);
        Self::wrap(
            &self.name,
            &self.location,
            self.url.clone(),
            table,
            AsOf::Version(version),
            None,
        )
        .await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This provider as the external table `definition` defines.
    pub fn defined_by(mut self, definition: String) -> Self {
        self.definition = Some(definition);
        self
    }

    /// This provider as the stored table the catalog records at `location`.
    pub fn stored_at(mut self, location: &str) -> Self {
        self.stored_at = Some(location.to_string());
        self
    }

    /// Compact the table when an INSERT leaves it with more than `files` files.
    pub fn compact_after(mut self, files: usize) -> Self {
        self.compact_after = Some(files);
        self
    }

    /// A stored table's location as the catalog records it.
    pub fn catalog_location(&self) -> Option<&str> {
        self.stored_at.as_deref()
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether this is an external table (defined by a statement) rather than a stored one.
    pub fn is_external(&self) -> bool {
        self.definition.is_some()
    }

    /// The table brought up to its newest commit (other processes and engines may have
    /// written since), or as pinned for time travel.
    pub async fn current(&self) -> Result<DeltaTable> {
        let mut table = self.table.lock().await;
        if self.as_of == AsOf::Latest {
            table
                .update_incremental(None)
                .await
                .map_err(|e| delta_error(&self.location, e))?;
        }
        Ok(table.clone())
    }

    /// The columns the table is partitioned by, as loaded (no new read of the log: this
    /// runs for every partitioned external table when a database opens).
    pub async fn partition_columns(&self) -> Vec<String> {
        let table = self.table.lock().await;
        table
            .snapshot()
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default()
    }

    /// Each column's smallest and largest value over the table's files, as the Delta log
    /// records them (`None` where a file has no statistics for it): the join-order estimates'
    /// ranges, without reading any data file.
    pub async fn column_ranges(&self) -> Result<Vec<ColumnRange>> {
        use datafusion::physical_optimizer::pruning::PruningStatistics;
        let table = self.current().await?;
        let state = table
            .snapshot()
            .map_err(|e| delta_error(&self.location, e))?;
        let files = state.snapshot();
        Ok(self
            .schema()
            .fields()
            .iter()
            .map(|field| {
                let column = datafusion::common::Column::new_unqualified(field.name());
                ColumnRange {
                    min: extreme(files.min_values(&column), std::cmp::Ordering::Less),
                    max: extreme(files.max_values(&column), std::cmp::Ordering::Greater),
                }
            })
            .collect())
    }

    /// The newest version number.
    pub async fn version(&self) -> Result<u64> {
        Ok(self.current().await?.version().unwrap_or(0))
    }

    /// Put the table's rows back as they were at `version`, as a new commit (undo of a
    /// transaction block); nothing to do if nothing was committed since.
    pub async fn restore(&self, version: u64) -> Result<()> {
        let table = self.current().await?;
        if table.version() == Some(version) {
            return Ok(());
        }
        let (table, _) = table
            .restore()
            .with_version_to_restore(version)
            .await
            .map_err(|e| delta_error(&self.location, e))?;
        *self.table.lock().await = table;
        Ok(())
    }

    /// Refuse a change to a past version (time travel reads only).
    pub fn check_writable(&self, what: &str) -> Result<()> {
        if let AsOf::Version(v) = self.as_of {
            return Err(DataFusionError::Plan(format!(
                "cannot {what} table '{}' as of version {v}: past versions are read-only",
                self.name
            )));
        }
        Ok(())
    }

    /// The table at its newest version, to change: refused up front (before any file is
    /// written) when its protocol requires a writer feature delta-rs does not implement.
    pub async fn writable(&self, what: &str) -> Result<DeltaTable> {
        self.check_writable(what)?;
        let table = self.current().await?;
        if let Ok(state) = table.snapshot() {
            PROTOCOL.can_write_to(state).map_err(|e| match e {
                TransactionError::UnsupportedTableFeatures(features) => {
                    let names: Vec<String> = features.iter().map(|f| f.to_string()).collect();
                    DataFusionError::Plan(format!(
                        "cannot {what} table '{}': it is read-only here, because its Delta \
                         protocol requires the table feature{} {} that Augur cannot write; \
                         query it, or change it with an engine that supports {}",
                        self.name,
                        if names.len() == 1 { "" } else { "s" },
                        names.join(", "),
                        if names.len() == 1 { "it" } else { "them" },
                    ))
                }
                other => {
                    DataFusionError::Plan(format!("cannot {what} table '{}': {other}", self.name))
                }
            })?;
        }
        Ok(table)
    }

    fn dml(&self, op: DeltaOp) -> Result<Arc<dyn ExecutionPlan>> {
        self.check_writable(op.verb())?;
        Ok(Arc::new(DmlExec::new(self.clone(), op)))
    }
}

/// delta-rs's Parquet scans in `plan` made to behave as DataFusion's own Parquet scans do:
/// - rows are filtered while decoding only if `pushdown` (the session's
///   `datafusion.execution.parquet.pushdown_filters`). delta-rs turns it on whenever a query
///   has a predicate; on TPC-H SF1 that made Q6 2.3× slower than the same files read by
///   DataFusion's scan. The predicate itself stays, for pruning row groups and pages.
/// - the size estimate is left unknown rather than the whole files' size: delta-rs's scans
///   always read a string file-id column, so DataFusion cannot narrow the estimate to the
///   columns read, and join sides were then chosen by file size (TPC-H Q13 built its hash
///   table on 1.5M orders instead of 150k customers, 1.8× slower). Row counts still decide.
fn as_parquet_scans_are(
    plan: Arc<dyn ExecutionPlan>,
    pushdown: bool,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        let source = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
            .and_then(|config| {
                let parquet = config.file_source().downcast_ref::<ParquetSource>()?;
                // A scan of a table with deletion vectors reads row positions (a virtual
                // column), and delta-rs checks that its Parquet scan is the one it built.
                parquet
                    .table_schema()
                    .virtual_columns()
                    .is_empty()
                    .then(|| (config.clone(), parquet.clone()))
            });
        Ok(match source {
            Some((config, parquet)) => {
                let mut statistics = config.statistics();
                statistics.total_byte_size = Precision::Absent;
                let config = FileScanConfigBuilder::from(config)
                    .with_source(Arc::new(parquet.with_pushdown_filters(pushdown)))
                    .with_statistics(statistics)
                    .build();
                Transformed::yes(DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>)
            }
            None => Transformed::no(node),
        })
    })
    .data()
}

/// A column's smallest and largest value in a table.
#[derive(Debug, Clone, Default)]
pub struct ColumnRange {
    pub min: Option<ScalarValue>,
    pub max: Option<ScalarValue>,
}

/// The value of `per_file` furthest towards `towards`; `None` if any file has none.
fn extreme(
    per_file: Option<datafusion::arrow::array::ArrayRef>,
    towards: std::cmp::Ordering,
) -> Option<ScalarValue> {
    let values = per_file?;
    let mut best: Option<ScalarValue> = None;
    for i in 0..values.len() {
        let value = ScalarValue::try_from_array(&values, i).ok()?;
        if value.is_null() {
            return None;
        }
        if best
            .as_ref()
            .is_none_or(|b| value.partial_cmp(b) == Some(towards))
        {
            best = Some(value);
        }
    }
    best
}

/// A schema's column names, for messages that list them.
pub fn column_names(schema: &datafusion::arrow::datatypes::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan's partitions merged into one: a Delta write takes a single input stream (the
/// physical optimizer adds this merge for INSERT; CREATE TABLE AS and the upgrade plan the
/// write themselves).
pub fn single_partition(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if plan.properties().partitioning.partition_count() > 1 {
        Arc::new(datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec::new(plan))
    } else {
        plan
    }
}

/// Run `work` to completion from synchronous code inside or outside the runtime (catalog
/// undo and table functions are synchronous; Delta's log is read asynchronously).
pub fn block_on<F: std::future::Future>(work: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(work))
        }
        _ => futures::executor::block_on(work),
    }
}

/// The table's columns as Arrow types, in the order its scans produce them (logical names
/// under column mapping; partition columns where delta-rs puts them).
async fn arrow_schema(table: &DeltaTable) -> Result<SchemaRef> {
    Ok(table.table_provider().await?.schema())
}

#[async_trait]
impl TableProvider for DeltaProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.definition.as_deref()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self.current().await?;
        let provider = table.table_provider().await?;
        let plan = provider.scan(state, projection, filters, limit).await?;
        let pushdown = state.config_options().execution.parquet.pushdown_filters;
        as_parquet_scans_are(plan, pushdown)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // File skipping and row-group pruning use the filters; rows are filtered above.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op == InsertOp::Replace {
            return Err(DataFusionError::NotImplemented(format!(
                "INSERT OR REPLACE is not supported for table '{}'; use MERGE INTO",
                self.name
            )));
        }
        let table = self.writable("insert into").await?;
        let provider = table.table_provider().await?;
        let insert = provider.insert_into(state, input, insert_op).await?;
        let snapshot = table
            .snapshot()
            .map_err(|e| delta_error(&self.location, e))?;
        // The insert commits the version after this one; delta-rs checkpoints a version v
        // when v + 1 is a multiple of the interval.
        let interval = snapshot.table_config().checkpoint_interval().get();
        let upkeep = Upkeep {
            max_files: self.compact_after.unwrap_or(0),
            files_before: snapshot.log_data().num_files(),
            checkpoint: (snapshot.version() + 2).is_multiple_of(interval),
        };
        Ok(Arc::new(AfterInsertExec::new(insert, self.clone(), upkeep)))
    }

    async fn delete_from(
        &self,
        _state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.dml(DeltaOp::Delete { filters })
    }

    async fn update(
        &self,
        _state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.dml(DeltaOp::Update {
            assignments,
            filters,
        })
    }

    async fn truncate(&self, _state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        self.dml(DeltaOp::Delete { filters: vec![] })
    }

    async fn merge_into(
        &self,
        _state: &dyn Session,
        source: Arc<dyn ExecutionPlan>,
        merge_schema: DFSchemaRef,
        on: Expr,
        clauses: Vec<MergeIntoClause>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.dml(DeltaOp::Merge {
            source,
            merge_schema,
            on,
            clauses,
        })
    }
}
