//! Automatic compaction: after an INSERT into a stored table commits, a table that has
//! passed the file-count threshold is compacted (one more commit, an `OPTIMIZE` in its
//! history), so many small inserts do not leave scans opening thousands of tiny files.

use std::fmt;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use deltalake::operations::optimize::OptimizeType;
use futures::StreamExt;

use super::delta_table::{DeltaProvider, delta_error};

/// Files a stored table may have before an INSERT compacts it, unless configured.
pub const DEFAULT_MAX_FILES: usize = 100;

/// Runs the insert below it, then compacts the table if it has more than `max_files` files.
#[derive(Debug)]
pub struct AutoCompactExec {
    insert: Arc<dyn ExecutionPlan>,
    table: DeltaProvider,
    max_files: usize,
}

impl AutoCompactExec {
    pub fn new(insert: Arc<dyn ExecutionPlan>, table: DeltaProvider, max_files: usize) -> Self {
        AutoCompactExec {
            insert,
            table,
            max_files,
        }
    }
}

impl DisplayAs for AutoCompactExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DeltaAutoCompactExec: table={} max_files={}",
            self.table.name(),
            self.max_files
        )
    }
}

impl ExecutionPlan for AutoCompactExec {
    fn name(&self) -> &str {
        "DeltaAutoCompactExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.insert.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn required_input_distribution(&self) -> Vec<datafusion::physical_plan::Distribution> {
        vec![datafusion::physical_plan::Distribution::SinglePartition; self.children().len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // One stream in: the operator runs its work once, after (or around) its input.
        vec![false; self.children().len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.insert]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [insert] => Ok(Arc::new(AutoCompactExec::new(
                Arc::clone(insert),
                self.table.clone(),
                self.max_files,
            ))),
            _ => Err(DataFusionError::Internal(
                "DeltaAutoCompactExec has one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let inserted = self.insert.execute(partition, context)?;
        let schema = inserted.schema();
        let table = self.table.clone();
        let max_files = self.max_files;
        // The insert's count passes through; compaction runs once the insert's stream ends.
        let after = futures::stream::once(async move {
            compact_if_needed(&table, max_files).await?;
            Ok(None)
        });
        let stream = inserted
            .map(|b| b.map(Some))
            .chain(after)
            .filter_map(|item| async move { item.transpose() });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

async fn compact_if_needed(table: &DeltaProvider, max_files: usize) -> Result<()> {
    let current = table.current().await?;
    let files = current
        .snapshot()
        .map(|s| s.log_data().num_files())
        .unwrap_or(0);
    if max_files == 0 || files <= max_files {
        return Ok(());
    }
    current
        .optimize()
        .with_type(OptimizeType::Compact)
        .await
        .map_err(|e| delta_error(table.location(), e))?;
    Ok(())
}
