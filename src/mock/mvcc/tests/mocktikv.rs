//! Ports of `client-go: internal/mockstore/mocktikv/mock_tikv_test.go` and `mvcc_test.go`
//! (spec §6.2 A).

use tikv_proto::kvrpcpb::{self, Action, IsolationLevel, Op};

use super::*;

fn lock_info(key: &str, primary: &str, ts: u64) -> (Vec<u8>, Vec<u8>, u64) {
    (key.into(), primary.into(), ts)
}

fn brief(locks: &[kvrpcpb::LockInfo]) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    locks
        .iter()
        .map(|l| (l.key.clone(), l.primary_lock.clone(), l.lock_version))
        .collect()
}

// client-go: T-MOCK-006 TestRegionContains
#[test]
fn test_region_contains() {
    let r = |s: &[u8], e: &[u8]| RegionScope {
        region_id: 1,
        start_key: s.to_vec(),
        end_key: e.to_vec(),
    };
    assert!(r(&[], &[]).contains(&[]));
    assert!(r(&[], &[]).contains(&[1]));
    assert!(!r(&[1, 1, 1], &[]).contains(&[1, 1, 0]));
    assert!(r(&[1, 1, 1], &[]).contains(&[1, 1, 1]));
    assert!(r(&[], &[2, 2, 2]).contains(&[2, 2, 1]));
    assert!(!r(&[], &[2, 2, 2]).contains(&[2, 2, 2]));
    assert!(!r(&[1, 1, 1], &[2, 2, 2]).contains(&[1, 1, 0]));
    assert!(r(&[1, 1, 1], &[2, 2, 2]).contains(&[1, 1, 1]));
    assert!(r(&[1, 1, 1], &[2, 2, 2]).contains(&[2, 2, 1]));
    assert!(!r(&[1, 1, 1], &[2, 2, 2]).contains(&[2, 2, 2]));
}

// client-go: T-MOCK-007 TestGet
#[tokio::test]
async fn test_get() {
    let h = H::new();
    h.must_get_none("x", 10).await;
    h.must_put_ok("x", "x", 5, 10).await;
    h.must_get_none("x", 9).await;
    h.must_get_ok("x", 10, "x").await;
    h.must_get_ok("x", 11, "x").await;
}

// client-go: T-MOCK-008 TestGetWithLock
#[tokio::test]
async fn test_get_with_lock() {
    let h = H::new();
    h.must_put_ok("key", "value", 5, 10).await;
    // A Lock-type lock does not block reads.
    h.must_prewrite_ok(vec![mutation(Op::Lock, "key")], "key", 20)
        .await;
    h.must_get_ok("key", 25, "value").await;
    h.must_commit_ok(&["key"], 20, 30).await;

    // Reads at max ts on the primary ignore its lock; secondaries do not.
    h.must_prewrite_ok(puts(&[("key", "value2"), ("key2", "v5")]), "key", 40)
        .await;
    h.must_get_err("key", 41).await;
    h.must_get_err("key2", u64::MAX).await;
    h.must_get_ok("key", u64::MAX, "value").await;
}

// client-go: T-MOCK-009 TestDelete
#[tokio::test]
async fn test_delete() {
    let h = H::new();
    h.must_put_ok("x", "x5-10", 5, 10).await;
    h.must_delete_ok("x", 15, 20).await;
    h.must_get_none("x", 5).await;
    h.must_get_none("x", 9).await;
    h.must_get_ok("x", 10, "x5-10").await;
    h.must_get_ok("x", 19, "x5-10").await;
    h.must_get_none("x", 20).await;
    h.must_get_none("x", 21).await;
}

// client-go: T-MOCK-010 TestCleanupRollback
#[tokio::test]
async fn test_cleanup_rollback() {
    let h = H::new();
    h.must_put_ok("secondary", "s-0", 1, 2).await;
    h.must_prewrite_ok(
        puts(&[("primary", "p-5"), ("secondary", "s-5")]),
        "primary",
        5,
    )
    .await;
    h.must_get_err("secondary", 8).await;
    h.must_get_err("secondary", 12).await;
    h.must_commit_ok(&["primary"], 5, 10).await;
    assert!(h.rollback(&["primary"], 5).await.is_some());
}

