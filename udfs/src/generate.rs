//! `generate_transactions(rows [, seed])`: the synthetic credit-risk dataset of the demo at
//! any size, without files. Same columns and label model as `testdata/gen_transactions.py`;
//! every row is drawn from its own counter-based generator, so the output depends only on
//! (rows, seed), never on partitions or threads.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

/// Rows per generated batch (DataFusion's default batch size).
const BATCH_ROWS: usize = 8192;
/// Days from 1970-01-01 to 2024-01-01: transaction dates fall in 2024.
const DAY_2024_01_01: i32 = 19_723;
pub const DEFAULT_SEED: i64 = 42;

const TYPES: [(&str, f64); 5] = [
    ("purchase", 0.45),
    ("withdrawal", 0.2),
    ("transfer", 0.15),
    ("payment", 0.15),
    ("refund", 0.05),
];
const MERCHANTS: [(&str, f64); 6] = [
    ("grocery", 0.3),
    ("travel", 0.1),
    ("electronics", 0.15),
    ("gambling", 0.05),
    ("utilities", 0.2),
    ("restaurants", 0.2),
];
/// Share of NULLs in each feature column (never in customer_id or the label).
const NULL_RATE: f64 = 0.01;

/// Log-odds of risk_score = 1: the model trained coefficients can be checked against.
fn log_odds(amount: f64, age: i32, balance: f64, prior: i32, kind: &str, merchant: &str) -> f64 {
    let kind_effect = match kind {
        "withdrawal" => 0.4,
        "transfer" => 0.6,
        "refund" => -0.5,
        _ => 0.0,
    };
    let merchant_effect = match merchant {
        "gambling" => 1.2,
        "travel" => 0.3,
        "electronics" => 0.2,
        _ => 0.0,
    };
    -3.0 + 0.35 * amount / 1000.0 - 0.25 * f64::from(age - 40) / 10.0 - 0.30 * balance / 10_000.0
        + 0.9 * f64::from(prior)
        + kind_effect
        + merchant_effect
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int32, false),
        Field::new("transaction_date", DataType::Date32, true),
        Field::new("transaction_amount", DataType::Float64, true),
        Field::new("transaction_type", DataType::Utf8, true),
        Field::new("age", DataType::Int32, true),
        Field::new("balance", DataType::Float64, true),
        Field::new("prior_defaults", DataType::Int32, true),
        Field::new("merchant_category", DataType::Utf8, true),
        Field::new("risk_score", DataType::Int32, false),
    ]))
}

/// SplitMix64: a tiny generator whose whole state is one counter, seeded per row.
struct RowRng(u64);

impl RowRng {
    fn for_row(seed: i64, row: u64) -> Self {
        let mut start = RowRng(seed as u64 ^ 0x5851_f42d_4c95_7f2d);
        let mixed = start.next_u64() ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        RowRng(mixed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.unit() * f64::from(n)) as u32
    }

    /// Standard normal by Box–Muller (one of the pair; simplicity over speed).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn pick<'a>(&mut self, weighted: &[(&'a str, f64)]) -> &'a str {
        let mut u = self.unit();
        for (value, weight) in weighted {
            if u < *weight {
                return value;
            }
            u -= weight;
        }
        weighted[weighted.len() - 1].0
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rows `start..end` of the dataset for `seed`, as one batch.
pub fn batch(seed: i64, start: u64, end: u64) -> Result<RecordBatch> {
    let n = (end - start) as usize;
    let mut customer = Int32Builder::with_capacity(n);
    let mut date = Date32Builder::with_capacity(n);
    let mut amount = Float64Builder::with_capacity(n);
    let mut kind = StringBuilder::with_capacity(n, n * 8);
    let mut age = Int32Builder::with_capacity(n);
    let mut balance = Float64Builder::with_capacity(n);
    let mut prior = Int32Builder::with_capacity(n);
    let mut merchant = StringBuilder::with_capacity(n, n * 8);
    let mut label = Int32Builder::with_capacity(n);
    for row in start..end {
        let mut rng = RowRng::for_row(seed, row);
        let c = 1000 + rng.below(2000) as i32;
        let d = DAY_2024_01_01 + rng.below(366) as i32;
        let a = round2((5.5 + rng.normal()).exp());
        let t = rng.pick(&TYPES);
        let g = 18 + rng.below(68) as i32;
        let b = round2((8000.0 + 6000.0 * rng.normal()).max(0.0));
        let p = ((-(1.0 - rng.unit()).ln() / 2.0) as i32).min(5);
        let m = rng.pick(&MERCHANTS);
        let z = log_odds(a, g, b, p, t, m);
        let y = i32::from(rng.unit() < 1.0 / (1.0 + (-z).exp()));
        // Drawn for every column whatever the outcome, so the stream of draws is fixed.
        let mut null = || rng.unit() < NULL_RATE;
        customer.append_value(c);
        date.append_option((!null()).then_some(d));
        amount.append_option((!null()).then_some(a));
        kind.append_option((!null()).then_some(t));
        age.append_option((!null()).then_some(g));
        balance.append_option((!null()).then_some(b));
        prior.append_option((!null()).then_some(p));
        merchant.append_option((!null()).then_some(m));
        label.append_value(y);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(customer.finish()),
        Arc::new(date.finish()),
        Arc::new(amount.finish()),
        Arc::new(kind.finish()),
        Arc::new(age.finish()),
        Arc::new(balance.finish()),
        Arc::new(prior.finish()),
        Arc::new(merchant.finish()),
        Arc::new(label.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// One partition: a contiguous range of rows, generated batch by batch as it is polled.
#[derive(Debug)]
struct RowRange {
    schema: SchemaRef,
    seed: i64,
    start: u64,
    end: u64,
}

impl PartitionStream for RowRange {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (seed, end) = (self.seed, self.end);
        let batches = (self.start..end)
            .step_by(BATCH_ROWS)
            .map(move |s| batch(seed, s, (s + BATCH_ROWS as u64).min(end)));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches),
        ))
    }
}

