//! The model artifact (JSON in the catalog: inputs, the fitted parameters — coefficients or
//! trees — training summary, metrics) and the things done with it: training from record
//! batches (shared preparation, then the model family's own fit), scoring and explaining.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::gbdt::TreeModel;
use super::gbdt::params::Objective;
use super::metrics::{self, ClassificationMetrics, RegressionMetrics, RocPoint};
use super::optim::Iteration;
use super::options::{ModelType, NullPolicy, TrainOptions};
use super::preprocess::{self, Encoder};
use super::rows::Rows;
use super::shard::Shard;

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
    #[serde(default)]
    pub encoders: Vec<Encoder>,
    #[serde(default)]
    pub feature_names: Vec<String>,
    #[serde(default)]
    pub coefficients: Vec<f64>,
    #[serde(default)]
    pub intercept: f64,
    /// Feature statistics on the training rows (after encoding): mean and σ.
    #[serde(default)]
    pub feature_mean: Vec<f64>,
    #[serde(default)]
    pub feature_std: Vec<f64>,
    /// The ensemble of a boosted-trees model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<TreeModel>,
    /// Mean |contribution| of each input on the evaluation rows (`feature_importance`).
    #[serde(default)]
    pub mean_abs_contribution: Vec<f64>,
    pub training: TrainingSummary,
    pub metrics: Option<Metrics>,
    pub roc: Vec<RocPoint>,
    /// Deciles of the model's output on the evaluation rows, the baseline of `drift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_distribution: Option<super::drift::Distribution>,
    /// The map `CALIBRATE MODEL` fitted: probabilities pass through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<super::calibration::Calibration>,
    pub created_unix: u64,
}

/// Training input gathered by the operator: batches per input partition, and their schema.
pub struct TrainingData {
    pub schema: Arc<Schema>,
    pub partitions: Vec<Vec<RecordBatch>>,
    /// The rows already encoded as they were read (then `partitions` is empty).
    pub encoded: Option<super::encoded::Encoded>,
}

/// What training tells the operator, and asks of it.
pub struct Hooks<'a> {
    /// After each iteration (count so far, current objective or validation metric — NaN
    /// when none); also between tree splits. Returning false cancels training.
    pub progress: &'a (dyn Fn(usize, f64) -> bool + Sync),
    /// Reserve working memory in the memory pool; an error stops training.
    pub reserve: &'a (dyn Fn(usize) -> Result<()> + Sync),
    /// Where a GLM's encoded rows are summed when not here: a cluster (`ml::cluster_rows`).
    #[allow(clippy::type_complexity)]
    pub remote_rows: Option<&'a (dyn Fn(&[Shard]) -> Result<Box<dyn Rows>> + Sync)>,
}

impl Hooks<'_> {
    /// Hooks that never cancel and reserve nothing (tests, embedding).
    pub fn none() -> Hooks<'static> {
        Hooks {
            progress: &|_, _| true,
            reserve: &|_| Ok(()),
            remote_rows: None,
        }
    }
}

/// The training query's roles resolved and its rows split into training and held-out.
pub struct Prepared {
    pub schema: Arc<Schema>,
    pub label_index: usize,
    pub weight_index: Option<usize>,
    pub key_index: Option<usize>,
    /// Feature columns: every column but the label, weight and split key.
    pub inputs: Vec<String>,
    pub train_parts: Vec<Vec<RecordBatch>>,
    pub test_batches: Vec<RecordBatch>,
    pub rows_read: usize,
}

