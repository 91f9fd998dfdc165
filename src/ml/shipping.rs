//! Models travel inside plans sent to a cluster: executors have no catalog, so a model
//! function (`predict`, `predict_proba`, `predict_raw`, `augur_explain`,
//! `augur_reason_codes`, `augur_woe`) whose model is named by a literal is bound at the client
//! to that model version, and the bound function carries it on the wire, bit for bit. The
//! aggregates that `evaluate`, `compare_models` and `calibration_curve` put into plans read
//! scores, not models, and travel by name; `drift`'s reads the catalog and stays at the client.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use serde_json::{Map, Value};

use super::calibration_curve::CalibrationCurve;
use super::compare::CompareModels;
use super::drift::Drift;
use super::explain::Explanations;
use super::functions::{ModelCache, ModelMetrics, Predict};
use super::model::Model;
use super::woe::WoeFunction;

/// The models of `udf` if it is a model function.
fn cache_of(udf: &ScalarUDF) -> Option<&ModelCache> {
    let inner = udf.inner();
    if let Some(f) = inner.downcast_ref::<Predict>() {
        Some(f.models())
    } else if let Some(f) = inner.downcast_ref::<Explanations>() {
        Some(f.models())
    } else {
        inner.downcast_ref::<WoeFunction>().map(|f| f.models())
    }
}

/// At the client: `udf` bound to the model its first argument names, or `None` when `udf`
/// reads no model. A model named by anything but a literal cannot be bound.
pub fn bind(udf: &ScalarUDF, args: &[Arc<dyn PhysicalExpr>]) -> Result<Option<ScalarUDF>> {
    let Some(cache) = cache_of(udf) else {
        return Ok(None);
    };
    if cache.shipped_models().is_some() {
        return Ok(Some(udf.clone()));
    }
    let reference = match args.first().and_then(|a| a.downcast_ref::<Literal>()) {
        Some(literal) => match literal.value() {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
            _ => return Ok(None),
        },
        None => return Ok(None),
    };
    let model = cache.get(&reference)?;
    let models = HashMap::from([(reference, model)]);
    build(udf.name(), &models).map(Some)
}

/// The wire form of a bound model function; `None` for functions that read no model, an
/// error for a model function still reading the catalog (it runs at the client).
pub fn encode(udf: &ScalarUDF) -> Result<Option<Vec<u8>>> {
    let Some(cache) = cache_of(udf) else {
        return Ok(None);
    };
    let Some(models) = cache.shipped_models() else {
        return Err(DataFusionError::NotImplemented(format!(
            "{} runs on a cluster only when its model is named by a literal string",
            udf.name()
        )));
    };
    let mut wire = Map::new();
    for (reference, model) in models {
        let value = serde_json::to_value(model.as_ref())
            .map_err(|e| DataFusionError::Internal(format!("model '{reference}': {e}")))?;
        wire.insert(reference.clone(), exact(value));
    }
    serde_json::to_vec(&Value::Object(wire))
        .map(Some)
        .map_err(|e| DataFusionError::Internal(e.to_string()))
}

/// On an executor: the function `name` with the models `bytes` carry.
pub fn decode(name: &str, bytes: &[u8]) -> Result<ScalarUDF> {
    let broken =
        |e: String| DataFusionError::Internal(format!("the models shipped with {name}: {e}"));
    let Value::Object(wire) = serde_json::from_slice(bytes).map_err(|e| broken(e.to_string()))?
    else {
        return Err(broken("not an object".into()));
    };
    let mut models = HashMap::new();
    for (reference, value) in wire {
        let model: Model =
            serde_json::from_value(inexact(value)?).map_err(|e| broken(e.to_string()))?;
        models.insert(reference, Arc::new(model));
    }
    build(name, &models)
}

/// An aggregate that only relation planners create (they are not registered by name, so an
/// executor's registry does not know them), rebuilt from its name on an executor.
pub fn aggregate(name: &str) -> Option<AggregateUDF> {
    [
        ModelMetrics::udaf(),
        CompareModels::udaf(),
        CalibrationCurve::udaf(),
    ]
    .into_iter()
    .find(|f| f.name() == name)
}

/// Whether `udaf` travels as a name `aggregate` rebuilds; an error for `drift`, whose
/// accumulator reads the client's catalog (it aggregates at the client, above shipped rows).
pub fn encode_aggregate(udaf: &AggregateUDF) -> Result<bool> {
    if udaf.inner().downcast_ref::<Drift>().is_some() {
        return Err(DataFusionError::NotImplemented(format!(
            "{} reads the client's models",
            udaf.name()
        )));
    }
    let inner = udaf.inner();
    Ok(inner.downcast_ref::<ModelMetrics>().is_some()
        || inner.downcast_ref::<CompareModels>().is_some()
        || inner.downcast_ref::<CalibrationCurve>().is_some())
}

fn build(name: &str, models: &HashMap<String, Arc<Model>>) -> Result<ScalarUDF> {
    let cache = || ModelCache::shipped(models.clone());
    Predict::udfs_with(&cache)
        .into_iter()
        .chain(Explanations::udfs_with(&cache))
        .chain([WoeFunction::udf_with(cache())])
        .find(|f| f.name() == name)
        .ok_or_else(|| DataFusionError::Internal(format!("'{name}' is not a model function")))
}

/// JSON with every float as its bit pattern (`f` + 16 hex digits) and every string marked
/// `s`, so parsing gives back the very same doubles (serde_json's default float parsing may
/// miss by an ulp).
fn exact(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => Value::String(format!(
            "f{:016x}",
            n.as_f64().unwrap_or(f64::NAN).to_bits()
        )),
        Value::String(s) => Value::String(format!("s{s}")),
        Value::Array(items) => Value::Array(items.into_iter().map(exact).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, exact(v))).collect()),
        other => other,
    }
}

fn inexact(value: Value) -> Result<Value> {
    Ok(match value {
        Value::String(s) => match s.split_at_checked(1) {
            Some(("s", text)) => Value::String(text.to_string()),
            Some(("f", bits)) => {
                let bits = u64::from_str_radix(bits, 16)
                    .map_err(|e| DataFusionError::Internal(format!("a shipped float: {e}")))?;
                serde_json::Number::from_f64(f64::from_bits(bits))
                    .map_or(Value::Null, Value::Number)
            }
            _ => return Err(DataFusionError::Internal(format!("a shipped value '{s}'"))),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(inexact).collect::<Result<_>>()?),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, inexact(v)?)))
                .collect::<Result<_>>()?,
        ),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_strings_come_back_bit_for_bit() {
        let value = serde_json::json!({
            "a": [0.1, 1e-300, -2.5e17, 1, "f00", "s", ""],
            "b": {"c": 0.30000000000000004, "d": null, "e": true}
        });
        let back = inexact(exact(value.clone())).unwrap();
        assert_eq!(back, value);
        let x = 0.1f64 + 0.2;
        let shipped = exact(serde_json::json!(x));
        assert_eq!(
            inexact(shipped).unwrap().as_f64().unwrap().to_bits(),
            x.to_bits()
        );
    }
}
