//! Models in the catalog: every training adds an immutable version through the catalog's
//! commit protocol; `name` means the newest version, `name@N` a given one, `name@alias` the
//! version an alias (`ALTER MODEL name SET ALIAS champion = N`) points at.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};

use super::model::Model;
use crate::catalog::{CatalogStore, ModelEntry};

#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<CatalogStore>,
}

/// Which version a reference picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Newest,
    Version(u32),
    Alias(String),
}

/// `risk`, `risk@2` or `risk@champion`.
pub fn parse_reference(reference: &str) -> Result<(&str, Selector)> {
    match reference.split_once('@') {
        None => Ok((reference.trim(), Selector::Newest)),
        Some((name, v)) => {
            let v = v.trim();
            if let Ok(n) = v.parse::<u32>() {
                Ok((name.trim(), Selector::Version(n)))
            } else if is_alias(v) {
                Ok((name.trim(), Selector::Alias(v.to_ascii_lowercase())))
            } else {
                Err(DataFusionError::Plan(format!(
                    "'{reference}': a model version is written name@N (N a number) or name@alias"
                )))
            }
        }
    }
}

/// An alias is a name: a letter or `_`, then letters, digits and `_`.
pub fn is_alias(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn version_of(v: &serde_json::Value) -> Option<u32> {
    v.get("version").and_then(|x| x.as_u64()).map(|v| v as u32)
}

/// A refusal inside a commit reads like any planning error; storage failures stay external.
fn external(e: crate::error::AugurError) -> DataFusionError {
    match e {
        crate::error::AugurError::Usage(message) => DataFusionError::Plan(message),
        other => DataFusionError::External(Box::new(other)),
    }
}

impl Registry {
    pub fn new(store: Arc<CatalogStore>) -> Self {
        Registry { store }
    }

    /// Changes whenever the catalog does: lets readers cache models safely.
    pub fn generation(&self) -> u64 {
        self.store.generation()
    }

    pub fn names(&self) -> Vec<String> {
        self.store
            .snapshot()
            .models
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// The model a reference names; unknown names list the models there are.
    pub fn get(&self, reference: &str) -> Result<Model> {
        let (name, selector) = parse_reference(reference)?;
        let catalog = self.store.snapshot();
        let Some(entry) = catalog
            .models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
        else {
            let known: Vec<&str> = catalog.models.iter().map(|m| m.name.as_str()).collect();
            return Err(DataFusionError::Plan(format!(
                "model '{name}' does not exist; {}",
                if known.is_empty() {
                    "no models have been trained yet (TRAIN MODEL …)".to_string()
                } else {
                    format!("models: {}", known.join(", "))
                }
            )));
        };
        let version = match &selector {
            Selector::Newest => None,
            Selector::Version(v) => Some(*v),
            Selector::Alias(a) => Some(*entry.aliases.get(a).ok_or_else(|| {
                let aliases: Vec<String> = entry
                    .aliases
                    .iter()
                    .map(|(a, v)| format!("{a} = {v}"))
                    .collect();
                DataFusionError::Plan(format!(
                    "model '{name}' has no alias '{a}'; {}",
                    if aliases.is_empty() {
                        format!("set one with ALTER MODEL {name} SET ALIAS {a} = <version>")
                    } else {
                        format!("its aliases: {}", aliases.join(", "))
                    }
                ))
            })?),
        };
        let value = match version {
            None => entry.versions.last(),
            Some(v) => entry.versions.iter().find(|m| version_of(m) == Some(v)),
        };
        let value = value.ok_or_else(|| {
            DataFusionError::Plan(format!(
                "model '{name}' has no version {}; SHOW MODELS lists them",
                version.unwrap_or(0)
            ))
        })?;
        serde_json::from_value(value.clone()).map_err(|e| {
            DataFusionError::Execution(format!(
                "model '{reference}' in the catalog is unreadable: {e}"
            ))
        })
    }

    /// The aliases of a model (alias, version), by alias.
    pub fn aliases(&self, name: &str) -> Vec<(String, u32)> {
        self.store
            .snapshot()
            .models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .map(|m| m.aliases.iter().map(|(a, v)| (a.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Point `alias` at `version` of `name` (None: remove it), in one catalog commit.
    pub fn set_alias(&self, name: &str, alias: &str, version: Option<u32>) -> Result<()> {
        let alias = alias.to_ascii_lowercase();
        if !is_alias(&alias) {
            return Err(DataFusionError::Plan(format!(
                "'{alias}' is not an alias: use a name (letters, digits, _), not a number"
            )));
        }
        let known = self.get(name)?;
        let name = known.name.clone();
        self.store
            .commit(|catalog| {
                let Some(entry) = catalog.models.iter_mut().find(|m| m.name == name) else {
                    return Err(crate::error::AugurError::Usage(format!(
                        "model '{name}' does not exist"
                    )));
                };
                match version {
                    Some(v) => {
                        if !entry.versions.iter().any(|m| version_of(m) == Some(v)) {
                            let versions: Vec<String> = entry
                                .versions
                                .iter()
                                .filter_map(version_of)
                                .map(|v| v.to_string())
                                .collect();
                            return Err(crate::error::AugurError::Usage(format!(
                                "model '{name}' has no version {v} to alias; its versions: {}",
                                versions.join(", ")
                            )));
                        }
                        entry.aliases.insert(alias.clone(), v);
                    }
                    None => {
                        if entry.aliases.remove(&alias).is_none() {
                            return Err(crate::error::AugurError::Usage(format!(
                                "model '{name}' has no alias '{alias}'"
                            )));
                        }
                    }
                }
                Ok(())
            })
            .map_err(external)
    }

    /// All versions of every model, oldest first.
    pub fn all(&self) -> Vec<Model> {
        let catalog = self.store.snapshot();
        catalog
            .models
            .iter()
            .flat_map(|m| m.versions.iter())
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// Commit `model` as the next version of its name; returns the version given.
    pub fn add(&self, mut model: Model) -> Result<Model> {
        self.store
            .commit(|catalog| {
                let entry = match catalog
                    .models
                    .iter()
                    .position(|m| m.name.eq_ignore_ascii_case(&model.name))
                {
                    Some(i) => &mut catalog.models[i],
                    None => {
                        catalog.models.push(ModelEntry {
                            name: model.name.clone(),
                            versions: vec![],
                            aliases: Default::default(),
                        });
                        let last = catalog.models.len() - 1;
                        &mut catalog.models[last]
                    }
                };
                let newest = entry
                    .versions
                    .iter()
                    .filter_map(version_of)
                    .max()
                    .unwrap_or(0);
                model.version = newest + 1;
                model.name = entry.name.clone();
                let value = serde_json::to_value(&model).map_err(|e| {
                    crate::error::AugurError::Database(format!("cannot encode model: {e}"))
                })?;
                entry.versions.push(value);
                Ok(())
            })
            .map_err(external)?;
        Ok(model)
    }

    /// Drop a model (all versions) or one version (`name@N`, `name@alias`). A version an
    /// alias points at stays until the alias moves or is dropped.
    pub fn drop(&self, reference: &str, if_exists: bool) -> Result<()> {
        let (_, selector) = parse_reference(reference)?;
        let model = match self.get(reference) {
            Ok(m) => m,
            Err(_) if if_exists => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = model.name.clone();
        let version = (selector != Selector::Newest).then_some(model.version);
        self.store
            .commit(|catalog| {
                let Some(i) = catalog.models.iter().position(|m| m.name == name) else {
                    return Ok(());
                };
                let Some(v) = version else {
                    catalog.models.remove(i);
                    return Ok(());
                };
                let entry = &mut catalog.models[i];
                if let Some((alias, _)) = entry.aliases.iter().find(|(_, a)| **a == v) {
                    return Err(crate::error::AugurError::Usage(format!(
                        "version {v} of model '{name}' is aliased '{alias}': move the alias \
                         (ALTER MODEL {name} SET ALIAS {alias} = N) or drop it \
                         (ALTER MODEL {name} DROP ALIAS {alias}) first"
                    )));
                }
                entry.versions.retain(|m| version_of(m) != Some(v));
                if entry.versions.is_empty() {
                    catalog.models.remove(i);
                }
                Ok(())
            })
            .map_err(external)
    }
}
