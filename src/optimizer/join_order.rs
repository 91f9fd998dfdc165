//! Cost-based join order: each tree of inner equi-joins is taken apart into its inputs (the
//! "relations": scans, filtered scans, aggregates, outer and semi joins…), its key pairs and
//! its other conditions, and rebuilt in the order that produces the fewest intermediate rows
//! (dynamic programming over connected subsets, up to `MAX_RELATIONS`), with the smaller side
//! of each join as its build side. Row counts come from `Estimates` (Parquet footers, the
//! Delta log); a tree is only rebuilt when the new order is estimated at under
//! `REORDER_GAIN` of the old one's intermediate rows, so a FROM clause whose order is already
//! good, or a guess too close to call, is left as written.
//!
//! It runs when a plan is turned into a physical plan (the `QueryPlanner`), not as a
//! DataFusion logical rule: the statistics it needs are read asynchronously, from the same
//! scans the query is about to run. `EXPLAIN` shows the new order in the physical plan;
//! `SET augur.join_order = false` turns it off.
//!
//! Sound because inner joins are associative and commutative: the same relations, the same
//! key pairs and the same conditions (each on the lowest join that has all its columns) give
//! the same rows; a projection on top restores the original column order.

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{OptimizerContext, OptimizerRule};

use super::estimates::Estimates;
use super::join_graph::Graph;

/// Larger trees keep their order (the search is 3^n).
pub(super) const MAX_RELATIONS: usize = 12;
/// A new order must be estimated at under this share of the old one's intermediate rows.
const REORDER_GAIN: f64 = 0.8;

/// `plan` with its inner-join trees in their cheapest estimated order; `None` when every
/// tree keeps its order.
pub async fn reorder(plan: &LogicalPlan, session: &dyn Session) -> Result<Option<LogicalPlan>> {
    if !enabled(session) || !has_join_tree(plan) {
        return Ok(None);
    }
    let estimates = Estimates::gather(plan, session).await;
    let rewritten = rewrite(plan.clone(), &estimates)?;
    if !rewritten.transformed {
        return Ok(None);
    }
    // Relations joined in a new order carry every column they had; prune what no join above
    // needs any more, as DataFusion's own pass did for the old order.
    let pruned = OptimizeProjections::new().rewrite(rewritten.data, &OptimizerContext::new())?;
    Ok(Some(pruned.data))
}

fn enabled(session: &dyn Session) -> bool {
    crate::cluster::AugurOptions::enabled(session.config_options(), |o| o.join_order)
}

/// Whether `plan` has an inner join over another inner join (three relations or more).
fn has_join_tree(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if is_inner(node) && node.inputs().iter().any(|i| is_inner(tree_child(i))) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

pub(super) fn is_inner(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(join) if join.join_type == JoinType::Inner
        && join.null_equality == NullEquality::NullEqualsNothing
        && !join.null_aware)
}

/// Projections that only pass columns on, between two joins of a tree, are looked through
/// (earlier rules may leave several stacked: TPC-H Q21 has three between its joins).
pub(super) fn tree_child(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            let below = tree_child(&p.input);
            if is_inner(below) { below } else { plan }
        }
        other => other,
    }
}

fn rewrite(plan: LogicalPlan, estimates: &Estimates) -> Result<Transformed<LogicalPlan>> {
    if !is_inner(&plan) {
        return plan.map_children(|child| rewrite(child, estimates));
    }
    let tree = rewrite_relations(plan, estimates)?;
    let transformed = tree.transformed;
    let tree = tree.data;
    match Graph::of(&tree, estimates).and_then(|g| g.cheaper_order(REORDER_GAIN)) {
        Some(order) => Ok(Transformed::yes(restore_columns(order?, &tree)?)),
        None => Ok(Transformed::new_transformed(tree, transformed)),
    }
}

/// The tree with each of its relations rewritten (their own join trees reordered).
fn rewrite_relations(plan: LogicalPlan, estimates: &Estimates) -> Result<Transformed<LogicalPlan>> {
    if is_inner(&plan) || !std::ptr::eq(tree_child(&plan), &plan) {
        plan.map_children(|child| rewrite_relations(child, estimates))
    } else {
        rewrite(plan, estimates)
    }
}

