//! Ports of client-go's `oracle/oracles/*_test.go`, plus checks of the helpers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use futures_core::future::BoxFuture;
use tikv_layers::Result;

use super::pd::{
    BLOCK_RECOVER_THRESHOLD, DELAY_BEFORE_RECOVERING, MIN_ADAPTIVE_INTERVAL, RECOVER_PER_SECOND,
    SHRINKING_PRESERVE,
};
use super::*;

/// client-go's `MockPdClient` (physical 0, logical +1 per call), pausable like
/// `MockPDClientWithPause`: `get_ts` waits for `gate`.
#[derive(Default)]
struct StubState {
    logical: AtomicI64,
    gate: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default, Clone)]
struct StubPd(Arc<StubState>);

impl StubPd {
    fn add(&self, n: i64) {
        self.0.logical.fetch_add(n, Ordering::SeqCst);
    }
    fn store(&self, n: i64) {
        self.0.logical.store(n, Ordering::SeqCst);
    }
}

impl TimestampSource for StubPd {
    fn get_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let st = self.0.clone();
        Box::pin(async move {
            let _g = st.gate.lock().await;
            Ok(compose_ts(0, st.logical.fetch_add(1, Ordering::SeqCst) + 1))
        })
    }
    fn get_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        self.get_ts()
    }
    fn set_external_timestamp(&self, _ts: u64) -> BoxFuture<'static, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}

fn stub_source(stub: &StubPd) -> Arc<dyn TimestampSource> {
    Arc::new(stub.clone())
}

fn global() -> OracleOption {
    OracleOption::global()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn compose_and_extract() {
    let ts = compose_ts(1_700_000_000_000, 7);
    assert_eq!(extract_physical(ts), 1_700_000_000_000);
    assert_eq!(extract_logical(ts), 7);
    // Logical is not masked: it spills into the physical part.
    assert_eq!(compose_ts(1, 1 << 18), compose_ts(2, 0));
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(123_456);
    assert_eq!(time_to_ts(t), compose_ts(123_456, 0));
    assert_eq!(get_time_from_ts(compose_ts(123_456, 9)), t);
    assert_eq!(time_to_lower_limit_start_ts(t, 456), compose_ts(123_000, 0));
}

// client-go: T-ORACLE-002 TestLocalOracle
#[test]
fn local_oracle_distinct() {
    let o = LocalOracle::new();
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        seen.insert(o.get_timestamp_now());
    }
    assert_eq!(seen.len(), 100_000, "should generate distinct ts");
}

// client-go: T-ORACLE-003 TestIsExpired
#[test]
fn local_oracle_is_expired() {
    let o = LocalOracle::new();
    let start = SystemTime::now();
    o.set_hook_current_time(Some(start));
    let ts = o.get_timestamp_now();
    o.set_hook_current_time(Some(start + ms(10)));
    assert!(o.is_expired(ts, 5, &OracleOption::default()));
    assert!(!o.is_expired(ts, 200, &OracleOption::default()));
}

// client-go: T-ORACLE-004 TestLocalOracle_UntilExpired
#[test]
fn local_oracle_until_expired() {
    let o = LocalOracle::new();
    let start = SystemTime::now();
    o.set_hook_current_time(Some(start));
    let ts = o.get_timestamp_now();
    o.set_hook_current_time(Some(start + ms(10)));
    assert_eq!(o.until_expired(ts, 6, &OracleOption::default()), -4);
    assert_eq!(o.until_expired(ts, 14, &OracleOption::default()), 4);
}

// client-go: T-ORACLE-005 TestPDOracle_UntilExpired
#[tokio::test]
async fn pd_oracle_until_expired() {
    let o = PdOracle::test_empty(stub_source(&StubPd::default()), Duration::ZERO);
    let start = SystemTime::now();
    o.test_set_last_ts(time_to_ts(start));
    let lock_ts = time_to_ts(start + ms(10)) + 1;
    assert_eq!(o.until_expired(lock_ts, 15, &global()), 25);
}

