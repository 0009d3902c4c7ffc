//! The default pipeline against the embedded mock cluster: ported client-go request-path
//! tests (area REQUEST) and the interceptor rows of area RPC.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod collapse;
mod common;
mod region_cache;
mod region_request;
mod region_request3;
mod replica_selector;

use common::Env;
use tikv::layers::{ReplicaReadType, RpcRequest};
use tikv::proto::kvrpcpb;

#[tokio::test(start_paused = true)]
async fn harness_records_leader_and_follower_reads() {
    let env = Env::new(3).await;
    let req = RpcRequest::new(kvrpcpb::RawGetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    let resp = env.send(req).await.unwrap();
    assert!(resp.region_error().is_none());
    assert_eq!(env.recorder.path(), vec!["s1/L".to_string()]);

    env.recorder.clear();
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        version: 10,
        ..Default::default()
    });
    req.set_replica_read(ReplicaReadType::Follower);
    let resp = env.send(req).await.unwrap();
    assert!(resp.region_error().is_none());
    assert_eq!(
        env.recorder.attempts().len(),
        1,
        "{:?}",
        env.recorder.attempts()
    );
    assert!(env.recorder.attempts()[0].replica_read);
    assert_ne!(env.recorder.attempts()[0].store_id, env.stores[0]);
}
