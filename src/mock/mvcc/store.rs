//! The storage model of the mock MVCC engine (spec §2.5).
//!
//! One ordered map from user key to [`KeyState`]: at most one [`Lock`] plus the committed
//! facts ([`Write`] records) keyed by commit ts. mocktikv keeps the same facts in one leveldb
//! (`client-go: internal/mockstore/mocktikv/mvcc_leveldb.go` `MVCCLevelDB`, `mvcc.go`
//! `mvccLock`, `mvccValue`). Every request works on a [`Batch`]: a copy-on-write overlay whose
//! changes reach the store only when the whole request succeeded (MC-0.5).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use tikv_proto::kvrpcpb::{self, Op};

/// The uncommitted intent on a key (MC-2.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The owning transaction's start ts.
    pub start_ts: u64,
    /// The transaction's primary key.
    pub primary: Vec<u8>,
    /// `Put`, `Del`, `Lock` or `PessimisticLock`.
    pub op: Op,
    /// The value to commit (Put only).
    pub value: Vec<u8>,
    /// Time to live in ms, counted from the physical part of `start_ts`.
    pub ttl: u64,
    /// The pessimistic for-update ts (0 for optimistic locks).
    pub for_update_ts: u64,
    /// The transaction size hint sent by the client.
    pub txn_size: u64,
    /// The smallest commit ts allowed (pushed by readers, MC-2.14.3 row 6).
    pub min_commit_ts: u64,
    /// Whether the lock belongs to an async-commit transaction (MC-2.8.9).
    pub use_async_commit: bool,
    /// Secondaries of an async-commit primary lock.
    pub secondaries: Vec<Vec<u8>>,
    /// Pipelined-DML generation (0 for ordinary locks; MC-2.20.1).
    pub generation: u64,
    /// Rollbacks of other transactions recorded on this lock (MC-2.5.4).
    pub rollback_ts: Vec<u64>,
    /// Clock time (ms) of the last change.
    pub last_update_ms: u64,
}

impl Lock {
    /// The `LockInfo` projection of the lock for `key` (MC-2.5.2; mocktikv `lockErr`).
    pub fn info(&self, key: &[u8]) -> kvrpcpb::LockInfo {
        kvrpcpb::LockInfo {
            primary_lock: self.primary.clone(),
            lock_version: self.start_ts,
            key: key.to_vec(),
            lock_ttl: self.ttl,
            txn_size: self.txn_size,
            lock_type: self.op as i32,
            lock_for_update_ts: self.for_update_ts,
            use_async_commit: self.use_async_commit,
            min_commit_ts: self.min_commit_ts,
            secondaries: self.secondaries.clone(),
            ..Default::default()
        }
    }

    /// Whether the lock is a pessimistic lock (never blocks reads, never committed as data).
    pub fn is_pessimistic(&self) -> bool {
        self.op == Op::PessimisticLock
    }

    /// MC-2.14.2: expired when `physical(start_ts) + ttl < physical(current_ts)`.
    pub fn is_expired(&self, current_ts: u64) -> bool {
        physical(self.start_ts).saturating_add(self.ttl) < physical(current_ts)
    }
}

/// The kind of a committed fact (MC-2.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// A value was written.
    Put,
    /// The key was deleted.
    Delete,
    /// A lock-only record (`SELECT ... FOR UPDATE` keys).
    Lock,
    /// The transaction was rolled back on this key.
    Rollback,
}

impl WriteKind {
    /// The `Op` reported by MVCC inspection (MC-2.23.1).
    pub fn op(self) -> Op {
        match self {
            WriteKind::Put => Op::Put,
            WriteKind::Delete => Op::Del,
            WriteKind::Lock => Op::Lock,
            WriteKind::Rollback => Op::Rollback,
        }
    }
}