pub(crate) fn plan_err(message: String) -> DataFusionError {
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

/// Resolve the label, weight, split key and features of a training query's columns (no rows).
pub fn roles(options: &TrainOptions, schema: &Arc<Schema>) -> Result<Prepared> {
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

    Ok(Prepared {
        schema: Arc::clone(schema),
        label_index,
        weight_index,
        key_index,
        inputs,
        train_parts: vec![],
        test_batches: vec![],
        rows_read: 0,
    })
}

/// [`roles`], and the rows split into training and held-out by the key's hash.
pub fn prepare(options: &TrainOptions, data: &TrainingData) -> Result<Prepared> {
    let mut prep = roles(options, &data.schema)?;
    let key_index = prep.key_index;
    // Split every partition's rows into training and held-out, by the key's hash.
    for part in &data.partitions {
        let mut kept = vec![];
        for batch in part {
            prep.rows_read += batch.num_rows();
            if options.split <= 0.0 {
                kept.push(batch.clone());
                continue;
            }
            let held = held_out(batch, key_index, options)?;
            let train_mask = datafusion::arrow::compute::not(&held)?;
            kept.push(filter_record_batch(batch, &train_mask)?);
            prep.test_batches.push(filter_record_batch(batch, &held)?);
        }
        prep.train_parts.push(kept);
    }
    Ok(prep)
}

/// Which rows of `batch` are held out: the key's hash against `split`.
pub(crate) fn held_out(
    batch: &RecordBatch,
    key: Option<usize>,
    options: &TrainOptions,
) -> Result<BooleanArray> {
    Ok(split_keys(batch, key)?
        .iter()
        .map(|k| Some(augur_udfs::split::held_out(k, options.seed, options.split)))
        .collect())
}

/// Fit a model on `data`.
pub fn train(
    name: &str,
    version: u32,
    options: &TrainOptions,
    data: &TrainingData,
    hooks: &Hooks,
) -> Result<Model> {
    let started = Instant::now();
    if options.calibration.is_some() {
        let mut model = super::calibration::fit(name, version, options, data)?;
        model.training.seconds = started.elapsed().as_secs_f64();
        return Ok(model);
    }
    if let Some(encoded) = &data.encoded {
        let mut model = super::glm::fit_encoded(name, version, options, encoded, hooks)?;
        model.training.seconds = started.elapsed().as_secs_f64();
        return Ok(model);
    }
    let prep = prepare(options, data)?;
    let mut model = match options.model_type {
        t if t.is_trees() => trees_model(name, version, options, &prep, hooks)?,
        ModelType::WoeBinning => {
            super::scorecard::fit_binning(name, version, options, &prep, hooks)?
        }
        ModelType::Scorecard => super::scorecard::fit(name, version, options, &prep, hooks)?,
        _ => super::glm::fit(name, version, options, &prep, hooks, None)?,
    };
    model.training.seconds = started.elapsed().as_secs_f64();
    Ok(model)
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn trees_model(
    name: &str,
    version: u32,
    options: &TrainOptions,
    prep: &Prepared,
    hooks: &Hooks,
) -> Result<Model> {
    let mut fitted = super::gbdt::train::fit(options, prep, hooks)?;
    let mut options = options.clone();
    let binary = fitted.model.objective == Objective::Binary;
    options.model_type = if binary {
        ModelType::BoostedTreeClassifier
    } else {
        ModelType::BoostedTreeRegressor
    };
    if let Some(t) = options.trees.as_mut() {
        t.objective = fitted.model.objective;
    }
    let trees = fitted.model.trees.len();
    let history: Vec<Iteration> = fitted
        .model
        .validation
        .iter()
        .map(|v| Iteration {
            objective: *v,
            gradient_norm: 0.0,
            step: 0.0,
        })
        .collect();
    let mut model = Model {
        name: name.to_string(),
        version,
        options,
        inputs: prep.inputs.clone(),
        encoders: vec![],
        feature_names: fitted
            .model
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect(),
        coefficients: vec![],
        intercept: 0.0,
        feature_mean: vec![],
        feature_std: vec![],
        trees: Some(fitted.model),
        mean_abs_contribution: fitted.mean_abs_contribution,
        training: TrainingSummary {
            rows_read: prep.rows_read,
            rows_used: fitted.rows_used,
            rows_dropped: fitted.rows_dropped,
            rows_held_out: fitted.rows_held_out,
            iterations: trees,
            passes: 0,
            fit_seconds: fitted.fit_seconds,
            objective_history: history,
            stop_reason: fitted.stop_reason,
            converged: true,
            seconds: 0.0,
            lambda_max: None,
            warnings: fitted.warnings,
            metrics_on: fitted.metrics_on.to_string(),
        },
        metrics: None,
        roc: vec![],
        score_distribution: None,
        calibration: None,
        created_unix: now_unix(),
    };
    model.set_metrics(&mut fitted.scored);
    Ok(model)
}

impl Model {
    /// A model with no parameters, training rows or metrics yet (read from another tool's
    /// file, or a binning): the caller sets what it has — encoders, coefficients or trees.
    pub fn bare(
        name: &str,
        options: TrainOptions,
        inputs: Vec<String>,
        stop_reason: String,
    ) -> Model {
        Model {
            name: name.to_string(),
            version: 0,
            options,
            feature_names: inputs.clone(),
            inputs,
            encoders: vec![],
            coefficients: vec![],
            intercept: 0.0,
            feature_mean: vec![],
            feature_std: vec![],
            trees: None,
            mean_abs_contribution: vec![],
            training: TrainingSummary {
                rows_read: 0,
                rows_used: 0,
                rows_dropped: 0,
                rows_held_out: 0,
                iterations: 0,
                passes: 0,
                fit_seconds: 0.0,
                objective_history: vec![],
                stop_reason,
                converged: true,
                seconds: 0.0,
                lambda_max: None,
                warnings: vec![],
                metrics_on: "none".into(),
            },
            metrics: None,
            roc: vec![],
            score_distribution: None,
            calibration: None,
            created_unix: now_unix(),
        }
    }

    pub fn is_classifier(&self) -> bool {
        self.options.model_type.is_classifier()
    }

    /// Metrics (and the ROC curve of classifiers) from (score, label, weight) triples, which
    /// a classifier leaves sorted by score, highest first.
    pub(crate) fn set_metrics(
        &mut self,
        scored: &mut [(f64, f64, f64)],
    ) -> Option<ClassificationMetrics> {
        if self.is_classifier() {
            // The sums over rows first, in the rows' own order; then one sort in place serves
            // the curve and the score deciles (10M rows: no 240 MB sorted copy).
            let sums = metrics::classification_with_aucs(
                scored,
                f64::NAN,
                f64::NAN,
                self.options.threshold,
            );
            metrics::sort_by_score(scored);
            let last = scored.len().saturating_sub(1);
            self.score_distribution =
                super::drift::Distribution::deciles_of_sorted_by(scored.len(), |i| {
                    scored[last - i].0
                });
            let (curve, auc_roc, auc_pr) = metrics::curve_summary(scored, ROC_POINTS);
            let m = ClassificationMetrics {
                auc_roc,
                auc_pr,
                ..sums
            };
            self.roc = curve;
            self.metrics = Some(Metrics::Classification(m.clone()));
            Some(m)
        } else {
            let outputs: Vec<f64> = scored.iter().map(|s| s.0).collect();
            self.score_distribution = super::drift::Distribution::deciles(&outputs);
            self.metrics = Some(Metrics::Regression(metrics::regression(scored)));
            None
        }
    }

    /// Number of features the model computes from its inputs.
    pub fn feature_count(&self) -> usize {
        match &self.trees {
            Some(t) => t.features.len(),
            // A woe_binning model has bins but no coefficients.
            None if self.coefficients.is_empty() => self.encoders.len(),
            None => self.coefficients.len(),
        }
    }

    fn output(&self, margin: f64) -> f64 {
        if self.is_classifier() {
            augur_udfs::math::sigmoid(margin)
        } else {
            margin
        }
    }

    /// Raw scores (log-odds of classifiers, values of regressions) of a batch holding the
    /// model's input columns, and whether each row could be scored (a NULL the model
    /// does not impute makes a linear model's row unscorable; trees take NULLs as missing).
    pub fn raw_scores(&self, batch: &RecordBatch) -> Result<(Vec<f64>, Vec<bool>)> {
        self.check_predicts()?;
        let n = batch.num_rows();
        if let Some(t) = &self.trees {
            let values = t.values(&self.inputs, batch)?;
            return Ok((t.raw(&values, n), vec![true; n]));
        }
        // Feature by feature in order, as the dense columns would add them (a one-hot group
        // adds its row's category's coefficient: b·1, and b·0 changes nothing), so the same
        // bits without a 0/1 column per category.
        preprocess::check_columns(&self.encoders, batch)?;
        let impute = self.options.handle_nulls == NullPolicy::Impute;
        let mut margin = vec![self.intercept; n];
        let mut valid = vec![true; n];
        let mut slot = 0;
        for encoder in &self.encoders {
            let b = &self.coefficients[slot..slot + encoder.width()];
            slot += encoder.width();
            let column = batch.column(batch.schema().index_of(encoder.column())?);
            let positions =
                preprocess::one_hot_positions(encoder, column, impute, &mut valid, |i, hit| {
                    if let Some(&b) = hit.and_then(|k| b.get(k))
                        && b != 0.0
                    {
                        margin[i] += b;
                    }
                })?;
            if positions {
                continue;
            }
            let mut columns = preprocess::empty_columns(b.len(), n);
            let one = std::slice::from_ref(encoder);
            preprocess::encode(one, batch, impute, &mut columns, &mut valid)?;
            for (col, &b) in columns.iter().zip(b) {
                if b != 0.0 {
                    for (m, x) in margin.iter_mut().zip(col) {
                        *m += b * x;
                    }
                }
            }
        }
        Ok((margin, valid))
    }

    fn encode(&self, batch: &RecordBatch) -> Result<(Vec<Vec<f64>>, Vec<bool>)> {
        let n = batch.num_rows();
        let mut columns = preprocess::empty_columns(self.coefficients.len(), n);
        let mut valid = vec![true; n];
        preprocess::encode(
            &self.encoders,
            batch,
            self.options.handle_nulls == NullPolicy::Impute,
            &mut columns,
            &mut valid,
        )?;
        Ok((columns, valid))
    }

    /// Score a batch holding the model's input columns: the output (probability or value)
    /// per row, NULL where the row cannot be scored.
    pub fn score(&self, batch: &RecordBatch) -> Result<Float64Array> {
        let (raw, valid) = self.raw_scores(batch)?;
        Ok(raw
            .iter()
            .zip(&valid)
            .map(|(m, ok)| ok.then(|| self.calibrated(*m, self.output(*m))))
            .collect())
    }

    /// Class predictions (p > threshold, strictly) from scores, for classifiers.
    pub fn classes(&self, scores: &Float64Array) -> Int64Array {
        scores
            .iter()
            .map(|p| p.map(|p| i64::from(p > self.options.threshold)))
            .collect()
    }

    /// Per row: raw score, bias and one contribution per input column, in raw (log-odds)
    /// space, with bias + Σ contributions = raw score. Trees: TreeSHAP (date parts summed
    /// into their column); linear models: w·(x − mean) summed over a column's features.
    /// `None` for rows that cannot be scored.
    pub fn explain(&self, batch: &RecordBatch) -> Result<Vec<Option<Explained>>> {
        self.check_predicts()?;
        if self.options.scorecard.is_some() {
            return self.explain_points(batch);
        }
        let n = batch.num_rows();
        let inputs = self.inputs.len();
        if let Some(t) = &self.trees {
            let values = t.values(&self.inputs, batch)?;
            let raw = t.raw(&values, n);
            let phi = t.contributions(&values, n);
            return Ok(phi
                .into_iter()
                .zip(raw)
                .map(|(phi, raw)| {
                    let mut per_input = vec![0.0; inputs];
                    for (f, feature) in t.features.iter().enumerate() {
                        per_input[feature.input] += phi[f];
                    }
                    Some(Explained {
                        raw,
                        bias: phi[phi.len() - 1],
                        contributions: per_input,
                    })
                })
                .collect());
        }
        let (columns, valid) = self.encode(batch)?;
        let mut owner = vec![];
        for (i, e) in self.encoders.iter().enumerate() {
            owner.extend(std::iter::repeat_n(i, e.width()));
        }
        let bias = self.intercept
            + self
                .coefficients
                .iter()
                .zip(&self.feature_mean)
                .map(|(w, m)| w * m)
                .sum::<f64>();
        Ok((0..n)
            .map(|r| {
                if !valid[r] {
                    return None;
                }
                let mut per_input = vec![0.0; inputs];
                let mut raw = self.intercept;
                for (j, col) in columns.iter().enumerate() {
                    let w = self.coefficients[j];
                    raw += w * col[r];
                    per_input[owner[j]] += w * (col[r] - self.feature_mean[j]);
                }
                Some(Explained {
                    raw,
                    bias,
                    contributions: per_input,
                })
            })
            .collect())
    }
}

impl Model {
    /// A scorecard's explanation in points: raw = the score, bias = the best score (each
    /// characteristic's most points), contributions = points below each maximum (≤ 0).
    fn explain_points(&self, batch: &RecordBatch) -> Result<Vec<Option<Explained>>> {
        let (columns, _) = self.encode(batch)?;
        let maxima: Vec<f64> = self
            .binnings()
            .iter()
            .enumerate()
            .map(|(j, b)| {
                b.bins
                    .iter()
                    .filter(|bin| bin.count() > 0.0)
                    .filter_map(|bin| self.points(j, bin.woe))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        let best: f64 = maxima.iter().sum();
        Ok((0..batch.num_rows())
            .map(|r| {
                let mut score = 0.0;
                let contributions = columns
                    .iter()
                    .enumerate()
                    .map(|(j, col)| {
                        let points = self.points(j, col[r]).unwrap_or(0.0);
                        score += points;
                        points - maxima[j]
                    })
                    .collect();
                Some(Explained {
                    raw: score,
                    bias: best,
                    contributions,
                })
            })
            .collect())
    }
}

/// One row's explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub raw: f64,
    pub bias: f64,
    /// One per input column, in the model's input order.
    pub contributions: Vec<f64>,
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
            encoded: None,
        }
    }

    #[test]
    fn a_cancelled_fit_is_an_error_not_a_model() {
        let options = TrainOptions::new(ModelType::LogisticRegression, "y".into());
        let never = Hooks {
            progress: &|_, _| false,
            reserve: &|_| Ok(()),
            remote_rows: None,
        };
        let err = train("m", 1, &options, &data(), &never).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert!(train("m", 1, &options, &data(), &Hooks::none()).is_ok());
        for kind in [ModelType::WoeBinning, ModelType::Scorecard] {
            let options = TrainOptions::new(kind, "y".into());
            let err = train("m", 1, &options, &data(), &never).unwrap_err();
            assert!(err.to_string().contains("cancelled"), "{kind:?}: {err}");
            assert!(train("m", 1, &options, &data(), &Hooks::none()).is_ok());
        }
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
            encoded: None,
        };
        let err = train(
            "m",
            1,
            &TrainOptions::new(ModelType::LogisticRegression, "y".into()),
            &data,
            &Hooks::none(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("must be 0 or 1; found 2, 7"),
            "{err}"
        );
    }
}
