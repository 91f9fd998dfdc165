//! SQL functions over models: scalar `predict('model', col, …)` and `predict_proba(…)`
//! (vectorised, the model loaded once and cached per catalog generation), and the
//! `model_metrics` aggregate behind `evaluate(model, data)`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use super::metrics;
use super::model::Model;
use super::registry::Registry;

/// Where a model function finds its models: the catalog (loaded by reference and kept until
/// the catalog changes), or the models shipped inside a plan to a cluster's executors, which
/// have no catalog.
#[derive(Debug)]
pub struct ModelCache {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Catalog {
        registry: Registry,
        cache: Mutex<HashMap<String, (u64, Arc<Model>)>>,
    },
    Shipped(HashMap<String, Arc<Model>>),
}

impl ModelCache {
    pub fn new(registry: &Registry) -> Self {
        ModelCache {
            source: Source::Catalog {
                registry: registry.clone(),
                cache: Mutex::default(),
            },
        }
    }

    /// Exactly these models, by the reference the plan names them with.
    pub fn shipped(models: HashMap<String, Arc<Model>>) -> Self {
        ModelCache {
            source: Source::Shipped(models),
        }
    }

    /// The models a shipped cache holds; `None` for the catalog's.
    pub fn shipped_models(&self) -> Option<&HashMap<String, Arc<Model>>> {
        match &self.source {
            Source::Shipped(models) => Some(models),
            Source::Catalog { .. } => None,
        }
    }

    pub fn get(&self, reference: &str) -> Result<Arc<Model>> {
        let (registry, cache) = match &self.source {
            Source::Catalog { registry, cache } => (registry, cache),
            Source::Shipped(models) => {
                return models.get(reference).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "model '{reference}' was not shipped with this plan (it carries {})",
                        models.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                });
            }
        };
        let generation = registry.generation();
        if let Ok(cache) = cache.lock()
            && let Some((g, m)) = cache.get(reference)
            && *g == generation
        {
            return Ok(Arc::clone(m));
        }
        let model = Arc::new(registry.get(reference)?);
        if let Ok(mut cache) = cache.lock() {
            cache.insert(reference.to_string(), (generation, Arc::clone(&model)));
        }
        Ok(model)
    }
}

/// What a prediction function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// The class (classifiers) or the value (regressions).
    Prediction,
    Probability,
    /// The raw score: log-odds of classifiers (LightGBM's `raw_score=True`), the value of
    /// regressions.
    Raw,
}

/// `predict`, `predict_proba` or `predict_raw`.
#[derive(Debug)]
pub struct Predict {
    name: &'static str,
    output: Output,
    signature: Signature,
    models: ModelCache,
}

impl PartialEq for Predict {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Predict {}
impl std::hash::Hash for Predict {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl Predict {
    pub fn udfs(registry: &Registry) -> Vec<ScalarUDF> {
        Self::udfs_with(&|| ModelCache::new(registry))
    }

    /// The three functions, each with the models `models` gives.
    pub fn udfs_with(models: &dyn Fn() -> ModelCache) -> Vec<ScalarUDF> {
        [
            ("predict", Output::Prediction),
            ("predict_proba", Output::Probability),
            ("predict_raw", Output::Raw),
        ]
        .into_iter()
        .map(|(name, output)| {
            ScalarUDF::from(Predict {
                name,
                output,
                signature: Signature::variadic_any(Volatility::Stable),
                models: models(),
            })
        })
        .collect()
    }

    pub fn models(&self) -> &ModelCache {
        &self.models
    }

    fn model(&self, reference: &str) -> Result<Arc<Model>> {
        self.models.get(reference)
    }
}

pub(crate) fn reference_of(value: &ColumnarValue, function: &str) -> Result<String> {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Ok(s.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{function}: the first argument is the model's name as a string, e.g. {function}('risk', col1, col2)"
        ))),
    }
}

