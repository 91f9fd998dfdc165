//! Running statements from scripts (`-f`, `-c`, stdin) and the shell: execute, print, report
//! errors as `FILE:LINE: message`. Results go to stdout; timing and notes to stderr.

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use futures::future::LocalBoxFuture;

use crate::error::AugurError;
use crate::output::{Format, ResultWriter, TableStyle};
use crate::parser::split_statements;
use crate::session::Session;
use crate::shell::meta::{self, Action, Settings};

/// One source of statements, in command-line order.
#[derive(Debug, Clone)]
pub enum Input {
    Text { name: String, sql: String },
    File(PathBuf),
    Stdin,
}

#[derive(Debug, Clone)]
pub struct ScriptOptions {
    pub format: Format,
    pub keep_going: bool,
    pub quiet: bool,
}

/// Run the inputs in order; returns the exit code (0, or that of the first failure).
pub async fn run_inputs(session: &Session, inputs: &[Input], options: &ScriptOptions) -> i32 {
    let mut runner = Runner::new(session.clone(), options.format);
    runner.keep_going = options.keep_going;
    // `augur db -c "COPY t FROM STDIN" < rows.csv`, as with psql: a COPY without inline
    // rows reads standard input, unless the statements themselves come from there.
    if !inputs.iter().any(|i| matches!(i, Input::Stdin)) {
        runner.copy_rows = CopyRows::Stdin;
    }
    for input in inputs {
        let (name, text) = match input {
            Input::Text { name, sql } => (name.clone(), sql.clone()),
            Input::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => (path.display().to_string(), text),
                Err(e) => {
                    eprintln!("error: cannot read script '{}': {e}", path.display());
                    return 2;
                }
            },
            Input::Stdin => {
                let mut text = String::new();
                if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                    eprintln!("error: cannot read standard input: {e}");
                    return 2;
                }
                ("<stdin>".to_string(), text)
            }
        };
        if let Flow::Stop = runner.run_text(&name, &text).await {
            break;
        }
    }
    runner.exit_code
}

/// Where `COPY … FROM STDIN` reads its rows when none follow it in the script.
pub enum CopyRows {
    /// Nowhere: an error that says where COPY's rows can come from.
    Nowhere,
    /// The process's standard input, to its end (or a `\.` line in text and CSV).
    Stdin,
    /// Lines typed at a prompt (the shell), to a `\.` line or end of input.
    Typed(Box<dyn FnMut() -> TypedLine>),
}

/// One answer from the shell's prompt for COPY rows.
pub enum TypedLine {
    Line(String),
    End,
    Cancel,
}

/// Rows are sent to the load in pieces of about this size.
const COPY_CHUNK: usize = 1 << 20;

/// Whether to go on after a statement.
#[derive(Debug, PartialEq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Executes statements and meta-commands and prints their results; the shell and scripts share it.
pub struct Runner {
    pub session: Session,
    pub settings: Settings,
    pub style: TableStyle,
    pub keep_going: bool,
    /// Ctrl-C cancels the running statement instead of ending the process (the shell).
    pub interruptible: bool,
    /// Show a progress bar on stderr for statements running over a second.
    pub progress: bool,
    pub exit_code: i32,
    pub copy_rows: CopyRows,
    depth: usize,
}

impl Runner {
    pub fn new(session: Session, format: Format) -> Runner {
        Runner {
            session,
            settings: Settings {
                format,
                timer: false,
            },
            style: TableStyle::default(),
            keep_going: false,
            interruptible: false,
            progress: false,
            exit_code: 0,
            copy_rows: CopyRows::Nowhere,
            depth: 0,
        }
    }

