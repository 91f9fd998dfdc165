//! What PostgreSQL clients send while reflecting a database that DataFusion lacks: catalog
//! functions whose answer in Augur is always NULL (it has no sequences, no comments on
//! objects and no indexes), called by SQLAlchemy's inspector, pandas `to_sql` and DBeaver for
//! every table; `to_regtype`/`to_regclass`/`to_regproc`/`to_regnamespace` (psycopg's type
//! lookup at connect); and `LIKE … ESCAPE` with an escape character other than `\`.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `to_regX(name)` → the oid of the object so named, or NULL: (function, catalog lookup).
const TO_REG: &[(&str, &str)] = &[
    (
        "to_regtype",
        "SELECT max(oid) FROM pg_catalog.pg_type WHERE typname = ",
    ),
    (
        "to_regclass",
        "SELECT max(oid) FROM pg_catalog.pg_class WHERE relname = ",
    ),
    (
        "to_regproc",
        "SELECT max(oid) FROM pg_catalog.pg_proc WHERE proname = ",
    ),
    (
        "to_regnamespace",
        "SELECT max(oid) FROM pg_catalog.pg_namespace WHERE nspname = ",
    ),
];

/// `generate_subscripts(a, d)` (a set-returning function DataFusion lacks) becomes the
/// `unnest` of the subscripts, which zips with other `unnest`s in the select list as
/// PostgreSQL's set-returning functions do.
fn subscripts(f: &datafusion::sql::sqlparser::ast::Function) -> Option<Expr> {
    if !f
        .name
        .to_string()
        .eq_ignore_ascii_case("generate_subscripts")
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [
        FunctionArg::Unnamed(FunctionArgExpr::Expr(array)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(dim)),
    ] = list.args.as_slice()
    else {
        return None;
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!(
            "unnest(range(1, CAST(coalesce(array_length({array}, {dim}), 0) AS BIGINT) + 1))"
        ))
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// Catalog tables that hold nothing about Augur's objects (no column defaults, no
/// sequences): a scalar subquery over them alone is NULL, as PostgreSQL answers for such
/// objects. (DataFusion cannot plan SQLAlchemy's correlated lookups in them.)
const EMPTY_FOR_AUGUR: &[&str] = &["pg_attrdef", "pg_sequence"];

fn null_text() -> Expr {
    Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: Box::new(Expr::Value(Value::Null.into())),
        data_type: datafusion::sql::sqlparser::ast::DataType::Text,
        array: false,
        format: None,
    }
}

/// Whether `query` is one SELECT whose FROM names only tables among `tables`.
fn reads_only(query: &datafusion::sql::sqlparser::ast::Query, tables: &[&str]) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor};
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    !select.from.is_empty()
        && select.from.iter().all(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .all(|r| match r {
                    TableFactor::Table { name, .. } => name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .is_some_and(|i| tables.iter().any(|t| i.value.eq_ignore_ascii_case(t))),
                    _ => false,
                })
        })
}

/// A scalar subquery that looks one row up in `pg_catalog` (`(SELECT typcollation FROM
/// pg_type WHERE oid = a.atttypid)`, as SQLAlchemy's column reflection does) takes the
/// value with `first_value`: DataFusion runs a correlated scalar subquery only when it is
/// aggregated. Subqueries over the user's tables are left alone (more than one row stays
/// an error there).
fn first_of_catalog_lookup(query: &mut datafusion::sql::sqlparser::ast::Query) {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr, TableFactor};
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let catalog_only = !select.from.is_empty()
        && select.from.iter().all(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .all(|r| match r {
                    TableFactor::Table { name, .. } => name.0.iter().any(|part| {
                        part.as_ident()
                            .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog"))
                    }),
                    _ => false,
                })
        });
    let plain = matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        && select.having.is_none()
        && query.limit_clause.is_none();
    if !catalog_only || !plain || select.projection.len() != 1 {
        return;
    }
    let item = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return,
    };
    if let Expr::Function(f) = item
        && [
            "max",
            "min",
            "count",
            "sum",
            "avg",
            "first_value",
            "array_agg",
            "bool_and",
        ]
        .iter()
        .any(|a| f.name.to_string().eq_ignore_ascii_case(a))
    {
        return;
    }
    if let Ok(wrapped) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("first_value({item})"))
        .and_then(|mut p| p.parse_expr())
    {
        *item = wrapped;
    }
}

