//! What `ANALYZE` measured, kept in `catalog.json` beside the tables: per table its row
//! count, and per column its NULL count, an approximate distinct count and its min and max.
//! They fill what a scan cannot report (a CSV table reports nothing; no source reports
//! distinct counts) and live numbers win where both exist, so statistics that have aged
//! since the last `ANALYZE` only ever fill gaps.

use serde::{Deserialize, Serialize};

use super::store::CatalogFile;

/// A distinct count above this share of the rows is taken to grow with the table (a key,
/// an amount); below it, to be a fixed domain (a status, a country). PostgreSQL draws the
/// same line when it stores `n_distinct` as a fraction.
const GROWS_WITH_ROWS: f64 = 0.1;

/// One table's statistics as of its last `ANALYZE`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableStatistics {
    pub table: String,
    pub rows: u64,
    pub columns: Vec<ColumnStatistics>,
}

/// One column's statistics. `min` and `max` are the values' text (parsed back with the
/// column's type where a number is needed); `None` where the type has no order or the
/// value is too long to be worth keeping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnStatistics {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nulls: u64,
    #[serde(default)]
    pub distinct: Option<u64>,
    #[serde(default)]
    pub min: Option<String>,
    #[serde(default)]
    pub max: Option<String>,
}

impl TableStatistics {
    pub fn column(&self, name: &str) -> Option<&ColumnStatistics> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `column`'s distinct count for a table that now has `rows` rows: a count that grows
    /// with the table is scaled by its growth, a fixed domain kept, neither above `rows`.
    pub fn distinct_at(&self, column: &ColumnStatistics, rows: f64) -> Option<f64> {
        let distinct = column.distinct? as f64;
        let analyzed = self.rows as f64;
        let scaled = if analyzed > 0.0 && distinct > GROWS_WITH_ROWS * analyzed {
            distinct * rows / analyzed
        } else {
            distinct
        };
        Some(scaled.min(rows).max(if rows > 0.0 { 1.0 } else { 0.0 }))
    }
}

impl CatalogFile {
    /// The statistics `ANALYZE` last stored for `table`.
    pub fn statistics_of(&self, table: &str) -> Option<&TableStatistics> {
        self.statistics.iter().find(|s| s.table == table)
    }

    /// Store `analyzed`: its columns replace those measured before, the other columns of
    /// an earlier `ANALYZE` are kept (as PostgreSQL's `ANALYZE t (a, b)` does) unless the
    /// table no longer has them.
    pub fn put_statistics(&mut self, mut analyzed: TableStatistics, columns: &[String]) {
        if let Some(old) = self
            .statistics
            .iter()
            .position(|s| s.table == analyzed.table)
        {
            let old = self.statistics.remove(old);
            for column in old.columns {
                if analyzed.column(&column.name).is_none() && columns.contains(&column.name) {
                    analyzed.columns.push(column);
                }
            }
        }
        self.statistics.push(analyzed);
    }

    /// Forget `table`'s statistics (it was dropped or replaced).
    pub fn remove_statistics(&mut self, table: &str) {
        self.statistics.retain(|s| s.table != table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, distinct: u64) -> ColumnStatistics {
        ColumnStatistics {
            name: name.into(),
            data_type: "Int64".into(),
            nulls: 0,
            distinct: Some(distinct),
            min: None,
            max: None,
        }
    }

    #[test]
    fn keys_scale_with_the_table_and_domains_do_not() {
        let stats = TableStatistics {
            table: "t".into(),
            rows: 1000,
            columns: vec![column("id", 1000), column("status", 5)],
        };
        let id = stats.column("id").expect("id");
        let status = stats.column("status").expect("status");
        assert_eq!(stats.distinct_at(id, 4000.0), Some(4000.0));
        assert_eq!(stats.distinct_at(status, 4000.0), Some(5.0));
        // Never more than the rows the table has now.
        assert_eq!(stats.distinct_at(status, 3.0), Some(3.0));
    }

    #[test]
    fn a_partial_analyze_keeps_the_other_columns() {
        let mut catalog = CatalogFile::default();
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        catalog.put_statistics(
            TableStatistics {
                table: "t".into(),
                rows: 10,
                columns: vec![column("a", 1), column("b", 2)],
            },
            &names,
        );
        catalog.put_statistics(
            TableStatistics {
                table: "t".into(),
                rows: 20,
                columns: vec![column("b", 7)],
            },
            &names,
        );
        let t = catalog.statistics_of("t").expect("stored");
        assert_eq!(t.rows, 20);
        assert_eq!(t.column("a").and_then(|c| c.distinct), Some(1));
        assert_eq!(t.column("b").and_then(|c| c.distinct), Some(7));
        // A column the table lost is not kept.
        catalog.put_statistics(
            TableStatistics {
                table: "t".into(),
                rows: 20,
                columns: vec![column("b", 7)],
            },
            &names[1..],
        );
        assert!(catalog.statistics_of("t").expect("t").column("a").is_none());
        catalog.remove_statistics("t");
        assert!(catalog.statistics_of("t").is_none());
    }
}
