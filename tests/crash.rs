//! `kill -9` at random moments during CREATE TABLE AS and INSERT: the database always
//! reopens, and every table holds either its old rows or its new rows.

use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;

use crate::common::{Lcg, augur_in, bin, check, ok, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test("crash::kill_during_writes", kill_during_writes)]
}

type R = Result<(), libtest_mimic::Failed>;

const ROWS: u64 = 1_000_000;

fn kill_during_writes() -> R {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("db");
    let dbs = db.to_str().unwrap_or_default().to_string();
    ok(&augur_in(
        d,
        &[&dbs, "-c", "CREATE TABLE t (v BIGINT, pad VARCHAR)"],
        None,
    ))?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    let sql = |round: usize| {
        format!(
            "INSERT INTO t SELECT v, repeat('p', 20) FROM generate_series(1, {ROWS}) AS g(v); \
             CREATE TABLE c{round} AS SELECT v FROM generate_series(1, {ROWS}) AS g(v)"
        )
    };
    // Calibrate: kills land anywhere from start-up to just after the commit.
    let started = std::time::Instant::now();
    ok(&augur_in(d, &[&dbs, "-c", &sql(0)], None))?;
    let window = started.elapsed().as_millis() as u64 + 20;
    let mut expected_inserts = 1u64;
    let mut interrupted = 0;
    for round in 1..16 {
        let sql = sql(round);
        let mut child = Command::new(bin())
            .args([&dbs, "-c", &sql])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(rng.next_ms(window)));
        let _ = child.kill();
        let status = child.wait().map_err(|e| e.to_string())?;
        let n = ok(&augur_in(
            d,
            &[&dbs, "--format", "csv", "-c", "SELECT count(*) AS n FROM t"],
            None,
        ))
        .map_err(|e| format!("round {round}: database did not reopen: {e}"))?;
        let n: u64 = n
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| format!("count {n:?}"))?;
        check(
            n == expected_inserts * ROWS || n == (expected_inserts + 1) * ROWS,
            || {
                format!(
                    "round {round}: t has {n} rows, expected {} or {}",
                    expected_inserts * ROWS,
                    (expected_inserts + 1) * ROWS
                )
            },
        )?;
        if n / ROWS == expected_inserts {
            interrupted += 1;
        }
        expected_inserts = n / ROWS;
        let c = augur_in(
            d,
            &[
                &dbs,
                "--format",
                "csv",
                "-c",
                &format!("SELECT count(*) AS n FROM c{round}"),
            ],
            None,
        );
        if c.status.success() {
            let text = crate::common::stdout(&c);
            check(text == format!("n\n{ROWS}\n"), || {
                format!("round {round}: c{round} partial: {text:?} (status {status})")
            })?;
        }
    }
    eprintln!(
        "crash test: {interrupted} of 15 inserts killed before their commit, window {window} ms"
    );
    Ok(())
}
