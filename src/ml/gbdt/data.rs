//! From Arrow columns to what the trees read: each input column becomes features (numbers and
//! booleans one, strings one categorical, dates three parts as in the linear models), each
//! feature a column of f64 (NaN: missing; categories as their code, the position in the
//! model's category list). For training, the values are binned row by row into bytes.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::boost::mix;
use crate::ml::preprocess;

/// Most distinct values a string column may have to be a categorical feature.
pub const MAX_CATEGORIES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    /// The input column (index into the model's inputs) the feature is computed from.
    pub input: usize,
    pub kind: FeatureKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    /// The value as a number (booleans 0/1).
    Numeric,
    /// Part of a date: 0 days since 1970-01-01, 1 month, 2 ISO weekday.
    DatePart { part: usize },
    /// A category: its position in `categories`; unknown ones are missing.
    Categorical { categories: Vec<String> },
}

impl FeatureKind {
    pub fn describe(&self) -> &'static str {
        match self {
            FeatureKind::Numeric => "numeric",
            FeatureKind::DatePart { .. } => "date part",
            FeatureKind::Categorical { .. } => "category",
        }
    }
}

/// The features of `inputs` by column type (categories still empty).
pub fn features_for(schema: &Schema, inputs: &[String]) -> Result<Vec<Feature>> {
    preprocess::check_types(schema, inputs)?;
    let mut out = vec![];
    for (i, name) in inputs.iter().enumerate() {
        let t = schema.field_with_name(name)?.data_type();
        match preprocess::kind_of(t) {
            Some("category") if *t != DataType::Boolean => out.push(Feature {
                name: name.clone(),
                input: i,
                kind: FeatureKind::Categorical { categories: vec![] },
            }),
            Some("date") => {
                for (part, suffix) in ["days", "month", "weekday"].iter().enumerate() {
                    out.push(Feature {
                        name: format!("{name}.{suffix}"),
                        input: i,
                        kind: FeatureKind::DatePart { part },
                    });
                }
            }
            _ => out.push(Feature {
                name: name.clone(),
                input: i,
                kind: FeatureKind::Numeric,
            }),
        }
    }
    Ok(out)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "the model needs column {name} which the input does not have"
        ))
    })
}

fn floats(array: &ArrayRef) -> Result<Vec<f64>> {
    let values = cast(array, &DataType::Float64)?;
    Ok(values
        .as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Each feature's values over the batch's rows, column by column (NaN: missing).
pub fn values(
    features: &[Feature],
    inputs: &[String],
    batch: &RecordBatch,
) -> Result<Vec<Vec<f64>>> {
    let mut dates: HashMap<usize, Vec<Option<[f64; 3]>>> = HashMap::new();
    let mut out = Vec::with_capacity(features.len());
    for f in features {
        let array = column(batch, &inputs[f.input])?;
        out.push(match &f.kind {
            FeatureKind::Numeric => floats(array)?,
            FeatureKind::DatePart { part } => {
                let parts = match dates.entry(f.input) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(preprocess::date_parts(array)?)
                    }
                };
                parts
                    .iter()
                    .map(|p| p.map_or(f64::NAN, |p| p[*part]))
                    .collect()
            }
            FeatureKind::Categorical { categories } => {
                let code: HashMap<&str, usize> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                let strings = cast(array, &DataType::Utf8)?;
                strings
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.and_then(|v| code.get(v)).map_or(f64::NAN, |c| *c as f64))
                    .collect()
            }
        });
    }
    Ok(out)
}

/// Counts of each string in a column, for categorical features.
pub fn count_strings(array: &ArrayRef, counts: &mut HashMap<String, u64>) -> Result<()> {
    let strings = cast(array, &DataType::Utf8)?;
    for v in strings.as_string::<i32>().iter().flatten() {
        match counts.get_mut(v) {
            Some(c) => *c += 1,
            None => {
                counts.insert(v.to_string(), 1);
            }
        }
    }
    Ok(())
}

/// Categories ordered by count (most frequent first), ties by value; an error past the cap.
pub fn order_categories(
    column: &str,
    counts: HashMap<String, u64>,
) -> Result<(Vec<String>, Vec<u64>)> {
    if counts.len() > MAX_CATEGORIES {
        return Err(DataFusionError::Plan(format!(
            "column '{column}' has {} distinct values, more than the {MAX_CATEGORIES} a categorical \
             feature may have: group rare values (CASE … ELSE 'other' END), cast it to a number if it \
             is one, or leave it out",
            counts.len()
        )));
    }
    let mut ordered: Vec<(String, u64)> = counts.into_iter().collect();
    ordered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ordered.into_iter().unzip())
}

/// A hash of each row's values in `columns` that does not depend on where the row is:
/// rows are sampled and bagged by it, so the same rows give the same model in any order.
pub fn row_hashes(columns: &[&ArrayRef], rows: usize) -> Result<Vec<u64>> {
    let mut hashes = vec![0x5EED_u64; rows];
    for array in columns {
        match array.data_type() {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(_, _) => {
                let strings = cast(array, &DataType::Utf8)?;
                for (h, v) in hashes.iter_mut().zip(strings.as_string::<i32>().iter()) {
                    let mut x = 0xCA7u64;
                    if let Some(s) = v {
                        for chunk in s.as_bytes().chunks(8) {
                            let mut word = [0u8; 8];
                            word[..chunk.len()].copy_from_slice(chunk);
                            x = mix(x ^ u64::from_le_bytes(word));
                        }
                        x = mix(x ^ s.len() as u64);
                    }
                    *h = mix(*h ^ x);
                }
            }
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                let millis = cast(
                    array,
                    &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
                )?;
                let values =
                    millis.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
                for (h, v) in hashes.iter_mut().zip(values.iter()) {
                    *h = mix(*h ^ v.map_or(0xD47E, |v| v as u64));
                }
            }
            _ => {
                for (h, v) in hashes.iter_mut().zip(floats(array)?) {
                    // One bit pattern per value: NaN and -0.0 canonical.
                    let bits = if v.is_nan() {
                        0x7FF8_0000_0000_0000
                    } else if v == 0.0 {
                        0
                    } else {
                        v.to_bits()
                    };
                    *h = mix(*h ^ bits);
                }
            }
        }
    }
    Ok(hashes)
}

/// Whether a column holds any NULL (or NaN) — a feature with missing values gets a bin for them.
pub fn has_missing(array: &dyn Array) -> bool {
    array.null_count() > 0
        || matches!(array.data_type(), DataType::Float64 | DataType::Float32)
            && (0..array.len()).any(|i| match array.data_type() {
                DataType::Float64 => array.as_primitive::<Float64Type>().value(i).is_nan(),
                _ => array
                    .as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                    .value(i)
                    .is_nan(),
            })
}
