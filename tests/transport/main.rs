//! Integration tests of `tikv::transport` against a loopback tonic TiKV server (ported from
//! client-go `internal/client/client_test.go`, `client_async_test.go`).
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod monitor;
mod server;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use server::{HookReply, MockServer};
use tikv::config::{GrpcCompression, TikvClientConfig};
use tikv::transport::{ErrConn, EventListener, Transport, TransportConfig};
use tikv_layers::request::EndpointType;
use tikv_layers::{CmdType, Error, ErrorDetail, RpcRequest, RpcResponse};
use tikv_proto::tikvpb::BatchCommandsResponse;
use tikv_proto::{coprocessor, kvrpcpb, tikvpb};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// Serializes the tests of this binary that measure latency or load the machine.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn transport(cfg: TikvClientConfig) -> Transport {
    Transport::new(TransportConfig::new(cfg).with_dial_timeout(Duration::from_secs(2)))
}

fn request(cmd: impl Into<tikv_layers::Command>, addr: &str, timeout: Duration) -> RpcRequest {
    let mut r = RpcRequest::new(cmd);
    r.target.addr = addr.to_owned();
    r.options.timeout = Some(timeout);
    r
}

fn message(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn transport_message(e: &Error) -> Option<&str> {
    match e.detail() {
        ErrorDetail::Transport { message, .. } => Some(message),
        _ => None,
    }
}

// client-go: T-RPC-016 TestConn
#[tokio::test]
async fn conn() {
    let t = transport(TikvClientConfig::default().with_max_batch_size(0));
    let addr = "127.0.0.1:6379";
    let p1 = t.pool(addr).unwrap();
    let p2 = t.pool(addr).unwrap();
    assert_eq!(p1.ver(), p2.ver());
    let ver = p2.ver();
    t.close_addr_ver(addr, ver - 1);
    assert_eq!(t.pool_version(addr), Some(ver));
    t.close_addr_ver(addr, ver);
    assert_eq!(t.pool_version(addr), None);
    let p3 = t.pool(addr).unwrap();
    assert_eq!(p3.ver(), ver + 1);
    t.close();
    assert!(t.pool(addr).is_err());
}

// client-go: T-RPC-017 TestGetConnAfterClose
#[tokio::test]
async fn get_conn_after_close() {
    let t = transport(TikvClientConfig::default());
    let addr = "127.0.0.1:6379";
    let p = t.pool(addr).unwrap();
    t.close_addr(addr);
    assert!(p.is_closed());
}

// client-go: T-RPC-039 TestConcurrentCloseConnPanic
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_close_conn_panic() {
    let t = transport(TikvClientConfig::default());
    let addr = "127.0.0.1:6379";
    t.pool(addr).unwrap();
    let (a, b) = (t.clone(), t.clone());
    let h1 = tokio::spawn(async move { a.close() });
    let h2 = tokio::spawn(async move { b.close_addr(addr) });
    h1.await.unwrap();
    h2.await.unwrap();
}

// client-go: T-RPC-018 TestCancelTimeoutRetErr
#[tokio::test]
async fn cancel_timeout_ret_err() {
    let server = MockServer::start().await;
    server.set_hook(Some(Arc::new(|_| HookReply::Ignore)));
    let t = transport(TikvClientConfig::default());
    // A zero timeout fails with a deadline error.
    let req = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &server.addr(),
        Duration::ZERO,
    );
    let err = t.send_request(req).await.unwrap_err();
    assert!(err.is_timeout(), "{}", message(&err));
    // An already canceled caller (its backoffer token, client-go's context) gets Canceled.
    let req = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &server.addr(),
        Duration::from_secs(2),
    );
    req.backoffer.cancel_token().cancel();
    let err = t.send_request(req).await.unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::Canceled),
        "{}",
        message(&err)
    );
    // Canceling the caller (dropping its future) ends it at once; the transport keeps
    // serving others.
    let req = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &server.addr(),
        Duration::from_secs(2),
    );
    let fut = t.send_request(req);
    let r = tokio::time::timeout(Duration::from_millis(50), fut).await;
    assert!(r.is_err());
    server.set_hook(None);
    let req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_secs(2),
    );
    t.send_request(req).await.unwrap();
}

// client-go: T-RPC-020 TestSendWhenReconnect
#[tokio::test]
async fn send_when_reconnect() {
    let server = MockServer::start().await;
    let t = transport(TikvClientConfig::default().with_max_concurrency_request_limit(10000));
    let pool = t.pool(&server.addr()).unwrap();
    pool.hold_recreate(true);
    let req = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &server.addr(),
        Duration::from_millis(300),
    );
    let err = t.send_request(req).await.unwrap_err();
    let msg = message(&err);
    assert!(err.is_timeout(), "{msg}");
    assert!(
        msg.contains("wait recvLoop timeout, timeout:300ms") && msg.contains("deadline exceeded"),
        "{msg}"
    );
    assert!(ErrConn::of(&err).is_some());
}

// client-go: T-RPC-038 TestFastFailWhenNoAvailableConn
#[tokio::test]
async fn fast_fail_when_no_available_conn() {
    let server = MockServer::start().await;
    let t = transport(TikvClientConfig::default());
    let cop = || {
        request(
            coprocessor::Request::default(),
            &server.addr(),
            Duration::from_secs(1),
        )
    };
    t.send_request(cop()).await.unwrap();
    let pool = t.pool(&server.addr()).unwrap();
    pool.hold_recreate(true);
    let start = Instant::now();
    let err = t.send_request(cop()).await.unwrap_err();
    assert_eq!(transport_message(&err), Some("no available connections"));
    assert!(start.elapsed() < Duration::from_secs(1));
}

