//! What clients do over the wire: queries and types in both protocols, training and
//! prediction with the same rows as in-process, psql's meta-commands and `\copy`, SQLSTATEs,
//! cancel and timeouts, limits, concurrent clients, a client killed mid-query, psycopg.

use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use tokio_postgres::types::Type;

use super::{R, Server, describe, sqlstate, testdata, text_rows, wait_until};
use crate::common::{augur_in, check, ok, repo, runtime, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "server::queries_types_and_parameters",
            queries_types_and_parameters,
        ),
        Trial::test("server::training_over_the_wire", training_over_the_wire),
        Trial::test(
            "server::psql_meta_commands_and_copy",
            psql_meta_commands_and_copy,
        ),
        Trial::test("server::errors_carry_sqlstates", errors_carry_sqlstates),
        Trial::test(
            "server::cancel_and_statement_timeout",
            cancel_and_statement_timeout,
        ),
        Trial::test("server::connection_limit", connection_limit),
        Trial::test("server::out_of_memory_is_53200", out_of_memory),
        Trial::test("server::concurrent_clients", concurrent_clients),
        Trial::test("server::client_killed_mid_query", client_killed_mid_query),
        Trial::test("server::psycopg", || {
            python_client("psycopg_check.py", "psycopg")
        }),
        Trial::test("server::asyncpg", || {
            python_client("asyncpg_check.py", "asyncpg")
        }),
        Trial::test("server::python_stack", || {
            python_client("python_stack_check.py", "python stack")
        }),
        Trial::test("server::copy_and_transactions", || {
            python_client("copy_check.py", "copy")
        }),
        Trial::test("server::bi_tool_queries", bi_tool_queries),
        Trial::test("server::jdbc", jdbc),
    ]
}

const SETUP: &str = "CREATE TABLE t AS SELECT * FROM (VALUES \
    (1, 'one', 1.5, true, DATE '2024-01-31'), (2, 'two', -2.25, false, DATE '2024-02-29'), \
    (3, NULL, NULL, NULL, NULL)) v(id, name, x, flag, day)";

