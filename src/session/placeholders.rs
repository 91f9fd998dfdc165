//! Types for `$n` placeholders that DataFusion leaves open: `$1::int` says what `$1` is, as
//! it does in Postgres, so clients that describe a statement learn the type to send.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::expr::{Cast, Placeholder};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::error::Result;

/// `plan` with every untyped placeholder under a cast typed as the cast's target.
pub fn type_from_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    let typed = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|expr| match expr {
                Expr::Cast(Cast { expr, field }) => match *expr {
                    Expr::Placeholder(Placeholder { id, field: None }) => {
                        let typed = Arc::new(Field::new(&id, field.data_type().clone(), true));
                        let placeholder = Placeholder::new_with_field(id, Some(typed));
                        Ok(Transformed::yes(Expr::Cast(Cast {
                            expr: Box::new(Expr::Placeholder(placeholder)),
                            field,
                        })))
                    }
                    inner => Ok(Transformed::no(Expr::Cast(Cast {
                        expr: Box::new(inner),
                        field,
                    }))),
                },
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(typed.data)
}
