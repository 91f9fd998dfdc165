//! Weight of evidence and information value of a binned feature against a 0/1 label:
//! `woe(bin, label)` (the per-bin table) and `iv(bin, label)` (its one-number summary).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDF, Documentation};

use crate::aggregate::{
    Aggregate, SKIP, as_list, decode_labels, i64_state, list_of, list_scalar, with_label,
};
use crate::math::SECTION;

/// Rows of one bin by label: events have label 1, non-events label 0.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub events: i64,
    pub non_events: i64,
}

impl Counts {
    fn add(&mut self, label: u8) {
        if label == 1 {
            self.events += 1;
        } else {
            self.non_events += 1;
        }
    }

    fn merge(&mut self, other: Counts) {
        self.events += other.events;
        self.non_events += other.non_events;
    }
}

/// Each bin's WoE = ln(share of all non-events / share of all events), and the IV
/// Σ (share of non-events − share of events) · WoE. A bin with no events or no non-events
/// would make WoE ±∞, so both its counts get 0.5 added (the totals stay unadjusted).
/// None when the data has no events or no non-events at all: every share is then 0/0.
pub fn woe_iv(bins: &[Counts]) -> Option<(Vec<f64>, f64)> {
    let events: i64 = bins.iter().map(|c| c.events).sum();
    let non_events: i64 = bins.iter().map(|c| c.non_events).sum();
    if events == 0 || non_events == 0 {
        return None;
    }
    let mut iv = 0.0;
    let woe = bins
        .iter()
        .map(|c| {
            let (e, n) = if c.events == 0 || c.non_events == 0 {
                (c.events as f64 + 0.5, c.non_events as f64 + 0.5)
            } else {
                (c.events as f64, c.non_events as f64)
            };
            let (share_e, share_n) = (e / events as f64, n / non_events as f64);
            let woe = (share_n / share_e).ln();
            iv += (share_n - share_e) * woe;
            woe
        })
        .collect();
    Some((woe, iv))
}

#[derive(Debug)]
enum Bins {
    /// Integer bins stay integers until output so that they sort as numbers (2 before 10).
    Int(HashMap<i64, Counts>),
    Text(HashMap<String, Counts>),
}

#[derive(Debug, Clone, Copy)]
enum Output {
    Woe,
    Iv,
}

#[derive(Debug)]
struct BinAccumulator {
    name: &'static str,
    output: Output,
    bins: Bins,
    /// NULL is a bin of its own: in credit data a missing value is often the most telling.
    null_bin: Counts,
    labels: Vec<u8>,
}

fn bins_are_integers(fields: &[FieldRef]) -> bool {
    fields
        .first()
        .is_some_and(|f| f.data_type() == &DataType::Int64)
}

fn accumulator(
    name: &'static str,
    output: Output,
    args: &AccumulatorArgs,
) -> Result<Box<dyn Accumulator>> {
    Ok(Box::new(BinAccumulator {
        name,
        output,
        bins: if bins_are_integers(args.expr_fields) {
            Bins::Int(HashMap::new())
        } else {
            Bins::Text(HashMap::new())
        },
        null_bin: Counts::default(),
        labels: vec![],
    }))
}

/// Counts text bins, allocating a `String` only for a bin not seen before.
fn count_text<'a>(
    map: &mut HashMap<String, Counts>,
    null_bin: &mut Counts,
    bins: impl Iterator<Item = Option<&'a str>>,
    labels: &[u8],
    weight: impl Fn(usize, u8) -> Counts,
) {
    for (i, (bin, &y)) in bins.zip(labels).enumerate() {
        if y == SKIP {
            continue;
        }
        let counts = weight(i, y);
        match bin {
            None => null_bin.merge(counts),
            Some(bin) => match map.get_mut(bin) {
                Some(c) => c.merge(counts),
                None => {
                    map.insert(bin.to_owned(), counts);
                }
            },
        }
    }
}

fn one_row(label: u8) -> Counts {
    let mut c = Counts::default();
    c.add(label);
    c
}

