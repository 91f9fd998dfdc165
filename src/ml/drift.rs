//! Population stability: `drift(m, data [, warn, alert])` counts new rows into the bins the
//! model kept at training — each binned feature's bins (woe_binning, scorecard) and the
//! deciles of the model's output — and reports per bin the expected (training) and actual
//! shares, the PSI term (a − e)·ln(a/e) with an empty share taken as 1e-4 (the `psi`
//! aggregate's floor), a scorecard's points and the points shift (a − e)·points, and per
//! feature the PSI and a status: below `warn` (0.10) stable, below `alert` (0.25) a
//! moderate shift, else a significant one.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

use super::binning::range_label;
use super::functions::{ModelCache, input_batch};
use super::model::Model;
use super::registry::Registry;
use augur_udfs::sums::psi_term;

/// A distribution over bins `[cuts[i-1], cuts[i])`: the share of rows in each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub cuts: Vec<f64>,
    pub shares: Vec<f64>,
}

impl Distribution {
    /// Deciles of `values` (fewer bins when values repeat); `None` for no values.
    pub fn deciles(values: &[f64]) -> Option<Distribution> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.par_sort_unstable_by(f64::total_cmp);
        Self::deciles_of_sorted(&sorted)
    }

    /// [`Distribution::deciles`] of values already sorted in ascending order (non-finite
    /// ones are left out here).
    pub fn deciles_of_sorted(sorted: &[f64]) -> Option<Distribution> {
        Self::deciles_of_sorted_by(sorted.len(), |i| sorted[i])
    }

    /// [`Distribution::deciles_of_sorted`] of `len` values read by position (`at(i)`, in
    /// ascending order): a trained model's scores are read from its sorted (score, label,
    /// weight) rows backwards instead of being copied out.
    pub fn deciles_of_sorted_by(len: usize, at: impl Fn(usize) -> f64) -> Option<Distribution> {
        // The first position in start..end where `pred` stops holding (it holds on a prefix).
        let partition_point = |mut start: usize, mut end: usize, pred: &dyn Fn(f64) -> bool| {
            while start < end {
                let mid = start + (end - start) / 2;
                if pred(at(mid)) {
                    start = mid + 1;
                } else {
                    end = mid;
                }
            }
            start
        };
        let first = partition_point(0, len, &|v| !v.is_finite() && v.is_sign_negative());
        let end = partition_point(first, len, &|v| v.is_finite());
        let n = end - first;
        if n == 0 {
            return None;
        }
        let mut cuts: Vec<f64> = vec![];
        for i in 1..10 {
            let c = at(first + i * n / 10);
            if c > at(first) && cuts.last().is_none_or(|l| c > *l) {
                cuts.push(c);
            }
        }
        // Sorted: a bin's rows lie between the positions of its cuts.
        let mut edges = vec![0];
        edges.extend(
            cuts.iter()
                .map(|c| partition_point(first, end, &|v| v < *c) - first),
        );
        edges.push(n);
        let counts: Vec<f64> = edges.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let n = n as f64;
        Some(Distribution {
            cuts,
            shares: counts.iter().map(|c| c / n).collect(),
        })
    }

    fn bin(&self, v: f64) -> usize {
        self.cuts.partition_point(|c| *c <= v)
    }

    fn labels(&self) -> Vec<String> {
        let mut edges = vec![f64::NEG_INFINITY];
        edges.extend(&self.cuts);
        edges.push(f64::INFINITY);
        edges.windows(2).map(|w| range_label(w[0], w[1])).collect()
    }
}

/// The struct of one drift row.
pub fn fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("bin", DataType::Int64, false),
        Field::new("bin_range", DataType::Utf8, false),
        Field::new("expected_share", DataType::Float64, false),
        Field::new("actual_share", DataType::Float64, true),
        Field::new("psi", DataType::Float64, true),
        Field::new("feature_psi", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("points", DataType::Float64, true),
        Field::new("points_shift", DataType::Float64, true),
    ])
}

/// The bins drift counts into: per binned feature its bins plus an `Unseen` slot (a
/// category training never saw), then the output's deciles.
struct Layout {
    features: Vec<Counted>,
}

