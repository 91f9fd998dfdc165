//! Boosted trees as ONNX: one ai.onnx.ml opset-5 `TreeEnsemble` node in double precision
//! (splits and leaf values as double tensors, so scores match Augur's to rounding), then a
//! standard `Sigmoid` for classifiers. Input `features`: double [N, d], the model's numeric
//! inputs in order, NaN for a missing value; output `probability` or `prediction` [N, 1].
//!
//! LightGBM's missing-value rules map onto `nodes_missing_value_tracks_true`: NaN follows
//! the default direction (missing type NaN) or goes where 0.0 goes (type None). Missing type
//! Zero — zero and NaN take the default direction — becomes two nodes where the plain
//! comparison would send zero the other way: `x == 0` (NaN tracks true) to the default side,
//! else `x <= threshold` (so "zero" is exactly 0.0 here, |x| ≤ 1e-35 in LightGBM).

use super::gbdt::TreeModel;
use super::gbdt::data::FeatureKind;
use super::gbdt::tree::{CATEGORICAL, DEFAULT_LEFT, MISSING_NAN, MISSING_ZERO, Tree, missing_type};
use super::model::Model;
use super::onnx_export::{DOUBLE, Message, int, ints, node, tensor, tensor_attribute, value_info};

/// TreeEnsemble's `nodes_modes` values.
const BRANCH_LEQ: u8 = 0;
const BRANCH_EQ: u8 = 4;
/// TensorProto.DataType UINT8.
const UINT8: u64 = 2;

/// The flattened nodes and leaves of every tree, as TreeEnsemble's parallel attributes.
#[derive(Default)]
struct Ensemble {
    features: Vec<u64>,
    splits: Vec<f64>,
    modes: Vec<u8>,
    true_ids: Vec<u64>,
    true_leaf: Vec<u64>,
    false_ids: Vec<u64>,
    false_leaf: Vec<u64>,
    missing_true: Vec<u64>,
    leaf_weights: Vec<f64>,
    roots: Vec<u64>,
}

/// A branch target: a node or a leaf index.
type Target = (u64, bool);

impl Ensemble {
    /// A node slot, filled once its children have ids.
    fn reserve(&mut self) -> usize {
        self.features.push(0);
        self.splits.push(0.0);
        self.modes.push(BRANCH_LEQ);
        self.true_ids.push(0);
        self.true_leaf.push(0);
        self.false_ids.push(0);
        self.false_leaf.push(0);
        self.missing_true.push(0);
        self.features.len() - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        at: usize,
        feature: usize,
        split: f64,
        mode: u8,
        yes: Target,
        no: Target,
        nan_yes: bool,
    ) {
        self.features[at] = feature as u64;
        self.splits[at] = split;
        self.modes[at] = mode;
        (self.true_ids[at], self.true_leaf[at]) = (yes.0, u64::from(yes.1));
        (self.false_ids[at], self.false_leaf[at]) = (no.0, u64::from(no.1));
        self.missing_true[at] = u64::from(nan_yes);
    }

    /// Emit the subtree at `c` (a node, or `!leaf`), depth first; its id. ONNX trees must be
    /// trees (ONNX Runtime refuses a node with two parents), so the one subtree that a
    /// zero-as-missing split reaches twice is written twice.
    fn emit(&mut self, tree: &Tree, c: i32) -> Result<Target, String> {
        if c < 0 {
            self.leaf_weights.push(tree.leaf_value[(!c) as usize]);
            return Ok(((self.leaf_weights.len() - 1) as u64, true));
        }
        let n = c as usize;
        let dt = tree.decision_type[n];
        if dt & CATEGORICAL != 0 {
            return Err("a categorical split has no numeric ONNX form".into());
        }
        let (feature, t) = (tree.split_feature[n], tree.threshold[n]);
        let default_left = dt & DEFAULT_LEFT != 0;
        let at = self.reserve();
        let nan_left = match missing_type(dt) {
            MISSING_NAN => default_left,
            MISSING_ZERO if default_left != (0.0 <= t) => {
                let default = if default_left {
                    tree.left_child[n]
                } else {
                    tree.right_child[n]
                };
                let default = self.emit(tree, default)?;
                let test = self.reserve();
                let (left, right) = (
                    self.emit(tree, tree.left_child[n])?,
                    self.emit(tree, tree.right_child[n])?,
                );
                self.fill(test, feature, t, BRANCH_LEQ, left, right, true);
                self.fill(
                    at,
                    feature,
                    0.0,
                    BRANCH_EQ,
                    default,
                    (test as u64, false),
                    true,
                );
                return Ok((at as u64, false));
            }
            MISSING_ZERO => default_left,
            // None: NaN is read as 0.0.
            _ => 0.0 <= t,
        };
        let left = self.emit(tree, tree.left_child[n])?;
        let right = self.emit(tree, tree.right_child[n])?;
        self.fill(at, feature, t, BRANCH_LEQ, left, right, nan_left);
        Ok((at as u64, false))
    }
}

