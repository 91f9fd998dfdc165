//! A real cluster of local processes (`augur scheduler` and two `augur executor`s on free
//! ports of 127.0.0.1): TPC-H answers equal local ones, files and S3 (moto) through external
//! tables, augur-udfs and users' functions inside distributed plans, `SET`/`RESET
//! augur.cluster`, EXPLAIN, a scheduler that is down, data only the client can see, an
//! executor killed in the middle of a query, and models: TRAIN MODEL summing its rows on the
//! executors, `predict` and `explain` with the model shipped inside the plan.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::common::{bin, check, repo, stderr, stdout, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("cluster::queries_on_a_cluster_of_processes", queries),
        Trial::test("cluster::models_on_a_cluster_of_processes", models),
        Trial::test("cluster::scheduler_down_is_named_quickly", scheduler_down),
        Trial::test("cluster::executor_killed_mid_query", executor_killed),
        Trial::test("cluster::deployment_files_parse", deployment_files),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

/// A scheduler and executors, stopped when dropped.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    url: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(executors: usize, env: &[(String, String)]) -> Result<Cluster, String> {
        let dir = tempdir();
        let port = free_port(false)?;
        let scheduler = spawn(
            dir.path(),
            env,
            vec![
                "scheduler".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--log".into(),
                "info".into(),
            ],
            "scheduler.log",
        )?;
        let mut cluster = Cluster {
            scheduler,
            executors: vec![],
            url: format!("df://127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_for_port(port)?;
        for i in 0..executors {
            let flight = free_port(true)?;
            let work = cluster._dir.path().join(format!("executor{i}"));
            cluster.executors.push(spawn(
                cluster._dir.path(),
                env,
                vec![
                    "executor".into(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{port}"),
                    "--listen".into(),
                    format!("127.0.0.1:{flight}"),
                    "--work-dir".into(),
                    work.display().to_string(),
                    "--concurrent-tasks".into(),
                    "2".into(),
                    "--log".into(),
                    "info".into(),
                ],
                &format!("executor{i}.log"),
            )?);
            wait_for_port(flight)?;
        }
        Ok(cluster)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self._dir.path()) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    out += &format!("--- {}\n", path.display());
                    for line in tail.into_iter().rev() {
                        out += line;
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    /// Tasks an executor has run so far (its log, at level info, has a line per task).
    fn tasks_run(&self, executor: usize) -> usize {
        std::fs::read_to_string(self._dir.path().join(format!("executor{executor}.log")))
            .map(|log| log.matches("Execute task").count())
            .unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An `augur` role with its stderr in `dir/log`.
fn spawn(
    dir: &Path,
    env: &[(String, String)],
    args: Vec<String>,
    log: &str,
) -> Result<Child, String> {
    let log = std::fs::File::create(dir.join(log)).map_err(|e| e.to_string())?;
    Command::new(bin())
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("augur {}: {e}", args[0]))
}

/// A port nothing listens on; with `pair`, the next one is free too (an executor uses both).
fn free_port(pair: bool) -> Result<u16, String> {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = first.local_addr().map_err(|e| e.to_string())?.port();
        if !pair
            || (port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok())
        {
            return Ok(port);
        }
    }
    Err("no free port pair on 127.0.0.1".into())
}

fn wait_for_port(port: u16) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port} after 60 s"))
}