/// Forward (`reverse = false`) or reverse range scan in mocktikv's `(lower, upper)` terms.
async fn range_scan(
    h: &H,
    lower: &str,
    upper: &str,
    limit: u32,
    ts: u64,
    reverse: bool,
) -> Vec<(String, String)> {
    let pairs = if reverse {
        h.scan(upper, lower, limit, ts, true, si()).await
    } else {
        h.scan(lower, upper, limit, ts, false, si()).await
    };
    pairs
        .into_iter()
        .map(|p| {
            assert!(p.error.is_none(), "{p:?}");
            (
                String::from_utf8(p.key).unwrap(),
                String::from_utf8(p.value).unwrap(),
            )
        })
        .collect()
}

fn kvs(expect: &[&str]) -> Vec<(String, String)> {
    expect
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

async fn must_scan(h: &H, start: &str, limit: u32, ts: u64, expect: &[&str]) {
    assert_eq!(
        range_scan(h, start, "", limit, ts, false).await,
        kvs(expect),
        "scan {start:?} {limit} @{ts}"
    );
}

async fn must_range_scan(h: &H, start: &str, end: &str, limit: u32, ts: u64, expect: &[&str]) {
    assert_eq!(
        range_scan(h, start, end, limit, ts, false).await,
        kvs(expect),
        "scan [{start:?},{end:?}) {limit} @{ts}"
    );
}

async fn must_reverse_scan(h: &H, end: &str, limit: u32, ts: u64, expect: &[&str]) {
    assert_eq!(
        range_scan(h, "", end, limit, ts, true).await,
        kvs(expect),
        "rscan ..{end:?} {limit} @{ts}"
    );
}

async fn must_range_reverse_scan(
    h: &H,
    start: &str,
    end: &str,
    limit: u32,
    ts: u64,
    expect: &[&str],
) {
    assert_eq!(
        range_scan(h, start, end, limit, ts, true).await,
        kvs(expect),
        "rscan [{start:?},{end:?}) {limit} @{ts}"
    );
}

// client-go: T-MOCK-011 TestReverseScan
#[tokio::test]
async fn test_reverse_scan() {
    let h = H::new();
    h.must_put_ok("A", "A10", 5, 10).await;
    h.must_put_ok("C", "C10", 5, 10).await;
    h.must_put_ok("E", "E10", 5, 10).await;
    async fn v10(h: &H) {
        must_reverse_scan(h, "Z", 0, 10, &[]).await;
        must_reverse_scan(h, "Z", 1, 10, &["E", "E10"]).await;
        must_reverse_scan(h, "Z", 2, 10, &["E", "E10", "C", "C10"]).await;
        must_reverse_scan(h, "Z", 3, 10, &["E", "E10", "C", "C10", "A", "A10"]).await;
        must_reverse_scan(h, "Z", 4, 10, &["E", "E10", "C", "C10", "A", "A10"]).await;
        must_reverse_scan(h, "E\x00", 3, 10, &["E", "E10", "C", "C10", "A", "A10"]).await;
        must_reverse_scan(h, "C\x00", 3, 10, &["C", "C10", "A", "A10"]).await;
        must_reverse_scan(h, "C\x00", 4, 10, &["C", "C10", "A", "A10"]).await;
        must_reverse_scan(h, "B", 1, 10, &["A", "A10"]).await;
        must_range_reverse_scan(h, "", "E", 5, 10, &["C", "C10", "A", "A10"]).await;
        must_range_reverse_scan(h, "", "C\x00", 5, 10, &["C", "C10", "A", "A10"]).await;
        must_range_reverse_scan(h, "A\x00", "C", 5, 10, &[]).await;
    }
    v10(&h).await;

    h.must_put_ok("B", "B20", 15, 20).await;
    h.must_put_ok("D", "D20", 15, 20).await;
    async fn v20(h: &H) {
        must_reverse_scan(
            h,
            "Z",
            5,
            20,
            &["E", "E10", "D", "D20", "C", "C10", "B", "B20", "A", "A10"],
        )
        .await;
        must_reverse_scan(h, "C\x00", 5, 20, &["C", "C10", "B", "B20", "A", "A10"]).await;
        must_reverse_scan(h, "A\x00", 1, 20, &["A", "A10"]).await;
        must_range_reverse_scan(h, "B", "D", 5, 20, &["C", "C10", "B", "B20"]).await;
        must_range_reverse_scan(
            h,
            "B",
            "D\x00",
            5,
            20,
            &["D", "D20", "C", "C10", "B", "B20"],
        )
        .await;
        must_range_reverse_scan(h, "B\x00", "D\x00", 5, 20, &["D", "D20", "C", "C10"]).await;
    }
    v10(&h).await;
    v20(&h).await;

    h.must_delete_ok("A", 25, 30).await;
    h.must_delete_ok("D", 25, 30).await;
    async fn v30(h: &H) {
        must_reverse_scan(h, "Z", 5, 30, &["E", "E10", "C", "C10", "B", "B20"]).await;
        must_reverse_scan(h, "C", 1, 30, &["B", "B20"]).await;
        must_reverse_scan(h, "C\x00", 5, 30, &["C", "C10", "B", "B20"]).await;
    }
    v10(&h).await;
    v20(&h).await;
    v30(&h).await;

    h.must_delete_ok("B", 35, 40).await;
    h.must_put_ok("C", "C40", 35, 40).await;
    h.must_put_ok("D", "D40", 35, 40).await;
    async fn v40(h: &H) {
        must_reverse_scan(h, "Z", 5, 40, &["E", "E10", "D", "D40", "C", "C40"]).await;
        must_reverse_scan(h, "Z", 5, 100, &["E", "E10", "D", "D40", "C", "C40"]).await;
    }
    v10(&h).await;
    v20(&h).await;
    v30(&h).await;
    v40(&h).await;
}

// client-go: T-MOCK-012 TestScan
#[tokio::test]
async fn test_scan() {
    let h = H::new();
    h.must_put_ok("A", "A10", 5, 10).await;
    h.must_put_ok("C", "C10", 5, 10).await;
    h.must_put_ok("E", "E10", 5, 10).await;
    async fn v10(h: &H) {
        must_scan(h, "", 0, 10, &[]).await;
        must_scan(h, "", 1, 10, &["A", "A10"]).await;
        must_scan(h, "", 2, 10, &["A", "A10", "C", "C10"]).await;
        must_scan(h, "", 3, 10, &["A", "A10", "C", "C10", "E", "E10"]).await;
        must_scan(h, "", 4, 10, &["A", "A10", "C", "C10", "E", "E10"]).await;
        must_scan(h, "A", 3, 10, &["A", "A10", "C", "C10", "E", "E10"]).await;
        must_scan(h, "A\x00", 3, 10, &["C", "C10", "E", "E10"]).await;
        must_scan(h, "C", 4, 10, &["C", "C10", "E", "E10"]).await;
        must_scan(h, "F", 1, 10, &[]).await;
        must_range_scan(h, "", "E", 5, 10, &["A", "A10", "C", "C10"]).await;
        must_range_scan(h, "", "C\x00", 5, 10, &["A", "A10", "C", "C10"]).await;
        must_range_scan(h, "A\x00", "C", 5, 10, &[]).await;
    }
    v10(&h).await;

    h.must_put_ok("B", "B20", 15, 20).await;
    h.must_put_ok("D", "D20", 15, 20).await;
    async fn v20(h: &H) {
        must_scan(
            h,
            "",
            5,
            20,
            &["A", "A10", "B", "B20", "C", "C10", "D", "D20", "E", "E10"],
        )
        .await;
        must_scan(h, "C", 5, 20, &["C", "C10", "D", "D20", "E", "E10"]).await;
        must_scan(h, "D\x00", 1, 20, &["E", "E10"]).await;
        must_range_scan(h, "B", "D", 5, 20, &["B", "B20", "C", "C10"]).await;
        must_range_scan(
            h,
            "B",
            "D\x00",
            5,
            20,
            &["B", "B20", "C", "C10", "D", "D20"],
        )
        .await;
        must_range_scan(h, "B\x00", "D\x00", 5, 20, &["C", "C10", "D", "D20"]).await;
    }
    v10(&h).await;
    v20(&h).await;

    h.must_delete_ok("A", 25, 30).await;
    h.must_delete_ok("D", 25, 30).await;
    async fn v30(h: &H) {
        must_scan(h, "", 5, 30, &["B", "B20", "C", "C10", "E", "E10"]).await;
        must_scan(h, "A", 1, 30, &["B", "B20"]).await;
        must_scan(h, "C\x00", 5, 30, &["E", "E10"]).await;
    }
    v10(&h).await;
    v20(&h).await;
    v30(&h).await;

    h.must_delete_ok("B", 35, 40).await;
    h.must_put_ok("C", "C40", 35, 40).await;
    h.must_put_ok("D", "D40", 35, 40).await;
    async fn v40(h: &H) {
        must_scan(h, "", 5, 40, &["C", "C40", "D", "D40", "E", "E10"]).await;
        must_scan(h, "", 5, 100, &["C", "C40", "D", "D40", "E", "E10"]).await;
    }
    v10(&h).await;
    v20(&h).await;
    v30(&h).await;
    v40(&h).await;
}

// client-go: T-MOCK-013 TestBatchGet
#[tokio::test]
async fn test_batch_get() {
    let h = H::new();
    h.must_put_ok("k1", "v1", 1, 2).await;
    h.must_put_ok("k2", "v2", 1, 2).await;
    h.must_put_ok("k2", "v2", 3, 4).await;
    h.must_put_ok("k3", "v3", 1, 2).await;
    let pairs = h
        .batch_get_req(kvrpcpb::BatchGetRequest {
            keys: keys(&["k1", "k2", "k3"]),
            version: 5,
            ..Default::default()
        })
        .await
        .pairs;
    for p in &pairs {
        assert!(p.error.is_none());
    }
    assert_eq!(pairs[0].value, b"v1");
    assert_eq!(pairs[1].value, b"v2");
    assert_eq!(pairs[2].value, b"v3");
}

// client-go: T-MOCK-014 TestScanLock
#[tokio::test]
async fn test_scan_lock() {
    let h = H::new();
    h.must_put_ok("k1", "v1", 1, 2).await;
    h.must_prewrite_ok(puts(&[("p1", "v5"), ("s1", "v5")]), "p1", 5)
        .await;
    h.must_prewrite_ok(puts(&[("p2", "v10"), ("s2", "v10")]), "p2", 10)
        .await;
    h.must_prewrite_ok(puts(&[("p3", "v20"), ("s3", "v20")]), "p3", 20)
        .await;

    let locks = h.scan_locks("a", "r", 12).await;
    assert_eq!(
        brief(&locks),
        vec![lock_info("p1", "p1", 5), lock_info("p2", "p2", 10)]
    );

    let locks = h.scan_locks("", "", 10).await;
    assert_eq!(
        brief(&locks),
        vec![
            lock_info("p1", "p1", 5),
            lock_info("p2", "p2", 10),
            lock_info("s1", "p1", 5),
            lock_info("s2", "p2", 10),
        ]
    );
}

// client-go: T-MOCK-015 TestScanWithResolvedLock
#[tokio::test]
async fn test_scan_with_resolved_lock() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("p1", "v5"), ("s1", "v5")]), "p1", 5)
        .await;
    h.must_prewrite_ok(puts(&[("p2", "v10"), ("s2", "v10")]), "p1", 5)
        .await;

    let pairs = h.scan("p1", "", 3, 10, false, si()).await;
    let lock = pairs[0]
        .error
        .as_ref()
        .and_then(|e| e.locked.clone())
        .expect("locked");
    assert!(pairs[1].error.as_ref().is_some_and(|e| e.locked.is_some()));

    let ctx = kvrpcpb::Context {
        resolved_locks: vec![lock.lock_version],
        ..Default::default()
    };
    let pairs = h.scan("p1", "", 3, 10, false, ctx).await;
    for p in &pairs {
        assert!(p.error.is_none());
    }
}