    /// Run all statements in `text`, reporting errors as `name:line: message` (just the
    /// message when `name` is empty, as in the shell).
    pub fn run_text<'a>(&'a mut self, name: &'a str, text: &'a str) -> LocalBoxFuture<'a, Flow> {
        Box::pin(async move {
            // `rest` is what is left to run; `lines` how many lines of `text` precede it.
            let mut rest = text;
            let mut lines = 0;
            'text: loop {
                for statement in split_statements(rest) {
                    let line = statement.line + lines;
                    let copy = match statement.meta {
                        true => Ok(None),
                        false => crate::session::parse_copy_from(&statement.text),
                    };
                    let outcome = match copy {
                        // COPY … FROM STDIN in a script reads the lines after it, up to `\.`
                        // (what pg_dump writes); the statements after that are split anew.
                        Ok(Some(copy)) => {
                            let (data, after) = inline_data(rest, statement.end);
                            let outcome = match data {
                                Some(data) => self.copy_from_script(copy, data).await,
                                None => self.copy_from_elsewhere(copy).await,
                            };
                            if let Err(e) = outcome
                                && !self.report(name, line, e)
                            {
                                return Flow::Stop;
                            }
                            lines += rest[..after].matches('\n').count();
                            rest = &rest[after..];
                            continue 'text;
                        }
                        Ok(None) if statement.meta => self.meta(&statement.text).await,
                        Ok(None) => self.statement(&statement.text).await,
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Stop) => return Flow::Stop,
                        Err(e) => {
                            if !self.report(name, line, e) {
                                return Flow::Stop;
                            }
                        }
                    }
                }
                return Flow::Continue;
            }
        })
    }

    /// Print an error as `name:line: error: …`; whether to go on.
    fn report(&mut self, name: &str, line: usize, e: AugurError) -> bool {
        if name.is_empty() {
            eprintln!("error: {e}");
        } else {
            eprintln!("{name}:{line}: error: {e}");
        }
        if self.exit_code == 0 {
            self.exit_code = e.class().exit_code();
        }
        self.keep_going
    }

    /// Load a script's inline COPY data through the session, as the wire server does.
    async fn copy_from_script(
        &mut self,
        copy: crate::session::CopyFrom,
        data: &str,
    ) -> Result<(), AugurError> {
        let load = self.session.copy_in(copy).await?;
        load.send(bytes::Bytes::copy_from_slice(data.as_bytes()))
            .await;
        self.copy_finish(load).await
    }

    /// COPY rows from standard input or the shell's prompt, streamed to the load.
    async fn copy_from_elsewhere(
        &mut self,
        copy: crate::session::CopyFrom,
    ) -> Result<(), AugurError> {
        let binary = copy.binary();
        let mut lines: Box<dyn FnMut() -> TypedLine> = match &mut self.copy_rows {
            CopyRows::Nowhere => {
                return Err(AugurError::Usage(
                    "COPY … FROM STDIN: no data follows; in a script put the rows on the lines \
                     after the statement and end them with a line \\. — or run it with -c and \
                     the rows on standard input"
                        .into(),
                ));
            }
            CopyRows::Stdin => {
                let mut stdin = std::io::stdin().lock();
                let load = self.session.copy_in(copy).await?;
                let mut chunk = Vec::with_capacity(COPY_CHUNK);
                loop {
                    // Binary rows are read to the end; text and CSV stop at `\.` as psql does.
                    let read = match binary {
                        true => {
                            let mut piece = std::io::Read::take(&mut stdin, COPY_CHUNK as u64);
                            std::io::Read::read_to_end(&mut piece, &mut chunk)
                        }
                        false => std::io::BufRead::read_until(&mut stdin, b'\n', &mut chunk),
                    };
                    let ended = match read {
                        Ok(0) => true,
                        Ok(n) => {
                            let line = &chunk[chunk.len() - n..];
                            let end = !binary && line.trim_ascii_end() == b"\\.";
                            if end {
                                chunk.truncate(chunk.len() - n);
                            }
                            end
                        }
                        Err(e) => {
                            let e = load.fail(&format!("cannot read standard input: {e}")).await;
                            return Err(e);
                        }
                    };
                    if ended || chunk.len() >= COPY_CHUNK {
                        load.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                            .await;
                    }
                    if ended {
                        break;
                    }
                }
                return self.copy_finish(load).await;
            }
            CopyRows::Typed(_) if binary => {
                return Err(AugurError::Usage(
                    "COPY … FROM STDIN (FORMAT binary) cannot be typed; load the file with \
                     -c and standard input, or with read_parquet/read_csv"
                        .into(),
                ));
            }
            CopyRows::Typed(lines) => std::mem::replace(lines, Box::new(|| TypedLine::End)),
        };
        eprintln!(
            "Enter data to be copied followed by a newline.\n\
             End with a backslash and a period on a line by itself, or an EOF signal."
        );
        let load = self.session.copy_in(copy).await;
        let outcome = async {
            let load = load?;
            let mut chunk = String::new();
            loop {
                match lines() {
                    TypedLine::Line(line) if line.trim_end() == "\\." => break,
                    TypedLine::Line(line) => {
                        chunk.push_str(&line);
                        chunk.push('\n');
                        if chunk.len() >= COPY_CHUNK {
                            load.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                                .await;
                        }
                    }
                    TypedLine::End => break,
                    TypedLine::Cancel => return Err(load.fail("cancelled at the prompt").await),
                }
            }
            load.send(bytes::Bytes::from(chunk)).await;
            self.copy_finish(load).await
        }
        .await;
        self.copy_rows = CopyRows::Typed(lines);
        outcome
    }

    async fn copy_finish(&mut self, load: crate::session::CopyIn) -> Result<(), AugurError> {
        let rows = load
            .finish()
            .await
            .map_err(|e| self.session.explain_error(e))?;
        eprintln!("COPY {rows}");
        Ok(())
    }

    /// Execute one SQL statement and print its result.
    pub async fn statement(&mut self, sql: &str) -> Result<Flow, AugurError> {
        self.query(sql, None).await
    }

    async fn query(&mut self, sql: &str, empty_note: Option<&str>) -> Result<Flow, AugurError> {
        let started = Instant::now();
        let work = print_result(
            &self.session,
            sql,
            self.settings.format,
            self.style,
            empty_note,
            self.progress,
        );
        let outcome = if self.interruptible {
            tokio::select! {
                r = work => r,
                _ = tokio::signal::ctrl_c() => Err(AugurError::Cancelled),
            }
        } else {
            work.await
        };
        for notice in self.session.take_notices() {
            eprintln!("warning: {notice}");
        }
        if self.settings.timer {
            eprintln!("Run Time: {:.3} s", started.elapsed().as_secs_f64());
        }
        match outcome {
            Ok(rows_printed) => Ok(rows_printed),
            Err(e) => Err(self.session.explain_error(e)),
        }
    }

    /// Execute one meta-command.
    pub async fn meta(&mut self, line: &str) -> Result<Flow, AugurError> {
        match meta::interpret(line, &mut self.settings).map_err(AugurError::Usage)? {
            Action::Query { sql, empty } => self.query(&sql, empty.as_deref()).await,
            Action::Read(file) => {
                if self.depth > 16 {
                    return Err(AugurError::Usage(format!(
                        ".read {file}: files include each other too deeply"
                    )));
                }
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| AugurError::Usage(format!("cannot read '{file}': {e}")))?;
                self.depth += 1;
                let flow = self.run_text(&file, &text).await;
                self.depth -= 1;
                Ok(flow)
            }
            Action::Print(text) => {
                println!("{text}");
                Ok(Flow::Continue)
            }
            Action::Note(text) => {
                if !text.is_empty() {
                    eprintln!("{text}");
                }
                Ok(Flow::Continue)
            }
            Action::Quit => Ok(Flow::Stop),
        }
    }
}

