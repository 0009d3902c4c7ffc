//! The transaction invariants of spec §6.2 D (one test per bullet, named after it).

use tikv_proto::kvrpcpb::{
    self, Action, Assertion, AssertionLevel, IsolationLevel, Op, PessimisticLockKeyResultType,
    PessimisticLockWakeUpMode, prewrite_request::PessimisticAction, write_conflict::Reason,
};

use super::*;
use crate::mock::mvcc::store::WriteKind;

fn pessimistic_prewrite(
    muts: Vec<kvrpcpb::Mutation>,
    primary: &str,
    start: u64,
    for_update: u64,
    actions: Vec<PessimisticAction>,
) -> kvrpcpb::PrewriteRequest {
    kvrpcpb::PrewriteRequest {
        mutations: muts,
        primary_lock: primary.into(),
        start_version: start,
        lock_ttl: 100,
        for_update_ts: for_update,
        pessimistic_actions: actions.into_iter().map(|a| a as i32).collect(),
        ..Default::default()
    }
}

async fn must_lock(h: &H, ks: &[&str], primary: &str, start: u64, for_update: u64) {
    let r = h
        .lock_req(h.lock_request(ks, primary, start, for_update))
        .await;
    assert!(r.errors.is_empty(), "{r:?}");
}

// §6.2 D.1
#[tokio::test]
async fn prewrite_error_selection() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("a", "1"), ("b", "1")]), "a", 10)
        .await;
    // Several locked keys -> every KeyIsLocked.
    let errs = h
        .prewrite(puts(&[("a", "2"), ("b", "2")]), "a", 20, 0)
        .await;
    assert_eq!(errs.len(), 2);
    assert!(errs.iter().all(|e| e.locked.is_some()));
    // A lock plus a conflict -> only the conflict.
    h.must_put_ok("c", "1", 30, 40).await;
    let errs = h
        .prewrite(puts(&[("a", "2"), ("c", "2")]), "a", 35, 0)
        .await;
    assert_eq!(errs.len(), 1);
    assert_conflict(&errs[0], Reason::Optimistic);
    // An assertion failure plus PessimisticLockNotFound -> only the latter.
    let mut m1 = put("c", "x");
    m1.assertion = Assertion::NotExist as i32;
    let mut req = pessimistic_prewrite(
        vec![m1, put("d", "x")],
        "c",
        50,
        50,
        vec![
            PessimisticAction::SkipPessimisticCheck,
            PessimisticAction::DoPessimisticCheck,
        ],
    );
    req.assertion_level = AssertionLevel::Strict as i32;
    let errs = h.prewrite_req(req).await.errors;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].abort.contains("pessimistic lock not found"),
        "{errs:?}"
    );
}

// §6.2 D.2
#[tokio::test]
async fn atomicity_of_failing_requests() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("b", "1")]), "b", 10).await;
    let before = h.e.dump();
    // Prewrite with one failing key.
    assert!(
        !h.prewrite(puts(&[("a", "2"), ("b", "2")]), "a", 20, 0)
            .await
            .is_empty()
    );
    assert_eq!(h.e.dump(), before);
    // PessimisticLock with one failing key.
    let r = h.lock_req(h.lock_request(&["a", "b"], "a", 20, 20)).await;
    assert!(!r.errors.is_empty());
    assert_eq!(h.e.dump(), before);
    // Commit with one failing key.
    assert!(h.commit(&["b", "zz"], 10, 15).await.is_some());
    assert_eq!(h.e.dump(), before);
    // BatchRollback with one failing key (already committed).
    h.must_put_ok("c", "1", 30, 40).await;
    let before = h.e.dump();
    assert!(h.rollback(&["d", "c"], 30).await.is_some());
    assert_eq!(h.e.dump(), before);
}

