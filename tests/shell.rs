//! The interactive shell through a pseudo-terminal: multi-line input, meta-commands,
//! Ctrl-C cancelling a long query while the shell lives on, history, Ctrl-D.

use std::process::Command;

use libtest_mimic::Trial;

use crate::common::{bin, check, tempdir};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "shell::interactive_session",
        interactive_session,
    )]
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
