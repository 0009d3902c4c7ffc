//! The TSO dispatcher against [`Members`] on loopback (TSO-1 .. TSO-8, PD-7).
//!
//! The behaviour asserted is the PD client's (`tikv/pd`, `client/clients/tso/`:
//! `dispatcher.go`, `stream.go`) where this client follows it: one request per batch of
//! queued callers, the block of a reply handed out in queue order, a count mismatch
//! failing the batch, a failed stream dropped and re-created after a member refresh, the
//! client timeout bounding every batch. Where the PD client panics (a timestamp fallback)
//! or would misbehave on a nonsense reply, this client fails the batch with a typed error
//! and keeps serving.
//!
//! Real time, as in `client.rs`: a batch is held in flight with a `Pause` rule on `"Tso"`,
//! and callers are queued behind it by polling their futures once, so batches form
//! deterministically.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tikv_layers::{ErrorDetail, ErrorKind, Result};
use tikv_proto::pdpb;
use tokio::task::JoinHandle;

use super::members::{Members, bounded, connect, connect_with, quiet_opts};
use crate::mock::{FirePolicy, PdAction, PdRule, RuleHandle};
use crate::oracle::{TimestampSource, compose_ts};
use crate::pd::{PdClient, PdClientOptions, is_tso_service_unsupported};

type Pending = Pin<Box<dyn Future<Output = Result<u64>> + Send>>;

async fn ts(client: &PdClient) -> u64 {
    bounded(client.get_ts()).await.expect("ts")
}

/// Polls `fut` once: a timestamp call is then queued in the dispatcher.
async fn poll_once(fut: &mut Pending) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// A batch held in flight: one caller whose request PD has received and holds, and `n`
/// callers queued behind it. Release the hold by dropping [`Held::hold`].
struct Held {
    hold: RuleHandle,
    first: JoinHandle<Result<u64>>,
    queued: Vec<Pending>,
}

async fn hold_one_and_queue(m: &Members, client: &PdClient, n: usize) -> Held {
    let sent = m.state.calls("tso_request").len();
    let hold = m.pd().inject(PdRule::new(Some("Tso"), PdAction::Pause));
    let c = client.clone();
    let first = tokio::spawn(async move { c.get_ts().await });
    m.state
        .wait_for("the held TSO request", |calls| {
            calls.iter().filter(|c| c.method == "tso_request").count() > sent
        })
        .await;
    let mut queued = Vec::with_capacity(n);
    for _ in 0..n {
        let c = client.clone();
        let mut fut: Pending = Box::pin(async move { c.get_ts().await });
        assert!(
            poll_once(&mut fut).await,
            "answered while a batch is in flight"
        );
        queued.push(fut);
    }
    Held {
        hold,
        first,
        queued,
    }
}

async fn results(futs: Vec<Pending>) -> Vec<Result<u64>> {
    let mut out = Vec::with_capacity(futs.len());
    for f in futs {
        out.push(bounded(f).await);
    }
    out
}

fn detail_of(r: &Result<u64>) -> ErrorDetail {
    match r {
        Ok(ts) => panic!("expected a failure, got ts {ts}"),
        Err(e) => e.detail().clone(),
    }
}

// ===== batching (TSO-1, TSO-2, TSO-5) =====

/// TSO-5, TSO-2: callers queued while a request is in flight form the next batch, sent as
/// one request with `count` = their number; the i-th of them gets logical
/// `largest − count + 1 + i` of the reply's physical. Timestamps only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_callers_share_one_request() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let before = ts(&client).await;
    let rpcs = client.tso_rpc_count();
    let held = hold_one_and_queue(&m, &client, 10).await;
    drop(held.hold);
    let first = bounded(held.first).await.expect("task").expect("first ts");
    let got: Vec<u64> = results(held.queued)
        .await
        .into_iter()
        .map(|r| r.expect("ts"))
        .collect();
    assert_eq!(m.state.tso_counts(), vec![1, 1, 10]);
    assert_eq!(client.tso_rpc_count(), rpcs + 2);
    let reply = m.state.tso_replies()[2].timestamp.expect("a timestamp");
    let expected: Vec<u64> = (0..10)
        .map(|i| compose_ts(reply.physical, reply.logical - 9 + i))
        .collect();
    assert_eq!(got, expected);
    assert!(before < first && first < got[0]);
    client.close();
}

