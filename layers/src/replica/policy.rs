//! The per-call replica selector (client-go's `replicaSelector`, `internal/locate/
//! replica_selector.go` and the `baseReplicaSelector` half of `region_request.go`).
//!
//! One [`ReplicaSelector`] lives for one region send (one call of the retry layer). It
//! snapshots the region's TiKV replicas when it is created (RS-1), picks the target of each
//! attempt (RS-4 .. RS-15) and takes the feedback of every failed attempt (RS-16 .. RS-22):
//! the retry layer calls the `on_*` handlers, the replica layer calls [`next`]. Between the
//! two, the selector travels in a [`SelectorSlot`] that rides in the request's call state
//! ([`RpcRequest::selector_slot`](crate::RpcRequest::selector_slot)).
//!
//! client-go mutates the request object in place across attempts (`ReplicaRead`,
//! `StaleRead`, `BusyThresholdMs`, the read type). Here every attempt is a fresh clone of
//! the caller's request, so those sticky values live in [`ReadFlags`] inside the selector
//! and are written into each attempt's context.
//!
//! [`next`]: ReplicaSelector::next

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tikv_proto::{errorpb, metapb};

use crate::backoff::{BackoffConfig, BackoffKind, SharedBackoffer};
use crate::locate::{
    InvalidReason, Liveness, RegionLocator, RegionSnapshot, RegionVerId, StoreResolver,
};
use crate::metrics::names;
use crate::request::{CmdType, ReplicaReadType};
use crate::{Error, ErrorDetail, Result};

/// The read timed out under a configurable (short) timeout (`deadlineErrUsingConfTimeoutFlag`).
const FLAG_DEADLINE_CONF_TIMEOUT: u8 = 1;
/// A stale read found the replica's safe ts behind (`dataIsNotReadyFlag`).
const FLAG_DATA_NOT_READY: u8 = 1 << 1;
/// The replica answered NotLeader (`notLeaderFlag`).
const FLAG_NOT_LEADER: u8 = 1 << 2;
/// The replica answered ServerIsBusy (`serverIsBusyFlag`).
const FLAG_SERVER_BUSY: u8 = 1 << 3;
/// The cached leader keeps rejecting reads with ServerIsBusy(0) (`suspectNotLeaderFlag`).
const FLAG_SUSPECT_NOT_LEADER: u8 = 1 << 4;

/// Leader-mode exhaustion: attempts (`maxReplicaAttempt`, RS-3).
pub const MAX_REPLICA_ATTEMPT: u32 = 10;
/// Leader-mode exhaustion: accumulated RPC time (`maxReplicaAttemptTime`, RS-3).
pub const MAX_REPLICA_ATTEMPT_TIME: Duration = Duration::from_secs(50);
/// Busy(0) answers from the cached leader that trigger a suspect-not-leader probe (RS-18).
const LEADER_BUSY_PROBE_THRESHOLD: u32 = 2;
/// A read whose `max_execution_duration_ms` is below this has a "configurable" timeout
/// (client-go's `ReadTimeoutShort`, TE-3/RS-22).
pub const CONFIGURABLE_TIMEOUT_LIMIT_MS: u64 = 30_000;

/// Store selection options of one request (client-go's `StoreSelectorOption`s, RS-1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectorOptions {
    /// Preferred store labels (`WithMatchLabels`).
    pub labels: Vec<metapb::StoreLabel>,
    /// Preferred store ids (`WithMatchStores`).
    pub stores: Vec<u64>,
    /// Never pick a follower (`WithLeaderOnly`).
    pub leader_only: bool,
    /// Prefer a non-slow leader (`WithPerferLeader`).
    pub prefer_leader: bool,
}

/// The request flags the selector rewrites across attempts (client-go mutates these fields
/// of the request in place; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFlags {
    /// `Context.replica_read`.
    pub replica_read: bool,
    /// `Context.stale_read`.
    pub stale_read: bool,
    /// `Context.busy_threshold_ms`.
    pub busy_threshold_ms: u32,
    /// The request's read type (`SetReplicaReadType`).
    pub read_type: ReplicaReadType,
}

/// The shared services a selector consults.
#[derive(Clone)]
pub struct RegionServices {
    /// Region lookups and feedback.
    pub locator: Arc<dyn RegionLocator>,
    /// Store lookups and feedback.
    pub stores: Arc<dyn StoreResolver>,
}

impl std::fmt::Debug for RegionServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionServices").finish_non_exhaustive()
    }
}

/// One TiKV replica as this call sees it (client-go's `replica`).
#[derive(Debug, Clone)]
pub struct Replica {
    /// The peer.
    pub peer: metapb::Peer,
    /// Its store's fail epoch when the selector was built.
    epoch: u32,
    /// How many attempts targeted (or proxied through) it.
    pub attempts: u32,
    /// RPC time spent on it.
    pub attempted_time: Duration,
    flags: u8,
}

impl Replica {
    fn store_id(&self) -> u64 {
        self.peer.store_id
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn add(&mut self, flag: u8) {
        self.flags |= flag;
    }

    fn delete(&mut self, flag: u8) {
        self.flags &= !flag;
    }

    fn is_exhausted(&self, max_attempt: u32, max_time: Duration) -> bool {
        self.attempts >= max_attempt || (!max_time.is_zero() && self.attempted_time >= max_time)
    }
}

/// The target of one attempt (client-go's `RPCContext`, reduced to what the layers use).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptTarget {
    /// The region version.
    pub ver: RegionVerId,
    /// The region meta the selector works with.
    pub region: Arc<metapb::Region>,
    /// The target peer.
    pub peer: metapb::Peer,
    /// The target store's address.
    pub addr: String,
    /// When forwarding: the proxy store and its address (the attempt goes there).
    pub proxy: Option<(u64, String)>,
    /// Number of TiKV replicas (`TiKVNum`).
    pub tikv_num: usize,
}

