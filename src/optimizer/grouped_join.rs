//! `GroupedJoin`, a physical optimizer rule: a hash join that builds one shared table and
//! sits under a `GROUP BY` of exactly its build side's join keys is partitioned on those keys
//! instead, when its build side is past DataFusion's own one-table limit (128K rows). Augur
//! raises that limit to 4M rows (one table is faster for SF10 Q5 and Q8's 450K-row builds),
//! but a partitioned join's output is already hash-partitioned on the keys the aggregate
//! groups by, so the aggregate runs in one phase per partition: TPC-H Q13 (150K customers,
//! each counting its orders) skips a partial aggregate over 1.5M joined rows and the
//! repartition after it. `SET augur.grouped_join = false` turns it off.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::{ConfigOptions, OptimizerOptions};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};

use super::estimates::plan_rows;

#[derive(Debug, Default)]
pub struct GroupedJoin;

impl PhysicalOptimizerRule for GroupedJoin {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::cluster::AugurOptions::enabled(config, |o| o.grouped_join)
            || !config.optimizer.repartition_joins
            || config.execution.target_partitions < 2
        {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if *aggregate.mode() != AggregateMode::Partial
                || aggregate.group_expr().has_grouping_set()
            {
                return Ok(Transformed::no(node));
            }
            // The grouped columns, by their place in the aggregate's input.
            let Some(groups) = aggregate
                .group_expr()
                .expr()
                .iter()
                .map(|(e, _)| e.downcast_ref::<Column>().map(Column::index))
                .collect::<Option<Vec<usize>>>()
            else {
                return Ok(Transformed::no(node));
            };
            let Some(partitioned) = partition(aggregate.input(), &groups)? else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                vec![partitioned],
            )?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "grouped_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `input` (a shared-table join, or column projections over one) with the join partitioned,
/// if `groups` (columns of `input`) are exactly its build side's keys.
fn partition(
    input: &Arc<dyn ExecutionPlan>,
    groups: &[usize],
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(projection) = input.downcast_ref::<ProjectionExec>() {
        // Through a projection, the grouped columns are the columns it passes on.
        let Some(below) = groups
            .iter()
            .map(|g| {
                let e = projection.expr().get(*g)?;
                e.expr.downcast_ref::<Column>().map(Column::index)
            })
            .collect::<Option<Vec<usize>>>()
        else {
            return Ok(None);
        };
        return match partition(projection.input(), &below)? {
            Some(join) => Ok(Some(replace_children_if_necessary(
                Arc::clone(input),
                vec![join],
            )?)),
            None => Ok(None),
        };
    }
    let Some(join) = input.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    // The output keeps the build side's hash partitioning for these joins (left columns
    // first in their output).
    if *join.partition_mode() != PartitionMode::CollectLeft
        || !matches!(join.join_type(), JoinType::Inner | JoinType::Left)
        || join.projection.is_some()
        || join.null_aware
        || join.on().len() != groups.len()
    {
        return Ok(None);
    }
    let Some(mut keys) = join
        .on()
        .iter()
        .map(|(left, _)| left.downcast_ref::<Column>().map(Column::index))
        .collect::<Option<Vec<usize>>>()
    else {
        return Ok(None);
    };
    let mut grouped = groups.to_vec();
    keys.sort_unstable();
    grouped.sort_unstable();
    // Builds under DataFusion's own one-table limit keep their table: partitioning them
    // costs more than the one-phase aggregate saves.
    let shared = OptimizerOptions::default().hash_join_single_partition_threshold_rows;
    if keys != grouped || plan_rows(join.left()).is_none_or(|rows| rows < shared) {
        return Ok(None);
    }
    let partitioned = join
        .builder()
        .with_partition_mode(PartitionMode::Partitioned)
        .build()?;
    Ok(Some(Arc::new(partitioned)))
}
