//! `FilterSelectivity`, a physical optimizer rule run just before DataFusion's build-side
//! choice (`join_selection`): a filter made only of string equalities and `IN` lists
//! (`p_type = 'ECONOMY ANODIZED STEEL'`, `n_name IN ('FRANCE', 'GERMANY')`) reports the share
//! of rows Augur's join order assumed for it, one in `STRING_DISTINCT` per value, instead of
//! DataFusion's flat 20% for predicates its interval analysis cannot read. With 20%, TPC-H
//! SF10 Q8's 13K parts joined to 60M lineitem rows were estimated at 12M rows and the join
//! built its hash table on 4.6M orders instead (the part side had 403K). Other filters keep
//! DataFusion's estimate. `SET augur.filter_selectivity = false` turns it off.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use super::estimates::STRING_DISTINCT;
use super::expression_rules::string_constant;

#[derive(Debug, Default)]
pub struct FilterSelectivity;

impl PhysicalOptimizerRule for FilterSelectivity {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !crate::cluster::AugurOptions::enabled(config, |o| o.filter_selectivity) {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            // Counts of few-valued columns the join order read from dictionary pages, looked
            // up only for a filter on a string column.
            let counts = std::cell::OnceCell::new();
            let distinct = |name: &str| {
                let counts = counts.get_or_init(|| {
                    if crate::cluster::AugurOptions::enabled(config, |o| o.string_distinct) {
                        super::dictionary_distinct::cached_string_distincts(filter.input())
                    } else {
                        Default::default()
                    }
                });
                counts.get(name).copied().unwrap_or(STRING_DISTINCT)
            };
            let Some(share) = string_share(filter.predicate(), &filter.input().schema(), &distinct)
            else {
                return Ok(Transformed::no(node));
            };
            // DataFusion takes whole percents: at least one, so no filter reports no rows.
            let percent = (share * 100.0).round().clamp(1.0, 100.0) as u8;
            if percent == filter.default_selectivity() {
                return Ok(Transformed::no(node));
            }
            let exec = FilterExecBuilder::from(filter)
                .with_default_selectivity(percent)
                .build()?;
            Ok(Transformed::yes(Arc::new(exec) as _))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "filter_selectivity"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The share of rows `predicate` keeps if it is only string equalities and `IN` lists of
/// constants, joined by AND and OR; `None` for anything else.
fn string_share(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
    distinct: &dyn Fn(&str) -> f64,
) -> Option<f64> {
    // The column's distinct count, if `e` is a string column.
    let string_column = |e: &Arc<dyn PhysicalExpr>| {
        let column = e.downcast_ref::<Column>()?;
        let string = e
            .data_type(schema)
            .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8));
        string.then(|| distinct(column.name()).max(1.0))
    };
    let string_literal = |e: &Arc<dyn PhysicalExpr>| string_constant(e).is_some();
    if let Some(binary) = predicate.downcast_ref::<BinaryExpr>() {
        let (l, r) = (binary.left(), binary.right());
        return match binary.op() {
            Operator::And => {
                Some(string_share(l, schema, distinct)? * string_share(r, schema, distinct)?)
            }
            Operator::Or => Some(
                (string_share(l, schema, distinct)? + string_share(r, schema, distinct)?).min(1.0),
            ),
            Operator::Eq if string_literal(r) => string_column(l).map(|d| 1.0 / d),
            Operator::Eq if string_literal(l) => string_column(r).map(|d| 1.0 / d),
            _ => None,
        };
    }
    let list = predicate.downcast_ref::<InListExpr>()?;
    let constants = list.list().iter().all(string_literal);
    let d = string_column(list.expr())?;
    (!list.negated() && constants).then(|| (list.list().len() as f64 / d).min(1.0))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal, in_list};
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::filter::FilterExec;

    use super::FilterSelectivity;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
        ]))
    }

    fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, i))
    }

    fn text(s: &str) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::Utf8View(Some(s.into()))))
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    /// The default selectivity (percent) the rule leaves on a filter of `predicate`.
    fn percent(predicate: Arc<dyn PhysicalExpr>, config: &ConfigOptions) -> u8 {
        let input = Arc::new(EmptyExec::new(schema()));
        let plan = Arc::new(FilterExec::try_new(predicate, input).expect("filter"));
        let plan = FilterSelectivity.optimize(plan, config).expect("optimize");
        plan.downcast_ref::<FilterExec>()
            .expect("filter")
            .default_selectivity()
    }

    #[test]
    fn string_equalities_report_the_join_orders_share() {
        let config = ConfigOptions::default();
        let eq = || binary(col("s", 0), Operator::Eq, text("BRAZIL"));
        assert_eq!(percent(eq(), &config), 2);
        // The constant on the left, and a Utf8 column.
        assert_eq!(
            percent(binary(text("x"), Operator::Eq, col("t", 1)), &config),
            2
        );
        let list = in_list(
            col("s", 0),
            vec![text("a"), text("b"), text("c")],
            &false,
            &schema(),
        );
        assert_eq!(percent(list.expect("in list"), &config), 6);
        let either = binary(
            eq(),
            Operator::Or,
            binary(col("s", 0), Operator::Eq, text("PERU")),
        );
        assert_eq!(percent(either, &config), 4);
        // Two equalities keep 0.04%: reported as the smallest whole percent.
        let both = binary(
            eq(),
            Operator::And,
            binary(col("t", 1), Operator::Eq, text("MED BOX")),
        );
        assert_eq!(percent(both, &config), 1);
    }

    #[test]
    fn other_filters_keep_datafusions_estimate() {
        let config = ConfigOptions::default();
        let default = percent(binary(col("i", 2), Operator::Gt, col("i", 2)), &config);
        assert_eq!(default, 20);
        let int = Arc::new(Literal::new(ScalarValue::Int64(Some(3))));
        assert_eq!(percent(binary(col("i", 2), Operator::Eq, int), &config), 20);
        let not_equal = binary(col("s", 0), Operator::NotEq, text("x"));
        assert_eq!(percent(not_equal, &config), 20);
        let negated = in_list(col("s", 0), vec![text("a")], &true, &schema()).expect("in list");
        assert_eq!(percent(negated, &config), 20);
        // A string equality next to something else: DataFusion's estimate for the whole.
        let mixed = binary(
            binary(col("s", 0), Operator::Eq, text("x")),
            Operator::And,
            binary(col("i", 2), Operator::Gt, col("i", 2)),
        );
        assert_eq!(percent(mixed, &config), 20);
        let mut off = ConfigOptions::default();
        off.extensions.insert(crate::cluster::AugurOptions {
            filter_selectivity: false,
            ..Default::default()
        });
        assert_eq!(
            percent(binary(col("s", 0), Operator::Eq, text("x")), &off),
            20
        );
    }
}
