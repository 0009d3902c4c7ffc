//! Replica selection: which peer serves each attempt (layer 7 of the default order in
//! `doc/architecture.md`: after `route`, before `interceptor`).
//!
//! Mirrors client-go's `replicaSelector` (`internal/locate/replica_selector.go`) and the
//! context building of `RegionRequestSender` (`internal/locate/region_request.go`); the
//! rules are RS-1 .. RS-23 and SL-3 steps 5 .. 8 of `shared/spec/request-path.md`.
//!
//! The layer runs once per attempt. On the first attempt of a call it builds a
//! [`ReplicaSelector`] from the region the request was routed to (`target.region`) and
//! keeps it in the call's [`SelectorSlot`] (set in the request's call state by the
//! `retry` layer), so later attempts continue where the previous one stopped and the retry
//! layer can feed errors back into it. Without a retry layer above it, the slot is local to
//! the single attempt.
//!
//! Each attempt: pick a target (leader, follower, learner, mixed, prefer-leader, stale
//! read, label match, busy-threshold replica read, forwarding through a proxy), write the
//! region, epoch, peer, read flags, cluster id and request source into the attempt's
//! context and target, pay the backoff pending for that store, call the inner service, and
//! record the RPC time. When no replica is left, the attempt never reaches the inner
//! service: the answer is client-go's pseudo `EpochNotMatch` region error.
//!
//! ```
//! # use std::sync::Arc;
//! # use tikv_layers::replica::{ReplicaLayer, RegionServices};
//! # fn demo(svc: RegionServices) {
//! let layer = ReplicaLayer::new(svc).forwarding(true);
//! let stack = tower::ServiceBuilder::new().layer(layer);
//! # let _ = stack;
//! # }
//! ```

mod layer;
pub mod policy;
mod service;

pub use layer::ReplicaLayer;
pub use policy::{
    AttemptTarget, ReadFlags, RegionServices, Replica as ReplicaState, ReplicaSelector,
    SelectorConfig, SelectorOptions, SelectorSlot, SlotOutcome,
};
pub use service::{Replica, ResponseFuture};

#[cfg(test)]
mod tests;
