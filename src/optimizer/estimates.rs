//! Row counts, filter selectivities and distinct-value counts for the join-order search, from
//! the statistics each table's full scan reports: Parquet footers for external tables
//! (DataFusion reads them once per file and caches them), the Delta log for stored tables, the
//! batches of in-memory tables. Nothing is stored twice, so nothing goes stale: an `INSERT`
//! or a new file is in the next query's numbers.
//!
//! The estimates are the textbook ones with the usual fallbacks: a column's distinct count is
//! its reported one, else its min–max range for integers and dates (never more than the
//! table's rows), else for strings a small count from Parquet dictionary pages
//! (`dictionary_distinct.rs`), else the table's rows; `col = literal` keeps 1/distinct (strings without a
//! count: 1/min(rows, 50)), ranges keep their share of the min–max range (else 1/3), and
//! anything else keeps 0.3.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, Statistics, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, JoinType, LogicalPlan, Operator};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

use super::shapes::column_below;
use crate::catalog::CatalogStore;
use crate::catalog::delta_table::{ColumnRange, DeltaProvider};
use crate::catalog::statistics::TableStatistics;

/// What an unknown predicate is taken to keep.
const DEFAULT_SELECTIVITY: f64 = 0.3;
/// What a range predicate on a column without a min–max range keeps.
const RANGE_SELECTIVITY: f64 = 1.0 / 3.0;
/// The distinct count assumed for a string column without one, at most.
pub(super) const STRING_DISTINCT: f64 = 50.0;

/// One column's reported statistics, as numbers.
#[derive(Debug, Clone, Default)]
struct ColumnStats {
    distinct: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    nulls: Option<f64>,
    /// Integers and dates: a min–max range bounds the distinct count.
    discrete: bool,
}

#[derive(Debug)]
struct TableStats {
    rows: f64,
    columns: Vec<ColumnStats>,
}

/// The statistics of every table a plan scans, by the name its scans use.
#[derive(Debug, Default)]
pub struct Estimates {
    tables: HashMap<TableReference, TableStats>,
}

impl Estimates {
    /// Statistics of the tables `plan` scans, as their full scans report them. A table whose
    /// scan cannot be planned or reports no row count is left out (joins over it keep their
    /// order).
    pub async fn gather(plan: &LogicalPlan, session: &dyn Session) -> Estimates {
        let mut scans = vec![];
        let _ = plan.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && !scans.iter().any(|(name, _)| name == &scan.table_name)
            {
                scans.push((scan.table_name.clone(), scan.source.clone()));
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let mut tables = HashMap::new();
        for (name, source) in scans {
            let Ok(provider) = source_as_provider(&source) else {
                continue;
            };
            let Ok(scan) = provider.scan(session, None, &[], None).await else {
                continue;
            };
            // The context holds an `Rc`: computed and dropped between two awaits.
            let stats = {
                let context = StatisticsContext::new();
                context.compute(scan.as_ref(), &StatisticsArgs::new())
            };
            let Ok(stats) = stats else {
                continue;
            };
            let discrete: Vec<bool> = provider
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().is_integer() || f.data_type().is_temporal())
                .collect();
            let analyzed = analyzed(session, &name);
            let table = TableStats::new(&stats, &discrete).or_else(|| {
                // A scan without a row count (CSV): what ANALYZE counted.
                let rows = analyzed.as_ref()?.rows as f64;
                Some(TableStats {
                    rows,
                    columns: discrete
                        .iter()
                        .map(|&discrete| ColumnStats {
                            discrete,
                            ..ColumnStats::default()
                        })
                        .collect(),
                })
            });
            if let Some(mut table) = table {
                if crate::cluster::AugurOptions::enabled(session.config_options(), |o| {
                    o.string_distinct
                }) {
                    let counts = super::dictionary_distinct::string_distincts(&scan, session).await;
                    for (field, column) in provider.schema().fields().iter().zip(&mut table.columns)
                    {
                        if column.distinct.is_none()
                            && !column.discrete
                            && let Some(&n) = counts.get(field.name())
                        {
                            column.distinct = Some(n);
                        }
                    }
                }
                // delta-rs's scans report row counts; the log also has each file's ranges.
                if let Some(delta) = provider.downcast_ref::<DeltaProvider>()
                    && let Ok(ranges) = delta.column_ranges().await
                {
                    table.add_ranges(&ranges);
                }
                // Last: what ANALYZE stored fills only what no live source gave.
                if let Some(analyzed) = &analyzed {
                    table.add_analyzed(analyzed, &provider.schema());
                }
                tables.insert(name, table);
            }
        }
        Estimates { tables }
    }

