//! The key type of the region index: region boundaries whose first bytes live inside the
//! tree node and compare as machine words.
//!
//! A region lookup is a `BTreeMap` descent that compares the searched key with a dozen or
//! more boundary keys. With `Vec<u8>` keys every comparison follows a pointer to a heap
//! buffer (in a long-lived cache those buffers are scattered among the region objects
//! allocated between them) and calls `memcmp`. An [`IndexKey`] keeps the first [`INLINE`]
//! bytes in the node, zero-padded, and compares them as four big-endian `u64` words; only
//! keys that agree on all of them and are longer than [`INLINE`] bytes (rare: TiKV record
//! keys are 19 bytes) fall back to comparing the whole keys.
//!
//! Comparing zero-padded prefixes and then lengths orders keys exactly as their bytes do:
//! if the padded prefixes first differ at a position inside both keys, that is where the
//! keys differ; if they differ at a position past the end of one key, that key reads 0
//! there while the other has a real, non-zero byte, so the shorter key is a prefix of the
//! longer and sorts first, which is also what the words say. Equal padded prefixes of two
//! short keys mean one is the other plus trailing zero bytes, so the shorter sorts first.
//! Ordering and equality therefore agree with `[u8]`, which makes `Borrow<[u8]>` sound and
//! lets the map be searched with plain byte slices too.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// How many leading bytes a key keeps in the tree node.
pub(crate) const INLINE: usize = 32;

/// A region boundary key (see the module doc).
#[derive(Clone)]
pub(crate) struct IndexKey {
    /// The first `min(len, INLINE)` bytes, zero-padded to `INLINE`.
    prefix: [u8; INLINE],
    /// The key's length in bytes.
    len: usize,
    /// The whole key when it is longer than `INLINE` bytes.
    spill: Option<Box<[u8]>>,
}

impl IndexKey {
    /// Copies `bytes` into a key; allocates only for keys longer than [`INLINE`] bytes.
    pub(crate) fn new(bytes: &[u8]) -> IndexKey {
        let mut prefix = [0u8; INLINE];
        let head = bytes.len().min(INLINE);
        prefix[..head].copy_from_slice(&bytes[..head]);
        IndexKey {
            prefix,
            len: bytes.len(),
            spill: (bytes.len() > INLINE).then(|| bytes.into()),
        }
    }

    /// A key for searching the index with `bytes`, or `None` when `bytes` is too long to
    /// be held without allocating (search with the byte slice instead).
    #[inline]
    pub(crate) fn probe(bytes: &[u8]) -> Option<IndexKey> {
        (bytes.len() <= INLINE).then(|| IndexKey::new(bytes))
    }

    /// The key's bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.spill {
            Some(all) => all,
            None => &self.prefix[..self.len.min(INLINE)],
        }
    }

    /// Word `i` of the padded prefix, big-endian so that integer order is byte order.
    #[inline(always)]
    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.prefix[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    }
}

impl Deref for IndexKey {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for IndexKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &IndexKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &IndexKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    #[inline]
    fn cmp(&self, other: &IndexKey) -> Ordering {
        for i in 0..INLINE / 8 {
            let (a, b) = (self.word(i), other.word(i));
            if a != b {
                return a.cmp(&b);
            }
        }
        if self.spill.is_none() && other.spill.is_none() {
            return self.len.cmp(&other.len);
        }
        self.as_slice().cmp(other.as_slice())
    }
}

// Hash must agree with `Borrow<[u8]>`: hash the bytes exactly as `[u8]` does.
impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_and_long_keys_keep_their_bytes() {
        let short = IndexKey::new(b"abc");
        let edge = IndexKey::new(&[7u8; INLINE]);
        let long = IndexKey::new(&[7u8; INLINE + 1]);
        assert!(short.spill.is_none() && edge.spill.is_none() && long.spill.is_some());
        assert_eq!(short.as_slice(), b"abc");
        assert_eq!(edge.as_slice(), &[7u8; INLINE][..]);
        assert_eq!(long.len(), INLINE + 1);
        assert!(IndexKey::probe(&[1u8; INLINE + 1]).is_none());
        assert_eq!(format!("{short:?}"), format!("{:?}", b"abc"));
    }

    #[test]
    fn trailing_zero_bytes_sort_after_the_shorter_key() {
        let a = IndexKey::new(b"a");
        let a0 = IndexKey::new(b"a\0");
        let a01 = IndexKey::new(b"a\0\x01");
        assert!(a < a0 && a0 < a01);
        assert_ne!(a, a0);
        let long = [0u8; INLINE + 3];
        assert!(IndexKey::new(&long[..INLINE]) < IndexKey::new(&long));
        assert!(IndexKey::new(b"") < IndexKey::new(b"\0"));
    }

    proptest! {
        // The word comparison must order any two keys exactly as their bytes: this is
        // what makes searching the index with `&[u8]` and with `IndexKey` agree.
        #[test]
        fn order_matches_the_bytes(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..48),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..48),
            shared in 0usize..40,
        ) {
            // Give the keys a common head often, so ties in the words are exercised.
            let mut b = b;
            let n = shared.min(a.len()).min(b.len());
            b[..n].copy_from_slice(&a[..n]);
            let (ka, kb) = (IndexKey::new(&a), IndexKey::new(&b));
            prop_assert_eq!(ka.cmp(&kb), a.as_slice().cmp(b.as_slice()));
            prop_assert_eq!(ka == kb, a == b);
        }
    }
}
