//! `EagerConjunctions`, a physical optimizer rule: an `a AND b` (or `a OR b`) whose right side
//! is only comparisons of columns and constants evaluates `b` over the whole batch and
//! combines the two, instead of DataFusion's pre-selection. When `a` keeps under a fifth of
//! the rows, DataFusion copies the batch's kept rows out, evaluates `b` on them and scatters
//! the answers back one run of rows at a time; for `l_shipdate` ranges (TPC-H Q6, Q12) that
//! copy and scatter cost more than comparing every row, a fifth of Q6's time. A right side
//! that is not that cheap (functions, LIKE, CASE, arithmetic, which could also fail on rows
//! `a` excludes) keeps DataFusion's evaluation. Whole-batch short cuts (`a` false on every row
//! of an AND) are kept. `SET augur.eager_conjunctions = false` turns it off.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};

use super::expression_rules::{BinaryRule, Evaluate, plain_of};

/// The rule: `AND`/`OR` with a cheap right side becomes [`Faster`]`<`[`Eager`]`>`.
pub fn rule() -> BinaryRule<Eager> {
    BinaryRule {
        name: "eager_conjunctions",
        on: |o| o.eager_conjunctions,
        applies: cheap_conjunction,
        how: Eager,
    }
}

fn cheap_conjunction(binary: &BinaryExpr, schema: &Schema) -> bool {
    let boolean =
        |side: &Arc<dyn PhysicalExpr>| side.data_type(schema).is_ok_and(|t| t == DataType::Boolean);
    matches!(binary.op(), Operator::And | Operator::Or)
        && boolean(binary.left())
        && boolean(binary.right())
        && cheap(binary.right())
}

/// Comparisons, `IN` lists, `IS [NOT] NULL`, `NOT`, `AND`, `OR` over columns and constants:
/// cheap on every row, and none can fail on a row the left side would have excluded.
fn cheap(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let leaf = |e: &Arc<dyn PhysicalExpr>| {
        e.downcast_ref::<Column>().is_some() || e.downcast_ref::<Literal>().is_some()
    };
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let compares = matches!(
            binary.op(),
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
        );
        return (compares && leaf(binary.left()) && leaf(binary.right()))
            || (matches!(binary.op(), Operator::And | Operator::Or)
                && cheap(binary.left())
                && cheap(binary.right()));
    }
    if let Some(plain) = plain_of(expr) {
        return cheap(&plain);
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        return leaf(list.expr())
            && list
                .list()
                .iter()
                .all(|e| e.downcast_ref::<Literal>().is_some());
    }
    if let Some(not) = expr.downcast_ref::<NotExpr>() {
        return cheap(not.arg());
    }
    if let Some(null) = expr.downcast_ref::<IsNullExpr>() {
        return leaf(null.arg());
    }
    if let Some(null) = expr.downcast_ref::<IsNotNullExpr>() {
        return leaf(null.arg());
    }
    false
}

/// An `AND` or `OR` evaluating its right side over the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eager;

