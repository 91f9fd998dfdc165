//! The physical extension codec of Augur's clients, scheduler and executors: Ballista's own
//! operators (shuffle readers and writers) through Ballista's codec, and Augur's operators that
//! can cross a process boundary through ours. A shared subplan steps aside on the wire: its
//! in-process sharing cannot span executors, so each occurrence computes its own input there,
//! as it would without the rule.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::optimizer::physical::shared_result::SharedResultExec;

/// Marks a node encoded by this codec (Ballista's nodes are protobuf messages, which never
/// start with these bytes).
const TAG: &[u8] = b"\0augur:";
const SHARED: &[u8] = b"shared/1";

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
}
