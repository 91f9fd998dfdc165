//! Tables over files: `'path.csv'` in FROM, `read_csv`/`read_parquet`, and `CREATE EXTERNAL TABLE`,
//! all wrapped so local files are validated before DataFusion reads them.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::UrlTableFactory;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProviderFactory};
use datafusion::common::config::CsvOptions;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::common::{Constraints, ScalarValue, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableConfigExt, ListingTableUrl,
};
use datafusion::datasource::listing_table_factory::ListingTableFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

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

    async fn validate(&self, _state: &dyn Session) -> Result<()> {
        let options = self.inner.options();
        let Some(check) = FileCheck::for_format(options.format.as_ref()) else {
            return Ok(());
        };
        let check = match check {
            FileCheck::Csv(mut d) => {
                d.expected_fields =
                    Some(self.inner.schema().fields().len() - options.table_partition_cols.len());
                FileCheck::Csv(d)
            }
            other => other,
        };
        check
            .run_blocking(
                self.inner.table_paths().clone(),
                options.file_extension.clone(),
            )
            .await
    }
}

/// The check a file format gets: CSV structure with its dialect, or the Parquet footer.
#[derive(Debug, Clone)]
pub enum FileCheck {
    Csv(CsvDialect),
    Parquet,
}

impl FileCheck {
    fn for_format(
        format: &dyn datafusion::datasource::file_format::FileFormat,
    ) -> Option<FileCheck> {
        if let Some(csv) = format.downcast_ref::<CsvFormat>() {
            let o = csv.options();
            if o.compression != CompressionTypeVariant::UNCOMPRESSED {
                return None;
            }
            return Some(FileCheck::Csv(CsvDialect {
                delimiter: o.delimiter,
                quote: o.quote,
                escape: o.escape,
                comment: o.comment,
                has_header: o.has_header.unwrap_or(true),
                truncated_rows: o.truncated_rows.unwrap_or(false),
                expected_fields: None,
            }));
        }
        format
            .downcast_ref::<ParquetFormat>()
            .map(|_| FileCheck::Parquet)
    }

    /// Guess from a path's extension (for `'x.csv'` in FROM), with DataFusion's CSV defaults.
    fn for_extension(path: &str) -> Option<FileCheck> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(FileCheck::Csv(CsvDialect::default()))
        } else if lower.ends_with(".parquet") {
            Some(FileCheck::Parquet)
        } else {
            None
        }
    }

    /// Check every local file the URLs cover (other schemes are skipped).
    fn run(&self, urls: &[ListingTableUrl], extension: &str) -> Result<()> {
        for url in urls {
            for path in local_files(url, extension) {
                match self {
                    FileCheck::Csv(d) => check_csv(&path, d),
                    FileCheck::Parquet => check_parquet(&path),
                }
                .map_err(DataFusionError::Execution)?;
            }
        }
        Ok(())
    }

    async fn run_blocking(&self, urls: Vec<ListingTableUrl>, extension: String) -> Result<()> {
        let check = self.clone();
        tokio::task::spawn_blocking(move || check.run(&urls, &extension))
            .await
            .map_err(|e| DataFusionError::Execution(format!("file check failed: {e}")))?
    }
}

/// Create a file table with `create`, checked: Parquet footers before DataFusion reads them
/// (a bad footer can panic inside the parquet crate), CSV structure when inference fails
/// (so the error names file, line and column instead of DataFusion's generic message).
async fn create_checked<F>(
    check: Option<FileCheck>,
    urls: Vec<ListingTableUrl>,
    extension: String,
    create: F,
) -> Result<Option<Arc<dyn TableProvider>>>
where
    F: std::future::Future<Output = Result<Option<Arc<dyn TableProvider>>>>,
{
    use futures::FutureExt;
    if let Some(FileCheck::Parquet) = &check {
        FileCheck::Parquet
            .run_blocking(urls.clone(), extension.clone())
            .await?;
    }
    match std::panic::AssertUnwindSafe(create).catch_unwind().await {
        Ok(Ok(table)) => Ok(table.map(GuardedTable::wrap)),
        Ok(Err(e)) => {
            if let Some(check) = &check {
                check.run_blocking(urls, extension).await?;
            }
            Err(e)
        }
        Err(_) => {
            if let Some(check) = &check {
                check.run_blocking(urls, extension).await?;
            }
            Err(DataFusionError::Execution(
                "reading the file's metadata failed (the file may be corrupt)".into(),
            ))
        }
    }
}

