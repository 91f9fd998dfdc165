//! Result writers for every `--format`: table, csv, tsv, json, ndjson, markdown, line.
//! Rows stream through a writer batch by batch; only `table` keeps rows (its head and tail).

mod table;

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

pub use table::TableStyle;

/// An output format, as named on the command line and in `.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
    Ndjson,
    Markdown,
    Line,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        <Format as clap::ValueEnum>::from_str(name, true).ok()
    }

    pub fn names() -> &'static str {
        "table, csv, tsv, json, ndjson, markdown, line"
    }
}

/// Writes one statement's result in a format, batch by batch.
pub struct ResultWriter<'a> {
    format: Format,
    out: &'a mut dyn Write,
    schema: SchemaRef,
    rows: usize,
    table: Option<table::TableBuffer>,
}

impl<'a> ResultWriter<'a> {
    pub fn new(
        format: Format,
        schema: SchemaRef,
        style: TableStyle,
        out: &'a mut dyn Write,
    ) -> Self {
        let table = (format == Format::Table).then(|| table::TableBuffer::new(style));
        ResultWriter {
            format,
            out,
            schema,
            rows: 0,
            table,
        }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        if self.rows == 0 {
            self.header()?;
        }
        let first = self.rows;
        self.rows += batch.num_rows();
        match self.format {
            Format::Table => {
                if let Some(t) = &mut self.table {
                    t.push(batch);
                }
                Ok(())
            }
            Format::Csv => self.delimited(batch, b','),
            Format::Tsv => self.delimited(batch, b'\t'),
            Format::Json | Format::Ndjson => self.json(batch, first),
            Format::Markdown => self.markdown(batch),
            Format::Line => self.line(batch, first),
        }
    }

    /// Finish the result: the table is drawn here; empty results still get their header.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.rows == 0 {
            self.header()?;
        }
        match self.format {
            Format::Table => {
                if let Some(t) = self.table.take() {
                    t.render(&self.schema, self.out)?;
                }
            }
            Format::Json => writeln!(self.out, "{}", if self.rows == 0 { "[]" } else { "\n]" })?,
            _ => {}
        }
        self.out.flush()
    }

    fn header(&mut self) -> std::io::Result<()> {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        match self.format {
            Format::Csv => {
                let cells: Vec<String> = names.iter().map(|n| quote_delimited(n, b',')).collect();
                writeln!(self.out, "{}", cells.join(","))
            }
            Format::Tsv => {
                let cells: Vec<String> = names.iter().map(|n| quote_delimited(n, b'\t')).collect();
                writeln!(self.out, "{}", cells.join("\t"))
            }
            Format::Markdown => {
                let cells: Vec<String> = names.iter().map(|n| escape_markdown(n)).collect();
                writeln!(self.out, "| {} |", cells.join(" | "))?;
                writeln!(self.out, "|{}", "---|".repeat(names.len()))
            }
            _ => Ok(()),
        }
    }

    fn delimited(&mut self, batch: &RecordBatch, delimiter: u8) -> std::io::Result<()> {
        let cells = formatters(batch, "")?;
        let sep = delimiter as char;
        for row in 0..batch.num_rows() {
            let mut line = String::new();
            for (i, f) in cells.iter().enumerate() {
                if i > 0 {
                    line.push(sep);
                }
                let value = f.value(row).to_string();
                line.push_str(&quote_delimited(&value, delimiter));
            }
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn json(&mut self, batch: &RecordBatch, first: usize) -> std::io::Result<()> {
        use datafusion::arrow::json::WriterBuilder;
        use datafusion::arrow::json::writer::{JsonArray, LineDelimited};
        let mut buf = vec![];
        // Every key in every object, NULL as null: a reader sees each column on each row.
        let builder = WriterBuilder::new().with_explicit_nulls(true);
        if self.format == Format::Ndjson {
            let mut w = builder.build::<_, LineDelimited>(&mut buf);
            w.write(batch).map_err(io)?;
            w.finish().map_err(io)?;
            return self.out.write_all(&buf);
        }
        // One array across batches: each batch's objects, joined by commas.
        let mut w = builder.build::<_, JsonArray>(&mut buf);
        w.write(batch).map_err(io)?;
        w.finish().map_err(io)?;
        let text = String::from_utf8_lossy(&buf);
        let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
        if inner.is_empty() {
            return Ok(());
        }
        let objects = inner.replace("},{", "},\n  {");
        let lead = if first == 0 { "[\n  " } else { ",\n  " };
        write!(self.out, "{lead}{objects}")
    }

    fn markdown(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let cells = formatters(batch, "NULL")?;
        for row in 0..batch.num_rows() {
            let values: Vec<String> = cells
                .iter()
                .map(|f| escape_markdown(&f.value(row).to_string()))
                .collect();
            writeln!(self.out, "| {} |", values.join(" | "))?;
        }
        Ok(())
    }

    fn line(&mut self, batch: &RecordBatch, first: usize) -> std::io::Result<()> {
        let cells = formatters(batch, "NULL")?;
        let width = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().chars().count())
            .max()
            .unwrap_or(0);
        for row in 0..batch.num_rows() {
            if first + row > 0 {
                writeln!(self.out)?;
            }
            for (f, field) in cells.iter().zip(self.schema.fields()) {
                writeln!(self.out, "{:>width$} = {}", field.name(), f.value(row))?;
            }
        }
        Ok(())
    }
}

fn io(e: ArrowError) -> std::io::Error {
    std::io::Error::other(e)
}

static NULL_EMPTY: FormatOptions<'static> = FormatOptions::new();
static NULL_WORD: FormatOptions<'static> = FormatOptions::new().with_null("NULL");

/// Cell formatters for a batch; NULL prints as `""` (csv, tsv) or `NULL` (the rest).
pub(crate) fn formatters<'b>(
    batch: &'b RecordBatch,
    null: &str,
) -> std::io::Result<Vec<ArrayFormatter<'b>>> {
    let options = if null.is_empty() {
        &NULL_EMPTY
    } else {
        &NULL_WORD
    };
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options).map_err(io))
        .collect()
}

fn quote_delimited(value: &str, delimiter: u8) -> String {
    let needs = value
        .bytes()
        .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if needs {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn escape_markdown(value: &str) -> String {
    value.replace('|', "\\|").replace('\n', "<br>")
}
