//! The selector-less routing helpers of the region cache: pick the peer, store and address
//! for one request to a cached region by replica-read type and seed, and react to a failed
//! send (client-go's `GetTiKVRPCContext`, `regionStore.follower`, `regionStore.kvPeer`,
//! `filterStoreCandidate`, `OnSendFail` and `markRegionNeedBeRefill` in
//! `internal/locate/region_cache.go`; RC-40, RC-47, RC-48 of `shared/spec/request-path.md`).
//!
//! The request pipeline does not use these: its replica selector (`tikv_layers::replica`)
//! makes the same choices with more state. They exist for callers that route by hand (tools,
//! coprocessor-style fan-out) and keep the cache's legacy contract testable.

use std::sync::Arc;

use tikv_layers::backoff::Backoffer;
use tikv_layers::locate::{AccessMode, InvalidReason, RegionSnapshot, RegionVerId, StoreResolver};
use tikv_layers::{ReplicaReadType, Result};
use tikv_proto::metapb;

use super::RegionCache;

/// Where one request to a region goes (client-go's `RPCContext`, RC-47).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcContext {
    /// The region version the context was built from.
    pub region: RegionVerId,
    /// The cached region meta (unusable peers already dropped, RC-33).
    pub meta: Arc<metapb::Region>,
    /// The chosen peer.
    pub peer: metapb::Peer,
    /// Index of the chosen peer among the region's TiKV or TiFlash peers, per
    /// `access_mode` (`AccessIdx`).
    pub access_idx: usize,
    /// Whether `access_idx` counts TiKV or TiFlash peers (`AccessMode`).
    pub access_mode: AccessMode,
    /// The chosen peer's store.
    pub store_id: u64,
    /// The store's address.
    pub addr: String,
    /// How many TiKV peers the region has (`TiKVNum`).
    pub tikv_num: usize,
}

/// Store filters for [`RegionCache::get_tikv_rpc_context`] (client-go's `storeSelectorOp`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreSelectorOptions {
    /// Mixed reads go to the leader only (`WithLeaderOnly`).
    pub leader_only: bool,
    /// Prefer the leader unless it is slow (`WithPerferLeader`).
    pub prefer_leader: bool,
    /// Only stores carrying all these labels qualify (`WithMatchLabels`).
    pub labels: Vec<metapb::StoreLabel>,
}

impl RegionCache {
    /// Whether the TiKV peer at `aidx` is a candidate: its store's epoch still matches the
    /// snapshot and it passes the label / prefer-leader filters (`filterStoreCandidate`).
    fn is_candidate(&self, snap: &RegionSnapshot, aidx: usize, op: &StoreSelectorOptions) -> bool {
        let Some(&sidx) = snap.tikv_peers.get(aidx) else {
            return false;
        };
        let Some(peer) = snap.region.peers.get(sidx) else {
            return false;
        };
        let Some(store) = self.stores().get(peer.store_id) else {
            return false;
        };
        if snap.store_epochs.get(sidx).copied() != Some(store.epoch()) {
            return false;
        }
        store.snapshot().is_labels_match(&op.labels)
            && (!op.prefer_leader || (aidx == snap.work_tikv_idx && !store.health().is_slow()))
    }

    /// The follower chosen by `seed` (`regionStore.follower`): starting at
    /// `seed mod (n-1)` among the non-leader TiKV peers, the first candidate; the leader when
    /// there is none.
    fn follower_idx(&self, snap: &RegionSnapshot, seed: u32, op: &StoreSelectorOptions) -> usize {
        let n = snap.tikv_peers.len() as u32;
        if n <= 1 {
            return snap.work_tikv_idx;
        }
        let mut seed = seed;
        for _ in 0..n - 1 {
            let mut idx = (seed % (n - 1)) as usize;
            if idx >= snap.work_tikv_idx {
                idx += 1;
            }
            if self.is_candidate(snap, idx, op) {
                return idx;
            }
            seed = seed.wrapping_add(1);
        }
        snap.work_tikv_idx
    }

    /// Any TiKV peer chosen by `seed` among the candidates (`regionStore.kvPeer`); the
    /// leader when there is none or with `leader_only`.
    fn any_peer_idx(&self, snap: &RegionSnapshot, seed: u32, op: &StoreSelectorOptions) -> usize {
        if op.leader_only {
            return snap.work_tikv_idx;
        }
        let candidates: Vec<usize> = (0..snap.tikv_peers.len())
            .filter(|&i| self.is_candidate(snap, i, op))
            .collect();
        if candidates.is_empty() {
            return snap.work_tikv_idx;
        }
        candidates[seed as usize % candidates.len()]
    }

