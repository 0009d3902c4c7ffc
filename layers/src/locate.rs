//! How layers reach region and store state: the [`RegionLocator`] and [`StoreResolver`]
//! traits, implemented by the `tikv` crate's region and store caches
//! (`shared/spec/request-path.md` §1, §2 and §8.1).
//!
//! Lookups return cheap [`Arc`] handles to immutable snapshots ([`RegionSnapshot`],
//! [`StoreSnapshot`]): nothing is copied per call, and no lock is held once a method
//! returns, so a layer may keep a snapshot across an `.await`. Feedback calls
//! (`invalidate_region`, `switch_leader`, `invalidate_store`, ...) are synchronous critical
//! sections on the cache; the only async ones are those that may need PD.
//!
//! The traits are object safe; layers hold them as `Arc<dyn RegionLocator>` /
//! `Arc<dyn StoreResolver>`.

use std::sync::Arc;

use futures_core::future::BoxFuture;
use tikv_proto::metapb;

use crate::Result;
use crate::backoff::SharedBackoffer;

/// A region version: id plus epoch (client-go's `RegionVerID`, RC-1). Equality needs all
/// three fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RegionVerId {
    /// Region id.
    pub id: u64,
    /// `RegionEpoch.conf_ver`.
    pub conf_ver: u64,
    /// `RegionEpoch.version`.
    pub ver: u64,
}

impl RegionVerId {
    /// The version of a `metapb::Region`.
    pub fn of(region: &metapb::Region) -> RegionVerId {
        let epoch = region.region_epoch.unwrap_or_default();
        RegionVerId {
            id: region.id,
            conf_ver: epoch.conf_ver,
            ver: epoch.version,
        }
    }
}

/// Why a cached region was invalidated (client-go's `InvalidReason`, RC-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InvalidReason {
    /// Still valid.
    Ok = 0,
    /// The leader was not found; the replacement region starts from the next peer.
    NoLeader = 1,
    /// TiKV does not know the region.
    RegionNotFound = 2,
    /// The epoch moved.
    EpochNotMatch = 3,
    /// A peer's store is missing.
    StoreNotFound = 4,
    /// Anything else.
    Other = 5,
}

impl InvalidReason {
    /// Decodes the `repr(u8)` value (unknown values read as `Other`).
    pub fn from_u8(v: u8) -> InvalidReason {
        match v {
            0 => InvalidReason::Ok,
            1 => InvalidReason::NoLeader,
            2 => InvalidReason::RegionNotFound,
            3 => InvalidReason::EpochNotMatch,
            4 => InvalidReason::StoreNotFound,
            _ => InvalidReason::Other,
        }
    }
}

/// Which replicas an access targets (client-go's `AccessMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// TiKV peers.
    TiKv,
    /// TiFlash peers.
    TiFlash,
}

/// An immutable view of one cached region at one moment (client-go's `Region` plus its
/// `regionStore` snapshot, RC-2/RC-3). Replaced, never mutated: a leader switch installs a
/// new snapshot, so a holder keeps a consistent picture.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSnapshot {
    /// The region version.
    pub ver: RegionVerId,
    /// The region meta, with unusable peers already dropped (RC-33).
    pub region: Arc<metapb::Region>,
    /// For each peer of `region.peers`, its store's fail epoch when the snapshot was built.
    pub store_epochs: Arc<[u32]>,
    /// Indexes into `region.peers` of the TiKV peers, in peer order.
    pub tikv_peers: Arc<[usize]>,
    /// Indexes into `region.peers` of the TiFlash peers, in peer order.
    pub tiflash_peers: Arc<[usize]>,
    /// Index into `tikv_peers` of the believed leader (`workTiKVIdx`).
    pub work_tikv_idx: usize,
    /// Index into `tiflash_peers` of the TiFlash peer in use (`workTiFlashIdx`).
    pub work_tiflash_idx: usize,
    /// The region's buckets, if known.
    pub buckets: Option<Arc<metapb::Buckets>>,
    /// Peers PD reported pending.
    pub pending_peers: Arc<[metapb::Peer]>,
}

