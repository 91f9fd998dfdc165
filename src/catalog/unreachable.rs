//! An external table that could not be opened when the database opened (its store is
//! unreachable, its credentials missing, its files gone): it stays in the catalog and in
//! `SHOW TABLES`, and a query that uses it gets the real cause instead of "not found".

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct Unreachable {
    name: String,
    /// The statement that defines it, kept so the catalog entry is unchanged.
    definition: String,
    cause: String,
}

impl Unreachable {
    pub fn new(name: &str, definition: &str, cause: impl std::fmt::Display) -> Self {
        Unreachable {
            name: name.to_string(),
            definition: definition.to_string(),
            cause: cause.to_string(),
        }
    }

    /// Why the table cannot be read, and what to do.
    pub fn error(&self) -> DataFusionError {
        DataFusionError::Plan(format!(
            "table '{}' could not be opened when the database opened: {}; fix the cause and \
             re-create it (CREATE OR REPLACE EXTERNAL TABLE …), or reopen the database",
            self.name, self.cause
        ))
    }
}

#[async_trait]
impl TableProvider for Unreachable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(self.error())
    }
}
