//! `ProbeFilterExec`: the two halves of a hash join's probe filter. On the build side it
//! passes batches to the join and records a hash of each row's integer key in a bit set; on
//! the probe side it drops rows whose key's bit is clear before the join hashes them and
//! looks them up. A row the set does not contain cannot match, so only joins whose unmatched
//! probe rows produce nothing get the filter (the rule in `optimizer/probe_filter.rs` decides).
//!
//! The set is a filter, never the answer: when it is not ready (a build partition still
//! running, a set that did not fit in the memory pool) the probe side passes its rows on
//! unchanged and the join decides alone, as it would without the filter.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, RecordBatchStream,
    SendableRecordBatchStream,
};
use futures::{Stream, StreamExt};

/// Bits per build key: one in 16 bits set, so about 6% of absent keys pass.
const BITS_PER_KEY: usize = 16;
/// The largest set, 1 MiB, the size of this machine's per-core L2 cache: in a 16 MiB set each
/// test missed the cache (10 ns a row at TPC-H SF10, Q21's 7.3M orders), more than the join
/// saved. Past 512K keys fewer bits per key let more absent keys pass, and the trial below
/// stops testing once half the rows pass.
const MAX_BITS_LOG2: u32 = 23;
const MIN_BITS_LOG2: u32 = 12;
/// Past this many keys a set would have under one bit per key, and over 63% of absent keys
/// would pass: the build side stops recording.
const MAX_KEYS: usize = 1 << MAX_BITS_LOG2;
/// A probe side that kept half of its first 64K rows stops testing. A bit test costs about
/// 1.5 ns a row, and a dropped row saves the join 2.5-4 ns (TPC-H Q21's joins, SF1): below
/// half dropped, the tests and the copy of the kept rows cost what the join saves.
const TRIAL_ROWS: usize = 65_536;

/// Whether a key of this type can be filtered.
pub fn supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
    )
}

/// Binds `$v` to the values of a key array of a `supported` type and evaluates `$body`, in
/// which `$v[i] as u64` is row i's key bits.
macro_rules! with_values {
    ($keys:expr, $v:ident => $body:expr) => {
        match $keys.data_type() {
            DataType::Int16 => {
                let $v = $keys.as_primitive::<Int16Type>().values();
                $body
            }
            DataType::Int32 => {
                let $v = $keys.as_primitive::<Int32Type>().values();
                $body
            }
            DataType::Int64 => {
                let $v = $keys.as_primitive::<Int64Type>().values();
                $body
            }
            DataType::UInt16 => {
                let $v = $keys.as_primitive::<UInt16Type>().values();
                $body
            }
            DataType::UInt32 => {
                let $v = $keys.as_primitive::<UInt32Type>().values();
                $body
            }
            DataType::UInt64 => {
                let $v = $keys.as_primitive::<UInt64Type>().values();
                $body
            }
            DataType::Date32 => {
                let $v = $keys.as_primitive::<Date32Type>().values();
                $body
            }
            DataType::Date64 => {
                let $v = $keys.as_primitive::<Date64Type>().values();
                $body
            }
            other => {
                return Err(DataFusionError::Internal(format!(
                    "ProbeFilterExec cannot filter keys of type {other}"
                )))
            }
        }
    };
}

/// Appends each key's bits to `out`, NULLs skipped.
#[allow(clippy::unnecessary_cast)] // the UInt64 arm casts u64 to itself
fn push_keys(keys: &ArrayRef, out: &mut Vec<u64>) -> Result<()> {
    with_values!(keys, v => match keys.nulls() {
        Some(nulls) => out.extend(nulls.valid_indices().map(|i| v[i] as u64)),
        None => out.extend(v.iter().map(|k| *k as u64)),
    });
    Ok(())
}

/// A bit set of hashed keys, with the memory it holds reserved in the pool.
#[derive(Debug)]
pub struct KeyBits {
    words: Vec<u64>,
    shift: u32,
    _reservation: MemoryReservation,
}

impl KeyBits {
    /// The set of `keys`, or `None` when there are too many for a useful set or the pool
    /// cannot hold it.
    fn build(keys: &[u64], reservation: MemoryReservation) -> Option<KeyBits> {
        let wanted = keys.len().saturating_mul(BITS_PER_KEY).max(1);
        if keys.len() > MAX_KEYS {
            return None;
        }
        let log2 = wanted
            .next_power_of_two()
            .trailing_zeros()
            .clamp(MIN_BITS_LOG2, MAX_BITS_LOG2);
        let words = 1usize << (log2 - 6);
        reservation.try_resize(words * 8).ok()?;
        let mut bits = KeyBits {
            words: vec![0; words],
            shift: 64 - log2,
            _reservation: reservation,
        };
        for &key in keys {
            let at = bits.slot(key);
            bits.words[at >> 6] |= 1 << (at & 63);
        }
        Some(bits)
    }

    /// Fibonacci hashing: the top bits of the key times 2^64 / φ.
    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn contains(&self, key: u64) -> bool {
        let at = self.slot(key);
        self.words[at >> 6] >> (at & 63) & 1 == 1
    }

