//! A small scriptable PD cluster: `n` members on loopback sharing one state (leader index,
//! TSO counter, TSO delay, stream breaks, members cut off from the client, the service
//! mode). Only the calls the PD client tests use are implemented; the rest answer
//! `Unimplemented`.
//!
//! Every member also serves `grpc.health.v1.Health` (`SERVING` unless cut off). A follower
//! serves a request carrying the `pd-forwarded-host` header as the leader would (it relays
//! it; the state is shared), and records the header.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use tikv::proto::metapb;
use tikv::proto::pdpb::{self, pd_server::Pd, pd_server::PdServer};
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The response stream of `Tso`.
pub(crate) type TsoStream = Pin<Box<dyn Stream<Item = Result<pdpb::TsoResponse, Status>> + Send>>;
/// The response stream of `QueryRegion` (unused).
pub(crate) type QueryRegionStream =
    Pin<Box<dyn Stream<Item = Result<pdpb::QueryRegionResponse, Status>> + Send>>;

/// State shared by every member.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) cluster_id: u64,
    pub(crate) leader: AtomicUsize,
    pub(crate) urls: Mutex<Vec<String>>,
    pub(crate) tso: Mutex<(i64, i64)>,
    pub(crate) tso_delay_ms: AtomicU64,
    pub(crate) break_next_tso: AtomicBool,
    pub(crate) tso_streams: AtomicU64,
    pub(crate) tso_requests: AtomicU64,
    pub(crate) tso_allocated: AtomicU64,
    /// Members the client cannot reach: every call, health checks included, fails
    /// `Unavailable` (a network partition between the client and that member).
    pub(crate) down: Mutex<HashSet<usize>>,
    /// Followers that answer a forwarded `GetRegion` with `REGION_NOT_FOUND`.
    pub(crate) region_not_found: Mutex<HashSet<usize>>,
    /// `(member, pd-forwarded-host)` of every forwarded request served.
    pub(crate) forwarded: Mutex<Vec<(usize, String)>>,
    /// Which member served each `GetRegion`.
    pub(crate) region_served_by: Mutex<Vec<usize>>,
    /// Health checks answered, over all members.
    pub(crate) health_checks: AtomicU64,
    /// What `GetClusterInfo` answers: `None` = `Unimplemented` (an old PD).
    pub(crate) service_mode: Mutex<Option<pdpb::ServiceMode>>,
    /// `GetClusterInfo` calls answered.
    pub(crate) cluster_info_calls: AtomicU64,
}

impl State {
    pub(crate) fn set_down(&self, member: usize, down: bool) {
        let mut d = self.down.lock().expect("down");
        if down {
            d.insert(member);
        } else {
            d.remove(&member);
        }
    }

    fn is_down(&self, member: usize) -> bool {
        self.down.lock().expect("down").contains(&member)
    }
}

pub(crate) struct FakeCluster {
    pub(crate) state: Arc<State>,
}

impl FakeCluster {
    pub(crate) async fn start(n: usize, cluster_id: u64) -> FakeCluster {
        let state = Arc::new(State {
            cluster_id,
            tso: Mutex::new((1_700_000_000_000, 0)),
            ..State::default()
        });
        let mut urls = Vec::new();
        for i in 0..n {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            urls.push(format!("http://{addr}"));
            let member = Member {
                index: i,
                state: state.clone(),
            };
            let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
            let health = HealthFace {
                index: i,
                state: state.clone(),
            };
            tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(PdServer::new(member))
                    .add_service(HealthServer::new(health))
                    .serve_with_incoming(incoming)
                    .await;
            });
        }
        *state.urls.lock().expect("urls") = urls;
        FakeCluster { state }
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.state.urls.lock().expect("urls").clone()
    }
}

struct Member {
    index: usize,
    state: Arc<State>,
}

/// `grpc.health.v1.Health` of one member.
struct HealthFace {
    index: usize,
    state: Arc<State>,
}

