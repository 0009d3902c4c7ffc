use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tikv_proto::{errorpb, kvrpcpb, metapb};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Span, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::{AttemptTrace, AttemptTraceLayer, KeyLogging, Trace, TraceLayer};
use crate::backoff::{BackoffKind, Backoffer, SharedBackoffer};
use crate::error::{BoxError, Error, ErrorDetail};
use crate::request::{AttemptDetails, RpcRequest, RpcResponse};

// ===== a subscriber that remembers every span and its fields =====

#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    level: Level,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    by_id: Arc<Mutex<BTreeMap<u64, usize>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.metadata().name());
        let mut spans = self.spans.lock().expect("lock");
        spans.push(SpanRec {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            parent,
            fields,
        });
        self.by_id
            .lock()
            .expect("lock")
            .insert(id.into_u64(), spans.len() - 1);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let Some(i) = self
            .by_id
            .lock()
            .expect("lock")
            .get(&id.into_u64())
            .copied()
        else {
            return;
        };
        let mut spans = self.spans.lock().expect("lock");
        values.record(&mut Fields(&mut spans[i].fields));
    }
}

impl Capture {
    /// Installs the capture as this thread's subscriber for the guard's lifetime.
    fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn spans(&self, name: &str) -> Vec<SpanRec> {
        self.spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn only(&self, name: &str) -> SpanRec {
        let mut spans = self.spans(name);
        assert_eq!(spans.len(), 1, "one {name} span: {spans:?}");
        spans.remove(0)
    }
}

fn field<'a>(span: &'a SpanRec, name: &str) -> Option<&'a str> {
    span.fields.get(name).map(String::as_str)
}

// ===== helpers =====

fn mock_pair() -> (
    impl Service<RpcRequest, Response = RpcResponse, Error = Error, Future: Send + 'static>
    + Clone
    + Send
    + 'static,
    mock::Handle<RpcRequest, RpcResponse>,
) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    (
        svc.map_err(Error::from_boxed as fn(BoxError) -> Error),
        handle,
    )
}

