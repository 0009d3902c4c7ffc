//! Interceptor layer unit tests (tower-test mocks, paused time).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tikv_proto::{kvrpcpb, resource_manager};
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::error::{Error, ErrorDetail, ErrorKind, Result};
use crate::request::{RpcRequest, RpcResponse};
use crate::ru::RuDetails;

fn get() -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.target.addr = "store-1:20160".into();
    req.target.store_id = 1;
    req
}

fn ok_response() -> RpcResponse {
    RpcResponse::new(kvrpcpb::GetResponse::default())
}

/// An inner service that answers every request with an empty response (client-go's
/// `emptyClient`), recording what it received.
fn empty_client(
    seen: Arc<Mutex<Vec<RpcRequest>>>,
) -> impl Service<RpcRequest, Response = RpcResponse, Error = Error, Future: Send> + Clone {
    tower::service_fn(move |req: RpcRequest| {
        seen.lock().unwrap().push(req);
        std::future::ready(Ok::<_, Error>(ok_response()))
    })
}

/// An inner service that always fails like a broken connection (client-go's
/// `failingClient`).
fn failing_client() -> impl Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone {
    tower::service_fn(|_req: RpcRequest| {
        std::future::ready(Err::<RpcResponse, _>(Error::from(ErrorDetail::Transport {
            addr: "store-1:20160".into(),
            message: "simulated transport failure".into(),
        })))
    })
}

/// Records the order hooks run in.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

/// An interceptor that logs `before <name>` / `after <name>`.
struct Logged {
    name: String,
    log: Log,
}

impl Interceptor for Logged {
    fn name(&self) -> &str {
        &self.name
    }
    fn before(&self, _attempt: &mut RpcRequest) -> Result<()> {
        self.log.push(format!("before {}", self.name));
        Ok(())
    }
    fn after(&self, _attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        let tag = if outcome.is_ok() { "ok" } else { "err" };
        self.log.push(format!("after {} {tag}", self.name));
    }
}

fn logged(name: &str, log: &Log) -> Logged {
    Logged {
        name: name.to_owned(),
        log: log.clone(),
    }
}

// client-go: T-RPC-056 TestInterceptedClient
#[tokio::test(start_paused = true)]
async fn intercepted_client() {
    let executed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&executed);
    let mut svc = InterceptorLayer::default().layer(empty_client(Default::default()));
    let mut req = get();
    with_rpc_interceptor(
        &mut req,
        named("test", move |_: &mut RpcRequest| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }),
    );
    let _ = svc.ready().await.unwrap().call(req).await;
    assert!(executed.load(Ordering::SeqCst));
}

// client-go: T-RPC-057 TestAppendChainedInterceptor
#[tokio::test(start_paused = true)]
async fn append_chained_interceptor() {
    let executed = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mut svc = InterceptorLayer::default().layer(empty_client(Default::default()));

    let mk = |i: usize| {
        let executed = Arc::clone(&executed);
        named(i.to_string(), move |_: &mut RpcRequest| {
            executed.lock().unwrap().push(i);
            Ok(())
        })
    };

    // Sends one request carrying `it` and returns the order the interceptors ran in.
    let mut check_chained = async |it: &InterceptorChain, count: usize, expected: &[usize]| {
        assert_eq!(it.len(), count);
        executed.lock().unwrap().clear();
        let mut req = get();
        with_rpc_interceptor(&mut req, it.clone());
        let _ = svc.ready().await.unwrap().call(req).await;
        assert_eq!(*executed.lock().unwrap(), expected);
    };

    let mut it = InterceptorChain::new().link(mk(0));
    let mut expected = vec![0];
    for i in 1..3 {
        it = chain(it, mk(i));
        expected.push(i);
        check_chained(&it, i + 1, &expected).await;
    }

    let it2 = chain(mk(3), mk(4));
    check_chained(&it2, 2, &[3, 4]).await;

    let all = chain(it, it2);
    check_chained(&all, 5, &[0, 1, 2, 3, 4]).await;

    // Adding a duplicated name moves it to the end.
    let all = chain(all, mk(1));
    check_chained(&all, 5, &[0, 2, 3, 4, 1]).await;
}

