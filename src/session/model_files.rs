//! IMPORT MODEL and EXPORT MODEL: model files read from and written to local paths or object
//! storage through the session's object stores (so the server's file sandbox and the S3
//! credential chain apply): LightGBM's model.txt for boosted trees both ways, and one SQL
//! expression for scorecards and linear models (EXPORT … OPTIONS (format = 'sql')).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::Session;
use super::models::{Planned, rows};
use crate::error::{AugurError, Result};
use crate::ml::gbdt::lightgbm;
use crate::ml::gbdt::params::Objective;
use crate::ml::model::Model;
use crate::ml::options::{ModelType, OptionValue, TrainOptions};
use crate::ml::registry::Registry;
use crate::ml::spark_import;
use crate::storage::sandbox;

/// Largest model file read: past this it is not a model (LightGBM files of 1,000 trees of
/// 255 leaves are ~30 MB).
const MAX_MODEL_BYTES: usize = 512 << 20;

fn usage(m: String) -> AugurError {
    AugurError::Usage(m)
}

/// The `format` option (LightGBM by default), the label name for imports, and `aws.*`
/// options for the location's bucket.
struct FileOptions {
    /// `lightgbm` (model.txt) or, for EXPORT, `sql` (one portable expression) or `pmml`.
    format: &'static str,
    label: Option<String>,
    /// IMPORT … format 'spark' of a bare model: the columns of its features vector.
    features: Option<Vec<String>>,
    aws: Vec<(String, String)>,
}

fn file_options(options: &[(String, OptionValue)], verb: &str) -> Result<FileOptions> {
    let mut out = FileOptions {
        format: "lightgbm",
        label: None,
        features: None,
        aws: vec![],
    };
    for (name, value) in options {
        let text = match value {
            OptionValue::Text(t) | OptionValue::Number(t) => t.clone(),
            OptionValue::Bool(b) => b.to_string(),
        };
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "format" => {
                if text.eq_ignore_ascii_case("sql") && verb == "EXPORT" {
                    out.format = "sql";
                } else if text.eq_ignore_ascii_case("pmml") && verb == "EXPORT" {
                    out.format = "pmml";
                } else if text.eq_ignore_ascii_case("onnx") && verb == "EXPORT" {
                    out.format = "onnx";
                } else if text.eq_ignore_ascii_case("spark") && verb == "IMPORT" {
                    out.format = "spark";
                } else if !text.eq_ignore_ascii_case("lightgbm") {
                    return Err(usage(format!(
                        "{verb} MODEL: format '{text}' is not supported; use format = 'lightgbm' (LightGBM's model.txt){}",
                        if verb == "EXPORT" {
                            ", 'sql' (scorecards and linear models as one SQL expression) or 'pmml' (scorecards, PMML 4.4) or 'onnx' (logistic and linear regressions and boosted trees on numbers)"
                        } else {
                            " or 'spark' (a directory saved by Spark ML's model.write().save())"
                        }
                    )));
                }
            }
            "label" if verb == "IMPORT" => out.label = Some(text),
            "features" if verb == "IMPORT" => {
                out.features = Some(
                    text.split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect(),
                )
            }
            _ if lower.starts_with("aws.") => {
                out.aws.push((lower["aws.".len()..].to_string(), text))
            }
            _ => {
                return Err(usage(format!(
                    "{verb} MODEL: unknown option '{name}'; valid options: format{}, aws.*",
                    if verb == "IMPORT" {
                        ", label, features"
                    } else {
                        ""
                    }
                )));
            }
        }
    }
    Ok(out)
}

/// The store and path of a location, with the session's sandbox and credentials applied.
fn locate(
    session: &Session,
    location: &str,
    aws: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, StorePath, Option<std::path::PathBuf>)> {
    sandbox::check_location(location, true)?;
    if !aws.is_empty() {
        session
            .db
            .object_stores()
            .configure(location, aws)
            .map_err(AugurError::Usage)?;
    }
    let url = crate::storage::files::parse_location(location)?;
    let store = session.ctx.runtime_env().object_store(&url)?;
    let local = (url.scheme() == "file")
        .then(|| std::path::PathBuf::from(format!("/{}", url.prefix().as_ref())));
    Ok((store, url.prefix().clone(), local))
}