// §6.2 D.3
#[tokio::test]
async fn pessimistic_prewrite_rules() {
    let h = H::new();
    // Missing lock.
    let r = h
        .prewrite_req(pessimistic_prewrite(
            puts(&[("k", "v")]),
            "k",
            10,
            10,
            vec![PessimisticAction::DoPessimisticCheck],
        ))
        .await;
    assert!(r.errors[0].abort.contains("pessimistic lock not found"));
    // Another transaction's lock.
    must_lock(&h, &["k"], "k", 5, 5).await;
    let r = h
        .prewrite_req(pessimistic_prewrite(
            puts(&[("k", "v")]),
            "k",
            10,
            10,
            vec![PessimisticAction::DoPessimisticCheck],
        ))
        .await;
    assert!(r.errors[0].abort.contains("pessimistic lock not found"));
    // SKIP_PESSIMISTIC_CHECK over another's lock -> KeyIsLocked with TTL 0.
    let r = h
        .prewrite_req(pessimistic_prewrite(
            puts(&[("k", "v")]),
            "p",
            10,
            10,
            vec![PessimisticAction::SkipPessimisticCheck],
        ))
        .await;
    let locked = r.errors[0].locked.as_ref().unwrap();
    assert_eq!(locked.lock_ttl, 0);
    // for_update_ts constraint mismatch.
    let mut req = pessimistic_prewrite(
        puts(&[("k", "v")]),
        "k",
        5,
        6,
        vec![PessimisticAction::DoPessimisticCheck],
    );
    req.for_update_ts_constraints = vec![kvrpcpb::prewrite_request::ForUpdateTsConstraint {
        index: 0,
        expected_for_update_ts: 4,
    }];
    let r = h.prewrite_req(req).await;
    assert!(r.errors[0].abort.contains("pessimistic lock not found"));
    // TTL, min commit ts and for_update_ts are the maxima.
    let mut lr = h.lock_request(&["m"], "m", 20, 25);
    lr.lock_ttl = 5000;
    lr.min_commit_ts = 40;
    assert!(h.lock_req(lr).await.errors.is_empty());
    let mut req = pessimistic_prewrite(
        puts(&[("m", "v")]),
        "m",
        20,
        22,
        vec![PessimisticAction::DoPessimisticCheck],
    );
    req.min_commit_ts = 30;
    assert!(h.prewrite_req(req).await.errors.is_empty());
    let l = h.e.key_state(b"m").unwrap().lock.unwrap();
    assert_eq!(
        (l.ttl, l.min_commit_ts, l.for_update_ts, l.op),
        (5000, 40, 25, Op::Put)
    );
    // An optimistic prewrite over its own pessimistic lock -> lock type not match.
    must_lock(&h, &["n"], "n", 50, 50).await;
    let errs = h.prewrite(puts(&[("n", "v")]), "n", 50, 0).await;
    assert!(errs[0].abort.contains("lock type not match"), "{errs:?}");
}

// §6.2 D.4
#[tokio::test]
async fn self_rollback() {
    let h = H::new();
    let r = h.check_txn_status("k", 10, 0, 0, true).await;
    assert_eq!(r.action, Action::LockNotExistRollback as i32);
    let errs = h.prewrite(puts(&[("k", "v")]), "k", 10, 0).await;
    assert_conflict(&errs[0], Reason::SelfRolledBack);
    let r = h.lock_req(h.lock_request(&["k"], "k", 10, 11)).await;
    assert!(r.errors[0].abort.contains("already rolled back"), "{r:?}");
}

// §6.2 D.5
#[tokio::test]
async fn overlapped_rollback() {
    let h = H::new();
    // Txn A (start 5) commits at 10; txn T = 10 is rolled back on the same key.
    h.must_put_ok("k", "a", 5, 10).await;
    assert!(h.rollback(&["k"], 10).await.is_none());
    h.must_get_ok("k", 10, "a").await;
    let w = h.e.key_state(b"k").unwrap().writes[&10].clone();
    assert_eq!(w.kind, WriteKind::Put);
    assert!(w.has_overlapped_rollback);
    let errs = h.prewrite(puts(&[("k", "t")]), "k", 10, 0).await;
    assert!(!errs.is_empty());
    // And the other way round: a lock of another txn records the rollback, the later
    // commit at that ts carries the flag.
    h.must_prewrite_ok(puts(&[("j", "b")]), "j", 20).await;
    assert!(h.rollback(&["j"], 30).await.is_none());
    h.must_commit_ok(&["j"], 20, 30).await;
    let w = h.e.key_state(b"j").unwrap().writes[&30].clone();
    assert!(w.has_overlapped_rollback);
    h.must_get_ok("j", 30, "b").await;
}

