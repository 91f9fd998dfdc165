//! Model quality metrics stored with a model and returned by `evaluate`: exact ROC AUC (ties
//! averaged, no binning), PR AUC, log-loss, threshold metrics, ROC curve; RMSE, MAE, R².

use rayon::iter::{IndexedParallelIterator, IntoParallelRefIterator, ParallelIterator};
use rayon::slice::{ParallelSlice, ParallelSliceMut};

use super::calibration::Bins;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub true_positive: f64,
    pub false_positive: f64,
    pub true_negative: f64,
    pub false_negative: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub rows: usize,
    pub auc_roc: f64,
    pub auc_pr: f64,
    pub log_loss: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub threshold: f64,
    pub confusion: Confusion,
    /// Mean squared error of the probabilities.
    #[serde(default)]
    pub brier: f64,
    /// Expected calibration error over 10 equal-width probability bins.
    #[serde(default)]
    pub ece: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub rows: usize,
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
}

/// One point of the ROC curve: at `threshold`, rows with score ≥ threshold are positive
/// (no threshold for the starting point, where nothing is).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: Option<f64>,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
    pub precision: f64,
}

/// (score, label, weight) triples → points at each distinct score, highest first, starting
/// at (0, 0). Ties share a point, which is what makes the AUC exact with ties.
pub fn roc_curve(scored: &[(f64, f64, f64)]) -> Vec<RocPoint> {
    let mut points = vec![];
    sweep(&sorted_by_score(scored), |p| points.push(p));
    points
}

/// The triples sorted by score, highest first, on all cores. Sorting the triples themselves
/// (not references) keeps the sort in cache; tied scores are summed together by [`sweep`],
/// so stability does not matter.
pub fn sorted_by_score(scored: &[(f64, f64, f64)]) -> Vec<(f64, f64, f64)> {
    let mut sorted = scored.to_vec();
    sort_by_score(&mut sorted);
    sorted
}

/// [`sorted_by_score`] in place: training's 10M scores are 240 MB, and a copy of them is
/// that much fresh memory to fault in.
pub fn sort_by_score(scored: &mut [(f64, f64, f64)]) {
    scored.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
}

/// Calls `f` with every point of the ROC curve of `sorted` (highest score first).
fn sweep(sorted: &[(f64, f64, f64)], mut f: impl FnMut(RocPoint)) {
    let positives: f64 = sorted.iter().map(|(_, y, w)| y * w).sum();
    let negatives: f64 = sorted.iter().map(|(_, y, w)| (1.0 - y) * w).sum();
    f(roc_point(None, 0.0, 0.0, positives, negatives));
    runs(sorted, |score, tp, fp| {
        f(roc_point(Some(score), tp, fp, positives, negatives))
    });
}

/// Calls `f(score, tp, fp)` after each run of equal scores in `sorted`, with the weighted
/// positives and negatives from its first row through the run.
fn runs(sorted: &[(f64, f64, f64)], mut f: impl FnMut(f64, f64, f64)) {
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        // At least one row per point, so a NaN score (never equal to itself) moves on too.
        let score = sorted[i].0;
        loop {
            tp += sorted[i].1 * sorted[i].2;
            fp += (1.0 - sorted[i].1) * sorted[i].2;
            i += 1;
            if i == sorted.len() || sorted[i].0 != score {
                break;
            }
        }
        f(score, tp, fp);
    }
}

/// The ROC point at `threshold` with `tp` of `positives` and `fp` of `negatives`.
fn roc_point(threshold: Option<f64>, tp: f64, fp: f64, positives: f64, negatives: f64) -> RocPoint {
    RocPoint {
        threshold,
        false_positive_rate: if negatives > 0.0 { fp / negatives } else { 0.0 },
        true_positive_rate: if positives > 0.0 { tp / positives } else { 0.0 },
        precision: if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 },
    }
}

/// A block of sorted rows and where it starts.
type Block<'a> = (usize, &'a [(f64, f64, f64)]);

