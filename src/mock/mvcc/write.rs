//! Writes and transaction resolution: Prewrite (optimistic, pessimistic, async commit, 1PC),
//! Commit, Cleanup, BatchRollback, CheckTxnStatus, CheckSecondaryLocks, TxnHeartBeat,
//! ResolveLock, DeleteRange, UnsafeDestroyRange, GC, Flush, BroadcastTxnStatus and flashback
//! (§2.8, §2.9, §2.13-2.16, §2.18-2.20, §2.25).
//!
//! The mocktikv counterparts are in `client-go: internal/mockstore/mocktikv/mvcc_leveldb.go`
//! (`Prewrite`, `prewriteMutation`, `checkConflictValue`, `Commit`, `commitKey`, `Rollback`,
//! `Cleanup`, `CheckTxnStatus`, `TxnHeartBeat`, `ResolveLock`, `BatchResolveLock`, `GC`,
//! `DeleteRange`); the spec's TiKV/unistore rules fill in what mocktikv lacks.

use std::collections::HashMap;

use tikv_proto::kvrpcpb::{
    self, Action, Assertion, AssertionLevel, Op, prewrite_request::PessimisticAction,
    write_conflict::Reason,
};

use super::errors::{
    INVALID_TXN_TSO, LOCK_TYPE_NOT_MATCH, PESSIMISTIC_LOCK_NOT_FOUND, TxnError, select_errors,
};
use super::store::{KeySpace, KeyState, Lock, TxnOutcome, WriteKind};
use super::{Exec, Outcome, RegionScope};

/// MC-2.8.4 step 5 (also used by Flush): checks a mutation's assertion against the latest
/// Put/Delete of the key.
pub(crate) fn check_assertion(
    st: &KeyState,
    key: &[u8],
    assertion: i32,
    level: i32,
    start_ts: u64,
) -> Result<(), TxnError> {
    if AssertionLevel::try_from(level).unwrap_or(AssertionLevel::Off) == AssertionLevel::Off {
        return Ok(());
    }
    let latest = st.latest_data(u64::MAX);
    let fail = |s: u64, c: u64| {
        TxnError::Assertion(kvrpcpb::AssertionFailed {
            start_ts,
            key: key.to_vec(),
            assertion,
            existing_start_ts: s,
            existing_commit_ts: c,
        })
    };
    match Assertion::try_from(assertion).unwrap_or(Assertion::None) {
        Assertion::None => Ok(()),
        Assertion::Exist => match latest {
            Some(w) if w.kind == WriteKind::Put => Ok(()),
            _ => Err(fail(0, 0)),
        },
        Assertion::NotExist => match latest {
            Some(w) if w.kind == WriteKind::Put => Err(fail(w.start_ts, w.commit_ts)),
            _ => Ok(()),
        },
    }
}

/// What happened to one prewrite mutation.
enum MutationResult {
    /// A lock was written (or replaced an own pessimistic lock).
    Written,
    /// An own non-pessimistic lock was already there (MC-2.8.11).
    Duplicate {
        async_commit: bool,
        min_commit_ts: u64,
    },
    /// Nothing to write (`CheckNotExists`).
    Skipped,
}

fn parse_op(op: i32) -> Result<Op, TxnError> {
    Op::try_from(op).map_err(|_| TxnError::abort(format!("invalid mutation op {op}")))
}

/// Steps 2-4 of MC-2.8.4 against `start_ts` (newer write, own rollback, existence).
fn constraint_checks(
    st: &KeyState,
    m: &kvrpcpb::Mutation,
    op: Op,
    start_ts: u64,
    primary: &[u8],
    reason: Reason,
) -> Result<(), TxnError> {
    if let Some(w) = st.newest_write_after(start_ts) {
        return Err(TxnError::conflict(
            start_ts,
            w.start_ts,
            w.commit_ts,
            &m.key,
            primary,
            reason,
        ));
    }
    if st.txn_outcome(start_ts) == TxnOutcome::RolledBack {
        return Err(TxnError::conflict(
            start_ts,
            start_ts,
            start_ts,
            &m.key,
            primary,
            Reason::SelfRolledBack,
        ));
    }
    if matches!(op, Op::Insert | Op::CheckNotExists) && st.value_at(u64::MAX).is_some() {
        return Err(TxnError::AlreadyExist(m.key.clone()));
    }
    Ok(())
}

