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

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{cast, interleave_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::HashMap;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use smallvec::SmallVec;

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

/// Batches retained before the kept rows may be copied into one: when the batches hold more
/// than twice the rows still kept.
const COMPACT_AFTER: usize = 64;
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
            let group_fields = |b: &RecordBatch| -> Result<Vec<SortField>> {
                partition_by
                    .iter()
                    .map(|e| Ok(SortField::new(e.data_type(&b.schema())?)))
                    .collect()
            };
            let key_fields = |b: &RecordBatch| -> Result<Vec<SortField>> {
                order_by
                    .iter()
                    .map(|s| {
                        Ok(SortField::new_with_options(
                            s.expr.data_type(&b.schema())?,
                            s.options,
                        ))
                    })
                    .collect()
            };
            let mut tops = Tops::new(ranking, k, reservation);
            let mut converters: Option<(RowConverter, RowConverter)> = None;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                if batch.num_rows() == 0 {
                    continue;
                }
                if converters.is_none() {
                    converters = Some((
                        RowConverter::new(group_fields(&batch)?)?,
                        RowConverter::new(key_fields(&batch)?)?,
                    ));
                }
                let Some((groups, keys)) = converters.as_mut() else {
                    continue;
                };
                let evaluate = |exprs: &mut dyn Iterator<Item = &Arc<dyn PhysicalExpr>>| {
                    exprs
                        .map(|e| e.evaluate(&batch)?.into_array(batch.num_rows()))
                        .collect::<Result<Vec<ArrayRef>>>()
                };
                // No PARTITION BY: one group (a converter of no columns has no rows).
                let group_rows = if partition_by.is_empty() {
                    None
                } else {
                    Some(groups.convert_columns(&evaluate(&mut partition_by.iter())?)?)
                };
                let key_rows =
                    keys.convert_columns(&evaluate(&mut order_by.iter().map(|s| &s.expr))?)?;
                tops.add(batch, group_rows.as_ref(), &key_rows)?;
                if !is_final && tops.seen >= PARTIAL_PROBE_ROWS && tops.live * 2 > tops.seen {
                    // Nearly every row is kept: the final phase will do this work anyway.
                    let kept = tops.finish(&schema, false, batch_size)?;
                    let kept = futures::stream::iter(kept.into_iter().map(Ok));
                    return Ok::<_, DataFusionError>(kept.chain(input).boxed());
                }
            }
            let out = tops.finish(&schema, is_final, batch_size)?;
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

/// Row-format bytes (which compare as the rows do), held inline up to 16 bytes: most keys
/// are one or two fixed-width columns, and then neither a comparison nor a kept row calls
/// memcmp or malloc. Inline keys compare as (big-endian bytes padded with zeros, length),
/// which orders them as their bytes. Two u64 rather than a u128 keep it 24 bytes (8-aligned).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Inline([u64; 2], u8),
    Heap(Box<[u8]>),
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= 16 {
            let mut padded = [0u8; 16];
            padded[..bytes.len()].copy_from_slice(bytes);
            let half = |i: usize| {
                let mut word = [0u8; 8];
                word.copy_from_slice(&padded[i * 8..i * 8 + 8]);
                u64::from_be_bytes(word)
            };
            Key::Inline([half(0), half(1)], bytes.len() as u8)
        } else {
            Key::Heap(bytes.into())
        }
    }

    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Key::Inline([a, b], n) => {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&a.to_be_bytes());
                bytes[8..].copy_from_slice(&b.to_be_bytes());
                f(&bytes[..usize::from(*n)])
            }
            Key::Heap(b) => f(b),
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Inline(a, n), Key::Inline(b, m)) => (a, n).cmp(&(b, m)),
            _ => self.with_bytes(|a| other.with_bytes(|b| a.cmp(b))),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A group's kept rows, sorted by key: stored in the hash table itself up to two, so the
/// common small k costs one memory access per row, not two.
type List = SmallVec<[Entry; 2]>;

/// A kept row: its order key, and where it is.
struct Entry {
    key: Key,
    batch: u32,
    row: u32,
}

/// The kept rows of every group seen, each group's sorted by key.
struct Tops {
    ranking: Ranking,
    k: usize,
    groups: HashMap<Key, List>,
    batches: Vec<RecordBatch>,
    /// Rows kept now, and rows read.
    live: usize,
    seen: usize,
    reservation: MemoryReservation,
}

impl Tops {
    fn new(ranking: Ranking, k: usize, reservation: MemoryReservation) -> Tops {
        Tops {
            ranking,
            k,
            groups: HashMap::default(),
            batches: vec![],
            live: 0,
            seen: 0,
            reservation,
        }
    }

    fn add(&mut self, batch: RecordBatch, groups: Option<&Rows>, keys: &Rows) -> Result<()> {
        let index = self.batches.len() as u32;
        let (ranking, k) = (self.ranking, self.k);
        let mut kept = false;
        for row in 0..batch.num_rows() {
            let key = keys.row(row);
            let group = Key::new(groups.map_or(&[][..], |g| g.row(row).data()));
            let list = self.groups.entry(group).or_default();
            let before = list.len();
            if offer(list, Key::new(key.data()), ranking, k, index, row as u32) {
                kept = true;
                // One row in, possibly several tied rows out (dense_rank).
                self.live = (self.live + list.len()).saturating_sub(before);
            }
        }
        self.seen += batch.num_rows();
        if kept {
            self.batches.push(batch);
            let retained: usize = self.batches.iter().map(RecordBatch::num_rows).sum();
            if self.batches.len() >= COMPACT_AFTER && retained > 2 * self.live {
                self.compact()?;
            }
            let bytes: usize = self
                .batches
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum();
            self.reservation.try_resize(bytes)?;
        }
        Ok(())
    }

