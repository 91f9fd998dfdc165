//! Settings a database is opened with, and parsing of human sizes such as `2GB`.

use std::path::PathBuf;

use crate::error::{AugurError, Result};

/// The PostgreSQL version Augur speaks as (`server_version`, `version()`): clients pick
/// their SQL by it, and a Postgres 16 is what they can talk to.
pub const POSTGRES_VERSION: &str = "16.6";
/// `server_version` as a client sees it: the Postgres version with Augur named inside.
pub const SERVER_VERSION: &str = concat!("16.6 (Augur ", env!("CARGO_PKG_VERSION"), ")");
pub const SERVER_VERSION_NUM: &str = "160006";

/// `version()` as PostgreSQL prints it (`PostgreSQL 16.6 on x86_64-pc-linux-gnu, compiled
/// by …, 64-bit`): clients such as SQLAlchemy read the version from its first two words.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (Augur {}) on {}-pc-{}-gnu, compiled by rustc, {}-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        usize::BITS
    )
}

/// How to open a database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseConfig {
    /// The database directory; `None` for an in-memory database.
    pub path: Option<PathBuf>,
    /// Bytes that queries and in-memory tables may use; `None`: 80% of physical memory.
    pub memory_limit: Option<usize>,
    /// Partitions (threads) per query; `None`: the number of cores.
    pub target_partitions: Option<usize>,
    /// Files a stored table may have before an INSERT compacts it; `None`: 100, 0: never.
    pub auto_compact_files: Option<usize>,
    /// The cluster sessions run queries on (`df://HOST:PORT`, `SET augur.cluster`); `None`:
    /// this process.
    pub cluster: Option<String>,
}

/// `--memory-limit`'s parser for clap: [`parse_size`] with the message as the error.
pub fn size_arg(text: &str) -> std::result::Result<usize, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// Parse `2GB`, `512MiB`, `1.5G`, `1000000` (bytes) or `50%` (of physical memory).
pub fn parse_size(text: &str) -> Result<usize> {
    let t = text.trim();
    let bad = || {
        AugurError::Usage(format!(
            "invalid size '{text}': use a number with a unit, such as 512MB, 2GB, 1.5GiB, or a \
             share of memory such as 50%"
        ))
    };
    if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct.trim().parse().map_err(|_| bad())?;
        if p.is_nan() || p <= 0.0 || p > 100.0 {
            return Err(bad());
        }
        return Ok((physical_memory() as f64 * p / 100.0) as usize);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if bytes.is_nan() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as usize)
}

/// Human form of a byte count, e.g. `1.5 GiB`.
pub fn format_size(bytes: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Physical memory in bytes (Linux `/proc/meminfo`; 8 GiB where it cannot be read).
pub fn physical_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(8 << 30)
}

/// The default memory limit: 80% of physical memory, the share DuckDB also takes.
pub fn default_memory_limit() -> usize {
    physical_memory() / 10 * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1GB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("150%").is_err());
    }
}
