//! The session's answer to "where does training sum its rows?": with `augur.cluster` set, a
//! plan wrapped in a `ClusterExec` for that scheduler and the `augur.cluster_scratch`
//! location; otherwise here.

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;

use super::{AugurOptions, ClusterAddress, cluster_exec::ClusterExec};
use crate::ml::cluster_rows::{Remote, Target};

pub fn remote() -> Remote {
    Remote {
        target: Box::new(|config| {
            let Some(options) = config.extensions.get::<AugurOptions>() else {
                return Ok(None);
            };
            if options.cluster.trim().is_empty() {
                return Ok(None);
            }
            let address = ClusterAddress::parse(&options.cluster)
                .map_err(|e| DataFusionError::Configuration(format!("augur.cluster: {e}")))?;
            Ok(Some(Target {
                wrap: Arc::new(move |plan: Arc<dyn ExecutionPlan>| {
                    Arc::new(ClusterExec::new(address.clone(), plan)) as Arc<dyn ExecutionPlan>
                }),
                scratch: options.cluster_scratch.clone(),
            }))
        }),
    }
}
