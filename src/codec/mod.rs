//! Key encodings shared by the transaction layer.
//!
//! Mirrors client-go's `util/codec` (memcomparable bytes, implemented in
//! `tikv_layers::api_codec::memcomparable`, and number encodings) and the key helpers of
//! `kv/key.go` (`NextKey`, `PrefixNextKey`, `CmpKey`, `KeyRange`).
//!
//! Every encoder appends to a caller-supplied buffer (like the Go functions' `b []byte` argument)
//! and every decoder returns the remaining input together with the decoded value, so several
//! encoded fields can be read back one after another.

mod key;
mod number;

pub use self::key::{KeyRange, cmp_key, next_key, prefix_next_key};
pub use self::number::{
    decode_cmp_uint_to_int, decode_comparable_uvarint, decode_comparable_varint, decode_int,
    decode_int_desc, decode_uint, decode_uint_desc, decode_uvarint, decode_varint,
    encode_comparable_uvarint, encode_comparable_varint, encode_int, encode_int_desc,
    encode_int_to_cmp_uint, encode_uint, encode_uint_desc, encode_uvarint, encode_varint,
};
// The memcomparable byte encoding lives with the API codec in `tikv-layers`, which needs it
// for region keys; re-exported here so there is one implementation.
pub use tikv_layers::api_codec::memcomparable::{
    DecodeError, decode_bytes, encode_bytes, encode_bytes_to_vec, encoded_bytes_len,
};
