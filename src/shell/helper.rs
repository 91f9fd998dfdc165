//! Line editing help for the shell: completion (keywords, tables, columns, file paths in
//! quotes), syntax highlighting, and "keep reading until `;`" validation.

use std::borrow::Cow;

use datafusion::catalog::SchemaProvider;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use crate::parser::{is_complete, is_meta};
use crate::session::Session;

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "CROSS",
    "ON",
    "USING",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION",
    "ALL",
    "EXCEPT",
    "INTERSECT",
    "WITH",
    "CREATE",
    "TABLE",
    "VIEW",
    "EXTERNAL",
    "STORED",
    "LOCATION",
    "OPTIONS",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "IF",
    "EXISTS",
    "REPLACE",
    "COPY",
    "TO",
    "SHOW",
    "TABLES",
    "COLUMNS",
    "DESCRIBE",
    "EXPLAIN",
    "ANALYZE",
    "CAST",
    "TRY_CAST",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "ASC",
    "DESC",
    "TRUE",
    "FALSE",
    "OVER",
    "PARTITION",
    "WINDOW",
    "SET",
    "CSV",
    "PARQUET",
    "JSON",
    "HEADER",
    "INTERVAL",
    "DATE",
    "TIMESTAMP",
    "VARCHAR",
    "INT",
    "BIGINT",
    "DOUBLE",
    "BOOLEAN",
    "DECIMAL",
];

pub struct ShellHelper {
    session: Session,
    files: FilenameCompleter,
    color: bool,
    /// Reading COPY rows: each line is complete as typed.
    rows: bool,
}

impl ShellHelper {
    pub fn new(session: Session, color: bool) -> Self {
        ShellHelper {
            session,
            files: FilenameCompleter::new(),
            color,
            rows: false,
        }
    }

    /// Lines typed from now on are COPY rows (`true`) or statements (`false`).
    pub fn typing_rows(&mut self, rows: bool) {
        self.rows = rows;
    }

    fn names(&self) -> Vec<String> {
        let schema = self.session.database().schema();
        let mut names = schema.table_names();
        for table in schema.table_names() {
            if let Ok(Some(provider)) = futures::executor::block_on(schema.table(&table)) {
                names.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Byte offset of an unclosed single quote before `pos`, if the cursor is inside a string.
fn open_quote(line: &str, pos: usize) -> Option<usize> {
    let mut open = None;
    for (i, c) in line[..pos].char_indices() {
        if c == '\'' {
            open = if open.is_some() { None } else { Some(i) };
        }
    }
    open
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if open_quote(line, pos).is_some() {
            return self.files.complete_path(line, pos);
        }
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '\\'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, vec![]));
        }
        let upper = word.to_uppercase();
        let lower = word.to_lowercase();
        let mut out: Vec<Pair> = vec![];
        if start == 0 && is_meta(word) {
            for name in super::meta::names().filter(|n| n.starts_with(word)) {
                out.push(Pair {
                    display: name.into(),
                    replacement: format!("{name} "),
                });
            }
            return Ok((start, out));
        }
        for name in self
            .names()
            .into_iter()
            .filter(|n| n.to_lowercase().starts_with(&lower))
        {
            out.push(Pair {
                display: name.clone(),
                replacement: name,
            });
        }
        let keyword_case_lower = word.chars().all(|c| !c.is_uppercase());
        for kw in KEYWORDS.iter().filter(|k| k.starts_with(&upper)) {
            let text = if keyword_case_lower {
                kw.to_lowercase()
            } else {
                kw.to_string()
            };
            out.push(Pair {
                display: text.clone(),
                replacement: text,
            });
        }
        Ok((start, out))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || is_meta(line) {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight_sql(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

/// Keywords bold blue, strings green, numbers yellow, comments grey.
pub fn highlight_sql(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1 != '\'' {
                j += 1;
            }
            let end = chars.get(j + 1).map(|x| x.0).unwrap_or(line.len());
            out.push_str(&format!("\x1b[32m{}\x1b[0m", &line[at..end]));
            i = j + 1;
        } else if c == '-' && chars.get(i + 1).map(|x| x.1) == Some('-') {
            out.push_str(&format!("\x1b[90m{}\x1b[0m", &line[at..]));
            break;
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            let end = chars.get(j).map(|x| x.0).unwrap_or(line.len());
            let word = &line[at..end];
            if KEYWORDS.contains(&word.to_uppercase().as_str()) {
                out.push_str(&format!("\x1b[1;34m{word}\x1b[0m"));
            } else {
                out.push_str(word);
            }
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.') {
                j += 1;
            }
            let end = chars.get(j).map(|x| x.0).unwrap_or(line.len());
            out.push_str(&format!("\x1b[33m{}\x1b[0m", &line[at..end]));
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        if self.rows || input.trim().is_empty() || is_meta(input) || is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlighting_keeps_the_text() {
        let line = "select 'a' , 12 from t -- note";
        let plain: String = strip_ansi(&highlight_sql(line));
        assert_eq!(plain, line);
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }
}