fn get(key: &[u8]) -> RpcRequest {
    RpcRequest::new(kvrpcpb::GetRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

fn served(store_id: u64, addr: &str, attempts: u32) -> RpcResponse {
    let mut resp = RpcResponse::new(kvrpcpb::GetResponse::default());
    resp.details = AttemptDetails {
        addr: addr.to_owned(),
        store_id,
        attempts,
        ..Default::default()
    };
    resp
}

/// Sends `req` through `layer` over a mock answering `answer`.
async fn through<L>(
    layer: L,
    req: RpcRequest,
    answer: Result<RpcResponse, Error>,
) -> Result<RpcResponse, Error>
where
    L: Layer<tower::util::MapErr<mock::Mock<RpcRequest, RpcResponse>, fn(BoxError) -> Error>>,
    L::Service: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    let (svc, mut handle) = mock::pair::<RpcRequest, RpcResponse>();
    let mut svc = layer.layer(svc.map_err(Error::from_boxed as fn(BoxError) -> Error));
    let fut = svc.ready().await.expect("ready").call(req);
    let (_, send) = handle.next_request().await.expect("request");
    match answer {
        Ok(resp) => send.send_response(resp),
        Err(e) => send.send_error(e),
    }
    fut.await
}

// ===== the request span =====

#[tokio::test(start_paused = true)]
async fn the_inner_service_runs_inside_the_request_span() {
    let (capture, _guard) = Capture::install();
    let seen: Arc<Mutex<Vec<Option<&'static str>>>> = Arc::default();
    let current = || Span::current().metadata().map(|m| m.name());
    let inner = {
        let seen = seen.clone();
        service_fn(move |_req: RpcRequest| {
            // In `call` (synchronously)...
            seen.lock().expect("lock").push(current());
            let seen = seen.clone();
            async move {
                // ...and on every poll, across an await.
                seen.lock().expect("lock").push(current());
                tokio::time::sleep(Duration::from_millis(3)).await;
                seen.lock().expect("lock").push(current());
                Ok::<_, Error>(served(4, "store4:20160", 1))
            }
        })
    };
    let svc = TraceLayer::new().layer(inner);
    svc.oneshot(get(b"key")).await.expect("ok");

    assert_eq!(*seen.lock().expect("lock"), vec![Some("tikv"); 3]);
    // Outside the request, the span is no longer current.
    assert_eq!(current(), None);
    let span = capture.only("tikv");
    assert_eq!(span.level, Level::DEBUG);
    assert_eq!(field(&span, "cmd"), Some("Get"));
    assert_eq!(field(&span, "db.system.name"), Some("tikv"));
    assert_eq!(field(&span, "db.operation.name"), Some("Get"));
    assert_eq!(field(&span, "store_id"), Some("4"));
    assert_eq!(field(&span, "addr"), Some("store4:20160"));
    assert_eq!(field(&span, "server.address"), Some("store4:20160"));
    assert_eq!(field(&span, "attempt"), Some("1"));
    assert_eq!(field(&span, "result"), Some("ok"));
    assert_eq!(field(&span, "error.kind"), None);
    assert_eq!(field(&span, "backoff_kind"), None);
}

#[tokio::test(start_paused = true)]
async fn errors_record_their_kind() {
    let (capture, _guard) = Capture::install();
    let timeout = Error::new(ErrorDetail::AttemptTimeout {
        addr: "store1".into(),
    });
    let res = through(TraceLayer::new(), get(b"k"), Err(timeout)).await;
    assert!(res.is_err());
    let region_err = RpcResponse::new(kvrpcpb::GetResponse {
        region_error: Some(errorpb::Error {
            epoch_not_match: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    });
    through(TraceLayer::new(), get(b"k"), Ok(region_err))
        .await
        .expect("a region error is data");

    let spans = capture.spans("tikv");
    assert_eq!(spans.len(), 2);
    assert_eq!(field(&spans[0], "result"), Some("err_timeout"));
    assert_eq!(field(&spans[0], "error.kind"), Some("timeout"));
    assert_eq!(field(&spans[1], "result"), Some("region_error"));
    assert_eq!(field(&spans[1], "error.kind"), Some("epoch_not_match"));
}

#[tokio::test(start_paused = true)]
async fn keys_are_not_logged_unless_opted_in() {
    let (capture, _guard) = Capture::install();
    let key = b"secret-user-key";
    let ok = || Ok(served(1, "a", 1));
    through(TraceLayer::new(), get(key), ok())
        .await
        .expect("ok");
    through(
        TraceLayer::new().key_logging(KeyLogging::Off),
        get(key),
        ok(),
    )
    .await
    .expect("ok");
    through(
        TraceLayer::new().key_logging(KeyLogging::Hex),
        get(key),
        ok(),
    )
    .await
    .expect("ok");

    let spans = capture.spans("tikv");
    assert_eq!(spans.len(), 3);
    let hex: String = key.iter().map(|b| format!("{b:02X}")).collect();
    let text = String::from_utf8_lossy(key).into_owned();
    // Default: the length only; the key's bytes appear nowhere.
    assert_eq!(field(&spans[0], "key.len"), Some("15"));
    assert_eq!(field(&spans[0], "key"), None);
    // Off: not even the length.
    assert_eq!(field(&spans[1], "key.len"), None);
    assert_eq!(field(&spans[1], "key"), None);
    for span in &spans[..2] {
        for value in span.fields.values() {
            assert!(!value.contains(&hex) && !value.contains(&text), "{span:?}");
        }
    }
    // Hex: opted in.
    assert_eq!(field(&spans[2], "key.len"), Some("15"));
    assert_eq!(field(&spans[2], "key"), Some(hex.as_str()));
}

#[test]
fn long_keys_are_cut_in_hex() {
    let key = vec![0xABu8; super::MAX_LOGGED_KEY_BYTES + 10];
    let hex = super::make_span::hex(&key);
    assert_eq!(hex.len(), super::MAX_LOGGED_KEY_BYTES * 2 + 2);
    assert!(hex.starts_with("ABAB") && hex.ends_with(".."));
    assert_eq!(super::make_span::hex(&[0x00, 0x1F]), "001F");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_is_recorded_as_canceled() {
    let (capture, _guard) = Capture::install();
    let (inner, mut handle) = mock_pair();
    let mut svc = TraceLayer::new().layer(inner);
    let fut = svc.ready().await.expect("ready").call(get(b"k"));
    let (_, _send) = handle.next_request().await.expect("request");
    drop(fut);

    let span = capture.only("tikv");
    assert_eq!(field(&span, "result"), Some("canceled"));
    assert_eq!(field(&span, "error.kind"), None);
}

#[tokio::test(start_paused = true)]
async fn level_and_make_span_are_configurable() {
    let (capture, _guard) = Capture::install();
    through(
        TraceLayer::new().level(Level::INFO),
        get(b"k"),
        Ok(served(1, "a", 1)),
    )
    .await
    .expect("ok");
    let custom = TraceLayer::new().make_span_with(|req: &RpcRequest| {
        tracing::info_span!(
            "custom",
            op = req.cmd_type().name(),
            result = tracing::field::Empty
        )
    });
    through(custom, get(b"k"), Ok(served(1, "a", 1)))
        .await
        .expect("ok");

    assert_eq!(capture.only("tikv").level, Level::INFO);
    let span = capture.only("custom");
    assert_eq!(field(&span, "op"), Some("Get"));
    // The layer records the fields the custom span declared, and skips the others.
    assert_eq!(field(&span, "result"), Some("ok"));
    assert_eq!(field(&span, "store_id"), None);
}

#[tokio::test(start_paused = true)]
async fn known_routing_is_recorded_at_the_start() {
    let (capture, _guard) = Capture::install();
    let mut req = get(b"k");
    req.context.region_id = 42;
    req.context.keyspace = Some(kvrpcpb::context::Keyspace::KeyspaceId(7));
    let (inner, mut handle) = mock_pair();
    let mut svc = TraceLayer::new().layer(inner);
    let fut = svc.ready().await.expect("ready").call(req);
    let (_, send) = handle.next_request().await.expect("request");
    // Before the answer: recorded already.
    let span = capture.only("tikv");
    assert_eq!(field(&span, "region_id"), Some("42"));
    assert_eq!(field(&span, "keyspace"), Some("7"));
    assert_eq!(field(&span, "store_id"), None);
    send.send_response(served(2, "b", 1));
    fut.await.expect("ok");
}

#[tokio::test(start_paused = true)]
async fn backoff_of_the_request_is_recorded() {
    let (capture, _guard) = Capture::install();
    // The budget is shared with an earlier request that already slept: only this
    // request's sleeps are reported.
    let bo = SharedBackoffer::new(Backoffer::new(0));
    bo.backoff(
        BackoffKind::TiKVRpc,
        Error::new(ErrorDetail::Internal("before".into())),
    )
    .await
    .expect("slept");
    let inner = service_fn(|req: RpcRequest| async move {
        for _ in 0..2 {
            req.backoffer
                .backoff(
                    BackoffKind::RegionMiss,
                    Error::new(ErrorDetail::Internal("miss".into())),
                )
                .await?;
        }
        Ok::<_, Error>(served(1, "a", 3))
    });
    let svc = TraceLayer::new().layer(inner);
    svc.oneshot(get(b"k").backoffer(bo)).await.expect("ok");

    let span = capture.only("tikv");
    assert_eq!(field(&span, "backoff_kind"), Some("regionMiss"));
    // regionMiss: 2 ms then 4 ms.
    assert_eq!(field(&span, "backoff_ms"), Some("6"));
    assert_eq!(field(&span, "attempt"), Some("3"));
}

// ===== the attempt span =====

#[tokio::test(start_paused = true)]
async fn each_attempt_gets_a_numbered_child_span() {
    let (capture, _guard) = Capture::install();
    // A stand-in for the send loop: route the request, try once, retry once.
    let (transport, mut handle) = mock_pair();
    let attempts = AttemptTraceLayer::new().layer(transport);
    let send_loop = service_fn(move |mut req: RpcRequest| {
        let attempts = attempts.clone();
        async move {
            req.target.store_id = 5;
            req.target.addr = "store5:20160".into();
            req.target.peer = Some(metapb::Peer {
                id: 51,
                store_id: 5,
                ..Default::default()
            });
            let first = attempts.clone().oneshot(req.clone()).await;
            assert!(first.is_err());
            req.target.store_id = 6;
            req.target.addr = "store6:20160".into();
            req.target.peer = None;
            let mut resp = attempts.oneshot(req).await?;
            resp.details.attempts = 0; // let the request span use the counted attempts
            Ok::<_, Error>(resp)
        }
    });
    let svc = TraceLayer::new().layer(send_loop);
    let answer = async {
        let (_, send) = handle.next_request().await.expect("first");
        send.send_error(Error::new(ErrorDetail::Transport {
            addr: "store5:20160".into(),
            message: "connection refused".into(),
        }));
        let (_, send) = handle.next_request().await.expect("second");
        send.send_response(served(6, "store6:20160", 0));
    };
    let (res, ()) = tokio::join!(svc.oneshot(get(b"k")), answer);
    res.expect("second attempt answers");

    let tries = capture.spans("tikv.attempt");
    assert_eq!(tries.len(), 2);
    for t in &tries {
        assert_eq!(t.level, Level::TRACE);
        assert_eq!(t.parent, Some("tikv"), "a child of the request span");
        assert_eq!(field(t, "cmd"), Some("Get"));
    }
    assert_eq!(field(&tries[0], "attempt"), Some("1"));
    assert_eq!(field(&tries[0], "store_id"), Some("5"));
    assert_eq!(field(&tries[0], "addr"), Some("store5:20160"));
    assert_eq!(field(&tries[0], "peer_id"), Some("51"));
    assert_eq!(field(&tries[0], "result"), Some("err_transport"));
    assert_eq!(field(&tries[0], "error.kind"), Some("transport"));
    assert_eq!(field(&tries[1], "attempt"), Some("2"));
    assert_eq!(field(&tries[1], "store_id"), Some("6"));
    assert_eq!(field(&tries[1], "result"), Some("ok"));

    let request = capture.only("tikv");
    assert_eq!(field(&request, "attempt"), Some("2"));
    assert_eq!(field(&request, "store_id"), Some("6"));
    assert_eq!(field(&request, "result"), Some("ok"));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_without_a_request_span_is_not_numbered() {
    let (capture, _guard) = Capture::install();
    through(
        AttemptTraceLayer::new().level(Level::DEBUG),
        get(b"k"),
        Ok(served(1, "a", 1)),
    )
    .await
    .expect("ok");
    let span = capture.only("tikv.attempt");
    assert_eq!(span.level, Level::DEBUG);
    assert_eq!(field(&span, "attempt"), None);
    assert_eq!(field(&span, "result"), Some("ok"));
}

#[tokio::test]
async fn services_and_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let (inner, _handle) = mock_pair();
    let mut svc = Trace::new(inner.clone());
    assert_send_static(&svc);
    let fut = svc.ready().await.expect("ready").call(get(b"k"));
    assert_send_static(&fut);
    let mut attempt = AttemptTrace::new(inner);
    let fut = attempt.ready().await.expect("ready").call(get(b"k"));
    assert_send_static(&fut);
    assert_send_static(&Trace::<()>::layer());
    assert_send_static(&AttemptTrace::<()>::layer());
}
