//! Execution details a caller can ask for (api.md group TRACE: client-go's
//! `util.ExecDetails`, `RegionRequestRuntimeStats`, `RequestErrorStats` and
//! `ReplicaAccessStats` of `internal/locate/region_request.go`).
//!
//! A caller who wants them puts an [`ExecDetailsSink`] into the request's extensions (or
//! shares one sink across many requests, e.g. every request of one transaction); the
//! `retry` layer adds to it when each call ends: how many RPCs were sent per command and how
//! long they took, how long and how often the call backed off (per backoff kind), which
//! errors were met and which replicas were tried. The `network` layer adds each attempt's
//! traffic ([`TrafficDetails`], client-go's `UnpackedBytes*` counters). Without a sink
//! nothing is recorded and nothing is allocated.
//!
//! Memory stays bounded like in client-go: at most [`MAX_ERROR_LABELS`] distinct error
//! labels are kept, later labels count under [`OTHER_ERROR_LABEL`]; the replica access
//! history keeps the first [`MAX_ACCESS_INFOS`] attempts and counts the rest per peer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::request::CmdType;

/// How many distinct error labels [`ExecDetails::errors`] keeps (client-go's
/// `RequestErrorStats` keeps "the first 16 different errors").
pub const MAX_ERROR_LABELS: usize = 16;

/// The label under which errors beyond [`MAX_ERROR_LABELS`] distinct labels are counted
/// (client-go's `OtherErrCnt`, printed as `other_error`).
pub const OTHER_ERROR_LABEL: &str = "other_error";

/// How many attempts [`ReplicaAccessStats`] records one by one before counting per peer
/// (client-go keeps 5 `ReplicaAccessInfo`s).
pub const MAX_ACCESS_INFOS: usize = 5;

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

/// Error counts by label with client-go's cap (`RequestErrorStats`): a label is counted
/// under its own name while fewer than [`MAX_ERROR_LABELS`] distinct labels are known,
/// else under [`OTHER_ERROR_LABEL`].
///
/// Free function so [`ExecDetails`] and [`ReplicaAccessStats`] share the rule.
fn record_capped(errors: &mut BTreeMap<String, u64>, label: &str, n: u64) {
    if n == 0 {
        return;
    }
    let distinct = errors.len() - usize::from(errors.contains_key(OTHER_ERROR_LABEL));
    let key = if label == OTHER_ERROR_LABEL
        || (!errors.contains_key(label) && distinct >= MAX_ERROR_LABELS)
    {
        OTHER_ERROR_LABEL
    } else {
        label
    };
    match errors.get_mut(key) {
        Some(v) => *v += n,
        None => {
            errors.insert(key.to_owned(), n);
        }
    }
}

/// Writes error counts the way client-go's `RequestErrorStats.String` does:
/// `{label:count, ..., other_error:n}` (labels in order, `other_error` last).
fn fmt_errors(errors: &BTreeMap<String, u64>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("{")?;
    let mut first = true;
    for (label, n) in errors.iter().filter(|(l, _)| *l != OTHER_ERROR_LABEL) {
        if !first {
            f.write_str(", ")?;
        }
        first = false;
        write!(f, "{label}:{n}")?;
    }
    if let Some(n) = errors.get(OTHER_ERROR_LABEL) {
        if !first {
            f.write_str(", ")?;
        }
        write!(f, "{OTHER_ERROR_LABEL}:{n}")?;
    }
    f.write_str("}")
}

/// Which kind of read an attempt was (client-go's `ReqReadType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AccessReadType {
    /// A leader read (or a write).
    #[default]
    Leader,
    /// A replica (follower or learner) read.
    ReplicaRead,
    /// A stale read.
    StaleRead,
}

