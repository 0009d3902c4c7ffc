//! Batch commands: many callers' requests share long-lived `BatchCommands` streams
//! (TP-12 to TP-17), from client-go's `internal/client/client_batch.go` and
//! `conn_batch.go`.
//!
//! Shape (one set per connection pool):
//!
//! - callers build an [`Entry`] and put it on the pool's bounded queue
//!   (`BatchConn::send`, client-go `sendBatchRequest`); the entry owns a copy of the
//!   request (so later edits of the caller's request are invisible) and a `oneshot` sender;
//! - one send task (`send_loop`, client-go `batchSendLoop`) drains the queue into a
//!   [`BatchBuilder`] (a priority queue), optionally waits for more, picks a connection
//!   round-robin (`get_client_and_send`) and sends one `BatchCommandsRequest` per
//!   forwarded host with fresh request ids;
//! - one receive task per (connection, forwarded host) stream (`recv_loop`, client-go
//!   `batchRecvLoop`) matches responses to entries by id; on a stream failure it fails
//!   exactly that stream's in-flight entries and re-opens the stream (with backoff for the
//!   first broken stream of a reconnection epoch, see `repair`). A panic while handling a
//!   response (an [`EventListener`](super::EventListener), or a bug) is caught and treated
//!   like a stream failure ([`RECV_LOOP_PANICKED`]).
//!
//! Every entry carries an [`EntryProgress`] (batched, sent, first response of its batch,
//! received) from which the timeout reason ([`format_timeout_reason`]), the per-stage
//! duration metrics ([`visit_observations`]) and the inspection of slow requests
//! ([`inspect_pending`]) are derived, as in client-go.
//!
//! Every task watches the pool's [`CancellationToken`] and ends when the pool is closed or
//! dropped; each caller's own token (its request's backoffer token) cancels only its entry.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tikv_layers::{Error, ErrorDetail};
use tikv_proto::tikvpb::tikv_client::TikvClient;
use tikv_proto::tikvpb::{
    BatchCommandsRequest, BatchCommandsResponse, batch_commands_request, batch_commands_response,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::Shared;
use super::metrics::StoreMetrics;
use super::monitor::{ConnState, ConnStateCell};
use super::policy::TurboBatchTrigger;
use super::pool::Conn;
use super::queue::{HIGH_TASK_PRIORITY, PriorityQueue, QueueItem};
use crate::config::DEF_MAX_CONCURRENCY_REQUEST_LIMIT;

/// gRPC metadata key naming the store a proxy should forward to (client-go
/// `forwardMetadataKey`).
pub const FORWARD_METADATA_KEY: &str = "tikv-forwarded-host";
/// gRPC metadata key carrying the connection index of a batch stream (client-go
/// `batchConnIdxMetadataKey`).
pub const BATCH_CONN_INDEX_METADATA_KEY: &str = "tikv-batch-conn-index";

/// A pool's batch connection goes idle after this long without requests (client-go
/// `idleTimeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3 * 60);

/// Message of the error given to queued entries when no stream can take them.
pub const NO_AVAILABLE_CONNECTIONS: &str = "no available connections";
/// Message of the error given to callers when the pool closes under them.
pub const BATCH_CONN_CLOSED: &str = "batchConn closed";
/// Message of the error given to async callers still in flight when the pool closes.
pub const BATCH_CLIENT_CLOSED: &str = "batch client closed";

type BatchResult = Result<batch_commands_response::Response, Error>;

/// What a whole `BatchCommandsRequest` went through; shared by every entry sent in it
/// (client-go `batchCommandsRequestState`).
#[derive(Debug)]
pub struct BatchState {
    /// The acknowledged-id watermark of the stream the batch went out on (client-go
    /// `batchCommandsStream.maxRespReqID`); `None` when unknown.
    stream_acked: Option<Arc<AtomicU64>>,
    /// Number of requests in the batch.
    batch_size: usize,
    /// When the batch was ready to be sent (the message's `client_send_time_ns`).
    send_start: Instant,
    /// Nanoseconds from `send_start` until the stream took the message (0: not yet).
    sent_after_send_start_ns: AtomicU64,
    /// Nanoseconds from `send_start` until the first response of the batch arrived (0: not
    /// yet).
    first_resp_after_send_start_ns: AtomicU64,
}

impl BatchState {
    /// A batch of `batch_size` requests ready to be sent at `send_start` on the stream whose
    /// acknowledged-id watermark is `stream_acked`.
    pub fn new(
        batch_size: usize,
        send_start: Instant,
        stream_acked: Option<Arc<AtomicU64>>,
    ) -> BatchState {
        BatchState {
            stream_acked,
            batch_size,
            send_start,
            sent_after_send_start_ns: AtomicU64::new(0),
            first_resp_after_send_start_ns: AtomicU64::new(0),
        }
    }

    /// Records that the stream took the message `ns` nanoseconds after the send started.
    pub fn mark_sent(&self, ns: u64) {
        self.sent_after_send_start_ns
            .store(ns.max(1), Ordering::Relaxed);
    }

    /// Records the first response of the batch, `ns` nanoseconds after the send started;
    /// later calls keep the first value. Returns whether this call was the first.
    pub fn mark_first_response(&self, ns: u64) -> bool {
        self.first_resp_after_send_start_ns
            .compare_exchange(0, ns.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether any response of the batch has arrived, i.e. TiKV has started on it.
    pub fn started(&self) -> bool {
        self.first_resp_after_send_start_ns.load(Ordering::Relaxed) != 0
    }
}

/// Timestamps of one entry's way through the batch path, for timeout messages, stage
/// metrics and the inspection of pending requests (client-go's progress fields of
/// `batchCommandsEntry`). All offsets are nanoseconds after the entry arrived; 0 means "not
/// yet".
#[derive(Debug)]
pub struct EntryProgress {
    arrive: Instant,
    /// The request id, once the builder assigned one (0 before).
    request_id: AtomicU64,
    /// Offset of the builder picking the entry for a batch.
    batched_ns: AtomicU64,
    /// The batch the entry went out in, once sent.
    batch: OnceLock<Arc<BatchState>>,
    /// Offset of the entry's response.
    recv_ns: AtomicU64,
}

fn since_ns(from: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(from).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl EntryProgress {
    /// The progress of an entry that arrived at `arrive` and has done nothing yet.
    pub fn new(arrive: Instant) -> EntryProgress {
        EntryProgress {
            arrive,
            request_id: AtomicU64::new(0),
            batched_ns: AtomicU64::new(0),
            batch: OnceLock::new(),
            recv_ns: AtomicU64::new(0),
        }
    }

    /// When the entry arrived.
    pub fn arrive(&self) -> Instant {
        self.arrive
    }

    /// The request id (0 before the builder assigned one).
    pub fn request_id(&self) -> u64 {
        self.request_id.load(Ordering::Relaxed)
    }

    /// Sets the request id.
    pub fn set_request_id(&self, id: u64) {
        self.request_id.store(id, Ordering::Relaxed);
    }

    /// Records that the builder picked the entry `ns` nanoseconds after it arrived.
    pub fn mark_batched(&self, ns: u64) {
        self.batched_ns.store(ns.max(1), Ordering::Relaxed);
    }

    /// Attaches the batch the entry is sent in; the first call wins.
    pub fn attach_batch(&self, batch: Arc<BatchState>) {
        let _ = self.batch.set(batch);
    }

    /// The batch the entry went out in, if it was sent.
    pub fn batch(&self) -> Option<&Arc<BatchState>> {
        self.batch.get()
    }

    /// Records the entry's response `ns` nanoseconds after it arrived; later calls keep the
    /// first value.
    pub fn mark_received(&self, ns: u64) {
        let _ = self
            .recv_ns
            .compare_exchange(0, ns.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether the stream the entry was sent on has answered a request id at least as new
    /// as this one, so TiKV got it (client-go `batchRequestReceivedByTiKV`).
    pub fn received_by_tikv(&self) -> bool {
        let id = self.request_id();
        id > 0
            && self
                .batch()
                .and_then(|b| b.stream_acked.as_ref())
                .is_some_and(|acked| id <= acked.load(Ordering::Relaxed))
    }

    /// The four offsets `(batched, sent, first response, received)` with the sent offset
    /// normalised (client-go `loadBatchRequestProgress`).
    fn load(&self) -> (u64, u64, u64, u64) {
        let batched = self.batched_ns.load(Ordering::Relaxed);
        let (mut sent, mut first_resp) = (0, 0);
        if let Some(b) = self.batch() {
            let send_start = since_ns(self.arrive, b.send_start);
            let s = b.sent_after_send_start_ns.load(Ordering::Relaxed);
            if s > 0 {
                sent = send_start.saturating_add(s);
            }
            let f = b.first_resp_after_send_start_ns.load(Ordering::Relaxed);
            if f > 0 {
                first_resp = send_start.saturating_add(f);
            }
        }
        let recv = self.recv_ns.load(Ordering::Relaxed);
        let sent = normalize_observed_sent_ns(batched, sent, first_resp, recv);
        (batched, sent, first_resp, recv)
    }
}

/// Clamps the observed send offset against a later receive event: the send side stamps its
/// offset after handing the message over, so a reader may see the response first, or a send
/// offset past it (client-go `normalizeObservedSentNS`).
fn normalize_observed_sent_ns(batched: u64, sent: u64, first_resp: u64, recv: u64) -> u64 {
    let boundary = if recv == 0 { first_resp } else { recv };
    if boundary > 0 {
        if sent == 0 {
            return batched + 1;
        }
        if sent > boundary {
            return boundary - 1;
        }
    }
    sent
}

/// Renders `d` the way Go's `time.Duration.String` does (`1.5ms`, `7m30s`, `0s`).
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    // Integer part and up to `digits` fractional digits, trailing zeros trimmed.
    fn frac(v: u128, unit: u128, digits: usize) -> String {
        let int = v / unit;
        let rem = v % unit;
        if rem == 0 {
            return int.to_string();
        }
        let s = format!("{rem:0digits$}");
        format!("{int}.{}", s.trim_end_matches('0'))
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000, 6));
    }
    let total_s = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
    let secs = frac(s * 1_000_000_000 + sub, 1_000_000_000, 9);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Rounds `d` to two significant decimals of its unit (one when it is ten units or more)
/// and renders it like Go (client-go `util.FormatDuration`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns <= 1_000 {
        return go_duration(d);
    }
    let unit: u128 = if ns >= 1_000_000_000 {
        1_000_000_000
    } else if ns >= 1_000_000 {
        1_000_000
    } else {
        1_000
    };
    let integer = (ns / unit) * unit;
    let decimal = (ns % unit) as f64 / unit as f64;
    let decimal = if ns < 10 * unit {
        (decimal * 100.0).round() / 100.0
    } else {
        (decimal * 10.0).round() / 10.0
    };
    let rounded = integer + (decimal * unit as f64) as u128;
    go_duration(Duration::from_nanos(
        u64::try_from(rounded).unwrap_or(u64::MAX),
    ))
}

fn fmt_ns(ns: u64) -> String {
    format_duration(Duration::from_nanos(ns.max(1)))
}

/// Appends `EntryProgress{batch:…, size:…, send:…, ack:…, recv:…, fwd:…}` to `buf`, as
/// seen at `now` (client-go `writeBatchCommandsEntryProgress`): `batch` is the wait for the
/// builder, `send` the wait until the stream took the message (or, when not sent yet, the
/// time since the entry was batched), `ack` the wait for the batch's first response (or
/// `yes` when the stream acknowledged a later id), `recv` the wait for this response.
pub fn write_progress(
    buf: &mut String,
    progress: &EntryProgress,
    forwarded_host: &str,
    now: Instant,
) {
    buf.push_str("EntryProgress{");
    let (batched, sent, first_resp, recv) = progress.load();
    if batched == 0 {
        buf.push('}');
        return;
    }
    let _ = write!(buf, "batch:{}", fmt_ns(batched));
    if let Some(b) = progress.batch()
        && b.batch_size > 0
    {
        let _ = write!(buf, ", size:{}", b.batch_size);
    }
    if sent == 0 && recv == 0 {
        let waited = since_ns(progress.arrive, now).saturating_sub(batched);
        let _ = write!(buf, ", send:{}", fmt_ns(waited));
        if progress.received_by_tikv() {
            buf.push_str(", ack:yes");
        }
        buf.push('}');
        return;
    }
    let _ = write!(buf, ", send:{}", fmt_ns(sent.saturating_sub(batched)));
    if first_resp > 0 {
        let _ = write!(buf, ", ack:{}", fmt_ns(first_resp.saturating_sub(sent)));
    } else if progress.received_by_tikv() {
        buf.push_str(", ack:yes");
    }
    if recv > 0 {
        let _ = write!(buf, ", recv:{}", fmt_ns(recv.saturating_sub(sent)));
    }
    if !forwarded_host.is_empty() {
        let _ = write!(buf, ", fwd:{forwarded_host}");
    }
    buf.push('}');
}

/// [`write_progress`] into a new string.
pub fn format_progress(progress: &EntryProgress, forwarded_host: &str, now: Instant) -> String {
    let mut s = String::new();
    write_progress(&mut s, progress, forwarded_host, now);
    s
}

/// The reason text of a batch request that timed out waiting for its answer (client-go
/// `formatBatchRequestTimeoutReason`).
pub fn format_timeout_reason(
    progress: &EntryProgress,
    forwarded_host: &str,
    timeout: Duration,
    now: Instant,
) -> String {
    let mut s = format!("wait recvLoop timeout, timeout:{}, ", go_duration(timeout));
    write_progress(&mut s, progress, forwarded_host, now);
    s
}

/// A stage of a batch request's life (client-go `batchRequestStage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchStage {
    /// Queued until the builder picked it.
    BatchWait,
    /// Picked until the stream took the message.
    SendWait,
    /// Sent until its response arrived.
    RecvWait,
    /// The whole request, arrival to completion (only for answered requests).
    Done,
}

impl BatchStage {
    pub(crate) const COUNT: usize = 4;
    pub(crate) const ALL: [BatchStage; Self::COUNT] = [
        BatchStage::BatchWait,
        BatchStage::SendWait,
        BatchStage::RecvWait,
        BatchStage::Done,
    ];

    /// The `stage` label value.
    pub fn label(self) -> &'static str {
        match self {
            BatchStage::BatchWait => "batch_wait",
            BatchStage::SendWait => "send_wait",
            BatchStage::RecvWait => "recv_wait",
            BatchStage::Done => "done",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Calls `visit(stage, outcome, duration)` for every stage the request went through, as
/// seen at `now`: completed stages with [`BatchOutcome::Ok`], the stage it stopped in with
/// `terminal`, and [`BatchStage::Done`] only for an answered request (client-go
/// `visitBatchRequestObservations`). Durations are at least 1 ns.
pub fn visit_observations(
    progress: &EntryProgress,
    terminal: BatchOutcome,
    now: Instant,
    mut visit: impl FnMut(BatchStage, BatchOutcome, Duration),
) {
    let d = |ns: u64| Duration::from_nanos(ns.max(1));
    let now_ns = since_ns(progress.arrive, now);
    let (batched, sent, first_resp, recv) = progress.load();
    if batched == 0 {
        visit(BatchStage::BatchWait, terminal, d(now_ns));
        return;
    }
    visit(BatchStage::BatchWait, BatchOutcome::Ok, d(batched));
    if sent == 0 && recv == 0 {
        if first_resp > 0 {
            visit(
                BatchStage::SendWait,
                BatchOutcome::Ok,
                d(sent.saturating_sub(batched)),
            );
            visit(
                BatchStage::RecvWait,
                terminal,
                d(now_ns.saturating_sub(sent)),
            );
            return;
        }
        visit(
            BatchStage::SendWait,
            terminal,
            d(now_ns.saturating_sub(batched)),
        );
        return;
    }
    visit(
        BatchStage::SendWait,
        BatchOutcome::Ok,
        d(sent.saturating_sub(batched)),
    );
    if recv == 0 {
        visit(
            BatchStage::RecvWait,
            terminal,
            d(now_ns.saturating_sub(sent)),
        );
        return;
    }
    visit(
        BatchStage::RecvWait,
        BatchOutcome::Ok,
        d(recv.saturating_sub(sent)),
    );
    if terminal == BatchOutcome::Ok {
        visit(BatchStage::Done, BatchOutcome::Ok, d(now_ns));
    }
}

/// A request waiting this long for its answer counts as slow (client-go
/// `batchRequestSlowThreshold`).
pub const PENDING_SLOW_THRESHOLD: Duration = Duration::from_secs(30);
/// A request waiting this long for its answer counts as hanging (client-go
/// `batchRequestHangThreshold`).
pub const PENDING_HANG_THRESHOLD: Duration = Duration::from_secs(90);

/// What [`inspect_pending`] found among the requests in flight (client-go
/// `pendingBatchRequestStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingStats {
    /// Id of the request waiting longest (among the slow ones).
    pub oldest_id: Option<u64>,
    /// How long it has waited.
    pub oldest_wait: Duration,
    /// Requests waiting at least [`PENDING_SLOW_THRESHOLD`].
    pub slow: usize,
    /// Slow requests TiKV has not confirmed (no response of their batch, no later id
    /// acknowledged by their stream).
    pub slow_unconfirmed: usize,
    /// Requests waiting at least [`PENDING_HANG_THRESHOLD`].
    pub hanging: usize,
    /// Hanging requests TiKV has not confirmed.
    pub hanging_unconfirmed: usize,
}

/// Counts slow, hanging and unconfirmed requests among `(request id, progress)` pairs and
/// finds the oldest, as seen at `now` (client-go `inspectPendingBatchRequests`).
pub fn inspect_pending<'a>(
    entries: impl IntoIterator<Item = (u64, &'a EntryProgress)>,
    now: Instant,
) -> PendingStats {
    let mut stats = PendingStats::default();
    for (id, p) in entries {
        let wait = now.saturating_duration_since(p.arrive);
        if wait < PENDING_SLOW_THRESHOLD {
            continue;
        }
        stats.slow += 1;
        let unconfirmed = match p.batch() {
            None => true,
            Some(b) => {
                b.first_resp_after_send_start_ns.load(Ordering::Relaxed) == 0
                    && !p.received_by_tikv()
            }
        };
        if unconfirmed {
            stats.slow_unconfirmed += 1;
        }
        if wait >= PENDING_HANG_THRESHOLD {
            stats.hanging += 1;
            if unconfirmed {
                stats.hanging_unconfirmed += 1;
            }
        }
        if stats.oldest_id.is_none() || wait > stats.oldest_wait {
            stats.oldest_id = Some(id);
            stats.oldest_wait = wait;
        }
    }
    stats
}

/// The caller side of an entry: where the answer goes.
#[derive(Debug)]
pub struct EntrySink {
    tx: oneshot::Sender<BatchResult>,
    forwarded_host: String,
    priority: u64,
    progress: Arc<EntryProgress>,
}

impl EntrySink {
    /// Whether the caller is gone (its future was dropped, it timed out or was canceled).
    pub fn is_canceled(&self) -> bool {
        self.tx.is_closed()
    }

    /// The forwarded host the entry must travel to ("" for the target itself).
    pub fn forwarded_host(&self) -> &str {
        &self.forwarded_host
    }

    /// The entry's progress.
    pub fn progress(&self) -> &EntryProgress {
        &self.progress
    }

    /// Fails the entry (client-go `batchCommandsEntry.error`).
    pub fn fail(self, err: Error) {
        let _ = self.tx.send(Err(err));
    }

    fn deliver(self, resp: batch_commands_response::Response) -> bool {
        self.tx.send(Ok(resp)).is_ok()
    }
}

/// One queued request (client-go `batchCommandsEntry`).
#[derive(Debug)]
pub struct Entry {
    req: batch_commands_request::Request,
    sink: EntrySink,
}

impl Entry {
    /// Creates an entry and the receiver its caller waits on.
    pub fn new(
        req: batch_commands_request::Request,
        forwarded_host: String,
        priority: u64,
    ) -> (Entry, oneshot::Receiver<BatchResult>, Arc<EntryProgress>) {
        let (tx, rx) = oneshot::channel();
        let progress = Arc::new(EntryProgress::new(Instant::now()));
        let entry = Entry {
            req,
            sink: EntrySink {
                tx,
                forwarded_host,
                priority,
                progress: progress.clone(),
            },
        };
        (entry, rx, progress)
    }

    /// The forwarded host ("" when direct).
    pub fn forwarded_host(&self) -> &str {
        &self.sink.forwarded_host
    }
}

impl QueueItem for Entry {
    fn priority(&self) -> u64 {
        self.sink.priority
    }
    fn is_canceled(&self) -> bool {
        self.sink.is_canceled()
    }
}

/// One `BatchCommandsRequest` under construction and the entries it answers to (client-go
/// `batchCommandsRequestGroup`).
#[derive(Debug, Default)]
pub struct RequestGroup {
    /// The message to send.
    pub req: BatchCommandsRequest,
    /// One sink per `req.request_ids` element, same order.
    pub sinks: Vec<EntrySink>,
}

/// Collects queued entries into batch messages (client-go `batchCommandsBuilder`).
#[derive(Debug, Default)]
pub struct BatchBuilder {
    id_alloc: u64,
    entries: PriorityQueue<Entry>,
    latest_arrive: Option<Instant>,
}

impl BatchBuilder {
    /// An empty builder; request ids start at 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of queued entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last request id handed out.
    pub fn last_id(&self) -> u64 {
        self.id_alloc
    }

    /// Queues an entry.
    pub fn push(&mut self, entry: Entry) {
        let arrive = entry.sink.progress.arrive();
        if self.latest_arrive.is_none_or(|t| arrive > t) {
            self.latest_arrive = Some(arrive);
        }
        self.entries.push(entry);
    }

    /// Whether a queued entry has priority of at least [`HIGH_TASK_PRIORITY`].
    pub fn has_high_priority(&self) -> bool {
        self.entries.highest_priority() >= HIGH_TASK_PRIORITY
    }

    /// Takes entries in priority order, `limit` at a time, until the normal-priority count
    /// reaches `limit`; high-priority entries are always taken and not counted; canceled
    /// entries are dropped. Assigns request ids and groups entries by forwarded host
    /// (client-go `buildWithLimit`). Returns the direct group (if any) and one group per
    /// forwarded host.
    pub fn build_with_limit(
        &mut self,
        limit: i64,
    ) -> (Option<RequestGroup>, BTreeMap<String, RequestGroup>) {
        let mut direct = RequestGroup::default();
        let mut forwarded: BTreeMap<String, RequestGroup> = BTreeMap::new();
        let mut count: i64 = 0;
        let now = Instant::now();
        while (count < limit && !self.entries.is_empty()) || self.has_high_priority() {
            let n = if limit <= 0 {
                1
            } else {
                usize::try_from(limit).unwrap_or(usize::MAX)
            };
            for e in self.entries.take(n) {
                if e.is_canceled() {
                    continue;
                }
                if e.sink.priority < HIGH_TASK_PRIORITY {
                    count += 1;
                }
                let group = if e.sink.forwarded_host.is_empty() {
                    &mut direct
                } else {
                    forwarded.entry(e.sink.forwarded_host.clone()).or_default()
                };
                let progress = &e.sink.progress;
                progress.mark_batched(since_ns(progress.arrive(), now));
                self.id_alloc += 1;
                progress.set_request_id(self.id_alloc);
                group.req.request_ids.push(self.id_alloc);
                group.req.requests.push(e.req);
                group.sinks.push(e.sink);
            }
        }
        let direct = (!direct.sinks.is_empty()).then_some(direct);
        (direct, forwarded)
    }

    /// Fails every queued entry with `err` (client-go `batchCommandsBuilder.cancel`).
    pub fn cancel(&mut self, err: &Error) {
        for e in self.entries.drain_all() {
            e.sink.fail(clone_error(err));
        }
    }

    /// Drops canceled entries; the others stay queued for the next round (client-go
    /// `batchCommandsBuilder.reset`).
    pub fn reset(&mut self) {
        self.entries.clean();
    }
}

/// Copies an error's detail (errors are not `Clone`; the source chain is summarized in the
/// message of transport errors already).
pub(crate) fn clone_error(err: &Error) -> Error {
    Error::new(err.detail().clone())
}

fn transport_error(addr: &str, message: impl Into<String>) -> Error {
    ErrorDetail::Transport {
        addr: addr.to_owned(),
        message: message.into(),
    }
    .into()
}

// ===== streams =====

/// The request half of a `BatchCommands` stream: an unbounded channel the send loop feeds.
struct RequestStream(mpsc::UnboundedReceiver<BatchCommandsRequest>);

impl Stream for RequestStream {
    type Item = BatchCommandsRequest;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

struct StreamSlot {
    tx: mpsc::UnboundedSender<BatchCommandsRequest>,
    acked: Arc<AtomicU64>,
}

#[derive(Default)]
struct Streams {
    slots: HashMap<String, StreamSlot>,
    repairing: HashSet<String>,
}

/// Message of the error given to in-flight requests of a stream whose receive loop
/// panicked (client-go recovers the panic of `batchRecvLoop` the same way).
pub const RECV_LOOP_PANICKED: &str = "batch recv loop panicked";

/// One connection's batch client: its streams (one per forwarded host) and the entries in
/// flight on them (client-go `batchCommandsClient`).
pub(crate) struct BatchClient {
    idx: usize,
    addr: String,
    /// The `Tikv` client of the connection, with the pool's call options (TP-4).
    client: TikvClient<Channel>,
    /// The connection's state for the TP-8 monitor: opening a stream connects, a broken
    /// stream reconnects, a failed open backs off in transient failure.
    state: Arc<ConnStateCell>,
    shared: Arc<Shared>,
    metrics: Arc<StoreMetrics>,
    token: CancellationToken,
    load: Arc<AtomicU64>,
    streams: Mutex<Streams>,
    inflight: Mutex<HashMap<u64, EntrySink>>,
    sent: AtomicI64,
    limit: i64,
    recreating: AtomicUsize,
    held: AtomicBool,
    /// Bumped once per reconnection of the connection: the first broken stream of an epoch
    /// backs off and re-creates; streams that break in the same epoch only re-open
    /// themselves (client-go `batchCommandsClient.epoch`).
    epoch: AtomicU64,
    /// With a batch window (`TikvClientConfig::batch_window` > 0): the messages sent on
    /// this connection that had no response yet when last looked at, oldest first. Pruned
    /// lazily by [`BatchClient::window_has_room`]; empty when the window is off.
    unstarted: Mutex<VecDeque<Arc<BatchState>>>,
    /// Wakes the pool's send loop when a message of this connection gets its first
    /// response or the window is reset, so a batch held for the window goes out (shared
    /// by the clients of one pool).
    window_open: Arc<Notify>,
    /// With a batch window: callers answered since the send loop last looked (shared by
    /// the clients of one pool). Each is likely to send its next request right away, so
    /// the send loop waits (briefly) for that many before it sends.
    freed: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BatchClient {
    /// Spare concurrency: `limit - in flight`, never negative (client-go `available`).
    pub(crate) fn available(&self) -> i64 {
        let sent = self.sent.load(Ordering::Relaxed);
        if sent > 0 {
            (self.limit - sent).max(0)
        } else {
            self.limit
        }
    }

    /// In-flight count (for tests and metrics).
    pub(crate) fn in_flight(&self) -> i64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The reconnection epoch (client-go `epoch`).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Whether a stream of this client is being re-created (client-go `tryLockForSend`
    /// failing), or a test hold is active.
    pub(crate) fn is_recreating(&self) -> bool {
        self.recreating.load(Ordering::Acquire) > 0 || self.held.load(Ordering::Acquire)
    }

    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    /// Whether this connection has fewer than `window` messages that TiKV has not started
    /// to answer. A message counts until its first response arrives or for `max_hold`
    /// after it was sent, whichever is first, so a lost or long-waiting message cannot
    /// close the window for good.
    pub(crate) fn window_has_room(&self, window: usize, now: Instant, max_hold: Duration) -> bool {
        let mut unstarted = lock(&self.unstarted);
        unstarted
            .retain(|b| !b.started() && now.saturating_duration_since(b.send_start) < max_hold);
        unstarted.len() < window
    }

    /// Forgets the unstarted messages (their stream broke: they will never be answered)
    /// and wakes the send loop.
    fn reset_window(&self) {
        lock(&self.unstarted).clear();
        self.window_open.notify_one();
    }

    /// Counts `n` more (or, negative, fewer) requests in flight, in the concurrency limit
    /// and in the store's in-flight gauge.
    fn add_sent(&self, n: i64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        if n >= 0 {
            self.metrics.inflight.increment(n as f64);
        } else {
            self.metrics.inflight.decrement(n.unsigned_abs() as f64);
        }
    }

    /// Slow and hanging requests in flight, as seen at `now` (client-go
    /// `inspectPendingBatchRequests`).
    pub(crate) fn inspect_pending(&self, now: Instant) -> PendingStats {
        let inflight = lock(&self.inflight);
        inspect_pending(inflight.iter().map(|(id, s)| (*id, s.progress())), now)
    }

    /// Sends one group on the stream for `host`, opening it first if needed (client-go
    /// `batchCommandsClient.send` + `initBatchClient`).
    async fn send(self: &Arc<Self>, host: &str, mut group: RequestGroup) {
        let needs_open = {
            let streams = lock(&self.streams);
            if streams.repairing.contains(host) {
                drop(streams);
                let err = transport_error(&self.addr, "batch stream is being re-created");
                for s in group.sinks {
                    s.fail(clone_error(&err));
                }
                return;
            }
            !streams.slots.contains_key(host)
        };
        if needs_open {
            match open_stream(
                &self.client,
                &self.state,
                host,
                self.idx,
                &self.shared,
                &self.addr,
            )
            .await
            {
                Ok((tx, streaming)) => {
                    let acked = Arc::new(AtomicU64::new(0));
                    lock(&self.streams).slots.insert(
                        host.to_owned(),
                        StreamSlot {
                            tx,
                            acked: acked.clone(),
                        },
                    );
                    let this = self.clone();
                    let host = host.to_owned();
                    tokio::spawn(recv_loop(this, host, streaming, acked));
                }
                Err(err) => {
                    tracing::debug!(addr = %self.addr, host, error = %err, "open batch stream failed");
                    for s in group.sinks {
                        s.fail(clone_error(&err));
                    }
                    return;
                }
            }
        }
        let n = group.sinks.len();
        self.metrics.batch_requests.record(n as f64);
        group.req.client_send_time_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let ids = group.req.request_ids.clone();
        let streams = lock(&self.streams);
        let Some(slot) = streams.slots.get(host) else {
            drop(streams);
            let err = transport_error(&self.addr, "batch stream is being re-created");
            for s in group.sinks {
                s.fail(clone_error(&err));
            }
            return;
        };
        let send_start = Instant::now();
        let state = Arc::new(BatchState::new(n, send_start, Some(slot.acked.clone())));
        if self.shared.config.batch_window > 0 {
            lock(&self.unstarted).push_back(state.clone());
        }
        {
            let mut inflight = lock(&self.inflight);
            for (id, sink) in ids.iter().zip(group.sinks) {
                let arrive = sink.progress.arrive();
                self.metrics
                    .batch_wait
                    .record(send_start.saturating_duration_since(arrive).as_secs_f64());
                sink.progress.attach_batch(state.clone());
                inflight.insert(*id, sink);
            }
        }
        self.add_sent(n as i64);
        let res = slot.tx.send(group.req);
        drop(streams);
        state.mark_sent(since_ns(send_start, Instant::now()));
        if res.is_err() {
            // The stream's request half is gone: fail exactly these ids.
            self.fail_ids(&ids, &transport_error(&self.addr, "batch stream closed"));
        }
    }

    fn fail_ids(&self, ids: &[u64], err: &Error) {
        let mut failed = Vec::new();
        {
            let mut inflight = lock(&self.inflight);
            for id in ids {
                if let Some(s) = inflight.remove(id) {
                    failed.push(s);
                }
            }
        }
        self.add_sent(-(failed.len() as i64));
        for s in failed {
            s.fail(clone_error(err));
        }
    }

    /// Fails every in-flight entry of `host` (client-go `failPendingRequests`).
    fn fail_pending(&self, host: &str, err: &Error) {
        let failed: Vec<EntrySink> = {
            let mut inflight = lock(&self.inflight);
            let ids: Vec<u64> = inflight
                .iter()
                .filter(|(_, s)| s.forwarded_host == host)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| inflight.remove(id)).collect()
        };
        self.add_sent(-(failed.len() as i64));
        for s in failed {
            s.fail(clone_error(err));
        }
    }

    fn fail_all(&self, err: &Error) {
        let failed: Vec<EntrySink> = lock(&self.inflight).drain().map(|(_, s)| s).collect();
        self.add_sent(-(failed.len() as i64));
        for s in failed {
            s.fail(clone_error(err));
        }
    }
}

/// Opens a `BatchCommands` stream with `client` (the connection's client, whose call
/// options compress the stream's messages as configured, TP-4) with the index and
/// forwarding metadata (client-go `batchCommandsStream.recreate`), waiting at most the dial
/// timeout for the server to accept it. Records the outcome in the connection's `state`
/// (TP-8).
async fn open_stream(
    client: &TikvClient<Channel>,
    state: &ConnStateCell,
    host: &str,
    idx: usize,
    shared: &Shared,
    addr: &str,
) -> Result<
    (
        mpsc::UnboundedSender<BatchCommandsRequest>,
        Streaming<BatchCommandsResponse>,
    ),
    Error,
> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut req = tonic::Request::new(RequestStream(rx));
    req.metadata_mut().insert(
        BATCH_CONN_INDEX_METADATA_KEY,
        MetadataValue::from(idx as u64),
    );
    if !host.is_empty() {
        let v = MetadataValue::try_from(host).map_err(|e| {
            Error::new(ErrorDetail::InvalidArgument(format!(
                "forwarded host {host:?} is not valid metadata"
            )))
            .with_source(e)
        })?;
        req.metadata_mut().insert(FORWARD_METADATA_KEY, v);
    }
    let mut client = client.clone();
    state.begin_connect();
    match tokio::time::timeout(shared.dial_timeout, client.batch_commands(req)).await {
        Ok(Ok(resp)) => {
            state.set(ConnState::Ready);
            Ok((tx, resp.into_inner()))
        }
        Ok(Err(status)) => {
            // A status from the server still means the connection is up; a transport
            // failure means the batch client backs off in transient failure.
            state.set(ConnState::after_status(&status).unwrap_or(ConnState::TransientFailure));
            Err(
                transport_error(addr, format!("open batch stream: {}", status.message()))
                    .with_source(status),
            )
        }
        Err(_) => {
            state.set(ConnState::TransientFailure);
            Err(ErrorDetail::AttemptTimeout {
                addr: addr.to_owned(),
            }
            .into())
        }
    }
}

/// The receive loop of one stream (client-go `batchRecvLoop` + `recreateStreamingClient`).
async fn recv_loop(
    client: Arc<BatchClient>,
    host: String,
    mut streaming: Streaming<BatchCommandsResponse>,
    mut acked: Arc<AtomicU64>,
) {
    let token = client.token.clone();
    let mut epoch = client.epoch();
    loop {
        // Cancel safety: `Streaming::message` is cancel safe; on cancel the stream is
        // dropped with the task.
        let msg = tokio::select! {
            biased;
            () = token.cancelled() => break,
            msg = streaming.message() => msg,
        };
        let reason = match msg {
            Ok(Some(resp)) => {
                // A panic while handling a response (a user listener, or a bug) must not
                // kill the loop and strand the stream's callers: like client-go's
                // `recover` in `batchRecvLoop`, the stream is treated as broken, its
                // in-flight requests fail with a typed error and it is re-created.
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle_response(&client, resp, &acked);
                }));
                if handled.is_ok() {
                    continue;
                }
                tracing::error!(addr = %client.addr, host, "batch recv loop panicked, re-creating the stream");
                RECV_LOOP_PANICKED.to_owned()
            }
            Err(status) => format!("batch stream failed: {}", status.message()),
            Ok(None) => "batch stream closed by the server".to_owned(),
        };
        match repair(&client, &host, &reason, &mut epoch).await {
            Some((s, a)) => {
                streaming = s;
                acked = a;
            }
            None => break,
        }
    }
    // Closing: anything still in flight on this stream learns about it now.
    client.fail_pending(&host, &transport_error(&client.addr, BATCH_CLIENT_CLOSED));
}

