//! The mock cluster's MVCC/Percolator engine and deadlock detector (spec §2.5-2.20, §2.23,
//! §2.25, §4).
//!
//! One [`MvccEngine`] holds the transactional key space shared by every mock store
//! (MC-2.5.1; mocktikv's single leveldb, `client-go: internal/mockstore/mocktikv/
//! mvcc_leveldb.go` `MVCCLevelDB`). The cluster routes a request, runs the region and key
//! checks, and calls [`MvccEngine::execute`] with the routed region's [`RegionScope`]; the
//! engine answers with the typed response, key errors inside it exactly where TiKV puts them.
//!
//! Atomicity (MC-0.5): one engine-wide mutex guards every command's effects, and each request
//! works on a copy-on-write [`store::Batch`] that is applied only when the request succeeds.
//! Pessimistic lock waiting (§2.11) releases the mutex while it waits: the waiter is parked on
//! a oneshot channel that a lock release fires, and a guard removes the waiter and its
//! detector edge if the request is dropped (MC-2.11.4).
//!
//! Time (TTL expiry, waits) comes from the cluster [`Clock`]; timestamps the engine must
//! invent (async-commit `min_commit_ts`, 1PC commit ts, wake-up conflict ts) come from a TSO
//! source the cluster installs with [`MvccEngine::set_tso`] (default: derived from the clock).

// Key errors carry whole kvproto `LockInfo`s and responses are large messages; boxing them
// would only add noise to a mock that is not on a hot path.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod deadlock;
mod errors;
pub mod farmhash;
mod pessimistic;
mod read;
pub mod store;
mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tikv_layers::{Command, CommandResponse, Error, ErrorDetail};
use tikv_proto::kvrpcpb;
use tokio::sync::oneshot;

use crate::mock::Clock;

use self::deadlock::Detector;
use self::store::{Batch, KeySpace, KeyState, Release};

pub use self::farmhash::fingerprint64;

/// The routed region's key range in USER-key space; empty end_key = unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionScope {
    /// The region the request was routed to.
    pub region_id: u64,
    /// Inclusive start of the region (user key).
    pub start_key: Vec<u8>,
    /// Exclusive end of the region (user key); empty = unbounded.
    pub end_key: Vec<u8>,
}

impl RegionScope {
    /// A scope covering the whole key space (region 0); handy for tests and store-level calls.
    pub fn everything() -> RegionScope {
        RegionScope::default()
    }

    /// Whether `key` lies in `[start_key, end_key)` (mocktikv `regionContains`; empty bounds
    /// are unbounded).
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    /// Clamps `[start, end)` (empty end = unbounded) to the region.
    pub(crate) fn clamp(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let lo = if start > self.start_key.as_slice() {
            start.to_vec()
        } else {
            self.start_key.clone()
        };
        let hi = match (end.is_empty(), self.end_key.is_empty()) {
            (true, _) => self.end_key.clone(),
            (false, true) => end.to_vec(),
            (false, false) => {
                if end < self.end_key.as_slice() {
                    end.to_vec()
                } else {
                    self.end_key.clone()
                }
            }
        };
        (lo, hi)
    }
}

/// How a pessimistic lock request behaves when it meets another transaction's lock
/// (MC-1.20.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWaitProfile {
    /// mocktikv: never wait on the server; answer `KeyIsLocked` after a 5 ms pause
    /// (MC-2.11.1).
    #[default]
    Immediate,
    /// unistore/TiKV: wait on the server until the lock is released or the wait times out,
    /// then answer a write conflict (MC-2.11.2).
    ServerWait,
}

/// A source of fresh timestamps (the cluster TSO).
pub type TsoSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// One parked pessimistic-lock waiter (ServerWait profile).
struct Waiter {
    id: u64,
    key: Vec<u8>,
    lock_ts: u64,
    waiter_ts: u64,
    resource_group_tag: Vec<u8>,
    since_ms: u64,
    tx: oneshot::Sender<Option<u64>>,
}

/// Everything under the engine lock.
struct State {
    data: KeySpace,
    detector: Detector,
    waiters: Vec<Waiter>,
    next_waiter_id: u64,
    /// Region id -> flashback start ts, for regions with a flashback in progress (§2.25).
    flashback: HashMap<u64, u64>,
    /// Statuses received through `BroadcastTxnStatus` (MC-2.20.4), by start ts.
    txn_status: HashMap<u64, kvrpcpb::TxnStatus>,
}

