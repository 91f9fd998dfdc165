//! Bad input through the binary: each gives a clear error, the process does not crash,
//! and stored data stays intact.

use std::path::Path;
use std::process::Command;

use libtest_mimic::Trial;

use crate::common::{augur_in, check, fails, ok, tempdir};

pub fn trials() -> Vec<Trial> {
    let can_mount = can_mount();
    vec![
        Trial::test("errors::unknown_names_suggest", unknown_names_suggest),
        Trial::test("errors::bad_csv_files", bad_csv_files),
        Trial::test("errors::bad_parquet_files", bad_parquet_files),
        Trial::test("errors::huge_expression", huge_expression),
        Trial::test(
            "errors::insert_wrong_types_keeps_data",
            insert_wrong_types_keeps_data,
        ),
        Trial::test("errors::second_writer_is_refused", second_writer_is_refused),
        Trial::test("errors::not_a_database_directory", not_a_database_directory),
        Trial::test("errors::read_only_directory", read_only_directory)
            .with_ignored_flag(!can_mount),
        Trial::test("errors::full_disk", full_disk).with_ignored_flag(!can_mount),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn write(path: &Path, text: &[u8]) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| e.to_string())
}

fn unknown_names_suggest() -> R {
    let dir = tempdir();
    let out = augur_in(
        dir.path(),
        &[
            "-c",
            "CREATE TABLE transactions AS SELECT 1 AS amount; SELECT * FROM transaction",
        ],
        None,
    );
    fails(&out, 1, &["transaction", "did you mean 'transactions'?"])?;
    let out = augur_in(
        dir.path(),
        &["-c", "SELECT amout FROM (SELECT 1 AS amount)"],
        None,
    );
    fails(&out, 1, &["amout", "amount"])?;
    let out = augur_in(dir.path(), &["-c", "SELECT * FROM 'missing.csv'"], None);
    fails(&out, 1, &["missing.csv", "check the path"])?;
    Ok(())
}

fn bad_csv_files() -> R {
    let dir = tempdir();
    let d = dir.path();
    write(&d.join("ragged.csv"), b"a,b,c\n1,2,3\n4,5\n6,7,8\n")?;
    write(
        &d.join("quote.csv"),
        b"id,note\n1,fine\n2,\"never closed\n3,lost\n4,lost\n",
    )?;
    let out = augur_in(d, &["-c", "SELECT * FROM 'ragged.csv'"], None);
    fails(
        &out,
        1,
        &[
            "ragged.csv:3:3: row has 2 fields but 3 were expected",
            "truncated_rows",
        ],
    )?;
    let out = augur_in(
        d,
        &["-c", "SELECT count(*) FROM read_csv('quote.csv')"],
        None,
    );
    fails(&out, 1, &["quote.csv:3:2: unterminated quote"])?;
    let out = augur_in(
        d,
        &[
            "-c",
            "CREATE EXTERNAL TABLE q (id INT, note VARCHAR) STORED AS CSV LOCATION 'quote.csv' OPTIONS ('format.has_header' 'true'); SELECT * FROM q",
        ],
        None,
    );
    fails(&out, 1, &["quote.csv:3:2: unterminated quote"])?;
    // The accepted escape hatch for short rows works.
    let out = ok(&augur_in(
        d,
        &[
            "-c",
            "SELECT count(*) AS n, count(c) AS c FROM read_csv('ragged.csv', 'truncated_rows', true)",
        ],
        None,
    ))?;
    check(out == "n,c\n3,2\n", || format!("truncated rows {out:?}"))?;
    // A value that does not fit the declared type names the fix.
    write(&d.join("typed.csv"), b"id,amount\n1,10\n2,abc\n")?;
    let out = augur_in(
        d,
        &[
            "-c",
            "CREATE EXTERNAL TABLE t (id INT, amount INT) STORED AS CSV LOCATION 'typed.csv' OPTIONS ('format.has_header' 'true'); SELECT * FROM t",
        ],
        None,
    );
    fails(&out, 1, &["abc", "hint:"])?;
    Ok(())
}

