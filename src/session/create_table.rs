//! `CREATE TABLE … [AS query]`: data is written first, then the table and its files are
//! committed in one catalog commit, so a crash leaves either no table or the whole table.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::logical_expr::{CreateMemoryTable, LogicalPlan};
use datafusion::physical_plan::execute_stream;

use super::{SCHEMA, Session};
use crate::catalog::StoredTable;
use crate::error::{AugurError, Result};

pub async fn create_table(session: &Session, cmd: CreateMemoryTable) -> Result<()> {
    let name = cmd.name.table().to_string();
    if let Some(schema) = cmd.name.schema()
        && schema != SCHEMA
    {
        return Err(AugurError::Usage(format!(
            "schema '{schema}' does not exist: tables live in schema '{SCHEMA}'"
        )));
    }
    let objects = session.db.schema();
    use datafusion::catalog::SchemaProvider;
    if objects.table_exist(&name) {
        if cmd.if_not_exists {
            return Ok(());
        }
        if !cmd.or_replace {
            return Err(AugurError::DataFusion(
                datafusion::error::DataFusionError::Plan(format!(
                    "table '{name}' already exists; drop it first or use CREATE OR REPLACE TABLE"
                )),
            ));
        }
    }
    let declared = matches!(&*cmd.input, LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
    // Columns declared in CREATE TABLE keep their NOT NULL; query results may later take NULLs.
    let fields: Vec<Field> = cmd
        .input
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            if declared {
                field
            } else {
                field.with_nullable(true)
            }
        })
        .collect();
    let table = StoredTable::new(
        &name,
        Arc::new(Schema::new(fields)),
        Arc::clone(session.db.store()),
        session.db.memory_pool(),
        vec![],
    );
    if !declared {
        let state = session.ctx.state();
        let plan = state.create_physical_plan(&cmd.input).await?;
        let stream = execute_stream(plan, session.ctx.task_ctx())?;
        let staged = table.stage(stream).await?;
        table.adopt(staged);
    }
    objects.put_table(&name, Arc::new(table), cmd.or_replace)?;
    Ok(())
}
