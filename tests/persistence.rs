//! Objects survive a restart: tables (declared and CTAS), inserts, views, external tables,
//! drops; orphan files are collected at open.

use libtest_mimic::Trial;

use crate::common::{augur_in, check, ok, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "persistence::objects_survive_restart",
            objects_survive_restart,
        ),
        Trial::test("persistence::orphans_are_collected", orphans_are_collected),
        Trial::test(
            "persistence::analyzed_statistics_order_joins_after_restart",
            analyzed_statistics_order_joins_after_restart,
        ),
        Trial::test(
            "persistence::in_memory_tables_obey_the_limit",
            in_memory_tables_obey_the_limit,
        ),
        Trial::test(
            "persistence::sorts_spill_under_the_limit",
            sorts_spill_under_the_limit,
        ),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn objects_survive_restart() -> R {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("people.csv"), "name,age\nann,34\nbob,51\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(d.join("semi.csv"), "ann;34\nbob;51\n").map_err(|e| e.to_string())?;
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    let run = |sql: &str| ok(&augur_in(d, &[db, "-c", sql], None));
    run(
        "CREATE TABLE accounts (id INT NOT NULL, owner VARCHAR, balance DOUBLE); \
         INSERT INTO accounts VALUES (1, 'ann', 10.5), (2, 'bob', NULL); \
         INSERT INTO accounts SELECT 3, 'cy', 99.0; \
         CREATE TABLE rich AS SELECT * FROM accounts WHERE balance > 50; \
         CREATE VIEW named AS SELECT owner FROM accounts WHERE owner IS NOT NULL; \
         CREATE EXTERNAL TABLE people STORED AS CSV LOCATION 'people.csv' OPTIONS ('format.has_header' 'true'); \
         CREATE EXTERNAL TABLE semi (name VARCHAR, age BIGINT NOT NULL) STORED AS CSV LOCATION 'semi.csv' \
           OPTIONS ('format.delimiter' ';', 'format.has_header' 'false'); \
         CREATE TABLE doomed AS SELECT 1 AS x; DROP TABLE doomed",
    )?;
    let tables = run(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )?;
    check(
        tables
            == "table_name,table_type\naccounts,BASE TABLE\nnamed,VIEW\npeople,BASE TABLE\nrich,BASE TABLE\nsemi,BASE TABLE\n",
        || format!("tables {tables:?}"),
    )?;
    let rows = run("SELECT id, owner, balance FROM accounts ORDER BY id")?;
    check(
        rows == "id,owner,balance\n1,ann,10.5\n2,bob,\n3,cy,99.0\n",
        || format!("accounts {rows:?}"),
    )?;
    let rows = run(
        "SELECT (SELECT count(*) FROM rich) AS r, (SELECT count(*) FROM named) AS n, (SELECT max(age) FROM people) AS a",
    )?;
    check(rows == "r,n,a\n1,3,51\n", || format!("others {rows:?}"))?;
    // The external table keeps its declared columns and options (delimiter, no header).
    let rows = run("SELECT sum(age) AS s, min(name) AS m FROM semi; DESCRIBE semi")?;
    check(
        rows.starts_with("s,m\n85,ann\n") && rows.contains("age,Int64,NO"),
        || format!("semi {rows:?}"),
    )?;
    let described = run("DESCRIBE accounts")?;
    check(
        described.contains("id,Int32,NO") && described.contains("owner,Utf8"),
        || format!("describe {described:?}"),
    )?;
    run("INSERT INTO rich VALUES (4, 'di', 500.0); DROP VIEW named")?;
    let rows = run("SELECT count(*) AS n FROM rich; SHOW TABLES")?;
    check(
        rows.starts_with("n\n2\n") && !rows.contains("named"),
        || format!("after drop {rows:?}"),
    )?;
    Ok(())
}

