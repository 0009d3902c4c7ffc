//! The connection-state monitor (TP-8) against the loopback server: what a pooled
//! connection's `GRPC_CONNECTION_STATE` series show as it serves, breaks and closes.
//!
//! These run in real time: the connections are real loopback sockets, and with a paused
//! clock tokio would jump to the next timer (the attempt deadlines) whenever the runtime
//! idles while a socket read is pending. Each wait polls with a bound of a few seconds;
//! the exporter ticks every second.

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tikv::config::TikvClientConfig;
use tikv::transport::monitor::EXPORT_INTERVAL;
use tikv::transport::{ConnState, PoolHandle, Transport};
use tikv_layers::metrics::names::GRPC_CONNECTION_STATE;
use tikv_proto::kvrpcpb;
use tokio::time::Instant;

use super::server::MockServer;
use super::{request, transport};

/// The `GRPC_CONNECTION_STATE` series of connection `conn_id` at `store_ip`, by state,
/// as written since the previous snapshot (a `DebuggingRecorder` snapshot resets the gauges
/// it reads to 0).
fn gauges(snapshotter: &Snapshotter, conn_id: &str, store_ip: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (ck, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = ck.key();
        if key.name() != GRPC_CONNECTION_STATE {
            continue;
        }
        let label = |k: &str| {
            key.labels()
                .find(|l| l.key() == k)
                .map(|l| l.value().to_owned())
        };
        if label("connection_id").as_deref() != Some(conn_id)
            || label("store_ip").as_deref() != Some(store_ip)
        {
            continue;
        }
        if let (Some(state), DebugValue::Gauge(v)) = (label("grpc_state"), value) {
            out.insert(state, v.0);
        }
    }
    out
}

/// The exported series of a connection in `state`: 1 for it, 0 for the other four.
fn one_hot(state: ConnState) -> BTreeMap<String, f64> {
    ConnState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), if *s == state { 1.0 } else { 0.0 }))
        .collect()
}

/// Waits (up to 10 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A transport with one connection per pool, and that pool built under `recorder` (the
/// pool resolves its gauge handles when it is created).
fn pool_under(
    recorder: &DebuggingRecorder,
    cfg: TikvClientConfig,
    addr: &str,
) -> (Transport, PoolHandle) {
    let t = transport(cfg.with_grpc_connection_count(1));
    let pool = metrics::with_local_recorder(recorder, || t.pool(addr).unwrap());
    (t, pool)
}

async fn get(t: &Transport, addr: &str) -> Result<(), tikv_layers::Error> {
    t.send_request(request(
        kvrpcpb::GetRequest::default(),
        addr,
        Duration::from_secs(2),
    ))
    .await
    .map(|_| ())
}

// TP-8 on the batch path: IDLE before any traffic, READY once the batch stream served a
// request, TRANSIENT_FAILURE while the store is down and the stream re-creation backs off,
// SHUTDOWN once after the transport closes, and then the exporter is gone.
#[tokio::test]
async fn batch_connection_states_follow_the_stream() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let id = format!("{addr}-0");
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let (t, pool) = pool_under(&recorder, TikvClientConfig::default(), &addr);
    assert_eq!(pool.conn_states(), vec![ConnState::Idle]);
    eventually("IDLE exported", || {
        gauges(&snap, &id, &addr) == one_hot(ConnState::Idle)
    })
    .await;

    get(&t, &addr).await.unwrap();
    assert_eq!(pool.conn_states(), vec![ConnState::Ready]);
    eventually("READY exported", || {
        gauges(&snap, &id, &addr) == one_hot(ConnState::Ready)
    })
    .await;

    // The server goes away: the stream breaks, re-opening it fails and backs off.
    server.stop();
    eventually("transient failure", || {
        pool.conn_states() == vec![ConnState::TransientFailure]
    })
    .await;
    eventually("TRANSIENT_FAILURE exported", || {
        gauges(&snap, &id, &addr)["TRANSIENT_FAILURE"] == 1.0
    })
    .await;

    // It comes back: the stream re-opens and the connection is ready again.
    server.restart().await;
    eventually("ready again", || {
        pool.conn_states() == vec![ConnState::Ready]
    })
    .await;

    assert!(pool.is_monitor_running());
    t.close();
    assert_eq!(pool.conn_states(), vec![ConnState::Shutdown]);
    eventually("exporter stopped", || !pool.is_monitor_running()).await;
    assert_eq!(gauges(&snap, &id, &addr), one_hot(ConnState::Shutdown));
    // Nothing exports the series any more (a snapshot resets what it read, so anything
    // written after it would show up as a 1).
    tokio::time::sleep(EXPORT_INTERVAL + Duration::from_millis(200)).await;
    assert!(gauges(&snap, &id, &addr).values().all(|v| *v == 0.0));
}

// TP-8 on the unary path (batching off): a call the server answers makes the connection
// READY; a call that cannot reach the stopped server leaves it in TRANSIENT_FAILURE.
#[tokio::test]
async fn unary_connection_states_follow_the_calls() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let id = format!("{addr}-0");
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let (t, pool) = pool_under(
        &recorder,
        TikvClientConfig::default().with_max_batch_size(0),
        &addr,
    );
    get(&t, &addr).await.unwrap();
    assert_eq!(pool.conn_states(), vec![ConnState::Ready]);
    eventually("READY exported", || {
        gauges(&snap, &id, &addr) == one_hot(ConnState::Ready)
    })
    .await;

    server.stop();
    // The first call may still meet the dying connection; keep calling until one fails
    // to connect.
    eventually_async_fail(&t, &addr, &pool).await;
    eventually("TRANSIENT_FAILURE exported", || {
        gauges(&snap, &id, &addr) == one_hot(ConnState::TransientFailure)
    })
    .await;
    drop(t);
}

/// Calls `addr` until the connection reports transient failure (every call must fail: the
/// server is stopped).
async fn eventually_async_fail(t: &Transport, addr: &str, pool: &PoolHandle) {
    let start = Instant::now();
    while pool.conn_states() != vec![ConnState::TransientFailure] {
        assert!(get(t, addr).await.is_err());
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no transient failure"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// TP-8: dropping the last transport handle closes its pools, which stops their exporters.
#[tokio::test]
async fn dropping_the_transport_stops_the_exporter() {
    let server = MockServer::start().await;
    let addr = server.addr();
    let recorder = DebuggingRecorder::new();
    let (t, pool) = pool_under(&recorder, TikvClientConfig::default(), &addr);
    get(&t, &addr).await.unwrap();
    assert!(pool.is_monitor_running());
    drop(t);
    assert!(pool.is_closed());
    assert_eq!(pool.conn_states(), vec![ConnState::Shutdown]);
    eventually("exporter stopped", || !pool.is_monitor_running()).await;
    let id = format!("{addr}-0");
    assert_eq!(
        gauges(&recorder.snapshotter(), &id, &addr),
        one_hot(ConnState::Shutdown)
    );
}
