//! User RPC interceptors, run around every attempt (layer 8 of the default order in
//! `doc/architecture.md`: after `replica`, before `timeout`).
//!
//! This is client-go's interceptor support: the `RPCInterceptor` / `RPCInterceptorChain`
//! types of `tikvrpc/interceptor/interceptor.go` and the `interceptedClient` of
//! `internal/client/client_interceptor.go` (spec `request-path.md` TP-20, TP-21).
//!
//! - An [`Interceptor`] has a name, a synchronous [`before`](Interceptor::before) hook that
//!   sees the attempt's request with its chosen target and may change it or reject the
//!   attempt, and an optional [`after`](Interceptor::after) hook that sees (and may
//!   replace) the outcome. Closures are interceptors; [`named`] names one.
//! - An [`InterceptorChain`] runs interceptors as client-go's onion: link order outside
//!   in, nested chains flattened, a name linked twice keeps only the last one, moved to the
//!   end.
//! - The client-level chain is the layer's ([`InterceptorLayer::new`]); each request may
//!   carry its own chain in its extensions ([`with_rpc_interceptor`], client-go's
//!   `WithRPCInterceptor(ctx, ...)`). [`Intercept`] runs the client-level chain outside the
//!   request's chain, around the inner call.
//!
//! Because the layer sits inside the retry loop, hooks run once per attempt and see the
//! replica the attempt goes to (`req.target.addr`, `store_id`, `peer`). A hook that must
//! wait (for quota, for I/O) belongs in a tower layer placed next to this one instead.
//!
//! Decisions on client-go details:
//!
//! - Anonymous interceptors (closures without [`named`]) never replace one another;
//!   client-go has no anonymous interceptors (every one gets a name).
//! - client-go's asynchronous send path runs interceptors only after the response, and only
//!   when resource control is active (TP-21, a quirk). This client has one path: hooks
//!   always run before and after the attempt.
//! - Resource control (TP-20: `OnRequestWait` / `OnResponseWait` around the chain) is not
//!   built in: a resource-control hook is a user of this chain (its `after` hook settles
//!   only when a response came back), or a layer when it must wait for tokens.
//!
//! With both chains empty the layer costs nothing: no clone, no allocation, the inner
//! future is returned as is.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use tikv_layers::RpcRequest;
//! use tikv_layers::interceptor::{InterceptorLayer, named, with_rpc_interceptor};
//!
//! let attempts = Arc::new(AtomicU64::new(0));
//! let counter = Arc::clone(&attempts);
//! let layer = InterceptorLayer::default().link(named("count", move |_: &mut RpcRequest| {
//!     counter.fetch_add(1, Ordering::Relaxed);
//!     Ok(())
//! }));
//! let stack = tower::ServiceBuilder::new().layer(layer);
//! # let _ = stack;
//!
//! // A per-request interceptor, run inside the client-level ones.
//! let mut req = RpcRequest::new(tikv_proto::kvrpcpb::GetRequest::default());
//! with_rpc_interceptor(&mut req, named("tag", |r: &mut RpcRequest| {
//!     r.context.request_source = "audited".into();
//!     Ok(())
//! }));
//! ```

mod chain;
pub mod future;
mod layer;
mod service;

#[cfg(test)]
mod tests;

pub use chain::{
    AttemptInfo, Interceptor, InterceptorChain, Named, chain, named, rpc_interceptor,
    with_rpc_interceptor,
};
pub use future::ResponseFuture;
pub use layer::InterceptorLayer;
pub use service::Intercept;
