//! Lock waiting (§6.2 D.11): the Immediate and ServerWait profiles under paused time.

use std::time::Duration;

use tikv_proto::kvrpcpb::{
    self, PessimisticLockKeyResultType, PessimisticLockWakeUpMode, write_conflict::Reason,
};

use super::*;
use crate::mock::mvcc::LockWaitProfile;

fn waiting(
    h: &H,
    ks: &[&str],
    primary: &str,
    start: u64,
    timeout_ms: i64,
) -> kvrpcpb::PessimisticLockRequest {
    let mut r = h.lock_request(ks, primary, start, start);
    r.wait_timeout = timeout_ms;
    r
}

// §6.2 D.11 (Immediate half)
#[tokio::test(start_paused = true)]
async fn lock_waiting_immediate_profile() {
    let h = H::new();
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let t0 = tokio::time::Instant::now();
    let r = h.lock_req(waiting(&h, &["k"], "k", 20, 1000)).await;
    assert!(r.errors[0].locked.is_some());
    assert_eq!(t0.elapsed(), Duration::from_millis(5));
    assert_eq!(h.e.with_detector(|d| d.edges_of(20).len()), 1);
    // No-wait answers at once (and still consults the detector).
    let t1 = tokio::time::Instant::now();
    let r = h.lock_req(h.lock_request(&["k"], "k", 30, 30)).await;
    assert!(r.errors[0].locked.is_some());
    assert_eq!(t1.elapsed(), Duration::ZERO);
}

fn server_wait() -> H {
    let h = H::new();
    h.e.set_lock_wait_profile(LockWaitProfile::ServerWait);
    h.e.set_max_wait(Duration::from_millis(300));
    h
}

// §6.2 D.11 (ServerWait: timeout)
#[tokio::test(start_paused = true)]
async fn lock_waiting_server_wait_timeout() {
    let h = server_wait();
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let t0 = tokio::time::Instant::now();
    let r = h.lock_req(waiting(&h, &["k"], "k", 20, 100)).await;
    assert!(r.errors[0].locked.is_some());
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    let t1 = tokio::time::Instant::now();
    let r = h.lock_req(waiting(&h, &["k"], "k", 20, 0)).await;
    assert!(r.errors[0].locked.is_some());
    assert_eq!(t1.elapsed(), Duration::from_millis(300));
    assert_eq!(h.e.waiter_count(), 0);
    assert!(h.e.wait_for_entries().is_empty());
}

async fn wake_by<F, Fut>(release: F, commit_expected: bool)
where
    F: FnOnce(std::sync::Arc<H>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let h = std::sync::Arc::new(server_wait());
    h.e.set_max_wait(Duration::from_millis(10_000));
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let h2 = h.clone();
    let waiter =
        tokio::spawn(async move { h2.lock_req(waiting(&h2, &["k"], "k", 20, 5000)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.e.waiter_count(), 1);
    release(h.clone()).await;
    let r = waiter.await.unwrap();
    assert_conflict(&r.errors[0], Reason::PessimisticRetry);
    let c = r.errors[0].conflict.clone().unwrap();
    assert_eq!(c.conflict_ts, 10);
    if commit_expected {
        assert_eq!(c.conflict_commit_ts, 15);
    } else {
        assert!(c.conflict_commit_ts > 0);
    }
    assert_eq!(h.e.waiter_count(), 0);
}

// §6.2 D.11 (ServerWait: every release cause wakes the waiter with a write conflict)
#[tokio::test(start_paused = true)]
async fn lock_waiting_server_wait_wakeups() {
    wake_by(
        |h| async move {
            h.must_prewrite_ok_pessimistic("k", 10).await;
            h.must_commit_ok(&["k"], 10, 15).await;
        },
        true,
    )
    .await;
    wake_by(
        |h| async move { assert!(h.rollback(&["k"], 10).await.is_none()) },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            h.pessimistic_rollback_req(kvrpcpb::PessimisticRollbackRequest {
                start_version: 10,
                for_update_ts: 10,
                keys: keys(&["k"]),
                ..Default::default()
            })
            .await;
        },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            let r = h.cleanup("k", 10, 0).await;
            assert!(r.error.is_none());
        },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            let r = h.check_txn_status("k", 10, 0, u64::MAX, false).await;
            assert!(r.error.is_none());
        },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            h.resolve_req(kvrpcpb::ResolveLockRequest {
                start_version: 10,
                ..Default::default()
            })
            .await;
        },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            h.check_secondary_req(kvrpcpb::CheckSecondaryLocksRequest {
                keys: keys(&["k"]),
                start_version: 10,
                ..Default::default()
            })
            .await;
        },
        false,
    )
    .await;
    wake_by(
        |h| async move {
            h.delete_range_req(kvrpcpb::DeleteRangeRequest {
                start_key: "a".into(),
                end_key: "z".into(),
                ..Default::default()
            })
            .await;
        },
        false,
    )
    .await;
}

