//! Reads: Get, BatchGet, Scan, BufferBatchGet, ScanLock and MVCC inspection (§2.6, §2.7,
//! MC-2.17.1, MC-2.20.3, §2.23).
//!
//! Mirrors `client-go: internal/mockstore/mocktikv/mvcc_leveldb.go` `GetKVPair`, `BatchGet`,
//! `Scan`, `ReverseScan`, `ScanLock`, `MvccGetByKey`, `MvccGetByStartTS` and `mvcc.go`
//! `mvccLock.check`, with the TiKV/unistore additions the spec requires (`committed_locks`,
//! RCCheckTS, `not_found`, bounded lock scans).

use tikv_proto::kvrpcpb::{self, IsolationLevel, Op, write_conflict::Reason};

use super::errors::TxnError;
use super::store::{KeyState, WriteKind};
use super::{Exec, Outcome, RegionScope};

/// Value read for one key: `(value, commit_ts)` or absent.
pub(crate) type ReadValue = Option<(Vec<u8>, u64)>;

/// Reads `key` at `ts` under the request context's isolation and lock rules (§2.6).
pub(crate) fn read_key(
    state: Option<&KeyState>,
    key: &[u8],
    ts: u64,
    ctx: &kvrpcpb::Context,
    need_commit_ts: bool,
) -> Result<ReadValue, TxnError> {
    let Some(s) = state else {
        return Ok(None);
    };
    let iso = IsolationLevel::try_from(ctx.isolation_level).unwrap_or(IsolationLevel::Si);
    match iso {
        IsolationLevel::Rc => {}
        IsolationLevel::RcCheckTs => {
            if let Some(l) = &s.lock
                && matches!(l.op, Op::Put | Op::Del | Op::Insert)
                && l.start_ts != ts
                && !ctx.resolved_locks.contains(&l.start_ts)
            {
                return Err(TxnError::conflict(
                    ts,
                    l.start_ts,
                    0,
                    key,
                    &l.primary,
                    Reason::RcCheckTs,
                ));
            }
            if let Some(w) = s
                .writes
                .range(ts.saturating_add(1)..)
                .rev()
                .map(|(_, w)| w)
                .find(|w| w.kind != WriteKind::Rollback)
                && ts != u64::MAX
            {
                return Err(TxnError::conflict(
                    ts,
                    w.start_ts,
                    w.commit_ts,
                    key,
                    &[],
                    Reason::RcCheckTs,
                ));
            }
        }
        _ => {
            if let Some(l) = &s.lock {
                let skip = l.start_ts > ts
                    || matches!(l.op, Op::Lock | Op::PessimisticLock)
                    || (ts == u64::MAX && l.primary.as_slice() == key && !l.use_async_commit)
                    || ctx.resolved_locks.contains(&l.start_ts);
                if !skip {
                    if ctx.committed_locks.contains(&l.start_ts) && !need_commit_ts {
                        return Ok(match l.op {
                            Op::Put | Op::Insert => Some((l.value.clone(), 0)),
                            _ => None,
                        });
                    }
                    return Err(TxnError::Locked(l.info(key)));
                }
            }
        }
    }
    Ok(s.value_at(ts).map(|(v, c)| (v.to_vec(), c)))
}

/// MC-2.7.1 Get.
pub(crate) fn get(ex: &mut Exec<'_>, req: kvrpcpb::GetRequest, ctx: &kvrpcpb::Context) -> Outcome {
    let mut resp = kvrpcpb::GetResponse::default();
    match read_key(
        ex.batch.peek(&req.key),
        &req.key,
        req.version,
        ctx,
        req.need_commit_ts,
    ) {
        Ok(Some((v, c))) => {
            resp.value = v;
            if req.need_commit_ts {
                resp.commit_ts = c;
            }
        }
        Ok(None) => resp.not_found = true,
        Err(e) => resp.error = Some(e.into_key_error()),
    }
    Outcome::discard(resp)
}

/// MC-2.7.2 BatchGet.
pub(crate) fn batch_get(
    ex: &mut Exec<'_>,
    req: kvrpcpb::BatchGetRequest,
    ctx: &kvrpcpb::Context,
) -> Outcome {
    let mut resp = kvrpcpb::BatchGetResponse::default();
    for key in &req.keys {
        match read_key(
            ex.batch.peek(key),
            key,
            req.version,
            ctx,
            req.need_commit_ts,
        ) {
            Ok(Some((v, c))) => resp.pairs.push(kvrpcpb::KvPair {
                key: key.clone(),
                value: v,
                commit_ts: if req.need_commit_ts { c } else { 0 },
                error: None,
            }),
            Ok(None) => {}
            Err(e) => resp.pairs.push(kvrpcpb::KvPair {
                error: Some(e.into_key_error()),
                ..Default::default()
            }),
        }
    }
    Outcome::discard(resp)
}

