//! The one place that decides what a response or an error means.
//!
//! Layers never `match` on `errorpb::Error` or `kvrpcpb::KeyError` themselves; they ask this
//! module. Keeping the interpretation here (tower-http's `classify` idea) means the retry
//! layer, the shard layer, replica feedback and metrics all agree on what "not leader" or
//! "write conflict" is.
//!
//! - [`RegionErrorKind`] names a region error, in client-go's precedence order
//!   (`regionErrorToLabel` in `internal/locate/region_request.go`); its
//!   [`label`](RegionErrorKind::label) is the metric label client-go uses.
//! - [`extract_key_error`] maps a `KeyError` to a typed [`Error`] (client-go's
//!   `ExtractKeyErr` in `error/error.go`).
//! - [`debug_info_json`] renders a key error's MVCC debug info for logs
//!   (`ExtractDebugInfoStrFromKeyErr`).
//! - [`ResponseClass`] says, for any response, whether it is a success, carries a region
//!   error, or carries key errors.

use tikv_proto::{errorpb, kvrpcpb};

use crate::error::{Error, ErrorDetail};
use crate::request::RpcResponse;

/// The kind of a region error, decided by the first field set in client-go's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegionErrorKind {
    /// `not_leader`: the peer is not the leader; may carry the new leader.
    NotLeader,
    /// `region_not_found`: the store has no such region.
    RegionNotFound,
    /// `key_not_in_region`: a key of the request is outside the region.
    KeyNotInRegion,
    /// `epoch_not_match`: the region's epoch changed (split, merge, conf change).
    EpochNotMatch,
    /// `server_is_busy` whose reason says a deadline was exceeded.
    ServerIsBusyDeadlineExceeded,
    /// `server_is_busy`: the store is overloaded.
    ServerIsBusy,
    /// `stale_command`: the raft command was stale.
    StaleCommand,
    /// `store_not_match`: the request reached the wrong store.
    StoreNotMatch,
    /// `raft_entry_too_large`: the request is too large for one raft entry.
    RaftEntryTooLarge,
    /// `max_timestamp_not_synced`: the store's max ts is not synced yet.
    MaxTimestampNotSynced,
    /// `read_index_not_ready`: a follower cannot serve read index yet.
    ReadIndexNotReady,
    /// `proposal_in_merging_mode`: the region is merging.
    ProposalInMergingMode,
    /// `data_is_not_ready`: a stale read's safe ts is below the read ts.
    DataIsNotReady,
    /// `region_not_initialized`: the peer is not initialized.
    RegionNotInitialized,
    /// `disk_full`: the store's disk is full.
    DiskFull,
    /// `RecoveryInProgress`: online unsafe recovery is running.
    RecoveryInProgress,
    /// `FlashbackInProgress`: a flashback is running.
    FlashbackInProgress,
    /// `FlashbackNotPrepared`: the region is not prepared for flashback.
    FlashbackNotPrepared,
    /// `is_witness`: the peer is a witness.
    IsWitness,
    /// The message says "Deadline is exceeded" (TiKV's deadline check).
    DeadlineExceeded,
    /// `mismatch_peer_id`: the peer id in the request does not match the store's.
    MismatchPeerId,
    /// `bucket_version_not_match`: the bucket version is stale.
    BucketVersionNotMatch,
    /// The message says "invalid max_ts update".
    InvalidMaxTsUpdate,
    /// `undetermined_result`: the write may or may not have been applied.
    UndeterminedResult,
    /// None of the known fields is set.
    Unknown,
}