impl BinAccumulator {
    /// Adds `bins` with the counts `weight(i, y)` of entry i (y is SKIP to ignore it).
    fn count(
        &mut self,
        bins: &ArrayRef,
        labels: &[u8],
        weight: impl Fn(usize, u8) -> Counts,
    ) -> Result<()> {
        let null_bin = &mut self.null_bin;
        match (&mut self.bins, bins.data_type()) {
            (Bins::Int(map), DataType::Int64) => {
                let a = bins.as_primitive::<Int64Type>();
                for (i, &y) in labels.iter().enumerate() {
                    if y == SKIP {
                        continue;
                    }
                    let counts = weight(i, y);
                    if a.is_null(i) {
                        null_bin.merge(counts);
                    } else {
                        map.entry(a.value(i)).or_default().merge(counts);
                    }
                }
            }
            (Bins::Text(map), DataType::Utf8) => count_text(
                map,
                null_bin,
                bins.as_string::<i32>().iter(),
                labels,
                weight,
            ),
            (Bins::Text(map), DataType::LargeUtf8) => count_text(
                map,
                null_bin,
                bins.as_string::<i64>().iter(),
                labels,
                weight,
            ),
            (Bins::Text(map), DataType::Utf8View) => {
                count_text(map, null_bin, bins.as_string_view().iter(), labels, weight)
            }
            (_, other) => return internal_err!("{}: bins of type {other}", self.name),
        }
        Ok(())
    }

    /// Bins in output order (numeric or byte order, NULL last) with their text.
    fn sorted(&self) -> Vec<(Option<String>, Counts)> {
        let mut out: Vec<(Option<String>, Counts)> = match &self.bins {
            Bins::Int(map) => {
                let mut bins: Vec<_> = map.iter().collect();
                bins.sort_unstable_by_key(|(k, _)| **k);
                bins.into_iter()
                    .map(|(k, c)| (Some(k.to_string()), *c))
                    .collect()
            }
            Bins::Text(map) => {
                let mut bins: Vec<_> = map.iter().collect();
                bins.sort_unstable_by(|a, b| a.0.cmp(b.0));
                bins.into_iter()
                    .map(|(k, c)| (Some(k.clone()), *c))
                    .collect()
            }
        };
        if self.null_bin != Counts::default() {
            out.push((None, self.null_bin));
        }
        out
    }
}