// client-go: T-RPC-036 TestFastFailRequest
#[tokio::test]
async fn fast_fail_request() {
    let t = transport(TikvClientConfig::default());
    // Nothing listens on this port.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let start = Instant::now();
    let req = request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(20),
    );
    let err = t.send_request(req).await.unwrap_err();
    assert!(err.is_retryable(), "{}", message(&err));
    assert!(start.elapsed() < Duration::from_secs(6));
}

// client-go: T-RPC-022 TestForwardMetadataByUnaryCall
#[tokio::test]
async fn forward_metadata_by_unary_call() {
    let server = MockServer::start().await;
    let t = transport(
        TikvClientConfig::default()
            .with_max_batch_size(0)
            .with_grpc_connection_count(1),
    );
    let addr = server.addr();
    for _ in 0..3 {
        let req = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(10),
        );
        t.send_request(req).await.unwrap();
    }
    let calls = server.calls("kv_prewrite");
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(f, _)| f.is_empty()));
    let req = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(10),
    );
    let mut req = req;
    req.cmd = tikv_layers::Command::CopStream(coprocessor::Request::default());
    t.send_request(req).await.unwrap();
    assert_eq!(server.calls("coprocessor_stream").len(), 1);

    server.clear_calls();
    let host = "127.0.0.1:6666";
    for _ in 0..3 {
        let mut req = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(10),
        );
        req.target.forwarded_host = Some(host.to_owned());
        t.send_request(req).await.unwrap();
    }
    let calls = server.calls("kv_prewrite");
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(f, _)| f == &vec![host.to_owned()]));
    let mut req = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(10),
    );
    req.cmd = tikv_layers::Command::CopStream(coprocessor::Request::default());
    req.target.forwarded_host = Some(host.to_owned());
    t.send_request(req).await.unwrap();
    assert_eq!(
        server.calls("coprocessor_stream")[0].0,
        vec![host.to_owned()]
    );
}

// client-go: T-RPC-023 TestForwardMetadataByBatchCommands
#[tokio::test]
async fn forward_metadata_by_batch_commands() {
    let server = MockServer::start().await;
    let t = transport(
        TikvClientConfig::default()
            .with_max_batch_size(128)
            .with_grpc_connection_count(1),
    );
    let addr = server.addr();
    let hosts = ["", "127.0.0.1:6666", "127.0.0.1:7777", "127.0.0.1:8888"];
    for (i, host) in hosts.iter().enumerate() {
        for _ in 0..3 {
            let mut req = request(
                kvrpcpb::PrewriteRequest::default(),
                &addr,
                Duration::from_secs(10),
            );
            if !host.is_empty() {
                req.target.forwarded_host = Some((*host).to_owned());
            }
            t.send_request(req).await.unwrap();
        }
        // One stream per forwarded host.
        let streams = server.calls("batch_commands");
        assert_eq!(streams.len(), i + 1);
        let (fwd, idx) = &streams[i];
        if host.is_empty() {
            assert!(fwd.is_empty());
        } else {
            assert_eq!(fwd, &vec![(*host).to_owned()]);
        }
        assert_eq!(idx.as_deref(), Some("0"));
    }
    // Streaming calls carry the metadata per call.
    let mut req = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(10),
    );
    req.cmd = tikv_layers::Command::CopStream(coprocessor::Request::default());
    t.send_request(req).await.unwrap();
    let mut req = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(10),
    );
    req.cmd = tikv_layers::Command::CopStream(coprocessor::Request::default());
    req.target.forwarded_host = Some("127.0.0.1:6666".to_owned());
    t.send_request(req).await.unwrap();
    let calls = server.calls("coprocessor_stream");
    assert!(calls[0].0.is_empty());
    assert_eq!(calls[1].0, vec!["127.0.0.1:6666".to_owned()]);
}

#[derive(Default)]
struct Listener(std::sync::Mutex<Vec<kvrpcpb::HealthFeedback>>);

impl EventListener for Listener {
    fn on_health_feedback(&self, feedback: &kvrpcpb::HealthFeedback) {
        self.0.lock().unwrap().push(*feedback);
    }
}

// client-go: T-RPC-034 TestBatchClientReceiveHealthFeedback
#[tokio::test]
async fn batch_client_receive_health_feedback() {
    let server = MockServer::start().await;
    let t = transport(TikvClientConfig::default());
    let l = Arc::new(Listener::default());
    t.set_event_listener(l.clone());
    for _ in 0..3 {
        let req = request(
            kvrpcpb::GetRequest::default(),
            &server.addr(),
            Duration::from_secs(1),
        );
        let resp = t.send_request(req).await.unwrap();
        assert_eq!(resp.cmd_type(), CmdType::Get);
    }
    let got = l.0.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for (i, fb) in got.iter().enumerate() {
        assert_eq!(fb.store_id, 1);
        assert_eq!(fb.slow_score, 1);
        assert_eq!(fb.feedback_seq_no, i as u64 + 1);
    }
}

