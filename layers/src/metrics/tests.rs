use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::metrics::{Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::debugging::DebuggingRecorder;
use tikv_proto::{errorpb, kvrpcpb};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::names::{self, ALL, IDENTS, MetricType, labels};
use super::{Metrics, MetricsLayer};
use crate::backoff::{BackoffConfig, BackoffKind, Backoffer, Jitter};
use crate::error::{BoxError, Error, ErrorDetail, ErrorKind};
use crate::request::{CmdType, RpcRequest, RpcResponse};
use crate::test_support::recorded::{counter, histogram, observed};

// ===== helpers =====

/// A mock inner service with the pipeline's error type.
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

fn get() -> RpcRequest {
    RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    })
}

fn get_ok() -> RpcResponse {
    RpcResponse::new(kvrpcpb::GetResponse::default())
}

fn cmd_labels(cmd: &'static str, result: &'static str) -> [(&'static str, &'static str); 2] {
    [(labels::TYPE, cmd), (labels::RESULT, result)]
}

/// Sends one request through a fresh metrics layer; the mock answers with `answer` after
/// `delay` of (paused) time.
async fn one_request(
    req: RpcRequest,
    delay: Duration,
    answer: Result<RpcResponse, Error>,
) -> Result<RpcResponse, Error> {
    let (inner, mut handle) = mock_pair();
    let mut svc = MetricsLayer::new().layer(inner);
    let fut = svc.ready().await.expect("ready").call(req);
    let (_, send) = handle.next_request().await.expect("request");
    tokio::time::advance(delay).await;
    match answer {
        Ok(resp) => send.send_response(resp),
        Err(e) => send.send_error(e),
    }
    fut.await
}

// ===== the layer =====

#[tokio::test(start_paused = true)]
async fn counts_and_times_a_successful_request() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let resp = one_request(get(), Duration::from_millis(5), Ok(get_ok())).await;
    assert!(resp.is_ok());

    let obs = observed(&snapshotter);
    let l = cmd_labels("Get", labels::OK);
    assert_eq!(counter(&obs, names::CMD_TOTAL, &l), Some(1));
    assert_eq!(histogram(&obs, names::CMD_SECONDS, &l), Some(vec![0.005]));
    // Nothing else: the layer emits exactly these two series.
    assert_eq!(obs.len(), 2, "{obs:?}");
}

