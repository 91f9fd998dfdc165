//! Our machine-learning statements, recognised by their first keywords before DataFusion's
//! parser sees anything: TRAIN MODEL, CREATE [OR REPLACE] MODEL, SHOW MODELS,
//! DESCRIBE MODEL, DROP MODEL, IMPORT MODEL, EXPORT MODEL (and EXPLAIN [ANALYZE] of the
//! training ones).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::ml::options::OptionValue;

#[derive(Debug, Clone, PartialEq)]
pub enum MlStatement {
    Train {
        name: String,
        model_type: Option<String>,
        label: Option<String>,
        options: Vec<(String, OptionValue)>,
        /// The training query's text (everything after AS).
        query: String,
        /// `Some(analyze)` under EXPLAIN [ANALYZE].
        explain: Option<bool>,
    },
    ShowModels,
    DescribeModel(String),
    DropModel {
        name: String,
        if_exists: bool,
    },
    /// `IMPORT MODEL name FROM 'location' [OPTIONS (format = 'lightgbm', …)]`.
    ImportModel {
        name: String,
        location: String,
        options: Vec<(String, OptionValue)>,
    },
    /// `EXPORT MODEL name[@version] TO 'location' [OPTIONS (format = 'lightgbm', …)]`.
    ExportModel {
        name: String,
        location: String,
        options: Vec<(String, OptionValue)>,
    },
    /// `CALIBRATE MODEL name[@version] USING isotonic|platt AS query`.
    Calibrate {
        name: String,
        method: String,
        query: String,
    },
    /// `ALTER MODEL name SET ALIAS alias = N | (query)` or `… DROP ALIAS alias` (None).
    SetAlias {
        name: String,
        alias: String,
        version: Option<AliasTarget>,
    },
}

/// The version an alias is set to: a number, or a query that returns one (so that a script
/// can promote whichever model `compare_models` prefers).
#[derive(Debug, Clone, PartialEq)]
pub enum AliasTarget {
    Version(u32),
    Query(String),
}

struct Cursor<'a> {
    sql: &'a str,
    tokens: Vec<TokenWithSpan>,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.token)
    }

    fn word(&self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if self.word().as_deref() == Some(kw) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kw: &str, usage: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw} {}; usage: {usage}", self.found()))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("but found '{t}'"),
            None => "but the statement ended".into(),
        }
    }

    fn ident(&mut self, what: &str, usage: &str) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(w.value)
            }
            Some(Token::SingleQuotedString(s)) => {
                self.at += 1;
                Ok(s)
            }
            _ => Err(format!("expected {what} {}; usage: {usage}", self.found())),
        }
    }

    /// A model name, optionally with a version: `risk` or `risk@2`.
    fn model_ref(&mut self, usage: &str) -> Result<String, String> {
        let name = self.ident("a model name", usage)?;
        if matches!(self.peek(), Some(Token::AtSign)) {
            self.at += 1;
            if let Some(Token::Number(n, _)) = self.peek().cloned() {
                self.at += 1;
                return Ok(format!("{name}@{n}"));
            }
            return Err(format!("expected a version number after '{name}@'"));
        }
        Ok(name)
    }

    fn punct(&mut self, t: Token) -> bool {
        if self.peek() == Some(&t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `( name = value, … )`; `=` is optional (BigQuery writes `name = value`, some write `name value`).
    fn options(&mut self, usage: &str) -> Result<Vec<(String, OptionValue)>, String> {
        if !self.punct(Token::LParen) {
            return Err(format!("expected '(' {}; usage: {usage}", self.found()));
        }
        let mut out = vec![];
        if self.punct(Token::RParen) {
            return Ok(out);
        }
        loop {
            let name = self.ident("an option name", usage)?;
            self.punct(Token::Eq);
            let negative = self.punct(Token::Minus);
            let value = match self.peek().cloned() {
                Some(Token::Number(n, _)) => {
                    OptionValue::Number(if negative { format!("-{n}") } else { n })
                }
                Some(Token::SingleQuotedString(s)) if !negative => OptionValue::Text(s),
                Some(Token::Word(w)) if !negative && w.value.eq_ignore_ascii_case("true") => {
                    OptionValue::Bool(true)
                }
                Some(Token::Word(w)) if !negative && w.value.eq_ignore_ascii_case("false") => {
                    OptionValue::Bool(false)
                }
                Some(Token::Word(w)) if !negative => OptionValue::Text(w.value),
                _ => {
                    return Err(format!(
                        "option {name} needs a value (a number, 'text', true or false) {}",
                        self.found()
                    ));
                }
            };
            self.at += 1;
            out.push((name, value));
            if self.punct(Token::RParen) {
                return Ok(out);
            }
            if !self.punct(Token::Comma) {
                return Err(format!(
                    "expected ',' or ')' in the option list {}; usage: {usage}",
                    self.found()
                ));
            }
        }
    }

    /// Byte offset in the text where the current token starts.
    fn offset(&self) -> usize {
        let Some(t) = self.tokens.get(self.at) else {
            return self.sql.len();
        };
        let (line, column) = (t.span.start.line as usize, t.span.start.column as usize);
        let mut offset = 0;
        for (i, l) in self.sql.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                return offset
                    + l.char_indices()
                        .nth(column.saturating_sub(1))
                        .map(|(b, _)| b)
                        .unwrap_or(l.len());
            }
            offset += l.len();
        }
        self.sql.len()
    }
}

