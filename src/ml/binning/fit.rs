//! Fitting the bins of each feature from the training rows: count events and non-events
//! per pre-bin (numbers: quantile pre-bins; strings: categories ordered by event rate),
//! merge pure pre-bins into a neighbour as optbinning's refinement does, then let the
//! optimiser choose the merge. Also reads values into bins at scoring time.

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use rayon::prelude::*;

use super::optimal::{Solution, solve};
use super::{Bin, BinningParams, Cuts, FeatureBinning, Trend, range_label, woe_iv};
use crate::ml::model::Hooks;
use crate::ml::preprocess::kind_of;

/// Above this many values, quantiles come from an even stride sample of this size.
const QUANTILE_SAMPLE: usize = 1 << 20;

fn plan_err(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

/// Each row's label (true = event) or `None` when it is NULL; non-0/1 labels are errors.
pub fn labels(
    batches: &[RecordBatch],
    index: usize,
    label: &str,
) -> Result<Vec<Vec<Option<bool>>>> {
    let mut bad: Vec<f64> = vec![];
    let out = batches
        .iter()
        .map(|b| {
            let values = cast(b.column(index), &DataType::Float64)?;
            Ok(values
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| {
                    v.and_then(|v| match v {
                        0.0 => Some(false),
                        1.0 => Some(true),
                        other => {
                            if bad.len() < 5 && !bad.contains(&other) {
                                bad.push(other);
                            }
                            None
                        }
                    })
                })
                .collect())
        })
        .collect::<Result<Vec<_>>>()?;
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().map(|v| v.to_string()).collect();
        return Err(plan_err(format!(
            "label '{label}' of a binning must be 0 (non-event) or 1 (event); found {}",
            shown.join(", ")
        )));
    }
    Ok(out)
}

/// Fit the bins of every feature column (in parallel). Each feature in flight holds its
/// clean values (16 bytes a row), charged to the memory pool first; a cancel stops before
/// the next feature.
pub fn fit_all(
    batches: &[RecordBatch],
    labels: &[Vec<Option<bool>>],
    columns: &[String],
    params: &BinningParams,
    hooks: &Hooks,
) -> Result<Vec<FeatureBinning>> {
    let rows: usize = labels.iter().map(|l| l.len()).sum();
    let in_flight = columns.len().min(rayon::current_num_threads()).max(1);
    (hooks.reserve)(rows * 16 * in_flight)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    columns
        .par_iter()
        .map(|c| {
            let count = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !(hooks.progress)(count, f64::NAN) {
                return Err(DataFusionError::Execution("training cancelled".into()));
            }
            fit_feature(batches, labels, c, params)
        })
        .collect()
}

/// Counts of one feature: clean pre-bin material, special and missing rows.
#[derive(Default)]
struct Tally {
    special: (f64, f64),
    missing: (f64, f64),
    total: f64,
}

impl Tally {
    fn add(cell: &mut (f64, f64), event: bool) {
        if event { cell.0 += 1.0 } else { cell.1 += 1.0 }
    }
}

