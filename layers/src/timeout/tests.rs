//! Timeout layer unit tests (tower-test mocks, paused time).

use std::time::Duration;

use tikv_proto::kvrpcpb;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::error::{Error, ErrorDetail, ErrorKind};
use crate::request::{CmdType, RpcRequest, RpcResponse};

fn get_to(addr: &str) -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    req.target.addr = addr.to_owned();
    req
}

/// The timeout layer over a tower-test mock whose errors are mapped to ours.
fn stack<P: TimeoutPolicy + Clone>(
    layer: TimeoutLayer<P>,
) -> (
    impl Service<RpcRequest, Response = RpcResponse, Error = Error, Future: Send + 'static>
    + Send
    + 'static,
    mock::Handle<RpcRequest, RpcResponse>,
) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    (layer.layer(svc.map_err(Error::from_boxed)), handle)
}

#[test]
fn command_classes_follow_client_go_callers() {
    use CmdType as C;
    let p = DefaultTimeoutPolicy::default();
    let cases = [
        (C::Get, READ_TIMEOUT_SHORT),
        (C::Prewrite, READ_TIMEOUT_SHORT),
        (C::Commit, READ_TIMEOUT_SHORT),
        (C::PessimisticLock, READ_TIMEOUT_SHORT),
        (C::ResolveLock, READ_TIMEOUT_SHORT),
        (C::CheckTxnStatus, READ_TIMEOUT_SHORT),
        (C::TxnHeartBeat, READ_TIMEOUT_SHORT),
        (C::SplitRegion, READ_TIMEOUT_SHORT),
        (C::StoreSafeTS, READ_TIMEOUT_SHORT),
        (C::RawGet, READ_TIMEOUT_SHORT),
        (C::RawScan, READ_TIMEOUT_SHORT),
        (C::RawDeleteRange, READ_TIMEOUT_SHORT),
        (C::RawBatchPut, READ_TIMEOUT_SHORT),
        (C::BatchGet, READ_TIMEOUT_MEDIUM),
        (C::BufferBatchGet, READ_TIMEOUT_MEDIUM),
        (C::Scan, READ_TIMEOUT_MEDIUM),
        (C::ScanLock, READ_TIMEOUT_MEDIUM),
        (C::DeleteRange, READ_TIMEOUT_MEDIUM),
        (C::Cop, COPR_REQ_TIMEOUT),
        (C::CopStream, COPR_REQ_TIMEOUT),
        (C::BatchCop, COPR_REQ_TIMEOUT),
        (C::MppTask, COPR_REQ_TIMEOUT),
        (C::GetHealthFeedback, HEALTH_FEEDBACK_TIMEOUT),
        (C::UnsafeDestroyRange, UNSAFE_DESTROY_RANGE_TIMEOUT),
    ];
    for (cmd, want) in cases {
        assert_eq!(p.timeout_for(cmd), want, "{cmd}");
    }
    assert_eq!(READ_TIMEOUT_SHORT, Duration::from_secs(30));
    assert_eq!(READ_TIMEOUT_MEDIUM, Duration::from_secs(60));
    assert_eq!(UNSAFE_DESTROY_RANGE_TIMEOUT, Duration::from_secs(300));

    let p = p
        .with_short(Duration::from_secs(1))
        .with_medium(Duration::from_secs(2))
        .with_coprocessor(Duration::from_secs(3))
        .with_health_feedback(Duration::from_secs(4))
        .with_unsafe_destroy_range(Duration::from_secs(5));
    assert_eq!(p.timeout_for(C::Get), Duration::from_secs(1));
    assert_eq!(p.timeout_for(C::Scan), Duration::from_secs(2));
    assert_eq!(p.timeout_for(C::Cop), Duration::from_secs(3));
    assert_eq!(p.timeout_for(C::GetHealthFeedback), Duration::from_secs(4));
    assert_eq!(p.timeout_for(C::UnsafeDestroyRange), Duration::from_secs(5));
    // Every command has a class and a non-zero default.
    let d = DefaultTimeoutPolicy::new();
    for cmd in CmdType::ALL {
        assert!(d.timeout_for(*cmd) > Duration::ZERO, "{cmd}");
    }
}

