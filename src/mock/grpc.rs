//! The gRPC faces (spec MC-2.29): a tonic PD server and one TiKV server per store address on
//! 127.0.0.1, both thin adapters over the engine the in-process face uses.
//!
//! Listeners belong to addresses, not stores (MC-2.29.4): a listener serves whichever store
//! owns its address at request time. Store changes in the [`Cluster`](super::Cluster) run a
//! hook that opens and closes listeners synchronously, so `stop_store` closes the port before
//! it returns and `start_store` binds the same `host:port` again. Open `BatchCommands` streams
//! of a stopped address end with `Unavailable`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tikv_layers::{Command, CommandResponse, Error, ErrorDetail};
use tikv_proto::keyspacepb::keyspace_server::{Keyspace, KeyspaceServer};
use tikv_proto::pdpb::pd_server::{Pd, PdServer};
use tikv_proto::tikvpb::tikv_server::{Tikv, TikvServer};
use tikv_proto::{coprocessor, keyspacepb, kvrpcpb, metapb, mpp, pdpb, tikvpb};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::service::Mock;

/// A boxed response stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// An mpsc receiver as a stream.
pub(crate) struct ChanStream<T>(mpsc::Receiver<Result<T, Status>>);

impl<T> Stream for ChanStream<T> {
    type Item = Result<T, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

pub(crate) fn chan_stream<T: Send + 'static>(
    rx: mpsc::Receiver<Result<T, Status>>,
) -> BoxStream<T> {
    Box::pin(ChanStream(rx))
}

/// Maps an in-process transport error to its gRPC status (MC-2.1.2).
pub fn to_status(e: Error) -> Status {
    match e.into_detail() {
        ErrorDetail::Grpc(s) => *s,
        ErrorDetail::Transport { message, .. } => Status::unavailable(message),
        ErrorDetail::AttemptTimeout { .. } => Status::deadline_exceeded("deadline exceeded"),
        ErrorDetail::Canceled => Status::cancelled("context canceled"),
        ErrorDetail::ResultUndetermined => Status::unknown("result undetermined"),
        other => Status::unknown(other.to_string()),
    }
}

/// A listener whose socket can be closed from outside, so the port frees at once.
struct Incoming {
    slot: Arc<Mutex<Option<TcpListener>>>,
}

