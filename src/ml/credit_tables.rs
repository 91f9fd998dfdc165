//! The tables a model validator reads: `binning_table(b [, feature])` (each bin's range or
//! categories, counts, event rate, WoE, IV — optbinning's binning table),
//! `scorecard_table(sc)` (points per bin) and `woe_transform(b, data)` (features → WoE).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::Column;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, lit};

use super::binning::FeatureBinning;
use super::model::Model;
use super::relations::{floats, memory_plan, strings};

fn plan_err(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

fn ints(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// The model's bins, or an error for models without any.
fn binnings<'a>(model: &'a Model, function: &str) -> Result<Vec<&'a FeatureBinning>> {
    let b = model.binnings();
    if b.is_empty() {
        return Err(plan_err(format!(
            "{function}: model '{}' is a {}, which has no bins; use a woe_binning or scorecard model",
            model.name,
            model.options.model_type.name()
        )));
    }
    Ok(b)
}

pub fn binning_table(model: &Model, feature: Option<&str>) -> Result<LogicalPlan> {
    let all = binnings(model, "binning_table")?;
    let chosen: Vec<&FeatureBinning> = match feature {
        None => all,
        Some(f) => {
            let names: Vec<&str> = all.iter().map(|b| b.column.as_str()).collect();
            let found: Vec<&FeatureBinning> = all
                .iter()
                .copied()
                .filter(|b| b.column.eq_ignore_ascii_case(f))
                .collect();
            if found.is_empty() {
                return Err(plan_err(format!(
                    "binning_table: model '{}' has no feature '{f}'; its features: {}",
                    model.name,
                    names.join(", ")
                )));
            }
            found
        }
    };
    // (feature, bin index, bin, its share of the feature's rows, trend)
    let mut rows: Vec<(&FeatureBinning, usize, f64)> = vec![];
    for b in chosen {
        let total: f64 = b.bins.iter().map(|x| x.count()).sum();
        for (i, bin) in b.bins.iter().enumerate() {
            rows.push((
                b,
                i,
                if total > 0.0 {
                    bin.count() / total
                } else {
                    0.0
                },
            ));
        }
    }
    fn bin<'a>(r: &(&'a FeatureBinning, usize, f64)) -> &'a super::binning::Bin {
        &r.0.bins[r.1]
    }
    memory_plan(
        "binning_table",
        vec![
            Field::new("feature", DataType::Utf8, false),
            Field::new("bin", DataType::Int64, false),
            Field::new("bin_range", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
            Field::new("share", DataType::Float64, true),
            Field::new("nonevents", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
            Field::new("event_rate", DataType::Float64, true),
            Field::new("woe", DataType::Float64, true),
            Field::new("iv", DataType::Float64, true),
            Field::new("trend", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.0.column.clone())),
            ints(rows.iter().map(|r| r.1 as i64)),
            strings(rows.iter().map(|r| bin(r).label.clone())),
            ints(rows.iter().map(|r| bin(r).count() as i64)),
            floats(rows.iter().map(|r| Some(r.2))),
            ints(rows.iter().map(|r| bin(r).nonevents as i64)),
            ints(rows.iter().map(|r| bin(r).events as i64)),
            floats(rows.iter().map(|r| {
                let b = bin(r);
                (b.count() > 0.0).then(|| b.events / b.count())
            })),
            floats(rows.iter().map(|r| Some(bin(r).woe))),
            floats(rows.iter().map(|r| Some(bin(r).iv))),
            strings(rows.iter().map(|r| r.0.trend.name().to_string())),
        ],
    )
}

pub fn scorecard_table(model: &Model) -> Result<LogicalPlan> {
    if model.options.scorecard.is_none() {
        return Err(plan_err(format!(
            "scorecard_table: model '{}' is a {}, not a scorecard",
            model.name,
            model.options.model_type.name()
        )));
    }
    let mut rows: Vec<(String, i64, String, f64, f64, f64)> = vec![];
    for (j, b) in binnings(model, "scorecard_table")?.into_iter().enumerate() {
        for (i, bin) in b.bins.iter().enumerate() {
            rows.push((
                b.column.clone(),
                i as i64,
                bin.label.clone(),
                bin.woe,
                model.coefficients[j],
                model.points(j, bin.woe).unwrap_or(f64::NAN),
            ));
        }
    }
    memory_plan(
        "scorecard_table",
        vec![
            Field::new("feature", DataType::Utf8, false),
            Field::new("bin", DataType::Int64, false),
            Field::new("bin_range", DataType::Utf8, false),
            Field::new("woe", DataType::Float64, false),
            Field::new("coefficient", DataType::Float64, false),
            Field::new("points", DataType::Float64, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.0.clone())),
            ints(rows.iter().map(|r| r.1)),
            strings(rows.iter().map(|r| r.2.clone())),
            floats(rows.iter().map(|r| Some(r.3))),
            floats(rows.iter().map(|r| Some(r.4))),
            floats(rows.iter().map(|r| Some(r.5))),
        ],
    )
}

/// The data with each binned feature replaced by its WoE (other columns as they are).
pub fn woe_transform(
    model: &Model,
    pinned: &str,
    data: LogicalPlan,
    woe: &Arc<ScalarUDF>,
) -> Result<LogicalPlan> {
    let bins = binnings(model, "woe_transform")?;
    let mut replaced = 0;
    let exprs: Vec<Expr> = data
        .schema()
        .iter()
        .map(|(q, f)| {
            let column = Expr::Column(Column::new(q.cloned(), f.name()));
            match bins.iter().find(|b| b.column == *f.name()) {
                Some(b) => {
                    replaced += 1;
                    Expr::ScalarFunction(ScalarFunction::new_udf(
                        Arc::clone(woe),
                        vec![lit(pinned.to_string()), lit(b.column.clone()), column],
                    ))
                    .alias(f.name())
                }
                None => column,
            }
        })
        .collect();
    if replaced == 0 {
        let names: Vec<&str> = bins.iter().map(|b| b.column.as_str()).collect();
        return Err(plan_err(format!(
            "woe_transform: the data has none of model '{}''s features ({})",
            model.name,
            names.join(", ")
        )));
    }
    LogicalPlanBuilder::from(data).project(exprs)?.build()
}
