//! `TopPerGroup`: a ranking window (`row_number`, `rank`, `dense_rank` over `PARTITION BY …
//! ORDER BY …`) whose rows only matter up to rank k, because a filter above keeps ranks ≤ k.
//! It replaces the window node with the same output schema; the physical operator keeps a
//! bounded heap per group instead of sorting every row.

use std::cmp::Ordering;
use std::fmt;

use datafusion::common::DFSchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopPerGroup {
    /// The window's input.
    pub input: LogicalPlan,
    /// The ranking window expression, as the window node had it.
    pub window: Expr,
    /// Rows with a rank above this are not needed.
    pub k: usize,
    /// The window node's schema: the input's columns, then the rank.
    pub schema: DFSchemaRef,
}

impl PartialOrd for TopPerGroup {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.input.partial_cmp(&other.input)?, self.k.cmp(&other.k)) {
            (Ordering::Equal, Ordering::Equal) => {}
            (Ordering::Equal, k) => return Some(k),
            (input, _) => return Some(input),
        }
        match self.window.partial_cmp(&other.window)? {
            Ordering::Equal if self == other => Some(Ordering::Equal),
            Ordering::Equal => None,
            other => Some(other),
        }
    }
}

impl UserDefinedLogicalNodeCore for TopPerGroup {
    fn name(&self) -> &str {
        "TopPerGroup"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.window.clone()]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TopPerGroup: k={}, {}", self.k, self.window)
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let missing = || DataFusionError::Internal("TopPerGroup needs its input and window".into());
        Ok(TopPerGroup {
            input: inputs.pop().ok_or_else(missing)?,
            window: exprs.pop().ok_or_else(missing)?,
            k: self.k,
            schema: self.schema.clone(),
        })
    }
}