/// A distribution drift counts into: its name, bin labels, expected shares and points.
type Counted = (String, Vec<String>, Vec<f64>, Vec<Option<f64>>);

fn layout(model: &Model) -> Result<Layout> {
    let mut features = vec![];
    for (j, b) in model.binnings().into_iter().enumerate() {
        let total: f64 = b.bins.iter().map(|x| x.count()).sum();
        let mut labels: Vec<String> = b.bins.iter().map(|x| x.label.clone()).collect();
        let mut expected: Vec<f64> = b.bins.iter().map(|x| x.count() / total).collect();
        let mut points: Vec<Option<f64>> = b.bins.iter().map(|x| model.points(j, x.woe)).collect();
        labels.push("Unseen".into());
        expected.push(0.0);
        points.push(model.points(j, 0.0));
        features.push((b.column.clone(), labels, expected, points));
    }
    if let Some(d) = &model.score_distribution {
        features.push((
            "(score)".into(),
            d.labels(),
            d.shares.clone(),
            vec![None; d.shares.len()],
        ));
    }
    if features.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "drift: model '{}' keeps no distributions (trained before drift existed); train it again",
            model.name
        )));
    }
    Ok(Layout { features })
}

/// `augur_drift('model@v', warn, alert, input columns…)`.
#[derive(Debug)]
pub struct Drift {
    signature: Signature,
    models: Arc<ModelCache>,
}

impl PartialEq for Drift {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for Drift {}
impl std::hash::Hash for Drift {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "augur_drift".hash(state)
    }
}

impl Drift {
    pub fn udaf(registry: &Registry) -> AggregateUDF {
        AggregateUDF::from(Drift {
            signature: Signature::variadic_any(Volatility::Stable),
            models: Arc::new(ModelCache::new(registry)),
        })
    }
}

fn literal(args: &AccumulatorArgs, i: usize) -> Option<ScalarValue> {
    args.exprs
        .get(i)?
        .downcast_ref::<datafusion::physical_expr::expressions::Literal>()
        .map(|l| l.value().clone())
}

impl AggregateUDFImpl for Drift {
    fn name(&self) -> &str {
        "augur_drift"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(fields()),
            true,
        ))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(ScalarValue::Utf8(Some(reference))) = literal(&args, 0) else {
            return Err(DataFusionError::Plan(
                "drift: the model is a literal".into(),
            ));
        };
        let number = |i: usize, default: f64| match literal(&args, i) {
            Some(ScalarValue::Float64(Some(v))) => v,
            _ => default,
        };
        let model = self.models.get(&reference)?;
        let layout = layout(&model)?;
        let width = layout.features.iter().map(|f| f.1.len()).sum();
        Ok(Box::new(DriftCounts {
            warn: number(1, 0.10),
            alert: number(2, 0.25),
            model,
            layout,
            counts: vec![0.0; width],
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}_counts", args.name),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }
}

struct DriftCounts {
    warn: f64,
    alert: f64,
    model: Arc<Model>,
    layout: Layout,
    counts: Vec<f64>,
}

impl std::fmt::Debug for DriftCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DriftCounts({})", self.counts.len())
    }
}

