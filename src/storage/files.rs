//! Tables over files: `'path.csv'` in FROM, `read_csv`/`read_parquet`, and `CREATE EXTERNAL TABLE`,
//! all wrapped so local files are validated before DataFusion reads them.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProviderFactory};
use datafusion::common::config::CsvOptions;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::common::{Constraints, ScalarValue, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::listing_table_factory::ListingTableFactory;
use datafusion::catalog::UrlTableFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    CreateExternalTable, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;

use super::validate::{CsvDialect, check_csv, check_parquet};

/// A file-backed table whose local files are checked (and the check cached) at every scan.
#[derive(Debug)]
pub struct GuardedTable {
    inner: Arc<ListingTable>,
}

impl GuardedTable {
    pub fn wrap(table: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        let any: Arc<dyn std::any::Any + Send + Sync> = table.clone();
        match any.downcast::<ListingTable>() {
            Ok(inner) => Arc::new(GuardedTable { inner }),
            Err(_) => table,
        }
    }

    async fn validate(&self, state: &dyn Session) -> Result<()> {
        let options = self.inner.options();
        let format = options.format.as_ref();
        let dialect = if let Some(csv) = format.downcast_ref::<CsvFormat>() {
            let o = csv.options();
            if o.compression != CompressionTypeVariant::UNCOMPRESSED {
                return Ok(());
            }
            let data_columns =
                self.inner.schema().fields().len() - options.table_partition_cols.len();
            Some(CsvDialect {
                delimiter: o.delimiter,
                quote: o.quote,
                escape: o.escape,
                comment: o.comment,
                has_header: o.has_header.unwrap_or(true),
                truncated_rows: o.truncated_rows.unwrap_or(false),
                expected_fields: Some(data_columns),
            })
        } else if format.downcast_ref::<ParquetFormat>().is_some() {
            None
        } else {
            return Ok(());
        };
        let mut paths: Vec<PathBuf> = vec![];
        for url in self.inner.table_paths() {
            if url.scheme() != "file" {
                continue;
            }
            let store = state.runtime_env().object_store(url.object_store())?;
            let listed: Vec<_> = url
                .list_all_files(state, store.as_ref(), &options.file_extension)
                .await?
                .try_collect()
                .await?;
            paths.extend(listed.into_iter().map(|m| PathBuf::from(format!("/{}", m.location))));
        }
        let checks = paths.into_iter().map(|path| {
            let dialect = dialect.clone();
            tokio::task::spawn_blocking(move || match &dialect {
                Some(d) => check_csv(&path, d),
                None => check_parquet(&path),
            })
        });
        for result in futures::future::join_all(checks).await {
            result
                .map_err(|e| DataFusionError::Execution(format!("file check failed: {e}")))?
                .map_err(DataFusionError::Execution)?;
        }
        Ok(())
    }
}

#[async_trait]
impl TableProvider for GuardedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.validate(state).await?;
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}

/// `SELECT … FROM 'x.csv'`: DataFusion's dynamic file tables, guarded.
#[derive(Debug, Default)]
pub struct GuardedUrlFactory {
    inner: DynamicListTableFactory,
}

impl GuardedUrlFactory {
    /// Tie the factory to the session whose settings and object stores it uses.
    pub fn register_session(&self, ctx: &datafusion::prelude::SessionContext) {
        self.inner.session_store().with_state(ctx.state_weak_ref());
    }
}

#[async_trait]
impl UrlTableFactory for GuardedUrlFactory {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.inner.try_new(url).await?.map(GuardedTable::wrap))
    }
}

/// `CREATE EXTERNAL TABLE … STORED AS CSV|PARQUET`: DataFusion's listing tables, guarded.
#[derive(Debug, Default)]
pub struct GuardedTableFactory {
    inner: ListingTableFactory,
}

#[async_trait]
impl TableProviderFactory for GuardedTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        Ok(GuardedTable::wrap(self.inner.create(state, cmd).await?))
    }
}

/// `read_csv(path [, option = value …])` and `read_parquet(path)`.
#[derive(Debug)]
pub struct ReadFiles {
    csv: bool,
}

impl ReadFiles {
    pub fn csv() -> Self {
        ReadFiles { csv: true }
    }

    pub fn parquet() -> Self {
        ReadFiles { csv: false }
    }

