//! Snapshots of the buffer (client-go: `art/art_snapshot.go`, `membuffer_snapshot.go`).
//!
//! A snapshot is the buffer as it was at one value-log position: the first staging level's
//! checkpoint if a staging is open, else the tail at creation (spec M27). Reading picks, for each
//! key, the newest value version written before that position; versions are never overwritten
//! once a staging is open, so later writes do not disturb the view. (With no staging open,
//! client-go overwrites same-length values in place and a snapshot sees those — spec M12 — and so
//! does this one.)
//!
//! Rust cannot let an iterator that borrows the buffer live across `&mut` writes, so the handles
//! that must survive writes are *detached*: [`MemDbSnapshot`], [`SnapshotCursor`] and
//! [`BatchedSnapshotIter`] are plain values that take `&MemDb` on every call.

use tikv_layers::Error;
use tikv_layers::error::ErrorDetail;

use super::MemDb;
use super::index::Pos;
use super::iter::{Iter, KvIterator};
use super::vlog::{Checkpoint, NULL_VADDR};

/// A detached read view of a [`MemDb`] (client-go: `GetSnapshot()` / `SnapshotGetter()`).
///
/// Snapshots from [`MemDb::get_snapshot`] are *checked*: once an operation that may change the
/// snapshot's content happens (a write with no staging open, release or cleanup of staging level
/// 1, reset, some reverts — spec M28), [`get`](Self::get) and [`BatchedSnapshotIter`] fail with
/// "invalid iter: snapshotSeqNo changed". Snapshots from [`MemDb::snapshot_getter`] are not
/// checked (client-go's deprecated `SnapshotGetter`).
#[derive(Debug, Clone, Copy)]
pub struct MemDbSnapshot {
    cp: Checkpoint,
    seq: u64,
    checked: bool,
}

impl MemDb {
    fn snapshot_checkpoint(&self) -> Checkpoint {
        self.stages
            .first()
            .copied()
            .unwrap_or_else(|| self.vlog.checkpoint())
    }

    /// A checked snapshot of stage 0 (client-go: `GetSnapshot`). Meant to be taken while a
    /// staging level is open; without one it snapshots the current tail (client-go logs an
    /// error and does the same).
    pub fn get_snapshot(&self) -> MemDbSnapshot {
        if self.stages.is_empty() {
            tracing::error!("memdb snapshot taken without any staging buffer");
        }
        MemDbSnapshot {
            cp: self.snapshot_checkpoint(),
            seq: self.snapshot_seq,
            checked: true,
        }
    }

    /// An unchecked snapshot (client-go: `SnapshotGetter`, deprecated there in favour of
    /// [`get_snapshot`](Self::get_snapshot)).
    pub fn snapshot_getter(&self) -> MemDbSnapshot {
        MemDbSnapshot {
            cp: self.snapshot_checkpoint(),
            seq: self.snapshot_seq,
            checked: false,
        }
    }

    /// A detached ascending cursor over the current snapshot (client-go: `SnapshotIter`).
    pub fn snapshot_iter(&self, lower: &[u8], upper: &[u8]) -> SnapshotCursor {
        self.snapshot_getter().cursor(self, lower, upper, false)
    }

    /// A detached descending cursor over the current snapshot (client-go:
    /// `SnapshotIterReverse(upper, lower)`).
    pub fn snapshot_iter_reverse(&self, upper: &[u8], lower: &[u8]) -> SnapshotCursor {
        self.snapshot_getter().cursor(self, lower, upper, true)
    }

    /// The snapshot version of entry `id` at `cp`, if any.
    fn snapshot_version(&self, id: u32, cp: &Checkpoint) -> u32 {
        let Some(e) = self.entries.get(id as usize) else {
            return NULL_VADDR;
        };
        if e.vaddr == NULL_VADDR || e.vaddr as usize >= self.vlog.hdrs.len() {
            return NULL_VADDR;
        }
        self.vlog.snapshot_version(e.vaddr, cp)
    }
}

fn seq_changed(snap: u64, db: u64) -> Error {
    Error::new(ErrorDetail::Internal(format!(
        "invalid iter: snapshotSeqNo changed, iter's={snap}, db's={db}"
    )))
}

impl MemDbSnapshot {
    fn check(&self, db: &MemDb) -> Result<(), Error> {
        if self.checked && self.seq != db.snapshot_seq {
            return Err(seq_changed(self.seq, db.snapshot_seq));
        }
        Ok(())
    }