/// The inline data of a COPY whose statement ends at `end` in `text`: from the next line up
/// to a line `\.` (or the end of the text), and the offset where the script goes on. `None`
/// when nothing follows at all (a COPY typed alone in the shell or given with -c).
fn inline_data(text: &str, end: usize) -> (Option<&str>, usize) {
    let start = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    let mut at = start;
    while at < text.len() {
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        if text[at..line_end].trim_end_matches('\r') == "\\." {
            return (Some(&text[start..at]), (line_end + 1).min(text.len()));
        }
        at = line_end + 1;
    }
    let data = &text[start..];
    (Some(data).filter(|d| !d.trim().is_empty()), text.len())
}

/// Run `sql` and stream its rows to stdout in `format`. A closed stdout (`| head`) ends quietly.
async fn print_result(
    session: &Session,
    sql: &str,
    format: Format,
    style: TableStyle,
    empty_note: Option<&str>,
    progress: bool,
) -> Result<Flow, AugurError> {
    let mut result = session.execute(sql).await?;
    let schema = result.schema();
    let bar = progress.then(|| crate::shell::progress::Progress::start(&result));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if schema.fields().is_empty() {
        // DDL: nothing to print, but wait for it to finish.
        while let Some(batch) = result.next().await {
            batch?;
        }
        return Ok(Flow::Continue);
    }
    let mut writer = ResultWriter::new(format, schema, style, &mut out);
    let mut rows = 0;
    let io_result: std::io::Result<()> = async {
        while let Some(batch) = result.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return Err(std::io::Error::other(e)),
            };
            rows += batch.num_rows();
            writer.write(&batch)?;
        }
        drop(bar);
        if rows == 0
            && let Some(note) = empty_note
        {
            eprintln!("{note}");
            return Ok(());
        }
        writer.finish()
    }
    .await;
    match io_result {
        Ok(()) => Ok(Flow::Continue),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Flow::Stop),
        Err(e) => match e.into_inner().map(|inner| inner.downcast::<AugurError>()) {
            Some(Ok(augur)) => Err(*augur),
            Some(Err(other)) => Err(AugurError::Io(std::io::Error::other(other))),
            None => Err(AugurError::Internal("output failed".into())),
        },
    }
}
