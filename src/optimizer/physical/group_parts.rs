//! Top-N per group past `BLOCK` groups when the PARTITION BY and the ORDER BY are one
//! fixed-width column each: every row (its group's bits, its order bits, where it is) waits
//! in one of `PARTS` parts chosen by a hash of its group, and at a flush each part's rows
//! enter the part's own group table, lists and bounds together. A part's state (a few
//! thousand groups when there are a million) stays in cache while its rows enter, where with
//! one table of all groups numbering a row, reading its bound and entering its list each
//! missed the cache. Here a row's bound is also its group's latest, not the last flush's,
//! and its key is made from its bits, only once it is within that bound.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::common::internal_err;
use datafusion::error::Result;

use super::group_numbers::{GroupNumbers, Slots, mix};
use super::group_tops::{Entry, Key, List, enter, tighten};
use super::order_bits::OrderBits;
use super::top_per_group::Ranking;
use crate::prefetch::prefetch_all;

/// 256 parts: at a million groups per input partition a part's groups, lists and bounds
/// (about 600 KB) stay in one core's L2 cache while its rows enter.
const PART_BITS: u32 = 8;
const PARTS: usize = 1 << PART_BITS;
/// Flags in a waiting row's batch and row numbers (a batch has fewer than 2^31 rows, and
/// fewer batches than that are retained).
const NULL_GROUP: u32 = 1 << 31;
const NULL_ORDER: u32 = 1 << 31;

/// A row waiting for its part.
#[derive(Clone, Copy)]
struct Waiting {
    group: u64,
    order: u64,
    batch: u32,
    row: u32,
}

/// The groups of one part: their numbers, sorted lists and bounds.
#[derive(Default)]
struct Part {
    slots: Option<Slots>,
    lists: Vec<List>,
    bounds: Vec<u64>,
    waiting: Vec<Waiting>,
}

impl Part {
    /// Ask for every line of the part's groups, lists and bounds ahead of its rows: read in
    /// order they come at the memory's full speed, where each group would otherwise cost a
    /// miss at its first row (a group has only a few rows per flush).
    fn fetch(&self) {
        if let Some(slots) = &self.slots {
            slots.fetch();
        }
        prefetch_all(&self.lists);
        prefetch_all(&self.bounds);
    }

    /// The number of a group in this part, numbered now if new (its list empty, no bound).
    #[inline(always)]
    fn number(&mut self, bits: Option<u64>) -> usize {
        let slots = self.slots.get_or_insert_with(|| Slots::new(16));
        let number = match bits {
            Some(bits) => slots.number_of(bits),
            None => slots.null_number(),
        };
        if number == self.lists.len() {
            self.lists.push(List::new());
            self.bounds.push(u64::MAX);
        }
        number
    }
}

pub struct Parts {
    parts: Vec<Part>,
    group_bits: OrderBits,
    order_bits: OrderBits,
    /// The row-format key of a NULL order value.
    null_key: Key,
    /// Rows waiting in all parts.
    pub waiting: usize,
    /// Scratch: a batch's group and order bits.
    groups: Vec<u64>,
    orders: Vec<u64>,
}

impl Parts {
    /// The groups numbered in `numbers`, with their `lists` and `bounds` (by number; a group
    /// past the end of `bounds` has none), each moved to its part.
    pub fn new(
        numbers: &GroupNumbers,
        lists: Vec<List>,
        bounds: &[u64],
        order_bits: OrderBits,
        null_key: Key,
    ) -> Parts {
        let mut parts: Vec<Part> = (0..PARTS).map(|_| Part::default()).collect();
        let mut places = vec![(0, 0); lists.len()];
        for (bits, number) in numbers.groups() {
            let part = bits.map_or(0, part_of);
            places[number] = (part, parts[part].number(bits));
        }
        for (number, list) in lists.into_iter().enumerate() {
            let (part, at) = places[number];
            parts[part].lists[at] = list;
            parts[part].bounds[at] = bounds.get(number).copied().unwrap_or(u64::MAX);
        }
        Parts {
            parts,
            group_bits: numbers.bits(),
            order_bits,
            null_key,
            waiting: 0,
            groups: vec![],
            orders: vec![],
        }
    }

    /// The rows of a batch retained as number `batch`, whose PARTITION BY and ORDER BY
    /// values are `group` and `order`, put in their parts to wait.
    pub fn add(&mut self, group: &ArrayRef, order: &ArrayRef, batch: u32) -> Result<()> {
        if !self.group_bits.all_values(group, &mut self.groups)
            || !self.order_bits.all_values(order, &mut self.orders)
        {
            return internal_err!("top-N per group: a column changed type between batches");
        }
        let (group_nulls, order_nulls) = (group.logical_nulls(), order.logical_nulls());
        let null = |nulls: &Option<NullBuffer>, row, flag| match nulls {
            Some(n) if n.is_null(row) => flag,
            _ => 0,
        };
        for (row, (&g, &o)) in self.groups.iter().zip(&self.orders).enumerate() {
            let null_group = null(&group_nulls, row, NULL_GROUP);
            let part = if null_group == 0 { part_of(g) } else { 0 };
            self.parts[part].waiting.push(Waiting {
                group: g,
                order: o,
                batch: batch | null_group,
                row: row as u32 | null(&order_nulls, row, NULL_ORDER),
            });
        }
        self.waiting += self.groups.len();
        Ok(())
    }

    /// The waiting rows enter their groups' lists, one part at a time; `live` counts the
    /// rows kept.
    pub fn flush(&mut self, ranking: Ranking, k: usize, live: &mut usize) {
        let bits = self.order_bits;
        for part in &mut self.parts {
            part.fetch();
            let mut waiting = std::mem::take(&mut part.waiting);
            for w in waiting.drain(..) {
                let group = part.number((w.batch & NULL_GROUP == 0).then_some(w.group));
                let null_order = w.row & NULL_ORDER != 0;
                // A NULL order value has no bits; its list decides.
                if !null_order && w.order > part.bounds[group] {
                    continue;
                }
                let key = if null_order {
                    self.null_key.clone()
                } else {
                    let (bytes, len) = bits.key(w.order);
                    Key::new(&bytes[..len])
                };
                let entry = Entry {
                    key,
                    batch: w.batch & !NULL_GROUP,
                    row: w.row & !NULL_ORDER,
                };
                let list = &mut part.lists[group];
                if enter(list, entry, ranking, k, live) {
                    tighten(&mut part.bounds, group, list, Some(bits), ranking, k);
                }
            }
            // The buffer is kept for the part's next rows.
            part.waiting = waiting;
        }
        self.waiting = 0;
    }

    /// Every group's list.
    pub fn lists_mut(&mut self) -> impl Iterator<Item = &mut List> {
        self.parts.iter_mut().flat_map(|p| p.lists.iter_mut())
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        let parts: usize = self
            .parts
            .iter()
            .map(|p| {
                p.slots.as_ref().map_or(0, Slots::size)
                    + p.lists.capacity() * size_of::<List>()
                    + p.bounds.capacity() * size_of::<u64>()
                    + p.waiting.capacity() * size_of::<Waiting>()
            })
            .sum();
        parts + (self.groups.capacity() + self.orders.capacity()) * size_of::<u64>()
    }
}

/// The part of a group: the top bits of its hash (the low bits place it in the part's table).
#[inline(always)]
fn part_of(bits: u64) -> usize {
    (mix(bits) >> (64 - PART_BITS)) as usize
}