impl RegionErrorKind {
    /// Classifies a region error; the first matching field wins, in client-go's order.
    pub fn of(e: &errorpb::Error) -> RegionErrorKind {
        use RegionErrorKind as K;
        if e.not_leader.is_some() {
            K::NotLeader
        } else if e.region_not_found.is_some() {
            K::RegionNotFound
        } else if e.key_not_in_region.is_some() {
            K::KeyNotInRegion
        } else if e.epoch_not_match.is_some() {
            K::EpochNotMatch
        } else if let Some(busy) = &e.server_is_busy {
            if busy.reason.contains("deadline is exceeded") {
                K::ServerIsBusyDeadlineExceeded
            } else {
                K::ServerIsBusy
            }
        } else if e.stale_command.is_some() {
            K::StaleCommand
        } else if e.store_not_match.is_some() {
            K::StoreNotMatch
        } else if e.raft_entry_too_large.is_some() {
            K::RaftEntryTooLarge
        } else if e.max_timestamp_not_synced.is_some() {
            K::MaxTimestampNotSynced
        } else if e.read_index_not_ready.is_some() {
            K::ReadIndexNotReady
        } else if e.proposal_in_merging_mode.is_some() {
            K::ProposalInMergingMode
        } else if e.data_is_not_ready.is_some() {
            K::DataIsNotReady
        } else if e.region_not_initialized.is_some() {
            K::RegionNotInitialized
        } else if e.disk_full.is_some() {
            K::DiskFull
        } else if e.recovery_in_progress.is_some() {
            K::RecoveryInProgress
        } else if e.flashback_in_progress.is_some() {
            K::FlashbackInProgress
        } else if e.flashback_not_prepared.is_some() {
            K::FlashbackNotPrepared
        } else if e.is_witness.is_some() {
            K::IsWitness
        } else if e.message.contains("Deadline is exceeded") {
            K::DeadlineExceeded
        } else if e.mismatch_peer_id.is_some() {
            K::MismatchPeerId
        } else if e.bucket_version_not_match.is_some() {
            K::BucketVersionNotMatch
        } else if e.message.contains("invalid max_ts update") {
            K::InvalidMaxTsUpdate
        } else if e.undetermined_result.is_some() {
            K::UndeterminedResult
        } else {
            K::Unknown
        }
    }

    /// The metric label client-go uses for this kind (`regionErrorToLabel`).
    pub fn label(self) -> &'static str {
        use RegionErrorKind as K;
        match self {
            K::NotLeader => "not_leader",
            K::RegionNotFound => "region_not_found",
            K::KeyNotInRegion => "key_not_in_region",
            K::EpochNotMatch => "epoch_not_match",
            K::ServerIsBusyDeadlineExceeded | K::DeadlineExceeded => "deadline_exceeded",
            K::ServerIsBusy => "server_is_busy",
            K::StaleCommand => "stale_command",
            K::StoreNotMatch => "store_not_match",
            K::RaftEntryTooLarge => "raft_entry_too_large",
            K::MaxTimestampNotSynced => "max_timestamp_not_synced",
            K::ReadIndexNotReady => "read_index_not_ready",
            K::ProposalInMergingMode => "proposal_in_merging_mode",
            K::DataIsNotReady => "data_is_not_ready",
            K::RegionNotInitialized => "region_not_initialized",
            K::DiskFull => "disk_full",
            K::RecoveryInProgress => "recovery_in_progress",
            K::FlashbackInProgress => "flashback_in_progress",
            K::FlashbackNotPrepared => "flashback_not_prepared",
            K::IsWitness => "peer_is_witness",
            K::MismatchPeerId => "mismatch_peer_id",
            K::BucketVersionNotMatch => "bucket_version_not_match",
            K::InvalidMaxTsUpdate => "invalid_max_ts_update",
            K::UndeterminedResult => "undetermined_result",
            K::Unknown => "unknown",
        }
    }
}

/// Whether a region error is the pseudo error the client synthesizes when no replica can
/// be chosen: an `EpochNotMatch` with no current regions (client-go's
/// `retry.IsFakeRegionError`). Such an error says "reload the region", nothing more.
#[doc(alias = "IsFakeRegionError")]
pub fn is_fake_region_error(e: &errorpb::Error) -> bool {
    e.epoch_not_match
        .as_ref()
        .is_some_and(|m| m.current_regions.is_empty())
}

/// Maps a key error to a typed [`Error`], like client-go's `ExtractKeyErr`.
///
/// The checks run in client-go's order: conflict, retryable, assertion failed, abort,
/// commit ts too large, txn not found. Key errors outside that list (a lock, an
/// already-exists, a deadlock, ...) are handled by their callers first; here they become
/// [`ErrorDetail::KeyError`] with the server's message kept whole. When `redact` is true the
/// key bytes of the conflict/assertion payloads are replaced by `?` before they are stored,
/// like client-go's `RedactKeyErrIfNecessary`.
#[doc(alias = "ExtractKeyErr")]
pub fn extract_key_error(mut key_err: kvrpcpb::KeyError, redact: bool) -> Error {
    if redact {
        redact_key_error(&mut key_err);
    }
    if let Some(conflict) = key_err.conflict.take() {
        return ErrorDetail::WriteConflict(Box::new(conflict)).into();
    }
    if !key_err.retryable.is_empty() {
        return ErrorDetail::Retryable(key_err.retryable).into();
    }
    if let Some(af) = key_err.assertion_failed.take() {
        return ErrorDetail::AssertionFailed(Box::new(af)).into();
    }
    if !key_err.abort.is_empty() {
        return ErrorDetail::TxnAborted(key_err.abort).into();
    }
    if let Some(c) = &key_err.commit_ts_too_large {
        return ErrorDetail::CommitTsTooLarge {
            commit_ts: c.commit_ts,
        }
        .into();
    }
    if let Some(t) = &key_err.txn_not_found {
        return ErrorDetail::TxnNotFound {
            start_ts: t.start_ts,
        }
        .into();
    }
    ErrorDetail::KeyError(Box::new(key_err)).into()
}