/// A backoff recorded for later (RS-21).
#[derive(Debug)]
struct PendingBackoff {
    store_id: u64,
    cfg: BackoffConfig,
    err: Error,
}

/// The per-call replica selector; see the module docs.
pub struct ReplicaSelector {
    svc: RegionServices,
    ver: RegionVerId,
    /// The snapshot the selector was built from (its peers never change for this version).
    region: Arc<RegionSnapshot>,
    replicas: Vec<Replica>,
    read_type: ReplicaReadType,
    is_stale_read: bool,
    is_read_only: bool,
    opts: SelectorOptions,
    busy_threshold: Duration,
    attempts: u32,
    target: Option<usize>,
    proxy: Option<usize>,
    pending: Vec<PendingBackoff>,
    region_invalidated_for_retry: bool,
    leader_busy_count: u32,
    leader_busy_peer: u64,
    leader_busy_probed: bool,
    enable_forwarding: bool,
    /// Pick the first of equally scored replicas instead of a random one (tests).
    deterministic: bool,
    flags: ReadFlags,
    /// The first attempt's read type label for the request source (client-go's
    /// `req.ReadType`, SL-10).
    pub(crate) source_read_type: Option<String>,
    /// The last attempt's target address (`RPCContext.Addr`).
    last_addr: String,
}

impl std::fmt::Debug for ReplicaSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSelector")
            .field("region", &self.ver)
            .field("read_type", &self.read_type)
            .field("attempts", &self.attempts)
            .field("replicas", &self.replicas)
            .field("target", &self.target)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// How a selector is configured beyond the request (client-level settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectorConfig {
    /// Forward leader requests through a follower when the leader is unreachable
    /// (`EnableForwarding`, RS-14).
    pub enable_forwarding: bool,
    /// Break score ties by taking the first replica instead of a random one (client-go's
    /// tests pin `randIntn` the same way).
    pub deterministic: bool,
}

impl ReplicaSelector {
    /// Builds the selector for region version `ver` (`newReplicaSelector`, RS-1): `None`
    /// when the region is not cached or no longer valid, which the caller turns into a
    /// pseudo region error.
    pub fn new(
        svc: RegionServices,
        ver: RegionVerId,
        cmd: CmdType,
        flags: ReadFlags,
        mut opts: SelectorOptions,
        config: SelectorConfig,
    ) -> Option<ReplicaSelector> {
        let region = svc.locator.cached_region(&ver)?;
        let replicas = region
            .tikv_peers
            .iter()
            .filter_map(|&i| {
                let peer = *region.region.peers.get(i)?;
                let epoch = region.store_epochs.get(i).copied().unwrap_or(0);
                Some(Replica {
                    peer,
                    epoch,
                    attempts: 0,
                    attempted_time: Duration::ZERO,
                    flags: 0,
                })
            })
            .collect::<Vec<_>>();
        if replicas.is_empty() {
            return None;
        }
        if flags.read_type == ReplicaReadType::PreferLeader {
            opts.prefer_leader = true;
        }
        Some(ReplicaSelector {
            svc,
            ver,
            region,
            replicas,
            read_type: flags.read_type,
            is_stale_read: flags.stale_read,
            is_read_only: is_read_req(cmd),
            opts,
            busy_threshold: Duration::from_millis(u64::from(flags.busy_threshold_ms)),
            attempts: 0,
            target: None,
            proxy: None,
            pending: Vec::new(),
            region_invalidated_for_retry: false,
            leader_busy_count: 0,
            leader_busy_peer: 0,
            leader_busy_probed: false,
            enable_forwarding: config.enable_forwarding,
            deterministic: config.deterministic,
            flags,
            source_read_type: None,
            last_addr: String::new(),
        })
    }

    /// The request flags to write into the next attempt's context.
    pub fn read_flags(&self) -> ReadFlags {
        self.flags
    }

    /// The region version this selector serves.
    pub fn ver(&self) -> RegionVerId {
        self.ver
    }

    /// The replicas in access order, with their per-call attempts (for tests and logs).
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// How many times [`next`](Self::next) ran.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The current read type (a NotLeader or flashback answer may turn it into a leader
    /// read, RS-17/RE-5).
    pub fn read_type(&self) -> ReplicaReadType {
        self.read_type
    }

    /// The current snapshot of the region (leader switches included), falling back to the
    /// one the selector started from once the version left the cache.
    fn current(&self) -> Arc<RegionSnapshot> {
        self.svc
            .locator
            .cached_region_any(&self.ver)
            .unwrap_or_else(|| self.region.clone())
    }

    fn is_region_valid(&self) -> bool {
        self.svc.locator.cached_region(&self.ver).is_some()
    }

    /// `workTiKVIdx` of the current snapshot, clamped to the replica list.
    fn leader_idx(&self) -> usize {
        let idx = self.current().work_tikv_idx;
        if idx < self.replicas.len() { idx } else { 0 }
    }

    /// `GetLeaderPeerID`.
    fn leader_peer_id(&self) -> u64 {
        self.current().leader().map_or(0, |p| p.id)
    }

    fn is_epoch_stale(&self, r: &Replica) -> bool {
        self.svc
            .stores
            .store_epoch(r.store_id())
            .is_some_and(|e| e != r.epoch)
    }