#[derive(Debug, Default)]
pub struct GenerateTransactions;

fn integer_argument(expr: &Expr, what: &str) -> Result<i64> {
    let value = match expr {
        Expr::Literal(v, _) => v.clone(),
        Expr::Negative(inner) => match inner.as_ref() {
            Expr::Literal(v, _) => v.arithmetic_negate()?,
            _ => ScalarValue::Null,
        },
        _ => ScalarValue::Null,
    };
    match value.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(v))) => Ok(v),
        _ => plan_err!(
            "generate_transactions: {what} must be an integer constant, got {expr}; \
             usage: generate_transactions(rows [, seed])"
        ),
    }
}

impl TableFunctionImpl for GenerateTransactions {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return plan_err!(
                "generate_transactions takes 1 or 2 arguments (rows [, seed]), got {}",
                exprs.len()
            );
        }
        let rows = integer_argument(&exprs[0], "rows")?;
        if rows < 0 {
            return plan_err!("generate_transactions: rows must be 0 or more, got {rows}");
        }
        let seed = match exprs.get(1) {
            Some(e) => integer_argument(e, "seed")?,
            None => DEFAULT_SEED,
        };
        let rows = rows as u64;
        let parts = args.session().config().target_partitions().max(1) as u64;
        // Whole batches per partition, so batch boundaries do not depend on the split.
        let batches = rows.div_ceil(BATCH_ROWS as u64);
        let per_part = batches.div_ceil(parts).max(1) * BATCH_ROWS as u64;
        let schema = schema();
        let ranges: Vec<(u64, u64)> = if rows == 0 {
            vec![(0, 0)]
        } else {
            (0..parts)
                .map(|p| (p * per_part, ((p + 1) * per_part).min(rows)))
                .filter(|(start, _)| *start < rows)
                .collect()
        };
        let partitions: Vec<Arc<dyn PartitionStream>> = ranges
            .into_iter()
            .map(|(start, end)| {
                Arc::new(RowRange {
                    schema: Arc::clone(&schema),
                    seed,
                    start,
                    end,
                }) as _
            })
            .collect();
        Ok(Arc::new(StreamingTable::try_new(schema, partitions)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn rows_depend_only_on_seed_and_index() {
        let whole = batch(7, 0, 1000).unwrap();
        let part = batch(7, 600, 1000).unwrap();
        assert_eq!(whole.slice(600, 400), part);
        assert_ne!(batch(8, 0, 1000).unwrap(), whole);
    }

    #[test]
    fn label_rate_and_nulls_are_plausible() {
        let b = batch(42, 0, 50_000).unwrap();
        let labels = b.column(8).as_primitive::<Int32Type>();
        let rate = labels.values().iter().map(|v| f64::from(*v)).sum::<f64>() / 50_000.0;
        assert!((0.02..0.2).contains(&rate), "label rate {rate}");
        let nulls = b.column(2).null_count();
        assert!((300..700).contains(&nulls), "{nulls} NULL amounts");
        assert_eq!(b.column(0).null_count(), 0);
    }
}
