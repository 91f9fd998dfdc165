//! The runtime's object stores: local disk, and stores for `s3://` (any S3-compatible server)
//! and `http(s)://` URLs built the first time a query touches them, from the environment, the
//! AWS profile and the `aws.*` options of tables; plus the secrets that must never be printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::http::HttpBuilder;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use super::aws_profile;

/// Table options (without the `aws.` prefix) that are credentials: never stored in a
/// definition, never printed.
pub const SECRET_OPTIONS: [&str; 3] = ["access_key_id", "secret_access_key", "session_token"];

/// Table options Augur understands besides the secrets (the README's object-storage section
/// says what each sets).
pub const SETTING_OPTIONS: [&str; 6] = [
    "region",
    "endpoint",
    "allow_http",
    "skip_signature",
    "virtual_hosted_style_request",
    "persist_credentials",
];

/// The file (mode 0600) holding credentials the user asked to keep, per bucket.
pub const SECRETS_FILE: &str = "secrets.json";

/// Lazily filled registry: a miss for `s3://bucket` or `https://host` builds that store.
#[derive(Debug)]
pub struct StoreRegistry {
    stores: DefaultObjectStoreRegistry,
    /// `aws.*` options given for each bucket (`s3://bucket`), latest table wins.
    options: RwLock<HashMap<String, BTreeMap<String, String>>>,
    /// How each bucket's store was configured, for error messages (no secrets in it).
    described: RwLock<HashMap<String, String>>,
    secrets: RwLock<BTreeSet<String>>,
    secrets_file: Option<PathBuf>,
}

impl StoreRegistry {
    /// A registry; with a database directory, credentials kept there are loaded.
    pub fn new(database_dir: Option<PathBuf>) -> Result<StoreRegistry, String> {
        let registry = StoreRegistry {
            stores: DefaultObjectStoreRegistry::new(),
            options: Default::default(),
            described: Default::default(),
            secrets: Default::default(),
            secrets_file: database_dir.map(|d| d.join(SECRETS_FILE)),
        };
        // The process's own AWS_* credentials are masked too; they are read once, here.
        write(&registry.secrets).extend(
            [
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_ACCESS_KEY_ID",
            ]
            .iter()
            .filter_map(|var| std::env::var(var).ok()),
        );
        for (bucket, options) in registry.load_secrets()? {
            registry.remember_secrets(options.iter());
            write(&registry.options).insert(bucket, options);
        }
        Ok(registry)
    }

