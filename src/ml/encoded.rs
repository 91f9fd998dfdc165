//! Training rows encoded into column-major shards for the linear models, batch by batch:
//! after reading (encoders learned from all the rows first), or while the rows are read
//! (numeric and categorical features), so the Arrow input is dropped batch by batch instead
//! of held beside its encoded copy.

use datafusion::common::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Builder, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::error::Result;

use super::model::{Prepared, plan_err};
use super::options::{ModelType, NullPolicy, TrainOptions};
use super::preprocess::{self, Encoder};
use super::shard::{Hot, Shard};

/// Where a training query's columns go, and what the options say about its rows.
#[derive(Debug, Clone)]
pub struct Layout {
    pub inputs: Vec<String>,
    pub label: String,
    pub label_index: usize,
    pub weight_index: Option<usize>,
    pub model_type: ModelType,
    pub handle_nulls: NullPolicy,
}

impl Layout {
    pub fn of(options: &TrainOptions, prep: &Prepared) -> Layout {
        Layout {
            inputs: prep.inputs.clone(),
            label: options.label.clone(),
            label_index: prep.label_index,
            weight_index: prep.weight_index,
            model_type: options.model_type,
            handle_nulls: options.handle_nulls,
        }
    }
}

/// The rows of one partition as they are encoded: the shard, rows dropped for NULLs or
/// negative weights, and the distinct labels a classifier cannot take.
#[derive(Debug, Default)]
pub struct ShardBuilder {
    pub shard: Shard,
    pub dropped: usize,
    pub bad_labels: Vec<f64>,
}

impl ShardBuilder {
    /// Sized up front when the row count is known: growing 8 MB columns by doubling costs
    /// copies and page faults.
    pub fn with_capacity(width: usize, rows: usize, weighted: bool) -> ShardBuilder {
        ShardBuilder {
            shard: Shard {
                columns: preprocess::empty_columns(width, rows),
                label: Vec::with_capacity(rows),
                weight: Vec::with_capacity(if weighted { rows } else { 0 }),
                hot: vec![],
            },
            ..Default::default()
        }
    }

    /// Encode `batch` and append the rows kept; returns which rows were kept.
    pub fn push(
        &mut self,
        layout: &Layout,
        encoders: &[Encoder],
        batch: &RecordBatch,
    ) -> Result<Vec<bool>> {
        let n = batch.num_rows();
        // Encoded straight onto the shard's columns; rows not kept are squeezed out after.
        let start = self.shard.rows();
        let mut valid = vec![true; n];
        let impute = layout.handle_nulls == NullPolicy::Impute;
        let encoded =
            preprocess::encode(encoders, batch, impute, &mut self.shard.columns, &mut valid);
        // The first row with a NULL that handle_nulls = 'error' refuses.
        let refused = match layout.handle_nulls {
            NullPolicy::Error => valid.iter().position(|v| !v),
            _ => None,
        };
        if encoded.is_err() || refused.is_some() {
            // The batch fails whole: the shard keeps the rows it had.
            for column in &mut self.shard.columns {
                column.truncate(start);
            }
        }
        encoded?;
        if let Some(i) = refused {
            let column = layout
                .inputs
                .iter()
                .find(|c| batch.column_by_name(c).is_some_and(|a| a.is_null(i)))
                .cloned()
                .unwrap_or_default();
            return Err(plan_err(format!(
                "column '{column}' is NULL in a training row and handle_nulls = 'error'; filter the rows, \
                 or use handle_nulls = 'drop' or 'impute'"
            )));
        }
        let label = cast(batch.column(layout.label_index), &DataType::Float64)?;
        let label = label.as_primitive::<Float64Type>();
        let weight = match layout.weight_index {
            Some(w) => Some(cast(batch.column(w), &DataType::Float64)?),
            None => None,
        };
        let mut keep = vec![false; n];
        for i in 0..n {
            let y = (!label.is_null(i)).then(|| label.value(i));
            let w = weight.as_ref().map(|w| {
                if w.is_null(i) {
                    f64::NAN
                } else {
                    w.as_primitive::<Float64Type>().value(i)
                }
            });
            let (Some(y), true) = (y, valid[i]) else {
                self.dropped += 1;
                continue;
            };
            if w.is_some_and(|w| w.is_nan() || w < 0.0) {
                self.dropped += 1;
                continue;
            }
            if layout.model_type.is_classifier() && y != 0.0 && y != 1.0 {
                note_bad_label(&mut self.bad_labels, y);
                continue;
            }
            keep[i] = true;
            self.shard.label.push(y);
            if let Some(w) = w {
                self.shard.weight.push(w);
            }
        }
        // Column by column: one sequential pass per feature instead of a scatter per row.
        if !keep.iter().all(|k| *k) {
            for column in &mut self.shard.columns {
                let mut at = start;
                for (i, kept) in keep.iter().enumerate() {
                    if *kept {
                        column[at] = column[start + i];
                        at += 1;
                    }
                }
                column.truncate(at);
            }
        }
        Ok(keep)
    }
}

