//! The streamed result of one statement, fed by the task that runs it.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{AugurError, Result};

/// The rows a write reports: the one-row `count` result of INSERT, COPY and friends.
pub fn affected_rows(batches: &[RecordBatch]) -> usize {
    use datafusion::arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>())
        .filter(|c| !c.is_empty() && c.is_valid(0))
        .map(|c| c.value(0) as usize)
        .sum()
}

pub(super) enum Message {
    Schema(SchemaRef),
    Batch(RecordBatch),
    Error(AugurError),
}

/// Stops a session's running statement: a cancel request from another task, shared by the
/// clones of a session.
#[derive(Clone)]
pub(super) struct Interrupt {
    cancels: Arc<watch::Sender<u64>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            cancels: Arc::new(watch::channel(0).0),
        }
    }
}

impl Interrupt {
    pub fn cancel(&self) {
        self.cancels.send_modify(|n| *n += 1);
    }

    /// Watch for cancels from now on, and for `deadline` (the statement timeout).
    pub fn subscribe(&self, deadline: Option<Instant>) -> Watch {
        Watch {
            cancels: self.cancels.subscribe(),
            deadline,
        }
    }
}

/// One statement's view of its interruptions.
pub(super) struct Watch {
    cancels: watch::Receiver<u64>,
    deadline: Option<Instant>,
}

impl Watch {
    /// Resolves when the statement must stop, with the error to report.
    pub async fn wait(&mut self) -> AugurError {
        let cancelled = async {
            if self.cancels.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        match self.deadline {
            Some(deadline) => tokio::select! {
                _ = cancelled => AugurError::Cancelled,
                _ = tokio::time::sleep_until(deadline) => AugurError::StatementTimeout,
            },
            None => {
                cancelled.await;
                AugurError::Cancelled
            }
        }
    }
}

/// Rows of one statement as they are produced. Dropping it cancels the statement.
pub struct QueryResult {
    schema: SchemaRef,
    rx: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
    plan: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
    interrupt: Watch,
    stopped: bool,
}

impl QueryResult {
    pub(super) fn new(
        first: Option<Message>,
        rx: mpsc::Receiver<Message>,
        task: JoinHandle<()>,
        plan: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
        interrupt: Watch,
    ) -> Result<QueryResult> {
        match first {
            Some(Message::Schema(schema)) => Ok(QueryResult {
                schema,
                rx,
                task,
                plan,
                interrupt,
                stopped: false,
            }),
            Some(Message::Error(e)) => {
                task.abort();
                Err(e)
            }
            Some(Message::Batch(_)) => {
                task.abort();
                Err(AugurError::Internal("rows before schema".into()))
            }
            None => Err(AugurError::Cancelled),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The physical plan being executed, once planned (for progress and EXPLAIN-like views).
    pub fn plan(&self) -> Option<Arc<dyn ExecutionPlan>> {
        self.plan.lock().ok().and_then(|p| p.clone())
    }

    /// The next batch, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.stopped {
            return None;
        }
        let message = tokio::select! {
            message = self.rx.recv() => message,
            stop = self.interrupt.wait() => {
                self.stopped = true;
                self.task.abort();
                return Some(Err(stop));
            }
        };
        match message? {
            Message::Batch(b) => Some(Ok(b)),
            Message::Error(e) => Some(Err(e)),
            Message::Schema(_) => Some(Err(AugurError::Internal("schema sent twice".into()))),
        }
    }

    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut out = vec![];
        while let Some(batch) = self.next().await {
            out.push(batch?);
        }
        Ok(out)
    }
}

impl Drop for QueryResult {
    fn drop(&mut self) {
        self.task.abort();
    }
}
