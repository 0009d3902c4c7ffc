//! The `metrics` layer: one count and one latency observation per logical request, and
//! [`names`], the one place where every metric name of the client is declared.
//!
//! # Where it sits
//!
//! Second in the default order, right inside `trace` and outside `shard`: it sees each
//! logical request once, however many regions it is split into and however many attempts
//! it takes. Per-attempt latency is the transport's [`REQUEST_SECONDS`]; region and RPC
//! errors met along the way are counted by the send loop ([`REGION_ERR_TOTAL`],
//! [`RPC_ERR_TOTAL`]); backoff sleeps by the [`Backoffer`] ([`BACKOFF_SECONDS`]).
//!
//! # What it records
//!
//! For every request, when its future finishes:
//!
//! - [`CMD_TOTAL`] `{type, result}` incremented by one;
//! - [`CMD_SECONDS`] `{type, result}` observes the time from `call` to completion.
//!
//! `type` is the command's client-go name ([`CmdType::name`]); `result` is the class of the
//! outcome: `ok`, `region_error` or `key_error` for a response (decided by
//! [`ResponseClass`]), `err_<kind>` for an error (decided by [`Error::kind`], see
//! [`labels::error_result`]), and `canceled` when the future is dropped before it finished
//! (a drop guard, in the manner of tower-http's `on_early_drop`).
//!
//! This mirrors the per-operation latency histograms of client-go (`TiKVTxnCmdHistogram`
//! observed in `txnkv/transaction/txn.go` and `txnkv/txnsnapshot/snapshot.go`,
//! `TiKVRawkvCmdHistogram` in `rawkv/rawkv.go`), taken at one place for every command.
//!
//! # Cost
//!
//! The label sets are bounded (command types × result classes), so the metric handles are
//! resolved once, on first use, and cached in the layer: the hot path formats no string
//! and registers nothing. Handles bind to the recorder current at first use; install your
//! recorder before the first request.
//!
//! # Example
//!
//! ```
//! use tikv_layers::metrics::MetricsLayer;
//! use tikv_layers::{Error, RpcRequest, RpcResponse};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let svc = ServiceBuilder::new().layer(MetricsLayer::new()).service(service_fn(
//!     |_req: RpcRequest| async {
//!         Ok::<_, Error>(RpcResponse::new(tikv_proto::kvrpcpb::RawGetResponse::default()))
//!     },
//! ));
//! let req = RpcRequest::new(tikv_proto::kvrpcpb::RawGetRequest::default());
//! let resp = svc.oneshot(req).await?;
//! # let _ = resp;
//! # Ok(())
//! # }
//! ```
//!
//! [`REQUEST_SECONDS`]: names::REQUEST_SECONDS
//! [`REGION_ERR_TOTAL`]: names::REGION_ERR_TOTAL
//! [`RPC_ERR_TOTAL`]: names::RPC_ERR_TOTAL
//! [`BACKOFF_SECONDS`]: names::BACKOFF_SECONDS
//! [`CMD_TOTAL`]: names::CMD_TOTAL
//! [`CMD_SECONDS`]: names::CMD_SECONDS
//! [`Backoffer`]: crate::backoff::Backoffer
//! [`CmdType::name`]: crate::CmdType::name
//! [`ResponseClass`]: crate::classify::ResponseClass
//! [`Error::kind`]: crate::Error::kind
//! [`labels::error_result`]: names::labels::error_result

pub mod future;
mod handles;
mod layer;
pub mod names;
mod service;

#[cfg(test)]
mod tests;

pub use layer::MetricsLayer;
pub use names::{describe_metrics, labels};
pub use service::Metrics;
