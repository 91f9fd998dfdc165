//! Model quality metrics stored with a model and returned by `evaluate`: exact ROC AUC (ties
//! averaged, no binning), PR AUC, log-loss, threshold metrics, ROC curve; RMSE, MAE, R².

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
    // Sorting the triples themselves (not references) keeps the sort in cache; tied scores
    // are summed together below, so stability does not matter.
    let mut sorted: Vec<(f64, f64, f64)> = scored.to_vec();
    sorted.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let positives: f64 = scored.iter().map(|(_, y, w)| y * w).sum();
    let negatives: f64 = scored.iter().map(|(_, y, w)| (1.0 - y) * w).sum();
    let mut points = vec![RocPoint {
        threshold: None,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
        precision: 1.0,
    }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let score = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == score {
            tp += sorted[i].1 * sorted[i].2;
            fp += (1.0 - sorted[i].1) * sorted[i].2;
            i += 1;
        }
        points.push(RocPoint {
            threshold: Some(score),
            false_positive_rate: if negatives > 0.0 { fp / negatives } else { 0.0 },
            true_positive_rate: if positives > 0.0 { tp / positives } else { 0.0 },
            precision: if tp + fp > 0.0 { tp / (tp + fp) } else { 1.0 },
        });
    }
    points
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
    let mut c = Confusion {
        true_positive: 0.0,
        false_positive: 0.0,
        true_negative: 0.0,
        false_negative: 0.0,
    };
    let mut loss = 0.0;
    let mut weight = 0.0;
    for &(p, y, w) in scored {
        let predicted = p > threshold;
        match (predicted, y > 0.5) {
            (true, true) => c.true_positive += w,
            (true, false) => c.false_positive += w,
            (false, false) => c.true_negative += w,
            (false, true) => c.false_negative += w,
        }
        let q = p.clamp(1e-15, 1.0 - 1e-15);
        loss -= w * (y * q.ln() + (1.0 - y) * (1.0 - q).ln());
        weight += w;
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let pairs: Vec<(f64, f64)> = scored.iter().map(|(p, y, _)| (*p, *y)).collect();
    let (brier, ece) = super::calibration::brier_and_ece(&pairs, 10);
    let precision = ratio(c.true_positive, c.true_positive + c.false_positive);
    let recall = ratio(c.true_positive, c.true_positive + c.false_negative);
    ClassificationMetrics {
        rows: scored.len(),
        auc_roc: auc_roc(points),
        auc_pr: auc_pr(points),
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