    /// Picks the TiKV peer, store and address for a request to region `ver` by replica-read
    /// type and follower seed (client-go's `GetTiKVRPCContext`, RC-48).
    ///
    /// `Ok(None)` means the region is out of date: it is not cached, not valid, its store has
    /// no address (the region is invalidated with `StoreNotFound`) or its store failed since
    /// the snapshot was built (invalidated with `Other`). The caller relocates.
    /// Forwarding (proxy stores) is not part of this helper; the pipeline's replica
    /// selector handles it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_tikv_rpc_context(
        &self,
        bo: &mut Backoffer,
        ver: &RegionVerId,
        read: ReplicaReadType,
        seed: u32,
        op: &StoreSelectorOptions,
    ) -> Result<Option<RpcContext>> {
        let Some(region) = self.get_cached(ver) else {
            return Ok(None);
        };
        if !region.is_valid(self.inner.clock.now(), &self.inner.clock) {
            return Ok(None);
        }
        let snap = region.snapshot();
        let aidx = match read {
            ReplicaReadType::Follower => self.follower_idx(&snap, seed, op),
            ReplicaReadType::Mixed => self.any_peer_idx(&snap, seed, op),
            ReplicaReadType::PreferLeader => {
                let op = StoreSelectorOptions {
                    prefer_leader: true,
                    ..op.clone()
                };
                self.any_peer_idx(&snap, seed, &op)
            }
            _ => snap.work_tikv_idx,
        };
        let Some((sidx, peer)) = snap
            .tikv_peers
            .get(aidx)
            .and_then(|&s| snap.region.peers.get(s).map(|p| (s, *p)))
        else {
            region.invalidate(InvalidReason::StoreNotFound);
            return Ok(None);
        };
        let store = self.stores().get_or_insert(peer.store_id);
        let addr = self.stores().init_resolve(&store, bo).await?;
        if addr.is_empty() {
            // The store is gone: the region must be out of date.
            region.invalidate(InvalidReason::StoreNotFound);
            return Ok(None);
        }
        if snap.store_epochs.get(sidx).copied() != Some(store.epoch()) {
            // Another region failed on this store since the snapshot was built.
            tracing::info!(
                region = ver.id,
                store = peer.store_id,
                "invalidate current region, because others failed on same store"
            );
            region.invalidate(InvalidReason::Other);
            return Ok(None);
        }
        Ok(Some(RpcContext {
            region: *ver,
            meta: snap.region.clone(),
            peer,
            access_idx: aidx,
            access_mode: AccessMode::TiKv,
            store_id: peer.store_id,
            addr,
            tikv_num: snap.tikv_peers.len(),
        }))
    }

    /// Reacts to a failed send made with `ctx` (client-go's `OnSendFail`, RC-40).
    ///
    /// Nothing happens when the region is no longer cached or its peer list changed since
    /// `ctx` was built. With `transport_failed` (client-go passes the send error) the failed
    /// store's epoch is bumped, which makes every other cached region on that store
    /// unroutable until reloaded, and the store is re-resolved (`markRegionNeedBeRefill`).
    /// The work peer then moves to the next TiKV peer; `schedule_reload` also flags the
    /// region to reload on its next access.
    pub fn on_send_fail(&self, ctx: &RpcContext, schedule_reload: bool, transport_failed: bool) {
        metrics::counter!(
            tikv_layers::metrics::names::REGION_CACHE_OPERATIONS_TOTAL,
            "type" => "send_fail",
            "result" => tikv_layers::metrics::names::labels::OK
        )
        .increment(1);
        let Some(region) = self.get_cached(&ctx.region) else {
            return;
        };
        let snap = region.snapshot();
        if snap.region.peers.len() != ctx.meta.peers.len() {
            tracing::info!(
                region = ctx.region.id,
                old_peers = ctx.meta.peers.len(),
                new_peers = snap.region.peers.len(),
                "peers changed since the failed send; retry with a fresh context"
            );
            return;
        }
        let peers = match ctx.access_mode {
            AccessMode::TiKv => &snap.tikv_peers,
            AccessMode::TiFlash => &snap.tiflash_peers,
        };
        if transport_failed
            && let Some(&sidx) = peers.get(ctx.access_idx)
            && let (Some(peer), Some(&epoch)) =
                (snap.region.peers.get(sidx), snap.store_epochs.get(sidx))
        {
            self.stores().invalidate_store(peer.store_id, epoch);
        }
        match ctx.access_mode {
            AccessMode::TiKv => {
                if snap.work_tikv_idx == ctx.access_idx && !snap.tikv_peers.is_empty() {
                    let n = snap.tikv_peers.len();
                    region.update_snapshot(|s| s.work_tikv_idx = (ctx.access_idx + 1) % n);
                }
            }
            // `switchNextFlashPeer`: unconditional (RC-39).
            AccessMode::TiFlash => {
                let n = snap.tiflash_peers.len();
                if n > 0 {
                    region.update_snapshot(|s| s.work_tiflash_idx = (ctx.access_idx + 1) % n);
                }
            }
        }
        if schedule_reload {
            region.set_flags(super::NEED_RELOAD_ON_ACCESS);
        }
    }
}

