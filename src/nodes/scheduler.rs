//! `augur scheduler`: Ballista's scheduler, decoding submitted plans with Augur's functions
//! and codec. Jobs and executors are kept in memory (a restarted scheduler starts empty;
//! executors register again on their next heartbeat).

use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;

use super::args::{SchedulerArgs, host_port};
use super::functions::Functions;
use crate::cluster::AugurCodec;
use crate::storage::object_stores::StoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

/// Run the scheduler until stopped; returns the process exit code.
pub async fn run(args: SchedulerArgs) -> i32 {
    super::until_stopped("scheduler", serve(args)).await
}

async fn serve(args: SchedulerArgs) -> Result<(), String> {
    super::log::init(&args.log)?;
    let (host, port) = host_port("listen", &args.listen)?;
    let address = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| format!("--listen {}: cannot resolve '{host}'", args.listen))?;
    let functions = Functions::of_a_session().await.map_err(|e| e.to_string())?;
    let stores = Arc::new(StoreRegistry::new(None)?);
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(stores)
        .build_arc()
        .map_err(|e| e.to_string())?;
    let config = SchedulerConfig {
        bind_host: host.clone(),
        bind_port: port,
        external_host: args.advertise.clone().unwrap_or_else(|| host.clone()),
        override_session_builder: Some(Arc::new(move |config| {
            Ok(functions.session_state(config, Arc::clone(&runtime)))
        })),
        override_physical_codec: Some(Arc::new(AugurCodec::default())),
        // Spread tasks over the executors (Ballista's default fills one executor's task
        // slots before the next, which leaves the others idle on all but the largest jobs).
        task_distribution: TaskDistributionPolicy::RoundRobin,
        // An executor that stops answering is declared dead (and its tasks re-run elsewhere)
        // after this long: Ballista's default, 180 s, leaves a query waiting minutes.
        executor_timeout_seconds: args.executor_timeout,
        expire_dead_executor_interval_seconds: 2,
        no_executors_grace_period_seconds: args.executor_timeout,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    // Bind first, so that a port in use is reported before anything claims to listen.
    std::net::TcpListener::bind(address).map_err(|e| format!("--listen {}: {e}", args.listen))?;
    eprintln!(
        "augur scheduler listening on {host}:{port} (Apache Ballista {}); clients: \
         augur --cluster df://{}:{port}",
        ballista_core::BALLISTA_VERSION,
        config.external_host
    );
    start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}
