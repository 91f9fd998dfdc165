//! `SharedResult`: a subplan that occurs more than once in a query (a CTE referenced twice, a
//! subquery repeating a join's input) marked to be computed once; every occurrence carries the
//! same `id`, and the physical planner gives them one shared result.

use std::fmt;

use datafusion::common::DFSchemaRef;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct SharedResult {
    pub id: usize,
    pub input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for SharedResult {
    fn name(&self) -> &str {
        "SharedResult"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedResult: id={}", self.id)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        Ok(SharedResult {
            id: self.id,
            input: inputs.pop().unwrap_or_else(|| self.input.clone()),
        })
    }
}
