//! Aggregates that grade a score against a 0/1 label: the ranking metrics `auc`, `gini`
//! and `ks_stat`, and the probability losses `logloss` and `brier`.

use std::mem::take;
use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::cast::as_float64_array;
use datafusion::common::{ScalarValue, exec_err, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Accumulator, AggregateUDF, Documentation};

use crate::aggregate::{
    Aggregate, SKIP, Sum, decode_labels, f64_state, for_each_f64_list, i64_state, list_scalar,
    with_label,
};
use crate::math::SECTION;

/// Exact ROC AUC of ascending-sorted scores: the Mann–Whitney U (a positive outscoring a
/// negative counts 1, a tie ½) over all pairs. Counted in whole half-pairs so the result
/// is exact however large the input; ties need no special casing beyond grouping.
pub fn auc_sorted(positives: &[f64], negatives: &[f64]) -> f64 {
    let mut twice_u: u128 = 0;
    let (mut i, mut below) = (0, 0);
    while i < positives.len() {
        let v = positives[i];
        let group = positives[i..].iter().take_while(|&&p| p == v).count();
        while below < negatives.len() && negatives[below] < v {
            below += 1;
        }
        let tied = negatives[below..].iter().take_while(|&&n| n == v).count();
        twice_u += group as u128 * (2 * below + tied) as u128;
        i += group;
    }
    twice_u as f64 / (2.0 * positives.len() as f64 * negatives.len() as f64)
}

/// Kolmogorov–Smirnov statistic of ascending-sorted scores: the largest gap between the
/// two classes' empirical CDFs, evaluated after each distinct score (so tied scores move
/// both CDFs at once). Compared as integers |i·n_neg − j·n_pos| to stay exact.
pub fn ks_sorted(positives: &[f64], negatives: &[f64]) -> f64 {
    let (n_pos, n_neg) = (positives.len() as u128, negatives.len() as u128);
    let (mut i, mut j, mut best) = (0, 0, 0u128);
    while i < positives.len() || j < negatives.len() {
        let v = match (positives.get(i), negatives.get(j)) {
            (Some(&p), Some(&n)) => p.min(n),
            (Some(&p), None) => p,
            (None, Some(&n)) => n,
            (None, None) => break,
        };
        while i < positives.len() && positives[i] == v {
            i += 1;
        }
        while j < negatives.len() && negatives[j] == v {
            j += 1;
        }
        best = best.max((i as u128 * n_neg).abs_diff(j as u128 * n_pos));
    }
    best as f64 / (n_pos * n_neg) as f64
}

#[derive(Debug, Clone, Copy)]
enum Ranking {
    Auc,
    Gini,
    Ks,
}

/// Keeps every score, split by class: exact AUC and KS need the full ranking, and two
/// flat `Vec<f64>` cost 8 bytes a row with nothing allocated per row.
#[derive(Debug)]
struct RankAccumulator {
    name: &'static str,
    metric: Ranking,
    positives: Vec<f64>,
    negatives: Vec<f64>,
    /// Merged states arrive sorted (see `state`), so the vectors are runs of sorted
    /// scores; a stable sort merges those in O(n log runs) where pdqsort would start over.
    runs: bool,
    sorted: bool,
    labels: Vec<u8>,
}

impl RankAccumulator {
    fn boxed(name: &'static str, metric: Ranking) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RankAccumulator {
            name,
            metric,
            positives: vec![],
            negatives: vec![],
            runs: false,
            sorted: true,
            labels: vec![],
        }))
    }

    fn sort(&mut self) {
        if self.sorted {
            return;
        }
        for scores in [&mut self.positives, &mut self.negatives] {
            if self.runs {
                scores.sort_by(f64::total_cmp);
            } else {
                scores.sort_unstable_by(f64::total_cmp);
            }
        }
        self.sorted = true;
    }
}

