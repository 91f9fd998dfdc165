//! `OnePhaseQuantiles`, a physical optimizer rule: a grouped aggregate with an aggregate that
//! keeps its input whole (`median`, `percentile_cont`: each group's every value) runs
//! in one phase after a hash repartition of its input rows, instead of a partial aggregate,
//! a repartition of its partial results and a final aggregate.
//!
//! A partial quantile reduces nothing: it gathers each group's values into a list, copies
//! them into a list array, the repartition copies that, and the final aggregate copies the
//! lists again into its own groups. `perf` of `percentile_cont(0.9)` over 10M rows in 1,000
//! groups put half the time in those copies and the page faults of their fresh memory.
//! Repartitioning the rows themselves moves the same values once. Applied only when every
//! column the input carries is a grouped column or read by such an aggregate (its argument or
//! its FILTER), so the repartition moves nothing the lists would not; other aggregates beside
//! it (`count(*)`, `avg(f)` next to `median(f)`) may read only those columns. `SET augur.one_phase_quantiles = false`
//! turns it off.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

/// Aggregates whose partial state is every input value of the group.
const WHOLE: [&str; 2] = ["median", "percentile_cont"];

#[derive(Debug, Default)]
pub struct OnePhaseQuantiles;

impl PhysicalOptimizerRule for OnePhaseQuantiles {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::cluster::AugurOptions::enabled(config, |o| o.one_phase_quantiles) {
            return Ok(plan);
        }
        plan.transform_up(|node| match one_phase(&node)? {
            Some(single) => Ok(Transformed::yes(single)),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "one_phase_quantiles"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` as one `SinglePartitioned` aggregate over its partial aggregate's input, hash
/// repartitioned on the grouping, if it is the final aggregate of a quantile grouping.
fn one_phase(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(last) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if *last.mode() != AggregateMode::FinalPartitioned {
        return Ok(None);
    }
    let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    let Partitioning::Hash(_, partitions) = repartition.partitioning() else {
        return Ok(None);
    };
    let Some(partial) = repartition.input().downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let groups = partial.group_expr();
    if *partial.mode() != AggregateMode::Partial
        || groups.has_grouping_set()
        || groups.expr().is_empty()
        || partial.limit_options().is_some()
        || last.limit_options().is_some()
    {
        return Ok(None);
    }
    let aggregates = partial.aggr_expr();
    let filters = partial.filter_expr();
    let whole = |a: &AggregateFunctionExpr| WHOLE.contains(&a.fun().name()) && !a.is_distinct();
    if !aggregates.iter().any(|a| whole(a)) {
        return Ok(None);
    }
    // The columns the lists and the groups carry anyway; every input column must be one of
    // them, and so must every column another aggregate (a count or an average beside the
    // median) reads.
    let reads: Vec<HashSet<usize>> = aggregates
        .iter()
        .zip(filters)
        .map(|(a, f)| columns(a.expressions().into_iter().chain(f.clone())))
        .collect();
    let mut carried = columns(groups.expr().iter().map(|(e, _)| Arc::clone(e)));
    for (a, read) in aggregates.iter().zip(&reads) {
        if whole(a) {
            carried.extend(read);
        }
    }
    let input = partial.input();
    if carried.len() != input.schema().fields().len()
        || !reads.iter().all(|read| read.is_subset(&carried))
    {
        return Ok(None);
    }
    let keys = groups.expr().iter().map(|(e, _)| Arc::clone(e)).collect();
    let rows = Arc::new(RepartitionExec::try_new(
        Arc::clone(input),
        Partitioning::Hash(keys, *partitions),
    )?);
    let single = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        groups.clone(),
        aggregates.to_vec(),
        filters.to_vec(),
        rows,
        partial.input_schema(),
    )?;
    if single.schema() != last.schema() {
        return Ok(None);
    }
    Ok(Some(Arc::new(single)))
}

/// The input columns (by index) `exprs` read.
fn columns(exprs: impl Iterator<Item = Arc<dyn PhysicalExpr>>) -> HashSet<usize> {
    exprs
        .flat_map(|e| collect_columns(&e).into_iter().map(|c| c.index()))
        .collect()
}
