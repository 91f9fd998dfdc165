//! `ViewEquality`, a physical optimizer rule: `s = 'literal'` and `s <> 'literal'` on a
//! `Utf8View` column compare each row's 16-byte view with the literal's, without a branch per
//! row. Arrow's kernel decides each row through two or three data-dependent branches (whole
//! view equal and inline? lengths equal? inline?), which mispredict on low-cardinality columns
//! of equal-length values (`l_shipmode` = 'MAIL' against 'SHIP' and 'RAIL'): `perf` put 28% of
//! TPC-H Q12 in it. A string of at most 12 bytes is stored whole inside its view, zero-padded
//! (the Arrow format requires the padding, and arrow's own kernel relies on it), so for such a
//! literal two views are equal exactly when the strings are. A longer literal compares its
//! length and 4-byte prefix first, and only rows that match both read their bytes.
//! `SET augur.view_equality = false` turns it off.

use std::sync::Arc;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringViewArray};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;

use super::expression_rules::{BinaryRule, Evaluate, string_constant};

/// The rule: a string view compared for (in)equality with a constant becomes
/// [`Faster`](super::expression_rules::Faster)`<`[`ViewEq`]`>`.
pub fn rule() -> BinaryRule<ViewEq> {
    BinaryRule {
        name: "view_equality",
        on: |o| o.view_equality,
        applies: view_against_literal,
        how: ViewEq,
    }
}

/// `=` or `<>` with a string constant on one side and a `Utf8View` value on the other.
fn view_against_literal(binary: &BinaryExpr, schema: &Schema) -> bool {
    let view =
        |e: &Arc<dyn PhysicalExpr>| e.data_type(schema).is_ok_and(|t| t == DataType::Utf8View);
    matches!(binary.op(), Operator::Eq | Operator::NotEq)
        && ((string_constant(binary.right()).is_some() && view(binary.left()))
            || (string_constant(binary.left()).is_some() && view(binary.right())))
}

/// `=` / `<>` of a string view array and a constant, one word of 64 rows at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewEq;

