//! The public surface of the shard layer: `ShardLayer` and its policy, the `Shard`
//! service's accessors and readiness, `DefaultShardPolicy`'s table of client-go batch
//! sizes, and what `ResponseFuture` says about itself.

use std::task::{Context, Poll};

use futures::FutureExt;

use super::*;

/// A service that answers every command with a raw get whose value is its tag, so a test
/// can tell which copy of the inner service answered.
#[derive(Debug, Clone)]
struct Tagged(u32);

impl Service<RpcRequest> for Tagged {
    type Response = RpcResponse;
    type Error = Error;
    type Future = std::future::Ready<Result<RpcResponse>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: RpcRequest) -> Self::Future {
        std::future::ready(Ok(RpcResponse::new(kvrpcpb::RawGetResponse {
            value: self.0.to_string().into_bytes(),
            ..Default::default()
        })))
    }
}

fn raw_get(key: &str) -> RpcRequest {
    RpcRequest::new(kvrpcpb::RawGetRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    })
}

fn raw_value(resp: RpcResponse) -> String {
    let CommandResponse::RawGet(r) = resp.resp else {
        panic!("not a raw get answer: {:?}", resp.resp)
    };
    String::from_utf8(r.value).unwrap()
}

#[tokio::test(start_paused = true)]
async fn layer_keeps_its_policy_and_clones_share_it() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let policy = DefaultShardPolicy::default()
        .with_raw_batch_pair_count(1)
        .with_max_concurrency(3);
    let layer = ShardLayer::new(locator.clone()).policy(policy.clone());
    assert_eq!(layer.get_policy(), &policy);
    let copy = layer.clone();
    assert_eq!(copy.get_policy(), &policy);
    // Debug shows the policy; the locator is a trait object and is left out.
    let shown = format!("{copy:?}");
    assert!(shown.starts_with("ShardLayer {"), "{shown}");
    assert!(shown.contains("raw_batch_pair_count: 1"), "{shown}");
    assert!(shown.contains("max_concurrency: 3"), "{shown}");

    // A service built by the clone batches with the shared policy: a pair count of 1
    // closes a batch once it holds more than one key (client-go's AppendKeyBatches).
    let (svc, mut handle) = mock_pair();
    let call =
        tokio::spawn(tower::Layer::layer(&copy, svc).oneshot(raw_batch_get(&["a", "b", "c"])));
    let mut sent = Vec::new();
    while let Some((req, send)) = next_request(&mut handle).await {
        sent.push(sent_keys(&req));
        send.send_response(RpcResponse::new(kvrpcpb::RawBatchGetResponse::default()));
    }
    sent.sort();
    assert_eq!(sent, vec![vec!["a", "b"], vec!["c"]]);
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn service_accessors_reach_the_inner_service() {
    let locator = FakeLocator::with_splits(&[]);
    let mut svc = Shard::new(Tagged(1), locator.clone());
    assert_eq!(svc.get_ref().0, 1);
    svc.get_mut().0 = 2;
    let copy = svc.clone();
    let shown = format!("{copy:?}");
    assert!(shown.starts_with("Shard {"), "{shown}");
    assert!(shown.contains("Tagged(2)"), "{shown}");
    assert!(shown.contains("DefaultShardPolicy"), "{shown}");
    // The clone shares the locator and answers through its own copy of the inner service.
    assert_eq!(raw_value(copy.oneshot(raw_get("k")).await.unwrap()), "2");
    assert_eq!(locator.locates.load(Ordering::SeqCst), 1);
    assert_eq!(svc.into_inner().0, 2);
}

// Spec request-path.md §8.4 item 9: `poll_ready` is always Ready; the inner service's
// readiness is driven per sub-request inside the future.
#[tokio::test(start_paused = true)]
async fn ready_at_once_while_the_inner_service_is_not() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    handle.allow(0);
    let mut svc = shard(svc, &locator);
    assert!(matches!(svc.ready().now_or_never(), Some(Ok(_))));
    let call = tokio::spawn(svc.call(raw_batch_get(&["a", "x"])));
    assert!(
        next_request(&mut handle).await.is_none(),
        "the sub-requests wait for the inner service"
    );
    handle.allow(2);
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.expect("sent once ready");
        send.send_response(RpcResponse::new(kvrpcpb::RawBatchGetResponse {
            pairs: sent_keys(&req)
                .iter()
                .map(|k| pair(k.as_bytes(), b"v"))
                .collect(),
            ..Default::default()
        }));
    }
    let CommandResponse::RawBatchGet(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.pairs, vec![pair(b"a", b"v"), pair(b"x", b"v")]);
}

