//! The ordered index of the buffer: an insert-only B+ tree of entry ids.
//!
//! client-go orders keys with an adaptive radix tree whose leaves hold the keys; this index plays
//! the same role with a B+ tree whose slots hold `u32` entry ids (keys live in the key arena and
//! are reached through the entry table). Each slot also keeps the first 8 key bytes as a
//! big-endian `u64` ("prefix"); zero padding keeps the prefix order consistent with key order, so
//! most comparisons never touch the key bytes. Keys are never removed (client-go also keeps
//! reverted keys as "deleted" leaves until `Reset`), which keeps the tree simple: inserts and
//! splits only. Leaves are linked both ways for iteration.
//!
//! Nodes live in two vectors and refer to each other by index, so the whole tree is two
//! allocations plus growth, with no unsafe code.

use std::cmp::Ordering;

/// "No node" / "no entry".
pub(super) const NIL: u32 = u32::MAX;
const LEAF_CAP: usize = 64;
const INNER_CAP: usize = 64;

/// The first 8 bytes of `key`, zero padded, big-endian.
#[inline]
pub(super) fn prefix_of(key: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = key.len().min(8);
    buf[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(buf)
}

/// Where the index finds the key of an entry id.
pub(super) trait KeySource {
    fn key(&self, id: u32) -> &[u8];
}

#[derive(Debug, Clone)]
struct Leaf {
    len: u16,
    prev: u32,
    next: u32,
    pfx: [u64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

#[derive(Debug, Clone)]
struct Inner {
    /// Number of children; there are `len - 1` separators.
    len: u16,
    /// Separator `i` is the smallest key of child `i + 1`.
    pfx: [u64; INNER_CAP - 1],
    seps: [u32; INNER_CAP - 1],
    children: [u32; INNER_CAP],
}

/// A position in the index: a leaf and a slot in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) leaf: u32,
    pub(super) slot: u16,
}

#[derive(Debug)]
pub(super) struct Index {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    root: u32,
    /// 0 when the root is a leaf.
    height: u16,
    last_leaf: u32,
    /// Scratch: the descent path of the last `locate`.
    path: Vec<(u32, u16)>,
}

/// Where a missing key goes; see [`Index::locate`].
#[derive(Debug, Clone, Copy)]
pub(super) struct InsertPoint {
    leaf: u32,
    slot: usize,
    pk: u64,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            leaves: Vec::new(),
            inners: Vec::new(),
            root: NIL,
            height: 0,
            last_leaf: NIL,
            path: Vec::new(),
        }
    }
}

#[inline]
fn cmp_slot(ks: &impl KeySource, pk: u64, key: &[u8], spfx: u64, sid: u32) -> Ordering {
    match pk.cmp(&spfx) {
        Ordering::Equal => key.cmp(ks.key(sid)),
        o => o,
    }
}

impl Index {
    pub(super) fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// Bytes reserved by the nodes.
    pub(super) fn capacity(&self) -> u64 {
        (self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()) as u64
    }

    /// Descends to the leaf that would hold `key`, recording `(inner, child index)` per level.
    #[inline]
    fn descend(
        &self,
        ks: &impl KeySource,
        pk: u64,
        key: &[u8],
        mut path: Option<&mut Vec<(u32, u16)>>,
    ) -> u32 {
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let nsep = usize::from(inner.len) - 1;
            // Number of separators <= key: upper bound.
            let (mut lo, mut hi) = (0usize, nsep);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if cmp_slot(ks, pk, key, inner.pfx[mid], inner.seps[mid]) == Ordering::Less {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            if let Some(p) = path.as_deref_mut() {
                p.push((node, lo as u16));
            }
            node = inner.children[lo];
        }
        node
    }

