//! `ShipToCluster`, the last physical optimizer rule: with `augur.cluster` set, the largest
//! subtrees that read files and that the codec can carry become `ClusterExec`s (Ballista
//! stages them at its shuffles). What cannot travel — a write into a stored table, training,
//! an operator without a codec — stays in this process above them and consumes their rows. A
//! plan that reads no files (catalog listings, `SELECT 1`) runs here: there is nothing to
//! distribute. Data only this process can see is an error naming it.

use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use super::{AugurOptions, ClusterAddress, cluster_exec::ClusterExec};

#[derive(Debug, Default)]
pub struct ShipToCluster;

impl PhysicalOptimizerRule for ShipToCluster {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match AugurOptions::address(config)? {
            Some(address) => ship(without_plain_delta_scans(plan)?, &address),
            None => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "ship_to_cluster"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn ship(plan: Arc<dyn ExecutionPlan>, address: &ClusterAddress) -> Result<Arc<dyn ExecutionPlan>> {
    if !reads_files(&plan)? {
        return Ok(plan);
    }
    match super::codec::encode(Arc::clone(&plan)) {
        Ok(_) => Ok(Arc::new(ClusterExec::new(address.clone(), plan))),
        Err(e) if plan.children().is_empty() => Err(DataFusionError::Plan(format!(
            "{} cannot run on the cluster at {address}: {}. Executors read files from S3 or \
             from paths every executor sees; RESET augur.cluster runs the query in this process",
            describe(&plan),
            short(&e)
        ))),
        Err(_) => {
            let children = plan
                .children()
                .into_iter()
                .map(|child| ship(Arc::clone(child), address))
                .collect::<Result<Vec<_>>>()?;
            datafusion::physical_plan::replace_children_if_necessary(plan, children)
        }
    }
}

/// A stored table's scan (delta-rs's `DeltaScanExec`, which has no codec) over a Parquet scan
/// whose columns are already the table's — no partition columns, column mapping, deletion
/// vectors or casts to add — becomes a projection dropping delta-rs's file id column, so the
/// Parquet scan and everything above it can travel. Other Delta scans stay at the client
/// over a shipped Parquet scan.
fn without_plain_delta_scans(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
    use datafusion::physical_plan::ExecutionPlanProperties;
    use datafusion::physical_plan::projection::ProjectionExec;
    plan.transform_up(|node| {
        let [child] = node.children()[..] else {
            return Ok(Transformed::no(node));
        };
        if node.name() != "DeltaScanExec" || file_scan(child).is_none() {
            return Ok(Transformed::no(node));
        }
        let (table, files) = (node.schema(), child.schema());
        let extra = files
            .fields()
            .iter()
            .filter(|f| table.field_with_name(f.name()).is_err());
        let plain = extra.clone().all(|f| f.name().starts_with("__delta_rs_"))
            && table.fields().iter().all(|f| {
                files.field_with_name(f.name()).is_ok_and(|g| {
                    g.data_type() == f.data_type() && g.is_nullable() == f.is_nullable()
                })
            })
            && node.output_partitioning().partition_count()
                == child.output_partitioning().partition_count();
        if !plain {
            return Ok(Transformed::no(node));
        }
        let columns = table
            .fields()
            .iter()
            .map(|f| {
                let column = datafusion::physical_expr::expressions::col(f.name(), &files)?;
                Ok((column, f.name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let projection = ProjectionExec::try_new(columns, Arc::clone(child))?;
        Ok(Transformed::yes(
            Arc::new(projection) as Arc<dyn ExecutionPlan>
        ))
    })
    .data()
}

/// Whether any scan below `plan` reads files; files in this process's memory are an error.
fn reads_files(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    if let Some(config) = file_scan(plan) {
        let url = config.object_store_url.as_str();
        let scheme = url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "file" | "s3" | "s3a" | "http" | "https") {
            return Err(DataFusionError::Plan(format!(
                "{} reads through a store only this process has ({scheme}://: a stored \
                 table, or a table in memory), which the cluster's executors cannot read: \
                 write the data to S3 or a shared path (COPY … TO 's3://…') and query it as \
                 an external table, or RESET augur.cluster",
                describe(plan)
            )));
        }
        return Ok(true);
    }
    // Scans Augur does not know (a stored Delta table's) count as reading files, so that
    // they are either shipped or reported, never silently run here.
    if plan.children().is_empty() {
        return Ok(!matches!(
            plan.name(),
            "PlaceholderRowExec" | "EmptyExec" | "StreamingTableExec" | "DataSourceExec"
        ) && !plan.name().starts_with("LazyMemory"));
    }
    for child in plan.children() {
        if reads_files(child)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn file_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    plan.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// A leaf as a user knows it: the files it reads, or the operator's name.
fn describe(plan: &Arc<dyn ExecutionPlan>) -> String {
    if let Some(config) = file_scan(plan) {
        let files: Vec<String> = config
            .file_groups
            .iter()
            .flat_map(|g| g.files().iter())
            .take(3)
            .map(|f| {
                format!(
                    "{}{}",
                    config.object_store_url.as_str(),
                    f.object_meta.location
                )
            })
            .collect();
        return format!("the scan of {}", files.join(", "));
    }
    let line = datafusion::physical_plan::displayable(plan.as_ref())
        .one_line()
        .to_string();
    let line = line.trim();
    if line.starts_with("DeltaScan") {
        return format!("a stored table's scan ({line})");
    }
    format!("the operator {line}")
}

/// The codec's reason, without DataFusion's nesting.
fn short(e: &DataFusionError) -> String {
    let text = e.to_string();
    text.rsplit("Internal error: ")
        .next()
        .unwrap_or(&text)
        .trim_end_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::physical_plan::{ExecutionPlan, displayable};
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::PhysicalPlanNode;

    use crate::cluster::AugurCodec;
    use crate::{Database, Session};

    /// A session whose queries go to a (never contacted) cluster, over `rows.csv`.
    async fn session(dir: &std::path::Path) -> Session {
        std::fs::write(dir.join("rows.csv"), "a,b\n1,10\n1,20\n2,5\n").unwrap();
        let session = Database::in_memory().await.unwrap().session().unwrap();
        session
            .execute_to_end("SET augur.cluster = 'df://127.0.0.1:1'")
            .await
            .unwrap();
        session
    }

    async fn physical_plan(session: &Session, sql: &str) -> Result<String, String> {
        let batches = session
            .execute_to_end(&format!("EXPLAIN {sql}"))
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        for batch in batches {
            let kinds = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let plans = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for i in 0..batch.num_rows() {
                match kinds.value(i) {
                    "physical_plan" => out += plans.value(i),
                    "physical_plan_error" => return Err(plans.value(i).to_string()),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn what_ships_and_what_stays() {
        let dir = tempfile::tempdir().unwrap();
        let session = session(dir.path()).await;
        let csv = dir.path().join("rows.csv").display().to_string();
        // A query over files goes to the cluster whole.
        let plan = physical_plan(
            &session,
            &format!("SELECT a, sum(b) FROM '{csv}' GROUP BY a"),
        )
        .await
        .unwrap();
        assert!(
            plan.starts_with("ClusterExec: scheduler=df://127.0.0.1:1"),
            "{plan}"
        );
        // EXPLAIN shows the stages the scheduler will run: partial sums shuffled by key
        // into a final stage whose rows come here.
        session
            .execute_to_end("SET datafusion.execution.target_partitions = 2")
            .await
            .unwrap();
        let plan = physical_plan(
            &session,
            &format!("SELECT a, sum(b) FROM '{csv}' GROUP BY a"),
        )
        .await
        .unwrap();
        let line = plan.lines().next().unwrap_or_default();
        assert!(
            line.contains("stages=[1: ")
                && line.contains("by Hash([a@0], 2)")
                && line.contains("reads 1 → client]"),
            "{plan}"
        );
        // Nothing to distribute: here.
        for sql in ["SELECT 1", "SELECT count(*) FROM information_schema.tables"] {
            let plan = physical_plan(&session, sql).await.unwrap();
            assert!(!plan.contains("ClusterExec"), "{sql}: {plan}");
        }
        // Top-N per group has no codec: it stays here, over the scan the cluster runs.
        let top = format!(
            "SELECT * FROM (SELECT a, b, row_number() OVER (PARTITION BY a ORDER BY b) AS r \
             FROM '{csv}') WHERE r <= 1"
        );
        let plan = physical_plan(&session, &top).await.unwrap();
        let (above, below) = plan.split_once("ClusterExec").expect("a ClusterExec");
        assert!(
            above.contains("TopPerGroup") && !below.contains("TopPerGroup"),
            "{plan}"
        );
        // A stored table of an in-memory database: refused by name, with the way out.
        session
            .execute_to_end("CREATE TABLE t AS SELECT 1 AS x")
            .await
            .unwrap();
        let err = session
            .execute_to_end("SELECT * FROM t")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read") && err.contains("RESET augur.cluster"),
            "{err}"
        );
        // RESET: everything here again.
        session.execute_to_end("RESET augur.cluster").await.unwrap();
        let plan = physical_plan(&session, "SELECT * FROM t").await.unwrap();
        assert!(!plan.contains("ClusterExec"), "{plan}");
        let shown = session.execute_to_end("SHOW augur.cluster").await.unwrap();
        let value = shown[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(value.value(0), "");
    }

    /// A shared subplan crosses the wire as its input: the decoded plan has no sharing and
    /// gives the same rows.
    #[tokio::test(flavor = "multi_thread")]
    async fn shared_results_step_aside_on_the_wire() {
        let dir = tempfile::tempdir().unwrap();
        let session = Database::in_memory().await.unwrap().session().unwrap();
        std::fs::write(dir.path().join("rows.csv"), "a,b\n1,10\n1,20\n2,5\n").unwrap();
        let csv = dir.path().join("rows.csv").display().to_string();
        let sql = format!(
            "WITH s AS (SELECT a, sum(b) AS t FROM '{csv}' GROUP BY a) \
             SELECT a FROM s WHERE t = (SELECT max(t) FROM s)"
        );
        let state = session.context().state();
        let logical = state.create_logical_plan(&sql).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        let text = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(false).to_string();
        assert!(text(&plan).contains("SharedResult"), "{}", text(&plan));
        let codec = AugurCodec::default();
        let node = PhysicalPlanNode::try_from_physical_plan(Arc::clone(&plan), &codec).unwrap();
        let decoded = node
            .try_into_physical_plan(&session.context().task_ctx(), &codec)
            .unwrap();
        assert!(
            !text(&decoded).contains("SharedResult"),
            "{}",
            text(&decoded)
        );
        let rows = |p| async {
            let batches = datafusion::physical_plan::collect(p, session.context().task_ctx())
                .await
                .unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        };
        assert_eq!(rows(plan).await, rows(decoded).await);
    }
}
