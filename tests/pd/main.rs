//! Integration tests of the PD client over real gRPC on loopback.
//!
//! Two backends: a small scriptable PD server defined here (several members, leader
//! switch, TSO delay and stream breaks), and the embedded mock cluster's gRPC PD face
//! (`tikv::mock::MockGrpc`).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tikv::layers::{ErrorDetail, ErrorKind};
use tikv::oracle::{Oracle, OracleOption, PdOracle, PdOracleOptions};
use tikv::pd::{PdClient, PdClientOptions, RegionMetaClient, RegionOptions};
use tikv::proto::pdpb;

mod fake;

use fake::FakeCluster;

fn opts() -> PdClientOptions {
    PdClientOptions {
        timeout: Duration::from_secs(2),
        max_init_retries: 1,
        ..PdClientOptions::default()
    }
}

/// Runs `fut` with an upper bound so a hang fails the test instead of blocking CI.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("operation hung")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_and_get_ts() {
    let cluster = FakeCluster::start(1, 42).await;
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    assert_eq!(client.cluster_id(), 42);
    assert_eq!(client.leader_url(), cluster.urls()[0]);
    let mut last = 0;
    for _ in 0..10 {
        let ts = bounded(client.get_ts()).await.expect("ts");
        assert!(ts > last);
        last = ts;
    }
    // Region and store calls reach the leader.
    let r = bounded(client.get_region(b"k", true))
        .await
        .expect("region")
        .expect("some region");
    assert_eq!(r.region.id, 2);
    assert!(r.has_leader());
    let s = bounded(client.get_store(1)).await.expect("store");
    assert_eq!(s.map(|s| s.id), Some(1));
    let err = bounded(client.get_store(99))
        .await
        .expect_err("missing store");
    assert!(tikv::pd::is_store_not_found(&err), "{err}");
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tso_batches_concurrent_callers() {
    let cluster = FakeCluster::start(1, 7).await;
    cluster.state.tso_delay_ms.store(20, Ordering::SeqCst);
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    let before = client.tso_rpc_count();
    let callers = 256;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let c = client.clone();
        tasks.spawn(async move { c.get_ts().await });
    }
    let mut seen = HashSet::new();
    while let Some(r) = bounded(tasks.join_next()).await {
        let ts = r.expect("task").expect("ts");
        assert!(seen.insert(ts), "duplicate ts {ts}");
    }
    let rpcs = client.tso_rpc_count() - before;
    assert!(
        rpcs < callers as u64 / 4,
        "{rpcs} RPCs for {callers} callers"
    );
    // The server saw as many timestamps as were asked for.
    assert_eq!(
        cluster.state.tso_allocated.load(Ordering::SeqCst),
        callers as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tso_stream_break_fails_callers_and_recovers() {
    let cluster = FakeCluster::start(1, 7).await;
    cluster.state.tso_delay_ms.store(5, Ordering::SeqCst);
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    let first = bounded(client.get_ts()).await.expect("ts");

    // The next response breaks the stream.
    cluster.state.break_next_tso.store(true, Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let c = client.clone();
        tasks.spawn(async move { c.get_ts().await });
    }
    let mut ok = Vec::new();
    let mut failed = 0;
    while let Some(r) = bounded(tasks.join_next()).await {
        match r.expect("task") {
            Ok(ts) => ok.push(ts),
            Err(e) => {
                failed += 1;
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Transport | ErrorKind::Grpc | ErrorKind::Pd
                    ),
                    "untyped failure: {e:?}"
                );
            }
        }
    }
    assert!(failed > 0, "the broken stream must fail its batch");
    // Afterwards the client reconnects; timestamps keep increasing.
    let mut last = ok.iter().copied().max().unwrap_or(first).max(first);
    for _ in 0..5 {
        let ts = bounded(client.get_ts()).await.expect("ts after reconnect");
        assert!(ts > last, "{ts} <= {last}");
        last = ts;
    }
    assert!(cluster.state.tso_streams.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover() {
    let cluster = FakeCluster::start(3, 9).await;
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    assert_eq!(client.leader_url(), cluster.urls()[0]);
    assert_eq!(client.member_urls().len(), 3);
    let mut last = bounded(client.get_ts()).await.expect("ts");

    // Leadership moves to member 2; the old leader refuses everything.
    cluster.state.leader.store(2, Ordering::SeqCst);
    let mut errors = 0;
    for _ in 0..10 {
        match bounded(client.get_ts()).await {
            Ok(ts) => {
                assert!(ts > last, "{ts} <= {last}");
                last = ts;
            }
            Err(e) => {
                errors += 1;
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Transport | ErrorKind::Grpc | ErrorKind::Pd
                    ),
                    "{e:?}"
                );
            }
        }
    }
    assert!(errors <= 1, "at most the in-flight batch fails: {errors}");
    assert_eq!(client.leader_url(), cluster.urls()[2]);
    // Unary calls follow too (the retry refreshes members).
    cluster.state.leader.store(1, Ordering::SeqCst);
    let r = bounded(client.get_region(b"a", false))
        .await
        .expect("region");
    assert!(r.is_some());
    assert_eq!(client.leader_url(), cluster.urls()[1]);
    // And the TSO stream follows the second switch: still strictly increasing.
    for _ in 0..5 {
        match bounded(client.get_ts()).await {
            Ok(ts) => {
                assert!(ts > last, "{ts} <= {last}");
                last = ts;
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Transport | ErrorKind::Grpc | ErrorKind::Pd
                ),
                "{e:?}"
            ),
        }
    }
    assert!(bounded(client.get_ts()).await.expect("ts") > last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mismatched_cluster_ids_fail_creation() {
    let a = FakeCluster::start(1, 1).await;
    let b = FakeCluster::start(1, 2).await;
    let urls = vec![a.urls()[0].clone(), b.urls()[0].clone()];
    let err = bounded(PdClient::connect(&urls, opts()))
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err.detail(), ErrorDetail::MismatchClusterId { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_client_fails_fast() {
    let cluster = FakeCluster::start(1, 3).await;
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    client.close();
    let err = bounded(client.get_ts()).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pd_oracle_over_grpc() {
    let cluster = FakeCluster::start(1, 5).await;
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    let oracle = bounded(PdOracle::new(
        Arc::new(client.clone()),
        PdOracleOptions {
            no_update_ts: true,
            ..Default::default()
        },
    ))
    .await
    .expect("oracle");
    let a = bounded(oracle.get_timestamp(&OracleOption::global()))
        .await
        .expect("ts");
    let low = oracle
        .get_low_resolution_timestamp(&OracleOption::global())
        .expect("low");
    assert_eq!(low, a);
    let b = bounded(oracle.get_timestamp_async(&OracleOption::global()))
        .await
        .expect("ts");
    assert!(b > a);
}

/// The embedded mock cluster's gRPC PD face.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mock_cluster_grpc_face() {
    let mock = tikv::mock::Mock::new(tikv::mock::MockOptions::default());
    let (stores, _peers, region, _leader) = mock.cluster().bootstrap_with_multi_stores(2);
    let grpc = tikv::mock::MockGrpc::start(&mock).expect("grpc");
    let client = bounded(PdClient::connect(&[grpc.pd_addr().to_owned()], opts()))
        .await
        .expect("connect");
    assert_eq!(client.cluster_id(), 1);
    // The mock reports PD service mode, which creation requires (PD-7).
    assert_eq!(client.service_mode(), pdpb::ServiceMode::PdSvcMode);
    let mut last = 0;
    for _ in 0..5 {
        let ts = bounded(client.get_ts()).await.expect("ts");
        assert!(ts > last);
        last = ts;
    }
    let r = bounded(RegionMetaClient::get_region(
        &client,
        Vec::new(),
        RegionOptions::default(),
    ))
    .await
    .expect("region")
    .expect("some");
    assert_eq!(r.region.id, region);
    let all = bounded(client.get_all_stores(true)).await.expect("stores");
    let ids: HashSet<u64> = all.iter().map(|s| s.id).collect();
    assert!(stores.iter().all(|s| ids.contains(s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_handle_over_mock_grpc() {
    let mock = tikv::mock::Mock::new(tikv::mock::MockOptions::default());
    let (stores, _peers, region, _leader) = mock.cluster().bootstrap_with_multi_stores(2);
    let grpc = tikv::mock::MockGrpc::start(&mock).expect("grpc");
    let config = tikv::config::Config::default();
    let cluster = bounded(tikv::cluster::Cluster::connect(
        &[grpc.pd_addr().to_owned()],
        &config,
    ))
    .await
    .expect("cluster");
    assert_eq!(cluster.cluster_id(), 1);
    let r = bounded(tikv::layers::locate::RegionLocator::locate_key(
        cluster.region_cache(),
        b"k",
    ))
    .await
    .expect("locate");
    assert_eq!(r.ver.id, region);
    assert_eq!(r.leader().map(|p| p.store_id), Some(stores[0]));
    let ts = bounded(cluster.oracle().get_timestamp(&OracleOption::global()))
        .await
        .expect("ts");
    assert!(ts > 0);
    let other = cluster.clone();
    bounded(cluster.shutdown()).await;
    assert!(other.is_closed());
    // The PD client is closed with it.
    assert!(bounded(other.pd().expect("pd").get_ts()).await.is_err());
}

// ===== PD-5 health probing and forwarding, PD-7 service mode =====
//
// These run real gRPC on loopback, which paused time cannot drive (an idle runtime would
// jump past every deadline while a socket is being read), so the probe and service-mode
// intervals are shortened instead and every wait is bounded.

fn fast_opts(forwarding: bool) -> PdClientOptions {
    PdClientOptions {
        enable_forwarding: forwarding,
        // A follower probe may take a third of this: keep it well above loopback latency
        // on a loaded machine, or healthy followers would be marked unreachable.
        health_check_interval: Duration::from_millis(600),
        service_mode_interval: Duration::from_millis(50),
        ..opts()
    }
}

/// Polls `cond` every 10 ms until it holds; panics after 10 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_leader_is_bypassed_through_a_forwarding_follower() {
    let cluster = FakeCluster::start(3, 11).await;
    let urls = cluster.urls();
    let client = bounded(PdClient::connect(&urls, fast_opts(true)))
        .await
        .expect("connect");
    let leader = client.leader_url();
    assert_eq!(leader, urls[0]);
    let mut last = bounded(client.get_ts()).await.expect("ts");
    assert!(cluster.state.forwarded.lock().unwrap().is_empty());

    // The client loses the leader; the followers still reach it.
    cluster.state.set_down(0, true);
    wait_until("leader marked unavailable", || {
        !client.member_available(&leader)
    })
    .await;
    assert!(client.member_available(&urls[1]) && client.member_available(&urls[2]));

    // A region query is answered through a follower carrying the forwarding header.
    let r = bounded(client.get_region(b"k", false))
        .await
        .expect("region through follower")
        .expect("some region");
    assert_eq!(r.region.id, 2);
    let served = *cluster
        .state
        .region_served_by
        .lock()
        .unwrap()
        .last()
        .unwrap();
    assert_ne!(served, 0, "the unreachable leader cannot have served it");
    {
        let fwd = cluster.state.forwarded.lock().unwrap();
        assert!(!fwd.is_empty());
        assert!(
            fwd.iter().all(|(m, host)| *m != 0 && host == &leader),
            "{fwd:?}"
        );
    }
    // The leader did not change: forwarding is not a failover.
    assert_eq!(client.leader_url(), leader);

    // Timestamps come through a forwarded stream and stay strictly increasing.
    for _ in 0..5 {
        let ts = bounded(client.get_ts()).await.expect("ts through follower");
        assert!(ts > last, "{ts} <= {last}");
        last = ts;
    }

    // The leader comes back: requests go to it directly again.
    cluster.state.set_down(0, false);
    wait_until("leader available again", || {
        client.member_available(&leader)
    })
    .await;
    let forwarded_before = cluster.state.forwarded.lock().unwrap().len();
    bounded(client.get_region(b"k", false))
        .await
        .expect("region")
        .expect("some region");
    assert_eq!(
        *cluster
            .state
            .region_served_by
            .lock()
            .unwrap()
            .last()
            .unwrap(),
        0
    );
    let ts = bounded(client.get_ts()).await.expect("ts from leader");
    assert!(ts > last, "{ts} <= {last}");
    assert_eq!(
        cluster.state.forwarded.lock().unwrap().len(),
        forwarded_before,
        "nothing forwarded once the leader is back"
    );
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_answering_region_not_found_is_skipped() {
    let cluster = FakeCluster::start(3, 12).await;
    let urls = cluster.urls();
    let client = bounded(PdClient::connect(&urls, fast_opts(true)))
        .await
        .expect("connect");
    let leader = client.leader_url();
    cluster.state.region_not_found.lock().unwrap().insert(1);
    cluster.state.set_down(0, true);
    wait_until("leader marked unavailable", || {
        !client.member_available(&leader)
    })
    .await;

    // Follower 1 is tried first, answers REGION_NOT_FOUND and is skipped; follower 2
    // answers.
    let r = bounded(client.get_region(b"k", false))
        .await
        .expect("region")
        .expect("some region");
    assert_eq!(r.region.id, 2);
    assert_eq!(*cluster.state.region_served_by.lock().unwrap(), vec![2]);
    assert!(!client.member_available(&urls[1]));
    assert!(client.member_available(&urls[2]));
    let tried: Vec<usize> = cluster
        .state
        .forwarded
        .lock()
        .unwrap()
        .iter()
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(tried, vec![1, 2]);

    // Within the 10 s, follower 1 is not asked again, even after further probes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        bounded(client.get_region(b"k", false))
            .await
            .expect("region")
            .expect("some region");
    }
    let tried: Vec<usize> = cluster
        .state
        .forwarded
        .lock()
        .unwrap()
        .iter()
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(tried, vec![1, 2, 2, 2, 2]);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_leader_without_forwarding_fails_typed_after_retries() {
    let cluster = FakeCluster::start(3, 13).await;
    let urls = cluster.urls();
    let client = bounded(PdClient::connect(
        &urls,
        PdClientOptions {
            timeout: Duration::from_millis(600),
            ..fast_opts(false)
        },
    ))
    .await
    .expect("connect");
    let leader = client.leader_url();
    cluster.state.set_down(0, true);
    // The probes see it, but with forwarding off nothing changes where requests go.
    wait_until("leader marked unavailable", || {
        !client.member_available(&leader)
    })
    .await;

    let started = tokio::time::Instant::now();
    let err = bounded(client.get_region(b"k", false))
        .await
        .expect_err("no leader to answer");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Transport | ErrorKind::BackoffExhausted | ErrorKind::Pd
        ),
        "untyped failure: {err:?}"
    );
    // It retried within the budget rather than failing at the first refusal.
    assert!(started.elapsed() >= Duration::from_millis(100), "{err:?}");
    assert!(cluster.state.forwarded.lock().unwrap().is_empty());
    assert!(cluster.state.region_served_by.lock().unwrap().is_empty());
    assert_eq!(client.leader_url(), leader);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_mode_switch_gates_tso() {
    let cluster = FakeCluster::start(1, 14).await;
    // An old PD without GetClusterInfo: PD mode.
    let client = bounded(PdClient::connect(&cluster.urls(), fast_opts(false)))
        .await
        .expect("connect");
    assert_eq!(client.service_mode(), pdpb::ServiceMode::PdSvcMode);
    let mut last = bounded(client.get_ts()).await.expect("ts");

    // PD hands TSO to the microservice: timestamp calls fail with a clear typed error.
    *cluster.state.service_mode.lock().unwrap() = Some(pdpb::ServiceMode::ApiSvcMode);
    wait_until("API service mode seen", || {
        client.service_mode() == pdpb::ServiceMode::ApiSvcMode
    })
    .await;
    let tso_rpcs = client.tso_rpc_count();
    let err = bounded(client.get_ts()).await.expect_err("API_SVC_MODE");
    assert_eq!(err.kind(), ErrorKind::Pd);
    assert!(tikv::pd::is_tso_service_unsupported(&err), "{err:?}");
    assert!(err.to_string().contains("API_SVC_MODE"), "{err}");
    let err = bounded(client.get_min_ts())
        .await
        .expect_err("API_SVC_MODE");
    assert!(tikv::pd::is_tso_service_unsupported(&err), "{err:?}");
    assert_eq!(
        client.tso_rpc_count(),
        tso_rpcs,
        "the PD leader is not asked"
    );

    // Back to PD mode: timestamps from the leader again, still increasing.
    *cluster.state.service_mode.lock().unwrap() = Some(pdpb::ServiceMode::PdSvcMode);
    assert_eq!(
        bounded(client.refresh_service_mode()).await.expect("mode"),
        pdpb::ServiceMode::PdSvcMode
    );
    let ts = bounded(client.get_ts()).await.expect("ts");
    assert!(ts > last, "{ts} <= {last}");
    last = ts;
    // The check is periodic.
    let calls = cluster.state.cluster_info_calls.load(Ordering::SeqCst);
    wait_until("another periodic check", || {
        cluster.state.cluster_info_calls.load(Ordering::SeqCst) > calls + 1
    })
    .await;
    assert!(bounded(client.get_ts()).await.expect("ts") > last);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probing_stops_when_the_client_closes() {
    let cluster = FakeCluster::start(2, 15).await;
    // Probe often, so the quiet windows below each span several intervals.
    let opts = || PdClientOptions {
        health_check_interval: Duration::from_millis(30),
        ..fast_opts(true)
    };
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    assert_eq!(client.running_background_tasks(), 4);
    let checks = || cluster.state.health_checks.load(Ordering::SeqCst);
    wait_until("probes running", || checks() >= 4).await;

    client.close();
    wait_until("background tasks ended", || {
        client.running_background_tasks() == 0
    })
    .await;
    let after_close = checks();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(checks(), after_close, "no probe after close");

    // Dropping the last handle stops them too.
    let client = bounded(PdClient::connect(&cluster.urls(), opts()))
        .await
        .expect("connect");
    let before = checks();
    wait_until("probes running", || checks() >= before + 4).await;
    drop(client);
    // A probe in flight may still land; after that, none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = checks();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        checks(),
        after_drop,
        "no probe after the last handle is dropped"
    );
}