pub async fn import(
    session: &Session,
    registry: &Registry,
    name: &str,
    location: &str,
    options: &[(String, OptionValue)],
) -> Result<Planned> {
    if name.contains('@') || name.is_empty() {
        return Err(usage(format!(
            "'{name}' is not a model name: versions are numbered by Augur"
        )));
    }
    let opts = file_options(options, "IMPORT")?;
    if location.trim().is_empty() {
        return Err(usage(
            "IMPORT MODEL: the location is empty; give a file, a directory or an s3:// URL".into(),
        ));
    }
    let (store, path, _) = locate(session, location, &opts.aws)?;
    if opts.format == "spark" {
        let files = spark_files(&store, &path, location).await?;
        let model = spark_import::read(
            name,
            location,
            &files,
            opts.features.as_deref(),
            opts.label.as_deref(),
        )
        .map_err(|e| usage(format!("IMPORT MODEL: '{location}': {e}")))?;
        let model = registry.add(model)?;
        return Ok(imported_row(&model, 0));
    }
    if opts.features.is_some() {
        return Err(usage(
            "IMPORT MODEL: option features is for format = 'spark' (a bare model's features vector)"
                .into(),
        ));
    }
    let object = store.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => {
            usage(format!("IMPORT MODEL: no file at '{location}'"))
        }
        other => AugurError::from(datafusion::error::DataFusionError::ObjectStore(Box::new(
            other,
        ))),
    })?;
    if object.meta.size as usize > MAX_MODEL_BYTES {
        return Err(usage(format!(
            "IMPORT MODEL: '{location}' is {} bytes, more than a model file can be ({MAX_MODEL_BYTES})",
            object.meta.size
        )));
    }
    let bytes = object.bytes().await.map_err(|e| {
        AugurError::from(datafusion::error::DataFusionError::ObjectStore(Box::new(e)))
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        usage(format!(
            "IMPORT MODEL: '{location}' is not a LightGBM text model (it is not text)"
        ))
    })?;
    let mut trees =
        lightgbm::parse(text).map_err(|e| usage(format!("IMPORT MODEL: '{location}': {e}")))?;
    trees.imported_from = Some(location.to_string());
    let model_type = if trees.objective == Objective::Binary {
        ModelType::BoostedTreeClassifier
    } else {
        ModelType::BoostedTreeRegressor
    };
    let mut train_options =
        TrainOptions::new(model_type, opts.label.unwrap_or_else(|| "label".into()));
    if let Some(p) = train_options.trees.as_mut() {
        p.num_iterations = trees.trees.len();
    }
    let mut model = Model::bare(
        name,
        train_options,
        trees.features.iter().map(|f| f.name.clone()).collect(),
        format!("imported from {location}"),
    );
    model.training.iterations = trees.trees.len();
    model.trees = Some(trees);
    let model = registry.add(model)?;
    let t = model.trees.as_ref().map_or(0, |t| t.trees.len());
    Ok(imported_row(&model, t))
}

/// The row IMPORT MODEL answers: name, version, type, trees, input columns.
fn imported_row(model: &Model, trees: usize) -> Planned {
    rows(
        vec![
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("model_type", DataType::Utf8, false),
            Field::new("trees", DataType::Int64, false),
            Field::new("features", DataType::Int64, false),
        ],
        vec![
            Arc::new(StringArray::from(vec![model.name.clone()])) as ArrayRef,
            Arc::new(Int64Array::from(vec![i64::from(model.version)])),
            Arc::new(StringArray::from(vec![model.options.model_type.name()])),
            Arc::new(Int64Array::from(vec![trees as i64])),
            Arc::new(Int64Array::from(vec![model.inputs.len() as i64])),
        ],
    )
}

