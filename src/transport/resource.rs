//! What resource control needs to know about a request before it is sent and about its
//! response afterwards, from client-go's `internal/resourcecontrol/resource_control.go`
//! (`RequestInfo`, `MakeRequestInfo`, `ResponseInfo`, `MakeResponseInfo`).
//!
//! The transport uses [`RequestInfo::bypass`] to decide whether a response is charged to
//! the caller's RU v2 accounting (client-go `sendRequest` and `SendRequestAsync`); a
//! resource-control interceptor uses both types to price a request (write bytes before the
//! send, read bytes and KV CPU time after it).

use std::time::Duration;

use tikv_layers::request::AccessLocation;
use tikv_layers::{CmdType, Command, CommandResponse, RpcRequest};
use tikv_proto::{coprocessor, kvrpcpb};

use crate::config::NEXT_GEN;

/// Request sources containing this are internal requests of the "others" kind, which
/// resource control does not account (client-go `InternalRequestPrefix +
/// InternalTxnOthers`; e.g. TiDB's privilege updates).
pub const BYPASS_REQUEST_SOURCE: &str = "internal_others";

/// The internal statistics source (client-go `InternalTxnStats`): with
/// [`NEXT_GEN`], its analyze coprocessor requests bypass resource control.
pub const STATS_REQUEST_SOURCE: &str = "stats";

/// The coprocessor request type of TiDB's analyze requests (client-go `reqTypeAnalyze`).
pub const ANALYZE_REQUEST_TYPE: i64 = 104;

/// The cost-relevant facts of a request, known before it is sent (client-go
/// `resourcecontrol.RequestInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestInfo {
    /// Bytes written, or `None` for a read.
    write_bytes: Option<u64>,
    store_id: u64,
    request_size: u64,
    access_location: AccessLocation,
    predicted_read_bytes: u64,
    is_cop: bool,
    bypass: bool,
}

impl RequestInfo {
    /// Extracts the information from `req` (client-go `MakeRequestInfo`): transactional
    /// and raw writes are writes (prewrite counts its mutations' keys and values, the
    /// primary and the secondaries; commit its keys; other writes 0 bytes), everything else
    /// a read carrying the caller's predicted read bytes; the store id comes from the
    /// context's peer (0 without one).
    pub fn new(req: &RpcRequest) -> RequestInfo {
        Self::build(req, NEXT_GEN)
    }

    fn build(req: &RpcRequest, next_gen: bool) -> RequestInfo {
        let cmd = req.cmd_type();
        let bypass = should_bypass(req, next_gen);
        let store_id = req.context.peer.as_ref().map_or(0, |p| p.store_id);
        let request_size = req.cmd.encoded_len() as u64;
        let access_location = req.target.access_location;
        if !cmd.is_txn_write() && !cmd.is_raw_write() {
            return RequestInfo {
                write_bytes: None,
                store_id,
                request_size,
                access_location,
                predicted_read_bytes: req.options.predicted_read_bytes,
                is_cop: matches!(cmd, CmdType::Cop | CmdType::CopStream),
                bypass,
            };
        }
        let len = |b: &[u8]| b.len() as u64;
        let write_bytes = match &req.cmd {
            Command::Prewrite(r) => {
                r.mutations
                    .iter()
                    .map(|m| len(&m.key) + len(&m.value))
                    .sum::<u64>()
                    + len(&r.primary_lock)
                    + r.secondaries.iter().map(|s| len(s)).sum::<u64>()
            }
            Command::Commit(r) => r.keys.iter().map(|k| len(k)).sum(),
            _ => 0,
        };
        RequestInfo {
            write_bytes: Some(write_bytes),
            store_id,
            request_size,
            access_location,
            predicted_read_bytes: 0,
            is_cop: false,
            bypass,
        }
    }

    /// Whether the request writes (client-go `IsWrite`).
    pub fn is_write(&self) -> bool {
        self.write_bytes.is_some()
    }

    /// Bytes written; 0 for reads (client-go `WriteBytes`).
    pub fn write_bytes(&self) -> u64 {
        self.write_bytes.unwrap_or(0)
    }

    /// Whether resource control must not account the request (client-go `Bypass`).
    pub fn bypass(&self) -> bool {
        self.bypass
    }

    /// The store the request goes to, 0 when the context names no peer (client-go
    /// `StoreID`).
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The encoded size of the request message (client-go `RequestSize`).
    pub fn request_size(&self) -> u64 {
        self.request_size
    }

    /// Where the serving replica is relative to the client (client-go
    /// `AccessLocationType`).
    pub fn access_location(&self) -> AccessLocation {
        self.access_location
    }

    /// The caller's estimate of the bytes a read returns, 0 when none (client-go
    /// `PredictedReadBytes`).
    pub fn predicted_read_bytes(&self) -> u64 {
        self.predicted_read_bytes
    }

    /// Whether the request is a coprocessor read, unary or streaming (client-go `IsCop`).
    pub fn is_cop(&self) -> bool {
        self.is_cop
    }
}