// client-go: T-RPC-031 TestBatchClientRecoverAfterServerRestart
#[tokio::test]
async fn batch_client_recover_after_server_restart() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let t = transport(TikvClientConfig::default());
    let cop = |ms| {
        request(
            coprocessor::Request::default(),
            &addr,
            Duration::from_millis(ms),
        )
    };
    for _ in 0..100 {
        t.send_request(cop(20_000)).await.unwrap();
    }
    server.stop();
    assert!(!server.is_running());
    for _ in 0..10 {
        assert!(t.send_request(cop(100)).await.is_err());
    }
    server.restart().await;
    let pool = t.pool(&addr).unwrap();
    let start = Instant::now();
    while !pool.has_ready_client() {
        assert!(start.elapsed() < Duration::from_secs(10), "no reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first request after the restart may meet a stream that is still being repaired.
    let mut ok = 0;
    for _ in 0..100 {
        if t.send_request(cop(20_000)).await.is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 95, "{ok}");
    t.send_request(cop(20_000)).await.unwrap();
}

// Faults: a server that closes the stream fails exactly the in-flight requests with a
// typed error, and the client reconnects.
#[tokio::test]
async fn stream_closed_by_server_fails_inflight_and_reconnects() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let t = transport(TikvClientConfig::default().with_grpc_connection_count(1));
    t.send_request(request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(1),
    ))
    .await
    .unwrap();
    server.set_hook(Some(Arc::new(|_| {
        HookReply::Fail(tonic::Status::internal("garbage frame"))
    })));
    let err = t
        .send_request(request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_secs(2),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        tikv_layers::ErrorKind::Transport,
        "{}",
        message(&err)
    );
    server.set_hook(None);
    let start = Instant::now();
    loop {
        let r = t
            .send_request(request(
                kvrpcpb::GetRequest::default(),
                &addr,
                Duration::from_secs(1),
            ))
            .await;
        if r.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.calls("batch_commands").len() >= 2);
}

// Faults: unknown ids and short responses never panic; a server that never answers yields
// a timeout within the deadline.
#[tokio::test]
async fn unknown_id_and_silence() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let t = transport(TikvClientConfig::default());
    server.set_hook(Some(Arc::new(|req| {
        HookReply::Reply(BatchCommandsResponse {
            responses: vec![Default::default(); req.request_ids.len()],
            request_ids: req.request_ids.iter().map(|id| id + 1000).collect(),
            ..Default::default()
        })
    })));
    let start = Instant::now();
    let err = t
        .send_request(request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_millis(200),
        ))
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(start.elapsed() < Duration::from_millis(1000));
    // Fewer responses than ids: the caller gets a protocol error.
    server.set_hook(Some(Arc::new(|req| {
        HookReply::Reply(BatchCommandsResponse {
            responses: vec![],
            request_ids: req.request_ids.clone(),
            ..Default::default()
        })
    })));
    let err = t
        .send_request(request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tikv_layers::ErrorKind::Protocol);
    // Wrong arm: a protocol error too.
    server.set_hook(Some(Arc::new(|req| {
        HookReply::Reply(BatchCommandsResponse {
            responses: vec![
                tikvpb::batch_commands_response::Response {
                    cmd: Some(tikvpb::batch_commands_response::response::Cmd::Empty(
                        Default::default()
                    )),
                };
                req.request_ids.len()
            ],
            request_ids: req.request_ids.clone(),
            ..Default::default()
        })
    })));
    let err = t
        .send_request(request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tikv_layers::ErrorKind::Protocol);
}

// Cancellation of one caller does not disturb the others on the same stream.
#[tokio::test]
async fn cancel_one_caller_keeps_others() {
    let server = MockServer::start().await;
    let addr = server.addr();
    server.set_delay(Duration::from_millis(100));
    let t = transport(TikvClientConfig::default().with_grpc_connection_count(1));
    let mut handles = Vec::new();
    for _ in 0..10 {
        let t = t.clone();
        let addr = addr.clone();
        handles.push(tokio::spawn(async move {
            t.send_request(request(
                kvrpcpb::GetRequest::default(),
                &addr,
                Duration::from_secs(2),
            ))
            .await
        }));
    }
    let doomed = {
        let t = t.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            t.send_request(request(
                kvrpcpb::GetRequest::default(),
                &addr,
                Duration::from_secs(2),
            ))
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    doomed.abort();
    for h in handles {
        h.await.unwrap().unwrap();
    }
}

// The transport is a tower service, always ready, with Send + 'static futures.
#[tokio::test]
async fn tower_service_shape() {
    fn assert_send_static<F: std::future::Future + Send + 'static>(_: &F) {}
    let server = MockServer::start().await;
    let mut t = transport(TikvClientConfig::default());
    let req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_secs(1),
    );
    let fut = t.ready().await.unwrap().call(req);
    assert_send_static(&fut);
    let resp: RpcResponse = fut.await.unwrap();
    assert_eq!(resp.details.addr, server.addr());
}