// client-go: T-ORACLE-006 TestPdOracle_GetStaleTimestamp
#[tokio::test]
async fn pd_oracle_get_stale_timestamp() {
    let o = PdOracle::test_empty(stub_source(&StubPd::default()), Duration::ZERO);
    let start = SystemTime::now();
    o.test_set_last_ts(time_to_ts(start));
    let ts = o
        .get_stale_timestamp(GLOBAL_TXN_SCOPE, 10)
        .await
        .expect("stale ts");
    let got = get_time_from_ts(ts);
    let want = start - Duration::from_secs(10);
    let diff = if got > want {
        got.duration_since(want)
    } else {
        want.duration_since(got)
    }
    .unwrap_or_default();
    assert!(diff <= Duration::from_secs(2), "{diff:?}");

    for prev in [1_000_000_000_000u64, u64::MAX] {
        let err = o
            .get_stale_timestamp(GLOBAL_TXN_SCOPE, prev)
            .await
            .expect_err("invalid prevSecond");
        assert!(err.to_string().contains("invalid prevSecond"), "{err}");
    }
}

// client-go: T-ORACLE-007 TestPdOracle_SetLowResolutionTimestampUpdateInterval
#[tokio::test(start_paused = true)]
async fn pd_oracle_set_low_resolution_update_interval() {
    let stub = StubPd::default();
    let o = PdOracle::test_empty(stub_source(&stub), Duration::ZERO);
    o.set_low_resolution_timestamp_update_interval(ms(50))
        .expect("set interval");
    // The first fetch only seeds the cache.
    o.get_timestamp(&OracleOption::default())
        .await
        .expect("seed");
    // No loop yet: the low-resolution ts lags a fresh one.
    let low = o
        .get_low_resolution_timestamp(&OracleOption::default())
        .expect("low res");
    let ts = o.get_timestamp(&OracleOption::default()).await.expect("ts");
    assert!(ts > low);

    async fn wait_change(o: &PdOracle) {
        let cur = o
            .get_low_resolution_timestamp(&OracleOption::default())
            .expect("low res");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(ms(10)).await;
            let next = o
                .get_low_resolution_timestamp(&OracleOption::default())
                .expect("low res");
            if next > cur {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "ts never changed");
        }
    }

    o.test_start_update_loop();
    for interval in [ms(50), ms(150), ms(500)] {
        o.set_low_resolution_timestamp_update_interval(interval)
            .expect("set interval");
        let start = tokio::time::Instant::now();
        wait_change(&o).await;
        wait_change(&o).await;
        let elapsed = start.elapsed();
        assert!(elapsed > interval, "{elapsed:?} <= {interval:?}");
        assert!(elapsed <= interval * 3, "{elapsed:?} > 3 x {interval:?}");
    }
    o.close();
}

// client-go: T-ORACLE-008 TestNonFutureStaleTSO
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pd_oracle_non_future_stale_tso() {
    let o = PdOracle::test_empty(stub_source(&StubPd::default()), Duration::ZERO);
    o.test_set_last_ts(time_to_ts(SystemTime::now()));
    for i in 0..100 {
        let now = SystemTime::now();
        let upper = now + ms(5); // allowed drift
        let setter = {
            let o = o.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                o.test_set_last_ts_scope(time_to_ts(now), GLOBAL_TXN_SCOPE);
            })
        };
        while !setter.is_finished() {
            let ts = o
                .get_stale_timestamp(GLOBAL_TXN_SCOPE, 0)
                .await
                .expect("stale ts");
            let stale = get_time_from_ts(ts);
            let recent = now.elapsed().map(|e| e < ms(1)).unwrap_or(true);
            assert!(
                !(stale > upper && recent),
                "iteration {i}: {stale:?} > {upper:?}"
            );
            tokio::task::yield_now().await;
        }
        setter.await.expect("setter");
    }
}