#[tonic::async_trait]
impl Health for HealthFace {
    async fn check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if self.state.is_down(self.index) {
            return Err(Status::unavailable("member unreachable"));
        }
        self.state.health_checks.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;
    async fn watch(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

impl Member {
    fn header(&self) -> Option<pdpb::ResponseHeader> {
        Some(pdpb::ResponseHeader {
            cluster_id: self.state.cluster_id,
            error: None,
        })
    }

    fn is_leader(&self) -> bool {
        self.state.leader.load(Ordering::SeqCst) == self.index
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.state.is_down(self.index) {
            return Err(Status::unavailable("member unreachable"));
        }
        if self.is_leader() {
            Ok(())
        } else {
            Err(Status::unavailable("not leader"))
        }
    }

    /// Like `require_leader`, but a follower serves a request forwarded to the leader.
    /// Returns whether the request was forwarded.
    fn serve_or_forward(&self, meta: &tonic::metadata::MetadataMap) -> Result<bool, Status> {
        if self.state.is_down(self.index) {
            return Err(Status::unavailable("member unreachable"));
        }
        let forwarded = meta
            .get("pd-forwarded-host")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match forwarded {
            Some(host) if !self.is_leader() => {
                self.state
                    .forwarded
                    .lock()
                    .expect("forwarded")
                    .push((self.index, host));
                Ok(true)
            }
            _ => self.require_leader().map(|()| false),
        }
    }

    fn region() -> metapb::Region {
        metapb::Region {
            id: 2,
            start_key: Vec::new(),
            end_key: Vec::new(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![metapb::Peer {
                id: 3,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

fn member(i: usize, url: &str) -> pdpb::Member {
    pdpb::Member {
        name: format!("pd{i}"),
        member_id: i as u64 + 1,
        client_urls: vec![url.to_owned()],
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Pd for Member {
    type TsoStream = TsoStream;
    type QueryRegionStream = QueryRegionStream;

    async fn get_members(
        &self,
        _r: Request<pdpb::GetMembersRequest>,
    ) -> Result<Response<pdpb::GetMembersResponse>, Status> {
        if self.state.is_down(self.index) {
            return Err(Status::unavailable("member unreachable"));
        }
        let urls = self.state.urls.lock().expect("urls").clone();
        let members: Vec<_> = urls.iter().enumerate().map(|(i, u)| member(i, u)).collect();
        let leader = members
            .get(self.state.leader.load(Ordering::SeqCst))
            .cloned();
        Ok(Response::new(pdpb::GetMembersResponse {
            header: self.header(),
            members,
            leader: leader.clone(),
            etcd_leader: leader,
            ..Default::default()
        }))
    }

    async fn tso(
        &self,
        r: Request<tonic::Streaming<pdpb::TsoRequest>>,
    ) -> Result<Response<TsoStream>, Status> {
        let forwarded = self.serve_or_forward(r.metadata())?;
        self.state.tso_streams.fetch_add(1, Ordering::SeqCst);
        let mut input = r.into_inner();
        let state = self.state.clone();
        let index = self.index;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(req)) = input.message().await {
                state.tso_requests.fetch_add(1, Ordering::SeqCst);
                let delay = state.tso_delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if state.is_down(index)
                    || (!forwarded && state.leader.load(Ordering::SeqCst) != index)
                {
                    let _ = tx.send(Err(Status::unavailable("not leader"))).await;
                    return;
                }
                if state.break_next_tso.swap(false, Ordering::SeqCst) {
                    let _ = tx.send(Err(Status::unavailable("stream broken"))).await;
                    return;
                }
                let (physical, logical) = {
                    let mut t = state.tso.lock().expect("tso");
                    t.1 += i64::from(req.count);
                    *t
                };
                state
                    .tso_allocated
                    .fetch_add(u64::from(req.count), Ordering::SeqCst);
                let resp = pdpb::TsoResponse {
                    header: Some(pdpb::ResponseHeader {
                        cluster_id: state.cluster_id,
                        error: None,
                    }),
                    count: req.count,
                    timestamp: Some(pdpb::Timestamp {
                        physical,
                        logical,
                        suffix_bits: 0,
                    }),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        let out = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_region(
        &self,
        r: Request<pdpb::GetRegionRequest>,
    ) -> Result<Response<pdpb::GetRegionResponse>, Status> {
        let forwarded = self.serve_or_forward(r.metadata())?;
        if forwarded
            && self
                .state
                .region_not_found
                .lock()
                .expect("rnf")
                .contains(&self.index)
        {
            return Ok(Response::new(pdpb::GetRegionResponse {
                header: Some(pdpb::ResponseHeader {
                    cluster_id: self.state.cluster_id,
                    error: Some(pdpb::Error {
                        r#type: pdpb::ErrorType::RegionNotFound as i32,
                        message: "region not found".into(),
                    }),
                }),
                ..Default::default()
            }));
        }
        self.state
            .region_served_by
            .lock()
            .expect("served")
            .push(self.index);
        let region = Member::region();
        Ok(Response::new(pdpb::GetRegionResponse {
            header: self.header(),
            leader: region.peers.first().cloned(),
            region: Some(region),
            ..Default::default()
        }))
    }

    async fn get_store(
        &self,
        r: Request<pdpb::GetStoreRequest>,
    ) -> Result<Response<pdpb::GetStoreResponse>, Status> {
        self.require_leader()?;
        let id = r.into_inner().store_id;
        if id != 1 {
            return Ok(Response::new(pdpb::GetStoreResponse {
                header: Some(pdpb::ResponseHeader {
                    cluster_id: self.state.cluster_id,
                    error: Some(pdpb::Error {
                        r#type: pdpb::ErrorType::Unknown as i32,
                        message: format!("invalid store ID {id}, not found"),
                    }),
                }),
                ..Default::default()
            }));
        }
        Ok(Response::new(pdpb::GetStoreResponse {
            header: self.header(),
            store: Some(metapb::Store {
                id: 1,
                address: "127.0.0.1:20160".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn get_cluster_info(
        &self,
        _r: Request<pdpb::GetClusterInfoRequest>,
    ) -> Result<Response<pdpb::GetClusterInfoResponse>, Status> {
        self.require_leader()?;
        self.state.cluster_info_calls.fetch_add(1, Ordering::SeqCst);
        match *self.state.service_mode.lock().expect("mode") {
            None => Err(Status::unimplemented("get_cluster_info")),
            Some(mode) => Ok(Response::new(pdpb::GetClusterInfoResponse {
                header: self.header(),
                service_modes: vec![mode as i32],
                ..Default::default()
            })),
        }
    }

    async fn alloc_id(
        &self,
        _r: Request<pdpb::AllocIdRequest>,
    ) -> Result<Response<pdpb::AllocIdResponse>, Status> {
        Err(Status::unimplemented("alloc_id"))
    }

    async fn get_all_stores(
        &self,
        _r: Request<pdpb::GetAllStoresRequest>,
    ) -> Result<Response<pdpb::GetAllStoresResponse>, Status> {
        Err(Status::unimplemented("get_all_stores"))
    }

    async fn get_prev_region(
        &self,
        _r: Request<pdpb::GetRegionRequest>,
    ) -> Result<Response<pdpb::GetRegionResponse>, Status> {
        Err(Status::unimplemented("get_prev_region"))
    }

    async fn get_region_by_id(
        &self,
        _r: Request<pdpb::GetRegionByIdRequest>,
    ) -> Result<Response<pdpb::GetRegionResponse>, Status> {
        Err(Status::unimplemented("get_region_by_id"))
    }

    async fn scan_regions(
        &self,
        _r: Request<pdpb::ScanRegionsRequest>,
    ) -> Result<Response<pdpb::ScanRegionsResponse>, Status> {
        Err(Status::unimplemented("scan_regions"))
    }

    async fn batch_scan_regions(
        &self,
        _r: Request<pdpb::BatchScanRegionsRequest>,
    ) -> Result<Response<pdpb::BatchScanRegionsResponse>, Status> {
        Err(Status::unimplemented("batch_scan_regions"))
    }

    async fn scatter_region(
        &self,
        _r: Request<pdpb::ScatterRegionRequest>,
    ) -> Result<Response<pdpb::ScatterRegionResponse>, Status> {
        Err(Status::unimplemented("scatter_region"))
    }

    async fn get_gc_safe_point(
        &self,
        _r: Request<pdpb::GetGcSafePointRequest>,
    ) -> Result<Response<pdpb::GetGcSafePointResponse>, Status> {
        Err(Status::unimplemented("get_gc_safe_point"))
    }

    async fn update_gc_safe_point(
        &self,
        _r: Request<pdpb::UpdateGcSafePointRequest>,
    ) -> Result<Response<pdpb::UpdateGcSafePointResponse>, Status> {
        Err(Status::unimplemented("update_gc_safe_point"))
    }

    async fn update_service_gc_safe_point(
        &self,
        _r: Request<pdpb::UpdateServiceGcSafePointRequest>,
    ) -> Result<Response<pdpb::UpdateServiceGcSafePointResponse>, Status> {
        Err(Status::unimplemented("update_service_gc_safe_point"))
    }

    async fn advance_gc_safe_point(
        &self,
        _r: Request<pdpb::AdvanceGcSafePointRequest>,
    ) -> Result<Response<pdpb::AdvanceGcSafePointResponse>, Status> {
        Err(Status::unimplemented("advance_gc_safe_point"))
    }

    async fn advance_txn_safe_point(
        &self,
        _r: Request<pdpb::AdvanceTxnSafePointRequest>,
    ) -> Result<Response<pdpb::AdvanceTxnSafePointResponse>, Status> {
        Err(Status::unimplemented("advance_txn_safe_point"))
    }

    async fn set_gc_barrier(
        &self,
        _r: Request<pdpb::SetGcBarrierRequest>,
    ) -> Result<Response<pdpb::SetGcBarrierResponse>, Status> {
        Err(Status::unimplemented("set_gc_barrier"))
    }

    async fn delete_gc_barrier(
        &self,
        _r: Request<pdpb::DeleteGcBarrierRequest>,
    ) -> Result<Response<pdpb::DeleteGcBarrierResponse>, Status> {
        Err(Status::unimplemented("delete_gc_barrier"))
    }

    async fn set_global_gc_barrier(
        &self,
        _r: Request<pdpb::SetGlobalGcBarrierRequest>,
    ) -> Result<Response<pdpb::SetGlobalGcBarrierResponse>, Status> {
        Err(Status::unimplemented("set_global_gc_barrier"))
    }

    async fn delete_global_gc_barrier(
        &self,
        _r: Request<pdpb::DeleteGlobalGcBarrierRequest>,
    ) -> Result<Response<pdpb::DeleteGlobalGcBarrierResponse>, Status> {
        Err(Status::unimplemented("delete_global_gc_barrier"))
    }

    async fn get_gc_state(
        &self,
        _r: Request<pdpb::GetGcStateRequest>,
    ) -> Result<Response<pdpb::GetGcStateResponse>, Status> {
        Err(Status::unimplemented("get_gc_state"))
    }

    async fn get_all_keyspaces_gc_states(
        &self,
        _r: Request<pdpb::GetAllKeyspacesGcStatesRequest>,
    ) -> Result<Response<pdpb::GetAllKeyspacesGcStatesResponse>, Status> {
        Err(Status::unimplemented("get_all_keyspaces_gc_states"))
    }

    async fn get_operator(
        &self,
        _r: Request<pdpb::GetOperatorRequest>,
    ) -> Result<Response<pdpb::GetOperatorResponse>, Status> {
        Err(Status::unimplemented("get_operator"))
    }

    async fn split_regions(
        &self,
        _r: Request<pdpb::SplitRegionsRequest>,
    ) -> Result<Response<pdpb::SplitRegionsResponse>, Status> {
        Err(Status::unimplemented("split_regions"))
    }

    async fn split_and_scatter_regions(
        &self,
        _r: Request<pdpb::SplitAndScatterRegionsRequest>,
    ) -> Result<Response<pdpb::SplitAndScatterRegionsResponse>, Status> {
        Err(Status::unimplemented("split_and_scatter_regions"))
    }

    async fn store_global_config(
        &self,
        _r: Request<pdpb::StoreGlobalConfigRequest>,
    ) -> Result<Response<pdpb::StoreGlobalConfigResponse>, Status> {
        Err(Status::unimplemented("store_global_config"))
    }

    async fn load_global_config(
        &self,
        _r: Request<pdpb::LoadGlobalConfigRequest>,
    ) -> Result<Response<pdpb::LoadGlobalConfigResponse>, Status> {
        Err(Status::unimplemented("load_global_config"))
    }

    async fn set_external_timestamp(
        &self,
        _r: Request<pdpb::SetExternalTimestampRequest>,
    ) -> Result<Response<pdpb::SetExternalTimestampResponse>, Status> {
        Err(Status::unimplemented("set_external_timestamp"))
    }

    async fn get_external_timestamp(
        &self,
        _r: Request<pdpb::GetExternalTimestampRequest>,
    ) -> Result<Response<pdpb::GetExternalTimestampResponse>, Status> {
        Err(Status::unimplemented("get_external_timestamp"))
    }

    async fn get_min_ts(
        &self,
        _r: Request<pdpb::GetMinTsRequest>,
    ) -> Result<Response<pdpb::GetMinTsResponse>, Status> {
        Err(Status::unimplemented("get_min_ts"))
    }

    async fn query_region(
        &self,
        _r: Request<tonic::Streaming<pdpb::QueryRegionRequest>>,
    ) -> Result<Response<QueryRegionStream>, Status> {
        Err(Status::unimplemented("query_region"))
    }
}