impl AccessReadType {
    /// The read type of an attempt sent with these context flags; a replica-read flag wins
    /// over the stale-read flag, as in client-go's `recordReplicaAccessInfo`.
    pub fn of(stale_read: bool, replica_read: bool) -> AccessReadType {
        if replica_read {
            AccessReadType::ReplicaRead
        } else if stale_read {
            AccessReadType::StaleRead
        } else {
            AccessReadType::Leader
        }
    }
}

/// One attempt that met an error (client-go's `ReplicaAccessInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaAccessInfo {
    /// The peer the attempt targeted.
    pub peer: u64,
    /// Its store.
    pub store: u64,
    /// What kind of read it was.
    pub read_type: AccessReadType,
    /// The error label the attempt met (region error label or transport error).
    pub err: String,
}

/// The replicas a call tried and the errors they answered (client-go's
/// `ReplicaAccessStats`): the first [`MAX_ACCESS_INFOS`] attempts one by one, the rest as
/// capped error counts per peer.
///
/// Its [`Display`](fmt::Display) matches client-go's `String`, e.g.
/// `{stale_read, peer:1, store:2, err:data_not_ready}, {peer:3, store:4, err:not_leader},
/// overflow_count:{{peer:5, error_stats:{server_is_busy:9}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaAccessStats {
    /// The first attempts, in order.
    pub infos: Vec<ReplicaAccessInfo>,
    /// Later attempts: error counts (capped like [`ExecDetails::errors`]) by peer id.
    pub overflow: BTreeMap<u64, BTreeMap<String, u64>>,
}

impl ReplicaAccessStats {
    /// Records one attempt that met `err` (client-go's `recordReplicaAccessInfo`).
    pub fn record(&mut self, read_type: AccessReadType, peer: u64, store: u64, err: &str) {
        if self.infos.len() < MAX_ACCESS_INFOS {
            self.infos.push(ReplicaAccessInfo {
                peer,
                store,
                read_type,
                err: err.to_owned(),
            });
            return;
        }
        record_capped(self.overflow.entry(peer).or_default(), err, 1);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty() && self.overflow.is_empty()
    }

    /// Adds `other`'s history after this one's, keeping the same bounds.
    pub fn merge(&mut self, other: &ReplicaAccessStats) {
        for i in &other.infos {
            self.record(i.read_type, i.peer, i.store, &i.err);
        }
        for (peer, errs) in &other.overflow {
            let mine = self.overflow.entry(*peer).or_default();
            for (label, n) in errs {
                record_capped(mine, label, *n);
            }
        }
    }
}

