//! The pipelined buffer used by pipelined DML (client-go:
//! `internal/unionstore/pipelined_memdb.go`, spec §1.10 M34–M39).
//!
//! Writes go to a mutable [`MemDb`]. When it is big enough, [`PipelinedMemDb::flush`] swaps it
//! out as the *flushing* buffer, starts a fresh one, bumps the generation (the first flush is
//! generation 1) and runs the flush function on a tokio task. Reads consult the mutable buffer,
//! then the flushing one, then a batch-get cache, then the remote buffer (the txn's own flushed
//! locks). Iteration, checkpoints and snapshots are not supported (client-go panics on most of
//! them; here they simply do not exist, except the two snapshot iterators whose client-go
//! versions return an erroring iterator).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tikv_layers::Error;
use tikv_layers::error::ErrorDetail;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::iter::KvIterator;
use super::union::ValueEntry;
use super::{FlagsOp, KeyFlags, MemDb};

/// Minimum keys in the mutable buffer before a non-forced flush (client-go: `MinFlushKeys`).
pub const MIN_FLUSH_KEYS: u64 = 10_000;
/// Minimum memory of the mutable buffer before a non-forced flush (client-go:
/// `MinFlushMemSize`).
pub const MIN_FLUSH_MEM_SIZE: u64 = 16 * 1024 * 1024;
/// Memory above which a flush happens regardless of the key count and waits for an ongoing
/// flush (client-go: `ForceFlushMemSizeThreshold`).
pub const FORCE_FLUSH_MEM_SIZE_THRESHOLD: u64 = 128 * 1024 * 1024;

/// The future a [`FlushFunc`] returns.
pub type FlushFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'static>>;
/// Flushes one generation's buffer to TiKV (client-go: `FlushFunc`).
pub type FlushFunc = Arc<dyn Fn(u64, Arc<MemDb>) -> FlushFuture + Send + Sync>;
/// The future a [`BufferBatchGetter`] returns.
pub type BufferBatchGetFuture =
    Pin<Box<dyn Future<Output = Result<HashMap<Vec<u8>, ValueEntry>, Error>> + Send + 'static>>;
/// Reads keys from the already-flushed remote buffer (client-go: `BufferBatchGetter`).
pub type BufferBatchGetter = Arc<dyn Fn(Vec<Vec<u8>>) -> BufferBatchGetFuture + Send + Sync>;

/// When a non-forced flush happens (client-go: `flushOption`; its three failpoints become these
/// fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushOptions {
    /// Minimum key count.
    pub min_flush_keys: u64,
    /// Minimum memory footprint.
    pub min_flush_mem_size: u64,
    /// Footprint that forces a flush.
    pub force_flush_mem_size_threshold: u64,
}

impl Default for FlushOptions {
    fn default() -> Self {
        FlushOptions {
            min_flush_keys: MIN_FLUSH_KEYS,
            min_flush_mem_size: MIN_FLUSH_MEM_SIZE,
            force_flush_mem_size_threshold: FORCE_FLUSH_MEM_SIZE_THRESHOLD,
        }
    }
}

impl FlushOptions {
    /// Options with the given thresholds.
    pub fn new(min_flush_keys: u64, min_flush_mem_size: u64, force_threshold: u64) -> Self {
        FlushOptions {
            min_flush_keys,
            min_flush_mem_size,
            force_flush_mem_size_threshold: force_threshold,
        }
    }
}

/// Flush statistics (client-go: `unionstore.Metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelinedMetrics {
    /// Time spent waiting for earlier flushes.
    pub wait_duration: Duration,
    /// Time since the buffer was created.
    pub total_duration: Duration,
    /// Buffer lookups answered by the last-key cache.
    pub memdb_hit_count: u64,
    /// Buffer lookups that missed it.
    pub memdb_miss_count: u64,
}