/// The marker that replaces redacted key and value bytes (client-go's redaction marker).
const REDACT_MARKER: &[u8] = b"?";

/// Replaces user keys and values inside a key error with the redaction marker.
fn redact_key_error(e: &mut kvrpcpb::KeyError) {
    if let Some(c) = &mut e.conflict {
        c.key = REDACT_MARKER.to_vec();
        c.primary = REDACT_MARKER.to_vec();
    }
    if let Some(a) = &mut e.already_exist {
        a.key = REDACT_MARKER.to_vec();
    }
    if let Some(d) = &mut e.deadlock {
        d.lock_key = REDACT_MARKER.to_vec();
        d.deadlock_key = REDACT_MARKER.to_vec();
    }
    if let Some(a) = &mut e.assertion_failed {
        a.key = REDACT_MARKER.to_vec();
    }
    if let Some(l) = &mut e.locked {
        l.key = REDACT_MARKER.to_vec();
        l.primary_lock = REDACT_MARKER.to_vec();
        for s in &mut l.secondaries {
            *s = REDACT_MARKER.to_vec();
        }
    }
    if let Some(t) = &mut e.txn_not_found {
        t.primary_key = REDACT_MARKER.to_vec();
    }
    if let Some(t) = &mut e.txn_lock_not_found {
        t.key = REDACT_MARKER.to_vec();
    }
}

