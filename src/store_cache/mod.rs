//! The store cache: one [`Store`] per store id, resolved lazily from PD, with its resolve
//! state, fail epoch, liveness, health and load (client-go's
//! `internal/locate/store_cache.go` and `slow_score.go`; SC-1 .. SC-17 and HS-1 .. HS-6 of
//! `shared/spec/request-path.md`).
//!
//! It implements the layers' [`StoreResolver`]: the replica selector and the send loop read
//! liveness, slowness and estimated wait from here and feed back send failures, busy
//! answers and RPC durations. Lookups return `Arc` handles; the per-store PD fetch is
//! serialized by an async mutex, and no lock is held across any other await.
//!
//! The pieces:
//!
//! - resolve states, fail epochs and re-resolution (SC-3 .. SC-8) in this file;
//! - liveness probing and the per-store health-check loop (SC-9 .. SC-11), with a
//!   pluggable [`LivenessProber`] (see [Liveness](#liveness) below);
//! - the client-side slow score (HS-2, [`SlowScoreStat`]) and the store health status
//!   (HS-1, HS-3, HS-4, [`StoreHealthStatus`]), ticked by [`StoreCache::tick_health`] every
//!   15 s from the [`Cluster`](crate::cluster::Cluster)'s loop, and fed by TiKV's health
//!   feedback through the transport's [`EventListener`](crate::transport::EventListener);
//! - load stats (SC-17), prefer-leader flow counters (HS-6) and the per-store token limit
//!   (SC-16, [`StoreCache::try_acquire_token`]).
//!
//! # Liveness
//!
//! [`StoreResolver::probe_liveness`] is client-go's
//! `requestLivenessAndStartHealthCheckLoopIfNeeded`: probe now; if a TiKV store does not
//! answer, mark it and start a loop that re-probes it every second until it does. Background
//! loops stop when [`StoreCache::close`] is called or the cache is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_layers::backoff::{BackoffKind, Backoffer};
use tikv_layers::locate::{Liveness, StoreResolver, StoreSnapshot, StoreType};
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::{kvrpcpb, metapb};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pd::{RegionMetaClient, RegionOptions, is_store_not_found};

mod health;
mod liveness;
pub mod metrics;
mod slow_score;
#[cfg(all(test, feature = "mock"))]
mod tests;

pub use health::{
    HealthFeedbackRequester, HealthStatusDetail, ReplicaFlow, StoreHealthStatus,
    TIKV_SLOW_SCORE_ACTIVE_UPDATE_INTERVAL, TIKV_SLOW_SCORE_DECAY_PER_SEC,
    TIKV_SLOW_SCORE_THRESHOLD, TIKV_SLOW_SCORE_UPDATE_INTERVAL, transport_feedback_requester,
};
pub use liveness::{
    FnProber, GrpcHealthProber, GrpcProberConfig, HEALTH_CHECK_INTERVAL, LivenessProber,
    ProbeTarget, STORE_RE_RESOLVE_INTERVAL,
};
pub use slow_score::{
    CountSlidingWindow, SLOW_SCORE_INIT, SLOW_SCORE_MAX, SLOW_SCORE_THRESHOLD, SlowScoreStat,
    is_slow_score,
};

use self::metrics as m;

/// Resolve states of a store (client-go's `resolveState`, SC-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResolveState {
    /// Not fetched from PD yet.
    Unresolved = 0,
    /// Metadata is loaded.
    Resolved = 1,
    /// Needs a re-resolve (after a send failure or StoreNotMatch).
    NeedCheck = 2,
    /// The store is gone.
    Tombstone = 3,
}

impl ResolveState {
    fn from_u8(v: u8) -> ResolveState {
        match v {
            0 => ResolveState::Unresolved,
            1 => ResolveState::Resolved,
            2 => ResolveState::NeedCheck,
            _ => ResolveState::Tombstone,
        }
    }
}

