//! The in-process PD service and the TSO (spec §1.14 - §1.16, MC-2.30.4).
//!
//! [`MockPd`] answers in `pdpb` messages, so the gRPC face (`grpc.rs`) is a thin adapter and
//! both faces give the same answers by construction. Mirrors client-go's
//! `internal/mockstore/mocktikv/pd.go` (`pdClient`) with the fixes of spec §7 #26, #29.
//! PD failures come only from PD rules (MC-3.6.1).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tikv_proto::{metapb, pdpb};
use tonic::Status;

use super::cluster::{Cluster, RegionInfo};
use super::inject::{PdAction, PdRule, RuleHandle, RuleSet};

/// Bits of the logical part of a timestamp.
pub const LOGICAL_BITS: u32 = 18;
const MAX_LOGICAL: u64 = 1 << LOGICAL_BITS;

/// Composes a timestamp from physical milliseconds and a logical counter.
pub fn compose_ts(physical: u64, logical: u64) -> u64 {
    (physical << LOGICAL_BITS) | logical
}

#[derive(Debug, Default)]
struct Tso {
    physical: u64,
    logical: u64,
}

#[derive(Debug, Default)]
struct GcStates {
    legacy_safe_point: u64,
    service: BTreeMap<Vec<u8>, u64>,
    txn_safe_point: u64,
    gc_safe_point: u64,
    barriers: BTreeMap<String, u64>,
}

struct PdInner {
    cluster: Cluster,
    cluster_id: u64,
    tso: Mutex<Tso>,
    gc: Mutex<GcStates>,
    external_ts: Mutex<u64>,
    rules: Arc<RuleSet<PdRule>>,
    client_url: Mutex<String>,
    keyspaces: super::keyspace::Keyspaces,
    /// mocktikv's `mustLeader` failpoint: region and store calls that allow a follower or
    /// the router service to answer fail with `Unavailable`.
    must_leader: std::sync::atomic::AtomicBool,
}

/// The mock PD (mocktikv `pdClient`): cheap to clone, shared with the gRPC face.
#[derive(Clone)]
pub struct MockPd {
    inner: Arc<PdInner>,
}

impl std::fmt::Debug for MockPd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockPd")
            .field("cluster_id", &self.inner.cluster_id)
            .finish_non_exhaustive()
    }
}

fn header(cluster_id: u64) -> Option<pdpb::ResponseHeader> {
    Some(pdpb::ResponseHeader {
        cluster_id,
        error: None,
    })
}

fn err_header(cluster_id: u64, t: pdpb::ErrorType, msg: String) -> Option<pdpb::ResponseHeader> {
    Some(pdpb::ResponseHeader {
        cluster_id,
        error: Some(pdpb::Error {
            r#type: t as i32,
            message: msg,
        }),
    })
}

fn pd_region(r: RegionInfo, buckets: bool) -> pdpb::Region {
    pdpb::Region {
        region: Some(r.region),
        leader: Some(r.leader.unwrap_or_default()),
        down_peers: down(r.down_peers),
        pending_peers: Vec::new(),
        buckets: if buckets { r.buckets } else { None },
    }
}

fn down(peers: Vec<metapb::Peer>) -> Vec<pdpb::PeerStats> {
    peers
        .into_iter()
        .map(|p| pdpb::PeerStats {
            peer: Some(p),
            down_seconds: 600,
        })
        .collect()
}

fn region_resp(cluster_id: u64, r: Option<RegionInfo>, buckets: bool) -> pdpb::GetRegionResponse {
    match r {
        None => pdpb::GetRegionResponse {
            header: header(cluster_id),
            ..Default::default()
        },
        Some(r) => pdpb::GetRegionResponse {
            header: header(cluster_id),
            region: Some(r.region),
            leader: r.leader,
            down_peers: down(r.down_peers),
            pending_peers: Vec::new(),
            buckets: if buckets { r.buckets } else { None },
        },
    }
}