// client-go: T-RPC-021 TestCollapseResolveLock
#[tokio::test]
async fn collapse_resolve_lock() {
    use tikv::transport::Collapse;
    use tokio::sync::{Notify, mpsc};

    #[derive(Clone)]
    struct Chan {
        gate: Arc<Notify>,
        tx: mpsc::UnboundedSender<RpcRequest>,
    }
    impl Service<RpcRequest> for Chan {
        type Response = RpcResponse;
        type Error = Error;
        type Future =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<RpcResponse, Error>> + Send>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: RpcRequest) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                this.gate.notified().await;
                let _ = this.tx.send(req);
                Ok(RpcResponse::new(kvrpcpb::ResolveLockResponse::default()))
            })
        }
    }

    fn resolve(region: u64, keys: Vec<Vec<u8>>, is_async: bool) -> RpcRequest {
        let mut r = RpcRequest::new(kvrpcpb::ResolveLockRequest {
            start_version: 10,
            commit_version: 20,
            keys,
            is_async,
            ..Default::default()
        });
        r.context.region_id = region;
        r.options.timeout = Some(Duration::from_secs(1));
        r
    }
    fn batch_resolve(region: u64) -> RpcRequest {
        let mut r = RpcRequest::new(kvrpcpb::ResolveLockRequest {
            txn_infos: vec![kvrpcpb::TxnInfo {
                txn: 10,
                status: 20,
                ..Default::default()
            }],
            ..Default::default()
        });
        r.context.region_id = region;
        r
    }

    let gate = Arc::new(Notify::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = Collapse::new(Chan {
        gate: gate.clone(),
        tx,
    });
    async fn round(
        svc: &Collapse<Chan>,
        gate: &Notify,
        rx: &mut mpsc::UnboundedReceiver<RpcRequest>,
        reqs: Vec<RpcRequest>,
    ) -> usize {
        let mut hs = Vec::new();
        for r in reqs {
            let s = svc.clone();
            hs.push(tokio::spawn(async move { s.oneshot(r).await }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        for h in hs {
            h.await.unwrap().unwrap();
        }
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }
    // Identical whole-region requests collapse.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![resolve(1, vec![], false), resolve(1, vec![], false)]
        )
        .await,
        1
    );
    // Async ones collapse separately.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![resolve(1, vec![], true), resolve(1, vec![], true)]
        )
        .await,
        1
    );
    // Sync and async do not collapse together.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![resolve(1, vec![], false), resolve(1, vec![], true)]
        )
        .await,
        2
    );
    // Lite (key-listed) requests are never collapsed.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![
                resolve(1, vec![b"foo".to_vec()], false),
                resolve(1, vec![b"foo".to_vec()], false)
            ]
        )
        .await,
        2
    );
    // Batch (txn-info) requests are never collapsed.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![batch_resolve(1), batch_resolve(1)]
        )
        .await,
        2
    );
    // Mixed.
    assert_eq!(
        round(
            &svc,
            &gate,
            &mut rx,
            vec![
                resolve(1, vec![], false),
                resolve(1, vec![b"foo".to_vec()], false),
                batch_resolve(1)
            ]
        )
        .await,
        3
    );
}

// client-go: T-RPC-041 TestSendRequestAsyncBasic
#[tokio::test]
async fn send_request_async_basic() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let call = |t: &Transport, req: RpcRequest| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        t.send_request_async(req, move |r| {
            let _ = tx.send(r);
        });
        rx
    };
    // Batching disabled.
    let t0 = transport(TikvClientConfig::default().with_max_batch_size(0));
    let r = call(
        &t0,
        request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_secs(1),
        ),
    );
    assert!(r.await.unwrap().is_err());
    let t = transport(TikvClientConfig::default());
    // TiFlash target.
    let mut req = request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(1),
    );
    req.options.endpoint = EndpointType::TiFlash;
    assert!(call(&t, req).await.unwrap().is_err());
    // Non-batchable command.
    let req = request(
        kvrpcpb::SplitRegionRequest::default(),
        &addr,
        Duration::from_secs(1),
    );
    assert!(call(&t, req).await.unwrap().is_err());
    // Batchable command to TiKV.
    let req = request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(1),
    );
    let resp = call(&t, req).await.unwrap().unwrap();
    assert_eq!(resp.cmd_type(), CmdType::Get);
}

// client-go: T-RPC-042 TestSendRequestAsyncAttachContext
#[tokio::test]
async fn send_request_async_attach_context() {
    let server = MockServer::start().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    server.set_hook(Some(Arc::new(move |req| {
        use tikvpb::batch_commands_request::request::Cmd;
        for r in &req.requests {
            if let Some(Cmd::Get(g)) = &r.cmd {
                s2.store(
                    g.context.as_ref().map_or(0, |c| c.region_id) as usize,
                    Ordering::SeqCst,
                );
            }
        }
        HookReply::Reply(BatchCommandsResponse {
            responses: req.requests.iter().map(server::echo).collect(),
            request_ids: req.request_ids.clone(),
            ..Default::default()
        })
    })));
    let t = transport(TikvClientConfig::default());
    let mut req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_secs(1),
    );
    req.context.region_id = 42;
    let (tx, rx) = tokio::sync::oneshot::channel();
    t.send_request_async(req, move |r| {
        let _ = tx.send(r);
    });
    rx.await.unwrap().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 42);
}

