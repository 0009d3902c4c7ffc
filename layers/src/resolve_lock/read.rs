//! What each transactional read does with the locks it meets (client-go's
//! `KVSnapshot.get`, `batchGetSingleRegion` / `collectBatchGetResponseData` in
//! `txnkv/txnsnapshot/snapshot.go`, and `Scanner.getData` in `scan.go`).

use tikv_proto::kvrpcpb;

use super::policy::ResolveLocksOptions;
use crate::classify::extract_key_error;
use crate::error::Error;
use crate::request::{CmdType, Command, CommandResponse, RpcRequest, RpcResponse};

/// The start ts of an auto-commit point get (client-go's `maxTimestamp`).
const MAX_TIMESTAMP: u64 = u64::MAX;

/// Whether the layer resolves locks for this command: the transactional reads client-go
/// resolves on its read path (point get, batch get, buffer batch get, scan).
pub(super) fn handles(cmd: CmdType) -> bool {
    matches!(
        cmd,
        CmdType::Get | CmdType::BatchGet | CmdType::BufferBatchGet | CmdType::Scan
    )
}

/// The lock a key error reports, if it is a `KeyIsLocked` error (the first half of
/// client-go's `ExtractLockFromKeyErr`; the other key errors are the caller's to map).
fn lock_of(e: &kvrpcpb::KeyError) -> Option<&kvrpcpb::LockInfo> {
    e.locked.as_ref()
}

fn is_locked(e: Option<&kvrpcpb::KeyError>) -> bool {
    e.and_then(lock_of).is_some()
}

/// A cheap check on the first answer: does it carry a lock this layer resolves? When not,
/// the answer is handed back without entering the resolve loop.
pub(super) fn meets_lock(resp: &RpcResponse) -> bool {
    if resp.region_error().is_some() {
        return false;
    }
    match &resp.resp {
        CommandResponse::Get(r) => is_locked(r.error.as_ref()),
        CommandResponse::Scan(r) => is_locked(r.error.as_ref()),
        CommandResponse::BatchGet(r) => {
            is_locked(r.error.as_ref())
                || (r.error.is_none() && r.pairs.iter().any(|p| is_locked(p.error.as_ref())))
        }
        CommandResponse::BufferBatchGet(r) => {
            is_locked(r.error.as_ref())
                || (r.error.is_none() && r.pairs.iter().any(|p| is_locked(p.error.as_ref())))
        }
        _ => false,
    }
}

/// What to do after one answer. Short-lived (returned and matched at once), so the
/// response is not boxed.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// Hand this answer to the caller.
    Done(RpcResponse),
    /// Resolve these locks, back off (if some remain) with `reason`, then resend.
    Resolve {
        opts: ResolveLocksOptions,
        reason: Error,
    },
    /// Resend at once: the request was already changed so TiKV skips the lock.
    Resend,
}

/// State kept across the rounds of one request.
#[derive(Default)]
pub(super) struct Rounds {
    /// The transaction of the first lock a point get met.
    first_lock_txn: Option<u64>,
    /// Batch-get pairs already read in earlier rounds.
    collected: Vec<kvrpcpb::KvPair>,
}

/// The backoff reason for a lock: the key error itself, with keys redacted (it only
/// reaches logs and budget-exhaustion sources).
fn reason(e: &kvrpcpb::KeyError) -> Error {
    extract_key_error(e.clone(), true)
}

/// client-go stops reading from a stale replica once a read met a lock: the retry goes to
/// the leader without a busy threshold (`DisableStaleReadMeetLock`, `BusyThresholdMs = 0`).
fn leave_stale_read(req: &mut RpcRequest) {
    if req.options.stale_read {
        req.disable_stale_read();
        req.context.busy_threshold_ms = 0;
    }
}

/// Adds transactions to a context lock list, keeping it free of duplicates (client-go keeps
/// them in a set).
pub(super) fn add_txns(list: &mut Vec<u64>, txns: &[u64]) {
    for t in txns {
        if !list.contains(t) {
            list.push(*t);
        }
    }
}

/// Decides the next step for `resp`, updating `req` for the resend.
pub(super) fn step(req: &mut RpcRequest, resp: RpcResponse, rounds: &mut Rounds) -> Step {
    if resp.region_error().is_some() {
        // The retry layer gave up on this region; the shard layer re-splits and resends
        // the whole request, so pairs read so far are not needed.
        return Step::Done(resp);
    }
    match req.cmd_type() {
        CmdType::Get => step_get(req, resp, rounds),
        CmdType::BatchGet | CmdType::BufferBatchGet => step_batch_get(req, resp, rounds),
        CmdType::Scan => step_scan(req, resp),
        _ => Step::Done(resp),
    }
}

