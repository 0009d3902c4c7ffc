//! Number encodings (client-go: `util/codec/number.go`).
//!
//! Fixed-width encodings are big-endian so that byte order equals numeric order; signed values
//! flip the sign bit first (`encode_int_to_cmp_uint`). The `_desc` variants invert every bit so
//! byte order is the reverse of numeric order. The plain varints are Go's `binary.PutVarint` /
//! `PutUvarint` formats (LEB128, zig-zag for signed) and are *not* memcomparable; the
//! "comparable" varints use a length tag byte and are.

use super::DecodeError;

const SIGN_MASK: u64 = 0x8000_0000_0000_0000;
/// Negative comparable varints start with tag `NEGATIVE_TAG_END - length`.
const NEGATIVE_TAG_END: u8 = 8;
/// Positive comparable varints that need extra bytes start with tag `POSITIVE_TAG_START + length`.
const POSITIVE_TAG_START: u8 = 0xFF - 8;

/// Maps an `i64` to a `u64` with the same order by flipping the sign bit
/// (client-go: `codec.EncodeIntToCmpUint`).
pub const fn encode_int_to_cmp_uint(v: i64) -> u64 {
    (v as u64) ^ SIGN_MASK
}

/// Inverse of [`encode_int_to_cmp_uint`] (client-go: `codec.DecodeCmpUintToInt`).
pub const fn decode_cmp_uint_to_int(u: u64) -> i64 {
    (u ^ SIGN_MASK) as i64
}

/// Appends the 8-byte order-preserving encoding of `v` (client-go: `codec.EncodeInt`).
pub fn encode_int(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&encode_int_to_cmp_uint(v).to_be_bytes());
}

/// Appends the 8-byte order-reversing encoding of `v` (client-go: `codec.EncodeIntDesc`).
pub fn encode_int_desc(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&(!encode_int_to_cmp_uint(v)).to_be_bytes());
}

/// Appends `v` as 8 big-endian bytes (client-go: `codec.EncodeUint`).
pub fn encode_uint(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends `!v` as 8 big-endian bytes, reversing the order (client-go: `codec.EncodeUintDesc`).
pub fn encode_uint_desc(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&(!v).to_be_bytes());
}

fn take8(input: &[u8]) -> Result<(&[u8], u64), DecodeError> {
    match input.split_first_chunk::<8>() {
        Some((head, rest)) => Ok((rest, u64::from_be_bytes(*head))),
        None => Err(DecodeError::Insufficient),
    }
}

/// Decodes an [`encode_int`] value; returns the rest of the input and the value
/// (client-go: `codec.DecodeInt`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] if fewer than 8 bytes remain.
pub fn decode_int(input: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let (rest, u) = take8(input)?;
    Ok((rest, decode_cmp_uint_to_int(u)))
}

/// Decodes an [`encode_int_desc`] value (client-go: `codec.DecodeIntDesc`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] if fewer than 8 bytes remain.
pub fn decode_int_desc(input: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let (rest, u) = take8(input)?;
    Ok((rest, decode_cmp_uint_to_int(!u)))
}

/// Decodes an [`encode_uint`] value (client-go: `codec.DecodeUint`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] if fewer than 8 bytes remain.
pub fn decode_uint(input: &[u8]) -> Result<(&[u8], u64), DecodeError> {
    take8(input)
}

/// Decodes an [`encode_uint_desc`] value (client-go: `codec.DecodeUintDesc`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] if fewer than 8 bytes remain.
pub fn decode_uint_desc(input: &[u8]) -> Result<(&[u8], u64), DecodeError> {
    let (rest, u) = take8(input)?;
    Ok((rest, !u))
}

