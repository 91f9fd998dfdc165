//! The model artifact (JSON in the catalog: preprocessing, coefficients, training summary,
//! metrics) and the two things done with it: training from record batches, and scoring.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::logistic::{self, Shard};
use super::metrics::{self, ClassificationMetrics, RegressionMetrics, RocPoint};
use super::optim::Iteration;
use super::options::{ModelType, NullPolicy, TrainOptions};
use super::preprocess::{self, Encoder};

/// Most ROC points stored with a model: exact below this many distinct scores, thinned
/// (evenly, ends kept) above; `confusion_matrix(model, t)` reads the curve.
const ROC_POINTS: usize = 2001;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metrics {
    Classification(ClassificationMetrics),
    Regression(RegressionMetrics),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub rows_read: usize,
    pub rows_used: usize,
    pub rows_dropped: usize,
    pub rows_held_out: usize,
    pub iterations: usize,
    /// Passes over the training data (objective and gradient evaluations).
    #[serde(default)]
    pub passes: usize,
    /// Seconds spent in the optimiser (encoding excluded).
    #[serde(default)]
    pub fit_seconds: f64,
    pub objective_history: Vec<Iteration>,
    pub stop_reason: String,
    pub converged: bool,
    pub seconds: f64,
    pub lambda_max: Option<f64>,
    pub warnings: Vec<String>,
    /// Where the stored metrics come from: "held-out" or "training".
    pub metrics_on: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub version: u32,
    pub options: TrainOptions,
    /// Input columns the model reads, in order.
    pub inputs: Vec<String>,
    pub encoders: Vec<Encoder>,
    pub feature_names: Vec<String>,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// Feature statistics on the training rows (after encoding): mean and σ.
    pub feature_mean: Vec<f64>,
    pub feature_std: Vec<f64>,
    pub training: TrainingSummary,
    pub metrics: Option<Metrics>,
    pub roc: Vec<RocPoint>,
    pub created_unix: u64,
}

/// Training input gathered by the operator: batches per input partition, and their schema.
pub struct TrainingData {
    pub schema: Arc<Schema>,
    pub partitions: Vec<Vec<RecordBatch>>,
}