const TRAIN_USAGE: &str = "TRAIN MODEL name USING logistic_regression|linear_regression PREDICT label \
                           [WITH (option = value, …)] AS SELECT …";
const CREATE_USAGE: &str = "CREATE [OR REPLACE] MODEL name OPTIONS (model_type = 'logistic_regression', \
                            label = 'column', …) AS SELECT …";

/// Recognise one of our statements; `Ok(None)` hands the text to DataFusion.
impl MlStatement {
    /// Training and dropping change the stored models; listing and describing do not.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            MlStatement::Train {
                explain: None | Some(true),
                ..
            } | MlStatement::DropModel { .. }
                | MlStatement::SetAlias { .. }
                | MlStatement::Calibrate { .. }
                | MlStatement::ImportModel { .. }
                | MlStatement::ExportModel { .. }
        )
    }
}

impl MlStatement {
    /// The model a writing statement changes (its name without a version); EXPORT writes
    /// a file, not the catalog.
    pub fn written_model(&self) -> Option<&str> {
        match self {
            MlStatement::Train {
                name,
                explain: None | Some(true),
                ..
            }
            | MlStatement::DropModel { name, .. }
            | MlStatement::SetAlias { name, .. }
            | MlStatement::Calibrate { name, .. }
            | MlStatement::ImportModel { name, .. } => Some(
                name.split_once('@')
                    .map_or(name.as_str(), |(n, _)| n.trim()),
            ),
            _ => None,
        }
    }
}

