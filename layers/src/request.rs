//! The request envelope that flows through the pipeline: [`RpcRequest`] in,
//! [`RpcResponse`] out.
//!
//! This is the Rust form of client-go's `tikvrpc` package (`tikvrpc/tikvrpc.go`):
//!
//! - [`Command`] is the typed kvproto request, one variant per command current TiKV
//!   serves (client-go's `Request.Type` + `Request.Req`); [`CommandResponse`] is the
//!   matching typed response. [`CmdType`] is the plain tag, for metrics and logs.
//! - [`RpcRequest`] pairs the command with the per-request state the layers read and fill:
//!   the `kvrpcpb::Context` (region, epoch, peer, flags), the routing [`Target`], the
//!   caller's [`RequestOptions`] (replica read, stale read, request source, ...), the
//!   request's [`SharedBackoffer`] budget, and an extension map for user layers.
//! - [`RpcResponse`] is the typed response plus [`AttemptDetails`] (which store answered,
//!   how many attempts, how much backoff).
//!
//! Region errors and key errors are data inside the response until a layer decides what
//! they mean (see [`crate::classify`]); transport failures are `Err`.
//!
//! Commands client-go still lists but current TiKV no longer serves are not here: the
//! per-region `KvGC` and the Green-GC lock-observer commands (`RegisterLockObserver`,
//! `CheckLockObserver`, `RemoveLockObserver`, `PhysicalScanLock`) answer `Unimplemented`.

use std::fmt;
use std::pin::Pin;

use futures_core::Stream;
use prost::Message;
use tikv_proto::tikvpb::{batch_commands_request, batch_commands_response};
use tikv_proto::{coprocessor, debugpb, errorpb, kvrpcpb, metapb, mpp, tikvpb};

use crate::backoff::SharedBackoffer;
use crate::error::{Error, ErrorDetail};

/// A stream of responses from a server-streaming command (coprocessor stream, batch
/// coprocessor, MPP connection).
pub struct ResponseStream<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send + 'static>>,
}

impl<T> ResponseStream<T> {
    /// Wraps any stream of results.
    pub fn new(s: impl Stream<Item = Result<T, Error>> + Send + 'static) -> Self {
        ResponseStream { inner: Box::pin(s) }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> Pin<Box<dyn Stream<Item = Result<T, Error>> + Send + 'static>> {
        self.inner
    }
}

impl<T> Stream for ResponseStream<T> {
    type Item = Result<T, Error>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseStream")
    }
}

