//! Who may connect and what they may touch: SCRAM passwords, TLS (and refusing to start
//! without a usable certificate), loopback-only without passwords, the file sandbox, and
//! read-only mode.

use std::process::Command;

use libtest_mimic::Trial;

use super::{R, Server, connect, describe, rows_of, sqlstate, text_rows};
use crate::common::{bin, check, runtime, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("server::scram_passwords", scram_passwords),
        Trial::test("server::tls_required_or_refused", tls),
        Trial::test("server::loopback_only_without_passwords", loopback_only),
        Trial::test("server::file_sandbox", file_sandbox),
        Trial::test("server::read_only", read_only),
        Trial::test("server::secrets_never_reach_clients", secrets),
    ]
}

fn scram_passwords() -> R {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("users"),
        "# name:password\nana:s3cret:with:colons\nbo:pw2\n",
    )
    .map_err(|e| e.to_string())?;
    let server = Server::start(dir.path(), &["--users-file", "users"])?;
    check(server.banner().contains("SCRAM-SHA-256"), || {
        server.banner()
    })?;
    runtime().block_on(async {
        let good = connect(&format!(
            "{} password=s3cret:with:colons",
            server.url("ana")
        ))
        .await?;
        let rows = text_rows(&good, "SELECT 1").await?;
        check(rows == ["1"], || format!("{rows:?}"))?;
        // The session is the authenticated user's, as PostgreSQL reports it.
        let who = text_rows(&good, "SELECT current_user || ',' || session_user").await?;
        check(who == ["ana,ana"], || format!("current_user: {who:?}"))?;
        for (user, password) in [
            ("ana", "wrong"),
            ("bo", "s3cret:with:colons"),
            ("nobody", "pw2"),
        ] {
            let url = format!("{} password={password}", server.url(user));
            let refused = tokio_postgres::connect(&url, tokio_postgres::NoTls).await;
            let message = match &refused {
                Err(e) => e.as_db_error().map(|d| d.message().to_string()),
                Ok(_) => None,
            };
            let code = sqlstate(refused);
            check(code == "28P01", || format!("{user}/{password}: {code}"))?;
            // Named as PostgreSQL names it: `password authentication failed for user "ana"`.
            let named = format!("for user \"{user}\"");
            check(
                message.as_deref().is_some_and(|m| m.contains(&named)),
                || format!("{user}: {message:?}"),
            )?;
        }
        Ok::<_, String>(())
    })?;
    // A password file for one user, and psql through PGPASSWORD.
    std::fs::write(dir.path().join("pw"), "hunter2\n").map_err(|e| e.to_string())?;
    let second = Server::start(dir.path(), &["--user", "carol", "--password-file", "pw"])?;
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &second.port.to_string(),
            "-U",
            "carol",
            "-d",
            "augur",
        ])
        .args(["-X", "-A", "-t", "-c", "SELECT 40 + 2"])
        .env("PGPASSWORD", "hunter2")
        .output()
        .map_err(|e| e.to_string())?;
    check(String::from_utf8_lossy(&out.stdout).trim() == "42", || {
        format!(
            "psql with password: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(())
}

fn tls() -> R {
    let dir = tempdir();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
        ])
        .current_dir(dir.path())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    check(made.status.success(), || {
        String::from_utf8_lossy(&made.stderr).into_owned()
    })?;
    let server = Server::start(
        dir.path(),
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
    )?;
    check(server.banner().contains("TLS on"), || server.banner())?;
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} dbname=augur sslmode=require connect_timeout=10",
            server.port
        ))
        .args(["-X", "-c", "\\conninfo", "-c", "SELECT 'over tls' AS s"])
        .output()
        .map_err(|e| e.to_string())?;
    let printed = String::from_utf8_lossy(&out.stdout);
    check(
        printed.contains("SSL connection") && printed.contains("over tls"),
        || {
            format!(
                "psql over TLS: {printed} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    )?;
    // A key that is not a key, a missing certificate: the server does not start at all.
    std::fs::write(dir.path().join("bad.pem"), "not a key\n").map_err(|e| e.to_string())?;
    for (cert, key, named) in [
        ("cert.pem", "bad.pem", "bad.pem"),
        ("missing.pem", "key.pem", "missing.pem"),
    ] {
        let out = Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ])
            .current_dir(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr);
        check(
            !out.status.success() && err.contains(named) && !err.contains("serving"),
            || format!("{cert}/{key}: status {:?}, stderr {err}", out.status),
        )?;
    }
    Ok(())
}

