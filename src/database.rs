//! `Database`: the embedding entry point. Opens a directory (or memory), owns the catalog,
//! the memory pool and spill directory shared by all its sessions.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::catalog::unreachable::Unreachable;
use crate::catalog::{self, CatalogStore, DatabaseSchema, DeltaProvider, Entry, LegacyTable};
use crate::config::{DatabaseConfig, default_memory_limit, format_size};
use crate::error::{AugurError, Result};
use crate::session::Session;
use crate::storage::object_stores::StoreRegistry;

/// An open database. Cheap to clone; every clone and every session shares one catalog.
#[derive(Clone, Debug)]
pub struct Database {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<CatalogStore>,
    schema: Arc<DatabaseSchema>,
    runtime: Arc<RuntimeEnv>,
    object_stores: Arc<StoreRegistry>,
    config: DatabaseConfig,
    memory_limit: usize,
}

impl Database {
    /// Open (or create) the database directory in `config.path`, or an in-memory database.
    pub async fn open(config: DatabaseConfig) -> Result<Database> {
        let store = Arc::new(match &config.path {
            Some(path) => CatalogStore::open(path)?,
            None => CatalogStore::in_memory(),
        });
        let memory_limit = config.memory_limit.unwrap_or_else(default_memory_limit);
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(memory_limit),
            NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        ));
        let object_stores = Arc::new(
            StoreRegistry::new(store.dir().map(|d| d.to_path_buf()))
                .map_err(AugurError::Database)?,
        );
        let mut runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .with_object_store_registry(Arc::clone(&object_stores) as _);
        if let Some(dir) = store.dir() {
            runtime = runtime.with_temp_file_path(dir.join(catalog::store::TMP_DIR));
        }
        let runtime = runtime.build_arc()?;
        // Stored tables of an in-memory database are Delta tables in this process's memory.
        if let Ok(url) = url::Url::parse("memory:///") {
            let store = crate::storage::memory_store::AccountedMemory::new(&pool);
            runtime.register_object_store(&url, Arc::new(store));
        }
        let schema = Arc::new(DatabaseSchema::new(Arc::clone(&store)));
        let db = Database {
            inner: Arc::new(Inner {
                store,
                schema,
                runtime,
                object_stores,
                config,
                memory_limit,
            }),
        };
        db.restore().await?;
        Ok(db)
    }

    /// An in-memory database with default settings.
    pub async fn in_memory() -> Result<Database> {
        Database::open(DatabaseConfig::default()).await
    }

    /// A new session: its own settings (`SET …`), the database's tables.
    pub fn session(&self) -> Result<Session> {
        Session::new(self.clone())
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.inner.config.path.as_ref()
    }

    pub fn config(&self) -> &DatabaseConfig {
        &self.inner.config
    }

    /// Files a stored table may have before an INSERT compacts it (0: never).
    pub fn auto_compact_files(&self) -> usize {
        self.inner
            .config
            .auto_compact_files
            .unwrap_or(catalog::delta_after_insert::DEFAULT_MAX_FILES)
    }

    pub fn memory_limit(&self) -> usize {
        self.inner.memory_limit
    }

    pub(crate) fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.inner.schema
    }

    pub(crate) fn store(&self) -> &Arc<CatalogStore> {
        &self.inner.store
    }

    pub(crate) fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.inner.runtime
    }

    /// Object stores (S3, HTTP) and the credentials that must never be printed.
    pub(crate) fn object_stores(&self) -> &Arc<StoreRegistry> {
        &self.inner.object_stores
    }

    /// Re-create every committed object: stored tables (format-1 ones upgraded), views and
    /// external tables by re-running their SQL, in the order they were created.
    async fn restore(&self) -> Result<()> {
        let entries = self.inner.store.snapshot().entries;
        if entries.is_empty() {
            return Ok(());
        }
        let session = self.session()?;
        let schema = &self.inner.schema;
        schema.set_replaying(true);
        let mut result = Ok(());
        for entry in entries {
            match entry {
                Entry::Table {
                    name,
                    columns,
                    files,
                } => match catalog::schema_from_columns(&name, &columns) {
                    Ok(arrow_schema) => {
                        let table =
                            LegacyTable::new(arrow_schema, Arc::clone(&self.inner.store), files);
                        match crate::catalog::upgrade::to_delta(
                            &self.inner.store,
                            self.runtime(),
                            &name,
                            table,
                            self.auto_compact_files(),
                        )
                        .await
                        {
                            Ok(delta) => schema.insert_loaded(&name, delta),
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
                Entry::Delta { name, location } => {
                    let path = self.inner.store.table_location(&location);
                    match DeltaProvider::open(self.runtime(), &name, &path, None).await {
                        Ok(table) => schema.insert_loaded(
                            &name,
                            Arc::new(
                                table
                                    .stored_at(&location)
                                    .compact_after(self.auto_compact_files()),
                            ),
                        ),
                        Err(e) => {
                            result = Err(AugurError::Database(format!(
                                "cannot open table '{name}' ({path}): {e}"
                            )));
                            break;
                        }
                    }
                }
                Entry::View { name, sql } => {
                    if let Err(e) = session.execute_to_end(&sql).await {
                        // The object stays in catalog.json; the user can fix what it depends on.
                        eprintln!("warning: could not restore '{name}': {e}");
                    }
                }
                Entry::External { name, sql } => {
                    if let Err(e) = session.execute_to_end(&sql).await {
                        // It stays in the catalog and in SHOW TABLES; queries get the cause.
                        eprintln!("warning: could not open table '{name}': {e}");
                        let placeholder = Unreachable::new(&name, &sql, &e);
                        schema.insert_loaded(&name, Arc::new(placeholder));
                    }
                }
            }
        }
        schema.set_replaying(false);
        result
    }

    /// A one-line description for banners: where the data lives and the memory limit.
    pub fn describe(&self) -> String {
        let place = match self.path() {
            Some(p) => format!("database {}", p.display()),
            None => "in-memory database".to_string(),
        };
        format!("{place}, memory limit {}", format_size(self.memory_limit()))
    }
}

impl From<AugurError> for datafusion::error::DataFusionError {
    fn from(e: AugurError) -> Self {
        match e {
            AugurError::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}
