//! Several PD members on loopback in front of one mock cluster's PD.
//!
//! The mock's own gRPC face is a single member (MC-1.15.7). Follower handling (PD-6) needs
//! followers, so this fixture starts `n` tonic servers that all answer from the same
//! [`MockPd`]: member 0 is the leader and serves everything; a follower answers a region
//! read only when it carries the follower-handle header, as a PD follower does
//! (`validateRoleInRequest`), and refuses everything else as "not leader". `GetMembers` is
//! answered by every member and lists all of them.
//!
//! Scripted follower failures, for follower-handled reads:
//! - a gRPC error ([`State::failing`]);
//! - an unsynced region table: `REGION_NOT_FOUND` in the header, as PD's
//!   `getRaftCluster` answers while the follower's region syncer is not running
//!   ([`State::not_synced`]);
//! - the mock's `mustLeader` switch ([`MockPd::set_must_leader`]): a read that allows a
//!   follower to answer is refused with `Unavailable`, whichever member receives it.
//!
//! Every member serves the gRPC health service (`SERVING`). Dropping [`Members`] stops the
//! servers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tikv_proto::pdpb;
use tikv_proto::pdpb::pd_server::{Pd, PdServer};
use tokio::sync::oneshot;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::super::layer::FOLLOWER_HANDLE_METADATA_KEY;
use crate::mock::grpc::BoxStream;
use crate::mock::{Mock, MockOptions, MockPd};

/// One region read a member received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Read {
    /// The member's index (0 = leader).
    pub(super) member: usize,
    /// The gRPC method, e.g. `"get_region"`.
    pub(super) method: &'static str,
    /// It carried the follower-handle header.
    pub(super) follower_handled: bool,
    /// It was answered from the region table (not refused, not `REGION_NOT_FOUND`).
    pub(super) served: bool,
}

/// What the members share: the scripted failures and the log of region reads.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Followers failing every follower-handled read with this status.
    pub(super) failing: Mutex<HashMap<usize, Status>>,
    /// Followers whose region table is not synced: `REGION_NOT_FOUND`.
    pub(super) not_synced: Mutex<HashSet<usize>>,
    /// Every region read, in arrival order.
    reads: Mutex<Vec<Read>>,
}

impl State {
    /// The region reads so far, and forgets them.
    pub(super) fn take_reads(&self) -> Vec<Read> {
        std::mem::take(&mut *self.reads.lock().expect("reads"))
    }

    fn record(&self, read: Read) {
        self.reads.lock().expect("reads").push(read);
    }
}

/// `n` PD members over one mock cluster with two regions (split at `m`).
pub(super) struct Members {
    /// The mock cluster every member answers from.
    pub(super) mock: Mock,
    /// The regions of the mock cluster, in key order.
    pub(super) regions: Vec<u64>,
    /// Scripted failures and the read log.
    pub(super) state: Arc<State>,
    urls: Vec<String>,
    _stops: Vec<oneshot::Sender<()>>,
}

impl Members {
    /// Binds `n` loopback ports and serves a member on each.
    pub(super) async fn start(n: usize) -> Members {
        let mock = Mock::new(MockOptions::default());
        let (_store, regions, _peers) = mock.cluster().bootstrap_with_multi_regions(&[b"m"]);
        let mut listeners = Vec::with_capacity(n);
        for _ in 0..n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            listeners.push(l);
        }
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().expect("addr")))
            .collect();
        let state = Arc::new(State::default());
        let shared_urls = Arc::new(urls.clone());
        let mut stops = Vec::with_capacity(n);
        for (index, listener) in listeners.into_iter().enumerate() {
            let face = MemberFace {
                index,
                urls: shared_urls.clone(),
                pd: mock.pd().clone(),
                state: state.clone(),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(PdServer::new(face))
                    .add_service(HealthServer::new(Serving))
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        }
        Members {
            mock,
            regions,
            state,
            urls,
            _stops: stops,
        }
    }

    /// The members' URLs; index 0 is the leader.
    pub(super) fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }
}

/// The health service of a member: always `SERVING`.
struct Serving;

