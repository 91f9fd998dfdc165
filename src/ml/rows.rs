//! Where a GLM's encoded training rows are summed: the shards in this process, or files a
//! cluster's executors read (`ml::cluster_rows`). The optimiser sees only the sums, so the
//! same fit runs on either; the local sums are computed exactly as they always were.

use datafusion::error::Result;

use super::logistic::{Shard, Summary, summarize};
use super::pass::{Partial, fused_pass};

/// The per-row loss of one objective evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Log-loss of margin m against a 0/1 label.
    Logistic,
    /// Half the squared difference between m and (y − shift)/scale.
    Squared { shift: f64, scale: f64 },
}

impl Loss {
    /// (w·loss, w·residual) of one row.
    #[inline(always)]
    pub fn row(self, m: f64, y: f64, w: f64) -> (f64, f64) {
        match self {
            Loss::Logistic => {
                // One exp for both log(1 + e^m) and the probability, stable for either sign.
                let e = (-m.abs()).exp();
                let log1pexp = m.max(0.0) + e.ln_1p();
                let p = if m >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                (w * (log1pexp - y * m), w * (p - y))
            }
            Loss::Squared { shift, scale } => {
                let diff = m - (y - shift) / scale;
                (0.5 * w * diff * diff, w * diff)
            }
        }
    }
}

/// The label's weighted moments a linear regression standardises with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelMoments {
    /// Σw·y / Σw.
    pub mean: f64,
    /// Σw².
    pub weight_squares: f64,
    /// Σw·(y − mean)².
    pub spread: f64,
}

/// Training rows the fit can sum over.
pub trait Rows: Sync {
    /// The features' weighted means and standard deviations (Spark's summarizer).
    fn summary(&self, features: usize) -> Result<Summary>;
    /// The label's moments, given the total weight.
    fn label_moments(&self, weight_sum: f64) -> Result<LabelMoments>;
    /// Loss and residual sums at margins offset + Σ a_j x_j.
    fn pass(&self, a: &[f64], offset: f64, loss: Loss) -> Result<Partial>;
}

impl Rows for Vec<Shard> {
    fn summary(&self, features: usize) -> Result<Summary> {
        Ok(summarize(self, features))
    }

    fn label_moments(&self, weight_sum: f64) -> Result<LabelMoments> {
        let mean = self
            .iter()
            .map(|s| (0..s.rows()).map(|i| s.w(i) * s.label[i]).sum::<f64>())
            .sum::<f64>()
            / weight_sum;
        let weight_squares = self
            .iter()
            .map(|s| (0..s.rows()).map(|i| s.w(i).powi(2)).sum::<f64>())
            .sum();
        let spread = self
            .iter()
            .map(|s| {
                (0..s.rows())
                    .map(|i| s.w(i) * (s.label[i] - mean).powi(2))
                    .sum::<f64>()
            })
            .sum();
        Ok(LabelMoments {
            mean,
            weight_squares,
            spread,
        })
    }

    fn pass(&self, a: &[f64], offset: f64, loss: Loss) -> Result<Partial> {
        // Each loss gets its own monomorphised pass: the match stays out of the row loop.
        Ok(match loss {
            Loss::Logistic => fused_pass(self, a, offset, |m, y, w| Loss::Logistic.row(m, y, w)),
            Loss::Squared { shift, scale } => fused_pass(self, a, offset, |m, y, w| {
                Loss::Squared { shift, scale }.row(m, y, w)
            }),
        })
    }
}

/// The first error an objective evaluation met: the optimiser sees a NaN objective and
/// stops at its next check, and the fit reports the error.
#[derive(Debug, Default)]
pub struct FirstError(std::sync::Mutex<Option<datafusion::error::DataFusionError>>);

impl FirstError {
    pub fn keep(&self, e: datafusion::error::DataFusionError) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.lock().map_or(true, |s| s.is_some())
    }

    pub fn into_result(self) -> Result<()> {
        match self.0.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}
