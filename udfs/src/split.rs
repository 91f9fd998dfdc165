//! Deterministic train/test membership: a fixed 64-bit hash of a key and a seed mapped to
//! [0, 1). The ML split and the `hash_split` SQL function use this one definition.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::cast::{as_float64_array, as_int64_array};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::math::SECTION;

/// FNV-1a over the bytes, then SplitMix64's finaliser mixed with the seed: stable across
/// platforms, Rust versions and runs (std's hasher promises none of that).
pub fn unit_hash(key: &[u8], seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// True when the key falls in the held-out fraction.
pub fn held_out(key: &[u8], seed: u64, fraction: f64) -> bool {
    unit_hash(key, seed) < fraction
}

/// The key bytes of every row: each column's display text (NULL as "\0NULL", which no
/// value displays as), followed by the unit separator 0x1f so that ("ab", "c") and
/// ("a", "bc") differ. Changing this re-splits every model trained since, so don't.
pub fn row_keys(columns: &[ArrayRef]) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::with_capacity(columns.first().map_or(0, |c| c.len()));
    for_each_row_key(columns, |_, key| {
        keys.push(key.to_vec());
        Ok(())
    })?;
    Ok(keys)
}

/// [`row_keys`] one row at a time through one buffer: `hash_split` runs per row of every
/// query that uses it, where a heap allocation per row would dominate the hash.
fn for_each_row_key(
    columns: &[ArrayRef],
    mut each: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let rows = columns.first().map_or(0, |c| c.len());
    if let Some(c) = columns.iter().find(|c| c.len() != rows) {
        return exec_err!(
            "split key columns differ in length ({} and {})",
            rows,
            c.len()
        );
    }
    let options = FormatOptions::default().with_null("\u{0}NULL");
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut key = String::new();
    for row in 0..rows {
        key.clear();
        for f in &formatters {
            // Display, not ValueFormatter::write: a value that fails to format must give
            // the same text ("ERROR: …") it always has, or existing splits would move.
            if write!(key, "{}", f.value(row)).is_err() {
                return exec_err!("split key: row {row} cannot be formatted");
            }
            key.push('\u{1f}');
        }
        each(row, key.as_bytes())?;
    }
    Ok(())
}

/// Key types `hash_split` takes as they are. Integers and strings come first because
/// DataFusion picks the first signature an argument coerces to and anything coerces to
/// text: an Int16 key must widen to Int32 (same text) before it could become Utf8, and no
/// key may reach Float64 by coercion (5 would hash as "5.0"). Text coercion is harmless:
/// casting to Utf8 prints with the same formatter the keys are built with.
const KEY_TYPES: [DataType; 9] = [
    DataType::Int32,
    DataType::Int64,
    DataType::UInt64,
    DataType::Boolean,
    DataType::Utf8,
    DataType::LargeUtf8,
    DataType::Utf8View,
    DataType::Date32,
    DataType::Float64,
];

/// `hash_split(key, seed, fraction)`: the ML split's held-out test as a predicate.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HashSplit {
    signature: Signature,
}

impl ScalarUDFImpl for HashSplit {
    fn name(&self) -> &str {
        "hash_split"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [key, seed, fraction] = arrays.as_slice() else {
            return exec_err!("hash_split takes 3 arguments, got {}", arrays.len());
        };
        let seeds = as_int64_array(seed)?;
        let fractions = as_float64_array(fraction)?;
        let mut out = BooleanBuilder::with_capacity(key.len());
        for_each_row_key(std::slice::from_ref(key), |row, key| {
            if seeds.is_null(row) || fractions.is_null(row) {
                out.append_null();
                return Ok(());
            }
            let seed = seeds.value(row);
            if seed < 0 {
                return exec_err!("hash_split: seed must not be negative, found {seed}");
            }
            let fraction = fractions.value(row);
            if !(0.0..=1.0).contains(&fraction) {
                return exec_err!("hash_split: fraction must be between 0 and 1, found {fraction}");
            }
            out.append_value(held_out(key, seed as u64, fraction));
            Ok(())
        })?;
        let out: ArrayRef = Arc::new(out.finish());
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&HASH_SPLIT_DOC)
    }
}

