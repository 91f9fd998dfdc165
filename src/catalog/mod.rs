//! The persistent database directory: the catalog file and its commit protocol, stored tables, the schema provider.

pub mod analyze;
pub mod delta_after_insert;
pub mod delta_dml;
pub mod delta_sources;
pub mod delta_table;
pub mod float_bits;
pub mod legacy_table;
pub mod schema;
pub mod statistics;
pub mod store;
pub mod undo;
pub mod unreachable;
pub mod upgrade;

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{AugurError, Result};
pub use delta_table::DeltaProvider;
pub use legacy_table::LegacyTable;
pub use schema::DatabaseSchema;
pub use store::{CatalogStore, ColumnEntry, Entry, FunctionEntry, ModelEntry};

/// Rows per Parquet row group in files Augur writes (COPY, stored tables): scans split
/// across cores by row group, and pruning has statistics fine enough to skip.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Whether scanning `provider` changes what is stored: the relations `ANALYZE` (statistics
/// into the catalog), `OPTIMIZE` and `VACUUM` (files of a Delta table) are planned as, which a
/// read-only session refuses however they are written.
pub fn writes_when_scanned(provider: &dyn datafusion::datasource::TableProvider) -> bool {
    analyze::is_analyze(provider) || delta_sources::is_maintenance(provider)
}

/// Rebuild an Arrow schema from the column list stored in `catalog.json`.
pub fn schema_from_columns(table: &str, columns: &[ColumnEntry]) -> Result<SchemaRef> {
    let fields = columns
        .iter()
        .map(|c| {
            let data_type = DataType::from_str(&c.data_type).map_err(|e| {
                AugurError::Database(format!(
                    "catalog entry for table '{table}' has column '{}' of unknown type '{}': {e}",
                    c.name, c.data_type
                ))
            })?;
            Ok(Field::new(&c.name, data_type, c.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}