impl Accumulator for RankAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [score, label] = values else {
            return internal_err!("{} takes 2 arguments", self.name);
        };
        let scores = as_float64_array(score)?;
        decode_labels(self.name, label, &[score], &mut self.labels)?;
        for (&s, &y) in scores.values().iter().zip(&self.labels) {
            if y == SKIP {
                continue;
            }
            // NaN has no rank; scikit-learn refuses it too.
            if s.is_nan() {
                return exec_err!("{}: score must not be NaN", self.name);
            }
            // -0.0 and 0.0 are one score, but total_cmp would rank them apart.
            let s = s + 0.0;
            if y == 1 {
                self.positives.push(s);
            } else {
                self.negatives.push(s);
            }
        }
        self.sorted = false;
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // Sorting here runs in each partition's thread, leaving the final stage a merge.
        self.sort();
        Ok(vec![
            list_scalar::<Float64Type>(take(&mut self.positives)),
            list_scalar::<Float64Type>(take(&mut self.negatives)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [positives, negatives] = states else {
            return internal_err!("{}: expected 2 state columns", self.name);
        };
        for_each_f64_list(self.name, positives, |v| {
            self.positives.extend_from_slice(v)
        })?;
        for_each_f64_list(self.name, negatives, |v| {
            self.negatives.extend_from_slice(v)
        })?;
        self.runs = true;
        self.sorted = false;
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // With one class there is no pair to rank: undefined, not 0.5.
        if self.positives.is_empty() || self.negatives.is_empty() {
            return Ok(ScalarValue::Float64(None));
        }
        self.sort();
        let (p, n) = (&self.positives, &self.negatives);
        Ok(ScalarValue::Float64(Some(match self.metric {
            Ranking::Auc => auc_sorted(p, n),
            Ranking::Gini => 2.0 * auc_sorted(p, n) - 1.0,
            Ranking::Ks => ks_sorted(p, n),
        })))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + (self.positives.capacity() + self.negatives.capacity()) * size_of::<f64>()
            + self.labels.capacity()
    }
}

#[derive(Debug, Clone, Copy)]
enum Loss {
    LogLoss,
    Brier,
}

/// scikit-learn's historical clipping: keeps ln finite for p of exactly 0 or 1.
const LOGLOSS_EPS: f64 = 1e-15;

/// A mean of per-row losses: a sum and a count are the whole state.
#[derive(Debug)]
struct LossAccumulator {
    name: &'static str,
    loss: Loss,
    sum: Sum,
    count: i64,
    labels: Vec<u8>,
}

impl LossAccumulator {
    fn boxed(name: &'static str, loss: Loss) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LossAccumulator {
            name,
            loss,
            sum: Sum::default(),
            count: 0,
            labels: vec![],
        }))
    }
}

impl Accumulator for LossAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [p, label] = values else {
            return internal_err!("{} takes 2 arguments", self.name);
        };
        let ps = as_float64_array(p)?;
        decode_labels(self.name, label, &[p], &mut self.labels)?;
        for (&p, &y) in ps.values().iter().zip(&self.labels) {
            if y == SKIP {
                continue;
            }
            // A score that is not a probability (a log-odds, a percentage) gives a
            // meaningless loss; say so instead.
            if !(0.0..=1.0).contains(&p) {
                return exec_err!("{}: p must be between 0 and 1, found {p}", self.name);
            }
            let y = f64::from(y);
            self.sum.add(match self.loss {
                Loss::LogLoss => {
                    let p = p.clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
                    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
                }
                Loss::Brier => (p - y) * (p - y),
            });
            self.count += 1;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum.value())),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = f64_state(self.name, states, 0)?;
        let counts = i64_state(self.name, states, 1)?;
        for (sum, count) in sums.iter().zip(counts.iter()) {
            if let (Some(sum), Some(count)) = (sum, count) {
                self.sum.add(sum);
                self.count += count;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.count > 0).then(|| self.sum.value() / self.count as f64),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.labels.capacity()
    }
}

fn score_lists(_: &[FieldRef]) -> Vec<(&'static str, DataType)> {
    vec![
        ("positives", DataType::new_list(DataType::Float64, true)),
        ("negatives", DataType::new_list(DataType::Float64, true)),
    ]
}

