//! Query plans kept per session by their text: a statement sent again (simple protocol) or
//! executed again (each Execute of a prepared statement) skips parsing and SQL planning,
//! and Bind values go into the cached plan. A plan stays valid while nothing it depends on
//! changes: the catalog (a commit from any connection bumps its generation) and this
//! session's state (any statement that is not a cached kind of query — SET, DDL,
//! transaction statements, training — starts a new epoch).
//!
//! A query that reads no table and folds no stable function (`SELECT 1`, scoring one
//! applicant given as literals) also keeps its physical plan, and runs again from it with the
//! epoch's task context: short statements otherwise spend most of their time in the
//! optimisers and in copying the session state. A prepared statement of that kind keeps its
//! plan with the parameters read from a slot (plan_params.rs).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;

use super::plan_params::Slot;
use crate::catalog::DatabaseSchema;

/// Plans kept at most; the oldest goes first.
const CAPACITY: usize = 256;

/// (catalog generation, session epoch): what a cached plan was made under.
type Key = (u64, u64);

#[derive(Default)]
pub struct PlanCache {
    epoch: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    key: Key,
    plans: HashMap<String, Entry>,
    order: VecDeque<String>,
    /// The task context of this key's plans (one copy of the session's functions and
    /// settings, shared by every cached execution).
    task: Option<Arc<TaskContext>>,
}

/// A kept physical plan and the slot it reads its parameters from.
type Physical = (Arc<dyn ExecutionPlan>, Option<Arc<Slot>>);

struct Entry {
    logical: LogicalPlan,
    physical: Option<Physical>,
}

/// What the cache holds for a statement.
pub enum Hit {
    /// Parsed and planned: optimise and plan physically before running.
    Logical(LogicalPlan),
    /// Ready to run again (after its operators' state is reset).
    Physical(Box<Kept>),
}

/// A physical plan kept to run again.
pub struct Kept {
    pub plan: Arc<dyn ExecutionPlan>,
    pub task: Arc<TaskContext>,
    /// Where the plan reads its parameters, for a prepared statement with some.
    pub params: Option<Arc<Slot>>,
    /// The statement's logical plan, for when the kept one cannot serve.
    pub logical: LogicalPlan,
}

impl PlanCache {
    /// The key plans made now are stored under.
    pub fn key(&self, generation: u64) -> Key {
        (generation, self.epoch.load(Ordering::SeqCst))
    }

    /// This session changed something plans may depend on: forget them all.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for `key`, emptied first if it held another key's plans.
    fn lock_for(&self, key: Key) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.lock();
        if state.key != key {
            *state = State {
                key,
                ..State::default()
            };
        }
        state
    }

    pub fn get(&self, sql: &str, key: Key) -> Option<Hit> {
        let state = self.lock_for(key);
        let entry = state.plans.get(sql)?;
        Some(match (&entry.physical, &state.task) {
            (Some((plan, params)), Some(task)) => Hit::Physical(Box::new(Kept {
                plan: Arc::clone(plan),
                task: Arc::clone(task),
                params: params.clone(),
                logical: entry.logical.clone(),
            })),
            _ => Hit::Logical(entry.logical.clone()),
        })
    }

    /// The task context plans made under `key` run with: made once per key.
    pub fn task(&self, key: Key, make: impl FnOnce() -> TaskContext) -> Arc<TaskContext> {
        let mut state = self.lock_for(key);
        Arc::clone(state.task.get_or_insert_with(|| Arc::new(make())))
    }

    /// Keep the physical plan of a statement cached under `key` (if it still is), and the
    /// slot it reads its parameters from.
    pub fn put_physical(
        &self,
        sql: &str,
        key: Key,
        plan: &Arc<dyn ExecutionPlan>,
        params: Option<Arc<Slot>>,
    ) {
        let mut state = self.lock();
        if state.key == key
            && let Some(entry) = state.plans.get_mut(sql)
        {
            entry.physical = Some((Arc::clone(plan), params));
        }
    }

    pub fn put(&self, sql: &str, key: Key, plan: &LogicalPlan) {
        let mut state = self.lock_for(key);
        if state.plans.contains_key(sql) {
            return;
        }
        if state.order.len() >= CAPACITY
            && let Some(oldest) = state.order.pop_front()
        {
            state.plans.remove(&oldest);
        }
        state.order.push_back(sql.to_string());
        state.plans.insert(
            sql.to_string(),
            Entry {
                logical: plan.clone(),
                physical: None,
            },
        );
    }
}

/// DataFusion's functions that read the statement's start time.
const STATEMENT_TIME: &[&str] = &["now", "current_date", "current_time"];

