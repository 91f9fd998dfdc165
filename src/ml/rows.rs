//! Where a GLM's encoded training rows are summed: the shards in this process, or files a
//! cluster's executors read (`ml::cluster_rows`). The optimiser sees only the sums, so the
//! same fit runs on either; the local sums are computed exactly as they always were.

use datafusion::error::Result;

use super::logistic::{Summary, summarize};
use super::pass::{Partial, by_row, fused_pass};
use super::shard::Shard;

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
                let e = exp_nonpositive(-m.abs());
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

/// Rows whose log(1 + e^−|m|) factors are multiplied before one logarithm: each factor is at
/// most 2, so 512 of them stay below 2^512, far from overflow.
const PRODUCT_ROWS: usize = 512;

/// The logistic loss and residuals of a block of margins (`fused_pass`'s block function).
/// Unweighted rows take one logarithm per `PRODUCT_ROWS` rows instead of a `log1p` per row
/// (`perf`: `log1p` was a fifth of a 10M-row TRAIN): Σ log(1 + e_i) = log Π (1 + e_i). Each
/// factor 1 + e_i is rounded once, an absolute error of at most 2^−53 in its logarithm, where
/// the loss sums to about 0.2 a row: a relative change near 1e−15, below the sum's own
/// rounding. Weighted rows keep `Loss::row`.
fn logistic_block(margins: &mut [f64], labels: &[f64], weights: Option<&[f64]>) -> (f64, f64) {
    if weights.is_some() {
        return by_row(|m, y, w| Loss::Logistic.row(m, y, w))(margins, labels, weights);
    }
    let (mut loss, mut residual_sum) = (0.0, 0.0);
    let mut exps = [0.0f64; PRODUCT_ROWS];
    for (ms, ys) in margins
        .chunks_mut(PRODUCT_ROWS)
        .zip(labels.chunks(PRODUCT_ROWS))
    {
        // First e^−|m| for the whole block (a loop of four rows at a time), then the sums in
        // four lanes, so neither waits on the one before.
        let exps = &mut exps[..ms.len()];
        for (e, m) in exps.iter_mut().zip(ms.iter()) {
            *e = exp_nonpositive(-m.abs());
        }
        let mut lanes = [[0.0f64, 0.0, 1.0]; 4];
        let row = |lane: &mut [f64; 3], m: &mut f64, y: f64, e: f64| {
            let factor = 1.0 + e;
            lane[0] += m.max(0.0) - y * *m;
            lane[2] *= factor;
            let p = if *m >= 0.0 { 1.0 } else { e } / factor;
            *m = p - y;
            lane[1] += *m;
        };
        let mut m4 = ms.chunks_exact_mut(4);
        let (y4, e4) = (ys.chunks_exact(4), exps.chunks_exact(4));
        let (y_tail, e_tail) = (y4.remainder(), e4.remainder());
        for ((m, y), e) in m4.by_ref().zip(y4).zip(e4) {
            for k in 0..4 {
                row(&mut lanes[k], &mut m[k], y[k], e[k]);
            }
        }
        for ((m, y), e) in m4.into_remainder().iter_mut().zip(y_tail).zip(e_tail) {
            row(&mut lanes[0], m, *y, *e);
        }
        let product = lanes[0][2] * lanes[1][2] * lanes[2][2] * lanes[3][2];
        loss += lanes[0][0] + lanes[1][0] + lanes[2][0] + lanes[3][0] + product.ln();
        residual_sum += lanes[0][1] + lanes[1][1] + lanes[2][1] + lanes[3][1];
    }
    (loss, residual_sum)
}

/// e^x for x ≤ 0 within about an ulp, without branches or calls, so a loop of them runs four
/// rows at a time (the C library's `exp` is a call per row: a third of a data pass).
/// x = k·ln2 + r with |r| ≤ ln2/2; e^r by its Taylor series to r¹³ (the first term left out
/// is below 2⁻⁵⁵ of it); 2^k as two normal powers, so results down to 2⁻¹⁰⁷⁴ round once.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5·2⁵²: adding it rounds to an integer, held in the low bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const TAYLOR: [f64; 14] = {
        let mut c = [1.0f64; 14];
        let mut i = 1;
        while i < 14 {
            c[i] = c[i - 1] / i as f64;
            i += 1;
        }
        c
    };
    // e^−745.2 is below half the smallest subnormal: 0. NaN stays NaN through `r`.
    let x = if x < -745.2 { -745.2 } else { x };
    let t = x * std::f64::consts::LOG2_E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = TAYLOR[13];
    for c in TAYLOR[..13].iter().rev() {
        p = p * r + c;
    }
    let k = t.to_bits() as i64 - ROUND.to_bits() as i64;
    let half = k >> 1;
    let power = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    p * power(half) * power(k - half)
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
            Loss::Logistic => fused_pass(self, a, offset, logistic_block),
            Loss::Squared { shift, scale } => fused_pass(
                self,
                a,
                offset,
                by_row(|m, y, w| Loss::Squared { shift, scale }.row(m, y, w)),
            ),
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

#[cfg(test)]
mod tests {
    use super::{Loss, exp_nonpositive, logistic_block};

    /// The block's loss (one logarithm per 512 rows) is the per-row `log1p` sum to within
    /// rounding, at margins from 0 to where e^−|m| underflows, both signs; the residuals are
    /// the per-row ones exactly.
    #[test]
    fn logistic_block_sums_as_the_rows_do() {
        let mut margins: Vec<f64> = (0..5000)
            .map(|i| {
                let t = ((i * 7919) % 2003) as f64 / 2003.0;
                let m = (t * 2.0 - 1.0) * if i % 5 == 0 { 800.0 } else { 8.0 };
                if i % 97 == 0 { 0.0 } else { m }
            })
            .collect();
        let labels: Vec<f64> = (0..margins.len())
            .map(|i| (i % 3 == 0) as u8 as f64)
            .collect();
        let (mut loss, mut residuals) = (0.0, vec![]);
        for (m, y) in margins.iter().zip(&labels) {
            let (l, r) = Loss::Logistic.row(*m, *y, 1.0);
            loss += l;
            residuals.push(r);
        }
        let (got, residual_sum) = logistic_block(&mut margins, &labels, None);
        assert!((got - loss).abs() <= 1e-12 * loss.abs(), "{got} vs {loss}");
        assert_eq!(margins, residuals);
        let want: f64 = residuals.iter().sum();
        assert!((residual_sum - want).abs() <= 1e-12 * want.abs().max(1.0));
        // Weighted rows take the per-row loss.
        let weights = vec![0.5; labels.len()];
        let mut again: Vec<f64> = (0..labels.len()).map(|i| i as f64 / 1000.0 - 2.0).collect();
        let want: f64 = again
            .iter()
            .zip(&labels)
            .map(|(m, y)| Loss::Logistic.row(*m, *y, 0.5).0)
            .sum();
        let (got, _) = logistic_block(&mut again, &labels, Some(&weights));
        assert!((got - want).abs() <= 1e-12 * want.abs());
    }

    /// Within 2 ulp of the C library's exp over the whole non-positive range, subnormal
    /// results within one subnormal step, and 0, 1 and NaN where they should be.
    #[test]
    fn exp_nonpositive_agrees_with_exp() {
        let mut x = 0.0f64;
        let mut worst = 0.0f64;
        while x > -760.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            if want >= f64::MIN_POSITIVE {
                worst = worst.max((got - want).abs() / (want * f64::EPSILON));
            } else {
                assert!((got - want).abs() <= 4.95e-324, "{x}: {got} vs {want}");
            }
            x -= 0.000_731 + x.abs() * 1e-5;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }
}