fn queries_types_and_parameters() -> R {
    let dir = tempdir();
    let server = Server::start(
        dir.path(),
        &[dir.path().join("db").to_str().unwrap_or("db")],
    )?;
    runtime().block_on(async {
        let mut client = server.connect().await?;
        // Several statements in one simple query, each with its own tag and result.
        let messages = client
            .simple_query(&format!("{SETUP}; INSERT INTO t VALUES (4, 'four', 4.0, true, NULL); SELECT count(*) FROM t"))
            .await
            .map_err(|e| describe(&e))?;
        let tags: Vec<u64> = messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .collect();
        check(tags == vec![0, 1, 1], || format!("command tags (rows): {tags:?}"))?;
        // Extended protocol: typed parameters, binary results of every column type.
        let rows = client
            .query(
                "SELECT id, name, x, flag, day FROM t WHERE id >= $1 AND (name = $2 OR $2 IS NULL OR id > 1) ORDER BY id",
                &[&2i64, &"two"],
            )
            .await
            .map_err(|e| describe(&e))?;
        check(rows.len() == 3, || format!("{} rows for id >= 2", rows.len()))?;
        let id: i64 = rows[0].get(0);
        let name: Option<String> = rows[0].get(1);
        let x: Option<f64> = rows[0].get(2);
        let flag: Option<bool> = rows[0].get(3);
        let day: Option<String> = client
            .query_one("SELECT CAST(day AS VARCHAR) FROM t WHERE id = $1", &[&id])
            .await
            .map_err(|e| describe(&e))?
            .get(0);
        check(
            (id, name.as_deref(), x, flag, day.as_deref())
                == (2, Some("two"), Some(-2.25), Some(false), Some("2024-02-29")),
            || format!("row 2 came back as {id} {name:?} {x:?} {flag:?} {day:?}"),
        )?;
        let null_name: Option<String> = rows[1].get(1);
        check(null_name.is_none(), || "NULL text arrived as a value".into())?;
        // One prepared statement, run with different values; `$1::type` casts.
        let statement = client
            .prepare("SELECT $1::int + 1, upper($2::text)")
            .await
            .map_err(|e| describe(&e))?;
        for n in [1i32, 41] {
            let row = client
                .query_one(&statement, &[&n, &"abc"])
                .await
                .map_err(|e| describe(&e))?;
            // DataFusion widens int + literal to bigint.
            let sum: i64 = row.try_get(0).map_err(|e| format!("sum: {e}"))?;
            let text: String = row.try_get(1).map_err(|e| format!("text: {e}"))?;
            check(sum == i64::from(n) + 1 && text == "ABC", || format!("{n}: got {sum} {text}"))?;
        }
        // execute() reports the rows an INSERT wrote.
        let insert = client
            .prepare("INSERT INTO t (id, name) VALUES ($1, $2)")
            .await
            .map_err(|e| describe(&e))?;
        check(insert.params() == [Type::INT8, Type::TEXT], || {
            format!("INSERT parameter types {:?}", insert.params())
        })?;
        let written = client
            .execute(&insert, &[&5i64, &"five"])
            .await
            .map_err(|e| format!("INSERT with parameters: {e}"))?;
        check(written == 1, || format!("INSERT reported {written} rows"))?;
        // A portal read in pieces (max_rows), as cursors do.
        let transaction = client.transaction().await.map_err(|e| describe(&e))?;
        let portal = transaction
            .bind("SELECT id FROM t ORDER BY id", &[])
            .await
            .map_err(|e| describe(&e))?;
        let first = transaction.query_portal(&portal, 2).await.map_err(|e| describe(&e))?;
        let rest = transaction.query_portal(&portal, 10).await.map_err(|e| describe(&e))?;
        check(first.len() == 2 && rest.len() == 3, || {
            format!("portal pieces: {} then {}", first.len(), rest.len())
        })?;
        transaction.commit().await.map_err(|e| describe(&e))?;
        // Session settings: SET/SHOW/RESET, and ParameterStatus-reported values.
        let shown = text_rows(&client, "SET DateStyle = 'ISO, DMY'; SHOW DateStyle; RESET ALL; SHOW DateStyle").await?;
        check(shown == ["ISO, DMY", "ISO, MDY"], || format!("SHOW DateStyle: {shown:?}"))?;
        let version = text_rows(&client, "SHOW server_version").await?;
        check(version.first().is_some_and(|v| v.starts_with("16.")), || {
            format!("server_version {version:?}")
        })?;
        // The same rows as the embedded engine gives for the same statement.
        let wire = text_rows(&client, "SELECT id, name FROM t ORDER BY id").await?;
        check(wire.len() == 5 && wire[2] == "3|NULL", || format!("{wire:?}"))?;
        Ok::<_, String>(())
    })?;
    Ok(())
}

