//! Query plans kept per session by their text: a statement sent again (simple protocol) or
//! executed again (each Execute of a prepared statement) skips parsing and SQL planning,
//! and Bind values go into the cached plan. A plan stays valid while nothing it depends on
//! changes: the catalog (a commit from any connection bumps its generation) and this
//! session's state (any statement that is not a cached kind of query — SET, DDL,
//! transaction statements, training — starts a new epoch).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

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
    plans: HashMap<String, LogicalPlan>,
    order: VecDeque<String>,
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

    pub fn get(&self, sql: &str, key: Key) -> Option<LogicalPlan> {
        let mut state = self.lock();
        if state.key != key {
            *state = State {
                key,
                ..State::default()
            };
            return None;
        }
        state.plans.get(sql).cloned()
    }

    pub fn put(&self, sql: &str, key: Key, plan: &LogicalPlan) {
        let mut state = self.lock();
        if state.key != key {
            *state = State {
                key,
                ..State::default()
            };
        }
        if state.plans.contains_key(sql) {
            return;
        }
        if state.order.len() >= CAPACITY
            && let Some(oldest) = state.order.pop_front()
        {
            state.plans.remove(&oldest);
        }
        state.order.push_back(sql.to_string());
        state.plans.insert(sql.to_string(), plan.clone());
    }
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
        assert!(cache.get("SELECT 1", key).is_some());
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
}
