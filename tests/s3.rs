//! Object storage end to end against a real S3-compatible server (moto, with IAM signature
//! checks) on 127.0.0.1: reads, writes, partitions, external tables across restarts, training,
//! the credential chain, every bad-input error, and a canary secret that must never appear.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use libtest_mimic::Trial;

use crate::common::{bin, check, repo, stderr, stdout, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("s3::read_and_write_files", read_and_write_files),
        Trial::test(
            "s3::partitioned_write_reads_back_by_partition",
            partitioned_write,
        ),
        Trial::test(
            "s3::external_table_survives_restart",
            external_table_survives_restart,
        ),
        Trial::test("s3::training_reads_from_s3", training_reads_from_s3),
        Trial::test(
            "s3::profile_and_environment_variables",
            profile_and_environment,
        ),
        Trial::test("s3::table_options_never_leak", table_options_never_leak),
        Trial::test(
            "s3::bad_credentials_and_locations",
            bad_credentials_and_locations,
        ),
        Trial::test("s3::server_killed_before_a_read", server_killed),
        Trial::test("s3::connection_cut_mid_read", connection_cut_mid_read),
        Trial::test("s3::http_urls_read_only", http_urls),
        Trial::test("s3::delta_table_concurrent_writers", delta_on_s3),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

/// A moto server and the keys of its two users (one may do everything, one nothing).
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub denied_key_id: String,
    pub denied_secret: String,
}

impl Moto {
    /// With `iam`, requests must carry a valid signature of a known user (objects at the
    /// buckets' roots only: see moto_server.py).
    pub fn start(iam: bool, buckets: &[&str]) -> Result<Moto, String> {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/s3/moto_server.py"))
            .args(iam.then_some("--iam"))
            .args(buckets)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3 runs: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let info: serde_json::Value = serde_json::from_str(&line).map_err(|_| {
            "tests/s3/moto_server.py printed no settings: install the server with \
             pip install 'moto[server]' (tests/run.sh does)"
                .to_string()
        })?;
        let field = |k: &str| info[k].as_str().unwrap_or_default().to_string();
        Ok(Moto {
            endpoint: field("endpoint"),
            key_id: field("access_key_id"),
            secret: field("secret_access_key"),
            denied_key_id: field("denied_key_id"),
            denied_secret: field("denied_secret"),
            child,
        })
    }

    /// Environment for a user with full access through the standard variables.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server for the tests that do not kill it; each test uses its own prefix.
fn shared() -> Result<&'static Moto, String> {
    static SERVER: OnceLock<Result<Moto, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| Moto::start(false, &["bank"]))
        .as_ref()
        .map_err(|e| e.clone())
}

/// One server checking signatures, for the credential tests; a bucket per test.
fn shared_iam() -> Result<&'static Moto, String> {
    static SERVER: OnceLock<Result<Moto, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| Moto::start(true, &["prof", "opts", "bad"]))
        .as_ref()
        .map_err(|e| e.clone())
}