impl fmt::Display for ReplicaAccessStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, info) in self.infos.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(match info.read_type {
                AccessReadType::Leader => "{",
                AccessReadType::ReplicaRead => "{replica_read, ",
                AccessReadType::StaleRead => "{stale_read, ",
            })?;
            write!(
                f,
                "peer:{}, store:{}, err:{}}}",
                info.peer, info.store, info.err
            )?;
        }
        if !self.overflow.is_empty() {
            f.write_str(", overflow_count:{")?;
            for (i, (peer, errs)) in self.overflow.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{{peer:{peer}, error_stats:")?;
                fmt_errors(errs, f)?;
                f.write_str("}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Request and response bytes of the attempts, split by target kind and zone (client-go's
/// `ExecDetails.UnpackedBytesSent*` / `UnpackedBytesReceived*`, filled by its
/// `networkCollector`). Sizes are the protobuf-encoded sizes of the messages (client-go's
/// `GetSize`); cross-zone bytes are also counted in the totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficDetails {
    /// Bytes sent to TiKV (`UnpackedBytesSentKVTotal`).
    pub bytes_sent_kv_total: u64,
    /// Of those, bytes sent to a TiKV in another zone (`UnpackedBytesSentKVCrossZone`).
    pub bytes_sent_kv_cross_zone: u64,
    /// Bytes sent to TiFlash (`UnpackedBytesSentMPPTotal`).
    pub bytes_sent_mpp_total: u64,
    /// Of those, bytes sent to a TiFlash in another zone (`UnpackedBytesSentMPPCrossZone`).
    pub bytes_sent_mpp_cross_zone: u64,
    /// Bytes received from TiKV (`UnpackedBytesReceivedKVTotal`).
    pub bytes_received_kv_total: u64,
    /// Of those, bytes from a TiKV in another zone (`UnpackedBytesReceivedKVCrossZone`).
    pub bytes_received_kv_cross_zone: u64,
    /// Bytes received from TiFlash (`UnpackedBytesReceivedMPPTotal`).
    pub bytes_received_mpp_total: u64,
    /// Of those, bytes from a TiFlash in another zone
    /// (`UnpackedBytesReceivedMPPCrossZone`).
    pub bytes_received_mpp_cross_zone: u64,
}

impl TrafficDetails {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &TrafficDetails) {
        self.bytes_sent_kv_total += other.bytes_sent_kv_total;
        self.bytes_sent_kv_cross_zone += other.bytes_sent_kv_cross_zone;
        self.bytes_sent_mpp_total += other.bytes_sent_mpp_total;
        self.bytes_sent_mpp_cross_zone += other.bytes_sent_mpp_cross_zone;
        self.bytes_received_kv_total += other.bytes_received_kv_total;
        self.bytes_received_kv_cross_zone += other.bytes_received_kv_cross_zone;
        self.bytes_received_mpp_total += other.bytes_received_mpp_total;
        self.bytes_received_mpp_cross_zone += other.bytes_received_mpp_cross_zone;
    }
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
    /// Region and transport errors met, by label (`RequestErrorStats`): at most
    /// [`MAX_ERROR_LABELS`] distinct labels plus [`OTHER_ERROR_LABEL`] for the rest. Add
    /// with [`record_error`](Self::record_error) to keep the cap.
    pub errors: BTreeMap<String, u64>,
    /// Which replicas were tried and what they answered (`ReplicaAccessStats`).
    pub access: ReplicaAccessStats,
    /// Request and response bytes (`UnpackedBytes*`).
    pub traffic: TrafficDetails,
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

    /// Records one RPC of `cmd` that took `took` (client-go's `RecordRPCRuntimeStats`).
    pub fn record_rpc(&mut self, cmd: CmdType, took: Duration) {
        let e = self.rpc.entry(cmd).or_default();
        e.count += 1;
        e.consume += took;
    }

    /// Counts one error under `label`, or under [`OTHER_ERROR_LABEL`] once
    /// [`MAX_ERROR_LABELS`] other labels are known (client-go's `RecordRPCErrorStats`).
    pub fn record_error(&mut self, label: &str) {
        record_capped(&mut self.errors, label, 1);
    }

    /// Errors counted under [`OTHER_ERROR_LABEL`] (client-go's `OtherErrCnt`).
    pub fn other_errors(&self) -> u64 {
        self.errors.get(OTHER_ERROR_LABEL).copied().unwrap_or(0)
    }

    /// Adds `other` into `self` (client-go's `Merge`).
    ///
    /// Unlike client-go, merged error labels obey the same cap as recorded ones: a sink
    /// shared by many calls would otherwise grow with every new label.
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
            record_capped(&mut self.errors, k, *v);
        }
        self.wait_kv_resp += other.wait_kv_resp;
        self.access.merge(&other.access);
        self.traffic.merge(&other.traffic);
    }
}

