//! The database directory on disk: lock file, `catalog.json`, and the atomic commit protocol (DESIGN §4).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::undo::Locks;
use crate::error::{AugurError, Result};

/// Version of the `catalog.json` layout; bumped on incompatible changes (2: stored tables
/// are Delta tables).
pub const CATALOG_FORMAT: u32 = 2;
const CATALOG_FILE: &str = "catalog.json";
const LOCK_FILE: &str = "augur.lock";
pub const DATA_DIR: &str = "data";
/// Stored tables' Delta table directories.
pub const TABLES_DIR: &str = "tables";
pub const TMP_DIR: &str = "tmp";

/// One column of a stored table, as written in `catalog.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnEntry {
    pub name: String,
    /// Arrow type in its `Display` form (`Int64`, `Utf8`, `Timestamp(ns)`…), parsed back with `FromStr`.
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// One catalog object. Order matters: views are re-created in the order they were defined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A table whose data is Parquet inside the directory: exactly the listed files, nothing else.
    Table {
        name: String,
        columns: Vec<ColumnEntry>,
        files: Vec<String>,
    },
    /// A stored table kept as a Delta table: the directory (relative to the database
    /// directory) or, in an in-memory database, the `memory://` URL of its Delta log.
    Delta { name: String, location: String },
    /// A view, re-created from its SQL at open.
    View { name: String, sql: String },
    /// An external table (files elsewhere), re-created from its SQL at open.
    External { name: String, sql: String },
}

impl Entry {
    /// What the entry keeps on disk, relative to the database directory: a legacy table's
    /// Parquet files, a Delta table's directory.
    pub fn data(&self) -> Vec<String> {
        match self {
            Entry::Table { files, .. } => files.clone(),
            Entry::Delta { location, .. } if !location.contains("://") => vec![location.clone()],
            _ => vec![],
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Entry::Table { name, .. }
            | Entry::Delta { name, .. }
            | Entry::View { name, .. }
            | Entry::External { name, .. } => name,
        }
    }
}

/// A trained model: its immutable versions (JSON artifacts), oldest first, and the
/// aliases (`champion`, `challenger`, …) that point at versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    pub versions: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aliases: std::collections::BTreeMap<String, u32>,
}

/// A user function: its name and the CREATE FUNCTION statement that defines it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionEntry {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogFile {
    pub format: u32,
    /// Incremented by every commit; lets a reader tell two states apart.
    pub generation: u64,
    pub entries: Vec<Entry>,
    /// Models live in their own namespace: a model may share a table's name.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// User functions (CREATE FUNCTION), kept as the statement that created them.
    #[serde(default)]
    pub functions: Vec<FunctionEntry>,
    /// What `ANALYZE` measured, per table (`statistics.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statistics: Vec<super::statistics::TableStatistics>,
}

impl CatalogFile {
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name() == name)
    }

    /// Remove `name`'s entry and, with it, what `ANALYZE` measured of it.
    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        self.remove_statistics(name);
        let pos = self.entries.iter().position(|e| e.name() == name)?;
        Some(self.entries.remove(pos))
    }
}

/// The persisted catalog: in memory for an in-memory database, else the directory.
#[derive(Debug)]
pub struct CatalogStore {
    dir: Option<PathBuf>,
    /// Held for the life of the process: the OS drops the lock if we die.
    _lock: Option<File>,
    state: Mutex<CatalogFile>,
    file_counter: AtomicU64,
    locks: Locks,
}

impl CatalogStore {
    pub fn in_memory() -> Self {
        CatalogStore {
            dir: None,
            _lock: None,
            state: Mutex::new(CatalogFile {
                format: CATALOG_FORMAT,
                ..Default::default()
            }),
            file_counter: AtomicU64::new(0),
            locks: Locks::default(),
        }
    }

