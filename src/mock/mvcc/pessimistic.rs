//! PessimisticLock with lock waiting and deadlock detection, and PessimisticRollback
//! (§2.10-2.12, §4).
//!
//! Mirrors `client-go: internal/mockstore/mocktikv/mvcc_leveldb.go` `PessimisticLock`,
//! `pessimisticLockMutation`, `PessimisticRollback` and `rpc.go` `simulateServerSideWaitLock`
//! for the `Immediate` profile, and unistore's `KvPessimisticLock` waiting for the
//! `ServerWait` profile (MC-2.11.2). Waiting never holds the engine lock: the waiter parks on
//! a oneshot channel fired by the lock's release, and a drop guard removes the waiter and its
//! detector edge if the request is cancelled (MC-2.11.4).

use std::time::Duration;

use tikv_proto::kvrpcpb::{
    self, Assertion, Op, PessimisticLockKeyResultType as ResultType, PessimisticLockWakeUpMode,
    write_conflict::Reason,
};
use tokio::sync::oneshot;

use super::errors::{LOCK_TYPE_NOT_MATCH, TxnError};
use super::farmhash::fingerprint64;
use super::store::{Lock, TxnOutcome};
use super::{
    Exec, IMMEDIATE_PAUSE, LockWaitProfile, MvccEngine, Outcome, RegionScope, Waiter,
    lock_ignoring_poison,
};

/// Result of one pass over a pessimistic lock request under the engine lock.
pub(crate) enum LockPass {
    /// The request is answered.
    Done {
        resp: kvrpcpb::PessimisticLockResponse,
        apply: bool,
        /// Whether any key answered `KeyIsLocked` (drives the Immediate 5 ms pause).
        saw_locked: bool,
    },
    /// ServerWait: wait for `lock` on `key` to go away.
    Wait {
        key: Vec<u8>,
        lock: Lock,
        key_hash: u64,
        edge: bool,
    },
}

fn failed_result() -> kvrpcpb::PessimisticLockKeyResult {
    kvrpcpb::PessimisticLockKeyResult {
        r#type: ResultType::LockResultFailed as i32,
        ..Default::default()
    }
}

