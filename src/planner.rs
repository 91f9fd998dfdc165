//! The one extension planner for Augur's logical nodes (training, shared subplans, top-N per
//! group), and the query planner that installs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::compute::SortOptions;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::ml::logical::train_model::TrainModel;
use crate::ml::physical::train_model::TrainExec;
use crate::ml::registry::Registry;
use crate::optimizer::logical::shared_result::SharedResult;
use crate::optimizer::logical::top_per_group::TopPerGroup;
use crate::optimizer::physical::shared_result::{SharedResultExec, SharedResults};
use crate::optimizer::physical::top_per_group::TopPerGroupExec;

#[derive(Debug)]
pub struct AugurQueryPlanner {
    registry: Registry,
}

impl AugurQueryPlanner {
    pub fn new(registry: Registry) -> Self {
        AugurQueryPlanner { registry }
    }
}

#[async_trait]
impl QueryPlanner for AugurQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(
            AugurExtensionPlanner {
                registry: self.registry.clone(),
                shared: Mutex::default(),
            },
        )]);
        match crate::optimizer::join_order::reorder(plan, session).await? {
            Some(reordered) => planner.create_physical_plan(&reordered, session).await,
            None => planner.create_physical_plan(plan, session).await,
        }
    }
}

/// One per physical planning, so that shared results are never shared between two plans.
struct AugurExtensionPlanner {
    registry: Registry,
    /// Shared subplans by id, with the logical input the results were planned for.
    shared: Mutex<HashMap<usize, (LogicalPlan, Arc<SharedResults>)>>,
}

#[async_trait]
impl ExtensionPlanner for AugurExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if let Some(train) = node.as_any().downcast_ref::<TrainModel>()
            && let Some(input) = physical_inputs.first()
        {
            return Ok(Some(Arc::new(TrainExec::new(
                train.name.clone(),
                train.options.clone(),
                Arc::clone(input),
                self.registry.clone(),
            ))));
        }
        if let Some(shared) = node.as_any().downcast_ref::<SharedResult>()
            && let (Some(input), Some(logical)) = (physical_inputs.first(), logical_inputs.first())
        {
            let results = {
                let mut planned = self.shared.lock().map_err(|_| {
                    datafusion::error::DataFusionError::Internal("shared results lock".into())
                })?;
                match planned.get(&shared.id) {
                    // Later rules could in principle change one occurrence's input; then
                    // that occurrence gets results of its own.
                    Some((planned_for, results)) if planned_for == *logical => Arc::clone(results),
                    _ => {
                        let results = Arc::new(SharedResults::default());
                        planned.insert(shared.id, ((*logical).clone(), Arc::clone(&results)));
                        results
                    }
                }
            };
            results.add_reader();
            return Ok(Some(Arc::new(SharedResultExec::new(
                shared.id,
                Arc::clone(input),
                results,
            ))));
        }
        if let Some(top) = node.as_any().downcast_ref::<TopPerGroup>()
            && let (Some(input), Some(logical)) = (physical_inputs.first(), logical_inputs.first())
        {
            return top_per_group(planner, top, input, logical, session, planning_ctx).map(Some);
        }
        Ok(None)
    }
}

/// Both phases of a top-N per group: partial on each input partition, final per group.
fn top_per_group(
    planner: &dyn PhysicalPlanner,
    top: &TopPerGroup,
    input: &Arc<dyn ExecutionPlan>,
    logical: &LogicalPlan,
    session: &dyn Session,
    ctx: &PhysicalPlanningContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some((ranking, wf)) = crate::optimizer::ranking_of(&top.window) else {
        return Err(datafusion::error::DataFusionError::Internal(format!(
            "TopPerGroup over a window it cannot compute: {}",
            top.window
        )));
    };
    let schema = logical.schema();
    let partition_by = wf
        .params
        .partition_by
        .iter()
        .map(|e| planner.create_physical_expr(e, schema, session, ctx))
        .collect::<Result<Vec<_>>>()?;
    let order_by = wf
        .params
        .order_by
        .iter()
        .map(|s| {
            Ok(PhysicalSortExpr::new(
                planner.create_physical_expr(&s.expr, schema, session, ctx)?,
                SortOptions::new(!s.asc, s.nulls_first),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let partial = Arc::new(TopPerGroupExec::new(
        Arc::clone(input),
        partition_by.clone(),
        order_by.clone(),
        ranking,
        top.k,
        false,
        input.schema(),
    ));
    Ok(Arc::new(TopPerGroupExec::new(
        partial,
        partition_by,
        order_by,
        ranking,
        top.k,
        true,
        Arc::new(top.schema.as_arrow().clone()),
    )))
}
