//! Compute a subplan that occurs more than once in a query only once. DataFusion inlines a
//! CTE at every reference, so TPC-H Q15's `revenue0` (an aggregate over a quarter of
//! `lineitem`) is computed twice: once joined with `supplier`, once for its `max`. Identical
//! aggregates and joins (anywhere in the plan, subqueries included) become `SharedResult`
//! nodes with one id; the physical plan computes the first one to run and lets the others
//! read its batches. Subplans with volatile functions (`random()`) are left alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::logical::shared_result::SharedResult;

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

#[derive(Debug, Default)]
pub struct ShareSubplans;

impl OptimizerRule for ShareSubplans {
    fn name(&self) -> &str {
        "augur_share_subplans"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !crate::cluster::AugurOptions::enabled(&config.options(), |_| true) {
            return Ok(Transformed::no(plan));
        }
        // A recursive query runs its recursive term once per iteration over new rows: a result
        // kept from one iteration must not be read in the next.
        let recursive = plan.exists(|node| Ok(matches!(node, LogicalPlan::RecursiveQuery(_))))?;
        if recursive {
            return Ok(Transformed::no(plan));
        }
        let mut occurrences: HashMap<LogicalPlan, usize> = HashMap::new();
        plan.apply_with_subqueries(|node| {
            if is_shared(node) {
                return Ok(TreeNodeRecursion::Jump);
            }
            if matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Join(_)) {
                *occurrences.entry(node.clone()).or_default() += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        occurrences.retain(|_, count| *count > 1);
        // Only repeated subplans are walked for volatile functions.
        let mut volatile = vec![];
        for node in occurrences.keys() {
            if is_volatile(node)? {
                volatile.push(node.clone());
            }
        }
        for node in &volatile {
            occurrences.remove(node);
        }
        if occurrences.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let mut ids: HashMap<LogicalPlan, usize> = HashMap::new();
        plan.transform_down_with_subqueries(|node| {
            if is_shared(&node) {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            if !occurrences.contains_key(&node) {
                return Ok(Transformed::no(node));
            }
            let id = *ids
                .entry(node.clone())
                .or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
            let shared = LogicalPlan::Extension(Extension {
                node: Arc::new(SharedResult { id, input: node }),
            });
            Ok(Transformed::new(shared, true, TreeNodeRecursion::Jump))
        })
    }
}

fn is_shared(node: &LogicalPlan) -> bool {
    matches!(node, LogicalPlan::Extension(e) if e.node.as_any().is::<SharedResult>())
}

/// Whether the subtree calls a volatile function (`random()`), so that two runs differ.
fn is_volatile(node: &LogicalPlan) -> Result<bool> {
    node.exists(|n| {
        let mut found = false;
        n.apply_expressions(|e| {
            found |= e.is_volatile();
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        Ok(found)
    })
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::explain;

    const SETUP: [&str; 2] = [
        "CREATE TABLE lines (l_order INT, l_qty INT)",
        "INSERT INTO lines VALUES (1, 5), (1, 7), (2, 20), (3, 1)",
    ];
    const TWICE: &str = "WITH per_order AS (SELECT l_order, sum(l_qty) AS qty FROM lines GROUP BY l_order) \
        SELECT l_order FROM per_order WHERE qty = (SELECT max(qty) FROM per_order)";

    /// The ids of the `SharedResult` nodes in `plan`, in order.
    fn shared_ids(plan: &str) -> Vec<String> {
        plan.lines()
            .filter_map(|l| l.split("SharedResult: id=").nth(1))
            .map(str::to_string)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn both_references_of_a_cte_become_one_shared_result() {
        let plan = explain(&SETUP, &format!("EXPLAIN {TWICE}"))
            .await
            .swap_remove(0);
        let ids = shared_ids(&plan);
        assert_eq!(ids.len(), 2, "{plan}");
        assert_eq!(ids[0], ids[1], "{plan}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_shared_aggregate_runs_once() {
        let plan = explain(&SETUP, &format!("EXPLAIN ANALYZE {TWICE}"))
            .await
            .swap_remove(0);
        let aggregates: Vec<&str> = plan
            .lines()
            .filter(|l| l.contains("AggregateExec: mode=FinalPartitioned"))
            .collect();
        assert_eq!(aggregates.len(), 2, "{plan}");
        let ran = aggregates
            .iter()
            .filter(|l| l.contains("output_rows=3"))
            .count();
        assert_eq!(ran, 1, "{plan}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn volatile_subplans_are_computed_at_each_reference() {
        let query = "WITH r AS (SELECT l_order, sum(l_qty * random()) AS qty FROM lines GROUP BY l_order) \
            SELECT l_order FROM r WHERE qty = (SELECT max(qty) FROM r)";
        let plan = explain(&SETUP, &format!("EXPLAIN {query}"))
            .await
            .swap_remove(0);
        assert!(shared_ids(&plan).is_empty(), "{plan}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_shared_result_reports_its_input_row_count() {
        let setup = [
            SETUP[0],
            SETUP[1],
            "SET datafusion.explain.show_statistics = true",
        ];
        let plans = explain(&setup, &format!("EXPLAIN {TWICE}")).await;
        let physical = plans.last().expect("a physical plan");
        let shared = physical
            .lines()
            .find(|l| l.contains("SharedResultExec"))
            .unwrap_or_default();
        assert!(
            shared.contains("Rows=") && !shared.contains("Rows=Absent"),
            "{physical}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_result_too_big_for_the_memory_limit_is_computed_at_each_reference() {
        // 200,000 groups (~3 MB kept) under a 6 MB limit: sharing would need the memory the
        // aggregates use; each k > 100,000 (and k = 0) has a sum above the average 400,001.
        let config = crate::DatabaseConfig {
            memory_limit: Some(6 << 20),
            target_partitions: Some(2),
            ..Default::default()
        };
        let db = crate::Database::open(config).await.expect("database");
        let session = db.session().expect("session");
        let batches = session
            .execute_to_end(
                "WITH r AS (SELECT v % 200000 AS k, sum(v) AS s FROM generate_series(1, 400000) AS t(v) \
                 GROUP BY v % 200000) SELECT count(*) FROM r WHERE s > (SELECT avg(s) FROM r)",
            )
            .await
            .expect("the query runs without keeping the shared result");
        let count = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("a count")
            .value(0);
        assert_eq!(count, 100_000);
    }
}
