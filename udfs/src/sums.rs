//! Aggregates whose whole state is a few running sums: the population stability index
//! `psi(expected_share, actual_share)` and `weighted_avg(x, w)`.

use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::cast::as_float64_array;
use datafusion::common::{ScalarValue, exec_err, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Accumulator, AggregateUDF, Documentation, Signature, Volatility};

use crate::aggregate::{Aggregate, Sum, f64_state, i64_state};
use crate::math::SECTION;

/// Stand-in for an empty bin's share: ln(0) would make the whole index infinite.
pub const PSI_FLOOR: f64 = 1e-4;

/// One bin's PSI term (a − e)·ln(a / e), shares ≤ 0 replaced by [`PSI_FLOOR`].
pub fn psi_term(expected: f64, actual: f64) -> f64 {
    let floor = |s: f64| if s <= 0.0 { PSI_FLOOR } else { s };
    let (e, a) = (floor(expected), floor(actual));
    (a - e) * (a / e).ln()
}

/// Σ psi_term over rows, and how many rows: zero rows is NULL, not a PSI of 0.
#[derive(Debug, Default)]
struct PsiAccumulator {
    sum: Sum,
    rows: i64,
}

impl Accumulator for PsiAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [expected, actual] = values else {
            return internal_err!("psi takes 2 arguments");
        };
        let (expected, actual) = (as_float64_array(expected)?, as_float64_array(actual)?);
        for (e, a) in expected.iter().zip(actual.iter()) {
            if let (Some(e), Some(a)) = (e, a) {
                self.sum.add(psi_term(e, a));
                self.rows += 1;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum.value())),
            ScalarValue::Int64(Some(self.rows)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = f64_state("psi", states, 0)?;
        let rows = i64_state("psi", states, 1)?;
        for (sum, rows) in sums.iter().zip(rows.iter()) {
            if let (Some(sum), Some(rows)) = (sum, rows) {
                self.sum.add(sum);
                self.rows += rows;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.rows > 0).then(|| self.sum.value()),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Σw·x and Σw; the mean is undefined (NULL) while Σw is 0, including with no rows.
#[derive(Debug, Default)]
struct WeightedAvgAccumulator {
    weighted: Sum,
    weights: Sum,
}

impl Accumulator for WeightedAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [x, w] = values else {
            return internal_err!("weighted_avg takes 2 arguments");
        };
        let (x, w) = (as_float64_array(x)?, as_float64_array(w)?);
        for (x, w) in x.iter().zip(w.iter()) {
            if let (Some(x), Some(w)) = (x, w) {
                // A negative weight can push Σw through 0 and the "average" anywhere.
                if w < 0.0 {
                    return exec_err!("weighted_avg: weight must not be negative, found {w}");
                }
                self.weighted.add(w * x);
                self.weights.add(w);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.weighted.value())),
            ScalarValue::Float64(Some(self.weights.value())),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let weighted = f64_state("weighted_avg", states, 0)?;
        let weights = f64_state("weighted_avg", states, 1)?;
        for (wx, w) in weighted.iter().zip(weights.iter()) {
            if let (Some(wx), Some(w)) = (wx, w) {
                self.weighted.add(wx);
                self.weights.add(w);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let w = self.weights.value();
        Ok(ScalarValue::Float64(
            (w != 0.0).then(|| self.weighted.value() / w),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

fn psi_state(_: &[FieldRef]) -> Vec<(&'static str, DataType)> {
    vec![("sum", DataType::Float64), ("rows", DataType::Int64)]
}

fn weighted_avg_state(_: &[FieldRef]) -> Vec<(&'static str, DataType)> {
    vec![
        ("weighted_sum", DataType::Float64),
        ("weight_sum", DataType::Float64),
    ]
}

static PSI_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "Population stability index over bins, one row per bin: Σ (actual − expected) · \
         ln(actual / expected). A share ≤ 0 (an empty bin) is replaced by 1e-4 so that the \
         logarithm stays finite. Rows where either share is NULL are ignored; no rows gives \
         NULL. Common reading: < 0.1 stable, 0.1–0.25 some shift, > 0.25 major shift.",
        "psi(expected_share, actual_share)",
    )
    .with_argument(
        "expected_share",
        "the bin's share of the reference (development) population, between 0 and 1",
    )
    .with_argument(
        "actual_share",
        "the bin's share of the population being compared",
    )
    .with_sql_example("SELECT psi(dev_share, recent_share) FROM score_band_shares;")
    .build()
});

static WEIGHTED_AVG_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "Weighted mean Σ(w·x) / Σw. Rows where x or w is NULL are ignored; NULL when the \
         weights sum to 0 (including no rows). A negative weight is an error.",
        "weighted_avg(x, w)",
    )
    .with_argument("x", "the value to average")
    .with_argument(
        "w",
        "the row's weight, ≥ 0 (for example an exposure or a balance)",
    )
    .with_sql_example("SELECT weighted_avg(interest_rate, balance) FROM loans;")
    .build()
});

