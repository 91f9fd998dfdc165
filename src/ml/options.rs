//! `TRAIN MODEL … WITH (…)` / `CREATE MODEL … OPTIONS (…)`: the options, their types,
//! ranges and Spark's defaults. Unknown options are errors that list the valid ones.

use serde::{Deserialize, Serialize};

use super::binning::BinningParams;
use super::gbdt::params::{Objective, TreeParams};
use super::scorecard::ScorecardParams;

/// An option's value as written: a number, a string or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Number(String),
    Text(String),
    Bool(bool),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::Text(t) => write!(f, "'{t}'"),
            OptionValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    LogisticRegression,
    LinearRegression,
    /// Boosted trees before training decides: binary on a 0/1 label, regression otherwise.
    BoostedTrees,
    BoostedTreeClassifier,
    BoostedTreeRegressor,
    /// Optimal WoE bins per feature (no predictions of its own).
    WoeBinning,
    /// Logistic regression on WoE-binned features, scaled to points.
    Scorecard,
}

impl ModelType {
    pub fn parse(name: &str) -> Result<ModelType, String> {
        match name.to_ascii_lowercase().as_str() {
            "logistic_regression" | "logistic_reg" => Ok(ModelType::LogisticRegression),
            "linear_regression" | "linear_reg" => Ok(ModelType::LinearRegression),
            "boosted_trees" | "boosted_tree" | "gbdt" => Ok(ModelType::BoostedTrees),
            "boosted_tree_classifier" => Ok(ModelType::BoostedTreeClassifier),
            "boosted_tree_regressor" => Ok(ModelType::BoostedTreeRegressor),
            "woe_binning" | "optimal_binning" => Ok(ModelType::WoeBinning),
            "scorecard" => Ok(ModelType::Scorecard),
            other => Err(format!(
                "unknown model type '{other}': use logistic_regression, linear_regression, boosted_trees \
                 (boosted_tree_classifier, boosted_tree_regressor), woe_binning or scorecard"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelType::LogisticRegression => "logistic_regression",
            ModelType::LinearRegression => "linear_regression",
            ModelType::BoostedTrees => "boosted_trees",
            ModelType::BoostedTreeClassifier => "boosted_tree_classifier",
            ModelType::BoostedTreeRegressor => "boosted_tree_regressor",
            ModelType::WoeBinning => "woe_binning",
            ModelType::Scorecard => "scorecard",
        }
    }

    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            ModelType::LogisticRegression | ModelType::BoostedTreeClassifier | ModelType::Scorecard
        )
    }

