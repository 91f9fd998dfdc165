//! IMPORT MODEL … OPTIONS (format = 'spark'): a model directory saved by Spark ML's
//! `model.write().save(path)` — a LogisticRegressionModel or LinearRegressionModel, or a
//! PipelineModel of StringIndexer, OneHotEncoder and VectorAssembler stages ending in one —
//! turned into Augur's encoders and coefficients, so the same rows score the same without a
//! JVM. Spark keeps each stage as a JSON line (`metadata/part-00000`: class, params) and its
//! fitted values as Parquet (`data/*.parquet`, vectors and matrices as Spark's UDT structs).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{Float64Type, Int8Type, Int32Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::model::Model;
use super::options::{ModelType, TrainOptions};
use super::preprocess::{Encoder, Unknown};

/// The files of a saved model, by path relative to its directory.
pub type Files = BTreeMap<String, Bytes>;

const SUPPORTED: &str = "StringIndexer, OneHotEncoder and VectorAssembler stages ending in \
                         LogisticRegression or LinearRegression";

/// One stage: its directory (relative, ending in '/'), class and parameters.
struct Stage<'a> {
    dir: String,
    class: String,
    uid: String,
    spark_version: String,
    params: Value,
    files: &'a Files,
}

impl Stage<'_> {
    fn read<'a>(files: &'a Files, dir: &str) -> Result<Stage<'a>, String> {
        let path = format!("{dir}metadata/part-00000");
        let bytes = files.get(&path).ok_or_else(|| {
            format!("no {path}: not a directory written by Spark ML's model.write().save()")
        })?;
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{path} is not text"))?;
        let meta: Value = serde_json::from_str(text.lines().next().unwrap_or(""))
            .map_err(|e| format!("{path} is not Spark ML metadata: {e}"))?;
        let class = meta["class"]
            .as_str()
            .ok_or_else(|| format!("{path} names no class"))?;
        // Set parameters win over defaults, as in Spark.
        let mut params = meta["defaultParamMap"].clone();
        if let (Some(all), Some(set)) = (params.as_object_mut(), meta["paramMap"].as_object()) {
            for (k, v) in set {
                all.insert(k.clone(), v.clone());
            }
        }
        Ok(Stage {
            dir: dir.to_string(),
            class: class.rsplit('.').next().unwrap_or(class).to_string(),
            uid: meta["uid"].as_str().unwrap_or("").to_string(),
            spark_version: meta["sparkVersion"].as_str().unwrap_or("").to_string(),
            params,
            files,
        })
    }

    fn text(&self, name: &str) -> Result<&str, String> {
        self.params[name]
            .as_str()
            .ok_or_else(|| format!("{} ({}) has no parameter {name}", self.class, self.uid))
    }

    fn texts(&self, many: &str, one: &str) -> Result<Vec<String>, String> {
        if let Some(list) = self.params[many].as_array() {
            return Ok(list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect());
        }
        Ok(vec![self.text(one)?.to_string()])
    }

    /// The stage's one row of fitted values.
    fn data(&self) -> Result<RecordBatch, String> {
        let prefix = format!("{}data/", self.dir);
        let (path, bytes) = self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .find(|(p, _)| p.ends_with(".parquet"))
            .ok_or_else(|| format!("{} ({}) has no {prefix}*.parquet", self.class, self.uid))?;
        let bad = |e: &dyn std::fmt::Display| format!("{path}: {e}");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(|e| bad(&e))?
            .build()
            .map_err(|e| bad(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            if batch.num_rows() > 0 {
                return Ok(batch);
            }
        }
        Err(format!("{path} holds no rows"))
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, String> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| format!("the stage's data has no column '{name}'"))
}

fn ints(array: &dyn Array) -> Vec<usize> {
    array
        .as_primitive::<Int32Type>()
        .values()
        .iter()
        .map(|v| (*v).max(0) as usize)
        .collect()
}

fn doubles(array: &dyn Array) -> Vec<f64> {
    array.as_primitive::<Float64Type>().values().to_vec()
}

/// A list field of row 0 of a struct (empty when NULL).
fn list_of(s: &StructArray, name: &str) -> Result<Option<std::sync::Arc<dyn Array>>, String> {
    let list = s
        .column_by_name(name)
        .ok_or_else(|| format!("a Spark vector or matrix without '{name}'"))?
        .as_list_opt::<i32>()
        .ok_or_else(|| format!("'{name}' is not a list"))?;
    Ok((!list.is_null(0)).then(|| list.value(0)))
}