#[tokio::test(start_paused = true)]
async fn classifies_region_and_key_errors_in_responses() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let region_err = RpcResponse::new(kvrpcpb::GetResponse {
        region_error: Some(errorpb::Error {
            not_leader: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let key_err = RpcResponse::new(kvrpcpb::GetResponse {
        error: Some(kvrpcpb::KeyError::default()),
        ..Default::default()
    });
    let _ = one_request(get(), Duration::ZERO, Ok(region_err)).await;
    let _ = one_request(get(), Duration::ZERO, Ok(key_err)).await;

    let obs = observed(&snapshotter);
    let region = cmd_labels("Get", labels::REGION_ERROR);
    let key = cmd_labels("Get", labels::KEY_ERROR);
    assert_eq!(counter(&obs, names::CMD_TOTAL, &region), Some(1));
    assert_eq!(counter(&obs, names::CMD_TOTAL, &key), Some(1));
    assert_eq!(
        counter(&obs, names::CMD_TOTAL, &cmd_labels("Get", labels::OK)),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn labels_errors_by_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let timeout = Error::new(ErrorDetail::AttemptTimeout {
        addr: "store1".into(),
    });
    let res = one_request(get(), Duration::from_millis(20), Err(timeout)).await;
    assert_eq!(
        res.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::Timeout)
    );
    let _ = one_request(
        get(),
        Duration::ZERO,
        Err(ErrorDetail::RegionUnavailable.into()),
    )
    .await;

    let obs = observed(&snapshotter);
    let timeout_labels = cmd_labels("Get", "err_timeout");
    assert_eq!(counter(&obs, names::CMD_TOTAL, &timeout_labels), Some(1));
    assert_eq!(
        histogram(&obs, names::CMD_SECONDS, &timeout_labels),
        Some(vec![0.02])
    );
    assert_eq!(
        counter(&obs, names::CMD_TOTAL, &cmd_labels("Get", "err_region")),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_future_is_recorded_as_canceled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let (inner, mut handle) = mock_pair();
    let mut svc = MetricsLayer::new().layer(inner);
    let fut = svc.ready().await.expect("ready").call(get());
    let (_, _send) = handle.next_request().await.expect("request");
    tokio::time::advance(Duration::from_millis(7)).await;
    drop(fut);

    let obs = observed(&snapshotter);
    let l = cmd_labels("Get", labels::CANCELED);
    assert_eq!(counter(&obs, names::CMD_TOTAL, &l), Some(1));
    assert_eq!(histogram(&obs, names::CMD_SECONDS, &l), Some(vec![0.007]));
    assert_eq!(obs.len(), 2, "only the canceled series: {obs:?}");
}

#[tokio::test(start_paused = true)]
async fn cached_handles_accumulate_per_command_and_result() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    // One layer, two services built from it, several command types: the services share
    // the layer's handle cache.
    let layer = MetricsLayer::new();
    let (inner, mut handle) = mock_pair();
    let mut a = layer.layer(inner.clone());
    let mut b = layer.layer(inner);
    let raw = || RpcRequest::new(kvrpcpb::RawGetRequest::default());
    let reqs = [(get(), 0), (get(), 1), (raw(), 0), (get(), 1), (raw(), 1)];
    for (req, which) in reqs {
        let is_raw = req.cmd_type() == CmdType::RawGet;
        let svc = if which == 0 { &mut a } else { &mut b };
        let fut = svc.ready().await.expect("ready").call(req);
        let (_, send) = handle.next_request().await.expect("request");
        send.send_response(if is_raw {
            RpcResponse::new(kvrpcpb::RawGetResponse::default())
        } else {
            get_ok()
        });
        fut.await.expect("ok");
    }

    let obs = observed(&snapshotter);
    assert_eq!(
        counter(&obs, names::CMD_TOTAL, &cmd_labels("Get", labels::OK)),
        Some(3)
    );
    assert_eq!(
        counter(&obs, names::CMD_TOTAL, &cmd_labels("RawGet", labels::OK)),
        Some(2)
    );
    assert_eq!(
        histogram(&obs, names::CMD_SECONDS, &cmd_labels("Get", labels::OK)).map(|v| v.len()),
        Some(3)
    );
}

#[tokio::test(start_paused = true)]
async fn every_command_and_error_kind_has_a_slot() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let handles = super::handles::Handles::new();
    for cmd in CmdType::ALL {
        for kind in labels::ERROR_KINDS {
            handles.record(
                *cmd,
                super::handles::Outcome::Error(*kind),
                Duration::from_millis(1),
            );
        }
    }
    let obs = observed(&snapshotter);
    for cmd in CmdType::ALL {
        for kind in labels::ERROR_KINDS {
            let l = cmd_labels(cmd.name(), labels::error_result(*kind));
            assert_eq!(counter(&obs, names::CMD_TOTAL, &l), Some(1), "{l:?}");
        }
    }
}

#[tokio::test]
async fn service_and_future_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let (inner, _handle) = mock_pair();
    let mut svc = Metrics::new(inner);
    assert_send_static(&svc);
    let fut = svc.ready().await.expect("ready").call(get());
    assert_send_static(&fut);
    assert_send_static(&Metrics::<()>::layer());
}

// ===== backoff sleeps =====

async fn backoff_once(kind: impl Into<BackoffConfig>) {
    let mut bo = Backoffer::new(0);
    let reason = Error::new(ErrorDetail::Internal("test".into()));
    bo.backoff(kind, reason).await.expect("unlimited budget");
}

#[tokio::test(start_paused = true)]
async fn backoff_sleeps_are_observed_under_client_go_type_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    // regionMiss: NoJitter, base 2 ms, so the first two sleeps are 2 ms and 4 ms.
    let mut bo = Backoffer::new(0);
    for _ in 0..2 {
        bo.backoff(
            BackoffKind::RegionMiss,
            Error::new(ErrorDetail::Internal("miss".into())),
        )
        .await
        .expect("unlimited budget");
    }
    backoff_once(BackoffKind::TxnLockFast).await;
    backoff_once(BackoffKind::TiFlashServerBusy).await;
    backoff_once(BackoffKind::MaxTsNotSynced).await;
    backoff_once(BackoffConfig::new(
        "myKind",
        5,
        5,
        Jitter::None,
        ErrorDetail::RegionUnavailable,
    ))
    .await;

    let obs = observed(&snapshotter);
    let by_type = |t: &str| histogram(&obs, names::BACKOFF_SECONDS, &[(labels::TYPE, t)]);
    assert_eq!(by_type("regionMiss"), Some(vec![0.002, 0.004]));
    assert_eq!(by_type("tikvLockFast").map(|v| v.len()), Some(1));
    assert_eq!(by_type("serverBusy").map(|v| v.len()), Some(1));
    assert_eq!(by_type("").map(|v| v.len()), Some(1));
    assert_eq!(by_type("myKind"), Some(vec![0.005]));
    assert_eq!(by_type("txnLockFast"), None);
}

