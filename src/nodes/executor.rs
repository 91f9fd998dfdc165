//! `augur executor`: Ballista's executor with Augur's functions, codec and object stores (S3
//! with the standard AWS_* credentials of this process, local paths as this machine sees
//! them).

use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use super::args::{ExecutorArgs, host_port};
use super::functions::Functions;
use crate::cluster::AugurCodec;
use crate::storage::object_stores::StoreRegistry;

/// How long an executor waits for its scheduler to answer at start.
const SCHEDULER_WAIT_SECONDS: u16 = 30;

/// Run the executor until stopped; returns the process exit code.
pub async fn run(args: ExecutorArgs) -> i32 {
    super::until_stopped("executor", serve(args)).await
}

async fn serve(args: ExecutorArgs) -> Result<(), String> {
    super::log::init(&args.log)?;
    let (scheduler_host, scheduler_port) = host_port("scheduler", &args.scheduler)?;
    let (host, port) = host_port("listen", &args.listen)?;
    let grpc_port = port
        .checked_add(1)
        .ok_or_else(|| format!("--listen {}: the next port serves tasks", args.listen))?;
    for p in [port, grpc_port] {
        std::net::TcpListener::bind((host.as_str(), p))
            .map_err(|e| format!("--listen {}: port {p}: {e}", args.listen))?;
    }
    let work_dir = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("--work-dir {}: {e}", dir.display()))?;
            Some(dir.display().to_string())
        }
        None => None,
    };
    let functions = Functions::of_a_session().await.map_err(|e| e.to_string())?;
    let stores = Arc::new(StoreRegistry::new(None)?);
    let spill_dir = work_dir.clone();
    let vcores = args.concurrent_tasks.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let config = ExecutorProcessConfig {
        bind_host: host.clone(),
        port,
        grpc_port,
        external_host: args.advertise.clone(),
        scheduler_host: scheduler_host.clone(),
        scheduler_port,
        scheduler_connect_timeout_seconds: SCHEDULER_WAIT_SECONDS,
        vcores: vcores.max(1),
        work_dir,
        print_thread_info: false,
        // Well inside the scheduler's --executor-timeout (15 s by default).
        executor_heartbeat_interval_seconds: 3,
        memory_pool_size: args.memory_limit.map(|n| n as u64),
        override_function_registry: Some(Arc::new(functions.registry())),
        override_physical_codec: Some(Arc::new(AugurCodec::default())),
        override_runtime_producer: Some(Arc::new(move |_config| {
            let mut runtime =
                RuntimeEnvBuilder::new().with_object_store_registry(Arc::clone(&stores) as _);
            if let Some(dir) = &spill_dir {
                runtime = runtime.with_temp_file_path(dir);
            }
            runtime.build_arc()
        })),
        ..ExecutorProcessConfig::default()
    };
    eprintln!(
        "augur executor on {host}:{port} (tasks on {grpc_port}), scheduler \
         {scheduler_host}:{scheduler_port}, {vcores} concurrent tasks"
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| match e.to_string() {
            e if e.contains("connect to scheduler") => format!(
                "cannot reach the scheduler at {scheduler_host}:{scheduler_port} (waited \
                 {SCHEDULER_WAIT_SECONDS} s): start `augur scheduler --listen \
                 {scheduler_host}:{scheduler_port}` first"
            ),
            e => e,
        })
}
