//! Postgres compatibility for every session: the `pg_catalog` schema (psql `\d`, BI tools)
//! and the rewrites that let DataFusion plan the catalog queries Postgres clients send
//! (`'t'::regclass`, `OPERATOR(pg_catalog.~)`, …), from datafusion-pg-catalog.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;

use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables, setup_pg_catalog,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::CATALOG;
use super::pg_proc::{PgCatalog, Signatures};
use crate::error::{AugurError, Result};

/// Functions registered here on top of datafusion-pg-catalog's (not Augur functions of their own).
pub(super) const EXTRA_FUNCTIONS: &[&str] = &[
    "pg_function_is_visible",
    "pg_get_function_result",
    "pg_get_function_arguments",
];

/// Register `pg_catalog` (tables and functions such as `pg_table_is_visible`) in `ctx`, with
/// a `pg_proc` that lists Augur's functions.
pub(super) fn install(ctx: &SessionContext) -> Result<()> {
    setup_pg_catalog(ctx, CATALOG, EmptyContextProvider).map_err(|e| AugurError::DataFusion(*e))?;
    // What psql's \df asks of each function in pg_proc: every one is on the search path;
    // signatures are known for Augur's functions (pg_proc.rs), not for Postgres's.
    let signatures = Arc::new(Signatures::default());
    ctx.register_udf(create_udf(
        EXTRA_FUNCTIONS[0],
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    ctx.register_udf(signature_udf(
        EXTRA_FUNCTIONS[1],
        &signatures,
        |(result, _)| result,
    ));
    ctx.register_udf(signature_udf(
        EXTRA_FUNCTIONS[2],
        &signatures,
        |(_, arguments)| arguments,
    ));
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| AugurError::Internal("the session has no catalog".into()))?;
    // The schema setup_pg_catalog registered holds its own decoded copy of Postgres's
    // static tables (megabytes); every session shares one copy instead.
    let shared = PgCatalogSchemaProvider::try_new(
        ctx.state().catalog_list().clone(),
        static_tables()?,
        EmptyContextProvider,
    )?;
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalog::wrap(Arc::new(shared), signatures)),
    )?;
    Ok(())
}

fn static_tables() -> Result<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<Arc<PgCatalogStaticTables>> = OnceLock::new();
    if let Some(tables) = TABLES.get() {
        return Ok(Arc::clone(tables));
    }
    let tables = Arc::new(PgCatalogStaticTables::try_new()?);
    Ok(Arc::clone(TABLES.get_or_init(|| tables)))
}

/// `name(oid)`: one part of the signature pg_proc.rs recorded for the oid.
fn signature_udf(
    name: &str,
    signatures: &Arc<Signatures>,
    part: fn(&(String, String)) -> &String,
) -> ScalarUDF {
    let signatures = Arc::clone(signatures);
    create_udf(
        name,
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = arrays[0].as_primitive::<Int64Type>();
            let texts: StringArray = oids
                .iter()
                .map(|oid| oid.map(|oid| part(&signatures.get(oid)).clone()))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts)))
        }),
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