/// A write record (MC-2.5.3), stored at `commit_ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Put, Delete, Lock or Rollback.
    pub kind: WriteKind,
    /// Start ts of the transaction that wrote it.
    pub start_ts: u64,
    /// Commit ts (the map key; equals `start_ts` for rollback records).
    pub commit_ts: u64,
    /// The value (Put only).
    pub value: Vec<u8>,
    /// Set when a rollback of the transaction whose start ts equals `commit_ts` was folded
    /// into this record (MC-2.5.4).
    pub has_overlapped_rollback: bool,
}

/// Everything stored for one user key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    /// The key's lock, if any.
    pub lock: Option<Lock>,
    /// Write records by commit ts.
    pub writes: BTreeMap<u64, Write>,
}

/// Outcome of a transaction on one key (MC-2.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Committed at this commit ts.
    Committed(u64),
    /// Rolled back (a rollback record or an overlapped-rollback flag).
    RolledBack,
    /// Nothing recorded.
    Unknown,
}

/// The physical (ms) part of a timestamp.
pub fn physical(ts: u64) -> u64 {
    ts >> 18
}

impl KeyState {
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock.is_none() && self.writes.is_empty()
    }

    /// MC-2.5.6: the newest Put/Delete with `commit_ts <= ts`.
    pub fn latest_data(&self, ts: u64) -> Option<&Write> {
        self.writes
            .range(..=ts)
            .rev()
            .map(|(_, w)| w)
            .find(|w| matches!(w.kind, WriteKind::Put | WriteKind::Delete))
    }

    /// The value visible at `ts` and its commit ts (None when absent or deleted).
    pub fn value_at(&self, ts: u64) -> Option<(&[u8], u64)> {
        match self.latest_data(ts) {
            Some(w) if w.kind == WriteKind::Put => Some((w.value.as_slice(), w.commit_ts)),
            _ => None,
        }
    }

    /// The newest write of any kind with `commit_ts > ts`.
    pub fn newest_write_after(&self, ts: u64) -> Option<&Write> {
        self.writes
            .range((Bound::Excluded(ts), Bound::Unbounded))
            .next_back()
            .map(|(_, w)| w)
    }

    /// MC-2.5.5: the status of transaction `start_ts` on this key.
    pub fn txn_outcome(&self, start_ts: u64) -> TxnOutcome {
        if let Some(w) = self.writes.values().find(|w| w.start_ts == start_ts) {
            return if w.kind == WriteKind::Rollback {
                TxnOutcome::RolledBack
            } else {
                TxnOutcome::Committed(w.commit_ts)
            };
        }
        match self.writes.get(&start_ts) {
            Some(w) if w.has_overlapped_rollback => TxnOutcome::RolledBack,
            _ => TxnOutcome::Unknown,
        }
    }

    /// Writes a rollback record for `start_ts` (MC-2.5.3, MC-2.5.4): folds it into another
    /// transaction's commit record at the same ts, and records it on another transaction's
    /// lock.
    pub fn write_rollback(&mut self, start_ts: u64) {
        match self.writes.get_mut(&start_ts) {
            Some(w) if w.kind == WriteKind::Rollback => {}
            Some(w) => w.has_overlapped_rollback = true,
            None => {
                self.writes.insert(
                    start_ts,
                    Write {
                        kind: WriteKind::Rollback,
                        start_ts,
                        commit_ts: start_ts,
                        value: Vec::new(),
                        has_overlapped_rollback: false,
                    },
                );
            }
        }
        if let Some(lock) = self.lock.as_mut()
            && lock.start_ts != start_ts
            && !lock.rollback_ts.contains(&start_ts)
        {
            lock.rollback_ts.push(start_ts);
        }
    }

    /// Writes the commit record of `lock` at `commit_ts` (MC-2.9.1 with MC-2.5.4) and removes
    /// the lock. A pessimistic lock is removed without any record.
    pub fn commit_lock(&mut self, lock: &Lock, commit_ts: u64) {
        self.lock = None;
        let kind = match lock.op {
            Op::Put | Op::Insert => WriteKind::Put,
            Op::Del => WriteKind::Delete,
            Op::Lock => WriteKind::Lock,
            _ => return,
        };
        let overlapped = lock.rollback_ts.contains(&commit_ts)
            || matches!(self.writes.get(&commit_ts),
                Some(w) if w.kind == WriteKind::Rollback || w.has_overlapped_rollback);
        self.writes.insert(
            commit_ts,
            Write {
                kind,
                start_ts: lock.start_ts,
                commit_ts,
                value: if kind == WriteKind::Put {
                    lock.value.clone()
                } else {
                    Vec::new()
                },
                has_overlapped_rollback: overlapped,
            },
        );
    }
}