#[tokio::test(start_paused = true)]
async fn onion_order_client_chain_outside_request_chain() {
    let log = Log::default();
    let layer = InterceptorLayer::new(chain(logged("c1", &log), logged("c2", &log)));
    let mut svc = layer.layer(empty_client(Default::default()));
    let mut req = get();
    with_rpc_interceptor(&mut req, logged("r1", &log));
    with_rpc_interceptor(&mut req, logged("r2", &log));
    svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(
        log.take(),
        [
            "before c1",
            "before c2",
            "before r1",
            "before r2",
            "after r2 ok",
            "after r1 ok",
            "after c2 ok",
            "after c1 ok",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn hooks_see_the_target_and_may_rewrite_the_attempt() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = InterceptorLayer::default().link(named("tag", |req: &mut RpcRequest| {
        // The attempt's target is already chosen.
        assert_eq!(req.target.addr, "store-1:20160");
        req.context.request_source = format!("tagged_{}", req.target.store_id);
        Ok(())
    }));
    let mut svc = layer.layer(empty_client(Arc::clone(&seen)));
    svc.ready().await.unwrap().call(get()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].context.request_source, "tagged_1");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_skips_the_inner_call_and_reaches_the_outer_hooks() {
    let log = Log::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reject = named("reject", |_: &mut RpcRequest| {
        Err(ErrorDetail::InvalidArgument("fenced".into()).into())
    });
    let layer = InterceptorLayer::new(
        InterceptorChain::new()
            .link(logged("outer", &log))
            .link(reject)
            .link(logged("inner", &log)),
    );
    let mut svc = layer.layer(empty_client(Arc::clone(&seen)));
    let err = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(seen.lock().unwrap().is_empty(), "inner service was called");
    // The rejecting interceptor and those inside it do not see the outcome.
    assert_eq!(log.take(), ["before outer", "after outer err"]);
}

#[tokio::test(start_paused = true)]
async fn after_hooks_may_replace_the_outcome() {
    struct Rescue;
    impl Interceptor for Rescue {
        fn name(&self) -> &str {
            "rescue"
        }
        fn before(&self, _: &mut RpcRequest) -> Result<()> {
            Ok(())
        }
        fn after(&self, info: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
            assert_eq!(info.cmd, crate::CmdType::Get);
            assert_eq!(info.store_id, 1);
            if outcome.is_err() {
                *outcome = Ok(RpcResponse::new(kvrpcpb::GetResponse {
                    not_found: true,
                    ..Default::default()
                }));
            }
        }
    }
    let mut svc = InterceptorLayer::default()
        .link(Rescue)
        .layer(failing_client());
    let resp = svc.ready().await.unwrap().call(get()).await.unwrap();
    match resp.resp {
        crate::CommandResponse::Get(r) => assert!(r.not_found),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn anonymous_interceptors_never_replace_each_other() {
    let noop = |_: &mut RpcRequest| Ok(());
    let c = InterceptorChain::new()
        .link(noop)
        .link(noop)
        .link(named("", noop));
    assert_eq!(c.len(), 3);
    let c = c.link(named("x", noop)).link(named("x", noop));
    assert_eq!(c.len(), 4);
}

#[test]
fn shared_and_named_chains() {
    let noop = |_: &mut RpcRequest| Ok(());
    let inner = chain(named("a", noop), named("b", noop));
    // A shared chain is flattened like a plain one.
    let shared: Arc<dyn Interceptor> = Arc::new(inner.clone());
    let mut c = InterceptorChain::new();
    c.push_shared(shared);
    assert_eq!(c.names().collect::<Vec<_>>(), ["a", "b"]);
    // A named chain is one opaque member.
    let c = InterceptorChain::new().link(named("group", inner.clone()));
    assert_eq!(c.names().collect::<Vec<_>>(), ["group"]);
    // Linking a chain into itself keeps one of each.
    let c = inner.clone().link(inner.clone());
    assert_eq!(c.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(inner.name(), "interceptor-chain");
    assert_eq!(format!("{inner:?}"), r#"["a", "b"]"#);
}

#[test]
fn linking_into_a_clone_leaves_the_original_alone() {
    let noop = |_: &mut RpcRequest| Ok(());
    let base = chain(named("a", noop), named("b", noop));
    let extended = base.clone().link(named("a", noop)).link(named("c", noop));
    assert_eq!(base.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(extended.names().collect::<Vec<_>>(), ["b", "a", "c"]);

    // The same holds for a request's chain: a cloned request extends its own copy.
    let mut req = get();
    with_rpc_interceptor(&mut req, named("a", noop));
    let mut sub = req.clone();
    with_rpc_interceptor(&mut sub, named("b", noop));
    assert_eq!(rpc_interceptor(&req).map(InterceptorChain::len), Some(1));
    assert_eq!(rpc_interceptor(&sub).map(InterceptorChain::len), Some(2));
}

#[test]
fn a_chain_used_as_one_interceptor_keeps_the_onion() {
    let log = Log::default();
    let reject = named("reject", |_: &mut RpcRequest| {
        Err(ErrorDetail::InvalidArgument("no".into()).into())
    });
    let inner = InterceptorChain::new()
        .link(logged("x", &log))
        .link(reject)
        .link(logged("y", &log));
    let opaque = named("opaque", inner);
    let mut req = get();
    let err = opaque.before(&mut req).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(log.take(), ["before x", "after x err"]);

    let ok = named("ok", chain(logged("p", &log), logged("q", &log)));
    ok.before(&mut req).unwrap();
    let mut outcome = Ok(ok_response());
    ok.after(&AttemptInfo::of(&req), &mut outcome);
    assert_eq!(
        log.take(),
        ["before p", "before q", "after q ok", "after p ok"]
    );
}

#[tokio::test(start_paused = true)]
async fn without_interceptors_the_inner_future_passes_through() {
    let (mock, mut handle) = mock::pair::<RpcRequest, RpcResponse>();
    let mut svc = InterceptorLayer::default().layer(mock.map_err(Error::from_boxed));
    let fut = svc.ready().await.unwrap().call(get());
    assert!(format!("{fut:?}").contains("direct"));
    let task = tokio::spawn(fut);
    let (req, send) = handle.next_request().await.unwrap();
    assert!(rpc_interceptor(&req).is_none());
    send.send_response(ok_response());
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn hooks_run_once_per_attempt_while_the_attempt_is_pending() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let (mock, mut handle) = mock::pair::<RpcRequest, RpcResponse>();
    let mut svc = InterceptorLayer::default()
        .link(named("count", move |_: &mut RpcRequest| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .layer(mock.map_err(Error::from_boxed));
    for _ in 0..3 {
        let task = tokio::spawn(svc.ready().await.unwrap().call(get()));
        let (_req, send) = handle.next_request().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        send.send_response(ok_response());
        task.await.unwrap().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A resource-control hook in the shape of client-go's `ResourceGroupKVInterceptor` as a
/// user of the chain: the request side charges the request's RU into the caller's
/// [`RuDetails`]; the response side settles only when a response came back.
struct RecordingResourceControl {
    wait_calls: AtomicUsize,
    resp_calls: AtomicUsize,
    ru_details: Arc<RuDetails>,
}

fn request_consumption() -> resource_manager::Consumption {
    resource_manager::Consumption {
        r_r_u: 11.0,
        w_r_u: 3.0,
        ..Default::default()
    }
}

impl Interceptor for RecordingResourceControl {
    fn name(&self) -> &str {
        "resource_control"
    }
    fn before(&self, attempt: &mut RpcRequest) -> Result<()> {
        let group = attempt
            .context
            .resource_control_context
            .as_ref()
            .map(|c| c.resource_group_name.as_str())
            .unwrap_or_default();
        if group.is_empty() {
            return Ok(());
        }
        self.wait_calls.fetch_add(1, Ordering::SeqCst);
        self.ru_details
            .update(&request_consumption(), Duration::ZERO);
        Ok(())
    }
    fn after(&self, _attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        if outcome.is_ok() {
            self.resp_calls.fetch_add(1, Ordering::SeqCst);
            self.ru_details
                .update(&resource_manager::Consumption::default(), Duration::ZERO);
        }
    }
}

fn recording() -> Arc<RecordingResourceControl> {
    Arc::new(RecordingResourceControl {
        wait_calls: AtomicUsize::new(0),
        resp_calls: AtomicUsize::new(0),
        ru_details: Arc::new(RuDetails::new()),
    })
}

fn rg_request() -> RpcRequest {
    let mut req = get();
    req.context.resource_control_context = Some(kvrpcpb::ResourceControlContext {
        resource_group_name: "test-rg".into(),
        ..Default::default()
    });
    req
}

// client-go: T-RPC-058 TestSendRequestDoesNotSettleAndKeepsRUDetailsOnTransportFailure
#[tokio::test(start_paused = true)]
async fn send_request_does_not_settle_and_keeps_ru_details_on_transport_failure() {
    let rec = recording();
    let mut svc = InterceptorLayer::default()
        .link(Arc::clone(&rec))
        .layer(failing_client());
    let res = svc.ready().await.unwrap().call(rg_request()).await;
    assert!(res.is_err());
    assert_eq!(
        rec.wait_calls.load(Ordering::SeqCst),
        1,
        "request hook runs once"
    );
    assert_eq!(
        rec.resp_calls.load(Ordering::SeqCst),
        0,
        "response hook is skipped without a response"
    );
    assert_eq!(rec.ru_details.rru(), request_consumption().r_r_u);
    assert_eq!(rec.ru_details.wru(), request_consumption().w_r_u);
}

// client-go: T-RPC-059 TestSendRequestSettlesOnSuccess
#[tokio::test(start_paused = true)]
async fn send_request_settles_on_success() {
    let rec = recording();
    let mut svc = InterceptorLayer::default()
        .link(Arc::clone(&rec))
        .layer(empty_client(Default::default()));
    let res = svc.ready().await.unwrap().call(rg_request()).await;
    assert!(res.is_ok());
    assert_eq!(rec.wait_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        rec.resp_calls.load(Ordering::SeqCst),
        1,
        "settlement runs on a response"
    );
}

#[test]
fn futures_and_services_are_send() {
    // The layer fits a boxed pipeline stage (`BoxCloneSyncService`).
    fn inner() -> tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(|_req: RpcRequest| {
            std::future::ready(Ok::<_, Error>(RpcResponse::new(
                tikv_proto::kvrpcpb::GetResponse::default(),
            )))
        }))
    }
    let _stage = tower::util::BoxCloneSyncService::new(InterceptorLayer::default().layer(inner()));
    fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<ResponseFuture<futures::future::Ready<Result<RpcResponse>>>>();
    assert_send_static::<Intercept<tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error>>>(
    );
    assert_send_static::<InterceptorChain>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<InterceptorChain>();
}