fn abort_response(msg: &str, force: bool, n: usize) -> kvrpcpb::PessimisticLockResponse {
    kvrpcpb::PessimisticLockResponse {
        errors: vec![TxnError::abort(msg).into_key_error()],
        results: if force {
            (0..n).map(|_| failed_result()).collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

/// One pass of MC-2.10.3 over every mutation.
pub(crate) fn lock_pass(
    ex: &mut Exec<'_>,
    req: &kvrpcpb::PessimisticLockRequest,
    ctx: &kvrpcpb::Context,
    profile: LockWaitProfile,
    force_no_wait: bool,
) -> LockPass {
    let force = req.wake_up_mode == PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
    let no_wait = force_no_wait || req.wait_timeout < 0;
    let n = req.mutations.len();
    let done = |resp, apply, saw_locked| LockPass::Done {
        resp,
        apply,
        saw_locked,
    };
    if req.lock_only_if_exists && !req.return_values {
        return done(
            abort_response(
                "lock_only_if_exists is set for a pessimistic lock request but return_values is not",
                force,
                n,
            ),
            false,
            false,
        );
    }
    if force && n > 1 {
        return done(
            abort_response("force-lock wake-up mode takes exactly one key", force, n),
            false,
            false,
        );
    }
    let start_ts = req.start_version;
    let stop_at_first_error = profile == LockWaitProfile::ServerWait;
    let mut errors: Vec<kvrpcpb::KeyError> = Vec::new();
    let mut results: Vec<kvrpcpb::PessimisticLockKeyResult> = Vec::new();
    let mut saw_locked = false;
    for m in &req.mutations {
        let key = &m.key;
        let mut st = ex.batch.get(key);
        let outcome: Result<kvrpcpb::PessimisticLockKeyResult, TxnError> = (|| {
            if let Some(l) = st.lock.clone() {
                if l.start_ts != start_ts {
                    return Err(TxnError::Locked(l.info(key)));
                }
                if l.op != Op::PessimisticLock {
                    return Err(TxnError::abort(LOCK_TYPE_NOT_MATCH));
                }
                if l.for_update_ts >= req.for_update_ts {
                    // Duplicate: nothing rewritten, values still returned.
                    let value = st.value_at(u64::MAX).map(|(v, _)| v.to_vec());
                    return Ok(normal_result(req, value));
                }
            }
            let mut conflict: Option<TxnError> = None;
            let mut conflict_ts = 0;
            if let Some(w) = st.newest_write_after(req.for_update_ts) {
                let c = TxnError::conflict(
                    start_ts,
                    w.start_ts,
                    w.commit_ts,
                    key,
                    &req.primary_lock,
                    Reason::PessimisticRetry,
                );
                if !force {
                    return Err(c);
                }
                conflict_ts = w.commit_ts;
                conflict = Some(c);
            }
            if st.txn_outcome(start_ts) == TxnOutcome::RolledBack {
                return Err(TxnError::abort(format!(
                    "pessimistic lock already rolled back: start_ts {start_ts} on key {key:?}"
                )));
            }
            let value = st.value_at(u64::MAX).map(|(v, _)| v.to_vec());
            if m.assertion == Assertion::NotExist as i32 && value.is_some() {
                return Err(conflict.unwrap_or_else(|| TxnError::AlreadyExist(key.clone())));
            }
            if req.lock_only_if_exists && value.is_none() {
                if let Some(c) = conflict {
                    return Err(c);
                }
                return Ok(normal_result(req, value));
            }
            let rollback_ts = st
                .lock
                .as_ref()
                .map(|l| l.rollback_ts.clone())
                .unwrap_or_default();
            st.lock = Some(Lock {
                start_ts,
                primary: req.primary_lock.clone(),
                op: Op::PessimisticLock,
                value: Vec::new(),
                ttl: req.lock_ttl,
                for_update_ts: req.for_update_ts.max(conflict_ts),
                txn_size: 0,
                min_commit_ts: req.min_commit_ts,
                use_async_commit: false,
                secondaries: Vec::new(),
                generation: 0,
                rollback_ts,
                last_update_ms: ex.now_ms,
            });
            if conflict.is_some() {
                let existence = value.is_some();
                return Ok(kvrpcpb::PessimisticLockKeyResult {
                    r#type: ResultType::LockResultLockedWithConflict as i32,
                    value: value.unwrap_or_default(),
                    existence,
                    locked_with_conflict_ts: conflict_ts,
                    ..Default::default()
                });
            }
            Ok(normal_result(req, value))
        })();
        match outcome {
            Ok(r) => {
                if st.lock.as_ref().is_some_and(|l| l.start_ts == start_ts) {
                    ex.batch.put(key, st);
                }
                results.push(r);
            }
            Err(TxnError::Locked(info)) => {
                let holder = info.lock_version;
                let key_hash = fingerprint64(key);
                let mut err = TxnError::Locked(info.clone());
                match profile {
                    LockWaitProfile::ServerWait if !no_wait => {
                        if !req.is_first_lock
                            && let Err(d) = ex.detector.detect_with(
                                start_ts,
                                holder,
                                key_hash,
                                key,
                                &ctx.resource_group_tag,
                                ex.now_ms,
                            )
                        {
                            errors.push(deadlock_error(holder, key, d).into_key_error());
                            if force {
                                results.push(failed_result());
                            }
                            return done(failed_response(errors, results, force), false, false);
                        }
                        let lock = st.lock.clone().unwrap_or_else(|| lock_from_info(&info));
                        return LockPass::Wait {
                            key: key.clone(),
                            lock,
                            key_hash,
                            edge: !req.is_first_lock,
                        };
                    }
                    LockWaitProfile::ServerWait => {}
                    LockWaitProfile::Immediate => {
                        if let Err(d) = ex.detector.detect_with(
                            start_ts,
                            holder,
                            key_hash,
                            key,
                            &ctx.resource_group_tag,
                            ex.now_ms,
                        ) {
                            err = deadlock_error(holder, key, d);
                        }
                    }
                }
                let locked = err.is_locked();
                saw_locked |= locked;
                errors.push(err.into_key_error());
                if force {
                    results.push(failed_result());
                }
                if (no_wait && locked) || stop_at_first_error {
                    break;
                }
            }
            Err(e) => {
                errors.push(e.into_key_error());
                if force {
                    results.push(failed_result());
                }
                if stop_at_first_error {
                    break;
                }
            }
        }
    }
    if !errors.is_empty() {
        return done(failed_response(errors, results, force), false, saw_locked);
    }
    let mut resp = kvrpcpb::PessimisticLockResponse::default();
    if force {
        resp.results = results;
    } else if req.return_values {
        for r in results {
            resp.not_founds.push(!r.existence);
            resp.values.push(r.value);
        }
    } else if req.check_existence {
        resp.not_founds = results.iter().map(|r| !r.existence).collect();
    }
    done(resp, true, false)
}

fn normal_result(
    req: &kvrpcpb::PessimisticLockRequest,
    value: Option<Vec<u8>>,
) -> kvrpcpb::PessimisticLockKeyResult {
    let existence = value.is_some();
    kvrpcpb::PessimisticLockKeyResult {
        r#type: ResultType::LockResultNormal as i32,
        value: if req.return_values {
            value.unwrap_or_default()
        } else {
            Vec::new()
        },
        existence: if req.return_values || req.check_existence {
            existence
        } else {
            false
        },
        ..Default::default()
    }
}

fn failed_response(
    errors: Vec<kvrpcpb::KeyError>,
    results: Vec<kvrpcpb::PessimisticLockKeyResult>,
    force: bool,
) -> kvrpcpb::PessimisticLockResponse {
    kvrpcpb::PessimisticLockResponse {
        errors,
        results: if force { results } else { Vec::new() },
        ..Default::default()
    }
}

fn deadlock_error(holder: u64, key: &[u8], d: super::deadlock::DeadlockError) -> TxnError {
    TxnError::Deadlock(kvrpcpb::Deadlock {
        lock_ts: holder,
        lock_key: key.to_vec(),
        deadlock_key_hash: d.key_hash,
        wait_chain: d.wait_chain,
        deadlock_key: d.key,
    })
}

fn lock_from_info(info: &kvrpcpb::LockInfo) -> Lock {
    Lock {
        start_ts: info.lock_version,
        primary: info.primary_lock.clone(),
        op: Op::try_from(info.lock_type).unwrap_or(Op::Put),
        value: Vec::new(),
        ttl: info.lock_ttl,
        for_update_ts: info.lock_for_update_ts,
        txn_size: info.txn_size,
        min_commit_ts: info.min_commit_ts,
        use_async_commit: info.use_async_commit,
        secondaries: info.secondaries.clone(),
        generation: 0,
        rollback_ts: Vec::new(),
        last_update_ms: 0,
    }
}

/// Removes a parked waiter and its detector edge when dropped (MC-2.11.3 step 3, MC-2.11.4).
struct WaitGuard<'a> {
    engine: &'a MvccEngine,
    id: u64,
    waiter_ts: u64,
    lock_ts: u64,
    key_hash: u64,
    edge: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock_ignoring_poison(&self.engine.inner.state);
        st.waiters.retain(|w| w.id != self.id);
        if self.edge {
            st.detector
                .clean_up_wait_for(self.waiter_ts, self.lock_ts, self.key_hash);
        }
    }
}

enum PassResult {
    Done(kvrpcpb::PessimisticLockResponse, bool),
    Wait {
        key: Vec<u8>,
        lock: Lock,
        rx: oneshot::Receiver<Option<u64>>,
        guard_id: u64,
        key_hash: u64,
        edge: bool,
    },
}

impl MvccEngine {
    /// One pass under the engine lock; a `Wait` is registered before the lock is released.
    fn run_lock_pass(
        &self,
        req: &kvrpcpb::PessimisticLockRequest,
        ctx: &kvrpcpb::Context,
        profile: LockWaitProfile,
        force_no_wait: bool,
    ) -> PassResult {
        let mut wait = None;
        let result = self.with_exec_raw(|ex| {
            let pass = lock_pass(ex, req, ctx, profile, force_no_wait);
            Ok(match pass {
                LockPass::Done {
                    resp,
                    apply,
                    saw_locked,
                } => (
                    Outcome {
                        resp: resp.into(),
                        apply,
                    },
                    saw_locked,
                ),
                LockPass::Wait {
                    key,
                    lock,
                    key_hash,
                    edge,
                } => {
                    wait = Some((key, lock, key_hash, edge));
                    (
                        Outcome::discard(kvrpcpb::PessimisticLockResponse::default()),
                        false,
                    )
                }
            })
        });
        let (resp, saw_locked) = match result {
            Ok((tikv_layers::CommandResponse::PessimisticLock(r), s)) => (r, s),
            _ => (kvrpcpb::PessimisticLockResponse::default(), false),
        };
        let Some((key, lock, key_hash, edge)) = wait else {
            return PassResult::Done(resp, saw_locked);
        };
        let (tx, rx) = oneshot::channel();
        let mut st = lock_ignoring_poison(&self.inner.state);
        let id = st.next_waiter_id;
        st.next_waiter_id += 1;
        // The lock may have gone between the pass and this registration only if the engine
        // lock was released in between; it was, so re-check.
        let still_there = st
            .data
            .get(&key)
            .and_then(|s| s.lock.as_ref())
            .is_some_and(|l| l.start_ts == lock.start_ts);
        if still_there {
            st.waiters.push(Waiter {
                id,
                key: key.clone(),
                lock_ts: lock.start_ts,
                waiter_ts: req.start_version,
                resource_group_tag: ctx.resource_group_tag.clone(),
                since_ms: self.inner.clock.now_ms(),
                tx,
            });
        } else {
            let commit_ts = st
                .data
                .get(&key)
                .and_then(|s| match s.txn_outcome(lock.start_ts) {
                    TxnOutcome::Committed(c) => Some(c),
                    _ => None,
                });
            let _ = tx.send(commit_ts);
        }
        PassResult::Wait {
            key,
            lock,
            rx,
            guard_id: id,
            key_hash,
            edge,
        }
    }

    /// MC-2.10 / MC-2.11: PessimisticLock with the configured lock-wait profile.
    pub(crate) async fn pessimistic_lock(
        &self,
        req: kvrpcpb::PessimisticLockRequest,
        _scope: &RegionScope,
    ) -> kvrpcpb::PessimisticLockResponse {
        let ctx = req.context.clone().unwrap_or_default();
        let profile = self.lock_wait_profile();
        let force = req.wake_up_mode == PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
        match self.run_lock_pass(&req, &ctx, profile, false) {
            PassResult::Done(resp, saw_locked) => {
                if profile == LockWaitProfile::Immediate && saw_locked && req.wait_timeout >= 0 {
                    tokio::time::sleep(IMMEDIATE_PAUSE).await;
                }
                resp
            }
            PassResult::Wait {
                key,
                lock,
                rx,
                guard_id,
                key_hash,
                edge,
            } => {
                let guard = WaitGuard {
                    engine: self,
                    id: guard_id,
                    waiter_ts: req.start_version,
                    lock_ts: lock.start_ts,
                    key_hash,
                    edge,
                };
                let max_wait = self
                    .inner
                    .max_wait_ms
                    .load(std::sync::atomic::Ordering::SeqCst);
                let wait_ms = if req.wait_timeout <= 0 {
                    max_wait
                } else {
                    (req.wait_timeout as u64).min(max_wait)
                };
                let woke = tokio::time::timeout(Duration::from_millis(wait_ms), rx).await;
                drop(guard);
                let released = match woke {
                    Ok(Ok(commit_ts)) => Some(commit_ts),
                    _ => None,
                };
                let Some(commit_ts) = released else {
                    // Timeout: the original KeyIsLocked.
                    return failed_response(
                        vec![TxnError::Locked(lock.info(&key)).into_key_error()],
                        vec![failed_result()],
                        force,
                    );
                };
                let conflict = || {
                    failed_response(
                        vec![
                            TxnError::conflict(
                                req.start_version,
                                lock.start_ts,
                                commit_ts.unwrap_or_else(|| self.next_ts()),
                                &key,
                                &req.primary_lock,
                                Reason::PessimisticRetry,
                            )
                            .into_key_error(),
                        ],
                        vec![failed_result()],
                        force,
                    )
                };
                if !force {
                    return conflict();
                }
                match self.run_lock_pass(&req, &ctx, profile, true) {
                    PassResult::Done(resp, _) => {
                        if resp.errors.iter().any(|e| e.locked.is_some()) {
                            conflict()
                        } else {
                            resp
                        }
                    }
                    PassResult::Wait { .. } => conflict(),
                }
            }
        }
    }
}

/// MC-2.12 PessimisticRollback.
pub(crate) fn pessimistic_rollback(
    ex: &mut Exec<'_>,
    req: kvrpcpb::PessimisticRollbackRequest,
    scope: &RegionScope,
) -> Outcome {
    let keys = if req.keys.is_empty() {
        ex.batch.keys_in(&scope.start_key, &scope.end_key)
    } else {
        req.keys.clone()
    };
    for key in keys {
        let mut st = ex.batch.get(&key);
        let matches = st.lock.as_ref().is_some_and(|l| {
            l.op == Op::PessimisticLock
                && l.start_ts == req.start_version
                && l.for_update_ts <= req.for_update_ts
        });
        if matches {
            st.lock = None;
            ex.batch.put(&key, st);
        }
    }
    ex.detector.clean_up(req.start_version);
    Outcome::apply(kvrpcpb::PessimisticRollbackResponse::default())
}