/// Declares [`CmdType`], [`Command`] and [`CommandResponse`] from one table, so the three
/// can never disagree. Each row: variant, client-go's `CmdType` number, client-go's name,
/// request type, response type (streams wrap the item type in [`ResponseStream`]).
macro_rules! commands {
    ($(
        $(#[$doc:meta])*
        $name:ident = $val:literal, $label:literal, $req:ty => $resp:ty;
    )*) => {
        /// The kind of a command, without its payload (client-go's `tikvrpc.CmdType`).
        ///
        /// The numeric value is client-go's internal number; it never reaches the wire and
        /// is kept only so metrics and logs read the same.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u16)]
        pub enum CmdType {
            $( $(#[$doc])* $name = $val, )*
        }

        impl CmdType {
            /// Every command type, in client-go's numeric order.
            pub const ALL: &'static [CmdType] = &[$(CmdType::$name),*];

            /// The name client-go prints for this command (`CmdType.String()`), used as the
            /// `type` label of metrics.
            pub fn name(self) -> &'static str {
                match self { $(CmdType::$name => $label,)* }
            }

            /// client-go's internal number for this command.
            pub fn value(self) -> u16 {
                self as u16
            }

            /// A command of this type carrying an empty (default) message: a placeholder for
            /// probes and table-driven tests that must cover every command.
            pub fn empty_command(self) -> Command {
                match self { $(CmdType::$name => Command::$name(<$req>::default()),)* }
            }
        }

        impl fmt::Display for CmdType {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        /// A typed TiKV request: one variant per command (client-go's `Request.Req`).
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        #[allow(clippy::large_enum_variant)]
        pub enum Command {
            $( $(#[$doc])* $name($req), )*
        }

        impl Command {
            /// The command's type tag.
            pub fn cmd_type(&self) -> CmdType {
                match self { $(Command::$name(_) => CmdType::$name,)* }
            }

            /// The encoded size of the inner message in bytes (client-go's `GetSize`, which
            /// the batch client and resource accounting use).
            pub fn encoded_len(&self) -> usize {
                match self { $(Command::$name(r) => r.encoded_len(),)* }
            }
        }


        /// A typed TiKV response, matching [`Command`] variant for variant.
        #[derive(Debug)]
        #[non_exhaustive]
        #[allow(clippy::large_enum_variant)]
        pub enum CommandResponse {
            $( $(#[$doc])* $name($resp), )*
        }

        impl CommandResponse {
            /// The command type this response answers.
            pub fn cmd_type(&self) -> CmdType {
                match self { $(CommandResponse::$name(_) => CmdType::$name,)* }
            }
        }
    };
}

commands! {
    /// Transactional point get (`KvGet`).
    Get = 1, "Get", kvrpcpb::GetRequest => kvrpcpb::GetResponse;
    /// Transactional range scan (`KvScan`).
    Scan = 2, "Scan", kvrpcpb::ScanRequest => kvrpcpb::ScanResponse;
    /// First phase of 2PC (`KvPrewrite`).
    Prewrite = 3, "Prewrite", kvrpcpb::PrewriteRequest => kvrpcpb::PrewriteResponse;
    /// Second phase of 2PC (`KvCommit`).
    Commit = 4, "Commit", kvrpcpb::CommitRequest => kvrpcpb::CommitResponse;
    /// Roll back one key's lock if the transaction is not committed (`KvCleanup`).
    Cleanup = 5, "Cleanup", kvrpcpb::CleanupRequest => kvrpcpb::CleanupResponse;
    /// Transactional multi-key get (`KvBatchGet`).
    BatchGet = 6, "BatchGet", kvrpcpb::BatchGetRequest => kvrpcpb::BatchGetResponse;
    /// Roll back a transaction's locks on some keys (`KvBatchRollback`).
    BatchRollback = 7, "BatchRollback", kvrpcpb::BatchRollbackRequest => kvrpcpb::BatchRollbackResponse;
    /// List locks in a range (`KvScanLock`).
    ScanLock = 8, "ScanLock", kvrpcpb::ScanLockRequest => kvrpcpb::ScanLockResponse;
    /// Commit or roll back a transaction's locks in a region (`KvResolveLock`).
    ResolveLock = 9, "ResolveLock", kvrpcpb::ResolveLockRequest => kvrpcpb::ResolveLockResponse;
    /// Delete a range of keys without MVCC (`KvDeleteRange`).
    DeleteRange = 11, "DeleteRange", kvrpcpb::DeleteRangeRequest => kvrpcpb::DeleteRangeResponse;
    /// Acquire pessimistic locks (`KvPessimisticLock`).
    PessimisticLock = 12, "PessimisticLock", kvrpcpb::PessimisticLockRequest => kvrpcpb::PessimisticLockResponse;
    /// Release pessimistic locks (`KVPessimisticRollback`).
    PessimisticRollback = 13, "PessimisticRollback", kvrpcpb::PessimisticRollbackRequest => kvrpcpb::PessimisticRollbackResponse;
    /// Extend a primary lock's TTL (`KvTxnHeartBeat`).
    TxnHeartBeat = 14, "TxnHeartBeat", kvrpcpb::TxnHeartBeatRequest => kvrpcpb::TxnHeartBeatResponse;
    /// Check (and maybe resolve) a transaction's status at its primary (`KvCheckTxnStatus`).
    CheckTxnStatus = 15, "CheckTxnStatus", kvrpcpb::CheckTxnStatusRequest => kvrpcpb::CheckTxnStatusResponse;
    /// Check an async-commit transaction's secondary locks (`KvCheckSecondaryLocks`).
    CheckSecondaryLocks = 16, "CheckSecondaryLocks", kvrpcpb::CheckSecondaryLocksRequest => kvrpcpb::CheckSecondaryLocksResponse;
    /// Flash a region back to an old version (`KvFlashbackToVersion`).
    FlashbackToVersion = 17, "FlashbackToVersion", kvrpcpb::FlashbackToVersionRequest => kvrpcpb::FlashbackToVersionResponse;
    /// Prepare a region for flashback (`KvPrepareFlashbackToVersion`).
    PrepareFlashbackToVersion = 18, "PrepareFlashbackToVersion", kvrpcpb::PrepareFlashbackToVersionRequest => kvrpcpb::PrepareFlashbackToVersionResponse;
    /// Pipelined DML flush of buffered mutations (`KvFlush`).
    Flush = 19, "Flush", kvrpcpb::FlushRequest => kvrpcpb::FlushResponse;
    /// Read keys from a pipelined transaction's flushed buffer (`KvBufferBatchGet`).
    BufferBatchGet = 20, "BufferBatchGet", kvrpcpb::BufferBatchGetRequest => kvrpcpb::BufferBatchGetResponse;
    /// Raw point get (`RawGet`).
    RawGet = 276, "RawGet", kvrpcpb::RawGetRequest => kvrpcpb::RawGetResponse;
    /// Raw multi-key get (`RawBatchGet`).
    RawBatchGet = 277, "RawBatchGet", kvrpcpb::RawBatchGetRequest => kvrpcpb::RawBatchGetResponse;
    /// Raw put (`RawPut`).
    RawPut = 278, "RawPut", kvrpcpb::RawPutRequest => kvrpcpb::RawPutResponse;
    /// Raw multi-key put (`RawBatchPut`).
    RawBatchPut = 279, "RawBatchPut", kvrpcpb::RawBatchPutRequest => kvrpcpb::RawBatchPutResponse;
    /// Raw delete (`RawDelete`).
    RawDelete = 280, "RawDelete", kvrpcpb::RawDeleteRequest => kvrpcpb::RawDeleteResponse;
    /// Raw multi-key delete (`RawBatchDelete`).
    RawBatchDelete = 281, "RawBatchDelete", kvrpcpb::RawBatchDeleteRequest => kvrpcpb::RawBatchDeleteResponse;
    /// Raw range delete (`RawDeleteRange`).
    RawDeleteRange = 282, "RawDeleteRange", kvrpcpb::RawDeleteRangeRequest => kvrpcpb::RawDeleteRangeResponse;
    /// Raw range scan (`RawScan`).
    RawScan = 283, "RawScan", kvrpcpb::RawScanRequest => kvrpcpb::RawScanResponse;
    /// Raw key TTL lookup (`RawGetKeyTTL`).
    RawGetKeyTTL = 284, "RawGetKeyTTL", kvrpcpb::RawGetKeyTtlRequest => kvrpcpb::RawGetKeyTtlResponse;
    /// Raw compare-and-swap (`RawCompareAndSwap`).
    RawCompareAndSwap = 285, "RawCompareAndSwap", kvrpcpb::RawCasRequest => kvrpcpb::RawCasResponse;
    /// Raw range checksum (`RawChecksum`).
    RawChecksum = 286, "RawChecksum", kvrpcpb::RawChecksumRequest => kvrpcpb::RawChecksumResponse;
    /// Physically destroy a range, used by GC (`UnsafeDestroyRange`).
    UnsafeDestroyRange = 287, "UnsafeDestroyRange", kvrpcpb::UnsafeDestroyRangeRequest => kvrpcpb::UnsafeDestroyRangeResponse;
    /// A store's safe ts for a key range (`GetStoreSafeTS`).
    StoreSafeTS = 292, "StoreSafeTS", kvrpcpb::StoreSafeTsRequest => kvrpcpb::StoreSafeTsResponse;
    /// Pessimistic lock waiters on a store (`GetLockWaitInfo`).
    LockWaitInfo = 293, "LockWaitInfo", kvrpcpb::GetLockWaitInfoRequest => kvrpcpb::GetLockWaitInfoResponse;
    /// A store's health feedback (`GetHealthFeedback`).
    GetHealthFeedback = 294, "GetHealthFeedback", kvrpcpb::GetHealthFeedbackRequest => kvrpcpb::GetHealthFeedbackResponse;
    /// Broadcast committed transactions' status (`BroadcastTxnStatus`).
    BroadcastTxnStatus = 295, "BroadcastTxnStatus", kvrpcpb::BroadcastTxnStatusRequest => kvrpcpb::BroadcastTxnStatusResponse;
    /// Unary coprocessor request (`Coprocessor`).
    Cop = 552, "Cop", coprocessor::Request => coprocessor::Response;
    /// Streaming coprocessor request (`CoprocessorStream`).
    CopStream = 553, "CopStream", coprocessor::Request => ResponseStream<coprocessor::Response>;
    /// Batch coprocessor request to TiFlash (`BatchCoprocessor`).
    BatchCop = 554, "BatchCop", coprocessor::BatchRequest => ResponseStream<coprocessor::BatchResponse>;
    /// Dispatch an MPP task (`DispatchMPPTask`).
    MppTask = 555, "DispatchMPPTask", mpp::DispatchTaskRequest => mpp::DispatchTaskResponse;
    /// Open an MPP data connection (`EstablishMPPConnection`).
    MppConn = 556, "EstablishMPPConnection", mpp::EstablishMppConnectionRequest => ResponseStream<mpp::MppDataPacket>;
    /// Cancel an MPP task (`CancelMPPTask`).
    MppCancel = 557, "CancelMPPTask", mpp::CancelTaskRequest => mpp::CancelTaskResponse;
    /// MPP liveness check (`IsAlive`).
    MppAlive = 558, "MPPAlive", mpp::IsAliveRequest => mpp::IsAliveResponse;
    /// MVCC history of one key (`MvccGetByKey`).
    MvccGetByKey = 1071, "MvccGetByKey", kvrpcpb::MvccGetByKeyRequest => kvrpcpb::MvccGetByKeyResponse;
    /// MVCC history of one transaction (`MvccGetByStartTs`).
    MvccGetByStartTs = 1072, "MvccGetByStartTS", kvrpcpb::MvccGetByStartTsRequest => kvrpcpb::MvccGetByStartTsResponse;
    /// Split a region at keys (`SplitRegion`).
    SplitRegion = 1073, "SplitRegion", kvrpcpb::SplitRegionRequest => kvrpcpb::SplitRegionResponse;
    /// Region properties from the debug service (`debugpb.Debug/GetRegionProperties`).
    DebugGetRegionProperties = 2098, "DebugGetRegionProperties", debugpb::GetRegionPropertiesRequest => debugpb::GetRegionPropertiesResponse;
    /// Compact a TiFlash table (`Compact`).
    Compact = 2099, "Compact", kvrpcpb::CompactRequest => kvrpcpb::CompactResponse;
    /// Query a TiFlash system table (`GetTiFlashSystemTable`).
    GetTiFlashSystemTable = 2100, "GetTiFlashSystemTable", kvrpcpb::TiFlashSystemTableRequest => kvrpcpb::TiFlashSystemTableResponse;
    /// Keep-alive entry of the batch stream; never sent unary.
    Empty = 3125, "Empty", tikvpb::BatchCommandsEmptyRequest => tikvpb::BatchCommandsEmptyResponse;
}

/// Runs `$body` with `$r` bound to the inner message of every variant listed, or
/// evaluates `$other` for the rest. Keeps per-field accessors to one line per command.
macro_rules! for_variants {
    ($e:expr, $r:ident => $body:expr, [$($v:ident),* $(,)?], _ => $other:expr) => {
        match $e {
            $( Command::$v($r) => $body, )*
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    };
}

macro_rules! for_resp_variants {
    ($e:expr, $r:ident => $body:expr, [$($v:ident),* $(,)?], _ => $other:expr) => {
        match $e {
            $( CommandResponse::$v($r) => $body, )*
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    };
}

/// Commands whose request carries a `kvrpcpb::Context` at field `context`.
macro_rules! with_context {
    ($e:expr, $r:ident => $body:expr, _ => $other:expr) => {
        for_variants!($e, $r => $body, [
            Get, Scan, Prewrite, Commit, Cleanup, BatchGet, BatchRollback, ScanLock, ResolveLock,
            DeleteRange, PessimisticLock, PessimisticRollback, TxnHeartBeat, CheckTxnStatus,
            CheckSecondaryLocks, FlashbackToVersion, PrepareFlashbackToVersion, Flush,
            BufferBatchGet, RawGet, RawBatchGet, RawPut, RawBatchPut, RawDelete, RawBatchDelete,
            RawDeleteRange, RawScan, RawGetKeyTTL, RawCompareAndSwap, RawChecksum,
            UnsafeDestroyRange, LockWaitInfo, GetHealthFeedback, BroadcastTxnStatus, Cop,
            CopStream, BatchCop, MvccGetByKey, MvccGetByStartTs, SplitRegion,
        ], _ => $other)
    };
}

/// Responses that carry an `errorpb::Error` at field `region_error`.
macro_rules! with_region_error {
    ($e:expr, $r:ident => $body:expr, _ => $other:expr) => {
        for_resp_variants!($e, $r => $body, [
            Get, Scan, Prewrite, Commit, Cleanup, BatchGet, BatchRollback, ScanLock, ResolveLock,
            DeleteRange, PessimisticLock, PessimisticRollback, TxnHeartBeat, CheckTxnStatus,
            CheckSecondaryLocks, FlashbackToVersion, PrepareFlashbackToVersion, Flush,
            BufferBatchGet, RawGet, RawBatchGet, RawPut, RawBatchPut, RawDelete, RawBatchDelete,
            RawDeleteRange, RawScan, RawGetKeyTTL, RawCompareAndSwap, RawChecksum,
            UnsafeDestroyRange, LockWaitInfo, GetHealthFeedback, Cop, MvccGetByKey,
            MvccGetByStartTs, SplitRegion,
        ], _ => $other)
    };
}

// ===== impl Command =====

impl Command {
    /// The request's `kvrpcpb::Context`, for commands that carry one.
    pub fn context(&self) -> Option<&kvrpcpb::Context> {
        with_context!(self, r => r.context.as_ref(), _ => None)
    }

    /// Whether this command carries a `kvrpcpb::Context` (and so can be routed to a
    /// region by the sender; client-go's `SetContextNoAttach` validity check).
    pub fn has_context(&self) -> bool {
        with_context!(self, _r => true, _ => false)
    }

    /// Points the inner message's `context` at a copy of `ctx`. Returns `false` for
    /// commands that carry no context (MPP, debug, TiFlash admin, `Empty`), like client-go's
    /// `AttachContext`.
    pub fn set_context(&mut self, ctx: &kvrpcpb::Context) -> bool {
        with_context!(self, r => { r.context = Some(ctx.clone()); true }, _ => false)
    }

    /// Whether the command can travel on the `BatchCommands` stream.
    pub fn is_batchable(&self) -> bool {
        self.cmd_type().is_batchable()
    }

    /// A response of the matching type that carries `err` as its region error (client-go's
    /// `GenRegionErrorResp`). The send loop uses it to hand back a pseudo region error when
    /// no replica can be chosen.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidResponse`] for commands whose response has no region error
    /// field (MPP, debug, TiFlash admin, broadcast, batch coprocessor, `Empty`, streams).
    pub fn region_error_response(&self, err: errorpb::Error) -> Result<CommandResponse, Error> {
        let err = Some(err);
        macro_rules! gen_resp {
            ($($v:ident => $t:ty),* $(,)?) => {
                match self {
                    $(Command::$v(_) => Ok(CommandResponse::$v(<$t>::default()).with_region_error(err)),)*
                    other => Err(ErrorDetail::InvalidResponse {
                        expected: "a command whose response carries a region error",
                        got: other.cmd_type().name().to_owned(),
                    }
                    .into()),
                }
            };
        }
        gen_resp!(
            Get => kvrpcpb::GetResponse,
            Scan => kvrpcpb::ScanResponse,
            Prewrite => kvrpcpb::PrewriteResponse,
            Commit => kvrpcpb::CommitResponse,
            Cleanup => kvrpcpb::CleanupResponse,
            BatchGet => kvrpcpb::BatchGetResponse,
            BatchRollback => kvrpcpb::BatchRollbackResponse,
            ScanLock => kvrpcpb::ScanLockResponse,
            ResolveLock => kvrpcpb::ResolveLockResponse,
            DeleteRange => kvrpcpb::DeleteRangeResponse,
            PessimisticLock => kvrpcpb::PessimisticLockResponse,
            PessimisticRollback => kvrpcpb::PessimisticRollbackResponse,
            TxnHeartBeat => kvrpcpb::TxnHeartBeatResponse,
            CheckTxnStatus => kvrpcpb::CheckTxnStatusResponse,
            CheckSecondaryLocks => kvrpcpb::CheckSecondaryLocksResponse,
            FlashbackToVersion => kvrpcpb::FlashbackToVersionResponse,
            PrepareFlashbackToVersion => kvrpcpb::PrepareFlashbackToVersionResponse,
            Flush => kvrpcpb::FlushResponse,
            BufferBatchGet => kvrpcpb::BufferBatchGetResponse,
            RawGet => kvrpcpb::RawGetResponse,
            RawBatchGet => kvrpcpb::RawBatchGetResponse,
            RawPut => kvrpcpb::RawPutResponse,
            RawBatchPut => kvrpcpb::RawBatchPutResponse,
            RawDelete => kvrpcpb::RawDeleteResponse,
            RawBatchDelete => kvrpcpb::RawBatchDeleteResponse,
            RawDeleteRange => kvrpcpb::RawDeleteRangeResponse,
            RawScan => kvrpcpb::RawScanResponse,
            RawGetKeyTTL => kvrpcpb::RawGetKeyTtlResponse,
            RawCompareAndSwap => kvrpcpb::RawCasResponse,
            RawChecksum => kvrpcpb::RawChecksumResponse,
            UnsafeDestroyRange => kvrpcpb::UnsafeDestroyRangeResponse,
            LockWaitInfo => kvrpcpb::GetLockWaitInfoResponse,
            GetHealthFeedback => kvrpcpb::GetHealthFeedbackResponse,
            Cop => coprocessor::Response,
            MvccGetByKey => kvrpcpb::MvccGetByKeyResponse,
            MvccGetByStartTs => kvrpcpb::MvccGetByStartTsResponse,
            SplitRegion => kvrpcpb::SplitRegionResponse,
        )
    }

    /// The start ts the command works at (client-go's `GetStartTS`), used for read-ts
    /// validation and logs; 0 when the command has none.
    pub fn start_ts(&self) -> u64 {
        match self {
            Command::Get(r) => r.version,
            Command::Scan(r) => r.version,
            Command::BatchGet(r) => r.version,
            Command::BufferBatchGet(r) => r.version,
            Command::ScanLock(r) => r.max_version,
            Command::CheckTxnStatus(r) => r.lock_ts,
            Command::FlashbackToVersion(r) => r.start_ts,
            Command::PrepareFlashbackToVersion(r) => r.start_ts,
            Command::Flush(r) => r.start_ts,
            Command::Cop(r) | Command::CopStream(r) => r.start_ts,
            Command::BatchCop(r) => r.start_ts,
            Command::MvccGetByStartTs(r) => r.start_ts,
            Command::Prewrite(r) => r.start_version,
            Command::Commit(r) => r.start_version,
            Command::Cleanup(r) => r.start_version,
            Command::BatchRollback(r) => r.start_version,
            Command::ResolveLock(r) => r.start_version,
            Command::PessimisticLock(r) => r.start_version,
            Command::PessimisticRollback(r) => r.start_version,
            Command::TxnHeartBeat(r) => r.start_version,
            Command::CheckSecondaryLocks(r) => r.start_version,
            _ => 0,
        }
    }
}

// ===== impl CmdType =====

impl CmdType {
    /// Whether the command can travel on the `BatchCommands` stream (RPC-6 column B).
    pub fn is_batchable(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::Get
                | C::Scan
                | C::Prewrite
                | C::Commit
                | C::Cleanup
                | C::BatchGet
                | C::BatchRollback
                | C::ScanLock
                | C::ResolveLock
                | C::DeleteRange
                | C::PessimisticLock
                | C::PessimisticRollback
                | C::TxnHeartBeat
                | C::CheckTxnStatus
                | C::CheckSecondaryLocks
                | C::FlashbackToVersion
                | C::PrepareFlashbackToVersion
                | C::Flush
                | C::BufferBatchGet
                | C::RawGet
                | C::RawBatchGet
                | C::RawPut
                | C::RawBatchPut
                | C::RawDelete
                | C::RawBatchDelete
                | C::RawDeleteRange
                | C::RawScan
                | C::GetHealthFeedback
                | C::BroadcastTxnStatus
                | C::Cop
                | C::Empty
        )
    }

    /// Whether a replica other than the leader may serve the command (client-go's
    /// `isReadReq`; RPC-6 column R): the replica selector may set `replica_read` and the
    /// configurable read timeout applies.
    pub fn is_replica_readable(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::Get | C::Scan | C::BatchGet | C::Cop | C::CopStream | C::BatchCop
        )
    }

    /// Whether the read ts of the command is validated against the oracle before sending
    /// (RPC-6 column V).
    pub fn validates_read_ts(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::Get
                | C::Scan
                | C::BatchGet
                | C::ScanLock
                | C::BufferBatchGet
                | C::Cop
                | C::CopStream
                | C::BatchCop
        )
    }

    /// Whether a read that only inspects data; such commands are safe to retry and to
    /// send to any replica that the read type allows. Writes return `false`.
    pub fn is_read_only(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::Get
                | C::Scan
                | C::BatchGet
                | C::ScanLock
                | C::BufferBatchGet
                | C::RawGet
                | C::RawBatchGet
                | C::RawScan
                | C::RawGetKeyTTL
                | C::RawChecksum
                | C::StoreSafeTS
                | C::LockWaitInfo
                | C::GetHealthFeedback
                | C::Cop
                | C::CopStream
                | C::BatchCop
                | C::MvccGetByKey
                | C::MvccGetByStartTs
                | C::DebugGetRegionProperties
                | C::GetTiFlashSystemTable
                | C::MppAlive
                | C::Empty
        )
    }

    /// Whether a kill signal may interrupt the command (client-go's `IsInterruptible`):
    /// everything but the commands that release or finish a transaction's locks.
    pub fn is_interruptible(self) -> bool {
        !matches!(
            self,
            CmdType::PessimisticRollback | CmdType::BatchRollback | CmdType::Commit
        )
    }

    /// Transactional writes, for resource accounting (client-go's `IsTxnWriteRequest`).
    pub fn is_txn_write(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::PessimisticLock
                | C::Prewrite
                | C::Commit
                | C::BatchRollback
                | C::PessimisticRollback
                | C::CheckTxnStatus
                | C::CheckSecondaryLocks
                | C::Cleanup
                | C::TxnHeartBeat
                | C::ResolveLock
                | C::FlashbackToVersion
                | C::PrepareFlashbackToVersion
                | C::Flush
        )
    }

    /// Raw writes, for resource accounting (client-go's `IsRawWriteRequest`; like client-go,
    /// batch delete and delete range are not counted).
    pub fn is_raw_write(self) -> bool {
        matches!(
            self,
            CmdType::RawPut | CmdType::RawBatchPut | CmdType::RawDelete
        )
    }

    /// Whether the command is a debug-service call (client-go's `IsDebugReq`).
    pub fn is_debug(self) -> bool {
        self == CmdType::DebugGetRegionProperties
    }

    /// Commands addressed to a store rather than a region: they carry no region context
    /// and bypass region routing.
    pub fn is_store_level(self) -> bool {
        use CmdType as C;
        matches!(
            self,
            C::StoreSafeTS
                | C::DebugGetRegionProperties
                | C::Compact
                | C::GetTiFlashSystemTable
                | C::MppTask
                | C::MppConn
                | C::MppCancel
                | C::MppAlive
                | C::Empty
        )
    }

    /// Whether the command's response is a stream.
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            CmdType::CopStream | CmdType::BatchCop | CmdType::MppConn
        )
    }
}

// ===== impl CommandResponse =====

impl CommandResponse {
    /// The region error the server returned, if any (client-go's `GetRegionError`).
    pub fn region_error(&self) -> Option<&errorpb::Error> {
        with_region_error!(self, r => r.region_error.as_ref(), _ => None)
    }

    /// Removes and returns the region error, if any.
    pub fn take_region_error(&mut self) -> Option<errorpb::Error> {
        with_region_error!(self, r => r.region_error.take(), _ => None)
    }

    /// Sets the region error on responses that have the field; others are unchanged.
    fn with_region_error(mut self, err: Option<errorpb::Error>) -> Self {
        with_region_error!(&mut self, r => r.region_error = err, _ => ());
        self
    }

    /// Whether the response carries a top-level key error (`error` or `errors`).
    pub fn has_key_error(&self) -> bool {
        use CommandResponse as R;
        match self {
            R::Get(r) => r.error.is_some(),
            R::Scan(r) => r.error.is_some(),
            R::BatchGet(r) => r.error.is_some(),
            R::BatchRollback(r) => r.error.is_some(),
            R::BufferBatchGet(r) => r.error.is_some(),
            R::CheckSecondaryLocks(r) => r.error.is_some(),
            R::CheckTxnStatus(r) => r.error.is_some(),
            R::Cleanup(r) => r.error.is_some(),
            R::Commit(r) => r.error.is_some(),
            R::ResolveLock(r) => r.error.is_some(),
            R::ScanLock(r) => r.error.is_some(),
            R::TxnHeartBeat(r) => r.error.is_some(),
            R::Prewrite(r) => !r.errors.is_empty(),
            R::PessimisticLock(r) => !r.errors.is_empty(),
            R::PessimisticRollback(r) => !r.errors.is_empty(),
            R::Flush(r) => !r.errors.is_empty(),
            R::SplitRegion(r) => !r.errors.is_empty(),
            _ => false,
        }
    }

    /// TiKV's execution details, when the response carries them (client-go's
    /// `GetExecDetailsV2`).
    pub fn exec_details_v2(&self) -> Option<&kvrpcpb::ExecDetailsV2> {
        use CommandResponse as R;
        match self {
            R::Get(r) => r.exec_details_v2.as_ref(),
            R::BatchGet(r) => r.exec_details_v2.as_ref(),
            R::BufferBatchGet(r) => r.exec_details_v2.as_ref(),
            R::Prewrite(r) => r.exec_details_v2.as_ref(),
            R::Commit(r) => r.exec_details_v2.as_ref(),
            R::PessimisticLock(r) => r.exec_details_v2.as_ref(),
            R::PessimisticRollback(r) => r.exec_details_v2.as_ref(),
            R::BatchRollback(r) => r.exec_details_v2.as_ref(),
            R::ScanLock(r) => r.exec_details_v2.as_ref(),
            R::ResolveLock(r) => r.exec_details_v2.as_ref(),
            R::CheckTxnStatus(r) => r.exec_details_v2.as_ref(),
            R::CheckSecondaryLocks(r) => r.exec_details_v2.as_ref(),
            R::TxnHeartBeat(r) => r.exec_details_v2.as_ref(),
            R::Flush(r) => r.exec_details_v2.as_ref(),
            R::Cop(r) => r.exec_details_v2.as_ref(),
            _ => None,
        }
    }

    /// The encoded size of the response in bytes (client-go's `Response.GetSize`); 0 for
    /// streams.
    pub fn encoded_len(&self) -> usize {
        use CommandResponse as R;
        match self {
            R::CopStream(_) | R::BatchCop(_) | R::MppConn(_) => 0,
            R::Get(r) => r.encoded_len(),
            R::Scan(r) => r.encoded_len(),
            R::BatchGet(r) => r.encoded_len(),
            R::Prewrite(r) => r.encoded_len(),
            R::Commit(r) => r.encoded_len(),
            R::PessimisticLock(r) => r.encoded_len(),
            R::PessimisticRollback(r) => r.encoded_len(),
            R::BatchRollback(r) => r.encoded_len(),
            R::CheckSecondaryLocks(r) => r.encoded_len(),
            R::ScanLock(r) => r.encoded_len(),
            R::ResolveLock(r) => r.encoded_len(),
            R::Flush(r) => r.encoded_len(),
            R::CheckTxnStatus(r) => r.encoded_len(),
            R::Cop(r) => r.encoded_len(),
            R::MppTask(r) => r.encoded_len(),
            R::RawGet(r) => r.encoded_len(),
            R::RawBatchGet(r) => r.encoded_len(),
            R::RawScan(r) => r.encoded_len(),
            _ => 0,
        }
    }
}

/// The `BatchCommands` arms, declared once: variant `<=>` oneof arm. Generates the four
/// conversions between the envelope and the batch stream (client-go's
/// `ToBatchCommandsRequest` / `FromBatchCommandsResponse`, plus the server-side directions
/// the mock cluster needs), so the mapping lives in one place.
macro_rules! batch_arms {
    ($($v:ident <=> $arm:ident),* $(,)?) => {
        impl Command {
            /// Wraps a copy of this command in its `BatchCommands` arm (client-go's
            /// `ToBatchCommandsRequest`); `None` for commands that are not batchable.
            pub fn to_batch_request(&self) -> Option<tikvpb::batch_commands_request::Request> {
                use batch_commands_request::request::Cmd;
                let cmd = match self {
                    $(Command::$v(r) => Cmd::$arm(r.clone()),)*
                    _ => return None,
                };
                Some(batch_commands_request::Request { cmd: Some(cmd) })
            }

            /// Unwraps an entry of a received `BatchCommands` request (the server side).
            ///
            /// # Errors
            ///
            /// [`ErrorDetail::BodyMissing`] when the entry has no command set.
            pub fn from_batch_request(
                req: tikvpb::batch_commands_request::Request,
            ) -> Result<Command, Error> {
                use batch_commands_request::request::Cmd;
                match req.cmd {
                    $(Some(Cmd::$arm(r)) => Ok(Command::$v(r)),)*
                    None => Err(ErrorDetail::BodyMissing.into()),
                }
            }
        }

        impl CommandResponse {
            /// Unwraps an entry of the `BatchCommands` stream (client-go's
            /// `FromBatchCommandsResponse`).
            ///
            /// # Errors
            ///
            /// [`ErrorDetail::BodyMissing`] when the entry has no command set (an empty or
            /// unknown arm: prost skips arms it does not know, so a newer server's arm also
            /// lands here instead of panicking as client-go does).
            pub fn from_batch_response(
                resp: tikvpb::batch_commands_response::Response,
            ) -> Result<CommandResponse, Error> {
                use batch_commands_response::response::Cmd;
                match resp.cmd {
                    $(Some(Cmd::$arm(r)) => Ok(CommandResponse::$v(r)),)*
                    None => Err(ErrorDetail::BodyMissing.into()),
                }
            }

            /// Wraps this response in its `BatchCommands` arm (the server side); `None` for
            /// responses of commands that are not batchable.
            pub fn into_batch_response(self) -> Option<tikvpb::batch_commands_response::Response> {
                use batch_commands_response::response::Cmd;
                let cmd = match self {
                    $(CommandResponse::$v(r) => Cmd::$arm(r),)*
                    _ => return None,
                };
                Some(batch_commands_response::Response { cmd: Some(cmd) })
            }
        }
    };
}

batch_arms! {
    Get <=> Get,
    Scan <=> Scan,
    Prewrite <=> Prewrite,
    Commit <=> Commit,
    Cleanup <=> Cleanup,
    BatchGet <=> BatchGet,
    BatchRollback <=> BatchRollback,
    ScanLock <=> ScanLock,
    ResolveLock <=> ResolveLock,
    DeleteRange <=> DeleteRange,
    PessimisticLock <=> PessimisticLock,
    PessimisticRollback <=> PessimisticRollback,
    TxnHeartBeat <=> TxnHeartBeat,
    CheckTxnStatus <=> CheckTxnStatus,
    CheckSecondaryLocks <=> CheckSecondaryLocks,
    FlashbackToVersion <=> FlashbackToVersion,
    PrepareFlashbackToVersion <=> PrepareFlashbackToVersion,
    Flush <=> Flush,
    BufferBatchGet <=> BufferBatchGet,
    RawGet <=> RawGet,
    RawBatchGet <=> RawBatchGet,
    RawPut <=> RawPut,
    RawBatchPut <=> RawBatchPut,
    RawDelete <=> RawDelete,
    RawBatchDelete <=> RawBatchDelete,
    RawDeleteRange <=> RawDeleteRange,
    RawScan <=> RawScan,
    GetHealthFeedback <=> GetHealthFeedback,
    BroadcastTxnStatus <=> BroadcastTxnStatus,
    Empty <=> Empty,
    Cop <=> Coprocessor,
}

/// Typed accessors, one per command: `req.get()` returns `Some(&GetRequest)` when the
/// command is a `Get` (client-go's `Request.Get()` and friends, without the panic).
macro_rules! accessors {
    ($($fn:ident, $fn_mut:ident => $v:ident: $t:ty;)*) => {
        impl Command {
            $(
                #[doc = concat!("The inner request if this is a `", stringify!($v), "`.")]
                pub fn $fn(&self) -> Option<&$t> {
                    match self { Command::$v(r) => Some(r), _ => None }
                }
                #[doc = concat!("The inner request, mutably, if this is a `", stringify!($v), "`.")]
                pub fn $fn_mut(&mut self) -> Option<&mut $t> {
                    match self { Command::$v(r) => Some(r), _ => None }
                }
            )*
        }
    };
}

accessors! {
    get, get_mut => Get: kvrpcpb::GetRequest;
    scan, scan_mut => Scan: kvrpcpb::ScanRequest;
    prewrite, prewrite_mut => Prewrite: kvrpcpb::PrewriteRequest;
    commit, commit_mut => Commit: kvrpcpb::CommitRequest;
    cleanup, cleanup_mut => Cleanup: kvrpcpb::CleanupRequest;
    batch_get, batch_get_mut => BatchGet: kvrpcpb::BatchGetRequest;
    batch_rollback, batch_rollback_mut => BatchRollback: kvrpcpb::BatchRollbackRequest;
    scan_lock, scan_lock_mut => ScanLock: kvrpcpb::ScanLockRequest;
    resolve_lock, resolve_lock_mut => ResolveLock: kvrpcpb::ResolveLockRequest;
    delete_range, delete_range_mut => DeleteRange: kvrpcpb::DeleteRangeRequest;
    pessimistic_lock, pessimistic_lock_mut => PessimisticLock: kvrpcpb::PessimisticLockRequest;
    pessimistic_rollback, pessimistic_rollback_mut => PessimisticRollback: kvrpcpb::PessimisticRollbackRequest;
    txn_heart_beat, txn_heart_beat_mut => TxnHeartBeat: kvrpcpb::TxnHeartBeatRequest;
    check_txn_status, check_txn_status_mut => CheckTxnStatus: kvrpcpb::CheckTxnStatusRequest;
    check_secondary_locks, check_secondary_locks_mut => CheckSecondaryLocks: kvrpcpb::CheckSecondaryLocksRequest;
    flashback_to_version, flashback_to_version_mut => FlashbackToVersion: kvrpcpb::FlashbackToVersionRequest;
    prepare_flashback_to_version, prepare_flashback_to_version_mut => PrepareFlashbackToVersion: kvrpcpb::PrepareFlashbackToVersionRequest;
    flush, flush_mut => Flush: kvrpcpb::FlushRequest;
    buffer_batch_get, buffer_batch_get_mut => BufferBatchGet: kvrpcpb::BufferBatchGetRequest;
    raw_get, raw_get_mut => RawGet: kvrpcpb::RawGetRequest;
    raw_batch_get, raw_batch_get_mut => RawBatchGet: kvrpcpb::RawBatchGetRequest;
    raw_put, raw_put_mut => RawPut: kvrpcpb::RawPutRequest;
    raw_batch_put, raw_batch_put_mut => RawBatchPut: kvrpcpb::RawBatchPutRequest;
    raw_delete, raw_delete_mut => RawDelete: kvrpcpb::RawDeleteRequest;
    raw_batch_delete, raw_batch_delete_mut => RawBatchDelete: kvrpcpb::RawBatchDeleteRequest;
    raw_delete_range, raw_delete_range_mut => RawDeleteRange: kvrpcpb::RawDeleteRangeRequest;
    raw_scan, raw_scan_mut => RawScan: kvrpcpb::RawScanRequest;
    raw_get_key_ttl, raw_get_key_ttl_mut => RawGetKeyTTL: kvrpcpb::RawGetKeyTtlRequest;
    raw_compare_and_swap, raw_compare_and_swap_mut => RawCompareAndSwap: kvrpcpb::RawCasRequest;
    raw_checksum, raw_checksum_mut => RawChecksum: kvrpcpb::RawChecksumRequest;
    unsafe_destroy_range, unsafe_destroy_range_mut => UnsafeDestroyRange: kvrpcpb::UnsafeDestroyRangeRequest;
    store_safe_ts, store_safe_ts_mut => StoreSafeTS: kvrpcpb::StoreSafeTsRequest;
    lock_wait_info, lock_wait_info_mut => LockWaitInfo: kvrpcpb::GetLockWaitInfoRequest;
    get_health_feedback, get_health_feedback_mut => GetHealthFeedback: kvrpcpb::GetHealthFeedbackRequest;
    broadcast_txn_status, broadcast_txn_status_mut => BroadcastTxnStatus: kvrpcpb::BroadcastTxnStatusRequest;
    cop, cop_mut => Cop: coprocessor::Request;
    cop_stream, cop_stream_mut => CopStream: coprocessor::Request;
    batch_cop, batch_cop_mut => BatchCop: coprocessor::BatchRequest;
    dispatch_mpp_task, dispatch_mpp_task_mut => MppTask: mpp::DispatchTaskRequest;
    establish_mpp_conn, establish_mpp_conn_mut => MppConn: mpp::EstablishMppConnectionRequest;
    cancel_mpp_task, cancel_mpp_task_mut => MppCancel: mpp::CancelTaskRequest;
    is_mpp_alive, is_mpp_alive_mut => MppAlive: mpp::IsAliveRequest;
    mvcc_get_by_key, mvcc_get_by_key_mut => MvccGetByKey: kvrpcpb::MvccGetByKeyRequest;
    mvcc_get_by_start_ts, mvcc_get_by_start_ts_mut => MvccGetByStartTs: kvrpcpb::MvccGetByStartTsRequest;
    split_region, split_region_mut => SplitRegion: kvrpcpb::SplitRegionRequest;
    debug_get_region_properties, debug_get_region_properties_mut => DebugGetRegionProperties: debugpb::GetRegionPropertiesRequest;
    compact, compact_mut => Compact: kvrpcpb::CompactRequest;
    get_tiflash_system_table, get_tiflash_system_table_mut => GetTiFlashSystemTable: kvrpcpb::TiFlashSystemTableRequest;
    empty, empty_mut => Empty: tikvpb::BatchCommandsEmptyRequest;
}

// ===== per-request options =====

/// Which replicas may serve a read (client-go's `kv.ReplicaReadType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReplicaReadType {
    /// Only the leader.
    #[default]
    Leader = 0,
    /// Followers only (falls back to the leader when no follower can serve).
    Follower = 1,
    /// Leader and followers alike.
    Mixed = 2,
    /// Learners only.
    Learner = 3,
    /// The leader first, followers when the leader is unavailable or busy.
    PreferLeader = 4,
}

impl ReplicaReadType {
    /// Whether this is any kind of follower read (anything but [`Leader`](Self::Leader)).
    pub fn is_follower_read(self) -> bool {
        self != ReplicaReadType::Leader
    }
}

/// The kind of endpoint a request targets (client-go's `tikvrpc.EndpointType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EndpointType {
    /// A TiKV store.
    #[default]
    TiKV,
    /// A TiFlash store.
    TiFlash,
    /// A TiDB server.
    TiDB,
    /// A TiFlash compute node.
    TiFlashCompute,
}

