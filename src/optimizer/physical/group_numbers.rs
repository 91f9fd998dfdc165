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
    /// (bits, number + 1); 0 marks an empty slot. A power of two long, at most half full.
    slots: Vec<(u64, u32)>,
    groups: usize,
    /// The number of the NULL group, once seen.
    null: Option<usize>,
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
            slots: vec![(0, 0); 1024],
            groups: 0,
            null: None,
            values: vec![],
            starts: vec![],
        })
    }

    /// Groups numbered so far.
    pub fn len(&self) -> usize {
        self.groups
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.slots.capacity() * size_of::<(u64, u32)>()
            + self.values.capacity() * size_of::<u64>()
            + self.starts.capacity() * size_of::<usize>()
    }

    /// The group number of every row of `column` into `out` (replaced), new values numbered
    /// in order of first appearance.
    pub fn intern(&mut self, column: &ArrayRef, out: &mut Vec<usize>) {
        let rows = column.len();
        if (self.groups + rows) * 2 > self.slots.len() {
            self.grow((self.groups + rows) * 2);
        }
        self.bits.all_values(column, &mut self.values);
        let mask = self.slots.len() - 1;
        self.starts.clear();
        self.starts
            .extend(self.values.iter().map(|&v| mix(v) as usize & mask));
        out.clear();
        let nulls = column.logical_nulls();
        for row in 0..rows {
            if let Some(&ahead) = self.starts.get(row + AHEAD) {
                prefetch(&self.slots, ahead);
            }
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                let next = self.groups;
                let number = *self.null.get_or_insert(next);
                self.groups += usize::from(number == next);
                out.push(number);
                continue;
            }
            let value = self.values[row];
            let mut at = self.starts[row];
            let number = loop {
                let (bits, number) = self.slots[at];
                if number == 0 {
                    self.slots[at] = (value, self.groups as u32 + 1);
                    self.groups += 1;
                    break self.groups - 1;
                }
                if bits == value {
                    break number as usize - 1;
                }
                at = (at + 1) & mask;
            };
            out.push(number);
        }
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
fn mix(mut x: u64) -> u64 {
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
