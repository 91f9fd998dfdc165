//! Binary logistic regression with Spark MLlib's objective: weighted mean log-loss plus an
//! elastic-net penalty on standardized coefficients, the intercept unpenalized, L-BFGS
//! without an L1 term and OWL-QN with one (DESIGN §5).

use datafusion::error::Result;

use rayon::prelude::*;

use super::optim::{self, Iteration, Options, StopReason};
use super::rows::{FirstError, Loss, Rows};
use super::shard::{Hot, Part, Shard};

#[derive(Debug, Clone)]
pub struct Params {
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub fit_intercept: bool,
    pub standardization: bool,
}

impl Default for Params {
    /// Spark's defaults.
    fn default() -> Self {
        Params {
            reg_param: 0.0,
            elastic_net_param: 0.0,
            max_iter: 100,
            tol: 1e-6,
            fit_intercept: true,
            standardization: true,
        }
    }
}

/// Weighted feature statistics, as Spark's summarizer computes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub mean: Vec<f64>,
    /// Weighted unbiased standard deviation: Σw(x−μ)² / (W − Σw²/W), i.e. n−1 for unit weights.
    pub std: Vec<f64>,
    pub weight_sum: f64,
    pub positive_weight: f64,
    pub rows: usize,
}

pub fn summarize(shards: &[Shard], features: usize) -> Summary {
    let mut w_sum = 0.0;
    let mut w2_sum = 0.0;
    let mut pos = 0.0;
    let mut rows = 0;
    for s in shards {
        rows += s.rows();
        for i in 0..s.rows() {
            let w = s.w(i);
            w_sum += w;
            w2_sum += w * w;
            pos += w * s.label[i];
        }
    }
    // Each shard's column sums on its own core, added in shard order: the same bits as one
    // shard after another.
    let sum = per_shard_sums(shards, features, |s, sum| {
        for part in s.parts() {
            match part {
                Part::Dense(j, col) => {
                    sum[j] += col.iter().enumerate().map(|(i, x)| s.w(i) * x).sum::<f64>();
                }
                Part::Hot(_, h) => {
                    // w·1 where the level is k, w·0 elsewhere: the same sum per level.
                    let mut level_sum = vec![0.0; h.levels + 1];
                    for (i, &l) in h.level.iter().enumerate() {
                        level_sum[l as usize] += s.w(i);
                    }
                    for (k, v) in level_sum[..h.levels].iter().enumerate() {
                        sum[h.first + k] += v;
                    }
                }
            }
        }
    });
    let mean: Vec<f64> = sum
        .iter()
        .map(|v| if w_sum > 0.0 { v / w_sum } else { 0.0 })
        .collect();
    // Second pass for the variance: stable where sums of squares would cancel.
    let m2 = per_shard_sums(shards, features, |s, m2| {
        for part in s.parts() {
            match part {
                Part::Dense(j, col) => {
                    m2[j] += col
                        .iter()
                        .enumerate()
                        .map(|(i, x)| s.w(i) * (x - mean[j]).powi(2))
                        .sum::<f64>();
                }
                Part::Hot(_, h) => hot_squares(s, h, &mean, m2),
            }
        }
    });
    let denominator = w_sum - if w_sum > 0.0 { w2_sum / w_sum } else { 0.0 };
    let std = m2
        .iter()
        .map(|v| {
            if denominator > 0.0 {
                (v / denominator).max(0.0).sqrt()
            } else {
                0.0
            }
        })
        .collect();
    Summary {
        mean,
        std,
        weight_sum: w_sum,
        positive_weight: pos,
        rows,
    }
}

