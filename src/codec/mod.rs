//! Key encodings shared by the transaction layer.
//!
//! Mirrors client-go's `util/codec` (memcomparable bytes and number encodings) and the key helpers
//! of `kv/key.go` (`NextKey`, `PrefixNextKey`, `CmpKey`, `KeyRange`).
//!
//! Every encoder appends to a caller-supplied buffer (like the Go functions' `b []byte` argument)
//! and every decoder returns the remaining input together with the decoded value, so several
//! encoded fields can be read back one after another.

mod bytes;
mod key;
mod number;

pub use self::bytes::{decode_bytes, encode_bytes, encoded_bytes_len};
pub use self::key::{KeyRange, cmp_key, next_key, prefix_next_key};
pub use self::number::{
    decode_cmp_uint_to_int, decode_comparable_uvarint, decode_comparable_varint, decode_int,
    decode_int_desc, decode_uint, decode_uint_desc, decode_uvarint, decode_varint,
    encode_comparable_uvarint, encode_comparable_varint, encode_int, encode_int_desc,
    encode_int_to_cmp_uint, encode_uint, encode_uint_desc, encode_uvarint, encode_varint,
};

/// Why a decoder rejected its input.
///
/// The messages follow client-go's `util/codec` errors so logs read the same.
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
