//! Optimal weight-of-evidence binning (`woe_binning`): per feature, pre-bins (quantiles of a
//! number, categories ordered by event rate), then the merge of adjacent pre-bins that
//! maximises information value under the trend and size constraints, solved exactly
//! (optimal.rs). WoE and IV follow optbinning: WoE = ln(share of non-events / share of
//! events); a bin without events or without non-events has WoE 0 and IV 0.

pub mod fit;
pub mod optimal;

use serde::{Deserialize, Serialize};

use super::options::OptionValue;

/// The event-rate shape the bins must follow, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// The better (by IV) of ascending and descending — optbinning's `auto_asc_desc`.
    Auto,
    Ascending,
    Descending,
    /// Rising then falling.
    Peak,
    /// Falling then rising.
    Valley,
    None,
}

impl Trend {
    pub fn name(self) -> &'static str {
        match self {
            Trend::Auto => "auto",
            Trend::Ascending => "ascending",
            Trend::Descending => "descending",
            Trend::Peak => "peak",
            Trend::Valley => "valley",
            Trend::None => "none",
        }
    }

    fn parse(text: &str) -> Option<Trend> {
        [
            Trend::Auto,
            Trend::Ascending,
            Trend::Descending,
            Trend::Peak,
            Trend::Valley,
            Trend::None,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(text.trim()))
    }
}

/// Options of `woe_binning` (and of the binning a `scorecard` makes for itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinningParams {
    /// Most regular bins per feature (special and missing bins come on top).
    pub max_bins: usize,
    /// Least share of all rows in a regular bin.
    pub min_bin_share: f64,
    /// Quantile pre-bins of a numeric feature (and most category groups) before merging.
    pub max_prebins: usize,
    pub monotonic_trend: Trend,
    /// Values binned on their own, as written (numbers for numeric features).
    pub special_values: Vec<String>,
}

impl Default for BinningParams {
    fn default() -> Self {
        BinningParams {
            max_bins: 10,
            min_bin_share: 0.05,
            max_prebins: 20,
            monotonic_trend: Trend::Auto,
            special_values: vec![],
        }
    }
}

pub const NAMES: &[&str] = &[
    "max_bins",
    "min_bin_share",
    "max_prebins",
    "monotonic_trend",
    "special_values",
];

