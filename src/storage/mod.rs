//! Where data lives outside the database directory: local files (validated), later object stores.

pub mod files;
pub mod validate;

pub use files::{GuardedTableFactory, GuardedUrlFactory, ReadFiles};
