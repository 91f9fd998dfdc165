//! Credit scorecards: `woe_binning` models (bins only) and `scorecard` models — logistic
//! regression (the exact trainer) on each feature's WoE, scaled to points. With label 1 the
//! event (a default), the model's log-odds of the event is m = β₀ + Σ βⱼ·WoEⱼ and
//!
//!   score = offset − factor·m,  factor = pdo / ln 2,  offset = base_score − factor·ln(base_odds)
//!
//! so `base_score` points mean good:bad odds of `base_odds`, and every `pdo` points double
//! them. Points are spread over the p characteristics as
//! pointsⱼ(bin) = −factor·(βⱼ·WoEⱼ(bin) + β₀/p) + offset/p, so Σⱼ pointsⱼ = score.

use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::binning::{FeatureBinning, fit as binning_fit};
use super::model::{Hooks, Model, Prepared, plan_err};
use super::options::{OptionValue, TrainOptions};
use super::preprocess::Encoder;
use super::registry::Registry;

/// Options of `scorecard` besides the logistic regression's and the binning's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardParams {
    /// A `woe_binning` model whose bins to use; none: bin the training rows here.
    pub binning: Option<String>,
    pub pdo: f64,
    pub base_score: f64,
    pub base_odds: f64,
    /// The named binning model's bins, looked up when training starts.
    #[serde(skip)]
    pub resolved: Option<Vec<FeatureBinning>>,
}

impl Default for ScorecardParams {
    fn default() -> Self {
        ScorecardParams {
            binning: None,
            pdo: 20.0,
            base_score: 600.0,
            base_odds: 50.0,
            resolved: None,
        }
    }
}

pub const NAMES: &[&str] = &["binning", "pdo", "base_score", "base_odds"];

