//! Unary and server-streaming calls (TP-9 step 4, TP-18), from client-go's
//! `internal/client/client.go` `sendRequest`, `getCopStreamResponse`,
//! `getBatchCopStreamResponse`, `getMPPStreamResponse` and `tikvrpc.CallRPC`.
//!
//! Unary calls go out through the connection's plain [`Grpc`] client with [`CommandCodec`],
//! which encodes the request straight from the [`Command`] and decodes the answer by command
//! type, so every unary command shares one concrete call future: no generated client is
//! built, no call future is boxed and no per-call `GrpcMethod` extension is allocated. The
//! request path and message bytes are the ones the generated `Tikv` client sends. The
//! gRPC deadline header (`grpc-timeout`, the attempt's timeout, as client-go's context
//! deadline puts on the wire) is formatted once per timeout value and thread. Server
//! streams and the debug service still use the generated clients.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use prost::Message;
use tikv_layers::request::ResponseStream;
use tikv_layers::{CmdType, Command, CommandResponse, Error, ErrorDetail, RpcRequest};
use tikv_proto::{coprocessor, kvrpcpb, mpp};
use tokio::time::{Instant, Sleep};
use tonic::Streaming;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::batch::FORWARD_METADATA_KEY;
use super::monitor::{ConnState, ConnStateCell};
use super::pool::{ConnPool, debug_client};

fn grpc(status: tonic::Status) -> Error {
    ErrorDetail::Grpc(Box::new(status)).into()
}

/// A status from the call itself: tonic ends a call whose gRPC deadline expired with
/// `Cancelled: Timeout expired`, which is this attempt's timeout (TE-3), not a remote
/// cancellation (TE-4).
fn call_status(status: tonic::Status, addr: &str) -> Error {
    if status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired") {
        return timed_out(addr);
    }
    grpc(status)
}

fn timed_out(addr: &str) -> Error {
    ErrorDetail::AttemptTimeout {
        addr: addr.to_owned(),
    }
    .into()
}

/// `at + d`, or a far-future instant when that overflows (a caller may ask for
/// `Duration::MAX`).
pub(crate) fn instant_after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(30 * 365 * 24 * 3600))
}

/// The gRPC metadata key of the call deadline.
const GRPC_TIMEOUT_KEY: &str = "grpc-timeout";

