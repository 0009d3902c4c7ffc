//! Unit tests of store health, slow scores, load stats, tokens and liveness: ports of
//! client-go's slow-score and health-status tests in `internal/locate/region_cache_test.go`,
//! plus checks of the liveness / health-check loop rules (SC-9, SC-10) under paused time.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tikv_layers::locate::{Liveness, StoreResolver};
use tikv_layers::{ErrorDetail, ErrorKind};
use tikv_proto::{kvrpcpb, metapb};
use tokio::time::Instant;

use super::*;
use crate::mock::{Clock, Cluster, MockPd};

/// A resolved store with `id` and `labels`, as client-go's `newStore(.., resolved, ..)`.
fn resolved_store(id: u64, addr: &str, labels: &[(&str, &str)]) -> Arc<Store> {
    let s = Arc::new(Store::new(id));
    let meta = metapb::Store {
        id,
        address: addr.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| metapb::StoreLabel {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        ..Default::default()
    };
    // Like client-go's `newStore(.., resolved, ..)`: no PD, any address (even none).
    s.set_meta(&meta);
    s.state
        .store(ResolveState::Resolved as u8, Ordering::Release);
    s
}

/// A store cache over a two-store mock cluster, both stores resolved.
async fn two_stores() -> (Cluster, StoreCache, Vec<u64>) {
    let cluster = Cluster::new(Clock::new());
    let (stores, _, _, _) = cluster.bootstrap_with_multi_stores(2);
    let cache = StoreCache::new(Arc::new(MockPd::new(cluster.clone(), 1)));
    for id in &stores {
        cache.resolve_store(*id).await.expect("resolve");
    }
    (cluster, cache, stores)
}

/// A prober whose answer tests can change, counting its calls.
#[derive(Default)]
struct Scripted {
    answer: AtomicU8,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(l: Liveness) -> Arc<Scripted> {
        let s = Arc::new(Scripted::default());
        s.set(l);
        s
    }
    fn set(&self, l: Liveness) {
        self.answer.store(l as u8, Ordering::SeqCst);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl LivenessProber for Scripted {
    fn probe(&self, _t: &ProbeTarget) -> BoxFuture<'static, Liveness> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let l = Liveness::from_u8(self.answer.load(Ordering::SeqCst));
        Box::pin(std::future::ready(l))
    }
}

/// Lets spawned tasks run after a clock change.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

// ----- slow score (HS-2) -----

#[test]
fn sliding_window_gradients_and_eviction() {
    let mut w = CountSlidingWindow::default();
    // Nothing to compare with yet.
    assert_eq!(w.append(10), 1e-6);
    assert_eq!(w.avg(), 10);
    assert_eq!(w.append(20), 1.0);
    assert_eq!(w.avg(), 15);
    // Equal to the average: no change.
    assert_eq!(w.append(15), 1e-6);
    for _ in 0..10 {
        w.append(5);
    }
    // Only the last ten values are remembered.
    assert_eq!(w.sum(), 50);
    assert_eq!(w.avg(), 5);
}

// client-go: T-LOCATE-041 testRegionCacheSuite.TestSlowScoreStat
#[test]
fn slow_score_stat() {
    let s = SlowScoreStat::new();
    s.reset();
    assert!(!s.is_slow());
    s.record(Duration::from_millis(1));
    s.update();
    assert!(!s.is_slow());
    for i in 2..=100u64 {
        s.record(Duration::from_millis(i));
        if i % 5 == 0 {
            s.update();
            assert!(!s.is_slow());
        }
    }
    for i in (2..=100u64).rev() {
        s.record(Duration::from_millis(i));
        if i % 5 == 0 {
            s.update();
            assert!(!s.is_slow());
        }
    }
    s.mark_already_slow();
    assert!(s.is_slow());
}

#[test]
fn slow_score_rises_when_traffic_falls_and_latency_rises() {
    let s = SlowScoreStat::new();
    s.update();
    assert_eq!(s.score(), SLOW_SCORE_INIT);
    // A steady baseline: 100 requests of 10 ms per tick.
    for _ in 0..3 {
        for _ in 0..100 {
            s.record(Duration::from_millis(10));
        }
        s.update();
    }
    assert_eq!(s.score(), 1);
    // Then 10 requests of 100 ms: count gradient -0.9, time gradient +9 → ratio capped at
    // 5.43: ceil(1 * 5.43 + 1) = 7.
    for _ in 0..10 {
        s.record(Duration::from_millis(100));
    }
    s.update();
    assert_eq!(s.score(), 7);
    // A 30 s request sets the maximum at once.
    s.record(Duration::from_secs(30));
    assert_eq!(s.score(), SLOW_SCORE_MAX);
    // An idle tick decays by ceil(min(2.71, 1 + 1)) = 2.
    s.update();
    assert_eq!(s.score(), 98);
}

// ----- health status (HS-1, HS-3, HS-4) -----

// client-go: T-LOCATE-043 testRegionCacheSuite.TestTiKVSideSlowScore
#[tokio::test(start_paused = true)]
async fn tikv_side_slow_score() {
    let store = resolved_store(1, "", &[]);
    let stats = StoreHealthStatus::new(1);
    assert!(stats.detail().tikv_side_slow_score <= 1);
    let mut now = Instant::now();
    stats.tick(now, &store, None).await;
    assert!(stats.detail().tikv_side_slow_score <= 1);
    assert!(!stats.has_tikv_feedback());
    assert!(!stats.is_slow());

    now += TIKV_SLOW_SCORE_UPDATE_INTERVAL * 2;
    stats.update_tikv_side(50, now);
    assert_eq!(stats.detail().tikv_side_slow_score, 50);
    assert!(stats.has_tikv_feedback());
    assert!(!stats.is_slow());

    now += TIKV_SLOW_SCORE_UPDATE_INTERVAL * 2;
    stats.update_tikv_side(100, now);
    assert_eq!(stats.detail().tikv_side_slow_score, 100);
    assert!(stats.is_slow());

    now += Duration::from_secs(120);
    stats.tick(now, &store, None).await;
    assert_eq!(stats.detail().tikv_side_slow_score, 60);
    assert!(!stats.is_slow());

    now += Duration::from_secs(180);
    stats.tick(now, &store, None).await;
    assert_eq!(stats.detail().tikv_side_slow_score, 1);
    assert!(!stats.is_slow());

    now += Duration::from_secs(60);
    stats.tick(now, &store, None).await;
    assert_eq!(stats.detail().tikv_side_slow_score, 1);
    assert!(!stats.is_slow());
}

// client-go: T-LOCATE-044 testRegionCacheSuite.TestStoreHealthStatus
#[tokio::test(start_paused = true)]
async fn store_health_status() {
    let store = resolved_store(1, "", &[]);
    let stats = StoreHealthStatus::new(1);
    let mut now = Instant::now();
    assert!(!stats.is_slow());

    while !stats.client_side().is_slow() {
        stats.client_side().record(Duration::from_secs(60));
    }
    stats.tick(now, &store, None).await;
    assert!(stats.is_slow());
    assert_eq!(
        stats.client_side().score() as i64,
        stats.detail().client_side_slow_score
    );

    now += Duration::from_secs(1);
    stats.update_tikv_side(100, now);
    assert!(stats.is_slow());
    assert_eq!(stats.detail().tikv_side_slow_score, 100);

    while stats.client_side().is_slow() {
        stats.client_side().record(Duration::from_millis(1));
        stats.tick(now, &store, None).await;
    }
    assert!(stats.is_slow());
    assert_eq!(
        stats.client_side().score() as i64,
        stats.detail().client_side_slow_score
    );

    now += Duration::from_secs(1);
    stats.update_tikv_side(1, now);
    assert!(!stats.is_slow());
}

#[tokio::test(start_paused = true)]
async fn stale_tikv_score_is_requested_before_it_decays() {
    let store = resolved_store(1, "127.0.0.1:20160", &[]);
    let stats = Arc::new(StoreHealthStatus::new(1));
    let t0 = Instant::now();
    stats.update_tikv_side(90, t0);
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();

    // The store answers the request with fresh feedback (arriving as the event listener
    // would deliver it): no decay.
    let (a, st) = (asked.clone(), stats.clone());
    let now = t0 + Duration::from_secs(20);
    let fresh: HealthFeedbackRequester = Arc::new(move |addr: String| {
        a.lock().unwrap().push(addr);
        st.update_tikv_side(85, now);
        Box::pin(std::future::ready(Ok(())))
    });
    stats.tick(now, &store, Some(&fresh)).await;
    assert_eq!(asked.lock().unwrap().as_slice(), ["127.0.0.1:20160"]);
    assert_eq!(stats.detail().tikv_side_slow_score, 85);

    // The request fails: the score decays by elapsed time, 30 s → 10 points.
    let failing: HealthFeedbackRequester = Arc::new(|_addr: String| {
        Box::pin(std::future::ready(Err(tikv_layers::Error::new(
            ErrorDetail::Internal("down".into()),
        ))))
    });
    stats
        .tick(now + Duration::from_secs(30), &store, Some(&failing))
        .await;
    assert_eq!(stats.detail().tikv_side_slow_score, 75);

    // An unreachable store is not asked.
    store
        .liveness
        .store(Liveness::Unreachable as u8, Ordering::SeqCst);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let counting: HealthFeedbackRequester = Arc::new(move |_addr: String| {
        c.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(())))
    });
    stats
        .tick(now + Duration::from_secs(60), &store, Some(&counting))
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(stats.detail().tikv_side_slow_score, 65);
}