/// The store type named by a store's labels (client-go's `GetStoreTypeByMeta`, SC-12).
pub fn store_type_of(labels: &[metapb::StoreLabel]) -> StoreType {
    for l in labels {
        if l.key == "engine" {
            if l.value == "tiflash" {
                return StoreType::TiFlash;
            }
            if l.value == "tiflash_compute" {
                return StoreType::TiFlashCompute;
            }
        }
    }
    StoreType::TiKv
}

/// Same label set, order ignored (client-go's `IsSameLabels`).
fn same_labels(a: &[metapb::StoreLabel], b: &[metapb::StoreLabel]) -> bool {
    a.len() == b.len()
        && b.iter()
            .all(|w| a.iter().any(|l| l.key == w.key && l.value == w.value))
}

/// The last `ServerIsBusy` load report of a store (client-go's `storeLoadStats`, SC-17).
#[derive(Debug, Clone, Copy)]
struct LoadStats {
    estimated_wait: Duration,
    updated_at: Instant,
}

/// One store (client-go's `Store`, SC-1). Never replaced for the life of the cache; its
/// metadata is swapped in place.
#[derive(Debug)]
pub struct Store {
    id: u64,
    meta: RwLock<Arc<StoreSnapshot>>,
    state: AtomicU8,
    epoch: AtomicU32,
    /// Non-reachable also means "a health-check loop is running" (SC-10).
    liveness: AtomicU8,
    unreachable_since: Mutex<Option<Instant>>,
    resolve_lock: tokio::sync::Mutex<()>,
    health: StoreHealthStatus,
    load: Mutex<Option<LoadStats>>,
    tokens: AtomicU64,
    flows: [AtomicU64; 2],
}

