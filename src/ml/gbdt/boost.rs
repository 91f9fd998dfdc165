//! The boosting loop: LightGBM's gradients for the binary log-loss and L2 objectives, the
//! initial score from the label average folded into the first tree, bagging and feature
//! fraction from the seed, shrinkage, a validation curve on the held-out rows and early
//! stopping. Every sum that decides something is exact (fixed point), so a model does not
//! depend on the order rows arrive in.

use rayon::prelude::*;

use super::bins::BinMapper;
use super::grow::{Grower, Grown};
use super::hist::{Binned, scale_for};
use super::params::{Metric, Objective, TreeParams};
use super::split::FeatureMeta;
use super::tree::{Tree, bitset};

/// Rows of one side (training or validation) ready for boosting.
pub struct Side<'a> {
    pub binned: &'a Binned,
    pub labels: &'a [f64],
    /// Row weights, or all 1.
    pub weights: Option<&'a [f64]>,
}

impl Side<'_> {
    fn w(&self, i: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[i])
    }
}

pub struct Setup<'a> {
    pub params: &'a TreeParams,
    pub objective: Objective,
    pub features: &'a [FeatureMeta],
    pub mappers: &'a [BinMapper],
    pub seed: u64,
    /// Per-row hashes of the training rows' values, for bagging independent of row order.
    pub row_hash: &'a [u64],
}

/// What one iteration reports.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub iteration: usize,
    pub validation: Option<f64>,
}

pub struct Boosted {
    /// Trees in order, the initial score added to the first one's outputs.
    pub trees: Vec<Tree>,
    pub init_score: f64,
    /// Trees kept (all, or the best iteration's when early stopping).
    pub best_iteration: usize,
    pub metric: Metric,
    /// The validation metric after each tree.
    pub validation: Vec<f64>,
    pub stop_reason: String,
    pub cancelled: bool,
    /// Raw scores of the training rows after the last tree.
    pub train_scores: Vec<f64>,
}

/// A fixed-point sum of f64 values, exact and so independent of order.
pub fn exact_sum(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (count, max) = values
        .clone()
        .fold((0usize, 0f64), |(c, m), v| (c + 1, m.max(v.abs())));
    if count == 0 || max.is_nan() || max <= 0.0 {
        return 0.0;
    }
    if !max.is_finite() {
        return values.sum();
    }
    let exponent = 120 - (max * count as f64).log2().ceil() as i32;
    let scale = 2f64.powi(exponent.clamp(-1000, 1000));
    let total: i128 = values.map(|v| (v * scale).round() as i128).sum();
    total as f64 / scale
}

