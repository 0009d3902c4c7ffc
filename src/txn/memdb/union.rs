//! The union store: the write buffer overlaid on a read snapshot (client-go:
//! `internal/unionstore/union_store.go`, `union_iter.go`).
//!
//! Reads look in the buffer first and fall through to the snapshot only when the buffer has no
//! value for the key; a buffered delete (empty value) hides the snapshot's value (spec M17).
//! Iteration merges both sides in key order (reverse order for reverse iterators); on equal keys
//! the buffer wins (spec M22).

use std::future::Future;

use tikv_layers::Error;

use super::iter::{Iter, KvIterator};
use super::{FlagsOp, MemDb};

/// A value read from the buffer or a snapshot (client-go: `kv.ValueEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueEntry {
    /// The value; empty means "deleted".
    pub value: Vec<u8>,
    /// The commit ts of the version read, when requested; always 0 for buffered values.
    pub commit_ts: u64,
}

impl ValueEntry {
    /// An entry from its parts (client-go: `kv.NewValueEntry`).
    pub fn new(value: impl Into<Vec<u8>>, commit_ts: u64) -> Self {
        ValueEntry {
            value: value.into(),
            commit_ts,
        }
    }

    /// Whether the value is empty, i.e. a delete (client-go: `IsValueEmpty`).
    pub fn is_value_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// Options for a point read (client-go: `kv.GetOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Ask the snapshot to report the commit ts of the version read
    /// (client-go: `kv.WithReturnCommitTS`).
    pub return_commit_ts: bool,
}

impl GetOptions {
    /// Options with `return_commit_ts` set.
    pub fn with_return_commit_ts() -> Self {
        GetOptions {
            return_commit_ts: true,
        }
    }
}

/// The snapshot half of a [`UnionStore`] (client-go: `uSnapshot`).
///
/// Reads may go to the network, so they are async. `None` from [`get`](Self::get) is
/// client-go's `ErrNotExist`.
pub trait SnapshotReader {
    /// The snapshot's iterator.
    type Iter<'a>: SnapshotIterator + 'a
    where
        Self: 'a;

    /// Reads one key.
    fn get(
        &self,
        key: &[u8],
        opts: GetOptions,
    ) -> impl Future<Output = Result<Option<ValueEntry>, Error>> + Send;

    /// Keys in `[lower, upper)` ascending; empty bounds are unbounded.
    fn iter<'a>(
        &'a self,
        lower: &[u8],
        upper: &[u8],
    ) -> impl Future<Output = Result<Self::Iter<'a>, Error>> + Send;

    /// Keys in `[lower, upper)` descending from below `upper`.
    fn iter_reverse<'a>(
        &'a self,
        upper: &[u8],
        lower: &[u8],
    ) -> impl Future<Output = Result<Self::Iter<'a>, Error>> + Send;
}

