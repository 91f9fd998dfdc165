//! The same `tests/slt/*.slt` files as `slt::…`, run over the wire through tokio-postgres:
//! each statement is described (column types) and run with the simple protocol (text
//! values), and the text is put in the in-process runner's form, type by type. Differences
//! in rows are differences in what clients see.

use std::path::{Path, PathBuf};

use libtest_mimic::Trial;
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::{Server, connect};
use crate::common::{repo, runtime};
use crate::sqllogic::round_float;

pub fn trials() -> Vec<Trial> {
    crate::sqllogic::slt_files()
        .into_iter()
        .map(|path| {
            let name = format!(
                "server::slt_{}",
                path.file_stem().unwrap_or_default().to_string_lossy()
            );
            Trial::test(name, move || run_file(&path).map_err(Into::into))
        })
        .collect()
}

#[derive(Debug)]
struct WireError(String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn wire_error(e: &tokio_postgres::Error) -> WireError {
    WireError(match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{}\nhint: {hint}", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    })
}

struct WireDb {
    client: Client,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for WireDb {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        // Describe first: the simple protocol's text values carry no types.
        let types: Vec<Type> = match self.client.prepare(sql).await {
            Ok(statement) => statement
                .columns()
                .iter()
                .map(|c| c.type_().clone())
                .collect(),
            Err(e) => return Err(wire_error(&e)),
        };
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| wire_error(&e))?;
        if types.is_empty() {
            // In process, INSERT and COPY return DataFusion's `count` row; over the wire the
            // count is in the command tag (`INSERT 0 2`), where clients look for it.
            let first = sql
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let count = messages.iter().find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            });
            return Ok(match (first.as_str(), count) {
                ("INSERT" | "COPY" | "UPDATE" | "DELETE" | "MERGE", Some(n)) => DBOutput::Rows {
                    types: vec![DefaultColumnType::Integer],
                    rows: vec![vec![n.to_string()]],
                },
                _ => DBOutput::StatementComplete(0),
            });
        }
        let rows = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| in_process_form(row.get(i), &types[i]))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Ok(DBOutput::Rows {
            types: types.iter().map(column_type).collect(),
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

fn column_type(t: &Type) -> DefaultColumnType {
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::CHAR | Type::OID => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

/// A value's Postgres text as the in-process runner prints the Arrow value.
fn in_process_form(text: Option<&str>, t: &Type) -> String {
    let Some(text) = text else {
        return "NULL".into();
    };
    if text.is_empty() {
        return "(empty)".into();
    }
    match *t {
        Type::BOOL => match text {
            "t" => "true".into(),
            "f" => "false".into(),
            other => other.into(),
        },
        Type::FLOAT4 | Type::FLOAT8 => round_float(text),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => text.replacen(' ', "T", 1),
        _ => text.into(),
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let root: PathBuf = repo();
    // An in-memory database like the in-process run, started where cargo runs tests; the
    // repository is the directory remote sessions may use.
    // The runner's $__TEST_DIR__ is a temporary directory: allowed too.
    let temp = std::env::temp_dir();
    let server = Server::start(
        &root,
        &[
            "--allow-dir",
            root.to_str().unwrap_or("."),
            "--allow-dir",
            temp.to_str().unwrap_or("/tmp"),
        ],
    )?;
    let url = server.url("augur");
    runtime().block_on(async {
        let mut runner = sqllogictest::Runner::new(|| {
            let url = url.clone();
            async move {
                let client = connect(&url).await.map_err(WireError)?;
                Ok(WireDb { client })
            }
        });
        runner.add_label("wire");
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(false).to_string())
    })?;
    Ok(())
}