/// The pipelined-DML write buffer (client-go: `PipelinedMemDB`).
pub struct PipelinedMemDb {
    memdb: MemDb,
    flushing: Option<Arc<MemDb>>,
    flush_task: Option<JoinHandle<Result<(), Error>>>,
    on_flushing: Arc<AtomicBool>,
    flush_func: Option<FlushFunc>,
    batch_getter: BufferBatchGetter,
    /// Keys and bytes of all flushed (or flushing) buffers.
    len: usize,
    size: usize,
    generation: u64,
    entry_limit: u64,
    options: FlushOptions,
    /// `Some(v)` present (empty = deleted), `None` absent; dropped by every flush.
    batch_get_cache: Option<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    mem_hook: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    flush_wait: Duration,
    hit_count: u64,
    miss_count: u64,
    start: Instant,
}

impl fmt::Debug for PipelinedMemDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelinedMemDb")
            .field("memdb", &self.memdb)
            .field("flushing", &self.flushing)
            .field("generation", &self.generation)
            .field("len", &self.len)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn unsupported(what: &str) -> Error {
    Error::new(ErrorDetail::InvalidArgument(format!(
        "pipelined memdb does not support {what}"
    )))
}

impl PipelinedMemDb {
    /// A pipelined buffer with default thresholds (client-go: `NewPipelinedMemDB`).
    /// `flush_func` may be `None`, in which case [`flush`](Self::flush) fails.
    pub fn new(batch_getter: BufferBatchGetter, flush_func: Option<FlushFunc>) -> Self {
        Self::with_options(batch_getter, flush_func, FlushOptions::default())
    }

    /// A pipelined buffer with explicit flush thresholds.
    pub fn with_options(
        batch_getter: BufferBatchGetter,
        flush_func: Option<FlushFunc>,
        options: FlushOptions,
    ) -> Self {
        let memdb = MemDb::new();
        let (entry_limit, _) = memdb.entry_size_limit();
        PipelinedMemDb {
            memdb,
            flushing: None,
            flush_task: None,
            on_flushing: Arc::new(AtomicBool::new(false)),
            flush_func,
            batch_getter,
            len: 0,
            size: 0,
            generation: 0,
            entry_limit,
            options,
            batch_get_cache: None,
            mem_hook: None,
            flush_wait: Duration::ZERO,
            hit_count: 0,
            miss_count: 0,
            start: Instant::now(),
        }
    }

    /// Mutable buffer dirty, or anything flushed (client-go: `Dirty`).
    pub fn dirty(&self) -> bool {
        self.memdb.dirty() || self.len > 0
    }

    /// Reads the mutable then the flushing buffer (client-go: `GetLocal`); `Some(&[])` for a
    /// buffered delete.
    pub fn get_local(&self, key: &[u8]) -> Option<&[u8]> {
        if let Some(v) = self.memdb.get(key) {
            return Some(v);
        }
        self.flushing.as_ref().and_then(|db| db.get(key))
    }