#[tokio::test(start_paused = true)]
async fn store_resolver_health_hooks() {
    let (_cluster, cache, stores) = two_stores().await;
    let (s1, s2) = (stores[0], stores[1]);
    assert!(!cache.is_slow(s1));
    cache.mark_slow(s1);
    assert!(cache.is_slow(s1));
    assert!(!cache.is_slow(s2));
    // A 30 s request is slow at once.
    cache.record_rpc_duration(s2, Duration::from_millis(5));
    assert!(!cache.is_slow(s2));
    cache.record_rpc_duration(s2, Duration::from_secs(30));
    assert!(cache.is_slow(s2));
    // Unknown stores are neither slow nor tracked.
    cache.mark_slow(999);
    assert!(!cache.is_slow(999));
    assert!(cache.get(999).is_none());
    // The cache-wide tick decays both.
    for _ in 0..40 {
        cache.tick_health(Instant::now()).await;
    }
    assert!(!cache.is_slow(s1));
    assert!(!cache.is_slow(s2));
}

#[tokio::test(start_paused = true)]
async fn health_feedback_is_routed_by_store_id() {
    let (_cluster, cache, stores) = two_stores().await;
    let listener: Arc<dyn crate::transport::EventListener> = Arc::new(cache.clone());
    listener.on_health_feedback(&kvrpcpb::HealthFeedback {
        store_id: stores[1],
        feedback_seq_no: 1,
        slow_score: 100,
    });
    assert!(cache.is_slow(stores[1]));
    assert!(!cache.is_slow(stores[0]));
    // Unknown stores are dropped, not created.
    cache.on_health_feedback(&kvrpcpb::HealthFeedback {
        store_id: 77,
        feedback_seq_no: 1,
        slow_score: 100,
    });
    assert!(cache.get(77).is_none());
}