/// Run augur in `dir` with exactly `env` as its AWS settings (nothing inherited; HOME is
/// `dir`, so no real ~/.aws is read).
fn augur_env(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut command = Command::new(bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("AUGUR_HISTORY", dir.join(".history"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("augur runs")
}

fn ok(out: &Output) -> Result<String, String> {
    crate::common::ok(out)
}

/// `augur [DB] -c S1 -c S2 …` with `env`; fails unless every statement succeeds.
fn run_all(
    dir: &Path,
    env: &[(String, String)],
    db: &[&str],
    statements: &[&str],
) -> Result<String, String> {
    let mut args: Vec<&str> = db.to_vec();
    for statement in statements {
        args.extend(["-c", statement]);
    }
    ok(&augur_env(dir, env, &args))
}

/// The query's single value with `-c`, in CSV so it is easy to compare.
fn value(dir: &Path, env: &[(String, String)], db: &[&str], sql: &str) -> Result<String, String> {
    let mut args: Vec<&str> = db.to_vec();
    args.extend(["--format", "csv", "-c", sql]);
    let out = ok(&augur_env(dir, env, &args))?;
    Ok(out.lines().skip(1).collect::<Vec<_>>().join("\n"))
}

fn read_and_write_files() -> R {
    let moto = shared()?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let expected = value(
        d,
        &env,
        &[],
        "SELECT count(*), round(sum(transaction_amount), 2) FROM generate_transactions(20000, 7)",
    )?;
    let out = augur_env(
        d,
        &env,
        &[
            "-c",
            "COPY (SELECT * FROM generate_transactions(20000, 7)) TO 's3://bank/rw/tx.parquet'",
            "-c",
            "COPY (SELECT * FROM generate_transactions(20000, 7)) TO 's3://bank/rw/csv/tx.csv'",
        ],
    );
    ok(&out)?;
    for from in [
        "'s3://bank/rw/tx.parquet'",
        "read_parquet('s3://bank/rw/tx.parquet')",
        "read_csv('s3://bank/rw/csv/tx.csv')",
        "'s3://bank/rw/csv/'",
        "'s3://bank/rw/*.parquet'",
    ] {
        let got = value(
            d,
            &env,
            &[],
            &format!("SELECT count(*), round(sum(transaction_amount), 2) FROM {from}"),
        )?;
        check(got == expected, || {
            format!("{from}: got {got}, expected {expected}")
        })?;
    }
    Ok(())
}

fn partitioned_write() -> R {
    let moto = shared()?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let per_type =
        "SELECT coalesce(transaction_type, '') AS t, count(*) AS n FROM {} GROUP BY 1 ORDER BY 2";
    let expected = value(
        d,
        &env,
        &[],
        &per_type.replace("{}", "generate_transactions(5000, 3)"),
    )?;
    ok(&augur_env(
        d,
        &env,
        &[
            "-c",
            "COPY (SELECT * FROM generate_transactions(5000, 3)) TO 's3://bank/parts/' \
             STORED AS PARQUET PARTITIONED BY (transaction_type)",
        ],
    ))?;
    let got = value(d, &env, &[], &per_type.replace("{}", "'s3://bank/parts/'"))?;
    check(got == expected, || {
        format!("hive read back {got}, expected {expected}")
    })?;
    let one = value(
        d,
        &env,
        &[],
        "SELECT count(*) FROM 's3://bank/parts/transaction_type=purchase/'",
    )?;
    check(expected.contains(&format!("purchase,{one}")), || {
        format!("one partition has {one} rows; per type: {expected}")
    })?;
    Ok(())
}

fn external_table_survives_restart() -> R {
    let moto = shared()?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    run_all(
        d,
        &env,
        &[db],
        &[
            "COPY (SELECT * FROM generate_transactions(1000, 1)) TO 's3://bank/ext/a.parquet'",
            "CREATE EXTERNAL TABLE tx STORED AS PARQUET LOCATION 's3://bank/ext/'",
        ],
    )?;
    let count = value(d, &env, &[db], "SELECT count(*) FROM tx")?;
    check(count == "1000", || format!("after restart: {count} rows"))?;
    run_all(
        d,
        &env,
        &[db],
        &["INSERT INTO tx SELECT * FROM generate_transactions(500, 2)"],
    )?;
    let count = value(d, &env, &[db], "SELECT count(*) FROM tx")?;
    check(count == "1500", || format!("after INSERT: {count} rows"))?;
    Ok(())
}

fn training_reads_from_s3() -> R {
    let moto = shared()?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    ok(&augur_env(
        d,
        &env,
        &[
            db,
            "-c",
            "COPY (SELECT * FROM generate_transactions(20000, 5)) TO 's3://bank/train/tx.parquet'",
            "-c",
            "TRAIN MODEL risk USING logistic_regression PREDICT risk_score AS \
             SELECT transaction_amount, age, balance, prior_defaults, merchant_category, \
             risk_score FROM 's3://bank/train/tx.parquet'",
        ],
    ))?;
    let local = value(
        d,
        &env,
        &[db],
        "SELECT count(*) FROM predict(risk, (SELECT * FROM generate_transactions(20000, 5))) \
         WHERE prediction = risk_score",
    )?;
    let remote = value(
        d,
        &env,
        &[db],
        "SELECT count(*) FROM predict(risk, (SELECT * FROM 's3://bank/train/tx.parquet')) \
         WHERE prediction = risk_score",
    )?;
    check(local == remote, || {
        format!("predictions from S3 ({remote}) differ from local ({local})")
    })?;
    let correct: f64 = remote.parse().unwrap_or(0.0);
    check(correct > 0.6 * 20000.0, || {
        format!("model trained from S3 gets only {correct} of 20000 right")
    })?;
    Ok(())
}

fn profile_and_environment() -> R {
    let moto = shared_iam()?;
    let dir = tempdir();
    let d = dir.path();
    ok(&augur_env(
        d,
        &moto.env(),
        &["-c", "COPY (SELECT 1 AS x) TO 's3://prof/x.parquet'"],
    ))?;
    let aws = d.join(".aws");
    std::fs::create_dir_all(&aws).map_err(|e| e.to_string())?;
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n\
             [team]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.denied_key_id, moto.denied_secret, moto.key_id, moto.secret
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        aws.join("config"),
        format!(
            "[default]\nregion = us-east-1\n[profile team]\nregion = us-east-1\n\
             endpoint_url = {}\n",
            moto.endpoint
        ),
    )
    .map_err(|e| e.to_string())?;
    let sql = "SELECT x FROM 's3://prof/x.parquet'";
    let allow = ("AWS_ALLOW_HTTP".to_string(), "true".to_string());
    let profile = ("AWS_PROFILE".to_string(), "team".to_string());
    // The named profile supplies keys and the endpoint.
    let got = value(d, &[allow.clone(), profile.clone()], &[], sql)?;
    check(got == "1", || format!("profile 'team' read {got}"))?;
    // Environment keys win over the profile's (the default profile's user may read nothing).
    let endpoint = ("AWS_ENDPOINT".to_string(), moto.endpoint.clone());
    let env_keys = vec![
        allow.clone(),
        endpoint.clone(),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), moto.key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), moto.secret.clone()),
    ];
    let got = value(d, &env_keys, &[], sql)?;
    check(got == "1", || format!("environment keys read {got}"))?;
    // Without AWS_PROFILE the default profile is used: its user is denied.
    let out = augur_env(d, &[allow.clone(), endpoint.clone()], &["-c", sql]);
    let err = stderr(&out);
    check(
        !out.status.success() && err.contains("access denied"),
        || format!("default profile should be denied: {err}"),
    )?;
    // A named profile that does not exist names both files.
    let missing = ("AWS_PROFILE".to_string(), "nope".to_string());
    let out = augur_env(d, &[allow, endpoint, missing], &["-c", sql]);
    let err = stderr(&out);
    check(
        !out.status.success() && err.contains("[nope]") && err.contains("credentials"),
        || format!("missing profile: {err}"),
    )?;
    Ok(())
}