/// `pg_class.reloptions`, which datafusion-pg-catalog's `pg_class` lacks (SQLAlchemy's
/// index reflection reads it by its full name).
fn is_missing_column(expr: &Expr) -> bool {
    let Expr::CompoundIdentifier(parts) = expr else {
        return false;
    };
    let names: Vec<String> = parts.iter().map(|p| p.value.to_ascii_lowercase()).collect();
    names.ends_with(&["pg_class".to_string(), "reloptions".to_string()])
}

/// `regproc` columns of `pg_type`, text here: PostgreSQL compares them with `0` (no
/// function), which it prints as `-` (ADBC's type probe: `typreceive != 0`).
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
];

fn regproc_zero(column: &Expr, other: &mut Expr) {
    let name = match column {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return,
        },
        _ => return,
    };
    if REGPROC_COLUMNS.contains(&name.to_ascii_lowercase().as_str())
        && let Expr::Value(v) = other
        && matches!(&v.value, Value::Number(n, _) if n == "0")
    {
        v.value = Value::SingleQuotedString("-".into());
    }
}

/// Postgres's oid-alias idioms in forms DataFusion plans: `to_regtype(x)` and friends
/// become a scalar subquery on the catalog table, which is NULL when nothing has that name
/// (PostgreSQL's answer, where `x::regtype` fails); `generate_subscripts` an `unnest`;
/// `regproc` columns compared with 0 are compared with `'-'`.
pub(super) fn rewrite_reg_types(statement: &mut DFStatement) {
    let DFStatement::Statement(statement) = statement else {
        return;
    };
    let _ = visit_expressions_mut(statement.as_mut(), |expr| {
        if let Expr::Function(f) = expr
            && let Some(rewritten) = subscripts(f)
        {
            *expr = rewritten;
        } else if let Expr::Subquery(query) = expr {
            if reads_only(query, EMPTY_FOR_AUGUR) {
                *expr = null_text();
            } else {
                first_of_catalog_lookup(query);
            }
        } else if is_missing_column(expr) {
            // Objects here have no storage options.
            *expr = Expr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                expr: Box::new(Expr::Value(Value::Null.into())),
                data_type: datafusion::sql::sqlparser::ast::DataType::Array(
                    datafusion::sql::sqlparser::ast::ArrayElemTypeDef::SquareBracket(
                        Box::new(datafusion::sql::sqlparser::ast::DataType::Text),
                        None,
                    ),
                ),
                array: false,
                format: None,
            };
        } else if let Expr::BinaryOp { left, op, right } = expr
            && matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq)
        {
            regproc_zero(left, right);
            regproc_zero(right, left);
        } else if let Expr::Function(f) = expr
            && let Some((_, lookup)) = TO_REG
                .iter()
                .find(|(name, _)| f.name.to_string().eq_ignore_ascii_case(name))
            && let FunctionArguments::List(list) = &f.args
            && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice()
            && let Ok(query) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&format!("({lookup}{arg}::text)"))
                .and_then(|mut p| p.parse_expr())
        {
            *expr = query;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// (name, the argument counts PostgreSQL accepts).
pub(super) const NULL_FUNCTIONS: &[(&str, &[usize])] = &[
    ("pg_get_serial_sequence", &[2]),
    ("obj_description", &[1, 2]),
    ("col_description", &[2]),
    ("shobj_description", &[2]),
    ("pg_get_indexdef", &[1, 3]),
];

/// A function of `arities` arguments of any type that returns a NULL text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullText {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

pub(super) fn null_functions() -> Vec<ScalarUDF> {
    NULL_FUNCTIONS
        .iter()
        .map(|(name, arities)| {
            let forms = arities.iter().map(|n| TypeSignature::Any(*n)).collect();
            ScalarUDF::new_from_impl(NullText {
                name,
                signature: Signature::one_of(forms, Volatility::Stable),
            })
        })
        .collect()
}

/// `json_build_object(k1, v1, …)`: a JSON object as text (SQLAlchemy's column reflection
/// asks for identity and collation details with it).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(datafusion::error::DataFusionError::Plan(
                "json_build_object takes keys and values in pairs: an even number of arguments"
                    .into(),
            ));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for row in 0..args.number_rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.insert(key.to_string(), json_value(&value));
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(out.finish())))
    }
}

fn json_value(value: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    if value.is_null() {
        return J::Null;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => J::Bool(*b),
        ScalarValue::Float32(Some(f)) => {
            serde_json::Number::from_f64(*f as f64).map_or(J::Null, J::Number)
        }
        ScalarValue::Float64(Some(f)) => {
            serde_json::Number::from_f64(*f).map_or(J::Null, J::Number)
        }
        v if v.data_type().is_integer() => v
            .to_string()
            .parse::<i64>()
            .map_or_else(|_| J::String(v.to_string()), |n| J::Number(n.into())),
        v => J::String(v.to_string()),
    }
}