fn int_field(s: &StructArray, name: &str) -> Result<usize, String> {
    s.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .filter(|c| !c.is_null(0))
        .map(|c| c.value(0).max(0) as usize)
        .ok_or_else(|| format!("a Spark vector or matrix without '{name}'"))
}

/// Row 0 of a Spark `VectorUDT` column, dense.
fn vector(array: &dyn Array) -> Result<Vec<f64>, String> {
    let s = array.as_struct_opt().ok_or("not a Spark vector")?;
    let kind = s
        .column_by_name("type")
        .and_then(|c| c.as_primitive_opt::<Int8Type>())
        .map(|c| c.value(0))
        .ok_or("a Spark vector without 'type'")?;
    let values = list_of(s, "values")?
        .map(|v| doubles(&v))
        .unwrap_or_default();
    if kind == 1 {
        return Ok(values);
    }
    let mut dense = vec![0.0; int_field(s, "size")?];
    let indices = list_of(s, "indices")?.map(|v| ints(&v)).unwrap_or_default();
    for (i, v) in indices.into_iter().zip(values) {
        *dense
            .get_mut(i)
            .ok_or("a sparse vector index past its size")? = v;
    }
    Ok(dense)
}

/// Row 0 of a Spark `MatrixUDT` column, dense, as rows.
fn matrix(array: &dyn Array) -> Result<Vec<Vec<f64>>, String> {
    let s = array.as_struct_opt().ok_or("not a Spark matrix")?;
    let kind = s
        .column_by_name("type")
        .and_then(|c| c.as_primitive_opt::<Int8Type>())
        .map(|c| c.value(0))
        .ok_or("a Spark matrix without 'type'")?;
    let (rows, cols) = (int_field(s, "numRows")?, int_field(s, "numCols")?);
    let transposed = s
        .column_by_name("isTransposed")
        .and_then(|c| c.as_boolean_opt())
        .is_some_and(|c| c.value(0));
    let values = list_of(s, "values")?
        .map(|v| doubles(&v))
        .unwrap_or_default();
    let mut out = vec![vec![0.0; cols]; rows];
    let mut set = |r: usize, c: usize, v: f64| -> Result<(), String> {
        *out.get_mut(r)
            .and_then(|row| row.get_mut(c))
            .ok_or("a matrix entry outside its shape")? = v;
        Ok(())
    };
    if kind == 1 {
        // Dense: column-major, or row-major when transposed.
        for (k, v) in values.into_iter().enumerate() {
            let (r, c) = if transposed {
                (k / cols.max(1), k % cols.max(1))
            } else {
                (k % rows.max(1), k / rows.max(1))
            };
            set(r, c, v)?;
        }
    } else {
        // Sparse: compressed columns, or compressed rows when transposed.
        let ptrs = list_of(s, "colPtrs")?.map(|v| ints(&v)).unwrap_or_default();
        let index = list_of(s, "rowIndices")?
            .map(|v| ints(&v))
            .unwrap_or_default();
        for outer in 0..ptrs.len().saturating_sub(1) {
            for k in ptrs[outer]..ptrs[outer + 1] {
                let (inner, v) = (index.get(k), values.get(k));
                let (Some(&inner), Some(&v)) = (inner, v) else {
                    return Err("a sparse matrix shorter than its pointers".into());
                };
                if transposed {
                    set(outer, inner, v)?;
                } else {
                    set(inner, outer, v)?;
                }
            }
        }
    }
    Ok(out)
}

/// What a pipeline column holds, as far as the stages so far have made it.
enum Source {
    Indexed {
        input: String,
        labels: Vec<String>,
        unknown: Unknown,
    },
    Encoded(Vec<Encoder>),
}

/// The last stage: the model and its features column.
struct Predictor {
    model_type: ModelType,
    label: String,
    threshold: f64,
    coefficients: Vec<f64>,
    intercept: f64,
    features: String,
}

