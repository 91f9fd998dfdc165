//! Table-valued model functions, planned from the SQL AST by a DataFusion `RelationPlanner`
//! (a plain table function would plan `(SELECT …)` as a scalar subquery): `predict`,
//! `explain`, `reason_codes`, `evaluate`, `model_weights`, `feature_importance`,
//! `training_info`, `feature_info`, `roc_curve`, `confusion_matrix`; for binning and
//! scorecard models `binning_table`, `scorecard_table` and `woe_transform` (credit_tables.rs);
//! `compare_models`, `drift`, `calibration_curve` (credit_relations.rs).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemTable;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_nested::expr_fn::array_element;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{
    AggregateUDF, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, lit,
};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, FunctionArg, FunctionArgExpr, TableFactor, Value,
};

use super::model::{Metrics, Model};
use super::preprocess::Encoder;
use super::registry::Registry;

const FUNCTIONS: &[&str] = &[
    "predict",
    "explain",
    "reason_codes",
    "feature_importance",
    "evaluate",
    "model_weights",
    "training_info",
    "feature_info",
    "roc_curve",
    "confusion_matrix",
    "binning_table",
    "scorecard_table",
    "woe_transform",
    "compare_models",
    "drift",
    "calibration_curve",
];

/// The functions the relations call.
#[derive(Debug)]
pub struct ModelFunctions {
    pub predict: Arc<ScalarUDF>,
    pub predict_proba: Arc<ScalarUDF>,
    pub explain: Arc<ScalarUDF>,
    pub reasons: Arc<ScalarUDF>,
    pub metrics: Arc<AggregateUDF>,
}

#[derive(Debug)]
pub struct ModelRelations {
    registry: Registry,
    /// Tables named in arguments are not among those DataFusion resolved before planning,
    /// so they are looked up here.
    tables: Arc<crate::catalog::DatabaseSchema>,
    predict: Arc<ScalarUDF>,
    pub(super) predict_proba: Arc<ScalarUDF>,
    explain: Arc<ScalarUDF>,
    reasons: Arc<ScalarUDF>,
    metrics: Arc<AggregateUDF>,
    woe: Arc<ScalarUDF>,
    pub(super) compare: Arc<AggregateUDF>,
    pub(super) drift: Arc<AggregateUDF>,
    pub(super) curve: Arc<AggregateUDF>,
}

impl ModelRelations {
    pub fn new(
        registry: Registry,
        tables: Arc<crate::catalog::DatabaseSchema>,
        functions: ModelFunctions,
    ) -> Self {
        ModelRelations {
            woe: Arc::new(super::woe::WoeFunction::udf(&registry)),
            compare: Arc::new(super::compare::CompareModels::udaf()),
            drift: Arc::new(super::drift::Drift::udaf(&registry)),
            curve: Arc::new(super::calibration_curve::CalibrationCurve::udaf()),
            registry,
            tables,
            predict: functions.predict,
            predict_proba: functions.predict_proba,
            explain: functions.explain,
            reasons: functions.reasons,
            metrics: functions.metrics,
        }
    }

    /// The data argument: a table of the database, or `(SELECT …)` for anything else.
    fn plan_data(
        &self,
        expr: &SqlExpr,
        context: &mut dyn RelationPlannerContext,
        function: &str,
    ) -> Result<LogicalPlan> {
        use datafusion::catalog::SchemaProvider;
        let name = match expr {
            SqlExpr::Subquery(query) => {
                let relation = TableFactor::Derived {
                    lateral: false,
                    subquery: query.clone(),
                    alias: None,
                    sample: None,
                };
                return context.plan(relation);
            }
            SqlExpr::Identifier(id) => context.normalize_ident(id.clone()),
            SqlExpr::CompoundIdentifier(ids) if !ids.is_empty() => {
                context.normalize_ident(ids[ids.len() - 1].clone())
            }
            _ => {
                return Err(plan_err(format!(
                    "{function}: the data is a table name or a query in parentheses, e.g. {function}(model, (SELECT * FROM 'file.csv'))"
                )));
            }
        };
        let provider = futures::executor::block_on(self.tables.table(&name))?.ok_or_else(|| {
            plan_err(format!(
                "{function}: table '{name}' not found; for files write (SELECT * FROM 'path')"
            ))
        })?;
        LogicalPlanBuilder::scan(name, provider_as_source(provider), None)?.build()
    }
}