#[test]
fn apply_fills_only_what_the_caller_left_unset() {
    let p = DefaultTimeoutPolicy::default();
    let mut req = get_to("a");
    assert_eq!(apply_timeout(&p, &mut req), READ_TIMEOUT_SHORT);
    assert_eq!(req.options.timeout, Some(READ_TIMEOUT_SHORT));
    assert_eq!(req.context.max_execution_duration_ms, 30_000);
    // Idempotent.
    assert_eq!(apply_timeout(&p, &mut req), READ_TIMEOUT_SHORT);
    assert_eq!(req.context.max_execution_duration_ms, 30_000);

    // A caller's timeout wins and becomes the execution-duration hint (TP-10: the KV read
    // timeout sets both).
    let mut req = get_to("a");
    req.options.timeout = Some(Duration::from_millis(500));
    assert_eq!(apply_timeout(&p, &mut req), Duration::from_millis(500));
    assert_eq!(req.context.max_execution_duration_ms, 500);

    // An explicit execution-duration hint (write commands: MaxWriteExecutionTime) is kept.
    let mut req = RpcRequest::new(kvrpcpb::PrewriteRequest::default());
    req.context.max_execution_duration_ms = 20_000;
    assert_eq!(apply_timeout(&p, &mut req), READ_TIMEOUT_SHORT);
    assert_eq!(req.context.max_execution_duration_ms, 20_000);

    // Saturates instead of overflowing.
    let mut req = get_to("a");
    req.options.timeout = Some(Duration::MAX);
    apply_timeout(&p, &mut req);
    assert_eq!(req.context.max_execution_duration_ms, u64::MAX);
}

#[tokio::test(start_paused = true)]
async fn stamps_the_attempt_and_passes_the_answer_through() {
    let (mut svc, mut handle) = stack(TimeoutLayer::new());
    let fut = svc.ready().await.unwrap().call(get_to("store-1:20160"));
    let task = tokio::spawn(fut);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.options.timeout, Some(READ_TIMEOUT_SHORT));
    assert_eq!(req.context.max_execution_duration_ms, 30_000);
    send.send_response(RpcResponse::new(kvrpcpb::GetResponse {
        value: b"v".to_vec(),
        ..Default::default()
    }));
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.cmd_type(), CmdType::Get);
}

#[tokio::test(start_paused = true)]
async fn a_silent_attempt_fails_with_attempt_timeout_at_its_deadline() {
    let (mut svc, mut handle) = stack(TimeoutLayer::new());
    let start = Instant::now();
    let mut req = RpcRequest::new(kvrpcpb::BatchGetRequest::default());
    req.target.addr = "store-2:20160".into();
    let fut = svc.ready().await.unwrap().call(req);
    let task = tokio::spawn(fut);
    // Keep the responder alive: the inner call never answers.
    let (_req, _send) = handle.next_request().await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), READ_TIMEOUT_MEDIUM);
    assert!(err.is_timeout());
    assert!(err.is_retryable());
    assert_eq!(err.kind(), ErrorKind::Timeout);
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => assert_eq!(addr, "store-2:20160"),
        d => panic!("unexpected {d:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_callers_timeout_bounds_the_attempt() {
    let (mut svc, mut handle) = stack(TimeoutLayer::new());
    let start = Instant::now();
    let mut req = get_to("a");
    req.options.timeout = Some(Duration::from_millis(250));
    let task = tokio::spawn(svc.ready().await.unwrap().call(req));
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.context.max_execution_duration_ms, 250);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_the_deadline_wins() {
    let inner = tower::service_fn(|req: RpcRequest| async move {
        let t = req.options.timeout.unwrap_or_default();
        tokio::time::sleep(t).await;
        Ok::<_, Error>(RpcResponse::new(kvrpcpb::GetResponse::default()))
    });
    let mut svc = TimeoutLayer::new().layer(inner);
    let start = Instant::now();
    let resp = svc.ready().await.unwrap().call(get_to("a")).await;
    assert!(resp.is_ok());
    assert_eq!(start.elapsed(), READ_TIMEOUT_SHORT);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    let (mut svc, mut handle) = stack(TimeoutLayer::new());
    let task = tokio::spawn(svc.ready().await.unwrap().call(get_to("a")));
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error(Error::from(ErrorDetail::Transport {
        addr: "a".into(),
        message: "reset".into(),
    }));
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
}

#[tokio::test(start_paused = true)]
async fn a_custom_policy_decides_per_request() {
    let policy = |req: &RpcRequest| {
        if req.target.store_id == 7 {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(9)
        }
    };
    let (mut svc, mut handle) = stack(TimeoutLayer::with_policy(policy));
    let mut req = get_to("a");
    req.target.store_id = 7;
    let start = Instant::now();
    let task = tokio::spawn(svc.ready().await.unwrap().call(req));
    let (req, _send) = handle.next_request().await.unwrap();
    assert_eq!(req.options.timeout, Some(Duration::from_secs(1)));
    assert!(task.await.unwrap().unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[test]
fn futures_and_services_are_send_and_debug() {
    // The layer fits a boxed pipeline stage (`BoxCloneSyncService`).
    fn inner() -> tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(|_req: RpcRequest| {
            std::future::ready(Ok::<_, Error>(RpcResponse::new(
                tikv_proto::kvrpcpb::GetResponse::default(),
            )))
        }))
    }
    let _stage = tower::util::BoxCloneSyncService::new(TimeoutLayer::new().layer(inner()));
    fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<ResponseFuture<futures::future::Ready<Result<RpcResponse, Error>>>>();
    assert_send_static::<Timeout<tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error>>>(
    );
    let layer = TimeoutLayer::new();
    assert!(format!("{layer:?}").contains("DefaultTimeoutPolicy"));
}