/// client-go `shouldBypass`: internal "others" requests always; with `next_gen`, also the
/// internal statistics source's analyze coprocessor requests.
fn should_bypass(req: &RpcRequest, next_gen: bool) -> bool {
    let source = req.context.request_source.as_str();
    if next_gen && source.contains(STATS_REQUEST_SOURCE) {
        let tp = match &req.cmd {
            Command::BatchCop(r) => r.tp,
            Command::Cop(r) | Command::CopStream(r) => r.tp,
            _ => 0,
        };
        if tp == ANALYZE_REQUEST_TYPE {
            return true;
        }
    }
    source.contains(BYPASS_REQUEST_SOURCE)
}

/// The cost-relevant facts of a response (client-go `resourcecontrol.ResponseInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseInfo {
    read_bytes: u64,
    kv_cpu: Duration,
    response_size: u64,
}

impl ResponseInfo {
    /// Extracts the information from `resp` (client-go `MakeResponseInfo`): read bytes from
    /// the scan details when present (else the data size of coprocessor responses, the
    /// whole size of scan responses), KV CPU time from the time details, and for batched
    /// coprocessor responses the same for every nested task. Commands resource control does
    /// not price give an empty info.
    pub fn new(resp: &CommandResponse) -> ResponseInfo {
        Self::build(resp, NEXT_GEN)
    }

    /// [`new`](Self::new) with the next-generation read-bytes rule chosen explicitly
    /// (the total versions size, or the processed size when that is larger), for callers
    /// that talk to both flavours and for tests.
    pub fn with_next_gen(resp: &CommandResponse, next_gen: bool) -> ResponseInfo {
        Self::build(resp, next_gen)
    }

    fn build(resp: &CommandResponse, next_gen: bool) -> ResponseInfo {
        let mut read_bytes: u64 = 0;
        let mut batched_read_bytes: u64 = 0;
        let mut batched_kv_cpu = Duration::ZERO;
        let (details_v2, details): (
            Option<&kvrpcpb::ExecDetailsV2>,
            Option<&kvrpcpb::ExecDetails>,
        ) = match resp {
            CommandResponse::Cop(r) => {
                read_bytes = r.data.len() as u64;
                for task in &r.batch_responses {
                    batched_read_bytes += batched_task_read_bytes(task, next_gen);
                    batched_kv_cpu += kv_cpu(task.exec_details_v2.as_ref(), None);
                }
                (r.exec_details_v2.as_ref(), r.exec_details.as_ref())
            }
            CommandResponse::Get(r) => (r.exec_details_v2.as_ref(), None),
            CommandResponse::BatchGet(r) => (r.exec_details_v2.as_ref(), None),
            CommandResponse::Scan(_) => {
                read_bytes = resp.encoded_len() as u64;
                (None, None)
            }
            // Streams are priced chunk by chunk as they are received.
            _ => return ResponseInfo::default(),
        };
        if let Some(scan) = details_v2.and_then(|d| d.scan_detail_v2.as_ref()) {
            read_bytes = scan_detail_read_bytes(scan, next_gen);
        }
        ResponseInfo {
            read_bytes: read_bytes + batched_read_bytes,
            kv_cpu: kv_cpu(details_v2, details) + batched_kv_cpu,
            response_size: resp.encoded_len() as u64,
        }
    }

    /// Bytes read (client-go `ReadBytes`).
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes
    }

    /// KV CPU time (client-go `KVCPU`): TiKV's process wall time.
    pub fn kv_cpu(&self) -> Duration {
        self.kv_cpu
    }

    /// The encoded size of the response (client-go `ResponseSize`).
    pub fn response_size(&self) -> u64 {
        self.response_size
    }

    /// Whether the request succeeded; always `true`, as in client-go.
    pub fn succeed(&self) -> bool {
        true
    }
}

fn batched_task_read_bytes(task: &coprocessor::StoreBatchTaskResponse, next_gen: bool) -> u64 {
    match task
        .exec_details_v2
        .as_ref()
        .and_then(|d| d.scan_detail_v2.as_ref())
    {
        Some(scan) => scan_detail_read_bytes(scan, next_gen),
        None => task.data.len() as u64,
    }
}

/// client-go `scanDetailReadBytes`: the processed versions size; with `next_gen` the total
/// versions size (skipped MVCC versions included), or the processed size when an older TiKV
/// reports it larger.
fn scan_detail_read_bytes(scan: &kvrpcpb::ScanDetailV2, next_gen: bool) -> u64 {
    if next_gen {
        scan.total_versions_size.max(scan.processed_versions_size)
    } else {
        scan.processed_versions_size
    }
}

/// client-go `getKVCPU`: the process wall time from the newest time details available.
fn kv_cpu(v2: Option<&kvrpcpb::ExecDetailsV2>, v1: Option<&kvrpcpb::ExecDetails>) -> Duration {
    if let Some(t) = v2.and_then(|d| d.time_detail_v2.as_ref()) {
        return Duration::from_nanos(t.process_wall_time_ns);
    }
    if let Some(t) = v2.and_then(|d| d.time_detail.as_ref()) {
        return Duration::from_millis(t.process_wall_time_ms);
    }
    if let Some(t) = v1.and_then(|d| d.time_detail.as_ref()) {
        return Duration::from_millis(t.process_wall_time_ms);
    }
    Duration::ZERO
}