impl Stream for Incoming {
    type Item = std::io::Result<TcpStream>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let g = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            None => Poll::Ready(None),
            Some(l) => match l.poll_accept(cx) {
                Poll::Ready(Ok((s, _))) => {
                    let _ = s.set_nodelay(true);
                    Poll::Ready(Some(Ok(s)))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

pub(crate) struct Running {
    slot: Arc<Mutex<Option<TcpListener>>>,
    stop: watch::Sender<bool>,
}

impl Running {
    pub(crate) fn stop(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.stop.send(true);
    }
}

pub(crate) fn bind(
    handle: &tokio::runtime::Handle,
    addr: &str,
) -> std::io::Result<(TcpListener, String)> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let local = l.local_addr()?.to_string();
    let _g = handle.enter();
    Ok((TcpListener::from_std(l)?, local))
}

// ===== TiKV face =====

/// The TiKV gRPC service of one listening address (MC-2.29.1 - 2.29.3).
#[derive(Clone)]
struct TikvFace {
    mock: Mock,
    addr: String,
    stopped: watch::Receiver<bool>,
    meta: MetaSlot,
}

impl TikvFace {
    fn check_meta(&self, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        check_meta(&self.meta, md)
    }
}

/// A metadata checker run before every call and stream (MC-2.29.5); its error fails the call.
pub type MetaChecker =
    Arc<dyn Fn(&tonic::metadata::MetadataMap) -> Result<(), Status> + Send + Sync>;

/// Where a server keeps its optional [`MetaChecker`].
pub(crate) type MetaSlot = Arc<Mutex<Option<MetaChecker>>>;

pub(crate) fn check_meta(slot: &MetaSlot, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
    let f = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match f {
        Some(f) => f(md),
        None => Ok(()),
    }
}

fn forwarded<T>(req: &Request<T>, own: &str) -> String {
    req.metadata()
        .get("tikv-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| own.to_owned(), str::to_owned)
}

/// Calls `$mac! { $args.. unary { .. } unimpl { .. } rest { .. } }` with every unary
/// `tikvpb.Tikv` method the engine serves and the ones no mock serves, so the engine face and
/// the bare server share one list.
macro_rules! with_tikv_methods {
    ($mac:ident { $($args:tt)* } rest { $($rest:tt)* }) => {
        $mac! {
            $($args)*
            unary {
                kv_get: kvrpcpb::GetRequest => Get => kvrpcpb::GetResponse;
                kv_scan: kvrpcpb::ScanRequest => Scan => kvrpcpb::ScanResponse;
                kv_prewrite: kvrpcpb::PrewriteRequest => Prewrite => kvrpcpb::PrewriteResponse;
                kv_pessimistic_lock: kvrpcpb::PessimisticLockRequest => PessimisticLock => kvrpcpb::PessimisticLockResponse;
                kv_pessimistic_rollback: kvrpcpb::PessimisticRollbackRequest => PessimisticRollback => kvrpcpb::PessimisticRollbackResponse;
                kv_txn_heart_beat: kvrpcpb::TxnHeartBeatRequest => TxnHeartBeat => kvrpcpb::TxnHeartBeatResponse;
                kv_check_txn_status: kvrpcpb::CheckTxnStatusRequest => CheckTxnStatus => kvrpcpb::CheckTxnStatusResponse;
                kv_check_secondary_locks: kvrpcpb::CheckSecondaryLocksRequest => CheckSecondaryLocks => kvrpcpb::CheckSecondaryLocksResponse;
                kv_commit: kvrpcpb::CommitRequest => Commit => kvrpcpb::CommitResponse;
                kv_cleanup: kvrpcpb::CleanupRequest => Cleanup => kvrpcpb::CleanupResponse;
                kv_batch_get: kvrpcpb::BatchGetRequest => BatchGet => kvrpcpb::BatchGetResponse;
                kv_batch_rollback: kvrpcpb::BatchRollbackRequest => BatchRollback => kvrpcpb::BatchRollbackResponse;
                kv_scan_lock: kvrpcpb::ScanLockRequest => ScanLock => kvrpcpb::ScanLockResponse;
                kv_resolve_lock: kvrpcpb::ResolveLockRequest => ResolveLock => kvrpcpb::ResolveLockResponse;
                kv_delete_range: kvrpcpb::DeleteRangeRequest => DeleteRange => kvrpcpb::DeleteRangeResponse;
                kv_prepare_flashback_to_version: kvrpcpb::PrepareFlashbackToVersionRequest => PrepareFlashbackToVersion => kvrpcpb::PrepareFlashbackToVersionResponse;
                kv_flashback_to_version: kvrpcpb::FlashbackToVersionRequest => FlashbackToVersion => kvrpcpb::FlashbackToVersionResponse;
                kv_flush: kvrpcpb::FlushRequest => Flush => kvrpcpb::FlushResponse;
                kv_buffer_batch_get: kvrpcpb::BufferBatchGetRequest => BufferBatchGet => kvrpcpb::BufferBatchGetResponse;
                raw_get: kvrpcpb::RawGetRequest => RawGet => kvrpcpb::RawGetResponse;
                raw_batch_get: kvrpcpb::RawBatchGetRequest => RawBatchGet => kvrpcpb::RawBatchGetResponse;
                raw_put: kvrpcpb::RawPutRequest => RawPut => kvrpcpb::RawPutResponse;
                raw_batch_put: kvrpcpb::RawBatchPutRequest => RawBatchPut => kvrpcpb::RawBatchPutResponse;
                raw_delete: kvrpcpb::RawDeleteRequest => RawDelete => kvrpcpb::RawDeleteResponse;
                raw_batch_delete: kvrpcpb::RawBatchDeleteRequest => RawBatchDelete => kvrpcpb::RawBatchDeleteResponse;
                raw_scan: kvrpcpb::RawScanRequest => RawScan => kvrpcpb::RawScanResponse;
                raw_delete_range: kvrpcpb::RawDeleteRangeRequest => RawDeleteRange => kvrpcpb::RawDeleteRangeResponse;
                raw_get_key_ttl: kvrpcpb::RawGetKeyTtlRequest => RawGetKeyTTL => kvrpcpb::RawGetKeyTtlResponse;
                raw_compare_and_swap: kvrpcpb::RawCasRequest => RawCompareAndSwap => kvrpcpb::RawCasResponse;
                raw_checksum: kvrpcpb::RawChecksumRequest => RawChecksum => kvrpcpb::RawChecksumResponse;
                unsafe_destroy_range: kvrpcpb::UnsafeDestroyRangeRequest => UnsafeDestroyRange => kvrpcpb::UnsafeDestroyRangeResponse;
                coprocessor: coprocessor::Request => Cop => coprocessor::Response;
                split_region: kvrpcpb::SplitRegionRequest => SplitRegion => kvrpcpb::SplitRegionResponse;
                mvcc_get_by_key: kvrpcpb::MvccGetByKeyRequest => MvccGetByKey => kvrpcpb::MvccGetByKeyResponse;
                mvcc_get_by_start_ts: kvrpcpb::MvccGetByStartTsRequest => MvccGetByStartTs => kvrpcpb::MvccGetByStartTsResponse;
                get_store_safe_ts: kvrpcpb::StoreSafeTsRequest => StoreSafeTS => kvrpcpb::StoreSafeTsResponse;
                get_lock_wait_info: kvrpcpb::GetLockWaitInfoRequest => LockWaitInfo => kvrpcpb::GetLockWaitInfoResponse;
                get_health_feedback: kvrpcpb::GetHealthFeedbackRequest => GetHealthFeedback => kvrpcpb::GetHealthFeedbackResponse;
                broadcast_txn_status: kvrpcpb::BroadcastTxnStatusRequest => BroadcastTxnStatus => kvrpcpb::BroadcastTxnStatusResponse;
            }
            unimpl {
                dispatch_mpp_task: mpp::DispatchTaskRequest => mpp::DispatchTaskResponse;
                cancel_mpp_task: mpp::CancelTaskRequest => mpp::CancelTaskResponse;
                is_alive: mpp::IsAliveRequest => mpp::IsAliveResponse;
                compact: kvrpcpb::CompactRequest => kvrpcpb::CompactResponse;
                get_ti_flash_system_table: kvrpcpb::TiFlashSystemTableRequest => kvrpcpb::TiFlashSystemTableResponse;
            }
            rest { $($rest)* }
        }
    };
}

pub(crate) use with_tikv_methods;

macro_rules! face_impl {
    (
        $tr:ident for $ty:ident;
        unary { $($m:ident: $req:ty => $v:ident => $resp:ty;)* }
        unimpl { $($um:ident: $ureq:ty => $uresp:ty;)* }
        rest { $($rest:tt)* }
    ) => {
        #[tonic::async_trait]
        impl $tr for $ty {
            $(
                async fn $m(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.check_meta(req.metadata())?;
                    let addr = forwarded(&req, &self.addr);
                    let deadline = grpc_deadline(&req);
                    // Like a real server, the request runs to completion even when the
                    // client goes away (e.g. its own grpc-timeout timer fires first): run it
                    // on its own task so dropping the handler does not abandon it.
                    let mock = self.mock.clone();
                    let cmd = Command::$v(req.into_inner());
                    let run = tokio::spawn(async move { mock.dispatch(&addr, cmd, deadline).await });
                    let done = run
                        .await
                        .map_err(|e| Status::internal(format!("mock handler failed: {e}")))?;
                    match done {
                        Ok(CommandResponse::$v(r)) => Ok(Response::new(r)),
                        Ok(_) => Err(Status::internal("mismatched response")),
                        Err(e) => Err(to_status(e)),
                    }
                }
            )*
            $(
                async fn $um(&self, req: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    self.check_meta(req.metadata())?;
                    Err(Status::unimplemented(stringify!($um)))
                }
            )*
            $($rest)*
        }
    };
}

with_tikv_methods! {
    face_impl { Tikv for TikvFace; }
    rest {
    type CoprocessorStreamStream = BoxStream<coprocessor::Response>;
    async fn coprocessor_stream(
        &self,
        req: Request<coprocessor::Request>,
    ) -> Result<Response<Self::CoprocessorStreamStream>, Status> {
        self.check_meta(req.metadata())?;
        Err(Status::unimplemented("coprocessor_stream"))
    }

    type BatchCoprocessorStream = BoxStream<coprocessor::BatchResponse>;
    async fn batch_coprocessor(
        &self,
        req: Request<coprocessor::BatchRequest>,
    ) -> Result<Response<Self::BatchCoprocessorStream>, Status> {
        self.check_meta(req.metadata())?;
        Err(Status::unimplemented("batch_coprocessor"))
    }

    type EstablishMPPConnectionStream = BoxStream<mpp::MppDataPacket>;
    async fn establish_mpp_connection(
        &self,
        req: Request<mpp::EstablishMppConnectionRequest>,
    ) -> Result<Response<Self::EstablishMPPConnectionStream>, Status> {
        self.check_meta(req.metadata())?;
        Err(Status::unimplemented("establish_mpp_connection"))
    }

    type BatchCommandsStream = BoxStream<tikvpb::BatchCommandsResponse>;
    /// MC-2.29.3: each sub-request runs concurrently and is answered with its id; a
    /// sub-request that fails at the transport level ends the whole stream with its status.
    async fn batch_commands(
        &self,
        req: Request<Streaming<tikvpb::BatchCommandsRequest>>,
    ) -> Result<Response<Self::BatchCommandsStream>, Status> {
        self.check_meta(req.metadata())?;
        let addr = forwarded(&req, &self.addr);
        let input = req.into_inner();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(serve_batch_stream(
            self.mock.clone(),
            addr,
            input,
            tx,
            self.stopped.clone(),
        ));
        Ok(Response::new(chan_stream(rx)))
    }
    }
}

/// Answers one sub-request of a `BatchCommands` stream.
async fn batch_entry(
    mock: &Mock,
    addr: &str,
    sub: tikvpb::batch_commands_request::Request,
    id: u64,
) -> Result<tikvpb::BatchCommandsResponse, Status> {
    let cmd = Command::from_batch_request(sub)
        .map_err(|_| Status::invalid_argument("empty batch entry"))?;
    if let Command::Empty(e) = &cmd
        && e.delay_time > 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(e.delay_time)).await;
    }
    let resp = mock.dispatch(addr, cmd, None).await.map_err(to_status)?;
    let store = mock.cluster().get_store_by_addr(addr).map_or(0, |s| s.id);
    Ok(tikvpb::BatchCommandsResponse {
        responses: vec![resp.into_batch_response().unwrap_or_default()],
        request_ids: vec![id],
        transport_layer_load: 0,
        health_feedback: Some(mock.cluster().next_health_feedback(store)),
        ..Default::default()
    })
}

/// The server half of one `BatchCommands` stream: reads batches until the client closes the
/// stream, the listener stops (`Unavailable`) or a sub-request fails at the transport level
/// (its status ends the stream, MC-2.29.3).
async fn serve_batch_stream(
    mock: Mock,
    addr: String,
    mut input: Streaming<tikvpb::BatchCommandsRequest>,
    tx: mpsc::Sender<Result<tikvpb::BatchCommandsResponse, Status>>,
    mut stopped: watch::Receiver<bool>,
) {
    let done = tokio_util::sync::CancellationToken::new();
    loop {
        let next = tokio::select! {
            m = input.message() => m,
            _ = async { let _ = stopped.wait_for(|s| *s).await; } => {
                let _ = tx.send(Err(Status::unavailable("store stopped"))).await;
                done.cancel();
                return;
            }
            _ = done.cancelled() => return,
        };
        let Ok(Some(batch)) = next else {
            return;
        };
        for (sub, id) in batch.requests.into_iter().zip(batch.request_ids) {
            let (mock, tx, addr, done) = (mock.clone(), tx.clone(), addr.clone(), done.clone());
            tokio::spawn(async move {
                let msg = tokio::select! {
                    m = batch_entry(&mock, &addr, sub, id) => m,
                    _ = done.cancelled() => return,
                };
                if msg.is_err() {
                    done.cancel();
                }
                let _ = tx.send(msg).await;
            });
        }
    }
}

/// When a call reached the server, stamped before tonic starts its own `grpc-timeout` timer
/// can be observed by the handler.
#[derive(Debug, Clone, Copy)]
struct Arrival(Instant);

/// Wraps a generated server so each call carries its [`Arrival`] time.
#[derive(Debug, Clone)]
struct StampArrival<S>(S);

impl<S, B> tower::Service<http::Request<B>> for StampArrival<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        req.extensions_mut().insert(Arrival(Instant::now()));
        self.0.call(req)
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for StampArrival<S> {
    const NAME: &'static str = S::NAME;
}

/// The request deadline a `grpc-timeout` header names (MC-2.30.3 on the gRPC face), counted
/// from the call's arrival. It is set a millisecond early so the engine's *deadline
/// exceeded* answer wins the race with tonic's own timer, which would answer `Cancelled`.
pub(crate) fn grpc_deadline<T>(req: &Request<T>) -> Option<Instant> {
    let start = req
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |a| a.0);
    let meta = req.metadata();
    let v = meta.get("grpc-timeout")?.to_str().ok()?;
    let split = v.len().checked_sub(1)?;
    let (num, unit) = (v.get(..split)?, v.get(split..)?);
    if num.is_empty() || num.len() > 8 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(start + d.saturating_sub(Duration::from_millis(1)))
}

