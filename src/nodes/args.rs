//! `augur scheduler [--listen HOST:PORT]` and `augur executor --scheduler HOST:PORT …`.

use std::path::PathBuf;

use clap::Parser;

use crate::config::size_arg;

#[derive(Debug, Parser)]
#[command(
    name = "augur scheduler",
    about = "Run a cluster's scheduler (Apache Ballista): clients connect with \
             `augur --cluster df://HOST:PORT`, executors with `augur executor --scheduler HOST:PORT`."
)]
pub struct SchedulerArgs {
    /// Address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub listen: String,
    /// Host name executors and clients use to reach this scheduler [default: the --listen host]
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Seconds without a heartbeat (executors send one every 3 s) before an executor is
    /// declared dead and its tasks run elsewhere
    #[arg(long, value_name = "SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(5..))]
    pub executor_timeout: u64,
    /// Log level on stderr: off, error, warn, info (every task), debug
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "augur executor",
    about = "Run a cluster's executor (Apache Ballista): it registers with the scheduler and \
             runs the tasks of Augur queries."
)]
pub struct ExecutorArgs {
    /// The scheduler's address
    #[arg(long, value_name = "HOST:PORT")]
    pub scheduler: String,
    /// Address for results and shuffle data (Arrow Flight); the next port serves the
    /// scheduler's task calls
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Host name the scheduler and other executors use to reach this one [default: the
    /// address it connects from]
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Directory for shuffle files and spills [default: a new temporary directory]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once [default: number of cores]
    #[arg(long, value_name = "N")]
    pub concurrent_tasks: Option<usize>,
    /// Memory for this executor's tasks, e.g. 4GB [default: 80% of RAM]
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_limit: Option<usize>,
    /// Log level on stderr: off, error, warn, info (every task), debug
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log: String,
}

/// `HOST:PORT` as the two parts, with the flag's name in the error.
pub fn host_port(flag: &str, text: &str) -> Result<(String, u16), String> {
    let bad = || format!("--{flag} '{text}': expected HOST:PORT, e.g. 127.0.0.1:50050");
    let text = text
        .trim()
        .trim_start_matches("df://")
        .trim_end_matches('/');
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}
