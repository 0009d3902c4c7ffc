//! The PD client's creation, member refresh, unary calls and forwarding, against
//! [`Members`] on loopback (PD-3, PD-4, PD-5, PD-8, PD-10 .. PD-17, GC-3, KS-17).
//!
//! The behaviour asserted is the PD client's (`tikv/pd`, `client/client.go`,
//! `client/servicediscovery/service_discovery.go`) where this client follows it, and this
//! client's documented contract where it goes further: unary calls are retried here on
//! connection-class failures after a blocking member refresh, within a `pdRPC` budget of
//! the client timeout, where the PD client leaves the retry to its caller.
//!
//! Real gRPC on loopback cannot run on paused time (an idle runtime would jump past every
//! deadline while a socket is being read), so these tests run on real time with short
//! timeouts, and wait for conditions through the fixture's call log, never by sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tikv_layers::backoff::BackoffKind;
use tikv_layers::metrics::labels;
use tikv_layers::metrics::names::BACKOFF_SECONDS;
use tikv_layers::{Error, ErrorDetail, ErrorKind};
use tikv_proto::{metapb, pdpb};
use tonic::Code;
use tonic::transport::ClientTlsConfig;

use super::members::{Call, Members, Read, bounded, connect, connect_with, quiet_opts};
use crate::mock::{FirePolicy, MockOptions, PdAction, PdRule, encode_key};
use crate::pd::{
    KeyRange, PdClient, PdClientOptions, RegionMetaClient, RegionOptions, is_store_not_found,
    pd_error_type,
};

/// A client whose calls give up quickly: a 200 ms timeout, so a `pdRPC` budget that the
/// first backoff sleep (at least 250 ms) exhausts.
fn short_opts() -> PdClientOptions {
    PdClientOptions {
        timeout: Duration::from_millis(200),
        ..quiet_opts()
    }
}

/// The URL of a loopback port nothing listens on.
async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    url
}

/// The detail of the first client error in `err`'s source chain (the failure behind a
/// budget error).
fn source_detail(err: &Error) -> Option<ErrorDetail> {
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(e) = e.downcast_ref::<Error>() {
            return Some(e.detail().clone());
        }
        cur = e.source();
    }
    None
}

/// How many `pdRPC` backoff sleeps were recorded.
fn pd_rpc_backoffs(snapshotter: &Snapshotter) -> usize {
    let label = labels::backoff_type(BackoffKind::PdRpc);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == BACKOFF_SECONDS
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == labels::TYPE && l.value() == label)
        })
        .map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            _ => 0,
        })
        .sum()
}

fn call(member: usize, method: &'static str, forwarded: bool, admitted: bool) -> Call {
    Call {
        member,
        method,
        forwarded,
        admitted,
    }
}

fn ids(regions: &[crate::pd::RegionInfo]) -> Vec<u64> {
    regions.iter().map(|r| r.region.id).collect()
}

fn grpc_code(err: &Error) -> Option<Code> {
    match err.detail() {
        ErrorDetail::Grpc(s) => Some(s.code()),
        _ => None,
    }
}

// ===== creation (PD-3) =====

/// No endpoint at all is the caller's mistake, reported before anything is dialled.
#[tokio::test(start_paused = true)]
async fn connect_without_endpoints_is_an_invalid_argument() {
    let err = PdClient::connect(&[], quiet_opts())
        .await
        .expect_err("no endpoints");
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidArgument(m) if m.contains("no PD endpoints")),
        "{err:?}"
    );
}

/// An endpoint that is no URL fails creation with a typed error naming it, before
/// anything is dialled.
#[tokio::test(start_paused = true)]
async fn connect_with_an_unparsable_endpoint_fails_typed() {
    let err = PdClient::connect(&["bad host:2379".to_owned()], quiet_opts())
        .await
        .expect_err("not a URL");
    match err.detail() {
        ErrorDetail::Transport { addr, .. } => assert_eq!(addr, "http://bad host:2379"),
        other => panic!("untyped failure: {other:?}"),
    }
}

/// PD-3: when no endpoint answers, creation walks the endpoints `max_init_retries` times,
/// 1 s apart, and fails with the last failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_with_the_last_error_when_no_member_answers() {
    let url = closed_port_url().await;
    let start = tokio::time::Instant::now();
    let err = bounded(PdClient::connect(
        std::slice::from_ref(&url),
        PdClientOptions {
            max_init_retries: 2,
            ..quiet_opts()
        },
    ))
    .await
    .expect_err("nobody answers");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "the second round starts 1 s after the first"
    );
    match err.detail() {
        ErrorDetail::Transport { addr, .. } => assert_eq!(addr, &url),
        other => panic!("untyped failure: {other:?}"),
    }
}

/// PD-3: `GetMembers` at creation is bounded by the client timeout; a member that never
/// answers fails creation with a PD timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_times_out_on_a_silent_member() {
    let m = Members::start(1).await;
    let _silent = m
        .pd()
        .inject(PdRule::new(Some("GetMembers"), PdAction::Pause));
    let start = tokio::time::Instant::now();
    let err = bounded(PdClient::connect(&m.urls(), short_opts()))
        .await
        .expect_err("silent member");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(m.state.members_called("get_members"), vec![0]);
}

