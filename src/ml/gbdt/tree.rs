//! One regression tree in LightGBM's own shape — the fields of a `Tree=` block of model.txt —
//! so that trained, imported and exported trees are the same thing, and a row takes the same
//! path through it here as in LightGBM (its `NumericalDecision` / `CategoricalDecision`).

use serde::{Deserialize, Serialize};

/// `decision_type` bit: the split is categorical (a set of categories goes left).
pub const CATEGORICAL: u8 = 1;
/// `decision_type` bit: missing values go left.
pub const DEFAULT_LEFT: u8 = 2;
/// Missing-value handling, `(decision_type >> 2) & 3`.
pub const MISSING_NONE: u8 = 0;
pub const MISSING_ZERO: u8 = 1;
pub const MISSING_NAN: u8 = 2;
/// LightGBM's `kZeroThreshold`: values this close to zero count as zero.
pub const ZERO_THRESHOLD: f64 = 1e-35;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub num_leaves: usize,
    /// Per internal node (num_leaves − 1 of them); children < 0 are leaves (`!child`).
    pub split_feature: Vec<usize>,
    #[serde(with = "floats")]
    pub split_gain: Vec<f64>,
    /// The split value; for categorical splits the index of its bitset in `cat_boundaries`.
    #[serde(with = "floats")]
    pub threshold: Vec<f64>,
    pub decision_type: Vec<u8>,
    pub left_child: Vec<i32>,
    pub right_child: Vec<i32>,
    #[serde(with = "floats")]
    pub leaf_value: Vec<f64>,
    #[serde(with = "floats")]
    pub leaf_weight: Vec<f64>,
    pub leaf_count: Vec<u64>,
    #[serde(with = "floats")]
    pub internal_value: Vec<f64>,
    #[serde(with = "floats")]
    pub internal_weight: Vec<f64>,
    pub internal_count: Vec<u64>,
    /// Bitset k of a categorical split is `cat_threshold[cat_boundaries[k]..cat_boundaries[k+1]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cat_boundaries: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cat_threshold: Vec<u32>,
    pub shrinkage: f64,
}

/// Vectors of f64 in JSON with ±inf and NaN written as strings (JSON numbers cannot be):
/// an imported model may carry an infinite threshold.
pub mod floats {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let out: Vec<Value> = values
            .iter()
            .map(|v| {
                if v.is_finite() {
                    Value::Number(*v)
                } else {
                    Value::Text(v.to_string())
                }
            })
            .collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let values = Vec::<Value>::deserialize(d)?;
        values
            .into_iter()
            .map(|v| match v {
                Value::Number(n) => Ok(n),
                Value::Text(t) => t
                    .parse::<f64>()
                    .map_err(|_| serde::de::Error::custom(format!("'{t}' is not a number"))),
            })
            .collect()
    }
}

pub fn missing_type(decision_type: u8) -> u8 {
    (decision_type >> 2) & 3
}

pub fn is_zero(v: f64) -> bool {
    (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&v)
}

/// Whether category `value` is in a bitset of 32-bit words.
pub fn in_bitset(words: &[u32], value: u32) -> bool {
    let word = (value / 32) as usize;
    word < words.len() && (words[word] >> (value % 32)) & 1 == 1
}

/// A bitset holding `values`.
pub fn bitset(values: &[u32]) -> Vec<u32> {
    let words = values
        .iter()
        .map(|v| *v as usize / 32 + 1)
        .max()
        .unwrap_or(0);
    let mut out = vec![0u32; words];
    for v in values {
        out[*v as usize / 32] |= 1 << (v % 32);
    }
    out
}

/// A split node laid out for scoring many rows (one 24-byte record instead of five arrays).
/// Numeric splits whose missing values go by NaN or by 0.0 reduce to one comparison: "left
/// iff v ≤ t" sends NaN right, "left iff !(v > t)" sends it left. Other splits (categorical,
/// missing as zero) keep the tree's own rule.
#[derive(Debug, Clone, Copy)]
pub struct ScoringNode {
    threshold: f64,
    feature: u32,
    rule: Rule,
    /// Left, right: indexed by "goes right", so the step has no data-dependent branch.
    children: [i32; 2],
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    LessOrEqual,
    NotGreater,
    General,
}

