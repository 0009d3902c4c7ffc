//! Several PD members on loopback in front of one mock cluster's PD.
//!
//! The mock's own gRPC face is a single member (MC-1.15.7). Leader changes, forwarding
//! (PD-5) and follower handling (PD-6) need several members, and malformed replies need a
//! server whose answers a test can script, so this fixture starts `n` tonic servers that
//! all answer from the same [`MockPd`]:
//!
//! - The leader ([`State::leader`], member 0 at start) serves everything. `GetMembers` is
//!   answered by every member, lists all of them and names the current leader.
//! - A follower answers a region read only when it carries the follower-handle header, as
//!   a PD follower does (`validateRoleInRequest`), and serves any call carrying the
//!   forwarding header as the leader would (it relays it; the state is shared). Everything
//!   else it refuses as "not leader" (`Unavailable`).
//! - `Tso` streams: the leader (or a relaying follower) answers each request from the
//!   mock's TSO. A stream on a member that lost the leadership ends with "not leader" at
//!   its next request. PD rules on `"Tso"` apply to every request (an error ends the
//!   stream), PD rules on `"TsoOpen"` to the creation of a stream (refuse it, hang it).
//! - `Keyspace/LoadKeyspace` is a leader call like the others.
//! - Every member serves the gRPC health service: `SERVING` unless listed in
//!   [`State::unhealthy`].
//!
//! Scripting, besides the mock's PD rules (which every call passes through, `GetMembers`
//! included):
//! - [`State::rewrite`]: rewrite every answer of one method before it is sent (header
//!   errors, foreign cluster ids, missing fields, nonsense timestamps);
//! - follower failures for follower-handled reads: a gRPC error ([`State::failing`]), an
//!   unsynced region table answering `REGION_NOT_FOUND` in the header, as PD's
//!   `getRaftCluster` does while the follower's region syncer is not running
//!   ([`State::not_synced`]; forwarded region reads get it too), and the mock's
//!   `mustLeader` switch ([`MockPd::set_must_leader`]): a read that allows a follower to
//!   answer is refused with `Unavailable`, whichever member receives it;
//! - [`State::close_tso_stream`]: the next TSO request ends its stream cleanly (EOF).
//!
//! Every call is logged ([`State::calls`], region reads also in [`State::take_reads`]), and a
//! test can wait for the log to satisfy a condition ([`State::wait_for`]) instead of
//! sleeping. Dropping [`Members`] stops the servers.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tikv_proto::keyspacepb;
use tikv_proto::keyspacepb::keyspace_server::{Keyspace, KeyspaceServer};
use tikv_proto::pdpb;
use tikv_proto::pdpb::pd_server::{Pd, PdServer};
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::super::layer::{FOLLOWER_HANDLE_METADATA_KEY, FORWARD_METADATA_KEY};
use super::super::{PdClient, PdClientOptions};
use crate::mock::grpc::{BoxStream, chan_stream};
use crate::mock::{Mock, MockOptions, MockPd};

/// Client options for tests against [`Members`]: a 2 s timeout, one init round, and no
/// health probe or service-mode check while a test runs.
pub(super) fn quiet_opts() -> PdClientOptions {
    PdClientOptions {
        timeout: Duration::from_secs(2),
        max_init_retries: 1,
        health_check_interval: Duration::from_secs(3600),
        service_mode_interval: Duration::from_secs(3600),
        ..PdClientOptions::default()
    }
}

/// Runs `fut` with an upper bound so a hang fails the test instead of blocking CI.
pub(super) async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("operation hung")
}

/// A client of `m` with `opts`; the calls its creation made are forgotten.
pub(super) async fn connect_with(m: &Members, opts: PdClientOptions) -> PdClient {
    let client = bounded(PdClient::connect(&m.urls(), opts))
        .await
        .expect("connect");
    m.state.clear();
    client
}

/// A client of `m` with [`quiet_opts`]; the calls its creation made are forgotten.
pub(super) async fn connect(m: &Members) -> PdClient {
    connect_with(m, quiet_opts()).await
}

/// One region read a member received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Read {
    /// The member's index (0 = the first leader).
    pub(super) member: usize,
    /// The gRPC method, e.g. `"get_region"`.
    pub(super) method: &'static str,
    /// It carried the follower-handle header.
    pub(super) follower_handled: bool,
    /// It was answered from the region table (not refused, not `REGION_NOT_FOUND`).
    pub(super) served: bool,
}