// ===== health (MC-2.29.6) =====

/// `grpc.health.v1.Health` of one listening address. For a store address (`addr` set):
/// `SERVING` while the store owning the address is Up, `NOT_SERVING` otherwise (Offline,
/// Tombstone, or no store). For the PD address (`addr` = `None`): `SERVING` for as long as
/// the server runs, like a PD member (the PD client probes it before forwarding, PD-5).
#[derive(Clone)]
struct HealthFace {
    mock: Mock,
    addr: Option<String>,
}

#[tonic::async_trait]
impl Health for HealthFace {
    async fn check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let up = self.addr.as_ref().is_none_or(|addr| {
            self.mock
                .cluster()
                .get_store_by_addr(addr)
                .is_some_and(|s| s.state() == metapb::StoreState::Up)
        });
        let status = if up {
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

// ===== PD face =====

#[derive(Clone)]
struct PdFace {
    mock: Mock,
}

macro_rules! pd_impl {
    (
        pd { $($m:ident: $req:ty => $resp:ty;)* }
        unimpl { $($um:ident: $ureq:ty => $uresp:ty;)* }
        rest { $($rest:tt)* }
    ) => {
        #[tonic::async_trait]
        impl Pd for PdFace {
            $(
                async fn $m(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.mock.pd().$m(req.into_inner()).await.map(Response::new)
                }
            )*
            $(
                async fn $um(&self, _req: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    Err(Status::unimplemented(stringify!($um)))
                }
            )*
            $($rest)*
        }
    };
}

pd_impl! {
    pd {
        get_cluster_info: pdpb::GetClusterInfoRequest => pdpb::GetClusterInfoResponse;
        get_members: pdpb::GetMembersRequest => pdpb::GetMembersResponse;
        alloc_id: pdpb::AllocIdRequest => pdpb::AllocIdResponse;
        get_store: pdpb::GetStoreRequest => pdpb::GetStoreResponse;
        get_all_stores: pdpb::GetAllStoresRequest => pdpb::GetAllStoresResponse;
        get_region: pdpb::GetRegionRequest => pdpb::GetRegionResponse;
        get_prev_region: pdpb::GetRegionRequest => pdpb::GetRegionResponse;
        get_region_by_id: pdpb::GetRegionByIdRequest => pdpb::GetRegionResponse;
        scan_regions: pdpb::ScanRegionsRequest => pdpb::ScanRegionsResponse;
        batch_scan_regions: pdpb::BatchScanRegionsRequest => pdpb::BatchScanRegionsResponse;
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
    unimpl {
        set_global_gc_barrier: pdpb::SetGlobalGcBarrierRequest => pdpb::SetGlobalGcBarrierResponse;
        delete_global_gc_barrier: pdpb::DeleteGlobalGcBarrierRequest => pdpb::DeleteGlobalGcBarrierResponse;
        get_all_keyspaces_gc_states: pdpb::GetAllKeyspacesGcStatesRequest => pdpb::GetAllKeyspacesGcStatesResponse;
    }
    rest {

    type TsoStream = BoxStream<pdpb::TsoResponse>;
    /// MC-1.14.2: one response per request, echoing `count`; errors end the stream.
    async fn tso(
        &self,
        req: Request<Streaming<pdpb::TsoRequest>>,
    ) -> Result<Response<Self::TsoStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let pd = self.mock.pd().clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = input.message().await {
                let resp = pd.tso(r).await;
                let end = resp.is_err();
                if tx.send(resp).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(chan_stream(rx)))
    }

    type QueryRegionStream = BoxStream<pdpb::QueryRegionResponse>;
    async fn query_region(
        &self,
        _req: Request<Streaming<pdpb::QueryRegionRequest>>,
    ) -> Result<Response<Self::QueryRegionStream>, Status> {
        Err(Status::unimplemented("query_region"))
    }
    }
}

// ===== keyspaces (MC-1.18.1) =====

#[tonic::async_trait]
impl Keyspace for PdFace {
    async fn load_keyspace(
        &self,
        req: Request<keyspacepb::LoadKeyspaceRequest>,
    ) -> Result<Response<keyspacepb::LoadKeyspaceResponse>, Status> {
        self.mock
            .pd()
            .load_keyspace(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn load_keyspace_by_id(
        &self,
        req: Request<keyspacepb::LoadKeyspaceByIdRequest>,
    ) -> Result<Response<keyspacepb::LoadKeyspaceResponse>, Status> {
        self.mock
            .pd()
            .load_keyspace_by_id(req.into_inner())
            .await
            .map(Response::new)
    }

    type WatchKeyspacesStream = BoxStream<keyspacepb::WatchKeyspacesResponse>;
    /// The current list first, then the whole list again after every change.
    async fn watch_keyspaces(
        &self,
        req: Request<keyspacepb::WatchKeyspacesRequest>,
    ) -> Result<Response<Self::WatchKeyspacesStream>, Status> {
        let pd = self.mock.pd().clone();
        pd.enter("WatchKeyspaces", req.get_ref().header.as_ref())
            .await?;
        let (first, mut changes) = pd.watch_keyspaces();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut list = first;
            loop {
                let msg = keyspacepb::WatchKeyspacesResponse {
                    header: pd.h(),
                    keyspaces: list,
                };
                if tx.send(Ok(msg)).await.is_err() || changes.changed().await.is_err() {
                    return;
                }
                list = pd.all_keyspaces();
            }
        });
        Ok(Response::new(chan_stream(rx)))
    }

    async fn update_keyspace_state(
        &self,
        req: Request<keyspacepb::UpdateKeyspaceStateRequest>,
    ) -> Result<Response<keyspacepb::UpdateKeyspaceStateResponse>, Status> {
        self.mock
            .pd()
            .update_keyspace_state(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_all_keyspaces(
        &self,
        req: Request<keyspacepb::GetAllKeyspacesRequest>,
    ) -> Result<Response<keyspacepb::GetAllKeyspacesResponse>, Status> {
        self.mock
            .pd()
            .get_all_keyspaces(req.into_inner())
            .await
            .map(Response::new)
    }
}

// ===== the gRPC cluster =====

struct GrpcInner {
    mock: Mock,
    handle: tokio::runtime::Handle,
    servers: Mutex<HashMap<String, Running>>,
    pd: Mutex<Option<Running>>,
    pd_addr: String,
    meta: MetaSlot,
}

/// The gRPC faces of a [`Mock`]: a PD server and one TiKV server per store address, on
/// loopback ports (MC-2.29.1). Dropping it stops every server.
pub struct MockGrpc {
    inner: Arc<GrpcInner>,
}

impl std::fmt::Debug for MockGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockGrpc")
            .field("pd_addr", &self.inner.pd_addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn spawn_server<S>(handle: &tokio::runtime::Handle, router: S, l: TcpListener) -> Running
where
    S: FnOnce(
        Arc<Mutex<Option<TcpListener>>>,
        watch::Receiver<bool>,
    ) -> tonic::transport::server::Router,
{
    let slot = Arc::new(Mutex::new(Some(l)));
    let (stop, rx) = watch::channel(false);
    let router = router(slot.clone(), rx.clone());
    let incoming = Incoming { slot: slot.clone() };
    let mut rx2 = rx;
    handle.spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx2.wait_for(|s| *s).await.map(|_| ());
            })
            .await;
    });
    Running { slot, stop }
}

impl MockGrpc {
    /// Starts the PD server and a TiKV server for every store address; stores whose address
    /// is not a `host:port` (`store1`, ...) get an ephemeral port recorded as their address
    /// (MC-1.2.6). Must be called inside a tokio runtime.
    pub fn start(mock: &Mock) -> Result<MockGrpc, Error> {
        let handle = tokio::runtime::Handle::current();
        let io = |e: std::io::Error| Error::from(ErrorDetail::Internal(format!("bind: {e}")));
        let (l, pd_addr) = bind(&handle, "127.0.0.1:0").map_err(io)?;
        mock.pd().set_client_url(format!("http://{pd_addr}"));
        let face = PdFace { mock: mock.clone() };
        let pd_health = HealthFace {
            mock: mock.clone(),
            addr: None,
        };
        let pd = spawn_server(
            &handle,
            |_, _| {
                tonic::transport::Server::builder()
                    .add_service(PdServer::new(face.clone()))
                    .add_service(KeyspaceServer::new(face))
                    .add_service(HealthServer::new(pd_health))
            },
            l,
        );
        let inner = Arc::new(GrpcInner {
            mock: mock.clone(),
            handle,
            servers: Mutex::new(HashMap::new()),
            pd: Mutex::new(Some(pd)),
            pd_addr,
            meta: Arc::new(Mutex::new(None)),
        });
        let weak: Weak<GrpcInner> = Arc::downgrade(&inner);
        mock.cluster().on_store_change(Arc::new(move || {
            if let Some(i) = weak.upgrade() {
                reconcile(&i);
            }
        }));
        reconcile(&inner);
        Ok(MockGrpc { inner })
    }

