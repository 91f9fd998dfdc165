//! Gradient-boosted decision trees with LightGBM's semantics: histogram-based leaf-wise
//! growth over binned features, LightGBM's options and defaults, categorical and missing
//! values handled natively, monotone constraints, and trees stored in LightGBM's own shape
//! so that models import from and export to its model.txt and score identically.

pub mod bins;
pub mod boost;
pub mod data;
pub mod grow;
pub mod hist;
pub mod lightgbm;
pub mod params;
pub mod shap;
pub mod split;
pub mod train;
pub mod tree;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use data::Feature;
use params::{Metric, Objective};
use tree::Tree;

/// A trained (or imported) ensemble: what a boosted-trees model version stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// Binary (raw score is log-odds) or Regression.
    pub objective: Objective,
    pub features: Vec<Feature>,
    /// Trees in order; the first one's outputs include the initial score.
    pub trees: Vec<Tree>,
    #[serde(default)]
    pub init_score: f64,
    /// Per feature: +1 increasing, −1 decreasing, 0 free.
    pub monotone: Vec<i8>,
    /// LightGBM's `feature_infos` per feature (`[min:max]`, categories `0:1:2`, or `none`).
    pub feature_infos: Vec<String>,
    pub metric: Option<Metric>,
    /// The validation metric after each tree (empty without held-out rows).
    #[serde(with = "tree::floats")]
    pub validation: Vec<f64>,
    /// Trees grown before stopping (≥ the trees kept when early stopping).
    pub iterations_run: usize,
    /// Where the model came from when not trained here (an imported file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// Rows per parallel unit of scoring work: their values, row by row, stay in the L2 cache
/// while every tree is applied to them.
const SCORE_CHUNK: usize = 512;

impl TreeModel {
    pub fn is_binary(&self) -> bool {
        self.objective == Objective::Binary
    }

    pub fn leaves(&self) -> usize {
        self.trees.iter().map(|t| t.num_leaves).sum()
    }

    /// Raw scores (sum of the trees, in order, from 0 as LightGBM adds them) of rows given
    /// as feature columns.
    pub fn raw(&self, values: &[Vec<f64>], rows: usize) -> Vec<f64> {
        let nodes: Vec<Vec<tree::ScoringNode>> =
            self.trees.iter().map(Tree::scoring_nodes).collect();
        let width = values.len();
        let score = |start: usize, chunk: &mut [f64]| {
            let by_row = row_major(values, start, chunk.len());
            for (tree, nodes) in self.trees.iter().zip(&nodes) {
                for (k, o) in chunk.iter_mut().enumerate() {
                    let row = &by_row[k * width..(k + 1) * width];
                    *o += tree.leaf_value[tree.leaf_of_row(nodes, row)];
                }
            }
        };
        let mut out = vec![0.0; rows];
        if rows <= SCORE_CHUNK {
            score(0, &mut out);
        } else {
            out.par_chunks_mut(SCORE_CHUNK)
                .enumerate()
                .for_each(|(c, chunk)| score(c * SCORE_CHUNK, chunk));
        }
        out
    }

    /// Per row, TreeSHAP contributions of each feature and, last, the bias (expected value).
    pub fn contributions(&self, values: &[Vec<f64>], rows: usize) -> Vec<Vec<f64>> {
        let width = self.features.len() + 1;
        let summaries: Vec<shap::Summary> = self.trees.iter().map(shap::Summary::of).collect();
        (0..rows)
            .into_par_iter()
            .map_init(shap::Scratch::default, |scratch, i| {
                let mut phi = vec![0.0; width];
                let row: Vec<f64> = values.iter().map(|column| column[i]).collect();
                for (tree, summary) in self.trees.iter().zip(&summaries) {
                    shap::tree_shap(tree, summary, &row, &mut phi, scratch);
                }
                phi
            })
            .collect()
    }

    /// Split count and total gain per feature.
    pub fn importance(&self) -> (Vec<u64>, Vec<f64>) {
        let mut splits = vec![0u64; self.features.len()];
        let mut gain = vec![0f64; self.features.len()];
        for t in &self.trees {
            for (f, g) in t.split_feature.iter().zip(&t.split_gain) {
                if let Some(s) = splits.get_mut(*f) {
                    *s += 1;
                    gain[*f] += g;
                }
            }
        }
        (splits, gain)
    }

    /// The features' values of a batch holding the model's inputs.
    pub fn values(&self, inputs: &[String], batch: &RecordBatch) -> Result<Vec<Vec<f64>>> {
        data::values(&self.features, inputs, batch)
    }
}

/// Rows `start..start + rows` of feature columns, row by row.
fn row_major(values: &[Vec<f64>], start: usize, rows: usize) -> Vec<f64> {
    let width = values.len();
    let mut out = vec![0.0; rows * width];
    for (f, column) in values.iter().enumerate() {
        for (k, v) in column[start..start + rows].iter().enumerate() {
            out[k * width + f] = *v;
        }
    }
    out
}