/// `add(shard, sums)` for every shard on all cores, each into its own zeroed sums, then the
/// shards' sums added in shard order.
fn per_shard_sums<F>(shards: &[Shard], features: usize, add: F) -> Vec<f64>
where
    F: Fn(&Shard, &mut [f64]) + Sync,
{
    let parts: Vec<Vec<f64>> = shards
        .par_iter()
        .map(|s| {
            let mut sums = vec![0.0; features];
            add(s, &mut sums);
            sums
        })
        .collect();
    let mut total = vec![0.0; features];
    for part in parts {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}

/// Σ w(x − mean)² over a one-hot group's features. Up to 64 levels, row by row as the dense
/// columns sum (the same bits); beyond, from each level's weight (rows × levels would not do).
fn hot_squares(s: &Shard, h: &Hot, mean: &[f64], m2: &mut [f64]) {
    let mean = &mean[h.first..h.first + h.levels];
    let one: Vec<f64> = mean.iter().map(|m| (1.0 - m).powi(2)).collect();
    let zero: Vec<f64> = mean.iter().map(|m| (0.0 - m).powi(2)).collect();
    let m2 = &mut m2[h.first..h.first + h.levels];
    if h.levels <= 64 {
        let mut acc = vec![0.0; h.levels];
        for (i, &l) in h.level.iter().enumerate() {
            let w = s.w(i);
            for (k, a) in acc.iter_mut().enumerate() {
                *a += w * if k == l as usize { one[k] } else { zero[k] };
            }
        }
        for (m, a) in m2.iter_mut().zip(acc) {
            *m += a;
        }
        return;
    }
    let mut level_weight = vec![0.0; h.levels + 1];
    let mut total = 0.0;
    for (i, &l) in h.level.iter().enumerate() {
        level_weight[l as usize] += s.w(i);
        total += s.w(i);
    }
    for k in 0..h.levels {
        m2[k] += level_weight[k] * one[k] + (total - level_weight[k]) * zero[k];
    }
}

#[derive(Debug, Clone)]
pub struct Fit {
    /// Coefficients on the original feature scale.
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub history: Vec<Iteration>,
    pub reason: StopReason,
    /// Passes over the training data (objective evaluations).
    pub passes: usize,
    pub summary: Summary,
    /// Smallest `reg_param` at which every coefficient is zero (None without an L1 term).
    pub lambda_max: Option<f64>,
}

impl Fit {
    pub fn iterations(&self) -> usize {
        self.history.len().saturating_sub(1)
    }

    pub fn all_zero(&self) -> bool {
        self.coefficients.iter().all(|c| *c == 0.0)
    }
}

/// The objective's pieces for a given feature layout and parameters.
struct Objective<'a> {
    rows: &'a dyn Rows,
    errors: &'a FirstError,
    summary: &'a Summary,
    params: &'a Params,
    features: usize,
    /// Per-coefficient L2 weight on the standardized coefficient γ_j.
    l2: Vec<f64>,
}

impl Objective<'_> {
    /// Value and gradient at θ = [γ_1 … γ_d, b], γ standardized. One fused pass per shard,
    /// shards in parallel.
    fn evaluate(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let d = self.features;
        let (mean, std) = (&self.summary.mean, &self.summary.std);
        let center = self.params.fit_intercept;
        // Margin on raw features: m = b + Σ a_j x_j − Σ a_j μ_j with a_j = γ_j/σ_j.
        let a: Vec<f64> = (0..d)
            .map(|j| if std[j] > 0.0 { theta[j] / std[j] } else { 0.0 })
            .collect();
        let intercept = if center { theta[d] } else { 0.0 };
        let offset = intercept
            - if center {
                (0..d).map(|j| a[j] * mean[j]).sum::<f64>()
            } else {
                0.0
            };
        if self.errors.is_set() {
            return f64::NAN;
        }
        let total = match self.rows.pass(&a, offset, Loss::Logistic) {
            Ok(total) => total,
            Err(e) => {
                self.errors.keep(e);
                return f64::NAN;
            }
        };
        let (loss, raw, residual_sum) = (total.loss, total.raw, total.residual_sum);
        let w = self.summary.weight_sum;
        let mut value = loss / w;
        for j in 0..d {
            // ∂/∂γ_j of the loss: Σ r_i (x_ij − μ_j)/σ_j, over W.
            grad[j] = if std[j] > 0.0 {
                let centered = if center {
                    raw[j] - mean[j] * residual_sum
                } else {
                    raw[j]
                };
                centered / std[j] / w
            } else {
                0.0
            };
            grad[j] += self.l2[j] * theta[j];
            value += 0.5 * self.l2[j] * theta[j] * theta[j];
        }
        grad[d] = if center { residual_sum / w } else { 0.0 };
        value
    }
}

