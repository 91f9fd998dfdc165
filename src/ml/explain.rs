//! Per-row explanations as SQL functions behind `explain(model, data [, top_k])` and
//! `reason_codes(model, data, k)`: each takes the model (pinned version) and its input
//! columns, scores a batch at a time, and returns lists the relation planner unpacks into
//! columns (explain) or rows (reason codes).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::functions::{ModelCache, input_batch, reference_of};
use super::registry::Registry;

pub const EXPLAIN: &str = "augur_explain";
pub const REASONS: &str = "augur_reason_codes";

/// The struct of one reason code.
pub fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("reason_rank", DataType::Int64, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("contribution", DataType::Float64, false),
    ])
}

fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

fn reason_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(reason_fields()),
        true,
    )))
}

#[derive(Debug)]
pub struct Explanations {
    reasons: bool,
    signature: Signature,
    models: ModelCache,
}

impl PartialEq for Explanations {
    fn eq(&self, other: &Self) -> bool {
        self.reasons == other.reasons
    }
}
impl Eq for Explanations {}
impl std::hash::Hash for Explanations {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.reasons.hash(state)
    }
}

impl Explanations {
    /// `augur_explain` and `augur_reason_codes`.
    pub fn udfs(registry: &Registry) -> Vec<ScalarUDF> {
        Self::udfs_with(&|| ModelCache::new(registry))
    }

    /// Both functions, each with the models `models` gives.
    pub fn udfs_with(models: &dyn Fn() -> ModelCache) -> Vec<ScalarUDF> {
        [false, true]
            .into_iter()
            .map(|reasons| {
                ScalarUDF::from(Explanations {
                    reasons,
                    signature: Signature::variadic_any(Volatility::Stable),
                    models: models(),
                })
            })
            .collect()
    }

    pub fn models(&self) -> &ModelCache {
        &self.models
    }
}

fn count_of(value: &ColumnarValue) -> usize {
    match value {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(k))) if *k > 0 => *k as usize,
        _ => 0,
    }
}

impl ScalarUDFImpl for Explanations {
    fn name(&self) -> &str {
        if self.reasons { REASONS } else { EXPLAIN }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.reasons {
            reason_list()
        } else {
            float_list()
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let [reference, k, columns @ ..] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(format!(
                "{name}('model', k, column, …) needs a model, a count and the input columns"
            )));
        };
        let reference = reference_of(reference, name)?;
        let model = self.models.get(&reference)?;
        if columns.len() != model.inputs.len() {
            return Err(DataFusionError::Plan(format!(
                "{name}: model '{reference}' takes {} input columns ({}), got {}",
                model.inputs.len(),
                model.inputs.join(", "),
                columns.len()
            )));
        }
        let k = count_of(k);
        let batch = input_batch(&model, columns)?;
        let explained = model.explain(&batch)?;
        let rows = batch.num_rows();
        let mut offsets = vec![0i32];
        let valid: Vec<bool> = explained.iter().map(Option::is_some).collect();
        let nulls = valid
            .iter()
            .any(|v| !v)
            .then(|| NullBuffer::from(valid.clone()));
        if !self.reasons {
            // [raw, bias, contribution per input]; outside the row's top k: NULL.
            let mut values: Vec<Option<f64>> = vec![];
            for e in &explained {
                if let Some(e) = e {
                    values.push(Some(e.raw));
                    values.push(Some(e.bias));
                    let keep = top(&e.contributions, k, |c| c.abs());
                    for (i, c) in e.contributions.iter().enumerate() {
                        values.push(keep[i].then_some(*c));
                    }
                }
                offsets.push(values.len() as i32);
            }
            let list = ListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float64, true)),
                OffsetBuffer::new(offsets.into()),
                Arc::new(Float64Array::from(values)),
                nulls,
            )?;
            return Ok(ColumnarValue::Array(Arc::new(list)));
        }
        // The k inputs pushing hardest toward the positive class (or a higher value).
        let texts: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        let scorecard = model.options.scorecard.is_some();
        let (mut rank, mut feature, mut value, mut contribution) = (vec![], vec![], vec![], vec![]);
        for e in explained.iter().take(rows) {
            if let Some(e) = e {
                // Toward the event: a positive contribution, or a scorecard's points lost.
                let risk: Vec<f64> = if scorecard {
                    e.contributions.iter().map(|c| -c).collect()
                } else {
                    e.contributions.clone()
                };
                let mut order: Vec<usize> = (0..risk.len()).filter(|i| risk[*i] > 0.0).collect();
                order.sort_by(|a, b| risk[*b].total_cmp(&risk[*a]).then(a.cmp(b)));
                let row = offsets.len() - 1;
                for (r, i) in order
                    .into_iter()
                    .take(if k == 0 { usize::MAX } else { k })
                    .enumerate()
                {
                    rank.push(r as i64 + 1);
                    feature.push(model.inputs[i].clone());
                    let text = texts[i].as_string::<i32>();
                    value.push(text.is_valid(row).then(|| text.value(row).to_string()));
                    contribution.push(risk[i]);
                }
            }
            offsets.push(rank.len() as i32);
        }
        let structs = StructArray::try_new(
            reason_fields(),
            vec![
                Arc::new(Int64Array::from(rank)),
                Arc::new(StringArray::from(feature)),
                Arc::new(StringArray::from(value)),
                Arc::new(Float64Array::from(contribution)),
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(
                DataType::Struct(reason_fields()),
                true,
            )),
            OffsetBuffer::new(offsets.into()),
            Arc::new(structs),
            nulls,
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// Which of `values` are among the k largest by `key` (all when k is 0); ties by position.
fn top(values: &[f64], k: usize, key: impl Fn(f64) -> f64) -> Vec<bool> {
    if k == 0 || k >= values.len() {
        return vec![true; values.len()];
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| key(values[*b]).total_cmp(&key(values[*a])).then(a.cmp(b)));
    let mut keep = vec![false; values.len()];
    for i in order.into_iter().take(k) {
        keep[i] = true;
    }
    keep
}
