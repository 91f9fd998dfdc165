//! Training boosted trees from the operator's record batches: a first pass learns the bins
//! (category counts, a row sample for numeric cut points, which columns have NULLs), a
//! second bins every row into bytes; then boosting, and the final model scored on the
//! evaluation rows exactly as `predict` will score them.

use std::collections::HashMap;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use rayon::prelude::*;

use super::TreeModel;
use super::bins::{self, BinMapper};
use super::boost::{self, Progress, Side, exact_sum, mix};
use super::data::{self, Feature, FeatureKind};
use super::hist::Binned;
use super::params::{Objective, TreeParams};
use super::split::FeatureMeta;
use crate::ml::model::{Hooks, Prepared};
use crate::ml::options::TrainOptions;

/// Rows whose contributions are averaged for `feature_importance` (a hash-chosen sample).
const IMPORTANCE_ROWS: usize = 500;

pub struct Fitted {
    pub model: TreeModel,
    pub rows_used: usize,
    pub rows_dropped: usize,
    pub rows_held_out: usize,
    /// (probability or value, label, weight) of the evaluation rows.
    pub scored: Vec<(f64, f64, f64)>,
    pub metrics_on: &'static str,
    pub stop_reason: String,
    pub fit_seconds: f64,
    pub warnings: Vec<String>,
    /// Mean |contribution| per input column on (a sample of) the evaluation rows.
    pub mean_abs_contribution: Vec<f64>,
}

fn plan_err(m: String) -> DataFusionError {
    DataFusionError::Plan(m)
}

/// What the first pass learns from one batch.
#[derive(Default)]
struct Survey {
    sample: Vec<Vec<f64>>,
    counts: Vec<HashMap<String, u64>>,
    missing: Vec<bool>,
    min_max: Vec<(f64, f64)>,
}

/// Rows binned for boosting, with their labels, weights and position-free hashes.
struct Rows {
    binned: Binned,
    labels: Vec<f64>,
    weights: Option<Vec<f64>>,
    hashes: Vec<u64>,
    dropped: usize,
    bad_labels: Vec<f64>,
}

fn hash_columns<'a>(
    prep: &Prepared,
    batch: &'a RecordBatch,
) -> Vec<&'a datafusion::arrow::array::ArrayRef> {
    let mut cols: Vec<&datafusion::arrow::array::ArrayRef> = prep
        .inputs
        .iter()
        .filter_map(|c| batch.column_by_name(c))
        .collect();
    cols.push(batch.column(prep.label_index));
    cols
}

fn survey(
    prep: &Prepared,
    features: &[Feature],
    batch: &RecordBatch,
    rate: f64,
    salt: u64,
) -> Result<Survey> {
    let n = batch.num_rows();
    let mut s = Survey {
        sample: vec![vec![]; features.len()],
        counts: vec![HashMap::new(); prep.inputs.len()],
        missing: vec![false; prep.inputs.len()],
        min_max: vec![(f64::INFINITY, f64::NEG_INFINITY); features.len()],
    };
    for (i, name) in prep.inputs.iter().enumerate() {
        let array = batch
            .column_by_name(name)
            .ok_or_else(|| plan_err(format!("column {name} is missing")))?;
        s.missing[i] = data::has_missing(array.as_ref());
        if features
            .iter()
            .any(|f| f.input == i && matches!(f.kind, FeatureKind::Categorical { .. }))
        {
            data::count_strings(array, &mut s.counts[i])?;
        }
    }
    let picked: Vec<usize> = if rate >= 1.0 {
        (0..n).collect()
    } else {
        let hashes = data::row_hashes(&hash_columns(prep, batch), n)?;
        (0..n)
            .filter(|r| ((mix(hashes[*r] ^ salt) >> 11) as f64 / (1u64 << 53) as f64) < rate)
            .collect()
    };
    let numeric: Vec<Feature> = features
        .iter()
        .filter(|f| !matches!(f.kind, FeatureKind::Categorical { .. }))
        .cloned()
        .collect();
    let values = data::values(&numeric, &prep.inputs, batch)?;
    let mut k = 0;
    for (j, f) in features.iter().enumerate() {
        if matches!(f.kind, FeatureKind::Categorical { .. }) {
            continue;
        }
        let column = &values[k];
        k += 1;
        for v in column.iter().filter(|v| !v.is_nan()) {
            s.min_max[j].0 = s.min_max[j].0.min(*v);
            s.min_max[j].1 = s.min_max[j].1.max(*v);
        }
        s.sample[j].extend(picked.iter().map(|r| column[*r]).filter(|v| !v.is_nan()));
    }
    Ok(s)
}

