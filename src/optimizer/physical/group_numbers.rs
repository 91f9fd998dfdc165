//! Group numbers for `TopPerGroupExec` when it partitions by one fixed-width column: an
//! open-addressing table of (value bits, number) slots, probed with the slots of rows a few
//! ahead already asked for. DataFusion's `GroupValuesPrimitive` keeps the values apart from
//! its hash table, so past a few hundred thousand groups each row cost two or three cache
//! misses one after the other (a quarter of the 1M-group query); here it is one, overlapped.

use datafusion::arrow::array::{Array, ArrayRef};

use super::order_bits::OrderBits;
use crate::prefetch::prefetch;

/// Slots probed ahead of the row being numbered.
const AHEAD: usize = 16;

pub struct GroupNumbers {
    bits: OrderBits,
    slots: Slots,
    /// Scratch: a batch's bits and their slots' starting positions.
    values: Vec<u64>,
    starts: Vec<usize>,
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
        self.slots.reserve(rows);
        self.bits.all_values(column, &mut self.values);
        self.starts.clear();
        self.starts
            .extend(self.values.iter().map(|&v| self.slots.start(v)));
        out.clear();
        let nulls = column.logical_nulls();
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

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};

    use super::GroupNumbers;

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
            let numbers: &mut GroupNumbers =
                groups.get_or_insert_with(|| GroupNumbers::new(&column).unwrap());
            let mut out = vec![];
            numbers.intern(&column, &mut out);
            for (v, n) in values.iter().zip(&out) {
                let next = expected.len();
                assert_eq!(*expected.entry(*v).or_insert(next), *n, "{v:?}");
            }
            assert_eq!(numbers.len(), expected.len());
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
}
