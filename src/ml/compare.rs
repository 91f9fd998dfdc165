//! Champion / challenger: `compare_models(m1, m2, data)` — both models' AUCs on the same
//! rows, DeLong's test of their difference (Sun & Xu's fast algorithm: midranks, O(n log n))
//! and their Brier scores. The aggregate keeps (label, score 1, score 2) per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// What the comparison reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: usize,
    pub auc: [f64; 2],
    /// Standard error of AUC₁ − AUC₂ under DeLong's covariance.
    pub se: f64,
    pub z: f64,
    /// Two-sided p-value of AUC₁ = AUC₂.
    pub p_value: f64,
    pub brier: [f64; 2],
}

/// Midranks (1-based, ties averaged) of `values`.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    ranks
}

fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1.0)
}

/// DeLong's test on rows of (label 0/1, score of model 1, score of model 2).
pub fn delong(rows: &[(f64, f64, f64)]) -> Result<Comparison> {
    let positives: Vec<&(f64, f64, f64)> = rows.iter().filter(|r| r.0 == 1.0).collect();
    let negatives: Vec<&(f64, f64, f64)> = rows.iter().filter(|r| r.0 == 0.0).collect();
    if positives.len() + negatives.len() != rows.len() {
        return Err(DataFusionError::Plan(
            "compare_models: the label must be 0 or 1".into(),
        ));
    }
    let (m, n) = (positives.len(), negatives.len());
    if m < 2 || n < 2 {
        return Err(DataFusionError::Plan(format!(
            "compare_models needs at least two rows of each class; the data has {m} with label 1 \
             and {n} with label 0"
        )));
    }
    let mut auc = [0.0; 2];
    let mut v10 = [vec![], vec![]];
    let mut v01 = [vec![], vec![]];
    for k in 0..2 {
        let score = |r: &(f64, f64, f64)| if k == 0 { r.1 } else { r.2 };
        let x: Vec<f64> = positives.iter().map(|r| score(r)).collect();
        let y: Vec<f64> = negatives.iter().map(|r| score(r)).collect();
        let z: Vec<f64> = x.iter().chain(&y).copied().collect();
        let (tx, ty, tz) = (midranks(&x), midranks(&y), midranks(&z));
        let (mf, nf) = (m as f64, n as f64);
        auc[k] = (tz[..m].iter().sum::<f64>() - mf * (mf + 1.0) / 2.0) / (mf * nf);
        v10[k] = (0..m).map(|i| (tz[i] - tx[i]) / nf).collect();
        v01[k] = (0..n).map(|j| 1.0 - (tz[m + j] - ty[j]) / mf).collect();
    }
    let s = |a: usize, b: usize| {
        covariance(&v10[a], &v10[b]) / m as f64 + covariance(&v01[a], &v01[b]) / n as f64
    };
    let variance = s(0, 0) + s(1, 1) - 2.0 * s(0, 1);
    let difference = auc[0] - auc[1];
    let se = variance.max(0.0).sqrt();
    let z = if se > 0.0 {
        difference / se
    } else if difference == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(difference)
    };
    let p_value = libm::erfc(z.abs() / std::f64::consts::SQRT_2);
    let brier = |k: usize| {
        rows.iter()
            .map(|r| {
                let p = if k == 0 { r.1 } else { r.2 };
                (p - r.0) * (p - r.0)
            })
            .sum::<f64>()
            / rows.len() as f64
    };
    Ok(Comparison {
        rows: rows.len(),
        auc,
        se,
        z,
        p_value,
        brier: [brier(0), brier(1)],
    })
}

pub fn fields() -> Fields {
    Fields::from(
        [
            "rows",
            "auc_1",
            "auc_2",
            "auc_difference",
            "std_error",
            "z",
            "p_value",
            "brier_1",
            "brier_2",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Float64, true))
        .collect::<Vec<_>>(),
    )
}

