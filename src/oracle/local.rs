//! The wall-clock oracle (client-go's `oracle/oracles/local.go` and
//! `local_external_timestamp.go`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_core::future::BoxFuture;
use tikv_layers::Result;

use super::{Oracle, OracleOption, extract_physical, get_physical, oracle_error, time_to_ts};

/// The external timestamp kept in memory by the local and mock oracles (client-go's
/// `localExternalTimestamp`), following PD's rules (PD-17).
#[derive(Debug, Default)]
pub(crate) struct LocalExternalTimestamp {
    value: AtomicU64,
}

impl LocalExternalTimestamp {
    /// Checks `ts` against `current` (a ts just taken from the oracle), then stores it.
    pub(crate) fn set(&self, current: u64, ts: u64) -> Result<()> {
        if ts > current {
            return Err(oracle_error(
                "external timestamp is greater than global tso",
            ));
        }
        let mut stored = self.value.load(Ordering::Acquire);
        loop {
            if stored > ts {
                return Err(oracle_error("cannot decrease the external timestamp"));
            }
            if stored == ts {
                return Ok(());
            }
            match self
                .value
                .compare_exchange(stored, ts, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => stored = now,
            }
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct State {
    last_base: u64,
    n: u64,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    hook: Mutex<Option<SystemTime>>,
    external: LocalExternalTimestamp,
}

/// An oracle that reads the local wall clock (client-go's `oracles.localOracle`,
/// `NewLocalOracle`). For tests and embedded use only: a clock that steps backwards yields
/// smaller timestamps.
///
/// Within one millisecond it hands out `base, base+1, base+2, ...`.
#[derive(Debug, Clone, Default)]
pub struct LocalOracle {
    inner: Arc<Inner>,
}

impl LocalOracle {
    /// A new local oracle.
    pub fn new() -> LocalOracle {
        LocalOracle::default()
    }

    /// Pins the clock this oracle reads to `now` (client-go's test hook
    /// `SetOracleHookCurrentTime`); `None` returns to the wall clock.
    pub fn set_hook_current_time(&self, now: Option<SystemTime>) {
        *self.inner.hook.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    fn now(&self) -> SystemTime {
        self.inner
            .hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(SystemTime::now)
    }

    /// A fresh timestamp, synchronously.
    pub fn get_timestamp_now(&self) -> u64 {
        let now = self.now();
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let ts = time_to_ts(now);
        if st.last_base == ts {
            st.n += 1;
            return ts + st.n;
        }
        st.last_base = ts;
        st.n = 0;
        ts
    }
}

impl Oracle for LocalOracle {
    fn get_timestamp(&self, _opt: &OracleOption) -> BoxFuture<'static, Result<u64>> {
        let ts = self.get_timestamp_now();
        Box::pin(std::future::ready(Ok(ts)))
    }

    fn get_low_resolution_timestamp(&self, _opt: &OracleOption) -> Result<u64> {
        Ok(self.get_timestamp_now())
    }

    fn set_low_resolution_timestamp_update_interval(&self, _interval: Duration) -> Result<()> {
        Ok(())
    }

    fn get_stale_timestamp(
        &self,
        _txn_scope: &str,
        prev_second: u64,
    ) -> BoxFuture<'static, Result<u64>> {
        let res = SystemTime::now()
            .checked_sub(Duration::from_secs(prev_second))
            .map(time_to_ts)
            .ok_or_else(|| oracle_error(format!("invalid prevSecond {prev_second}")));
        Box::pin(std::future::ready(res))
    }

    fn is_expired(&self, lock_ts: u64, ttl_ms: u64, _opt: &OracleOption) -> bool {
        get_physical(self.now()) >= extract_physical(lock_ts).saturating_add(ttl_ms as i64)
    }

    fn until_expired(&self, lock_ts: u64, ttl_ms: u64, _opt: &OracleOption) -> i64 {
        extract_physical(lock_ts) + ttl_ms as i64 - get_physical(self.now())
    }

    fn close(&self) {}

    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        Box::pin(std::future::ready(Ok(self.inner.external.get())))
    }

    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>> {
        let current = self.get_timestamp_now();
        Box::pin(std::future::ready(self.inner.external.set(current, ts)))
    }

    fn get_all_tso_keyspace_group_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        Box::pin(std::future::ready(Ok(time_to_ts(self.now()))))
    }

    fn validate_read_ts(
        &self,
        _read_ts: u64,
        _is_stale_read: bool,
        _opt: &OracleOption,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
