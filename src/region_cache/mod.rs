//! The region cache: which region holds a key, who leads it, and on which stores its peers
//! live (client-go's `internal/locate/region_cache.go` and `sorted_btree.go`; RC-1 ..
//! RC-55 of `shared/spec/request-path.md`).
//!
//! One reader/writer lock protects the index: a `BTreeMap` keyed by region start key, a map
//! by region version and a map from region id to its newest version (RC-4). Each cached
//! [`Region`] keeps its meta immutable, its routing state in a copy-on-write
//! [`RegionSnapshot`], and its TTL, sync flags and invalid reason in atomics. A lookup takes
//! the read lock, finds the region, checks its TTL (renewing it, RC-8) and returns the
//! snapshot's `Arc`: no region data is copied and no lock outlives the call. Loads fetch from
//! PD first and only then take the write lock to insert (RC-34), so nothing awaits under a
//! lock.
//!
//! The cache implements the layers' [`RegionLocator`]; its [`StoreCache`] implements
//! [`StoreResolver`](tikv_layers::locate::StoreResolver).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_core::future::BoxFuture;
use rand::Rng;
use tikv_layers::backoff::{BackoffKind, Backoffer, SharedBackoffer};
use tikv_layers::locate::{
    EpochNotMatchOutcome, InvalidReason, RegionLocator, RegionSnapshot, RegionVerId, StoreType,
    contains, contains_by_end,
};
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::metapb;

use crate::pd::{KeyRange, RegionInfo, RegionMetaClient, RegionOptions, is_decode_error};
use crate::store_cache::{ResolveState, StoreCache};

/// One PD load of the region cache, counted and timed (client-go's
/// `RegionCacheCounterWith*` and `TiKVLoadRegionCacheHistogram`).
fn record_pd_load<T>(op: &'static str, started: tokio::time::Instant, res: &Result<T>) {
    use tikv_layers::metrics::names::{self, labels};
    let result = if res.is_ok() { labels::OK } else { labels::ERR };
    metrics::counter!(names::REGION_CACHE_OPERATIONS_TOTAL, labels::TYPE => op, labels::RESULT => result)
        .increment(1);
    metrics::histogram!(names::LOAD_REGION_CACHE_SECONDS, labels::TYPE => op)
        .record(started.elapsed().as_secs_f64());
}

fn labels_get_region(prev: bool) -> &'static str {
    if prev {
        "get_prev_region_when_miss"
    } else {
        tikv_layers::metrics::names::labels::OP_GET_REGION_WHEN_MISS
    }
}

mod batch;
mod buckets;
mod key;
mod rpc_context;

use key::IndexKey;
#[cfg(test)]
mod tests;

pub use batch::{
    BatchLocateMerger, BatchLocateOptions, KeyGroups, MAX_RANGES_PER_BATCH, ranges_after_key,
};
pub use buckets::{Bucket, clamp_bucket_to_region, locate_bucket_in};
pub use rpc_context::{RpcContext, StoreSelectorOptions, no_tiflash_write_node};

/// Regions one background GC round examines (client-go's `cleanRegionNumPerRound`).
pub const GC_REGIONS_PER_ROUND: usize = 50;
/// Interval of the background GC (client-go's `cleanCacheInterval`).
pub const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Called with every region a GC round examines (client-go's test-only `gcScanItemHook`).
type GcScanHook = Arc<dyn Fn(&Region) + Send + Sync>;

/// Budget of the backoffer a lookup creates for itself (client-go's
/// `locateRegionMaxBackoff`, 20 s).
pub const LOCATE_BUDGET_MS: u64 = 20_000;

/// Default idle TTL of a cached region, seconds (RC-7).
pub const DEFAULT_TTL_SECS: i64 = 600;
/// Default TTL jitter, seconds (RC-7).
pub const DEFAULT_TTL_JITTER_SECS: i64 = 60;
/// Regions per batch-scan page (client-go's `defaultRegionsPerBatch`).
pub const REGIONS_PER_BATCH: i32 = 128;

/// Sync flag: reload synchronously on next access (RC-10).
pub const NEED_RELOAD_ON_ACCESS: u8 = 1;
/// Sync flag: stop sliding the TTL (RC-10).
pub const NEED_EXPIRE_AFTER_TTL: u8 = 2;
/// Sync flag: a delayed reload was requested (RC-10).
pub const NEED_DELAYED_RELOAD_PENDING: u8 = 4;
/// Sync flag: the delayed reload is due (RC-10).
pub const NEED_DELAYED_RELOAD_READY: u8 = 8;

/// `Region::proxy` value meaning "no proxy replica" (client-go's `proxyTiKVIdx == -1`).
const NO_PROXY: usize = usize::MAX;

/// The TTL clock and TTL settings of one cache (client-go's `regionCacheTTLSec`,
/// `regionCacheTTLJitterSec` and the `time.Now().Unix()` its TTL checks read, RC-7/RC-8).
///
/// Time is Unix seconds as client-go counts them, but advanced by `tokio::time`: the wall
/// clock is read once, when the cache is built, and every later reading adds the tokio
/// [`Instant`](tokio::time::Instant) elapsed since. Under `tokio::time::pause()` the TTLs
/// therefore follow `advance()`/auto-advance, and in real time they match the wall clock.
/// The TTL and jitter are atomics so [`RegionCache::set_ttl_with_jitter`] can change them
/// on a live cache, as client-go's `SetRegionCacheTTLWithJitter` does.
#[derive(Debug)]
struct TtlClock {
    base: tokio::time::Instant,
    base_unix_ms: i64,
    ttl_secs: AtomicI64,
    jitter_secs: AtomicI64,
}

impl TtlClock {
    fn new(opts: RegionCacheOptions) -> TtlClock {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        TtlClock {
            base: tokio::time::Instant::now(),
            base_unix_ms,
            ttl_secs: AtomicI64::new(opts.ttl_secs),
            jitter_secs: AtomicI64::new(opts.ttl_jitter_secs),
        }
    }

    /// Now, in Unix seconds on the tokio clock.
    fn now(&self) -> i64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        let ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2);
        self.base_unix_ms.saturating_add(ms) / 1000
    }

    fn ttl_secs(&self) -> i64 {
        self.ttl_secs.load(Ordering::Relaxed)
    }

    /// The jitter in force; 0 disables it.
    fn jitter_secs(&self) -> i64 {
        self.jitter_secs.load(Ordering::Relaxed).max(0)
    }

    /// `nextTTL` (RC-7): now + TTL + a random jitter below the jitter in force.
    fn next_ttl(&self, now: i64) -> i64 {
        let jitter = match self.jitter_secs() {
            j if j > 0 => rand::rng().random_range(0..j),
            _ => 0,
        };
        now.saturating_add(self.ttl_secs()).saturating_add(jitter)
    }
}

