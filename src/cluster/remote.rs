//! The session's answer to "where does training sum its rows?": with `augur.cluster` set, a
//! plan wrapped in a `ClusterExec` for that scheduler and the `augur.cluster_scratch`
//! location; otherwise here.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;

use super::{AugurOptions, cluster_exec::ClusterExec};
use crate::ml::cluster_rows::{Remote, Target};

pub fn remote() -> Remote {
    Remote {
        target: Box::new(|config| {
            let Some(address) = AugurOptions::address(config)? else {
                return Ok(None);
            };
            let scratch = config
                .extensions
                .get::<AugurOptions>()
                .map(|o| o.cluster_scratch.clone())
                .unwrap_or_default();
            Ok(Some(Target {
                wrap: Arc::new(move |plan: Arc<dyn ExecutionPlan>| {
                    Arc::new(ClusterExec::new(address.clone(), plan)) as Arc<dyn ExecutionPlan>
                }),
                scratch,
            }))
        }),
    }
}
