//! The interactive shell through a pseudo-terminal: multi-line input, meta-commands,
//! Ctrl-C cancelling a long query while the shell lives on, COPY rows typed at a prompt,
//! history, Ctrl-D.

use std::process::Command;

use libtest_mimic::Trial;

use crate::common::{bin, check, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("shell::interactive_session", interactive_session),
        Trial::test("shell::ctrl_c_stops_training", ctrl_c_stops_training),
        Trial::test(
            "shell::ctrl_c_stops_tree_training",
            ctrl_c_stops_tree_training,
        ),
    ]
}

type R = Result<(), libtest_mimic::Failed>;

fn interactive_session() -> R {
    let dir = tempdir();
    let history = dir.path().join("history");
    let mut cmd = Command::new(bin());
    cmd.arg(dir.path().join("db"))
        .arg("--history")
        .arg(&history)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut sh = rexpect::session::spawn_command(cmd, Some(30_000)).map_err(|e| e.to_string())?;
    let e = |e: rexpect::error::Error| e.to_string();
    // Typed input waits for the prompt, as a person's does (raw mode drops typeahead).
    let ask = |sh: &mut rexpect::session::PtySession, line: &str| -> Result<(), String> {
        sh.exp_string("augur> ").map_err(e)?;
        sh.send_line(line).map_err(e)?;
        Ok(())
    };
    // A statement over several lines runs when the ';' arrives.
    ask(&mut sh, "CREATE TABLE shell_t AS")?;
    sh.send_line("  SELECT 6 * 7 AS answer;").map_err(e)?;
    ask(&mut sh, "SELECT answer FROM shell_t;")?;
    sh.exp_string("42").map_err(e)?;
    sh.exp_string("1 row").map_err(e)?;
    // Meta-commands are SQL over information_schema.
    ask(&mut sh, ".tables")?;
    sh.exp_string("shell_t").map_err(e)?;
    ask(&mut sh, "\\d shell_t")?;
    sh.exp_string("answer").map_err(e)?;
    sh.exp_string("Int64").map_err(e)?;
    ask(&mut sh, ".mode csv")?;
    ask(&mut sh, "SELECT 'x' AS mode_check;")?;
    sh.exp_string("mode_check\r\nx\r\n").map_err(e)?;
    ask(&mut sh, ".mode table")?;
    // COPY … FROM STDIN reads rows typed at a `>> ` prompt up to `\.`, as psql does; Ctrl-C
    // there abandons the COPY and stores nothing.
    ask(&mut sh, "CREATE TABLE typed (id INT, name TEXT);")?;
    ask(&mut sh, "COPY typed FROM STDIN (FORMAT csv);")?;
    sh.exp_string("End with a backslash and a period")
        .map_err(e)?;
    for row in ["1,ada", "2,\"semi; colon\"", "\\."] {
        sh.exp_string(">> ").map_err(e)?;
        sh.send_line(row).map_err(e)?;
    }
    sh.exp_string("COPY 2").map_err(e)?;
    ask(&mut sh, "COPY typed FROM STDIN (FORMAT csv);")?;
    sh.exp_string(">> ").map_err(e)?;
    sh.send_line("3,lost").map_err(e)?;
    sh.exp_string(">> ").map_err(e)?;
    sh.send_control('c').map_err(e)?;
    sh.exp_string("cancelled").map_err(e)?;
    ask(
        &mut sh,
        "SELECT string_agg(name, '|' ORDER BY id) AS names FROM typed;",
    )?;
    sh.exp_string("ada|semi; colon").map_err(e)?;
    sh.exp_string("1 row").map_err(e)?;
    // Ctrl-C cancels a long query and the shell keeps going.
    ask(
        &mut sh,
        "SELECT count(*) FROM generate_series(1, 50000000000) AS t(v) WHERE v % 7 = 3;",
    )?;
    // Past a second the progress bar shows on stderr (the pty), then Ctrl-C stops the query.
    sh.exp_string("(Ctrl-C cancels)").map_err(e)?;
    sh.send_control('c').map_err(e)?;
    sh.exp_string("cancelled").map_err(e)?;
    ask(&mut sh, "SELECT 'still alive' AS status;")?;
    sh.exp_string("still alive").map_err(e)?;
    sh.exp_string("1 row").map_err(e)?;
    // Errors are reported and the shell lives on.
    ask(&mut sh, "SELECT * FROM shell_x;")?;
    sh.exp_string("did you mean 'shell_t'").map_err(e)?;
    sh.exp_string("augur> ").map_err(e)?;
    // Ctrl-D leaves.
    sh.send_control('d').map_err(e)?;
    sh.exp_eof().map_err(e)?;
    let saved = std::fs::read_to_string(&history).map_err(|e| e.to_string())?;
    check(saved.contains("SELECT answer FROM shell_t;"), || {
        format!("history {saved:?}")
    })?;
    Ok(())
}

