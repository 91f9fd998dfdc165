//! Postgres session variables (`SET statement_timeout`, `SHOW DateStyle`, `RESET ALL`…) and
//! `DISCARD ALL`; transaction statements are in transaction.rs.
//! DataFusion's own settings (`SET datafusion.…`) are not handled here; they reach DataFusion.
//!
//! Handled in the session, not the wire server, so the shell and every client see the same
//! values and `statement_timeout` bounds a query wherever it runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{Expr, Reset, Set, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{AugurError, Result};

use super::models::Planned;

/// Variables a Postgres server reports; `SHOW` answers these without a `SET` first.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_table_access_method", "heap"),
    ("default_transaction_isolation", "read uncommitted"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::config::SERVER_VERSION),
    ("server_version_num", crate::config::SERVER_VERSION_NUM),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read uncommitted"),
    ("transaction_read_only", "off"),
];

/// `current_setting(name)`: the session's value of a variable, as `SHOW` gives it
/// (SQLAlchemy's table reflection reads `default_table_access_method`).
pub(super) fn current_setting(variables: &Variables) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{AsArray, StringBuilder};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    let variables = variables.clone();
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let mut out = StringBuilder::new();
            for name in names.as_string::<i32>().iter() {
                match name.map(|n| (n, variables.get(n))) {
                    Some((_, Some(value))) => out.append_value(value),
                    Some((n, None)) => {
                        return Err(datafusion::error::DataFusionError::Plan(format!(
                            "unrecognized configuration parameter \"{n}\" (SHOW ALL lists them)"
                        )));
                    }
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// Read-only variables: `SET` on them is refused like Postgres does.
const FIXED: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "max_identifier_length",
    "lc_collate",
    "lc_ctype",
];

/// One session's variables, shared by the clones of its `Session`.
#[derive(Debug, Default, Clone)]
pub struct Variables {
    values: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Variables {
    /// The current value, by case-insensitive name (`DateStyle` = `datestyle`).
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let set = self.values.lock().ok()?.get(&name).cloned();
        set.or_else(|| default_of(&name).map(str::to_string))
    }

    /// `statement_timeout` as a duration; `None` when unlimited (0).
    pub fn statement_timeout(&self) -> Option<Duration> {
        let text = self.get("statement_timeout")?;
        parse_duration(&text).ok().filter(|d| !d.is_zero())
    }

    /// An independent copy: `SET`s on it leave these variables alone.
    pub fn snapshot(&self) -> Variables {
        let values = self.values.lock().map(|v| v.clone()).unwrap_or_default();
        Variables {
            values: Arc::new(Mutex::new(values)),
        }
    }

    fn set(&self, name: String, value: String) -> Result<()> {
        if FIXED.contains(&name.as_str()) {
            return Err(AugurError::Usage(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        if name == "statement_timeout" {
            parse_duration(&value)?;
        }
        if let Ok(mut values) = self.values.lock() {
            values.insert(name, value);
        }
        Ok(())
    }

    fn reset(&self, name: Option<&str>) {
        if let Ok(mut values) = self.values.lock() {
            match name {
                Some(name) => {
                    values.remove(name);
                }
                None => values.clear(),
            }
        }
    }
}

fn default_of(name: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// `5000`, `'5000'`, `'5s'`, `'250ms'`, `'2min'`, `'1h'`: Postgres's forms; bare numbers are ms.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        AugurError::Usage(format!(
            "invalid value for parameter \"statement_timeout\": \"{text}\"; use milliseconds \
             (5000) or a number with a unit: '500ms', '5s', '2min', '1h'; 0 turns it off"
        ))
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let millis = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1e3,
        "min" => 60e3,
        "h" => 3600e3,
        "d" => 86400e3,
        _ => return Err(bad()),
    };
    if !number.is_finite() || number < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(number * millis / 1e3))
}

/// What a `SET`/`SHOW`/`RESET`/`DISCARD` statement did, if `sql` is one of ours.
pub enum Outcome {
    /// A variable changed.
    Set,
    /// Rows to return (`SHOW`).
    Rows(Planned),
    /// Accepted and done (`DISCARD ALL`, `RESET`…).
    Done,
}

const FIRST_WORDS: &[&str] = &["SET", "SHOW", "RESET", "DISCARD", "DEALLOCATE"];

/// Whether `sql` starts like a statement about session state (`SET`, `SHOW`, `RESET`…).
pub fn is_session_statement(sql: &str) -> bool {
    FIRST_WORDS.contains(&crate::parser::first_word(sql).as_str())
}