impl RegionSnapshot {
    /// The believed leader peer (client-go's `WorkStorePeer` for TiKV).
    pub fn leader(&self) -> Option<&metapb::Peer> {
        let idx = *self.tikv_peers.get(self.work_tikv_idx)?;
        self.region.peers.get(idx)
    }

    /// The region's start key.
    pub fn start_key(&self) -> &[u8] {
        &self.region.start_key
    }

    /// The region's end key (empty = +∞).
    pub fn end_key(&self) -> &[u8] {
        &self.region.end_key
    }

    /// Whether the region contains `key` (RC-5 `Contains`).
    pub fn contains(&self, key: &[u8]) -> bool {
        contains(self.start_key(), self.end_key(), key)
    }

    /// Whether the region contains `key` as an end key (RC-5 `ContainsByEnd`).
    pub fn contains_by_end(&self, key: &[u8]) -> bool {
        contains_by_end(self.start_key(), self.end_key(), key)
    }

    /// The buckets' version, 0 when there are none (RC-6).
    pub fn bucket_version(&self) -> u64 {
        self.buckets.as_ref().map_or(0, |b| b.version)
    }

    /// Number of TiKV peers (`TiKVNum`).
    pub fn tikv_count(&self) -> usize {
        self.tikv_peers.len()
    }
}

/// `start <= key < end`, empty end = +∞ (client-go's `contains`, RC-5).
pub fn contains(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    start <= key && (key < end || end.is_empty())
}

/// End-key containment: `start < key <= end`; an empty `key` is only in the region whose
/// end is empty (client-go's `ContainsByEnd`, RC-5).
pub fn contains_by_end(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    if key.is_empty() {
        return end.is_empty();
    }
    start < key && (key <= end || end.is_empty())
}

/// Store kinds (client-go's `tikvrpc.EndpointType` for stores, SC-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StoreType {
    /// A TiKV store.
    #[default]
    TiKv,
    /// A TiFlash store.
    TiFlash,
    /// A TiFlash compute node.
    TiFlashCompute,
}

/// Liveness of a store as last probed (client-go's `livenessState`, SC-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Liveness {
    /// Answering (the initial value).
    Reachable = 0,
    /// Not answering.
    Unreachable = 1,
    /// Could not tell.
    Unknown = 2,
}

impl Liveness {
    /// Decodes the `repr(u8)` value.
    pub fn from_u8(v: u8) -> Liveness {
        match v {
            0 => Liveness::Reachable,
            1 => Liveness::Unreachable,
            _ => Liveness::Unknown,
        }
    }
}

/// An immutable view of a store's metadata (client-go's `Store` fields guarded by its lock).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreSnapshot {
    /// Store id.
    pub id: u64,
    /// gRPC address; empty when the store is gone (tombstone).
    pub addr: String,
    /// Peer (raft) address.
    pub peer_addr: String,
    /// Status address.
    pub status_addr: String,
    /// Labels.
    pub labels: Vec<metapb::StoreLabel>,
    /// Kind of store.
    pub store_type: StoreType,
}

impl StoreSnapshot {
    /// Whether every wanted label is present (client-go's `IsLabelsMatch`, SC-13); empty
    /// `want` matches.
    pub fn is_labels_match(&self, want: &[metapb::StoreLabel]) -> bool {
        want.iter().all(|w| {
            self.labels
                .iter()
                .any(|l| l.key == w.key && l.value == w.value)
        })
    }

    /// The value of label `key` (client-go's `GetLabelValue`).
    pub fn label_value(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }
}

/// Outcome of [`RegionLocator::on_epoch_not_match`] (client-go's `(retry, err)` of
/// `OnRegionEpochNotMatch`, RC-42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochNotMatchOutcome {
    /// The cache was updated (or the region invalidated); return the error to the caller.
    Updated,
    /// The cached epoch is ahead of the store; retry the same request (after the backoff
    /// the call already slept).
    Retry,
}