// client-go: T-MOCK-016 TestCommitConflict
#[tokio::test]
async fn test_commit_conflict() {
    let h = H::new();
    // A prewrites.
    h.must_prewrite_ok(puts(&[("x", "A")]), "x", 5).await;
    // B's prewrite meets A's lock.
    let errs = h.prewrite(puts(&[("x", "B")]), "x", 10, 0).await;
    assert!(!errs.is_empty());
    // B rolls A back; A can no longer commit.
    assert!(h.rollback(&["x"], 5).await.is_none());
    assert!(h.commit(&["x"], 5, 10).await.is_some());
    // B prewrites after the rollback; A's commit still fails.
    h.must_prewrite_ok(puts(&[("x", "B")]), "x", 10).await;
    assert!(h.commit(&["x"], 5, 20).await.is_some());
    // B commits, twice.
    h.must_commit_ok(&["x"], 10, 20).await;
    h.must_commit_ok(&["x"], 10, 20).await;
}

async fn resolve(h: &H, start: u64, commit: u64) {
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            start_version: start,
            commit_version: commit,
            ..Default::default()
        })
        .await;
    assert!(r.error.is_none(), "{r:?}");
}

async fn batch_resolve(h: &H, infos: &[(u64, u64)]) {
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            txn_infos: infos
                .iter()
                .map(|(t, s)| kvrpcpb::TxnInfo {
                    txn: *t,
                    status: *s,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await;
    assert!(r.error.is_none(), "{r:?}");
}

// client-go: T-MOCK-017 TestResolveLock
#[tokio::test]
async fn test_resolve_lock() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("p1", "v5"), ("s1", "v5")]), "p1", 5)
        .await;
    h.must_prewrite_ok(puts(&[("p2", "v10"), ("s2", "v10")]), "p2", 10)
        .await;
    resolve(&h, 5, 0).await;
    resolve(&h, 10, 20).await;
    h.must_get_none("p1", 20).await;
    h.must_get_none("s1", 30).await;
    h.must_get_ok("p2", 20, "v10").await;
    h.must_get_ok("s2", 30, "v10").await;
    assert!(h.scan_locks("", "", 30).await.is_empty());
}