/// Whether the physical plan of a cacheable `plan` may run again as it is: it reads no
/// table (a scan lists its files when planned) and does not ask for the statement's time
/// (`now()`, `current_date`, `current_time` are folded into constants when optimised).
/// Other stable functions fold what the cache key covers: settings, the catalog, models.
pub fn physically_reusable(plan: &LogicalPlan) -> bool {
    let mut reusable = true;
    let _ = plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::TableScan(_) | LogicalPlan::Extension(_)) {
            reusable = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        let _ = node.apply_expressions(|expr| {
            let folded = expr.exists(|e| {
                Ok(matches!(e, Expr::ScalarFunction(f)
                    if f.func.signature().volatility == Volatility::Stable
                        && STATEMENT_TIME.contains(&f.func.name())))
            })?;
            reusable &= !folded;
            Ok(if folded {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        Ok(if reusable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    reusable
}

/// Whether `plan` may be reused: a query (no writes, no session statements, no Augur
/// operators) that reads only the database's own tables and views or the system catalogs.
/// Files and table functions are planned from what they hold when planned (a file's
/// schema), so plans over them are made afresh each time.
pub fn cacheable(plan: &LogicalPlan, schema: &DatabaseSchema) -> bool {
    if matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    ) {
        return false;
    }
    let mut reusable = true;
    let _ = plan.apply_with_subqueries(|node| {
        let ok = match node {
            LogicalPlan::Extension(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => false,
            LogicalPlan::TableScan(scan) => match scan.table_name.schema() {
                Some("pg_catalog") | Some("information_schema") => true,
                Some(s) if s != super::SCHEMA => false,
                _ => schema.provider(scan.table_name.table()).is_some(),
            },
            _ => true,
        };
        reusable &= ok;
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    reusable
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
    use std::sync::Arc;

    fn plan() -> LogicalPlan {
        LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: true,
            schema: Arc::new(datafusion::common::DFSchema::empty()),
        })
    }

    #[test]
    fn a_new_generation_or_epoch_forgets_plans() {
        let cache = PlanCache::default();
        let key = cache.key(7);
        cache.put("SELECT 1", key, &plan());
        assert!(matches!(cache.get("SELECT 1", key), Some(Hit::Logical(_))));
        assert!(cache.get("SELECT 1", cache.key(8)).is_none());
        let key = cache.key(8);
        cache.put("SELECT 1", key, &plan());
        cache.invalidate();
        assert!(cache.get("SELECT 1", cache.key(8)).is_none());
    }

    #[test]
    fn the_oldest_plan_goes_first() {
        let cache = PlanCache::default();
        let key = cache.key(1);
        for i in 0..=CAPACITY {
            cache.put(&format!("SELECT {i}"), key, &plan());
        }
        assert!(cache.get("SELECT 0", key).is_none());
        assert!(cache.get(&format!("SELECT {CAPACITY}"), key).is_some());
    }

    async fn logical(session: &crate::session::Session, sql: &str) -> LogicalPlan {
        let state = session.context().state();
        state.create_logical_plan(sql).await.expect(sql)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_plans_without_tables_or_folded_functions_run_again() {
        let db = crate::database::Database::in_memory().await.unwrap();
        let session = db.session().unwrap();
        session
            .execute_to_end("CREATE TABLE t AS SELECT 1 AS a")
            .await
            .unwrap();
        for (sql, reusable) in [
            ("SELECT 1", true),
            (
                "SELECT random(), abs(-2) FROM (VALUES (1), (2)) v(x) ORDER BY 1 LIMIT 1",
                true,
            ),
            ("SELECT a FROM t", false),
            ("SELECT (SELECT max(a) FROM t)", false),
            ("SELECT now()", false),
            ("SELECT current_date + 1", false),
        ] {
            let plan = logical(&session, sql).await;
            assert_eq!(physically_reusable(&plan), reusable, "{sql}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_run_again_from_its_physical_plan_answers_afresh() {
        let db = crate::database::Database::in_memory().await.unwrap();
        let session = db.session().unwrap();
        let text = |batches: Vec<datafusion::arrow::record_batch::RecordBatch>| {
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        };
        // The second run of a query without tables finds its physical plan kept.
        session.execute_to_end("SELECT 1").await.unwrap();
        let key = session.plans.key(session.db.store().generation());
        assert!(matches!(
            session.plans.get("SELECT 1", key),
            Some(Hit::Physical(..))
        ));
        // Volatile functions are evaluated at every run, never frozen into the plan.
        let sql = "SELECT random() AS r";
        let first = text(session.execute_to_end(sql).await.unwrap());
        let second = text(session.execute_to_end(sql).await.unwrap());
        assert_ne!(first, second);
        // A top-k (stateful operator) gives the same rows at every run.
        let sql = "SELECT x FROM (VALUES (3), (1), (2)) v(x) ORDER BY x DESC LIMIT 2";
        let first = text(session.execute_to_end(sql).await.unwrap());
        for _ in 0..3 {
            assert_eq!(text(session.execute_to_end(sql).await.unwrap()), first);
        }
        assert!(
            first.contains("| 3 |") && first.contains("| 2 |"),
            "{first}"
        );
        // now() is the time of each statement, not of the first.
        let sql = "SELECT now() AS t";
        let first = text(session.execute_to_end(sql).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = text(session.execute_to_end(sql).await.unwrap());
        assert_ne!(first, second);
    }
}
