//! Join a filtered scan to the table its key comes from, instead of to the whole join tree
//! above that table. DataFusion keeps the FROM clause's join order, so TPC-H Q7 joins 1.8M
//! lineitem rows with orders and customers before the `nation` filters (FRANCE, GERMANY) on
//! top cut them to 6K, and Q21 does the same with SAUDI ARABIA.
//!
//! Sound for inner joins, which are associative and commutative: moving `X ⋈ T` down onto the
//! input of X that holds all of its keys, through inner joins and column-only projections,
//! gives the same rows. The join's own non-equi filter goes to the deepest join on the way
//! that has all its columns (Q7's `n1 = FRANCE AND n2 = GERMANY OR …`), and a projection
//! restores the original column order.
//!
//! Without table sizes, the rule never moves a filtered scan past a join with another
//! filtered scan: which of two filtered tables is smaller is unknown, and moving each below
//! the other would never end.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::shapes::{equi_join, is_filtered_scan, with_inputs};

#[derive(Debug, Default)]
pub struct FilteredJoinPushdown;

impl OptimizerRule for FilteredJoinPushdown {
    fn name(&self) -> &str {
        "augur_filtered_join_pushdown"
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
        if join.join_type != JoinType::Inner
            || join.null_equality != NullEquality::NullEqualsNothing
            || join.on.is_empty()
        {
            return Ok(Transformed::no(plan));
        }
        let Some(keys) = join
            .on
            .iter()
            .map(|pair| match pair {
                (Expr::Column(left), Expr::Column(right)) => Some((left.clone(), right.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(Transformed::no(plan));
        };
        // (tree side, filtered side, pairs as (tree key, filtered key))
        let (tree, filtered, pairs) =
            match (is_filtered_scan(&join.left), is_filtered_scan(&join.right)) {
                (false, true) => (&join.left, &join.right, keys),
                (true, false) => {
                    let swapped = keys.into_iter().map(|(l, r)| (r, l)).collect();
                    (&join.right, &join.left, swapped)
                }
                _ => return Ok(Transformed::no(plan)),
            };
        let mut condition = join.filter.clone();
        let Some(rewritten) = attach(tree, filtered, &pairs, &mut condition, false)? else {
            return Ok(Transformed::no(plan));
        };
        if condition.is_some() {
            // No join on the way has the condition's columns; a filter above a projection
            // with same-named columns is what DataFusion 55's physical pushdown gets wrong.
            return Ok(Transformed::no(plan));
        }
        let original_order = join
            .schema
            .iter()
            .map(|(qualifier, field)| Expr::Column(Column::from((qualifier, field))))
            .collect();
        Ok(Transformed::yes(LogicalPlan::Projection(
            Projection::try_new(original_order, Arc::new(rewritten))?,
        )))
    }
}

/// `plan` with `filtered` joined onto its deepest input that holds all the tree-side keys of
/// `pairs` and is reached through inner joins (whose other side is not a filtered scan) and
/// column-only projections; `None` when that is `plan` itself. The deepest join on the way
/// with all the columns of `condition` takes it as its filter (and `condition` becomes `None`).
fn attach(
    plan: &LogicalPlan,
    filtered: &Arc<LogicalPlan>,
    pairs: &[(Column, Column)],
    condition: &mut Option<Expr>,
    below_a_join: bool,
) -> Result<Option<LogicalPlan>> {
    let holds = |side: &LogicalPlan| pairs.iter().all(|(k, _)| side.schema().has_column(k));
    let join_here = || {
        if !below_a_join {
            return Ok(None);
        }
        let joined = equi_join(
            Arc::new(plan.clone()),
            Arc::clone(filtered),
            pairs,
            JoinType::Inner,
        );
        joined.map(|join| Some(LogicalPlan::Join(join)))
    };
    match plan {
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                && holds(&projection.input) =>
        {
            let Some(input) = attach(&projection.input, filtered, pairs, condition, below_a_join)?
            else {
                return Ok(None);
            };
            // The filtered side's columns travel up with the rows.
            let mut expr = projection.expr.clone();
            expr.extend(filtered.schema().columns().into_iter().map(Expr::Column));
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                expr,
                Arc::new(input),
            )?)))
        }
        LogicalPlan::Join(join) if join.join_type == JoinType::Inner => {
            let into_left = holds(&join.left);
            if !into_left && !holds(&join.right) {
                return join_here();
            }
            let (side, other) = if into_left {
                (&join.left, &join.right)
            } else {
                (&join.right, &join.left)
            };
            if is_filtered_scan(other) {
                return join_here();
            }
            let Some(side) = attach(side, filtered, pairs, condition, true)? else {
                return Ok(None);
            };
            let (left, right) = if into_left {
                (Arc::new(side), Arc::clone(&join.right))
            } else {
                (Arc::clone(&join.left), Arc::new(side))
            };
            let mut rebuilt = with_inputs(join, left, right)?;
            // A join filter, not a filter above: DataFusion 55's physical filter pushdown
            // confuses same-named columns (n1.n_name, n2.n_name) across a projection.
            if let Some(c) = condition.take_if(|c| {
                c.column_refs()
                    .iter()
                    .all(|col| rebuilt.schema.has_column(col))
            }) {
                rebuilt.filter = Some(match rebuilt.filter.take() {
                    Some(existing) => existing.and(c),
                    None => c,
                });
            }
            Ok(Some(LogicalPlan::Join(rebuilt)))
        }
        _ => join_here(),
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::{depth, explain};

