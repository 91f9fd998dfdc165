//! The progress bar on stderr (terminals only) for statements running over about a second:
//! rows and bytes scanned so far, against the total size of the files when known; training's
//! iterations; a cluster job's stages.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cluster::cluster_exec::ClusterExec;
use crate::config::format_size;
use crate::ml::physical::train_model::TrainExec;
use crate::session::QueryResult;

/// Draws while alive; dropping it clears the bar.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: ProgressBar,
}

impl Progress {
    pub fn start(result: &QueryResult) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if !std::io::stderr().is_terminal() {
            return Progress { task: None, bar };
        }
        let plan = result.plan();
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let total = plan.as_ref().map(total_bytes).unwrap_or(0);
            let style = if total > 0 {
                ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {msg}")
            } else {
                ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            };
            if let Ok(style) = style {
                shown.set_style(style);
            }
            shown.set_length(total.max(1) as u64);
            loop {
                if let Some(message) = plan
                    .as_ref()
                    .and_then(|p| training(p).or_else(|| cluster(p)))
                {
                    shown.set_message(format!("{message} (Ctrl-C cancels)"));
                    shown.tick();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let (rows, bytes) = plan.as_ref().map(scanned).unwrap_or((0, 0));
                shown.set_position(bytes as u64);
                let of = if total > 0 {
                    format!(" of {}", format_size(total))
                } else {
                    String::new()
                };
                shown.set_message(format!(
                    "{rows} rows, {}{of} scanned (Ctrl-C cancels)",
                    format_size(bytes)
                ));
                shown.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Progress {
            task: Some(task),
            bar,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// Iterations and loss of a training operator in the plan, once it has started iterating.
fn training(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(train) = plan.downcast_ref::<TrainExec>() {
        return train.progress_message();
    }
    plan.children().into_iter().find_map(training)
}

/// The job of a cluster operator in the plan, once submitted.
fn cluster(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(exec) = plan.downcast_ref::<ClusterExec>() {
        return exec.progress_message();
    }
    plan.children().into_iter().find_map(cluster)
}

/// The leaves this process runs (a cluster's scans are read on its executors).
fn leaves(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    if plan.downcast_ref::<ClusterExec>().is_some() {
        return;
    }
    let children = plan.children();
    if children.is_empty() {
        out.push(Arc::clone(plan));
    }
    for child in children {
        leaves(child, out);
    }
}

/// Rows produced by the scans, and bytes they read.
fn scanned(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
    let mut found = vec![];
    leaves(plan, &mut found);
    found
        .iter()
        .fold((0, 0), |(rows, bytes), leaf| match leaf.metrics() {
            Some(m) => (
                rows + m.output_rows().unwrap_or(0),
                bytes
                    + m.sum_by_name("bytes_scanned")
                        .map(|v| v.as_usize())
                        .unwrap_or(0),
            ),
            None => (rows, bytes),
        })
}

/// Total size of the files the scans will read.
fn total_bytes(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut found = vec![];
    leaves(plan, &mut found);
    found
        .iter()
        .filter_map(|leaf| leaf.downcast_ref::<DataSourceExec>())
        .filter_map(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .flat_map(|config| config.file_groups.iter().flat_map(|g| g.iter()))
        .map(|file| file.object_meta.size as usize)
        .sum()
}
