//! What PostgreSQL clients send while reflecting a database that DataFusion lacks: catalog
//! functions whose answer in Augur is always NULL (it has no sequences, no comments on
//! objects and no indexes), called by SQLAlchemy's inspector, pandas `to_sql` and DBeaver for
//! every table; and `LIKE … ESCAPE` with an escape character other than `\`.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions_mut};

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
            && let Expr::Value(literal) = pattern.as_mut()
            && let Value::SingleQuotedString(text) = &mut literal.value
            && let Some(rewritten) = reescape(text, escape)
        {
            *text = rewritten;
            *escape_char = None;
        }
        ControlFlow::<()>::Continue(())
    });
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
    fn escapes_are_rewritten_with_backslash() {
        assert_eq!(reescape("pg/_%", '/').as_deref(), Some("pg\\_%"));
        assert_eq!(reescape("a//b", '/').as_deref(), Some("a\\/b"));
        assert_eq!(reescape("a\\b", '/').as_deref(), Some("a\\\\b"));
        assert_eq!(reescape("ends/", '/'), None);
    }
}
