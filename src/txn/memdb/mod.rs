//! The transaction write buffer (client-go: `internal/unionstore/` — `memdb.go`,
//! `memdb_art.go`, `art/art.go`, `arena/arena.go`, `membuffer_snapshot.go`, `union_store.go`,
//! `union_iter.go`, `pipelined_memdb.go`).
//!
//! [`MemDb`] is an ordered key/value buffer with per-key [`KeyFlags`], nested staging levels,
//! checkpoints and snapshots, with client-go's observable semantics (spec §1, rules M1–M39).
//!
//! # Layout
//!
//! * **Entries.** Every distinct key ever written gets an entry (16 bytes: key address, key
//!   length, flags, current value version). Key bytes live in a block arena (`arena.rs`). Keys are
//!   never removed until [`MemDb::reset`]: like client-go's ART leaves, a key whose value is
//!   reverted away is only marked deleted, so a later write reuses its entry.
//! * **Index.** An insert-only B+ tree of entry ids (`index.rs`) keeps keys ordered; client-go
//!   uses an adaptive radix tree for the same job. Slots carry an 8-byte key prefix so most
//!   comparisons stay inside the node.
//! * **Value log.** Every value version is appended to a log (`vlog.rs`) whose header names the
//!   entry and the entry's previous version. Staging levels and checkpoints are log positions.
//!   Cleanup walks the log backwards from the tail to the staging's position, restoring each
//!   entry's previous version — O(changes), like client-go's `RevertVAddr`.
//!
//! Memory per entry is about 16 (entry) + 20 (version header) + ~15 (index slot) bytes plus key
//! and value bytes; see the `memdb` benchmark for measured numbers.
//!
//! # Reads while writing
//!
//! Borrowing iterators ([`MemDb::iter`] and friends) hold `&MemDb`, so the compiler rules out
//! the writes that make client-go's ART iterators panic ("seqNo mismatch", M21). Reads that must
//! survive writes use detached handles that are given the buffer on every call:
//! [`MemDbSnapshot`] (a log position plus a sequence number, client-go's `GetSnapshot` /
//! `SnapshotGetter`), [`SnapshotCursor`] (client-go's `SnapshotIter`) and
//! [`BatchedSnapshotIter`]. They read the value version that was current at the snapshot's log
//! position, which writes never destroy, so they see a stable view while writes continue.
//!
//! # Concurrency
//!
//! `MemDb` is `Send + Sync` and uses `&self` for reads and `&mut self` for writes; client-go's
//! read/write mutex around the buffer is the caller's `RwLock` (or plain ownership) here.

mod arena;
mod index;
mod iter;
mod pipelined;
mod snapshot;
mod union;
mod vlog;

#[cfg(test)]
pub(crate) mod test_rng;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tikv_layers::Error;
use tikv_layers::error::ErrorDetail;

pub use self::iter::{Iter, KvIterator};
pub use self::pipelined::{
    BufferBatchGetFuture, BufferBatchGetter, ErrorIterator, FORCE_FLUSH_MEM_SIZE_THRESHOLD,
    FlushFunc, FlushFuture, FlushOptions, MIN_FLUSH_KEYS, MIN_FLUSH_MEM_SIZE, PipelinedMemDb,
    PipelinedMetrics,
};
pub use self::snapshot::{BatchedSnapshotIter, MemDbSnapshot, SnapshotCursor, SnapshotIter};
pub use self::union::{
    GetOptions, SnapshotIterator, SnapshotReader, UnionIter, UnionStore, ValueEntry,
};
pub use self::vlog::Checkpoint;
pub use crate::txn::flags::{FlagsOp, KeyFlags};

use self::arena::{Arena, MAX_BLOCK_SIZE};
use self::index::{Index, KeySource, NIL};
use self::vlog::{NULL_VADDR, ValueLog};

/// The longest key the buffer accepts, in bytes (client-go: `art.MaxKeyLen`).
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

