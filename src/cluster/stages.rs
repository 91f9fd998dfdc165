//! The stages Ballista's scheduler cuts a shipped plan into (at its shuffles and broadcast
//! joins), for `EXPLAIN`: each stage's tasks, what it reads and where its output goes. The
//! same planner the scheduler runs, on the same plan, here at the client.

use std::collections::BTreeMap;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::execution_plans::UnresolvedShuffleExec;
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;

/// A stage as the scheduler will run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub id: usize,
    pub tasks: usize,
    /// The stages whose output it reads; none for a stage that scans.
    pub reads: Vec<usize>,
    /// Where its output goes: the stages reading it and how it is partitioned for them, or
    /// `None` for the final stage, whose partitions the client fetches.
    pub to: Option<String>,
}

/// The stages of `plan`, in the scheduler's order (inputs before their readers).
pub fn plan(plan: &Arc<dyn ExecutionPlan>) -> Result<Vec<Stage>> {
    let job = JobId::new("explain");
    let writers = DefaultDistributedPlanner::new()
        .plan_query_stages(&job, Arc::clone(plan), &ConfigOptions::default())
        .map_err(|e| DataFusionError::Plan(e.to_string()))?;
    let mut inputs: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for writer in &writers {
        let as_plan: Arc<dyn ExecutionPlan> = Arc::clone(writer) as _;
        let mut found = vec![];
        shuffles_read(&as_plan, &mut found);
        found.sort_unstable();
        found.dedup();
        inputs.insert(writer.stage_id(), found);
    }
    let last = writers.iter().map(|w| w.stage_id()).max();
    Ok(writers
        .iter()
        .map(|writer| {
            let id = writer.stage_id();
            let readers: Vec<usize> = inputs
                .iter()
                .filter(|(_, from)| from.contains(&id))
                .map(|(reader, _)| *reader)
                .collect();
            let to = (Some(id) != last && !readers.is_empty()).then(|| {
                match writer.shuffle_output_partitioning() {
                    Some(partitioning) => format!("{} by {partitioning}", join(&readers)),
                    None => join(&readers),
                }
            });
            Stage {
                id,
                tasks: writer.input_partition_count(),
                reads: inputs.get(&id).cloned().unwrap_or_default(),
                to,
            }
        })
        .collect())
}

/// One line: `1: 2 tasks, scan → 2 by Hash([a@0], 2); 2: 2 tasks, reads 1 → client`.
pub fn describe(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|s| {
            let plural = if s.tasks == 1 { "" } else { "s" };
            let reads = if s.reads.is_empty() {
                "scan".to_string()
            } else {
                format!("reads {}", join(&s.reads))
            };
            let to = s.to.as_deref().unwrap_or("client");
            format!("{}: {} task{plural}, {reads} → {to}", s.id, s.tasks)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The stages whose shuffle output `plan` reads.
fn shuffles_read(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<usize>) {
    if let Some(shuffle) = plan.downcast_ref::<UnresolvedShuffleExec>() {
        out.push(shuffle.stage_id);
        return;
    }
    for child in plan.children() {
        shuffles_read(child, out);
    }
}

fn join(ids: &[usize]) -> String {
    ids.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