// client-go: T-ORACLE-009 TestAdaptiveUpdateTSInterval
#[tokio::test]
async fn pd_oracle_adaptive_update_interval() {
    use AdaptiveIntervalState as S;
    let o = PdOracle::new(
        stub_source(&StubPd::default()),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: true,
            enable_ts_validation: false,
        },
    )
    .await
    .expect("oracle");
    let s2 = Duration::from_secs(2);
    let s1 = Duration::from_secs(1);

    let mut now = SystemTime::now();
    let base = now;
    let mock_ts =
        |before_now: Duration, now: SystemTime| compose_ts(get_physical(now - before_now), 1);
    let _ = base;
    let must_notify = |o: &PdOracle, expected: Duration| {
        assert_eq!(
            o.test_try_recv_shrink(),
            Some(expected),
            "expected a shrink request"
        );
    };
    let must_not_notify = |o: &PdOracle| {
        assert_eq!(o.test_try_recv_shrink(), None, "unexpected shrink request");
    };
    let close = |a: Duration, b: Duration| {
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        assert!(((a - b) / a).abs() < 1e-3, "{a} vs {b}");
    };

    now += s2;
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s2);
    now += s2;
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s2);
    assert_eq!(o.adaptive_state(), S::Normal);

    now += s1;
    // A read asking for more than 2 s of staleness changes nothing.
    o.adjust_with_requested_staleness(
        mock_ts(Duration::from_secs(3), now),
        mock_ts(Duration::ZERO, now),
        now,
    );
    must_not_notify(&o);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s2);

    now += s1;
    // A read asking for less than 2 s shrinks the interval at once.
    o.adjust_with_requested_staleness(mock_ts(s1, now), mock_ts(Duration::ZERO, now), now);
    must_notify(&o, s1);
    let mut expected = s1 - SHRINKING_PRESERVE;
    assert_eq!(o.next_update_interval(now, s1), expected);
    assert_eq!(o.adaptive_state(), S::Adapting);
    assert_eq!(o.test_last_short_staleness_read_ms(), get_physical(now));

    // Short-staleness reads continue.
    now += DELAY_BEFORE_RECOVERING / 2;
    o.adjust_with_requested_staleness(mock_ts(s1, now), mock_ts(Duration::ZERO, now), now);
    must_not_notify(&o);
    assert_eq!(o.test_last_short_staleness_read_ms(), get_physical(now));

    // The recovery delay has not passed yet.
    now += DELAY_BEFORE_RECOVERING / 2 + s1;
    o.test_set_last_tick(now - s1);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), expected);
    assert_eq!(o.adaptive_state(), S::Adapting);

    // Now it has.
    now += DELAY_BEFORE_RECOVERING / 2;
    o.test_set_last_tick(now - s1);
    expected += RECOVER_PER_SECOND;
    close(expected, o.next_update_interval(now, Duration::ZERO));
    assert_eq!(o.adaptive_state(), S::Recovering);
    o.test_set_last_tick(now);
    now += s2;
    // A staleness above the blocking threshold does not stop recovery.
    o.adjust_with_requested_staleness(
        mock_ts(expected + BLOCK_RECOVER_THRESHOLD * 2, now),
        mock_ts(Duration::ZERO, now),
        now,
    );
    must_not_notify(&o);
    expected += RECOVER_PER_SECOND * 2;
    close(expected, o.next_update_interval(now, Duration::ZERO));
    assert_eq!(o.adaptive_state(), S::Recovering);

    // A staleness close to the current interval blocks recovery.
    o.test_set_last_tick(now);
    now += s1;
    o.adjust_with_requested_staleness(
        mock_ts(expected + BLOCK_RECOVER_THRESHOLD / 2, now),
        mock_ts(Duration::ZERO, now),
        now,
    );
    must_not_notify(&o);
    close(expected, o.next_update_interval(now, Duration::ZERO));
    assert_eq!(o.adaptive_state(), S::Adapting);
    o.test_set_last_tick(now);
    now += s1;
    close(expected, o.next_update_interval(now, Duration::ZERO));
    assert_eq!(o.adaptive_state(), S::Adapting);

    // The delay has passed again: recovery continues.
    now += DELAY_BEFORE_RECOVERING;
    o.test_set_last_tick(now - s1);
    expected += RECOVER_PER_SECOND;
    close(expected, o.next_update_interval(now, Duration::ZERO));
    assert_eq!(o.adaptive_state(), S::Recovering);

    // Undisturbed, it recovers to the configured value.
    loop {
        o.test_set_last_tick(now);
        now += s1;
        expected += RECOVER_PER_SECOND;
        if expected >= s2 {
            break;
        }
        close(expected, o.next_update_interval(now, Duration::ZERO));
        assert_eq!(o.adaptive_state(), S::Recovering);
    }
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s2);
    assert_eq!(o.adaptive_state(), S::Normal);

    // Manual changes while adaptation is not in effect apply at once.
    o.set_low_resolution_timestamp_update_interval(s1)
        .expect("set");
    assert_eq!(o.adaptive_interval(), s1);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s1);
    o.set_low_resolution_timestamp_update_interval(s2)
        .expect("set");
    assert_eq!(o.adaptive_interval(), s2);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), s2);

    // While adapting, a longer configured value does not apply at once...
    now += s1;
    o.adjust_with_requested_staleness(mock_ts(s1, now), mock_ts(Duration::ZERO, now), now);
    must_notify(&o, s1);
    let expected = s1 - SHRINKING_PRESERVE;
    assert_eq!(o.next_update_interval(now, s1), expected);
    assert_eq!(o.adaptive_state(), S::Adapting);
    o.set_low_resolution_timestamp_update_interval(Duration::from_secs(3))
        .expect("set");
    assert_eq!(o.adaptive_interval(), expected);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), expected);
    o.set_low_resolution_timestamp_update_interval(s1)
        .expect("set");
    assert_eq!(o.adaptive_interval(), expected);
    assert_eq!(o.next_update_interval(now, Duration::ZERO), expected);

    // ...unless it is shorter than the interval in effect.
    o.set_low_resolution_timestamp_update_interval(ms(800))
        .expect("set");
    assert_eq!(o.adaptive_interval(), ms(800));
    assert_eq!(o.next_update_interval(now, Duration::ZERO), ms(800));
    assert_eq!(o.adaptive_state(), S::Normal);

    // Too short to adapt.
    o.set_low_resolution_timestamp_update_interval(MIN_ADAPTIVE_INTERVAL / 2)
        .expect("set");
    assert_eq!(o.adaptive_interval(), MIN_ADAPTIVE_INTERVAL / 2);
    assert_eq!(
        o.next_update_interval(now, Duration::ZERO),
        MIN_ADAPTIVE_INTERVAL / 2
    );
    assert_eq!(o.adaptive_state(), S::Unadjustable);

    assert!(
        o.set_low_resolution_timestamp_update_interval(Duration::ZERO)
            .is_err()
    );
    o.close();
}