impl Tree {
    /// A tree of one leaf with `value`.
    pub fn constant(value: f64, count: u64) -> Tree {
        Tree {
            num_leaves: 1,
            leaf_value: vec![value],
            leaf_weight: vec![0.0],
            leaf_count: vec![count],
            shrinkage: 1.0,
            ..Default::default()
        }
    }

    /// The child a value of the node's feature leads to (LightGBM's `Decision`).
    pub fn decision(&self, fval: f64, node: usize) -> i32 {
        let dt = self.decision_type[node];
        if dt & CATEGORICAL != 0 {
            // LightGBM truncates toward zero (`static_cast<int>`): -0.5 is category 0.
            let whole = fval.trunc();
            if fval.is_nan() || whole < 0.0 || whole > i32::MAX as f64 {
                return self.right_child[node];
            }
            let category = whole as u32;
            let k = self.threshold[node] as usize;
            let words = &self.cat_threshold[self.cat_boundaries[k]..self.cat_boundaries[k + 1]];
            return if in_bitset(words, category) {
                self.left_child[node]
            } else {
                self.right_child[node]
            };
        }
        let missing = missing_type(dt);
        let fval = if fval.is_nan() && missing != MISSING_NAN {
            0.0
        } else {
            fval
        };
        if (missing == MISSING_ZERO && is_zero(fval)) || (missing == MISSING_NAN && fval.is_nan()) {
            return if dt & DEFAULT_LEFT != 0 {
                self.left_child[node]
            } else {
                self.right_child[node]
            };
        }
        if fval <= self.threshold[node] {
            self.left_child[node]
        } else {
            self.right_child[node]
        }
    }

    /// The nodes in scoring layout, for `leaf_of_row`.
    pub fn scoring_nodes(&self) -> Vec<ScoringNode> {
        (0..self.num_leaves.saturating_sub(1))
            .map(|n| {
                let dt = self.decision_type[n];
                // Where a NaN goes: by the default direction, or (missing type None) read
                // as 0.0, which goes where 0.0 ≤ threshold says.
                let nan_left = match missing_type(dt) {
                    _ if dt & CATEGORICAL != 0 => None,
                    MISSING_NAN => Some(dt & DEFAULT_LEFT != 0),
                    MISSING_NONE => Some(0.0 <= self.threshold[n]),
                    _ => None,
                };
                let rule = match nan_left {
                    Some(true) => Rule::NotGreater,
                    Some(false) => Rule::LessOrEqual,
                    None => Rule::General,
                };
                ScoringNode {
                    threshold: self.threshold[n],
                    feature: self.split_feature[n] as u32,
                    rule,
                    children: [self.left_child[n], self.right_child[n]],
                }
            })
            .collect()
    }

    /// The node (≥ 0) or leaf (`!leaf`) one step below node `n` for `row`, by `nodes` =
    /// `scoring_nodes()`: the same as `decision`.
    #[inline(always)]
    fn step(&self, nodes: &[ScoringNode], n: usize, row: &[f64]) -> i32 {
        let node = &nodes[n];
        let v = row[node.feature as usize];
        let right = match node.rule {
            Rule::LessOrEqual => v.is_nan() || v > node.threshold,
            Rule::NotGreater => v > node.threshold,
            Rule::General => return self.decision(v, n),
        };
        node.children[right as usize]
    }

    /// The leaf a row (its feature values in order) reaches, by `nodes` = `scoring_nodes()`:
    /// the same leaf as `leaf`.
    #[inline]
    pub fn leaf_of_row(&self, nodes: &[ScoringNode], row: &[f64]) -> usize {
        if nodes.is_empty() {
            return 0;
        }
        let mut at = 0i32;
        while at >= 0 {
            at = self.step(nodes, at as usize, row);
        }
        !at as usize
    }