    fn liveness(&self, r: &Replica) -> Liveness {
        self.svc.stores.liveness(r.store_id())
    }

    /// `isLeaderCandidate` (RS-7).
    fn is_leader_candidate(&self, leader: &Replica) -> bool {
        !(self.liveness(leader) != Liveness::Reachable
            || leader.is_exhausted(MAX_REPLICA_ATTEMPT, MAX_REPLICA_ATTEMPT_TIME)
            || leader.has(FLAG_DEADLINE_CONF_TIMEOUT)
            || leader.has(FLAG_NOT_LEADER)
            || self.is_epoch_stale(leader))
    }

    /// Picks the target of the next attempt and builds its context (`next`, RS-4).
    /// `Ok(None)` means "no replica left": the caller backs off
    /// ([`backoff_on_no_candidate`](Self::backoff_on_no_candidate)) and answers a pseudo
    /// region error. An error (address resolution failed) ends the call.
    pub async fn next(&mut self) -> Result<Option<AttemptTarget>> {
        if self.region_invalidated_for_retry {
            // RS-20: one grace attempt on the leader after a hard invalidation.
            self.region_invalidated_for_retry = false;
        } else if !self.is_region_valid() {
            selector_failure(names::labels::SELECTOR_INVALID);
            return Ok(None);
        }
        self.attempts += 1;
        self.target = None;
        self.proxy = None;
        if self.read_type == ReplicaReadType::Leader {
            self.next_for_leader();
        } else {
            self.next_for_mixed();
        }
        let Some(target) = self.target else {
            return Ok(None);
        };
        self.build_context(target, self.proxy).await
    }

    /// `nextForReplicaReadLeader` (RS-6).
    fn next_for_leader(&mut self) {
        if self.enable_forwarding {
            let (t, p) = self.leader_with_proxy();
            if t.is_some() && p.is_some() {
                self.target = t;
                self.proxy = p;
                return;
            }
            if t.is_none() && p.is_none() {
                return;
            }
        }
        let leader_idx = self.leader_idx();
        let leader = &self.replicas[leader_idx];
        self.target = (self.is_leader_candidate(leader) && !leader.has(FLAG_SUSPECT_NOT_LEADER))
            .then_some(leader_idx);
        if let Some(t) = self.target {
            let target = &self.replicas[t];
            if !self.busy_threshold.is_zero()
                && self.is_read_only
                && (self.svc.stores.estimated_wait(target.store_id()) > self.busy_threshold
                    || target.has(FLAG_SERVER_BUSY))
            {
                // Load-based replica read: try an idle replica instead of the busy leader.
                let strategy = Mixed {
                    leader_idx,
                    busy_threshold: self.busy_threshold,
                    ..Mixed::default()
                };
                if let Some(idle) = strategy.pick(self) {
                    self.target = Some(idle);
                    self.flags.replica_read = true;
                } else {
                    self.busy_threshold = Duration::ZERO;
                    self.flags.busy_threshold_ms = 0;
                    self.flags.replica_read = false;
                }
            }
        }
        if self.target.is_some() {
            return;
        }
        // The leader is not usable: probe the other peers with leader reads.
        let strategy = Mixed {
            leader_idx,
            leader_only: self.opts.leader_only,
            ..Mixed::default()
        };
        self.target = strategy.pick(self);
        if self.target.is_some()
            && self.is_read_only
            && self.replicas[leader_idx].has(FLAG_DEADLINE_CONF_TIMEOUT)
        {
            self.flags.replica_read = true;
            self.flags.stale_read = false;
        }
    }

    /// `nextForReplicaReadMixed` (RS-8).
    fn next_for_mixed(&mut self) {
        let leader_idx = self.leader_idx();
        if self.is_stale_read && self.attempts == 2 {
            // Second try of a stale read: the leader with a plain leader read, if it was
            // never tried.
            let leader = &self.replicas[leader_idx];
            if self.is_leader_candidate(leader)
                && !leader.has(FLAG_SUSPECT_NOT_LEADER)
                && !leader.is_exhausted(1, Duration::ZERO)
            {
                self.target = Some(leader_idx);
                self.flags.stale_read = false;
                self.flags.replica_read = false;
                return;
            }
        }
        let strategy = Mixed {
            leader_idx,
            try_leader: matches!(
                self.flags.read_type,
                ReplicaReadType::Mixed | ReplicaReadType::PreferLeader
            ),
            prefer_leader: self.opts.prefer_leader,
            leader_only: self.opts.leader_only,
            learner_only: self.flags.read_type == ReplicaReadType::Learner,
            busy_threshold: Duration::ZERO,
            labels: self.opts.labels.clone(),
            stores: self.opts.stores.clone(),
        };
        self.target = strategy.pick(self);
        let Some(t) = self.target else {
            return;
        };
        let target_peer = self.replicas[t].peer.id;
        let leader_peer = self.leader_peer_id();
        if self.is_stale_read {
            let mut stale = true;
            let labels_match = self
                .svc
                .stores
                .cached_store(self.replicas[t].store_id())
                .is_some_and(|s| s.is_labels_match(&self.opts.labels))
                || self.opts.labels.is_empty();
            if (self.attempts != 1 || (!labels_match && target_peer != leader_peer))
                && can_send_replica_read(&self.replicas[leader_idx])
            {
                stale = false;
            }
            self.flags.stale_read = stale;
            self.flags.replica_read = !stale;
        } else {
            self.flags.stale_read = false;
            self.flags.replica_read = self.is_read_only && target_peer != leader_peer;
        }
        // HS-6: where prefer-leader traffic goes.
        if self.opts.prefer_leader {
            self.svc
                .stores
                .record_replica_flow(self.replicas[t].store_id(), target_peer == leader_peer);
        }
    }

