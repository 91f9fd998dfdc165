//! `augur_glm_sums(kind, params, label, weight, x1, …, xd)`: the sums one step of a GLM fit
//! needs, as an aggregate whose partial state is the list of sums — so a cluster computes them
//! where the encoded rows are and only d + 3 numbers per task come back. Kinds:
//! `moments` → [rows, Σw, Σw², Σw·y, Σw·x_j…]; `spread` with params [ȳ, μ_j…] →
//! [Σw(y−ȳ)², Σw(x_j−μ_j)²…]; `logistic` / `squared` with params [offset, shift, scale, a_j…]
//! → [Σ loss, Σ r, Σ r·x_j…] at margins offset + Σ a_j x_j (see `rows::Loss`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use super::rows::Loss;

pub const NAME: &str = "augur_glm_sums";

/// What is summed.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Moments,
    Spread {
        label_mean: f64,
        mean: Vec<f64>,
    },
    Pass {
        offset: f64,
        a: Vec<f64>,
        loss: Loss,
    },
}

impl Kind {
    /// The literal arguments that ask for these sums.
    pub fn arguments(&self) -> (ScalarValue, ScalarValue) {
        let (kind, params) = match self {
            Kind::Moments => ("moments", vec![]),
            Kind::Spread { label_mean, mean } => (
                "spread",
                std::iter::once(*label_mean)
                    .chain(mean.iter().copied())
                    .collect(),
            ),
            Kind::Pass { offset, a, loss } => {
                let (kind, shift, scale) = match loss {
                    Loss::Logistic => ("logistic", 0.0, 1.0),
                    Loss::Squared { shift, scale } => ("squared", *shift, *scale),
                };
                (
                    kind,
                    [*offset, shift, scale]
                        .into_iter()
                        .chain(a.iter().copied())
                        .collect(),
                )
            }
        };
        (ScalarValue::Utf8(Some(kind.into())), float_list(&params))
    }

    fn parse(kind: &str, params: &[f64], features: usize) -> Result<Kind> {
        let bad = || {
            DataFusionError::Plan(format!(
                "{NAME}('{kind}', …): {} parameters for {features} features",
                params.len()
            ))
        };
        match kind {
            "moments" => Ok(Kind::Moments),
            "spread" if params.len() == features + 1 => Ok(Kind::Spread {
                label_mean: params[0],
                mean: params[1..].to_vec(),
            }),
            "logistic" | "squared" if params.len() == features + 3 => Ok(Kind::Pass {
                offset: params[0],
                a: params[3..].to_vec(),
                loss: if kind == "logistic" {
                    Loss::Logistic
                } else {
                    Loss::Squared {
                        shift: params[1],
                        scale: params[2],
                    }
                },
            }),
            "spread" | "logistic" | "squared" => Err(bad()),
            other => Err(DataFusionError::Plan(format!(
                "{NAME}: unknown kind '{other}' (moments, spread, logistic, squared)"
            ))),
        }
    }

    fn width(&self, features: usize) -> usize {
        match self {
            Kind::Moments => 4 + features,
            Kind::Spread { .. } => 1 + features,
            Kind::Pass { .. } => 2 + features,
        }
    }
}

fn float_list(values: &[f64]) -> ScalarValue {
    ScalarValue::List(Arc::new(
        ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            values.iter().map(|v| Some(*v)).collect::<Vec<_>>(),
        )]),
    ))
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GlmSums {
    signature: Signature,
}

impl GlmSums {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(GlmSums {
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for GlmSums {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}_sums", args.name),
            list_type(),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let literal = |i: usize| {
            args.exprs
                .get(i)
                .and_then(|e| e.downcast_ref::<Literal>())
                .map(|l| l.value().clone())
        };
        let features = args.exprs.len().saturating_sub(4);
        let kind = match literal(0) {
            Some(ScalarValue::Utf8(Some(k))) => k,
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "{NAME}(kind, params, label, weight, x…): kind is a string literal"
                )));
            }
        };
        let params: Vec<f64> = match literal(1) {
            Some(ScalarValue::List(list)) if list.len() == 1 => list
                .value(0)
                .as_primitive_opt::<Float64Type>()
                .map(|a| a.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                .unwrap_or_default(),
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "{NAME}: params is a literal list of doubles"
                )));
            }
        };
        let kind = Kind::parse(&kind, &params, features)?;
        Ok(Box::new(Sums {
            sums: vec![0.0; kind.width(features)],
            kind,
        }))
    }
}

#[derive(Debug)]
struct Sums {
    kind: Kind,
    sums: Vec<f64>,
}

fn floats(array: &ArrayRef) -> Result<Float64Array> {
    Ok(datafusion::arrow::compute::cast(array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl Accumulator for Sums {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [_, _, label, weight, features @ ..] = values else {
            return Err(DataFusionError::Internal(format!(
                "{NAME}: too few arguments"
            )));
        };
        let y = floats(label)?;
        let w = floats(weight)?;
        let x: Vec<Float64Array> = features.iter().map(floats).collect::<Result<_>>()?;
        let y = y.values();
        // A NULL weight literal means every weight is 1.
        let w = |i: usize| if w.is_null(i) { 1.0 } else { w.value(i) };
        let s = &mut self.sums;
        match &self.kind {
            Kind::Moments => {
                for i in 0..y.len() {
                    let wi = w(i);
                    s[0] += 1.0;
                    s[1] += wi;
                    s[2] += wi * wi;
                    s[3] += wi * y[i];
                }
                for (j, col) in x.iter().enumerate() {
                    s[4 + j] += col
                        .values()
                        .iter()
                        .enumerate()
                        .map(|(i, v)| w(i) * v)
                        .sum::<f64>();
                }
            }
            Kind::Spread { label_mean, mean } => {
                for i in 0..y.len() {
                    s[0] += w(i) * (y[i] - label_mean).powi(2);
                }
                for (j, col) in x.iter().enumerate() {
                    s[1 + j] += col
                        .values()
                        .iter()
                        .enumerate()
                        .map(|(i, v)| w(i) * (v - mean[j]).powi(2))
                        .sum::<f64>();
                }
            }
            Kind::Pass { offset, a, loss } => {
                let mut residual = vec![*offset; y.len()];
                for (col, aj) in x.iter().zip(a) {
                    if *aj != 0.0 {
                        for (m, v) in residual.iter_mut().zip(col.values()) {
                            *m += aj * v;
                        }
                    }
                }
                for (i, m) in residual.iter_mut().enumerate() {
                    let (l, r) = loss.row(*m, y[i], w(i));
                    s[0] += l;
                    s[1] += r;
                    *m = r;
                }
                for (j, col) in x.iter().enumerate() {
                    s[2 + j] += residual
                        .iter()
                        .zip(col.values())
                        .map(|(r, v)| r * v)
                        .sum::<f64>();
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states
            .first()
            .and_then(|s| s.as_list_opt::<i32>())
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: state is a list")))?;
        for i in 0..lists.len() {
            if lists.is_null(i) {
                continue;
            }
            let part = lists.value(i);
            let part = part.as_primitive::<Float64Type>();
            if part.len() != self.sums.len() {
                return Err(DataFusionError::Internal(format!(
                    "{NAME}: a partial state of {} sums, expected {}",
                    part.len(),
                    self.sums.len()
                )));
            }
            for (t, v) in self.sums.iter_mut().zip(part.values()) {
                *t += v;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![float_list(&self.sums)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(float_list(&self.sums))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * self.sums.capacity()
    }
}
