//! Scalar link functions of logistic models: `sigmoid(x)` and its inverse `logit(p)`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

/// Shared by every file of the crate so that `.help` lists all its functions under one heading.
pub(crate) const SECTION: DocSection = DocSection {
    include: true,
    label: "Risk Analytics Functions",
    description: Some("Functions of Augur's augur-udfs crate"),
};

/// A function of one DOUBLE argument, computed element-wise; NULL in, NULL out.
#[derive(Debug)]
struct UnaryFloat {
    name: &'static str,
    apply: fn(f64) -> f64,
    signature: Signature,
    doc: &'static LazyLock<Documentation>,
}

impl PartialEq for UnaryFloat {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for UnaryFloat {}
impl std::hash::Hash for UnaryFloat {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for UnaryFloat {
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
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = as_float64_array(&arrays[0])?;
        let out: Float64Array = input.unary(self.apply);
        let out: ArrayRef = Arc::new(out);
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.doc)
    }
}

fn unary(
    name: &'static str,
    apply: fn(f64) -> f64,
    doc: &'static LazyLock<Documentation>,
) -> ScalarUDF {
    ScalarUDF::from(UnaryFloat {
        name,
        apply,
        signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        doc,
    })
}

/// 1 / (1 + e^-x), computed without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ln(p / (1 - p)); NaN outside [0, 1], ±inf at the ends.
pub fn logit(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        f64::NAN
    } else {
        (p / (1.0 - p)).ln()
    }
}

static SIGMOID_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "The logistic function 1 / (1 + e^-x): turns a log-odds score into a probability.",
        "sigmoid(x)",
    )
    .with_argument("x", "log-odds (any numeric expression)")
    .with_sql_example("SELECT sigmoid(0.0); -- 0.5")
    .with_related_udf("logit")
    .build()
});

static LOGIT_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(SECTION, "The log-odds ln(p / (1 - p)) of a probability; the inverse of sigmoid. NaN outside [0, 1].", "logit(p)")
        .with_argument("p", "a probability between 0 and 1")
        .with_sql_example("SELECT logit(0.5); -- 0.0")
        .with_related_udf("sigmoid")
        .build()
});

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        unary("sigmoid", sigmoid, &SIGMOID_DOC),
        unary("logit", logit, &LOGIT_DOC),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_stable_and_inverts_logit() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(1000.0) == 1.0 && sigmoid(-1000.0) == 0.0);
        for p in [0.01, 0.3, 0.5, 0.9] {
            assert!((sigmoid(logit(p)) - p).abs() < 1e-12);
        }
        assert!(logit(1.5).is_nan());
    }
}
