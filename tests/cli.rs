//! The binary end to end: `-c`, `-f`, stdin, ordering, exit codes, every `--format`.

use libtest_mimic::Trial;

use crate::common::{augur, augur_in, check, fails, ok, repo, stderr, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "cli::command_prints_csv_when_piped",
            command_prints_csv_when_piped,
        ),
        Trial::test("cli::every_format", every_format),
        Trial::test(
            "cli::commands_and_files_run_in_order",
            commands_and_files_run_in_order,
        ),
        Trial::test("cli::stdin_script", stdin_script),
        Trial::test(
            "cli::script_error_names_file_and_line",
            script_error_names_file_and_line,
        ),
        Trial::test("cli::keep_going_runs_the_rest", keep_going_runs_the_rest),
        Trial::test("cli::help_and_version", help_and_version),
        Trial::test("cli::bad_arguments", bad_arguments),
        Trial::test("cli::copy_to_files", copy_to_files),
        Trial::test(
            "cli::copy_from_stdin_in_scripts",
            copy_from_stdin_in_scripts,
        ),
        Trial::test("cli::credit_risk_demo_runs", credit_risk_demo_runs),
        Trial::test(
            "cli::sparse_key_joins_use_arrays",
            sparse_key_joins_use_arrays,
        ),
        Trial::test(
            "cli::joins_build_one_shared_table",
            joins_build_one_shared_table,
        ),
        Trial::test("cli::joins_filter_probe_rows", joins_filter_probe_rows),
        Trial::test(
            "cli::joins_under_a_group_by_of_their_keys_partition",
            joins_under_a_group_by_of_their_keys_partition,
        ),
        Trial::test(
            "cli::grouped_quantiles_run_in_one_phase",
            grouped_quantiles_run_in_one_phase,
        ),
        Trial::test(
            "cli::rules_off_plans_as_datafusion",
            rules_off_plans_as_datafusion,
        ),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn command_prints_csv_when_piped() -> R {
    let out = ok(&augur(&["-c", "SELECT 1 AS x, 'a,b' AS y"]))?;
    check(out == "x,y\n1,\"a,b\"\n", || format!("got {out:?}"))?;
    Ok(())
}

const TWO_ROWS: &str =
    "SELECT * FROM (VALUES (1, 'one', 1.5), (2, NULL, NULL)) AS t(id, name, score) ORDER BY id";

fn run_sql(format: &str, sql: &str) -> Result<String, String> {
    ok(&augur(&["--format", format, "-c", sql]))
}

fn every_format() -> R {
    let run = |f: &str| run_sql(f, TWO_ROWS);
    let csv = run("csv")?;
    check(csv == "id,name,score\n1,one,1.5\n2,,\n", || {
        format!("csv {csv:?}")
    })?;
    let tsv = run("tsv")?;
    check(tsv == "id\tname\tscore\n1\tone\t1.5\n2\t\t\n", || {
        format!("tsv {tsv:?}")
    })?;
    let json: serde_json::Value = serde_json::from_str(&run("json")?).map_err(|e| e.to_string())?;
    check(
        json[0]["id"] == 1
            && json[0]["name"] == "one"
            && json[1]["score"].is_null()
            && json[1].as_object().map(|o| o.len()) == Some(3)
            && json.as_array().map(|a| a.len()) == Some(2),
        || format!("json {json}"),
    )?;
    let ndjson = run("ndjson")?;
    let lines: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Every key on every line, NULL as null (a missing key reads as a missing column).
    check(
        lines.len() == 2
            && lines[1]["id"] == 2
            && lines[1]
                .as_object()
                .is_some_and(|o| o.len() == 3 && o["name"].is_null()),
        || format!("ndjson {ndjson:?}"),
    )?;
    let md = run("markdown")?;
    check(
        md.starts_with(
            "| id | name | score |\n|---|---|---|\n| 1 | one | 1.5 |\n| 2 | NULL | NULL |",
        ),
        || format!("markdown {md:?}"),
    )?;
    let line = run("line")?;
    check(
        line.contains("   id = 1\n name = one\nscore = 1.5\n\n   id = 2"),
        || format!("line {line:?}"),
    )?;
    let table = run("table")?;
    check(
        table.contains("one") && table.contains("╞") && table.ends_with("2 rows\n"),
        || format!("table {table:?}"),
    )?;
    // Long results show head and tail with a footer.
    let long = run_sql("table", "SELECT v FROM generate_series(1, 100) AS t(v)")?;
    check(
        long.contains(" 1 │")
            && long.contains(" 100 │")
            && !long.contains(" 50 │")
            && long.contains("…")
            && long.ends_with("100 rows (40 shown)\n"),
        || format!("long table {long:?}"),
    )?;
    // Empty results keep their header (csv) or are an empty array (json).
    let empty = ok(&augur(&[
        "--format",
        "json",
        "-c",
        "SELECT 1 AS a WHERE false",
    ]))?;
    check(empty.trim() == "[]", || format!("empty json {empty:?}"))?;
    let empty = ok(&augur(&["-c", "SELECT 1 AS a WHERE false"]))?;
    check(empty == "a\n", || format!("empty csv {empty:?}"))?;
    Ok(())
}

