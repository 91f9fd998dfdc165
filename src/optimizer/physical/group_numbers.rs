//! Group numbers for `TopPerGroupExec` when it partitions by one fixed-width column: an
//! open-addressing table of (value bits, number) slots, probed with the slots of rows a few
//! ahead already asked for. DataFusion's `GroupValuesPrimitive` keeps the values apart from
//! its hash table, so past a few hundred thousand groups each row cost two or three cache
//! misses one after the other (a quarter of the 1M-group query); here it is one, overlapped.
//! Values within a span of 16,384 (a thousand groups numbered 0 to 999) skip the hash: an
//! array indexed by value holds their numbers, so a row costs one load and a branch that
//! always goes the same way, not a probe whose length varies.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::buffer::NullBuffer;

use super::order_bits::OrderBits;
use crate::prefetch::prefetch;

/// Slots probed ahead of the row being numbered.
const AHEAD: usize = 16;

/// The widest span of values numbered through an array (64 KiB of numbers, in L2).
const DENSE_SPAN: u64 = 1 << 14;

pub struct GroupNumbers {
    bits: OrderBits,
    slots: Slots,
    /// Scratch: a batch's bits and their slots' starting positions.
    values: Vec<u64>,
    starts: Vec<usize>,
    /// Numbers by value while every value seen lies within `DENSE_SPAN` (None once one
    /// does not: from then on the slots alone).
    dense: Option<Dense>,
}

/// The numbers (+ 1; 0 for a value not seen) of the values `base..base + numbers.len()`;
/// the slots hold the same values and numbers.
#[derive(Default)]
struct Dense {
    base: u64,
    numbers: Vec<u32>,
}

impl Dense {
    /// Room for every value in `lo..=hi` as well as those held; false if the span would
    /// pass `DENSE_SPAN`.
    fn cover(&mut self, lo: u64, hi: u64) -> bool {
        let (lo, hi) = match self.numbers.len() as u64 {
            0 => (lo, hi),
            len => (lo.min(self.base), hi.max(self.base + len - 1)),
        };
        if hi - lo >= DENSE_SPAN {
            return false;
        }
        let span = (hi - lo + 1) as usize;
        if lo != self.base || span != self.numbers.len() {
            let mut numbers = vec![0; span];
            // Those held move up by as much as the span grew downwards (none held: nothing).
            let at = if self.numbers.is_empty() {
                0
            } else {
                (self.base - lo) as usize
            };
            numbers[at..at + self.numbers.len()].copy_from_slice(&self.numbers);
            *self = Dense { base: lo, numbers };
        }
        true
    }
}

impl GroupNumbers {
    /// For a column of `column`'s type; None where the type is not fixed-width.
    pub fn new(column: &ArrayRef) -> Option<GroupNumbers> {
        let bits = OrderBits::new(column.data_type(), Default::default())?;
        Some(GroupNumbers {
            bits,
            slots: Slots::new(1024),
            values: vec![],
            starts: vec![],
            dense: Some(Dense::default()),
        })
    }

    /// Groups numbered so far.
    pub fn len(&self) -> usize {
        self.slots.groups
    }

    /// How the column's values become the bits numbered.
    pub fn bits(&self) -> OrderBits {
        self.bits
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.slots.size()
            + self.values.capacity() * size_of::<u64>()
            + self.starts.capacity() * size_of::<usize>()
            + self
                .dense
                .as_ref()
                .map_or(0, |d| d.numbers.capacity() * size_of::<u32>())
    }

