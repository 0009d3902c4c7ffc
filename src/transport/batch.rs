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
//!   round-robin (`BatchConn::pick_client`) and sends one `BatchCommandsRequest` per
//!   forwarded host with fresh request ids;
//! - one receive task per (connection, forwarded host) stream (`recv_loop`, client-go
//!   `batchRecvLoop`) matches responses to entries by id; on a stream failure it fails
//!   exactly that stream's in-flight entries and re-opens the stream with backoff.
//!
//! Every task watches the pool's [`CancellationToken`] and ends when the pool is closed or
//! dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use metrics::{counter, gauge, histogram};
use tikv_layers::{Error, ErrorDetail};
use tikv_proto::tikvpb::tikv_client::TikvClient;
use tikv_proto::tikvpb::{
    BatchCommandsRequest, BatchCommandsResponse, batch_commands_request, batch_commands_response,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::Shared;
use super::metrics as m;
use super::policy::TurboBatchTrigger;
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

/// Timestamps of one entry's way through the batch path, for timeout messages.
#[derive(Debug, Default)]
pub struct EntryProgress {
    /// Nanoseconds from arrival until the builder picked the entry (0: not yet).
    pub batched_ns: AtomicU64,
    /// Nanoseconds from arrival until the batch was handed to the stream (0: not yet).
    pub sent_ns: AtomicU64,
    /// Nanoseconds from arrival until the response arrived (0: not yet).
    pub recv_ns: AtomicU64,
    /// The request id, once assigned.
    pub request_id: AtomicU64,
    /// Size of the batch the entry went out with.
    pub batch_size: AtomicU64,
    /// The acknowledged-id watermark of the stream the entry went out on (client-go
    /// `maxRespReqID`), set when it is sent.
    pub stream_acked: OnceLock<Arc<AtomicU64>>,
}

fn since_ns(arrive: Instant) -> u64 {
    u64::try_from(arrive.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Renders an entry's progress as `EntryProgress{batch:…, size:…, send:…, recv:…}`
/// (client-go `writeBatchCommandsEntryProgress`).
pub fn format_progress(progress: &EntryProgress, arrive: Instant, forwarded_host: &str) -> String {
    let mut s = String::from("EntryProgress{");
    let batched = progress.batched_ns.load(Ordering::Relaxed);
    if batched == 0 {
        s.push('}');
        return s;
    }
    let _ = write!(s, "batch:{:?}", Duration::from_nanos(batched));
    let size = progress.batch_size.load(Ordering::Relaxed);
    if size > 0 {
        let _ = write!(s, ", size:{size}");
    }
    let sent = progress.sent_ns.load(Ordering::Relaxed);
    let recv = progress.recv_ns.load(Ordering::Relaxed);
    let id = progress.request_id.load(Ordering::Relaxed);
    let acked = id > 0
        && progress
            .stream_acked
            .get()
            .is_some_and(|a| id <= a.load(Ordering::Relaxed));
    if sent == 0 && recv == 0 {
        let now = since_ns(arrive);
        let _ = write!(
            s,
            ", send:{:?}",
            Duration::from_nanos(now.saturating_sub(batched).max(1))
        );
        if acked {
            s.push_str(", ack:yes");
        }
        s.push('}');
        return s;
    }
    let _ = write!(
        s,
        ", send:{:?}",
        Duration::from_nanos(sent.saturating_sub(batched).max(1))
    );
    if acked {
        s.push_str(", ack:yes");
    }
    if recv > 0 {
        let _ = write!(
            s,
            ", recv:{:?}",
            Duration::from_nanos(recv.saturating_sub(sent).max(1))
        );
    }
    if !forwarded_host.is_empty() {
        let _ = write!(s, ", fwd:{forwarded_host}");
    }
    s.push('}');
    s
}

/// The caller side of an entry: where the answer goes.
#[derive(Debug)]
pub struct EntrySink {
    tx: oneshot::Sender<BatchResult>,
    forwarded_host: String,
    priority: u64,
    arrive: Instant,
    progress: Arc<EntryProgress>,
}

impl EntrySink {
    /// Whether the caller is gone (its future was dropped or it timed out).
    pub fn is_canceled(&self) -> bool {
        self.tx.is_closed()
    }

    /// The forwarded host the entry must travel to ("" for the target itself).
    pub fn forwarded_host(&self) -> &str {
        &self.forwarded_host
    }

    /// Fails the entry (client-go `batchCommandsEntry.error`).
    pub fn fail(self, err: Error) {
        let _ = self.tx.send(Err(err));
    }

    fn deliver(self, resp: batch_commands_response::Response) -> bool {
        self.progress
            .recv_ns
            .store(since_ns(self.arrive), Ordering::Relaxed);
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
        let progress = Arc::new(EntryProgress::default());
        let entry = Entry {
            req,
            sink: EntrySink {
                tx,
                forwarded_host,
                priority,
                arrive: Instant::now(),
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
        let arrive = entry.sink.arrive;
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
                e.sink
                    .progress
                    .batched_ns
                    .store(since_ns(e.sink.arrive), Ordering::Relaxed);
                self.id_alloc += 1;
                e.sink
                    .progress
                    .request_id
                    .store(self.id_alloc, Ordering::Relaxed);
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

/// One connection's batch client: its streams (one per forwarded host) and the entries in
/// flight on them (client-go `batchCommandsClient`).
pub(crate) struct BatchClient {
    idx: usize,
    addr: String,
    channel: Channel,
    shared: Arc<Shared>,
    token: CancellationToken,
    load: Arc<AtomicU64>,
    streams: Mutex<Streams>,
    inflight: Mutex<HashMap<u64, EntrySink>>,
    sent: AtomicI64,
    limit: i64,
    recreating: AtomicUsize,
    held: AtomicBool,
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

    /// Whether a stream of this client is being re-created (client-go `tryLockForSend`
    /// failing), or a test hold is active.
    pub(crate) fn is_recreating(&self) -> bool {
        self.recreating.load(Ordering::Acquire) > 0 || self.held.load(Ordering::Acquire)
    }

    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    fn gauge_inflight(&self) {
        gauge!(m::INFLIGHT_REQUESTS, "store" => self.addr.clone())
            .set(self.sent.load(Ordering::Relaxed) as f64);
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
                &self.channel,
                host,
                self.idx,
                self.shared.dial_timeout,
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
        histogram!(m::BATCH_REQUESTS, "store" => self.addr.clone()).record(n as f64);
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
        {
            let mut inflight = lock(&self.inflight);
            for (id, sink) in ids.iter().zip(group.sinks) {
                sink.progress.batch_size.store(n as u64, Ordering::Relaxed);
                sink.progress
                    .sent_ns
                    .store(since_ns(sink.arrive), Ordering::Relaxed);
                histogram!(m::BATCH_WAIT_SECONDS, "store" => self.addr.clone())
                    .record(sink.arrive.elapsed().as_secs_f64());
                let _ = sink.progress.stream_acked.set(slot.acked.clone());
                inflight.insert(*id, sink);
            }
        }
        self.sent.fetch_add(n as i64, Ordering::Relaxed);
        let res = slot.tx.send(group.req);
        drop(streams);
        if res.is_err() {
            // The stream's request half is gone: fail exactly these ids.
            self.fail_ids(&ids, &transport_error(&self.addr, "batch stream closed"));
        }
        self.gauge_inflight();
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
        self.sent.fetch_sub(failed.len() as i64, Ordering::Relaxed);
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
        self.sent.fetch_sub(failed.len() as i64, Ordering::Relaxed);
        for s in failed {
            s.fail(clone_error(err));
        }
        self.gauge_inflight();
    }

    fn fail_all(&self, err: &Error) {
        let failed: Vec<EntrySink> = lock(&self.inflight).drain().map(|(_, s)| s).collect();
        self.sent.fetch_sub(failed.len() as i64, Ordering::Relaxed);
        for s in failed {
            s.fail(clone_error(err));
        }
    }
}

/// Opens a `BatchCommands` stream on `channel` with the index and forwarding metadata
/// (client-go `batchCommandsStream.recreate`), waiting at most `dial_timeout` for the
/// server to accept it.
async fn open_stream(
    channel: &Channel,
    host: &str,
    idx: usize,
    dial_timeout: Duration,
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
    let mut client = TikvClient::new(channel.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    match tokio::time::timeout(dial_timeout, client.batch_commands(req)).await {
        Ok(Ok(resp)) => Ok((tx, resp.into_inner())),
        Ok(Err(status)) => Err(transport_error(
            addr,
            format!("open batch stream: {}", status.message()),
        )
        .with_source(status)),
        Err(_) => Err(ErrorDetail::AttemptTimeout {
            addr: addr.to_owned(),
        }
        .into()),
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
    loop {
        // Cancel safety: `Streaming::message` is cancel safe; on cancel the stream is
        // dropped with the task.
        let msg = tokio::select! {
            biased;
            () = token.cancelled() => break,
            msg = streaming.message() => msg,
        };
        match msg {
            Ok(Some(resp)) => handle_response(&client, resp, &acked),
            Ok(None) | Err(_) => {
                let reason = match &msg {
                    Err(status) => format!("batch stream failed: {}", status.message()),
                    _ => "batch stream closed by the server".to_owned(),
                };
                match repair(&client, &host, &reason).await {
                    Some((s, a)) => {
                        streaming = s;
                        acked = a;
                    }
                    None => break,
                }
            }
        }
    }
    // Closing: anything still in flight on this stream learns about it now.
    client.fail_pending(&host, &transport_error(&client.addr, BATCH_CLIENT_CLOSED));
}

fn handle_response(client: &BatchClient, resp: BatchCommandsResponse, acked: &AtomicU64) {
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
                    counter!(m::OUTDATED_RESPONSES, "store" => client.addr.clone()).increment(1);
                    tracing::debug!(addr = %client.addr, id, "batch response for an unknown request id");
                }
            }
        }
    }
    client.sent.fetch_sub(done.len() as i64, Ordering::Relaxed);
    if max_id > 0 {
        acked.fetch_max(max_id, Ordering::Relaxed);
    }
    for (sink, r) in done {
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
    if transport_layer_load > 0 && !client.shared.config.max_batch_wait_time.is_zero() {
        client.load.store(transport_layer_load, Ordering::Relaxed);
    }
    client.gauge_inflight();
}

/// Marks the stream as being repaired, fails its in-flight entries and re-opens it with
/// `tikvRPC`-style backoff until it works or the pool closes. Returns `None` on close.
async fn repair(
    client: &Arc<BatchClient>,
    host: &str,
    reason: &str,
) -> Option<(Streaming<BatchCommandsResponse>, Arc<AtomicU64>)> {
    client.recreating.fetch_add(1, Ordering::AcqRel);
    {
        let mut streams = lock(&client.streams);
        streams.slots.remove(host);
        streams.repairing.insert(host.to_owned());
    }
    tracing::debug!(addr = %client.addr, host, reason, "batch stream broken, re-creating");
    client.fail_pending(host, &transport_error(&client.addr, reason));
    counter!(m::BATCH_RECONNECTS, "store" => client.addr.clone()).increment(1);
    let mut attempt: u32 = 0;
    let result = loop {
        if client.token.is_cancelled() {
            break None;
        }
        let opened = tokio::select! {
            biased;
            () = client.token.cancelled() => break None,
            r = open_stream(&client.channel, host, client.idx, client.shared.dial_timeout, &client.addr) => r,
        };
        match opened {
            Ok((tx, streaming)) => {
                let acked = Arc::new(AtomicU64::new(0));
                let mut streams = lock(&client.streams);
                streams.slots.insert(
                    host.to_owned(),
                    StreamSlot {
                        tx,
                        acked: acked.clone(),
                    },
                );
                streams.repairing.remove(host);
                break Some((streaming, acked));
            }
            Err(err) => {
                tracing::debug!(addr = %client.addr, host, error = %err, "re-create batch stream failed");
                let delay = rpc_backoff(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    biased;
                    () = client.token.cancelled() => break None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    if result.is_none() {
        lock(&client.streams).repairing.remove(host);
    }
    client.recreating.fetch_sub(1, Ordering::AcqRel);
    result
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
}

impl BatchConn {
    /// Creates the batch half of a pool and starts its send loop.
    pub(crate) fn start(
        addr: &str,
        channels: &[Channel],
        shared: Arc<Shared>,
        token: CancellationToken,
    ) -> Arc<BatchConn> {
        let cfg = &shared.config;
        let cap = cfg.max_batch_size.max(1);
        let (tx, rx) = mpsc::channel(cap);
        let load = Arc::new(AtomicU64::new(0));
        let limit = i64::try_from(cfg.max_concurrency_request_limit).unwrap_or(i64::MAX);
        let clients = channels
            .iter()
            .enumerate()
            .map(|(idx, ch)| {
                Arc::new(BatchClient {
                    idx,
                    addr: addr.to_owned(),
                    channel: ch.clone(),
                    shared: shared.clone(),
                    token: token.clone(),
                    load: load.clone(),
                    streams: Mutex::new(Streams::default()),
                    inflight: Mutex::new(HashMap::new()),
                    sent: AtomicI64::new(0),
                    limit,
                    recreating: AtomicUsize::new(0),
                    held: AtomicBool::new(false),
                })
            })
            .collect();
        let conn = Arc::new(BatchConn {
            addr: addr.to_owned(),
            clients,
            tx,
            token: token.clone(),
            idle: AtomicBool::new(false),
            load,
        });
        tokio::spawn(send_loop(conn.clone(), rx, shared));
        conn
    }

    /// Whether the send loop stopped for lack of traffic (TP-7).
    pub(crate) fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// Enqueues `req` and waits for its answer until `deadline` (client-go
    /// `sendBatchRequest`). `is_async` selects the close message for entries already
    /// queued ("batch client closed" for async callers, "batchConn closed" otherwise).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the entry: a queued entry is skipped by the builder, an
    /// in-flight one stays in the map until its response (then discarded) or a stream
    /// failure; no other caller is disturbed.
    pub(crate) async fn send(
        &self,
        req: batch_commands_request::Request,
        forwarded_host: String,
        priority: u64,
        deadline: Instant,
        timeout: Duration,
        is_async: bool,
    ) -> BatchResult {
        let (entry, rx, progress) = Entry::new(req, forwarded_host, priority);
        let res = self
            .send_entry(entry, rx, &progress, deadline, timeout, is_async)
            .await;
        record_outcome(&res);
        res
    }

    async fn send_entry(
        &self,
        entry: Entry,
        rx: oneshot::Receiver<BatchResult>,
        progress: &Arc<EntryProgress>,
        deadline: Instant,
        timeout: Duration,
        is_async: bool,
    ) -> BatchResult {
        let closed_msg = if is_async {
            BATCH_CLIENT_CLOSED
        } else {
            BATCH_CONN_CLOSED
        };
        let arrive = entry.sink.arrive;
        let host = entry.sink.forwarded_host.clone();
        if self.token.is_cancelled() {
            return Err(transport_error(&self.addr, BATCH_CONN_CLOSED));
        }
        // Cancel safety: `Sender::send` is cancel safe (the entry is dropped, unsent).
        tokio::select! {
            biased;
            () = self.token.cancelled() => {
                return Err(transport_error(&self.addr, BATCH_CONN_CLOSED));
            }
            r = self.tx.send(entry) => {
                if r.is_err() {
                    return Err(transport_error(&self.addr, BATCH_CONN_CLOSED));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(Error::new(ErrorDetail::AttemptTimeout { addr: self.addr.clone() })
                    .with_source(Message("wait sendLoop: deadline exceeded".to_owned())));
            }
        }
        tokio::select! {
            biased;
            r = rx => match r {
                Ok(r) => r,
                Err(_) => Err(transport_error(&self.addr, closed_msg)),
            },
            () = self.token.cancelled() => Err(transport_error(&self.addr, closed_msg)),
            () = tokio::time::sleep_until(deadline) => {
                let reason = format!(
                    "wait recvLoop timeout, timeout:{timeout:?}, {}: deadline exceeded",
                    format_progress(progress, arrive, &host)
                );
                Err(Error::new(ErrorDetail::AttemptTimeout { addr: self.addr.clone() })
                    .with_source(Message(reason)))
            }
        }
    }
}

/// How a batch request ended (client-go `batchRequestOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The label value used in [`BATCH_OUTCOMES`](super::metrics::BATCH_OUTCOMES).
    pub fn label(self) -> &'static str {
        match self {
            BatchOutcome::Ok => "ok",
            BatchOutcome::Timeout => "timeout",
            BatchOutcome::Canceled => "canceled",
            BatchOutcome::Closed => "closed",
            BatchOutcome::Failed => "failed",
        }
    }
}

fn record_outcome<T>(res: &Result<T, Error>) {
    counter!(m::BATCH_OUTCOMES, "outcome" => BatchOutcome::of(res).label()).increment(1);
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
    let store = conn.addr.clone();
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
                    tracing::debug!(addr = %store, "batch connection idle");
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
            if let Some(l) = latest
                && head.sink.arrive > l
            {
                head_interval = head.sink.arrive - l;
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
                counter!(m::BATCH_WAIT_OVERLOAD).increment(1);
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
                histogram!(m::BATCH_MORE_REQUESTS, "store" => store.clone())
                    .record((builder.len() - size) as f64);
            }
        }
        let len = builder.len();
        avg_batch_wait_size = 0.2 * len as f64 + 0.8 * avg_batch_wait_size;
        histogram!(m::BATCH_PENDING_REQUESTS, "store" => store.clone())
            .record((rx.len() + len) as f64);
        histogram!(m::BATCH_BEST_SIZE, "store" => store.clone()).record(avg_batch_wait_size);
        get_client_and_send(
            &conn,
            &mut builder,
            &mut index,
            cfg.max_concurrency_request_limit,
        )
        .await;
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

/// Waits up to `max_wait` for `wait_size` entries, then drains without blocking (one
/// yield) up to `max` (client-go `fetchMorePendingRequests`).
async fn fetch_more(
    rx: &mut mpsc::Receiver<Entry>,
    builder: &mut BatchBuilder,
    max: usize,
    wait_size: usize,
    max_wait: Duration,
) {
    let deadline = Instant::now() + max_wait;
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

/// Picks a batch client round-robin and sends what the builder holds (client-go
/// `getClientAndSend`).
async fn get_client_and_send(
    conn: &BatchConn,
    builder: &mut BatchBuilder,
    index: &mut usize,
    configured_limit: u64,
) {
    let n = conn.clients.len();
    if n == 0 {
        return;
    }
    let high = builder.has_high_priority();
    let mut picked = None;
    for _ in 0..n {
        *index = (*index + 1) % n;
        let c = &conn.clients[*index];
        if (high || c.available() > 0) && !c.is_recreating() {
            picked = Some(c.clone());
            break;
        }
    }
    let Some(cli) = picked else {
        counter!(m::NO_AVAILABLE_CONNECTION).increment(1);
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
