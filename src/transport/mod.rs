//! The terminal service of the request pipeline: tonic channel pools and batch-commands
//! streams (spec `request-path.md` §6, §8.5), from client-go's `internal/client` package
//! (`client.go`, `client_batch.go`, `conn_batch.go`, `conn_pool.go`, `client_async.go`,
//! `client_collapse.go`, `priority_queue.go`).
//!
//! [`Transport`] is a `tower::Service<RpcRequest>` that is always ready and cheap to clone
//! (an `Arc` inside). For each request it:
//!
//! 1. attaches the envelope's context to the inner message (RPC-3), on its own copy;
//! 2. picks the per-attempt timeout: `options.timeout`, else [`default_timeout`] for the
//!    command class (TP-10); the deadline covers queueing, sending and the wait;
//! 3. gets or lazily creates the address's [`pool`](self) of `grpc_connection_count`
//!    channels (TP-3/TP-4);
//! 4. sends batchable commands to TiKV stores through the pool's `BatchCommands` streams
//!    (TP-12 to TP-17, see [`batch`]) when `max_batch_size > 0`, and everything else as a
//!    unary or server-streaming call with `tikv-forwarded-host` metadata when forwarding
//!    (TP-9, TP-11, TP-18).
//!
//! Errors are [`tikv_layers::Error`]s; each carries an [`ErrConn`] source naming the pool
//! address and version, so the caller can [`close_addr_ver`](Transport::close_addr_ver)
//! exactly the pool that failed (TE-4, TP-6).
//!
//! Background work (one send task and one connection-state exporter per pool, one receive
//! task per stream) stops when its pool is closed, and every pool is closed when the last
//! [`Transport`] handle drops.
//!
//! Decisions on client-go quirks (Appendix B of the spec):
//!
//! - TP-7: an idle pool (no batch traffic for [`batch::IDLE_TIMEOUT`]) is closed and replaced
//!   by a fresh one on the next request instead of failing that request with "rpcClient is
//!   idle".
//! - TP-16: re-opening a broken stream backs off (`tikvRPC` schedule) after every failed
//!   attempt; a failure to open is never reported as success.
//! - TP-12: entries left over from a round (concurrency limit) are sent on the next wake-up
//!   like in client-go.
//!
//! Cancellation: the request's backoffer token stands for client-go's request context. A
//! request whose token is canceled before or while it is sent fails at once with
//! [`ErrorDetail::Canceled`] (TE-1, BO-8); its batch entry is skipped if still queued, or
//! its answer discarded if already sent, without disturbing other requests.
//!
//! RU accounting: an answered request is charged to the `Arc<`[`RuDetails`]`>` found in its
//! extensions unless [`RequestInfo::bypass`] says resource control ignores it (client-go
//! `sendRequest`); coprocessor streams are charged per chunk.
//!
//! Compression: with [`grpc_compression`](TikvClientConfig::grpc_compression) set to
//! [`Gzip`](crate::config::GrpcCompression::Gzip), every call on the pool's channels (unary,
//! server-streaming and the batch-commands streams) sends gzip-compressed messages and
//! accepts gzip responses, like client-go's `grpc.UseCompressor(gzip)` default call option
//! (TP-4); with `None` nothing is compressed or advertised.
//!
//! Connection states (TP-8, client-go `conn_monitor.go`): tonic exposes no connectivity
//! state, so each pooled connection keeps its own [`ConnState`] (idle, connecting, ready,
//! transient failure, shutdown), moved by what the transport already observes: a batch
//! stream opening, breaking and backing off, a unary call reaching the server or failing
//! below gRPC, the pool closing. A task per pool exports it every second as the one-hot
//! gauge [`GRPC_CONNECTION_STATE`](tikv_layers::metrics::names::GRPC_CONNECTION_STATE)
//! `{connection_id, store_ip, grpc_state}` and, when the pool is closed or dropped, exports
//! `SHUTDOWN` once and stops (see [`monitor`]).
//!
//! Unary calls share one concrete future for every unary command: a per-connection gRPC
//! client with the pool's call options and the transport's own codec over
//! [`Command`](tikv_layers::Command) (see `unary.rs`), so a call builds no client and boxes
//! no future.
//!
//! Not implemented: the shared buffer pool knob.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tikv_layers::request::EndpointType;
use tikv_layers::ru::{RuChargedStream, RuDetails, update_tikv_ru_v2_from_exec_details_v2};
use tikv_layers::{CmdType, CommandResponse, Error, ErrorDetail, RpcRequest, RpcResponse};
use tikv_proto::kvrpcpb;
use tokio::time::Instant;
use tonic::transport::ClientTlsConfig;

