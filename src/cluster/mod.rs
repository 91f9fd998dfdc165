//! Scale-out on Apache Ballista, client side: the `augur.cluster` setting, the physical rule
//! that hands a plan's file-reading parts to a Ballista scheduler, the operator that runs
//! them there and streams the rows back, and the codec Augur's scheduler and executors share.
//! The processes themselves (`augur scheduler`, `augur executor`) are front ends in
//! `crate::nodes`.

/// `df://HOST:PORT`: parsing, and a quick check that a scheduler answers there.
pub mod address;
/// `ClusterExec`: runs a physical plan as a Ballista job and streams its result.
pub mod cluster_exec;
/// The physical extension codec: Augur's operators on the wire, Ballista's own otherwise.
pub mod codec;
/// `augur.*` settings (`SET augur.cluster = 'df://…'`), carried by DataFusion's config.
pub mod options;
/// Where training sums its rows: the cluster set in the session, or here.
pub mod remote;
/// The physical optimizer rule that decides what runs on the cluster.
pub mod ship;
/// The stages the scheduler cuts a shipped plan into, as EXPLAIN shows them.
pub mod stages;

pub use address::ClusterAddress;
pub use codec::AugurCodec;
pub use options::{AugurOptions, sync_engine_settings};
pub use ship::ShipToCluster;