    pub fn is_trees(self) -> bool {
        matches!(
            self,
            ModelType::BoostedTrees
                | ModelType::BoostedTreeClassifier
                | ModelType::BoostedTreeRegressor
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    /// Rows with a NULL feature or label are left out (and counted).
    Drop,
    /// NULL numbers take the training mean; NULL categories the all-zero slot.
    Impute,
    /// A NULL is an error naming the column.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub model_type: ModelType,
    pub label: String,
    pub reg_param: f64,
    pub elastic_net_param: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub fit_intercept: bool,
    pub standardization: bool,
    pub threshold: f64,
    pub weight_col: Option<String>,
    /// Fraction of rows held out for evaluation (0 = none).
    pub split: f64,
    pub split_key: Option<String>,
    pub seed: u64,
    pub handle_nulls: NullPolicy,
    /// Options of boosted trees (LightGBM's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<TreeParams>,
    /// Options of the binning (woe_binning, and a scorecard that bins for itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binning: Option<BinningParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<ScorecardParams>,
    /// Set by CALIBRATE MODEL: the version calibrated and the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<super::calibration::CalibrationParams>,
}

/// Options every model type takes.
pub const COMMON_NAMES: &[&str] = &["threshold", "weight_col", "split", "split_key", "seed"];

pub const OPTION_NAMES: &[&str] = &[
    "reg_param",
    "elastic_net_param",
    "max_iter",
    "tol",
    "fit_intercept",
    "standardization",
    "threshold",
    "weight_col",
    "split",
    "split_key",
    "seed",
    "handle_nulls",
];

impl TrainOptions {
    pub fn new(model_type: ModelType, label: String) -> Self {
        TrainOptions {
            model_type,
            label,
            reg_param: 0.0,
            elastic_net_param: 0.0,
            max_iter: 100,
            tol: 1e-6,
            fit_intercept: true,
            standardization: true,
            threshold: 0.5,
            weight_col: None,
            split: 0.0,
            split_key: None,
            seed: 42,
            handle_nulls: NullPolicy::Drop,
            trees: model_type.is_trees().then(|| TreeParams {
                objective: match model_type {
                    ModelType::BoostedTreeClassifier => Objective::Binary,
                    ModelType::BoostedTreeRegressor => Objective::Regression,
                    _ => Objective::Auto,
                },
                ..TreeParams::default()
            }),
            binning: matches!(model_type, ModelType::WoeBinning | ModelType::Scorecard)
                .then(BinningParams::default),
            scorecard: (model_type == ModelType::Scorecard).then(ScorecardParams::default),
            calibration: None,
        }
    }

    /// Every option name this model type takes.
    fn valid_names(&self) -> Vec<&'static str> {
        let mut valid: Vec<&str> = match self.model_type {
            ModelType::WoeBinning => vec!["split", "split_key", "seed"],
            _ => OPTION_NAMES.to_vec(),
        };
        if self.binning.is_some() {
            valid.extend(super::binning::NAMES);
        }
        if self.scorecard.is_some() {
            valid.extend(super::scorecard::NAMES);
        }
        valid
    }

    /// Apply `name = value` pairs; any mistake is an error naming the option and its type.
    pub fn apply(&mut self, pairs: &[(String, OptionValue)]) -> Result<(), String> {
        for (name, value) in pairs {
            let name = name.to_ascii_lowercase();
            let number = || -> Result<f64, String> {
                match value {
                    OptionValue::Number(n) => n
                        .parse::<f64>()
                        .map_err(|_| format!("option {name}: '{n}' is not a number")),
                    other => Err(format!("option {name} takes a number, got {other}")),
                }
            };
            let in_range = |v: f64, lo: f64, hi: f64, what: &str| -> Result<f64, String> {
                if v.is_finite() && v >= lo && v <= hi {
                    Ok(v)
                } else {
                    Err(format!("option {name} must be {what}, got {v}"))
                }
            };
            let flag = || match value {
                OptionValue::Bool(b) => Ok(*b),
                other => Err(format!("option {name} takes true or false, got {other}")),
            };
            let text = || match value {
                OptionValue::Text(t) => Ok(t.clone()),
                other => Err(format!("option {name} takes a quoted name, got {other}")),
            };
            let whole = |v: f64| -> Result<f64, String> {
                if v.fract() == 0.0 {
                    Ok(v)
                } else {
                    Err(format!("option {name} takes a whole number, got {v}"))
                }
            };
            if let Some(trees) = self.trees.as_mut()
                && !COMMON_NAMES.contains(&name.as_str())
            {
                if !trees.apply(&name, value)? {
                    let mut valid: Vec<&str> = COMMON_NAMES.to_vec();
                    valid.extend(super::gbdt::params::NAMES);
                    return Err(format!(
                        "unknown option '{name}' for {}; valid options: {}",
                        self.model_type.name(),
                        valid.join(", ")
                    ));
                }
                let forced = match self.model_type {
                    ModelType::BoostedTreeClassifier => Some(Objective::Binary),
                    ModelType::BoostedTreeRegressor => Some(Objective::Regression),
                    _ => None,
                };
                if let Some(forced) = forced
                    && trees.objective != forced
                {
                    return Err(format!(
                        "option objective contradicts model type {}; leave it out, or use boosted_trees",
                        self.model_type.name()
                    ));
                }
                continue;
            }
            if let Some(scorecard) = self.scorecard.as_mut()
                && scorecard.apply(&name, value)?
            {
                continue;
            }
            if let Some(binning) = self.binning.as_mut()
                && binning.apply(&name, value)?
            {
                continue;
            }
            if !self.valid_names().contains(&name.as_str()) {
                return Err(format!(
                    "unknown option '{name}' for {}; valid options: {}",
                    self.model_type.name(),
                    self.valid_names().join(", ")
                ));
            }
            match name.as_str() {
                "reg_param" => self.reg_param = in_range(number()?, 0.0, f64::MAX, "≥ 0")?,
                "elastic_net_param" => {
                    self.elastic_net_param = in_range(number()?, 0.0, 1.0, "between 0 and 1")?
                }
                "max_iter" => {
                    self.max_iter = whole(in_range(number()?, 0.0, 1e9, "a count ≥ 0")?)? as usize
                }
                "tol" => self.tol = in_range(number()?, 0.0, f64::MAX, "≥ 0")?,
                "fit_intercept" => self.fit_intercept = flag()?,
                "standardization" => self.standardization = flag()?,
                "threshold" => self.threshold = in_range(number()?, 0.0, 1.0, "between 0 and 1")?,
                "weight_col" => self.weight_col = Some(text()?),
                "split" => self.split = in_range(number()?, 0.0, 0.99, "a fraction in [0, 0.99]")?,
                "split_key" => self.split_key = Some(text()?),
                "seed" => {
                    self.seed =
                        whole(in_range(number()?, 0.0, 9.0e15, "a whole number ≥ 0")?)? as u64
                }
                "handle_nulls" => {
                    self.handle_nulls = match text()?.to_ascii_lowercase().as_str() {
                        "drop" => NullPolicy::Drop,
                        "impute" => NullPolicy::Impute,
                        "error" => NullPolicy::Error,
                        other => {
                            return Err(format!(
                                "option handle_nulls must be 'drop', 'impute' or 'error', got '{other}'"
                            ));
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown option '{name}'; valid options: {}",
                        OPTION_NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn params(&self) -> super::logistic::Params {
        super::logistic::Params {
            reg_param: self.reg_param,
            elastic_net_param: self.elastic_net_param,
            max_iter: self.max_iter,
            tol: self.tol,
            fit_intercept: self.fit_intercept,
            standardization: self.standardization,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let mut o = TrainOptions::new(ModelType::LogisticRegression, "y".into());
        o.apply(&[
            ("reg_param".into(), OptionValue::Number("0.01".into())),
            ("SPLIT".into(), OptionValue::Number("0.3".into())),
        ])
        .unwrap();
        assert_eq!((o.reg_param, o.split), (0.01, 0.3));
        let err = o
            .apply(&[("regparam".into(), OptionValue::Number("1".into()))])
            .unwrap_err();
        assert!(
            err.contains("unknown option 'regparam'")
                && err.contains("reg_param, elastic_net_param"),
            "{err}"
        );
        assert!(
            o.apply(&[("max_iter".into(), OptionValue::Text("ten".into()))])
                .unwrap_err()
                .contains("takes a number")
        );
        assert!(
            o.apply(&[(
                "elastic_net_param".into(),
                OptionValue::Number("1.5".into())
            )])
            .unwrap_err()
            .contains("between 0 and 1")
        );
        assert!(
            o.apply(&[("fit_intercept".into(), OptionValue::Number("1".into()))])
                .unwrap_err()
                .contains("true or false")
        );
    }
}
