//! Key helpers (client-go: `kv/key.go`).

use std::cmp::Ordering;

/// The smallest key strictly greater than `key`: `key` followed by `0x00`
/// (client-go: `kv.NextKey`).
pub fn next_key(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The smallest key greater than every key that starts with `key` (client-go:
/// `kv.PrefixNextKey`).
///
/// Increments the last byte that is not `0xFF` and drops the bytes after it. When every byte is
/// `0xFF` (or `key` is empty) the result is empty, which callers read as "unbounded" — client-go
/// deliberately differs from TiDB here, which would return `key ++ [0]`.
pub fn prefix_next_key(key: &[u8]) -> Vec<u8> {
    match key.iter().rposition(|&b| b != 0xFF) {
        Some(i) => {
            let mut next = key[..=i].to_vec();
            next[i] += 1;
            next
        }
        None => Vec::new(),
    }
}

/// Byte-wise key comparison (client-go: `kv.CmpKey`).
pub fn cmp_key(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

/// A half-open key range `[start_key, end_key)`; an empty `end_key` means unbounded
/// (client-go: `kv.KeyRange`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// Inclusive start.
    pub start_key: Vec<u8>,
    /// Exclusive end; empty = unbounded.
    pub end_key: Vec<u8>,
}

impl KeyRange {
    /// Builds a range from its two bounds.
    pub fn new(start_key: impl Into<Vec<u8>>, end_key: impl Into<Vec<u8>>) -> Self {
        Self {
            start_key: start_key.into(),
            end_key: end_key.into(),
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // client-go: T-UTIL-046 TestPrefixNextKey
    #[test]
    fn prefix_next_key_all_ff_is_unbounded() {
        assert_eq!(prefix_next_key(&[0xff]), Vec::<u8>::new());
        assert_eq!(prefix_next_key(&[0xff, 0xff]), Vec::<u8>::new());
        assert_eq!(prefix_next_key(&[0xff, 0xff, 0xff, 0xff]), Vec::<u8>::new());
    }

    #[test]
    fn prefix_next_key_increments_last_non_ff() {
        assert_eq!(prefix_next_key(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_next_key(&[1, 0xff, 0xff]), vec![2]);
        assert_eq!(next_key(b"a"), b"a\0".to_vec());
        assert_eq!(cmp_key(b"a", b"b"), Ordering::Less);
        let r = KeyRange::new(b"b".to_vec(), Vec::new());
        assert!(r.contains(b"z") && !r.contains(b"a"));
    }
}