fn training_over_the_wire() -> R {
    let dir = tempdir();
    std::fs::copy(
        testdata().join("transactions.csv"),
        dir.path().join("tx.csv"),
    )
    .map_err(|e| e.to_string())?;
    let train = "TRAIN MODEL risk USING logistic_regression PREDICT risk_score \
        WITH (reg_param = 0.01, elastic_net_param = 0.5) \
        AS SELECT age, balance, merchant_category, risk_score FROM 'tx.csv'";
    let score = "SELECT customer_id, prediction, round(probability, 9) FROM predict(risk, \
        (SELECT * FROM 'tx.csv' ORDER BY customer_id, transaction_date LIMIT 20)) \
        ORDER BY customer_id, probability";
    // In-process (a script), in its own database.
    let local = augur_in(
        dir.path(),
        &["local", "--format", "csv", "-q", "-c", train, "-c", score],
        None,
    );
    let local = ok(&local)?;
    // Numbers compared as numbers: the wire prints 0.0 as `0`, CSV as `0.0`.
    let numbers = |line: &str| -> Vec<f64> {
        line.split(['|', ','])
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    };
    let expected: Vec<Vec<f64>> = local
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(numbers)
        .filter(|row| row.len() == 3)
        .collect();
    let server = Server::start(dir.path(), &["remote", "--allow-dir", "."])?;
    let got = runtime().block_on(async {
        let client = server.connect().await?;
        let summary = text_rows(&client, train).await?;
        check(
            summary.len() == 1 && summary[0].starts_with("risk|1|logistic_regression"),
            || format!("training summary {summary:?}"),
        )?;
        // One applicant at a time through a prepared statement (its plan kept, the values
        // put in at each Execute) scores as the same values written as literals.
        let prepared = client
            .prepare("SELECT predict_proba('risk', $1::bigint, $2::double precision, $3::text)")
            .await
            .map_err(|e| describe(&e))?;
        for (age, balance, category) in [
            (31i64, 2371.69f64, "electronics"),
            (37, 0.0, "utilities"),
            (31, 2371.69, "electronics"),
            (64, 91234.5, "never seen"),
        ] {
            let row = client
                .query_one(&prepared, &[&age, &balance, &category])
                .await
                .map_err(|e| describe(&e))?;
            let bound: f64 = row.try_get(0).map_err(|e| format!("score: {e}"))?;
            let sql = format!(
                "SELECT predict_proba('risk', CAST({age} AS BIGINT), CAST({balance:?} AS DOUBLE), \
                 '{category}')"
            );
            let literal = text_rows(&client, &sql).await?;
            let literal: f64 = literal[0]
                .parse()
                .map_err(|e| format!("{literal:?}: {e}"))?;
            check(
                (bound - literal).abs() <= 1e-12 * literal.abs().max(1.0),
                || format!("{age} {balance} {category}: bound {bound}, literal {literal}"),
            )?;
        }
        text_rows(&client, score).await
    })?;
    let got: Vec<Vec<f64>> = got.iter().map(|l| numbers(l)).collect();
    check(expected.len() == 20 && got == expected, || {
        format!("predictions differ:\nwire  {got:?}\nlocal {expected:?}")
    })?;
    Ok(())
}

fn psql_meta_commands_and_copy() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    let (ok_setup, _, err) = server.psql(
        dir.path(),
        &["-c", SETUP, "-c", "CREATE VIEW v AS SELECT id, name FROM t"],
    );
    check(ok_setup, || format!("setup failed: {err}"))?;
    let (ok_d, out, err) = server.psql(
        dir.path(),
        &["-c", "\\dt", "-c", "\\d t", "-c", "\\dv", "-c", "\\l"],
    );
    check(ok_d, || format!("\\d commands failed: {err}"))?;
    for needle in [
        "public | t",
        "table",
        "name",
        "text",
        "double precision",
        "boolean",
        "date",
        "public | v",
        "augur",
    ] {
        check(out.contains(needle), || {
            format!("'{needle}' missing from:\n{out}")
        })?;
    }
    // \df lists Augur's functions (from augur-udfs) and the users' own.
    let (ok_df, out, err) = server.psql(
        dir.path(),
        &[
            "-c",
            "CREATE FUNCTION amount_k(x DOUBLE) RETURNS DOUBLE RETURN x / 1000",
            "-c",
            "\\df",
        ],
    );
    check(ok_df, || format!("\\df failed: {err}"))?;
    for needle in ["public | auc", "public | woe", "public | amount_k"] {
        check(out.contains(needle), || {
            format!("'{needle}' missing from \\df:\n{out}")
        })?;
    }
    check(!out.contains("| sqrt"), || {
        format!("DataFusion's own functions in \\df:\n{out}")
    })?;
    // \copy out: psql writes the client-side file from COPY … TO STDOUT.
    let out_file = dir.path().join("out.csv");
    let copy = format!(
        "\\copy (SELECT id, name FROM t ORDER BY id) to '{}' csv header",
        out_file.display()
    );
    let (ok_copy, printed, err) = server.psql(dir.path(), &["-c", &copy]);
    check(ok_copy && printed.contains("COPY 3"), || {
        format!("\\copy: {printed} {err}")
    })?;
    let written = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
    check(written == "id,name\n1,one\n2,two\n3,\n", || {
        format!("\\copy wrote {written:?}")
    })?;
    // \copy in: psql streams the client-side file through COPY … FROM STDIN, into a
    // stored table that survives a restart.
    let in_file = dir.path().join("in.csv");
    std::fs::write(&in_file, "id,name\n10,ten\n11,\"el,even\"\n12,\n")
        .map_err(|e| e.to_string())?;
    let copy_in = format!(
        "\\copy t (id, name) from '{}' with (format csv, header)",
        in_file.display()
    );
    let (ok_in, printed, err) = server.psql(dir.path(), &["-c", &copy_in]);
    check(ok_in && printed.contains("COPY 3"), || {
        format!("\\copy from: {printed} {err}")
    })?;
    let (_, printed, err) = server.psql(
        dir.path(),
        &[
            "-A",
            "-t",
            "-c",
            "SELECT id, name FROM t WHERE id >= 10 ORDER BY id",
        ],
    );
    check(printed == "10|ten\n11|el,even\n12|\n", || {
        format!("rows loaded by \\copy: {printed:?} {err}")
    })?;
    // A bad row: psql reports the line, nothing is stored.
    std::fs::write(&in_file, "13,ok\nfourteen,bad\n").map_err(|e| e.to_string())?;
    let bad = format!("\\copy t (id, name) from '{}' csv", in_file.display());
    let (ok_bad, _, err) = server.psql(dir.path(), &["-c", &bad]);
    check(
        !ok_bad && err.contains("line 2") && err.contains("fourteen"),
        || format!("bad \\copy: {err}"),
    )?;
    let (_, printed, _) = server.psql(dir.path(), &["-A", "-t", "-c", "SELECT count(*) FROM t"]);
    check(printed.trim() == "6", || {
        format!("rows after the bad \\copy: {printed}")
    })?;
    Ok(())
}

