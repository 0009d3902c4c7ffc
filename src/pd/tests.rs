//! Unit tests of the PD module that need no server.

use futures_core::future::BoxFuture;
use tikv_layers::Result;
use tikv_proto::{apipb, keyspacepb};

use super::codec::KeyspaceLoader;
use super::*;

struct StubLoader(keyspacepb::KeyspaceMeta);

impl KeyspaceLoader for StubLoader {
    fn load_keyspace(&self, _name: &str) -> BoxFuture<'static, Result<keyspacepb::KeyspaceMeta>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

// client-go: T-CODEC-020 TestGetKeyspaceIDRejectsV3Identity
#[tokio::test]
async fn get_keyspace_id_rejects_v3_identity() {
    let meta = keyspacepb::KeyspaceMeta {
        state: keyspacepb::KeyspaceState::Enabled as i32,
        keyspace: Some(keyspacepb::keyspace_meta::Keyspace::KeyspaceIdentity(
            apipb::KeyspaceIdentity {
                namespace_id: 1,
                keyspace_id: 2,
            },
        )),
        ..Default::default()
    };
    assert!(get_keyspace_id(&StubLoader(meta), "foo").await.is_err());

    let ok = keyspacepb::KeyspaceMeta {
        state: keyspacepb::KeyspaceState::Enabled as i32,
        keyspace: Some(keyspacepb::keyspace_meta::Keyspace::Id(7)),
        ..Default::default()
    };
    assert_eq!(
        get_keyspace_id(&StubLoader(ok.clone()), "foo")
            .await
            .expect("id"),
        7
    );
    let disabled = keyspacepb::KeyspaceMeta {
        state: keyspacepb::KeyspaceState::Disabled as i32,
        ..ok
    };
    assert!(
        get_keyspace_id(&StubLoader(disabled.clone()), "foo")
            .await
            .is_err()
    );
    // The meta loader does not check the state.
    assert!(get_keyspace_meta(&StubLoader(disabled), "").await.is_ok());
}

#[test]
fn keyspace_prefixes() {
    let cases = [
        ((1 << 24) - 2, true, *b"r\xff\xff\xfe", *b"r\xff\xff\xff"),
        (255, false, *b"x\x00\x00\xff", *b"x\x00\x01\x00"),
        (65535, false, *b"x\x00\xff\xff", *b"x\x01\x00\x00"),
        ((1 << 24) - 1, true, *b"r\xff\xff\xff", *b"s\x00\x00\x00"),
        (4242, true, *b"r\x00\x10\x92", *b"r\x00\x10\x93"),
    ];
    for (id, raw, prefix, end) in cases {
        assert_eq!(
            KeyMode::v2(id, raw).expect("mode"),
            KeyMode::V2 { prefix, end },
            "{id}"
        );
    }
    assert!(KeyMode::v2(u32::MAX, true).is_err());
    assert!(KeyMode::v2(1 << 24, false).is_err());
}

#[test]
fn decode_errors_are_typed() {
    let e = decode_error("bad");
    assert!(is_decode_error(&e));
    let other = tikv_layers::Error::new(tikv_layers::ErrorDetail::Malformed("bad".into()));
    assert!(!is_decode_error(&other));
}

// ===== PD-5: member availability and the forwarding header =====

mod availability {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::health::{ApiKind, Availability, FOLLOWER_UNAVAILABLE_FOR};

    const BOTH: [ApiKind; 2] = [ApiKind::Forward, ApiKind::Universal];