/// Region lookups and the feedback the route, retry and replica layers give the region
/// cache (client-go's `RegionCache` as the send loop uses it).
pub trait RegionLocator: Send + Sync + 'static {
    /// The region containing `key`, loading it from PD on a miss (`LocateKey`, RC-14).
    fn locate_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>>;

    /// The region whose range ends at or after `key` and starts before it, for reverse
    /// scans (`LocateEndKey`, RC-15).
    fn locate_end_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>>;

    /// The region with id `id` (`LocateRegionByID`, RC-17).
    fn locate_region_by_id(&self, id: u64) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>>;

    /// The current snapshot of a cached, still valid region version, without PD.
    fn cached_region(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>>;

    /// Invalidates a cached region (RC-9); no-op when missing or already invalid.
    fn invalidate_region(&self, ver: &RegionVerId, reason: InvalidReason);

    /// Marks the region for a synchronous reload on next access (`NeedReloadOnAccess`).
    fn schedule_reload(&self, ver: &RegionVerId);

    /// Marks the region for a delayed reload (`NeedDelayedReloadPending`, RS-9).
    fn schedule_delayed_reload(&self, ver: &RegionVerId);

    /// Makes `peer` the believed leader; false when the peer is not in the cached region
    /// (`switchWorkLeaderToPeer`, RC-37).
    fn switch_leader(&self, ver: &RegionVerId, peer: &metapb::Peer) -> bool;

    /// The selector-less NotLeader path (`UpdateLeader`, RC-38): rotate when `leader` is
    /// `None`, switch otherwise, invalidate when the hinted peer is unknown.
    fn update_leader(&self, ver: &RegionVerId, leader: Option<&metapb::Peer>, current_idx: usize);

    /// Rotates the TiKV work peer from `current_idx` (`switchNextTiKVPeer`, RC-39).
    fn switch_next_tikv_peer(&self, ver: &RegionVerId, current_idx: usize);

    /// Handles an `EpochNotMatch` answered by `store_id` (`OnRegionEpochNotMatch`, RC-42).
    /// May sleep on `bo` (the `regionMiss` backoff of the "epoch ahead" case).
    fn on_epoch_not_match(
        &self,
        bo: SharedBackoffer,
        ver: RegionVerId,
        store_id: u64,
        current_regions: Vec<metapb::Region>,
    ) -> BoxFuture<'static, Result<EpochNotMatchOutcome>>;

    /// Installs newer buckets from a `BucketVersionNotMatch` (RC-44).
    fn on_bucket_version_not_match(&self, ver: &RegionVerId, version: u64, keys: Vec<Vec<u8>>);

    /// The cluster id stamped into every request's context (PD-9).
    fn cluster_id(&self) -> u64;

    /// The current snapshot of a cached region version even when it was invalidated (the
    /// replica selector keeps using the object it started with, RS-1/RS-20); `None` once
    /// the version left the cache.
    fn cached_region_any(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        self.cached_region(ver)
    }

    /// The region's remembered proxy replica (index into `tikv_peers`), used by leader
    /// forwarding (RS-14/RS-15).
    fn proxy_idx(&self, _ver: &RegionVerId) -> Option<usize> {
        None
    }

    /// Remembers (or clears) the region's proxy replica (RS-15, RS-14 step 1).
    fn set_proxy_idx(&self, _ver: &RegionVerId, _idx: Option<usize>) {}
}

