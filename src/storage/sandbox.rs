//! Where a remote session may read and write local files: only under its allowed directories
//! (symlinks resolved). Two checks: at planning, on every local path a statement names
//! (before our own validation opens the file), and in the session's object store, on every
//! read, write and listing DataFusion makes.

use std::fmt::{Debug, Display};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

/// The directories one session may touch.
#[derive(Debug, Clone)]
pub struct Sandbox {
    allowed: Arc<Vec<PathBuf>>,
}

tokio::task_local! {
    /// The sandbox of the statement being planned on this task, if its session has one.
    pub static CURRENT: Arc<Sandbox>;
}

impl Sandbox {
    /// `allowed` directories must exist; they are canonicalised here.
    pub fn new(allowed: &[PathBuf]) -> Sandbox {
        let allowed = allowed
            .iter()
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        Sandbox {
            allowed: Arc::new(allowed),
        }
    }

    /// Whether `path` (absolute or relative to the working directory) is inside.
    pub fn check(&self, path: &Path) -> Result<(), DataFusionError> {
        let resolved = resolve(path);
        if self.allowed.iter().any(|dir| resolved.starts_with(dir)) {
            return Ok(());
        }
        let allowed = if self.allowed.is_empty() {
            "none: this server was started without a database directory or --allow-dir".into()
        } else {
            self.allowed
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(DataFusionError::External(Box::new(
            crate::error::AugurError::PermissionDenied(format!(
                "'{}' is outside the directories this connection may use ({allowed}); the \
                 server's --allow-dir option adds directories",
                path.display()
            )),
        )))
    }
}

/// The canonical form of `path`: symlinks resolved for the part that exists, `..` folded
/// for the rest (a file about to be written).
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = vec![];
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(name) => out.push(name),
                    _ => {}
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Check a location a statement names (`'file.csv'`, `file:///…`, a glob), if the statement
/// runs in a sandboxed session. Remote URLs (`s3://`, `https://`) are not local files.
/// `strict`: also when nothing exists there yet (a table's location is created on write).
pub fn check_location(location: &str, strict: bool) -> Result<(), DataFusionError> {
    let Ok(sandbox) = CURRENT.try_with(Arc::clone) else {
        return Ok(());
    };
    let path = match location.strip_prefix("file://") {
        Some(rest) => PathBuf::from(rest),
        None if location.contains("://") => return Ok(()),
        None => PathBuf::from(location),
    };
    // A glob's fixed part decides where it can reach.
    let fixed: PathBuf = path
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    // A name that is no file (`FROM no_such_table`) is not a file access: DataFusion
    // reports the missing table. Writes to new files are checked by the object store.
    if !strict && !fixed.exists() && fixed == path {
        return Ok(());
    }
    sandbox.check(&fixed)
}

/// An object-store registry whose local (`file://`) store is sandboxed.
#[derive(Debug)]
pub struct SandboxedRegistry {
    pub inner: Arc<dyn ObjectStoreRegistry>,
    pub sandbox: Sandbox,
}

impl ObjectStoreRegistry for SandboxedRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let store = self.inner.get_store(url)?;
        if url.scheme() == "file" {
            return Ok(Arc::new(SandboxedStore {
                inner: store,
                sandbox: self.sandbox.clone(),
            }));
        }
        Ok(store)
    }
}

#[derive(Debug)]
struct SandboxedStore {
    inner: Arc<dyn ObjectStore>,
    sandbox: Sandbox,
}

impl Display for SandboxedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sandboxed({})", self.inner)
    }
}

impl SandboxedStore {
    fn check(&self, location: &StorePath) -> object_store::Result<()> {
        check_store_path(&self.sandbox, location)
    }
}

/// A local store's path (relative to `/`) checked, as the store's own error.
fn check_store_path(sandbox: &Sandbox, location: &StorePath) -> object_store::Result<()> {
    let path = PathBuf::from(format!("/{location}"));
    sandbox
        .check(&path)
        .map_err(|e| object_store::Error::PermissionDenied {
            path: path.display().to_string(),
            source: Box::new(e),
        })
}

#[async_trait]
impl ObjectStore for SandboxedStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &StorePath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        let sandbox = self.sandbox.clone();
        let checked = locations.map(move |location| {
            let location = location?;
            check_store_path(&sandbox, &location)?;
            Ok(location)
        });
        self.inner.delete_stream(checked.boxed())
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = StorePath::default();
        if let Err(e) = self.check(prefix.unwrap_or(&root)) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.check(prefix.unwrap_or(&StorePath::default()))?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_before_the_check() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        let inside = root.path().join("inside");
        std::fs::create_dir(&inside)?;
        let sandbox = Sandbox::new(std::slice::from_ref(&inside));
        assert!(sandbox.check(&inside.join("new.csv")).is_ok());
        assert!(sandbox.check(&inside.join("../outside.csv")).is_err());
        assert!(sandbox.check(Path::new("/etc/passwd")).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", inside.join("link"))?;
            assert!(sandbox.check(&inside.join("link/passwd")).is_err());
        }
        Ok(())
    }
}