// client-go: T-RPC-045 TestSendRequestAsyncAndCloseClientOnHandle
#[tokio::test]
async fn send_request_async_and_close_client_on_handle() {
    let server = MockServer::start().await;
    server.set_hook(Some(Arc::new(|_| HookReply::Ignore)));
    let t = transport(TikvClientConfig::default());
    let mut req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_secs(1),
    );
    req.options.timeout = None;
    let (tx, rx) = tokio::sync::oneshot::channel();
    t.send_request_async(req, move |r| {
        let _ = tx.send(r);
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.close();
    let err = tokio::time::timeout(Duration::from_secs(1), rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(transport_message(&err), Some("batch client closed"));
}

// The server-blocks subtests; the "before send" ones are in the transport's unit tests
// (`send_request_async_timeout_before_send`).
// client-go: T-RPC-044 TestSendRequestAsyncTimeout
#[tokio::test]
async fn send_request_async_timeout() {
    let server = MockServer::start().await;
    server.set_hook(Some(Arc::new(|_| HookReply::Ignore)));
    let t = transport(TikvClientConfig::default());
    let req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_millis(100),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    t.send_request_async(req, move |r| {
        let _ = tx.send(r);
    });
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.is_timeout());
}

// Closing an address fails its waiting callers with "batchConn closed" and the next
// request opens a newer pool.
#[tokio::test]
async fn close_addr_fails_waiters() {
    let server = MockServer::start().await;
    server.set_hook(Some(Arc::new(|_| HookReply::Ignore)));
    let t = transport(TikvClientConfig::default());
    let addr = server.addr();
    let t2 = t.clone();
    let a2 = addr.clone();
    let h = tokio::spawn(async move {
        t2.send_request(request(
            kvrpcpb::GetRequest::default(),
            &a2,
            Duration::from_secs(5),
        ))
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v = t.pool_version(&addr).unwrap();
    t.close_addr(&addr);
    let err = h.await.unwrap().unwrap_err();
    assert_eq!(transport_message(&err), Some("batchConn closed"));
    server.set_hook(None);
    t.send_request(request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(1),
    ))
    .await
    .unwrap();
    assert_eq!(t.pool_version(&addr), Some(v + 1));
}

// client-go: T-RPC-033 TestPrioritySentLimit
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_sent_limit() {
    // A latency comparison: keep the load tests of this binary off the CPU meanwhile.
    let _serial = TIMING.lock().await;
    let server = MockServer::start().await;
    server.set_delay(Duration::from_millis(2));
    let t = transport(
        TikvClientConfig::default()
            .with_max_concurrency_request_limit(2)
            .with_grpc_connection_count(1),
    );
    let addr = server.addr();
    let end = Instant::now() + Duration::from_millis(1500);
    let stats = Arc::new(std::sync::Mutex::new([(0u128, 0u128); 2]));
    let mut hs = Vec::new();
    for (slot, pri) in [(0usize, 16u64), (1, 8)] {
        for _ in 0..10 {
            let (t, addr, stats) = (t.clone(), addr.clone(), stats.clone());
            hs.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let mut req = request(
                        tikvpb::BatchCommandsEmptyRequest::default(),
                        &addr,
                        Duration::from_millis(100),
                    );
                    req.context.resource_control_context = Some(kvrpcpb::ResourceControlContext {
                        override_priority: pri,
                        ..Default::default()
                    });
                    let s = Instant::now();
                    let _ = t.send_request(req).await;
                    let mut st = stats.lock().unwrap();
                    st[slot].0 += s.elapsed().as_micros();
                    st[slot].1 += 1;
                }
            }));
        }
    }
    for h in hs {
        h.await.unwrap();
    }
    let st = *stats.lock().unwrap();
    let high = st[0].0 / st[0].1.max(1);
    let medium = st[1].0 / st[1].1.max(1);
    assert!(high * 2 < medium, "high {high}us medium {medium}us");
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};

    struct Pki {
        ca_pem: String,
        server: (String, String),
        client: (String, String),
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let params = CertificateParams::new(names).unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        Pki {
            ca_pem: ca.pem(),
            server: leaf(vec!["127.0.0.1".into(), "localhost".into()]),
            client: leaf(vec!["client".into()]),
        }
    }

    fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    async fn run(mutual: bool) {
        let pki = pki();
        let mut stls =
            ServerTlsConfig::new().identity(Identity::from_pem(&pki.server.0, &pki.server.1));
        if mutual {
            stls = stls.client_ca_root(Certificate::from_pem(&pki.ca_pem));
        }
        let server = MockServer::start_tls(Some(stls)).await;
        let dir = std::env::temp_dir().join(format!(
            "tikv-transport-tls-{}-{}",
            std::process::id(),
            mutual
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sec = tikv::config::Security::default().with_cluster_ssl_ca(write(
            &dir,
            "ca.pem",
            &pki.ca_pem,
        ));
        if mutual {
            sec = sec
                .with_cluster_ssl_cert(write(&dir, "client.pem", &pki.client.0))
                .with_cluster_ssl_key(write(&dir, "client.key", &pki.client.1));
        }
        let tls = sec.to_tls_config().await.unwrap();
        let t = Transport::new(TransportConfig::default().with_tls(tls));
        // Batched and unary calls both go over TLS.
        t.send_request(request(
            kvrpcpb::GetRequest::default(),
            &server.addr(),
            Duration::from_secs(3),
        ))
        .await
        .unwrap();
        let mut req = request(
            coprocessor::Request::default(),
            &server.addr(),
            Duration::from_secs(3),
        );
        req.cmd = tikv_layers::Command::CopStream(coprocessor::Request::default());
        t.send_request(req).await.unwrap();
        if mutual {
            // Without a client certificate the handshake is refused.
            let tls = tikv::config::Security::default()
                .with_cluster_ssl_ca(write(&dir, "ca2.pem", &pki.ca_pem))
                .to_tls_config()
                .await
                .unwrap();
            let t = Transport::new(TransportConfig::default().with_tls(tls));
            let r = t
                .send_request(request(
                    kvrpcpb::GetRequest::default(),
                    &server.addr(),
                    Duration::from_secs(3),
                ))
                .await;
            assert!(r.is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn tls() {
        run(false).await;
    }

    #[tokio::test]
    async fn mtls() {
        run(true).await;
    }
}

/// Every command goes out unary (batching off) to the embedded cluster's gRPC face and
/// comes back as the matching response type or a typed error; nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_unary_against_the_mock_cluster() {
    use tikv::mock::{Mock, MockGrpc, MockOptions};
    use tikv_layers::Command;

    let m = Mock::new(MockOptions::default());
    let (stores, _, region, _) = m.cluster().bootstrap_with_multi_stores(1);
    let _grpc = MockGrpc::start(&m).unwrap();
    let addr = m.cluster().get_store(stores[0]).unwrap().address;
    let (r, _) = m.cluster().get_region(region).unwrap();
    let ctx = kvrpcpb::Context {
        region_id: r.id,
        region_epoch: r.region_epoch,
        peer: r.peers.first().copied(),
        ..Default::default()
    };
    let t = transport(TikvClientConfig::default().with_max_batch_size(0));
    let cmds: Vec<Command> = CmdType::ALL.iter().map(|t| t.empty_command()).collect();
    assert_eq!(cmds.len(), CmdType::ALL.len());
    let mut answered = 0;
    for cmd in cmds {
        let t_cmd = cmd.cmd_type();
        let mut req = request(cmd, &addr, Duration::from_secs(5));
        req.context = ctx.clone();
        match t.send_request(req).await {
            Ok(resp) => {
                assert_eq!(resp.cmd_type(), t_cmd);
                answered += 1;
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    tikv_layers::ErrorKind::Grpc | tikv_layers::ErrorKind::Transport
                ),
                "{t_cmd}: {e:?}"
            ),
        }
    }
    assert!(answered >= 30, "only {answered} commands were answered");
}

// Caller cancellation (SL-4/TE-1): canceling a request's backoffer token while it waits
// for its answer fails it at once with `Canceled`, on the batch and the unary path, and
// leaves other requests alone.
#[tokio::test]
async fn caller_cancellation_fails_only_that_request() {
    let server = MockServer::start().await;
    server.set_delay(Duration::from_millis(300));
    let addr = server.addr();
    for batch in [128, 0] {
        let t = transport(
            TikvClientConfig::default()
                .with_max_batch_size(batch)
                .with_grpc_connection_count(1),
        );
        let canceled = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(5),
        );
        let token = canceled.backoffer.cancel_token();
        let other = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(5),
        );
        let (t1, t2) = (t.clone(), t.clone());
        let h1 = tokio::spawn(async move { t1.send_request(canceled).await });
        let h2 = tokio::spawn(async move { t2.send_request(other).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        token.cancel();
        let err = h1.await.unwrap().unwrap_err();
        assert!(
            matches!(err.detail(), ErrorDetail::Canceled),
            "batch {batch}: {}",
            message(&err)
        );
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "batch {batch}"
        );
        assert!(ErrConn::of(&err).is_some());
        h2.await.unwrap().unwrap();
        // A request canceled before it is sent never reaches the server.
        let before =
            server.calls("kv_prewrite").len() + server.state.batch_requests.load(Ordering::SeqCst);
        let req = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(5),
        );
        req.backoffer.cancel_token().cancel();
        let err = t.send_request(req).await.unwrap_err();
        assert!(matches!(err.detail(), ErrorDetail::Canceled));
        let after =
            server.calls("kv_prewrite").len() + server.state.batch_requests.load(Ordering::SeqCst);
        assert_eq!(before, after, "batch {batch}");
    }
}