    fn name(&self) -> &'static str {
        if self.csv { "read_csv" } else { "read_parquet" }
    }

    fn usage(&self) -> String {
        if self.csv {
            "read_csv('path' [, header = true, delimiter = ',', quote = '\"', escape = '\\\\', \
             comment = '#', null_value = 'NA', truncated_rows = false, \
             schema_infer_max_records = 1000, file_extension = '.csv'])"
                .into()
        } else {
            "read_parquet('path' [, file_extension = '.parquet'])".into()
        }
    }

    fn options(&self, exprs: &[Expr]) -> Result<(String, ListingOptions)> {
        let bad = |why: String| DataFusionError::Plan(format!("{}: {why}; usage: {}", self.name(), self.usage()));
        let path = match exprs.first() {
            Some(Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _)) => p.clone(),
            _ => return Err(bad("the first argument must be a path or glob in quotes".into())),
        };
        let mut csv = CsvOptions { has_header: Some(true), ..Default::default() };
        let mut extension: Option<String> = None;
        for arg in &exprs[1..] {
            let (key, value) = match arg {
                Expr::BinaryExpr(b) if b.op == Operator::Eq => match (&*b.left, &*b.right) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c.name.to_lowercase(), v.clone()),
                    _ => return Err(bad(format!("cannot read option '{arg}'"))),
                },
                _ => return Err(bad(format!("options are written name = value, got '{arg}'"))),
            };
            let text = || match &value {
                ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Ok(s.clone()),
                other => Err(bad(format!("option {key} takes a quoted string, got {other}"))),
            };
            let byte = || -> Result<u8> {
                let s = text()?;
                match s.as_bytes() {
                    [b] => Ok(*b),
                    _ => Err(bad(format!("option {key} takes one character, got '{s}'"))),
                }
            };
            let flag = || match &value {
                ScalarValue::Boolean(Some(b)) => Ok(*b),
                other => Err(bad(format!("option {key} takes true or false, got {other}"))),
            };
            match (self.csv, key.as_str()) {
                (true, "header" | "has_header") => csv.has_header = Some(flag()?),
                (true, "delimiter" | "delim" | "sep") => csv.delimiter = byte()?,
                (true, "quote") => csv.quote = byte()?,
                (true, "escape") => csv.escape = Some(byte()?),
                (true, "comment") => csv.comment = Some(byte()?),
                (true, "null_value" | "nullstr") => csv.null_regex = Some(regex_literal(&text()?)),
                (true, "truncated_rows") => csv.truncated_rows = Some(flag()?),
                (true, "schema_infer_max_records" | "sample_size") => {
                    let n = match &value {
                        ScalarValue::Int64(Some(n)) if *n > 0 => *n as usize,
                        other => return Err(bad(format!("option {key} takes a positive integer, got {other}"))),
                    };
                    csv.schema_infer_max_rec = Some(n);
                }
                (_, "file_extension") => extension = Some(text()?),
                _ => return Err(bad(format!("unknown option '{key}'"))),
            }
        }
        let extension = extension.unwrap_or_else(|| default_extension(&path, self.csv));
        let format: Arc<dyn datafusion::datasource::file_format::FileFormat> = if self.csv {
            Arc::new(CsvFormat::default().with_options(csv))
        } else {
            Arc::new(ParquetFormat::default())
        };
        Ok((path, ListingOptions::new(format).with_file_extension(extension)))
    }
}

/// The extension a single named file has, so `read_csv('data.txt')` reads it; `.csv`/`.parquet` for directories.
fn default_extension(path: &str, csv: bool) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((_, ext)) if !ext.contains('*') && !last.contains('*') && !path.ends_with('/') => {
            format!(".{ext}")
        }
        _ if csv => ".csv".into(),
        _ => ".parquet".into(),
    }
}

fn regex_literal(text: &str) -> String {
    let mut out = String::from("^");
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

impl TableFunctionImpl for ReadFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (path, options) = self.options(args.exprs())?;
        let state = args.session();
        let url = ListingTableUrl::parse(&path)?;
        let config = ListingTableConfig::new(url).with_listing_options(options);
        // Schema inference is async but table functions are planned synchronously.
        let config = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let config = config.infer_partitions_from_path(state).await?;
                config.infer_schema(state).await
            })
        })
        .map_err(|e| {
            DataFusionError::Plan(format!("{}('{path}'): {e}", self.name()))
        })?;
        Ok(GuardedTable::wrap(Arc::new(ListingTable::try_new(config)?)))
    }
}
