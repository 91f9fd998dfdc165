//! What the physical rules that rewrite expressions rather than operators share: one
//! expression rewrite applied to the expressions of projections, filter predicates and
//! aggregate arguments, each node rebuilt only where an expression changed; their setting;
//! and [`Faster`], a binary expression computed another way that otherwise is the original.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use crate::cluster::AugurOptions;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::ExprProperties;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// An expression rewrite, given the schema the expression reads.
pub type Rewrite<'a> =
    dyn Fn(&Arc<dyn PhysicalExpr>, &Schema) -> Result<Transformed<Arc<dyn PhysicalExpr>>> + 'a;

/// `plan` with `rewrite` applied to every projection, filter predicate and aggregate argument.
pub fn rewrite_expressions(
    plan: Arc<dyn ExecutionPlan>,
    rewrite: &Rewrite<'_>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| rewrite_node(&node, rewrite))
        .map(|t| t.data)
}

fn rewrite_node(
    node: &Arc<dyn ExecutionPlan>,
    rewrite: &Rewrite<'_>,
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

/// A physical rule replacing each binary expression `applies` accepts (children first) by a
/// [`Faster`] computed by `how`, while the `augur.*` setting `on` reads is set.
#[derive(Debug)]
pub struct BinaryRule<E> {
    pub name: &'static str,
    pub on: fn(&AugurOptions) -> bool,
    pub applies: fn(&BinaryExpr, &Schema) -> bool,
    pub how: E,
}

impl<E: Evaluate> PhysicalOptimizerRule for BinaryRule<E> {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !AugurOptions::enabled(config, self.on) {
            return Ok(plan);
        }
        rewrite_expressions(plan, &|expr, schema| {
            Arc::clone(expr).transform_up(|e| match e.downcast_ref::<BinaryExpr>() {
                Some(binary) if (self.applies)(binary, schema) => Ok(Transformed::yes(Arc::new(
                    Faster::new(binary, self.how.clone()),
                )
                    as _)),
                _ => Ok(Transformed::no(e)),
            })
        })
    }

    fn name(&self) -> &str {
        self.name
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How a [`Faster`] computes its binary expression's value.
pub trait Evaluate: fmt::Debug + Clone + PartialEq + Eq + Hash + Send + Sync + 'static {
    fn evaluate(&self, plain: &BinaryExpr, batch: &RecordBatch) -> Result<ColumnarValue>;
}

/// A binary expression whose value `how` computes. Everything else — type, display, bounds,
/// properties — is the plain expression's, and it travels to a cluster as that expression.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Faster<E> {
    plain: Arc<BinaryExpr>,
    how: E,
}

impl<E: Evaluate> Faster<E> {
    pub fn new(plain: &BinaryExpr, how: E) -> Self {
        let plain = Arc::new(plain.clone());
        Faster { plain, how }
    }

    /// The DataFusion expression this one computes.
    pub fn plain(&self) -> Arc<dyn PhysicalExpr> {
        Arc::clone(&self.plain) as _
    }
}

/// The non-NULL string constant `expr` is, if it is one.
pub fn string_constant(expr: &Arc<dyn PhysicalExpr>) -> Option<&str> {
    match expr.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8View(Some(s))
        | ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

/// The plain expression of a [`Faster`] of any kind the rules make.
pub fn plain_of(expr: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    use super::{decimal64::Narrow, eager_conjunctions::Eager, view_equality::ViewEq};
    let narrow = expr.downcast_ref::<Faster<Narrow>>().map(Faster::plain);
    narrow
        .or_else(|| expr.downcast_ref::<Faster<Eager>>().map(Faster::plain))
        .or_else(|| expr.downcast_ref::<Faster<ViewEq>>().map(Faster::plain))
}

impl<E> fmt::Display for Faster<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.plain.fmt(f)
    }
}

impl<E: Evaluate> PhysicalExpr for Faster<E> {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.plain.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.plain.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        self.how.evaluate(&self.plain, batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![self.plain.left(), self.plain.right()]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let plain = Arc::clone(&self.plain).with_new_children(children)?;
        match plain.downcast_ref::<BinaryExpr>() {
            Some(binary) => Ok(Arc::new(Faster::new(binary, self.how.clone()))),
            None => Ok(plain),
        }
    }

    fn evaluate_bounds(&self, children: &[&Interval]) -> Result<Interval> {
        self.plain.evaluate_bounds(children)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        children: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.plain.propagate_constraints(interval, children)
    }

    fn get_properties(&self, children: &[ExprProperties]) -> Result<ExprProperties> {
        self.plain.get_properties(children)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.plain.fmt_sql(f)
    }
}
