//! The value log: every value version ever written, in write order (client-go:
//! `internal/unionstore/arena/arena.go` — `MemdbVlog`).
//!
//! Each version has a header naming the entry it belongs to and the entry's previous version, so
//! the versions of one key form a newest-to-oldest chain, and the log as a whole can be walked
//! backwards to undo writes. A version is identified by its position in the log (a `u32`), which
//! makes checkpoints plain positions: a version was written before checkpoint `cp` exactly when
//! its position is below `cp`. Value bytes live in an [`Arena`]; headers live in a separate
//! vector (20 bytes each), which keeps value bytes contiguous.

use super::arena::{Arena, ArenaCheckpoint};

/// "No version".
pub(super) const NULL_VADDR: u32 = u32::MAX;

/// A position in the value log (client-go: `MemDBCheckpoint`).
///
/// Obtained from [`MemDb::checkpoint`](super::MemDb::checkpoint) and given back to
/// [`MemDb::revert_to_checkpoint`](super::MemDb::revert_to_checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub(super) versions: u32,
    pub(super) arena: ArenaCheckpoint,
}

impl Checkpoint {
    /// Whether both checkpoints are the same log position (client-go: `IsSamePosition`).
    pub fn is_same_position(&self, other: &Checkpoint) -> bool {
        self.versions == other.versions
    }

    /// Whether `self` is an earlier log position than `other` (client-go: `LessThan`).
    pub fn less_than(&self, other: &Checkpoint) -> bool {
        self.versions < other.versions
    }
}

/// One version's header.
#[derive(Debug, Clone, Copy)]
pub(super) struct VersionHdr {
    /// The entry (key) this version belongs to.
    pub(super) entry: u32,
    /// The entry's previous version, or [`NULL_VADDR`].
    pub(super) old: u32,
    /// Value length.
    pub(super) len: u32,
    /// Arena address of the value bytes, split in two `u32`s to keep the header at 20 bytes.
    addr_hi: u32,
    addr_lo: u32,
}

impl VersionHdr {
    fn addr(&self) -> u64 {
        (u64::from(self.addr_hi) << 32) | u64::from(self.addr_lo)
    }
}

#[derive(Debug, Default)]
pub(super) struct ValueLog {
    pub(super) arena: Arena,
    pub(super) hdrs: Vec<VersionHdr>,
}

impl ValueLog {
    /// Appends a version of `entry` whose previous version is `old`; returns its address and
    /// whether the value arena gained a block.
    pub(super) fn append(&mut self, entry: u32, old: u32, value: &[u8]) -> (u32, bool) {
        let (addr, grew) = if value.is_empty() {
            (0, false)
        } else {
            self.arena.alloc(value)
        };
        let vaddr = self.hdrs.len() as u32;
        self.hdrs.push(VersionHdr {
            entry,
            old,
            len: value.len() as u32,
            addr_hi: (addr >> 32) as u32,
            addr_lo: addr as u32,
        });
        (vaddr, grew)
    }

    #[inline]
    pub(super) fn hdr(&self, vaddr: u32) -> &VersionHdr {
        &self.hdrs[vaddr as usize]
    }

    /// The value of version `vaddr` (empty for a tombstone).
    #[inline]
    pub(super) fn value(&self, vaddr: u32) -> &[u8] {
        let h = &self.hdrs[vaddr as usize];
        if h.len == 0 {
            return &[];
        }
        self.arena.get(h.addr(), h.len as usize)
    }

    /// Overwrites version `vaddr`'s bytes; `value` must have the same length.
    pub(super) fn overwrite(&mut self, vaddr: u32, value: &[u8]) {
        let h = self.hdrs[vaddr as usize];
        self.arena
            .get_mut(h.addr(), h.len as usize)
            .copy_from_slice(value);
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            versions: self.hdrs.len() as u32,
            arena: self.arena.checkpoint(),
        }
    }

    /// Whether version `vaddr` was written at or after `cp`, so writes since `cp` may modify it
    /// in place (client-go: `CanModify`).
    #[inline]
    pub(super) fn can_modify(cp: &Checkpoint, vaddr: u32) -> bool {
        vaddr >= cp.versions
    }

    /// Walks `vaddr`'s chain newest to oldest and returns the first version accepted by `pred`
    /// (client-go: `SelectValueHistory`).
    pub(super) fn select_history(&self, mut vaddr: u32, mut pred: impl FnMut(u32) -> bool) -> u32 {
        while vaddr != NULL_VADDR {
            if pred(vaddr) {
                return vaddr;
            }
            vaddr = self.hdrs[vaddr as usize].old;
        }
        NULL_VADDR
    }

    /// The newest version in `vaddr`'s chain written before `cp` (client-go: `GetSnapshotValue`).
    pub(super) fn snapshot_version(&self, vaddr: u32, cp: &Checkpoint) -> u32 {
        self.select_history(vaddr, |v| !Self::can_modify(cp, v))
    }

    /// Drops every version after `cp`.
    pub(super) fn truncate(&mut self, cp: &Checkpoint) {
        self.hdrs.truncate(cp.versions as usize);
        self.arena.truncate(&cp.arena);
    }

    /// Bytes reserved by the log.
    pub(super) fn capacity(&self) -> u64 {
        self.arena.capacity() + (self.hdrs.capacity() * std::mem::size_of::<VersionHdr>()) as u64
    }

    pub(super) fn reset(&mut self) {
        self.arena.reset();
        self.hdrs = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::super::arena::MAX_BLOCK_SIZE;
    use super::*;

    #[test]
    fn header_is_20_bytes() {
        assert_eq!(std::mem::size_of::<VersionHdr>(), 20);
    }

    // client-go: T-MEMDB-055 TestBigValue
    #[test]
    fn big_value() {
        let mut log = ValueLog::default();
        log.append(0, NULL_VADDR, &vec![0u8; 80 << 20]);
        assert_eq!(log.arena.checkpoint().block_size(), MAX_BLOCK_SIZE);
        assert_eq!(log.arena.blocks(), 1);
        let cp = log.checkpoint();
        log.append(1, NULL_VADDR, &vec![0u8; 127 << 20]);
        // client-go's vlog-level revert walks the headers back to `cp` (calling the tree's
        // revert hook) without truncating; the blocks and block size stay.
        let mut walked = Vec::new();
        for v in (cp.versions..log.hdrs.len() as u32).rev() {
            walked.push(log.hdr(v).entry);
        }
        assert_eq!(walked, vec![1]);
        assert_eq!(log.arena.checkpoint().block_size(), MAX_BLOCK_SIZE);
        assert_eq!(log.arena.blocks(), 2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.append(2, NULL_VADDR, &vec![0u8; MAX_BLOCK_SIZE + 1]);
        }));
        let msg = r.expect_err("must panic");
        assert_eq!(
            msg.downcast_ref::<&str>().copied(),
            Some("alloc size is larger than max block size")
        );
    }

    // client-go: T-MEMDB-056 TestValueLargeThanBlock
    #[test]
    fn value_larger_than_block() {
        let mut log = ValueLog::default();
        log.append(0, NULL_VADDR, &[0u8; 1]);
        log.append(1, NULL_VADDR, &[0u8; 4096]);
        assert_eq!(log.arena.blocks(), 2);
        let (v, _) = log.append(2, NULL_VADDR, &[7u8; 3000]);
        assert_eq!(log.arena.blocks(), 2);
        assert_eq!(log.value(v).len(), 3000);
        assert!(log.value(v).iter().all(|&b| b == 7));
    }
}