fn fit_feature(
    batches: &[RecordBatch],
    labels: &[Vec<Option<bool>>],
    column: &str,
    params: &BinningParams,
) -> Result<FeatureBinning> {
    let Some(first) = batches.first() else {
        return Err(plan_err("no training rows".into()));
    };
    let index = first.schema().index_of(column)?;
    let numeric = kind_of(first.schema().field(index).data_type()) == Some("numeric");
    let mut tally = Tally::default();
    let (prebins, cuts_of): (Vec<(f64, f64)>, Prebins) = if numeric {
        let specials = parse_specials(column, &params.special_values)?;
        let mut clean: Vec<(f64, bool)> = vec![];
        for (b, y) in batches.iter().zip(labels) {
            let values = cast(b.column(index), &DataType::Float64)?;
            for (v, y) in values.as_primitive::<Float64Type>().iter().zip(y) {
                let Some(y) = *y else { continue };
                tally.total += 1.0;
                match v {
                    None => Tally::add(&mut tally.missing, y),
                    Some(x) if x.is_nan() => Tally::add(&mut tally.missing, y),
                    Some(x) if specials.contains(&x) => Tally::add(&mut tally.special, y),
                    Some(x) => clean.push((x, y)),
                }
            }
        }
        numeric_prebins(column, &clean, params.max_prebins)?
    } else {
        let mut counts: HashMap<String, (f64, f64)> = HashMap::new();
        for (b, y) in batches.iter().zip(labels) {
            let values = cast(b.column(index), &DataType::Utf8)?;
            for (v, y) in values.as_string::<i32>().iter().zip(y) {
                let Some(y) = *y else { continue };
                tally.total += 1.0;
                match v {
                    None => Tally::add(&mut tally.missing, y),
                    Some(s) if params.special_values.iter().any(|p| p == s) => {
                        Tally::add(&mut tally.special, y)
                    }
                    Some(s) => Tally::add(counts.entry(s.to_string()).or_default(), y),
                }
            }
        }
        category_prebins(column, counts, params.max_prebins)?
    };
    let (prebins, cuts_of) = refine(prebins, cuts_of);
    let clean: f64 = prebins.iter().map(|c| c.0 + c.1).sum();
    let min_count = (params.min_bin_share * tally.total).ceil();
    if clean < min_count {
        return Err(plan_err(format!(
            "feature '{column}': min_bin_share = {} needs {min_count} rows in every bin, but only \
             {clean} of its {} rows are neither NULL nor special; lower min_bin_share",
            params.min_bin_share, tally.total
        )));
    }
    let trend = match (&cuts_of, params.monotonic_trend) {
        // Categories are ordered by event rate, so their natural trend is ascending.
        (Prebins::Categories(_), Trend::None) => Trend::None,
        (Prebins::Categories(_), _) => Trend::Ascending,
        (_, t) => t,
    };
    let (solution, trend) = best(&prebins, min_count, params.max_bins, trend).ok_or_else(|| {
        plan_err(format!(
            "feature '{column}': no binning meets min_bin_share = {} with max_bins = {} and \
             monotonic_trend = '{}'; lower min_bin_share or use monotonic_trend = 'none'",
            params.min_bin_share,
            params.max_bins,
            trend.name()
        ))
    })?;
    let mut counts: Vec<(f64, f64)> = solution
        .groups
        .iter()
        .map(|&(a, b)| {
            prebins[a..=b]
                .iter()
                .fold((0.0, 0.0), |s, c| (s.0 + c.0, s.1 + c.1))
        })
        .collect();
    let (cuts, mut labels_of): (Cuts, Vec<String>) = match &cuts_of {
        Prebins::Splits(splits) => {
            let chosen: Vec<f64> = solution.groups[..solution.groups.len() - 1]
                .iter()
                .map(|&(_, b)| splits[b])
                .collect();
            let mut edges = vec![f64::NEG_INFINITY];
            edges.extend(&chosen);
            edges.push(f64::INFINITY);
            let labels = edges.windows(2).map(|w| range_label(w[0], w[1])).collect();
            (Cuts::Numeric { splits: chosen }, labels)
        }
        Prebins::Categories(groups) => {
            let merged: Vec<Vec<String>> = solution
                .groups
                .iter()
                .map(|&(a, b)| groups[a..=b].concat())
                .collect();
            let labels = merged.iter().map(|g| g.join(", ")).collect();
            (Cuts::Categorical { groups: merged }, labels)
        }
    };
    counts.push(tally.special);
    counts.push(tally.missing);
    labels_of.push("Special".into());
    labels_of.push("Missing".into());
    let stats = woe_iv(&counts);
    let bins: Vec<Bin> = counts
        .iter()
        .zip(stats)
        .zip(labels_of)
        .map(|((&(events, nonevents), (woe, iv)), label)| Bin {
            label,
            events,
            nonevents,
            woe,
            iv,
        })
        .collect();
    Ok(FeatureBinning {
        column: column.to_string(),
        cuts,
        trend,
        prebin_splits: match &cuts_of {
            Prebins::Splits(s) => s.clone(),
            Prebins::Categories(_) => vec![],
        },
        special_values: params.special_values.clone(),
        iv: bins.iter().map(|b| b.iv).sum(),
        bins,
    })
}