impl Evaluate for Eager {
    fn evaluate(&self, plain: &BinaryExpr, batch: &RecordBatch) -> Result<ColumnarValue> {
        let and = *plain.op() == Operator::And;
        let left = plain.left().evaluate(batch)?;
        // The left side decides every row: false for AND, true for OR (NULLs decide nothing).
        let decided = match &left {
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(v))) => *v != and,
            ColumnarValue::Array(array) => {
                let array = array.as_boolean();
                let set = array.values().count_set_bits();
                array.null_count() == 0 && if and { set == 0 } else { set == array.len() }
            }
            _ => false,
        };
        if decided {
            return Ok(left);
        }
        let right = plain.right().evaluate(batch)?;
        let rows = batch.num_rows();
        let (l, r) = (left.into_array(rows)?, right.into_array(rows)?);
        let (Some(l), Some(r)) = (l.as_boolean_opt(), r.as_boolean_opt()) else {
            return internal_err!("{} on non-boolean values", plain);
        };
        let result = if and {
            and_kleene(l, r)?
        } else {
            or_kleene(l, r)?
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal, NotExpr};
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::filter::FilterExec;

    use super::Eager;
    use crate::optimizer::expression_rules::Faster;

    fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, i))
    }

    fn int(v: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::Int64(Some(v))))
    }

    fn cmp(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("c", DataType::Int64, false),
        ]))
    }

    /// Left sides keeping no row, a few, half, all but a few and all (with NULLs and without), right
    /// sides of one comparison or several, under AND and OR: the eager form gives
    /// DataFusion's values and NULLs on every row.
    #[test]
    fn eager_agrees_with_pre_selection() {
        let mut seed = 11u64;
        let rows = 4096;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let a: Int64Array = (0..rows)
            .map(|i| (i % 17 != 0).then_some(next() % 1000))
            .collect();
        let b: Int64Array = (0..rows)
            .map(|i| (i % 23 != 0).then_some(next() % 100))
            .collect();
        let c: Int64Array = (0..rows).map(|i| (i * 7919 % rows) as i64).collect();
        let columns: Vec<Arc<dyn Array>> = vec![Arc::new(a), Arc::new(b), Arc::new(c)];
        let batch = RecordBatch::try_new(schema(), columns).expect("batch");
        let rights = [
            cmp(col("b", 1), Operator::Lt, int(30)),
            cmp(
                cmp(col("b", 1), Operator::GtEq, int(10)),
                Operator::Or,
                Arc::new(NotExpr::new(cmp(col("b", 1), Operator::Eq, int(5)))),
            ),
        ];
        let mut compared = 0;
        for threshold in [-1, 0, 2, 30, 500, 970, 1000] {
            let lefts = [
                cmp(col("a", 0), Operator::Lt, int(threshold)),
                // No NULLs: DataFusion's pre-selection and whole-batch short cuts apply.
                cmp(col("c", 2), Operator::Lt, int(threshold * 4)),
                Arc::new(Literal::new(ScalarValue::Boolean(Some(threshold > 0)))) as _,
                Arc::new(Literal::new(ScalarValue::Boolean(None))) as _,
            ];
            for left in &lefts {
                for right in &rights {
                    for op in [Operator::And, Operator::Or] {
                        let plain =
                            Arc::new(BinaryExpr::new(Arc::clone(left), op, Arc::clone(right)));
                        let eager = Faster::new(&plain, Eager);
                        let expected = plain.evaluate(&batch).expect("plain").into_array(rows);
                        let got = eager.evaluate(&batch).expect("eager").into_array(rows);
                        let (expected, got) = (expected.expect("array"), got.expect("array"));
                        assert_eq!(&expected, &got, "{plain}");
                        assert!(got.null_count() < rows);
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 7 * 4 * 2 * 2);
    }

    fn filter(predicate: Arc<dyn PhysicalExpr>) -> Arc<dyn ExecutionPlan> {
        let input = Arc::new(EmptyExec::new(schema()));
        Arc::new(FilterExec::try_new(predicate, input).expect("filter"))
    }

    fn eager_at_top(plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> bool {
        let plan = super::rule().optimize(plan, config).expect("optimize");
        let filter = plan.downcast_ref::<FilterExec>().expect("filter");
        filter.predicate().downcast_ref::<Faster<Eager>>().is_some()
    }

    #[test]
    fn rule_takes_only_cheap_right_sides() {
        let config = ConfigOptions::default();
        let left = cmp(col("a", 0), Operator::Gt, int(1));
        let cheap = cmp(col("b", 1), Operator::Lt, int(2));
        let cheap_and = filter(cmp(Arc::clone(&left), Operator::And, Arc::clone(&cheap)));
        assert!(eager_at_top(Arc::clone(&cheap_and), &config));
        // Arithmetic may fail on rows the left side excludes: DataFusion's evaluation stays.
        let sum = cmp(col("b", 1), Operator::Plus, int(1));
        let arithmetic = cmp(sum, Operator::Lt, int(2));
        assert!(!eager_at_top(
            filter(cmp(Arc::clone(&left), Operator::And, arithmetic)),
            &config
        ));
        let off = {
            let mut off = ConfigOptions::default();
            off.extensions.insert(crate::cluster::AugurOptions {
                eager_conjunctions: false,
                ..Default::default()
            });
            off
        };
        assert!(!eager_at_top(cheap_and, &off));
    }
}