    /// `ReplicaSelectLeaderWithProxyStrategy.next` (RS-14): `(leader, proxy)`.
    fn leader_with_proxy(&mut self) -> (Option<usize>, Option<usize>) {
        let leader_idx = self.leader_idx();
        let leader = &self.replicas[leader_idx];
        if self.liveness(leader) == Liveness::Reachable || leader.has(FLAG_NOT_LEADER) {
            self.svc.locator.set_proxy_idx(&self.ver, None);
            return (Some(leader_idx), None);
        }
        let is_proxy_candidate = |i: usize, r: &Replica| {
            i != leader_idx
                && !r.is_exhausted(1, Duration::ZERO)
                && self.liveness(r) == Liveness::Reachable
                && !self.is_epoch_stale(r)
        };
        if let Some(p) = self.svc.locator.proxy_idx(&self.ver)
            && p < self.replicas.len()
            && is_proxy_candidate(p, &self.replicas[p])
        {
            return (Some(leader_idx), Some(p));
        }
        if let Some(p) = self
            .replicas
            .iter()
            .enumerate()
            .position(|(i, r)| is_proxy_candidate(i, r))
        {
            return (Some(leader_idx), Some(p));
        }
        // Every follower failed as a proxy: the leader's store is suspect.
        selector_failure(names::labels::SELECTOR_EXHAUSTED);
        self.invalidate_replica_store(leader_idx);
        self.svc.locator.schedule_reload(&self.ver);
        (None, None)
    }

    /// `buildRPCContext` (RS-5).
    async fn build_context(
        &mut self,
        target: usize,
        proxy: Option<usize>,
    ) -> Result<Option<AttemptTarget>> {
        if self.is_epoch_stale(&self.replicas[target])
            || proxy.is_some_and(|p| self.is_epoch_stale(&self.replicas[p]))
        {
            selector_failure(names::labels::SELECTOR_STALE_STORE);
            self.invalidate_region();
            return Ok(None);
        }
        let Some(addr) = self.store_addr(self.replicas[target].store_id()).await? else {
            return Ok(None);
        };
        self.replicas[target].attempts += 1;
        self.last_addr.clone_from(&addr);
        let proxy_target = match proxy {
            Some(p) => {
                let store = self.replicas[p].store_id();
                let Some(paddr) = self.store_addr(store).await? else {
                    return Ok(None);
                };
                self.replicas[p].attempts += 1;
                Some((store, paddr))
            }
            None => None,
        };
        Ok(Some(AttemptTarget {
            ver: self.ver,
            region: self.region.region.clone(),
            peer: self.replicas[target].peer,
            addr,
            proxy: proxy_target,
            tikv_num: self.replicas.len(),
        }))
    }

    /// The store's address, resolving it the first time (RC-51); `None` for a tombstone.
    async fn store_addr(&self, store_id: u64) -> Result<Option<String>> {
        let snap = match self.svc.stores.cached_store(store_id) {
            Some(s) => s,
            None => self.svc.stores.resolve_store(store_id).await?,
        };
        Ok((!snap.addr.is_empty()).then(|| snap.addr.clone()))
    }

    /// `invalidateReplicaStore` (RS-16 step 4): bump the store's epoch from this replica's
    /// snapshot, and on success ask for a re-resolve and mark the store slow.
    fn invalidate_replica_store(&self, idx: usize) {
        let r = &self.replicas[idx];
        if self.svc.stores.invalidate_store(r.store_id(), r.epoch) {
            tracing::info!(
                store = r.store_id(),
                "mark store's regions need be refilled"
            );
            self.svc.stores.mark_slow(r.store_id());
        }
    }

    /// Invalidates the selector's region (`invalidateRegion`, reason `Other`).
    pub fn invalidate_region(&self) {
        self.svc
            .locator
            .invalidate_region(&self.ver, InvalidReason::Other);
    }