static HASH_SPLIT_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "True when the row is in the held-out fraction of a deterministic hash split: the \
         same rows TRAIN MODEL … WITH (split = fraction, seed = seed, split_key = key) holds \
         out, provided the key column has the same type in both queries. A NULL key is \
         hashed like any other value (as the ML split does); a NULL seed or fraction gives \
         NULL.",
        "hash_split(key, seed, fraction)",
    )
    .with_argument(
        "key",
        "the split key: an integer, text, boolean, date or double column",
    )
    .with_argument("seed", "a whole number ≥ 0; the same seed gives the same split")
    .with_argument("fraction", "the held-out share, between 0 and 1")
    .with_sql_example(
        "SELECT count(*) FROM customers WHERE hash_split(customer_id, 42, 0.3); -- the 30% test rows",
    )
    .build()
});

pub fn functions() -> Vec<ScalarUDF> {
    let signatures = KEY_TYPES
        .iter()
        .map(|key| TypeSignature::Exact(vec![key.clone(), DataType::Int64, DataType::Float64]))
        .collect();
    vec![ScalarUDF::from(HashSplit {
        signature: Signature::one_of(signatures, Volatility::Immutable),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    #[test]
    fn stable_and_roughly_uniform() {
        assert_eq!(unit_hash(b"customer-42", 7), unit_hash(b"customer-42", 7));
        assert_ne!(unit_hash(b"customer-42", 7), unit_hash(b"customer-42", 8));
        let held = (0..100_000)
            .filter(|i| held_out(i.to_string().as_bytes(), 1, 0.3))
            .count();
        assert!((29_000..31_000).contains(&held), "{held}");
    }

    #[test]
    fn row_keys_are_text_with_separators_and_a_null_marker() -> Result<()> {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("ab"), Some("")]));
        let keys = row_keys(&[ids, names])?;
        assert_eq!(keys[0], b"7\x1fab\x1f");
        assert_eq!(keys[1], b"\0NULL\x1f\x1f");
        assert!(row_keys(&[]).map(|k| k.is_empty())?);
        Ok(())
    }

    fn call(key: ArrayRef, seed: Option<i64>, fraction: Option<f64>) -> Result<BooleanArray> {
        let n = key.len();
        let args = vec![
            ColumnarValue::Array(key),
            ColumnarValue::Scalar(ScalarValue::Int64(seed)),
            ColumnarValue::Scalar(ScalarValue::Float64(fraction)),
        ];
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        let out = functions()[0].invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        let ColumnarValue::Array(out) = out else {
            panic!("an array key gives an array")
        };
        Ok(out
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("boolean result")
            .clone())
    }

    #[test]
    fn hash_split_agrees_with_the_ml_split() -> Result<()> {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter((0..1000).map(Some).chain([None])));
        let keys = row_keys(std::slice::from_ref(&ids))?;
        let held = call(ids, Some(42), Some(0.3))?;
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(held.value(row), held_out(key, 42, 0.3), "row {row}");
        }
        assert_eq!(held.null_count(), 0);
        Ok(())
    }

    #[test]
    fn hash_split_nulls_and_errors() -> Result<()> {
        let ids: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 2.5]));
        assert_eq!(call(Arc::clone(&ids), None, Some(0.5))?.null_count(), 2);
        assert_eq!(call(Arc::clone(&ids), Some(1), None)?.null_count(), 2);
        assert!(
            call(Arc::clone(&ids), Some(1), Some(1.0))?
                .values()
                .count_set_bits()
                == 2
        );
        let err = call(Arc::clone(&ids), Some(1), Some(1.5)).unwrap_err();
        assert!(err.to_string().contains("fraction"), "{err}");
        let err = call(ids, Some(-1), Some(0.5)).unwrap_err();
        assert!(err.to_string().contains("seed"), "{err}");
        Ok(())
    }
}