impl Store {
    fn new(id: u64) -> Store {
        Store {
            id,
            meta: RwLock::new(Arc::new(StoreSnapshot {
                id,
                ..StoreSnapshot::default()
            })),
            state: AtomicU8::new(ResolveState::Unresolved as u8),
            epoch: AtomicU32::new(0),
            liveness: AtomicU8::new(Liveness::Reachable as u8),
            unreachable_since: Mutex::new(None),
            resolve_lock: tokio::sync::Mutex::new(()),
            health: StoreHealthStatus::new(id),
            load: Mutex::new(None),
            tokens: AtomicU64::new(0),
            flows: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Overwrites the fail epoch (tests: client-go's tests store `Store.epoch` directly).
    #[cfg(test)]
    pub(crate) fn set_epoch(&self, epoch: u32) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Store id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current metadata.
    pub fn snapshot(&self) -> Arc<StoreSnapshot> {
        self.meta.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The resolve state.
    pub fn state(&self) -> ResolveState {
        ResolveState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The fail epoch (SC-8).
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The last known liveness.
    pub fn liveness(&self) -> Liveness {
        Liveness::from_u8(self.liveness.load(Ordering::Acquire))
    }

    /// When the store was last found unreachable by a probe that started a health-check
    /// loop (`unreachableSince`).
    pub fn unreachable_since(&self) -> Option<Instant> {
        *self
            .unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The store's health status (HS-1; client-go's `GetHealthStatus`).
    pub fn health(&self) -> &StoreHealthStatus {
        &self.health
    }

    /// Applies health feedback TiKV sent about this store (`recordHealthFeedback`, HS-3).
    /// The feedback sequence number is not used, as in client-go.
    pub fn record_health_feedback(&self, feedback: &kvrpcpb::HealthFeedback) {
        self.health
            .update_tikv_side(i64::from(feedback.slow_score), Instant::now());
    }

    /// Records a `ServerIsBusy` answer's estimated wait, now (`updateServerLoadStats`,
    /// SC-17).
    pub fn update_server_load_stats(&self, estimated_wait_ms: u32) {
        *self.load.lock().unwrap_or_else(|e| e.into_inner()) = Some(LoadStats {
            estimated_wait: Duration::from_millis(u64::from(estimated_wait_ms)),
            updated_at: Instant::now(),
        });
    }

    /// How long a request would still queue on the store: the last reported wait minus the
    /// time since it was reported, never negative (`EstimatedWaitTime`, SC-17).
    pub fn estimated_wait(&self) -> Duration {
        let Some(stats) = *self.load.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Duration::ZERO;
        };
        stats
            .estimated_wait
            .saturating_sub(stats.updated_at.elapsed())
    }

    /// Attempts currently holding one of the store's tokens (SC-16).
    pub fn token_count(&self) -> u64 {
        self.tokens.load(Ordering::Acquire)
    }

    /// Counts one prefer-leader selection of this store (`recordReplicaFlowsStats`, HS-6).
    pub fn record_replica_flow(&self, flow: ReplicaFlow) {
        self.flows[flow as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// The selections counted since the last report (`getReplicaFlowsStats`, HS-6).
    pub fn replica_flows(&self, flow: ReplicaFlow) -> u64 {
        self.flows[flow as usize].load(Ordering::Acquire)
    }

    /// `changeResolveStateTo` (SC-3): succeeds when the state already is `to`.
    fn change_state(&self, from: ResolveState, to: ResolveState) -> bool {
        loop {
            let cur = self.state();
            if cur == to {
                return true;
            }
            if cur != from {
                return false;
            }
            if self
                .state
                .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return true;
            }
        }
    }

    fn set_meta(&self, store: &metapb::Store) {
        let snap = StoreSnapshot {
            id: self.id,
            addr: store.address.clone(),
            peer_addr: store.peer_address.clone(),
            status_addr: store.status_address.clone(),
            labels: store.labels.clone(),
            store_type: store_type_of(&store.labels),
        };
        *self.meta.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
    }

    /// `initByStoreMeta` (SC-4): nil or tombstone → tombstone; empty address → error.
    fn init_by_meta(&self, store: Option<&metapb::Store>) -> Result<String> {
        let store = match store {
            Some(s) if s.state() != metapb::StoreState::Tombstone => s,
            _ => {
                self.state
                    .store(ResolveState::Tombstone as u8, Ordering::Release);
                return Ok(String::new());
            }
        };
        if store.address.is_empty() {
            return Err(Error::new(ErrorDetail::Internal(format!(
                "empty store({}) address",
                self.id
            ))));
        }
        self.set_meta(store);
        self.change_state(ResolveState::Unresolved, ResolveState::Resolved);
        Ok(store.address.clone())
    }
}

/// An acquired store token (SC-16); the token returns to the store when this is dropped
/// (client-go's `releaseStoreToken`).
#[derive(Debug)]
pub struct StoreToken {
    store: Arc<Store>,
}

impl StoreToken {
    /// The store the token belongs to.
    pub fn store_id(&self) -> u64 {
        self.store.id
    }
}

impl Drop for StoreToken {
    fn drop(&mut self) {
        let released = self
            .store
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !released {
            tracing::warn!(
                store = self.store.id,
                "release store token failed, count is 0"
            );
        }
    }
}

struct Inner {
    pd: Arc<dyn RegionMetaClient>,
    stores: RwLock<HashMap<u64, Arc<Store>>>,
    need_check_tx: mpsc::Sender<()>,
    need_check_rx: std::sync::Mutex<Option<mpsc::Receiver<()>>>,
    liveness: RwLock<liveness::LivenessSettings>,
    feedback_requester: RwLock<Option<HealthFeedbackRequester>>,
    /// Stops the health-check loops.
    cancel: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The store cache (client-go's `storeCacheImpl`). Cheap to clone.
#[derive(Clone)]
pub struct StoreCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.stores.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("StoreCache").field("stores", &n).finish()
    }
}

impl StoreCache {
    /// An empty cache reading from `pd`.
    pub fn new(pd: Arc<dyn RegionMetaClient>) -> StoreCache {
        let (tx, rx) = mpsc::channel(1);
        StoreCache {
            inner: Arc::new(Inner {
                pd,
                stores: RwLock::new(HashMap::new()),
                need_check_tx: tx,
                need_check_rx: std::sync::Mutex::new(Some(rx)),
                liveness: RwLock::new(liveness::LivenessSettings::default()),
                feedback_requester: RwLock::new(None),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// Stops every health-check loop and keeps new ones from running (client-go's
    /// `RegionCache.Close` stopping its background runner). Idempotent.
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Installs the callback the health tick uses to ask a store for fresh feedback
    /// (client-go's `WithRequestHealthFeedbackCallback`); see
    /// [`transport_feedback_requester`].
    pub fn set_health_feedback_requester(&self, requester: Option<HealthFeedbackRequester>) {
        *self
            .inner
            .feedback_requester
            .write()
            .unwrap_or_else(|e| e.into_inner()) = requester;
    }

    /// Routes TiKV's health feedback to its store (client-go's `onHealthFeedback`, HS-3);
    /// feedback about a store the cache does not know is dropped.
    pub fn on_health_feedback(&self, feedback: &kvrpcpb::HealthFeedback) {
        match self.get(feedback.store_id) {
            Some(s) => s.record_health_feedback(feedback),
            None => tracing::info!(
                store = feedback.store_id,
                "dropped health feedback of an unknown store"
            ),
        }
    }

    /// The health tick of every store (client-go's `checkAndUpdateStoreHealthStatus`, HS-4),
    /// run every 15 s by the cluster's loop; publishes both slow scores per store.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: stores not yet ticked are simply skipped this round.
    pub async fn tick_health(&self, now: Instant) {
        let requester = self
            .inner
            .feedback_requester
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for store in self.filter(|_| true) {
            store.health.tick(now, &store, requester.as_ref()).await;
            let detail = store.health.detail();
            let id = store.id.to_string();
            ::metrics::gauge!(m::STORE_SLOW_SCORE, "store" => id.clone())
                .set(detail.client_side_slow_score as f64);
            ::metrics::gauge!(m::FEEDBACK_SLOW_SCORE, "store" => id)
                .set(detail.tikv_side_slow_score as f64);
        }
    }

    /// Publishes and resets every store's prefer-leader flow counters (client-go's
    /// `reportStoreReplicaFlows`, HS-6), run every 30 s by the cluster's loop.
    pub fn report_replica_flows(&self) {
        for store in self.filter(|_| true) {
            for flow in ReplicaFlow::ALL {
                let n = store.flows[flow as usize].swap(0, Ordering::AcqRel);
                ::metrics::gauge!(m::PREFER_LEADER_FLOWS, "type" => flow.as_str(), "store" => store.id.to_string())
                    .set(n as f64);
            }
        }
    }

    /// Counts one prefer-leader selection of `store_id` (HS-6); unknown stores are ignored.
    pub fn record_replica_flow(&self, store_id: u64, flow: ReplicaFlow) {
        if let Some(s) = self.get(store_id) {
            s.record_replica_flow(flow);
        }
    }

    /// Takes one of `store_id`'s tokens for an attempt (client-go's `getStoreToken`, SC-16):
    /// fails with [`ErrorDetail::TokenLimit`] when `limit` tokens are out (no waiting).
    /// Callers only ask when the configured `store_limit` is above 0. Like client-go the
    /// limit is soft: the check and the increment are separate steps.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::TokenLimit`] naming the store.
    pub fn try_acquire_token(&self, store_id: u64, limit: u64) -> Result<StoreToken> {
        let store = self.get_or_insert(store_id);
        if store.tokens.load(Ordering::Acquire) < limit {
            store.tokens.fetch_add(1, Ordering::AcqRel);
            return Ok(StoreToken { store });
        }
        ::metrics::counter!(m::STORE_LIMIT_ERRORS, "store" => store_id.to_string()).increment(1);
        Err(Error::new(ErrorDetail::TokenLimit { store_id }))
    }

    /// The cached store, if any (`get`).
    pub fn get(&self, id: u64) -> Option<Arc<Store>> {
        self.inner
            .stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Forgets every cached store (client-go's test-only `storeCache.clear`, used by
    /// `RegionCache::clear`).
    pub(crate) fn clear(&self) {
        self.inner
            .stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The store, inserting an unresolved one if missing (`getOrInsertDefault`, SC-2).
    pub fn get_or_insert(&self, id: u64) -> Arc<Store> {
        if let Some(s) = self.get(id) {
            return s;
        }
        let mut stores = self.inner.stores.write().unwrap_or_else(|e| e.into_inner());
        stores
            .entry(id)
            .or_insert_with(|| Arc::new(Store::new(id)))
            .clone()
    }

    /// Every cached store matching `pred` (`filter`).
    pub fn filter(&self, pred: impl Fn(&Store) -> bool) -> Vec<Arc<Store>> {
        let stores = self.inner.stores.read().unwrap_or_else(|e| e.into_inner());
        stores.values().filter(|s| pred(s)).cloned().collect()
    }

    /// Takes the receiver of "some store needs a check" events (one consumer: the
    /// re-resolve loop).
    pub fn take_need_check_events(&self) -> Option<mpsc::Receiver<()>> {
        self.inner
            .need_check_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Resolves the store's address, fetching it from PD the first time (client-go's
    /// `initResolve`, SC-4). PD errors other than "store not found" back off `pdRPC` on
    /// `bo`. Returns "" for a tombstone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the store stays unresolved if dropped mid-fetch.
    pub async fn init_resolve(&self, store: &Arc<Store>, bo: &mut Backoffer) -> Result<String> {
        let _serial = store.resolve_lock.lock().await;
        match store.state() {
            ResolveState::Unresolved => {}
            ResolveState::Tombstone => return Ok(String::new()),
            _ => return Ok(store.snapshot().addr.clone()),
        }
        let mut first = true;
        loop {
            let opts = RegionOptions {
                allow_follower: first,
                ..RegionOptions::default()
            };
            first = false;
            match self.inner.pd.get_store(store.id, opts).await {
                Ok(meta) => return store.init_by_meta(meta.as_ref()),
                Err(e) if is_store_not_found(&e) => return store.init_by_meta(None),
                Err(e) => {
                    bo.backoff(BackoffKind::PdRpc, e).await?;
                }
            }
        }
    }

    /// Re-reads the store from PD once (client-go's `reResolve`, SC-5). Returns whether the
    /// store is still valid.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn re_resolve(&self, store: &Arc<Store>) -> Result<bool> {
        let _serial = store.resolve_lock.lock().await;
        let meta = match self
            .inner
            .pd
            .get_store(store.id, RegionOptions::default())
            .await
        {
            Ok(m) => m,
            Err(e) if is_store_not_found(&e) => None,
            Err(e) => return Err(e),
        };
        let meta = match meta {
            Some(m) if m.state() != metapb::StoreState::Tombstone => m,
            _ => {
                store.epoch.fetch_add(1, Ordering::AcqRel);
                store
                    .state
                    .store(ResolveState::Tombstone as u8, Ordering::Release);
                return Ok(false);
            }
        };
        if meta.address.is_empty() {
            return Err(Error::new(ErrorDetail::Internal(format!(
                "empty store({}) address",
                store.id
            ))));
        }
        let cur = store.snapshot();
        if cur.addr != meta.address || !same_labels(&cur.labels, &meta.labels) {
            store.set_meta(&meta);
            store
                .state
                .store(ResolveState::Resolved as u8, Ordering::Release);
        } else {
            store.change_state(ResolveState::NeedCheck, ResolveState::Resolved);
        }
        Ok(true)
    }

    /// Moves a resolved store to need-check and signals the re-resolve loop
    /// (`markStoreNeedCheck`, SC-6).
    pub fn mark_store_need_check(&self, store: &Store) {
        if store.change_state(ResolveState::Resolved, ResolveState::NeedCheck) {
            let _ = self.inner.need_check_tx.try_send(());
        }
    }

    /// Re-resolves every store in need of it (`checkAndResolve`, SC-7); `all` also
    /// includes resolved stores (the periodic tick).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn check_and_resolve(&self, all: bool) {
        let stores = self.filter(|s| match s.state() {
            ResolveState::NeedCheck => true,
            ResolveState::Resolved => all,
            _ => false,
        });
        for s in stores {
            if let Err(e) = self.re_resolve(&s).await {
                tracing::warn!(store = s.id, error = %e, "re-resolve store failed");
            }
        }
    }
}

impl StoreResolver for StoreCache {
    fn resolve_store(&self, store_id: u64) -> BoxFuture<'static, Result<Arc<StoreSnapshot>>> {
        let this = self.clone();
        Box::pin(async move {
            let store = this.get_or_insert(store_id);
            let mut bo = Backoffer::new(crate::region_cache::LOCATE_BUDGET_MS);
            this.init_resolve(&store, &mut bo).await?;
            Ok(store.snapshot())
        })
    }

    fn cached_store(&self, store_id: u64) -> Option<Arc<StoreSnapshot>> {
        let s = self.get(store_id)?;
        match s.state() {
            ResolveState::Resolved | ResolveState::NeedCheck => Some(s.snapshot()),
            _ => None,
        }
    }

    fn store_epoch(&self, store_id: u64) -> Option<u32> {
        self.get(store_id).map(|s| s.epoch())
    }

    fn invalidate_store(&self, store_id: u64, epoch: u32) -> bool {
        let Some(s) = self.get(store_id) else {
            return false;
        };
        let bumped = s
            .epoch
            .compare_exchange(
                epoch,
                epoch.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        self.mark_store_need_check(&s);
        bumped
    }

    fn mark_need_check(&self, store_id: u64) {
        if let Some(s) = self.get(store_id) {
            self.mark_store_need_check(&s);
        }
    }

    fn liveness(&self, store_id: u64) -> Liveness {
        self.get(store_id)
            .map_or(Liveness::Unknown, |s| s.liveness())
    }

    fn set_liveness(&self, store_id: u64, liveness: Liveness) {
        if let Some(s) = self.get(store_id) {
            s.liveness.store(liveness as u8, Ordering::Release);
            liveness::update_liveness_gauge(&s);
        }
    }

    fn is_resolved(&self, store_id: u64) -> bool {
        self.get(store_id)
            .is_some_and(|s| s.state() == ResolveState::Resolved)
    }

    fn probe_liveness(&self, store_id: u64) -> BoxFuture<'static, Liveness> {
        let Some(store) = self.get(store_id) else {
            return Box::pin(std::future::ready(Liveness::Unknown));
        };
        let this = self.clone();
        Box::pin(async move { this.probe_store_liveness(&store).await })
    }

    fn is_slow(&self, store_id: u64) -> bool {
        self.get(store_id).is_some_and(|s| s.health.is_slow())
    }

    fn mark_slow(&self, store_id: u64) {
        if let Some(s) = self.get(store_id) {
            s.health.mark_already_slow();
        }
    }

    fn record_rpc_duration(&self, store_id: u64, d: Duration) {
        if let Some(s) = self.get(store_id) {
            s.health.record_client_side(d);
        }
    }

    fn estimated_wait(&self, store_id: u64) -> Duration {
        self.get(store_id)
            .map_or(Duration::ZERO, |s| s.estimated_wait())
    }

    fn record_server_busy(&self, store_id: u64, estimated_wait_ms: u32) {
        if let Some(s) = self.get(store_id) {
            s.update_server_load_stats(estimated_wait_ms);
        }
    }

    fn record_replica_flow(&self, store_id: u64, to_leader: bool) {
        let flow = if to_leader {
            ReplicaFlow::ToLeader
        } else {
            ReplicaFlow::ToFollower
        };
        StoreCache::record_replica_flow(self, store_id, flow);
    }

    fn acquire_store_token(
        &self,
        store_id: u64,
        limit: u64,
    ) -> Result<Option<tikv_layers::locate::StoreTokenGuard>> {
        self.try_acquire_token(store_id, limit)
            .map(|t| Some(tikv_layers::locate::StoreTokenGuard::new(t)))
    }
}

/// The cache listens to the transport's store events (client-go's
/// `regionCacheClientEventListener`): install it with
/// [`Transport::set_event_listener`](crate::transport::Transport::set_event_listener).
impl crate::transport::EventListener for StoreCache {
    fn on_health_feedback(&self, feedback: &kvrpcpb::HealthFeedback) {
        StoreCache::on_health_feedback(self, feedback);
    }
}
