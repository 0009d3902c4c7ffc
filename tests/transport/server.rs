//! A minimal loopback TiKV gRPC server for the transport tests (the equivalent of
//! client-go's `internal/client/mockserver` `MockServer`): `KvGet`/`KvPrewrite`/
//! `KvResolveLock` answer empty responses, `CoprocessorStream` sends one empty response,
//! `BatchCommands` answers every request id with an empty response of the same arm plus
//! health feedback, unless a batch hook is installed. It records the forwarding metadata
//! and the compression headers of every call and can be stopped and restarted on the same
//! address. It accepts gzip-compressed requests and gzip-compresses its responses to
//! clients that accept them (like TiKV's gRPC server).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tikv_proto::tikvpb::tikv_server::{Tikv, TikvServer};
use tikv_proto::tikvpb::{
    BatchCommandsRequest, BatchCommandsResponse, batch_commands_request, batch_commands_response,
};
use tikv_proto::{coprocessor, kvrpcpb, mpp};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What a batch hook does with one incoming message.
pub enum HookReply {
    /// Send this response.
    Reply(BatchCommandsResponse),
    /// Send nothing.
    Ignore,
    /// End the stream with this status.
    Fail(Status),
    /// Send this response, then end the stream with this status (client-go's
    /// `gotErrorInRecvLoop` failpoint: the receive after an answered request fails).
    ReplyThenFail(BatchCommandsResponse, Status),
}

pub type BatchHook = Arc<dyn Fn(&BatchCommandsRequest) -> HookReply + Send + Sync>;