/// Keep a label a classifier cannot take, once, up to 10,000 of them (for the error).
fn note_bad_label(bad: &mut Vec<f64>, y: f64) {
    if bad.len() < 10_000 && !bad.contains(&y) {
        bad.push(y);
    }
}

/// All partitions encoded: the training shards (one per partition), the held-out rows,
/// the encoders, and the counts training reports.
pub struct Encoded {
    pub inputs: Vec<String>,
    pub encoders: Vec<Encoder>,
    pub shards: Vec<Shard>,
    pub test: Shard,
    pub dropped: usize,
    pub bad_labels: Vec<f64>,
    pub rows_read: usize,
}

impl Encoded {
    /// Gather the partitions' builders (the last one holds the held-out rows).
    pub fn gather(
        inputs: Vec<String>,
        encoders: Vec<Encoder>,
        mut parts: Vec<ShardBuilder>,
        rows_read: usize,
    ) -> Encoded {
        let test = parts.pop().unwrap_or_default();
        let mut encoded = Encoded {
            inputs,
            encoders,
            shards: vec![],
            test: Shard::default(),
            dropped: 0,
            bad_labels: vec![],
            rows_read,
        };
        for part in parts {
            encoded.absorb(part);
        }
        // The held-out rows' drops and labels count too.
        encoded.absorb(test);
        encoded.test = encoded.shards.pop().unwrap_or_default();
        encoded
    }

    fn absorb(&mut self, part: ShardBuilder) {
        self.shards.push(part.shard);
        self.dropped += part.dropped;
        for y in part.bad_labels {
            note_bad_label(&mut self.bad_labels, y);
        }
    }
}

/// Encoding while reading, for a logistic or linear regression over numeric and categorical
/// features. A numeric feature is its value (the mean that imputes a NULL is filled in at
/// the end); a category is first its index in the partition's own dictionary, expanded into
/// the one-hot columns at the end, once all the partitions' counts give the category order.
#[derive(Debug, Clone)]
pub struct Streamed {
    layout: Layout,
    key_index: Option<usize>,
    /// The options (the split's fraction and seed).
    options: TrainOptions,
    /// Column index of each input.
    columns: Vec<usize>,
    /// Whether each input is a category.
    category: Vec<bool>,
    /// The batches' schema with every category column as Float64 (its dictionary index).
    indexed: Arc<Schema>,
    /// Provisional encoders (mean 0, σ 0; a category's index as a number).
    encoders: Vec<Encoder>,
}

/// One partition being read: training and held-out rows, and per input the count, sum and
/// sum of squares of its non-NULL training values, and the shard rows holding a NULL.
pub struct StreamedPartition {
    streamed: Arc<Streamed>,
    train: ShardBuilder,
    test: ShardBuilder,
    sums: Vec<[f64; 3]>,
    /// Per category input: the values seen, in order of first sight, and their counts in
    /// the training rows.
    dictionaries: Vec<HashMap<String, u32>>,
    counts: Vec<Vec<u64>>,
    train_nulls: Vec<Vec<usize>>,
    test_nulls: Vec<Vec<usize>>,
    rows_read: usize,
}

