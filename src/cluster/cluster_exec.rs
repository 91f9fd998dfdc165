//! `ClusterExec`: a physical plan run as one Ballista job. Its child is the plan the cluster
//! runs (so `EXPLAIN` shows it); executing submits that plan to the scheduler, waits for the
//! job, and streams the final stage's partitions from the executors that hold them. Dropping
//! the stream before the job ends (Ctrl-C, CancelRequest, a LIMIT satisfied) cancels the job.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballista_core::client::BallistaClient;
use ballista_core::config::BallistaConfig;
use ballista_core::serde::protobuf::execute_query_params::Query;
use ballista_core::serde::protobuf::execute_query_result::Result as Submitted;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{
    CancelJobParams, ExecuteQueryParams, GetJobMetricsParams, GetJobStatusParams, KeyValuePair,
    PartitionLocation, job_status,
};
use ballista_core::utils::{GrpcClientConfig, create_grpc_client_endpoint};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use datafusion_proto::physical_plan::AsExecutionPlan;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::Channel;

use super::ClusterAddress;

/// How often the job's status is asked for while it runs.
const POLL: Duration = Duration::from_millis(20);
/// How often (in polls) the finished stages are counted, for the progress bar.
const COUNT_STAGES_EVERY: usize = 10;

#[derive(Debug)]
pub struct ClusterExec {
    address: ClusterAddress,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    progress: Arc<Mutex<Progress>>,
}

/// Where the job stands, as the scheduler last said.
#[derive(Debug, Default, Clone)]
struct Progress {
    job_id: Option<String>,
    stages_done: usize,
    stages: usize,
}

impl ClusterExec {
    pub fn new(address: ClusterAddress, input: Arc<dyn ExecutionPlan>) -> ClusterExec {
        // The final stage's partitions arrive one after another: an ordering survives only
        // when there is one.
        let equivalence = if input.output_partitioning().partition_count() == 1 {
            input.equivalence_properties().clone()
        } else {
            EquivalenceProperties::new(input.schema())
        };
        let properties = PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        ClusterExec {
            address,
            input,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            progress: Arc::default(),
        }
    }

    /// What the progress bar shows once the job is submitted: its stages done and rows
    /// received.
    pub fn progress_message(&self) -> Option<String> {
        let progress = self.progress.lock().ok()?.clone();
        let job = progress.job_id?;
        let rows = self.metrics.clone_inner().output_rows().unwrap_or(0);
        let of = match progress.stages {
            0 => String::new(),
            n => format!(" of {n}"),
        };
        Some(format!(
            "cluster job {job}: {}{of} stages done, {rows} rows received",
            progress.stages_done
        ))
    }
}

impl DisplayAs for ClusterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ClusterExec: scheduler={}", self.address)?;
        // A plan the stage planner rejects still runs (the scheduler reports why): EXPLAIN
        // shows the rest of it.
        match super::stages::plan(&self.input) {
            Ok(stages) => write!(f, ", stages=[{}]", super::stages::describe(&stages)),
            Err(_) => Ok(()),
        }
    }
}

