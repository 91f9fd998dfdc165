//! `COPY table|(query) TO STDOUT [CSV | BINARY] [HEADER] [DELIMITER 'c']` over the wire:
//! what psql's `\copy … to 'file'`, psycopg's `cursor.copy()`, ADBC and connectorx send.
//! COPY to a file path is DataFusion's own statement and runs like any other; COPY FROM
//! STDIN is the session's (session/copy_in.rs), fed by the CopyData handler here.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::messages::copy::CopyData;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;

use super::encode;
use crate::error::Result;
use crate::session::{Prepared, Session};

/// A parsed `COPY … TO STDOUT`.
#[derive(Debug, PartialEq)]
pub struct CopyOut {
    query: String,
    csv: bool,
    binary: bool,
    header: bool,
    delimiter: Option<String>,
}

/// `Some` when `sql` is a COPY to the client.
pub fn parse(sql: &str) -> Result<Option<CopyOut>> {
    let trimmed = crate::parser::skip_leading_comments(sql)
        .trim()
        .trim_end_matches(';')
        .trim();
    // Every statement passes here: look at the first word before copying the text.
    if crate::parser::first_word(trimmed) != "COPY" {
        return Ok(None);
    }
    let upper = trimmed.to_ascii_uppercase();
    let Some(at) = find_word(&upper, "STDOUT") else {
        return Ok(None);
    };
    let before = upper[4..at].trim_end();
    let Some(source_end) = before.strip_suffix("TO").map(|s| 4 + s.len()) else {
        return Ok(None);
    };
    let source = trimmed[4..source_end].trim();
    let query = match source.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        Some(inner) => inner.trim().to_string(),
        None => match source.split_once('(') {
            Some((table, columns)) => format!(
                "SELECT {} FROM {}",
                columns.trim_end().trim_end_matches(')'),
                table.trim()
            ),
            None => format!("SELECT * FROM {source}"),
        },
    };
    let options = trimmed[at + "STDOUT".len()..].to_string();
    let lower = options.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let header = words
        .iter()
        .position(|w| *w == "header")
        .is_some_and(|i| !matches!(words.get(i + 1), Some(&"false") | Some(&"off") | Some(&"0")));
    let delimiter = lower.find("delimiter").and_then(|i| {
        let rest = &options[i + "delimiter".len()..];
        let start = rest.find('\'')? + 1;
        let end = rest[start..].find('\'')? + start;
        Some(rest[start..end].to_string())
    });
    Ok(Some(CopyOut {
        query,
        csv: words.contains(&"csv"),
        binary: words.contains(&"binary"),
        header,
        delimiter,
    }))
}

fn find_word(upper: &str, word: &str) -> Option<usize> {
    upper.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = upper[..i].chars().next_back();
        let after = upper[i + word.len()..].chars().next();
        before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
            && after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
    })
}

/// What Describe says of a COPY: no result columns (the rows go as CopyData).
pub fn prepared() -> Prepared {
    Prepared {
        parameter_types: vec![],
        schema: Arc::new(Schema::empty()),
    }
}

