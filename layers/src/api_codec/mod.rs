//! The API codec: API V1/V2 keyspace encoding of every request and response (TP-19,
//! KS-1 .. KS-23 of `shared/spec/pd-oracle-rawkv.md`).
//!
//! Everything above this layer (region cache, shard, retry, route, replica, lock resolver)
//! works with **user keys**. TiKV works with the keys of its API version:
//!
//! - **API V1** keeps keys as they are. Only region boundaries differ: transactional
//!   regions are bounded by memcomparable-encoded keys ([`memcomparable`]), raw regions by
//!   plain keys.
//! - **API V2** puts every key of a keyspace behind a 4-byte prefix: the mode byte (`'r'`
//!   raw, `'x'` transactional) and the 3-byte big-endian keyspace id. Region boundaries are
//!   memcomparable encodings of prefixed keys.
//!
//! So the codec is the per-attempt layer right above the transport (order: ... replica,
//! interceptor, timeout, **api_codec**, transport; client-go wraps its RPC client the same
//! way in `internal/client/client.go` `RPCClient.SendRequest`, KS-10). On the way down it
//! stamps the context (`api_version`, `keyspace_id`, `keyspace_name`, KS-4) and, in V2,
//! prefixes every key-bearing field of the command (KS-14). On the way up it decodes every
//! key-bearing field of the response (pairs, locks, key errors, MVCC info, region errors;
//! `EpochNotMatch` regions are clipped to the keyspace, those outside it dropped, KS-15,
//! KS-16), so the layers above see user keys again. A decode failure fails the attempt.
//!
//! The same [`Codec`] also translates region keys exchanged with PD (`EncodeRegionKey`,
//! `DecodeRegionRange`, `DecodeBucketKeys`, KS-18, KS-19); `tikv::pd::CodecPdClient` uses
//! it, so the PD edge and the request edge share one implementation.
//!
//! The attempt request the layer receives is owned (the retry loop keeps its own base
//! request, SL-6 / KS-11), so encoding rewrites it in place: the V1 path neither clones nor
//! allocates, the V2 path allocates only where a key grows by its prefix.
//!
//! Mirrors client-go's `internal/apicodec` (`codec.go`, `codec_v1.go`, `codec_v2.go`,
//! `mem_codec.go`).
//!
//! ```
//! use tikv_layers::api_codec::{ApiCodecLayer, Codec, Mode};
//!
//! # fn demo() -> tikv_layers::Result<()> {
//! let codec = Codec::v2_with_id(Mode::Txn, 42)?;
//! assert_eq!(codec.keyspace(), b"x\x00\x00\x2a");
//! let stack = tower::ServiceBuilder::new().layer(ApiCodecLayer::new(codec));
//! # let _ = stack;
//! # Ok(())
//! # }
//! # demo().unwrap();
//! ```

mod codec;
mod codec_v1;
mod codec_v2;
mod future;
mod layer;
pub mod memcomparable;
mod region_error;
mod service;

pub use codec::Codec;
pub use codec_v1::CodecV1;
pub use codec_v2::{CodecV2, KeyspacePrefix};
pub use future::ResponseFuture;
pub use layer::ApiCodecLayer;
pub use memcomparable::DecodeError;
pub use service::ApiCodec;

use tikv_proto::kvrpcpb;

use crate::error::{Error, ErrorDetail};

/// The mode byte of raw keys under API V2.
pub const RAW_MODE_PREFIX: u8 = b'r';
/// The mode byte of transactional keys under API V2.
pub const TXN_MODE_PREFIX: u8 = b'x';
/// Length of an API V2 keyspace prefix: mode byte plus 3-byte keyspace id.
pub const KEYSPACE_PREFIX_LEN: usize = 4;
/// The largest keyspace id (24 bits).
pub const MAX_KEYSPACE_ID: u32 = 0xFF_FFFF;
/// The keyspace id that means "no keyspace"; API V1 requests carry it (KS-4).
pub const NULLSPACE_ID: u32 = u32::MAX;
/// The id of the default keyspace (KS-9).
pub const DEFAULT_KEYSPACE_ID: u32 = 0;
/// The name of the default keyspace (KS-9).
pub const DEFAULT_KEYSPACE_NAME: &str = "DEFAULT";

/// Whether a codec serves raw or transactional keys (client-go's `apicodec.Mode`).
///
/// Under API V1 the mode picks the region-key encoding (raw: plain, transactional:
/// memcomparable); under API V2 it picks the mode byte of the keyspace prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// RawKV keys.
    Raw,
    /// Transactional keys.
    Txn,
}

impl Mode {
    /// The API V2 mode byte of this mode (`'r'` or `'x'`).
    pub fn prefix_byte(self) -> u8 {
        match self {
            Mode::Raw => RAW_MODE_PREFIX,
            Mode::Txn => TXN_MODE_PREFIX,
        }
    }
}