impl MockPd {
    /// A PD over `cluster` reporting `cluster_id` (MC-1.1.2).
    pub fn new(cluster: Cluster, cluster_id: u64) -> MockPd {
        MockPd {
            inner: Arc::new(PdInner {
                cluster,
                cluster_id,
                tso: Mutex::new(Tso::default()),
                gc: Mutex::new(GcStates::default()),
                external_ts: Mutex::new(0),
                rules: Arc::new(RuleSet::default()),
                client_url: Mutex::new("mockpd".to_owned()),
                keyspaces: super::keyspace::Keyspaces::new(),
                must_leader: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The cluster id every response header carries.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The cluster this PD answers from.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    pub(crate) fn set_client_url(&self, url: String) {
        *self
            .inner
            .client_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// Turns mocktikv's `mustLeader` failpoint on or off: while on, in-process region and
    /// store lookups that allow a follower (or the router service) to answer fail with
    /// `Unavailable`, so only leader-only lookups succeed. Unlike
    /// [`PdRule::must_leader`], which fails every call of a method, this looks at the
    /// caller's `allow_follower` option as mocktikv does.
    pub fn set_must_leader(&self, on: bool) {
        self.inner
            .must_leader
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a lookup with `allow_follower` must be refused (see [`Self::set_must_leader`]).
    pub(crate) fn refuse_follower(&self, allow_follower: bool) -> Option<tonic::Status> {
        (allow_follower
            && self
                .inner
                .must_leader
                .load(std::sync::atomic::Ordering::SeqCst))
        .then(|| tonic::Status::unavailable("mock PD: not leader"))
    }

    /// Installs a PD rule (MC-3.6.1); dropping the handle removes it.
    pub fn inject(&self, rule: PdRule) -> RuleHandle {
        let policy = rule.policy;
        self.inner.rules.add(rule, policy)
    }

    /// Cluster-id check, then PD rules, for `method`.
    pub(crate) async fn enter(
        &self,
        method: &str,
        h: Option<&pdpb::RequestHeader>,
    ) -> Result<(), Status> {
        let got = h.map_or(0, |h| h.cluster_id);
        if got != 0 && got != self.inner.cluster_id {
            return Err(Status::failed_precondition(format!(
                "mismatch cluster id, need {} but got {got}",
                self.inner.cluster_id
            )));
        }
        let Some(e) = self
            .inner
            .rules
            .eval(|r| r.method.as_deref().is_none_or(|m| m == method))
        else {
            return Ok(());
        };
        match &e.rule.action {
            PdAction::Error(s) => Err(s.clone()),
            PdAction::Delay(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            PdAction::Pause => {
                let _ = e.gate.acquire().await;
                Ok(())
            }
        }
    }

    pub(crate) fn keyspaces(&self) -> &super::keyspace::Keyspaces {
        &self.inner.keyspaces
    }

    pub(crate) fn h(&self) -> Option<pdpb::ResponseHeader> {
        header(self.inner.cluster_id)
    }

    // ----- TSO (MC-1.14) -----

    /// Allocates `count` consecutive timestamps in one physical millisecond and returns the
    /// largest (MC-1.14.1, MC-1.14.2).
    pub fn alloc_ts(&self, count: u32) -> u64 {
        let count = u64::from(count.max(1));
        let now = self.inner.cluster.clock().now_ms();
        let mut t = self.inner.tso.lock().unwrap_or_else(|e| e.into_inner());
        let (mut phys, mut start) = if now > t.physical {
            (now, 0)
        } else {
            (t.physical, t.logical + 1)
        };
        if start + count > MAX_LOGICAL {
            phys += 1;
            start = 0;
        }
        t.physical = phys;
        t.logical = start + count - 1;
        compose_ts(phys, t.logical)
    }

    /// One fresh timestamp (mocktikv `GetTS`), after PD rules on `"Tso"`.
    pub async fn get_ts(&self) -> Result<u64, Status> {
        self.enter("Tso", None).await?;
        Ok(self.alloc_ts(1))
    }

    /// `Tso` stream entry: `count` must be non-zero; the response echoes it.
    pub async fn tso(&self, req: pdpb::TsoRequest) -> Result<pdpb::TsoResponse, Status> {
        self.enter("Tso", req.header.as_ref()).await?;
        if req.count == 0 {
            return Err(Status::invalid_argument("tso count should be positive"));
        }
        let ts = self.alloc_ts(req.count);
        Ok(pdpb::TsoResponse {
            header: self.h(),
            count: req.count,
            timestamp: Some(pdpb::Timestamp {
                physical: (ts >> LOGICAL_BITS) as i64,
                logical: (ts & (MAX_LOGICAL - 1)) as i64,
                suffix_bits: 0,
            }),
        })
    }

    // ----- membership -----

    /// One member, the PD itself, as leader (MC-1.15.7).
    pub async fn get_members(
        &self,
        req: pdpb::GetMembersRequest,
    ) -> Result<pdpb::GetMembersResponse, Status> {
        self.enter("GetMembers", req.header.as_ref()).await?;
        let url = self
            .inner
            .client_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let me = pdpb::Member {
            name: "mockpd".to_owned(),
            member_id: 1,
            peer_urls: vec![url.clone()],
            client_urls: vec![url],
            ..Default::default()
        };
        Ok(pdpb::GetMembersResponse {
            header: self.h(),
            members: vec![me.clone()],
            leader: Some(me.clone()),
            etcd_leader: Some(me),
            ..Default::default()
        })
    }

    /// PD service mode: the PD leader serves TSO (MC-1.15.7). A real PD always lists a
    /// mode, and the PD client fails its creation on an answer without one (PD-7), so the
    /// mock lists one too rather than the empty success MC-1.15.7 allows.
    pub async fn get_cluster_info(
        &self,
        req: pdpb::GetClusterInfoRequest,
    ) -> Result<pdpb::GetClusterInfoResponse, Status> {
        let _ = req;
        self.enter("GetClusterInfo", None).await?;
        Ok(pdpb::GetClusterInfoResponse {
            header: self.h(),
            service_modes: vec![pdpb::ServiceMode::PdSvcMode as i32],
            ..Default::default()
        })
    }

    /// Allocates ids from the cluster's counter (MC-1.1.1).
    pub async fn alloc_id(
        &self,
        req: pdpb::AllocIdRequest,
    ) -> Result<pdpb::AllocIdResponse, Status> {
        self.enter("AllocID", req.header.as_ref()).await?;
        let n = req.count.max(1) as usize;
        let ids = self.inner.cluster.alloc_ids(n);
        Ok(pdpb::AllocIdResponse {
            header: self.h(),
            id: ids.last().copied().unwrap_or(0),
            count: n as u32,
        })
    }

    // ----- stores (MC-1.15.6, §1.11) -----

    /// A store record; none for a tombstone; header error for an unknown id.
    pub async fn get_store(
        &self,
        req: pdpb::GetStoreRequest,
    ) -> Result<pdpb::GetStoreResponse, Status> {
        self.enter("GetStore", req.header.as_ref()).await?;
        let id = self.inner.cluster_id;
        Ok(match self.inner.cluster.get_store(req.store_id) {
            None => pdpb::GetStoreResponse {
                header: err_header(
                    id,
                    pdpb::ErrorType::Unknown,
                    format!("invalid store ID {}, not found", req.store_id),
                ),
                ..Default::default()
            },
            Some(s) if s.state() == metapb::StoreState::Tombstone => pdpb::GetStoreResponse {
                header: self.h(),
                ..Default::default()
            },
            Some(s) => pdpb::GetStoreResponse {
                header: self.h(),
                store: Some(s),
                stats: None,
            },
        })
    }

    /// All stores, tombstones omitted when asked.
    pub async fn get_all_stores(
        &self,
        req: pdpb::GetAllStoresRequest,
    ) -> Result<pdpb::GetAllStoresResponse, Status> {
        self.enter("GetAllStores", req.header.as_ref()).await?;
        let stores = self
            .inner
            .cluster
            .get_all_stores()
            .into_iter()
            .filter(|s| !req.exclude_tombstone_stores || s.state() != metapb::StoreState::Tombstone)
            .collect();
        Ok(pdpb::GetAllStoresResponse {
            header: self.h(),
            stores,
        })
    }

    // ----- regions (MC-1.15.1 - 1.15.5) -----

    /// The region containing a PD-space key.
    pub async fn get_region(
        &self,
        req: pdpb::GetRegionRequest,
    ) -> Result<pdpb::GetRegionResponse, Status> {
        self.enter("GetRegion", req.header.as_ref()).await?;
        let r = self.inner.cluster.get_region_by_key(&req.region_key);
        Ok(region_resp(self.inner.cluster_id, r, req.need_buckets))
    }

    /// The region before the one containing the key.
    pub async fn get_prev_region(
        &self,
        req: pdpb::GetRegionRequest,
    ) -> Result<pdpb::GetRegionResponse, Status> {
        self.enter("GetPrevRegion", req.header.as_ref()).await?;
        let r = self.inner.cluster.get_prev_region_by_key(&req.region_key);
        Ok(region_resp(self.inner.cluster_id, r, req.need_buckets))
    }

    /// A region by id (buckets always, MC-1.12.2).
    pub async fn get_region_by_id(
        &self,
        req: pdpb::GetRegionByIdRequest,
    ) -> Result<pdpb::GetRegionResponse, Status> {
        self.enter("GetRegionByID", req.header.as_ref()).await?;
        let r = self.inner.cluster.get_region_by_id(req.region_id);
        Ok(region_resp(self.inner.cluster_id, r, true))
    }

    /// MC-1.15.4, with the legacy parallel arrays kept aligned.
    pub async fn scan_regions(
        &self,
        req: pdpb::ScanRegionsRequest,
    ) -> Result<pdpb::ScanRegionsResponse, Status> {
        self.enter("ScanRegions", req.header.as_ref()).await?;
        let rs = self.inner.cluster.scan_regions(
            &req.start_key,
            &req.end_key,
            req.limit.max(0) as usize,
        );
        let mut resp = pdpb::ScanRegionsResponse {
            header: self.h(),
            ..Default::default()
        };
        for r in rs {
            resp.region_metas.push(r.region.clone());
            resp.leaders.push(r.leader.unwrap_or_default());
            resp.regions.push(pd_region(r, true));
        }
        Ok(resp)
    }

    /// MC-1.15.5: regions of ordered ranges without repeats, total `limit`, optional
    /// coverage check.
    pub async fn batch_scan_regions(
        &self,
        req: pdpb::BatchScanRegionsRequest,
    ) -> Result<pdpb::BatchScanRegionsResponse, Status> {
        self.enter("BatchScanRegions", req.header.as_ref()).await?;
        let limit = req.limit.max(0) as usize;
        let mut out: Vec<RegionInfo> = Vec::new();
        let mut covered_to: Option<Vec<u8>> = None; // end of the last returned region
        let mut gap = false;
        'ranges: for kr in &req.ranges {
            let mut start = kr.start_key.clone();
            if let Some(c) = &covered_to {
                if c.is_empty() {
                    break;
                }
                if !kr.end_key.is_empty() && c.as_slice() >= kr.end_key.as_slice() {
                    continue;
                }
                if c.as_slice() > start.as_slice() {
                    start = c.clone();
                }
            }
            let remaining = if limit > 0 { limit - out.len() } else { 0 };
            let rs = self
                .inner
                .cluster
                .scan_regions(&start, &kr.end_key, remaining);
            let mut expect = start.clone();
            for r in rs {
                if r.region.start_key.as_slice() > expect.as_slice() {
                    gap = true;
                }
                expect = r.region.end_key.clone();
                covered_to = Some(r.region.end_key.clone());
                out.push(r);
                if limit > 0 && out.len() >= limit {
                    break 'ranges;
                }
            }
            let reached = expect.is_empty()
                || (!kr.end_key.is_empty() && expect.as_slice() >= kr.end_key.as_slice());
            if !reached {
                gap = true;
            }
        }
        if req.contain_all_key_range && gap {
            return Ok(pdpb::BatchScanRegionsResponse {
                header: err_header(
                    self.inner.cluster_id,
                    pdpb::ErrorType::RegionsNotContainAllKeyRange,
                    "regions not contain all key range".to_owned(),
                ),
                regions: Vec::new(),
            });
        }
        Ok(pdpb::BatchScanRegionsResponse {
            header: self.h(),
            regions: out
                .into_iter()
                .map(|r| pd_region(r, req.need_buckets))
                .collect(),
        })
    }

    /// Succeeds and does nothing (MC-1.8.4).
    pub async fn scatter_region(
        &self,
        req: pdpb::ScatterRegionRequest,
    ) -> Result<pdpb::ScatterRegionResponse, Status> {
        self.enter("ScatterRegion", req.header.as_ref()).await?;
        Ok(pdpb::ScatterRegionResponse {
            header: self.h(),
            finished_percentage: 100,
            ..Default::default()
        })
    }

    /// Always `SUCCESS` (MC-1.8.4).
    pub async fn get_operator(
        &self,
        req: pdpb::GetOperatorRequest,
    ) -> Result<pdpb::GetOperatorResponse, Status> {
        self.enter("GetOperator", req.header.as_ref()).await?;
        Ok(pdpb::GetOperatorResponse {
            header: self.h(),
            region_id: req.region_id,
            status: pdpb::OperatorStatus::Success as i32,
            ..Default::default()
        })
    }

    /// Splits for real at each PD-space key (MC-1.8.4 SHOULD).
    pub async fn split_regions(
        &self,
        req: pdpb::SplitRegionsRequest,
    ) -> Result<pdpb::SplitRegionsResponse, Status> {
        self.enter("SplitRegions", req.header.as_ref()).await?;
        let ids = self.inner.cluster.split_at_keys(&req.split_keys);
        Ok(pdpb::SplitRegionsResponse {
            header: self.h(),
            finished_percentage: 100,
            regions_id: ids,
        })
    }

    /// Splits like `SplitRegions`; scattering is a no-op.
    pub async fn split_and_scatter_regions(
        &self,
        req: pdpb::SplitAndScatterRegionsRequest,
    ) -> Result<pdpb::SplitAndScatterRegionsResponse, Status> {
        self.enter("SplitAndScatterRegions", req.header.as_ref())
            .await?;
        let ids = self.inner.cluster.split_at_keys(&req.split_keys);
        Ok(pdpb::SplitAndScatterRegionsResponse {
            header: self.h(),
            split_finished_percentage: 100,
            scatter_finished_percentage: 100,
            regions_id: ids,
        })
    }

    // ----- GC (MC-1.16) -----

    fn gc(&self) -> std::sync::MutexGuard<'_, GcStates> {
        self.inner.gc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The legacy GC safe point.
    pub async fn get_gc_safe_point(
        &self,
        req: pdpb::GetGcSafePointRequest,
    ) -> Result<pdpb::GetGcSafePointResponse, Status> {
        self.enter("GetGCSafePoint", req.header.as_ref()).await?;
        Ok(pdpb::GetGcSafePointResponse {
            header: self.h(),
            safe_point: self.gc().legacy_safe_point,
        })
    }

    /// Moves the legacy safe point forward only; returns the stored value (MC-1.16.1).
    pub async fn update_gc_safe_point(
        &self,
        req: pdpb::UpdateGcSafePointRequest,
    ) -> Result<pdpb::UpdateGcSafePointResponse, Status> {
        self.enter("UpdateGCSafePoint", req.header.as_ref()).await?;
        let mut g = self.gc();
        g.legacy_safe_point = g.legacy_safe_point.max(req.safe_point);
        Ok(pdpb::UpdateGcSafePointResponse {
            header: self.h(),
            new_safe_point: g.legacy_safe_point,
        })
    }

    /// Service safe points (MC-1.16.2): ttl 0 deletes; set only when the map is empty or the
    /// value is `>=` the minimum; returns the minimum (`u64::MAX` when empty).
    pub async fn update_service_gc_safe_point(
        &self,
        req: pdpb::UpdateServiceGcSafePointRequest,
    ) -> Result<pdpb::UpdateServiceGcSafePointResponse, Status> {
        self.enter("UpdateServiceGCSafePoint", req.header.as_ref())
            .await?;
        let mut g = self.gc();
        if req.ttl <= 0 {
            g.service.remove(&req.service_id);
        } else {
            let min = g.service.values().min().copied();
            if min.is_none_or(|m| req.safe_point >= m) {
                g.service.insert(req.service_id.clone(), req.safe_point);
            }
        }
        let min = g.service.values().min().copied().unwrap_or(u64::MAX);
        Ok(pdpb::UpdateServiceGcSafePointResponse {
            header: self.h(),
            service_id: req.service_id,
            ttl: req.ttl,
            min_safe_point: min,
        })
    }

    /// MC-1.16.3: capped by the smallest barrier, never backwards.
    pub async fn advance_txn_safe_point(
        &self,
        req: pdpb::AdvanceTxnSafePointRequest,
    ) -> Result<pdpb::AdvanceTxnSafePointResponse, Status> {
        self.enter("AdvanceTxnSafePoint", req.header.as_ref())
            .await?;
        let mut g = self.gc();
        let old = g.txn_safe_point;
        if req.target < old {
            return Err(Status::unknown(format!(
                "trying to update txn safe point to a smaller value, current value: {old}, given: {}",
                req.target
            )));
        }
        let mut new = req.target;
        let mut blocker = String::new();
        if let Some((id, ts)) = g.barriers.iter().min_by_key(|(_, ts)| **ts)
            && *ts < new
        {
            new = (*ts).max(old);
            blocker = format!("BarrierID: {id:?}, BarrierTS: {ts}");
        }
        g.txn_safe_point = new;
        Ok(pdpb::AdvanceTxnSafePointResponse {
            header: self.h(),
            old_txn_safe_point: old,
            new_txn_safe_point: new,
            blocker_description: blocker,
        })
    }

    /// MC-1.16.3: cannot go back or pass the txn safe point.
    pub async fn advance_gc_safe_point(
        &self,
        req: pdpb::AdvanceGcSafePointRequest,
    ) -> Result<pdpb::AdvanceGcSafePointResponse, Status> {
        self.enter("AdvanceGCSafePoint", req.header.as_ref())
            .await?;
        let mut g = self.gc();
        let old = g.gc_safe_point;
        if req.target < old {
            return Err(Status::unknown(format!(
                "trying to update GC safe point to a smaller value, current value: {old}, given: {}",
                req.target
            )));
        }
        if req.target > g.txn_safe_point {
            return Err(Status::unknown(format!(
                "trying to update GC safe point to a too large value, txn safe point: {}, given: {}",
                g.txn_safe_point, req.target
            )));
        }
        g.gc_safe_point = req.target;
        Ok(pdpb::AdvanceGcSafePointResponse {
            header: self.h(),
            old_gc_safe_point: old,
            new_gc_safe_point: req.target,
        })
    }

    /// MC-1.16.4 argument checks, then store the barrier (never expires).
    pub async fn set_gc_barrier(
        &self,
        req: pdpb::SetGcBarrierRequest,
    ) -> Result<pdpb::SetGcBarrierResponse, Status> {
        self.enter("SetGCBarrier", req.header.as_ref()).await?;
        if req.barrier_ts == 0 || req.barrier_id.is_empty() || req.ttl_seconds <= 0 {
            return Err(Status::invalid_argument("invalid arguments"));
        }
        let mut g = self.gc();
        if req.barrier_ts < g.txn_safe_point {
            return Err(Status::unknown(format!(
                "trying to set a GC barrier on ts {} which is already behind the txn safe point {}",
                req.barrier_ts, g.txn_safe_point
            )));
        }
        g.barriers.insert(req.barrier_id.clone(), req.barrier_ts);
        Ok(pdpb::SetGcBarrierResponse {
            header: self.h(),
            new_barrier_info: Some(pdpb::GcBarrierInfo {
                barrier_id: req.barrier_id,
                barrier_ts: req.barrier_ts,
                ttl_seconds: i64::MAX,
            }),
        })
    }

    /// Removes a barrier; returns it when it existed.
    pub async fn delete_gc_barrier(
        &self,
        req: pdpb::DeleteGcBarrierRequest,
    ) -> Result<pdpb::DeleteGcBarrierResponse, Status> {
        self.enter("DeleteGCBarrier", req.header.as_ref()).await?;
        let removed = self.gc().barriers.remove(&req.barrier_id);
        Ok(pdpb::DeleteGcBarrierResponse {
            header: self.h(),
            deleted_barrier_info: removed.map(|ts| pdpb::GcBarrierInfo {
                barrier_id: req.barrier_id,
                barrier_ts: ts,
                ttl_seconds: i64::MAX,
            }),
        })
    }

    /// The null keyspace's GC state; global barriers are `Unimplemented` (MC-1.16.4).
    pub async fn get_gc_state(
        &self,
        req: pdpb::GetGcStateRequest,
    ) -> Result<pdpb::GetGcStateResponse, Status> {
        self.enter("GetGCState", req.header.as_ref()).await?;
        if req.include_global_gc_barriers {
            return Err(Status::unimplemented("global GC barriers"));
        }
        let g = self.gc();
        Ok(pdpb::GetGcStateResponse {
            header: self.h(),
            gc_state: Some(pdpb::GcState {
                keyspace_scope: req.keyspace_scope,
                is_keyspace_level_gc: false,
                txn_safe_point: g.txn_safe_point,
                gc_safe_point: g.gc_safe_point,
                gc_barriers: if req.exclude_gc_barriers {
                    Vec::new()
                } else {
                    g.barriers
                        .iter()
                        .map(|(id, ts)| pdpb::GcBarrierInfo {
                            barrier_id: id.clone(),
                            barrier_ts: *ts,
                            ttl_seconds: i64::MAX,
                        })
                        .collect()
                },
            }),
            global_gc_barriers: None,
        })
    }

    // ----- timestamps (MC-1.14.3, MC-1.14.4) -----

    /// Always 0 (mocktikv `GetMinTS`).
    pub async fn get_min_ts(
        &self,
        req: pdpb::GetMinTsRequest,
    ) -> Result<pdpb::GetMinTsResponse, Status> {
        self.enter("GetMinTS", req.header.as_ref()).await?;
        Ok(pdpb::GetMinTsResponse {
            header: self.h(),
            timestamp: Some(pdpb::Timestamp::default()),
        })
    }

    /// Fails above a fresh TSO or below the current value; equal is a no-op.
    pub async fn set_external_timestamp(
        &self,
        req: pdpb::SetExternalTimestampRequest,
    ) -> Result<pdpb::SetExternalTimestampResponse, Status> {
        self.enter("SetExternalTimestamp", req.header.as_ref())
            .await?;
        let global = self.alloc_ts(1);
        let mut cur = self
            .inner
            .external_ts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if req.timestamp > global {
            return Err(Status::unknown(
                "external timestamp is greater than global tso",
            ));
        }
        if req.timestamp < *cur {
            return Err(Status::unknown("cannot decrease the external timestamp"));
        }
        *cur = req.timestamp;
        Ok(pdpb::SetExternalTimestampResponse { header: self.h() })
    }

    /// The external timestamp (initially 0).
    pub async fn get_external_timestamp(
        &self,
        req: pdpb::GetExternalTimestampRequest,
    ) -> Result<pdpb::GetExternalTimestampResponse, Status> {
        self.enter("GetExternalTimestamp", req.header.as_ref())
            .await?;
        Ok(pdpb::GetExternalTimestampResponse {
            header: self.h(),
            timestamp: *self
                .inner
                .external_ts
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        })
    }

    /// Empty (MC-1.15.8).
    pub async fn load_global_config(
        &self,
        _req: pdpb::LoadGlobalConfigRequest,
    ) -> Result<pdpb::LoadGlobalConfigResponse, Status> {
        self.enter("LoadGlobalConfig", None).await?;
        Ok(pdpb::LoadGlobalConfigResponse::default())
    }

    /// Accepted and dropped (MC-1.15.8).
    pub async fn store_global_config(
        &self,
        _req: pdpb::StoreGlobalConfigRequest,
    ) -> Result<pdpb::StoreGlobalConfigResponse, Status> {
        self.enter("StoreGlobalConfig", None).await?;
        Ok(pdpb::StoreGlobalConfigResponse::default())
    }
}
