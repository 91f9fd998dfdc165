//! `calibration_curve(m, data [, bins])`: per equal-width probability bin (scikit-learn's
//! `calibration_curve`, strategy 'uniform', 10 bins unless given) the mean predicted
//! probability, the observed event rate and the count; empty bins are left out.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::calibration::curve;

pub fn fields() -> Fields {
    Fields::from(vec![
        Field::new("bin", DataType::Int64, false),
        Field::new("mean_predicted", DataType::Float64, false),
        Field::new("observed_rate", DataType::Float64, false),
        Field::new("count", DataType::Int64, false),
    ])
}

/// `augur_calibration_curve(label, probability, bins)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CalibrationCurve {
    signature: Signature,
}

impl CalibrationCurve {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(CalibrationCurve {
            signature: Signature::any(3, Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for CalibrationCurve {
    fn name(&self) -> &str {
        "augur_calibration_curve"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(fields()),
            true,
        ))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let bins = args
            .exprs
            .get(2)
            .and_then(|e| {
                e.downcast_ref::<datafusion::physical_expr::expressions::Literal>()
                    .map(|l| l.value().clone())
            })
            .and_then(|v| match v {
                ScalarValue::Int64(Some(b)) if b > 0 => Some(b as usize),
                _ => None,
            })
            .unwrap_or(10);
        Ok(Box::new(Points {
            bins,
            points: vec![],
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(["probabilities", "labels"]
            .iter()
            .map(|n| {
                Arc::new(Field::new(
                    format!("{}_{n}", args.name),
                    DataType::List(Arc::clone(&item)),
                    true,
                ))
            })
            .collect())
    }
}

#[derive(Debug)]
struct Points {
    bins: usize,
    points: Vec<(f64, f64)>,
}

impl Points {
    fn push(&mut self, labels: &ArrayRef, probabilities: &ArrayRef) -> Result<()> {
        let cast = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Float64);
        let (y, p) = (cast(labels)?, cast(probabilities)?);
        let (y, p) = (
            y.as_primitive::<Float64Type>(),
            p.as_primitive::<Float64Type>(),
        );
        for i in 0..y.len() {
            if y.is_valid(i) && p.is_valid(i) {
                self.points.push((p.value(i), y.value(i)));
            }
        }
        Ok(())
    }
}

impl Accumulator for Points {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let list = |i: usize| {
            states[i]
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| DataFusionError::Internal("calibration_curve state".into()))
        };
        let (p, y) = (list(0)?, list(1)?);
        for i in 0..p.len() {
            if p.is_valid(i) {
                self.push(&y.value(i), &p.value(i))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |f: fn(&(f64, f64)) -> f64| {
            ScalarValue::List(Arc::new(
                ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(
                    self.points.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
                )]),
            ))
        };
        Ok(vec![list(|r| r.0), list(|r| r.1)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let bins = curve(self.points.iter().copied(), self.bins);
        let structs = StructArray::try_new(
            fields(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    bins.iter().map(|b| b.bin as i64),
                )) as ArrayRef,
                Arc::new(Float64Array::from_iter_values(
                    bins.iter().map(|b| b.mean_predicted),
                )),
                Arc::new(Float64Array::from_iter_values(
                    bins.iter().map(|b| b.observed_rate),
                )),
                Arc::new(Int64Array::from_iter_values(
                    bins.iter().map(|b| b.count as i64),
                )),
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(fields()), true)),
            OffsetBuffer::from_lengths([bins.len()]),
            Arc::new(structs),
            None,
        )?;
        Ok(ScalarValue::List(Arc::new(list)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.points.capacity() * 16
    }
}
