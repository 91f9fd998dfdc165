//! Feature values to bins, as LightGBM's `BinMapper` does: numbers by a greedy
//! equal-frequency cut of a row sample (values frequent enough to fill a bin get their own,
//! up to `max_bin`), NULLs in a bin of their own at the end; categories by frequency, one bin
//! each (bin 0 gathers NULLs, rare and unseen categories, and always goes right).

use serde::{Deserialize, Serialize};

/// How one feature's values become bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BinMapper {
    /// Value v falls in the first bin b with v <= upper[b]; the last upper bound is +inf.
    /// Missing values (NaN) take bin `upper.len()`, counted among the bins when the training
    /// rows had any (`nan_bin`); rows scored later may have one either way.
    Numeric { upper: Vec<f64>, nan_bin: bool },
    /// Category code c (0-based, by frequency) falls in bin c + 1 when c < kept; other codes
    /// and NaN in bin 0.
    Categorical { kept: usize },
}

impl BinMapper {
    pub fn num_bins(&self) -> usize {
        match self {
            BinMapper::Numeric { upper, nan_bin } => upper.len() + usize::from(*nan_bin),
            BinMapper::Categorical { kept } => kept + 1,
        }
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self, BinMapper::Categorical { .. })
    }

    /// The bin of value `v` (NaN: missing).
    pub fn bin(&self, v: f64) -> u8 {
        match self {
            BinMapper::Numeric { upper, .. } => {
                if v.is_nan() {
                    return upper.len() as u8;
                }
                // First bound ≥ v; the last bound is +inf so the index is in range.
                upper.partition_point(|u| *u < v).min(upper.len() - 1) as u8
            }
            BinMapper::Categorical { kept } => {
                if v.is_nan() || v < 0.0 || v >= *kept as f64 {
                    0
                } else {
                    v as u8 + 1
                }
            }
        }
    }

    /// The upper bound of bin `b` of a numeric feature: the threshold a split after it uses.
    pub fn upper(&self, b: usize) -> f64 {
        match self {
            BinMapper::Numeric { upper, .. } => upper[b],
            BinMapper::Categorical { .. } => f64::NAN,
        }
    }
}

/// Bin boundaries of a numeric feature from sampled non-missing values (any order; sorted
/// here), LightGBM's `GreedyFindBin`. `total` is the number of sampled values.
pub fn numeric(
    mut sample: Vec<f64>,
    max_bin: usize,
    min_data_in_bin: usize,
    nan_bin: bool,
) -> BinMapper {
    sample.retain(|v| !v.is_nan());
    sample.sort_by(f64::total_cmp);
    let mut distinct: Vec<f64> = vec![];
    let mut counts: Vec<usize> = vec![];
    for v in sample {
        // -0.0 and 0.0 are one value.
        if distinct.last().is_some_and(|d| *d == v) {
            *counts.last_mut().unwrap_or(&mut 0) += 1;
        } else {
            distinct.push(v);
            counts.push(1);
        }
    }
    let bins = max_bin.saturating_sub(usize::from(nan_bin)).max(1);
    BinMapper::Numeric {
        upper: greedy_bounds(&distinct, &counts, bins, min_data_in_bin),
        nan_bin,
    }
}

/// A split point strictly between two consecutive distinct values a < b, so that a goes
/// left and b right.
fn between(a: f64, b: f64) -> f64 {
    let mid = a + (b - a) / 2.0;
    if mid >= b || mid.is_nan() || mid.is_infinite() {
        a
    } else {
        mid
    }
}