/// Renders a key error's MVCC debug info as JSON for logs, like client-go's
/// `ExtractDebugInfoStrFromKeyErr`: empty when there is none, bytes as standard base64,
/// zero-valued fields left out, fields in protobuf order. With `redact`, every key and
/// value byte field is replaced by the redaction marker.
#[doc(alias = "ExtractDebugInfoStrFromKeyErr")]
pub fn debug_info_json(key_err: &kvrpcpb::KeyError, redact: bool) -> String {
    let Some(info) = &key_err.debug_info else {
        return String::new();
    };
    let bytes = |b: &[u8]| {
        if redact {
            base64(REDACT_MARKER)
        } else {
            base64(b)
        }
    };
    let mut j = Json::default();
    j.open('{');
    if !info.mvcc_info.is_empty() {
        j.key("mvcc_info");
        j.open('[');
        for m in &info.mvcc_info {
            j.item();
            j.open('{');
            if !m.key.is_empty() {
                j.key("key");
                j.string(&bytes(&m.key));
            }
            if let Some(mvcc) = &m.mvcc {
                j.key("mvcc");
                j.open('{');
                if let Some(l) = &mvcc.lock {
                    j.key("lock");
                    j.open('{');
                    j.num("type", l.r#type as i64 as u64);
                    j.num("start_ts", l.start_ts);
                    j.bytes("primary", &l.primary, &bytes);
                    j.bytes("short_value", &l.short_value, &bytes);
                    j.num("ttl", l.ttl);
                    j.num("for_update_ts", l.for_update_ts);
                    j.num("txn_size", l.txn_size);
                    if l.use_async_commit {
                        j.key("use_async_commit");
                        j.raw("true");
                    }
                    if !l.secondaries.is_empty() {
                        j.key("secondaries");
                        j.open('[');
                        for s in &l.secondaries {
                            j.item();
                            j.string(&bytes(s));
                        }
                        j.close(']');
                    }
                    if !l.rollback_ts.is_empty() {
                        j.key("rollback_ts");
                        j.open('[');
                        for ts in &l.rollback_ts {
                            j.item();
                            j.raw(&ts.to_string());
                        }
                        j.close(']');
                    }
                    j.num("last_change_ts", l.last_change_ts);
                    j.num("versions_to_last_change", l.versions_to_last_change);
                    j.close('}');
                }
                if !mvcc.writes.is_empty() {
                    j.key("writes");
                    j.open('[');
                    for w in &mvcc.writes {
                        j.item();
                        j.open('{');
                        j.num("type", w.r#type as i64 as u64);
                        j.num("start_ts", w.start_ts);
                        j.num("commit_ts", w.commit_ts);
                        j.bytes("short_value", &w.short_value, &bytes);
                        if w.has_overlapped_rollback {
                            j.key("has_overlapped_rollback");
                            j.raw("true");
                        }
                        if w.has_gc_fence {
                            j.key("has_gc_fence");
                            j.raw("true");
                        }
                        j.num("gc_fence", w.gc_fence);
                        j.num("last_change_ts", w.last_change_ts);
                        j.num("versions_to_last_change", w.versions_to_last_change);
                        j.close('}');
                    }
                    j.close(']');
                }
                if !mvcc.values.is_empty() {
                    j.key("values");
                    j.open('[');
                    for v in &mvcc.values {
                        j.item();
                        j.open('{');
                        j.num("start_ts", v.start_ts);
                        j.bytes("value", &v.value, &bytes);
                        j.close('}');
                    }
                    j.close(']');
                }
                j.close('}');
            }
            j.close('}');
        }
        j.close(']');
    }
    j.close('}');
    j.out
}

/// A minimal JSON writer for [`debug_info_json`]; it tracks whether a separator is due.
#[derive(Default)]
struct Json {
    out: String,
    need_comma: bool,
}

impl Json {
    fn open(&mut self, c: char) {
        self.out.push(c);
        self.need_comma = false;
    }
    fn close(&mut self, c: char) {
        self.out.push(c);
        self.need_comma = true;
    }
    fn sep(&mut self) {
        if self.need_comma {
            self.out.push(',');
        }
        self.need_comma = false;
    }
    fn item(&mut self) {
        self.sep();
    }
    fn key(&mut self, k: &str) {
        self.sep();
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }
    fn raw(&mut self, v: &str) {
        self.out.push_str(v);
        self.need_comma = true;
    }
    fn string(&mut self, s: &str) {
        // Only base64 text reaches here, which needs no escaping.
        self.out.push('"');
        self.out.push_str(s);
        self.out.push('"');
        self.need_comma = true;
    }
    fn num(&mut self, k: &str, v: u64) {
        if v != 0 {
            self.key(k);
            self.raw(&v.to_string());
        }
    }
    fn bytes(&mut self, k: &str, v: &[u8], enc: &dyn Fn(&[u8]) -> String) {
        if !v.is_empty() {
            self.key(k);
            self.string(&enc(v));
        }
    }
}

/// Standard base64 with padding (RFC 4648), as Go's `encoding/json` writes `[]byte`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sym = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(0) } else { '=' });
    }
    out
}

/// What a response means, before any layer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseClass {
    /// No region error and no key error.
    Ok,
    /// The response carries a region error of this kind.
    RegionError(RegionErrorKind),
    /// The response carries at least one key error (and no region error).
    KeyError,
}

impl ResponseClass {
    /// Classifies a response: a region error wins over key errors.
    pub fn of(resp: &RpcResponse) -> ResponseClass {
        if let Some(e) = resp.region_error() {
            return ResponseClass::RegionError(RegionErrorKind::of(e));
        }
        if resp.has_key_error() {
            return ResponseClass::KeyError;
        }
        ResponseClass::Ok
    }