pub(super) fn plan_err(m: String) -> DataFusionError {
    DataFusionError::Plan(m)
}

/// A model named by identifier (`risk`, `risk@2`, `risk@champion`) or string (`'risk@2'`).
fn model_reference(expr: &SqlExpr, function: &str) -> Result<String> {
    match expr {
        SqlExpr::Identifier(id) => Ok(id.value.clone()),
        // PostgreSQL's dialect reads `risk@2` as the operator `@` between two operands.
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::At,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (SqlExpr::Identifier(name), SqlExpr::Identifier(alias)) => {
                Ok(format!("{}@{}", name.value, alias.value))
            }
            (SqlExpr::Identifier(name), SqlExpr::Value(v)) => match &v.value {
                Value::Number(n, _) => Ok(format!("{}@{n}", name.value)),
                _ => Err(plan_err(format!(
                    "{function}: a model version is name@N or name@alias"
                ))),
            },
            _ => Err(plan_err(format!(
                "{function}: a model version is name@N or name@alias"
            ))),
        },
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Ok(s.clone()),
            _ => Err(plan_err(format!(
                "{function}: the first argument is a model name"
            ))),
        },
        _ => Err(plan_err(format!(
            "{function}: the first argument is a model name, e.g. {function}(risk, …) or {function}('risk@2', …)"
        ))),
    }
}

/// A whole number ≥ 1 given as a literal.
fn count_argument(expr: &SqlExpr, function: &str, what: &str) -> Result<i64> {
    if let SqlExpr::Value(v) = expr
        && let Value::Number(n, _) = &v.value
        && let Ok(k) = n.parse::<i64>()
        && k >= 1
    {
        return Ok(k);
    }
    Err(plan_err(format!(
        "{function}: {what} is a whole number ≥ 1, e.g. {function}(model, data, 3); got {expr}"
    )))
}

pub(super) fn memory_plan(
    name: &str,
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
) -> Result<LogicalPlan> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?.build()
}

pub(super) fn strings(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

pub(super) fn floats(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(values))
}

/// The model's label as a column of `plan`, or an error naming it.
pub(super) fn label_column(model: &Model, plan: &LogicalPlan, function: &str) -> Result<Expr> {
    plan.schema()
        .qualified_field_with_unqualified_name(&model.options.label)
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .map_err(|_| {
            plan_err(format!(
                "{function}: the data has no label column '{}'",
                model.options.label
            ))
        })
}

