//! Connection pools: `grpc_connection_count` lazily connected tonic channels per store
//! address (TP-3 to TP-6), from client-go's `internal/client/conn_pool.go`, and the
//! generated gRPC clients built on them with the pool's default call options (TP-4).
//!
//! Each connection ([`Conn`]) keeps its clients built once, with the pool's call options:
//! a call clones them (a channel handle clone) instead of building a client per call. It
//! also carries its connectivity state for the TP-8 monitor (see [`monitor`](super::monitor)),
//! whose exporter task the pool owns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tikv_layers::{Error, ErrorDetail};
use tikv_proto::debugpb::debug_client::DebugClient;
use tikv_proto::tikvpb::tikv_client::TikvClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::client::Grpc;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use super::Shared;
use super::batch::BatchConn;
use super::metrics::StoreMetrics;
use super::monitor::{self, ConnState, ConnStateCell};
use crate::config::GrpcCompression;

/// One pooled connection: its channel, the clients on it and its connectivity state
/// (client-go `monitoredConn`).
#[derive(Clone)]
pub(crate) struct Conn {
    /// The `Tikv` service client with the pool's call options (streaming calls and the
    /// batch-commands streams).
    pub(crate) tikv: TikvClient<Channel>,
    /// The same channel and call options as a plain gRPC client, for unary calls sent with
    /// the transport's own codec (no per-call client or boxed future).
    pub(crate) grpc: Grpc<Channel>,
    /// The channel, for the debug service.
    pub(crate) channel: Channel,
    /// The connectivity state the TP-8 monitor exports.
    pub(crate) state: Arc<ConnStateCell>,
}

impl Conn {
    /// A connection over `channel` with the call options of `compression` (TP-4).
    pub(crate) fn new(channel: Channel, compression: GrpcCompression) -> Conn {
        let mut grpc = Grpc::new(channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        if let Some(enc) = encoding(compression) {
            grpc = grpc.send_compressed(enc).accept_compressed(enc);
        }
        Conn {
            tikv: tikv_client(channel.clone(), compression),
            grpc,
            channel,
            state: Arc::new(ConnStateCell::new()),
        }
    }
}

/// One store address's connections (client-go `connPool`).
pub(crate) struct ConnPool {
    pub(crate) addr: String,
    pub(crate) ver: u64,
    conns: Box<[Conn]>,
    index: AtomicUsize,
    pub(crate) batch: Option<Arc<BatchConn>>,
    /// The store's metric handles, resolved once for the pool's life.
    pub(crate) metrics: Arc<StoreMetrics>,
    /// Message compression of every call on the pool's channels (TP-4).
    pub(crate) compression: GrpcCompression,
    /// The TP-8 exporter of the connections' states; ends when `token` is canceled.
    pub(crate) monitor: Option<JoinHandle<()>>,
    token: CancellationToken,
}

impl ConnPool {
    /// Builds the pool: one lazily connected channel per configured connection, with the
    /// keepalive, window and TLS settings of the config, plus the batch half when
    /// `enable_batch` and batching is on (client-go `newConnPool` / `Init`), and starts the
    /// connection-state exporter (TP-8, client-go `monitoredDial` registering each
    /// connection with the monitor).
    pub(crate) fn new(
        addr: &str,
        ver: u64,
        shared: &Arc<Shared>,
        enable_batch: bool,
    ) -> Result<ConnPool, Error> {
        let cfg = &shared.config;
        let count = cfg.grpc_connection_count.max(1);
        let endpoint = endpoint(addr, shared)?;
        let conns: Box<[Conn]> = (0..count)
            .map(|_| Conn::new(endpoint.connect_lazy(), cfg.grpc_compression))
            .collect();
        let token = CancellationToken::new();
        let metrics = Arc::new(StoreMetrics::new(addr));
        let batch = (enable_batch && cfg.max_batch_size > 0).then(|| {
            BatchConn::start(addr, &conns, shared.clone(), token.clone(), metrics.clone())
        });
        let cells: Vec<Arc<ConnStateCell>> = conns.iter().map(|c| c.state.clone()).collect();
        let monitor = monitor::spawn(addr, &cells, token.clone());
        Ok(ConnPool {
            addr: addr.to_owned(),
            ver,
            conns,
            index: AtomicUsize::new(0),
            batch,
            metrics,
            compression: cfg.grpc_compression,
            monitor,
            token,
        })
    }

    /// The next connection, round-robin (client-go `connPool.Get`).
    pub(crate) fn get(&self) -> &Conn {
        let i = self.index.fetch_add(1, Ordering::Relaxed).wrapping_add(1) % self.conns.len();
        &self.conns[i]
    }

    /// Every connection's state, in pool order.
    pub(crate) fn conn_states(&self) -> Vec<ConnState> {
        self.conns.iter().map(|c| c.state.get()).collect()
    }

    /// Stops every task of the pool; requests waiting on it fail with "batchConn closed";
    /// every connection reports [`ConnState::Shutdown`].
    pub(crate) fn close(&self) {
        for c in &self.conns {
            c.state.shutdown();
        }
        self.token.cancel();
    }

    /// Whether [`close`](Self::close) was called (client-go: the connection reports
    /// `Shutdown`).
    pub(crate) fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Drop for ConnPool {
    fn drop(&mut self) {
        self.close();
    }
}

/// The tonic encoding for `compression`, `None` when messages go uncompressed.
fn encoding(compression: GrpcCompression) -> Option<CompressionEncoding> {
    match compression {
        GrpcCompression::None => None,
        GrpcCompression::Gzip => Some(CompressionEncoding::Gzip),
    }
}

/// A `Tikv` service client on `channel` with the pool's default call options (TP-4,
/// client-go `newConnPool`): no message size limit, and with gzip configured every request
/// message is gzip-compressed and gzip responses are accepted (client-go's
/// `grpc.UseCompressor(gzip)` call option).
pub(crate) fn tikv_client(channel: Channel, compression: GrpcCompression) -> TikvClient<Channel> {
    let client = TikvClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    match encoding(compression) {
        Some(enc) => client.send_compressed(enc).accept_compressed(enc),
        None => client,
    }
}

/// A `Debug` service client with the same call options as [`tikv_client`]: client-go sets
/// them on the connection, so they cover the debug service too.
pub(crate) fn debug_client(channel: Channel, compression: GrpcCompression) -> DebugClient<Channel> {
    let client = DebugClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    match encoding(compression) {
        Some(enc) => client.send_compressed(enc).accept_compressed(enc),
        None => client,
    }
}

/// The tonic endpoint for `addr` with the transport settings of TP-4.
fn endpoint(addr: &str, shared: &Shared) -> Result<Endpoint, Error> {
    let cfg = &shared.config;
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else if shared.tls.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let invalid = |e: tonic::transport::Error| {
        Error::new(ErrorDetail::InvalidArgument(format!(
            "invalid store address {addr:?}"
        )))
        .with_source(e)
    };
    let mut ep = Endpoint::from_shared(uri)
        .map_err(invalid)?
        .connect_timeout(shared.dial_timeout)
        .http2_keep_alive_interval(cfg.grpc_keepalive_time)
        .keep_alive_timeout(cfg.grpc_keepalive_timeout)
        .initial_stream_window_size(Some(cfg.grpc_initial_window_size))
        .initial_connection_window_size(Some(cfg.grpc_initial_conn_window_size))
        .tcp_nodelay(true);
    if let Some(tls) = &shared.tls {
        ep = ep.tls_config(tls.clone()).map_err(invalid)?;
    }
    Ok(ep)
}