impl BinningParams {
    /// Apply one option; `Ok(false)` when the name is not a binning option.
    pub fn apply(&mut self, name: &str, value: &OptionValue) -> Result<bool, String> {
        let count = |lo: f64, hi: f64| -> Result<usize, String> {
            match value {
                OptionValue::Number(n) => match n.parse::<f64>() {
                    Ok(v) if v.fract() == 0.0 && v >= lo && v <= hi => Ok(v as usize),
                    _ => Err(format!(
                        "option {name} must be a whole number from {lo} to {hi}, got {n}"
                    )),
                },
                other => Err(format!("option {name} takes a number, got {other}")),
            }
        };
        match name {
            "max_bins" => self.max_bins = count(1.0, 100.0)?,
            "max_prebins" => self.max_prebins = count(2.0, 1000.0)?,
            "min_bin_share" => {
                self.min_bin_share = match value {
                    OptionValue::Number(n) => match n.parse::<f64>() {
                        Ok(v) if (0.0..=0.5).contains(&v) => v,
                        _ => {
                            return Err(format!(
                                "option min_bin_share must be a fraction from 0 to 0.5, got {n}"
                            ));
                        }
                    },
                    other => {
                        return Err(format!("option min_bin_share takes a number, got {other}"));
                    }
                }
            }
            "monotonic_trend" => {
                let text = match value {
                    OptionValue::Text(t) => t.clone(),
                    other => {
                        return Err(format!(
                            "option monotonic_trend takes a quoted name, got {other}"
                        ));
                    }
                };
                self.monotonic_trend = Trend::parse(&text).ok_or_else(|| {
                    format!(
                        "option monotonic_trend must be 'auto', 'ascending', 'descending', 'peak', \
                         'valley' or 'none', got '{text}'"
                    )
                })?
            }
            "special_values" => {
                self.special_values = match value {
                    OptionValue::Text(t) => t
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                    OptionValue::Number(n) => vec![n.clone()],
                    other => {
                        return Err(format!(
                            "option special_values takes a quoted list, e.g. '-1, 9999', got {other}"
                        ));
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One bin's rows by label and its WoE and IV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// `[lo, hi)` of numbers, the categories of a group, `Special` or `Missing`.
    pub label: String,
    pub events: f64,
    pub nonevents: f64,
    pub woe: f64,
    pub iv: f64,
}

impl Bin {
    pub fn count(&self) -> f64 {
        self.events + self.nonevents
    }
}

/// Where a value falls: the bins' boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cuts {
    /// Bin i is `[splits[i-1], splits[i])`, the first from −∞, the last to +∞.
    Numeric { splits: Vec<f64> },
    /// Bin i holds these categories.
    Categorical { groups: Vec<Vec<String>> },
}

/// A feature's bins: the regular ones, then Special, then Missing (both always present,
/// maybe empty, so that a value seen only at scoring time has a bin and a WoE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBinning {
    pub column: String,
    pub cuts: Cuts,
    /// The trend the bins follow (what `auto` chose).
    pub trend: Trend,
    /// Boundaries of the pre-bins the optimiser merged (numeric features).
    pub prebin_splits: Vec<f64>,
    /// Special values as written, compared as numbers for numeric features.
    pub special_values: Vec<String>,
    pub bins: Vec<Bin>,
    /// Σ IV over all bins.
    pub iv: f64,
}

impl FeatureBinning {
    pub fn regular_bins(&self) -> usize {
        self.bins.len() - 2
    }

    pub fn special_bin(&self) -> usize {
        self.bins.len() - 2
    }

    pub fn missing_bin(&self) -> usize {
        self.bins.len() - 1
    }

    /// The bin of a number (numeric features).
    pub fn bin_of_number(&self, x: f64, specials: &[f64]) -> usize {
        if specials.contains(&x) {
            return self.special_bin();
        }
        match &self.cuts {
            Cuts::Numeric { splits } => splits.partition_point(|s| *s <= x),
            Cuts::Categorical { .. } => self.missing_bin(),
        }
    }

    /// Special values parsed as numbers (checked at training, so unparsable ones are none).
    pub fn numeric_specials(&self) -> Vec<f64> {
        self.special_values
            .iter()
            .filter_map(|s| s.parse::<f64>().ok())
            .collect()
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self.cuts, Cuts::Numeric { .. })
    }
}

/// WoE and IV per bin from counts, with the totals over every bin (optbinning's formulas).
pub fn woe_iv(counts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let events: f64 = counts.iter().map(|c| c.0).sum();
    let nonevents: f64 = counts.iter().map(|c| c.1).sum();
    counts
        .iter()
        .map(|&(e, n)| {
            if e <= 0.0 || n <= 0.0 || events <= 0.0 || nonevents <= 0.0 {
                return (0.0, 0.0);
            }
            let (pe, pn) = (e / events, n / nonevents);
            let woe = (pn / pe).ln();
            (woe, (pn - pe) * woe)
        })
        .collect()
}

/// Label of a numeric bin `[lo, hi)`.
pub fn range_label(lo: f64, hi: f64) -> String {
    let show = |v: f64| {
        if v == f64::NEG_INFINITY {
            "-inf".to_string()
        } else if v == f64::INFINITY {
            "inf".to_string()
        } else {
            format!("{v}")
        }
    };
    format!("[{}, {})", show(lo), show(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn woe_follows_optbinning_and_pure_bins_are_neutral() {
        let out = woe_iv(&[(10.0, 90.0), (30.0, 70.0), (0.0, 5.0)]);
        let (e, n): (f64, f64) = (40.0, 165.0);
        let woe0 = ((90.0 / n) / (10.0 / e)).ln();
        assert!((out[0].0 - woe0).abs() < 1e-15);
        assert!((out[0].1 - (90.0 / n - 10.0 / e) * woe0).abs() < 1e-15);
        assert_eq!(out[2], (0.0, 0.0));
    }

    #[test]
    fn options_are_checked() {
        let mut p = BinningParams::default();
        assert!(
            p.apply("monotonic_trend", &OptionValue::Text("peak".into()))
                .unwrap()
        );
        assert_eq!(p.monotonic_trend, Trend::Peak);
        let err = p
            .apply("monotonic_trend", &OptionValue::Text("up".into()))
            .unwrap_err();
        assert!(err.contains("'ascending'"), "{err}");
        assert!(
            p.apply("min_bin_share", &OptionValue::Number("0.7".into()))
                .is_err()
        );
        assert!(
            p.apply("special_values", &OptionValue::Text("-1, 9999".into()))
                .unwrap()
        );
        assert_eq!(p.special_values, vec!["-1", "9999"]);
        assert!(!p.apply("reg_param", &OptionValue::Bool(true)).unwrap());
    }
}