/// (input, feature, kind, mean, stddev, training count) of `feature_info`.
type FeatureRow = (
    String,
    String,
    String,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

impl ModelRelations {
    /// The model's inputs as columns of `plan`, or an error naming those it lacks.
    pub(super) fn input_columns(
        &self,
        model: &Model,
        plan: &LogicalPlan,
        function: &str,
    ) -> Result<Vec<Expr>> {
        let mut missing = vec![];
        let mut columns = vec![];
        for name in &model.inputs {
            match plan.schema().qualified_field_with_unqualified_name(name) {
                Ok((q, f)) => columns.push(Expr::Column(Column::new(q.cloned(), f.name()))),
                Err(_) => missing.push(name.as_str()),
            }
        }
        if missing.is_empty() {
            Ok(columns)
        } else {
            Err(plan_err(format!(
                "{function}: model '{}' needs column(s) {} which the data does not have",
                model.name,
                missing.join(", ")
            )))
        }
    }

    pub(super) fn call(&self, udf: &Arc<ScalarUDF>, reference: &str, columns: &[Expr]) -> Expr {
        let mut args = vec![lit(reference.to_string())];
        args.extend(columns.iter().cloned());
        Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(udf), args))
    }

    fn predict(&self, model: &Model, pinned: &str, data: LogicalPlan) -> Result<LogicalPlan> {
        let inputs = self.input_columns(model, &data, "predict")?;
        let mut exprs: Vec<Expr> = data
            .schema()
            .iter()
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
            .collect();
        exprs.extend(self.outputs(model, pinned, &inputs));
        LogicalPlanBuilder::from(data).project(exprs)?.build()
    }

    /// What a model adds to a row: `prediction` (and `probability` for classifiers); a
    /// scorecard's `score` and `probability`.
    fn outputs(&self, model: &Model, pinned: &str, inputs: &[Expr]) -> Vec<Expr> {
        let first = if model.options.scorecard.is_some() {
            "score"
        } else {
            "prediction"
        };
        let mut exprs = vec![self.call(&self.predict, pinned, inputs).alias(first)];
        if model.is_classifier() {
            exprs.push(
                self.call(&self.predict_proba, pinned, inputs)
                    .alias("probability"),
            );
        }
        exprs
    }

    /// The data's columns, the prediction, then `extra` named `hidden`.
    fn scored_with(
        &self,
        model: &Model,
        pinned: &str,
        data: LogicalPlan,
        function: &str,
        extra: Expr,
        hidden: &str,
    ) -> Result<(LogicalPlan, Vec<Expr>)> {
        let inputs = self.input_columns(model, &data, function)?;
        let mut kept: Vec<Expr> = data
            .schema()
            .iter()
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
            .collect();
        kept.extend(self.outputs(model, pinned, &inputs));
        let mut exprs = kept.clone();
        exprs.push(extra.alias(hidden));
        let plan = LogicalPlanBuilder::from(data).project(exprs)?.build()?;
        // Above the projection the kept columns are plain, unqualified names.
        let names: Vec<Expr> = plan
            .schema()
            .iter()
            .filter(|(_, f)| f.name() != hidden)
            .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
            .collect();
        Ok((plan, names))
    }

    /// Input columns, prediction, raw score, bias and `contribution_<input>` per input.
    fn explain(
        &self,
        model: &Model,
        pinned: &str,
        data: LogicalPlan,
        top_k: i64,
    ) -> Result<LogicalPlan> {
        const HIDDEN: &str = "__augur_explain";
        let inputs = self.input_columns(model, &data, "explain")?;
        let mut args = vec![lit(pinned.to_string()), lit(top_k)];
        args.extend(inputs);
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.explain), args));
        let (plan, mut exprs) = self.scored_with(model, pinned, data, "explain", call, HIDDEN)?;
        let list = || Expr::Column(Column::from_name(HIDDEN));
        exprs.push(array_element(list(), lit(1i64)).alias("raw_score"));
        exprs.push(array_element(list(), lit(2i64)).alias("bias"));
        for (i, input) in model.inputs.iter().enumerate() {
            exprs.push(
                array_element(list(), lit(i as i64 + 3)).alias(format!("contribution_{input}")),
            );
        }
        LogicalPlanBuilder::from(plan).project(exprs)?.build()
    }

    /// Input columns, prediction, then one row per reason: rank, feature, value, contribution.
    fn reason_codes(
        &self,
        model: &Model,
        pinned: &str,
        data: LogicalPlan,
        k: i64,
    ) -> Result<LogicalPlan> {
        const HIDDEN: &str = "__augur_reasons";
        let inputs = self.input_columns(model, &data, "reason_codes")?;
        let mut args = vec![lit(pinned.to_string()), lit(k)];
        args.extend(inputs);
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.reasons), args));
        let (plan, mut exprs) =
            self.scored_with(model, pinned, data, "reason_codes", call, HIDDEN)?;
        let plan = LogicalPlanBuilder::from(plan)
            .unnest_column(HIDDEN)?
            .build()?;
        for field in super::explain::reason_fields().iter() {
            exprs.push(
                get_field(
                    Expr::Column(Column::from_name(HIDDEN)),
                    field.name().as_str(),
                )
                .alias(field.name()),
            );
        }
        LogicalPlanBuilder::from(plan).project(exprs)?.build()
    }

    /// Per input column: splits and total gain (trees), and mean |contribution|.
    fn feature_importance(model: &Model) -> Result<LogicalPlan> {
        let n = model.inputs.len();
        let (splits, gains): (Vec<Option<i64>>, Vec<Option<f64>>) = match &model.trees {
            Some(t) => {
                let (s, g) = t.importance();
                let mut splits = vec![0i64; n];
                let mut gains = vec![0f64; n];
                for (f, feature) in t.features.iter().enumerate() {
                    splits[feature.input] += s[f] as i64;
                    gains[feature.input] += g[f];
                }
                (
                    splits.into_iter().map(Some).collect(),
                    gains.into_iter().map(Some).collect(),
                )
            }
            None => (vec![None; n], vec![None; n]),
        };
        memory_plan(
            "feature_importance",
            vec![
                Field::new("feature", DataType::Utf8, false),
                Field::new("split_count", DataType::Int64, true),
                Field::new("total_gain", DataType::Float64, true),
                Field::new("mean_abs_contribution", DataType::Float64, true),
            ],
            vec![
                strings(model.inputs.iter().cloned()),
                Arc::new(Int64Array::from(splits)),
                floats(gains),
                floats((0..n).map(|i| model.mean_abs_contribution.get(i).copied())),
            ],
        )
    }

    fn metric_names(model: &Model) -> &'static [&'static str] {
        if model.is_classifier() {
            &[
                "rows",
                "auc_roc",
                "auc_pr",
                "log_loss",
                "accuracy",
                "precision",
                "recall",
                "f1",
                "brier",
                "ece",
            ]
        } else {
            &["rows", "rmse", "mae", "r2"]
        }
    }

    fn evaluate(
        &self,
        model: &Model,
        pinned: &str,
        data: Option<LogicalPlan>,
    ) -> Result<LogicalPlan> {
        let names = Self::metric_names(model);
        let Some(data) = data else {
            let values: Vec<Option<f64>> = match &model.metrics {
                Some(Metrics::Classification(c)) => vec![
                    c.rows as f64,
                    c.auc_roc,
                    c.auc_pr,
                    c.log_loss,
                    c.accuracy,
                    c.precision,
                    c.recall,
                    c.f1,
                    c.brier,
                    c.ece,
                ]
                .into_iter()
                .map(Some)
                .collect(),
                Some(Metrics::Regression(r)) => vec![r.rows as f64, r.rmse, r.mae, r.r2]
                    .into_iter()
                    .map(Some)
                    .collect(),
                None => vec![None; names.len()],
            };
            let fields = names
                .iter()
                .map(|n| Field::new(*n, DataType::Float64, true))
                .collect();
            let columns = values.into_iter().map(|v| floats([v])).collect();
            return memory_plan("evaluate", fields, columns);
        };
        let inputs = self.input_columns(model, &data, "evaluate")?;
        let label = label_column(model, &data, "evaluate")?;
        let classifier = model.is_classifier();
        let score = self.call(
            if classifier {
                &self.predict_proba
            } else {
                &self.predict
            },
            pinned,
            &inputs,
        );
        let kind = if classifier {
            "classification"
        } else {
            "regression"
        };
        let aggregate = self
            .metrics
            .call(vec![lit(kind), lit(model.options.threshold), label, score])
            .alias("m");
        let columns: Vec<Expr> = names
            .iter()
            .map(|n| get_field(Expr::Column(Column::from_name("m")), *n).alias(*n))
            .collect();
        LogicalPlanBuilder::from(data)
            .aggregate(Vec::<Expr>::new(), vec![aggregate])?
            .project(columns)?
            .build()
    }

    fn model_weights(model: &Model) -> Result<LogicalPlan> {
        if model.trees.is_some() {
            return Err(plan_err(format!(
                "model_weights: '{}' is a {} model, which has trees, not weights; \
                 see feature_importance({0}) and DESCRIBE MODEL {0}",
                model.name,
                model.options.model_type.name()
            )));
        }
        let mut names = vec!["(intercept)".to_string()];
        names.extend(model.feature_names.iter().cloned());
        let mut weights = vec![Some(model.intercept)];
        weights.extend(model.coefficients.iter().map(|c| Some(*c)));
        memory_plan(
            "model_weights",
            vec![
                Field::new("feature", DataType::Utf8, false),
                Field::new("weight", DataType::Float64, true),
            ],
            vec![strings(names), floats(weights)],
        )
    }

    fn training_info(model: &Model) -> Result<LogicalPlan> {
        if let Some(t) = &model.trees {
            let metric = t.metric.map_or("", |m| m.name());
            let n = t.trees.len().max(t.validation.len());
            return memory_plan(
                "training_info",
                vec![
                    Field::new("tree", DataType::Int64, false),
                    Field::new("leaves", DataType::Int64, true),
                    Field::new("metric", DataType::Utf8, false),
                    Field::new("validation", DataType::Float64, true),
                ],
                vec![
                    Arc::new(Int64Array::from_iter_values(1..=n as i64)),
                    Arc::new(Int64Array::from_iter(
                        (0..n).map(|i| t.trees.get(i).map(|t| t.num_leaves as i64)),
                    )),
                    strings((0..n).map(|_| metric.to_string())),
                    floats((0..n).map(|i| t.validation.get(i).copied())),
                ],
            );
        }
        let h = &model.training.objective_history;
        memory_plan(
            "training_info",
            vec![
                Field::new("iteration", DataType::Int64, false),
                Field::new("objective", DataType::Float64, true),
                Field::new("gradient_norm", DataType::Float64, true),
                Field::new("step", DataType::Float64, true),
            ],
            vec![
                Arc::new(Int64Array::from_iter_values(0..h.len() as i64)),
                floats(h.iter().map(|i| Some(i.objective))),
                floats(h.iter().map(|i| Some(i.gradient_norm))),
                floats(h.iter().map(|i| Some(i.step))),
            ],
        )
    }

    fn feature_info(model: &Model) -> Result<LogicalPlan> {
        let mut rows: Vec<FeatureRow> = vec![];
        if let Some(t) = &model.trees {
            for f in &t.features {
                let count = match &f.kind {
                    super::gbdt::data::FeatureKind::Categorical { categories } => {
                        Some(categories.len() as f64)
                    }
                    _ => None,
                };
                rows.push((
                    model.inputs.get(f.input).cloned().unwrap_or_default(),
                    f.name.clone(),
                    f.kind.describe().to_string(),
                    None,
                    None,
                    count,
                ));
            }
        }
        let mut k = 0;
        for encoder in &model.encoders {
            let names = encoder.feature_names();
            for (i, feature) in names.iter().enumerate() {
                let kind = match encoder {
                    Encoder::Numeric { .. } => "numeric",
                    Encoder::OneHot { .. } => "category",
                    Encoder::Date { .. } => "date part",
                    Encoder::Woe { .. } => "woe",
                };
                let count = match encoder {
                    Encoder::OneHot { counts, .. } => counts.get(i).map(|c| *c as f64),
                    _ => None,
                };
                rows.push((
                    encoder.column().to_string(),
                    feature.clone(),
                    kind.to_string(),
                    model.feature_mean.get(k).copied(),
                    model.feature_std.get(k).copied(),
                    count,
                ));
                k += 1;
            }
            if let Encoder::OneHot {
                column,
                dropped: Some(d),
                ..
            } = encoder
            {
                rows.push((
                    column.clone(),
                    format!("{column}={d}"),
                    "category (reference, dropped)".into(),
                    None,
                    None,
                    None,
                ));
            }
        }
        memory_plan(
            "feature_info",
            vec![
                Field::new("input", DataType::Utf8, false),
                Field::new("feature", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("mean", DataType::Float64, true),
                Field::new("stddev", DataType::Float64, true),
                Field::new("training_count", DataType::Float64, true),
            ],
            vec![
                strings(rows.iter().map(|r| r.0.clone())),
                strings(rows.iter().map(|r| r.1.clone())),
                strings(rows.iter().map(|r| r.2.clone())),
                floats(rows.iter().map(|r| r.3)),
                floats(rows.iter().map(|r| r.4)),
                floats(rows.iter().map(|r| r.5)),
            ],
        )
    }

    fn roc_curve(model: &Model) -> Result<LogicalPlan> {
        let r = &model.roc;
        memory_plan(
            "roc_curve",
            vec![
                Field::new("threshold", DataType::Float64, true),
                Field::new("false_positive_rate", DataType::Float64, false),
                Field::new("true_positive_rate", DataType::Float64, false),
                Field::new("precision", DataType::Float64, false),
            ],
            vec![
                floats(r.iter().map(|p| p.threshold)),
                floats(r.iter().map(|p| Some(p.false_positive_rate))),
                floats(r.iter().map(|p| Some(p.true_positive_rate))),
                floats(r.iter().map(|p| Some(p.precision))),
            ],
        )
    }

    /// From the stored ROC: positives at threshold t are rows scoring above t.
    fn confusion_matrix(model: &Model, threshold: Option<f64>) -> Result<LogicalPlan> {
        let Some(Metrics::Classification(c)) = &model.metrics else {
            return Err(plan_err(format!(
                "confusion_matrix: model '{}' is not a classifier",
                model.name
            )));
        };
        let conf = &c.confusion;
        let (tp, fp, tn, fn_) = match threshold {
            None => (
                conf.true_positive,
                conf.false_positive,
                conf.true_negative,
                conf.false_negative,
            ),
            Some(t) => {
                let positives = conf.true_positive + conf.false_negative;
                let negatives = conf.false_positive + conf.true_negative;
                let point = model
                    .roc
                    .iter()
                    .rev()
                    .find(|p| p.threshold.is_some_and(|s| s > t))
                    .copied();
                let (tpr, fpr) = point
                    .map(|p| (p.true_positive_rate, p.false_positive_rate))
                    .unwrap_or((0.0, 0.0));
                let tp = (tpr * positives).round();
                let fp = (fpr * negatives).round();
                (tp, fp, negatives - fp, positives - tp)
            }
        };
        memory_plan(
            "confusion_matrix",
            vec![
                Field::new("actual", DataType::Int64, false),
                Field::new("predicted", DataType::Int64, false),
                Field::new("count", DataType::Float64, false),
            ],
            vec![
                Arc::new(Int64Array::from(vec![0, 0, 1, 1])),
                Arc::new(Int64Array::from(vec![0, 1, 0, 1])),
                floats([Some(tn), Some(fp), Some(fn_), Some(tp)]),
            ],
        )
    }
}

