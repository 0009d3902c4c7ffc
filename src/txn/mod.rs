//! Transactions: the write buffer, local latches and (later) the 2PC committer.
//!
//! * [`flags`] — per-key metadata flags (client-go: `kv/keyflags.go`).
//! * [`memdb`] — the write buffer, its snapshots, the union store and the pipelined buffer
//!   (client-go: `internal/unionstore/`).
//! * [`latch`] — local latches and their scheduler (client-go: `internal/latch/`).

pub mod flags;
pub mod latch;
pub mod memdb;