    fn urls(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn unprobed_members_are_available_and_probes_toggle_them() {
        let mut a = Availability::default();
        let now = Instant::now();
        for kind in BOTH {
            assert!(a.is_reachable("http://a") && a.is_available(kind, "http://a", now));
        }
        a.set_network("http://a", false);
        for kind in BOTH {
            assert!(!a.is_reachable("http://a") && !a.is_available(kind, "http://a", now));
        }
        a.set_network("http://a", true);
        for kind in BOTH {
            assert!(a.is_reachable("http://a") && a.is_available(kind, "http://a", now));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn members_are_picked_round_robin_skipping_unavailable_ones() {
        let mut a = Availability::default();
        let f = urls(&["http://f1", "http://f2", "http://f3"]);
        let now = Instant::now();
        let k = ApiKind::Forward;
        assert_eq!(a.pick(k, &f, now).as_deref(), Some("http://f1"));
        assert_eq!(a.pick(k, &f, now).as_deref(), Some("http://f2"));
        a.set_network("http://f3", false);
        assert_eq!(a.pick(k, &f, now).as_deref(), Some("http://f1"));
        a.set_network("http://f1", false);
        a.set_network("http://f2", false);
        assert_eq!(a.pick(k, &f, now), None);
        assert_eq!(a.pick(k, &[], now), None);
    }

    /// Each kind has its own cursor, as the PD client keeps one balancer per API kind.
    #[tokio::test(start_paused = true)]
    async fn each_kind_has_its_own_cursor() {
        let mut a = Availability::default();
        let all = urls(&["http://leader", "http://f1", "http://f2"]);
        let followers = urls(&["http://f1", "http://f2"]);
        let now = Instant::now();
        assert_eq!(
            a.pick(ApiKind::Universal, &all, now).as_deref(),
            Some("http://leader")
        );
        assert_eq!(
            a.pick(ApiKind::Forward, &followers, now).as_deref(),
            Some("http://f1")
        );
        assert_eq!(
            a.pick(ApiKind::Universal, &all, now).as_deref(),
            Some("http://f1")
        );
        assert_eq!(
            a.pick(ApiKind::Forward, &followers, now).as_deref(),
            Some("http://f2")
        );
        assert_eq!(
            a.pick(ApiKind::Universal, &all, now).as_deref(),
            Some("http://f2")
        );
        assert_eq!(
            a.pick(ApiKind::Universal, &all, now).as_deref(),
            Some("http://leader")
        );
    }

    /// A follower answering `REGION_NOT_FOUND` is skipped for exactly 10 s, for that kind
    /// of request only, and a health probe in between does not bring it back (the PD
    /// client's `markAsAvailable` only looks at the deadline).
    #[tokio::test(start_paused = true)]
    async fn region_not_found_excludes_a_follower_for_ten_seconds() {
        assert_eq!(FOLLOWER_UNAVAILABLE_FOR, Duration::from_secs(10));
        for (kind, other) in [
            (ApiKind::Forward, ApiKind::Universal),
            (ApiKind::Universal, ApiKind::Forward),
        ] {
            let mut a = Availability::default();
            let f = urls(&["http://f1", "http://f2"]);
            a.mark_unavailable(kind, "http://f1", Instant::now(), FOLLOWER_UNAVAILABLE_FOR);
            a.set_network("http://f1", true);
            // Still reachable (for probing), not available (for requests of that kind).
            assert!(a.is_reachable("http://f1"));
            assert!(!a.is_available(kind, "http://f1", Instant::now()));
            assert!(a.is_available(other, "http://f1", Instant::now()));
            assert_eq!(
                a.pick(kind, &f, Instant::now()).as_deref(),
                Some("http://f2")
            );
            assert_eq!(
                a.pick(kind, &f, Instant::now()).as_deref(),
                Some("http://f2")
            );
            assert_eq!(
                a.pick(other, &f, Instant::now()).as_deref(),
                Some("http://f1")
            );
            tokio::time::advance(Duration::from_millis(9_999)).await;
            assert!(!a.is_available(kind, "http://f1", Instant::now()));
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(a.is_available(kind, "http://f1", Instant::now()));
            assert_eq!(
                a.pick(kind, &f, Instant::now()).as_deref(),
                Some("http://f1")
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn members_that_left_are_forgotten() {
        let mut a = Availability::default();
        let now = Instant::now();
        a.set_network("http://gone", false);
        a.set_network("http://kept", false);
        a.mark_unavailable(
            ApiKind::Universal,
            "http://gone",
            now,
            FOLLOWER_UNAVAILABLE_FOR,
        );
        a.retain(&urls(&["http://kept"]));
        assert!(a.is_reachable("http://gone"));
        assert!(a.is_available(ApiKind::Universal, "http://gone", now));
        assert!(!a.is_reachable("http://kept"));
    }
}

mod forward_layer {
    use std::sync::{Arc, Mutex};

    use tower::{Layer, ServiceExt};

    use super::super::layer::{
        FOLLOWER_HANDLE_METADATA_KEY, FORWARD_METADATA_KEY, Forward, ForwardLayer,
    };

    type Seen = Arc<Mutex<Vec<Option<String>>>>;

    fn recording(
        seen: Seen,
    ) -> Forward<tower::util::BoxCloneService<http::Request<()>, (), std::convert::Infallible>>
    {
        let svc = tower::service_fn(move |req: http::Request<()>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(
                    req.headers()
                        .get(FORWARD_METADATA_KEY)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                );
                Ok::<_, std::convert::Infallible>(())
            }
        });
        ForwardLayer::none().layer(tower::util::BoxCloneService::new(svc))
    }

    #[tokio::test]
    async fn the_header_names_the_leader_only_when_forwarding() {
        assert_eq!(FORWARD_METADATA_KEY, "pd-forwarded-host");
        let seen: Seen = Arc::default();
        let direct = recording(seen.clone());
        assert_eq!(direct.forwarded_host(), None);
        let forwarded = direct
            .forwarded_to("http://127.0.0.1:2379")
            .expect("a valid header value");
        assert_eq!(forwarded.forwarded_host(), Some("http://127.0.0.1:2379"));
        direct.oneshot(http::Request::new(())).await.unwrap();
        forwarded.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![None, Some("http://127.0.0.1:2379".to_owned())]
        );
        // A URL that cannot be a header value is refused rather than mangled.
        assert!(recording(seen).forwarded_to("http://bad\nhost").is_none());
    }

    /// A follower-handled copy sends the follower-handle header (empty value) and no
    /// forwarding header.
    #[tokio::test]
    async fn the_follower_handle_header_is_sent_only_when_asked_for() {
        assert_eq!(FOLLOWER_HANDLE_METADATA_KEY, "pd-allow-follower-handle");
        let seen: Arc<Mutex<Vec<(bool, bool)>>> = Arc::default();
        let record = seen.clone();
        let svc = tower::service_fn(move |req: http::Request<()>| {
            let record = record.clone();
            async move {
                let h = req.headers();
                let handle = h
                    .get(FOLLOWER_HANDLE_METADATA_KEY)
                    .is_some_and(|v| v.is_empty());
                record
                    .lock()
                    .unwrap()
                    .push((handle, h.contains_key(FORWARD_METADATA_KEY)));
                Ok::<_, std::convert::Infallible>(())
            }
        });
        let direct = ForwardLayer::none().layer(tower::util::BoxCloneService::new(svc));
        let handled = direct.follower_handled();
        assert!(!direct.is_follower_handled());
        assert!(handled.is_follower_handled());
        assert_eq!(handled.forwarded_host(), None);
        direct.oneshot(http::Request::new(())).await.unwrap();
        handled.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(false, false), (true, false)]);
    }
}

// ===== PD-6: follower-handled region reads, against several PD members =====
//
// These run real gRPC on loopback, which paused time cannot drive (an idle runtime would
// jump past every deadline while a socket is being read), so they run on real time. None
// of them waits for a timer: the health probes and the service-mode loop are pushed out of
// the test's way, every member stays as available as the client found it, and the
// round-robin picks are deterministic (leader first, then the followers in member order).

#[cfg(feature = "mock")]
mod members;

// Creation, members, unary calls and forwarding (PD-3 .. PD-17), and the TSO dispatcher
// (TSO-1 .. TSO-8), against the same members.
#[cfg(feature = "mock")]
mod client;
#[cfg(feature = "mock")]
mod tso;

#[cfg(feature = "mock")]
mod follower_handle {
    use tikv_layers::ErrorDetail;

