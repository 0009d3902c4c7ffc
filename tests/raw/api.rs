//! Ports of client-go's `integration_tests/raw/api_test.go` (`apiTestSuite`, T-RAW-022 ..
//! T-RAW-031): the raw client against a real TiKV cluster.
//!
//! T-RAW-022 `TestAPI` is the suite runner: here it is this module. Like Go's `-with-tikv`
//! flag, the tests run only when `TIKV_PD_ADDRS` names the cluster's PD endpoints
//! (comma-separated); otherwise each prints why it skips and passes. Go reads the API
//! version from every store's status page; here it comes from `TIKV_API_VERSION` (`1`, the
//! default, or `2`; API V2 uses the `DEFAULT` keyspace as Go does), and TTL support under
//! API V1 from `TIKV_ENABLE_TTL=1` (TiKV's `storage.enable-ttl`, which Go's CI config
//! turns on). Every test works under its own key prefix and cleans it first. Real clusters
//! keep real time, so the TTL test really sleeps.
//!
//! T-RAW-014 (`TestMain` of util_test.go, a goroutine-leak check) has no counterpart: a
//! dropped client stops its tasks, which the cluster tests check.

use std::time::Duration;

use tikv::raw::{ApiVersion, Checksum, Client, KvPair};

use super::common::{b, crc64_ecma};

/// The real cluster the tests talk to, from the environment.
struct Real {
    pd: Vec<String>,
    api_version: ApiVersion,
    ttl: bool,
}

/// The cluster named by `TIKV_PD_ADDRS`, or `None` (after saying why) to skip `test`.
#[allow(clippy::print_stderr)]
fn real_cluster(test: &str) -> Option<Real> {
    let addrs = std::env::var("TIKV_PD_ADDRS").unwrap_or_default();
    let pd: Vec<String> = addrs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if pd.is_empty() {
        eprintln!("skipping {test}: needs a real TiKV cluster; set TIKV_PD_ADDRS=host:port[,...]");
        return None;
    }
    let api_version = match std::env::var("TIKV_API_VERSION").as_deref() {
        Ok("2" | "v2" | "V2") => ApiVersion::V2,
        _ => ApiVersion::V1,
    };
    let ttl = api_version == ApiVersion::V2
        || matches!(
            std::env::var("TIKV_ENABLE_TTL").as_deref(),
            Ok("1" | "true")
        );
    Some(Real {
        pd,
        api_version,
        ttl,
    })
}

/// The suite's two clients: a plain one and one in atomic mode for CAS.
struct Suite {
    real: Real,
    client: Client,
    cas: Client,
}

impl Suite {
    async fn new(test: &str) -> Option<Suite> {
        let real = real_cluster(test)?;
        let client = Client::builder()
            .pd_endpoints(&real.pd)
            .api_version(real.api_version)
            .enable_ttl(real.ttl)
            .build()
            .await
            .unwrap();
        let cas = client.with_atomic_for_cas(true);
        Some(Suite { real, client, cas })
    }

    fn key(prefix: &str, key: &str) -> Vec<u8> {
        b(&format!("{prefix}{key}"))
    }

    /// Deletes everything under `prefix` and checks it is gone (Go's `cleanKeyPrefix`).
    async fn clean(&self, prefix: &str) {
        let mut end = b(prefix);
        end.push(127);
        self.client.delete_range(b(prefix)..end).await.unwrap();
        assert!(self.scan(prefix, "", "", 10_240).await.is_empty());
    }

    /// Scans `[prefix‖start, prefix‖end‖0x7f)` and strips the prefix (Go's `mustScan`).
    async fn scan(&self, prefix: &str, start: &str, end: &str, limit: u32) -> Vec<KvPair> {
        let mut upper = Suite::key(prefix, end);
        upper.push(127);
        let pairs = self
            .client
            .scan(Suite::key(prefix, start)..upper, limit)
            .await
            .unwrap();
        strip(prefix, pairs)
    }