    /// The label used by metrics for this class (`ok`, `key_error`, or the region error's
    /// label).
    pub fn label(self) -> &'static str {
        match self {
            ResponseClass::Ok => "ok",
            ResponseClass::KeyError => "key_error",
            ResponseClass::RegionError(k) => k.label(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn region_error_precedence_and_labels() {
        let mut e = errorpb::Error {
            not_leader: Some(Default::default()),
            epoch_not_match: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(RegionErrorKind::of(&e), RegionErrorKind::NotLeader);
        e.not_leader = None;
        assert_eq!(RegionErrorKind::of(&e), RegionErrorKind::EpochNotMatch);

        let cases: Vec<(errorpb::Error, &str)> = vec![
            (
                errorpb::Error {
                    region_not_found: Some(Default::default()),
                    ..Default::default()
                },
                "region_not_found",
            ),
            (
                errorpb::Error {
                    key_not_in_region: Some(Default::default()),
                    ..Default::default()
                },
                "key_not_in_region",
            ),
            (
                errorpb::Error {
                    server_is_busy: Some(errorpb::ServerIsBusy {
                        reason: "deadline is exceeded".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "deadline_exceeded",
            ),
            (
                errorpb::Error {
                    server_is_busy: Some(Default::default()),
                    ..Default::default()
                },
                "server_is_busy",
            ),
            (
                errorpb::Error {
                    stale_command: Some(Default::default()),
                    ..Default::default()
                },
                "stale_command",
            ),
            (
                errorpb::Error {
                    store_not_match: Some(Default::default()),
                    ..Default::default()
                },
                "store_not_match",
            ),
            (
                errorpb::Error {
                    raft_entry_too_large: Some(Default::default()),
                    ..Default::default()
                },
                "raft_entry_too_large",
            ),
            (
                errorpb::Error {
                    max_timestamp_not_synced: Some(Default::default()),
                    ..Default::default()
                },
                "max_timestamp_not_synced",
            ),
            (
                errorpb::Error {
                    read_index_not_ready: Some(Default::default()),
                    ..Default::default()
                },
                "read_index_not_ready",
            ),
            (
                errorpb::Error {
                    proposal_in_merging_mode: Some(Default::default()),
                    ..Default::default()
                },
                "proposal_in_merging_mode",
            ),
            (
                errorpb::Error {
                    data_is_not_ready: Some(Default::default()),
                    ..Default::default()
                },
                "data_is_not_ready",
            ),
            (
                errorpb::Error {
                    region_not_initialized: Some(Default::default()),
                    ..Default::default()
                },
                "region_not_initialized",
            ),
            (
                errorpb::Error {
                    disk_full: Some(Default::default()),
                    ..Default::default()
                },
                "disk_full",
            ),
            (
                errorpb::Error {
                    recovery_in_progress: Some(Default::default()),
                    ..Default::default()
                },
                "recovery_in_progress",
            ),
            (
                errorpb::Error {
                    flashback_in_progress: Some(Default::default()),
                    ..Default::default()
                },
                "flashback_in_progress",
            ),
            (
                errorpb::Error {
                    flashback_not_prepared: Some(Default::default()),
                    ..Default::default()
                },
                "flashback_not_prepared",
            ),
            (
                errorpb::Error {
                    is_witness: Some(Default::default()),
                    ..Default::default()
                },
                "peer_is_witness",
            ),
            (
                errorpb::Error {
                    message: "Deadline is exceeded".into(),
                    ..Default::default()
                },
                "deadline_exceeded",
            ),
            (
                errorpb::Error {
                    mismatch_peer_id: Some(Default::default()),
                    ..Default::default()
                },
                "mismatch_peer_id",
            ),
            (
                errorpb::Error {
                    bucket_version_not_match: Some(Default::default()),
                    ..Default::default()
                },
                "bucket_version_not_match",
            ),
            (
                errorpb::Error {
                    message: "invalid max_ts update".into(),
                    ..Default::default()
                },
                "invalid_max_ts_update",
            ),
            (
                errorpb::Error {
                    undetermined_result: Some(Default::default()),
                    ..Default::default()
                },
                "undetermined_result",
            ),
            (errorpb::Error::default(), "unknown"),
        ];
        for (e, label) in cases {
            assert_eq!(RegionErrorKind::of(&e).label(), label, "{e:?}");
        }
    }

    #[test]
    fn fake_region_error() {
        let fake = errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![],
            }),
            ..Default::default()
        };
        assert!(is_fake_region_error(&fake));
        let real = errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![Default::default()],
            }),
            ..Default::default()
        };
        assert!(!is_fake_region_error(&real));
        assert!(!is_fake_region_error(&errorpb::Error::default()));
    }