/// `plan` under a projection giving `tree`'s columns in `tree`'s order.
fn restore_columns(plan: LogicalPlan, tree: &LogicalPlan) -> Result<LogicalPlan> {
    let columns = tree
        .schema()
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::from((qualifier, field))))
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

#[cfg(test)]
mod tests {
    use crate::optimizer::test_plans::{depth, explain};

    /// A fact table `f` (20,000 rows) with two dimensions `a` and `b` (2,000 rows each) and a
    /// ten-row `c`, as Parquet files, so that their scans report row counts and ranges.
    fn setup(dir: &std::path::Path) -> Vec<String> {
        let d = dir.display();
        vec![
            format!(
                "COPY (SELECT v AS f_a, v % 2000 AS f_b, v % 10 AS f_c FROM generate_series(0, 19999) t(v)) TO '{d}/f.parquet'"
            ),
            format!(
                "COPY (SELECT v AS a_key, v AS a_val FROM generate_series(0, 1999) t(v)) TO '{d}/a.parquet'"
            ),
            format!(
                "COPY (SELECT v AS b_key, v AS b_val FROM generate_series(0, 1999) t(v)) TO '{d}/b.parquet'"
            ),
            format!("COPY (SELECT v AS c_key FROM generate_series(0, 9) t(v)) TO '{d}/c.parquet'"),
            format!(
                "COPY (SELECT v AS s_key, CASE WHEN v % 2 = 0 THEN 'F' ELSE 'O' END AS s_status \
                 FROM generate_series(0, 1999) t(v)) TO '{d}/s.parquet'"
            ),
            format!("CREATE EXTERNAL TABLE f STORED AS PARQUET LOCATION '{d}/f.parquet'"),
            format!("CREATE EXTERNAL TABLE a STORED AS PARQUET LOCATION '{d}/a.parquet'"),
            format!("CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{d}/b.parquet'"),
            format!("CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION '{d}/c.parquet'"),
            format!("CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION '{d}/s.parquet'"),
        ]
    }

    /// The physical plan of `sql` after `setup` and `extra` (where `DIR` is the directory
    /// of the setup's files).
    async fn physical(extra: &[&str], sql: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut statements = setup(dir.path());
        let d = dir.path().display().to_string();
        statements.extend(extra.iter().map(|s| s.replace("DIR", &d)));
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        let plan = explain(&statements, &format!("EXPLAIN {sql}"))
            .await
            .swap_remove(1);
        // Scans print their files without the leading slash.
        let dir = dir.path().to_string_lossy();
        plan.replace(dir.trim_start_matches('/'), "DIR")
    }

    /// The depth of the hash join whose keys mention `key`.
    fn join_depth(plan: &str, key: &str) -> usize {
        plan.lines()
            .filter(|l| l.contains("HashJoinExec") && l.contains(key))
            .map(|l| depth(l, "HashJoinExec").unwrap_or_default())
            .next()
            .unwrap_or_else(|| panic!("no join on {key}:\n{plan}"))
    }

    /// Asserts that in `sql`'s plan (after `extra`) the join on `lower` sits below the one on
    /// `upper`.
    async fn assert_below(extra: &[&str], sql: &str, lower: &str, upper: &str) -> String {
        let plan = physical(extra, sql).await;
        assert!(
            join_depth(&plan, lower) > join_depth(&plan, upper),
            "the join on {lower} should be below the one on {upper}:\n{plan}"
        );
        plan
    }

    // Two filtered dimensions: the filtered-join pushdown leaves them as written, f ⋈ b
    // (10,000 rows) first; a ⋈ f keeps 10 rows and goes first.
    const TWO_FILTERS: &str = "SELECT count(*) FROM f JOIN b ON f_b = b_key JOIN a ON f_a = a_key \
                               WHERE a_val < 10 AND b_val < 1000";