/// `augur_compare_models(label, probability 1, probability 2)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CompareModels {
    signature: Signature,
}

impl CompareModels {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(CompareModels {
            signature: Signature::any(3, Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for CompareModels {
    fn name(&self) -> &str {
        "augur_compare_models"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Rows::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(["labels", "first", "second"]
            .iter()
            .map(|n| {
                Arc::new(Field::new(
                    format!("{}_{n}", args.name),
                    DataType::List(Arc::clone(&item)),
                    true,
                ))
            })
            .collect())
    }
}

#[derive(Debug, Default)]
struct Rows {
    rows: Vec<(f64, f64, f64)>,
}

impl Rows {
    fn push(&mut self, columns: [&ArrayRef; 3]) -> Result<()> {
        let cast = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Float64);
        let (y, a, b) = (cast(columns[0])?, cast(columns[1])?, cast(columns[2])?);
        let (y, a, b) = (
            y.as_primitive::<Float64Type>(),
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
        );
        for i in 0..y.len() {
            if y.is_valid(i) && a.is_valid(i) && b.is_valid(i) {
                self.rows.push((y.value(i), a.value(i), b.value(i)));
            }
        }
        Ok(())
    }
}

impl Accumulator for Rows {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push([&values[0], &values[1], &values[2]])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let list = |i: usize| {
            states[i]
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| DataFusionError::Internal("compare_models state".into()))
        };
        let (y, a, b) = (list(0)?, list(1)?, list(2)?);
        for i in 0..y.len() {
            if y.is_valid(i) {
                self.push([&y.value(i), &a.value(i), &b.value(i)])?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |f: fn(&(f64, f64, f64)) -> f64| {
            ScalarValue::List(Arc::new(
                ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(
                    self.rows.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
                )]),
            ))
        };
        Ok(vec![list(|r| r.0), list(|r| r.1), list(|r| r.2)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let c = delong(&self.rows)?;
        let values = [
            c.rows as f64,
            c.auc[0],
            c.auc[1],
            c.auc[0] - c.auc[1],
            c.se,
            c.z,
            c.p_value,
            c.brier[0],
            c.brier[1],
        ];
        let arrays: Vec<ArrayRef> = values
            .iter()
            .map(|v| Arc::new(Float64Array::from(vec![*v])) as ArrayRef)
            .collect();
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            fields(),
            arrays,
            None,
        )?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUC by counting pairs, for checking the midrank formula.
    fn auc_by_pairs(rows: &[(f64, f64, f64)], k: usize) -> f64 {
        let s = |r: &(f64, f64, f64)| if k == 0 { r.1 } else { r.2 };
        let (mut sum, mut pairs) = (0.0, 0.0);
        for p in rows.iter().filter(|r| r.0 == 1.0) {
            for q in rows.iter().filter(|r| r.0 == 0.0) {
                pairs += 1.0;
                sum += if s(p) > s(q) {
                    1.0
                } else if s(p) == s(q) {
                    0.5
                } else {
                    0.0
                };
            }
        }
        sum / pairs
    }

    #[test]
    fn aucs_match_pair_counting_with_ties_and_identical_models_do_not_differ() {
        let rows: Vec<(f64, f64, f64)> = (0..60)
            .map(|i| {
                let y = f64::from(u8::from(i % 3 == 0));
                (y, ((i * 7) % 10) as f64 / 10.0, ((i * 11) % 6) as f64 / 6.0)
            })
            .collect();
        let c = delong(&rows).unwrap();
        for k in 0..2 {
            assert!((c.auc[k] - auc_by_pairs(&rows, k)).abs() < 1e-12);
        }
        assert!(c.p_value > 0.0 && c.p_value <= 1.0);
        let same: Vec<(f64, f64, f64)> = rows.iter().map(|r| (r.0, r.1, r.1)).collect();
        let c = delong(&same).unwrap();
        assert_eq!((c.z, c.p_value), (0.0, 1.0));
    }
}
