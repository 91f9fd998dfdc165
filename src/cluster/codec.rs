//! The physical extension codec of Augur's clients, scheduler and executors: Ballista's own
//! operators (shuffle readers and writers) through Ballista's codec, and Augur's operators that
//! can cross a process boundary through ours. A shared subplan steps aside on the wire: its
//! in-process sharing cannot span executors, so each occurrence computes its own input there,
//! as it would without the rule. A model function carries its model (see `ml::shipping`):
//! plans leave the client through `encode`, which binds each one to the model it names.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr_with_converter;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr_with_converter;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalPlanNodeExt,
    PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::{PhysicalExprNode, PhysicalPlanNode};

use crate::ml::shipping;
use crate::optimizer::physical::shared_result::SharedResultExec;

/// Marks a node encoded by this codec (Ballista's nodes are protobuf messages, which never
/// start with these bytes).
const TAG: &[u8] = b"\0augur:";
const SHARED: &[u8] = b"shared/1";
const MODELS: &[u8] = b"models/1";
const AGGREGATE: &[u8] = b"aggregate/1";

/// A plan as it leaves the client: Augur's codec, model functions bound to their models.
pub fn encode(plan: Arc<dyn ExecutionPlan>) -> Result<PhysicalPlanNode> {
    PhysicalPlanNode::try_from_physical_plan_with_converter(
        plan,
        &AugurCodec::default(),
        &BindModels,
    )
}

#[derive(Debug, Default)]
pub struct AugurCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for AugurCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(node) = buf.strip_prefix(TAG) else {
            return self.ballista.try_decode(buf, inputs, ctx, converter);
        };
        match (node, inputs) {
            (SHARED, [input]) => Ok(Arc::clone(input)),
            _ => Err(DataFusionError::Internal(format!(
                "this Augur cannot decode the plan node '{}' with {} inputs: are the client, \
                 scheduler and executors the same version of Augur?",
                String::from_utf8_lossy(node),
                inputs.len()
            ))),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if node.downcast_ref::<SharedResultExec>().is_some() {
            buf.extend_from_slice(TAG);
            buf.extend_from_slice(SHARED);
            return Ok(());
        }
        self.ballista.try_encode(node, buf, converter)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(bytes) = shipping::encode(node)? {
            buf.extend_from_slice(TAG);
            buf.extend_from_slice(MODELS);
            buf.extend_from_slice(&bytes);
            return Ok(());
        }
        self.ballista.try_encode_udf(node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match buf.strip_prefix(TAG).and_then(|b| b.strip_prefix(MODELS)) {
            Some(bytes) => shipping::decode(name, bytes).map(Arc::new),
            None => self.ballista.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if shipping::encode_aggregate(node)? {
            buf.extend_from_slice(TAG);
            buf.extend_from_slice(AGGREGATE);
            return Ok(());
        }
        self.ballista.try_encode_udaf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        match buf.strip_prefix(TAG) {
            Some(AGGREGATE) => shipping::aggregate(name).map(Arc::new).ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "this Augur does not know the aggregate '{name}': are the client, \
                     scheduler and executors the same version of Augur?"
                ))
            }),
            _ => self.ballista.try_decode_udaf(name, buf),
        }
    }
}

/// The client's converter: a model function named by a literal is replaced, on the wire
/// only, by the same function bound to that model; everything else is encoded as usual.
#[derive(Debug)]
struct BindModels;

impl PhysicalProtoConverterExtension for BindModels {
    fn proto_to_execution_plan(
        &self,
        proto: &PhysicalPlanNode,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        proto.try_into_physical_plan_with_context(ctx, self)
    }