#[tokio::test(start_paused = true)]
async fn a_canceled_backoff_sleep_is_observed_as_zero() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let token = CancellationToken::new();
    let mut bo = Backoffer::new(0).with_cancel_token(token.clone());
    let reason = Error::new(ErrorDetail::Internal("busy".into()));
    let sleep = bo.backoff(BackoffKind::TiKVServerBusy, reason);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
    };
    let (res, ()) = tokio::join!(sleep, cancel);
    assert!(
        res.is_ok(),
        "a canceled sleep returns Ok; the next call fails"
    );

    let obs = observed(&snapshotter);
    assert_eq!(
        histogram(
            &obs,
            names::BACKOFF_SECONDS,
            &[(labels::TYPE, "serverBusy")]
        ),
        Some(vec![0.0])
    );
}

#[test]
fn backoff_type_labels_match_client_go_shortcuts() {
    let expected = [
        (BackoffKind::TiKVRpc, "tikvRPC"),
        (BackoffKind::TiFlashRpc, "tikvRPC"),
        (BackoffKind::TxnLock, "txnLock"),
        (BackoffKind::PdRpc, "pdRPC"),
        (BackoffKind::RegionMiss, "regionMiss"),
        (BackoffKind::RegionScheduling, "regionScheduling"),
        (BackoffKind::TiKVServerBusy, "serverBusy"),
        (BackoffKind::TiKVDiskFull, "tikvDiskFull"),
        (
            BackoffKind::RegionRecoveryInProgress,
            "regionRecoveryInProgress",
        ),
        (BackoffKind::TiFlashServerBusy, "serverBusy"),
        (BackoffKind::TxnNotFound, ""),
        (BackoffKind::StaleCommand, "staleCommand"),
        (BackoffKind::MaxTsNotSynced, ""),
        (BackoffKind::CommitTsLag, ""),
        (BackoffKind::RegionNotInitialized, ""),
        (BackoffKind::IsWitness, "isWitness"),
        (BackoffKind::TxnLockFast, "tikvLockFast"),
    ];
    assert_eq!(expected.len(), BackoffKind::ALL.len());
    for (kind, label) in expected {
        assert_eq!(labels::backoff_type(kind), label, "{kind}");
        assert_eq!(labels::backoff_type_of(kind.name()), Some(label), "{kind}");
    }
    assert_eq!(labels::backoff_type_of("myKind"), None);
}

// ===== the name table =====

/// A recorder that only remembers what was described.
#[derive(Debug, Default, Clone)]
struct Describes(Arc<Mutex<Vec<(String, MetricType, Option<Unit>)>>>);

impl Describes {
    fn push(&self, key: KeyName, kind: MetricType, unit: Option<Unit>) {
        self.0
            .lock()
            .expect("lock")
            .push((key.as_str().to_owned(), kind, unit));
    }
}

