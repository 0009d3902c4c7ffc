//! Property tests: scans, reverse scans, key-only scans and delete-range against a
//! `BTreeMap` model, over a mock cluster split at random keys (some splits happen after the
//! client cached the old layout), with random bounds (inclusive, exclusive, unbounded,
//! inverted) and limits, under API V1 and inside an API V2 keyspace with a neighbour
//! keyspace holding the same keys.
//!
//! Keys come from a four-letter alphabet (including `0x00`, the "next key" byte) and are at
//! most three bytes long, so bounds, split points and stored keys collide often.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use tikv::mock::{Mock, MockOptions, encode_key};
use tikv::proto::kvrpcpb;
use tikv::raw::{ApiVersion, BoundRange, Client, KvPair};

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b', b'c']), 0..=3)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        3 => key().prop_map(Bound::Included),
        3 => key().prop_map(Bound::Excluded),
    ]
}

#[derive(Debug, Clone)]
struct Query {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    limit: u32,
    reverse: bool,
    key_only: bool,
}

fn query() -> impl Strategy<Value = Query> {
    (bound(), bound(), 0u32..12, any::<bool>(), any::<bool>()).prop_map(
        |(start, end, limit, reverse, key_only)| Query {
            start,
            end,
            limit,
            reverse,
            key_only,
        },
    )
}