    /// Open or create the database directory `dir`, take its lock, read the catalog and
    /// remove files that no committed catalog references (left by a crash mid-write).
    pub fn open(dir: &Path) -> Result<Self> {
        let describe = |what: &str, e: std::io::Error| {
            AugurError::Database(format!(
                "cannot {what} database directory '{}': {e}{}",
                dir.display(),
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                {
                    " (check its permissions, or open another PATH)"
                } else {
                    ""
                }
            ))
        };
        if dir.exists() && !dir.is_dir() {
            return Err(AugurError::Database(format!(
                "'{}' exists and is not a directory: give a new or existing database directory",
                dir.display()
            )));
        }
        let fresh = !dir.join(CATALOG_FILE).exists();
        if fresh
            && dir.exists()
            && fs::read_dir(dir)
                .map_err(|e| describe("read", e))?
                .next()
                .is_some()
        {
            return Err(AugurError::Database(format!(
                "'{}' is a non-empty directory without {CATALOG_FILE}: it is not an Augur database; \
                 give an empty or new directory",
                dir.display()
            )));
        }
        fs::create_dir_all(dir.join(DATA_DIR)).map_err(|e| describe("create", e))?;
        fs::create_dir_all(dir.join(TABLES_DIR)).map_err(|e| describe("create", e))?;
        fs::create_dir_all(dir.join(TMP_DIR)).map_err(|e| describe("create", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| describe("lock", e))?;
        if lock.try_lock().is_err() {
            return Err(AugurError::Database(format!(
                "database '{}' is in use by another Augur process (lock file {}); \
                 close that process or open a different directory",
                dir.display(),
                dir.join(LOCK_FILE).display()
            )));
        }
        let state = if fresh {
            CatalogFile {
                format: CATALOG_FORMAT,
                ..Default::default()
            }
        } else {
            read_catalog(&dir.join(CATALOG_FILE))?
        };
        let store = CatalogStore {
            dir: Some(dir.to_path_buf()),
            _lock: Some(lock),
            state: Mutex::new(state),
            file_counter: AtomicU64::new(0),
            locks: Locks::default(),
        };
        if fresh {
            let snapshot = store.snapshot();
            store.write_catalog(&snapshot)?;
        }
        store.collect_garbage();
        Ok(store)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn generation(&self) -> u64 {
        self.lock_state().generation
    }

    pub fn snapshot(&self) -> CatalogFile {
        self.lock_state().clone()
    }

    /// Look at the current catalog without copying it.
    pub fn read<T>(&self, look: impl FnOnce(&CatalogFile) -> T) -> T {
        look(&self.lock_state())
    }

    /// Pins and claims of open transaction blocks.
    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// Delete those of `candidates` that no committed table and no undo image refers to.
    pub fn remove_unreferenced(&self, candidates: &[String]) {
        let doomed = {
            let state = self.lock_state();
            super::undo::unreferenced(&state, &self.locks, candidates)
        };
        for rel in doomed {
            if let Some(path) = self.absolute(&rel) {
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, CatalogFile> {
        // A panic while holding the lock cannot leave a half-applied state: changes are
        // applied to a copy and swapped in only after the commit succeeded.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Apply `change` to a copy of the catalog, commit it durably, then make it current.
    /// If `change` or the commit fails, nothing changes, on disk or in memory.
    pub fn commit<T>(&self, change: impl FnOnce(&mut CatalogFile) -> Result<T>) -> Result<T> {
        let mut state = self.lock_state();
        let mut next = state.clone();
        let out = change(&mut next)?;
        next.generation += 1;
        next.format = CATALOG_FORMAT;
        self.write_catalog(&next)?;
        *state = next;
        Ok(out)
    }

    /// A fresh, never-reused location for a new stored table's Delta directory: relative
    /// to the database directory, or a `memory://` URL in an in-memory database.
    pub fn new_table_location(&self, table: &str) -> String {
        let unique = self.unique_name(table);
        match &self.dir {
            Some(_) => format!("{TABLES_DIR}/{unique}"),
            None => format!("memory:///{TABLES_DIR}/{unique}/"),
        }
    }

    /// Where a stored table's Delta directory is, for opening it: absolute path or URL.
    pub fn table_location(&self, location: &str) -> String {
        match self.absolute(location) {
            Some(path) if !location.contains("://") => path.to_string_lossy().into_owned(),
            _ => location.to_string(),
        }
    }

    /// `table` made safe for a file name, with a suffix no other call returns.
    fn unique_name(&self, table: &str) -> String {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        let safe: String = table
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        format!("{safe}-{stamp:x}-{}-{n}", std::process::id())
    }

    pub fn absolute(&self, rel: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(rel))
    }

    fn write_catalog(&self, catalog: &CatalogFile) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let text = serde_json::to_vec_pretty(catalog)
            .map_err(|e| AugurError::Database(format!("cannot encode catalog: {e}")))?;
        let tmp = dir.join(format!("{CATALOG_FILE}.tmp"));
        let fail = |e: std::io::Error| {
            let _ = fs::remove_file(&tmp);
            AugurError::Database(format!(
                "cannot commit to database '{}': {e}; nothing was changed{}",
                dir.display(),
                hint_for_io(&e)
            ))
        };
        let mut f = File::create(&tmp).map_err(fail)?;
        f.write_all(&text).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        fs::rename(&tmp, dir.join(CATALOG_FILE)).map_err(fail)?;
        sync_dir(dir).map_err(fail)?;
        Ok(())
    }

    /// Delete data files and table directories no committed entry references (a crash
    /// between writing a table and committing it leaves them), and leftovers in `tmp/`.
    pub fn collect_garbage(&self) {
        let Some(dir) = &self.dir else { return };
        let live: std::collections::HashSet<String> = self
            .lock_state()
            .entries
            .iter()
            .flat_map(Entry::data)
            .collect();
        for sub in [DATA_DIR, TABLES_DIR] {
            if let Ok(listing) = fs::read_dir(dir.join(sub)) {
                for file in listing.flatten() {
                    let rel = format!("{sub}/{}", file.file_name().to_string_lossy());
                    if !live.contains(&rel) {
                        let _ = fs::remove_dir_all(file.path())
                            .or_else(|_| fs::remove_file(file.path()));
                    }
                }
            }
        }
        if let Ok(listing) = fs::read_dir(dir.join(TMP_DIR)) {
            for file in listing.flatten() {
                let _ = fs::remove_dir_all(file.path()).or_else(|_| fs::remove_file(file.path()));
            }
        }
        let _ = fs::remove_file(dir.join(format!("{CATALOG_FILE}.tmp")));
    }
}

fn read_catalog(path: &Path) -> Result<CatalogFile> {
    let bytes = fs::read(path).map_err(|e| {
        AugurError::Database(format!("cannot read catalog '{}': {e}", path.display()))
    })?;
    let catalog: CatalogFile = serde_json::from_slice(&bytes).map_err(|e| {
        AugurError::Database(format!(
            "catalog '{}' is not valid ({e}); it was not written by Augur or was edited by hand",
            path.display()
        ))
    })?;
    if catalog.format > CATALOG_FORMAT {
        return Err(AugurError::Database(format!(
            "catalog '{}' has format {} but this Augur reads format {CATALOG_FORMAT} at most: \
             upgrade Augur",
            path.display(),
            catalog.format
        )));
    }
    Ok(catalog)
}

/// fsync a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

pub fn hint_for_io(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            " (the disk is full: free space and retry)"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            " (the directory is not writable: check its permissions)"
        }
        _ => "",
    }
}