    /// Reverse scan of `[prefix‖end, prefix‖start)` (Go's `mustReverseScan(start, end)`).
    async fn reverse_scan(&self, prefix: &str, start: &str, end: &str, limit: u32) -> Vec<KvPair> {
        let pairs = self
            .client
            .reverse_scan(Suite::key(prefix, end)..Suite::key(prefix, start), limit)
            .await
            .unwrap();
        strip(prefix, pairs)
    }

    async fn get(&self, prefix: &str, key: &str) -> Option<Vec<u8>> {
        self.client.get(Suite::key(prefix, key)).await.unwrap()
    }

    async fn batch_put(&self, prefix: &str, keys: &[String], values: &[String]) {
        let pairs = keys
            .iter()
            .zip(values)
            .map(|(k, v)| (Suite::key(prefix, k), b(v)));
        self.client.batch_put(pairs).await.unwrap();
    }

    async fn batch_get(&self, prefix: &str, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let keys = keys.iter().map(|k| Suite::key(prefix, k));
        self.client.batch_get(keys).await.unwrap()
    }

    /// Splits the cluster at `prefix‖key` for each key through PD (Go's `mustSplitRegion`
    /// over the codec PD client).
    async fn split(&self, prefix: &str, keys: &[String]) {
        let pd = self.client.cluster().pd().unwrap();
        let region_prefix = match self.real.api_version {
            ApiVersion::V2 => {
                let meta = tikv::pd::get_keyspace_meta(pd, "DEFAULT").await.unwrap();
                let [_, a, b, c] = super::common::keyspace_id(&meta).to_be_bytes();
                vec![b'r', a, b, c]
            }
            _ => Vec::new(),
        };
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                let mut key = region_prefix.clone();
                key.extend_from_slice(&Suite::key(prefix, k));
                match self.real.api_version {
                    ApiVersion::V2 => tikv::mock::encode_key(&key),
                    _ => key,
                }
            })
            .collect();
        pd.split_regions(&keys, 3).await.unwrap();
    }
}

fn strip(prefix: &str, pairs: Vec<KvPair>) -> Vec<KvPair> {
    pairs
        .into_iter()
        .map(|p| KvPair {
            key: p.key[prefix.len()..].to_vec(),
            value: p.value,
        })
        .collect()
}

fn numbered(n: usize, sep: &str) -> (Vec<String>, Vec<String>) {
    (0..n)
        .map(|i| (format!("key{sep}{i}"), format!("value{sep}{i}")))
        .unzip()
}

// client-go: T-RAW-023 apiTestSuite.TestSimple
#[tokio::test]
async fn simple() {
    let Some(s) = Suite::new("simple").await else {
        return;
    };
    let p = "test_simple";
    s.clean(p).await;
    assert_eq!(s.get(p, "key").await, None);
    s.client.put(Suite::key(p, "key"), "value").await.unwrap();
    assert_eq!(s.get(p, "key").await, Some(b("value")));
    s.client.delete(Suite::key(p, "key")).await.unwrap();
    assert_eq!(s.get(p, "key").await, None);
}

// client-go: T-RAW-024 apiTestSuite.TestScan
#[tokio::test]
async fn scan() {
    let Some(s) = Suite::new("scan").await else {
        return;
    };
    let p = "test_scan";
    s.clean(p).await;
    let (keys, values) = numbered(20_480, "@");
    s.batch_put(p, &keys, &values).await;
    let splits: Vec<String> = (0..20_480)
        .step_by(1024)
        .map(|i| format!("key@{i}"))
        .collect();
    s.split(p, &splits).await;

    let got = s.scan(p, &keys[0], "", 10_240).await;
    assert_eq!(got.len(), 10_240);
    for kv in &got {
        assert!(kv.key.starts_with(b"key@"));
        assert!(kv.value.starts_with(b"value@"));
    }
}