/// Store label key naming the storage engine (client-go's `EngineLabelKey`).
pub const ENGINE_LABEL_KEY: &str = "engine";
/// Engine label value of TiFlash stores (`EngineLabelTiFlash`).
pub const ENGINE_LABEL_TIFLASH: &str = "tiflash";
/// Engine label value of TiFlash compute nodes (`EngineLabelTiFlashCompute`).
pub const ENGINE_LABEL_TIFLASH_COMPUTE: &str = "tiflash_compute";
/// Store label key naming a TiFlash node's role (`EngineRoleLabelKey`).
pub const ENGINE_ROLE_LABEL_KEY: &str = "engine_role";
/// Engine role value of TiFlash write nodes (`EngineRoleWrite`).
pub const ENGINE_ROLE_WRITE: &str = "write";

impl EndpointType {
    /// The endpoint's name, as client-go's `EndpointType.Name` prints it.
    pub fn name(self) -> &'static str {
        match self {
            EndpointType::TiKV => "tikv",
            EndpointType::TiFlash => "tiflash",
            EndpointType::TiDB => "tidb",
            EndpointType::TiFlashCompute => "tiflash_compute",
        }
    }

    /// Whether the endpoint is TiFlash or a TiFlash compute node.
    pub fn is_tiflash_related(self) -> bool {
        matches!(self, EndpointType::TiFlash | EndpointType::TiFlashCompute)
    }

    /// The endpoint type of a store, from its `engine` label (client-go's
    /// `GetStoreTypeByMeta`).
    pub fn of_store(store: &metapb::Store) -> EndpointType {
        for label in &store.labels {
            if label.key == ENGINE_LABEL_KEY {
                if label.value == ENGINE_LABEL_TIFLASH {
                    return EndpointType::TiFlash;
                }
                if label.value == ENGINE_LABEL_TIFLASH_COMPUTE {
                    return EndpointType::TiFlashCompute;
                }
            }
        }
        EndpointType::TiKV
    }
}

