//! Plumbing shared by the crate's aggregates: one `AggregateUDF` type described by data,
//! 0/1 label decoding, compensated sums, and list-shaped partial states.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, ListArray, PrimitiveArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{ScalarValue, exec_err, internal_err, not_impl_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Signature, TypeSignature,
    Volatility,
};

/// An aggregate described by data, so that each family file holds only its numerics.
#[derive(Debug)]
pub(crate) struct Aggregate {
    pub name: &'static str,
    pub signature: Signature,
    pub output: DataType,
    /// Name suffixes and types of the partial state, from the argument fields.
    pub state: fn(&[FieldRef]) -> Vec<(&'static str, DataType)>,
    pub accumulator: fn(&AccumulatorArgs) -> Result<Box<dyn Accumulator>>,
    pub doc: &'static LazyLock<Documentation>,
}

impl Aggregate {
    pub fn udaf(self) -> AggregateUDF {
        AggregateUDF::from(self)
    }
}

impl PartialEq for Aggregate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Aggregate {}
impl std::hash::Hash for Aggregate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl AggregateUDFImpl for Aggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // DataFusion leaves DISTINCT to the accumulator; ours would silently ignore it.
        if args.is_distinct {
            return not_impl_err!("{}(DISTINCT ...) is not supported", self.name);
        }
        (self.accumulator)(&args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok((self.state)(args.input_fields)
            .into_iter()
            .map(|(suffix, t)| Arc::new(Field::new(format!("{}_{suffix}", args.name), t, true)))
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.doc)
    }
}

/// Label types taken as they are; narrower integers widen to Int64, other numbers to
/// Float64. Boolean comes first so a NULL literal label picks it rather than a number.
pub(crate) const LABEL_TYPES: [DataType; 3] =
    [DataType::Boolean, DataType::Int64, DataType::Float64];

/// `(first, label)` for every first-argument type and label type.
pub(crate) fn with_label(first: &[DataType]) -> Signature {
    let exact = first
        .iter()
        .flat_map(|f| {
            LABEL_TYPES
                .iter()
                .map(|l| TypeSignature::Exact(vec![f.clone(), l.clone()]))
        })
        .collect();
    Signature::one_of(exact, Volatility::Immutable)
}

/// A row the aggregate ignores: its label, or another argument, is NULL.
pub(crate) const SKIP: u8 = 2;

/// Each row's label as 0 or 1 into `out` (reused between batches, so no allocation per
/// batch once warm), or [`SKIP`] where the label or any of `others` is NULL. Any other
/// label value is an error naming it: a 2 or a -1 means the query is wrong, and silently
/// counting it as either class would give a plausible-looking wrong answer.
pub(crate) fn decode_labels(
    name: &str,
    labels: &ArrayRef,
    others: &[&ArrayRef],
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    let n = labels.len();
    out.reserve(n);
    match labels.data_type() {
        DataType::Boolean => {
            let a = labels.as_boolean();
            out.extend((0..n).map(|i| {
                if a.is_null(i) {
                    SKIP
                } else {
                    u8::from(a.value(i))
                }
            }));
        }
        DataType::Int64 => {
            let a = labels.as_primitive::<Int64Type>();
            for (i, &v) in a.values().iter().enumerate() {
                out.push(match v {
                    _ if a.is_null(i) => SKIP,
                    0 => 0,
                    1 => 1,
                    other => {
                        return exec_err!(
                            "{name}: label must be 0 or 1 (or boolean), found {other}"
                        );
                    }
                });
            }
        }
        DataType::Float64 => {
            let a = labels.as_primitive::<Float64Type>();
            for (i, &v) in a.values().iter().enumerate() {
                out.push(if a.is_null(i) {
                    SKIP
                } else if v == 0.0 {
                    0
                } else if v == 1.0 {
                    1
                } else {
                    return exec_err!("{name}: label must be 0 or 1 (or boolean), found {v}");
                });
            }
        }
        other => return internal_err!("{name}: label of type {other} passed coercion"),
    }
    for other in others {
        if other.len() != n {
            return internal_err!("{name}: arguments differ in length");
        }
        if let Some(nulls) = other.logical_nulls() {
            for (slot, valid) in out.iter_mut().zip(nulls.iter()) {
                if !valid {
                    *slot = SKIP;
                }
            }
        }
    }
    Ok(())
}

