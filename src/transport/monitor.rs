//! The connection-state monitor (TP-8), from client-go's `internal/client/conn_monitor.go`
//! and the way `conn_pool.go` registers every dialed connection with it.
//!
//! client-go reads each pooled `grpc.ClientConn`'s connectivity state once a second and
//! exports it as the one-hot gauge
//! [`GRPC_CONNECTION_STATE`]`{connection_id, store_ip, grpc_state}`: the series of the current
//! state is 1, the other four are 0. The connection id is `<address>-<index in the pool>` and
//! the store ip is the pool's address, as in client-go.
//!
//! tonic exposes no connectivity state, so every pooled connection carries its own
//! [`ConnState`] in an atomic cell, moved where the transport already learns something
//! about the connection (one relaxed load when nothing changes, so the request path pays
//! next to nothing):
//!
//! | event | state |
//! |---|---|
//! | pool created, connection never used | [`Idle`](ConnState::Idle) |
//! | a call or a batch stream open starts on an idle or failed connection; a batch stream broke and is being re-created | [`Connecting`](ConnState::Connecting) |
//! | a stream opened, or a call got an answer from the server (even an error status) | [`Ready`](ConnState::Ready) |
//! | a stream open or a call failed below gRPC (`Unavailable`, an unclassified transport error, the dial timeout), and the batch client backs off before trying again | [`TransientFailure`](ConnState::TransientFailure) |
//! | the pool was closed or dropped | [`Shutdown`](ConnState::Shutdown) (final) |
//!
//! One exporter task per pool (client-go has one per client; one per pool lets the pool's
//! own [`CancellationToken`] stop it, like the pool's batch tasks) sets the gauges every
//! [`EXPORT_INTERVAL`]. When the pool closes or is dropped, the task exports
//! [`Shutdown`](ConnState::Shutdown) once for each connection and ends, so a removed
//! connection's series stop changing. The gauge handles are resolved once, when the pool is
//! built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use metrics::{Gauge, gauge};
use tikv_layers::metrics::names::{GRPC_CONNECTION_STATE, labels};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often the monitor exports every connection's state (client-go's one-second ticker).
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A pooled connection's connectivity state, named like gRPC's `connectivity.State`
/// (client-go exports `State.String()` as the `grpc_state` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// Created, never used.
    Idle = 0,
    /// Connecting, or re-creating a broken batch stream.
    Connecting = 1,
    /// Serving.
    Ready = 2,
    /// The last attempt to reach the store failed; waiting to try again.
    TransientFailure = 3,
    /// Closed with its pool; never changes again.
    Shutdown = 4,
}

impl ConnState {
    /// Every state, in gRPC's order (the order client-go iterates when it exports).
    pub const ALL: [ConnState; 5] = [
        ConnState::Idle,
        ConnState::Connecting,
        ConnState::Ready,
        ConnState::TransientFailure,
        ConnState::Shutdown,
    ];

    /// The `grpc_state` label value: gRPC's `connectivity.State.String()`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Idle => "IDLE",
            ConnState::Connecting => "CONNECTING",
            ConnState::Ready => "READY",
            ConnState::TransientFailure => "TRANSIENT_FAILURE",
            ConnState::Shutdown => "SHUTDOWN",
        }
    }

    fn from_u8(v: u8) -> ConnState {
        match v {
            0 => ConnState::Idle,
            1 => ConnState::Connecting,
            2 => ConnState::Ready,
            3 => ConnState::TransientFailure,
            _ => ConnState::Shutdown,
        }
    }

    /// What a call or stream open that ended with `status` says about its connection:
    /// `None` when it ended locally (our deadline, a cancellation) and says nothing.
    pub(crate) fn after_status(status: &tonic::Status) -> Option<ConnState> {
        use tonic::Code;
        match status.code() {
            // Refused connection, failed handshake, keepalive timeout, refused stream.
            Code::Unavailable => Some(ConnState::TransientFailure),
            // A transport error tonic could not classify (it keeps the cause as source);
            // an `Unknown` status from the server has none.
            Code::Unknown if std::error::Error::source(status).is_some() => {
                Some(ConnState::TransientFailure)
            }
            Code::Cancelled | Code::DeadlineExceeded => None,
            // The server (or its HTTP/2 layer) answered: the connection is up.
            _ => Some(ConnState::Ready),
        }
    }
}

