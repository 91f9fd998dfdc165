//! Stored tables as Delta tables, end to end: other engines read what Augur writes and the
//! reverse (tests/python/delta_oracle.py with the `deltalake` package, Polars and DuckDB),
//! a database from before Delta opens upgraded with the same answers, and `kill -9` during
//! INSERT, DELETE, UPDATE, MERGE and OPTIMIZE always leaves a committed version; protocol
//! features Augur cannot write or read are named.

use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;

use crate::common::{Lcg, augur_in, bin, check, ok, repo, stderr, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "delta::interoperates_with_deltalake_polars_and_duckdb",
            oracle,
        ),
        Trial::test("delta::legacy_database_is_upgraded_in_place", upgrade),
        Trial::test("delta::kill_during_dml_leaves_a_committed_version", crash),
        Trial::test(
            "delta::unreachable_external_table_stays_with_its_cause",
            unreachable,
        ),
        Trial::test(
            "delta::unsupported_protocol_features_are_named",
            protocol_features,
        ),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn oracle() -> R {
    let dir = tempdir();
    let out = Command::new("python3")
        .arg(repo().join("tests/python/delta_oracle.py"))
        .arg(crate::common::bin())
        .arg(dir.path())
        .current_dir(repo())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let printed = String::from_utf8_lossy(&out.stdout);
    check(
        out.status.success() && printed.contains("delta: all checks passed"),
        || {
            format!(
                "delta oracle failed:\n{printed}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    )?;
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn csv(d: &std::path::Path, args: &[&str]) -> Result<(String, String), String> {
    let mut all = vec!["--format", "csv"];
    all.extend_from_slice(args);
    let out = augur_in(d, &all, None);
    let text = ok(&out)?;
    Ok((text, stderr(&out)))
}

fn upgrade() -> R {
    let dir = tempdir();
    let d = dir.path();
    let legacy = repo().join("testdata/legacy/db");
    copy_dir(&legacy, &d.join("db")).map_err(|e| e.to_string())?;
    let data = legacy.join("data");
    let data = data.to_string_lossy();
    // The rows as the legacy files hold them, read as plain Parquet files.
    let (want_people, _) = csv(
        d,
        &[
            "-c",
            &format!(
                "SELECT id, name, score, born, CAST(seen AS VARCHAR) AS seen FROM \
                 read_parquet('{data}/people-*.parquet') ORDER BY id"
            ),
        ],
    )?;
    let (want_totals, _) = csv(
        d,
        &[
            "-c",
            &format!("SELECT * FROM read_parquet('{data}/totals-*.parquet') ORDER BY name"),
        ],
    )?;
    let people =
        "SELECT id, name, score, born, CAST(seen AS VARCHAR) AS seen FROM people ORDER BY id";
    let (got, notes) = csv(d, &["db", "-c", people])?;
    check(notes.contains("upgraded to a Delta table"), || {
        format!("no upgrade note on stderr: {notes}")
    })?;
    check(got == want_people, || {
        format!("people after upgrade:\n{got}\nwant:\n{want_people}")
    })?;
    let (got, _) = csv(d, &["db", "-c", "SELECT * FROM totals ORDER BY name"])?;
    check(got == want_totals, || {
        format!("totals after upgrade:\n{got}\nwant:\n{want_totals}")
    })?;
    let (got, notes) = csv(d, &["db", "-c", "SELECT * FROM named ORDER BY id"])?;
    check(got == "id,name\n1,ann\n3,carl\n", || format!("view: {got}"))?;
    check(!notes.contains("upgraded"), || {
        format!("upgraded twice: {notes}")
    })?;
    let catalog = std::fs::read_to_string(d.join("db/catalog.json")).map_err(|e| e.to_string())?;
    check(
        catalog.contains("\"format\": 2") && !catalog.contains("\"files\""),
        || format!("catalog not upgraded: {catalog}"),
    )?;
    let left: Vec<_> = std::fs::read_dir(d.join("db/data"))
        .map_err(|e| e.to_string())?
        .collect();
    check(left.is_empty(), || {
        format!("legacy files left behind: {left:?}")
    })?;
    // The upgraded table takes DML.
    let (got, _) = csv(
        d,
        &[
            "db",
            "-c",
            "DELETE FROM people WHERE id = 2",
            "-c",
            "SELECT count(*) AS n FROM people",
        ],
    )?;
    check(got.ends_with("n\n2\n"), || format!("after delete: {got}"))?;
    Ok(())
}

const ROWS: u64 = 200_000;

/// The table's state: (rows, distinct generations, generation).
fn state(d: &std::path::Path, db: &str) -> Result<(u64, u64, u64), String> {
    let (text, _) = csv(
        d,
        &[
            db,
            "-c",
            "SELECT count(*) AS n, count(DISTINCT gen) AS g, max(gen) AS m FROM t",
        ],
    )?;
    let line = text.lines().nth(1).unwrap_or_default().to_string();
    let v: Vec<u64> = line.split(',').filter_map(|x| x.parse().ok()).collect();
    match v.as_slice() {
        [n, g, m] => Ok((*n, *g, *m)),
        _ => Err(format!("state: {text:?}")),
    }
}

fn crash() -> R {
    let dir = tempdir();
    let d = dir.path();
    let dbs = d.join("db").to_string_lossy().into_owned();
    ok(&augur_in(
        d,
        &[
            &dbs,
            "-c",
            &format!(
                "CREATE TABLE t AS SELECT v, 0 AS gen FROM generate_series(1, {ROWS}) AS g(v)"
            ),
        ],
        None,
    ))?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("delta crash test seed {seed}");
    let mut rng = Lcg(seed);
    let statements = [
        "UPDATE t SET gen = gen + 1",
        "MERGE INTO t USING (SELECT v FROM t) AS s ON t.v = s.v \
         WHEN MATCHED THEN UPDATE SET gen = t.gen + 1",
    ];
    let started = std::time::Instant::now();
    ok(&augur_in(d, &[&dbs, "-c", statements[1]], None))?;
    let window = started.elapsed().as_millis() as u64 + 20;
    let mut before = state(d, &dbs)?;
    let mut interrupted = 0;
    const ROUNDS: usize = 15;
    for round in 0..ROUNDS {
        // Rounds cycle through UPDATE, MERGE, DELETE (of a residue of v not deleted before),
        // INSERT (of 1000 rows whose v ends in 9, which no DELETE here removes) and OPTIMIZE.
        let (sql, committed) = match round % 5 {
            0 | 1 => (
                statements[round % 5].to_string(),
                (before.0, 1, before.2 + 1),
            ),
            2 => (
                format!("DELETE FROM t WHERE v % 10 = {}", round / 5),
                (before.0 - ROWS / 10, 1, before.2),
            ),
            3 => (
                format!(
                    "INSERT INTO t SELECT {} + 10 * g + 9, {} FROM generate_series(1, 1000) AS s(g)",
                    1_000_000 * (round + 1),
                    before.2
                ),
                (before.0 + 1000, 1, before.2),
            ),
            _ => ("OPTIMIZE t".to_string(), before),
        };
        let mut child = Command::new(bin())
            .args([&dbs, "-c", &sql])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(rng.next_ms(window)));
        let _ = child.kill();
        let _ = child.wait();
        let after = state(d, &dbs).map_err(|e| format!("round {round}: reopen: {e}"))?;
        check(after.1 == 1, || {
            format!("round {round} ({sql}): rows from two versions mixed: {after:?}")
        })?;
        check(after == before || after == committed, || {
            format!(
                "round {round} ({sql}): {before:?} → {after:?}, expected either or {committed:?}"
            )
        })?;
        if after == before && committed != before {
            interrupted += 1;
        }
        before = after;
    }
    // Every version a reader may ask for is still whole after the kills and compactions.
    let history = csv(d, &[&dbs, "-c", "SELECT version FROM delta_history('t')"]);
    let versions: Vec<u64> = history?
        .0
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for v in &versions {
        csv(
            d,
            &[
                &dbs,
                "-c",
                &format!("SELECT count(*) FROM t VERSION AS OF {v}"),
            ],
        )
        .map_err(|e| format!("version {v} after the crash rounds: {e}"))?;
    }
    eprintln!(
        "delta crash test: {interrupted} of {} row-changing statements killed before their \
         commit; {} versions all readable",
        ROUNDS * 4 / 5,
        versions.len()
    );
    Ok(())
}

/// An external table whose files are gone when the database opens stays listed, and a query
/// of it names the cause; re-creating it once the files are back makes it readable again.
fn unreachable() -> R {
    let dir = tempdir();
    let d = dir.path();
    let table = d.join("ext");
    copy_dir(
        &repo().join("testdata/delta/table-without-dv-small"),
        &table,
    )
    .map_err(|e| e.to_string())?;
    let create = format!(
        "CREATE EXTERNAL TABLE ext STORED AS DELTA LOCATION '{}'",
        table.display()
    );
    ok(&augur_in(d, &["db", "-c", &create], None))?;
    let moved = d.join("moved");
    std::fs::rename(&table, &moved).map_err(|e| e.to_string())?;
    let (listed, _) = csv(d, &["db", "-c", "SHOW TABLES"])?;
    check(listed.contains("ext"), || {
        format!("SHOW TABLES lost it: {listed}")
    })?;
    let out = augur_in(d, &["db", "-c", "SELECT count(*) FROM ext"], None);
    let text = stderr(&out);
    check(
        !out.status.success()
            && text.contains("could not be opened when the database opened")
            && text.contains("does not exist"),
        || format!("query of an unreachable table: {text}"),
    )?;
    std::fs::rename(&moved, &table).map_err(|e| e.to_string())?;
    let (n, _) = csv(d, &["db", "-c", "SELECT count(*) AS n FROM ext"])?;
    check(n == "n\n10\n", || format!("after the files came back: {n}"))?;
    Ok(())
}

/// A table whose protocol needs a writer feature Augur cannot write is read but refused for
/// writes, naming the feature, before any file is written; one needing an unknown reader
/// feature is refused for reads, naming it.
fn protocol_features() -> R {
    let dir = tempdir();
    let d = dir.path();
    let table = d.join("ext");
    let create = format!(
        "CREATE EXTERNAL TABLE x (id BIGINT) STORED AS DELTA LOCATION '{}'",
        table.display()
    );
    ok(&augur_in(
        d,
        &["db", "-c", &create, "-c", "INSERT INTO x VALUES (1), (2)"],
        None,
    ))?;
    let log = table.join("_delta_log");
    let commits = |log: &std::path::Path| -> Result<usize, String> {
        Ok(std::fs::read_dir(log)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count())
    };
    let next = commits(&log)?;
    // Another engine turned on identity columns, which delta-rs does not write.
    std::fs::write(
        log.join(format!("{next:020}.json")),
        r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["identityColumns"]}}"#,
    )
    .map_err(|e| e.to_string())?;
    let (n, _) = csv(d, &["db", "-c", "SELECT count(*) AS n FROM x"])?;
    check(n == "n\n2\n", || format!("read with a writer feature: {n}"))?;
    let files_before = std::fs::read_dir(&table)
        .map_err(|e| e.to_string())?
        .count();
    for sql in [
        "INSERT INTO x VALUES (3)",
        "DELETE FROM x WHERE id = 1",
        "UPDATE x SET id = 5",
        "OPTIMIZE x",
    ] {
        let out = augur_in(d, &["db", "-c", sql], None);
        let text = stderr(&out);
        check(
            !out.status.success()
                && text.contains("identityColumns")
                && text.contains("read-only")
                && !text.contains("panicked"),
            || format!("{sql} on a table needing identityColumns: {text}"),
        )?;
    }
    check(commits(&log)? == next + 1, || {
        "a refused write committed".into()
    })?;
    let files_after = std::fs::read_dir(&table)
        .map_err(|e| e.to_string())?
        .count();
    check(files_after == files_before, || {
        format!("a refused write left files: {files_before} → {files_after}")
    })?;
    let (n, _) = csv(d, &["db", "-c", "SELECT count(*) AS n FROM x"])?;
    check(n == "n\n2\n", || format!("after refused writes: {n}"))?;
    // A reader feature from the future: no answer rather than a wrong one.
    std::fs::write(
        log.join(format!("{:020}.json", next + 1)),
        r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["futureFeature"],"writerFeatures":["futureFeature"]}}"#,
    )
    .map_err(|e| e.to_string())?;
    let scan = format!("SELECT count(*) FROM delta_scan('{}')", table.display());
    let out = augur_in(d, &["-c", &scan], None);
    let text = stderr(&out);
    check(
        !out.status.success() && text.contains("futureFeature") && !text.contains("panicked"),
        || format!("read of a table needing futureFeature: {text}"),
    )?;
    Ok(())
}
