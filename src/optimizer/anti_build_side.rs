//! `AntiBuildSide`, a physical optimizer rule: a `RightAnti` hash join whose
//! build (left) side is estimated at over ten times the rows of its probe side is swapped to
//! a `LeftAnti` that builds on the small side and reports its unmatched rows at the end.
//! DataFusion picks build sides by estimated bytes, and a join's output estimate carries the
//! bytes of its wide inputs: TPC-H Q21's `NOT EXISTS` built on 5.9M lineitem rows to probe
//! 60,000 (estimated 142 MB against 95 MB). `SET augur.anti_build_side = false` turns it off.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashJoinExec;

use super::estimates::plan_rows;

#[derive(Debug, Default)]
pub struct AntiBuildSide;

impl AntiBuildSide {
    /// DataFusion's physical rules with `FilterSelectivity` right before its build-side
    /// choice (`join_selection`, which reads the filters' estimates), this one right after
    /// it (later rules build the joins' dynamic filters, after which a join's inputs can no
    /// longer be swapped), then `GroupedJoin` (before the partitioning is enforced).
    pub fn with_defaults() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
        let mut rules = PhysicalOptimizer::new().rules;
        let at = rules
            .iter()
            .position(|r| r.name() == "join_selection")
            .unwrap_or(rules.len());
        rules.insert(
            at.min(rules.len()),
            Arc::new(super::filter_selectivity::FilterSelectivity),
        );
        rules.insert((at + 2).min(rules.len()), Arc::new(AntiBuildSide));
        // Before the partitioning is enforced, which then repartitions both join sides.
        rules.insert((at + 3).min(rules.len()), Arc::new(super::GroupedJoin));
        rules
    }
}

impl PhysicalOptimizerRule for AntiBuildSide {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::cluster::AugurOptions::enabled(config, |o| o.anti_build_side) {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if *join.join_type() != JoinType::RightAnti {
                return Ok(Transformed::no(node));
            }
            match (plan_rows(join.left()), plan_rows(join.right())) {
                (Some(build), Some(probe)) if build > probe.saturating_mul(10) => {
                    // A join whose inputs cannot be swapped any more stays as it is.
                    match join.swap_inputs(*join.partition_mode()) {
                        Ok(swapped) => Ok(Transformed::yes(swapped)),
                        Err(_) => Ok(Transformed::no(node)),
                    }
                }
                _ => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "anti_build_side"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::{JoinType, NullEquality};
    use datafusion::config::ConfigOptions;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

    use super::AntiBuildSide;

    fn rows(n: i64) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let keys = Int64Array::from_iter_values(0..n);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(keys)]).expect("batch");
        MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).expect("source")
    }

    fn anti(build: i64, probe: i64) -> Arc<dyn ExecutionPlan> {
        let on = vec![(
            Arc::new(Column::new("k", 0)) as _,
            Arc::new(Column::new("k", 0)) as _,
        )];
        let join = HashJoinExec::try_new(
            rows(build),
            rows(probe),
            on,
            None,
            &JoinType::RightAnti,
            None,
            PartitionMode::CollectLeft,
            NullEquality::NullEqualsNothing,
            false,
        );
        Arc::new(join.expect("join"))
    }

    fn join_type(plan: &Arc<dyn ExecutionPlan>) -> JoinType {
        *plan
            .downcast_ref::<HashJoinExec>()
            .expect("join")
            .join_type()
    }

    /// A build side of 10,000 rows against 100 probing ones is swapped (the small side builds
    /// and its unmatched rows are the answer); 500 against 100 is left alone, as is every
    /// join with the setting off.
    #[test]
    fn anti_join_builds_on_the_small_side() {
        let config = ConfigOptions::default();
        let swapped = AntiBuildSide
            .optimize(anti(10_000, 100), &config)
            .expect("rule");
        assert_eq!(join_type(&swapped), JoinType::LeftAnti);
        let kept = AntiBuildSide
            .optimize(anti(500, 100), &config)
            .expect("rule");
        assert_eq!(join_type(&kept), JoinType::RightAnti);
        let mut off = ConfigOptions::default();
        off.extensions.insert(crate::cluster::AugurOptions {
            anti_build_side: false,
            ..Default::default()
        });
        let off = AntiBuildSide
            .optimize(anti(10_000, 100), &off)
            .expect("rule");
        assert_eq!(join_type(&off), JoinType::RightAnti);
    }
}
