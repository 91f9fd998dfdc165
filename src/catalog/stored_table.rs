//! A table owned by the database: Parquet files committed in the catalog, or batches held in memory.

use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::store::{CatalogStore, Entry, hint_for_io};

pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Where a stored table's rows live.
#[derive(Debug)]
enum TableData {
    /// Relative paths of the committed Parquet files, in insertion order.
    Files(Vec<String>),
    /// In-memory database: batches charged to the memory pool through `reservation`.
    Memory {
        batches: Vec<RecordBatch>,
        reservation: MemoryReservation,
    },
}

/// A table created with `CREATE TABLE`: its rows change only through committed inserts.
/// Clones share the rows (the insert sink holds one).
#[derive(Debug, Clone)]
pub struct StoredTable {
    name: String,
    schema: SchemaRef,
    store: Arc<CatalogStore>,
    pool: Arc<dyn MemoryPool>,
    data: Arc<RwLock<TableData>>,
}

impl StoredTable {
    /// A table over already committed files (file-backed) or with no rows yet.
    pub fn new(
        name: &str,
        schema: SchemaRef,
        store: Arc<CatalogStore>,
        pool: Arc<dyn MemoryPool>,
        files: Vec<String>,
    ) -> Self {
        let data = if store.dir().is_some() {
            TableData::Files(files)
        } else {
            let reservation = MemoryConsumer::new(format!("table {name}")).register(&pool);
            TableData::Memory {
                batches: vec![],
                reservation,
            }
        };
        StoredTable {
            name: name.to_string(),
            schema,
            store,
            pool,
            data: Arc::new(RwLock::new(data)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn files(&self) -> Vec<String> {
        match &*self.read() {
            TableData::Files(files) => files.clone(),
            TableData::Memory { .. } => vec![],
        }
    }

    /// A copy that keeps the rows as they are now while this table changes: the undo
    /// image of a transaction block. Committed files are shared; in-memory rows are
    /// charged to the pool again, as they may outlive the table's own.
    pub fn frozen(&self) -> StoredTable {
        let data = match &*self.read() {
            TableData::Files(files) => TableData::Files(files.clone()),
            TableData::Memory { batches, .. } => {
                let reservation = MemoryConsumer::new(format!("table {} (undo image)", self.name))
                    .register(&self.pool);
                reservation.grow(batches.iter().map(|b| b.get_array_memory_size()).sum());
                TableData::Memory {
                    batches: batches.clone(),
                    reservation,
                }
            }
        };
        StoredTable {
            data: Arc::new(RwLock::new(data)),
            ..self.clone()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, TableData> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, TableData> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `stream` as new data, not yet visible: files on disk (fsynced) or reserved batches.
    pub async fn stage(&self, stream: SendableRecordBatchStream) -> Result<Staged> {
        match self.store.dir() {
            Some(_) => self.stage_file(stream).await,
            None => self.stage_memory(stream).await,
        }
    }

    async fn stage_file(&self, mut stream: SendableRecordBatchStream) -> Result<Staged> {
        let Some((rel, path)) = self.store.new_data_file(&self.name) else {
            return Err(DataFusionError::Internal(
                "file table without a directory".into(),
            ));
        };
        let io_err = |e: std::io::Error, path: &PathBuf| {
            DataFusionError::Execution(format!(
                "cannot write table data file '{}': {e}{}",
                path.display(),
                hint_for_io(&e)
            ))
        };
        let file = File::create(&path).map_err(|e| io_err(e, &path))?;
        let guard = RemoveOnDrop(Some(path.clone()));
        // Row groups of 128Ki rows: scans split across cores by row group, and pruning has
        // statistics fine enough to skip; one file per insert keeps commits simple.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&self.schema), Some(props))?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            tokio::task::block_in_place(|| writer.write(&batch))?;
        }
        let file = tokio::task::block_in_place(|| writer.into_inner())?;
        file.sync_all().map_err(|e| io_err(e, &path))?;
        Ok(Staged {
            rows,
            file: Some((rel, guard)),
            batches: vec![],
            reservation: None,
        })
    }

    async fn stage_memory(&self, mut stream: SendableRecordBatchStream) -> Result<Staged> {
        let reservation =
            MemoryConsumer::new(format!("insert into {}", self.name)).register(&self.pool);
        let mut batches = vec![];
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            reservation
                .try_grow(batch.get_array_memory_size())
                .map_err(|e| {
                    DataFusionError::ResourcesExhausted(format!(
                        "table '{}' does not fit in memory ({e}); raise --memory-limit, or open a \
                     database directory (augur PATH) so tables are stored on disk",
                        self.name
                    ))
                })?;
            rows += batch.num_rows() as u64;
            batches.push(batch);
        }
        Ok(Staged {
            rows,
            file: None,
            batches,
            reservation: Some(reservation),
        })
    }

    /// Make staged data visible: commit the catalog with the new file, then publish it.
    pub fn publish(&self, staged: Staged) -> Result<u64> {
        let rows = staged.rows;
        // Holding the write lock across the commit keeps commits of one table in order.
        let _order = self.write();
        if let Some(rel) = staged.file() {
            self.store
                .commit(|catalog| {
                    for entry in catalog.entries.iter_mut() {
                        if let Entry::Table { name, files, .. } = entry
                            && name == &self.name
                        {
                            files.push(rel.to_string());
                            return Ok(());
                        }
                    }
                    Err(crate::error::AugurError::Database(format!(
                        "table '{}' was dropped while inserting",
                        self.name
                    )))
                })
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        drop(_order);
        self.adopt(staged);
        Ok(rows)
    }

    /// Make staged data visible without touching the catalog: the caller has committed it,
    /// or (CREATE TABLE AS) commits the table entry and its files together afterwards.
    pub fn adopt(&self, staged: Staged) {
        let Staged {
            file,
            batches,
            reservation,
            ..
        } = staged;
        let mut data = self.write();
        match (&mut *data, file) {
            (TableData::Files(files), Some((rel, mut guard))) => {
                guard.0 = None;
                files.push(rel);
            }
            (
                TableData::Memory {
                    batches: held,
                    reservation: held_res,
                },
                _,
            ) => {
                if let Some(r) = reservation {
                    held_res.grow(r.size());
                    r.free();
                }
                held.extend(batches);
            }
            (TableData::Files(_), None) => {}
        }
    }
}

/// Data written by an insert but not yet committed. Dropping it deletes the file.
pub struct Staged {
    pub rows: u64,
    file: Option<(String, RemoveOnDrop)>,
    batches: Vec<RecordBatch>,
    reservation: Option<MemoryReservation>,
}

impl Staged {
    pub fn file(&self) -> Option<&str> {
        self.file.as_ref().map(|(rel, _)| rel.as_str())
    }
}

/// Deletes an uncommitted data file when an insert fails or is cancelled.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = match &*self.read() {
            TableData::Memory { batches, .. } => {
                let partitions = split_partitions(batches, state.config().target_partitions());
                return Ok(MemorySourceConfig::try_new_exec(
                    &partitions,
                    Arc::clone(&self.schema),
                    projection.cloned(),
                )?);
            }
            TableData::Files(files) => files.clone(),
        };
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        self.listing(&files)?
            .scan(state, projection, filters, limit)
            .await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Parquet row-group pruning uses the filters, but rows are still filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} is not supported for table '{}'; use INSERT INTO",
                self.name
            )));
        }
        let sink = InsertSink {
            table: self.clone(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

impl StoredTable {
    fn listing(&self, files: &[String]) -> Result<ListingTable> {
        let urls = files
            .iter()
            .map(|rel| {
                let path = self.store.absolute(rel).unwrap_or_default();
                ListingTableUrl::parse(path.to_string_lossy())
            })
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(&self.schema));
        ListingTable::try_new(config)
    }
}

/// Spread in-memory batches round-robin so scans of cached tables use every core.
fn split_partitions(batches: &[RecordBatch], target: usize) -> Vec<Vec<RecordBatch>> {
    let n = target.max(1).min(batches.len().max(1));
    let mut parts = vec![vec![]; n];
    for (i, b) in batches.iter().enumerate() {
        parts[i % n].push(b.clone());
    }
    parts
}

/// The sink behind `INSERT INTO` a stored table: stage everything, then commit once.
#[derive(Debug)]
struct InsertSink {
    table: StoredTable,
}

impl DisplayAs for InsertSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StoredTableInsert: table={}", self.table.name)
    }
}

#[async_trait]
impl DataSink for InsertSink {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let staged = self.table.stage(data).await?;
        self.table.publish(staged)
    }
}