use crate::config::{Config, READ_TIMEOUT_MEDIUM, READ_TIMEOUT_SHORT, TikvClientConfig};

pub mod batch;
mod collapse;
pub mod metrics;
pub mod monitor;
mod policy;
mod pool;
pub mod queue;
pub mod resource;
pub mod trace;
mod unary;

#[cfg(test)]
mod tests;

pub use batch::{
    BATCH_CLIENT_CLOSED, BATCH_CONN_CLOSED, BATCH_CONN_INDEX_METADATA_KEY, BatchBuilder,
    BatchOutcome, BatchStage, Entry, FORWARD_METADATA_KEY, NO_AVAILABLE_CONNECTIONS, PendingStats,
    RECV_LOOP_PANICKED,
};
pub use collapse::{Collapse, CollapseFuture, CollapseLayer, collapse_key};
pub use monitor::ConnState;
pub use policy::TurboBatchTrigger;
pub use queue::{HIGH_TASK_PRIORITY, PriorityQueue, QueueItem};
pub use resource::{RequestInfo, ResponseInfo};
pub use trace::{FinishedSpan, SpanInfo};

use pool::ConnPool;

/// How long to wait for a connection to come up (client-go `dialTimeout`, 5 s).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Timeout of the active health-feedback request (client-go `GetHealthFeedback` callers, 2 s).
pub const HEALTH_FEEDBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Receives store events the transport observes (client-go `ClientEventListener`).
pub trait EventListener: Send + Sync + 'static {
    /// Called for every `HealthFeedback` a batch response carries (TP-15, HS-3).
    fn on_health_feedback(&self, feedback: &kvrpcpb::HealthFeedback);
}

/// Settings of a [`Transport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// The TiKV client knobs (connection count, keepalive, windows, batching, ...).
    pub client: TikvClientConfig,
    /// TLS for every channel; `None` for plaintext.
    pub tls: Option<ClientTlsConfig>,
    /// Connect timeout, also the wait for a batch stream to open (client-go `dialTimeout`).
    pub dial_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            client: TikvClientConfig::default(),
            tls: None,
            dial_timeout: DIAL_TIMEOUT,
        }
    }
}

impl TransportConfig {
    /// A config with `client` knobs, plaintext and the default dial timeout.
    pub fn new(client: TikvClientConfig) -> Self {
        TransportConfig {
            client,
            ..Self::default()
        }
    }

    /// Sets [`tls`](Self::tls).
    #[must_use]
    pub fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`dial_timeout`](Self::dial_timeout).
    #[must_use]
    pub fn with_dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = d;
        self
    }
}

/// State shared by the transport and its background tasks (never the pool map, so tasks do
/// not keep the transport alive).
pub(crate) struct Shared {
    pub(crate) config: TikvClientConfig,
    pub(crate) tls: Option<ClientTlsConfig>,
    pub(crate) dial_timeout: Duration,
    pub(crate) idle_notify: AtomicBool,
    listener: RwLock<Option<Arc<dyn EventListener>>>,
}

impl Shared {
    pub(crate) fn listener(&self) -> Option<Arc<dyn EventListener>> {
        self.listener
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Default)]
struct Pools {
    pools: HashMap<String, Arc<ConnPool>>,
    vers: HashMap<String, u64>,
    closed: bool,
}

struct Inner {
    shared: Arc<Shared>,
    pools: Mutex<Pools>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pools = std::mem::take(
            &mut self
                .pools
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pools,
        );
        for pool in pools.values() {
            pool.close();
        }
    }
}

/// The connection error wrapper (client-go `ErrConn`): every error of
/// [`Transport`] carries one as its source, naming the pool that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrConn {
    /// The store address of the pool.
    pub addr: String,
    /// The pool's version (TP-3).
    pub ver: u64,
    /// The message of the underlying cause.
    pub message: String,
}

impl std::fmt::Display for ErrConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]({}) {}", self.addr, self.ver, self.message)
    }
}

impl std::error::Error for ErrConn {}

