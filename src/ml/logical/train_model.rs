//! `TrainModel`: the logical node of TRAIN MODEL — the training query as its input, the
//! model's name and options, one summary row as output.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use crate::ml::options::TrainOptions;

/// The summary row TRAIN MODEL returns.
pub fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("model_type", DataType::Utf8, false),
        Field::new("rows_used", DataType::Int64, false),
        Field::new("rows_held_out", DataType::Int64, false),
        Field::new("iterations", DataType::Int64, false),
        Field::new("final_objective", DataType::Float64, true),
        Field::new("converged", DataType::Boolean, false),
        Field::new("auc_roc", DataType::Float64, true),
        Field::new("rmse", DataType::Float64, true),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

#[derive(Debug, Clone)]
pub struct TrainModel {
    pub name: String,
    pub options: TrainOptions,
    pub input: LogicalPlan,
    pub schema: DFSchemaRef,
}

impl TrainModel {
    pub fn try_new(name: String, options: TrainOptions, input: LogicalPlan) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(output_schema().as_ref().clone())?);
        Ok(TrainModel {
            name,
            options,
            input,
            schema,
        })
    }

    /// Options in a canonical text form: f64 options have no Eq/Hash of their own.
    fn key(&self) -> String {
        serde_json::to_string(&self.options).unwrap_or_default()
    }
}

impl PartialEq for TrainModel {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.key() == other.key() && self.input == other.input
    }
}

impl Eq for TrainModel {}

impl Hash for TrainModel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.key().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for TrainModel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.name.clone(), self.key()).partial_cmp(&(other.name.clone(), other.key())) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for TrainModel {
    fn name(&self) -> &str {
        "TrainModel"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let o = &self.options;
        write!(
            f,
            "TrainModel: model={}, type={}, label={}, reg_param={}, elastic_net_param={}, max_iter={}, split={}",
            self.name,
            o.model_type.name(),
            o.label,
            o.reg_param,
            o.elastic_net_param,
            o.max_iter,
            o.split
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs.pop().unwrap_or_else(|| self.input.clone());
        Ok(TrainModel {
            input,
            ..self.clone()
        })
    }
}