/// One call a member received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Call {
    /// The member's index.
    pub(super) member: usize,
    /// The gRPC method in snake case (`"get_store"`, `"get_members"`, `"load_keyspace"`),
    /// `"tso"` for a TSO stream being opened, `"tso_request"` for one request on it, and
    /// `"health"` for a health probe.
    pub(super) method: &'static str,
    /// It carried the forwarding header (PD-5).
    pub(super) forwarded: bool,
    /// The member took it (as leader, relay or follower-handled read); false when refused
    /// as "not leader" or, for a probe, answered `NOT_SERVING`.
    pub(super) admitted: bool,
}

/// A response rewrite: the member index and the response, as `Any`.
type Rewrite = Arc<dyn Fn(usize, &mut dyn Any) + Send + Sync>;

/// What the members share: the leader, the scripts and the call logs.
#[derive(Default)]
pub(super) struct State {
    /// The index of the leader member.
    pub(super) leader: AtomicUsize,
    /// Followers failing every follower-handled read with this status.
    pub(super) failing: Mutex<HashMap<usize, Status>>,
    /// Followers whose region table is not synced: `REGION_NOT_FOUND`.
    pub(super) not_synced: Mutex<HashSet<usize>>,
    /// Members whose health service answers `NOT_SERVING`.
    pub(super) unhealthy: Mutex<HashSet<usize>>,
    /// The next TSO request ends its stream without an answer (a clean end of stream).
    pub(super) close_tso_stream: AtomicBool,
    rewrites: Mutex<HashMap<&'static str, Rewrite>>,
    reads: Mutex<Vec<Read>>,
    calls: Mutex<Vec<Call>>,
    tso_counts: Mutex<Vec<u32>>,
    tso_replies: Mutex<Vec<pdpb::TsoResponse>>,
    changed: Notify,
}

impl State {
    /// The region reads so far, and forgets them.
    pub(super) fn take_reads(&self) -> Vec<Read> {
        std::mem::take(&mut *self.reads.lock().expect("reads"))
    }

    /// The calls of `method` so far, in arrival order.
    pub(super) fn calls(&self, method: &str) -> Vec<Call> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|c| c.method == method)
            .copied()
            .collect()
    }

    /// The members that received calls of `method`, in arrival order.
    pub(super) fn members_called(&self, method: &str) -> Vec<usize> {
        self.calls(method).iter().map(|c| c.member).collect()
    }

    /// Forgets the call log, the TSO counts and replies, and the region reads.
    pub(super) fn clear(&self) {
        self.calls.lock().expect("calls").clear();
        self.tso_counts.lock().expect("counts").clear();
        self.tso_replies.lock().expect("replies").clear();
        self.reads.lock().expect("reads").clear();
    }

    /// The `count` of every TSO request answered or refused so far, in order.
    pub(super) fn tso_counts(&self) -> Vec<u32> {
        self.tso_counts.lock().expect("counts").clone()
    }

    /// Every TSO reply sent so far (after rewriting), in order.
    pub(super) fn tso_replies(&self) -> Vec<pdpb::TsoResponse> {
        self.tso_replies.lock().expect("replies").clone()
    }

    /// Rewrites every answer of `method` (the snake-case name of [`Call::method`]; `"tso"`
    /// for each TSO reply) with `f(member, &mut response)` before it is sent, until
    /// [`clear_rewrite`](Self::clear_rewrite). `T` must be the method's response type.
    pub(super) fn rewrite<T: Any>(
        &self,
        method: &'static str,
        f: impl Fn(usize, &mut T) + Send + Sync + 'static,
    ) {
        let f: Rewrite = Arc::new(move |member, resp: &mut dyn Any| {
            let resp = resp
                .downcast_mut::<T>()
                .unwrap_or_else(|| panic!("rewrite of {method}: wrong response type"));
            f(member, resp);
        });
        self.rewrites.lock().expect("rewrites").insert(method, f);
    }

    /// Stops rewriting answers of `method`.
    pub(super) fn clear_rewrite(&self, method: &str) {
        self.rewrites.lock().expect("rewrites").remove(method);
    }

    /// Waits (bounded) until the call log satisfies `pred`.
    pub(super) async fn wait_for(&self, what: &str, pred: impl Fn(&[Call]) -> bool) {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if pred(&self.calls.lock().expect("calls")) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}");
        }
    }

    fn apply<T: Any>(&self, method: &str, member: usize, resp: &mut T) {
        let f = self.rewrites.lock().expect("rewrites").get(method).cloned();
        if let Some(f) = f {
            f(member, resp);
        }
    }

    fn record(&self, read: Read) {
        self.reads.lock().expect("reads").push(read);
    }

    fn record_call(&self, call: Call) {
        self.calls.lock().expect("calls").push(call);
        self.changed.notify_waiters();
    }
}