/// PD-3: every endpoint must belong to the cluster of the first answer
/// (`ErrUnmatchedClusterID`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rejects_members_of_two_clusters() {
    let a = Members::start(1).await;
    let b = Members::start_with(
        1,
        MockOptions {
            cluster_id: 2,
            ..MockOptions::default()
        },
    )
    .await;
    let urls = vec![a.urls()[0].clone(), b.urls()[0].clone()];
    let err = bounded(PdClient::connect(&urls, quiet_opts()))
        .await
        .expect_err("two clusters");
    assert!(
        matches!(
            err.detail(),
            ErrorDetail::MismatchClusterId {
                expected: 1,
                got: 2
            }
        ),
        "{err:?}"
    );
}

/// PD-3: an answer without a cluster id (no header, or id 0) is skipped and the next
/// member's id adopted; with no id anywhere, creation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_cluster_id_are_skipped() {
    let m = Members::start(2).await;
    m.state
        .rewrite("get_members", |member, r: &mut pdpb::GetMembersResponse| {
            if member == 0 {
                r.header = None;
            }
        });
    let client = connect(&m).await;
    assert_eq!(client.cluster_id(), 1);
    assert_eq!(RegionMetaClient::cluster_id(&client), 1);
    assert_eq!(client.leader_url(), m.urls()[0]);
    client.close();

    m.state
        .rewrite("get_members", |member, r: &mut pdpb::GetMembersResponse| {
            if member == 0 {
                r.header = None;
            } else if let Some(h) = r.header.as_mut() {
                h.cluster_id = 0;
            }
        });
    let err = bounded(PdClient::connect(&m.urls(), quiet_opts()))
        .await
        .expect_err("no cluster id");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
}

/// PD-4: the leader named by the first answer is adopted at creation; when that answer
/// names none, a member refresh follows and its leader is adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refreshes_members_when_the_first_answer_names_no_leader() {
    let m = Members::start(1).await;
    let answers = AtomicUsize::new(0);
    m.state
        .rewrite("get_members", move |_, r: &mut pdpb::GetMembersResponse| {
            if answers.fetch_add(1, Ordering::SeqCst) == 0 {
                r.leader = None;
            }
        });
    let client = bounded(PdClient::connect(&m.urls(), quiet_opts()))
        .await
        .expect("the refresh names the leader");
    assert_eq!(client.leader_url(), m.urls()[0]);
    assert_eq!(m.state.members_called("get_members"), vec![0, 0]);
    client.close();
}

/// PD-4: answers whose leader has no client URL are skipped; when every member answers
/// so, creation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_when_no_answer_names_a_usable_leader() {
    let m = Members::start(2).await;
    m.state
        .rewrite("get_members", |_, r: &mut pdpb::GetMembersResponse| {
            if let Some(l) = r.leader.as_mut() {
                l.client_urls.clear();
            }
        });
    let err = bounded(PdClient::connect(&m.urls(), quiet_opts()))
        .await
        .expect_err("no usable leader");
    match err.detail() {
        ErrorDetail::PdServerTimeout(msg) => assert!(msg.contains("leader"), "{msg}"),
        other => panic!("untyped failure: {other:?}"),
    }
    // Creation asked both members, then refreshed through both.
    assert_eq!(m.state.calls("get_members").len(), 4);
}

/// The PD client's `getMembers` treats an answer with a header error as a failed call: it
/// neither gives the cluster id nor names the leader, and the next member's answer wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_answers_with_a_header_error_are_skipped() {
    let m = Members::start(2).await;
    m.state.leader.store(1, Ordering::SeqCst);
    // Member 0 is not ready: its answer carries an error and a stale view naming itself.
    m.state
        .rewrite("get_members", |member, r: &mut pdpb::GetMembersResponse| {
            if member == 0 {
                if let Some(h) = r.header.as_mut() {
                    h.error = Some(pdpb::Error {
                        r#type: pdpb::ErrorType::Unknown as i32,
                        message: "server not started".into(),
                    });
                }
                r.leader = r.members.first().cloned();
            }
        });
    let client = bounded(PdClient::connect(&m.urls(), quiet_opts()))
        .await
        .expect("member 1 answers");
    assert_eq!(client.leader_url(), m.urls()[1]);
    // Refreshes skip it too: member 0 alone gives no leader.
    m.state.clear();
    let solo = bounded(PdClient::connect(&m.urls()[..1], quiet_opts()))
        .await
        .expect_err("only the failing member");
    assert_eq!(
        pd_error_type(&solo),
        Some(pdpb::ErrorType::Unknown),
        "{solo:?}"
    );
    client.close();
}

/// With TLS configured the client dials every member over TLS (`https://`, PD-24); a
/// plaintext member is then unreachable and creation fails typed, naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_cannot_reach_a_plaintext_member() {
    let m = Members::start(1).await;
    let host = m.urls()[0].trim_start_matches("http://").to_owned();
    let err = bounded(PdClient::connect(
        std::slice::from_ref(&host),
        PdClientOptions {
            tls: Some(ClientTlsConfig::new()),
            ..quiet_opts()
        },
    ))
    .await
    .expect_err("TLS to a plaintext server");
    match err.detail() {
        ErrorDetail::Transport { addr, .. } => assert_eq!(addr, &format!("https://{host}")),
        other => panic!("untyped failure: {other:?}"),
    }
    assert!(m.state.calls("get_members").is_empty());
}

// ===== members and the leader (PD-4) =====

