//! Request collapsing (TP-22; client-go `internal/client/client_collapse.go`, `reqCollapse`).
//!
//! What a caller relies on: identical whole-region `ResolveLock` calls in flight share one
//! RPC and all get its answer (or its error, typed); other requests pass through untouched;
//! a caller that goes away does not cancel the shared call for the others; once the shared
//! call ends the next identical call sends a new RPC; and every waiter keeps its own
//! deadline while the shared call runs with `ReadTimeoutShort`. The ported table test
//! (T-RPC-021) lives in `tests/transport`; these tests drive a `tower-test` mock in paused
//! time, so every interleaving is fixed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tikv_layers::{
    AttemptDetails, BoxError, CommandResponse, Error, ErrorDetail, ErrorKind, RpcRequest,
    RpcResponse,
};
use tikv_proto::kvrpcpb;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use crate::config::{READ_TIMEOUT_SHORT, TikvClientConfig};
use crate::transport::{Collapse, CollapseLayer, collapse_key};

/// The inner service: a `tower-test` mock whose boxed errors become the client's `Error`.
type Inner = tower::util::MapErr<mock::Mock<RpcRequest, RpcResponse>, fn(BoxError) -> Error>;
type Handle = mock::Handle<RpcRequest, RpcResponse>;

fn inner() -> (Inner, Handle) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    (
        svc.map_err(Error::from_boxed as fn(BoxError) -> Error),
        handle,
    )
}

/// Calls `svc` once it is ready: the waiter's future, not yet polled.
async fn call<S>(svc: &mut S, req: RpcRequest) -> S::Future
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    svc.ready().await.unwrap().call(req)
}

/// A whole-region resolve of transaction `start_version` in `region`, sent by caller `addr`
/// with its own `timeout` (`None`: the command's default).
fn resolve(
    region: u64,
    start_version: u64,
    is_async: bool,
    addr: &str,
    timeout: Option<Duration>,
) -> RpcRequest {
    let mut r = RpcRequest::new(kvrpcpb::ResolveLockRequest {
        start_version,
        commit_version: start_version + 10,
        is_async,
        ..Default::default()
    });
    r.context.region_id = region;
    r.target.addr = addr.to_owned();
    r.options.timeout = timeout;
    r
}

/// A resolve-lock "lite" request: only the listed keys (never collapsed).
fn resolve_lite(region: u64, start_version: u64, addr: &str) -> RpcRequest {
    let mut r = resolve(
        region,
        start_version,
        false,
        addr,
        Some(Duration::from_secs(2)),
    );
    if let tikv_layers::Command::ResolveLock(m) = &mut r.cmd {
        m.keys = vec![b"k1".to_vec()];
    }
    r
}

/// A batch resolve of the GC worker: explicit transaction statuses (never collapsed).
fn resolve_batch(region: u64, addr: &str) -> RpcRequest {
    let mut r = RpcRequest::new(kvrpcpb::ResolveLockRequest {
        txn_infos: vec![kvrpcpb::TxnInfo {
            txn: 10,
            status: 20,
            ..Default::default()
        }],
        ..Default::default()
    });
    r.context.region_id = region;
    r.target.addr = addr.to_owned();
    r.options.timeout = Some(Duration::from_secs(2));
    r
}

