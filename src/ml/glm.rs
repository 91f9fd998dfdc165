//! Fitting the generalised linear models (logistic and linear regression, Spark's
//! semantics): encode the prepared rows into column-major shards on every core, run the
//! optimiser, and keep what `explain` and `feature_importance` need.

use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use rayon::iter::{IntoParallelIterator, ParallelIterator};

use super::encoded::{Encoded, Layout, ShardBuilder};
use super::logistic;
use super::model::{Hooks, Model, Prepared, TrainingSummary, now_unix, plan_err};
use super::optim::Iteration;
use super::options::TrainOptions;
use super::preprocess;
use super::rows::Rows;
use super::shard::{Hot, Part, Shard, add_levels};

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
    let layout = Layout::of(options, prep);
    let all_train: Vec<RecordBatch> = prep.train_parts.iter().flatten().cloned().collect();
    let encoders = match encoders {
        Some(e) => e,
        None => preprocess::fit(&all_train, &prep.schema, &prep.inputs)?,
    };
    drop(all_train);
    let width: usize = encoders.iter().map(|e| e.width()).sum();
    let weighted = prep.weight_index.is_some();
    // Per partition on its own thread, the held-out rows alongside.
    let encode = |batches: &[RecordBatch]| -> Result<ShardBuilder> {
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        let mut builder = ShardBuilder::with_capacity(width, rows, weighted);
        for batch in batches {
            builder.push(&layout, &encoders, batch)?;
        }
        Ok(builder)
    };
    let built: Vec<Result<ShardBuilder>> = std::thread::scope(|scope| {
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
    let built = built.into_iter().collect::<Result<Vec<_>>>()?;
    let encoded = Encoded::gather(prep.inputs.clone(), encoders, built, prep.rows_read);
    fit_encoded(name, version, options, &encoded, hooks)
}

/// Fit on rows already encoded (after the read, or while it ran).
pub fn fit_encoded(
    name: &str,
    version: u32,
    options: &TrainOptions,
    encoded: &Encoded,
    hooks: &Hooks,
) -> Result<Model> {
    let Encoded {
        inputs,
        encoders,
        shards,
        test,
        dropped,
        bad_labels,
        rows_read,
    } = encoded;
    let (dropped, rows_read) = (*dropped, *rows_read);
    let mut bad_labels = bad_labels.clone();
    let width: usize = encoders.iter().map(|e| e.width()).sum();
    let feature_names: Vec<String> = encoders.iter().flat_map(|e| e.feature_names()).collect();
    let mut iteration = 0usize;
    let keep_going = |it: &Iteration| {
        iteration += 1;
        (hooks.progress)(iteration, it.objective)
    };
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
        Some(write) => Some(write(shards)?),
        None => None,
    };
    let fit_started = std::time::Instant::now();
    let rows: &dyn Rows = match &remote {
        Some(r) => r.as_ref(),
        None => shards,
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
        inputs: inputs.clone(),
        encoders: encoders.clone(),
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
    let evaluated: &[Shard] = if test.rows() > 0 {
        std::slice::from_ref(test)
    } else {
        shards
    };
    let mut scored = score_shards(&model, evaluated);
    model.mean_abs_contribution = mean_abs_contribution(&model, evaluated);
    if let Some(m) = model.set_metrics(&mut scored)
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
/// Written in place on all cores (10M rows are 240 MB: no per-chunk copies to concatenate).
fn score_shards(model: &Model, shards: &[Shard]) -> Vec<(f64, f64, f64)> {
    const CHUNK: usize = 1 << 16;
    let rows: usize = shards.iter().map(|s| s.rows()).sum();
    let mut out = vec![(0.0, 0.0, 0.0); rows];
    let mut rest = out.as_mut_slice();
    let mut parts = vec![];
    for s in shards {
        let (mine, others) = rest.split_at_mut(s.rows());
        parts.extend(
            mine.chunks_mut(CHUNK)
                .enumerate()
                .map(|(k, c)| (s, k * CHUNK, c)),
        );
        rest = others;
    }
    parts.into_par_iter().for_each(|(s, start, chunk)| {
        let rows = start..start + chunk.len();
        for (o, i) in chunk.iter_mut().zip(rows.clone()) {
            *o = (model.intercept, s.label[i], s.w(i));
        }
        for part in s.parts() {
            match part {
                Part::Dense(j, col) => {
                    let b = model.coefficients[j];
                    for (o, x) in chunk.iter_mut().zip(&col[rows.clone()]) {
                        o.0 += b * x;
                    }
                }
                Part::Hot(_, h) => {
                    let t = h.table(&model.coefficients);
                    for (o, &l) in chunk.iter_mut().zip(&h.level[rows.clone()]) {
                        o.0 += t[l as usize];
                    }
                }
            }
        }
        if model.is_classifier() {
            for o in chunk.iter_mut() {
                o.0 = augur_udfs::math::sigmoid(o.0);
            }
        }
    });
    out
}

/// Mean over the rows of |Σ over an input's features of w·(x − mean)|, per input column.
fn mean_abs_contribution(model: &Model, shards: &[Shard]) -> Vec<f64> {
    let mut owner = vec![];
    for (i, e) in model.encoders.iter().enumerate() {
        owner.extend(std::iter::repeat_n(i, e.width()));
    }
    let inputs = model.inputs.len();
    // Column by column over blocks of rows (the shards are column-major): each input's
    // contributions for a block are built in its own buffer, adding the features in the same
    // order as row by row, then their absolute values summed in row order, so the result is
    // the row-by-row one to the bit. (Row by row, 4% of a 10M×16 TRAIN.)
    const BLOCK: usize = 1024;
    let parts = super::pass::parallel_chunks(shards, |s, rows| {
        let mut sums = vec![0.0; inputs];
        let mut buffers = vec![[0.0f64; BLOCK]; inputs];
        let parts = s.parts();
        let tables: Vec<Vec<f64>> = s.hot.iter().map(|h| level_contribution(model, h)).collect();
        for start in rows.clone().step_by(BLOCK) {
            let len = BLOCK.min(rows.end - start);
            for b in buffers.iter_mut() {
                b[..len].fill(0.0);
            }
            for part in &parts {
                match *part {
                    Part::Dense(j, col) => {
                        let (a, mean) = (model.coefficients[j], model.feature_mean[j]);
                        for (v, x) in buffers[owner[j]][..len]
                            .iter_mut()
                            .zip(&col[start..start + len])
                        {
                            *v += a * (x - mean);
                        }
                    }
                    Part::Hot(g, h) => add_levels(
                        &mut buffers[owner[h.first]][..len],
                        &h.level[start..start + len],
                        &tables[g],
                    ),
                }
            }
            for (t, b) in sums.iter_mut().zip(&buffers) {
                for v in &b[..len] {
                    *t += v.abs();
                }
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

/// A one-hot group's Σ_k a_k·(x_k − mean_k) for a row at each level, then at none, padded
/// for `add_levels`: summed over the levels in order as the dense columns add them (the same
/// bits), up to 256 levels; beyond, a_l − Σ_k a_k·mean_k (levels² additions would not do).
fn level_contribution(model: &Model, h: &Hot) -> Vec<f64> {
    let features = h.first..h.first + h.levels;
    let (a, mean) = (
        &model.coefficients[features.clone()],
        &model.feature_mean[features],
    );
    let mut table: Vec<f64> = if h.levels > 256 {
        let shift: f64 = a.iter().zip(mean).map(|(a, m)| a * m).sum();
        a.iter().map(|a| a - shift).chain([-shift]).collect()
    } else {
        (0..=h.levels)
            .map(|l| {
                let mut v = 0.0;
                for k in 0..h.levels {
                    v += a[k] * (f64::from(u8::from(k == l)) - mean[k]);
                }
                v
            })
            .collect()
    };
    table.resize(table.len().next_power_of_two(), 0.0);
    table
}