/// PD-4: a refresh adopts the leader the members name now, the sorted union of their
/// client URLs and the followers; the first acceptable answer is enough. Answers of
/// another cluster are skipped; when all are, the refresh fails and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_refresh_follows_the_leader() {
    let m = Members::start(3).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            keepalive_time: Some(Duration::from_secs(10)),
            keepalive_timeout: Some(Duration::from_secs(3)),
            ..quiet_opts()
        },
    )
    .await;
    let mut sorted = m.urls();
    sorted.sort();
    assert_eq!(client.member_urls(), sorted);
    assert_eq!(client.leader_url(), m.urls()[0]);

    m.state.leader.store(2, Ordering::SeqCst);
    bounded(client.update_members()).await.expect("refresh");
    assert_eq!(client.leader_url(), m.urls()[2]);
    assert_eq!(client.follower_urls(), m.urls()[..2].to_vec());
    assert_eq!(m.state.calls("get_members").len(), 1);
    let shown = format!("{client:?}");
    assert!(
        shown.contains("cluster_id: 1") && shown.contains(&m.urls()[2]),
        "{shown}"
    );

    m.state.leader.store(0, Ordering::SeqCst);
    m.state
        .rewrite("get_members", |_, r: &mut pdpb::GetMembersResponse| {
            if let Some(h) = r.header.as_mut() {
                h.cluster_id = 99;
            }
        });
    let err = bounded(client.update_members())
        .await
        .expect_err("another cluster");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    assert_eq!(client.leader_url(), m.urls()[2]);
    assert_eq!(
        m.state.calls("get_members").len(),
        1 + 3,
        "every member asked"
    );
    client.close();
}

/// PD-4: `schedule_check_members` (`ScheduleCheckMemberChanged`) makes the member loop
/// refresh in the background; the caller does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_check_refreshes_members_in_the_background() {
    let m = Members::start(2).await;
    let client = connect(&m).await;
    m.state.leader.store(1, Ordering::SeqCst);
    client.schedule_check_members();
    assert_eq!(
        client.leader_url(),
        m.urls()[0],
        "not applied synchronously"
    );
    m.state
        .wait_for("the background GetMembers", |calls| {
            calls.iter().any(|c| c.method == "get_members")
        })
        .await;
    bounded(async {
        while client.leader_url() != m.urls()[1] {
            tokio::task::yield_now().await;
        }
    })
    .await;
    client.close();
}

/// A member URL that cannot be dialled (a malformed `GetMembers` answer) is listed but
/// skipped: refreshes go on to the next member, and a follower-handled region read picked
/// for it goes to the leader (PD-6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_member_urls_are_skipped() {
    // Sorts before every `http://127.0.0.1:<port>`, so refreshes try it first.
    const BAD: &str = "http://0 bad host";
    let m = Members::start(2).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            enable_follower_handle: true,
            ..quiet_opts()
        },
    )
    .await;
    m.state
        .rewrite("get_members", |_, r: &mut pdpb::GetMembersResponse| {
            r.members.push(pdpb::Member {
                name: "bad".into(),
                member_id: 99,
                client_urls: vec![BAD.into()],
                ..Default::default()
            });
        });
    bounded(client.update_members()).await.expect("refresh");
    assert_eq!(client.member_urls()[0], BAD);
    assert_eq!(
        client.follower_urls(),
        vec![m.urls()[1].clone(), BAD.to_owned()]
    );
    bounded(client.update_members())
        .await
        .expect("the next member answers");
    assert_eq!(m.state.calls("get_members").len(), 2);

    let allow = RegionOptions {
        allow_follower: true,
        ..RegionOptions::default()
    };
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = bounded(RegionMetaClient::get_region(&client, Vec::new(), allow))
            .await
            .expect("read");
        answers.push(r.map(|r| r.region.id));
    }
    assert_eq!(answers, vec![Some(m.regions[0]); 3]);
    let served = |member, follower_handled| Read {
        member,
        method: "get_region",
        follower_handled,
        served: true,
    };
    assert_eq!(
        m.state.take_reads(),
        vec![served(0, false), served(1, true), served(0, false)]
    );
    client.close();
}

// ===== unary calls: retries and errors =====

/// A call reaching a member that lost the leadership ("not leader", a connection-class
/// failure) refreshes the members, backs off `pdRPC` once and succeeds on the new leader,
/// even one the client was not given at creation (PD-4: the member list is the members'
/// client URLs, not the endpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_follows_a_leader_change() {
    let m = Members::start(3).await;
    let client = bounded(PdClient::connect(&m.urls()[..1], quiet_opts()))
        .await
        .expect("connect");
    let mut all = m.urls();
    all.sort();
    assert_eq!(client.member_urls(), all);
    m.state.clear();
    m.state.leader.store(2, Ordering::SeqCst);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = {
        let _local = metrics::set_default_local_recorder(&recorder);
        bounded(client.get_store(1)).await.expect("store")
    };
    assert_eq!(store.map(|s| s.id), Some(1));
    assert_eq!(
        m.state.calls("get_store"),
        vec![
            call(0, "get_store", false, false),
            call(2, "get_store", false, true)
        ]
    );
    assert_eq!(m.state.calls("get_members").len(), 1);
    assert_eq!(client.leader_url(), m.urls()[2]);
    assert_eq!(pd_rpc_backoffs(&snapshotter), 1);
    client.close();
}