/// TSO-5: a batch carries at most `max_tso_batch` callers; the rest wait for the next
/// request, in queue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_carries_at_most_max_tso_batch_callers() {
    let m = Members::start(1).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            max_tso_batch: 4,
            ..quiet_opts()
        },
    )
    .await;
    // Six callers fit the dispatcher's queue (2 × max_tso_batch, TSO-5).
    let held = hold_one_and_queue(&m, &client, 6).await;
    drop(held.hold);
    let first = bounded(held.first).await.expect("task").expect("first ts");
    let got: Vec<u64> = results(held.queued)
        .await
        .into_iter()
        .map(|r| r.expect("ts"))
        .collect();
    assert_eq!(m.state.tso_counts(), vec![1, 4, 2]);
    assert!(first < got[0]);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    client.close();
}

/// TSO-1: one stream serves every batch while nothing goes wrong, and each request
/// carries the cluster id (the mock refuses a foreign one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_serves_every_batch() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let mut last = 0;
    for _ in 0..5 {
        let t = ts(&client).await;
        assert!(t > last);
        last = t;
    }
    assert_eq!(m.state.calls("tso").len(), 1);
    assert_eq!(m.state.tso_counts(), vec![1; 5]);
    client.close();
}

// ===== stream failures and recovery (TSO-3, TSO-6) =====

/// TSO-6: a stream that breaks (the server ends it with an error) fails its batch with
/// the error, typed (`Unavailable` as a transport failure, others as gRPC errors); the
/// members are refreshed and the next batch opens a new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_fails_its_batch_and_is_reopened() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let mut last = ts(&client).await;
    for status in [
        tonic::Status::internal("tso broke"),
        tonic::Status::unavailable("tso went away"),
    ] {
        m.state.clear();
        let code = status.code();
        let _once = m.pd().inject(
            PdRule::new(Some("Tso"), PdAction::Error(status)).policy(FirePolicy::FirstN(1)),
        );
        let err = bounded(client.get_ts()).await.expect_err("broken stream");
        match (code, err.detail()) {
            (tonic::Code::Internal, ErrorDetail::Grpc(s)) => {
                assert_eq!(s.code(), tonic::Code::Internal);
            }
            (tonic::Code::Unavailable, ErrorDetail::Transport { message, .. }) => {
                assert!(message.contains("tso went away"), "{message}");
            }
            (_, other) => panic!("untyped failure: {other:?}"),
        }
        let t = ts(&client).await;
        assert!(t > last);
        last = t;
        assert_eq!(m.state.calls("tso").len(), 1, "a new stream");
        assert_eq!(m.state.calls("get_members").len(), 1, "one refresh");
    }
    client.close();
}

/// TSO-6: a stream PD ends without an error (end of stream) fails the batch as a
/// transport failure; the next batch opens a new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ended_by_pd_fails_its_batch_and_is_reopened() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let before = ts(&client).await;
    m.state.clear();
    m.state
        .close_tso_stream
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = bounded(client.get_ts()).await.expect_err("ended stream");
    match err.detail() {
        ErrorDetail::Transport { message, .. } => assert!(message.contains("closed"), "{message}"),
        other => panic!("untyped failure: {other:?}"),
    }
    assert!(ts(&client).await > before);
    assert_eq!(m.state.calls("tso").len(), 1);
    client.close();
}

/// TSO-6: a batch whose reply does not come within the client timeout fails with a PD
/// timeout, and the stream is dropped: the next batch opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_after_the_client_timeout() {
    let m = Members::start(1).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            timeout: Duration::from_millis(300),
            ..quiet_opts()
        },
    )
    .await;
    let before = ts(&client).await;
    m.state.clear();
    let hold = m.pd().inject(PdRule::new(Some("Tso"), PdAction::Pause));
    let start = tokio::time::Instant::now();
    let err = bounded(client.get_ts()).await.expect_err("no reply");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(m) if m.contains("tso")),
        "{err:?}"
    );
    drop(hold);
    assert!(ts(&client).await > before);
    assert_eq!(m.state.calls("tso").len(), 1, "a new stream");
    client.close();
}

