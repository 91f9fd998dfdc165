//! User-defined SQL functions: `CREATE [OR REPLACE] FUNCTION` / `DROP FUNCTION`, persisted in
//! the catalog as their statement text, replayed into every session, and inlined into the
//! query at planning time (the optimiser's simplify step replaces a call by its body).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, CreateFunction, DdlStatement, DocSection, Documentation, DropFunction, Expr,
    ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, cast,
};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::Session;
use crate::catalog::store::FunctionEntry;
use crate::error::{AugurError, Result as AugurResult};

const SECTION: DocSection = DocSection {
    include: true,
    label: "User-defined Functions",
    description: Some("Functions created with CREATE FUNCTION"),
};

/// A function whose body is one SQL expression over its arguments.
#[derive(Debug)]
struct SqlFunction {
    name: String,
    args: Vec<(String, DataType)>,
    returns: DataType,
    body: Expr,
    signature: Signature,
    doc: Documentation,
}

impl PartialEq for SqlFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.args == other.args && self.body == other.body
    }
}
impl Eq for SqlFunction {}
impl std::hash::Hash for SqlFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl SqlFunction {
    /// `name(a BIGINT, b DOUBLE) RETURNS DOUBLE`, for errors and help.
    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|(n, t)| format!("{n} {}", sql_type(t)))
            .collect();
        format!(
            "{}({}) RETURNS {}",
            self.name,
            args.join(", "),
            sql_type(&self.returns)
        )
    }

    /// The call `name(values…)` as its body, converted to the declared return type.
    fn inline(&self, values: &[Expr]) -> Result<Expr> {
        Ok(cast(self.substitute(values)?, self.returns.clone()))
    }

    /// The body with argument `i` replaced by `values[i]` (by name, or `$i+1`).
    fn substitute(&self, values: &[Expr]) -> Result<Expr> {
        let position = |name: &str| -> Option<usize> {
            if let Some(n) = name.strip_prefix('$') {
                return n.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
            }
            self.args.iter().position(|(a, _)| a == name)
        };
        let body = self
            .body
            .clone()
            .transform(|e| {
                let index = match &e {
                    Expr::Column(c) if c.relation.is_none() => position(&c.name),
                    Expr::Placeholder(p) => position(&p.id),
                    _ => None,
                };
                Ok(match index.and_then(|i| values.get(i).map(|v| (i, v))) {
                    Some((i, v)) => Transformed::yes(cast(v.clone(), self.args[i].1.clone())),
                    None => Transformed::no(e),
                })
            })?
            .data;
        Ok(body)
    }
}

impl ScalarUDFImpl for SqlFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Every call is replaced by its body when the plan is simplified.
        Err(DataFusionError::Internal(format!(
            "user function {} was not inlined",
            self.describe()
        )))
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(self.inline(&args)?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        other => other.to_string(),
    }
}

