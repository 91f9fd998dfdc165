//! The join graph of one tree of inner joins: its relations, its key columns grouped into
//! classes of columns the keys make equal (`a = b AND b = c` puts a, b and c in one class,
//! so a relation joins any other of its class, not only the one the query named), and the
//! estimated rows of any subset of relations joined; the dynamic program over connected
//! subsets that finds the cheapest order, and the tree of joins that order builds.

use std::sync::Arc;

use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan};

use super::estimates::Estimates;
use super::join_order::{MAX_RELATIONS, is_inner, tree_child};

/// One key column of a class: its relation, the column, and its distinct values.
#[derive(Debug, Clone)]
struct Member {
    relation: usize,
    column: Column,
    distinct: f64,
}

/// A tree of inner joins taken apart.
#[derive(Debug)]
pub struct Graph {
    relations: Vec<Arc<LogicalPlan>>,
    rows: Vec<f64>,
    /// Key columns the tree's keys make equal, at most one per relation in each class.
    classes: Vec<Vec<Member>>,
    /// Pairs of relations sharing two classes or more (a composite key) and the least share
    /// of their cross product the shared keys can keep: their distinct combinations are at
    /// most the smaller table's rows, so partsupp ⋈ lineitem on (partkey, suppkey) keeps
    /// every lineitem row, not 1/(200K × 10K) of them.
    floors: Vec<(usize, usize, f64)>,
    /// Other conditions, with the relations they read.
    conditions: Vec<(Expr, u32, f64)>,
    /// The relations under each join of the tree as written.
    joins: Vec<u32>,
}