    /// The value `key` had in the snapshot (client-go: `Snapshot.Get`): `Some(&[])` for a
    /// delete, `None` if the key had no value then.
    ///
    /// # Errors
    ///
    /// A checked snapshot fails once it has been invalidated (see the type docs).
    pub fn get<'a>(&self, db: &'a MemDb, key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
        self.check(db)?;
        let Some(id) = db.lookup(key) else {
            return Ok(None);
        };
        let v = db.snapshot_version(id, &self.cp);
        Ok((v != NULL_VADDR).then(|| db.vlog.value(v)))
    }

    /// A borrowing iterator over the snapshot's keys in `[lower, upper)` (client-go:
    /// `NewSnapshotIterator`); ascending, or descending when `reverse`.
    pub fn iter<'a>(
        &self,
        db: &'a MemDb,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> SnapshotIter<'a> {
        SnapshotIter::new(Iter::new(db, lower, upper, reverse, false), self.cp)
    }

    /// A detached cursor over the snapshot's keys in `[lower, upper)` that keeps working while
    /// the buffer is written (client-go: `SnapIter` with its sequence check disabled).
    pub fn cursor(&self, db: &MemDb, lower: &[u8], upper: &[u8], reverse: bool) -> SnapshotCursor {
        let mut c = SnapshotCursor {
            cp: self.cp,
            lower: lower.to_vec(),
            upper: upper.to_vec(),
            reverse,
            pos: None,
            id: 0,
            key: Vec::new(),
            valid: false,
        };
        let it = Iter::new(db, lower, upper, reverse, false);
        c.settle_from(db, it);
        c
    }

    /// A detached iterator that copies the snapshot out in growing batches (32 doubling up to
    /// 4096 keys) and tolerates interleaved writes (client-go: `BatchedSnapshotIter`).
    pub fn batched_iter(
        &self,
        db: &MemDb,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> BatchedSnapshotIter {
        let mut it = BatchedSnapshotIter {
            snap: *self,
            lower: lower.to_vec(),
            upper: upper.to_vec(),
            reverse,
            err: None,
            keys: Vec::new(),
            values: Vec::new(),
            pos: 0,
            batch_size: 32,
            next_key: None,
        };
        if let Err(e) = it.fill_batch(db) {
            it.err = Some(e.detail().clone());
        }
        it
    }

    /// Calls `f` for each snapshot entry in `[lower, upper)` until it returns `Ok(true)` (stop)
    /// or an error (client-go: `ForEachInSnapshotRange`). Does not check the sequence number.
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    pub fn for_each_in_range(
        &self,
        db: &MemDb,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let mut it = self.iter(db, lower, upper, reverse);
        while it.valid() {
            let stop = f(it.key(), it.value())?;
            // client-go advances once more before honouring `stop`.
            it.next()?;
            if stop {
                break;
            }
        }
        Ok(())
    }
}

/// A borrowing iterator over a snapshot (client-go: `art.SnapIter`).
#[derive(Debug, Clone)]
pub struct SnapshotIter<'a> {
    inner: Iter<'a>,
    cp: Checkpoint,
    value: &'a [u8],
}

impl<'a> SnapshotIter<'a> {
    fn new(inner: Iter<'a>, cp: Checkpoint) -> Self {
        let mut it = SnapshotIter {
            inner,
            cp,
            value: &[],
        };
        while it.inner.valid() && !it.load_value() {
            // Cannot fail while valid.
            let _ = it.inner.next();
        }
        it
    }

    fn load_value(&mut self) -> bool {
        let db = self.inner.db();
        let v = db.snapshot_version(self.inner.current_id(), &self.cp);
        if v == NULL_VADDR {
            return false;
        }
        self.value = db.vlog.value(v);
        true
    }
}

