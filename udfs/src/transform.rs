//! Row-wise transforms that tame a feature before modelling: `winsorize(x, lo, hi)`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::math::SECTION;

/// x clamped into [lo, hi]; errors (rather than panicking like `f64::clamp`) on bounds
/// that describe no interval, so a swapped pair of bounds is reported, not half-applied.
pub fn winsorize(x: f64, lo: f64, hi: f64) -> Result<f64> {
    check_bounds(lo, hi)?;
    Ok(clamp(x, lo, hi))
}

fn check_bounds(lo: f64, hi: f64) -> Result<()> {
    if lo.is_nan() || hi.is_nan() {
        return exec_err!("winsorize: lo ({lo}) and hi ({hi}) must be numbers");
    }
    if lo > hi {
        return exec_err!("winsorize: lo ({lo}) is greater than hi ({hi})");
    }
    Ok(())
}

/// NaN x stays NaN: it is not outside the bounds, it is unknown.
fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Winsorize {
    signature: Signature,
}

impl ScalarUDFImpl for Winsorize {
    fn name(&self) -> &str {
        "winsorize"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // Constant bounds (the usual call) are checked once, not once per row.
        if let [
            ColumnarValue::Array(x),
            ColumnarValue::Scalar(ScalarValue::Float64(lo)),
            ColumnarValue::Scalar(ScalarValue::Float64(hi)),
        ] = args.args.as_slice()
        {
            let x = as_float64_array(x)?;
            let out: Float64Array = match (*lo, *hi) {
                (Some(lo), Some(hi)) => {
                    check_bounds(lo, hi)?;
                    x.unary(|v| clamp(v, lo, hi))
                }
                _ => Float64Array::new_null(x.len()),
            };
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [x, lo, hi] = arrays.as_slice() else {
            return exec_err!("winsorize takes 3 arguments, got {}", arrays.len());
        };
        let (x, lo, hi) = (
            as_float64_array(x)?,
            as_float64_array(lo)?,
            as_float64_array(hi)?,
        );
        let out = x
            .iter()
            .zip(lo.iter())
            .zip(hi.iter())
            .map(|((x, lo), hi)| match (lo, hi) {
                // Bounds are checked even when x is NULL, as the constant-bounds path does.
                (Some(lo), Some(hi)) => check_bounds(lo, hi).map(|()| x.map(|x| clamp(x, lo, hi))),
                _ => Ok(None),
            })
            .collect::<Result<Float64Array>>()?;
        let out: ArrayRef = Arc::new(out);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&WINSORIZE_DOC)
    }
}

static WINSORIZE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "Clamps x into [lo, hi]: values below lo become lo, values above hi become hi. \
         NULL in any argument gives NULL; lo greater than hi is an error.",
        "winsorize(x, lo, hi)",
    )
    .with_argument("x", "the value to clamp (any numeric expression)")
    .with_argument("lo", "the lower bound")
    .with_argument("hi", "the upper bound, at least lo")
    .with_sql_example(
        "SELECT winsorize(income, 1000, 250000) FROM applicants;\n\
         SELECT winsorize(12.0, 0, 10); -- 10.0",
    )
    .build()
});

pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(Winsorize {
        signature: Signature::uniform(3, vec![DataType::Float64], Volatility::Immutable),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_rejects_bad_bounds() -> Result<()> {
        assert_eq!(winsorize(-3.0, 0.0, 1.0)?, 0.0);
        assert_eq!(winsorize(0.25, 0.0, 1.0)?, 0.25);
        assert_eq!(winsorize(7.0, 0.0, 1.0)?, 1.0);
        assert_eq!(winsorize(7.0, 2.0, 2.0)?, 2.0);
        assert!(winsorize(f64::NAN, 0.0, 1.0)?.is_nan());
        let err = winsorize(1.0, 5.0, 1.0).unwrap_err().to_string();
        assert!(
            err.contains("winsorize: lo (5) is greater than hi (1)"),
            "{err}"
        );
        assert!(winsorize(1.0, f64::NAN, 1.0).is_err());
        Ok(())
    }
}