    use super::members::{Members, Read, bounded, quiet_opts};
    use super::*;

    const METHODS: [&str; 5] = [
        "get_region",
        "get_prev_region",
        "get_region_by_id",
        "scan_regions",
        "batch_scan_regions",
    ];

    fn opts(enable_follower_handle: bool) -> PdClientOptions {
        PdClientOptions {
            enable_follower_handle,
            ..quiet_opts()
        }
    }

    fn allow(allow_follower: bool) -> RegionOptions {
        RegionOptions {
            allow_follower,
            ..RegionOptions::default()
        }
    }

    async fn connect(m: &Members, enable_follower_handle: bool) -> PdClient {
        let client = bounded(PdClient::connect(&m.urls(), opts(enable_follower_handle)))
            .await
            .expect("connect");
        assert_eq!(client.leader_url(), m.urls()[0]);
        assert_eq!(client.follower_urls(), m.urls()[1..].to_vec());
        client
    }

    /// One region read of the kind `method` through [`RegionMetaClient`]; every answer as
    /// a list of regions.
    async fn read(
        client: &PdClient,
        m: &Members,
        method: &str,
        opts: RegionOptions,
    ) -> Vec<RegionInfo> {
        let c = client;
        let res = bounded(async {
            match method {
                "get_region" => RegionMetaClient::get_region(c, Vec::new(), opts)
                    .await
                    .map(|r| r.into_iter().collect()),
                // The region before the last one (the one containing the largest key).
                "get_prev_region" => RegionMetaClient::get_prev_region(c, vec![0xff; 8], opts)
                    .await
                    .map(|r| r.into_iter().collect()),
                "get_region_by_id" => RegionMetaClient::get_region_by_id(c, m.regions[1], opts)
                    .await
                    .map(|r| r.into_iter().collect()),
                "scan_regions" => {
                    RegionMetaClient::scan_regions(c, Vec::new(), Vec::new(), 0, opts).await
                }
                "batch_scan_regions" => {
                    RegionMetaClient::batch_scan_regions(c, vec![KeyRange::new("", "")], 0, opts)
                        .await
                }
                other => panic!("unknown method {other}"),
            }
        })
        .await;
        res.unwrap_or_else(|e| panic!("{method}: {e:?}"))
    }

