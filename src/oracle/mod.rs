//! Timestamp oracles: where transactions get their start and commit timestamps.
//!
//! A TiKV timestamp (a "ts") is a `u64` hybrid clock value: the physical part is Unix
//! milliseconds shifted left by [`PHYSICAL_SHIFT_BITS`] (18) and the low 18 bits are a
//! logical counter. [`compose_ts`], [`extract_physical`], [`extract_logical`] and friends
//! convert between the two views (client-go's `oracle` package).
//!
//! The [`Oracle`] trait is the interface every timestamp source implements (client-go's
//! `oracle.Oracle`). Three implementations live here:
//!
//! - [`PdOracle`]: the production oracle, backed by PD's TSO through a
//!   [`TimestampSource`] (normally [`crate::pd::PdClient`]); it keeps a per-scope
//!   low-resolution cache refreshed by a background loop whose period adapts to stale
//!   reads (client-go's `oracles.pdOracle`);
//! - [`LocalOracle`]: a wall-clock oracle for tests and embedded use (`oracles.localOracle`);
//! - [`MockOracle`]: a wall-clock oracle with an adjustable offset that can be switched off
//!   (`oracles.MockOracle`).
//!
//! # Errors callers match on
//!
//! [`FutureTsRead`] and [`LatestStaleRead`] (client-go's `ErrFutureTSRead` and
//! `ErrLatestStaleRead`) are returned as the [`source`](std::error::Error::source) of an
//! [`ErrorDetail::InvalidArgument`] error; find them with [`FutureTsRead::find`] and
//! [`LatestStaleRead::is`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::future::BoxFuture;
use tikv_layers::{Error, ErrorDetail, Result};

mod local;
mod mock;
mod pd;

pub use local::LocalOracle;
pub use mock::MockOracle;
pub use pd::{
    AdaptiveIntervalState, DEFAULT_UPDATE_INTERVAL, PdOracle, PdOracleOptions, TimestampSource,
};

/// How many bits of a ts hold the logical counter (client-go's `physicalShiftBits`).
pub const PHYSICAL_SHIFT_BITS: u32 = 18;

/// The mask of the logical part of a ts (client-go's `logicalBits`).
pub const LOGICAL_MASK: u64 = (1 << PHYSICAL_SHIFT_BITS) - 1;

/// The transaction scope every timestamp is fetched for (client-go's
/// `oracle.GlobalTxnScope`). Local TSO is gone; other scopes only key caches.
pub const GLOBAL_TXN_SCOPE: &str = "global";

/// Composes a ts from its physical (Unix ms) and logical parts (client-go's `ComposeTS`).
///
/// Like client-go, `logical` is not masked: a logical value of 2^18 or more spills into the
/// physical part.
pub const fn compose_ts(physical: i64, logical: i64) -> u64 {
    ((physical << PHYSICAL_SHIFT_BITS) + logical) as u64
}

/// The physical part of a ts, in Unix milliseconds (client-go's `ExtractPhysical`).
pub const fn extract_physical(ts: u64) -> i64 {
    (ts >> PHYSICAL_SHIFT_BITS) as i64
}

/// The logical part of a ts (client-go's `ExtractLogical`).
pub const fn extract_logical(ts: u64) -> i64 {
    (ts & LOGICAL_MASK) as i64
}

/// Unix milliseconds of a wall-clock instant (client-go's `GetPhysical`); instants before
/// the epoch are negative.
pub fn get_physical(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The wall-clock instant of a ts's physical part (client-go's `GetTimeFromTS`).
pub fn get_time_from_ts(ts: u64) -> SystemTime {
    let ms = extract_physical(ts);
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// The ts (logical 0) of a wall-clock instant (client-go's `GoTimeToTS`).
pub fn time_to_ts(t: SystemTime) -> u64 {
    (get_physical(t) << PHYSICAL_SHIFT_BITS) as u64
}

/// The smallest start ts an uncommitted transaction may still have at `now`, given the
/// longest time in milliseconds a transaction may run (client-go's
/// `GoTimeToLowerLimitStartTS`).
pub fn time_to_lower_limit_start_ts(now: SystemTime, max_txn_time_use_ms: u64) -> u64 {
    time_to_ts(now - Duration::from_millis(max_txn_time_use_ms))
}

/// Nanoseconds since the Unix epoch (negative before it); the oracle's internal time unit.
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The ts of a Unix-nanosecond instant, truncated to milliseconds like `GoTimeToTS`.
pub(crate) fn nanos_to_ts(nanos: i128) -> u64 {
    ((nanos.div_euclid(1_000_000) as i64) << PHYSICAL_SHIFT_BITS) as u64
}

/// Per-call options of an [`Oracle`] (client-go's `oracle.Option`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OracleOption {
    /// The transaction scope; empty means [`GLOBAL_TXN_SCOPE`]. Every scope fetches from
    /// the global TSO; the scope only keys the low-resolution cache.
    pub txn_scope: String,
}

