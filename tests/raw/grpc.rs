//! The raw client over real gRPC: the mock cluster's loopback PD and TiKV servers
//! (`MockGrpc`), so `ClientBuilder::build` takes its production path (PD client over tonic,
//! the PD-backed cluster, the tonic transport with its store event wiring) instead of the
//! embedded one. Real sockets, so real time.

use tikv::layers::ErrorKind;
use tikv::mock::{Mock, MockGrpc, MockOptions};
use tikv::proto::kvrpcpb;
use tikv::raw::{ApiVersion, Client};

use super::common::{b, split_raw};

async fn client_of(grpc: &MockGrpc) -> Client {
    Client::builder()
        .pd_endpoints(&[grpc.pd_addr()])
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_over_grpc_across_regions_and_stores() {
    let mock = Mock::new(MockOptions::default());
    mock.cluster().bootstrap_with_multi_stores(2);
    split_raw(&mock, b"m");
    let grpc = MockGrpc::start(&mock).unwrap();
    let client = client_of(&grpc).await;

    client.put(b("a"), b("1")).await.unwrap();
    client
        .batch_put([(b("b"), b("2")), (b("n"), b("3")), (b("z"), b("4"))])
        .await
        .unwrap();
    assert_eq!(client.get(b("a")).await.unwrap(), Some(b("1")));
    assert_eq!(client.get(b("n")).await.unwrap(), Some(b("3")));
    // A scan crosses the split at "m".
    let keys: Vec<Vec<u8>> = client
        .scan(b("a")..b("zz"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, vec![b("a"), b("b"), b("n"), b("z")]);
    client.delete(b("a")).await.unwrap();
    assert_eq!(client.get(b("a")).await.unwrap(), None);
    client.delete_range(b("b")..b("zz")).await.unwrap();
    assert!(client.scan(b("")..b("zz"), 10).await.unwrap().is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_meta_comes_from_pd_over_grpc() {
    let mut opts = MockOptions::default();
    opts.api_version = kvrpcpb::ApiVersion::V2;
    let mock = Mock::new(opts);
    mock.cluster().bootstrap_with_single_store();
    mock.pd().create_keyspace("ks1", &[]).unwrap();
    let grpc = MockGrpc::start(&mock).unwrap();

    let client = Client::builder()
        .pd_endpoints(&[grpc.pd_addr()])
        .api_version(ApiVersion::V2)
        .keyspace("ks1")
        .build()
        .await
        .unwrap();
    // The V2 store refuses requests without the keyspace prefix: success checks the
    // encoding built from the meta PD returned.
    client.put(b("k"), b("v")).await.unwrap();
    assert_eq!(client.get(b("k")).await.unwrap(), Some(b("v")));
    client.close().await;

    let err = Client::builder()
        .pd_endpoints(&[grpc.pd_addr()])
        .api_version(ApiVersion::V2)
        .keyspace("missing")
        .build()
        .await
        .unwrap_err();
    // PD answers ENTRY_NOT_FOUND: a PD error naming the keyspace, not a connection
    // failure.
    assert_eq!(err.kind(), ErrorKind::Pd, "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn building_without_pd_endpoints_is_a_typed_error() {
    let err = Client::builder().build().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