// §6.2 D.6
#[tokio::test]
async fn async_commit() {
    let h = H::new();
    let before = h.e.next_ts();
    let req = |muts, start, max_commit_ts, secondaries: Vec<&str>| kvrpcpb::PrewriteRequest {
        mutations: muts,
        primary_lock: "p".into(),
        start_version: start,
        lock_ttl: 1000,
        use_async_commit: true,
        secondaries: keys(&secondaries),
        max_commit_ts,
        ..Default::default()
    };
    let r = h
        .prewrite_req(req(puts(&[("p", "1"), ("s", "1")]), 10, 0, vec!["s"]))
        .await;
    assert!(r.errors.is_empty());
    assert!(r.min_commit_ts > before);
    let p = h.e.key_state(b"p").unwrap().lock.unwrap();
    let s = h.e.key_state(b"s").unwrap().lock.unwrap();
    assert!(p.use_async_commit && s.use_async_commit);
    assert_eq!(p.secondaries, keys(&["s"]));
    assert!(s.secondaries.is_empty());
    assert_eq!(p.min_commit_ts, r.min_commit_ts);
    // Duplicate prewrite returns the stored min commit ts.
    let again = h
        .prewrite_req(req(puts(&[("s", "1")]), 10, 0, vec![]))
        .await;
    assert_eq!(again.min_commit_ts, r.min_commit_ts);
    // Re-prewriting the primary without secondaries is a plain duplicate.
    let mut plain = req(puts(&[("p", "1")]), 10, 0, vec![]);
    plain.use_async_commit = false;
    assert!(h.prewrite_req(plain).await.errors.is_empty());
    let p = h.e.key_state(b"p").unwrap().lock.unwrap();
    assert!(p.use_async_commit);
    assert_eq!(p.secondaries, keys(&["s"]));
    // CheckTxnStatus never pushes or rolls back an async lock unless force_sync_commit.
    let r = h.check_txn_status("p", 10, 500, u64::MAX, true).await;
    assert_eq!(r.action, Action::NoAction as i32);
    assert!(h.e.key_state(b"p").unwrap().lock.is_some());

    // max_commit_ts below the computed ts -> fallback.
    let r = h
        .prewrite_req(req(puts(&[("q", "1")]), 20, 19, vec![]))
        .await;
    assert!(r.errors.is_empty());
    assert_eq!(r.min_commit_ts, 0);
    assert!(!h.e.key_state(b"q").unwrap().lock.unwrap().use_async_commit);
    // An async request meeting its own fallen-back lock falls back too.
    let r = h
        .prewrite_req(req(puts(&[("q", "1"), ("q2", "1")]), 20, 0, vec![]))
        .await;
    assert_eq!(r.min_commit_ts, 0);
    assert!(!h.e.key_state(b"q2").unwrap().lock.unwrap().use_async_commit);

    // force_sync_commit lets an expired async lock be rolled back.
    let mut cts = kvrpcpb::CheckTxnStatusRequest {
        primary_key: "p".into(),
        lock_ts: 10,
        current_ts: u64::MAX,
        force_sync_commit: true,
        ..Default::default()
    };
    cts.rollback_if_not_exist = true;
    let r = h.check_txn_status_req(cts).await;
    assert_eq!(r.action, Action::TtlExpireRollback as i32);
}

// §6.2 D.7
#[tokio::test]
async fn one_pc() {
    let h = H::new();
    must_lock(&h, &["a"], "a", 10, 10).await;
    let req = |max_commit_ts| kvrpcpb::PrewriteRequest {
        mutations: puts(&[("a", "1"), ("b", "1")]),
        primary_lock: "a".into(),
        start_version: 10,
        lock_ttl: 1000,
        for_update_ts: 10,
        pessimistic_actions: vec![
            PessimisticAction::DoPessimisticCheck as i32,
            PessimisticAction::SkipPessimisticCheck as i32,
        ],
        try_one_pc: true,
        max_commit_ts,
        ..Default::default()
    };
    let r = h.prewrite_req(req(0)).await;
    assert!(r.errors.is_empty());
    assert!(r.one_pc_commit_ts > 10);
    assert_eq!(h.e.lock_count(), 0);
    let ts = r.one_pc_commit_ts;
    h.must_get_ok("a", ts, "1").await;
    h.must_get_ok("b", ts, "1").await;
    h.must_get_none("a", ts - 1).await;

    // Fallback above max_commit_ts.
    let h = H::new();
    let mut r2 = req(11);
    r2.for_update_ts = 0;
    r2.pessimistic_actions.clear();
    let r = h.prewrite_req(r2).await;
    assert!(r.errors.is_empty());
    assert_eq!((r.one_pc_commit_ts, r.min_commit_ts), (0, 0));
    assert_eq!(h.e.lock_count(), 2);
}

