//! The latch scheduler (client-go: `internal/latch/scheduler.go`).
//!
//! client-go funnels unlocks through a channel into one goroutine that releases latches, wakes
//! waiters and periodically recycles idle latches. Every step of that work is guarded by the
//! slot mutexes, so here `unlock` does it inline on the caller's thread; a blocked
//! [`LatchesScheduler::lock`] waits on a [`tokio::sync::Notify`] instead of a wait group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::latches::{AcquireResult, Latches, Lock, tso_sub_ms};

/// Recycle all latches when this much TSO physical time passed since the last recycle.
const CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// ... or after this many unlocks.
const CHECK_COUNTER: u64 = 50_000;

#[derive(Debug, Default)]
struct RecycleState {
    counter: u64,
    last_recycle_ts: u64,
}

/// Serialises local commits on overlapping keys (client-go: `LatchesScheduler`).
#[derive(Debug)]
pub struct LatchesScheduler {
    latches: Latches,
    closed: AtomicBool,
    recycle: Mutex<RecycleState>,
}

impl LatchesScheduler {
    /// A scheduler over `size` latch slots (rounded up to a power of two) — client-go:
    /// `NewScheduler`.
    pub fn new(size: usize) -> Self {
        LatchesScheduler {
            latches: Latches::new(size),
            closed: AtomicBool::new(false),
            recycle: Mutex::new(RecycleState::default()),
        }
    }

    /// Acquires latches on `keys` for a transaction that started at `start_ts`, waiting while
    /// another local transaction holds one (client-go: `Lock`). Check
    /// [`Lock::is_stale`] on the result: a stale lock must be unlocked and the transaction
    /// restarted (`ErrWriteConflictInLatch`). Always pass the result to
    /// [`unlock`](Self::unlock).
    pub async fn lock(&self, start_ts: u64, keys: Vec<Vec<u8>>) -> Arc<Lock> {
        let lock = self.latches.gen_lock(start_ts, keys);
        if self.latches.acquire(&lock) == AcquireResult::Locked {
            // Woken by the unlock that handed us the last latch (or made us stale). A
            // `notify_one` before this await stores a permit, so no wake-up is lost.
            loop {
                lock.notify.notified().await;
                if !lock.is_locked() {
                    break;
                }
            }
        }
        lock
    }

    /// Releases the lock's latches and wakes waiters (client-go: `UnLock` plus the release loop
    /// of `run`). After [`close`](Self::close) this does nothing.
    pub fn unlock(&self, lock: &Arc<Lock>) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let wakeup = self.latches.release(lock);
        for w in wakeup {
            if self.latches.acquire(&w) != AcquireResult::Locked {
                w.notify.notify_one();
            }
        }
        let commit_ts = lock.commit_ts();
        if commit_ts > lock.start_ts() {
            let mut st = self.recycle.lock().unwrap_or_else(PoisonError::into_inner);
            let elapsed = tso_sub_ms(commit_ts, st.last_recycle_ts);
            if elapsed > CHECK_INTERVAL.as_millis() as i64 || st.counter > CHECK_COUNTER {
                st.last_recycle_ts = commit_ts;
                st.counter = 0;
                drop(st);
                self.latches.recycle(commit_ts);
            }
        }
        let mut st = self.recycle.lock().unwrap_or_else(PoisonError::into_inner);
        st.counter += 1;
    }

    /// Stops the scheduler; later unlocks are dropped (client-go: `Close`).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::memdb::test_rng::Rng;
    use std::sync::atomic::AtomicU64;

    fn generate(rng: &mut Rng) -> Vec<Vec<u8>> {
        let table = b"abcdefgh";
        let mut ret: Vec<Vec<u8>> = Vec::with_capacity(5);
        for chance in [100, 60, 40, 20] {
            if rng.below(100) < chance {
                let k = vec![table[rng.below(table.len())]];
                if !ret.contains(&k) {
                    ret.push(k);
                }
            }
        }
        ret
    }

    // client-go: T-TXN-012 TestWithConcurrency
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_concurrency() {
        let sched = Arc::new(LatchesScheduler::new(7));
        let tso = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(100);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut workers = Vec::new();
        for _ in 0..10 {
            let (sched, tso, rx) = (sched.clone(), tso.clone(), rx.clone());
            workers.push(tokio::spawn(async move {
                let mut done = 0u32;
                loop {
                    let Some(txn) = rx.lock().await.recv().await else {
                        break;
                    };
                    let start = tso.fetch_add(1, Ordering::SeqCst) + 1;
                    let lock = sched.lock(start, txn).await;
                    if !lock.is_stale() {
                        lock.set_commit_ts(tso.fetch_add(1, Ordering::SeqCst) + 1);
                    }
                    sched.unlock(&lock);
                    done += 1;
                }
                done
            }));
        }
        let mut rng = Rng::new(12);
        for _ in 0..999 {
            tx.send(generate(&mut rng)).await.unwrap();
        }
        drop(tx);
        let mut total = 0;
        for w in workers {
            total += tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("no deadlock")
                .unwrap();
        }
        assert_eq!(total, 999);
        sched.close();
    }

    #[tokio::test]
    async fn waiter_is_woken_and_stale() {
        let sched = LatchesScheduler::new(16);
        let a = sched.lock(10, vec![b"k".to_vec()]).await;
        let sched = Arc::new(sched);
        let s2 = sched.clone();
        let waiter = tokio::spawn(async move { s2.lock(11, vec![b"k".to_vec()]).await });
        tokio::task::yield_now().await;
        a.set_commit_ts(20);
        sched.unlock(&a);
        let b = waiter.await.unwrap();
        assert!(b.is_stale());
        sched.unlock(&b);
        let c = sched.lock(21, vec![b"k".to_vec()]).await;
        assert!(!c.is_stale());
    }
}
