//! Models in the catalog: every training adds an immutable version through the catalog's
//! commit protocol; `name` means the newest version, `name@N` a given one.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};

use super::model::Model;
use crate::catalog::{CatalogStore, ModelEntry};

#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<CatalogStore>,
}

/// `risk` or `risk@2`.
pub fn split_reference(reference: &str) -> Result<(&str, Option<u32>)> {
    match reference.split_once('@') {
        None => Ok((reference, None)),
        Some((name, v)) => v
            .trim()
            .parse::<u32>()
            .map(|v| (name.trim(), Some(v)))
            .map_err(|_| {
                DataFusionError::Plan(format!(
                    "'{reference}': a model version is written name@N, N a number"
                ))
            }),
    }
}

fn external(e: crate::error::AugurError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
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
        let (name, version) = split_reference(reference)?;
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
        let value = match version {
            None => entry.versions.last(),
            Some(v) => entry
                .versions
                .iter()
                .find(|m| m.get("version").and_then(|x| x.as_u64()) == Some(u64::from(v))),
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
                        });
                        let last = catalog.models.len() - 1;
                        &mut catalog.models[last]
                    }
                };
                let newest = entry
                    .versions
                    .iter()
                    .filter_map(|v| v.get("version").and_then(|x| x.as_u64()))
                    .max()
                    .unwrap_or(0);
                model.version = newest as u32 + 1;
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

    /// Drop a model (all versions) or one version (`name@N`).
    pub fn drop(&self, reference: &str, if_exists: bool) -> Result<()> {
        let (name, version) = split_reference(reference)?;
        if self.get(reference).is_err() {
            return if if_exists {
                Ok(())
            } else {
                self.get(reference).map(|_| ())
            };
        }
        self.store
            .commit(|catalog| {
                if let Some(i) = catalog
                    .models
                    .iter()
                    .position(|m| m.name.eq_ignore_ascii_case(name))
                {
                    match version {
                        None => {
                            catalog.models.remove(i);
                        }
                        Some(v) => {
                            catalog.models[i].versions.retain(|m| {
                                m.get("version").and_then(|x| x.as_u64()) != Some(u64::from(v))
                            });
                            if catalog.models[i].versions.is_empty() {
                                catalog.models.remove(i);
                            }
                        }
                    }
                }
                Ok(())
            })
            .map_err(external)
    }
}