/// client-go's `RegionRequestRuntimeStats.String`: per command
/// `Get:{num_rpc:2, total_time:1s}`, then `, rpc_errors:{...}` when errors were met.
impl fmt::Display for ExecDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (cmd, s)) in self.rpc.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{cmd}:{{num_rpc:{}, total_time:{:?}}}",
                s.count, s.consume
            )?;
        }
        if !self.errors.is_empty() {
            f.write_str(", rpc_errors:")?;
            fmt_errors(&self.errors, f)?;
        }
        Ok(())
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

    /// Adds one attempt's traffic (the `network` layer's per-attempt record).
    pub fn record_traffic(&self, t: &TrafficDetails) {
        self.lock().traffic.merge(t);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExecDetails> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_are_capped() {
        let mut d = ExecDetails::default();
        d.record_error("a");
        d.record_error("a");
        for i in 0..20 {
            d.record_error(&format!("e{i}"));
        }
        // "a" plus 15 of the new labels fit; the other 5 count as other_error.
        assert_eq!(d.errors.len(), MAX_ERROR_LABELS + 1);
        assert_eq!(d.other_errors(), 5);
        assert_eq!(d.errors["a"], 2);
        // A known label keeps counting under its own name.
        d.record_error("e0");
        assert_eq!(d.errors["e0"], 2);
        assert_eq!(d.other_errors(), 5);

        // Merging obeys the cap too.
        let mut other = ExecDetails::default();
        other.record_error("fresh");
        other.record_error("a");
        d.merge(&other);
        assert_eq!(d.errors["a"], 3);
        assert!(!d.errors.contains_key("fresh"));
        assert_eq!(d.other_errors(), 6);
    }

    #[test]
    fn display_matches_client_go() {
        let mut d = ExecDetails::default();
        d.record_rpc(CmdType::Get, Duration::from_secs(1));
        d.record_rpc(CmdType::Get, Duration::from_millis(1));
        assert_eq!(d.to_string(), "Get:{num_rpc:2, total_time:1.001s}");
        d.record_error("not_leader");
        assert_eq!(
            d.to_string(),
            "Get:{num_rpc:2, total_time:1.001s}, rpc_errors:{not_leader:1}"
        );
        for i in 0..20 {
            d.record_error(&format!("e{i:02}"));
        }
        assert!(d.to_string().ends_with(", other_error:5}"), "{d}");
    }

    #[test]
    fn access_stats_keep_five_then_count_per_peer() {
        let mut a = ReplicaAccessStats::default();
        assert!(a.is_empty());
        a.record(AccessReadType::of(true, false), 1, 2, "data_not_ready");
        a.record(AccessReadType::of(false, false), 3, 4, "not_leader");
        a.record(AccessReadType::of(true, true), 5, 6, "server_is_busy");
        assert_eq!(
            a.to_string(),
            "{stale_read, peer:1, store:2, err:data_not_ready}, {peer:3, store:4, \
             err:not_leader}, {replica_read, peer:5, store:6, err:server_is_busy}"
        );
        for i in 0..6 {
            a.record(AccessReadType::Leader, 5 + i % 2, 6, "server_is_busy");
        }
        assert_eq!(a.infos.len(), MAX_ACCESS_INFOS);
        assert_eq!(a.overflow[&5]["server_is_busy"], 2);
        assert_eq!(a.overflow[&6]["server_is_busy"], 2);

        let mut b = ReplicaAccessStats::default();
        b.merge(&a);
        assert_eq!(b, a);
        b.merge(&a);
        assert_eq!(b.infos.len(), MAX_ACCESS_INFOS);
        // The second copy's five infos and its overflow all land in the overflow.
        assert_eq!(b.overflow[&5]["server_is_busy"], 2 + 2 + 2);
    }

    #[test]
    fn traffic_merges_and_sink_records() {
        let sink = ExecDetailsSink::new();
        let t = TrafficDetails {
            bytes_sent_kv_total: 10,
            bytes_received_kv_total: 7,
            bytes_received_kv_cross_zone: 7,
            ..Default::default()
        };
        sink.record_traffic(&t);
        sink.record_traffic(&t);
        let d = sink.snapshot();
        assert_eq!(d.traffic.bytes_sent_kv_total, 20);
        assert_eq!(d.traffic.bytes_received_kv_cross_zone, 14);
        let mut e = ExecDetails::default();
        e.merge(&d);
        assert_eq!(e.traffic, d.traffic);
    }
}