// §6.2 D.8
#[tokio::test]
async fn check_secondary_locks() {
    let h = H::new();
    let csl = |ts: u64| kvrpcpb::CheckSecondaryLocksRequest {
        keys: keys(&["k"]),
        start_version: ts,
        ..Default::default()
    };
    // History: lock-type commit 1->3, rollback 5, commit 7->9.
    h.must_prewrite_ok(vec![mutation(Op::Lock, "k")], "k", 1)
        .await;
    h.must_commit_ok(&["k"], 1, 3).await;
    assert!(h.rollback(&["k"], 5).await.is_none());
    h.must_put_ok("k", "v", 7, 9).await;

    let r = h.check_secondary_req(csl(7)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (9, 0));
    let r = h.check_secondary_req(csl(5)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (0, 0));
    let r = h.check_secondary_req(csl(1)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (3, 0));
    let r = h.check_secondary_req(csl(6)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (0, 0));
    assert_eq!(
        h.e.key_state(b"k").unwrap().writes[&6].kind,
        WriteKind::Rollback
    );
    // Pessimistic lock -> rolled back with a record.
    must_lock(&h, &["k"], "k", 11, 11).await;
    let r = h.check_secondary_req(csl(11)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (0, 0));
    let st = h.e.key_state(b"k").unwrap();
    assert!(st.lock.is_none());
    assert_eq!(st.writes[&11].kind, WriteKind::Rollback);
    // Optimistic lock -> locked, lock kept.
    h.must_prewrite_ok(puts(&[("k", "v13")]), "k", 13).await;
    let r = h.check_secondary_req(csl(13)).await;
    assert_eq!(r.locks.len(), 1);
    assert_eq!(r.commit_ts, 0);
    assert!(h.e.key_state(b"k").unwrap().lock.is_some());
    h.must_commit_ok(&["k"], 13, 15).await;
    let r = h.check_secondary_req(csl(14)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (0, 0));
    let r = h.check_secondary_req(csl(15)).await;
    assert_eq!((r.commit_ts, r.locks.len()), (0, 0));
    let w = h.e.key_state(b"k").unwrap().writes[&15].clone();
    assert_eq!(w.kind, WriteKind::Put);
    assert!(w.has_overlapped_rollback);
}

// §6.2 D.9
#[tokio::test]
async fn check_txn_status_rows() {
    let h = H::new();
    let base = |key: &str, ts: u64| kvrpcpb::CheckTxnStatusRequest {
        primary_key: key.into(),
        lock_ts: ts,
        ..Default::default()
    };
    // Row 1: PrimaryMismatch.
    h.must_prewrite_ok(puts(&[("p", "1"), ("s", "1")]), "p", 10)
        .await;
    let mut r1 = base("s", 10);
    r1.verify_is_primary = true;
    let r = h.check_txn_status_req(r1.clone()).await;
    assert!(r.error.unwrap().primary_mismatch.is_some());
    // Row 1 exception: a stale pessimistic lock is removed, then row 12.
    must_lock(&h, &["s2"], "p2", 12, 12).await;
    let mut r1b = base("s2", 12);
    r1b.verify_is_primary = true;
    let r = h.check_txn_status_req(r1b).await;
    assert!(r.error.unwrap().txn_not_found.is_some());
    assert!(h.e.key_state(b"s2").is_none());
    // Row 2: async lock.
    let r = h
        .prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: puts(&[("a", "1")]),
            primary_lock: "a".into(),
            start_version: 20,
            use_async_commit: true,
            ..Default::default()
        })
        .await;
    assert!(r.errors.is_empty());
    let mut r2 = base("a", 20);
    r2.current_ts = u64::MAX;
    assert_eq!(
        h.check_txn_status_req(r2).await.action,
        Action::NoAction as i32
    );
    // Row 3: expired pessimistic lock while resolving pessimistic locks -> no record.
    must_lock(&h, &["b"], "b", 30, 30).await;
    let mut r3 = base("b", 30);
    r3.current_ts = u64::MAX;
    r3.resolving_pessimistic_lock = true;
    let r = h.check_txn_status_req(r3).await;
    assert_eq!(r.action, Action::TtlExpirePessimisticRollback as i32);
    assert!(h.e.key_state(b"b").is_none());
    // Row 4: expired -> rollback record.
    assert!(h.prewrite(puts(&[("c", "1")]), "c", 40, 1).await.is_empty());
    let r = h.check_txn_status("c", 40, 0, u64::MAX, false).await;
    assert_eq!(r.action, Action::TtlExpireRollback as i32);
    assert_eq!(
        h.e.key_state(b"c").unwrap().writes[&40].kind,
        WriteKind::Rollback
    );
    // Rows 5-7.
    let t = 100u64 << 18;
    assert!(
        h.prewrite(puts(&[("d", "1")]), "d", t, 1000)
            .await
            .is_empty()
    );
    let r = h.check_txn_status("d", t, u64::MAX, t, false).await;
    assert_eq!(
        (r.action, r.lock_ttl),
        (Action::MinCommitTsPushed as i32, 1000)
    );
    assert_eq!(
        h.e.key_state(b"d").unwrap().lock.unwrap().min_commit_ts,
        t + 1
    );
    let r = h.check_txn_status("d", t, t + 5, t, false).await;
    assert_eq!(r.action, Action::MinCommitTsPushed as i32);
    assert_eq!(r.lock_info.unwrap().min_commit_ts, t + 6);
    let r = h.check_txn_status("d", t, 0, t, false).await;
    assert_eq!(r.action, Action::NoAction as i32);
    assert!(r.lock_info.is_some());
    // Row 8 and 9.
    h.must_commit_ok(&["d"], t, t + 10).await;
    let r = h.check_txn_status("d", t, 0, t, false).await;
    assert_eq!(
        (r.commit_version, r.action),
        (t + 10, Action::NoAction as i32)
    );
    let r = h.check_txn_status("c", 40, 0, 0, false).await;
    assert_eq!(
        (r.commit_version, r.action, r.lock_ttl),
        (0, Action::NoAction as i32, 0)
    );
    // Row 10: writes nothing.
    let mut r10 = base("e", 50);
    r10.rollback_if_not_exist = true;
    r10.resolving_pessimistic_lock = true;
    let r = h.check_txn_status_req(r10).await;
    assert_eq!(r.action, Action::LockNotExistDoNothing as i32);
    assert!(h.e.key_state(b"e").is_none());
    // Row 11 leaves another transaction's lock in place.
    h.must_prewrite_ok(puts(&[("f", "1")]), "f", 60).await;
    let r = h.check_txn_status("f", 55, 0, 0, true).await;
    assert_eq!(r.action, Action::LockNotExistRollback as i32);
    let st = h.e.key_state(b"f").unwrap();
    assert_eq!(st.lock.unwrap().start_ts, 60);
    assert_eq!(st.writes[&55].kind, WriteKind::Rollback);
    // Row 12.
    let r = h.check_txn_status("g", 70, 0, 0, false).await;
    assert!(r.error.unwrap().txn_not_found.is_some());
}

