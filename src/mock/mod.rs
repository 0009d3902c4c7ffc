//! The embedded mock cluster: PD and TiKV stores in memory (feature `mock`).
//!
//! One engine, two faces: an in-process `tower::Service` that ends the client's pipeline,
//! and real tonic gRPC servers on loopback. `shared/spec/mock-cluster.md` is the rulebook;
//! client-go's mocktikv (plus TiDB's unistore for lock waiting, async commit and 1PC) is the
//! reference.
//!
//! - [`Cluster`]: the topology model and the manipulation API tests use (spec §1).
//! - [`MockPd`]: the in-process PD in `pdpb` messages, with the TSO (§1.14 - §1.16).
//! - [`Mock`] / [`MockTikv`]: the shared request path and the in-process TiKV face (§2, MC-2.30).
//! - [`inject`]: injection rules, presets, the region-error catalogue, the request log (§3).
//! - [`grpc`]: the tonic PD and TiKV servers with their health service (MC-2.29).
//! - [`bare`]: the bare mock TiKV server transport tests use (MC-2.29.7).

pub mod clock;
pub mod mvcc;

pub mod bare;
pub mod cluster;
pub mod grpc;
pub mod inject;
pub mod keyspace;
pub mod pd;
mod pd_source;
mod raw;
pub mod service;

pub use bare::{BareTikvServer, OnBatchCommands};
pub use clock::Clock;
pub use cluster::{Cluster, KeyViolation, Liveness, RegionInfo, decode_key, encode_key};
pub use grpc::{MetaChecker, MockGrpc};
pub use inject::{
    Action, FirePolicy, LogEntry, Outcome, PdAction, PdRule, Phase, Preset, RegionErrorType, Rule,
    RuleHandle, StoreMatch, TransportKind,
};
pub use pd::MockPd;
pub use service::{CopContext, CoprocessorHandler, Mock, MockOptions, MockTikv, new_mock_tikv};

#[cfg(test)]
mod tests;
