//! The latch table (client-go: `internal/latch/latch.go`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Idle latch nodes older than this (by TSO physical time) are recycled.
pub(super) const EXPIRE_DURATION: Duration = Duration::from_secs(120);
/// A slot with at least this many nodes recycles idle ones before acquiring.
const LATCH_LIST_COUNT: usize = 5;

/// The outcome of trying to acquire a lock's latches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcquireResult {
    /// Every latch is held.
    Success,
    /// Queued behind another lock.
    Locked,
    /// A key was committed after the lock's start ts.
    Stale,
}

/// One transaction's claim on a set of keys (client-go: `latch.Lock`).
///
/// Shared between the transaction and the latch slots it waits in.
#[derive(Debug)]
pub struct Lock {
    /// Sorted keys.
    keys: Vec<Vec<u8>>,
    required_slots: Vec<usize>,
    /// How many of `keys` are held (for a stale lock: including the one that made it stale).
    acquired_count: AtomicUsize,
    start_ts: u64,
    commit_ts: AtomicU64,
    is_stale: AtomicBool,
    /// Wakes the blocked `LatchesScheduler::lock` call.
    pub(super) notify: Notify,
}

impl Lock {
    /// Whether a key was committed after this transaction started; it must restart
    /// (`ErrWriteConflictInLatch`).
    pub fn is_stale(&self) -> bool {
        self.is_stale.load(Ordering::SeqCst)
    }

    /// The transaction's start ts.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    /// Records the commit ts, stored in the latches on release.
    pub fn set_commit_ts(&self, commit_ts: u64) {
        self.commit_ts.store(commit_ts, Ordering::SeqCst);
    }

    /// The commit ts set by [`set_commit_ts`](Self::set_commit_ts) (0 if none).
    pub fn commit_ts(&self) -> u64 {
        self.commit_ts.load(Ordering::SeqCst)
    }

    /// Whether the lock still waits for latches.
    pub(super) fn is_locked(&self) -> bool {
        !self.is_stale() && self.acquired() != self.required_slots.len()
    }

