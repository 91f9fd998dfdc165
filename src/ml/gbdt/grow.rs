//! Growing one tree leaf-wise, as LightGBM does: always split the leaf whose best split
//! gains most, until `num_leaves`; histograms built for the smaller child only, the larger
//! one's taken as parent − smaller; rows kept partitioned so each leaf is a contiguous range.

use std::ops::Range;

use rayon::prelude::*;

use super::hist::{self, Binned, Hist};
use super::params::TreeParams;
use super::split::{FeatureMeta, Search, Split, Sums};
use super::tree::{CATEGORICAL, DEFAULT_LEFT, MISSING_NAN, Tree};
use crate::prefetch::prefetch;

/// Rows above which a leaf is partitioned on several threads.
const PARALLEL_PARTITION: usize = 16 * 1024;

/// A split as bins see it: how training (and validation) rows are routed.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRule {
    pub feature: usize,
    pub categorical: bool,
    /// Numeric: bins ≤ threshold go left; `missing_bin` goes left iff `default_left`.
    pub threshold: u8,
    pub missing_bin: u8,
    pub default_left: bool,
    /// Categorical: bins going left, as a 256-bit set.
    pub left_bins: [u64; 4],
}

impl NodeRule {
    pub fn goes_left(&self, bin: u8) -> bool {
        if self.categorical {
            (self.left_bins[(bin >> 6) as usize] >> (bin & 63)) & 1 == 1
        } else if bin == self.missing_bin {
            self.default_left
        } else {
            bin <= self.threshold
        }
    }
}

/// A grown tree: outputs not yet shrunk; thresholds still bins (`rules`, one per node).
pub struct Grown {
    pub tree: Tree,
    pub rules: Vec<NodeRule>,
    /// Each leaf's range in the row array `grow` was given (now partitioned).
    pub leaf_rows: Vec<Range<usize>>,
}

impl Grown {
    /// The leaf a row reaches; `bin(f)` is its bin of feature f.
    pub fn leaf_of(&self, bin: impl Fn(usize) -> u8) -> usize {
        if self.tree.num_leaves <= 1 {
            return 0;
        }
        let mut node = 0usize;
        loop {
            let rule = &self.rules[node];
            let next = if rule.goes_left(bin(rule.feature)) {
                self.tree.left_child[node]
            } else {
                self.tree.right_child[node]
            };
            if next < 0 {
                return !next as usize;
            }
            node = next as usize;
        }
    }
}

pub struct Grower<'a> {
    pub binned: &'a Binned,
    /// Quantized (gradient, hessian) per row of `binned`.
    pub gh: &'a [[i64; 2]],
    pub features: &'a [FeatureMeta],
    /// Features this tree may split on (feature_fraction).
    pub used: &'a [bool],
    pub params: &'a TreeParams,
    pub grad_scale: f64,
    pub hess_scale: f64,
    /// Checked between splits; true stops growing (the tree is dropped).
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

struct Leaf {
    rows: Range<usize>,
    sums: Sums,
    depth: usize,
    bounds: (f64, f64),
    hist: Option<Hist>,
    best: Option<Split>,
}

