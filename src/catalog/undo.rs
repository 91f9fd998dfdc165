//! Undo for transaction blocks: each object a block changes is captured as it was before
//! the block's first change to it, and put back, in one catalog commit, on ROLLBACK.
//!
//! Two shared registries make that safe while other connections work: data files an undo
//! image still needs are *pinned* (a DROP or replace inside the block leaves them on disk
//! until the block ends), and objects a block changed are *claimed* (other connections may
//! read them but not change them until the block ends, so a rollback never discards
//! someone else's write).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::datasource::TableProvider;

use super::delta_table::{DeltaProvider, block_on};
use super::schema::DatabaseSchema;
use super::store::{CatalogFile, CatalogStore, Entry, FunctionEntry, ModelEntry};
use crate::error::Result;

/// A catalog object a statement changes. Names as the catalog keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    /// A stored table, view or external table (they share one namespace).
    Relation(String),
    Model(String),
    Function(String),
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectKey::Relation(n) => write!(f, "table '{n}'"),
            ObjectKey::Model(n) => write!(f, "model '{n}'"),
            ObjectKey::Function(n) => write!(f, "function '{n}'"),
        }
    }
}

/// Files kept for undo images, and objects held by open transaction blocks.
#[derive(Debug, Default)]
pub struct Locks {
    pins: Mutex<HashMap<String, usize>>,
    claims: Mutex<HashMap<ObjectKey, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Locks {
    pub fn is_pinned(&self, file: &str) -> bool {
        lock(&self.pins).contains_key(file)
    }

    fn pin(&self, files: &[String]) {
        let mut pins = lock(&self.pins);
        for f in files {
            *pins.entry(f.clone()).or_default() += 1;
        }
    }

    fn unpin(&self, files: &[String]) {
        let mut pins = lock(&self.pins);
        for f in files {
            if let Some(n) = pins.get_mut(f) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(f);
                }
            }
        }
    }

    /// Hold `key` for `owner`'s block; `Err(other)` if another block holds it.
    pub fn claim(&self, key: &ObjectKey, owner: u64) -> std::result::Result<(), u64> {
        let mut claims = lock(&self.claims);
        match claims.get(key) {
            Some(&other) if other != owner => Err(other),
            _ => {
                claims.insert(key.clone(), owner);
                Ok(())
            }
        }
    }

    /// Whether `key` may be changed by `owner` (no other block holds it).
    pub fn is_free_for(&self, key: &ObjectKey, owner: u64) -> bool {
        lock(&self.claims).get(key).is_none_or(|&o| o == owner)
    }

    pub fn release(&self, owner: u64) {
        lock(&self.claims).retain(|_, o| *o != owner);
    }
}

/// What an object was before a block changed it.
#[derive(Debug)]
enum Before {
    Relation {
        entry: Option<Entry>,
        /// The live provider as it was: stored tables are copied (their rows change in place).
        provider: Option<Arc<dyn TableProvider>>,
        /// A Delta table's version before the block changed it: a rollback restores it.
        version: Option<u64>,
    },
    Model(Option<ModelEntry>),
    Function(Option<FunctionEntry>),
}

/// One object's undo image.
#[derive(Debug)]
pub struct Undo {
    key: ObjectKey,
    before: Before,
}

impl Undo {
    /// Capture `key` as it is now, pinning the data files the image refers to.
    pub fn capture(schema: &DatabaseSchema, key: ObjectKey) -> Undo {
        let store = schema.store();
        let before = match &key {
            ObjectKey::Relation(name) => {
                let provider = schema.provider(name);
                let version = provider
                    .as_ref()
                    .and_then(|p| p.downcast_ref::<DeltaProvider>())
                    .filter(|d| !d.is_external())
                    .and_then(|d| block_on(d.version()).ok());
                Before::Relation {
                    entry: store.read(|c| c.find(name).cloned()),
                    provider,
                    version,
                }
            }
            ObjectKey::Model(name) => {
                Before::Model(store.read(|c| c.models.iter().find(|m| &m.name == name).cloned()))
            }
            ObjectKey::Function(name) => Before::Function(
                store.read(|c| c.functions.iter().find(|f| &f.name == name).cloned()),
            ),
        };
        let undo = Undo { key, before };
        store.locks().pin(&undo.files());
        undo
    }

    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    fn files(&self) -> Vec<String> {
        match &self.before {
            Before::Relation {
                entry: Some(entry), ..
            } => entry.data(),
            _ => vec![],
        }
    }

