//! Machine learning end to end: golden coefficients against scikit-learn, split determinism,
//! persistence across a restart and the memory limit (cancellation: tests/shell.rs).

use augur::{Database, DatabaseConfig};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;
use libtest_mimic::Trial;

use crate::common::{augur_in, check, fails, ok, repo, runtime, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "ml::golden_coefficients_match_scikit_learn",
            golden_coefficients,
        ),
        Trial::test(
            "ml::split_is_deterministic_across_partitions",
            split_is_deterministic,
        ),
        Trial::test("ml::model_survives_restart", model_survives_restart),
        Trial::test(
            "ml::training_data_over_memory_limit",
            training_over_memory_limit,
        ),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn floats(batches: &[RecordBatch], column: usize) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(column).as_primitive::<Float64Type>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

fn golden_coefficients() -> R {
    let text = std::fs::read_to_string(repo().join("testdata/ml/golden.json"))
        .map_err(|e| e.to_string())?;
    let golden: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let rt = runtime();
    rt.block_on(async {
        let db = Database::in_memory().await.map_err(|e| e.to_string())?;
        let s = db.session().map_err(|e| e.to_string())?;
        let path = repo().join("testdata/ml/golden.csv");
        for case in golden["cases"].as_array().into_iter().flatten() {
            let (reg, alpha) = (case["reg_param"].as_f64().unwrap_or(0.0), case["elastic_net_param"].as_f64().unwrap_or(0.0));
            let sql = format!(
                "TRAIN MODEL g USING logistic_regression PREDICT label WITH (reg_param = {reg}, elastic_net_param = {alpha}, \
                 tol = 1e-12, max_iter = 1000) AS SELECT * FROM '{}'",
                path.display()
            );
            s.execute_to_end(&sql).await.map_err(|e| e.to_string())?;
            let weights = s.execute_to_end("SELECT weight FROM model_weights(g)").await.map_err(|e| e.to_string())?;
            let got = floats(&weights, 0);
            let mut want = vec![case["intercept"].as_f64().unwrap_or(f64::NAN)];
            want.extend(case["coefficients"].as_array().into_iter().flatten().filter_map(|v| v.as_f64()));
            check(got.len() == want.len(), || format!("{}: {} weights, want {}", case["name"], got.len(), want.len()))?;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let close = if *w == 0.0 { *g == 0.0 } else { (g - w).abs() <= 1e-6 * w.abs() };
                check(close, || format!("{} weight {i}: augur {g} vs scikit-learn {w}", case["name"]))?;
            }
        }
        Ok::<_, String>(())
    })?;
    Ok(())
}

/// The same seed gives the same held-out rows and the same model at 1 and 4 partitions.
fn split_is_deterministic() -> R {
    let rt = runtime();
    let mut results = vec![];
    for threads in [1usize, 4] {
        let result = rt.block_on(async {
            let db = Database::open(DatabaseConfig { target_partitions: Some(threads), ..Default::default() }).await.map_err(|e| e.to_string())?;
            let s = db.session().map_err(|e| e.to_string())?;
            let path = repo().join("testdata/transactions.csv");
            s.execute_to_end(&format!(
                "TRAIN MODEL m USING logistic_regression PREDICT risk_score WITH (reg_param = 0.01, split = 0.3, seed = 7, tol = 1e-10) \
                 AS SELECT transaction_amount, transaction_type, age, balance, risk_score FROM '{}'",
                path.display()
            ))
            .await
            .map_err(|e| e.to_string())?;
            let w = s.execute_to_end("SELECT weight FROM model_weights(m)").await.map_err(|e| e.to_string())?;
            let e = s.execute_to_end("SELECT rows, auc_roc FROM evaluate(m)").await.map_err(|e| e.to_string())?;
            Ok::<_, String>((floats(&w, 0), floats(&e, 0), floats(&e, 1)))
        })?;
        results.push(result);
    }
    let (a, b) = (&results[0], &results[1]);
    check(a.1 == b.1 && a.1[0] > 1000.0, || {
        format!("held-out rows differ: {:?} vs {:?}", a.1, b.1)
    })?;
    check(
        a.0.iter()
            .zip(&b.0)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(1.0)),
        || format!("weights differ: {:?} vs {:?}", a.0, b.0),
    )?;
    check((a.2[0] - b.2[0]).abs() < 1e-12, || "AUC differs".into())?;
    Ok(())
}