// §6.2 D.10
#[tokio::test]
async fn pessimistic_lock_rules() {
    let h = H::new();
    h.must_put_ok("k", "v", 1, 2).await;
    // Values/not_founds follow the request order.
    let mut req = h.lock_request(&["x", "k"], "k", 10, 10);
    req.return_values = true;
    let r = h.lock_req(req.clone()).await;
    assert!(r.errors.is_empty());
    assert_eq!(r.values, vec![Vec::new(), b"v".to_vec()]);
    assert_eq!(r.not_founds, vec![true, false]);
    // Duplicate with an equal or smaller for_update_ts rewrites nothing but returns values.
    let before = h.e.dump();
    req.for_update_ts = 9;
    let r = h.lock_req(req).await;
    assert_eq!(r.values, vec![Vec::new(), b"v".to_vec()]);
    assert_eq!(h.e.dump(), before);
    // Conflict newer than for_update_ts: Normal -> WriteConflict.
    h.must_put_ok("c", "v", 20, 30).await;
    let r = h.lock_req(h.lock_request(&["c"], "c", 15, 25)).await;
    assert_conflict(&r.errors[0], Reason::PessimisticRetry);
    assert_eq!(
        r.errors[0].conflict.as_ref().unwrap().conflict_commit_ts,
        30
    );
    // ForceLock -> LockedWithConflict, lock's for_update_ts = conflict ts.
    let mut fl = h.lock_request(&["c"], "c", 15, 25);
    fl.wake_up_mode = PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
    fl.return_values = true;
    let r = h.lock_req(fl).await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        r.results[0].r#type,
        PessimisticLockKeyResultType::LockResultLockedWithConflict as i32
    );
    assert_eq!(r.results[0].locked_with_conflict_ts, 30);
    assert_eq!(r.results[0].value, b"v");
    assert_eq!(h.e.key_state(b"c").unwrap().lock.unwrap().for_update_ts, 30);
    // NotExist on an existing key -> AlreadyExist; with a newer write in ForceLock -> conflict.
    h.must_put_ok("e", "v", 1, 2).await;
    let mut ne = h.lock_request(&["e"], "e", 40, 40);
    ne.mutations[0].assertion = Assertion::NotExist as i32;
    let r = h.lock_req(ne.clone()).await;
    assert!(r.errors[0].already_exist.is_some());
    h.must_put_ok("e", "v2", 41, 42).await;
    ne.wake_up_mode = PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
    ne.start_version = 43;
    ne.for_update_ts = 41;
    let r = h.lock_req(ne).await;
    assert!(r.errors[0].conflict.is_some(), "{r:?}");
    // lock_only_if_exists on a missing key writes no lock.
    let mut lo = h.lock_request(&["missing"], "missing", 50, 50);
    lo.lock_only_if_exists = true;
    lo.return_values = true;
    let r = h.lock_req(lo).await;
    assert!(r.errors.is_empty());
    assert!(h.e.key_state(b"missing").is_none());
    // No-wait stops at the first locked key.
    must_lock(&h, &["l1", "l2"], "l1", 60, 60).await;
    let r = h
        .lock_req(h.lock_request(&["l1", "l2"], "l1", 61, 61))
        .await;
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].locked.is_some());
}

