//! The `trace` layer: one [`tracing`] span per logical request, and a child span per RPC
//! attempt.
//!
//! # Where it sits
//!
//! [`TraceLayer`] is the outermost layer of the default order (trace, metrics, shard,
//! resolve_lock, retry, route, replica, interceptor, timeout, transport), so its span
//! covers everything a request does: sharding, lock resolution, retries with their backoff
//! sleeps, and every attempt. [`AttemptTraceLayer`] belongs to the per-attempt stage (with
//! the interceptors, after `replica` has chosen the target): each attempt gets a
//! TRACE-level `tikv.attempt` child span naming its region, peer, store, address and
//! attempt number.
//!
//! # The request span
//!
//! [`DefaultMakeSpan`] opens a span named `tikv` at DEBUG (configurable) with:
//!
//! | field | when | value |
//! |---|---|---|
//! | `cmd`, `db.operation.name` | at the start | the command's client-go name (`Get`, `RawBatchPut`, ...) |
//! | `db.system.name` | at the start | `tikv` (OpenTelemetry database conventions) |
//! | `keyspace` | at the start, when set | the keyspace id of the context |
//! | `region_id` | at the start, when already routed | the region id |
//! | `key.len`, `key` | at the start | see [`KeyLogging`]: by default only the length |
//! | `store_id`, `addr`, `server.address` | at the end | the store that served the final attempt ([`AttemptDetails`]) |
//! | `attempt` | at the end | attempts sent ([`AttemptDetails::attempts`], else the attempts the attempt layer numbered) |
//! | `backoff_kind`, `backoff_ms` | at the end, if it backed off | the kinds that slept (comma-separated) and the total sleep, from the request's [`SharedBackoffer`] |
//! | `result` | at the end | the `metrics` layer's result label: `ok`, `region_error`, `key_error`, `err_<kind>`, or `canceled` if the future was dropped |
//! | `error.kind` | at the end, on failure | [`labels::error_kind`] of the error, the region error's label, or `key_error` |
//!
//! Fields not yet known are declared [`Empty`](tracing::field::Empty) and recorded later,
//! so subscribers see them on the span's close (with `tracing-subscriber`'s `fmt`, enable
//! `FmtSpan::CLOSE`). Keys and values are user data: no key byte is recorded unless
//! [`KeyLogging::Hex`] is chosen explicitly.
//!
//! The span is attached with [`Instrument`](tracing::Instrument): it is entered around the
//! inner `call` and on every poll of the response future, never held across an await.
//!
//! client-go has no request span of its own: its `trace` package only forwards events
//! (`TraceEvent`) to a hook, and `internal/client` turns TiKV's exec details into spans.
//! This layer follows `tower-http`'s trace layer and the OpenTelemetry database-client
//! conventions instead (design guide §3.2).
//!
//! # Example
//!
//! ```
//! use tikv_layers::trace::{KeyLogging, TraceLayer};
//! use tikv_layers::{Error, RpcRequest, RpcResponse};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tracing::Level;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let svc = ServiceBuilder::new()
//!     .layer(TraceLayer::new().level(Level::INFO).key_logging(KeyLogging::Off))
//!     .service(service_fn(|_req: RpcRequest| async {
//!         Ok::<_, Error>(RpcResponse::new(tikv_proto::kvrpcpb::RawGetResponse::default()))
//!     }));
//! let resp = svc
//!     .oneshot(RpcRequest::new(tikv_proto::kvrpcpb::RawGetRequest::default()))
//!     .await?;
//! # let _ = resp;
//! # Ok(())
//! # }
//! ```
//!
//! [`AttemptDetails`]: crate::AttemptDetails
//! [`AttemptDetails::attempts`]: crate::AttemptDetails::attempts
//! [`SharedBackoffer`]: crate::backoff::SharedBackoffer
//! [`labels::error_kind`]: crate::metrics::labels::error_kind

pub mod future;
mod layer;
mod make_span;
mod service;

#[cfg(test)]
mod tests;

pub use layer::{AttemptTraceLayer, TraceLayer};
pub use make_span::{
    ATTEMPT_SPAN_NAME, DefaultMakeSpan, KeyLogging, MAX_LOGGED_KEY_BYTES, MakeSpan,
    REQUEST_SPAN_NAME,
};
pub use service::{AttemptTrace, Trace};