// client-go: T-ORACLE-010 TestValidateReadTS
#[tokio::test(start_paused = true)]
async fn pd_oracle_validate_read_ts() {
    let stub = StubPd::default();
    let o = PdOracle::new(
        stub_source(&stub),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: false,
            enable_ts_validation: true,
        },
    )
    .await
    .expect("oracle");
    let opt = global();
    let stale = true;

    let err = o
        .validate_read_ts(u64::MAX, stale, &opt)
        .await
        .expect_err("latest stale read");
    assert!(LatestStaleRead::is(&err));

    let ts = o.get_timestamp(&opt).await.expect("ts");
    assert!(ts >= 1);
    o.validate_read_ts(1, stale, &opt).await.expect("1 passes");
    // Past the cache, one PD fetch returns ts+1.
    let ts = o.get_timestamp(&opt).await.expect("ts");
    o.validate_read_ts(ts + 1, stale, &opt).await.expect("ts+1");
    // ts+2 passes thanks to the single retry.
    let ts = o.get_timestamp(&opt).await.expect("ts");
    o.validate_read_ts(ts + 2, stale, &opt).await.expect("ts+2");
    // ts+3 is out of reach.
    let ts = o.get_timestamp(&opt).await.expect("ts");
    let err = o
        .validate_read_ts(ts + 3, stale, &opt)
        .await
        .expect_err("ts+3");
    let future = FutureTsRead::find(&err).expect("typed error");
    assert_eq!(future.read_ts, ts + 3);
    // Another client advanced PD.
    let ts = o.get_timestamp(&opt).await.expect("ts");
    stub.add(2);
    o.validate_read_ts(ts + 3, stale, &opt)
        .await
        .expect("after other clients");
    // Out-of-range values.
    let err = o
        .validate_read_ts(i64::MAX as u64, false, &opt)
        .await
        .expect_err("max int64");
    assert!(err.to_string().contains("MaxInt64 <= readTS < MaxUint64"));
    o.validate_read_ts(u64::MAX, false, &opt)
        .await
        .expect("latest normal read");
    o.close();
}

