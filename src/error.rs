//! The crate's boundary error type, and the one table that maps errors to SQLSTATE and exit codes.

use datafusion::error::DataFusionError;

/// Every error that leaves the library. Inside plans and UDFs we use `DataFusionError`;
/// it is converted here, at the boundary, once.
#[derive(Debug, thiserror::Error)]
pub enum AugurError {
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database directory is unusable (locked, corrupt catalog, unwritable).
    #[error("{0}")]
    Database(String),
    /// A usage mistake: bad option, bad argument, unknown meta-command.
    #[error("{0}")]
    Usage(String),
    /// The statement is too large or too deeply nested to plan safely.
    #[error("statement too complex: {0}")]
    TooComplex(String),
    /// Another error, with advice on what to do about it.
    #[error("{source}\nhint: {hint}")]
    Hinted {
        source: Box<AugurError>,
        hint: String,
    },
    /// An error whose text held a credential, masked with `***`.
    #[error("{message}")]
    Redacted { class: ErrorClass, message: String },
    /// The statement was cancelled (Ctrl-C, a dropped client, a timeout).
    #[error("query cancelled")]
    Cancelled,
    /// The session may not do this (a read-only server, a path outside the allowed directories).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// `statement_timeout` passed before the statement finished.
    #[error("canceling statement due to statement timeout (SET statement_timeout = 0 lifts it)")]
    StatementTimeout,
    /// A transaction-block rule: no block is open, the block failed, no such savepoint, an
    /// object another connection's block holds.
    #[error("{message}")]
    Transaction { class: ErrorClass, message: String },
    /// A panic inside a query: a bug, reported instead of killing the process.
    #[error("internal error (this is a bug in Augur, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = AugurError> = std::result::Result<T, E>;

/// What kind of failure an error is: decides the SQLSTATE and the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Syntax,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    DuplicateObject,
    InvalidValue,
    DataException,
    Permission,
    OutOfMemory,
    DiskFull,
    TooComplex,
    Unsupported,
    Cancelled,
    Io,
    Internal,
    NoActiveTransaction,
    InFailedTransaction,
    InvalidSavepoint,
    LockNotAvailable,
}

impl ErrorClass {
    /// The PostgreSQL SQLSTATE for this class.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorClass::Syntax => "42601",
            ErrorClass::UndefinedTable => "42P01",
            ErrorClass::UndefinedColumn => "42703",
            ErrorClass::UndefinedFunction => "42883",
            ErrorClass::DuplicateObject => "42P07",
            ErrorClass::InvalidValue => "22023",
            ErrorClass::DataException => "22P02",
            ErrorClass::Permission => "42501",
            ErrorClass::OutOfMemory => "53200",
            ErrorClass::DiskFull => "53100",
            ErrorClass::TooComplex => "54001",
            ErrorClass::Unsupported => "0A000",
            ErrorClass::Cancelled => "57014",
            ErrorClass::Io => "58030",
            ErrorClass::Internal => "XX000",
            ErrorClass::NoActiveTransaction => "25P01",
            ErrorClass::InFailedTransaction => "25P02",
            ErrorClass::InvalidSavepoint => "3B001",
            ErrorClass::LockNotAvailable => "55P03",
        }
    }

    /// Exit code of `augur -c/-f` when a statement fails with this class.
    /// 1 = the SQL was wrong, 2 = usage, 3 = resources/environment, 4 = internal.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::OutOfMemory | ErrorClass::DiskFull | ErrorClass::Io => 3,
            ErrorClass::Permission => 3,
            ErrorClass::Internal => 4,
            ErrorClass::Cancelled => 130,
            _ => 1,
        }
    }
}