pub fn parse(sql: &str) -> Result<Option<MlStatement>, String> {
    let head: String = sql
        .chars()
        .take(200)
        .collect::<String>()
        .to_ascii_uppercase();
    if !["MODEL", "TRAIN", "CALIBRATE"]
        .iter()
        .any(|k| head.contains(k))
    {
        return Ok(None);
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return Ok(None);
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| {
            !matches!(
                t.token,
                Token::Whitespace(
                    Whitespace::Space
                        | Whitespace::Newline
                        | Whitespace::Tab
                        | Whitespace::SingleLineComment { .. }
                        | Whitespace::MultiLineComment(_)
                )
            )
        })
        .collect();
    let mut c = Cursor { sql, tokens, at: 0 };
    let explain = if c.keyword("EXPLAIN") {
        Some(c.keyword("ANALYZE"))
    } else {
        None
    };
    let start = c.at;
    if c.keyword("TRAIN") {
        if !c.keyword("MODEL") {
            return Err(format!("expected MODEL after TRAIN; usage: {TRAIN_USAGE}"));
        }
        let name = c.ident("a model name", TRAIN_USAGE)?;
        c.expect("USING", TRAIN_USAGE)?;
        let model_type = c.ident("a model type", TRAIN_USAGE)?;
        let label = if c.keyword("PREDICT") {
            Some(c.ident("the label column", TRAIN_USAGE)?)
        } else {
            None
        };
        let options = if c.keyword("WITH") {
            c.options(TRAIN_USAGE)?
        } else {
            vec![]
        };
        c.expect("AS", TRAIN_USAGE)?;
        let query = sql[c.offset()..].trim().to_string();
        return Ok(Some(MlStatement::Train {
            name,
            model_type: Some(model_type),
            label,
            options,
            query,
            explain,
        }));
    }
    if c.keyword("CREATE") {
        let or_replace = c.keyword("OR") && c.keyword("REPLACE");
        if !c.keyword("MODEL") {
            return Ok(None);
        }
        let _ = or_replace; // every training adds a version; OR REPLACE is accepted for BigQuery scripts
        let name = c.ident("a model name", CREATE_USAGE)?;
        let mut options = if c.keyword("OPTIONS") {
            c.options(CREATE_USAGE)?
        } else {
            vec![]
        };
        c.expect("AS", CREATE_USAGE)?;
        let query = sql[c.offset()..].trim().to_string();
        let take = |options: &mut Vec<(String, OptionValue)>, key: &str| -> Option<String> {
            let i = options
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
            match options.remove(i).1 {
                OptionValue::Text(t) => Some(t),
                other => Some(other.to_string()),
            }
        };
        let model_type = take(&mut options, "model_type");
        let label = take(&mut options, "label").or_else(|| take(&mut options, "input_label_cols"));
        return Ok(Some(MlStatement::Train {
            name,
            model_type,
            label,
            options,
            query,
            explain,
        }));
    }
    if explain.is_some() {
        c.at = start;
        return Ok(None);
    }
    if c.keyword("SHOW") {
        return Ok(c.keyword("MODELS").then_some(MlStatement::ShowModels));
    }
    if c.keyword("DESCRIBE") || c.keyword("DESC") {
        if !c.keyword("MODEL") {
            return Ok(None);
        }
        return Ok(Some(MlStatement::DescribeModel(
            c.model_ref("DESCRIBE MODEL name[@version]")?,
        )));
    }
    for (verb, preposition) in [("IMPORT", "FROM"), ("EXPORT", "TO")] {
        if c.keyword(verb) {
            let usage = format!(
                "{verb} MODEL name {preposition} 'path or s3://…' [OPTIONS (format = 'lightgbm')]"
            );
            if !c.keyword("MODEL") {
                return Err(format!("expected MODEL after {verb}; usage: {usage}"));
            }
            let name = if verb == "EXPORT" {
                c.model_ref(&usage)?
            } else {
                c.ident("a model name", &usage)?
            };
            c.expect(preposition, &usage)?;
            let location = match c.peek().cloned() {
                Some(Token::SingleQuotedString(s)) => {
                    c.at += 1;
                    s
                }
                _ => {
                    return Err(format!(
                        "expected a quoted path {}; usage: {usage}",
                        c.found()
                    ));
                }
            };
            let options = if c.keyword("OPTIONS") || c.keyword("WITH") {
                c.options(&usage)?
            } else {
                vec![]
            };
            if c.peek().is_some_and(|t| *t != Token::SemiColon) {
                return Err(format!(
                    "unexpected '{}' after the statement; usage: {usage}",
                    c.peek().map(|t| t.to_string()).unwrap_or_default()
                ));
            }
            return Ok(Some(if verb == "IMPORT" {
                MlStatement::ImportModel {
                    name,
                    location,
                    options,
                }
            } else {
                MlStatement::ExportModel {
                    name,
                    location,
                    options,
                }
            }));
        }
    }
    if c.keyword("CALIBRATE") {
        const USAGE: &str = "CALIBRATE MODEL name[@version] USING isotonic|platt AS SELECT …";
        c.expect("MODEL", USAGE)?;
        let name = c.model_ref(USAGE)?;
        c.expect("USING", USAGE)?;
        let method = c.ident("a calibration method (isotonic or platt)", USAGE)?;
        c.expect("AS", USAGE)?;
        let query = sql[c.offset()..].trim().to_string();
        return Ok(Some(MlStatement::Calibrate {
            name,
            method,
            query,
        }));
    }
    if c.keyword("ALTER") {
        if !c.keyword("MODEL") {
            return Ok(None);
        }
        const USAGE: &str =
            "ALTER MODEL name SET ALIAS alias = version | ALTER MODEL name DROP ALIAS alias";
        let name = c.ident("a model name", USAGE)?;
        let set = if c.keyword("SET") {
            true
        } else if c.keyword("DROP") {
            false
        } else {
            return Err(format!(
                "expected SET or DROP {}; usage: {USAGE}",
                c.found()
            ));
        };
        c.expect("ALIAS", USAGE)?;
        let alias = c.ident("an alias name", USAGE)?;
        let version = if set {
            c.punct(Token::Eq);
            match c.peek().cloned() {
                Some(Token::Number(n, _)) => {
                    c.at += 1;
                    Some(AliasTarget::Version(n.parse::<u32>().map_err(|_| {
                        format!("'{n}' is not a model version; usage: {USAGE}")
                    })?))
                }
                Some(Token::LParen) => {
                    let text = sql[c.offset()..].trim().trim_end_matches(';').trim();
                    return Ok(Some(MlStatement::SetAlias {
                        name,
                        alias,
                        version: Some(AliasTarget::Query(text.to_string())),
                    }));
                }
                _ => {
                    return Err(format!(
                        "expected a version number {}; usage: {USAGE}",
                        c.found()
                    ));
                }
            }
        } else {
            None
        };
        if c.peek().is_some_and(|t| *t != Token::SemiColon) {
            return Err(format!(
                "unexpected '{}' after the statement; usage: {USAGE}",
                c.peek().map(|t| t.to_string()).unwrap_or_default()
            ));
        }
        return Ok(Some(MlStatement::SetAlias {
            name,
            alias,
            version,
        }));
    }
    if c.keyword("DROP") {
        if !c.keyword("MODEL") {
            return Ok(None);
        }
        let if_exists = c.keyword("IF") && c.keyword("EXISTS");
        return Ok(Some(MlStatement::DropModel {
            name: c.model_ref("DROP MODEL [IF EXISTS] name[@version]")?,
            if_exists,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_statement() {
        let s = parse("-- fit\nTRAIN MODEL risk USING logistic_regression PREDICT risk_score\n  WITH (reg_param = 0.01, fit_intercept = false, handle_nulls = 'impute')\nAS SELECT a, b FROM t").unwrap().unwrap();
        assert_eq!(
            s,
            MlStatement::Train {
                name: "risk".into(),
                model_type: Some("logistic_regression".into()),
                label: Some("risk_score".into()),
                options: vec![
                    ("reg_param".into(), OptionValue::Number("0.01".into())),
                    ("fit_intercept".into(), OptionValue::Bool(false)),
                    ("handle_nulls".into(), OptionValue::Text("impute".into())),
                ],
                query: "SELECT a, b FROM t".into(),
                explain: None,
            }
        );
    }

    #[test]
    fn bigquery_spelling_and_the_rest() {
        let s = parse("CREATE OR REPLACE MODEL m OPTIONS (model_type = 'linear_regression', label = 'y', max_iter = 5) AS SELECT * FROM t").unwrap().unwrap();
        let MlStatement::Train {
            model_type,
            label,
            options,
            ..
        } = s
        else {
            panic!("not a train")
        };
        assert_eq!(
            (model_type.as_deref(), label.as_deref(), options.len()),
            (Some("linear_regression"), Some("y"), 1)
        );
        assert_eq!(parse("show models").unwrap(), Some(MlStatement::ShowModels));
        assert_eq!(
            parse("DESCRIBE MODEL risk@2").unwrap(),
            Some(MlStatement::DescribeModel("risk@2".into()))
        );
        assert_eq!(
            parse("DROP MODEL IF EXISTS risk").unwrap(),
            Some(MlStatement::DropModel {
                name: "risk".into(),
                if_exists: true
            })
        );
        assert!(matches!(parse("EXPLAIN ANALYZE TRAIN MODEL x USING linear_regression PREDICT y AS SELECT 1 AS y, 2 AS z").unwrap(), Some(MlStatement::Train { explain: Some(true), .. })));
        assert_eq!(parse("SELECT model FROM t").unwrap(), None);
        assert_eq!(
            parse("ALTER MODEL risk SET ALIAS champion = 3;").unwrap(),
            Some(MlStatement::SetAlias {
                name: "risk".into(),
                alias: "champion".into(),
                version: Some(AliasTarget::Version(3))
            })
        );
        assert_eq!(
            parse("alter model risk drop alias champion").unwrap(),
            Some(MlStatement::SetAlias {
                name: "risk".into(),
                alias: "champion".into(),
                version: None
            })
        );
        assert_eq!(
            parse("ALTER MODEL risk SET ALIAS champion = (SELECT 2);").unwrap(),
            Some(MlStatement::SetAlias {
                name: "risk".into(),
                alias: "champion".into(),
                version: Some(AliasTarget::Query("(SELECT 2)".into()))
            })
        );
        assert!(
            parse("ALTER MODEL risk SET ALIAS champion = x")
                .unwrap_err()
                .contains("expected a version number")
        );
        assert_eq!(parse("ALTER TABLE model ADD COLUMN x INT").unwrap(), None);
        assert_eq!(parse("CREATE TABLE model (x INT)").unwrap(), None);
        assert_eq!(
            parse("IMPORT MODEL gbm FROM 'm.txt' OPTIONS (format = 'lightgbm')").unwrap(),
            Some(MlStatement::ImportModel {
                name: "gbm".into(),
                location: "m.txt".into(),
                options: vec![("format".into(), OptionValue::Text("lightgbm".into()))],
            })
        );
        assert_eq!(
            parse("EXPORT MODEL gbm@2 TO 's3://b/m.txt'").unwrap(),
            Some(MlStatement::ExportModel {
                name: "gbm@2".into(),
                location: "s3://b/m.txt".into(),
                options: vec![],
            })
        );
        assert!(
            parse("IMPORT MODEL x FROM m.txt")
                .unwrap_err()
                .contains("quoted path")
        );
        assert!(
            parse("TRAIN MODEL x USING logistic_regression PREDICT y WITH (reg_param) AS SELECT 1")
                .unwrap_err()
                .contains("reg_param needs a value")
        );
    }
}