/// Connection-class failures are retried after a member refresh: `Unavailable` and
/// `DeadlineExceeded`, and the gRPC codes a broken connection surfaces as (`Unknown`,
/// `Cancelled`, `Aborted`). One failure each: two attempts, one refresh, then PD's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_class_failures_are_retried() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let once = |method: &str, code: Code| {
        m.pd().inject(
            PdRule::new(
                Some(method),
                PdAction::Error(tonic::Status::new(code, "connection trouble")),
            )
            .policy(FirePolicy::FirstN(1)),
        )
    };
    let _rules = [
        once("GetStore", Code::Unavailable),
        once("GetAllStores", Code::DeadlineExceeded),
        once("GetOperator", Code::Unknown),
        once("GetExternalTimestamp", Code::Cancelled),
        once("GetGCState", Code::Aborted),
    ];
    let (store, stores, operator, external, gc) = bounded(async {
        tokio::join!(
            client.get_store(1),
            client.get_all_stores(false),
            client.get_operator(m.regions[0]),
            client.get_external_timestamp(),
            client.get_gc_state(pdpb::GetGcStateRequest::default()),
        )
    })
    .await;
    assert_eq!(store.expect("store").map(|s| s.id), Some(1));
    assert_eq!(ids_of_stores(&stores.expect("stores")), vec![1]);
    assert_eq!(operator.expect("operator").region_id, m.regions[0]);
    assert_eq!(external.expect("external ts"), 0);
    assert!(gc.expect("gc state").gc_state.is_some());
    for method in [
        "get_store",
        "get_all_stores",
        "get_operator",
        "get_external_timestamp",
        "get_gc_state",
    ] {
        assert_eq!(m.state.calls(method).len(), 2, "{method}");
    }
    assert_eq!(m.state.calls("get_members").len(), 5);
    client.close();
}

fn ids_of_stores(stores: &[metapb::Store]) -> Vec<u64> {
    let mut v: Vec<u64> = stores.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v
}

/// Other gRPC failures are final: `Unimplemented` (an old PD), `InvalidArgument`,
/// `Internal`, `FailedPrecondition` fail the call at once, typed, without a refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_grpc_failures_fail_at_once() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    // The mock answers global GC barriers with `Unimplemented`.
    let err = bounded(client.get_gc_state(pdpb::GetGcStateRequest {
        include_global_gc_barriers: true,
        ..Default::default()
    }))
    .await
    .expect_err("unimplemented");
    assert_eq!(grpc_code(&err), Some(Code::Unimplemented), "{err:?}");
    // A barrier at ts 0 is an invalid argument.
    let err = bounded(client.set_gc_barrier(pdpb::SetGcBarrierRequest {
        barrier_id: "b".into(),
        barrier_ts: 0,
        ttl_seconds: 60,
        ..Default::default()
    }))
    .await
    .expect_err("invalid barrier");
    assert_eq!(grpc_code(&err), Some(Code::InvalidArgument), "{err:?}");
    let _internal = m.pd().inject(PdRule::new(
        Some("GetOperator"),
        PdAction::Error(tonic::Status::internal("operator broke")),
    ));
    let err = bounded(client.get_operator(1)).await.expect_err("internal");
    assert_eq!(grpc_code(&err), Some(Code::Internal), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Grpc);
    let _precondition = m.pd().inject(PdRule::new(
        Some("UpdateGCSafePoint"),
        PdAction::Error(tonic::Status::failed_precondition("mismatch cluster id")),
    ));
    let err = bounded(client.update_gc_safe_point(1))
        .await
        .expect_err("precondition");
    assert_eq!(grpc_code(&err), Some(Code::FailedPrecondition), "{err:?}");
    for method in [
        "get_gc_state",
        "set_gc_barrier",
        "get_operator",
        "update_gc_safe_point",
    ] {
        assert_eq!(m.state.calls(method).len(), 1, "{method}");
    }
    assert!(m.state.calls("get_members").is_empty(), "no refresh");
    client.close();
}

/// A call whose attempts keep failing gives up once the `pdRPC` budget (the client
/// timeout) is spent: a PD timeout carrying the last failure. Every failure refreshed the
/// members before the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_gives_up_when_the_backoff_budget_is_spent() {
    let m = Members::start(1).await;
    let client = connect_with(&m, short_opts()).await;
    let _down = m.pd().inject(PdRule::new(
        Some("GetStore"),
        PdAction::Error(tonic::Status::unavailable("store service down")),
    ));
    let err = bounded(client.get_store(1)).await.expect_err("budget");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    assert!(
        matches!(source_detail(&err), Some(ErrorDetail::Transport { .. })),
        "{err:?}"
    );
    assert_eq!(m.state.calls("get_store").len(), 2);
    assert_eq!(m.state.calls("get_members").len(), 2);

    // A refresh that fails too does not stop the retries.
    m.state.clear();
    let _no_members = m.pd().inject(PdRule::new(
        Some("GetMembers"),
        PdAction::Error(tonic::Status::unavailable("members down")),
    ));
    let err = bounded(client.get_store(1)).await.expect_err("budget");
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    assert_eq!(m.state.calls("get_store").len(), 2);
    assert_eq!(m.state.calls("get_members").len(), 2);
    assert_eq!(client.leader_url(), m.urls()[0]);
    client.close();
}