fn predictor(stage: &Stage) -> Result<Predictor, String> {
    let data = stage.data()?;
    let label = stage.text("labelCol")?.to_string();
    let features = stage.text("featuresCol")?.to_string();
    match stage.class.as_str() {
        "LogisticRegressionModel" => {
            let classes = column(&data, "numClasses")?
                .as_primitive_opt::<Int32Type>()
                .map_or(0, |c| c.value(0));
            if classes != 2 {
                return Err(format!(
                    "{} has {classes} classes; Augur's logistic models are binary (0/1)",
                    stage.uid
                ));
            }
            let b = matrix(column(&data, "coefficientMatrix")?)?;
            let c = vector(column(&data, "interceptVector")?)?;
            // Binary softmax (family = 'multinomial') is the logistic of the rows' difference.
            let (coefficients, intercept) = match (b.as_slice(), c.as_slice()) {
                ([w], [c]) => (w.clone(), *c),
                ([w0, w1], [c0, c1]) => (w1.iter().zip(w0).map(|(a, b)| a - b).collect(), c1 - c0),
                _ => {
                    return Err(format!(
                        "{}: coefficients of an unexpected shape",
                        stage.uid
                    ));
                }
            };
            let threshold = stage.params["threshold"].as_f64().unwrap_or(0.5);
            Ok(Predictor {
                model_type: ModelType::LogisticRegression,
                label,
                threshold,
                coefficients,
                intercept,
                features,
            })
        }
        "LinearRegressionModel" => {
            let intercept = column(&data, "intercept")?
                .as_primitive_opt::<Float64Type>()
                .map_or(0.0, |c| c.value(0));
            Ok(Predictor {
                model_type: ModelType::LinearRegression,
                label,
                threshold: 0.5,
                coefficients: vector(column(&data, "coefficients")?)?,
                intercept,
                features,
            })
        }
        other => Err(unsupported(other, &stage.uid)),
    }
}

fn unsupported(class: &str, uid: &str) -> String {
    format!("Spark stage {class} ({uid}) is not supported; IMPORT MODEL reads {SUPPORTED}")
}

/// StringIndexer: each output column indexes an input column by its stored labels.
fn string_indexer(stage: &Stage, columns: &mut HashMap<String, Source>) -> Result<(), String> {
    let data = stage.data()?;
    let labels: Vec<Vec<String>> = if let Some(many) = data.column_by_name("labelsArray") {
        let outer = many
            .as_list_opt::<i32>()
            .ok_or("labelsArray is not a list")?;
        let inner = outer.value(0);
        let inner = inner
            .as_list_opt::<i32>()
            .ok_or("labelsArray is not a list")?;
        (0..inner.len()).map(|i| strings(&inner.value(i))).collect()
    } else {
        let one = column(&data, "labels")?
            .as_list_opt::<i32>()
            .ok_or("labels is not a list")?;
        vec![strings(&one.value(0))]
    };
    let inputs = stage.texts("inputCols", "inputCol")?;
    let outputs = stage.texts("outputCols", "outputCol")?;
    let unknown = match stage.params["handleInvalid"].as_str() {
        Some("keep") => Unknown::ZerosWithNull,
        _ => Unknown::Unscored,
    };
    if inputs.len() != outputs.len() || inputs.len() != labels.len() {
        return Err(format!(
            "{}: input, output and label counts differ",
            stage.uid
        ));
    }
    for ((input, output), labels) in inputs.into_iter().zip(outputs).zip(labels) {
        if columns.contains_key(&input) {
            return Err(format!(
                "{} indexes '{input}', a column an earlier stage made; Augur imports \
                 StringIndexers of input columns",
                stage.uid
            ));
        }
        columns.insert(
            output,
            Source::Indexed {
                input,
                labels,
                unknown,
            },
        );
    }
    Ok(())
}

