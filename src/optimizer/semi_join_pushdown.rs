//! Push a semi join (`x IN (subquery)`, `EXISTS`) below the inner joins of its input, onto the
//! side its keys come from. DataFusion applies the decorrelated subquery on top of the whole
//! join tree, so TPC-H Q18 joins 6M order lines before keeping the 57 orders the subquery
//! names; filtering `orders` first makes every join above it small.
//!
//! Sound for inner joins: an inner join neither changes nor duplicates-away the values of its
//! inputs' columns, so keeping the rows of one input whose key has a match is the same as
//! keeping the joined rows with that key. Semi joins with an extra non-equi filter are left
//! alone.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::shapes::with_inputs;

#[derive(Debug, Default)]
pub struct SemiJoinPushdown;

impl OptimizerRule for SemiJoinPushdown {
    fn name(&self) -> &str {
        "augur_semi_join_pushdown"
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
        let LogicalPlan::Join(semi) = &plan else {
            return Ok(Transformed::no(plan));
        };
        if semi.join_type != JoinType::LeftSemi || semi.filter.is_some() || semi.null_aware {
            return Ok(Transformed::no(plan));
        }
        // A projection that only selects columns may sit between the two joins.
        let (projection, below) = match semi.left.as_ref() {
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                (Some(p.expr.clone()), p.input.as_ref())
            }
            other => (None, other),
        };
        let LogicalPlan::Join(inner) = below else {
            return Ok(Transformed::no(plan));
        };
        if inner.join_type != JoinType::Inner {
            return Ok(Transformed::no(plan));
        }
        let mut keys: HashSet<Column> = HashSet::new();
        for (left_key, _) in &semi.on {
            keys.extend(left_key.column_refs().into_iter().cloned());
        }
        if keys.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let covers = |side: &LogicalPlan| keys.iter().all(|c| side.schema().has_column(c));
        let push_left = covers(&inner.left);
        if !push_left && !covers(&inner.right) {
            return Ok(Transformed::no(plan));
        }
        let target = if push_left { &inner.left } else { &inner.right };
        // The semi join has no filter and is not null-aware (checked above): the same join
        // over the side that holds its keys.
        let filtered = Arc::new(LogicalPlan::Join(with_inputs(
            semi,
            Arc::clone(target),
            Arc::clone(&semi.right),
        )?));
        let (left, right) = if push_left {
            (filtered, Arc::clone(&inner.right))
        } else {
            (Arc::clone(&inner.left), filtered)
        };
        let rebuilt = with_inputs(inner, left, right)?;
        let rebuilt = LogicalPlan::Join(rebuilt);
        Ok(Transformed::yes(match projection {
            Some(exprs) => LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(rebuilt))?),
            None => rebuilt,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::{depth, explain};

    async fn logical_plan(sql: &str) -> String {
        let setup = [
            "CREATE TABLE customers (c_id INT, c_name VARCHAR)",
            "CREATE TABLE orders (o_id INT, o_cust INT)",
            "CREATE TABLE lines (l_order INT, l_qty INT)",
        ];
        explain(&setup, &format!("EXPLAIN {sql}"))
            .await
            .swap_remove(0)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_semi_join_moves_onto_the_side_of_its_key() {
        let plan = logical_plan(
            "SELECT o_id FROM customers, orders, lines WHERE c_id = o_cust AND l_order = o_id \
             AND o_id IN (SELECT l_order FROM lines WHERE l_qty > 20)",
        )
        .await;
        let semi = depth(&plan, "LeftSemi Join").expect("a semi join");
        let inner = depth(&plan, "Inner Join").expect("an inner join");
        assert!(semi > inner, "semi join not below the inner joins:\n{plan}");
        let orders = plan
            .lines()
            .skip_while(|l| !l.contains("LeftSemi Join"))
            .nth(1)
            .unwrap_or_default();
        assert!(orders.contains("TableScan: orders"), "{plan}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_from_both_sides_stays_on_top() {
        let plan = logical_plan(
            "SELECT o_id FROM customers JOIN orders ON c_id = o_cust \
             WHERE o_id + c_id IN (SELECT l_order FROM lines)",
        )
        .await;
        let semi = depth(&plan, "LeftSemi Join").expect("a semi join");
        let inner = depth(&plan, "Inner Join").expect("an inner join");
        assert!(semi < inner, "semi join should stay above:\n{plan}");
    }
}