/// Options of [`RegionCache::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionCacheOptions {
    /// Idle TTL base in seconds (`TiKVClient.RegionCacheTTL`, RC-7).
    pub ttl_secs: i64,
    /// TTL jitter in seconds (RC-7): each renewal adds a random `0..jitter` so regions
    /// loaded together do not expire together. 0 disables it. As in client-go it is
    /// independent of `ttl_secs`: a 2 s TTL with the default 60 s jitter lives 2 to 62 s.
    pub ttl_jitter_secs: i64,
}

impl RegionCacheOptions {
    /// The options a client configuration asks for
    /// ([`region_cache_ttl`](crate::config::TikvClientConfig::region_cache_ttl) and
    /// [`region_cache_ttl_jitter`](crate::config::TikvClientConfig::region_cache_ttl_jitter)).
    pub fn from_config(config: &crate::config::TikvClientConfig) -> RegionCacheOptions {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        RegionCacheOptions {
            ttl_secs: secs(config.region_cache_ttl),
            ttl_jitter_secs: secs(config.region_cache_ttl_jitter),
        }
    }
}

impl Default for RegionCacheOptions {
    fn default() -> Self {
        RegionCacheOptions {
            ttl_secs: DEFAULT_TTL_SECS,
            ttl_jitter_secs: DEFAULT_TTL_JITTER_SECS,
        }
    }
}

/// One cached region (client-go's `Region`, RC-2).
#[derive(Debug)]
pub struct Region {
    ver: RegionVerId,
    /// Immutable copies of the range, so index searches take no snapshot lock; inline
    /// when short, so checking a hit reads no other allocation.
    start: IndexKey,
    end: IndexKey,
    snap: RwLock<Arc<RegionSnapshot>>,
    ttl: AtomicI64,
    flags: AtomicU8,
    invalid: AtomicU8,
    /// Index into `tikv_peers` of the follower that forwards to an unreachable leader
    /// (client-go's `regionStore.proxyTiKVIdx`, RS-15); [`NO_PROXY`] when unset. It lives
    /// beside the snapshot, so leader switches keep it and a reloaded region starts without.
    proxy: AtomicUsize,
}

impl Region {
    /// The region's version.
    pub fn ver(&self) -> RegionVerId {
        self.ver
    }

    /// The current routing snapshot.
    pub fn snapshot(&self) -> Arc<RegionSnapshot> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The invalid reason (`Ok` while valid).
    pub fn invalid_reason(&self) -> InvalidReason {
        InvalidReason::from_u8(self.invalid.load(Ordering::Acquire))
    }

    /// The TTL deadline in Unix seconds on the cache's TTL clock
    /// ([`RegionCache::now_secs`]); `-1` after invalidation.
    pub fn ttl(&self) -> i64 {
        self.ttl.load(Ordering::Acquire)
    }

    /// Overrides the TTL deadline (tests; client-go's tests poke `ttl` directly).
    pub fn set_ttl(&self, ttl: i64) {
        self.ttl.store(ttl, Ordering::Release);
    }

    /// The sync flags (RC-10).
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    /// Sets sync flags (`setSyncFlags`).
    pub fn set_flags(&self, f: u8) {
        self.flags.fetch_or(f, Ordering::AcqRel);
    }

    /// Clears `mask` and returns the bits that were set (`resetSyncFlags`).
    pub fn reset_flags(&self, mask: u8) -> u8 {
        self.flags.fetch_and(!mask, Ordering::AcqRel) & mask
    }

    /// The remembered proxy replica (index into `tikv_peers`), if any (RS-15).
    pub fn proxy_idx(&self) -> Option<usize> {
        let p = self.proxy.load(Ordering::Acquire);
        (p != NO_PROXY).then_some(p)
    }

    /// Remembers or clears the proxy replica (`setProxyStoreIdx` /
    /// `unsetProxyStoreIfNeeded`, RS-15).
    pub fn set_proxy_idx(&self, idx: Option<usize>) {
        let v = idx.unwrap_or(NO_PROXY);
        if self.proxy.swap(v, Ordering::AcqRel) != v {
            tracing::debug!(region = self.ver.id, proxy = ?idx, "set proxy store index");
        }
    }

    /// Invalidates the region (RC-9); only the first call wins.
    pub fn invalidate(&self, reason: InvalidReason) {
        if self
            .invalid
            .compare_exchange(
                InvalidReason::Ok as u8,
                reason as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.ttl.store(-1, Ordering::Release);
            metrics::counter!(tikv_layers::metrics::names::REGION_CACHE_OPERATIONS_TOTAL, "type" => tikv_layers::metrics::names::labels::OP_INVALIDATE_REGION_FROM_CACHE, "result" => tikv_layers::metrics::names::labels::OK)
                .increment(1);
        }
    }

    /// TTL check with renewal (client-go's `checkRegionCacheTTL`, RC-8).
    fn check_ttl(&self, now: i64, clock: &TtlClock) -> bool {
        loop {
            let ttl = self.ttl.load(Ordering::Acquire);
            if now > ttl {
                return false;
            }
            if self.flags() & NEED_EXPIRE_AFTER_TTL != 0 || ttl > now + clock.ttl_secs() {
                return true;
            }
            let next = clock.next_ttl(now);
            if self
                .ttl
                .compare_exchange(ttl, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return true;
            }
        }
    }

    /// `isValid` (RC-11): not flagged for reload and TTL still good.
    fn is_valid(&self, now: i64, clock: &TtlClock) -> bool {
        self.flags() & NEED_RELOAD_ON_ACCESS == 0 && self.check_ttl(now, clock)
    }

