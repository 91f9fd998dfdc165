//! The validator's relations over data, planned for `ModelRelations`: `compare_models`
//! (DeLong), `drift` (PSI per bin) and `calibration_curve` — each an aggregate over the
//! data's rows whose result is unpacked into columns (and rows).

use datafusion::common::Column;
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};

use super::model::Model;
use super::relations::{ModelRelations, label_column, plan_err};

/// Aggregate `data` to one list of structs (`aggregate`, aliased `hidden`), then unpack it
/// into a row per element and a column per struct field.
fn rows_of(
    data: LogicalPlan,
    aggregate: Expr,
    hidden: &str,
    fields: &datafusion::arrow::datatypes::Fields,
) -> Result<LogicalPlan> {
    let plan = LogicalPlanBuilder::from(data)
        .aggregate(Vec::<Expr>::new(), vec![aggregate])?
        .unnest_column(hidden)?
        .build()?;
    let columns: Vec<Expr> = fields
        .iter()
        .map(|f| {
            get_field(Expr::Column(Column::from_name(hidden)), f.name().as_str()).alias(f.name())
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

impl ModelRelations {
    /// Mean predicted probability, observed rate and count per probability bin.
    pub(super) fn calibration_curve(
        &self,
        model: &Model,
        pinned: &str,
        data: LogicalPlan,
        bins: i64,
    ) -> Result<LogicalPlan> {
        const HIDDEN: &str = "__augur_curve";
        if !model.is_classifier() {
            return Err(plan_err(format!(
                "calibration_curve: model '{}' is a {}; only classifiers have probabilities",
                model.name,
                model.options.model_type.name()
            )));
        }
        let label = label_column(model, &data, "calibration_curve")?;
        let inputs = self.input_columns(model, &data, "calibration_curve")?;
        let probability = self.call(&self.predict_proba, pinned, &inputs);
        let aggregate = self
            .curve
            .call(vec![label, probability, lit(bins)])
            .alias(HIDDEN);
        rows_of(data, aggregate, HIDDEN, &super::calibration_curve::fields())
    }

    /// One row per bin of each feature (and of the output): shares then and now, PSI.
    pub(super) fn drift(
        &self,
        model: &Model,
        pinned: &str,
        data: LogicalPlan,
        warn: f64,
        alert: f64,
    ) -> Result<LogicalPlan> {
        const HIDDEN: &str = "__augur_drift";
        let mut args = vec![lit(pinned.to_string()), lit(warn), lit(alert)];
        args.extend(self.input_columns(model, &data, "drift")?);
        let aggregate = self.drift.call(args).alias(HIDDEN);
        rows_of(data, aggregate, HIDDEN, &super::drift::fields())
    }

    /// Both models' AUCs, DeLong's test of their difference and Brier scores, on `data`.
    pub(super) fn compare_models(
        &self,
        first: &Model,
        pinned: &str,
        second: &Model,
        data: LogicalPlan,
    ) -> Result<LogicalPlan> {
        let second_pinned = format!("{}@{}", second.name, second.version);
        for m in [first, second] {
            if !m.is_classifier() {
                return Err(plan_err(format!(
                    "compare_models: model '{}@{}' is a {}; compare classifiers (AUC needs probabilities)",
                    m.name,
                    m.version,
                    m.options.model_type.name()
                )));
            }
        }
        let label = label_column(first, &data, "compare_models")?;
        let p1 = self.call(
            &self.predict_proba,
            pinned,
            &self.input_columns(first, &data, "compare_models")?,
        );
        let p2 = self.call(
            &self.predict_proba,
            &second_pinned,
            &self.input_columns(second, &data, "compare_models")?,
        );
        let aggregate = self.compare.call(vec![label, p1, p2]).alias("c");
        let mut columns = vec![
            lit(pinned.to_string()).alias("model_1"),
            lit(second_pinned).alias("model_2"),
        ];
        for field in super::compare::fields().iter() {
            columns.push(
                get_field(Expr::Column(Column::from_name("c")), field.name().as_str())
                    .alias(field.name()),
            );
        }
        LogicalPlanBuilder::from(data)
            .aggregate(Vec::<Expr>::new(), vec![aggregate])?
            .project(columns)?
            .build()
    }
}
