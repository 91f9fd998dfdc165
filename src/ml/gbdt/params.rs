//! Options of `boosted_trees`, with LightGBM's names (and its common aliases), defaults and
//! ranges. Unknown names are errors that list the valid ones.

use serde::{Deserialize, Serialize};

use crate::ml::options::OptionValue;

/// What the trees predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Binary if the label is 0/1, regression otherwise (decided when training starts).
    Auto,
    /// Log-loss on 0/1 labels; the raw score is log-odds.
    Binary,
    /// Squared error (LightGBM's `regression`, L2).
    Regression,
}

impl Objective {
    /// LightGBM's spelling in model.txt.
    pub fn lightgbm_name(self) -> &'static str {
        match self {
            Objective::Binary => "binary sigmoid:1",
            _ => "regression",
        }
    }
}

/// A validation metric for early stopping and the validation curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    BinaryLogloss,
    Auc,
    L2,
    Rmse,
    L1,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::BinaryLogloss => "binary_logloss",
            Metric::Auc => "auc",
            Metric::L2 => "l2",
            Metric::Rmse => "rmse",
            Metric::L1 => "l1",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Auc
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeParams {
    pub objective: Objective,
    pub num_iterations: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    pub max_depth: i64,
    pub min_data_in_leaf: usize,
    pub min_sum_hessian_in_leaf: f64,
    pub lambda_l1: f64,
    pub lambda_l2: f64,
    pub min_gain_to_split: f64,
    pub max_bin: usize,
    pub min_data_in_bin: usize,
    pub bin_construct_sample_cnt: usize,
    pub feature_fraction: f64,
    pub bagging_fraction: f64,
    pub bagging_freq: usize,
    /// `column:+1` / `column:-1` pairs as written, resolved against the features at training.
    pub monotone_constraints: Vec<(String, i8)>,
    pub early_stopping_rounds: usize,
    pub metric: Option<Metric>,
    pub max_cat_to_onehot: usize,
    pub max_cat_threshold: usize,
    pub cat_l2: f64,
    pub cat_smooth: f64,
    pub min_data_per_group: usize,
}

impl Default for TreeParams {
    /// LightGBM's defaults.
    fn default() -> Self {
        TreeParams {
            objective: Objective::Auto,
            num_iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: -1,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            max_bin: 255,
            min_data_in_bin: 3,
            bin_construct_sample_cnt: 200_000,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            monotone_constraints: vec![],
            early_stopping_rounds: 0,
            metric: None,
            max_cat_to_onehot: 4,
            max_cat_threshold: 32,
            cat_l2: 10.0,
            cat_smooth: 10.0,
            min_data_per_group: 100,
        }
    }
}

/// Canonical option names of boosted trees (besides the common split, split_key, seed,
/// weight_col, threshold).
pub const NAMES: &[&str] = &[
    "objective",
    "num_iterations",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_data_in_leaf",
    "min_sum_hessian_in_leaf",
    "lambda_l1",
    "lambda_l2",
    "min_gain_to_split",
    "max_bin",
    "min_data_in_bin",
    "bin_construct_sample_cnt",
    "feature_fraction",
    "bagging_fraction",
    "bagging_freq",
    "monotone_constraints",
    "early_stopping_rounds",
    "metric",
    "max_cat_to_onehot",
    "max_cat_threshold",
    "cat_l2",
    "cat_smooth",
    "min_data_per_group",
];

/// LightGBM's (and scikit-learn API's) other names for the same options.
fn canonical(name: &str) -> &str {
    match name {
        "num_iteration" | "n_iter" | "num_tree" | "num_trees" | "num_round" | "num_rounds"
        | "nrounds" | "num_boost_round" | "n_estimators" => "num_iterations",
        "shrinkage_rate" | "eta" => "learning_rate",
        "num_leaf" | "max_leaves" | "max_leaf" | "max_leaf_nodes" => "num_leaves",
        "min_data_per_leaf" | "min_data" | "min_child_samples" | "min_samples_leaf" => {
            "min_data_in_leaf"
        }
        "min_sum_hessian_per_leaf" | "min_sum_hessian" | "min_hessian" | "min_child_weight" => {
            "min_sum_hessian_in_leaf"
        }
        "reg_alpha" | "l1_regularization" => "lambda_l1",
        "reg_lambda" | "lambda" | "l2_regularization" => "lambda_l2",
        "min_split_gain" => "min_gain_to_split",
        "sub_feature" | "colsample_bytree" => "feature_fraction",
        "sub_row" | "subsample" | "bagging" => "bagging_fraction",
        "subsample_freq" => "bagging_freq",
        "monotone_constraint" | "monotone_constraints_method" => "monotone_constraints",
        "early_stopping_round" | "early_stopping" | "n_iter_no_change" => "early_stopping_rounds",
        "subsample_for_bin" => "bin_construct_sample_cnt",
        other => other,
    }
}