fn new_lock(req: &kvrpcpb::PrewriteRequest, m: &kvrpcpb::Mutation, op: Op, now_ms: u64) -> Lock {
    let op = if op == Op::Insert { Op::Put } else { op };
    Lock {
        start_ts: req.start_version,
        primary: req.primary_lock.clone(),
        op,
        value: if op == Op::Put {
            m.value.clone()
        } else {
            Vec::new()
        },
        ttl: req.lock_ttl,
        for_update_ts: req.for_update_ts,
        txn_size: req.txn_size,
        min_commit_ts: req.min_commit_ts,
        use_async_commit: false,
        secondaries: Vec::new(),
        generation: 0,
        rollback_ts: Vec::new(),
        last_update_ms: now_ms,
    }
}

fn prewrite_mutation(
    ex: &mut Exec<'_>,
    req: &kvrpcpb::PrewriteRequest,
    i: usize,
    ctx: &kvrpcpb::Context,
) -> Result<MutationResult, TxnError> {
    let m = &req.mutations[i];
    let op = parse_op(m.op)?;
    if !matches!(
        op,
        Op::Put | Op::Del | Op::Lock | Op::Insert | Op::CheckNotExists
    ) {
        return Err(TxnError::abort(format!(
            "invalid op {op:?} in prewrite for key {:?}",
            m.key
        )));
    }
    let start_ts = req.start_version;
    let pessimistic = req.for_update_ts > 0;
    if pessimistic && op == Op::CheckNotExists {
        return Err(TxnError::abort(
            "CheckNotExists is not allowed in a pessimistic prewrite",
        ));
    }
    let action = match req.pessimistic_actions.get(i) {
        Some(a) => PessimisticAction::try_from(*a)
            .map_err(|_| TxnError::abort(format!("invalid pessimistic action {a}")))?,
        None => PessimisticAction::SkipPessimisticCheck,
    };
    let constraint = req
        .for_update_ts_constraints
        .iter()
        .find(|c| c.index as usize == i);
    let mut st = ex.batch.get(&m.key);

    if let Some(l) = st.lock.clone() {
        if l.start_ts != start_ts {
            if pessimistic && action == PessimisticAction::DoPessimisticCheck {
                return Err(TxnError::abort(PESSIMISTIC_LOCK_NOT_FOUND));
            }
            let mut info = l.info(&m.key);
            if pessimistic {
                info.lock_ttl = 0;
            }
            return Err(TxnError::Locked(info));
        }
        if !l.is_pessimistic() {
            return Ok(MutationResult::Duplicate {
                async_commit: l.use_async_commit,
                min_commit_ts: l.min_commit_ts,
            });
        }
        if !pessimistic {
            return Err(TxnError::abort(LOCK_TYPE_NOT_MATCH));
        }
        if let Some(c) = constraint
            && c.expected_for_update_ts != l.for_update_ts
        {
            return Err(TxnError::abort(format!(
                "{PESSIMISTIC_LOCK_NOT_FOUND}: for_update_ts {} does not match the expected {}",
                l.for_update_ts, c.expected_for_update_ts
            )));
        }
        check_assertion(&st, &m.key, m.assertion, req.assertion_level, start_ts)?;
        let mut lock = new_lock(req, m, op, ex.now_ms);
        lock.ttl = lock.ttl.max(l.ttl);
        lock.min_commit_ts = lock.min_commit_ts.max(l.min_commit_ts);
        lock.for_update_ts = lock.for_update_ts.max(l.for_update_ts);
        lock.rollback_ts = l.rollback_ts.clone();
        st.lock = Some(lock);
        ex.batch.put(&m.key, st);
        return Ok(MutationResult::Written);
    }

    if pessimistic {
        match action {
            PessimisticAction::DoPessimisticCheck => {
                return Err(TxnError::abort(PESSIMISTIC_LOCK_NOT_FOUND));
            }
            PessimisticAction::SkipPessimisticCheck => {
                if ctx.is_retry_request {
                    if let Some(w) = st.newest_write_after(req.for_update_ts)
                        && w.kind != WriteKind::Rollback
                    {
                        return Err(TxnError::abort(format!(
                            "{PESSIMISTIC_LOCK_NOT_FOUND}: non-lock key conflict at {}",
                            w.commit_ts
                        )));
                    }
                    if st.txn_outcome(start_ts) == TxnOutcome::RolledBack {
                        return Err(TxnError::conflict(
                            start_ts,
                            start_ts,
                            start_ts,
                            &m.key,
                            &req.primary_lock,
                            Reason::SelfRolledBack,
                        ));
                    }
                }
            }
            PessimisticAction::DoConstraintCheck => {
                constraint_checks(
                    &st,
                    m,
                    op,
                    start_ts,
                    &req.primary_lock,
                    Reason::LazyUniquenessCheck,
                )?;
            }
        }
    } else {
        constraint_checks(&st, m, op, start_ts, &req.primary_lock, Reason::Optimistic)?;
        if op == Op::CheckNotExists {
            return Ok(MutationResult::Skipped);
        }
    }
    check_assertion(&st, &m.key, m.assertion, req.assertion_level, start_ts)?;
    st.lock = Some(new_lock(req, m, op, ex.now_ms));
    ex.batch.put(&m.key, st);
    Ok(MutationResult::Written)
}