/// PD-20: each attempt is cut at the client timeout and counts as a PD timeout; a leader
/// that never answers exhausts the budget the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_leader_times_out_each_attempt() {
    let m = Members::start(1).await;
    let client = connect_with(&m, short_opts()).await;
    let _silent = m
        .pd()
        .inject(PdRule::new(Some("GetOperator"), PdAction::Pause));
    let start = tokio::time::Instant::now();
    let err = bounded(client.get_operator(1)).await.expect_err("silent");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "two attempts"
    );
    assert!(
        matches!(err.detail(), ErrorDetail::PdServerTimeout(_)),
        "{err:?}"
    );
    match source_detail(&err) {
        Some(ErrorDetail::PdServerTimeout(msg)) => assert!(msg.contains("elapsed"), "{msg}"),
        other => panic!("the attempt's failure: {other:?}"),
    }
    assert_eq!(m.state.calls("get_operator").len(), 2);
    client.close();
}

/// PD-8, PD-14: a header error is PD's verdict: a typed PD error at once, never retried.
/// An unknown store id (0 included) is PD's "invalid store ID, not found", which
/// `is_store_not_found` recognizes; a batch scan that cannot cover every range is
/// `REGIONS_NOT_CONTAIN_ALL_KEY_RANGE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_errors_are_typed_and_not_retried() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    for id in [0, 99] {
        let err = bounded(client.get_store(id)).await.expect_err("no store");
        assert_eq!(
            pd_error_type(&err),
            Some(pdpb::ErrorType::Unknown),
            "{err:?}"
        );
        assert!(is_store_not_found(&err), "{err}");
        assert_eq!(err.kind(), ErrorKind::Pd);
    }
    m.state.rewrite(
        "batch_scan_regions",
        |_, r: &mut pdpb::BatchScanRegionsResponse| {
            r.regions.clear();
            if let Some(h) = r.header.as_mut() {
                h.error = Some(pdpb::Error {
                    r#type: pdpb::ErrorType::RegionsNotContainAllKeyRange as i32,
                    message: "regions not contain all key range".into(),
                });
            }
        },
    );
    let err = bounded(client.batch_scan_regions(&[KeyRange::new("", "")], 0, false, true))
        .await
        .expect_err("gap");
    assert_eq!(
        pd_error_type(&err),
        Some(pdpb::ErrorType::RegionsNotContainAllKeyRange)
    );
    assert!(!is_store_not_found(&err));
    assert_eq!(m.state.calls("get_store").len(), 2);
    assert_eq!(m.state.calls("batch_scan_regions").len(), 1);
    assert!(m.state.calls("get_members").is_empty(), "no refresh");
    client.close();
}

/// PD-8: an answer stamped with another cluster id is rejected, not retried; an answer
/// without a header carries no error, as for the PD client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_another_cluster_is_rejected() {
    let m = Members::start(1).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            caller_component: "rawkv-client-go".into(),
            ..quiet_opts()
        },
    )
    .await;
    let header = client.header();
    assert_eq!(header.cluster_id, 1);
    assert_eq!(header.caller_component, "rawkv-client-go");
    assert!(header.caller_id.starts_with("tikv-rs-"), "{header:?}");

    m.state
        .rewrite("get_region", |_, r: &mut pdpb::GetRegionResponse| {
            if let Some(h) = r.header.as_mut() {
                h.cluster_id = 77;
            }
        });
    let err = bounded(client.get_region(b"x", false))
        .await
        .expect_err("foreign answer");
    assert!(
        matches!(
            err.detail(),
            ErrorDetail::MismatchClusterId {
                expected: 1,
                got: 77
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.state.calls("get_region").len(), 1);

    m.state
        .rewrite("get_region", |_, r: &mut pdpb::GetRegionResponse| {
            r.header = None;
        });
    let r = bounded(client.get_region(b"x", false))
        .await
        .expect("headerless answer");
    assert_eq!(r.map(|r| r.region.id), Some(m.regions[1]));
    client.close();
}

// ===== region and store reads (PD-10 .. PD-14) =====

/// PD-10 .. PD-12: region reads return PD's regions: the containing one, the previous one,
/// by id, scans and batch scans with limits; `need_buckets` is passed through. A key
/// before the first region and ids PD does not know (0 included) give no region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_reads_return_pds_regions() {
    let m = Members::start(1).await;
    let (r0, r1) = (m.regions[0], m.regions[1]);
    m.mock
        .cluster()
        .split_region_buckets(r1, &[b"p", b"t"], 7)
        .expect("buckets");
    let client = connect(&m).await;

    let first = bounded(client.get_region(b"", false))
        .await
        .expect("read")
        .expect("a region");
    assert_eq!(first.region.id, r0);
    assert!(first.has_leader());
    let with = bounded(client.get_region(b"x", true))
        .await
        .expect("read")
        .expect("a region");
    assert_eq!(with.region.id, r1);
    assert_eq!(with.buckets.map(|b| b.version), Some(7));
    let without = bounded(client.get_region(b"x", false))
        .await
        .expect("read")
        .expect("a region");
    assert!(without.buckets.is_none());

    let prev = bounded(client.get_prev_region(b"x", false))
        .await
        .expect("read");
    assert_eq!(prev.map(|r| r.region.id), Some(r0));
    let none = bounded(client.get_prev_region(b"", false))
        .await
        .expect("read");
    assert_eq!(none, None);

    let by_id = bounded(client.get_region_by_id(r1, false))
        .await
        .expect("read");
    assert_eq!(by_id.map(|r| r.region.id), Some(r1));
    for id in [0, 999] {
        assert_eq!(
            bounded(client.get_region_by_id(id, false))
                .await
                .expect("read"),
            None,
            "{id}"
        );
    }

    let all = bounded(client.scan_regions(b"", b"", 0))
        .await
        .expect("scan");
    assert_eq!(ids(&all), vec![r0, r1]);
    let one = bounded(client.scan_regions(b"", b"", 1))
        .await
        .expect("scan");
    assert_eq!(ids(&one), vec![r0]);
    let tail = bounded(client.scan_regions(&encode_key(b"n"), b"", 0))
        .await
        .expect("scan");
    assert_eq!(ids(&tail), vec![r1]);

    let ranges = [
        KeyRange::new(Vec::new(), encode_key(b"a")),
        KeyRange::new(encode_key(b"n"), Vec::new()),
    ];
    let both = bounded(client.batch_scan_regions(&ranges, 0, false, true))
        .await
        .expect("batch scan");
    assert_eq!(ids(&both), vec![r0, r1]);
    let limited = bounded(client.batch_scan_regions(&ranges, 1, false, false))
        .await
        .expect("batch scan");
    assert_eq!(ids(&limited), vec![r0]);
    let nothing = bounded(client.batch_scan_regions(&[], 0, false, false))
        .await
        .expect("batch scan");
    assert!(nothing.is_empty());
    let members: Vec<usize> = m.state.take_reads().iter().map(|r| r.member).collect();
    assert!(members.iter().all(|&i| i == 0), "{members:?}");
    client.close();
}

