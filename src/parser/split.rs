//! Splitting SQL text into statements at top-level semicolons, remembering each one's line.

/// One statement's text and the 1-based line where it starts in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatement {
    pub text: String,
    pub line: usize,
    /// A shell meta-command (`.tables`, `\\d t`): one line, no semicolon needed.
    pub meta: bool,
    /// Byte offset just past the statement (after its semicolon) in the input: where the
    /// inline data of a `COPY … FROM STDIN` begins.
    pub end: usize,
}

/// Split `sql` at semicolons outside quotes and comments. Text after the last semicolon is a
/// final statement (scripts need not end with `;`). Blank and comment-only pieces are dropped.
pub fn split_statements(sql: &str) -> Vec<SourceStatement> {
    let mut out = vec![];
    let mut scan = Scanner::default();
    let mut start = 0;
    let mut start_line = 1;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A meta-command starts where a statement would and runs to the end of its line.
        if scan.mode == Mode::Code
            && (bytes[i] == b'.' || bytes[i] == b'\\')
            && sql[start..i].trim().is_empty()
            && is_comment_free(&sql[start..i])
        {
            let end = sql[i..].find('\n').map(|n| i + n).unwrap_or(sql.len());
            let line = scan.line;
            out.push(SourceStatement {
                text: sql[i..end].trim().to_string(),
                line,
                meta: true,
                end,
            });
            i = end;
            start = end;
            start_line = scan.line;
            continue;
        }
        let step = scan.step(bytes, i);
        if step.semicolon {
            push(&mut out, &sql[start..i], start_line, i + 1);
            start = i + 1;
            start_line = scan.line;
        }
        i += step.advance;
    }
    push(&mut out, &sql[start..], start_line, sql.len());
    out
}

fn is_comment_free(piece: &str) -> bool {
    !piece.contains("--") && !piece.contains("/*")
}

/// True when `text` is a meta-command (`.tables`, `\\dt`) rather than SQL.
pub fn is_meta(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('.') || t.starts_with('\\')
}

/// True when `text` ends with a semicolon outside quotes and comments: the shell's
/// signal that a multi-line statement is complete.
pub fn is_complete(text: &str) -> bool {
    let mut scan = Scanner::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut last_semicolon_end = None;
    let mut content_after = false;
    while i < bytes.len() {
        let step = scan.step(bytes, i);
        if step.semicolon {
            last_semicolon_end = Some(i + 1);
            content_after = false;
        } else if step.code && !bytes[i].is_ascii_whitespace() {
            content_after = true;
        }
        i += step.advance;
    }
    last_semicolon_end.is_some()
        && !content_after
        && matches!(scan.mode, Mode::Code | Mode::LineComment)
}

fn push(out: &mut Vec<SourceStatement>, piece: &str, line: usize, end: usize) {
    // Leading blank lines and comments shift the reported line to the first real token.
    let mut scan = Scanner {
        line,
        ..Default::default()
    };
    let bytes = piece.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let step = scan.step(bytes, i);
        if step.code && !bytes[i].is_ascii_whitespace() {
            let first_line = scan.line_at_start;
            out.push(SourceStatement {
                text: piece.trim().to_string(),
                line: first_line,
                meta: false,
                end,
            });
            return;
        }
        i += step.advance;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Mode {
    #[default]
    Code,
    Single,
    Double,
    LineComment,
    BlockComment,
}

#[derive(Debug)]
struct Scanner {
    mode: Mode,
    line: usize,
    line_at_start: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            mode: Mode::Code,
            line: 1,
            line_at_start: 1,
        }
    }
}

struct Step {
    advance: usize,
    semicolon: bool,
    /// The byte at this position is SQL code (not inside a comment).
    code: bool,
}

impl Scanner {
    fn step(&mut self, b: &[u8], i: usize) -> Step {
        self.line_at_start = self.line;
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'\n' {
            self.line += 1;
        }
        let mut step = Step {
            advance: 1,
            semicolon: false,
            code: false,
        };
        match self.mode {
            Mode::Code => match (c, next) {
                (b'-', Some(b'-')) => {
                    self.mode = Mode::LineComment;
                    step.advance = 2;
                }
                (b'/', Some(b'*')) => {
                    self.mode = Mode::BlockComment;
                    step.advance = 2;
                }
                (b'\'', _) => {
                    self.mode = Mode::Single;
                    step.code = true;
                }
                (b'"', _) => {
                    self.mode = Mode::Double;
                    step.code = true;
                }
                (b';', _) => step.semicolon = true,
                _ => step.code = true,
            },
            Mode::Single | Mode::Double => {
                step.code = true;
                let quote = if self.mode == Mode::Single {
                    b'\''
                } else {
                    b'"'
                };
                if c == quote {
                    if next == Some(quote) {
                        step.advance = 2;
                    } else {
                        self.mode = Mode::Code;
                    }
                }
            }
            Mode::LineComment => {
                if c == b'\n' {
                    self.mode = Mode::Code;
                }
            }
            Mode::BlockComment => {
                if c == b'*' && next == Some(b'/') {
                    self.mode = Mode::Code;
                    step.advance = 2;
                }
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_with_lines() {
        let s =
            split_statements("SELECT 1;\n-- note; here\nSELECT ';' AS x;\n\n/* a;\nb */ SELECT 2");
        let got: Vec<_> = s.iter().map(|s| (s.text.as_str(), s.line)).collect();
        assert!(s.iter().all(|s| !s.meta));
        assert_eq!(
            got,
            vec![
                ("SELECT 1", 1),
                ("-- note; here\nSELECT ';' AS x", 3),
                ("/* a;\nb */ SELECT 2", 6)
            ]
        );
    }

    #[test]
    fn meta_commands_end_at_the_line() {
        let s = split_statements(".mode csv\nSELECT 1;\n\\d t\nSELECT\n 2;");
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.text.as_str(), s.line, s.meta))
            .collect();
        assert_eq!(
            got,
            vec![
                (".mode csv", 1, true),
                ("SELECT 1", 2, false),
                ("\\d t", 3, true),
                ("SELECT\n 2", 4, false)
            ]
        );
    }

    #[test]
    fn completeness_ignores_quoted_semicolons() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- trailing comment"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1; SELECT"));
    }
}