impl Streamed {
    /// `Some` when `options` train a model whose rows can be encoded as they arrive.
    pub fn for_training(
        options: &TrainOptions,
        schema: &Arc<Schema>,
    ) -> Result<Option<Arc<Streamed>>> {
        let linear = matches!(
            options.model_type,
            ModelType::LogisticRegression | ModelType::LinearRegression
        );
        if !linear || options.calibration.is_some() {
            return Ok(None);
        }
        // The same checks and column roles as training after the read.
        let prep = super::model::roles(options, schema)?;
        let (mut columns, mut category) = (vec![], vec![]);
        for name in &prep.inputs {
            let index = schema.index_of(name)?;
            match preprocess::kind_of(schema.field(index).data_type()) {
                Some("numeric") => category.push(false),
                Some("category") => category.push(true),
                _ => return Ok(None),
            }
            columns.push(index);
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (&c, _) in columns.iter().zip(&category).filter(|(_, k)| **k) {
            fields[c] = Field::new(fields[c].name(), DataType::Float64, true);
        }
        let encoders = prep
            .inputs
            .iter()
            .map(|c| Encoder::Numeric {
                column: c.clone(),
                mean: 0.0,
                std: 0.0,
            })
            .collect();
        Ok(Some(Arc::new(Streamed {
            layout: Layout::of(options, &prep),
            key_index: prep.key_index,
            options: options.clone(),
            columns,
            category,
            indexed: Arc::new(Schema::new(fields)),
            encoders,
        })))
    }

    pub fn partition(self: &Arc<Self>) -> StreamedPartition {
        let width = self.columns.len();
        let weighted = self.layout.weight_index.is_some();
        StreamedPartition {
            streamed: Arc::clone(self),
            train: ShardBuilder::with_capacity(width, 0, weighted),
            test: ShardBuilder::with_capacity(width, 0, weighted),
            sums: vec![[0.0; 3]; width],
            dictionaries: vec![HashMap::new(); width],
            counts: vec![vec![]; width],
            train_nulls: vec![vec![]; width],
            test_nulls: vec![vec![]; width],
            rows_read: 0,
        }
    }

    /// The partitions' rows as training takes them: encoders with the training rows' means
    /// and σ, NULLs imputed with those means.
    pub fn finish(&self, parts: Vec<StreamedPartition>) -> Encoded {
        let width = self.columns.len();
        let mut sums = vec![[0.0; 3]; width];
        for part in &parts {
            for (total, s) in sums.iter_mut().zip(&part.sums) {
                for k in 0..3 {
                    total[k] += s[k];
                }
            }
        }
        // preprocess::fit's statistics: the mean and the sample σ; the categories by count
        // (then name), the rarest dropped.
        let encoders: Vec<Encoder> = (0..width)
            .map(|j| {
                let column = self.layout.inputs[j].clone();
                if self.category[j] {
                    let mut counts: HashMap<&str, u64> = HashMap::new();
                    for part in &parts {
                        for (value, &k) in &part.dictionaries[j] {
                            let n = part.counts[j].get(k as usize).copied().unwrap_or(0);
                            if n > 0 {
                                *counts.entry(value.as_str()).or_default() += n;
                            }
                        }
                    }
                    let counts = counts.into_iter().map(|(v, n)| (v.to_string(), n));
                    return preprocess::one_hot(column, counts.collect());
                }
                let [n, sum, sq] = sums[j];
                preprocess::numeric(column, n, sum, sq)
            })
            .collect();
        let (means, categories): (Vec<f64>, Vec<&[String]>) = encoders
            .iter()
            .map(|e| match e {
                Encoder::Numeric { mean, .. } => (*mean, &[][..]),
                Encoder::OneHot { categories, .. } => (0.0, categories.as_slice()),
                _ => (0.0, &[][..]),
            })
            .unzip();
        let rows_read = parts.iter().map(|p| p.rows_read).sum();
        let mut builders = vec![];
        let mut test = ShardBuilder::default();
        for mut part in parts {
            // A partition's dictionary index → the category's one-hot column (none: the
            // dropped category, or one seen only in held-out rows).
            let slots: Vec<Vec<Option<usize>>> = (0..width)
                .map(|j| {
                    let mut slot = vec![None; part.dictionaries[j].len()];
                    for (k, c) in categories[j].iter().enumerate() {
                        if let Some(&local) = part.dictionaries[j].get(c) {
                            slot[local as usize] = Some(k);
                        }
                    }
                    slot
                })
                .collect();
            let columns = Columns {
                category: &self.category,
                means: &means,
                categories: &categories,
                slots: &slots,
            };
            columns.complete(&mut part.train.shard, &part.train_nulls);
            columns.complete(&mut part.test.shard, &part.test_nulls);
            builders.push(part.train);
            append(&mut test, part.test);
        }
        builders.push(test);
        Encoded::gather(self.layout.inputs.clone(), encoders, builders, rows_read)
    }
}

/// What turns a partition's rows as read into the model's columns.
struct Columns<'a> {
    category: &'a [bool],
    /// A numeric feature's mean, which imputes its NULLs.
    means: &'a [f64],
    categories: &'a [&'a [String]],
    /// Per category: the partition's dictionary index → one-hot column.
    slots: &'a [Vec<Option<usize>>],
}

