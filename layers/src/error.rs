//! The one error type of the client.
//!
//! [`Error`] is an opaque, pointer-sized handle (`Box` inside, like `tonic::Status`) so that
//! `Result<T, Error>` stays small on every hot path. What went wrong is described by two
//! views of the same value:
//!
//! - [`Error::kind`] returns a coarse, `Copy` [`ErrorKind`] for the question callers usually
//!   ask ("is this a region problem, a key conflict, a timeout, my own bad input?");
//! - [`Error::detail`] returns the precise [`ErrorDetail`], which mirrors every error value
//!   of client-go's `error` package (`tikverr.ErrTiKVServerTimeout`, `ErrWriteConflict`, ...)
//!   plus the transport-level failures the Rust client adds.
//!
//! Key errors and region errors keep the server's message intact
//! ([`Error::key_error`], [`Error::region_error`]); nothing is flattened into a string.
//!
//! Errors that arrive from reused tower middleware as `BoxError` are mapped with
//! [`Error::from_boxed`], which walks `source()` the way linkerd's `cause_ref` does, so no
//! public API ever returns a `BoxError`.

use std::fmt;

use tikv_proto::{errorpb, kvrpcpb, pdpb};

/// A boxed error, as tower middleware produces them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text client-go looks for to detect a PD cluster-id mismatch (`MismatchClusterID`).
///
/// client-go exits the process when a backoff reason contains it; this client returns
/// [`ErrorDetail::MismatchClusterId`] instead and never retries it.
pub const MISMATCH_CLUSTER_ID: &str = "mismatch cluster id";

/// An error from the TiKV client.
///
/// Cheap to move (one pointer). Build one from an [`ErrorDetail`] with [`Error::new`] or
/// `From`, attach the underlying cause with [`Error::with_source`], and inspect it with
/// [`Error::kind`], [`Error::detail`] and the `is_*` helpers.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    detail: ErrorDetail,
    source: Option<BoxError>,
}

/// Coarse classification of an [`Error`]; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// TiKV answered with a region error (`errorpb::Error`) that reached the caller, or a
    /// region could not be served (unavailable, not initialized, flashback, recovery, ...).
    Region,
    /// TiKV answered with a key error: a conflict, a lock, an assertion, a deadlock, ...
    Key,
    /// The server answered with a non-OK gRPC status.
    Grpc,
    /// The request could not be delivered or the connection broke before an answer came.
    Transport,
    /// A deadline passed: an attempt timeout, a lock wait timeout, or a server timeout.
    Timeout,
    /// The per-request backoff budget ran out; the detail names the dominant cause.
    BackoffExhausted,
    /// The outcome of a commit is unknown: it may or may not have been applied.
    Undetermined,
    /// PD answered with an error or could not be reached.
    Pd,
    /// The configuration is invalid.
    Config,
    /// The caller passed a value the client rejects before contacting any server.
    InvalidArgument,
    /// The requested data does not exist.
    NotFound,
    /// The operation was canceled by the caller or interrupted by a kill signal.
    Canceled,
    /// The transaction cannot proceed (invalid state, too large, aborted by GC, ...).
    Txn,
    /// A server response violated the protocol (missing body, wrong type, garbage).
    Protocol,
    /// A bug or an unexpected state inside the client.
    Internal,
}