    /// Copy the kept rows into one batch, so the batches they came from can go.
    fn compact(&mut self) -> Result<()> {
        let mut at = vec![];
        for list in self.groups.values_mut() {
            for e in list.iter_mut() {
                at.push((e.batch as usize, e.row as usize));
                (e.batch, e.row) = (0, (at.len() - 1) as u32);
            }
        }
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let kept = interleave_record_batch(&batches, &at)?;
        self.batches = vec![kept];
        Ok(())
    }

    /// The kept rows (and, for the final phase, their rank), in batches of `batch_size`.
    fn finish(
        self,
        schema: &SchemaRef,
        numbered: bool,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        if self.batches.is_empty() {
            return Ok(vec![]);
        }
        let mut at = vec![];
        let mut ranks = vec![];
        for list in self.groups.values() {
            let (mut rank, mut dense) = (0, 0);
            for (i, e) in list.iter().enumerate() {
                if i == 0 || list[i - 1].key != e.key {
                    (rank, dense) = (i + 1, dense + 1);
                }
                let r = match self.ranking {
                    Ranking::RowNumber => i + 1,
                    Ranking::Rank => rank,
                    Ranking::DenseRank => dense,
                };
                at.push((e.batch as usize, e.row as usize));
                ranks.push(r as u64);
            }
        }
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let rows = interleave_record_batch(&batches, &at)?;
        let out = if numbered {
            let mut columns = rows.columns().to_vec();
            let field = schema.field(schema.fields().len() - 1);
            columns.push(cast(
                &(Arc::new(UInt64Array::from(ranks)) as ArrayRef),
                field.data_type(),
            )?);
            RecordBatch::try_new(Arc::clone(schema), columns)?
        } else {
            rows.with_schema(Arc::clone(schema))?
        };
        let step = batch_size.max(1);
        Ok((0..out.num_rows())
            .step_by(step)
            .map(|start| out.slice(start, step.min(out.num_rows() - start)))
            .collect())
    }
}

/// Put a row into its group's sorted list if it can rank ≤ k there; false if it cannot.
fn offer(list: &mut List, key: Key, ranking: Ranking, k: usize, batch: u32, row: u32) -> bool {
    let full = match ranking {
        Ranking::RowNumber | Ranking::Rank => list.len() >= k,
        Ranking::DenseRank => distinct(list) >= k,
    };
    if full {
        let worst = match ranking {
            Ranking::RowNumber => &list[list.len() - 1].key,
            Ranking::Rank => &list[k - 1].key,
            Ranking::DenseRank => &list[list.len() - 1].key,
        };
        let admitted = match ranking {
            // Ties with the last kept row would rank after it: the earlier row stays.
            Ranking::RowNumber => key < *worst,
            Ranking::Rank | Ranking::DenseRank => key <= *worst,
        };
        if !admitted {
            return false;
        }
    }
    let at = list.partition_point(|e| e.key <= key);
    list.insert(at, Entry { key, batch, row });
    match ranking {
        Ranking::RowNumber => list.truncate(k),
        Ranking::Rank => {
            while list.len() > k && list[list.len() - 1].key > list[k - 1].key {
                list.pop();
            }
        }
        Ranking::DenseRank => {
            if distinct(list) > k {
                let last = list[list.len() - 1].key.clone();
                list.retain(|e| e.key != last);
            }
        }
    }
    true
}

fn distinct(list: &[Entry]) -> usize {
    list.iter()
        .enumerate()
        .filter(|(i, e)| *i == 0 || list[i - 1].key != e.key)
        .count()
}

#[cfg(test)]
mod tests {
    use super::{Entry, Key, List, Ranking, offer};

    fn keys(list: &[Entry]) -> Vec<u8> {
        list.iter().map(|e| e.key.with_bytes(|b| b[0])).collect()
    }

    fn run(ranking: Ranking, k: usize, input: &[u8]) -> Vec<u8> {
        let mut list = List::new();
        for (i, v) in input.iter().enumerate() {
            offer(&mut list, Key::new(&[*v]), ranking, k, 0, i as u32);
        }
        keys(&list)
    }

    #[test]
    fn keys_compare_as_their_bytes() {
        // Short and long, equal prefixes, trailing zeros: every pair as the slices compare.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let mut keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0, 0], vec![1], vec![1, 0]];
        for _ in 0..300 {
            let len = next() % 24;
            keys.push((0..len).map(|_| (next() % 3) as u8).collect());
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(Key::new(a).cmp(&Key::new(b)), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(Key::new(a) == Key::new(b), a == b);
            }
        }
    }

    #[test]
    fn each_ranking_keeps_what_ranks_at_most_k() {
        let input = [5, 3, 9, 3, 1, 7, 3, 1];
        // Sorted: 1 1 3 3 3 5 7 9
        assert_eq!(run(Ranking::RowNumber, 3, &input), vec![1, 1, 3]);
        // rank: 1 1 3 3 3 6 …: ranks ≤ 3 are the 1s and the 3s.
        assert_eq!(run(Ranking::Rank, 3, &input), vec![1, 1, 3, 3, 3]);
        assert_eq!(run(Ranking::Rank, 2, &input), vec![1, 1]);
        // dense_rank: 1 1 2 2 2 3 4 5
        assert_eq!(run(Ranking::DenseRank, 2, &input), vec![1, 1, 3, 3, 3]);
        assert_eq!(run(Ranking::DenseRank, 3, &input), vec![1, 1, 3, 3, 3, 5]);
        assert_eq!(run(Ranking::RowNumber, 1, &[2, 2, 2]), vec![2]);
    }
}
