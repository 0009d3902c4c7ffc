//! Engine-level transaction errors and their `kvrpcpb::KeyError` form (MC-2.28.1).
//!
//! Mirrors `client-go: internal/mockstore/mocktikv/errors.go` and `rpc.go`
//! `convertToKeyError`; the TiKV-only kinds (`PrimaryMismatch`, `TxnLockNotFound`,
//! `SelfRolledBack` conflicts) follow TiKV `extract_key_error`.

use tikv_proto::kvrpcpb::{self, write_conflict::Reason};

/// The "txn lock not found" text put in `retryable` for older clients (MC-2.9.1).
pub(crate) const TXN_LOCK_NOT_FOUND: &str = "txn lock not found";
/// Abort text for a pessimistic prewrite without its lock (MC-2.8.5).
pub(crate) const PESSIMISTIC_LOCK_NOT_FOUND: &str = "pessimistic lock not found";
/// Abort text for an op that does not match the transaction's own lock.
pub(crate) const LOCK_TYPE_NOT_MATCH: &str = "lock type not match";
/// Abort text for a commit/resolve ts not above the start ts (MC-2.9.1, MC-2.18.2).
pub(crate) const INVALID_TXN_TSO: &str = "invalid txn tso";

/// One failure of a transactional command on a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TxnError {
    /// Another transaction's lock blocks the key.
    Locked(kvrpcpb::LockInfo),
    /// A write conflict.
    Conflict(kvrpcpb::WriteConflict),
    /// The key exists but must not.
    AlreadyExist(Vec<u8>),
    /// A deadlock was detected.
    Deadlock(kvrpcpb::Deadlock),
    /// The commit ts is below the lock's min commit ts.
    CommitTsExpired(kvrpcpb::CommitTsExpired),
    /// The primary lock is missing and the transaction has no record.
    TxnNotFound { start_ts: u64, primary_key: Vec<u8> },
    /// Commit found neither a lock nor a commit record.
    TxnLockNotFound(Vec<u8>),
    /// An assertion failed.
    Assertion(kvrpcpb::AssertionFailed),
    /// CheckTxnStatus was sent to a key that is not the lock's primary.
    PrimaryMismatch(kvrpcpb::LockInfo),
    /// Anything else: a human-readable abort.
    Abort(String),
}

impl TxnError {
    /// An abort error.
    pub(crate) fn abort(msg: impl Into<String>) -> TxnError {
        TxnError::Abort(msg.into())
    }

    /// A write conflict with all fields.
    pub(crate) fn conflict(
        start_ts: u64,
        conflict_ts: u64,
        conflict_commit_ts: u64,
        key: &[u8],
        primary: &[u8],
        reason: Reason,
    ) -> TxnError {
        TxnError::Conflict(kvrpcpb::WriteConflict {
            start_ts,
            conflict_ts,
            key: key.to_vec(),
            primary: primary.to_vec(),
            conflict_commit_ts,
            reason: reason as i32,
        })
    }

    /// Whether this is a `KeyIsLocked`.
    pub(crate) fn is_locked(&self) -> bool {
        matches!(self, TxnError::Locked(_))
    }

    /// Whether this is an assertion failure.
    pub(crate) fn is_assertion(&self) -> bool {
        matches!(self, TxnError::Assertion(_))
    }

    /// The `KeyError` form (MC-2.28.1).
    pub(crate) fn into_key_error(self) -> kvrpcpb::KeyError {
        let mut e = kvrpcpb::KeyError::default();
        match self {
            TxnError::Locked(l) => e.locked = Some(l),
            TxnError::Conflict(c) => e.conflict = Some(c),
            TxnError::AlreadyExist(key) => e.already_exist = Some(kvrpcpb::AlreadyExist { key }),
            TxnError::Deadlock(d) => e.deadlock = Some(d),
            TxnError::CommitTsExpired(c) => e.commit_ts_expired = Some(c),
            TxnError::TxnNotFound {
                start_ts,
                primary_key,
            } => {
                e.txn_not_found = Some(kvrpcpb::TxnNotFound {
                    start_ts,
                    primary_key,
                })
            }
            TxnError::TxnLockNotFound(key) => {
                e.txn_lock_not_found = Some(kvrpcpb::TxnLockNotFound { key });
                e.retryable = TXN_LOCK_NOT_FOUND.to_string();
            }
            TxnError::Assertion(a) => e.assertion_failed = Some(a),
            TxnError::PrimaryMismatch(l) => {
                e.primary_mismatch = Some(kvrpcpb::PrimaryMismatch { lock_info: Some(l) })
            }
            TxnError::Abort(msg) => e.abort = msg,
        }
        e
    }
}

/// MC-2.8.2: from per-mutation failures, all `KeyIsLocked` errors when every failure is one;
/// otherwise the first non-lock, non-assertion failure, else the first assertion failure.
pub(crate) fn select_errors(errs: Vec<TxnError>) -> Vec<kvrpcpb::KeyError> {
    if errs.is_empty() {
        return Vec::new();
    }
    if errs.iter().all(TxnError::is_locked) {
        return errs.into_iter().map(TxnError::into_key_error).collect();
    }
    let pick = errs
        .iter()
        .position(|e| !e.is_locked() && !e.is_assertion())
        .or_else(|| errs.iter().position(TxnError::is_assertion))
        .unwrap_or(0);
    errs.into_iter()
        .nth(pick)
        .map(TxnError::into_key_error)
        .into_iter()
        .collect()
}