    fn acquired(&self) -> usize {
        self.acquired_count.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Node {
    key: Vec<u8>,
    max_commit_ts: u64,
    holder: Option<Arc<Lock>>,
}

#[derive(Debug, Default)]
struct Latch {
    queue: Vec<Node>,
    waiting: Vec<Arc<Lock>>,
}

impl Latch {
    /// Drops idle nodes committed at least [`EXPIRE_DURATION`] before `current_ts`.
    fn recycle(&mut self, current_ts: u64) -> usize {
        let before = self.queue.len();
        self.queue.retain(|n| {
            n.holder.is_some() || tso_sub_ms(current_ts, n.max_commit_ts) < expire_ms()
        });
        before - self.queue.len()
    }
}

fn expire_ms() -> i64 {
    EXPIRE_DURATION.as_millis() as i64
}

/// Physical milliseconds of `ts1 - ts2` (client-go: `tsoSub`; TSO physical part = `ts >> 18`).
pub(super) fn tso_sub_ms(ts1: u64, ts2: u64) -> i64 {
    (ts1 >> 18) as i64 - (ts2 >> 18) as i64
}

/// The latch table (client-go: `latch.Latches`).
#[derive(Debug)]
pub struct Latches {
    slots: Vec<Mutex<Latch>>,
}

fn lock_slot(m: &Mutex<Latch>) -> MutexGuard<'_, Latch> {
    // A panic while holding a slot leaves it consistent enough to keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Latches {
    /// A table with `size` rounded up to a power of two slots (client-go: `NewLatches`).
    pub fn new(size: usize) -> Self {
        let n = size.max(1).next_power_of_two();
        Latches {
            slots: (0..n).map(|_| Mutex::new(Latch::default())).collect(),
        }
    }

    fn slot_id(&self, key: &[u8]) -> usize {
        murmur3_32(key) as usize & (self.slots.len() - 1)
    }

    /// Sorts `keys` and builds the lock (client-go: `genLock`).
    pub(super) fn gen_lock(&self, start_ts: u64, mut keys: Vec<Vec<u8>>) -> Arc<Lock> {
        keys.sort();
        let required_slots = keys.iter().map(|k| self.slot_id(k)).collect();
        Arc::new(Lock {
            keys,
            required_slots,
            acquired_count: AtomicUsize::new(0),
            start_ts,
            commit_ts: AtomicU64::new(0),
            is_stale: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }

    /// Acquires the lock's remaining latches in key order (client-go: `acquire`).
    pub(super) fn acquire(&self, lock: &Arc<Lock>) -> AcquireResult {
        if lock.is_stale() {
            return AcquireResult::Stale;
        }
        while lock.acquired() < lock.required_slots.len() {
            let status = self.acquire_slot(lock);
            if status != AcquireResult::Success {
                return status;
            }
        }
        AcquireResult::Success
    }

    fn acquire_slot(&self, lock: &Arc<Lock>) -> AcquireResult {
        let i = lock.acquired();
        let key = &lock.keys[i];
        let mut latch = lock_slot(&self.slots[lock.required_slots[i]]);
        if latch.queue.len() >= LATCH_LIST_COUNT {
            latch.recycle(lock.start_ts);
        }
        let Some(node) = latch.queue.iter_mut().find(|n| &n.key == key) else {
            latch.queue.push(Node {
                key: key.clone(),
                max_commit_ts: 0,
                holder: Some(Arc::clone(lock)),
            });
            lock.acquired_count.fetch_add(1, Ordering::SeqCst);
            return AcquireResult::Success;
        };
        if node.max_commit_ts > lock.start_ts {
            lock.is_stale.store(true, Ordering::SeqCst);
            return AcquireResult::Stale;
        }
        if node.holder.is_none() {
            node.holder = Some(Arc::clone(lock));
            lock.acquired_count.fetch_add(1, Ordering::SeqCst);
            return AcquireResult::Success;
        }
        latch.waiting.push(Arc::clone(lock));
        AcquireResult::Locked
    }

    /// Releases every latch the lock holds, newest first, and returns the locks to wake
    /// (client-go: `release`).
    pub(super) fn release(&self, lock: &Arc<Lock>) -> Vec<Arc<Lock>> {
        let mut wakeup = Vec::new();
        while lock.acquired() > 0 {
            if let Some(next) = self.release_slot(lock) {
                wakeup.push(next);
            }
        }
        wakeup
    }

    fn release_slot(&self, lock: &Arc<Lock>) -> Option<Arc<Lock>> {
        let i = lock.acquired() - 1;
        let key = &lock.keys[i];
        lock.acquired_count.store(i, Ordering::SeqCst);
        let mut latch = lock_slot(&self.slots[lock.required_slots[i]]);
        let latch = &mut *latch;
        let node = latch.queue.iter_mut().find(|n| &n.key == key)?;
        // client-go panics when the node's holder is not this lock ("releaseSlot wrong"); that
        // cannot happen with locks built by this table, so it is only checked in debug builds.
        debug_assert!(node.holder.as_ref().is_some_and(|h| Arc::ptr_eq(h, lock)));
        node.max_commit_ts = node.max_commit_ts.max(lock.commit_ts());
        node.holder = None;
        // Wake the first waiter for this key.
        let idx = latch
            .waiting
            .iter()
            .position(|w| w.keys.get(w.acquired()) == Some(key))?;
        let next = latch.waiting.remove(idx);
        if node.max_commit_ts > next.start_ts {
            // The waiter would be stale: hand it the node so its own release clears it.
            node.holder = Some(Arc::clone(&next));
            next.acquired_count.fetch_add(1, Ordering::SeqCst);
            next.is_stale.store(true, Ordering::SeqCst);
        }
        Some(next)
    }

    /// Drops idle nodes of every slot (client-go: `Latches.recycle`).
    pub(super) fn recycle(&self, current_ts: u64) {
        let total: usize = self
            .slots
            .iter()
            .map(|s| lock_slot(s).recycle(current_ts))
            .sum();
        tracing::debug!(count = total, "latches recycled");
    }

    #[cfg(test)]
    fn all_empty(&self) -> bool {
        self.slots.iter().all(|s| lock_slot(s).queue.is_empty())
    }
}

/// murmur3 x86 32-bit hash with seed 0 (what client-go's `murmur3.Sum32` computes).
fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k: u32 = 0;
    for (i, &b) in tail.iter().enumerate() {
        k |= u32::from(b) << (8 * i);
    }
    if !tail.is_empty() {
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    static TSO: AtomicU64 = AtomicU64::new(0);
    fn get_tso() -> u64 {
        TSO.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    /// A TSO for a physical time in ms.
    fn ts_of_ms(ms: u64) -> u64 {
        ms << 18
    }

    #[test]
    fn murmur3_known_values() {
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"hello"), 0x248b_fa47);
        assert_eq!(murmur3_32(b"hello, world"), 0x149b_bb7f);
    }

    // client-go: T-TXN-009 TestWakeUp
    #[test]
    fn wake_up() {
        let latches = Latches::new(256);
        let lock_a = latches.gen_lock(get_tso(), keys(&["a", "b", "c"]));
        let keys_b = keys(&["d", "e", "a", "c"]);
        let start_b = get_tso();
        let lock_b = latches.gen_lock(start_b, keys_b.clone());

        assert_eq!(latches.acquire(&lock_a), AcquireResult::Success);
        assert_eq!(latches.acquire(&lock_b), AcquireResult::Locked);

        lock_a.set_commit_ts(get_tso());
        let wakeup = latches.release(&lock_a);
        assert_eq!(wakeup[0].start_ts, start_b);

        // B is stale: A committed after B started.
        assert_eq!(latches.acquire(&lock_b), AcquireResult::Stale);
        let wakeup = latches.release(&lock_b);
        assert!(wakeup.is_empty());

        // B restarts with a new start ts.
        let lock_b = latches.gen_lock(get_tso(), keys_b);
        assert_eq!(latches.acquire(&lock_b), AcquireResult::Success);
    }

    // client-go: T-TXN-010 TestFirstAcquireFailedWithStale
    #[test]
    fn first_acquire_failed_with_stale() {
        let latches = Latches::new(256);
        let ks = keys(&["a", "b", "c"]);
        let lock_a = latches.gen_lock(get_tso(), ks.clone());
        let start_b = get_tso();
        let lock_b = latches.gen_lock(start_b, ks);
        assert_eq!(latches.acquire(&lock_a), AcquireResult::Success);
        let commit_a = get_tso();
        lock_a.set_commit_ts(commit_a);
        latches.release(&lock_a);
        assert!(commit_a > start_b);
        assert_eq!(latches.acquire(&lock_b), AcquireResult::Stale);
        latches.release(&lock_b);
    }

    // client-go: T-TXN-011 TestRecycle
    #[test]
    fn recycle() {
        let latches = Latches::new(8);
        let now_ms = 1_700_000_000_000u64;
        let start_ts = ts_of_ms(now_ms);
        let lock = latches.gen_lock(start_ts, keys(&["a", "b"]));
        let lock1 = latches.gen_lock(start_ts, keys(&["b", "c"]));
        assert_eq!(latches.acquire(&lock), AcquireResult::Success);
        assert_eq!(latches.acquire(&lock1), AcquireResult::Locked);
        lock.set_commit_ts(start_ts + 1);
        latches.release(&lock);
        // Releasing `lock` granted its latch to `lock1` (as stale), so release that too.
        latches.release(&lock1);

        let lock2 = latches.gen_lock(start_ts + 3, keys(&["b", "c"]));
        assert_eq!(latches.acquire(&lock2), AcquireResult::Success);
        latches.release(&lock2);
        assert!(!latches.all_empty());

        let current_ts = ts_of_ms(now_ms + EXPIRE_DURATION.as_millis() as u64) + 3;
        latches.recycle(current_ts);
        assert!(latches.all_empty());
    }
}