fn errors_carry_sqlstates() -> R {
    let dir = tempdir();
    let mut server = Server::start(dir.path(), &[])?;
    let deep = format!("SELECT {}", vec!["1"; 20_000].join(" + "));
    let huge = format!("SELECT '{}'", "x".repeat(10 << 20));
    runtime().block_on(async {
        let client = server.connect().await?;
        client
            .batch_execute(SETUP)
            .await
            .map_err(|e| describe(&e))?;
        let cases: Vec<(&str, &str)> = vec![
            ("SELEC 1", "42601"),
            ("SELECT * FROM no_such_table", "42P01"),
            ("SELECT no_such_column FROM t", "42703"),
            ("SELECT no_such_function(1)", "42883"),
            ("SELECT CAST('abc' AS INT)", "22P02"),
            ("SET statement_timeout = 'soon'", "22023"),
            ("CREATE TABLE t AS SELECT 1", "42P07"),
            (deep.as_str(), "54001"),
            (huge.as_str(), "54001"),
            ("COPY no_such_table FROM STDIN", "42P01"),
            ("COPY t (id, no_such_column) FROM STDIN", "42703"),
            ("COPY t FROM STDIN (FORMAT parquet)", "22023"),
        ];
        for (sql, code) in cases {
            let simple = sqlstate(client.simple_query(sql).await);
            let extended = sqlstate(client.query(sql, &[]).await);
            let shown: String = sql.chars().take(40).collect();
            check(simple == code && extended == code, || {
                format!("{shown}: simple {simple}, extended {extended}, want {code}")
            })?;
        }
        // The connection is still good after every error.
        let rows = text_rows(&client, "SELECT count(*) FROM t").await?;
        check(rows == ["3"], || format!("after errors: {rows:?}"))?;
        Ok::<_, String>(())
    })?;
    check(server.alive(), || "the server died".into())?;
    Ok(())
}

/// A statement that runs for minutes unless stopped.
const FOREVER: &str = "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3";

/// Training that runs for many seconds: 20M rows to read, then many iterations and no
/// tolerance to stop early. (On 2M rows whose label the feature cannot predict, the optimiser
/// stops at its first step: the whole statement took about as long as the 1 s the test waits
/// before cancelling, and sometimes finished first.)
const SLOW_TRAINING: &str = "TRAIN MODEL slow USING logistic_regression PREDICT y \
    WITH (max_iter = 1000000, tol = 0) \
    AS SELECT value % 97 AS x, value % 2 AS y FROM generate_series(1, 20000000)";