/// Where the chosen replica is relative to the client (client-go's
/// `kv.AccessLocationType`), for traffic accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AccessLocation {
    /// Unknown (no zone label configured).
    #[default]
    Unknown,
    /// In the client's zone.
    LocalZone,
    /// In another zone.
    CrossZone,
}

/// What the caller asks of the request path; set when the request is built and read by
/// the layers (client-go's `Request` fields outside the protobuf message).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Which replicas may serve the read (`ReplicaReadType`).
    pub replica_read: ReplicaReadType,
    /// Seed that spreads follower reads across followers (`ReplicaReadSeed`).
    pub replica_read_seed: u32,
    /// Read at a historical ts from any replica whose safe ts covers it.
    pub stale_read: bool,
    /// Preferred store labels for replica selection (label match).
    pub match_labels: Vec<metapb::StoreLabel>,
    /// Only these stores may serve the request, when non-empty.
    pub match_store_ids: Vec<u64>,
    /// Never send to a follower, whatever the read type (`WithLeaderOnly`).
    pub leader_only: bool,
    /// Prefer a non-slow leader (`WithPerferLeader`; also implied by
    /// [`ReplicaReadType::PreferLeader`]).
    pub prefer_leader: bool,
    /// The endpoint kind the request targets (`StoreTp`).
    pub endpoint: EndpointType,
    /// The caller's request source, before the sender's rewrite (`InputRequestSource`).
    pub input_request_source: String,
    /// The predicted number of bytes the read returns, for resource accounting.
    pub predicted_read_bytes: u64,
    /// The per-attempt timeout; `None` means the command class default.
    pub timeout: Option<std::time::Duration>,
    /// The request origin stamped into the context when the caller left it unknown (the
    /// embedding process's identity; client-go's process-wide default request origin).
    pub default_origin: kvrpcpb::RequestOrigin,
}

