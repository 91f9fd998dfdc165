//! PostgreSQL's COPY data formats — text, CSV and binary — decoded into Arrow batches of a
//! table's column types, chunk by chunk as they arrive (a load never sits whole in memory).
//! Errors name the line (the row, for binary) and the column, as PostgreSQL's do.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;

/// Rows decoded before a batch is handed on.
const BATCH_ROWS: usize = 8192;
const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Days and seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How the rows are written.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyFormat {
    /// Tab-separated (or `delimiter`), backslash escapes, `null` (default `\N`) for NULL.
    Text { delimiter: u8, null: String },
    /// RFC 4180 with PostgreSQL's rules: an unquoted `null` (default empty) is NULL, a
    /// quoted empty string is an empty string.
    Csv {
        delimiter: u8,
        quote: u8,
        escape: u8,
        null: String,
        header: bool,
    },
    /// PGCOPY: a header, then per row a field count and length-prefixed binary values.
    Binary,
}

impl CopyFormat {
    pub fn text() -> Self {
        CopyFormat::Text {
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }

    pub fn csv() -> Self {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: String::new(),
            header: false,
        }
    }
}

/// One field as read: text formats give text, binary gives bytes.
enum Raw {
    Null,
    Text(String),
    Bytes(Vec<u8>),
}

/// Turns COPY data into batches of `schema`, fed in chunks of any size.
pub struct Decoder {
    format: CopyFormat,
    schema: SchemaRef,
    /// Bytes received but not yet part of a complete row.
    pending: Vec<u8>,
    /// Rows of the batch being built, column by column.
    columns: Vec<Vec<Raw>>,
    /// Line (text, CSV) or row (binary) number of the first row in `columns`.
    first_line: u64,
    /// Lines or rows read so far.
    lines: u64,
    header_done: bool,
    /// The end marker (`\.` or the binary trailer) was seen: later bytes are ignored.
    ended: bool,
}

impl Decoder {
    pub fn new(format: CopyFormat, schema: SchemaRef) -> Self {
        let width = schema.fields().len();
        let header_done = !matches!(
            format,
            CopyFormat::Binary | CopyFormat::Csv { header: true, .. }
        );
        Decoder {
            format,
            schema,
            pending: vec![],
            columns: (0..width).map(|_| vec![]).collect(),
            first_line: 1,
            lines: 0,
            header_done,
            ended: false,
        }
    }

