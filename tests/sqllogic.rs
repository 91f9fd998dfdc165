//! Runs every `tests/slt/*.slt` file against an in-memory database, one trial per file.

use std::path::PathBuf;

use augur::{AugurError, Database, Session};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use libtest_mimic::Trial;
use sqllogictest::{DBOutput, DefaultColumnType};

struct AugurDb {
    session: Session,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for AugurDb {
    type Error = AugurError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, AugurError> {
        let result = self.session.execute(sql).await?;
        let schema = result.schema();
        let batches = result
            .collect()
            .await
            .map_err(|e| self.session.explain_error(e))?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        Ok(DBOutput::Rows {
            types,
            rows: rows(&batches),
        })
    }

    async fn shutdown(&mut self) {}
}

fn column_type(t: &datafusion::arrow::datatypes::DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating()
        || matches!(t, datafusion::arrow::datatypes::DataType::Decimal128(_, _))
    {
        DefaultColumnType::FloatingPoint
    } else if matches!(
        t,
        datafusion::arrow::datatypes::DataType::Utf8
            | datafusion::arrow::datatypes::DataType::Utf8View
            | datafusion::arrow::datatypes::DataType::LargeUtf8
    ) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

/// Cells as text: NULL for nulls, (empty) for empty strings, floats with at most 6 decimals.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = vec![];
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formattable column"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, col)| {
                        let text = f.value(row).to_string();
                        if text.is_empty() {
                            "(empty)".to_string()
                        } else if col.data_type().is_floating() && !col.is_null(row) {
                            round_float(&text)
                        } else {
                            text
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

pub fn round_float(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            let r = format!("{:.6}", v);
            let r = r.trim_end_matches('0').trim_end_matches('.').to_string();
            if r == "-0" { "0".into() } else { r }
        }
        _ => text.to_string(),
    }
}

/// Every `tests/slt/*.slt` file, in name order.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "slt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

pub fn trials() -> Vec<Trial> {
    slt_files()
        .into_iter()
        .map(|path| {
            let name = format!(
                "slt::{}",
                path.file_stem().unwrap_or_default().to_string_lossy()
            );
            Trial::test(name, move || run_file(&path).map_err(Into::into))
        })
        .collect()
}

fn run_file(path: &std::path::Path) -> Result<(), String> {
    let runtime = crate::common::runtime();
    runtime.block_on(async {
        let db = Database::in_memory().await.map_err(|e| e.to_string())?;
        let mut runner = sqllogictest::Runner::new(|| {
            let db = db.clone();
            async move {
                Ok(AugurDb {
                    session: db.session()?,
                })
            }
        });
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(false).to_string())
    })
}
