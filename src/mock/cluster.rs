//! The cluster model: stores, regions, peers, leaders, epochs, buckets and ids (spec §1).
//!
//! Mirrors client-go's `internal/mockstore/mocktikv/cluster.go` and `cluster_manipulate.go`:
//! the same manipulation API tests use (split, merge, transfer leader, add/remove peers,
//! stop/start/cancel stores, address changes, scheduled delays), with the deliberate
//! deviations of spec §7 (deterministic label merge, TiKV-like split epochs, overlap and
//! adjacency checks, ordered region lookup).
//!
//! All metadata sits behind one `RwLock` (MC-0.5), separate from the data engines; no lock is
//! ever held across an `.await`. Region boundaries are in PD key space (MC-1.4.1).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tikv_layers::{Error, ErrorDetail};
use tikv_proto::{kvrpcpb, metapb};

use super::Clock;

/// Memcomparable-encodes a user key for PD key space; an empty key stays empty (unbounded,
/// mocktikv's `NewMvccKey`; MC-1.4.2).
pub fn encode_key(key: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(crate::codec::encoded_bytes_len(key.len()));
    crate::codec::encode_bytes(&mut out, key);
    out
}

/// Decodes a PD-space boundary back to user-key space for the MVCC engine. An empty bound
/// stays empty; a boundary that is not a memcomparable encoding (a raw split in a
/// transactional range) is decoded as far as it goes, which keeps the order of user keys.
pub fn decode_key(key: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return Vec::new();
    }
    match crate::codec::decode_bytes(key) {
        Ok((_, k)) => k,
        Err(_) => {
            // Keep whole 8-byte groups whose marker is 0xFF, then the remaining bytes: every
            // user key whose encoding is >= `key` is >= the result.
            let mut out = Vec::new();
            let mut rest = key;
            while rest.len() >= 9 && rest[8] == 0xFF {
                out.extend_from_slice(&rest[..8]);
                rest = &rest[9..];
            }
            out.extend_from_slice(&rest[..rest.len().min(8)]);
            out
        }
    }
}

/// `start <= key < end` with empty bounds meaning unbounded (mocktikv `regionContains`,
/// MC-1.3.5).
pub fn region_contains(start: &[u8], end: &[u8], key: &[u8]) -> bool {
    start <= key && (end.is_empty() || key < end)
}

fn invalid(msg: impl Into<String>) -> Error {
    ErrorDetail::InvalidArgument(msg.into()).into()
}

/// A store record (mocktikv `Store`): the protocol record plus the mock's per-store knobs.
#[derive(Debug, Clone)]
pub(crate) struct StoreRec {
    pub(crate) meta: metapb::Store,
    pub(crate) cancelled: bool,
    pub(crate) safe_ts: u64,
    pub(crate) slow_score: i32,
    pub(crate) feedback_seq: u64,
    pub(crate) unreachable: bool,
    pub(crate) timeout: bool,
}

/// A region record (mocktikv `Region`): meta, leader peer id (0 = none) and buckets.
#[derive(Debug, Clone)]
pub(crate) struct RegionRec {
    pub(crate) meta: metapb::Region,
    pub(crate) leader: u64,
    pub(crate) buckets: Option<metapb::Buckets>,
}

impl RegionRec {
    pub(crate) fn leader_peer(&self) -> Option<metapb::Peer> {
        if self.leader == 0 {
            return None;
        }
        self.meta
            .peers
            .iter()
            .find(|p| p.id == self.leader)
            .cloned()
    }
}

/// What PD knows about one region: a copy of the meta, the leader, down peers and buckets
/// (mocktikv `GetRegionByKey`'s four results).
#[derive(Debug, Clone, PartialEq)]
pub struct RegionInfo {
    /// The region's metadata (PD key space).
    pub region: metapb::Region,
    /// The leader peer, `None` when the region has no leader.
    pub leader: Option<metapb::Peer>,
    /// The region's buckets, if any were set.
    pub buckets: Option<metapb::Buckets>,
    /// Peers of the region currently marked down (MC-1.3.2).
    pub down_peers: Vec<metapb::Peer>,
}

/// A key-range violation recorded by the TiKV face (MC-2.4.1): mocktikv would have panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyViolation {
    /// The command that named the key.
    pub cmd: &'static str,
    /// The offending key, as sent (user key).
    pub key: Vec<u8>,
    /// The region the request was routed to.
    pub region_id: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) next_id: u64,
    pub(crate) stores: BTreeMap<u64, StoreRec>,
    pub(crate) regions: HashMap<u64, RegionRec>,
    pub(crate) by_start: BTreeMap<Vec<u8>, u64>,
    pub(crate) down_peers: BTreeSet<u64>,
    pub(crate) delays: Vec<(u64, u64, Duration)>,
    pub(crate) min_resolved_ts: BTreeMap<u64, u64>,
    pub(crate) violations: Vec<KeyViolation>,
    pub(crate) unreported_region: Option<u64>,
    pub(crate) tikv_version: String,
}