    #[tokio::test(flavor = "multi_thread")]
    async fn the_most_selective_join_goes_first() {
        let plan = physical(&[], TWO_FILTERS).await;
        assert!(
            join_depth(&plan, "a_key") > join_depth(&plan, "b_key"),
            "a should join f below b:\n{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_setting_keeps_the_written_order() {
        let plan = physical(&["SET augur.join_order = false"], TWO_FILTERS).await;
        assert!(
            join_depth(&plan, "b_key") > join_depth(&plan, "a_key"),
            "b should stay below a:\n{plan}"
        );
    }

    // `s_status` has two values (its dictionary pages say so): `s_status = 'F'` keeps 1,000
    // rows of s, f ⋈ s 1,000 rows, while f ⋈ b keeps 500, so b goes first. Taken as one value
    // in 50 (the default for strings), s would keep 40 rows and stay first.
    const STATUS: &str = "SELECT count(*) FROM f JOIN s ON f_a = s_key JOIN b ON f_b = b_key \
                          WHERE s_status = 'F' AND b_val < 50";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_string_column_of_few_values_keeps_its_share() {
        assert_below(&[], STATUS, "b_key", "s_key").await;
        assert_below(
            &["SET augur.string_distinct = false"],
            STATUS,
            "s_key",
            "b_key",
        )
        .await;
    }

    // A distinct count only ANALYZE measures: without dictionary pages, `s_status` is
    // taken as one value in 50 and s goes first; analyzed, it has two and b goes first.
    #[tokio::test(flavor = "multi_thread")]
    async fn analyze_gives_the_distinct_count_no_scan_reports() {
        let off = "SET augur.string_distinct = false";
        assert_below(&[off, "ANALYZE s"], STATUS, "b_key", "s_key").await;
        // Only the columns asked for are measured.
        assert_below(&[off, "ANALYZE s (s_key)"], STATUS, "s_key", "b_key").await;
        // A replaced table's statistics go with it.
        let replaced = "CREATE OR REPLACE EXTERNAL TABLE s STORED AS PARQUET \
                        LOCATION 'DIR/s.parquet'";
        assert_below(&[off, "ANALYZE", replaced], STATUS, "s_key", "b_key").await;
    }

    // CSV scans report no row counts, so joins over CSV tables keep their written order
    // until ANALYZE counts them.
    #[tokio::test(flavor = "multi_thread")]
    async fn csv_tables_are_ordered_once_analyzed() {
        let mut csv = vec![];
        for t in ["f", "a", "b"] {
            csv.push(format!(
                "COPY (SELECT * FROM {t}) TO 'DIR/{t}.csv' STORED AS CSV"
            ));
            csv.push(format!(
                "CREATE EXTERNAL TABLE c{t} STORED AS CSV LOCATION 'DIR/{t}.csv' \
                 OPTIONS ('format.has_header' 'true')"
            ));
        }
        let sql = TWO_FILTERS
            .replace("FROM f", "FROM cf")
            .replace("JOIN b", "JOIN cb")
            .replace("JOIN a", "JOIN ca");
        let csv: Vec<&str> = csv.iter().map(String::as_str).collect();
        assert_below(&csv, &sql, "b_key", "a_key").await;
        let analyzed: Vec<&str> = csv.iter().copied().chain(["ANALYZE"]).collect();
        assert_below(&analyzed, &sql, "a_key", "b_key").await;
    }

    // `a_val >= 900 AND a_val < 1100` keeps 200 rows of a (the overlap of 55% and 55% of its
    // range), so a joins f before b (400 rows); multiplied, the shares would keep 605.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_range_bounded_on_both_sides_keeps_the_overlap() {
        let sql = "SELECT count(*) FROM f JOIN b ON f_b = b_key JOIN a ON f_a = a_key \
                   WHERE a_val >= 900 AND a_val < 1100 AND b_val < 400";
        assert_below(&[], sql, "a_key", "b_key").await;
    }