    /// Every group: its value's bits (None for the NULL group) and its number.
    pub fn groups(&self) -> impl Iterator<Item = (Option<u64>, usize)> + '_ {
        let null = self.slots.null.map(|n| (None, n));
        self.slots.entries().map(|(b, n)| (Some(b), n)).chain(null)
    }

    /// The group number of every row of `column` into `out` (replaced), new values numbered
    /// in order of first appearance.
    pub fn intern(&mut self, column: &ArrayRef, out: &mut Vec<usize>) {
        let rows = column.len();
        self.bits.all_values(column, &mut self.values);
        out.clear();
        let nulls = column.logical_nulls();
        if self.intern_dense(nulls.as_ref(), out) {
            return;
        }
        self.slots.reserve(rows);
        self.starts.clear();
        self.starts
            .extend(self.values.iter().map(|&v| self.slots.start(v)));
        for row in 0..rows {
            if let Some(&ahead) = self.starts.get(row + AHEAD) {
                prefetch(&self.slots.slots, ahead);
            }
            out.push(if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                self.slots.null_number()
            } else {
                self.slots.number(self.values[row], self.starts[row])
            });
        }
    }

    /// The numbers of the batch's `values` through the array, if they and every value before
    /// them lie within its span (false, and nothing in `out`, once they do not).
    fn intern_dense(&mut self, nulls: Option<&NullBuffer>, out: &mut Vec<usize>) -> bool {
        let Some(dense) = &mut self.dense else {
            return false;
        };
        let valid = |row: &usize| nulls.is_none_or(|n| n.is_valid(*row));
        let (lo, hi) = (0..self.values.len())
            .filter(valid)
            .map(|row| self.values[row])
            .fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo <= hi && !dense.cover(lo, hi) {
            self.dense = None;
            return false;
        }
        // Locals, so the loop keeps the array's base and bounds in registers.
        let slots = &mut self.slots;
        let (base, numbers) = (dense.base, dense.numbers.as_mut_slice());
        out.extend(self.values.iter().enumerate().map(move |(row, &value)| {
            if !valid(&row) {
                return slots.null_number();
            }
            let at = &mut numbers[(value - base) as usize];
            match *at {
                0 => {
                    let number = slots.number_of(value);
                    *at = number as u32 + 1;
                    number
                }
                known => known as usize - 1,
            }
        }));
        true
    }
}

/// An open-addressing table from values' bits to their numbers, in order of first
/// appearance, NULL (numbered apart) among them.
pub struct Slots {
    /// (bits, number + 1); 0 marks an empty slot. A power of two long, at most half full.
    slots: Vec<(u64, u32)>,
    groups: usize,
    /// The number of the NULL group, once seen.
    null: Option<usize>,
}

impl Slots {
    pub fn new(slots: usize) -> Slots {
        Slots {
            slots: vec![(0, 0); slots.next_power_of_two()],
            groups: 0,
            null: None,
        }
    }

    /// Room for `more` new values, at most half full.
    pub fn reserve(&mut self, more: usize) {
        if (self.groups + more) * 2 > self.slots.len() {
            self.grow((self.groups + more) * 2);
        }
    }

    /// Where a value's probe starts.
    #[inline(always)]
    pub fn start(&self, value: u64) -> usize {
        mix(value) as usize & (self.slots.len() - 1)
    }

    /// The number of `value`, whose probe starts at `at` (numbered now if new; room for it
    /// reserved).
    #[inline(always)]
    pub fn number(&mut self, value: u64, mut at: usize) -> usize {
        let mask = self.slots.len() - 1;
        loop {
            let (bits, number) = self.slots[at];
            if number == 0 {
                self.slots[at] = (value, self.groups as u32 + 1);
                self.groups += 1;
                return self.groups - 1;
            }
            if bits == value {
                return number as usize - 1;
            }
            at = (at + 1) & mask;
        }
    }

    /// The number of the NULL group, numbered now if new.
    #[inline(always)]
    pub fn null_number(&mut self) -> usize {
        *self.null.get_or_insert_with(|| {
            self.groups += 1;
            self.groups - 1
        })
    }

    /// The number of `value`, the table grown first if it may need to be.
    #[inline(always)]
    pub fn number_of(&mut self, value: u64) -> usize {
        self.reserve(1);
        self.number(value, self.start(value))
    }

    /// Ask for every cache line of the table.
    pub fn fetch(&self) {
        crate::prefetch::prefetch_all(&self.slots);
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.slots.capacity() * size_of::<(u64, u32)>()
    }

    /// Every value's bits and number.
    pub fn entries(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        let used = self.slots.iter().filter(|s| s.1 != 0);
        used.map(|&(bits, number)| (bits, number as usize - 1))
    }