    /// The PD server's `host:port`.
    pub fn pd_addr(&self) -> &str {
        &self.inner.pd_addr
    }

    /// Installs (or with `None` removes) the metadata checker every TiKV server runs before
    /// each call and stream (MC-2.29.5).
    pub fn set_meta_checker(&self, f: Option<MetaChecker>) {
        *self.inner.meta.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// The addresses with a running TiKV listener.
    pub fn listening(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

impl Drop for MockGrpc {
    fn drop(&mut self) {
        for (_, r) in self
            .inner
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            r.stop();
        }
        if let Some(p) = self
            .inner
            .pd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.stop();
        }
    }
}

fn start_tikv(inner: &GrpcInner, addr: &str) -> Option<(Running, String)> {
    let (l, local) = bind(&inner.handle, addr).ok()?;
    let mock = inner.mock.clone();
    let a = local.clone();
    let meta = inner.meta.clone();
    let r = spawn_server(
        &inner.handle,
        move |_, stopped| {
            let health = HealthFace {
                mock: mock.clone(),
                addr: Some(a.clone()),
            };
            tonic::transport::Server::builder()
                .add_service(StampArrival(TikvServer::new(TikvFace {
                    mock,
                    addr: a,
                    stopped,
                    meta,
                })))
                .add_service(HealthServer::new(health))
        },
        l,
    );
    Some((r, local))
}

/// Opens listeners for addresses of live stores and closes those of stopped ones.
fn reconcile(inner: &GrpcInner) {
    let cluster = inner.mock.cluster();
    for s in cluster.get_all_stores() {
        if s.address.parse::<SocketAddr>().is_err() {
            let mut servers = inner.servers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((r, local)) = start_tikv(inner, "127.0.0.1:0") {
                cluster.set_store_address_silently(s.id, &local);
                if s.state() == tikv_proto::metapb::StoreState::Offline {
                    r.stop();
                } else {
                    servers.insert(local, r);
                }
            }
        }
    }
    let stores = cluster.get_all_stores();
    let mut servers = inner.servers.lock().unwrap_or_else(|e| e.into_inner());
    let wanted: Vec<String> = stores
        .iter()
        .filter(|s| s.state() != tikv_proto::metapb::StoreState::Offline)
        .map(|s| s.address.clone())
        .collect();
    let running: Vec<String> = servers.keys().cloned().collect();
    for a in running {
        if !wanted.contains(&a)
            && let Some(r) = servers.remove(&a)
        {
            r.stop();
        }
    }
    for a in wanted {
        if !servers.contains_key(&a)
            && a.parse::<SocketAddr>().is_ok()
            && let Some((r, _)) = start_tikv(inner, &a)
        {
            servers.insert(a, r);
        }
    }
}