impl ErrConn {
    /// The `ErrConn` in `err`'s source chain, if any.
    pub fn of(err: &Error) -> Option<&ErrConn> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = cur {
            if let Some(c) = e.downcast_ref::<ErrConn>() {
                return Some(c);
            }
            cur = e.source();
        }
        None
    }

    /// Attaches an `ErrConn` for `addr`/`ver` to `err`, keeping the text of its current
    /// source in [`message`](Self::message) (client-go `WrapErrConn`).
    pub fn wrap(err: Error, addr: &str, ver: u64) -> Error {
        let message = match std::error::Error::source(&err) {
            Some(s) => format!("{err}: {s}"),
            None => err.to_string(),
        };
        err.with_source(ErrConn {
            addr: addr.to_owned(),
            ver,
            message,
        })
    }
}

/// The send loop closes pools through the transport (TE-4, RE-13).
impl tikv_layers::locate::ConnectionControl for Transport {
    fn close_addr(&self, addr: &str) {
        Transport::close_addr(self, addr);
    }

    /// Closes the pool version the error came from (client-go's `CloseAddrVer`); the
    /// version check keeps a pool that was already replaced alive.
    fn close_for_error(&self, err: &Error) -> bool {
        match ErrConn::of(err) {
            Some(c) => {
                self.close_addr_ver(&c.addr, c.ver);
                true
            }
            None => false,
        }
    }
}

/// The per-attempt timeout client-go's callers use for `cmd` (TP-10).
///
/// The rule lives in [`tikv_layers::timeout::DefaultTimeoutPolicy`] (shared with the
/// pipeline's `timeout` layer); this builds that policy from the client's constants and the
/// configured coprocessor timeout: 60 s (`ReadTimeoutMedium`) for batch gets, scans, scan
/// lock and delete range, `copr_req_timeout` for coprocessor and MPP calls, 2 s for the
/// health feedback request, 5 minutes for `UnsafeDestroyRange` and 30 s
/// (`ReadTimeoutShort`) for everything else, raw commands included.
pub fn default_timeout(cmd: CmdType, cfg: &TikvClientConfig) -> Duration {
    tikv_layers::timeout::DefaultTimeoutPolicy::new()
        .with_short(READ_TIMEOUT_SHORT)
        .with_medium(READ_TIMEOUT_MEDIUM)
        .with_coprocessor(cfg.copr_req_timeout)
        .with_health_feedback(HEALTH_FEEDBACK_TIMEOUT)
        .timeout_for(cmd)
}

/// How many read and write RPCs a completed request counts for RU v2 accounting (client-go
/// `completedTiKVRUV2RPCCount`): nothing for non-TiKV targets and debug commands, one write
/// for transactional and raw writes, one read otherwise.
pub fn completed_ru_v2_rpc_count(req: &RpcRequest) -> (u64, u64) {
    let cmd = req.cmd_type();
    if req.options.endpoint != EndpointType::TiKV || cmd.is_debug() {
        return (0, 0);
    }
    if cmd.is_txn_write() || cmd.is_raw_write() {
        (0, 1)
    } else {
        (1, 0)
    }
}

/// The tonic channel pool and batch-commands client: the terminal `Service` of the request
/// pipeline (client-go `RPCClient`).
///
/// Always ready; [`call`](tower::Service::call) returns a `Send + 'static` future. Cloning
/// shares the pools.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("pools", &self.lock().pools.len())
            .finish_non_exhaustive()
    }
}

/// The future of [`Transport::call`](tower::Service::call).
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<RpcResponse, Error>> + Send>>;