/// Where the request path decided to send an attempt; filled by `route` and `replica`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Target {
    /// The region the request is routed to, as the region cache saw it when the request was
    /// located (id, epoch, key range, peers). Set by `shard` or `route`; the send loop keeps
    /// this version for every attempt (client-go's `regionVer` argument of `SendReq`).
    pub region: Option<std::sync::Arc<crate::locate::RegionSnapshot>>,
    /// The peer chosen to serve the attempt.
    pub peer: Option<metapb::Peer>,
    /// The store of that peer.
    pub store_id: u64,
    /// The address the attempt is sent to (the proxy's address when forwarding).
    pub addr: String,
    /// When forwarding through a proxy store, the real target's address
    /// (`tikv-forwarded-host`).
    pub forwarded_host: Option<String>,
    /// Where the chosen replica sits relative to the client.
    pub access_location: AccessLocation,
}

/// One request flowing through the pipeline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RpcRequest {
    /// The typed kvproto request.
    pub cmd: Command,
    /// The context layers fill (region id, epoch, peer, replica/stale flags, request
    /// source, keyspace, ...). It is copied into the inner message only by
    /// [`attach_context`](Self::attach_context), right before sending, so each attempt
    /// sends its own copy (client-go's `SetContextNoAttach` + `AttachContext`).
    pub context: kvrpcpb::Context,
    /// The caller's intent for this request.
    pub options: RequestOptions,
    /// Where the request path decided to send it.
    pub target: Target,
    /// The request's sleep budget, shared by every attempt and every sub-request forked
    /// from it.
    pub backoffer: SharedBackoffer,
    /// Free-form values for user layers (audit ids, tenant tags, ...).
    pub extensions: http::Extensions,
    /// Per-call state the send loop shares with the layers below it; see [`CallState`].
    pub(crate) call: CallState,
}