/// Logs `before <name>` and `after <name>` (client-go's `MockInterceptor`).
struct Logging {
    name: &'static str,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl tikv_layers::interceptor::Interceptor for Logging {
    fn name(&self) -> &str {
        self.name
    }
    fn before(&self, _attempt: &mut RpcRequest) -> Result<(), Error> {
        self.log
            .lock()
            .unwrap()
            .push(format!("before {}", self.name));
        Ok(())
    }
    fn after(
        &self,
        _attempt: &tikv_layers::interceptor::AttemptInfo,
        _outcome: &mut Result<RpcResponse, Error>,
    ) {
        self.log
            .lock()
            .unwrap()
            .push(format!("after {}", self.name));
    }
}

// client-go: T-RPC-008 TestInterceptor
#[tokio::test]
async fn interceptor() {
    use tower::Layer;
    let server = MockServer::start().await;
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let layer = tikv_layers::interceptor::InterceptorLayer::default()
        .link(Logging {
            name: "INTERCEPTOR-1",
            log: log.clone(),
        })
        .link(Logging {
            name: "INTERCEPTOR-2",
            log: log.clone(),
        });
    let mut svc = layer.layer(transport(TikvClientConfig::default()));
    let req = request(
        kvrpcpb::GetRequest::default(),
        &server.addr(),
        Duration::from_secs(2),
    );
    svc.ready().await.unwrap().call(req).await.unwrap();
    // Both ran, in link order, each bracketing the call.
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "before INTERCEPTOR-1",
            "before INTERCEPTOR-2",
            "after INTERCEPTOR-2",
            "after INTERCEPTOR-1"
        ]
    );
}