impl Evaluate for ViewEq {
    fn evaluate(&self, plain: &BinaryExpr, batch: &RecordBatch) -> Result<ColumnarValue> {
        let (value, constant) = match string_constant(plain.right()) {
            Some(s) => (plain.left(), s),
            None => match string_constant(plain.left()) {
                Some(s) => (plain.right(), s),
                None => return plain.evaluate(batch),
            },
        };
        let ColumnarValue::Array(array) = value.evaluate(batch)? else {
            return plain.evaluate(batch);
        };
        let Some(strings) = array.as_string_view_opt() else {
            return plain.evaluate(batch);
        };
        let equal = equal_to(strings, constant.as_bytes());
        let values = if *plain.op() == Operator::NotEq {
            !&equal
        } else {
            equal
        };
        let result = BooleanArray::new(values, strings.nulls().cloned());
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

/// Which rows of `strings` equal `constant` (NULL rows: whatever their views say).
pub fn equal_to(strings: &StringViewArray, constant: &[u8]) -> BooleanBuffer {
    let views = strings.views();
    // For a long constant only the low 64 bits (length and prefix) are whole-view data.
    let want = make_view(constant, 0, 0);
    if constant.len() <= 12 {
        return bitmap(bits(views, |view| view == want), views.len());
    }
    // Rows whose length and prefix match, then the rest of those rows' bytes.
    let head = want as u64;
    let mut words = bits(views, |view| view as u64 == head);
    let buffers = strings.data_buffers();
    for (w, word) in words.iter_mut().enumerate() {
        let mut candidates = *word;
        while candidates != 0 {
            let j = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let view = views[w * 64 + j];
            let (buffer, offset) = ((view >> 64) as u32 as usize, (view >> 96) as usize);
            let bytes = buffers
                .get(buffer)
                .and_then(|b| b.get(offset + 4..offset + constant.len()));
            if bytes != Some(&constant[4..]) {
                *word &= !(1 << j);
            }
        }
    }
    bitmap(words, views.len())
}

/// `test` over `views`, 64 rows to a word, with no branch per row (so the compiler can
/// vectorise the comparisons).
fn bits(views: &[u128], test: impl Fn(u128) -> bool) -> Vec<u64> {
    let mut words = Vec::with_capacity(views.len().div_ceil(64));
    for chunk in views.chunks(64) {
        let mut word = 0u64;
        for (j, view) in chunk.iter().enumerate() {
            word |= u64::from(test(*view)) << j;
        }
        words.push(word);
    }
    words
}

fn bitmap(words: Vec<u64>, rows: usize) -> BooleanBuffer {
    BooleanBuffer::new(Buffer::from_vec(words), 0, rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::builder::StringViewBuilder;
    use datafusion::arrow::array::{Array, RecordBatch, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::filter::FilterExec;

    use super::ViewEq;
    use crate::optimizer::expression_rules::Faster;

    /// Values of every length from 0 to 20 sharing prefixes with the constants, in small data
    /// blocks (so long values sit in several buffers), every seventh NULL.
    fn strings() -> StringViewArray {
        let words = [
            "MAIL",
            "RAIL",
            "SHIP",
            "DELIVER IN PERSON",
            "DELIVER IN PERSOM",
            "DELIVER IN Q",
        ];
        let mut builder = StringViewBuilder::new().with_fixed_block_size(64);
        for i in 0..3000usize {
            if i % 7 == 3 {
                builder.append_null();
            } else if i % 3 == 0 {
                builder.append_value(words[(i / 3) % words.len()]);
            } else {
                let len = i % 21;
                let s: String = "DELIVER IN PERSON, MAIL"
                    .chars()
                    .cycle()
                    .take(len)
                    .collect();
                builder.append_value(s);
            }
        }
        builder.finish()
    }

    fn literal(s: &str) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::Utf8View(Some(s.to_string()))))
    }

    /// Every constant (inline, exactly 12 bytes, long, absent, empty), both operators, the
    /// constant on either side, whole and sliced arrays: arrow's values and NULLs.
    #[test]
    fn agrees_with_arrow() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let all = strings();
        let constants = [
            "",
            "MAIL",
            "SHIP",
            "DELIVER IN P",
            "DELIVER IN PE",
            "DELIVER IN PERSON",
            "DELIVER IN PERSONX",
            "MAIX",
            "nowhere at all, long",
        ];
        let mut matched = 0;
        for array in [all.clone(), all.slice(5, 2000)] {
            let batch =
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch");
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("s", 0));
            for constant in constants {
                for op in [Operator::Eq, Operator::NotEq] {
                    for flipped in [false, true] {
                        let (l, r) = if flipped {
                            (literal(constant), Arc::clone(&column))
                        } else {
                            (Arc::clone(&column), literal(constant))
                        };
                        let plain = BinaryExpr::new(l, op, r);
                        let rows = batch.num_rows();
                        let expected = plain.evaluate(&batch).and_then(|v| v.into_array(rows));
                        let faster = Faster::new(&plain, ViewEq);
                        let got = faster.evaluate(&batch).and_then(|v| v.into_array(rows));
                        let (expected, got) = (expected.expect("arrow"), got.expect("views"));
                        assert_eq!(&expected, &got, "{plain}");
                        if op == Operator::Eq {
                            matched += got
                                .as_any()
                                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                                .map_or(0, |b| b.true_count());
                        }
                    }
                }
            }
        }
        // The constants that occur do match (the comparison is not vacuously false).
        assert!(matched > 1000, "{matched}");
    }

    fn rewritten(column_type: DataType, config: &ConfigOptions) -> bool {
        let schema = Arc::new(Schema::new(vec![Field::new("s", column_type, true)]));
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("s", 0)),
            Operator::Eq,
            literal("MAIL"),
        ));
        let input = Arc::new(EmptyExec::new(schema));
        let plan = Arc::new(FilterExec::try_new(predicate, input).expect("filter"));
        let plan = super::rule().optimize(plan, config).expect("optimize");
        let filter = plan.downcast_ref::<FilterExec>().expect("filter");
        filter
            .predicate()
            .downcast_ref::<Faster<ViewEq>>()
            .is_some()
    }

    #[test]
    fn rule_takes_string_views_only() {
        let config = ConfigOptions::default();
        assert!(rewritten(DataType::Utf8View, &config));
        assert!(!rewritten(DataType::Utf8, &config));
        let mut off = ConfigOptions::default();
        off.extensions.insert(crate::cluster::AugurOptions {
            view_equality: false,
            ..Default::default()
        });
        assert!(!rewritten(DataType::Utf8View, &off));
        // augur.rules = false turns every rule off.
        let mut none = ConfigOptions::default();
        none.extensions.insert(crate::cluster::AugurOptions {
            rules: false,
            ..Default::default()
        });
        assert!(!rewritten(DataType::Utf8View, &none));
    }
}
