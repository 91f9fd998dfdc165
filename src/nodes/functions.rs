//! The functions a cluster must know to decode Augur's plans: DataFusion's, augur-udfs, the
//! Postgres compatibility functions — taken from an in-memory Augur session, so the list is
//! the session's own and never drifts from it. Plans carry functions by name.

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionConfig;

use crate::database::Database;
use crate::error::Result;

/// Scalar, aggregate and window functions by every name they answer to.
#[derive(Clone, Debug)]
pub struct Functions {
    scalar: HashMap<String, Arc<ScalarUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    window: HashMap<String, Arc<WindowUDF>>,
}

impl Functions {
    pub async fn of_a_session() -> Result<Functions> {
        let db = Database::in_memory().await?;
        let state = db.session()?.context().state();
        Ok(Functions {
            scalar: state.scalar_functions().clone(),
            aggregate: state.aggregate_functions().clone(),
            window: state.window_functions().clone(),
        })
    }

    /// The executor's registry (Ballista looks functions up there by name).
    pub fn registry(&self) -> BallistaFunctionRegistry {
        BallistaFunctionRegistry {
            scalar_functions: self.scalar.clone(),
            aggregate_functions: self.aggregate.clone(),
            window_functions: self.window.clone(),
            higher_order_functions: BallistaFunctionRegistry::default().higher_order_functions,
        }
    }

    /// A session state for the scheduler, which decodes submitted plans with it (a file scan
    /// is decoded against the object store of its URL, so `runtime` must have Augur's).
    pub fn session_state(&self, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
        SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_scalar_functions(unique(&self.scalar))
            .with_aggregate_functions(unique(&self.aggregate))
            .with_window_functions(unique(&self.window))
            .build()
    }
}

/// Each function once (the maps hold one entry per alias).
fn unique<T>(by_name: &HashMap<String, Arc<T>>) -> Vec<Arc<T>> {
    let mut seen = std::collections::HashSet::new();
    by_name
        .values()
        .filter(|f| seen.insert(Arc::as_ptr(f) as *const () as usize))
        .cloned()
        .collect()
}
