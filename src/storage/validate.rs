//! Checks of local CSV and Parquet files before DataFusion reads them, so bad files give a
//! clear error naming file, line and column instead of a short result or a panic.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The CSV dialect needed to follow quoting and count fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
    pub has_header: bool,
    /// Rows with fewer fields are accepted (missing fields become NULL).
    pub truncated_rows: bool,
    /// The number of fields every row must have, when the table declares its columns.
    pub expected_fields: Option<usize>,
}

impl Default for CsvDialect {
    /// RFC 4180 with a header line: DataFusion's defaults.
    fn default() -> Self {
        CsvDialect {
            delimiter: b',',
            quote: b'"',
            escape: None,
            comment: None,
            has_header: true,
            truncated_rows: false,
            expected_fields: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Check {
    Csv(CsvDialect),
    Parquet,
}

type CacheKey = (PathBuf, Check);
/// File size and modification time when the check passed.
type Stamp = (u64, Option<SystemTime>);

/// Files already checked, by size and modification time: re-querying a file costs nothing.
fn cache() -> &'static Mutex<HashMap<CacheKey, Stamp>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Stamp>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn checked(
    path: &Path,
    check: Check,
    run: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    let stamp = (meta.len(), meta.modified().ok());
    let key = (path.to_path_buf(), check);
    if cache()
        .lock()
        .map(|c| c.get(&key) == Some(&stamp))
        .unwrap_or(false)
    {
        return Ok(());
    }
    run(path)?;
    if let Ok(mut c) = cache().lock() {
        c.insert(key, stamp);
    }
    Ok(())
}

pub fn check_parquet(path: &Path) -> Result<(), String> {
    checked(path, Check::Parquet, parquet_footer)
}

pub fn check_csv(path: &Path, dialect: &CsvDialect) -> Result<(), String> {
    checked(path, Check::Csv(dialect.clone()), |p| {
        csv_structure(p, dialect)
    })
}

/// A Parquet file ends with its metadata length and `PAR1`; an absurd length makes the
/// parquet crate allocate or slice out of bounds, so we check it first.
fn parquet_footer(path: &Path) -> Result<(), String> {
    let name = path.display();
    let mut f = File::open(path).map_err(|e| format!("cannot open '{name}': {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot read '{name}': {e}"))?
        .len();
    if len == 0 {
        return Err(format!(
            "'{name}' is empty (0 bytes), not a Parquet file: rewrite it or remove it"
        ));
    }
    if len < 12 {
        return Err(format!(
            "'{name}' is not a Parquet file: {len} bytes is too short (truncated?); rewrite it"
        ));
    }
    let mut head = [0u8; 4];
    f.read_exact(&mut head)
        .map_err(|e| format!("cannot read '{name}': {e}"))?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| format!("cannot read '{name}': {e}"))?;
    if &head != b"PAR1" {
        return Err(format!(
            "'{name}' is not a Parquet file (it does not start with PAR1)"
        ));
    }
    if &tail[4..] != b"PAR1" && &tail[4..] != b"PARE" {
        return Err(format!(
            "'{name}' is truncated or corrupt: no Parquet footer (PAR1) at its end; \
             re-copy or rewrite the file"
        ));
    }
    let meta_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if meta_len + 12 > len {
        return Err(format!(
            "'{name}' is corrupt: its Parquet footer claims {meta_len} bytes of metadata \
             but the file has {len} bytes; re-copy or rewrite the file"
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    Escaped,
    QuoteInQuoted,
}

/// One pass over the file following CSV quoting: every record must have the same number of
/// fields, and no quoted field may run to the end of the file.
fn csv_structure(path: &Path, d: &CsvDialect) -> Result<(), String> {
    let name = path.display();
    let mut f = File::open(path).map_err(|e| format!("cannot open '{name}': {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut state = State::FieldStart;
    let mut line: u64 = 1; // line of the current byte
    let mut record_line: u64 = 1; // line where the current record started
    let mut fields = 1usize; // fields seen so far in the current record
    let mut record_bytes = 0u64; // bytes in the current record (0: blank line)
    let mut quote_open = (0u64, 0usize); // (line, field) of the last opening quote
    let mut records = Records {
        dialect: d,
        name: &name,
        expected: d.expected_fields,
        first: true,
    };
    let mut header: Vec<u8> = vec![];
    let mut in_comment = false;

    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read '{name}': {e}"))?;
        if n == 0 {
            break;
        }
        let mut i = 0;
        while i < n {
            // A whole line in the buffer at the start of a record past the header, whose
            // quoted fields (if any) close on it, is counted with vectorised scans instead of
            // byte by byte (`line_fields`). The byte-by-byte loop below gives the same answer
            // for it, at about a tenth of the speed (`perf`: this check was a fifth of reading
            // a 535 MB CSV into a table, and 3.2 of the first query's 3.9 s over TPC-H's
            // 766 MB lineitem.csv, whose every line has a quoted comment).
            if !in_comment
                && state == State::FieldStart
                && record_bytes == 0
                && !records.first
                && let Some(end) = memchr::memchr(b'\n', &buf[i..n])
                && let Some(fields) = line_fields(&buf[i..i + end], d)
            {
                if fields > 0 {
                    records.end(fields, record_line, &header)?;
                }
                line += 1;
                record_line = line;
                i += end + 1;
                continue;
            }
            let b = buf[i];
            i += 1;
            if in_comment {
                if b == b'\n' {
                    in_comment = false;
                    line += 1;
                    record_line = line;
                }
                continue;
            }
            if records.first && d.has_header && header.len() < 4096 && b != b'\n' {
                header.push(b);
            }
            match state {
                State::FieldStart | State::Unquoted => {
                    if b == b'\n' {
                        if record_bytes > 0 {
                            records.end(fields, record_line, &header)?;
                        }
                        line += 1;
                        record_line = line;
                        fields = 1;
                        record_bytes = 0;
                        state = State::FieldStart;
                        continue;
                    }
                    if b == b'\r' {
                        continue;
                    }
                    if record_bytes == 0 && Some(b) == d.comment {
                        in_comment = true;
                        continue;
                    }
                    record_bytes += 1;
                    if b == d.delimiter {
                        fields += 1;
                        state = State::FieldStart;
                    } else if state == State::FieldStart && b == d.quote {
                        quote_open = (line, fields);
                        state = State::Quoted;
                    } else {
                        state = State::Unquoted;
                    }
                }
                State::Quoted => {
                    record_bytes += 1;
                    if b == b'\n' {
                        line += 1;
                    } else if Some(b) == d.escape {
                        state = State::Escaped;
                    } else if b == d.quote {
                        state = State::QuoteInQuoted;
                    }
                }
                State::Escaped => {
                    record_bytes += 1;
                    if b == b'\n' {
                        line += 1;
                    }
                    state = State::Quoted;
                }
                State::QuoteInQuoted => {
                    if b == d.quote {
                        record_bytes += 1;
                        state = State::Quoted;
                    } else if b == b'\n' {
                        records.end(fields, record_line, &header)?;
                        line += 1;
                        record_line = line;
                        fields = 1;
                        record_bytes = 0;
                        state = State::FieldStart;
                    } else if b == d.delimiter {
                        record_bytes += 1;
                        fields += 1;
                        state = State::FieldStart;
                    } else if b != b'\r' {
                        record_bytes += 1;
                        state = State::Unquoted;
                    }
                }
            }
        }
    }
    match state {
        State::Quoted | State::Escaped => Err(format!(
            "{name}:{}:{}: unterminated quote: the quoted field that starts here is never closed, \
             so the rest of the file would be read as one value; close the quote, or if {} is \
             literal data choose another quote character (OPTIONS ('format.quote' '...'))",
            quote_open.0, quote_open.1, d.quote as char
        )),
        _ if record_bytes > 0 => records.end(fields, record_line, &header),
        _ => Ok(()),
    }
}

/// The fields of one whole line (without its '\n') as the byte loop would count them, 0 for
/// a blank line, or `None` where that loop must decide: a comment, an escape character or a
/// '\r' within a line with quotes, a quoted field that does not close on the line. A quote
/// opens a quoted field only at the start of a field (elsewhere it is data, as in the loop);
/// the delimiters inside quoted fields are not separators.
fn line_fields(text: &[u8], d: &CsvDialect) -> Option<usize> {
    let first = text.iter().find(|&&b| b != b'\r');
    let Some(first) = first else {
        return Some(0);
    };
    if d.comment == Some(*first) {
        return None;
    }
    let count = |part: &[u8]| part.iter().filter(|&&b| b == d.delimiter).count();
    let mut delimiters = count(text);
    // Most lines have no quote: their count is done (an escape only acts inside quotes).
    let Some(first_quote) = memchr::memchr(d.quote, text) else {
        return Some(1 + delimiters);
    };
    // A '\r' after a closing quote keeps the loop waiting for a doubled quote: its case.
    if d.escape.is_some_and(|e| memchr::memchr(e, text).is_some())
        || memchr::memchr(b'\r', text).is_some_and(|r| r + 1 < text.len())
    {
        return None;
    }
    let mut at = first_quote;
    while let Some(q) = memchr::memchr(d.quote, &text[at..]).map(|q| at + q) {
        at = q + 1;
        if q > 0 && text[q - 1] != d.delimiter {
            continue; // data inside an unquoted field
        }
        // The closing quote: the first one not doubled.
        let mut close = q + 1;
        loop {
            close += memchr::memchr(d.quote, &text[close..])?;
            if text.get(close + 1) == Some(&d.quote) {
                close += 2;
            } else {
                break;
            }
        }
        delimiters -= count(&text[q + 1..close]);
        at = close + 1;
    }
    Some(1 + delimiters)
}

/// Field-count bookkeeping across records: the header (or first row) sets the count.
struct Records<'a> {
    dialect: &'a CsvDialect,
    name: &'a dyn std::fmt::Display,
    expected: Option<usize>,
    first: bool,
}

impl Records<'_> {
    fn end(&mut self, fields: usize, record_line: u64, header: &[u8]) -> Result<(), String> {
        let d = self.dialect;
        if self.first {
            self.first = false;
            if self.expected.is_none() {
                self.expected = Some(fields);
            }
            if d.has_header {
                return Ok(());
            }
        }
        let want = self.expected.unwrap_or(fields);
        if fields == want || (d.truncated_rows && fields < want) {
            return Ok(());
        }
        let columns = if header.is_empty() {
            String::new()
        } else {
            format!(" (header: {})", String::from_utf8_lossy(header).trim_end())
        };
        let fix = if fields < want {
            "add the missing fields, or read with OPTIONS ('format.truncated_rows' 'true') \
             (read_csv(..., 'truncated_rows', true)) to take missing trailing fields as NULL"
        } else {
            "remove the extra fields or quote values that contain the delimiter"
        };
        Err(format!(
            "{}:{record_line}:{}: row has {fields} fields but {want} were expected{columns}; {fix}",
            self.name,
            fields.min(want) + 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dialect() -> CsvDialect {
        CsvDialect::default()
    }

    fn check(text: &str) -> Result<(), String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        csv_structure(f.path(), &dialect())
    }

    #[test]
    fn accepts_quoted_delimiters_newlines_and_doubled_quotes() {
        assert!(check("a,b\n1,\"x,y\"\n2,\"multi\nline\"\n3,\"say \"\"hi\"\"\"\n").is_ok());
        assert!(check("a,b\r\n1,2\r\n\n3,4").is_ok());
    }

    #[test]
    fn ragged_row_names_its_line() {
        let err = check("a,b,c\n1,2,3\n4,5\n").unwrap_err();
        assert!(err.contains(":3:3: row has 2 fields but 3"), "{err}");
    }

    /// Lines the whole-line scan takes (no quote) mixed with lines it leaves to the
    /// byte-by-byte loop (quotes, comments, the header), CRLF and blank lines, across the 1 MiB
    /// buffer boundary: accepted as a whole, and a ragged row named by its line either way.
    #[test]
    fn whole_line_scan_counts_as_the_byte_loop() {
        let mut text = String::from("a,b,c\n");
        let mut rows = 0;
        while text.len() < (1 << 20) + 5000 {
            rows += 1;
            text.push_str(match rows % 9 {
                0 => "1,\"x,y\",3\r\n",
                1 => "\r\n",
                2 => "\"multi\nline\",2,3\n",
                3 => "\"a\"\"b,\",\"\",\"c,,\"\r\n",
                4 => "x\"y,\"z\"w,q\"\n",
                5 => "\"\"\"\",\"a\"b,c\n",
                _ => "10,20,30\n",
            });
        }
        assert!(check(&text).is_ok());
        let lines = text.matches('\n').count() as u64;
        let err = check(&format!("{text}4,5\n7,8,9\n")).unwrap_err();
        assert!(
            err.contains(&format!(":{}:3: row has 2 fields but 3", lines + 1)),
            "{err}"
        );
        let err = check(&format!("{text}\"4\",5,6,7\n")).unwrap_err();
        assert!(
            err.contains(&format!(":{}:4: row has 4 fields but 3", lines + 1)),
            "{err}"
        );
        let mut comments = dialect();
        comments.comment = Some(b'#');
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(format!("{text}# a,comment\n1,2,3\n").as_bytes())
            .unwrap();
        assert!(csv_structure(f.path(), &comments).is_ok());
    }

    /// Random lines of delimiters, quotes, '\r' and data: wherever the vectorised count takes
    /// a line, the byte loop (which reads the header) counts the same fields.
    #[test]
    fn line_fields_agrees_with_the_byte_loop_on_random_lines() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut taken = 0;
        for _ in 0..20_000 {
            let len = 1 + (seed % 12) as usize;
            let line: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [',', '"', 'a', 'b', '\r'][(seed % 5) as usize]
                })
                .collect();
            let Some(fields) = line_fields(line.as_bytes(), &dialect()) else {
                continue;
            };
            if fields == 0 {
                continue;
            }
            taken += 1;
            // As the header the byte loop counts the line; as a row, `line_fields` does.
            assert!(
                check(&format!("{line}\n{line}\n")).is_ok(),
                "{line:?}: {fields}"
            );
        }
        assert!(taken > 5_000, "only {taken} lines taken");
    }

    #[test]
    fn unterminated_quote_names_where_it_opened() {
        let err = check("a,b\n1,2\n3,\"open\n4,5\n6,7\n").unwrap_err();
        assert!(err.contains(":3:2: unterminated quote"), "{err}");
    }
}