/// `augur ARGS` in `dir` with `env`, killed (and reported) if it runs past `limit`: a
/// cluster query must answer or fail, never hang.
fn augur_bounded(
    dir: &Path,
    env: &[(String, String)],
    args: &[&str],
    limit: Duration,
) -> Result<Output, String> {
    let child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("AUGUR_HISTORY", dir.join(".history"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_bounded(child, limit).map_err(|e| format!("augur {args:?} {e}"))
}

/// The output of `child`, which is killed (and reported) if it runs past `limit`. Its pipes
/// are drained while it runs: a result larger than a pipe's buffer must not stall it.
fn wait_bounded(mut child: Child, limit: Duration) -> Result<Output, String> {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = vec![];
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status: match status {
            Some(s) => s,
            None => child.wait().map_err(|e| e.to_string())?,
        },
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    match status {
        Some(_) => Ok(output),
        None => Err(format!(
            "still running after {} s (hung); stderr: {}",
            limit.as_secs(),
            stderr(&output)
        )),
    }
}

fn ok(out: Output, what: &str) -> Result<String, String> {
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(format!("{what} failed: {}", stderr(&out)))
    }
}

const LIMIT: Duration = Duration::from_secs(120);

/// TPC-H at SF 0.01 from tpchgen-cli (installed by tests/run.sh), Parquet files.
fn tpch(dir: &Path) -> Result<PathBuf, String> {
    let out = dir.join("tpch");
    let status = Command::new("tpchgen-cli")
        .args(["parquet", "-s", "0.01", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| {
            format!("tpchgen-cli runs (pip install tpchgen-cli; tests/run.sh does): {e}")
        })?;
    check(status.success(), || "tpchgen-cli failed".into())?;
    Ok(out)
}

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Rows of a CSV result, sorted (ties under ORDER BY may come in either order), numbers
/// compared to 1e-9 relative.
fn same_rows(local: &str, cluster: &str) -> bool {
    let rows = |text: &str| {
        let mut rows: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        rows.sort();
        rows
    };
    let (a, b) = (rows(local), rows(cluster));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(u, v)| {
                    u == v
                        || match (u.parse::<f64>(), v.parse::<f64>()) {
                            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()),
                            _ => false,
                        }
                })
        })
}