impl ErrorKind {
    /// A short snake_case label, for metrics and statistics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Region => "region",
            ErrorKind::Key => "key",
            ErrorKind::Grpc => "grpc",
            ErrorKind::Transport => "transport",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BackoffExhausted => "backoff_exhausted",
            ErrorKind::Undetermined => "undetermined",
            ErrorKind::Pd => "pd",
            ErrorKind::Config => "config",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Txn => "txn",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Everything the client can report, one variant per client-go error value plus the
/// transport-level failures of this client.
///
/// Payloads that are large protobuf messages are boxed so the enum stays small.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorDetail {
    // ----- client-go sentinel errors (`error/error.go`), same meaning -----
    /// A response arrived without a body (`ErrBodyMissing`).
    #[error("response body is missing")]
    BodyMissing,
    /// The client is shutting down; the request was not sent and must not be retried
    /// (`ErrTiDBShuttingDown`).
    #[error("client is shutting down")]
    ShuttingDown,
    /// The key does not exist (`ErrNotExist`).
    #[error("not exist")]
    NotExist,
    /// An empty value was written to the transaction buffer (`ErrCannotSetNilValue`).
    #[error("can not set nil value")]
    CannotSetNilValue,
    /// The transaction was already committed or rolled back (`ErrInvalidTxn`).
    #[error("invalid transaction")]
    InvalidTxn,
    /// The TiKV RPC backoff budget ran out (`ErrTiKVServerTimeout`).
    #[error("tikv server timeout")]
    TiKVServerTimeout,
    /// The TiFlash RPC backoff budget ran out (`ErrTiFlashServerTimeout`).
    #[error("tiflash server timeout")]
    TiFlashServerTimeout,
    /// The caller's kill flag was set (`ErrQueryInterruptedWithSignal`).
    #[error("query interrupted by signal {signal}")]
    QueryInterrupted {
        /// The value the kill flag held.
        signal: u32,
    },
    /// TiKV reported a stale raft command until the budget ran out (`ErrTiKVStaleCommand`).
    #[error("tikv stale command")]
    TiKVStaleCommand,
    /// TiKV's max timestamp was not synced in time (`ErrTiKVMaxTimestampNotSynced`).
    #[error("tikv max timestamp not synced")]
    TiKVMaxTimestampNotSynced,
    /// A pessimistic lock conflicted and the request asked not to wait
    /// (`ErrLockAcquireFailAndNoWaitSet`).
    #[error("lock acquired failed and no wait is set")]
    LockAcquireFailAndNoWaitSet,
    /// Lock resolution did not finish within its backoff budget (`ErrResolveLockTimeout`).
    #[error("resolve lock timeout")]
    ResolveLockTimeout,
    /// Waiting for a pessimistic lock timed out (`ErrLockWaitTimeout`).
    #[error("lock wait timeout")]
    LockWaitTimeout,
    /// TiKV stayed busy until the busy backoff ran out (`ErrTiKVServerBusy`).
    #[error("tikv server busy")]
    TiKVServerBusy,
    /// TiFlash stayed busy until the busy backoff ran out (`ErrTiFlashServerBusy`).
    #[error("tiflash server busy")]
    TiFlashServerBusy,
    /// The region could not be served within the budget (`ErrRegionUnavailable`).
    #[error("region unavailable")]
    RegionUnavailable,
    /// A stale read reached a replica whose safe ts is below the read ts
    /// (`ErrRegionDataNotReady`).
    #[error("region data not ready")]
    RegionDataNotReady,
    /// The region's peer is not initialized yet (`ErrRegionNotInitialized`).
    #[error("region not initialized")]
    RegionNotInitialized,
    /// TiKV refuses writes because its disk is full (`ErrTiKVDiskFull`).
    #[error("tikv disk full")]
    TiKVDiskFull,
    /// The commit ts fetched from PD lags behind the required one (`ErrCommitTSLag`).
    #[error("commit timestamp lags behind expected")]
    CommitTsLag,
    /// The region is under online unsafe recovery (`ErrRegionRecoveryInProgress`).
    #[error("region is being online unsafe recovered")]
    RegionRecoveryInProgress,
    /// The region is in a flashback (`ErrRegionFlashbackInProgress`).
    #[error("region is in the flashback progress")]
    RegionFlashbackInProgress,
    /// The region was not prepared for flashback (`ErrRegionFlashbackNotPrepared`).
    #[error("region is not prepared for the flashback")]
    RegionFlashbackNotPrepared,
    /// The request reached a witness peer (`ErrIsWitness`).
    #[error("peer is witness")]
    IsWitness,
    /// An unclassified failure (`ErrUnknown`).
    #[error("unknown")]
    Unknown,
    /// The outcome of the operation is unknown (`ErrResultUndetermined`): the commit may or
    /// may not have been applied. Never retry blindly.
    #[error("execution result undetermined")]
    ResultUndetermined,

