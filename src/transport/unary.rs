//! Unary and server-streaming calls (TP-9 step 4, TP-18), from client-go's
//! `internal/client/client.go` `sendRequest`, `getCopStreamResponse`,
//! `getBatchCopStreamResponse`, `getMPPStreamResponse` and `tikvrpc.CallRPC`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tikv_layers::request::ResponseStream;
use tikv_layers::{Command, CommandResponse, Error, ErrorDetail, RpcRequest};
use tokio::time::{Instant, Sleep};
use tonic::Streaming;
use tonic::metadata::MetadataValue;

use super::batch::FORWARD_METADATA_KEY;
use super::pool::{ConnPool, debug_client, tikv_client};

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

/// Wraps `msg` with the forwarding metadata and the gRPC deadline.
fn request<T>(
    msg: T,
    forwarded_host: Option<&str>,
    timeout: Duration,
) -> Result<tonic::Request<T>, Error> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
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

/// Sends `req` (context already attached) as a unary or server-streaming call on the
/// pool's next channel, within `deadline`.
pub(crate) async fn call(
    pool: &ConnPool,
    req: RpcRequest,
    timeout: Duration,
    deadline: Instant,
) -> Result<CommandResponse, Error> {
    let addr = pool.addr.clone();
    let channel = pool.get();
    let host = req.target.forwarded_host.clone();
    let host = host.as_deref();
    if let Command::DebugGetRegionProperties(r) = req.cmd {
        let mut client = debug_client(channel, pool.compression);
        let fut = client.get_region_properties(request(r, None, timeout)?);
        return match tokio::time::timeout_at(deadline, fut).await {
            Ok(r) => Ok(CommandResponse::DebugGetRegionProperties(
                r.map_err(grpc)?.into_inner(),
            )),
            Err(_) => Err(timed_out(&addr)),
        };
    }
    let mut client = tikv_client(channel, pool.compression);

    macro_rules! unary {
        ($r:expr, $method:ident, $variant:ident) => {{
            // Boxed: one arm's future per call instead of every arm's in this frame.
            let fut = Box::pin(client.$method(request($r, host, timeout)?));
            match tokio::time::timeout_at(deadline, fut).await {
                Ok(r) => Ok(CommandResponse::$variant(
                    r.map_err(|s| call_status(s, &addr))?.into_inner(),
                )),
                Err(_) => Err(timed_out(&addr)),
            }
        }};
    }
    macro_rules! streaming {
        ($r:expr, $method:ident, $variant:ident) => {{
            let fut = Box::pin(client.$method(request($r, host, timeout)?));
            let streaming = match tokio::time::timeout_at(deadline, fut).await {
                Ok(r) => r.map_err(|s| call_status(s, &addr))?.into_inner(),
                Err(_) => return Err(timed_out(&addr)),
            };
            Ok(CommandResponse::$variant(
                open_leased(streaming, timeout, deadline, &addr).await?,
            ))
        }};
    }

    match req.cmd {
        Command::Get(r) => unary!(r, kv_get, Get),
        Command::Scan(r) => unary!(r, kv_scan, Scan),
        Command::Prewrite(r) => unary!(r, kv_prewrite, Prewrite),
        Command::Commit(r) => unary!(r, kv_commit, Commit),
        Command::Cleanup(r) => unary!(r, kv_cleanup, Cleanup),
        Command::BatchGet(r) => unary!(r, kv_batch_get, BatchGet),
        Command::BatchRollback(r) => unary!(r, kv_batch_rollback, BatchRollback),
        Command::ScanLock(r) => unary!(r, kv_scan_lock, ScanLock),
        Command::ResolveLock(r) => unary!(r, kv_resolve_lock, ResolveLock),
        Command::DeleteRange(r) => unary!(r, kv_delete_range, DeleteRange),
        Command::PessimisticLock(r) => unary!(r, kv_pessimistic_lock, PessimisticLock),
        Command::PessimisticRollback(r) => {
            unary!(r, kv_pessimistic_rollback, PessimisticRollback)
        }
        Command::TxnHeartBeat(r) => unary!(r, kv_txn_heart_beat, TxnHeartBeat),
        Command::CheckTxnStatus(r) => unary!(r, kv_check_txn_status, CheckTxnStatus),
        Command::CheckSecondaryLocks(r) => {
            unary!(r, kv_check_secondary_locks, CheckSecondaryLocks)
        }
        Command::FlashbackToVersion(r) => {
            unary!(r, kv_flashback_to_version, FlashbackToVersion)
        }
        Command::PrepareFlashbackToVersion(r) => {
            unary!(
                r,
                kv_prepare_flashback_to_version,
                PrepareFlashbackToVersion
            )
        }
        Command::Flush(r) => unary!(r, kv_flush, Flush),
        Command::BufferBatchGet(r) => unary!(r, kv_buffer_batch_get, BufferBatchGet),
        Command::RawGet(r) => unary!(r, raw_get, RawGet),
        Command::RawBatchGet(r) => unary!(r, raw_batch_get, RawBatchGet),
        Command::RawPut(r) => unary!(r, raw_put, RawPut),
        Command::RawBatchPut(r) => unary!(r, raw_batch_put, RawBatchPut),
        Command::RawDelete(r) => unary!(r, raw_delete, RawDelete),
        Command::RawBatchDelete(r) => unary!(r, raw_batch_delete, RawBatchDelete),
        Command::RawDeleteRange(r) => unary!(r, raw_delete_range, RawDeleteRange),
        Command::RawScan(r) => unary!(r, raw_scan, RawScan),
        Command::RawGetKeyTTL(r) => unary!(r, raw_get_key_ttl, RawGetKeyTTL),
        Command::RawCompareAndSwap(r) => unary!(r, raw_compare_and_swap, RawCompareAndSwap),
        Command::RawChecksum(r) => unary!(r, raw_checksum, RawChecksum),
        Command::UnsafeDestroyRange(r) => unary!(r, unsafe_destroy_range, UnsafeDestroyRange),
        Command::StoreSafeTS(r) => unary!(r, get_store_safe_ts, StoreSafeTS),
        Command::LockWaitInfo(r) => unary!(r, get_lock_wait_info, LockWaitInfo),
        Command::GetHealthFeedback(r) => unary!(r, get_health_feedback, GetHealthFeedback),
        Command::BroadcastTxnStatus(r) => unary!(r, broadcast_txn_status, BroadcastTxnStatus),
        Command::Cop(r) => unary!(r, coprocessor, Cop),
        Command::MppTask(r) => unary!(r, dispatch_mpp_task, MppTask),
        Command::MppCancel(r) => unary!(r, cancel_mpp_task, MppCancel),
        Command::MppAlive(r) => unary!(r, is_alive, MppAlive),
        Command::MvccGetByKey(r) => unary!(r, mvcc_get_by_key, MvccGetByKey),
        Command::MvccGetByStartTs(r) => unary!(r, mvcc_get_by_start_ts, MvccGetByStartTs),
        Command::SplitRegion(r) => unary!(r, split_region, SplitRegion),
        Command::Compact(r) => unary!(r, compact, Compact),
        Command::GetTiFlashSystemTable(r) => {
            unary!(r, get_ti_flash_system_table, GetTiFlashSystemTable)
        }
        Command::CopStream(r) => streaming!(r, coprocessor_stream, CopStream),
        Command::BatchCop(r) => streaming!(r, batch_coprocessor, BatchCop),
        Command::MppConn(r) => streaming!(r, establish_mpp_connection, MppConn),
        // The keep-alive entry exists only on the batch stream; sent unary it is answered
        // here without a round trip, as client-go's `CallRPC` does for `CmdEmpty`.
        Command::Empty(_) => Ok(CommandResponse::Empty(
            tikv_proto::tikvpb::BatchCommandsEmptyResponse::default(),
        )),
        #[allow(unreachable_patterns)]
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
            this.sleep.as_mut().reset(Instant::now() + this.timeout);
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