fn queries() -> R {
    let dir = tempdir();
    let moto = crate::s3::Moto::start(false, &["cluster"])?;
    let env = moto.env();
    let data = tpch(dir.path())?;
    let cluster = Cluster::start(2, &env)?;
    let setup: Vec<String> = TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/{t}.parquet'",
                data.display()
            )
        })
        .collect();
    let run = |cluster_url: Option<&str>, statements: &[String]| -> Result<Output, String> {
        let mut args: Vec<&str> = vec!["-q", "--format", "csv"];
        if let Some(url) = cluster_url {
            args.extend(["--cluster", url]);
        }
        for s in statements {
            args.extend(["-c", s.as_str()]);
        }
        augur_bounded(dir.path(), &env, &args, LIMIT)
    };

    // The 22 TPC-H queries: the same answers on the cluster as in one process.
    for q in 1..=22 {
        let sql = std::fs::read_to_string(repo().join(format!("benches/tpch/queries/q{q}.sql")))
            .map_err(|e| e.to_string())?;
        let mut statements = setup.clone();
        statements.push(sql);
        let local = ok(run(None, &statements)?, &format!("Q{q} locally"))?;
        let remote = run(Some(&cluster.url), &statements)?;
        let remote = ok(remote, &format!("Q{q} on the cluster"))
            .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
        check(local.lines().count() > 1, || {
            format!("Q{q} returned no rows: {local}")
        })?;
        check(same_rows(&local, &remote), || {
            format!("Q{q} differs\nlocal:\n{local}\ncluster:\n{remote}")
        })?;
    }
    // Both executors ran tasks of those jobs.
    for i in 0..2 {
        check(cluster.tasks_run(i) > 0, || {
            format!(
                "executor {i} ran no tasks: the jobs did not run there\n{}",
                cluster.logs()
            )
        })?;
    }

    // EXPLAIN shows the part that runs on the cluster.
    let mut statements = setup.clone();
    statements.push("EXPLAIN SELECT l_returnflag, count(*) FROM lineitem GROUP BY 1".into());
    let plan = ok(run(Some(&cluster.url), &statements)?, "EXPLAIN")?;
    check(
        plan.contains(&format!("ClusterExec: scheduler={}", cluster.url)),
        || format!("EXPLAIN shows no ClusterExec: {plan}"),
    )?;

    // augur-udfs and a user's CREATE FUNCTION inside a distributed aggregate, and
    // SET / RESET augur.cluster in one session; the answers agree.
    let functions = vec![
        "CREATE FUNCTION margin(p DOUBLE, d DOUBLE) RETURNS DOUBLE RETURN p * (1 - d)".to_string(),
        format!(
            "CREATE EXTERNAL TABLE li STORED AS PARQUET LOCATION '{}/lineitem.parquet'",
            data.display()
        ),
    ];
    let query = "SELECT l_returnflag, round(sum(margin(CAST(l_extendedprice AS DOUBLE), \
                 CAST(l_discount AS DOUBLE))), 4) AS m, round(sum(logit(0.25 + l_discount)), \
                 6) AS s, count(*) AS n FROM li GROUP BY l_returnflag ORDER BY 1";
    let mut statements = functions.clone();
    statements.push(format!("SET augur.cluster = '{}'", cluster.url));
    statements.push("SHOW augur.cluster".into());
    statements.push(query.into());
    statements.push(format!("EXPLAIN {query}"));
    statements.push("RESET augur.cluster".into());
    statements.push(format!("EXPLAIN {query}"));
    statements.push(query.into());
    let out = ok(run(None, &statements)?, "SET augur.cluster")?;
    let parts: Vec<&str> = out.split("\n").collect();
    check(out.contains(&cluster.url), || {
        format!("SHOW augur.cluster: {out}")
    })?;
    let explains: Vec<&str> = out.split("physical_plan").collect();
    check(explains.len() == 3, || {
        format!("two EXPLAINs expected: {out}")
    })?;
    check(
        explains[1].contains("ClusterExec") && !explains[2].contains("ClusterExec"),
        || {
            format!(
                "SET then RESET augur.cluster: the first plan runs on the cluster, the second here: {out}"
            )
        },
    )?;
    let results: Vec<String> = parts
        .iter()
        .filter(|l| l.starts_with("A,") || l.starts_with("N,") || l.starts_with("R,"))
        .map(|l| l.to_string())
        .collect();
    check(results.len() == 6 && results[..3] == results[3..], || {
        format!("the same query on the cluster and here differs: {results:?}")
    })?;

    // The wire server with --cluster: a psql client's query runs on the cluster.
    let server = crate::server::Server::start(
        dir.path(),
        &[
            "--cluster",
            &cluster.url,
            "--allow-dir",
            &data.display().to_string(),
        ],
    )?;
    let (fine, out, err) = server.psql(
        dir.path(),
        &[
            "-A",
            "-t",
            "-c",
            &functions[0],
            "-c",
            &functions[1],
            "-c",
            &format!("EXPLAIN {query}"),
            "-c",
            query,
        ],
    );
    check(fine && out.contains("ClusterExec"), || {
        format!("augur serve --cluster: {out} {err}")
    })?;
    let served: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("A|") || l.starts_with("N|") || l.starts_with("R|"))
        .map(|l| l.replace('|', ","))
        .collect();
    check(served.len() == 3 && served[..] == results[..3], || {
        format!("over the wire on the cluster: {served:?} vs {results:?}")
    })?;
    drop(server);

    // S3 (moto) through an external table: the executors read with their own AWS_* settings.
    let s3 = vec![format!(
        "COPY (SELECT * FROM '{}/orders.parquet') TO 's3://cluster/orders/' STORED AS PARQUET",
        data.display()
    )];
    ok(run(None, &s3)?, "COPY to S3")?;
    let read = vec![
        "CREATE EXTERNAL TABLE o STORED AS PARQUET LOCATION 's3://cluster/orders/'".to_string(),
        "SELECT o_orderpriority, count(*), sum(o_totalprice) FROM o GROUP BY 1 ORDER BY 1".into(),
    ];
    let local = ok(run(None, &read)?, "S3 locally")?;
    let remote = ok(run(Some(&cluster.url), &read)?, "S3 on the cluster")?;
    check(
        local.lines().count() == 6 && same_rows(&local, &remote),
        || format!("S3 table: local {local} vs cluster {remote}"),
    )?;

    // Data only this process has: an in-memory database's stored table is refused by name.
    let memory = vec![
        "CREATE TABLE t AS SELECT * FROM (VALUES (1), (2)) v(x)".to_string(),
        format!(
            "SELECT a.x, count(*) FROM t a JOIN '{}/nation.parquet' n ON a.x = n.n_regionkey GROUP BY 1",
            data.display()
        ),
    ];
    let out = run(Some(&cluster.url), &memory)?;
    let err = stderr(&out);
    check(
        !out.status.success() && err.contains("cannot read") && err.contains("RESET augur.cluster"),
        || {
            format!(
                "an in-memory table on a cluster: expected a clear error, got {}: {err}",
                out.status
            )
        },
    )?;

    // A database directory's stored tables (Delta) on a path the executors share: a plain
    // table's scan becomes a Parquet scan, so its join and aggregate run there; a partitioned
    // one keeps delta-rs's scan at the client, over Parquet scans read there. Both answer as
    // here, after a DELETE and an UPDATE have rewritten files.
    let db = dir.path().join("db").display().to_string();
    let orders = format!("{}/orders.parquet", data.display());
    let tables = [
        format!(
            "CREATE TABLE ord AS SELECT o_orderkey, o_custkey, o_orderpriority, o_totalprice \
             FROM '{orders}'"
        ),
        "DELETE FROM ord WHERE o_orderkey % 7 = 0".into(),
        format!(
            "CREATE EXTERNAL TABLE byprio (k BIGINT, prio VARCHAR, price DOUBLE) STORED AS DELTA \
             PARTITIONED BY (prio) LOCATION '{db}/byprio'"
        ),
        format!(
            "INSERT INTO byprio SELECT o_orderkey, o_orderpriority, CAST(o_totalprice AS DOUBLE) \
             FROM '{orders}' WHERE o_orderkey % 5 = 0"
        ),
        "UPDATE byprio SET price = price + 1 WHERE prio = '1-URGENT'".into(),
    ];
    // The TPC-H external tables are kept in the database's catalog from here on.
    let mut statements = vec![db.clone()];
    statements.extend(setup.iter().cloned());
    statements.extend(tables.iter().cloned());
    let mut args: Vec<&str> = vec!["-q"];
    args.extend(statements[..1].iter().map(String::as_str));
    for t in &statements[1..] {
        args.extend(["-c", t.as_str()]);
    }
    ok(
        augur_bounded(dir.path(), &env, &args, LIMIT)?,
        "the stored tables",
    )?;
    let stored = [
        "SELECT o_orderpriority, count(*), sum(o_totalprice) FROM ord GROUP BY 1 ORDER BY 1",
        "SELECT c_mktsegment, count(*) FROM ord JOIN customer ON o_custkey = c_custkey \
         GROUP BY 1 ORDER BY 1",
        "SELECT prio, count(*), sum(price) FROM byprio GROUP BY 1 ORDER BY 1",
    ];
    let in_db = |cluster_url: Option<&str>, query: &str| {
        let mut args: Vec<&str> = vec!["-q", "--format", "csv", &db];
        if let Some(url) = cluster_url {
            args.extend(["--cluster", url]);
        }
        args.extend(["-c", query]);
        augur_bounded(dir.path(), &env, &args, LIMIT)
    };
    for query in stored {
        let local = ok(in_db(None, query)?, "a stored table here")?;
        let remote = ok(
            in_db(Some(&cluster.url), query)?,
            "a stored table on the cluster",
        )
        .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
        check(
            local.lines().count() > 3 && same_rows(&local, &remote),
            || format!("{query}\nhere:\n{local}\ncluster:\n{remote}"),
        )?;
    }
    let plan = ok(
        in_db(Some(&cluster.url), &format!("EXPLAIN {}", stored[1]))?,
        "EXPLAIN over a stored table",
    )?;
    check(
        !plan.contains("DeltaScanExec")
            && plan.split("ClusterExec").nth(1).is_some_and(|below| {
                below.contains("AggregateExec") && below.contains("HashJoinExec")
            }),
        || format!("a plain stored table's join and aggregate do not run on the cluster:\n{plan}"),
    )?;
    Ok(())
}