impl std::fmt::Display for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one connection, shared by the pool, its batch client and the exporter.
#[derive(Debug)]
pub(crate) struct ConnStateCell(AtomicU8);

impl ConnStateCell {
    /// A cell in [`ConnState::Idle`].
    pub(crate) fn new() -> ConnStateCell {
        ConnStateCell(AtomicU8::new(ConnState::Idle as u8))
    }

    /// The current state.
    pub(crate) fn get(&self) -> ConnState {
        ConnState::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Moves to `to`, unless the cell is already there (one load, no write: the common
    /// case on the request path) or shut down (final).
    pub(crate) fn set(&self, to: ConnState) {
        let cur = self.0.load(Ordering::Relaxed);
        if cur == to as u8 || cur == ConnState::Shutdown as u8 {
            return;
        }
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c != ConnState::Shutdown as u8).then_some(to as u8)
            });
    }

    /// A call or stream open starts: an idle or failed connection is now connecting; a
    /// ready one stays ready (gRPC reuses the open connection).
    pub(crate) fn begin_connect(&self) {
        let cur = self.0.load(Ordering::Relaxed);
        if cur == ConnState::Idle as u8 || cur == ConnState::TransientFailure as u8 {
            let _ = self.0.compare_exchange(
                cur,
                ConnState::Connecting as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Records the outcome of a call or stream open that ended with `status`.
    pub(crate) fn after_status(&self, status: &tonic::Status) {
        if let Some(s) = ConnState::after_status(status) {
            self.set(s);
        }
    }

    /// The pool closed: final.
    pub(crate) fn shutdown(&self) {
        self.0.store(ConnState::Shutdown as u8, Ordering::Relaxed);
    }
}

/// The gauge handles of one connection, one per state, indexed like [`ConnState::ALL`].
struct ConnGauges {
    cell: Arc<ConnStateCell>,
    gauges: [Gauge; 5],
}

impl ConnGauges {
    /// Exports `state` one-hot.
    fn export(&self, state: ConnState) {
        for (s, g) in ConnState::ALL.iter().zip(&self.gauges) {
            g.set(if *s == state { 1.0 } else { 0.0 });
        }
    }
}

/// The connection id label of connection `idx` of `addr`'s pool (client-go: the
/// `monitoredConn` name, `<target>-<index>`).
pub(crate) fn connection_id(addr: &str, idx: usize) -> String {
    format!("{addr}-{idx}")
}

/// Resolves the gauges of `cells` (the connections of `addr`'s pool, in pool order) and
/// starts the exporter, which runs until `token` is canceled. `None`, instead of a panic,
/// when no tokio runtime is running (the pool's lazily connected channels already need one,
/// so this does not happen through [`Transport`](super::Transport)).
pub(crate) fn spawn(
    addr: &str,
    cells: &[Arc<ConnStateCell>],
    token: CancellationToken,
) -> Option<JoinHandle<()>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let conns: Vec<ConnGauges> = cells
        .iter()
        .enumerate()
        .map(|(idx, cell)| {
            let id = connection_id(addr, idx);
            let gauges = ConnState::ALL.map(|s| {
                gauge!(
                    GRPC_CONNECTION_STATE,
                    labels::CONNECTION_ID => id.clone(),
                    labels::STORE_IP => addr.to_owned(),
                    labels::GRPC_STATE => s.as_str()
                )
            });
            ConnGauges {
                cell: cell.clone(),
                gauges,
            }
        })
        .collect();
    Some(handle.spawn(export_loop(conns, token)))
}

/// Exports every connection's state each [`EXPORT_INTERVAL`] (the first time one interval
/// after the pool was built, like client-go's ticker) until `token` is canceled, then
/// exports [`ConnState::Shutdown`] once and ends.
async fn export_loop(conns: Vec<ConnGauges>, token: CancellationToken) {
    let mut tick = tokio::time::interval_at(Instant::now() + EXPORT_INTERVAL, EXPORT_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // Cancel safety: both branches are cancel safe.
        tokio::select! {
            biased;
            () = token.cancelled() => break,
            _ = tick.tick() => {
                for c in &conns {
                    c.export(c.cell.get());
                }
            }
        }
    }
    for c in &conns {
        c.export(ConnState::Shutdown);
    }
}
