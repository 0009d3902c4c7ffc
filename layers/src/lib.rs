//! `tikv-layers`: the middleware vocabulary of the `tikv` client.
//!
//! Every request the client sends is an [`RpcRequest`] flowing through a
//! `tower::Service` pipeline; every cross-cutting concern is a `tower::Layer` in this
//! crate. This crate knows nothing of PD or of tonic channels: it reaches region and store
//! state through small traits, so each layer can be tested alone against mock services.
//!
//! What lives here:
//!
//! - [`request`]: the envelope ([`RpcRequest`], [`RpcResponse`], [`Command`],
//!   [`CmdType`]), client-go's `tikvrpc` package;
//! - [`error`]: the one [`Error`] type with its [`ErrorKind`] and [`ErrorDetail`];
//! - [`classify`]: the one place that decides what a response or an error means;
//! - [`backoff`]: the [`Backoffer`](backoff::Backoffer) sleep budget and every client-go
//!   backoff kind (`config/retry`).
//!
//! - one module per layer: [`trace`], [`metrics`], [`shard`], [`resolve_lock`],
//!   [`retry`], [`route`], [`replica`], [`interceptor`], [`timeout`], [`api_codec`];
//! - [`locate`]: the traits through which layers reach region and store state;
//! - [`exec_details`]: per-request statistics callers can ask for.
//!
//! The default layer order (outermost first) is: trace, metrics, shard, resolve_lock,
//! retry, route, replica, interceptor, timeout, api_codec, then the transport; see
//! `doc/architecture.md` in the repository and `tikv::pipeline`.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api_codec;
pub mod backoff;
pub mod classify;
pub mod error;
pub mod exec_details;
pub mod interceptor;
pub mod locate;
pub mod metrics;
pub mod network;
pub mod replica;
pub mod request;
pub mod resolve_lock;
pub mod retry;
pub mod route;
pub mod ru;
pub mod shard;
pub mod timeout;
pub mod trace;

#[cfg(test)]
mod future_sizes;
#[cfg(test)]
mod test_support;

pub use error::{BoxError, Error, ErrorDetail, ErrorKind, Result};
pub use request::{
    AttemptDetails, CmdType, Command, CommandResponse, ReplicaReadType, RequestOptions, RpcRequest,
    RpcResponse, Target,
};