// client-go: T-ORACLE-011 TestValidateReadTSForStaleReadReusingGetTSResult
#[tokio::test(start_paused = true)]
async fn pd_oracle_validate_read_ts_reuses_fetch() {
    let stub = StubPd::default();
    let o = PdOracle::new(
        stub_source(&stub),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: true,
            enable_ts_validation: true,
        },
    )
    .await
    .expect("oracle");
    o.hooks().skip_retry.store(true, Ordering::Relaxed);

    let cancel_indices = [None, None, Some(0usize), Some(1usize)];
    for (case, ts) in [100u64, 200, 300, 400].into_iter().enumerate() {
        let cancel = cancel_indices[case];
        let pause = stub.0.gate.clone().lock_owned().await;
        let read_ts = [ts - 2, ts + 2, ts - 1, ts + 1, ts];
        let expected_ok = [true, false, true, false, true];
        let handles: Vec<_> = read_ts
            .iter()
            .map(|&r| {
                let f = o.validate_read_ts(r, true, &global());
                tokio::spawn(f)
            })
            .collect();
        tokio::time::sleep(ms(50)).await;
        for h in &handles {
            assert!(!h.is_finished(), "case {case}: validation must block");
        }
        // Cancelling one caller (dropping its future) ends only that caller.
        if let Some(i) = cancel {
            handles[i].abort();
        }
        tokio::time::sleep(ms(10)).await;
        for (i, h) in handles.iter().enumerate() {
            if Some(i) == cancel {
                assert!(h.is_finished(), "case {case}: canceled caller must end");
            } else {
                assert!(!h.is_finished(), "case {case}: index {i} must still block");
            }
        }
        stub.store(ts as i64 - 1);
        drop(pause);
        for (i, h) in handles.into_iter().enumerate() {
            let res = h.await;
            if Some(i) == cancel {
                assert!(res.expect_err("canceled").is_cancelled());
                continue;
            }
            let res = res.expect("task");
            if expected_ok[i] {
                res.unwrap_or_else(|e| panic!("case {case} index {i}: {e}"));
            } else {
                let err = res.expect_err("future read ts");
                assert!(FutureTsRead::find(&err).is_some(), "case {case} index {i}");
            }
        }
    }
}

// client-go: T-ORACLE-012 TestValidateReadTSForNormalReadDoNotAffectUpdateInterval
#[tokio::test(start_paused = true)]
async fn pd_oracle_normal_read_validation_keeps_interval() {
    let o = PdOracle::new(
        stub_source(&StubPd::default()),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: true,
            enable_ts_validation: true,
        },
    )
    .await
    .expect("oracle");
    let opt = global();
    let ts = o.get_timestamp(&opt).await.expect("ts");
    assert!(ts >= 1);
    o.validate_read_ts(ts, false, &opt).await.expect("cached");
    assert_eq!(o.test_try_recv_shrink(), None);
    // Fetches ts+1, retries, fetches ts+2: passes.
    o.validate_read_ts(ts + 2, false, &opt).await.expect("ts+2");
    assert_eq!(o.test_try_recv_shrink(), None);
    // Fetches ts+3 and ts+4: fails.
    o.validate_read_ts(ts + 5, false, &opt)
        .await
        .expect_err("ts+5");
    assert_eq!(o.test_try_recv_shrink(), None);
    // Fetches ts+5: passes.
    o.validate_read_ts(ts + 5, false, &opt).await.expect("ts+5");
    assert_eq!(o.test_try_recv_shrink(), None);
}