    /// Installs a modified snapshot (copy-on-write).
    fn update_snapshot(&self, f: impl FnOnce(&mut RegionSnapshot)) {
        let mut guard = self.snap.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }
}

#[derive(Debug, Default)]
struct Index {
    sorted: BTreeMap<IndexKey, Arc<Region>>,
    regions: HashMap<RegionVerId, Arc<Region>>,
    latest: HashMap<u64, RegionVerId>,
}

impl Index {
    /// `SearchByKey` (RC-13): only the item with the greatest start ≤ key (or < key for end
    /// keys) is examined.
    fn search(&self, key: &[u8], is_end: bool) -> Option<&Arc<Region>> {
        let upper = if is_end {
            Bound::Excluded(key)
        } else {
            Bound::Included(key)
        };
        // Short keys (nearly all) search with an `IndexKey` probe, whose comparisons are
        // word compares; longer ones search with the bytes (both orders agree, key.rs).
        let (_, r) = match IndexKey::probe(key) {
            Some(probe) => {
                let upper = match upper {
                    Bound::Excluded(_) => Bound::Excluded(&probe),
                    _ => Bound::Included(&probe),
                };
                self.sorted
                    .range::<IndexKey, _>((Bound::Unbounded, upper))
                    .next_back()?
            }
            None => self
                .sorted
                .range::<[u8], _>((Bound::Unbounded, upper))
                .next_back()?,
        };
        let hit = if is_end {
            contains_by_end(&r.start, &r.end, key)
        } else {
            contains(&r.start, &r.end, key)
        };
        hit.then_some(r)
    }

    fn remove_version(&mut self, ver: &RegionVerId) {
        self.regions.remove(ver);
        if self.latest.get(&ver.id) == Some(ver) {
            self.latest.remove(&ver.id);
        }
    }

    /// `insertRegionToCache` (RC-34). Returns false for a stale region.
    fn insert(&mut self, r: Arc<Region>, invalidate_old: bool) -> bool {
        if let Some(latest) = self.latest.get(&r.ver.id)
            && (latest.ver > r.ver.ver || latest.conf_ver > r.ver.conf_ver)
        {
            return false;
        }
        let snap = r.snapshot();
        let (start, end) = (snap.region.start_key.clone(), snap.region.end_key.clone());
        let mut overlapped: Vec<IndexKey> = Vec::new();
        for (k, item) in self
            .sorted
            .range::<[u8], _>((Bound::Included(&start[..]), Bound::Unbounded))
        {
            if !end.is_empty() && k.as_slice() >= end.as_slice() {
                break;
            }
            if item.ver.ver > r.ver.ver {
                return false;
            }
            overlapped.push(k.clone());
        }
        let removed: Vec<Arc<Region>> = overlapped
            .iter()
            .filter_map(|k| self.sorted.remove(k.as_slice()))
            .collect();
        if let Some(old) = removed.first() {
            let old_snap = old.snapshot();
            let no_leader = old.invalid_reason() == InvalidReason::NoLeader;
            r.update_snapshot(|s| {
                if no_leader && !s.tikv_peers.is_empty() {
                    s.work_tikv_idx = (old_snap.work_tikv_idx + 1) % s.tikv_peers.len();
                }
                s.work_tiflash_idx = old_snap.work_tiflash_idx;
                let take_old = match (&s.buckets, &old_snap.buckets) {
                    (None, Some(_)) => true,
                    (Some(new), Some(old)) => old.version > new.version,
                    _ => false,
                };
                if take_old {
                    s.buckets = old_snap.buckets.clone();
                }
            });
        }
        for old in &removed {
            self.remove_version(&old.ver);
            if invalidate_old {
                old.invalidate(InvalidReason::Other);
            }
        }
        self.sorted.insert(IndexKey::new(&start), r.clone());
        self.regions.insert(r.ver, r.clone());
        self.latest.insert(r.ver.id, r.ver);
        true
    }
}

struct Inner {
    pd: Arc<dyn RegionMetaClient>,
    stores: StoreCache,
    index: RwLock<Index>,
    clock: TtlClock,
    cluster_id: u64,
    /// Region ids with a bucket refresh running (client-go's `inflightUpdateBuckets`).
    inflight_buckets: std::sync::Mutex<HashSet<u64>>,
    gc_scan_hook: RwLock<Option<GcScanHook>>,
}

/// The region cache (client-go's `RegionCache`). Cheap to clone.
#[derive(Clone)]
pub struct RegionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCache")
            .field("regions", &self.region_count())
            .field("clock", &self.inner.clock)
            .finish()
    }
}

/// A loaded-but-not-yet-inserted region.
struct Loaded(Arc<Region>);

fn region_not_found(msg: String) -> Error {
    Error::new(ErrorDetail::RegionError(Box::new(
        tikv_proto::errorpb::Error {
            message: msg,
            ..Default::default()
        },
    )))
}

impl RegionCache {
    /// A cache reading from `pd` (client-go's `NewRegionCache`, without its loops; the
    /// [`Cluster`](crate::cluster::Cluster) runs those).
    pub fn new(pd: Arc<dyn RegionMetaClient>, opts: RegionCacheOptions) -> RegionCache {
        let cluster_id = pd.cluster_id();
        if cluster_id == 0 {
            tracing::error!("region cache created with cluster id 0");
        }
        RegionCache {
            inner: Arc::new(Inner {
                stores: StoreCache::new(pd.clone()),
                pd,
                index: RwLock::new(Index::default()),
                clock: TtlClock::new(opts),
                cluster_id,
                inflight_buckets: std::sync::Mutex::new(HashSet::new()),
                gc_scan_hook: RwLock::new(None),
            }),
        }
    }