    // ----- client-go typed errors, same meaning -----
    /// TiKV's deadlock detector chose this transaction as the victim (`ErrDeadlock`).
    #[error("deadlock (lock ts {}, retryable: {is_retryable})", deadlock.lock_ts)]
    Deadlock {
        /// The server's deadlock report.
        deadlock: Box<kvrpcpb::Deadlock>,
        /// Whether the statement may simply be retried.
        is_retryable: bool,
    },
    /// PD answered with an error header (`PDError`).
    #[error("pd error: {}", .0.message)]
    Pd(Box<pdpb::Error>),
    /// An insert found the key already present (`ErrKeyExist`).
    #[error("key already exists ({} bytes)", already_exist.key.len())]
    KeyExists {
        /// The server's report, with the key.
        already_exist: Box<kvrpcpb::AlreadyExist>,
        /// The value that was being written, if known (pipelined DML uses it in messages).
        value: Option<Vec<u8>>,
    },
    /// A write conflict (`ErrWriteConflict`).
    #[error(
        "write conflict (start ts {}, conflict ts {}, conflict commit ts {}, reason {:?})",
        .0.start_ts, .0.conflict_ts, .0.conflict_commit_ts, .0.reason()
    )]
    WriteConflict(Box<kvrpcpb::WriteConflict>),
    /// Local latches detected a conflict (`ErrWriteConflictInLatch`).
    #[error("write conflict in latch, start ts {start_ts}")]
    WriteConflictInLatch {
        /// The start ts of the transaction that lost.
        start_ts: u64,
    },
    /// TiKV asked the client to retry the transaction (`ErrRetryable`).
    #[error("retryable: {0}")]
    Retryable(String),
    /// The transaction buffer exceeded its size limit (`ErrTxnTooLarge`).
    #[error("txn too large, size: {size}")]
    TxnTooLarge {
        /// The buffer size that was reached, in bytes.
        size: u64,
    },
    /// A key exceeded the key size limit (`ErrKeyTooLarge`).
    #[error("key size too large, size: {size}")]
    KeyTooLarge {
        /// The key's size in bytes.
        size: u64,
    },
    /// A single entry exceeded the entry size limit (`ErrEntryTooLarge`).
    #[error("entry size too large, size: {size}, limit: {limit}")]
    EntryTooLarge {
        /// The limit in bytes.
        limit: u64,
        /// The entry's size in bytes.
        size: u64,
    },
    /// PD did not answer in time, or a cached safe point is stale (`ErrPDServerTimeout`).
    #[error("pd server timeout: {0}")]
    PdServerTimeout(String),
    /// The transaction's start ts fell below the txn safe point (`ErrTxnAbortedByGC`).
    #[error(
        "GC life time is shorter than transaction duration, transaction start ts is {start_ts}, txn safe point is {safe_point}"
    )]
    TxnAbortedByGc {
        /// The transaction's start ts.
        start_ts: u64,
        /// The txn safe point it fell below.
        safe_point: u64,
    },
    /// The per-store request limit was reached (`ErrTokenLimit`).
    #[error("store token is up to the limit, store id = {store_id}")]
    TokenLimit {
        /// The store whose limit was hit.
        store_id: u64,
    },
    /// A prewrite assertion failed (`ErrAssertionFailed`).
    #[error(
        "assertion failed (start ts {}, assertion {:?}, existing start ts {}, existing commit ts {})",
        .0.start_ts, .0.assertion(), .0.existing_start_ts, .0.existing_commit_ts
    )]
    AssertionFailed(Box<kvrpcpb::AssertionFailed>),
    /// `lock_only_if_exists` was set without `return_values`
    /// (`ErrLockOnlyIfExistsNoReturnValue`).
    #[error(
        "lock_only_if_exists is set for the lock context but return_values is not (start ts {start_ts}, for update ts {for_update_ts})"
    )]
    LockOnlyIfExistsNoReturnValue {
        /// The transaction's start ts.
        start_ts: u64,
        /// The lock request's for-update ts.
        for_update_ts: u64,
        /// One of the keys being locked.
        lock_key: Vec<u8>,
    },
    /// `lock_only_if_exists` was set before the transaction has a primary key
    /// (`ErrLockOnlyIfExistsNoPrimaryKey`).
    #[error(
        "lock_only_if_exists is set for the lock context but the transaction has no primary key (start ts {start_ts}, for update ts {for_update_ts})"
    )]
    LockOnlyIfExistsNoPrimaryKey {
        /// The transaction's start ts.
        start_ts: u64,
        /// The lock request's for-update ts.
        for_update_ts: u64,
        /// One of the keys being locked.
        lock_key: Vec<u8>,
    },
    /// TiKV aborted the transaction (`KeyError.abort`).
    #[error("tikv aborts txn: {0}")]
    TxnAborted(String),
    /// The commit ts is too large for TiKV (`KeyError.commit_ts_too_large`).
    #[error("commit ts {commit_ts} is too large")]
    CommitTsTooLarge {
        /// The commit ts TiKV refused.
        commit_ts: u64,
    },
    /// The transaction's status could not be found (`KeyError.txn_not_found`).
    #[error("txn {start_ts} not found")]
    TxnNotFound {
        /// The start ts of the missing transaction.
        start_ts: u64,
    },
    /// A key error this client does not map to a more specific variant; the server's
    /// message is kept whole.
    #[error("unexpected key error")]
    KeyError(Box<kvrpcpb::KeyError>),
    /// TiKV rejected the request with a message in the response's `error` field (raw
    /// commands, GC, delete range, ...); the message is kept whole.
    #[error("tikv error: {0}")]
    Storage(String),

    // ----- errors of the Rust request path -----
    /// A region error that reached the caller; the server's message is kept whole.
    #[error("region error: {}", region_error_label(.0))]
    RegionError(Box<errorpb::Error>),
    /// The server answered with a non-OK gRPC status.
    #[error("grpc status {:?}: {}", .0.code(), .0.message())]
    Grpc(Box<tonic::Status>),
    /// The request could not be delivered to `addr`, or the connection broke.
    #[error("transport error talking to {addr}: {message}")]
    Transport {
        /// The store or PD address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// One attempt did not get an answer before its deadline.
    #[error("request to {addr} timed out")]
    AttemptTimeout {
        /// The address the attempt was sent to (empty when unknown).
        addr: String,
    },
    /// The caller canceled the request (dropped its future or canceled its token).
    #[error("request canceled")]
    Canceled,
    /// A configuration field is invalid.
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig {
        /// The field's name, as it appears in the config struct.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The caller passed a value the client rejects before any server round trip.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A response did not match the request that was sent (wrong command, missing arm).
    #[error("invalid response: expected {expected}, got {got}")]
    InvalidResponse {
        /// What the client expected.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// Bytes from the server could not be decoded.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// PD reported a different cluster id than the one the client is bound to.
    #[error("mismatch cluster id: expected {expected}, got {got}")]
    MismatchClusterId {
        /// The cluster id the client learned first.
        expected: u64,
        /// The cluster id that was reported.
        got: u64,
    },
    /// A bug or an unexpected internal state.
    #[error("internal error: {0}")]
    Internal(String),

    // ----- resource control (PD's resource-manager client), TE-5 -----
    /// The request's resource group ran out of request units and the resource-control
    /// hook refused to send it (PD client's `ErrClientResourceGroupThrottled`). The send
    /// loop fails at once without retrying or touching the store (TE-5).
    #[error("exceeded resource group quota limitation: {0}")]
    ResourceGroupThrottled(String),
    /// The resource-group configuration could not be loaded (PD client's
    /// `ErrClientResourceGroupConfigUnavailable`); not retried by the send loop (TE-5).
    #[error("resource group config is unavailable: {0}")]
    ResourceGroupConfigUnavailable(String),
    /// Fetching a resource group's settings failed (PD client's `ErrClientGetResourceGroup`);
    /// not retried by the send loop (TE-5).
    #[error("get resource group {name} failed: {cause}")]
    GetResourceGroup {
        /// The resource group's name.
        name: String,
        /// Why the fetch failed.
        cause: String,
    },
}

/// A short label for a region error, following client-go's `regionErrorToLabel` order.
fn region_error_label(e: &errorpb::Error) -> &'static str {
    crate::classify::RegionErrorKind::of(e).label()
}

// ===== impl Error =====

impl Error {
    /// Creates an error from its detail.
    pub fn new(detail: ErrorDetail) -> Self {
        Error {
            inner: Box::new(Inner {
                detail,
                source: None,
            }),
        }
    }

    /// Attaches the underlying cause, returned by [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The precise description of what went wrong.
    pub fn detail(&self) -> &ErrorDetail {
        &self.inner.detail
    }

    /// Consumes the error and returns its detail (the source is dropped).
    pub fn into_detail(self) -> ErrorDetail {
        self.inner.detail
    }

    /// The coarse classification.
    pub fn kind(&self) -> ErrorKind {
        use ErrorDetail as D;
        match &self.inner.detail {
            D::BodyMissing | D::InvalidResponse { .. } | D::Malformed(_) => ErrorKind::Protocol,
            D::ShuttingDown | D::Canceled | D::QueryInterrupted { .. } => ErrorKind::Canceled,
            D::NotExist => ErrorKind::NotFound,
            D::CannotSetNilValue
            | D::KeyTooLarge { .. }
            | D::EntryTooLarge { .. }
            | D::InvalidArgument(_)
            | D::LockOnlyIfExistsNoReturnValue { .. }
            | D::LockOnlyIfExistsNoPrimaryKey { .. } => ErrorKind::InvalidArgument,
            D::InvalidTxn
            | D::TxnTooLarge { .. }
            | D::TxnAbortedByGc { .. }
            | D::WriteConflictInLatch { .. }
            | D::TokenLimit { .. } => ErrorKind::Txn,
            D::TiKVServerTimeout
            | D::TiFlashServerTimeout
            | D::TiKVStaleCommand
            | D::TiKVMaxTimestampNotSynced
            | D::ResolveLockTimeout
            | D::TiKVServerBusy
            | D::TiFlashServerBusy
            | D::TiKVDiskFull
            | D::CommitTsLag
            | D::IsWitness => ErrorKind::BackoffExhausted,
            D::RegionUnavailable
            | D::RegionDataNotReady
            | D::RegionNotInitialized
            | D::RegionRecoveryInProgress
            | D::RegionFlashbackInProgress
            | D::RegionFlashbackNotPrepared
            | D::RegionError(_) => ErrorKind::Region,
            D::LockWaitTimeout | D::AttemptTimeout { .. } => ErrorKind::Timeout,
            D::PdServerTimeout(_)
            | D::Pd(_)
            | D::MismatchClusterId { .. }
            | D::ResourceGroupThrottled(_)
            | D::ResourceGroupConfigUnavailable(_)
            | D::GetResourceGroup { .. } => ErrorKind::Pd,
            D::ResultUndetermined => ErrorKind::Undetermined,
            D::Deadlock { .. }
            | D::KeyExists { .. }
            | D::WriteConflict(_)
            | D::Retryable(_)
            | D::AssertionFailed(_)
            | D::TxnAborted(_)
            | D::CommitTsTooLarge { .. }
            | D::TxnNotFound { .. }
            | D::KeyError(_)
            | D::Storage(_)
            | D::LockAcquireFailAndNoWaitSet => ErrorKind::Key,
            D::Grpc(_) => ErrorKind::Grpc,
            D::Transport { .. } => ErrorKind::Transport,
            D::InvalidConfig { .. } => ErrorKind::Config,
            D::Unknown | D::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying the same operation again (a new attempt, or a new transaction for
    /// conflicts) can succeed without any change by the caller.
    ///
    /// True for transient conditions: region errors, transport failures, timeouts, busy or
    /// exhausted backoffs, gRPC `Unavailable`/`DeadlineExceeded`/`ResourceExhausted`/
    /// `Aborted`, write conflicts, retryable key errors and deadlocks marked retryable.
    /// Never true for [`is_undetermined`](Self::is_undetermined) errors.
    pub fn is_retryable(&self) -> bool {
        use ErrorDetail as D;
        match &self.inner.detail {
            D::ResultUndetermined => false,
            D::Deadlock { is_retryable, .. } => *is_retryable,
            D::WriteConflict(_) | D::Retryable(_) | D::WriteConflictInLatch { .. } => true,
            D::Grpc(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
            ),
            D::TokenLimit { .. } | D::PdServerTimeout(_) | D::LockWaitTimeout => true,
            _ => matches!(
                self.kind(),
                ErrorKind::Region
                    | ErrorKind::Transport
                    | ErrorKind::Timeout
                    | ErrorKind::BackoffExhausted
            ),
        }
    }

    /// Whether a deadline or timeout caused this error (attempt deadline, lock wait
    /// timeout, server or PD timeout, gRPC `DeadlineExceeded`).
    pub fn is_timeout(&self) -> bool {
        use ErrorDetail as D;
        match &self.inner.detail {
            D::AttemptTimeout { .. }
            | D::LockWaitTimeout
            | D::TiKVServerTimeout
            | D::TiFlashServerTimeout
            | D::ResolveLockTimeout
            | D::PdServerTimeout(_) => true,
            D::Grpc(s) => s.code() == tonic::Code::DeadlineExceeded,
            _ => false,
        }
    }

    /// Whether the outcome is unknown: a commit may or may not have been applied.
    /// Callers must find out (e.g. by reading the key) instead of retrying blindly.
    #[doc(alias = "IsErrorUndetermined")]
    pub fn is_undetermined(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::ResultUndetermined)
    }

    /// Whether the key was not found (`IsErrNotFound`).
    #[doc(alias = "IsErrNotFound")]
    pub fn is_not_found(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::NotExist)
    }

    /// Whether this is a write conflict (`IsErrWriteConflict`).
    #[doc(alias = "IsErrWriteConflict")]
    pub fn is_write_conflict(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::WriteConflict(_))
    }

    /// Whether an insert found the key present (`IsErrKeyExist`).
    #[doc(alias = "IsErrKeyExist")]
    pub fn is_key_exists(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::KeyExists { .. })
    }

    /// Whether the commit ts lagged behind the required one (`IsErrorCommitTSLag`).
    #[doc(alias = "IsErrorCommitTSLag")]
    pub fn is_commit_ts_lag(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::CommitTsLag)
    }

    /// Whether resource control refused or could not admit the request (throttled, group
    /// config unavailable, group fetch failed). The send loop never retries these (TE-5);
    /// the caller decides whether to wait for quota.
    pub fn is_resource_group_error(&self) -> bool {
        matches!(
            self.inner.detail,
            ErrorDetail::ResourceGroupThrottled(_)
                | ErrorDetail::ResourceGroupConfigUnavailable(_)
                | ErrorDetail::GetResourceGroup { .. }
        )
    }

    /// Whether this is a region error returned by TiKV.
    pub fn is_region_error(&self) -> bool {
        matches!(self.inner.detail, ErrorDetail::RegionError(_))
    }

    /// The region error TiKV returned, if this is one.
    pub fn region_error(&self) -> Option<&errorpb::Error> {
        match &self.inner.detail {
            ErrorDetail::RegionError(e) => Some(e),
            _ => None,
        }
    }

    /// The key error TiKV returned, if this error carries one unmapped.
    pub fn key_error(&self) -> Option<&kvrpcpb::KeyError> {
        match &self.inner.detail {
            ErrorDetail::KeyError(e) => Some(e),
            _ => None,
        }
    }

    /// The gRPC status the server answered with, if any.
    pub fn grpc_status(&self) -> Option<&tonic::Status> {
        match &self.inner.detail {
            ErrorDetail::Grpc(s) => Some(s),
            _ => None,
        }
    }

    /// Maps an error produced by tower middleware (or any boxed error) to an [`Error`].
    ///
    /// Walks the `source()` chain: an [`Error`] found in it is returned as is (its detail
    /// is cloned when it is not the outermost error), `tower::timeout::error::Elapsed`
    /// becomes [`ErrorDetail::AttemptTimeout`], a `tonic::Status` becomes
    /// [`ErrorDetail::Grpc`]; anything else is [`ErrorDetail::Internal`] with the original
    /// as source.
    pub fn from_boxed(err: BoxError) -> Error {
        let err = match err.downcast::<Error>() {
            Ok(e) => return *e,
            Err(err) => err,
        };
        let err = match err.downcast::<tonic::Status>() {
            Ok(s) => return ErrorDetail::Grpc(s).into(),
            Err(err) => err,
        };
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
        while let Some(e) = cur {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Error::new(ours.detail().clone());
            }
            if let Some(s) = e.downcast_ref::<tonic::Status>() {
                return ErrorDetail::Grpc(Box::new(s.clone())).into();
            }
            if e.is::<tower::timeout::error::Elapsed>() {
                return ErrorDetail::AttemptTimeout {
                    addr: String::new(),
                }
                .into();
            }
            cur = e.source();
        }
        let message = err.to_string();
        Error::new(ErrorDetail::Internal(message)).with_source(err)
    }
}