#[tonic::async_trait]
impl Health for Serving {
    async fn check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = BoxStream<HealthCheckResponse>;
    async fn watch(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// How a member treats a region read.
enum Admit {
    /// Answer it from the mock's region table.
    Serve,
    /// Answer `REGION_NOT_FOUND` (a follower whose region table is not synced).
    NotSynced,
}

/// One member's `pdpb.PD` face.
struct MemberFace {
    index: usize,
    urls: Arc<Vec<String>>,
    pd: MockPd,
    state: Arc<State>,
}

impl MemberFace {
    fn not_leader() -> Status {
        Status::unavailable("not leader")
    }

    fn leader_only(&self) -> Result<(), Status> {
        if self.index == 0 {
            Ok(())
        } else {
            Err(MemberFace::not_leader())
        }
    }

    /// Decides how a region read is answered, and logs it.
    fn admit_region_read(&self, method: &'static str, meta: &MetadataMap) -> Result<Admit, Status> {
        let follower_handled = meta.contains_key(FOLLOWER_HANDLE_METADATA_KEY);
        let admit = self.admit(follower_handled);
        self.state.record(Read {
            member: self.index,
            method,
            follower_handled,
            served: matches!(admit, Ok(Admit::Serve)),
        });
        admit
    }

    fn admit(&self, follower_handled: bool) -> Result<Admit, Status> {
        if follower_handled {
            // The mock's `mustLeader` switch refuses reads that allow a follower to answer.
            if let Some(refused) = self.pd.refuse_follower(true) {
                return Err(refused);
            }
        }
        if self.index == 0 {
            return Ok(Admit::Serve);
        }
        if !follower_handled {
            return Err(MemberFace::not_leader());
        }
        if let Some(status) = self.state.failing.lock().expect("failing").get(&self.index) {
            return Err(status.clone());
        }
        if self
            .state
            .not_synced
            .lock()
            .expect("not synced")
            .contains(&self.index)
        {
            return Ok(Admit::NotSynced);
        }
        Ok(Admit::Serve)
    }

    fn region_not_found(&self) -> Option<pdpb::ResponseHeader> {
        Some(pdpb::ResponseHeader {
            cluster_id: self.pd.cluster_id(),
            error: Some(pdpb::Error {
                r#type: pdpb::ErrorType::RegionNotFound as i32,
                message: "region not found".into(),
            }),
        })
    }
}

fn member(index: usize, url: &str) -> pdpb::Member {
    pdpb::Member {
        name: format!("pd{index}"),
        member_id: index as u64 + 1,
        client_urls: vec![url.to_owned()],
        peer_urls: vec![url.to_owned()],
        ..Default::default()
    }
}

macro_rules! member_pd {
    (
        region { $($rm:ident: $rreq:ty => $rresp:ty;)* }
        leader { $($m:ident: $req:ty => $resp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl Pd for MemberFace {
            $(
                async fn $rm(&self, req: Request<$rreq>) -> Result<Response<$rresp>, Status> {
                    match self.admit_region_read(stringify!($rm), req.metadata())? {
                        Admit::Serve => self.pd.$rm(req.into_inner()).await.map(Response::new),
                        Admit::NotSynced => {
                            let mut resp = <$rresp>::default();
                            resp.header = self.region_not_found();
                            Ok(Response::new(resp))
                        }
                    }
                }
            )*
            $(
                async fn $m(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.leader_only()?;
                    self.pd.$m(req.into_inner()).await.map(Response::new)
                }
            )*

            async fn get_members(
                &self,
                _req: Request<pdpb::GetMembersRequest>,
            ) -> Result<Response<pdpb::GetMembersResponse>, Status> {
                let members: Vec<pdpb::Member> = self
                    .urls
                    .iter()
                    .enumerate()
                    .map(|(i, u)| member(i, u))
                    .collect();
                let leader = members.first().cloned();
                Ok(Response::new(pdpb::GetMembersResponse {
                    header: Some(pdpb::ResponseHeader {
                        cluster_id: self.pd.cluster_id(),
                        error: None,
                    }),
                    members,
                    leader: leader.clone(),
                    etcd_leader: leader,
                    ..Default::default()
                }))
            }

            type TsoStream = BoxStream<pdpb::TsoResponse>;
            async fn tso(
                &self,
                _req: Request<Streaming<pdpb::TsoRequest>>,
            ) -> Result<Response<Self::TsoStream>, Status> {
                Err(Status::unimplemented("tso"))
            }

            type QueryRegionStream = BoxStream<pdpb::QueryRegionResponse>;
            async fn query_region(
                &self,
                _req: Request<Streaming<pdpb::QueryRegionRequest>>,
            ) -> Result<Response<Self::QueryRegionStream>, Status> {
                Err(Status::unimplemented("query_region"))
            }

            async fn set_global_gc_barrier(
                &self,
                _req: Request<pdpb::SetGlobalGcBarrierRequest>,
            ) -> Result<Response<pdpb::SetGlobalGcBarrierResponse>, Status> {
                Err(Status::unimplemented("set_global_gc_barrier"))
            }

            async fn delete_global_gc_barrier(
                &self,
                _req: Request<pdpb::DeleteGlobalGcBarrierRequest>,
            ) -> Result<Response<pdpb::DeleteGlobalGcBarrierResponse>, Status> {
                Err(Status::unimplemented("delete_global_gc_barrier"))
            }

            async fn get_all_keyspaces_gc_states(
                &self,
                _req: Request<pdpb::GetAllKeyspacesGcStatesRequest>,
            ) -> Result<Response<pdpb::GetAllKeyspacesGcStatesResponse>, Status> {
                Err(Status::unimplemented("get_all_keyspaces_gc_states"))
            }
        }
    };
}

member_pd! {
    region {
        get_region: pdpb::GetRegionRequest => pdpb::GetRegionResponse;
        get_prev_region: pdpb::GetRegionRequest => pdpb::GetRegionResponse;
        get_region_by_id: pdpb::GetRegionByIdRequest => pdpb::GetRegionResponse;
        scan_regions: pdpb::ScanRegionsRequest => pdpb::ScanRegionsResponse;
        batch_scan_regions: pdpb::BatchScanRegionsRequest => pdpb::BatchScanRegionsResponse;
    }
    leader {
        get_cluster_info: pdpb::GetClusterInfoRequest => pdpb::GetClusterInfoResponse;
        alloc_id: pdpb::AllocIdRequest => pdpb::AllocIdResponse;
        get_store: pdpb::GetStoreRequest => pdpb::GetStoreResponse;
        get_all_stores: pdpb::GetAllStoresRequest => pdpb::GetAllStoresResponse;
        scatter_region: pdpb::ScatterRegionRequest => pdpb::ScatterRegionResponse;
        get_gc_safe_point: pdpb::GetGcSafePointRequest => pdpb::GetGcSafePointResponse;
        update_gc_safe_point: pdpb::UpdateGcSafePointRequest => pdpb::UpdateGcSafePointResponse;
        update_service_gc_safe_point: pdpb::UpdateServiceGcSafePointRequest => pdpb::UpdateServiceGcSafePointResponse;
        advance_gc_safe_point: pdpb::AdvanceGcSafePointRequest => pdpb::AdvanceGcSafePointResponse;
        advance_txn_safe_point: pdpb::AdvanceTxnSafePointRequest => pdpb::AdvanceTxnSafePointResponse;
        set_gc_barrier: pdpb::SetGcBarrierRequest => pdpb::SetGcBarrierResponse;
        delete_gc_barrier: pdpb::DeleteGcBarrierRequest => pdpb::DeleteGcBarrierResponse;
        get_gc_state: pdpb::GetGcStateRequest => pdpb::GetGcStateResponse;
        get_operator: pdpb::GetOperatorRequest => pdpb::GetOperatorResponse;
        split_regions: pdpb::SplitRegionsRequest => pdpb::SplitRegionsResponse;
        split_and_scatter_regions: pdpb::SplitAndScatterRegionsRequest => pdpb::SplitAndScatterRegionsResponse;
        store_global_config: pdpb::StoreGlobalConfigRequest => pdpb::StoreGlobalConfigResponse;
        load_global_config: pdpb::LoadGlobalConfigRequest => pdpb::LoadGlobalConfigResponse;
        set_external_timestamp: pdpb::SetExternalTimestampRequest => pdpb::SetExternalTimestampResponse;
        get_external_timestamp: pdpb::GetExternalTimestampRequest => pdpb::GetExternalTimestampResponse;
        get_min_ts: pdpb::GetMinTsRequest => pdpb::GetMinTsResponse;
    }
}