/// TSO-6: when no stream can be opened, the dispatcher tries again every
/// `tso_retry_interval` until the batch deadline, then fails the batch with the last
/// failure; the next batch tries afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_stream_is_retried_until_the_deadline() {
    let m = Members::start(1).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            timeout: Duration::from_millis(300),
            tso_retry_interval: Duration::from_millis(50),
            ..quiet_opts()
        },
    )
    .await;
    let refused = m.pd().inject(PdRule::new(
        Some("TsoOpen"),
        PdAction::Error(tonic::Status::unavailable("tso not ready")),
    ));
    let start = tokio::time::Instant::now();
    let err = bounded(client.get_ts()).await.expect_err("no stream");
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(
        matches!(err.detail(), ErrorDetail::Transport { message, .. } if message.contains("tso not ready")),
        "{err:?}"
    );
    let attempts = m.state.calls("tso").len();
    assert!((3..=7).contains(&attempts), "{attempts} attempts in 300 ms");
    assert!(m.state.calls("tso_request").is_empty());
    drop(refused);

    // A stream whose creation hangs is cut at the deadline.
    m.state.clear();
    let hung = m.pd().inject(PdRule::new(Some("TsoOpen"), PdAction::Pause));
    let err = bounded(client.get_ts()).await.expect_err("hung stream");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    drop(hung);
    ts(&client).await;
    client.close();
}

/// TSO-6, PD-4: after the leader moves, the request on the old leader's stream fails
/// ("not leader"), the dispatcher refreshes the members, and the next batch opens a
/// stream on the new leader. A move seen by a refresh first costs no failure: the stream
/// is reopened on the new leader before the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_follows_a_leader_change() {
    let m = Members::start(3).await;
    let client = connect(&m).await;
    let before = ts(&client).await;
    m.state.clear();
    m.state.leader.store(2, std::sync::atomic::Ordering::SeqCst);
    let err = bounded(client.get_ts()).await.expect_err("old leader");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    let after = ts(&client).await;
    assert!(after > before);
    assert_eq!(client.leader_url(), m.urls()[2]);
    assert_eq!(m.state.members_called("tso"), vec![2]);
    assert_eq!(m.state.members_called("tso_request"), vec![0, 2]);

    m.state.clear();
    m.state.leader.store(1, std::sync::atomic::Ordering::SeqCst);
    bounded(client.update_members()).await.expect("refresh");
    assert!(ts(&client).await > after);
    assert_eq!(m.state.members_called("tso"), vec![1]);
    assert_eq!(m.state.members_called("tso_request"), vec![1]);
    client.close();
}

// ===== malformed replies (TSO-2, TSO-3, TSO-4) =====

/// Runs one timestamp call with every TSO reply rewritten by `f`, and returns its
/// outcome; then checks that the dispatcher survived: a fresh timestamp (from a new
/// stream) is larger than any handed out before.
async fn with_reply(
    m: &Members,
    client: &PdClient,
    f: impl Fn(&mut pdpb::TsoResponse) + Send + Sync + 'static,
) -> Result<u64> {
    let before = ts(client).await;
    m.state
        .rewrite("tso", move |_, r: &mut pdpb::TsoResponse| f(r));
    let out = bounded(client.get_ts()).await;
    m.state.clear_rewrite("tso");
    let after = ts(client).await;
    assert!(after > before, "the client keeps serving");
    if let Ok(t) = &out {
        assert!(after > *t);
    }
    out
}

/// PD-8: a header error in a TSO reply fails the batch with PD's typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_error_in_a_reply_is_typed() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let out = with_reply(&m, &client, |r| {
        r.header = Some(pdpb::ResponseHeader {
            cluster_id: 1,
            error: Some(pdpb::Error {
                r#type: pdpb::ErrorType::NotBootstrapped as i32,
                message: "not bootstrapped".into(),
            }),
        });
    })
    .await;
    match detail_of(&out) {
        ErrorDetail::Pd(e) => assert_eq!(e.r#type(), pdpb::ErrorType::NotBootstrapped),
        other => panic!("untyped failure: {other:?}"),
    }
    let out = with_reply(&m, &client, |r| {
        r.header = Some(pdpb::ResponseHeader {
            cluster_id: 5,
            error: None,
        });
    })
    .await;
    assert!(
        matches!(
            detail_of(&out),
            ErrorDetail::MismatchClusterId {
                expected: 1,
                got: 5
            }
        ),
        "{out:?}"
    );
    client.close();
}

