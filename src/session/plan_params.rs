//! Parameters that live in a kept physical plan: a prepared statement that reads no table
//! (scoring one applicant: `SELECT predict_proba('risk', $1, $2)`) is planned once with each
//! `$n` read from a slot, and every Execute puts its Bind values in the slot and runs the
//! same plan again — no optimiser, no physical planner, no copy of the session state.
//!
//! A slot serves one execution at a time (portals of one statement may be open together):
//! an Execute that finds it taken plans afresh with its values as literals.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ParamValues, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// The values of one execution's parameters, read by the plan's `$n` functions.
#[derive(Debug)]
pub struct Slot {
    types: Vec<DataType>,
    values: Mutex<Vec<ScalarValue>>,
    taken: AtomicBool,
}

/// An execution's hold on a slot, released when its stream is dropped.
pub struct Claim(Arc<Slot>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.taken.store(false, Ordering::SeqCst);
    }
}

impl Slot {
    /// Hold the slot with `values` in it: `None` when another execution holds it or the
    /// values are not of the types the plan was made for (then plan with literals).
    pub fn bind(self: &Arc<Self>, values: &ParamValues) -> Option<Claim> {
        let ParamValues::List(list) = values else {
            return None;
        };
        let fits = list.len() == self.types.len()
            && list
                .iter()
                .zip(&self.types)
                .all(|(v, t)| v.metadata.is_none() && &v.value.data_type() == t);
        if !fits
            || self
                .taken
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return None;
        }
        let mut slot = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *slot = list.iter().map(|v| v.value.clone()).collect();
        Some(Claim(Arc::clone(self)))
    }
}

/// `plan` with each `$n` read from a new slot of `values`' types (the types the values
/// would have as literals); `None` for named parameters (`$name`) or a `$n` without a value.
pub fn parameterise(
    plan: &LogicalPlan,
    values: &ParamValues,
) -> Result<Option<(LogicalPlan, Arc<Slot>)>> {
    let ParamValues::List(list) = values else {
        return Ok(None);
    };
    let mut usable = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Placeholder(p) = e {
                    usable &= position(&p.id).is_some_and(|i| i < list.len());
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    });
    if !usable {
        return Ok(None);
    }
    let slot = Arc::new(Slot {
        values: Mutex::new(vec![]),
        taken: AtomicBool::new(false),
        types: list.iter().map(|v| v.value.data_type()).collect(),
    });
    let bound = plan
        .clone()
        .transform_up_with_subqueries(|node| {
            node.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::Placeholder(p) => {
                        let index = position(&p.id).unwrap_or_default();
                        let udf = ScalarUDF::new_from_impl(Param::new(&slot, index, &p.id));
                        Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(Arc::new(udf), vec![]),
                        )))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })?
        .data;
    Ok(Some((bound.recompute_schema()?, slot)))
}

/// `$3` → 2.
fn position(id: &str) -> Option<usize> {
    id.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
}

/// `stream` holding `claim` (if any) until it is dropped.
pub fn holding(
    stream: SendableRecordBatchStream,
    claim: Option<Claim>,
) -> SendableRecordBatchStream {
    let Some(claim) = claim else {
        return stream;
    };
    let schema = stream.schema();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        stream.map(move |batch| {
            let _ = &claim;
            batch
        }),
    ))
}

/// `$n` in a kept plan: the slot's n-th value. Volatile, so that the optimiser never folds
/// the value of the execution that planned it into the plan.
#[derive(Debug)]
struct Param {
    slot: Arc<Slot>,
    index: usize,
    name: String,
    signature: Signature,
}

impl Param {
    fn new(slot: &Arc<Slot>, index: usize, name: &str) -> Self {
        Param {
            slot: Arc::clone(slot),
            index,
            name: name.to_string(),
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot) && self.index == other.index
    }
}

impl Eq for Param {}

impl Hash for Param {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.slot) as usize).hash(state);
        self.index.hash(state);
    }
}

impl ScalarUDFImpl for Param {
    fn name(&self) -> &str {
        &self.name
    }

    /// Shown as the placeholder it stands for (`$1`), so column names match Describe's.
    fn display_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.name.clone())
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.slot.types[self.index].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = self.slot.values.lock().unwrap_or_else(|p| p.into_inner());
        match values.get(self.index) {
            Some(value) => Ok(ColumnarValue::Scalar(value.clone())),
            None => exec_err!("no value bound for parameter {}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::prelude::{lit, placeholder};

    #[test]
    fn a_slot_serves_one_execution_at_a_time_and_only_its_types() {
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![placeholder("$1") + lit(1i64), placeholder("$2")])
            .and_then(|b| b.build())
            .unwrap();
        let values = ParamValues::from(vec![ScalarValue::Int64(Some(4)), ScalarValue::from("x")]);
        let (bound, slot) = parameterise(&plan, &values).unwrap().unwrap();
        let names: Vec<_> = bound
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["$1 + Int64(1)", "$2"]);
        let claim = slot.bind(&values).expect("a free slot binds");
        assert!(slot.bind(&values).is_none(), "a held slot binds again");
        drop(claim);
        let other = ParamValues::from(vec![ScalarValue::Int32(Some(4)), ScalarValue::from("x")]);
        assert!(slot.bind(&other).is_none(), "values of other types bind");
        assert!(slot.bind(&values).is_some());
        // A named parameter, or a `$n` past the values, is planned with literals.
        let short = ParamValues::from(vec![ScalarValue::Int64(Some(4))]);
        assert!(parameterise(&plan, &short).unwrap().is_none());
    }
}