fn bin_rows(
    prep: &Prepared,
    features: &[Feature],
    mappers: &[BinMapper],
    batches: &[&RecordBatch],
    binary: bool,
    column_major: bool,
) -> Result<Rows> {
    let d = features.len();
    let parts: Vec<Result<Rows>> = batches
        .par_iter()
        .map(|batch| {
            let n = batch.num_rows();
            let values = data::values(features, &prep.inputs, batch)?;
            let labels = cast(batch.column(prep.label_index), &DataType::Float64)?;
            let labels = labels.as_primitive::<Float64Type>();
            let weights = match prep.weight_index {
                Some(w) => Some(cast(batch.column(w), &DataType::Float64)?),
                None => None,
            };
            let hashes = data::row_hashes(&hash_columns(prep, batch), n)?;
            let mut out = Rows {
                binned: Binned {
                    rows: 0,
                    features: d,
                    column_major: false,
                    bins: Vec::with_capacity(n * d),
                    by_row: vec![],
                },
                labels: Vec::with_capacity(n),
                weights: weights.as_ref().map(|_| Vec::with_capacity(n)),
                hashes: Vec::with_capacity(n),
                dropped: 0,
                bad_labels: vec![],
            };
            for r in 0..n {
                if labels.is_null(r) {
                    out.dropped += 1;
                    continue;
                }
                let y = labels.value(r);
                let w = weights.as_ref().map(|w| {
                    if w.is_null(r) {
                        f64::NAN
                    } else {
                        w.as_primitive::<Float64Type>().value(r)
                    }
                });
                if w.is_some_and(|w| w.is_nan() || w < 0.0 || !w.is_finite()) || !y.is_finite() {
                    out.dropped += 1;
                    continue;
                }
                if binary && y != 0.0 && y != 1.0 {
                    if out.bad_labels.len() < 10_000 && !out.bad_labels.contains(&y) {
                        out.bad_labels.push(y);
                    }
                    continue;
                }
                for (f, m) in mappers.iter().enumerate() {
                    out.binned.bins.push(m.bin(values[f][r]));
                }
                out.labels.push(y);
                if let (Some(ws), Some(w)) = (out.weights.as_mut(), w) {
                    ws.push(w);
                }
                out.hashes.push(hashes[r]);
            }
            out.binned.rows = out.labels.len();
            Ok(out)
        })
        .collect();
    let mut all = Rows {
        binned: Binned {
            rows: 0,
            features: d,
            column_major,
            bins: vec![],
            by_row: vec![],
        },
        labels: vec![],
        weights: prep.weight_index.map(|_| vec![]),
        hashes: vec![],
        dropped: 0,
        bad_labels: vec![],
    };
    let parts: Vec<Rows> = parts.into_iter().collect::<Result<_>>()?;
    let total: usize = parts.iter().map(|p| p.labels.len()).sum();
    all.labels.reserve_exact(total);
    all.hashes.reserve_exact(total);
    if column_major {
        // Batches bin row by row; training reads a feature at a time.
        all.binned.bins = vec![0u8; total * d];
        all.binned
            .bins
            .par_chunks_mut(total.max(1))
            .enumerate()
            .for_each(|(f, column)| {
                let mut at = 0;
                for p in &parts {
                    for (i, row) in p.binned.bins.chunks_exact(d).enumerate() {
                        column[at + i] = row[f];
                    }
                    at += p.labels.len();
                }
            });
    } else {
        all.binned.bins.reserve_exact(total * d);
    }
    if column_major {
        all.binned.by_row.reserve_exact(total * d);
    }
    for p in parts {
        if column_major {
            all.binned.by_row.extend_from_slice(&p.binned.bins);
        } else {
            all.binned.bins.extend_from_slice(&p.binned.bins);
        }
        all.labels.extend_from_slice(&p.labels);
        if let (Some(a), Some(b)) = (all.weights.as_mut(), p.weights.as_ref()) {
            a.extend_from_slice(b);
        }
        all.hashes.extend_from_slice(&p.hashes);
        all.dropped += p.dropped;
        for y in p.bad_labels {
            if all.bad_labels.len() < 10_000 && !all.bad_labels.contains(&y) {
                all.bad_labels.push(y);
            }
        }
    }
    all.binned.rows = all.labels.len();
    Ok(all)
}

