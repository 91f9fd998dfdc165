//! The kept rows of each group for `TopPerGroupExec`: per group a sorted list of at most k
//! order keys (row-format bytes) pointing into the retained batches. Groups are numbered by
//! DataFusion's own group-by tables (`GroupValues`, vectorised per batch and specialised by
//! key type, as `GROUP BY` uses them), and each group's list sits at its number in one vector.
//! Past `BLOCK` groups that vector no longer fits in cache and every row would cost a miss,
//! so rows wait in a buffer per block of `BLOCK` group numbers and enter a block's lists
//! together, while they are in cache (or, with one fixed-width column to partition by and one
//! to order by, move to parts by a hash of their value: `group_parts`). With one fixed-width
//! order column, each group also keeps the bits of the key a row must beat (`OrderBits`),
//! and a row that cannot is rejected before its row-format key is made.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array, new_null_array};
use datafusion::arrow::compute::{SortOptions, cast, interleave_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::error::Result;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use smallvec::SmallVec;

use super::group_numbers::GroupNumbers;
use super::group_parts::Parts;
use super::order_bits::OrderBits;
use super::top_per_group::Ranking;
use crate::prefetch::prefetch;

/// Batches retained before the kept rows may be copied into one: when the batches hold more
/// than twice the rows still kept.
const COMPACT_AFTER: usize = 64;
/// Group numbers per block: 8,192 lists of 72 bytes, about half of one core's L2 cache.
const BLOCK: usize = 1 << 13;
/// Rows waiting for their blocks before they enter them (or more, once there are more groups
/// than this: each block is then brought into cache once per this many rows).
const FLUSH_ROWS: usize = 1 << 20;

/// Row-format bytes (which compare as the rows do), held inline up to 16 bytes: most keys
/// are one or two fixed-width columns, and then neither a comparison nor a kept row calls
/// memcmp or malloc. Inline keys compare as (big-endian bytes padded with zeros, length),
/// which orders them as their bytes. Two u64 rather than a u128 keep it 24 bytes (8-aligned).
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Key {
    Inline([u64; 2], u8),
    Heap(Box<[u8]>),
}

impl Key {
    #[inline]
    pub(super) fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= 16 {
            // Whole words load directly; a short tail byte by byte. (Copying into a padded
            // buffer first stalled every row on the store of a variable-length copy.)
            let word = |b: &[u8]| match <[u8; 8]>::try_from(b) {
                Ok(w) => u64::from_be_bytes(w),
                Err(_) => b
                    .iter()
                    .enumerate()
                    .fold(0, |w, (i, x)| w | u64::from(*x) << (56 - 8 * i)),
            };
            let (high, low) = bytes.split_at(bytes.len().min(8));
            Key::Inline([word(high), word(low)], bytes.len() as u8)
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
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Inline(a, n), Key::Inline(b, m)) => {
                (a[0].cmp(&b[0])).then(a[1].cmp(&b[1])).then(n.cmp(m))
            }
            _ => self.with_bytes(|a| other.with_bytes(|b| a.cmp(b))),
        }
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A group's kept rows, sorted by key: stored in the hash table itself up to two, so the
/// common small k costs one memory access per row, not two.
pub(super) type List = SmallVec<[Entry; 2]>;

/// A kept row: its order key, and where it is.
pub(super) struct Entry {
    pub key: Key,
    pub batch: u32,
    pub row: u32,
}

/// The kept rows of every group seen, each group's sorted by key.
pub struct Tops {
    ranking: Ranking,
    k: usize,
    /// The groups' numbers (made at the first batch; none without PARTITION BY: one group):
    /// our own table for one fixed-width column, else DataFusion's.
    groups: Option<Box<dyn GroupValues>>,
    fixed: Option<GroupNumbers>,
    /// Past `block` groups, with one fixed-width column to partition by and one to order by:
    /// the groups moved out of `fixed` and `lists`, into parts by a hash of their value.
    parts: Option<Parts>,
    /// Each group's kept rows, at its number.
    lists: Vec<List>,
    /// The group number of each row of the batch being added.
    numbers: Vec<usize>,
    /// Makes the order keys (row-format bytes) of a batch's rows.
    converter: RowConverter,
    /// One fixed-width order column: its values' bits; each group's `bound` (a row whose bits
    /// are above it cannot enter the group's list; never below the list's worst key: it may
    /// lag behind, not lead); scratch for a batch's bits and the rows within their bounds.
    bits: Option<OrderBits>,
    /// With bits: the row-format key of a NULL order value.
    null_key: Option<Key>,
    bounds: Vec<u64>,
    values: Vec<u64>,
    candidates: Vec<u32>,
    /// Once past one block of groups: the rows read since the last flush, by block.
    /// (the group numbers apart, so the lists can be prefetched ahead of their rows).
    pending: Vec<(Vec<u32>, Vec<Entry>)>,
    pending_rows: usize,
    batches: Vec<RecordBatch>,
    /// Rows kept now, and rows read.
    live: usize,
    pub seen: usize,
    reservation: MemoryReservation,
    /// `BLOCK` and `FLUSH_ROWS` (smaller in tests, to reach every path with few rows).
    block: usize,
    flush_rows: usize,
}

impl Tops {
    /// `order`: the ORDER BY columns' types and sort options.
    pub fn new(
        ranking: Ranking,
        k: usize,
        order: &[(DataType, SortOptions)],
        reservation: MemoryReservation,
    ) -> Result<Tops> {
        let fields = order
            .iter()
            .map(|(t, o)| SortField::new_with_options(t.clone(), *o))
            .collect();
        let bits = match order {
            [(t, o)] => OrderBits::new(t, *o),
            _ => None,
        };
        let converter = RowConverter::new(fields)?;
        let null_key = match (bits, order) {
            (Some(_), [(t, _)]) => {
                let null = converter.convert_columns(&[new_null_array(t, 1)])?;
                Some(Key::new(null.row(0).data()))
            }
            _ => None,
        };
        Ok(Tops {
            ranking,
            k,
            groups: None,
            fixed: None,
            parts: None,
            lists: vec![],
            numbers: vec![],
            converter,
            bits,
            null_key,
            bounds: vec![],
            values: vec![],
            candidates: vec![],
            pending: vec![],
            pending_rows: 0,
            batches: vec![],
            live: 0,
            seen: 0,
            reservation,
            block: BLOCK,
            flush_rows: FLUSH_ROWS,
        })
    }

    /// Rows kept so far, counting those still waiting for their block (the parts' waiting
    /// rows enter their lists first: most of them will not be kept).
    pub fn kept(&mut self) -> usize {
        if self.parts.is_some() {
            self.flush();
        }
        self.live + self.pending_rows
    }

    /// Offer the rows of `batch`, whose PARTITION BY values are `groups` (none: one group)
    /// and whose ORDER BY values are `order`.
    pub fn add(
        &mut self,
        batch: RecordBatch,
        groups: &[ArrayRef],
        order: &[ArrayRef],
    ) -> Result<()> {
        let rows = batch.num_rows();
        if let Some(parts) = self.parts.as_mut() {
            parts.add(&groups[0], &order[0], self.batches.len() as u32)?;
            self.batches.push(batch);
            self.seen += rows;
            if parts.waiting >= self.flush_rows {
                self.flush();
                self.compact_if_sparse()?;
            }
            return self.reserve();
        }
        self.numbers.clear();
        if groups.is_empty() {
            self.numbers.resize(rows, 0);
            if self.lists.is_empty() {
                self.lists.push(List::new());
            }
        } else {
            if self.groups.is_none() && self.fixed.is_none() {
                self.fixed = match groups {
                    [column] => GroupNumbers::new(column),
                    _ => None,
                };
            }
            if let Some(fixed) = self.fixed.as_mut() {
                fixed.intern(&groups[0], &mut self.numbers);
                self.lists.resize_with(fixed.len(), List::new);
            } else if self.groups.is_none() {
                let fields: Vec<Field> = groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| Field::new(format!("g{i}"), g.data_type().clone(), true))
                    .collect();
                let schema = Arc::new(Schema::new(fields));
                self.groups = Some(new_group_values(schema, &GroupOrdering::None)?);
            }
            if let Some(values) = self.groups.as_mut() {
                values.intern(groups, &mut self.numbers)?;
                self.lists.resize_with(values.len(), List::new);
            }
        }
        let direct = self.lists.len() <= self.block && self.pending_rows == 0;
        let kept = self.offer_rows(order, direct)?;
        self.seen += rows;
        if kept {
            self.batches.push(batch);
        }
        if self.pending_rows >= self.flush_rows.max(self.lists.len()) {
            self.flush();
        }
        if self.lists.len() > self.block {
            self.split_into_parts();
        }
        if kept {
            self.compact_if_sparse()?;
        }
        self.reserve()
    }

    /// Past `block` groups, with one fixed-width column to partition by and one to order by:
    /// every group moves to its part, and the rows from here on wait in theirs.
    fn split_into_parts(&mut self) {
        let (Some(bits), Some(null_key)) = (self.bits, self.null_key.clone()) else {
            return;
        };
        if self.fixed.is_none() {
            return;
        }
        self.flush();
        if let Some(fixed) = self.fixed.take() {
            let lists = std::mem::take(&mut self.lists);
            let bounds = std::mem::take(&mut self.bounds);
            self.parts = Some(Parts::new(&fixed, lists, &bounds, bits, null_key));
        }
    }

    /// Copy the kept rows into one batch once the retained batches hold more than twice as
    /// many (and no row is waiting in a block's buffer, pointing at the batches).
    fn compact_if_sparse(&mut self) -> Result<()> {
        let retained: usize = self.batches.iter().map(RecordBatch::num_rows).sum();
        if self.pending_rows == 0 && self.batches.len() >= COMPACT_AFTER && retained > 2 * self.live
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Every group's list.
    fn lists_mut(&mut self) -> impl Iterator<Item = &mut List> {
        let parts = self.parts.iter_mut().flat_map(Parts::lists_mut);
        self.lists.iter_mut().chain(parts)
    }

    /// The rows of the batch (their group numbers in `numbers`) offered to their lists, or
    /// put in their blocks' buffers when not `direct`; true if any may be kept. With bits,
    /// only the rows within their groups' bounds: the others cannot enter, and get no key.
    fn offer_rows(&mut self, order: &[ArrayRef], direct: bool) -> Result<bool> {
        let rows = self.numbers.len();
        let bits = self.bits.filter(|b| b.values(&order[0], &mut self.values));
        self.candidates.clear();
        if bits.is_some() {
            self.bounds.resize(self.lists.len(), u64::MAX);
            // Written at every row, counted only where within bounds: no branch to mispredict.
            self.candidates.resize(rows, 0);
            // Borrowed apart, so the loop keeps each vector's address in a register rather
            // than reloading it after every store.
            let (candidates, bounds) = (self.candidates.as_mut_slice(), self.bounds.as_slice());
            let mut n = 0;
            for (row, (&group, &value)) in self.numbers.iter().zip(&self.values).enumerate() {
                candidates[n] = row as u32;
                n += usize::from(value <= bounds[group]);
            }
            self.candidates.truncate(n);
        } else {
            self.candidates.extend(0..rows as u32);
        }
        let n = self.candidates.len();
        if n == 0 {
            return Ok(false);
        }
        let keys = if n == rows {
            self.converter.convert_columns(order)?
        } else {
            let at = UInt32Array::from_iter_values(self.candidates.iter().copied());
            let some = order
                .iter()
                .map(|c| take(c.as_ref(), &at, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            self.converter.convert_columns(&some)?
        };
        let (ranking, k) = (self.ranking, self.k);
        let index = self.batches.len() as u32;
        // Loops rather than one iterator of entries: its closure was not inlined, and reading
        // the entry it returned stalled on a store of different width (42% of `add`).
        let entry = |i: usize, row: u32| Entry {
            key: Key::new(keys.row(i).data()),
            batch: index,
            row,
        };
        if direct {
            let mut kept = false;
            for (i, &row) in self.candidates.iter().enumerate() {
                let group = self.numbers[row as usize];
                let list = &mut self.lists[group];
                if enter(list, entry(i, row), ranking, k, &mut self.live) {
                    kept = true;
                    tighten(&mut self.bounds, group, list, self.bits, ranking, k);
                }
            }
            return Ok(kept);
        }
        self.pending
            .resize_with(self.lists.len().div_ceil(self.block), Default::default);
        for (i, &row) in self.candidates.iter().enumerate() {
            let group = self.numbers[row as usize];
            let (groups, waiting) = &mut self.pending[group / self.block];
            groups.push(group as u32);
            waiting.push(entry(i, row));
        }
        self.pending_rows += n;
        Ok(true)
    }

    /// The waiting rows enter their lists, one block (or part) at a time.
    fn flush(&mut self) {
        let (ranking, k) = (self.ranking, self.k);
        if let Some(parts) = self.parts.as_mut() {
            parts.flush(ranking, k, &mut self.live);
        }
        for (groups, waiting) in self.pending.iter_mut() {
            for (i, entry) in waiting.drain(..).enumerate() {
                // The block's lists are mostly not in cache yet: ask for the one a few rows on.
                if let Some(&ahead) = groups.get(i + PREFETCH) {
                    prefetch(&self.lists, ahead as usize);
                }
                let group = groups[i] as usize;
                let list = &mut self.lists[group];
                if enter(list, entry, ranking, k, &mut self.live) {
                    tighten(&mut self.bounds, group, list, self.bits, ranking, k);
                }
            }
            groups.clear();
        }
        self.pending_rows = 0;
    }

    /// Memory held: the retained batches, the group numbers, the lists and the waiting rows.
    fn reserve(&mut self) -> Result<()> {
        let batches: usize = self
            .batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let groups = self.groups.as_ref().map_or(0, |g| g.size())
            + self.fixed.as_ref().map_or(0, GroupNumbers::size)
            + self.parts.as_ref().map_or(0, Parts::size);
        let lists = self.lists.capacity() * size_of::<List>();
        let pending: usize = self
            .pending
            .iter()
            .map(|(g, w)| g.capacity() * size_of::<u32>() + w.capacity() * size_of::<Entry>())
            .sum();
        let bounds = (self.bounds.capacity() + self.values.capacity()) * size_of::<u64>()
            + self.candidates.capacity() * size_of::<u32>();
        self.reservation
            .try_resize(batches + groups + lists + pending + bounds)
    }

    /// Copy the kept rows into one batch, so the batches they came from can go.
    fn compact(&mut self) -> Result<()> {
        let mut at = vec![];
        for list in self.lists_mut() {
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

    /// The kept rows (and, for the final phase, their rank), in batches of `batch_size`, each
    /// its own copy (not slices of one: each slice would report the whole buffer's memory).
    pub fn finish(
        mut self,
        schema: &SchemaRef,
        numbered: bool,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        self.flush();
        if self.batches.is_empty() {
            return Ok(vec![]);
        }
        let mut at = vec![];
        let mut ranks = vec![];
        let ranking = self.ranking;
        for list in self.lists_mut() {
            let (mut rank, mut dense) = (0, 0);
            for (i, e) in list.iter().enumerate() {
                if i == 0 || list[i - 1].key != e.key {
                    (rank, dense) = (i + 1, dense + 1);
                }
                let r = match ranking {
                    Ranking::RowNumber => i + 1,
                    Ranking::Rank => rank,
                    Ranking::DenseRank => dense,
                };
                at.push((e.batch as usize, e.row as usize));
                ranks.push(r as u64);
            }
        }
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let rank_type = schema.field(schema.fields().len() - 1).data_type();
        at.chunks(batch_size.max(1))
            .zip(ranks.chunks(batch_size.max(1)))
            .map(|(at, ranks)| {
                let rows = interleave_record_batch(&batches, at)?;
                if !numbered {
                    return Ok(rows.with_schema(Arc::clone(schema))?);
                }
                let mut columns = rows.columns().to_vec();
                let ranks: ArrayRef = Arc::new(UInt64Array::from(ranks.to_vec()));
                columns.push(cast(&ranks, rank_type)?);
                Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
            })
            .collect()
    }
}

/// Rows ahead whose lists are prefetched.
const PREFETCH: usize = 16;

/// Offer a row to its group's `list`, keeping `live` (the rows kept) up to date; true if the
/// row is kept.
// Inlined into both loops (direct and buffered entry): called once per row, and most rows
// are rejected at the first comparison. Measured: 1,000 groups 0.134 s vs 0.155.
#[inline(always)]
pub(super) fn enter(
    list: &mut List,
    entry: Entry,
    ranking: Ranking,
    k: usize,
    live: &mut usize,
) -> bool {
    let before = list.len();
    let kept = offer(list, entry, ranking, k);
    if kept {
        // One row in, possibly several tied rows out (dense_rank).
        *live = (*live + list.len()).saturating_sub(before);
    }
    kept
}

/// Put a row into its group's sorted list if it can rank ≤ k there; false if it cannot.
#[inline(always)]
fn offer(list: &mut List, entry: Entry, ranking: Ranking, k: usize) -> bool {
    let key = &entry.key;
    if let Some(worst) = bound(list, ranking, k) {
        let admitted = match ranking {
            // Ties with the last kept row would rank after it: the earlier row stays.
            Ranking::RowNumber => key < worst,
            Ranking::Rank | Ranking::DenseRank => key <= worst,
        };
        if !admitted {
            return false;
        }
    }
    let at = list.partition_point(|e| e.key <= *key);
    // A full list first drops the rows the new one pushes past k, so a list of two does not
    // move out of its inline room for a moment (a malloc and a free, and its rows on the heap
    // for good: a second cache miss at every later row of the group).
    if list.len() >= k {
        let keep = match ranking {
            Ranking::RowNumber => k - 1,
            Ranking::Rank => {
                // The key ranking k once the row is in.
                let kth = match at.cmp(&(k - 1)) {
                    Ordering::Greater => &list[k - 1].key,
                    Ordering::Equal => key,
                    Ordering::Less => &list[k - 2].key,
                };
                list.partition_point(|e| e.key <= *kth)
            }
            Ranking::DenseRank => list.len(),
        };
        list.truncate(keep);
    }
    list.insert(at, entry);
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

/// A group's bound after its list took a row: the bits of the key a row must not be worse
/// than to enter (all bits while it is not full, or that key is a NULL's).
#[inline(always)]
pub(super) fn tighten(
    bounds: &mut [u64],
    group: usize,
    list: &[Entry],
    bits: Option<OrderBits>,
    ranking: Ranking,
    k: usize,
) {
    if let (Some(bits), Some(at)) = (bits, bounds.get_mut(group)) {
        *at = bound(list, ranking, k)
            .and_then(|key| key.with_bytes(|b| bits.of_key(b)))
            .unwrap_or(u64::MAX);
    }
}

/// The key a row must not be worse than to enter `list`; None while the list is not full.
#[inline(always)]
fn bound(list: &[Entry], ranking: Ranking, k: usize) -> Option<&Key> {
    let full = match ranking {
        Ranking::RowNumber | Ranking::Rank => list.len() >= k,
        Ranking::DenseRank => distinct(list) >= k,
    };
    full.then(|| match ranking {
        Ranking::RowNumber | Ranking::DenseRank => &list[list.len() - 1].key,
        Ranking::Rank => &list[k - 1].key,
    })
}

fn distinct(list: &[Entry]) -> usize {
    list.iter()
        .enumerate()
        .filter(|(i, e)| *i == 0 || list[i - 1].key != e.key)
        .count()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};

    use super::{Entry, Key, List, Ranking, Tops, offer};

    fn keys(list: &[Entry]) -> Vec<u8> {
        list.iter().map(|e| e.key.with_bytes(|b| b[0])).collect()
    }

    fn run(ranking: Ranking, k: usize, input: &[u8]) -> Vec<u8> {
        let mut list = List::new();
        for (i, v) in input.iter().enumerate() {
            let entry = Entry {
                key: Key::new(&[*v]),
                batch: 0,
                row: i as u32,
            };
            offer(&mut list, entry, ranking, k);
        }
        keys(&list)
    }

    /// A fixed pseudo-random sequence: each call gives a number below its argument.
    fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |below| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % below
        }
    }

    #[test]
    fn keys_compare_as_their_bytes() {
        // Short and long, equal prefixes, trailing zeros: every pair as the slices compare.
        let mut next = numbers(7);
        let mut keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0, 0], vec![1], vec![1, 0]];
        for _ in 0..300 {
            let len = next(24);
            keys.push((0..len).map(|_| next(3) as u8).collect());
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

    /// (group, value, rank) of every row ranking ≤ k, sorted: by `Tops` in batches of 37 rows,
    /// or by sorting each group (`brute`). Values 0..20 over 400 groups: ties everywhere.
    fn ranked(
        ranking: Ranking,
        k: usize,
        long_groups: bool,
        block: usize,
        brute: bool,
    ) -> Vec<(String, Option<i64>, u64)> {
        let mut next = numbers(11);
        let rows: Vec<(String, Option<i64>)> = (0..3000)
            .map(|row| {
                let g = next(400);
                // Past 16 bytes a key is kept on the heap.
                let g = if long_groups {
                    format!("a group name of some length {g}")
                } else {
                    g.to_string()
                };
                // NULLs in every third batch of 37 rows: those take the path without bounds.
                let null = (row / 37) % 3 == 0 && next(5) == 0;
                (g, (!null).then(|| next(20) as i64))
            })
            .collect();
        let mut out = vec![];
        if brute {
            let mut groups: BTreeMap<&str, Vec<Option<i64>>> = BTreeMap::new();
            for (g, v) in &rows {
                groups.entry(g).or_default().push(*v);
            }
            for (g, mut vs) in groups {
                // Descending, NULLs last.
                vs.sort_by(|a, b| a.is_none().cmp(&b.is_none()).then(b.cmp(a)));
                let (mut rank, mut dense) = (0, 0);
                for (i, v) in vs.iter().enumerate() {
                    if i == 0 || vs[i - 1] != *v {
                        (rank, dense) = (i + 1, dense + 1);
                    }
                    let r = match ranking {
                        Ranking::RowNumber => i + 1,
                        Ranking::Rank => rank,
                        Ranking::DenseRank => dense,
                    };
                    if r <= k {
                        out.push((g.to_string(), *v, r as u64));
                    }
                }
            }
            out.sort();
            return out;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let numbered = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
            Field::new("rank", DataType::UInt64, false),
        ]));
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let descending = SortOptions::new(true, false);
        let order = [(DataType::Int64, descending)];
        let reservation = MemoryConsumer::new("test").register(&pool);
        let mut tops = Tops::new(ranking, k, &order, reservation).unwrap();
        (tops.block, tops.flush_rows) = (block, 50);
        for chunk in rows.chunks(37) {
            let g: ArrayRef = Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| &r.0)));
            let v: ArrayRef = Arc::new(Int64Array::from_iter(chunk.iter().map(|r| r.1)));
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![g, v]).unwrap();
            // Short names are numbers: grouped as Int64 (by `GroupNumbers`, and past `block`
            // groups in parts), group 0 as NULL; the long ones as strings (by DataFusion's
            // `GroupValues`).
            let groups: Vec<ArrayRef> = if long_groups {
                batch.columns()[..1].to_vec()
            } else {
                let numbers = chunk.iter().map(|r| r.0.parse::<i64>().unwrap());
                vec![Arc::new(Int64Array::from_iter(
                    numbers.map(|n| (n != 0).then_some(n)),
                ))]
            };
            let order = batch.columns()[1..].to_vec();
            tops.add(batch, &groups, &order).unwrap();
        }
        for batch in tops.finish(&numbered, true, 100).unwrap() {
            assert!(batch.num_rows() <= 100);
            let (g, v, r) = (
                batch.column(0).as_string::<i32>(),
                batch.column(1).as_primitive::<Int64Type>(),
                batch.column(2).as_primitive::<UInt64Type>(),
            );
            for i in 0..g.len() {
                let value = (!v.is_null(i)).then(|| v.value(i));
                out.push((g.value(i).to_string(), value, r.value(i)));
            }
        }
        out.sort();
        out
    }

    /// Every ranking and k, short and long group names, over 3,000 rows in batches of 37:
    /// what sorting each group keeps.
    #[test]
    fn tops_keep_what_sorting_keeps() {
        for ranking in [Ranking::RowNumber, Ranking::Rank, Ranking::DenseRank] {
            for k in [1, 2, 3] {
                for long_groups in [false, true] {
                    let expected = ranked(ranking, k, long_groups, 0, true);
                    assert!(!expected.is_empty());
                    // Rows entering their lists at once; waiting by blocks of 16 or 1 groups
                    // (50 rows or as many as there are groups at most, the batches compacted
                    // between flushes).
                    for block in [usize::MAX, 16, 1] {
                        let got = ranked(ranking, k, long_groups, block, false);
                        let what = format!("{ranking:?} <= {k}, long {long_groups}, block {block}");
                        assert_eq!(got, expected, "{what}");
                    }
                }
            }
        }
    }
}