/// Whether `k` lies within the bounds.
fn contains(start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>, k: &[u8]) -> bool {
    let above = match start {
        Bound::Included(s) => k >= s.as_slice(),
        Bound::Excluded(s) => k > s.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => k <= e.as_slice(),
        Bound::Excluded(e) => k < e.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

fn inverted(start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    match (start, end) {
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s > e,
        _ => false,
    }
}

/// What the model says a query returns; `None` when the client must refuse it.
fn expected(model: &BTreeMap<Vec<u8>, Vec<u8>>, q: &Query) -> Option<Vec<KvPair>> {
    if inverted(&q.start, &q.end) || (q.reverse && matches!(q.end, Bound::Unbounded)) {
        return None;
    }
    let hits = model
        .iter()
        .filter(|(k, _)| contains(&q.start, &q.end, k))
        .map(|(k, v)| KvPair::new(k.clone(), if q.key_only { Vec::new() } else { v.clone() }));
    let limit = q.limit as usize;
    Some(if q.reverse {
        hits.rev().take(limit).collect()
    } else {
        hits.take(limit).collect()
    })
}

async fn run(client: &Client, q: &Query) -> tikv::layers::Result<Vec<KvPair>> {
    let range = BoundRange::new(q.start.clone(), q.end.clone());
    match (q.reverse, q.key_only) {
        (false, false) => client.scan(range, q.limit).await,
        (true, false) => client.reverse_scan(range, q.limit).await,
        (false, true) => Ok(client
            .scan_keys(range, q.limit)
            .await?
            .into_iter()
            .map(|k| KvPair::new(k, Vec::new()))
            .collect()),
        (true, true) => Ok(client
            .reverse_scan_keys(range, q.limit)
            .await?
            .into_iter()
            .map(|k| KvPair::new(k, Vec::new()))
            .collect()),
    }
}

/// The PD key of a user key: the key itself under API V1, the memcomparable form of
/// `prefix ‖ key` inside a V2 keyspace.
fn pd_key(prefix: Option<&[u8; 4]>, k: &[u8]) -> Vec<u8> {
    match prefix {
        None => k.to_vec(),
        Some(p) => {
            let mut full = p.to_vec();
            full.extend_from_slice(k);
            encode_key(&full)
        }
    }
}

/// Whether the mock can be split for this API version. Under API V2 it cannot yet: it
/// compares raw keys with memcomparable-encoded region bounds without encoding them
/// (`src/mock/service.rs` `check_keys`, `src/mock/raw.rs` region clamps), so every split
/// region answers `KeyNotInRegion`. Until that is fixed the V2 cases run on one region (the
/// keyspace prefix and the neighbour keyspace are still exercised).
fn splits_work(v2: bool) -> bool {
    !v2
}

/// A mock, a client and its neighbour (another keyspace under V2, `None` under V1).
async fn setup(v2: bool, early: &[Vec<u8>]) -> (Mock, Client, Option<Client>, Option<[u8; 4]>) {
    let mut opts = MockOptions::default();
    if v2 {
        opts.api_version = kvrpcpb::ApiVersion::V2;
    }
    let mock = Mock::new(opts);
    mock.cluster().bootstrap_with_single_store();
    let (prefix, neighbour) = if v2 {
        let ks = mock.pd().create_keyspace("props", &[]).unwrap();
        mock.pd().create_keyspace("neighbour", &[]).unwrap();
        let [_, a, b, c] = super::common::keyspace_id(&ks).to_be_bytes();
        let prefix = [b'r', a, b, c];
        let neighbour = Client::builder()
            .embedded(mock.clone())
            .api_version(ApiVersion::V2)
            .keyspace("neighbour")
            .build()
            .await
            .unwrap();
        (Some(prefix), Some(neighbour))
    } else {
        (None, None)
    };
    if splits_work(v2) {
        let splits: Vec<Vec<u8>> = early.iter().map(|k| pd_key(prefix.as_ref(), k)).collect();
        mock.cluster().split_at_keys(&splits);
    }
    let mut builder = Client::builder().embedded(mock.clone());
    if v2 {
        builder = builder.api_version(ApiVersion::V2).keyspace("props");
    }
    let client = builder.build().await.unwrap();
    (mock, client, neighbour, prefix)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn scans_agree_with_a_btreemap(
        v2 in any::<bool>(),
        data in prop::collection::vec((key(), prop::collection::vec(any::<u8>(), 0..3)), 0..24),
        early in prop::collection::vec(key(), 0..5),
        late in prop::collection::vec(key(), 0..5),
        queries in prop::collection::vec(query(), 1..12),
    ) {
        runtime().block_on(async {
            let (mock, client, neighbour, prefix) = setup(v2, &early).await;
            let mut model = BTreeMap::new();
            for (k, v) in &data {
                model.insert(k.clone(), v.clone());
            }
            client.batch_put(data.clone()).await.unwrap();
            if let Some(n) = &neighbour {
                // The same keys with other values in the next keyspace: never visible here.
                n.batch_put(data.iter().map(|(k, _)| (k.clone(), b"other".to_vec())))
                    .await
                    .unwrap();
            }
            // Splits the client has not seen yet: its cached regions are now stale.
            if splits_work(v2) {
                let splits: Vec<Vec<u8>> =
                    late.iter().map(|k| pd_key(prefix.as_ref(), k)).collect();
                mock.cluster().split_at_keys(&splits);
            }

            for q in &queries {
                let got = run(&client, q).await;
                match expected(&model, q) {
                    Some(want) => prop_assert_eq!(got.unwrap(), want, "{:?}", q),
                    None => {
                        let err = got.unwrap_err();
                        prop_assert_eq!(err.kind(), tikv::layers::ErrorKind::InvalidArgument);
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }

    #[test]
    fn delete_range_agrees_with_a_btreemap(
        data in prop::collection::vec((key(), prop::collection::vec(any::<u8>(), 0..3)), 0..24),
        splits in prop::collection::vec(key(), 0..6),
        ranges in prop::collection::vec((bound(), bound()), 1..4),
    ) {
        runtime().block_on(async {
            let (mock, client, _, _) = setup(false, &[]).await;
            let mut model = BTreeMap::new();
            for (k, v) in &data {
                model.insert(k.clone(), v.clone());
            }
            client.batch_put(data.clone()).await.unwrap();
            mock.cluster().split_at_keys(&splits);
            for (start, end) in &ranges {
                let got = client.delete_range(BoundRange::new(start.clone(), end.clone())).await;
                if inverted(start, end) {
                    prop_assert_eq!(got.unwrap_err().kind(), tikv::layers::ErrorKind::InvalidArgument);
                    continue;
                }
                got.unwrap();
                model.retain(|k, _| !contains(start, end, k));
                let all = client.scan(.., 100).await.unwrap();
                let want: Vec<KvPair> = model.iter().map(|(k, v)| KvPair::new(k.clone(), v.clone())).collect();
                prop_assert_eq!(all, want);
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