/// Per-table keys work with no credentials in the environment, and the secret appears
/// nowhere: not in catalog.json, SHOW CREATE TABLE, information_schema, any EXPLAIN, error
/// messages or the shell history.
fn table_options_never_leak() -> R {
    let moto = shared_iam()?;
    let dir = tempdir();
    let d = dir.path();
    let db_dir = d.join("db");
    let db = db_dir.to_str().unwrap_or_default();
    let no_keys = vec![("AWS_ALLOW_HTTP".to_string(), "true".to_string())];
    let options = format!(
        "OPTIONS ('aws.access_key_id' '{}', 'aws.secret_access_key' '{}', \
         'aws.endpoint' '{}', 'aws.region' 'us-east-1')",
        moto.key_id, moto.secret, moto.endpoint
    );
    let mut outputs = vec![];
    let mut run = |env: &[(String, String)], args: &[&str]| {
        let out = augur_env(d, env, args);
        outputs.push(format!("{}{}", stdout(&out), stderr(&out)));
        out
    };
    let out = run(
        &no_keys,
        &[
            db,
            "-c",
            &format!(
                "COPY (SELECT * FROM generate_transactions(300, 4)) TO 's3://opts/t.parquet' \
                 {options}"
            ),
            "-c",
            &format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://opts/' {options}"),
            "-c",
            "SELECT count(*) FROM t",
            "-c",
            "SHOW CREATE TABLE t",
            "-c",
            "SELECT * FROM information_schema.views",
            "-c",
            "SELECT * FROM information_schema.tables",
            "-c",
            "EXPLAIN SELECT * FROM t",
            "-c",
            "EXPLAIN VERBOSE SELECT * FROM t",
            "-c",
            "EXPLAIN ANALYZE SELECT count(*) FROM t",
            "-c",
            &format!(
                "EXPLAIN CREATE EXTERNAL TABLE u STORED AS PARQUET LOCATION 's3://opts/' {options}"
            ),
            "-c",
            &format!("EXPLAIN COPY t TO 's3://opts/copy.parquet' {options}"),
        ],
    );
    ok(&out)?;
    check(stdout(&out).contains("300"), || {
        format!("table with per-table keys: {}", stdout(&out))
    })?;
    // Bad statements that carry the secret: an unknown option, a syntax error, a typo'd
    // bucket (the store is set up, then the read fails).
    for bad in [
        format!(
            "CREATE EXTERNAL TABLE v STORED AS PARQUET LOCATION 's3://opts/' \
             OPTIONS ('aws.secret_access_key' '{}', 'aws.colour' 'red')",
            moto.secret
        ),
        format!("CREATE EXTERNAL TABLE w STORED AS PARQUET LOCATION 's3://opts/x/' {options} oops"),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 's3://no-such-bucket/x/' {options}"
        ),
    ] {
        let out = run(&no_keys, &[db, "-c", &bad]);
        check(!out.status.success(), || format!("should fail: {bad}"))?;
    }
    // The interactive shell's history, fed through a pty.
    shell_history(d, db, &options)?;
    // After a restart without any keys the table exists but cannot authenticate: the keys
    // were not kept (the error names the variables to set).
    let out = run(&no_keys, &[db, "-c", "SELECT count(*) FROM t"]);
    let err = stderr(&out);
    check(
        !out.status.success() && err.contains("AWS_ACCESS_KEY_ID"),
        || format!("restart without keys: {err}"),
    )?;
    // Opting in keeps them in secrets.json, readable by the owner only.
    let keep = options.replace("OPTIONS (", "OPTIONS ('aws.persist_credentials' 'true', ");
    let out = run(
        &no_keys,
        &[
            db,
            "-c",
            &format!(
                "CREATE OR REPLACE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://opts/' {keep}"
            ),
        ],
    );
    ok(&out)?;
    let out = run(&no_keys, &[db, "-c", "SELECT count(*) FROM t"]);
    check(stdout(&out).contains("300"), || {
        format!("persisted keys after restart: {}", stderr(&out))
    })?;
    let secrets = db_dir.join("secrets.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        check(mode & 0o077 == 0, || format!("secrets.json mode {mode:o}"))?;
    }
    let history = std::fs::read_to_string(d.join(".history")).unwrap_or_default();
    check(history.contains("aws.secret_access_key"), || {
        format!("the shell history should hold the statement: {history}")
    })?;
    let catalog = std::fs::read_to_string(db_dir.join("catalog.json")).unwrap_or_default();
    for (what, text) in outputs
        .iter()
        .map(|o| ("output", o))
        .chain([("catalog.json", &catalog), ("history", &history)])
    {
        for secret in [&moto.secret, &moto.key_id] {
            check(!text.contains(secret.as_str()), || {
                format!("secret found in {what}: {text}")
            })?;
        }
    }
    check(catalog.contains("aws.region"), || {
        format!("the stored definition keeps the non-secret options: {catalog}")
    })?;
    Ok(())
}