/// Handle `sql` if it is a statement about session state; `None` hands it on to DataFusion.
pub fn handle(variables: &Variables, sql: &str) -> Result<Option<Outcome>> {
    let first = crate::parser::first_word(sql);
    if !FIRST_WORDS.contains(&first.as_str()) {
        return Ok(None);
    }
    // sqlparser has no DEALLOCATE ALL in every form: answer it here.
    if first == "DEALLOCATE" {
        return Ok(Some(Outcome::Done));
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    if statements.len() != 1 {
        return Ok(None);
    }
    Ok(match statements.remove(0) {
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) if variable.0.len() == 1 => {
            let name = variable.to_string().to_ascii_lowercase();
            let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
            if value.eq_ignore_ascii_case("default") {
                variables.reset(Some(&name));
            } else {
                variables.set(name, value)?;
            }
            Some(Outcome::Set)
        }
        Statement::Set(Set::SetTimeZone { value, .. }) => {
            variables.set("timezone".into(), value_text(&value))?;
            Some(Outcome::Set)
        }
        Statement::Set(Set::SetNames { charset_name, .. }) => {
            variables.set("client_encoding".into(), charset_name.value)?;
            Some(Outcome::Set)
        }
        // Other connections see a block's changes as they are made (READ UNCOMMITTED,
        // transaction.rs): any requested level is accepted, as SQLite and DuckDB clients expect.
        Statement::Set(
            Set::SetSessionParam(_) | Set::SetRole { .. } | Set::SetTransaction { .. },
        ) => Some(Outcome::Done),
        Statement::Set(_) => None,
        // SHOW TRANSACTION ISOLATION LEVEL, SHOW TIME ZONE: Postgres's multi-word names.
        Statement::ShowVariable { variable } if variable.len() > 1 => {
            let words: Vec<String> = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            let name = match words.join(" ").as_str() {
                "transaction isolation level" => "transaction_isolation",
                "time zone" => "timezone",
                _ => return Ok(None),
            };
            let value = variables.get(name).unwrap_or_default();
            Some(Outcome::Rows(show(name, value)))
        }
        Statement::ShowVariable { variable } if variable.len() == 1 => {
            let name = variable[0].value.to_ascii_lowercase();
            if name == "all" {
                return Ok(None);
            }
            // Unknown names are DataFusion's (`SHOW datafusion.…`) or our own statements'.
            let Some(value) = variables.get(&name) else {
                return Ok(None);
            };
            Some(Outcome::Rows(show(&variable[0].value, value)))
        }
        Statement::Reset(reset) => {
            match reset.reset {
                Reset::ALL => variables.reset(None),
                Reset::ConfigurationParameter(name) => {
                    variables.reset(Some(&name.to_string().to_ascii_lowercase()))
                }
            }
            Some(Outcome::Done)
        }
        Statement::Discard { .. } => {
            variables.reset(None);
            Some(Outcome::Done)
        }
        _ => None,
    })
}

/// `SHOW augur.<name>` or `RESET augur.<name>`: Augur's own settings, which live in
/// DataFusion's config (where `SET augur.<name>` puts them) but which DataFusion's SHOW and
/// RESET do not know.
pub enum AugurSetting {
    Show(String),
    Reset(String),
}

pub fn augur_setting(sql: &str) -> Option<AugurSetting> {
    if !matches!(crate::parser::first_word(sql).as_str(), "SHOW" | "RESET") {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let (name, show) = match statements.pop()? {
        Statement::Reset(datafusion::sql::sqlparser::ast::ResetStatement {
            reset: Reset::ConfigurationParameter(name),
        }) => (name.to_string(), false),
        Statement::ShowVariable { variable } => (
            variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
            true,
        ),
        _ => return None,
    };
    let name = name.to_ascii_lowercase();
    match (name.starts_with("augur."), show) {
        (false, _) => None,
        (true, true) => Some(AugurSetting::Show(name)),
        (true, false) => Some(AugurSetting::Reset(name)),
    }
}

fn value_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

pub(super) fn show(name: &str, value: String) -> Planned {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    match RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from(vec![value]))],
    ) {
        Ok(batch) => Planned::Rows(vec![batch], schema),
        Err(_) => Planned::Rows(vec![], schema),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_postgres_forms() {
        assert_eq!(parse_duration("5000").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2min").ok(), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_duration("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn set_show_reset() -> Result<()> {
        let vars = Variables::default();
        assert!(matches!(
            handle(&vars, "SET statement_timeout = '2s'")?,
            Some(Outcome::Set)
        ));
        assert_eq!(vars.statement_timeout(), Some(Duration::from_secs(2)));
        handle(&vars, "SET DateStyle TO 'ISO, DMY'")?;
        assert_eq!(vars.get("datestyle").as_deref(), Some("ISO, DMY"));
        assert!(handle(&vars, "SET statement_timeout = 'later'").is_err());
        assert!(handle(&vars, "SET server_version = '1'").is_err());
        handle(&vars, "RESET ALL")?;
        assert_eq!(vars.statement_timeout(), None);
        assert!(handle(&vars, "SET datafusion.execution.batch_size = 10")?.is_none());
        assert!(handle(&vars, "SELECT 1")?.is_none());
        assert!(handle(&vars, "SHOW models")?.is_none());
        assert!(matches!(
            handle(&vars, "-- from a client\nSET extra_float_digits = 3")?,
            Some(Outcome::Set)
        ));
        assert!(matches!(
            handle(&vars, "SHOW TRANSACTION ISOLATION LEVEL")?,
            Some(Outcome::Rows(_))
        ));
        Ok(())
    }
}
