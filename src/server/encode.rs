//! From Augur to the wire: result rows as `DataRow`s (text or binary, by arrow-pg), errors as
//! `ErrorResponse`s with their SQLSTATE, and the command tag each statement completes with.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::row_encoder::RowEncoder;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use datafusion_postgres::pgwire::types::format::FormatOptions;

use crate::error::AugurError;
use crate::session::{QueryResult, Session};

/// An Augur error as the client sees it: message, SQLSTATE, and our hint in its own field.
pub fn error_info(error: &AugurError) -> ErrorInfo {
    let text = error.to_string();
    let (message, hint) = match text.split_once("\nhint: ") {
        Some((message, hint)) => (message.to_string(), Some(hint.to_string())),
        None => (text, None),
    };
    let mut info = ErrorInfo::new("ERROR".into(), error.sqlstate().into(), message);
    info.hint = hint;
    info
}

pub fn pg_error(error: &AugurError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(error)))
}

pub fn notice(message: &str) -> ErrorInfo {
    ErrorInfo::new("NOTICE".into(), "01000".into(), message.to_string())
}

pub fn fields(
    schema: &datafusion::arrow::datatypes::Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> Result<Arc<Vec<FieldInfo>>, AugurError> {
    arrow_schema_to_pg_fields(schema, format, Some(options))
        .map(Arc::new)
        .map_err(|e| AugurError::Usage(format!("a result column cannot be sent: {e}")))
}

/// Rows streamed as the statement produces them; the statement runs while the client reads.
pub fn streaming(
    session: Session,
    result: QueryResult,
    fields: Arc<Vec<FieldInfo>>,
) -> QueryResponse {
    let state = (session, result, None::<RowEncoder>, Arc::clone(&fields));
    let rows = futures::stream::unfold(state, |(session, mut result, mut encoder, fields)| async {
        loop {
            if let Some(rows) = encoder.as_mut() {
                if let Some(row) = rows.next_row() {
                    return Some((row, (session, result, encoder, fields)));
                }
                encoder = None;
            }
            match result.next().await? {
                Ok(batch) if batch.num_rows() == 0 => {}
                Ok(batch) => encoder = Some(RowEncoder::new(batch, Arc::clone(&fields))),
                Err(e) => {
                    let error = pg_error(&session.explain_error(e));
                    return Some((Err(error), (session, result, None, fields)));
                }
            }
        }
    });
    QueryResponse::new(fields, rows)
}

/// Rows already collected (every statement of a multi-statement query but the last).
pub fn collected(batches: Vec<RecordBatch>, fields: Arc<Vec<FieldInfo>>) -> QueryResponse {
    let rows = batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .flat_map({
            let fields = Arc::clone(&fields);
            move |batch| {
                let mut encoder = RowEncoder::new(batch, Arc::clone(&fields));
                std::iter::from_fn(move || encoder.next_row())
            }
        })
        .collect::<Vec<_>>();
    QueryResponse::new(fields, futures::stream::iter(rows))
}

/// What a statement that returns no rows completes with, from its first words.
pub enum Completion {
    /// `INSERT 0 n`, `UPDATE n`, `DELETE n`, `COPY n`: the count DataFusion returns.
    Count(&'static str),
    /// `BEGIN`: the client is now in a transaction block.
    TransactionStart(&'static str),
    /// `COMMIT`, `ROLLBACK`.
    TransactionEnd(&'static str),
    /// Any other: `CREATE TABLE`, `SET`, `DROP MODEL`…
    Done(String),
    /// The statement returns rows.
    Rows,
    /// `TRAIN MODEL`: its summary row, collected first so that the training's NOTICEs
    /// reach the client before it.
    Summary,
}

impl Completion {
    /// Whether the statement may change a variable the client is told about.
    pub fn changes_settings(&self) -> bool {
        matches!(self, Completion::Done(tag) if matches!(tag.as_str(), "SET" | "RESET" | "DISCARD ALL"))
    }
}

const OBJECTS: &[&str] = &[
    "TABLE", "VIEW", "FUNCTION", "SCHEMA", "MODEL", "DATABASE", "INDEX", "CATALOG",
];

pub fn completion(sql: &str) -> Completion {
    let words: Vec<String> = crate::parser::skip_leading_comments(sql)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "INSERT" => Completion::Count("INSERT"),
        "UPDATE" => Completion::Count("UPDATE"),
        "DELETE" => Completion::Count("DELETE"),
        "MERGE" => Completion::Count("MERGE"),
        "COPY" => Completion::Count("COPY"),
        "BEGIN" => Completion::TransactionStart("BEGIN"),
        "START" => Completion::TransactionStart("START TRANSACTION"),
        "COMMIT" | "END" => Completion::TransactionEnd("COMMIT"),
        // ROLLBACK TO a savepoint stays in the block.
        "ROLLBACK" | "ABORT" if words.iter().any(|w| w == "TO") => {
            Completion::Done("ROLLBACK".into())
        }
        "ROLLBACK" | "ABORT" => Completion::TransactionEnd("ROLLBACK"),
        "DISCARD" => Completion::Done("DISCARD ALL".into()),
        "CREATE" | "DROP" | "ALTER" => {
            let object = words[1..].iter().find(|w| OBJECTS.contains(&w.as_str()));
            Completion::Done(match object {
                Some(object) => format!("{first} {object}"),
                None => first.to_string(),
            })
        }
        // OPTIMIZE and VACUUM answer a row (files replaced or deleted), as Databricks does;
        // ANALYZE a row per column it measured.
        "SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "OPTIMIZE"
        | "VACUUM" | "ANALYZE" => Completion::Rows,
        "TRAIN" => Completion::Summary,
        other => Completion::Done(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(sql: &str) -> String {
        match completion(sql) {
            Completion::Count(t)
            | Completion::TransactionStart(t)
            | Completion::TransactionEnd(t) => t.to_string(),
            Completion::Done(t) => t,
            Completion::Rows | Completion::Summary => "rows".into(),
        }
    }

    #[test]
    fn tags_follow_postgres() {
        assert_eq!(tag("create or replace view v as select 1"), "CREATE VIEW");
        assert_eq!(
            tag("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'x'"),
            "CREATE TABLE"
        );
        assert_eq!(tag("drop model if exists m"), "DROP MODEL");
        assert_eq!(tag("insert into t values (1)"), "INSERT");
        assert_eq!(tag("  select 1"), "rows");
        assert_eq!(tag("set statement_timeout = 1"), "SET");
        assert_eq!(tag("end"), "COMMIT");
        assert_eq!(tag("savepoint a"), "SAVEPOINT");
        assert_eq!(tag("release savepoint a"), "RELEASE");
        assert!(matches!(
            completion("rollback to savepoint a"),
            Completion::Done(t) if t == "ROLLBACK"
        ));
    }
}
