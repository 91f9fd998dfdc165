//! `float_bits(x)`: a double's bits as a BIGINT, what ANALYZE counts distinct doubles by
//! (`approx_distinct` does not take floats, and counting their text spent a sixth of
//! `ANALYZE lineitem` formatting numbers). -0 counts as 0, every NaN as one NaN, as `=` does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FloatBits {
    signature: Signature,
}

impl FloatBits {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(FloatBits {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        }))
    }
}

/// One bit pattern per value `=` tells apart.
fn canonical(v: f64) -> i64 {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    v.to_bits() as i64
}

impl ScalarUDFImpl for FloatBits {
    fn name(&self) -> &str {
        "float_bits"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "float_bits takes one argument".into(),
            ));
        };
        let array = value.to_array(args.number_rows)?;
        let floats = array
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal("float_bits takes a DOUBLE".into()))?;
        let bits: Int64Array = floats.unary(canonical);
        Ok(ColumnarValue::Array(Arc::new(bits)))
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn equal_doubles_have_equal_bits() {
        assert_eq!(canonical(-0.0), canonical(0.0));
        assert_eq!(canonical(f64::NAN), canonical(-f64::NAN));
        assert_ne!(canonical(1.0), canonical(1.0 + f64::EPSILON));
        assert_ne!(canonical(2.5), canonical(-2.5));
    }
}
