//! `SharedResultExec`: one occurrence of a shared subplan. The first occurrence to run a
//! partition computes it and keeps its batches (reserved in the memory pool); the others read
//! them; the last reader frees them. Each occurrence plans its own (identical) input; only the
//! first to run executes it. A result that does not fit in the memory pool is not kept: each
//! occurrence then computes its own, as it would without sharing.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// The result every occurrence of one shared subplan reads, partition by partition.
#[derive(Debug, Default)]
pub struct SharedResults {
    /// Sized by the first occurrence to run; an occurrence planned with another partition
    /// count runs its own input instead.
    slots: OnceLock<Vec<tokio::sync::Mutex<Slot>>>,
    readers: AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    batches: Option<Arc<Vec<RecordBatch>>>,
    reads: usize,
    /// The result outgrew the memory pool: every reader runs its own input.
    too_big: bool,
    reservation: Option<MemoryReservation>,
}

impl SharedResults {
    /// Counts one more occurrence that will read each partition.
    pub fn add_reader(&self) {
        self.readers.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct SharedResultExec {
    id: usize,
    input: Arc<dyn ExecutionPlan>,
    shared: Arc<SharedResults>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SharedResultExec {
    pub fn new(id: usize, input: Arc<dyn ExecutionPlan>, shared: Arc<SharedResults>) -> Self {
        // The partitions may come from another occurrence's input: same rows, but not
        // necessarily the same hash partitioning or order, so promise neither.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        SharedResultExec {
            id,
            input,
            shared,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for SharedResultExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedResultExec: id={}", self.id)
    }
}

impl ExecutionPlan for SharedResultExec {
    fn name(&self) -> &'static str {
        "SharedResultExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("SharedResultExec needs its input".into()))?;
        Ok(Arc::new(SharedResultExec::new(
            self.id,
            input,
            Arc::clone(&self.shared),
        )))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![match partition {
            None => ChildStats::At(None),
            Some(_) => ChildStats::Skip,
        }]
    }

    /// The input's whole-plan statistics, which join selection needs to pick the build side;
    /// none per partition, since a partition may come from another occurrence's input.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match (args.partition(), input_stats.first()) {
            (None, Some(stats)) => Ok(Arc::clone(stats)),
            _ => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.input.output_partitioning().partition_count();
        let slots = self.shared.slots.get_or_init(|| {
            (0..partitions)
                .map(|_| tokio::sync::Mutex::new(Slot::default()))
                .collect()
        });
        if slots.len() != partitions {
            return self.input.execute(partition, context);
        }
        let input = Arc::clone(&self.input);
        let shared = Arc::clone(&self.shared);
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let read = async move {
            let slots = shared.slots.get().ok_or_else(|| {
                DataFusionError::Internal("SharedResultExec read before it was sized".into())
            })?;
            let mut slot = slots[partition].lock().await;
            if slot.too_big {
                drop(slot);
                return Ok(input.execute(partition, context)?.boxed());
            }
            let batches = match &slot.batches {
                Some(batches) => Arc::clone(batches),
                None => {
                    let reservation = MemoryConsumer::new(format!("SharedResultExec[{partition}]"))
                        .register(context.memory_pool());
                    let mut stream = input.execute(partition, Arc::clone(&context))?;
                    let mut batches = vec![];
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        let fits = reservation.try_grow(batch.get_array_memory_size()).is_ok();
                        batches.push(batch);
                        if !fits {
                            // Too big to keep under the memory limit: this reader streams the
                            // rest, and the others compute their own, as without sharing.
                            slot.too_big = true;
                            drop(slot);
                            drop(reservation);
                            let kept = futures::stream::iter(batches.into_iter().map(Ok));
                            return Ok(kept.chain(stream).boxed());
                        }
                    }
                    let batches = Arc::new(batches);
                    slot.batches = Some(Arc::clone(&batches));
                    slot.reservation = Some(reservation);
                    batches
                }
            };
            slot.reads += 1;
            if slot.reads >= shared.readers.load(Ordering::Relaxed) {
                *slot = Slot::default();
            }
            metrics.record_output(batches.iter().map(RecordBatch::num_rows).sum());
            metrics.done();
            let batches: Vec<Result<RecordBatch>> = batches.iter().cloned().map(Ok).collect();
            Ok::<_, DataFusionError>(futures::stream::iter(batches).boxed())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            futures::stream::once(read).try_flatten(),
        )))
    }
}