// client-go: T-MOCK-018 TestBatchResolveLock
#[tokio::test]
async fn test_batch_resolve_lock() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("p1", "v11"), ("s1", "v11")]), "p1", 11)
        .await;
    h.must_prewrite_ok(puts(&[("p2", "v12"), ("s2", "v12")]), "p2", 12)
        .await;
    h.must_prewrite_ok(puts(&[("p3", "v13")]), "p3", 13).await;
    h.must_prewrite_ok(
        puts(&[("p4", "v14"), ("s3", "v14"), ("s4", "v14")]),
        "p4",
        14,
    )
    .await;
    h.must_prewrite_ok(puts(&[("p5", "v15"), ("s5", "v15")]), "p5", 15)
        .await;
    batch_resolve(&h, &[(11, 0), (12, 22), (13, 0), (14, 24)]).await;
    h.must_get_none("p1", 20).await;
    h.must_get_none("p3", 30).await;
    h.must_get_ok("p2", 30, "v12").await;
    h.must_get_ok("s4", 30, "v14").await;
    assert_eq!(
        brief(&h.scan_locks("", "", 30).await),
        vec![lock_info("p5", "p5", 15), lock_info("s5", "p5", 15)]
    );
    batch_resolve(&h, &[(15, 0)]).await;
    assert!(h.scan_locks("", "", 30).await.is_empty());
}

