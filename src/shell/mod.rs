//! The interactive shell: rustyline editing with history, completion and highlighting;
//! multi-line statements until `;`; meta-commands; Ctrl-C cancels the running statement;
//! `COPY … FROM STDIN` reads rows typed at a `>> ` prompt.

pub mod helper;
pub mod meta;
pub mod progress;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::rc::Rc;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

use crate::output::{Format, TableStyle};
use crate::script::{CopyRows, Flow, Runner, TypedLine};
use crate::session::Session;
use helper::ShellHelper;

#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub format: Format,
    pub quiet: bool,
    pub history: Option<PathBuf>,
}

/// Where history is kept: `--history`, else `$AUGUR_HISTORY`, else `~/.augur_history`.
fn history_path(option: Option<PathBuf>) -> Option<PathBuf> {
    option
        .or_else(|| std::env::var_os("AUGUR_HISTORY").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".augur_history")))
}

/// Run the shell until `.quit` or Ctrl-D; returns the exit code.
pub async fn run(session: Session, options: ShellOptions) -> i32 {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000);
    let mut editor: Editor<ShellHelper, DefaultHistory> =
        match config.map(|c| c.build()).and_then(Editor::with_config) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: cannot start the line editor: {e}");
                return 3;
            }
        };
    editor.set_helper(Some(ShellHelper::new(session.clone(), color)));
    let history = history_path(options.history);
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    // Shared with the prompt that reads COPY … FROM STDIN rows between statements.
    let editor = Rc::new(RefCell::new(editor));
    if !options.quiet {
        eprintln!(
            "Augur {} — {}. Enter .help for commands, end statements with ';'.",
            env!("CARGO_PKG_VERSION"),
            session.database().describe()
        );
    }
    let mut runner = Runner::new(session, options.format);
    runner.keep_going = true;
    runner.interruptible = true;
    runner.progress = !options.quiet;
    runner.copy_rows = CopyRows::Typed(Box::new(typed_rows(Rc::clone(&editor))));
    runner.style = TableStyle {
        width: terminal_width(),
        ..TableStyle::default()
    };
    loop {
        let read = editor.borrow_mut().readline("augur> ");
        let line = match read {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        {
            let mut editor = editor.borrow_mut();
            let _ = editor.add_history_entry(crate::session::Session::redact_sql(&line));
            if let Some(path) = &history {
                let _ = editor.save_history(path);
            }
        }
        runner.style.width = terminal_width();
        if runner.run_text("", &line).await == Flow::Stop {
            break;
        }
    }
    0
}

/// COPY … FROM STDIN's rows typed at a `>> ` prompt, as psql reads them: Ctrl-D ends
/// them, Ctrl-C abandons the COPY.
fn typed_rows(
    editor: Rc<RefCell<Editor<ShellHelper, DefaultHistory>>>,
) -> impl FnMut() -> TypedLine {
    move || {
        let mut editor = editor.borrow_mut();
        if let Some(helper) = editor.helper_mut() {
            helper.typing_rows(true);
        }
        let read = editor.readline(">> ");
        if let Some(helper) = editor.helper_mut() {
            helper.typing_rows(false);
        }
        match read {
            Ok(line) => TypedLine::Line(line),
            Err(ReadlineError::Interrupted) => TypedLine::Cancel,
            Err(_) => TypedLine::End,
        }
    }
}

fn terminal_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // A pty that reports no size says 0: draw at natural width then.
    comfy_table::Table::new().width().filter(|w| *w >= 20)
}