// §6.2 D.12 (key hash half; the wait-chain half is in deadlock.rs)
#[tokio::test]
async fn deadlock_key_hash_is_farmhash() {
    let h = H::new();
    must_lock(&h, &["a"], "a", 1, 1).await;
    must_lock(&h, &["b"], "b", 2, 2).await;
    // 1 waits for 2 on b (Immediate profile registers the edge).
    let r = h.lock_req(h.lock_request(&["b"], "a", 1, 1)).await;
    assert!(r.errors[0].locked.is_some());
    // 2 waits for 1 on a: deadlock, reported hash of b.
    let r = h.lock_req(h.lock_request(&["a"], "b", 2, 2)).await;
    let d = r.errors[0].deadlock.clone().expect("deadlock");
    assert_eq!(d.deadlock_key_hash, crate::mock::mvcc::fingerprint64(b"b"));
    assert_eq!(d.lock_ts, 1);
    assert_eq!(d.lock_key, b"a");
    assert_eq!(d.deadlock_key, b"b");
    assert_eq!(d.wait_chain.len(), 2);
    assert_eq!(
        crate::mock::mvcc::fingerprint64(b"abcd"),
        0x1a55_02de_4a1f_8101
    );
}

// §6.2 D.13
#[tokio::test]
async fn resolve_lock_forms() {
    let h = H::new();
    h.must_prewrite_ok(puts(&[("a", "1"), ("b", "1"), ("c", "1")]), "a", 10)
        .await;
    h.must_prewrite_ok(puts(&[("d", "2")]), "d", 20).await;
    // Lite form: only the listed keys.
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            start_version: 10,
            commit_version: 15,
            keys: keys(&["b"]),
            ..Default::default()
        })
        .await;
    assert!(r.error.is_none());
    assert_eq!(h.e.lock_count(), 3);
    h.must_get_ok("b", 15, "1").await;
    // 0 < status <= start_ts fails without writing.
    let before = h.e.dump();
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            start_version: 10,
            commit_version: 10,
            ..Default::default()
        })
        .await;
    assert!(r.error.unwrap().abort.contains("invalid txn tso"));
    assert_eq!(h.e.dump(), before);
    // Range form: every lock of txn 10, not txn 20's.
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            start_version: 10,
            commit_version: 0,
            ..Default::default()
        })
        .await;
    assert!(r.error.is_none());
    assert_eq!(h.e.lock_count(), 1);
    // A pessimistic lock "committed" is removed with no record.
    must_lock(&h, &["p"], "p", 30, 30).await;
    let r = h
        .resolve_req(kvrpcpb::ResolveLockRequest {
            txn_infos: vec![kvrpcpb::TxnInfo {
                txn: 30,
                status: 35,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
    assert!(r.error.is_none());
    assert!(h.e.key_state(b"p").is_none());
    assert!(h.e.key_state(b"d").unwrap().lock.is_some());
}

// §6.2 D.14
#[tokio::test]
async fn read_rules() {
    let h = H::new();
    h.must_put_ok("k", "old", 1, 2).await;
    h.must_prewrite_ok(puts(&[("k", "new")]), "k", 10).await;
    // committed_locks returns the lock's value.
    let ctx = kvrpcpb::Context {
        committed_locks: vec![10],
        ..Default::default()
    };
    assert_eq!(
        h.get_ctx("k", 20, ctx).await.unwrap(),
        Some(b"new".to_vec())
    );
    // resolved_locks bypasses.
    let ctx = kvrpcpb::Context {
        resolved_locks: vec![10],
        ..Default::default()
    };
    assert_eq!(
        h.get_ctx("k", 20, ctx).await.unwrap(),
        Some(b"old".to_vec())
    );
    // Lock and PessimisticLock never block.
    h.must_prewrite_ok(vec![mutation(Op::Lock, "l")], "l", 10)
        .await;
    must_lock(&h, &["pl"], "pl", 10, 10).await;
    h.must_get_none("l", 20).await;
    h.must_get_none("pl", 20).await;
    // Max-ts get reads through a normal primary but not through an async-commit primary.
    h.must_get_ok("k", u64::MAX, "old").await;
    let r = h
        .prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: puts(&[("ap", "1")]),
            primary_lock: "ap".into(),
            start_version: 10,
            use_async_commit: true,
            ..Default::default()
        })
        .await;
    assert!(r.errors.is_empty());
    h.must_get_err("ap", u64::MAX).await;
    // RCCheckTS: a lock and a newer version both conflict.
    let rcc = || kvrpcpb::Context {
        isolation_level: IsolationLevel::RcCheckTs as i32,
        ..Default::default()
    };
    let e = h.get_ctx("k", 20, rcc()).await.unwrap_err();
    assert_conflict(&e, Reason::RcCheckTs);
    h.must_put_ok("n", "1", 30, 40).await;
    let e = h.get_ctx("n", 35, rcc()).await.unwrap_err();
    assert_conflict(&e, Reason::RcCheckTs);
    assert_eq!(
        h.get_ctx("n", 45, rcc()).await.unwrap(),
        Some(b"1".to_vec())
    );
}

// §6.2 D.16
#[tokio::test]
async fn delete_range_and_destroy() {
    let h = H::new();
    h.must_put_ok("a", "1", 1, 2).await;
    h.must_put_ok("b", "1", 1, 2).await;
    h.must_prewrite_ok(puts(&[("c", "1")]), "c", 5).await;
    h.must_put_ok("d", "1", 1, 2).await;
    // notify_only changes nothing.
    let before = h.e.dump();
    let r = h
        .delete_range_req(kvrpcpb::DeleteRangeRequest {
            start_key: "a".into(),
            end_key: "z".into(),
            notify_only: true,
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty());
    assert_eq!(h.e.dump(), before);
    let r = h
        .delete_range_req(kvrpcpb::DeleteRangeRequest {
            start_key: "b".into(),
            end_key: "d".into(),
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty());
    let left: Vec<Vec<u8>> = h.e.dump().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, keys(&["a", "d"]));
    let r = h
        .destroy_req(kvrpcpb::UnsafeDestroyRangeRequest {
            start_key: "".into(),
            end_key: "".into(),
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty());
    assert!(h.e.dump().is_empty());
}

// §6.2 D.17
#[tokio::test]
async fn pipelined_flush_and_buffer_get() {
    let h = H::new();
    let flush = |muts, generation| kvrpcpb::FlushRequest {
        mutations: muts,
        primary_key: "a".into(),
        start_ts: 10,
        generation,
        lock_ttl: 1000,
        ..Default::default()
    };
    let r = h.flush_req(flush(puts(&[("a", "1"), ("b", "1")]), 2)).await;
    assert!(r.errors.is_empty());
    // A stale generation is skipped.
    let r = h.flush_req(flush(puts(&[("a", "stale")]), 1)).await;
    assert!(r.errors.is_empty());
    let r = h.flush_req(flush(vec![mutation(Op::Del, "b")], 3)).await;
    assert!(r.errors.is_empty());
    // Unsorted mutations are rejected.
    let r = h.flush_req(flush(puts(&[("z", "1"), ("y", "1")]), 4)).await;
    assert!(r.errors[0].abort.contains("not sorted"));
    // Another transaction's buffer is invisible.
    h.must_prewrite_ok(puts(&[("c", "x")]), "c", 20).await;
    let r = h
        .buffer_get_req(kvrpcpb::BufferBatchGetRequest {
            keys: keys(&["a", "b", "c", "d"]),
            version: 10,
            ..Default::default()
        })
        .await;
    let got: Vec<(Vec<u8>, Vec<u8>)> = r.pairs.into_iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(
        got,
        vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), Vec::new())]
    );
    // Heartbeat pushes a pipelined lock's min commit ts.
    let r = h
        .heartbeat_req(kvrpcpb::TxnHeartBeatRequest {
            primary_lock: "a".into(),
            start_version: 10,
            advise_lock_ttl: 2000,
            min_commit_ts: 99,
            ..Default::default()
        })
        .await;
    assert_eq!(r.lock_ttl, 2000);
    assert_eq!(h.e.key_state(b"a").unwrap().lock.unwrap().min_commit_ts, 99);
}

