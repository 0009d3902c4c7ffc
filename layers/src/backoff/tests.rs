//! Tests of the backoff module: client-go's `config/retry/backoff_test.go` ports, unit
//! tests of every piece, and property tests of the delay schedules and the budget.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tikv_proto::{errorpb, kvrpcpb, metapb};
use tokio::time::Instant;
use tower_layer::Layer as _;
use tower_service::Service as _;

use super::schedule::{BackoffPolicy, Schedule};
use super::*;
use crate::error::{Error, ErrorDetail};
use crate::request::RpcRequest;

fn reason(s: &str) -> Error {
    Error::new(ErrorDetail::Internal(s.to_owned()))
}

/// Whether two details are the same variant with the same payload.
fn same_detail(a: &ErrorDetail, b: &ErrorDetail) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== client-go ports =====

// client-go: T-CONFIG-005 TestBackoffWithMax
#[tokio::test(start_paused = true)]
async fn backoff_with_max() {
    let mut b = Backoffer::with_vars(2000, Variables::default());
    let start = Instant::now();
    b.backoff_with_max_sleep_txn_lock_fast(5, reason("test"))
        .await
        .expect("within budget");
    assert_eq!(b.total_sleep_ms(), 5);
    assert_eq!(start.elapsed(), ms(5));
}

// client-go: T-CONFIG-006 TestBackoffErrorType
#[tokio::test(start_paused = true)]
async fn backoff_error_type() {
    for seed in 0..16 {
        // The weight doubles the budget to 1600 ms.
        let mut b = Backoffer::with_vars(800, Variables::default()).with_rng_seed(seed);
        assert_eq!(b.max_sleep_ms(), 1600);
        b.backoff(BackoffKind::RegionMiss, reason("region miss")) // 2 ms
            .await
            .expect("ok");
        for _ in 0..2 {
            // 2 + 4 ms
            b.backoff(
                BackoffKind::RegionNotInitialized,
                reason("region not initialized"),
            )
            .await
            .expect("ok");
        }
        // Below 100 ms.
        b.backoff(
            BackoffKind::RegionRecoveryInProgress,
            reason("recovery in progress"),
        )
        .await
        .expect("ok");
        // Server-busy sleep is not counted against the budget.
        b.backoff(BackoffKind::TiKVServerBusy, reason("server is busy"))
            .await
            .expect("ok");
        assert!(b.excluded_sleep_ms() >= 1000);
        // Below 1000 ms.
        b.backoff(BackoffKind::IsWitness, reason("peer is witness"))
            .await
            .expect("ok");
        let mut failed = None;
        for _ in 0..15 {
            if let Err(e) = b
                .backoff(BackoffKind::TxnNotFound, reason("txn not found"))
                .await
            {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("the budget must run out within 15 txnNotFound backoffs");
        // The error is the one of the kind that slept the longest, busy excluded.
        let sleeps = b.backoff_sleep_ms();
        let (longest, _) = BackoffKind::ALL
            .iter()
            .filter(|k| !k.is_excluded())
            .map(|k| (*k, sleeps.get(k.name()).copied().unwrap_or(0)))
            .max_by_key(|(_, ms)| *ms)
            .expect("kinds");
        assert!(
            same_detail(err.detail(), &longest.error()),
            "seed {seed}: {err:?} vs {longest}"
        );
        assert!(matches!(
            longest,
            BackoffKind::TxnNotFound | BackoffKind::IsWitness
        ));
        // The reason is kept as the source.
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("internal error: txn not found")
        );
    }
}

/// The bookkeeping of T-CONFIG-007/008: three `regionNotInitialized` backoffs exhaust an
/// 8 ms budget.
async fn exhausted_by_region_not_initialized() -> Backoffer {
    let mut b = Backoffer::with_vars(4, Variables::default());
    for _ in 0..3 {
        b.backoff(
            BackoffKind::RegionNotInitialized,
            reason("region not initialized"),
        )
        .await
        .expect("ok");
    }
    assert_eq!(b.total_sleep_ms(), 2 + 4 + 8);
    b
}

// client-go: T-CONFIG-007 TestBackoffDeepCopy
#[tokio::test(start_paused = true)]
async fn backoff_deep_copy() {
    let b = exhausted_by_region_not_initialized().await;
    let forked = b.fork();
    assert!(b.same_bookkeeping(&forked));
    let cloned = b.clone();
    assert!(b.same_bookkeeping(&cloned));
    for mut copy in [forked, cloned] {
        let err = copy
            .backoff(BackoffKind::TiKVRpc, reason("tikv rpc"))
            .await
            .expect_err("budget exhausted");
        assert!(matches!(err.detail(), ErrorDetail::RegionNotInitialized));
    }
}

// client-go: T-CONFIG-008 TestBackoffUpdateUsingFork
#[tokio::test(start_paused = true)]
async fn backoff_update_using_fork() {
    let mut b = exhausted_by_region_not_initialized().await;
    let mut forked = b.fork();
    let _ = forked
        .backoff(BackoffKind::TiKVRpc, reason("tikv rpc"))
        .await;
    let clone_of_forked = forked.clone();
    b.update_using_forked(&forked);
    assert!(b.same_bookkeeping(&clone_of_forked));
    assert!(!b.has_parent());
}

// client-go: T-CONFIG-009 TestBackoffWithMaxExcludedExceed
#[tokio::test(start_paused = true)]
async fn backoff_with_max_excluded_exceed() {
    let mut b = Backoffer::with_vars(1, Variables::default());
    b.set_excluded_limit(1);
    b.backoff(BackoffKind::TiKVServerBusy, reason("server is busy"))
        .await
        .expect("first busy backoff sleeps");
    // The excluded sleep passed both its limit and the budget: the next backoff fails.
    let err = b
        .backoff(BackoffKind::TiKVServerBusy, reason("server is busy"))
        .await
        .expect_err("excluded limit exceeded");
    assert!(b.excluded_sleep_ms() > b.max_sleep_ms());
    // No non-excluded kind slept, so the reason itself is returned.
    assert_eq!(err.to_string(), "internal error: server is busy");
}

fn region_errors_that_back_off() -> Vec<errorpb::Error> {
    vec![
        // The pseudo region error.
        errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch::default()),
            ..Default::default()
        },
        errorpb::Error {
            not_leader: Some(errorpb::NotLeader::default()),
            ..Default::default()
        },
        errorpb::Error {
            server_is_busy: Some(errorpb::ServerIsBusy::default()),
            ..Default::default()
        },
        errorpb::Error {
            max_timestamp_not_synced: Some(errorpb::MaxTimestampNotSynced::default()),
            ..Default::default()
        },
    ]
}

