//! `aws.*` options of `CREATE EXTERNAL TABLE` and `COPY … TO`: taken out of the statement
//! before DataFusion plans it (its listing factory rejects unknown namespaces), used to set up
//! that bucket's store, and kept out of everything stored or shown when they are credentials.

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Value;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::Session;
use crate::error::{AugurError, Result};
use crate::storage::object_stores::SECRET_OPTIONS;

/// Apply the statement's `aws.*` options and remove them. For `CREATE EXTERNAL TABLE`,
/// returns the definition to store: the whole statement without its credentials.
pub fn prepare(session: &Session, statement: &mut DFStatement) -> Result<Option<String>> {
    match statement {
        DFStatement::CreateExternalTable(create) => {
            let taken = take(&mut create.options);
            for location in create.locations.iter().filter(|_| !taken.is_empty()) {
                configure(session, location, &taken)?;
            }
            let mut stored = create.clone();
            stored.options.extend(
                taken
                    .into_iter()
                    .filter(|(key, _)| {
                        !SECRET_OPTIONS.contains(&key.as_str()) && key != "persist_credentials"
                    })
                    .map(|(key, value)| (format!("aws.{key}"), Value::SingleQuotedString(value))),
            );
            Ok(Some(super::external_table::definition(&stored)))
        }
        DFStatement::CopyTo(copy) => {
            let taken = take(&mut copy.options);
            if !taken.is_empty() {
                configure(session, &copy.target, &taken)?;
            }
            Ok(None)
        }
        DFStatement::Explain(explain) => {
            prepare(session, &mut explain.statement)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn configure(session: &Session, location: &str, options: &[(String, String)]) -> Result<()> {
    session
        .db
        .object_stores()
        .configure(location, options)
        .map_err(AugurError::Usage)
}

/// Remove the `aws.*` pairs, returning them with the prefix dropped and keys lowercased.
fn take(options: &mut Vec<(String, Value)>) -> Vec<(String, String)> {
    let mut taken = vec![];
    options.retain(|(key, value)| {
        let lower = key.to_ascii_lowercase();
        match lower.strip_prefix("aws.") {
            Some(name) => {
                let text = match value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                taken.push((name.to_string(), text));
                false
            }
            None => true,
        }
    });
    taken
}

/// Credential values written in `sql` (the string after `'aws.secret_access_key'` and the
/// like), found by tokens so they can be redacted even from a statement that fails to parse.
pub fn secret_values(sql: &str) -> Vec<String> {
    let lower = sql.to_ascii_lowercase();
    if !SECRET_OPTIONS
        .iter()
        .any(|k| lower.contains(&format!("aws.{k}")))
    {
        return vec![];
    }
    let tokens = match Tokenizer::new(&GenericDialect {}, sql).tokenize() {
        Ok(tokens) => tokens,
        // Unterminated quotes: fall back to every quoted word, which over-redacts safely.
        Err(_) => {
            return sql
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect();
        }
    };
    let mut out = vec![];
    let mut after_key = false;
    for token in tokens {
        match token {
            Token::Whitespace(_) | Token::Eq => continue,
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                if after_key {
                    out.push(s);
                    after_key = false;
                } else {
                    let l = s.to_ascii_lowercase();
                    after_key = SECRET_OPTIONS.iter().any(|k| l == format!("aws.{k}"));
                }
            }
            _ => after_key = false,
        }
    }
    out
}

/// `sql` with credential values replaced by `***`, for history files.
pub fn redact_sql(sql: &str) -> String {
    let mut out = sql.to_string();
    for secret in secret_values(sql) {
        if !secret.is_empty() {
            out = out.replace(&secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_after_their_keys_only() {
        let sql = "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 's3://b/x.csv' OPTIONS \
                   ('aws.region' 'eu-west-1', 'AWS.SECRET_ACCESS_KEY' 'sekrit/+1', \
                   'aws.access_key_id' 'AKID', 'format.has_header' 'true')";
        assert_eq!(secret_values(sql), vec!["sekrit/+1", "AKID"]);
        let redacted = redact_sql(sql);
        assert!(!redacted.contains("sekrit") && !redacted.contains("AKID"));
        assert!(redacted.contains("eu-west-1"));
        assert!(secret_values("SELECT 'aws.region', 'x'").is_empty());
    }

    #[test]
    fn a_statement_that_does_not_tokenize_is_still_redacted() {
        let sql = "COPY t TO 's3://b/' OPTIONS ('aws.secret_access_key' 'abc123";
        assert!(!redact_sql(sql).contains("abc123"));
    }
}
