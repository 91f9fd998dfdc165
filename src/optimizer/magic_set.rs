//! Aggregate only the groups a join can use ("magic set" rewrite). DataFusion decorrelates
//! `l_quantity < (SELECT avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)` into a
//! join with `SELECT l_partkey, avg(…) FROM lineitem GROUP BY l_partkey`: all 200K parts are
//! aggregated over 6M rows although the other side keeps only the ~200 parts its filter
//! passes (TPC-H Q17; Q2 and Q20 have the same shape). When the other side's join key is
//! equated, through inner and semi joins, with the key of a small filtered scan of another
//! table, this rule semi-joins the aggregate's input with that scan first.
//!
//! Sound because the join (inner or semi, nulls never equal) only matches groups whose key
//! occurs on the other side, and every key there is a value of the filtered scan's column:
//! the groups dropped could never match, and the groups kept see all their rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result, TableReference};
use datafusion::logical_expr::{Aggregate, Expr, JoinType, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::shapes::{column_below, equi_join, is_filtered_scan, tables, with_inputs};

#[derive(Debug, Default)]
pub struct MagicSet;

impl OptimizerRule for MagicSet {
    fn name(&self) -> &str {
        "augur_magic_set"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !crate::cluster::AugurOptions::enabled(&config.options(), |_| true) {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Join(join) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
            return Ok(Transformed::no(plan));
        }
        // (aggregate on the right?) for each orientation the join allows
        let orientations: &[bool] = match join.join_type {
            JoinType::Inner => &[true, false],
            JoinType::LeftSemi => &[true],
            _ => &[],
        };
        for &aggregate_right in orientations {
            for (left_key, right_key) in &join.on {
                let (Expr::Column(left_key), Expr::Column(right_key)) = (left_key, right_key)
                else {
                    continue;
                };
                let (other, other_key, side, side_key) = if aggregate_right {
                    (&join.left, left_key, &join.right, right_key)
                } else {
                    (&join.right, right_key, &join.left, left_key)
                };
                let restrict = |aggregate: &Aggregate, group_column: Column| {
                    restrict_aggregate(aggregate, group_column, other, other_key)
                };
                if let Some(rewritten) = rewrite_aggregate_side(side, side_key, &restrict)? {
                    let rewritten = Arc::new(rewritten);
                    let (left, right) = if aggregate_right {
                        (Arc::clone(&join.left), rewritten)
                    } else {
                        (rewritten, Arc::clone(&join.right))
                    };
                    return Ok(Transformed::yes(LogicalPlan::Join(with_inputs(
                        join, left, right,
                    )?)));
                }
            }
        }
        Ok(Transformed::no(plan))
    }
}

type Restrict<'a> = dyn Fn(&Aggregate, Column) -> Result<Option<LogicalPlan>> + 'a;

/// Follow `key` down through aliases, projections and filters to the aggregate that groups by
/// it, apply `restrict` there, and rebuild the nodes above with the new aggregate.
fn rewrite_aggregate_side(
    plan: &LogicalPlan,
    key: &Column,
    restrict: &Restrict,
) -> Result<Option<LogicalPlan>> {
    let Ok(index) = plan.schema().index_of_column(key) else {
        return Ok(None);
    };
    let below = match plan {
        LogicalPlan::Aggregate(aggregate) => {
            return match aggregate.group_expr.get(index) {
                Some(Expr::Column(group_column)) => restrict(aggregate, group_column.clone()),
                _ => Ok(None),
            };
        }
        _ => match column_below(plan, key) {
            Some(below) => below,
            None => return Ok(None),
        },
    };
    let input = plan.inputs()[0];
    let Some(new_input) = rewrite_aggregate_side(input, &below, restrict)? else {
        return Ok(None);
    };
    Ok(Some(
        plan.with_new_exprs(plan.expressions(), vec![new_input])?,
    ))
}

/// The aggregate with its input semi-joined to a filtered scan whose key `other_key` is
/// equated with, or `None` when there is no such scan or the aggregate already has it.
fn restrict_aggregate(
    aggregate: &Aggregate,
    group_column: Column,
    other: &LogicalPlan,
    other_key: &Column,
) -> Result<Option<LogicalPlan>> {
    let aggregated = tables(&aggregate.input);
    let Some((scan, scan_key)) = key_source(other, vec![other_key.clone()], &aggregated) else {
        return Ok(None);
    };
    // Already restricted (on an earlier optimizer pass; the semi join may have moved down since).
    let restricted_before = aggregate.input.exists(|node| {
        Ok(matches!(node, LogicalPlan::Join(join)
            if join.join_type == JoinType::LeftSemi && join.right.as_ref() == &scan))
    })?;
    if restricted_before {
        return Ok(None);
    }
    let restricted = equi_join(
        Arc::clone(&aggregate.input),
        Arc::new(scan),
        &[(group_column, scan_key)],
        JoinType::LeftSemi,
    );
    // A plan this rule cannot rebuild is left as DataFusion planned it.
    let Ok(restricted) = restricted else {
        return Ok(None);
    };
    Ok(Aggregate::try_new(
        Arc::new(LogicalPlan::Join(restricted)),
        aggregate.group_expr.clone(),
        aggregate.aggr_expr.clone(),
    )
    .ok()
    .map(LogicalPlan::Aggregate))
}

/// A small filtered scan inside `plan` (of none of the `aggregated` tables) holding a column
/// that every row of `plan` equates with one of `columns`, and that column.
fn key_source(
    plan: &LogicalPlan,
    mut columns: Vec<Column>,
    aggregated: &HashSet<TableReference>,
) -> Option<(LogicalPlan, Column)> {
    let candidate = |side: &LogicalPlan, columns: &[Column]| {
        let column = columns.iter().find(|c| side.schema().has_column(c))?;
        let usable = is_filtered_scan(side) && tables(side).is_disjoint(aggregated);
        usable.then(|| (side.clone(), column.clone()))
    };
    match plan {
        LogicalPlan::Filter(filter) => key_source(&filter.input, columns, aggregated),
        LogicalPlan::Sort(sort) => key_source(&sort.input, columns, aggregated),
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            let below = columns
                .iter()
                .filter_map(|c| column_below(plan, c))
                .collect();
            key_source(plan.inputs()[0], below, aggregated)
        }
        LogicalPlan::Join(join) if join.join_type == JoinType::Inner => {
            for (left, right) in &join.on {
                if let (Expr::Column(left), Expr::Column(right)) = (left, right) {
                    if columns.contains(left) && !columns.contains(right) {
                        columns.push(right.clone());
                    } else if columns.contains(right) && !columns.contains(left) {
                        columns.push(left.clone());
                    }
                }
            }
            [&join.left, &join.right]
                .into_iter()
                .find_map(|side| candidate(side, &columns))
                .or_else(|| {
                    [&join.left, &join.right]
                        .into_iter()
                        .filter(|side| columns.iter().any(|c| side.schema().has_column(c)))
                        .find_map(|side| key_source(side, columns.clone(), aggregated))
                })
        }
        LogicalPlan::Join(join) if join.join_type == JoinType::LeftSemi => join
            .on
            .iter()
            .find_map(|(left, right)| match (left, right) {
                (Expr::Column(left), Expr::Column(right)) if columns.contains(left) => {
                    candidate(&join.right, std::slice::from_ref(right))
                }
                _ => None,
            })
            .or_else(|| key_source(&join.left, columns, aggregated)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::explain;

    const SETUP: [&str; 2] = [
        "CREATE TABLE parts (p_id INT, p_brand VARCHAR)",
        "CREATE TABLE lines (l_part INT, l_qty INT, l_price DOUBLE)",
    ];

    async fn logical_plan(sql: &str) -> String {
        explain(&SETUP, &format!("EXPLAIN {sql}"))
            .await
            .swap_remove(0)
    }

    /// The lines of `plan` from the first one containing `needle` on.
    fn from<'a>(plan: &'a str, needle: &str) -> Vec<&'a str> {
        plan.lines().skip_while(|l| !l.contains(needle)).collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_aggregate_reads_only_the_keys_the_filter_passes() {
        let plan = logical_plan(
            "SELECT sum(l_price) FROM lines, parts WHERE p_id = l_part AND p_brand = 'b23' \
             AND l_qty < (SELECT 0.2 * avg(l_qty) FROM lines WHERE l_part = p_id)",
        )
        .await;
        let below = from(&plan, "Aggregate: groupBy=[[lines.l_part]]");
        assert!(below.len() > 1, "no grouped aggregate:\n{plan}");
        assert!(
            below[1].contains("LeftSemi Join: lines.l_part = parts.p_id"),
            "{plan}"
        );
        assert!(
            below.iter().any(|l| l.contains("Filter: parts.p_brand")),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_equality_with_the_aggregate_uses_it_too() {
        let plan = logical_plan(
            "SELECT p_id FROM parts, lines WHERE p_id = l_part AND p_brand LIKE '%x' \
             AND l_qty = (SELECT min(l_qty) FROM lines WHERE l_part = p_id)",
        )
        .await;
        let below = from(&plan, "Aggregate: groupBy=[[lines.l_part]]");
        assert!(
            below.len() > 1 && below[1].contains("LeftSemi Join"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_a_filter_on_the_other_side_the_aggregate_is_left_whole() {
        let plan = logical_plan(
            "SELECT sum(l_price) FROM lines, parts WHERE p_id = l_part \
             AND l_qty < (SELECT 0.2 * avg(l_qty) FROM lines WHERE l_part = p_id)",
        )
        .await;
        let below = from(&plan, "Aggregate: groupBy=[[lines.l_part]]");
        assert!(below.len() > 1 && !below[1].contains("Join"), "{plan}");
    }
}