fn bytes_tensor(name: &str, values: &[u8]) -> Message {
    let mut t = Message::default();
    t.int(1, values.len() as u64).int(2, UINT8).text(8, name);
    t.bytes(9, values);
    t
}

/// The graph of a boosted-trees model and its input columns, or why it has no ONNX form.
pub(super) fn graph(model: &Model, trees: &TreeModel) -> Result<(Message, Vec<String>), String> {
    if let Some(f) = trees
        .features
        .iter()
        .find(|f| !matches!(f.kind, FeatureKind::Numeric))
    {
        return Err(format!(
            "feature '{}' is a {}; the ONNX graph takes numbers only (TreeEnsemble has no \
             string input)",
            f.name,
            f.kind.describe()
        ));
    }
    let mut e = Ensemble::default();
    for tree in &trees.trees {
        let root = if tree.num_leaves > 1 {
            e.emit(tree, 0)?
        } else {
            // A one-leaf tree: a node whose both branches reach the leaf.
            let at = e.reserve();
            let leaf = e.emit(tree, !0)?;
            e.fill(at, 0, 0.0, BRANCH_LEQ, leaf, leaf, true);
            (at as u64, false)
        };
        e.roots.push(root.0);
    }

    let classifier = trees.is_binary();
    let d = trees.features.len() as u64;
    let output = if classifier {
        "probability"
    } else {
        "prediction"
    };
    let raw = if classifier { "raw_score" } else { output };
    let mut ensemble = node("TreeEnsemble", &["features"], raw);
    let leaves = e.leaf_weights.len();
    let attributes = [
        ints("nodes_featureids", &e.features),
        tensor_attribute(
            "nodes_splits",
            &tensor("nodes_splits", &[e.splits.len() as u64], &e.splits),
        ),
        tensor_attribute("nodes_modes", &bytes_tensor("nodes_modes", &e.modes)),
        ints("nodes_truenodeids", &e.true_ids),
        ints("nodes_trueleafs", &e.true_leaf),
        ints("nodes_falsenodeids", &e.false_ids),
        ints("nodes_falseleafs", &e.false_leaf),
        ints("nodes_missing_value_tracks_true", &e.missing_true),
        ints("leaf_targetids", &vec![0; leaves]),
        tensor_attribute(
            "leaf_weights",
            &tensor("leaf_weights", &[leaves as u64], &e.leaf_weights),
        ),
        ints("tree_roots", &e.roots),
        int("n_targets", 1),
        int("aggregate_function", 1), // SUM
        int("post_transform", 0),     // NONE: the Sigmoid below is the standard op, in double
    ];
    for a in &attributes {
        ensemble.message(5, a);
    }
    ensemble.text(7, "ai.onnx.ml");
    let mut graph = Message::default();
    graph.message(1, &ensemble);
    if classifier {
        graph.message(1, &node("Sigmoid", &[raw], output));
    }
    graph.text(2, &format!("augur_{}_{}", model.name, model.version));
    graph.message(11, &value_info("features", DOUBLE, d));
    graph.message(12, &value_info(output, DOUBLE, 1));
    let inputs = trees.features.iter().map(|f| f.name.clone()).collect();
    Ok((graph, inputs))
}
