//! Borrowing iterators over the buffer (client-go: `art/art_iterator.go` — `Iter`,
//! `IterReverse`, `IterWithFlags`, `IterReverseWithFlags`).

use tikv_layers::Error;
use tikv_layers::error::ErrorDetail;

use super::index::Pos;
use super::vlog::NULL_VADDR;
use super::{KeyFlags, KeyHandle, MemDb};

/// The cursor protocol shared by buffer, snapshot and union iterators (client-go:
/// `unionstore.Iterator`; `Close` is `Drop`).
///
/// Position on the first entry at creation; read [`key`](Self::key) and
/// [`value`](Self::value) while [`valid`](Self::valid); [`next`](Self::next) advances.
pub trait KvIterator {
    /// Whether the iterator points at an entry.
    fn valid(&self) -> bool;
    /// The current key. Only meaningful while [`valid`](Self::valid).
    fn key(&self) -> &[u8];
    /// The current value (empty for a buffered delete). Only meaningful while valid.
    fn value(&self) -> &[u8];
    /// Moves to the next entry.
    ///
    /// # Errors
    ///
    /// Implementation specific; buffer iterators fail when already exhausted.
    fn next(&mut self) -> Result<(), Error>;
}

/// An ordered iterator over a [`MemDb`], forward or reverse, optionally including flags-only
/// keys.
///
/// It borrows the buffer, so no write can happen while it lives — client-go's ART iterators
/// panic on use after a write ("seqNo mismatch"); here the compiler rejects it.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    db: &'a MemDb,
    pos: Option<Pos>,
    /// The position at which iteration stops (exclusive), `None` = run to the end.
    end: Option<Pos>,
    reverse: bool,
    include_flags: bool,
    cur: u32,
    valid: bool,
}

impl MemDb {
    /// Keys in `[lower, upper)`, ascending; an empty bound is unbounded (client-go: `Iter`).
    /// Yields tombstones (empty values) but not flags-only keys.
    pub fn iter<'a>(&'a self, lower: &[u8], upper: &[u8]) -> Iter<'a> {
        Iter::new(self, lower, upper, false, false)
    }

    /// Keys in `[lower, upper)`, descending from the greatest key below `upper` (client-go:
    /// `IterReverse(upper, lower)`; note the argument order).
    pub fn iter_reverse<'a>(&'a self, upper: &[u8], lower: &[u8]) -> Iter<'a> {
        Iter::new(self, lower, upper, true, false)
    }

    /// Like [`iter`](Self::iter) but also yields flags-only keys (client-go: `IterWithFlags`);
    /// keys removed by a revert are never yielded.
    pub fn iter_with_flags<'a>(&'a self, lower: &[u8], upper: &[u8]) -> Iter<'a> {
        Iter::new(self, lower, upper, false, true)
    }

    /// Reverse of [`iter_with_flags`](Self::iter_with_flags), from below `upper` to the first key
    /// (client-go: `IterReverseWithFlags`).
    pub fn iter_reverse_with_flags<'a>(&'a self, upper: &[u8]) -> Iter<'a> {
        Iter::new(self, &[], upper, true, true)
    }
}

impl<'a> Iter<'a> {
    pub(super) fn new(
        db: &'a MemDb,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        include_flags: bool,
    ) -> Self {
        let mut it = Iter {
            db,
            pos: None,
            end: None,
            reverse,
            include_flags,
            cur: 0,
            valid: false,
        };
        if db.index.is_empty() || (!lower.is_empty() && !upper.is_empty() && lower >= upper) {
            return it;
        }
        let ks = db.keys();
        it.pos = if reverse {
            if upper.is_empty() {
                db.index.last()
            } else {
                match db.index.lower_bound(&ks, upper) {
                    Some(p) => db.index.prev(p),
                    None => db.index.last(),
                }
            }
        } else if lower.is_empty() {
            db.index.first()
        } else {
            db.index.lower_bound(&ks, lower)
        };
        it.end = Self::end_pos(db, lower, upper, reverse);
        it.settle();
        it
    }