fn cancel_and_statement_timeout() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &[])?;
    runtime().block_on(async {
        let client = server.connect().await?;
        let token = client.cancel_token();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        });
        let code = sqlstate(client.simple_query(FOREVER).await);
        let took = started.elapsed();
        canceller
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| describe(&e))?;
        check(code == "57014" && took < Duration::from_secs(5), || {
            format!("cancel: {code} after {took:?}")
        })?;
        // Training stops too, and leaves no model behind.
        let token = client.cancel_token();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        });
        let code = sqlstate(client.simple_query(SLOW_TRAINING).await);
        let took = started.elapsed();
        canceller
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| describe(&e))?;
        check(code == "57014" && took < Duration::from_secs(6), || {
            format!("cancelled training: {code} after {took:?}")
        })?;
        let models = text_rows(&client, "SHOW MODELS").await?;
        check(models.is_empty(), || {
            format!("a cancelled training left {models:?}")
        })?;
        // statement_timeout bounds execution (not only planning), in both protocols.
        client
            .batch_execute("SET statement_timeout = '300ms'")
            .await
            .map_err(|e| describe(&e))?;
        for extended in [false, true] {
            let started = Instant::now();
            let code = if extended {
                sqlstate(client.query(FOREVER, &[]).await)
            } else {
                sqlstate(client.simple_query(FOREVER).await)
            };
            check(
                code == "57014" && started.elapsed() < Duration::from_secs(5),
                || {
                    format!(
                        "timeout (extended: {extended}): {code} after {:?}",
                        started.elapsed()
                    )
                },
            )?;
        }
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .map_err(|e| describe(&e))?;
        let rows = text_rows(&client, "SELECT 1").await?;
        check(rows == ["1"], || format!("after timeouts: {rows:?}"))?;
        Ok::<_, String>(())
    })?;
    Ok(())
}

fn connection_limit() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["--max-connections", "2"])?;
    runtime().block_on(async {
        let first = server.connect().await?;
        let second = server.connect().await?;
        let third = tokio_postgres::connect(&server.url("augur"), tokio_postgres::NoTls).await;
        let code = sqlstate(third);
        check(code == "53300", || format!("third connection: {code}"))?;
        // Closing one frees its place.
        drop(second);
        let mut fourth = Err(String::new());
        for _ in 0..50 {
            fourth = server.connect().await;
            if fourth.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let fourth = fourth?;
        let rows = text_rows(&fourth, "SELECT 2").await?;
        let first_rows = text_rows(&first, "SELECT 1").await?;
        check(rows == ["2"] && first_rows == ["1"], || {
            format!("{rows:?} {first_rows:?}")
        })?;
        Ok::<_, String>(())
    })?;
    Ok(())
}

fn out_of_memory() -> R {
    let dir = tempdir();
    let mut server = Server::start(dir.path(), &["--memory-limit", "64MB"])?;
    runtime().block_on(async {
        let client = server.connect().await?;
        // An aggregate that cannot spill: one array of 30M values.
        let code = sqlstate(
            client
                .simple_query("SELECT array_agg(value) FROM generate_series(1, 30000000)")
                .await,
        );
        check(code == "53200", || format!("over the memory limit: {code}"))?;
        let rows = text_rows(&client, "SELECT 1").await?;
        check(rows == ["1"], || {
            format!("after running out of memory: {rows:?}")
        })?;
        Ok::<_, String>(())
    })?;
    check(server.alive(), || "the server died".into())?;
    Ok(())
}

