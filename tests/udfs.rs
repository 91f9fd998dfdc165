//! Functions end to end: user functions survive a restart and work inside TRAIN MODEL,
//! `generate_transactions` is deterministic and follows its label model, and the
//! embedding example runs.

use libtest_mimic::Trial;

use crate::common::{augur_in, bin, check, ok, stderr, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "udfs::user_function_survives_restart",
            user_function_survives_restart,
        ),
        Trial::test(
            "udfs::generate_transactions_is_deterministic",
            generate_transactions_is_deterministic,
        ),
        Trial::test(
            "udfs::generate_transactions_follows_its_label_model",
            generate_transactions_follows_its_label_model,
        ),
        Trial::test("udfs::embedding_example_runs", embedding_example_runs),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn user_function_survives_restart() -> R {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    ok(&augur_in(
        d,
        &[
            db,
            "-c",
            "CREATE FUNCTION amount_k(x DOUBLE) RETURNS DOUBLE RETURN x / 1000",
            "-c",
            "CREATE FUNCTION band(p DOUBLE, cut DOUBLE) RETURNS VARCHAR AS 'CASE WHEN p > cut THEN ''high'' ELSE ''low'' END'",
        ],
        None,
    ))?;
    let out = ok(&augur_in(
        d,
        &[
            db,
            "-c",
            "SELECT amount_k(2500), band(0.7, 0.5), band(0.1, 0.5)",
        ],
        None,
    ))?;
    check(out.lines().nth(1) == Some("2.5,high,low"), || {
        format!("after restart: {out:?}")
    })?;
    // Inside a training query, after another restart.
    let trained = ok(&augur_in(
        d,
        &[
            db,
            "-c",
            "TRAIN MODEL m USING linear_regression PREDICT y AS \
             SELECT v, amount_k(v * 1000) * 3 + 1 AS y FROM generate_series(1, 50) t(v)",
            "-c",
            "SELECT round(weight, 6) FROM model_weights(m) ORDER BY feature",
        ],
        None,
    ))?;
    check(
        trained.contains("\n1.0\n") && trained.contains("\n3.0"),
        || format!("model of y = 3v + 1: {trained:?}"),
    )?;
    let wrong = augur_in(d, &[db, "-c", "SELECT band('x')"], None);
    check(
        !wrong.status.success()
            && stderr(&wrong).contains("band(p DOUBLE, cut DOUBLE) RETURNS VARCHAR"),
        || {
            format!(
                "call-time error should name the signature: {}",
                stderr(&wrong)
            )
        },
    )?;
    ok(&augur_in(d, &[db, "-c", "DROP FUNCTION band"], None))?;
    let gone = augur_in(d, &[db, "-c", "SELECT band(0.1, 0.5)"], None);
    check(!gone.status.success(), || "band survived DROP".into())?;
    let kept = ok(&augur_in(d, &[db, "-c", "SELECT amount_k(1000)"], None))?;
    check(kept.ends_with("1.0\n"), || format!("{kept:?}"))?;
    Ok(())
}

fn generate_transactions_is_deterministic() -> R {
    let dir = tempdir();
    let sql = "SELECT * FROM generate_transactions(30000, 7) ORDER BY customer_id, transaction_date, \
               transaction_amount, balance, age, transaction_type, merchant_category";
    let mut outputs = vec![];
    for threads in ["1", "4", "4"] {
        outputs.push(ok(&augur_in(
            dir.path(),
            &["--threads", threads, "-c", sql],
            None,
        ))?);
    }
    check(outputs[0].lines().count() == 30_001, || {
        format!("{} lines", outputs[0].lines().count())
    })?;
    check(outputs.iter().all(|o| *o == outputs[0]), || {
        "rows differ between runs or thread counts".into()
    })?;
    let other_seed = ok(&augur_in(
        dir.path(),
        &["-c", &sql.replace("30000, 7", "30000, 8")],
        None,
    ))?;
    check(other_seed != outputs[0], || {
        "the seed changes nothing".into()
    })?;
    Ok(())
}

/// The generator's log-odds are known (udfs/src/generate.rs, testdata/gen_transactions.py):
/// a model trained on enough rows recovers them.
fn generate_transactions_follows_its_label_model() -> R {
    let dir = tempdir();
    let out = ok(&augur_in(
        dir.path(),
        &[
            "-c",
            "TRAIN MODEL g USING logistic_regression PREDICT risk_score AS \
             SELECT transaction_amount / 1000 AS amount_k, (age - 40) / 10.0 AS age_10, \
             balance / 10000 AS balance_10k, prior_defaults, risk_score FROM generate_transactions(200000, 3)",
            "-c",
            "SELECT feature, weight FROM model_weights(g)",
        ],
        None,
    ))?;
    let weight = |name: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|w| w.parse().ok())
    };
    // Type and merchant effects are left out of this model, so allow for their bias.
    for (name, truth) in [
        ("amount_k", 0.35),
        ("age_10", -0.25),
        ("balance_10k", -0.30),
        ("prior_defaults", 0.9),
    ] {
        let w = weight(name);
        check(w.is_some_and(|w| (w - truth).abs() < 0.1), || {
            format!("{name}: {w:?}, generated with {truth}; {out}")
        })?;
    }
    Ok(())
}

fn embedding_example_runs() -> R {
    let example = bin()
        .parent()
        .map(|p| p.join("examples").join("embed"))
        .ok_or("no target dir")?;
    let out = std::process::Command::new(&example).output().map_err(|e| {
        format!(
            "{}: {e} (cargo test builds the examples)",
            example.display()
        )
    })?;
    let text = ok(&out)?;
    check(
        text.contains("high") && text.contains("medium") && text.contains("low"),
        || format!("embed printed {text:?}"),
    )?;
    Ok(())
}