impl Meta {
    pub(crate) fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn region_by_key(&self, key: &[u8]) -> Option<&RegionRec> {
        let (_, id) = self.by_start.range(..=key.to_vec()).next_back()?;
        let r = self.regions.get(id)?;
        region_contains(&r.meta.start_key, &r.meta.end_key, key).then_some(r)
    }

    pub(crate) fn info(&self, r: &RegionRec) -> RegionInfo {
        RegionInfo {
            region: r.meta.clone(),
            leader: r.leader_peer(),
            buckets: r.buckets.clone(),
            down_peers: r
                .meta
                .peers
                .iter()
                .filter(|p| self.down_peers.contains(&p.id))
                .cloned()
                .collect(),
        }
    }

    fn insert_region(&mut self, r: RegionRec) {
        self.by_start.insert(r.meta.start_key.clone(), r.meta.id);
        self.regions.insert(r.meta.id, r);
    }

    fn region_mut(&mut self, id: u64) -> Result<&mut RegionRec, Error> {
        self.regions
            .get_mut(&id)
            .ok_or_else(|| invalid(format!("region {id} not found")))
    }

    fn store_mut(&mut self, id: u64) -> Result<&mut StoreRec, Error> {
        self.stores
            .get_mut(&id)
            .ok_or_else(|| invalid(format!("store {id} not found")))
    }

    /// MC-1.8.1: split `region` at PD-space `key`.
    pub(crate) fn split(
        &mut self,
        region_id: u64,
        new_id: u64,
        key: &[u8],
        peer_ids: &[u64],
        leader: u64,
    ) -> Result<metapb::Region, Error> {
        if self.regions.contains_key(&new_id) {
            return Err(invalid(format!("region {new_id} already exists")));
        }
        let parent = self.region_mut(region_id)?;
        if parent.meta.peers.len() != peer_ids.len() {
            return Err(invalid(format!(
                "split of region {region_id} needs {} peer ids, got {}",
                parent.meta.peers.len(),
                peer_ids.len()
            )));
        }
        if key.is_empty()
            || key <= parent.meta.start_key.as_slice()
            || !region_contains(&parent.meta.start_key, &parent.meta.end_key, key)
        {
            return Err(invalid(format!(
                "split key {key:?} is not strictly inside region {region_id}"
            )));
        }
        let epoch = parent
            .meta
            .region_epoch
            .get_or_insert_with(Default::default);
        epoch.version += 1;
        let epoch = *epoch;
        let peers = parent
            .meta
            .peers
            .iter()
            .zip(peer_ids)
            .map(|(p, id)| metapb::Peer {
                id: *id,
                store_id: p.store_id,
                role: p.role,
                ..Default::default()
            })
            .collect();
        let child = metapb::Region {
            id: new_id,
            start_key: key.to_vec(),
            end_key: std::mem::replace(&mut parent.meta.end_key, key.to_vec()),
            region_epoch: Some(epoch),
            peers,
            ..Default::default()
        };
        let rec = RegionRec {
            meta: child.clone(),
            leader,
            buckets: None,
        };
        self.insert_region(rec);
        Ok(child)
    }

    pub(crate) fn store_by_addr_checked(&self, addr: &str) -> Result<u64, AddrError> {
        let mut found = false;
        for s in self.stores.values() {
            if s.meta.address == addr {
                if s.cancelled {
                    return Err(AddrError::Cancelled);
                }
                found = true;
            }
        }
        if !found {
            return Err(AddrError::ConnectFail);
        }
        for s in self.stores.values() {
            if s.meta.address == addr {
                let st = s.meta.state();
                if st != metapb::StoreState::Offline && st != metapb::StoreState::Tombstone {
                    if s.unreachable {
                        return Err(AddrError::ConnectFail);
                    }
                    if s.timeout {
                        return Err(AddrError::Timeout);
                    }
                    return Ok(s.meta.id);
                }
            }
        }
        Err(AddrError::Refused)
    }
}

/// Why an address did not resolve to a serving store (MC-1.2.5, MC-3.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrError {
    Cancelled,
    ConnectFail,
    Refused,
    Timeout,
}

/// How a store's address should be probed (MC-3.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// A request to the address would be served.
    Reachable,
    /// A request would fail at the transport level.
    Unreachable,
    /// No store has that address.
    Unknown,
}

type Hook = Arc<dyn Fn() + Send + Sync>;

struct ClusterInner {
    meta: RwLock<Meta>,
    clock: Clock,
    store_hooks: Mutex<Vec<Hook>>,
}

/// The cluster handle tests manipulate (mocktikv's `Cluster`). Cheap to clone; every clone
/// sees the same cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

