//! Linear regression with Spark's `LinearRegression` conventions: features and label
//! standardized (σ with n−1), the elastic-net penalty scaled by the label's σ
//! (`effectiveRegParam = regParam / σ_y`), intercept unpenalized, L-BFGS or OWL-QN.

use datafusion::error::Result;

use super::logistic::{Params, Summary};
use super::optim::{self, Iteration, Options, StopReason};
use super::rows::{FirstError, Loss, Rows};

#[derive(Debug, Clone)]
pub struct Fit {
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub history: Vec<Iteration>,
    pub reason: StopReason,
    /// Passes over the training data (objective evaluations).
    pub passes: usize,
    pub summary: Summary,
    pub label_mean: f64,
    pub label_std: f64,
}

/// Fit on `features` columns; `shard.label` holds the numeric label.
pub fn fit(
    rows: &dyn Rows,
    features: usize,
    params: &Params,
    mut keep_going: impl FnMut(&Iteration) -> bool,
) -> Result<Fit> {
    let summary = rows.summary(features)?;
    let w_total = summary.weight_sum;
    let label = rows.label_moments(w_total)?;
    let label_mean = label.mean;
    let denominator = w_total - label.weight_squares / w_total;
    let label_std = if denominator > 0.0 {
        (label.spread / denominator).sqrt()
    } else {
        0.0
    };
    let std = summary.std.clone();
    let mean = summary.mean.clone();
    if label_std == 0.0 {
        // A constant label: Spark returns zero coefficients and the label as intercept.
        let history = vec![Iteration {
            objective: 0.0,
            gradient_norm: 0.0,
            step: 0.0,
        }];
        return Ok(Fit {
            coefficients: vec![0.0; features],
            intercept: label_mean,
            history,
            reason: StopReason::GradientConverged,
            passes: 0,
            summary,
            label_mean,
            label_std,
        });
    }
    let center = params.fit_intercept;
    let effective = params.reg_param / label_std;
    let l1_total = effective * params.elastic_net_param;
    let l2_total = effective * (1.0 - params.elastic_net_param);
    let scale = |j: usize, p: i32| {
        if params.standardization || std[j] == 0.0 {
            1.0
        } else {
            1.0 / std[j].powi(p)
        }
    };
    let l2: Vec<f64> = (0..features).map(|j| l2_total * scale(j, 2)).collect();
    let l1: Vec<f64> = (0..features)
        .map(|j| {
            if std[j] > 0.0 {
                l1_total * scale(j, 1)
            } else {
                0.0
            }
        })
        .collect();
    // Centered (when fitting an intercept) and scaled: ỹ = (y − ȳ)/σ_y, z = (x − μ)/σ.
    let errors = FirstError::default();
    let objective = |gamma: &[f64], grad: &mut [f64]| -> f64 {
        let a: Vec<f64> = (0..features)
            .map(|j| if std[j] > 0.0 { gamma[j] / std[j] } else { 0.0 })
            .collect();
        let offset = if center {
            -(0..features).map(|j| a[j] * mean[j]).sum::<f64>()
        } else {
            0.0
        };
        let y_shift = if center { label_mean } else { 0.0 };
        if errors.is_set() {
            return f64::NAN;
        }
        let loss = Loss::Squared {
            shift: y_shift,
            scale: label_std,
        };
        let total = match rows.pass(&a, offset, loss) {
            Ok(total) => total,
            Err(e) => {
                errors.keep(e);
                return f64::NAN;
            }
        };
        let (loss, raw, residual_sum) = (total.loss, total.raw, total.residual_sum);
        let mut value = loss / w_total;
        for j in 0..features {
            grad[j] = if std[j] > 0.0 {
                let c = if center {
                    raw[j] - mean[j] * residual_sum
                } else {
                    raw[j]
                };
                c / std[j] / w_total
            } else {
                0.0
            };
            grad[j] += l2[j] * gamma[j];
            value += 0.5 * l2[j] * gamma[j] * gamma[j];
        }
        value
    };
    let options = Options {
        max_iter: params.max_iter,
        tol: params.tol,
        memory: 10,
    };
    let solution = optim::minimize(objective, vec![0.0; features], &l1, &options, |it| {
        !errors.is_set() && keep_going(it)
    });
    errors.into_result()?;
    let coefficients: Vec<f64> = (0..features)
        .map(|j| {
            if std[j] > 0.0 {
                solution.x[j] * label_std / std[j]
            } else {
                0.0
            }
        })
        .collect();
    let intercept = if center {
        label_mean
            - (0..features)
                .map(|j| coefficients[j] * mean[j])
                .sum::<f64>()
    } else {
        0.0
    };
    Ok(Fit {
        coefficients,
        intercept,
        history: solution.history,
        reason: solution.reason,
        passes: solution.evaluations,
        summary,
        label_mean,
        label_std,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::shard::Shard;

    #[test]
    fn ordinary_least_squares_recovers_an_exact_linear_model() {
        let mut s = Shard {
            columns: vec![vec![], vec![]],
            ..Default::default()
        };
        for i in 0..200 {
            let (x0, x1) = (i as f64 * 0.37 % 11.0, (i * i) as f64 % 17.0);
            s.columns[0].push(x0);
            s.columns[1].push(x1);
            s.label.push(4.0 + 2.5 * x0 - 0.75 * x1);
        }
        let params = Params {
            max_iter: 500,
            tol: 1e-14,
            ..Params::default()
        };
        let f = fit(&vec![s], 2, &params, |_| true).unwrap();
        assert!(
            (f.coefficients[0] - 2.5).abs() < 1e-6 && (f.coefficients[1] + 0.75).abs() < 1e-6,
            "{:?}",
            f.coefficients
        );
        assert!((f.intercept - 4.0).abs() < 1e-5, "{}", f.intercept);
    }

    /// Ridge in closed form on centered, scaled data: γ = (ZᵀZ/n + λ/σ_y I)⁻¹ Zᵀỹ/n for one feature.
    #[test]
    fn ridge_matches_its_closed_form() {
        let mut s = Shard {
            columns: vec![vec![]],
            ..Default::default()
        };
        for i in 0..100 {
            let x = (i as f64).sin() * 3.0 + i as f64 * 0.05;
            s.columns[0].push(x);
            s.label.push(1.0 + 2.0 * x + (i as f64 * 1.7).cos());
        }
        let lambda = 0.3;
        let f = fit(
            &vec![s.clone()],
            1,
            &Params {
                reg_param: lambda,
                max_iter: 500,
                tol: 1e-14,
                ..Params::default()
            },
            |_| true,
        )
        .unwrap();
        let n = 100.0;
        let (mx, my) = (
            s.columns[0].iter().sum::<f64>() / n,
            s.label.iter().sum::<f64>() / n,
        );
        let sx = (s.columns[0].iter().map(|x| (x - mx).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let sy = (s.label.iter().map(|y| (y - my).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let zz: f64 = s.columns[0]
            .iter()
            .map(|x| ((x - mx) / sx).powi(2))
            .sum::<f64>()
            / n;
        let zy: f64 = s.columns[0]
            .iter()
            .zip(&s.label)
            .map(|(x, y)| (x - mx) / sx * (y - my) / sy)
            .sum::<f64>()
            / n;
        let gamma = zy / (zz + lambda / sy);
        let beta = gamma * sy / sx;
        assert!(
            (f.coefficients[0] - beta).abs() < 1e-7 * beta.abs(),
            "{} vs {beta}",
            f.coefficients[0]
        );
    }
}
