//! Delta Lake's (Spark's) table syntax that DataFusion's dialect does not parse, put in
//! forms it does: `t VERSION AS OF 3` and `t TIMESTAMP AS OF '…'` become the table
//! function `table_as_of('t', 'version', 3)`; `DESCRIBE HISTORY t`, `OPTIMIZE t [ZORDER BY
//! (a, b)]` and `VACUUM t [RETAIN n HOURS] [DRY RUN]` become queries of `delta_history`,
//! `delta_optimize` and `delta_vacuum`. Text outside those spans is kept as written.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The table an `OPTIMIZE` or `VACUUM` statement changes, if `sql` is one.
pub fn maintained_table(sql: &str) -> Option<String> {
    let words = maintenance_words(sql)?;
    last_name_part(&words.iter().skip(1).collect::<Vec<_>>())
}

/// The tokens of `sql` without blanks and `;` when it is an `OPTIMIZE` or `VACUUM`
/// statement (checked on the first word, so other statements are not tokenized here).
fn maintenance_words(sql: &str) -> Option<Vec<Token>> {
    if !matches!(super::first_word(sql).as_str(), "OPTIMIZE" | "VACUUM") {
        return None;
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
            .collect(),
    )
}

/// The last identifier of a possibly qualified name at the start of `tokens`.
fn last_name_part(tokens: &[&Token]) -> Option<String> {
    let mut name = None;
    let mut i = 0;
    while let Some(Token::Word(w)) = tokens.get(i) {
        name = Some(super::word_name(w));
        if !matches!(tokens.get(i + 1), Some(Token::Period)) {
            break;
        }
        i += 2;
    }
    name
}