/// Every file under a Spark model directory, by relative path (bounded in count and size).
async fn spark_files(
    store: &Arc<dyn ObjectStore>,
    dir: &StorePath,
    location: &str,
) -> Result<spark_import::Files> {
    use futures::TryStreamExt;
    let store_err =
        |e| AugurError::from(datafusion::error::DataFusionError::ObjectStore(Box::new(e)));
    let listed: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(store_err)?;
    if listed.is_empty() {
        return Err(usage(format!(
            "IMPORT MODEL: no Spark model directory at '{location}' (nothing is there)"
        )));
    }
    let total: u64 = listed.iter().map(|m| m.size).sum();
    if listed.len() > 10_000 || total as usize > MAX_MODEL_BYTES {
        return Err(usage(format!(
            "IMPORT MODEL: '{location}' holds {} files, {total} bytes: more than a Spark model",
            listed.len()
        )));
    }
    let mut files = spark_import::Files::new();
    for meta in listed {
        let relative = meta
            .location
            .prefix_match(dir)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(store_err)?
            .bytes()
            .await
            .map_err(store_err)?;
        files.insert(relative, bytes);
    }
    Ok(files)
}

pub async fn export(
    session: &Session,
    registry: &Registry,
    reference: &str,
    location: &str,
    options: &[(String, OptionValue)],
) -> Result<Planned> {
    let opts = file_options(options, "EXPORT")?;
    if location.trim().is_empty() || location.ends_with('/') {
        return Err(usage(format!(
            "EXPORT MODEL: '{location}' is not a file name; give one such as 'models/{}.{}'",
            reference.replace('@', "_"),
            match opts.format {
                "lightgbm" => "txt",
                other => other,
            }
        )));
    }
    let model = registry.get(reference)?;
    let bytes: Vec<u8> = match opts.format {
        "sql" => crate::ml::sql_export::write(&model)?.into_bytes(),
        "pmml" => crate::ml::pmml_export::write(&model)?.into_bytes(),
        "onnx" => crate::ml::onnx_export::write(&model)?,
        _ => lightgbm_text(&model, reference)?.into_bytes(),
    };
    let (store, path, local) = locate(session, location, &opts.aws)?;
    let size = bytes.len();
    // Object stores write whole objects (locally: a temporary file renamed into place), so
    // a failure never leaves half a model behind.
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| usage(format!("EXPORT MODEL: cannot write '{location}': {e}")))?;
    if let Some(file) = local
        && let Ok(f) = std::fs::File::open(&file)
    {
        f.sync_all().ok();
    }
    Ok(rows(
        vec![
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("location", DataType::Utf8, false),
            Field::new("bytes", DataType::Int64, false),
        ],
        vec![
            Arc::new(StringArray::from(vec![model.name.clone()])) as ArrayRef,
            Arc::new(Int64Array::from(vec![i64::from(model.version)])),
            Arc::new(StringArray::from(vec![location.to_string()])),
            Arc::new(Int64Array::from(vec![size as i64])),
        ],
    ))
}

/// A boosted-tree model as LightGBM's model.txt.
fn lightgbm_text(model: &Model, reference: &str) -> Result<String> {
    let Some(trees) = &model.trees else {
        return Err(usage(format!(
            "EXPORT MODEL: '{reference}' is a {} model; format 'lightgbm' holds boosted trees{}",
            model.options.model_type.name(),
            if model.options.model_type != ModelType::WoeBinning {
                " (scorecards and linear models: format = 'sql')"
            } else {
                ""
            }
        )));
    };
    let params: Vec<(String, String)> = model
        .options
        .trees
        .as_ref()
        .map(|p| {
            vec![
                ("num_iterations".into(), p.num_iterations.to_string()),
                ("learning_rate".into(), p.learning_rate.to_string()),
                ("num_leaves".into(), p.num_leaves.to_string()),
                ("max_depth".into(), p.max_depth.to_string()),
                ("min_data_in_leaf".into(), p.min_data_in_leaf.to_string()),
                ("max_bin".into(), p.max_bin.to_string()),
            ]
        })
        .unwrap_or_default();
    Ok(lightgbm::write(trees, &params))
}