// client-go: T-MOCK-019 TestGC
#[tokio::test]
async fn test_gc() {
    let h = H::new();
    h.must_put_ok("k1", "v1", 1, 2).await;
    h.must_put_ok("k1", "v2", 11, 12).await;
    h.must_put_ok("k2", "v1", 1, 2).await;
    h.must_put_ok("k2", "v2", 11, 12).await;
    h.must_put_ok("k2", "v3", 101, 102).await;
    h.must_put_ok("k3", "v1", 1, 2).await;
    h.must_put_ok("k3", "v2", 11, 12).await;
    h.must_delete_ok("k3", 101, 102).await;
    h.must_put_ok("k4", "v1", 1, 2).await;
    h.must_delete_ok("k4", 11, 12).await;

    h.must_get_ok("k1", 5, "v1").await;
    h.must_get_ok("k1", 15, "v2").await;
    h.must_get_ok("k2", 5, "v1").await;
    h.must_get_ok("k2", 15, "v2").await;
    h.must_get_ok("k2", 105, "v3").await;
    h.must_get_ok("k3", 5, "v1").await;
    h.must_get_ok("k3", 15, "v2").await;
    h.must_get_none("k3", 105).await;
    h.must_get_ok("k4", 5, "v1").await;
    h.must_get_none("k4", 105).await;

    h.e.gc(&RegionScope::everything(), 100).unwrap();

    h.must_get_none("k1", 5).await;
    h.must_get_ok("k1", 15, "v2").await;
    h.must_get_none("k2", 5).await;
    h.must_get_ok("k2", 15, "v2").await;
    h.must_get_ok("k2", 105, "v3").await;
    h.must_get_none("k3", 5).await;
    h.must_get_ok("k3", 15, "v2").await;
    h.must_get_none("k3", 105).await;
    h.must_get_none("k4", 5).await;
    h.must_get_none("k4", 105).await;
}