fn commands_and_files_run_in_order() -> R {
    let dir = tempdir();
    std::fs::write(dir.path().join("two.sql"), "SELECT 2 AS n;").map_err(|e| e.to_string())?;
    let out = ok(&augur_in(
        dir.path(),
        &[
            "-c",
            "SELECT 1 AS n",
            "-f",
            "two.sql",
            "-c",
            "SELECT 3 AS n",
        ],
        None,
    ))?;
    check(out == "n\n1\nn\n2\nn\n3\n", || format!("order {out:?}"))?;
    Ok(())
}

fn stdin_script() -> R {
    let dir = tempdir();
    let out = ok(&augur_in(
        dir.path(),
        &[],
        Some("CREATE TABLE t AS SELECT 41 AS v;\nSELECT v + 1 AS answer FROM t;\n"),
    ))?;
    check(out == "answer\n42\n", || format!("stdin {out:?}"))?;
    Ok(())
}

fn script_error_names_file_and_line() -> R {
    let dir = tempdir();
    std::fs::write(dir.path().join("bad.sql"), "SELECT 1 AS ok;\n\n-- the next one is wrong\nSELECT nosuchcolumn FROM (SELECT 1 AS a);\nSELECT 'never' AS reached;\n")
        .map_err(|e| e.to_string())?;
    let out = augur_in(dir.path(), &["-f", "bad.sql"], None);
    fails(&out, 1, &["bad.sql:4: error:", "nosuchcolumn"])?;
    let printed = crate::common::stdout(&out);
    check(printed == "ok\n1\n", || format!("stdout {printed:?}"))?;
    Ok(())
}

fn keep_going_runs_the_rest() -> R {
    let out = augur(&[
        "--keep-going",
        "-c",
        "SELECT * FROM nowhere; SELECT 5 AS five",
    ]);
    fails(&out, 1, &["-c:1: error:", "nowhere"])?;
    let printed = crate::common::stdout(&out);
    check(printed == "five\n5\n", || format!("stdout {printed:?}"))?;
    Ok(())
}

fn help_and_version() -> R {
    let help = ok(&augur(&["--help"]))?;
    for flag in [
        "--command",
        "--file",
        "--format",
        "--quiet",
        "--memory-limit",
        "--keep-going",
    ] {
        check(help.contains(flag), || format!("help lacks {flag}"))?;
    }
    let version = ok(&augur(&["--version"]))?;
    check(version.starts_with("augur "), || {
        format!("version {version:?}")
    })?;
    Ok(())
}

fn bad_arguments() -> R {
    let out = augur(&["--memory-limit", "lots", "-c", "SELECT 1"]);
    fails(&out, 2, &["invalid size 'lots'"])?;
    let out = augur(&["--format", "xml", "-c", "SELECT 1"]);
    fails(&out, 2, &["xml"])?;
    let out = augur(&["-f", "/nonexistent/script.sql"]);
    fails(&out, 2, &["cannot read script '/nonexistent/script.sql'"])?;
    Ok(())
}