/// CSV tables report no statistics, so their joins run as written; what ANALYZE stores is
/// in the catalog, and the next process orders the joins by it.
fn analyzed_statistics_order_joins_after_restart() -> R {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    let run = |sql: &str| ok(&augur_in(d, &[db, "-c", sql], None));
    let mut setup = String::new();
    for (t, sql) in [
        (
            "f",
            "SELECT v AS f_a, v % 2000 AS f_b FROM generate_series(0, 19999) t(v)",
        ),
        (
            "a",
            "SELECT v AS a_key, v AS a_val FROM generate_series(0, 1999) t(v)",
        ),
        (
            "b",
            "SELECT v AS b_key, v AS b_val FROM generate_series(0, 1999) t(v)",
        ),
    ] {
        setup.push_str(&format!(
            "COPY ({sql}) TO '{t}.csv' STORED AS CSV; CREATE EXTERNAL TABLE {t} STORED AS CSV \
             LOCATION '{t}.csv' OPTIONS ('format.has_header' 'true');"
        ));
    }
    run(&setup)?;
    // a keeps 10 rows and b 1,000: joined to f first, a leaves the least.
    let query = "SELECT count(*) AS n FROM f JOIN b ON f_b = b_key JOIN a ON f_a = a_key \
                 WHERE a_val < 10 AND b_val < 1000";
    let depth = |plan: &str, key: &str| {
        plan.lines()
            .find(|l| l.contains("HashJoinExec") && l.contains(key))
            .map(|l| l.len() - l.trim_start().len())
    };
    let before = run(&format!("EXPLAIN {query}"))?;
    check(depth(&before, "b_key") > depth(&before, "a_key"), || {
        format!("not analyzed, the written order stays:\n{before}")
    })?;
    let analyzed = run("ANALYZE")?;
    check(
        analyzed.contains("f,f_a,20000,0,") && analyzed.contains("a,a_val,2000,0,"),
        || format!("ANALYZE answered {analyzed:?}"),
    )?;
    let after = run(&format!("EXPLAIN {query}"))?;
    check(depth(&after, "a_key") > depth(&after, "b_key"), || {
        format!("analyzed, a should join f first:\n{after}")
    })?;
    // Same answer either way.
    let answers = (
        run(&format!("SET augur.join_order = false; {query}"))?,
        run(query)?,
    );
    check(answers.0 == answers.1 && answers.1 == "n\n10\n", || {
        format!("answers {answers:?}")
    })?;
    // Dropping a table drops its statistics: re-created, a is unknown again.
    run(
        "DROP TABLE a; CREATE EXTERNAL TABLE a STORED AS CSV LOCATION 'a.csv' \
         OPTIONS ('format.has_header' 'true')",
    )?;
    let dropped = run(&format!("EXPLAIN {query}"))?;
    check(depth(&dropped, "b_key") > depth(&dropped, "a_key"), || {
        format!("a's statistics should be gone:\n{dropped}")
    })?;
    Ok(())
}

fn orphans_are_collected() -> R {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("db");
    let dbs = db.to_str().unwrap_or_default();
    ok(&augur_in(
        d,
        &[dbs, "-c", "CREATE TABLE t AS SELECT 1 AS v"],
        None,
    ))?;
    let orphan = db.join("data/leftover-from-a-crash.parquet");
    std::fs::write(&orphan, b"partial").map_err(|e| e.to_string())?;
    std::fs::write(db.join("tmp/spill-123"), b"partial").map_err(|e| e.to_string())?;
    let out = ok(&augur_in(d, &[dbs, "-c", "SELECT v FROM t"], None))?;
    check(out == "v\n1\n", || format!("{out:?}"))?;
    check(
        !orphan.exists() && !db.join("tmp/spill-123").exists(),
        || "orphans still present".into(),
    )?;
    Ok(())
}

fn in_memory_tables_obey_the_limit() -> R {
    let dir = tempdir();
    let out = augur_in(
        dir.path(),
        &[
            "--memory-limit",
            "20MB",
            "-c",
            // Random text: stored tables are compressed Parquet, so the bytes must not compress.
            "CREATE TABLE big AS SELECT v, md5(CAST(v AS VARCHAR)) || md5(CAST(-v AS VARCHAR)) AS pad \
             FROM generate_series(1, 1000000) AS t(v)",
        ],
        None,
    );
    crate::common::fails(&out, 3, &["does not fit in memory", "--memory-limit"])?;
    let out = ok(&augur_in(
        dir.path(),
        &[
            "--memory-limit",
            "200MB",
            "-c",
            "CREATE TABLE small AS SELECT v FROM generate_series(1, 1000) AS t(v); SELECT count(*) AS n FROM small",
        ],
        None,
    ))?;
    check(out == "n\n1000\n", || format!("{out:?}"))?;
    Ok(())
}

/// A sort several times larger than the memory limit spills to the database's tmp/ and
/// finishes with the right answer.
fn sorts_spill_under_the_limit() -> R {
    let dir = tempdir();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap_or_default();
    let sql = "SELECT count(*) AS n, sum(CASE WHEN rn = 1 THEN v END) AS lo FROM \
               (SELECT v, row_number() OVER (ORDER BY pad, v DESC) AS rn FROM \
               (SELECT v, repeat('x', 30) AS pad FROM generate_series(1, 1500000) AS t(v)))";
    let out = ok(&augur_in(
        dir.path(),
        &[db, "--memory-limit", "40MB", "-c", sql],
        None,
    ))?;
    check(out == "n,lo\n1500000,1500000\n", || {
        format!("spilled sort {out:?}")
    })?;
    Ok(())
}
