//! Test helpers: the plans a session prints for a query over a few empty or small tables.

use datafusion::arrow::array::{Array, StringArray};

use crate::Database;

/// The plan column of `EXPLAIN …` or `EXPLAIN ANALYZE …` (`explain`) after running `setup`.
pub async fn explain(setup: &[&str], explain: &str) -> Vec<String> {
    let db = Database::in_memory().await.expect("database");
    let session = db.session().expect("session");
    for statement in setup {
        session.execute_to_end(statement).await.expect("setup");
    }
    let batches = session.execute_to_end(explain).await.expect("explain");
    let mut plans = vec![];
    for batch in batches {
        let column = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("plan text")
            .clone();
        plans.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    plans
}

/// The depth of the first line of `plan` containing `needle` (its indentation).
pub fn depth(plan: &str, needle: &str) -> Option<usize> {
    plan.lines()
        .find(|l| l.contains(needle))
        .map(|l| l.len() - l.trim_start().len())
}