struct Inner {
    clock: Clock,
    state: Mutex<State>,
    profile: Mutex<LockWaitProfile>,
    max_wait_ms: AtomicU64,
    tso: Mutex<Option<TsoSource>>,
    last_ts: AtomicU64,
}

/// The mock MVCC engine shared by every store of a mock cluster. Cheap to clone.
#[derive(Clone)]
pub struct MvccEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for MvccEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MvccEngine")
            .field("profile", &self.lock_wait_profile())
            .finish_non_exhaustive()
    }
}

/// A lock/write snapshot of one key, for tests and debugging.
pub type KeyDump = KeyState;

/// The default `max_wait` of the ServerWait profile (unistore `normalizeWaitTime`).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1000);

/// mocktikv's simulated server-side wait in the Immediate profile (`simulateServerSideWaitLock`).
pub const IMMEDIATE_PAUSE: Duration = Duration::from_millis(5);

/// Per-request execution context handed to the command implementations.
pub(crate) struct Exec<'a> {
    pub(crate) batch: Batch<'a>,
    pub(crate) detector: &'a mut Detector,
    pub(crate) flashback: &'a mut HashMap<u64, u64>,
    pub(crate) txn_status: &'a mut HashMap<u64, kvrpcpb::TxnStatus>,
    pub(crate) engine: &'a MvccEngine,
    pub(crate) now_ms: u64,
    /// Transactions that finished in this request (detector cleanup on success, MC-4.4).
    pub(crate) finished_txns: Vec<u64>,
}

impl Exec<'_> {
    /// A fresh timestamp from the TSO source.
    pub(crate) fn tso(&self) -> u64 {
        self.engine.next_ts()
    }
}

/// Whether a command's effects are applied.
pub(crate) struct Outcome {
    pub(crate) resp: CommandResponse,
    pub(crate) apply: bool,
}

impl Outcome {
    pub(crate) fn apply(resp: impl Into<CommandResponse>) -> Outcome {
        Outcome {
            resp: resp.into(),
            apply: true,
        }
    }
    pub(crate) fn discard(resp: impl Into<CommandResponse>) -> Outcome {
        Outcome {
            resp: resp.into(),
            apply: false,
        }
    }
}