// client-go: T-ORACLE-013 TestSetLastTSAlwaysPushTS
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pd_oracle_set_last_ts_always_pushes() {
    let o = PdOracle::new(
        stub_source(&StubPd::default()),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: true,
            enable_ts_validation: false,
        },
    )
    .await
    .expect("oracle");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let o = o.clone();
        tasks.spawn(async move {
            for _ in 0..200 {
                let ts = o.get_timestamp(&global()).await.expect("ts");
                let last = o.test_last_ts(GLOBAL_TXN_SCOPE).expect("cached");
                assert!(last >= ts, "{last} < {ts}");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
}

// client-go: T-ORACLE-014 TestValidateReadTSFromDifferentSource
#[tokio::test(start_paused = true)]
async fn pd_oracle_validate_read_ts_from_different_source() {
    let stub = StubPd::default();
    let o = PdOracle::new(
        stub_source(&stub),
        PdOracleOptions {
            update_interval: Duration::from_secs(2),
            no_update_ts: true,
            enable_ts_validation: true,
        },
    )
    .await
    .expect("oracle");
    let ts = o.get_timestamp(&global()).await.expect("ts");
    assert_eq!(o.get_low_resolution_timestamp(&global()).expect("low"), ts);

    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *o.hooks().before_return.lock().expect("hook") = Some(gate.clone());

    let first = tokio::spawn(o.validate_read_ts(ts + 1, false, &global()));
    tokio::time::sleep(ms(50)).await;
    assert!(!first.is_finished(), "expected to block");

    stub.add(10);
    let next_ts = stub.get_ts().await.expect("ts");
    let low = o.get_low_resolution_timestamp(&global()).expect("low");
    assert_eq!(low, ts + 1);
    assert_eq!(low, next_ts - 11);

    // Joins the older in-flight fetch, whose result is below `next_ts`: must fetch again.
    let second = tokio::spawn(o.validate_read_ts(next_ts, false, &global()));
    tokio::time::sleep(ms(50)).await;
    assert!(!first.is_finished(), "expected to block");

    *o.hooks().before_return.lock().expect("hook") = None;
    gate.add_permits(1);
    first.await.expect("task").expect("first passes");
    second.await.expect("task").expect("second passes");
}

#[tokio::test]
async fn pd_oracle_rejects_zero_interval_and_unknown_scope() {
    let err = PdOracle::new(
        stub_source(&StubPd::default()),
        PdOracleOptions {
            update_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .expect_err("zero interval");
    assert!(err.to_string().contains("updateInterval must be > 0"));

    let o = PdOracle::new(
        stub_source(&StubPd::default()),
        PdOracleOptions {
            no_update_ts: true,
            ..Default::default()
        },
    )
    .await
    .expect("oracle");
    let err = o
        .get_low_resolution_timestamp(&OracleOption::with_scope("dc-1"))
        .expect_err("unknown scope");
    assert!(err.to_string().contains("invalid txnScope"));
    // A stale read on an unknown scope fails but seeds the scope.
    o.get_stale_timestamp("dc-1", 0)
        .await
        .expect_err("unseeded");
    assert!(
        o.get_low_resolution_timestamp(&OracleOption::with_scope("dc-1"))
            .is_ok()
    );
    // Expiry uses the cached ts; an unknown scope counts as expired.
    assert!(o.is_expired(1, 0, &OracleOption::with_scope("dc-2")));
    assert_eq!(o.until_expired(1, 0, &OracleOption::with_scope("dc-2")), 0);
    // The async form resolves to a fresh ts.
    let a = o.get_timestamp_async(&global()).await.expect("async");
    let b = o.get_timestamp(&global()).await.expect("ts");
    assert!(b > a);
}

#[tokio::test]
async fn local_and_mock_external_timestamp() {
    let o = LocalOracle::new();
    assert_eq!(o.get_external_timestamp().await.expect("get"), 0);
    let ts = o.get_timestamp_now();
    o.set_external_timestamp(ts).await.expect("set");
    o.set_external_timestamp(ts)
        .await
        .expect("same value is fine");
    let err = o
        .set_external_timestamp(ts - 1)
        .await
        .expect_err("decrease");
    assert!(
        err.to_string()
            .contains("cannot decrease the external timestamp")
    );
    let err = o
        .set_external_timestamp(ts + (1 << 40))
        .await
        .expect_err("future");
    assert!(
        err.to_string()
            .contains("external timestamp is greater than global tso")
    );
    assert_eq!(o.get_external_timestamp().await.expect("get"), ts);

    let m = MockOracle::new();
    let a = m.get_timestamp_now().expect("ts");
    let b = m.get_timestamp_now().expect("ts");
    assert!(b > a);
    m.disable();
    let err = m.get_timestamp_now().expect_err("stopped");
    assert!(err.to_string().contains("stopped"));
    assert!(m.get_all_tso_keyspace_group_min_ts().await.is_err());
    m.enable();
    m.add_offset(Duration::from_secs(3600));
    let c = m.get_timestamp_now().expect("ts");
    assert!(extract_physical(c) - extract_physical(b) >= 3_599_000);
    // With the clock an hour ahead, a lock taken at `b` with a 1 min TTL has expired.
    assert!(m.is_expired(b, 60_000, &global()));
    assert!(m.until_expired(b, 60_000, &global()) < 0);
    m.validate_read_ts(u64::MAX, true, &global())
        .await
        .expect("mock accepts everything");
}