/// Store lookups and store feedback (client-go's store cache, SC rules).
pub trait StoreResolver: Send + Sync + 'static {
    /// The store's metadata, resolving it from PD the first time (`initResolve`, SC-4).
    /// An empty address means the store is gone.
    fn resolve_store(&self, store_id: u64) -> BoxFuture<'static, Result<Arc<StoreSnapshot>>>;

    /// The store's metadata if already resolved; never calls PD.
    fn cached_store(&self, store_id: u64) -> Option<Arc<StoreSnapshot>>;

    /// The store's current fail epoch (SC-8); `None` for an unknown store.
    fn store_epoch(&self, store_id: u64) -> Option<u32>;

    /// Bumps the store's fail epoch if it still equals `epoch` and marks the store for
    /// re-resolution (`invalidateReplicaStore`, RS-16 / `markRegionNeedBeRefill`, RC-40).
    /// Returns whether this call bumped it.
    fn invalidate_store(&self, store_id: u64, epoch: u32) -> bool;

    /// Asks for an asynchronous re-resolve of the store (`markStoreNeedCheck`, SC-6).
    fn mark_need_check(&self, store_id: u64);

    /// The store's last known liveness.
    fn liveness(&self, store_id: u64) -> Liveness;

    /// Records a probe result for the store (the health-check loop's write, SC-10).
    fn set_liveness(&self, store_id: u64, liveness: Liveness);

    /// Whether the store's address resolution is complete (`resolved`, SC-3). Defaults to
    /// "the metadata is cached".
    fn is_resolved(&self, store_id: u64) -> bool {
        self.cached_store(store_id).is_some()
    }

    /// Probes the store's liveness now, starting its health-check loop when it is not
    /// reachable (`requestLivenessAndStartHealthCheckLoopIfNeeded`, SC-9/SC-10). The
    /// default answers the last known liveness without probing.
    fn probe_liveness(&self, store_id: u64) -> BoxFuture<'static, Liveness> {
        let l = self.liveness(store_id);
        Box::pin(std::future::ready(l))
    }

    /// Whether the store is considered slow (`healthStatus.IsSlow`, HS-1).
    fn is_slow(&self, _store_id: u64) -> bool {
        false
    }

    /// Marks the store slow at once (`markAlreadySlow`, HS-2): after a busy answer or a
    /// store invalidation.
    fn mark_slow(&self, _store_id: u64) {}

    /// Feeds one RPC duration to the store's client-side slow score (HS-2).
    fn record_rpc_duration(&self, _store_id: u64, _d: std::time::Duration) {}

    /// The store's estimated queueing time from its last busy answers (SC-17
    /// `EstimatedWaitTime`).
    fn estimated_wait(&self, _store_id: u64) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Records a `ServerIsBusy` answer carrying `estimated_wait_ms` (SC-17
    /// `updateServerLoadStats`).
    fn record_server_busy(&self, _store_id: u64, _estimated_wait_ms: u32) {}

    /// Counts one prefer-leader selection towards the leader or a follower (HS-6).
    fn record_replica_flow(&self, _store_id: u64, _to_leader: bool) {}

    /// Takes one of the store's in-flight tokens for an attempt (SC-16), never waiting:
    /// the returned guard gives it back when dropped. The default has no limit.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::TokenLimit`](crate::ErrorDetail::TokenLimit) when `limit` tokens are
    /// out.
    fn acquire_store_token(&self, _store_id: u64, _limit: u64) -> Result<Option<StoreTokenGuard>> {
        Ok(None)
    }
}

/// Holds one store token (SC-16) until dropped; see
/// [`StoreResolver::acquire_store_token`].
pub struct StoreTokenGuard {
    _token: Box<dyn std::any::Any + Send>,
}

impl StoreTokenGuard {
    /// Wraps the resolver's own token type (released by its `Drop`).
    pub fn new(token: impl std::any::Any + Send) -> StoreTokenGuard {
        StoreTokenGuard {
            _token: Box::new(token),
        }
    }
}

impl std::fmt::Debug for StoreTokenGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreTokenGuard")
    }
}

/// What the retry layer may ask of the transport (client-go's `CloseAddr` /
/// `CloseAddrVer` on the RPC client, TE-4 and RE-13).
pub trait ConnectionControl: Send + Sync + 'static {
    /// Closes every connection to `addr` (a `StoreNotMatch` answer: the address may now
    /// belong to another store).
    fn close_addr(&self, addr: &str);

    /// Closes the connection pool an error came out of, at the pool version the error
    /// recorded, when it recorded one (a remote gRPC `Cancelled`). Returns whether a pool
    /// was named by the error.
    fn close_for_error(&self, err: &crate::Error) -> bool;
}
