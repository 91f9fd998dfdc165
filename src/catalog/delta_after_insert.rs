//! Upkeep after an INSERT commits: a Delta checkpoint when the new version is due one, and
//! automatic compaction of a stored table past the file-count threshold (one more commit, an
//! `OPTIMIZE` in its history), so many small inserts leave neither a long log to replay nor
//! thousands of tiny files to open.

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

/// Runs the insert below it, then the upkeep the new version is due, decided from the
/// version the insert was planned against (the one it commits on top of), which spares a
/// second read of the log after every small insert.
#[derive(Debug)]
pub struct AfterInsertExec {
    insert: Arc<dyn ExecutionPlan>,
    table: DeltaProvider,
    upkeep: Upkeep,
}

/// What a table needs once an insert has committed.
#[derive(Debug, Clone, Copy)]
pub struct Upkeep {
    /// Compact: the table had `max_files` files or more before the insert (0 = never).
    pub max_files: usize,
    pub files_before: usize,
    /// Write a checkpoint of the new version: delta-rs's DataFusion insert commits without
    /// one, so a table written only by INSERTs would replay its whole log on every read.
    pub checkpoint: bool,
}

impl Upkeep {
    fn compacts(&self) -> bool {
        self.max_files > 0 && self.files_before >= self.max_files
    }
}

impl AfterInsertExec {
    pub fn new(insert: Arc<dyn ExecutionPlan>, table: DeltaProvider, upkeep: Upkeep) -> Self {
        AfterInsertExec {
            insert,
            table,
            upkeep,
        }
    }
}

impl DisplayAs for AfterInsertExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DeltaAfterInsertExec: table={} files={} compact_at={} compacts={} checkpoints={}",
            self.table.name(),
            self.upkeep.files_before,
            self.upkeep.max_files,
            self.upkeep.compacts(),
            self.upkeep.checkpoint
        )
    }
}

impl ExecutionPlan for AfterInsertExec {
    fn name(&self) -> &str {
        "DeltaAfterInsertExec"
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
            [insert] => Ok(Arc::new(AfterInsertExec::new(
                Arc::clone(insert),
                self.table.clone(),
                self.upkeep,
            ))),
            _ => Err(DataFusionError::Internal(
                "DeltaAfterInsertExec has one child".into(),
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
        let upkeep = self.upkeep;
        // The insert's count passes through; the upkeep runs once the insert's stream ends.
        let after = futures::stream::once(async move {
            if upkeep.checkpoint || upkeep.compacts() {
                // Brought up to date first: the insert committed a version this handle has
                // not seen.
                let current = table.current().await?;
                let fail = |e| delta_error(table.location(), e);
                if upkeep.checkpoint {
                    deltalake::checkpoints::create_checkpoint(&current, None)
                        .await
                        .map_err(fail)?;
                }
                if upkeep.compacts() {
                    current
                        .optimize()
                        .with_type(OptimizeType::Compact)
                        .await
                        .map_err(fail)?;
                }
            }
            Ok(None)
        });
        let stream = inserted
            .map(|b| b.map(Some))
            .chain(after)
            .filter_map(|item| async move { item.transpose() });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
