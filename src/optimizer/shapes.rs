//! Plan shapes the rules share: filtered scans and scanned tables (their cost heuristics),
//! following a column down through a node, and building joins.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result, TableReference};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan};

/// Only projections, filters and aliases over one table scan, with at least one filter: cheap
/// to scan a second time, and selective enough to be worth it.
pub fn is_filtered_scan(plan: &LogicalPlan) -> bool {
    let mut simple = true;
    let mut filtered = false;
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Filter(_) => filtered = true,
            LogicalPlan::TableScan(scan) => filtered |= !scan.filters.is_empty(),
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {}
            _ => simple = false,
        }
        Ok(TreeNodeRecursion::Continue)
    });
    simple && filtered
}

/// The tables `plan` scans.
pub fn tables(plan: &LogicalPlan) -> HashSet<TableReference> {
    let mut names = HashSet::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.insert(scan.table_name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// The input column that `column` of `plan` is, through a projection that passes it on as is,
/// an alias or a filter; `None` for other nodes and computed columns.
pub fn column_below(plan: &LogicalPlan, column: &Column) -> Option<Column> {
    let index = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::Projection(projection) => match projection.expr[index].clone().unalias() {
            Expr::Column(below) => Some(below),
            _ => None,
        },
        LogicalPlan::SubqueryAlias(alias) => {
            Some(Column::from(alias.input.schema().qualified_field(index)))
        }
        LogicalPlan::Filter(_) => Some(column.clone()),
        _ => None,
    }
}

/// `join` (keys, filter, type, null handling) over new inputs.
pub fn with_inputs(join: &Join, left: Arc<LogicalPlan>, right: Arc<LogicalPlan>) -> Result<Join> {
    Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )
}

/// A new equi-join of `left` and `right` on column pairs, NULL keys matching nothing.
pub fn equi_join(
    left: Arc<LogicalPlan>,
    right: Arc<LogicalPlan>,
    pairs: &[(Column, Column)],
    join_type: JoinType,
) -> Result<Join> {
    let on = pairs
        .iter()
        .map(|(l, r)| (Expr::Column(l.clone()), Expr::Column(r.clone())))
        .collect();
    Join::try_new(
        left,
        right,
        on,
        None,
        join_type,
        JoinConstraint::On,
        NullEquality::NullEqualsNothing,
        false,
    )
}
