//! The bare mock TiKV gRPC server (spec MC-2.29.7, §3.9): a `tikvpb.Tikv` server attached to
//! no cluster, for transport tests.
//!
//! `KvGet` and `KvPrewrite` answer empty responses, `CoprocessorStream` sends one empty
//! response, and `BatchCommands` answers every request id of a batch with an `Empty`
//! response plus health feedback `{store_id: 1, feedback_seq_no: 1, 2, .. per stream,
//! slow_score: 1}`, unless an [`OnBatchCommands`] override is installed. Every other method is
//! `Unimplemented`. An optional [`MetaChecker`] runs before every call and stream. The server
//! can be stopped and started again on the same address.

use std::sync::{Arc, Mutex};

use tikv_layers::{Error, ErrorDetail};
use tikv_proto::tikvpb::tikv_server::{Tikv, TikvServer};
use tikv_proto::{coprocessor, kvrpcpb, mpp, tikvpb};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use super::grpc::{
    BoxStream, MetaChecker, MetaSlot, Running, bind, chan_stream, check_meta, spawn_server,
    with_tikv_methods,
};

/// The `BatchCommands` override of the bare server: it receives each whole batch and returns
/// the whole response, or an error that ends the stream.
pub type OnBatchCommands = Arc<
    dyn Fn(tikvpb::BatchCommandsRequest) -> Result<tikvpb::BatchCommandsResponse, Status>
        + Send
        + Sync,
>;

#[derive(Default)]
struct BareShared {
    meta: MetaSlot,
    on_batch: Mutex<Option<OnBatchCommands>>,
}

#[derive(Default)]
struct BareState {
    running: Option<Running>,
    addr: String,
}

/// The bare mock TiKV server (client-go's `mockserver.MockServer`). Dropping it stops it.
pub struct BareTikvServer {
    shared: Arc<BareShared>,
    state: Mutex<BareState>,
}

impl std::fmt::Debug for BareTikvServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareTikvServer")
            .field("addr", &self.addr())
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl Default for BareTikvServer {
    fn default() -> Self {
        BareTikvServer::new()
    }
}

impl BareTikvServer {
    /// A server that is not running yet.
    pub fn new() -> BareTikvServer {
        BareTikvServer {
            shared: Arc::new(BareShared::default()),
            state: Mutex::new(BareState::default()),
        }
    }

    /// Creates a server and starts it on an ephemeral loopback port (client-go
    /// `StartMockTikvService`); returns the server and its port.
    ///
    /// # Errors
    ///
    /// When binding fails or no tokio runtime is running.
    pub fn start_new() -> Result<(BareTikvServer, u16), Error> {
        let s = BareTikvServer::new();
        let port = s.start("")?;
        Ok((s, port))
    }

    /// Starts serving on `addr` (`""` = `127.0.0.1:0`) and returns the bound port. Starting a
    /// running server stops it first. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When binding fails or no tokio runtime is running.
    pub fn start(&self, addr: &str) -> Result<u16, Error> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::from(ErrorDetail::Internal(format!("no runtime: {e}"))))?;
        let addr = if addr.is_empty() { "127.0.0.1:0" } else { addr };
        self.stop();
        let (l, local) = bind(&handle, addr)
            .map_err(|e| Error::from(ErrorDetail::Internal(format!("bind {addr}: {e}"))))?;
        let port = local
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(0);
        let shared = self.shared.clone();
        let running = spawn_server(
            &handle,
            move |_, stopped| {
                tonic::transport::Server::builder()
                    .add_service(TikvServer::new(BareFace { shared, stopped }))
            },
            l,
        );
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.running = Some(running);
        st.addr = local;
        Ok(port)
    }

    /// Stops serving: the listener closes at once and open streams end with `Unavailable`.
    pub fn stop(&self) {
        let r = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .take();
        if let Some(r) = r {
            r.stop();
        }
    }

    /// Whether the server is serving.
    pub fn is_running(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .is_some()
    }

    /// The `host:port` the server was last started on (empty before the first start).
    pub fn addr(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .addr
            .clone()
    }

    /// Installs (or with `None` removes) the metadata checker run before every call.
    pub fn set_meta_checker(&self, f: Option<MetaChecker>) {
        *self.shared.meta.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// Installs (or with `None` removes) the `BatchCommands` override.
    pub fn set_on_batch_commands(&self, f: Option<OnBatchCommands>) {
        *self
            .shared
            .on_batch
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = f;
    }
}