/// TSO-3 (`ErrTSOLength`): a reply whose count differs from the request's fails the
/// batch; so does a reply without a timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_of_the_wrong_size_or_without_timestamp_is_malformed() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let out = with_reply(&m, &client, |r| r.count += 1).await;
    assert!(
        matches!(detail_of(&out), ErrorDetail::Malformed(msg) if msg.contains("mismatch")),
        "{out:?}"
    );
    let out = with_reply(&m, &client, |r| r.timestamp = None).await;
    assert!(
        matches!(detail_of(&out), ErrorDetail::Malformed(msg) if msg.contains("without timestamp")),
        "{out:?}"
    );
    assert_eq!(out.as_ref().map_err(|e| e.kind()), Err(ErrorKind::Protocol));
    client.close();
}

/// TSO-2: a reply whose largest logical is too small for the batch (the block would
/// start below logical 0) fails every caller of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_too_small_for_its_batch_fails_every_caller() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    m.state.rewrite("tso", |_, r: &mut pdpb::TsoResponse| {
        if r.count == 3
            && let Some(t) = r.timestamp.as_mut()
        {
            t.logical = 1;
        }
    });
    let held = hold_one_and_queue(&m, &client, 3).await;
    drop(held.hold);
    bounded(held.first).await.expect("task").expect("first ts");
    for out in results(held.queued).await {
        assert!(
            matches!(detail_of(&out), ErrorDetail::Malformed(msg) if msg.contains("too small")),
            "{out:?}"
        );
    }
    assert_eq!(m.state.tso_counts(), vec![1, 3]);
    client.close();
}

/// A reply whose numbers cannot be a timestamp (a logical or physical part that
/// overflows a ts, a negative physical) is a typed error, never a panic, and the
/// dispatcher keeps serving. `suffix_bits` is ignored, as the PD client ignores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_timestamps_are_typed_errors() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let cases: [(i64, i64); 5] = [
        (1, i64::MAX),
        (1, i64::MIN),
        (i64::MAX >> 18, 1 << 18),
        (i64::MAX, 0),
        (-5, 0),
    ];
    for (physical, logical) in cases {
        let out = with_reply(&m, &client, move |r| {
            r.timestamp = Some(pdpb::Timestamp {
                physical,
                logical,
                suffix_bits: 0,
            });
        })
        .await;
        assert!(
            matches!(detail_of(&out), ErrorDetail::Malformed(_)),
            "({physical}, {logical}): {out:?}"
        );
    }
    let out = with_reply(&m, &client, |r| {
        if let Some(t) = r.timestamp.as_mut() {
            t.suffix_bits = 3;
        }
    })
    .await;
    let reply = m
        .state
        .tso_replies()
        .iter()
        .rev()
        .find(|r| r.timestamp.is_some_and(|t| t.suffix_bits == 3))
        .and_then(|r| r.timestamp)
        .expect("the rewritten reply");
    assert_eq!(
        out.expect("suffix bits are ignored"),
        compose_ts(reply.physical, reply.logical)
    );
    client.close();
}

/// TSO-4: a reply that does not move past the largest timestamp handed out fails the
/// batch ("timestamp fallback") instead of handing out a smaller one. (The PD client
/// panics here; this client keeps serving.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_fallback_is_refused() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let out = with_reply(&m, &client, |r| {
        r.timestamp = Some(pdpb::Timestamp {
            physical: 1,
            logical: 0,
            suffix_bits: 0,
        });
    })
    .await;
    assert!(
        matches!(detail_of(&out), ErrorDetail::Internal(msg) if msg.contains("fallback")),
        "{out:?}"
    );
    client.close();
}

