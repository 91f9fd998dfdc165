//! `CREATE TABLE … [AS query]`: a Delta table is created and filled first, then committed
//! to the catalog, so a crash leaves either no table or the whole table (an uncommitted
//! table directory is removed at the next open).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateMemoryTable, LogicalPlan};
use datafusion::physical_plan::collect;

use super::{SCHEMA, Session};
use crate::catalog::DeltaProvider;
use crate::catalog::delta_table::single_partition;
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
    let store = session.db.store();
    let location = store.new_table_location(&name);
    let filled = fill(
        session,
        &name,
        &location,
        Arc::new(Schema::new(fields)),
        &cmd,
        declared,
    )
    .await
    .and_then(|table| Ok(objects.put_table(&name, Arc::new(table), cmd.or_replace)?));
    if let Err(e) = filled {
        store.remove_unreferenced(&[location]);
        return Err(e);
    }
    Ok(())
}

/// The new Delta table at `location`, holding the query's rows (none if only declared).
async fn fill(
    session: &Session,
    name: &str,
    location: &str,
    schema: SchemaRef,
    cmd: &CreateMemoryTable,
    declared: bool,
) -> Result<DeltaProvider> {
    let runtime = session.ctx.runtime_env();
    let path = session.db.store().table_location(location);
    let table = DeltaProvider::create(&runtime, name, &path, &schema, &[])
        .await?
        .stored_at(location)
        .compact_after(session.db.auto_compact_files());
    if !declared {
        let state = session.ctx.state();
        let input = single_partition(state.create_physical_plan(&cmd.input).await?);
        let insert = table.insert_into(&state, input, InsertOp::Append).await?;
        collect(insert, session.ctx.task_ctx()).await?;
    }
    Ok(table)
}