fn shell_history(dir: &Path, db: &str, options: &str) -> Result<(), String> {
    let mut command = Command::new(bin());
    command
        .arg(db)
        .env("HOME", dir)
        .env("AUGUR_HISTORY", dir.join(".history"))
        .env("AWS_ALLOW_HTTP", "true");
    let mut shell = rexpect::session::spawn_command(command, Some(30_000))
        .map_err(|e| format!("spawn shell: {e}"))?;
    shell.exp_string("augur> ").map_err(|e| e.to_string())?;
    // One line, so no typeahead is dropped while the first statement runs; the computed
    // marker shows both ran.
    shell
        .send_line(&format!(
            "CREATE EXTERNAL TABLE h STORED AS PARQUET LOCATION 's3://opts/' {options}; \
             SELECT 'created' || '-' || count(*) AS marker FROM h;"
        ))
        .map_err(|e| e.to_string())?;
    shell.exp_string("created-300").map_err(|e| e.to_string())?;
    shell.exp_string("augur> ").map_err(|e| e.to_string())?;
    shell.send_control('d').map_err(|e| e.to_string())?;
    shell.exp_eof().map_err(|e| e.to_string())?;
    Ok(())
}

/// What is wrong, the environment, the statement, and what the error must say.
type Case<'a> = (&'a str, Vec<(String, String)>, &'a str, &'a [&'a str]);

fn bad_credentials_and_locations() -> R {
    let moto = shared_iam()?;
    let dir = tempdir();
    let d = dir.path();
    ok(&augur_env(
        d,
        &moto.env(),
        &["-c", "COPY (SELECT 1 AS x) TO 's3://bad/x.parquet'"],
    ))?;
    let base = vec![
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint.clone()),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut env = base.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let mut cases: Vec<Case> = vec![
        (
            "no credentials",
            with(&[]),
            "SELECT * FROM 's3://bad/x.parquet'",
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"],
        ),
        (
            "wrong secret",
            with(&[
                ("AWS_ACCESS_KEY_ID", &moto.key_id),
                ("AWS_SECRET_ACCESS_KEY", "wrong-secret-value"),
            ]),
            "SELECT * FROM 's3://bad/x.parquet'",
            &["access denied", "AWS_SECRET_ACCESS_KEY"],
        ),
        (
            "access denied",
            with(&[
                ("AWS_ACCESS_KEY_ID", &moto.denied_key_id),
                ("AWS_SECRET_ACCESS_KEY", &moto.denied_secret),
            ]),
            "SELECT * FROM 's3://bad/x.parquet'",
            &["access denied"],
        ),
        (
            "http endpoint not allowed",
            vec![
                ("AWS_ENDPOINT_URL".to_string(), moto.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID".to_string(), moto.key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY".to_string(), moto.secret.clone()),
            ],
            "SELECT * FROM 's3://bad/x.parquet'",
            &["AWS_ALLOW_HTTP=true", "aws.allow_http"],
        ),
        (
            "unknown option",
            with(&[]),
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://bad/' \
             OPTIONS ('aws.regoin' 'us-east-1')",
            &["unknown option 'aws.regoin'", "aws.region"],
        ),
        (
            "key id without secret",
            with(&[("AWS_ACCESS_KEY_ID", &moto.key_id)]),
            "SELECT * FROM 's3://bad/x.parquet'",
            &["AWS_SECRET_ACCESS_KEY"],
        ),
        (
            "aws options on a local path",
            with(&[]),
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'testdata/x.csv' \
             OPTIONS ('aws.region' 'us-east-1')",
            &["s3:// locations"],
        ),
    ];
    // Moto's signature check mishandles '/' in list prefixes, which a missing bucket or
    // key leads to: those two cases run against the server without signature checks.
    let open = shared()?;
    ok(&augur_env(
        d,
        &open.env(),
        &["-c", "COPY (SELECT 1 AS x) TO 's3://bank/bad/x.parquet'"],
    ))?;
    cases.push((
        "missing bucket",
        open.env(),
        "SELECT * FROM 's3://no-such-bucket/x.parquet'",
        &["bucket does not exist", "no-such-bucket"],
    ));
    cases.push((
        "missing key",
        open.env(),
        "SELECT * FROM read_parquet('s3://bank/bad/missing.parquet')",
        &["missing.parquet"],
    ));
    for (what, env, sql, needles) in cases {
        let out = augur_env(d, &env, &["-c", sql]);
        let err = stderr(&out);
        check(!out.status.success(), || format!("{what}: should fail"))?;
        check(!err.contains("panicked"), || {
            format!("{what}: panicked: {err}")
        })?;
        for needle in needles {
            check(err.contains(needle), || {
                format!("{what}: error lacks '{needle}': {err}")
            })?;
        }
        for secret in [&moto.secret, &moto.denied_secret] {
            check(!err.contains(secret.as_str()), || {
                format!("{what}: secret in error: {err}")
            })?;
        }
    }
    Ok(())
}

/// A server that goes away after the table was created: the next read fails within
/// object_store's retry budget, with advice, instead of hanging.
fn server_killed() -> R {
    let moto = Moto::start(false, &["gone"])?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    run_all(
        d,
        &env,
        &[db],
        &[
            "COPY (SELECT * FROM generate_transactions(1000, 1)) TO 's3://gone/t.parquet'",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://gone/t.parquet'",
        ],
    )?;
    drop(moto);
    let started = std::time::Instant::now();
    let out = augur_env(d, &env, &[db, "-c", "SELECT count(*) FROM t"]);
    let err = stderr(&out);
    check(!out.status.success(), || {
        "read from a dead server succeeded".into()
    })?;
    check(err.contains("did not answer"), || {
        format!("dead server error: {err}")
    })?;
    // Not a timing assertion on speed: only that it does not hang for object_store's
    // default three-minute retry budget.
    check(started.elapsed().as_secs() < 120, || {
        format!("dead server took {:?}", started.elapsed())
    })?;
    Ok(())
}

/// A TCP proxy in front of the server that, once armed, cuts every response after
/// `limit` bytes and then accepts no more connections: the server dying mid-body.
struct CuttingProxy {
    endpoint: String,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: &str, limit: usize) -> Result<CuttingProxy, String> {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let target = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let armed = Arc::new(AtomicBool::new(false));
        let dead = Arc::new(AtomicBool::new(false));
        let (armed_in, dead_in) = (Arc::clone(&armed), Arc::clone(&dead));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if dead_in.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut c_read, mut s_write) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                });
                let (armed, dead) = (Arc::clone(&armed_in), Arc::clone(&dead_in));
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let (mut server, mut client) = (server, client);
                    let mut sent = 0usize;
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = server.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if armed.load(Ordering::SeqCst) && sent + n > limit {
                            let _ = client.write_all(&buf[..limit.saturating_sub(sent)]);
                            dead.store(true, Ordering::SeqCst);
                            break;
                        }
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        Ok(CuttingProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            armed,
        })
    }
}