/// The answer of the store, tagged so a caller can tell which RPC produced it.
fn answer(tag: &str) -> RpcResponse {
    let mut resp = RpcResponse::new(kvrpcpb::ResolveLockResponse {
        error: Some(kvrpcpb::KeyError {
            abort: tag.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    });
    resp.details = details();
    resp
}

fn details() -> AttemptDetails {
    let mut d = AttemptDetails::default();
    d.addr = "store-1:20160".to_owned();
    d.store_id = 1;
    d.attempts = 1;
    d.rpc_time = Duration::from_millis(3);
    d
}

/// The tag of a resolve-lock answer (see [`answer`]).
fn tag(resp: &RpcResponse) -> String {
    match &resp.resp {
        CommandResponse::ResolveLock(r) => r.error.as_ref().map(|e| e.abort.clone()).unwrap(),
        other => panic!("not a resolve-lock answer: {:?}", other.cmd_type()),
    }
}

fn start_version(req: &RpcRequest) -> u64 {
    req.cmd.resolve_lock().unwrap().start_version
}

/// The next request that reaches the inner service, failing (not hanging) when none does.
async fn next(handle: &mut Handle) -> (RpcRequest, mock::SendResponse<RpcResponse>) {
    tokio::time::timeout(Duration::from_secs(60), handle.next_request())
        .await
        .expect("no request reached the inner service")
        .expect("the inner service was dropped")
}

/// Asserts that nothing else reaches the inner service (paused time: the runtime is idle
/// long before the minute passes).
async fn assert_no_more_requests(handle: &mut Handle) {
    let next = tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await;
    assert!(
        next.is_err(),
        "unexpected request reached the inner service"
    );
}

// Identical whole-region calls in flight share one RPC, sent with the first caller's
// request and `ReadTimeoutShort`; every caller gets the one answer and its details.
#[tokio::test(start_paused = true)]
async fn identical_calls_in_flight_share_one_rpc_and_its_answer() {
    let (svc, mut handle) = inner();
    let mut svc = CollapseLayer::new(TikvClientConfig::default()).layer(svc);
    let a = call(
        &mut svc,
        resolve(1, 10, false, "a", Some(Duration::from_secs(2))),
    )
    .await;
    let b = call(
        &mut svc,
        resolve(1, 10, false, "b", Some(Duration::from_secs(5))),
    )
    .await;
    let c = call(&mut svc, resolve(1, 10, false, "c", None)).await;

    let (seen, send) = next(&mut handle).await;
    // The shared call is a copy of the first caller's request, with the resolve-lock
    // timeout instead of the caller's (client-go sends it with `ReadTimeoutShort`).
    assert_eq!(seen.context.region_id, 1);
    assert_eq!(start_version(&seen), 10);
    assert_eq!(seen.target.addr, "a");
    assert_eq!(seen.options.timeout, Some(READ_TIMEOUT_SHORT));
    send.send_response(answer("shared"));

    for waiter in [a, b, c] {
        let resp = waiter.await.unwrap();
        assert_eq!(tag(&resp), "shared");
        assert_eq!(resp.details, details());
    }
    assert_no_more_requests(&mut handle).await;
}

// Only whole-region resolves of the same (region, transaction, async flag) collapse:
// another region, another transaction, the async flavour, key-listed ("lite") and batch
// (txn-info) resolves and every other command each get their own RPC, unchanged.
#[tokio::test(start_paused = true)]
async fn other_requests_are_not_collapsed_and_pass_through_unchanged() {
    assert_eq!(
        collapse_key(&resolve(1, 10, false, "", None)).as_deref(),
        Some("1-10-false")
    );
    assert_eq!(
        collapse_key(&resolve(7, 42, true, "", None)).as_deref(),
        Some("7-42-true")
    );
    assert_eq!(collapse_key(&resolve_lite(1, 10, "")), None);
    assert_eq!(collapse_key(&resolve_batch(1, "")), None);
    assert_eq!(
        collapse_key(&RpcRequest::new(kvrpcpb::GetRequest::default())),
        None
    );

    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    let timeout = Some(Duration::from_secs(2));
    let mut get = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    get.target.addr = "get".to_owned();
    get.options.timeout = timeout;
    let reqs = vec![
        resolve(1, 10, false, "base", timeout),
        resolve(2, 10, false, "other-region", timeout),
        resolve(1, 11, false, "other-txn", timeout),
        resolve(1, 10, true, "async", timeout),
        resolve_lite(1, 10, "lite-1"),
        resolve_lite(1, 10, "lite-2"),
        resolve_batch(1, "batch-1"),
        resolve_batch(1, "batch-2"),
        get,
    ];
    let n = reqs.len();
    let mut waiters = Vec::new();
    for r in reqs {
        let addr = r.target.addr.clone();
        waiters.push((addr, call(&mut svc, r).await));
    }
    for _ in 0..n {
        let (seen, send) = next(&mut handle).await;
        let addr = seen.target.addr.clone();
        let collapsed = collapse_key(&seen).is_some();
        // Pass-through requests keep the caller's timeout; only the shared call of a
        // collapsible resolve runs with the resolve-lock timeout.
        let expected = if collapsed {
            Some(READ_TIMEOUT_SHORT)
        } else {
            timeout
        };
        assert_eq!(seen.options.timeout, expected, "{addr}");
        if addr == "get" {
            assert_eq!(seen.cmd.get().unwrap().key, b"k");
            send.send_response(RpcResponse::new(kvrpcpb::GetResponse {
                value: b"v".to_vec(),
                ..Default::default()
            }));
        } else {
            send.send_response(answer(&addr));
        }
    }
    for (addr, waiter) in waiters {
        let resp = waiter.await.unwrap();
        if addr == "get" {
            match resp.resp {
                CommandResponse::Get(r) => assert_eq!(r.value, b"v"),
                other => panic!("not a get answer: {:?}", other.cmd_type()),
            }
        } else {
            // Each caller got the answer of its own RPC.
            assert_eq!(tag(&resp), addr);
        }
    }
    assert_no_more_requests(&mut handle).await;
}

// An error of the shared call reaches every waiter as the same typed error, and the key is
// free again afterwards: the next identical call sends a new RPC and gets its own outcome.
#[tokio::test(start_paused = true)]
async fn shared_error_reaches_every_waiter_typed() {
    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    let timeout = Some(Duration::from_secs(5));

    let a = call(&mut svc, resolve(3, 30, false, "a", timeout)).await;
    let b = call(&mut svc, resolve(3, 30, false, "b", timeout)).await;
    let (_, send) = next(&mut handle).await;
    send.send_error(Error::new(ErrorDetail::Transport {
        addr: "store-1:20160".to_owned(),
        message: "connection reset".to_owned(),
    }));
    for waiter in [a, b] {
        let err = waiter.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
        match err.detail() {
            ErrorDetail::Transport { addr, message } => {
                assert_eq!(addr, "store-1:20160");
                assert_eq!(message, "connection reset");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    // Same key again: a new RPC, whose gRPC status reaches both new waiters.
    let c = call(&mut svc, resolve(3, 30, false, "c", timeout)).await;
    let d = call(&mut svc, resolve(3, 30, false, "d", timeout)).await;
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.target.addr, "c");
    send.send_error(tonic::Status::unavailable("store is down"));
    for waiter in [c, d] {
        let err = waiter.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Grpc);
        let status = err.grpc_status().unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "store is down");
    }
    assert_no_more_requests(&mut handle).await;
}

// A shared call answered with another command's response fails every waiter with a typed
// `InvalidResponse` instead of handing out a wrong message.
#[tokio::test(start_paused = true)]
async fn mismatched_answer_fails_every_waiter() {
    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    let a = call(&mut svc, resolve(4, 40, false, "a", None)).await;
    let b = call(&mut svc, resolve(4, 40, false, "b", None)).await;
    let (_, send) = next(&mut handle).await;
    send.send_response(RpcResponse::new(kvrpcpb::GetResponse::default()));
    for waiter in [a, b] {
        let err = waiter.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        match err.detail() {
            ErrorDetail::InvalidResponse { expected, got } => {
                assert_eq!(*expected, "ResolveLock");
                assert_eq!(got, "Get");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
}

// A waiter that goes away (its future dropped: the caller's cancellation) does not cancel
// the shared call: the other waiters still get the answer, and with no waiter left the
// call still runs to its end and frees the key, so the next identical call sends a new RPC
// (client-go runs the shared call with a background context).
#[tokio::test(start_paused = true)]
async fn dropped_waiter_does_not_cancel_the_shared_call() {
    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    let timeout = Some(Duration::from_secs(5));

    // The caller whose request started the shared call leaves before the RPC is sent.
    let first = call(&mut svc, resolve(5, 50, false, "first", timeout)).await;
    let second = call(&mut svc, resolve(5, 50, false, "second", timeout)).await;
    drop(first);
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.target.addr, "first");
    send.send_response(answer("round-1"));
    assert_eq!(tag(&second.await.unwrap()), "round-1");

    // Every waiter leaves while the RPC is in flight.
    let only = call(&mut svc, resolve(5, 50, false, "only", timeout)).await;
    let (_, send) = next(&mut handle).await;
    drop(only);
    send.send_response(answer("round-2"));
    // Let the abandoned call see its answer (paused time advances only once every task
    // is idle).
    tokio::time::sleep(Duration::from_millis(1)).await;

    // The abandoned call finished and released its key: a new call sends a new RPC.
    let later = call(&mut svc, resolve(5, 50, false, "later", timeout)).await;
    let (seen, send) = next(&mut handle).await;
    assert_eq!(seen.target.addr, "later");
    send.send_response(answer("round-3"));
    assert_eq!(tag(&later.await.unwrap()), "round-3");
    assert_no_more_requests(&mut handle).await;
}

// After the shared call ends, an identical call is not answered from the old result: it
// sends a new RPC (collapsing is for calls in flight, not a cache).
#[tokio::test(start_paused = true)]
async fn identical_call_after_the_shared_one_ends_sends_a_new_rpc() {
    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    for round in ["round-1", "round-2", "round-3"] {
        let waiter = call(&mut svc, resolve(6, 60, true, round, None)).await;
        let (seen, send) = next(&mut handle).await;
        assert_eq!(seen.target.addr, round);
        send.send_response(answer(round));
        assert_eq!(tag(&waiter.await.unwrap()), round);
    }
    assert_no_more_requests(&mut handle).await;
}

// Every waiter races the shared call against its own deadline (its request's timeout, or
// the resolve-lock default): one that runs out fails with a timeout naming its own address
// at exactly its deadline, without disturbing the shared call or the other waiters.
#[tokio::test(start_paused = true)]
async fn each_waiter_honours_its_own_deadline() {
    let (svc, mut handle) = inner();
    let mut svc = Collapse::new(svc);
    let start = Instant::now();
    let short = call(
        &mut svc,
        resolve(8, 80, false, "short", Some(Duration::from_secs(1))),
    )
    .await;
    let long = call(
        &mut svc,
        resolve(8, 80, false, "long", Some(Duration::from_secs(5))),
    )
    .await;
    let (_, send) = next(&mut handle).await;

    let err = short.await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(err.is_timeout());
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => assert_eq!(addr, "short"),
        other => panic!("unexpected error {other:?}"),
    }

    // The shared call is still running; it answers the other waiter at 2 s.
    tokio::time::sleep_until(start + Duration::from_secs(2)).await;
    send.send_response(answer("late"));
    assert_eq!(tag(&long.await.unwrap()), "late");
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    // A waiter without its own timeout gets the resolve-lock default (`ReadTimeoutShort`).
    let start = Instant::now();
    let default = call(&mut svc, resolve(8, 81, false, "default", None)).await;
    let (_, _never) = next(&mut handle).await;
    let err = default.await.unwrap_err();
    assert_eq!(start.elapsed(), READ_TIMEOUT_SHORT);
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => assert_eq!(addr, "default"),
        other => panic!("unexpected error {other:?}"),
    }
}

// A shared call that dies without a result (its task panicked) fails its waiters with an
// internal error instead of hanging them, and does not poison the key: the next identical
// call sends a new RPC.
#[tokio::test(start_paused = true)]
async fn shared_call_lost_without_a_result_frees_its_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let svc = tower::service_fn(move |_req: RpcRequest| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(n > 0, "the first shared call dies");
            Ok::<_, Error>(answer("recovered"))
        }
    });
    let mut svc = Collapse::new(svc);
    let timeout = Some(Duration::from_secs(5));
    let a = call(&mut svc, resolve(9, 90, false, "a", timeout)).await;
    let b = call(&mut svc, resolve(9, 90, false, "b", timeout)).await;
    for waiter in [a, b] {
        let err = waiter.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let c = call(&mut svc, resolve(9, 90, false, "c", timeout)).await;
    assert_eq!(tag(&c.await.unwrap()), "recovered");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// Readiness is the inner service's: back-pressure below the collapse layer reaches the
// caller, for collapsed and pass-through requests alike.
#[tokio::test(start_paused = true)]
async fn readiness_follows_the_inner_service() {
    let (svc, mut handle) = inner();
    handle.allow(0);
    let mut svc = mock::Spawn::new(Collapse::new(svc));
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
}

// The wrapper hands back the service it wraps; its `Debug` does not require `S: Debug`.
#[test]
fn accessors_reach_the_wrapped_service() {
    #[derive(Clone, PartialEq, Debug)]
    struct Named(&'static str);
    let mut svc = Collapse::new(Named("inner"));
    assert_eq!(svc.get_ref(), &Named("inner"));
    *svc.get_mut() = Named("replaced");
    assert_eq!(format!("{svc:?}"), "Collapse { .. }");
    assert_eq!(svc.into_inner(), Named("replaced"));
}