impl Columns<'_> {
    /// Impute each numeric feature's NULL rows with its mean; replace each category's index
    /// column by its one-hot group, held as each row's level, where a NULL (imputed) is no
    /// level, all zeros, like an unknown value.
    fn complete(&self, shard: &mut Shard, nulls: &[Vec<usize>]) {
        let read = std::mem::take(&mut shard.columns);
        for (j, mut column) in read.into_iter().enumerate() {
            if !self.category[j] {
                for &i in &nulls[j] {
                    column[i] = self.means[j];
                }
                shard.columns.push(column);
                continue;
            }
            let levels = self.categories[j].len();
            if levels == 0 {
                continue;
            }
            let none = levels as u32;
            let mut level: Vec<u32> = column
                .iter()
                .map(|index| match self.slots[j].get(*index as usize) {
                    Some(Some(k)) => *k as u32,
                    _ => none,
                })
                .collect();
            for &i in &nulls[j] {
                level[i] = none;
            }
            shard.hot.push(Hot {
                first: shard.columns.len(),
                levels,
                level,
            });
            shard
                .columns
                .extend(std::iter::repeat_with(Vec::new).take(levels));
        }
    }
}

/// The held-out rows of every partition in one shard.
fn append(into: &mut ShardBuilder, part: ShardBuilder) {
    if into.shard.columns.is_empty() {
        into.shard.columns = vec![vec![]; part.shard.columns.len()];
    }
    for (target, column) in into.shard.columns.iter_mut().zip(part.shard.columns) {
        target.extend(column);
    }
    // Every partition has the same groups: the categories are counted over all of them.
    if into.shard.hot.is_empty() {
        into.shard.hot = part.shard.hot;
    } else {
        for (target, group) in into.shard.hot.iter_mut().zip(part.shard.hot) {
            target.level.extend(group.level);
        }
    }
    into.shard.label.extend(part.shard.label);
    into.shard.weight.extend(part.shard.weight);
    into.dropped += part.dropped;
    for y in part.bad_labels {
        note_bad_label(&mut into.bad_labels, y);
    }
}