/// MC-2.8 Prewrite.
pub(crate) fn prewrite(
    ex: &mut Exec<'_>,
    req: kvrpcpb::PrewriteRequest,
    ctx: &kvrpcpb::Context,
) -> Outcome {
    let mut resp = kvrpcpb::PrewriteResponse::default();
    if req
        .for_update_ts_constraints
        .iter()
        .any(|c| c.index as usize >= req.mutations.len())
    {
        resp.errors
            .push(TxnError::abort("for_update_ts constraint index out of range").into_key_error());
        return Outcome::discard(resp);
    }
    let mut errs = Vec::new();
    let mut written = Vec::new();
    let mut any_duplicate = false;
    let mut fallback = false;
    let mut dup_min_commit_ts = 0u64;
    for i in 0..req.mutations.len() {
        match prewrite_mutation(ex, &req, i, ctx) {
            Ok(MutationResult::Written) => written.push(req.mutations[i].key.clone()),
            Ok(MutationResult::Duplicate {
                async_commit,
                min_commit_ts,
            }) => {
                any_duplicate = true;
                if async_commit {
                    dup_min_commit_ts = dup_min_commit_ts.max(min_commit_ts);
                } else if req.use_async_commit || req.try_one_pc {
                    fallback = true;
                }
            }
            Ok(MutationResult::Skipped) => {}
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        resp.errors = select_errors(errs);
        return Outcome::discard(resp);
    }
    let start_ts = req.start_version;
    let want_1pc = req.try_one_pc && !fallback && !any_duplicate;
    let want_async = req.use_async_commit && !fallback;
    if want_1pc || want_async {
        let ts = req
            .min_commit_ts
            .max(start_ts.saturating_add(1))
            .max(req.for_update_ts.saturating_add(1))
            .max(ex.tso());
        if req.max_commit_ts > 0 && ts > req.max_commit_ts {
            // Fall back to 2PC: the plain locks are already written.
            return Outcome::apply(resp);
        }
        if want_1pc {
            for key in &written {
                let mut st = ex.batch.get(key);
                if let Some(l) = st.lock.clone() {
                    st.commit_lock(&l, ts);
                    ex.batch.put(key, st);
                }
            }
            ex.finished_txns.push(start_ts);
            resp.one_pc_commit_ts = ts;
            return Outcome::apply(resp);
        }
        for key in &written {
            let mut st = ex.batch.get(key);
            if let Some(l) = st.lock.as_mut() {
                l.use_async_commit = true;
                l.min_commit_ts = ts;
                if key == &req.primary_lock {
                    l.secondaries = req.secondaries.clone();
                }
            }
            ex.batch.put(key, st);
        }
        resp.min_commit_ts = if written.is_empty() {
            dup_min_commit_ts
        } else {
            ts.max(dup_min_commit_ts)
        };
    } else if req.use_async_commit && !fallback {
        resp.min_commit_ts = dup_min_commit_ts;
    }
    Outcome::apply(resp)
}

/// MC-2.9 Commit.
pub(crate) fn commit(ex: &mut Exec<'_>, req: kvrpcpb::CommitRequest) -> Outcome {
    let mut resp = kvrpcpb::CommitResponse::default();
    let start_ts = req.start_version;
    if req.commit_version <= start_ts {
        resp.error = Some(TxnError::abort(INVALID_TXN_TSO).into_key_error());
        return Outcome::discard(resp);
    }
    for key in &req.keys {
        let mut st = ex.batch.get(key);
        match st.lock.clone() {
            Some(l) if l.start_ts == start_ts => {
                if !l.is_pessimistic() && req.commit_version < l.min_commit_ts {
                    resp.error = Some(
                        TxnError::CommitTsExpired(kvrpcpb::CommitTsExpired {
                            start_ts,
                            attempted_commit_ts: req.commit_version,
                            key: key.clone(),
                            min_commit_ts: l.min_commit_ts,
                        })
                        .into_key_error(),
                    );
                    return Outcome::discard(resp);
                }
                st.commit_lock(&l, req.commit_version);
                ex.batch.put(key, st);
            }
            _ => match st.txn_outcome(start_ts) {
                TxnOutcome::Committed(_) => {}
                _ => {
                    resp.error = Some(TxnError::TxnLockNotFound(key.clone()).into_key_error());
                    return Outcome::discard(resp);
                }
            },
        }
    }
    ex.finished_txns.push(start_ts);
    Outcome::apply(resp)
}

/// Rolls back `start_ts` on `key` (MC-2.13.1): own lock removed, rollback record written;
/// committed -> "txn already committed".
fn rollback_key(ex: &mut Exec<'_>, key: &[u8], start_ts: u64) -> Result<(), TxnError> {
    let mut st = ex.batch.get(key);
    if st.lock.as_ref().is_some_and(|l| l.start_ts == start_ts) {
        st.lock = None;
        st.write_rollback(start_ts);
        ex.batch.put(key, st);
        return Ok(());
    }
    match st.txn_outcome(start_ts) {
        TxnOutcome::Committed(c) => Err(TxnError::abort(format!(
            "txn already committed: start_ts {start_ts}, commit_ts {c}"
        ))),
        TxnOutcome::RolledBack => Ok(()),
        TxnOutcome::Unknown => {
            st.write_rollback(start_ts);
            ex.batch.put(key, st);
            Ok(())
        }
    }
}

/// MC-2.13.1 BatchRollback.
pub(crate) fn batch_rollback(ex: &mut Exec<'_>, req: kvrpcpb::BatchRollbackRequest) -> Outcome {
    let mut resp = kvrpcpb::BatchRollbackResponse::default();
    for key in &req.keys {
        if let Err(e) = rollback_key(ex, key, req.start_version) {
            resp.error = Some(e.into_key_error());
            return Outcome::discard(resp);
        }
    }
    ex.finished_txns.push(req.start_version);
    Outcome::apply(resp)
}

/// MC-2.13.2 Cleanup.
pub(crate) fn cleanup(ex: &mut Exec<'_>, req: kvrpcpb::CleanupRequest) -> Outcome {
    let mut resp = kvrpcpb::CleanupResponse::default();
    let st = ex.batch.get(&req.key);
    if let Some(l) = st.lock.as_ref().filter(|l| l.start_ts == req.start_version) {
        if req.current_ts != 0 && !l.is_expired(req.current_ts) {
            resp.error = Some(TxnError::Locked(l.info(&req.key)).into_key_error());
            return Outcome::discard(resp);
        }
    } else if let TxnOutcome::Committed(c) = st.txn_outcome(req.start_version) {
        resp.commit_version = c;
        return Outcome::discard(resp);
    }
    match rollback_key(ex, &req.key, req.start_version) {
        Ok(()) => {
            ex.finished_txns.push(req.start_version);
            Outcome::apply(resp)
        }
        Err(e) => {
            resp.error = Some(e.into_key_error());
            Outcome::discard(resp)
        }
    }
}

/// MC-2.14 CheckTxnStatus, the decision table of MC-2.14.3.
pub(crate) fn check_txn_status(ex: &mut Exec<'_>, req: kvrpcpb::CheckTxnStatusRequest) -> Outcome {
    let mut resp = kvrpcpb::CheckTxnStatusResponse::default();
    let key = &req.primary_key;
    let lock_ts = req.lock_ts;
    let mut st = ex.batch.get(key);
    if let Some(l) = st.lock.clone().filter(|l| l.start_ts == lock_ts) {
        let mismatch = req.verify_is_primary && l.primary != *key;
        if mismatch && (req.resolving_pessimistic_lock || !l.is_pessimistic()) {
            // Row 1.
            resp.error = Some(TxnError::PrimaryMismatch(l.info(key)).into_key_error());
            return Outcome::discard(resp);
        }
        if mismatch {
            // Row 1 exception: drop the stale pessimistic lock, then rows 8-12.
            st.lock = None;
            ex.batch.put(key, st.clone());
        } else {
            let alive = |resp: &mut kvrpcpb::CheckTxnStatusResponse, l: &Lock, action: Action| {
                resp.lock_ttl = l.ttl;
                resp.action = action as i32;
                resp.lock_info = Some(l.info(key));
            };
            if l.use_async_commit && !req.force_sync_commit {
                alive(&mut resp, &l, Action::NoAction);
                return Outcome::discard(resp);
            }
            if l.is_expired(req.current_ts) {
                st.lock = None;
                if req.resolving_pessimistic_lock && l.is_pessimistic() {
                    resp.action = Action::TtlExpirePessimisticRollback as i32;
                } else {
                    st.write_rollback(lock_ts);
                    resp.action = Action::TtlExpireRollback as i32;
                    ex.finished_txns.push(lock_ts);
                }
                ex.batch.put(key, st);
                return Outcome::apply(resp);
            }
            if req.caller_start_ts == u64::MAX {
                alive(&mut resp, &l, Action::MinCommitTsPushed);
                return Outcome::discard(resp);
            }
            if l.min_commit_ts > 0 && req.caller_start_ts != 0 {
                let mut l = l;
                if l.min_commit_ts <= req.caller_start_ts {
                    l.min_commit_ts = req.caller_start_ts.saturating_add(1).max(req.current_ts);
                    l.last_update_ms = ex.now_ms;
                    st.lock = Some(l.clone());
                    ex.batch.put(key, st);
                }
                alive(&mut resp, &l, Action::MinCommitTsPushed);
                return Outcome::apply(resp);
            }
            alive(&mut resp, &l, Action::NoAction);
            return Outcome::discard(resp);
        }
    }
    match st.txn_outcome(lock_ts) {
        TxnOutcome::Committed(c) => {
            resp.commit_version = c;
            resp.action = Action::NoAction as i32;
        }
        TxnOutcome::RolledBack => resp.action = Action::NoAction as i32,
        TxnOutcome::Unknown => {
            if req.rollback_if_not_exist && req.resolving_pessimistic_lock {
                resp.action = Action::LockNotExistDoNothing as i32;
            } else if req.rollback_if_not_exist {
                st.write_rollback(lock_ts);
                ex.batch.put(key, st);
                resp.action = Action::LockNotExistRollback as i32;
            } else {
                resp.error = Some(
                    TxnError::TxnNotFound {
                        start_ts: lock_ts,
                        primary_key: key.clone(),
                    }
                    .into_key_error(),
                );
            }
        }
    }
    Outcome::apply(resp)
}

/// MC-2.15 CheckSecondaryLocks.
pub(crate) fn check_secondary_locks(
    ex: &mut Exec<'_>,
    req: kvrpcpb::CheckSecondaryLocksRequest,
) -> Outcome {
    let mut resp = kvrpcpb::CheckSecondaryLocksResponse::default();
    let start_ts = req.start_version;
    let mut locks = Vec::new();
    let mut settled = false;
    for key in &req.keys {
        let mut st = ex.batch.get(key);
        if let Some(l) = st.lock.clone().filter(|l| l.start_ts == start_ts) {
            if !l.is_pessimistic() {
                locks.push(l.info(key));
                continue;
            }
            st.lock = None;
            st.write_rollback(start_ts);
            ex.batch.put(key, st);
            ex.finished_txns.push(start_ts);
            settled = true;
            break;
        }
        match st.txn_outcome(start_ts) {
            TxnOutcome::Committed(c) => resp.commit_ts = c,
            TxnOutcome::RolledBack => {}
            TxnOutcome::Unknown => {
                st.write_rollback(start_ts);
                ex.batch.put(key, st);
            }
        }
        settled = true;
        break;
    }
    if !settled {
        resp.locks = locks;
    }
    Outcome::apply(resp)
}

/// MC-2.16 TxnHeartBeat.
pub(crate) fn txn_heart_beat(ex: &mut Exec<'_>, req: kvrpcpb::TxnHeartBeatRequest) -> Outcome {
    let mut resp = kvrpcpb::TxnHeartBeatResponse::default();
    let key = &req.primary_lock;
    let mut st = ex.batch.get(key);
    match st.lock.as_mut().filter(|l| l.start_ts == req.start_version) {
        Some(l) => {
            if l.primary != *key {
                resp.error = Some(TxnError::abort("heartbeat on non-primary key").into_key_error());
                return Outcome::discard(resp);
            }
            l.ttl = l.ttl.max(req.advise_lock_ttl);
            if l.generation > 0 && !l.use_async_commit && req.min_commit_ts > l.min_commit_ts {
                l.min_commit_ts = req.min_commit_ts;
            }
            l.last_update_ms = ex.now_ms;
            resp.lock_ttl = l.ttl;
            ex.batch.put(key, st);
            Outcome::apply(resp)
        }
        None => {
            resp.error = Some(
                TxnError::TxnNotFound {
                    start_ts: req.start_version,
                    primary_key: key.clone(),
                }
                .into_key_error(),
            );
            Outcome::discard(resp)
        }
    }
}

/// MC-2.18.2: applies `status` (0 = roll back, else commit ts) to the lock on `key`.
fn resolve_one(ex: &mut Exec<'_>, key: &[u8], lock: &Lock, status: u64) -> Result<(), TxnError> {
    let mut st = ex.batch.get(key);
    if status == 0 {
        st.lock = None;
        st.write_rollback(lock.start_ts);
    } else if status > lock.start_ts {
        st.commit_lock(lock, status);
    } else {
        return Err(TxnError::abort(format!(
            "{INVALID_TXN_TSO}: start_ts {}, commit_ts {status}",
            lock.start_ts
        )));
    }
    ex.batch.put(key, st);
    ex.finished_txns.push(lock.start_ts);
    Ok(())
}

/// MC-2.18 ResolveLock, all three forms.
pub(crate) fn resolve_lock(
    ex: &mut Exec<'_>,
    req: kvrpcpb::ResolveLockRequest,
    scope: &RegionScope,
) -> Outcome {
    let mut resp = kvrpcpb::ResolveLockResponse::default();
    let mut targets: Vec<(Vec<u8>, Lock, u64)> = Vec::new();
    let lock_of = |ex: &Exec<'_>, key: &[u8]| ex.batch.peek(key).and_then(|s| s.lock.clone());
    if !req.txn_infos.is_empty() {
        let statuses: HashMap<u64, u64> = req.txn_infos.iter().map(|t| (t.txn, t.status)).collect();
        for key in ex.batch.keys_in(&scope.start_key, &scope.end_key) {
            if let Some(l) = lock_of(ex, &key)
                && let Some(s) = statuses.get(&l.start_ts)
            {
                targets.push((key, l, *s));
            }
        }
    } else {
        let keys = if req.keys.is_empty() {
            ex.batch.keys_in(&scope.start_key, &scope.end_key)
        } else {
            req.keys.clone()
        };
        for key in keys {
            if let Some(l) = lock_of(ex, &key).filter(|l| l.start_ts == req.start_version) {
                targets.push((key, l, req.commit_version));
            }
        }
    }
    for (key, lock, status) in targets {
        if let Err(e) = resolve_one(ex, &key, &lock, status) {
            resp.error = Some(e.into_key_error());
            return Outcome::discard(resp);
        }
    }
    Outcome::apply(resp)
}

/// Marks every key in `[start, end)` for physical removal in the batch.
fn remove_range(ex: &mut Exec<'_>, start: &[u8], end: &[u8]) {
    for key in ex.batch.keys_in(start, end) {
        ex.batch.put(&key, KeyState::default());
    }
}

/// MC-2.19.1 DeleteRange.
pub(crate) fn delete_range(ex: &mut Exec<'_>, req: kvrpcpb::DeleteRangeRequest) -> Outcome {
    let mut resp = kvrpcpb::DeleteRangeResponse::default();
    if !req.end_key.is_empty() && req.start_key > req.end_key {
        resp.error = format!(
            "invalid range: start key {:?} is after end key {:?}",
            req.start_key, req.end_key
        );
        return Outcome::discard(resp);
    }
    if req.notify_only {
        return Outcome::discard(resp);
    }
    remove_range(ex, &req.start_key, &req.end_key);
    Outcome::apply(resp)
}

/// MC-2.19.2 UnsafeDestroyRange: the MVCC part (the cluster clears raw data itself).
pub(crate) fn unsafe_destroy_range(
    ex: &mut Exec<'_>,
    req: kvrpcpb::UnsafeDestroyRangeRequest,
) -> Outcome {
    let mut resp = kvrpcpb::UnsafeDestroyRangeResponse::default();
    if !req.end_key.is_empty() && req.start_key > req.end_key {
        resp.error = format!(
            "invalid range: start key {:?} is after end key {:?}",
            req.start_key, req.end_key
        );
        return Outcome::discard(resp);
    }
    // Idempotent: a repeated call (one per store) finds nothing left to remove.
    remove_range(ex, &req.start_key, &req.end_key);
    Outcome::apply(resp)
}

/// MC-2.19.3 GC at `safe_point` over the scope.
pub(crate) fn gc(data: &mut KeySpace, scope: &RegionScope, safe_point: u64) -> Result<(), String> {
    let keys: Vec<Vec<u8>> = data
        .range(scope.start_key.clone()..)
        .map(|(k, _)| k.clone())
        .take_while(|k| scope.contains(k))
        .collect();
    for k in &keys {
        if let Some(l) = data.get(k).and_then(|s| s.lock.as_ref())
            && l.start_ts <= safe_point
        {
            return Err(format!(
                "key {k:?} has a lock with start ts {} not after the safe point {safe_point}",
                l.start_ts
            ));
        }
    }
    for k in keys {
        let Some(s) = data.get_mut(&k) else {
            continue;
        };
        let mut kept_newest = false;
        let old: Vec<u64> = s
            .writes
            .range(..=safe_point)
            .rev()
            .map(|(c, _)| *c)
            .collect();
        for c in old {
            let Some(w) = s.writes.get(&c) else {
                continue;
            };
            let keep = match w.kind {
                WriteKind::Lock | WriteKind::Rollback => false,
                WriteKind::Put | WriteKind::Delete if !kept_newest => {
                    kept_newest = true;
                    w.kind == WriteKind::Put
                }
                _ => false,
            };
            if !keep {
                s.writes.remove(&c);
            }
        }
        if s.is_empty() {
            data.remove(&k);
        }
    }
    Ok(())
}

/// MC-2.20.1 Flush (pipelined DML).
pub(crate) fn flush(ex: &mut Exec<'_>, req: kvrpcpb::FlushRequest) -> Outcome {
    let mut resp = kvrpcpb::FlushResponse::default();
    if req.mutations.windows(2).any(|w| w[0].key > w[1].key) {
        resp.errors
            .push(TxnError::abort("mutations are not sorted").into_key_error());
        return Outcome::discard(resp);
    }
    let start_ts = req.start_ts;
    let mut errs = Vec::new();
    for m in &req.mutations {
        let r = (|| -> Result<(), TxnError> {
            let op = parse_op(m.op)?;
            if !matches!(
                op,
                Op::Put | Op::Del | Op::Lock | Op::Insert | Op::CheckNotExists
            ) {
                return Err(TxnError::abort(format!("invalid op {op:?} in flush")));
            }
            let mut st = ex.batch.get(&m.key);
            match st.lock.as_ref() {
                Some(l) if l.start_ts != start_ts => return Err(TxnError::Locked(l.info(&m.key))),
                Some(l) if l.generation >= req.generation => return Ok(()),
                Some(_) => {}
                None => {
                    if m.key == req.primary_key
                        && st.txn_outcome(start_ts) == TxnOutcome::RolledBack
                    {
                        return Err(TxnError::conflict(
                            start_ts,
                            start_ts,
                            start_ts,
                            &m.key,
                            &req.primary_key,
                            Reason::SelfRolledBack,
                        ));
                    }
                    if let Some(w) = st.newest_write_after(start_ts) {
                        return Err(TxnError::conflict(
                            start_ts,
                            w.start_ts,
                            w.commit_ts,
                            &m.key,
                            &req.primary_key,
                            Reason::Optimistic,
                        ));
                    }
                    if matches!(op, Op::Insert | Op::CheckNotExists)
                        && st.value_at(u64::MAX).is_some()
                    {
                        return Err(TxnError::AlreadyExist(m.key.clone()));
                    }
                }
            }
            check_assertion(&st, &m.key, m.assertion, req.assertion_level, start_ts)?;
            if op == Op::CheckNotExists {
                return Ok(());
            }
            let op = if op == Op::Insert { Op::Put } else { op };
            st.lock = Some(Lock {
                start_ts,
                primary: req.primary_key.clone(),
                op,
                value: if op == Op::Put {
                    m.value.clone()
                } else {
                    Vec::new()
                },
                ttl: req.lock_ttl,
                for_update_ts: 0,
                txn_size: 0,
                min_commit_ts: req.min_commit_ts,
                use_async_commit: false,
                secondaries: Vec::new(),
                generation: req.generation,
                rollback_ts: st
                    .lock
                    .as_ref()
                    .map(|l| l.rollback_ts.clone())
                    .unwrap_or_default(),
                last_update_ms: ex.now_ms,
            });
            ex.batch.put(&m.key, st);
            Ok(())
        })();
        if let Err(e) = r {
            errs.push(e);
        }
    }
    if !errs.is_empty() {
        resp.errors = select_errors(errs);
        return Outcome::discard(resp);
    }
    Outcome::apply(resp)
}

/// MC-2.20.4 BroadcastTxnStatus: kept for inspection, no MVCC effect.
pub(crate) fn broadcast_txn_status(
    ex: &mut Exec<'_>,
    req: kvrpcpb::BroadcastTxnStatusRequest,
) -> Outcome {
    for s in req.txn_status {
        ex.txn_status.insert(s.start_ts, s);
    }
    Outcome::discard(kvrpcpb::BroadcastTxnStatusResponse::default())
}

/// MC-2.25.1 PrepareFlashbackToVersion.
pub(crate) fn prepare_flashback(
    ex: &mut Exec<'_>,
    req: kvrpcpb::PrepareFlashbackToVersionRequest,
    scope: &RegionScope,
) -> Outcome {
    let resp = kvrpcpb::PrepareFlashbackToVersionResponse::default();
    let (lo, hi) = scope.clamp(&req.start_key, &req.end_key);
    if ex.flashback.get(&scope.region_id) == Some(&req.start_ts) {
        return Outcome::discard(resp);
    }
    for key in ex.batch.keys_in(&lo, &hi) {
        let mut st = ex.batch.get(&key);
        if let Some(l) = st.lock.take() {
            st.write_rollback(l.start_ts);
            ex.batch.put(&key, st);
            ex.finished_txns.push(l.start_ts);
        }
    }
    let mut st = ex.batch.get(&lo);
    st.lock = Some(Lock {
        start_ts: req.start_ts,
        primary: lo.clone(),
        op: Op::Lock,
        value: Vec::new(),
        ttl: 0,
        for_update_ts: 0,
        txn_size: 0,
        min_commit_ts: 0,
        use_async_commit: false,
        secondaries: Vec::new(),
        generation: 0,
        rollback_ts: Vec::new(),
        last_update_ms: ex.now_ms,
    });
    ex.batch.put(&lo, st);
    ex.flashback.insert(scope.region_id, req.start_ts);
    Outcome::apply(resp)
}

/// MC-2.25.1 FlashbackToVersion.
pub(crate) fn flashback(
    ex: &mut Exec<'_>,
    req: kvrpcpb::FlashbackToVersionRequest,
    scope: &RegionScope,
) -> Outcome {
    let mut resp = kvrpcpb::FlashbackToVersionResponse::default();
    if ex.flashback.get(&scope.region_id) != Some(&req.start_ts) {
        resp.error = format!(
            "FlashbackNotPrepared: region {} is not prepared for flashback with start ts {}",
            scope.region_id, req.start_ts
        );
        return Outcome::discard(resp);
    }
    if req.commit_ts <= req.start_ts || req.version >= req.start_ts {
        resp.error = format!(
            "invalid flashback timestamps: version {}, start ts {}, commit ts {}",
            req.version, req.start_ts, req.commit_ts
        );
        return Outcome::discard(resp);
    }
    let (lo, hi) = scope.clamp(&req.start_key, &req.end_key);
    for key in ex.batch.keys_in(&lo, &hi) {
        let mut st = ex.batch.get(&key);
        if st.lock.as_ref().is_some_and(|l| l.start_ts == req.start_ts) {
            st.lock = None;
        }
        let latest = st.value_at(u64::MAX).map(|(v, _)| v.to_vec());
        let old = st.value_at(req.version).map(|(v, _)| v.to_vec());
        if latest != old {
            let (kind, value) = match old {
                Some(v) => (WriteKind::Put, v),
                None => (WriteKind::Delete, Vec::new()),
            };
            st.writes.insert(
                req.commit_ts,
                super::store::Write {
                    kind,
                    start_ts: req.start_ts,
                    commit_ts: req.commit_ts,
                    value,
                    has_overlapped_rollback: false,
                },
            );
        }
        ex.batch.put(&key, st);
    }
    ex.flashback.remove(&scope.region_id);
    Outcome::apply(resp)
}
