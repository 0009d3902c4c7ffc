//! Region location for a request that arrives without one (layer 6 of the default order
//! in `doc/architecture.md`: after `retry`, before `replica`).
//!
//! client-go's callers locate the region before they call the sender
//! (`RegionCache.LocateKey` / `LocateEndKey` / `LocateRegionByID`, RC-14, RC-15, RC-17) and
//! pass the version to `SendReq`. In this pipeline `shard` above sets
//! [`Target::region`](crate::Target::region) on every sub-request it builds; `route`
//! covers requests built by hand or sent to a pipeline without `shard`:
//!
//! - `target.region` already set: passed through untouched;
//! - otherwise the command's routing key decides ([`route_key`](crate::shard::route_key)):
//!   the region containing the key (the first key of a batch, the start of a forward
//!   range), or for a reverse scan the region ending at or after its upper bound
//!   (`locate_end_key`);
//! - a command without a key whose caller pinned `context.region_id` is located by that
//!   id (whole-region `ResolveLock`, `MvccGetByStartTs`, ...);
//! - store-level commands and commands without any of these pass through.
//!
//! A failed lookup is the call's error. The `retry` layer above records the region `route`
//! chose and keeps it for every later attempt of the call.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::RouteLayer;
pub use service::Route;

#[cfg(test)]
mod tests;