fn assert_write_conflict(errs: &[kvrpcpb::KeyError]) {
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].conflict.is_some(), "{errs:?}");
}

// client-go: T-MOCK-020 TestRollbackAndWriteConflict
#[tokio::test]
async fn test_rollback_and_write_conflict() {
    let h = H::new();
    h.must_put_ok("test", "test", 1, 3).await;
    let errs = h
        .prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: puts(&[("lock", "lock"), ("test", "test1")]),
            primary_lock: "test".into(),
            start_version: 2,
            lock_ttl: 2,
            ..Default::default()
        })
        .await
        .errors;
    // mocktikv reports the conflict at the second mutation; the single selected error here.
    assert_write_conflict(&errs);
    assert_eq!(errs[0].conflict.as_ref().unwrap().key, b"test");

    h.must_put_ok("test", "test2", 5, 8).await;
    // Simulate `getTxnStatus` for txn 2.
    assert!(h.cleanup("test", 2, u64::MAX).await.error.is_none());
    let errs = h
        .prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: puts(&[("test", "test3")]),
            primary_lock: "test".into(),
            start_version: 6,
            lock_ttl: 1,
            ..Default::default()
        })
        .await
        .errors;
    assert_write_conflict(&errs);
}

async fn delete_range(h: &H, start: &str, end: &str) {
    let r = h
        .delete_range_req(kvrpcpb::DeleteRangeRequest {
            start_key: start.into(),
            end_key: end.into(),
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty(), "{r:?}");
}

// client-go: T-MOCK-021 TestDeleteRange
#[tokio::test]
async fn test_delete_range() {
    let h = H::new();
    for i in 1..=5u64 {
        let key = format!("{i}");
        h.must_put_ok(&key, &format!("v{key}"), 1 + 2 * i, 2 + 2 * i)
            .await;
    }
    must_scan(
        &h,
        "0",
        10,
        20,
        &["1", "v1", "2", "v2", "3", "v3", "4", "v4", "5", "v5"],
    )
    .await;
    delete_range(&h, "2", "4").await;
    must_scan(&h, "0", 10, 30, &["1", "v1", "4", "v4", "5", "v5"]).await;
    delete_range(&h, "5", "5").await;
    must_scan(&h, "0", 10, 40, &["1", "v1", "4", "v4", "5", "v5"]).await;
    delete_range(&h, "41", "42").await;
    must_scan(&h, "0", 10, 50, &["1", "v1", "4", "v4", "5", "v5"]).await;
    delete_range(&h, "4\x00", "5\x00").await;
    must_scan(&h, "0", 10, 60, &["1", "v1", "4", "v4"]).await;
    delete_range(&h, "0", "9").await;
    must_scan(&h, "0", 10, 70, &[]).await;
}

// client-go: T-MOCK-022 TestRC
#[tokio::test]
async fn test_rc() {
    let h = H::new();
    h.must_put_ok("key", "v1", 5, 10).await;
    h.must_prewrite_ok(puts(&[("key", "v2")]), "key", 15).await;
    h.must_get_err("key", 20).await;
    let rc = || kvrpcpb::Context {
        isolation_level: IsolationLevel::Rc as i32,
        ..Default::default()
    };
    assert_eq!(
        h.get_ctx("key", 12, rc()).await.unwrap(),
        Some(b"v1".to_vec())
    );
    assert_eq!(
        h.get_ctx("key", 20, rc()).await.unwrap(),
        Some(b"v1".to_vec())
    );
}

// client-go: T-MOCK-023 TestCheckTxnStatus
#[tokio::test]
async fn test_check_txn_status() {
    let h = H::new();
    let start = 5u64 << 18;
    assert!(
        h.prewrite(puts(&[("pk", "val")]), "pk", start, 666)
            .await
            .is_empty()
    );

    let r = h
        .check_txn_status("pk", start, start + 100, 666, false)
        .await;
    assert!(r.error.is_none());
    assert_eq!(r.lock_ttl, 666);
    assert_eq!(r.commit_version, 0);
    assert_eq!(r.action, Action::MinCommitTsPushed as i32);

    // MaxUint64 as caller start ts does not push but reports MinCommitTSPushed.
    let r = h.check_txn_status("pk", start, u64::MAX, 666, false).await;
    assert!(r.error.is_none());
    assert_eq!(r.lock_ttl, 666);
    assert_eq!(r.commit_version, 0);
    assert_eq!(r.action, Action::MinCommitTsPushed as i32);
    h.must_commit_ok(&["pk"], start, start + 101).await;

    let r = h.check_txn_status("pk", start, 0, 666, false).await;
    assert!(r.error.is_none());
    assert_eq!(r.lock_ttl, 0);
    assert_eq!(r.commit_version, start + 101);

    assert!(
        h.prewrite(puts(&[("pk1", "val")]), "pk1", start, 666)
            .await
            .is_empty()
    );
    assert!(h.rollback(&["pk1"], start).await.is_none());
    let r = h.check_txn_status("pk1", start, 0, 666, false).await;
    assert!(r.error.is_none());
    assert_eq!((r.lock_ttl, r.commit_version), (0, 0));
    assert_eq!(r.action, Action::NoAction as i32);

    assert!(
        h.prewrite(puts(&[("pk2", "val")]), "pk2", start, 666)
            .await
            .is_empty()
    );
    let current = 777u64 << 18;
    let r = h.check_txn_status("pk2", start, 0, current, false).await;
    assert!(r.error.is_none());
    assert_eq!((r.lock_ttl, r.commit_version), (0, 0));
    assert_eq!(r.action, Action::TtlExpireRollback as i32);

    // TxnNotFound.
    let r = h.check_txn_status("txnNotFound", 5, 0, 666, false).await;
    let nf = r
        .error
        .and_then(|e| e.txn_not_found)
        .expect("txn not found");
    assert_eq!(nf.start_ts, 5);
    assert_eq!(nf.primary_key, b"txnNotFound");

    let r = h.check_txn_status("txnNotFound", 5, 0, 666, true).await;
    assert!(r.error.is_none());
    assert_eq!((r.lock_ttl, r.commit_version), (0, 0));
    assert_eq!(r.action, Action::LockNotExistRollback as i32);

    // The rollback record blocks an older prewrite.
    let errs = h
        .prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: puts(&[("txnNotFound", "val")]),
            primary_lock: "txnNotFound".into(),
            start_version: 4,
            min_commit_ts: 6,
            ..Default::default()
        })
        .await
        .errors;
    assert!(!errs.is_empty());
}

