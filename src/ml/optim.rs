//! Quasi-Newton minimisers as Spark uses them (through Breeze): L-BFGS for smooth objectives
//! and OWL-QN when an L1 term is present, with Breeze's stopping rules.

/// Why the optimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The objective improved by less than `tol·|f₀|` over the last iterations.
    FunctionValuesConverged,
    /// The (pseudo-)gradient's largest component fell below `max(tol·|f|, 1e-8)`.
    GradientConverged,
    MaxIterations,
    /// No step along the search direction lowered the objective: at the optimum to
    /// machine precision, or the problem is badly conditioned.
    LineSearchFailed,
    Cancelled,
}

impl StopReason {
    pub fn converged(self) -> bool {
        matches!(
            self,
            StopReason::FunctionValuesConverged | StopReason::GradientConverged
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            StopReason::FunctionValuesConverged => "objective converged",
            StopReason::GradientConverged => "gradient converged",
            StopReason::MaxIterations => "reached max_iter",
            StopReason::LineSearchFailed => "line search could not improve the objective",
            StopReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub max_iter: usize,
    pub tol: f64,
    /// Number of correction pairs kept (Spark: 10).
    pub memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_iter: 100,
            tol: 1e-6,
            memory: 10,
        }
    }
}

/// One iteration's record, as Spark's objective history.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Iteration {
    pub objective: f64,
    pub gradient_norm: f64,
    pub step: f64,
}

#[derive(Debug, Clone)]
pub struct Solution {
    pub x: Vec<f64>,
    pub objective: f64,
    /// The objective at the start, then after every iteration.
    pub history: Vec<Iteration>,
    pub reason: StopReason,
    /// Objective evaluations: each is one pass over the data.
    pub evaluations: usize,
}

impl Solution {
    pub fn iterations(&self) -> usize {
        self.history.len().saturating_sub(1)
    }
}

/// Breeze keeps this many past objective values for the function-value test.
const HISTORY_LENGTH: usize = 10;