/// MC-2.7.3 Scan, forward and reverse.
pub(crate) fn scan(
    ex: &mut Exec<'_>,
    req: kvrpcpb::ScanRequest,
    ctx: &kvrpcpb::Context,
    scope: &RegionScope,
) -> Outcome {
    let mut resp = kvrpcpb::ScanResponse::default();
    if req.limit == 0 {
        return Outcome::discard(resp);
    }
    let mut keys = if req.reverse {
        let (lo, hi) = scope.clamp(&req.end_key, &req.start_key);
        ex.batch.keys_in(&lo, &hi)
    } else {
        let (lo, hi) = scope.clamp(&req.start_key, &req.end_key);
        ex.batch.keys_in(&lo, &hi)
    };
    if req.reverse {
        keys.reverse();
    }
    let step = req.sample_step as usize;
    let mut seen = 0usize;
    for key in keys {
        if resp.pairs.len() >= req.limit as usize {
            break;
        }
        let pair = match read_key(ex.batch.peek(&key), &key, req.version, ctx, false) {
            Ok(Some((v, _))) => kvrpcpb::KvPair {
                value: if req.key_only { Vec::new() } else { v },
                key,
                ..Default::default()
            },
            Ok(None) => continue,
            Err(e) => kvrpcpb::KvPair {
                key,
                error: Some(e.into_key_error()),
                ..Default::default()
            },
        };
        let idx = seen;
        seen += 1;
        if step > 1 && !idx.is_multiple_of(step) {
            continue;
        }
        resp.pairs.push(pair);
    }
    Outcome::discard(resp)
}

/// MC-2.20.3 BufferBatchGet: the transaction's own flushed Put/Del locks.
pub(crate) fn buffer_batch_get(ex: &mut Exec<'_>, req: kvrpcpb::BufferBatchGetRequest) -> Outcome {
    let mut resp = kvrpcpb::BufferBatchGetResponse::default();
    for key in &req.keys {
        let Some(l) = ex.batch.peek(key).and_then(|s| s.lock.as_ref()) else {
            continue;
        };
        if l.start_ts != req.version {
            continue;
        }
        let value = match l.op {
            Op::Put | Op::Insert => l.value.clone(),
            Op::Del => Vec::new(),
            _ => continue,
        };
        resp.pairs.push(kvrpcpb::KvPair {
            key: key.clone(),
            value,
            ..Default::default()
        });
    }
    Outcome::discard(resp)
}

/// MC-2.17.1 ScanLock: bounded by the request range and the region, filtered by
/// `max_version`, at most `limit` locks.
pub(crate) fn scan_lock(
    ex: &mut Exec<'_>,
    req: kvrpcpb::ScanLockRequest,
    scope: &RegionScope,
) -> Outcome {
    let mut resp = kvrpcpb::ScanLockResponse::default();
    let (lo, hi) = scope.clamp(&req.start_key, &req.end_key);
    for key in ex.batch.keys_in(&lo, &hi) {
        if req.limit > 0 && resp.locks.len() >= req.limit as usize {
            break;
        }
        if let Some(l) = ex.batch.peek(&key).and_then(|s| s.lock.as_ref())
            && l.start_ts <= req.max_version
        {
            resp.locks.push(l.info(&key));
        }
    }
    Outcome::discard(resp)
}

fn short(v: &[u8]) -> Vec<u8> {
    if v.len() <= 64 {
        v.to_vec()
    } else {
        Vec::new()
    }
}

/// MC-2.23.1: the MVCC view of one key.
pub(crate) fn mvcc_info(state: Option<&KeyState>) -> kvrpcpb::MvccInfo {
    let mut info = kvrpcpb::MvccInfo::default();
    let Some(s) = state else {
        return info;
    };
    if let Some(l) = &s.lock {
        info.lock = Some(kvrpcpb::MvccLock {
            r#type: l.op as i32,
            start_ts: l.start_ts,
            primary: l.primary.clone(),
            short_value: short(&l.value),
            ttl: l.ttl,
            for_update_ts: l.for_update_ts,
            txn_size: l.txn_size,
            use_async_commit: l.use_async_commit,
            secondaries: l.secondaries.clone(),
            ..Default::default()
        });
    }
    for w in s.writes.values().rev() {
        info.writes.push(kvrpcpb::MvccWrite {
            r#type: w.kind.op() as i32,
            start_ts: w.start_ts,
            commit_ts: w.commit_ts,
            short_value: short(&w.value),
            has_overlapped_rollback: w.has_overlapped_rollback,
            ..Default::default()
        });
        info.values.push(kvrpcpb::MvccValue {
            start_ts: w.start_ts,
            value: w.value.clone(),
        });
    }
    info
}

/// MC-2.23.1 MvccGetByKey.
pub(crate) fn mvcc_get_by_key(ex: &mut Exec<'_>, req: kvrpcpb::MvccGetByKeyRequest) -> Outcome {
    Outcome::discard(kvrpcpb::MvccGetByKeyResponse {
        info: Some(mvcc_info(ex.batch.peek(&req.key))),
        ..Default::default()
    })
}

/// MC-2.23.2 MvccGetByStartTs: the first key of the region touched by the transaction.
pub(crate) fn mvcc_get_by_start_ts(
    ex: &mut Exec<'_>,
    req: kvrpcpb::MvccGetByStartTsRequest,
    scope: &RegionScope,
) -> Outcome {
    let mut resp = kvrpcpb::MvccGetByStartTsResponse::default();
    for key in ex.batch.keys_in(&scope.start_key, &scope.end_key) {
        let Some(s) = ex.batch.peek(&key) else {
            continue;
        };
        let touched = s.lock.as_ref().is_some_and(|l| l.start_ts == req.start_ts)
            || s.writes.values().any(|w| w.start_ts == req.start_ts);
        if touched {
            resp.info = Some(mvcc_info(Some(s)));
            resp.key = key;
            break;
        }
    }
    Outcome::discard(resp)
}