    /// The cache's TTL clock: Unix seconds advanced by `tokio::time` (so paused tests drive
    /// expiry). Compare [`Region::ttl`] against this, not against the wall clock.
    pub fn now_secs(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Changes the idle TTL and its jitter of a live cache, in seconds (client-go's
    /// `SetRegionCacheTTLWithJitter`, RC-7): a region then lives `[ttl, ttl + jitter)`
    /// after its last use. Regions keep their current deadline and pick the new values up
    /// at their next renewal. A jitter of 0 disables jitter.
    pub fn set_ttl_with_jitter(&self, ttl_secs: i64, jitter_secs: i64) {
        let clock = &self.inner.clock;
        clock.ttl_secs.store(ttl_secs.max(0), Ordering::Relaxed);
        clock
            .jitter_secs
            .store(jitter_secs.max(0), Ordering::Relaxed);
    }

    /// Drops every cached region and store (client-go's test-only `RegionCache.clear`).
    pub fn clear(&self) {
        *self.write() = Index::default();
        self.inner.stores.clear();
    }

    /// The store cache.
    pub fn stores(&self) -> &StoreCache {
        &self.inner.stores
    }

    /// How many regions are indexed by start key.
    pub fn region_count(&self) -> usize {
        self.read().sorted.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached region object of a version, valid or not.
    pub fn get_cached(&self, ver: &RegionVerId) -> Option<Arc<Region>> {
        self.read().regions.get(ver).cloned()
    }

    /// The cached region by key without PD and without TTL renewal (tests, benchmarks).
    pub fn search_cached(&self, key: &[u8], is_end: bool) -> Option<Arc<Region>> {
        self.read().search(key, is_end).cloned()
    }

    /// Point lookup in the index with TTL renewal: `(region, expired)`
    /// (`searchCachedRegionByKey`).
    fn search_cached_checked(&self, key: &[u8], is_end: bool) -> Option<(Arc<Region>, bool)> {
        let now = self.inner.clock.now();
        let idx = self.read();
        let r = idx.search(key, is_end)?;
        let valid = r.check_ttl(now, &self.inner.clock);
        Some((r.clone(), !valid))
    }

    /// The cached snapshot of the region containing `key`, if cached and valid: the hot
    /// path of every request (`TryLocateKey`, RC-16). No PD call.
    pub fn try_locate_key(&self, key: &[u8]) -> Option<Arc<RegionSnapshot>> {
        let now = self.inner.clock.now();
        let idx = self.read();
        let r = idx.search(key, false)?;
        if !r.is_valid(now, &self.inner.clock) || r.flags() & NEED_DELAYED_RELOAD_READY != 0 {
            return None;
        }
        Some(r.snapshot())
    }

    /// `findRegionByKey` (RC-14, RC-15).
    async fn find_region_by_key(
        &self,
        bo: &mut Backoffer,
        key: &[u8],
        is_end: bool,
    ) -> Result<Arc<Region>> {
        match self.search_cached_checked(key, is_end) {
            Some((r, false)) => {
                let cleared = r.reset_flags(NEED_RELOAD_ON_ACCESS | NEED_DELAYED_RELOAD_READY);
                if cleared == 0 {
                    return Ok(r);
                }
                match self.load_region(bo, key, is_end, false).await {
                    Ok(Loaded(new)) => {
                        let flag = cleared & NEED_RELOAD_ON_ACCESS != 0;
                        self.write().insert(new.clone(), flag);
                        Ok(new)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reload region on access failed");
                        r.set_flags(NEED_RELOAD_ON_ACCESS);
                        Ok(r)
                    }
                }
            }
            _ => {
                let Loaded(r) = self.load_region(bo, key, is_end, true).await?;
                if !self.write().insert(r.clone(), true) {
                    // Stale answer (perhaps from a follower): ask the leader once more.
                    if let Ok(Loaded(again)) = self.load_region(bo, key, is_end, false).await {
                        self.write().insert(again.clone(), true);
                        return Ok(again);
                    }
                }
                Ok(r)
            }
        }
    }

    /// Locates the region containing `key` with the caller's backoffer (client-go's
    /// `LocateKey`, RC-14).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an abandoned load leaves the cache unchanged.
    pub async fn locate_key_with(
        &self,
        bo: &mut Backoffer,
        key: &[u8],
    ) -> Result<Arc<RegionSnapshot>> {
        Ok(self.find_region_by_key(bo, key, false).await?.snapshot())
    }

    /// Locates by end key (client-go's `LocateEndKey`, RC-15).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn locate_end_key_with(
        &self,
        bo: &mut Backoffer,
        key: &[u8],
    ) -> Result<Arc<RegionSnapshot>> {
        Ok(self.find_region_by_key(bo, key, true).await?.snapshot())
    }

    /// Locates by region id (client-go's `LocateRegionByID`, RC-17).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn locate_region_by_id_with(
        &self,
        bo: &mut Backoffer,
        id: u64,
    ) -> Result<Arc<RegionSnapshot>> {
        let cached = {
            let idx = self.read();
            idx.latest
                .get(&id)
                .and_then(|v| idx.regions.get(v))
                .cloned()
        };
        if let Some(r) = cached
            && r.check_ttl(self.inner.clock.now(), &self.inner.clock)
        {
            let cleared = r.reset_flags(NEED_RELOAD_ON_ACCESS | NEED_DELAYED_RELOAD_READY);
            if cleared == 0 {
                return Ok(r.snapshot());
            }
            return match self.load_region_by_id(bo, id).await {
                Ok(Loaded(new)) => {
                    self.write()
                        .insert(new.clone(), cleared & NEED_RELOAD_ON_ACCESS != 0);
                    Ok(new.snapshot())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reload region by id failed");
                    r.set_flags(NEED_RELOAD_ON_ACCESS);
                    Ok(r.snapshot())
                }
            };
        }
        let Loaded(r) = self.load_region_by_id(bo, id).await?;
        self.write().insert(r.clone(), true);
        Ok(r.snapshot())
    }

    /// Loads a region by id from PD without caching it (`LocateRegionByIDFromPD`, RC-18).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn locate_region_by_id_from_pd(
        &self,
        bo: &mut Backoffer,
        id: u64,
    ) -> Result<Arc<RegionSnapshot>> {
        Ok(self.load_region_by_id(bo, id).await?.0.snapshot())
    }