#[derive(Default)]
pub struct State {
    /// (method, forwarded host metadata, conn index metadata) per call or stream.
    pub calls: Mutex<Vec<(String, Vec<String>, Option<String>)>>,
    /// (method, `grpc-encoding`, `grpc-accept-encoding`) request headers per call or stream.
    pub encodings: Mutex<Vec<(String, Option<String>, Option<String>)>>,
    pub hook: Mutex<Option<BatchHook>>,
    /// Delay before answering each batch message (processed in order).
    pub delay: Mutex<Duration>,
    pub feedback_seq: AtomicU64,
    pub batch_messages: AtomicUsize,
    pub batch_requests: AtomicUsize,
    /// Request count of every batch message received, in order.
    pub message_sizes: Mutex<Vec<usize>>,
    /// Notified (all waiters) whenever a batch message arrives.
    pub message_arrived: tokio::sync::Notify,
    /// When set, each batch message waits for a permit of this semaphore (after the delay)
    /// before it is answered: a test opens the gate one message at a time.
    pub gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    pub streams_opened: AtomicUsize,
    /// When set, the server-streaming calls (`CoprocessorStream`, `BatchCoprocessor`,
    /// `EstablishMPPConnection`) answer with a stream whose first item is this error.
    pub first_recv_error: Mutex<Option<Status>>,
    /// Server-streaming responses dropped so far (the call's stream was released).
    pub streams_released: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Svc(Arc<State>);

fn record<T>(state: &State, method: &str, req: &Request<T>) {
    let fwd = req
        .metadata()
        .get_all("tikv-forwarded-host")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let idx = req
        .metadata()
        .get("tikv-batch-conn-index")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state
        .calls
        .lock()
        .unwrap()
        .push((method.to_owned(), fwd, idx));
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.encodings.lock().unwrap().push((
        method.to_owned(),
        header("grpc-encoding"),
        header("grpc-accept-encoding"),
    ));
}

/// An empty response of the same arm as `req`.
pub fn echo(req: &batch_commands_request::Request) -> batch_commands_response::Response {
    use batch_commands_request::request::Cmd as Q;
    use batch_commands_response::response::Cmd as R;
    let cmd = match &req.cmd {
        Some(Q::Get(_)) => R::Get(Default::default()),
        Some(Q::Prewrite(_)) => R::Prewrite(Default::default()),
        Some(Q::Coprocessor(_)) => R::Coprocessor(Default::default()),
        Some(Q::ResolveLock(_)) => R::ResolveLock(Default::default()),
        Some(Q::RawGet(_)) => R::RawGet(Default::default()),
        Some(Q::Commit(_)) => R::Commit(Default::default()),
        _ => R::Empty(Default::default()),
    };
    batch_commands_response::Response { cmd: Some(cmd) }
}

impl State {
    pub fn default_reply(&self, req: &BatchCommandsRequest) -> BatchCommandsResponse {
        let seq = self.feedback_seq.fetch_add(1, Ordering::Relaxed) + 1;
        BatchCommandsResponse {
            responses: req.requests.iter().map(echo).collect(),
            request_ids: req.request_ids.clone(),
            health_feedback: Some(kvrpcpb::HealthFeedback {
                store_id: 1,
                feedback_seq_no: seq,
                slow_score: 1,
            }),
            ..Default::default()
        }
    }
}

macro_rules! unimplemented_methods {
    ($($m:ident: $req:ty => $resp:ty;)*) => {
        $(
            fn $m<'life0, 'async_trait>(
                &'life0 self,
                _r: Request<$req>,
            ) -> Pin<Box<dyn std::future::Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err(Status::unimplemented(stringify!($m))) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Tikv for Svc {
    async fn kv_get(
        &self,
        r: Request<kvrpcpb::GetRequest>,
    ) -> Result<Response<kvrpcpb::GetResponse>, Status> {
        record(&self.0, "kv_get", &r);
        Ok(Response::new(kvrpcpb::GetResponse::default()))
    }
    async fn kv_prewrite(
        &self,
        r: Request<kvrpcpb::PrewriteRequest>,
    ) -> Result<Response<kvrpcpb::PrewriteResponse>, Status> {
        record(&self.0, "kv_prewrite", &r);
        let d = *self.0.delay.lock().unwrap();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        Ok(Response::new(kvrpcpb::PrewriteResponse::default()))
    }
    async fn kv_resolve_lock(
        &self,
        r: Request<kvrpcpb::ResolveLockRequest>,
    ) -> Result<Response<kvrpcpb::ResolveLockResponse>, Status> {
        record(&self.0, "kv_resolve_lock", &r);
        Ok(Response::new(kvrpcpb::ResolveLockResponse::default()))
    }
    type CoprocessorStreamStream = BoxStream<coprocessor::Response>;
    async fn coprocessor_stream(
        &self,
        r: Request<coprocessor::Request>,
    ) -> Result<Response<Self::CoprocessorStreamStream>, Status> {
        record(&self.0, "coprocessor_stream", &r);
        if let Some(s) = self.0.first_recv_error.lock().unwrap().clone() {
            return Ok(Response::new(failing_stream(s, &self.0)));
        }
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.send(Ok(coprocessor::Response::default())).await;
        Ok(Response::new(Box::pin(Rx(rx))))
    }
    type BatchCoprocessorStream = BoxStream<coprocessor::BatchResponse>;
    async fn batch_coprocessor(
        &self,
        _r: Request<coprocessor::BatchRequest>,
    ) -> Result<Response<Self::BatchCoprocessorStream>, Status> {
        if let Some(s) = self.0.first_recv_error.lock().unwrap().clone() {
            return Ok(Response::new(failing_stream(s, &self.0)));
        }
        Err(Status::unimplemented("batch_coprocessor"))
    }
    type EstablishMPPConnectionStream = BoxStream<mpp::MppDataPacket>;
    async fn establish_mpp_connection(
        &self,
        _r: Request<mpp::EstablishMppConnectionRequest>,
    ) -> Result<Response<Self::EstablishMPPConnectionStream>, Status> {
        if let Some(s) = self.0.first_recv_error.lock().unwrap().clone() {
            return Ok(Response::new(failing_stream(s, &self.0)));
        }
        Err(Status::unimplemented("establish_mpp_connection"))
    }
    type BatchCommandsStream = BoxStream<BatchCommandsResponse>;
    async fn batch_commands(
        &self,
        r: Request<Streaming<BatchCommandsRequest>>,
    ) -> Result<Response<Self::BatchCommandsStream>, Status> {
        record(&self.0, "batch_commands", &r);
        self.0.streams_opened.fetch_add(1, Ordering::Relaxed);
        let state = self.0.clone();
        let mut input = r.into_inner();
        let (tx, rx) = mpsc::channel::<Result<BatchCommandsResponse, Status>>(1024);
        // Arrivals are recorded as the client sends them, by a reader of their own; the
        // messages are then processed one at a time, in order.
        let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
        let reader_state = state.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = input.message().await {
                let state = &reader_state;
                state.batch_messages.fetch_add(1, Ordering::Relaxed);
                state
                    .batch_requests
                    .fetch_add(req.request_ids.len(), Ordering::Relaxed);
                state
                    .message_sizes
                    .lock()
                    .unwrap()
                    .push(req.request_ids.len());
                state.message_arrived.notify_waiters();
                if arrived_tx.send(req).is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(req) = arrived.recv().await {
                let d = *state.delay.lock().unwrap();
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                let gate = state.gate.lock().unwrap().clone();
                if let Some(gate) = gate {
                    match gate.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                }
                let hook = state.hook.lock().unwrap().clone();
                let reply = match hook {
                    Some(h) => h(&req),
                    None => HookReply::Reply(state.default_reply(&req)),
                };
                match reply {
                    HookReply::Reply(resp) => {
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    HookReply::Ignore => {}
                    HookReply::Fail(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                    HookReply::ReplyThenFail(resp, s) => {
                        let _ = tx.send(Ok(resp)).await;
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(Rx(rx))))
    }

    unimplemented_methods! {
        kv_scan: kvrpcpb::ScanRequest => kvrpcpb::ScanResponse;
        kv_pessimistic_lock: kvrpcpb::PessimisticLockRequest => kvrpcpb::PessimisticLockResponse;
        kv_pessimistic_rollback: kvrpcpb::PessimisticRollbackRequest => kvrpcpb::PessimisticRollbackResponse;
        kv_txn_heart_beat: kvrpcpb::TxnHeartBeatRequest => kvrpcpb::TxnHeartBeatResponse;
        kv_check_txn_status: kvrpcpb::CheckTxnStatusRequest => kvrpcpb::CheckTxnStatusResponse;
        kv_check_secondary_locks: kvrpcpb::CheckSecondaryLocksRequest => kvrpcpb::CheckSecondaryLocksResponse;
        kv_commit: kvrpcpb::CommitRequest => kvrpcpb::CommitResponse;
        kv_cleanup: kvrpcpb::CleanupRequest => kvrpcpb::CleanupResponse;
        kv_batch_get: kvrpcpb::BatchGetRequest => kvrpcpb::BatchGetResponse;
        kv_batch_rollback: kvrpcpb::BatchRollbackRequest => kvrpcpb::BatchRollbackResponse;
        kv_scan_lock: kvrpcpb::ScanLockRequest => kvrpcpb::ScanLockResponse;
        kv_delete_range: kvrpcpb::DeleteRangeRequest => kvrpcpb::DeleteRangeResponse;
        kv_prepare_flashback_to_version: kvrpcpb::PrepareFlashbackToVersionRequest => kvrpcpb::PrepareFlashbackToVersionResponse;
        kv_flashback_to_version: kvrpcpb::FlashbackToVersionRequest => kvrpcpb::FlashbackToVersionResponse;
        kv_flush: kvrpcpb::FlushRequest => kvrpcpb::FlushResponse;
        kv_buffer_batch_get: kvrpcpb::BufferBatchGetRequest => kvrpcpb::BufferBatchGetResponse;
        raw_get: kvrpcpb::RawGetRequest => kvrpcpb::RawGetResponse;
        raw_batch_get: kvrpcpb::RawBatchGetRequest => kvrpcpb::RawBatchGetResponse;
        raw_put: kvrpcpb::RawPutRequest => kvrpcpb::RawPutResponse;
        raw_batch_put: kvrpcpb::RawBatchPutRequest => kvrpcpb::RawBatchPutResponse;
        raw_delete: kvrpcpb::RawDeleteRequest => kvrpcpb::RawDeleteResponse;
        raw_batch_delete: kvrpcpb::RawBatchDeleteRequest => kvrpcpb::RawBatchDeleteResponse;
        raw_scan: kvrpcpb::RawScanRequest => kvrpcpb::RawScanResponse;
        raw_delete_range: kvrpcpb::RawDeleteRangeRequest => kvrpcpb::RawDeleteRangeResponse;
        raw_get_key_ttl: kvrpcpb::RawGetKeyTtlRequest => kvrpcpb::RawGetKeyTtlResponse;
        raw_compare_and_swap: kvrpcpb::RawCasRequest => kvrpcpb::RawCasResponse;
        raw_checksum: kvrpcpb::RawChecksumRequest => kvrpcpb::RawChecksumResponse;
        unsafe_destroy_range: kvrpcpb::UnsafeDestroyRangeRequest => kvrpcpb::UnsafeDestroyRangeResponse;
        coprocessor: coprocessor::Request => coprocessor::Response;
        split_region: kvrpcpb::SplitRegionRequest => kvrpcpb::SplitRegionResponse;
        mvcc_get_by_key: kvrpcpb::MvccGetByKeyRequest => kvrpcpb::MvccGetByKeyResponse;
        mvcc_get_by_start_ts: kvrpcpb::MvccGetByStartTsRequest => kvrpcpb::MvccGetByStartTsResponse;
        dispatch_mpp_task: mpp::DispatchTaskRequest => mpp::DispatchTaskResponse;
        cancel_mpp_task: mpp::CancelTaskRequest => mpp::CancelTaskResponse;
        is_alive: mpp::IsAliveRequest => mpp::IsAliveResponse;
        get_store_safe_ts: kvrpcpb::StoreSafeTsRequest => kvrpcpb::StoreSafeTsResponse;
        get_lock_wait_info: kvrpcpb::GetLockWaitInfoRequest => kvrpcpb::GetLockWaitInfoResponse;
        compact: kvrpcpb::CompactRequest => kvrpcpb::CompactResponse;
        get_ti_flash_system_table: kvrpcpb::TiFlashSystemTableRequest => kvrpcpb::TiFlashSystemTableResponse;
        get_health_feedback: kvrpcpb::GetHealthFeedbackRequest => kvrpcpb::GetHealthFeedbackResponse;
        broadcast_txn_status: kvrpcpb::BroadcastTxnStatusRequest => kvrpcpb::BroadcastTxnStatusResponse;
    }
}

struct Rx<T>(mpsc::Receiver<Result<T, Status>>);

/// A response stream whose first item is `status`; counts its own drop in
/// `streams_released`.
struct Failing<T> {
    first: Option<Status>,
    released: Arc<AtomicUsize>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Stream for Failing<T> {
    type Item = Result<T, Status>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.first.take().map(Err))
    }
}

impl<T> Drop for Failing<T> {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn failing_stream<T: Send + 'static>(status: Status, state: &State) -> BoxStream<T> {
    Box::pin(Failing {
        first: Some(status),
        released: state.streams_released.clone(),
        _t: std::marker::PhantomData,
    })
}

impl<T> Stream for Rx<T> {
    type Item = Result<T, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

type Conns = Arc<Mutex<Vec<std::net::TcpStream>>>;

/// Accepts connections and keeps a duplicate of each socket, so `stop` can kill them.
struct Incoming(TcpListener, Conns);

fn track(s: TcpStream, conns: &Conns) -> std::io::Result<TcpStream> {
    let std = s.into_std()?;
    conns.lock().unwrap().push(std.try_clone()?);
    TcpStream::from_std(std)
}

impl Stream for Incoming {
    type Item = std::io::Result<TcpStream>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.poll_accept(cx) {
            Poll::Ready(Ok((s, _))) => {
                let _ = s.set_nodelay(true);
                Poll::Ready(Some(track(s, &self.1)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A restartable loopback server.
pub struct MockServer {
    pub state: Arc<State>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
    tls: Option<ServerTlsConfig>,
    conns: Conns,
}

impl MockServer {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> MockServer {
        Self::start_tls(None).await
    }

    /// Starts with TLS on an ephemeral loopback port.
    pub async fn start_tls(tls: Option<ServerTlsConfig>) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = MockServer {
            state: Arc::new(State::default()),
            addr,
            task: Mutex::new(None),
            tls,
            conns: Conns::default(),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let svc = Svc(self.state.clone());
        let mut builder = Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone()).unwrap();
        }
        let router = builder.add_service(
            TikvServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        );
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            let _ = router.serve_with_incoming(Incoming(listener, conns)).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn is_running(&self) -> bool {
        self.task.lock().unwrap().is_some()
    }

    /// Stops serving and drops every connection.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Starts again on the same address.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn set_hook(&self, hook: Option<BatchHook>) {
        *self.state.hook.lock().unwrap() = hook;
    }

    pub fn set_delay(&self, d: Duration) {
        *self.state.delay.lock().unwrap() = d;
    }

    /// Closes a gate in front of every batch reply and returns it: each permit added lets
    /// one message be answered.
    pub fn close_gate(&self) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *self.state.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// The request count of every batch message received so far.
    pub fn message_sizes(&self) -> Vec<usize> {
        self.state.message_sizes.lock().unwrap().clone()
    }

    /// Waits until at least `n` batch messages have arrived.
    pub async fn wait_for_messages(&self, n: usize) {
        loop {
            // A `Notified` gets `notify_waiters` wake-ups from its creation on, so a message
            // arriving between the check and the await is not missed.
            let arrived = self.state.message_arrived.notified();
            if self.state.message_sizes.lock().unwrap().len() >= n {
                return;
            }
            arrived.await;
        }
    }

    pub fn calls(&self, method: &str) -> Vec<(Vec<String>, Option<String>)> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == method)
            .map(|(_, f, i)| (f.clone(), i.clone()))
            .collect()
    }

    /// The (`grpc-encoding`, `grpc-accept-encoding`) request headers of every `method` call.
    pub fn encodings(&self, method: &str) -> Vec<(Option<String>, Option<String>)> {
        self.state
            .encodings
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == method)
            .map(|(_, e, a)| (e.clone(), a.clone()))
            .collect()
    }

    pub fn clear_calls(&self) {
        self.state.calls.lock().unwrap().clear();
        self.state.encodings.lock().unwrap().clear();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop();
    }
}