impl Grower<'_> {
    fn search(&self, bounds: (f64, f64)) -> Search<'_> {
        Search {
            params: self.params,
            grad_scale: self.grad_scale,
            hess_scale: self.hess_scale,
            constrained: self.features.iter().any(|f| f.monotone != 0),
            bounds,
        }
    }

    /// The best split of a leaf over the features in use, ties to the lower feature index.
    fn best_split(&self, leaf: &Leaf) -> Option<Split> {
        let p = self.params;
        if leaf.sums.n < 2 * p.min_data_in_leaf.max(1) as i64
            || (p.max_depth > 0 && leaf.depth as i64 >= p.max_depth)
        {
            return None;
        }
        let hist = leaf.hist.as_ref()?;
        let search = self.search(leaf.bounds);
        let candidates: Vec<Option<Split>> = (0..self.features.len())
            .into_par_iter()
            .map(|f| {
                if !self.used[f] || self.features[f].bins < 2 {
                    return None;
                }
                search.best(f, &self.features[f], &hist[f], leaf.sums)
            })
            .collect();
        let mut best: Option<Split> = None;
        for s in candidates.into_iter().flatten() {
            if best.as_ref().is_none_or(|b| s.gain > b.gain) {
                best = Some(s);
            }
        }
        best
    }

    /// Grow one tree over `rows` (the rows in the bag, reordered in place); `None` when
    /// cancelled.
    pub fn grow(&self, rows: &mut [u32]) -> Option<Grown> {
        let p = self.params;
        let root_hist = hist::build(self.binned, rows, self.gh, self.used);
        let (g, h) = rows.iter().fold((0i64, 0i64), |(g, h), r| {
            let e = self.gh[*r as usize];
            (g + e[0], h + e[1])
        });
        let sums = Sums {
            g,
            h,
            n: rows.len() as i64,
        };
        let root_output = self
            .search((f64::NEG_INFINITY, f64::INFINITY))
            .output(sums, p.lambda_l2);
        let mut tree = Tree {
            num_leaves: 1,
            leaf_value: vec![root_output],
            leaf_weight: vec![sums.h as f64 / self.hess_scale],
            leaf_count: vec![sums.n as u64],
            shrinkage: 1.0,
            ..Default::default()
        };
        let mut rules: Vec<NodeRule> = vec![];
        let mut parents: Vec<i32> = vec![-1];
        let mut leaves = vec![Leaf {
            rows: 0..rows.len(),
            sums,
            depth: 0,
            bounds: (f64::NEG_INFINITY, f64::INFINITY),
            hist: Some(root_hist),
            best: None,
        }];
        leaves[0].best = self.best_split(&leaves[0]);
        while tree.num_leaves < p.num_leaves {
            if (self.cancelled)() {
                return None;
            }
            let mut pick: Option<usize> = None;
            for (i, leaf) in leaves.iter().enumerate() {
                if let Some(s) = &leaf.best
                    && s.gain > 0.0
                    && pick.is_none_or(|j| s.gain > leaves[j].best.as_ref().map_or(0.0, |b| b.gain))
                {
                    pick = Some(i);
                }
            }
            let Some(at) = pick else { break };
            let Some(split) = leaves[at].best.take() else {
                break;
            };
            let rule = self.rule(&split);
            let range = leaves[at].rows.clone();
            let left_rows = partition(self.binned, &mut rows[range.clone()], &rule);
            let left_range = range.start..range.start + left_rows;
            let right_range = range.start + left_rows..range.end;
            // The search estimated the children's rows; the partition knows them.
            let mut split = split;
            split.left.n = left_rows as i64;
            split.right.n = (range.len() - left_rows) as i64;
            let new_leaf = tree.num_leaves;
            let node = tree.num_leaves - 1;
            // The tree's arrays, exactly as LightGBM's Tree::Split fills them.
            let parent = parents[at];
            if parent >= 0 {
                let p = parent as usize;
                if tree.left_child[p] == !(at as i32) {
                    tree.left_child[p] = node as i32;
                } else {
                    tree.right_child[p] = node as i32;
                }
            }
            tree.split_feature.push(split.feature);
            tree.split_gain.push(split.gain);
            tree.threshold.push(f64::from(split.threshold));
            tree.decision_type.push(if rule.categorical {
                CATEGORICAL | (MISSING_NAN << 2)
            } else {
                (if rule.default_left { DEFAULT_LEFT } else { 0 }) | (MISSING_NAN << 2)
            });
            tree.left_child.push(!(at as i32));
            tree.right_child.push(!(new_leaf as i32));
            tree.internal_value.push(tree.leaf_value[at]);
            tree.internal_weight.push(tree.leaf_weight[at]);
            tree.internal_count.push(tree.leaf_count[at]);
            tree.leaf_value[at] = split.left_output;
            tree.leaf_weight[at] = split.left.h as f64 / self.hess_scale;
            tree.leaf_count[at] = split.left.n as u64;
            tree.leaf_value.push(split.right_output);
            tree.leaf_weight
                .push(split.right.h as f64 / self.hess_scale);
            tree.leaf_count.push(split.right.n as u64);
            parents[at] = node as i32;
            parents.push(node as i32);
            tree.num_leaves += 1;
            rules.push(rule);

            // Monotone bounds of the children ("basic" method: the midpoint of the outputs).
            let bounds = leaves[at].bounds;
            let (mut left_bounds, mut right_bounds) = (bounds, bounds);
            let monotone = self.features[split.feature].monotone;
            if !self.features[split.feature].categorical && monotone != 0 {
                let mid = (split.left_output + split.right_output) / 2.0;
                if monotone > 0 {
                    left_bounds.1 = left_bounds.1.min(mid);
                    right_bounds.0 = right_bounds.0.max(mid);
                } else {
                    left_bounds.0 = left_bounds.0.max(mid);
                    right_bounds.1 = right_bounds.1.min(mid);
                }
            }
            // Histogram of the smaller child; the larger is the parent's minus it.
            let mut parent_hist = leaves[at].hist.take();
            let left_smaller = split.left.n <= split.right.n;
            let small_range = if left_smaller {
                left_range.clone()
            } else {
                right_range.clone()
            };
            let depth = leaves[at].depth + 1;
            let mut left = Leaf {
                rows: left_range,
                sums: split.left,
                depth,
                bounds: left_bounds,
                hist: None,
                best: None,
            };
            let mut right = Leaf {
                rows: right_range,
                sums: split.right,
                depth,
                bounds: right_bounds,
                hist: None,
                best: None,
            };
            let might_split = |l: &Leaf| {
                l.sums.n >= 2 * p.min_data_in_leaf.max(1) as i64
                    && !(p.max_depth > 0 && l.depth as i64 >= p.max_depth)
            };
            if might_split(&left) || might_split(&right) {
                let small = hist::build(self.binned, &rows[small_range], self.gh, self.used);
                if let Some(large) = parent_hist.as_mut() {
                    hist::subtract(large, &small);
                }
                let large = parent_hist.take();
                if left_smaller {
                    left.hist = Some(small);
                    right.hist = large;
                } else {
                    right.hist = Some(small);
                    left.hist = large;
                }
                left.best = self.best_split(&left);
                right.best = self.best_split(&right);
                // A leaf that will never split needs no histogram.
                for l in [&mut left, &mut right] {
                    if l.best.is_none() {
                        l.hist = None;
                    }
                }
            }
            leaves[at] = left;
            leaves.push(right);
        }
        Some(Grown {
            tree,
            rules,
            leaf_rows: leaves.into_iter().map(|l| l.rows).collect(),
        })
    }

    fn rule(&self, split: &Split) -> NodeRule {
        let meta = &self.features[split.feature];
        let mut left_bins = [0u64; 4];
        for b in &split.categories {
            left_bins[(b >> 6) as usize] |= 1 << (b & 63);
        }
        NodeRule {
            feature: split.feature,
            categorical: meta.categorical,
            threshold: split.threshold,
            missing_bin: meta.value_bins().min(255) as u8,
            default_left: split.default_left,
            left_bins,
        }
    }
}

