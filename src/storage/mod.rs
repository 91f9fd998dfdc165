//! Where data lives outside the database directory: local files (validated) and object stores.

pub mod aws_profile;
pub mod copy_format;
pub mod files;
pub mod memory_store;
pub mod object_stores;
pub mod sandbox;
pub mod validate;

pub use files::{GuardedTableFactory, GuardedUrlFactory, ReadFiles};