/// ROC AUC, PR AUC and the curve thinned to at most `max` points, of triples sorted by
/// [`sorted_by_score`], without holding the whole curve (one point per distinct score: 400
/// MB for 10M rows). The same points as [`roc_curve`] and [`thin`]; the areas those of
/// [`auc_roc`] and [`auc_pr`] to rounding (summed block by block).
pub fn curve_summary(sorted: &[(f64, f64, f64)], max: usize) -> (Vec<RocPoint>, f64, f64) {
    // Blocks of about 64K rows on all cores, each ending where a run of equal scores does,
    // so that every point's rows are in one block. Each block's label sums first, then its
    // points from the sums before it: training's 10M rows serially took 0.17 s.
    const BLOCK: usize = 1 << 16;
    let mut blocks: Vec<Block> = vec![];
    let mut start = 0;
    while start < sorted.len() {
        let mut end = (start + BLOCK).min(sorted.len());
        // A NaN is a run of its own (never equal to itself).
        while end < sorted.len() && sorted[end].0 == sorted[end - 1].0 {
            end += 1;
        }
        blocks.push((start, &sorted[start..end]));
        start = end;
    }
    // Per block: Σ y·w, Σ (1 − y)·w and its number of points (runs of equal scores).
    let sums: Vec<(f64, f64, usize)> = blocks
        .par_iter()
        .map(|(_, b)| {
            let (tp, fp) = b.iter().fold((0.0, 0.0), |(tp, fp), (_, y, w)| {
                (tp + y * w, fp + (1.0 - y) * w)
            });
            (
                tp,
                fp,
                1 + b.windows(2).filter(|w| w[0].0 != w[1].0).count(),
            )
        })
        .collect();
    let (mut positives, mut negatives, mut points) = (0.0, 0.0, 0);
    let mut before = vec![];
    for &(tp, fp, n) in &sums {
        before.push((positives, negatives, 1 + points));
        positives += tp;
        negatives += fp;
        points += n;
    }
    // The points kept: every one, or `max` spread evenly (always the first and last).
    let len = 1 + points;
    let kept: Vec<usize> = if len <= max || max < 2 {
        (0..len).collect()
    } else {
        let step = (len - 1) as f64 / (max - 1) as f64;
        (0..max)
            .map(|j| ((j as f64 * step).round() as usize).min(len - 1))
            .collect()
    };
    let point = |score, tp, fp| roc_point(score, tp, fp, positives, negatives);
    let origin = point(None, 0.0, 0.0);
    let parts: Vec<(Vec<RocPoint>, f64, f64)> = blocks
        .par_iter()
        .zip(&before)
        .map(|(&(start, b), &(tp0, fp0, first))| {
            // The point before the block's first: the origin, or the previous block's last.
            let mut prev = match start {
                0 => origin,
                _ => point(Some(sorted[start - 1].0), tp0, fp0),
            };
            let mut next = kept.partition_point(|k| *k < first);
            let (mut out, mut roc, mut pr) = (vec![], 0.0, 0.0);
            let mut index = first;
            // `runs` counts from 0 in the block, so its last point's sums are the block's
            // own and the curve ends at exactly (1, 1).
            runs(b, |score, tp, fp| {
                let p = point(Some(score), tp0 + tp, fp0 + fp);
                if kept.get(next) == Some(&index) {
                    out.push(p);
                    next += 1;
                }
                roc += (p.false_positive_rate - prev.false_positive_rate)
                    * (p.true_positive_rate + prev.true_positive_rate)
                    / 2.0;
                // Recall 0 at the first point's precision (Spark's convention).
                let from = if index == 1 {
                    (0.0, p.precision)
                } else {
                    (prev.true_positive_rate, prev.precision)
                };
                pr += (p.true_positive_rate - from.0) * (p.precision + from.1) / 2.0;
                prev = p;
                index += 1;
            });
            (out, roc, pr)
        })
        .collect();
    let mut curve = vec![origin];
    let (mut roc, mut pr) = (0.0, 0.0);
    for (points, r, p) in parts {
        curve.extend(points);
        roc += r;
        pr += p;
    }
    (curve, roc, pr)
}

/// Area under the ROC curve by the trapezoid rule over all distinct scores (exact).
pub fn auc_roc(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            (w[1].false_positive_rate - w[0].false_positive_rate)
                * (w[1].true_positive_rate + w[0].true_positive_rate)
                / 2.0
        })
        .sum()
}

/// Area under the precision-recall curve, trapezoids from recall 0 at the first precision (Spark's convention).
pub fn auc_pr(points: &[RocPoint]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let mut area = 0.0;
    let mut prev = (0.0, points[1].precision);
    for p in &points[1..] {
        let cur = (p.true_positive_rate, p.precision);
        area += (cur.0 - prev.0) * (cur.1 + prev.1) / 2.0;
        prev = cur;
    }
    area
}

/// Metrics of a binary classifier from (probability, label, weight); predicted positive iff p > threshold.
pub fn classification(scored: &[(f64, f64, f64)], threshold: f64) -> ClassificationMetrics {
    classification_on_curve(scored, &roc_curve(scored), threshold)
}

