//! A GLM's training rows on a cluster: the encoded shards are written once, as Parquet, to
//! storage the executors read (`augur.cluster_scratch`), and every sum the fit needs —
//! feature moments, then loss and gradient per optimiser evaluation — is an
//! `augur_glm_sums` aggregate the cluster runs over those files. The optimiser stays here.
//! How a plan reaches the cluster is the session's business: it leaves a `Remote` in the
//! session config, and the ML core never imports the cluster's client.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{Literal, col};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{ExecutionPlan, collect};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::glm_sums::{GlmSums, Kind};
use super::logistic::Summary;
use super::pass::Partial;
use super::rows::{LabelMoments, Loss, Rows};
use super::shard::Shard;

/// Rows per written file: files are the cluster's tasks, so a few per executor slot.
const FILE_ROWS: usize = 1 << 19;

/// Where the session sends training work; `None` from `target` runs it here.
pub struct Remote {
    #[allow(clippy::type_complexity)]
    pub target: Box<dyn Fn(&ConfigOptions) -> Result<Option<Target>> + Send + Sync>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

/// A cluster: how to wrap a plan so it runs there, and where its executors can read files.
#[derive(Clone)]
pub struct Target {
    #[allow(clippy::type_complexity)]
    pub wrap: Arc<dyn Fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> + Send + Sync>,
    /// A URL or shared path; empty: a new directory under this machine's temp dir.
    pub scratch: String,
}

/// The training target of a task: a cluster if the session has one set.
pub fn target_of(context: &TaskContext) -> Result<Option<Target>> {
    let config = context.session_config();
    match config.get_extension::<Remote>() {
        Some(remote) => (remote.target)(config.options()),
        None => Ok(None),
    }
}

/// Encoded rows in files the cluster reads; the files are deleted when this is dropped.
pub struct ClusterRows {
    target: Target,
    context: Arc<TaskContext>,
    runtime: tokio::runtime::Handle,
    store: Arc<dyn ObjectStore>,
    url: ListingTableUrl,
    files: Vec<(Path, u64)>,
    schema: SchemaRef,
    features: usize,
    weighted: bool,
    moments: OnceLock<Vec<f64>>,
    spread: OnceLock<Vec<f64>>,
}

impl ClusterRows {
    /// Write `shards` to the target's scratch storage.
    pub fn write(
        target: Target,
        context: Arc<TaskContext>,
        runtime: tokio::runtime::Handle,
        shards: &[Shard],
    ) -> Result<ClusterRows> {
        let features = shards.first().map_or(0, |s| s.columns.len());
        let weighted = shards.iter().any(|s| !s.weight.is_empty());
        let name = format!("augur-train-{}-{}", std::process::id(), uuid_like());
        let scratch = match target.scratch.trim() {
            "" => format!("{}/{name}/", std::env::temp_dir().display()),
            base => format!("{}/{name}/", base.trim_end_matches('/')),
        };
        if !scratch.contains("://") {
            std::fs::create_dir_all(&scratch).map_err(|e| {
                DataFusionError::Execution(format!(
                    "augur.cluster_scratch: cannot create {scratch}: {e}"
                ))
            })?;
        }
        let url = ListingTableUrl::parse(&scratch).map_err(|e| {
            DataFusionError::Configuration(format!("augur.cluster_scratch '{scratch}': {e}"))
        })?;
        let store = context.runtime_env().object_store(url.object_store())?;
        let mut fields = vec![Field::new("y", DataType::Float64, false)];
        if weighted {
            fields.push(Field::new("w", DataType::Float64, false));
        }
        fields.extend((0..features).map(|j| Field::new(format!("x{j}"), DataType::Float64, false)));
        let schema = Arc::new(Schema::new(fields));
        let mut rows = ClusterRows {
            target,
            context,
            runtime,
            store,
            url,
            files: vec![],
            schema,
            features,
            weighted,
            moments: OnceLock::new(),
            spread: OnceLock::new(),
        };
        for shard in shards {
            for start in (0..shard.rows()).step_by(FILE_ROWS) {
                let end = (start + FILE_ROWS).min(shard.rows());
                let bytes = rows.parquet(shard, start, end)?;
                let path = rows
                    .url
                    .prefix()
                    .clone()
                    .join(format!("part-{}.parquet", rows.files.len()));
                let size = bytes.len() as u64;
                let store = Arc::clone(&rows.store);
                let put = path.clone();
                rows.runtime
                    .block_on(async move { store.put(&put, bytes.into()).await })
                    .map_err(|e| {
                        DataFusionError::Execution(format!(
                            "cannot write the training rows to {}: {e}",
                            rows.url
                        ))
                    })?;
                rows.files.push((path, size));
            }
        }
        Ok(rows)
    }