    /// The leaf a row reaches; `value(f)` is the row's value of feature f (NaN when missing).
    pub fn leaf(&self, value: impl Fn(usize) -> f64) -> usize {
        if self.num_leaves <= 1 {
            return 0;
        }
        let mut node = 0usize;
        loop {
            let next = self.decision(value(self.split_feature[node]), node);
            if next < 0 {
                return !next as usize;
            }
            node = next as usize;
        }
    }

    /// Rows reached at a node (leaves are `!index`), the cover TreeSHAP weighs paths by.
    pub fn count(&self, node: i32) -> f64 {
        if node >= 0 {
            self.internal_count[node as usize] as f64
        } else {
            self.leaf_count[!node as usize] as f64
        }
    }

    /// The mean output over the training rows (LightGBM's `ExpectedValue`): TreeSHAP's bias.
    pub fn expected_value(&self) -> f64 {
        if self.num_leaves <= 1 {
            return self.leaf_value.first().copied().unwrap_or(0.0);
        }
        let total = self.internal_count[0] as f64;
        self.leaf_value
            .iter()
            .zip(&self.leaf_count)
            .map(|(v, c)| (*c as f64 / total) * v)
            .sum()
    }

    /// Depth of the deepest leaf (0 for a single leaf).
    pub fn max_depth(&self) -> usize {
        fn walk(t: &Tree, node: i32, depth: usize) -> usize {
            if node < 0 {
                return depth;
            }
            let n = node as usize;
            walk(t, t.left_child[n], depth + 1).max(walk(t, t.right_child[n], depth + 1))
        }
        if self.num_leaves <= 1 {
            0
        } else {
            walk(self, 0, 0)
        }
    }

    /// Multiply every output by `rate` (the learning rate), as LightGBM's `Shrinkage`.
    pub fn shrink(&mut self, rate: f64) {
        for v in self
            .leaf_value
            .iter_mut()
            .chain(self.internal_value.iter_mut())
        {
            *v *= rate;
        }
        self.shrinkage *= rate;
    }

    /// Add `bias` to every output (the initial score folded into the first tree).
    pub fn add_bias(&mut self, bias: f64) {
        for v in self
            .leaf_value
            .iter_mut()
            .chain(self.internal_value.iter_mut())
        {
            *v += bias;
        }
    }