fn copy_to_files() -> R {
    let dir = tempdir();
    let d = dir.path();
    ok(&augur_in(
        d,
        &[
            "-c",
            "COPY (SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y') TO 'out.parquet'; \
        COPY (SELECT 1 AS a) TO 'out.csv'; COPY (SELECT 1 AS a) TO 'out.json'",
        ],
        None,
    ))?;
    let back = ok(&augur_in(
        d,
        &["-c", "SELECT sum(a) AS s, max(b) AS m FROM 'out.parquet'"],
        None,
    ))?;
    check(back == "s,m\n3,y\n", || format!("parquet {back:?}"))?;
    let csv = std::fs::read_to_string(d.join("out.csv")).map_err(|e| e.to_string())?;
    check(csv == "a\n1\n", || format!("csv {csv:?}"))?;
    let json = std::fs::read_to_string(d.join("out.json")).map_err(|e| e.to_string())?;
    check(json.trim() == "{\"a\":1}", || format!("json {json:?}"))?;
    Ok(())
}

/// A script (pg_dump's shape) with inline COPY data in text and CSV, then a bad row whose
/// error names the script line and the data line.
fn copy_from_stdin_in_scripts() -> R {
    let dir = tempdir();
    let script = "CREATE TABLE people (id BIGINT, name TEXT, born DATE);\n\
        COPY people (id, name, born) FROM stdin;\n\
        1\tada\t1815-12-10\n\
        2\t\\N\t\\N\n\
        3\tsemi; colon 'quote\t1906-12-09\n\
        \\.\n\
        COPY people (id, name) FROM STDIN WITH (FORMAT csv, HEADER);\n\
        id,name\n\
        4,\"a, b\"\n\
        \\.\n\
        SELECT id, name, born FROM people ORDER BY id;\n\
        COPY people (id) FROM stdin;\n\
        5\n\
        six\n\
        \\.\n\
        SELECT count(*) AS n FROM people;\n";
    std::fs::write(dir.path().join("load.sql"), script).map_err(|e| e.to_string())?;
    let out = augur_in(dir.path(), &["db", "--keep-going", "-f", "load.sql"], None);
    let printed = crate::common::stdout(&out);
    check(
        printed
            == "id,name,born\n1,ada,1815-12-10\n2,,\n3,semi; colon 'quote,1906-12-09\n4,\"a, b\",\nn\n4\n",
        || format!("stdout {printed:?} stderr {}", stderr(&out)),
    )?;
    let err = stderr(&out);
    check(
        err.contains("load.sql:12: error:") && err.contains("line 2") && err.contains("six"),
        || format!("stderr {err}"),
    )?;
    // With -c the rows come from standard input, as with psql: text to its end, CSV up to
    // a `\.` line; a bad row there stores nothing either.
    let rows = "7\tgrace\t1906-12-09\n8\t\\N\t\\N\n";
    let out = augur_in(
        dir.path(),
        &["db", "-c", "COPY people FROM STDIN"],
        Some(rows),
    );
    check(stderr(&out).contains("COPY 2"), || stderr(&out))?;
    let csv = "id,name\n9,\"x, y\"\n\\.\n10,after the end\n";
    let sql = "COPY people (id, name) FROM STDIN (FORMAT csv, HEADER)";
    let out = augur_in(dir.path(), &["db", "-c", sql], Some(csv));
    check(stderr(&out).contains("COPY 1"), || stderr(&out))?;
    let out = augur_in(
        dir.path(),
        &["db", "-c", "COPY people FROM STDIN"],
        Some("11\tz\n"),
    );
    fails(&out, 1, &["COPY people, line 1", "expected 3 fields"])?;
    check(!stderr(&out).contains("DeltaTable"), || stderr(&out))?;
    let sql = "SELECT string_agg(CAST(id AS VARCHAR), ' ' ORDER BY id) AS ids FROM people";
    let out = augur_in(dir.path(), &["db", "-c", sql], None);
    let printed = crate::common::stdout(&out);
    check(printed == "ids\n1 2 3 4 7 8 9\n", || printed.clone())?;
    // Statements read from standard input leave no rows for COPY there.
    let out = augur_in(dir.path(), &["db"], Some("COPY people FROM STDIN;\n"));
    fails(&out, 1, &["no data follows"])?;
    Ok(())
}

