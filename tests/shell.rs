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
        .env("TERM", "dumb");
    let mut sh = rexpect::session::spawn_command(cmd, Some(30_000)).map_err(|e| e.to_string())?;
    let e = |e: rexpect::error::Error| e.to_string();
    sh.exp_string("augur> ").map_err(e)?;
    // A statement over several lines runs when the ';' arrives.
    sh.send_line("CREATE TABLE shell_t AS").map_err(e)?;
    sh.send_line("  SELECT 6 * 7 AS answer;").map_err(e)?;
    sh.exp_string("augur> ").map_err(e)?;
    sh.send_line("SELECT answer FROM shell_t;").map_err(e)?;
    sh.exp_string("42").map_err(e)?;
    sh.exp_string("1 row").map_err(e)?;
    // Meta-commands are SQL over information_schema.
    sh.send_line(".tables").map_err(e)?;
    sh.exp_string("shell_t").map_err(e)?;
    sh.send_line("\\d shell_t").map_err(e)?;
    sh.exp_string("answer").map_err(e)?;
    sh.exp_string("Int64").map_err(e)?;
    sh.send_line(".mode csv").map_err(e)?;
    sh.send_line("SELECT 'x' AS mode_check;").map_err(e)?;
    sh.exp_string("mode_check").map_err(e)?;
    sh.send_line(".mode table").map_err(e)?;
    // Ctrl-C cancels a long query and the shell keeps going.
    sh.send_line("SELECT count(*) FROM generate_series(1, 50000000000) AS t(v) WHERE v % 7 = 3;")
        .map_err(e)?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    sh.send_control('c').map_err(e)?;
    sh.exp_string("cancelled").map_err(e)?;
    sh.send_line("SELECT 'still alive' AS status;").map_err(e)?;
    sh.exp_string("still alive").map_err(e)?;
    // Errors are reported and the shell lives on.
    sh.send_line("SELECT * FROM shell_x;").map_err(e)?;
    sh.exp_string("did you mean 'shell_t'").map_err(e)?;
    // Ctrl-D leaves.
    sh.send_control('d').map_err(e)?;
    sh.exp_eof().map_err(e)?;
    let saved = std::fs::read_to_string(&history).map_err(|e| e.to_string())?;
    check(saved.contains("SELECT answer FROM shell_t;"), || {
        format!("history {saved:?}")
    })?;
    Ok(())
}
