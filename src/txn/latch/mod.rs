//! Local latches (client-go: `internal/latch/latch.go`, `scheduler.go`; spec X1–X2).
//!
//! Optimistic transactions committed by the same client can conflict with each other; local
//! latches serialise them in-process before any prewrite is sent. Keys hash (murmur3) onto a
//! power-of-two number of slots. Each slot keeps, per key, the largest commit ts committed through
//! it and the current holder. A transaction acquires its keys in sorted order: a key whose
//! recorded commit ts is newer than the transaction's start ts makes it *stale* (it would hit a
//! write conflict anyway), a held key makes it wait. Releasing records the commit ts and hands the
//! key to the first waiter for the same key, which may then turn out stale.

mod latches;
mod scheduler;

pub use self::latches::{Latches, Lock};
pub use self::scheduler::LatchesScheduler;