/// Malformed or old-style region answers are read defensively: a missing region is "no
/// such region", a leader with id 0 is no leader, scan entries without a region are left
/// out, and an old PD's parallel lists (`region_metas`, `leaders`) are read as regions,
/// a missing leader being no leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_answers_are_read_defensively() {
    let m = Members::start(1).await;
    let (r0, r1) = (m.regions[0], m.regions[1]);
    let client = connect(&m).await;

    m.state
        .rewrite("get_region", |_, r: &mut pdpb::GetRegionResponse| {
            r.region = None;
        });
    assert_eq!(
        bounded(client.get_region(b"x", false)).await.expect("read"),
        None
    );
    m.state
        .rewrite("get_region", |_, r: &mut pdpb::GetRegionResponse| {
            r.leader = Some(metapb::Peer::default());
        });
    let leaderless = bounded(client.get_region(b"x", false))
        .await
        .expect("read")
        .expect("a region");
    assert_eq!(leaderless.leader, None);
    assert!(!leaderless.has_leader());

    m.state
        .rewrite("scan_regions", |_, r: &mut pdpb::ScanRegionsResponse| {
            r.regions[0].region = None;
        });
    let scanned = bounded(client.scan_regions(b"", b"", 0))
        .await
        .expect("scan");
    assert_eq!(ids(&scanned), vec![r1]);

    m.state.clear_rewrite("scan_regions");
    let expected = bounded(client.scan_regions(b"", b"", 0))
        .await
        .expect("scan");
    m.state
        .rewrite("scan_regions", |_, r: &mut pdpb::ScanRegionsResponse| {
            r.regions.clear();
            r.leaders.truncate(1);
        });
    let old = bounded(client.scan_regions(b"", b"", 0))
        .await
        .expect("scan");
    assert_eq!(ids(&old), vec![r0, r1]);
    assert_eq!(old[0].leader, expected[0].leader);
    assert!(old[0].has_leader());
    assert_eq!(old[1].leader, None);
    m.state
        .rewrite("scan_regions", |_, r: &mut pdpb::ScanRegionsResponse| {
            r.regions.clear();
            r.leaders[0] = metapb::Peer::default();
        });
    let old = bounded(client.scan_regions(b"", b"", 0))
        .await
        .expect("scan");
    assert_eq!(old[0].leader, None);
    assert_eq!(old[1].leader, expected[1].leader);

    m.state.rewrite(
        "batch_scan_regions",
        |_, r: &mut pdpb::BatchScanRegionsResponse| {
            r.regions[1].region = None;
        },
    );
    let batch = bounded(client.batch_scan_regions(&[KeyRange::new("", "")], 0, false, false))
        .await
        .expect("batch scan");
    assert_eq!(ids(&batch), vec![r0]);
    client.close();
}

/// PD-14: store reads return PD's stores, tombstones left out when asked; a store whose
/// node is `Removed` is no store, as in the PD client's `handleStoreResponse`. Through
/// [`RegionMetaClient`] the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_return_pds_stores() {
    let m = Members::start(1).await;
    m.mock.cluster().add_store(9, "store9:20160", &[]);
    m.mock.cluster().mark_tombstone(9).expect("tombstone");
    let client = connect(&m).await;

    let one = bounded(client.get_store(1)).await.expect("store");
    assert_eq!(one.map(|s| s.id), Some(1));
    // The mock answers a tombstone's id with no store.
    assert_eq!(bounded(client.get_store(9)).await.expect("store"), None);
    let all = bounded(client.get_all_stores(false)).await.expect("stores");
    assert_eq!(ids_of_stores(&all), vec![1, 9]);
    let live = bounded(client.get_all_stores(true)).await.expect("stores");
    assert_eq!(ids_of_stores(&live), vec![1]);
    let exclude = RegionOptions {
        exclude_tombstone: true,
        ..RegionOptions::default()
    };
    let live = bounded(RegionMetaClient::get_all_stores(&client, exclude))
        .await
        .expect("stores");
    assert_eq!(ids_of_stores(&live), vec![1]);
    let one = bounded(RegionMetaClient::get_store(&client, 1, exclude))
        .await
        .expect("store");
    assert_eq!(one.map(|s| s.id), Some(1));

    m.state
        .rewrite("get_store", |_, r: &mut pdpb::GetStoreResponse| {
            if let Some(s) = r.store.as_mut() {
                s.node_state = metapb::NodeState::Removed as i32;
            }
        });
    assert_eq!(bounded(client.get_store(1)).await.expect("store"), None);
    m.state
        .rewrite("get_store", |_, r: &mut pdpb::GetStoreResponse| {
            if let Some(s) = r.store.as_mut() {
                s.node_state = metapb::NodeState::Removing as i32;
            }
        });
    let removing = bounded(client.get_store(1)).await.expect("store");
    assert_eq!(removing.map(|s| s.id), Some(1), "only Removed is gone");
    client.close();
}