    /// `replicaType` (SL-10): "leader", "follower" or "unknown".
    pub fn replica_type(&self) -> &'static str {
        match self.target {
            Some(t) if self.replicas[t].peer.id == self.leader_peer_id() => "leader",
            Some(_) => "follower",
            None => "unknown",
        }
    }

    /// The snapshot the selector was built from.
    pub fn region(&self) -> &Arc<RegionSnapshot> {
        &self.region
    }

    /// The last attempt's target address (never the proxy's).
    pub fn target_addr(&self) -> &str {
        &self.last_addr
    }

    /// The store of the last attempt's target; `None` before the first attempt.
    pub fn target_store(&self) -> Option<u64> {
        self.target.map(|t| self.replicas[t].store_id())
    }

    /// Adds one attempt's RPC time to its target and proxy (`recordAttemptedTime`, RS-3).
    pub fn record_attempted_time(&mut self, d: Duration) {
        if let Some(t) = self.target {
            self.replicas[t].attempted_time += d;
        }
        if let Some(p) = self.proxy {
            self.replicas[p].attempted_time += d;
        }
    }

    // ----- feedback (RS-16 .. RS-22) -----

    /// `onSendFailure` (RS-16).
    pub async fn on_send_failure(&mut self) {
        let Some(target) = self.target else {
            return;
        };
        let probed = self.proxy.unwrap_or(target);
        let liveness = self
            .svc
            .stores
            .probe_liveness(self.replicas[probed].store_id())
            .await;
        if self.read_type == ReplicaReadType::Leader
            && self.proxy.is_none()
            && self.replicas[target].peer.id == self.leader_peer_id()
            && liveness == Liveness::Unreachable
            && self.replicas.len() > 1
            && self.enable_forwarding
        {
            // The next attempt goes through a proxy.
            return;
        }
        if liveness != Liveness::Reachable {
            self.invalidate_replica_store(probed);
        }
    }

    /// `onSendSuccess` (RS-19).
    pub fn on_send_success(&mut self) {
        if let (Some(p), Some(_)) = (self.proxy, self.target) {
            self.svc.locator.set_proxy_idx(&self.ver, Some(p));
        }
        if let Some(t) = self.target
            && self.replicas[t].peer.id != self.leader_peer_id()
            && !self.flags.stale_read
            && !self.flags.replica_read
        {
            // A leader read succeeded on that peer: it is the leader now.
            self.svc
                .locator
                .switch_leader(&self.ver, &self.replicas[t].peer);
        }
    }

    /// `onNotLeader` (RS-17): `Ok(true)` to retry.
    pub async fn on_not_leader(
        &mut self,
        bo: &SharedBackoffer,
        not_leader: &errorpb::NotLeader,
    ) -> Result<bool> {
        if let Some(t) = self.target {
            self.replicas[t].add(FLAG_NOT_LEADER);
        }
        let Some(leader) = not_leader.leader else {
            // The region may be electing a leader.
            bo.backoff(
                BackoffKind::RegionScheduling,
                Error::new(ErrorDetail::Retryable(format!(
                    "no leader, region {}",
                    self.ver.id
                ))),
            )
            .await?;
            return Ok(true);
        };
        if let Some(idx) = self.update_leader(&leader)
            && self.is_leader_candidate(&self.replicas[idx])
        {
            self.read_type = ReplicaReadType::Leader;
        }
        Ok(true)
    }

    /// `updateLeader`: the replica index of the new leader, `None` when it was not switched.
    fn update_leader(&mut self, leader: &metapb::Peer) -> Option<usize> {
        let pos = self
            .replicas
            .iter()
            .position(|r| r.peer.id == leader.id && r.peer.store_id == leader.store_id);
        let Some(i) = pos else {
            // The new leader is not in this region version.
            self.svc
                .locator
                .invalidate_region(&self.ver, InvalidReason::StoreNotFound);
            return None;
        };
        if self.liveness(&self.replicas[i]) != Liveness::Reachable {
            // Do not wake a hibernated group on an unreachable store.
            return None;
        }
        let r = &mut self.replicas[i];
        if r.is_exhausted(MAX_REPLICA_ATTEMPT, MAX_REPLICA_ATTEMPT_TIME) {
            // One more chance for the confirmed leader.
            r.attempts = MAX_REPLICA_ATTEMPT - 1;
            r.attempted_time = Duration::ZERO;
        }
        r.delete(FLAG_NOT_LEADER | FLAG_SUSPECT_NOT_LEADER);
        self.svc.locator.switch_leader(&self.ver, leader);
        Some(i)
    }

    /// `onFlashbackInProgress` (RE-5): a follower replica read retries as a leader read.
    pub fn on_flashback_in_progress(&mut self) -> bool {
        match self.target {
            Some(t)
                if self.flags.replica_read && self.replicas[t].peer.id != self.leader_peer_id() =>
            {
                self.flags.busy_threshold_ms = 0;
                self.busy_threshold = Duration::ZERO;
                self.read_type = ReplicaReadType::Leader;
                self.flags.read_type = ReplicaReadType::Leader;
                self.flags.replica_read = false;
                true
            }
            _ => false,
        }
    }

    /// `onDataIsNotReady` (RE-19).
    pub fn on_data_is_not_ready(&mut self) {
        if let Some(t) = self.target {
            self.replicas[t].add(FLAG_DATA_NOT_READY);
        }
    }

    /// `onRegionNotFound` (RS-20): `true` to retry once on the untried leader.
    pub fn on_region_not_found(&mut self) -> bool {
        let leader_idx = self.leader_idx();
        let untried = !self.replicas[leader_idx].is_exhausted(1, Duration::ZERO);
        self.invalidate_region();
        if untried {
            self.flags.read_type = ReplicaReadType::Leader;
            self.flags.replica_read = false;
            self.read_type = ReplicaReadType::Leader;
            self.region_invalidated_for_retry = true;
        }
        untried
    }

    /// `onReadReqConfigurableTimeout` (RS-22): flags the target when the read has a
    /// configurable timeout.
    pub fn on_read_req_configurable_timeout(&mut self, cmd: CmdType, max_exec_ms: u64) -> bool {
        if !is_read_req_configurable_timeout(cmd, max_exec_ms) {
            return false;
        }
        if let Some(t) = self.target {
            self.replicas[t].add(FLAG_DEADLINE_CONF_TIMEOUT);
        }
        true
    }

    /// `onServerIsBusy` (RS-18): `Ok(true)` to retry, `Ok(false)` to return the region
    /// error (a batched coprocessor request under a busy threshold).
    pub async fn on_server_is_busy(
        &mut self,
        bo: &SharedBackoffer,
        busy: &errorpb::ServerIsBusy,
        cmd: CmdType,
        batched_cop: bool,
    ) -> Result<bool> {
        let store = self.target.map(|t| self.replicas[t].store_id());
        if let Some(store_id) = store {
            if busy.estimated_wait_ms != 0 {
                self.svc
                    .stores
                    .record_server_busy(store_id, busy.estimated_wait_ms);
                if !self.busy_threshold.is_zero() && is_read_req(cmd) {
                    if batched_cop {
                        return Ok(false);
                    }
                    if let Some(t) = self.target {
                        self.replicas[t].add(FLAG_SERVER_BUSY);
                    }
                }
            } else {
                self.svc.stores.mark_slow(store_id);
                self.leader_busy_probe();
            }
        }
        let reason = Error::new(ErrorDetail::TiKVServerBusy);
        if self.can_fast_retry() {
            self.add_pending_backoff(store.unwrap_or(0), BackoffKind::TiKVServerBusy, reason);
            if let Some(t) = self.target {
                self.replicas[t].add(FLAG_SERVER_BUSY);
            }
            return Ok(true);
        }
        bo.backoff(BackoffKind::TiKVServerBusy, reason).await?;
        Ok(true)
    }

    /// The busy(0) leader probe of RS-18 step 2.
    fn leader_busy_probe(&mut self) {
        let leader_peer = self.leader_peer_id();
        let Some(t) = self.target else {
            return;
        };
        if self.read_type != ReplicaReadType::Leader
            || self.is_stale_read
            || self.opts.leader_only
            || self.replicas[t].peer.id != leader_peer
            || self.leader_busy_probed
        {
            return;
        }
        if self.leader_busy_peer != leader_peer {
            self.leader_busy_peer = leader_peer;
            self.leader_busy_count = 0;
        }
        self.leader_busy_count += 1;
        if self.leader_busy_count >= LEADER_BUSY_PROBE_THRESHOLD {
            self.replicas[t].add(FLAG_SUSPECT_NOT_LEADER);
            self.leader_busy_probed = true;
        }
    }

    /// `canFastRetry` (RS-18 step 3).
    fn can_fast_retry(&self) -> bool {
        if self.read_type == ReplicaReadType::Leader {
            let leader = &self.replicas[self.leader_idx()];
            if self.is_leader_candidate(leader) && !leader.has(FLAG_SERVER_BUSY) {
                return false;
            }
        }
        true
    }

    /// `addPendingBackoff` (RS-21): one entry per store, last wins.
    fn add_pending_backoff(&mut self, store_id: u64, kind: BackoffKind, err: Error) {
        self.pending.retain(|p| p.store_id != store_id);
        self.pending.push(PendingBackoff {
            store_id,
            cfg: kind.config(),
            err,
        });
    }

    /// `backoffOnRetry` (RS-21): applies the pending backoff of the store about to be
    /// contacted.
    pub async fn backoff_on_retry(&mut self, store_id: u64, bo: &SharedBackoffer) -> Result<()> {
        let Some(pos) = self.pending.iter().position(|p| p.store_id == store_id) else {
            return Ok(());
        };
        let p = self.pending.swap_remove(pos);
        bo.backoff(p.cfg, p.err).await
    }

    /// `backoffOnNoCandidate` (RS-21): applies the pending backoff with the largest base.
    pub async fn backoff_on_no_candidate(&mut self, bo: &SharedBackoffer) -> Result<()> {
        let Some(pos) = self
            .pending
            .iter()
            .enumerate()
            .max_by_key(|(i, p)| (p.cfg.base_ms(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
        else {
            return Ok(());
        };
        let p = self.pending.swap_remove(pos);
        bo.backoff(p.cfg, p.err).await
    }

    fn pick_tie(&self, n: usize) -> usize {
        if self.deterministic || n <= 1 {
            0
        } else {
            rand::rng().random_range(0..n)
        }
    }
}

/// Counts one give-up of the selector (client-go's `TiKVReplicaSelectorFailureCounter`).
fn selector_failure(reason: &'static str) {
    metrics::counter!(names::REPLICA_SELECTOR_FAILURE_TOTAL, names::labels::TYPE => reason)
        .increment(1);
}

/// `canSendReplicaRead` (RS-12).
fn can_send_replica_read(leader: &Replica) -> bool {
    !(leader.attempts == 0
        || leader.has(FLAG_DEADLINE_CONF_TIMEOUT)
        || leader.has(FLAG_SERVER_BUSY))
}

/// `isReadReq`: the read-only commands replica selection treats as reads.
pub fn is_read_req(cmd: CmdType) -> bool {
    matches!(
        cmd,
        CmdType::Get
            | CmdType::BatchGet
            | CmdType::Scan
            | CmdType::Cop
            | CmdType::BatchCop
            | CmdType::CopStream
    )
}

/// `isReadReqConfigurableTimeout` (TE-3/RS-22).
pub fn is_read_req_configurable_timeout(cmd: CmdType, max_exec_ms: u64) -> bool {
    max_exec_ms < CONFIGURABLE_TIMEOUT_LIMIT_MS && is_read_req(cmd)
}

/// The score bits of RS-10, most significant first.
const SCORE_NOT_SLOW: u8 = 16;
const SCORE_LABEL_MATCHES: u8 = 8;
const SCORE_PREFER_LEADER: u8 = 4;
const SCORE_NORMAL_PEER: u8 = 2;
const SCORE_NOT_ATTEMPTED: u8 = 1;

/// `ReplicaSelectMixedStrategy` (RS-9 .. RS-11).
#[derive(Debug, Default)]
struct Mixed {
    leader_idx: usize,
    try_leader: bool,
    prefer_leader: bool,
    leader_only: bool,
    learner_only: bool,
    busy_threshold: Duration,
    /// Preferred labels; only the mixed-family read passes the request's (RS-8 step 3).
    labels: Vec<metapb::StoreLabel>,
    /// Preferred stores, likewise.
    stores: Vec<u64>,
}

impl Mixed {
    fn pick(&self, sel: &mut ReplicaSelector) -> Option<usize> {
        let mut best: Vec<usize> = Vec::with_capacity(sel.replicas.len());
        let mut max_score: i16 = -1;
        let mut reload = false;
        for (i, r) in sel.replicas.iter().enumerate() {
            let stale = sel.is_epoch_stale(r);
            let liveness = sel.liveness(r);
            let is_leader = i == self.leader_idx;
            if stale
                && ((liveness == Liveness::Reachable && sel.svc.stores.is_resolved(r.store_id()))
                    || is_leader)
            {
                reload = true;
            }
            if !self.is_candidate(sel, r, is_leader, stale, liveness) {
                continue;
            }
            let score = i16::from(self.score(sel, r, is_leader));
            if score > max_score {
                max_score = score;
                best.clear();
                best.push(i);
            } else if score == max_score {
                best.push(i);
            }
        }
        if reload {
            sel.svc.locator.schedule_delayed_reload(&sel.ver);
        }
        if !best.is_empty() {
            return Some(best[sel.pick_tie(best.len())]);
        }
        if !self.busy_threshold.is_zero() {
            return None;
        }
        let leader_idx = self.leader_idx;
        if sel.replicas[leader_idx].has(FLAG_SUSPECT_NOT_LEADER) {
            sel.replicas[leader_idx].delete(FLAG_SUSPECT_NOT_LEADER);
            if sel.is_leader_candidate(&sel.replicas[leader_idx]) {
                return Some(leader_idx);
            }
        }
        if !sel
            .replicas
            .iter()
            .any(|r| r.has(FLAG_DEADLINE_CONF_TIMEOUT))
        {
            sel.invalidate_region();
        }
        selector_failure(names::labels::SELECTOR_EXHAUSTED);
        None
    }

    /// `isCandidate` (RS-11).
    fn is_candidate(
        &self,
        sel: &ReplicaSelector,
        r: &Replica,
        is_leader: bool,
        stale: bool,
        liveness: Liveness,
    ) -> bool {
        if stale || liveness == Liveness::Unreachable {
            return false;
        }
        let max_attempt = if r.has(FLAG_DATA_NOT_READY) && !is_leader {
            2
        } else {
            1
        };
        if r.is_exhausted(max_attempt, Duration::ZERO) {
            return false;
        }
        if self.leader_only && !is_leader {
            return false;
        }
        if !self.busy_threshold.is_zero()
            && (sel.svc.stores.estimated_wait(r.store_id()) > self.busy_threshold
                || r.has(FLAG_SERVER_BUSY)
                || is_leader)
        {
            return false;
        }
        if self.prefer_leader && sel.svc.stores.is_slow(r.store_id()) && !is_leader {
            return false;
        }
        true
    }

    /// `calculateScore` (RS-10).
    fn score(&self, sel: &ReplicaSelector, r: &Replica, is_leader: bool) -> u8 {
        let mut score = 0;
        let store_match = self.stores.is_empty() || self.stores.contains(&r.store_id());
        let labels_match = self.labels.is_empty()
            || sel
                .svc
                .stores
                .cached_store(r.store_id())
                .is_some_and(|s| s.is_labels_match(&self.labels));
        if store_match && labels_match {
            score |= SCORE_LABEL_MATCHES;
        }
        let slow = sel.svc.stores.is_slow(r.store_id());
        if is_leader {
            if self.prefer_leader {
                score |= if slow {
                    SCORE_NORMAL_PEER
                } else {
                    SCORE_PREFER_LEADER
                };
            } else if self.try_leader {
                score |= if self.labels.is_empty() {
                    SCORE_NORMAL_PEER
                } else {
                    SCORE_PREFER_LEADER
                };
            }
        } else if !self.learner_only || r.peer.role() == metapb::PeerRole::Learner {
            score |= SCORE_NORMAL_PEER;
        }
        if !slow {
            score |= SCORE_NOT_SLOW;
        }
        if r.attempts == 0 {
            score |= SCORE_NOT_ATTEMPTED;
        }
        score
    }
}

/// The per-call selector handle that rides in the request's call state between the retry
/// layer (which creates it and feeds back errors) and the replica layer (which builds the
/// selector on the first attempt and picks each target).
///
/// Access is strictly sequential within one call; the lock is only held to move the
/// selector in or out, never across an `.await`.
#[derive(Clone, Default)]
pub struct SelectorSlot {
    inner: Arc<Mutex<SlotState>>,
}

impl std::fmt::Debug for SelectorSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectorSlot").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct SlotState {
    selector: Option<ReplicaSelector>,
    /// The selector was tried and could not be built (RS-1: region gone); do not retry.
    unavailable: bool,
    outcome: Option<SlotOutcome>,
}

/// What the replica layer tells the retry layer about an attempt that never reached the
/// transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOutcome {
    /// No replica could be chosen: the response is a pseudo region error to hand to the
    /// caller as is (SL-3 step 6).
    NoCandidate,
    /// The error ends the call (address resolution, pending backoff exhausted, ...).
    Fatal,
}