impl Drop for BareTikvServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone)]
struct BareFace {
    shared: Arc<BareShared>,
    stopped: watch::Receiver<bool>,
}

impl BareFace {
    fn check_meta(&self, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        check_meta(&self.shared.meta, md)
    }
}

/// The bare server's answer to one batch.
fn default_batch_response(
    req: &tikvpb::BatchCommandsRequest,
    seq: u64,
) -> tikvpb::BatchCommandsResponse {
    tikvpb::BatchCommandsResponse {
        responses: req
            .request_ids
            .iter()
            .map(|_| tikvpb::batch_commands_response::Response {
                cmd: Some(tikvpb::batch_commands_response::response::Cmd::Empty(
                    tikvpb::BatchCommandsEmptyResponse::default(),
                )),
            })
            .collect(),
        request_ids: req.request_ids.clone(),
        transport_layer_load: 0,
        health_feedback: Some(kvrpcpb::HealthFeedback {
            store_id: 1,
            feedback_seq_no: seq,
            slow_score: 1,
        }),
        ..Default::default()
    }
}

macro_rules! bare_impl {
    (
        unary { $($m:ident: $req:ty => $v:ident => $resp:ty;)* }
        unimpl { $($um:ident: $ureq:ty => $uresp:ty;)* }
        rest { $($rest:tt)* }
    ) => {
        #[tonic::async_trait]
        impl Tikv for BareFace {
            $(
                async fn $m(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.check_meta(req.metadata())?;
                    match stringify!($m) {
                        "kv_get" | "kv_prewrite" => Ok(Response::new(<$resp>::default())),
                        other => Err(Status::unimplemented(other)),
                    }
                }
            )*
            $(
                async fn $um(&self, req: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    self.check_meta(req.metadata())?;
                    Err(Status::unimplemented(stringify!($um)))
                }
            )*
            $($rest)*
        }
    };
}

with_tikv_methods! {
    bare_impl {}
    rest {
    type CoprocessorStreamStream = BoxStream<coprocessor::Response>;
    async fn coprocessor_stream(
        &self,
        req: Request<coprocessor::Request>,
    ) -> Result<Response<Self::CoprocessorStreamStream>, Status> {
        self.check_meta(req.metadata())?;
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Ok(coprocessor::Response::default()));
        Ok(Response::new(chan_stream(rx)))
    }

    type BatchCoprocessorStream = BoxStream<coprocessor::BatchResponse>;
    async fn batch_coprocessor(
        &self,
        req: Request<coprocessor::BatchRequest>,
    ) -> Result<Response<Self::BatchCoprocessorStream>, Status> {
        self.check_meta(req.metadata())?;
        Err(Status::unimplemented("batch_coprocessor"))
    }

    type EstablishMPPConnectionStream = BoxStream<mpp::MppDataPacket>;
    async fn establish_mpp_connection(
        &self,
        req: Request<mpp::EstablishMppConnectionRequest>,
    ) -> Result<Response<Self::EstablishMPPConnectionStream>, Status> {
        self.check_meta(req.metadata())?;
        Err(Status::unimplemented("establish_mpp_connection"))
    }

    type BatchCommandsStream = BoxStream<tikvpb::BatchCommandsResponse>;
    async fn batch_commands(
        &self,
        req: Request<Streaming<tikvpb::BatchCommandsRequest>>,
    ) -> Result<Response<Self::BatchCommandsStream>, Status> {
        self.check_meta(req.metadata())?;
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let shared = self.shared.clone();
        let mut stopped = self.stopped.clone();
        tokio::spawn(async move {
            let mut seq = 1u64;
            loop {
                let next = tokio::select! {
                    m = input.message() => m,
                    _ = async { let _ = stopped.wait_for(|s| *s).await; } => {
                        let _ = tx.send(Err(Status::unavailable("server stopped"))).await;
                        return;
                    }
                };
                let batch = match next {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let hook = shared
                    .on_batch
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let msg = match hook {
                    Some(f) => f(batch),
                    None => {
                        let r = default_batch_response(&batch, seq);
                        seq += 1;
                        Ok(r)
                    }
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(chan_stream(rx)))
    }
    }
}