/// [`classification`] with the ROC curve of `scored` already computed (it costs a sort).
pub fn classification_on_curve(
    scored: &[(f64, f64, f64)],
    points: &[RocPoint],
    threshold: f64,
) -> ClassificationMetrics {
    classification_with_aucs(scored, auc_roc(points), auc_pr(points), threshold)
}

/// [`classification`] with the areas under the ROC and PR curves already computed.
pub fn classification_with_aucs(
    scored: &[(f64, f64, f64)],
    auc_roc: f64,
    auc_pr: f64,
    threshold: f64,
) -> ClassificationMetrics {
    // In fixed blocks of rows on all cores, the blocks' sums then added in order: the same
    // numbers whatever the thread count (training's 10M rows: 3 serial passes before).
    let blocks: Vec<Sums> = scored
        .par_chunks(1 << 16)
        .map(|block| Sums::of(block, threshold))
        .collect();
    let mut total = Sums::new();
    for b in &blocks {
        total.merge(b);
    }
    let Sums {
        confusion: c,
        loss,
        weight,
        bins,
    } = total;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let (brier, ece) = (bins.brier(), bins.ece());
    let precision = ratio(c.true_positive, c.true_positive + c.false_positive);
    let recall = ratio(c.true_positive, c.true_positive + c.false_negative);
    ClassificationMetrics {
        rows: scored.len(),
        auc_roc,
        auc_pr,
        log_loss: ratio(loss, weight),
        accuracy: ratio(c.true_positive + c.true_negative, weight),
        precision,
        recall,
        f1: ratio(2.0 * precision * recall, precision + recall),
        threshold,
        confusion: c,
        brier,
        ece,
    }
}

/// A classifier's sums over rows: the confusion matrix at a threshold, the weighted
/// log-loss and weight, the calibration bins (and squared errors).
struct Sums {
    confusion: Confusion,
    loss: f64,
    weight: f64,
    bins: Bins,
}

impl Sums {
    fn new() -> Sums {
        Sums {
            confusion: Confusion {
                true_positive: 0.0,
                false_positive: 0.0,
                true_negative: 0.0,
                false_negative: 0.0,
            },
            loss: 0.0,
            weight: 0.0,
            bins: Bins::new(10),
        }
    }

    fn of(block: &[(f64, f64, f64)], threshold: f64) -> Sums {
        let mut s = Sums::new();
        let c = &mut s.confusion;
        for &(p, y, w) in block {
            let predicted = p > threshold;
            match (predicted, y > 0.5) {
                (true, true) => c.true_positive += w,
                (true, false) => c.false_positive += w,
                (false, false) => c.true_negative += w,
                (false, true) => c.false_negative += w,
            }
            let q = p.clamp(1e-15, 1.0 - 1e-15);
            // A 0/1 label's other term is 0 · ln(…) = ±0, which adds nothing: one logarithm
            // a row instead of two, the same sum to the bit.
            s.loss -= w * match y {
                1.0 => q.ln(),
                0.0 => (1.0 - q).ln(),
                _ => y * q.ln() + (1.0 - y) * (1.0 - q).ln(),
            };
            s.weight += w;
            s.bins.add(p, y);
        }
        s
    }

    fn merge(&mut self, other: &Sums) {
        let (c, o) = (&mut self.confusion, &other.confusion);
        c.true_positive += o.true_positive;
        c.false_positive += o.false_positive;
        c.true_negative += o.true_negative;
        c.false_negative += o.false_negative;
        self.loss += other.loss;
        self.weight += other.weight;
        self.bins.merge(&other.bins);
    }
}

/// Metrics of a regression from (prediction, label, weight).
pub fn regression(scored: &[(f64, f64, f64)]) -> RegressionMetrics {
    let w: f64 = scored.iter().map(|s| s.2).sum();
    let mean = if w > 0.0 {
        scored.iter().map(|(_, y, w)| y * w).sum::<f64>() / w
    } else {
        0.0
    };
    let sse: f64 = scored.iter().map(|(p, y, w)| w * (p - y).powi(2)).sum();
    let sae: f64 = scored.iter().map(|(p, y, w)| w * (p - y).abs()).sum();
    let sst: f64 = scored.iter().map(|(_, y, w)| w * (y - mean).powi(2)).sum();
    RegressionMetrics {
        rows: scored.len(),
        rmse: if w > 0.0 { (sse / w).sqrt() } else { 0.0 },
        mae: if w > 0.0 { sae / w } else { 0.0 },
        r2: if sst > 0.0 { 1.0 - sse / sst } else { 0.0 },
    }
}