fn model_survives_restart() -> R {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    let csv = repo().join("testdata/transactions.csv");
    let train = format!(
        "CREATE TABLE tx AS SELECT * FROM '{}'; \
         TRAIN MODEL risk USING logistic_regression PREDICT risk_score WITH (reg_param = 0.01, split = 0.3) \
         AS SELECT transaction_amount, transaction_type, age, balance, prior_defaults, risk_score FROM tx; \
         TRAIN MODEL risk USING logistic_regression PREDICT risk_score WITH (reg_param = 0.02) \
         AS SELECT transaction_amount, age, risk_score FROM tx",
        csv.display()
    );
    ok(&augur_in(d, &[db, "-c", &train], None))?;
    let shown = ok(&augur_in(d, &[db, "-c", "SHOW MODELS"], None))?;
    check(
        shown.lines().count() == 3 && shown.contains("risk,1,") && shown.contains("risk,2,"),
        || format!("SHOW MODELS {shown:?}"),
    )?;
    let scored = ok(&augur_in(
        d,
        &[
            db,
            "-c",
            "SELECT count(*) AS n, count(prediction) AS scored, sum(CASE WHEN probability BETWEEN 0 AND 1 THEN 1 ELSE 0 END) AS valid FROM predict('risk@1', tx)",
        ],
        None,
    ))?;
    let numbers: Vec<i64> = scored
        .lines()
        .nth(1)
        .unwrap_or("")
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    check(
        numbers.len() == 3 && numbers[0] == 5000 && numbers[1] > 4500 && numbers[1] == numbers[2],
        || format!("predict after restart {scored:?}"),
    )?;
    let newest = ok(&augur_in(
        d,
        &[db, "-c", "SELECT count(*) AS n FROM model_weights(risk)"],
        None,
    ))?;
    check(newest == "n\n3\n", || {
        format!("newest version has intercept + 2 weights: {newest:?}")
    })?;
    ok(&augur_in(d, &[db, "-c", "DROP MODEL risk@2"], None))?;
    let out = augur_in(
        d,
        &[db, "-c", "SELECT * FROM model_weights('risk@2')"],
        None,
    );
    fails(&out, 1, &["model 'risk' has no version 2"])?;
    ok(&augur_in(d, &[db, "-c", "DROP MODEL risk"], None))?;
    let out = augur_in(d, &[db, "-c", "DESCRIBE MODEL risk"], None);
    fails(&out, 1, &["model 'risk' does not exist"])?;
    Ok(())
}

fn training_over_memory_limit() -> R {
    let dir = tempdir();
    let out = augur_in(
        dir.path(),
        &[
            "--memory-limit",
            "20MB",
            "-c",
            "TRAIN MODEL big USING linear_regression PREDICT y AS SELECT v, v * 2.0 AS y, repeat('x', 50) AS pad FROM generate_series(1, 1000000) AS t(v)",
        ],
        None,
    );
    fails(&out, 3, &["does not fit in memory", "--memory-limit"])?;
    // Numeric features only: the rows are encoded as they are read, and the encoded rows
    // (3M × 3 doubles, 72 MB) are what is charged.
    let out = augur_in(
        dir.path(),
        &[
            "--memory-limit",
            "20MB",
            "-c",
            "TRAIN MODEL big USING linear_regression PREDICT y AS SELECT v, v * 2.0 AS y FROM generate_series(1, 3000000) AS t(v)",
        ],
        None,
    );
    fails(&out, 3, &["does not fit in memory", "--memory-limit"])?;
    Ok(())
}
