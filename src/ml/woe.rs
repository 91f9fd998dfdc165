//! `augur_woe('model@v', 'feature', column)`: a column's weight of evidence under a binning
//! (or scorecard) model's bins — what `woe_transform(b, data)` projects for each feature.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::functions::{ModelCache, reference_of};
use super::registry::Registry;

pub const NAME: &str = "augur_woe";

#[derive(Debug)]
pub struct WoeFunction {
    signature: Signature,
    models: ModelCache,
}

impl PartialEq for WoeFunction {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for WoeFunction {}
impl std::hash::Hash for WoeFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

impl WoeFunction {
    pub fn udf(registry: &Registry) -> ScalarUDF {
        Self::udf_with(ModelCache::new(registry))
    }

    pub fn udf_with(models: ModelCache) -> ScalarUDF {
        ScalarUDF::from(WoeFunction {
            signature: Signature::any(3, Volatility::Stable),
            models,
        })
    }

    pub fn models(&self) -> &ModelCache {
        &self.models
    }
}

impl ScalarUDFImpl for WoeFunction {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [model, feature, column] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(format!(
                "{NAME}('model', 'feature', column) takes three arguments"
            )));
        };
        let reference = reference_of(model, NAME)?;
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(feature))) = feature else {
            return Err(DataFusionError::Plan(format!(
                "{NAME}: the second argument is the feature's name"
            )));
        };
        let model = self.models.get(&reference)?;
        let binning = model
            .binnings()
            .into_iter()
            .find(|b| b.column == *feature)
            .ok_or_else(|| {
                DataFusionError::Plan(format!("model '{reference}' does not bin '{feature}'"))
            })?;
        let array = column.to_array(args.number_rows)?;
        let woe = Float64Array::from(binning.woe_of(&array)?);
        Ok(ColumnarValue::Array(Arc::new(woe) as ArrayRef))
    }
}