// §2.25 flashback (MAY; no client-go test)
#[tokio::test]
async fn flashback_restores_old_values() {
    let h = H::new();
    h.must_put_ok("a", "1", 1, 2).await;
    h.must_put_ok("a", "2", 3, 4).await;
    h.must_put_ok("b", "1", 3, 4).await;
    h.must_prewrite_ok(puts(&[("c", "x")]), "c", 5).await;
    let r = h
        .flashback_req(kvrpcpb::FlashbackToVersionRequest {
            version: 2,
            start_ts: 10,
            commit_ts: 11,
            ..Default::default()
        })
        .await;
    assert!(r.error.contains("FlashbackNotPrepared"));
    let r = h
        .prepare_flashback_req(kvrpcpb::PrepareFlashbackToVersionRequest {
            start_ts: 10,
            version: 2,
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty());
    assert_eq!(h.e.flashback_in_progress(0), Some(10));
    assert!(h.e.key_state(b"c").unwrap().lock.is_none());
    let r = h
        .flashback_req(kvrpcpb::FlashbackToVersionRequest {
            version: 2,
            start_ts: 10,
            commit_ts: 11,
            ..Default::default()
        })
        .await;
    assert!(r.error.is_empty(), "{r:?}");
    assert_eq!(h.e.flashback_in_progress(0), None);
    h.must_get_ok("a", 12, "1").await;
    h.must_get_none("b", 12).await;
    assert_eq!(h.e.lock_count(), 0);
}

// MC-2.23.2 MvccGetByStartTs
#[tokio::test]
async fn mvcc_get_by_start_ts_finds_first_key() {
    let h = H::new();
    h.must_put_ok("b", "1", 5, 6).await;
    h.must_put_ok("a", "1", 7, 8).await;
    let r = h
        .mvcc_by_start_ts_req(kvrpcpb::MvccGetByStartTsRequest {
            start_ts: 5,
            ..Default::default()
        })
        .await;
    assert_eq!(r.key, b"b");
    assert_eq!(r.info.unwrap().writes[0].commit_ts, 6);
    let r = h
        .mvcc_by_start_ts_req(kvrpcpb::MvccGetByStartTsRequest {
            start_ts: 99,
            ..Default::default()
        })
        .await;
    assert!(r.info.is_none() && r.error.is_empty());
}

#[tokio::test]
async fn unsupported_command_is_internal_error() {
    let h = H::new();
    let r =
        h.e.execute(
            tikv_layers::Command::RawGet(kvrpcpb::RawGetRequest::default()),
            &h.scope,
        )
        .await;
    assert!(r.is_err());
}

// Malformed ranges never panic (inverted bounds answer empty results or an error string).
#[tokio::test]
async fn inverted_ranges_do_not_panic() {
    let h = H::new();
    h.must_put_ok("m", "1", 1, 2).await;
    h.must_prewrite_ok(puts(&[("n", "1")]), "n", 3).await;
    assert!(h.scan("z", "a", 10, 10, false, si()).await.is_empty());
    assert!(h.scan("a", "z", 10, 10, true, si()).await.is_empty());
    assert!(h.scan_locks("z", "a", 10).await.is_empty());
    let r = h
        .delete_range_req(kvrpcpb::DeleteRangeRequest {
            start_key: "z".into(),
            end_key: "a".into(),
            ..Default::default()
        })
        .await;
    assert!(!r.error.is_empty());
    let narrow = H {
        e: h.e.clone(),
        scope: RegionScope {
            region_id: 2,
            start_key: b"m".to_vec(),
            end_key: b"n".to_vec(),
        },
    };
    // A request bound outside the region is clamped.
    let pairs = narrow.scan("a", "", 10, 10, false, si()).await;
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].key, b"m");
    assert!(narrow.scan_locks("", "", 10).await.is_empty());
    // Garbage enum values in requests are rejected, not panicked on.
    let mut bad = put("q", "1");
    bad.op = 99;
    let errs = h.prewrite(vec![bad], "q", 20, 0).await;
    assert!(!errs[0].abort.is_empty());
}