/// `sql` rewritten, or `None` when it uses none of these forms.
pub fn rewrite(sql: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    if let Some(maintenance) = maintenance(sql) {
        return Some(maintenance);
    }
    if !upper.contains(" AS OF") && !upper.contains("HISTORY") {
        return None;
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let solid: Vec<(usize, &TokenWithSpan)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    if let Some(history) = describe_history(&solid) {
        return Some(history);
    }
    let offsets = byte_offsets(sql, &tokens);
    let mut out = String::new();
    let mut copied = 0;
    let mut k = 0;
    while k < solid.len() {
        let Some((kind, value_at)) = as_of_at(&solid, k) else {
            k += 1;
            continue;
        };
        // The table name: identifiers joined by periods, ending just before `k`.
        let mut first = k - 1;
        while first >= 2
            && matches!(solid[first - 1].1.token, Token::Period)
            && matches!(solid[first - 2].1.token, Token::Word(_))
        {
            first -= 2;
        }
        let name_start = offsets[solid[first].0];
        let name: String = solid[first..k]
            .iter()
            .filter_map(|(_, t)| match &t.token {
                Token::Word(w) => Some(super::word_name(w)),
                _ => None,
            })
            .next_back()?;
        let last = value_end(&solid, value_at);
        let value_start = offsets[solid[value_at].0];
        let after = offsets.get(solid[last].0 + 1).copied().unwrap_or(sql.len());
        let value_text = sql[value_start..after].trim_end();
        out.push_str(&sql[copied..name_start]);
        out.push_str(&format!(
            "table_as_of('{}', '{kind}', {value_text})",
            name.replace('\'', "''")
        ));
        copied = value_start + value_text.len();
        k = last + 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// `OPTIMIZE t [ZORDER BY (a, b)]` and `VACUUM t [RETAIN n HOURS] [DRY RUN]` as queries.
fn maintenance(sql: &str) -> Option<String> {
    let owned = maintenance_words(sql)?;
    let words: Vec<&Token> = owned.iter().collect();
    let Some(Token::Word(first)) = words.first() else {
        return None;
    };
    let is = |t: Option<&&Token>, word: &str| matches!(t, Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word));
    let optimize = first.value.eq_ignore_ascii_case("OPTIMIZE");
    let name = last_name_part(&words[1..])?.replace('\'', "''");
    // Skip the (possibly qualified) name.
    let mut i = 1;
    while matches!(words.get(i + 1), Some(Token::Period)) {
        i += 2;
    }
    i += 1;
    if optimize {
        let mut columns = vec![];
        if is(words.get(i), "ZORDER") && is(words.get(i + 1), "BY") {
            for t in &words[i + 2..] {
                match t {
                    Token::Word(w) => columns.push(super::word_name(w)),
                    Token::LParen | Token::RParen | Token::Comma => {}
                    // Anything else is left for the parser to reject.
                    _ => return None,
                }
            }
        } else if i < words.len() {
            return None;
        }
        return Some(format!(
            "SELECT * FROM delta_optimize('{name}', '{}')",
            columns.join(",").replace('\'', "''")
        ));
    }
    let mut hours = "NULL".to_string();
    let mut dry = false;
    while i < words.len() {
        if is(words.get(i), "RETAIN") && is(words.get(i + 2), "HOURS") {
            let Some(Token::Number(n, _)) = words.get(i + 1) else {
                return None;
            };
            hours = n.clone();
            i += 3;
        } else if is(words.get(i), "DRY") && is(words.get(i + 1), "RUN") {
            dry = true;
            i += 2;
        } else {
            return None;
        }
    }
    Some(format!(
        "SELECT * FROM delta_vacuum('{name}', {hours}, {dry})"
    ))
}

/// `DESCRIBE HISTORY name` as a query of `delta_history`.
fn describe_history(solid: &[(usize, &TokenWithSpan)]) -> Option<String> {
    let word = |i: usize| match solid.get(i).map(|(_, t)| &t.token) {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    };
    if !word(0)?.value.eq_ignore_ascii_case("DESCRIBE")
        || !word(1)?.value.eq_ignore_ascii_case("HISTORY")
    {
        return None;
    }
    let mut parts = vec![];
    let mut i = 2;
    while let Some(w) = word(i) {
        parts.push(super::word_name(w));
        if !matches!(solid.get(i + 1).map(|(_, t)| &t.token), Some(Token::Period)) {
            break;
        }
        i += 2;
    }
    let rest_ok = solid[i + 1..]
        .iter()
        .all(|(_, t)| matches!(t.token, Token::SemiColon | Token::EOF));
    let name = parts.pop()?;
    rest_ok.then(|| {
        format!(
            "SELECT * FROM delta_history('{}')",
            name.replace('\'', "''")
        )
    })
}

/// At `k`, `VERSION AS OF` or `TIMESTAMP AS OF` after a table name: the kind and where
/// the value starts.
fn as_of_at(solid: &[(usize, &TokenWithSpan)], k: usize) -> Option<(&'static str, usize)> {
    let kw = |i: usize, want: Keyword| matches!(solid.get(i).map(|(_, t)| &t.token), Some(Token::Word(w)) if w.keyword == want);
    if k == 0 || !matches!(solid[k - 1].1.token, Token::Word(_)) {
        return None;
    }
    // `CAST(x AS TIMESTAMP) AS OF…` is not a table; a table name follows FROM, JOIN, a
    // comma or a period-joined name, which a Word before us already implies well enough.
    let kind = if kw(k, Keyword::VERSION) {
        "version"
    } else if kw(k, Keyword::TIMESTAMP) {
        "timestamp"
    } else {
        return None;
    };
    if !(kw(k + 1, Keyword::AS) && kw(k + 2, Keyword::OF)) {
        return None;
    }
    (k + 3 < solid.len()).then_some((kind, k + 3))
}

/// The last token of the value starting at `start`: up to a top-level comma, closing
/// parenthesis, semicolon or clause keyword.
fn value_end(solid: &[(usize, &TokenWithSpan)], start: usize) -> usize {
    const STOP: &[Keyword] = &[
        Keyword::WHERE,
        Keyword::GROUP,
        Keyword::ORDER,
        Keyword::JOIN,
        Keyword::INNER,
        Keyword::LEFT,
        Keyword::RIGHT,
        Keyword::FULL,
        Keyword::CROSS,
        Keyword::NATURAL,
        Keyword::ON,
        Keyword::USING,
        Keyword::AS,
        Keyword::LIMIT,
        Keyword::UNION,
        Keyword::EXCEPT,
        Keyword::INTERSECT,
        Keyword::HAVING,
        Keyword::WINDOW,
        Keyword::QUALIFY,
        Keyword::OFFSET,
    ];
    const CONTINUES: &[Keyword] = &[
        Keyword::YEAR,
        Keyword::MONTH,
        Keyword::WEEK,
        Keyword::DAY,
        Keyword::HOUR,
        Keyword::MINUTE,
        Keyword::SECOND,
        Keyword::AT,
        Keyword::AND,
        Keyword::OR,
        Keyword::IS,
        Keyword::COLLATE,
    ];
    let mut depth = 0i32;
    let mut end = start;
    for (i, (_, t)) in solid.iter().enumerate().skip(start) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Comma | Token::SemiColon | Token::EOF if depth == 0 => break,
            Token::Word(w) if depth == 0 && i > start && STOP.contains(&w.keyword) => break,
            // An alias right after a version number or time: `t VERSION AS OF 3 old`
            // (but `INTERVAL '1' DAY` and `'…' AT TIME ZONE …` continue the value).
            Token::Word(w)
                if depth == 0
                    && i > start
                    && !CONTINUES.contains(&w.keyword)
                    && matches!(
                        solid[i - 1].1.token,
                        Token::Number(..) | Token::SingleQuotedString(_)
                    ) =>
            {
                break;
            }
            _ => {}
        }
        end = i;
    }
    end
}