// client-go: T-RAW-025 apiTestSuite.TestReverseScan
#[tokio::test]
async fn reverse_scan() {
    let Some(s) = Suite::new("reverse_scan").await else {
        return;
    };
    let p = "test_reverse_scan";
    s.clean(p).await;
    for i in 0..10 {
        s.client
            .put(Suite::key(p, &format!("key:{i}")), format!("value:{i}"))
            .await
            .unwrap();
    }
    // Go's `ReverseScan(prefix‖"key:", prefix‖"")` reads below `prefix‖"key:"`, and every
    // key written sorts above it (`key:0` > `key:`), so Go's loop checks an empty result;
    // the same range and checks here.
    let got = s.reverse_scan(p, "key:", "", 5).await;
    assert!(got.len() <= 5);
    for (i, kv) in got.iter().rev().enumerate() {
        assert_eq!(kv.key, b(&format!("key:{i}")));
        assert_eq!(kv.value, b(&format!("value:{i}")));
    }
}

// client-go: T-RAW-026 apiTestSuite.TestBatchOp
#[tokio::test]
async fn batch_op() {
    let Some(s) = Suite::new("batch_op").await else {
        return;
    };
    let p = "test_batch_op";
    s.clean(p).await;
    let keys = vec!["k1".to_owned(), "k2".to_owned()];
    s.batch_put(p, &keys, &["v1".to_owned(), "v2".to_owned()])
        .await;
    let got = s.batch_get(p, &["k1", "k2"]).await;
    assert_eq!(got, vec![Some(b("v1")), Some(b("v2"))]);
    s.client
        .batch_delete(keys.iter().map(|k| Suite::key(p, k)))
        .await
        .unwrap();
    assert_eq!(s.get(p, "k1").await, None);
    assert_eq!(s.get(p, "k2").await, None);
}

// client-go: T-RAW-027 apiTestSuite.TestCAS
#[tokio::test]
async fn cas() {
    let Some(s) = Suite::new("cas").await else {
        return;
    };
    let p = "test_cas";
    s.clean(p).await;
    let key = Suite::key(p, "key");

    let (old, ok) = s
        .cas
        .compare_and_swap(key.clone(), None, "hello world")
        .await
        .unwrap();
    assert!(ok);
    assert_eq!(old, None);
    assert_eq!(s.get(p, "key").await, Some(b("hello world")));

    let (old, ok) = s
        .cas
        .compare_and_swap(key.clone(), Some(b("hello")), "world")
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(old, Some(b("hello world")));
    assert_eq!(s.get(p, "key").await, Some(b("hello world")));

    let (old, ok) = s
        .cas
        .compare_and_swap(key, Some(b("hello world")), "world")
        .await
        .unwrap();
    assert!(ok);
    assert_eq!(old, Some(b("hello world")));
    assert_eq!(s.get(p, "key").await, Some(b("world")));
}

// client-go: T-RAW-028 apiTestSuite.TestTTL
#[tokio::test]
#[allow(clippy::print_stderr)]
async fn ttl() {
    let Some(s) = Suite::new("ttl").await else {
        return;
    };
    if !s.real.ttl {
        eprintln!("skipping ttl: the cluster has no TTL support (set TIKV_ENABLE_TTL=1 if it has)");
        return;
    }
    let p = "test_ttl";
    let ttl = 2u64;
    s.client
        .put_with_ttl(Suite::key(p, "key"), "value", ttl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(ttl / 2)).await;
    let rest = s.client.get_key_ttl(Suite::key(p, "key")).await.unwrap();
    assert!(rest.is_some_and(|r| r <= ttl / 2), "{rest:?}");

    tokio::time::sleep(Duration::from_secs(ttl / 2)).await;
    assert_eq!(s.get(p, "key").await, None);
    assert_eq!(
        s.client.get_key_ttl(Suite::key(p, "key")).await.unwrap(),
        None
    );
}

