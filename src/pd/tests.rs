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

    use super::super::health::{Availability, FOLLOWER_UNAVAILABLE_FOR};

    fn urls(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn unprobed_members_are_available_and_probes_toggle_them() {
        let mut a = Availability::default();
        let now = Instant::now();
        assert!(a.is_reachable("http://a") && a.is_available("http://a", now));
        a.set_network("http://a", false);
        assert!(!a.is_reachable("http://a") && !a.is_available("http://a", now));
        a.set_network("http://a", true);
        assert!(a.is_reachable("http://a") && a.is_available("http://a", now));
    }

    #[tokio::test(start_paused = true)]
    async fn followers_are_picked_round_robin_skipping_unavailable_ones() {
        let mut a = Availability::default();
        let f = urls(&["http://f1", "http://f2", "http://f3"]);
        let now = Instant::now();
        assert_eq!(a.pick_follower(&f, now).as_deref(), Some("http://f1"));
        assert_eq!(a.pick_follower(&f, now).as_deref(), Some("http://f2"));
        a.set_network("http://f3", false);
        assert_eq!(a.pick_follower(&f, now).as_deref(), Some("http://f1"));
        a.set_network("http://f1", false);
        a.set_network("http://f2", false);
        assert_eq!(a.pick_follower(&f, now), None);
        assert_eq!(a.pick_follower(&[], now), None);
    }

    /// A follower answering `REGION_NOT_FOUND` is skipped for exactly 10 s, and a health
    /// probe in between does not bring it back (the PD client's `markAsAvailable` only
    /// looks at the deadline).
    #[tokio::test(start_paused = true)]
    async fn region_not_found_excludes_a_follower_for_ten_seconds() {
        assert_eq!(FOLLOWER_UNAVAILABLE_FOR, Duration::from_secs(10));
        let mut a = Availability::default();
        let f = urls(&["http://f1", "http://f2"]);
        a.mark_unavailable("http://f1", Instant::now(), FOLLOWER_UNAVAILABLE_FOR);
        a.set_network("http://f1", true);
        // Still reachable (for probing), not available (for requests).
        assert!(a.is_reachable("http://f1"));
        assert!(!a.is_available("http://f1", Instant::now()));
        assert_eq!(
            a.pick_follower(&f, Instant::now()).as_deref(),
            Some("http://f2")
        );
        assert_eq!(
            a.pick_follower(&f, Instant::now()).as_deref(),
            Some("http://f2")
        );
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(!a.is_available("http://f1", Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(a.is_available("http://f1", Instant::now()));
        assert_eq!(
            a.pick_follower(&f, Instant::now()).as_deref(),
            Some("http://f1")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn members_that_left_are_forgotten() {
        let mut a = Availability::default();
        a.set_network("http://gone", false);
        a.set_network("http://kept", false);
        a.retain(&urls(&["http://kept"]));
        assert!(a.is_reachable("http://gone"));
        assert!(!a.is_reachable("http://kept"));
    }
}

mod forward_layer {
    use std::sync::{Arc, Mutex};

    use tower::{Layer, ServiceExt};

    use super::super::layer::{FORWARD_METADATA_KEY, Forward, ForwardLayer};

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
}
