//! Databases made before stored tables were Delta tables: each legacy table (Parquet files
//! listed in `catalog.json`) is copied once into a Delta table, then the catalog entry is
//! switched in one commit and the old files deleted. A crash before the commit leaves the
//! legacy table as it was (the half-written copy is removed at the next open).

use std::sync::Arc;

use datafusion::datasource::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::collect;

use super::delta_table::DeltaProvider;
use super::legacy_table::LegacyTable;
use super::store::{CATALOG_FORMAT, CatalogStore, Entry};
use crate::error::{AugurError, Result};

/// Copy `legacy` into a new Delta table and commit the switch; returns the new table.
pub async fn to_delta(
    store: &Arc<CatalogStore>,
    runtime: &Arc<RuntimeEnv>,
    name: &str,
    legacy: LegacyTable,
    compact_after: usize,
) -> Result<Arc<dyn TableProvider>> {
    let old_files = legacy.files().to_vec();
    let location = store.new_table_location(name);
    let copied = copy(store, runtime, name, &location, legacy).await;
    let table = match copied {
        Ok(table) => table,
        Err(e) => {
            store.remove_unreferenced(&[location]);
            return Err(AugurError::Database(format!(
                "cannot upgrade table '{name}' to a Delta table: {e}; the database is unchanged"
            )));
        }
    };
    store.commit(|catalog| {
        catalog.format = CATALOG_FORMAT;
        match catalog.entries.iter_mut().find(|e| e.name() == name) {
            Some(entry) => {
                *entry = Entry::Delta {
                    name: name.to_string(),
                    location: location.clone(),
                };
                Ok(())
            }
            None => Err(AugurError::Database(format!(
                "table '{name}' vanished from the catalog during its upgrade"
            ))),
        }
    })?;
    store.remove_unreferenced(&old_files);
    eprintln!(
        "note: table '{name}' was upgraded to a Delta table ({location}); its rows are unchanged"
    );
    Ok(Arc::new(table.compact_after(compact_after)))
}

async fn copy(
    store: &Arc<CatalogStore>,
    runtime: &Arc<RuntimeEnv>,
    name: &str,
    location: &str,
    legacy: LegacyTable,
) -> Result<DeltaProvider> {
    let state = SessionStateBuilder::new()
        .with_runtime_env(Arc::clone(runtime))
        .with_default_features()
        .build();
    let schema = legacy.schema();
    let table = DeltaProvider::create(runtime, name, &store.table_location(location), &schema, &[])
        .await?
        .stored_at(location);
    let rows = legacy.scan(&state, None, &[], None).await?;
    let rows = super::delta_table::single_partition(rows);
    let insert = table.insert_into(&state, rows, InsertOp::Append).await?;
    collect(insert, state.task_ctx()).await?;
    Ok(table)
}
