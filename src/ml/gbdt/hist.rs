//! Gradient histograms: per feature and bin, the sums of gradient, hessian and rows over a
//! leaf's rows. Gradients come quantized to integers (fixed point, one scale per iteration),
//! so sums are exact and the same in any row order and on any number of threads — which is
//! what makes a model bit-identical whatever the input's partitioning.

use rayon::prelude::*;

/// Sums of (gradient, hessian, rows) for the 256 possible bins of one feature.
pub type FeatureHist = [[i64; 3]; 256];

/// A leaf's histogram: one `FeatureHist` per feature.
pub type Hist = Vec<FeatureHist>;

/// Rows below which one thread builds the whole histogram (splitting costs more).
const PARALLEL_ROWS: usize = 32 * 1024;

/// Rows of bins, one byte per feature, row after row.
#[derive(Debug, Default)]
pub struct Binned {
    pub rows: usize,
    pub features: usize,
    pub bins: Vec<u8>,
}

impl Binned {
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bins[r * self.features..(r + 1) * self.features]
    }

    pub fn bytes(&self) -> usize {
        self.bins.len()
    }
}

pub fn zeroed(features: usize) -> Hist {
    vec![[[0i64; 3]; 256]; features]
}

/// The histogram of `rows` (indices into `binned`) with per-row quantized (g, h).
pub fn build(binned: &Binned, rows: &[u32], gh: &[[i64; 2]]) -> Hist {
    let features = binned.features;
    if rows.len() < PARALLEL_ROWS || rayon::current_num_threads() <= 1 {
        let mut hist = zeroed(features);
        accumulate(binned, rows, gh, &mut hist);
        return hist;
    }
    let parts = rayon::current_num_threads() * 2;
    let chunk = rows.len().div_ceil(parts);
    rows.par_chunks(chunk)
        .map(|part| {
            let mut hist = zeroed(features);
            accumulate(binned, part, gh, &mut hist);
            hist
        })
        .reduce_with(|mut a, b| {
            add(&mut a, &b);
            a
        })
        .unwrap_or_else(|| zeroed(features))
}

fn accumulate(binned: &Binned, rows: &[u32], gh: &[[i64; 2]], hist: &mut [FeatureHist]) {
    let d = binned.features;
    for &r in rows {
        let r = r as usize;
        let [g, h] = gh[r];
        let row = &binned.bins[r * d..(r + 1) * d];
        for (fh, &b) in hist.iter_mut().zip(row) {
            let e = &mut fh[b as usize];
            e[0] += g;
            e[1] += h;
            e[2] += 1;
        }
    }
}

pub fn add(into: &mut [FeatureHist], other: &[FeatureHist]) {
    for (a, b) in into.iter_mut().zip(other) {
        for (x, y) in a.iter_mut().zip(b) {
            x[0] += y[0];
            x[1] += y[1];
            x[2] += y[2];
        }
    }
}

/// `into` −= `other`: a parent's histogram becomes its larger child's.
pub fn subtract(into: &mut [FeatureHist], other: &[FeatureHist]) {
    for (a, b) in into.iter_mut().zip(other) {
        for (x, y) in a.iter_mut().zip(b) {
            x[0] -= y[0];
            x[1] -= y[1];
            x[2] -= y[2];
        }
    }
}

/// A power of two s such that `count` values of magnitude up to `max_abs`, each times s,
/// sum within ±2^62.
pub fn scale_for(max_abs: f64, count: usize) -> f64 {
    if !(max_abs > 0.0) || !max_abs.is_finite() {
        return 1.0;
    }
    let bound = max_abs * count.max(1) as f64;
    let exponent = 62 - bound.log2().ceil() as i32;
    2f64.powi(exponent.clamp(-1000, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_exact_in_any_order_and_subtract() {
        let binned = Binned {
            rows: 100_000,
            features: 2,
            bins: (0..200_000u32).map(|i| (i * 7 % 11) as u8).collect(),
        };
        let gh: Vec<[i64; 2]> = (0..100_000i64).map(|i| [i * 3 - 7, i % 13]).collect();
        let rows: Vec<u32> = (0..100_000).collect();
        let whole = build(&binned, &rows, &gh);
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(whole, build(&binned, &reversed, &gh));
        let mut rest = whole.clone();
        subtract(&mut rest, &build(&binned, &rows[..40_000], &gh));
        assert_eq!(rest, build(&binned, &rows[40_000..], &gh));
        let total: i64 = whole[0].iter().map(|e| e[2]).sum();
        assert_eq!(total, 100_000);
        let s = scale_for(1.0, 10_000_000);
        assert!(s * 1.0 * 1e7 <= 2f64.powi(62) && s * 2.0 * 1e7 > 2f64.powi(62) / 2.0);
    }
}