fn handle_response(client: &BatchClient, resp: BatchCommandsResponse, acked: &AtomicU64) {
    let now = Instant::now();
    if let Some(fb) = resp.health_feedback.as_ref()
        && let Some(l) = client.shared.listener()
    {
        l.on_health_feedback(fb);
    }
    let BatchCommandsResponse {
        responses,
        request_ids,
        transport_layer_load,
        ..
    } = resp;
    let mut responses = responses.into_iter();
    let mut max_id = 0;
    let mut done = Vec::with_capacity(request_ids.len());
    {
        let mut inflight = lock(&client.inflight);
        for id in &request_ids {
            max_id = max_id.max(*id);
            let r = responses.next();
            match inflight.remove(id) {
                Some(sink) => done.push((sink, r)),
                None => {
                    client.metrics.outdated.increment(1);
                    tracing::debug!(addr = %client.addr, id, "batch response for an unknown request id");
                }
            }
        }
    }
    client.add_sent(-(done.len() as i64));
    if max_id > 0 {
        acked.fetch_max(max_id, Ordering::Relaxed);
    }
    let answered = done.len();
    let mut started = false;
    for (sink, r) in done {
        let progress = sink.progress();
        if let Some(b) = progress.batch() {
            started |= b.mark_first_response(since_ns(b.send_start, now));
        }
        progress.mark_received(since_ns(progress.arrive(), now));
        match r {
            Some(r) => {
                let _ = sink.deliver(r);
            }
            None => sink.fail(
                ErrorDetail::Malformed(
                    "batch response carries fewer responses than request ids".to_owned(),
                )
                .into(),
            ),
        }
    }
    // Wake a send loop holding a batch for the window only after the callers got their
    // responses, so the requests they send next can join that batch.
    if client.shared.config.batch_window > 0 {
        client.freed.fetch_add(answered, Ordering::Relaxed);
        if started {
            client.window_open.notify_one();
        }
    }
    if transport_layer_load > 0 && !client.shared.config.max_batch_wait_time.is_zero() {
        client.load.store(transport_layer_load, Ordering::Relaxed);
    }
}