fn real_epoch_not_match() -> errorpb::Error {
    errorpb::Error {
        epoch_not_match: Some(errorpb::EpochNotMatch {
            current_regions: vec![metapb::Region {
                id: 1,
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

// client-go: T-CONFIG-010 TestMayBackoffForRegionError
#[tokio::test(start_paused = true)]
async fn may_backoff_for_region_error_cases() {
    // Retried at once, without sleeping.
    let region_err = real_epoch_not_match();
    let b = SharedBackoffer::from(Backoffer::with_vars(1, Variables::default()));
    may_backoff_for_region_error(&region_err, &b)
        .await
        .expect("no backoff");
    assert_eq!(b.total_sleep_ms(), 0);

    for region_err in region_errors_that_back_off() {
        // The backoff succeeds.
        let token = tokio_util::sync::CancellationToken::new();
        let b = SharedBackoffer::from(
            Backoffer::with_vars(1, Variables::default()).with_cancel_token(token.clone()),
        );
        may_backoff_for_region_error(&region_err, &b)
            .await
            .expect("backs off");
        assert!(b.total_sleep_ms() > 0, "{region_err:?}");
        assert_eq!(b.times_of(BackoffKind::RegionMiss), 1);

        // The backoff fails with the region error itself.
        token.cancel();
        let b = SharedBackoffer::from(
            Backoffer::with_vars(1, Variables::default()).with_cancel_token(token.clone()),
        );
        let err = may_backoff_for_region_error(&region_err, &b)
            .await
            .expect_err("canceled");
        assert_eq!(err.region_error(), Some(&region_err));
    }
}

// client-go: T-CONFIG-011 TestBackoffErrorsKeep
#[tokio::test(start_paused = true)]
async fn backoff_errors_keep() {
    let mut b = Backoffer::with_vars(1_000_000, Variables::default());
    assert_eq!(b.errors_num(), 0);
    assert!(b.latest_errors().is_empty());
    let cfg = BackoffConfig::new("foo", 1, 2, Jitter::Equal, ErrorDetail::TiKVServerTimeout);
    let mut errs = Vec::new();
    for i in 0..32 {
        let cnt = i + 1;
        errs.push(format!("mockErr-{i}"));
        b.backoff(&cfg, reason(&errs[i]))
            .await
            .unwrap_or_else(|e| panic!("count {cnt}: {e}"));
        // Every error is counted.
        assert_eq!(b.errors_num(), errs.len());
        // At most MAX_RECORD_BACKOFF_ERR_COUNT are kept: the last ones, in order.
        let kept = b.latest_errors();
        assert_eq!(kept.len(), cnt.min(MAX_RECORD_BACKOFF_ERR_COUNT));
        let expected: Vec<String> = errs[cnt.saturating_sub(MAX_RECORD_BACKOFF_ERR_COUNT)..]
            .iter()
            .map(|e| format!("internal error: {e}"))
            .collect();
        let got: Vec<String> = kept.iter().map(|r| r.reason().to_owned()).collect();
        assert_eq!(got, expected);
        // Their times ascend and are near now.
        assert!(kept.windows(2).all(|w| w[0].time() <= w[1].time()));
        let now = SystemTime::now();
        for r in [&kept[0], &kept[kept.len() - 1]] {
            let delta = now
                .duration_since(r.time())
                .unwrap_or_else(|e| e.duration());
            assert!(delta < Duration::from_secs(5));
        }
    }
}

// client-go: T-CONFIG-012 TestBackoffError
#[test]
fn backoff_error_renders_reason_and_rfc3339_time() {
    let err = RecordedError::new(
        "mockErr",
        SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 4 + 1234),
    )
    .with_utc_offset(3 * 3600);
    assert_eq!(err.to_string(), "mockErr at 1970-01-01T07:20:34+03:00");
}

// ===== kinds and configurations =====

#[test]
fn every_kind_matches_the_client_go_table() {
    use BackoffKind as K;
    use ErrorDetail as D;
    use Jitter as J;
    let table: &[(K, &str, u64, u64, J, D)] = &[
        (
            K::TiKVRpc,
            "tikvRPC",
            100,
            2000,
            J::Equal,
            D::TiKVServerTimeout,
        ),
        (
            K::TiFlashRpc,
            "tiflashRPC",
            100,
            2000,
            J::Equal,
            D::TiFlashServerTimeout,
        ),
        (
            K::TxnLock,
            "txnLock",
            100,
            3000,
            J::Equal,
            D::ResolveLockTimeout,
        ),
        (
            K::PdRpc,
            "pdRPC",
            500,
            3000,
            J::Equal,
            D::PdServerTimeout(String::new()),
        ),
        (
            K::RegionMiss,
            "regionMiss",
            2,
            500,
            J::None,
            D::RegionUnavailable,
        ),
        (
            K::RegionScheduling,
            "regionScheduling",
            2,
            500,
            J::None,
            D::RegionUnavailable,
        ),
        (
            K::TiKVServerBusy,
            "tikvServerBusy",
            2000,
            10000,
            J::Equal,
            D::TiKVServerBusy,
        ),
        (
            K::TiKVDiskFull,
            "tikvDiskFull",
            500,
            5000,
            J::None,
            D::TiKVDiskFull,
        ),
        (
            K::RegionRecoveryInProgress,
            "regionRecoveryInProgress",
            100,
            10000,
            J::Equal,
            D::RegionRecoveryInProgress,
        ),
        (
            K::TiFlashServerBusy,
            "tiflashServerBusy",
            2000,
            10000,
            J::Equal,
            D::TiFlashServerBusy,
        ),
        (
            K::TxnNotFound,
            "txnNotFound",
            2,
            500,
            J::None,
            D::ResolveLockTimeout,
        ),
        (
            K::StaleCommand,
            "staleCommand",
            2,
            1000,
            J::None,
            D::TiKVStaleCommand,
        ),
        (
            K::MaxTsNotSynced,
            "maxTsNotSynced",
            2,
            500,
            J::None,
            D::TiKVMaxTimestampNotSynced,
        ),
        (
            K::CommitTsLag,
            "commitTSLag",
            2,
            500,
            J::None,
            D::CommitTsLag,
        ),
        (
            K::RegionNotInitialized,
            "regionNotInitialized",
            2,
            1000,
            J::None,
            D::RegionNotInitialized,
        ),
        (
            K::IsWitness,
            "isWitness",
            1000,
            10000,
            J::Equal,
            D::IsWitness,
        ),
        (
            K::TxnLockFast,
            "txnLockFast",
            2,
            3000,
            J::Equal,
            D::ResolveLockTimeout,
        ),
    ];
    assert_eq!(table.len(), BackoffKind::ALL.len());
    for ((kind, name, base, cap, jitter, err), listed) in table.iter().zip(BackoffKind::ALL) {
        assert_eq!(kind, listed);
        assert_eq!(kind.name(), *name);
        assert_eq!(kind.to_string(), *name);
        assert_eq!(kind.base_ms(), *base);
        assert_eq!(kind.cap_ms(), *cap);
        assert_eq!(kind.jitter(), *jitter);
        assert!(same_detail(&kind.error(), err), "{kind}");
        assert_eq!(kind.is_excluded(), *kind == K::TiKVServerBusy);
        let cfg = BackoffConfig::from(*kind);
        assert_eq!(cfg.name(), *name);
        assert_eq!(cfg.to_string(), *name);
        assert_eq!(
            (cfg.base_ms(), cfg.cap_ms(), cfg.jitter()),
            (*base, *cap, *jitter)
        );
        assert!(same_detail(cfg.error(), err));
    }
}

#[test]
fn custom_config_setters() {
    let mut cfg = BackoffConfig::new("mine", 7, 70, Jitter::Full, ErrorDetail::Unknown);
    assert_eq!(cfg.name(), "mine");
    assert_eq!(BackoffConfig::from(&cfg).name(), "mine");
    cfg.set_error(ErrorDetail::TiKVDiskFull);
    assert!(matches!(cfg.error(), ErrorDetail::TiKVDiskFull));
    cfg.set_schedule(3, 30, Jitter::Decorrelated);
    assert_eq!(
        (cfg.base_ms(), cfg.cap_ms(), cfg.jitter()),
        (3, 30, Jitter::Decorrelated)
    );
    let string_named = BackoffConfig::new(
        String::from("owned"),
        1,
        2,
        Jitter::None,
        ErrorDetail::Unknown,
    );
    assert_eq!(string_named.name(), "owned");
}

#[test]
fn variables_defaults_and_kill_flag() {
    let v = Variables::default();
    assert_eq!(v.backoff_lock_fast, DEFAULT_BACKOFF_LOCK_FAST);
    assert_eq!(v.backoff_weight, DEFAULT_BACKOFF_WEIGHT);
    assert_eq!((DEFAULT_BACKOFF_LOCK_FAST, DEFAULT_BACKOFF_WEIGHT), (10, 2));
    assert_eq!(v.killed_signal(), 0);
    let flag = Arc::new(AtomicU32::new(0));
    let v = Variables::new(Some(flag.clone()))
        .backoff_lock_fast(20)
        .backoff_weight(3);
    assert_eq!((v.backoff_lock_fast, v.backoff_weight), (20, 3));
    flag.store(9, Ordering::SeqCst);
    assert_eq!(v.killed_signal(), 9);
}

// ===== schedules =====

fn sequence(s: &mut Schedule, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            s.next_backoff()
                .map(|d| d.as_millis() as u64)
                .expect("never gives up")
        })
        .collect()
}

#[test]
fn no_jitter_doubles_up_to_the_cap() {
    let k = BackoffKind::RegionMiss;
    let mut s = Schedule::seeded(k.base_ms(), k.cap_ms(), k.jitter(), 1);
    assert_eq!(
        sequence(&mut s, 11),
        vec![2, 4, 8, 16, 32, 64, 128, 256, 500, 500, 500]
    );
    assert_eq!(s.attempts(), 11);
    s.reset();
    assert_eq!(s.attempts(), 0);
    assert_eq!(sequence(&mut s, 2), vec![2, 4]);
}

#[test]
fn equal_jitter_ranges() {
    for seed in 0..32 {
        let k = BackoffKind::TiKVRpc;
        let mut s = Schedule::seeded(k.base_ms(), k.cap_ms(), k.jitter(), seed);
        let ranges = [
            (50, 100),
            (100, 200),
            (200, 400),
            (400, 800),
            (800, 1600),
            (1000, 2000),
            (1000, 2000),
        ];
        for (got, (lo, hi)) in sequence(&mut s, ranges.len()).into_iter().zip(ranges) {
            assert!((lo..hi).contains(&got), "{got} not in [{lo},{hi})");
        }
        let k = BackoffKind::TiKVServerBusy;
        let mut s = Schedule::seeded(k.base_ms(), k.cap_ms(), k.jitter(), seed);
        let ranges = [(1000, 2000), (2000, 4000), (4000, 8000), (5000, 10000)];
        for (got, (lo, hi)) in sequence(&mut s, ranges.len()).into_iter().zip(ranges) {
            assert!((lo..hi).contains(&got), "{got} not in [{lo},{hi})");
        }
    }
}

#[test]
fn full_and_decorrelated_jitter_ranges() {
    for seed in 0..32 {
        let mut s = Schedule::seeded(10, 1000, Jitter::Full, seed);
        for (i, got) in sequence(&mut s, 10).into_iter().enumerate() {
            let expo = (10u64 << i).min(1000);
            assert!(got < expo);
        }
        let mut s = Schedule::seeded(10, 1000, Jitter::Decorrelated, seed);
        let mut last = 10;
        for got in sequence(&mut s, 20) {
            assert!((10..=1000).contains(&got));
            assert!(got < 10 + (3 * last - 10).max(1));
            last = got;
        }
    }
}

#[test]
fn schedule_edge_cases() {
    // A base below 2 is raised to 2.
    let s = Schedule::seeded(0, 100, Jitter::None, 0);
    assert_eq!(s.base(), 2);
    // Huge exponents saturate at the cap.
    assert_eq!(s.expo(100), 100);
    assert_eq!(s.expo(63), 100);
    let s = Schedule::seeded(2, u64::MAX, Jitter::None, 0);
    assert_eq!(s.expo(70), u64::MAX);
    // Empty random ranges do not panic.
    let mut s = Schedule::seeded(2, 0, Jitter::Full, 0);
    assert_eq!(sequence(&mut s, 2), vec![0, 0]);
    let mut s = Schedule::seeded(2, 1, Jitter::Equal, 0);
    assert_eq!(sequence(&mut s, 2), vec![0, 0]);
    let mut s = Schedule::seeded(30, 1, Jitter::Decorrelated, 0);
    assert_eq!(sequence(&mut s, 3), vec![1, 1, 1]);
}

// ===== the backoffer =====

#[test]
fn constructors_and_weight() {
    let b = Backoffer::new(20_000);
    assert_eq!(b.max_sleep_ms(), 20_000, "NewBackoffer applies no weight");
    let b = Backoffer::with_vars(20_000, Variables::default());
    assert_eq!(b.max_sleep_ms(), 40_000);
    let b = Backoffer::with_vars(0, Variables::default());
    assert_eq!(b.max_sleep_ms(), 0);
    // The product must stay within i32::MAX.
    let big = i32::MAX as u64 / 2 + 1;
    assert_eq!(
        Backoffer::with_vars(big, Variables::default()).max_sleep_ms(),
        big
    );
    assert_eq!(
        Backoffer::with_vars(big - 1, Variables::default()).max_sleep_ms(),
        (big - 1) * 2
    );
    // A zero weight leaves the budget alone.
    assert_eq!(
        Backoffer::with_vars(5, Variables::default().backoff_weight(0)).max_sleep_ms(),
        5
    );
    let b = Backoffer::default();
    assert_eq!(b.max_sleep_ms(), 0);
    assert!(!b.is_noop());
    assert_eq!(b.vars().backoff_weight, 2);
    assert!(!b.cancel_token().is_cancelled());
    assert!(Backoffer::noop().is_noop());
}

#[tokio::test(start_paused = true)]
async fn noop_returns_the_reason_without_sleeping() {
    let mut b = Backoffer::noop();
    let start = Instant::now();
    let err = b
        .backoff(BackoffKind::TiKVRpc, reason("boom"))
        .await
        .expect_err("noop");
    assert_eq!(err.to_string(), "internal error: boom");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(b.total_backoff_times(), 0);
    assert_eq!(b.errors_num(), 0);
}

#[tokio::test(start_paused = true)]
async fn unlimited_budget_never_fails() {
    let mut b = Backoffer::new(0);
    for _ in 0..50 {
        b.backoff(BackoffKind::TiKVDiskFull, reason("full"))
            .await
            .expect("unlimited");
    }
    assert_eq!(b.times_of(BackoffKind::TiKVDiskFull), 50);
}

#[tokio::test(start_paused = true)]
async fn sleeps_are_real_and_counted() {
    let mut b = Backoffer::with_vars(10_000, Variables::default());
    let start = Instant::now();
    for _ in 0..4 {
        b.backoff(BackoffKind::RegionMiss, reason("miss"))
            .await
            .expect("ok");
    }
    b.backoff(BackoffKind::StaleCommand, reason("stale"))
        .await
        .expect("ok");
    assert_eq!(start.elapsed(), ms(2 + 4 + 8 + 16 + 2));
    assert_eq!(b.total_sleep_ms(), 32);
    assert_eq!(b.sleep_ms_of(BackoffKind::RegionMiss), 30);
    assert_eq!(b.times_of(BackoffKind::RegionMiss), 4);
    assert_eq!(b.times_of(BackoffKind::TiKVRpc), 0);
    assert_eq!(b.sleep_ms_of(BackoffKind::TiKVRpc), 0);
    assert_eq!(b.total_backoff_times(), 5);
    assert_eq!(b.errors_num(), 5);
    assert_eq!(
        b.backoff_times().into_iter().collect::<Vec<_>>(),
        vec![("regionMiss".to_owned(), 4), ("staleCommand".to_owned(), 1)]
    );
    assert_eq!(
        b.backoff_sleep_ms().into_iter().collect::<Vec<_>>(),
        vec![
            ("regionMiss".to_owned(), 30),
            ("staleCommand".to_owned(), 2)
        ]
    );
    assert_eq!(
        b.types(),
        vec![
            "regionMiss",
            "regionMiss",
            "regionMiss",
            "regionMiss",
            "staleCommand"
        ]
    );
    assert_eq!(
        b.to_string(),
        " backoff(32ms [regionMiss regionMiss regionMiss regionMiss staleCommand])"
    );
    assert_eq!(Backoffer::new(1).to_string(), "");
}

#[tokio::test(start_paused = true)]
async fn per_call_max_caps_the_sleep_but_not_the_progression() {
    let mut b = Backoffer::new(0);
    for _ in 0..3 {
        b.backoff_with_max_sleep(BackoffKind::RegionMiss, 3, reason("miss"))
            .await
            .expect("ok");
    }
    // 2, min(4,3), min(8,3)
    assert_eq!(b.total_sleep_ms(), 8);
    // The progression advanced by the uncapped delays: next is 16.
    let start = Instant::now();
    b.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    assert_eq!(start.elapsed(), ms(16));
    // A zero max never sleeps.
    b.backoff_with_max_sleep(BackoffKind::TiKVRpc, 0, reason("rpc"))
        .await
        .expect("ok");
    assert_eq!(b.sleep_ms_of(BackoffKind::TiKVRpc), 0);
    assert_eq!(b.times_of(BackoffKind::TiKVRpc), 1);
}

#[tokio::test(start_paused = true)]
async fn txn_lock_fast_takes_its_base_from_the_vars() {
    let vars = Variables::default().backoff_lock_fast(40);
    let mut b = Backoffer::with_vars(0, vars).with_rng_seed(3);
    b.backoff(BackoffKind::TxnLockFast, reason("lock"))
        .await
        .expect("ok");
    // Equal jitter of a 40 ms base: [20, 40).
    assert!((20..40).contains(&b.total_sleep_ms()));
    // A custom configuration with that name (any case) uses it too.
    let cfg = BackoffConfig::new("TXNLOCKFAST", 2, 3000, Jitter::None, ErrorDetail::Unknown);
    let mut b = Backoffer::with_vars(0, Variables::default().backoff_lock_fast(40));
    b.backoff(cfg, reason("lock")).await.expect("ok");
    assert_eq!(b.total_sleep_ms(), 40);
}

#[tokio::test(start_paused = true)]
async fn budget_is_checked_before_sleeping() {
    // A 10 ms budget: 2 + 4 + 8 = 14 overshoots, then the next call fails.
    let mut b = Backoffer::new(10);
    for _ in 0..3 {
        b.backoff(BackoffKind::RegionScheduling, reason("sched"))
            .await
            .expect("under budget before the sleep");
    }
    assert_eq!(b.total_sleep_ms(), 14);
    let start = Instant::now();
    let err = b
        .backoff(BackoffKind::TiKVRpc, reason("rpc"))
        .await
        .expect_err("exhausted");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(matches!(err.detail(), ErrorDetail::RegionUnavailable));
    assert_eq!(err.kind(), crate::ErrorKind::Region);
    // The failing call recorded nothing.
    assert_eq!(b.errors_num(), 3);
    assert_eq!(b.times_of(BackoffKind::TiKVRpc), 0);
}

#[tokio::test(start_paused = true)]
async fn pd_rpc_dominating_reports_pd_server_timeout() {
    let mut b = Backoffer::new(1).with_rng_seed(9);
    b.backoff(BackoffKind::PdRpc, reason("pd"))
        .await
        .expect("ok");
    b.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect_err("exhausted");
    let err = b
        .backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect_err("exhausted");
    assert!(matches!(err.detail(), ErrorDetail::PdServerTimeout(_)));
}

#[tokio::test(start_paused = true)]
async fn busy_sleep_does_not_consume_the_budget() {
    let mut b = Backoffer::new(100).with_rng_seed(1);
    for _ in 0..5 {
        b.backoff(BackoffKind::TiKVServerBusy, reason("busy"))
            .await
            .expect("excluded");
    }
    assert_eq!(b.total_sleep_ms(), b.excluded_sleep_ms());
    assert!(b.excluded_sleep_ms() >= 1000 + 2000 + 4000 + 5000 + 5000);
    // The normal budget is untouched.
    b.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("budget left");
}

#[tokio::test(start_paused = true)]
async fn busy_sleep_has_its_own_ten_minute_limit() {
    let mut b = Backoffer::new(1000).with_rng_seed(2);
    let mut calls = 0;
    let err = loop {
        match b.backoff(BackoffKind::TiKVServerBusy, reason("busy")).await {
            Ok(()) => calls += 1,
            Err(e) => break e,
        }
    };
    assert!(calls > 60);
    assert!(b.excluded_sleep_ms() >= EXCLUDED_SLEEP_LIMIT_MS);
    assert!(b.excluded_sleep_ms() < EXCLUDED_SLEEP_LIMIT_MS + 10_000);
    assert_eq!(err.to_string(), "internal error: busy");
}

#[tokio::test(start_paused = true)]
async fn canceled_token_returns_the_reason() {
    let token = tokio_util::sync::CancellationToken::new();
    let mut b = Backoffer::new(0).with_cancel_token(token.clone());
    token.cancel();
    let err = b
        .backoff(BackoffKind::TiKVRpc, reason("rpc"))
        .await
        .expect_err("canceled");
    assert_eq!(err.to_string(), "internal error: rpc");
    assert_eq!(b.total_backoff_times(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_sleep_returns_ok_then_the_next_call_fails() {
    let token = tokio_util::sync::CancellationToken::new();
    let mut b = Backoffer::new(0).with_cancel_token(token.clone());
    b.backoff(BackoffKind::TiKVDiskFull, reason("full"))
        .await
        .expect("first sleep completes");
    assert_eq!(b.schedule_of("tikvDiskFull").map(|s| s.attempts()), Some(1));
    let canceler = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(100)).await;
            token.cancel();
        })
    };
    let start = Instant::now();
    b.backoff(BackoffKind::TiKVDiskFull, reason("full"))
        .await
        .expect("a canceled sleep returns Ok");
    canceler.await.expect("task");
    // Woken at the cancel, not after the 1000 ms delay; counted as 0 ms.
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(b.total_sleep_ms(), 500);
    assert_eq!(b.times_of(BackoffKind::TiKVDiskFull), 2);
    // The progression did not advance.
    assert_eq!(b.schedule_of("tikvDiskFull").map(|s| s.attempts()), Some(1));
    let err = b
        .backoff(BackoffKind::TiKVDiskFull, reason("full"))
        .await
        .expect_err("the next call fails");
    assert_eq!(err.to_string(), "internal error: full");
}

#[tokio::test(start_paused = true)]
async fn kill_flag_interrupts_after_the_sleep() {
    let flag = Arc::new(AtomicU32::new(0));
    let mut b = Backoffer::with_vars(0, Variables::new(Some(flag.clone())));
    b.check_killed().expect("not killed");
    b.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("not killed");
    flag.store(3, Ordering::SeqCst);
    let start = Instant::now();
    let err = b
        .backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect_err("killed");
    assert!(matches!(
        err.detail(),
        ErrorDetail::QueryInterrupted { signal: 3 }
    ));
    // It slept first, then checked.
    assert_eq!(start.elapsed(), ms(4));
    assert_eq!(b.total_sleep_ms(), 6);
    assert!(b.check_killed().is_err());
}

#[tokio::test(start_paused = true)]
async fn cluster_id_mismatch_is_never_retried() {
    let mut b = Backoffer::new(0);
    let err = b
        .backoff(
            BackoffKind::PdRpc,
            Error::new(ErrorDetail::MismatchClusterId {
                expected: 1,
                got: 2,
            }),
        )
        .await
        .expect_err("fatal");
    assert!(matches!(
        err.detail(),
        ErrorDetail::MismatchClusterId { .. }
    ));
    let err = b
        .backoff(BackoffKind::PdRpc, reason("pd says: mismatch cluster id 3"))
        .await
        .expect_err("fatal");
    assert!(err.to_string().contains("mismatch cluster id"));
    assert_eq!(b.total_backoff_times(), 0);
}

#[tokio::test(start_paused = true)]
async fn clone_restarts_progressions_and_keeps_the_rest() {
    let token = tokio_util::sync::CancellationToken::new();
    let mut b = Backoffer::new(0).with_cancel_token(token.clone());
    for _ in 0..3 {
        b.backoff(BackoffKind::RegionMiss, reason("miss"))
            .await
            .expect("ok");
    }
    let mut c = b.clone();
    assert!(c.same_bookkeeping(&b));
    assert!(c.schedule_of("regionMiss").is_none());
    assert_eq!(c.config_names(), b.config_names());
    let start = Instant::now();
    c.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    assert_eq!(start.elapsed(), ms(2), "the clone restarts at the base");
    // The clone shares the token.
    token.cancel();
    assert!(c.cancel_token().is_cancelled());
    // The noop flag is kept (see the module's deviations).
    assert!(Backoffer::noop().clone().is_noop());
}

#[tokio::test(start_paused = true)]
async fn fork_links_tokens_and_parents() {
    let mut parent = Backoffer::new(0);
    parent
        .backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    let mut child = parent.fork();
    child
        .backoff(BackoffKind::TiKVRpc, reason("rpc"))
        .await
        .expect("ok");
    let grandchild = child.fork();
    // Types walk the parent chain (parents as of the fork).
    assert_eq!(
        grandchild.types(),
        vec![
            "regionMiss",
            "tikvRPC",
            "regionMiss",
            "tikvRPC",
            "regionMiss"
        ]
    );
    // Canceling the child does not cancel the parent; canceling the parent cancels all.
    child.cancel_token().cancel();
    assert!(grandchild.cancel_token().is_cancelled());
    assert!(!parent.cancel_token().is_cancelled());
    let sibling = parent.fork();
    parent.cancel_token().cancel();
    assert!(sibling.cancel_token().is_cancelled());

    // A grandchild's state folds into its grandparent.
    let mut root = Backoffer::new(0);
    let mut g = root.fork().fork();
    g.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    root.update_using_forked(&g);
    assert!(root.same_bookkeeping(&g));
    assert!(
        root.config_names().is_empty(),
        "the kind list is not adopted"
    );

    // A clone of a fork is still a fork of the same parent.
    let mut root = Backoffer::new(0);
    let mut f = root.fork().clone();
    f.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    root.update_using_forked(&f);
    assert_eq!(root.total_sleep_ms(), 2);

    // Unrelated backoffers are ignored, and so is the parent's clone.
    let mut unrelated = Backoffer::new(0);
    unrelated.update_using_forked(&f);
    assert_eq!(unrelated.total_sleep_ms(), 0);
    let mut root_clone = root.clone();
    let mut f2 = root.fork();
    f2.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    assert_eq!(f2.total_sleep_ms(), 4);
    root_clone.update_using_forked(&f2);
    assert_eq!(root_clone.total_sleep_ms(), 2);
}

#[tokio::test(start_paused = true)]
async fn adopted_sleep_without_a_config_yields_the_reason() {
    // client-go's longestSleepCfg looks the kind up in the list of configurations used,
    // which UpdateUsingForked does not adopt.
    let mut root = Backoffer::new(1);
    let mut f = root.fork();
    f.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    root.update_using_forked(&f);
    let err = root
        .backoff(BackoffKind::TiKVRpc, reason("rpc"))
        .await
        .expect_err("exhausted");
    assert_eq!(err.to_string(), "internal error: rpc");
}

#[tokio::test(start_paused = true)]
async fn reset_and_reset_max_sleep() {
    let mut b = Backoffer::with_vars(5, Variables::default());
    for _ in 0..3 {
        b.backoff(BackoffKind::RegionMiss, reason("miss"))
            .await
            .expect("ok");
    }
    assert!(
        b.backoff(BackoffKind::RegionMiss, reason("miss"))
            .await
            .is_err()
    );
    b.reset();
    assert_eq!((b.total_sleep_ms(), b.excluded_sleep_ms()), (0, 0));
    assert_eq!(b.times_of(BackoffKind::RegionMiss), 3, "counters are kept");
    let start = Instant::now();
    b.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("budget restored");
    assert_eq!(start.elapsed(), ms(2), "progression restarted");
    b.reset_max_sleep(100);
    assert_eq!(b.max_sleep_ms(), 200, "weight re-applied");
    assert_eq!(b.total_sleep_ms(), 0);
    let mut n = Backoffer::new(5);
    n.reset_max_sleep(100);
    assert_eq!(
        n.max_sleep_ms(),
        200,
        "client-go re-applies the default weight too"
    );
}

#[tokio::test(start_paused = true)]
async fn set_cancel_token_rebinds() {
    let mut b = Backoffer::new(0);
    let token = tokio_util::sync::CancellationToken::new();
    token.cancel();
    b.set_cancel_token(token);
    assert!(
        b.backoff(BackoffKind::RegionMiss, reason("x"))
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn backoffer_may_backoff_for_region_error() {
    let mut b = Backoffer::new(0);
    b.may_backoff_for_region_error(&real_epoch_not_match())
        .await
        .expect("no backoff");
    assert_eq!(b.total_backoff_times(), 0);
    for e in region_errors_that_back_off() {
        b.may_backoff_for_region_error(&e).await.expect("backs off");
    }
    assert_eq!(b.times_of(BackoffKind::RegionMiss), 4);
}

// ===== the shared handle =====

#[test]
fn shared_backoffer_traits() {
    fn assert_traits<T: Clone + std::fmt::Debug + Default + Send + Sync + 'static>() {}
    assert_traits::<SharedBackoffer>();
    fn assert_send<T: Send>(_: &T) {}
    let bo = SharedBackoffer::default();
    assert_send(&bo.backoff(BackoffKind::RegionMiss, reason("x")));
    assert_send(&may_backoff_for_region_error(&real_epoch_not_match(), &bo));
    assert!(bo.is_default());
    assert!(bo.clone().is_default());
    assert!(bo.ptr_eq(&bo.clone()));
    assert_eq!(bo.snapshot().max_sleep_ms(), 0);
    assert!(!SharedBackoffer::from(Backoffer::new(0)).is_default());
    assert!(!bo.fork().is_default());
    assert!(!format!("{bo:?}").is_empty());
}

#[tokio::test(start_paused = true)]
async fn shared_backoffer_releases_the_lock_while_sleeping() {
    let bo = SharedBackoffer::from(Backoffer::new(0));
    let task = {
        let bo = bo.clone();
        tokio::spawn(async move { bo.backoff(BackoffKind::TiKVDiskFull, reason("full")).await })
    };
    tokio::task::yield_now().await;
    // The sleeping task does not hold the lock.
    assert!(!bo.is_locked());
    assert_eq!(bo.with(|b| b.errors_num()), 1);
    assert_eq!(bo.total_sleep_ms(), 0);
    task.await.expect("task").expect("ok");
    assert_eq!(bo.total_sleep_ms(), 500);
    assert_eq!(bo.times_of(BackoffKind::TiKVDiskFull), 1);
}

#[tokio::test(start_paused = true)]
async fn shared_backoffer_fork_update_and_cancel() {
    let bo = SharedBackoffer::from(Backoffer::with_vars(1000, Variables::default()));
    bo.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("ok");
    let f = bo.fork();
    f.backoff_with_max_sleep(BackoffKind::TiKVRpc, 1, reason("rpc"))
        .await
        .expect("ok");
    assert_eq!(f.total_sleep_ms(), 3);
    bo.update_using_forked(&f);
    assert_eq!(bo.total_sleep_ms(), 3);
    // Updating from itself is a no-op, not a deadlock.
    bo.update_using_forked(&bo.clone());
    bo.check_killed().expect("not killed");
    // Cancel the fork's token: the fork fails, the parent does not.
    f.cancel_token().cancel();
    assert!(
        f.backoff(BackoffKind::RegionMiss, reason("miss"))
            .await
            .is_err()
    );
    bo.backoff(BackoffKind::RegionMiss, reason("miss"))
        .await
        .expect("parent unaffected");
    // Canceled mid-sleep through the handle.
    let token = bo.cancel_token();
    let start = Instant::now();
    let (r, ()) = tokio::join!(
        bo.backoff(BackoffKind::TiKVDiskFull, reason("full")),
        async {
            tokio::time::sleep(ms(10)).await;
            token.cancel();
        }
    );
    r.expect("canceled mid-sleep returns Ok");
    assert_eq!(start.elapsed(), ms(10));
    assert!(
        bo.backoff(BackoffKind::TiKVDiskFull, reason("full"))
            .await
            .is_err()
    );
}

// ===== the layer =====

#[tokio::test(start_paused = true)]
async fn layer_installs_a_fresh_budget_on_default_requests() {
    use tower::ServiceExt as _;
    let (svc, mut handle) = tower_test::mock::pair::<RpcRequest, SharedBackoffer>();
    let mut svc = BackoffLayer::new(500)
        .vars(Variables::default().backoff_weight(3))
        .layer(svc);
    assert!(format!("{svc:?}").contains("Backoff"));
    handle.allow(2);

    let req = RpcRequest::new(kvrpcpb::GetRequest::default());
    assert!(req.backoffer.is_default());
    let call = svc.ready().await.expect("ready").call(req);
    let (got, send) = handle.next_request().await.expect("request");
    assert!(!got.backoffer.is_default());
    assert_eq!(got.backoffer.with(|b| b.max_sleep_ms()), 1500);
    send.send_response(got.backoffer.clone());
    let installed = call.await.expect("response");
    assert_eq!(installed.snapshot().max_sleep_ms(), 1500);

    // A caller's budget passes through untouched.
    let mine = SharedBackoffer::from(Backoffer::new(7));
    let req = RpcRequest::new(kvrpcpb::GetRequest::default()).backoffer(mine.clone());
    let call = svc.ready().await.expect("ready").call(req);
    let (got, send) = handle.next_request().await.expect("request");
    assert!(got.backoffer.ptr_eq(&mine));
    send.send_response(got.backoffer.clone());
    call.await.expect("response");

    let svc = Backoff::new(
        tower::service_fn(|_req: RpcRequest| async { Ok::<_, Error>(()) }),
        10,
    );
    let _inner: &_ = svc.get_ref();
    let _ = svc.into_inner();
}

// ===== properties =====

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn any_kind() -> impl Strategy<Value = BackoffKind> {
    proptest::sample::select(BackoffKind::ALL.to_vec())
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

/// The effective cap of a kind's single sleep.
fn cap_of(kind: BackoffKind) -> u64 {
    kind.cap_ms()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No sleep of any schedule exceeds its cap.
    #[test]
    fn schedule_sleeps_never_exceed_the_cap(
        base in 0u64..5000, cap in 0u64..20_000, jitter in any_jitter(), seed: u64, n in 1usize..80,
    ) {
        let mut s = Schedule::seeded(base, cap, jitter, seed);
        for got in sequence(&mut s, n) {
            prop_assert!(got <= cap);
        }
    }

    /// NoJitter is monotonic and exactly min(cap, max(base, 2) × 2ⁿ).
    #[test]
    fn no_jitter_is_monotonic(base in 0u64..5000, cap in 0u64..100_000, n in 1usize..80) {
        let mut s = Schedule::seeded(base, cap, Jitter::None, 0);
        let seq = sequence(&mut s, n);
        prop_assert!(seq.windows(2).all(|w| w[0] <= w[1]));
        for (i, got) in seq.iter().enumerate() {
            let expect = if i >= 64 {
                cap
            } else {
                base.max(2).saturating_mul(1u64 << i).min(cap)
            };
            prop_assert_eq!(*got, expect);
        }
    }

    /// Through a backoffer, each call sleeps at most the kind's cap and the per-call max,
    /// and the virtual clock advances by exactly what was recorded.
    #[test]
    fn each_sleep_is_bounded(
        kinds in proptest::collection::vec((any_kind(), proptest::option::of(0u64..3000)), 1..30),
        seed: u64,
    ) {
        paused_runtime().block_on(async {
            let mut b = Backoffer::new(0).with_rng_seed(seed);
            for (kind, max) in kinds {
                let before = b.total_sleep_ms();
                let start = Instant::now();
                match max {
                    Some(max) => b.backoff_with_max_sleep(kind, max, reason("x")).await,
                    None => b.backoff(kind, reason("x")).await,
                }
                .expect("unlimited budget");
                let slept = b.total_sleep_ms() - before;
                prop_assert!(slept <= cap_of(kind));
                if let Some(max) = max {
                    prop_assert!(slept <= max);
                }
                prop_assert_eq!(start.elapsed(), ms(slept));
            }
            Ok(())
        })?;
    }

    /// The budget: backing off until the first error, the non-excluded sleep ends
    /// strictly below `max_sleep + cap of the last successful kind` (each call checks
    /// before sleeping, so only the last sleep may overshoot) and at or above `max_sleep`
    /// (the error only comes once the budget is spent; busy sleeps alone never exhaust it
    /// before their own limit). The error is the longest-sleeping kind's.
    #[test]
    fn total_sleep_stays_within_budget_plus_one_cap(
        kinds in proptest::collection::vec(any_kind(), 1..12),
        budget in 1u64..20_000,
        seed: u64,
    ) {
        paused_runtime().block_on(async {
            let mut b = Backoffer::new(budget).with_rng_seed(seed);
            // The last kind that slept against the normal budget.
            let mut last_ok: Option<BackoffKind> = None;
            let mut i = 0usize;
            let err = loop {
                let kind = kinds[i % kinds.len()];
                i += 1;
                match b.backoff(kind, reason("x")).await {
                    Ok(()) if !kind.is_excluded() => last_ok = Some(kind),
                    Ok(()) => {}
                    Err(e) => break e,
                }
                prop_assert!(i < 100_000, "never exhausted");
            };
            let normal = b.total_sleep_ms() - b.excluded_sleep_ms();
            let excluded_done = b.excluded_sleep_ms() >= EXCLUDED_SLEEP_LIMIT_MS;
            prop_assert!(normal >= budget || excluded_done);
            if let Some(last) = last_ok {
                prop_assert!(normal < budget + cap_of(last));
            }
            let sleeps = b.backoff_sleep_ms();
            let longest = BackoffKind::ALL
                .iter()
                .filter(|k| !k.is_excluded())
                .map(|k| sleeps.get(k.name()).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            if longest > 0 {
                let winners: Vec<_> = BackoffKind::ALL
                    .iter()
                    .filter(|k| !k.is_excluded() && sleeps.get(k.name()) == Some(&longest))
                    .collect();
                prop_assert!(winners.iter().any(|k| same_detail(err.detail(), &k.error())));
            } else {
                prop_assert_eq!(err.to_string(), "internal error: x");
            }
            Ok(())
        })?;
    }
}
