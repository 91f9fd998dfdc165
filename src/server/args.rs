//! `augur serve [PATH] [--listen HOST:PORT] …`: the server's command line.

use std::path::PathBuf;

use clap::Parser;

use super::{ServeOptions, Server, Users};
use crate::config::{DatabaseConfig, size_arg};
use crate::database::Database;
use crate::error::{AugurError, Result};

#[derive(Debug, Parser)]
#[command(
    name = "augur serve",
    about = "Serve a database over the Postgres wire protocol (psql, psycopg, JDBC, BI tools).",
    after_help = "Clients connect to database `augur` (any name is accepted).\n\
                  Without --user/--users-file only connections from this machine are accepted."
)]
pub struct ServeArgs {
    /// Database directory, created if missing; without it the database lives in memory
    pub path: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port and prints it)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5433")]
    pub listen: String,
    /// User name for password authentication (with --password-file)
    #[arg(long, value_name = "NAME", requires = "password_file")]
    pub user: Option<String>,
    /// File whose first line is the password of --user
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// File of `name:password` lines, one per user
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<PathBuf>,
    /// TLS certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory remote sessions may read and write files in (repeatable) [default: the
    /// database directory]
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,
    /// Refuse every statement that writes
    #[arg(long)]
    pub read_only: bool,
    /// Connections served at once; more are refused with SQLSTATE 53300
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_connections: usize,
    /// Memory for queries, shared by all connections, e.g. 4GB, 50% [default: 80% of RAM]
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_limit: Option<usize>,
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
}

impl ServeArgs {
    fn options(&self) -> Result<ServeOptions> {
        let mut users = Users::default();
        if let (Some(user), Some(file)) = (&self.user, &self.password_file) {
            users.add_from_password_file(user, file)?;
        }
        if let Some(file) = &self.users_file {
            users.add_from_users_file(file)?;
        }
        let mut allow_dirs = vec![];
        for dir in &self.allow_dirs {
            allow_dirs.push(
                dir.canonicalize().map_err(|e| {
                    AugurError::Usage(format!("--allow-dir {}: {e}", dir.display()))
                })?,
            );
        }
        Ok(ServeOptions {
            listen: self.listen.clone(),
            users,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            allow_dirs,
            read_only: self.read_only,
            max_connections: self.max_connections.max(1),
        })
    }
}

/// Run the server until Ctrl-C or SIGTERM; returns the exit code.
pub async fn serve(args: ServeArgs) -> i32 {
    match serve_inner(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.class().exit_code()
        }
    }
}

async fn serve_inner(args: ServeArgs) -> Result<()> {
    let options = args.options()?;
    let db = Database::open(DatabaseConfig {
        path: args.path.clone(),
        memory_limit: args.memory_limit,
        target_partitions: args.threads,
        auto_compact_files: args.auto_compact_files,
        cluster: args.cluster.clone(),
    })
    .await?;
    let server = Server::bind(db, options).await?;
    eprintln!("{}", server.banner());
    server.run(shutdown_signal()).await?;
    eprintln!("augur: server stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