/// The best solution under `trend`; `auto` tries ascending and descending.
fn best(
    prebins: &[(f64, f64)],
    min_count: f64,
    max_bins: usize,
    trend: Trend,
) -> Option<(Solution, Trend)> {
    if trend != Trend::Auto {
        return solve(prebins, min_count, max_bins, trend).map(|s| (s, trend));
    }
    let up = solve(prebins, min_count, max_bins, Trend::Ascending);
    let down = solve(prebins, min_count, max_bins, Trend::Descending);
    match (up, down) {
        (Some(u), Some(d)) if d.iv > u.iv => Some((d, Trend::Descending)),
        (Some(u), _) => Some((u, Trend::Ascending)),
        (None, d) => d.map(|d| (d, Trend::Descending)),
    }
}

fn parse_specials(column: &str, specials: &[String]) -> Result<Vec<f64>> {
    specials
        .iter()
        .map(|s| {
            s.parse::<f64>().map_err(|_| {
                plan_err(format!(
                    "special_values: '{s}' is not a number, but feature '{column}' is numeric"
                ))
            })
        })
        .collect()
}

/// What the pre-bins are: split points of numbers (one fewer than pre-bins), or the
/// categories of each pre-bin.
enum Prebins {
    Splits(Vec<f64>),
    Categories(Vec<Vec<String>>),
}

fn one_value(column: &str, value: String) -> DataFusionError {
    plan_err(format!(
        "feature '{column}' has one distinct value ({value}) apart from NULLs and special \
         values: it cannot be binned; leave it out of the query"
    ))
}

fn numeric_prebins(
    column: &str,
    clean: &[(f64, bool)],
    max_prebins: usize,
) -> Result<(Vec<(f64, f64)>, Prebins)> {
    let stride = clean.len().div_ceil(QUANTILE_SAMPLE).max(1);
    let mut sample: Vec<f64> = clean.iter().step_by(stride).map(|c| c.0).collect();
    sample.sort_unstable_by(f64::total_cmp);
    let Some(&lo) = sample.first() else {
        return Err(plan_err(format!(
            "feature '{column}' has no values apart from NULLs and special values: it cannot be \
             binned; leave it out of the query"
        )));
    };
    let all_same = clean.iter().all(|c| c.0 == clean[0].0);
    if all_same {
        return Err(one_value(column, format!("{lo}")));
    }
    let mut splits: Vec<f64> = vec![];
    for i in 1..max_prebins {
        let s = sample[i * sample.len() / max_prebins];
        if s > lo && splits.last().is_none_or(|last| s > *last) {
            splits.push(s);
        }
    }
    if splits.is_empty() {
        // The sample's quantiles all equal its minimum: split above it.
        if let Some(s) = clean
            .iter()
            .map(|c| c.0)
            .filter(|x| *x > lo)
            .reduce(f64::min)
        {
            splits.push(s);
        }
    }
    let mut counts = vec![(0.0, 0.0); splits.len() + 1];
    for &(x, y) in clean {
        Tally::add(&mut counts[splits.partition_point(|s| *s <= x)], y);
    }
    Ok((counts, Prebins::Splits(splits)))
}