/// Monotone directions per feature from `name:±1` pairs naming features or input columns.
fn resolve_constraints(
    params: &TreeParams,
    features: &[Feature],
    inputs: &[String],
) -> Result<Vec<i8>> {
    let mut out = vec![0i8; features.len()];
    for (name, direction) in &params.monotone_constraints {
        let matching: Vec<usize> = features
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.eq_ignore_ascii_case(name))
            .map(|(i, _)| i)
            .collect();
        let Some(&f) = matching.first() else {
            return Err(plan_err(format!(
                "monotone_constraints names '{name}', which is not a feature of the model; features: {}",
                features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if matches!(features[f].kind, FeatureKind::Categorical { .. }) {
            return Err(plan_err(format!(
                "monotone_constraints: '{}' is a category (column {}); constraints apply to numeric features",
                features[f].name, inputs[features[f].input]
            )));
        }
        out[f] = *direction;
    }
    Ok(out)
}

pub fn fit(options: &TrainOptions, prep: &Prepared, hooks: &Hooks) -> Result<Fitted> {
    let params = options.trees.clone().unwrap_or_default();
    // "Fit" is binning and boosting, as LightGBM's Dataset construction plus train.
    let fit_started = Instant::now();
    let mut features = data::features_for(&prep.schema, &prep.inputs)?;
    let train_batches: Vec<&RecordBatch> = prep.train_parts.iter().flatten().collect();
    let total: usize = train_batches.iter().map(|b| b.num_rows()).sum();
    let rate = params.bin_construct_sample_cnt as f64 / total.max(1) as f64;
    let salt = mix(options.seed ^ 0xB1B5);

    // Pass 1: what the bins need.
    let surveys: Vec<Survey> = train_batches
        .par_iter()
        .map(|b| survey(prep, &features, b, rate, salt))
        .collect::<Result<_>>()?;
    let mut sample: Vec<Vec<f64>> = vec![vec![]; features.len()];
    let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); prep.inputs.len()];
    let mut missing = vec![false; prep.inputs.len()];
    let mut min_max = vec![(f64::INFINITY, f64::NEG_INFINITY); features.len()];
    for s in surveys {
        for (a, b) in sample.iter_mut().zip(s.sample) {
            a.extend(b);
        }
        for (a, b) in counts.iter_mut().zip(s.counts) {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
        }
        for (a, b) in missing.iter_mut().zip(s.missing) {
            *a |= b;
        }
        for (a, b) in min_max.iter_mut().zip(s.min_max) {
            *a = (a.0.min(b.0), a.1.max(b.1));
        }
    }
    let mut mappers = vec![];
    let mut infos = vec![];
    for (j, f) in features.iter_mut().enumerate() {
        let input = f.input;
        if let FeatureKind::Categorical { categories } = &mut f.kind {
            let (ordered, freq) =
                data::order_categories(&prep.inputs[input], std::mem::take(&mut counts[input]))?;
            let mapper = bins::categorical(&freq, params.max_bin, params.min_data_in_bin);
            let BinMapper::Categorical { kept } = mapper else {
                unreachable!()
            };
            *categories = ordered.into_iter().take(kept).collect();
            infos.push(if kept == 0 {
                "none".to_string()
            } else {
                (0..kept)
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            });
            mappers.push(mapper);
        } else {
            let mapper = bins::numeric(
                std::mem::take(&mut sample[j]),
                params.max_bin,
                params.min_data_in_bin,
                missing[input],
            );
            let (lo, hi) = min_max[j];
            infos.push(if lo <= hi {
                format!("[{lo}:{hi}]")
            } else {
                "none".into()
            });
            mappers.push(mapper);
        }
    }
    let monotone = resolve_constraints(&params, &features, &prep.inputs)?;
    let metas: Vec<FeatureMeta> = mappers
        .iter()
        .zip(&monotone)
        .map(|(m, mono)| FeatureMeta {
            bins: m.num_bins(),
            nan_bin: matches!(m, BinMapper::Numeric { nan_bin: true, .. }),
            categorical: m.is_categorical(),
            monotone: *mono,
        })
        .collect();

    // Pass 2: bin every row. The objective decides whether labels must be 0/1.
    let explicit_binary = params.objective == Objective::Binary;
    let train = bin_rows(
        prep,
        &features,
        &mappers,
        &train_batches,
        explicit_binary,
        true,
    )?;
    if !train.bad_labels.is_empty() {
        let mut bad = train.bad_labels.clone();
        bad.sort_by(f64::total_cmp);
        let shown: Vec<String> = bad.iter().take(5).map(|v| v.to_string()).collect();
        return Err(plan_err(format!(
            "label '{}' of a binary boosted_trees model must be 0 or 1; found {}: use objective = 'regression' \
             for a numeric target",
            options.label,
            shown.join(", ")
        )));
    }
    let objective = match params.objective {
        Objective::Auto => {
            if train.labels.iter().all(|y| *y == 0.0 || *y == 1.0) {
                Objective::Binary
            } else {
                Objective::Regression
            }
        }
        o => o,
    };
    if train.labels.is_empty() {
        return Err(plan_err(format!(
            "no training rows: the query returned {} rows, {} had a NULL label or weight, and {} were held out",
            prep.rows_read,
            train.dropped,
            prep.test_batches
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        )));
    }
    let test_batches: Vec<&RecordBatch> = prep.test_batches.iter().collect();
    let test = bin_rows(
        prep,
        &features,
        &mappers,
        &test_batches,
        objective == Objective::Binary,
        false,
    )?;
    if params.early_stopping_rounds > 0 && test.labels.is_empty() {
        return Err(plan_err(
            "early_stopping_rounds needs held-out rows to watch: add split = 0.2 (and split_key)"
                .into(),
        ));
    }
    // Working memory: bins, labels, scores, gradients, row lists.
    (hooks.reserve)(
        train.binned.bytes() + test.binned.bytes() + (train.labels.len() + test.labels.len()) * 56,
    )?;

    let setup = boost::Setup {
        params: &params,
        objective,
        features: &metas,
        mappers: &mappers,
        seed: options.seed,
        row_hash: &train.hashes,
    };
    let train_side = Side {
        binned: &train.binned,
        labels: &train.labels,
        weights: train.weights.as_deref(),
    };
    let test_side = Side {
        binned: &test.binned,
        labels: &test.labels,
        weights: test.weights.as_deref(),
    };
    let report = |p: Progress| (hooks.progress)(p.iteration, p.validation.unwrap_or(f64::NAN));
    let boosted = boost::boost(
        &setup,
        &train_side,
        (!test.labels.is_empty()).then_some(&test_side),
        &report,
    );
    if boosted.cancelled {
        return Err(DataFusionError::Execution("training cancelled".into()));
    }
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    let mut model = TreeModel {
        objective,
        features,
        trees: boosted.trees,
        init_score: boosted.init_score,
        monotone,
        feature_infos: infos,
        metric: Some(boosted.metric),
        validation: boosted.validation,
        iterations_run: 0,
        imported_from: None,
    };
    model.iterations_run = model.validation.len().max(model.trees.len());
    let mut warnings = vec![];
    if boosted.stop_reason.starts_with("stopped after") {
        warnings.push(boosted.stop_reason.clone());
    }

    // Metrics on the held-out rows, scored through the same path as predict; without them,
    // on the training rows' final scores from boosting (no early stopping there).
    let binary = model.is_binary();
    let out = |s: f64| {
        if binary {
            augur_udfs::math::sigmoid(s)
        } else {
            s
        }
    };
    let (eval_batches, metrics_on): (Vec<&RecordBatch>, _) = if test.labels.is_empty() {
        (train_batches.clone(), "training")
    } else {
        (test_batches.clone(), "held-out")
    };
    let mut scored = vec![];
    if test.labels.is_empty() {
        scored = boosted
            .train_scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    out(*s),
                    train.labels[i],
                    train.weights.as_ref().map_or(1.0, |w| w[i]),
                )
            })
            .collect();
    }
    let mut sums = vec![vec![]; prep.inputs.len()];
    let eval_rows: usize = eval_batches.iter().map(|b| b.num_rows()).sum();
    let keep = IMPORTANCE_ROWS as f64 / eval_rows.max(1) as f64;
    for batch in &eval_batches {
        let values = model.values(&prep.inputs, batch)?;
        if !test.labels.is_empty() {
            let raw = model.raw(&values, batch.num_rows());
            let labels = cast(batch.column(prep.label_index), &DataType::Float64)?;
            let labels = labels.as_primitive::<Float64Type>();
            let weights = match prep.weight_index {
                Some(w) => Some(cast(batch.column(w), &DataType::Float64)?),
                None => None,
            };
            for (r, s) in raw.iter().enumerate() {
                let w = weights.as_ref().map_or(Some(1.0), |w| {
                    w.is_valid(r)
                        .then(|| w.as_primitive::<Float64Type>().value(r))
                });
                // The rows training counted: a label, and a usable weight.
                if let (false, Some(w)) = (labels.is_null(r), w)
                    && w >= 0.0
                    && w.is_finite()
                {
                    scored.push((out(*s), labels.value(r), w));
                }
            }
        }
        // Mean |contribution| per input on a hash-chosen sample of the rows.
        let hashes = data::row_hashes(&hash_columns(prep, batch), batch.num_rows())?;
        let picked: Vec<usize> = (0..batch.num_rows())
            .filter(|r| {
                keep >= 1.0
                    || ((mix(hashes[*r] ^ salt ^ 1) >> 11) as f64 / (1u64 << 53) as f64) < keep
            })
            .collect();
        if !picked.is_empty() {
            let sub: Vec<Vec<f64>> = values
                .iter()
                .map(|c| picked.iter().map(|r| c[*r]).collect())
                .collect();
            for phi in model.contributions(&sub, picked.len()) {
                let mut per_input = vec![0.0; prep.inputs.len()];
                for (f, feature) in model.features.iter().enumerate() {
                    per_input[feature.input] += phi[f];
                }
                for (s, v) in sums.iter_mut().zip(per_input) {
                    s.push(v.abs());
                }
            }
        }
    }
    let mean_abs_contribution = sums
        .iter()
        .map(|s| {
            if s.is_empty() {
                0.0
            } else {
                exact_sum(s.iter().copied()) / s.len() as f64
            }
        })
        .collect();
    Ok(Fitted {
        rows_used: train.labels.len(),
        rows_dropped: train.dropped + test.dropped,
        rows_held_out: test.labels.len(),
        scored,
        metrics_on,
        stop_reason: boosted.stop_reason,
        fit_seconds,
        warnings,
        mean_abs_contribution,
        model,
    })
}
