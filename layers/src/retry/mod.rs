//! The region send loop: retries on region and transport errors (layer 5 of the default
//! order in `doc/architecture.md`: after `resolve_lock`, before `route`).
//!
//! Mirrors client-go's `RegionRequestSender` (`internal/locate/region_request.go`:
//! `SendReqCtx`, `sendReqState.next`, `onSendFail`, `onRegionError`); the rules are SL-1 ..
//! SL-14, TE-1 .. TE-7 and RE-0 .. RE-25 of `shared/spec/request-path.md`.
//!
//! This is deliberately not `tower::retry::Retry` (spec §8.4): each error is classified
//! into "retry now", "back off then retry", "return the response carrying the region
//! error to the caller" or "fail", the next target depends on the previous error, and
//! classification mutates shared caches that the next selection must observe. The loop
//! therefore owns a [`SelectorSlot`](crate::replica::SelectorSlot) shared with the
//! `replica` layer below it and calls the selector's feedback handlers itself.
//!
//! Every attempt is a fresh clone of the caller's request, marked `is_retry_request` after
//! the first. Backoff sleeps come from the request's [`SharedBackoffer`]; the budget is
//! the only bound on the whole call (the per-attempt deadline belongs to the `timeout`
//! layer). The response's [`AttemptDetails`](crate::AttemptDetails) report attempts, RPC
//! time and backoff time.
//!
//! Before the first attempt the loop validates a read's timestamp when a
//! [`ReadTsValidator`] is set (SL-2 step 3), and records the caller's read intent
//! ([`ReadInvariants`](crate::network::ReadInvariants)) in the request's extensions for
//! the attempt-level `network` layer. When an
//! [`ExecDetailsSink`](crate::exec_details::ExecDetailsSink) rides in the request, it adds
//! the call's RPC counts and times, backoffs, error labels (capped like client-go's
//! `RequestErrorStats`) and the replicas tried (`ReplicaAccessStats`).
//!
//! [`SharedBackoffer`]: crate::backoff::SharedBackoffer

mod layer;
mod policy;
mod read_ts;
mod service;

pub use layer::RetryLayer;
pub use read_ts::{ReadTsValidator, read_ts_to_validate};
pub use service::{ResponseFuture, Retry};

#[cfg(test)]
mod tests;