impl OracleOption {
    /// Options for the global scope.
    pub fn global() -> OracleOption {
        OracleOption {
            txn_scope: GLOBAL_TXN_SCOPE.to_owned(),
        }
    }

    /// Options for `scope`.
    pub fn with_scope(scope: impl Into<String>) -> OracleOption {
        OracleOption {
            txn_scope: scope.into(),
        }
    }

    /// The scope, with empty mapped to [`GLOBAL_TXN_SCOPE`].
    pub fn scope(&self) -> &str {
        normalize_scope(&self.txn_scope)
    }
}

pub(crate) fn normalize_scope(scope: &str) -> &str {
    if scope.is_empty() {
        GLOBAL_TXN_SCOPE
    } else {
        scope
    }
}

/// A read ts lies ahead of the newest ts the oracle could obtain (client-go's
/// `ErrFutureTSRead`).
///
/// Returned by [`Oracle::validate_read_ts`] as the source of an
/// [`ErrorDetail::InvalidArgument`] error; use [`FutureTsRead::find`] to recognize it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot set read timestamp to a future time, readTS: {read_ts}, currentTS: {current_ts}")]
pub struct FutureTsRead {
    /// The rejected read ts.
    pub read_ts: u64,
    /// The newest ts the oracle obtained.
    pub current_ts: u64,
}

impl FutureTsRead {
    /// Finds this error in `err`'s source chain.
    pub fn find(err: &Error) -> Option<&FutureTsRead> {
        find_source::<FutureTsRead>(err)
    }

    fn into_error(self) -> Error {
        Error::new(ErrorDetail::InvalidArgument(self.to_string())).with_source(self)
    }
}

/// A stale read asked for the "latest" ts `u64::MAX` (client-go's `ErrLatestStaleRead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot set read ts to max uint64 for stale read")]
pub struct LatestStaleRead;

impl LatestStaleRead {
    /// Whether `err` carries this error in its source chain.
    pub fn is(err: &Error) -> bool {
        find_source::<LatestStaleRead>(err).is_some()
    }

    fn into_error(self) -> Error {
        Error::new(ErrorDetail::InvalidArgument(self.to_string())).with_source(self)
    }
}

fn find_source<T: std::error::Error + 'static>(err: &Error) -> Option<&T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// An error with client-go's message text, for oracle failures that have no typed form.
pub(crate) fn oracle_error(message: impl Into<String>) -> Error {
    Error::new(ErrorDetail::InvalidArgument(message.into()))
}

/// A timestamp requested with [`Oracle::get_timestamp_async`] (client-go's `oracle.Future`).
///
/// The request is already on its way when this value is returned; awaiting it is client-go's
/// `Future.Wait`.
///
/// # Cancel safety
///
/// Dropping it abandons the result; the fetch still completes in the background (and still
/// refreshes the oracle's cache).
#[must_use = "a timestamp future does nothing useful unless awaited"]
pub struct TimestampFuture {
    inner: BoxFuture<'static, Result<u64>>,
}

impl TimestampFuture {
    /// Spawns `fut` on the current runtime so it runs even before it is awaited.
    pub fn spawn(fut: impl Future<Output = Result<u64>> + Send + 'static) -> TimestampFuture {
        let handle = tokio::spawn(fut);
        TimestampFuture {
            inner: Box::pin(async move {
                handle.await.unwrap_or_else(|e| {
                    Err(Error::new(ErrorDetail::Internal(format!(
                        "timestamp task failed: {e}"
                    ))))
                })
            }),
        }
    }

    /// A future already holding `res` (client-go's low-resolution async variants).
    pub fn ready(res: Result<u64>) -> TimestampFuture {
        TimestampFuture {
            inner: Box::pin(std::future::ready(res)),
        }
    }
}

impl std::fmt::Debug for TimestampFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampFuture").finish_non_exhaustive()
    }
}

