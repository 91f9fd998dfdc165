//! The definition stored for an external table: the whole statement. DataFusion's own text
//! (its `Display`) drops the columns, `PARTITIONED BY`, constraints and `OPTIONS`, so a table
//! restored from it would lose its delimiter, its declared types and its partitions.

use datafusion::sql::parser::CreateExternalTable;
use datafusion::sql::sqlparser::ast::Value;

/// `create` as SQL that re-creates the same table (without `OR REPLACE`/`IF NOT EXISTS`,
/// which only matter the first time).
pub fn definition(create: &CreateExternalTable) -> String {
    let quote = |s: &str| Value::SingleQuotedString(s.to_string()).to_string();
    let mut sql = String::from("CREATE ");
    if create.unbounded {
        sql.push_str("UNBOUNDED ");
    }
    sql.push_str(&format!("EXTERNAL TABLE {}", create.name));
    let mut elements: Vec<String> = create.columns.iter().map(|c| c.to_string()).collect();
    elements.extend(create.constraints.iter().map(|c| c.to_string()));
    if !elements.is_empty() {
        sql.push_str(&format!(" ({})", elements.join(", ")));
    }
    sql.push_str(&format!(" STORED AS {}", create.file_type));
    if !create.table_partition_cols.is_empty() {
        sql.push_str(&format!(
            " PARTITIONED BY ({})",
            create.table_partition_cols.join(", ")
        ));
    }
    if !create.order_exprs.is_empty() {
        let orders: Vec<String> = create
            .order_exprs
            .iter()
            .map(|ordering| {
                ordering
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        for order in orders {
            sql.push_str(&format!(" WITH ORDER ({order})"));
        }
    }
    let locations: Vec<String> = create.locations.iter().map(|l| quote(l)).collect();
    match locations.as_slice() {
        [one] => sql.push_str(&format!(" LOCATION {one}")),
        many => sql.push_str(&format!(" LOCATION ({})", many.join(", "))),
    }
    if !create.options.is_empty() {
        let options: Vec<String> = create
            .options
            .iter()
            .map(|(key, value)| format!("{} {value}", quote(key)))
            .collect();
        sql.push_str(&format!(" OPTIONS ({})", options.join(", ")));
    }
    sql
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::{DFParser, Statement};

    use super::definition;

    fn parse(sql: &str) -> datafusion::sql::parser::CreateExternalTable {
        match DFParser::parse_sql(sql)
            .ok()
            .and_then(|mut s| s.pop_front())
        {
            Some(Statement::CreateExternalTable(c)) => c,
            other => panic!("not a CREATE EXTERNAL TABLE: {other:?}"),
        }
    }

    #[test]
    fn the_definition_parses_back_to_the_same_table() {
        for sql in [
            "CREATE EXTERNAL TABLE t (a INT NOT NULL, b VARCHAR, p VARCHAR) STORED AS CSV \
             PARTITIONED BY (p) WITH ORDER (a ASC) LOCATION 'dir/' \
             OPTIONS ('format.delimiter' ';', 'format.has_header' 'false')",
            "CREATE UNBOUNDED EXTERNAL TABLE s STORED AS PARQUET LOCATION 's3://b/it''s/'",
            "CREATE EXTERNAL TABLE m STORED AS CSV LOCATION ('a.csv', 'b.csv')",
        ] {
            let original = parse(sql);
            let again = parse(&definition(&original));
            assert_eq!(again, original, "{}", definition(&original));
        }
    }
}