/// This machine's address on its first non-loopback interface, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn loopback_only() -> R {
    let dir = tempdir();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut banner = String::new();
    if let Some(stderr) = child.stderr.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(stderr).read_line(&mut banner);
    }
    let port: Option<u16> = banner
        .split("0.0.0.0:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok());
    let result = (|| {
        check(
            banner.contains("only connections from this machine"),
            || banner.clone(),
        )?;
        let port = port.ok_or_else(|| format!("no port in {banner}"))?;
        runtime().block_on(async {
            let local = connect(&format!("host=127.0.0.1 port={port} user=a dbname=augur")).await?;
            check(text_rows(&local, "SELECT 1").await? == ["1"], || {
                "loopback".into()
            })?;
            // From another address of this machine the connection is refused (28000).
            if let Some(ip) = outside_address() {
                let url = format!("host={ip} port={port} user=a dbname=augur connect_timeout=5");
                let code = sqlstate(tokio_postgres::connect(&url, tokio_postgres::NoTls).await);
                check(code == "28000", || format!("from {ip}: {code}"))?;
            }
            Ok::<_, String>(())
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result?;
    Ok(())
}

fn file_sandbox() -> R {
    let root = tempdir();
    let allowed = root.path().join("allowed");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&allowed).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    std::fs::write(allowed.join("in.csv"), "a,b\n1,2\n").map_err(|e| e.to_string())?;
    std::fs::write(outside.join("secret.csv"), "a,b\n7,8\n").map_err(|e| e.to_string())?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.join("secret.csv"), allowed.join("link.csv"))
        .map_err(|e| e.to_string())?;
    let db = root.path().join("db");
    let server = Server::start(
        &allowed,
        &[
            db.to_str().unwrap_or("db"),
            "--allow-dir",
            allowed.to_str().unwrap_or("."),
        ],
    )?;
    let secret = outside.join("secret.csv").display().to_string();
    let written = outside.join("written.csv");
    runtime().block_on(async {
        let client = server.connect().await?;
        // Inside: reading, a table, writing a file.
        let rows = text_rows(&client, "SELECT b FROM 'in.csv'").await?;
        check(rows == ["2"], || format!("allowed file: {rows:?}"))?;
        let inside = allowed.join("out.csv").display().to_string();
        text_rows(
            &client,
            &format!("COPY (SELECT 1 AS x) TO '{inside}' STORED AS CSV"),
        )
        .await?;
        check(allowed.join("out.csv").exists(), || {
            "COPY inside wrote nothing".into()
        })?;
        text_rows(&client, "CREATE TABLE kept AS SELECT 1 AS x").await?;
        let refused = [
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'".to_string(),
            format!("SELECT * FROM '{secret}'"),
            "SELECT * FROM read_csv('../outside/secret.csv')".to_string(),
            "SELECT * FROM 'link.csv'".to_string(),
            format!("SELECT * FROM 'file://{secret}'"),
            format!("SELECT * FROM read_parquet('{}')", outside.display()),
            format!(
                "COPY (SELECT 1 AS x) TO '{}' STORED AS CSV",
                written.display()
            ),
            "COPY (SELECT 1 AS x) TO '/tmp/' STORED AS CSV".to_string(),
        ];
        for sql in &refused {
            let messages = client.simple_query(sql).await;
            let message = match &messages {
                Err(e) => describe(e),
                Ok(_) => String::new(),
            };
            let code = sqlstate(messages);
            check(code == "42501" && !message.contains("7,8"), || {
                format!("{sql}: {code} {message}")
            })?;
            let extended = sqlstate(client.query(sql.as_str(), &[]).await);
            check(extended == "42501", || {
                format!("{sql} (extended): {extended}")
            })?;
        }
        check(!written.exists(), || "a refused COPY wrote its file".into())?;
        Ok::<_, String>(())
    })?;
    Ok(())
}

fn read_only() -> R {
    let dir = tempdir();
    let db = dir.path().join("db");
    let setup = crate::common::augur_in(
        dir.path(),
        &[
            db.to_str().unwrap_or("db"),
            "-c",
            "CREATE TABLE t AS SELECT 1 AS x",
        ],
        None,
    );
    crate::common::ok(&setup)?;
    let server = Server::start(dir.path(), &[db.to_str().unwrap_or("db"), "--read-only"])?;
    runtime().block_on(async {
        let client = server.connect().await?;
        check(
            text_rows(&client, "SELECT x FROM t").await? == ["1"],
            || "read".into(),
        )?;
        for sql in [
            "CREATE TABLE u AS SELECT 1",
            "INSERT INTO t VALUES (2)",
            "DROP TABLE t",
            "CREATE VIEW v AS SELECT 1",
            "COPY t TO 'x.csv' STORED AS CSV",
            "CREATE FUNCTION f(a INT) RETURNS INT RETURN a + 1",
            "TRAIN MODEL m USING linear_regression PREDICT x AS SELECT x FROM t",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (3)",
            "ANALYZE t",
            "SELECT * FROM analyze_table('t', '')",
            "VACUUM t",
            "SELECT * FROM delta_optimize('t', '')",
        ] {
            let code = sqlstate(client.simple_query(sql).await);
            check(code == "42501", || format!("{sql}: {code}"))?;
        }
        check(
            text_rows(&client, "SELECT count(*) FROM t").await? == ["1"],
            || "a refused write changed the table".into(),
        )?;
        Ok::<_, String>(())
    })?;
    Ok(())
}

/// S3 keys given in statements: never in an error, a result, EXPLAIN, or the server's log.
fn secrets() -> R {
    let dir = tempdir();
    let server = Server::start(dir.path(), &["db"])?;
    const SECRET: &str = "CanarySecretKey0123456789";
    let options = format!(
        "OPTIONS ('aws.access_key_id' 'AKIACANARY', 'aws.secret_access_key' '{SECRET}', \
         'aws.endpoint' 'http://127.0.0.1:9', 'aws.allow_http' 'true', 'aws.region' 'us-east-1')"
    );
    let statements = [
        format!(
            "CREATE EXTERNAL TABLE leak STORED AS PARQUET LOCATION 's3://bucket/x.parquet' {options}"
        ),
        format!("COPY (SELECT 1 AS x) TO 's3://bucket/out.csv' STORED AS CSV {options}"),
        format!("EXPLAIN COPY (SELECT 1 AS x) TO 's3://bucket/out.csv' STORED AS CSV {options}"),
        format!(
            "CREATE EXTERNAL TABLE broken STORED AS PARQUET LOCATION 's3://bucket/x.parquet' OPTIONS ('aws.secret_access_key' '{SECRET}', 'aws.nonsense' 'x')"
        ),
    ];
    runtime().block_on(async {
        let client = server.connect().await?;
        for sql in &statements {
            for extended in [false, true] {
                let seen = if extended {
                    match client.query(sql.as_str(), &[]).await {
                        Ok(rows) => rows
                            .iter()
                            .map(|r| format!("{r:?}{:?}", r.try_get::<_, String>(0).ok()))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        Err(e) => describe(&e) + &format!("{e:?}"),
                    }
                } else {
                    match client.simple_query(sql).await {
                        Ok(messages) => rows_of(&messages).join("\n"),
                        Err(e) => describe(&e) + &format!("{e:?}"),
                    }
                };
                check(!seen.contains(SECRET), || {
                    format!("the secret reached the client: {seen}")
                })?;
            }
        }
        Ok::<_, String>(())
    })?;
    let log = server
        .stderr_lines
        .lock()
        .map(|l| l.join("\n"))
        .unwrap_or_default();
    check(!log.contains(SECRET), || {
        format!("the secret is in the server log: {log}")
    })?;
    Ok(())
}
