//! Gradient histograms: per feature and bin, the sums of gradient and hessian over a leaf's
//! rows. Gradients come quantized to integers (fixed point, one scale per iteration), so sums
//! are exact and the same in any row order and on any number of threads — which is what
//! makes a model bit-identical whatever the input's partitioning. Like LightGBM, histograms
//! hold no row counts (16 bytes a bin instead of 24 keeps them in cache): a bin's rows are
//! estimated from its hessian share of the leaf's exactly known count.

use rayon::prelude::*;

use crate::prefetch::prefetch;

/// Sums of (gradient, hessian) for the 256 possible bins of one feature.
pub type FeatureHist = [[i64; 2]; 256];

/// A leaf's histogram: one `FeatureHist` per feature.
pub type Hist = Vec<FeatureHist>;

/// Rows below which one thread builds a leaf's histogram: each thread's share needs a
/// zeroed histogram of its own (112 KB for 28 features) and a merge.
const PARALLEL_ROWS: usize = 4 * 1024;

/// One byte per feature and row: column after column (training rows: the root's histogram
/// and partitions read a feature at a time) or row after row (rows only ever routed through
/// trees). Training rows also keep a row-major copy (`by_row`): a leaf's rows are scattered,
/// and one cache line then brings all of a row's bins instead of one.
#[derive(Debug, Default)]
pub struct Binned {
    pub rows: usize,
    pub features: usize,
    pub column_major: bool,
    pub bins: Vec<u8>,
    pub by_row: Vec<u8>,
}

impl Binned {
    /// The bin of row r, feature f.
    pub fn get(&self, r: usize, f: usize) -> u8 {
        if self.column_major {
            self.bins[f * self.rows + r]
        } else {
            self.bins[r * self.features + f]
        }
    }

    /// Feature f's bins of every row (column-major layout only).
    pub fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.rows..(f + 1) * self.rows]
    }

    pub fn bytes(&self) -> usize {
        self.bins.len() + self.by_row.len()
    }
}

/// Rows ahead whose bins are prefetched while gathering.
pub const PREFETCH: usize = 32;

pub fn zeroed(features: usize) -> Hist {
    vec![[[0i64; 2]; 256]; features]
}

/// The histogram of `rows` (indices into `binned`, ascending) with per-row quantized (g, h),
/// for the features in `used` (the others stay zero). All rows in order (the root without
/// bagging): column by column, features on threads, each 4 KB histogram in L1. A subset:
/// row by row over the row-major copy — one cache line brings a row's every bin — rows on
/// threads, bins prefetched ahead.
pub fn build(binned: &Binned, rows: &[u32], gh: &[[i64; 2]], used: &[bool]) -> Hist {
    let features = binned.features;
    let parallel = rows.len() >= PARALLEL_ROWS && rayon::current_num_threads() > 1;
    let parallel_columns = rows.len() * features >= 64 * 1024 && rayon::current_num_threads() > 1;
    if rows.len() == binned.rows || binned.by_row.is_empty() {
        let one = |f: usize| {
            let mut h = [[0i64; 2]; 256];
            if !used.get(f).copied().unwrap_or(true) {
                return h;
            }
            let col = binned.column(f);
            if rows.len() == binned.rows {
                // Two histograms for alternate rows: runs of equal bins (skewed features)
                // would otherwise chain every add through the same memory.
                let mut odd = [[0i64; 2]; 256];
                let pairs = col.chunks_exact(2).zip(gh.chunks_exact(2));
                for (b, g) in pairs {
                    let e = &mut h[b[0] as usize];
                    e[0] += g[0][0];
                    e[1] += g[0][1];
                    let o = &mut odd[b[1] as usize];
                    o[0] += g[1][0];
                    o[1] += g[1][1];
                }
                if col.len() % 2 == 1 {
                    let (b, g) = (col[col.len() - 1], gh[col.len() - 1]);
                    h[b as usize][0] += g[0];
                    h[b as usize][1] += g[1];
                }
                for (e, o) in h.iter_mut().zip(&odd) {
                    e[0] += o[0];
                    e[1] += o[1];
                }
            } else {
                for &r in rows {
                    let g = gh[r as usize];
                    let e = &mut h[col[r as usize] as usize];
                    e[0] += g[0];
                    e[1] += g[1];
                }
            }
            h
        };
        return if parallel_columns {
            (0..features).into_par_iter().map(one).collect()
        } else {
            (0..features).map(one).collect()
        };
    }
    // Features in blocks, one block a task: every task reads the leaf's rows (a cache line
    // each), updates only its block's histograms (smaller, so they stay in cache), and no
    // task needs a private copy to merge.
    let part = |rows: &[u32]| {
        let mut hist = zeroed(features);
        for (k, &r) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(k + PREFETCH) {
                prefetch(&binned.by_row, ahead as usize * features);
            }
            let r = r as usize;
            let [g, h] = gh[r];
            let row = &binned.by_row[r * features..(r + 1) * features];
            for (fh, &b) in hist.iter_mut().zip(row) {
                let e = &mut fh[b as usize];
                e[0] += g;
                e[1] += h;
            }
        }
        hist
    };
    // Rows on threads, each with a zeroed histogram of its own, merged at the end.
    if rows.len() < PARALLEL_ROWS || !parallel {
        return part(rows);
    }
    let chunk = rows.len().div_ceil(rayon::current_num_threads());
    rows.par_chunks(chunk)
        .map(part)
        .reduce_with(|mut a, b| {
            add(&mut a, &b);
            a
        })
        .unwrap_or_else(|| zeroed(features))
}