impl From<ErrorDetail> for Error {
    fn from(detail: ErrorDetail) -> Self {
        Error::new(detail)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        ErrorDetail::Grpc(Box::new(status)).into()
    }
}

impl From<errorpb::Error> for Error {
    fn from(e: errorpb::Error) -> Self {
        ErrorDetail::RegionError(Box::new(e)).into()
    }
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::new(ErrorDetail::Malformed(e.to_string())).with_source(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind())
            .field("detail", &self.inner.detail);
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.detail, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_pointer_sized() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<()>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn error_is_send_sync_static() {
        fn assert_traits<T: Send + Sync + 'static + std::error::Error>() {}
        assert_traits::<Error>();
    }

    #[test]
    fn kinds_and_helpers() {
        let e: Error = ErrorDetail::ResultUndetermined.into();
        assert!(e.is_undetermined());
        assert!(!e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Undetermined);

        let e: Error = ErrorDetail::NotExist.into();
        assert!(e.is_not_found());
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let e: Error = ErrorDetail::WriteConflict(Box::default()).into();
        assert!(e.is_write_conflict());
        assert!(e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Key);

        let e: Error = ErrorDetail::KeyExists {
            already_exist: Box::new(kvrpcpb::AlreadyExist { key: b"k".to_vec() }),
            value: None,
        }
        .into();
        assert!(e.is_key_exists());
        assert!(!e.is_retryable());

        let e: Error = ErrorDetail::CommitTsLag.into();
        assert!(e.is_commit_ts_lag());
        assert_eq!(e.kind(), ErrorKind::BackoffExhausted);

        let e: Error = ErrorDetail::TiKVServerTimeout.into();
        assert!(e.is_timeout());
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "tikv server timeout");