    fn execution_plan_to_proto(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<PhysicalPlanNode> {
        PhysicalPlanNode::try_from_physical_plan_with_converter(Arc::clone(plan), codec, self)
    }

    fn proto_to_physical_expr(
        &self,
        proto: &PhysicalExprNode,
        input_schema: &Schema,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        parse_physical_expr_with_converter(proto, input_schema, ctx, self)
    }

    fn physical_expr_to_proto(
        &self,
        expr: &Arc<dyn PhysicalExpr>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<PhysicalExprNode> {
        if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
            && let Some(bound) = shipping::bind(call.fun(), call.args())?
        {
            let bound: Arc<dyn PhysicalExpr> = Arc::new(ScalarFunctionExpr::new(
                call.name(),
                Arc::new(bound),
                call.args().to_vec(),
                call.return_field(&Schema::empty())?,
                Arc::new(call.config_options().clone()),
            ));
            return serialize_physical_expr_with_converter(&bound, codec, self);
        }
        // Executors run the plain DataFusion expressions these forms stand for.
        if let Some(plain) = crate::optimizer::plain_of(expr) {
            return self.physical_expr_to_proto(&plain, codec);
        }
        serialize_physical_expr_with_converter(expr, codec, self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
    use datafusion_proto::physical_plan::AsExecutionPlan;

    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::execution::TaskContext;
    use datafusion::physical_plan::projection::ProjectionExec;

    use super::{AugurCodec, encode};
    use crate::Database;

    /// The rows `plan` gives in `ctx`, as a table.
    async fn rows(plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>) -> String {
        let batches = collect(plan, ctx).await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    /// `plan`'s rows run at the client, and after encoding, decoding in a session without the
    /// client's models (as an executor is) and running there.
    async fn here_and_there(
        plan: &Arc<dyn ExecutionPlan>,
        client: &datafusion::prelude::SessionContext,
    ) -> (String, String) {
        let node = encode(Arc::clone(plan)).unwrap();
        let executor = Database::in_memory().await.unwrap().session().unwrap();
        let decoded = node
            .try_into_physical_plan(&executor.context().task_ctx(), &AugurCodec::default())
            .unwrap();
        let here = rows(Arc::clone(plan), client.task_ctx()).await;
        (here, rows(decoded, executor.context().task_ctx()).await)
    }

    /// A plan calling model functions, encoded at a client with models and decoded in a
    /// session without any (as an executor is), gives the client's rows bit for bit; a model
    /// named by a column cannot travel.
    #[tokio::test(flavor = "multi_thread")]
    async fn models_travel_inside_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("rows.csv");
        let mut text = String::from("x,c,y\n");
        for i in 0..200 {
            let x = (i as f64 * 0.37).sin() * 3.0;
            let c = ["a", "b", "c"][i % 3];
            let y = i32::from(x + if c == "b" { 0.8 } else { -0.3 } > 0.2);
            text += &format!("{x},{c},{y}\n");
        }
        std::fs::write(&csv, text).unwrap();
        let client = Database::in_memory().await.unwrap().session().unwrap();
        let csv = csv.display();
        client
            .execute_to_end(&format!(
                "TRAIN MODEL m USING logistic_regression PREDICT y AS SELECT x, c, y FROM '{csv}'"
            ))
            .await
            .unwrap();
        client
            .execute_to_end(&format!("CREATE VIEW rows AS SELECT x, c FROM '{csv}'"))
            .await
            .unwrap();
        let sql = "SELECT *, predict('m', x, c) AS p, predict_proba('m', x, c) AS q \
                   FROM explain(m, rows) ORDER BY x";
        let state = client.context().state();
        let logical = state.create_logical_plan(sql).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        let (here, there) = here_and_there(&plan, client.context()).await;
        assert!(here.contains("0.") && here.lines().count() > 200, "{here}");
        assert_eq!(here, there);

        let unbound = format!("SELECT predict(c, x, c) FROM '{csv}'");
        let logical = state.create_logical_plan(&unbound).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        let error = encode(Arc::clone(&plan)).unwrap_err().to_string();
        assert!(
            error.contains("predict runs on a cluster only when its model is named by a literal"),
            "{error}\n{}",
            displayable(plan.as_ref()).indent(false)
        );
    }

    /// Decimal arithmetic on the 64-bit path leaves as the plain arrow expression it stands
    /// for: the executor's rows are the client's.
    #[tokio::test(flavor = "multi_thread")]
    async fn narrow_decimals_travel_as_plain_arithmetic() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("prices.csv");
        let mut text = String::from("price,disc\n");
        for i in 0..300 {
            text += &format!("{}.{:02},0.0{}\n", i * 37 % 1000, i % 100, i % 10);
        }
        std::fs::write(&csv, text).unwrap();
        let client = Database::in_memory().await.unwrap().session().unwrap();
        let sql = format!(
            "SELECT CAST(price AS DECIMAL(15,2)) * (1 - CAST(disc AS DECIMAL(15,2))) AS net \
             FROM '{}' ORDER BY net",
            csv.display()
        );
        let state = client.context().state();
        let logical = state.create_logical_plan(&sql).await.unwrap();
        let plan = state.create_physical_plan(&logical).await.unwrap();
        let mut narrow = 0;
        plan.apply(|node| {
            if let Some(p) = node.downcast_ref::<ProjectionExec>() {
                narrow += p
                    .expr()
                    .iter()
                    .filter(|e| crate::optimizer::plain_of(&e.expr).is_some())
                    .count();
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        assert_eq!(narrow, 1, "{}", displayable(plan.as_ref()).indent(false));
        let (here, there) = here_and_there(&plan, client.context()).await;
        assert_eq!(here.lines().count(), 300 + 4, "{here}");
        assert_eq!(here, there);
    }
}