impl Accumulator for BinAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [bins, label] = values else {
            return internal_err!("{} takes 2 arguments", self.name);
        };
        // Only the label makes a row unusable; a NULL bin is counted in the NULL bin.
        let mut labels = std::mem::take(&mut self.labels);
        decode_labels(self.name, label, &[], &mut labels)?;
        let counted = self.count(bins, &labels, |_, y| one_row(y));
        self.labels = labels;
        counted
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (bins, events, non_events): (ArrayRef, Vec<i64>, Vec<i64>) = match &self.bins {
            Bins::Int(map) => {
                let bins: Int64Array = map
                    .keys()
                    .map(|k| Some(*k))
                    .chain((self.null_bin != Counts::default()).then_some(None))
                    .collect();
                let counts = map
                    .values()
                    .copied()
                    .chain((self.null_bin != Counts::default()).then_some(self.null_bin));
                let (e, n) = counts.map(|c| (c.events, c.non_events)).unzip();
                (Arc::new(bins), e, n)
            }
            Bins::Text(map) => {
                let bins: StringArray = map
                    .keys()
                    .map(|k| Some(k.as_str()))
                    .chain((self.null_bin != Counts::default()).then_some(None))
                    .collect();
                let counts = map
                    .values()
                    .copied()
                    .chain((self.null_bin != Counts::default()).then_some(self.null_bin));
                let (e, n) = counts.map(|c| (c.events, c.non_events)).unzip();
                (Arc::new(bins), e, n)
            }
        };
        let n = bins.len();
        Ok(vec![
            list_of(bins, n),
            list_scalar::<Int64Type>(events),
            list_scalar::<Int64Type>(non_events),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [bins, events, non_events] = states else {
            return internal_err!("{}: expected 3 state columns", self.name);
        };
        let bins = as_list(self.name, bins)?;
        let events = as_list(self.name, events)?;
        let non_events = as_list(self.name, non_events)?;
        let event_values = i64_state(self.name, std::slice::from_ref(events.values()), 0)?;
        let non_event_values = i64_state(self.name, std::slice::from_ref(non_events.values()), 0)?;
        // Lay each state row's counts beside its bins in the flattened bin values, so that
        // the bins can be counted like input rows; the bins' own validity marks NULL bins.
        let width = bins.values().len();
        let mut keep = vec![SKIP; width];
        let mut counts = vec![Counts::default(); width];
        let range = |offsets: &[i32], row: usize| offsets[row] as usize..offsets[row + 1] as usize;
        for row in (0..bins.len()).filter(|&row| bins.is_valid(row)) {
            let b = range(bins.value_offsets(), row);
            let e = range(events.value_offsets(), row);
            let n = range(non_events.value_offsets(), row);
            if b.len() != e.len() || b.len() != n.len() {
                return internal_err!("{}: state lists differ in length", self.name);
            }
            for ((slot, e), n) in b.zip(e).zip(n) {
                keep[slot] = 1;
                counts[slot] = Counts {
                    events: event_values.value(e),
                    non_events: non_event_values.value(n),
                };
            }
        }
        self.count(bins.values(), &keep, |i, _| counts[i])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let bins = self.sorted();
        if bins.is_empty() {
            return Ok(match self.output {
                Output::Woe => ScalarValue::try_from(woe_type())?,
                Output::Iv => ScalarValue::Float64(None),
            });
        }
        let counts: Vec<Counts> = bins.iter().map(|(_, c)| *c).collect();
        let woe_iv = woe_iv(&counts);
        match self.output {
            Output::Iv => Ok(ScalarValue::Float64(woe_iv.map(|(_, iv)| iv))),
            Output::Woe => {
                let woe: Float64Array = match woe_iv {
                    Some((woe, _)) => woe.into_iter().map(Some).collect(),
                    None => Float64Array::new_null(counts.len()),
                };
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(
                        bins.iter()
                            .map(|(b, _)| b.as_deref())
                            .collect::<StringArray>(),
                    ),
                    Arc::new(Int64Array::from_iter_values(
                        counts.iter().map(|c| c.events),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        counts.iter().map(|c| c.non_events),
                    )),
                    Arc::new(woe),
                ];
                let table = StructArray::try_new(woe_fields(), columns, None)?;
                Ok(list_of(Arc::new(table), counts.len()))
            }
        }
    }

    fn size(&self) -> usize {
        let bins = match &self.bins {
            Bins::Int(map) => map.capacity() * size_of::<(i64, Counts)>(),
            Bins::Text(map) => {
                map.capacity() * size_of::<(String, Counts)>()
                    + map.keys().map(String::capacity).sum::<usize>()
            }
        };
        size_of_val(self) + bins + self.labels.capacity()
    }
}

fn woe_fields() -> Fields {
    Fields::from(vec![
        Field::new("bin", DataType::Utf8, true),
        Field::new("events", DataType::Int64, false),
        Field::new("non_events", DataType::Int64, false),
        Field::new("woe", DataType::Float64, true),
    ])
}

fn woe_type() -> DataType {
    DataType::new_list(DataType::Struct(woe_fields()), true)
}

fn bin_state(fields: &[FieldRef]) -> Vec<(&'static str, DataType)> {
    let bins = if bins_are_integers(fields) {
        DataType::Int64
    } else {
        DataType::Utf8
    };
    vec![
        ("bins", DataType::new_list(bins, true)),
        ("events", DataType::new_list(DataType::Int64, true)),
        ("non_events", DataType::new_list(DataType::Int64, true)),
    ]
}

/// Integers first: DataFusion takes the first signature an argument coerces to, and any
/// type coerces to text, so an Int32 bin must meet Int64 before it meets Utf8View.
const BIN_TYPES: [DataType; 4] = [
    DataType::Int64,
    DataType::Utf8View,
    DataType::Utf8,
    DataType::LargeUtf8,
];

const ADJUSTMENT: &str = "A bin with no events or no non-events would have an infinite WoE, \
    so 0.5 is added to both of its counts (the totals are not adjusted).";
const BIN_NULLS: &str = "Rows with a NULL label are ignored; NULL bins form a bin of their own. \
    No rows gives NULL, and so does data without both labels.";

