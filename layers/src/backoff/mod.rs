//! The per-request sleep budget and every backoff kind of client-go's `config/retry`.
//!
//! client-go does not retry with one exponential curve. A logical operation owns one
//! [`Backoffer`]: a **budget** of total sleep (milliseconds, `0` = unlimited) shared by
//! every retry of that operation, whatever the reason. Each retry names a **kind**
//! ([`BackoffKind`]: `regionMiss`, `tikvRPC`, `txnLock`, ...) with its own base, cap and
//! [`Jitter`], its own exponential progression inside that backoffer, its own counters, and
//! the typed error reported when that kind dominated an exhausted budget. Server-busy
//! sleeps are excluded from the budget and only bounded by their own ten-minute limit.
//!
//! The pieces, and the client-go names they mirror:
//!
//! - [`BackoffKind`] / [`BackoffConfig`]: the predefined `retry.Bo*` configurations and
//!   custom ones (`retry.Config`, `retry.NewConfig`, `retry.BackoffFnCfg`);
//! - [`Variables`]: the caller knobs of `kv.Variables` (lock-fast base, budget weight,
//!   kill flag);
//! - [`Backoffer`]: `retry.Backoffer` itself, with `Backoff`, `Clone`, `Fork`,
//!   `UpdateUsingForked`, `Reset` and the statistics getters;
//! - [`SharedBackoffer`]: the cheap handle carried by the request envelope
//!   ([`RpcRequest::backoffer`](crate::RpcRequest::backoffer)); it never holds its lock
//!   across a sleep;
//! - [`may_backoff_for_region_error`], client-go's `retry.MayBackoffForRegionError`;
//! - [`BackoffLayer`]: a thin tower layer that installs a fresh budget on requests that
//!   still carry the default (unlimited) one, for hand-built pipelines.
//!
//! Sleeps use [`tokio::time::sleep`], so tests with paused time are exact, and a
//! backoffer's random source can be seeded ([`Backoffer::with_rng_seed`]).
//!
//! # Example
//!
//! ```
//! use tikv_layers::backoff::{BackoffKind, Backoffer, Variables};
//! use tikv_layers::{Error, ErrorDetail};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // A 20 s budget, doubled by the default weight like client-go's NewBackofferWithVars.
//! let mut bo = Backoffer::with_vars(20_000, Variables::default());
//! assert_eq!(bo.max_sleep_ms(), 40_000);
//! let reason = Error::new(ErrorDetail::Internal("epoch changed".into()));
//! bo.backoff(BackoffKind::RegionMiss, reason).await.expect("budget left");
//! assert_eq!(bo.total_sleep_ms(), 2);
//! # }
//! ```

mod backoffer;
mod kind;
mod layer;
mod record;
mod schedule;
mod shared;
mod vars;

#[cfg(test)]
mod tests;

pub use backoffer::Backoffer;
pub use kind::{BackoffConfig, BackoffKind, Jitter};
pub use layer::{Backoff, BackoffLayer};
pub use record::RecordedError;
pub use shared::{SharedBackoffer, may_backoff_for_region_error};
pub use vars::{DEFAULT_BACKOFF_LOCK_FAST, DEFAULT_BACKOFF_WEIGHT, Variables};

/// How many of the most recent backoff reasons a [`Backoffer`] keeps for its
/// budget-exhaustion log (client-go's `MaxRecordBackoffErrCount`).
#[doc(alias = "MaxRecordBackoffErrCount")]
pub const MAX_RECORD_BACKOFF_ERR_COUNT: usize = 3;

/// The sleep limit, in milliseconds, of the kinds excluded from the normal budget
/// (client-go's `isSleepExcluded`: only `tikvServerBusy`, ten minutes).
pub const EXCLUDED_SLEEP_LIMIT_MS: u64 = 600_000;
