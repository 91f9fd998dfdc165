//! `pg_catalog.pg_proc` with Augur's own functions in it (schema `public`), so psql's `\df`
//! and BI tools' function lists show `auc`, `woe`, `predict`, the functions users create…
//! datafusion-pg-catalog's `pg_proc` is a static copy of Postgres's; this wraps its schema
//! and adds a row per function DataFusion and the pg catalog do not bring themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock as StdRwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::{ExecutionPlan, collect};

/// Our functions' oids start here, above any oid Postgres or the catalog hands out.
const FIRST_OID: i32 = 1_000_000;

/// What `\df` prints for one of our functions, by oid.
#[derive(Debug, Default)]
pub struct Signatures {
    by_oid: StdRwLock<HashMap<i32, (String, String)>>,
}

impl Signatures {
    /// (result type, arguments) for `oid`; empty for Postgres's own functions.
    pub fn get(&self, oid: i64) -> (String, String) {
        let oid = i32::try_from(oid).unwrap_or(-1);
        self.by_oid
            .read()
            .ok()
            .and_then(|m| m.get(&oid).cloned())
            .unwrap_or_default()
    }
}

/// The `pg_catalog` schema with a live `pg_proc`.
#[derive(Debug)]
pub struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    signatures: Arc<Signatures>,
}

impl PgCatalog {
    pub fn wrap(inner: Arc<dyn SchemaProvider>, signatures: Arc<Signatures>) -> PgCatalog {
        PgCatalog { inner, signatures }
    }
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self.inner.table(name).await?;
        if !name.eq_ignore_ascii_case("pg_proc") {
            return Ok(table);
        }
        // Only the schema here: the catalog's pg_class calls this for every table while it
        // holds its oid lock, and finding `public`'s oid takes that lock (see `scan`).
        Ok(table.map(|base| {
            Arc::new(LivePgProc {
                schema: nullable(&base.schema()),
                base,
                inner: Arc::clone(&self.inner),
                signatures: Arc::clone(&self.signatures),
            }) as Arc<dyn TableProvider>
        }))
    }
}

fn nullable(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<Field>>(),
    ))
}

/// Postgres's functions (the static table) and ours, read when the query runs.
#[derive(Debug)]
struct LivePgProc {
    base: Arc<dyn TableProvider>,
    inner: Arc<dyn SchemaProvider>,
    signatures: Arc<Signatures>,
    /// The base table's columns, all nullable: our rows leave most of them empty.
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LivePgProc {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let public = public_oid(&self.inner, state).await?;
        let mut batches = scan(&self.base, state)
            .await?
            .into_iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&self.schema), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ours = our_functions(state);
        if let Ok(mut signatures) = self.signatures.by_oid.write() {
            signatures.clear();
            for (i, function) in ours.iter().enumerate() {
                signatures.insert(
                    FIRST_OID + i as i32,
                    (function.result.clone(), function.arguments.clone()),
                );
            }
        }
        batches.push(rows_for(&self.schema, &ours, public)?);
        MemTable::try_new(Arc::clone(&self.schema), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// `pg_namespace.oid` of `public` (the catalog numbers schemas as it meets them).
async fn public_oid(inner: &Arc<dyn SchemaProvider>, state: &dyn Session) -> Result<Option<i32>> {
    let Some(namespaces) = inner.table("pg_namespace").await? else {
        return Ok(None);
    };
    for batch in scan(&namespaces, state).await? {
        let (Some(oids), Some(names)) =
            (batch.column_by_name("oid"), batch.column_by_name("nspname"))
        else {
            continue;
        };
        let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
        let oids = datafusion::arrow::compute::cast(oids, &DataType::Int32)?;
        let names = names.as_string::<i32>();
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        for row in 0..batch.num_rows() {
            if names.is_valid(row) && names.value(row) == "public" && oids.is_valid(row) {
                return Ok(Some(oids.value(row)));
            }
        }
    }
    Ok(None)
}

async fn scan(table: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

struct Function {
    name: String,
    kind: &'static str,
    result: String,
    arguments: String,
}

/// Functions in the session that a plain DataFusion context with the pg catalog lacks:
/// Augur's (`augur-udfs`, `predict`…) and the users' own.
fn our_functions(state: &dyn Session) -> Vec<Function> {
    let Ok(builtin) = super::postgres::builtin_function_names() else {
        return vec![];
    };
    let mut found: BTreeMap<String, Function> = BTreeMap::new();
    let mut add =
        |name: &str, kind: &'static str, doc: Option<&datafusion::logical_expr::Documentation>| {
            if builtin.contains(name) {
                return;
            }
            let arguments = doc
                .map(|d| {
                    d.syntax_example
                        .split_once('(')
                        .map(|(_, args)| args.trim_end_matches(')').to_string())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            // Return types depend on the arguments (DataFusion resolves them per call): left empty.
            found.entry(name.to_string()).or_insert(Function {
                name: name.to_string(),
                kind,
                result: String::new(),
                arguments,
            });
        };
    for (name, udf) in state.scalar_functions() {
        add(name, "f", udf.documentation());
    }
    for (name, udaf) in state.aggregate_functions() {
        add(name, "a", udaf.documentation());
    }
    for (name, udwf) in state.window_functions() {
        add(name, "w", udwf.documentation());
    }
    found.into_values().collect()
}

fn rows_for(
    schema: &SchemaRef,
    functions: &[Function],
    public: Option<i32>,
) -> Result<RecordBatch> {
    let n = functions.len();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            let column: Option<ArrayRef> = match field.name().as_str() {
                "oid" => Some(Arc::new(Int32Array::from_iter_values(
                    (0..n).map(|i| FIRST_OID + i as i32),
                ))),
                "proname" => Some(Arc::new(StringArray::from_iter_values(
                    functions.iter().map(|f| f.name.as_str()),
                ))),
                "pronamespace" => Some(Arc::new(Int32Array::from(vec![public; n]))),
                "prokind" => Some(Arc::new(StringArray::from_iter_values(
                    functions.iter().map(|f| f.kind),
                ))),
                _ => None,
            };
            match column {
                Some(c) if c.data_type() == field.data_type() => Ok(c),
                Some(c) => Ok(datafusion::arrow::compute::cast(&c, field.data_type())?),
                None => Ok(new_null_array(field.data_type(), n)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(DataFusionError::from)
}