/// The prefixes API V2 keys start with, sorted (client-go's `CodecV2Prefixes`, KS-8).
pub fn codec_v2_prefixes() -> &'static [&'static [u8]] {
    &[&[RAW_MODE_PREFIX], &[TXN_MODE_PREFIX]]
}

/// The prefixes an API V1 key never starts with in a mixed V1/V2 deployment, sorted
/// (client-go's `CodecV1ExcludePrefixes`, KS-8). Today these are exactly the V2 prefixes;
/// the separate function names the different intent.
pub fn codec_v1_exclude_prefixes() -> &'static [&'static [u8]] {
    codec_v2_prefixes()
}

/// `""` names the default keyspace (client-go's `BuildKeyspaceName`, KS-9).
pub fn build_keyspace_name(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_KEYSPACE_NAME
    } else {
        name
    }
}

/// Reads the keyspace id from an API V2 key (client-go's `ParseKeyspaceID`, KS-6).
///
/// # Errors
///
/// [`ErrorDetail::InvalidArgument`] when the key is shorter than 4 bytes or does not start
/// with a V2 mode byte.
pub fn parse_keyspace_id(key: &[u8]) -> Result<u32, Error> {
    let prefix = check_v2_key(key)?;
    Ok(u32::from_be_bytes([0, prefix[1], prefix[2], prefix[3]]))
}

/// Splits an encoded key into its keyspace prefix and the user key (client-go's
/// `apicodec.DecodeKey`, KS-7): under V1 the prefix is empty and the key is returned as is;
/// under V2 the prefix is the first 4 bytes.
///
/// # Errors
///
/// [`ErrorDetail::InvalidArgument`] for a V2 key without a valid prefix, or for an API
/// version other than V1 and V2.
pub fn decode_key(encoded: &[u8], version: kvrpcpb::ApiVersion) -> Result<(&[u8], &[u8]), Error> {
    match version {
        kvrpcpb::ApiVersion::V1 => Ok((&[], encoded)),
        kvrpcpb::ApiVersion::V2 => {
            check_v2_key(encoded)?;
            Ok(encoded.split_at(KEYSPACE_PREFIX_LEN))
        }
        other => Err(ErrorDetail::InvalidArgument(format!(
            "unsupported api version {}",
            other.as_str_name()
        ))
        .into()),
    }
}

/// Whether `err` comes from a malformed memcomparable region key (client-go's
/// `IsDecodeError`, KS-20): such an error means TiKV or PD sent a broken key, so callers
/// fail at once instead of retrying.
pub fn is_decode_error(err: &Error) -> bool {
    decode_error_cause(err).is_some()
}

/// The memcomparable [`DecodeError`] behind `err`, if it is a decode error
/// ([`is_decode_error`]).
pub fn decode_error_cause(err: &Error) -> Option<&DecodeError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<DecodeError>() {
            return Some(d);
        }
        cur = e.source();
    }
    None
}

/// The first 4 bytes of `key`, when they form a V2 prefix.
fn check_v2_key(key: &[u8]) -> Result<&[u8; KEYSPACE_PREFIX_LEN], Error> {
    match key.first_chunk::<KEYSPACE_PREFIX_LEN>() {
        Some(p) if p[0] == RAW_MODE_PREFIX || p[0] == TXN_MODE_PREFIX => Ok(p),
        // Never print key bytes (privacy); the length is enough to debug.
        _ => Err(
            ErrorDetail::InvalidArgument(format!("invalid API V2 key ({} bytes)", key.len()))
                .into(),
        ),
    }
}

/// Why a key could not be decoded, before it becomes an [`Error`].
#[derive(Debug)]
pub(crate) enum KeyError {
    /// The key lies outside the codec's keyspace (client-go's `errKeyOutOfBound`).
    OutOfBound,
    /// A region key is not valid memcomparable bytes (client-go's `decodeError`).
    Decode(DecodeError),
}

impl From<DecodeError> for KeyError {
    fn from(e: DecodeError) -> Self {
        KeyError::Decode(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::OutOfBound => {
                ErrorDetail::InvalidArgument("given key does not belong to the keyspace".to_owned())
                    .into()
            }
            KeyError::Decode(d) => Error::new(ErrorDetail::Malformed(format!(
                "failed to decode region range key: {d}"
            )))
            .with_source(d),
        }
    }
}

/// Result of the in-place key helpers.
pub(crate) type KeyResult<T = ()> = std::result::Result<T, KeyError>;

/// Memcomparable-decodes a whole region key (client-go's `memComparableCodec.decodeKey`).
/// Trailing bytes after the encoded string are ignored, as in client-go.
pub(crate) fn mc_decode(key: &[u8]) -> KeyResult<Vec<u8>> {
    Ok(memcomparable::decode_bytes(key)?.1)
}

#[cfg(test)]
mod tests;