    /// `loadRegion` (RC-23).
    async fn load_region(
        &self,
        bo: &mut Backoffer,
        key: &[u8],
        is_end: bool,
        allow_follower: bool,
    ) -> Result<Loaded> {
        let mut attempt = 0usize;
        let mut last_err: Option<Error> = None;
        let mut search_prev = false;
        loop {
            if let Some(e) = &last_err {
                bo.backoff(BackoffKind::PdRpc, Error::new(e.detail().clone()))
                    .await?;
            }
            let opts = RegionOptions {
                allow_follower: allow_follower && attempt == 0,
                need_buckets: true,
                ..RegionOptions::default()
            };
            attempt += 1;
            let started = tokio::time::Instant::now();
            let res = if search_prev {
                self.inner.pd.get_prev_region(key.to_vec(), opts).await
            } else {
                self.inner.pd.get_region(key.to_vec(), opts).await
            };
            record_pd_load(labels_get_region(search_prev), started, &res);
            let info = match res {
                Err(e) if is_decode_error(&e) => return Err(e),
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
                Ok(None) => {
                    last_err = Some(region_not_found(format!(
                        "region not found for key {key:?}, isEndKey {is_end}"
                    )));
                    continue;
                }
                Ok(Some(info)) => info,
            };
            if info.region.peers.is_empty() {
                return Err(Error::new(ErrorDetail::Internal(
                    "receive Region with no available peer".into(),
                )));
            }
            if is_end && !search_prev && !key.is_empty() && info.region.start_key == key {
                search_prev = true;
                continue;
            }
            return self.new_region(bo, info).await.map(Loaded);
        }
    }

    /// `loadRegionByID` (RC-24).
    async fn load_region_by_id(&self, bo: &mut Backoffer, id: u64) -> Result<Loaded> {
        loop {
            let opts = RegionOptions {
                need_buckets: true,
                ..RegionOptions::default()
            };
            let started = tokio::time::Instant::now();
            let res = self.inner.pd.get_region_by_id(id, opts).await;
            record_pd_load(
                tikv_layers::metrics::names::labels::OP_GET_REGION_BY_ID,
                started,
                &res,
            );
            match res {
                Err(e) if is_decode_error(&e) => return Err(e),
                Err(e) => bo.backoff(BackoffKind::PdRpc, e).await?,
                Ok(None) => {
                    return Err(region_not_found(format!(
                        "region not found for regionID {id}"
                    )));
                }
                Ok(Some(info)) => {
                    if info.region.peers.is_empty() {
                        return Err(Error::new(ErrorDetail::Internal(
                            "receive Region with no available peer".into(),
                        )));
                    }
                    return self.new_region(bo, info).await.map(Loaded);
                }
            }
        }
    }

    /// Builds a region from PD's answer (client-go's `newRegion`, RC-33). Resolves every
    /// peer's store (may call PD).
    async fn new_region(&self, bo: &mut Backoffer, info: RegionInfo) -> Result<Arc<Region>> {
        let RegionInfo {
            region,
            leader,
            down_peers,
            pending_peers,
            buckets,
        } = info;
        let down: HashSet<u64> = down_peers
            .iter()
            .filter_map(|p| p.peer.as_ref().map(|p| p.id))
            .collect();
        let mut kept = Vec::with_capacity(region.peers.len());
        let mut epochs = Vec::with_capacity(region.peers.len());
        let mut tikv = Vec::new();
        let mut tiflash = Vec::new();
        let mut leader_pos = None;
        for peer in &region.peers {
            let store = self.inner.stores.get_or_insert(peer.store_id);
            let addr = self.inner.stores.init_resolve(&store, bo).await?;
            if addr.is_empty() || down.contains(&peer.id) {
                continue;
            }
            let is_leader = leader
                .as_ref()
                .is_some_and(|l| l.id == peer.id && l.store_id == peer.store_id);
            if peer.is_witness && !is_leader {
                continue;
            }
            let idx = kept.len();
            match store.snapshot().store_type {
                StoreType::TiKv => {
                    if is_leader {
                        leader_pos = Some(tikv.len());
                    }
                    tikv.push(idx);
                }
                StoreType::TiFlash => tiflash.push(idx),
                StoreType::TiFlashCompute => {}
            }
            epochs.push(store.epoch());
            kept.push(*peer);
        }
        if kept.is_empty() {
            return Err(Error::new(ErrorDetail::Internal(format!(
                "no available peers, region: {}",
                region.id
            ))));
        }
        let mut meta = region;
        meta.peers = kept;
        let ver = RegionVerId::of(&meta);
        let snap = RegionSnapshot {
            ver,
            region: Arc::new(meta),
            store_epochs: epochs.into(),
            tikv_peers: tikv.into(),
            tiflash_peers: tiflash.into(),
            work_tikv_idx: leader_pos.unwrap_or(0),
            work_tiflash_idx: 0,
            buckets: buckets.map(Arc::new),
            pending_peers: pending_peers.into(),
        };
        let r = Region {
            ver,
            start: IndexKey::new(&snap.region.start_key),
            end: IndexKey::new(&snap.region.end_key),
            snap: RwLock::new(Arc::new(snap)),
            ttl: AtomicI64::new(self.inner.clock.next_ttl(self.inner.clock.now())),
            flags: AtomicU8::new(if down.is_empty() {
                0
            } else {
                NEED_EXPIRE_AFTER_TTL
            }),
            invalid: AtomicU8::new(InvalidReason::Ok as u8),
            proxy: AtomicUsize::new(NO_PROXY),
        };
        Ok(Arc::new(r))
    }

    /// Inserts a region built elsewhere (tests, benchmarks, full refresh); returns false
    /// for a stale one (RC-34).
    pub fn insert_region(&self, info: RegionInfo, invalidate_old: bool) -> Result<bool> {
        let RegionInfo {
            region,
            leader,
            buckets,
            ..
        } = info;
        let tikv: Vec<usize> = (0..region.peers.len()).collect();
        let leader_pos = leader
            .as_ref()
            .and_then(|l| region.peers.iter().position(|p| p.id == l.id));
        let ver = RegionVerId::of(&region);
        let epochs: Vec<u32> = region
            .peers
            .iter()
            .map(|p| self.inner.stores.get_or_insert(p.store_id).epoch())
            .collect();
        let snap = RegionSnapshot {
            ver,
            region: Arc::new(region),
            store_epochs: epochs.into(),
            tikv_peers: tikv.into(),
            tiflash_peers: Vec::new().into(),
            work_tikv_idx: leader_pos.unwrap_or(0),
            work_tiflash_idx: 0,
            buckets: buckets.map(Arc::new),
            pending_peers: Vec::new().into(),
        };
        let r = Arc::new(Region {
            ver,
            start: IndexKey::new(&snap.region.start_key),
            end: IndexKey::new(&snap.region.end_key),
            snap: RwLock::new(Arc::new(snap)),
            ttl: AtomicI64::new(self.inner.clock.next_ttl(self.inner.clock.now())),
            flags: AtomicU8::new(0),
            invalid: AtomicU8::new(0),
            proxy: AtomicUsize::new(NO_PROXY),
        });
        Ok(self.write().insert(r, invalidate_old))
    }

