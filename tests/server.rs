//! `augur serve` end to end with real clients on 127.0.0.1: tokio-postgres (extended
//! protocol, types, cancel), psql (`\d` family, `\copy`), psycopg 3 (tests/server/psycopg_check.py),
//! SCRAM, TLS, the file sandbox, read-only mode, limits, concurrency and killed clients.

mod clients;
mod security;
mod slt;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;
use tokio_postgres::{Client, NoTls};

use crate::common::{bin, check, repo, stdout};

pub fn trials() -> Vec<Trial> {
    let mut trials = clients::trials();
    trials.extend(security::trials());
    trials.extend(slt::trials());
    trials
}

pub type R = Result<(), libtest_mimic::Failed>;

/// A running `augur serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Start on a free port (`--listen 127.0.0.1:0`), in `dir`, with `args`.
    pub fn start(dir: &Path, args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(bin())
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start augur serve: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let banner = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let status = child.wait().map_err(|e| e.to_string())?;
                return Err(format!("augur serve ended at start ({status})"));
            }
        };
        let port = banner
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no port in the banner: {banner}"))?;
        let kept = std::sync::Arc::new(std::sync::Mutex::new(vec![banner]));
        let sink = std::sync::Arc::clone(&kept);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut all) = sink.lock() {
                    all.push(line);
                }
            }
        });
        Ok(Server {
            child,
            port,
            stderr_lines: kept,
        })
    }

    pub fn banner(&self) -> String {
        self.stderr_lines
            .lock()
            .map(|l| l.first().cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn url(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=augur connect_timeout=10",
            self.port
        )
    }

    pub async fn connect(&self) -> Result<Client, String> {
        connect(&self.url("augur")).await
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// psql with `args`, against this server; returns (exit ok, stdout, stderr).
    pub fn psql(&self, dir: &Path, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-d",
                "augur",
            ])
            .args(["-U", "augur", "-X", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .current_dir(dir)
            .env("PGCONNECT_TIMEOUT", "10")
            .output();
        match out {
            Ok(out) => (
                out.status.success(),
                stdout(&out),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(e) => (false, String::new(), format!("psql did not run: {e}")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connect {url}: {}", describe(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// An error with its SQLSTATE, for messages.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} [{}]", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The SQLSTATE of a failed statement (or a description of why there is none).
pub fn sqlstate<T>(result: Result<T, tokio_postgres::Error>) -> String {
    match result {
        Ok(_) => "no error".into(),
        Err(e) => match e.as_db_error() {
            Some(db) => db.code().code().to_string(),
            None => format!("not a server error: {e}"),
        },
    }
}

/// Rows of a simple query as text, `|`-separated (the way psql -A prints them).
pub async fn text_rows(client: &Client, sql: &str) -> Result<Vec<String>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{sql}: {}", describe(&e)))?;
    Ok(rows_of(&messages))
}

/// The rows among a simple query's messages, `|`-separated, NULL as `NULL`.
pub fn rows_of(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

pub fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check(done(), || format!("{what}: not within {limit:?}"))
}

pub fn testdata() -> std::path::PathBuf {
    repo().join("testdata")
}
