//! Fitting the generalised linear models (logistic and linear regression, Spark's
//! semantics): encode the prepared rows into column-major shards on every core, run the
//! optimiser, and keep what `explain` and `feature_importance` need.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};

use super::logistic::{self, Shard};
use super::model::{Hooks, Model, Prepared, TrainingSummary, now_unix, plan_err};
use super::optim::Iteration;
use super::options::{NullPolicy, TrainOptions};
use super::preprocess;
use super::rows::Rows;

/// Fit on `prep`; the encoders are learned from the training rows unless given (a
/// scorecard's WoE bins).
pub fn fit(
    name: &str,
    version: u32,
    options: &TrainOptions,
    prep: &Prepared,
    hooks: &Hooks,
    encoders: Option<Vec<preprocess::Encoder>>,
) -> Result<Model> {
    let schema = &prep.schema;
    let inputs = prep.inputs.clone();
    let (label_index, weight_index) = (prep.label_index, prep.weight_index);
    let rows_read = prep.rows_read;
    let mut iteration = 0usize;
    let keep_going = |it: &Iteration| {
        iteration += 1;
        (hooks.progress)(iteration, it.objective)
    };
    let all_train: Vec<RecordBatch> = prep.train_parts.iter().flatten().cloned().collect();
    let encoders = match encoders {
        Some(e) => e,
        None => preprocess::fit(&all_train, schema, &inputs)?,
    };
    let width: usize = encoders.iter().map(|e| e.width()).sum();
    let feature_names: Vec<String> = encoders.iter().flat_map(|e| e.feature_names()).collect();

    // Per partition: the encoded rows, rows dropped for NULLs, distinct non-0/1 labels seen.
    let encode = |batches: &[RecordBatch]| -> Result<(Shard, usize, Vec<f64>)> {
        let mut dropped = 0;
        let mut bad_labels: Vec<f64> = vec![];
        // Sized up front: growing 8 MB columns by doubling costs copies and page faults.
        let capacity: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut shard = Shard {
            columns: vec![Vec::with_capacity(capacity); width],
            label: Vec::with_capacity(capacity),
            weight: Vec::with_capacity(if weight_index.is_some() { capacity } else { 0 }),
        };
        for batch in batches {
            let n = batch.num_rows();
            let mut columns = vec![Vec::with_capacity(n); width];
            let mut valid = vec![true; n];
            preprocess::encode(
                &encoders,
                batch,
                options.handle_nulls == NullPolicy::Impute,
                &mut columns,
                &mut valid,
            )?;
            if options.handle_nulls == NullPolicy::Error
                && let Some(i) = valid.iter().position(|v| !v)
            {
                let column = inputs
                    .iter()
                    .find(|c| batch.column_by_name(c).is_some_and(|a| a.is_null(i)))
                    .cloned()
                    .unwrap_or_default();
                return Err(plan_err(format!(
                    "column '{column}' is NULL in a training row and handle_nulls = 'error'; filter the rows, \
                     or use handle_nulls = 'drop' or 'impute'"
                )));
            }
            let label = cast(batch.column(label_index), &DataType::Float64)?;
            let label = label.as_primitive::<Float64Type>();
            let weight = match weight_index {
                Some(w) => Some(cast(batch.column(w), &DataType::Float64)?),
                None => None,
            };
            let mut keep = vec![false; n];
            for i in 0..n {
                let y = if label.is_null(i) {
                    None
                } else {
                    Some(label.value(i))
                };
                let w = weight.as_ref().map(|w| {
                    if w.is_null(i) {
                        f64::NAN
                    } else {
                        w.as_primitive::<Float64Type>().value(i)
                    }
                });
                let (Some(y), true) = (y, valid[i]) else {
                    dropped += 1;
                    continue;
                };
                if w.is_some_and(|w| w.is_nan() || w < 0.0) {
                    dropped += 1;
                    continue;
                }
                if options.model_type.is_classifier() && y != 0.0 && y != 1.0 {
                    if bad_labels.len() < 10_000 && !bad_labels.contains(&y) {
                        bad_labels.push(y);
                    }
                    continue;
                }
                keep[i] = true;
                shard.label.push(y);
                if let Some(w) = w {
                    shard.weight.push(w);
                }
            }
            // Column by column: one sequential copy per feature instead of a scatter per row.
            let keep_all = keep.iter().all(|k| *k);
            for (target, encoded) in shard.columns.iter_mut().zip(columns) {
                if keep_all {
                    target.extend_from_slice(&encoded);
                } else {
                    target.extend(
                        encoded
                            .iter()
                            .zip(&keep)
                            .filter(|(_, k)| **k)
                            .map(|(x, _)| *x),
                    );
                }
            }
        }
        Ok((shard, dropped, bad_labels))
    };
    // Partitions encode on their own threads; the held-out rows alongside.
    let encoded: Vec<Result<(Shard, usize, Vec<f64>)>> = std::thread::scope(|scope| {
        let encode = &encode;
        let handles: Vec<_> = prep
            .train_parts
            .iter()
            .chain(std::iter::once(&prep.test_batches))
            .map(|part| scope.spawn(move || encode(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut shards = vec![];
    let mut dropped = 0;
    let mut bad_labels: Vec<f64> = vec![];
    for part in encoded {
        let (shard, part_dropped, part_bad) = part?;
        shards.push(shard);
        dropped += part_dropped;
        for y in part_bad {
            if bad_labels.len() < 10_000 && !bad_labels.contains(&y) {
                bad_labels.push(y);
            }
        }
    }
    let test = shards.pop().unwrap_or_default();
    if !bad_labels.is_empty() {
        bad_labels.sort_by(f64::total_cmp);
        let shown: Vec<String> = bad_labels.iter().take(5).map(|v| v.to_string()).collect();
        return Err(plan_err(format!(
            "label '{}' of a {} must be 0 or 1; found {}{}",
            options.label,
            options.model_type.name(),
            shown.join(", "),
            if bad_labels.len() > 5 {
                format!(" and {} more", bad_labels.len() - 5)
            } else {
                String::new()
            }
        )));
    }
    let rows_used: usize = shards.iter().map(|s| s.rows()).sum();
    if rows_used == 0 {
        return Err(plan_err(format!(
            "no training rows: the query returned {rows_read} rows, {dropped} had NULLs (handle_nulls = 'drop') \
             and {} were held out",
            test.rows()
        )));
    }

    let mut warnings = vec![];
    let params = options.params();
    // On a cluster the sums run where the rows were written; here, over the shards. Writing
    // them is not fitting: it counts in the statement's seconds, not in the seconds per pass.
    let remote = match hooks.remote_rows {
        Some(write) => Some(write(&shards)?),
        None => None,
    };
    let fit_started = std::time::Instant::now();
    let rows: &dyn Rows = match &remote {
        Some(r) => r.as_ref(),
        None => &shards,
    };
    let (coefficients, intercept, history, reason, summary, lambda_max, passes) = match options
        .model_type
        .is_classifier()
    {
        true => {
            let fit = logistic::fit(rows, width, &params, keep_going)?;
            let s = &fit.summary;
            if s.positive_weight == 0.0 || s.positive_weight == s.weight_sum {
                warnings.push(format!(
                    "the label '{}' is constant ({}) in the training rows: the model always predicts it",
                    options.label,
                    if s.positive_weight == 0.0 { 0 } else { 1 }
                ));
            } else if fit.all_zero() && width > 0 {
                let lm = fit
                    .lambda_max
                    .map(|l| format!("; λ_max = {l:.6}: use reg_param below it"))
                    .unwrap_or_default();
                warnings.push(format!(
                    "all coefficients are zero: reg_param = {} exceeds the largest useful value{lm}",
                    options.reg_param
                ));
            }
            (
                fit.coefficients,
                fit.intercept,
                fit.history,
                fit.reason,
                fit.summary,
                fit.lambda_max,
                fit.passes,
            )
        }
        false => {
            let fit = super::linear::fit(rows, width, &params, keep_going)?;
            if fit.label_std == 0.0 {
                warnings.push(format!(
                    "the label '{}' is constant in the training rows",
                    options.label
                ));
            }
            (
                fit.coefficients,
                fit.intercept,
                fit.history,
                fit.reason,
                fit.summary,
                None,
                fit.passes,
            )
        }
    };
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    drop(remote);
    if reason == super::optim::StopReason::Cancelled {
        return Err(DataFusionError::Execution("training cancelled".into()));
    }
    if reason == super::optim::StopReason::MaxIterations && options.max_iter > 0 {
        warnings.push(format!(
            "not converged within max_iter = {}: raise max_iter or tol",
            options.max_iter
        ));
    }

    let mut model = Model {
        name: name.to_string(),
        version,
        options: options.clone(),
        inputs,
        encoders,
        feature_names,
        coefficients,
        intercept,
        feature_mean: summary.mean.clone(),
        feature_std: summary.std.clone(),
        trees: None,
        mean_abs_contribution: vec![],
        training: TrainingSummary {
            rows_read,
            rows_used,
            rows_dropped: dropped,
            rows_held_out: test.rows(),
            iterations: history.len().saturating_sub(1),
            passes,
            fit_seconds,
            objective_history: history,
            stop_reason: reason.describe().to_string(),
            converged: reason.converged(),
            seconds: 0.0,
            lambda_max,
            warnings: vec![],
            metrics_on: if test.rows() > 0 {
                "held-out"
            } else {
                "training"
            }
            .to_string(),
        },
        metrics: None,
        roc: vec![],
        score_distribution: None,
        calibration: None,
        created_unix: now_unix(),
    };
    let evaluated: Vec<Shard> = if test.rows() > 0 { vec![test] } else { shards };
    let scored = score_shards(&model, &evaluated);
    model.mean_abs_contribution = mean_abs_contribution(&model, &evaluated);
    if let Some(m) = model.set_metrics(&scored)
        && model.training.metrics_on == "training"
        && m.auc_roc >= 0.9999
        && options.reg_param == 0.0
        && m.rows > 1
    {
        warnings.push("the features (near-)perfectly separate the classes: coefficients grow without bound; add regularisation (reg_param)".into());
    }
    model.training.warnings = warnings;
    Ok(model)
}

/// (score, label, weight) of encoded rows: probability for classifiers, value for regressions.
fn score_shards(model: &Model, shards: &[Shard]) -> Vec<(f64, f64, f64)> {
    let chunks = super::pass::parallel_chunks(shards, |s, rows| {
        let mut margin = vec![model.intercept; rows.len()];
        for (col, b) in s.columns.iter().zip(&model.coefficients) {
            for (m, x) in margin.iter_mut().zip(&col[rows.clone()]) {
                *m += b * x;
            }
        }
        margin
            .into_iter()
            .zip(rows)
            .map(|(m, i)| {
                let out = if model.is_classifier() {
                    augur_udfs::math::sigmoid(m)
                } else {
                    m
                };
                (out, s.label[i], s.w(i))
            })
            .collect::<Vec<_>>()
    });
    chunks.concat()
}

/// Mean over the rows of |Σ over an input's features of w·(x − mean)|, per input column.
fn mean_abs_contribution(model: &Model, shards: &[Shard]) -> Vec<f64> {
    let mut owner = vec![];
    for (i, e) in model.encoders.iter().enumerate() {
        owner.extend(std::iter::repeat_n(i, e.width()));
    }
    let inputs = model.inputs.len();
    let parts = super::pass::parallel_chunks(shards, |s, rows| {
        let mut sums = vec![0.0; inputs];
        let mut row = vec![0.0; inputs];
        for i in rows {
            row.fill(0.0);
            for (j, col) in s.columns.iter().enumerate() {
                row[owner[j]] += model.coefficients[j] * (col[i] - model.feature_mean[j]);
            }
            for (t, v) in sums.iter_mut().zip(&row) {
                *t += v.abs();
            }
        }
        sums
    });
    let rows: usize = shards.iter().map(|s| s.rows()).sum();
    let mut total = vec![0.0; inputs];
    for p in parts {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total.iter().map(|t| t / rows.max(1) as f64).collect()
}
