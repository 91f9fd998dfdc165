//! The one extension planner for our logical nodes, and the query planner that installs it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::logical::train_model::TrainModel;
use super::physical::train_model::TrainExec;
use super::registry::Registry;

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
            },
        )]);
        planner.create_physical_plan(plan, session).await
    }
}

struct AugurExtensionPlanner {
    registry: Registry,
}

#[async_trait]
impl ExtensionPlanner for AugurExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
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
        Ok(None)
    }
}