impl Transport {
    /// Creates a transport. No connection is made until the first request to an address
    /// (client-go `NewRPCClient`). Needs a Tokio runtime when requests are sent.
    pub fn new(config: TransportConfig) -> Transport {
        Transport {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    config: config.client,
                    tls: config.tls,
                    dial_timeout: config.dial_timeout,
                    idle_notify: AtomicBool::new(false),
                    listener: RwLock::new(None),
                }),
                pools: Mutex::new(Pools::default()),
            }),
        }
    }

    /// Creates a transport from the client config, loading TLS material from the files of
    /// `config.security` with `tokio::fs`.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidConfig`] when the TLS files cannot be read or parsed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is started before the future completes.
    pub async fn from_config(config: &Config) -> Result<Transport, Error> {
        let tls = config.security.to_tls_config().await?;
        Ok(Transport::new(
            TransportConfig::new(config.tikv_client.clone()).with_tls(tls),
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Pools> {
        self.inner
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the listener for store events (client-go `SetEventListener`).
    pub fn set_event_listener(&self, listener: Arc<dyn EventListener>) {
        *self
            .inner
            .shared
            .listener
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(listener);
    }

    /// Gets or creates the pool for `addr` (client-go `getConnPool` / `createConnPool`).
    fn get_pool(&self, addr: &str, enable_batch: bool) -> Result<Arc<ConnPool>, Error> {
        let mut pools = self.lock();
        if pools.closed {
            return Err(ErrorDetail::Transport {
                addr: addr.to_owned(),
                message: "rpcClient is closed".to_owned(),
            }
            .into());
        }
        if let Some(pool) = pools.pools.get(addr) {
            let idle = pool.batch.as_ref().is_some_and(|b| b.is_idle());
            if !idle {
                return Ok(pool.clone());
            }
            // TP-7 decision: replace an idle pool instead of failing the request.
            if let Some(old) = pools.pools.remove(addr) {
                old.close();
                ::metrics::counter!(metrics::IDLE_RECYCLES).increment(1);
            }
        }
        let ver = pools.vers.get(addr).copied().unwrap_or(0) + 1;
        let pool = Arc::new(ConnPool::new(addr, ver, &self.inner.shared, enable_batch)?);
        pools.pools.insert(addr.to_owned(), pool.clone());
        pools.vers.insert(addr.to_owned(), ver);
        Ok(pool)
    }

    /// Closes every idle pool (client-go `recycleIdleConnArray`).
    fn recycle_idle(&self) {
        let idle: Vec<(String, u64)> = self
            .lock()
            .pools
            .values()
            .filter(|p| p.batch.as_ref().is_some_and(|b| b.is_idle()))
            .map(|p| (p.addr.clone(), p.ver))
            .collect();
        for (addr, ver) in idle {
            self.close_addr_ver(&addr, ver);
            ::metrics::counter!(metrics::IDLE_RECYCLES).increment(1);
        }
    }

    /// Closes and forgets the pool of `addr` (client-go `CloseAddr`): its streams end,
    /// requests waiting on it fail with "batchConn closed", the next request opens a new
    /// pool with a higher version.
    pub fn close_addr(&self, addr: &str) {
        self.close_addr_ver(addr, u64::MAX);
    }

    /// Closes the pool of `addr` only if its version is at most `ver`, so a late close for
    /// an old pool spares a newer one (client-go `CloseAddrVer`).
    pub fn close_addr_ver(&self, addr: &str, ver: u64) {
        let pool = {
            let mut pools = self.lock();
            if pools.closed {
                return;
            }
            match pools.pools.get(addr) {
                Some(p) if p.ver <= ver => pools.pools.remove(addr),
                _ => None,
            }
        };
        if let Some(pool) = pool {
            pool.close();
        }
    }

    /// Closes every pool and refuses new requests (client-go `Close`).
    pub fn close(&self) {
        let pools = {
            let mut pools = self.lock();
            pools.closed = true;
            std::mem::take(&mut pools.pools)
        };
        for pool in pools.values() {
            pool.close();
        }
    }

    /// The version of `addr`'s current pool, if one exists.
    pub fn pool_version(&self, addr: &str) -> Option<u64> {
        self.lock().pools.get(addr).map(|p| p.ver)
    }

    /// An inspection handle on `addr`'s pool, creating it if needed (client-go tests reach
    /// into `getConnPool`; this is their door).
    ///
    /// # Errors
    ///
    /// A transport error when the transport is closed.
    pub fn pool(&self, addr: &str) -> Result<PoolHandle, Error> {
        Ok(PoolHandle {
            pool: self.get_pool(addr, true)?,
        })
    }

    /// Sends one request (client-go `RPCClient.SendRequest` without the codec).
    ///
    /// # Errors
    ///
    /// Transport, timeout, gRPC status and protocol errors, each with an [`ErrConn`]
    /// source; [`ErrorDetail::Canceled`] when the request's backoffer token (the caller's
    /// cancellation) is canceled before the answer arrives.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future, or canceling the request's backoffer token,
    /// removes the request from the batch queue if it was not sent yet, or discards its
    /// answer when it arrives (a unary call is canceled); other requests are not affected.
    ///
    /// The future owns what it needs (it does not borrow the transport). It is built as
    /// one `async` block that holds the request once: an `async fn` would copy it from its
    /// arguments into its body, and this future is moved into a box on every call.
    pub fn send_request(
        &self,
        mut req: RpcRequest,
    ) -> impl Future<Output = Result<RpcResponse, Error>> + Send + 'static {
        let this = self.clone();
        async move {
            let start = Instant::now();
            let cmd = req.cmd_type();
            let shared = &this.inner.shared;
            let timeout = req
                .options
                .timeout
                .unwrap_or_else(|| default_timeout(cmd, &shared.config));
            let deadline = unary::instant_after(start, timeout);
            // The caller's cancellation (client-go's request context, TE-1/BO-8): the token of
            // the request's backoffer.
            let cancel = req.backoffer.cancel_token();
            req.attach_context();
            if shared.idle_notify.swap(false, Ordering::AcqRel) {
                this.recycle_idle();
            }
            // Taken, not cloned: nothing below reads the request's address again.
            let addr = std::mem::take(&mut req.target.addr);
            let store_id = req.target.store_id;
            let enable_batch = req.options.endpoint == EndpointType::TiKV;
            let pool = this.get_pool(&addr, enable_batch)?;
            let charge = RuCharge::of(&req);
            let batch = pool.batch.clone().filter(|_| enable_batch);
            let res = if cancel.is_cancelled() {
                Err(batch::canceled("send request is canceled"))
            } else {
                match (batch, req.cmd.to_batch_request()) {
                    (Some(batch), Some(breq)) => {
                        let priority = override_priority(&req);
                        let host = req.target.forwarded_host.clone().unwrap_or_default();
                        batch
                            .send(breq, host, priority, deadline, timeout, false, &cancel)
                            .await
                            .and_then(|r| from_batch(r, cmd))
                    }
                    _ => {
                        // Cancel safety: dropping the unary call cancels the RPC. Boxed:
                        // held inline, the unary call's future (several KB) would make
                        // every call's future that large, batched ones included.
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => Err(batch::canceled("wait response is canceled")),
                            r = Box::pin(unary::call(&pool, req, timeout, deadline)) => r,
                        }
                    }
                }
            };
            let elapsed = start.elapsed();
            if let Some(h) = pool.metrics.request_seconds(cmd) {
                h.record(elapsed.as_secs_f64());
            }
            match res {
                Ok(mut resp) => {
                    if let Some(c) = &charge {
                        c.charge(&mut resp, &shared.config.ru_v2);
                    }
                    trace::trace_exec_details(&resp);
                    let mut out = RpcResponse::new(resp);
                    out.details.addr = addr;
                    out.details.store_id = store_id;
                    out.details.attempts = 1;
                    out.details.rpc_time = elapsed;
                    Ok(out)
                }
                Err(e) => Err(ErrConn::wrap(e, &pool.addr, pool.ver)),
            }
        }
    }

    /// Sends a batchable request to a TiKV store and calls `callback` with the outcome
    /// (client-go `SendRequestAsync`). Fails through the callback when batching is disabled,
    /// the target is not TiKV, or the command has no batch form. There is no per-request
    /// timer unless `options.timeout` is set; closing the pool while the request waits to
    /// be queued reports "batchConn closed", while it is in flight "batch client closed";
    /// canceling the request's backoffer token reports [`ErrorDetail::Canceled`]. An
    /// answered request is charged to the [`RuDetails`] in its extensions, as
    /// [`send_request`](Self::send_request) does.
    pub fn send_request_async<F>(&self, mut req: RpcRequest, callback: F)
    where
        F: FnOnce(Result<RpcResponse, Error>) + Send + 'static,
    {
        let fail = |msg: &str| -> Error { ErrorDetail::InvalidArgument(msg.to_owned()).into() };
        if self.inner.shared.config.max_batch_size == 0 {
            return callback(Err(fail("batch client is disabled")));
        }
        if req.options.endpoint != EndpointType::TiKV {
            return callback(Err(fail("unsupported store type for the async client")));
        }
        req.attach_context();
        let cmd = req.cmd_type();
        let Some(breq) = req.cmd.to_batch_request() else {
            return callback(Err(fail("unsupported request type for the async client")));
        };
        let addr = req.target.addr.clone();
        let pool = match self.get_pool(&addr, true) {
            Ok(p) => p,
            Err(e) => return callback(Err(e)),
        };
        let Some(batch) = pool.batch.clone() else {
            return callback(Err(fail("batch client is disabled")));
        };
        let timeout = req
            .options
            .timeout
            .unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
        let priority = override_priority(&req);
        let host = req.target.forwarded_host.clone().unwrap_or_default();
        let store_id = req.target.store_id;
        let cancel = req.backoffer.cancel_token();
        let charge = RuCharge::of(&req);
        let shared = self.inner.shared.clone();
        tokio::spawn(async move {
            let deadline = unary::instant_after(Instant::now(), timeout);
            let res = batch
                .send(breq, host, priority, deadline, timeout, true, &cancel)
                .await
                .and_then(|r| from_batch(r, cmd));
            callback(match res {
                Ok(mut resp) => {
                    if let Some(c) = &charge {
                        c.charge(&mut resp, &shared.config.ru_v2);
                    }
                    let mut out = RpcResponse::new(resp);
                    out.details.addr = addr;
                    out.details.store_id = store_id;
                    out.details.attempts = 1;
                    Ok(out)
                }
                Err(e) => Err(ErrConn::wrap(e, &pool.addr, pool.ver)),
            });
        });
    }
}

/// How an answered request is charged to the caller's RU v2 accounting (client-go: the
/// `RUDetails` in the request context, charged in `sendRequest` / `SendRequestAsync`).
///
/// The caller puts an `Arc<RuDetails>` into the request's extensions; requests resource
/// control does not account ([`RequestInfo::bypass`]) are not charged, and neither are
/// requests without one.
struct RuCharge {
    details: Arc<RuDetails>,
    bypass: bool,
    read_rpcs: u64,
    write_rpcs: u64,
}

impl RuCharge {
    fn of(req: &RpcRequest) -> Option<RuCharge> {
        let details = req.extensions.get::<Arc<RuDetails>>()?.clone();
        let (read_rpcs, write_rpcs) = completed_ru_v2_rpc_count(req);
        Some(RuCharge {
            details,
            bypass: RequestInfo::new(req).bypass(),
            read_rpcs,
            write_rpcs,
        })
    }

    /// Charges `resp`'s RU v2 counters, stamping the RPC counts into them; a coprocessor
    /// stream is charged chunk by chunk as it is read (client-go `CopStreamResponse.Recv`).
    fn charge(&self, resp: &mut CommandResponse, weights: &tikv_layers::ru::RuV2Weights) {
        if let CommandResponse::CopStream(stream) = resp {
            let inner = std::mem::replace(
                stream,
                tikv_layers::request::ResponseStream::new(EmptyStream),
            );
            *stream = RuChargedStream::new(inner, *weights)
                .with_ru_details(self.details.clone())
                .with_bypass(self.bypass)
                .with_count_rpc(true)
                .into_response_stream();
            return;
        }
        if self.bypass {
            return;
        }
        if let Some(d) = exec_details_v2_mut(resp) {
            update_tikv_ru_v2_from_exec_details_v2(
                &self.details,
                weights,
                d,
                self.read_rpcs,
                self.write_rpcs,
            );
        }
    }
}

/// A stream with no items, the placeholder while a response stream is re-wrapped.
struct EmptyStream;

impl futures_core::Stream for EmptyStream {
    type Item = Result<tikv_proto::coprocessor::Response, Error>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

/// The response's execution details, mutable (the responses
/// [`CommandResponse::exec_details_v2`] reads).
fn exec_details_v2_mut(resp: &mut CommandResponse) -> Option<&mut kvrpcpb::ExecDetailsV2> {
    use CommandResponse as R;
    match resp {
        R::Get(r) => r.exec_details_v2.as_mut(),
        R::BatchGet(r) => r.exec_details_v2.as_mut(),
        R::BufferBatchGet(r) => r.exec_details_v2.as_mut(),
        R::Prewrite(r) => r.exec_details_v2.as_mut(),
        R::Commit(r) => r.exec_details_v2.as_mut(),
        R::PessimisticLock(r) => r.exec_details_v2.as_mut(),
        R::PessimisticRollback(r) => r.exec_details_v2.as_mut(),
        R::BatchRollback(r) => r.exec_details_v2.as_mut(),
        R::ScanLock(r) => r.exec_details_v2.as_mut(),
        R::ResolveLock(r) => r.exec_details_v2.as_mut(),
        R::CheckTxnStatus(r) => r.exec_details_v2.as_mut(),
        R::CheckSecondaryLocks(r) => r.exec_details_v2.as_mut(),
        R::TxnHeartBeat(r) => r.exec_details_v2.as_mut(),
        R::Flush(r) => r.exec_details_v2.as_mut(),
        R::Cop(r) => r.exec_details_v2.as_mut(),
        _ => None,
    }
}

fn from_batch(
    r: tikv_proto::tikvpb::batch_commands_response::Response,
    cmd: CmdType,
) -> Result<CommandResponse, Error> {
    let resp = CommandResponse::from_batch_response(r)?;
    if resp.cmd_type() != cmd {
        return Err(ErrorDetail::InvalidResponse {
            expected: cmd.name(),
            got: resp.cmd_type().name().to_owned(),
        }
        .into());
    }
    Ok(resp)
}

impl tower::Service<RpcRequest> for Transport {
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> ResponseFuture {
        Box::pin(self.send_request(req))
    }
}

/// An inspection handle on one address's pool, for tests and diagnostics.
#[derive(Clone)]
pub struct PoolHandle {
    pool: Arc<ConnPool>,
}

impl std::fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolHandle")
            .field("addr", &self.pool.addr)
            .field("ver", &self.pool.ver)
            .finish_non_exhaustive()
    }
}

