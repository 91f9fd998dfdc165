//! `ANALYZE` in PostgreSQL's form (`ANALYZE [VERBOSE] [t [(a, b)]]`) and Spark's
//! (`ANALYZE TABLE t COMPUTE STATISTICS [FOR COLUMNS a, b | FOR ALL COLUMNS | NOSCAN]`),
//! rewritten as a query of the table function `analyze_table('t', 'a,b')` (`''` for every
//! table).

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

const FORMS: &str = "ANALYZE [table [(column, …)]] or ANALYZE TABLE table COMPUTE STATISTICS [FOR COLUMNS column, …]";

/// `sql` as a query when it is an `ANALYZE` statement, `None` when it is not, and an error
/// naming the forms when it is one but malformed.
pub fn rewrite(sql: &str) -> Result<Option<String>, DataFusionError> {
    if super::first_word(sql) != "ANALYZE" {
        return Ok(None);
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| syntax(format!("ANALYZE: {e}")))?;
    let words: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
        .collect();
    let is = |i: usize, word: &str| matches!(words.get(i), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    let mut i = 1;
    for optional in ["VERBOSE", "TABLE"] {
        if is(i, optional) {
            i += 1;
        }
    }
    if i == words.len() {
        return Ok(Some(query("", &[])));
    }
    // The table: the last part of a possibly qualified name.
    let mut table = None;
    while let Some(Token::Word(w)) = words.get(i) {
        table = Some(super::word_name(w));
        i += 1;
        if matches!(words.get(i), Some(Token::Period)) {
            i += 1;
        } else {
            break;
        }
    }
    let Some(table) = table else {
        return Err(unexpected(&words, i));
    };
    let mut columns = vec![];
    if matches!(words.get(i), Some(Token::LParen)) {
        i = names(&words, i + 1, &mut columns)?;
        if !matches!(words.get(i), Some(Token::RParen)) {
            return Err(unexpected(&words, i));
        }
        i += 1;
    } else if is(i, "COMPUTE") && is(i + 1, "STATISTICS") {
        i += 2;
        if is(i, "NOSCAN") || (is(i, "FOR") && is(i + 1, "ALL") && is(i + 2, "COLUMNS")) {
            i += if is(i, "NOSCAN") { 1 } else { 3 };
        } else if is(i, "FOR") && is(i + 1, "COLUMNS") {
            i = names(&words, i + 2, &mut columns)?;
        }
    }
    if i < words.len() {
        return Err(unexpected(&words, i));
    }
    Ok(Some(query(&table, &columns)))
}

/// Column names separated by commas from `words[i]`; the index after the last.
fn names(words: &[Token], mut i: usize, out: &mut Vec<String>) -> Result<usize, DataFusionError> {
    loop {
        let Some(Token::Word(w)) = words.get(i) else {
            return Err(unexpected(words, i));
        };
        out.push(super::word_name(w));
        i += 1;
        if !matches!(words.get(i), Some(Token::Comma)) {
            return Ok(i);
        }
        i += 1;
    }
}

fn query(table: &str, columns: &[String]) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    format!(
        "SELECT * FROM analyze_table('{}', '{}')",
        quote(table),
        quote(&columns.join(","))
    )
}

fn unexpected(words: &[Token], i: usize) -> DataFusionError {
    match words.get(i) {
        Some(t) => syntax(format!("ANALYZE: unexpected '{t}'; the forms are {FORMS}")),
        None => syntax(format!(
            "ANALYZE: the statement ends early; the forms are {FORMS}"
        )),
    }
}

fn syntax(message: String) -> DataFusionError {
    DataFusionError::SQL(Box::new(ParserError::ParserError(message)), None)
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    fn query(sql: &str) -> String {
        rewrite(sql).expect("parses").expect("is ANALYZE")
    }

    #[test]
    fn postgres_and_spark_forms() {
        assert_eq!(query("ANALYZE"), "SELECT * FROM analyze_table('', '')");
        assert_eq!(
            query("analyze verbose;"),
            "SELECT * FROM analyze_table('', '')"
        );
        assert_eq!(
            query("ANALYZE Orders"),
            "SELECT * FROM analyze_table('orders', '')"
        );
        assert_eq!(
            query("ANALYZE public.\"Orders\" (a, \"B\")"),
            "SELECT * FROM analyze_table('Orders', 'a,B')"
        );
        assert_eq!(
            query("ANALYZE TABLE t COMPUTE STATISTICS FOR COLUMNS x, y"),
            "SELECT * FROM analyze_table('t', 'x,y')"
        );
        assert_eq!(
            query("ANALYZE TABLE t COMPUTE STATISTICS FOR ALL COLUMNS"),
            "SELECT * FROM analyze_table('t', '')"
        );
        assert_eq!(
            query("-- refresh\nANALYZE TABLE t COMPUTE STATISTICS"),
            "SELECT * FROM analyze_table('t', '')"
        );
        assert!(rewrite("SELECT 1").expect("not ANALYZE").is_none());
        assert!(
            rewrite("EXPLAIN ANALYZE SELECT 1")
                .expect("not ANALYZE")
                .is_none()
        );
    }

    #[test]
    fn malformed_forms_name_what_is_wrong() {
        for (sql, wrong) in [
            ("ANALYZE t (a", "ends early"),
            ("ANALYZE t a", "unexpected 'a'"),
            ("ANALYZE t (a,)", "unexpected ')'"),
            (
                "ANALYZE TABLE t COMPUTE STATISTICS FOR ROWS",
                "unexpected 'FOR'",
            ),
        ] {
            let e = rewrite(sql).expect_err(sql).to_string();
            assert!(
                e.contains(wrong) && e.contains("ANALYZE [table"),
                "{sql}: {e}"
            );
        }
    }
}