static WOE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "Weight of evidence of each bin: a list of {{bin, events, non_events, woe}} sorted \
             by bin (integers numerically, text by bytes, NULL last), where events have label \
             1, non-events label 0, and woe = ln((non_events / total non-events) / (events / \
             total events)), so bins of good risks (label 0) have positive WoE. {ADJUSTMENT} \
             {BIN_NULLS} Where all rows have one label, each woe is NULL."
        ),
        "woe(bin, label)",
    )
    .with_argument("bin", "the bin of the row: text or an integer")
    .with_argument(
        "label",
        "the outcome: BOOLEAN, or a number that is 0 or 1 (anything else is an error)",
    )
    .with_sql_example(
        "SELECT w['bin'], w['woe'] FROM (SELECT unnest(woe(age_band, defaulted)) AS w FROM loans);",
    )
    .with_related_udf("iv")
    .build()
});

static IV_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "Information value of a binned feature: Σ over bins of (share of non-events − \
             share of events) · WoE, with WoE as in woe(bin, label). Common reading: < 0.02 \
             useless, 0.02–0.1 weak, 0.1–0.3 medium, > 0.3 strong. {ADJUSTMENT} {BIN_NULLS}"
        ),
        "iv(bin, label)",
    )
    .with_argument("bin", "the bin of the row: text or an integer")
    .with_argument(
        "label",
        "the outcome: BOOLEAN, or a number that is 0 or 1 (anything else is an error)",
    )
    .with_sql_example("SELECT iv(age_band, defaulted) FROM loans;")
    .with_related_udf("woe")
    .build()
});