fn category_prebins(
    column: &str,
    counts: HashMap<String, (f64, f64)>,
    max_prebins: usize,
) -> Result<(Vec<(f64, f64)>, Prebins)> {
    let mut cats: Vec<(String, (f64, f64))> = counts.into_iter().collect();
    if cats.len() < 2 {
        return Err(one_value(
            column,
            cats.first().map_or("none".into(), |c| format!("'{}'", c.0)),
        ));
    }
    cats.sort_by(|a, b| {
        let ra = a.1.0 / (a.1.0 + a.1.1);
        let rb = b.1.0 / (b.1.0 + b.1.1);
        ra.total_cmp(&rb).then_with(|| a.0.cmp(&b.0))
    });
    // Many categories: neighbours in event-rate order share a pre-bin, by row count.
    let total: f64 = cats.iter().map(|c| c.1.0 + c.1.1).sum();
    let few = cats.len() <= max_prebins;
    let mut groups: Vec<Vec<String>> = vec![];
    let mut counts: Vec<(f64, f64)> = vec![];
    let (mut seen, mut current) = (0.0, usize::MAX);
    for (i, (name, (e, n))) in cats.into_iter().enumerate() {
        let chunk = if few {
            i
        } else {
            ((seen / total) * max_prebins as f64) as usize
        };
        if chunk != current {
            groups.push(vec![]);
            counts.push((0.0, 0.0));
            current = chunk;
        }
        seen += e + n;
        if let (Some(g), Some(c)) = (groups.last_mut(), counts.last_mut()) {
            g.push(name);
            c.0 += e;
            c.1 += n;
        }
    }
    Ok((counts, Prebins::Categories(groups)))
}

/// Merge pre-bins with no events or no non-events into their right neighbour (the last
/// into its left one), as optbinning's pre-binning refinement does, until none is pure.
fn refine(mut counts: Vec<(f64, f64)>, mut cuts: Prebins) -> (Vec<(f64, f64)>, Prebins) {
    let pure = |c: &(f64, f64)| c.0 <= 0.0 || c.1 <= 0.0;
    while counts.len() > 1 && counts.iter().any(pure) {
        let m = counts.len();
        let mut keep_boundary: Vec<bool> = (0..m - 1).map(|i| !pure(&counts[i])).collect();
        if pure(&counts[m - 1]) {
            keep_boundary[m - 2] = false;
        }
        let mut merged: Vec<(f64, f64)> = vec![counts[0]];
        for i in 1..m {
            let c = counts[i];
            if keep_boundary[i - 1] {
                merged.push(c);
            } else if let Some(last) = merged.last_mut() {
                last.0 += c.0;
                last.1 += c.1;
            }
        }
        cuts = match cuts {
            Prebins::Splits(s) => Prebins::Splits(
                s.into_iter()
                    .zip(&keep_boundary)
                    .filter(|(_, k)| **k)
                    .map(|(s, _)| s)
                    .collect(),
            ),
            Prebins::Categories(g) => {
                let mut out: Vec<Vec<String>> = vec![];
                for (i, group) in g.into_iter().enumerate() {
                    if i == 0 || keep_boundary[i - 1] {
                        out.push(group);
                    } else if let Some(last) = out.last_mut() {
                        last.extend(group);
                    }
                }
                Prebins::Categories(out)
            }
        };
        counts = merged;
    }
    (counts, cuts)
}