/// `n` PD members over one mock cluster with two regions (split at `m`).
pub(super) struct Members {
    /// The mock cluster every member answers from.
    pub(super) mock: Mock,
    /// The regions of the mock cluster, in key order.
    pub(super) regions: Vec<u64>,
    /// The leader, the scripts and the call logs.
    pub(super) state: Arc<State>,
    urls: Vec<String>,
    _stops: Vec<oneshot::Sender<()>>,
}

impl Members {
    /// Binds `n` loopback ports and serves a member on each, over a default mock.
    pub(super) async fn start(n: usize) -> Members {
        Members::start_with(n, MockOptions::default()).await
    }

    /// Like [`start`](Self::start), over a mock built with `opts` (e.g. another cluster id).
    pub(super) async fn start_with(n: usize, opts: MockOptions) -> Members {
        let mock = Mock::new(opts);
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
            let health = HealthFace {
                index,
                state: state.clone(),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(PdServer::new(face.clone()))
                    .add_service(KeyspaceServer::new(face))
                    .add_service(HealthServer::new(health))
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

    /// The members' URLs, by index.
    pub(super) fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// The mock's PD.
    pub(super) fn pd(&self) -> &MockPd {
        self.mock.pd()
    }
}

/// The health service of a member: `SERVING` unless listed in [`State::unhealthy`].
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
        let serving = !self
            .state
            .unhealthy
            .lock()
            .expect("unhealthy")
            .contains(&self.index);
        self.state.record_call(Call {
            member: self.index,
            method: "health",
            forwarded: false,
            admitted: serving,
        });
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
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

/// One member's `pdpb.PD` and `keyspacepb.Keyspace` faces.
#[derive(Clone)]
struct MemberFace {
    index: usize,
    urls: Arc<Vec<String>>,
    pd: MockPd,
    state: Arc<State>,
}

fn not_leader() -> Status {
    Status::unavailable("not leader")
}

fn is_forwarded(meta: &MetadataMap) -> bool {
    meta.contains_key(FORWARD_METADATA_KEY)
}

impl MemberFace {
    fn is_leader(&self) -> bool {
        self.state.leader.load(Ordering::SeqCst) == self.index
    }

    /// Admits a call only the leader serves: on the leader, or relayed by a follower (the
    /// forwarding header). Logs it.
    fn admit_leader_call(&self, method: &'static str, meta: &MetadataMap) -> Result<(), Status> {
        let forwarded = is_forwarded(meta);
        let admitted = self.is_leader() || forwarded;
        self.state.record_call(Call {
            member: self.index,
            method,
            forwarded,
            admitted,
        });
        if admitted { Ok(()) } else { Err(not_leader()) }
    }

    /// Decides how a region read is answered, and logs it.
    fn admit_region_read(&self, method: &'static str, meta: &MetadataMap) -> Result<Admit, Status> {
        let follower_handled = meta.contains_key(FOLLOWER_HANDLE_METADATA_KEY);
        let forwarded = is_forwarded(meta);
        let admit = self.admit(follower_handled, forwarded);
        self.state.record(Read {
            member: self.index,
            method,
            follower_handled,
            served: matches!(admit, Ok(Admit::Serve)),
        });
        self.state.record_call(Call {
            member: self.index,
            method,
            forwarded,
            admitted: admit.is_ok(),
        });
        admit
    }

    fn admit(&self, follower_handled: bool, forwarded: bool) -> Result<Admit, Status> {
        if follower_handled {
            // The mock's `mustLeader` switch refuses reads that allow a follower to answer.
            if let Some(refused) = self.pd.refuse_follower(true) {
                return Err(refused);
            }
        }
        if self.is_leader() {
            return Ok(Admit::Serve);
        }
        if !follower_handled && !forwarded {
            return Err(not_leader());
        }
        if follower_handled
            && let Some(status) = self.state.failing.lock().expect("failing").get(&self.index)
        {
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

/// The server half of one TSO stream on member `index`.
async fn serve_tso(
    index: usize,
    forwarded: bool,
    pd: MockPd,
    state: Arc<State>,
    mut input: Streaming<pdpb::TsoRequest>,
    tx: mpsc::Sender<Result<pdpb::TsoResponse, Status>>,
) {
    while let Ok(Some(req)) = input.message().await {
        let admitted = forwarded || state.leader.load(Ordering::SeqCst) == index;
        state.tso_counts.lock().expect("counts").push(req.count);
        state.record_call(Call {
            member: index,
            method: "tso_request",
            forwarded,
            admitted,
        });
        if !admitted {
            let _ = tx.send(Err(not_leader())).await;
            return;
        }
        if state.close_tso_stream.swap(false, Ordering::SeqCst) {
            return;
        }
        match pd.tso(req).await {
            Ok(mut resp) => {
                state.apply("tso", index, &mut resp);
                state
                    .tso_replies
                    .lock()
                    .expect("replies")
                    .push(resp.clone());
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        }
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
                        Admit::Serve => {
                            let mut resp = self.pd.$rm(req.into_inner()).await?;
                            self.state.apply(stringify!($rm), self.index, &mut resp);
                            Ok(Response::new(resp))
                        }
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
                    self.admit_leader_call(stringify!($m), req.metadata())?;
                    let mut resp = self.pd.$m(req.into_inner()).await?;
                    self.state.apply(stringify!($m), self.index, &mut resp);
                    Ok(Response::new(resp))
                }
            )*

            async fn get_members(
                &self,
                req: Request<pdpb::GetMembersRequest>,
            ) -> Result<Response<pdpb::GetMembersResponse>, Status> {
                self.state.record_call(Call {
                    member: self.index,
                    method: "get_members",
                    forwarded: false,
                    admitted: true,
                });
                self.pd.enter("GetMembers", req.get_ref().header.as_ref()).await?;
                let members: Vec<pdpb::Member> = self
                    .urls
                    .iter()
                    .enumerate()
                    .map(|(i, u)| member(i, u))
                    .collect();
                let leader = members.get(self.state.leader.load(Ordering::SeqCst)).cloned();
                let mut resp = pdpb::GetMembersResponse {
                    header: Some(pdpb::ResponseHeader {
                        cluster_id: self.pd.cluster_id(),
                        error: None,
                    }),
                    members,
                    leader: leader.clone(),
                    etcd_leader: leader,
                    ..Default::default()
                };
                self.state.apply("get_members", self.index, &mut resp);
                Ok(Response::new(resp))
            }

            type TsoStream = BoxStream<pdpb::TsoResponse>;
            async fn tso(
                &self,
                req: Request<Streaming<pdpb::TsoRequest>>,
            ) -> Result<Response<Self::TsoStream>, Status> {
                self.admit_leader_call("tso", req.metadata())?;
                self.pd.enter("TsoOpen", None).await?;
                let forwarded = is_forwarded(req.metadata());
                let (tx, rx) = mpsc::channel(64);
                tokio::spawn(serve_tso(
                    self.index,
                    forwarded,
                    self.pd.clone(),
                    self.state.clone(),
                    req.into_inner(),
                    tx,
                ));
                Ok(Response::new(chan_stream(rx)))
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

#[tonic::async_trait]
impl Keyspace for MemberFace {
    async fn load_keyspace(
        &self,
        req: Request<keyspacepb::LoadKeyspaceRequest>,
    ) -> Result<Response<keyspacepb::LoadKeyspaceResponse>, Status> {
        self.admit_leader_call("load_keyspace", req.metadata())?;
        let mut resp = self.pd.load_keyspace(req.into_inner()).await?;
        self.state.apply("load_keyspace", self.index, &mut resp);
        Ok(Response::new(resp))
    }

    async fn load_keyspace_by_id(
        &self,
        _req: Request<keyspacepb::LoadKeyspaceByIdRequest>,
    ) -> Result<Response<keyspacepb::LoadKeyspaceResponse>, Status> {
        Err(Status::unimplemented("load_keyspace_by_id"))
    }

    type WatchKeyspacesStream = BoxStream<keyspacepb::WatchKeyspacesResponse>;
    async fn watch_keyspaces(
        &self,
        _req: Request<keyspacepb::WatchKeyspacesRequest>,
    ) -> Result<Response<Self::WatchKeyspacesStream>, Status> {
        Err(Status::unimplemented("watch_keyspaces"))
    }

    async fn update_keyspace_state(
        &self,
        _req: Request<keyspacepb::UpdateKeyspaceStateRequest>,
    ) -> Result<Response<keyspacepb::UpdateKeyspaceStateResponse>, Status> {
        Err(Status::unimplemented("update_keyspace_state"))
    }

    async fn get_all_keyspaces(
        &self,
        _req: Request<keyspacepb::GetAllKeyspacesRequest>,
    ) -> Result<Response<keyspacepb::GetAllKeyspacesResponse>, Status> {
        Err(Status::unimplemented("get_all_keyspaces"))
    }
}