pub async fn run(session: &Session, copy: CopyOut) -> Result<Response> {
    let result = session.execute(&copy.query).await?;
    let schema = result.schema();
    let format = if copy.binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = encode::fields(&schema, &format, Arc::new(FormatOptions::default()))?;
    let encoder = || match (&copy.csv, &copy.delimiter) {
        _ if copy.binary => CopyEncoder::new_binary(Arc::clone(&fields)),
        (true, delimiter) => {
            let mut options = CopyCsvOptions::default();
            if let Some(d) = delimiter {
                options.delimiter = d.as_str().into();
            }
            CopyEncoder::new_csv(Arc::clone(&fields), options)
        }
        (false, delimiter) => {
            let mut options = CopyTextOptions::default();
            if let Some(d) = delimiter {
                options.delimiter = d.as_str().into();
            }
            CopyEncoder::new_text(Arc::clone(&fields), options)
        }
    };
    // The header goes out with the first row: psql counts CopyData messages as rows.
    let mut header = None;
    if copy.header && copy.csv {
        let delimiter = copy.delimiter.clone().unwrap_or_else(|| ",".into());
        let names: Vec<String> = schema.fields().iter().map(|f| csv_name(f.name())).collect();
        header = Some(format!("{}\n", names.join(&delimiter)).into_bytes());
    }
    // Binary output starts with a signature the encoder writes before the first row; with
    // no rows it goes out alone, before the trailer.
    let binary = copy.binary;
    if binary {
        header = Some(BINARY_HEADER.to_vec());
    }
    let columns = schema.fields().len();
    let pending: VecDeque<PgWireResult<CopyData>> = VecDeque::new();
    let state = (session.clone(), result, encoder(), fields, pending, header);
    let stream = futures::stream::unfold(
        state,
        move |(session, mut result, mut encoder, fields, mut pending, mut header)| async move {
            loop {
                if let Some(item) = pending.pop_front() {
                    let item = match (header.take(), item) {
                        (Some(_), item) if binary => item,
                        (Some(head), Ok(row)) => {
                            let mut bytes = head;
                            bytes.extend_from_slice(&row.data);
                            Ok(CopyData::new(Bytes::from(bytes)))
                        }
                        (_, item) => item,
                    };
                    return Some((item, (session, result, encoder, fields, pending, header)));
                }
                let Some(next) = result.next().await else {
                    // No rows at all: the header alone (binary: with the trailer, in one
                    // message, as PostgreSQL sends it; clients read the header with a row).
                    let mut head = header.take()?;
                    if binary {
                        head.extend_from_slice(BINARY_TRAILER);
                    }
                    let item = Ok(CopyData::new(Bytes::from(head)));
                    return Some((item, (session, result, encoder, fields, pending, header)));
                };
                match next {
                    Ok(batch) => pending.extend(encode_rows(&mut encoder, &fields, &batch)),
                    Err(e) => {
                        let error = encode::pg_error(&session.explain_error(e));
                        let state = (session, result, encoder, fields, pending, header);
                        return Some((Err(error), state));
                    }
                }
            }
        },
    );
    // Binary output ends with a trailer; pgwire would add a second one after an empty
    // result's combined header and trailer, so it is added here, after rows only.
    let rows_sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&rows_sent);
    let header_only = BINARY_HEADER.len() + BINARY_TRAILER.len();
    let stream = stream
        .inspect(move |item| {
            if let Ok(data) = item
                && !(data.data.len() == header_only && data.data.starts_with(BINARY_HEADER))
            {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .chain(
            futures::stream::once(async move {
                let after_rows = rows_sent.load(std::sync::atomic::Ordering::Relaxed);
                (binary && after_rows)
                    .then(|| Ok(CopyData::new(Bytes::from_static(BINARY_TRAILER))))
            })
            .filter_map(futures::future::ready),
        );
    let mut response = CopyResponse::new(0, columns, stream);
    if binary {
        response.format = 1;
    }
    Ok(Response::CopyOut(response))
}

const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const BINARY_TRAILER: &[u8] = b"\xff\xff";

fn csv_name(name: &str) -> String {
    if name.contains([',', '"', '\n']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

fn encode_rows(
    encoder: &mut CopyEncoder,
    fields: &Arc<Vec<FieldInfo>>,
    batch: &RecordBatch,
) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (column, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(encoder, array, row, schema.field(column), &fields[column])
            {
                out.push(Err(e));
                return out;
            }
        }
        out.push(Ok(encoder.take_copy()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AugurError;

    #[test]
    fn psql_copy_forms() -> Result<()> {
        let copy = parse("COPY  t TO STDOUT csv header")?.ok_or(AugurError::Cancelled)?;
        assert_eq!(copy.query, "SELECT * FROM t");
        assert!(copy.csv && copy.header);
        let copy = parse("COPY ( select a from t ) TO STDOUT WITH (FORMAT csv, DELIMITER ';')")?
            .ok_or(AugurError::Cancelled)?;
        assert_eq!(copy.query, "select a from t");
        assert_eq!(copy.delimiter.as_deref(), Some(";"));
        assert!(!copy.header);
        assert!(parse("COPY t TO 'out.csv'")?.is_none());
        assert!(parse("SELECT 1")?.is_none());
        assert!(parse("COPY t FROM STDIN")?.is_none());
        assert!(parse("COPY t TO STDOUT (FORMAT binary)")?.is_some_and(|c| c.binary));
        Ok(())
    }
}