impl StreamedPartition {
    /// Split, encode and keep one batch as it is read; the batch can be dropped after.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let s = Arc::clone(&self.streamed);
        self.rows_read += batch.num_rows();
        if s.options.split <= 0.0 {
            let batch = self.indexed(&s, batch)?;
            return self.push_train(&s, &batch);
        }
        // The split hashes the values as read (not the dictionary indices), as after the read.
        let held = super::model::held_out(batch, s.key_index, &s.options)?;
        let batch = self.indexed(&s, batch)?;
        let train_mask = datafusion::arrow::compute::not(&held)?;
        self.push_train(&s, &filter_record_batch(&batch, &train_mask)?)?;
        let test = filter_record_batch(&batch, &held)?;
        let first = self.test.shard.rows();
        let keep = self.test.push(&s.layout, &s.encoders, &test)?;
        note_nulls(&s, &test, &keep, first, &mut self.test_nulls)
    }

    /// The batch with each category column replaced by its values' dictionary indices.
    fn indexed(&mut self, s: &Streamed, batch: &RecordBatch) -> Result<RecordBatch> {
        if !s.category.iter().any(|c| *c) {
            return Ok(batch.clone());
        }
        let mut columns = batch.columns().to_vec();
        for (j, &c) in s.columns.iter().enumerate() {
            if !s.category[j] {
                continue;
            }
            let dictionary = &mut self.dictionaries[j];
            let mut indices = Float64Builder::with_capacity(batch.num_rows());
            preprocess::each_str(&columns[c], |_, v| {
                indices.append_option(v.map(|v| match dictionary.get(v) {
                    Some(k) => f64::from(*k),
                    None => {
                        let k = dictionary.len() as u32;
                        dictionary.insert(v.to_string(), k);
                        f64::from(k)
                    }
                }))
            })?;
            columns[c] = Arc::new(indices.finish());
        }
        Ok(RecordBatch::try_new(Arc::clone(&s.indexed), columns)?)
    }

    fn push_train(&mut self, s: &Streamed, batch: &RecordBatch) -> Result<()> {
        for (j, &c) in s.columns.iter().enumerate() {
            let values = cast(batch.column(c), &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            if s.category[j] {
                let counts = &mut self.counts[j];
                counts.resize(self.dictionaries[j].len(), 0);
                for k in values.iter().flatten() {
                    counts[k as usize] += 1;
                }
                continue;
            }
            preprocess::add_moments(&mut self.sums[j], values);
        }
        let first = self.train.shard.rows();
        let keep = self.train.push(&s.layout, &s.encoders, batch)?;
        note_nulls(s, batch, &keep, first, &mut self.train_nulls)
    }
}

