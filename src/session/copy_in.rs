//! `COPY t [(columns)] FROM STDIN [WITH (FORMAT text | csv | binary, …)]`: rows a front end
//! streams in (the wire protocol's CopyData) are decoded as they arrive and appended by one
//! INSERT plan, so the load commits atomically when the client says it is done — and a
//! malformed row, a CopyFail or a client that goes away stores nothing.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use tokio::sync::mpsc;

use super::{QueryResult, Session};
use crate::error::{AugurError, Result};
use crate::storage::copy_format::{CopyFormat, Decoder};

/// A parsed `COPY … FROM STDIN`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFrom {
    table: String,
    columns: Vec<String>,
    format: CopyFormat,
}

impl CopyFrom {
    pub fn binary(&self) -> bool {
        matches!(self.format, CopyFormat::Binary)
    }
}

/// What the front end passes on from the client.
enum Chunk {
    Data(Bytes),
    Done,
    Fail(String),
}

fn usage(message: String) -> AugurError {
    AugurError::Usage(message)
}

fn one_byte(option: &str, c: char) -> Result<u8> {
    u8::try_from(u32::from(c))
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| usage(format!("COPY option {option} must be one ASCII character")))
}

/// `Some` when `sql` is a `COPY … FROM STDIN`.
pub fn parse(sql: &str) -> Result<Option<CopyFrom>> {
    let head = crate::parser::skip_leading_comments(sql).trim_start();
    if !head
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("COPY"))
    {
        return Ok(None);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    let Some(Statement::Copy {
        source: CopySource::Table {
            table_name,
            columns,
        },
        to: false,
        target: CopyTarget::Stdin,
        options,
        legacy_options,
        ..
    }) = statements.pop()
    else {
        return Ok(None);
    };
    let mut format = CopyFormat::text();
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    let mut quote = None;
    let mut escape = None;
    for option in options {
        match option {
            CopyOption::Format(name) => {
                format = match name.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::text(),
                    "csv" => CopyFormat::csv(),
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(usage(format!(
                            "COPY format \"{other}\" not recognized: use text, csv or binary"
                        )));
                    }
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(one_byte("DELIMITER", c)?),
            CopyOption::Null(s) => null = Some(s),
            CopyOption::Header(h) => header = h,
            CopyOption::Quote(c) => quote = Some(one_byte("QUOTE", c)?),
            CopyOption::Escape(c) => escape = Some(one_byte("ESCAPE", c)?),
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            CopyOption::Freeze(_) => {}
            other => {
                return Err(usage(format!(
                    "COPY … FROM STDIN does not support the option {other}"
                )));
            }
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(one_byte("DELIMITER", c)?),
            CopyLegacyOption::Null(s) => null = Some(s),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                format = CopyFormat::csv();
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(one_byte("QUOTE", c)?),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(one_byte("ESCAPE", c)?),
                        other => {
                            return Err(usage(format!(
                                "COPY … FROM STDIN does not support the option {other}"
                            )));
                        }
                    }
                }
            }
            other => {
                return Err(usage(format!(
                    "COPY … FROM STDIN does not support the option {other}"
                )));
            }
        }
    }
    let format = match format {
        CopyFormat::Text {
            delimiter: d,
            null: n,
        } => CopyFormat::Text {
            delimiter: delimiter.unwrap_or(d),
            null: null.unwrap_or(n),
        },
        CopyFormat::Csv {
            delimiter: d,
            quote: q,
            null: n,
            ..
        } => {
            let quote = quote.unwrap_or(q);
            CopyFormat::Csv {
                delimiter: delimiter.unwrap_or(d),
                quote,
                escape: escape.unwrap_or(quote),
                null: null.unwrap_or(n),
                header,
            }
        }
        CopyFormat::Binary => CopyFormat::Binary,
    };
    let table = table_name
        .0
        .iter()
        .filter_map(|part| part.as_ident().map(crate::parser::normalize_ident))
        .collect::<Vec<_>>()
        .join(".");
    Ok(Some(CopyFrom {
        table,
        columns: columns.iter().map(crate::parser::normalize_ident).collect(),
        format,
    }))
}

/// A bad row's error as the load reported it, without the layers of the table writer it
/// passed through on the way out (`External error: Generic DeltaTable error: …`).
fn unwrapped(e: AugurError) -> AugurError {
    let text = e.to_string();
    match (text.find("COPY "), text.contains(NOTHING_STORED)) {
        (Some(at), true) if at > 0 => {
            AugurError::DataFusion(DataFusionError::Execution(text[at..].to_string()))
        }
        _ => e,
    }
}

/// How every error that ends a load ends: the user can fix the rows and run it again.
const NOTHING_STORED: &str = "; nothing was stored";

/// A COPY in progress: feed it the client's data, then finish or fail it.
pub struct CopyIn {
    sender: mpsc::Sender<Chunk>,
    result: QueryResult,
    columns: usize,
}

impl CopyIn {
    /// How many columns each row has (the CopyInResponse says so).
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Pass on a chunk of data; waits while the table writer catches up.
    pub async fn send(&self, data: Bytes) {
        // If the load already failed, the error is reported by `finish`.
        let _ = self.sender.send(Chunk::Data(data)).await;
    }

    /// The client is done: commit, and say how many rows were stored.
    pub async fn finish(self) -> Result<u64> {
        let _ = self.sender.send(Chunk::Done).await;
        let batches = self.result.collect().await.map_err(unwrapped)?;
        Ok(super::affected_rows(&batches) as u64)
    }