impl SelectorSlot {
    /// A fresh, empty slot.
    pub fn new() -> SelectorSlot {
        SelectorSlot::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the selector out for the duration of an attempt or a feedback step.
    pub fn take(&self) -> Option<ReplicaSelector> {
        self.lock().selector.take()
    }

    /// Puts the selector back.
    pub fn put(&self, sel: ReplicaSelector) {
        self.lock().selector = Some(sel);
    }

    /// Whether building a selector was already tried and failed.
    pub fn is_unavailable(&self) -> bool {
        self.lock().unavailable
    }

    /// Records that no selector can be built for this call.
    pub fn set_unavailable(&self) {
        self.lock().unavailable = true;
    }

    /// Records the outcome of an attempt that stopped in the replica layer.
    pub fn set_outcome(&self, outcome: SlotOutcome) {
        self.lock().outcome = Some(outcome);
    }

    /// The region the call was routed to, once a selector exists.
    pub fn routed_region(&self) -> Option<Arc<RegionSnapshot>> {
        self.lock().selector.as_ref().map(|s| s.region.clone())
    }

    /// Takes the recorded outcome, if any.
    pub fn take_outcome(&self) -> Option<SlotOutcome> {
        self.lock().outcome.take()
    }
}

#[cfg(test)]
mod internal_tests {
    //! Ports of client-go tests that look at the selector's private parts.