/// Marks the stream as being repaired, fails its in-flight entries and re-opens it until it
/// works or the pool closes. Returns `None` on close.
///
/// The first broken stream of a reconnection epoch (`epoch` is the loop's view of it) bumps
/// the epoch and re-opens with `tikvRPC`-style backoff; a stream that breaks in an epoch
/// already bumped by another stream of the same connection re-opens once without waiting
/// and only falls back to the backoff path if that fails (client-go
/// `recreateStreamingClient`). Deviation: client-go fails the in-flight requests only on
/// the first path; here every broken stream fails its own, which can never be answered on
/// a new stream.
async fn repair(
    client: &Arc<BatchClient>,
    host: &str,
    reason: &str,
    epoch: &mut u64,
) -> Option<(Streaming<BatchCommandsResponse>, Arc<AtomicU64>)> {
    client.recreating.fetch_add(1, Ordering::AcqRel);
    {
        let mut streams = lock(&client.streams);
        streams.slots.remove(host);
        streams.repairing.insert(host.to_owned());
    }
    tracing::debug!(addr = %client.addr, host, reason, "batch stream broken, re-creating");
    // TP-8: the connection reconnects until a stream opens again (each failed open moves
    // it to transient failure for its backoff, see `open_stream`).
    client.state.set(ConnState::Connecting);
    client.fail_pending(host, &transport_error(&client.addr, reason));
    client.reset_window();
    let result = reopen(client, host, epoch).await;
    {
        let mut streams = lock(&client.streams);
        if let Some((_, acked, tx)) = &result {
            streams.slots.insert(
                host.to_owned(),
                StreamSlot {
                    tx: tx.clone(),
                    acked: acked.clone(),
                },
            );
        }
        streams.repairing.remove(host);
    }
    client.recreating.fetch_sub(1, Ordering::AcqRel);
    result.map(|(s, a, _)| (s, a))
}