fn sum_and_count(_: &[FieldRef]) -> Vec<(&'static str, DataType)> {
    vec![("sum", DataType::Float64), ("count", DataType::Int64)]
}

const LABEL_ARG: &str =
    "the outcome: BOOLEAN, or a number that is 0 or 1 (anything else is an error)";
const NULLS: &str = "Rows where either argument is NULL are ignored; no rows gives NULL.";

static AUC_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "Exact area under the ROC curve of score against label (the probability that a \
             random positive outscores a random negative, ties counting one half; no \
             binning). NULL when only one class is present. {NULLS}"
        ),
        "auc(score, label)",
    )
    .with_argument(
        "score",
        "the model score or probability; higher means more positive",
    )
    .with_argument("label", LABEL_ARG)
    .with_sql_example("SELECT auc(probability, defaulted) FROM predictions;")
    .with_related_udf("gini")
    .with_related_udf("ks_stat")
    .build()
});

static GINI_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "The Gini coefficient (accuracy ratio) 2·AUC − 1 of score against label. NULL \
             when only one class is present. {NULLS}"
        ),
        "gini(score, label)",
    )
    .with_argument(
        "score",
        "the model score or probability; higher means more positive",
    )
    .with_argument("label", LABEL_ARG)
    .with_sql_example("SELECT gini(score, defaulted) FROM scored GROUP BY vintage;")
    .with_related_udf("auc")
    .build()
});

static KS_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "The Kolmogorov–Smirnov statistic: the largest gap, over all score thresholds, \
             between the share of positives and the share of negatives scoring at or below \
             it (tied scores move together). Between 0 and 1; NULL when only one class is \
             present. {NULLS}"
        ),
        "ks_stat(score, label)",
    )
    .with_argument("score", "the model score or probability")
    .with_argument("label", LABEL_ARG)
    .with_sql_example("SELECT ks_stat(score, defaulted) FROM scored;")
    .with_related_udf("auc")
    .build()
});

static LOGLOSS_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!(
            "Mean log loss (binary cross-entropy) −(y·ln p + (1 − y)·ln(1 − p)), with p \
             clipped to [1e-15, 1 − 1e-15] so that p of exactly 0 or 1 stays finite. p \
             outside [0, 1] is an error. {NULLS}"
        ),
        "logloss(p, label)",
    )
    .with_argument("p", "the predicted probability of label 1, between 0 and 1")
    .with_argument("label", LABEL_ARG)
    .with_sql_example("SELECT logloss(probability, defaulted) FROM predictions;")
    .with_related_udf("brier")
    .build()
});

static BRIER_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!("The Brier score: the mean of (p − y)². p outside [0, 1] is an error. {NULLS}"),
        "brier(p, label)",
    )
    .with_argument("p", "the predicted probability of label 1, between 0 and 1")
    .with_argument("label", LABEL_ARG)
    .with_sql_example("SELECT brier(probability, defaulted) FROM predictions;")
    .with_related_udf("logloss")
    .build()
});

