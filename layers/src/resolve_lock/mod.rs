//! Lock resolution for transactional reads (layer 4 of the default order in
//! `doc/architecture.md`: after `shard`, before `retry`).
//!
//! When a read finds a key locked by another transaction, TiKV answers with a
//! `KeyIsLocked` key error carrying the lock. client-go's readers then ask the lock
//! resolver to settle the lock's transaction and read again; this layer is that loop, for
//! the reads client-go runs it on (`txnkv/txnsnapshot/snapshot.go`, `scan.go`):
//!
//! | command | locks looked at | resolve options | resend |
//! | --- | --- | --- | --- |
//! | `Get` (`KVSnapshot.get`) | the response's key error | lite, for read | the same key |
//! | `BatchGet`, `BufferBatchGet` (`batchGetSingleRegion`) | the response's key error, else every pair's | for read | only the locked keys (pairs already read are kept and merged into the final answer), or every key after a response-level lock |
//! | `Scan` (`Scanner.getData`) | the response's key error only (locks on single pairs are the scanner's) | plain | the same request |
//!
//! For each lock met, the layer calls the [`LockResolver`] with the request's backoffer,
//! records the transactions it may now ignore or read through in the request context
//! (`resolved_locks`, `committed_locks`, client-go's `ClientHelper`), and:
//!
//! - resends at once when everything was resolved (`ms_before_expired == 0`);
//! - else backs off `txnLockFast` on the request's budget, at most until the lock expires
//!   (client-go's `BackoffWithMaxSleepTxnLockFast`), then resends; an exhausted budget
//!   fails the read with [`ErrorDetail::ResolveLockTimeout`](crate::ErrorDetail::ResolveLockTimeout).
//!
//! Also as in client-go: a stale read that met a lock is resent to the leader with no busy
//! threshold (`DisableStaleReadMeetLock`), and an auto-commit point get (start ts
//! `u64::MAX`) is only blocked by the first lock it met: a lock of another transaction on
//! a later round is read through without resolving.
//!
//! Every other answer passes through untouched: other commands, answers without locks,
//! region errors (the shard layer re-splits), key errors that are not locks (the caller
//! maps them with [`extract_key_error`](crate::classify::extract_key_error)), and
//! transport errors. A read without a lock costs one clone of the request and of the inner
//! service; the resolve loop is boxed only once a lock was met.
//!
//! Not here (they arrive with the transaction code): the lock resolver itself, the
//! "resolving locks" registry client-go keeps for diagnostics, and sharing the learned
//! `resolved_locks` / `committed_locks` across the reads of one snapshot.
//!
//! ```
//! use std::sync::Arc;
//! use futures_core::future::BoxFuture;
//! use tikv_layers::Result;
//! use tikv_layers::backoff::SharedBackoffer;
//! use tikv_layers::resolve_lock::{
//!     LockResolver, ResolveLockLayer, ResolveLocksOptions, ResolveOutcome,
//! };
//!
//! /// A resolver that finds every lock already gone.
//! struct Optimist;
//!
//! impl LockResolver for Optimist {
//!     fn resolve_locks(
//!         &self,
//!         _bo: SharedBackoffer,
//!         _opts: ResolveLocksOptions,
//!     ) -> BoxFuture<'static, Result<ResolveOutcome>> {
//!         Box::pin(async { Ok(ResolveOutcome::resolved()) })
//!     }
//! }
//!
//! let stack = tower::ServiceBuilder::new().layer(ResolveLockLayer::new(Arc::new(Optimist)));
//! # let _ = stack;
//! ```

pub mod future;
mod layer;
mod policy;
mod read;
mod service;

#[cfg(test)]
mod tests;

pub use future::ResponseFuture;
pub use layer::ResolveLockLayer;
pub use policy::{LockResolver, ResolveLocksOptions, ResolveOutcome};
pub use service::ResolveLock;

/// Whether the layer resolves locks for this command (`Get`, `BatchGet`,
/// `BufferBatchGet`, `Scan`); every other command passes through it untouched.
pub fn resolves_locks_for(cmd: crate::CmdType) -> bool {
    read::handles(cmd)
}