fn labels_of(labels: &[(&str, &str)]) -> Vec<metapb::StoreLabel> {
    labels
        .iter()
        .map(|(k, v)| metapb::StoreLabel {
            key: (*k).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

impl Cluster {
    /// An empty cluster (no stores, no regions) reading time from `clock`.
    pub fn new(clock: Clock) -> Cluster {
        Cluster {
            inner: Arc::new(ClusterInner {
                meta: RwLock::new(Meta {
                    tikv_version: "8.5.0".to_owned(),
                    ..Default::default()
                }),
                clock,
                store_hooks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The clock the cluster reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Meta> {
        self.inner.meta.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Meta> {
        self.inner.meta.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a callback run (outside the metadata lock) after every change to stores;
    /// the gRPC face uses it to open and close listeners (MC-2.29.4).
    pub(crate) fn on_store_change(&self, hook: Hook) {
        self.inner
            .store_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    fn stores_changed(&self) {
        let hooks = self
            .inner
            .store_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for h in hooks {
            h();
        }
    }

    // ----- ids (MC-1.1.1) -----

    /// Allocates one id (store, peer and region ids share the counter; the first is 1).
    pub fn alloc_id(&self) -> u64 {
        self.write().alloc_id()
    }

    /// Allocates `n` consecutive ids (mocktikv `AllocIDs`).
    pub fn alloc_ids(&self, n: usize) -> Vec<u64> {
        let mut m = self.write();
        (0..n).map(|_| m.alloc_id()).collect()
    }

    // ----- stores (§1.2) -----

    /// Creates or replaces a store: state Up, labels as given, peer address = address
    /// (mocktikv `AddStore`).
    pub fn add_store(&self, id: u64, addr: &str, labels: &[(&str, &str)]) {
        {
            let mut m = self.write();
            let version = m.tikv_version.clone();
            m.stores.insert(
                id,
                StoreRec {
                    meta: metapb::Store {
                        id,
                        address: addr.to_owned(),
                        peer_address: addr.to_owned(),
                        status_address: addr.to_owned(),
                        version,
                        labels: labels_of(labels),
                        state: metapb::StoreState::Up as i32,
                        ..Default::default()
                    },
                    cancelled: false,
                    safe_ts: 0,
                    slow_score: 1,
                    feedback_seq: id * 1000 + 1,
                    unreachable: false,
                    timeout: false,
                },
            );
        }
        self.stores_changed();
    }

    /// Deletes a store record; its peers stay in regions (mocktikv `RemoveStore`).
    pub fn remove_store(&self, id: u64) {
        self.write().stores.remove(&id);
        self.stores_changed();
    }

    fn rebuild_store(&self, id: u64, f: impl FnOnce(&mut metapb::Store)) -> Result<(), Error> {
        {
            let mut m = self.write();
            let s = m.store_mut(id)?;
            f(&mut s.meta);
            s.meta.state = metapb::StoreState::Up as i32;
            s.cancelled = false;
        }
        self.stores_changed();
        Ok(())
    }

    /// Rebuilds the store with a new address (= peer address), replaced labels, state Up and
    /// not cancelled (mocktikv `UpdateStoreAddr`).
    pub fn update_store_addr(
        &self,
        id: u64,
        addr: &str,
        labels: &[(&str, &str)],
    ) -> Result<(), Error> {
        self.rebuild_store(id, |s| {
            s.address = addr.to_owned();
            s.peer_address = addr.to_owned();
            s.status_address = addr.to_owned();
            s.labels = labels_of(labels);
        })
    }

    /// Rebuilds the store keeping its address, with a new peer address and replaced labels
    /// (mocktikv `UpdateStorePeerAddr`).
    pub fn update_store_peer_addr(
        &self,
        id: u64,
        peer_addr: &str,
        labels: &[(&str, &str)],
    ) -> Result<(), Error> {
        self.rebuild_store(id, |s| {
            s.peer_address = peer_addr.to_owned();
            s.labels = labels_of(labels);
        })
    }

    /// Changes only the address fields (the gRPC face records real `host:port` addresses this
    /// way, MC-1.2.6); does not run the store hooks.
    pub(crate) fn set_store_address_silently(&self, id: u64, addr: &str) {
        if let Some(s) = self.write().stores.get_mut(&id) {
            s.meta.address = addr.to_owned();
            s.meta.peer_address = addr.to_owned();
            s.meta.status_address = addr.to_owned();
        }
    }

    /// Merges labels: existing keys take the new value in place, new keys are appended in
    /// the given order (MC-1.2.3; mocktikv's order is random).
    pub fn update_store_labels(&self, id: u64, labels: &[(&str, &str)]) -> Result<(), Error> {
        let mut m = self.write();
        let s = m.store_mut(id)?;
        for (k, v) in labels {
            match s.meta.labels.iter_mut().find(|l| l.key == *k) {
                Some(l) => l.value = (*v).to_owned(),
                None => s.meta.labels.push(metapb::StoreLabel {
                    key: (*k).to_owned(),
                    value: (*v).to_owned(),
                }),
            }
        }
        Ok(())
    }

    fn set_state(&self, id: u64, st: metapb::StoreState) -> Result<(), Error> {
        self.write().store_mut(id)?.meta.state = st as i32;
        self.stores_changed();
        Ok(())
    }

    /// State Offline: requests to its address fail with *connection refused*; the gRPC
    /// listener closes (mocktikv `StopStore`, §1.11).
    pub fn stop_store(&self, id: u64) -> Result<(), Error> {
        self.set_state(id, metapb::StoreState::Offline)
    }

    /// State Up again (mocktikv `StartStore`; also undoes `mark_tombstone`).
    pub fn start_store(&self, id: u64) -> Result<(), Error> {
        self.set_state(id, metapb::StoreState::Up)
    }

    /// State Tombstone (mocktikv `MarkTombstone`).
    pub fn mark_tombstone(&self, id: u64) -> Result<(), Error> {
        self.set_state(id, metapb::StoreState::Tombstone)
    }

    /// Requests to the store's address fail with *cancelled* (mocktikv `CancelStore`; only
    /// this store's address, §7 #2).
    pub fn cancel_store(&self, id: u64) -> Result<(), Error> {
        self.write().store_mut(id)?.cancelled = true;
        Ok(())
    }

    /// Clears the cancelled flag (mocktikv `UnCancelStore`).
    pub fn uncancel_store(&self, id: u64) -> Result<(), Error> {
        self.write().store_mut(id)?.cancelled = false;
        Ok(())
    }

    /// Makes transport calls to the store fail with *connect fail* (and the probe report
    /// unreachable) without touching PD metadata (MC-3.7.1).
    pub fn set_store_unreachable(&self, id: u64, unreachable: bool) -> Result<(), Error> {
        self.write().store_mut(id)?.unreachable = unreachable;
        Ok(())
    }

    /// Makes calls to the store wait until the request deadline and fail with *deadline
    /// exceeded* (the `timeoutStoreIDs` case of MC-3.7.1).
    pub fn set_store_timeout(&self, id: u64, timeout: bool) -> Result<(), Error> {
        self.write().store_mut(id)?.timeout = timeout;
        Ok(())
    }

    /// A copy of the store record (mocktikv `GetStore`).
    pub fn get_store(&self, id: u64) -> Option<metapb::Store> {
        self.read().stores.get(&id).map(|s| s.meta.clone())
    }

    /// Copies of all store records, any state, by id (mocktikv `GetAllStores`).
    pub fn get_all_stores(&self) -> Vec<metapb::Store> {
        self.read()
            .stores
            .values()
            .map(|s| s.meta.clone())
            .collect()
    }

    /// The first store (by id) with that address (mocktikv `GetStoreByAddr`).
    pub fn get_store_by_addr(&self, addr: &str) -> Option<metapb::Store> {
        self.read()
            .stores
            .values()
            .find(|s| s.meta.address == addr)
            .map(|s| s.meta.clone())
    }

    /// The liveness probe of MC-3.7.1 / MC-2.30.5.
    pub fn probe(&self, addr: &str) -> Liveness {
        match self.read().store_by_addr_checked(addr) {
            Ok(_) => Liveness::Reachable,
            Err(AddrError::ConnectFail) if self.get_store_by_addr(addr).is_none() => {
                Liveness::Unknown
            }
            Err(_) => Liveness::Unreachable,
        }
    }

    /// Sets the store's safe ts, served by `GetStoreSafeTS` (MC-1.17.1).
    pub fn set_store_safe_ts(&self, id: u64, ts: u64) -> Result<(), Error> {
        self.write().store_mut(id)?.safe_ts = ts;
        Ok(())
    }

    /// Sets PD's min resolved ts of a store (MC-1.17.1).
    pub fn set_min_resolved_ts(&self, id: u64, ts: u64) {
        self.write().min_resolved_ts.insert(id, ts);
    }

    /// PD's min resolved ts of a store, `None` when unset.
    pub fn min_resolved_ts(&self, id: u64) -> Option<u64> {
        self.read().min_resolved_ts.get(&id).copied()
    }

    /// Sets the slow score reported in health feedback (1..=100, MC-1.19.1).
    pub fn set_store_slow_score(&self, id: u64, score: i32) -> Result<(), Error> {
        if !(1..=100).contains(&score) {
            return Err(invalid(format!("slow score {score} not in 1..=100")));
        }
        self.write().store_mut(id)?.slow_score = score;
        Ok(())
    }

    /// The next health feedback of a store: its sequence number moves on by one per call
    /// (MC-1.19.1).
    pub fn next_health_feedback(&self, id: u64) -> kvrpcpb::HealthFeedback {
        let mut m = self.write();
        match m.stores.get_mut(&id) {
            Some(s) => {
                let seq = s.feedback_seq;
                s.feedback_seq += 1;
                kvrpcpb::HealthFeedback {
                    store_id: id,
                    feedback_seq_no: seq,
                    slow_score: s.slow_score,
                }
            }
            None => kvrpcpb::HealthFeedback {
                store_id: id,
                feedback_seq_no: 1,
                slow_score: 1,
            },
        }
    }

    // ----- regions (§1.3, §1.5) -----

    /// Creates the first region over the whole key space, epoch {0, 0} (mocktikv
    /// `Bootstrap`). Stores must exist and `store_ids`/`peer_ids` have equal lengths.
    pub fn bootstrap(
        &self,
        region_id: u64,
        store_ids: &[u64],
        peer_ids: &[u64],
        leader: u64,
    ) -> Result<(), Error> {
        self.put_region_inner(region_id, 0, 0, store_ids, peer_ids, leader, true)
    }

    /// Creates or resets a region with the given epoch, peers and leader; keeps the range of
    /// an existing region, otherwise covers everything; rejects overlaps (MC-1.5.3).
    pub fn put_region(
        &self,
        region_id: u64,
        conf_ver: u64,
        version: u64,
        store_ids: &[u64],
        peer_ids: &[u64],
        leader: u64,
    ) -> Result<(), Error> {
        self.put_region_inner(
            region_id, conf_ver, version, store_ids, peer_ids, leader, false,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn put_region_inner(
        &self,
        region_id: u64,
        conf_ver: u64,
        version: u64,
        store_ids: &[u64],
        peer_ids: &[u64],
        leader: u64,
        bootstrap: bool,
    ) -> Result<(), Error> {
        if store_ids.len() != peer_ids.len() {
            return Err(invalid("store ids and peer ids differ in length"));
        }
        let mut m = self.write();
        for s in store_ids {
            if bootstrap && !m.stores.contains_key(s) {
                return Err(invalid(format!("store {s} not found")));
            }
        }
        let (start, end) = match m.regions.get(&region_id) {
            Some(r) => (r.meta.start_key.clone(), r.meta.end_key.clone()),
            None => {
                if !m.regions.is_empty() {
                    return Err(invalid(format!(
                        "region {region_id} would overlap existing regions"
                    )));
                }
                (Vec::new(), Vec::new())
            }
        };
        let meta = metapb::Region {
            id: region_id,
            start_key: start,
            end_key: end,
            region_epoch: Some(metapb::RegionEpoch { conf_ver, version }),
            peers: store_ids
                .iter()
                .zip(peer_ids)
                .map(|(s, p)| metapb::Peer {
                    id: *p,
                    store_id: *s,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        m.insert_region(RegionRec {
            meta,
            leader,
            buckets: None,
        });
        Ok(())
    }

    /// (copy of the region meta, leader peer id) by id (mocktikv `GetRegion`).
    pub fn get_region(&self, id: u64) -> Option<(metapb::Region, u64)> {
        self.read()
            .regions
            .get(&id)
            .map(|r| (r.meta.clone(), r.leader))
    }

    /// The region containing a PD-space key (mocktikv `GetRegionByKey`).
    pub fn get_region_by_key(&self, key: &[u8]) -> Option<RegionInfo> {
        let m = self.read();
        m.region_by_key(key).map(|r| m.info(r))
    }

    /// The region whose end is the start of the region containing `key`; none at the start
    /// of the key space or when `key` is not covered (MC-1.15.3).
    pub fn get_prev_region_by_key(&self, key: &[u8]) -> Option<RegionInfo> {
        let m = self.read();
        let cur = m.region_by_key(key)?;
        if cur.meta.start_key.is_empty() {
            return None;
        }
        let (_, id) = m.by_start.range(..cur.meta.start_key.clone()).next_back()?;
        let prev = m.regions.get(id)?;
        (prev.meta.end_key == cur.meta.start_key).then(|| m.info(prev))
    }

    /// Region info by id (mocktikv `GetRegionByID`).
    pub fn get_region_by_id(&self, id: u64) -> Option<RegionInfo> {
        let m = self.read();
        m.regions.get(&id).map(|r| m.info(r))
    }

    /// All regions in key order.
    pub fn get_all_regions(&self) -> Vec<RegionInfo> {
        let m = self.read();
        m.by_start
            .values()
            .filter_map(|id| m.regions.get(id))
            .map(|r| m.info(r))
            .collect()
    }

    /// MC-1.15.4: regions from the first whose end is past `start`, stopping before the first
    /// whose start is `>= end` (empty = unbounded), at most `limit` when `limit > 0`. The
    /// region named by the `mockSplitRegionNotReportToPD` preset is left out.
    pub fn scan_regions(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<RegionInfo> {
        let m = self.read();
        let mut out = Vec::new();
        for id in m.by_start.values() {
            let Some(r) = m.regions.get(id) else { continue };
            if !r.meta.end_key.is_empty() && r.meta.end_key.as_slice() <= start {
                continue;
            }
            if !end.is_empty() && r.meta.start_key.as_slice() >= end {
                break;
            }
            if m.unreported_region == Some(r.meta.id) {
                continue;
            }
            out.push(m.info(r));
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
        out
    }

    /// The `mockSplitRegionNotReportToPD` failpoint: hide a region from scan answers (not
    /// from `GetRegion`); `None` clears it.
    pub fn set_unreported_region(&self, region: Option<u64>) {
        self.write().unreported_region = region;
    }

    fn change_peers(&self, region: u64, f: impl FnOnce(&mut RegionRec)) -> Result<(), Error> {
        let mut m = self.write();
        let r = m.region_mut(region)?;
        f(r);
        r.meta
            .region_epoch
            .get_or_insert_with(Default::default)
            .conf_ver += 1;
        Ok(())
    }

    /// Appends a voter; conf_ver + 1 (mocktikv `AddPeer`).
    pub fn add_peer(&self, region: u64, store: u64, peer: u64) -> Result<(), Error> {
        self.change_peers(region, |r| {
            r.meta.peers.push(metapb::Peer {
                id: peer,
                store_id: store,
                ..Default::default()
            })
        })
    }

    /// Appends a learner; conf_ver + 1 (mocktikv `AddLearner`).
    pub fn add_learner(&self, region: u64, store: u64, peer: u64) -> Result<(), Error> {
        self.change_peers(region, |r| {
            r.meta.peers.push(metapb::Peer {
                id: peer,
                store_id: store,
                role: metapb::PeerRole::Learner as i32,
                ..Default::default()
            })
        })
    }

    /// Removes a peer; conf_ver + 1; a removed leader leaves the region leaderless
    /// (mocktikv `RemovePeer`).
    pub fn remove_peer(&self, region: u64, peer: u64) -> Result<(), Error> {
        self.change_peers(region, |r| {
            r.meta.peers.retain(|p| p.id != peer);
            if r.leader == peer {
                r.leader = 0;
            }
        })
    }

    /// Transfers leadership; the epoch is unchanged; the peer must belong to the region or
    /// be 0 (MC-1.3.3).
    pub fn change_leader(&self, region: u64, peer: u64) -> Result<(), Error> {
        let mut m = self.write();
        let r = m.region_mut(region)?;
        if peer != 0 && !r.meta.peers.iter().any(|p| p.id == peer) {
            return Err(invalid(format!("peer {peer} is not in region {region}")));
        }
        r.leader = peer;
        Ok(())
    }

    /// Leaves the region without a leader (mocktikv `GiveUpLeader`).
    pub fn give_up_leader(&self, region: u64) -> Result<(), Error> {
        self.change_leader(region, 0)
    }

    /// Marks a peer down (MC-1.3.2).
    pub fn mark_peer_down(&self, peer: u64) {
        self.write().down_peers.insert(peer);
    }

    /// Clears a peer's down mark (MC-1.3.2).
    pub fn remove_down_peer(&self, peer: u64) {
        self.write().down_peers.remove(&peer);
    }

    /// Splits at a user key, encoded first (mocktikv `Split`, MC-1.8.1).
    pub fn split(
        &self,
        region: u64,
        new_region: u64,
        key: &[u8],
        peer_ids: &[u64],
        leader: u64,
    ) -> Result<(), Error> {
        self.split_raw(region, new_region, &encode_key(key), peer_ids, leader)
            .map(|_| ())
    }

    /// Splits at a PD-space key taken verbatim; returns the new region (mocktikv `SplitRaw`).
    pub fn split_raw(
        &self,
        region: u64,
        new_region: u64,
        key: &[u8],
        peer_ids: &[u64],
        leader: u64,
    ) -> Result<metapb::Region, Error> {
        self.write()
            .split(region, new_region, key, peer_ids, leader)
    }

    /// Splits a region at a PD-space key with freshly allocated ids; the new region's leader
    /// is the new peer on the parent leader's store (MC-2.22.1).
    pub(crate) fn split_auto(&self, region: u64, key: &[u8]) -> Result<(), Error> {
        let mut m = self.write();
        let parent = m
            .regions
            .get(&region)
            .ok_or_else(|| invalid(format!("region {region} not found")))?
            .clone();
        let new_id = m.alloc_id();
        let peer_ids: Vec<u64> = parent.meta.peers.iter().map(|_| m.alloc_id()).collect();
        let leader_store = parent.leader_peer().map(|p| p.store_id);
        let leader = parent
            .meta
            .peers
            .iter()
            .zip(&peer_ids)
            .find(|(p, _)| Some(p.store_id) == leader_store)
            .map(|(_, id)| *id)
            .unwrap_or(0);
        m.split(region, new_id, key, &peer_ids, leader)?;
        Ok(())
    }

    /// Splits the region containing each PD-space key (ascending, skipping duplicates and
    /// region starts); returns the ids of regions created (PD `SplitRegions`).
    pub fn split_at_keys(&self, keys: &[Vec<u8>]) -> Vec<u64> {
        let mut keys: Vec<&Vec<u8>> = keys.iter().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.dedup();
        let mut created = Vec::new();
        for k in keys {
            let Some(r) = self.get_region_by_key(k) else {
                continue;
            };
            if r.region.start_key == *k {
                continue;
            }
            if self.split_auto(r.region.id, k).is_ok()
                && let Some(n) = self.get_region_by_key(k)
            {
                created.push(n.region.id);
            }
        }
        created
    }

    /// Replaces a region's buckets; keys are encoded like split keys (MC-1.12.1).
    pub fn split_region_buckets(
        &self,
        region: u64,
        keys: &[&[u8]],
        version: u64,
    ) -> Result<(), Error> {
        let mut m = self.write();
        let r = m.region_mut(region)?;
        r.buckets = Some(metapb::Buckets {
            region_id: region,
            version,
            keys: keys.iter().map(|k| encode_key(k)).collect(),
            ..Default::default()
        });
        Ok(())
    }

    /// Merges `r2` (the right neighbour) into `r1`; `r1.version + 1`, `r2` disappears
    /// (MC-1.9.1).
    pub fn merge(&self, r1: u64, r2: u64) -> Result<(), Error> {
        let mut m = self.write();
        let right = m
            .regions
            .get(&r2)
            .ok_or_else(|| invalid(format!("region {r2} not found")))?
            .clone();
        let left = m.region_mut(r1)?;
        if left.meta.end_key.is_empty() || left.meta.end_key != right.meta.start_key {
            return Err(invalid(format!("regions {r1} and {r2} are not adjacent")));
        }
        left.meta.end_key = right.meta.end_key;
        left.meta
            .region_epoch
            .get_or_insert_with(Default::default)
            .version += 1;
        m.regions.remove(&r2);
        m.by_start.remove(&right.meta.start_key);
        Ok(())
    }

    /// MC-1.8.2 step 1 and 3 given the group start keys (user keys) found in the data:
    /// regions over `[start, end)` (PD space) are replaced by one region per group on the
    /// lowest store.
    pub(crate) fn split_range_by_keys(&self, start: &[u8], end: &[u8], group_starts: &[Vec<u8>]) {
        if !end.is_empty() && start >= end {
            return;
        }
        let mut m = self.write();
        let Some(first_store) = m.stores.keys().next().copied() else {
            return;
        };
        // Evacuate overlapping regions.
        let overlapping: Vec<u64> = m
            .by_start
            .values()
            .copied()
            .filter(|id| {
                m.regions.get(id).is_some_and(|r| {
                    (r.meta.end_key.is_empty() || r.meta.end_key.as_slice() > start)
                        && (end.is_empty() || r.meta.start_key.as_slice() < end)
                })
            })
            .collect();
        for id in overlapping {
            let Some(mut r) = m.regions.remove(&id) else {
                continue;
            };
            m.by_start.remove(&r.meta.start_key);
            let covers_left = r.meta.start_key.as_slice() < start;
            let covers_right =
                !end.is_empty() && (r.meta.end_key.is_empty() || r.meta.end_key.as_slice() > end);
            let bump = |r: &mut RegionRec| {
                r.meta
                    .region_epoch
                    .get_or_insert_with(Default::default)
                    .version += 1;
            };
            if covers_right {
                let peer = m.alloc_id();
                let rid = m.alloc_id();
                m.insert_region(new_single(rid, peer, first_store, end, &r.meta.end_key));
            }
            if covers_left {
                r.meta.end_key = start.to_vec();
                bump(&mut r);
                m.insert_region(r);
            } else if covers_right && r.meta.start_key.as_slice() >= start {
                // Entirely replaced by the new regions.
            }
        }
        let mut bounds: Vec<Vec<u8>> = vec![start.to_vec()];
        for k in group_starts.iter().skip(1) {
            let e = encode_key(k);
            if e.as_slice() > start && (end.is_empty() || e.as_slice() < end) {
                bounds.push(e);
            }
        }
        bounds.push(end.to_vec());
        for w in bounds.windows(2) {
            let peer = m.alloc_id();
            let rid = m.alloc_id();
            m.insert_region(new_single(rid, peer, first_store, &w[0], &w[1]));
        }
    }

    // ----- scheduled delays (§1.13) -----

    /// Registers a one-shot delay for the first Prewrite/PessimisticLock of `start_ts` on
    /// `region` (mocktikv `ScheduleDelay`).
    pub fn schedule_delay(&self, start_ts: u64, region: u64, dur: Duration) {
        self.write().delays.push((start_ts, region, dur));
    }

    pub(crate) fn take_delay(&self, start_ts: u64, region: u64) -> Option<Duration> {
        let mut m = self.write();
        let pos = m
            .delays
            .iter()
            .position(|(s, r, _)| *s == start_ts && *r == region)?;
        Some(m.delays.remove(pos).2)
    }

    // ----- key-range violations (MC-2.4.1) -----

    pub(crate) fn record_violation(&self, v: KeyViolation) {
        self.write().violations.push(v);
    }

    /// Key-range violations recorded so far (requests mocktikv would have panicked on).
    pub fn violations(&self) -> Vec<KeyViolation> {
        self.read().violations.clone()
    }

    /// Removes and returns the recorded violations (a test that provokes them on purpose
    /// opts out this way).
    pub fn take_violations(&self) -> Vec<KeyViolation> {
        std::mem::take(&mut self.write().violations)
    }

    /// Panics when a violation was recorded: call at the end of a test (MC-2.4.1).
    #[allow(clippy::panic)]
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "key-range violations: {v:?}");
    }

    // ----- bootstrap helpers (§1.6) -----

    /// Store `store{id}`, one region with one leader peer: returns (store, peer, region);
    /// on a fresh cluster (1, 2, 3) (mocktikv `BootstrapWithSingleStore`).
    pub fn bootstrap_with_single_store(&self) -> (u64, u64, u64) {
        let ids = self.alloc_ids(3);
        let (store, peer, region) = (ids[0], ids[1], ids[2]);
        self.add_store(store, &format!("store{store}"), &[]);
        // Cannot fail: the store exists and the lengths match.
        let _ = self.bootstrap(region, &[store], &[peer], peer);
        (store, peer, region)
    }

    /// `n` stores labelled `id=<id>`, one region with a peer on each, leader on the first:
    /// returns (stores, peers, region, leader peer) (mocktikv `BootstrapWithMultiStores`).
    pub fn bootstrap_with_multi_stores(&self, n: usize) -> (Vec<u64>, Vec<u64>, u64, u64) {
        let stores = self.alloc_ids(n);
        let peers = self.alloc_ids(n);
        let region = self.alloc_id();
        for s in &stores {
            let id = s.to_string();
            self.add_store(*s, &format!("store{s}"), &[("id", &id)]);
        }
        let leader = peers.first().copied().unwrap_or(0);
        let _ = self.bootstrap(region, &stores, &peers, leader);
        (stores, peers, region, leader)
    }

    /// Single store, then one split per key (user keys): returns (store, regions, peers);
    /// each region gets a unique peer id (MC-1.6.3, §7 #6).
    pub fn bootstrap_with_multi_regions(&self, split_keys: &[&[u8]]) -> (u64, Vec<u64>, Vec<u64>) {
        let (store, peer, region) = self.bootstrap_with_single_store();
        let new_regions = self.alloc_ids(split_keys.len());
        let new_peers = self.alloc_ids(split_keys.len());
        let mut regions = vec![region];
        regions.extend(&new_regions);
        let mut peers = vec![peer];
        peers.extend(&new_peers);
        for (i, k) in split_keys.iter().enumerate() {
            let _ = self.split(regions[i], regions[i + 1], k, &[peers[i + 1]], peers[i + 1]);
        }
        (store, regions, peers)
    }

    /// `n * m` stores in zones `z1..zn`, one region with peers on the first `n`: returns
    /// (stores, peers, region, leader peer, store -> zone) (mocktikv
    /// `BootstrapWithMultiZones`).
    pub fn bootstrap_with_multi_zones(
        &self,
        n: usize,
        m: usize,
    ) -> (Vec<u64>, Vec<u64>, u64, u64, BTreeMap<u64, String>) {
        let stores = self.alloc_ids(n * m);
        let peers = self.alloc_ids(n);
        let region = self.alloc_id();
        let mut zones = BTreeMap::new();
        for (i, s) in stores.iter().enumerate() {
            let zone = format!("z{}", (i % n.max(1)) + 1);
            let id = s.to_string();
            self.add_store(*s, &format!("store{s}"), &[("id", &id), ("zone", &zone)]);
            zones.insert(*s, zone);
        }
        let leader = peers.first().copied().unwrap_or(0);
        let _ = self.bootstrap(region, &stores[..n.min(stores.len())], &peers, leader);
        (stores, peers, region, leader, zones)
    }
}

fn new_single(id: u64, peer: u64, store: u64, start: &[u8], end: &[u8]) -> RegionRec {
    RegionRec {
        meta: metapb::Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 0,
                version: 1,
            }),
            peers: vec![metapb::Peer {
                id: peer,
                store_id: store,
                ..Default::default()
            }],
            ..Default::default()
        },
        leader: peer,
        buckets: None,
    }
}
