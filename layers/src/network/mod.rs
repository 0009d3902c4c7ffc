//! The `network` layer: per-attempt traffic accounting (client-go's `networkCollector`,
//! `internal/locate/metrics_collector.go`, called by `sendReqState.send` after every RPC).
//!
//! # Where it sits
//!
//! Right above the transport, below `replica` (which decides the attempt's target and its
//! [`AccessLocation`](crate::request::AccessLocation) from the target store's `zone` label
//! against the client's zone, SL-11), `timeout` (which stamps `max_execution_duration_ms`)
//! and `api_codec` (which stamps the API version and keyspace and prefixes V2 keys): it
//! measures each attempt as it goes on the wire and each answer as it comes off it.
//!
//! client-go's collector runs in the sender, on the request before its codec client copies
//! and encodes it, so its sizes leave out the API context and V2 key prefixes. Counting the
//! encoded messages is the closer measure of traffic, which is what the counters are for;
//! placed above `api_codec` the layer reproduces client-go's numbers exactly.
//!
//! # What it records
//!
//! For each attempt that came back (with an answer or an error), the request's encoded size
//! (with its context as [`RpcRequest::attach_context`](crate::RpcRequest::attach_context)
//! puts it on the wire, see [`request_size`]), and for an answer its encoded size:
//!
//! - into the [`ExecDetailsSink`](crate::exec_details::ExecDetailsSink) riding in the
//!   request's extensions, if any: [`TrafficDetails`](crate::exec_details::TrafficDetails),
//!   bytes sent/received to TiKV or TiFlash, total and cross-zone;
//! - when the *call* is a stale read ([`ReadInvariants::stale_read`], as the caller asked,
//!   even when a retry fell back to a leader read): [`STALE_READ_REQ_TOTAL`] `{type}` and
//!   [`STALE_READ_BYTES_TOTAL`] `{result, direction}` with `local` / `cross-zone` (an
//!   unknown location counts as local, as in client-go);
//! - for reads (`Get`, `BatchGet`, `Scan`, `Cop`, `BatchCop`, `CopStream`) with a known
//!   location: [`READ_REQUEST_BYTES`] `{type = leader|follower, result = local|cross-zone}`
//!   observes request plus response bytes.
//!
//! A zero-sized message records nothing, as in client-go.
//!
//! [`STALE_READ_REQ_TOTAL`]: crate::metrics::names::STALE_READ_REQ_TOTAL
//! [`STALE_READ_BYTES_TOTAL`]: crate::metrics::names::STALE_READ_BYTES_TOTAL
//! [`READ_REQUEST_BYTES`]: crate::metrics::names::READ_REQUEST_BYTES

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::NetworkLayer;
pub use service::{NetworkCollector, ReadInvariants, request_size};

#[cfg(test)]
mod tests;
