//! The per-attempt deadline (layer 9 of the default order in `doc/architecture.md`: after
//! `interceptor`, before the API codec and the transport).
//!
//! client-go passes a timeout with every `SendReq` call and applies it to each attempt
//! inside the RPC client (`internal/client/client.go`, `sendRequest`); the whole call is
//! bounded only by the backoff budget (spec `request-path.md` SL-5, TP-9). The timeout each
//! caller passes depends on the command (TP-10: `ReadTimeoutShort`, `ReadTimeoutMedium`,
//! the coprocessor timeout, ...). This layer is that rule in one place:
//!
//! 1. when the caller left [`RequestOptions::timeout`](crate::RequestOptions::timeout)
//!    unset, it is set from the [`TimeoutPolicy`] (by default [`DefaultTimeoutPolicy`],
//!    client-go's command classes), so the transport's own deadline uses the same value;
//! 2. when `context.max_execution_duration_ms` is 0 it is set to the timeout, so TiKV
//!    gives up on work the client no longer waits for (SL-2 step 4; write callers set 20 s
//!    explicitly, `MaxWriteExecutionTime`);
//! 3. the inner call is raced against the deadline and fails with
//!    [`ErrorDetail::AttemptTimeout`](crate::ErrorDetail::AttemptTimeout) — an error whose
//!    [`is_timeout`](crate::Error::is_timeout) is true, the "deadline exceeded" the retry
//!    layer handles (TE-3).
//!
//! The layer runs once per attempt, inside the retry loop, so every attempt gets a fresh
//! deadline. It never wraps the whole call: the spec forbids that (§8.4 item 8).
//!
//! Cost: no boxing; the future is the inner future plus a `tokio::time::Sleep`, and the
//! only allocation is a copy of the target address for the error message.
//!
//! ```
//! use std::time::Duration;
//! use tikv_layers::timeout::{DefaultTimeoutPolicy, TimeoutLayer};
//!
//! let policy = DefaultTimeoutPolicy::new().with_coprocessor(Duration::from_secs(30));
//! let stack = tower::ServiceBuilder::new().layer(TimeoutLayer::with_policy(policy));
//! # let _ = stack;
//! ```

pub mod future;
mod layer;
mod policy;
mod service;

#[cfg(test)]
mod tests;

pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use policy::{
    COPR_REQ_TIMEOUT, DefaultTimeoutPolicy, HEALTH_FEEDBACK_TIMEOUT, READ_TIMEOUT_MEDIUM,
    READ_TIMEOUT_SHORT, TimeoutClass, TimeoutPolicy, UNSAFE_DESTROY_RANGE_TIMEOUT, apply_timeout,
};
pub use service::Timeout;