/// `d` in the `grpc-timeout` format: the most precise unit whose value has at most 8
/// digits (gRPC over HTTP/2; the format tonic's `Request::set_timeout` writes), saturating
/// at `99999999H` instead of failing for absurd durations.
pub(crate) fn grpc_timeout_value(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(d.as_secs());
    let candidates = [
        (d.as_nanos(), 'n'),
        (d.as_micros(), 'u'),
        (d.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ];
    for (v, unit) in candidates {
        if v <= MAX {
            return format!("{v}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Entries of the per-thread deadline header cache; callers use a handful of timeouts
/// (one per command class), so a few entries hit nearly always.
const TIMEOUT_CACHE: usize = 4;

thread_local! {
    /// Recently used `grpc-timeout` values of this thread, and the slot to replace next.
    /// A cached value is cloned by reference count, so a hit allocates nothing.
    static TIMEOUT_HEADERS: RefCell<([Option<(Duration, MetadataValue<Ascii>)>; TIMEOUT_CACHE], usize)> =
        const { RefCell::new(([const { None }; TIMEOUT_CACHE], 0)) };
}

/// The `grpc-timeout` metadata value for `timeout`, from the thread's cache when possible.
fn timeout_header(timeout: Duration) -> Option<MetadataValue<Ascii>> {
    let make = || MetadataValue::try_from(grpc_timeout_value(timeout)).ok();
    TIMEOUT_HEADERS.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return make();
        };
        let (entries, next) = &mut *cache;
        if let Some((_, v)) = entries.iter().flatten().find(|(d, _)| *d == timeout) {
            return Some(v.clone());
        }
        let v = make()?;
        let slot = *next % TIMEOUT_CACHE;
        entries[slot] = Some((timeout, v.clone()));
        *next = slot + 1;
        Some(v)
    })
}

/// Wraps `msg` with the forwarding metadata and the gRPC deadline (the attempt's whole
/// timeout, like tonic's `Request::set_timeout`).
fn request<T>(
    msg: T,
    forwarded_host: Option<&str>,
    timeout: Duration,
) -> Result<tonic::Request<T>, Error> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = timeout_header(timeout) {
        req.metadata_mut().insert(GRPC_TIMEOUT_KEY, v);
    }
    if let Some(host) = forwarded_host.filter(|h| !h.is_empty()) {
        let v = MetadataValue::try_from(host).map_err(|e| {
            Error::new(ErrorDetail::InvalidArgument(format!(
                "forwarded host {host:?} is not valid metadata"
            )))
            .with_source(e)
        })?;
        req.metadata_mut().insert(FORWARD_METADATA_KEY, v);
    }
    Ok(req)
}

/// Declares the unary commands of the `Tikv` service: the gRPC path of each (as the
/// generated client sends it), the reply type [`Reply`] and the codec's per-command encode
/// and decode.
macro_rules! unary_commands {
    ($($variant:ident => $path:literal, $resp:ty;)*) => {
        /// The gRPC path of `cmd` when it is a unary `Tikv` call.
        pub(crate) fn unary_path(cmd: &Command) -> Option<&'static str> {
            match cmd {
                $(Command::$variant(_) => Some($path),)*
                #[allow(unreachable_patterns)]
                _ => None,
            }
        }

        /// A decoded unary answer (the unary half of [`CommandResponse`], which also holds
        /// response streams and so cannot be a tonic message itself).
        #[allow(clippy::large_enum_variant)]
        pub(crate) enum Reply {
            $($variant($resp),)*
        }

        impl From<Reply> for CommandResponse {
            fn from(r: Reply) -> CommandResponse {
                match r {
                    $(Reply::$variant(m) => CommandResponse::$variant(m),)*
                }
            }
        }

        /// Encodes the inner message of `cmd` (what the generated client's prost codec
        /// writes).
        fn encode_command(cmd: &Command, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            match cmd {
                $(Command::$variant(m) => m
                    .encode(buf)
                    .map_err(|e| tonic::Status::internal(e.to_string())),)*
                #[allow(unreachable_patterns)]
                other => Err(tonic::Status::internal(format!(
                    "command {} has no unary form",
                    other.cmd_type()
                ))),
            }
        }

        /// Decodes the answer to a `cmd` call.
        fn decode_reply(cmd: CmdType, buf: &mut DecodeBuf<'_>) -> Result<Reply, tonic::Status> {
            // A malformed message is `Internal`, as tonic's prost codec maps it.
            let bad = |e: prost::DecodeError| tonic::Status::internal(e.to_string());
            match cmd {
                $(CmdType::$variant => <$resp>::decode(buf).map(Reply::$variant).map_err(bad),)*
                #[allow(unreachable_patterns)]
                other => Err(tonic::Status::internal(format!(
                    "command {other} has no unary form"
                ))),
            }
        }
    };
}

