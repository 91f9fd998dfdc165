//! The `public` schema as DataFusion sees it: live table providers, kept in step with `catalog.json`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::TableType;

use super::delta_table::DeltaProvider;
use super::store::{CatalogStore, Entry};

/// Every registration and removal is committed to the store before it becomes visible,
/// so a failed commit (full disk, read-only directory) changes nothing.
#[derive(Debug)]
pub struct DatabaseSchema {
    store: Arc<CatalogStore>,
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    /// True while re-creating views and external tables at open: they are already committed.
    replaying: AtomicBool,
}

impl DatabaseSchema {
    pub fn new(store: Arc<CatalogStore>) -> Self {
        DatabaseSchema {
            store,
            tables: RwLock::default(),
            replaying: AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &Arc<CatalogStore> {
        &self.store
    }

    pub fn set_replaying(&self, on: bool) {
        self.replaying.store(on, Ordering::SeqCst);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn TableProvider>>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn TableProvider>>> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a provider that is already committed (used when opening a database).
    pub fn insert_loaded(&self, name: &str, table: Arc<dyn TableProvider>) {
        self.write().insert(name.to_string(), table);
    }

    /// Register `table` under `name`, committing its definition first. With `replace`, an
    /// existing object of that name is swapped out in the same commit.
    pub fn put_table(
        &self,
        name: &str,
        table: Arc<dyn TableProvider>,
        replace: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut tables = self.write();
        if !replace && tables.contains_key(name) {
            return Err(DataFusionError::Plan(format!(
                "table '{name}' already exists; drop it first or use CREATE OR REPLACE"
            )));
        }
        if !self.replaying.load(Ordering::SeqCst)
            && let Some(entry) = entry_for(name, table.as_ref())
        {
            let dropped = self
                .store
                .commit(|catalog| {
                    let old = catalog.remove(name);
                    catalog.entries.push(entry);
                    Ok(old)
                })
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            self.remove_files_of(dropped);
        }
        Ok(tables.insert(name.to_string(), table))
    }

    /// Delete a dropped or replaced table's files, except those an open transaction
    /// block may still put back (they go when the block ends).
    fn remove_files_of(&self, entry: Option<Entry>) {
        if let Some(entry) = entry {
            self.store.remove_unreferenced(&entry.data());
        }
    }

    /// The live provider registered under `name`.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.read().get(name).cloned()
    }

    /// Register or remove a provider whose catalog entry is already committed (undo).
    pub fn set_provider(&self, name: &str, provider: Option<Arc<dyn TableProvider>>) {
        let mut tables = self.write();
        match provider {
            Some(p) => tables.insert(name.to_string(), p),
            None => tables.remove(name),
        };
    }
}

/// What `catalog.json` records for a provider, or `None` for session-only providers
/// (registered through the embedding API) that have no durable definition.
fn entry_for(name: &str, table: &dyn TableProvider) -> Option<Entry> {
    if let Some(location) = table
        .downcast_ref::<DeltaProvider>()
        .and_then(DeltaProvider::catalog_location)
    {
        return Some(Entry::Delta {
            name: name.to_string(),
            location: location.to_string(),
        });
    }
    let sql = table.get_table_definition()?.to_string();
    Some(match table.table_type() {
        TableType::View => Entry::View {
            name: name.to_string(),
            sql,
        },
        _ => Entry::External {
            name: name.to_string(),
            sql,
        },
    })
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.read().get(name).cloned())
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.put_table(&name, table, false)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut tables = self.write();
        if !tables.contains_key(name) {
            return Ok(None);
        }
        if !self.replaying.load(Ordering::SeqCst) && self.store.snapshot().find(name).is_some() {
            let dropped = self
                .store
                .commit(|catalog| Ok(catalog.remove(name)))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            self.remove_files_of(dropped);
        }
        Ok(tables.remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }
}