#[tokio::test(start_paused = true)]
async fn response_future_says_which_path_it_took() {
    let locator = FakeLocator::with_splits(&[]);
    let mut svc = Shard::new(Tagged(5), locator.clone());
    // A store-level command passes straight through: the inner future, unboxed.
    let direct = svc.call(RpcRequest::new(kvrpcpb::StoreSafeTsRequest::default()));
    assert_eq!(
        format!("{direct:?}"),
        r#"ResponseFuture { kind: "direct" }"#
    );
    assert_eq!(raw_value(direct.await.unwrap()), "5");
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
    // A point command takes the boxed region loop.
    let sharded = svc.call(raw_get("k"));
    assert_eq!(
        format!("{sharded:?}"),
        r#"ResponseFuture { kind: "sharded" }"#
    );
    assert_eq!(raw_value(sharded.await.unwrap()), "5");
    assert_eq!(locator.locates.load(Ordering::SeqCst), 1);
}

#[test]
fn default_policy_is_client_go_batch_table() {
    use CmdType as C;
    // client-go's constants: rawBatchPairCount, rawBatchPutSize, batchGetSize,
    // TxnCommitBatchSize, splitBatchRegionLimit.
    assert_eq!(
        (
            RAW_BATCH_PAIR_COUNT,
            RAW_BATCH_PUT_SIZE,
            BATCH_GET_SIZE,
            TXN_COMMIT_BATCH_SIZE,
            SPLIT_BATCH_REGION_LIMIT
        ),
        (512, 16 * 1024, 5120, 16 * 1024, 2048)
    );
    let key_bytes = Some(BatchLimit::bytes(Weigh::KeyBytes, TXN_COMMIT_BATCH_SIZE));
    let table = [
        // AppendKeyBatches closes a batch only past the limit: one key more.
        (C::RawBatchGet, Some(BatchLimit::count(513))),
        (C::RawBatchDelete, Some(BatchLimit::count(513))),
        (C::SplitRegion, Some(BatchLimit::count(2049))),
        (
            C::RawBatchPut,
            Some(BatchLimit::bytes(Weigh::KeyValueBytes, RAW_BATCH_PUT_SIZE)),
        ),
        (C::BatchGet, Some(BatchLimit::count(BATCH_GET_SIZE))),
        (C::BufferBatchGet, Some(BatchLimit::count(BATCH_GET_SIZE))),
        (
            C::Prewrite,
            Some(BatchLimit::bytes(
                Weigh::KeyValueBytes,
                TXN_COMMIT_BATCH_SIZE,
            )),
        ),
        (C::Commit, key_bytes),
        (C::BatchRollback, key_bytes),
        (C::PessimisticLock, key_bytes),
        (C::PessimisticRollback, key_bytes),
        (C::Flush, key_bytes),
        (C::CheckSecondaryLocks, None),
        (C::ResolveLock, None),
        (C::RawScan, None),
        (C::Get, None),
    ];
    let policy = DefaultShardPolicy::default();
    for (cmd, want) in table {
        assert_eq!(policy.batch_limit(cmd), want, "{cmd}");
        assert_eq!(
            policy.max_concurrency(cmd),
            DEFAULT_SHARD_CONCURRENCY,
            "{cmd}"
        );
    }
    // The trait is object safe: a pipeline may hold any policy behind a pointer.
    let boxed: Arc<dyn ShardPolicy> = Arc::new(policy);
    assert_eq!(boxed.max_concurrency(C::Get), 128);
}

#[test]
fn policy_setters_change_one_limit_each() {
    use CmdType as C;
    let policy = DefaultShardPolicy::default()
        .with_raw_batch_pair_count(10)
        .with_raw_batch_put_size(100)
        .with_batch_get_size(3)
        .with_txn_commit_batch_size(64)
        .with_split_batch_region_limit(5)
        .with_max_concurrency(2);
    let table = [
        (C::RawBatchGet, BatchLimit::count(11)),
        (C::RawBatchDelete, BatchLimit::count(11)),
        (C::SplitRegion, BatchLimit::count(6)),
        (C::RawBatchPut, BatchLimit::bytes(Weigh::KeyValueBytes, 100)),
        (C::BatchGet, BatchLimit::count(3)),
        (C::BufferBatchGet, BatchLimit::count(3)),
        (C::Prewrite, BatchLimit::bytes(Weigh::KeyValueBytes, 64)),
        (C::Commit, BatchLimit::bytes(Weigh::KeyBytes, 64)),
        (C::Flush, BatchLimit::bytes(Weigh::KeyBytes, 64)),
    ];
    for (cmd, want) in table {
        assert_eq!(policy.batch_limit(cmd), Some(want), "{cmd}");
        assert_eq!(policy.max_concurrency(cmd), 2);
    }
    // The "one more key" of the count limits saturates instead of overflowing.
    let huge = DefaultShardPolicy::default()
        .with_raw_batch_pair_count(usize::MAX)
        .with_split_batch_region_limit(usize::MAX);
    assert_eq!(
        huge.batch_limit(C::RawBatchGet),
        Some(BatchLimit::count(usize::MAX))
    );
    assert_eq!(
        huge.batch_limit(C::SplitRegion),
        Some(BatchLimit::count(usize::MAX))
    );
}