    /// Check that the arrays agree with `num_leaves` and every index is in range: an
    /// imported file must not make scoring index out of bounds.
    pub fn validate(&self, num_features: usize) -> Result<(), String> {
        let l = self.num_leaves;
        if l == 0 {
            return Err("a tree has no leaves".into());
        }
        if self.leaf_value.len() != l {
            return Err(format!(
                "leaf_value has {} values for {l} leaves",
                self.leaf_value.len()
            ));
        }
        if self.leaf_count.len() != l {
            return Err(format!(
                "leaf_count has {} values for {l} leaves",
                self.leaf_count.len()
            ));
        }
        if l == 1 {
            return Ok(());
        }
        let n = l - 1;
        for (name, len) in [
            ("split_feature", self.split_feature.len()),
            ("threshold", self.threshold.len()),
            ("decision_type", self.decision_type.len()),
            ("left_child", self.left_child.len()),
            ("right_child", self.right_child.len()),
            ("internal_count", self.internal_count.len()),
            ("internal_value", self.internal_value.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} values for {n} splits"));
            }
        }
        // Every node reached exactly once from the root, every leaf exactly once, no cycles.
        let mut seen_node = vec![false; n];
        let mut seen_leaf = vec![false; l];
        let mut stack = vec![0i32];
        while let Some(node) = stack.pop() {
            if node < 0 {
                let leaf = !node as usize;
                if leaf >= l || std::mem::replace(&mut seen_leaf[leaf], true) {
                    return Err(format!("leaf {leaf} is out of range or reached twice"));
                }
                continue;
            }
            let i = node as usize;
            if i >= n || std::mem::replace(&mut seen_node[i], true) {
                return Err(format!("node {i} is out of range or reached twice"));
            }
            if self.split_feature[i] >= num_features {
                return Err(format!(
                    "node {i} splits on feature {} of {num_features}",
                    self.split_feature[i]
                ));
            }
            if self.decision_type[i] & CATEGORICAL != 0 {
                let k = self.threshold[i];
                if !(k >= 0.0 && (k as usize) + 1 < self.cat_boundaries.len()) {
                    return Err(format!("node {i} names category set {k}, which is missing"));
                }
                let k = k as usize;
                let (a, b) = (self.cat_boundaries[k], self.cat_boundaries[k + 1]);
                if a > b || b > self.cat_threshold.len() {
                    return Err(format!("category set {k} is out of range"));
                }
            }
            stack.push(self.left_child[i]);
            stack.push(self.right_child[i]);
        }
        if seen_leaf.iter().any(|s| !s) || seen_node.iter().any(|s| !s) {
            return Err("some nodes or leaves cannot be reached from the root".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x0 <= 1.5 (missing left) → leaf 0; else x1 in {1, 3} → leaf 1, else leaf 2.
    fn tree() -> Tree {
        Tree {
            num_leaves: 3,
            split_feature: vec![0, 1],
            split_gain: vec![1.0, 0.5],
            threshold: vec![1.5, 0.0],
            decision_type: vec![DEFAULT_LEFT | (MISSING_NAN << 2), CATEGORICAL],
            left_child: vec![!0, !1],
            right_child: vec![1, !2],
            leaf_value: vec![-1.0, 2.0, 3.0],
            leaf_weight: vec![1.0; 3],
            leaf_count: vec![10, 5, 5],
            internal_value: vec![0.0, 0.0],
            internal_weight: vec![0.0; 2],
            internal_count: vec![20, 10],
            cat_boundaries: vec![0, 1],
            cat_threshold: bitset(&[1, 3]),
            shrinkage: 1.0,
        }
    }

    #[test]
    fn decisions_follow_lightgbm() {
        let t = tree();
        t.validate(2).unwrap();
        let leaf = |a: f64, b: f64| t.leaf(|f| if f == 0 { a } else { b });
        assert_eq!(leaf(1.5, 0.0), 0);
        assert_eq!(leaf(f64::NAN, 3.0), 0);
        assert_eq!(leaf(2.0, 3.0), 1);
        assert_eq!(leaf(2.0, 3.9), 1); // truncated to 3
        assert_eq!(leaf(2.0, 2.0), 2);
        assert_eq!(leaf(2.0, f64::NAN), 2);
        assert_eq!(leaf(2.0, -1.0), 2);
        assert_eq!(leaf(2.0, 1.0), 1);
        assert_eq!(t.expected_value(), (-10.0 + 10.0 + 15.0) / 20.0);
        assert_eq!(t.max_depth(), 2);
    }

    /// The scoring layout reaches the same leaf as LightGBM's rule for every missing-value
    /// kind and direction, on values around each threshold, zero, NaN and infinities.
    #[test]
    fn scoring_layout_reaches_the_same_leaves() {
        let values = [
            f64::NAN,
            f64::NEG_INFINITY,
            -2.0,
            -1.0,
            -1e-36,
            0.0,
            1e-36,
            1.0,
            1.5,
            1.6,
            3.0,
            f64::INFINITY,
        ];
        for missing in [MISSING_NONE, MISSING_ZERO, MISSING_NAN] {
            for default_left in [0, DEFAULT_LEFT] {
                for threshold in [-1.0, 0.0, 1.5] {
                    let mut t = tree();
                    t.decision_type[0] = default_left | (missing << 2);
                    t.threshold[0] = threshold;
                    let nodes = t.scoring_nodes();
                    for a in values {
                        for b in values {
                            let want = t.leaf(|f| if f == 0 { a } else { b });
                            let got = t.leaf_of_row(&nodes, &[a, b]);
                            assert_eq!(got, want, "{missing} {default_left} {threshold} {a} {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn broken_trees_are_refused() {
        let mut t = tree();
        t.right_child[0] = 0;
        assert!(t.validate(2).is_err());
        let mut t = tree();
        t.split_feature[1] = 7;
        assert!(t.validate(2).unwrap_err().contains("feature 7"));
    }
}
