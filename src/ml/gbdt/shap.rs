//! Exact path-dependent TreeSHAP (Lundberg, Erion & Lee, "Consistent individualized feature
//! attribution for tree ensembles", Algorithm 2): per-feature contributions of one row that,
//! with the tree's expected value as bias, add up to the row's output. Paths are weighed by
//! the rows that reached each node (`leaf_count` / `internal_count`), as LightGBM's
//! `pred_contrib` does, so imported models explain exactly as LightGBM explains them.

use super::tree::Tree;

/// One feature on the current root-to-leaf path: the fraction of paths through it when the
/// feature is unknown (`zero`) and known (`one`), and the permutation weight `weight`.
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: i64,
    zero: f64,
    one: f64,
    weight: f64,
}

/// What TreeSHAP needs of a tree besides the tree, computed once for many rows.
#[derive(Debug, Clone)]
pub struct Summary {
    pub max_depth: usize,
    pub expected_value: f64,
    /// Per internal node, the share of its rows that went left and right.
    shares: Vec<(f64, f64)>,
}

impl Summary {
    pub fn of(tree: &Tree) -> Summary {
        let shares = (0..tree.num_leaves.saturating_sub(1))
            .map(|n| {
                let cover = tree.count(n as i32);
                (
                    tree.count(tree.left_child[n]) / cover,
                    tree.count(tree.right_child[n]) / cover,
                )
            })
            .collect();
        Summary {
            max_depth: tree.max_depth(),
            expected_value: tree.expected_value(),
            shares,
        }
    }
}

/// Add `phi[f]` += contribution of feature f for one row, and `phi[phi.len() − 1]` += the
/// tree's expected value. `row[f]` is the row's value of feature f (NaN when missing).
pub fn tree_shap(
    tree: &Tree,
    summary: &Summary,
    row: &[f64],
    phi: &mut [f64],
    scratch: &mut Scratch,
) {
    if let Some(bias) = phi.last_mut() {
        *bias += summary.expected_value;
    }
    if tree.num_leaves <= 1 {
        return;
    }
    let depth = summary.max_depth + 1;
    scratch.path.clear();
    scratch
        .path
        .resize((depth + 1) * (depth + 2) / 2 + 1, PathElement::default());
    let mut walk = Walk {
        tree,
        shares: &summary.shares,
        row,
        phi,
        path: &mut scratch.path,
        factors: &mut scratch.factors,
    };
    walk.recurse(0, 0, 0, 1.0, 1.0, -1);
}

/// Reusable path storage, so that scoring many rows allocates once.
#[derive(Debug, Default)]
pub struct Scratch {
    path: Vec<PathElement>,
    factors: Vec<Factors>,
}

/// The constants of `unwound_sum`'s loop at position i of a path of length `depth`, so the
/// loop multiplies: a division in it sits on the chain from one step to the next.
#[derive(Debug, Clone, Copy, Default)]
struct Factors {
    /// (depth + 1) / (i + 1)
    up: f64,
    /// (depth − i) / (depth + 1)
    down: f64,
    /// (depth + 1) / (depth − i)
    inverse_down: f64,
}

struct Walk<'a> {
    tree: &'a Tree,
    shares: &'a [(f64, f64)],
    row: &'a [f64],
    phi: &'a mut [f64],
    path: &'a mut Vec<PathElement>,
    factors: &'a mut Vec<Factors>,
}

impl Walk<'_> {
    /// Each level keeps its own copy of the path at `parent + depth` in one buffer.
    fn recurse(
        &mut self,
        node: i32,
        depth: usize,
        parent: usize,
        zero: f64,
        one: f64,
        feature: i64,
    ) {
        let start = parent + depth;
        if depth > 0 {
            self.path.copy_within(parent..parent + depth, start);
        }
        extend(&mut self.path[start..], depth, zero, one, feature);
        let tree = self.tree;
        if node < 0 {
            let leaf = tree.leaf_value[!node as usize];
            let path = &self.path[start..];
            let d1 = (depth + 1) as f64;
            self.factors.clear();
            self.factors.extend((0..depth).map(|i| Factors {
                up: d1 / (i + 1) as f64,
                down: (depth - i) as f64 / d1,
                inverse_down: d1 / (depth - i) as f64,
            }));
            for i in 1..=depth {
                let w = unwound_sum(path, depth, i, self.factors);
                let el = path[i];
                self.phi[el.feature as usize] += w * (el.one - el.zero) * leaf;
            }
            return;
        }
        let n = node as usize;
        let split = tree.split_feature[n];
        let hot = tree.decision(self.row.get(split).copied().unwrap_or(f64::NAN), n);
        let (left_share, right_share) = self.shares[n];
        let (cold, hot_zero, cold_zero) = if hot == tree.left_child[n] {
            (tree.right_child[n], left_share, right_share)
        } else {
            (tree.left_child[n], right_share, left_share)
        };
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        let mut depth = depth;
        // A feature split on earlier in the path is taken out and put back in at this node.
        if let Some(k) = (0..=depth).find(|k| self.path[start + k].feature == split as i64) {
            incoming_zero = self.path[start + k].zero;
            incoming_one = self.path[start + k].one;
            unwind(&mut self.path[start..], depth, k);
            depth -= 1;
        }
        self.recurse(
            hot,
            depth + 1,
            start,
            hot_zero * incoming_zero,
            incoming_one,
            split as i64,
        );
        self.recurse(
            cold,
            depth + 1,
            start,
            cold_zero * incoming_zero,
            0.0,
            split as i64,
        );
    }
}