/// SplitMix64: a small, fast, well-mixed generator for seeds and hashes.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// LightGBM's `BoostFromScore`: log-odds of the weighted positive rate, or the weighted mean.
pub fn init_score(objective: Objective, side: &Side) -> f64 {
    let n = side.labels.len();
    let w_sum = exact_sum((0..n).map(|i| side.w(i)));
    let wy = exact_sum((0..n).map(|i| side.w(i) * side.labels[i]));
    if w_sum <= 0.0 {
        return 0.0;
    }
    let avg = wy / w_sum;
    match objective {
        Objective::Binary => {
            let p = avg.clamp(1e-15, 1.0 - 1e-15);
            (p / (1.0 - p)).ln()
        }
        _ => avg,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The metric over rows with raw scores `scores`.
pub fn metric_value(metric: Metric, scores: &[f64], side: &Side) -> f64 {
    let n = scores.len();
    let w_sum = exact_sum((0..n).map(|i| side.w(i)));
    if w_sum <= 0.0 {
        return f64::NAN;
    }
    let mean = |f: &(dyn Fn(usize) -> f64 + Sync)| {
        let per_row: Vec<f64> = (0..n).into_par_iter().map(f).collect();
        exact_sum(per_row.iter().copied()) / w_sum
    };
    match metric {
        Metric::BinaryLogloss => mean(&|i| {
            let p = sigmoid(scores[i]).clamp(1e-15, 1.0 - 1e-15);
            let y = side.labels[i];
            -side.w(i) * (y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        }),
        Metric::L2 => mean(&|i| side.w(i) * (scores[i] - side.labels[i]).powi(2)),
        Metric::Rmse => mean(&|i| side.w(i) * (scores[i] - side.labels[i]).powi(2)).sqrt(),
        Metric::L1 => mean(&|i| side.w(i) * (scores[i] - side.labels[i]).abs()),
        Metric::Auc => {
            let scored: Vec<(f64, f64, f64)> = (0..n)
                .map(|i| (scores[i], side.labels[i], side.w(i)))
                .collect();
            crate::ml::metrics::auc_roc(&crate::ml::metrics::roc_curve(&scored))
        }
    }
}

/// Per-row gradients and hessians of the objective at `scores`, quantized with one scale
/// each into `gh` (reused from iteration to iteration: no allocation per tree).
fn gradients(
    objective: Objective,
    scores: &[f64],
    side: &Side,
    raw: &mut Vec<(f64, f64)>,
    gh: &mut Vec<[i64; 2]>,
) -> (f64, f64) {
    let n = scores.len();
    raw.resize(n, (0.0, 0.0));
    gh.resize(n, [0, 0]);
    const CHUNK: usize = 1 << 14;
    let (max_g, max_h) = raw
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let (mut mg, mut mh) = (0f64, 0f64);
            for (k, out) in chunk.iter_mut().enumerate() {
                let i = c * CHUNK + k;
                let w = side.w(i);
                *out = match objective {
                    Objective::Binary => {
                        let p = sigmoid(scores[i]);
                        ((p - side.labels[i]) * w, p * (1.0 - p) * w)
                    }
                    _ => ((scores[i] - side.labels[i]) * w, w),
                };
                mg = mg.max(out.0.abs());
                mh = mh.max(out.1.abs());
            }
            (mg, mh)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let (gs, hs) = (scale_for(max_g, n), scale_for(max_h, n));
    gh.par_chunks_mut(CHUNK)
        .zip(raw.par_chunks(CHUNK))
        .for_each(|(q, r)| {
            for (q, (g, h)) in q.iter_mut().zip(r) {
                *q = [(g * gs).round() as i64, (h * hs).round() as i64];
            }
        });
    (gs, hs)
}

/// The features one tree may use: all, or `feature_fraction` of the splittable ones.
fn feature_sample(setup: &Setup, iteration: usize) -> Vec<bool> {
    let d = setup.features.len();
    let fraction = setup.params.feature_fraction;
    if fraction >= 1.0 {
        return vec![true; d];
    }
    let usable: Vec<usize> = (0..d).filter(|f| setup.features[*f].bins > 1).collect();
    let want = ((usable.len() as f64 * fraction).round() as usize)
        .max(usable.len().min(2))
        .min(usable.len());
    // Rank features by a hash of (seed, iteration, feature); keep the first `want`.
    let mut ranked: Vec<(u64, usize)> = usable
        .iter()
        .map(|f| {
            (
                mix(setup.seed ^ mix(iteration as u64 ^ 0xF00D) ^ mix(*f as u64)),
                *f,
            )
        })
        .collect();
    ranked.sort();
    let mut used = vec![false; d];
    for (_, f) in ranked.into_iter().take(want) {
        used[f] = true;
    }
    used
}

/// Rows in the bag for the block of iterations starting at `iteration`.
fn bag(setup: &Setup, rows: usize, iteration: usize) -> Vec<u32> {
    let p = setup.params;
    if p.bagging_freq == 0 || p.bagging_fraction >= 1.0 {
        return (0..rows as u32).collect();
    }
    let block = (iteration / p.bagging_freq) as u64;
    let salt = mix(setup.seed ^ mix(block ^ 0xBA66));
    (0..rows as u32)
        .filter(|r| unit(mix(setup.row_hash[*r as usize] ^ salt)) < p.bagging_fraction)
        .collect()
}

/// Bins to values: numeric thresholds become the bins' upper bounds, categorical bin sets
/// become bitsets of category codes (bin − 1).
fn finalize(grown: &Grown, mappers: &[BinMapper]) -> Tree {
    let mut tree = grown.tree.clone();
    for (node, rule) in grown.rules.iter().enumerate() {
        if rule.categorical {
            let codes: Vec<u32> = (1..=255u32)
                .filter(|b| rule.goes_left(*b as u8))
                .map(|b| b - 1)
                .collect();
            if tree.cat_boundaries.is_empty() {
                tree.cat_boundaries.push(0);
            }
            tree.threshold[node] = (tree.cat_boundaries.len() - 1) as f64;
            tree.cat_threshold.extend(bitset(&codes));
            tree.cat_boundaries.push(tree.cat_threshold.len());
        } else {
            // The last bin's bound is +inf; every value is ≤ f64::MAX but for +inf itself.
            tree.threshold[node] = mappers[rule.feature]
                .upper(rule.threshold as usize)
                .min(f64::MAX);
        }
    }
    tree
}

/// Boost `num_iterations` trees (fewer when no split helps or early stopping ends it).
/// `report` is told about every iteration; returning false cancels.
pub fn boost(
    setup: &Setup,
    train: &Side,
    valid: Option<&Side>,
    report: &(dyn Fn(Progress) -> bool + Sync),
) -> Boosted {
    let p = setup.params;
    let objective = setup.objective;
    let metric = p.metric_for(objective);
    let n = train.labels.len();
    let init = init_score(objective, train);
    let mut scores = vec![init; n];
    let mut valid_scores = vec![init; valid.map_or(0, |v| v.labels.len())];
    let mut out = Boosted {
        trees: vec![],
        init_score: init,
        best_iteration: 0,
        metric,
        validation: vec![],
        stop_reason: format!("reached num_iterations = {}", p.num_iterations),
        cancelled: false,
        train_scores: vec![],
    };
    let mut best: Option<(usize, f64)> = None;
    let mut rows: Vec<u32> = vec![];
    let mut in_bag: Vec<u32> = vec![];
    let (mut raw, mut gh) = (vec![], vec![]);
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    for iteration in 0..p.num_iterations {
        let (grad_scale, hess_scale) = gradients(objective, &scores, train, &mut raw, &mut gh);
        if p.bagging_freq == 0 || iteration % p.bagging_freq == 0 || rows.is_empty() {
            rows = bag(setup, n, iteration);
        }
        in_bag.clear();
        in_bag.extend_from_slice(&rows);
        let used = feature_sample(setup, iteration);
        let grower = Grower {
            binned: train.binned,
            gh: &gh,
            features: setup.features,
            used: &used,
            params: p,
            grad_scale,
            hess_scale,
            cancelled: &|| {
                cancelled.load(std::sync::atomic::Ordering::Relaxed)
                    || !report(Progress {
                        iteration,
                        validation: None,
                    })
            },
        };
        let Some(mut grown) = grower.grow(&mut in_bag) else {
            out.cancelled = true;
            out.stop_reason = "cancelled".into();
            return out;
        };
        if grown.tree.num_leaves <= 1 {
            if out.trees.is_empty() {
                out.trees.push(Tree::constant(init, n as u64));
                out.best_iteration = 1;
            }
            out.stop_reason = format!(
                "stopped after {} trees: no split improves the objective (min_data_in_leaf, min_gain_to_split)",
                out.trees.len()
            );
            break;
        }
        grown.tree.shrink(p.learning_rate);
        // Scores move by the shrunk outputs (the initial score is already in them): rows
        // in the bag by the leaf the partition put them in, the others through the tree.
        let values = grown.tree.leaf_value.clone();
        let mut leaf_of_row = vec![u32::MAX; n];
        for (leaf, range) in grown.leaf_rows.iter().enumerate() {
            for &r in &in_bag[range.clone()] {
                leaf_of_row[r as usize] = leaf as u32;
            }
        }
        let grown_ref = &grown;
        scores
            .par_iter_mut()
            .zip(leaf_of_row.par_iter())
            .enumerate()
            .for_each(|(r, (s, leaf))| {
                let leaf = if *leaf == u32::MAX {
                    grown_ref.leaf_of(|f| train.binned.get(r, f))
                } else {
                    *leaf as usize
                };
                *s += values[leaf];
            });
        if iteration == 0 {
            grown.tree.add_bias(init);
        }
        out.trees.push(finalize(&grown, setup.mappers));
        let mut value = None;
        if let Some(v) = valid {
            let grown_ref = &grown;
            valid_scores.par_iter_mut().enumerate().for_each(|(r, s)| {
                let row = &v.binned.bins[r * v.binned.features..(r + 1) * v.binned.features];
                *s += values[grown_ref.leaf_of(|f| row[f])];
            });
            let m = metric_value(metric, &valid_scores, v);
            out.validation.push(m);
            value = Some(m);
            let improved = best.is_none_or(|(_, b)| {
                if metric.higher_is_better() {
                    m > b
                } else {
                    m < b
                }
            });
            if improved {
                best = Some((iteration, m));
            }
        }
        out.best_iteration = out.trees.len();
        if !report(Progress {
            iteration: iteration + 1,
            validation: value,
        }) {
            cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
            out.cancelled = true;
            out.stop_reason = "cancelled".into();
            return out;
        }
        if p.early_stopping_rounds > 0
            && let Some((at, _)) = best
            && iteration - at >= p.early_stopping_rounds
        {
            out.stop_reason = format!(
                "early stopping: {} did not improve for {} rounds after iteration {}",
                metric.name(),
                p.early_stopping_rounds,
                at + 1
            );
            break;
        }
    }
    if p.early_stopping_rounds > 0
        && let Some((at, _)) = best
    {
        out.best_iteration = at + 1;
        out.trees.truncate(at + 1);
    }
    out.train_scores = scores;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sums_do_not_depend_on_order() {
        let values: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f64 * 1e-3 + 1e-9 * i as f64)
            .collect();
        let mut reversed = values.clone();
        reversed.reverse();
        let a = exact_sum(values.iter().copied());
        let b = exact_sum(reversed.iter().copied());
        assert_eq!(a.to_bits(), b.to_bits());
        let plain: f64 = values.iter().sum();
        assert!((a - plain).abs() < 1e-9);
    }
}
