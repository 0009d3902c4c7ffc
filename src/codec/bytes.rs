//! Memcomparable byte-string encoding (client-go: `util/codec/bytes.go`).
//!
//! The input is cut into groups of 8 bytes; the last group is padded with `0x00`. Every group is
//! followed by a marker byte `0xFF - pad_count`, so an encoded string compares (byte-wise) exactly
//! as the original strings do, and the encoding of one string is never a prefix of another's.
//! Examples: `[] -> [0;8] ++ [247]`, `[1,2,3] -> [1,2,3,0,0,0,0,0,250]`,
//! `[1..=8] -> [1..=8, 255, 0,0,0,0,0,0,0,0, 247]`.

use super::DecodeError;

const GROUP_SIZE: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0x00;

/// The length of `encode_bytes` output for a `len`-byte input: one 9-byte group per started
/// 8 bytes, plus one more group when `len` is a multiple of 8 (the all-padding terminator).
pub const fn encoded_bytes_len(len: usize) -> usize {
    (len / GROUP_SIZE + 1) * (GROUP_SIZE + 1)
}

/// Appends the memcomparable encoding of `data` to `buf` (client-go: `codec.EncodeBytes`).
///
/// Used for region boundaries of API V1 transactional keys, where PD stores encoded keys.
pub fn encode_bytes(buf: &mut Vec<u8>, data: &[u8]) {
    buf.reserve(encoded_bytes_len(data.len()));
    let mut idx = 0;
    loop {
        let remain = data.len() - idx;
        if remain >= GROUP_SIZE {
            buf.extend_from_slice(&data[idx..idx + GROUP_SIZE]);
            buf.push(MARKER);
            idx += GROUP_SIZE;
        } else {
            let pad = GROUP_SIZE - remain;
            buf.extend_from_slice(&data[idx..]);
            buf.extend(std::iter::repeat_n(PAD, pad));
            // `pad` is at most 8, so the cast cannot truncate.
            buf.push(MARKER - pad as u8);
            return;
        }
    }
}

/// Decodes one memcomparable byte string from the front of `input` (client-go:
/// `codec.DecodeBytes`).
///
/// Returns the rest of the input and the decoded bytes.
///
/// # Errors
///
/// [`DecodeError::Insufficient`] when a group is cut short, [`DecodeError::InvalidMarker`] or
/// [`DecodeError::InvalidPadding`] when a group is malformed.
pub fn decode_bytes(mut input: &[u8]) -> Result<(&[u8], Vec<u8>), DecodeError> {
    let mut out = Vec::with_capacity(input.len());
    loop {
        if input.len() < GROUP_SIZE + 1 {
            return Err(DecodeError::Insufficient);
        }
        let (group_bytes, rest) = input.split_at(GROUP_SIZE + 1);
        let marker = group_bytes[GROUP_SIZE];
        let pad_count = usize::from(MARKER - marker);
        if pad_count > GROUP_SIZE {
            return Err(DecodeError::InvalidMarker {
                group: group_bytes.to_vec(),
            });
        }
        let real = GROUP_SIZE - pad_count;
        out.extend_from_slice(&group_bytes[..real]);
        input = rest;
        if pad_count != 0 {
            if group_bytes[real..GROUP_SIZE].iter().any(|&b| b != PAD) {
                return Err(DecodeError::InvalidPadding {
                    group: group_bytes.to_vec(),
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

    fn enc(data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        encode_bytes(&mut b, data);
        b
    }

    #[test]
    fn documented_examples() {
        assert_eq!(enc(&[]), vec![0, 0, 0, 0, 0, 0, 0, 0, 247]);
        assert_eq!(enc(&[1, 2, 3]), vec![1, 2, 3, 0, 0, 0, 0, 0, 250]);
        assert_eq!(enc(&[1, 2, 3, 0]), vec![1, 2, 3, 0, 0, 0, 0, 0, 251]);
        assert_eq!(
            enc(&[1, 2, 3, 4, 5, 6, 7, 8]),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 255, 0, 0, 0, 0, 0, 0, 0, 0, 247]
        );
    }

    #[test]
    fn decode_rejects_malformed_input() {
        assert_eq!(decode_bytes(&[1, 2, 3]), Err(DecodeError::Insufficient));
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
        let mut b = enc(b"abc");
        b.extend_from_slice(b"tail");
        let (rest, v) = decode_bytes(&b).unwrap();
        assert_eq!(v, b"abc");
        assert_eq!(rest, b"tail");
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let e = enc(&data);
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
            prop_assert_eq!(a.cmp(&b), enc(&a).cmp(&enc(&b)));
        }
    }
}