        let region = errorpb::Error {
            message: "nl".into(),
            not_leader: Some(errorpb::NotLeader {
                region_id: 7,
                leader: None,
            }),
            ..Default::default()
        };
        let e: Error = region.clone().into();
        assert!(e.is_region_error());
        assert_eq!(e.region_error(), Some(&region));
        assert_eq!(e.kind(), ErrorKind::Region);
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "region error: not_leader");

        let e: Error = tonic::Status::unavailable("down").into();
        assert_eq!(e.kind(), ErrorKind::Grpc);
        assert!(e.is_retryable());
        assert_eq!(
            e.grpc_status().map(|s| s.code()),
            Some(tonic::Code::Unavailable)
        );
        let e: Error = tonic::Status::deadline_exceeded("slow").into();
        assert!(e.is_timeout());
        let e: Error = tonic::Status::invalid_argument("bad").into();
        assert!(!e.is_retryable());

        let e: Error = ErrorDetail::KeyError(Box::default()).into();
        assert!(e.key_error().is_some());
        assert!(e.region_error().is_none());
        assert!(e.grpc_status().is_none());

        let e: Error = ErrorDetail::Deadlock {
            deadlock: Box::default(),
            is_retryable: true,
        }
        .into();
        assert!(e.is_retryable());
        let e: Error = ErrorDetail::Deadlock {
            deadlock: Box::default(),
            is_retryable: false,
        }
        .into();
        assert!(!e.is_retryable());
    }

    #[test]
    fn every_detail_has_a_kind_and_message() {
        let details = vec![
            ErrorDetail::BodyMissing,
            ErrorDetail::ShuttingDown,
            ErrorDetail::CannotSetNilValue,
            ErrorDetail::InvalidTxn,
            ErrorDetail::TiFlashServerTimeout,
            ErrorDetail::QueryInterrupted { signal: 1 },
            ErrorDetail::TiKVStaleCommand,
            ErrorDetail::TiKVMaxTimestampNotSynced,
            ErrorDetail::LockAcquireFailAndNoWaitSet,
            ErrorDetail::ResolveLockTimeout,
            ErrorDetail::LockWaitTimeout,
            ErrorDetail::TiKVServerBusy,
            ErrorDetail::TiFlashServerBusy,
            ErrorDetail::RegionUnavailable,
            ErrorDetail::RegionDataNotReady,
            ErrorDetail::RegionNotInitialized,
            ErrorDetail::TiKVDiskFull,
            ErrorDetail::RegionRecoveryInProgress,
            ErrorDetail::RegionFlashbackInProgress,
            ErrorDetail::RegionFlashbackNotPrepared,
            ErrorDetail::IsWitness,
            ErrorDetail::Unknown,
            ErrorDetail::Pd(Box::new(pdpb::Error {
                r#type: 0,
                message: "boom".into(),
            })),
            ErrorDetail::WriteConflictInLatch { start_ts: 1 },
            ErrorDetail::Retryable("again".into()),
            ErrorDetail::TxnTooLarge { size: 1 },
            ErrorDetail::KeyTooLarge { size: 1 },
            ErrorDetail::EntryTooLarge { limit: 1, size: 2 },
            ErrorDetail::PdServerTimeout("slow".into()),
            ErrorDetail::TxnAbortedByGc {
                start_ts: 1,
                safe_point: 2,
            },
            ErrorDetail::TokenLimit { store_id: 1 },
            ErrorDetail::AssertionFailed(Box::default()),
            ErrorDetail::LockOnlyIfExistsNoReturnValue {
                start_ts: 1,
                for_update_ts: 2,
                lock_key: vec![],
            },
            ErrorDetail::LockOnlyIfExistsNoPrimaryKey {
                start_ts: 1,
                for_update_ts: 2,
                lock_key: vec![],
            },
            ErrorDetail::TxnAborted("x".into()),
            ErrorDetail::CommitTsTooLarge { commit_ts: 1 },
            ErrorDetail::TxnNotFound { start_ts: 1 },
            ErrorDetail::Transport {
                addr: "a".into(),
                message: "m".into(),
            },
            ErrorDetail::AttemptTimeout { addr: "a".into() },
            ErrorDetail::Canceled,
            ErrorDetail::InvalidConfig {
                field: "f",
                reason: "r".into(),
            },
            ErrorDetail::InvalidArgument("a".into()),
            ErrorDetail::InvalidResponse {
                expected: "Get",
                got: "Scan".into(),
            },
            ErrorDetail::Malformed("m".into()),
            ErrorDetail::MismatchClusterId {
                expected: 1,
                got: 2,
            },
            ErrorDetail::Internal("i".into()),
            ErrorDetail::ResourceGroupThrottled("wait 1s".into()),
            ErrorDetail::ResourceGroupConfigUnavailable("no config".into()),
            ErrorDetail::GetResourceGroup {
                name: "rg".into(),
                cause: "pd down".into(),
            },
        ];
        for d in details {
            let e = Error::new(d);
            assert!(!e.to_string().is_empty());
            let _ = e.kind();
            let _ = e.is_retryable();
            let _ = e.is_timeout();
            assert!(!format!("{e:?}").is_empty());
        }
    }

    #[test]
    fn resource_group_errors_are_pd_errors_and_not_retryable() {
        for d in [
            ErrorDetail::ResourceGroupThrottled("wait 1s".into()),
            ErrorDetail::ResourceGroupConfigUnavailable("x".into()),
            ErrorDetail::GetResourceGroup {
                name: "rg".into(),
                cause: "c".into(),
            },
        ] {
            let e = Error::new(d);
            assert!(e.is_resource_group_error());
            assert_eq!(e.kind(), ErrorKind::Pd);
            assert!(!e.is_retryable());
            assert!(!e.is_timeout());
        }
        let e: Error = ErrorDetail::ResourceGroupThrottled("wait 1s".into()).into();
        assert_eq!(
            e.to_string(),
            "exceeded resource group quota limitation: wait 1s"
        );
        assert!(!Error::new(ErrorDetail::Unknown).is_resource_group_error());
    }

    #[test]
    fn from_boxed_maps_known_errors() {
        let e = Error::from_boxed(Box::new(Error::new(ErrorDetail::NotExist)));
        assert!(e.is_not_found());

        let e = Error::from_boxed(Box::new(tonic::Status::unavailable("x")));
        assert_eq!(e.kind(), ErrorKind::Grpc);

        let e = Error::from_boxed(Box::new(tower::timeout::error::Elapsed::new()));
        assert_eq!(e.kind(), ErrorKind::Timeout);

        #[derive(Debug)]
        struct Wrapper(Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapper")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::from_boxed(Box::new(Wrapper(ErrorDetail::TiKVDiskFull.into())));
        assert!(matches!(e.detail(), ErrorDetail::TiKVDiskFull));

        let e = Error::from_boxed("plain".into());
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn decode_error_is_malformed() {
        use prost::Message;
        let err = kvrpcpb::GetResponse::decode(&[0xff, 0xff, 0xff][..]).unwrap_err();
        let e: Error = err.into();
        assert_eq!(e.kind(), ErrorKind::Protocol);
    }
}
