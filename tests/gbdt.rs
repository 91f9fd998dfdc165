//! Boosted trees end to end, with LightGBM run in the test as the oracle: models trained by
//! LightGBM import and score bit for bit (raw scores, TreeSHAP), models trained here export
//! to a file LightGBM loads and scores the same, held-out quality matches LightGBM trained
//! with the same parameters on the same rows, and training is deterministic.

use std::path::Path;
use std::process::Command;

use libtest_mimic::Trial;

use crate::common::{augur_in, check, fails, ok, repo, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("gbdt::lightgbm_models_import_and_export", interchange),
        Trial::test("gbdt::quality_matches_lightgbm", quality),
        Trial::test(
            "gbdt::deterministic_across_partitions_and_runs",
            determinism,
        ),
        Trial::test("gbdt::model_survives_restart", restart),
        Trial::test("gbdt::files_that_are_not_models", bad_files),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

/// Run the oracle script; its last stdout line is JSON.
fn oracle(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new("python3")
        .arg(repo().join("tests/python/lightgbm_oracle.py"))
        .args(args)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    if !out.status.success() {
        return Err(format!(
            "oracle {args:?} failed: {last} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_str(last).map_err(|e| format!("oracle output {last:?}: {e}"))
}

fn run(dir: &Path, db: Option<&str>, statements: &[&str]) -> Result<String, String> {
    let mut args: Vec<&str> = db.into_iter().collect();
    for s in statements {
        args.push("-c");
        args.push(s);
    }
    ok(&augur_in(dir, &args, None))
}

const FEATURES: &str = "x1, x2, x3, x4, x5, cat1, cat2";
const CONTRIBUTIONS: &str = "contribution_x1, contribution_x2, contribution_x3, contribution_x4, \
                             contribution_x5, contribution_cat1, contribution_cat2";

/// Raw scores of every row and explanations of the first 5,000, as the oracle reads them.
fn scores(model: &str) -> [String; 2] {
    [
        format!(
            "COPY (SELECT id, predict_raw('{model}', {FEATURES}) AS raw_score FROM 'data.csv') \
             TO 'augur_{model}_raw.csv'"
        ),
        format!(
            "COPY (SELECT id, raw_score, bias, {CONTRIBUTIONS} FROM explain({model}, \
             (SELECT * FROM 'data.csv' WHERE id < 5000))) TO 'augur_{model}.csv'"
        ),
    ]
}

/// 100k rows with numbers, categories and NULL-heavy columns: LightGBM's binary and
/// regression models import and score exactly (raw 1e-12, contributions 1e-9), and models
/// trained here export to files LightGBM scores the same.
fn interchange() -> R {
    let dir = tempdir();
    let d = dir.path();
    let path = d.to_string_lossy().to_string();
    oracle(&["import-data", &path, "100000"])?;
    for (model, file) in [("binary", "binary.txt"), ("regression", "regression.txt")] {
        let import = format!("IMPORT MODEL {model} FROM '{file}' OPTIONS (format = 'lightgbm')");
        let [raw, explained] = scores(model);
        run(d, None, &[&import, &raw, &explained])?;
        let result = oracle(&["check-scores", &path, model])?;
        check(result["raw_rows"] == 100000, || format!("{result}"))?;
    }
    for (model, label) in [("ab", "y"), ("ar", "target")] {
        let train = format!(
            "TRAIN MODEL {model} USING boosted_trees PREDICT {label} WITH (num_iterations = 40, \
             num_leaves = 31, min_data_per_group = 50) AS SELECT {FEATURES}, {label} FROM 'data.csv'"
        );
        let export = format!("EXPORT MODEL {model} TO '{model}.txt' OPTIONS (format = 'lightgbm')");
        let [raw, explained] = scores(model);
        // Exported, then imported back: the same scores.
        let back = format!("IMPORT MODEL {model}_back FROM '{model}.txt'");
        let same = format!(
            "SELECT count(*) AS differ FROM 'data.csv' WHERE predict_raw('{model}', {FEATURES}) \
             <> predict_raw('{model}_back', {FEATURES})"
        );
        let out = run(
            d,
            Some("db"),
            &[&train, &export, &raw, &explained, &back, &same],
        )?;
        check(out.ends_with("differ\n0\n"), || {
            format!("re-imported {model} scores differently: {out}")
        })?;
        let result = oracle(&["score-export", &path, model])?;
        check(result["raw_rows"] == 100000, || format!("{result}"))?;
    }
    Ok(())
}

/// Held-out quality at LightGBM's default parameters, on the same rows: AUC within 0.002 on
/// the demo's data (1M rows) and a 28-feature set with interactions, RMSE within 1% on a
/// regression set.
fn quality() -> R {
    let dir = tempdir();
    let d = dir.path();
    let path = d.to_string_lossy().to_string();
    let cases: [(&str, &str, &str, &str); 3] = [
        ("transactions", "risk_score", "binary", "customer_id"),
        ("classification", "y", "binary", "id"),
        ("regression", "y", "regression", "id"),
    ];
    for (kind, label, objective, key) in cases {
        if kind == "transactions" {
            run(
                d,
                None,
                &["COPY (SELECT * FROM generate_transactions(1000000, 5)) TO 'raw.csv'"],
            )?;
        } else {
            oracle(&["synthetic", &path, kind, "200000"])?;
            std::fs::rename(d.join("quality.csv"), d.join("raw.csv")).map_err(|e| e.to_string())?;
        }
        // Both sides train on the rows Augur's split keeps and score the rows it holds out.
        run(
            d,
            None,
            &[&format!(
                "COPY (SELECT *, hash_split({key}, 42, 0.3) AS held FROM 'raw.csv') TO 'quality.csv'"
            )],
        )?;
        let metric = if objective == "binary" {
            "auc_roc"
        } else {
            "rmse"
        };
        let out = run(
            d,
            None,
            &[
                &format!(
                    "TRAIN MODEL q USING boosted_trees PREDICT {label} WITH (split = 0.3, split_key = '{key}', \
                     seed = 42) AS SELECT * EXCLUDE (held{}) FROM 'quality.csv'",
                    if kind == "transactions" {
                        ", transaction_date"
                    } else {
                        ""
                    }
                ),
                &format!("SELECT {metric} FROM evaluate(q)"),
            ],
        )?;
        let ours: Vec<f64> = out
            .lines()
            .last()
            .unwrap_or("")
            .split(',')
            .filter_map(|v| v.parse().ok())
            .collect();
        let theirs = oracle(&["quality", &path, label, objective, "{}"])?;
        if objective == "binary" {
            let (a, b) = (
                ours.first().copied().unwrap_or(0.0),
                theirs["auc"].as_f64().unwrap_or(1.0),
            );
            eprintln!("{kind}: AUC augur {a:.5}, LightGBM {b:.5}");
            check((a - b).abs() <= 0.002, || {
                format!("{kind}: held-out AUC {a} vs LightGBM {b} ({theirs})")
            })?;
        } else {
            let (a, b) = (
                ours.first().copied().unwrap_or(f64::MAX),
                theirs["rmse"].as_f64().unwrap_or(0.0),
            );
            eprintln!("{kind}: RMSE augur {a:.5}, LightGBM {b:.5}");
            check((a - b).abs() <= 0.01 * b, || {
                format!("{kind}: held-out RMSE {a} vs LightGBM {b} ({theirs})")
            })?;
        }
    }
    Ok(())
}

/// The same seed gives byte-identical model files whatever the number of partitions and
/// threads, and from run to run — with bagging and feature fraction on.
fn determinism() -> R {
    let dir = tempdir();
    let d = dir.path();
    let path = d.to_string_lossy().to_string();
    oracle(&["synthetic", &path, "classification", "50000"])?;
    let train = "TRAIN MODEL det USING boosted_trees PREDICT y WITH (num_iterations = 25, \
                 bagging_fraction = 0.7, bagging_freq = 1, feature_fraction = 0.6, split = 0.2, \
                 split_key = 'id', seed = 9) AS SELECT * FROM 'quality.csv'";
    let mut files = vec![];
    for (i, threads) in ["1", "4", "1", "3"].iter().enumerate() {
        let export = format!("EXPORT MODEL det TO 'det{i}.txt'");
        ok(&augur_in(
            d,
            &["--threads", threads, "-c", train, "-c", &export],
            None,
        ))?;
        files.push(std::fs::read(d.join(format!("det{i}.txt"))).map_err(|e| e.to_string())?);
    }
    for (i, f) in files.iter().enumerate().skip(1) {
        check(f == &files[0], || {
            format!("model {i} differs from model 0 (threads 1, 4, 1, 3)")
        })?;
    }
    Ok(())
}

/// A model trained in a database directory scores the same after the process restarts.
fn restart() -> R {
    let dir = tempdir();
    let d = dir.path();
    let csv = repo().join("testdata/transactions.csv");
    let score = "SELECT sum(predict_raw('r', transaction_amount, transaction_type, age, balance)) AS s, \
                 count(*) AS n FROM tx";
    let before = run(
        d,
        Some("db"),
        &[
            &format!("CREATE TABLE tx AS SELECT * FROM '{}'", csv.display()),
            "TRAIN MODEL r USING boosted_trees PREDICT risk_score WITH (num_iterations = 20) \
             AS SELECT transaction_amount, transaction_type, age, balance, risk_score FROM tx",
            score,
        ],
    )?;
    let after = run(d, Some("db"), &[score])?;
    check(before.ends_with(&after) && after.contains(",5000"), || {
        format!("before restart {before:?}, after {after:?}")
    })?;
    Ok(())
}

/// Files that are not LightGBM models, or are cut short, are refused with the reason, and
/// nothing is stored.
fn bad_files() -> R {
    let dir = tempdir();
    let d = dir.path();
    let csv = repo().join("testdata/transactions.csv");
    run(
        d,
        Some("db"),
        &[
            &format!(
                "TRAIN MODEL m USING boosted_trees PREDICT risk_score WITH (num_iterations = 5) AS \
                 SELECT age, balance, transaction_type, risk_score FROM '{}'",
                csv.display()
            ),
            "EXPORT MODEL m TO 'm.txt'",
        ],
    )?;
    let text = std::fs::read_to_string(d.join("m.txt")).map_err(|e| e.to_string())?;
    std::fs::write(d.join("cut.txt"), &text[..text.len() / 2]).map_err(|e| e.to_string())?;
    std::fs::write(d.join("noise.bin"), [0u8, 159, 146, 150, 255, 0, 1])
        .map_err(|e| e.to_string())?;
    std::fs::write(d.join("other.txt"), "booster[0]:\n0:[f0<1.5] yes=1,no=2\n")
        .map_err(|e| e.to_string())?;
    for (file, needle) in [
        ("cut.txt", "truncated"),
        ("noise.bin", "not a LightGBM text model"),
        ("other.txt", "not a LightGBM text model"),
    ] {
        let out = augur_in(
            d,
            &["db", "-c", &format!("IMPORT MODEL bad FROM '{file}'")],
            None,
        );
        fails(&out, 1, &[needle, file])?;
    }
    let out = augur_in(d, &["db", "-c", "SELECT * FROM evaluate(bad)"], None);
    fails(&out, 1, &["model 'bad' does not exist"])?;
    Ok(())
}