fn bad_parquet_files() -> R {
    let dir = tempdir();
    let d = dir.path();
    ok(&augur_in(
        d,
        &[
            "-c",
            "COPY (SELECT * FROM generate_series(1, 1000) AS t(v)) TO 'good.parquet'",
        ],
        None,
    ))?;
    let good = std::fs::read(d.join("good.parquet")).map_err(|e| e.to_string())?;
    write(&d.join("empty.parquet"), b"")?;
    write(&d.join("truncated.parquet"), &good[..good.len() / 2])?;
    let mut absurd = good.clone();
    let n = absurd.len();
    absurd[n - 8..n - 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    write(&d.join("absurd.parquet"), &absurd)?;
    let mut garbage = good.clone();
    for b in garbage[4..n / 2].iter_mut() {
        *b = 0xAB;
    }
    let footer = u32::from_le_bytes([good[n - 8], good[n - 7], good[n - 6], good[n - 5]]) as usize;
    for b in garbage[n - 8 - footer..n - 8 - footer / 2].iter_mut() {
        *b = 0xFF;
    }
    write(&d.join("garbage.parquet"), &garbage)?;
    let out = augur_in(d, &["-c", "SELECT count(*) FROM 'empty.parquet'"], None);
    fails(&out, 1, &["empty.parquet", "empty"])?;
    let out = augur_in(
        d,
        &[
            "-c",
            "SELECT count(*) FROM read_parquet('truncated.parquet')",
        ],
        None,
    );
    fails(&out, 1, &["truncated.parquet"])?;
    let out = augur_in(d, &["-c", "SELECT count(*) FROM 'absurd.parquet'"], None);
    fails(&out, 1, &["absurd.parquet", "corrupt"])?;
    let out = augur_in(d, &["-c", "SELECT sum(v) FROM 'garbage.parquet'"], None);
    let code = out.status.code();
    check(code == Some(1) || code == Some(4), || {
        format!(
            "garbage parquet: exit {code:?}: {}",
            crate::common::stderr(&out)
        )
    })?;
    Ok(())
}

fn huge_expression() -> R {
    let dir = tempdir();
    // Sent on stdin: an argument this long exceeds the OS limit for one argument.
    let terms = vec!["1"; 20_000].join("+");
    let out = augur_in(dir.path(), &[], Some(&format!("SELECT {terms} AS total;")));
    fails(&out, 1, &["too complex", "nested more than 1000"])?;
    let terms = vec!["x = 1"; 20_000].join(" OR ");
    let out = augur_in(
        dir.path(),
        &[],
        Some(&format!(
            "SELECT count(*) AS n FROM (SELECT 1 AS x) WHERE {terms};"
        )),
    );
    fails(&out, 1, &["too complex", "IN ("])?;
    // Long but reasonable expressions still run.
    let terms = vec!["1"; 300].join("+");
    let printed = ok(&augur_in(
        dir.path(),
        &[],
        Some(&format!("SELECT {terms} AS total;")),
    ))?;
    check(printed == "total\n300\n", || {
        format!("300 terms printed {printed:?}")
    })?;
    Ok(())
}

fn insert_wrong_types_keeps_data() -> R {
    let dir = tempdir();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap_or_default();
    ok(&augur_in(
        dir.path(),
        &[
            db,
            "-c",
            "CREATE TABLE t (id INT NOT NULL, amount DOUBLE); INSERT INTO t VALUES (1, 2.5)",
        ],
        None,
    ))?;
    let out = augur_in(
        dir.path(),
        &[db, "-c", "INSERT INTO t VALUES ('not a number', 3.0)"],
        None,
    );
    fails(&out, 1, &["not a number"])?;
    let out = augur_in(
        dir.path(),
        &[db, "-c", "INSERT INTO t VALUES (NULL, 3.0)"],
        None,
    );
    fails(&out, 1, &["id"])?;
    let rows = ok(&augur_in(dir.path(), &[db, "-c", "SELECT * FROM t"], None))?;
    check(rows == "id,amount\n1,2.5\n", || {
        format!("after bad inserts {rows:?}")
    })?;
    Ok(())
}

fn second_writer_is_refused() -> R {
    use std::io::Write;
    let dir = tempdir();
    let db = dir.path().join("db");
    // The first process holds the database while it waits for more stdin.
    let mut first = Command::new(crate::common::bin())
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut waited = 0;
    while !db.join("catalog.json").exists() && waited < 200 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    let out = augur_in(
        dir.path(),
        &[db.to_str().unwrap_or_default(), "-c", "SELECT 1"],
        None,
    );
    let result = fails(&out, 3, &["in use by another Augur process"]);
    if let Some(mut stdin) = first.stdin.take() {
        let _ = stdin.write_all(b"SELECT 1;\n");
    }
    let _ = first.wait();
    result?;
    ok(&augur_in(
        dir.path(),
        &[db.to_str().unwrap_or_default(), "-c", "SELECT 1"],
        None,
    ))?;
    Ok(())
}

fn not_a_database_directory() -> R {
    let dir = tempdir();
    write(&dir.path().join("notes.txt"), b"hello")?;
    let out = augur_in(
        dir.path(),
        &[dir.path().to_str().unwrap_or_default(), "-c", "SELECT 1"],
        None,
    );
    fails(&out, 3, &["not an Augur database"])?;
    check(dir.path().join("notes.txt").exists(), || {
        "user file removed".into()
    })?;
    Ok(())
}

/// tmpfs mounts need root (CI runs as root); elsewhere these trials are ignored.
fn can_mount() -> bool {
    let dir = tempdir();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if mounted {
        let _ = Command::new("umount").arg(dir.path()).status();
    }
    mounted
}

struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Result<Mount, String> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .map_err(|e| e.to_string())?;
        check(status.success(), || "mount failed".into())?;
        Ok(Mount(path.to_path_buf()))
    }

    fn read_only(&self) -> Result<(), String> {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .map_err(|e| e.to_string())?;
        check(status.success(), || "remount ro failed".into())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn read_only_directory() -> R {
    let dir = tempdir();
    let mount = Mount::tmpfs(dir.path(), "20m")?;
    let db = dir.path().join("db");
    let db = db.to_str().unwrap_or_default();
    ok(&augur_in(
        dir.path(),
        &[db, "-c", "CREATE TABLE t AS SELECT 1 AS v"],
        None,
    ))?;
    mount.read_only()?;
    let out = augur_in(dir.path(), &[db, "-c", "SELECT * FROM t"], None);
    fails(&out, 3, &["db", "Read-only file system"])?;
    let fresh = dir.path().join("fresh");
    let out = augur_in(
        dir.path(),
        &[fresh.to_str().unwrap_or_default(), "-c", "SELECT 1"],
        None,
    );
    fails(&out, 3, &["cannot create database directory"])?;
    Ok(())
}

fn full_disk() -> R {
    let dir = tempdir();
    let _mount = Mount::tmpfs(dir.path(), "2m")?;
    let db = dir.path().join("db");
    let db = db.to_str().unwrap_or_default();
    ok(&augur_in(
        dir.path(),
        &[db, "-c", "CREATE TABLE small AS SELECT 7 AS v"],
        None,
    ))?;
    let big = "CREATE TABLE big AS SELECT v, sha256(CAST(v AS VARCHAR)) AS h, sha256(CAST(v * 7 AS VARCHAR)) AS h2 FROM generate_series(1, 200000) AS t(v)";
    let out = augur_in(dir.path(), &[db, "-c", big], None);
    fails(&out, 3, &["No space left", "disk is full"])?;
    let out = ok(&augur_in(
        dir.path(),
        &[db, "-c", "SELECT v FROM small; SHOW TABLES"],
        None,
    ))?;
    check(out.starts_with("v\n7\n") && !out.contains(",big,"), || {
        format!("after full disk {out:?}")
    })?;
    Ok(())
}
