//! `augur-udfs`: Augur's SQL functions for risk analytics, one file per family, all
//! registered by [`register_all`] with documentation that `SHOW FUNCTIONS` and `.help` read.

mod aggregate;
pub mod binning;
pub mod generate;
pub mod math;
mod quantiles;
pub mod scoring;
pub mod split;
pub mod sums;
pub mod transform;

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// Register every function of this crate in `ctx`.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    for udf in math::functions() {
        ctx.register_udf(udf);
    }
    for udf in [transform::functions(), split::functions()].concat() {
        ctx.register_udf(udf);
    }
    for udaf in [
        scoring::aggregates(),
        binning::aggregates(),
        sums::aggregates(),
        quantiles::aggregates(),
    ]
    .concat()
    {
        ctx.register_udaf(udaf);
    }
    ctx.register_udtf(
        "generate_transactions",
        std::sync::Arc::new(generate::GenerateTransactions),
    );
    Ok(())
}
