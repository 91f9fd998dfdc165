//! Turning input columns into numeric features, learned at training and replayed at predict
//! time: numbers as they are (NULL → training mean when imputing), strings and booleans
//! one-hot (categories by frequency, ties by value, the last one dropped — Spark's
//! StringIndexer + OneHotEncoder defaults; unseen or NULL → all zeros), dates and timestamps
//! as days since 1970-01-01, month and ISO weekday.

use datafusion::common::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Schema, TimeUnit, TimestampMillisecondType,
};
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::binning::FeatureBinning;

/// How one input column becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoder {
    Numeric {
        column: String,
        mean: f64,
        std: f64,
    },
    OneHot {
        column: String,
        categories: Vec<String>,
        dropped: Option<String>,
        counts: Vec<u64>,
        /// What a value outside `categories` (unseen, or NULL) does to the row.
        #[serde(default, skip_serializing_if = "Unknown::is_default")]
        unknown: Unknown,
    },
    Date {
        column: String,
        means: [f64; 3],
    },
    /// The WoE of the value's bin (scorecards; `woe_binning` models keep only these).
    Woe {
        column: String,
        binning: Box<FeatureBinning>,
    },
}

/// A category the encoder does not know. Augur's own models score unseen values as all
/// zeros and NULL by the null policy; imported Spark pipelines follow their StringIndexer's
/// `handleInvalid` ('keep' → all zeros for both; 'error' or 'skip' → the row is not scored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    #[default]
    Zeros,
    ZerosWithNull,
    Unscored,
}

impl Unknown {
    fn is_default(&self) -> bool {
        *self == Unknown::Zeros
    }
}

impl Encoder {
    pub fn column(&self) -> &str {
        match self {
            Encoder::Numeric { column, .. }
            | Encoder::OneHot { column, .. }
            | Encoder::Date { column, .. }
            | Encoder::Woe { column, .. } => column,
        }
    }

    pub fn width(&self) -> usize {
        match self {
            Encoder::Numeric { .. } | Encoder::Woe { .. } => 1,
            Encoder::OneHot { categories, .. } => categories.len(),
            Encoder::Date { .. } => 3,
        }
    }

    pub fn feature_names(&self) -> Vec<String> {
        match self {
            Encoder::Numeric { column, .. } | Encoder::Woe { column, .. } => vec![column.clone()],
            Encoder::OneHot {
                column, categories, ..
            } => categories.iter().map(|c| format!("{column}={c}")).collect(),
            Encoder::Date { column, .. } => ["days", "month", "weekday"]
                .iter()
                .map(|p| format!("{column}.{p}"))
                .collect(),
        }
    }
}

/// What kind of encoding a column's type gets, or `None` when it cannot be a feature.
pub(crate) fn kind_of(t: &DataType) -> Option<&'static str> {
    match t {
        t if t.is_numeric() => Some("numeric"),
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => Some("numeric"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            Some("category")
        }
        DataType::Dictionary(_, v)
            if matches!(
                **v,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            Some("category")
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => Some("date"),
        _ => None,
    }
}