    fn apply(&self, catalog: &mut CatalogFile) {
        match (&self.key, &self.before) {
            (ObjectKey::Relation(name), Before::Relation { entry, .. }) => {
                let at = catalog.entries.iter().position(|e| e.name() == name);
                match (at, entry.clone()) {
                    (Some(i), Some(e)) => catalog.entries[i] = e,
                    (Some(i), None) => {
                        catalog.entries.remove(i);
                    }
                    // Views are re-created in order at open and may use anything before
                    // them; tables and external tables use nothing, so they go first.
                    (None, Some(e @ Entry::View { .. })) => catalog.entries.push(e),
                    (None, Some(e)) => catalog.entries.insert(0, e),
                    (None, None) => {}
                }
            }
            (ObjectKey::Model(name), Before::Model(model)) => {
                put(&mut catalog.models, |m| &m.name == name, model.clone())
            }
            (ObjectKey::Function(name), Before::Function(function)) => put(
                &mut catalog.functions,
                |f| &f.name == name,
                function.clone(),
            ),
            _ => {}
        }
    }
}

fn put<T>(items: &mut Vec<T>, is: impl Fn(&T) -> bool, value: Option<T>) {
    let at = items.iter().position(is);
    match (at, value) {
        (Some(i), Some(v)) => items[i] = v,
        (Some(i), None) => {
            items.remove(i);
        }
        (None, Some(v)) => items.push(v),
        (None, None) => {}
    }
}

fn table_files(store: &CatalogStore, names: &[&str]) -> Vec<String> {
    store.read(|c| {
        names
            .iter()
            .filter_map(|n| c.find(n))
            .flat_map(Entry::data)
            .collect()
    })
}

/// Put every object in `undos` back as it was, newest change first, in one commit; then
/// delete the data files only the undone changes used.
pub fn restore(schema: &DatabaseSchema, undos: Vec<Undo>) -> Result<()> {
    if undos.is_empty() {
        return Ok(());
    }
    let store = schema.store();
    let relations: Vec<&str> = undos
        .iter()
        .filter_map(|u| match &u.key {
            ObjectKey::Relation(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let written = table_files(store, &relations);
    let commit = store.commit(|catalog| {
        for undo in undos.iter().rev() {
            undo.apply(catalog);
        }
        Ok(())
    });
    let mut restored = Ok(());
    if commit.is_ok() {
        for undo in undos.iter().rev() {
            if let (
                ObjectKey::Relation(name),
                Before::Relation {
                    provider, version, ..
                },
            ) = (&undo.key, &undo.before)
            {
                schema.set_provider(name, provider.clone());
                // A Delta table the block wrote to goes back to its version before the
                // block, as a new commit (its history shows the rollback).
                if let (Some(delta), Some(v)) = (
                    provider
                        .as_ref()
                        .and_then(|p| p.downcast_ref::<DeltaProvider>()),
                    version,
                ) && let Err(e) = block_on(delta.restore(*v))
                {
                    restored = Err(crate::error::AugurError::Database(format!(
                        "could not roll back table '{name}' to version {v}: {e}"
                    )));
                }
            }
        }
    }
    let mut candidates = written;
    candidates.extend(forget(store, undos));
    if commit.is_ok() {
        store.remove_unreferenced(&candidates);
    }
    commit.and(restored)
}

/// Keep the block's changes (COMMIT): the images are dropped and files that only they
/// kept (of tables the block dropped or replaced) are deleted.
pub fn discard(schema: &DatabaseSchema, undos: Vec<Undo>) {
    let store = schema.store();
    let files = forget(store, undos);
    store.remove_unreferenced(&files);
}

/// Unpin the images' files; returns them.
fn forget(store: &CatalogStore, undos: Vec<Undo>) -> Vec<String> {
    let files: Vec<String> = undos.iter().flat_map(Undo::files).collect();
    store.locks().unpin(&files);
    files
}

/// The files among `candidates` that no committed table and no pin refers to.
pub(super) fn unreferenced(
    catalog: &CatalogFile,
    locks: &Locks,
    candidates: &[String],
) -> Vec<String> {
    let live: HashSet<String> = catalog.entries.iter().flat_map(Entry::data).collect();
    candidates
        .iter()
        .filter(|f| !live.contains(f.as_str()) && !locks.is_pinned(f))
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}