impl ScorecardParams {
    /// Apply one option; `Ok(false)` when the name is not a scorecard option.
    pub fn apply(&mut self, name: &str, value: &OptionValue) -> Result<bool, String> {
        let positive = || -> Result<f64, String> {
            match value {
                OptionValue::Number(n) => match n.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                    _ => Err(format!("option {name} must be a number > 0, got {n}")),
                },
                other => Err(format!("option {name} takes a number, got {other}")),
            }
        };
        match name {
            "binning" => {
                self.binning = Some(match value {
                    OptionValue::Text(t) => t.clone(),
                    other => {
                        return Err(format!(
                            "option binning takes a woe_binning model's name in quotes, got {other}"
                        ));
                    }
                })
            }
            "pdo" => self.pdo = positive()?,
            "base_odds" => self.base_odds = positive()?,
            "base_score" => {
                self.base_score = match value {
                    OptionValue::Number(n) => n
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("option base_score must be a number, got {n}"))?,
                    other => return Err(format!("option base_score takes a number, got {other}")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn factor(&self) -> f64 {
        self.pdo / std::f64::consts::LN_2
    }

    pub fn offset(&self) -> f64 {
        self.base_score - self.factor() * self.base_odds.ln()
    }
}

/// Look up the binning model a scorecard names (before training, in the operator).
pub fn resolve(options: &mut TrainOptions, registry: &Registry) -> Result<()> {
    let Some(params) = options.scorecard.as_mut() else {
        return Ok(());
    };
    let Some(reference) = params.binning.clone() else {
        return Ok(());
    };
    let model = registry.get(&reference)?;
    let bins = model.binnings();
    if bins.is_empty() {
        return Err(plan_err(format!(
            "option binning = '{reference}': model '{}' is a {}, not a woe_binning model",
            model.name,
            model.options.model_type.name()
        )));
    }
    params.resolved = Some(bins.into_iter().cloned().collect());
    Ok(())
}

/// The training rows and each row's label as an event flag.
type Labelled = (Vec<RecordBatch>, Vec<Vec<Option<bool>>>);

/// Training rows' labels as events, for binning.
fn train_labels(prep: &Prepared, label: &str) -> Result<Labelled> {
    let batches: Vec<RecordBatch> = prep.train_parts.iter().flatten().cloned().collect();
    let labels = binning_fit::labels(&batches, prep.label_index, label)?;
    Ok((batches, labels))
}

fn woe_encoders(bins: Vec<FeatureBinning>) -> Vec<Encoder> {
    bins.into_iter()
        .map(|b| Encoder::Woe {
            column: b.column.clone(),
            binning: Box::new(b),
        })
        .collect()
}

/// A `woe_binning` model: the bins of every feature column.
pub fn fit_binning(
    name: &str,
    version: u32,
    options: &TrainOptions,
    prep: &Prepared,
    hooks: &Hooks,
) -> Result<Model> {
    if options.weight_col.is_some() {
        return Err(plan_err(
            "woe_binning does not take weight_col: bins count rows".into(),
        ));
    }
    let params = options.binning.clone().unwrap_or_default();
    let (batches, labels) = train_labels(prep, &options.label)?;
    let started = std::time::Instant::now();
    let bins = binning_fit::fit_all(&batches, &labels, &prep.inputs, &params, hooks)?;
    let used = labels.iter().flatten().filter(|l| l.is_some()).count();
    let held_out: usize = prep.test_batches.iter().map(|b| b.num_rows()).sum();
    let mut warnings = vec![];
    for b in &bins {
        if b.regular_bins() == 1 {
            warnings.push(format!(
                "feature '{}' got a single bin (IV {:.4}): it does not separate events under these constraints",
                b.column, b.iv
            ));
        }
    }
    let mut model = Model::bare(name, options.clone(), prep.inputs.clone(), "binned".into());
    model.version = version;
    model.encoders = woe_encoders(bins);
    let t = &mut model.training;
    (t.rows_read, t.rows_used, t.rows_held_out) = (prep.rows_read, used, held_out);
    t.rows_dropped = prep.rows_read - used - held_out;
    (t.passes, t.fit_seconds) = (1, started.elapsed().as_secs_f64());
    (t.warnings, t.metrics_on) = (warnings, "training".into());
    Ok(model)
}

/// A `scorecard`: bins (named or fitted here), then logistic regression on the WoE values.
pub fn fit(
    name: &str,
    version: u32,
    options: &TrainOptions,
    prep: &Prepared,
    hooks: &Hooks,
) -> Result<Model> {
    let params = options.scorecard.clone().unwrap_or_default();
    let bins = match params.resolved {
        Some(all) => {
            let mut chosen = vec![];
            for input in &prep.inputs {
                let Some(b) = all.iter().find(|b| b.column.eq_ignore_ascii_case(input)) else {
                    let known: Vec<&str> = all.iter().map(|b| b.column.as_str()).collect();
                    return Err(plan_err(format!(
                        "column '{input}' of the training query is not binned by '{}' (it bins {}); \
                         leave it out of the query",
                        params.binning.as_deref().unwrap_or(""),
                        known.join(", ")
                    )));
                };
                chosen.push(b.clone());
            }
            chosen
        }
        None => {
            let (batches, labels) = train_labels(prep, &options.label)?;
            let binning = options.binning.clone().unwrap_or_default();
            binning_fit::fit_all(&batches, &labels, &prep.inputs, &binning, hooks)?
        }
    };
    super::glm::fit(
        name,
        version,
        options,
        prep,
        hooks,
        Some(woe_encoders(bins)),
    )
}

impl Model {
    /// The bins of a `woe_binning` or `scorecard` model (none for other models).
    pub fn binnings(&self) -> Vec<&FeatureBinning> {
        self.encoders
            .iter()
            .filter_map(|e| match e {
                Encoder::Woe { binning, .. } => Some(binning.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// A scorecard's points for feature `j` at a given WoE.
    pub fn points(&self, j: usize, woe: f64) -> Option<f64> {
        let s = self.options.scorecard.as_ref()?;
        let p = self.coefficients.len() as f64;
        Some(-s.factor() * (self.coefficients[j] * woe + self.intercept / p) + s.offset() / p)
    }

    /// A scorecard's score from the model's log-odds of the event.
    pub fn score_of(&self, raw: f64) -> Option<f64> {
        let s = self.options.scorecard.as_ref()?;
        Some(s.offset() - s.factor() * raw)
    }

    /// Refuse to score with a model that only bins.
    pub(crate) fn check_predicts(&self) -> Result<()> {
        if self.options.model_type == super::options::ModelType::WoeBinning {
            return Err(DataFusionError::Plan(format!(
                "model '{}' is a woe_binning model: it bins features and does not predict; see \
                 binning_table({0}) and woe_transform({0}, data), or train a scorecard with \
                 binning = '{0}'",
                self.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_follows_pdo_and_base_odds() {
        let p = ScorecardParams::default();
        // 600 points at 50:1, 620 at 100:1.
        assert!((p.offset() + p.factor() * 50f64.ln() - 600.0).abs() < 1e-9);
        assert!((p.offset() + p.factor() * 100f64.ln() - 620.0).abs() < 1e-9);
    }
}