    use super::*;
    use crate::test_support::Fake;

    fn mixed_selector(fake: &Fake) -> ReplicaSelector {
        ReplicaSelector::new(
            fake.services(),
            fake.ver(),
            CmdType::Get,
            ReadFlags {
                replica_read: true,
                stale_read: false,
                busy_threshold_ms: 0,
                read_type: ReplicaReadType::Mixed,
            },
            SelectorOptions::default(),
            SelectorConfig::default(),
        )
        .expect("region cached")
    }

    // client-go: T-REQUEST-051 TestReplicaSelectorCalculateScore
    #[test]
    fn calculate_score() {
        let fake = Fake::new(3);
        let sel = mixed_selector(&fake);
        let zone = vec![metapb::StoreLabel {
            key: "zone".into(),
            value: "us-west-1".into(),
        }];
        let leader_idx = fake.snapshot().work_tikv_idx;
        for (i, r) in sel.replicas.iter().enumerate() {
            let is_leader = i == leader_idx;
            let store = r.store_id();
            let mut strategy = Mixed {
                leader_idx,
                ..Mixed::default()
            };
            assert!(!fake.is_slow(store));
            let want = if is_leader {
                SCORE_LABEL_MATCHES + SCORE_NOT_SLOW + SCORE_NOT_ATTEMPTED
            } else {
                SCORE_LABEL_MATCHES + SCORE_NORMAL_PEER + SCORE_NOT_SLOW + SCORE_NOT_ATTEMPTED
            };
            assert_eq!(strategy.score(&sel, r, is_leader), want);

            fake.mark_slow(store);
            assert!(fake.is_slow(store));
            let want = if is_leader {
                SCORE_LABEL_MATCHES + SCORE_NOT_ATTEMPTED
            } else {
                SCORE_LABEL_MATCHES + SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            };
            assert_eq!(strategy.score(&sel, r, is_leader), want);

            strategy.try_leader = true;
            assert_eq!(
                strategy.score(&sel, r, is_leader),
                SCORE_LABEL_MATCHES + SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            );
            strategy.prefer_leader = true;
            assert_eq!(
                strategy.score(&sel, r, is_leader),
                SCORE_LABEL_MATCHES + SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            );
            strategy.learner_only = true;
            strategy.try_leader = false;
            strategy.prefer_leader = false;
            assert_eq!(
                strategy.score(&sel, r, is_leader),
                SCORE_LABEL_MATCHES + SCORE_NOT_ATTEMPTED
            );
            strategy.labels = zone.clone();
            assert_eq!(strategy.score(&sel, r, is_leader), SCORE_NOT_ATTEMPTED);

            let strategy = Mixed {
                leader_idx,
                try_leader: true,
                labels: zone.clone(),
                ..Mixed::default()
            };
            let want = if is_leader {
                SCORE_PREFER_LEADER + SCORE_NOT_ATTEMPTED
            } else {
                SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            };
            assert_eq!(strategy.score(&sel, r, is_leader), want);

            let strategy = Mixed {
                leader_idx,
                prefer_leader: true,
                labels: zone.clone(),
                ..Mixed::default()
            };
            assert_eq!(
                strategy.score(&sel, r, is_leader),
                SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            );
            fake.lock().labels.insert(store, zone.clone());
            assert_eq!(
                strategy.score(&sel, r, is_leader),
                SCORE_LABEL_MATCHES + SCORE_NORMAL_PEER + SCORE_NOT_ATTEMPTED
            );
            fake.lock().labels.remove(&store);
        }
    }

    // client-go: T-REQUEST-074 TestReplicaFlag
    #[test]
    fn replica_flags() {
        let mut r = Replica {
            peer: metapb::Peer::default(),
            epoch: 0,
            attempts: 0,
            attempted_time: Duration::ZERO,
            flags: 0,
        };
        let all = [
            FLAG_DEADLINE_CONF_TIMEOUT,
            FLAG_DATA_NOT_READY,
            FLAG_NOT_LEADER,
            FLAG_SERVER_BUSY,
            FLAG_SUSPECT_NOT_LEADER,
        ];
        for (i, &flag) in all.iter().enumerate() {
            if i > 0 {
                assert!(flag > all[i - 1]);
            }
            for &later in &all[i..] {
                assert!(!r.has(later));
            }
            r.add(flag);
            assert!(r.has(flag));
        }
        for (i, &flag) in all.iter().enumerate() {
            for &later in &all[i..] {
                assert!(r.has(later));
            }
            r.delete(flag);
            assert!(!r.has(flag));
        }
    }
}
