//! `TopPerGroupExec`: the rows of each group that rank ≤ k, and their rank, without sorting
//! the input. Each group keeps its best rows in a small sorted list (keys compared as
//! `arrow::row` bytes, so any sort order and NULL placement is one byte comparison); a row
//! that cannot enter the list costs a hash lookup and one comparison. Rows are planned in two
//! phases: `partial` on every input partition as it comes (it only drops rows that cannot
//! rank ≤ k in their group), then, after a hash repartition on the group, `final`, which also
//! numbers the rows. A partial phase that finds it keeps most rows (groups of a few rows
//! each) passes the rest through instead. Rows are copied out of their batches when those
//! hold more than twice the kept rows, so memory follows the groups × k kept rows.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::group_tops::Tops;

/// Which ranking the filter is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// 1, 2, 3, … (ties in any order): exactly k rows per group.
    RowNumber,
    /// 1, 1, 3, …: the k best and every row tied with the k-th.
    Rank,
    /// 1, 1, 2, …: every row among the k best distinct keys.
    DenseRank,
}

impl Ranking {
    pub fn of(name: &str) -> Option<Ranking> {
        match name {
            "row_number" => Some(Ranking::RowNumber),
            "rank" => Some(Ranking::Rank),
            "dense_rank" => Some(Ranking::DenseRank),
            _ => None,
        }
    }
}

/// Rows a partial phase reads before judging whether it pays: when more than half of them
/// are still kept (groups of few rows each), it passes the rest through untouched.
const PARTIAL_PROBE_ROWS: usize = 1 << 17;

#[derive(Debug)]
pub struct TopPerGroupExec {
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Vec<PhysicalSortExpr>,
    ranking: Ranking,
    k: usize,
    /// Final: rows of whole groups (after the repartition), numbered; else partial.
    is_final: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TopPerGroupExec {
    /// `schema`: the input's for the partial phase; the input's and the rank's for the final.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        order_by: Vec<PhysicalSortExpr>,
        ranking: Ranking,
        k: usize,
        is_final: bool,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        TopPerGroupExec {
            input,
            partition_by,
            order_by,
            ranking,
            k,
            is_final,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for TopPerGroupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let list = |e: &[String]| e.join(", ");
        write!(
            f,
            "TopPerGroupExec: mode={}, {:?} <= {}, partition_by=[{}], order_by=[{}]",
            if self.is_final { "final" } else { "partial" },
            self.ranking,
            self.k,
            list(
                &self
                    .partition_by
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            ),
            list(
                &self
                    .order_by
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            ),
        )
    }
}

impl ExecutionPlan for TopPerGroupExec {
    fn name(&self) -> &'static str {
        "TopPerGroupExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![match (self.is_final, self.partition_by.is_empty()) {
            (false, _) => Distribution::UnspecifiedDistribution,
            (true, true) => Distribution::SinglePartition,
            (true, false) => Distribution::KeyPartitioned(self.partition_by.clone()),
        }]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut recursion = TreeNodeRecursion::Continue;
        for e in self
            .partition_by
            .iter()
            .chain(self.order_by.iter().map(|s| &s.expr))
        {
            recursion = f(e)?;
            if recursion == TreeNodeRecursion::Stop {
                break;
            }
        }
        Ok(recursion)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("TopPerGroupExec needs its input".into()))?;
        Ok(Arc::new(TopPerGroupExec::new(
            input,
            self.partition_by.clone(),
            self.order_by.clone(),
            self.ranking,
            self.k,
            self.is_final,
            Arc::clone(&self.schema),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, Arc::clone(&context))?;
        let partition_by = self.partition_by.clone();
        let order_by = self.order_by.clone();
        let (ranking, k, is_final) = (self.ranking, self.k, self.is_final);
        let schema = Arc::clone(&self.schema);
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let reservation = MemoryConsumer::new(format!("TopPerGroupExec[{partition}]"))
            .register(context.memory_pool());
        let batch_size = context.session_config().batch_size();
        let run = async move {
            let input_schema = input.schema();
            let order = order_by
                .iter()
                .map(|s| Ok((s.expr.data_type(&input_schema)?, s.options)))
                .collect::<Result<Vec<_>>>()?;
            let mut tops = Tops::new(ranking, k, &order, reservation)?;
            let mut probe = PARTIAL_PROBE_ROWS;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let timer = metrics.elapsed_compute().timer();
                let evaluate = |exprs: &mut dyn Iterator<Item = &Arc<dyn PhysicalExpr>>| {
                    exprs
                        .map(|e| e.evaluate(&batch)?.into_array(batch.num_rows()))
                        .collect::<Result<Vec<ArrayRef>>>()
                };
                // No PARTITION BY: no group columns, one group.
                let groups = evaluate(&mut partition_by.iter())?;
                let order = evaluate(&mut order_by.iter().map(|s| &s.expr))?;
                tops.add(batch, &groups, &order)?;
                drop(timer);
                // Judged again at each doubling of the rows read: counting the rows kept may
                // first make the waiting rows enter their lists.
                if !is_final && tops.seen >= probe {
                    probe = tops.seen * 2;
                    if tops.kept() * 2 > tops.seen {
                        // Nearly every row is kept: the final phase will do this work anyway.
                        let kept = tops.finish(&schema, false, batch_size)?;
                        let kept = futures::stream::iter(kept.into_iter().map(Ok));
                        return Ok::<_, DataFusionError>(kept.chain(input).boxed());
                    }
                }
            }
            let timer = metrics.elapsed_compute().timer();
            let out = tops.finish(&schema, is_final, batch_size)?;
            drop(timer);
            metrics.record_output(out.iter().map(RecordBatch::num_rows).sum());
            metrics.done();
            Ok(futures::stream::iter(out.into_iter().map(Ok)).boxed())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(run).try_flatten(),
        )))
    }
}
