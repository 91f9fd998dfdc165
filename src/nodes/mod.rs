//! `augur scheduler` and `augur executor`: Apache Ballista's scheduler and executor inside the
//! one binary, with Augur's functions, codec and object stores registered, so a cluster runs
//! exactly the plans an Augur session makes. Front ends: they assemble the lower layers and
//! run until stopped.

/// Command-line arguments of both roles.
pub mod args;
/// The executor process: runs tasks, keeps shuffle files, serves results.
pub mod executor;
/// Every function an Augur session knows, for decoding plans on the cluster.
pub mod functions;
/// Ballista's log records on stderr.
pub mod log;
/// The scheduler process: accepts jobs, plans stages, assigns tasks.
pub mod scheduler;

/// Run until Ctrl-C or SIGTERM; returns the process exit code.
async fn until_stopped(
    role: &str,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> i32 {
    let terminate = async {
        #[cfg(unix)]
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        outcome = work => match outcome {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: augur {role}: {e}");
                1
            }
        },
        _ = tokio::signal::ctrl_c() => 0,
        _ = terminate => 0,
    }
}