/// Minimise `f(x) + Σ l1[i]·|x[i]|`. `f` writes its gradient into the second argument and
/// returns its value. With all `l1` zero this is L-BFGS; otherwise OWL-QN. `keep_going` is
/// called once per iteration; returning false stops with `Cancelled`.
pub fn minimize(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: Vec<f64>,
    l1: &[f64],
    options: &Options,
    mut keep_going: impl FnMut(&Iteration) -> bool,
) -> Solution {
    let n = x0.len();
    let mut evaluations = 0usize;
    let mut f = |x: &[f64], g: &mut [f64]| {
        evaluations += 1;
        f(x, g)
    };
    let owlqn = l1.iter().any(|&v| v > 0.0);
    let l1_at = |i: usize| l1.get(i).copied().unwrap_or(0.0);
    let penalty =
        |x: &[f64]| -> f64 { x.iter().enumerate().map(|(i, v)| l1_at(i) * v.abs()).sum() };
    let pseudo_gradient = |x: &[f64], g: &[f64], out: &mut [f64]| {
        for i in 0..n {
            let l = l1_at(i);
            out[i] = if l == 0.0 {
                g[i]
            } else if x[i] > 0.0 {
                g[i] + l
            } else if x[i] < 0.0 {
                g[i] - l
            } else if g[i] + l < 0.0 {
                g[i] + l
            } else if g[i] - l > 0.0 {
                g[i] - l
            } else {
                0.0
            };
        }
    };

    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    let mut adj_value = value + penalty(&x);
    let mut adj_g = vec![0.0; n];
    pseudo_gradient(&x, &g, &mut adj_g);
    let initial = adj_value;
    let mut history = vec![Iteration {
        objective: adj_value,
        gradient_norm: norm_inf(&adj_g),
        step: 0.0,
    }];
    let mut past_values: Vec<f64> = vec![];
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = vec![]; // (s, y, 1/(y·s))
    let mut reason = StopReason::MaxIterations;

    if norm_inf(&adj_g) <= (options.tol * adj_value.abs()).max(1e-8) {
        return Solution {
            x,
            objective: adj_value,
            history,
            reason: StopReason::GradientConverged,
            evaluations: 1,
        };
    }

    let mut new_x = vec![0.0; n];
    let mut new_g = vec![0.0; n];
    let mut new_adj_g = vec![0.0; n];
    for iter in 0..options.max_iter {
        // Two-loop recursion on the (pseudo-)gradient.
        let mut dir: Vec<f64> = adj_g.iter().map(|v| -v).collect();
        let mut alphas = vec![0.0; pairs.len()];
        for (k, (s, y, rho)) in pairs.iter().enumerate().rev() {
            let a = rho * dot(s, &dir);
            alphas[k] = a;
            axpy(-a, y, &mut dir);
        }
        if let Some((s, y, _)) = pairs.last() {
            let scale = dot(s, y) / dot(y, y);
            dir.iter_mut().for_each(|d| *d *= scale);
        }
        for (k, (s, y, rho)) in pairs.iter().enumerate() {
            let b = rho * dot(y, &dir);
            axpy(alphas[k] - b, s, &mut dir);
        }
        if owlqn {
            // Keep only components that descend along the pseudo-gradient.
            for i in 0..n {
                if dir[i] * adj_g[i] >= 0.0 {
                    dir[i] = 0.0;
                }
            }
        }
        let mut slope = dot(&dir, &adj_g);
        if slope >= 0.0 {
            // Not a descent direction (curvature information went stale): restart.
            pairs.clear();
            dir = adj_g.iter().map(|v| -v).collect();
            slope = dot(&dir, &adj_g);
        }
        // The orthant each coordinate must stay in (OWL-QN).
        let orthant: Vec<f64> = (0..n)
            .map(|i| {
                if x[i] != 0.0 {
                    x[i].signum()
                } else {
                    -adj_g[i].signum()
                }
            })
            .collect();
        let mut step = if iter == 0 {
            1.0 / norm2(&dir).max(1e-300)
        } else {
            1.0
        };
        let mut accepted = false;
        let mut new_value = 0.0;
        let mut new_adj_value = 0.0;
        for _ in 0..40 {
            for i in 0..n {
                let v = x[i] + step * dir[i];
                new_x[i] = if owlqn && l1_at(i) > 0.0 && v * orthant[i] <= 0.0 {
                    0.0
                } else {
                    v
                };
            }
            new_value = f(&new_x, &mut new_g);
            new_adj_value = new_value + penalty(&new_x);
            let expected = if owlqn {
                // Armijo along the projected step.
                (0..n).map(|i| (new_x[i] - x[i]) * adj_g[i]).sum::<f64>()
            } else {
                step * slope
            };
            if new_adj_value.is_finite() && new_adj_value <= adj_value + 1e-4 * expected {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            reason = StopReason::LineSearchFailed;
            break;
        }
        let s: Vec<f64> = new_x.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = new_g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let ys = dot(&y, &s);
        if ys > 1e-12 * norm2(&y) * norm2(&s) {
            pairs.push((s, y, 1.0 / ys));
            if pairs.len() > options.memory {
                pairs.remove(0);
            }
        }
        std::mem::swap(&mut x, &mut new_x);
        std::mem::swap(&mut g, &mut new_g);
        value = new_value;
        past_values.push(adj_value);
        if past_values.len() > HISTORY_LENGTH {
            past_values.remove(0);
        }
        adj_value = new_adj_value;
        pseudo_gradient(&x, &g, &mut new_adj_g);
        std::mem::swap(&mut adj_g, &mut new_adj_g);
        let record = Iteration {
            objective: adj_value,
            gradient_norm: norm_inf(&adj_g),
            step,
        };
        history.push(record);
        if !keep_going(&record) {
            reason = StopReason::Cancelled;
            break;
        }
        if record.gradient_norm <= (options.tol * adj_value.abs()).max(1e-8) {
            reason = StopReason::GradientConverged;
            break;
        }
        let worst = past_values
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        if past_values.len() >= 2 && (adj_value - worst).abs() <= options.tol * initial.abs() {
            reason = StopReason::FunctionValuesConverged;
            break;
        }
    }
    let _ = value;
    Solution {
        x,
        objective: adj_value,
        history,
        reason,
        evaluations,
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

fn norm2(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn norm_inf(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> Options {
        Options {
            max_iter: 500,
            tol: 1e-12,
            memory: 10,
        }
    }

    #[test]
    fn lbfgs_minimises_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let s = minimize(f, vec![-1.2, 1.0], &[], &tight(), |_| true);
        assert!(
            (s.x[0] - 1.0).abs() < 1e-5 && (s.x[1] - 1.0).abs() < 1e-5,
            "{:?} {:?}",
            s.x,
            s.reason
        );
    }

    /// Lasso with an orthonormal design has a closed form: soft-thresholding of the
    /// least-squares solution. f(x) = ½‖x − b‖² + λ‖x‖₁ → x = sign(b)·max(|b| − λ, 0).
    #[test]
    fn owlqn_solves_lasso_by_soft_thresholding() {
        let b = [3.0, -0.5, 0.2, -2.0, 0.0, 1.0];
        let lambda = 0.7;
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..x.len() {
                g[i] = x[i] - b[i];
                v += 0.5 * (x[i] - b[i]).powi(2);
            }
            v
        };
        let s = minimize(f, vec![0.0; 6], &[lambda; 6], &tight(), |_| true);
        for i in 0..6 {
            let expected = b[i].signum() * (b[i].abs() - lambda).max(0.0);
            assert!(
                (s.x[i] - expected).abs() < 1e-9,
                "x[{i}] = {} expected {expected}",
                s.x[i]
            );
        }
        assert!(
            s.x[1] == 0.0 && s.x[2] == 0.0 && s.x[4] == 0.0,
            "exact zeros: {:?}",
            s.x
        );
    }

    /// A correlated quadratic with L1 on some coordinates only: the optimum satisfies the
    /// subgradient conditions, checked directly.
    #[test]
    fn owlqn_meets_optimality_conditions() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let c = [1.0, -2.0, 0.1];
        let l1 = [0.5, 0.0, 0.3];
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..3 {
                let ax: f64 = (0..3).map(|j| a[i][j] * x[j]).sum();
                g[i] = ax - c[i];
                v += 0.5 * x[i] * ax - c[i] * x[i];
            }
            v
        };
        let s = minimize(f, vec![0.0; 3], &l1, &tight(), |_| true);
        let mut g = [0.0; 3];
        f(&s.x, &mut g);
        for i in 0..3 {
            if s.x[i] != 0.0 {
                assert!(
                    (g[i] + l1[i] * s.x[i].signum()).abs() < 1e-7,
                    "coordinate {i}: {:?}",
                    s.x
                );
            } else {
                assert!(
                    g[i].abs() <= l1[i] + 1e-9,
                    "zero coordinate {i} violates |g| ≤ λ"
                );
            }
        }
    }

    #[test]
    fn stops_at_max_iter_and_on_cancel() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let s = minimize(
            f,
            vec![-1.2, 1.0],
            &[],
            &Options {
                max_iter: 3,
                ..Options::default()
            },
            |_| true,
        );
        assert_eq!((s.reason, s.iterations()), (StopReason::MaxIterations, 3));
        let s = minimize(f, vec![-1.2, 1.0], &[], &tight(), |_| false);
        assert_eq!((s.reason, s.iterations()), (StopReason::Cancelled, 1));
    }
}