/// client-go's `LabelFilterNoTiFlashWriteNode`: true unless the store is a TiFlash write
/// node (label `engine_role=write`).
pub fn no_tiflash_write_node(labels: &[metapb::StoreLabel]) -> bool {
    !labels
        .iter()
        .any(|l| l.key == "engine_role" && l.value == "write")
}

impl RegionCache {
    /// Picks the TiFlash peer for a request to region `ver` (client-go's
    /// `GetTiFlashRPCContext`, RC-49).
    ///
    /// With `load_balance` the region's work TiFlash index moves one peer on first, so
    /// successive calls spread over the TiFlash peers. Peers are tried round-robin from
    /// there: stores `filter` rejects are skipped, a store without address invalidates the
    /// region (`StoreNotFound`, `None`), a store in need of a check is re-resolved first,
    /// and a store that failed since the snapshot was built invalidates the region
    /// (`Other`) and the next peer is tried. `Ok(None)` when the region is not cached or
    /// not valid, has no TiFlash peer, or no peer qualifies.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_tiflash_rpc_context(
        &self,
        bo: &mut Backoffer,
        ver: &RegionVerId,
        load_balance: bool,
        filter: impl Fn(&[metapb::StoreLabel]) -> bool,
    ) -> Result<Option<RpcContext>> {
        let Some(region) = self.get_cached(ver) else {
            return Ok(None);
        };
        if !region.is_valid(self.inner.clock.now(), &self.inner.clock) {
            return Ok(None);
        }
        let snap = region.snapshot();
        let n = snap.tiflash_peers.len();
        if n == 0 {
            region.invalidate(InvalidReason::Other);
            return Ok(None);
        }
        let start = if load_balance {
            let next = snap.work_tiflash_idx.wrapping_add(1);
            region.update_snapshot(|s| s.work_tiflash_idx = next % n);
            next
        } else {
            snap.work_tiflash_idx
        };
        for i in 0..n {
            let aidx = (start + i) % n;
            let Some((sidx, peer)) = snap
                .tiflash_peers
                .get(aidx)
                .and_then(|&s| snap.region.peers.get(s).map(|p| (s, *p)))
            else {
                continue;
            };
            let store = self.stores().get_or_insert(peer.store_id);
            if !filter(&store.snapshot().labels) {
                continue;
            }
            let mut addr = self.stores().init_resolve(&store, bo).await?;
            if addr.is_empty() {
                region.invalidate(InvalidReason::StoreNotFound);
                return Ok(None);
            }
            if store.state() == crate::store_cache::ResolveState::NeedCheck {
                if let Err(e) = self.stores().re_resolve(&store).await {
                    tracing::warn!(store = peer.store_id, error = %e, "re-resolve tiflash store failed");
                }
                addr = store.snapshot().addr.clone();
            }
            region.update_snapshot(|s| s.work_tiflash_idx = aidx);
            if snap.store_epochs.get(sidx).copied() != Some(store.epoch()) {
                region.invalidate(InvalidReason::Other);
                continue;
            }
            return Ok(Some(RpcContext {
                region: *ver,
                meta: snap.region.clone(),
                peer,
                access_idx: aidx,
                access_mode: AccessMode::TiFlash,
                store_id: peer.store_id,
                addr,
                tikv_num: snap.tikv_peers.len(),
            }));
        }
        region.invalidate(InvalidReason::Other);
        Ok(None)
    }
}