// client-go: T-MOCK-024 TestRejectCommitTS
#[tokio::test]
async fn test_reject_commit_ts() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("x", "A")]), "x", 5).await;
    let r = h.check_txn_status("x", 5, 100, 100, false).await;
    assert!(r.error.is_none());
    let e = h.commit(&["x"], 5, 10).await.expect("commit must fail");
    let expired = e.commit_ts_expired.expect("commit ts expired");
    assert_eq!(expired.min_commit_ts, 101);
}

// client-go: T-MOCK-025 TestMvccGetByKey
#[tokio::test]
async fn test_mvcc_get_by_key() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("q1", "v5")]), "p1", 5).await;
    let info = h
        .mvcc_by_key_req(kvrpcpb::MvccGetByKeyRequest {
            key: "q1".into(),
            ..Default::default()
        })
        .await
        .info
        .unwrap();
    let lock = info.lock.unwrap();
    assert_eq!(lock.r#type, Op::Put as i32);
    assert_eq!(lock.start_ts, 5);
    assert_eq!(lock.primary, b"p1");
    assert_eq!(lock.short_value, b"v5");
    assert!(info.writes.is_empty());
    assert!(info.values.is_empty());
}

// client-go: T-MOCK-026 TestTxnHeartBeat
#[tokio::test]
async fn test_txn_heart_beat() {
    let h = H::new();
    assert!(
        h.prewrite(puts(&[("pk", "val")]), "pk", 5, 666)
            .await
            .is_empty()
    );
    let r = h.heartbeat("pk", 5, 888).await;
    assert!(r.error.is_none());
    assert!(r.lock_ttl > 666);
    let r = h.heartbeat("pk", 5, 300).await;
    assert!(r.error.is_none());
    assert!(r.lock_ttl > 300);
    assert!(h.cleanup("pk", 5, u64::MAX).await.error.is_none());
    let r = h.heartbeat("pk", 5, 1000).await;
    assert!(r.error.is_some());
    assert_eq!(r.lock_ttl, 0);
}
