//! Running our ML statements: TRAIN/CREATE MODEL become a `TrainModel` plan node over the
//! training query (DataFusion plans it); SHOW/DESCRIBE/DROP MODEL answer from the catalog;
//! IMPORT/EXPORT MODEL read and write model files (local or object storage).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Extension, LogicalPlan, LogicalPlanBuilder};

use super::Session;
use crate::error::{AugurError, Result};
use crate::ml::logical::train_model::TrainModel;
use crate::ml::model::{Metrics, Model};
use crate::ml::options::{ModelType, TrainOptions};
use crate::ml::registry::Registry;
use crate::parser::ml::{AliasTarget, MlStatement};

/// What an ML statement turns into: a plan to execute, or rows already known.
pub enum Planned {
    Plan(LogicalPlan),
    Rows(Vec<RecordBatch>, Arc<Schema>),
    /// A physical plan kept by the session's plan cache.
    Cached(Box<super::plan_cache::Kept>),
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
        MlStatement::Calibrate {
            name,
            method,
            query,
        } => {
            let method = crate::ml::calibration::Method::parse(&method).ok_or_else(|| {
                usage(format!(
                    "unknown calibration method '{method}': use isotonic or platt"
                ))
            })?;
            let base = registry.get(&name)?;
            let mut options = TrainOptions::new(base.options.model_type, base.options.label);
            options.calibration = Some(crate::ml::calibration::CalibrationParams {
                base: format!("{}@{}", base.name, base.version),
                method,
                resolved: None,
            });
            let input = session.ctx.state().create_logical_plan(&query).await?;
            let node = TrainModel::try_new(base.name, options, input)?;
            Ok(Planned::Plan(LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            })))
        }
        MlStatement::ShowModels => Ok(show(&registry, &registry.all())),
        MlStatement::DescribeModel(reference) => Ok(describe(&registry.get(&reference)?)),
        MlStatement::DropModel { name, if_exists } => {
            registry.drop(&name, if_exists)?;
            Ok(Planned::Rows(vec![], Arc::new(Schema::empty())))
        }
        MlStatement::SetAlias {
            name,
            alias,
            version,
        } => {
            let version = match version {
                None => None,
                Some(AliasTarget::Version(v)) => Some(v),
                Some(AliasTarget::Query(query)) => Some(alias_version(session, &query).await?),
            };
            registry.set_alias(&name, &alias, version)?;
            Ok(Planned::Rows(vec![], Arc::new(Schema::empty())))
        }
        MlStatement::ImportModel {
            name,
            location,
            options,
        } => super::model_files::import(session, &registry, &name, &location, &options).await,
        MlStatement::ExportModel {
            name,
            location,
            options,
        } => super::model_files::export(session, &registry, &name, &location, &options).await,
    }
}

/// The version a `SET ALIAS … = (query)` picks: the query's one value, a whole number.
async fn alias_version(session: &Session, query: &str) -> Result<u32> {
    // Planned like TRAIN's query; it runs inside this statement's task, so the server's file
    // sandbox applies, and a writing plan meets the same refusal as a statement.
    let plan = session.ctx.state().create_logical_plan(query).await?;
    super::check_write(session, &plan)?;
    let batches = session
        .ctx
        .execute_logical_plan(plan)
        .await?
        .collect()
        .await?;
    let values: Vec<ScalarValue> = batches
        .iter()
        .filter(|b| b.num_columns() > 0)
        .flat_map(|b| (0..b.num_rows()).map(move |r| ScalarValue::try_from_array(b.column(0), r)))
        .collect::<std::result::Result<_, _>>()?;
    let [value] = values.as_slice() else {
        return Err(usage(format!(
            "SET ALIAS = (query): the query must return one row with the version, it returned {}",
            values.len()
        )));
    };
    match value.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(v)) if v > 0 && v <= i64::from(u32::MAX) => Ok(v as u32),
        other => Err(usage(format!(
            "SET ALIAS = (query): the query returned {other}, not a model version"
        ))),
    }
}