/// Local files a listing URL covers, by walking the directory under its prefix.
fn local_files(url: &ListingTableUrl, extension: &str) -> Vec<PathBuf> {
    if url.scheme() != "file" {
        return vec![];
    }
    let root = PathBuf::from(format!("/{}", url.prefix()));
    if root.is_file() {
        return vec![root];
    }
    let mut out = vec![];
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(extension) {
                let relative = path.to_string_lossy().trim_start_matches('/').to_string();
                if url.contains(&object_store::path::Path::from(relative), false) {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out
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

/// Like `ListingTableUrl::parse`, with globs in object-store URLs too (`s3://b/dir/*.parquet`):
/// DataFusion expands globs in local paths only.
pub fn parse_location(location: &str) -> Result<ListingTableUrl> {
    let remote = location
        .find("://")
        .filter(|_| !location.starts_with("file://"));
    if let Some(scheme_end) = remote {
        let glob_chars: &[char] = if location.starts_with("http") {
            &['*', '[']
        } else {
            &['*', '?', '[']
        };
        if let Some(first) = location.find(glob_chars) {
            let cut = location[..first].rfind('/').map_or(0, |i| i + 1);
            if cut > scheme_end + 3 {
                let (prefix, pattern) = location.split_at(cut);
                let pattern = glob::Pattern::new(pattern).map_err(|e| {
                    DataFusionError::Plan(format!("invalid glob '{pattern}' in '{location}': {e}"))
                })?;
                let url = url::Url::parse(prefix)
                    .map_err(|e| DataFusionError::Plan(format!("invalid URL '{location}': {e}")))?;
                return ListingTableUrl::try_new(url, Some(pattern));
            }
        }
    }
    ListingTableUrl::parse(location)
}

/// A listing table from `config` whose options are known: partitions and schema inferred.
async fn listing_table(
    config: ListingTableConfig,
    state: &dyn Session,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let config = config.infer_partitions_from_path(state).await?;
    let config = config.infer_schema(state).await?;
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
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
        super::sandbox::check_location(url, false)?;
        let Ok(parsed) = parse_location(url) else {
            return Ok(None);
        };
        let check = FileCheck::for_extension(url).or_else(|| {
            local_files(&parsed, "")
                .first()
                .and_then(|f| FileCheck::for_extension(&f.to_string_lossy()))
        });
        let extension = match &check {
            Some(FileCheck::Csv(_)) => ".csv",
            Some(FileCheck::Parquet) => ".parquet",
            None => "",
        };
        if parsed.scheme() == "file" {
            return create_checked(
                check,
                vec![parsed],
                extension.into(),
                self.inner.try_new(url),
            )
            .await;
        }
        // DataFusion's factory turns every failure into "table not found"; for an object
        // store URL the real reason (credentials, bucket, network) is the useful error.
        let state = self
            .inner
            .session_store()
            .get_session()
            .upgrade()
            .and_then(|s| s.read().as_any().downcast_ref::<SessionState>().cloned())
            .ok_or_else(|| DataFusionError::Internal("the session has ended".into()))?;
        let url = parsed.clone();
        let create = async {
            let config = ListingTableConfig::new(url).infer_options(&state).await?;
            listing_table(config, &state).await
        };
        create_checked(check, vec![parsed], extension.into(), create).await
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
        for location in &cmd.locations {
            super::sandbox::check_location(location, true)?;
        }
        let urls = cmd
            .locations
            .iter()
            .filter_map(|l| ListingTableUrl::parse(l).ok())
            .collect();
        let check = match cmd.file_type.to_ascii_uppercase().as_str() {
            "PARQUET" => Some(FileCheck::Parquet),
            "CSV" => Some(FileCheck::Csv(CsvDialect {
                delimiter: option_byte(cmd, "format.delimiter").unwrap_or(b','),
                quote: option_byte(cmd, "format.quote").unwrap_or(b'"'),
                escape: option_byte(cmd, "format.escape"),
                comment: option_byte(cmd, "format.comment"),
                has_header: cmd
                    .options
                    .get("format.has_header")
                    .is_none_or(|v| v == "true"),
                truncated_rows: cmd
                    .options
                    .get("format.truncated_rows")
                    .is_some_and(|v| v == "true"),
                expected_fields: None,
            })),
            _ => None,
        };
        let extension = if cmd.file_type.eq_ignore_ascii_case("csv") {
            ".csv"
        } else {
            ".parquet"
        };
        let create = async { self.inner.create(state, cmd).await.map(Some) };
        let table = create_checked(check, urls, extension.into(), create).await?;
        table.ok_or_else(|| DataFusionError::Internal("no table created".into()))
    }
}

fn option_byte(cmd: &CreateExternalTable, key: &str) -> Option<u8> {
    cmd.options
        .get(key)
        .and_then(|v| v.as_bytes().first().copied())
}

/// `read_csv(path [, 'option', value …])` and `read_parquet(path)`.
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
            "read_csv('path' [, 'option', value]...) with options 'header' (true/false), \
             'delimiter', 'quote', 'escape', 'comment' (one character each), 'null_value', \
             'truncated_rows' (true/false), 'schema_infer_max_records' (number), 'file_extension'; \
             e.g. read_csv('x.txt', 'header', false, 'delimiter', ';')"
                .into()
        } else {
            "read_parquet('path' [, 'file_extension', '.parq'])".into()
        }
    }

    fn options(&self, exprs: &[Expr]) -> Result<(String, ListingOptions)> {
        let bad = |why: String| {
            DataFusionError::Plan(format!("{}: {why}; usage: {}", self.name(), self.usage()))
        };
        let path = match exprs.first() {
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(p))
                | ScalarValue::LargeUtf8(Some(p))
                | ScalarValue::Utf8View(Some(p)),
                _,
            )) => p.clone(),
            _ => {
                return Err(bad(
                    "the first argument must be a path or glob in quotes".into()
                ));
            }
        };
        let mut csv = CsvOptions {
            has_header: Some(true),
            ..Default::default()
        };
        let mut extension: Option<String> = None;
        // DataFusion drops argument names of table functions, so options come as pairs:
        // read_csv('x.txt', 'header', false, 'delimiter', ';'), like OPTIONS ('k' 'v').
        let rest = &exprs[1..];
        if !rest.len().is_multiple_of(2) {
            return Err(bad("options come in pairs: 'name', value".into()));
        }
        for pair in rest.chunks(2) {
            let key = match &pair[0] {
                Expr::Literal(
                    ScalarValue::Utf8(Some(k))
                    | ScalarValue::Utf8View(Some(k))
                    | ScalarValue::LargeUtf8(Some(k)),
                    _,
                ) => k.to_lowercase(),
                other => {
                    return Err(bad(format!(
                        "expected an option name in quotes, got {other}"
                    )));
                }
            };
            let value = match &pair[1] {
                Expr::Literal(v, _) => v.clone(),
                other => {
                    return Err(bad(format!(
                        "option '{key}' needs a literal value, got {other}"
                    )));
                }
            };
            let text = || match &value {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => Ok(s.clone()),
                other => Err(bad(format!(
                    "option '{key}' takes a quoted string, got {other}"
                ))),
            };
            let byte = || -> Result<u8> {
                let s = text()?;
                match s.as_bytes() {
                    [b] => Ok(*b),
                    _ => Err(bad(format!(
                        "option '{key}' takes one character, got '{s}'"
                    ))),
                }
            };
            let flag = || match &value {
                ScalarValue::Boolean(Some(b)) => Ok(*b),
                other => Err(bad(format!(
                    "option '{key}' takes true or false, got {other}"
                ))),
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
                        other => {
                            return Err(bad(format!(
                                "option '{key}' takes a positive integer, got {other}"
                            )));
                        }
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
        Ok((
            path,
            ListingOptions::new(format).with_file_extension(extension),
        ))
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
        super::sandbox::check_location(&path, true)?;
        let url = parse_location(&path)?;
        let check = FileCheck::for_format(options.format.as_ref());
        let extension = options.file_extension.clone();
        let config = ListingTableConfig::new(url.clone()).with_listing_options(options);
        let create = listing_table(config, state);
        // Schema inference is async but table functions are planned synchronously.
        let table = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(create_checked(
                check,
                vec![url],
                extension,
                create,
            ))
        })
        .map_err(|e| DataFusionError::Plan(format!("{}('{path}'): {e}", self.name())))?;
        table.ok_or_else(|| DataFusionError::Internal("no table created".into()))
    }
}