impl PoolHandle {
    /// The pool's version.
    pub fn ver(&self) -> u64 {
        self.pool.ver
    }

    /// Whether the pool was closed (client-go: its connections report `Shutdown`).
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Every connection's connectivity state, in pool order (what the TP-8 monitor
    /// exports as `grpc_state`).
    pub fn conn_states(&self) -> Vec<ConnState> {
        self.pool.conn_states()
    }

    /// Whether the pool's connection-state exporter (TP-8) is still running; it stops
    /// once the pool is closed or dropped.
    pub fn is_monitor_running(&self) -> bool {
        self.pool.monitor.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Whether the batch send loop stopped for lack of traffic.
    pub fn is_idle(&self) -> bool {
        self.pool.batch.as_ref().is_some_and(|b| b.is_idle())
    }

    /// Marks every batch client as being re-created (`true`) or releases that mark, the
    /// way client-go's tests call `lockForRecreate` on each client.
    pub fn hold_recreate(&self, held: bool) {
        if let Some(b) = &self.pool.batch {
            for c in &b.clients {
                c.set_held(held);
            }
        }
    }

    /// Whether some batch client can take requests now (not re-creating a stream).
    pub fn has_ready_client(&self) -> bool {
        self.pool
            .batch
            .as_ref()
            .is_some_and(|b| b.clients.iter().any(|c| !c.is_recreating()))
    }

    /// Per batch client: its reconnection epoch, bumped once per reconnection of its
    /// connection however many of its streams broke (client-go `batchCommandsClient.epoch`).
    pub fn epochs(&self) -> Vec<u64> {
        self.pool
            .batch
            .as_ref()
            .map_or_else(Vec::new, |b| b.clients.iter().map(|c| c.epoch()).collect())
    }

    /// Per batch client: the slow and hanging requests in flight as seen at `now` (client-go
    /// `inspectPendingBatchRequests`, which logs them every minute).
    pub fn pending_stats(&self, now: Instant) -> Vec<PendingStats> {
        self.pool.batch.as_ref().map_or_else(Vec::new, |b| {
            b.clients.iter().map(|c| c.inspect_pending(now)).collect()
        })
    }

    /// Per batch client: (in flight, spare concurrency).
    pub fn client_load(&self) -> Vec<(i64, i64)> {
        self.pool.batch.as_ref().map_or_else(Vec::new, |b| {
            b.clients
                .iter()
                .map(|c| (c.in_flight(), c.available()))
                .collect()
        })
    }
}

/// The resource-control priority override of a request (0 = none), which orders the
/// batch queue.
fn override_priority(req: &RpcRequest) -> u64 {
    req.context
        .resource_control_context
        .as_ref()
        .map_or(0, |r| r.override_priority)
}