/// The README's run command: the pipeline, then the scorecard lifecycle after it (run in
/// a scratch directory, where the scorecard's SQL export lands).
fn credit_risk_demo_runs() -> R {
    let dir = tempdir();
    for d in ["sql", "testdata"] {
        std::fs::create_dir_all(dir.path().join(d)).map_err(|e| e.to_string())?;
    }
    for f in [
        "sql/credit_risk.sql",
        "sql/scorecard.sql",
        "testdata/transactions.csv",
    ] {
        std::fs::copy(repo().join(f), dir.path().join(f)).map_err(|e| e.to_string())?;
    }
    let out = augur_in(
        dir.path(),
        &["-f", "sql/credit_risk.sql", "-f", "sql/scorecard.sql"],
        None,
    );
    let printed = ok(&out).map_err(|e| format!("{e}\n{}", stderr(&out)))?;
    check(
        printed.contains("transaction_type") && printed.contains("purchase"),
        || format!("demo output {printed}"),
    )?;
    // The scorecard printed its table, scored with reasons, and promoted a champion.
    check(
        printed.contains("points_below_best")
            && printed.contains("champion")
            && printed.contains("significant shift") | printed.contains("stable"),
        || format!("scorecard demo output {printed}"),
    )?;
    let exported = std::fs::read_to_string(dir.path().join("risk_card.sql"))
        .map_err(|e| format!("the demo's SQL export: {e}"))?;
    check(exported.contains("CASE WHEN \"age\" IS NULL"), || {
        exported.clone()
    })?;
    Ok(())
}

/// What follows each `key` in a printed plan, up to the next comma.
fn values_after<'a>(plan: &'a str, key: &str) -> Vec<&'a str> {
    plan.match_indices(key)
        .map(|(i, m)| {
            let rest = &plan[i + m.len()..];
            &rest[..rest.find(',').unwrap_or(rest.len())]
        })
        .collect()
}

/// A semi join of 300,000 rows against 200 keys spread over 200,000 values builds an array
/// (Augur's default) and, with DataFusion's default threshold, a hash table: the plan's
/// metrics say which, and both give the same rows (tests/slt/array_joins.slt checks answers).
fn sparse_key_joins_use_arrays() -> R {
    let query = "EXPLAIN ANALYZE SELECT count(*), sum(v) FROM big WHERE k IN (SELECT k FROM few)";
    let out = ok(&augur(&[
        "-c",
        "CREATE TABLE big AS SELECT i AS k, i % 7 AS v FROM generate_series(1, 300000) AS t(i)",
        "-c",
        "CREATE TABLE few AS SELECT i * 997 AS k FROM generate_series(1, 200) AS t(i)",
        "-c",
        query,
        "-c",
        "SET datafusion.execution.perfect_hash_join_small_build_threshold = 1024",
        "-c",
        query,
    ]))?;
    let counts = values_after(&out, "array_map_created_count=");
    check(counts == ["1", "0"], || {
        format!("array maps {counts:?} in {out}")
    })?;
    Ok(())
}

/// A semi join of 300,000 rows against 200 keys spread past 2^20 values (so no array join)
/// drops the probe rows whose key the build side lacks before the join: the plan's metrics
/// count them; with `augur.probe_filter` off the filter is gone and the answer the same
/// (tests/slt/probe_filter.slt checks answers of every join type).
fn joins_filter_probe_rows() -> R {
    let query = "SELECT count(*), sum(v) FROM big WHERE k IN (SELECT k FROM few)";
    let explain = format!("EXPLAIN ANALYZE {query}");
    let out = ok(&augur(&[
        "-c",
        "CREATE TABLE big AS SELECT i * 1000003 AS k, i % 7 AS v FROM generate_series(1, 300000) AS t(i)",
        "-c",
        "CREATE TABLE few AS SELECT i * 997 * 1000003 AS k FROM generate_series(1, 200) AS t(i)",
        "-c",
        query,
        "-c",
        &explain,
        "-c",
        "SET augur.probe_filter = false",
        "-c",
        query,
        "-c",
        &explain,
    ]))?;
    let dropped = values_after(&out, "rows_dropped=");
    // Printed as "222.1 K" (a page index may skip some rows before the filter sees them).
    let thousands = |v: &str| v.split(" K").next().and_then(|n| n.parse::<f64>().ok());
    check(
        dropped.len() == 1 && thousands(dropped[0]).is_some_and(|n| n > 150.0),
        || format!("rows dropped {dropped:?} in {out}"),
    )?;
    let sides = values_after(&out, "ProbeFilterExec: side=");
    check(sides == ["build", "probe"], || {
        format!("filters {sides:?} in {out}")
    })?;
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("200,")).collect();
    check(answers.len() == 2 && answers[0] == answers[1], || {
        format!("answers {answers:?} in {out}")
    })?;
    Ok(())
}

