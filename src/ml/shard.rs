//! Training rows of one partition as the linear models read them: dense features column by
//! column, and each category's one-hot features as one level index per row (4 bytes a row
//! instead of 8 per level), so a data pass reads a third of the bytes on the seed data.

use std::borrow::Cow;
use std::ops::Range;

/// Rows of one partition, column-major: `columns[j][i]` is feature j of row i, except that a
/// feature one of `hot` holds has an empty column here.
#[derive(Debug, Clone, Default)]
pub struct Shard {
    pub columns: Vec<Vec<f64>>,
    /// One-hot groups of features held as each row's level.
    pub hot: Vec<Hot>,
    pub label: Vec<f64>,
    /// Row weights; empty means every weight is 1.
    pub weight: Vec<f64>,
}

/// A category's one-hot features `first..first + levels`: `level[i]` is the feature that is 1
/// in row i, less `first`; `levels` itself means none is (an unknown, dropped or NULL value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hot {
    pub first: usize,
    pub levels: usize,
    pub level: Vec<u32>,
}

/// One step of a row's margin, in feature order: a dense feature (its index), or a one-hot
/// group of at least one level (its index in `hot`).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Dense(usize, &'a [f64]),
    Hot(usize, &'a Hot),
}

impl Hot {
    /// Per level, then for "none", the coefficient the level's row adds: `a[first + k]`, 0;
    /// zeros after, to a power-of-two length for `add_levels`.
    pub fn table(&self, a: &[f64]) -> Vec<f64> {
        let mut t = a[self.first..self.first + self.levels].to_vec();
        t.resize((self.levels + 1).next_power_of_two(), 0.0);
        t
    }
}

/// `out[i] += table[level[i]]`. The table's power-of-two length lets the index be masked
/// (levels are below it, so the mask changes none): no bounds check is left in the loop, and
/// it loads four rows' entries at a time.
pub fn add_levels(out: &mut [f64], level: &[u32], table: &[f64]) {
    debug_assert!(table.len().is_power_of_two());
    let mask = table.len().saturating_sub(1);
    let table = &table[..=mask];
    for (o, &l) in out.iter_mut().zip(level) {
        *o += table[l as usize & mask];
    }
}

impl Shard {
    pub fn rows(&self) -> usize {
        self.label.len()
    }

    pub(crate) fn w(&self, i: usize) -> f64 {
        if self.weight.is_empty() {
            1.0
        } else {
            self.weight[i]
        }
    }

    /// The features in order, dense columns and one-hot groups. Adding a group's table entry
    /// where the dense layout added a·1 and a·0 per level gives the same margin to the bit.
    pub fn parts(&self) -> Vec<Part<'_>> {
        let mut out = vec![];
        let mut groups = self.hot.iter().enumerate().peekable();
        let mut j = 0;
        loop {
            while let Some((g, h)) = groups.next_if(|(_, h)| h.first == j) {
                if h.levels > 0 {
                    out.push(Part::Hot(g, h));
                }
                j += h.levels;
            }
            let Some(column) = self.columns.get(j) else {
                return out;
            };
            out.push(Part::Dense(j, column));
            j += 1;
        }
    }

    /// Rows `rows` of feature j as values, a one-hot level as 0s and 1s.
    pub fn column(&self, j: usize, rows: Range<usize>) -> Cow<'_, [f64]> {
        match self
            .hot
            .iter()
            .find(|h| (h.first..h.first + h.levels).contains(&j))
        {
            Some(h) => {
                let k = (j - h.first) as u32;
                Cow::Owned(
                    h.level[rows]
                        .iter()
                        .map(|&l| f64::from(u8::from(l == k)))
                        .collect(),
                )
            }
            None => Cow::Borrowed(&self.columns[j][rows]),
        }
    }

    /// The same rows with every feature a dense column.
    pub fn dense(&self) -> Shard {
        Shard {
            columns: (0..self.columns.len())
                .map(|j| self.column(j, 0..self.rows()).into_owned())
                .collect(),
            hot: vec![],
            label: self.label.clone(),
            weight: self.weight.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Rows with a dense feature, a 3-level group, an empty group (a category with no levels)
    /// and another dense feature:
    /// levels 0, 1 and 2 and "none" (3) all occur.
    pub fn mixed(rows: usize, seed: usize, weighted: bool) -> Shard {
        let level = |i: usize| ((i * 7 + seed) % 5).min(3) as u32;
        Shard {
            columns: vec![
                (0..rows)
                    .map(|i| ((i * 31 + seed) % 97) as f64 / 13.0)
                    .collect(),
                vec![],
                vec![],
                vec![],
                (0..rows)
                    .map(|i| ((i * 17 + seed) % 89) as f64 / 7.0 - 3.0)
                    .collect(),
            ],
            hot: vec![
                Hot {
                    first: 1,
                    levels: 3,
                    level: (0..rows).map(level).collect(),
                },
                Hot {
                    first: 4,
                    levels: 0,
                    level: vec![0; rows],
                },
            ],
            label: (0..rows)
                .map(|i| (i + seed).is_multiple_of(3) as u8 as f64)
                .collect(),
            weight: if weighted {
                (0..rows).map(|i| 0.5 + (i % 7) as f64 / 4.0).collect()
            } else {
                vec![]
            },
        }
    }

    /// Rows with one dense feature and a category of `levels` levels (and "none").
    pub fn wide(rows: usize, levels: usize) -> Shard {
        Shard {
            columns: std::iter::once((0..rows).map(|i| (i % 13) as f64 - 6.0).collect())
                .chain(std::iter::repeat_with(Vec::new).take(levels))
                .collect(),
            hot: vec![Hot {
                first: 1,
                levels,
                level: (0..rows)
                    .map(|i| ((i * 7919) % (levels + 1)) as u32)
                    .collect(),
            }],
            label: (0..rows).map(|i| (i % 5 < 2) as u8 as f64).collect(),
            weight: vec![],
        }
    }

    #[test]
    fn parts_and_dense_columns_follow_the_feature_order() {
        let s = mixed(10, 1, false);
        let kinds: Vec<String> = s
            .parts()
            .iter()
            .map(|p| match p {
                Part::Dense(j, _) => format!("d{j}"),
                Part::Hot(g, h) => format!("h{g}:{}x{}", h.first, h.levels),
            })
            .collect();
        assert_eq!(kinds, ["d0", "h0:1x3", "d4"]);
        let d = s.dense();
        assert!(d.hot.is_empty());
        for i in 0..10 {
            let l = s.hot[0].level[i] as usize;
            for k in 0..3 {
                assert_eq!(d.columns[1 + k][i], f64::from(u8::from(l == k)));
            }
        }
        assert_eq!(d.columns[4], s.columns[4]);
        assert_eq!(&*s.column(2, 3..6), &d.columns[2][3..6]);
    }
}