/// The CSV rows of a query's output, and the value of `column` in its first row.
fn column_of(csv: &str, column: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let i = header.iter().position(|h| *h == column)?;
    lines.next()?.split(',').nth(i).map(str::to_string)
}

fn models() -> R {
    let dir = tempdir();
    let cluster = Cluster::start(2, &[])?;
    let data = dir.path().join("applicants.parquet");
    // 30,000 applicants: two numeric features, a category, a 0/1 label and an amount.
    let make = format!(
        "COPY (SELECT value AS id, sin(value * 0.37) * 3 AS x1, (value % 97) / 9.7 AS x2, \
         CASE value % 3 WHEN 0 THEN 'retail' WHEN 1 THEN 'travel' ELSE 'online' END AS cat, \
         CASE WHEN sin(value * 0.37) * 3 - (value % 97) / 30 + (value % 3) * 0.4 \
              + (sin(value * 12.9898) * 43758.5453 - floor(sin(value * 12.9898) * 43758.5453)) * 2 \
              > 0.6 THEN 1 ELSE 0 END AS y, \
         2 * sin(value * 0.37) + 0.3 * ((value % 97) / 9.7) + cos(value * 7.1) AS amount \
         FROM range(30000)) TO '{}' STORED AS PARQUET",
        data.display()
    );
    ok(
        augur_bounded(dir.path(), &[], &["-q", "-c", &make], LIMIT)?,
        "the training data",
    )?;
    let table = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS applicants STORED AS PARQUET LOCATION '{}'",
        data.display()
    );
    let train = [
        "TRAIN MODEL m USING logistic_regression PREDICT y \
         WITH (reg_param = 0.01, elastic_net_param = 0.5) AS SELECT x1, x2, cat, y FROM applicants",
        "TRAIN MODEL r USING linear_regression PREDICT amount \
         WITH (reg_param = 0.001) AS SELECT x1, x2, cat, amount FROM applicants",
    ];
    let run = |db: &Path, cluster_url: Option<&str>, statements: &[&str]| {
        let mut args: Vec<&str> = vec!["-q", "--format", "csv"];
        if let Some(url) = cluster_url {
            args.extend(["--cluster", url]);
        }
        let db = db.display().to_string();
        args.push(&db);
        args.extend(["-c", table.as_str()]);
        for s in statements {
            args.extend(["-c", s]);
        }
        augur_bounded(dir.path(), &[], &args, LIMIT)
    };

    // TRAIN MODEL here and on the cluster: the same iterations, loss and coefficients.
    let (here_db, there_db) = (dir.path().join("here"), dir.path().join("there"));
    let tasks_before = cluster.tasks_run(0) + cluster.tasks_run(1);
    let mut outputs = vec![];
    for (db, url) in [(&here_db, None), (&there_db, Some(cluster.url.as_str()))] {
        let mut trained = vec![];
        for statement in train {
            let out = run(db, url, &[statement])?;
            trained.push(
                ok(out, &format!("TRAIN on {url:?}"))
                    .map_err(|e| format!("{e}\n{}", cluster.logs()))?,
            );
        }
        outputs.push(trained);
    }
    let tasks = cluster.tasks_run(0) + cluster.tasks_run(1) - tasks_before;
    let mut iterations = 0;
    for (here, there) in outputs[0].iter().zip(&outputs[1]) {
        let it = column_of(here, "iterations");
        check(it.is_some() && it == column_of(there, "iterations"), || {
            format!("iterations differ:\nhere {here}\ncluster {there}")
        })?;
        iterations += it.and_then(|i| i.parse::<usize>().ok()).unwrap_or(0);
        let loss = |t: &str| column_of(t, "final_objective").and_then(|l| l.parse::<f64>().ok());
        check(
            matches!((loss(here), loss(there)), (Some(a), Some(b)) if (a - b).abs() <= 1e-9 * a.abs()),
            || format!("final loss differs:\nhere {here}\ncluster {there}"),
        )?;
    }
    // Every optimiser evaluation was a job: at least one task per iteration ran on the executors.
    check(iterations > 4 && tasks >= iterations, || {
        format!(
            "{iterations} iterations but {tasks} tasks ran on the executors\n{}",
            cluster.logs()
        )
    })?;
    let describe = ["DESCRIBE MODEL m", "DESCRIBE MODEL r"];
    let coefficients = |text: String| -> String {
        text.lines()
            .filter(|l| l.starts_with("coefficients,"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let here = coefficients(ok(run(&here_db, None, &describe)?, "coefficients here")?);
    let there = coefficients(ok(
        run(&there_db, None, &describe)?,
        "coefficients from the cluster",
    )?);
    check(
        here.lines().count() >= 8 && same_rows(&here, &there),
        || format!("coefficients differ beyond 1e-9:\nhere\n{here}\ncluster\n{there}"),
    )?;

    // predict, predict_proba and explain run on the executors with the model inside the
    // plan, and give exactly what this process gives.
    let scored = "SELECT id, predict('m', x1, x2, cat) AS p, predict_proba('m', x1, x2, cat) AS q, \
                  predict('r', x1, x2, cat) AS v FROM applicants WHERE x2 > 1 ORDER BY id";
    let explained = "SELECT * FROM explain(m, (SELECT x1, x2, cat FROM applicants WHERE id < 500)) \
                     ORDER BY x1, x2, cat";
    let plan = ok(
        run(
            &there_db,
            Some(&cluster.url),
            &[&format!("EXPLAIN {scored}")],
        )?,
        "EXPLAIN predict on the cluster",
    )?;
    let shipped = plan
        .split("ClusterExec")
        .nth(1)
        .is_some_and(|below| below.contains("predict(m, "));
    check(shipped, || {
        format!("predict does not run below the ClusterExec:\n{plan}")
    })?;
    for query in [scored, explained] {
        let remote = run(&there_db, Some(&cluster.url), &[query])
            .and_then(|out| ok(out, "on the cluster"))
            .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
        let local = ok(run(&there_db, None, &[query])?, "here")?;
        check(local.lines().count() > 100 && local == remote, || {
            format!("{query}\nhere:\n{local}\ncluster:\n{remote}")
        })?;
    }

    // evaluate and calibration_curve aggregate on the executors (their aggregates travel by
    // name); drift's reads the catalog, so it counts at the client over rows from the cluster.
    // Sums merge in another order there: equal to 1e-9.
    let evaluated = "SELECT * FROM evaluate(m, applicants)";
    let plan = ok(
        run(
            &there_db,
            Some(&cluster.url),
            &[&format!("EXPLAIN {evaluated}")],
        )?,
        "EXPLAIN evaluate on the cluster",
    )?;
    check(
        plan.split("ClusterExec")
            .nth(1)
            .is_some_and(|below| below.contains("model_metrics")),
        || format!("evaluate's aggregate does not run below the ClusterExec:\n{plan}"),
    )?;
    for query in [
        evaluated,
        "SELECT * FROM evaluate(r, applicants)",
        "SELECT * FROM calibration_curve(m, applicants, 5)",
        "SELECT * FROM drift(m, (SELECT * FROM applicants WHERE x2 > 3))",
    ] {
        let remote = run(&there_db, Some(&cluster.url), &[query])
            .and_then(|out| ok(out, "on the cluster"))
            .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
        let local = ok(run(&there_db, None, &[query])?, "here")?;
        check(
            local.lines().count() > 1 && same_rows(&local, &remote),
            || format!("{query}\nhere:\n{local}\ncluster:\n{remote}"),
        )?;
    }
    Ok(())
}

fn scheduler_down() -> R {
    let dir = tempdir();
    std::fs::write(dir.path().join("x.csv"), "a\n1\n").map_err(|e| e.to_string())?;
    let port = free_port(false)?;
    let url = format!("df://127.0.0.1:{port}");
    let start = Instant::now();
    let out = augur_bounded(
        dir.path(),
        &[],
        &[
            "-q",
            "--cluster",
            &url,
            "-c",
            "SELECT count(*) FROM 'x.csv'",
        ],
        Duration::from_secs(30),
    )?;
    let err = stderr(&out);
    check(
        !out.status.success() && err.contains(&url) && err.contains("augur scheduler"),
        || format!("scheduler down: {}: {err}", out.status),
    )?;
    check(start.elapsed() < Duration::from_secs(15), || {
        format!("the error took {:?}", start.elapsed())
    })?;
    // A malformed address is refused before anything runs, naming the option.
    let out = augur_bounded(
        dir.path(),
        &[],
        &["--cluster", "s3://nope", "-c", "SELECT 1"],
        LIMIT,
    )?;
    check(
        !out.status.success()
            && stderr(&out).contains("--cluster")
            && stderr(&out).contains("df://HOST:PORT"),
        || format!("bad --cluster: {}", stderr(&out)),
    )?;
    Ok(())
}

fn executor_killed() -> R {
    let dir = tempdir();
    let big = dir.path().join("big.parquet");
    ok(
        augur_bounded(
            dir.path(),
            &[],
            &[
                "-q",
                "-c",
                &format!(
                    "COPY (SELECT value AS id, value % 100003 AS g, random() AS v FROM \
                     generate_series(1, 4000000)) TO '{}'",
                    big.display()
                ),
            ],
            LIMIT,
        )?,
        "writing the data",
    )?;
    let mut cluster = Cluster::start(2, &[])?;
    let query = format!(
        "SELECT count(*) FROM (SELECT g, count(*) c, sum(v) s FROM '{}' GROUP BY g) t",
        big.display()
    );
    // Warm-up: both executors are registered and serve.
    ok(
        augur_bounded(
            dir.path(),
            &[],
            &["-q", "--cluster", &cluster.url, "-c", &query],
            LIMIT,
        )?,
        "the query before the kill",
    )?;
    let child = Command::new(bin())
        .args([
            "-q",
            "--format",
            "csv",
            "--cluster",
            &cluster.url,
            "-c",
            &query,
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let _ = cluster.executors[1].kill();
    let _ = cluster.executors[1].wait();
    let out = wait_bounded(child, LIMIT).map_err(|e| {
        format!(
            "the query hung after an executor was killed: {e}\n{}",
            cluster.logs()
        )
    })?;
    if out.status.success() {
        // Ballista re-ran the lost tasks: the answer is the full one.
        check(stdout(&out).lines().nth(1) == Some("100003"), || {
            format!("after the retry: {}", stdout(&out))
        })?;
    } else {
        let err = stderr(&out);
        check(err.contains("cluster") && !err.contains("panicked"), || {
            format!("an executor lost mid-query: the error should name the cluster's job: {err}")
        })?;
    }
    Ok(())
}

/// docs/cluster's Kubernetes manifests and Compose file parse as YAML, hold what they claim,
/// and use only flags `augur scheduler` / `augur executor` accept.
fn deployment_files() -> R {
    let script = r#"
import json, sys, yaml
docs = []
for path in sys.argv[1:]:
    with open(path) as f:
        docs += [(path, d) for d in yaml.safe_load_all(f) if d]
kinds, args = [], {"scheduler": set(), "executor": set()}
for path, d in docs:
    if "services" in d:
        for name, svc in d["services"].items():
            cmd = svc["command"]
            args[cmd[0]].update(a for a in cmd if a.startswith("--"))
        kinds.append("Compose")
        continue
    kinds.append(d["kind"])
    if d["kind"] == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            args[c["args"][0]].update(a for a in c["args"] if a.startswith("--"))
print(json.dumps({"kinds": sorted(kinds), "args": {k: sorted(v) for k, v in args.items()}}))
"#;
    let dir = repo().join("docs/cluster");
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("k8s/scheduler.yaml"))
        .arg(dir.join("k8s/executor.yaml"))
        .arg(dir.join("docker-compose.yml"))
        .output()
        .map_err(|e| e.to_string())?;
    check(out.status.success(), || {
        format!("the YAML does not parse: {}", stderr(&out))
    })?;
    let found: serde_json::Value =
        serde_json::from_str(&stdout(&out)).map_err(|e| e.to_string())?;
    check(
        found["kinds"] == serde_json::json!(["Compose", "Deployment", "Deployment", "Service"]),
        || format!("manifests: {found}"),
    )?;
    for role in ["scheduler", "executor"] {
        let help = Command::new(bin())
            .args([role, "--help"])
            .output()
            .map_err(|e| e.to_string())?;
        let help = stdout(&help);
        for flag in found["args"][role].as_array().into_iter().flatten() {
            let flag = flag.as_str().unwrap_or_default();
            check(help.contains(flag), || {
                format!("docs/cluster uses `augur {role} {flag}`, which does not exist: {help}")
            })?;
        }
    }
    Ok(())
}