    fn served(member: usize, method: &'static str, follower_handled: bool) -> Read {
        Read {
            member,
            method,
            follower_handled,
            served: true,
        }
    }

    fn refused(member: usize, method: &'static str) -> Read {
        Read {
            member,
            method,
            follower_handled: true,
            served: false,
        }
    }

    /// The leader's answers to every kind of read, taken leader-only.
    async fn leader_answers(client: &PdClient, m: &Members) -> Vec<Vec<RegionInfo>> {
        let mut v = Vec::new();
        for method in METHODS {
            let answer = read(client, m, method, allow(false)).await;
            assert!(!answer.is_empty(), "{method}: the mock has regions");
            v.push(answer);
        }
        let reads = m.state.take_reads();
        assert!(
            reads.iter().all(|r| r.member == 0 && !r.follower_handled),
            "{reads:?}"
        );
        v
    }

    /// With follower handling on, reads that allow it go round robin over the leader and
    /// the followers; a follower gets the follower-handle header and answers what the
    /// leader answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_serve_region_reads_when_enabled() {
        let m = Members::start(3).await;
        let client = connect(&m, true).await;
        let expected = leader_answers(&client, &m).await;
        for (method, expected) in METHODS.into_iter().zip(&expected) {
            for _ in 0..3 {
                assert_eq!(&read(&client, &m, method, allow(true)).await, expected);
            }
            assert_eq!(
                m.state.take_reads(),
                vec![
                    served(0, method, false),
                    served(1, method, true),
                    served(2, method, true)
                ],
                "{method}"
            );
        }
        // Reads that do not allow a follower stay on the leader.
        for method in METHODS {
            read(&client, &m, method, allow(false)).await;
        }
        assert!(m.state.take_reads().iter().all(|r| r.member == 0));
        client.close();
    }