unary_commands! {
    Get => "/tikvpb.Tikv/KvGet", kvrpcpb::GetResponse;
    Scan => "/tikvpb.Tikv/KvScan", kvrpcpb::ScanResponse;
    Prewrite => "/tikvpb.Tikv/KvPrewrite", kvrpcpb::PrewriteResponse;
    Commit => "/tikvpb.Tikv/KvCommit", kvrpcpb::CommitResponse;
    Cleanup => "/tikvpb.Tikv/KvCleanup", kvrpcpb::CleanupResponse;
    BatchGet => "/tikvpb.Tikv/KvBatchGet", kvrpcpb::BatchGetResponse;
    BatchRollback => "/tikvpb.Tikv/KvBatchRollback", kvrpcpb::BatchRollbackResponse;
    ScanLock => "/tikvpb.Tikv/KvScanLock", kvrpcpb::ScanLockResponse;
    ResolveLock => "/tikvpb.Tikv/KvResolveLock", kvrpcpb::ResolveLockResponse;
    DeleteRange => "/tikvpb.Tikv/KvDeleteRange", kvrpcpb::DeleteRangeResponse;
    PessimisticLock => "/tikvpb.Tikv/KvPessimisticLock", kvrpcpb::PessimisticLockResponse;
    PessimisticRollback => "/tikvpb.Tikv/KVPessimisticRollback", kvrpcpb::PessimisticRollbackResponse;
    TxnHeartBeat => "/tikvpb.Tikv/KvTxnHeartBeat", kvrpcpb::TxnHeartBeatResponse;
    CheckTxnStatus => "/tikvpb.Tikv/KvCheckTxnStatus", kvrpcpb::CheckTxnStatusResponse;
    CheckSecondaryLocks => "/tikvpb.Tikv/KvCheckSecondaryLocks", kvrpcpb::CheckSecondaryLocksResponse;
    FlashbackToVersion => "/tikvpb.Tikv/KvFlashbackToVersion", kvrpcpb::FlashbackToVersionResponse;
    PrepareFlashbackToVersion => "/tikvpb.Tikv/KvPrepareFlashbackToVersion", kvrpcpb::PrepareFlashbackToVersionResponse;
    Flush => "/tikvpb.Tikv/KvFlush", kvrpcpb::FlushResponse;
    BufferBatchGet => "/tikvpb.Tikv/KvBufferBatchGet", kvrpcpb::BufferBatchGetResponse;
    RawGet => "/tikvpb.Tikv/RawGet", kvrpcpb::RawGetResponse;
    RawBatchGet => "/tikvpb.Tikv/RawBatchGet", kvrpcpb::RawBatchGetResponse;
    RawPut => "/tikvpb.Tikv/RawPut", kvrpcpb::RawPutResponse;
    RawBatchPut => "/tikvpb.Tikv/RawBatchPut", kvrpcpb::RawBatchPutResponse;
    RawDelete => "/tikvpb.Tikv/RawDelete", kvrpcpb::RawDeleteResponse;
    RawBatchDelete => "/tikvpb.Tikv/RawBatchDelete", kvrpcpb::RawBatchDeleteResponse;
    RawDeleteRange => "/tikvpb.Tikv/RawDeleteRange", kvrpcpb::RawDeleteRangeResponse;
    RawScan => "/tikvpb.Tikv/RawScan", kvrpcpb::RawScanResponse;
    RawGetKeyTTL => "/tikvpb.Tikv/RawGetKeyTTL", kvrpcpb::RawGetKeyTtlResponse;
    RawCompareAndSwap => "/tikvpb.Tikv/RawCompareAndSwap", kvrpcpb::RawCasResponse;
    RawChecksum => "/tikvpb.Tikv/RawChecksum", kvrpcpb::RawChecksumResponse;
    UnsafeDestroyRange => "/tikvpb.Tikv/UnsafeDestroyRange", kvrpcpb::UnsafeDestroyRangeResponse;
    StoreSafeTS => "/tikvpb.Tikv/GetStoreSafeTS", kvrpcpb::StoreSafeTsResponse;
    LockWaitInfo => "/tikvpb.Tikv/GetLockWaitInfo", kvrpcpb::GetLockWaitInfoResponse;
    GetHealthFeedback => "/tikvpb.Tikv/GetHealthFeedback", kvrpcpb::GetHealthFeedbackResponse;
    BroadcastTxnStatus => "/tikvpb.Tikv/BroadcastTxnStatus", kvrpcpb::BroadcastTxnStatusResponse;
    Cop => "/tikvpb.Tikv/Coprocessor", coprocessor::Response;
    MppTask => "/tikvpb.Tikv/DispatchMPPTask", mpp::DispatchTaskResponse;
    MppCancel => "/tikvpb.Tikv/CancelMPPTask", mpp::CancelTaskResponse;
    MppAlive => "/tikvpb.Tikv/IsAlive", mpp::IsAliveResponse;
    MvccGetByKey => "/tikvpb.Tikv/MvccGetByKey", kvrpcpb::MvccGetByKeyResponse;
    MvccGetByStartTs => "/tikvpb.Tikv/MvccGetByStartTs", kvrpcpb::MvccGetByStartTsResponse;
    SplitRegion => "/tikvpb.Tikv/SplitRegion", kvrpcpb::SplitRegionResponse;
    Compact => "/tikvpb.Tikv/Compact", kvrpcpb::CompactResponse;
    GetTiFlashSystemTable => "/tikvpb.Tikv/GetTiFlashSystemTable", kvrpcpb::TiFlashSystemTableResponse;
}