pub(super) fn json_build_object() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// `parse_ident('"public" . "t"')` as PostgreSQL reads it: whitespace around the dots is
/// allowed and unquoted parts fold to lower case (ADBC names tables so for `::regclass`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ParseIdent {
    signature: Signature,
}

impl ScalarUDFImpl for ParseIdent {
    fn name(&self) -> &str {
        "parse_ident"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::List(std::sync::Arc::new(
            datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, ListBuilder, StringBuilder};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let mut out = ListBuilder::new(StringBuilder::new());
        for value in text.as_string::<i32>().iter() {
            match value {
                None => out.append_null(),
                Some(v) => {
                    let parts = split_ident(v).ok_or_else(|| {
                        datafusion::error::DataFusionError::Execution(format!(
                            "string is not a valid identifier: \"{v}\""
                        ))
                    })?;
                    for part in parts {
                        out.values().append_value(part);
                    }
                    out.append(true);
                }
            }
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(out.finish())))
    }
}

/// `a . "B"` → `["a", "B"]`; `None` when it is not a qualified name.
fn split_ident(text: &str) -> Option<Vec<String>> {
    let mut parts = vec![];
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c.is_whitespace() {
                    break;
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

pub(super) fn parse_ident() -> ScalarUDF {
    ScalarUDF::new_from_impl(ParseIdent {
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Immutable,
        ),
    })
}

/// `LIKE p ESCAPE 'c'` with an escape character other than `\` (SQLAlchemy's schema
/// reflection uses `'/'`), for DataFusion, which knows only `\`: a literal pattern is
/// re-escaped with `\` and the ESCAPE clause dropped. Anything else is left as it is.
pub(super) fn rewrite_like_escapes(statement: &mut DFStatement) {
    let DFStatement::Statement(statement) = statement else {
        return;
    };
    let _ = visit_expressions_mut(statement.as_mut(), |expr| {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = expr
            && let Some(escape) = escape_char.as_ref().and_then(|v| single_char(&v.value))
            && escape != '\\'
        {
            match pattern.as_mut() {
                Expr::Value(literal) => {
                    if let Value::SingleQuotedString(text) = &mut literal.value
                        && let Some(rewritten) = reescape(text, escape)
                    {
                        *text = rewritten;
                        *escape_char = None;
                    }
                }
                other => {
                    if let Some(rewritten) = reescape_at_run_time(other, escape) {
                        *other = rewritten;
                        *escape_char = None;
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A pattern known only when the statement runs (a parameter, a concatenation) is
/// re-escaped by string functions: `\` doubled, `cc` kept as a literal `c`, `c` → `\`.
fn reescape_at_run_time(pattern: &Expr, escape: char) -> Option<Expr> {
    if escape == '\'' || escape == '\u{1}' {
        return None;
    }
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!(
            "replace(replace(replace(replace({pattern}, '\\', '\\\\'), '{escape}{escape}', chr(1)), \
             '{escape}', '\\'), chr(1), '{escape}')"
        ))
        .and_then(|mut p| p.parse_expr())
        .ok()
}

fn single_char(value: &Value) -> Option<char> {
    let Value::SingleQuotedString(s) = value else {
        return None;
    };
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// `pattern` with `escape` as its escape character, written with `\` instead; `None` when
/// it ends in the escape character (PostgreSQL's error, left to the LIKE itself).
fn reescape(pattern: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push('\\');
            out.push(chars.next()?);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::reescape;

    #[test]
    fn identifiers_split_as_postgres_reads_them() {
        let parts = |t: &str| super::split_ident(t);
        assert_eq!(
            parts("\"public\" . \"Ingested\""),
            Some(vec!["public".into(), "Ingested".into()])
        );
        assert_eq!(parts("Public.T"), Some(vec!["public".into(), "t".into()]));
        assert_eq!(parts("\"a\"\"b\""), Some(vec!["a\"b".into()]));
        assert_eq!(parts("a..b"), None);
        assert_eq!(parts("a b"), None);
    }

    #[test]
    fn escapes_are_rewritten_with_backslash() {
        assert_eq!(reescape("pg/_%", '/').as_deref(), Some("pg\\_%"));
        assert_eq!(reescape("a//b", '/').as_deref(), Some("a\\/b"));
        assert_eq!(reescape("a\\b", '/').as_deref(), Some("a\\\\b"));
        assert_eq!(reescape("ends/", '/'), None);
    }
}