    /// Rehash into at least `want` slots.
    fn grow(&mut self, want: usize) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![(0, 0); want.next_power_of_two()];
        let mask = self.slots.len() - 1;
        for (bits, number) in old.into_iter().filter(|s| s.1 != 0) {
            let mut at = mix(bits) as usize & mask;
            while self.slots[at].1 != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = (bits, number);
        }
    }
}

/// A 64-bit finaliser (MurmurHash3's): every input bit moves every output bit, so values
/// differing only in high bits (timestamps, dates) spread over the slots too.
#[inline(always)]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ x >> 33
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};

    use super::GroupNumbers;

    /// `column` (holding `values`) interned into `numbers` (made on the first batch), each
    /// row's number checked against `expected`, the numbers in order of first appearance.
    fn interned_in_order<'a, T: Copy + Eq + std::hash::Hash + std::fmt::Debug>(
        numbers: &'a mut Option<GroupNumbers>,
        column: &ArrayRef,
        values: &[Option<T>],
        expected: &mut HashMap<Option<T>, usize>,
    ) -> &'a mut GroupNumbers {
        let groups = numbers.get_or_insert_with(|| GroupNumbers::new(column).unwrap());
        let mut out = vec![];
        groups.intern(column, &mut out);
        for (v, n) in values.iter().zip(&out) {
            let next = expected.len();
            assert_eq!(*expected.entry(*v).or_insert(next), *n, "{v:?}");
        }
        assert_eq!(groups.len(), expected.len());
        groups
    }

    /// Numbers in order of first appearance across batches, NULL its own group, -0.0 and 0.0
    /// apart (as the window's sort tells them apart), through several rehashes.
    #[test]
    fn numbers_follow_first_appearance() {
        let mut expected: HashMap<Option<i64>, usize> = HashMap::new();
        let mut groups = None;
        let mut state = 3u64;
        for batch in 0..20 {
            let values: Vec<Option<i64>> = (0..500)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let v = ((state >> 40) as i64 % (300 * (batch + 1))) << 32;
                    (v % 7 != 0 || batch % 2 == 0).then_some(v - (1 << 40))
                })
                .collect();
            let column: ArrayRef = Arc::new(Int64Array::from(values.clone()));
            interned_in_order(&mut groups, &column, &values, &mut expected);
        }
        let floats: ArrayRef =
            Arc::new(Float64Array::from(vec![0.0, -0.0, 0.0, f64::NAN, f64::NAN]));
        let mut numbers = GroupNumbers::new(&floats).unwrap();
        let mut out = vec![];
        numbers.intern(&floats, &mut out);
        assert_eq!(out, vec![0, 1, 0, 2, 2]);
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        assert!(GroupNumbers::new(&strings).is_none());
    }

    /// Values within the array's span, NULLs among them, numbered through it as they spread
    /// up and down (the array rebuilt around them), then past its span (the slots alone
    /// from there, the numbers carried on).
    #[test]
    fn dense_numbers_follow_first_appearance() {
        let mut expected: HashMap<Option<i32>, usize> = HashMap::new();
        let mut numbers = None;
        let mut state = 11u64;
        for batch in 0..12i32 {
            // Batches 0-3 around 0, 4-7 spreading to -4,000 and +8,000, then up to 40,000.
            let width = match batch {
                0..4 => 50,
                4..8 => 4_000 * (batch - 3),
                _ => 40_000,
            };
            let values: Vec<Option<i32>> = (0..700)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let v = (state >> 33) as i32 % width - width / 4;
                    (v % 13 != 0).then_some(v)
                })
                .collect();
            let column: ArrayRef = Arc::new(Int32Array::from(values.clone()));
            let groups = interned_in_order(&mut numbers, &column, &values, &mut expected);
            assert_eq!(groups.dense.is_some(), batch < 8, "batch {batch}");
            let mut listed: Vec<usize> = groups.groups().map(|(_, n)| n).collect();
            listed.sort_unstable();
            assert_eq!(listed, (0..expected.len()).collect::<Vec<_>>());
        }
    }
}
