//! The streamed result of one statement, fed by the task that runs it.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{AugurError, Result};

pub(super) enum Message {
    Schema(SchemaRef),
    Batch(RecordBatch),
    Error(AugurError),
}

/// Rows of one statement as they are produced. Dropping it cancels the statement.
pub struct QueryResult {
    schema: SchemaRef,
    rx: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
    plan: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
}

impl QueryResult {
    pub(super) fn new(
        first: Option<Message>,
        rx: mpsc::Receiver<Message>,
        task: JoinHandle<()>,
        plan: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
    ) -> Result<QueryResult> {
        match first {
            Some(Message::Schema(schema)) => Ok(QueryResult {
                schema,
                rx,
                task,
                plan,
            }),
            Some(Message::Error(e)) => Err(e),
            Some(Message::Batch(_)) => Err(AugurError::Internal("rows before schema".into())),
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
        match self.rx.recv().await? {
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