    /// Which rows of `keys` may match: a NULL key never does.
    #[allow(clippy::unnecessary_cast)] // the UInt64 arm casts u64 to itself
    fn test(&self, keys: &ArrayRef) -> Result<BooleanBuffer> {
        let keep = with_values!(keys, v => {
            BooleanBuffer::collect_bool(v.len(), |i| self.contains(v[i] as u64))
        });
        Ok(match keys.nulls() {
            Some(nulls) => &keep & nulls.inner(),
            None => keep,
        })
    }
}

/// The sets of one join's build side, one per build partition (one when the join builds a
/// single table for every probe partition).
#[derive(Debug)]
pub struct KeySets {
    slots: Vec<Mutex<Option<Arc<KeyBits>>>>,
}

impl KeySets {
    pub fn new(build_partitions: usize) -> Arc<KeySets> {
        Arc::new(KeySets {
            slots: (0..build_partitions).map(|_| Mutex::new(None)).collect(),
        })
    }

    fn set(&self, partition: usize, bits: Option<Arc<KeyBits>>) {
        if let Some(slot) = self.slots.get(partition) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = bits;
        }
    }

    fn get(&self, partition: usize) -> Option<Arc<KeyBits>> {
        let slot = self.slots.get(partition)?;
        slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Which half of the filter a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Records the join's build keys.
    Build,
    /// Filters the probe rows; `shared` when one build table serves every probe partition.
    Probe { shared: bool },
}

#[derive(Debug)]
pub struct ProbeFilterExec {
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    side: Side,
    sets: Arc<KeySets>,
    metrics: ExecutionPlanMetricsSet,
}

impl ProbeFilterExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        key: Arc<dyn PhysicalExpr>,
        side: Side,
        sets: Arc<KeySets>,
    ) -> Self {
        ProbeFilterExec {
            input,
            key,
            side,
            sets,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }
}

impl DisplayAs for ProbeFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let side = match self.side {
            Side::Build => "build",
            Side::Probe { .. } => "probe",
        };
        write!(f, "ProbeFilterExec: side={side}, key={}", self.key)
    }
}

impl ExecutionPlan for ProbeFilterExec {
    fn name(&self) -> &'static str {
        "ProbeFilterExec"
    }

    /// The input's: rows pass in order, some dropped, none moved between partitions.
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.key)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("ProbeFilterExec needs its input".into()))?;
        Ok(Arc::new(ProbeFilterExec::new(
            input,
            Arc::clone(&self.key),
            self.side,
            Arc::clone(&self.sets),
        )))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// The input's statistics: the join was planned on them, and dropped rows are ones it
    /// would not have matched.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match input_stats.first() {
            Some(stats) => Ok(Arc::clone(stats)),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
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
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let state = match self.side {
            Side::Build => {
                // Reset now, not on the first batch: the join executes its build side before
                // its probe side, so no probe stream can read a set of an earlier run.
                self.sets.set(partition, None);
                let consumer = MemoryConsumer::new(format!("ProbeFilterExec[{partition}]"));
                State::Build {
                    keys: Vec::new(),
                    reservation: Some(consumer.register(context.memory_pool())),
                }
            }
            Side::Probe { .. } => State::Probe {
                bits: None,
                seen: 0,
                kept: 0,
                testing: true,
                dropped: MetricBuilder::new(&self.metrics).counter("rows_dropped", partition),
            },
        };
        Ok(Box::pin(KeyStream {
            input,
            key: Arc::clone(&self.key),
            sets: Arc::clone(&self.sets),
            partition: match self.side {
                Side::Probe { shared: true } => 0,
                _ => partition,
            },
            state,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        }))
    }
}

enum State {
    Build {
        keys: Vec<u64>,
        /// `None` once the keys outgrew the memory pool: no set this run.
        reservation: Option<MemoryReservation>,
    },
    Probe {
        bits: Option<Arc<KeyBits>>,
        seen: usize,
        kept: usize,
        testing: bool,
        dropped: Count,
    },
}

struct KeyStream {
    input: SendableRecordBatchStream,
    key: Arc<dyn PhysicalExpr>,
    sets: Arc<KeySets>,
    /// The build partition whose set this stream writes or reads.
    partition: usize,
    state: State,
    metrics: BaselineMetrics,
}

impl KeyStream {
    fn record(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        let State::Build {
            keys: all,
            reservation,
        } = &mut self.state
        else {
            return Ok(());
        };
        let Some(held) = reservation else {
            return Ok(());
        };
        // Too many keys for a useful set (SF10 Q9's 15M orders), or no memory to hold them:
        // stop copying them.
        if all.len() + keys.len() > MAX_KEYS || held.try_grow(keys.len() * 8).is_err() {
            *all = Vec::new();
            *reservation = None;
            return Ok(());
        }
        push_keys(&keys, all)
    }

    /// The whole build side has passed: publish its set.
    fn publish(&mut self) {
        if let State::Build { keys, reservation } = &mut self.state
            && let Some(held) = reservation.take()
        {
            let bits = KeyBits::build(keys, held.new_empty());
            *keys = Vec::new();
            drop(held);
            self.sets.set(self.partition, bits.map(Arc::new));
        }
    }

