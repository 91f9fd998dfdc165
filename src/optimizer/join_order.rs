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
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{OptimizerContext, OptimizerRule};

use super::estimates::Estimates;

/// Larger trees keep their order (the search is 3^n).
const MAX_RELATIONS: usize = 12;
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
    session
        .config_options()
        .extensions
        .get::<crate::cluster::AugurOptions>()
        .is_none_or(|o| o.join_order)
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

fn is_inner(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(join) if join.join_type == JoinType::Inner
        && join.null_equality == NullEquality::NullEqualsNothing
        && !join.null_aware)
}

/// A projection that only passes columns on, between two joins of a tree, is looked through.
fn tree_child(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p)
            if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) && is_inner(&p.input) =>
        {
            tree_child(&p.input)
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
    match Graph::of(&tree, estimates).and_then(|g| g.cheaper_order(&tree)) {
        Some(order) => Ok(Transformed::yes(order?)),
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

/// A tree of inner joins taken apart.
struct Graph {
    relations: Vec<Arc<LogicalPlan>>,
    rows: Vec<f64>,
    /// Key pairs: (relation, column) = (relation, column), and the pair's selectivity.
    keys: Vec<((usize, Column), (usize, Column), f64)>,
    /// Other conditions, with the relations they read.
    conditions: Vec<(Expr, u32, f64)>,
    /// The relations under each join of the tree as written.
    joins: Vec<u32>,
}

impl Graph {
    /// `None` when the tree has a key that is not a column, a column found in no relation or
    /// in two, too many relations, or relations no key connects.
    fn of(tree: &LogicalPlan, estimates: &Estimates) -> Option<Graph> {
        let mut relations = vec![];
        let mut pairs = vec![];
        let mut conditions = vec![];
        let mut joins = vec![];
        collect(
            tree,
            &mut relations,
            &mut pairs,
            &mut conditions,
            &mut joins,
        )?;
        if relations.len() < 3 || relations.len() > MAX_RELATIONS {
            return None;
        }
        let rows = relations
            .iter()
            .map(|r| estimates.rows(r))
            .collect::<Option<Vec<_>>>()?;
        let owner = |c: &Column| {
            let mut owners = relations
                .iter()
                .enumerate()
                .filter(|(_, r)| r.schema().has_column(c));
            match (owners.next(), owners.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        };
        let mut keys = vec![];
        let mut other = vec![];
        for (l, r) in pairs {
            let (a, b) = (owner(&l)?, owner(&r)?);
            if a == b {
                other.push(Expr::Column(l).eq(Expr::Column(r)));
            } else {
                let s = estimates.key_selectivity((&relations[a], &l), (&relations[b], &r));
                keys.push(((a, l), (b, r), s));
            }
        }
        let conditions = conditions
            .into_iter()
            .chain(other)
            .map(|e| {
                let mut mask = 0u32;
                for c in e.column_refs() {
                    mask |= 1 << owner(c)?;
                }
                let s = estimates.selectivity(&e, tree);
                Some((e, mask, s))
            })
            .collect::<Option<Vec<_>>>()?;
        let graph = Graph {
            relations,
            rows,
            keys,
            conditions,
            joins,
        };
        let all = (1u32 << graph.relations.len()) - 1;
        graph.connected(all).then_some(graph)
    }

    /// Rows of the join of the relations in `set`.
    fn rows_of(&self, set: u32) -> f64 {
        let mut rows: f64 = (0..self.relations.len())
            .filter(|i| set & (1 << i) != 0)
            .map(|i| self.rows[i])
            .product();
        for ((a, _), (b, _), s) in &self.keys {
            if set & (1 << a) != 0 && set & (1 << b) != 0 {
                rows *= s;
            }
        }
        for (_, mask, s) in &self.conditions {
            if mask & set == *mask && mask.count_ones() > 1 {
                rows *= s;
            }
        }
        rows.max(1.0)
    }

    /// Relations directly joined by a key to one in `set`.
    fn neighbours(&self, set: u32) -> u32 {
        let mut out = 0;
        for ((a, _), (b, _), _) in &self.keys {
            if set & (1 << a) != 0 {
                out |= 1 << b;
            }
            if set & (1 << b) != 0 {
                out |= 1 << a;
            }
        }
        out & !set
    }

    fn connected(&self, set: u32) -> bool {
        let mut reached = set & set.wrapping_neg();
        loop {
            let next = (reached | self.neighbours(reached)) & set;
            if next == reached {
                return reached == set;
            }
            reached = next;
        }
    }

    /// The cheapest order, built, when it is clearly cheaper than `tree`'s.
    fn cheaper_order(&self, tree: &LogicalPlan) -> Option<Result<LogicalPlan>> {
        let n = self.relations.len();
        let all = (1usize << n) - 1;
        // best[set] = (intermediate rows, left part) for connected sets.
        let mut best: Vec<Option<(f64, u32)>> = vec![None; all + 1];
        let mut rows = vec![0.0; all + 1];
        for set in 1..=all {
            let s = set as u32;
            if s.count_ones() == 1 {
                best[set] = Some((0.0, 0));
                continue;
            }
            if !self.connected(s) {
                continue;
            }
            rows[set] = self.rows_of(s);
            let lowest = s & s.wrapping_neg();
            let mut part = (s - 1) & s;
            while part > 0 {
                let rest = s & !part;
                if part & lowest != 0
                    && let (Some((a, _)), Some((b, _))) = (best[part as usize], best[rest as usize])
                    && self.neighbours(part) & rest != 0
                {
                    let cost = a + b + rows[set];
                    if best[set].is_none_or(|(c, _)| cost < c) {
                        best[set] = Some((cost, part));
                    }
                }
                part = (part - 1) & s;
            }
        }
        let (cost, _) = best[all]?;
        let written: f64 = self.joins.iter().map(|&set| self.rows_of(set)).sum();
        if cost >= written * REORDER_GAIN {
            return None;
        }
        Some(
            self.build(all as u32, &best)
                .and_then(|plan| restore_columns(plan, tree)),
        )
    }

    /// The join of `set` as `best` splits it, the smaller estimated side on the left (the
    /// hash join's build side).
    fn build(&self, set: u32, best: &[Option<(f64, u32)>]) -> Result<LogicalPlan> {
        if set.count_ones() == 1 {
            let i = set.trailing_zeros() as usize;
            return Ok(self.relations[i].as_ref().clone());
        }
        let part = best[set as usize].map_or(0, |(_, part)| part);
        let (mut left, mut right) = (part, set & !part);
        if self.rows_of(left) > self.rows_of(right) {
            std::mem::swap(&mut left, &mut right);
        }
        let on = self
            .keys
            .iter()
            .filter_map(|((a, ca), (b, cb), _)| {
                let (a, b) = (1u32 << a, 1u32 << b);
                if a & left != 0 && b & right != 0 {
                    Some((Expr::Column(ca.clone()), Expr::Column(cb.clone())))
                } else if b & left != 0 && a & right != 0 {
                    Some((Expr::Column(cb.clone()), Expr::Column(ca.clone())))
                } else {
                    None
                }
            })
            .collect();
        // Each condition on the lowest join with all its relations (one relation's own: on
        // the join that brings that relation in).
        let placed_below = |side: u32, mask: u32| mask & side == mask && side.count_ones() > 1;
        let all = (1u32 << self.relations.len()) - 1;
        let filter = conjunction(self.conditions.iter().filter_map(|(e, mask, _)| {
            let here = if *mask == 0 {
                set == all
            } else {
                mask & set == *mask && !placed_below(left, *mask) && !placed_below(right, *mask)
            };
            here.then(|| e.clone())
        }));
        let join = Join::try_new(
            Arc::new(self.build(left, best)?),
            Arc::new(self.build(right, best)?),
            on,
            filter,
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?;
        Ok(LogicalPlan::Join(join))
    }
}

/// The relations, key pairs, conditions and joins (as relation sets) of an inner-join tree;
/// returns the set of relations under `plan`, `None` for a key that is not a column pair.
fn collect(
    plan: &LogicalPlan,
    relations: &mut Vec<Arc<LogicalPlan>>,
    pairs: &mut Vec<(Column, Column)>,
    conditions: &mut Vec<Expr>,
    joins: &mut Vec<u32>,
) -> Option<u32> {
    let plan = tree_child(plan);
    let LogicalPlan::Join(join) = plan else {
        if relations.len() >= MAX_RELATIONS {
            return None;
        }
        relations.push(Arc::new(plan.clone()));
        return Some(1 << (relations.len() - 1));
    };
    if !is_inner(plan) {
        relations.push(Arc::new(plan.clone()));
        return Some(1 << (relations.len() - 1));
    }
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
            return None;
        };
        pairs.push((l.clone(), r.clone()));
    }
    if let Some(filter) = &join.filter {
        conditions.extend(split_conjunction(filter).into_iter().cloned());
    }
    let left = collect(&join.left, relations, pairs, conditions, joins)?;
    let right = collect(&join.right, relations, pairs, conditions, joins)?;
    joins.push(left | right);
    Some(left | right)
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
            format!("CREATE EXTERNAL TABLE f STORED AS PARQUET LOCATION '{d}/f.parquet'"),
            format!("CREATE EXTERNAL TABLE a STORED AS PARQUET LOCATION '{d}/a.parquet'"),
            format!("CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{d}/b.parquet'"),
            format!("CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION '{d}/c.parquet'"),
        ]
    }

    /// The physical plan of `sql` after `setup` and `extra`.
    async fn physical(extra: &[&str], sql: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut statements = setup(dir.path());
        statements.extend(extra.iter().map(|s| s.to_string()));
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
        let plan = physical(&stored, sql).await;
        assert!(
            join_depth(&plan, "a_key") > join_depth(&plan, "b_key"),
            "sa should join sf below sb:\n{plan}"
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