/// The tonic codec of unary calls: encodes a [`Command`]'s inner message, decodes the
/// answer as the [`Reply`] of its command type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommandCodec(pub(crate) CmdType);

/// The encoding half of [`CommandCodec`].
#[derive(Debug)]
pub(crate) struct CommandEncoder;

/// The decoding half of [`CommandCodec`].
#[derive(Debug)]
pub(crate) struct ReplyDecoder(CmdType);

impl Codec for CommandCodec {
    type Encode = Command;
    type Decode = Reply;
    type Encoder = CommandEncoder;
    type Decoder = ReplyDecoder;

    fn encoder(&mut self) -> CommandEncoder {
        CommandEncoder
    }

    fn decoder(&mut self) -> ReplyDecoder {
        ReplyDecoder(self.0)
    }
}

impl Encoder for CommandEncoder {
    type Item = Command;
    type Error = tonic::Status;

    fn encode(&mut self, item: Command, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        encode_command(&item, dst)
    }
}

impl Decoder for ReplyDecoder {
    type Item = Reply;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Reply>, tonic::Status> {
        decode_reply(self.0, src).map(Some)
    }
}

/// Sends `cmd` unary on `grpc` at `path` (what the generated client's method does, minus
/// the `GrpcMethod` extension nothing on our channel reads) and records the outcome in the
/// connection's `state` (TP-8).
async fn unary_call(
    mut grpc: Grpc<Channel>,
    state: &ConnStateCell,
    req: tonic::Request<Command>,
    path: &'static str,
    cmd: CmdType,
) -> Result<Reply, tonic::Status> {
    state.begin_connect();
    if let Err(e) = grpc.ready().await {
        // The channel's worker is gone: the connection cannot serve. The status is the one
        // the generated client returns.
        state.set(ConnState::TransientFailure);
        return Err(tonic::Status::unknown(format!(
            "Service was not ready: {e}"
        )));
    }
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc.unary(req, path, CommandCodec(cmd)).await {
        Ok(resp) => {
            state.set(ConnState::Ready);
            Ok(resp.into_inner())
        }
        Err(status) => {
            state.after_status(&status);
            Err(status)
        }
    }
}