fn greedy_bounds(
    distinct: &[f64],
    counts: &[usize],
    max_bin: usize,
    min_data_in_bin: usize,
) -> Vec<f64> {
    let n = distinct.len();
    let mut bounds: Vec<f64> = vec![];
    if n == 0 {
        return vec![f64::INFINITY];
    }
    if n <= max_bin {
        let mut in_bin = 0;
        for i in 0..n - 1 {
            in_bin += counts[i];
            if in_bin >= min_data_in_bin {
                let cut = between(distinct[i], distinct[i + 1]);
                if bounds.last() != Some(&cut) {
                    bounds.push(cut);
                    in_bin = 0;
                }
            }
        }
        bounds.push(f64::INFINITY);
        return bounds;
    }
    let total: usize = counts.iter().sum();
    let max_bin = match total.checked_div(min_data_in_bin) {
        Some(fillable) => max_bin.min(fillable).max(1),
        None => max_bin,
    };
    // Values frequent enough to fill a bin on their own get one.
    let mut mean = total as f64 / max_bin as f64;
    let big: Vec<bool> = counts.iter().map(|c| *c as f64 >= mean).collect();
    let mut rest_bins = max_bin - big.iter().filter(|b| **b).count();
    let mut rest_count: usize = total
        - counts
            .iter()
            .zip(&big)
            .filter(|(_, b)| **b)
            .map(|(c, _)| c)
            .sum::<usize>();
    mean = rest_count as f64 / rest_bins.max(1) as f64;
    let mut uppers = vec![];
    let mut lowers = vec![distinct[0]];
    let mut in_bin = 0usize;
    for i in 0..n - 1 {
        if !big[i] {
            rest_count -= counts[i];
        }
        in_bin += counts[i];
        if big[i] || in_bin as f64 >= mean || (big[i + 1] && in_bin as f64 >= (mean * 0.5).max(1.0))
        {
            uppers.push(distinct[i]);
            lowers.push(distinct[i + 1]);
            if uppers.len() + 1 >= max_bin {
                break;
            }
            in_bin = 0;
            if !big[i] {
                rest_bins = rest_bins.saturating_sub(1);
                mean = rest_count as f64 / rest_bins.max(1) as f64;
            }
        }
    }
    for (u, l) in uppers.iter().zip(&lowers[1..]) {
        let cut = between(*u, *l);
        if bounds.last() != Some(&cut) {
            bounds.push(cut);
        }
    }
    bounds.push(f64::INFINITY);
    bounds
}

/// Categories kept with a bin of their own, from the counts of codes 0, 1, … (by frequency,
/// most frequent first): as many as fit in `max_bin − 1`, dropping those rarer than
/// `min_data_in_bin` after the first two.
pub fn categorical(counts: &[u64], max_bin: usize, min_data_in_bin: usize) -> BinMapper {
    let mut kept = 0;
    for (i, c) in counts.iter().enumerate() {
        if kept + 1 >= max_bin || (i > 1 && (*c as usize) < min_data_in_bin) {
            break;
        }
        kept += 1;
    }
    BinMapper::Categorical { kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each() {
        let m = numeric(
            vec![3.0, 1.0, 2.0, 1.0, 3.0, 2.0, 1.0, 2.0, 3.0],
            255,
            3,
            false,
        );
        assert_eq!(
            m,
            BinMapper::Numeric {
                upper: vec![1.5, 2.5, f64::INFINITY],
                nan_bin: false
            }
        );
        assert_eq!(
            (m.bin(1.0), m.bin(1.5), m.bin(1.6), m.bin(100.0)),
            (0, 0, 1, 2)
        );
        let with_nan = numeric(vec![1.0; 10], 255, 3, true);
        assert_eq!(with_nan.num_bins(), 2);
        assert_eq!(with_nan.bin(f64::NAN), 1);
    }

    #[test]
    fn many_values_are_cut_into_equal_counts() {
        let values: Vec<f64> = (0..10_000).map(|i| (i % 1000) as f64).collect();
        let m = numeric(values.clone(), 10, 3, false);
        assert_eq!(m.num_bins(), 10);
        let mut per_bin = [0usize; 10];
        for v in &values {
            per_bin[m.bin(*v) as usize] += 1;
        }
        assert!(
            per_bin.iter().all(|c| (900..=1100).contains(c)),
            "{per_bin:?}"
        );
        // A value holding half the rows gets a bin of its own.
        let mut skewed = vec![0.0; 5000];
        skewed.extend((0..5000).map(|i| 1.0 + i as f64));
        let m = numeric(skewed, 10, 3, false);
        assert_eq!(m.bin(0.0), 0);
        assert_eq!(m.bin(1.0), 1);
    }

    #[test]
    fn categories_by_frequency() {
        let m = categorical(&[50, 30, 10, 2, 1], 255, 3);
        assert_eq!(m, BinMapper::Categorical { kept: 3 });
        assert_eq!(
            (m.bin(0.0), m.bin(2.0), m.bin(3.0), m.bin(f64::NAN)),
            (1, 3, 0, 0)
        );
        assert_eq!(categorical(&[5; 300], 255, 3).num_bins(), 255);
    }
}
