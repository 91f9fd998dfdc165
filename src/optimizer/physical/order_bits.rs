//! One fixed-width ORDER BY column's values as `u64`s that order as their `arrow::row` keys
//! do, so `TopPerGroupExec` can reject a row that cannot rank ≤ k in its group with one
//! integer comparison, before any row-format key is made for it (making keys for every row
//! was a sixth of the 1,000-group query; most rows are rejected).

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;

/// How a column's values become their row-format bytes (see `arrow_row::fixed`): signed
/// integers with the sign bit flipped, floats by their total order, all big-endian, every
/// byte inverted when descending. A valid value's key is a 1 byte and those bytes.
#[derive(Debug, Clone, Copy)]
pub struct OrderBits {
    width: usize,
    kind: Kind,
    descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Signed,
    Unsigned,
    Float,
}

impl OrderBits {
    /// For a sort on `data_type` with `options`; None where the type is not one of these.
    pub fn new(data_type: &DataType, options: SortOptions) -> Option<OrderBits> {
        use DataType::*;
        let (width, kind) = match data_type {
            Int8 => (1, Kind::Signed),
            Int16 => (2, Kind::Signed),
            Int32 | Date32 | Time32(_) => (4, Kind::Signed),
            Int64 | Date64 | Time64(_) | Timestamp(..) | Duration(_) => (8, Kind::Signed),
            UInt8 => (1, Kind::Unsigned),
            UInt16 => (2, Kind::Unsigned),
            UInt32 => (4, Kind::Unsigned),
            UInt64 => (8, Kind::Unsigned),
            Float32 => (4, Kind::Float),
            Float64 => (8, Kind::Float),
            _ => return None,
        };
        Some(OrderBits {
            width,
            kind,
            descending: options.descending,
        })
    }

    /// Every value of `array` as its bits into `out`; false (and `out` unspecified) when the
    /// array has NULLs, whose keys order by the NULL placement instead.
    pub fn values(&self, array: &ArrayRef, out: &mut Vec<u64>) -> bool {
        array.null_count() == 0 && self.all_values(array, out)
    }

    /// Every slot of `array` as bits into `out`, NULL or not (a NULL's bits are whatever its
    /// slot holds); false if `array` is not of this type's layout.
    pub fn all_values(&self, array: &ArrayRef, out: &mut Vec<u64>) -> bool {
        let data = array.to_data();
        if data.buffers().is_empty() {
            return false;
        }
        let invert = if self.descending { self.mask() } else { 0 };
        let buffer = data.buffers()[0].clone();
        let (offset, len) = (data.offset(), data.len());
        out.clear();
        // Each arm is the row format's encoding as one big-endian integer.
        macro_rules! fill {
            ($t:ty, $f:expr) => {{
                let values = ScalarBuffer::<$t>::new(buffer, offset, len);
                out.extend(values.iter().map(|&v| $f(v) ^ invert));
            }};
        }
        match (self.kind, self.width) {
            (Kind::Signed, 1) => fill!(i8, |v: i8| u64::from(v as u8 ^ 0x80)),
            (Kind::Signed, 2) => fill!(i16, |v: i16| u64::from(v as u16 ^ 0x8000)),
            (Kind::Signed, 4) => fill!(i32, |v: i32| u64::from(v as u32 ^ (1 << 31))),
            (Kind::Signed, _) => fill!(i64, |v: i64| v as u64 ^ (1 << 63)),
            (Kind::Unsigned, 1) => fill!(u8, u64::from),
            (Kind::Unsigned, 2) => fill!(u16, u64::from),
            (Kind::Unsigned, 4) => fill!(u32, u64::from),
            (Kind::Unsigned, _) => fill!(u64, |v: u64| v),
            (Kind::Float, 4) => fill!(f32, |v: f32| {
                let s = v.to_bits() as i32;
                let total = s ^ (((s >> 31) as u32) >> 1) as i32;
                u64::from(total as u32 ^ (1 << 31))
            }),
            (Kind::Float, _) => fill!(f64, |v: f64| {
                let s = v.to_bits() as i64;
                let total = s ^ (((s >> 63) as u64) >> 1) as i64;
                total as u64 ^ (1 << 63)
            }),
        }
        true
    }