/// At most `max` points of a curve, always keeping its first and last.
pub fn thin(points: &[RocPoint], max: usize) -> Vec<RocPoint> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|k| points[((k as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUC equals the Mann–Whitney statistic: P(score of a positive > score of a negative)
    /// + ½ P(tie), computed here by brute force over all pairs.
    #[test]
    fn auc_is_exact_with_ties() {
        let scored: Vec<(f64, f64, f64)> = vec![
            (0.9, 1.0, 1.0),
            (0.8, 0.0, 1.0),
            (0.8, 1.0, 1.0),
            (0.7, 1.0, 1.0),
            (0.5, 0.0, 1.0),
            (0.5, 0.0, 1.0),
            (0.5, 1.0, 1.0),
            (0.2, 0.0, 1.0),
            (0.1, 1.0, 1.0),
            (0.1, 0.0, 1.0),
        ];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for a in scored.iter().filter(|s| s.1 == 1.0) {
            for b in scored.iter().filter(|s| s.1 == 0.0) {
                pairs += 1.0;
                wins += if a.0 > b.0 {
                    1.0
                } else if a.0 == b.0 {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let m = classification(&scored, 0.5);
        assert!(
            (m.auc_roc - wins / pairs).abs() < 1e-12,
            "{} vs {}",
            m.auc_roc,
            wins / pairs
        );
        // p > 0.5 strictly: the three 0.5 scores are negative predictions.
        assert_eq!(m.confusion.true_positive, 3.0);
        assert_eq!(m.confusion.false_positive, 1.0);
    }

    /// The one-sweep summary gives the same areas and thinned curve as the whole curve.
    #[test]
    fn curve_summary_matches_the_whole_curve() {
        // Scores with many ties, a NaN, weights; a pseudo-random but fixed sequence.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut scored: Vec<(f64, f64, f64)> = (0..5000)
            .map(|_| {
                let s = (next() * 300.0).floor() / 300.0;
                (s, f64::from(next() < s), 0.5 + next())
            })
            .collect();
        scored.push((f64::NAN, 1.0, 1.0));
        let whole = roc_curve(&scored);
        for max in [2, 7, 2001, 100_000] {
            let (thinned, roc, pr) = curve_summary(&sorted_by_score(&scored), max);
            assert_eq!(roc.to_bits(), auc_roc(&whole).to_bits(), "max {max}");
            assert_eq!(pr.to_bits(), auc_pr(&whole).to_bits(), "max {max}");
            let expected = thin(&whole, max);
            assert_eq!(thinned.len(), expected.len(), "max {max}");
            for (a, b) in thinned.iter().zip(&expected) {
                assert_eq!(a.threshold.map(f64::to_bits), b.threshold.map(f64::to_bits));
                assert_eq!(a.true_positive_rate, b.true_positive_rate);
            }
        }
        assert_eq!(curve_summary(&[], 10).0.len(), 1);
        // Past one block of rows (runs of ties across the blocks' nominal ends): unit weights
        // count exactly, so the same points; the areas summed by block, equal to rounding.
        let scored: Vec<(f64, f64, f64)> = (0..300_000)
            .map(|_| {
                let s = (next() * 3000.0).floor() / 3000.0;
                (s, f64::from(next() < s), 1.0)
            })
            .collect();
        let whole = roc_curve(&scored);
        for max in [2, 1001, 1_000_000] {
            let (thinned, roc, pr) = curve_summary(&sorted_by_score(&scored), max);
            assert!((roc - auc_roc(&whole)).abs() < 1e-12, "max {max}");
            assert!((pr - auc_pr(&whole)).abs() < 1e-12, "max {max}");
            assert_eq!(thinned, thin(&whole, max), "max {max}");
        }
    }

    #[test]
    fn perfect_and_regression_metrics() {
        let scored = vec![(0.9, 1.0, 1.0), (0.1, 0.0, 1.0), (0.8, 1.0, 1.0)];
        let m = classification(&scored, 0.5);
        assert_eq!(
            (m.auc_roc, m.auc_pr, m.accuracy, m.f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        let r = regression(&[(1.0, 1.0, 1.0), (2.0, 3.0, 1.0), (3.0, 2.0, 1.0)]);
        assert!((r.rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((r.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.r2 - (1.0 - 2.0 / 2.0)).abs() < 1e-12);
    }
}
