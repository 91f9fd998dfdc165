//! Where an in-memory database keeps its tables: an in-memory object store whose bytes are
//! charged to the database's memory pool, so stored tables obey `--memory-limit` as the
//! queries beside them do, and dropping data gives the memory back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// An [`InMemory`] store that reserves every byte it holds from a memory pool.
#[derive(Debug)]
pub struct AccountedMemory {
    inner: InMemory,
    ledger: Arc<Mutex<Ledger>>,
}

#[derive(Debug)]
struct Ledger {
    reservation: MemoryReservation,
    sizes: HashMap<Path, usize>,
}

impl AccountedMemory {
    pub fn new(pool: &Arc<dyn MemoryPool>) -> Self {
        let reservation = MemoryConsumer::new("stored tables (in-memory database)").register(pool);
        AccountedMemory {
            inner: InMemory::new(),
            ledger: Arc::new(Mutex::new(Ledger {
                reservation,
                sizes: HashMap::new(),
            })),
        }
    }
}

impl fmt::Display for AccountedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountedMemory")
    }
}

fn full(bytes: usize, e: impl fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: "memory",
        source: format!(
            "a table does not fit in memory ({bytes} more bytes: {e}); raise --memory-limit, or \
             open a database directory (augur PATH) so tables are stored on disk"
        )
        .into(),
    }
}

impl Ledger {
    fn charge(&mut self, bytes: usize) -> Result<()> {
        self.reservation.try_grow(bytes).map_err(|e| full(bytes, e))
    }

    /// `location` now holds `bytes` (charged already): release what it held before.
    fn settle(&mut self, location: &Path, bytes: usize) {
        if let Some(old) = self.sizes.insert(location.clone(), bytes) {
            self.reservation.shrink(old.min(self.reservation.size()));
        }
    }

    fn release(&mut self, location: &Path) {
        if let Some(old) = self.sizes.remove(location) {
            self.reservation.shrink(old.min(self.reservation.size()));
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl ObjectStore for AccountedMemory {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let bytes = payload.content_length();
        lock(&self.ledger).charge(bytes)?;
        match self.inner.put_opts(location, payload, opts).await {
            Ok(result) => {
                lock(&self.ledger).settle(location, bytes);
                Ok(result)
            }
            Err(e) => {
                lock(&self.ledger).reservation.shrink(bytes);
                Err(e)
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(AccountedUpload {
            inner,
            location: location.clone(),
            charged: 0,
            ledger: Arc::clone(&self.ledger),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let ledger = Arc::clone(&self.ledger);
        self.inner
            .delete_stream(locations)
            .map(move |deleted| {
                if let Ok(path) = &deleted {
                    lock(&ledger).release(path);
                }
                deleted
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let bytes = self.inner.head(from).await?.size as usize;
        lock(&self.ledger).charge(bytes)?;
        match self.inner.copy_opts(from, to, options).await {
            Ok(()) => {
                lock(&self.ledger).settle(to, bytes);
                Ok(())
            }
            Err(e) => {
                lock(&self.ledger).reservation.shrink(bytes);
                Err(e)
            }
        }
    }
}

/// A multipart upload charging each part as it arrives.
#[derive(Debug)]
struct AccountedUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    charged: usize,
    ledger: Arc<Mutex<Ledger>>,
}

#[async_trait]
impl MultipartUpload for AccountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let bytes = data.content_length();
        if let Err(e) = lock(&self.ledger).charge(bytes) {
            return Box::pin(futures::future::ready(Err(e)));
        }
        self.charged += bytes;
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await;
        let mut ledger = lock(&self.ledger);
        match &result {
            Ok(_) => ledger.settle(&self.location, self.charged),
            Err(_) => ledger.reservation.shrink(self.charged),
        }
        self.charged = 0;
        result
    }

    async fn abort(&mut self) -> Result<()> {
        lock(&self.ledger).reservation.shrink(self.charged);
        self.charged = 0;
        self.inner.abort().await
    }
}