fn plan_err(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

/// Canonical text of each row's key (a column, or all columns), for the hash split; the
/// bytes come from `augur_udfs::split::row_keys` so that SQL's `hash_split` agrees.
fn split_keys(batch: &RecordBatch, key: Option<usize>) -> Result<Vec<Vec<u8>>> {
    let columns = match key {
        Some(k) => vec![Arc::clone(batch.column(k))],
        None => batch.columns().to_vec(),
    };
    augur_udfs::split::row_keys(&columns)
}

/// Fit a model on `data`. `keep_going` is asked after every optimiser iteration.
pub fn train(
    name: &str,
    version: u32,
    options: &TrainOptions,
    data: &TrainingData,
    keep_going: impl FnMut(&Iteration) -> bool,
) -> Result<Model> {
    let started = Instant::now();
    let schema = &data.schema;
    let find = |column: &str, role: &str| -> Result<usize> {
        schema.index_of(column).map_err(|_| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            plan_err(format!(
                "{role} column '{column}' is not in the training query; its columns are: {}",
                names.join(", ")
            ))
        })
    };
    let label_index = find(&options.label, "label")?;
    let weight_index = options
        .weight_col
        .as_deref()
        .map(|c| find(c, "weight_col"))
        .transpose()?;
    let key_index = options
        .split_key
        .as_deref()
        .map(|c| find(c, "split_key"))
        .transpose()?;
    let label_type = schema.field(label_index).data_type();
    if !(label_type.is_numeric() || matches!(label_type, DataType::Boolean)) {
        return Err(plan_err(format!(
            "label column '{}' is {label_type}: a label must be numeric{}",
            options.label,
            if options.model_type.is_classifier() {
                " 0/1 (or boolean)"
            } else {
                ""
            }
        )));
    }
    let inputs: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label_index && Some(*i) != weight_index && Some(*i) != key_index)
        .map(|(_, f)| f.name().clone())
        .collect();
    if inputs.is_empty() {
        return Err(plan_err(
            "the training query has no feature columns besides the label".into(),
        ));
    }
    preprocess::check_types(schema, &inputs)?;

    // Split every partition's rows into training and held-out, by the key's hash.
    let mut rows_read = 0;
    let mut train_parts: Vec<Vec<RecordBatch>> = vec![];
    let mut test_batches: Vec<RecordBatch> = vec![];
    for part in &data.partitions {
        let mut kept = vec![];
        for batch in part {
            rows_read += batch.num_rows();
            if options.split <= 0.0 {
                kept.push(batch.clone());
                continue;
            }
            let held: Vec<bool> = split_keys(batch, key_index)?
                .iter()
                .map(|k| augur_udfs::split::held_out(k, options.seed, options.split))
                .collect();
            let held = BooleanArray::from(held);
            let train_mask = datafusion::arrow::compute::not(&held)?;
            kept.push(filter_record_batch(batch, &train_mask)?);
            test_batches.push(filter_record_batch(batch, &held)?);
        }
        train_parts.push(kept);
    }
    let all_train: Vec<RecordBatch> = train_parts.iter().flatten().cloned().collect();
    let encoders = preprocess::fit(&all_train, schema, &inputs)?;
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
        let handles: Vec<_> = train_parts
            .iter()
            .chain(std::iter::once(&test_batches))
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
            "label '{}' of a logistic_regression must be 0 or 1; found {}{}",
            options.label,
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
    let fit_started = Instant::now();
    let (coefficients, intercept, history, reason, summary, lambda_max, passes) = match options
        .model_type
    {
        ModelType::LogisticRegression => {
            let fit = logistic::fit(&shards, width, &params, keep_going);
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
        ModelType::LinearRegression => {
            let fit = super::linear::fit(&shards, width, &params, keep_going);
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
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let evaluated: Vec<Shard> = if test.rows() > 0 { vec![test] } else { shards };
    let scored = model.score_shards(&evaluated);
    if options.model_type.is_classifier() {
        let curve = metrics::roc_curve(&scored);
        let m = metrics::classification_on_curve(&scored, &curve, options.threshold);
        if model.training.metrics_on == "training"
            && m.auc_roc >= 0.9999
            && options.reg_param == 0.0
            && m.rows > 1
        {
            warnings.push("the features (near-)perfectly separate the classes: coefficients grow without bound; add regularisation (reg_param)".into());
        }
        model.roc = metrics::thin(&curve, ROC_POINTS);
        model.metrics = Some(Metrics::Classification(m));
    } else {
        model.metrics = Some(Metrics::Regression(metrics::regression(&scored)));
    }
    model.training.warnings = warnings;
    model.training.seconds = started.elapsed().as_secs_f64();
    Ok(model)
}

impl Model {
    fn output(&self, margin: f64) -> f64 {
        if self.options.model_type.is_classifier() {
            augur_udfs::math::sigmoid(margin)
        } else {
            margin
        }
    }

    /// (score, label, weight) of encoded rows: probability for classifiers, value for regressions.
    fn score_shards(&self, shards: &[Shard]) -> Vec<(f64, f64, f64)> {
        let chunks = super::pass::parallel_chunks(shards, |s, rows| {
            let mut margin = vec![self.intercept; rows.len()];
            for (col, b) in s.columns.iter().zip(&self.coefficients) {
                for (m, x) in margin.iter_mut().zip(&col[rows.clone()]) {
                    *m += b * x;
                }
            }
            let w = |i: usize| {
                if s.weight.is_empty() {
                    1.0
                } else {
                    s.weight[i]
                }
            };
            margin
                .into_iter()
                .zip(rows)
                .map(|(m, i)| (self.output(m), s.label[i], w(i)))
                .collect::<Vec<_>>()
        });
        chunks.concat()
    }

    /// Score a batch holding the model's input columns: the raw output (probability or
    /// value) per row, NULL where a needed value is NULL and not imputed.
    pub fn score(&self, batch: &RecordBatch) -> Result<Float64Array> {
        let width = self.coefficients.len();
        let n = batch.num_rows();
        let mut columns = vec![Vec::with_capacity(n); width];
        let mut valid = vec![true; n];
        preprocess::encode(
            &self.encoders,
            batch,
            self.options.handle_nulls == NullPolicy::Impute,
            &mut columns,
            &mut valid,
        )?;
        let mut margin = vec![self.intercept; n];
        for (j, col) in columns.iter().enumerate() {
            let b = self.coefficients[j];
            if b != 0.0 {
                for (m, x) in margin.iter_mut().zip(col) {
                    *m += b * x;
                }
            }
        }
        Ok(margin
            .iter()
            .zip(&valid)
            .map(|(m, ok)| ok.then(|| self.output(*m)))
            .collect())
    }

    /// Class predictions (p > threshold, strictly) from scores, for classifiers.
    pub fn classes(&self, scores: &Float64Array) -> Int64Array {
        scores
            .iter()
            .map(|p| p.map(|p| i64::from(p > self.options.threshold)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::datatypes::Field;

    fn data() -> TrainingData {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Float64, true),
        ]));
        let x: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..200)
            .map(|i| if (i * 7) % 5 < 2 { 1.0 } else { 0.0 })
            .collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Float64Array::from(x)),
                Arc::new(Float64Array::from(y)),
            ],
        )
        .unwrap();
        TrainingData {
            schema,
            partitions: vec![vec![batch]],
        }
    }

    #[test]
    fn a_cancelled_fit_is_an_error_not_a_model() {
        let options = TrainOptions::new(ModelType::LogisticRegression, "y".into());
        let err = train("m", 1, &options, &data(), |_| false).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert!(train("m", 1, &options, &data(), |_| true).is_ok());
    }

    #[test]
    fn labels_other_than_0_1_are_named() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
                Arc::new(Float64Array::from(vec![0.0, 2.0, 7.0])),
            ],
        )
        .unwrap();
        let data = TrainingData {
            schema,
            partitions: vec![vec![batch]],
        };
        let err = train(
            "m",
            1,
            &TrainOptions::new(ModelType::LogisticRegression, "y".into()),
            &data,
            |_| true,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("must be 0 or 1; found 2, 7"),
            "{err}"
        );
    }
}
