//! A table as Augur stored it before Delta Lake (catalog format 1): Parquet files listed in
//! `catalog.json`. Read once, when such a database opens, to copy it into a Delta table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::store::CatalogStore;

/// A format-1 table: its committed Parquet files, relative to the database directory.
#[derive(Debug)]
pub struct LegacyTable {
    schema: SchemaRef,
    store: Arc<CatalogStore>,
    files: Vec<String>,
}

impl LegacyTable {
    pub fn new(schema: SchemaRef, store: Arc<CatalogStore>, files: Vec<String>) -> Self {
        LegacyTable {
            schema,
            store,
            files,
        }
    }

    /// The files the catalog listed, to delete once the copy is committed.
    pub fn files(&self) -> &[String] {
        &self.files
    }
}

#[async_trait]
impl TableProvider for LegacyTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let urls = self
            .files
            .iter()
            .map(|rel| {
                let path = self.store.absolute(rel).unwrap_or_default();
                ListingTableUrl::parse(path.to_string_lossy())
            })
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(&self.schema));
        ListingTable::try_new(config)?
            .scan(state, projection, filters, limit)
            .await
    }
}