impl MvccEngine {
    /// A new, empty engine reading time from `clock`.
    pub fn new(clock: Clock) -> MvccEngine {
        MvccEngine {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(State {
                    data: KeySpace::new(),
                    detector: Detector::new(),
                    waiters: Vec::new(),
                    next_waiter_id: 1,
                    flashback: HashMap::new(),
                    txn_status: HashMap::new(),
                }),
                profile: Mutex::new(LockWaitProfile::Immediate),
                max_wait_ms: AtomicU64::new(DEFAULT_MAX_WAIT.as_millis() as u64),
                tso: Mutex::new(None),
                last_ts: AtomicU64::new(0),
            }),
        }
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Selects the lock-wait profile (MC-1.20.1); `Immediate` by default.
    pub fn set_lock_wait_profile(&self, profile: LockWaitProfile) {
        *lock_ignoring_poison(&self.inner.profile) = profile;
    }

    /// The current lock-wait profile.
    pub fn lock_wait_profile(&self) -> LockWaitProfile {
        *lock_ignoring_poison(&self.inner.profile)
    }

    /// Sets `max_wait` of the ServerWait profile (MC-2.11.2; default 1000 ms).
    pub fn set_max_wait(&self, max_wait: Duration) {
        self.inner
            .max_wait_ms
            .store(max_wait.as_millis() as u64, Ordering::SeqCst);
    }

    /// Installs the cluster TSO used for async-commit / 1PC timestamps (MC-2.8.9). Without
    /// one, the engine derives strictly increasing timestamps from the clock.
    pub fn set_tso(&self, tso: TsoSource) {
        *lock_ignoring_poison(&self.inner.tso) = Some(tso);
    }

    /// A fresh timestamp: from the installed TSO, else `now_ms << 18` made strictly
    /// increasing.
    pub fn next_ts(&self) -> u64 {
        let installed = lock_ignoring_poison(&self.inner.tso).clone();
        if let Some(f) = installed {
            return f();
        }
        let candidate = self.inner.clock.now_ms() << 18;
        let mut last = self.inner.last_ts.load(Ordering::SeqCst);
        loop {
            let next = candidate.max(last + 1);
            match self.inner.last_ts.compare_exchange(
                last,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return next,
                Err(cur) => last = cur,
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_ignoring_poison(&self.inner.state)
    }

    /// Executes one transactional command whose keys already passed the region checks.
    ///
    /// Key errors are returned inside the response as TiKV/mocktikv put them; commands the
    /// engine does not serve answer `Err(ErrorDetail::Internal)`.
    pub async fn execute(
        &self,
        cmd: Command,
        scope: &RegionScope,
    ) -> Result<CommandResponse, Error> {
        match cmd {
            Command::PessimisticLock(req) => Ok(CommandResponse::PessimisticLock(
                self.pessimistic_lock(req, scope).await,
            )),
            cmd => self.run_sync(cmd, scope),
        }
    }

    /// Runs a non-waiting command under the engine lock.
    fn run_sync(&self, cmd: Command, scope: &RegionScope) -> Result<CommandResponse, Error> {
        self.with_exec_raw(|ex| dispatch(ex, cmd, scope))
            .map(|(resp, ())| resp)
    }

    /// Runs `f` with an [`Exec`] under the engine lock, applies its batch when the outcome
    /// asks for it, and returns the response plus `f`'s extra value.
    pub(crate) fn with_exec_raw<T>(
        &self,
        f: impl FnOnce(&mut Exec<'_>) -> Result<(Outcome, T), Error>,
    ) -> Result<(CommandResponse, T), Error> {
        let now_ms = self.inner.clock.now_ms();
        let mut guard = self.state();
        let st = &mut *guard;
        let mut ex = Exec {
            batch: Batch::new(&st.data),
            detector: &mut st.detector,
            flashback: &mut st.flashback,
            txn_status: &mut st.txn_status,
            engine: self,
            now_ms,
            finished_txns: Vec::new(),
        };
        let (outcome, extra) = f(&mut ex)?;
        let finished = std::mem::take(&mut ex.finished_txns);
        let (changes, released) = ex.batch.into_changes();
        if outcome.apply {
            store::apply(&mut st.data, changes);
            for txn in finished {
                st.detector.clean_up(txn);
                st.detector.clean_up_waits_on(txn);
            }
            wake_waiters(&mut st.waiters, released);
        }
        Ok((outcome.resp, extra))
    }

    // ----- inspection and maintenance hooks -----

    /// A copy of everything stored for `key` (None when nothing is stored).
    pub fn key_state(&self, key: &[u8]) -> Option<KeyDump> {
        self.state().data.get(key).cloned()
    }

    /// A copy of the whole transactional key space, in key order.
    pub fn dump(&self) -> Vec<(Vec<u8>, KeyDump)> {
        self.state()
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Number of keys holding a lock.
    pub fn lock_count(&self) -> usize {
        self.state()
            .data
            .values()
            .filter(|s| s.lock.is_some())
            .count()
    }

    /// The detector's current wait-for entries (MC-2.11.5 `GetLockWaitInfo` material).
    pub fn wait_for_entries(&self) -> Vec<tikv_proto::deadlock::WaitForEntry> {
        let now = self.inner.clock.now_ms();
        self.state().detector.entries(now)
    }

    /// MC-2.11.5 lock wait info: one entry per parked waiter (ServerWait profile).
    pub fn lock_wait_info(&self) -> Vec<tikv_proto::deadlock::WaitForEntry> {
        let now = self.inner.clock.now_ms();
        self.state()
            .waiters
            .iter()
            .map(|w| tikv_proto::deadlock::WaitForEntry {
                txn: w.waiter_ts,
                wait_for_txn: w.lock_ts,
                key_hash: fingerprint64(&w.key),
                key: w.key.clone(),
                resource_group_tag: w.resource_group_tag.clone(),
                wait_time: now.saturating_sub(w.since_ms),
            })
            .collect()
    }

    /// Number of pessimistic-lock requests currently parked (ServerWait profile).
    pub fn waiter_count(&self) -> usize {
        self.state().waiters.len()
    }

    /// Runs `f` on the deadlock detector under the engine lock.
    pub fn with_detector<T>(&self, f: impl FnOnce(&mut Detector) -> T) -> T {
        f(&mut self.state().detector)
    }

    /// The flashback start ts of `region_id` while a flashback is in progress (§2.25); the
    /// cluster answers other requests to that region with `FlashbackInProgress`.
    pub fn flashback_in_progress(&self, region_id: u64) -> Option<u64> {
        self.state().flashback.get(&region_id).copied()
    }

    /// Statuses received through `BroadcastTxnStatus` (MC-2.20.4), by start ts.
    pub fn broadcast_txn_status(&self, start_ts: u64) -> Option<kvrpcpb::TxnStatus> {
        self.state().txn_status.get(&start_ts).cloned()
    }

    /// GC at `safe_point` over the scope (MC-2.19.3; mocktikv `GC`). Fails, naming the key,
    /// when a lock with `start_ts <= safe_point` exists in the scope.
    pub fn gc(&self, scope: &RegionScope, safe_point: u64) -> Result<(), String> {
        let mut st = self.state();
        write::gc(&mut st.data, scope, safe_point)
    }

    /// Physically removes every MVCC record in `[start, end)` (empty end = unbounded),
    /// waking waiters of removed locks; used by `UnsafeDestroyRange` (MC-2.19.2).
    pub fn destroy_range(&self, start: &[u8], end: &[u8]) {
        let mut guard = self.state();
        let st = &mut *guard;
        let released = store_remove_range(&mut st.data, start, end);
        wake_waiters(&mut st.waiters, released);
    }
}

/// Removes everything in `[start, end)` directly from the key space.
fn store_remove_range(data: &mut KeySpace, start: &[u8], end: &[u8]) -> Vec<Release> {
    let keys: Vec<Vec<u8>> = data
        .range(start.to_vec()..)
        .map(|(k, _)| k.clone())
        .take_while(|k| end.is_empty() || k.as_slice() < end)
        .collect();
    let mut released = Vec::new();
    for k in keys {
        if let Some(s) = data.remove(&k)
            && let Some(l) = s.lock
        {
            released.push(Release {
                key: k,
                start_ts: l.start_ts,
                commit_ts: None,
            });
        }
    }
    released
}

/// Fires the waiters blocked on released locks (MC-2.11.3).
fn wake_waiters(waiters: &mut Vec<Waiter>, released: Vec<Release>) {
    if released.is_empty() || waiters.is_empty() {
        return;
    }
    let mut i = 0;
    while i < waiters.len() {
        let hit = released
            .iter()
            .find(|r| r.key == waiters[i].key && r.start_ts == waiters[i].lock_ts);
        if let Some(r) = hit {
            let commit_ts = r.commit_ts;
            let w = waiters.swap_remove(i);
            let _ = w.tx.send(commit_ts);
        } else {
            i += 1;
        }
    }
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request context of a command (default when absent).
pub(crate) fn ctx_of(cmd: &Command) -> kvrpcpb::Context {
    cmd.context().cloned().unwrap_or_default()
}

/// Routes a non-waiting command to its implementation.
fn dispatch(ex: &mut Exec<'_>, cmd: Command, scope: &RegionScope) -> Result<(Outcome, ()), Error> {
    let ctx = ctx_of(&cmd);
    let out = match cmd {
        Command::Get(r) => read::get(ex, r, &ctx),
        Command::Scan(r) => read::scan(ex, r, &ctx, scope),
        Command::BatchGet(r) => read::batch_get(ex, r, &ctx),
        Command::BufferBatchGet(r) => read::buffer_batch_get(ex, r),
        Command::ScanLock(r) => read::scan_lock(ex, r, scope),
        Command::MvccGetByKey(r) => read::mvcc_get_by_key(ex, r),
        Command::MvccGetByStartTs(r) => read::mvcc_get_by_start_ts(ex, r, scope),
        Command::Prewrite(r) => write::prewrite(ex, r, &ctx),
        Command::Commit(r) => write::commit(ex, r),
        Command::Cleanup(r) => write::cleanup(ex, r),
        Command::BatchRollback(r) => write::batch_rollback(ex, r),
        Command::ResolveLock(r) => write::resolve_lock(ex, r, scope),
        Command::DeleteRange(r) => write::delete_range(ex, r),
        Command::PessimisticRollback(r) => pessimistic::pessimistic_rollback(ex, r, scope),
        Command::TxnHeartBeat(r) => write::txn_heart_beat(ex, r),
        Command::CheckTxnStatus(r) => write::check_txn_status(ex, r),
        Command::CheckSecondaryLocks(r) => write::check_secondary_locks(ex, r),
        Command::Flush(r) => write::flush(ex, r),
        Command::BroadcastTxnStatus(r) => write::broadcast_txn_status(ex, r),
        Command::UnsafeDestroyRange(r) => write::unsafe_destroy_range(ex, r),
        Command::PrepareFlashbackToVersion(r) => write::prepare_flashback(ex, r, scope),
        Command::FlashbackToVersion(r) => write::flashback(ex, r, scope),
        other => {
            return Err(Error::new(ErrorDetail::Internal(format!(
                "mock mvcc engine does not serve {}",
                other.cmd_type()
            ))));
        }
    };
    Ok((out, ()))
}