/// Check that every feature column can be encoded; name the ones that cannot.
pub fn check_types(schema: &Schema, columns: &[String]) -> Result<()> {
    let bad: Vec<String> = columns
        .iter()
        .filter_map(|c| {
            let t = schema.field_with_name(c).ok()?.data_type();
            kind_of(t).is_none().then(|| format!("{c} ({t})"))
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(DataFusionError::Plan(format!(
            "cannot use column(s) {} as features: numbers, strings, booleans, dates and timestamps \
             are supported; leave them out of the query or cast them",
            bad.join(", ")
        )))
    }
}

/// Learn the encoders of `columns` from the training rows.
pub fn fit(batches: &[RecordBatch], schema: &Schema, columns: &[String]) -> Result<Vec<Encoder>> {
    check_types(schema, columns)?;
    columns
        .iter()
        .map(|name| {
            let index = schema.index_of(name)?;
            let t = schema.field(index).data_type();
            match kind_of(t) {
                Some("numeric") => {
                    let mut total = [0.0; 3];
                    for b in batches {
                        let col = cast(b.column(index), &DataType::Float64)?;
                        add_moments(&mut total, col.as_primitive::<Float64Type>());
                    }
                    let [n, sum, sq] = total;
                    Ok(numeric(name.clone(), n, sum, sq))
                }
                Some("category") => {
                    let mut counts: HashMap<String, u64> = HashMap::new();
                    for b in batches {
                        each_str(b.column(index), |_, v| {
                            let Some(v) = v else { return };
                            match counts.get_mut(v) {
                                Some(n) => *n += 1,
                                None => {
                                    counts.insert(v.to_string(), 1);
                                }
                            }
                        })?;
                    }
                    Ok(one_hot(name.clone(), counts.into_iter().collect()))
                }
                _ => {
                    let mut sums = [0.0; 3];
                    let mut n = 0.0;
                    for b in batches {
                        for parts in date_parts(b.column(index))?.into_iter().flatten() {
                            n += 1.0;
                            for k in 0..3 {
                                sums[k] += parts[k];
                            }
                        }
                    }
                    let means = sums.map(|s| if n > 0.0 { s / n } else { 0.0 });
                    Ok(Encoder::Date {
                        column: name.clone(),
                        means,
                    })
                }
            }
        })
        .collect()
}

/// Adds the count, sum and sum of squares of `values`' non-NULL entries to `total`. Without
/// NULLs, in four interleaved lanes: one running sum is a chain of dependent additions, four
/// latencies per value, where the lanes let the adds overlap (the same sums to rounding).
pub(crate) fn add_moments(total: &mut [f64; 3], values: &PrimitiveArray<Float64Type>) {
    if values.null_count() > 0 {
        for v in values.iter().flatten() {
            total[0] += 1.0;
            total[1] += v;
            total[2] += v * v;
        }
        return;
    }
    let values = values.values();
    let (mut sum, mut sq) = ([0.0f64; 4], [0.0f64; 4]);
    let lanes = values.chunks_exact(4);
    let rest = lanes.remainder();
    for four in lanes {
        for k in 0..4 {
            sum[k] += four[k];
            sq[k] += four[k] * four[k];
        }
    }
    let (mut s, mut q) = (
        (sum[0] + sum[1]) + (sum[2] + sum[3]),
        (sq[0] + sq[1]) + (sq[2] + sq[3]),
    );
    for v in rest {
        s += v;
        q += v * v;
    }
    total[0] += values.len() as f64;
    total[1] += s;
    total[2] += q;
}

/// A numeric feature's encoder from the count, sum and sum of squares of its values: the
/// mean (which imputes a NULL) and the sample σ.
pub(crate) fn numeric(column: String, n: f64, sum: f64, sq: f64) -> Encoder {
    let mean = if n > 0.0 { sum / n } else { 0.0 };
    let var = if n > 1.0 {
        ((sq - n * mean * mean) / (n - 1.0)).max(0.0)
    } else {
        0.0
    };
    Encoder::Numeric {
        column,
        mean,
        std: var.sqrt(),
    }
}

/// A category's one-hot encoder from its values' counts: by count, then value; the rarest
/// is dropped (the reference level).
pub(crate) fn one_hot(column: String, mut ordered: Vec<(String, u64)>) -> Encoder {
    ordered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let dropped = ordered.pop();
    Encoder::OneHot {
        column,
        counts: ordered.iter().map(|c| c.1).collect(),
        categories: ordered.into_iter().map(|c| c.0).collect(),
        dropped: dropped.map(|d| d.0),
        unknown: Unknown::Zeros,
    }
}

/// Days since the epoch, month (1–12) and ISO weekday (1 = Monday) of each value.
pub(crate) fn date_parts(array: &ArrayRef) -> Result<Vec<Option<[f64; 3]>>> {
    let millis = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(millis
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .map(|v| {
            v.map(|ms| {
                let days = ms as f64 / 86_400_000.0;
                let whole = days.floor() as i64;
                let (_, month, _) = civil_from_days(whole);
                let weekday = (whole + 3).rem_euclid(7) + 1; // 1970-01-01 was a Thursday
                [days, month as f64, weekday as f64]
            })
        })
        .collect())
}

/// Howard Hinnant's civil-from-days: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Call `f(row, value)` for each row of a string column (`None` for NULL): Utf8, LargeUtf8
/// and Utf8View (what stored tables read as) in place, anything else cast to Utf8 first.
pub fn each_str(column: &ArrayRef, mut f: impl FnMut(usize, Option<&str>)) -> Result<()> {
    fn walk<'a>(
        values: impl Iterator<Item = Option<&'a str>>,
        f: &mut impl FnMut(usize, Option<&str>),
    ) {
        for (i, v) in values.enumerate() {
            f(i, v);
        }
    }
    match column.data_type() {
        DataType::Utf8View => walk(column.as_string_view().iter(), &mut f),
        DataType::Utf8 => walk(column.as_string::<i32>().iter(), &mut f),
        DataType::LargeUtf8 => walk(column.as_string::<i64>().iter(), &mut f),
        _ => walk(
            cast(column, &DataType::Utf8)?.as_string::<i32>().iter(),
            &mut f,
        ),
    }
    Ok(())
}