pub fn aggregates() -> Vec<AggregateUDF> {
    let ranking = |name, accumulator, doc| {
        Aggregate {
            name,
            signature: with_label(&[DataType::Float64]),
            output: DataType::Float64,
            state: score_lists,
            accumulator,
            doc,
        }
        .udaf()
    };
    let loss = |name, accumulator, doc| {
        Aggregate {
            name,
            signature: with_label(&[DataType::Float64]),
            output: DataType::Float64,
            state: sum_and_count,
            accumulator,
            doc,
        }
        .udaf()
    };
    vec![
        ranking(
            "auc",
            |_| RankAccumulator::boxed("auc", Ranking::Auc),
            &AUC_DOC,
        ),
        ranking(
            "gini",
            |_| RankAccumulator::boxed("gini", Ranking::Gini),
            &GINI_DOC,
        ),
        ranking(
            "ks_stat",
            |_| RankAccumulator::boxed("ks_stat", Ranking::Ks),
            &KS_DOC,
        ),
        loss(
            "logloss",
            |_| LossAccumulator::boxed("logloss", Loss::LogLoss),
            &LOGLOSS_DOC,
        ),
        loss(
            "brier",
            |_| LossAccumulator::boxed("brier", Loss::Brier),
            &BRIER_DOC,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aggregate::testing::{Rng, assert_close, check_merge_property, close, whole};
    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array};

    fn udaf(name: &str) -> AggregateUDF {
        crate::aggregate::testing::named(aggregates(), name)
    }

    fn run(name: &str, scores: &[Option<f64>], labels: &[Option<i64>]) -> Result<Option<f64>> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(scores.to_vec())),
            Arc::new(Int64Array::from(labels.to_vec())),
        ];
        match whole(&udaf(name), &columns)? {
            ScalarValue::Float64(v) => Ok(v),
            other => panic!("{name} gave {other:?}"),
        }
    }

    fn brute_auc(scores: &[f64], labels: &[bool]) -> f64 {
        let (mut u, mut pairs) = (0.0, 0.0);
        for (s, &y) in scores.iter().zip(labels) {
            for (t, &z) in scores.iter().zip(labels) {
                if y && !z {
                    pairs += 1.0;
                    u += if s > t {
                        1.0
                    } else if s == t {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        u / pairs
    }

    fn brute_ks(scores: &[f64], labels: &[bool]) -> f64 {
        let n_pos = labels.iter().filter(|&&y| y).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        scores
            .iter()
            .map(|&t| {
                let below = |class: bool| {
                    scores
                        .iter()
                        .zip(labels)
                        .filter(|&(&s, &y)| y == class && s <= t)
                        .count() as f64
                };
                (below(true) / n_pos - below(false) / n_neg).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn hand_checked_values() -> Result<()> {
        // scikit-learn's roc_auc_score example: 0.75.
        let s = [Some(0.1), Some(0.4), Some(0.35), Some(0.8)];
        let y = [Some(0), Some(0), Some(1), Some(1)];
        assert_eq!(run("auc", &s, &y)?, Some(0.75));
        assert_eq!(run("gini", &s, &y)?, Some(0.5));
        // CDF gaps after 0.1, 0.35, 0.4, 0.8: ½, 0, ½, 0.
        assert_eq!(run("ks_stat", &s, &y)?, Some(0.5));
        // All tied: AUC ½, no separation.
        let tied = [Some(0.3); 4];
        assert_eq!(run("auc", &tied, &y)?, Some(0.5));
        assert_eq!(run("ks_stat", &tied, &y)?, Some(0.0));
        // -0.0 and 0.0 are one score.
        assert_eq!(
            run("auc", &[Some(-0.0), Some(0.0)], &[Some(1), Some(0)])?,
            Some(0.5)
        );
        let p = [Some(0.9), Some(0.2)];
        let y2 = [Some(1), Some(0)];
        let expected = -(0.9f64.ln() + 0.8f64.ln()) / 2.0;
        assert!(close(
            run("logloss", &p, &y2)?.unwrap_or(f64::NAN),
            expected
        ));
        assert!(close(run("brier", &p, &y2)?.unwrap_or(f64::NAN), 0.025));
        // p = 1 with y = 0 is clipped to 1 − 1e-15, not infinite.
        let clipped = run("logloss", &[Some(1.0)], &[Some(0)])?.unwrap_or(f64::NAN);
        assert!(close(clipped, -(1.0 - (1.0 - 1e-15f64)).ln()), "{clipped}");
        Ok(())
    }

    #[test]
    fn ties_match_a_pairwise_count() -> Result<()> {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let n = 2 + rng.below(40);
            let scores: Vec<f64> = (0..n).map(|_| rng.below(6) as f64 / 4.0).collect();
            let labels: Vec<bool> = (0..n).map(|_| rng.chance(0.4)).collect();
            let got_auc = run(
                "auc",
                &scores.iter().map(|&s| Some(s)).collect::<Vec<_>>(),
                &labels
                    .iter()
                    .map(|&y| Some(i64::from(y)))
                    .collect::<Vec<_>>(),
            )?;
            let got_ks = run(
                "ks_stat",
                &scores.iter().map(|&s| Some(s)).collect::<Vec<_>>(),
                &labels
                    .iter()
                    .map(|&y| Some(i64::from(y)))
                    .collect::<Vec<_>>(),
            )?;
            if labels.iter().all(|&y| y) || labels.iter().all(|&y| !y) {
                assert_eq!((got_auc, got_ks), (None, None));
                continue;
            }
            let (auc, ks) = (brute_auc(&scores, &labels), brute_ks(&scores, &labels));
            assert!(
                close(got_auc.unwrap_or(f64::NAN), auc),
                "{got_auc:?} vs {auc}"
            );
            assert!(close(got_ks.unwrap_or(f64::NAN), ks), "{got_ks:?} vs {ks}");
        }
        Ok(())
    }

    #[test]
    fn nulls_empty_single_row_and_one_class() -> Result<()> {
        for name in ["auc", "gini", "ks_stat", "logloss", "brier"] {
            assert_eq!(run(name, &[], &[])?, None, "{name} empty");
            assert_eq!(
                run(name, &[None, Some(0.5)], &[Some(1), None])?,
                None,
                "{name}"
            );
            let one_class = run(name, &[Some(0.2), Some(0.4)], &[Some(1), Some(1)])?;
            let single = run(name, &[Some(0.2)], &[Some(1)])?;
            if matches!(name, "logloss" | "brier") {
                assert!(one_class.is_some() && single.is_some(), "{name}");
            } else {
                assert_eq!((one_class, single), (None, None), "{name}");
            }
        }
        // NULLs are skipped, not counted as a class.
        let s = [Some(0.1), Some(0.4), Some(0.35), Some(0.8), None, Some(0.9)];
        let y = [Some(0), Some(0), Some(1), Some(1), Some(0), None];
        assert_eq!(run("auc", &s, &y)?, Some(0.75));
        Ok(())
    }

    #[test]
    fn labels_other_than_0_and_1_are_errors() {
        let err = run("auc", &[Some(0.5)], &[Some(2)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auc: label must be 0 or 1 (or boolean), found 2"),
            "{err}"
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![0.5])),
            Arc::new(Float64Array::from(vec![0.5])),
        ];
        let err = whole(&udaf("brier"), &columns).unwrap_err().to_string();
        assert!(err.contains("found 0.5"), "{err}");
        let err = run("logloss", &[Some(1.5)], &[Some(1)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("logloss: p must be between 0 and 1, found 1.5"),
            "{err}"
        );
        let err = run("auc", &[Some(f64::NAN)], &[Some(1)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN"), "{err}");
    }

    /// Scores with many ties, labels of every accepted type, a few NULLs in both.
    fn dataset(rng: &mut Rng) -> Vec<ArrayRef> {
        let n = rng.below(300);
        let levels = 1 + rng.below(50);
        let p_pos = [0.0, 0.05, 0.3, 0.5, 1.0][rng.below(5)];
        let scores: Float64Array = (0..n)
            .map(|_| (!rng.chance(0.05)).then(|| rng.below(levels) as f64 / levels as f64))
            .collect();
        let labels: Vec<Option<bool>> = (0..n)
            .map(|_| (!rng.chance(0.05)).then(|| rng.chance(p_pos)))
            .collect();
        let labels: ArrayRef = match rng.below(3) {
            0 => Arc::new(labels.iter().collect::<BooleanArray>()),
            1 => Arc::new(
                labels
                    .iter()
                    .map(|y| y.map(i64::from))
                    .collect::<Int64Array>(),
            ),
            _ => Arc::new(
                labels
                    .iter()
                    .map(|y| y.map(|y| f64::from(u8::from(y))))
                    .collect::<Float64Array>(),
            ),
        };
        vec![Arc::new(scores), labels]
    }

    #[test]
    fn merged_states_agree_with_one_pass() -> Result<()> {
        for name in ["auc", "gini", "ks_stat", "logloss", "brier"] {
            check_merge_property(&udaf(name), dataset, assert_close)?;
        }
        Ok(())
    }
}