/// Fit a binary logistic regression on `features` columns. Labels must be 0/1 (checked by
/// the caller); the summary must have positive weight.
pub fn fit(
    rows: &dyn Rows,
    features: usize,
    params: &Params,
    mut keep_going: impl FnMut(&Iteration) -> bool,
) -> Result<Fit> {
    let summary = rows.summary(features)?;
    let errors = FirstError::default();
    let std = &summary.std;
    let l1_total = params.reg_param * params.elastic_net_param;
    let l2_total = params.reg_param * (1.0 - params.elastic_net_param);
    // With standardization off the penalty applies to original-scale coefficients γ_j/σ_j.
    let scale = |j: usize, power: i32| -> f64 {
        if params.standardization || std[j] == 0.0 {
            1.0
        } else {
            1.0 / std[j].powi(power)
        }
    };
    let l2: Vec<f64> = (0..features).map(|j| l2_total * scale(j, 2)).collect();
    let mut l1: Vec<f64> = (0..features)
        .map(|j| {
            if std[j] > 0.0 {
                l1_total * scale(j, 1)
            } else {
                0.0
            }
        })
        .collect();
    l1.push(0.0); // the intercept is never penalised
    let objective = Objective {
        rows,
        errors: &errors,
        summary: &summary,
        params,
        features,
        l2,
    };

    let mut theta = vec![0.0; features + 1];
    let negative = summary.weight_sum - summary.positive_weight;
    if params.fit_intercept && summary.positive_weight > 0.0 && negative > 0.0 {
        theta[features] = (summary.positive_weight / negative).ln();
    }
    let lambda_max = (params.elastic_net_param > 0.0).then(|| {
        let mut g = vec![0.0; features + 1];
        objective.evaluate(&theta, &mut g);
        (0..features)
            .filter(|&j| std[j] > 0.0)
            .map(|j| g[j].abs() / (params.elastic_net_param * scale(j, 1)))
            .fold(0.0, f64::max)
    });
    let options = Options {
        max_iter: params.max_iter,
        tol: params.tol,
        memory: 10,
    };
    let solution = optim::minimize(
        |t, g| objective.evaluate(t, g),
        theta,
        &l1,
        &options,
        |it| !errors.is_set() && keep_going(it),
    );
    errors.into_result()?;
    let gamma = &solution.x;
    let coefficients: Vec<f64> = (0..features)
        .map(|j| if std[j] > 0.0 { gamma[j] / std[j] } else { 0.0 })
        .collect();
    let intercept = if params.fit_intercept {
        gamma[features]
            - (0..features)
                .map(|j| coefficients[j] * summary.mean[j])
                .sum::<f64>()
    } else {
        0.0
    };
    Ok(Fit {
        coefficients,
        intercept,
        history: solution.history,
        reason: solution.reason,
        // the λ_max probe is one more pass
        passes: solution.evaluations + usize::from(lambda_max.is_some()),
        summary,
        lambda_max,
    })
}