/// Neumaier's compensated sum: merging partial sums in any order must agree with one pass
/// to ~1e-16, which a plain running sum over millions of rows does not.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub fn value(&self) -> f64 {
        // Past ±inf or NaN the compensation is NaN noise (inf - inf); the sum says it all.
        if self.sum.is_finite() {
            self.sum + self.compensation
        } else {
            self.sum
        }
    }
}

/// One list value holding `values`, moved into Arrow without a copy.
pub(crate) fn list_scalar<T: ArrowPrimitiveType>(values: Vec<T::Native>) -> ScalarValue {
    let n = values.len();
    list_of(Arc::new(PrimitiveArray::<T>::new(values.into(), None)), n)
}

/// One list value holding the array `values` of length `n`.
pub(crate) fn list_of(values: ArrayRef, n: usize) -> ScalarValue {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ScalarValue::List(Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths([n]),
        values,
        None,
    )))
}

/// A state column that must be a list (one row per partial state).
pub(crate) fn as_list<'a>(name: &str, state: &'a ArrayRef) -> Result<&'a ListArray> {
    match state.as_list_opt::<i32>() {
        Some(list) => Ok(list),
        None => internal_err!("{name}: state of type {} is not a list", state.data_type()),
    }
}

/// The f64 items of every non-NULL row of a list state column, one slice per row.
pub(crate) fn for_each_f64_list(
    name: &str,
    state: &ArrayRef,
    mut each: impl FnMut(&[f64]),
) -> Result<()> {
    let list = as_list(name, state)?;
    let values = list.values().as_primitive_opt::<Float64Type>();
    let Some(values) = values else {
        return internal_err!("{name}: state items are {}", list.value_type());
    };
    for (row, w) in list.offsets().windows(2).enumerate() {
        if list.is_valid(row) {
            each(&values.values()[w[0] as usize..w[1] as usize]);
        }
    }
    Ok(())
}

/// Column `i` of a state batch as f64 (`Float64` state fields).
pub(crate) fn f64_state<'a>(
    name: &str,
    states: &'a [ArrayRef],
    i: usize,
) -> Result<&'a PrimitiveArray<Float64Type>> {
    match states
        .get(i)
        .and_then(|s| s.as_primitive_opt::<Float64Type>())
    {
        Some(a) => Ok(a),
        None => internal_err!("{name}: state column {i} is not Float64"),
    }
}

