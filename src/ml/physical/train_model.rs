//! `TrainExec`: the physical operator of TRAIN MODEL. Reads every input partition in
//! parallel (memory charged to the pool), fits on a blocking thread with one fused parallel
//! pass per iteration, commits the model through the catalog, and returns one summary row.
//! Dropping its stream cancels training at the next iteration.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::ml::cluster_rows::ClusterRows;
use crate::ml::encoded::Streamed;
use crate::ml::logical::train_model::output_schema;
use crate::ml::model::{self, Metrics, TrainingData};
use crate::ml::options::TrainOptions;
use crate::ml::registry::Registry;
use crate::ml::rows::Rows;
use crate::ml::shard::Shard;
use crate::notices::Notices;

/// Live progress, read by the shell's progress bar.
#[derive(Debug, Default)]
pub struct TrainProgress {
    pub iterations: usize,
    /// The objective (linear models) or validation metric (trees); NaN when none.
    pub objective: f64,
    pub done: Option<String>,
}

#[derive(Debug)]
pub struct TrainExec {
    name: String,
    options: TrainOptions,
    input: Arc<dyn ExecutionPlan>,
    registry: Registry,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    progress: Arc<Mutex<TrainProgress>>,
}

impl TrainExec {
    pub fn new(
        name: String,
        options: TrainOptions,
        input: Arc<dyn ExecutionPlan>,
        registry: Registry,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(output_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        TrainExec {
            name,
            options,
            input,
            registry,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            progress: Arc::default(),
        }
    }

    /// (iterations so far, current objective).
    pub fn progress(&self) -> (usize, f64) {
        self.progress
            .lock()
            .map(|p| (p.iterations, p.objective))
            .unwrap_or((0, 0.0))
    }

    /// What the progress bar shows while training runs, once it has started iterating.
    pub fn progress_message(&self) -> Option<String> {
        let (iterations, objective) = self.progress();
        if iterations == 0 {
            return None;
        }
        Some(match &self.options.trees {
            Some(t) => {
                let metric = t.metric_for(t.objective).name();
                let mut m = format!("training: tree {iterations} of {}", t.num_iterations);
                if objective.is_finite() {
                    m += &format!(", validation {metric} {objective:.6}");
                }
                m
            }
            None => format!("training: iteration {iterations}, loss {objective:.6}"),
        })
    }
}

impl DisplayAs for TrainExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "TrainExec: model={}, type={}, label={}",
            self.name,
            self.options.model_type.name(),
            self.options.label
        )?;
        if let Ok(p) = self.progress.lock()
            && let Some(done) = &p.done
        {
            write!(f, ", {done}")?;
        }
        Ok(())
    }
}