    fn parquet(&self, shard: &Shard, start: usize, end: usize) -> Result<Vec<u8>> {
        let slice = |v: &[f64]| Arc::new(Float64Array::from(v[start..end].to_vec())) as ArrayRef;
        let mut columns = vec![slice(&shard.label)];
        if self.weighted {
            columns.push(if shard.weight.is_empty() {
                Arc::new(Float64Array::from(vec![1.0; end - start]))
            } else {
                slice(&shard.weight)
            });
        }
        // A one-hot level goes to the cluster as its 0/1 column: the workers' sums read
        // dense files.
        columns.extend((0..self.features).map(|j| {
            Arc::new(Float64Array::from(shard.column(j, start..end).into_owned())) as ArrayRef
        }));
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let mut bytes = vec![];
        let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&self.schema), None)?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(bytes)
    }

    /// The sums `kind` asks for, over every file, computed on the cluster.
    fn sums(&self, kind: &Kind) -> Result<Vec<f64>> {
        let files: Vec<FileGroup> = self
            .files
            .iter()
            .map(|(path, size)| FileGroup::new(vec![PartitionedFile::new(path.to_string(), *size)]))
            .collect();
        let source = Arc::new(ParquetSource::new(Arc::clone(&self.schema)));
        let scan = DataSourceExec::from_data_source(
            FileScanConfigBuilder::new(self.url.object_store(), source)
                .with_file_groups(files)
                .build(),
        );
        let (kind_arg, params) = kind.arguments();
        let literal = |v: ScalarValue| Arc::new(Literal::new(v)) as Arc<dyn PhysicalExpr>;
        let mut args = vec![literal(kind_arg), literal(params), col("y", &self.schema)?];
        args.push(if self.weighted {
            col("w", &self.schema)?
        } else {
            literal(ScalarValue::Float64(None))
        });
        for j in 0..self.features {
            args.push(col(&format!("x{j}"), &self.schema)?);
        }
        let sums = Arc::new(
            AggregateExprBuilder::new(Arc::new(GlmSums::udaf()), args)
                .schema(Arc::clone(&self.schema))
                .alias("sums")
                .build()?,
        );
        let partial = Arc::new(AggregateExec::try_new(
            AggregateMode::Partial,
            PhysicalGroupBy::new_single(vec![]),
            vec![Arc::clone(&sums)],
            vec![None],
            scan,
            Arc::clone(&self.schema),
        )?);
        let merged = Arc::new(CoalescePartitionsExec::new(partial.clone()));
        let total = Arc::new(AggregateExec::try_new(
            AggregateMode::Final,
            PhysicalGroupBy::new_single(vec![]),
            vec![sums],
            vec![None],
            merged,
            partial.input_schema(),
        )?);
        let plan = (self.target.wrap)(total);
        let context = Arc::clone(&self.context);
        let batches = self.runtime.block_on(collect(plan, context))?;
        let list = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| b.column(0).as_list_opt::<i32>().map(|l| l.value(0)))
            .ok_or_else(|| DataFusionError::Internal("the cluster returned no sums".into()))?;
        Ok(list.as_primitive::<Float64Type>().values().to_vec())
    }

    fn moments(&self) -> Result<&Vec<f64>> {
        if let Some(m) = self.moments.get() {
            return Ok(m);
        }
        let m = self.sums(&Kind::Moments)?;
        Ok(self.moments.get_or_init(|| m))
    }
}

