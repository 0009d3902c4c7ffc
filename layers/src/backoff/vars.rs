//! Caller-level backoff knobs (client-go's `kv/variables.go`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The default base, in milliseconds, of the `txnLockFast` kind (`DefBackoffLockFast`).
#[doc(alias = "DefBackoffLockFast")]
pub const DEFAULT_BACKOFF_LOCK_FAST: u32 = 10;

/// The default multiplier applied to a budget by [`Backoffer::with_vars`]
/// (`DefBackOffWeight`).
///
/// [`Backoffer::with_vars`]: super::Backoffer::with_vars
#[doc(alias = "DefBackOffWeight")]
pub const DEFAULT_BACKOFF_WEIGHT: u32 = 2;

/// The knobs a caller (a session, a statement) passes to its backoffers, mirroring
/// client-go's `kv.Variables`.
///
/// They exist so one caller can tune every backoffer it creates: the base of the
/// lock-fast kind, how much the nominal budgets are stretched, and a kill flag that stops
/// the retries of a statement the user canceled.
#[derive(Clone, Debug)]
#[non_exhaustive]
#[doc(alias = "kv.Variables")]
pub struct Variables {
    /// Base in milliseconds of the `txnLockFast` kind (`BackoffLockFast`, default 10).
    pub backoff_lock_fast: u32,
    /// Multiplier applied to a positive budget by [`Backoffer::with_vars`]
    /// (`BackOffWeight`, default 2).
    ///
    /// [`Backoffer::with_vars`]: super::Backoffer::with_vars
    pub backoff_weight: u32,
    /// The caller's kill flag (`Killed`): `0` means running, any other value is the
    /// signal that interrupted the statement. Checked after every sleep.
    pub killed: Option<Arc<AtomicU32>>,
}

impl Variables {
    /// Default values with the given kill flag (client-go's `kv.NewVariables`).
    #[doc(alias = "NewVariables")]
    pub fn new(killed: Option<Arc<AtomicU32>>) -> Variables {
        Variables {
            backoff_lock_fast: DEFAULT_BACKOFF_LOCK_FAST,
            backoff_weight: DEFAULT_BACKOFF_WEIGHT,
            killed,
        }
    }

    /// Sets the lock-fast base (milliseconds).
    #[must_use]
    pub fn backoff_lock_fast(mut self, ms: u32) -> Self {
        self.backoff_lock_fast = ms;
        self
    }

    /// Sets the budget weight.
    #[must_use]
    pub fn backoff_weight(mut self, weight: u32) -> Self {
        self.backoff_weight = weight;
        self
    }

    /// The current value of the kill flag: `0` when absent or not set.
    pub fn killed_signal(&self) -> u32 {
        self.killed.as_ref().map_or(0, |k| k.load(Ordering::SeqCst))
    }
}

impl Default for Variables {
    /// client-go's `kv.DefaultVars`: lock-fast base 10 ms, weight 2, no kill flag.
    #[doc(alias = "DefaultVars")]
    fn default() -> Self {
        Variables::new(None)
    }
}