fn concurrent_clients() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    runtime().block_on(async {
        let setup = server.connect().await?;
        setup
            .batch_execute("CREATE TABLE nums AS SELECT value AS n FROM generate_series(1, 100000)")
            .await
            .map_err(|e| describe(&e))?;
        let mut tasks = vec![];
        for worker in 0..8i64 {
            let client = server.connect().await?;
            tasks.push(tokio::spawn(async move {
                for round in 0..5i64 {
                    let k = worker * 10 + round + 1;
                    let row = client
                        .query_one("SELECT sum(n) FROM nums WHERE n % $1 = 0", &[&k])
                        .await
                        .map_err(|e| describe(&e))?;
                    let sum: Option<i64> = row.get(0);
                    let m = 100000 / k;
                    let want = k * m * (m + 1) / 2;
                    if sum != Some(want) {
                        return Err(format!(
                            "worker {worker}: sum for {k} = {sum:?}, want {want}"
                        ));
                    }
                }
                Ok::<_, String>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok::<_, String>(())
    })?;
    Ok(())
}

fn client_killed_mid_query() -> R {
    let dir = tempdir();
    let mut server = Server::start(dir.path(), &["--max-connections", "1"])?;
    let mut psql = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-d",
            "augur",
            "-X",
        ])
        .args(["-c", FOREVER])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("psql: {e}"))?;
    std::thread::sleep(Duration::from_millis(800));
    psql.kill().map_err(|e| e.to_string())?;
    let _ = psql.wait();
    // With one connection allowed, a new client gets in only once the killed one's
    // connection, session and running statement are gone.
    let rt = runtime();
    wait_until(
        "a new client after the kill",
        Duration::from_secs(10),
        || {
            rt.block_on(async {
                match server.connect().await {
                    Ok(client) => text_rows(&client, "SELECT 42")
                        .await
                        .is_ok_and(|r| r == ["42"]),
                    Err(_) => false,
                }
            })
        },
    )?;
    check(server.alive(), || "the server died".into())?;
    Ok(())
}

/// A Python client's checks (tests/server/SCRIPT) against a fresh server.
fn python_client(script: &str, name: &str) -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    let out = Command::new("python3")
        .arg(repo().join("tests/server").join(script))
        .arg(server.port.to_string())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let printed = String::from_utf8_lossy(&out.stdout);
    check(
        out.status.success() && printed.contains(&format!("{name}: all checks passed")),
        || {
            format!(
                "{name} checks failed:\n{printed}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    )?;
    Ok(())
}

/// pgjdbc, the driver under DBeaver, Metabase and most JVM tools (Debian's package).
fn jdbc() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    let out = Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(repo().join("tests/server/JdbcSmoke.java"))
        .arg(server.port.to_string())
        .output()
        .map_err(|e| format!("java: {e}"))?;
    let printed = String::from_utf8_lossy(&out.stdout);
    check(
        out.status.success() && printed.contains("jdbc: all checks passed"),
        || format!("{printed}\n{}", String::from_utf8_lossy(&out.stderr)),
    )?;
    Ok(())
}

/// The catalog queries DBeaver, Metabase, Grafana and pgcli send (tests/server/replay/),
/// against a database with a table and a view in it: each must run, except those marked
/// `-- known failure:`, which must still fail (so the mark goes when they are fixed).
fn bi_tool_queries() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    let replay = repo().join("tests/server/replay");
    let mut files: Vec<_> = std::fs::read_dir(&replay)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    check(files.len() >= 4, || format!("replay files: {files:?}"))?;
    runtime().block_on(async {
        let client = server.connect().await?;
        client
            .batch_execute(&format!("{SETUP}; CREATE VIEW v AS SELECT id, name FROM t"))
            .await
            .map_err(|e| describe(&e))?;
        let mut failures = vec![];
        let mut ran = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
            for statement in augur::parser::split_statements(&text) {
                ran += 1;
                let known = statement.text.contains("-- known failure:");
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                match client.simple_query(&statement.text).await {
                    Err(e) if !known => {
                        failures.push(format!("{name}:{}: {}", statement.line, describe(&e)))
                    }
                    Ok(_) if known => failures.push(format!(
                        "{name}:{}: marked as a known failure but runs now",
                        statement.line
                    )),
                    _ => {}
                }
            }
        }
        check(failures.is_empty() && ran >= 40, || {
            format!(
                "{} of {ran} queries failed:\n{}",
                failures.len(),
                failures.join("\n")
            )
        })
    })?;
    Ok(())
}