impl Graph {
    /// `None` when the tree has a key that is not a column, a column found in no relation or
    /// in two, two columns of one relation in one class, fewer than three relations or too
    /// many, or relations no key connects.
    pub fn of(tree: &LogicalPlan, estimates: &Estimates) -> Option<Graph> {
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
        let mut classes: Vec<Vec<(usize, Column)>> = vec![];
        let mut other = vec![];
        for (l, r) in pairs {
            let (a, b) = (owner(&l)?, owner(&r)?);
            if a == b {
                other.push(Expr::Column(l).eq(Expr::Column(r)));
                continue;
            }
            let (l, r) = ((a, l), (b, r));
            let find = |classes: &[Vec<(usize, Column)>], m: &(usize, Column)| {
                classes.iter().position(|c| c.contains(m))
            };
            match (find(&classes, &l), find(&classes, &r)) {
                (Some(x), Some(y)) if x == y => {}
                (Some(x), Some(y)) => {
                    let merged = classes.swap_remove(x.max(y));
                    classes[x.min(y)].extend(merged);
                }
                (Some(x), None) => classes[x].push(r),
                (None, Some(y)) => classes[y].push(l),
                (None, None) => classes.push(vec![l, r]),
            }
        }
        let classes = classes
            .into_iter()
            .map(|class| {
                let mut seen = 0u32;
                class
                    .into_iter()
                    .map(|(relation, column)| {
                        // Two columns of one relation equal through a class: that equality
                        // would need a filter of its own; such trees keep their order.
                        (seen & (1 << relation) == 0).then_some(())?;
                        seen |= 1 << relation;
                        let plan = &relations[relation];
                        let distinct = estimates
                            .distinct(plan, &column)
                            .or_else(|| estimates.rows(plan))?
                            .max(1.0);
                        Some(Member {
                            relation,
                            column,
                            distinct,
                        })
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        let mut floors = vec![];
        for a in 0..relations.len() {
            for b in a + 1..relations.len() {
                let shared: Vec<_> = classes
                    .iter()
                    .filter_map(|c| {
                        let m = c.iter().find(|m| m.relation == a)?;
                        c.iter().any(|m| m.relation == b).then_some(m)
                    })
                    .collect();
                if shared.len() < 2 {
                    continue;
                }
                let table = |i: usize| {
                    classes
                        .iter()
                        .flatten()
                        .find(|m| m.relation == i)
                        .and_then(|m| estimates.table_rows(&relations[m.relation], &m.column))
                };
                if let (Some(x), Some(y)) = (table(a), table(b)) {
                    floors.push((a, b, 1.0 / x.min(y).max(1.0)));
                }
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
            classes,
            floors,
            conditions,
            joins,
        };
        let all = (1u32 << graph.relations.len()) - 1;
        graph.connected(all).then_some(graph)
    }

    /// The estimated rows of every subset of relations joined, by its bit set: the set
    /// without its highest relation, times that relation's rows and the share its keys
    /// keep (per class, that of its member with the fewest distinct values among the
    /// joined ones, as the class's values are already equal there), times the conditions
    /// the relation completes.
    fn all_rows(&self) -> Vec<f64> {
        let n = self.relations.len();
        let mut rows = vec![1.0; 1 << n];
        for set in 1usize..1 << n {
            let r = usize::BITS - 1 - set.leading_zeros();
            let bit = 1u32 << r;
            let rest = set as u32 & !bit;
            let r = r as usize;
            let mut estimate = rows[rest as usize] * self.rows[r];
            let mut shares = vec![];
            for (k, class) in self.classes.iter().enumerate() {
                let Some(own) = class.iter().find(|m| m.relation == r) else {
                    continue;
                };
                let joined = class
                    .iter()
                    .filter(|m| rest & (1 << m.relation) != 0)
                    .map(|m| m.distinct)
                    .reduce(f64::min);
                if let Some(other) = joined {
                    shares.push((k, 1.0 / own.distinct.min(other)));
                }
            }
            let mut share: f64 = shares.iter().map(|(_, s)| s).product();
            for &(a, b, floor) in &self.floors {
                let partner = if a == r {
                    b
                } else if b == r {
                    a
                } else {
                    continue;
                };
                if rest & (1 << partner) == 0 {
                    continue;
                }
                let together: f64 = shares
                    .iter()
                    .filter(|(k, _)| self.classes[*k].iter().any(|m| m.relation == partner))
                    .map(|(_, s)| s)
                    .product();
                if together < floor {
                    share *= floor / together;
                }
            }
            estimate *= share.min(1.0);
            for (_, mask, s) in &self.conditions {
                if mask & bit != 0 && mask & set as u32 == *mask && mask.count_ones() > 1 {
                    estimate *= s;
                }
            }
            rows[set] = estimate.max(1.0);
        }
        rows
    }

    /// Relations sharing a class with one in `set`.
    fn neighbours(&self, set: u32) -> u32 {
        let mut out = 0;
        for class in &self.classes {
            let mask = class.iter().fold(0u32, |m, c| m | 1 << c.relation);
            if mask & set != 0 {
                out |= mask;
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

    /// The cheapest order (fewest intermediate rows), built, when it is estimated at under
    /// `gain` of the written order's.
    pub fn cheaper_order(&self, gain: f64) -> Option<Result<LogicalPlan>> {
        let n = self.relations.len();
        let all = (1usize << n) - 1;
        let rows = self.all_rows();
        // best[set] = (intermediate rows, left part) for connected sets.
        let mut best: Vec<Option<(f64, u32)>> = vec![None; all + 1];
        for set in 1..=all {
            let s = set as u32;
            if s.count_ones() == 1 {
                best[set] = Some((0.0, 0));
                continue;
            }
            if !self.connected(s) {
                continue;
            }
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
        let written: f64 = self.joins.iter().map(|&set| rows[set as usize]).sum();
        if cost >= written * gain {
            return None;
        }
        Some(self.build(all as u32, &best, &rows))
    }

    /// The join of `set` as `best` splits it, the smaller estimated side on the left (the
    /// hash join's build side), joined on one key pair per class the two sides share.
    fn build(&self, set: u32, best: &[Option<(f64, u32)>], rows: &[f64]) -> Result<LogicalPlan> {
        if set.count_ones() == 1 {
            let i = set.trailing_zeros() as usize;
            return Ok(self.relations[i].as_ref().clone());
        }
        let part = best[set as usize].map_or(0, |(_, part)| part);
        let (mut left, mut right) = (part, set & !part);
        if rows[left as usize] > rows[right as usize] {
            std::mem::swap(&mut left, &mut right);
        }
        let on = self
            .classes
            .iter()
            .filter_map(|class| {
                let l = class.iter().find(|m| left & (1 << m.relation) != 0)?;
                let r = class.iter().find(|m| right & (1 << m.relation) != 0)?;
                Some((
                    Expr::Column(l.column.clone()),
                    Expr::Column(r.column.clone()),
                ))
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
            Arc::new(self.build(left, best, rows)?),
            Arc::new(self.build(right, best, rows)?),
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