    #[test]
    fn key_error_extraction_order() {
        let e = extract_key_error(
            kvrpcpb::KeyError {
                conflict: Some(kvrpcpb::WriteConflict {
                    key: b"k".to_vec(),
                    ..Default::default()
                }),
                retryable: "r".into(),
                ..Default::default()
            },
            false,
        );
        match e.detail() {
            ErrorDetail::WriteConflict(c) => assert_eq!(c.key, b"k"),
            d => panic!("{d:?}"),
        }
        let e = extract_key_error(
            kvrpcpb::KeyError {
                conflict: Some(kvrpcpb::WriteConflict {
                    key: b"k".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            true,
        );
        match e.detail() {
            ErrorDetail::WriteConflict(c) => assert_eq!(c.key, b"?"),
            d => panic!("{d:?}"),
        }
        let e = extract_key_error(
            kvrpcpb::KeyError {
                retryable: "again".into(),
                ..Default::default()
            },
            false,
        );
        assert!(matches!(e.detail(), ErrorDetail::Retryable(s) if s == "again"));
        let e = extract_key_error(
            kvrpcpb::KeyError {
                assertion_failed: Some(Default::default()),
                abort: "x".into(),
                ..Default::default()
            },
            false,
        );
        assert!(matches!(e.detail(), ErrorDetail::AssertionFailed(_)));
        let e = extract_key_error(
            kvrpcpb::KeyError {
                abort: "x".into(),
                ..Default::default()
            },
            false,
        );
        assert_eq!(e.to_string(), "tikv aborts txn: x");
        let e = extract_key_error(
            kvrpcpb::KeyError {
                commit_ts_too_large: Some(kvrpcpb::CommitTsTooLarge { commit_ts: 9 }),
                ..Default::default()
            },
            false,
        );
        assert_eq!(e.to_string(), "commit ts 9 is too large");
        let e = extract_key_error(
            kvrpcpb::KeyError {
                txn_not_found: Some(kvrpcpb::TxnNotFound {
                    start_ts: 5,
                    primary_key: vec![],
                }),
                ..Default::default()
            },
            false,
        );
        assert_eq!(e.to_string(), "txn 5 not found");
        let e = extract_key_error(
            kvrpcpb::KeyError {
                locked: Some(kvrpcpb::LockInfo {
                    key: b"secret".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            true,
        );
        assert_eq!(e.kind(), ErrorKind::Key);
        assert_eq!(
            e.key_error()
                .and_then(|k| k.locked.as_ref())
                .map(|l| l.key.clone()),
            Some(b"?".to_vec())
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    // client-go: T-CONFIG-017 TestExtractDebugInfoStrFromKeyErr
    #[test]
    fn extract_debug_info_str_from_key_err() {
        let no_info = kvrpcpb::KeyError {
            txn_lock_not_found: Some(kvrpcpb::TxnLockNotFound {
                key: b"byte".to_vec(),
            }),
            ..Default::default()
        };
        assert_eq!(debug_info_json(&no_info, false), "");

        let debug_info = kvrpcpb::DebugInfo {
            mvcc_info: vec![kvrpcpb::MvccDebugInfo {
                key: b"byte".to_vec(),
                mvcc: Some(kvrpcpb::MvccInfo {
                    lock: Some(kvrpcpb::MvccLock {
                        r#type: kvrpcpb::Op::Del as i32,
                        start_ts: 128,
                        primary: b"k1".to_vec(),
                        secondaries: vec![b"k1".to_vec(), b"k2".to_vec()],
                        short_value: b"v1".to_vec(),
                        ..Default::default()
                    }),
                    writes: vec![kvrpcpb::MvccWrite {
                        r#type: kvrpcpb::Op::Insert as i32,
                        start_ts: 64,
                        commit_ts: 86,
                        short_value: vec![1, 2, 3, 4, 5, 6],
                        ..Default::default()
                    }],
                    values: vec![kvrpcpb::MvccValue {
                        start_ts: 64,
                        value: vec![0x11, 0x12],
                    }],
                }),
            }],
        };
        let with_info = kvrpcpb::KeyError {
            debug_info: Some(debug_info),
            ..no_info
        };
        let expected = r#"{"mvcc_info":[{"key":"Ynl0ZQ==","mvcc":{"lock":{"type":1,"start_ts":128,"primary":"azE=","short_value":"djE=","secondaries":["azE=","azI="]},"writes":[{"type":4,"start_ts":64,"commit_ts":86,"short_value":"AQIDBAUG"}],"values":[{"start_ts":64,"value":"ERI="}]}}]}"#;
        assert_eq!(debug_info_json(&with_info, false), expected);

        let expected = r#"{"mvcc_info":[{"key":"Pw==","mvcc":{"lock":{"type":1,"start_ts":128,"primary":"Pw==","short_value":"Pw==","secondaries":["Pw==","Pw=="]},"writes":[{"type":4,"start_ts":64,"commit_ts":86,"short_value":"Pw=="}],"values":[{"start_ts":64,"value":"Pw=="}]}}]}"#;
        assert_eq!(debug_info_json(&with_info, true), expected);
    }
}