    /// The rows `plan` is estimated to produce; `None` where a table in it has no statistics
    /// or a node is of a kind not estimated.
    pub fn rows(&self, plan: &LogicalPlan) -> Option<f64> {
        let rows = match plan {
            LogicalPlan::TableScan(scan) => {
                let table = self.tables.get(&scan.table_name)?;
                let filters: Vec<&Expr> = scan.filters.iter().collect();
                let kept = self.all_of(&filters, plan);
                let rows = table.rows * kept;
                scan.fetch.map_or(rows, |n| rows.min(n as f64))
            }
            LogicalPlan::Filter(filter) => {
                // DataFusion pushes a filter into a Parquet scan and keeps it above as well
                // (the scan may apply it only in part): count each predicate once.
                let pushed: &[Expr] = match filter.input.as_ref() {
                    LogicalPlan::TableScan(scan) => &scan.filters,
                    _ => &[],
                };
                let predicates: Vec<&Expr> = split_conjunction(&filter.predicate)
                    .into_iter()
                    .filter(|p| !pushed.contains(p))
                    .collect();
                let kept = self.all_of(&predicates, &filter.input);
                self.rows(&filter.input)? * kept
            }
            LogicalPlan::Projection(p) => self.rows(&p.input)?,
            LogicalPlan::SubqueryAlias(a) => self.rows(&a.input)?,
            LogicalPlan::Sort(s) => {
                let rows = self.rows(&s.input)?;
                s.fetch.map_or(rows, |n| rows.min(n as f64))
            }
            LogicalPlan::Repartition(r) => self.rows(&r.input)?,
            LogicalPlan::Window(w) => self.rows(&w.input)?,
            LogicalPlan::Distinct(d) => self.rows(d.input())?,
            LogicalPlan::Limit(limit) => {
                let rows = self.rows(&limit.input)?;
                match limit.get_fetch_type() {
                    Ok(datafusion::logical_expr::FetchType::Literal(Some(n))) => rows.min(n as f64),
                    _ => rows,
                }
            }
            LogicalPlan::Aggregate(agg) => {
                let input = self.rows(&agg.input)?;
                if agg.group_expr.is_empty() {
                    1.0
                } else {
                    let groups: Option<f64> = agg
                        .group_expr
                        .iter()
                        .map(|e| match e {
                            Expr::Column(c) => self.distinct(&agg.input, c),
                            _ => None,
                        })
                        .product();
                    groups.map_or(input, |g| g.min(input))
                }
            }
            LogicalPlan::Union(u) => u.inputs.iter().map(|i| self.rows(i)).sum::<Option<f64>>()?,
            LogicalPlan::Join(join) => {
                let (left, right) = (self.rows(&join.left)?, self.rows(&join.right)?);
                match join.join_type {
                    JoinType::Inner => {
                        let mut rows = left * right;
                        for (l, r) in &join.on {
                            if let (Expr::Column(l), Expr::Column(r)) = (l, r) {
                                rows *= self.key_selectivity((&join.left, l), (&join.right, r));
                            }
                        }
                        rows
                    }
                    JoinType::Left => left,
                    JoinType::Right => right,
                    JoinType::Full => left + right,
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left * 0.5,
                    JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right * 0.5,
                }
            }
            LogicalPlan::Values(v) => v.values.len() as f64,
            LogicalPlan::EmptyRelation(e) => f64::from(u8::from(e.produce_one_row)),
            _ => return None,
        };
        Some(rows.max(1.0))
    }

    /// The share of an equi-join's rows a key pair keeps: 1 / the smaller distinct count of
    /// the two columns in their tables (a foreign key's values are among its key's, so the
    /// smaller count is the key's; filters above a table do not change its key's domain).
    fn key_selectivity(
        &self,
        left: (&LogicalPlan, &Column),
        right: (&LogicalPlan, &Column),
    ) -> f64 {
        let side = |(plan, column): (&LogicalPlan, &Column)| {
            self.distinct(plan, column).or_else(|| self.rows(plan))
        };
        match (side(left), side(right)) {
            (Some(l), Some(r)) => 1.0 / l.min(r).max(1.0),
            (Some(n), None) | (None, Some(n)) => 1.0 / n.max(1.0),
            (None, None) => DEFAULT_SELECTIVITY,
        }
    }