pub(super) fn rows(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Planned {
    let schema = Arc::new(Schema::new(fields));
    match RecordBatch::try_new(Arc::clone(&schema), columns) {
        Ok(batch) => Planned::Rows(vec![batch], schema),
        Err(_) => Planned::Rows(vec![], schema),
    }
}

fn show(registry: &Registry, models: &[Model]) -> Planned {
    let aliases = |m: &Model| -> Option<String> {
        let names: Vec<String> = registry
            .aliases(&m.name)
            .into_iter()
            .filter(|(_, v)| *v == m.version)
            .map(|(a, _)| a)
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    };
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
            Field::new("aliases", DataType::Utf8, true),
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
                models.iter().map(|m| m.feature_count() as i64),
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
            Arc::new(StringArray::from(
                models.iter().map(aliases).collect::<Vec<_>>(),
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
    if let Some(t) = &m.trees {
        describe_trees(m, t, &mut add);
    } else {
        add("coefficients", "intercept", format!("{}", m.intercept));
        for (name, c) in m.feature_names.iter().zip(&m.coefficients) {
            add("coefficients", name, format!("{c}"));
        }
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
    add("training", "fit seconds", format!("{:.3}", t.fit_seconds));
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
    if m.trees.is_none() {
        let history: Vec<String> = t
            .objective_history
            .iter()
            .map(|i| format!("{:.6}", i.objective))
            .collect();
        add("training", "objective history", history.join(", "));
    }
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
    if let Some(p) = &o.trees {
        for (k, v) in [
            ("num_iterations", p.num_iterations.to_string()),
            ("learning_rate", p.learning_rate.to_string()),
            ("num_leaves", p.num_leaves.to_string()),
            ("max_depth", p.max_depth.to_string()),
            ("min_data_in_leaf", p.min_data_in_leaf.to_string()),
            (
                "min_sum_hessian_in_leaf",
                p.min_sum_hessian_in_leaf.to_string(),
            ),
            ("lambda_l1", p.lambda_l1.to_string()),
            ("lambda_l2", p.lambda_l2.to_string()),
            ("min_gain_to_split", p.min_gain_to_split.to_string()),
            ("max_bin", p.max_bin.to_string()),
            ("feature_fraction", p.feature_fraction.to_string()),
            ("bagging_fraction", p.bagging_fraction.to_string()),
            ("bagging_freq", p.bagging_freq.to_string()),
            ("early_stopping_rounds", p.early_stopping_rounds.to_string()),
            ("split", o.split.to_string()),
            ("seed", o.seed.to_string()),
        ] {
            add("options", k, v);
        }
        return describe_rows(out);
    }
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
    describe_rows(out)
}

/// The trees' side of DESCRIBE MODEL: size, stopping, the validation curve.
fn describe_trees(
    m: &Model,
    t: &crate::ml::gbdt::TreeModel,
    add: &mut impl FnMut(&str, &str, String),
) {
    add(
        "trees",
        "objective",
        t.objective.lightgbm_name().to_string(),
    );
    add("trees", "trees", t.trees.len().to_string());
    add("trees", "leaves", t.leaves().to_string());
    add(
        "trees",
        "max depth",
        t.trees
            .iter()
            .map(|x| x.max_depth())
            .max()
            .unwrap_or(0)
            .to_string(),
    );
    add("trees", "features", t.features.len().to_string());
    if let Some(source) = &t.imported_from {
        add("trees", "imported from", source.clone());
    }
    if t.monotone.iter().any(|c| *c != 0) {
        let constrained: Vec<String> = t
            .features
            .iter()
            .zip(&t.monotone)
            .filter(|(_, c)| **c != 0)
            .map(|(f, c)| format!("{}:{c:+}", f.name))
            .collect();
        add("trees", "monotone constraints", constrained.join(", "));
    }
    if let Some(metric) = t.metric
        && !t.validation.is_empty()
    {
        let best = m.training.iterations;
        add("validation", "metric", metric.name().to_string());
        add("validation", "best iteration", best.to_string());
        add("validation", "iterations run", t.iterations_run.to_string());
        if let Some(v) = t.validation.get(best.saturating_sub(1)) {
            add("validation", "best value", format!("{v}"));
        }
        let curve: Vec<String> = t.validation.iter().map(|v| format!("{v:.6}")).collect();
        add("validation", "curve", curve.join(", "));
    }
}

fn describe_rows(out: Vec<(String, String, String)>) -> Planned {
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