/// A join building on 300,000 rows builds one shared table (Augur's limit is 4M rows) instead
/// of repartitioning both sides (DataFusion's 128K); a user's own limit survives a later
/// `SET augur.*`.
fn joins_build_one_shared_table() -> R {
    let query = "EXPLAIN SELECT count(*) FROM big JOIN mid ON big.k = mid.k";
    let out = ok(&augur(&[
        "-c",
        "CREATE TABLE big AS SELECT i AS k FROM generate_series(1, 1000000) AS t(i)",
        "-c",
        "CREATE TABLE mid AS SELECT i * 3 AS k FROM generate_series(1, 300000) AS t(i)",
        "-c",
        query,
        "-c",
        "SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 131072",
        "-c",
        "SET augur.decimal64 = false",
        "-c",
        query,
    ]))?;
    let modes = values_after(&out, "HashJoinExec: mode=");
    check(modes == ["CollectLeft", "Partitioned"], || {
        format!("join modes {modes:?} in {out}")
    })?;
    Ok(())
}

/// The output of `setup` (`-c` arguments) then, with `setting` true and then false, each of
/// `queries`' plan (`EXPLAIN`) and answer.
fn plans_on_and_off(
    mut args: Vec<String>,
    setting: &str,
    queries: &[&str],
) -> Result<String, String> {
    for value in ["true", "false"] {
        args.extend(["-c".into(), format!("SET {setting} = {value}")]);
        for query in queries {
            args.extend([
                "-c".into(),
                format!("EXPLAIN {query}"),
                "-c".into(),
                query.to_string(),
            ]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&augur(&args))
}

/// The lines of `out` that are answers (they start with a digit), not plans or headers.
fn answer_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

/// A join under a GROUP BY of exactly its build side's keys, building on 200,000 rows, is
/// partitioned on them (the aggregate then runs in one phase per partition) instead of
/// building one shared table; a build of 1,000 rows, and a GROUP BY of another column, keep
/// the shared table, as does every join with `augur.grouped_join` off; answers are the same.
fn joins_under_a_group_by_of_their_keys_partition() -> R {
    let per_key = "SELECT count(*), sum(n), max(n) FROM (SELECT cust.c, count(ord.o) AS n \
                   FROM cust LEFT JOIN ord ON cust.c = ord.c GROUP BY cust.c)";
    let small = "SELECT count(*), sum(n) FROM (SELECT few.c, count(ord.o) AS n \
                 FROM few LEFT JOIN ord ON few.c = ord.c GROUP BY few.c)";
    let other = "SELECT count(*), sum(n) FROM (SELECT ord.o % 10 AS m, count(*) AS n \
                 FROM cust JOIN ord ON cust.c = ord.c GROUP BY ord.o % 10)";
    let args = vec![
        "-c".to_string(),
        "CREATE TABLE cust AS SELECT i AS c FROM generate_series(1, 200000) AS t(i)".into(),
        "-c".into(),
        "CREATE TABLE few AS SELECT i * 7 AS c FROM generate_series(1, 1000) AS t(i)".into(),
        "-c".into(),
        "CREATE TABLE ord AS SELECT i % 250000 AS c, i AS o FROM generate_series(1, 600000) AS t(i)"
            .into(),
    ];
    let out = plans_on_and_off(args, "augur.grouped_join", &[per_key, small, other])?;
    let modes = values_after(&out, "HashJoinExec: mode=");
    let expected = [
        "Partitioned",
        "CollectLeft",
        "CollectLeft",
        "CollectLeft",
        "CollectLeft",
        "CollectLeft",
    ];
    check(modes == expected, || {
        format!("join modes {modes:?} in {out}")
    })?;
    let single = out.matches("mode=SinglePartitioned").count();
    check(single == 1, || {
        format!("{single} one-phase aggregates in {out}")
    })?;
    // Each query's answer (count, sum[, max]) with the rule and without.
    let answers = answer_lines(&out);
    check(
        answers.len() == 6 && answers[..3] == answers[3..] && answers[0].starts_with("200000,"),
        || format!("answers {answers:?} in {out}"),
    )?;
    Ok(())
}

/// A grouped median or percentile_cont runs as one `SinglePartitioned` aggregate over its
/// rows, hash repartitioned, when every column its input carries is grouped or read by the
/// quantile (a count and an average of the same column beside it); a sum of another column
/// beside it keeps the two phases, as does every query with `augur.one_phase_quantiles` off.
/// Answers are the same either way.
fn grouped_quantiles_run_in_one_phase() -> R {
    // Sums of doubles rounded: the groups arrive in either order.
    let beside = "SELECT count(*), round(sum(m), 6), round(sum(p), 6), sum(n), round(sum(a), 6) FROM (SELECT g, median(f) AS m, \
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY f) AS p, count(*) AS n, \
                  avg(f) AS a FROM t GROUP BY g)";
    let other = "SELECT count(*), round(sum(m), 6), sum(s) FROM (SELECT g % 10 AS h, median(f) AS m, \
                 sum(i) AS s FROM t GROUP BY g % 10)";
    let args = vec![
        "-c".to_string(),
        "SET datafusion.execution.target_partitions = 2".into(),
        "-c".into(),
        "CREATE TABLE t AS SELECT CASE WHEN i % 13 = 0 THEN NULL ELSE i % 1000 END AS g, \
         CAST(i % 7 AS DOUBLE) AS f, i FROM generate_series(1, 100000) AS x(i)"
            .into(),
    ];
    let out = plans_on_and_off(args, "augur.one_phase_quantiles", &[beside, other])?;
    let modes = values_after(&out, "AggregateExec: mode=");
    // Each plan's outer aggregate (count and sums of the groups) then the grouped one(s).
    let expected = [
        "Final",
        "Partial",
        "SinglePartitioned",
        "Final",
        "Partial",
        "FinalPartitioned",
        "Partial",
        "Final",
        "Partial",
        "FinalPartitioned",
        "Partial",
        "Final",
        "Partial",
        "FinalPartitioned",
        "Partial",
    ];
    check(modes == expected, || {
        format!("aggregate modes {modes:?} in {out}")
    })?;
    let answers = answer_lines(&out);
    check(
        answers.len() == 4
            && answers[..2] == answers[2..]
            && answers[0].starts_with("1001,")
            && answers[1].starts_with("11,"),
        || format!("answers {answers:?} in {out}"),
    )?;
    Ok(())
}

/// `SET augur.rules = false` leaves planning to DataFusion alone (the baseline
/// benches/tpch.py compares with): the top-N-per-group operator is gone from the plan, and the
/// answer is the same.
fn rules_off_plans_as_datafusion() -> R {
    let query = "SELECT count(*), sum(v) FROM (SELECT g, v, row_number() OVER \
                 (PARTITION BY g ORDER BY v DESC) AS rn FROM t) WHERE rn <= 2";
    let explain = format!("EXPLAIN {query}");
    let out = ok(&augur(&[
        "-c",
        "CREATE TABLE t AS SELECT i % 10 AS g, i AS v FROM generate_series(1, 1000) AS x(i)",
        "-c",
        &explain,
        "-c",
        query,
        "-c",
        "SET augur.rules = false",
        "-c",
        &explain,
        "-c",
        query,
    ]))?;
    let parts: Vec<&str> = out.split("plan_type,plan").collect();
    check(parts.len() == 3, || format!("two plans expected: {out}"))?;
    check(
        parts[1].contains("TopPerGroup") && !parts[2].contains("TopPerGroup"),
        || format!("TopPerGroup with the rules only: {out}"),
    )?;
    // The two largest v of each of the 10 groups: 991..=1000 and 981..=990.
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("20,")).collect();
    check(answers == ["20,19810", "20,19810"], || {
        format!("answers {answers:?} in {out}")
    })?;
    Ok(())
}