pub fn aggregates() -> Vec<AggregateUDF> {
    vec![
        Aggregate {
            name: "woe",
            signature: with_label(&BIN_TYPES),
            output: woe_type(),
            state: bin_state,
            accumulator: |args| accumulator("woe", Output::Woe, args),
            doc: &WOE_DOC,
        }
        .udaf(),
        Aggregate {
            name: "iv",
            signature: with_label(&BIN_TYPES),
            output: DataType::Float64,
            state: bin_state,
            accumulator: |args| accumulator("iv", Output::Iv, args),
            doc: &IV_DOC,
        }
        .udaf(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{Rng, assert_close, check_merge_property, close, whole};
    use datafusion::arrow::array::BooleanArray;

    fn udaf(name: &str) -> AggregateUDF {
        crate::aggregate::testing::named(aggregates(), name)
    }

    type Row = (Option<String>, i64, i64, Option<f64>);

    fn rows(value: &ScalarValue) -> Option<Vec<Row>> {
        let ScalarValue::List(list) = value else {
            panic!("woe gave {value:?}")
        };
        if list.is_null(0) {
            return None;
        }
        let table = list.value(0);
        let table = table.as_struct();
        let bins = table.column(0).as_string::<i32>();
        let events = table.column(1).as_primitive::<Int64Type>();
        let non_events = table.column(2).as_primitive::<Int64Type>();
        let woe = table
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        Some(
            (0..table.len())
                .map(|i| {
                    (
                        bins.is_valid(i).then(|| bins.value(i).to_string()),
                        events.value(i),
                        non_events.value(i),
                        woe.is_valid(i).then(|| woe.value(i)),
                    )
                })
                .collect(),
        )
    }

    fn text_input(bins: &[Option<&str>], labels: &[Option<bool>]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from(bins.to_vec())),
            Arc::new(BooleanArray::from(labels.to_vec())),
        ]
    }

    #[test]
    fn hand_checked_table_and_iv() -> Result<()> {
        let t = Some(true);
        let f = Some(false);
        // a: 2 events, 3 non-events; b: 1 event, no non-event (adjusted to 1.5 / 0.5);
        // NULL: 1 event, 2 non-events; one row without a label is ignored.
        let input = text_input(
            &[
                Some("a"),
                Some("a"),
                Some("a"),
                Some("a"),
                Some("a"),
                Some("b"),
                None,
                None,
                None,
                Some("b"),
            ],
            &[t, t, f, f, f, t, t, f, f, None],
        );
        let (e, n) = (4.0, 5.0);
        let w = |ev: f64, ne: f64| ((ne / n) / (ev / e)).ln();
        let expected = [w(2.0, 3.0), w(1.5, 0.5), w(1.0, 2.0)];
        let got = rows(&whole(&udaf("woe"), &input)?).expect("rows");
        let names: Vec<_> = got.iter().map(|r| r.0.clone()).collect();
        assert_eq!(names, vec![Some("a".into()), Some("b".into()), None]);
        assert_eq!(
            got.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
            vec![(2, 3), (1, 0), (1, 2)]
        );
        for (r, x) in got.iter().zip(expected) {
            assert!(close(r.3.unwrap_or(f64::NAN), x), "{r:?} vs {x}");
        }
        let iv = (3.0 / n - 2.0 / e) * expected[0]
            + (0.5 / n - 1.5 / e) * expected[1]
            + (2.0 / n - 1.0 / e) * expected[2];
        let ScalarValue::Float64(Some(got_iv)) = whole(&udaf("iv"), &input)? else {
            panic!("iv is a double")
        };
        assert!(close(got_iv, iv), "{got_iv} vs {iv}");
        Ok(())
    }

    #[test]
    fn integer_bins_sort_as_numbers() -> Result<()> {
        let input: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(10),
                Some(2),
                None,
                Some(-1),
                Some(2),
            ])),
            Arc::new(Int64Array::from(vec![1, 0, 1, 0, 1])),
        ];
        let got = rows(&whole(&udaf("woe"), &input)?).expect("rows");
        let names: Vec<_> = got.iter().map(|r| r.0.clone()).collect();
        let expected = [Some("-1"), Some("2"), Some("10"), None];
        assert_eq!(names, expected.map(|s| s.map(String::from)));
        Ok(())
    }

    #[test]
    fn empty_single_row_and_errors() -> Result<()> {
        let empty = text_input(&[], &[]);
        assert_eq!(rows(&whole(&udaf("woe"), &empty)?), None);
        assert_eq!(whole(&udaf("iv"), &empty)?, ScalarValue::Float64(None));
        let only_null_labels = text_input(&[Some("a")], &[None]);
        assert_eq!(rows(&whole(&udaf("woe"), &only_null_labels)?), None);
        // One row: one label only, so the counts are there but WoE is undefined.
        let single = text_input(&[Some("a")], &[Some(true)]);
        assert_eq!(
            rows(&whole(&udaf("woe"), &single)?),
            Some(vec![(Some("a".into()), 1, 0, None)])
        );
        assert_eq!(whole(&udaf("iv"), &single)?, ScalarValue::Float64(None));
        let bad: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(Int64Array::from(vec![3])),
        ];
        let err = whole(&udaf("iv"), &bad).unwrap_err().to_string();
        assert!(
            err.contains("iv: label must be 0 or 1 (or boolean), found 3"),
            "{err}"
        );
        Ok(())
    }

    fn dataset(rng: &mut Rng) -> Vec<ArrayRef> {
        let n = rng.below(300);
        let levels = 1 + rng.below(12);
        let p_event = [0.0, 0.1, 0.4, 1.0][rng.below(4)];
        let bins: Vec<Option<i64>> = (0..n)
            .map(|_| (!rng.chance(0.05)).then(|| rng.below(levels) as i64 - 3))
            .collect();
        let labels: Int64Array = (0..n)
            .map(|_| (!rng.chance(0.05)).then(|| i64::from(rng.chance(p_event))))
            .collect();
        let bins: ArrayRef = if rng.chance(0.5) {
            Arc::new(Int64Array::from(bins))
        } else {
            Arc::new(
                bins.iter()
                    .map(|b| b.map(|b| format!("bin {b}")))
                    .collect::<StringArray>(),
            )
        };
        vec![bins, Arc::new(labels)]
    }

    fn same_table(a: &ScalarValue, b: &ScalarValue, context: &str) {
        match (rows(a), rows(b)) {
            (Some(a), Some(b)) => {
                assert_eq!(a.len(), b.len(), "{context}");
                for (x, y) in a.iter().zip(&b) {
                    assert_eq!((&x.0, x.1, x.2), (&y.0, y.1, y.2), "{context}");
                    match (x.3, y.3) {
                        (Some(u), Some(v)) => assert!(close(u, v), "{context}: {u} vs {v}"),
                        (u, v) => assert_eq!(u, v, "{context}"),
                    }
                }
            }
            (a, b) => assert_eq!(a, b, "{context}"),
        }
    }

    #[test]
    fn merged_states_agree_with_one_pass() -> Result<()> {
        check_merge_property(&udaf("woe"), dataset, same_table)?;
        check_merge_property(&udaf("iv"), dataset, assert_close)
    }
}
