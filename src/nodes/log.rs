//! The cluster processes' log: Ballista's `log` records on stderr, one line each, at the level
//! `--log` asks for (warnings and errors by default: a lost executor, a failed task).

use std::io::Write;

struct Stderr {
    level: log::LevelFilter,
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Send `log` records at `level` or above to stderr (`off`, `error`, `warn`, `info`, `debug`).
pub fn init(level: &str) -> Result<(), String> {
    let level: log::LevelFilter = level
        .parse()
        .map_err(|_| format!("--log '{level}': expected off, error, warn, info, debug or trace"))?;
    log::set_boxed_logger(Box::new(Stderr { level })).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}