impl RelationPlanner for ModelRelations {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let function = name.to_string().to_ascii_lowercase();
        if !FUNCTIONS.contains(&function.as_str()) {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let exprs: Vec<&SqlExpr> = args
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(plan_err(format!(
                    "{function}: unsupported argument {other}"
                ))),
            })
            .collect::<Result<_>>()?;
        let Some(first) = exprs.first() else {
            return Err(plan_err(format!(
                "{function} needs a model: {function}(model, …)"
            )));
        };
        let model = self.registry.get(&model_reference(first, &function)?)?;
        let pinned = format!("{}@{}", model.name, model.version);
        let arity = |min: usize, max: usize, usage: &str| -> Result<()> {
            if exprs.len() < min || exprs.len() > max {
                Err(plan_err(format!("usage: {usage}")))
            } else {
                Ok(())
            }
        };
        let plan = match function.as_str() {
            "predict" => {
                arity(2, 2, "SELECT * FROM predict(model, table | (SELECT …))")?;
                let data = self.plan_data(exprs[1], context, "predict")?;
                self.predict(&model, &pinned, data)?
            }
            "explain" => {
                arity(
                    2,
                    3,
                    "SELECT * FROM explain(model, table | (SELECT …) [, top_k])",
                )?;
                let data = self.plan_data(exprs[1], context, "explain")?;
                let k = match exprs.get(2) {
                    Some(e) => count_argument(e, "explain", "top_k")?,
                    None => 0,
                };
                self.explain(&model, &pinned, data, k)?
            }
            "reason_codes" => {
                arity(
                    3,
                    3,
                    "SELECT * FROM reason_codes(model, table | (SELECT …), k)",
                )?;
                let data = self.plan_data(exprs[1], context, "reason_codes")?;
                let k = count_argument(exprs[2], "reason_codes", "k")?;
                self.reason_codes(&model, &pinned, data, k)?
            }
            "feature_importance" => Self::feature_importance(&model)?,
            "evaluate" => {
                arity(1, 2, "SELECT * FROM evaluate(model [, table | (SELECT …)])")?;
                let data = exprs
                    .get(1)
                    .map(|e| self.plan_data(e, context, "evaluate"))
                    .transpose()?;
                self.evaluate(&model, &pinned, data)?
            }
            "model_weights" => Self::model_weights(&model)?,
            "training_info" => Self::training_info(&model)?,
            "feature_info" => Self::feature_info(&model)?,
            "roc_curve" => Self::roc_curve(&model)?,
            "binning_table" => {
                arity(1, 2, "SELECT * FROM binning_table(model [, 'feature'])")?;
                let feature = exprs
                    .get(1)
                    .map(|e| model_reference(e, "binning_table"))
                    .transpose()?;
                super::credit_tables::binning_table(&model, feature.as_deref())?
            }
            "scorecard_table" => {
                arity(1, 1, "SELECT * FROM scorecard_table(model)")?;
                super::credit_tables::scorecard_table(&model)?
            }
            "compare_models" => {
                arity(
                    3,
                    3,
                    "SELECT * FROM compare_models(model_1, model_2, table | (SELECT …))",
                )?;
                let other = self
                    .registry
                    .get(&model_reference(exprs[1], "compare_models")?)?;
                let data = self.plan_data(exprs[2], context, "compare_models")?;
                self.compare_models(&model, &pinned, &other, data)?
            }
            "calibration_curve" => {
                arity(
                    2,
                    3,
                    "SELECT * FROM calibration_curve(model, table | (SELECT …) [, bins])",
                )?;
                let data = self.plan_data(exprs[1], context, "calibration_curve")?;
                let bins = match exprs.get(2) {
                    Some(e) => count_argument(e, "calibration_curve", "bins")?,
                    None => 10,
                };
                self.calibration_curve(&model, &pinned, data, bins)?
            }
            "drift" => {
                arity(
                    2,
                    4,
                    "SELECT * FROM drift(model, table | (SELECT …) [, warn, alert])",
                )?;
                let data = self.plan_data(exprs[1], context, "drift")?;
                let threshold = |i: usize, default: f64| -> Result<f64> {
                    match exprs.get(i) {
                        None => Ok(default),
                        Some(SqlExpr::Value(v)) => match &v.value {
                            Value::Number(n, _) => n.parse::<f64>().ok().filter(|t| *t > 0.0).ok_or_else(|| {
                                plan_err(format!("drift: a PSI threshold is a number > 0, got {n}"))
                            }),
                            _ => Err(plan_err("drift: the PSI thresholds are numbers, e.g. drift(m, t, 0.1, 0.25)".into())),
                        },
                        Some(_) => Err(plan_err("drift: the PSI thresholds are numbers, e.g. drift(m, t, 0.1, 0.25)".into())),
                    }
                };
                let (warn, alert) = (threshold(2, 0.10)?, threshold(3, 0.25)?);
                if alert < warn {
                    return Err(plan_err(format!(
                        "drift: the alert threshold ({alert}) is below the warning one ({warn})"
                    )));
                }
                self.drift(&model, &pinned, data, warn, alert)?
            }
            "woe_transform" => {
                arity(
                    2,
                    2,
                    "SELECT * FROM woe_transform(model, table | (SELECT …))",
                )?;
                let data = self.plan_data(exprs[1], context, "woe_transform")?;
                super::credit_tables::woe_transform(&model, &pinned, data, &self.woe)?
            }
            _ => {
                arity(1, 2, "SELECT * FROM confusion_matrix(model [, threshold])")?;
                let threshold = match exprs.get(1) {
                    None => None,
                    Some(SqlExpr::Value(v)) => match &v.value {
                        Value::Number(n, _) => Some(n.parse::<f64>().map_err(|_| {
                            plan_err(format!("confusion_matrix: bad threshold {n}"))
                        })?),
                        _ => {
                            return Err(plan_err(
                                "confusion_matrix: the threshold is a number between 0 and 1"
                                    .into(),
                            ));
                        }
                    },
                    Some(_) => {
                        return Err(plan_err(
                            "confusion_matrix: the threshold is a number between 0 and 1".into(),
                        ));
                    }
                };
                Self::confusion_matrix(&model, threshold)?
            }
        };
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}
