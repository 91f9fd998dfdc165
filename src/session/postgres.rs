//! Postgres compatibility for every session: the `pg_catalog` schema (psql `\d`, BI tools)
//! and the rewrites that let DataFusion plan the catalog queries Postgres clients send
//! (`'t'::regclass`, `OPERATOR(pg_catalog.~)`, …), from datafusion-pg-catalog.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;

use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::CATALOG;
use crate::error::{AugurError, Result};

/// Register `pg_catalog` (tables and functions such as `pg_table_is_visible`) in `ctx`.
pub(super) fn install(ctx: &SessionContext) -> Result<()> {
    setup_pg_catalog(ctx, CATALOG, EmptyContextProvider).map_err(|e| AugurError::DataFusion(*e))?;
    // What psql's \df asks of each function in pg_proc (Postgres's own, there): every one
    // is on the search path; signatures are not recorded.
    ctx.register_udf(constant(
        "pg_function_is_visible",
        ScalarValue::Boolean(Some(true)),
    ));
    for name in ["pg_get_function_result", "pg_get_function_arguments"] {
        ctx.register_udf(constant(name, ScalarValue::Utf8(Some(String::new()))));
    }
    Ok(())
}

/// `name(oid)`: the same value for every row.
fn constant(name: &str, value: ScalarValue) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int64],
        value.data_type(),
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
    )
}

fn compatibility() -> &'static PostgresCompatibilityParser {
    static PARSER: OnceLock<PostgresCompatibilityParser> = OnceLock::new();
    PARSER.get_or_init(PostgresCompatibilityParser::new)
}

/// Parse one statement. Queries go through the Postgres-compatibility parser first (its
/// rewrites only touch Postgres-only forms); everything else, and any query it cannot
/// read, goes to DataFusion's parser, which knows `CREATE EXTERNAL TABLE`, `COPY` and the rest.
pub(super) fn parse(state: &SessionState, sql: &str) -> Result<DFStatement> {
    if let Ok(mut statements) = compatibility().parse(sql)
        && statements.len() == 1
        && matches!(statements[0], Statement::Query(_))
    {
        return Ok(DFStatement::Statement(Box::new(statements.remove(0))));
    }
    let dialect = state.config().options().sql_parser.dialect;
    Ok(state.sql_to_statement(sql, &dialect)?)
}