/// Column `i` of a state batch as i64 (`Int64` state fields).
pub(crate) fn i64_state<'a>(
    name: &str,
    states: &'a [ArrayRef],
    i: usize,
) -> Result<&'a PrimitiveArray<Int64Type>> {
    match states
        .get(i)
        .and_then(|s| s.as_primitive_opt::<Int64Type>())
    {
        Some(a) => Ok(a),
        None => internal_err!("{name}: state column {i} is not Int64"),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Deterministic data and the merge property every aggregate must satisfy.

    use super::*;
    use datafusion::arrow::array::UInt32Array;
    use datafusion::arrow::compute::take;
    use datafusion::arrow::datatypes::Schema;

    /// xorshift64*: reproducible random data without a dependency.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        /// Uniform in [0, 1).
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        pub fn chance(&mut self, p: f64) -> bool {
            self.unit() < p
        }

        pub fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    pub fn accumulator(udaf: &AggregateUDF, columns: &[ArrayRef]) -> Result<Box<dyn Accumulator>> {
        let fields: Vec<FieldRef> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Arc::new(Field::new(format!("a{i}"), c.data_type().clone(), true)))
            .collect();
        let schema = Schema::new(fields.clone());
        let return_field = udaf.return_field(&fields)?;
        udaf.accumulator(AccumulatorArgs {
            return_field,
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: udaf.name(),
            is_distinct: false,
            exprs: &[],
            expr_fields: &fields,
        })
    }

    /// The aggregate over all of `columns` in one accumulator.
    /// The aggregate called `name` among a family's `aggregates`.
    pub fn named(aggregates: Vec<AggregateUDF>, name: &str) -> AggregateUDF {
        aggregates
            .into_iter()
            .find(|u| u.name() == name)
            .expect("registered")
    }

    pub fn whole(udaf: &AggregateUDF, columns: &[ArrayRef]) -> Result<ScalarValue> {
        let mut acc = accumulator(udaf, columns)?;
        acc.update_batch(columns)?;
        acc.evaluate()
    }

    /// The aggregate over `columns` with the rows dealt at random into `k` accumulators
    /// (each fed in a few batches), whose states are merged in random order and in
    /// random groupings into an accumulator that has also seen some rows itself.
    pub fn merged(
        udaf: &AggregateUDF,
        columns: &[ArrayRef],
        k: usize,
        rng: &mut Rng,
    ) -> Result<ScalarValue> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut pieces: Vec<Vec<u32>> = vec![vec![]; k + 1];
        for row in 0..rows {
            pieces[rng.below(k + 1)].push(row as u32);
        }
        let piece_columns = |rows: &[u32]| -> Result<Vec<ArrayRef>> {
            let indices = UInt32Array::from(rows.to_vec());
            Ok(columns
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<_, _>>()?)
        };
        let feed =
            |acc: &mut Box<dyn Accumulator>, data: &[ArrayRef], rng: &mut Rng| -> Result<()> {
                let n = data.first().map_or(0, |c| c.len());
                let mut start = 0;
                while start < n {
                    let len = 1 + rng.below(n - start);
                    let batch: Vec<ArrayRef> = data.iter().map(|c| c.slice(start, len)).collect();
                    acc.update_batch(&batch)?;
                    start += len;
                }
                Ok(())
            };
        let mut states: Vec<Vec<ScalarValue>> = vec![];
        for piece in &pieces[1..] {
            let mut acc = accumulator(udaf, columns)?;
            feed(&mut acc, &piece_columns(piece)?, rng)?;
            states.push(acc.state()?);
        }
        rng.shuffle(&mut states);
        let mut last = accumulator(udaf, columns)?;
        feed(&mut last, &piece_columns(&pieces[0])?, rng)?;
        let mut rest = states.as_slice();
        while !rest.is_empty() {
            let (group, tail) = rest.split_at(1 + rng.below(rest.len()));
            let width = group[0].len();
            let arrays = (0..width)
                .map(|j| ScalarValue::iter_to_array(group.iter().map(|s| s[j].clone())))
                .collect::<Result<Vec<_>>>()?;
            last.merge_batch(&arrays)?;
            rest = tail;
        }
        last.evaluate()
    }

    /// Float results agree to 1e-12 relative (or both NULL); others exactly.
    pub fn assert_close(a: &ScalarValue, b: &ScalarValue, context: &str) {
        match (a, b) {
            (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
                assert!(close(*x, *y), "{context}: {x} vs {y}")
            }
            _ => assert_eq!(a, b, "{context}"),
        }
    }

    pub fn close(x: f64, y: f64) -> bool {
        x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan())
    }

    /// For every seed: random data from `data`, then [`merged`] must agree with [`whole`],
    /// compared by `check`.
    pub fn check_merge_property(
        udaf: &AggregateUDF,
        data: impl Fn(&mut Rng) -> Vec<ArrayRef>,
        check: impl Fn(&ScalarValue, &ScalarValue, &str),
    ) -> Result<()> {
        for seed in 1..=200u64 {
            let mut rng = Rng::new(seed);
            let columns = data(&mut rng);
            let expected = whole(udaf, &columns)?;
            for k in [1, 2, 3, 7] {
                let got = merged(udaf, &columns, k, &mut rng)?;
                check(
                    &expected,
                    &got,
                    &format!("{} seed {seed} k {k}", udaf.name()),
                );
            }
        }
        Ok(())
    }
}