/// The top bit of an entry's stored flags: the key's value was reverted away and no persistent
/// flag kept it (client-go: `artLeaf.markDelete`).
const DELETED: u16 = 1 << 15;

/// An opaque, stable reference to a key in one [`MemDb`] (client-go: `MemKeyHandle`).
///
/// Valid until [`MemDb::reset`]. Obtained from iterators; resolved with
/// [`MemDb::key_by_handle`] and [`MemDb::value_by_handle`], which the 2PC layer uses to refer to
/// mutations without copying keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHandle(u32);

#[derive(Debug, Clone, Copy)]
struct Entry {
    key_addr: u64,
    vaddr: u32,
    key_len: u16,
    /// [`KeyFlags`] bits plus [`DELETED`].
    flags: u16,
}

impl Entry {
    fn key_flags(&self) -> KeyFlags {
        KeyFlags::from_bits(self.flags)
    }
    fn is_deleted(&self) -> bool {
        self.flags & DELETED != 0
    }
}

/// Resolves entry ids to key bytes for the index.
struct Keys<'a> {
    arena: &'a Arena,
    entries: &'a [Entry],
}

impl KeySource for Keys<'_> {
    #[inline]
    fn key(&self, id: u32) -> &[u8] {
        let e = &self.entries[id as usize];
        if e.key_len == 0 {
            return &[];
        }
        self.arena.get(e.key_addr, usize::from(e.key_len))
    }
}

type MemHook = Arc<dyn Fn(u64) + Send + Sync>;

/// The transaction write buffer (client-go: `unionstore.MemDB`).
///
/// See the [module docs](self) for the design. All size/limit/staging rules follow spec §1:
///
/// * [`set`](Self::set) rejects empty values; [`delete`](Self::delete) writes a tombstone (an
///   empty value); [`update_flags`](Self::update_flags) changes flags only.
/// * A key longer than [`MAX_KEY_LEN`] or an entry over the entry limit is rejected and nothing
///   is written; a write that pushes [`size`](Self::size) over the buffer limit **is applied**
///   and then reported as `TxnTooLarge` (client-go's behaviour).
/// * [`staging`](Self::staging) / [`release`](Self::release) / [`cleanup`](Self::cleanup) nest;
///   only values are versioned, flags changed inside a cleaned-up staging stay (persistent flags
///   also survive the revert of the value that created the key).
pub struct MemDb {
    keys: Arena,
    entries: Vec<Entry>,
    index: Index,
    vlog: ValueLog,
    stages: Vec<Checkpoint>,
    vlog_invalid: bool,
    dirty: bool,
    entry_size_limit: u64,
    buffer_size_limit: u64,
    len: usize,
    size: usize,
    /// The entry found by the last lookup, or [`NIL`] (client-go: `lastTraversedNode`).
    last_traversed: AtomicU32,
    hit_count: AtomicU64,
    miss_count: AtomicU64,
    /// Bumped by every write-like operation (client-go: `WriteSeqNo`).
    write_seq: u64,
    /// Bumped by every operation that may change what a snapshot sees (client-go:
    /// `SnapshotSeqNo`).
    snapshot_seq: u64,
    mem_hook: Option<MemHook>,
}

impl Default for MemDb {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDb")
            .field("len", &self.len)
            .field("size", &self.size)
            .field("stages", &self.stages.len())
            .field("dirty", &self.dirty)
            .field("mem", &self.mem())
            .finish_non_exhaustive()
    }
}

// ===== impl MemDb =====