    /// The bits of a row-format key of this column; None for a NULL's key.
    pub fn of_key(&self, key: &[u8]) -> Option<u64> {
        match key.split_first() {
            Some((1, bytes)) if bytes.len() == self.width => {
                Some(bytes.iter().fold(0, |w, b| w << 8 | u64::from(*b)))
            }
            _ => None,
        }
    }

    /// The row-format key of a valid value with these bits (`of_key` undone): a 1 byte, then
    /// the value's bytes, big-endian; the first `1 + width` bytes of the array.
    pub fn key(&self, bits: u64) -> ([u8; 9], usize) {
        let mut key = [0u8; 9];
        key[0] = 1;
        key[1..=self.width].copy_from_slice(&bits.to_be_bytes()[8 - self.width..]);
        (key, 1 + self.width)
    }

    fn mask(&self) -> u64 {
        u64::MAX >> (64 - 8 * self.width)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Date32Array, Float32Array, Float64Array, Int8Array, Int16Array, Int64Array,
        TimestampMicrosecondArray, UInt16Array, UInt64Array,
    };
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::row::{RowConverter, SortField};

    use super::OrderBits;

    /// Every value's bits are its row-format key's, ascending and descending, and compare as
    /// the keys do; a NULL's key has none, and a column with NULLs gives no bits.
    #[test]
    fn bits_are_the_row_keys() {
        let f64s = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![i8::MIN, -1, 0, 1, i8::MAX])),
            Arc::new(Int16Array::from(vec![i16::MIN, -300, 0, 300, i16::MAX])),
            Arc::new(Date32Array::from(vec![i32::MIN, -1, 0, 19_000, i32::MAX])),
            Arc::new(Int64Array::from(vec![i64::MIN, -1, 0, 1 << 40, i64::MAX])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                -5,
                0,
                1_700_000_000_000_000,
            ])),
            Arc::new(UInt16Array::from(vec![0, 1, 255, 256, u16::MAX])),
            Arc::new(UInt64Array::from(vec![0, 1, u64::MAX / 2 + 1, u64::MAX])),
            Arc::new(Float32Array::from(
                f64s.iter().map(|v| *v as f32).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(f64s.to_vec())),
            // A slice: the values start past the buffer's first.
            Arc::new(Int64Array::from(vec![7, -7, 3, 9]).slice(1, 3)),
        ];
        for column in &columns {
            for descending in [false, true] {
                let options = SortOptions::new(descending, false);
                let bits = OrderBits::new(column.data_type(), options).unwrap();
                let field = SortField::new_with_options(column.data_type().clone(), options);
                let rows = RowConverter::new(vec![field])
                    .unwrap()
                    .convert_columns(std::slice::from_ref(column))
                    .unwrap();
                let mut values = vec![];
                assert!(bits.values(column, &mut values), "{column:?}");
                assert_eq!(values.len(), column.len());
                for (i, v) in values.iter().enumerate() {
                    assert_eq!(bits.of_key(rows.row(i).data()), Some(*v), "{column:?} {i}");
                    let (key, len) = bits.key(*v);
                    assert_eq!(&key[..len], rows.row(i).data(), "{column:?} {i}");
                    for (j, w) in values.iter().enumerate() {
                        assert_eq!(v.cmp(w), rows.row(i).cmp(&rows.row(j)), "{column:?}");
                    }
                }
            }
        }
        let with_null: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let options = SortOptions::new(true, true);
        let bits = OrderBits::new(with_null.data_type(), options).unwrap();
        assert!(!bits.values(&with_null, &mut vec![]));
        let field = SortField::new_with_options(with_null.data_type().clone(), options);
        let rows = RowConverter::new(vec![field])
            .unwrap()
            .convert_columns(&[with_null])
            .unwrap();
        assert_eq!(bits.of_key(rows.row(1).data()), None);
    }
}
