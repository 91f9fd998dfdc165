//! The credit-risk lifecycle end to end: optimal binning against optbinning and scorecards
//! against the closed form and scikit-learn (tests/python/credit_oracle.py drives the
//! binary), and bad input that must fail with a clear error and store nothing.

use std::process::Command;

use libtest_mimic::Trial;

use crate::common::{augur_in, bin, check, fails, ok, repo, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "credit::binning_and_scorecard_match_optbinning_and_scikit_learn",
            oracle,
        ),
        Trial::test("credit::bad_binning_input_stores_nothing", bad_input),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn oracle() -> R {
    let dir = tempdir();
    let out = Command::new("python3")
        .arg(repo().join("tests/python/credit_oracle.py"))
        .arg(bin())
        .arg(dir.path())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let printed = String::from_utf8_lossy(&out.stdout);
    check(
        out.status.success() && printed.contains("credit: all checks passed"),
        || {
            format!(
                "credit oracle failed:\n{printed}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    )?;
    Ok(())
}

const DATA: &str = "CREATE TABLE d AS SELECT * FROM (VALUES \
    (1, 'a', 5, 0), (2, 'a', 5, 1), (3, 'b', 5, 0), (4, 'b', 5, 1), (5, 'c', 5, 0), \
    (6, 'c', 5, 0), (7, 'a', 5, 1), (8, 'b', 5, 0), (9, NULL, 5, 0), (10, 'c', 5, 1)) v(x, s, k, y)";

fn bad_input() -> R {
    let dir = tempdir();
    let d = dir.path();
    ok(&augur_in(d, &["db", "-c", DATA], None))?;
    let cases: [(&str, &[&str]); 5] = [
        (
            "TRAIN MODEL b USING woe_binning PREDICT x AS SELECT s, x FROM d",
            &["label 'x' of a binning must be 0 (non-event) or 1 (event); found 2, 3"],
        ),
        (
            "TRAIN MODEL b USING woe_binning PREDICT y AS SELECT x, k, y FROM d",
            &[
                "feature 'k' has one distinct value (5)",
                "leave it out of the query",
            ],
        ),
        (
            "TRAIN MODEL b USING woe_binning PREDICT y WITH (min_bin_share = 0.5) \
             AS SELECT CASE WHEN x > 6 THEN x END AS x, y FROM d",
            &["feature 'x': min_bin_share = 0.5 needs 5 rows in every bin, but only 4"],
        ),
        (
            "TRAIN MODEL b USING woe_binning PREDICT y WITH (monotonic_trend = 'up') AS SELECT x, y FROM d",
            &["option monotonic_trend must be 'auto', 'ascending'"],
        ),
        (
            "TRAIN MODEL b USING woe_binning PREDICT y WITH (reg_param = 1) AS SELECT x, y FROM d",
            &["unknown option 'reg_param' for woe_binning; valid options: split"],
        ),
    ];
    for (sql, needles) in cases {
        fails(&augur_in(d, &["db", "-c", sql], None), 1, needles)?;
    }
    let shown = ok(&augur_in(d, &["db", "-c", "SHOW MODELS"], None))?;
    check(!shown.contains("woe_binning"), || {
        format!("a failed training stored a model: {shown}")
    })?;
    // A scorecard naming a model that does not bin, or a column its binning lacks.
    ok(&augur_in(
        d,
        &[
            "db",
            "-c",
            "TRAIN MODEL lr USING logistic_regression PREDICT y AS SELECT x, y FROM d",
            "-c",
            "TRAIN MODEL b USING woe_binning PREDICT y WITH (min_bin_share = 0) AS SELECT x, y FROM d",
        ],
        None,
    ))?;
    fails(
        &augur_in(
            d,
            &[
                "db",
                "-c",
                "TRAIN MODEL sc USING scorecard PREDICT y WITH (binning = 'lr') AS SELECT x, y FROM d",
            ],
            None,
        ),
        1,
        &["option binning = 'lr': model 'lr' is a logistic_regression, not a woe_binning model"],
    )?;
    fails(
        &augur_in(
            d,
            &[
                "db",
                "-c",
                "TRAIN MODEL sc USING scorecard PREDICT y WITH (binning = 'b') AS SELECT x, s, y FROM d",
            ],
            None,
        ),
        1,
        &["column 's' of the training query is not binned by 'b' (it bins x)"],
    )?;
    fails(
        &augur_in(d, &["db", "-c", "SELECT * FROM predict(b, d)"], None),
        1,
        &["model 'b' is a woe_binning model: it bins features and does not predict"],
    )?;
    let shown = ok(&augur_in(d, &["db", "-c", "SHOW MODELS"], None))?;
    check(!shown.contains("scorecard"), || {
        format!("a failed scorecard was stored: {shown}")
    })?;
    export_targets(d)
}

/// Export targets that cannot be written fail by name and leave no partial file behind; a
/// refused export leaves an earlier export at the same path as it was.
fn export_targets(d: &std::path::Path) -> R {
    ok(&augur_in(
        d,
        &[
            "db",
            "-c",
            "EXPORT MODEL lr TO 'lr.onnx' OPTIONS (format = 'onnx')",
        ],
        None,
    ))?;
    let before = std::fs::read(d.join("lr.onnx")).map_err(|e| e.to_string())?;
    std::fs::write(d.join("afile"), b"").map_err(|e| e.to_string())?;
    let cases: [(&str, &str); 4] = [
        (
            "EXPORT MODEL lr TO 'afile/lr.onnx' OPTIONS (format = 'onnx')",
            "EXPORT MODEL: cannot write 'afile/lr.onnx': ",
        ),
        (
            "EXPORT MODEL lr TO 'models/' OPTIONS (format = 'pmml')",
            "EXPORT MODEL: 'models/' is not a file name; give one such as 'models/lr.pmml'",
        ),
        (
            "EXPORT MODEL lr TO '' OPTIONS (format = 'onnx')",
            "EXPORT MODEL: '' is not a file name",
        ),
        (
            "EXPORT MODEL lr TO 'lr.onnx' OPTIONS (format = 'pmml')",
            "format 'pmml' writes scorecards",
        ),
    ];
    for (sql, needle) in cases {
        fails(&augur_in(d, &["db", "-c", sql], None), 1, &[needle])?;
    }
    let after = std::fs::read(d.join("lr.onnx")).map_err(|e| e.to_string())?;
    check(before == after, || {
        "a refused export changed the earlier file".to_string()
    })?;
    let stray: Vec<String> = std::fs::read_dir(d)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["db", "afile", "lr.onnx"].contains(&n.as_str()))
        .collect();
    check(stray.is_empty(), || {
        format!("failed exports left files behind: {stray:?}")
    })?;
    Ok(())
}