/// The key space: user key -> state, in byte order (MC-2.5.1).
pub type KeySpace = BTreeMap<Vec<u8>, KeyState>;

/// A released lock: wakes waiters blocked on `(key, start_ts)` (MC-2.11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The key whose lock went away.
    pub key: Vec<u8>,
    /// Start ts of the released lock.
    pub start_ts: u64,
    /// The commit ts when the lock was committed, else `None`.
    pub commit_ts: Option<u64>,
}

/// A copy-on-write overlay over the key space: reads see the request's own changes, and the
/// changes are applied only by `Batch::apply` (MC-0.5 all-or-nothing).
#[derive(Debug)]
pub struct Batch<'a> {
    base: &'a KeySpace,
    changed: HashMap<Vec<u8>, KeyState>,
    /// Locks released by this request (for waking waiters).
    pub released: Vec<Release>,
}

impl<'a> Batch<'a> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a KeySpace) -> Batch<'a> {
        Batch {
            base,
            changed: HashMap::new(),
            released: Vec::new(),
        }
    }

    /// The current state of `key` (empty when nothing is stored).
    pub fn get(&self, key: &[u8]) -> KeyState {
        if let Some(s) = self.changed.get(key) {
            return s.clone();
        }
        self.base.get(key).cloned().unwrap_or_default()
    }

    /// A reference to the current state of `key`, if any.
    pub fn peek(&self, key: &[u8]) -> Option<&KeyState> {
        self.changed.get(key).or_else(|| self.base.get(key))
    }

    /// Replaces the state of `key`; records a lock release when a lock of another start ts
    /// (or no lock) replaces the old one.
    pub fn put(&mut self, key: &[u8], state: KeyState) {
        let old_lock = self
            .peek(key)
            .and_then(|s| s.lock.as_ref())
            .map(|l| l.start_ts);
        if let Some(old_ts) = old_lock
            && state.lock.as_ref().map(|l| l.start_ts) != Some(old_ts)
        {
            let commit_ts = match state.txn_outcome(old_ts) {
                TxnOutcome::Committed(c) => Some(c),
                _ => None,
            };
            self.released.push(Release {
                key: key.to_vec(),
                start_ts: old_ts,
                commit_ts,
            });
        }
        self.changed.insert(key.to_vec(), state);
    }

    /// Keys in `[start, end)` (empty `end` = unbounded) that hold anything, including keys
    /// this batch touched, ascending.
    pub fn keys_in(&self, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
        if !end.is_empty() && start >= end {
            // An empty or inverted range (BTreeMap::range would panic on it).
            return Vec::new();
        }
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end.to_vec())
        };
        let mut keys: Vec<Vec<u8>> = self
            .base
            .range((Bound::Included(start.to_vec()), upper))
            .map(|(k, _)| k.clone())
            .collect();
        for k in self.changed.keys() {
            if k.as_slice() >= start && (end.is_empty() || k.as_slice() < end) {
                keys.push(k.clone());
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Consumes the overlay, returning the changes and the released locks.
    pub fn into_changes(self) -> (HashMap<Vec<u8>, KeyState>, Vec<Release>) {
        (self.changed, self.released)
    }
}

/// Applies the changes of a batch to the key space (empty states are removed).
pub fn apply(space: &mut KeySpace, changes: HashMap<Vec<u8>, KeyState>) {
    for (k, s) in changes {
        if s.is_empty() {
            space.remove(&k);
        } else {
            space.insert(k, s);
        }
    }
}