/// Byte offset in `sql` where each token starts.
fn byte_offsets(sql: &str, tokens: &[TokenWithSpan]) -> Vec<usize> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    tokens
        .iter()
        .map(|t| {
            let line = (t.span.start.line as usize).saturating_sub(1);
            let col = (t.span.start.column as usize).saturating_sub(1);
            let start = line_starts.get(line).copied().unwrap_or(sql.len());
            sql[start..]
                .char_indices()
                .nth(col)
                .map_or(sql.len(), |(b, _)| start + b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn as_of_becomes_a_table_function_and_the_rest_is_kept() {
        assert_eq!(
            rewrite("SELECT * FROM t VERSION AS OF 3 WHERE a > 1").as_deref(),
            Some("SELECT * FROM table_as_of('t', 'version', 3) WHERE a > 1")
        );
        assert_eq!(
            rewrite("select count(*) from public.t timestamp as of '2026-12-01 10:00:00' old")
                .as_deref(),
            Some("select count(*) from table_as_of('t', 'timestamp', '2026-12-01 10:00:00') old")
        );
        assert_eq!(
            rewrite("SELECT * FROM a VERSION AS OF 1 x JOIN b VERSION AS OF 2 ON x.k = b.k")
                .as_deref(),
            Some(
                "SELECT * FROM table_as_of('a', 'version', 1) x JOIN table_as_of('b', 'version', 2) ON x.k = b.k"
            )
        );
        assert_eq!(
            rewrite("DESCRIBE HISTORY \"My T\";").as_deref(),
            Some("SELECT * FROM delta_history('My T')")
        );
        assert_eq!(
            rewrite("OPTIMIZE public.t ZORDER BY (a, \"B\")").as_deref(),
            Some("SELECT * FROM delta_optimize('t', 'a,B')")
        );
        assert_eq!(
            rewrite("vacuum t retain 0 hours dry run;").as_deref(),
            Some("SELECT * FROM delta_vacuum('t', 0, true)")
        );
        assert_eq!(
            rewrite("VACUUM t").as_deref(),
            Some("SELECT * FROM delta_vacuum('t', NULL, false)")
        );
        assert_eq!(super::maintained_table("OPTIMIZE s.t"), Some("t".into()));
        assert_eq!(rewrite("SELECT CAST(x AS TIMESTAMP) FROM t"), None);
        assert_eq!(rewrite("SELECT 'VERSION AS OF 3' FROM t"), None);
    }
}