// client-go: T-RAW-029 apiTestSuite.TestDeleteRange
#[tokio::test]
async fn delete_range() {
    let Some(s) = Suite::new("delete_range").await else {
        return;
    };
    let p = "test_delete_range";
    s.clean(p).await;
    let (keys, values) = numbered(20_480, "@");
    s.batch_put(p, &keys, &values).await;
    s.split(p, &["key@4096".to_owned()]).await;

    // Go's `mustDeleteRange(prefix, "", "")`: `[prefix, prefix‖0x7f)`.
    let mut end = b(p);
    end.push(127);
    s.client.delete_range(b(p)..end).await.unwrap();
    for k in ["key@0", "key@1", "key@2"] {
        assert_eq!(s.get(p, k).await, None);
    }
}

// client-go: T-RAW-030 apiTestSuite.TestRawChecksum
#[tokio::test]
async fn raw_checksum() {
    let Some(s) = Suite::new("raw_checksum").await else {
        return;
    };
    let p = "test_checksum";
    s.clean(p).await;
    let (keys, values) = numbered(20_480, "@");
    let mut expect = Checksum::default();
    for (k, v) in keys.iter().zip(&values) {
        // TiKV checksums the stored key: the test prefix included (and, under API V2,
        // the 4-byte keyspace prefix too, which only the byte count can see from here).
        let key = Suite::key(p, k);
        expect.crc64_xor ^= crc64_ecma(&[&key, v.as_bytes()]);
        expect.total_kvs += 1;
        expect.total_bytes += (key.len() + v.len()) as u64;
        if s.real.api_version == ApiVersion::V2 {
            expect.total_bytes += 4;
        }
    }
    s.batch_put(p, &keys, &values).await;
    let mut end = b(p);
    end.push(127);
    let got = s.client.checksum(b(p)..end).await.unwrap();
    assert_eq!(got.total_kvs, expect.total_kvs);
    assert_eq!(got.total_bytes, expect.total_bytes);
    if s.real.api_version == ApiVersion::V1 {
        assert_eq!(got.crc64_xor, expect.crc64_xor);
    }
}

// client-go: T-RAW-031 apiTestSuite.TestEmptyValue
#[tokio::test]
async fn empty_value() {
    let Some(s) = Suite::new("empty_value").await else {
        return;
    };
    let p = "test_empty_value";
    s.clean(p).await;
    let key = Suite::key(p, "key");
    assert_eq!(s.get(p, "key").await, None);

    let verify_empty_value = || async {
        assert_eq!(s.get(p, "key").await, Some(Vec::new()));
        assert_eq!(
            s.batch_get(p, &["key", "key1"]).await,
            vec![Some(Vec::new()), None]
        );
        let got = s.scan(p, "key", "keyz", 10).await;
        assert_eq!(got, vec![KvPair::new("key", "")]);
        let got = s.reverse_scan(p, "keyz", "key", 10).await;
        assert_eq!(got, vec![KvPair::new("key", "")]);
    };
    let verify_not_exist = || async {
        assert_eq!(s.get(p, "key").await, None);
        assert_eq!(s.batch_get(p, &["key", "key1"]).await, vec![None, None]);
        assert!(s.scan(p, "key", "keyz", 10).await.is_empty());
        assert!(s.reverse_scan(p, "keyz", "key", 10).await.is_empty());
    };

    // put
    s.client.put(key.clone(), "").await.unwrap();
    verify_empty_value().await;
    // delete
    s.client.delete(key.clone()).await.unwrap();
    verify_not_exist().await;
    // batch put
    s.client.batch_put([(key.clone(), "")]).await.unwrap();
    verify_empty_value().await;
    // compare and swap, absent -> ""
    s.client.delete(key.clone()).await.unwrap();
    let (old, ok) = s.cas.compare_and_swap(key.clone(), None, "").await.unwrap();
    assert!(ok);
    assert_eq!(old, None);
    verify_empty_value().await;
    // compare and swap, "" -> "val"
    let (old, ok) = s
        .cas
        .compare_and_swap(key, Some(Vec::new()), "val")
        .await
        .unwrap();
    assert!(ok);
    assert_eq!(old, Some(Vec::new()));
}