type Reopened = (
    Streaming<BatchCommandsResponse>,
    Arc<AtomicU64>,
    mpsc::UnboundedSender<BatchCommandsRequest>,
);

async fn reopen(client: &Arc<BatchClient>, host: &str, epoch: &mut u64) -> Option<Reopened> {
    let open = || {
        open_stream(
            &client.client,
            &client.state,
            host,
            client.idx,
            &client.shared,
            &client.addr,
        )
    };
    // Another stream of this connection already started this epoch's reconnection: try
    // once right away.
    loop {
        match client
            .epoch
            .compare_exchange(*epoch, *epoch + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                *epoch += 1;
                break;
            }
            Err(current) => {
                *epoch = current;
                let opened = tokio::select! {
                    biased;
                    () = client.token.cancelled() => return None,
                    r = open() => r,
                };
                match opened {
                    Ok((tx, streaming)) => {
                        return Some((streaming, Arc::new(AtomicU64::new(0)), tx));
                    }
                    Err(err) => {
                        tracing::debug!(addr = %client.addr, host, error = %err, "re-open batch stream failed");
                    }
                }
            }
        }
    }
    client.metrics.reconnects.increment(1);
    let mut attempt: u32 = 0;
    loop {
        if client.token.is_cancelled() {
            return None;
        }
        let opened = tokio::select! {
            biased;
            () = client.token.cancelled() => return None,
            r = open() => r,
        };
        match opened {
            Ok((tx, streaming)) => return Some((streaming, Arc::new(AtomicU64::new(0)), tx)),
            Err(err) => {
                tracing::debug!(addr = %client.addr, host, error = %err, "re-create batch stream failed");
                let delay = rpc_backoff(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    biased;
                    () = client.token.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The `tikvRPC` backoff schedule (base 100 ms, cap 2 s, equal jitter) used between
/// stream re-creation attempts.
fn rpc_backoff(attempt: u32) -> Duration {
    let base: u64 = 100;
    let cap: u64 = 2000;
    let exp = base.saturating_mul(1u64 << attempt.min(16)).min(cap);
    let half = exp / 2;
    let jitter = if half > 0 {
        rand::random_range(0..half)
    } else {
        0
    };
    Duration::from_millis(half + jitter)
}

// ===== the pool side =====

/// The batch half of a connection pool (client-go `batchConn`).
pub(crate) struct BatchConn {
    pub(crate) addr: String,
    pub(crate) clients: Vec<Arc<BatchClient>>,
    tx: mpsc::Sender<Entry>,
    pub(crate) token: CancellationToken,
    idle: AtomicBool,
    load: Arc<AtomicU64>,
    metrics: Arc<StoreMetrics>,
    /// Notified when a message of any of `clients` gets its first response (batch window).
    window_open: Arc<Notify>,
    /// Callers of `clients` answered since the send loop last looked (batch window).
    freed: Arc<AtomicUsize>,
}

impl BatchConn {
    /// Creates the batch half of a pool and starts its send loop.
    pub(crate) fn start(
        addr: &str,
        conns: &[Conn],
        shared: Arc<Shared>,
        token: CancellationToken,
        metrics: Arc<StoreMetrics>,
    ) -> Arc<BatchConn> {
        let (conn, rx) = Self::new(addr, conns, shared.clone(), token, metrics);
        tokio::spawn(send_loop(conn.clone(), rx, shared));
        conn
    }

    /// Creates the batch half of a pool without starting its send loop; the receiver is the
    /// send loop's end of the queue.
    pub(crate) fn new(
        addr: &str,
        conns: &[Conn],
        shared: Arc<Shared>,
        token: CancellationToken,
        metrics: Arc<StoreMetrics>,
    ) -> (Arc<BatchConn>, mpsc::Receiver<Entry>) {
        let cfg = &shared.config;
        let cap = cfg.max_batch_size.max(1);
        let (tx, rx) = mpsc::channel(cap);
        let load = Arc::new(AtomicU64::new(0));
        let window_open = Arc::new(Notify::new());
        let freed = Arc::new(AtomicUsize::new(0));
        let limit = i64::try_from(cfg.max_concurrency_request_limit).unwrap_or(i64::MAX);
        let clients = conns
            .iter()
            .enumerate()
            .map(|(idx, conn)| {
                Arc::new(BatchClient {
                    idx,
                    addr: addr.to_owned(),
                    client: conn.tikv.clone(),
                    state: conn.state.clone(),
                    shared: shared.clone(),
                    metrics: metrics.clone(),
                    token: token.clone(),
                    load: load.clone(),
                    streams: Mutex::new(Streams::default()),
                    inflight: Mutex::new(HashMap::new()),
                    sent: AtomicI64::new(0),
                    limit,
                    recreating: AtomicUsize::new(0),
                    held: AtomicBool::new(false),
                    epoch: AtomicU64::new(0),
                    unstarted: Mutex::new(VecDeque::new()),
                    window_open: window_open.clone(),
                    freed: freed.clone(),
                })
            })
            .collect();
        let conn = Arc::new(BatchConn {
            addr: addr.to_owned(),
            clients,
            tx,
            token,
            idle: AtomicBool::new(false),
            load,
            metrics,
            window_open,
            freed,
        });
        (conn, rx)
    }

    /// Whether a usable connection (spare concurrency, not re-creating a stream) has room
    /// in its batch window; true when no connection is usable, so the caller does not
    /// hold a batch that cannot be sent anyway.
    fn window_has_room(&self, window: usize, now: Instant, max_hold: Duration) -> bool {
        let mut usable = false;
        for c in &self.clients {
            if c.available() > 0 && !c.is_recreating() {
                usable = true;
                if c.window_has_room(window, now, max_hold) {
                    return true;
                }
            }
        }
        !usable
    }

    /// Whether the send loop stopped for lack of traffic (TP-7).
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// Enqueues `req` and waits for its answer until `deadline` (client-go
    /// `sendBatchRequest`). `is_async` selects the close message for entries already
    /// queued ("batch client closed" for async callers, "batchConn closed" otherwise).
    /// `cancel` is the caller's cancellation (client-go's request context): once it fires
    /// the caller gets [`ErrorDetail::Canceled`] at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future, or canceling `cancel`, cancels the entry: a queued entry is
    /// skipped by the builder, an in-flight one stays in the map until its response (then
    /// discarded, as client-go does, so the stream's concurrency accounting stays true) or a
    /// stream failure; no other caller is disturbed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send<'a>(
        &'a self,
        req: batch_commands_request::Request,
        forwarded_host: String,
        priority: u64,
        deadline: Instant,
        timeout: Duration,
        is_async: bool,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = BatchResult> + Send + 'a {
        // The entry and the future that queues it are built here, not inside the returned
        // future: that future then holds the request once (in the entry, until it is
        // queued) instead of once per `async fn` argument it passes through.
        let (entry, rx, progress) = Entry::new(req, forwarded_host, priority);
        let queued = self.send_entry(
            entry,
            rx,
            progress.clone(),
            deadline,
            timeout,
            is_async,
            cancel,
        );
        async move {
            let res = queued.await;
            let outcome = BatchOutcome::of(&res);
            self.metrics.outcome(outcome).increment(1);
            visit_observations(&progress, outcome, Instant::now(), |stage, o, d| {
                self.metrics.stage(stage, o).record(d.as_secs_f64());
            });
            res
        }
    }

    /// Queues `entry` and waits for its answer. Not an `async fn`, so that the entry is
    /// held in the future once; see [`send`](Self::send).
    #[allow(
        clippy::too_many_arguments,
        clippy::manual_async_fn,
        reason = "an `async fn` would hold the entry twice in its future"
    )]
    fn send_entry<'a>(
        &'a self,
        entry: Entry,
        rx: oneshot::Receiver<BatchResult>,
        progress: Arc<EntryProgress>,
        deadline: Instant,
        timeout: Duration,
        is_async: bool,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = BatchResult> + Send + 'a {
        async move {
            let closed_msg = if is_async {
                BATCH_CLIENT_CLOSED
            } else {
                BATCH_CONN_CLOSED
            };
            let host = entry.sink.forwarded_host.clone();
            if cancel.is_cancelled() {
                return Err(canceled("send request is canceled"));
            }
            if self.token.is_cancelled() {
                return Err(transport_error(&self.addr, BATCH_CONN_CLOSED));
            }
            // Cancel safety: `Sender::reserve` is cancel safe (the entry is dropped, unsent,
            // when this future is).
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(canceled("send request is canceled")),
                () = self.token.cancelled() => {
                    return Err(transport_error(&self.addr, BATCH_CONN_CLOSED));
                }
                // `reserve` then `send` is what `Sender::send` does, without a second
                // copy of the entry in that future.
                r = self.tx.reserve() => match r {
                    Ok(permit) => permit.send(entry),
                    Err(_) => return Err(transport_error(&self.addr, BATCH_CONN_CLOSED)),
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Error::new(ErrorDetail::AttemptTimeout { addr: self.addr.clone() })
                        .with_source(Message("wait sendLoop: deadline exceeded".to_owned())));
                }
            }
            // Cancel safety: every branch is cancel safe; leaving drops `rx`, which marks the
            // entry canceled for the builder and the receive loop.
            tokio::select! {
                biased;
                r = rx => match r {
                    Ok(r) => r,
                    Err(_) => Err(transport_error(&self.addr, closed_msg)),
                },
                () = cancel.cancelled() => Err(canceled("wait response is canceled")),
                () = self.token.cancelled() => Err(transport_error(&self.addr, closed_msg)),
                () = tokio::time::sleep_until(deadline) => {
                    let reason = format!(
                        "{}: deadline exceeded",
                        format_timeout_reason(&progress, &host, timeout, Instant::now())
                    );
                    Err(Error::new(ErrorDetail::AttemptTimeout { addr: self.addr.clone() })
                        .with_source(Message(reason)))
                }
            }
        }
    }
}

