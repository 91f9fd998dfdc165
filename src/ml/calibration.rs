//! Probability calibration: `CALIBRATE MODEL m USING isotonic | platt AS query` fits a map
//! from the model's probability (isotonic: scikit-learn's `IsotonicRegression`, ties pooled,
//! pool-adjacent-violators, linear interpolation, clipped outside the fitted range) or its
//! log-odds (Platt: p = σ(a·m + b), fitted by Newton's method to machine precision) to an
//! observed rate, and adds a version of m whose probabilities pass through it. Also the
//! reliability measures: calibration curve bins, Brier score, expected calibration error.

use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::model::{Model, TrainingData, now_unix, plan_err, prepare};
use super::options::TrainOptions;
use super::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Isotonic,
    Platt,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text.to_ascii_lowercase().as_str() {
            "isotonic" => Some(Method::Isotonic),
            "platt" | "sigmoid" => Some(Method::Platt),
            _ => None,
        }
    }
}

/// What `CALIBRATE MODEL` asks for: the version to calibrate and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationParams {
    pub base: String,
    pub method: Method,
    /// The base model, looked up when the operator starts.
    #[serde(skip)]
    pub resolved: Option<Box<Model>>,
}

/// A fitted map from the base model's output to a calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// Increasing step points (probability → rate), interpolated linearly.
    Isotonic { x: Vec<f64>, y: Vec<f64> },
    /// σ(a·log-odds + b).
    Platt { a: f64, b: f64 },
}

impl Calibration {
    /// The calibrated probability of a row with base log-odds `raw` and probability `p`.
    pub fn apply(&self, raw: f64, p: f64) -> f64 {
        match self {
            Calibration::Platt { a, b } => augur_udfs::math::sigmoid(a * raw + b),
            Calibration::Isotonic { x, y } => interpolate(x, y, p),
        }
    }
}

/// `np.interp` with the ends held (scikit-learn's out_of_bounds = 'clip').
fn interpolate(x: &[f64], y: &[f64], v: f64) -> f64 {
    if x.is_empty() {
        return v;
    }
    if v <= x[0] {
        return y[0];
    }
    if v >= x[x.len() - 1] {
        return y[y.len() - 1];
    }
    let i = x.partition_point(|t| *t <= v);
    let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
    if x1 == x0 {
        return y1;
    }
    y0 + (v - x0) * (y1 - y0) / (x1 - x0)
}

/// Isotonic regression of labels on probabilities, as scikit-learn fits it.
pub fn isotonic(points: &[(f64, f64)]) -> Calibration {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ties in x become one point with the mean label and their count as weight.
    let mut xs: Vec<f64> = vec![];
    let mut blocks: Vec<(f64, f64)> = vec![]; // (weighted sum of y, weight)
    for (x, y) in sorted {
        if xs.last() == Some(&x) {
            if let Some(b) = blocks.last_mut() {
                b.0 += y;
                b.1 += 1.0;
            }
        } else {
            xs.push(x);
            blocks.push((y, 1.0));
        }
    }
    // Pool adjacent violators over the unique points.
    let mut pools: Vec<(f64, f64, usize)> = vec![]; // (sum, weight, points)
    for (sum, weight) in blocks {
        pools.push((sum, weight, 1));
        while pools.len() > 1 {
            let n = pools.len();
            let (a, b) = (pools[n - 2], pools[n - 1]);
            if a.0 / a.1 <= b.0 / b.1 {
                break;
            }
            pools.truncate(n - 2);
            pools.push((a.0 + b.0, a.1 + b.1, a.2 + b.2));
        }
    }
    let mut fitted = Vec::with_capacity(xs.len());
    for (sum, weight, count) in pools {
        fitted.extend(std::iter::repeat_n(sum / weight, count));
    }
    // Keep the ends of each constant run: interpolation between them is the same.
    let n = xs.len();
    let keep: Vec<bool> = (0..n)
        .map(|i| i == 0 || i + 1 == n || fitted[i - 1] != fitted[i] || fitted[i] != fitted[i + 1])
        .collect();
    Calibration::Isotonic {
        x: xs
            .iter()
            .zip(&keep)
            .filter(|k| *k.1)
            .map(|k| *k.0)
            .collect(),
        y: fitted
            .iter()
            .zip(&keep)
            .filter(|k| *k.1)
            .map(|k| *k.0)
            .collect(),
    }
}