/// Sends `req` (context already attached) as a unary or server-streaming call on the
/// pool's next connection, within `deadline`, and records what the call says about the
/// connection's state (TP-8).
pub(crate) async fn call(
    pool: &ConnPool,
    req: RpcRequest,
    timeout: Duration,
    deadline: Instant,
) -> Result<CommandResponse, Error> {
    let addr = pool.addr.as_str();
    let conn = pool.get();
    let state = &*conn.state;
    let host = req.target.forwarded_host;
    let host = host.as_deref();
    let cmd = req.cmd;
    if let Command::Empty(_) = cmd {
        // The keep-alive entry exists only on the batch stream; sent unary it is answered
        // here without a round trip, as client-go's `CallRPC` does for `CmdEmpty`.
        return Ok(CommandResponse::Empty(
            tikv_proto::tikvpb::BatchCommandsEmptyResponse::default(),
        ));
    }
    if let Some(path) = unary_path(&cmd) {
        let t = cmd.cmd_type();
        let req = request(cmd, host, timeout)?;
        let fut = unary_call(conn.grpc.clone(), state, req, path, t);
        return match tokio::time::timeout_at(deadline, fut).await {
            Ok(Ok(reply)) => Ok(reply.into()),
            Ok(Err(status)) => Err(call_status(status, addr)),
            Err(_) => Err(timed_out(addr)),
        };
    }
    // Records a call's outcome in the connection state and maps its status.
    let finish = |status: tonic::Status| -> Error {
        state.after_status(&status);
        call_status(status, addr)
    };
    if let Command::DebugGetRegionProperties(r) = cmd {
        let mut client = debug_client(conn.channel.clone(), pool.compression);
        let req = request(r, None, timeout)?;
        state.begin_connect();
        let fut = Box::pin(client.get_region_properties(req));
        return match tokio::time::timeout_at(deadline, fut).await {
            Ok(Ok(r)) => {
                state.set(ConnState::Ready);
                Ok(CommandResponse::DebugGetRegionProperties(r.into_inner()))
            }
            // Like every other call: tonic's own deadline expiring is this attempt's
            // timeout (TE-3), not a remote cancellation.
            Ok(Err(status)) => Err(finish(status)),
            Err(_) => Err(timed_out(addr)),
        };
    }
    let mut client = conn.tikv.clone();

    macro_rules! streaming {
        ($r:expr, $method:ident, $variant:ident) => {{
            // Boxed: the rare streaming calls keep their generated futures out of this
            // frame.
            let req = request($r, host, timeout)?;
            state.begin_connect();
            let fut = Box::pin(client.$method(req));
            let streaming = match tokio::time::timeout_at(deadline, fut).await {
                Ok(Ok(r)) => {
                    state.set(ConnState::Ready);
                    r.into_inner()
                }
                Ok(Err(status)) => return Err(finish(status)),
                Err(_) => return Err(timed_out(addr)),
            };
            Ok(CommandResponse::$variant(
                open_leased(streaming, timeout, deadline, addr).await?,
            ))
        }};
    }

    match cmd {
        Command::CopStream(r) => streaming!(r, coprocessor_stream, CopStream),
        Command::BatchCop(r) => streaming!(r, batch_coprocessor, BatchCop),
        Command::MppConn(r) => streaming!(r, establish_mpp_connection, MppConn),
        other => Err(ErrorDetail::InvalidArgument(format!(
            "command {} has no unary form",
            other.cmd_type()
        ))
        .into()),
    }
}

/// Reads the first message synchronously (so its errors reach the caller; an immediate
/// end of stream is tolerated), then hands back a stream whose every later `recv` has
/// `timeout` (the stream lease of TP-18). Dropping the stream cancels the call.
async fn open_leased<T: Send + Unpin + 'static>(
    mut streaming: Streaming<T>,
    timeout: Duration,
    deadline: Instant,
    addr: &str,
) -> Result<ResponseStream<T>, Error> {
    let first = match tokio::time::timeout_at(deadline, streaming.message()).await {
        Ok(Ok(first)) => first,
        Ok(Err(status)) => return Err(grpc(status)),
        Err(_) => return Err(timed_out(addr)),
    };
    let done = first.is_none();
    Ok(ResponseStream::new(LeasedStream {
        first,
        inner: (!done).then_some(streaming),
        timeout,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        armed: false,
        addr: addr.to_owned(),
    }))
}

/// A server stream whose every receive must complete within `timeout`.
struct LeasedStream<T> {
    first: Option<T>,
    inner: Option<Streaming<T>>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    armed: bool,
    addr: String,
}

impl<T: Unpin> Stream for LeasedStream<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.armed {
            this.sleep
                .as_mut()
                .reset(instant_after(Instant::now(), this.timeout));
            this.armed = true;
        }
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(m))) => {
                this.armed = false;
                Poll::Ready(Some(Ok(m)))
            }
            Poll::Ready(Some(Err(s))) => {
                this.inner = None;
                Poll::Ready(Some(Err(grpc(s))))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    Poll::Ready(Some(Err(timed_out(&this.addr))))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}