// ===== the other calls (PD-7, PD-15 .. PD-17, GC-3, KS-17) =====

/// Split, scatter and operators (PD-15, PD-16), safe points and barriers (GC-3), the
/// external timestamp (PD-17) and the cluster info (PD-7) reach the leader and return
/// PD's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_calls_return_pds_answers() {
    let m = Members::start(2).await;
    let client = connect(&m).await;

    let split = bounded(client.split_regions(&[encode_key(b"t")], 1))
        .await
        .expect("split");
    assert_eq!(split.regions_id.len(), 1);
    let right = bounded(client.get_region(&encode_key(b"u"), false))
        .await
        .expect("read")
        .expect("a region");
    assert_eq!(right.region.id, split.regions_id[0]);
    assert_eq!(right.region.start_key, encode_key(b"t"));

    let scatter = bounded(client.scatter_regions(&split.regions_id, "g", 3))
        .await
        .expect("scatter");
    assert_eq!(scatter.finished_percentage, 100);
    let op = bounded(client.get_operator(split.regions_id[0]))
        .await
        .expect("operator");
    assert_eq!(op.region_id, split.regions_id[0]);
    assert_eq!(op.status(), pdpb::OperatorStatus::Success);

    assert_eq!(
        bounded(client.update_gc_safe_point(100)).await.expect("gc"),
        100
    );
    assert_eq!(
        bounded(client.update_gc_safe_point(50)).await.expect("gc"),
        100,
        "never backwards"
    );
    let advanced = bounded(
        client.advance_txn_safe_point(pdpb::AdvanceTxnSafePointRequest {
            target: 200,
            ..Default::default()
        }),
    )
    .await
    .expect("advance");
    assert_eq!(
        (advanced.old_txn_safe_point, advanced.new_txn_safe_point),
        (0, 200)
    );
    let set = bounded(client.set_gc_barrier(pdpb::SetGcBarrierRequest {
        barrier_id: "b".into(),
        barrier_ts: 300,
        ttl_seconds: 60,
        ..Default::default()
    }))
    .await
    .expect("barrier");
    assert_eq!(set.new_barrier_info.map(|b| b.barrier_ts), Some(300));
    let state = bounded(client.get_gc_state(pdpb::GetGcStateRequest::default()))
        .await
        .expect("state")
        .gc_state
        .expect("a state");
    assert_eq!(state.txn_safe_point, 200);
    assert_eq!(state.gc_barriers.len(), 1);
    let deleted = bounded(client.delete_gc_barrier(pdpb::DeleteGcBarrierRequest {
        barrier_id: "b".into(),
        ..Default::default()
    }))
    .await
    .expect("delete");
    assert_eq!(
        deleted.deleted_barrier_info.map(|b| b.barrier_ts),
        Some(300)
    );
    let service = bounded(client.update_service_gc_safe_point(
        pdpb::UpdateServiceGcSafePointRequest {
            service_id: b"svc".to_vec(),
            ttl: 60,
            safe_point: 250,
            ..Default::default()
        },
    ))
    .await
    .expect("service safe point");
    assert_eq!(service.min_safe_point, 250);

    bounded(client.set_external_timestamp(5))
        .await
        .expect("set");
    assert_eq!(
        bounded(client.get_external_timestamp()).await.expect("get"),
        5
    );
    let info = bounded(client.get_cluster_info()).await.expect("info");
    assert_eq!(
        info.service_modes,
        vec![pdpb::ServiceMode::PdSvcMode as i32]
    );

    // Every one of these went to the leader.
    for method in [
        "split_regions",
        "scatter_region",
        "get_operator",
        "update_gc_safe_point",
        "advance_txn_safe_point",
        "set_gc_barrier",
        "get_gc_state",
        "delete_gc_barrier",
        "update_service_gc_safe_point",
        "set_external_timestamp",
        "get_external_timestamp",
        "get_cluster_info",
    ] {
        let calls = m.state.calls(method);
        assert!(!calls.is_empty(), "{method}");
        assert!(
            calls.iter().all(|c| c.member == 0 && c.admitted),
            "{method}"
        );
    }
    client.close();
}