/// `KVSnapshot.get`: resolve the lock lite, for read; an auto-commit point get is only
/// blocked by the first lock it met.
fn step_get(req: &mut RpcRequest, resp: RpcResponse, rounds: &mut Rounds) -> Step {
    let CommandResponse::Get(r) = &resp.resp else {
        return Step::Done(resp);
    };
    let Some(key_err) = r.error.as_ref() else {
        return Step::Done(resp);
    };
    let Some(lock) = lock_of(key_err) else {
        return Step::Done(resp);
    };
    let version = req.cmd.get().map_or(0, |g| g.version);
    match rounds.first_lock_txn {
        None => {
            leave_stale_read(req);
            rounds.first_lock_txn = Some(lock.lock_version);
        }
        Some(first) if version == MAX_TIMESTAMP && first != lock.lock_version => {
            // Another transaction's lock met on a retry of an auto-commit point get: read
            // through it without resolving.
            add_txns(&mut req.context.resolved_locks, &[lock.lock_version]);
            return Step::Resend;
        }
        Some(_) => {}
    }
    Step::Resolve {
        opts: ResolveLocksOptions::new(version, vec![lock.clone()])
            .lite(true)
            .for_read(true),
        reason: reason(key_err),
    }
}

/// `batchGetSingleRegion`: keep the pairs read, resolve the locked keys (not lite, for
/// read) and resend only those, unless the whole response failed on a lock.
fn step_batch_get(req: &mut RpcRequest, mut resp: RpcResponse, rounds: &mut Rounds) -> Step {
    let (error, pairs) = match &mut resp.resp {
        CommandResponse::BatchGet(r) => (r.error.as_ref(), &mut r.pairs),
        CommandResponse::BufferBatchGet(r) => (r.error.as_ref(), &mut r.pairs),
        _ => return Step::Done(resp),
    };
    let version = req.cmd.start_ts();
    if let Some(key_err) = error {
        // A response-level error: the pairs are incomplete and are not read.
        let Some(lock) = lock_of(key_err) else {
            return Step::Done(resp);
        };
        leave_stale_read(req);
        return Step::Resolve {
            opts: ResolveLocksOptions::new(version, vec![lock.clone()]).for_read(true),
            reason: reason(key_err),
        };
    }
    let other_error = pairs
        .iter()
        .any(|p| p.error.as_ref().is_some_and(|e| lock_of(e).is_none()));
    if other_error || !pairs.iter().any(|p| is_locked(p.error.as_ref())) {
        // Done: every key read, or a key error that is not a lock, which fails the read
        // (the caller maps it, like client-go's `ExtractLockFromKeyErr`). Add what earlier
        // rounds read.
        if !rounds.collected.is_empty() {
            let mut all = std::mem::take(&mut rounds.collected);
            all.append(pairs);
            *pairs = all;
        }
        return Step::Done(resp);
    }
    let mut locks = Vec::new();
    let mut locked_keys = Vec::new();
    let mut first_err: Option<kvrpcpb::KeyError> = None;
    for mut pair in std::mem::take(pairs) {
        match pair.error.take() {
            None => rounds.collected.push(pair),
            Some(e) => {
                if let Some(lock) = &e.locked {
                    locks.push(lock.clone());
                    locked_keys.push(lock.key.clone());
                }
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    leave_stale_read(req);
    match &mut req.cmd {
        Command::BatchGet(b) => b.keys = locked_keys,
        Command::BufferBatchGet(b) => b.keys = locked_keys,
        _ => {}
    }
    let reason = first_err.as_ref().map_or_else(
        || Error::new(crate::ErrorDetail::ResolveLockTimeout),
        reason,
    );
    Step::Resolve {
        opts: ResolveLocksOptions::new(version, locks).for_read(true),
        reason,
    }
}

/// `Scanner.getData`: a response-level lock is resolved (a plain resolve, not for read)
/// and the same request resent; locks on single pairs are left to the scanner.
fn step_scan(req: &mut RpcRequest, resp: RpcResponse) -> Step {
    let CommandResponse::Scan(r) = &resp.resp else {
        return Step::Done(resp);
    };
    let Some(key_err) = r.error.as_ref() else {
        return Step::Done(resp);
    };
    let Some(lock) = lock_of(key_err) else {
        return Step::Done(resp);
    };
    Step::Resolve {
        opts: ResolveLocksOptions::new(req.cmd.start_ts(), vec![lock.clone()]),
        reason: reason(key_err),
    }
}
