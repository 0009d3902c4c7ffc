//! Key ranges of the raw client: what a caller may pass to scans, delete-range and
//! checksum, and how it becomes TiKV's `[start, end)` form.
//!
//! client-go takes two byte slices, `start` and `end`, where an empty `end` means "to the
//! end of the key space" (RAW-17, RAW-18, RAW-20) and a reverse scan reads the same pair
//! upside down (RAW-19). Rust has range syntax for this, so the raw client takes a
//! [`BoundRange`], built from any of `a..b`, `a..=b`, `a..`, `..b`, `..=b`, `..` or a pair
//! of [`Bound`]s over anything that converts into `Vec<u8>`.
//!
//! Normalisation (`half_open`) follows client-go's key conventions: an excluded lower bound
//! or an included upper bound moves to the next key (`key ‖ 0x00`), as client-go's callers
//! do by hand.
//!
//! Decisions where client-go has none or a quirk:
//!
//! - An *inverted* range (lower key above upper key) is a caller bug: it fails with
//!   [`ErrorDetail::InvalidArgument`] before any RPC. client-go silently returns nothing
//!   (its loops never start); Rust's own `BTreeMap::range` panics on the same input, and an
//!   error is the non-panicking form of that rule. A range whose bounds are equal (`k..k`)
//!   is merely empty.
//! - `..k` with `k` empty (`Excluded("")`) holds no key at all, so it is empty rather than
//!   unbounded (client-go cannot express the difference: for it an empty end is +∞).

use std::ops::{
    Bound, Range, RangeBounds, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive,
};

use tikv_layers::{ErrorDetail, Result};

/// A range of raw keys with explicit bounds: the argument of
/// [`Client::scan`](super::Client::scan), [`reverse_scan`](super::Client::reverse_scan),
/// [`delete_range`](super::Client::delete_range) and [`checksum`](super::Client::checksum).
///
/// Build it from Rust range syntax over keys (`Vec<u8>`, `&[u8]`, `&str`, `String`, byte
/// arrays):
///
/// ```
/// use std::ops::Bound;
/// use tikv::raw::BoundRange;
///
/// let a: BoundRange = ("a".."z").into();
/// let b: BoundRange = (b"k1".to_vec()..=b"k9".to_vec()).into();
/// let c: BoundRange = (..).into();
/// let d: BoundRange = (Bound::Excluded("k"), Bound::Unbounded).into();
/// assert_eq!(c, BoundRange::full());
/// # let _ = (a, b, d);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundRange {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
}

impl BoundRange {
    /// A range from two bounds.
    pub fn new(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> BoundRange {
        BoundRange { start, end }
    }

    /// Every key.
    pub fn full() -> BoundRange {
        BoundRange::new(Bound::Unbounded, Bound::Unbounded)
    }

    /// client-go's form: `[start, end)` where an empty `end` means unbounded (the
    /// argument pair of client-go's `Scan`, `DeleteRange` and `Checksum`).
    pub fn from_keys(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> BoundRange {
        let end = end.into();
        let end = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        BoundRange::new(Bound::Included(start.into()), end)
    }

    /// The lower bound.
    pub fn start(&self) -> Bound<&[u8]> {
        as_slice(&self.start)
    }

    /// The upper bound.
    pub fn end(&self) -> Bound<&[u8]> {
        as_slice(&self.end)
    }

    /// Whether the upper bound is [`Bound::Unbounded`].
    pub fn is_unbounded_above(&self) -> bool {
        matches!(self.end, Bound::Unbounded)
    }

    /// The range as TiKV's `[start, end)` pair (empty `end` = +∞), or `None` when it holds
    /// no key.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] for an inverted range (see the module docs).
    pub(crate) fn half_open(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if let (Some(lo), Some(hi)) = (bound_key(&self.start), bound_key(&self.end))
            && lo > hi
        {
            return Err(ErrorDetail::InvalidArgument(format!(
                "inverted key range: lower bound {lo:?} is above upper bound {hi:?}"
            ))
            .into());
        }
        let start = match &self.start {
            Bound::Included(k) => k.clone(),
            Bound::Excluded(k) => next_key(k),
            Bound::Unbounded => Vec::new(),
        };
        let end = match &self.end {
            Bound::Included(k) => next_key(k),
            // Nothing sorts below the empty key.
            Bound::Excluded(k) if k.is_empty() => return Ok(None),
            Bound::Excluded(k) => k.clone(),
            Bound::Unbounded => Vec::new(),
        };
        if !end.is_empty() && start >= end {
            return Ok(None);
        }
        Ok(Some((start, end)))
    }
}

impl Default for BoundRange {
    fn default() -> Self {
        BoundRange::full()
    }
}

impl RangeBounds<Vec<u8>> for BoundRange {
    fn start_bound(&self) -> Bound<&Vec<u8>> {
        self.start.as_ref()
    }

    fn end_bound(&self) -> Bound<&Vec<u8>> {
        self.end.as_ref()
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn bound_key(b: &Bound<Vec<u8>>) -> Option<&[u8]> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

/// The smallest key above `k`.
fn next_key(k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.extend_from_slice(k);
    v.push(0);
    v
}

fn map_bound<T: Into<Vec<u8>>>(b: Bound<T>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.into()),
        Bound::Excluded(k) => Bound::Excluded(k.into()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<T: Into<Vec<u8>>> From<Range<T>> for BoundRange {
    fn from(r: Range<T>) -> Self {
        BoundRange::new(
            Bound::Included(r.start.into()),
            Bound::Excluded(r.end.into()),
        )
    }
}

impl<T: Into<Vec<u8>>> From<RangeInclusive<T>> for BoundRange {
    fn from(r: RangeInclusive<T>) -> Self {
        let (s, e) = r.into_inner();
        BoundRange::new(Bound::Included(s.into()), Bound::Included(e.into()))
    }
}

impl<T: Into<Vec<u8>>> From<RangeFrom<T>> for BoundRange {
    fn from(r: RangeFrom<T>) -> Self {
        BoundRange::new(Bound::Included(r.start.into()), Bound::Unbounded)
    }
}

impl<T: Into<Vec<u8>>> From<RangeTo<T>> for BoundRange {
    fn from(r: RangeTo<T>) -> Self {
        BoundRange::new(Bound::Unbounded, Bound::Excluded(r.end.into()))
    }
}

impl<T: Into<Vec<u8>>> From<RangeToInclusive<T>> for BoundRange {
    fn from(r: RangeToInclusive<T>) -> Self {
        BoundRange::new(Bound::Unbounded, Bound::Included(r.end.into()))
    }
}

impl From<RangeFull> for BoundRange {
    fn from(_: RangeFull) -> Self {
        BoundRange::full()
    }
}

impl<T: Into<Vec<u8>>> From<(Bound<T>, Bound<T>)> for BoundRange {
    fn from((s, e): (Bound<T>, Bound<T>)) -> Self {
        BoundRange::new(map_bound(s), map_bound(e))
    }
}
