//! The embedded mock cluster: PD and TiKV stores in memory (feature `mock`).
//!
//! One engine, two faces: an in-process `tower::Service` that ends the client's pipeline,
//! and real tonic gRPC servers on loopback. `shared/spec/mock-cluster.md` is the rulebook;
//! client-go's mocktikv (plus TiDB's unistore for lock waiting, async commit and 1PC) is the
//! reference.

pub mod clock;
pub mod mvcc;

pub use clock::Clock;