    /// Stacked projections of columns between two joins of a tree are looked through.
    #[test]
    fn stacked_projections_stay_in_the_tree() {
        use datafusion::logical_expr::{LogicalPlanBuilder, col, table_scan};
        let scan = |name: &str, column: &str| {
            let schema = datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    column,
                    datafusion::arrow::datatypes::DataType::Int64,
                    true,
                ),
            ]);
            table_scan(Some(name), &schema, None)
                .expect("scan")
                .build()
                .expect("plan")
        };
        let join = LogicalPlanBuilder::from(scan("x", "k"))
            .join(
                scan("y", "j"),
                datafusion::logical_expr::JoinType::Inner,
                (vec!["k"], vec!["j"]),
                None,
            )
            .expect("join")
            .build()
            .expect("plan");
        let stacked = LogicalPlanBuilder::from(join)
            .project(vec![col("k"), col("j")])
            .and_then(|b| b.project(vec![col("k"), col("j")]))
            .and_then(|b| b.project(vec![col("k")]))
            .and_then(|b| b.build())
            .expect("projections");
        assert!(super::is_inner(super::tree_child(&stacked)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_good_written_order_is_kept() {
        let plan = physical(
            &[],
            "SELECT count(*) FROM f JOIN a ON f_a = a_key JOIN b ON f_b = b_key \
             WHERE a_val < 10 AND b_val < 1000",
        )
        .await;
        assert!(
            join_depth(&plan, "a_key") > join_depth(&plan, "b_key"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stored_tables_are_estimated_from_the_delta_log() {
        // Stored (Delta) tables: row counts from their scans, ranges from the log.
        let stored = [
            "CREATE TABLE sf AS SELECT * FROM f",
            "CREATE TABLE sa AS SELECT * FROM a",
            "CREATE TABLE sb AS SELECT * FROM b",
        ];
        let sql = "SELECT count(*) FROM sf JOIN sb ON f_b = b_key JOIN sa ON f_a = a_key \
                   WHERE a_val < 10 AND b_val < 1000";
        assert_below(&stored, sql, "a_key", "b_key").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_composite_key_is_not_taken_as_independent_keys() {
        // g ⋈ bc on (b, c) keeps all 20,000 rows of g: c is a function of b. Multiplying the
        // keys' shares (1/2000 × 1/100) would estimate 200 rows and keep that join first.
        let tables = [
            "CREATE TABLE g AS SELECT v AS g_a, v % 2000 AS g_b, v % 100 AS g_c \
             FROM generate_series(0, 19999) t(v)",
            "CREATE TABLE bc AS SELECT v AS bc_b, v % 100 AS bc_c FROM generate_series(0, 1999) t(v)",
        ];
        let sql = "SELECT count(*) FROM g JOIN bc ON g_b = bc_b AND g_c = bc_c \
                   JOIN a ON g_a = a_key WHERE a_val < 1000";
        assert_below(&tables, sql, "a_key", "bc_b").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn keys_equal_through_a_third_relation_join_directly() {
        // The query joins n to big only, but small_n = big_n = n_key: small (200 rows) joins
        // the one row of n first (2 rows), then big; through big, n would keep 200 rows first.
        let tables = [
            "CREATE TABLE big AS SELECT v % 100 AS big_n FROM generate_series(0, 19999) t(v)",
            "CREATE TABLE small AS SELECT v % 100 AS small_n FROM generate_series(0, 199) t(v)",
            "CREATE TABLE n AS SELECT v AS n_key, v AS n_val FROM generate_series(0, 99) t(v)",
        ];
        let sql = "SELECT count(*) FROM big JOIN small ON big_n = small_n \
                   JOIN n ON big_n = n_key WHERE n_val < 1";
        let plan = physical(&tables, sql).await;
        let joins: Vec<&str> = plan
            .lines()
            .filter(|l| l.contains("HashJoinExec"))
            .collect();
        assert!(
            joins
                .iter()
                .any(|l| l.contains("n_key") && l.contains("small_n")),
            "n should join small directly:\n{plan}"
        );
        assert!(
            join_depth(&plan, "n_key") > join_depth(&plan, "big_n"),
            "{plan}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn disconnected_relations_keep_their_order() {
        // c is joined to nothing but by a cross join: no key connects it, so nothing moves.
        let sql = "SELECT count(*) FROM f JOIN b ON f_b = b_key CROSS JOIN c JOIN a ON f_a = a_key \
                   WHERE a_val < 10 AND b_val < 1000";
        let on = physical(&[], sql).await;
        let off = physical(&["SET augur.join_order = false"], sql).await;
        assert_eq!(on, off);
    }
}