    /// Reads through the local buffers, the batch-get cache and finally the remote buffer
    /// (client-go: `PipelinedMemDB.Get`, spec M35). Values have commit ts 0.
    ///
    /// # Errors
    ///
    /// The remote read's error.
    pub async fn get(&self, key: &[u8]) -> Result<Option<ValueEntry>, Error> {
        if let Some(v) = self.get_local(key) {
            return Ok(Some(ValueEntry::new(v, 0)));
        }
        if let Some(cached) = self.batch_get_cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(cached.as_ref().map(|v| ValueEntry::new(v.clone(), 0)));
        }
        let mut m = (self.batch_getter)(vec![key.to_vec()]).await?;
        Ok(m.remove(key).map(|e| ValueEntry::new(e.value, 0)))
    }

    /// Flags from the mutable then the flushing buffer; flags of earlier generations are gone
    /// (client-go: `GetFlags`).
    pub fn get_flags(&self, key: &[u8]) -> Option<KeyFlags> {
        self.memdb
            .get_flags(key)
            .or_else(|| self.flushing.as_ref().and_then(|db| db.get_flags(key)))
    }

    /// Reads several keys; local hits and remote results (present, deleted or absent) are cached
    /// until the next flush (client-go: `PipelinedMemDB.BatchGet`, spec M36).
    ///
    /// # Errors
    ///
    /// The remote read's error.
    pub async fn batch_get<K: AsRef<[u8]>>(
        &mut self,
        keys: &[K],
    ) -> Result<HashMap<Vec<u8>, ValueEntry>, Error> {
        let mut out = HashMap::with_capacity(keys.len());
        let mut remote = Vec::new();
        let mut local_hits = Vec::new();
        for k in keys {
            let k = k.as_ref();
            match self.get_local(k) {
                Some(v) => local_hits.push((k.to_vec(), v.to_vec())),
                None => remote.push(k.to_vec()),
            }
        }
        let cache = self.batch_get_cache.get_or_insert_with(HashMap::new);
        for (k, v) in local_hits {
            cache.insert(k.clone(), Some(v.clone()));
            out.insert(k, ValueEntry::new(v, 0));
        }
        let mut found = (self.batch_getter)(remote.clone()).await?;
        let cache = self.batch_get_cache.get_or_insert_with(HashMap::new);
        for k in remote {
            match found.remove(&k) {
                Some(e) => {
                    cache.insert(k.clone(), Some(e.value.clone()));
                    out.insert(k, ValueEntry::new(e.value, 0));
                }
                None => {
                    cache.insert(k, None);
                }
            }
        }
        Ok(out)
    }

    /// The cached batch-get result for `key`: `None` not cached, `Some(None)` cached absent.
    pub fn cached(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.batch_get_cache
            .as_ref()?
            .get(key)
            .map(|v| v.as_deref())
    }

    /// Whether a batch-get cache exists (it is dropped by every flush).
    pub fn has_batch_get_cache(&self) -> bool {
        self.batch_get_cache.is_some()
    }

    /// See [`MemDb::set`].
    ///
    /// # Errors
    ///
    /// As [`MemDb::set`].
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let r = self.memdb.set(key, value);
        self.on_mem_change();
        r
    }

    /// See [`MemDb::set_with_flags`].
    ///
    /// # Errors
    ///
    /// As [`MemDb::set`].
    pub fn set_with_flags(
        &mut self,
        key: &[u8],
        value: &[u8],
        ops: &[FlagsOp],
    ) -> Result<(), Error> {
        let r = self.memdb.set_with_flags(key, value, ops);
        self.on_mem_change();
        r
    }

    /// See [`MemDb::delete`].
    ///
    /// # Errors
    ///
    /// As [`MemDb::delete`].
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        let r = self.memdb.delete(key);
        self.on_mem_change();
        r
    }

    /// See [`MemDb::delete_with_flags`].
    ///
    /// # Errors
    ///
    /// As [`MemDb::delete`].
    pub fn delete_with_flags(&mut self, key: &[u8], ops: &[FlagsOp]) -> Result<(), Error> {
        let r = self.memdb.delete_with_flags(key, ops);
        self.on_mem_change();
        r
    }

    /// See [`MemDb::update_flags`].
    pub fn update_flags(&mut self, key: &[u8], ops: &[FlagsOp]) {
        self.memdb.update_flags(key, ops);
    }

    /// Flushes the mutable buffer if it is big enough, or unconditionally when `force`
    /// (client-go: `Flush`, spec M37). Returns whether a flush started.
    ///
    /// Always drops the batch-get cache. When a flush is already running this waits for it
    /// first (its error, if any, is returned and no new flush starts).
    ///
    /// # Errors
    ///
    /// No flush function; a staging level is open; the previous flush's error.
    pub async fn flush(&mut self, force: bool) -> Result<bool, Error> {
        let Some(flush_func) = self.flush_func.clone() else {
            return Err(Error::new(ErrorDetail::Internal(
                "flushFunc is not provided".to_owned(),
            )));
        };
        self.batch_get_cache = None;
        if self.memdb.is_staging() {
            return Err(Error::new(ErrorDetail::Internal(
                "there are stages unreleased when Flush is called".to_owned(),
            )));
        }
        if !force && !self.need_flush() {
            return Ok(false);
        }
        if self.flushing.is_some() {
            let waited = Instant::now();
            let r = self.wait_task().await;
            self.flush_wait += waited.elapsed();
            if let Err(e) = r {
                let e = self.handle_already_exist(e);
                self.flushing = None;
                return Err(e);
            }
        }
        self.on_flushing.store(true, Ordering::SeqCst);
        let mut fresh = MemDb::new();
        // The buffer size is bounded by the force-flush threshold, not a buffer limit.
        fresh.set_entry_size_limit(self.entry_limit, u64::MAX);
        let old = std::mem::replace(&mut self.memdb, fresh);
        self.len += old.len();
        self.size += old.size();
        self.hit_count += old.cache_hit_count();
        self.miss_count += old.cache_miss_count();
        self.generation += 1;
        let old = Arc::new(old);
        self.flushing = Some(Arc::clone(&old));
        let fut = flush_func(self.generation, old);
        let flag = Arc::clone(&self.on_flushing);
        self.flush_task = Some(tokio::spawn(async move {
            let r = fut.await;
            // Cleared before the result is observable, so a later flush's `store(true)` wins.
            flag.store(false, Ordering::SeqCst);
            r
        }));
        self.on_mem_change();
        Ok(true)
    }

    async fn wait_task(&mut self) -> Result<(), Error> {
        match self.flush_task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(join) => Err(Error::new(ErrorDetail::Internal(format!(
                    "pipelined flush task failed: {join}"
                )))),
            },
            None => Ok(()),
        }
    }

    /// client-go: `needFlush`.
    fn need_flush(&self) -> bool {
        let size = self.memdb.mem();
        let o = &self.options;
        if size < o.min_flush_mem_size
            || ((self.memdb.len() as u64) < o.min_flush_keys
                && size < o.force_flush_mem_size_threshold)
        {
            return false;
        }
        if self.on_flushing.load(Ordering::SeqCst) && size < o.force_flush_mem_size_threshold {
            return false;
        }
        true
    }

    /// Waits for the running flush and returns its error (client-go: `FlushWait`).
    ///
    /// # Errors
    ///
    /// The flush's error; a key-exists error gets the value from the flushing buffer.
    pub async fn flush_wait(&mut self) -> Result<(), Error> {
        if self.flushing.is_none() {
            return Ok(());
        }
        let waited = Instant::now();
        let r = self.wait_task().await;
        let r = r.map_err(|e| self.handle_already_exist(e));
        self.flushing = None;
        self.flush_wait += waited.elapsed();
        r
    }

    /// Fills a key-exists error's value from the flushing buffer (client-go:
    /// `handleAlreadyExistErr`).
    fn handle_already_exist(&self, e: Error) -> Error {
        if let ErrorDetail::KeyExists { already_exist, .. } = e.detail() {
            if let Some(v) = self
                .flushing
                .as_ref()
                .and_then(|db| db.get(&already_exist.key))
            {
                return Error::new(ErrorDetail::KeyExists {
                    already_exist: already_exist.clone(),
                    value: Some(v.to_vec()),
                });
            }
            tracing::warn!(
                generation = self.generation,
                "[pipelined-dml] value of an AlreadyExist key not found in the flushing buffer"
            );
        }
        e
    }

    /// Whether a flush task is running (client-go: `OnFlushing`).
    pub fn on_flushing(&self) -> bool {
        self.on_flushing.load(Ordering::SeqCst)
    }

    /// A shared view of the on-flushing flag, for observers that cannot borrow the buffer.
    pub fn on_flushing_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.on_flushing)
    }

    /// The generation of the latest flush (0 before any).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sets the entry limit; the buffer limit is ignored (client-go: `SetEntrySizeLimit`).
    pub fn set_entry_size_limit(&mut self, entry_limit: u64, _buffer_limit: u64) {
        self.entry_limit = entry_limit;
        self.memdb.set_entry_size_limit(entry_limit, u64::MAX);
    }

    /// Keys in the mutable buffer plus all flushed ones (client-go: `Len`).
    pub fn len(&self) -> usize {
        self.memdb.len() + self.len
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the mutable buffer plus all flushed ones (client-go: `Size`).
    pub fn size(&self) -> usize {
        self.memdb.size() + self.size
    }

    /// Memory of the mutable and flushing buffers (client-go: `Mem`).
    pub fn mem(&self) -> u64 {
        self.memdb.mem() + self.flushing.as_ref().map_or(0, |db| db.mem())
    }

    /// Registers a hook called with [`mem`](Self::mem) after every write and flush.
    pub fn set_memory_footprint_change_hook(&mut self, hook: impl Fn(u64) + Send + Sync + 'static) {
        self.mem_hook = Some(Arc::new(hook));
    }

    /// Whether a memory hook is registered.
    pub fn mem_hook_set(&self) -> bool {
        self.mem_hook.is_some()
    }

    fn on_mem_change(&self) {
        if let Some(h) = &self.mem_hook {
            h(self.mem());
        }
    }

    /// See [`MemDb::staging`].
    pub fn staging(&mut self) -> usize {
        self.memdb.staging()
    }

    /// See [`MemDb::release`].
    pub fn release(&mut self, handle: usize) {
        self.memdb.release(handle);
    }

    /// See [`MemDb::cleanup`].
    pub fn cleanup(&mut self, handle: usize) {
        self.memdb.cleanup(handle);
    }

    /// Flush statistics (client-go: `GetMetrics`).
    pub fn metrics(&self) -> PipelinedMetrics {
        PipelinedMetrics {
            wait_duration: self.flush_wait,
            total_duration: self.start.elapsed(),
            memdb_hit_count: self.hit_count + self.memdb.cache_hit_count(),
            memdb_miss_count: self.miss_count + self.memdb.cache_miss_count(),
        }
    }

    /// Iteration is unsupported (client-go: `Iter` returns an error).
    ///
    /// # Errors
    ///
    /// Always.
    pub fn iter(&self, _lower: &[u8], _upper: &[u8]) -> Result<(), Error> {
        Err(unsupported("Iter"))
    }

    /// Snapshot iteration is unsupported: the iterator claims to be valid and its `next` fails
    /// (client-go: `SnapshotIter` returns an `errIterator`).
    pub fn snapshot_iter(&self, _lower: &[u8], _upper: &[u8]) -> ErrorIterator {
        ErrorIterator {
            what: "SnapshotIter",
        }
    }

    /// As [`snapshot_iter`](Self::snapshot_iter), reverse.
    pub fn snapshot_iter_reverse(&self, _upper: &[u8], _lower: &[u8]) -> ErrorIterator {
        ErrorIterator {
            what: "SnapshotIterReverse",
        }
    }

    /// The mutable buffer (read only).
    pub fn mutable_db(&self) -> &MemDb {
        &self.memdb
    }

    /// The buffer being (or last) flushed, until the next [`flush_wait`](Self::flush_wait).
    pub fn flushing_db(&self) -> Option<&MemDb> {
        self.flushing.as_deref()
    }
}

/// An iterator that only reports an error (client-go: `errIterator`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorIterator {
    what: &'static str,
}

impl KvIterator for ErrorIterator {
    fn valid(&self) -> bool {
        true
    }
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> &[u8] {
        &[]
    }
    fn next(&mut self) -> Result<(), Error> {
        Err(unsupported(self.what))
    }
}