impl FeatureBinning {
    /// The bin of each value of `array` (the feature's column); `None` for a category not
    /// seen in training.
    pub fn bins_of(&self, array: &ArrayRef) -> Result<Vec<Option<usize>>> {
        match &self.cuts {
            Cuts::Numeric { .. } => {
                let specials = self.numeric_specials();
                let values = cast(array, &DataType::Float64)?;
                Ok(values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| {
                        Some(match v {
                            None => self.missing_bin(),
                            Some(x) if x.is_nan() => self.missing_bin(),
                            Some(x) => self.bin_of_number(x, &specials),
                        })
                    })
                    .collect())
            }
            Cuts::Categorical { groups } => {
                let index: HashMap<&str, usize> = groups
                    .iter()
                    .enumerate()
                    .flat_map(|(i, g)| g.iter().map(move |c| (c.as_str(), i)))
                    .collect();
                let values = cast(array, &DataType::Utf8)?;
                Ok(values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| match v {
                        None => Some(self.missing_bin()),
                        Some(s) if self.special_values.iter().any(|p| p == s) => {
                            Some(self.special_bin())
                        }
                        Some(s) => index.get(s).copied(),
                    })
                    .collect())
            }
        }
    }

    /// Each value's WoE; a category not seen in training has WoE 0 (no evidence either way).
    pub fn woe_of(&self, array: &ArrayRef) -> Result<Vec<f64>> {
        Ok(self
            .bins_of(array)?
            .into_iter()
            .map(|b| b.map_or(0.0, |b| self.bins[b].woe))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(x: Vec<Option<f64>>, c: Vec<Option<&str>>, y: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("y", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(x)),
                Arc::new(StringArray::from(c)),
                Arc::new(Int64Array::from(y)),
            ],
        )
        .unwrap()
    }

    fn data() -> RecordBatch {
        let n = 2000;
        let x: Vec<Option<f64>> = (0..n)
            .map(|i| match i % 50 {
                0 => None,
                1 => Some(-1.0),
                _ => Some((i % 97) as f64),
            })
            .collect();
        let c: Vec<Option<&str>> = (0..n).map(|i| Some(["a", "b", "c", "d"][i % 4])).collect();
        // Events grow with x and depend on the category.
        let y: Vec<i64> = (0..n)
            .map(|i| i64::from(((i % 97) * 7 + (i % 4) * 40 + i % 13 * 11) % 160 > 100))
            .collect();
        batch(x, c, y)
    }

    #[test]
    fn numbers_and_categories_get_monotone_bins_with_special_and_missing() {
        let b = data();
        let labels = labels(std::slice::from_ref(&b), 2, "y").unwrap();
        let params = BinningParams {
            special_values: vec!["-1".into()],
            monotonic_trend: Trend::Ascending,
            ..BinningParams::default()
        };
        let fitted = fit_all(
            std::slice::from_ref(&b),
            &labels,
            &["x".into(), "c".into()],
            &params,
            &Hooks::none(),
        )
        .unwrap();
        let x = &fitted[0];
        let rates: Vec<f64> = x.bins[..x.regular_bins()]
            .iter()
            .map(|b| b.events / b.count())
            .collect();
        assert!(rates.windows(2).all(|w| w[1] >= w[0]), "{rates:?}");
        assert_eq!(x.bins[x.special_bin()].count(), 40.0);
        assert_eq!(x.bins[x.missing_bin()].count(), 40.0);
        let total: f64 = x.bins.iter().map(|b| b.count()).sum();
        assert_eq!(total, 2000.0);
        assert!(
            x.bins[..x.regular_bins()]
                .iter()
                .all(|b| b.count() >= 100.0)
        );
        // Scoring puts each training value in the bin it was counted in.
        let woe = x.woe_of(b.column(0)).unwrap();
        let bins = x.bins_of(b.column(0)).unwrap();
        for (w, bin) in woe.iter().zip(&bins) {
            assert_eq!(*w, x.bins[bin.unwrap()].woe);
        }
        let c = &fitted[1];
        assert!(matches!(c.cuts, Cuts::Categorical { .. }));
        let unseen: ArrayRef = Arc::new(StringArray::from(vec![Some("zz"), None]));
        assert_eq!(
            c.bins_of(&unseen).unwrap(),
            vec![None, Some(c.missing_bin())]
        );
    }

    #[test]
    fn bad_features_are_named() {
        let b = batch(
            vec![Some(1.0); 10],
            vec![Some("a"); 10],
            vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        );
        let labels = labels(std::slice::from_ref(&b), 2, "y").unwrap();
        let params = BinningParams::default();
        for c in ["x", "c"] {
            let err = fit_all(
                std::slice::from_ref(&b),
                &labels,
                &[c.into()],
                &params,
                &Hooks::none(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(&format!("feature '{c}' has one distinct value")),
                "{err}"
            );
        }
        let b = batch(vec![Some(1.0)], vec![Some("a")], vec![3]);
        let err = super::labels(std::slice::from_ref(&b), 2, "y").unwrap_err();
        assert!(err.to_string().contains("found 3"), "{err}");
    }
}