fn extend(path: &mut [PathElement], depth: usize, zero: f64, one: f64, feature: i64) {
    path[depth] = PathElement {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    let d1 = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / d1;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / d1;
    }
}

fn unwind(path: &mut [PathElement], depth: usize, index: usize) {
    let (one, zero) = (path[index].one, path[index].zero);
    let d1 = (depth + 1) as f64;
    let mut next_one = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next_one * d1 / ((i + 1) as f64 * one);
            next_one = kept - path[i].weight * zero * (depth - i) as f64 / d1;
        } else {
            path[i].weight = path[i].weight * d1 / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total permutation weight of the path with element `index` taken out.
fn unwound_sum(path: &[PathElement], depth: usize, index: usize, factors: &[Factors]) -> f64 {
    let (one, zero) = (path[index].one, path[index].zero);
    let mut total = 0.0;
    if one != 0.0 {
        let inverse_one = 1.0 / one;
        let mut next_one = path[depth].weight;
        for i in (0..depth).rev() {
            let w = next_one * factors[i].up * inverse_one;
            total += w;
            next_one = path[i].weight - w * zero * factors[i].down;
        }
    } else {
        let inverse_zero = 1.0 / zero;
        for i in (0..depth).rev() {
            total += path[i].weight * inverse_zero * factors[i].inverse_down;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::super::tree::{DEFAULT_LEFT, MISSING_NAN};
    use super::*;

    /// A depth-3 tree splitting on feature 0 twice, and on features 1 and 2.
    fn tree() -> Tree {
        // node0: f0 <= 0.5 ? node1 : node2
        // node1: f1 <= 0.5 ? leaf0 : node3      node2: f0 <= 2.5 ? leaf1 : leaf2
        // node3: f2 <= 0.5 ? leaf3 : leaf4
        Tree {
            num_leaves: 5,
            split_feature: vec![0, 1, 0, 2],
            split_gain: vec![0.0; 4],
            threshold: vec![0.5, 0.5, 2.5, 0.5],
            decision_type: vec![DEFAULT_LEFT | (MISSING_NAN << 2); 4],
            left_child: vec![1, !0, !1, !3],
            right_child: vec![2, 3, !2, !4],
            leaf_value: vec![1.0, -2.0, 3.5, 0.25, -1.5],
            leaf_weight: vec![0.0; 5],
            leaf_count: vec![30, 25, 15, 20, 10],
            internal_value: vec![0.0; 4],
            internal_weight: vec![0.0; 4],
            internal_count: vec![100, 60, 40, 30],
            cat_boundaries: vec![],
            cat_threshold: vec![],
            shrinkage: 1.0,
        }
    }

    /// E[f(x) | x_S]: follow x where the feature is known, average children by cover otherwise.
    fn conditional(t: &Tree, x: &[f64], known: &[bool], node: i32) -> f64 {
        if node < 0 {
            return t.leaf_value[!node as usize];
        }
        let n = node as usize;
        let f = t.split_feature[n];
        if known[f] {
            return conditional(t, x, known, t.decision(x[f], n));
        }
        let (l, r) = (t.left_child[n], t.right_child[n]);
        (t.count(l) * conditional(t, x, known, l) + t.count(r) * conditional(t, x, known, r))
            / t.count(node)
    }

    /// Shapley values by enumerating every subset of the other features.
    fn brute_force(t: &Tree, x: &[f64]) -> Vec<f64> {
        let m = x.len();
        let fact = |k: usize| (1..=k).map(|v| v as f64).product::<f64>();
        (0..m)
            .map(|i| {
                let mut phi = 0.0;
                for mask in 0..(1usize << m) {
                    if mask & (1 << i) != 0 {
                        continue;
                    }
                    let mut known: Vec<bool> = (0..m).map(|j| mask & (1 << j) != 0).collect();
                    let s = known.iter().filter(|k| **k).count();
                    let without = conditional(t, x, &known, 0);
                    known[i] = true;
                    let with = conditional(t, x, &known, 0);
                    phi += fact(s) * fact(m - s - 1) / fact(m) * (with - without);
                }
                phi
            })
            .collect()
    }

    #[test]
    fn matches_shapley_values_by_enumeration() {
        let t = tree();
        let mut scratch = Scratch::default();
        for x in [
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 1.0],
            [1.0, 1.0, 0.0],
            [3.0, 0.0, 1.0],
            [f64::NAN, 1.0, 0.0],
        ] {
            let mut phi = vec![0.0; 4];
            tree_shap(&t, &Summary::of(&t), &x, &mut phi, &mut scratch);
            let want = brute_force(&t, &x);
            for f in 0..3 {
                assert!(
                    (phi[f] - want[f]).abs() < 1e-12,
                    "{x:?} f{f}: {} vs {}",
                    phi[f],
                    want[f]
                );
            }
            let output = t.leaf_value[t.leaf(|f| x[f])];
            let total: f64 = phi.iter().sum();
            assert!((total - output).abs() < 1e-12, "{total} vs {output}");
        }
    }
}