/// What the `retry` layer shares with the attempt-level layers of one call: the replica
/// selector's slot (spec 8.4: selection is part of retry state) and the caller's read
/// intent (client-go's `reqInvariants`).
///
/// A dedicated field rather than `extensions`: it is set on every call and copied into
/// every attempt, and a typed field costs no map allocation or boxed clone (issue 6's
/// allocation budget). Read it with [`RpcRequest::selector_slot`] and
/// [`RpcRequest::read_invariants`].
#[derive(Debug, Clone, Default)]
pub(crate) struct CallState {
    pub(crate) slot: Option<crate::replica::SelectorSlot>,
    pub(crate) invariants: Option<crate::network::ReadInvariants>,
}

impl RpcRequest {
    /// Creates a request for `cmd` with an empty context, default options and an unlimited
    /// budget. A context already set on the inner message is taken as the envelope's
    /// context (client-go's `NewRequest(typ, req, ctx)`).
    pub fn new(cmd: impl Into<Command>) -> RpcRequest {
        RpcRequest::with_backoffer(cmd, SharedBackoffer::default())
    }

    /// Creates a request like [`new`](Self::new) with the caller's backoffer (budget)
    /// instead of the unlimited placeholder. Equivalent to `new(cmd).backoffer(bo)`
    /// without building the placeholder first (clients create one request per call).
    pub fn with_backoffer(cmd: impl Into<Command>, backoffer: SharedBackoffer) -> RpcRequest {
        let cmd = cmd.into();
        let context = cmd.context().cloned().unwrap_or_default();
        RpcRequest {
            cmd,
            context,
            options: RequestOptions::default(),
            target: Target::default(),
            backoffer,
            extensions: http::Extensions::new(),
            call: CallState::default(),
        }
    }

