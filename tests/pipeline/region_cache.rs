//! Region-cache rows of client-go's `internal/locate/region_cache_test.go` that need the
//! whole send path (area LOCATE): region errors answered by the mock TiKV and what the
//! request sender and the cache make of them.

use std::sync::Arc;

use tikv::layers::api_codec::{ApiCodecLayer, Codec, Mode};
use tikv::layers::backoff::Backoffer;
use tikv::layers::locate::RegionLocator;
use tikv::layers::replica::{RegionServices, ReplicaLayer};
use tikv::layers::retry::RetryLayer;
use tikv::layers::route::RouteLayer;
use tikv::layers::timeout::{DefaultTimeoutPolicy, TimeoutLayer};
use tikv::layers::{ErrorDetail, RpcRequest, RpcResponse};
use tikv::mock::{Action, FirePolicy, Rule};
use tikv::pipeline::Pipeline;
use tikv::proto::{errorpb, kvrpcpb};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::Env;

/// The send loop alone over the recorder (client-go's `RegionRequestSender`): region
/// errors the loop does not retry come back to the caller instead of being re-sent by the
/// upper layers.
fn sender(env: &Env) -> Pipeline {
    let locator: Arc<dyn RegionLocator> = Arc::new(env.cluster.region_cache().clone());
    let svc = RegionServices {
        locator: locator.clone(),
        stores: Arc::new(env.cluster.store_cache().clone()),
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(svc.clone()))
        .layer(RouteLayer::new(locator))
        .layer(ReplicaLayer::new(svc).deterministic(true))
        .layer(TimeoutLayer::with_policy(DefaultTimeoutPolicy::new()))
        .layer(ApiCodecLayer::new(Codec::v1(Mode::Raw)))
        .service(env.recorder.clone());
    Pipeline::from_service(stack)
}

async fn send(env: &Env, req: RpcRequest) -> Result<RpcResponse, tikv::layers::Error> {
    sender(env).oneshot(req).await
}

fn raw_get(key: &[u8]) -> RpcRequest {
    RpcRequest::new(kvrpcpb::RawGetRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

/// The next request to any store gets `err` as its region error, once.
fn region_error_once(env: &Env, err: errorpb::Error) -> tikv::mock::RuleHandle {
    env.mock
        .inject(Rule::new(Action::region_error(err)).policy(FirePolicy::FirstN(1)))
}

// client-go: T-LOCATE-039 testRegionCacheSuite.TestShouldNotRetryFlashback
#[tokio::test(start_paused = true)]
async fn should_not_retry_flashback() {
    let env = Env::new(2).await;

    // FlashbackInProgress: not retried, an error.
    let _rule = region_error_once(
        &env,
        errorpb::Error {
            flashback_in_progress: Some(Default::default()),
            ..Default::default()
        },
    );
    let err = send(&env, raw_get(b"a"))
        .await
        .expect_err("flashback in progress");
    assert!(
        matches!(err.detail(), ErrorDetail::RegionFlashbackInProgress),
        "{err:?}"
    );
    assert_eq!(env.recorder.attempts().len(), 1, "not retried");

    // FlashbackNotPrepared: not retried, an error.
    env.recorder.clear();
    let _rule = region_error_once(
        &env,
        errorpb::Error {
            flashback_not_prepared: Some(Default::default()),
            ..Default::default()
        },
    );
    let err = send(&env, raw_get(b"a"))
        .await
        .expect_err("flashback not prepared");
    assert!(
        matches!(err.detail(), ErrorDetail::RegionFlashbackNotPrepared),
        "{err:?}"
    );
    assert_eq!(env.recorder.attempts().len(), 1, "not retried");

    // BucketVersionNotMatch: not retried, no error, and the cached buckets are replaced.
    env.recorder.clear();
    let _rule = region_error_once(
        &env,
        errorpb::Error {
            bucket_version_not_match: Some(errorpb::BucketVersionNotMatch {
                version: 1,
                keys: vec![b"a".to_vec()],
            }),
            ..Default::default()
        },
    );
    let resp = send(&env, raw_get(b"a"))
        .await
        .expect("bucket version not match is no error");
    assert!(
        resp.region_error()
            .is_some_and(|e| e.bucket_version_not_match.is_some()),
        "{resp:?}"
    );
    assert_eq!(env.recorder.attempts().len(), 1, "not retried");
    let loc = env
        .cluster
        .region_cache()
        .locate_key_with(&mut Backoffer::new(20_000), b"a")
        .await
        .expect("locate");
    let buckets = loc.buckets.as_ref().map(Arc::clone).expect("buckets");
    assert_eq!(buckets.keys, vec![b"a".to_vec()]);
    assert_eq!(buckets.version, 1);
}
