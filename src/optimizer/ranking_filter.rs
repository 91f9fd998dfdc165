//! Top-N per group: a filter that keeps `row_number()`, `rank()` or `dense_rank()` ≤ k of a
//! window (directly, or through a projection) turns the window into `TopPerGroup`, which
//! keeps a bounded list per group instead of sorting every row. The filter stays: the node
//! already drops the other rows, so it is cheap, and it keeps `rn = 2`-style predicates exact.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, LogicalPlan, Operator, Projection,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::logical::top_per_group::TopPerGroup;
use super::physical::top_per_group::Ranking;

/// Past this k a bounded list per group saves little over sorting.
const MAX_K: i128 = 10_000;

#[derive(Debug, Default)]
pub struct RankingFilter;

/// The ranking window function of a window expression, if it is one the node can compute.
pub fn ranking_of(expr: &Expr) -> Option<(Ranking, &WindowFunction)> {
    let Expr::WindowFunction(wf) = unalias(expr) else {
        return None;
    };
    let ranking = Ranking::of(wf.fun.name())?;
    let p = &wf.params;
    (p.args.is_empty() && p.filter.is_none() && !p.distinct && !p.order_by.is_empty())
        .then_some((ranking, wf))
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

fn integer(expr: &Expr) -> Option<i128> {
    match unalias(expr) {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int8(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int16(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int32(Some(v)) => Some(i128::from(*v)),
            ScalarValue::Int64(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt8(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt16(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt32(Some(v)) => Some(i128::from(*v)),
            ScalarValue::UInt64(Some(v)) => Some(i128::from(*v)),
            _ => None,
        },
        Expr::Cast(c) => integer(&c.expr),
        Expr::TryCast(c) => integer(&c.expr),
        _ => None,
    }
}

/// The k of a conjunct bounding `rank` from above (`rank <= k`, `rank < k + 1`, `k >= rank`,
/// `rank = k`).
fn bound(conjunct: &Expr, rank: &Column) -> Option<i128> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
        return None;
    };
    let is_rank = |e: &Expr| matches!(unalias(e), Expr::Column(c) if c == rank);
    let (op, value) = if is_rank(left) {
        (*op, integer(right)?)
    } else if is_rank(right) {
        (op.swap()?, integer(left)?)
    } else {
        return None;
    };
    match op {
        Operator::LtEq | Operator::Eq => Some(value),
        Operator::Lt => Some(value - 1),
        _ => None,
    }
}

impl OptimizerRule for RankingFilter {
    fn name(&self) -> &str {
        "augur_ranking_filter"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !crate::cluster::AugurOptions::enabled(&config.options(), |_| true) {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Filter(filter) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let (projection, below) = match filter.input.as_ref() {
            LogicalPlan::Projection(p) => (Some(p), p.input.as_ref()),
            other => (None, other),
        };
        let LogicalPlan::Window(window) = below else {
            return Ok(Transformed::no(plan));
        };
        let [expr] = window.window_expr.as_slice() else {
            return Ok(Transformed::no(plan));
        };
        if ranking_of(expr).is_none() {
            return Ok(Transformed::no(plan));
        }
        // The rank column as the filter sees it.
        let last = window.schema.fields().len() - 1;
        let column = Column::from(window.schema.qualified_field(last));
        let rank = match projection {
            None => column,
            Some(p) => {
                let Some(i) = p
                    .expr
                    .iter()
                    .position(|e| matches!(unalias(e), Expr::Column(c) if *c == column))
                else {
                    return Ok(Transformed::no(plan));
                };
                Column::from(p.schema.qualified_field(i))
            }
        };
        let Some(k) = split_conjunction(&filter.predicate)
            .into_iter()
            .filter_map(|c| bound(c, &rank))
            .min()
        else {
            return Ok(Transformed::no(plan));
        };
        if !(1..=MAX_K).contains(&k) {
            return Ok(Transformed::no(plan));
        }
        let node = LogicalPlan::Extension(Extension {
            node: Arc::new(TopPerGroup {
                input: window.input.as_ref().clone(),
                window: expr.clone(),
                k: k as usize,
                schema: Arc::clone(&window.schema),
            }),
        });
        let below = match projection {
            Some(p) => LogicalPlan::Projection(Projection::try_new_with_schema(
                p.expr.clone(),
                Arc::new(node),
                Arc::clone(&p.schema),
            )?),
            None => node,
        };
        let filter = Filter::try_new(filter.predicate.clone(), Arc::new(below))?;
        Ok(Transformed::yes(LogicalPlan::Filter(filter)))
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::explain;

    async fn physical(sql: &str) -> String {
        let setup = ["CREATE TABLE t (g INT, v INT, i INT)"];
        explain(&setup, &format!("EXPLAIN {sql}"))
            .await
            .swap_remove(1)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_rank_bound_becomes_a_two_phase_top_per_group() {
        let plan = physical(
            "SELECT * FROM (SELECT g, v, row_number() OVER (PARTITION BY g ORDER BY v DESC) AS rn \
             FROM t) WHERE rn <= 2",
        )
        .await;
        let final_at = plan.find("TopPerGroupExec: mode=final, RowNumber <= 2");
        let partial_at = plan.find("TopPerGroupExec: mode=partial, RowNumber <= 2");
        assert!(
            matches!((final_at, partial_at), (Some(f), Some(p)) if f < p),
            "{plan}"
        );
        assert!(
            !plan.contains("SortExec") && !plan.contains("WindowAggExec"),
            "{plan}"
        );
        for (sql, k) in [
            (
                "rank() OVER (PARTITION BY g ORDER BY v) AS r FROM t) WHERE r < 4",
                "Rank <= 3",
            ),
            (
                "dense_rank() OVER (ORDER BY v) AS r FROM t) WHERE 1 >= r",
                "DenseRank <= 1",
            ),
            (
                "row_number() OVER (PARTITION BY g ORDER BY v) AS r FROM t) WHERE r = 1 AND v > 0",
                "RowNumber <= 1",
            ),
        ] {
            let plan = physical(&format!("SELECT * FROM (SELECT g, v, {sql}")).await;
            assert!(plan.contains(k), "{sql}:\n{plan}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn other_windows_and_bounds_keep_the_sort() {
        for sql in [
            // Not a bound from above.
            "row_number() OVER (PARTITION BY g ORDER BY v) AS r FROM t) WHERE r >= 2",
            // An expression of the rank.
            "row_number() OVER (PARTITION BY g ORDER BY v) AS r FROM t) WHERE r + 0 <= 2",
            // Not a ranking function.
            "sum(v) OVER (PARTITION BY g ORDER BY v) AS r FROM t) WHERE r <= 2",
            // No order: every row ties.
            "rank() OVER (PARTITION BY g) AS r FROM t) WHERE r <= 2",
        ] {
            let plan = physical(&format!("SELECT * FROM (SELECT g, v, {sql}")).await;
            assert!(!plan.contains("TopPerGroupExec"), "{sql}:\n{plan}");
        }
    }
}
