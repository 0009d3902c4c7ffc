//! Issue 7's "Bad input" rules end to end: every refusal is a typed error and reaches no
//! store (the mock's request log stays empty of raw commands), and a batch write that was
//! partly applied says so in its error.

use std::sync::Arc;
use std::time::Duration;

use tikv::layers::{CmdType, Command, ErrorDetail, ErrorKind};
use tikv::mock::{Action, Rule};
use tikv::proto::{errorpb, kvrpcpb};
use tikv::raw::{
    BoundRange, ColumnFamily, DEFAULT_RAFT_ENTRY_MAX_SIZE, MAX_RAW_SCAN_LIMIT, PartialWrite,
};

use super::common::{Env, b};

fn assert_invalid(r: tikv::layers::Result<impl std::fmt::Debug>) {
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn refusals_make_no_rpc() {
    let env = Env::single_store().await;
    let c = &env.client;

    // Scan limits: above client-go's MaxRawKVScanLimit is refused, equal is allowed.
    assert_invalid(c.scan(.., MAX_RAW_SCAN_LIMIT + 1).await);
    assert_invalid(c.reverse_scan(..b("z"), MAX_RAW_SCAN_LIMIT + 1).await);
    // Inverted ranges.
    assert_invalid(c.scan(b("z")..b("a"), 10).await);
    assert_invalid(c.reverse_scan_keys(b("z")..=b("a"), 10).await);
    assert_invalid(c.delete_range(b("b")..b("a")).await);
    assert_invalid(c.checksum(b("b")..b("a")).await);
    // A reverse scan needs an upper bound.
    assert_invalid(c.reverse_scan(b("a").., 10).await);
    // TTLs need a cluster that keeps them; API V1 clusters do not by default.
    assert_invalid(c.put_with_ttl("k", "v", 5).await);
    assert_invalid(c.batch_put_with_ttl([("k", "v")], [5]).await);
    assert_invalid(c.get_key_ttl("k").await);
    // TTL lists must match the pairs (client-go: "the len of ttls is not equal ...").
    assert_invalid(c.batch_put_with_ttl([("k", "v"), ("l", "w")], [0]).await);
    // Compare-and-swap without atomic mode.
    assert_invalid(c.compare_and_swap("k", None, "v").await);
    // Checksum has no column family.
    assert_invalid(c.with_cf(ColumnFamily::Lock).checksum(..).await);

    // A pair over TiKV's raft entry limit, alone or in a batch: nothing is written.
    let big = vec![0u8; DEFAULT_RAFT_ENTRY_MAX_SIZE];
    let err = c.put("big", big.clone()).await.unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::EntryTooLarge { limit, size }
            if *limit == DEFAULT_RAFT_ENTRY_MAX_SIZE as u64 && *size == (3 + big.len()) as u64),
        "{err:?}"
    );
    let err = c
        .batch_put([(b("small"), b("v")), (b("big"), big.clone())])
        .await
        .unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::EntryTooLarge { .. }));
    let err = c
        .with_atomic_for_cas(true)
        .compare_and_swap("big", None, big)
        .await
        .unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::EntryTooLarge { .. }));

    // A key over TiKV's max key size.
    let long = vec![b'k'; 8 * 1024 + 1];
    let err = c.put(long.clone(), "v").await.unwrap_err();
    assert!(matches!(
        err.detail(),
        ErrorDetail::KeyTooLarge { size: 8193 }
    ));
    assert!(matches!(
        c.batch_delete([long]).await.unwrap_err().detail(),
        ErrorDetail::KeyTooLarge { .. }
    ));

    // Empty ranges and limits answer without a round trip too.
    assert!(c.scan(b("a")..b("a"), 10).await.unwrap().is_empty());
    assert!(c.scan(.., 0).await.unwrap().is_empty());
    assert!(c.reverse_scan(..b(""), 10).await.unwrap().is_empty());
    c.delete_range(b("a")..b("a")).await.unwrap();
    assert!(c.batch_get(Vec::<Vec<u8>>::new()).await.unwrap().is_empty());
    c.batch_put(Vec::<(Vec<u8>, Vec<u8>)>::new()).await.unwrap();

    assert!(env.raw_requests().is_empty(), "{:?}", env.raw_requests());
    assert_eq!(c.get("small").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn limits_are_builder_settings() {
    let env = Env::single_store_with(|b| {
        b.raft_entry_max_size(16)
            .max_key_size(4)
            .max_scan_limit(3)
            .enable_ttl(true)
    })
    .await;
    let c = &env.client;
    c.put("kkkk", "0123456789ab").await.unwrap();
    let err = c.put("kkkk", "0123456789abc").await.unwrap_err();
    assert!(matches!(
        err.detail(),
        ErrorDetail::EntryTooLarge {
            limit: 16,
            size: 17
        }
    ));
    let err = c.put("kkkkk", "").await.unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::KeyTooLarge { size: 5 }));
    assert_eq!(c.scan(.., 3).await.unwrap().len(), 1);
    assert_invalid(c.scan(.., 4).await);

    // With TTL support declared, TTLs go to the store and expire on its clock.
    c.put_with_ttl("t", "v", 2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let left = c.get_key_ttl("t").await.unwrap();
    assert!(left.is_some_and(|t| t <= 1), "{left:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.get("t").await.unwrap(), None);
    assert_eq!(c.get_key_ttl("t").await.unwrap(), None);
    // A key without TTL reports 0.
    assert_eq!(c.get_key_ttl("kkkk").await.unwrap(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn empty_keys_are_keys() {
    let env = Env::single_store().await;
    let c = &env.client;
    c.put("", "empty key").await.unwrap();
    assert_eq!(c.get("").await.unwrap(), Some(b("empty key")));
    assert_eq!(c.scan(.., 10).await.unwrap()[0].key, Vec::<u8>::new());
    // `..=""` is exactly the empty key; `..""` holds nothing.
    assert_eq!(
        c.reverse_scan_keys(..=b(""), 10).await.unwrap(),
        vec![Vec::<u8>::new()]
    );
    c.delete("").await.unwrap();
    assert_eq!(c.get("").await.unwrap(), None);
}

/// Answers `RawBatchPut` / `RawBatchDelete` / `RawDeleteRange` with an `error` message
/// when a key of the request (the start key of a range) is at or above `from`.
fn fail_writes_from(from: &'static [u8]) -> Rule {
    Rule::new(Action::Respond(Arc::new(|cmd| {
        Some(match cmd {
            Command::RawBatchPut(_) => kvrpcpb::RawBatchPutResponse {
                error: "injected".into(),
                ..Default::default()
            }
            .into(),
            Command::RawBatchDelete(_) => kvrpcpb::RawBatchDeleteResponse {
                error: "injected".into(),
                ..Default::default()
            }
            .into(),
            Command::RawDeleteRange(_) => kvrpcpb::RawDeleteRangeResponse {
                error: "injected".into(),
                ..Default::default()
            }
            .into(),
            _ => return None,
        })
    })))
    .request(move |cmd, _| match cmd {
        Command::RawBatchPut(r) => r.pairs.iter().any(|p| p.key.as_slice() >= from),
        Command::RawBatchDelete(r) => r.keys.iter().any(|k| k.as_slice() >= from),
        Command::RawDeleteRange(r) => r.start_key.as_slice() >= from,
        _ => false,
    })
}

#[tokio::test(start_paused = true)]
async fn partial_batch_writes_say_so() {
    let env = Env::single_store().await;
    let c = &env.client;
    env.split(b"m");
    c.get("a").await.unwrap();
    let rule = env.mock.inject(fail_writes_from(b"m"));

    // One batch per region; the second fails.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = ["a", "b", "c", "x", "y"]
        .iter()
        .map(|k| (b(k), b("v")))
        .collect();
    let err = c.batch_put(pairs.clone()).await.unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::Storage(m) if m == "injected"),
        "{err:?}"
    );
    let partial = PartialWrite::of(&err).expect("the error reports the partial write");
    assert_eq!(partial.operation(), "batch put");
    assert_eq!(partial.acknowledged_requests(), 1);
    assert_eq!(partial.acknowledged_keys(), 3);
    assert!(matches!(partial.cause().detail(), ErrorDetail::Storage(_)));
    assert_eq!(c.get("a").await.unwrap(), Some(b("v")));
    assert_eq!(c.get("x").await.unwrap(), None);

    // Keys all in the failing region: nothing was written, and the error does not claim it.
    let err = c.batch_put([(b("x"), b("v"))]).await.unwrap_err();
    assert!(PartialWrite::of(&err).is_none());

    let err = c.batch_delete([b("a"), b("x")]).await.unwrap_err();
    let partial = PartialWrite::of(&err).unwrap();
    assert_eq!(
        (partial.acknowledged_requests(), partial.acknowledged_keys()),
        (1, 1)
    );
    assert_eq!(c.get("a").await.unwrap(), None);

    // Delete-range walks regions in order: the first is cleared before the second fails.
    c.put("b", "v").await.unwrap();
    let err = c.delete_range(BoundRange::full()).await.unwrap_err();
    let partial = PartialWrite::of(&err).unwrap();
    assert_eq!(partial.operation(), "delete range");
    assert_eq!(partial.acknowledged_requests(), 1);
    assert_eq!(c.get("b").await.unwrap(), None);

    rule.remove();
    c.batch_put(pairs).await.unwrap();
    assert_eq!(c.scan(.., 10).await.unwrap().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn undetermined_results_are_reported_as_such() {
    let env = Env::single_store().await;
    let undetermined = errorpb::Error {
        message: "undetermined".into(),
        undetermined_result: Some(Default::default()),
        ..Default::default()
    };
    let _rule = env
        .mock
        .inject(Rule::new(Action::region_error(undetermined)).cmds(&[CmdType::RawPut]));
    let err = env.client.put("k", "v").await.unwrap_err();
    assert!(err.is_undetermined(), "{err:?}");
    let cause = std::error::Error::source(&err).unwrap();
    assert!(cause.to_string().contains("undetermined"), "{cause}");
}
