//! `NarrowDecimals`, a physical optimizer rule: decimal `+`, `-` and `*` on Decimal128 values
//! that fit in 64 bits are computed with one 64×64→128-bit operation per row instead of
//! arrow's checked 128-bit arithmetic (which, for `1 - l_discount`, multiplies every row by a
//! scale factor of one and checks both products). The result type and every value are those
//! arrow's kernel gives: a batch is taken on the narrow path only when no result can overflow
//! 128 bits, so there is nothing to check; any other batch runs arrow's kernel, which reports
//! overflow as before. Decimal columns of precision ≤ 18 (TPC-H's `decimal(15,2)`) always fit.
//! Projections, filters and aggregate arguments are rewritten. `SET augur.decimal64 = false`
//! turns it off.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType, Decimal128Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr_common::datum::apply;

use super::expression_rules::{BinaryRule, Evaluate};

/// The rule: decimal arithmetic becomes [`Faster`](super::expression_rules::Faster)`<`[`Narrow`]`>`.
pub fn rule() -> BinaryRule<Narrow> {
    BinaryRule {
        name: "narrow_decimals",
        on: |o| o.decimal64,
        applies: decimal_arithmetic,
        how: Narrow,
    }
}

/// A `+`, `-` or `*` of two Decimal128 operands.
fn decimal_arithmetic(binary: &BinaryExpr, schema: &Schema) -> bool {
    let decimal = |side: &Arc<dyn PhysicalExpr>| {
        side.data_type(schema)
            .is_ok_and(|t| matches!(t, DataType::Decimal128(..)))
    };
    matches!(
        binary.op(),
        Operator::Plus | Operator::Minus | Operator::Multiply
    ) && decimal(binary.left())
        && decimal(binary.right())
}

/// Decimal `+`, `-` or `*` on the 64-bit path whenever the batch allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Narrow;

impl Evaluate for Narrow {
    fn evaluate(&self, plain: &BinaryExpr, batch: &RecordBatch) -> Result<ColumnarValue> {
        let left = plain.left().evaluate(batch)?;
        let right = plain.right().evaluate(batch)?;
        let op = *plain.op();
        if let Some(array) = narrow_path(op, &left, &right) {
            return Ok(ColumnarValue::Array(array));
        }
        // What BinaryExpr itself runs for these operators (for decimals, the wrapping
        // kernels check overflow too).
        match op {
            Operator::Plus => apply(&left, &right, numeric::add_wrapping),
            Operator::Minus => apply(&left, &right, numeric::sub_wrapping),
            _ => apply(&left, &right, numeric::mul_wrapping),
        }
    }
}

/// One operand: its unscaled values (one for a scalar), validity, precision and scale.
struct Operand<'a> {
    values: &'a [i128],
    nulls: Option<&'a NullBuffer>,
    precision: u8,
    scale: i8,
    scalar: bool,
}

fn operand(value: &ColumnarValue) -> Option<Operand<'_>> {
    match value {
        ColumnarValue::Array(array) => {
            let DataType::Decimal128(precision, scale) = *array.data_type() else {
                return None;
            };
            let decimals = array.as_primitive_opt::<Decimal128Type>()?;
            Some(Operand {
                values: decimals.values(),
                nulls: decimals.nulls(),
                precision,
                scale,
                scalar: false,
            })
        }
        // A NULL scalar makes the whole result NULL: arrow's kernel handles that.
        ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), precision, scale)) => {
            Some(Operand {
                values: std::slice::from_ref(v),
                nulls: None,
                precision: *precision,
                scale: *scale,
                scalar: true,
            })
        }
        _ => None,
    }
}

/// `f` over the operands' values narrowed to i64, row by row (a scalar repeated); one loop
/// per shape so that none indexes through a branch.
fn combine(
    len: usize,
    l: &Operand,
    r: &Operand,
    f: impl Fn(i64, i64) -> i128,
) -> ScalarBuffer<i128> {
    match (l.scalar, r.scalar) {
        (true, _) => {
            let a = l.values[0] as i64;
            r.values.iter().map(|b| f(a, *b as i64)).collect()
        }
        (_, true) => {
            let b = r.values[0] as i64;
            l.values.iter().map(|a| f(*a as i64, b)).collect()
        }
        _ => {
            let (lv, rv) = (&l.values[..len], &r.values[..len]);
            lv.iter()
                .zip(rv)
                .map(|(a, b)| f(*a as i64, *b as i64))
                .collect()
        }
    }
}