impl Accumulator for DriftCounts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns: Vec<ColumnarValue> = values[3..]
            .iter()
            .map(|a| ColumnarValue::Array(Arc::clone(a)))
            .collect();
        let batch = input_batch(&self.model, &columns)?;
        let mut offset = 0;
        for (j, b) in self.model.binnings().into_iter().enumerate() {
            let column = batch.column(batch.schema().index_of(&b.column)?);
            for bin in b.bins_of(column)? {
                self.counts[offset + bin.unwrap_or(b.bins.len())] += 1.0;
            }
            offset += self.layout.features[j].1.len();
        }
        if let Some(d) = &self.model.score_distribution {
            for s in self.model.score(&batch)?.iter().flatten() {
                self.counts[offset + d.bin(s)] += 1.0;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| DataFusionError::Internal("drift state".into()))?;
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let v = lists.value(i);
                for (c, x) in self
                    .counts
                    .iter_mut()
                    .zip(v.as_primitive::<Float64Type>().values())
                {
                    *c += x;
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::List(Arc::new(
            ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(
                self.counts.iter().map(|c| Some(*c)).collect::<Vec<_>>(),
            )]),
        ))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (mut feature, mut bin, mut range, mut expected, mut actual) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut psi, mut feature_psi, mut status, mut points, mut shift) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut offset = 0;
        for (name, labels, expect, pts) in &self.layout.features {
            let counts = &self.counts[offset..offset + labels.len()];
            offset += labels.len();
            let total: f64 = counts.iter().sum();
            let shares: Vec<Option<f64>> = counts
                .iter()
                .map(|c| (total > 0.0).then(|| c / total))
                .collect();
            let terms: Vec<Option<f64>> = shares
                .iter()
                .zip(expect)
                .map(|(a, e)| a.map(|a| psi_term(*e, a)))
                .collect();
            let sum: Option<f64> = (total > 0.0).then(|| terms.iter().flatten().sum());
            let state = sum.map(|p| {
                if p < self.warn {
                    "stable"
                } else if p < self.alert {
                    "moderate shift"
                } else {
                    "significant shift"
                }
            });
            for (i, label) in labels.iter().enumerate() {
                // Unseen categories are listed only when they occur.
                if label == "Unseen" && counts[i] == 0.0 {
                    continue;
                }
                feature.push(name.clone());
                bin.push(i as i64);
                range.push(label.clone());
                expected.push(expect[i]);
                actual.push(shares[i]);
                psi.push(terms[i]);
                feature_psi.push(sum);
                status.push(state);
                points.push(pts[i]);
                shift.push(pts[i].and_then(|p| shares[i].map(|a| (a - expect[i]) * p)));
            }
        }
        let rows = feature.len();
        let structs = StructArray::try_new(
            fields(),
            vec![
                Arc::new(StringArray::from(feature)) as ArrayRef,
                Arc::new(Int64Array::from(bin)),
                Arc::new(StringArray::from(range)),
                Arc::new(Float64Array::from(expected)),
                Arc::new(Float64Array::from(actual)),
                Arc::new(Float64Array::from(psi)),
                Arc::new(Float64Array::from(feature_psi)),
                Arc::new(StringArray::from(status)),
                Arc::new(Float64Array::from(points)),
                Arc::new(Float64Array::from(shift)),
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(fields()), true)),
            OffsetBuffer::from_lengths([rows]),
            Arc::new(structs),
            None,
        )?;
        Ok(ScalarValue::List(Arc::new(list)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model's score deciles are read backwards from its rows sorted highest first (NaN,
    /// infinities and ties among them): the same bins as the deciles of the values.
    #[test]
    fn deciles_read_backwards_from_descending_rows_equal_the_deciles() {
        let mut values: Vec<f64> = (0..997).map(|i| f64::from((i * 37) % 101) / 7.0).collect();
        values.extend([
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.0,
            3.0,
        ]);
        let mut rows: Vec<(f64, f64, f64)> = values.iter().map(|v| (*v, 0.0, 1.0)).collect();
        crate::ml::metrics::sort_by_score(&mut rows);
        let last = rows.len() - 1;
        let got = Distribution::deciles_of_sorted_by(rows.len(), |i| rows[last - i].0).unwrap();
        let expected = Distribution::deciles(&values).unwrap();
        assert_eq!((got.cuts, got.shares), (expected.cuts, expected.shares));
        let none = Distribution::deciles_of_sorted_by(2, |i| [f64::INFINITY, f64::NAN][i]);
        assert!(none.is_none());
    }

    #[test]
    fn deciles_split_evenly_and_repeated_values_share_a_bin() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let d = Distribution::deciles(&values).unwrap();
        assert_eq!(d.cuts.len(), 9);
        assert!(d.shares.iter().all(|s| (s - 0.1).abs() < 1e-12));
        let d = Distribution::deciles(&[1.0; 50]).unwrap();
        assert_eq!((d.cuts.len(), d.shares.clone()), (0, vec![1.0]));
        assert!(Distribution::deciles(&[]).is_none());
    }
}