impl KvIterator for SnapshotIter<'_> {
    fn valid(&self) -> bool {
        self.inner.valid()
    }
    fn key(&self) -> &[u8] {
        self.inner.key_ref()
    }
    fn value(&self) -> &[u8] {
        self.value
    }
    fn next(&mut self) -> Result<(), Error> {
        self.value = &[];
        while self.inner.valid() {
            self.inner.next()?;
            if self.inner.valid() && self.load_value() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A detached snapshot cursor (client-go: `SnapshotIter` / `SnapshotIterReverse`).
///
/// It owns its current key and re-reads the buffer on each call, so the buffer may be written
/// between calls: keys written after the snapshot have no snapshot version and are skipped.
/// [`value`](Self::value) reads the buffer at call time, as client-go's slice into the arena
/// does (so an in-place overwrite made with no staging open is visible).
#[derive(Debug, Clone)]
pub struct SnapshotCursor {
    cp: Checkpoint,
    lower: Vec<u8>,
    upper: Vec<u8>,
    reverse: bool,
    /// Index position of the current key when last seen, a hint to avoid re-seeking.
    pos: Option<Pos>,
    id: u32,
    key: Vec<u8>,
    valid: bool,
}

impl SnapshotCursor {
    /// Moves to the first entry of `it` that has a snapshot version.
    fn settle_from(&mut self, db: &MemDb, mut it: Iter<'_>) {
        while it.valid() {
            let id = it.current_id();
            if db.snapshot_version(id, &self.cp) != NULL_VADDR {
                self.id = id;
                self.pos = it.pos_hint();
                self.key.clear();
                self.key.extend_from_slice(it.key_ref());
                self.valid = true;
                return;
            }
            let _ = it.next();
        }
        self.valid = false;
    }

    /// Whether the cursor points at an entry.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current key's snapshot value (empty for a delete, or if the buffer was reset).
    pub fn value<'a>(&self, db: &'a MemDb) -> &'a [u8] {
        if !self.valid {
            return &[];
        }
        let v = db.snapshot_version(self.id, &self.cp);
        if v == NULL_VADDR {
            return &[];
        }
        db.vlog.value(v)
    }

    /// Moves to the next snapshot entry.
    ///
    /// # Errors
    ///
    /// Never fails today; the signature matches the other iterators.
    pub fn next(&mut self, db: &MemDb) -> Result<(), Error> {
        if !self.valid {
            return Ok(());
        }
        // Resume right after the current key: reuse the old position if the index still has our
        // entry there, otherwise re-seek by key.
        let still_there = self
            .pos
            .and_then(|p| db.index.id_at_checked(p).map(|id| (p, id)))
            .filter(|&(_, id)| id == self.id);
        let it = match still_there {
            Some((p, _)) => Iter::resume_after(db, p, &self.lower, &self.upper, self.reverse),
            None => {
                let mut bound = self.key.clone();
                if self.reverse {
                    Iter::new(db, &self.lower, &bound, true, false)
                } else {
                    bound.push(0);
                    let upper = self.upper.clone();
                    Iter::new(db, &bound, &upper, false, false)
                }
            }
        };
        self.settle_from(db, it);
        Ok(())
    }
}

/// A batched, sequence-checked snapshot iterator (client-go: `snapshotBatchedIter`).
///
/// Each batch is copied out of the buffer, so the buffer may be written between calls; reads of
/// a new batch resume after the last key (forward: last key + `0x00`; reverse: last key as the
/// exclusive upper bound). Once the snapshot is invalidated the iterator is invalid and
/// [`next`](Self::next) fails.
#[derive(Debug)]
pub struct BatchedSnapshotIter {
    snap: MemDbSnapshot,
    lower: Vec<u8>,
    upper: Vec<u8>,
    reverse: bool,
    err: Option<ErrorDetail>,
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    pos: usize,
    batch_size: usize,
    next_key: Option<Vec<u8>>,
}

impl BatchedSnapshotIter {
    fn fill_batch(&mut self, db: &MemDb) -> Result<(), Error> {
        self.snap.check(db)?;
        self.keys.clear();
        self.values.clear();
        let (lower, upper): (&[u8], &[u8]) = match (&self.next_key, self.reverse) {
            (Some(k), true) => (&self.lower, k),
            (Some(k), false) => (k, &self.upper),
            (None, _) => (&self.lower, &self.upper),
        };
        let mut it = self.snap.iter(db, lower, upper, self.reverse);
        while self.keys.len() < self.batch_size && it.valid() {
            self.keys.push(it.key().to_vec());
            self.values.push(it.value().to_vec());
            it.next()?;
        }
        self.pos = 0;
        self.next_key = self.keys.last().map(|last| {
            let mut k = last.clone();
            if !self.reverse {
                k.push(0);
            }
            k
        });
        self.batch_size = (self.batch_size * 2).min(4096);
        Ok(())
    }

    /// Whether the iterator points at an entry and the snapshot is still valid.
    pub fn valid(&self, db: &MemDb) -> bool {
        self.snap.check(db).is_ok() && self.err.is_none() && self.pos < self.keys.len()
    }

    /// The current key (empty when exhausted).
    pub fn key(&self) -> &[u8] {
        self.keys.get(self.pos).map_or(&[], Vec::as_slice)
    }

    /// The current value (empty when exhausted).
    pub fn value(&self) -> &[u8] {
        self.values.get(self.pos).map_or(&[], Vec::as_slice)
    }

    /// Advances, reading the next batch from `db` when the current one is used up.
    ///
    /// # Errors
    ///
    /// "invalid iter: snapshotSeqNo changed" once the snapshot is invalidated, or an earlier
    /// batch's error.
    pub fn next(&mut self, db: &MemDb) -> Result<(), Error> {
        if let Some(e) = &self.err {
            return Err(Error::new(e.clone()));
        }
        self.snap.check(db)?;
        self.pos += 1;
        if self.pos >= self.keys.len()
            && let Err(e) = self.fill_batch(db)
        {
            self.err = Some(e.detail().clone());
            return Err(e);
        }
        Ok(())
    }
}