    /// The share of `plan`'s rows that `predicate` keeps (its columns are `plan`'s).
    pub fn selectivity(&self, predicate: &Expr, plan: &LogicalPlan) -> f64 {
        let s = match predicate {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => self.all_of(&split_conjunction(predicate), plan),
                Operator::Or => {
                    let (a, b) = (self.selectivity(left, plan), self.selectivity(right, plan));
                    a + b - a * b
                }
                Operator::Eq => self.equality(left, right, plan),
                Operator::NotEq => 1.0 - self.equality(left, right, plan),
                Operator::Lt | Operator::LtEq => self.range(left, right, plan, true),
                Operator::Gt | Operator::GtEq => self.range(left, right, plan, false),
                _ => DEFAULT_SELECTIVITY,
            },
            Expr::Not(inner) => 1.0 - self.selectivity(inner, plan),
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let kept =
                    (self.range(expr, high, plan, true) + self.range(expr, low, plan, false) - 1.0)
                        .max(0.01);
                if *negated { 1.0 - kept } else { kept }
            }
            Expr::InList(list) => {
                let one = self.equality(&list.expr, &list.expr, plan);
                let kept = (one * list.list.len() as f64).min(1.0);
                if list.negated { 1.0 - kept } else { kept }
            }
            Expr::Like(like) => {
                if like.negated {
                    0.9
                } else {
                    0.1
                }
            }
            Expr::IsNull(e) => self.null_share(e, plan).unwrap_or(0.05),
            Expr::IsNotNull(e) => 1.0 - self.null_share(e, plan).unwrap_or(0.05),
            Expr::Literal(ScalarValue::Boolean(Some(true)), _) => 1.0,
            Expr::Literal(ScalarValue::Boolean(Some(false)), _) => 0.0,
            _ => DEFAULT_SELECTIVITY,
        };
        s.clamp(0.0, 1.0)
    }

    /// The share of `plan`'s rows all of `predicates` keep. A column bounded from below and
    /// from above keeps the overlap of the two shares, as `BETWEEN` does: TPC-H's
    /// `o_orderdate >= '1993-10-01' AND o_orderdate < '1994-01-01'` keeps 4% of orders, where
    /// multiplying the shares (70% and 32%) gave 22%.
    fn all_of(&self, predicates: &[&Expr], plan: &LogicalPlan) -> f64 {
        let mut bounds: Vec<(&Column, Option<f64>, Option<f64>)> = vec![];
        let mut kept = 1.0;
        for predicate in predicates {
            // A one-sided range's own share is its share of the column's range.
            let share = self.selectivity(predicate, plan);
            let Some((column, below)) = one_sided(predicate) else {
                kept *= share;
                continue;
            };
            let at = match bounds.iter().position(|(c, _, _)| *c == column) {
                Some(at) => at,
                None => {
                    bounds.push((column, None, None));
                    bounds.len() - 1
                }
            };
            let side = if below {
                &mut bounds[at].1
            } else {
                &mut bounds[at].2
            };
            *side = Some(side.map_or(share, |s: f64| s.min(share)));
        }
        for (_, below, above) in bounds {
            kept *= match (below, above) {
                (Some(b), Some(a)) => (a + b - 1.0).max(0.01),
                (Some(s), None) | (None, Some(s)) => s,
                (None, None) => 1.0,
            };
        }
        kept.clamp(0.0, 1.0)
    }

    /// `a = b`: 1/distinct of the column side (both columns: of the larger).
    fn equality(&self, a: &Expr, b: &Expr, plan: &LogicalPlan) -> f64 {
        let one_of = |e: &Expr| {
            let column = as_column(e)?;
            let (table, stats) = self.column(plan, column)?;
            Some(match stats.distinct {
                Some(d) => d,
                None if stats.discrete => table.rows.min(range(stats)?),
                None => table.rows.min(STRING_DISTINCT),
            })
        };
        match (one_of(a), one_of(b)) {
            (Some(x), Some(y)) if as_column(a) != as_column(b) => 1.0 / x.max(y).max(1.0),
            (Some(x), _) | (_, Some(x)) => 1.0 / x.max(1.0),
            _ => 0.1,
        }
    }

    /// `column < value` (`below`) or `column > value`: the share of the column's min–max range.
    fn range(&self, column: &Expr, value: &Expr, plan: &LogicalPlan, below: bool) -> f64 {
        let (column, value, below) = match (as_column(column), as_column(value)) {
            (Some(c), None) => (c, value, below),
            (None, Some(c)) => (c, column, !below),
            _ => return RANGE_SELECTIVITY,
        };
        let bounds = self
            .column(plan, column)
            .and_then(|(_, s)| Some((s.min?, s.max?)));
        let literal = match value {
            Expr::Literal(v, _) => number(v),
            _ => None,
        };
        match (bounds, literal) {
            (Some((min, max)), Some(v)) if max > min => {
                let share = (v - min) / (max - min);
                let share = if below { share } else { 1.0 - share };
                share.clamp(0.01, 1.0)
            }
            _ => RANGE_SELECTIVITY,
        }
    }

    fn null_share(&self, e: &Expr, plan: &LogicalPlan) -> Option<f64> {
        let (table, stats) = self.column(plan, as_column(e)?)?;
        Some(stats.nulls? / table.rows.max(1.0))
    }

    /// The distinct values of `column` (of `plan`) in its table, not narrowed by filters.
    pub fn distinct(&self, plan: &LogicalPlan, column: &Column) -> Option<f64> {
        let (table, stats) = self.column(plan, column)?;
        Some(match stats.distinct {
            Some(d) => d,
            None if stats.discrete => range(stats).map_or(table.rows, |r| r.min(table.rows)),
            None => table.rows,
        })
    }

    /// The rows of the table `column` of `plan` comes from, before any filter.
    pub fn table_rows(&self, plan: &LogicalPlan, column: &Column) -> Option<f64> {
        self.column(plan, column).map(|(table, _)| table.rows)
    }

    /// The table and column statistics `column` of `plan` comes from, followed down through
    /// projections that pass it on, aliases, filters and joins.
    fn column(&self, plan: &LogicalPlan, column: &Column) -> Option<(&TableStats, &ColumnStats)> {
        let mut plan = plan;
        let mut column = column.clone();
        loop {
            match plan {
                LogicalPlan::TableScan(scan) => {
                    let i = scan.projected_schema.index_of_column(&column).ok()?;
                    let base = match &scan.projection {
                        Some(projection) => *projection.get(i)?,
                        None => i,
                    };
                    let table = self.tables.get(&scan.table_name)?;
                    return Some((table, table.columns.get(base)?));
                }
                LogicalPlan::Projection(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Filter(_) => {
                    column = column_below(plan, &column)?;
                    plan = plan.inputs()[0];
                }
                LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Repartition(_) => {
                    plan = plan.inputs()[0];
                }
                LogicalPlan::Join(_) => {
                    plan = plan
                        .inputs()
                        .into_iter()
                        .find(|input| input.schema().has_column(&column))?;
                }
                _ => return None,
            }
        }
    }
}

