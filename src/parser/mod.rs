//! Our side of statement parsing: splitting scripts into statements with their lines, and
//! (as our own statements arrive) recognising them by their first keywords before
//! DataFusion's `DFParser` sees the rest.

pub mod ml;
pub mod split;

pub use split::{SourceStatement, is_complete, is_meta, split_statements};

/// Longest statement text accepted: past this, planning time and memory grow without bound
/// for no realistic query (SQLSTATE 54001).
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;
