//! The [`LockResolver`] the layer calls, and what it is asked and answers (client-go's
//! `txnlock.ResolveLocksOptions` / `ResolveLockResult`).

use futures_core::future::BoxFuture;
use tikv_proto::kvrpcpb;

use crate::backoff::SharedBackoffer;
use crate::error::Result;

/// What to resolve (client-go's `ResolveLocksOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ResolveLocksOptions {
    /// The start ts of the reader that met the locks.
    pub caller_start_ts: u64,
    /// The locks met, as TiKV reported them.
    pub locks: Vec<kvrpcpb::LockInfo>,
    /// Resolve only the met keys instead of the whole region (client-go's "lite" resolve,
    /// used by point gets).
    pub lite: bool,
    /// The caller is a read: instead of waiting for a transaction it may be told which
    /// locks to ignore or read through (client-go's `ResolveLocksForRead`).
    pub for_read: bool,
}

impl ResolveLocksOptions {
    /// Options for a reader at `caller_start_ts` that met `locks` (not lite, not a read).
    pub fn new(caller_start_ts: u64, locks: Vec<kvrpcpb::LockInfo>) -> Self {
        ResolveLocksOptions {
            caller_start_ts,
            locks,
            lite: false,
            for_read: false,
        }
    }

    /// Sets [`lite`](Self::lite).
    #[must_use]
    pub fn lite(mut self, lite: bool) -> Self {
        self.lite = lite;
        self
    }

    /// Sets [`for_read`](Self::for_read).
    #[must_use]
    pub fn for_read(mut self, for_read: bool) -> Self {
        self.for_read = for_read;
        self
    }
}

/// What a resolution achieved (client-go's `ResolveLockResult`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolveOutcome {
    /// Milliseconds until the longest-living remaining lock expires; 0 when every lock was
    /// resolved (client-go's `TTL` / `msBeforeTxnExpired`). The reader backs off at most
    /// this long before retrying.
    pub ms_before_expired: u64,
    /// Start ts of transactions whose locks this reader may ignore (their commit ts is
    /// above the reader's ts, or they were rolled back); sent back to TiKV in
    /// `context.resolved_locks` (client-go's `IgnoreLocks`).
    pub ignore_locks: Vec<u64>,
    /// Start ts of committed transactions whose locks this reader may read through; sent
    /// back in `context.committed_locks` (client-go's `AccessLocks`).
    pub access_locks: Vec<u64>,
}

impl ResolveOutcome {
    /// Every lock was resolved.
    pub fn resolved() -> Self {
        ResolveOutcome::default()
    }

    /// Some lock is still alive and expires in `ms` milliseconds.
    pub fn expires_in(ms: u64) -> Self {
        ResolveOutcome {
            ms_before_expired: ms,
            ..Default::default()
        }
    }

    /// Sets [`ignore_locks`](Self::ignore_locks).
    #[must_use]
    pub fn with_ignore_locks(mut self, txns: Vec<u64>) -> Self {
        self.ignore_locks = txns;
        self
    }

    /// Sets [`access_locks`](Self::access_locks).
    #[must_use]
    pub fn with_access_locks(mut self, txns: Vec<u64>) -> Self {
        self.access_locks = txns;
        self
    }
}

/// Resolves the locks a read met (client-go's `LockResolver.ResolveLocksWithOpts`, as
/// `ClientHelper` calls it).
///
/// The implementation (checking each lock's primary, committing or rolling back expired
/// transactions, caching transaction status) arrives with the transaction code; the
/// `resolve_lock` layer only needs this hook. It is object safe: the layer holds an
/// `Arc<dyn LockResolver>`.
///
/// The backoffer is the request's own budget: sleeps the resolver takes (waiting for a
/// primary, retrying region errors) count against it, like client-go's `bo` argument.
pub trait LockResolver: Send + Sync + 'static {
    /// Resolves `opts.locks` for a reader at `opts.caller_start_ts`.
    ///
    /// # Errors
    ///
    /// Whatever stops the resolution (a budget exhausted, a PD or TiKV error); the read
    /// fails with it.
    fn resolve_locks(
        &self,
        bo: SharedBackoffer,
        opts: ResolveLocksOptions,
    ) -> BoxFuture<'static, Result<ResolveOutcome>>;
}

#[cfg(test)]
fn _obj_safe(_: &dyn LockResolver) {}