impl TableStats {
    fn new(stats: &Statistics, discrete: &[bool]) -> Option<TableStats> {
        let rows = *stats.num_rows.get_value()? as f64;
        let columns = stats
            .column_statistics
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnStats {
                distinct: c.distinct_count.get_value().map(|&d| d as f64),
                min: c.min_value.get_value().and_then(number),
                max: c.max_value.get_value().and_then(number),
                nulls: match c.null_count {
                    Precision::Exact(n) | Precision::Inexact(n) => Some(n as f64),
                    Precision::Absent => None,
                },
                discrete: discrete.get(i).copied().unwrap_or(false),
            })
            .collect();
        Some(TableStats { rows, columns })
    }

    /// What ANALYZE measured, for what the scan reported nothing of: distinct counts
    /// (scaled to the rows now), NULL counts, ranges.
    fn add_analyzed(&mut self, analyzed: &TableStatistics, schema: &Schema) {
        let rows = self.rows;
        for (field, column) in schema.fields().iter().zip(&mut self.columns) {
            let Some(measured) = analyzed.column(field.name()) else {
                continue;
            };
            column.distinct = column
                .distinct
                .or_else(|| analyzed.distinct_at(measured, rows));
            column.nulls = column.nulls.or(Some(measured.nulls as f64));
            let parse = |text: &Option<String>| {
                ScalarValue::try_from_string(text.clone()?, field.data_type())
                    .ok()
                    .as_ref()
                    .and_then(number)
            };
            column.min = column.min.or_else(|| parse(&measured.min));
            column.max = column.max.or_else(|| parse(&measured.max));
        }
    }

    /// Ranges for the columns the scan reported none for.
    fn add_ranges(&mut self, ranges: &[ColumnRange]) {
        for (column, range) in self.columns.iter_mut().zip(ranges) {
            column.min = column.min.or_else(|| range.min.as_ref().and_then(number));
            column.max = column.max.or_else(|| range.max.as_ref().and_then(number));
        }
    }
}