impl ScalarUDFImpl for Predict {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((first, columns)) = args.args.split_first() else {
            return Err(DataFusionError::Plan(format!(
                "{}('model', column, …) needs a model and its input columns",
                self.name
            )));
        };
        let reference = reference_of(first, self.name)?;
        let model = self.model(&reference)?;
        if columns.len() != model.inputs.len() {
            return Err(DataFusionError::Plan(format!(
                "{}('{reference}', …) takes the model's {} input columns in order: {}; got {} argument(s)",
                self.name,
                model.inputs.len(),
                model.inputs.join(", "),
                columns.len()
            )));
        }
        if self.output == Output::Probability && !model.is_classifier() {
            return Err(DataFusionError::Plan(format!(
                "predict_proba: model '{reference}' is a regression; use predict"
            )));
        }
        let batch = input_batch(&model, columns)?;
        if self.output == Output::Raw {
            let (raw, valid) = model.raw_scores(&batch)?;
            let out: Float64Array = raw
                .into_iter()
                .zip(valid)
                .map(|(r, ok)| ok.then_some(r))
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef));
        }
        if self.output == Output::Prediction && model.options.scorecard.is_some() {
            // A scorecard predicts its score.
            let (raw, valid) = model.raw_scores(&batch)?;
            let out: Float64Array = raw
                .into_iter()
                .zip(valid)
                .map(|(r, ok)| if ok { model.score_of(r) } else { None })
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef));
        }
        let scores = model.score(&batch)?;
        let out: Float64Array = if self.output == Output::Probability || !model.is_classifier() {
            scores
        } else {
            scores
                .iter()
                .map(|p| {
                    p.map(|p| {
                        if p > model.options.threshold {
                            1.0
                        } else {
                            0.0
                        }
                    })
                })
                .collect()
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// The model's input columns, passed to a function in order, as a batch named like them.
pub(crate) fn input_batch(model: &Model, columns: &[ColumnarValue]) -> Result<RecordBatch> {
    let arrays = ColumnarValue::values_to_arrays(columns)?;
    let fields: Vec<Field> = model
        .inputs
        .iter()
        .zip(&arrays)
        .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
        .collect();
    let options = datafusion::arrow::array::RecordBatchOptions::new()
        .with_row_count(Some(arrays.first().map_or(0, |a| a.len())));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

/// The fields `model_metrics` returns; the ones not applying to a model type are NULL.
pub fn metric_fields() -> Fields {
    Fields::from(
        [
            "rows",
            "auc_roc",
            "auc_pr",
            "log_loss",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "rmse",
            "mae",
            "r2",
            "brier",
            "ece",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Float64, true))
        .collect::<Vec<_>>(),
    )
}

/// `model_metrics(kind, threshold, label, score)`: all scores are kept (exact AUC needs them).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ModelMetrics {
    signature: Signature,
}

impl ModelMetrics {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(ModelMetrics {
            signature: Signature::any(4, Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for ModelMetrics {
    fn name(&self) -> &str {
        "model_metrics"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(metric_fields()))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let literal = |i: usize| -> Option<ScalarValue> {
            args.exprs
                .get(i)?
                .downcast_ref::<datafusion::physical_expr::expressions::Literal>()
                .map(|l| l.value().clone())
        };
        let classification =
            matches!(literal(0), Some(ScalarValue::Utf8(Some(k))) if k == "classification");
        let threshold = match literal(1) {
            Some(ScalarValue::Float64(Some(t))) => t,
            _ => 0.5,
        };
        Ok(Box::new(MetricsAccumulator {
            classification,
            threshold,
            scores: vec![],
            labels: vec![],
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_scores", args.name),
                DataType::List(Arc::clone(&item)),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_labels", args.name),
                DataType::List(item),
                true,
            )),
        ])
    }
}

#[derive(Debug)]
struct MetricsAccumulator {
    classification: bool,
    threshold: f64,
    scores: Vec<f64>,
    labels: Vec<f64>,
}

impl MetricsAccumulator {
    fn push(&mut self, labels: &ArrayRef, scores: &ArrayRef) -> Result<()> {
        let labels = datafusion::arrow::compute::cast(labels, &DataType::Float64)?;
        let scores = datafusion::arrow::compute::cast(scores, &DataType::Float64)?;
        for (y, s) in labels
            .as_primitive::<Float64Type>()
            .iter()
            .zip(scores.as_primitive::<Float64Type>().iter())
        {
            if let (Some(y), Some(s)) = (y, s) {
                self.labels.push(y);
                self.scores.push(s);
            }
        }
        Ok(())
    }
}

impl Accumulator for MetricsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push(&values[2], &values[3])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let scores = states[0]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| DataFusionError::Internal("model_metrics state".into()))?;
        let labels = states[1]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| DataFusionError::Internal("model_metrics state".into()))?;
        for i in 0..scores.len() {
            if scores.is_valid(i) && labels.is_valid(i) {
                self.push(&labels.value(i), &scores.value(i))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |v: &[f64]| {
            ScalarValue::List(Arc::new(
                ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(
                    v.iter().map(|x| Some(*x)).collect::<Vec<_>>(),
                )]),
            ))
        };
        Ok(vec![list(&self.scores), list(&self.labels)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let scored: Vec<(f64, f64, f64)> = self
            .scores
            .iter()
            .zip(&self.labels)
            .map(|(s, y)| (*s, *y, 1.0))
            .collect();
        let mut values = vec![None; 13];
        values[0] = Some(scored.len() as f64);
        if self.classification {
            let m = metrics::classification(&scored, self.threshold);
            for (i, v) in [
                m.auc_roc,
                m.auc_pr,
                m.log_loss,
                m.accuracy,
                m.precision,
                m.recall,
                m.f1,
            ]
            .into_iter()
            .enumerate()
            {
                values[i + 1] = Some(v);
            }
            values[11] = Some(m.brier);
            values[12] = Some(m.ece);
        } else {
            let m = metrics::regression(&scored);
            values[8] = Some(m.rmse);
            values[9] = Some(m.mae);
            values[10] = Some(m.r2);
        }
        let arrays: Vec<ArrayRef> = values
            .into_iter()
            .map(|v| Arc::new(Float64Array::from(vec![v])) as ArrayRef)
            .collect();
        Ok(ScalarValue::Struct(Arc::new(
            datafusion::arrow::array::StructArray::try_new(metric_fields(), arrays, None)?,
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 16 * self.scores.capacity()
    }
}