    /// Use `options` (keys without `aws.`) for the bucket of `location` from now on: checked,
    /// the store rebuilt, and with `persist_credentials` the keys written to the secrets file.
    pub fn configure(&self, location: &str, options: &[(String, String)]) -> Result<(), String> {
        let url = Url::parse(location)
            .ok()
            .filter(|u| matches!(u.scheme(), "s3" | "s3a"))
            .ok_or_else(|| {
                format!(
                    "aws.* options apply to s3:// locations, not '{location}'; remove them or \
                     use an s3://bucket/path location"
                )
            })?;
        let bucket = bucket_key(&url);
        let mut merged = read(&self.options)
            .get(&bucket)
            .cloned()
            .unwrap_or_default();
        let mut persist = false;
        for (key, value) in options {
            check_option(key, value)?;
            if key == "persist_credentials" {
                persist = value.eq_ignore_ascii_case("true");
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        self.remember_secrets(merged.iter());
        let (store, description) = build_s3(&url, &merged)?;
        self.stores.register_store(&url, store);
        write(&self.described).insert(bucket.clone(), description);
        write(&self.options).insert(bucket.clone(), merged.clone());
        if persist {
            self.persist(&bucket, &merged)?;
        }
        Ok(())
    }

    /// `text` with every known secret replaced by `***`; `None` when it holds none.
    pub fn redact(&self, text: &str, also: &[String]) -> Option<String> {
        let known = read(&self.secrets);
        let mut out = text.to_string();
        for secret in known.iter().chain(also) {
            if secret.len() >= 4 && out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        (out != text).then_some(out)
    }

    /// The setup of the first configured bucket that `text` mentions (`s3://b` or `/b/`).
    pub fn describe_mentioned(&self, text: &str) -> Option<String> {
        read(&self.described)
            .iter()
            .find(|(key, _)| {
                let name = key.split("://").nth(1).unwrap_or_default();
                text.contains(key.as_str()) || text.contains(&format!("/{name}/"))
            })
            .map(|(_, d)| d.clone())
    }

    fn remember_secrets<'a>(&self, options: impl Iterator<Item = (&'a String, &'a String)>) {
        let mut secrets = write(&self.secrets);
        for (key, value) in options {
            if SECRET_OPTIONS.contains(&key.as_str()) {
                secrets.insert(value.clone());
            }
        }
        for var in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
        ] {
            if let Ok(value) = std::env::var(var) {
                secrets.insert(value);
            }
        }
    }

    fn load_secrets(&self) -> Result<HashMap<String, BTreeMap<String, String>>, String> {
        let Some(path) = &self.secrets_file else {
            return Ok(HashMap::new());
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not valid ({e}); fix or delete it (tables on S3 then use the \
                     environment's credentials)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Write the bucket's keys to the secrets file: a new file, mode 0600 from creation,
    /// renamed over the old one so a crash leaves the old or the new file, never half.
    fn persist(&self, bucket: &str, options: &BTreeMap<String, String>) -> Result<(), String> {
        let Some(path) = &self.secrets_file else {
            return Err(
                "aws.persist_credentials needs a database directory; an in-memory database \
                 keeps nothing"
                    .into(),
            );
        };
        let mut all = self.load_secrets()?;
        let keys: BTreeMap<String, String> = options
            .iter()
            .filter(|(k, _)| SECRET_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.insert(bucket.to_string(), keys);
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        {
            use std::io::Write;
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            let mut file = open.open(&tmp).map_err(fail)?;
            file.write_all(text.as_bytes()).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, path).map_err(fail)
    }

    fn build(&self, url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
        let bucket = bucket_key(url);
        match url.scheme() {
            "s3" | "s3a" => {
                let options = read(&self.options)
                    .get(&bucket)
                    .cloned()
                    .unwrap_or_default();
                let (store, description) = build_s3(url, &options)?;
                write(&self.described).insert(bucket, description);
                Ok(store)
            }
            "http" | "https" => {
                // The user typed the http:// URL: plain HTTP is what they asked for.
                let store = HttpBuilder::new()
                    .with_url(bucket)
                    .with_config(ClientConfigKey::AllowHttp, "true")
                    .with_retry(retry())
                    .with_config(ClientConfigKey::ConnectTimeout, "5s")
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Arc::new(store))
            }
            other => Err(format!(
                "no object store for '{other}://' URLs; Augur reads local paths, file://, \
                 s3:// (and S3-compatible servers) and http(s)://"
            )),
        }
    }
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        self.stores.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.stores.get_store(url) {
            return Ok(store);
        }
        let store = self.build(url).map_err(DataFusionError::Configuration)?;
        self.stores.register_store(url, Arc::clone(&store));
        Ok(store)
    }
}

/// `s3://bucket` for any URL in that bucket: stores are per bucket.
pub fn bucket_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

fn check_option(key: &str, value: &str) -> Result<(), String> {
    if SECRET_OPTIONS.contains(&key) {
        return Ok(());
    }
    if !SETTING_OPTIONS.contains(&key) {
        let known: Vec<String> = SECRET_OPTIONS
            .iter()
            .chain(SETTING_OPTIONS.iter())
            .map(|k| format!("aws.{k}"))
            .collect();
        return Err(format!(
            "unknown option 'aws.{key}'; the aws.* options are {}",
            known.join(", ")
        ));
    }
    let flag = matches!(
        key,
        "allow_http" | "skip_signature" | "virtual_hosted_style_request" | "persist_credentials"
    );
    if flag && !matches!(value.to_ascii_lowercase().as_str(), "true" | "false") {
        return Err(format!(
            "option 'aws.{key}' takes 'true' or 'false', got '{value}'"
        ));
    }
    Ok(())
}

fn retry() -> RetryConfig {
    // A dead server fails the query in seconds instead of object_store's three minutes.
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
        ..Default::default()
    }
}

/// Build the store for an `s3://bucket` URL. Precedence, as in the AWS CLI: the table's
/// options, then `AWS_*` variables, then the profile; no credentials at all means unsigned
/// requests (public buckets). Instance metadata is never probed: off EC2 it hangs.
fn build_s3(
    url: &Url,
    options: &BTreeMap<String, String>,
) -> Result<(Arc<dyn ObjectStore>, String), String> {
    use AmazonS3ConfigKey as K;
    let mut builder = AmazonS3Builder::new()
        .with_url(url.as_str())
        .with_retry(retry())
        .with_config(K::Client(ClientConfigKey::ConnectTimeout), "5s");
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_")
            && let Ok(config_key) = key.to_ascii_lowercase().parse::<K>()
        {
            builder = builder.with_config(config_key, value);
        }
    }
    let has = |b: &AmazonS3Builder, k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    let from_options = options.contains_key("access_key_id");
    let mut source = if from_options {
        "keys from the table's aws.* options".to_string()
    } else if has(&builder, K::AccessKeyId) {
        "AWS_ACCESS_KEY_ID from the environment".to_string()
    } else {
        String::new()
    };
    let needs_profile = source.is_empty()
        || !(has(&builder, K::Region) || has(&builder, K::DefaultRegion))
        || !has(&builder, K::Endpoint);
    if needs_profile && let Some(profile) = aws_profile::load()? {
        if source.is_empty() {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                if let Some(token) = &profile.session_token {
                    builder = builder.with_token(token);
                }
                source = format!("profile '{}' from ~/.aws", profile.name);
            } else if !profile.unsupported.is_empty() && std::env::var("AWS_PROFILE").is_ok() {
                return Err(format!(
                    "profile '{name}' gets its credentials through {} which Augur does not \
                     run; export them first: eval \"$(aws configure export-credentials \
                     --profile {name} --format env)\"",
                    profile.unsupported.join(", "),
                    name = profile.name
                ));
            }
        }
        if !(has(&builder, K::Region) || has(&builder, K::DefaultRegion))
            && let Some(region) = &profile.region
        {
            builder = builder.with_region(region);
        }
        if !has(&builder, K::Endpoint)
            && let Some(endpoint) = &profile.endpoint_url
        {
            builder = builder.with_endpoint(endpoint);
        }
    }
    for (key, value) in options {
        let config_key = match key.as_str() {
            "session_token" => K::Token,
            "allow_http" => K::Client(ClientConfigKey::AllowHttp),
            other => other
                .parse::<K>()
                .map_err(|_| format!("unknown option 'aws.{key}'"))?,
        };
        builder = builder.with_config(config_key, value);
    }
    if has(&builder, K::AccessKeyId) != has(&builder, K::SecretAccessKey) {
        return Err("an access key id needs its secret access key: set both \
                    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or both 'aws.access_key_id' \
                    and 'aws.secret_access_key')"
            .into());
    }
    if source.is_empty() {
        if has(&builder, K::WebIdentityTokenFile) && has(&builder, K::RoleArn) {
            source = "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)".into();
        } else if has(&builder, K::ContainerCredentialsRelativeUri)
            || has(&builder, K::ContainerCredentialsFullUri)
        {
            source = "container credentials (AWS_CONTAINER_CREDENTIALS_*)".into();
        } else if !has(&builder, K::SkipSignature) {
            builder = builder.with_skip_signature(true);
            source = "none found, so requests are unsigned (works for public buckets only)".into();
        } else {
            source = "unsigned requests (skip_signature)".into();
        }
    }
    let endpoint = builder.get_config_value(&K::Endpoint);
    let allow_http = builder
        .get_config_value(&K::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"));
    if let Some(endpoint) = &endpoint
        && endpoint.starts_with("http://")
        && !allow_http
    {
        return Err(format!(
            "the S3 endpoint {endpoint} is plain HTTP, which is refused unless allowed: set \
             AWS_ALLOW_HTTP=true (or OPTIONS ('aws.allow_http' 'true')), or use https://"
        ));
    }
    let region = builder
        .get_config_value(&K::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let description = format!(
        "{}: endpoint {}, region {region}, credentials: {source}",
        bucket_key(url),
        endpoint.as_deref().unwrap_or("AWS")
    );
    let store = builder
        .build()
        .map_err(|e| format!("cannot set up {}: {e}", bucket_key(url)))?;
    Ok((Arc::new(store), description))
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