fn strings(array: &dyn Array) -> Vec<String> {
    array
        .as_string_opt::<i32>()
        .map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

/// OneHotEncoder over indexed columns: position k of the vector is label k.
fn one_hot(stage: &Stage, columns: &mut HashMap<String, Source>) -> Result<(), String> {
    let data = stage.data()?;
    let sizes = column(&data, "categorySizes")?
        .as_list_opt::<i32>()
        .map(|l| ints(&l.value(0)))
        .ok_or("categorySizes is not a list")?;
    let inputs = stage.texts("inputCols", "inputCol")?;
    let outputs = stage.texts("outputCols", "outputCol")?;
    let drop_last = stage.params["dropLast"].as_bool().unwrap_or(true);
    let keep_invalid = stage.params["handleInvalid"].as_str() == Some("keep");
    for ((input, output), size) in inputs.into_iter().zip(outputs).zip(sizes) {
        let Some(Source::Indexed {
            input: column,
            labels,
            unknown,
        }) = columns.get(&input)
        else {
            return Err(format!(
                "{} one-hot encodes '{input}', which is not a StringIndexer output; Augur \
                 imports one-hot encodings of indexed strings",
                stage.uid
            ));
        };
        // Spark's vector width for these settings (OneHotEncoderModel.getConfigedCategorySizes).
        let width = match (drop_last, keep_invalid) {
            (true, true) | (false, false) => size,
            (true, false) => size.saturating_sub(1),
            (false, true) => size + 1,
        };
        if width > labels.len() {
            return Err(format!(
                "{} gives unknown values of '{column}' a position of their own (dropLast = false \
                 with handleInvalid = 'keep'); Augur imports encodings where unknown values are \
                 all zeros",
                stage.uid
            ));
        }
        let encoder = Encoder::OneHot {
            column: column.clone(),
            categories: labels[..width].to_vec(),
            dropped: labels.get(width).cloned(),
            counts: vec![],
            unknown: *unknown,
        };
        columns.insert(output, Source::Encoded(vec![encoder]));
    }
    Ok(())
}

/// VectorAssembler: input columns (numbers) and earlier stages' vectors, concatenated.
fn assembler(stage: &Stage, columns: &mut HashMap<String, Source>) -> Result<(), String> {
    let mut encoders = vec![];
    for input in stage.texts("inputCols", "inputCol")? {
        match columns.get(&input) {
            None => encoders.push(Encoder::Numeric {
                column: input,
                mean: 0.0,
                std: 0.0,
            }),
            Some(Source::Encoded(e)) => encoders.extend(e.iter().cloned()),
            Some(Source::Indexed { .. }) => {
                return Err(format!(
                    "{} assembles '{input}', a StringIndexer's index, as a number; Augur \
                     imports indexed strings one-hot encoded",
                    stage.uid
                ));
            }
        }
    }
    columns.insert(
        stage.text("outputCol")?.to_string(),
        Source::Encoded(encoders),
    );
    Ok(())
}

/// Read a saved Spark model. `features` names the input columns of a bare model's features
/// vector, in order; `label` overrides the label column's name.
pub fn read(
    name: &str,
    location: &str,
    files: &Files,
    features: Option<&[String]>,
    label: Option<&str>,
) -> Result<Model, String> {
    let root = Stage::read(files, "")?;
    let mut stages = vec![];
    if root.class == "PipelineModel" {
        let uids: Vec<&str> = root.params["stageUids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (i, uid) in uids.iter().enumerate() {
            stages.push(Stage::read(files, &format!("stages/{i}_{uid}/"))?);
        }
    } else {
        stages.push(root);
    }
    let Some((last, preprocessing)) = stages.split_last() else {
        return Err("the pipeline has no stages".into());
    };
    let mut columns: HashMap<String, Source> = HashMap::new();
    for stage in preprocessing {
        match stage.class.as_str() {
            "StringIndexerModel" => string_indexer(stage, &mut columns)?,
            "OneHotEncoderModel" => one_hot(stage, &mut columns)?,
            "VectorAssembler" => assembler(stage, &mut columns)?,
            other => return Err(unsupported(other, &stage.uid)),
        }
    }
    let p = predictor(last)?;
    let encoders = match (columns.remove(&p.features), features) {
        (Some(Source::Encoded(e)), None) => e,
        (None, Some(names)) => names
            .iter()
            .map(|n| Encoder::Numeric {
                column: n.clone(),
                mean: 0.0,
                std: 0.0,
            })
            .collect(),
        (Some(_), Some(_)) => {
            return Err(format!(
                "option features names the columns of a bare model's '{}' vector; this \
                 pipeline assembles it itself, leave the option out",
                p.features
            ));
        }
        _ => {
            return Err(format!(
                "{} reads its features from the vector column '{}'; name the {} input columns \
                 it holds, in order: OPTIONS (format = 'spark', features = 'a, b, …')",
                last.uid,
                p.features,
                p.coefficients.len()
            ));
        }
    };
    let width: usize = encoders.iter().map(Encoder::width).sum();
    if width != p.coefficients.len() {
        return Err(format!(
            "{} has {} coefficients but its features vector has {width} entries{}",
            last.uid,
            p.coefficients.len(),
            if features.is_some() {
                " (the columns named by option features)"
            } else {
                ""
            }
        ));
    }
    let mut options = TrainOptions::new(p.model_type, label.unwrap_or(&p.label).to_string());
    options.threshold = p.threshold;
    // The training settings Spark recorded, so DESCRIBE MODEL shows how it was fitted.
    let param = |n: &str| last.params[n].as_f64();
    options.reg_param = param("regParam").unwrap_or(0.0);
    options.elastic_net_param = param("elasticNetParam").unwrap_or(0.0);
    options.max_iter = param("maxIter").map_or(100, |v| v as usize);
    options.tol = param("tol").unwrap_or(1e-6);
    options.fit_intercept = last.params["fitIntercept"].as_bool().unwrap_or(true);
    options.standardization = last.params["standardization"].as_bool().unwrap_or(true);
    let mut inputs: Vec<String> = vec![];
    for e in &encoders {
        if !inputs.iter().any(|i| i == e.column()) {
            inputs.push(e.column().to_string());
        }
    }
    let stop_reason = format!(
        "imported from {location} (Spark {} {})",
        last.spark_version, last.class
    );
    let mut model = Model::bare(name, options, inputs, stop_reason);
    model.feature_names = encoders.iter().flat_map(Encoder::feature_names).collect();
    model.feature_mean = vec![0.0; width];
    model.feature_std = vec![0.0; width];
    model.encoders = encoders;
    model.coefficients = p.coefficients;
    model.intercept = p.intercept;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Array;
    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Int8Array, Int32Array, ListArray, StructArray,
    };
    use datafusion::arrow::datatypes::{Field, Float64Type, Int32Type};

    use super::{matrix, vector};

    fn ints(v: Option<Vec<i32>>) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>([
            v.map(|v| v.into_iter().map(Some).collect::<Vec<_>>())
        ]))
    }

    fn doubles(v: Vec<f64>) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            v.into_iter().map(Some).collect::<Vec<_>>(),
        )]))
    }

    fn field(name: &str, a: &ArrayRef) -> Arc<Field> {
        Arc::new(Field::new(name, a.data_type().clone(), true))
    }

    /// Spark's MatrixUDT layout: (type, numRows, numCols, colPtrs, rowIndices, values, isTransposed).
    fn spark_matrix(
        sparse: bool,
        shape: (i32, i32),
        ptrs: Option<Vec<i32>>,
        index: Option<Vec<i32>>,
        values: Vec<f64>,
        transposed: bool,
    ) -> StructArray {
        let parts: Vec<(&str, ArrayRef)> = vec![
            ("type", Arc::new(Int8Array::from(vec![i8::from(!sparse)]))),
            ("numRows", Arc::new(Int32Array::from(vec![shape.0]))),
            ("numCols", Arc::new(Int32Array::from(vec![shape.1]))),
            ("colPtrs", ints(ptrs)),
            ("rowIndices", ints(index)),
            ("values", doubles(values)),
            (
                "isTransposed",
                Arc::new(BooleanArray::from(vec![transposed])),
            ),
        ];
        StructArray::from(
            parts
                .into_iter()
                .map(|(n, a)| (field(n, &a), a))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn dense_and_sparse_matrices_in_both_orders() {
        // [[1, 0, 2], [0, 3, 0]]
        let want = vec![vec![1.0, 0.0, 2.0], vec![0.0, 3.0, 0.0]];
        let col_major = spark_matrix(
            false,
            (2, 3),
            None,
            None,
            vec![1.0, 0.0, 0.0, 3.0, 2.0, 0.0],
            false,
        );
        assert_eq!(matrix(&col_major).unwrap(), want);
        let row_major = spark_matrix(
            false,
            (2, 3),
            None,
            None,
            vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0],
            true,
        );
        assert_eq!(matrix(&row_major).unwrap(), want);
        let csc = spark_matrix(
            true,
            (2, 3),
            Some(vec![0, 1, 2, 3]),
            Some(vec![0, 1, 0]),
            vec![1.0, 3.0, 2.0],
            false,
        );
        assert_eq!(matrix(&csc).unwrap(), want);
        let csr = spark_matrix(
            true,
            (2, 3),
            Some(vec![0, 2, 3]),
            Some(vec![0, 2, 1]),
            vec![1.0, 2.0, 3.0],
            true,
        );
        assert_eq!(matrix(&csr).unwrap(), want);
        let outside = spark_matrix(
            true,
            (1, 2),
            Some(vec![0, 1]),
            Some(vec![5]),
            vec![1.0],
            true,
        );
        assert!(matrix(&outside).unwrap_err().contains("outside its shape"));
    }

    #[test]
    fn sparse_vectors_expand() {
        let parts: Vec<(&str, ArrayRef)> = vec![
            ("type", Arc::new(Int8Array::from(vec![0i8]))),
            ("size", Arc::new(Int32Array::from(vec![4]))),
            ("indices", ints(Some(vec![1, 3]))),
            ("values", doubles(vec![0.5, -2.0])),
        ];
        let v = StructArray::from(
            parts
                .into_iter()
                .map(|(n, a)| (field(n, &a), a))
                .collect::<Vec<_>>(),
        );
        assert_eq!(vector(&v).unwrap(), vec![0.0, 0.5, 0.0, -2.0]);
    }
}