impl Drop for ClusterRows {
    fn drop(&mut self) {
        let store = Arc::clone(&self.store);
        let files: Vec<Path> = self.files.iter().map(|(p, _)| p.clone()).collect();
        // Training runs on a blocking thread, where waiting on the runtime is allowed.
        self.runtime.block_on(async move {
            for path in files {
                let _ = store.delete(&path).await;
            }
        });
        if let Some(dir) = self.url.as_str().strip_prefix("file://") {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Rows for ClusterRows {
    fn summary(&self, features: usize) -> Result<Summary> {
        let m = self.moments()?;
        let (rows, w_sum, w2_sum, pos) = (m[0], m[1], m[2], m[3]);
        let mean: Vec<f64> = (0..features)
            .map(|j| if w_sum > 0.0 { m[4 + j] / w_sum } else { 0.0 })
            .collect();
        let label_mean = if w_sum > 0.0 { pos / w_sum } else { 0.0 };
        let spread = self.sums(&Kind::Spread {
            label_mean,
            mean: mean.clone(),
        })?;
        let denominator = w_sum - if w_sum > 0.0 { w2_sum / w_sum } else { 0.0 };
        let std = (0..features)
            .map(|j| {
                if denominator > 0.0 {
                    (spread[1 + j] / denominator).max(0.0).sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        let _ = self.spread.set(spread);
        Ok(Summary {
            mean,
            std,
            weight_sum: w_sum,
            positive_weight: pos,
            rows: rows as usize,
        })
    }

    fn label_moments(&self, weight_sum: f64) -> Result<LabelMoments> {
        let m = self.moments()?;
        let spread = match self.spread.get() {
            Some(s) => s[0],
            None => {
                let mean = vec![0.0; self.features];
                self.sums(&Kind::Spread {
                    label_mean: m[3] / weight_sum,
                    mean,
                })?[0]
            }
        };
        Ok(LabelMoments {
            mean: m[3] / weight_sum,
            weight_squares: m[2],
            spread,
        })
    }

    fn pass(&self, a: &[f64], offset: f64, loss: Loss) -> Result<Partial> {
        let s = self.sums(&Kind::Pass {
            offset,
            a: a.to_vec(),
            loss,
        })?;
        Ok(Partial {
            loss: s[0],
            residual_sum: s[1],
            raw: s[2..].to_vec(),
        })
    }
}

/// A name no other training of this process uses at the same time.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}{:04x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::logistic::{self, Params};

    fn shards(weighted: bool, binary: bool) -> Vec<Shard> {
        let mut next = logistic::uniform(7);
        (0..3)
            .map(|_| {
                let mut s = Shard {
                    columns: vec![vec![]; 3],
                    ..Default::default()
                };
                for _ in 0..700 {
                    let x = [next() * 4.0 - 2.0, next() * 100.0, (next() * 3.0).floor()];
                    let m = 0.8 * x[0] - 0.01 * x[1] + 0.5 * x[2] - 0.2;
                    for (c, v) in s.columns.iter_mut().zip(x) {
                        c.push(v);
                    }
                    let noise = next();
                    s.label.push(if binary {
                        f64::from(noise < 1.0 / (1.0 + (-m).exp()))
                    } else {
                        m + noise - 0.5
                    });
                    if weighted {
                        s.weight.push(0.5 + next());
                    }
                }
                s
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
    }

    /// The fit summed over written files (here run in this process, as a cluster would run
    /// the same aggregate) equals the fit over the shards, coefficient by coefficient; the
    /// files are gone afterwards.
    #[tokio::test(flavor = "multi_thread")]
    async fn sums_over_written_files_give_the_local_model() {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let context = Arc::new(TaskContext::default());
            let local: Target = Target {
                wrap: Arc::new(|plan| plan),
                scratch: String::new(),
            };
            for weighted in [false, true] {
                let params = Params {
                    reg_param: 0.01,
                    elastic_net_param: 0.5,
                    ..Params::default()
                };
                let data = shards(weighted, true);
                let files =
                    ClusterRows::write(local.clone(), Arc::clone(&context), runtime.clone(), &data)
                        .unwrap();
                assert_eq!(files.files.len(), 3);
                let dir = files.url.as_str().trim_start_matches("file://").to_string();
                let here = logistic::fit(&data, 3, &params, |_| true).unwrap();
                let there = logistic::fit(&files, 3, &params, |_| true).unwrap();
                assert_eq!(here.iterations(), there.iterations());
                assert!(close(here.intercept, there.intercept));
                for (a, b) in here.coefficients.iter().zip(&there.coefficients) {
                    assert!(close(*a, *b), "{a} vs {b}");
                }
                drop(files);
                assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");

                let data = shards(weighted, false);
                let files =
                    ClusterRows::write(local.clone(), Arc::clone(&context), runtime.clone(), &data)
                        .unwrap();
                let here = crate::ml::linear::fit(&data, 3, &params, |_| true).unwrap();
                let there = crate::ml::linear::fit(&files, 3, &params, |_| true).unwrap();
                assert!(close(here.intercept, there.intercept));
                for (a, b) in here.coefficients.iter().zip(&there.coefficients) {
                    assert!(close(*a, *b), "{a} vs {b}");
                }
            }
        })
        .await
        .unwrap();
    }
}