/// The process whose command line contains `marker` (our temp dir is unique).
fn pid_with_argument(marker: &str) -> Result<i32, String> {
    for entry in std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            return Ok(pid);
        }
    }
    Err(format!("no process with {marker}"))
}

/// CPU time (user + system) of a process, in clock ticks, from /proc.
fn cpu_ticks(pid: i32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(field(11) + field(12))
}

/// Ctrl-C during TRAIN MODEL: the progress bar shows iterations and loss, the statement is
/// cancelled, the optimiser stops (the process goes idle), and no model version is stored.
fn ctrl_c_stops_training() -> R {
    // Linearly separable and unregularised: the coefficients grow for ~50 iterations, about
    // 12 s uncancelled in the test build, so the cancel lands mid-training. Any iteration
    // will do: the bar redraws every 100 ms and may skip the first.
    cancel_training(
        "TRAIN MODEL slow USING logistic_regression PREDICT y WITH (max_iter = 100000000, tol = 0) AS SELECT v, sin(v) AS a, \
         cos(v) AS b, sin(v * 1.7) AS c, cos(v * 0.3) AS d, (v % 13) AS e, CASE WHEN sin(v) + 0.3 * cos(v * 0.3) > 0.1 \
         THEN 1 ELSE 0 END AS y FROM generate_series(1, 3000000) AS t(v);",
        "training: iteration ",
    )
}

/// The same for boosted trees: the bar counts trees and shows the validation metric, and the
/// cancel stops the tree being grown.
fn ctrl_c_stops_tree_training() -> R {
    cancel_training(
        "TRAIN MODEL slow USING boosted_trees PREDICT y WITH (num_iterations = 100000, num_leaves = 255, \
         split = 0.2) AS SELECT sin(v) AS a, cos(v * 0.7) AS b, (v % 97) AS c, v % 13 AS d, \
         CASE WHEN sin(v) + 0.3 * cos(v * 0.3) > 0.1 THEN 1 ELSE 0 END AS y FROM generate_series(1, 1000000) AS t(v);",
        "training: tree ",
    )
}

fn cancel_training(statement: &str, progress: &str) -> R {
    let dir = tempdir();
    let mut cmd = Command::new(bin());
    cmd.arg(dir.path().join("db"))
        .arg("--history")
        .arg(dir.path().join("h"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut sh = rexpect::session::spawn_command(cmd, Some(60_000)).map_err(|e| e.to_string())?;
    let e = |e: rexpect::error::Error| e.to_string();
    sh.exp_string("augur> ").map_err(e)?;
    sh.send_line(statement).map_err(e)?;
    sh.exp_string(progress).map_err(e)?;
    sh.send_control('c').map_err(e)?;
    sh.exp_string("cancelled").map_err(e)?;
    let pid = pid_with_argument(&dir.path().join("db").to_string_lossy())?;
    // Let a running iteration finish, then the process must be idle.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let before = cpu_ticks(pid)?;
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let used = cpu_ticks(pid)? - before;
    check(used < 20, || {
        format!("still busy after cancel: {used} ticks of CPU in 2 s")
    })?;
    sh.send_line("SHOW MODELS;").map_err(e)?;
    sh.exp_string("0 rows").map_err(e)?;
    sh.send_control('d').map_err(e)?;
    sh.exp_eof().map_err(e)?;
    Ok(())
}
