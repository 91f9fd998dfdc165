//! Embedding Augur in a Rust program: open a database directory, register a function of
//! your own next to Augur's, and run SQL through the same pipeline as the shell.
//!
//! Run: `cargo run --example embed -- [DATABASE_DIR]` (default: an in-memory database).

use std::sync::Arc;

use augur::{Database, DatabaseConfig};
use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::cast::as_float64_array;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

/// `risk_band(p)`: a bank's own bucketing of default probabilities.
fn risk_band(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let p: &Float64Array = as_float64_array(&arrays[0])?;
    let bands: StringArray = p
        .iter()
        .map(|p| {
            p.map(|p| match p {
                p if p >= 0.2 => "high",
                p if p >= 0.05 => "medium",
                _ => "low",
            })
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(bands) as ArrayRef))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(Into::into);
    let db = Database::open(DatabaseConfig {
        path,
        ..Default::default()
    })
    .await?;
    let session = db.session()?;
    session.context().register_udf(create_udf(
        "risk_band",
        vec![DataType::Float64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(risk_band),
    ));
    let batches = session
        .execute_to_end(
            "SELECT risk_band(sigmoid(-3 + 0.9 * prior_defaults)) AS band, count(*) AS customers \
             FROM generate_transactions(10000) WHERE prior_defaults IS NOT NULL \
             GROUP BY band ORDER BY band",
        )
        .await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}
