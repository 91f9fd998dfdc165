//! Distinct counts of low-cardinality string columns from Parquet dictionary pages, for the
//! join-order estimates (`estimates.rs`).
//!
//! Footers carry no distinct counts, so an equality on a string column was estimated to keep
//! 1/50 of the rows: TPC-H's `o_orderstatus = 'F'` keeps 49%, and at SF10 Q21 joined 7.3M
//! orders before the 400 suppliers of one nation. A column chunk written with a dictionary
//! starts with a dictionary page whose header holds the number of distinct values in that
//! chunk. A few chunks per file (first, middle, last row group) are read, a few KiB each; the
//! largest count is a lower bound of the column's distinct count and, for a column of flags
//! or codes, its value. Only counts under `STRING_DISTINCT` are used (a larger dictionary says
//! little about the column's whole count). Counts are cached per file version (path, size,
//! modification time), so each file is read once per process.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::basic::{Encoding, PageType, Type as PhysicalType};
use datafusion::parquet::column::page::{Page, PageReader};
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use datafusion::parquet::file::reader::{ChunkReader, Length};
use datafusion::parquet::file::serialized_reader::SerializedPageReader;
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::estimates::STRING_DISTINCT;

/// Files of one table read for counts, at most.
const FILES: usize = 8;
/// A dictionary page larger than this holds more values than the counts are used for.
const MAX_DICTIONARY_BYTES: i64 = 64 * 1024;

/// A file version: path, size, modification time (ms).
type FileKey = (String, u64, i64);
/// Dictionary counts per file version: column name → the largest count read.
type Counts = Mutex<HashMap<FileKey, Arc<HashMap<String, u32>>>>;

fn cache() -> &'static Counts {
    static CACHE: OnceLock<Counts> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Distinct counts under `STRING_DISTINCT` of the string columns of `scan`'s Parquet files,
/// by column name. Files that cannot be read give no counts (the estimates keep their
/// defaults): this never fails a query.
pub async fn string_distincts(
    scan: &Arc<dyn ExecutionPlan>,
    session: &dyn Session,
) -> HashMap<String, f64> {
    let mut counts: HashMap<String, f64> = HashMap::new();
    let Some((url, files)) = parquet_scan(scan) else {
        return counts;
    };
    let runtime = session.runtime_env();
    let Ok(store) = runtime.object_store(&url) else {
        return counts;
    };
    let metadata_cache = runtime.cache_manager.get_file_metadata_cache();
    for meta in &files {
        let key = file_key(meta);
        let cached = cache().lock().ok().and_then(|c| c.get(&key).cloned());
        let file_counts = match cached {
            Some(found) => found,
            None => {
                let Ok(metadata) = DFParquetMetadata::new(store.as_ref(), meta)
                    .with_file_metadata_cache(Some(Arc::clone(&metadata_cache)))
                    .fetch_metadata()
                    .await
                else {
                    continue;
                };
                let found = Arc::new(file_counts(store.as_ref(), meta, &metadata).await);
                if let Ok(mut c) = cache().lock() {
                    c.insert(key, Arc::clone(&found));
                }
                found
            }
        };
        merge(&mut counts, &file_counts);
    }
    counts.retain(|_, n| *n < STRING_DISTINCT);
    counts
}

/// The counts `string_distincts` found for `scan` earlier in this process, without reading
/// anything: for the physical planner, which cannot wait on reads. Only when every file of
/// the scan was counted.
pub fn cached_string_distincts(scan: &Arc<dyn ExecutionPlan>) -> HashMap<String, f64> {
    let mut counts = HashMap::new();
    let Some((_, files)) = parquet_scan(scan) else {
        return counts;
    };
    let Ok(cache) = cache().lock() else {
        return counts;
    };
    for meta in &files {
        match cache.get(&file_key(meta)) {
            Some(found) => merge(&mut counts, found),
            None => return HashMap::new(),
        }
    }
    counts.retain(|_, n| *n < STRING_DISTINCT);
    counts
}