// client-go: T-RPC-015 TestStreamFirstRecvErrorClosesLease
#[tokio::test]
async fn stream_first_recv_error_closes_lease() {
    let server = MockServer::start().await;
    *server.state.first_recv_error.lock().unwrap() =
        Some(tonic::Status::internal("first recv failed"));
    let t = transport(TikvClientConfig::default().with_max_batch_size(0));
    let cases: Vec<(&str, tikv_layers::Command)> = vec![
        (
            "cop stream",
            tikv_layers::Command::CopStream(coprocessor::Request::default()),
        ),
        (
            "batch cop stream",
            tikv_layers::Command::BatchCop(coprocessor::BatchRequest::default()),
        ),
        (
            "mpp stream",
            tikv_layers::Command::MppConn(tikv_proto::mpp::EstablishMppConnectionRequest::default()),
        ),
    ];
    for (i, (name, cmd)) in cases.into_iter().enumerate() {
        let req = request(cmd, &server.addr(), Duration::from_secs(60));
        let err = t.send_request(req).await.unwrap_err();
        assert!(
            message(&err).contains("first recv failed"),
            "{name}: {}",
            message(&err)
        );
        // The call's stream was released, not leased for a minute.
        let start = Instant::now();
        while server.state.streams_released.load(Ordering::SeqCst) < i + 1 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: stream kept"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// client-go: T-RPC-043 TestSendRequestAsyncUpdateTiKVRUV2
#[tokio::test]
async fn send_request_async_update_tikv_ruv2() {
    use tikv_layers::ru::{RuDetails, RuV2Weights};
    use tikvpb::batch_commands_response::response::Cmd;
    let server = MockServer::start().await;
    server.set_hook(Some(Arc::new(|req| {
        assert_eq!(req.request_ids.len(), 1);
        let prewrite = kvrpcpb::PrewriteResponse {
            exec_details_v2: Some(kvrpcpb::ExecDetailsV2 {
                ru_v2: Some(kvrpcpb::Ruv2 {
                    kv_engine_cache_miss: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        HookReply::Reply(BatchCommandsResponse {
            request_ids: req.request_ids.clone(),
            responses: vec![tikvpb::batch_commands_response::Response {
                cmd: Some(Cmd::Prewrite(prewrite)),
            }],
            ..Default::default()
        })
    })));
    let weights = RuV2Weights::default();
    let t = transport(TikvClientConfig::default().with_ru_v2(weights));
    let call = |req: RpcRequest| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        t.send_request_async(req, move |r| {
            let _ = tx.send(r);
        });
        rx
    };
    let write_rpcs = |resp: &RpcResponse| {
        resp.resp
            .exec_details_v2()
            .and_then(|d| d.ru_v2)
            .map_or(0, |r| r.write_rpc_count)
    };

    let ru = Arc::new(RuDetails::new());
    let mut req = request(
        kvrpcpb::PrewriteRequest::default(),
        &server.addr(),
        Duration::from_secs(5),
    );
    req.extensions.insert(ru.clone());
    let resp = call(req).await.unwrap().unwrap();
    assert_eq!(resp.cmd_type(), CmdType::Prewrite);
    assert_eq!(write_rpcs(&resp), 1);
    let expected = (weights.resource_manager_write_cnt_tikv + weights.tikv_kv_engine_cache_miss)
        * weights.ru_scale;
    assert!(
        (ru.tikv_ru_v2() - expected).abs() < 1e-9,
        "{}",
        ru.tikv_ru_v2()
    );
    let drained = ru.drain_ru_v2().unwrap();
    assert_eq!(drained.write_rpc_count, 1);
    assert_eq!(drained.kv_engine_cache_miss, 1);
    assert!(ru.drain_ru_v2().is_none());

    // An internal "others" request bypasses RU accounting.
    let bypass = Arc::new(RuDetails::new());
    let mut req = request(
        kvrpcpb::PrewriteRequest::default(),
        &server.addr(),
        Duration::from_secs(5),
    );
    req.context.request_source = "xxx_internal_others".into();
    req.extensions.insert(bypass.clone());
    let resp = call(req).await.unwrap().unwrap();
    assert_eq!(resp.cmd_type(), CmdType::Prewrite);
    assert_eq!(write_rpcs(&resp), 0);
    assert_eq!(bypass.tikv_ru_v2(), 0.0);
    assert!(bypass.drain_ru_v2().is_none());
}

/// Panics in `on_health_feedback` while armed: a fault inside the receive loop.
#[derive(Default)]
struct PanickingListener(std::sync::atomic::AtomicBool);

impl EventListener for PanickingListener {
    fn on_health_feedback(&self, _feedback: &kvrpcpb::HealthFeedback) {
        if self.0.load(Ordering::SeqCst) {
            panic!("injected panic in the batch receive loop");
        }
    }
}

// client-go injects the panic with a failpoint in `failPendingRequests`; here a panicking
// event listener, user code run by the receive loop, is the fault.
// client-go: T-RPC-054 TestPanicInRecvLoop
#[tokio::test]
async fn panic_in_recv_loop() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let t = Transport::new(
        TransportConfig::new(TikvClientConfig::default().with_grpc_connection_count(1))
            .with_dial_timeout(Duration::from_millis(333)),
    );
    let l = Arc::new(PanickingListener::default());
    l.0.store(true, Ordering::SeqCst);
    t.set_event_listener(l.clone());
    let req = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &addr,
        Duration::from_millis(500),
    );
    let err = t.send_request(req).await.unwrap_err();
    assert_eq!(
        transport_message(&err),
        Some(tikv::transport::RECV_LOOP_PANICKED),
        "{}",
        message(&err)
    );
    l.0.store(false, Ordering::SeqCst);
    let req = || {
        request(
            tikvpb::BatchCommandsEmptyRequest::default(),
            &addr,
            Duration::from_secs(4),
        )
    };
    let start = Instant::now();
    loop {
        match t.send_request(req()).await {
            Ok(_) => break,
            Err(e) => {
                // The stream may still be re-opening right after the fault.
                assert!(start.elapsed() < Duration::from_secs(4), "{}", message(&e));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

// client-go: T-RPC-055 TestRecvErrorInMultipleRecvLoops
#[tokio::test]
async fn recv_error_in_multiple_recv_loops() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let t = transport(
        TikvClientConfig::default()
            .with_max_batch_size(128)
            .with_grpc_connection_count(1),
    );
    let hosts = ["", "127.0.0.1:6666", "127.0.0.1:7777", "127.0.0.1:8888"];
    let prewrite = |host: &str| {
        let mut req = request(
            kvrpcpb::PrewriteRequest::default(),
            &addr,
            Duration::from_secs(10),
        );
        if !host.is_empty() {
            req.target.forwarded_host = Some(host.to_owned());
        }
        req
    };
    // One stream per host.
    for host in hosts {
        t.send_request(prewrite(host)).await.unwrap();
    }
    assert_eq!(server.calls("batch_commands").len(), 4);
    let pool = t.pool(&addr).unwrap();
    assert_eq!(pool.epochs().len(), 1);
    let epoch = pool.epochs()[0];

    // Each stream fails right after answering one request.
    for host in hosts {
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let state = server.state.clone();
        server.set_hook(Some(Arc::new(move |req| {
            let resp = state.default_reply(req);
            if armed.swap(false, Ordering::SeqCst) {
                HookReply::ReplyThenFail(resp, tonic::Status::unavailable("injected recv error"))
            } else {
                HookReply::Reply(resp)
            }
        })));
        t.send_request(prewrite(host)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.set_hook(None);
    }
    // Wait for the reconnection.
    let start = Instant::now();
    while pool.epochs()[0] == epoch || !pool.has_ready_client() {
        assert!(start.elapsed() < Duration::from_secs(5), "no reconnection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for host in hosts {
        let start = Instant::now();
        while let Err(e) = t.send_request(prewrite(host)).await {
            assert!(start.elapsed() < Duration::from_secs(5), "{}", message(&e));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // One reconnection, and every stream was re-opened.
    assert_eq!(pool.epochs(), vec![epoch + 1]);
    let calls = server.calls("batch_commands");
    assert_eq!(calls.len(), 8, "{calls:?}");
    for host in hosts {
        let want: Vec<String> = if host.is_empty() {
            vec![]
        } else {
            vec![host.to_owned()]
        };
        assert_eq!(
            calls.iter().filter(|(f, _)| *f == want).count(),
            2,
            "{host}"
        );
    }
}

// client-go: T-RPC-035 TestRandomRestartStoreAndForwarding
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_restart_store_and_forwarding() {
    // A load test: keep it apart from the latency comparison.
    let _serial = TIMING.lock().await;
    let store1 = Arc::new(MockServer::start().await);
    let store2 = Arc::new(MockServer::start().await);
    let (addr1, addr2) = (store1.addr(), store2.addr());
    let t = transport(TikvClientConfig::default());
    let pool = t.pool(&addr1).unwrap();
    let concurrency = 50;
    let done = Arc::new(AtomicUsize::new(0));
    // Stop and restart store1 (mostly) or store2 at random until the senders finish.
    let restarter = {
        let (s1, s2, done) = (store1.clone(), store2.clone(), done.clone());
        tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < concurrency {
                let store = if rand::random_range(0..10) < 9 {
                    &s1
                } else {
                    &s2
                };
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..200))).await;
                store.stop();
                assert!(!store.is_running());
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..200))).await;
                store.restart().await;
            }
        })
    };
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (t, addr1, addr2, done) = (t.clone(), addr1.clone(), addr2.clone(), done.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..60 {
                let mut req = request(
                    coprocessor::Request::default(),
                    &addr1,
                    Duration::from_millis(50),
                );
                if i % 2 != 0 {
                    req.target.forwarded_host = Some(addr2.clone());
                }
                if let Err(e) = t.send_request(req).await {
                    // Only connection-type failures: timeouts, broken or refused
                    // connections and streams, no available connection.
                    let ok = matches!(
                        e.kind(),
                        tikv_layers::ErrorKind::Timeout | tikv_layers::ErrorKind::Transport
                    ) || e
                        .grpc_status()
                        .is_some_and(|s| s.code() == tonic::Code::Unavailable);
                    assert!(ok, "unexpected error: {}", message(&e));
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    restarter.await.unwrap();
    // The concurrency accounting of every batch client is intact.
    for (in_flight, available) in pool.client_load() {
        assert!(in_flight >= 0, "in flight {in_flight}");
        assert!(available > 0, "in flight {in_flight}");
    }
}

/// Sends one unary `KvGet` (batching off) and one `KvPrewrite` through a batch-commands
/// stream (batching on) with `compression`, both answered, and returns the
/// (`grpc-encoding`, `grpc-accept-encoding`) headers the server saw on each call.
async fn compression_headers(
    compression: GrpcCompression,
) -> [(Option<String>, Option<String>); 2] {
    let server = MockServer::start().await;
    let addr = server.addr();
    let cfg = TikvClientConfig::default()
        .with_grpc_connection_count(1)
        .with_grpc_compression(compression);
    let unary = transport(cfg.clone().with_max_batch_size(0));
    let req = request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(10),
    );
    let resp = unary.send_request(req).await.unwrap();
    assert!(matches!(resp.resp, tikv_layers::CommandResponse::Get(_)));
    let batched = transport(cfg.with_max_batch_size(128));
    let req = request(
        kvrpcpb::PrewriteRequest::default(),
        &addr,
        Duration::from_secs(10),
    );
    let resp = batched.send_request(req).await.unwrap();
    assert!(matches!(
        resp.resp,
        tikv_layers::CommandResponse::Prewrite(_)
    ));
    // The prewrite really went over the stream.
    assert_eq!(server.state.batch_requests.load(Ordering::Relaxed), 1);
    assert!(server.calls("kv_prewrite").is_empty());
    let unary = server.encodings("kv_get");
    let batch = server.encodings("batch_commands");
    assert_eq!((unary.len(), batch.len()), (1, 1));
    [unary[0].clone(), batch[0].clone()]
}

// TP-4: with gzip configured, unary calls and batch-commands streams send gzip-compressed
// messages (`grpc-encoding: gzip`) and accept gzip responses, which the server then sends
// (client-go's `grpc.UseCompressor(gzip)` call option).
#[tokio::test]
async fn gzip_compression_on_unary_and_batch_calls() {
    for (encoding, accept) in compression_headers(GrpcCompression::Gzip).await {
        assert_eq!(encoding.as_deref(), Some("gzip"));
        let accept = accept.unwrap_or_default();
        assert!(
            accept.split(',').any(|e| e.trim() == "gzip"),
            "grpc-accept-encoding {accept:?}"
        );
    }
}

// TP-4: compression is off by default; then no call carries a compression header, and the
// server (which could gzip) answers uncompressed.
#[tokio::test]
async fn no_compression_headers_when_off() {
    assert_eq!(
        TikvClientConfig::default().grpc_compression,
        GrpcCompression::None
    );
    for (encoding, accept) in compression_headers(GrpcCompression::None).await {
        assert_eq!(encoding, None);
        assert_eq!(accept, None);
    }
}