/// Sets the flag when training's future is dropped (Ctrl-C, a dropped client).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ExecutionPlan for TrainExec {
    fn name(&self) -> &'static str {
        "TrainExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("TrainExec needs its input".into()))?;
        Ok(Arc::new(TrainExec::new(
            self.name.clone(),
            self.options.clone(),
            input,
            self.registry.clone(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = Arc::clone(&self.input);
        let name = self.name.clone();
        let options = self.options.clone();
        let registry = self.registry.clone();
        let progress = Arc::clone(&self.progress);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let rows_gauge = MetricBuilder::new(&self.metrics).gauge("rows_trained", partition);
        let iterations_gauge = MetricBuilder::new(&self.metrics).gauge("iterations", partition);
        let elapsed = MetricBuilder::new(&self.metrics).elapsed_compute(partition);
        let work = async move {
            let started = std::time::Instant::now();
            let mut fit_options = options.clone();
            crate::ml::scorecard::resolve(&mut fit_options, &registry)?;
            crate::ml::calibration::resolve(&mut fit_options, &registry)?;
            // A linear model over numeric features encodes its rows as they arrive.
            let streamed = Streamed::for_training(&fit_options, &input.schema())?;
            let partitions = input.output_partitioning().partition_count();
            // Each partition reads (and encodes) on its own task: on all cores. Dropping the
            // set (the first failure, or cancellation) aborts the others.
            let mut reads = tokio::task::JoinSet::new();
            for p in 0..partitions {
                let stream = input.execute(p, Arc::clone(&context));
                let pool = Arc::clone(context.memory_pool());
                let name = name.clone();
                let streamed = streamed.clone();
                reads.spawn(async move {
                    let mut stream = stream?;
                    let reservation = MemoryConsumer::new(format!("TrainExec[{p}]")).register(&pool);
                    let mut batches = vec![];
                    let mut encoding = streamed.as_ref().map(|s| s.partition());
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        // Each buffer once: batches decoded from Arrow Flight (a cluster's
                        // rows) share one message buffer across their columns. Encoded rows:
                        // the features, label and weight as doubles.
                        let bytes = match &encoding {
                            Some(_) => batch.num_rows() * (batch.num_columns() + 1) * 8,
                            None => datafusion::common::utils::memory::get_record_batch_memory_size(&batch),
                        };
                        reservation.try_grow(bytes).map_err(|e| {
                            DataFusionError::ResourcesExhausted(format!(
                                "the training data of model '{name}' does not fit in memory ({e}); raise \
                                 --memory-limit, select fewer columns, or train on a sample"
                            ))
                        })?;
                        match encoding.as_mut() {
                            Some(e) => e.push(&batch)?,
                            None => batches.push(batch),
                        }
                    }
                    Ok::<_, DataFusionError>((p, batches, encoding, reservation))
                });
            }
            let mut read = vec![];
            while let Some(done) = reads.join_next().await {
                read.push(done.map_err(|e| {
                    DataFusionError::Execution(format!("reading the training data failed: {e}"))
                })??);
            }
            // In partition order, as the shards and the held-out rows were before.
            read.sort_by_key(|r| r.0);
            let mut parts = vec![];
            let mut encoded_parts = vec![];
            let mut _reservations = vec![];
            for (_, batches, encoding, reservation) in read {
                parts.push(batches);
                encoded_parts.extend(encoding);
                _reservations.push(reservation);
            }
            let encoded = streamed.map(|s| s.finish(encoded_parts));
            let data = TrainingData {
                schema: input.schema(),
                partitions: parts,
                encoded,
            };
            let cancelled = Arc::new(AtomicBool::new(false));
            let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
            let live = Arc::clone(&progress);
            let fit_name = name.clone();
            let threads = context.session_config().target_partitions().max(1);
            let remote = crate::ml::cluster_rows::target_of(&context)?;
            if remote.is_some()
                && fit_options.model_type.is_trees()
                && let Some(notices) = context.session_config().get_extension::<Notices>()
            {
                notices.push(format!(
                    "{} trains in this process on a cluster: its input query ran there, the trees \
                     grow here",
                    fit_options.model_type.name()
                ));
            }
            let runtime = tokio::runtime::Handle::current();
            let task = Arc::clone(&context);
            let working = Mutex::new(
                MemoryConsumer::new(format!("TrainExec[{name}] working set"))
                    .register(context.memory_pool()),
            );
            let model = tokio::task::spawn_blocking(move || {
                let progress = |count: usize, objective: f64| {
                    if let Ok(mut p) = live.lock() {
                        if count > p.iterations {
                            iterations_gauge.set(count);
                        }
                        p.iterations = count;
                        if objective.is_finite() {
                            p.objective = objective;
                        }
                    }
                    !cancelled.load(Ordering::Relaxed)
                };
                let reserve = |bytes: usize| -> Result<()> {
                    let r = working
                        .lock()
                        .map_err(|_| DataFusionError::Internal("training reservation".into()))?;
                    r.try_grow(bytes).map_err(|e| {
                        DataFusionError::ResourcesExhausted(format!(
                            "the training data of model '{fit_name}' does not fit in memory ({e}); raise \
                             --memory-limit, select fewer columns, or train on a sample"
                        ))
                    })
                };
                let remote_rows = |shards: &[Shard]| -> Result<Box<dyn Rows>> {
                    let target = remote.clone().ok_or_else(|| {
                        DataFusionError::Internal("no cluster to train on".into())
                    })?;
                    let rows = ClusterRows::write(target, Arc::clone(&task), runtime.clone(), shards)?;
                    Ok(Box::new(rows))
                };
                let hooks = model::Hooks {
                    progress: &progress,
                    reserve: &reserve,
                    remote_rows: match &remote {
                        Some(_) => Some(&remote_rows),
                        None => None,
                    },
                };
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("augur-train-{i}"))
                    .build()
                    .map_err(|e| DataFusionError::Execution(format!("cannot start training threads: {e}")))?;
                pool.install(|| model::train(&fit_name, 0, &fit_options, &data, &hooks))
            })
            .await
            .map_err(|e| DataFusionError::Execution(format!("training failed: {e}")))??;
            let model = registry.add(model)?;
            rows_gauge.add(model.training.rows_used);
            elapsed.add_duration(started.elapsed());
            if let Some(notices) = context.session_config().get_extension::<Notices>() {
                for w in &model.training.warnings {
                    notices.push(format!("model {}@{}: {w}", model.name, model.version));
                }
            }
            // Trees keep no objective history (their curve is the validation metric).
            let objective = model.training.objective_history.last().map(|i| i.objective);
            if let Ok(mut p) = progress.lock() {
                let loss = objective
                    .map(|o| format!("final_loss={o:.6}, "))
                    .unwrap_or_default();
                p.done = Some(format!(
                    "version={}, rows={}, iterations={}, {loss}{}",
                    model.version,
                    model.training.rows_used,
                    model.training.iterations,
                    model.training.stop_reason
                ));
            }
            let (auc, rmse) = match &model.metrics {
                Some(Metrics::Classification(m)) => (Some(m.auc_roc), None),
                Some(Metrics::Regression(m)) => (None, Some(m.rmse)),
                None => (None, None),
            };
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(vec![model.name.clone()])),
                Arc::new(Int64Array::from(vec![i64::from(model.version)])),
                Arc::new(StringArray::from(vec![model.options.model_type.name()])),
                Arc::new(Int64Array::from(vec![model.training.rows_used as i64])),
                Arc::new(Int64Array::from(vec![model.training.rows_held_out as i64])),
                Arc::new(Int64Array::from(vec![model.training.iterations as i64])),
                Arc::new(Float64Array::from(vec![objective])),
                Arc::new(BooleanArray::from(vec![model.training.converged])),
                Arc::new(Float64Array::from(vec![auc])),
                Arc::new(Float64Array::from(vec![rmse])),
                Arc::new(Float64Array::from(vec![model.training.seconds])),
            ];
            output_rows.add(1);
            Ok(RecordBatch::try_new(output_schema(), columns)?)
        };
        let schema: SchemaRef = output_schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(work),
        )))
    }
}