pub fn add(into: &mut [FeatureHist], other: &[FeatureHist]) {
    for (a, b) in into.iter_mut().zip(other) {
        for (x, y) in a.iter_mut().zip(b) {
            x[0] += y[0];
            x[1] += y[1];
        }
    }
}

/// `into` −= `other`: a parent's histogram becomes its larger child's.
pub fn subtract(into: &mut [FeatureHist], other: &[FeatureHist]) {
    for (a, b) in into.iter_mut().zip(other) {
        for (x, y) in a.iter_mut().zip(b) {
            x[0] -= y[0];
            x[1] -= y[1];
        }
    }
}

/// A power of two s such that `count` values of magnitude up to `max_abs`, each times s,
/// sum within ±2^62.
pub fn scale_for(max_abs: f64, count: usize) -> f64 {
    if max_abs.is_nan() || max_abs <= 0.0 || !max_abs.is_finite() {
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
        let bins: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 11) as u8).collect();
        let by_row = (0..100_000)
            .flat_map(|r| [bins[r], bins[100_000 + r]])
            .collect();
        let binned = Binned {
            rows: 100_000,
            features: 2,
            column_major: true,
            bins,
            by_row,
        };
        let gh: Vec<[i64; 2]> = (0..100_000i64).map(|i| [i * 3 - 7, i % 13]).collect();
        let rows: Vec<u32> = (0..100_000).collect();
        let used = [true, true];
        let whole = build(&binned, &rows, &gh, &used);
        let mut rest = whole.clone();
        subtract(&mut rest, &build(&binned, &rows[..40_000], &gh, &used));
        assert_eq!(rest, build(&binned, &rows[40_000..], &gh, &used));
        assert_eq!(
            build(&binned, &rows, &gh, &[true, false])[1],
            [[0i64; 2]; 256]
        );
        // Row-wise and column-wise agree.
        let column_wise = Binned {
            by_row: vec![],
            ..binned
        };
        assert_eq!(rest, build(&column_wise, &rows[40_000..], &gh, &used));
        let total: i64 = whole[0].iter().map(|e| e[1]).sum();
        assert_eq!(total, gh.iter().map(|g| g[1]).sum::<i64>());
        let s = scale_for(1.0, 10_000_000);
        assert!(s * 1.0 * 1e7 <= 2f64.powi(62) && s * 2.0 * 1e7 > 2f64.powi(62) / 2.0);
    }
}
