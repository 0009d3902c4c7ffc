//! Block arena for key bytes and value bytes (client-go: `internal/unionstore/arena/arena.go`).
//!
//! Bytes are appended into blocks whose size starts at 4 KiB and doubles (never beyond 128 MiB)
//! whenever the last block cannot hold an allocation, so growing never copies old data and the
//! capacity is at most about twice the bytes stored. An address packs `(block, offset)` into a
//! `u64`. A [`ArenaCheckpoint`] records the tail; [`Arena::truncate`] drops everything after one,
//! freeing whole blocks — that is how a staging cleanup gives memory back.

/// The first block's size.
pub(super) const INIT_BLOCK_SIZE: usize = 4 * 1024;
/// The largest block, and therefore the largest single allocation.
pub(super) const MAX_BLOCK_SIZE: usize = 128 << 20;

/// The tail of an [`Arena`] at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct ArenaCheckpoint {
    block_size: usize,
    blocks: usize,
    offset_in_block: usize,
}

#[derive(Debug, Default)]
pub(super) struct Arena {
    blocks: Vec<Vec<u8>>,
    block_size: usize,
    capacity: u64,
}

impl Arena {
    /// Packs a block index and offset.
    #[inline]
    const fn addr(block: usize, off: usize) -> u64 {
        ((block as u64) << 32) | off as u64
    }

    /// Appends `data`, returning its address and whether a new block was allocated.
    ///
    /// # Panics
    ///
    /// When `data` is larger than [`MAX_BLOCK_SIZE`] (mirrors client-go's arena; the buffer checks
    /// value sizes before calling so users get an error instead).
    pub(super) fn alloc(&mut self, data: &[u8]) -> (u64, bool) {
        let size = data.len();
        assert!(
            size <= MAX_BLOCK_SIZE,
            "alloc size is larger than max block size"
        );
        let mut grew = false;
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= size);
        if !fits {
            let base = if self.blocks.is_empty() {
                INIT_BLOCK_SIZE
            } else {
                self.block_size << 1
            };
            self.enlarge(size, base);
            grew = true;
        }
        let idx = self.blocks.len() - 1;
        let block = &mut self.blocks[idx];
        let off = block.len();
        block.extend_from_slice(data);
        (Self::addr(idx, off), grew)
    }

    fn enlarge(&mut self, alloc_size: usize, block_size: usize) {
        let mut bs = block_size;
        while bs <= alloc_size {
            bs <<= 1;
        }
        self.block_size = bs.min(MAX_BLOCK_SIZE);
        self.blocks.push(Vec::with_capacity(self.block_size));
        self.capacity += self.block_size as u64;
    }

    /// The bytes at `addr`.
    #[inline]
    pub(super) fn get(&self, addr: u64, len: usize) -> &[u8] {
        let (b, o) = ((addr >> 32) as usize, (addr & 0xFFFF_FFFF) as usize);
        &self.blocks[b][o..o + len]
    }

    /// The bytes at `addr`, writable (used for in-place overwrites of same-length values).
    #[inline]
    pub(super) fn get_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let (b, o) = ((addr >> 32) as usize, (addr & 0xFFFF_FFFF) as usize);
        &mut self.blocks[b][o..o + len]
    }

    /// Bytes reserved by all blocks.
    pub(super) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of blocks.
    #[cfg(test)]
    pub(super) fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The current tail.
    pub(super) fn checkpoint(&self) -> ArenaCheckpoint {
        ArenaCheckpoint {
            block_size: self.block_size,
            blocks: self.blocks.len(),
            offset_in_block: self.blocks.last().map_or(0, Vec::len),
        }
    }

    /// Drops everything allocated after `cp`, freeing whole blocks.
    pub(super) fn truncate(&mut self, cp: &ArenaCheckpoint) {
        if cp.blocks < self.blocks.len() {
            self.blocks.truncate(cp.blocks);
        }
        if let Some(last) = self.blocks.last_mut() {
            last.truncate(cp.offset_in_block);
        }
        self.block_size = cp.block_size;
        self.capacity = self.blocks.iter().map(|b| b.capacity() as u64).sum();
    }

    /// Frees everything.
    pub(super) fn reset(&mut self) {
        *self = Arena::default();
    }
}

impl ArenaCheckpoint {
    /// The block size in effect at the checkpoint.
    #[cfg(test)]
    pub(super) fn block_size(&self) -> usize {
        self.block_size
    }
}