    /// The replica selector slot of the call this attempt belongs to, set by the `retry`
    /// layer (`None` above it or without it).
    pub fn selector_slot(&self) -> Option<&crate::replica::SelectorSlot> {
        self.call.slot.as_ref()
    }

    /// The caller's read intent for the whole call, set by the `retry` layer: the replica
    /// selector may turn a later attempt of a stale read into a leader read, while
    /// client-go still counts it as stale-read traffic.
    pub fn read_invariants(&self) -> Option<crate::network::ReadInvariants> {
        self.call.invariants
    }

    /// Creates a request with an explicit context.
    pub fn with_context(cmd: impl Into<Command>, context: kvrpcpb::Context) -> RpcRequest {
        let mut req = RpcRequest::new(cmd);
        req.context = context;
        req
    }

    /// Sets the request origin stamped when the context leaves it unknown, and stamps it
    /// now (client-go fills it in `NewRequest` and again in `AttachContext`).
    #[must_use]
    pub fn default_origin(mut self, origin: kvrpcpb::RequestOrigin) -> Self {
        self.options.default_origin = origin;
        self.fill_origin();
        self
    }

    /// Replaces the request's backoff budget.
    #[must_use]
    pub fn backoffer(mut self, bo: SharedBackoffer) -> Self {
        self.backoffer = bo;
        self
    }

    /// Sets the replica read type, both the intent and the wire flag (client-go's
    /// `SetReplicaReadType`).
    pub fn set_replica_read(&mut self, t: ReplicaReadType) {
        self.options.replica_read = t;
        self.context.replica_read = t.is_follower_read();
    }

    /// Turns the request into a stale read served by any replica (client-go's
    /// `EnableStaleWithMixedReplicaRead`).
    pub fn enable_stale_read(&mut self) {
        self.options.stale_read = true;
        self.options.replica_read = ReplicaReadType::Mixed;
        self.context.stale_read = true;
        self.context.replica_read = false;
    }

    /// Falls back from a stale read to a leader read after meeting a lock (client-go's
    /// `DisableStaleReadMeetLock`); the wire `replica_read` flag is left as is.
    pub fn disable_stale_read(&mut self) {
        self.options.stale_read = false;
        self.options.replica_read = ReplicaReadType::Leader;
        self.context.stale_read = false;
    }

    /// The command type.
    pub fn cmd_type(&self) -> CmdType {
        self.cmd.cmd_type()
    }

    /// The request origin recorded in the envelope's context.
    pub fn request_origin(&self) -> kvrpcpb::RequestOrigin {
        self.context.request_origin()
    }

    fn fill_origin(&mut self) {
        if self.context.request_origin() == kvrpcpb::RequestOrigin::Unknown
            && self.options.default_origin != kvrpcpb::RequestOrigin::Unknown
        {
            self.context.set_request_origin(self.options.default_origin);
        }
    }

    /// Sets region and peer on the envelope's context only, leaving the inner message
    /// untouched until [`attach_context`](Self::attach_context) (client-go's
    /// `SetContextNoAttach`).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when the command carries no region context.
    pub fn set_region_context(
        &mut self,
        region_id: u64,
        epoch: Option<metapb::RegionEpoch>,
        peer: Option<metapb::Peer>,
    ) -> Result<(), Error> {
        if !self.cmd.has_context() {
            return Err(ErrorDetail::InvalidArgument(format!(
                "command {} carries no region context",
                self.cmd_type()
            ))
            .into());
        }
        self.context.region_id = region_id;
        self.context.region_epoch = epoch;
        self.context.peer = peer;
        Ok(())
    }

    /// Copies the envelope's context into the inner message, filling the default request
    /// origin first (client-go's `AttachContext`). Returns `false` for commands that carry
    /// no context. Call it on each attempt's own copy of the request.
    pub fn attach_context(&mut self) -> bool {
        self.fill_origin();
        self.cmd.set_context(&self.context)
    }
}

/// Per-response details the layers report back (client-go's exec details and
/// `ResponseExt.Addr`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AttemptDetails {
    /// The address that served the final attempt (the target store, not the proxy).
    pub addr: String,
    /// The store that served the final attempt.
    pub store_id: u64,
    /// How many attempts were sent (1 when the first one answered).
    pub attempts: u32,
    /// Time spent waiting for RPCs, over all attempts.
    pub rpc_time: std::time::Duration,
    /// Time spent in backoff sleeps, over all attempts.
    pub backoff_time: std::time::Duration,
}

/// The answer to one [`RpcRequest`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RpcResponse {
    /// The typed response.
    pub resp: CommandResponse,
    /// Where and how it was obtained.
    pub details: AttemptDetails,
}

