//! Ports of client-go's `integration_tests/raw/api_mock_test.go` (`testRawKVSuite`,
//! T-RAW-015 .. T-RAW-021).
//!
//! T-RAW-015 `TestRawKV` is the suite runner: here it is this module, and the suite's
//! `SetupTest` is [`Env::single_store`]. Go's `split(regionKey, splitKey)` is
//! [`Env::split_located`]. Go's `Scan(start, end)` with an empty `end` is `start..` here,
//! and `ReverseScan(start, end)` is `end..start` (`..start` for an empty `end`).

use std::collections::BTreeMap;

use tikv::layers::shard::RAW_BATCH_PUT_SIZE;
use tikv::raw::{BoundRange, KvPair, RAW_MAX_BACKOFF_MS};

use super::common::{Env, b};

impl Env {
    async fn must_not_exist(&self, key: &[u8]) {
        assert_eq!(self.client.get(key).await.unwrap(), None, "{key:?}");
    }

    async fn must_get(&self, key: &[u8], value: &[u8]) {
        assert_eq!(self.client.get(key).await.unwrap(), Some(value.to_vec()));
    }

    /// Scans `range` and compares with `expect`, a flat list of key, value, key, value...
    async fn must_scan(&self, range: impl Into<BoundRange>, limit: u32, expect: &[&str]) {
        let got = self.client.scan(range, limit).await.unwrap();
        assert_eq!(flatten(&got), expect);
    }

    async fn must_reverse_scan(&self, range: impl Into<BoundRange>, limit: u32, expect: &[&str]) {
        let got = self.client.reverse_scan(range, limit).await.unwrap();
        assert_eq!(flatten(&got), expect);
    }

    /// Deletes `[start, end)` and checks that exactly the keys outside it remain.
    async fn must_delete_range(
        &self,
        start: &str,
        end: &str,
        expected: &mut BTreeMap<String, String>,
    ) {
        self.client.delete_range(b(start)..b(end)).await.unwrap();
        expected.retain(|k, _| !(start <= k.as_str() && k.as_str() < end));
        self.check_data(expected).await;
    }

    async fn check_data(&self, expected: &BTreeMap<String, String>) {
        let limit = u32::try_from(expected.len() + 1).unwrap();
        let got = self.client.scan(.., limit).await.unwrap();
        assert_eq!(got.len(), expected.len());
        for p in &got {
            let k = String::from_utf8(p.key.clone()).unwrap();
            assert_eq!(
                expected.get(&k).map(String::as_bytes),
                Some(p.value.as_slice())
            );
        }
    }
}

fn flatten(pairs: &[KvPair]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|p| [p.key.clone(), p.value.clone()])
        .map(|x| String::from_utf8(x).unwrap())
        .collect()
}

// client-go: T-RAW-016 testRawKVSuite.TestSimple
#[tokio::test(start_paused = true)]
async fn simple() {
    let env = Env::single_store().await;
    env.must_not_exist(b"key").await;
    env.client.put("key", "value").await.unwrap();
    env.must_get(b"key", b"value").await;
    env.client.delete("key").await.unwrap();
    env.must_not_exist(b"key").await;
    // An empty value is legal.
    env.client.put("key", "").await.unwrap();
}

// client-go: T-RAW-017 testRawKVSuite.TestRawBatch
#[tokio::test(start_paused = true)]
async fn raw_batch() {
    let env = Env::single_store().await;
    // Enough pairs for more than four batch-put batches.
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut size = 0usize;
    let mut i = 0usize;
    while size / RAW_BATCH_PUT_SIZE < 4 {
        let key = format!("key{i}");
        let value = format!("value{i}");
        size += key.len() + value.len();
        env.must_not_exist(key.as_bytes()).await;
        keys.push(b(&key));
        values.push(b(&value));
        i += 1;
    }
    let last = i - 1;
    env.split_located(b"", format!("key{}", last / 2).as_bytes());

    env.client
        .batch_put(keys.iter().cloned().zip(values.iter().cloned()))
        .await
        .unwrap();
    let got = env.client.batch_get(keys.clone()).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (g, v) in got.iter().zip(&values) {
        assert_eq!(g.as_ref(), Some(v));
    }
    env.client.batch_delete(keys.clone()).await.unwrap();
    let got = env.client.batch_get(keys.clone()).await.unwrap();
    assert_eq!(got.len(), keys.len());
    assert!(got.iter().all(Option::is_none));
}

// client-go: T-RAW-018 testRawKVSuite.TestSplit
#[tokio::test(start_paused = true)]
async fn split() {
    let env = Env::single_store().await;
    env.client.put("k1", "v1").await.unwrap();
    env.client.put("k3", "v3").await.unwrap();

    env.split_located(b"k", b"k2");

    env.must_get(b"k1", b"v1").await;
    env.must_get(b"k3", b"v3").await;
}

