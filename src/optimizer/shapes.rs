//! What a subplan looks like, for the rules' cost heuristics: filtered scans, scanned tables.

use std::collections::HashSet;

use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;

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
