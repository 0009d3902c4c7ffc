//! Memcomparable byte-string encoding (client-go: `util/codec/bytes.go`), the one
//! implementation in the workspace; `tikv::codec` re-exports it.
//!
//! Region boundaries of API V1 transactional keys and of every API V2 key are stored by
//! TiKV and PD in this form, so the API codec uses it to translate region keys
//! (KS-12, KS-19).
//!
//! The input is cut into groups of 8 bytes; the last group is padded with `0x00`. Every
//! group is followed by a marker byte `0xFF - pad_count`, so encoded strings compare
//! (byte-wise) exactly as the original strings do, and the encoding of one string is never
//! a prefix of another's. Examples: `[] -> [0;8] ++ [247]`,
//! `[1,2,3] -> [1,2,3,0,0,0,0,0,250]`, `[1..=8] -> [1..=8, 255, 0,0,0,0,0,0,0,0, 247]`.

const GROUP_SIZE: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0x00;

/// Why a decoder rejected its input.
///
/// Shared by the memcomparable decoder here and the number decoders of `tikv::codec`, so
/// the whole client has one decode error type. The messages follow client-go's
/// `util/codec` errors so logs read the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("insufficient bytes to decode value")]
    Insufficient,
    /// A memcomparable group's marker byte claims more than 8 padding bytes.
    #[error("invalid marker byte, group bytes {group:?}")]
    InvalidMarker {
        /// The offending 9-byte group (8 data bytes and the marker).
        group: Vec<u8>,
    },
    /// A memcomparable group's padding bytes are not all the pad value.
    #[error("invalid padding byte, group bytes {group:?}")]
    InvalidPadding {
        /// The offending 9-byte group (8 data bytes and the marker).
        group: Vec<u8>,
    },
    /// A varint does not fit in 64 bits.
    #[error("value larger than 64 bits")]
    Overflow,
    /// A comparable varint has a tag or value that no encoder produces.
    #[error("invalid bytes to decode value")]
    Invalid,
}

/// The length of [`encode_bytes`] output for a `len`-byte input: one 9-byte group per
/// started 8 bytes, plus one more group when `len` is a multiple of 8 (the all-padding
/// terminator).
pub const fn encoded_bytes_len(len: usize) -> usize {
    (len / GROUP_SIZE + 1) * (GROUP_SIZE + 1)
}

/// Appends the memcomparable encoding of `data` to `buf` (client-go: `codec.EncodeBytes`).
pub fn encode_bytes(buf: &mut Vec<u8>, data: &[u8]) {
    buf.reserve(encoded_bytes_len(data.len()));
    let mut chunks = data.chunks_exact(GROUP_SIZE);
    for group in chunks.by_ref() {
        buf.extend_from_slice(group);
        buf.push(MARKER);
    }
    let tail = chunks.remainder();
    let pad = GROUP_SIZE - tail.len();
    buf.extend_from_slice(tail);
    buf.extend(std::iter::repeat_n(PAD, pad));
    // `pad` is in 1..=8, so the cast cannot truncate.
    buf.push(MARKER - pad as u8);
}

/// The memcomparable encoding of `data` in a new buffer of exactly the right size.
pub fn encode_bytes_to_vec(data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_bytes_len(data.len()));
    encode_bytes(&mut buf, data);
    buf
}

/// Decodes one memcomparable byte string from the front of `input` (client-go:
/// `codec.DecodeBytes`).
///
/// Returns the rest of the input and the decoded bytes.
///
/// # Errors
///
/// [`DecodeError::Insufficient`] when a group is cut short, [`DecodeError::InvalidMarker`]
/// or [`DecodeError::InvalidPadding`] when a group is malformed.
pub fn decode_bytes(mut input: &[u8]) -> Result<(&[u8], Vec<u8>), DecodeError> {
    // Every 9 input bytes carry at most 8 output bytes.
    let mut out = Vec::with_capacity(input.len() / (GROUP_SIZE + 1) * GROUP_SIZE);
    loop {
        let Some((group, rest)) = input.split_first_chunk::<{ GROUP_SIZE + 1 }>() else {
            return Err(DecodeError::Insufficient);
        };
        let marker = group[GROUP_SIZE];
        let pad_count = usize::from(MARKER - marker);
        if pad_count > GROUP_SIZE {
            return Err(DecodeError::InvalidMarker {
                group: group.to_vec(),
            });
        }
        let real = GROUP_SIZE - pad_count;
        out.extend_from_slice(&group[..real]);
        input = rest;
        if pad_count != 0 {
            if group[real..GROUP_SIZE].iter().any(|&b| b != PAD) {
                return Err(DecodeError::InvalidPadding {
                    group: group.to_vec(),
                });
            }
            return Ok((input, out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_examples() {
        assert_eq!(encode_bytes_to_vec(&[]), vec![0, 0, 0, 0, 0, 0, 0, 0, 247]);
        assert_eq!(
            encode_bytes_to_vec(&[1, 2, 3]),
            vec![1, 2, 3, 0, 0, 0, 0, 0, 250]
        );
        assert_eq!(
            encode_bytes_to_vec(&[1, 2, 3, 0]),
            vec![1, 2, 3, 0, 0, 0, 0, 0, 251]
        );
        assert_eq!(
            encode_bytes_to_vec(&[1, 2, 3, 4, 5, 6, 7, 8]),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 255, 0, 0, 0, 0, 0, 0, 0, 0, 247]
        );
    }

    #[test]
    fn encode_appends_to_existing_buffer() {
        let mut buf = b"head".to_vec();
        encode_bytes(&mut buf, b"ab");
        assert_eq!(buf, b"headab\0\0\0\0\0\0\xf9".to_vec());
    }

    #[test]
    fn decode_rejects_malformed_input() {
        assert_eq!(decode_bytes(&[1, 2, 3]), Err(DecodeError::Insufficient));
        assert_eq!(decode_bytes(&[]), Err(DecodeError::Insufficient));
        // Marker claims 9 padding bytes.
        assert!(matches!(
            decode_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 246]),
            Err(DecodeError::InvalidMarker { .. })
        ));
        // Padding byte is not zero.
        assert!(matches!(
            decode_bytes(&[1, 2, 3, 0, 0, 0, 0, 9, 250]),
            Err(DecodeError::InvalidPadding { .. })
        ));
        // A full group must be followed by another group.
        assert_eq!(
            decode_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 255]),
            Err(DecodeError::Insufficient)
        );
    }

    #[test]
    fn decode_returns_rest() {
        let mut b = encode_bytes_to_vec(b"abc");
        b.extend_from_slice(b"tail");
        let (rest, v) = decode_bytes(&b).unwrap();
        assert_eq!(v, b"abc");
        assert_eq!(rest, b"tail");
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let e = encode_bytes_to_vec(&data);
            prop_assert_eq!(e.len(), encoded_bytes_len(data.len()));
            let (rest, d) = decode_bytes(&e).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(d, data);
        }

        #[test]
        fn preserves_order(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            b in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            prop_assert_eq!(a.cmp(&b), encode_bytes_to_vec(&a).cmp(&encode_bytes_to_vec(&b)));
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_bytes(&data);
        }
    }
}