impl MemDb {
    /// An empty buffer with unlimited entry and buffer sizes. Allocates nothing until the first
    /// write (client-go: `NewMemDB`; a read-only transaction's buffer costs no memory).
    pub fn new() -> Self {
        MemDb {
            keys: Arena::default(),
            entries: Vec::new(),
            index: Index::default(),
            vlog: ValueLog::default(),
            stages: Vec::new(),
            vlog_invalid: false,
            dirty: false,
            entry_size_limit: u64::MAX,
            buffer_size_limit: u64::MAX,
            len: 0,
            size: 0,
            last_traversed: AtomicU32::new(NIL),
            hit_count: AtomicU64::new(0),
            miss_count: AtomicU64::new(0),
            write_seq: 0,
            snapshot_seq: 0,
            mem_hook: None,
        }
    }

    fn keys(&self) -> Keys<'_> {
        Keys {
            arena: &self.keys,
            entries: &self.entries,
        }
    }

    #[inline]
    fn entry_key(&self, id: u32) -> &[u8] {
        let e = &self.entries[id as usize];
        if e.key_len == 0 {
            return &[];
        }
        self.keys.get(e.key_addr, usize::from(e.key_len))
    }

    // ----- lookups -----

    fn check_cache(&self, key: &[u8]) -> Option<u32> {
        let id = self.last_traversed.load(Ordering::Relaxed);
        if id == NIL || id as usize >= self.entries.len() {
            return None;
        }
        (self.entry_key(id) == key).then_some(id)
    }

    /// Finds `key`'s entry, counting cache hits and misses like client-go's `traverse`.
    fn lookup(&self, key: &[u8]) -> Option<u32> {
        if let Some(id) = self.check_cache(key) {
            self.hit_count.fetch_add(1, Ordering::Relaxed);
            return Some(id);
        }
        self.miss_count.fetch_add(1, Ordering::Relaxed);
        let id = self.index.get(&self.keys(), key)?;
        self.last_traversed.store(id, Ordering::Relaxed);
        Some(id)
    }

    /// Finds or creates `key`'s entry.
    fn lookup_or_insert(&mut self, key: &[u8]) -> u32 {
        if let Some(id) = self.check_cache(key) {
            self.hit_count.fetch_add(1, Ordering::Relaxed);
            return id;
        }
        self.miss_count.fetch_add(1, Ordering::Relaxed);
        let ks = Keys {
            arena: &self.keys,
            entries: &self.entries,
        };
        let id = match self.index.locate(&ks, key) {
            Ok(id) => id,
            Err(point) => {
                let key_addr = if key.is_empty() {
                    0
                } else {
                    self.keys.alloc(key).0
                };
                let id = self.entries.len() as u32;
                self.entries.push(Entry {
                    key_addr,
                    vaddr: NULL_VADDR,
                    key_len: key.len() as u16,
                    flags: 0,
                });
                self.index.insert_at(point, id);
                id
            }
        };
        self.last_traversed.store(id, Ordering::Relaxed);
        id
    }

    /// The current value of `key` (client-go: `MemDB.Get`): `Some(&[])` for a deleted key
    /// (tombstone), `None` for absent and flags-only keys (client-go's `ErrNotExist`).
    ///
    /// # Panics
    ///
    /// After [`discard_values`](Self::discard_values) (client-go panics with "vlog is reset";
    /// reading values the 2PC layer has already dropped is a programming error).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        assert!(!self.vlog_invalid, "vlog is reset");
        let id = self.lookup(key)?;
        let e = &self.entries[id as usize];
        if e.vaddr == NULL_VADDR {
            return None;
        }
        Some(self.vlog.value(e.vaddr))
    }

    /// The flags of `key` (client-go: `GetFlags`): present for keys with a value and flags-only
    /// keys; `None` for absent keys and keys removed by a revert.
    pub fn get_flags(&self, key: &[u8]) -> Option<KeyFlags> {
        let id = self.lookup(key)?;
        let e = &self.entries[id as usize];
        if e.vaddr == NULL_VADDR && e.is_deleted() {
            return None;
        }
        Some(e.key_flags())
    }

    /// Reads several keys (client-go: `MemDB.BatchGet`): found keys, tombstones included (as
    /// empty values); absent and flags-only keys are left out. An empty buffer answers without
    /// looking.
    pub fn batch_get<K: AsRef<[u8]>>(&self, keys: &[K]) -> HashMap<Vec<u8>, Vec<u8>> {
        let mut out = HashMap::new();
        if self.len == 0 {
            return out;
        }
        for k in keys {
            if let Some(v) = self.get(k.as_ref()) {
                out.insert(k.as_ref().to_vec(), v.to_vec());
            }
        }
        out
    }

    /// Walks `key`'s value versions newest to oldest and returns the first one accepted by
    /// `predicate` (client-go: `SelectValueHistory`); `Ok(None)` when none is.
    ///
    /// # Errors
    ///
    /// `NotExist` when the key is absent or flags-only.
    pub fn select_value_history(
        &self,
        key: &[u8],
        mut predicate: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<&[u8]>, Error> {
        let id = self
            .index
            .get(&self.keys(), key)
            .ok_or_else(|| Error::new(ErrorDetail::NotExist))?;
        let vaddr = self.entries[id as usize].vaddr;
        if vaddr == NULL_VADDR {
            return Err(Error::new(ErrorDetail::NotExist));
        }
        let found = self
            .vlog
            .select_history(vaddr, |v| predicate(self.vlog.value(v)));
        Ok((found != NULL_VADDR).then(|| self.vlog.value(found)))
    }

    /// The key of a handle (client-go: `GetKeyByHandle`).
    ///
    /// # Panics
    ///
    /// If the handle does not come from this buffer (or predates a [`reset`](Self::reset)).
    pub fn key_by_handle(&self, handle: KeyHandle) -> &[u8] {
        self.entry_key(handle.0)
    }

    /// The current value of a handle's key, `None` for flags-only keys or after
    /// [`discard_values`](Self::discard_values) (client-go: `GetValueByHandle`).
    pub fn value_by_handle(&self, handle: KeyHandle) -> Option<&[u8]> {
        if self.vlog_invalid {
            return None;
        }
        let e = self.entries.get(handle.0 as usize)?;
        (e.vaddr != NULL_VADDR).then(|| self.vlog.value(e.vaddr))
    }

    // ----- writes -----

    /// Writes `value` for `key` (client-go: `MemDB.Set`).
    ///
    /// # Errors
    ///
    /// `CannotSetNilValue` for an empty value, `KeyTooLarge` / `EntryTooLarge` (nothing written)
    /// and `TxnTooLarge` (**written**, see the type docs).
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.set_with_flags(key, value, &[])
    }

    /// [`set`](Self::set) and apply `ops` to the key's flags (client-go: `SetWithFlags`).
    ///
    /// Every value write first clears need-constraint-check-in-prewrite, then applies `ops`
    /// (spec M5).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn set_with_flags(
        &mut self,
        key: &[u8],
        value: &[u8],
        ops: &[FlagsOp],
    ) -> Result<(), Error> {
        if value.is_empty() {
            return Err(Error::new(ErrorDetail::CannotSetNilValue));
        }
        self.write(key, Some(value), ops)
    }

    /// Writes a tombstone for `key` (client-go: `MemDB.Delete`).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), except that an empty value is the point.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        self.write(key, Some(&[]), &[])
    }

    /// [`delete`](Self::delete) and apply `ops` (client-go: `DeleteWithFlags`).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub fn delete_with_flags(&mut self, key: &[u8], ops: &[FlagsOp]) -> Result<(), Error> {
        self.write(key, Some(&[]), ops)
    }

    /// Applies `ops` to `key`'s flags, creating a flags-only entry when the key is absent
    /// (client-go: `UpdateFlags`). Exempt from the entry and buffer limits. A key over
    /// [`MAX_KEY_LEN`] is ignored, as client-go discards that error.
    pub fn update_flags(&mut self, key: &[u8], ops: &[FlagsOp]) {
        let _ = self.write(key, None, ops);
    }

    /// The shared write path (client-go: `ART.Set`); `value == None` updates flags only.
    fn write(&mut self, key: &[u8], value: Option<&[u8]>, ops: &[FlagsOp]) -> Result<(), Error> {
        assert!(!self.vlog_invalid, "vlog is reset");
        if key.len() > MAX_KEY_LEN {
            return Err(Error::new(ErrorDetail::KeyTooLarge {
                size: key.len() as u64,
            }));
        }
        if let Some(v) = value {
            let size = (key.len() + v.len()) as u64;
            if size > self.entry_size_limit {
                return Err(Error::new(ErrorDetail::EntryTooLarge {
                    limit: self.entry_size_limit,
                    size,
                }));
            }
            // The value log cannot hold a value bigger than one block; client-go panics in its
            // allocator. Report it as an oversized entry instead.
            if v.len() > MAX_BLOCK_SIZE {
                return Err(Error::new(ErrorDetail::EntryTooLarge {
                    limit: MAX_BLOCK_SIZE as u64,
                    size,
                }));
            }
        }
        self.write_seq += 1;
        if self.stages.is_empty() {
            self.dirty = true;
            self.snapshot_seq += 1;
        }
        let id = self.lookup_or_insert(key);
        self.set_value(id, value, ops);
        if self.size as u64 > self.buffer_size_limit {
            return Err(Error::new(ErrorDetail::TxnTooLarge {
                size: self.size as u64,
            }));
        }
        Ok(())
    }

    /// client-go: `ART.setValue`.
    fn set_value(&mut self, id: u32, value: Option<&[u8]>, ops: &[FlagsOp]) {
        let e = self.entries[id as usize];
        let mut flags = e.key_flags();
        // Quirk kept from client-go (M13): a present key with no flags and no value is counted
        // again.
        if (flags.is_empty() && e.vaddr == NULL_VADDR) || e.is_deleted() {
            self.len += 1;
            self.size += usize::from(e.key_len);
        }
        flags = match value {
            Some(_) => flags
                .apply_one(FlagsOp::DelNeedConstraintCheckInPrewrite)
                .apply(ops),
            None => flags.apply(ops),
        };
        if !flags.and_persistent().is_empty() {
            self.dirty = true;
        }
        // Writing the flags also clears the deleted marker.
        self.entries[id as usize].flags = flags.bits();
        let Some(value) = value else {
            return;
        };
        let (old_size, swapped) = self.try_swap_value(e.vaddr, value);
        if swapped {
            return;
        }
        self.size = self.size + value.len() - old_size;
        let (vaddr, grew) = self.vlog.append(id, e.vaddr, value);
        self.entries[id as usize].vaddr = vaddr;
        if grew {
            self.on_mem_change();
        }
    }

    /// Overwrites the current version in place when it has the same (non-zero) length and was
    /// written inside the innermost staging (or there is none) — client-go: `trySwapValue`.
    /// Returns the old value's length and whether the swap happened.
    fn try_swap_value(&mut self, vaddr: u32, value: &[u8]) -> (usize, bool) {
        if vaddr == NULL_VADDR {
            return (0, false);
        }
        let old_len = self.vlog.hdr(vaddr).len as usize;
        if let Some(cp) = self.stages.last()
            && !ValueLog::can_modify(cp, vaddr)
        {
            return (old_len, false);
        }
        if old_len > 0 && old_len == value.len() {
            self.vlog.overwrite(vaddr, value);
            return (0, true);
        }
        (old_len, false)
    }

    // ----- staging and checkpoints -----

    /// Opens a staging level and returns its handle, the new depth (1-based) — client-go:
    /// `Staging`.
    pub fn staging(&mut self) -> usize {
        self.stages.push(self.vlog.checkpoint());
        self.stages.len()
    }

    /// Merges the innermost staging level into its parent (client-go: `Release`). Handle 0 is a
    /// no-op.
    ///
    /// # Panics
    ///
    /// If `handle` is not the innermost level. client-go panics too and its tests assert it;
    /// releasing out of order is a bug in the caller that no error value could recover from.
    pub fn release(&mut self, handle: usize) {
        if handle == 0 {
            return;
        }
        assert!(
            handle == self.stages.len(),
            "cannot release staging buffer, h={handle}, stages={}",
            self.stages.len()
        );
        self.write_seq += 1;
        if handle == 1 {
            self.snapshot_seq += 1;
            let tail = self.vlog.checkpoint();
            if !self.stages[0].is_same_position(&tail) {
                self.dirty = true;
            }
        }
        self.stages.truncate(handle - 1);
    }

    /// Discards every value written since staging level `handle` opened and closes it
    /// (client-go: `Cleanup`). Handle 0, or a handle deeper than the current depth, is a no-op.
    ///
    /// # Panics
    ///
    /// If `handle` is below the innermost level (client-go panics, and its tests assert it).
    pub fn cleanup(&mut self, handle: usize) {
        if handle == 0 || handle > self.stages.len() {
            return;
        }
        assert!(
            handle == self.stages.len(),
            "cannot cleanup staging buffer, h={handle}, stages={}",
            self.stages.len()
        );
        self.write_seq += 1;
        if handle == 1 {
            self.snapshot_seq += 1;
        }
        let cp = self.stages[handle - 1];
        if !self.vlog_invalid {
            let cur = self.vlog.checkpoint();
            if !cur.is_same_position(&cp) {
                self.revert_to(&cp);
                self.vlog.truncate(&cp);
            }
        }
        self.stages.truncate(handle - 1);
        self.on_mem_change();
    }

    /// Walks the log back to `cp`, restoring each entry's previous version (client-go:
    /// `RevertToCheckpoint` + `RevertVAddr`).
    fn revert_to(&mut self, cp: &Checkpoint) {
        let tail = self.vlog.hdrs.len() as u32;
        for v in (cp.versions..tail).rev() {
            let hdr = *self.vlog.hdr(v);
            let e = &mut self.entries[hdr.entry as usize];
            e.vaddr = hdr.old;
            self.size -= hdr.len as usize;
            if hdr.old == NULL_VADDR {
                let kept = e.key_flags().and_persistent();
                if kept.is_empty() {
                    e.flags = DELETED;
                    self.len -= 1;
                    self.size -= usize::from(e.key_len);
                } else {
                    e.flags = kept.bits();
                }
            } else {
                self.size += self.vlog.hdr(hdr.old).len as usize;
            }
        }
    }

    /// The current log position (client-go: `Checkpoint`).
    pub fn checkpoint(&self) -> Checkpoint {
        self.vlog.checkpoint()
    }

    /// Reverts every value written after `cp` (same rules as [`cleanup`](Self::cleanup)) without
    /// touching the staging stack (client-go: `RevertToCheckpoint`).
    pub fn revert_to_checkpoint(&mut self, cp: &Checkpoint) {
        self.revert_to(cp);
        self.vlog.truncate(cp);
        self.on_mem_change();
        self.write_seq += 1;
        if self.stages.is_empty() || self.stages[0].less_than(cp) {
            self.snapshot_seq += 1;
        }
    }

    /// Whether a staging level is open (client-go: `IsStaging`).
    pub fn is_staging(&self) -> bool {
        !self.stages.is_empty()
    }

    /// The open staging levels' checkpoints, outermost first (client-go: `Stages`).
    pub fn stages(&self) -> &[Checkpoint] {
        &self.stages
    }

    /// Visits the keys written since staging level `handle` opened, newest first, once per key
    /// with its current flags and the value it got in that range (client-go: `InspectStage`).
    /// An unknown handle visits nothing.
    pub fn inspect_stage(&self, handle: usize, mut f: impl FnMut(&[u8], KeyFlags, &[u8])) {
        let Some(head) = handle.checked_sub(1).and_then(|i| self.stages.get(i)) else {
            return;
        };
        let tail = self.vlog.hdrs.len() as u32;
        for v in (head.versions..tail).rev() {
            let hdr = self.vlog.hdr(v);
            let e = &self.entries[hdr.entry as usize];
            // Older versions of a key written again later in the range are skipped.
            if e.vaddr == v {
                f(self.entry_key(hdr.entry), e.key_flags(), self.vlog.value(v));
            }
        }
    }

    // ----- whole-buffer operations -----

    /// Drops everything, including staging levels (client-go: `Reset`).
    pub fn reset(&mut self) {
        self.keys.reset();
        self.entries = Vec::new();
        self.index.reset();
        self.vlog.reset();
        self.stages.clear();
        self.dirty = false;
        self.vlog_invalid = false;
        self.size = 0;
        self.len = 0;
        self.last_traversed.store(NIL, Ordering::Relaxed);
        self.snapshot_seq += 1;
        self.write_seq += 1;
        self.on_mem_change();
    }

    /// Frees all values while keeping keys and flags (client-go: `DiscardValues`, done by 2PC
    /// before the commit phase). Afterwards [`get`](Self::get) and writes panic and
    /// [`value_by_handle`](Self::value_by_handle) answers `None`.
    pub fn discard_values(&mut self) {
        self.vlog_invalid = true;
        self.vlog.reset();
        self.on_mem_change();
    }

    /// Whether anything escaped staging, or a persistent flag was set (client-go: `Dirty`,
    /// spec M29).
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Number of keys with a value or flags (client-go: `Len`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of counted keys' lengths and current values' lengths (client-go: `Size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes reserved by the buffer (client-go: `Mem`); zero until the first write.
    pub fn mem(&self) -> u64 {
        self.index.capacity()
            + (self.entries.capacity() * std::mem::size_of::<Entry>()) as u64
            + self.keys.capacity()
            + self.vlog.capacity()
    }

    /// Sets the entry and buffer size limits (client-go: `SetEntrySizeLimit`). Unlike
    /// [`UnionStore::set_entry_size_limit`], 0 here means 0.
    pub fn set_entry_size_limit(&mut self, entry_limit: u64, buffer_limit: u64) {
        self.entry_size_limit = entry_limit;
        self.buffer_size_limit = buffer_limit;
    }

    /// The entry and buffer size limits (client-go: `GetEntrySizeLimit`).
    pub fn entry_size_limit(&self) -> (u64, u64) {
        (self.entry_size_limit, self.buffer_size_limit)
    }

    /// Registers a callback that receives [`mem`](Self::mem) whenever the value log gains a
    /// block, after cleanup and reverts, and on reset (client-go:
    /// `SetMemoryFootprintChangeHook`).
    pub fn set_memory_footprint_change_hook(&mut self, hook: impl Fn(u64) + Send + Sync + 'static) {
        self.mem_hook = Some(Arc::new(hook));
    }

    /// Whether a memory hook is registered (client-go: `MemHookSet`).
    pub fn mem_hook_set(&self) -> bool {
        self.mem_hook.is_some()
    }

    fn on_mem_change(&self) {
        if let Some(h) = &self.mem_hook {
            h(self.mem());
        }
    }

    /// Lookups answered by the last-traversed-key cache (client-go: `GetCacheHitCount`).
    pub fn cache_hit_count(&self) -> u64 {
        self.hit_count.load(Ordering::Relaxed)
    }

    /// Lookups that missed the cache (client-go: `GetCacheMissCount`).
    pub fn cache_miss_count(&self) -> u64 {
        self.miss_count.load(Ordering::Relaxed)
    }

    /// Number of value-log blocks (test helper for client-go's in-place update test).
    #[cfg(test)]
    fn vlog_blocks(&self) -> usize {
        self.vlog.arena.blocks()
    }
}