impl Future for TimestampFuture {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// A timestamp source (client-go's `oracle.Oracle`).
///
/// Object safe: share one as `Arc<dyn Oracle>`. Every async method returns a
/// `Send + 'static` future, so callers may spawn it. Implementations are cheap handles.
pub trait Oracle: Send + Sync + std::fmt::Debug + 'static {
    /// A fresh timestamp, strictly greater than every one this oracle returned before
    /// (client-go's `GetTimestamp`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future abandons the request.
    fn get_timestamp(&self, opt: &OracleOption) -> BoxFuture<'static, Result<u64>>;

    /// Starts fetching a timestamp now and returns a future for the result (client-go's
    /// `GetTimestampAsync`).
    fn get_timestamp_async(&self, opt: &OracleOption) -> TimestampFuture {
        TimestampFuture::spawn(self.get_timestamp(opt))
    }

    /// The cached timestamp of the scope, possibly up to one update interval old; no RPC
    /// (client-go's `GetLowResolutionTimestamp`).
    fn get_low_resolution_timestamp(&self, opt: &OracleOption) -> Result<u64>;

    /// [`get_low_resolution_timestamp`](Self::get_low_resolution_timestamp) as an already
    /// resolved future (client-go's `GetLowResolutionTimestampAsync`).
    fn get_low_resolution_timestamp_async(&self, opt: &OracleOption) -> TimestampFuture {
        TimestampFuture::ready(self.get_low_resolution_timestamp(opt))
    }

    /// Changes the refresh period of the low-resolution cache; zero is rejected
    /// (client-go's `SetLowResolutionTimestampUpdateInterval`).
    fn set_low_resolution_timestamp_update_interval(&self, interval: Duration) -> Result<()>;

    /// An estimate of the ts of "now minus `prev_second` seconds"; not guaranteed safe to
    /// read at (client-go's `GetStaleTimestamp`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    fn get_stale_timestamp(
        &self,
        txn_scope: &str,
        prev_second: u64,
    ) -> BoxFuture<'static, Result<u64>>;

    /// Whether a lock taken at `lock_ts` with a TTL of `ttl_ms` has expired (client-go's
    /// `IsExpired`).
    fn is_expired(&self, lock_ts: u64, ttl_ms: u64, opt: &OracleOption) -> bool;

    /// Milliseconds until a lock taken at `lock_ts` with a TTL of `ttl_ms` expires;
    /// negative once expired (client-go's `UntilExpired`).
    fn until_expired(&self, lock_ts: u64, ttl_ms: u64, opt: &OracleOption) -> i64;

    /// Stops background work; idempotent (client-go's `Close`).
    fn close(&self);

    /// The external timestamp, 0 when unset (client-go's `GetExternalTimestamp`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>>;

    /// Sets the external timestamp; it may not exceed the current TSO nor decrease
    /// (client-go's `SetExternalTimestamp`).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may or may not have taken effect.
    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>>;

    /// The minimum ts over all TSO keyspace groups (client-go's
    /// `GetAllTSOKeyspaceGroupMinTS`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    fn get_all_tso_keyspace_group_min_ts(&self) -> BoxFuture<'static, Result<u64>>;

    /// Rejects a read ts the oracle cannot vouch for (client-go's `ValidateReadTS`):
    /// `[i64::MAX, u64::MAX)`, `u64::MAX` for stale reads ([`LatestStaleRead`]), and a ts
    /// ahead of the newest one PD hands out ([`FutureTsRead`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a shared PD fetch started by this call keeps running for the other
    /// callers waiting on it.
    fn validate_read_ts(
        &self,
        read_ts: u64,
        is_stale_read: bool,
        opt: &OracleOption,
    ) -> BoxFuture<'static, Result<()>>;
}

/// Lets the pipeline's send loop validate read timestamps through an oracle (client-go
/// passes its oracle as the `ReadTSValidator` of transactional requests, SL-2 step 3).
/// Validation uses the global transaction scope.
#[derive(Debug, Clone)]
pub struct OracleReadTsValidator(pub Arc<dyn Oracle>);

impl tikv_layers::retry::ReadTsValidator for OracleReadTsValidator {
    fn validate_read_ts(
        &self,
        read_ts: u64,
        is_stale_read: bool,
    ) -> BoxFuture<'static, Result<()>> {
        self.0
            .validate_read_ts(read_ts, is_stale_read, &OracleOption::global())
    }
}

/// A read-ts validator that accepts everything (client-go's `NoopReadTSValidator`); rawkv
/// uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopReadTsValidator;

impl NoopReadTsValidator {
    /// Always `Ok(())`.
    pub fn validate_read_ts(
        &self,
        _read_ts: u64,
        _is_stale_read: bool,
        _opt: &OracleOption,
    ) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
