//! Region fan-out: split a command by region, send the pieces, merge the answers, and
//! re-split what a region error sends back (layer 3 of the default order in
//! `doc/architecture.md`: after `metrics`, before `resolve_lock`).
//!
//! This is client-go's caller-side "outer loop" (spec `request-path.md` SL-14, §8.3
//! row 0, RC-13..RC-22). The `retry` layer below handles **one** region and hands back a
//! response still carrying the region errors client-go's `RegionRequestSender` returns to
//! its caller (`EpochNotMatch`, `KeyNotInRegion`, `RegionNotFound`, `StoreNotMatch`, the
//! pseudo `EpochNotMatch` when no replica is left, `UndeterminedResult`, ...). `shard`
//! does what client-go's callers do with them:
//!
//! - **Keys** (point commands, batch gets, batch puts and deletes, two-phase-commit
//!   actions, lite resolve, split): group the keys by region as client-go's
//!   `GroupKeysByRegion` does (`internal/locate/region_cache.go`), cut each group into
//!   batches by the [`ShardPolicy`] (client-go's `kvrpc.AppendKeyBatches` /
//!   `AppendBatches`, `rawkv.go`'s `rawBatchPairCount` / `rawBatchPutSize`, the snapshot's
//!   `batchGetSize`, the committer's `TxnCommitBatchSize`), send the batches with bounded
//!   concurrency, each on a fork of the request's backoffer (BO-7), and merge the answers
//!   in key order (`rawkv.go` `sendBatchReq` / `sendBatchPut`). A point command is the
//!   one-key case, like `rawkv.go`'s `sendReq`.
//! - **Ranges** (raw scan forward and reverse, transactional `Scan` both ways, `ScanLock`,
//!   `DeleteRange`, raw delete range, raw checksum, flashback): page region by region with
//!   the row limit, continuing at the region end (forward) or below the region start
//!   (reverse, located with `locate_end_key`), like `rawkv.go`'s `Scan`, `ReverseScan`,
//!   `DeleteRange` and `Checksum` loops, `txnsnapshot/scan.go`'s `getData`, GC's
//!   `scanLocksInOneRegionWithRange` and `rangetask/delete_range.go`.
//! - On a sub-response carrying a region error: `UndeterminedResult` is returned as it
//!   is and never resent; anything else goes through
//!   [`may_backoff_for_region_error`](crate::backoff::may_backoff_for_region_error) (no
//!   sleep for a real `EpochNotMatch`, `regionMiss` otherwise) and only that piece is
//!   located and split again.
//! - Everything else (store-level commands, commands without a region context, keyless
//!   commands pinned to a region id, coprocessor and MPP requests) passes straight
//!   through.
//!
//! Each sub-request carries `target.region`, so `route` below leaves it alone and the
//! `retry` loop keeps that region version for every attempt. A request that arrives with
//! `target.region` already set is sent there as one piece when the region holds all its
//! keys (the first page of a range); later pages and re-splits locate again.
//!
//! What a command carries and how answers merge is written once, in the `keys` module
//! that `route` shares ([`route_key`]).
//!
//! ```
//! # use std::sync::Arc;
//! # use tikv_layers::locate::RegionLocator;
//! use tikv_layers::shard::{DefaultShardPolicy, ShardLayer};
//! # fn demo(locator: Arc<dyn RegionLocator>) {
//! let layer = ShardLayer::new(locator)
//!     .policy(DefaultShardPolicy::default().with_max_concurrency(16));
//! let stack = tower::ServiceBuilder::new().layer(layer);
//! # let _ = stack;
//! # }
//! ```

mod future;
mod keys;
mod layer;
mod policy;
mod service;

pub use future::ResponseFuture;
pub use keys::{RouteKey, route_key};
pub use layer::ShardLayer;
pub use policy::{
    BATCH_GET_SIZE, BatchLimit, DEFAULT_SHARD_CONCURRENCY, DefaultShardPolicy,
    RAW_BATCH_PAIR_COUNT, RAW_BATCH_PUT_SIZE, SPLIT_BATCH_REGION_LIMIT, ShardPolicy,
    TXN_COMMIT_BATCH_SIZE, Weigh,
};
pub use service::Shard;

#[cfg(test)]
mod tests;