/// Platt scaling: the unpenalised 1-D logistic regression of labels on log-odds, by
/// Newton's method (two parameters: exact steps, converged to rounding).
pub fn platt(points: &[(f64, f64)]) -> Result<Calibration> {
    let loss = |a: f64, b: f64| -> f64 {
        points
            .iter()
            .map(|(m, y)| {
                let z = a * m + b;
                // log(1 + e^z) − y·z, stable for large |z|.
                z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0, 0.0);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (m, y) in points {
            let p = augur_udfs::math::sigmoid(a * m + b);
            let w = p * (1.0 - p);
            ga += (p - y) * m;
            gb += p - y;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            return Err(plan_err(
                "platt calibration: the model's scores do not vary; nothing to fit".into(),
            ));
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        if da.abs() <= 1e-15 * a.abs().max(1.0) && db.abs() <= 1e-15 * b.abs().max(1.0) {
            break;
        }
        // Halve the step while the loss rises by more than rounding (far from the optimum).
        let mut step = 1.0;
        let mut next = loss(a - da, b - db);
        while next > current + 1e-12 * current.abs() && step > 1e-10 {
            step /= 2.0;
            next = loss(a - step * da, b - step * db);
        }
        a -= step * da;
        b -= step * db;
        current = next;
    }
    Ok(Calibration::Platt { a, b })
}

/// Look up the model a `CALIBRATE MODEL` names (before training, in the operator).
pub fn resolve(options: &mut TrainOptions, registry: &Registry) -> Result<()> {
    if let Some(c) = options.calibration.as_mut() {
        let base = registry.get(&c.base)?;
        if !base.is_classifier() {
            return Err(plan_err(format!(
                "CALIBRATE MODEL: '{}' is a {}; only classifiers have probabilities to calibrate",
                c.base,
                base.options.model_type.name()
            )));
        }
        c.resolved = Some(Box::new(base));
    }
    Ok(())
}

/// The calibrated version: the base model with the map fitted on `data`'s rows.
pub fn fit(name: &str, version: u32, options: &TrainOptions, data: &TrainingData) -> Result<Model> {
    let params = options
        .calibration
        .as_ref()
        .ok_or_else(|| DataFusionError::Internal("calibration without parameters".into()))?;
    let base = params
        .resolved
        .as_deref()
        .ok_or_else(|| DataFusionError::Internal("calibration base not resolved".into()))?;
    let prep = prepare(options, data)?;
    let mut points: Vec<(f64, f64)> = vec![];
    let mut raw_points: Vec<(f64, f64)> = vec![];
    for batch in prep.train_parts.iter().flatten() {
        let (raw, valid) = base.raw_scores(batch)?;
        let labels = super::binning::fit::labels(
            std::slice::from_ref(batch),
            prep.label_index,
            &options.label,
        )?;
        for ((r, ok), y) in raw.iter().zip(valid).zip(labels.iter().flatten()) {
            if let (true, Some(y)) = (ok, y) {
                let y = f64::from(u8::from(*y));
                raw_points.push((*r, y));
                points.push((augur_udfs::math::sigmoid(*r), y));
            }
        }
    }
    if points.is_empty() {
        return Err(plan_err(
            "CALIBRATE MODEL: the query has no rows the model can score with a 0/1 label".into(),
        ));
    }
    let map = match params.method {
        Method::Isotonic => isotonic(&points),
        Method::Platt => platt(&raw_points)?,
    };
    let mut model = base.clone();
    model.name = name.to_string();
    model.version = version;
    model.calibration = Some(map);
    model.options.calibration = Some(CalibrationParams {
        base: format!("{}@{}", base.name, base.version),
        method: params.method,
        resolved: None,
    });
    model.training.warnings = vec![];
    model.training.rows_read = prep.rows_read;
    model.training.rows_used = points.len();
    model.training.rows_dropped = prep.rows_read - points.len();
    model.training.rows_held_out = 0;
    model.created_unix = now_unix();
    let mut scored: Vec<(f64, f64, f64)> = raw_points
        .iter()
        .zip(&points)
        .map(|((r, y), (p, _))| (model.calibrated(*r, *p), *y, 1.0))
        .collect();
    model.training.metrics_on = "calibration rows".into();
    model.set_metrics(&mut scored);
    Ok(model)
}

impl Model {
    /// The probability after the model's calibration, if any.
    pub fn calibrated(&self, raw: f64, p: f64) -> f64 {
        match &self.calibration {
            Some(c) => c.apply(raw, p),
            None => p,
        }
    }
}

/// One bin of a calibration curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveBin {
    pub bin: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
    pub count: f64,
}

/// Per equal-width bin, the sums of probabilities and labels and the count of rows, and the
/// squared errors over all rows: built over parts of the rows apart (training's 10M on every
/// core), then merged in order.
#[derive(Debug, Clone)]
pub struct Bins {
    inner: Vec<f64>,
    sums: Vec<[f64; 3]>,
    squares: f64,
}

impl Bins {
    /// Edges i/bins; a probability on an inner edge belongs to the lower bin.
    pub fn new(bins: usize) -> Bins {
        let step = 1.0 / bins as f64;
        Bins {
            inner: (1..bins).map(|i| i as f64 * step).collect(),
            sums: vec![[0.0; 3]; bins],
            squares: 0.0,
        }
    }

    /// The bins of (probability, label) pairs.
    pub fn of(points: impl IntoIterator<Item = (f64, f64)>, bins: usize) -> Bins {
        let mut sums = Bins::new(bins);
        for (p, y) in points {
            sums.add(p, y);
        }
        sums
    }

    pub fn add(&mut self, p: f64, y: f64) {
        let b = self.inner.partition_point(|e| *e < p);
        let s = &mut self.sums[b];
        s[0] += p;
        s[1] += y;
        s[2] += 1.0;
        self.squares += (p - y) * (p - y);
    }

    pub fn merge(&mut self, other: &Bins) {
        for (s, o) in self.sums.iter_mut().zip(&other.sums) {
            for k in 0..3 {
                s[k] += o[k];
            }
        }
        self.squares += other.squares;
    }

    pub fn rows(&self) -> f64 {
        self.sums.iter().map(|s| s[2]).sum()
    }

    /// The non-empty bins.
    pub fn curve(&self) -> Vec<CurveBin> {
        self.sums
            .iter()
            .enumerate()
            .filter(|(_, s)| s[2] > 0.0)
            .map(|(i, s)| CurveBin {
                bin: i,
                mean_predicted: s[0] / s[2],
                observed_rate: s[1] / s[2],
                count: s[2],
            })
            .collect()
    }

    /// Brier score: the mean squared error of the probabilities (NaN without rows).
    pub fn brier(&self) -> f64 {
        self.squares / self.rows()
    }

    /// Expected calibration error: the bins' |mean probability − observed rate| weighted
    /// by their share of the rows (NaN without rows).
    pub fn ece(&self) -> f64 {
        let n = self.rows();
        if n == 0.0 {
            return f64::NAN;
        }
        self.curve()
            .iter()
            .map(|b| b.count / n * (b.mean_predicted - b.observed_rate).abs())
            .sum()
    }
}

/// scikit-learn's `calibration_curve(strategy='uniform')`: edges i/bins; a probability on an
/// inner edge belongs to the lower bin; empty bins are left out.
pub fn curve(points: impl IntoIterator<Item = (f64, f64)>, bins: usize) -> Vec<CurveBin> {
    Bins::of(points, bins).curve()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        let pts = [(0.1, 0.0), (0.2, 1.0), (0.3, 0.0), (0.4, 1.0), (0.4, 1.0)];
        let c = isotonic(&pts);
        // 0.2 and 0.3 pool to 0.5; 0.4 (two rows) is 1.
        assert_eq!(c.apply(0.0, 0.1), 0.0);
        assert_eq!(c.apply(0.0, 0.25), 0.5);
        assert!((c.apply(0.0, 0.35) - 0.75).abs() < 1e-12);
        assert_eq!(c.apply(0.0, 0.9), 1.0);
        assert_eq!(c.apply(0.0, 0.0), 0.0);
    }

    #[test]
    fn platt_recovers_a_known_map() {
        // Labels drawn so that the observed rate is σ(2m − 1) exactly on each score.
        let mut pts = vec![];
        for k in -5..=5 {
            let m = k as f64 / 2.0;
            let p = augur_udfs::math::sigmoid(2.0 * m - 1.0);
            let ones = (p * 1_000_000.0).round() as usize;
            pts.push((m, ones as f64 / 1_000_000.0));
        }
        let Calibration::Platt { a, b } = platt(&pts).unwrap() else {
            panic!("not platt")
        };
        assert!((a - 2.0).abs() < 1e-5 && (b + 1.0).abs() < 1e-5, "{a} {b}");
    }

    #[test]
    fn curve_bins_follow_scikit_learn_edges() {
        let pts = [(0.2, 0.0), (0.1, 1.0), (0.5, 1.0), (0.55, 0.0)];
        let c = curve(pts.iter().copied(), 5);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].bin, c[0].count), (0, 2.0));
        assert_eq!((c[1].bin, c[1].count), (2, 2.0));
        let bins = Bins::of(pts.iter().copied(), 5);
        let (brier, ece) = (bins.brier(), bins.ece());
        assert!((brier - (0.04 + 0.81 + 0.25 + 0.3025) / 4.0).abs() < 1e-12);
        assert!((ece - (0.5 * (0.15f64 - 0.5).abs() + 0.5 * (0.525f64 - 0.5).abs())).abs() < 1e-12);
    }
}
