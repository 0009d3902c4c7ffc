//! Unit tests of the replica layer alone (tower-test leaf, paused time): what one attempt
//! carries, and the selection rules that do not need the retry loop.

use tikv_proto::{kvrpcpb, metapb};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::ServiceExt;
use tower_test::mock;

use super::{ReadFlags, ReplicaLayer, ReplicaSelector, SelectorConfig, SelectorOptions};
use crate::Error;
use crate::locate::Liveness;
use crate::request::{AccessLocation, CmdType, ReplicaReadType, RpcRequest, RpcResponse};
use crate::test_support::Fake;

type Leaf = tower::util::MapErr<mock::Mock<RpcRequest, RpcResponse>, fn(crate::BoxError) -> Error>;

/// A tower-test mock as the leaf, its boxed errors mapped to the crate's error.
fn leaf() -> (Leaf, mock::Handle<RpcRequest, RpcResponse>) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    (
        svc.map_err(Error::from_boxed as fn(crate::BoxError) -> Error),
        handle,
    )
}

fn get_request(fake: &Fake) -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        version: 5,
        ..Default::default()
    });
    req.target.region = Some(fake.snapshot());
    req
}

#[tokio::test(start_paused = true)]
async fn one_attempt_carries_region_peer_and_flags() {
    let fake = Fake::new(3);
    let layer = ReplicaLayer::new(fake.services()).local_zone("z1");
    let (leaf, mut handle) = leaf();
    let mut svc = mock::Spawn::new(tower::Layer::layer(&layer, leaf));
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());

    let mut req = get_request(&fake);
    req.options.input_request_source = "external_test".into();
    let fut = svc.call(req);
    let mut fut = task::spawn(fut);
    assert_pending!(fut.poll());

    let (sent, send) = handle
        .next_request()
        .await
        .expect("request reached the leaf");
    assert_eq!(sent.target.store_id, 1);
    assert_eq!(sent.target.addr, "store1");
    assert_eq!(sent.target.forwarded_host, None);
    assert_eq!(sent.context.region_id, fake.ver().id);
    assert_eq!(sent.context.peer.map(|p| p.store_id), Some(1));
    assert_eq!(
        sent.context.region_epoch.map(|e| e.version),
        Some(fake.ver().ver)
    );
    assert_eq!(sent.context.cluster_id, 7);
    assert!(!sent.context.replica_read && !sent.context.stale_read);
    // SL-10: first attempt, leader read.
    assert_eq!(sent.context.request_source, "leader_external_test");
    // The fake stores carry no zone label.
    assert_eq!(sent.target.access_location, AccessLocation::Unknown);
    send.send_response(RpcResponse::new(kvrpcpb::GetResponse::default()));
    assert!(fut.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn follower_read_sets_replica_read_and_source() {
    let fake = Fake::new(3);
    let layer = ReplicaLayer::new(fake.services()).deterministic(true);
    let (leaf, mut handle) = leaf();
    let svc = tower::Layer::layer(&layer, leaf);
    handle.allow(1);
    let mut req = get_request(&fake);
    req.set_replica_read(ReplicaReadType::Follower);
    req.options.input_request_source = "x".into();
    let call = tokio::spawn(svc.oneshot(req));
    let (sent, send) = handle.next_request().await.expect("sent");
    assert_eq!(sent.target.store_id, 2);
    assert!(sent.context.replica_read);
    assert_eq!(sent.context.request_source, "follower_x");
    send.send_response(RpcResponse::new(kvrpcpb::GetResponse::default()));
    assert!(call.await.expect("join").is_ok());
}

#[tokio::test(start_paused = true)]
async fn unrouted_or_addressed_requests_pass_through() {
    let fake = Fake::new(3);
    let layer = ReplicaLayer::new(fake.services());
    let (leaf, mut handle) = leaf();
    let svc = tower::Layer::layer(&layer, leaf);
    handle.allow(1);
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.target.addr = "somewhere".into();
    let call = tokio::spawn(svc.oneshot(req));
    let (sent, send) = handle.next_request().await.expect("sent");
    assert_eq!(sent.target.addr, "somewhere");
    assert_eq!(sent.context.region_id, 0);
    send.send_response(RpcResponse::new(kvrpcpb::GetResponse::default()));
    assert!(call.await.expect("join").is_ok());
}

fn selector(fake: &Fake, read: ReplicaReadType, opts: SelectorOptions) -> ReplicaSelector {
    ReplicaSelector::new(
        fake.services(),
        fake.ver(),
        CmdType::Get,
        ReadFlags {
            replica_read: read.is_follower_read(),
            stale_read: false,
            busy_threshold_ms: 0,
            read_type: read,
        },
        opts,
        SelectorConfig {
            enable_forwarding: false,
            deterministic: true,
        },
    )
    .expect("region cached")
}

#[tokio::test(start_paused = true)]
async fn unreachable_leader_is_skipped_and_slow_followers_lose() {
    // RS-7: an unreachable leader is no leader candidate; leader mode probes a follower.
    let fake = Fake::new(3);
    fake.set_liveness(1, Liveness::Unreachable);
    let mut sel = selector(&fake, ReplicaReadType::Leader, SelectorOptions::default());
    let t = sel.next().await.expect("ok").expect("target");
    assert_eq!(t.peer.store_id, 2);

    // RS-10: follower mode prefers a non-slow follower over a slow one.
    let fake = Fake::new(3);
    fake.lock().slow.insert(2, true);
    let mut sel = selector(&fake, ReplicaReadType::Follower, SelectorOptions::default());
    let t = sel.next().await.expect("ok").expect("target");
    assert_eq!(t.peer.store_id, 3);

    // RS-11: prefer-leader never picks a slow follower; a non-slow leader comes first.
    let fake = Fake::new(3);
    fake.lock().slow.insert(3, true);
    let mut sel = selector(
        &fake,
        ReplicaReadType::PreferLeader,
        SelectorOptions::default(),
    );
    let order: Vec<u64> = {
        let mut v = Vec::new();
        while let Some(t) = sel.next().await.expect("ok") {
            v.push(t.peer.store_id);
        }
        v
    };
    assert_eq!(order, vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn labels_and_store_ids_win_and_leader_only_stays_on_leader() {
    let fake = Fake::new(3);
    let opts = SelectorOptions {
        labels: vec![metapb::StoreLabel {
            key: "id".into(),
            value: "3".into(),
        }],
        ..SelectorOptions::default()
    };
    let mut sel = selector(&fake, ReplicaReadType::Mixed, opts);
    assert_eq!(sel.next().await.expect("ok").expect("t").peer.store_id, 3);

    let opts = SelectorOptions {
        stores: vec![2],
        ..SelectorOptions::default()
    };
    let mut sel = selector(&fake, ReplicaReadType::Mixed, opts);
    assert_eq!(sel.next().await.expect("ok").expect("t").peer.store_id, 2);

    let opts = SelectorOptions {
        leader_only: true,
        ..SelectorOptions::default()
    };
    let mut sel = selector(&fake, ReplicaReadType::Follower, opts);
    assert_eq!(sel.next().await.expect("ok").expect("t").peer.store_id, 1);
    // Exhausted (mixed family: one attempt each) and no follower allowed: no target.
    assert!(sel.next().await.expect("ok").is_none());
}

#[tokio::test(start_paused = true)]
async fn stale_epoch_target_invalidates_region() {
    // RS-5: a replica whose store epoch moved since the selector was built invalidates
    // the region instead of being used.
    let fake = Fake::new(3);
    let mut sel = selector(&fake, ReplicaReadType::Leader, SelectorOptions::default());
    fake.lock().epochs.insert(1, 1);
    // The leader is no candidate (stale epoch); followers are probed with leader reads.
    let t = sel.next().await.expect("ok").expect("target");
    assert_eq!(t.peer.store_id, 2);
    assert!(fake.is_valid());
    fake.lock().epochs.insert(3, 1);
    // Every remaining choice is stale or tried: the region is invalidated.
    assert!(sel.next().await.expect("ok").is_none());
    assert!(!fake.is_valid());
    // An invalid region ends selection before counting another attempt (RS-4).
    assert!(sel.next().await.expect("ok").is_none());
    assert_eq!(sel.attempts(), 2);
}
