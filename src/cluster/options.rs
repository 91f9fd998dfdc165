//! `augur.*` settings kept in DataFusion's session config, so `SET augur.cluster = '…'`,
//! `SHOW augur.cluster` and `RESET augur.cluster` work as DataFusion's own settings do, and
//! physical optimizer rules (which see only the config) can read them.

use datafusion::common::extensions_options;
use datafusion::config::{ConfigExtension, ConfigOptions};
use datafusion::error::{DataFusionError, Result};

use super::ClusterAddress;

extensions_options! {
    /// Augur's own settings.
    pub struct AugurOptions {
        /// Augur's own optimizer rules (false: DataFusion 55's planning alone, to compare
        /// with; each rule also has its own setting below).
        pub rules: bool, default = true
        /// The Ballista scheduler that runs queries (`df://HOST:PORT`); empty: this process.
        pub cluster: String, default = String::new()
        /// Where training on the cluster writes its encoded rows for the executors: a URL
        /// (`s3://bucket/prefix`) or a path every executor sees; empty: this machine's temp dir.
        pub cluster_scratch: String, default = String::new()
        /// Inner joins in the order their estimated rows favour (false: as written).
        pub join_order: bool, default = true
        /// Decimal `+ - *` on values that fit in 64 bits without 128-bit checked arithmetic
        /// (false: arrow's kernels on every batch).
        pub decimal64: bool, default = true
        /// `a AND b` with only comparisons in `b` compares every row instead of selecting
        /// `a`'s rows first (false: DataFusion's pre-selection).
        pub eager_conjunctions: bool, default = true
        /// A partitioned anti join builds on its side with fewer estimated rows (false: the
        /// side DataFusion's byte estimates pick).
        pub anti_build_side: bool, default = true
        /// `s = 'constant'` on string views compares whole views without a branch per row
        /// (false: arrow's comparison kernel).
        pub view_equality: bool, default = true
        /// A filter of string equalities reports the share of rows the join order assumed
        /// for it (false: DataFusion's flat 20%).
        pub filter_selectivity: bool, default = true
        /// A hash join on an integer key drops probe rows whose key its build side lacks,
        /// tested in a bit set, before hashing them (false: the join looks up every row).
        pub probe_filter: bool, default = true
        /// The join order reads distinct counts of low-cardinality string columns from
        /// Parquet dictionary pages (false: 1/50 for an equality on any string column).
        pub string_distinct: bool, default = true
        /// A join under a GROUP BY of exactly its build side's keys is partitioned on them
        /// past 128K build rows, so the aggregate runs in one phase (false: one shared table
        /// up to the 4M-row limit).
        pub grouped_join: bool, default = true
        /// A grouped median or percentile_cont repartitions its input rows and aggregates
        /// in one phase (false: partial lists of values, repartitioned, then merged).
        pub one_phase_quantiles: bool, default = true
    }
}

impl ConfigExtension for AugurOptions {
    const PREFIX: &'static str = "augur";
}

impl AugurOptions {
    /// Whether a rule whose own setting `pick` reads is on, for a rule that sees only
    /// `config`: `augur.rules` and its setting both on (a session without Augur's options:
    /// the defaults, on).
    pub fn enabled(config: &ConfigOptions, pick: impl FnOnce(&AugurOptions) -> bool) -> bool {
        config
            .extensions
            .get::<AugurOptions>()
            .is_none_or(|o| o.rules && pick(o))
    }

    /// The cluster `config` sends work to, if `augur.cluster` is set.
    pub fn address(config: &ConfigOptions) -> Result<Option<ClusterAddress>> {
        let Some(options) = config.extensions.get::<AugurOptions>() else {
            return Ok(None);
        };
        if options.cluster.trim().is_empty() {
            return Ok(None);
        }
        ClusterAddress::parse(&options.cluster)
            .map(Some)
            .map_err(|e| DataFusionError::Configuration(format!("augur.cluster: {e}")))
    }

    /// The settings with `cluster` set (`augur --cluster URL`).
    pub fn with_cluster(cluster: Option<&str>) -> AugurOptions {
        AugurOptions {
            cluster: cluster.unwrap_or_default().to_string(),
            ..Default::default()
        }
    }
}

/// DataFusion settings whose value depends on where the plan runs: (key, this process's
/// value, a Ballista cluster's value), `None` for DataFusion's default.
///
/// A plan for Ballista needs the values Ballista's own clients use: dynamic filters and
/// in-process scalar subquery results cannot cross a stage boundary (a scan would wait
/// forever for a filter its join fills in another process), round-robin repartitions only
/// add shuffles, and Utf8View columns make Arrow Flight frames too large.
///
/// A join on one integer key whose build side spans under 2^20 values looks probe rows up in
/// an array (DataFusion's perfect hash join, at most 4 MiB a table) instead of hashing them,
/// here and on a cluster. DataFusion asks for 15% density past 1,024 values, which left TPC-H
/// Q17's 204 parts spread over 197K keys hashing 12M lineitem rows.
///
/// In this process a hash join builds one shared table (no repartition of either side) up to
/// 4M build rows or 256 MiB, where DataFusion stops at 128K rows or 1 MiB: past that it
/// hash-repartitions the probe side, and at TPC-H SF10 Q5 and Q8 repartitioned 60M lineitem
/// rows to build on 450K. A cluster keeps DataFusion's limits, since every task there would
/// build the shared table again.
const ENGINE_SETTINGS: &[(&str, Option<&str>, Option<&str>)] = &[
    (
        "datafusion.optimizer.enable_dynamic_filter_pushdown",
        None,
        Some("false"),
    ),
    (
        "datafusion.optimizer.enable_physical_uncorrelated_scalar_subquery",
        None,
        Some("false"),
    ),
    (
        "datafusion.optimizer.enable_round_robin_repartition",
        None,
        Some("false"),
    ),
    (
        "datafusion.execution.parquet.schema_force_view_types",
        None,
        Some("false"),
    ),
    (
        "datafusion.sql_parser.map_string_types_to_utf8view",
        None,
        Some("false"),
    ),
    (
        "datafusion.execution.perfect_hash_join_small_build_threshold",
        Some("1048576"),
        Some("1048576"),
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold_rows",
        Some("4194304"),
        None,
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold",
        Some("268435456"),
        None,
    ),
];

/// Make DataFusion's settings agree with `augur.cluster`: a cluster's when it is set, this
/// process's when it is not (after `RESET augur.cluster`).
pub fn sync_engine_settings(options: &mut ConfigOptions) -> datafusion::error::Result<()> {
    let on = options
        .extensions
        .get::<AugurOptions>()
        .is_some_and(|o| !o.cluster.trim().is_empty());
    let defaults = ConfigOptions::default().entries();
    for (key, local, cluster) in ENGINE_SETTINGS {
        let value = match (on, local, cluster) {
            (true, _, Some(value)) | (false, Some(value), _) => Some(value.to_string()),
            _ => defaults
                .iter()
                .find(|entry| entry.key == *key)
                .and_then(|entry| entry.value.clone()),
        };
        if let Some(value) = value {
            options.set(key, &value)?;
        }
    }
    Ok(())
}