/// Every value (NULL slots too: their contents are unspecified) fits in an i64.
fn fits_i64(values: &[i128]) -> bool {
    values
        .iter()
        .fold(true, |ok, v| ok & (*v as i64 as i128 == *v))
}

/// `left op right` on the 64-bit path, or `None` when this batch must take arrow's kernel.
/// With both operands in i64 and scale factors ≤ 10^18, each product is below 2^126 and
/// each sum below 2^125: no result can overflow, so none is checked.
fn narrow_path(op: Operator, left: &ColumnarValue, right: &ColumnarValue) -> Option<ArrayRef> {
    let (l, r) = (operand(left)?, operand(right)?);
    let len = match (left, right) {
        (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => return None,
        (ColumnarValue::Array(a), _) | (_, ColumnarValue::Array(a)) => a.len(),
    };
    let rows = |o: &Operand| o.scalar || o.values.len() == len;
    if !rows(&l) || !rows(&r) || !fits_i64(l.values) || !fits_i64(r.values) {
        return None;
    }
    // The result's precision and scale as arrow's `decimal_op` computes them.
    let (precision, scale, l_mul, r_mul) = match op {
        Operator::Plus | Operator::Minus => {
            let scale = l.scale.max(r.scale);
            let range = (l.precision as i8 - l.scale).max(r.precision as i8 - r.scale);
            let precision = (scale.saturating_add(range) as u8)
                .saturating_add(1)
                .min(DECIMAL128_MAX_PRECISION);
            let factor = |s: i8| 10i64.checked_pow(u32::try_from(scale - s).ok()?);
            (precision, scale, factor(l.scale)?, factor(r.scale)?)
        }
        Operator::Multiply => {
            let scale = l.scale.checked_add(r.scale)?;
            if scale > 38 {
                return None;
            }
            let precision = l
                .precision
                .saturating_add(r.precision + 1)
                .min(DECIMAL128_MAX_PRECISION);
            (precision, scale, 1, 1)
        }
        _ => return None,
    };
    let values = match op {
        Operator::Multiply => combine(len, &l, &r, |a, b| a as i128 * b as i128),
        Operator::Plus => combine(len, &l, &r, |a, b| {
            a as i128 * l_mul as i128 + b as i128 * r_mul as i128
        }),
        _ => combine(len, &l, &r, |a, b| {
            a as i128 * l_mul as i128 - b as i128 * r_mul as i128
        }),
    };
    let nulls = NullBuffer::union(l.nulls, r.nulls);
    let array = Decimal128Array::new(values, nulls)
        .with_precision_and_scale(precision, scale)
        .ok()?;
    Some(Arc::new(array))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Decimal128Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::{ColumnarValue, Operator};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

    use super::Narrow;
    use crate::optimizer::expression_rules::Faster;

    /// Types the operands take: TPC-H's, a wider scale, the widest i64-sized and two that are
    /// wider than i64 (their values may or may not fit).
    const TYPES: [(u8, i8); 6] = [(15, 2), (12, 4), (18, 0), (20, 0), (38, 10), (38, 0)];

    /// Values of precision `p`: random ones, zero, the extremes of i64 and of `p` digits.
    fn values(p: u8, seed: &mut u64, rows: usize) -> Vec<Option<i128>> {
        let max = 10i128.pow(p as u32) - 1;
        let edges = [
            0,
            1,
            -1,
            max,
            -max,
            i64::MAX as i128,
            i64::MIN as i128,
            i64::MAX as i128 + 1,
        ];
        (0..rows)
            .map(|i| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (*seed >> 11) as i128;
                match i % 11 {
                    0 => None,
                    1..=3 => edges
                        .get((r % 8) as usize)
                        .copied()
                        .filter(|v| v.abs() <= max),
                    _ => Some(r % max.min(1 << 53)),
                }
            })
            .collect()
    }

    fn decimal(values: Vec<Option<i128>>, (p, s): (u8, i8)) -> Arc<dyn Array> {
        let array = Decimal128Array::from(values);
        Arc::new(array.with_precision_and_scale(p, s).expect("type"))
    }

    /// Every operator, shape and type pair, row blocks that fit in i64 and blocks that do
    /// not: the narrow form gives arrow's array (type, values, NULLs) or arrow's error.
    #[test]
    fn narrow_agrees_with_arrow() {
        let mut seed = 7;
        let mut narrow_batches = 0;
        for l in TYPES {
            for r in TYPES {
                let schema = Arc::new(Schema::new(vec![
                    Field::new("a", DataType::Decimal128(l.0, l.1), true),
                    Field::new("b", DataType::Decimal128(r.0, r.1), true),
                ]));
                // Small values only (every row fits), then the edges mixed in.
                for mixed in [false, true] {
                    let rows = 64;
                    let mut a = values(l.0, &mut seed, rows);
                    let mut b = values(r.0, &mut seed, rows);
                    if !mixed {
                        let small = |v: &mut Option<i128>| {
                            *v = v.map(|x| x % 1_000_000_000);
                        };
                        a.iter_mut().for_each(small);
                        b.iter_mut().for_each(small);
                    }
                    let scalar_a = ScalarValue::Decimal128(a[1].or(Some(3)), l.0, l.1);
                    let scalar_b = ScalarValue::Decimal128(b[2].or(Some(5)), r.0, r.1);
                    let batch = RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![decimal(a, l), decimal(b, r)],
                    )
                    .expect("batch");
                    let col_a: Arc<dyn PhysicalExpr> = Arc::new(Column::new("a", 0));
                    let col_b: Arc<dyn PhysicalExpr> = Arc::new(Column::new("b", 1));
                    let shapes: [(Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>); 3] = [
                        (Arc::clone(&col_a), Arc::clone(&col_b)),
                        (Arc::new(Literal::new(scalar_a)), Arc::clone(&col_b)),
                        (Arc::clone(&col_a), Arc::new(Literal::new(scalar_b))),
                    ];
                    for (left, right) in shapes {
                        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
                            let plain = Arc::new(BinaryExpr::new(
                                Arc::clone(&left),
                                op,
                                Arc::clone(&right),
                            ));
                            let narrow = Faster::new(&plain, Narrow);
                            let expected = plain.evaluate(&batch);
                            let got = narrow.evaluate(&batch);
                            let context = format!("{l:?} {op} {r:?}, {plain}, mixed {mixed}");
                            match (expected, got) {
                                (Ok(e), Ok(g)) => {
                                    let (e, g) = (array(e, 64), array(g, 64));
                                    assert_eq!(e.data_type(), g.data_type(), "{context}");
                                    assert_eq!(&e, &g, "{context}");
                                }
                                (Err(_), Err(_)) => {}
                                (e, g) => panic!("{context}: arrow {e:?}, narrow {g:?}"),
                            }
                            let (lv, rv) = (left.evaluate(&batch), right.evaluate(&batch));
                            if super::narrow_path(op, &lv.expect("l"), &rv.expect("r")).is_some() {
                                narrow_batches += 1;
                            }
                        }
                    }
                }
            }
        }
        // The narrow path was taken, not only the fallback.
        assert!(narrow_batches > 100, "{narrow_batches} narrow batches");
    }

    fn array(value: ColumnarValue, rows: usize) -> Arc<dyn Array> {
        value.into_array(rows).expect("array")
    }

    fn projection(op: Operator, data_type: DataType) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", data_type.clone(), true),
            Field::new("b", data_type, true),
        ]));
        let sum = BinaryExpr::new(
            Arc::new(Column::new("a", 0)),
            op,
            Arc::new(Column::new("b", 1)),
        );
        let exprs = vec![ProjectionExpr::new(Arc::new(sum), "x".to_string())];
        Arc::new(ProjectionExec::try_new(exprs, Arc::new(EmptyExec::new(schema))).expect("plan"))
    }

    fn narrowed(plan: &Arc<dyn ExecutionPlan>) -> bool {
        let projection = plan.downcast_ref::<ProjectionExec>().expect("projection");
        projection.expr()[0]
            .expr
            .downcast_ref::<Faster<Narrow>>()
            .is_some()
    }

    #[test]
    fn rule_rewrites_decimal_arithmetic_only() {
        let config = ConfigOptions::default();
        let decimal = DataType::Decimal128(15, 2);
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            let plan = super::rule().optimize(projection(op, decimal.clone()), &config);
            assert!(narrowed(&plan.expect("optimize")), "{op}");
        }
        let divide = super::rule().optimize(projection(Operator::Divide, decimal.clone()), &config);
        assert!(!narrowed(&divide.expect("optimize")));
        let ints = super::rule().optimize(projection(Operator::Multiply, DataType::Int64), &config);
        assert!(!narrowed(&ints.expect("optimize")));

        let mut off = ConfigOptions::default();
        off.extensions.insert(crate::cluster::AugurOptions {
            decimal64: false,
            ..Default::default()
        });
        let plan = super::rule().optimize(projection(Operator::Multiply, decimal), &off);
        assert!(!narrowed(&plan.expect("optimize")));
    }
}