    /// Decode what `data` completes; full batches come back, the rest waits for more.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<RecordBatch>, String> {
        if self.ended {
            return Ok(vec![]);
        }
        self.pending.extend_from_slice(data);
        self.decode(false)
    }

    /// The input ended: decode the rest (a last line without a newline counts).
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, String> {
        let mut out = if self.ended {
            vec![]
        } else {
            self.decode(true)?
        };
        if matches!(self.format, CopyFormat::Binary) && !self.ended && !self.pending.is_empty() {
            return Err(format!(
                "COPY binary data ended inside row {}: the input is truncated",
                self.lines + 1
            ));
        }
        if self.columns.first().is_some_and(|c| !c.is_empty()) {
            out.extend(self.flush()?);
        }
        Ok(out)
    }

    fn decode(&mut self, at_end: bool) -> Result<Vec<RecordBatch>, String> {
        let mut out = vec![];
        let mut at = 0;
        while !self.ended {
            let step = match &self.format {
                CopyFormat::Binary => self.binary_row(at)?,
                CopyFormat::Text { .. } => self.text_row(at, at_end)?,
                CopyFormat::Csv { .. } => self.csv_row(at, at_end)?,
            };
            let Some(next) = step else { break };
            at = next;
            if self.columns.first().is_some_and(|c| c.len() >= BATCH_ROWS) {
                out.extend(self.flush()?);
            }
        }
        self.pending.drain(..at);
        Ok(out)
    }

    fn add_row(&mut self, fields: Vec<Raw>) -> Result<(), String> {
        self.lines += 1;
        if !self.header_done {
            self.header_done = true;
            self.first_line = self.lines + 1;
            return Ok(());
        }
        let width = self.columns.len();
        if fields.len() != width {
            let problem = if fields.len() < width {
                format!(
                    "missing data for column \"{}\"",
                    self.schema.field(fields.len()).name()
                )
            } else {
                "extra data after last expected column".to_string()
            };
            return Err(format!(
                "line {}: {problem} (expected {width} fields, found {})",
                self.lines,
                fields.len()
            ));
        }
        for (column, field) in self.columns.iter_mut().zip(fields) {
            column.push(field);
        }
        Ok(())
    }

    /// One text-format line starting at `at`; `None` until its newline has arrived.
    fn text_row(&mut self, at: usize, at_end: bool) -> Result<Option<usize>, String> {
        let CopyFormat::Text { delimiter, null } = &self.format else {
            return Ok(None);
        };
        let (delimiter, null) = (*delimiter, null.clone());
        let rest = &self.pending[at..];
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], at + i + 1),
            None if at_end && !rest.is_empty() => (rest, at + rest.len()),
            None => return Ok(None),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            self.ended = true;
            return Ok(Some(next));
        }
        let line = line.to_vec();
        let fields = split_text(&line, delimiter)
            .into_iter()
            .map(|raw| {
                if raw == null.as_bytes() {
                    Ok(Raw::Null)
                } else {
                    unescape_text(raw).map(Raw::Text)
                }
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("line {}: {e}", self.lines + 1))?;
        self.add_row(fields)?;
        Ok(Some(next))
    }

    /// One CSV record starting at `at` (quoted fields may hold newlines).
    fn csv_row(&mut self, at: usize, at_end: bool) -> Result<Option<usize>, String> {
        let CopyFormat::Csv {
            delimiter,
            quote,
            escape,
            null,
            ..
        } = &self.format
        else {
            return Ok(None);
        };
        let (delimiter, quote, escape, null) = (*delimiter, *quote, *escape, null.clone());
        let bytes = &self.pending[at..];
        if bytes.is_empty() {
            return Ok(None);
        }
        let mut fields = vec![];
        let mut field = vec![];
        let mut quoted = false;
        let mut in_quotes = false;
        let mut i = 0;
        let end = loop {
            let Some(&b) = bytes.get(i) else {
                if at_end && !in_quotes {
                    break i;
                }
                if at_end {
                    return Err(format!(
                        "line {}: unterminated CSV quoted field",
                        self.lines + 1
                    ));
                }
                return Ok(None);
            };
            if in_quotes {
                if b == escape && escape != quote && bytes.get(i + 1) == Some(&quote) {
                    field.push(quote);
                    i += 2;
                    continue;
                }
                if b == quote {
                    if escape == quote && bytes.get(i + 1) == Some(&quote) {
                        field.push(quote);
                        i += 2;
                        continue;
                    }
                    if bytes.get(i + 1).is_none() && !at_end {
                        return Ok(None);
                    }
                    in_quotes = false;
                } else {
                    field.push(b);
                }
            } else if b == quote {
                in_quotes = true;
                quoted = true;
            } else if b == delimiter {
                fields.push(csv_field(std::mem::take(&mut field), quoted, &null));
                quoted = false;
            } else if b == b'\n' {
                break i + 1;
            } else if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            } else {
                field.push(b);
            }
            i += 1;
        };
        let line_end = if bytes[..end].ends_with(b"\r\n") {
            end - 2
        } else if bytes[..end].ends_with(b"\n") {
            end - 1
        } else {
            end
        };
        if !quoted && fields.is_empty() && &bytes[..line_end] == b"\\." {
            self.ended = true;
            return Ok(Some(at + end));
        }
        fields.push(csv_field(field, quoted, &null));
        let fields = fields
            .into_iter()
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("line {}: {e}", self.lines + 1))?;
        self.add_row(fields)?;
        Ok(Some(at + end))
    }

    /// One binary row (or the header, or the trailer) starting at `at`.
    fn binary_row(&mut self, at: usize) -> Result<Option<usize>, String> {
        let bytes = &self.pending[at..];
        if !self.header_done {
            if bytes.len() < BINARY_SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if !bytes.starts_with(BINARY_SIGNATURE) {
                return Err(
                    "COPY binary data does not start with the PGCOPY signature: \
                     send FORMAT binary data, or use FORMAT text or csv"
                        .into(),
                );
            }
            let extension = i32_at(bytes, BINARY_SIGNATURE.len() + 4).max(0) as usize;
            let length = BINARY_SIGNATURE.len() + 8 + extension;
            if bytes.len() < length {
                return Ok(None);
            }
            self.header_done = true;
            return Ok(Some(at + length));
        }
        if bytes.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([bytes[0], bytes[1]]);
        if count == -1 {
            self.ended = true;
            return Ok(Some(at + 2));
        }
        let mut i = 2;
        let mut fields = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count {
            if bytes.len() < i + 4 {
                return Ok(None);
            }
            let length = i32_at(bytes, i);
            i += 4;
            if length < 0 {
                fields.push(Raw::Null);
                continue;
            }
            let length = length as usize;
            if bytes.len() < i + length {
                return Ok(None);
            }
            fields.push(Raw::Bytes(bytes[i..i + length].to_vec()));
            i += length;
        }
        self.add_row(fields)?;
        Ok(Some(at + i))
    }

    /// The rows so far as one batch of the target types.
    fn flush(&mut self) -> Result<Option<RecordBatch>, String> {
        let rows = self.columns.first().map_or(0, Vec::len);
        let first_line = self.first_line;
        self.first_line += rows as u64;
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (index, column) in self.columns.iter_mut().enumerate() {
            let values = std::mem::take(column);
            let field = self.schema.field(index);
            let array = to_array(values, field.data_type()).map_err(|(row, e)| {
                format!(
                    "line {}, column {}: {e}",
                    first_line + row as u64,
                    field.name()
                )
            })?;
            arrays.push(array);
        }
        if rows == 0 && !arrays.is_empty() {
            return Ok(None);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn csv_field(bytes: Vec<u8>, quoted: bool, null: &str) -> Result<Raw, String> {
    if !quoted && bytes == null.as_bytes() {
        return Ok(Raw::Null);
    }
    String::from_utf8(bytes)
        .map(Raw::Text)
        .map_err(|_| "invalid UTF-8 (COPY reads UTF-8 text)".to_string())
}

/// Split a text-format line at unescaped delimiters.
fn split_text(line: &[u8], delimiter: u8) -> Vec<&[u8]> {
    let mut out = vec![];
    let mut start = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' {
            i += 2;
            continue;
        }
        if line[i] == delimiter {
            out.push(&line[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push(&line[start.min(line.len())..]);
    out
}

/// Text format's backslash escapes: `\t \n \r \b \f \v`, octal `\123`, hex `\x7f`.
fn unescape_text(raw: &[u8]) -> Result<String, String> {
    if !raw.contains(&b'\\') {
        return String::from_utf8(raw.to_vec())
            .map_err(|_| "invalid UTF-8 (COPY reads UTF-8 text)".to_string());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' || i >= raw.len() {
            out.push(b);
            continue;
        }
        let c = raw[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' => {
                let digits: Vec<u8> = raw[i..]
                    .iter()
                    .take(2)
                    .take_while(|d| d.is_ascii_hexdigit())
                    .copied()
                    .collect();
                if digits.is_empty() {
                    out.push(b'x');
                } else {
                    i += digits.len();
                    let text = String::from_utf8_lossy(&digits).to_string();
                    out.push(u8::from_str_radix(&text, 16).unwrap_or(0));
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 (COPY reads UTF-8 text)".to_string())
}

/// A column of raw fields as `target`; on failure, the row and the reason.
fn to_array(values: Vec<Raw>, target: &DataType) -> Result<ArrayRef, (usize, String)> {
    if values.iter().any(|v| matches!(v, Raw::Bytes(_))) {
        return binary_array(values, target);
    }
    let text: StringArray = values
        .into_iter()
        .map(|v| match v {
            Raw::Text(s) => Some(s),
            _ => None,
        })
        .collect();
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let text: ArrayRef = Arc::new(text);
    cast_with_options(&text, target, &strict).map_err(|_| {
        // Find the first value that does not convert, for the message.
        let text = text.as_any().downcast_ref::<StringArray>();
        let bad = (0..text.map_or(0, |t| t.len())).find(|&row| {
            let one = text.map(|t| Arc::new(t.slice(row, 1)) as ArrayRef);
            one.is_some_and(|one| cast_with_options(&one, target, &strict).is_err())
        });
        let row = bad.unwrap_or(0);
        let value = text.map(|t| t.value(row).to_string()).unwrap_or_default();
        (
            row,
            format!("invalid input syntax for type {target}: \"{value}\""),
        )
    })
}

/// Each binary field decoded by `decode` (NULL stays NULL), collected into an array.
fn decode_fields<T, A: FromIterator<Option<T>>>(
    values: &[Raw],
    decode: impl Fn(usize, &[u8]) -> Result<T, (usize, String)>,
) -> Result<A, (usize, String)> {
    values
        .iter()
        .enumerate()
        .map(|(row, v)| match v {
            Raw::Null => Ok(None),
            Raw::Bytes(b) => decode(row, b).map(Some),
            Raw::Text(_) => Err((row, "text value in binary COPY".into())),
        })
        .collect()
}

fn integer(b: &[u8]) -> i64 {
    match b.len() {
        1 => i64::from(b[0] as i8),
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        _ => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

/// Binary fields decoded by the column's type (and, for numbers, the field's width).
fn binary_array(values: Vec<Raw>, target: &DataType) -> Result<ArrayRef, (usize, String)> {
    let wrong_width = |row: usize, b: &[u8]| {
        (
            row,
            format!("a {}-byte binary value cannot be read as {target}", b.len()),
        )
    };
    let width = move |row: usize, b: &[u8], allowed: &[usize]| {
        if allowed.contains(&b.len()) {
            Ok(())
        } else {
            Err(wrong_width(row, b))
        }
    };
    // An integer of one of `widths` bytes, moved by `offset` (PostgreSQL's epochs).
    let number = |widths: &'static [usize], offset: i64| {
        move |row: usize, b: &[u8]| width(row, b, widths).map(|_| integer(b) + offset)
    };
    let array: ArrayRef = match target {
        DataType::Boolean => Arc::new(decode_fields::<_, BooleanArray>(&values, |row, b| {
            width(row, b, &[1]).map(|_| b[0] != 0)
        })?),
        t if t.is_integer() => Arc::new(decode_fields::<_, Int64Array>(
            &values,
            number(&[1, 2, 4, 8], 0),
        )?),
        DataType::Float32 | DataType::Float64 => {
            Arc::new(decode_fields::<_, Float64Array>(
                &values,
                |row, b| match b.len() {
                    4 => Ok(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    8 => Ok(f64::from_be_bytes([
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    ])),
                    // A numeric sent for a float column.
                    _ => numeric_text(b)
                        .and_then(|t| t.parse::<f64>().ok())
                        .ok_or_else(|| wrong_width(row, b)),
                },
            )?)
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            Arc::new(decode_fields::<_, StringArray>(&values, |row, b| {
                numeric_text(b).ok_or((row, "malformed binary numeric value".into()))
            })?)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Arc::new(decode_fields::<_, StringArray>(&values, |row, b| {
                String::from_utf8(b.to_vec())
                    .map_err(|_| (row, "invalid UTF-8 in a text value".into()))
            })?)
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            Arc::new(decode_fields::<_, BinaryArray>(&values, |_, b| {
                Ok(b.to_vec())
            })?)
        }
        DataType::Date32 | DataType::Date64 => {
            let days = number(&[4], i64::from(PG_EPOCH_DAYS));
            Arc::new(decode_fields::<_, Date32Array>(&values, |row, b| {
                days(row, b).map(|d| d as i32)
            })?)
        }
        DataType::Time64(_) | DataType::Time32(_) => Arc::new(decode_fields::<
            _,
            Time64MicrosecondArray,
        >(&values, number(&[8], 0))?),
        DataType::Timestamp(_, zone) => {
            let micros: ArrayRef = Arc::new(
                decode_fields::<_, TimestampMicrosecondArray>(
                    &values,
                    number(&[8], PG_EPOCH_MICROS),
                )?
                .with_timezone_opt(zone.clone()),
            );
            micros
        }
        other => {
            return Err((
                0,
                format!("COPY FORMAT binary cannot load a column of type {other}; use FORMAT csv"),
            ));
        }
    };
    // The decoders give the widest type of each kind; the column may be narrower.
    cast_checked(array, target)
}

fn cast_checked(array: ArrayRef, target: &DataType) -> Result<ArrayRef, (usize, String)> {
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    cast_with_options(&array, target, &strict).map_err(|e| (0, e.to_string()))
}

/// PostgreSQL's binary `numeric` (base-10000 digits) as decimal text.
fn numeric_text(b: &[u8]) -> Option<String> {
    if b.len() < 8 {
        return None;
    }
    let word = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let (ndigits, weight, sign, dscale) = (word(0), word(2), word(4) as u16, word(6));
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    if b.len() < 8 + 2 * ndigits.max(0) as usize {
        return None;
    }
    let digits: Vec<i16> = (0..ndigits as usize).map(|i| word(8 + 2 * i)).collect();
    let mut int_part = String::new();
    for position in 0..=weight.max(-1) {
        let d = digits.get(position as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part.push_str(&d.to_string());
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut fraction = String::new();
    let mut position = weight as i32 + 1;
    while (fraction.len() as i32) < i32::from(dscale) {
        let d = if position < 0 {
            0
        } else {
            digits.get(position as usize).copied().unwrap_or(0)
        };
        fraction.push_str(&format!("{d:04}"));
        position += 1;
    }
    fraction.truncate(dscale.max(0) as usize);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if fraction.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{fraction}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn decode(format: CopyFormat, chunks: &[&[u8]]) -> Result<String, String> {
        let mut decoder = Decoder::new(format, schema());
        let mut batches = vec![];
        for chunk in chunks {
            batches.extend(decoder.push(chunk)?);
        }
        batches.extend(decoder.finish()?);
        Ok(pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string())
    }

    #[test]
    fn text_rows_split_across_chunks() -> Result<(), String> {
        let out = decode(
            CopyFormat::text(),
            &[b"1\ta\\tb\n2\t\\", b"N\n3\tc\n\\.\nignored"],
        )?;
        assert!(out.contains("a\tb") && out.contains("| 3  | c"), "{out}");
        assert_eq!(out.matches('\n').count(), 6, "{out}");
        Ok(())
    }

    #[test]
    fn csv_quotes_nulls_and_header() -> Result<(), String> {
        let format = CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: String::new(),
            header: true,
        };
        let out = decode(format, &[b"id,name\n1,\"x,\n\"\"y\"\"\"\n2,\n3,\"\"\n"])?;
        assert!(out.contains("x,"), "{out}");
        Ok(())
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = decode(CopyFormat::csv(), &[b"1,a\nzz,b\n"]).unwrap_err();
        assert!(e.contains("line 2, column id") && e.contains("zz"), "{e}");
        let e = decode(CopyFormat::csv(), &[b"1,a\n2\n"]).unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("missing data for column \"name\""),
            "{e}"
        );
    }

    #[test]
    fn binary_numeric_to_text() {
        // 12345.678: ndigits 3, weight 1, positive, dscale 3; digits 1, 2345, 6780.
        let b = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C];
        assert_eq!(numeric_text(&b).as_deref(), Some("12345.678"));
        // -0.05: ndigits 1, weight -1, negative, dscale 2; digit 500.
        let b = [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 2, 0x01, 0xF4];
        assert_eq!(numeric_text(&b).as_deref(), Some("-0.05"));
    }
}