/// Record which kept rows (numbered from `first` in the shard) hold a NULL, per input.
fn note_nulls(
    s: &Streamed,
    batch: &RecordBatch,
    keep: &[bool],
    first: usize,
    nulls: &mut [Vec<usize>],
) -> Result<()> {
    if s.layout.handle_nulls != NullPolicy::Impute {
        return Ok(());
    }
    for (rows, &c) in nulls.iter_mut().zip(&s.columns) {
        let column = batch.column(c);
        if column.null_count() == 0 {
            continue;
        }
        let mut at = first;
        for (i, kept) in keep.iter().enumerate() {
            if *kept {
                if column.is_null(i) {
                    rows.push(at);
                }
                at += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::model::{Hooks, TrainingData, train};
    use datafusion::arrow::array::{BooleanArray, Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    /// Two partitions of rows with NULL features, NULL and negative weights, a NULL label.
    fn partitions(schema: &Arc<Schema>) -> Vec<Vec<RecordBatch>> {
        let batch = |from: usize| {
            let rows = from..from + 300;
            let x: Vec<Option<f64>> = rows
                .clone()
                .map(|i| (i % 17 != 3).then(|| (i as f64 * 0.37).sin()))
                .collect();
            let z: Vec<Option<i32>> = rows
                .clone()
                .map(|i| (i % 23 != 5).then_some((i % 11) as i32))
                .collect();
            let w: Vec<Option<f64>> = rows
                .clone()
                .map(|i| match i % 31 {
                    1 => None,
                    2 => Some(-1.0),
                    k => Some(0.5 + k as f64 / 31.0),
                })
                .collect();
            let y: Vec<Option<f64>> = rows
                .map(|i| (i % 41 != 7).then_some(f64::from((i * 7) % 5 < 2)))
                .collect();
            // Categories of different frequencies, NULLs, one seen only late (partition 2).
            let c: Vec<Option<String>> = (from..from + 300)
                .map(|i| match i % 13 {
                    0 => None,
                    1..=5 => Some("often".to_string()),
                    6 | 7 => Some(format!("k{}", i % 3)),
                    8 if i > 650 => Some("late".to_string()),
                    _ => Some("rare".to_string()),
                })
                .collect();
            let b: Vec<Option<bool>> = (from..from + 300).map(|i| Some(i % 4 == 1)).collect();
            RecordBatch::try_new(
                Arc::clone(schema),
                vec![
                    Arc::new(Float64Array::from(x)),
                    Arc::new(Int32Array::from(z)),
                    Arc::new(StringArray::from(c)),
                    Arc::new(BooleanArray::from(b)),
                    Arc::new(Float64Array::from(w)),
                    Arc::new(Float64Array::from(y)),
                ],
            )
            .unwrap()
        };
        vec![vec![batch(0), batch(300)], vec![batch(600)]]
    }

    /// Encoding as the rows arrive trains the same model as encoding after the read.
    #[test]
    fn streamed_encoding_trains_the_same_model() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("z", DataType::Int32, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("w", DataType::Float64, true),
            Field::new("y", DataType::Float64, true),
        ]));
        for (model_type, nulls, split) in [
            (ModelType::LogisticRegression, NullPolicy::Impute, 0.0),
            (ModelType::LogisticRegression, NullPolicy::Impute, 0.3),
            (ModelType::LogisticRegression, NullPolicy::Drop, 0.3),
            (ModelType::LinearRegression, NullPolicy::Impute, 0.25),
        ] {
            let mut options = TrainOptions::new(model_type, "y".into());
            options.handle_nulls = nulls;
            options.split = split;
            options.weight_col = Some("w".into());
            let parts = partitions(&schema);
            let after = TrainingData {
                schema: Arc::clone(&schema),
                partitions: parts.clone(),
                encoded: None,
            };
            let streamed = Streamed::for_training(&options, &schema).unwrap().unwrap();
            let mut encoding = vec![];
            for part in &parts {
                let mut p = streamed.partition();
                for batch in part {
                    p.push(batch).unwrap();
                }
                encoding.push(p);
            }
            let during = TrainingData {
                schema: Arc::clone(&schema),
                partitions: vec![],
                encoded: Some(streamed.finish(encoding)),
            };
            let a = train("m", 1, &options, &after, &Hooks::none()).unwrap();
            let b = train("m", 1, &options, &during, &Hooks::none()).unwrap();
            let case = format!("{model_type:?} {nulls:?} split {split}");
            assert_eq!(a.training.rows_used, b.training.rows_used, "{case}");
            assert_eq!(a.training.rows_dropped, b.training.rows_dropped, "{case}");
            assert_eq!(a.training.rows_held_out, b.training.rows_held_out, "{case}");
            assert!(a.training.rows_held_out > 0 || split == 0.0, "{case}");
            let close = |p: f64, q: f64| (p - q).abs() <= 1e-12 * p.abs().max(1.0);
            for (p, q) in a.coefficients.iter().zip(&b.coefficients) {
                assert!(
                    close(*p, *q),
                    "{case}: {:?} vs {:?}",
                    a.coefficients,
                    b.coefficients
                );
            }
            assert!(close(a.intercept, b.intercept), "{case}");
            // The streamed rows hold the category as levels, the others as 0/1 columns.
            for (p, q) in a.mean_abs_contribution.iter().zip(&b.mean_abs_contribution) {
                assert!(close(*p, *q), "{case}: {p} vs {q}");
            }
            assert_eq!(a.mean_abs_contribution.len(), 4, "{case}");
            // Means and σ summed per partition first: equal to rounding.
            for (p, q) in a.encoders.iter().zip(&b.encoders) {
                match (p, q) {
                    (
                        Encoder::Numeric { column, mean, std },
                        Encoder::Numeric {
                            column: c,
                            mean: m,
                            std: s,
                        },
                    ) => assert!(column == c && close(*mean, *m) && close(*std, *s), "{case}"),
                    _ => assert_eq!(p, q, "{case}"),
                }
            }
            assert_eq!(a.encoders.len(), b.encoders.len(), "{case}");
            assert_eq!(a.coefficients.len(), b.coefficients.len(), "{case}");
        }
        // A date feature's encoder needs its means first: no encoding while reading.
        let dates = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("y", DataType::Float64, true),
        ]));
        let options = TrainOptions::new(ModelType::LogisticRegression, "y".into());
        assert!(Streamed::for_training(&options, &dates).unwrap().is_none());
    }
}
