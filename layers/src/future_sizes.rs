//! A size probe for the futures of a raw get through the region send loop.
//!
//! Every boxed future is built on the stack and then moved into its box, so its size is
//! paid as a memcpy on every call (doc/performance.md, "Where the time goes now"). This
//! test prints the sizes of the envelope types and of the futures a raw get builds, and
//! bounds them so that a change which makes them large again fails here.

use std::sync::Arc;

use tikv_proto::kvrpcpb;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_service::Service;

use crate::locate::RegionLocator;
use crate::replica::ReplicaLayer;
use crate::request::{Command, CommandResponse, RpcRequest, RpcResponse};
use crate::retry::RetryLayer;
use crate::route::RouteLayer;
use crate::shard::ShardLayer;
use crate::test_support::Fake;

/// Upper bounds, in bytes, of the boxed futures of one raw get.
const RETRY_MAX: usize = 5_000;
const REPLICA_MAX: usize = 4_000;
const POINT_MAX: usize = 4_000;

fn raw_get(fake: &Fake) -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::RawGetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    req.target.region = Some(fake.snapshot());
    req
}

#[tokio::test]
async fn raw_get_future_sizes_stay_small() {
    let fake = Fake::new(3);
    let locator: Arc<dyn RegionLocator> = Arc::new(fake.clone());
    // The attempt stage, answering at once.
    let leaf = || {
        tower::service_fn(|_req: RpcRequest| async {
            Ok::<_, crate::Error>(RpcResponse::new(kvrpcpb::RawGetResponse::default()))
        })
    };

    // The region send loop as the pipeline builds it: retry → route → replica → (boxed
    // attempt stage, here a leaf service).
    let mut send_loop = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()))
        .layer(RouteLayer::new(locator.clone()))
        .layer(ReplicaLayer::new(fake.services()))
        .service(leaf());
    let retry = send_loop.ready().await.unwrap().call(raw_get(&fake));
    let retry_size = retry.boxed_size();

    let mut replica = ReplicaLayer::new(fake.services()).layer(leaf());
    let attempt = replica.ready().await.unwrap().call(raw_get(&fake));
    let replica_size = attempt.boxed_size();

    let mut shard = ShardLayer::new(locator).layer(send_loop.clone());
    let point = shard.ready().await.unwrap().call(raw_get(&fake));
    let point_size = point.boxed_size();

    println!(
        "sizes: RpcRequest {} Command {} Context {} CommandResponse {} RpcResponse {}",
        size_of::<RpcRequest>(),
        size_of::<Command>(),
        size_of::<kvrpcpb::Context>(),
        size_of::<CommandResponse>(),
        size_of::<RpcResponse>(),
    );
    println!(
        "futures: retry send loop {retry_size} replica attempt {replica_size} shard point {point_size}"
    );
    // Before this probe: retry 13.8 KB, replica 5.6 KB, shard point 7.1 KB (debug build).
    // A request (1.5 KB) held once is the floor for each; the bounds leave some room.
    assert!(
        retry_size <= RETRY_MAX,
        "retry send loop future is {retry_size} bytes"
    );
    assert!(
        replica_size <= REPLICA_MAX,
        "replica attempt future is {replica_size} bytes"
    );
    assert!(
        point_size <= POINT_MAX,
        "shard point future is {point_size} bytes"
    );
    // The futures still run to the end after being measured.
    assert!(retry.await.is_ok());
    assert!(attempt.await.is_ok());
    assert!(point.await.is_ok());
}