impl ExecutionPlan for ClusterExec {
    fn name(&self) -> &str {
        "ClusterExec"
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
        match children.pop() {
            Some(input) if children.is_empty() => {
                Ok(Arc::new(ClusterExec::new(self.address.clone(), input)))
            }
            _ => Err(DataFusionError::Internal(
                "ClusterExec has exactly one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ClusterExec has one partition, not {partition}"
            )));
        }
        let mut plan = vec![];
        super::codec::encode(Arc::clone(&self.input))?.try_encode(&mut plan)?;
        if let Ok(mut progress) = self.progress.lock() {
            *progress = Progress {
                stages: super::stages::plan(&self.input).map_or(0, |s| s.len()),
                ..Progress::default()
            };
        }
        let job = Job {
            progress: Arc::clone(&self.progress),
            address: self.address.clone(),
            plan,
            settings: settings(&context),
            session_id: context.session_id(),
        };
        let rows = MetricBuilder::new(&self.metrics).output_rows(0);
        let schema = self.schema();
        let stream = futures::stream::once(job.run())
            .try_flatten()
            .and_then(move |batch| futures::future::ready(as_planned(batch, &schema)))
            .inspect_ok(move |batch| rows.add(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// `batch` with the column types the plan promised: Ballista's shuffle and Flight transfer may
/// hand back a dictionary-encoded column decoded (delta-rs's file id column, for one), and the
/// operators above check the types they were planned for.
fn as_planned(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let same = batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(got, want)| got.data_type() == want.data_type());
    if same {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            datafusion::arrow::compute::cast(column, field.data_type())
                .map_err(DataFusionError::from)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The session's settings travel with the job, except Augur's own (the cluster's address
/// means nothing on the cluster).
fn settings(context: &TaskContext) -> Vec<KeyValuePair> {
    context
        .session_config()
        .options()
        .entries()
        .into_iter()
        .filter(|entry| !entry.key.starts_with("augur."))
        .map(|entry| KeyValuePair {
            key: entry.key,
            value: entry.value,
        })
        .collect()
}

struct Job {
    progress: Arc<Mutex<Progress>>,
    address: ClusterAddress,
    plan: Vec<u8>,
    settings: Vec<KeyValuePair>,
    session_id: String,
}

impl Job {
    async fn run(self) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let failed = |e: String| DataFusionError::Execution(e);
        self.address.check_reachable().await.map_err(failed)?;
        let config = BallistaConfig::default();
        let grpc = GrpcClientConfig::from(&config);
        let unreachable = |e: &dyn fmt::Display| failed(self.address.unreachable(&e.to_string()));
        let channel = create_grpc_client_endpoint(self.address.grpc_url(), Some(&grpc))
            .map_err(|e| unreachable(&e))?
            .connect()
            .await
            .map_err(|e| unreachable(&e))?;
        let mut scheduler = SchedulerGrpcClient::new(channel)
            .max_encoding_message_size(grpc.max_message_size)
            .max_decoding_message_size(grpc.max_message_size);
        let mut request = tonic::Request::new(ExecuteQueryParams {
            query: Some(Query::PhysicalPlan(self.plan)),
            settings: self.settings,
            session_id: self.session_id,
            operation_id: String::new(),
        });
        ballista_core::version::insert_version_header(request.metadata_mut());
        let submitted = scheduler
            .execute_query(request)
            .await
            .map_err(|e| {
                failed(format!(
                    "the cluster at {} refused the query: {}",
                    self.address,
                    e.message()
                ))
            })?
            .into_inner();
        let job_id = match submitted.result {
            Some(Submitted::Success(ok)) => ok.job_id,
            Some(Submitted::Failure(failure)) => {
                return Err(failed(format!(
                    "the cluster at {} refused the query: {failure:?}",
                    self.address
                )));
            }
            None => return Err(failed("the scheduler answered without a job".into())),
        };
        let mut guard = CancelOnDrop {
            scheduler: Some(scheduler.clone()),
            job_id: job_id.clone(),
        };
        if let Ok(mut progress) = self.progress.lock() {
            progress.job_id = Some(job_id.clone());
        }
        let mut polls = 0;
        let locations = loop {
            polls += 1;
            if polls % COUNT_STAGES_EVERY == 0 {
                // Only finished stages report metrics; a failure here only stales the bar.
                if let Ok(metrics) = scheduler
                    .get_job_metrics(GetJobMetricsParams {
                        job_id: job_id.clone(),
                    })
                    .await
                    && let Ok(mut progress) = self.progress.lock()
                {
                    progress.stages_done = metrics.into_inner().stages.len();
                }
            }
            let status = scheduler
                .get_job_status(GetJobStatusParams {
                    job_id: job_id.clone(),
                })
                .await
                .map_err(|e| {
                    failed(format!(
                        "lost the cluster's scheduler at {} during job {job_id}: {}",
                        self.address,
                        e.message()
                    ))
                })?
                .into_inner();
            match status.status.and_then(|s| s.status) {
                Some(job_status::Status::Successful(done)) => break done.partition_location,
                Some(job_status::Status::Failed(failure)) => {
                    guard.scheduler = None;
                    return Err(failed(format!(
                        "the cluster's job {job_id} failed: {}",
                        failure.error
                    )));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        };
        guard.scheduler = None;
        let streams = futures::stream::iter(locations)
            .then(move |location| fetch(location, grpc.clone()))
            .try_flatten();
        Ok(streams.boxed())
    }
}

/// One partition of the final stage, from the executor that wrote it.
async fn fetch(
    location: PartitionLocation,
    grpc: GrpcClientConfig,
) -> Result<SendableRecordBatchStream> {
    let layout = location.layout();
    let (Some(executor), Some(partition)) = (location.executor_meta, location.partition_id) else {
        return Err(DataFusionError::Internal(
            "the scheduler named a result partition without its executor".into(),
        ));
    };
    let mut client = BallistaClient::try_new(
        &executor.host,
        executor.port as u16,
        grpc.max_message_size,
        grpc.use_tls,
        None,
        grpc.io_retries_times,
        grpc.io_retry_wait_time_ms,
        0,
        0,
    )
    .await
    .map_err(|e| {
        DataFusionError::Execution(format!(
            "cannot fetch results from executor {} at {}:{}: {e}",
            executor.id, executor.host, executor.port
        ))
    })?;
    client
        .fetch_partition(
            &executor.id,
            &partition.into(),
            location.file_id,
            layout,
            true,
        )
        .await
        .map_err(|e| e.into_datafusion())
}

/// Cancels a job whose result will not be read (the query's stream was dropped first).
struct CancelOnDrop {
    scheduler: Option<SchedulerGrpcClient<Channel>>,
    job_id: String,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let (Some(mut scheduler), Ok(runtime)) =
            (self.scheduler.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let job_id = std::mem::take(&mut self.job_id);
        runtime.spawn(async move {
            let _ = scheduler.cancel_job(CancelJobParams { job_id }).await;
        });
    }
}