/// What ANALYZE stored for the table a scan names (tables of the database's own schema).
fn analyzed(session: &dyn Session, name: &TableReference) -> Option<TableStatistics> {
    let default_schema = &session.config_options().catalog.default_schema;
    if name.schema().is_some_and(|s| s != default_schema) {
        return None;
    }
    let store = session.config().get_extension::<CatalogStore>()?;
    store.read(|catalog| catalog.statistics_of(name.table()).cloned())
}

/// The row count DataFusion's statistics give a physical plan, if it has one: what the
/// physical rules that pick a join's build side or partitioning compare.
pub(super) fn plan_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.num_rows.get_value().copied())
}

/// The distinct values a min–max range can hold.
fn range(stats: &ColumnStats) -> Option<f64> {
    Some(stats.max? - stats.min? + 1.0)
}

/// The column an expression is, through casts.
/// The column a one-sided range predicate (`column < constant`, `constant >= column`, …)
/// bounds, and whether from above (`true`: the column is below the constant).
fn one_sided(predicate: &Expr) -> Option<(&Column, bool)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    let below = match op {
        Operator::Lt | Operator::LtEq => true,
        Operator::Gt | Operator::GtEq => false,
        _ => return None,
    };
    match (as_column(left), as_column(right)) {
        (Some(c), None) => Some((c, below)),
        (None, Some(c)) => Some((c, !below)),
        _ => None,
    }
}

fn as_column(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        Expr::Cast(cast) => as_column(&cast.expr),
        Expr::TryCast(cast) => as_column(&cast.expr),
        _ => None,
    }
}

/// A number for ranges: integers, floats, decimals (unscaled), dates and timestamps as counts.
fn number(value: &ScalarValue) -> Option<f64> {
    use ScalarValue as S;
    Some(match value {
        S::Int8(Some(v)) => f64::from(*v),
        S::Int16(Some(v)) => f64::from(*v),
        S::Int32(Some(v)) => f64::from(*v),
        S::Int64(Some(v)) => *v as f64,
        S::UInt8(Some(v)) => f64::from(*v),
        S::UInt16(Some(v)) => f64::from(*v),
        S::UInt32(Some(v)) => f64::from(*v),
        S::UInt64(Some(v)) => *v as f64,
        S::Float32(Some(v)) => f64::from(*v),
        S::Float64(Some(v)) => *v,
        S::Decimal128(Some(v), _, scale) => *v as f64 / 10f64.powi(i32::from(*scale)),
        S::Date32(Some(v)) => f64::from(*v),
        S::Date64(Some(v)) => *v as f64 / 86_400_000.0,
        S::TimestampSecond(Some(v), _)
        | S::TimestampMillisecond(Some(v), _)
        | S::TimestampMicrosecond(Some(v), _)
        | S::TimestampNanosecond(Some(v), _) => *v as f64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::{ColumnStats, TableStats};
    use crate::catalog::statistics::{ColumnStatistics, TableStatistics};

    /// What ANALYZE printed and stored reads back as numbers, for the types ranges matter for;
    /// a range the scan reported is kept.
    #[test]
    fn analyzed_ranges_read_back_as_numbers() {
        let schema = Schema::new(vec![
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("n", DataType::Int64, true),
        ]);
        let column = |name: &str, min: &str, max: &str| ColumnStatistics {
            name: name.into(),
            data_type: String::new(),
            nulls: 3,
            distinct: Some(10),
            min: Some(min.into()),
            max: Some(max.into()),
        };
        let analyzed = TableStatistics {
            table: "t".into(),
            rows: 100,
            columns: vec![
                column("at", "2024-03-01T10:00:00", "2024-03-01T10:00:01"),
                column("day", "1970-01-02", "1970-01-11"),
                column("amount", "1.25", "11.75"),
                column("n", "-5", "5"),
            ],
        };
        let mut table = TableStats {
            rows: 200.0,
            columns: vec![ColumnStats::default(); 4],
        };
        table.columns[3].min = Some(0.0);
        table.add_analyzed(&analyzed, &schema);
        let at = &table.columns[0];
        assert_eq!(at.max.zip(at.min).map(|(a, b)| a - b), Some(1e6));
        assert_eq!(
            (table.columns[1].min, table.columns[1].max),
            (Some(1.0), Some(10.0))
        );
        assert_eq!(
            (table.columns[2].min, table.columns[2].max),
            (Some(1.25), Some(11.75))
        );
        assert_eq!(
            (table.columns[3].min, table.columns[3].max),
            (Some(0.0), Some(5.0))
        );
        assert_eq!(table.columns[2].nulls, Some(3.0));
        // Ten values in 100 rows is a domain: kept at ten in 200.
        assert_eq!(table.columns[0].distinct, Some(10.0));
    }
}
