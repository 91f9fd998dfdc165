//! The best split of one leaf on one feature, from its histogram, with LightGBM's rules:
//! numbers by a scan over bin boundaries (missing values tried on both sides), categories
//! one-vs-rest up to `max_cat_to_onehot` bins and by sorted gradient statistics above it,
//! `min_data_in_leaf`, `min_sum_hessian_in_leaf`, L1/L2, `min_gain_to_split`, and the
//! "basic" monotone constraints (child outputs clamped to the leaf's bounds, splits that
//! would reverse the order refused).

use super::hist::FeatureHist;
use super::params::TreeParams;

/// Integer sums of quantized gradients and hessians, and rows: exact for a leaf, estimated
/// from the hessian share for a range of bins (as LightGBM does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub g: i64,
    pub h: i64,
    pub n: i64,
}

/// A histogram bin with its estimated rows: round(hessian × leaf rows ÷ leaf hessian).
fn bin(e: &[i64; 2], factor: f64) -> Sums {
    Sums {
        g: e[0],
        h: e[1],
        // Hessians are ≥ 0: adding ½ and truncating rounds (without a libm call).
        n: (e[1] as f64 * factor + 0.5) as i64,
    }
}

/// Rows per unit of quantized hessian in a leaf.
fn count_factor(total: Sums) -> f64 {
    total.n as f64 / total.h.max(1) as f64
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }

    pub fn minus(self, o: Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// What the split search knows about a feature.
#[derive(Debug, Clone, Copy)]
pub struct FeatureMeta {
    /// Bins in the histogram, the missing bin included when there is one.
    pub bins: usize,
    /// The last histogram bin holds the rows with a missing value.
    pub nan_bin: bool,
    pub categorical: bool,
    /// +1 increasing, −1 decreasing, 0 free.
    pub monotone: i8,
}

impl FeatureMeta {
    /// Bins of actual values (the missing bin excluded).
    pub fn value_bins(&self) -> usize {
        self.bins - usize::from(self.nan_bin)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub feature: usize,
    /// Improvement of the objective over not splitting, less `min_gain_to_split`.
    pub gain: f64,
    /// Numeric: rows whose bin is ≤ threshold go left.
    pub threshold: u8,
    /// Numeric: where rows with a missing value go.
    pub default_left: bool,
    /// Categorical: the bins that go left (every other bin goes right).
    pub categories: Vec<u8>,
    pub left: Sums,
    pub right: Sums,
    pub left_output: f64,
    pub right_output: f64,
}

/// Shared by every feature of one leaf.
pub struct Search<'a> {
    pub params: &'a TreeParams,
    /// Quantization scales: value = integer / scale.
    pub grad_scale: f64,
    pub hess_scale: f64,
    /// Any monotone constraint at all (then every output is clamped to the leaf's bounds).
    pub constrained: bool,
    /// The leaf's output bounds.
    pub bounds: (f64, f64),
}

fn threshold_l1(s: f64, l1: f64) -> f64 {
    if l1 == 0.0 {
        return s;
    }
    s.signum() * (s.abs() - l1).max(0.0)
}

/// −(L1-thresholded G)/(H + λ₂): the objective-minimising output of a leaf.
pub fn leaf_output(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    -threshold_l1(g, l1) / (h + l2)
}

fn leaf_gain(g: f64, h: f64, l1: f64, l2: f64) -> f64 {
    let s = threshold_l1(g, l1);
    s * s / (h + l2)
}

fn gain_given_output(g: f64, h: f64, l1: f64, l2: f64, out: f64) -> f64 {
    -(2.0 * threshold_l1(g, l1) * out + (h + l2) * out * out)
}

impl Search<'_> {
    /// Dequantized sums; the scales are powers of two, so their inverses are exact.
    fn gh(&self, s: Sums) -> (f64, f64) {
        (
            s.g as f64 * (1.0 / self.grad_scale),
            s.h as f64 * (1.0 / self.hess_scale),
        )
    }

    /// The leaf's own objective value plus `min_gain_to_split`: what a split must beat.
    pub fn shift(&self, total: Sums) -> f64 {
        let (g, h) = self.gh(total);
        let p = self.params;
        leaf_gain(g, h, p.lambda_l1, p.lambda_l2) + p.min_gain_to_split
    }

    pub fn output(&self, s: Sums, l2: f64) -> f64 {
        let (g, h) = self.gh(s);
        let out = leaf_output(g, h, self.params.lambda_l1, l2);
        if self.constrained {
            out.clamp(self.bounds.0, self.bounds.1)
        } else {
            out
        }
    }

    fn gain(&self, left: Sums, right: Sums, l2: f64, monotone: i8) -> f64 {
        let l1 = self.params.lambda_l1;
        let (gl, hl) = self.gh(left);
        let (gr, hr) = self.gh(right);
        if !self.constrained {
            return leaf_gain(gl, hl, l1, l2) + leaf_gain(gr, hr, l1, l2);
        }
        let lo = self.output(left, l2);
        let ro = self.output(right, l2);
        if (monotone > 0 && lo > ro) || (monotone < 0 && lo < ro) {
            return 0.0;
        }
        gain_given_output(gl, hl, l1, l2, lo) + gain_given_output(gr, hr, l1, l2, ro)
    }

    /// Both sides hold enough rows and hessian.
    fn enough(&self, s: Sums) -> bool {
        s.n >= self.params.min_data_in_leaf as i64
            && s.h as f64 * (1.0 / self.hess_scale) >= self.params.min_sum_hessian_in_leaf
    }

    fn finish(
        &self,
        feature: usize,
        gain: f64,
        shift: f64,
        left: Sums,
        total: Sums,
        l2: f64,
    ) -> Split {
        let right = total.minus(left);
        Split {
            feature,
            gain: gain - shift,
            threshold: 0,
            default_left: false,
            categories: vec![],
            left,
            right,
            left_output: self.output(left, l2),
            right_output: self.output(right, l2),
        }
    }

    /// The best split of the leaf (sums `total`) on feature `f`, if any beats no split.
    pub fn best(
        &self,
        f: usize,
        meta: &FeatureMeta,
        hist: &FeatureHist,
        total: Sums,
    ) -> Option<Split> {
        if meta.categorical {
            self.categorical(f, meta, hist, total)
        } else {
            self.numeric(f, meta, hist, total)
        }
    }

    fn numeric(
        &self,
        f: usize,
        meta: &FeatureMeta,
        hist: &FeatureHist,
        total: Sums,
    ) -> Option<Split> {
        let l2 = self.params.lambda_l2;
        let shift = self.shift(total);
        let values = meta.value_bins();
        // (gain, threshold, missing goes left, left sums)
        let mut best: Option<(f64, usize, bool, Sums)> = None;
        let better = |best: &Option<(f64, usize, bool, Sums)>, gain: f64| {
            gain > shift && best.is_none_or(|b| gain > b.0)
        };
        let factor = count_factor(total);
        if meta.nan_bin && values == 1 {
            // Only "has a value" against "missing".
            let left = bin(&hist[0], factor);
            let right = total.minus(left);
            if self.enough(left) && self.enough(right) {
                let gain = self.gain(left, right, l2, meta.monotone);
                if better(&best, gain) {
                    best = Some((gain, 0, false, left));
                }
            }
        } else {
            // Right to left: the missing bin (if any) stays on the left.
            let mut right = Sums::default();
            for t in (1..values).rev() {
                right.add(bin(&hist[t], factor));
                if !self.enough(right) {
                    continue;
                }
                let left = total.minus(right);
                if !self.enough(left) {
                    break;
                }
                let gain = self.gain(left, right, l2, meta.monotone);
                if better(&best, gain) {
                    best = Some((gain, t - 1, true, left));
                }
            }
            if meta.nan_bin {
                // Left to right: the missing bin stays on the right.
                let mut left = Sums::default();
                for t in 0..values {
                    left.add(bin(&hist[t], factor));
                    if !self.enough(left) {
                        continue;
                    }
                    let right = total.minus(left);
                    if !self.enough(right) {
                        break;
                    }
                    let gain = self.gain(left, right, l2, meta.monotone);
                    if better(&best, gain) {
                        best = Some((gain, t, false, left));
                    }
                }
            }
        }
        let (gain, threshold, nan_left, left) = best?;
        let mut split = self.finish(f, gain, shift, left, total, l2);
        split.threshold = threshold as u8;
        // Without missing values in training, a missing value later follows the majority.
        split.default_left = if meta.nan_bin {
            nan_left
        } else {
            split.left.n >= split.right.n
        };
        Some(split)
    }

    fn categorical(
        &self,
        f: usize,
        meta: &FeatureMeta,
        hist: &FeatureHist,
        total: Sums,
    ) -> Option<Split> {
        let p = self.params;
        let shift = self.shift(total);
        let bins = meta.bins;
        let factor = count_factor(total);
        if bins <= p.max_cat_to_onehot {
            // One category against the rest.
            let mut best: Option<(f64, usize)> = None;
            for t in 1..bins {
                let one = bin(&hist[t], factor);
                let rest = total.minus(one);
                if !self.enough(one) || !self.enough(rest) {
                    continue;
                }
                let gain = self.gain(rest, one, p.lambda_l2, 0);
                if gain > shift && best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, t));
                }
            }
            let (gain, t) = best?;
            let mut split = self.finish(f, gain, shift, bin(&hist[t], factor), total, p.lambda_l2);
            split.categories = vec![t as u8];
            return Some(split);
        }
        // Many against many: categories ordered by G/(H + cat_smooth), the best prefix from
        // either end.
        let l2 = p.lambda_l2 + p.cat_l2;
        let mut order: Vec<usize> = (1..bins)
            .filter(|t| bin(&hist[*t], factor).n as f64 >= p.cat_smooth)
            .collect();
        let ctr = |t: usize| {
            let (g, h) = self.gh(bin(&hist[t], factor));
            g / (h + p.cat_smooth)
        };
        order.sort_by(|a, b| ctr(*a).total_cmp(&ctr(*b)));
        let used = order.len();
        let max_cats = p.max_cat_threshold.min(used.div_ceil(2));
        let mut best: Option<(f64, usize, bool, Sums)> = None;
        for forward in [true, false] {
            let mut left = Sums::default();
            let mut group = 0i64;
            for i in 0..used.min(max_cats) {
                let t = if forward {
                    order[i]
                } else {
                    order[used - 1 - i]
                };
                let one = bin(&hist[t], factor);
                left.add(one);
                group += one.n;
                if !self.enough(left) {
                    continue;
                }
                let right = total.minus(left);
                if !self.enough(right) || right.n < p.min_data_per_group as i64 {
                    break;
                }
                if group < p.min_data_per_group as i64 {
                    continue;
                }
                group = 0;
                let gain = self.gain(left, right, l2, 0);
                if gain > shift && best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, i, forward, left));
                }
            }
        }
        let (gain, i, forward, left) = best?;
        let mut split = self.finish(f, gain, shift, left, total, l2);
        split.categories = (0..=i)
            .map(|k| if forward { order[k] } else { order[used - 1 - k] } as u8)
            .collect();
        Some(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(params: &TreeParams) -> Search<'_> {
        Search {
            params,
            grad_scale: 1.0,
            hess_scale: 1.0,
            constrained: false,
            bounds: (f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    /// Bins 0..4 with gradients −, −, +, +: the split is between bins 1 and 2.
    fn hist() -> (FeatureHist, Sums) {
        let mut h = [[0i64; 2]; 256];
        for (b, g) in [(0, -40), (1, -30), (2, 35), (3, 45)] {
            h[b] = [g, 25];
        }
        (
            h,
            Sums {
                g: 10,
                h: 100,
                n: 100,
            },
        )
    }

    #[test]
    fn numeric_split_at_the_sign_change_with_exact_gain() {
        let p = TreeParams::default();
        let (h, total) = hist();
        let meta = FeatureMeta {
            bins: 4,
            nan_bin: false,
            categorical: false,
            monotone: 0,
        };
        let s = search(&p).best(0, &meta, &h, total).unwrap();
        assert_eq!((s.threshold, s.left.n, s.right.n), (1, 50, 50));
        let want = 70.0f64.powi(2) / 50.0 + 80.0f64.powi(2) / 50.0 - 10.0f64.powi(2) / 100.0;
        assert!((s.gain - want).abs() < 1e-9);
        assert!((s.left_output - 70.0 / 50.0).abs() < 1e-12);
        // Decreasing constraint: the left output (1.4) above the right (−1.6) is allowed;
        // increasing refuses every split here.
        let mut c = search(&p);
        c.constrained = true;
        let inc = FeatureMeta {
            monotone: 1,
            ..meta
        };
        assert!(c.best(0, &inc, &h, total).is_none());
        let dec = FeatureMeta {
            monotone: -1,
            ..meta
        };
        assert_eq!(c.best(0, &dec, &h, total).unwrap().threshold, 1);
        // min_data_in_leaf larger than either side: no split.
        let big = TreeParams {
            min_data_in_leaf: 60,
            ..TreeParams::default()
        };
        assert!(search(&big).best(0, &meta, &h, total).is_none());
    }

    #[test]
    fn missing_values_go_where_they_help() {
        let p = TreeParams {
            min_data_in_leaf: 1,
            ..TreeParams::default()
        };
        // Values in bins 0, 1; missing (bin 2) behave like bin 1.
        let mut h = [[0i64; 2]; 256];
        h[0] = [-50, 25];
        h[1] = [30, 25];
        h[2] = [30, 25];
        let total = Sums {
            g: 10,
            h: 75,
            n: 75,
        };
        let meta = FeatureMeta {
            bins: 3,
            nan_bin: true,
            categorical: false,
            monotone: 0,
        };
        let s = search(&p).best(0, &meta, &h, total).unwrap();
        assert_eq!((s.threshold, s.default_left, s.right.n), (0, false, 50));
    }

    #[test]
    fn categories_many_against_many() {
        let p = TreeParams {
            min_data_in_leaf: 1,
            min_data_per_group: 1,
            cat_smooth: 1.0,
            ..TreeParams::default()
        };
        let mut h = [[0i64; 2]; 256];
        // bins 1..=6; odd bins have negative gradients.
        for b in 1..=6 {
            h[b] = [if b % 2 == 1 { -20 } else { 20 }, 10];
        }
        let total = Sums { g: 0, h: 60, n: 60 };
        let meta = FeatureMeta {
            bins: 7,
            nan_bin: false,
            categorical: true,
            monotone: 0,
        };
        let mut s = search(&p).best(0, &meta, &h, total).unwrap();
        s.categories.sort();
        assert_eq!(s.categories, vec![1, 3, 5]);
        let small = FeatureMeta { bins: 3, ..meta };
        let one = search(&p)
            .best(0, &small, &h, Sums { g: 0, h: 20, n: 20 })
            .unwrap();
        assert_eq!(one.categories.len(), 1);
    }
}