    /// The client gave up (CopyFail): nothing is stored.
    pub async fn fail(self, message: &str) -> AugurError {
        let _ = self.sender.send(Chunk::Fail(message.to_string())).await;
        match self.result.collect().await {
            Err(e) => e,
            Ok(_) => AugurError::Internal("COPY was not aborted by CopyFail".into()),
        }
    }
}

/// The rows of one COPY, decoded from the chunks as the INSERT reads them.
struct Input {
    schema: SchemaRef,
    table: String,
    source: Mutex<Option<(mpsc::Receiver<Chunk>, Decoder)>>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "COPY {} FROM STDIN", self.table)
    }
}

impl PartitionStream for Input {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let source = self.source.lock().ok().and_then(|mut s| s.take());
        let table = self.table.clone();
        let fail = move |message: String| {
            DataFusionError::Execution(format!("COPY {table}, {message}{NOTHING_STORED}"))
        };
        let stream = futures::stream::unfold(
            (source, std::collections::VecDeque::new(), false),
            move |(mut source, mut ready, mut ended)| {
                let fail = fail.clone();
                async move {
                    loop {
                        if let Some(batch) = ready.pop_front() {
                            return Some((Ok(batch), (source, ready, ended)));
                        }
                        if ended {
                            return None;
                        }
                        let Some((receiver, decoder)) = source.as_mut() else {
                            return Some((
                                Err(fail("its input was already read".into())),
                                (None, ready, true),
                            ));
                        };
                        let decoded = match receiver.recv().await {
                            Some(Chunk::Data(data)) => decoder.push(&data),
                            Some(Chunk::Done) => {
                                ended = true;
                                decoder.finish()
                            }
                            Some(Chunk::Fail(message)) => {
                                Err(format!("COPY from stdin failed: {message}"))
                            }
                            None => Err("the client went away during COPY".into()),
                        };
                        match decoded {
                            Ok(batches) => ready.extend(batches),
                            Err(e) => return Some((Err(fail(e)), (None, ready, true))),
                        }
                    }
                }
            },
        );
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

impl Session {
    /// Start `COPY … FROM STDIN`: the INSERT runs as the data arrives through the handle.
    pub async fn copy_in(&self, copy: CopyFrom) -> Result<CopyIn> {
        let reference = TableReference::from(copy.table.as_str());
        let provider = self.ctx.table_provider(reference.clone()).await?;
        let target = provider.schema();
        let columns: Vec<String> = if copy.columns.is_empty() {
            target.fields().iter().map(|f| f.name().clone()).collect()
        } else {
            copy.columns.clone()
        };
        let mut fields = vec![];
        for name in &columns {
            let Ok(field) = target.field_with_name(name) else {
                // DataFusion's own error (SQLSTATE 42703), listing the table's columns.
                let schema = datafusion::common::DFSchema::try_from_qualified_schema(
                    reference.clone(),
                    &target,
                )?;
                return Err(
                    datafusion::common::field_not_found(Some(reference), name, &schema).into(),
                );
            };
            fields.push(field.clone().with_nullable(true));
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let (sender, receiver) = mpsc::channel(16);
        let input = Input {
            schema: Arc::clone(&schema),
            table: copy.table.clone(),
            source: Mutex::new(Some((
                receiver,
                Decoder::new(copy.format.clone(), Arc::clone(&schema)),
            ))),
        };
        let source = StreamingTable::try_new(Arc::clone(&schema), vec![Arc::new(input)])?;
        let values: Vec<Expr> = target
            .fields()
            .iter()
            .map(|f| {
                let value = if columns.contains(f.name()) {
                    Expr::Column(Column::new(Some("stdin"), f.name()))
                } else {
                    lit(ScalarValue::Null)
                };
                cast(value, f.data_type().clone()).alias(f.name())
            })
            .collect();
        let plan = LogicalPlanBuilder::scan("stdin", provider_as_source(Arc::new(source)), None)?
            .project(values)?;
        let plan = LogicalPlanBuilder::insert_into(
            plan.build()?,
            reference,
            provider_as_source(provider),
            InsertOp::Append,
        )?
        .build()?;
        let result = self.execute_plan(plan).await?;
        Ok(CopyIn {
            sender,
            result,
            columns: columns.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_stdin_forms() -> Result<()> {
        let copy = parse("COPY t FROM STDIN")?.ok_or(AugurError::Cancelled)?;
        assert_eq!(copy.table, "t");
        assert_eq!(copy.format, CopyFormat::text());
        let copy =
            parse("copy \"T\" (a, B) from stdin with (format csv, header true, delimiter ';')")?
                .ok_or(AugurError::Cancelled)?;
        assert_eq!(copy.table, "T");
        assert_eq!(copy.columns, vec!["a", "b"]);
        assert!(matches!(
            copy.format,
            CopyFormat::Csv {
                delimiter: b';',
                header: true,
                ..
            }
        ));
        assert!(parse("COPY t FROM STDIN WITH (FORMAT binary)")?.is_some_and(|c| c.binary()));
        assert!(parse("COPY t FROM STDIN CSV HEADER")?.is_some());
        assert!(parse("COPY t TO STDOUT")?.is_none());
        assert!(parse("COPY t FROM STDIN (FORMAT parquet)").is_err());
        Ok(())
    }
}