impl H {
    async fn must_prewrite_ok_pessimistic(&self, key: &str, start: u64) {
        let r = self
            .prewrite_req(kvrpcpb::PrewriteRequest {
                mutations: puts(&[(key, "v")]),
                primary_lock: key.into(),
                start_version: start,
                for_update_ts: start,
                pessimistic_actions: vec![
                    kvrpcpb::prewrite_request::PessimisticAction::DoPessimisticCheck as i32,
                ],
                ..Default::default()
            })
            .await;
        assert!(r.errors.is_empty(), "{r:?}");
    }
}

// §6.2 D.11 (ServerWait: ForceLock wake-up acquires the lock)
#[tokio::test(start_paused = true)]
async fn lock_waiting_force_lock_wakeup_acquires() {
    let h = std::sync::Arc::new(server_wait());
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let h2 = h.clone();
    let waiter = tokio::spawn(async move {
        let mut r = waiting(&h2, &["k"], "k", 20, 1000);
        r.wake_up_mode = PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
        r.return_values = true;
        h2.lock_req(r).await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.must_prewrite_ok_pessimistic("k", 10).await;
    h.must_commit_ok(&["k"], 10, 25).await;
    let r = waiter.await.unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(
        r.results[0].r#type,
        PessimisticLockKeyResultType::LockResultLockedWithConflict as i32
    );
    assert_eq!(r.results[0].value, b"v");
    let l = h.e.key_state(b"k").unwrap().lock.unwrap();
    assert_eq!((l.start_ts, l.for_update_ts), (20, 25));
}

// §6.2 D.11 (ServerWait: a dropped request leaves no waiter and no edge)
#[tokio::test(start_paused = true)]
async fn lock_waiting_dropped_request_leaves_nothing() {
    let h = std::sync::Arc::new(server_wait());
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let h2 = h.clone();
    let waiter =
        tokio::spawn(async move { h2.lock_req(waiting(&h2, &["k"], "k", 20, 1000)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.e.waiter_count(), 1);
    assert_eq!(h.e.wait_for_entries().len(), 1);
    let info = h.e.lock_wait_info();
    assert_eq!(
        (info[0].txn, info[0].wait_for_txn, info[0].key.as_slice()),
        (20, 10, &b"k"[..])
    );
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(h.e.waiter_count(), 0);
    assert!(h.e.lock_wait_info().is_empty());
    assert!(h.e.wait_for_entries().is_empty());
}

// §6.2 D.11 (ServerWait: is_first_lock skips detection)
#[tokio::test(start_paused = true)]
async fn lock_waiting_first_lock_skips_detection() {
    let h = std::sync::Arc::new(server_wait());
    assert!(
        h.lock_req(h.lock_request(&["k"], "k", 10, 10))
            .await
            .errors
            .is_empty()
    );
    let h2 = h.clone();
    let waiter = tokio::spawn(async move {
        let mut r = waiting(&h2, &["k"], "k", 20, 1000);
        r.is_first_lock = true;
        h2.lock_req(r).await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.e.waiter_count(), 1);
    assert!(h.e.wait_for_entries().is_empty());
    let r = waiter.await.unwrap();
    assert!(r.errors[0].locked.is_some());
}

// §6.2 D.11 + MC-4.3 (ServerWait: deadlock among waiters, TestDeadlockReportWaitChain shape)
#[tokio::test(start_paused = true)]
async fn lock_waiting_deadlock_reports_wait_chain() {
    let h = std::sync::Arc::new(server_wait());
    h.e.set_max_wait(Duration::from_millis(10_000));
    assert!(
        h.lock_req(h.lock_request(&["a"], "a", 1, 1))
            .await
            .errors
            .is_empty()
    );
    assert!(
        h.lock_req(h.lock_request(&["b"], "b", 2, 2))
            .await
            .errors
            .is_empty()
    );
    let h2 = h.clone();
    let w1 = tokio::spawn(async move { h2.lock_req(waiting(&h2, &["b"], "a", 1, 5000)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let r = h.lock_req(waiting(&h, &["a"], "b", 2, 5000)).await;
    let d = r.errors[0].deadlock.clone().expect("deadlock");
    let chain: Vec<(u64, u64)> = d
        .wait_chain
        .iter()
        .map(|e| (e.txn, e.wait_for_txn))
        .collect();
    assert_eq!(chain, vec![(1, 2), (2, 1)]);
    // Txn 2 gives up: the waiter of txn 1 wakes with a write conflict.
    assert!(h.rollback(&["b"], 2).await.is_none());
    let r = w1.await.unwrap();
    assert_conflict(&r.errors[0], Reason::PessimisticRetry);
}