/// KS-17: `LoadKeyspace` returns the keyspace's meta; an unknown name is PD's
/// `ENTRY_NOT_FOUND`, and so is an answer without meta; a connection-class failure is
/// retried after a refresh, any other failure is final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_keyspace_returns_the_meta_or_a_typed_error() {
    let m = Members::start(1).await;
    let created = m.pd().create_keyspace("ks1", &[]).expect("keyspace");
    let client = connect(&m).await;

    let meta = bounded(client.load_keyspace("ks1")).await.expect("meta");
    assert_eq!(meta, created);
    let err = bounded(client.load_keyspace("nope"))
        .await
        .expect_err("unknown");
    assert_eq!(pd_error_type(&err), Some(pdpb::ErrorType::EntryNotFound));
    assert_eq!(m.state.calls("load_keyspace").len(), 2);

    m.state.rewrite(
        "load_keyspace",
        |_, r: &mut tikv_proto::keyspacepb::LoadKeyspaceResponse| r.keyspace = None,
    );
    let err = bounded(client.load_keyspace("ks1"))
        .await
        .expect_err("no meta");
    assert_eq!(pd_error_type(&err), Some(pdpb::ErrorType::EntryNotFound));
    assert!(err.to_string().contains("ks1"), "{err}");
    m.state.clear_rewrite("load_keyspace");

    m.state.clear();
    let _once = m.pd().inject(
        PdRule::new(
            Some("LoadKeyspace"),
            PdAction::Error(tonic::Status::unavailable("not now")),
        )
        .policy(FirePolicy::FirstN(1)),
    );
    let meta = bounded(client.load_keyspace("ks1")).await.expect("retried");
    assert_eq!(meta.name, "ks1");
    assert_eq!(m.state.calls("load_keyspace").len(), 2);
    assert_eq!(m.state.calls("get_members").len(), 1);

    m.state.clear();
    let _broken = m.pd().inject(PdRule::new(
        Some("LoadKeyspace"),
        PdAction::Error(tonic::Status::internal("keyspace service broke")),
    ));
    let err = bounded(client.load_keyspace("ks1"))
        .await
        .expect_err("final");
    assert_eq!(grpc_code(&err), Some(Code::Internal), "{err:?}");
    assert_eq!(m.state.calls("load_keyspace").len(), 1);
    client.close();
}

// ===== forwarding through a follower (PD-5) =====

/// Whether the log shows a probe of the leader (member 0) answered `serving` and, after
/// it, a probe of member 1: the client then has recorded the leader's probe result.
fn leader_probed(calls: &[Call], serving: bool) -> bool {
    calls
        .iter()
        .position(|c| c.method == "health" && c.member == 0 && c.admitted == serving)
        .is_some_and(|i| {
            calls[i + 1..]
                .iter()
                .any(|c| c.method == "health" && c.member == 1)
        })
}

/// PD-5: with forwarding on, while the leader fails its health probes, calls and the TSO
/// stream go through the followers (round robin) with the forwarding header; a follower
/// answering a forwarded region read with `REGION_NOT_FOUND` is skipped for 10 s and the
/// read tried once more on the next one. Once the leader passes its probes again,
/// everything goes straight to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_through_a_follower_while_the_leader_fails_probes() {
    let m = Members::start(3).await;
    let client = connect_with(
        &m,
        PdClientOptions {
            enable_forwarding: true,
            // A follower probe may take a third of this: keep it well above loopback
            // latency on a loaded machine.
            health_check_interval: Duration::from_millis(600),
            ..quiet_opts()
        },
    )
    .await;
    let before = bounded(client.get_ts()).await.expect("ts");

    m.state.unhealthy.lock().expect("unhealthy").insert(0);
    m.state.clear();
    m.state
        .wait_for("the leader failing a probe", |c| leader_probed(c, false))
        .await;
    assert!(!client.member_available(&m.urls()[0]));

    let store = bounded(client.get_store(1)).await.expect("store");
    assert_eq!(store.map(|s| s.id), Some(1));
    assert_eq!(
        m.state.calls("get_store"),
        vec![call(1, "get_store", true, true)]
    );
    let forwarded_ts = bounded(client.get_ts()).await.expect("ts");
    assert!(forwarded_ts > before);
    assert_eq!(m.state.calls("tso"), vec![call(2, "tso", true, true)]);

    m.state.not_synced.lock().expect("not synced").insert(1);
    let region = bounded(client.get_region(b"x", false))
        .await
        .expect("read")
        .expect("a region");
    assert_eq!(region.region.id, m.regions[1]);
    let not_found = Read {
        member: 1,
        method: "get_region",
        follower_handled: false,
        served: false,
    };
    assert_eq!(
        m.state.take_reads(),
        vec![
            not_found.clone(),
            Read {
                member: 2,
                served: true,
                ..not_found
            }
        ]
    );
    assert!(!client.member_available(&m.urls()[1]));
    assert!(client.member_available(&m.urls()[2]));

    m.state.unhealthy.lock().expect("unhealthy").clear();
    m.state.clear();
    m.state
        .wait_for("the leader passing a probe", |c| leader_probed(c, true))
        .await;
    assert!(client.member_available(&m.urls()[0]));
    bounded(client.get_store(1)).await.expect("store");
    assert_eq!(
        m.state.calls("get_store"),
        vec![call(0, "get_store", false, true)]
    );
    let direct_ts = bounded(client.get_ts()).await.expect("ts");
    assert!(direct_ts > forwarded_ts);
    assert_eq!(m.state.calls("tso"), vec![call(0, "tso", false, true)]);
    client.close();
}

/// `close` stops the client's background tasks (member refresh, TSO dispatcher, health
/// probes, service-mode checks) for every clone of it, and for no other client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_only_this_clients_background_tasks() {
    let m = Members::start(1).await;
    let client = connect(&m).await;
    let clone = client.clone();
    let other = connect(&m).await;
    assert_eq!(client.running_background_tasks(), 4);
    clone.close();
    bounded(async {
        while client.running_background_tasks() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(other.running_background_tasks(), 4);
    client.close();
    other.close();
}