    /// `scanRegions` (RC-25): up to `limit` regions with a leader from `start`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn scan_regions(
        &self,
        bo: &mut Backoffer,
        start: &[u8],
        end: &[u8],
        limit: i32,
    ) -> Result<Vec<Arc<Region>>> {
        let mut allow_follower = true;
        let mut failed = false;
        loop {
            let opts = RegionOptions {
                allow_follower,
                ..RegionOptions::default()
            };
            let started = tokio::time::Instant::now();
            let res = self
                .inner
                .pd
                .scan_regions(start.to_vec(), end.to_vec(), limit, opts)
                .await;
            record_pd_load(
                tikv_layers::metrics::names::labels::OP_SCAN_REGIONS,
                started,
                &res,
            );
            let reason = match res {
                Err(e) if is_decode_error(&e) => return Err(e),
                Err(e) => e,
                Ok(infos) => {
                    let ranges = [KeyRange::new(start, end)];
                    if infos.is_empty() {
                        allow_follower = false;
                        region_not_found(format!("PD returned no region, start {start:?}"))
                    } else if regions_have_gap(&ranges, &infos, limit) {
                        allow_follower = false;
                        region_not_found("PD returned regions with gaps".into())
                    } else {
                        let mut out = Vec::new();
                        for info in infos.into_iter().filter(RegionInfo::has_leader) {
                            out.push(self.new_region(bo, info).await?);
                        }
                        if !out.is_empty() {
                            return Ok(out);
                        }
                        allow_follower = false;
                        region_not_found("all regions have no leader".into())
                    }
                }
            };
            let _ = failed;
            failed = true;
            bo.backoff(BackoffKind::PdRpc, reason).await?;
        }
    }

    /// `batchScanRegions` (RC-26), with "must contain all key ranges" set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn batch_scan_regions(
        &self,
        bo: &mut Backoffer,
        ranges: &[KeyRange],
        limit: i32,
        need_buckets: bool,
        need_leader: bool,
    ) -> Result<Vec<Arc<Region>>> {
        let mut allow_follower = true;
        loop {
            let opts = RegionOptions {
                allow_follower,
                need_buckets,
                contain_all_key_range: true,
                ..RegionOptions::default()
            };
            let started = tokio::time::Instant::now();
            let res = self
                .inner
                .pd
                .batch_scan_regions(ranges.to_vec(), limit, opts)
                .await;
            record_pd_load(
                tikv_layers::metrics::names::labels::OP_BATCH_SCAN_REGIONS,
                started,
                &res,
            );
            let reason = match res {
                Err(e) if is_decode_error(&e) => return Err(e),
                Err(e) => e,
                Ok(infos) if infos.is_empty() => {
                    allow_follower = false;
                    region_not_found("PD returned no region".into())
                }
                Ok(infos) if regions_have_gap(ranges, &infos, limit) => {
                    allow_follower = false;
                    region_not_found("PD returned regions with gaps".into())
                }
                Ok(infos) => {
                    let mut out = Vec::new();
                    for info in infos {
                        if need_leader && !info.has_leader() {
                            continue;
                        }
                        out.push(self.new_region(bo, info).await?);
                    }
                    if !out.is_empty() || !need_leader {
                        return Ok(out);
                    }
                    allow_follower = false;
                    region_not_found("all regions have no leader".into())
                }
            };
            bo.backoff(BackoffKind::PdRpc, reason).await?;
        }
    }

    /// Loads regions from `start_key` into the cache and returns the key after the last
    /// one (`BatchLoadRegionsFromKey`, RC-22).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn batch_load_regions_from_key(
        &self,
        bo: &mut Backoffer,
        start_key: &[u8],
        count: i32,
    ) -> Result<Vec<u8>> {
        let regions = self
            .batch_load_regions_with_key_range(bo, start_key, &[], count)
            .await?;
        Ok(regions
            .last()
            .map(|r| r.end_key().to_vec())
            .unwrap_or_default())
    }

    /// Loads and caches up to `count` regions overlapping `[start, end)`
    /// (`BatchLoadRegionsWithKeyRange`, RC-22).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn batch_load_regions_with_key_range(
        &self,
        bo: &mut Backoffer,
        start: &[u8],
        end: &[u8],
        count: i32,
    ) -> Result<Vec<Arc<RegionSnapshot>>> {
        let regions = self.scan_regions(bo, start, end, count).await?;
        if regions.is_empty() {
            return Err(region_not_found("PD returned no region".into()));
        }
        let mut idx = self.write();
        let mut out = Vec::with_capacity(regions.len());
        for r in regions {
            idx.insert(r.clone(), false);
            out.push(r.snapshot());
        }
        Ok(out)
    }

    /// The ids of every region from the one holding `start` through the one holding `end`
    /// (inclusive) (`ListRegionIDsInKeyRange`, RC-22).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn list_region_ids_in_key_range(
        &self,
        bo: &mut Backoffer,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut key = start.to_vec();
        loop {
            let r = self.locate_key_with(bo, &key).await?;
            ids.push(r.ver.id);
            if r.contains(end) || r.end_key().is_empty() {
                return Ok(ids);
            }
            key = r.end_key().to_vec();
        }
    }

    /// The regions covering `[start, end)` in order (`LocateKeyRange`, RC-19), from the
    /// cache where possible and from PD otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn locate_key_range(
        &self,
        bo: &mut Backoffer,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<Arc<RegionSnapshot>>> {
        let mut out: Vec<Arc<RegionSnapshot>> = Vec::new();
        let mut key = start.to_vec();
        loop {
            while let Some(s) = self.try_locate_key(&key) {
                let done = s.contains_by_end(end) || s.end_key().is_empty();
                key = s.end_key().to_vec();
                out.push(s);
                if done || (!end.is_empty() && key.as_slice() >= end) {
                    return Ok(out);
                }
            }
            let loaded = self
                .batch_scan_regions(
                    bo,
                    &[KeyRange::new(key.clone(), end.to_vec())],
                    REGIONS_PER_BATCH,
                    false,
                    true,
                )
                .await?;
            let Some(last) = loaded.last().cloned() else {
                return Err(region_not_found("PD returned no region".into()));
            };
            {
                let mut idx = self.write();
                for r in &loaded {
                    idx.insert(r.clone(), false);
                    out.push(r.snapshot());
                }
            }
            let last = last.snapshot();
            if last.contains_by_end(end) || last.end_key().is_empty() {
                return Ok(out);
            }
            key = last.end_key().to_vec();
        }
    }

    /// One garbage-collection round over up to `limit` regions from `cursor`; returns the
    /// next cursor (`gcRoundFunc`, RC-54, simplified: no delayed-reload promotion of
    /// stale stores).
    pub fn gc_round(&self, cursor: &[u8], limit: usize) -> Vec<u8> {
        let now = self.inner.clock.now();
        let hook = self
            .inner
            .gc_scan_hook
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut expired = Vec::new();
        let mut next = Vec::new();
        {
            let idx = self.read();
            for (seen, (k, r)) in idx
                .sorted
                .range::<[u8], _>((Bound::Included(cursor), Bound::Unbounded))
                .enumerate()
            {
                if seen == limit.max(1) {
                    next = k.to_vec();
                    break;
                }
                if let Some(hook) = &hook {
                    hook(r);
                }
                if now > r.ttl() {
                    expired.push((k.clone(), r.ver));
                    continue;
                }
                let f = r.flags();
                if f & NEED_DELAYED_RELOAD_READY != 0 {
                    continue;
                }
                if f & NEED_DELAYED_RELOAD_PENDING != 0 {
                    r.set_flags(NEED_DELAYED_RELOAD_READY);
                    continue;
                }
                if f & NEED_EXPIRE_AFTER_TTL == 0 {
                    let snap = r.snapshot();
                    let stale =
                        snap.region
                            .peers
                            .iter()
                            .zip(snap.store_epochs.iter())
                            .any(|(p, e)| {
                                self.inner.stores.get(p.store_id).is_none_or(|s| {
                                    s.epoch() != *e
                                        || s.liveness() != tikv_layers::locate::Liveness::Reachable
                                })
                            });
                    if stale {
                        r.set_flags(NEED_EXPIRE_AFTER_TTL);
                    }
                }
            }
        }
        if !expired.is_empty() {
            let mut idx = self.write();
            for (k, ver) in expired {
                if idx.sorted.get(k.as_slice()).is_some_and(|r| r.ver == ver) {
                    idx.sorted.remove(k.as_slice());
                }
                idx.remove_version(&ver);
            }
        }
        next
    }

    /// The background GC (client-go's `gcRoundFunc` scheduled every `cleanCacheInterval`,
    /// RC-53/RC-54): every `interval`, starting one interval from now, one
    /// [`gc_round`](Self::gc_round) of `limit` regions, resuming where the previous round
    /// stopped. Returns when `stop` completes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: each round is synchronous.
    pub async fn run_gc(
        &self,
        interval: std::time::Duration,
        limit: usize,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut cursor = Vec::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            cursor = self.gc_round(&cursor, limit);
        }
    }

    /// Installs a hook called with every region a GC round examines (tests).
    #[cfg(test)]
    pub(crate) fn set_gc_scan_hook(&self, hook: Option<GcScanHook>) {
        *self
            .inner
            .gc_scan_hook
            .write()
            .unwrap_or_else(|e| e.into_inner()) = hook;
    }

    fn with_region(&self, ver: &RegionVerId, f: impl FnOnce(&Arc<Region>)) {
        if let Some(r) = self.get_cached(ver) {
            f(&r);
        }
    }

    /// Resolution state of a store (tests).
    pub fn store_state(&self, id: u64) -> Option<ResolveState> {
        self.inner.stores.get(id).map(|s| s.state())
    }
}