    const SETUP: [&str; 4] = [
        "CREATE TABLE nation (n_key INT, n_name VARCHAR)",
        "CREATE TABLE customer (c_key INT, c_nation INT)",
        "CREATE TABLE orders (o_key INT, o_cust INT, o_date DATE)",
        "CREATE TABLE lines (l_order INT, l_qty INT)",
    ];

    async fn logical_plan(sql: &str) -> String {
        explain(&SETUP, &format!("EXPLAIN {sql}"))
            .await
            .swap_remove(0)
    }

    /// The line after the first one containing `needle`.
    fn after<'a>(plan: &'a str, needle: &str) -> &'a str {
        plan.lines()
            .skip_while(|l| !l.contains(needle))
            .nth(1)
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_filtered_nation_joins_the_customers_first() {
        let plan = logical_plan(
            "SELECT l_qty FROM lines, orders, customer, nation \
             WHERE l_order = o_key AND o_cust = c_key AND c_nation = n_key AND n_name = 'FRANCE'",
        )
        .await;
        let nation_join = depth(&plan, "Inner Join: customer.c_nation = nation.n_key")
            .expect("customer joined with nation");
        let orders_join = depth(&plan, "Inner Join: orders.o_cust = customer.c_key")
            .expect("orders joined with customers");
        assert!(
            nation_join > orders_join,
            "nation should join below orders:\n{plan}"
        );
        assert!(
            after(&plan, "Inner Join: customer.c_nation = nation.n_key").contains("customer"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unfiltered_nation_stays_on_top() {
        let plan = logical_plan(
            "SELECT l_qty, n_name FROM lines, orders, customer, nation \
             WHERE l_order = o_key AND o_cust = c_key AND c_nation = n_key",
        )
        .await;
        assert_eq!(
            depth(&plan, "nation.n_key"),
            depth(&plan, "Inner Join"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_filtered_scan_does_not_pass_another() {
        let plan = logical_plan(
            "SELECT l_qty FROM orders, lines, nation \
             WHERE l_order = o_key AND o_cust = n_key AND n_name = 'FRANCE' AND l_qty > 5",
        )
        .await;
        assert_eq!(
            depth(&plan, "nation.n_key"),
            depth(&plan, "Inner Join"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_condition_across_two_filtered_tables_stays_a_join_filter() {
        let plan = logical_plan(
            "SELECT l_qty FROM lines, orders, customer, nation n1, nation n2 \
             WHERE l_order = o_key AND o_cust = c_key AND c_nation = n1.n_key AND l_qty = n2.n_key \
             AND (n1.n_name = 'A' AND n2.n_name = 'B' OR n1.n_name = 'B' AND n2.n_name = 'A')",
        )
        .await;
        assert!(
            depth(&plan, "n1.n_key").unwrap_or_default()
                > depth(&plan, "Inner Join").unwrap_or_default(),
            "n1 should join below the top:\n{plan}"
        );
        assert!(!plan.contains("  Filter: n1.n_name"), "{plan}");
        assert!(
            plan.lines()
                .any(|l| l.contains("Inner Join") && l.contains("Filter: n1.n_name")),
            "{plan}"
        );
    }
}