/// The connection drops in the middle of a file's body and the server is gone: the query
/// fails with advice after object_store's retries, and does not hang.
fn connection_cut_mid_read() -> R {
    let moto = Moto::start(false, &["cut"])?;
    let proxy = CuttingProxy::start(&moto.endpoint, 256 * 1024)?;
    let dir = tempdir();
    let d = dir.path();
    let mut env = moto.env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    let db = d.join("db");
    let db = db.to_str().unwrap_or_default();
    run_all(
        d,
        &env,
        &[db],
        &[
            "COPY (SELECT * FROM generate_transactions(200000, 1)) TO 's3://cut/big.csv'",
            "CREATE EXTERNAL TABLE big STORED AS CSV LOCATION 's3://cut/big.csv'",
        ],
    )?;
    proxy.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = augur_env(d, &env, &[db, "-c", "SELECT sum(balance) FROM big"]);
    let err = stderr(&out);
    check(!out.status.success(), || {
        format!("read through a cut connection succeeded: {}", stdout(&out))
    })?;
    check(
        err.contains("did not answer") && !err.contains("panicked"),
        || format!("cut connection error: {err}"),
    )?;
    check(started.elapsed().as_secs() < 120, || {
        format!("cut connection took {:?}", started.elapsed())
    })?;
    Ok(())
}

