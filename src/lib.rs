//! Augur: an embedded, single-binary analytics database with SQL on Apache DataFusion.
//!
//! Embedding: open a [`Database`] (a directory or memory), take a [`Session`], run SQL.
//!
//! ```no_run
//! # async fn demo() -> augur::Result<()> {
//! let db = augur::Database::in_memory().await?;
//! let session = db.session()?;
//! let batches = session.execute_to_end("SELECT 1 AS one").await?;
//! # Ok(()) }
//! ```

/// Persistent database directory: `catalog.json`, its commit protocol, stored tables.
pub mod catalog;
/// Command line: arguments, and dispatch to the shell or the script runner.
pub mod cli;
/// Scale-out on Apache Ballista, client side: the `augur.cluster` setting, the rule that ships
/// plans to a scheduler, the operator that runs them there, the codec of cluster processes.
pub mod cluster;
/// Settings a database opens with; human sizes such as `2GB`.
pub mod config;
/// `Database`, the embedding entry point.
pub mod database;
/// The boundary error type and the one mapping to SQLSTATE and exit codes.
pub mod error;
/// Machine learning in SQL: optimisers, models, preprocessing (DESIGN §5).
pub mod ml;
/// `augur scheduler` and `augur executor`: a Ballista cluster's processes with Augur inside.
pub mod nodes;
/// Notices a statement leaves for the user, shared by operators and front ends.
pub mod notices;
/// Logical optimizer rules added after DataFusion's own (semi-join and filtered-join
/// pushdown, magic sets, shared subplans) and the plan nodes they add.
pub mod optimizer;
/// Result writers for every output format.
pub mod output;
/// Statement splitting and our own statements (wrapping DataFusion's parser).
pub mod parser;
/// The one extension planner: physical operators for Augur's logical nodes.
pub mod planner;
/// The software-prefetch hint shared by the hot loops of operators and training.
pub mod prefetch;
/// Running scripts (`-f`, `-c`, stdin) statement by statement.
pub mod script;
/// `augur serve`: the Postgres wire protocol (psql, psycopg, JDBC, BI tools) over a database.
pub mod server;
/// Sessions: DataFusion context assembly and the one statement pipeline.
pub mod session;
/// The interactive shell: line editing, meta-commands, completion, progress.
pub mod shell;
/// Files outside the database: validated CSV/Parquet tables, `read_csv`, `read_parquet`, and
/// object stores (S3 and S3-compatible servers, HTTP) with their credentials.
pub mod storage;

pub use config::DatabaseConfig;
pub use database::Database;
pub use error::{AugurError, Result};
pub use output::Format;
pub use session::{QueryResult, Session};