    /// The position where iteration over `[lower, upper)` stops (exclusive).
    fn end_pos(db: &MemDb, lower: &[u8], upper: &[u8], reverse: bool) -> Option<Pos> {
        let ks = db.keys();
        if reverse {
            if lower.is_empty() {
                None
            } else {
                match db.index.lower_bound(&ks, lower) {
                    // Stop at the entry just below `lower`; none means run to the first key.
                    Some(p) => db.index.prev(p),
                    // Every key is below `lower`: stop immediately.
                    None => db.index.last(),
                }
            }
        } else if upper.is_empty() {
            None
        } else {
            db.index.lower_bound(&ks, upper)
        }
    }

    /// An iterator positioned just after `pos` (in its direction), bounded by `[lower, upper)`;
    /// `pos` must lie inside the bounds.
    pub(super) fn resume_after(
        db: &'a MemDb,
        pos: Pos,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> Self {
        let mut it = Iter {
            db,
            pos: Some(pos),
            end: Self::end_pos(db, lower, upper, reverse),
            reverse,
            include_flags: false,
            cur: 0,
            valid: false,
        };
        if it.end == Some(pos) {
            return it;
        }
        it.step();
        it.settle();
        it
    }

    /// The index position of the current entry.
    pub(super) fn pos_hint(&self) -> Option<Pos> {
        self.pos
    }

    /// Moves forward from `pos` (inclusive) to the first entry the iterator yields.
    fn settle(&mut self) {
        while let Some(p) = self.pos {
            if Some(p) == self.end {
                break;
            }
            let id = self.db.index.id_at(p);
            let e = &self.db.entries[id as usize];
            let yield_it = if e.vaddr != NULL_VADDR {
                true
            } else {
                self.include_flags && !e.is_deleted()
            };
            if yield_it {
                self.cur = id;
                self.valid = true;
                return;
            }
            self.step();
        }
        self.pos = None;
        self.valid = false;
    }

    fn step(&mut self) {
        if let Some(p) = self.pos {
            self.pos = if self.reverse {
                self.db.index.prev(p)
            } else {
                self.db.index.next(p)
            };
        }
    }

    /// The current key's flags.
    pub fn flags(&self) -> KeyFlags {
        self.db.entries[self.cur as usize].key_flags()
    }

    /// Whether the current key has a value (false for flags-only keys, which only the
    /// `*_with_flags` iterators yield).
    pub fn has_value(&self) -> bool {
        self.db.entries[self.cur as usize].vaddr != NULL_VADDR
    }

    /// A stable handle to the current key (client-go: `Iterator.Handle`).
    pub fn handle(&self) -> KeyHandle {
        KeyHandle(self.cur)
    }

    /// The current key, with the buffer's lifetime.
    pub fn key_ref(&self) -> &'a [u8] {
        self.db.entry_key(self.cur)
    }

    /// The current value (empty for tombstones and flags-only keys), with the buffer's lifetime.
    pub fn value_ref(&self) -> &'a [u8] {
        let e = &self.db.entries[self.cur as usize];
        if e.vaddr == NULL_VADDR {
            &[]
        } else {
            self.db.vlog.value(e.vaddr)
        }
    }

    pub(super) fn current_id(&self) -> u32 {
        self.cur
    }

    pub(super) fn db(&self) -> &'a MemDb {
        self.db
    }
}

impl KvIterator for Iter<'_> {
    fn valid(&self) -> bool {
        self.valid
    }

    fn key(&self) -> &[u8] {
        self.key_ref()
    }

    fn value(&self) -> &[u8] {
        self.value_ref()
    }

    /// # Errors
    ///
    /// "iterator is finished" when called on an exhausted iterator (client-go's ART iterator).
    fn next(&mut self) -> Result<(), Error> {
        if !self.valid {
            return Err(Error::new(ErrorDetail::Internal(
                "memdb: iterator is finished".to_owned(),
            )));
        }
        self.step();
        self.settle();
        Ok(())
    }
}
