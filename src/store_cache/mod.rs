//! The store cache: one [`Store`] per store id, resolved lazily from PD, with its resolve
//! state, fail epoch and liveness (client-go's `internal/locate/store_cache.go`, SC-1 ..
//! SC-13 of `shared/spec/request-path.md`).
//!
//! It implements the layers' [`StoreResolver`]. Lookups return `Arc` handles; the
//! per-store PD fetch is serialized by an async mutex, and no lock is held across any other
//! await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use futures_core::future::BoxFuture;
use tikv_layers::backoff::{BackoffKind, Backoffer};
use tikv_layers::locate::{Liveness, StoreResolver, StoreSnapshot, StoreType};
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::metapb;
use tokio::sync::mpsc;

use crate::pd::{RegionMetaClient, RegionOptions, is_store_not_found};

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

/// One store (client-go's `Store`, SC-1). Never replaced for the life of the cache; its
/// metadata is swapped in place.
#[derive(Debug)]
pub struct Store {
    id: u64,
    meta: RwLock<Arc<StoreSnapshot>>,
    state: AtomicU8,
    epoch: AtomicU32,
    liveness: AtomicU8,
    resolve_lock: tokio::sync::Mutex<()>,
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
            resolve_lock: tokio::sync::Mutex::new(()),
        }
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

struct Inner {
    pd: Arc<dyn RegionMetaClient>,
    stores: RwLock<HashMap<u64, Arc<Store>>>,
    need_check_tx: mpsc::Sender<()>,
    need_check_rx: std::sync::Mutex<Option<mpsc::Receiver<()>>>,
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
            }),
        }
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
        }
    }
}
