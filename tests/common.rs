//! Helpers shared by the integration tests: the built binary, temp dirs, a runtime.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_augur"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A multi-threaded runtime like the binary's (table functions plan with block_in_place).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(64 << 20)
        .enable_all()
        .build()
        .expect("test runtime")
}

/// Run `augur ARGS…` in the repository root with stdin closed; returns its output.
pub fn augur(args: &[&str]) -> Output {
    augur_in(&repo(), args, None)
}

/// Run `augur ARGS…` in `dir`, feeding `stdin` if given.
pub fn augur_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("AUGUR_HISTORY", dir.join(".test_history"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("augur binary runs");
    if let Some(text) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("augur finishes")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert success and return stdout.
pub fn ok(out: &Output) -> Result<String, String> {
    if out.status.success() {
        Ok(stdout(out))
    } else {
        Err(format!("augur failed ({}): {}", out.status, stderr(out)))
    }
}

/// Assert failure with `code` and a stderr containing every `needle`; return stderr.
pub fn fails(out: &Output, code: i32, needles: &[&str]) -> Result<String, String> {
    let err = stderr(out);
    if out.status.code() != Some(code) {
        return Err(format!(
            "expected exit {code}, got {:?}; stderr: {err}",
            out.status.code()
        ));
    }
    for n in needles {
        if !err.contains(n) {
            return Err(format!("stderr lacks '{n}': {err}"));
        }
    }
    if err.contains("panicked") {
        return Err(format!("process panicked: {err}"));
    }
    Ok(err)
}

pub fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("augur-test-")
        .tempdir()
        .expect("temp dir")
}

/// A small deterministic generator for kill delays (no dependency needed).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next delay in `0..max` milliseconds.
    pub fn next_ms(&mut self, max: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % max
    }
}
