//! Execution details a caller can ask for (api.md group TRACE: client-go's
//! `util.ExecDetails`, `RegionRequestRuntimeStats` and `RequestErrorStats`).
//!
//! A caller who wants them puts an [`ExecDetailsSink`] into the request's extensions (or
//! shares one sink across many requests, e.g. every request of one transaction); the
//! `retry` layer adds to it when each call ends: how many RPCs were sent per command and how
//! long they took, how long and how often the call backed off (per backoff kind), and which
//! errors were met. Without a sink nothing is recorded and nothing is allocated.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::request::CmdType;

/// RPC count and time of one command type (client-go's `RPCRuntimeStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// RPCs sent.
    pub count: u64,
    /// Time spent waiting for them.
    pub consume: Duration,
}

/// Backoff count and time of one backoff kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffStats {
    /// Sleeps taken.
    pub count: u64,
    /// Time slept.
    pub duration: Duration,
}

/// What happened while serving the requests recorded into one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecDetails {
    /// RPCs per command (`RegionRequestRuntimeStats.RecordRPCRuntimeStats`).
    pub rpc: BTreeMap<CmdType, RpcStats>,
    /// Backoffs per kind name (`ExecDetails.BackoffCount` / `BackoffDuration`, split by kind).
    pub backoff: BTreeMap<String, BackoffStats>,
    /// Time spent waiting for TiKV answers over all attempts (`WaitKVRespDuration`).
    pub wait_kv_resp: Duration,
    /// Region and transport errors met, by label (`RequestErrorStats`).
    pub errors: BTreeMap<String, u64>,
}

impl ExecDetails {
    /// Total backoff sleeps over every kind.
    pub fn backoff_count(&self) -> u64 {
        self.backoff.values().map(|b| b.count).sum()
    }

    /// Total time slept over every kind.
    pub fn backoff_duration(&self) -> Duration {
        self.backoff.values().map(|b| b.duration).sum()
    }

    /// Total RPCs over every command.
    pub fn rpc_count(&self) -> u64 {
        self.rpc.values().map(|r| r.count).sum()
    }

    /// Adds `other` into `self` (client-go's `Merge`).
    pub fn merge(&mut self, other: &ExecDetails) {
        for (k, v) in &other.rpc {
            let e = self.rpc.entry(*k).or_default();
            e.count += v.count;
            e.consume += v.consume;
        }
        for (k, v) in &other.backoff {
            let e = self.backoff.entry(k.clone()).or_default();
            e.count += v.count;
            e.duration += v.duration;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.wait_kv_resp += other.wait_kv_resp;
    }
}

/// A shared place requests record their [`ExecDetails`] into; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ExecDetailsSink {
    inner: Arc<Mutex<ExecDetails>>,
}

impl ExecDetailsSink {
    /// An empty sink.
    pub fn new() -> ExecDetailsSink {
        ExecDetailsSink::default()
    }

    /// A copy of what was recorded so far.
    pub fn snapshot(&self) -> ExecDetails {
        self.lock().clone()
    }

    /// Adds one call's details.
    pub fn record(&self, d: &ExecDetails) {
        self.lock().merge(d);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExecDetails> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