/// The caller's cancellation (TE-1): [`ErrorDetail::Canceled`] with where it was seen.
pub(crate) fn canceled(when: &str) -> Error {
    Error::new(ErrorDetail::Canceled).with_source(Message(when.to_owned()))
}

/// How a batch request ended (client-go `batchRequestOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchOutcome {
    /// Answered.
    Ok,
    /// The attempt deadline passed.
    Timeout,
    /// The caller gave up.
    Canceled,
    /// The pool or its batch client closed.
    Closed,
    /// Anything else (stream failure, no connection, ...).
    Failed,
}

impl BatchOutcome {
    pub(crate) const COUNT: usize = 5;
    pub(crate) const ALL: [BatchOutcome; Self::COUNT] = [
        BatchOutcome::Ok,
        BatchOutcome::Timeout,
        BatchOutcome::Canceled,
        BatchOutcome::Closed,
        BatchOutcome::Failed,
    ];

    /// Classifies a batch result (client-go `batchRequestTerminalOutcome`).
    pub fn of<T>(res: &Result<T, Error>) -> BatchOutcome {
        match res {
            Ok(_) => BatchOutcome::Ok,
            Err(e) => match e.detail() {
                ErrorDetail::AttemptTimeout { .. } => BatchOutcome::Timeout,
                ErrorDetail::Canceled => BatchOutcome::Canceled,
                ErrorDetail::Transport { message, .. }
                    if message == BATCH_CONN_CLOSED || message == BATCH_CLIENT_CLOSED =>
                {
                    BatchOutcome::Closed
                }
                _ => BatchOutcome::Failed,
            },
        }
    }