/// Appends `v` as an unsigned LEB128 varint (client-go: `codec.EncodeUvarint`).
pub fn encode_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` as a zig-zag LEB128 varint (client-go: `codec.EncodeVarint`).
pub fn encode_varint(buf: &mut Vec<u8>, v: i64) {
    let zz = ((v as u64) << 1) ^ ((v >> 63) as u64);
    encode_uvarint(buf, zz);
}

/// Decodes an [`encode_uvarint`] value (client-go: `codec.DecodeUvarint`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] if the input ends mid-varint, [`DecodeError::Overflow`] if the
/// value needs more than 64 bits (Go's `binary.Uvarint` rules: at most 10 bytes, the 10th ≤ 1).
pub fn decode_uvarint(input: &[u8]) -> Result<(&[u8], u64), DecodeError> {
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for (i, &b) in input.iter().enumerate() {
        if i == 10 {
            return Err(DecodeError::Overflow);
        }
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(DecodeError::Overflow);
            }
            return Ok((&input[i + 1..], x | (u64::from(b) << shift)));
        }
        x |= u64::from(b & 0x7f) << shift;
        shift += 7;
    }
    Err(DecodeError::Insufficient)
}

/// Decodes an [`encode_varint`] value (client-go: `codec.DecodeVarint`).
///
/// # Errors
///
/// As [`decode_uvarint`].
pub fn decode_varint(input: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let (rest, ux) = decode_uvarint(input)?;
    let mut x = (ux >> 1) as i64;
    if ux & 1 != 0 {
        x = !x;
    }
    Ok((rest, x))
}

/// Appends the low `len` bytes of `v`, most significant first.
fn push_be_tail(buf: &mut Vec<u8>, v: u64, len: usize) {
    buf.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

/// Appends a memcomparable variable-length encoding of `v`
/// (client-go: `codec.EncodeComparableVarint`).
///
/// Negative values get tag `8 - n` followed by the low `n` bytes (more bytes = smaller value =
/// smaller tag); non-negative values use [`encode_comparable_uvarint`].
pub fn encode_comparable_varint(buf: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        encode_comparable_uvarint(buf, v as u64);
        return;
    }
    // Smallest n such that v >= -(2^(8n) - 1), capped at 8.
    let mut n = 8;
    for len in 1..8usize {
        let bound = -((1i64 << (8 * len)) - 1);
        if v >= bound {
            n = len;
            break;
        }
    }
    buf.push(NEGATIVE_TAG_END - n as u8);
    push_be_tail(buf, v as u64, n);
}

/// Appends a memcomparable variable-length encoding of `v`
/// (client-go: `codec.EncodeComparableUvarint`).
///
/// Values up to 239 take one byte (`v + 8`); larger values get tag `0xF7 + n` followed by `n`
/// big-endian bytes.
pub fn encode_comparable_uvarint(buf: &mut Vec<u8>, v: u64) {
    if v <= u64::from(POSITIVE_TAG_START - NEGATIVE_TAG_END) {
        buf.push(v as u8 + NEGATIVE_TAG_END);
        return;
    }
    let n = (8 - (v.leading_zeros() / 8) as usize).max(1);
    buf.push(POSITIVE_TAG_START + n as u8);
    push_be_tail(buf, v, n);
}

/// Decodes an [`encode_comparable_uvarint`] value
/// (client-go: `codec.DecodeComparableUvarint`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] on short input, [`DecodeError::Invalid`] on a negative tag.
pub fn decode_comparable_uvarint(input: &[u8]) -> Result<(&[u8], u64), DecodeError> {
    let (&first, rest) = input.split_first().ok_or(DecodeError::Insufficient)?;
    if first < NEGATIVE_TAG_END {
        return Err(DecodeError::Invalid);
    }
    if first <= POSITIVE_TAG_START {
        return Ok((rest, u64::from(first - NEGATIVE_TAG_END)));
    }
    let len = usize::from(first - POSITIVE_TAG_START);
    if rest.len() < len {
        return Err(DecodeError::Insufficient);
    }
    let v = rest[..len]
        .iter()
        .fold(0u64, |acc, &c| (acc << 8) | u64::from(c));
    Ok((&rest[len..], v))
}

/// Decodes an [`encode_comparable_varint`] value (client-go: `codec.DecodeComparableVarint`).
///
/// # Errors
///
/// [`DecodeError::Insufficient`] on short input, [`DecodeError::Invalid`] when the value does
/// not match its tag's sign.
pub fn decode_comparable_varint(input: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let (&first, rest) = input.split_first().ok_or(DecodeError::Insufficient)?;
    if (NEGATIVE_TAG_END..=POSITIVE_TAG_START).contains(&first) {
        return Ok((rest, i64::from(first) - i64::from(NEGATIVE_TAG_END)));
    }
    let (len, mut v) = if first < NEGATIVE_TAG_END {
        // Negative values have all high bits set.
        (usize::from(NEGATIVE_TAG_END - first), u64::MAX)
    } else {
        (usize::from(first - POSITIVE_TAG_START), 0u64)
    };
    if rest.len() < len {
        return Err(DecodeError::Insufficient);
    }
    for &c in &rest[..len] {
        v = (v << 8) | u64::from(c);
    }
    if first > POSITIVE_TAG_START && v > i64::MAX as u64 {
        return Err(DecodeError::Invalid);
    }
    if first < NEGATIVE_TAG_END && v <= i64::MAX as u64 {
        return Err(DecodeError::Invalid);
    }
    Ok((&rest[len..], v as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e<T>(f: fn(&mut Vec<u8>, T), v: T) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b, v);
        b
    }

    #[test]
    fn comparable_varint_boundaries() {
        for v in [
            0i64,
            1,
            239,
            240,
            255,
            256,
            -1,
            -255,
            -256,
            -65535,
            -65536,
            i64::MIN,
            i64::MAX,
        ] {
            let b = e(encode_comparable_varint, v);
            let (rest, d) = decode_comparable_varint(&b).unwrap();
            assert!(rest.is_empty(), "{v}");
            assert_eq!(d, v);
        }
        assert_eq!(e(encode_comparable_uvarint, 239), vec![247]);
        assert_eq!(e(encode_comparable_uvarint, 240), vec![248, 240]);
        assert_eq!(e(encode_comparable_varint, -1), vec![7, 0xff]);
        assert_eq!(e(encode_comparable_varint, -256), vec![6, 0xff, 0x00]);
        assert_eq!(decode_comparable_uvarint(&[7]), Err(DecodeError::Invalid));
        assert_eq!(
            decode_comparable_uvarint(&[250, 1]),
            Err(DecodeError::Insufficient)
        );
    }

    #[test]
    fn varint_matches_go_format() {
        // Go: binary.PutVarint(-1) = [0x01], PutVarint(1) = [0x02], PutUvarint(300) = [0xac, 0x02].
        assert_eq!(e(encode_varint, -1), vec![0x01]);
        assert_eq!(e(encode_varint, 1), vec![0x02]);
        assert_eq!(e(encode_uvarint, 300), vec![0xac, 0x02]);
        assert_eq!(decode_uvarint(&[0x80]), Err(DecodeError::Insufficient));
        assert_eq!(decode_uvarint(&[0xff; 11]), Err(DecodeError::Overflow));
        assert_eq!(decode_int(&[1, 2]), Err(DecodeError::Insufficient));
    }

    proptest! {
        #[test]
        fn fixed_round_trip_and_order(a in any::<i64>(), b in any::<i64>(), ua in any::<u64>(), ub in any::<u64>()) {
            prop_assert_eq!(decode_int(&e(encode_int, a)).unwrap().1, a);
            prop_assert_eq!(decode_int_desc(&e(encode_int_desc, a)).unwrap().1, a);
            prop_assert_eq!(decode_uint(&e(encode_uint, ua)).unwrap().1, ua);
            prop_assert_eq!(decode_uint_desc(&e(encode_uint_desc, ua)).unwrap().1, ua);
            prop_assert_eq!(a.cmp(&b), e(encode_int, a).cmp(&e(encode_int, b)));
            prop_assert_eq!(b.cmp(&a), e(encode_int_desc, a).cmp(&e(encode_int_desc, b)));
            prop_assert_eq!(ua.cmp(&ub), e(encode_uint, ua).cmp(&e(encode_uint, ub)));
            prop_assert_eq!(ub.cmp(&ua), e(encode_uint_desc, ua).cmp(&e(encode_uint_desc, ub)));
            prop_assert_eq!(decode_cmp_uint_to_int(encode_int_to_cmp_uint(a)), a);
        }

        #[test]
        fn varint_round_trip(a in any::<i64>(), ua in any::<u64>()) {
            let ea = e(encode_varint, a);
            let (rest, v) = decode_varint(&ea).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(v, a);
            let eua = e(encode_uvarint, ua);
            let (rest, v) = decode_uvarint(&eua).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(v, ua);
        }

        #[test]
        fn comparable_varint_round_trip_and_order(a in any::<i64>(), b in any::<i64>(), ua in any::<u64>(), ub in any::<u64>()) {
            let (ea, eb) = (e(encode_comparable_varint, a), e(encode_comparable_varint, b));
            prop_assert_eq!(decode_comparable_varint(&ea).unwrap(), (&[][..], a));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let (eua, eub) = (e(encode_comparable_uvarint, ua), e(encode_comparable_uvarint, ub));
            prop_assert_eq!(decode_comparable_uvarint(&eua).unwrap(), (&[][..], ua));
            prop_assert_eq!(ua.cmp(&ub), eua.cmp(&eub));
        }
    }
}