/// Uniform doubles in [0, 1) from a fixed seed (a 64-bit LCG): test data without a crate.
#[cfg(test)]
pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic dataset: 3 features on different scales, labels from a
    /// logistic model, plus one constant column.
    fn data(rows: usize, shards: usize) -> Vec<Shard> {
        let mut uniform = uniform(12345);
        let mut out = vec![Shard::default(); shards];
        for s in out.iter_mut() {
            s.columns = vec![vec![]; 4];
        }
        for i in 0..rows {
            let x = [
                uniform() * 10.0,
                uniform() * 2.0 - 1.0,
                100.0 + uniform() * 50.0,
                3.0,
            ];
            let m = -1.0 + 0.3 * x[0] - 1.5 * x[1] + 0.01 * (x[2] - 125.0);
            let y = if uniform() < 1.0 / (1.0 + (-m).exp()) {
                1.0
            } else {
                0.0
            };
            let s = &mut out[i % shards];
            for j in 0..4 {
                s.columns[j].push(x[j]);
            }
            s.label.push(y);
        }
        out
    }

    /// A category held as levels has the statistics of its 0/1 columns: to the bit up to 64
    /// levels, to rounding beyond.
    #[test]
    fn summaries_of_levels_match_their_dense_columns() {
        use crate::ml::shard::tests::{mixed, wide};
        for weighted in [false, true] {
            let hot = vec![mixed(10_001, 3, weighted), mixed(17, 4, weighted)];
            let dense: Vec<Shard> = hot.iter().map(Shard::dense).collect();
            assert_eq!(summarize(&hot, 5), summarize(&dense, 5));
        }
        let hot = vec![wide(20_000, 100)];
        let dense: Vec<Shard> = hot.iter().map(Shard::dense).collect();
        let (got, want) = (summarize(&hot, 101), summarize(&dense, 101));
        assert_eq!(got.mean, want.mean);
        for (g, w) in got.std.iter().zip(&want.std) {
            assert!((g - w).abs() <= 1e-12 * w.max(1.0), "{g} vs {w}");
        }
    }

    fn tight(reg: f64, alpha: f64) -> Params {
        Params {
            reg_param: reg,
            elastic_net_param: alpha,
            max_iter: 1000,
            tol: 1e-12,
            ..Params::default()
        }
    }

    /// Newton's method on the same objective in original coordinates (L2 only): an
    /// independent solver to check against.
    fn newton_l2(shards: &[Shard], reg: f64) -> (Vec<f64>, f64) {
        let s = summarize(shards, 4);
        let rows: Vec<(Vec<f64>, f64)> = shards
            .iter()
            .flat_map(|sh| {
                (0..sh.rows())
                    .map(move |i| ((0..4).map(|j| sh.columns[j][i]).collect(), sh.label[i]))
            })
            .collect();
        let n = rows.len() as f64;
        let active: Vec<usize> = (0..4).filter(|&j| s.std[j] > 0.0).collect();
        let k = active.len() + 1;
        let mut beta = vec![0.0; k]; // active coefficients, then intercept
        for _ in 0..50 {
            let mut g = vec![0.0; k];
            let mut h = vec![vec![0.0; k]; k];
            for (x, y) in &rows {
                let feats: Vec<f64> = active.iter().map(|&j| x[j]).chain([1.0]).collect();
                let m: f64 = feats.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-m).exp());
                for a in 0..k {
                    g[a] += (p - y) * feats[a] / n;
                    for b in 0..k {
                        h[a][b] += p * (1.0 - p) * feats[a] * feats[b] / n;
                    }
                }
            }
            for (a, &j) in active.iter().enumerate() {
                // penalty λ/2 (β σ)²
                g[a] += reg * beta[a] * s.std[j] * s.std[j];
                h[a][a] += reg * s.std[j] * s.std[j];
            }
            let step = solve(h, g);
            for a in 0..k {
                beta[a] -= step[a];
            }
        }
        let mut coef = vec![0.0; 4];
        for (a, &j) in active.iter().enumerate() {
            coef[j] = beta[a];
        }
        (coef, beta[k - 1])
    }

    fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap_or(c);
            a.swap(c, p);
            b.swap(c, p);
            for r in c + 1..n {
                let f = a[r][c] / a[c][c];
                for k in c..n {
                    a[r][k] -= f * a[c][k];
                }
                b[r] -= f * b[c];
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            x[r] = (b[r] - (r + 1..n).map(|k| a[r][k] * x[k]).sum::<f64>()) / a[r][r];
        }
        x
    }

    #[test]
    fn l2_matches_an_exact_newton_solve() {
        let shards = data(2000, 3);
        let fit = fit(&shards, 4, &tight(0.05, 0.0), |_| true).unwrap();
        let (coef, intercept) = newton_l2(&shards, 0.05);
        for j in 0..4 {
            assert!(
                (fit.coefficients[j] - coef[j]).abs() <= 1e-6 * coef[j].abs().max(1e-3),
                "β{j}: {} vs {}",
                fit.coefficients[j],
                coef[j]
            );
        }
        assert!(
            (fit.intercept - intercept).abs() < 1e-6,
            "{} vs {intercept}",
            fit.intercept
        );
        assert_eq!(fit.coefficients[3], 0.0, "constant feature gets 0");
        assert!(fit.reason.converged(), "{:?}", fit.reason);
    }

    #[test]
    fn unregularized_matches_newton_and_ignores_sharding() {
        let one = fit(&data(1500, 1), 4, &tight(0.0, 0.0), |_| true).unwrap();
        let four = fit(&data(1500, 4), 4, &tight(0.0, 0.0), |_| true).unwrap();
        let (coef, intercept) = newton_l2(&data(1500, 1), 0.0);
        for j in 0..3 {
            assert!((one.coefficients[j] - coef[j]).abs() < 1e-6 * coef[j].abs().max(1.0));
            assert!((one.coefficients[j] - four.coefficients[j]).abs() < 1e-9);
        }
        assert!((one.intercept - intercept).abs() < 1e-6);
    }

    #[test]
    fn all_zero_above_lambda_max_and_not_below() {
        let shards = data(2000, 2);
        let probe = fit(&shards, 4, &tight(10.0, 0.8), |_| true).unwrap();
        let lambda_max = probe.lambda_max.unwrap_or(0.0);
        assert!(probe.all_zero(), "{:?}", probe.coefficients);
        let s = &probe.summary;
        let base = (s.positive_weight / (s.weight_sum - s.positive_weight)).ln();
        assert!(
            (probe.intercept - base).abs() < 1e-9,
            "intercept stays at log(n1/n0)"
        );
        let above = fit(&shards, 4, &tight(lambda_max * 1.01, 0.8), |_| true).unwrap();
        assert!(above.all_zero());
        let below = fit(&shards, 4, &tight(lambda_max * 0.9, 0.8), |_| true).unwrap();
        assert!(!below.all_zero());
    }

    /// With L1 active, the solution satisfies the elastic-net optimality conditions in
    /// standardized coordinates: |∂loss/∂γ_j + λ(1−α)γ_j| ≤ λα at zeros, equality elsewhere.
    #[test]
    fn elastic_net_meets_optimality_conditions() {
        let shards = data(3000, 2);
        let params = tight(0.02, 0.5);
        let fit = fit(&shards, 4, &params, |_| true).unwrap();
        let s = &fit.summary;
        let errors = FirstError::default();
        let objective = Objective {
            rows: &shards,
            errors: &errors,
            summary: s,
            params: &params,
            features: 4,
            l2: vec![0.01; 4],
        };
        let mut theta: Vec<f64> = (0..4).map(|j| fit.coefficients[j] * s.std[j]).collect();
        theta.push(fit.intercept + (0..4).map(|j| fit.coefficients[j] * s.mean[j]).sum::<f64>());
        let mut g = vec![0.0; 5];
        objective.evaluate(&theta, &mut g);
        for j in 0..3 {
            if theta[j] != 0.0 {
                assert!(
                    (g[j] + 0.01 * theta[j].signum()).abs() < 1e-6,
                    "γ{j}={} g={}",
                    theta[j],
                    g[j]
                );
            } else {
                assert!(g[j].abs() <= 0.01 + 1e-6);
            }
        }
        assert!(g[4].abs() < 1e-6, "intercept gradient {}", g[4]);
    }
}
