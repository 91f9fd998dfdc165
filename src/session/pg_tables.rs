//! Postgres's catalog tables with their array columns as arrays: datafusion-pg-catalog ships
//! `pg_index.indkey` (`"1 2"`), `pg_constraint.conkey` (`"[1, 2]"`) and the like as text,
//! and the reflection queries of SQLAlchemy and others `unnest` them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Builder, ListBuilder, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{ArrowTable, PgCatalogStaticTables};

use datafusion::error::Result;

/// Give the tables' vector and array columns PostgreSQL's element types.
pub(super) fn with_array_columns(tables: &mut PgCatalogStaticTables) -> Result<()> {
    use DataType::{Int16, Int32};
    tables.pg_index = convert(
        &tables.pg_index,
        &[
            ("indkey", Int16),
            ("indoption", Int16),
            ("indclass", Int32),
            ("indcollation", Int32),
        ],
    )?;
    tables.pg_constraint = convert(
        &tables.pg_constraint,
        &[("conkey", Int16), ("confkey", Int16)],
    )?;
    Ok(())
}

fn convert(table: &ArrowTable, columns: &[(&str, DataType)]) -> Result<Arc<ArrowTable>> {
    let memory = table.try_into_memtable()?;
    let batches: Vec<RecordBatch> = memory
        .batches
        .iter()
        .flat_map(|p| p.try_read().map(|b| b.clone()).unwrap_or_default())
        .collect();
    let old = datafusion::catalog::TableProvider::schema(memory.as_ref());
    let element = |name: &str| columns.iter().find(|(c, _)| *c == name).map(|(_, t)| t);
    let fields: Vec<Field> = old
        .fields()
        .iter()
        .map(|f| match element(f.name()) {
            Some(t) => Field::new(
                f.name(),
                DataType::List(Arc::new(Field::new_list_field(t.clone(), true))),
                f.is_nullable(),
            ),
            None => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut bytes = vec![];
    {
        let mut writer = FileWriter::try_new(&mut bytes, &schema)?;
        for batch in &batches {
            let arrays = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| match field.data_type() {
                    DataType::List(_) => to_list(column, field.data_type()),
                    _ => Ok(Arc::clone(column)),
                })
                .collect::<Result<Vec<_>>>()?;
            writer.write(&RecordBatch::try_new(Arc::clone(&schema), arrays)?)?;
        }
        writer.finish()?;
    }
    Ok(Arc::new(ArrowTable::from_ipc_data(bytes)?))
}

/// `"1 2"`, `"{1,2}"` or `"[1, 2]"` → a list of numbers; NULL stays NULL.
fn to_list(column: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    let text = cast(column, &DataType::Utf8)?;
    let mut list = ListBuilder::new(Int64Builder::new());
    for value in text.as_string::<i32>().iter() {
        match value {
            None => list.append_null(),
            Some(v) => {
                for n in v
                    .split(|c: char| !(c.is_ascii_digit() || c == '-'))
                    .filter_map(|n| n.parse::<i64>().ok())
                {
                    list.values().append_value(n);
                }
                list.append(true);
            }
        }
    }
    let built: ArrayRef = Arc::new(list.finish());
    Ok(cast(&built, target)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn vectors_and_arrays_become_lists() -> Result<()> {
        let column: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some("1 2"),
            Some("[2, 20, 3]"),
            Some("{4}"),
            None,
        ]));
        let target = DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true)));
        let list = to_list(&column, &target)?;
        let list = list.as_list::<i32>();
        assert_eq!(list.value(0).len(), 2);
        assert_eq!(
            list.value(1)
                .as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                .values(),
            &[2, 20, 3]
        );
        assert_eq!(list.value(2).len(), 1);
        assert!(list.is_null(3));
        Ok(())
    }
}