    /// The label value used in [`BATCH_OUTCOMES`](super::metrics::BATCH_OUTCOMES) and as
    /// the `result` of the stage histogram.
    pub fn label(self) -> &'static str {
        match self {
            BatchOutcome::Ok => "ok",
            BatchOutcome::Timeout => "timeout",
            BatchOutcome::Canceled => "canceled",
            BatchOutcome::Closed => "closed",
            BatchOutcome::Failed => "failed",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A plain message used as an error source.
#[derive(Debug)]
pub(crate) struct Message(pub(crate) String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// The send loop of a pool (client-go `batchSendLoop`).
async fn send_loop(conn: Arc<BatchConn>, mut rx: mpsc::Receiver<Entry>, shared: Arc<Shared>) {
    let cfg = &shared.config;
    let max = cfg.max_batch_size.max(1);
    let mut trigger = TurboBatchTrigger::new(&cfg.batch_policy);
    let turbo_wait = trigger.turbo_wait_time();
    let mut avg_batch_wait_size = cfg.batch_wait_size as f64;
    let mut builder = BatchBuilder::new();
    let mut index = 0usize;
    let metrics = conn.metrics.clone();
    // Spread the pools' inspections over the interval (client-go starts at a random point).
    let jitter = rand::random_range(0..PENDING_INSPECT_INTERVAL.as_millis() as u64);
    let mut last_inspect = Instant::now()
        .checked_sub(Duration::from_millis(jitter))
        .unwrap_or_else(Instant::now);
    loop {
        builder.reset();
        let latest = builder.latest_arrive;
        // Wait for the head entry. Cancel safety: `Receiver::recv` is cancel safe.
        let head = tokio::select! {
            biased;
            () = conn.token.cancelled() => None,
            e = rx.recv() => e,
            () = tokio::time::sleep(IDLE_TIMEOUT) => {
                if builder.is_empty() {
                    conn.idle.store(true, Ordering::Release);
                    shared.idle_notify.store(true, Ordering::Release);
                    tracing::debug!(addr = %conn.addr, "batch connection idle");
                    return;
                }
                None
            }
        };
        if conn.token.is_cancelled() {
            break;
        }
        let mut head_interval = Duration::ZERO;
        if let Some(head) = head {
            let arrive = head.sink.progress.arrive();
            if let Some(l) = latest
                && arrive > l
            {
                head_interval = arrive - l;
            }
            builder.push(head);
            while builder.len() < max {
                match rx.try_recv() {
                    Ok(e) => builder.push(e),
                    Err(_) => break,
                }
            }
        } else if builder.is_empty() {
            continue;
        }
        let size = builder.len();
        if size < max {
            if !cfg.max_batch_wait_time.is_zero()
                && conn.load.load(Ordering::Relaxed) > cfg.overload_threshold
            {
                metrics.wait_overload.increment(1);
                fetch_more(
                    &mut rx,
                    &mut builder,
                    max,
                    cfg.batch_wait_size,
                    cfg.max_batch_wait_time,
                )
                .await;
            } else if !turbo_wait.is_zero()
                && !head_interval.is_zero()
                && trigger.need_fetch_more(head_interval)
            {
                let wait_size =
                    trigger.preferred_batch_wait_size(avg_batch_wait_size, cfg.batch_wait_size);
                fetch_more(&mut rx, &mut builder, max, wait_size, turbo_wait).await;
                metrics.batch_more.record((builder.len() - size) as f64);
            }
        }
        if cfg.batch_window > 0 && builder.len() < max && !builder.has_high_priority() {
            // Callers answered since the last send are sending their next requests now:
            // let them join this batch instead of following it one message later.
            settle_freed(&conn, &mut rx, &mut builder, max, 0, turbo_wait).await;
            hold_for_window(
                &conn,
                &mut rx,
                &mut builder,
                max,
                cfg.batch_window,
                cfg.batch_window_max_hold,
                turbo_wait,
            )
            .await;
        }
        let len = builder.len();
        avg_batch_wait_size = 0.2 * len as f64 + 0.8 * avg_batch_wait_size;
        metrics.batch_pending.record((rx.len() + len) as f64);
        metrics.batch_best_size.record(avg_batch_wait_size);
        get_client_and_send(
            &conn,
            &mut builder,
            &mut index,
            cfg.max_concurrency_request_limit,
            (cfg.batch_window > 0).then_some((cfg.batch_window, cfg.batch_window_max_hold)),
        )
        .await;
        let now = Instant::now();
        if now.saturating_duration_since(last_inspect) >= PENDING_INSPECT_INTERVAL {
            log_pending(&conn, now);
            last_inspect = now;
        }
    }
    // Closed: fail what is still queued here.
    builder.cancel(&transport_error(&conn.addr, BATCH_CONN_CLOSED));
    rx.close();
    while let Ok(e) = rx.try_recv() {
        e.sink.fail(transport_error(&conn.addr, BATCH_CONN_CLOSED));
    }
    for c in &conn.clients {
        c.fail_all(&transport_error(&conn.addr, BATCH_CLIENT_CLOSED));
    }
}

/// How often the send loop looks for slow requests in flight (client-go
/// `batchRequestInspectInterval`).
pub const PENDING_INSPECT_INTERVAL: Duration = Duration::from_secs(60);

/// Warns about each batch client's oldest slow request, with the counts of slow, hanging
/// and unconfirmed ones (client-go `logPendingBatchRequests`).
fn log_pending(conn: &BatchConn, now: Instant) {
    for c in &conn.clients {
        let stats = c.inspect_pending(now);
        let Some(id) = stats.oldest_id else {
            continue;
        };
        let progress = {
            let inflight = lock(&c.inflight);
            inflight
                .get(&id)
                .map(|s| format_progress(s.progress(), s.forwarded_host(), now))
        };
        tracing::warn!(
            target_addr = %conn.addr,
            conn = c.idx,
            request_id = id,
            wait = ?stats.oldest_wait,
            progress = progress.as_deref().unwrap_or(""),
            slow = stats.slow,
            slow_unconfirmed = stats.slow_unconfirmed,
            hanging = stats.hanging,
            hanging_unconfirmed = stats.hanging_unconfirmed,
            "batch requests pending for long"
        );
    }
}

/// The granularity of tokio's timer: a sleep shorter than this lasts until the next tick.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// The most yields of one sub-millisecond batch wait (see `fetch_more`).
const MAX_WAIT_YIELDS: u32 = 512;

/// Waits up to `max_wait` for `wait_size` entries, then drains without blocking (one
/// yield) up to `max` (client-go `fetchMorePendingRequests`).
pub(super) async fn fetch_more(
    rx: &mut mpsc::Receiver<Entry>,
    builder: &mut BatchBuilder,
    max: usize,
    wait_size: usize,
    max_wait: Duration,
) {
    let deadline = Instant::now() + max_wait;
    if max_wait < TIMER_RESOLUTION {
        // tokio's timer fires on whole-millisecond ticks, so a 100 us wait (the standard
        // and positive policies') would last about a millisecond; client-go's timer waits
        // what it is told. Short waits therefore poll the queue between yields instead,
        // bounded in yields too: under a paused test clock time stands still while the
        // task yields.
        let mut yields = 0;
        while builder.len() < wait_size {
            match rx.try_recv() {
                Ok(e) => {
                    builder.push(e);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if yields >= MAX_WAIT_YIELDS || Instant::now() >= deadline {
                break;
            }
            tokio::task::yield_now().await;
            yields += 1;
        }
    } else {
        while builder.len() < wait_size {
            // Cancel safety: `recv` is cancel safe.
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => builder.push(e),
                    None => return,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    let mut yielded = false;
    while builder.len() < max {
        match rx.try_recv() {
            Ok(e) => builder.push(e),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                if yielded {
                    return;
                }
                tokio::task::yield_now().await;
                yielded = true;
            }
        }
    }
}

/// Holds a batch while every usable connection of `conn` has `window` messages TiKV has
/// not started to answer (`TikvClientConfig::batch_window`, this client's own; client-go
/// never holds a batch for the server).
///
/// While held, the batch keeps taking queued requests. The hold ends when a connection's
/// window opens (a first response arrived), when the batch is `max` long or holds a
/// high-priority request, after `max_hold`, or when the pool closes. When the window
/// opened, the callers of the answered message are about to send their next requests, so
/// the batch then waits up to `settle` (the batch policy's wait; a single yield when the
/// policy never waits) for them to join.
async fn hold_for_window(
    conn: &BatchConn,
    rx: &mut mpsc::Receiver<Entry>,
    builder: &mut BatchBuilder,
    max: usize,
    window: usize,
    max_hold: Duration,
    settle: Duration,
) {
    let start = Instant::now();
    if conn.window_has_room(window, start, max_hold) {
        return;
    }
    conn.metrics.window_holds.increment(1);
    let deadline = start + max_hold;
    loop {
        // Cancel safety: `notified`, `recv` and `sleep_until` are cancel safe. A permit
        // stored by a notification nobody waited for only causes one extra check here.
        tokio::select! {
            biased;
            () = conn.token.cancelled() => return,
            () = conn.window_open.notified() => {
                if conn.window_has_room(window, Instant::now(), max_hold) {
                    break;
                }
            }
            e = rx.recv() => match e {
                Some(e) => {
                    builder.push(e);
                    if builder.len() >= max || builder.has_high_priority() {
                        return;
                    }
                }
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
    // The held requests came from earlier callers; the answered ones come on top.
    let held = builder.len();
    settle_freed(conn, rx, builder, max, held, settle).await;
}

/// Waits up to `settle` until the batch holds `base` requests plus one per caller answered
/// since the last look (batch window only; see `BatchConn::freed`). Waits not at all when
/// the batch already holds that many, so a lone caller never waits for itself.
async fn settle_freed(
    conn: &BatchConn,
    rx: &mut mpsc::Receiver<Entry>,
    builder: &mut BatchBuilder,
    max: usize,
    base: usize,
    settle: Duration,
) {
    let freed = conn.freed.swap(0, Ordering::Relaxed);
    let want = base.saturating_add(freed).min(max);
    if builder.len() < want {
        fetch_more(rx, builder, max, want, settle).await;
    }
}

/// Picks a batch client round-robin and sends what the builder holds (client-go
/// `getClientAndSend`). With a batch `window` (size, max hold), a client whose window
/// has room is preferred; when none has (a hold that timed out), any usable one is taken.
async fn get_client_and_send(
    conn: &BatchConn,
    builder: &mut BatchBuilder,
    index: &mut usize,
    configured_limit: u64,
    window: Option<(usize, Duration)>,
) {
    let n = conn.clients.len();
    if n == 0 {
        return;
    }
    let high = builder.has_high_priority();
    let now = Instant::now();
    let mut picked = None;
    // High-priority batches ignore the window, like they ignore the concurrency limit.
    let passes: &[bool] = match window {
        Some(_) if !high => &[true, false],
        _ => &[false],
    };
    'pick: for &need_room in passes {
        for _ in 0..n {
            *index = (*index + 1) % n;
            let c = &conn.clients[*index];
            if (high || c.available() > 0)
                && !c.is_recreating()
                && (!need_room
                    || window.is_none_or(|(size, hold)| c.window_has_room(size, now, hold)))
            {
                picked = Some(c.clone());
                break 'pick;
            }
        }
    }
    let Some(cli) = picked else {
        conn.metrics.no_available.increment(1);
        if configured_limit == DEF_MAX_CONCURRENCY_REQUEST_LIMIT {
            builder.cancel(&transport_error(&conn.addr, NO_AVAILABLE_CONNECTIONS));
        }
        return;
    };
    let (direct, forwarded) = builder.build_with_limit(cli.available());
    if let Some(g) = direct {
        cli.send("", g).await;
    }
    for (host, g) in forwarded {
        cli.send(&host, g).await;
    }
}
