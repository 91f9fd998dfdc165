//! Our side of statement parsing: splitting scripts into statements with their lines, and
//! (as our own statements arrive) recognising them by their first keywords before
//! DataFusion's `DFParser` sees the rest.

pub mod analyze;
pub mod delta_syntax;
pub mod ml;
pub mod split;

pub use split::{SourceStatement, is_complete, is_meta, split_statements};

/// An identifier as SQL means it: quoted as written, unquoted folded to lower case.
pub fn normalize_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// A tokenized identifier as SQL means it (as [`normalize_ident`] for parsed ones).
pub fn word_name(word: &datafusion::sql::sqlparser::tokenizer::Word) -> String {
    match word.quote_style {
        Some(_) => word.value.clone(),
        None => word.value.to_lowercase(),
    }
}

/// The first keyword of `sql`, upper-cased (`""` when it starts with something else).
pub fn first_word(sql: &str) -> String {
    skip_leading_comments(sql)
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// `sql` without the comments and blank space before its first keyword (clients and
/// scripts put `-- …` and `/* … */` in front of statements).
pub fn skip_leading_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .find('\n')
                .map_or("", |i| &after[i + 1..])
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .find("*/")
                .map_or("", |i| &after[i + 2..])
                .trim_start();
        } else {
            return rest;
        }
    }
}

/// Longest statement text accepted: past this, planning time and memory grow without bound
/// for no realistic query (SQLSTATE 54001).
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;
