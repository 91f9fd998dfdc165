//! What the physical rules that rewrite expressions rather than operators share: one
//! expression rewrite applied to the expressions of projections, filter predicates and
//! aggregate arguments, each node rebuilt only where an expression changed.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// An expression rewrite, given the schema the expression reads.
pub type Rewrite =
    dyn Fn(&Arc<dyn PhysicalExpr>, &Schema) -> Result<Transformed<Arc<dyn PhysicalExpr>>>;

/// `plan` with `rewrite` applied to every projection, filter predicate and aggregate argument.
pub fn rewrite_expressions(
    plan: Arc<dyn ExecutionPlan>,
    rewrite: &Rewrite,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| rewrite_node(&node, rewrite))
        .map(|t| t.data)
}

fn rewrite_node(
    node: &Arc<dyn ExecutionPlan>,
    rewrite: &Rewrite,
) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let input = projection.input();
        let mut changed = false;
        let mut exprs = Vec::with_capacity(projection.expr().len());
        for e in projection.expr() {
            let new = rewrite(&e.expr, &input.schema())?;
            changed |= new.transformed;
            exprs.push(ProjectionExpr::new(new.data, e.alias.clone()));
        }
        if changed {
            let schema = projection.schema();
            let exec =
                ProjectionExec::try_new_with_schema_metadata(exprs, Arc::clone(input), &schema)?;
            return Ok(Transformed::yes(Arc::new(exec)));
        }
    } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let new = rewrite(filter.predicate(), &filter.input().schema())?;
        if new.transformed {
            let exec = FilterExecBuilder::from(filter)
                .with_predicate(new.data)
                .build()?;
            return Ok(Transformed::yes(Arc::new(exec)));
        }
    } else if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        let schema = aggregate.input_schema();
        let mut changed = false;
        let mut functions = Vec::with_capacity(aggregate.aggr_expr().len());
        for f in aggregate.aggr_expr() {
            let mut args = Vec::with_capacity(f.expressions().len());
            let mut this = false;
            for a in f.expressions() {
                let new = rewrite(&a, &schema)?;
                this |= new.transformed;
                args.push(new.data);
            }
            let order_by = f.order_bys().iter().map(|s| Arc::clone(&s.expr)).collect();
            match f.with_new_expressions(args, order_by) {
                Some(new) if this => {
                    changed = true;
                    functions.push(Arc::new(new));
                }
                _ => functions.push(Arc::clone(f)),
            }
        }
        if changed {
            return Ok(Transformed::yes(Arc::new(
                aggregate.with_new_aggr_exprs(functions),
            )));
        }
    }
    Ok(Transformed::no(Arc::clone(node)))
}
