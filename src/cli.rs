//! The command line: `augur [PATH] [-c SQL]… [-f FILE]… [--format F] [-q] [--memory-limit SIZE]`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::{DatabaseConfig, size_arg};
use crate::database::Database;
use crate::output::Format;
use crate::script::{Input, ScriptOptions, run_inputs};

#[derive(Debug, Parser)]
#[command(
    name = "augur",
    version,
    about = "Augur: an embedded analytics database. SQL over CSV and Parquet, one binary.",
    after_help = "With -c or -f (or SQL piped on stdin) Augur runs the statements and exits;\n\
                  otherwise it starts the interactive shell (.help lists its commands)."
)]
pub struct Args {
    /// Database directory, created if missing; without it the database lives in memory
    pub path: Option<PathBuf>,
    /// Run SQL (repeatable; runs in command-line order with -f)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// Run a SQL script (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format [default: table on a terminal, csv otherwise]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Quiet: no banner, timing or progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Memory for queries and in-memory tables, e.g. 2GB, 512MiB, 50% [default: 80% of RAM]
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_limit: Option<usize>,
    /// Keep running a script after a failed statement (exit status still reports the failure)
    #[arg(long)]
    pub keep_going: bool,
    /// Shell history file [default: $AUGUR_HISTORY or ~/.augur_history]
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Threads (partitions) per query [default: number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Compact a stored table when an INSERT leaves it with more than N files (0: never)
    /// [default: 100]
    #[arg(long, value_name = "N")]
    pub auto_compact_files: Option<usize>,
    /// Run queries on a cluster: the scheduler started by `augur scheduler` [default: this
    /// process; `SET augur.cluster` changes it per session]
    #[arg(long, value_name = "df://HOST:PORT", value_parser = crate::cluster::address::cluster_arg)]
    pub cluster: Option<String>,
    #[arg(skip)]
    pub inputs: Vec<Input>,
}

impl Args {
    /// Parse the process arguments, keeping `-c` and `-f` in the order they were given.
    pub fn parse_ordered() -> Args {
        Self::parse_ordered_from(std::env::args_os())
    }

    pub fn parse_ordered_from<I, T>(args: I) -> Args
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Args::command().get_matches_from(args);
        let mut parsed = match Args::from_arg_matches(&matches) {
            Ok(a) => a,
            Err(e) => e.exit(),
        };
        let mut ordered: Vec<(usize, Input)> = vec![];
        if let Some(idx) = matches.indices_of("commands") {
            for (i, (pos, sql)) in idx.zip(parsed.commands.iter()).enumerate() {
                let name = if parsed.commands.len() > 1 {
                    format!("-c[{}]", i + 1)
                } else {
                    "-c".into()
                };
                ordered.push((
                    pos,
                    Input::Text {
                        name,
                        sql: sql.clone(),
                    },
                ));
            }
        }
        if let Some(idx) = matches.indices_of("files") {
            for (pos, file) in idx.zip(parsed.files.iter()) {
                ordered.push((pos, Input::File(file.clone())));
            }
        }
        ordered.sort_by_key(|(pos, _)| *pos);
        parsed.inputs = ordered.into_iter().map(|(_, input)| input).collect();
        parsed
    }
}

/// What the command line asks for: the shell or scripts, `augur serve`, or a cluster role.
pub enum Invocation {
    Run(Args),
    Serve(crate::server::args::ServeArgs),
    Scheduler(crate::nodes::args::SchedulerArgs),
    Executor(crate::nodes::args::ExecutorArgs),
}

/// Parse the process arguments: `augur serve …` or `augur [PATH] [-c…] [-f…]`. (A database
/// directory called `serve` is opened as `./serve`.)
pub fn parse() -> Invocation {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let role = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    if matches!(role, "serve" | "scheduler" | "executor") {
        let rest = std::iter::once(std::ffi::OsString::from(format!("augur {role}")))
            .chain(args.iter().skip(2).cloned());
        return match role {
            "serve" => Invocation::Serve(crate::server::args::ServeArgs::parse_from(rest)),
            "scheduler" => {
                Invocation::Scheduler(crate::nodes::args::SchedulerArgs::parse_from(rest))
            }
            _ => Invocation::Executor(crate::nodes::args::ExecutorArgs::parse_from(rest)),
        };
    }
    Invocation::Run(Args::parse_ordered_from(args))
}

/// Run what the command line asked for; returns the process exit code.
pub fn main(invocation: Invocation) -> i32 {
    keep_freed_memory();
    match invocation {
        Invocation::Run(args) => run(args),
        Invocation::Serve(args) => with_runtime(crate::server::args::serve(args)),
        Invocation::Scheduler(args) => with_runtime(crate::nodes::scheduler::run(args)),
        Invocation::Executor(args) => with_runtime(crate::nodes::executor::run(args)),
    }
}

/// glibc's allocator, for the `augur` process (an embedding program keeps its own settings):
/// blocks under 8 MiB come from the heap, and up to 64 MiB freed at a heap's top stays there.
/// By default glibc maps many blocks (a Parquet column chunk as read, a decompressed page, a
/// column of a batch) fresh from the kernel and unmaps them on free, so every read paid page
/// faults and zeroing. At 1 MiB, files written with 1 MiB pages (pyarrow's default) still
/// did: summing 17 double columns of 10M rows took 1.5–1.9 s instead of 0.8
/// (docs/PERFORMANCE.md). Larger blocks (training's shards) stay mapped: a 32 MiB threshold
/// cost training 650 MB more peak memory and a second.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes thresholds; it runs before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Run Augur with parsed arguments; returns the process exit code.
pub fn run(args: Args) -> i32 {
    with_runtime(run_async(args))
}

fn with_runtime(work: impl std::future::Future<Output = i32>) -> i32 {
    quiet_query_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Deeply nested SQL recurses deeply in planning: give workers room.
        .thread_stack_size(64 << 20)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 3;
        }
    };
    runtime.block_on(work)
}

/// Panics inside queries are reported as errors by the session; only print the default
/// message for panics elsewhere (set AUGUR_DEBUG=1 to see every panic).
fn quiet_query_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tokio-"));
        if !in_worker || std::env::var_os("AUGUR_DEBUG").is_some() {
            default(info);
        }
    }));
}

async fn run_async(mut args: Args) -> i32 {
    let config = DatabaseConfig {
        path: args.path.clone(),
        memory_limit: args.memory_limit,
        target_partitions: args.threads,
        auto_compact_files: args.auto_compact_files,
        cluster: args.cluster.clone(),
    };
    let stdin_is_terminal = std::io::stdin().is_terminal();
    if args.inputs.is_empty() && !stdin_is_terminal {
        args.inputs.push(Input::Stdin);
    }
    let db = match Database::open(config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return e.class().exit_code();
        }
    };
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_is_terminal {
        Format::Table
    } else {
        Format::Csv
    });
    let session = match db.session() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return e.class().exit_code();
        }
    };
    if args.inputs.is_empty() {
        let options = crate::shell::ShellOptions {
            format,
            quiet: args.quiet,
            history: args.history.clone(),
        };
        return crate::shell::run(session, options).await;
    }
    let options = ScriptOptions {
        format,
        keep_going: args.keep_going,
        quiet: args.quiet,
    };
    run_inputs(&session, &args.inputs, &options).await
}