async fn put_k1_to_k7(env: &Env) {
    for (k, v) in [("k1", "v1"), ("k3", "v3"), ("k5", "v5"), ("k7", "v7")] {
        env.client.put(k, v).await.unwrap();
    }
}

async fn check_scan(env: &Env) {
    env.must_scan(b("").., 1, &["k1", "v1"]).await;
    env.must_scan(b("k1").., 2, &["k1", "v1", "k3", "v3"]).await;
    env.must_scan(
        b("")..,
        10,
        &["k1", "v1", "k3", "v3", "k5", "v5", "k7", "v7"],
    )
    .await;
    env.must_scan(b("k2").., 2, &["k3", "v3", "k5", "v5"]).await;
    env.must_scan(b("k2").., 3, &["k3", "v3", "k5", "v5", "k7", "v7"])
        .await;
    env.must_scan(b("")..b("k1"), 1, &[]).await;
    env.must_scan(b("k1")..b("k3"), 2, &["k1", "v1"]).await;
    env.must_scan(b("k1")..b("k5"), 10, &["k1", "v1", "k3", "v3"])
        .await;
    env.must_scan(
        b("k1")..b("k5\0"),
        10,
        &["k1", "v1", "k3", "v3", "k5", "v5"],
    )
    .await;
    env.must_scan(b("k5\0")..b("k5\0\0"), 10, &[]).await;
}

// client-go: T-RAW-019 testRawKVSuite.TestScan
#[tokio::test(start_paused = true)]
async fn scan() {
    let env = Env::single_store().await;
    put_k1_to_k7(&env).await;

    check_scan(&env).await;
    env.split_located(b"k", b"k2");
    check_scan(&env).await;
    env.split_located(b"k2", b"k5");
    check_scan(&env).await;
}

async fn check_reverse_scan(env: &Env) {
    // Go's `ReverseScan(start, nil)` is `..start`.
    env.must_reverse_scan(..b(""), 10, &[]).await;
    env.must_reverse_scan(..b("z"), 1, &["k7", "v7"]).await;
    env.must_reverse_scan(..b("z"), 2, &["k7", "v7", "k5", "v5"])
        .await;
    env.must_reverse_scan(
        ..b("z"),
        10,
        &["k7", "v7", "k5", "v5", "k3", "v3", "k1", "v1"],
    )
    .await;
    env.must_reverse_scan(..b("k2"), 10, &["k1", "v1"]).await;
    env.must_reverse_scan(..b("k6"), 2, &["k5", "v5", "k3", "v3"])
        .await;
    env.must_reverse_scan(..b("k5"), 1, &["k3", "v3"]).await;
    env.must_reverse_scan(..b("k5\0"), 1, &["k5", "v5"]).await;
    env.must_reverse_scan(..b("k6"), 3, &["k5", "v5", "k3", "v3", "k1", "v1"])
        .await;

    // Go's `ReverseScan(start, end)` is `end..start`.
    env.must_reverse_scan(b("k3")..b("z"), 10, &["k7", "v7", "k5", "v5", "k3", "v3"])
        .await;
    env.must_reverse_scan(b("k3\0")..b("k7"), 10, &["k5", "v5"])
        .await;
}

// client-go: T-RAW-020 testRawKVSuite.TestReverseScan
#[tokio::test(start_paused = true)]
async fn reverse_scan() {
    let env = Env::single_store().await;
    put_k1_to_k7(&env).await;

    check_reverse_scan(&env).await;
    env.split_located(b"k", b"k2");
    check_reverse_scan(&env).await;
    env.split_located(b"k2", b"k5");
    check_reverse_scan(&env).await;
}

// client-go: T-RAW-021 testRawKVSuite.TestDeleteRange
#[tokio::test(start_paused = true)]
async fn delete_range() {
    let env = Env::single_store().await;
    let mut data = BTreeMap::new();
    for i in b"abcd" {
        for j in b'0'..=b'9' {
            let key = String::from_utf8(vec![*i, j]).unwrap();
            let value = String::from_utf8(vec![b'v', *i, j]).unwrap();
            env.client.put(key.clone(), value.clone()).await.unwrap();
            data.insert(key, value);
        }
    }

    env.split_located(b"b", b"b");
    env.split_located(b"c", b"c");
    env.split_located(b"d", b"d");

    env.check_data(&data).await;
    env.must_delete_range("b", "c0", &mut data).await;
    env.must_delete_range("c11", "c12", &mut data).await;
    env.must_delete_range("d0", "d0", &mut data).await;
    env.must_delete_range("c5", "d5", &mut data).await;
    env.must_delete_range("a", "z", &mut data).await;
}

#[test]
fn raw_batch_put_size_is_client_gos() {
    // `ConfigProbe.GetRawBatchPutSize` and the backoff budget the suite relies on.
    assert_eq!(RAW_BATCH_PUT_SIZE, 16 * 1024);
    assert_eq!(RAW_MAX_BACKOFF_MS, 20_000);
}