    /// With follower handling off (the default), every read goes to the leader, allowed
    /// or not, without the header.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leader_serves_every_region_read_when_disabled() {
        assert!(!PdClientOptions::default().enable_follower_handle);
        let m = Members::start(3).await;
        let client = connect(&m, false).await;
        let expected = leader_answers(&client, &m).await;
        for (method, expected) in METHODS.into_iter().zip(&expected) {
            for _ in 0..3 {
                assert_eq!(&read(&client, &m, method, allow(true)).await, expected);
            }
            assert_eq!(
                m.state.take_reads(),
                vec![served(0, method, false); 3],
                "{method}"
            );
        }
        client.close();
    }

    /// A follower failing the read sends the same call to the leader, whose answer the
    /// caller gets. A plain failure does not exclude the follower: its turn comes again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follower_error_falls_back_to_the_leader() {
        let m = Members::start(3).await;
        let client = connect(&m, true).await;
        let expected = leader_answers(&client, &m).await;
        m.state
            .failing
            .lock()
            .unwrap()
            .insert(1, tonic::Status::internal("follower broke"));
        for (method, expected) in METHODS.into_iter().zip(&expected) {
            for _ in 0..6 {
                assert_eq!(&read(&client, &m, method, allow(true)).await, expected);
            }
            assert_eq!(
                m.state.take_reads(),
                vec![
                    served(0, method, false),
                    refused(1, method),
                    served(0, method, false),
                    served(2, method, true),
                    served(0, method, false),
                    refused(1, method),
                    served(0, method, false),
                    served(2, method, true),
                ],
                "{method}"
            );
        }
        assert!(client.member_available(&m.urls()[1]));
        client.close();
    }

    /// The mock's `mustLeader` switch refuses every read that allows a follower to answer;
    /// each such call is answered by the leader instead. Switched off, followers serve
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn must_leader_refusal_falls_back_to_the_leader() {
        let m = Members::start(3).await;
        let client = connect(&m, true).await;
        let expected = leader_answers(&client, &m).await;
        m.mock.pd().set_must_leader(true);
        for (method, expected) in METHODS.into_iter().zip(&expected) {
            for _ in 0..3 {
                assert_eq!(&read(&client, &m, method, allow(true)).await, expected);
            }
            assert_eq!(
                m.state.take_reads(),
                vec![
                    served(0, method, false),
                    refused(1, method),
                    served(0, method, false),
                    refused(2, method),
                    served(0, method, false),
                ],
                "{method}"
            );
        }
        m.mock.pd().set_must_leader(false);
        for _ in 0..3 {
            read(&client, &m, "get_region", allow(true)).await;
        }
        assert_eq!(
            m.state.take_reads(),
            vec![
                served(0, "get_region", false),
                served(1, "get_region", true),
                served(2, "get_region", true)
            ]
        );
        client.close();
    }

    /// A follower whose region table is not synced answers `REGION_NOT_FOUND`: the call
    /// goes to the leader and that follower is skipped for follower-handled reads (for
    /// 10 s; the expiry itself is tested on `Availability` with paused time).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follower_answering_region_not_found_is_skipped() {
        let m = Members::start(3).await;
        let client = connect(&m, true).await;
        let expected = leader_answers(&client, &m).await;
        m.state.not_synced.lock().unwrap().insert(1);
        for _ in 0..6 {
            assert_eq!(
                read(&client, &m, "get_region", allow(true)).await,
                expected[0]
            );
        }
        assert_eq!(
            m.state.take_reads(),
            vec![
                served(0, "get_region", false),
                refused(1, "get_region"),
                served(0, "get_region", false),
                served(2, "get_region", true),
                // Follower 1 is skipped from now on.
                served(0, "get_region", false),
                served(2, "get_region", true),
                served(0, "get_region", false),
            ]
        );
        assert!(!client.member_available(&m.urls()[1]));
        assert!(client.member_available(&m.urls()[2]));
        // A leader-only read is not affected.
        read(&client, &m, "get_region", allow(false)).await;
        assert_eq!(m.state.take_reads(), vec![served(0, "get_region", false)]);
        client.close();
    }

    // ===== PD-7: the first service-mode check at creation =====

    /// The PD client's `Init` fails the creation when the first `GetClusterInfo` never
    /// succeeds; so does `connect`, with the check's typed error, and nothing is left
    /// running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_fails_when_the_first_service_mode_check_fails() {
        let mock = crate::mock::Mock::new(crate::mock::MockOptions::default());
        mock.cluster().bootstrap_with_single_store();
        let grpc = crate::mock::MockGrpc::start(&mock).expect("grpc");
        let _rule = mock.pd().inject(crate::mock::PdRule::new(
            Some("GetClusterInfo"),
            crate::mock::PdAction::Error(tonic::Status::internal("cluster info broke")),
        ));
        let err = bounded(PdClient::connect(&[grpc.pd_addr().to_owned()], opts(false)))
            .await
            .expect_err("creation must fail");
        match err.detail() {
            ErrorDetail::Grpc(s) => {
                assert_eq!(s.code(), tonic::Code::Internal);
                assert!(s.message().contains("cluster info broke"), "{s:?}");
            }
            other => panic!("untyped failure: {other:?}"),
        }
    }

    /// A check that fails once is retried (1 s later, like the other init steps) within
    /// `max_init_retries`, and the creation succeeds in PD mode.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_retries_the_first_service_mode_check() {
        let mock = crate::mock::Mock::new(crate::mock::MockOptions::default());
        mock.cluster().bootstrap_with_single_store();
        let grpc = crate::mock::MockGrpc::start(&mock).expect("grpc");
        let _rule = mock.pd().inject(
            crate::mock::PdRule::new(
                Some("GetClusterInfo"),
                crate::mock::PdAction::Error(tonic::Status::unavailable("not yet")),
            )
            .policy(crate::mock::FirePolicy::FirstN(1)),
        );
        let client = bounded(PdClient::connect(
            &[grpc.pd_addr().to_owned()],
            PdClientOptions {
                max_init_retries: 2,
                ..opts(false)
            },
        ))
        .await
        .expect("the second check succeeds");
        assert_eq!(client.service_mode(), pdpb::ServiceMode::PdSvcMode);
        assert_eq!(client.running_background_tasks(), 4);
        client.close();
    }
}

/// `PdClientOptions::from_config` carries the PD section's and the top-level flags.
#[tokio::test]
async fn options_follow_the_config() {
    let mut config = crate::config::Config::default()
        .with_enable_forwarding(true)
        .with_pd_client(
            crate::config::PdClientConfig::default()
                .with_pd_server_timeout(std::time::Duration::from_secs(7))
                .with_enable_follower_handle(true),
        );
    let opts = PdClientOptions::from_config(&config)
        .await
        .expect("options");
    assert!(opts.enable_forwarding && opts.enable_follower_handle);
    assert_eq!(opts.timeout, std::time::Duration::from_secs(7));
    config = crate::config::Config::default();
    let opts = PdClientOptions::from_config(&config)
        .await
        .expect("options");
    assert!(!opts.enable_forwarding && !opts.enable_follower_handle);
}