pub fn aggregates() -> Vec<AggregateUDF> {
    let two_doubles = || Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable);
    vec![
        Aggregate {
            name: "psi",
            signature: two_doubles(),
            output: DataType::Float64,
            state: psi_state,
            accumulator: |_| Ok(Box::<PsiAccumulator>::default()),
            doc: &PSI_DOC,
        }
        .udaf(),
        Aggregate {
            name: "weighted_avg",
            signature: two_doubles(),
            output: DataType::Float64,
            state: weighted_avg_state,
            accumulator: |_| Ok(Box::<WeightedAvgAccumulator>::default()),
            doc: &WEIGHTED_AVG_DOC,
        }
        .udaf(),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aggregate::testing::{Rng, assert_close, check_merge_property, close, whole};
    use datafusion::arrow::array::Float64Array;

    fn udaf(name: &str) -> AggregateUDF {
        crate::aggregate::testing::named(aggregates(), name)
    }

    fn run(name: &str, a: &[Option<f64>], b: &[Option<f64>]) -> Result<Option<f64>> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(a.to_vec())),
            Arc::new(Float64Array::from(b.to_vec())),
        ];
        match whole(&udaf(name), &columns)? {
            ScalarValue::Float64(v) => Ok(v),
            other => panic!("{name} gave {other:?}"),
        }
    }

    #[test]
    fn hand_checked_values() -> Result<()> {
        let e = [Some(0.2), Some(0.3), Some(0.5), None];
        let a = [Some(0.25), Some(0.25), Some(0.5), Some(0.1)];
        let psi = 0.05 * (0.25f64 / 0.2).ln() + -0.05 * (0.25f64 / 0.3).ln();
        assert!(close(run("psi", &e, &a)?.unwrap_or(f64::NAN), psi));
        // An empty bin counts as 1e-4.
        let floored = (0.1 - 1e-4) * (0.1f64 / 1e-4).ln();
        assert!(close(
            run("psi", &[Some(0.0)], &[Some(0.1)])?.unwrap_or(f64::NAN),
            floored
        ));
        let avg = run(
            "weighted_avg",
            &[Some(1.0), Some(4.0), None],
            &[Some(3.0), Some(1.0), Some(9.0)],
        )?;
        assert_eq!(avg, Some(7.0 / 4.0));
        Ok(())
    }

    #[test]
    fn nulls_empty_single_row_and_errors() -> Result<()> {
        for name in ["psi", "weighted_avg"] {
            assert_eq!(run(name, &[], &[])?, None, "{name}");
            assert_eq!(
                run(name, &[None, Some(1.0)], &[Some(1.0), None])?,
                None,
                "{name}"
            );
        }
        assert_eq!(run("psi", &[Some(0.5)], &[Some(0.5)])?, Some(0.0));
        assert_eq!(run("weighted_avg", &[Some(2.5)], &[Some(2.0)])?, Some(2.5));
        assert_eq!(run("weighted_avg", &[Some(2.5)], &[Some(0.0)])?, None);
        let err = run("weighted_avg", &[Some(1.0)], &[Some(-2.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("weighted_avg: weight must not be negative, found -2"),
            "{err}"
        );
        Ok(())
    }

    fn dataset(rng: &mut Rng) -> Vec<ArrayRef> {
        let n = rng.below(300);
        let value = |rng: &mut Rng| match rng.below(20) {
            0 => None,
            1 => Some(0.0),
            _ => Some(rng.unit()),
        };
        let a: Float64Array = (0..n).map(|_| value(rng)).collect();
        let b: Float64Array = (0..n).map(|_| value(rng)).collect();
        vec![Arc::new(a), Arc::new(b)]
    }

    #[test]
    fn merged_states_agree_with_one_pass() -> Result<()> {
        check_merge_property(&udaf("psi"), dataset, assert_close)?;
        check_merge_property(&udaf("weighted_avg"), dataset, assert_close)
    }
}