/// An error naming every column the encoders need that `batch` lacks.
pub fn check_columns(encoders: &[Encoder], batch: &RecordBatch) -> Result<()> {
    let missing: Vec<&str> = encoders
        .iter()
        .map(|e| e.column())
        .filter(|c| batch.schema().index_of(c).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "the model needs column(s) {} which the input does not have",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Call `f(row, position)` with each row's position among a one-hot encoder's categories
/// (`None`: NULL or unknown, all zeros), turning `valid` false where the unknown policy or a
/// NULL `impute` does not fill says so. Scoring adds the position's coefficient instead of
/// building a 0/1 column per category. Ok(false) for any other encoder.
pub fn one_hot_positions(
    encoder: &Encoder,
    column: &ArrayRef,
    impute: bool,
    valid: &mut [bool],
    mut f: impl FnMut(usize, Option<usize>),
) -> Result<bool> {
    let Encoder::OneHot {
        categories,
        unknown,
        ..
    } = encoder
    else {
        return Ok(false);
    };
    let index: HashMap<&str, usize> = categories
        .iter()
        .enumerate()
        .map(|(k, c)| (c.as_str(), k))
        .collect();
    each_str(column, |i, v| {
        let hit = match (v, unknown) {
            (Some(v), _) => index.get(v).copied(),
            (None, Unknown::Zeros) => {
                valid[i] &= impute;
                None
            }
            (None, _) => None,
        };
        if hit.is_none() && *unknown == Unknown::Unscored {
            valid[i] = false;
        }
        f(i, hit);
    })?;
    Ok(true)
}

/// `width` empty columns for [`encode`], each with room for `rows` values. Not
/// `vec![Vec::with_capacity(rows); width]`: a clone of an empty Vec has no capacity, so all
/// but the last column would grow by doubling.
pub fn empty_columns(width: usize, rows: usize) -> Vec<Vec<f64>> {
    (0..width).map(|_| Vec::with_capacity(rows)).collect()
}

/// Encode `batch` into feature columns (appended to `out`, one Vec per feature). A row's
/// `valid` entry turns false when it has a NULL that `impute` does not fill.
pub fn encode(
    encoders: &[Encoder],
    batch: &RecordBatch,
    impute: bool,
    out: &mut [Vec<f64>],
    valid: &mut [bool],
) -> Result<()> {
    check_columns(encoders, batch)?;
    let mut slot = 0;
    for encoder in encoders {
        let column = batch.column(batch.schema().index_of(encoder.column())?);
        match encoder {
            Encoder::Numeric { mean, .. } => {
                let values = cast(column, &DataType::Float64)?;
                let values = values.as_primitive::<Float64Type>();
                if values.null_count() == 0 {
                    out[slot].extend_from_slice(values.values());
                    slot += 1;
                    continue;
                }
                for (i, v) in values.iter().enumerate() {
                    out[slot].push(match v {
                        Some(v) => v,
                        None => {
                            valid[i] &= impute;
                            *mean
                        }
                    });
                }
            }
            Encoder::OneHot { categories, .. } => {
                for k in 0..categories.len() {
                    out[slot + k].reserve(column.len());
                }
                one_hot_positions(encoder, column, impute, valid, |_, hit| {
                    for k in 0..categories.len() {
                        out[slot + k].push(if Some(k) == hit { 1.0 } else { 0.0 });
                    }
                })?;
            }
            Encoder::Woe { binning, .. } => out[slot].extend(binning.woe_of(column)?),
            Encoder::Date { means, .. } => {
                for (i, parts) in date_parts(column)?.into_iter().enumerate() {
                    let parts = parts.unwrap_or_else(|| {
                        valid[i] &= impute;
                        *means
                    });
                    for k in 0..3 {
                        out[slot + k].push(parts[k]);
                    }
                }
            }
        }
        slot += encoder.width();
    }
    Ok(())
}

/// True where a column is non-NULL (all true for columns without nulls).
pub fn non_null(array: &dyn Array) -> Vec<bool> {
    (0..array.len()).map(|i| array.is_valid(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Int64, true),
            Field::new("kind", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("score", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    None,
                    Some(30),
                    Some(40),
                    Some(50),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    Some("c"),
                    Some("a"),
                    Some("b"),
                ])),
                Arc::new(Date32Array::from(vec![
                    Some(0),
                    Some(31),
                    Some(59),
                    None,
                    Some(19_723),
                ])),
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn categories_by_frequency_then_value_last_dropped() {
        let b = batch();
        let columns: Vec<String> = ["amount", "kind", "day"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let enc = fit(std::slice::from_ref(&b), &b.schema(), &columns).unwrap();
        // a and b appear twice (tie broken by value), c once and is dropped.
        assert_eq!(
            enc[1],
            Encoder::OneHot {
                column: "kind".into(),
                categories: vec!["a".into(), "b".into()],
                dropped: Some("c".into()),
                counts: vec![2, 2],
                unknown: Unknown::Zeros,
            }
        );
        assert_eq!(
            enc[0],
            Encoder::Numeric {
                column: "amount".into(),
                mean: 32.5,
                std: enc_std(&[10.0, 30.0, 40.0, 50.0])
            }
        );
        let mut out = vec![vec![]; 6];
        let mut valid = vec![true; 5];
        encode(&enc, &b, true, &mut out, &mut valid).unwrap();
        assert_eq!(out[0], vec![10.0, 32.5, 30.0, 40.0, 50.0]);
        assert_eq!(out[1], vec![0.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(out[2], vec![1.0, 0.0, 0.0, 0.0, 1.0]);
        // 1970-01-01 Thursday; 1970-02-01 Sunday; 1970-03-01 Sunday; 2024-01-01 Monday
        assert_eq!((out[3][1], out[4][1], out[5][1]), (31.0, 2.0, 7.0));
        assert_eq!(
            (out[4][2], out[5][2], out[5][4], out[4][4]),
            (3.0, 7.0, 1.0, 1.0)
        );
        assert!(valid.iter().all(|v| *v));
        let mut valid = vec![true; 5];
        let mut out = vec![vec![]; 6];
        encode(&enc, &b, false, &mut out, &mut valid).unwrap();
        assert_eq!(valid, vec![true, false, true, false, true]);
    }

    fn enc_std(v: &[f64]) -> f64 {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    }

    #[test]
    fn unseen_categories_are_all_zero_and_missing_columns_named() {
        let enc = vec![Encoder::OneHot {
            column: "kind".into(),
            categories: vec!["x".into()],
            dropped: Some("y".into()),
            counts: vec![3],
            unknown: Unknown::Zeros,
        }];
        let b = batch();
        let mut out = vec![vec![]];
        let mut valid = vec![true; 5];
        encode(&enc, &b, false, &mut out, &mut valid).unwrap();
        assert_eq!(out[0], vec![0.0; 5]);
        let enc = vec![Encoder::Numeric {
            column: "income".into(),
            mean: 0.0,
            std: 1.0,
        }];
        let err = encode(&enc, &b, false, &mut [vec![]], &mut [true; 5]).unwrap_err();
        assert!(err.to_string().contains("income"), "{err}");
    }

    #[test]
    fn imported_encoders_follow_sparks_handle_invalid() {
        // kind = a, NULL, a, b, c: 'a' known; NULL, 'b', 'c' unknown.
        let kind = StringArray::from(vec![Some("a"), None, Some("a"), Some("b"), Some("c")]);
        let b = RecordBatch::try_from_iter([("kind", Arc::new(kind) as ArrayRef)]).unwrap();
        let one_hot = |unknown| {
            vec![Encoder::OneHot {
                column: "kind".into(),
                categories: vec!["a".into()],
                dropped: None,
                counts: vec![],
                unknown,
            }]
        };
        let run = |enc: Vec<Encoder>, impute| {
            let mut out = vec![vec![]];
            let mut valid = vec![true; 5];
            encode(&enc, &b, impute, &mut out, &mut valid).unwrap();
            (out.remove(0), valid)
        };
        let (keep, valid) = run(one_hot(Unknown::ZerosWithNull), false);
        assert_eq!(
            (keep, valid),
            (vec![1.0, 0.0, 1.0, 0.0, 0.0], vec![true; 5])
        );
        let (_, valid) = run(one_hot(Unknown::Unscored), true);
        assert_eq!(valid, vec![true, false, true, false, false]);
        let (_, valid) = run(one_hot(Unknown::Zeros), false);
        assert_eq!(valid, vec![true, false, true, true, true]);
    }
}