/// `http(s)://` URLs read files from a plain web server.
fn http_urls() -> R {
    let mut server = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
        .current_dir(repo().join("testdata"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    if let Some(out) = server.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let dir = tempdir();
    let result = (|| -> Result<(), String> {
        let remote = value(
            dir.path(),
            &[],
            &[],
            &format!(
                "SELECT count(*), sum(balance) FROM 'http://127.0.0.1:{port}/transactions.csv'"
            ),
        )?;
        let local = value(
            &repo(),
            &[],
            &[],
            "SELECT count(*), sum(balance) FROM 'testdata/transactions.csv'",
        )?;
        check(remote == local, || {
            format!("http read {remote}, local {local}")
        })
    })();
    let _ = server.kill();
    let _ = server.wait();
    Ok(result?)
}

/// A Delta table on S3: created, written, changed and read back after a restart; two
/// processes inserting at once both commit (one retries on the other's version).
fn delta_on_s3() -> R {
    let moto = shared()?;
    let dir = tempdir();
    let d = dir.path();
    let env = moto.env();
    let create = "CREATE EXTERNAL TABLE dt (id BIGINT, who VARCHAR) STORED AS DELTA \
                  LOCATION 's3://bank/delta/dt/'";
    run_all(
        d,
        &env,
        &["db"],
        &[
            create,
            "INSERT INTO dt SELECT v, 'w' || v FROM generate_series(1, 100) AS g(v)",
            "DELETE FROM dt WHERE id > 90",
            "UPDATE dt SET who = 'x' WHERE id <= 10",
        ],
    )?;
    let got = value(
        d,
        &env,
        &["db"],
        "SELECT count(*), count(*) FILTER (WHERE who = 'x') FROM dt",
    )?;
    check(got == "90,10", || format!("after restart: {got}"))?;
    let got = value(
        d,
        &env,
        &[],
        "SELECT count(*) FROM delta_scan('s3://bank/delta/dt/', 1)",
    )?;
    check(got == "100", || {
        format!("version 1 through delta_scan: {got}")
    })?;
    // Two processes (in-memory databases, same table) insert five times each, at once.
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut args: Vec<String> = vec![
                "-c".into(),
                "CREATE EXTERNAL TABLE dt STORED AS DELTA LOCATION 's3://bank/delta/dt/'".into(),
            ];
            for i in 0..5 {
                args.push("-c".into());
                args.push(format!(
                    "INSERT INTO dt VALUES ({}, 'p{p}')",
                    1000 + p * 10 + i
                ));
            }
            let mut command = Command::new(bin());
            for (key, _) in std::env::vars() {
                if key.starts_with("AWS_") {
                    command.env_remove(key);
                }
            }
            command
                .args(&args)
                .current_dir(d)
                .env("HOME", d)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    for child in children {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        ok(&out)?;
    }
    let got = value(
        d,
        &env,
        &["db"],
        "SELECT count(*), count(DISTINCT who) FROM dt WHERE id >= 1000",
    )?;
    check(got == "10,2", || format!("concurrent inserts: {got}"))?;
    Ok(())
}
