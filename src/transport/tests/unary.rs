//! The unary path of the transport (TP-9 step 4; client-go `internal/client/client.go`
//! `sendRequest`), its pools' idle recycling (TP-7) and the connection control the send
//! loop drives (TE-4). No test here needs an answering server: a bound listener that
//! never speaks HTTP/2 is a store that never answers, so time stays paused and every
//! outcome is fixed.

use std::time::Duration;

use tikv_layers::locate::ConnectionControl;
use tikv_layers::request::EndpointType;
use tikv_layers::{Command, CommandResponse, Error, ErrorDetail, ErrorKind, RpcRequest};
use tikv_proto::{coprocessor, debugpb, kvrpcpb, tikvpb};
use tokio::time::Instant;

use crate::config::TikvClientConfig;
use crate::transport::batch::IDLE_TIMEOUT;
use crate::transport::{ErrConn, Transport, TransportConfig};

/// A transport whose dial timeout is longer than any request timeout used here, so a
/// request that gets no answer ends at its own deadline.
fn transport(client: TikvClientConfig) -> Transport {
    Transport::new(TransportConfig::new(client).with_dial_timeout(Duration::from_secs(20)))
}

fn unbatched() -> Transport {
    transport(TikvClientConfig::default().with_max_batch_size(0))
}

/// A store that accepts connections (the kernel completes the handshake) and never answers.
fn silent_store() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

fn request(cmd: impl Into<Command>, addr: &str, timeout: Duration) -> RpcRequest {
    let mut r = RpcRequest::new(cmd);
    r.target.addr = addr.to_owned();
    r.options.timeout = Some(timeout);
    r
}

fn timeout_addr(err: &Error) -> &str {
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => addr,
        other => panic!("not a timeout: {other:?}"),
    }
}

// A call the store never answers fails at the request's deadline with a timeout naming the
// store (TE-3), whether it is a unary call, a debug-service call or the opening of a
// server stream; the error names the pool it came from (client-go `ErrConn`).
#[tokio::test(start_paused = true)]
async fn unanswered_call_times_out_at_its_deadline() {
    let (_store, addr) = silent_store();
    let t = unbatched();
    let ver = t.pool(&addr).unwrap().ver();
    let mut cop_stream = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(1),
    );
    cop_stream.cmd = Command::CopStream(coprocessor::Request::default());
    let cases = [
        (
            "unary",
            request(
                kvrpcpb::GetRequest::default(),
                &addr,
                Duration::from_secs(1),
            ),
        ),
        (
            "debug",
            request(
                Command::DebugGetRegionProperties(debugpb::GetRegionPropertiesRequest::default()),
                &addr,
                Duration::from_secs(1),
            ),
        ),
        ("stream", cop_stream),
    ];
    for (name, req) in cases {
        let start = Instant::now();
        let err = t.send_request(req).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(1), "{name}");
        assert!(err.is_timeout(), "{name}: {err}");
        assert_eq!(timeout_addr(&err), addr, "{name}");
        let conn = ErrConn::of(&err).unwrap();
        assert_eq!(
            (conn.addr.as_str(), conn.ver),
            (addr.as_str(), ver),
            "{name}"
        );
    }
}

// A forwarded host that cannot be gRPC metadata fails the request at once with a typed
// invalid-argument error, before anything is sent, on unary and streaming calls alike.
#[tokio::test(start_paused = true)]
async fn invalid_forwarded_host_is_rejected_before_sending() {
    let (_store, addr) = silent_store();
    let t = unbatched();
    let mut get = request(
        kvrpcpb::GetRequest::default(),
        &addr,
        Duration::from_secs(1),
    );
    let mut stream = request(
        coprocessor::Request::default(),
        &addr,
        Duration::from_secs(1),
    );
    stream.cmd = Command::CopStream(coprocessor::Request::default());
    for req in [&mut get, &mut stream] {
        req.target.forwarded_host = Some("proxy\n:20160".to_owned());
    }
    for req in [get, stream] {
        let start = Instant::now();
        let err = t.send_request(req).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            matches!(err.detail(), ErrorDetail::InvalidArgument(m) if m.contains("forwarded host")),
            "{err}"
        );
    }
}

// The send loop closes the pool an error came out of (TE-4): the error's recorded pool
// version is closed and the next request opens a newer one, while a late error from an
// already replaced pool spares its successor; an error that names no pool closes nothing.
#[tokio::test(start_paused = true)]
async fn connection_control_closes_the_pool_an_error_came_from() {
    let (_store, addr) = silent_store();
    let t = unbatched();
    let old = t.pool(&addr).unwrap();
    let err = t
        .send_request(request(
            kvrpcpb::GetRequest::default(),
            &addr,
            Duration::from_millis(100),
        ))
        .await
        .unwrap_err();
    assert!(ConnectionControl::close_for_error(&t, &err));
    assert!(old.is_closed());
    assert_eq!(t.pool_version(&addr), None);

    let new = t.pool(&addr).unwrap();
    assert_eq!(new.ver(), old.ver() + 1);
    // The same (now stale) error again: the replacement pool stays.
    assert!(ConnectionControl::close_for_error(&t, &err));
    assert!(!new.is_closed());
    assert_eq!(t.pool_version(&addr), Some(new.ver()));

    let plain = Error::new(ErrorDetail::Transport {
        addr: addr.clone(),
        message: "connection reset".to_owned(),
    });
    assert!(!ConnectionControl::close_for_error(&t, &plain));
    assert!(!new.is_closed());

    // A `StoreNotMatch` answer closes every connection to the address.
    ConnectionControl::close_addr(&t, &addr);
    assert!(new.is_closed());
    assert_eq!(t.pool_version(&addr), None);
}

// A batch pool with no request for `IDLE_TIMEOUT` goes idle (TP-7). The next request of
// any address recycles every idle pool, and asking for an idle pool's address opens a new
// pool (a higher version) instead of failing: the deliberate deviation from client-go's
// "rpcClient is idle" recorded at `Transport::get_pool`.
#[tokio::test(start_paused = true)]
async fn idle_batch_pools_are_recycled() {
    let t = transport(TikvClientConfig::default());
    let (_a_store, a) = silent_store();
    let (_b_store, b) = silent_store();
    let pool_a = t.pool(&a).unwrap();
    let pool_b = t.pool(&b).unwrap();
    assert!(!pool_a.is_idle());
    assert_eq!(format!("{t:?}"), "Transport { pools: 2, .. }");

    tokio::time::sleep(IDLE_TIMEOUT + Duration::from_secs(1)).await;
    assert!(pool_a.is_idle() && pool_b.is_idle());

    // Asking for `a` replaces its idle pool.
    let fresh_a = t.pool(&a).unwrap();
    assert!(pool_a.is_closed());
    assert_eq!(fresh_a.ver(), pool_a.ver() + 1);
    assert!(!fresh_a.is_idle());

    // A request elsewhere (a keep-alive to a non-TiKV endpoint: no batching, answered
    // without a round trip) sweeps the remaining idle pool `b`.
    let (_c_store, c) = silent_store();
    let mut empty = request(
        tikvpb::BatchCommandsEmptyRequest::default(),
        &c,
        Duration::from_secs(1),
    );
    empty.options.endpoint = EndpointType::TiFlash;
    let resp = t.send_request(empty).await.unwrap();
    assert!(matches!(resp.resp, CommandResponse::Empty(_)));
    assert!(pool_b.is_closed());
    assert_eq!(t.pool_version(&b), None);
    assert!(!fresh_a.is_closed());
    assert_eq!(t.pool_version(&a), Some(fresh_a.ver()));
}