    /// First slot in `leaf` whose key is >= `key`.
    #[inline]
    fn leaf_lower_bound(&self, ks: &impl KeySource, leaf: u32, pk: u64, key: &[u8]) -> usize {
        let l = &self.leaves[leaf as usize];
        let (mut lo, mut hi) = (0usize, usize::from(l.len));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if cmp_slot(ks, pk, key, l.pfx[mid], l.ids[mid]) == Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The entry id of `key`, if present.
    pub(super) fn get(&self, ks: &impl KeySource, key: &[u8]) -> Option<u32> {
        if self.root == NIL {
            return None;
        }
        let pk = prefix_of(key);
        let leaf = self.descend(ks, pk, key, None);
        let slot = self.leaf_lower_bound(ks, leaf, pk, key);
        let l = &self.leaves[leaf as usize];
        if slot < usize::from(l.len) && l.pfx[slot] == pk && ks.key(l.ids[slot]) == key {
            Some(l.ids[slot])
        } else {
            None
        }
    }

    /// The first position whose key is >= `key` (`None` past the end).
    pub(super) fn lower_bound(&self, ks: &impl KeySource, key: &[u8]) -> Option<Pos> {
        if self.root == NIL {
            return None;
        }
        let pk = prefix_of(key);
        let leaf = self.descend(ks, pk, key, None);
        let slot = self.leaf_lower_bound(ks, leaf, pk, key);
        self.normalize(leaf, slot)
    }

    /// Turns "one past the last slot of `leaf`" into the first slot of the next leaf.
    fn normalize(&self, leaf: u32, slot: usize) -> Option<Pos> {
        let l = &self.leaves[leaf as usize];
        if slot < usize::from(l.len) {
            return Some(Pos {
                leaf,
                slot: slot as u16,
            });
        }
        if l.next == NIL {
            None
        } else {
            Some(Pos {
                leaf: l.next,
                slot: 0,
            })
        }
    }

    pub(super) fn first(&self) -> Option<Pos> {
        if self.root == NIL {
            return None;
        }
        Some(Pos { leaf: 0, slot: 0 })
    }

    pub(super) fn last(&self) -> Option<Pos> {
        if self.root == NIL {
            return None;
        }
        let l = &self.leaves[self.last_leaf as usize];
        Some(Pos {
            leaf: self.last_leaf,
            slot: l.len - 1,
        })
    }

    #[inline]
    pub(super) fn id_at(&self, pos: Pos) -> u32 {
        self.leaves[pos.leaf as usize].ids[usize::from(pos.slot)]
    }

    /// The id at `pos` if `pos` still points into its leaf.
    #[inline]
    pub(super) fn id_at_checked(&self, pos: Pos) -> Option<u32> {
        let l = self.leaves.get(pos.leaf as usize)?;
        (pos.slot < l.len).then(|| l.ids[usize::from(pos.slot)])
    }

    #[inline]
    pub(super) fn next(&self, pos: Pos) -> Option<Pos> {
        let l = &self.leaves[pos.leaf as usize];
        if pos.slot + 1 < l.len {
            Some(Pos {
                leaf: pos.leaf,
                slot: pos.slot + 1,
            })
        } else if l.next != NIL {
            Some(Pos {
                leaf: l.next,
                slot: 0,
            })
        } else {
            None
        }
    }

    #[inline]
    pub(super) fn prev(&self, pos: Pos) -> Option<Pos> {
        if pos.slot > 0 {
            return Some(Pos {
                leaf: pos.leaf,
                slot: pos.slot - 1,
            });
        }
        let p = self.leaves[pos.leaf as usize].prev;
        if p == NIL {
            None
        } else {
            Some(Pos {
                leaf: p,
                slot: self.leaves[p as usize].len - 1,
            })
        }
    }

    fn new_leaf(&mut self) -> u32 {
        let id = self.leaves.len() as u32;
        self.leaves.push(Leaf {
            len: 0,
            prev: NIL,
            next: NIL,
            pfx: [0; LEAF_CAP],
            ids: [0; LEAF_CAP],
        });
        id
    }

    fn new_inner(&mut self) -> u32 {
        let id = self.inners.len() as u32;
        self.inners.push(Inner {
            len: 0,
            pfx: [0; INNER_CAP - 1],
            seps: [0; INNER_CAP - 1],
            children: [NIL; INNER_CAP],
        });
        id
    }

    /// Looks `key` up for an insert: `Ok(id)` when present, otherwise `Err(point)` naming where
    /// it goes; pass the point to [`insert_at`](Self::insert_at) (the path is kept in `self`).
    pub(super) fn locate(&mut self, ks: &impl KeySource, key: &[u8]) -> Result<u32, InsertPoint> {
        let pk = prefix_of(key);
        if self.root == NIL {
            return Err(InsertPoint {
                leaf: NIL,
                slot: 0,
                pk,
            });
        }
        let mut path = std::mem::take(&mut self.path);
        path.clear();
        let leaf = self.descend(ks, pk, key, Some(&mut path));
        self.path = path;
        let slot = self.leaf_lower_bound(ks, leaf, pk, key);
        let l = &self.leaves[leaf as usize];
        if slot < usize::from(l.len) && l.pfx[slot] == pk && ks.key(l.ids[slot]) == key {
            return Ok(l.ids[slot]);
        }
        Err(InsertPoint { leaf, slot, pk })
    }

    /// Inserts `id` at a point returned by the immediately preceding [`locate`](Self::locate).
    pub(super) fn insert_at(&mut self, point: InsertPoint, id: u32) {
        if point.leaf == NIL {
            let leaf = self.new_leaf();
            let l = &mut self.leaves[leaf as usize];
            l.len = 1;
            l.pfx[0] = point.pk;
            l.ids[0] = id;
            self.root = leaf;
            self.last_leaf = leaf;
            self.height = 0;
            return;
        }
        let mut path = std::mem::take(&mut self.path);
        self.insert_into_leaf(point.leaf, point.slot, point.pk, id, &mut path);
        path.clear();
        self.path = path;
    }

    fn insert_into_leaf(
        &mut self,
        leaf: u32,
        slot: usize,
        pk: u64,
        id: u32,
        path: &mut Vec<(u32, u16)>,
    ) {
        let len = usize::from(self.leaves[leaf as usize].len);
        if len < LEAF_CAP {
            let l = &mut self.leaves[leaf as usize];
            l.pfx.copy_within(slot..len, slot + 1);
            l.ids.copy_within(slot..len, slot + 1);
            l.pfx[slot] = pk;
            l.ids[slot] = id;
            l.len += 1;
            return;
        }
        // Split. Appending at the end keeps the full leaf full (sequential inserts then fill
        // leaves completely); otherwise split in half.
        let split = if slot == len { len } else { len / 2 };
        let right = self.new_leaf();
        let (left_part, right_part) = self.leaves.split_at_mut(right as usize);
        let l = &mut left_part[leaf as usize];
        let r = &mut right_part[0];
        let moved = len - split;
        r.pfx[..moved].copy_from_slice(&l.pfx[split..len]);
        r.ids[..moved].copy_from_slice(&l.ids[split..len]);
        r.len = moved as u16;
        l.len = split as u16;
        r.next = l.next;
        r.prev = leaf;
        l.next = right;
        if r.next != NIL {
            let nx = r.next as usize;
            self.leaves[nx].prev = right;
        } else {
            self.last_leaf = right;
        }
        if slot <= split && split != len {
            // Goes left (stays sorted: slot <= split).
            self.insert_into_leaf_nosplit(leaf, slot, pk, id);
        } else {
            self.insert_into_leaf_nosplit(right, slot - split, pk, id);
        }
        let r = &self.leaves[right as usize];
        let (sep_pfx, sep_id) = (r.pfx[0], r.ids[0]);
        self.insert_separator(path, leaf, right, sep_pfx, sep_id);
    }

    fn insert_into_leaf_nosplit(&mut self, leaf: u32, slot: usize, pk: u64, id: u32) {
        let l = &mut self.leaves[leaf as usize];
        let len = usize::from(l.len);
        l.pfx.copy_within(slot..len, slot + 1);
        l.ids.copy_within(slot..len, slot + 1);
        l.pfx[slot] = pk;
        l.ids[slot] = id;
        l.len += 1;
    }

    /// After `left` split into `left` and `right`, registers `right` (whose smallest key is
    /// `(sep_pfx, sep_id)`) in the parent, splitting upwards as needed.
    fn insert_separator(
        &mut self,
        path: &mut Vec<(u32, u16)>,
        left: u32,
        right: u32,
        sep_pfx: u64,
        sep_id: u32,
    ) {
        let Some((parent, child_idx)) = path.pop() else {
            // `left` was the root: grow a level.
            let root = self.new_inner();
            let n = &mut self.inners[root as usize];
            n.len = 2;
            n.children[0] = left;
            n.children[1] = right;
            n.pfx[0] = sep_pfx;
            n.seps[0] = sep_id;
            self.root = root;
            self.height += 1;
            return;
        };
        let ci = usize::from(child_idx);
        let len = usize::from(self.inners[parent as usize].len);
        if len < INNER_CAP {
            let n = &mut self.inners[parent as usize];
            // New child goes at ci + 1, its separator at ci.
            n.children.copy_within(ci + 1..len, ci + 2);
            n.children[ci + 1] = right;
            n.pfx.copy_within(ci..len - 1, ci + 1);
            n.seps.copy_within(ci..len - 1, ci + 1);
            n.pfx[ci] = sep_pfx;
            n.seps[ci] = sep_id;
            n.len += 1;
            return;
        }
        // Split the inner node. Build the full sequence (len + 1 children, len separators) and
        // cut it: the left keeps `lc` children, the separator between the halves moves up.
        let n = &self.inners[parent as usize];
        let mut children: Vec<u32> = Vec::with_capacity(len + 1);
        let mut seps: Vec<(u64, u32)> = Vec::with_capacity(len);
        children.extend_from_slice(&n.children[..=ci]);
        children.push(right);
        children.extend_from_slice(&n.children[ci + 1..len]);
        for i in 0..ci {
            seps.push((n.pfx[i], n.seps[i]));
        }
        seps.push((sep_pfx, sep_id));
        for i in ci..len - 1 {
            seps.push((n.pfx[i], n.seps[i]));
        }
        let total = children.len();
        let lc = if ci + 1 == len { len } else { total / 2 };
        let new_right = self.new_inner();
        let up = seps[lc - 1];
        {
            let ln = &mut self.inners[parent as usize];
            ln.len = lc as u16;
            ln.children[..lc].copy_from_slice(&children[..lc]);
            ln.children[lc..].fill(NIL);
            for (i, &(p, s)) in seps[..lc - 1].iter().enumerate() {
                ln.pfx[i] = p;
                ln.seps[i] = s;
            }
        }
        {
            let rn = &mut self.inners[new_right as usize];
            let rc = total - lc;
            rn.len = rc as u16;
            rn.children[..rc].copy_from_slice(&children[lc..]);
            for (i, &(p, s)) in seps[lc..].iter().enumerate() {
                rn.pfx[i] = p;
                rn.seps[i] = s;
            }
        }
        self.insert_separator(path, parent, new_right, up.0, up.1);
    }

    pub(super) fn reset(&mut self) {
        *self = Index::default();
    }
}
