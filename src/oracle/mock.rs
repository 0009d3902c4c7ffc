//! The switchable, offsettable test oracle (client-go's `oracle/oracles/mock.go`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures_core::future::BoxFuture;
use tikv_layers::Result;

use super::local::LocalExternalTimestamp;
use super::{
    Oracle, OracleOption, extract_physical, get_time_from_ts, nanos_to_ts, oracle_error,
    time_to_ts, unix_nanos,
};

#[derive(Debug, Default)]
struct State {
    stopped: bool,
    /// Clock offset in nanoseconds (may be negative).
    offset_ns: i128,
    last_ts: u64,
}

#[derive(Debug, Default)]
struct Inner {
    state: RwLock<State>,
    external: LocalExternalTimestamp,
}

/// A wall-clock oracle for tests that can be disabled and shifted in time (client-go's
/// `oracles.MockOracle`).
///
/// While disabled, [`Oracle::get_timestamp`] fails with "stopped".
#[derive(Debug, Clone, Default)]
pub struct MockOracle {
    inner: Arc<Inner>,
}

impl MockOracle {
    /// A new, enabled mock oracle with no offset.
    pub fn new() -> MockOracle {
        MockOracle::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns the oracle back on (client-go's `Enable`).
    pub fn enable(&self) {
        self.write().stopped = false;
    }

    /// Turns the oracle off (client-go's `Disable`).
    pub fn disable(&self) {
        self.write().stopped = true;
    }

    /// Moves the oracle's clock forward by `d` (client-go's `AddOffset`).
    pub fn add_offset(&self, d: Duration) {
        self.write().offset_ns += d.as_nanos() as i128;
    }

    /// Moves the oracle's clock backward by `d` (client-go's `AddOffset` with a negative
    /// duration).
    pub fn sub_offset(&self, d: Duration) {
        self.write().offset_ns -= d.as_nanos() as i128;
    }

    fn now_ns(offset_ns: i128) -> i128 {
        unix_nanos(SystemTime::now()) + offset_ns
    }

    /// A fresh timestamp, synchronously.
    pub fn get_timestamp_now(&self) -> Result<u64> {
        let mut st = self.write();
        if st.stopped {
            return Err(oracle_error("stopped"));
        }
        let mut ts = nanos_to_ts(Self::now_ns(st.offset_ns));
        if extract_physical(st.last_ts) == extract_physical(ts) {
            ts = st.last_ts + 1;
        }
        st.last_ts = ts;
        Ok(ts)
    }
}

impl Oracle for MockOracle {
    fn get_timestamp(&self, _opt: &OracleOption) -> BoxFuture<'static, Result<u64>> {
        Box::pin(std::future::ready(self.get_timestamp_now()))
    }

    fn get_low_resolution_timestamp(&self, _opt: &OracleOption) -> Result<u64> {
        self.get_timestamp_now()
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
        let offset = self.read().offset_ns;
        let expire = unix_nanos(get_time_from_ts(lock_ts)) + i128::from(ttl_ms) * 1_000_000;
        Self::now_ns(offset) >= expire
    }

    fn until_expired(&self, lock_ts: u64, ttl_ms: u64, _opt: &OracleOption) -> i64 {
        let offset = self.read().offset_ns;
        let expire = unix_nanos(get_time_from_ts(lock_ts)) + i128::from(ttl_ms) * 1_000_000;
        // Duration.Milliseconds truncates toward zero.
        ((expire - Self::now_ns(offset)) / 1_000_000) as i64
    }

    fn close(&self) {}

    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        Box::pin(std::future::ready(Ok(self.inner.external.get())))
    }

    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>> {
        let res = self
            .get_timestamp_now()
            .and_then(|current| self.inner.external.set(current, ts));
        Box::pin(std::future::ready(res))
    }

    fn get_all_tso_keyspace_group_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let st = self.read();
        let res = if st.stopped {
            Err(oracle_error("stopped"))
        } else {
            Ok(nanos_to_ts(Self::now_ns(st.offset_ns)))
        };
        Box::pin(std::future::ready(res))
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
