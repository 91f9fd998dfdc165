//! Planning a statement without running it, for the wire protocol's Parse and Describe: the
//! types of its `$1`, `$2`… parameters and the columns it will return.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;

use super::models::Planned;
use super::{Session, models, plan_sql, variables};
use crate::error::{AugurError, Result};
use crate::parser::ml::MlStatement;

/// A statement planned but not run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Types of `$1`, `$2`…, in order; `None` where nothing in the statement decides it.
    pub parameter_types: Vec<Option<DataType>>,
    /// The columns of the rows it returns; empty when it returns none.
    pub schema: SchemaRef,
}

impl Session {
    /// Plan `sql` without running it. Nothing changes: `DROP MODEL` and `SET` are only
    /// checked when they run.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let session = self.clone();
        let text = sql.to_string();
        // Planning recurses with the statement's depth: run it on a worker (large stack),
        // and report a panic as an error like `execute` does.
        let work = super::within_sandbox(self.sandbox.clone(), async move {
            prepare(&session, &text).await
        });
        let task = tokio::spawn(work);
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                Err(AugurError::Internal(super::panic_message(&e.into_panic())))
            }
            Err(_) => Err(AugurError::Cancelled),
        }
        .map_err(|e| {
            // As in PostgreSQL, a statement that fails to parse fails the block too.
            self.transaction.mark_failed();
            super::hints::redact(self, super::hints::explain(self, e), sql)
        })
    }
}

async fn prepare(session: &Session, sql: &str) -> Result<Prepared> {
    super::check_size(sql)?;
    let no_rows = || Prepared {
        parameter_types: vec![],
        schema: Arc::new(Schema::empty()),
    };
    if super::transaction::is_transaction_statement(sql) {
        return Ok(no_rows());
    }
    session.transaction.check()?;
    if variables::is_session_statement(sql) {
        // SHOW's one column is known only by running it; SET and friends return nothing.
        // Not a variable (`SHOW MODELS`, `SHOW TABLES`): planned like any statement below.
        match variables::handle(&session.variables.snapshot(), sql)? {
            Some(variables::Outcome::Rows(Planned::Rows(_, schema))) => {
                return Ok(Prepared {
                    parameter_types: vec![],
                    schema,
                });
            }
            Some(_) => return Ok(no_rows()),
            None => {}
        }
    }
    super::functions::sync(session).await?;
    match crate::parser::ml::parse(sql).map_err(AugurError::Usage)? {
        // Statements that change models or write files run at Execute, never at Describe.
        Some(s) if s.writes() && !matches!(s, MlStatement::Train { .. }) => Ok(no_rows()),
        Some(statement) => match models::plan(session, statement).await? {
            Planned::Plan(plan) => Ok(Prepared {
                parameter_types: vec![],
                schema: Arc::clone(plan.schema().inner()),
            }),
            Planned::Rows(_, schema) => Ok(Prepared {
                parameter_types: vec![],
                schema,
            }),
            Planned::Cached(kept) => Ok(Prepared {
                parameter_types: vec![],
                schema: kept.plan.schema(),
            }),
        },
        None => prepare_sql(session, sql).await,
    }
}

async fn prepare_sql(session: &Session, sql: &str) -> Result<Prepared> {
    let plan = plan_sql(session, sql).await?;
    let returns_rows = !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
    );
    let schema = if returns_rows {
        Arc::clone(plan.schema().inner())
    } else {
        Arc::new(Schema::empty())
    };
    Ok(Prepared {
        parameter_types: parameter_types(&plan)?,
        schema,
    })
}

/// `$n` placeholders in number order; a gap (only `$2` used) is an unknown type.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let found = plan.get_parameter_types()?;
    let mut types = vec![];
    for (name, data_type) in found {
        let Some(index) = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
        else {
            return Err(AugurError::Usage(format!(
                "parameter {name} is not supported: number parameters $1, $2, …"
            )));
        };
        if types.len() < index {
            types.resize(index, None);
        }
        types[index - 1] = data_type;
    }
    Ok(types)
}
