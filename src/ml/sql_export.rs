//! `EXPORT MODEL m TO 'file.sql' OPTIONS (format = 'sql')`: a model as one portable SQL
//! expression over its input columns — a scorecard's score as a sum of one CASE per
//! characteristic, a logistic regression's probability, a linear regression's value — that
//! any SQL database can run. Numbers are written in scientific notation so that every
//! engine reads them as doubles (a plain decimal literal is DECIMAL in some), exactly.

use datafusion::error::{DataFusionError, Result};

use super::binning::{Cuts, FeatureBinning};
use super::model::Model;
use super::options::{ModelType, NullPolicy};
use super::preprocess::Encoder;

fn number(v: f64) -> String {
    format!("{v:e}")
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn refuse(model: &Model, why: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "EXPORT MODEL: '{}@{}' cannot be written as SQL: {why}",
        model.name, model.version
    ))
}

/// The expression and a comment header saying what it computes.
pub fn write(model: &Model) -> Result<String> {
    if model.calibration.is_some() {
        return Err(refuse(
            model,
            "its calibration map has no CASE form; export the version it calibrates",
        ));
    }
    let (what, expression) = match model.options.model_type {
        ModelType::Scorecard => ("the score in points", scorecard(model)?),
        ModelType::LogisticRegression => (
            "the probability of label 1",
            format!("1e0 / (1e0 + exp(-({})))", linear(model)?),
        ),
        ModelType::LinearRegression => ("the predicted value", linear(model)?),
        other => {
            return Err(refuse(
                model,
                &format!(
                    "a {} has no SQL form; SQL export takes scorecards and linear models{}",
                    other.name(),
                    if other.is_trees() {
                        " (boosted trees: format = 'lightgbm')"
                    } else {
                        ""
                    }
                ),
            ));
        }
    };
    Ok(format!(
        "-- Augur model {}@{} ({}): {what}.\n-- Inputs: {}.\n{expression}\n",
        model.name,
        model.version,
        model.options.model_type.name(),
        model.inputs.join(", ")
    ))
}

/// One CASE per characteristic, summed: the points of the value's bin.
fn scorecard(model: &Model) -> Result<String> {
    let mut terms = vec![];
    for (j, b) in model.binnings().into_iter().enumerate() {
        let points = |woe: f64| model.points(j, woe).unwrap_or(0.0);
        terms.push(characteristic(
            b,
            &|bin| points(b.bins[bin].woe),
            points(0.0),
        ));
    }
    Ok(terms.join("\n+ "))
}

/// `CASE` over one feature's bins; `unseen` for a category training never saw.
fn characteristic(b: &FeatureBinning, value: &dyn Fn(usize) -> f64, unseen: f64) -> String {
    let column = ident(&b.column);
    let mut arms = vec![format!(
        "WHEN {column} IS NULL THEN {}",
        number(value(b.missing_bin()))
    )];
    match &b.cuts {
        Cuts::Numeric { splits } => {
            let specials = b.numeric_specials();
            if !specials.is_empty() {
                let list: Vec<String> = specials.iter().map(|v| number(*v)).collect();
                arms.push(format!(
                    "WHEN {column} IN ({}) THEN {}",
                    list.join(", "),
                    number(value(b.special_bin()))
                ));
            }
            for (i, s) in splits.iter().enumerate() {
                arms.push(format!(
                    "WHEN {column} < {} THEN {}",
                    number(*s),
                    number(value(i))
                ));
            }
            arms.push(format!("ELSE {}", number(value(splits.len()))));
        }
        Cuts::Categorical { groups } => {
            let as_text = format!("CAST({column} AS VARCHAR)");
            if !b.special_values.is_empty() {
                let list: Vec<String> = b.special_values.iter().map(|v| text(v)).collect();
                arms.push(format!(
                    "WHEN {as_text} IN ({}) THEN {}",
                    list.join(", "),
                    number(value(b.special_bin()))
                ));
            }
            for (i, g) in groups.iter().enumerate() {
                let list: Vec<String> = g.iter().map(|v| text(v)).collect();
                arms.push(format!(
                    "WHEN {as_text} IN ({}) THEN {}",
                    list.join(", "),
                    number(value(i))
                ));
            }
            arms.push(format!("ELSE {}", number(unseen)));
        }
    }
    format!("(CASE {} END)", arms.join(" "))
}

/// intercept + Σ coefficient · feature, features encoded as the model encodes them.
fn linear(model: &Model) -> Result<String> {
    let impute = model.options.handle_nulls == NullPolicy::Impute;
    let mut terms = vec![number(model.intercept)];
    let mut k = 0;
    for e in &model.encoders {
        match e {
            Encoder::Numeric { column, mean, .. } => {
                let x = if impute {
                    format!("COALESCE({}, {})", ident(column), number(*mean))
                } else {
                    ident(column)
                };
                terms.push(format!("{} * {x}", number(model.coefficients[k])));
            }
            Encoder::OneHot {
                column, categories, ..
            } => {
                let as_text = format!("CAST({} AS VARCHAR)", ident(column));
                for (i, c) in categories.iter().enumerate() {
                    // A NULL category is all zeros when imputing, unscorable otherwise.
                    let null = if impute { "0e0" } else { "NULL" };
                    terms.push(format!(
                        "{} * (CASE WHEN {as_text} IS NULL THEN {null} WHEN {as_text} = {} THEN 1e0 ELSE 0e0 END)",
                        number(model.coefficients[k + i]),
                        text(c)
                    ));
                }
            }
            Encoder::Woe { binning, .. } => {
                let w = |bin: usize| binning.bins[bin].woe;
                terms.push(format!(
                    "{} * {}",
                    number(model.coefficients[k]),
                    characteristic(binning, &w, 0.0)
                ));
            }
            Encoder::Date { column, .. } => {
                return Err(refuse(
                    model,
                    &format!(
                        "date column '{column}' is encoded by parts that differ between databases"
                    ),
                ));
            }
        }
        k += e.width();
    }
    Ok(terms.join("\n+ "))
}