impl AugurError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AugurError::DataFusion(e) => classify_datafusion(e),
            AugurError::Io(e) => classify_io(e),
            AugurError::Database(_) => ErrorClass::Io,
            AugurError::Usage(_) => ErrorClass::InvalidValue,
            AugurError::Cancelled | AugurError::StatementTimeout => ErrorClass::Cancelled,
            AugurError::PermissionDenied(_) => ErrorClass::Permission,
            AugurError::TooComplex(_) => ErrorClass::TooComplex,
            AugurError::Hinted { source, .. } => source.class(),
            AugurError::Redacted { class, .. } | AugurError::Transaction { class, .. } => *class,
            AugurError::Internal(_) => ErrorClass::Internal,
        }
    }

    pub fn sqlstate(&self) -> &'static str {
        self.class().sqlstate()
    }
}

fn classify_io(e: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => ErrorClass::Permission,
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => ErrorClass::DiskFull,
        ErrorKind::OutOfMemory => ErrorClass::OutOfMemory,
        _ => ErrorClass::Io,
    }
}

fn classify_datafusion(e: &DataFusionError) -> ErrorClass {
    // Resource failures can arrive wrapped in any variant (a Parquet writer's I/O error...).
    let text = e.to_string();
    if text.contains("No space left on device") {
        return ErrorClass::DiskFull;
    }
    if text.contains("Read-only file system") {
        return ErrorClass::Permission;
    }
    match e {
        DataFusionError::Context(_, inner) => classify_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => classify_datafusion(inner),
        DataFusionError::Shared(inner) => classify_datafusion(inner),
        DataFusionError::External(inner) => {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                classify_io(io)
            } else if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                classify_datafusion(df)
            } else if let Some(ours) = inner.downcast_ref::<AugurError>() {
                ours.class()
            } else {
                classify_message(&inner.to_string())
            }
        }
        DataFusionError::IoError(io) => classify_io(io),
        DataFusionError::ObjectStore(e) => match e.as_ref() {
            object_store::Error::NotFound { .. } => ErrorClass::UndefinedTable,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ErrorClass::Permission,
            _ => ErrorClass::Io,
        },
        DataFusionError::SQL(_, _) => ErrorClass::Syntax,
        DataFusionError::ResourcesExhausted(_) => ErrorClass::OutOfMemory,
        DataFusionError::NotImplemented(_) => ErrorClass::Unsupported,
        DataFusionError::SchemaError(err, _) => {
            let text = err.to_string();
            if text.contains("No field named") || text.contains("not found") {
                ErrorClass::UndefinedColumn
            } else {
                classify_message(&text)
            }
        }
        DataFusionError::ArrowError(_, _) | DataFusionError::ParquetError(_)
            if !text.contains("does not fit in memory") =>
        {
            ErrorClass::DataException
        }
        DataFusionError::Execution(m) if m.contains("cancelled") => ErrorClass::Cancelled,
        other => classify_message(&other.to_string()),
    }
}

fn classify_message(text: &str) -> ErrorClass {
    // An in-memory database's table store reports a full memory pool through the writer.
    if text.contains("does not fit in memory") {
        return ErrorClass::OutOfMemory;
    }
    if text.contains("table '") && text.contains("not found")
        || text.contains("Table not found")
        || text.contains("No table named")
    {
        ErrorClass::UndefinedTable
    } else if text.contains("Invalid function") || text.contains("not found in registry") {
        ErrorClass::UndefinedFunction
    } else if text.contains("already exists") {
        ErrorClass::DuplicateObject
    } else if text.contains("No field named") {
        ErrorClass::UndefinedColumn
    } else if text.contains("too complex") {
        ErrorClass::TooComplex
    } else if text.contains("Permission denied") || text.contains("Read-only file system") {
        ErrorClass::Permission
    } else if text.contains("No space left") {
        ErrorClass::DiskFull
    } else if text.contains("Cast error")
        || text.contains("Error parsing")
        || text.contains("COPY ") && text.contains("nothing was stored")
    {
        ErrorClass::DataException
    } else {
        // Plan and execution errors without a finer class are about the user's input.
        ErrorClass::InvalidValue
    }
}