/// The store and the first `FILES` distinct files (a file split in ranges appears once) of
/// `scan`, if it is a Parquet scan.
fn parquet_scan(scan: &Arc<dyn ExecutionPlan>) -> Option<(ObjectStoreUrl, Vec<ObjectMeta>)> {
    let mut found = None;
    let _ = scan.apply(|node| {
        if let Some(source) = node.downcast_ref::<DataSourceExec>()
            && let Some(config) = source.data_source().downcast_ref::<FileScanConfig>()
            && config.file_source().file_type() == "parquet"
        {
            let mut seen = std::collections::HashSet::new();
            let files = config
                .file_groups
                .iter()
                .flat_map(|g| g.files().iter())
                .map(|f| &f.object_meta)
                .filter(|m| seen.insert(&m.location))
                .take(FILES)
                .cloned()
                .collect();
            found = Some((config.object_store_url.clone(), files));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn file_key(meta: &ObjectMeta) -> FileKey {
    (
        meta.location.to_string(),
        meta.size,
        meta.last_modified.timestamp_millis(),
    )
}

/// Keeps the larger count of each column.
fn merge(counts: &mut HashMap<String, f64>, file: &HashMap<String, u32>) {
    for (column, &n) in file {
        let entry = counts.entry(column.clone()).or_insert(0.0);
        *entry = entry.max(f64::from(n));
    }
}

/// The largest dictionary count of each top-level string column over a few row groups.
async fn file_counts(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    metadata: &ParquetMetaData,
) -> HashMap<String, u32> {
    let groups = metadata.row_groups();
    let mut picks = vec![0, groups.len() / 2, groups.len().saturating_sub(1)];
    picks.dedup();
    let mut counts = HashMap::new();
    for &g in picks.iter().filter(|&&g| g < groups.len()) {
        for chunk in groups[g].columns() {
            let path = chunk.column_descr().path();
            if path.parts().len() != 1 || chunk.column_type() != PhysicalType::BYTE_ARRAY {
                continue;
            }
            let Some(n) = dictionary_count(store, meta, chunk, groups[g].num_rows()).await else {
                continue;
            };
            let entry = counts.entry(path.string()).or_insert(0);
            *entry = n.max(*entry);
        }
    }
    counts
}

/// The number of values in `chunk`'s dictionary page, if every data page of the chunk is
/// dictionary-encoded (a writer falls back to plain pages once its dictionary fills up, and
/// then the page holds only some of the values).
async fn dictionary_count(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    chunk: &ColumnChunkMetaData,
    rows: i64,
) -> Option<u32> {
    let start = chunk.dictionary_page_offset()?;
    let end = chunk.data_page_offset();
    // The footer's page encoding statistics, kept as a mask of the data pages' encodings
    // (arrow-rs's default) or in full.
    let all_dictionary = match (
        chunk.page_encoding_stats_mask(),
        chunk.page_encoding_stats(),
    ) {
        (Some(mask), _) => {
            mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
        }
        (None, Some(stats)) => stats.iter().all(|s| {
            s.page_type != PageType::DATA_PAGE && s.page_type != PageType::DATA_PAGE_V2
                || matches!(
                    s.encoding,
                    Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
                )
        }),
        // No statistics: writers fall back to plain pages when the dictionary outgrows its
        // page (about 1 MiB), which the size limit below excludes, or when it saves nothing,
        // which a column of under 50 values never is.
        (None, None) => true,
    };
    if !all_dictionary || end <= start || end - start > MAX_DICTIONARY_BYTES {
        return None;
    }
    let range = u64::try_from(start).ok()?..u64::try_from(end).ok()?;
    let bytes = store.get_range(&meta.location, range.clone()).await.ok()?;
    let window = Arc::new(Window { range, bytes });
    let mut pages =
        SerializedPageReader::new(window, chunk, usize::try_from(rows).ok()?, None).ok()?;
    match pages.get_next_page().ok()?? {
        Page::DictionaryPage { num_values, .. } => Some(num_values),
        _ => None,
    }
}

/// The bytes of one byte range of a file, read at the file's own offsets.
struct Window {
    range: Range<u64>,
    bytes: Bytes,
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.range.end
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        Ok(bytes::Buf::reader(self.slice_from(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        let from = self.slice_from(start)?;
        if length > from.len() {
            return Err(datafusion::parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at {start} past the dictionary page"
            )));
        }
        Ok(from.slice(0..length))
    }
}

impl Window {
    fn slice_from(&self, start: u64) -> datafusion::parquet::errors::Result<Bytes> {
        if !self.range.contains(&start) {
            return Err(datafusion::parquet::errors::ParquetError::EOF(format!(
                "offset {start} outside the dictionary page"
            )));
        }
        let at = (start - self.range.start) as usize;
        Ok(self.bytes.slice(at..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    /// A two-valued string column gets its count; a column of 2,000 distinct strings and an
    /// integer column get none.
    #[tokio::test(flavor = "multi_thread")]
    async fn counts_come_from_dictionary_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.parquet");
        let ctx = SessionContext::new();
        let copy = format!(
            "COPY (SELECT v AS id, CASE WHEN v % 2 = 0 THEN 'F' ELSE 'O' END AS status, \
             concat('name ', v) AS name FROM generate_series(0, 1999) t(v)) TO '{}'",
            path.display()
        );
        ctx.sql(&copy)
            .await
            .expect("copy")
            .collect()
            .await
            .expect("write");
        ctx.register_parquet(
            "s",
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .expect("register");
        let provider = ctx.table_provider("s").await.expect("provider");
        let state = ctx.state();
        let scan = provider.scan(&state, None, &[], None).await.expect("scan");
        let counts = string_distincts(&scan, &state).await;
        assert_eq!(counts, HashMap::from([("status".to_string(), 2.0)]));
    }
}