    fn filter(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let State::Probe {
            bits,
            seen,
            kept,
            testing,
            dropped,
        } = &mut self.state
        else {
            return Ok(batch);
        };
        if !*testing {
            return Ok(batch);
        }
        if bits.is_none() {
            *bits = self.sets.get(self.partition);
        }
        let Some(set) = bits else {
            return Ok(batch);
        };
        let keys = self.key.evaluate(&batch)?.into_array(batch.num_rows())?;
        let keep = set.test(&keys)?;
        let rows = keep.count_set_bits();
        *seen += batch.num_rows();
        *kept += rows;
        if *seen >= TRIAL_ROWS && *kept * 2 >= *seen {
            *testing = false;
        }
        if rows == batch.num_rows() {
            return Ok(batch);
        }
        dropped.add(batch.num_rows() - rows);
        Ok(filter_record_batch(&batch, &BooleanArray::new(keep, None))?)
    }
}

impl Stream for KeyStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let batch = match this.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => batch,
                Poll::Ready(None) => {
                    this.publish();
                    return Poll::Ready(None);
                }
                other => return other,
            };
            let elapsed = this.metrics.elapsed_compute().clone();
            let timer = elapsed.timer();
            let out = match this.state {
                State::Build { .. } => this.record(&batch).map(|()| batch),
                State::Probe { .. } => this.filter(batch),
            };
            timer.done();
            match out {
                Ok(out) if out.num_rows() == 0 => continue,
                out => return this.metrics.record_poll(Poll::Ready(Some(out))),
            }
        }
    }
}

impl RecordBatchStream for KeyStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    fn scan(keys: Vec<Option<i64>>) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let batches: Vec<RecordBatch> = keys
            .chunks(1000)
            .map(|chunk| {
                let column = Arc::new(Int64Array::from(chunk.to_vec())) as ArrayRef;
                RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("batch")
            })
            .collect();
        MemorySourceConfig::try_new_exec(&[batches], schema, None).expect("source")
    }

    fn keys_of(batches: &[RecordBatch]) -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<Int64Type>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn pair(build: Vec<Option<i64>>, probe: Vec<Option<i64>>) -> [Arc<dyn ExecutionPlan>; 2] {
        let sets = KeySets::new(1);
        let build = scan(build);
        let key = col("k", &build.schema()).expect("column");
        [
            Arc::new(ProbeFilterExec::new(
                build,
                Arc::clone(&key),
                Side::Build,
                Arc::clone(&sets),
            )),
            Arc::new(ProbeFilterExec::new(
                scan(probe),
                key,
                Side::Probe { shared: true },
                sets,
            )),
        ]
    }

    /// Every probe row whose key the build side has passes, NULL keys never do, and most
    /// absent keys are dropped (sparse, negative and huge keys alike).
    #[tokio::test]
    async fn keeps_every_build_key_and_drops_most_others() -> Result<()> {
        let build: Vec<Option<i64>> = (0..5000)
            .map(|i| (i % 50 != 0).then_some((i - 2500) * 1_000_003))
            .chain([Some(i64::MIN), Some(i64::MAX), None])
            .collect();
        let probe: Vec<Option<i64>> = (-60_000i64..60_000)
            .map(|i| (i % 333 != 0).then_some(i * 1_000_003 / 10))
            .chain([Some(i64::MIN), Some(i64::MAX), None])
            .collect();
        let present: std::collections::HashSet<i64> = build.iter().flatten().copied().collect();
        let [build_side, probe_side] = pair(build, probe.clone());
        let ctx = SessionContext::new().task_ctx();
        let built = collect(build_side, Arc::clone(&ctx)).await?;
        assert_eq!(
            keys_of(&built).len(),
            5003,
            "the build side passes every row"
        );
        let kept = keys_of(&collect(probe_side, ctx).await?);
        let wanted: Vec<Option<i64>> = probe
            .iter()
            .filter(|k| k.is_some_and(|k| present.contains(&k)))
            .copied()
            .collect();
        let found: Vec<Option<i64>> = kept
            .iter()
            .filter(|k| k.is_some_and(|k| present.contains(&k)))
            .copied()
            .collect();
        assert_eq!(found, wanted, "rows whose key the build side has, in order");
        assert!(kept.iter().all(Option::is_some), "no NULL key passes");
        assert!(
            kept.len() < wanted.len() + probe.len() / 10,
            "{} of {} passed",
            kept.len(),
            probe.len()
        );
        Ok(())
    }

    /// A probe side running before its build side has published a set passes every row.
    #[tokio::test]
    async fn passes_everything_without_a_set() -> Result<()> {
        let probe: Vec<Option<i64>> = (0..3000).map(|i| (i != 5).then_some(i)).collect();
        let [_, probe_side] = pair(vec![Some(1)], probe.clone());
        let kept = keys_of(&collect(probe_side, SessionContext::new().task_ctx()).await?);
        assert_eq!(kept, probe);
        Ok(())
    }
}