/// Reorder `rows` so those going left come first (both sides keep their order); returns
/// how many go left. Branch-free: each row is written to both sides and only the side it
/// belongs to advances — the direction of a row is a coin flip the CPU cannot predict.
fn partition(binned: &Binned, rows: &mut [u32], rule: &NodeRule) -> usize {
    let column = binned.column(rule.feature);
    let mut goes = [0usize; 256];
    for (b, g) in goes.iter_mut().enumerate() {
        *g = usize::from(rule.goes_left(b as u8));
    }
    let split = |rows: &[u32], left: &mut Vec<u32>, right: &mut Vec<u32>| {
        left.resize(rows.len(), 0);
        right.resize(rows.len(), 0);
        let (mut nl, mut nr) = (0usize, 0usize);
        for (i, &r) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(i + hist::PREFETCH) {
                prefetch(column, ahead as usize);
            }
            let go = goes[column[r as usize] as usize];
            left[nl] = r;
            right[nr] = r;
            nl += go;
            nr += 1 - go;
        }
        left.truncate(nl);
        right.truncate(nr);
    };
    if rows.len() < PARALLEL_PARTITION || rayon::current_num_threads() <= 1 {
        let (mut left, mut right) = (vec![], vec![]);
        split(rows, &mut left, &mut right);
        rows[..left.len()].copy_from_slice(&left);
        rows[left.len()..].copy_from_slice(&right);
        return left.len();
    }
    let chunk = rows.len().div_ceil(rayon::current_num_threads() * 4);
    let parts: Vec<(Vec<u32>, Vec<u32>)> = rows
        .par_chunks(chunk)
        .map(|part| {
            let (mut l, mut r) = (vec![], vec![]);
            split(part, &mut l, &mut r);
            (l, r)
        })
        .collect();
    let mut w = 0;
    for (l, _) in &parts {
        rows[w..w + l.len()].copy_from_slice(l);
        w += l.len();
    }
    let left_count = w;
    for (_, r) in &parts {
        rows[w..w + r.len()].copy_from_slice(r);
        w += r.len();
    }
    left_count
}
