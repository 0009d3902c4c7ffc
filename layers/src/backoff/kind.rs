//! Backoff kinds and configurations (client-go's `config/retry/config.go`).

use std::borrow::Cow;
use std::fmt;

use crate::error::ErrorDetail;

use super::EXCLUDED_SLEEP_LIMIT_MS;

/// How a kind randomizes its exponential delay (client-go's `NoJitter`, `FullJitter`,
/// `EqualJitter`, `DecorrJitter`).
///
/// With `expo(n) = min(cap, base × 2ⁿ)` after `n` completed sleeps of the kind:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// `expo(n)`: a strict exponential.
    #[doc(alias = "NoJitter")]
    None,
    /// A uniform draw in `[0, expo(n))`.
    #[doc(alias = "FullJitter")]
    Full,
    /// `expo(n)/2` plus a uniform draw in `[0, expo(n)/2)`: random, but never very short.
    #[doc(alias = "EqualJitter")]
    Equal,
    /// `min(cap, base + draw in [0, 3 × last − base))`, where `last` is the previous
    /// uncapped sleep (the base at first).
    #[doc(alias = "DecorrJitter")]
    Decorrelated,
}

macro_rules! kinds {
    ($(
        $(#[$meta:meta])*
        $variant:ident = ($name:literal, $base:literal, $cap:literal, $jitter:ident, $err:expr)
    ),* $(,)?) => {
        /// Every predefined backoff kind of client-go (`retry.Bo*`), with its delay
        /// schedule and the error reported when it dominated an exhausted budget.
        ///
        /// A kind is cheap to copy; pass it to [`Backoffer::backoff`]. For a kind of your
        /// own, build a [`BackoffConfig`].
        ///
        /// [`Backoffer::backoff`]: super::Backoffer::backoff
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum BackoffKind {
            $( $(#[$meta])* $variant, )*
        }

        impl BackoffKind {
            /// Every predefined kind, in client-go's declaration order.
            pub const ALL: &'static [BackoffKind] = &[$(BackoffKind::$variant),*];

            /// The kind's name, as client-go spells it (`Config.String`); it is the key of
            /// the per-kind counters and of the metric label.
            pub const fn name(self) -> &'static str {
                match self { $(BackoffKind::$variant => $name,)* }
            }

            /// The configured base delay in milliseconds (`Config.Base`). For
            /// [`TxnLockFast`](Self::TxnLockFast) the effective base comes from
            /// [`Variables::backoff_lock_fast`](super::Variables::backoff_lock_fast).
            pub const fn base_ms(self) -> u64 {
                match self { $(BackoffKind::$variant => $base,)* }
            }

            /// The largest single delay in milliseconds before any per-call maximum.
            pub const fn cap_ms(self) -> u64 {
                match self { $(BackoffKind::$variant => $cap,)* }
            }

            /// How the delay is randomized.
            pub const fn jitter(self) -> Jitter {
                match self { $(BackoffKind::$variant => Jitter::$jitter,)* }
            }

            /// The error reported when this kind slept the longest in a budget that ran
            /// out (client-go's `Config.err`).
            pub fn error(self) -> ErrorDetail {
                match self { $(BackoffKind::$variant => $err,)* }
            }
        }
    };
}

kinds! {
    /// TiKV transport errors and batch-stream re-creation (`BoTiKVRPC`).
    #[doc(alias = "BoTiKVRPC")]
    TiKVRpc = ("tikvRPC", 100, 2000, Equal, ErrorDetail::TiKVServerTimeout),
    /// TiFlash transport errors (`BoTiFlashRPC`).
    #[doc(alias = "BoTiFlashRPC")]
    TiFlashRpc = ("tiflashRPC", 100, 2000, Equal, ErrorDetail::TiFlashServerTimeout),
    /// Waiting for a lock to be resolved (`BoTxnLock`).
    #[doc(alias = "BoTxnLock")]
    TxnLock = ("txnLock", 100, 3000, Equal, ErrorDetail::ResolveLockTimeout),
    /// PD region and store loads (`BoPDRPC`).
    #[doc(alias = "BoPDRPC")]
    PdRpc = ("pdRPC", 500, 3000, Equal, ErrorDetail::PdServerTimeout(String::new())),
    /// A region that must be reloaded (`BoRegionMiss`); starts at 2 ms because it often
    /// recovers at once.
    #[doc(alias = "BoRegionMiss")]
    RegionMiss = ("regionMiss", 2, 500, None, ErrorDetail::RegionUnavailable),
    /// A region being scheduled: no leader, read index not ready, merging
    /// (`BoRegionScheduling`).
    #[doc(alias = "BoRegionScheduling")]
    RegionScheduling = ("regionScheduling", 2, 500, None, ErrorDetail::RegionUnavailable),
    /// `ServerIsBusy` from TiKV (`BoTiKVServerBusy`). Excluded from the normal budget;
    /// bounded by [`EXCLUDED_SLEEP_LIMIT_MS`](super::EXCLUDED_SLEEP_LIMIT_MS).
    #[doc(alias = "BoTiKVServerBusy")]
    TiKVServerBusy = ("tikvServerBusy", 2000, 10000, Equal, ErrorDetail::TiKVServerBusy),
    /// `DiskFull` (`BoTiKVDiskFull`).
    #[doc(alias = "BoTiKVDiskFull")]
    TiKVDiskFull = ("tikvDiskFull", 500, 5000, None, ErrorDetail::TiKVDiskFull),
    /// `RecoveryInProgress` (`BoRegionRecoveryInProgress`).
    #[doc(alias = "BoRegionRecoveryInProgress")]
    RegionRecoveryInProgress = (
        "regionRecoveryInProgress", 100, 10000, Equal, ErrorDetail::RegionRecoveryInProgress
    ),
    /// `ServerIsBusy` from TiFlash (`BoTiFlashServerBusy`).
    #[doc(alias = "BoTiFlashServerBusy")]
    TiFlashServerBusy = ("tiflashServerBusy", 2000, 10000, Equal, ErrorDetail::TiFlashServerBusy),
    /// The lock resolver did not find the transaction yet (`BoTxnNotFound`).
    #[doc(alias = "BoTxnNotFound")]
    TxnNotFound = ("txnNotFound", 2, 500, None, ErrorDetail::ResolveLockTimeout),
    /// `StaleCommand` (`BoStaleCmd`).
    #[doc(alias = "BoStaleCmd")]
    StaleCommand = ("staleCommand", 2, 1000, None, ErrorDetail::TiKVStaleCommand),
    /// `MaxTimestampNotSynced` (`BoMaxTsNotSynced`).
    #[doc(alias = "BoMaxTsNotSynced")]
    MaxTsNotSynced = ("maxTsNotSynced", 2, 500, None, ErrorDetail::TiKVMaxTimestampNotSynced),
    /// The commit ts from PD lags behind the required one (`BoCommitTSLag`).
    #[doc(alias = "BoCommitTSLag")]
    CommitTsLag = ("commitTSLag", 2, 500, None, ErrorDetail::CommitTsLag),
    /// `RegionNotInitialized` (`BoMaxRegionNotInitialized`).
    #[doc(alias = "BoMaxRegionNotInitialized")]
    RegionNotInitialized = (
        "regionNotInitialized", 2, 1000, None, ErrorDetail::RegionNotInitialized
    ),
    /// `IsWitness` (`BoIsWitness`).
    #[doc(alias = "BoIsWitness")]
    IsWitness = ("isWitness", 1000, 10000, Equal, ErrorDetail::IsWitness),
    /// The lock-resolution fast path (`BoTxnLockFast`). Its configured base is 2 ms, but
    /// the delay schedule takes its base from
    /// [`Variables::backoff_lock_fast`](super::Variables::backoff_lock_fast) (10 ms by
    /// default).
    #[doc(alias = "BoTxnLockFast")]
    TxnLockFast = ("txnLockFast", 2, 3000, Equal, ErrorDetail::ResolveLockTimeout),
}

impl BackoffKind {
    /// The full configuration of this kind, as a [`BackoffConfig`].
    pub fn config(self) -> BackoffConfig {
        BackoffConfig {
            name: Cow::Borrowed(self.name()),
            base_ms: self.base_ms(),
            cap_ms: self.cap_ms(),
            jitter: self.jitter(),
            error: self.error(),
        }
    }

    /// Whether sleeps of this kind are excluded from the normal budget (only
    /// [`TiKVServerBusy`](Self::TiKVServerBusy), client-go's `isSleepExcluded`).
    pub fn is_excluded(self) -> bool {
        excluded_limit_ms(self.name()).is_some()
    }
}

impl fmt::Display for BackoffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A named backoff configuration: the delay schedule of a kind and the error it reports
/// when it dominated an exhausted budget (client-go's `retry.Config` with its
/// `BackoffFnCfg`).
///
/// Every [`BackoffKind`] converts into one; build your own with [`BackoffConfig::new`].
/// Kinds are identified by **name**: two configurations with the same name share one
/// progression and one set of counters inside a backoffer, a configuration named
/// `tikvServerBusy` is excluded from the budget, and one named `txnLockFast` (in any
/// case) takes its base from the backoffer's [`Variables`](super::Variables), as in
/// client-go.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[doc(alias = "Config")]
#[doc(alias = "BackoffFnCfg")]
pub struct BackoffConfig {
    name: Cow<'static, str>,
    base_ms: u64,
    cap_ms: u64,
    jitter: Jitter,
    error: ErrorDetail,
}

impl BackoffConfig {
    /// Creates a configuration (client-go's `NewConfig` with `NewBackoffFnCfg`).
    ///
    /// A base below 2 ms is raised to 2 ms when the delay schedule is built.
    #[doc(alias = "NewConfig")]
    #[doc(alias = "NewBackoffFnCfg")]
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        base_ms: u64,
        cap_ms: u64,
        jitter: Jitter,
        error: ErrorDetail,
    ) -> BackoffConfig {
        BackoffConfig {
            name: name.into(),
            base_ms,
            cap_ms,
            jitter,
            error,
        }
    }

    /// The kind's name (`Config.String`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured base delay in milliseconds (`Config.Base`).
    pub fn base_ms(&self) -> u64 {
        self.base_ms
    }

    /// The largest single delay in milliseconds.
    pub fn cap_ms(&self) -> u64 {
        self.cap_ms
    }

    /// How the delay is randomized.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The error reported when this kind dominated an exhausted budget.
    pub fn error(&self) -> &ErrorDetail {
        &self.error
    }

    /// Replaces the error reported on exhaustion with a more precise one
    /// (`Config.SetErrors`).
    #[doc(alias = "SetErrors")]
    pub fn set_error(&mut self, error: ErrorDetail) {
        self.error = error;
    }

    /// Replaces the delay schedule (`Config.SetBackoffFnCfg`).
    #[doc(alias = "SetBackoffFnCfg")]
    pub fn set_schedule(&mut self, base_ms: u64, cap_ms: u64, jitter: Jitter) {
        self.base_ms = base_ms;
        self.cap_ms = cap_ms;
        self.jitter = jitter;
    }

    /// The name as stored (borrowed for predefined kinds, so recording it never allocates).
    pub(crate) fn name_cow(&self) -> &Cow<'static, str> {
        &self.name
    }

    /// Whether this configuration uses the variables' lock-fast base
    /// (client-go compares the name case-insensitively with `txnLockFast`).
    pub(crate) fn uses_lock_fast_base(&self) -> bool {
        self.name
            .eq_ignore_ascii_case(BackoffKind::TxnLockFast.name())
    }
}

impl From<BackoffKind> for BackoffConfig {
    fn from(kind: BackoffKind) -> Self {
        kind.config()
    }
}

impl From<&BackoffConfig> for BackoffConfig {
    fn from(cfg: &BackoffConfig) -> Self {
        cfg.clone()
    }
}

impl fmt::Display for BackoffConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The sleep limit of an excluded kind, by name (client-go's `isSleepExcluded`).
pub(crate) fn excluded_limit_ms(name: &str) -> Option<u64> {
    (name == BackoffKind::TiKVServerBusy.name()).then_some(EXCLUDED_SLEEP_LIMIT_MS)
}