// ===== service mode (PD-7, TSO-8), closing =====

/// PD-7: once PD reports API service mode, timestamp calls fail at once with
/// `TsoServiceUnsupported` and nothing is sent; back in PD mode they work again. An old PD
/// answering `Unimplemented` is PD mode; an answer without a mode is an error that keeps
/// the last mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_service_mode_fails_timestamp_calls() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    m.state.rewrite(
        "get_cluster_info",
        |_, r: &mut pdpb::GetClusterInfoResponse| {
            r.service_modes = vec![pdpb::ServiceMode::ApiSvcMode as i32];
        },
    );
    assert_eq!(
        bounded(client.refresh_service_mode()).await.expect("mode"),
        pdpb::ServiceMode::ApiSvcMode
    );
    assert_eq!(client.service_mode(), pdpb::ServiceMode::ApiSvcMode);
    let source: Arc<dyn TimestampSource> = Arc::new(client.clone());
    for out in [
        bounded(client.get_ts()).await,
        bounded(client.get_min_ts()).await,
        bounded(source.get_ts()).await,
        bounded(source.get_min_ts()).await,
    ] {
        let err = out.expect_err("API service mode");
        assert!(is_tso_service_unsupported(&err), "{err:?}");
    }
    assert!(m.state.calls("tso_request").is_empty());

    m.state.rewrite(
        "get_cluster_info",
        |_, r: &mut pdpb::GetClusterInfoResponse| {
            r.service_modes.clear();
        },
    );
    let err = bounded(client.refresh_service_mode())
        .await
        .expect_err("no mode");
    assert!(matches!(err.detail(), ErrorDetail::Malformed(_)), "{err:?}");
    assert_eq!(client.service_mode(), pdpb::ServiceMode::ApiSvcMode);

    m.state.clear_rewrite("get_cluster_info");
    let _old_pd = m.pd().inject(PdRule::new(
        Some("GetClusterInfo"),
        PdAction::Error(tonic::Status::unimplemented("GetClusterInfo")),
    ));
    assert_eq!(
        bounded(client.refresh_service_mode()).await.expect("mode"),
        pdpb::ServiceMode::PdSvcMode
    );
    ts(&client).await;
    client.close();
}

/// TSO-8: in PD mode the minimum timestamp over the keyspace groups is a fresh timestamp
/// (no `GetMinTS` RPC); the [`TimestampSource`] face of the client gives the same, and
/// passes the external timestamp through (PD-17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ts_is_a_fresh_timestamp_in_pd_mode() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let source: Arc<dyn TimestampSource> = Arc::new(client.clone());
    let a = ts(&client).await;
    let b = bounded(client.get_min_ts()).await.expect("min ts");
    let c = bounded(source.get_min_ts()).await.expect("min ts");
    let d = bounded(source.get_ts()).await.expect("ts");
    assert!(a < b && b < c && c < d);
    assert!(m.state.calls("get_min_ts").is_empty());
    assert_eq!(m.state.tso_counts(), vec![1; 4]);
    bounded(source.set_external_timestamp(a))
        .await
        .expect("set external");
    assert_eq!(
        bounded(source.get_external_timestamp())
            .await
            .expect("external"),
        a
    );
    client.close();
}

/// `close`: the caller whose request is in flight and the callers queued behind it fail
/// at once with `ShuttingDown`, without waiting for PD; so does every later caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_fails_waiting_and_later_timestamp_calls() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    ts(&client).await;
    let held = hold_one_and_queue(&m, &client, 3).await;
    client.close();
    let first = bounded(held.first).await.expect("task");
    assert!(
        matches!(detail_of(&first), ErrorDetail::ShuttingDown),
        "{first:?}"
    );
    for out in results(held.queued).await {
        assert!(
            matches!(detail_of(&out), ErrorDetail::ShuttingDown),
            "{out:?}"
        );
    }
    let later = bounded(client.get_ts()).await.expect_err("closed");
    assert_eq!(later.kind(), ErrorKind::Canceled);
    drop(held.hold);
    client.close();
    assert_eq!(
        m.state.tso_counts(),
        vec![1, 1],
        "nothing sent after the close"
    );
}
