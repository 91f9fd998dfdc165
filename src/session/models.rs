//! Running our ML statements: TRAIN/CREATE MODEL become a `TrainModel` plan node over the
//! training query (DataFusion plans it); SHOW/DESCRIBE/DROP MODEL answer from the catalog.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{Extension, LogicalPlan, LogicalPlanBuilder};

use super::Session;
use crate::error::{AugurError, Result};
use crate::ml::logical::train_model::TrainModel;
use crate::ml::model::{Metrics, Model};
use crate::ml::options::{ModelType, TrainOptions};
use crate::ml::registry::Registry;
use crate::parser::ml::MlStatement;

/// What an ML statement turns into: a plan to execute, or rows already known.
pub enum Planned {
    Plan(LogicalPlan),
    Rows(Vec<RecordBatch>, Arc<Schema>),
}

fn usage(message: String) -> AugurError {
    AugurError::Usage(message)
}

pub async fn plan(session: &Session, statement: MlStatement) -> Result<Planned> {
    let registry = Registry::new(Arc::clone(session.db.store()));
    match statement {
        MlStatement::Train {
            name,
            model_type,
            label,
            options,
            query,
            explain,
        } => {
            let model_type = model_type
                .ok_or_else(|| usage("the model type is missing: TRAIN MODEL … USING logistic_regression, or OPTIONS (model_type = '…')".into()))
                .and_then(|t| ModelType::parse(&t).map_err(usage))?;
            let label = label.ok_or_else(|| usage("the label is missing: TRAIN MODEL … PREDICT column, or OPTIONS (label = 'column')".into()))?;
            let mut train_options = TrainOptions::new(model_type, label);
            train_options.apply(&options).map_err(usage)?;
            if name.contains('@') || name.is_empty() {
                return Err(usage(format!(
                    "'{name}' is not a model name: versions are numbered by Augur"
                )));
            }
            let state = session.ctx.state();
            let input = state.create_logical_plan(&query).await?;
            let node = TrainModel::try_new(name, train_options, input)?;
            let plan = LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            });
            Ok(Planned::Plan(match explain {
                Some(analyze) => LogicalPlanBuilder::from(plan)
                    .explain(false, analyze)?
                    .build()?,
                None => plan,
            }))
        }
        MlStatement::ShowModels => Ok(show(&registry.all())),
        MlStatement::DescribeModel(reference) => Ok(describe(&registry.get(&reference)?)),
        MlStatement::DropModel { name, if_exists } => {
            registry.drop(&name, if_exists)?;
            Ok(Planned::Rows(vec![], Arc::new(Schema::empty())))
        }
    }
}

fn rows(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Planned {
    let schema = Arc::new(Schema::new(fields));
    match RecordBatch::try_new(Arc::clone(&schema), columns) {
        Ok(batch) => Planned::Rows(vec![batch], schema),
        Err(_) => Planned::Rows(vec![], schema),
    }
}

fn show(models: &[Model]) -> Planned {
    let metric = |m: &Model| match &m.metrics {
        Some(Metrics::Classification(c)) => Some(c.auc_roc),
        Some(Metrics::Regression(r)) => Some(r.rmse),
        None => None,
    };
    rows(
        vec![
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("model_type", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("features", DataType::Int64, false),
            Field::new("rows_used", DataType::Int64, false),
            Field::new("metric", DataType::Utf8, true),
            Field::new("metric_value", DataType::Float64, true),
            Field::new("created_unix", DataType::Int64, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| m.name.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                models.iter().map(|m| i64::from(m.version)),
            )),
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| m.options.model_type.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| m.options.label.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                models.iter().map(|m| m.coefficients.len() as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                models.iter().map(|m| m.training.rows_used as i64),
            )),
            Arc::new(StringArray::from(
                models
                    .iter()
                    .map(|m| {
                        m.metrics.as_ref().map(|x| {
                            if matches!(x, Metrics::Classification(_)) {
                                "auc_roc"
                            } else {
                                "rmse"
                            }
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                models.iter().map(metric).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(
                models.iter().map(|m| m.created_unix as i64),
            )),
        ],
    )
}

/// A Spark-style summary as (section, name, value) rows.
fn describe(m: &Model) -> Planned {
    let mut out: Vec<(String, String, String)> = vec![];
    let mut add =
        |section: &str, name: &str, value: String| out.push((section.into(), name.into(), value));
    let t = &m.training;
    add("model", "name", format!("{}@{}", m.name, m.version));
    add("model", "type", m.options.model_type.name().into());
    add("model", "label", m.options.label.clone());
    add("model", "inputs", m.inputs.join(", "));
    add("coefficients", "intercept", format!("{}", m.intercept));
    for (name, c) in m.feature_names.iter().zip(&m.coefficients) {
        add("coefficients", name, format!("{c}"));
    }
    add("training", "rows read", t.rows_read.to_string());
    add("training", "rows used", t.rows_used.to_string());
    add(
        "training",
        "rows dropped (NULLs)",
        t.rows_dropped.to_string(),
    );
    add("training", "rows held out", t.rows_held_out.to_string());
    add("training", "total iterations", t.iterations.to_string());
    add("training", "converged", t.converged.to_string());
    add("training", "stop reason", t.stop_reason.clone());
    add("training", "seconds", format!("{:.3}", t.seconds));
    add("training", "data passes", t.passes.to_string());
    if t.passes > 0 {
        add(
            "training",
            "seconds per pass",
            format!("{:.6}", t.fit_seconds / t.passes as f64),
        );
    }
    if let Some(l) = t.lambda_max {
        add("training", "lambda_max", format!("{l}"));
    }
    let history: Vec<String> = t
        .objective_history
        .iter()
        .map(|i| format!("{:.6}", i.objective))
        .collect();
    add("training", "objective history", history.join(", "));
    for w in &t.warnings {
        add("training", "warning", w.clone());
    }
    match &m.metrics {
        Some(Metrics::Classification(c)) => {
            for (k, v) in [
                ("auc_roc", c.auc_roc),
                ("auc_pr", c.auc_pr),
                ("log_loss", c.log_loss),
                ("accuracy", c.accuracy),
                ("precision", c.precision),
                ("recall", c.recall),
                ("f1", c.f1),
                ("threshold", c.threshold),
            ] {
                add(&format!("metrics ({})", t.metrics_on), k, format!("{v}"));
            }
        }
        Some(Metrics::Regression(r)) => {
            for (k, v) in [("rmse", r.rmse), ("mae", r.mae), ("r2", r.r2)] {
                add(&format!("metrics ({})", t.metrics_on), k, format!("{v}"));
            }
        }
        None => {}
    }
    let o = &m.options;
    for (k, v) in [
        ("reg_param", o.reg_param.to_string()),
        ("elastic_net_param", o.elastic_net_param.to_string()),
        ("max_iter", o.max_iter.to_string()),
        ("tol", o.tol.to_string()),
        ("fit_intercept", o.fit_intercept.to_string()),
        ("standardization", o.standardization.to_string()),
        ("split", o.split.to_string()),
        ("seed", o.seed.to_string()),
    ] {
        add("options", k, v);
    }
    rows(
        vec![
            Field::new("section", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| r.0.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| r.1.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| r.2.clone()),
            )),
        ],
    )
}
