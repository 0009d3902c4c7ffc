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
