//! The backoffer handle carried by the request envelope.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tikv_proto::errorpb;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

use super::backoffer::{Backoffer, region_error_needs_backoff};
use super::kind::{BackoffConfig, BackoffKind};

/// A cheap, cloneable handle to one [`Backoffer`], shared by every attempt of a request
/// and stored in [`RpcRequest::backoffer`](crate::RpcRequest::backoffer).
///
/// This is how client-go's `bo` travels down the request path in this client: clones of
/// the handle see the same budget and counters. [`backoff`](Self::backoff) computes the
/// delay under the lock, **releases it while sleeping**, and re-locks to record the
/// outcome, so the handle can be used from any task without blocking the runtime.
///
/// The default handle carries an unlimited budget with default variables and is marked
/// as such ([`is_default`](Self::is_default)), so that [`BackoffLayer`] can replace it
/// with a configured budget.
///
/// [`BackoffLayer`]: super::BackoffLayer
#[derive(Debug, Clone)]
pub struct SharedBackoffer {
    inner: Arc<Mutex<Backoffer>>,
    default_budget: bool,
}

impl SharedBackoffer {
    /// Wraps a backoffer.
    pub fn new(bo: Backoffer) -> SharedBackoffer {
        SharedBackoffer {
            inner: Arc::new(Mutex::new(bo)),
            default_budget: false,
        }
    }

    /// Locks the backoffer; a poisoned lock is recovered, since every update leaves the
    /// counters consistent.
    fn lock(&self) -> MutexGuard<'_, Backoffer> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this is the placeholder every request starts with: the unlimited budget of
    /// [`SharedBackoffer::default`], not one a caller chose.
    pub fn is_default(&self) -> bool {
        self.default_budget
    }

    /// Whether two handles share the same backoffer.
    pub fn ptr_eq(&self, other: &SharedBackoffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// [`Backoffer::backoff`] through the handle, never holding the lock across the sleep.
    #[doc(alias = "Backoff")]
    pub async fn backoff(&self, kind: impl Into<BackoffConfig>, reason: Error) -> Result<()> {
        self.backoff_inner(kind.into(), None, reason).await
    }

    /// [`Backoffer::backoff_with_max_sleep`] through the handle.
    #[doc(alias = "BackoffWithCfgAndMaxSleep")]
    pub async fn backoff_with_max_sleep(
        &self,
        kind: impl Into<BackoffConfig>,
        max_sleep_ms: u64,
        reason: Error,
    ) -> Result<()> {
        self.backoff_inner(kind.into(), Some(max_sleep_ms), reason)
            .await
    }

    async fn backoff_inner(
        &self,
        cfg: BackoffConfig,
        max_sleep_ms: Option<u64>,
        reason: Error,
    ) -> Result<()> {
        let plan = self.lock().begin(cfg, max_sleep_ms, reason)?;
        let completed = plan.sleep().await;
        self.lock().finish(plan, completed)
    }

    /// A handle to a [fork](Backoffer::fork) of this backoffer, for a parallel
    /// sub-request (client-go's `Fork`).
    #[doc(alias = "Fork")]
    pub fn fork(&self) -> SharedBackoffer {
        SharedBackoffer::new(self.lock().fork())
    }

    /// [`Backoffer::update_using_forked`] through the handles (client-go's
    /// `UpdateUsingForked`). Does nothing when both handles share one backoffer.
    #[doc(alias = "UpdateUsingForked")]
    pub fn update_using_forked(&self, forked: &SharedBackoffer) {
        if self.ptr_eq(forked) {
            return;
        }
        let forked = forked.snapshot();
        self.lock().update_using_forked(&forked);
    }

    /// A copy of the backoffer's current state (a [`Clone`]: counters kept, progressions
    /// restarted).
    pub fn snapshot(&self) -> Backoffer {
        self.lock().clone()
    }

    /// Runs `f` with the backoffer locked, for reading statistics or resetting the budget.
    /// `f` cannot sleep: it is a plain closure.
    pub fn with<R>(&self, f: impl FnOnce(&mut Backoffer) -> R) -> R {
        f(&mut self.lock())
    }

    /// Milliseconds slept so far ([`Backoffer::total_sleep_ms`]).
    pub fn total_sleep_ms(&self) -> u64 {
        self.lock().total_sleep_ms()
    }

    /// How many times the given kind backed off ([`Backoffer::times_of`]).
    pub fn times_of(&self, kind: impl Into<BackoffConfig>) -> u64 {
        self.lock().times_of(kind)
    }

    /// The backoffer's cancellation token (a clone).
    pub fn cancel_token(&self) -> CancellationToken {
        self.lock().cancel_token().clone()
    }

    /// [`Backoffer::check_killed`] through the handle.
    #[doc(alias = "CheckKilled")]
    pub fn check_killed(&self) -> Result<()> {
        self.lock().check_killed()
    }
}

#[cfg(test)]
impl SharedBackoffer {
    /// Whether some task holds the lock right now.
    pub(crate) fn is_locked(&self) -> bool {
        self.inner.try_lock().is_err()
    }
}

impl Default for SharedBackoffer {
    /// An unlimited budget with default variables, marked as the default placeholder.
    fn default() -> Self {
        SharedBackoffer {
            inner: Arc::new(Mutex::new(Backoffer::default())),
            default_budget: true,
        }
    }
}

impl From<Backoffer> for SharedBackoffer {
    fn from(bo: Backoffer) -> Self {
        SharedBackoffer::new(bo)
    }
}

/// Backs off for a region error a caller is about to retry, if it needs it (client-go's
/// `retry.MayBackoffForRegionError`).
///
/// A real `EpochNotMatch` (one carrying the current regions) means the caller can re-split
/// and retry at once: returns `Ok` without sleeping. Every other region error, including
/// the pseudo `EpochNotMatch` with no regions, backs off `regionMiss` with the region error
/// as the reason; with a canceled token that reason (the region error itself) is returned.
#[doc(alias = "MayBackoffForRegionError")]
pub async fn may_backoff_for_region_error(
    region_err: &errorpb::Error,
    bo: &SharedBackoffer,
) -> Result<()> {
    if !region_error_needs_backoff(region_err) {
        return Ok(());
    }
    bo.backoff(BackoffKind::RegionMiss, Error::from(region_err.clone()))
        .await
}