/// `regionsHaveGapInRanges` (RC-27).
pub fn regions_have_gap(ranges: &[KeyRange], regions: &[RegionInfo], limit: i32) -> bool {
    let Some(first) = ranges.first() else {
        return false;
    };
    if regions.is_empty() {
        return true;
    }
    let mut cursor = first.start.clone();
    let mut ri = 0;
    for r in regions {
        if r.region.start_key.as_slice() > cursor.as_slice() {
            return true;
        }
        if r.region.end_key.is_empty() {
            return false;
        }
        if r.region.end_key.as_slice() > cursor.as_slice() {
            cursor = r.region.end_key.clone();
        }
        while ri < ranges.len() {
            let rg = &ranges[ri];
            if !rg.end.is_empty() && rg.end.as_slice() <= cursor.as_slice() {
                ri += 1;
                continue;
            }
            if rg.start.as_slice() > cursor.as_slice() {
                cursor = rg.start.clone();
            }
            break;
        }
        if ri == ranges.len() {
            return false;
        }
    }
    if limit > 0 && regions.len() as i64 == i64::from(limit) {
        return false;
    }
    true
}

impl RegionLocator for RegionCache {
    fn locate_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        if let Some(s) = self.try_locate_key(key) {
            return Box::pin(std::future::ready(Ok(s)));
        }
        let this = self.clone();
        let key = key.to_vec();
        Box::pin(async move {
            let mut bo = Backoffer::new(LOCATE_BUDGET_MS);
            this.locate_key_with(&mut bo, &key).await
        })
    }

    fn locate_end_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let this = self.clone();
        let key = key.to_vec();
        Box::pin(async move {
            let mut bo = Backoffer::new(LOCATE_BUDGET_MS);
            this.locate_end_key_with(&mut bo, &key).await
        })
    }

    fn locate_region_by_id(&self, id: u64) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let this = self.clone();
        Box::pin(async move {
            let mut bo = Backoffer::new(LOCATE_BUDGET_MS);
            this.locate_region_by_id_with(&mut bo, id).await
        })
    }

    fn cached_region(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        let r = self.get_cached(ver)?;
        r.is_valid(self.inner.clock.now(), &self.inner.clock)
            .then(|| r.snapshot())
    }

    fn invalidate_region(&self, ver: &RegionVerId, reason: InvalidReason) {
        self.with_region(ver, |r| r.invalidate(reason));
    }

    /// The region object of `ver` as long as the index still holds it, valid or not
    /// (client-go's `GetCachedRegionWithRLock`): leader switches made after an
    /// invalidation stay visible to the selector that started on it.
    fn cached_region_any(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        self.get_cached(ver).map(|r| r.snapshot())
    }

    fn proxy_idx(&self, ver: &RegionVerId) -> Option<usize> {
        self.get_cached(ver).and_then(|r| r.proxy_idx())
    }

    fn set_proxy_idx(&self, ver: &RegionVerId, idx: Option<usize>) {
        self.with_region(ver, |r| r.set_proxy_idx(idx));
    }

    fn schedule_reload(&self, ver: &RegionVerId) {
        self.with_region(ver, |r| r.set_flags(NEED_RELOAD_ON_ACCESS));
    }

    fn schedule_delayed_reload(&self, ver: &RegionVerId) {
        self.with_region(ver, |r| r.set_flags(NEED_DELAYED_RELOAD_PENDING));
    }

    fn switch_leader(&self, ver: &RegionVerId, peer: &metapb::Peer) -> bool {
        let Some(r) = self.get_cached(ver) else {
            return false;
        };
        let snap = r.snapshot();
        let Some(global) = snap
            .region
            .peers
            .iter()
            .position(|p| p.id == peer.id && p.store_id == peer.store_id)
        else {
            return false;
        };
        let pos = snap
            .tikv_peers
            .iter()
            .position(|&i| i == global)
            .unwrap_or(0);
        if snap.work_tikv_idx == pos {
            return true;
        }
        let store_epoch = self.inner.stores.get(peer.store_id).map(|s| s.epoch());
        r.update_snapshot(|s| {
            s.work_tikv_idx = pos;
            if let Some(e) = store_epoch {
                let mut epochs = s.store_epochs.to_vec();
                if let Some(slot) = epochs.get_mut(global) {
                    *slot = e;
                }
                s.store_epochs = epochs.into();
            }
        });
        true
    }

    fn update_leader(&self, ver: &RegionVerId, leader: Option<&metapb::Peer>, current_idx: usize) {
        let Some(r) = self.get_cached(ver) else {
            return;
        };
        match leader {
            None => self.switch_next_tikv_peer(ver, current_idx),
            Some(p) => {
                if !self.switch_leader(ver, p) {
                    r.invalidate(InvalidReason::StoreNotFound);
                }
            }
        }
    }

    fn switch_next_tikv_peer(&self, ver: &RegionVerId, current_idx: usize) {
        self.with_region(ver, |r| {
            let snap = r.snapshot();
            if snap.work_tikv_idx != current_idx || snap.tikv_peers.is_empty() {
                return;
            }
            let n = snap.tikv_peers.len();
            r.update_snapshot(|s| s.work_tikv_idx = (current_idx + 1) % n);
        });
    }

    fn on_epoch_not_match(
        &self,
        bo: SharedBackoffer,
        ver: RegionVerId,
        store_id: u64,
        current_regions: Vec<metapb::Region>,
    ) -> BoxFuture<'static, Result<EpochNotMatchOutcome>> {
        let this = self.clone();
        Box::pin(async move {
            let cached = this.get_cached(&ver);
            if current_regions.is_empty() {
                if let Some(r) = cached {
                    r.invalidate(InvalidReason::EpochNotMatch);
                }
                return Ok(EpochNotMatchOutcome::Updated);
            }
            let ahead = current_regions.iter().any(|m| {
                let e = m.region_epoch.unwrap_or_default();
                m.id == ver.id && (e.conf_ver < ver.conf_ver || e.version < ver.ver)
            });
            if ahead {
                let reason = Error::new(ErrorDetail::Internal(format!(
                    "region epoch is ahead of tikv, region {}",
                    ver.id
                )));
                bo.backoff(BackoffKind::RegionMiss, reason).await?;
                return Ok(EpochNotMatchOutcome::Retry);
            }
            let buckets = cached.as_ref().and_then(|r| r.snapshot().buckets.clone());
            let mut bo_local = Backoffer::new(LOCATE_BUDGET_MS);
            let mut new_regions = Vec::with_capacity(current_regions.len());
            for meta in current_regions {
                let info = RegionInfo {
                    region: meta,
                    buckets: buckets.as_deref().cloned(),
                    ..RegionInfo::default()
                };
                let r = this.new_region(&mut bo_local, info).await?;
                let snap = r.snapshot();
                if let Some(pos) = snap.tikv_peers.iter().position(|&i| {
                    snap.region
                        .peers
                        .get(i)
                        .is_some_and(|p| p.store_id == store_id)
                }) {
                    r.update_snapshot(|s| s.work_tikv_idx = pos);
                }
                new_regions.push(r);
            }
            if !new_regions.iter().any(|r| r.ver == ver)
                && let Some(r) = &cached
            {
                r.invalidate(InvalidReason::EpochNotMatch);
            }
            let mut idx = this.write();
            for r in new_regions {
                idx.insert(r, true);
            }
            Ok(EpochNotMatchOutcome::Updated)
        })
    }

    fn on_bucket_version_not_match(&self, ver: &RegionVerId, version: u64, keys: Vec<Vec<u8>>) {
        self.with_region(ver, |r| {
            let snap = r.snapshot();
            if snap.buckets.as_ref().is_none_or(|b| b.version < version) {
                r.update_snapshot(|s| {
                    s.buckets = Some(Arc::new(metapb::Buckets {
                        region_id: ver.id,
                        version,
                        keys,
                        ..Default::default()
                    }));
                });
            }
        });
    }

    fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }
}

#[cfg(test)]
impl RegionCache {
    pub(crate) fn test_index_sizes(&self) -> (usize, usize, usize) {
        let idx = self.read();
        (idx.sorted.len(), idx.regions.len(), idx.latest.len())
    }
}

/// Marks a region's store resolve helpers used (keeps `ResolveState` re-exported here).
pub use crate::store_cache::ResolveState as StoreResolveState;