impl RpcResponse {
    /// Wraps a typed response with empty details.
    pub fn new(resp: impl Into<CommandResponse>) -> RpcResponse {
        RpcResponse {
            resp: resp.into(),
            details: AttemptDetails::default(),
        }
    }

    /// The command type this response answers.
    pub fn cmd_type(&self) -> CmdType {
        self.resp.cmd_type()
    }

    /// The region error the server returned, if any.
    pub fn region_error(&self) -> Option<&errorpb::Error> {
        self.resp.region_error()
    }

    /// Whether the response carries a top-level key error.
    pub fn has_key_error(&self) -> bool {
        self.resp.has_key_error()
    }

    /// Checks that the response answers `expected`.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidResponse`] when it answers another command.
    pub fn expect(&self, expected: CmdType) -> Result<(), Error> {
        if self.cmd_type() == expected {
            Ok(())
        } else {
            Err(ErrorDetail::InvalidResponse {
                expected: expected.name(),
                got: self.cmd_type().name().to_owned(),
            }
            .into())
        }
    }
}

macro_rules! request_from {
    ($($v:ident: $t:ty),* $(,)?) => {
        $(impl From<$t> for Command {
            fn from(r: $t) -> Command { Command::$v(r) }
        })*
    };
}

// `coprocessor::Request` converts to the unary `Cop`; build `CopStream` explicitly.
request_from! {
    Get: kvrpcpb::GetRequest, Scan: kvrpcpb::ScanRequest, Prewrite: kvrpcpb::PrewriteRequest,
    Commit: kvrpcpb::CommitRequest, Cleanup: kvrpcpb::CleanupRequest,
    BatchGet: kvrpcpb::BatchGetRequest, BatchRollback: kvrpcpb::BatchRollbackRequest,
    ScanLock: kvrpcpb::ScanLockRequest, ResolveLock: kvrpcpb::ResolveLockRequest,
    DeleteRange: kvrpcpb::DeleteRangeRequest, PessimisticLock: kvrpcpb::PessimisticLockRequest,
    PessimisticRollback: kvrpcpb::PessimisticRollbackRequest,
    TxnHeartBeat: kvrpcpb::TxnHeartBeatRequest, CheckTxnStatus: kvrpcpb::CheckTxnStatusRequest,
    CheckSecondaryLocks: kvrpcpb::CheckSecondaryLocksRequest,
    FlashbackToVersion: kvrpcpb::FlashbackToVersionRequest,
    PrepareFlashbackToVersion: kvrpcpb::PrepareFlashbackToVersionRequest,
    Flush: kvrpcpb::FlushRequest, BufferBatchGet: kvrpcpb::BufferBatchGetRequest,
    RawGet: kvrpcpb::RawGetRequest, RawBatchGet: kvrpcpb::RawBatchGetRequest,
    RawPut: kvrpcpb::RawPutRequest, RawBatchPut: kvrpcpb::RawBatchPutRequest,
    RawDelete: kvrpcpb::RawDeleteRequest, RawBatchDelete: kvrpcpb::RawBatchDeleteRequest,
    RawDeleteRange: kvrpcpb::RawDeleteRangeRequest, RawScan: kvrpcpb::RawScanRequest,
    RawGetKeyTTL: kvrpcpb::RawGetKeyTtlRequest, RawCompareAndSwap: kvrpcpb::RawCasRequest,
    RawChecksum: kvrpcpb::RawChecksumRequest,
    UnsafeDestroyRange: kvrpcpb::UnsafeDestroyRangeRequest,
    StoreSafeTS: kvrpcpb::StoreSafeTsRequest, LockWaitInfo: kvrpcpb::GetLockWaitInfoRequest,
    GetHealthFeedback: kvrpcpb::GetHealthFeedbackRequest,
    BroadcastTxnStatus: kvrpcpb::BroadcastTxnStatusRequest, Cop: coprocessor::Request,
    BatchCop: coprocessor::BatchRequest, MppTask: mpp::DispatchTaskRequest,
    MppConn: mpp::EstablishMppConnectionRequest, MppCancel: mpp::CancelTaskRequest,
    MppAlive: mpp::IsAliveRequest, MvccGetByKey: kvrpcpb::MvccGetByKeyRequest,
    MvccGetByStartTs: kvrpcpb::MvccGetByStartTsRequest, SplitRegion: kvrpcpb::SplitRegionRequest,
    DebugGetRegionProperties: debugpb::GetRegionPropertiesRequest,
    Compact: kvrpcpb::CompactRequest,
    GetTiFlashSystemTable: kvrpcpb::TiFlashSystemTableRequest,
    Empty: tikvpb::BatchCommandsEmptyRequest,
}

macro_rules! response_from {
    ($($v:ident: $t:ty),* $(,)?) => {
        $(impl From<$t> for CommandResponse {
            fn from(r: $t) -> CommandResponse { CommandResponse::$v(r) }
        })*
    };
}

// Non-stream responses convert directly; stream responses are built explicitly because
// several commands share an item type.
response_from! {
    Get: kvrpcpb::GetResponse, Scan: kvrpcpb::ScanResponse, Prewrite: kvrpcpb::PrewriteResponse,
    Commit: kvrpcpb::CommitResponse, Cleanup: kvrpcpb::CleanupResponse,
    BatchGet: kvrpcpb::BatchGetResponse, BatchRollback: kvrpcpb::BatchRollbackResponse,
    ScanLock: kvrpcpb::ScanLockResponse, ResolveLock: kvrpcpb::ResolveLockResponse,
    DeleteRange: kvrpcpb::DeleteRangeResponse, PessimisticLock: kvrpcpb::PessimisticLockResponse,
    PessimisticRollback: kvrpcpb::PessimisticRollbackResponse,
    TxnHeartBeat: kvrpcpb::TxnHeartBeatResponse, CheckTxnStatus: kvrpcpb::CheckTxnStatusResponse,
    CheckSecondaryLocks: kvrpcpb::CheckSecondaryLocksResponse,
    FlashbackToVersion: kvrpcpb::FlashbackToVersionResponse,
    PrepareFlashbackToVersion: kvrpcpb::PrepareFlashbackToVersionResponse,
    Flush: kvrpcpb::FlushResponse, BufferBatchGet: kvrpcpb::BufferBatchGetResponse,
    RawGet: kvrpcpb::RawGetResponse, RawBatchGet: kvrpcpb::RawBatchGetResponse,
    RawPut: kvrpcpb::RawPutResponse, RawBatchPut: kvrpcpb::RawBatchPutResponse,
    RawDelete: kvrpcpb::RawDeleteResponse, RawBatchDelete: kvrpcpb::RawBatchDeleteResponse,
    RawDeleteRange: kvrpcpb::RawDeleteRangeResponse, RawScan: kvrpcpb::RawScanResponse,
    RawGetKeyTTL: kvrpcpb::RawGetKeyTtlResponse, RawCompareAndSwap: kvrpcpb::RawCasResponse,
    RawChecksum: kvrpcpb::RawChecksumResponse,
    UnsafeDestroyRange: kvrpcpb::UnsafeDestroyRangeResponse,
    StoreSafeTS: kvrpcpb::StoreSafeTsResponse, LockWaitInfo: kvrpcpb::GetLockWaitInfoResponse,
    GetHealthFeedback: kvrpcpb::GetHealthFeedbackResponse,
    BroadcastTxnStatus: kvrpcpb::BroadcastTxnStatusResponse, Cop: coprocessor::Response,
    MppTask: mpp::DispatchTaskResponse, MppCancel: mpp::CancelTaskResponse,
    MppAlive: mpp::IsAliveResponse, MvccGetByKey: kvrpcpb::MvccGetByKeyResponse,
    MvccGetByStartTs: kvrpcpb::MvccGetByStartTsResponse, SplitRegion: kvrpcpb::SplitRegionResponse,
    DebugGetRegionProperties: debugpb::GetRegionPropertiesResponse,
    Compact: kvrpcpb::CompactResponse,
    GetTiFlashSystemTable: kvrpcpb::TiFlashSystemTableResponse,
    Empty: tikvpb::BatchCommandsEmptyResponse,
}

#[cfg(test)]
mod tests;