// ----- load stats (SC-17), replica flows (HS-6), tokens (SC-16) -----

#[tokio::test(start_paused = true)]
async fn estimated_wait_decays_with_time() {
    let (_cluster, cache, stores) = two_stores().await;
    let s = stores[0];
    assert_eq!(cache.estimated_wait(s), Duration::ZERO);
    cache.record_server_busy(s, 300);
    assert_eq!(cache.estimated_wait(s), Duration::from_millis(300));
    tokio::time::advance(Duration::from_millis(120)).await;
    assert_eq!(cache.estimated_wait(s), Duration::from_millis(180));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(cache.estimated_wait(s), Duration::ZERO);
    // A newer report replaces the old one.
    cache.record_server_busy(s, 50);
    assert_eq!(cache.estimated_wait(s), Duration::from_millis(50));
    assert_eq!(cache.estimated_wait(stores[1]), Duration::ZERO);
    assert_eq!(cache.estimated_wait(999), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn replica_flows_are_counted_and_reset_on_report() {
    let (_cluster, cache, stores) = two_stores().await;
    let s = cache.get(stores[0]).expect("store");
    cache.record_replica_flow(stores[0], ReplicaFlow::ToLeader);
    cache.record_replica_flow(stores[0], ReplicaFlow::ToLeader);
    cache.record_replica_flow(stores[0], ReplicaFlow::ToFollower);
    assert_eq!(s.replica_flows(ReplicaFlow::ToLeader), 2);
    assert_eq!(s.replica_flows(ReplicaFlow::ToFollower), 1);
    cache.report_replica_flows();
    assert_eq!(s.replica_flows(ReplicaFlow::ToLeader), 0);
    assert_eq!(s.replica_flows(ReplicaFlow::ToFollower), 0);
}

#[tokio::test(start_paused = true)]
async fn store_tokens_limit_in_flight_attempts() {
    let (_cluster, cache, stores) = two_stores().await;
    let s = stores[0];
    let t1 = cache.try_acquire_token(s, 2).expect("first");
    let t2 = cache.try_acquire_token(s, 2).expect("second");
    assert_eq!(cache.get(s).expect("store").token_count(), 2);
    let err = cache.try_acquire_token(s, 2).expect_err("limit");
    assert!(matches!(err.detail(), ErrorDetail::TokenLimit { store_id } if *store_id == s));
    assert_eq!(err.kind(), ErrorKind::Txn);
    // Another store has its own tokens.
    let _other = cache.try_acquire_token(stores[1], 2).expect("other store");
    drop(t1);
    assert_eq!(t2.store_id(), s);
    let _t3 = cache
        .try_acquire_token(s, 2)
        .expect("released token is reusable");
    drop(t2);
    assert_eq!(cache.get(s).expect("store").token_count(), 1);
}

// ----- liveness (SC-9, SC-10) -----

#[tokio::test(start_paused = true)]
async fn reachable_probe_changes_nothing() {
    let (_cluster, cache, stores) = two_stores().await;
    let p = Scripted::new(Liveness::Reachable);
    cache.set_prober(p.clone());
    assert_eq!(cache.probe_liveness(stores[0]).await, Liveness::Reachable);
    assert_eq!(p.calls(), 1);
    assert_eq!(cache.liveness(stores[0]), Liveness::Reachable);
    assert!(
        cache
            .get(stores[0])
            .expect("store")
            .unreachable_since()
            .is_none()
    );
    // A store the cache does not know is unknown, without a probe.
    assert_eq!(cache.probe_liveness(999).await, Liveness::Unknown);
    assert_eq!(p.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn unreachable_store_is_checked_every_second_until_it_answers() {
    let (_cluster, cache, stores) = two_stores().await;
    let s = stores[0];
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());

    assert_eq!(cache.probe_liveness(s).await, Liveness::Unreachable);
    assert_eq!(cache.liveness(s), Liveness::Unreachable);
    assert!(cache.get(s).expect("store").unreachable_since().is_some());
    // A second caller sees the loop's mark and starts no second loop.
    assert_eq!(cache.probe_liveness(s).await, Liveness::Unreachable);
    assert_eq!(p.calls(), 2);

    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(p.calls(), 3, "one loop, one probe per second");
    assert_eq!(cache.liveness(s), Liveness::Unreachable);

    // "Unknown" is stored too: only reachable ends the loop.
    p.set(Liveness::Unknown);
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(cache.liveness(s), Liveness::Unknown);

    p.set(Liveness::Reachable);
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(cache.liveness(s), Liveness::Reachable);
    let calls = p.calls();
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(p.calls(), calls, "the loop stopped");
    assert_eq!(cache.liveness(stores[1]), Liveness::Reachable);
}

#[tokio::test(start_paused = true)]
async fn disabled_loop_still_marks_the_store() {
    let (_cluster, cache, stores) = two_stores().await;
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());
    cache.set_health_check_loop_enabled(false);
    assert_eq!(cache.probe_liveness(stores[0]).await, Liveness::Unreachable);
    assert_eq!(cache.liveness(stores[0]), Liveness::Unreachable);
    p.set(Liveness::Reachable);
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(p.calls(), 1);
    assert_eq!(cache.liveness(stores[0]), Liveness::Unreachable);
}

#[tokio::test(start_paused = true)]
async fn non_tikv_store_gets_the_answer_without_state_change() {
    let cluster = Cluster::new(Clock::new());
    let (stores, _, _, _) = cluster.bootstrap_with_multi_stores(1);
    let flash = cluster.alloc_id();
    cluster.add_store(flash, "tiflash1", &[("engine", "tiflash")]);
    let cache = StoreCache::new(Arc::new(MockPd::new(cluster.clone(), 1)));
    let snap = cache.resolve_store(flash).await.expect("resolve");
    assert_eq!(snap.store_type, StoreType::TiFlash);
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());
    assert_eq!(cache.probe_liveness(flash).await, Liveness::Unreachable);
    assert_eq!(cache.liveness(flash), Liveness::Reachable);
    tokio::time::advance(Duration::from_secs(3)).await;
    settle().await;
    assert_eq!(p.calls(), 1, "no loop for a TiFlash store");
    let _ = stores;
}

#[tokio::test(start_paused = true)]
async fn closing_the_cache_stops_health_check_loops() {
    let (_cluster, cache, stores) = two_stores().await;
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());
    cache.probe_liveness(stores[0]).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(p.calls(), 2);
    cache.close();
    assert!(cache.is_closed());
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(p.calls(), 2);

    // Dropping the cache stops them too.
    let (_cluster, cache, stores) = two_stores().await;
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());
    cache.probe_liveness(stores[0]).await;
    drop(cache);
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(p.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn loop_stops_when_the_store_is_gone() {
    let (cluster, cache, stores) = two_stores().await;
    let s = stores[0];
    let p = Scripted::new(Liveness::Unreachable);
    cache.set_prober(p.clone());
    cache.set_health_check_intervals(Duration::from_secs(1), Duration::from_secs(2));
    cache.probe_liveness(s).await;
    cluster.mark_tombstone(s).expect("tombstone");
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(p.calls(), 2, "first tick: no PD check yet");
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    // Second tick: the re-resolve finds the tombstone and the loop ends before probing.
    assert_eq!(
        cache.get(s).expect("store").state(),
        ResolveState::Tombstone
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(p.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn grpc_prober_short_circuits() {
    let p = GrpcHealthProber::new(GrpcProberConfig::default().with_timeout(Duration::ZERO));
    let target = ProbeTarget {
        store_id: 1,
        addr: "127.0.0.1:1".into(),
        resolved: true,
    };
    assert_eq!(p.probe(&target).await, Liveness::Unreachable);
    let p = GrpcHealthProber::default();
    assert_eq!(p.timeout(), Duration::from_secs(1));
    let unresolved = ProbeTarget {
        resolved: false,
        ..target
    };
    assert_eq!(p.probe(&unresolved).await, Liveness::Unknown);
}

/// A `grpc.health.v1.Health` server on loopback answering `status`, counting checks and
/// holding each answer for `delay` (real time).
async fn health_server(
    status: tonic_health::pb::health_check_response::ServingStatus,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    use tonic_health::pb::health_server::{Health, HealthServer};
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

    struct Face {
        status: i32,
        delay: Duration,
        calls: Arc<AtomicUsize>,
    }
    #[tonic::async_trait]
    impl Health for Face {
        async fn check(
            &self,
            _r: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(tonic::Response::new(HealthCheckResponse {
                status: self.status,
            }))
        }
        type WatchStream = std::pin::Pin<
            Box<dyn futures_core::Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send>,
        >;
        async fn watch(
            &self,
            _r: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("watch"))
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let face = Face {
        status: status as i32,
        delay,
        calls: calls.clone(),
    };
    tokio::spawn(async move {
        let incoming = futures_incoming(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(HealthServer::new(face))
            .serve_with_incoming(incoming)
            .await;
    });
    (addr, calls)
}

/// The accepted connections of `l` as a stream (no tokio-stream dependency here).
fn futures_incoming(
    l: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    struct Incoming(tokio::net::TcpListener);
    impl futures_core::Stream for Incoming {
        type Item = std::io::Result<tokio::net::TcpStream>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s)))
        }
    }
    Incoming(l)
}

// Real sockets on loopback: a real-time runtime, since paused time would fire the probe
// timeout while the runtime waits on I/O.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_prober_maps_health_answers() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let p = GrpcHealthProber::new(GrpcProberConfig::default().with_timeout(Duration::from_secs(5)));
    let target = |addr: &str| ProbeTarget {
        store_id: 1,
        addr: addr.to_owned(),
        resolved: true,
    };
    let (serving, _) = health_server(ServingStatus::Serving, Duration::ZERO).await;
    assert_eq!(p.probe(&target(&serving)).await, Liveness::Reachable);
    let (unknown, _) = health_server(ServingStatus::ServiceUnknown, Duration::ZERO).await;
    assert_eq!(p.probe(&target(&unknown)).await, Liveness::Unknown);
    let (not_serving, _) = health_server(ServingStatus::NotServing, Duration::ZERO).await;
    assert_eq!(p.probe(&target(&not_serving)).await, Liveness::Unreachable);

    // Nothing listens on a port that was just released.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    assert_eq!(p.probe(&target(&closed)).await, Liveness::Unreachable);

    // Concurrent probes of one address share one check (singleflight).
    let (slow, calls) = health_server(ServingStatus::Serving, Duration::from_millis(300)).await;
    let (a, b, c) = tokio::join!(
        p.probe(&target(&slow)),
        p.probe(&target(&slow)),
        p.probe(&target(&slow)),
    );
    assert_eq!([a, b, c], [Liveness::Reachable; 3]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Later probes run again.
    assert_eq!(p.probe(&target(&slow)).await, Liveness::Reachable);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A server slower than the timeout is unreachable.
    let fast =
        GrpcHealthProber::new(GrpcProberConfig::default().with_timeout(Duration::from_millis(100)));
    let (hung, _) = health_server(ServingStatus::Serving, Duration::from_secs(2)).await;
    assert_eq!(fast.probe(&target(&hung)).await, Liveness::Unreachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_prober_against_mock_cluster_servers() {
    let mock = crate::mock::Mock::new(crate::mock::MockOptions::default());
    let (stores, _, _, _) = mock.cluster().bootstrap_with_multi_stores(2);
    let grpc = crate::mock::MockGrpc::start(&mock).expect("start");
    let addr = |id: u64| mock.cluster().get_store(id).expect("store").address;
    let p = GrpcHealthProber::new(GrpcProberConfig::default().with_timeout(Duration::from_secs(5)));
    let target = |id: u64| ProbeTarget {
        store_id: id,
        addr: addr(id),
        resolved: true,
    };
    assert_eq!(p.probe(&target(stores[0])).await, Liveness::Reachable);
    let t1 = target(stores[1]);
    mock.cluster().stop_store(stores[1]).expect("stop");
    assert_eq!(p.probe(&t1).await, Liveness::Unreachable);
    drop(grpc);
}