/// Before DataFusion plans a CREATE FUNCTION: turn an `AS 'text'` body into the expression
/// it spells, and argument names in the body into `$n` placeholders (DataFusion plans the
/// body against no columns, so a named argument would be an unknown column).
pub fn prepare(statement: &mut DFStatement) -> Result<()> {
    let DFStatement::Statement(boxed) = statement else {
        return Ok(());
    };
    let ast::Statement::CreateFunction(create) = boxed.as_mut() else {
        return Ok(());
    };
    let names: Vec<String> = create
        .args
        .iter()
        .flatten()
        .filter_map(|a| a.name.as_ref().map(crate::parser::normalize_ident))
        .collect();
    let fname = create.name.to_string();
    let body = match create.function_body.as_mut() {
        Some(ast::CreateFunctionBody::AsBeforeOptions { body, .. })
        | Some(ast::CreateFunctionBody::AsAfterOptions(body))
        | Some(ast::CreateFunctionBody::Return(body)) => body,
        _ => return Ok(()),
    };
    if let ast::Expr::Value(v) = &*body
        && let ast::Value::SingleQuotedString(text)
        | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: text, .. }) = &v.value
    {
        let parsed = Parser::new(&GenericDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| {
                DataFusionError::Plan(format!(
                    "CREATE FUNCTION {fname}: the body '{text}' is not an SQL expression: {e}"
                ))
            })?;
        *body = parsed;
    }
    let mut unknown: Option<String> = None;
    let _ = ast::visit_expressions_mut(body, |e| {
        if let ast::Expr::Identifier(ident) = e {
            match names
                .iter()
                .position(|n| *n == crate::parser::normalize_ident(ident))
            {
                Some(i) => {
                    *e = ast::Expr::Value(
                        ast::Value::Placeholder(format!("${}", i + 1)).with_empty_span(),
                    )
                }
                None => {
                    unknown.get_or_insert_with(|| ident.value.clone());
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(name) = unknown {
        return Err(DataFusionError::Plan(format!(
            "CREATE FUNCTION {fname}: the body refers to '{name}', which is not an argument (arguments: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    Ok(())
}

/// Build the function a CREATE FUNCTION statement describes, checking its body.
fn build(create: &CreateFunction, sql: &str) -> Result<SqlFunction> {
    let name = create.name.clone();
    let args: Vec<(String, DataType)> = create
        .args
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, a)| {
            let arg_name = a
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| format!("${}", i + 1));
            (arg_name, a.data_type.clone())
        })
        .collect();
    let fail = |what: String| DataFusionError::Plan(format!("CREATE FUNCTION {name}: {what}"));
    let Some(returns) = create.return_type.clone() else {
        return Err(fail(
            "say what it returns: CREATE FUNCTION f(x DOUBLE) RETURNS DOUBLE RETURN x * 2".into(),
        ));
    };
    let named = Schema::new(
        args.iter()
            .map(|(n, t)| Field::new(n, t.clone(), true))
            .collect::<Vec<_>>(),
    );
    let schema = DFSchema::try_from(named)?;
    let Some(body) = create.params.function_body.clone() else {
        return Err(fail(
            "it has no body: add RETURN expression or AS 'expression'".into(),
        ));
    };
    let function = SqlFunction {
        signature: Signature::exact(
            args.iter().map(|(_, t)| t.clone()).collect(),
            create.params.behavior.unwrap_or(Volatility::Immutable),
        ),
        doc: Documentation::builder(SECTION, sql.trim().to_string(), String::new()).build(),
        name: name.clone(),
        args,
        returns,
        body,
    };
    // Typecheck and coerce once now, with the arguments as columns of their declared types:
    // the optimiser inlines calls after its coercion pass, so the body must be coerced already.
    let probe: Vec<Expr> = function
        .args
        .iter()
        .map(|(n, _)| Expr::Column(datafusion::common::Column::from_name(n)))
        .collect();
    let body = function
        .substitute(&probe)?
        .rewrite(&mut TypeCoercionRewriter::new(&schema))
        .map_err(|e| fail(format!("the body does not typecheck: {e}")))?
        .data;
    let body_type = body
        .get_type(&schema)
        .map_err(|e| fail(format!("the body does not typecheck: {e}")))?;
    if !can_cast_types(&body_type, &function.returns) {
        return Err(fail(format!(
            "the body is {} and cannot be converted to the declared {}",
            sql_type(&body_type),
            sql_type(&function.returns)
        )));
    }
    Ok(SqlFunction { body, ..function })
}

/// Which user functions a session has registered, and at which catalog generation.
#[derive(Debug, Default)]
pub struct Registered {
    generation: Option<u64>,
    names: Vec<String>,
    /// name → `name(a TYPE, …) RETURNS TYPE`
    signatures: BTreeMap<String, String>,
}

pub type SharedRegistered = Arc<Mutex<Registered>>;

/// Bring the session's user functions in line with the catalog (another session may have
/// created or dropped some).
pub async fn sync(session: &Session) -> AugurResult<()> {
    let store = session.db.store();
    let generation = store.generation();
    let seen = session
        .user_functions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .generation;
    if seen == Some(generation) {
        return Ok(());
    }
    let catalog = store.snapshot();
    let state = session.ctx.state();
    let mut failures = vec![];
    let mut built: BTreeMap<String, SqlFunction> = BTreeMap::new();
    for entry in &catalog.functions {
        match plan_create(&state, &entry.sql).await {
            Ok(create) => match build(&create, &entry.sql) {
                Ok(f) => {
                    built.insert(entry.name.clone(), f);
                }
                Err(e) => failures.push(format!("{}: {e}", entry.name)),
            },
            Err(e) => failures.push(format!("{}: {e}", entry.name)),
        }
    }
    let mut registered = session
        .user_functions
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for name in registered.names.drain(..) {
        session.ctx.deregister_udf(&name);
    }
    registered.signatures.clear();
    for (name, f) in built {
        registered.signatures.insert(name.clone(), f.describe());
        session.ctx.register_udf(ScalarUDF::new_from_impl(f));
        registered.names.push(name);
    }
    registered.generation = Some(generation);
    drop(registered);
    for f in failures {
        session
            .notices
            .push(format!("user function could not be loaded: {f}"));
    }
    Ok(())
}

async fn plan_create(state: &SessionState, sql: &str) -> Result<CreateFunction> {
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    prepare(&mut statement)?;
    let plan = state.statement_to_plan(statement).await?;
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateFunction(c)) => Ok(*c),
        _ => Err(DataFusionError::Plan(format!(
            "stored function text is not CREATE FUNCTION: {sql}"
        ))),
    }
}

fn is_user_function(session: &Session, name: &str) -> bool {
    session
        .db
        .store()
        .snapshot()
        .functions
        .iter()
        .any(|f| f.name == name)
}

/// CREATE [OR REPLACE] FUNCTION: check, persist, register.
pub async fn create(session: &Session, create: &CreateFunction, sql: &str) -> AugurResult<()> {
    let state = session.ctx.state();
    let name = &create.name;
    let user = is_user_function(session, name);
    let builtin = !user
        && (state.scalar_functions().contains_key(name)
            || state.aggregate_functions().contains_key(name)
            || state.window_functions().contains_key(name)
            || state.table_functions().contains_key(name));
    if builtin {
        return Err(AugurError::DataFusion(DataFusionError::Plan(format!(
            "{name} is a built-in function; choose another name for yours"
        ))));
    }
    if user && !create.or_replace {
        return Err(AugurError::DataFusion(DataFusionError::Plan(format!(
            "function {name} already exists; use CREATE OR REPLACE FUNCTION to change it, or DROP FUNCTION {name}"
        ))));
    }
    if create.temporary {
        return Err(AugurError::DataFusion(DataFusionError::NotImplemented(
            "CREATE TEMPORARY FUNCTION: user functions are stored with the database; drop it when done".into(),
        )));
    }
    // Checked here so a bad body is refused before anything is committed.
    build(create, sql)?;
    session.db.store().commit(|catalog| {
        catalog.functions.retain(|f| f.name != *name);
        catalog.functions.push(FunctionEntry {
            name: name.clone(),
            sql: sql.trim().to_string(),
        });
        Ok(())
    })?;
    sync(session).await
}

/// DROP FUNCTION [IF EXISTS] name: only functions created with CREATE FUNCTION.
pub async fn drop_function(session: &Session, drop: &DropFunction) -> AugurResult<()> {
    let name = &drop.name;
    if !is_user_function(session, name) {
        let state = session.ctx.state();
        if state.scalar_functions().contains_key(name)
            || state.aggregate_functions().contains_key(name)
            || state.table_functions().contains_key(name)
        {
            return Err(AugurError::DataFusion(DataFusionError::Plan(format!(
                "{name} is a built-in function and cannot be dropped"
            ))));
        }
        if drop.if_exists {
            return Ok(());
        }
        return Err(AugurError::DataFusion(DataFusionError::Plan(format!(
            "function {name} does not exist (SHOW FUNCTIONS lists them)"
        ))));
    }
    session.db.store().commit(|catalog| {
        catalog.functions.retain(|f| f.name != *name);
        Ok(())
    })?;
    sync(session).await
}

/// For an error about a call to a user function: the function's signature.
pub fn signature_hint(session: &Session, error: &str) -> Option<String> {
    let registered = session
        .user_functions
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    registered
        .signatures
        .iter()
        .find(|(name, _)| {
            error.contains(&format!("'{name}'")) || error.contains(&format!("{name}("))
        })
        .map(|(_, signature)| format!("the function is {signature}"))
}