impl Recorder for Describes {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.push(key, MetricType::Counter, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.push(key, MetricType::Gauge, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.push(key, MetricType::Histogram, unit);
    }
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> ::metrics::Counter {
        ::metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> ::metrics::Gauge {
        ::metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> ::metrics::Histogram {
        ::metrics::Histogram::noop()
    }
}

#[test]
fn describe_metrics_describes_every_name_once_with_its_type_and_unit() {
    let recorder = Describes::default();
    ::metrics::with_local_recorder(&recorder, names::describe_metrics);
    let described = recorder.0.lock().expect("lock").clone();
    let expected: Vec<(String, MetricType, Option<Unit>)> = ALL
        .iter()
        .map(|m| (m.name.to_owned(), m.kind, m.unit))
        .collect();
    assert_eq!(described, expected);
    assert_eq!(ALL.len(), IDENTS.len());
}

#[test]
fn names_are_unique_prefixed_and_follow_prometheus_suffixes() {
    let mut seen = BTreeSet::new();
    for m in ALL {
        assert!(seen.insert(m.name), "duplicate {}", m.name);
        assert!(m.name.starts_with("tikv_client_"), "{}", m.name);
        assert!(
            m.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            m.name
        );
        assert!(!m.help.is_empty(), "{}", m.name);
        match m.kind {
            MetricType::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
            MetricType::Gauge | MetricType::Histogram => {
                assert!(!m.name.ends_with("_total"), "{}", m.name)
            }
        }
        match m.unit {
            Some(Unit::Seconds) => assert!(m.name.ends_with("_seconds"), "{}", m.name),
            Some(Unit::Bytes) => assert!(
                m.name.ends_with("_bytes") || m.name.ends_with("_bytes_total"),
                "{}",
                m.name
            ),
            _ => assert!(!m.name.ends_with("_seconds"), "{}", m.name),
        }
    }
}

#[test]
fn the_module_table_documents_every_name_with_its_type_and_unit() {
    let source = include_str!("names.rs");
    let docs: Vec<&str> = source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect();
    for (ident, name) in IDENTS {
        let prefix = format!("//! | [`{ident}`] `{name}` |");
        let rows: Vec<&&str> = docs.iter().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(
            rows.len(),
            1,
            "{ident} must have exactly one row naming {name}"
        );
        let cols: Vec<&str> = rows[0].split('|').map(str::trim).collect();
        let info = ALL.iter().find(|m| m.name == *name).expect("in ALL");
        let kind = match info.kind {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        };
        let unit = match info.unit {
            Some(Unit::Seconds) => "seconds",
            Some(Unit::Bytes) => "bytes",
            Some(Unit::Count) => "count",
            _ => "—",
        };
        assert_eq!(cols[2], kind, "{ident}");
        assert_eq!(cols[3], unit, "{ident}");
    }
    let rows = docs.iter().filter(|l| l.starts_with("//! | [`")).count();
    assert_eq!(rows, IDENTS.len(), "no table row without a constant");
}

#[test]
fn the_transport_and_request_path_names_are_in_the_table() {
    // The transport re-exports these; the lead's retry and replica code uses the others.
    let required = [
        names::BATCH_REQUESTS,
        names::BATCH_PENDING_REQUESTS,
        names::BATCH_WAIT_SECONDS,
        names::BATCH_MORE_REQUESTS,
        names::BATCH_BEST_SIZE,
        names::INFLIGHT_REQUESTS,
        names::BATCH_RECONNECTS,
        names::NO_AVAILABLE_CONNECTION,
        names::OUTDATED_RESPONSES,
        names::BATCH_WAIT_OVERLOAD,
        names::BATCH_WINDOW_HOLDS,
        names::REQUEST_SECONDS,
        names::BATCH_OUTCOMES,
        names::IDLE_RECYCLES,
        names::REQUEST_RETRY_TIMES,
        names::REGION_ERR_TOTAL,
        names::RPC_ERR_TOTAL,
        names::BACKOFF_SECONDS,
        names::STALE_READ_TOTAL,
        names::STALE_READ_BYTES_TOTAL,
        names::REPLICA_SELECTOR_FAILURE_TOTAL,
        names::LOAD_REGION_TOTAL,
        names::FORWARD_REQUEST_TOTAL,
        names::HEALTH_FEEDBACK_OPS_TOTAL,
        names::STORE_SLOW_SCORE,
        names::STORE_LIMIT_TOKEN_ERROR_TOTAL,
        names::READ_REQUEST_BYTES,
    ];
    let recorder = Describes::default();
    ::metrics::with_local_recorder(&recorder, names::describe_metrics);
    let described: BTreeSet<String> = recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .map(|(n, _, _)| n.clone())
        .collect();
    for name in required {
        assert!(described.contains(name), "{name} is not described");
    }
}

#[test]
fn result_labels_cover_every_error_kind() {
    let results: BTreeSet<&str> = labels::ERROR_KINDS
        .iter()
        .map(|k| labels::error_result(*k))
        .collect();
    assert_eq!(results.len(), labels::ERROR_KINDS.len());
    for k in labels::ERROR_KINDS {
        assert_eq!(
            labels::error_result(*k),
            format!("err_{}", labels::error_kind(*k))
        );
    }
    for fixed in [
        labels::OK,
        labels::REGION_ERROR,
        labels::KEY_ERROR,
        labels::CANCELED,
    ] {
        assert!(!results.contains(fixed));
    }
}
