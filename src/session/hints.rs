//! Advice added to errors: the near name of a mistyped table, what to raise when memory runs out.

use datafusion::catalog::SchemaProvider;

use super::Session;
use crate::config::format_size;
use crate::error::{AugurError, ErrorClass};

pub fn explain(session: &Session, e: AugurError) -> AugurError {
    if matches!(e, AugurError::Hinted { .. }) {
        return e;
    }
    let text = e.to_string();
    let hint = match e.class() {
        ErrorClass::UndefinedTable => missing_table_hint(session, &text),
        ErrorClass::DiskFull => Some(
            "the disk is full: free space (or move the database directory) and retry; \
             nothing was committed, stored data is unchanged"
                .into(),
        ),
        ErrorClass::OutOfMemory => Some(format!(
            "the memory limit is {}; start augur with a larger --memory-limit, or reduce what \
             the query keeps in memory (fewer columns, a more selective filter)",
            format_size(session.db.memory_limit())
        )),
        _ if text.contains("Error while parsing value") || text.contains("Error parsing") => Some(
            "a value in the file does not match the column's type: fix the value, or declare \
             the column as VARCHAR and convert it with TRY_CAST"
                .into(),
        ),
        _ => super::functions::signature_hint(session, &text),
    };
    match hint {
        Some(hint) => AugurError::Hinted {
            source: Box::new(e),
            hint,
        },
        None => e,
    }
}

fn missing_table_hint(session: &Session, text: &str) -> Option<String> {
    let start = text.find("table '")? + 7;
    let end = start + text[start..].find('\'')?;
    let full = &text[start..end];
    let unqualified = full.strip_prefix("augur.public.").unwrap_or(full);
    let name = unqualified.rsplit('.').next().unwrap_or(unqualified);
    if unqualified.contains('/') || unqualified.contains('.') {
        return Some(format!(
            "no readable file matches '{unqualified}' (relative paths start at {}); check the path",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ));
    }
    let names = session.db.schema().table_names();
    let best = names
        .iter()
        .map(|n| (levenshtein(&n.to_lowercase(), &name.to_lowercase()), n))
        .min()?;
    if best.0 <= (name.len() / 3).max(2) {
        Some(format!("did you mean '{}'?", best.1))
    } else if names.is_empty() {
        Some("the database has no tables yet; SHOW TABLES lists them".into())
    } else {
        Some(format!("existing tables: {}", names.join(", ")))
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