/// A snapshot iterator whose `next` may need a round trip.
pub trait SnapshotIterator {
    /// Whether the iterator points at an entry.
    fn valid(&self) -> bool;
    /// The current key.
    fn key(&self) -> &[u8];
    /// The current value.
    fn value(&self) -> &[u8];
    /// Moves to the next entry.
    fn next(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The buffer overlaid on a snapshot (client-go: `KVUnionStore`).
#[derive(Debug)]
pub struct UnionStore<S> {
    buffer: MemDb,
    snapshot: S,
}

impl<S: SnapshotReader> UnionStore<S> {
    /// Overlays `buffer` on `snapshot` (client-go: `NewUnionStore`).
    pub fn new(buffer: MemDb, snapshot: S) -> Self {
        UnionStore { buffer, snapshot }
    }

    /// The buffer (client-go: `GetMemBuffer`).
    pub fn mem_buffer(&self) -> &MemDb {
        &self.buffer
    }

    /// The buffer, for writes.
    pub fn mem_buffer_mut(&mut self) -> &mut MemDb {
        &mut self.buffer
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &S {
        &self.snapshot
    }

    /// Splits the store into its parts.
    pub fn into_parts(self) -> (MemDb, S) {
        (self.buffer, self.snapshot)
    }

    /// Reads `key` through the buffer (client-go: `KVUnionStore.Get`).
    ///
    /// Buffered values come back with commit ts 0; an empty value from either side is "not
    /// found" (`Ok(None)`).
    ///
    /// # Errors
    ///
    /// The snapshot's read error.
    pub async fn get(&self, key: &[u8], opts: GetOptions) -> Result<Option<ValueEntry>, Error> {
        let entry = match self.buffer.get(key) {
            Some(v) => Some(ValueEntry::new(v, 0)),
            None => self.snapshot.get(key, opts).await?,
        };
        Ok(entry.filter(|e| !e.is_value_empty()))
    }

    /// Merged ascending iteration over `[lower, upper)` (client-go: `KVUnionStore.Iter`).
    ///
    /// # Errors
    ///
    /// The snapshot's errors.
    pub async fn iter<'a>(
        &'a self,
        lower: &[u8],
        upper: &[u8],
    ) -> Result<UnionIter<Iter<'a>, S::Iter<'a>>, Error> {
        let dirty = self.buffer.iter(lower, upper);
        let snap = self.snapshot.iter(lower, upper).await?;
        UnionIter::new(dirty, snap, false).await
    }

    /// Merged descending iteration over `[lower, upper)`, from below `upper` (client-go:
    /// `KVUnionStore.IterReverse(upper, lower)`).
    ///
    /// # Errors
    ///
    /// The snapshot's errors.
    pub async fn iter_reverse<'a>(
        &'a self,
        upper: &[u8],
        lower: &[u8],
    ) -> Result<UnionIter<Iter<'a>, S::Iter<'a>>, Error> {
        let dirty = self.buffer.iter_reverse(upper, lower);
        let snap = self.snapshot.iter_reverse(upper, lower).await?;
        UnionIter::new(dirty, snap, true).await
    }

    /// Whether `key` is presumed not to exist; false when the buffer has no flags for it
    /// (client-go: `HasPresumeKeyNotExists`).
    pub fn has_presume_key_not_exists(&self, key: &[u8]) -> bool {
        self.buffer
            .get_flags(key)
            .is_some_and(|f| f.has_presume_key_not_exists())
    }

    /// Clears presume-not-exists on `key` (client-go: `UnmarkPresumeKeyNotExists`).
    pub fn unmark_presume_key_not_exists(&mut self, key: &[u8]) {
        self.buffer
            .update_flags(key, &[FlagsOp::DelPresumeKeyNotExists]);
    }

    /// Sets the buffer's limits; 0 means unlimited for either (client-go:
    /// `KVUnionStore.SetEntrySizeLimit`).
    pub fn set_entry_size_limit(&mut self, entry_limit: u64, buffer_limit: u64) {
        let unlimited = |v: u64| if v == 0 { u64::MAX } else { v };
        self.buffer
            .set_entry_size_limit(unlimited(entry_limit), unlimited(buffer_limit));
    }
}

/// Merges a buffer iterator with a snapshot iterator (client-go: `UnionIter`).
#[derive(Debug)]
pub struct UnionIter<D, S> {
    dirty: D,
    snapshot: S,
    dirty_valid: bool,
    snapshot_valid: bool,
    cur_is_dirty: bool,
    valid: bool,
    reverse: bool,
}

impl<D: KvIterator, S: SnapshotIterator> UnionIter<D, S> {
    /// Merges `dirty` (the buffer side) and `snapshot`; `reverse` must match both iterators'
    /// direction.
    ///
    /// # Errors
    ///
    /// An error from advancing either side past suppressed entries.
    pub async fn new(dirty: D, snapshot: S, reverse: bool) -> Result<Self, Error> {
        let mut it = UnionIter {
            dirty_valid: dirty.valid(),
            snapshot_valid: snapshot.valid(),
            dirty,
            snapshot,
            cur_is_dirty: false,
            valid: false,
            reverse,
        };
        it.update_cur().await?;
        Ok(it)
    }

    fn dirty_next(&mut self) -> Result<(), Error> {
        let r = self.dirty.next();
        self.dirty_valid = self.dirty.valid();
        r
    }

    async fn snapshot_next(&mut self) -> Result<(), Error> {
        let r = self.snapshot.next().await;
        self.snapshot_valid = self.snapshot.valid();
        r
    }

    /// Settles on the next visible entry (client-go: `updateCur`).
    async fn update_cur(&mut self) -> Result<(), Error> {
        self.valid = true;
        loop {
            if !self.dirty_valid && !self.snapshot_valid {
                self.valid = false;
                return Ok(());
            }
            if !self.dirty_valid {
                self.cur_is_dirty = false;
                return Ok(());
            }
            if !self.snapshot_valid {
                self.cur_is_dirty = true;
                if self.dirty.value().is_empty() {
                    // A delete of a key the snapshot does not have: skip it.
                    self.dirty_next()?;
                    continue;
                }
                return Ok(());
            }
            let mut cmp = self.dirty.key().cmp(self.snapshot.key());
            if self.reverse {
                cmp = cmp.reverse();
            }
            match cmp {
                std::cmp::Ordering::Equal => {
                    if self.dirty.value().is_empty() {
                        // The buffer deleted the snapshot's key: skip both.
                        self.dirty_next()?;
                        self.snapshot_next().await?;
                        continue;
                    }
                    // The buffer's version wins; drop the snapshot's.
                    self.snapshot_next().await?;
                    self.cur_is_dirty = true;
                    return Ok(());
                }
                std::cmp::Ordering::Greater => {
                    self.cur_is_dirty = false;
                    return Ok(());
                }
                std::cmp::Ordering::Less => {
                    if self.dirty.value().is_empty() {
                        tracing::warn!(
                            "union iterator: buffered delete of a key the snapshot lacks"
                        );
                        self.dirty_next()?;
                        continue;
                    }
                    self.cur_is_dirty = true;
                    return Ok(());
                }
            }
        }
    }

    /// Whether the iterator points at an entry.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current key.
    pub fn key(&self) -> &[u8] {
        if self.cur_is_dirty {
            self.dirty.key()
        } else {
            self.snapshot.key()
        }
    }

    /// The current value.
    pub fn value(&self) -> &[u8] {
        if self.cur_is_dirty {
            self.dirty.value()
        } else {
            self.snapshot.value()
        }
    }

    /// Moves to the next entry.
    ///
    /// # Errors
    ///
    /// Either side's error.
    pub async fn next(&mut self) -> Result<(), Error> {
        if self.cur_is_dirty {
            self.dirty_next()?;
        } else {
            self.snapshot_next().await?;
        }
        self.update_cur().await
    }
}