impl TreeParams {
    /// Apply one `name = value`; `Ok(false)` when the name is not a tree option.
    pub fn apply(&mut self, name: &str, value: &OptionValue) -> Result<bool, String> {
        let name = canonical(name);
        let number = || -> Result<f64, String> {
            match value {
                OptionValue::Number(n) => n
                    .parse::<f64>()
                    .map_err(|_| format!("option {name}: '{n}' is not a number")),
                other => Err(format!("option {name} takes a number, got {other}")),
            }
        };
        let range = |lo: f64, hi: f64, what: &str| -> Result<f64, String> {
            let v = number()?;
            if v.is_finite() && v >= lo && v <= hi {
                Ok(v)
            } else {
                Err(format!("option {name} must be {what}, got {v}"))
            }
        };
        let count = |lo: f64, hi: f64, what: &str| -> Result<usize, String> {
            let v = range(lo, hi, what)?;
            if v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(format!("option {name} takes a whole number, got {v}"))
            }
        };
        let text = || match value {
            OptionValue::Text(t) => Ok(t.clone()),
            other => Err(format!("option {name} takes a quoted text, got {other}")),
        };
        match name {
            "objective" => {
                self.objective = match text()?.to_ascii_lowercase().as_str() {
                    "binary" | "binary_logloss" | "logistic" => Objective::Binary,
                    "regression" | "regression_l2" | "l2" | "mse" | "mean_squared_error" => {
                        Objective::Regression
                    }
                    other => {
                        return Err(format!(
                            "option objective must be 'binary' or 'regression', got '{other}'"
                        ));
                    }
                }
            }
            "num_iterations" => self.num_iterations = count(1.0, 1e6, "a count ≥ 1")?,
            "learning_rate" => self.learning_rate = range(1e-12, 1e6, "> 0")?,
            "num_leaves" => {
                self.num_leaves = count(f64::MIN, f64::MAX, "a count").and_then(|n| {
                    if (2..=131_072).contains(&n) {
                        Ok(n)
                    } else {
                        Err(format!(
                            "option num_leaves must be between 2 and 131072, got {n}"
                        ))
                    }
                })?
            }
            "max_depth" => {
                let v = range(-1.0e9, 1.0e9, "a whole number (≤ 0: no limit)")?;
                if v.fract() != 0.0 {
                    return Err(format!("option max_depth takes a whole number, got {v}"));
                }
                self.max_depth = v as i64;
            }
            "min_data_in_leaf" => self.min_data_in_leaf = count(0.0, 1e12, "a count ≥ 0")?,
            "min_sum_hessian_in_leaf" => {
                self.min_sum_hessian_in_leaf = range(0.0, f64::MAX, "≥ 0")?
            }
            "lambda_l1" => self.lambda_l1 = range(0.0, f64::MAX, "≥ 0")?,
            "lambda_l2" => self.lambda_l2 = range(0.0, f64::MAX, "≥ 0")?,
            "min_gain_to_split" => self.min_gain_to_split = range(0.0, f64::MAX, "≥ 0")?,
            "max_bin" => {
                self.max_bin = count(2.0, 255.0, "between 2 and 255 (bins are stored as bytes)")?
            }
            "min_data_in_bin" => self.min_data_in_bin = count(1.0, 1e12, "a count ≥ 1")?,
            "bin_construct_sample_cnt" => {
                self.bin_construct_sample_cnt = count(1.0, 1e12, "a count ≥ 1")?
            }
            "feature_fraction" => {
                self.feature_fraction = range(1e-12, 1.0, "a fraction in (0, 1]")?
            }
            "bagging_fraction" => {
                self.bagging_fraction = range(1e-12, 1.0, "a fraction in (0, 1]")?
            }
            "bagging_freq" => self.bagging_freq = count(0.0, 1e9, "a count ≥ 0")?,
            "early_stopping_rounds" => {
                self.early_stopping_rounds = count(0.0, 1e9, "a count ≥ 0 (0: off)")?
            }
            "monotone_constraints" => self.monotone_constraints = parse_constraints(&text()?)?,
            "metric" => {
                self.metric = Some(match text()?.to_ascii_lowercase().as_str() {
                    "binary_logloss" | "logloss" | "log_loss" => Metric::BinaryLogloss,
                    "auc" => Metric::Auc,
                    "l2" | "mse" | "mean_squared_error" | "regression" => Metric::L2,
                    "rmse" | "root_mean_squared_error" | "l2_root" => Metric::Rmse,
                    "l1" | "mae" | "mean_absolute_error" => Metric::L1,
                    other => {
                        return Err(format!(
                            "option metric must be one of binary_logloss, auc, l2, rmse, l1; got '{other}'"
                        ));
                    }
                })
            }
            "max_cat_to_onehot" => self.max_cat_to_onehot = count(1.0, 1e9, "a count ≥ 1")?,
            "max_cat_threshold" => self.max_cat_threshold = count(1.0, 1e9, "a count ≥ 1")?,
            "cat_l2" => self.cat_l2 = range(0.0, f64::MAX, "≥ 0")?,
            "cat_smooth" => self.cat_smooth = range(0.0, f64::MAX, "≥ 0")?,
            "min_data_per_group" => self.min_data_per_group = count(1.0, 1e12, "a count ≥ 1")?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The metric used when none is given: LightGBM's default for the objective.
    pub fn metric_for(&self, objective: Objective) -> Metric {
        match (self.metric, objective) {
            (Some(m), _) => m,
            (None, Objective::Binary) => Metric::BinaryLogloss,
            (None, _) => Metric::L2,
        }
    }
}

/// `'balance:-1, prior_defaults:+1'` (also `=` for `:`, and `1` for `+1`).
pub fn parse_constraints(text: &str) -> Result<Vec<(String, i8)>, String> {
    let mut out = vec![];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((column, direction)) = part.split_once(':').or_else(|| part.split_once('='))
        else {
            return Err(format!(
                "monotone_constraints: '{part}' should be column:+1 (increasing) or column:-1 (decreasing)"
            ));
        };
        let direction = match direction.trim() {
            "+1" | "1" | "increasing" => 1,
            "-1" | "decreasing" => -1,
            "0" | "none" => 0,
            other => {
                return Err(format!(
                    "monotone_constraints: '{other}' for {} should be +1, -1 or 0",
                    column.trim()
                ));
            }
        };
        out.push((column.trim().to_string(), direction));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_ranges() {
        let mut p = TreeParams::default();
        assert!(
            p.apply("n_estimators", &OptionValue::Number("50".into()))
                .unwrap()
        );
        assert!(
            p.apply("subsample", &OptionValue::Number("0.8".into()))
                .unwrap()
        );
        assert_eq!((p.num_iterations, p.bagging_fraction), (50, 0.8));
        assert!(
            !p.apply("reg_param", &OptionValue::Number("1".into()))
                .unwrap()
        );
        let err = p
            .apply("num_leaves", &OptionValue::Number("1".into()))
            .unwrap_err();
        assert!(err.contains("between 2 and 131072"), "{err}");
        assert!(
            p.apply("max_bin", &OptionValue::Number("1024".into()))
                .unwrap_err()
                .contains("255")
        );
        p.apply(
            "monotone_constraints",
            &OptionValue::Text("balance:-1, prior_defaults:+1".into()),
        )
        .unwrap();
        assert_eq!(
            p.monotone_constraints,
            vec![("balance".into(), -1), ("prior_defaults".into(), 1)]
        );
        assert!(parse_constraints("balance").is_err());
        assert!(parse_constraints("balance:2").is_err());
    }
}
