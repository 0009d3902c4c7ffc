//! [`Codec`]: the API version dispatch (client-go's `apicodec.Codec` interface).

use futures::StreamExt;
use tikv_proto::keyspacepb;
use tikv_proto::kvrpcpb::{self, compact_request, context};
use tikv_proto::mpp::task_meta;

use super::{CodecV1, CodecV2, Mode, NULLSPACE_ID};
use crate::error::Error;
use crate::request::{Command, CommandResponse, ResponseStream, RpcRequest, RpcResponse};

/// The key codec of one client: API V1, or API V2 for one keyspace (client-go's
/// `apicodec.Codec`, `NewCodecV1`, `NewCodecV2`; KS-4 .. KS-21).
///
/// It translates between user keys and the keys TiKV and PD store, in both directions,
/// for requests ([`encode_request`](Self::encode_request)), responses
/// ([`decode_response`](Self::decode_response)), plain keys and ranges, and region keys.
/// Cheap to clone (V1 is two bytes, V2 shares its keyspace meta).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Codec {
    /// API V1: keys unchanged.
    V1(CodecV1),
    /// API V2: keys behind the keyspace prefix.
    V2(CodecV2),
}

impl Codec {
    /// The API V1 codec for `mode`.
    pub fn v1(mode: Mode) -> Codec {
        Codec::V1(CodecV1::new(mode))
    }

    /// The API V2 codec of the keyspace `meta` describes; see [`CodecV2::new`].
    ///
    /// # Errors
    ///
    /// As [`CodecV2::new`]: missing meta, API V3 identity, id beyond 24 bits.
    pub fn v2(mode: Mode, meta: Option<keyspacepb::KeyspaceMeta>) -> Result<Codec, Error> {
        CodecV2::new(mode, meta).map(Codec::V2)
    }

    /// The API V2 codec of keyspace `id`; see [`CodecV2::with_keyspace_id`].
    ///
    /// # Errors
    ///
    /// When `id` does not fit in 24 bits.
    pub fn v2_with_id(mode: Mode, id: u32) -> Result<Codec, Error> {
        CodecV2::with_keyspace_id(mode, id).map(Codec::V2)
    }

    /// The mode the codec serves.
    pub fn mode(&self) -> Mode {
        match self {
            Codec::V1(c) => c.mode(),
            Codec::V2(c) => c.mode(),
        }
    }

    /// The API version requests are stamped with (`GetAPIVersion`).
    pub fn api_version(&self) -> kvrpcpb::ApiVersion {
        match self {
            Codec::V1(_) => kvrpcpb::ApiVersion::V1,
            Codec::V2(_) => kvrpcpb::ApiVersion::V2,
        }
    }

    /// The keyspace prefix keys get; empty under V1 (`GetKeyspace`).
    pub fn keyspace(&self) -> &[u8] {
        match self {
            Codec::V1(_) => &[],
            Codec::V2(c) => c.keyspace_prefix().prefix(),
        }
    }

    /// The keyspace id; [`NULLSPACE_ID`] under V1 (`GetKeyspaceID`).
    pub fn keyspace_id(&self) -> u32 {
        match self {
            Codec::V1(_) => NULLSPACE_ID,
            Codec::V2(c) => c.keyspace_id(),
        }
    }

    /// The keyspace meta; `None` under V1 (`GetKeyspaceMeta`).
    pub fn keyspace_meta(&self) -> Option<&keyspacepb::KeyspaceMeta> {
        match self {
            Codec::V1(_) => None,
            Codec::V2(c) => Some(c.keyspace_meta()),
        }
    }

    /// Encodes one attempt's request in place (client-go's `EncodeRequest`, TP-19):
    /// stamps `api_version`, the keyspace id and name on the context and, for MPP tasks
    /// and compaction, on the body (KS-4); under V2 prefixes every key-bearing field of the
    /// command (KS-14).
    ///
    /// The request must be the attempt's own copy: the retry loop keeps the user-key
    /// original for the next attempt (KS-11, SL-6). The context reaches the inner message
    /// when the transport calls [`RpcRequest::attach_context`].
    ///
    /// # Errors
    ///
    /// None today: every command is handled explicitly (a command added to [`Command`]
    /// fails to compile until the codec decides how to encode it). The `Result` keeps the
    /// contract of client-go's interface.
    pub fn encode_request(&self, req: &mut RpcRequest) -> Result<(), Error> {
        match self {
            Codec::V1(c) => c.encode_request(req),
            Codec::V2(c) => c.encode_request(req),
        }
        Ok(())
    }

    /// Decodes every key-bearing field of a response back to user keys (client-go's
    /// `DecodeResponse`, KS-12, KS-16). Coprocessor streams are decoded item by item as
    /// they are read.
    ///
    /// # Errors
    ///
    /// A key outside the keyspace ([`crate::ErrorDetail::InvalidArgument`]) or a malformed
    /// region key ([`super::is_decode_error`]): the attempt fails with that error.
    pub fn decode_response(&self, mut resp: RpcResponse) -> Result<RpcResponse, Error> {
        resp.resp = self.decode_command_response(resp.resp)?;
        Ok(resp)
    }

    /// [`decode_response`](Self::decode_response) for a bare [`CommandResponse`].
    ///
    /// # Errors
    ///
    /// As [`decode_response`](Self::decode_response).
    pub fn decode_command_response(&self, resp: CommandResponse) -> Result<CommandResponse, Error> {
        match resp {
            CommandResponse::CopStream(stream) if self.decodes_responses() => {
                let codec = self.clone();
                let decoded = stream.into_inner().map(move |item| {
                    let mut r = item?;
                    match &codec {
                        Codec::V1(c) => c.decode_cop_item(&mut r)?,
                        Codec::V2(c) => c.keyspace_prefix().decode_cop(&mut r)?,
                    }
                    Ok(r)
                });
                Ok(CommandResponse::CopStream(ResponseStream::new(decoded)))
            }
            mut other => {
                match self {
                    Codec::V1(c) => c.decode_response(&mut other)?,
                    Codec::V2(c) => c.keyspace_prefix().decode_response(&mut other)?,
                }
                Ok(other)
            }
        }
    }

    /// Whether responses can need any decoding (not for V1 raw, whose region keys are
    /// plain).
    pub(crate) fn decodes_responses(&self) -> bool {
        match self {
            Codec::V1(c) => c.decodes_anything(),
            Codec::V2(_) => true,
        }
    }

    // ===== keys and ranges =====

    /// The encoded form of a user key (`EncodeKey`): unchanged under V1, prefixed under V2.
    pub fn encode_key(&self, key: &[u8]) -> Vec<u8> {
        match self {
            Codec::V1(_) => key.to_vec(),
            Codec::V2(c) => c.keyspace_prefix().encode_key(key),
        }
    }

    /// The user key of an encoded key (`DecodeKey`).
    ///
    /// # Errors
    ///
    /// Under V2, a non-empty key outside the keyspace.
    pub fn decode_key<'a>(&self, key: &'a [u8]) -> Result<&'a [u8], Error> {
        match self {
            Codec::V1(_) => Ok(key),
            Codec::V2(c) => c.keyspace_prefix().decode_key(key),
        }
    }

    /// The encoded bounds of a user-key range (`EncodeRange`); under V2 an empty end is the
    /// keyspace end.
    pub fn encode_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self {
            Codec::V1(_) => (start.to_vec(), end.to_vec()),
            Codec::V2(c) => c.keyspace_prefix().encode_range(start, end),
        }
    }

    /// The user-key bounds of an encoded range (`DecodeRange`), clipped to the keyspace
    /// under V2.
    ///
    /// # Errors
    ///
    /// Under V2, a range entirely outside the keyspace.
    pub fn decode_range<'a>(
        &self,
        start: &'a [u8],
        end: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8]), Error> {
        match self {
            Codec::V1(_) => Ok((start, end)),
            Codec::V2(c) => c.keyspace_prefix().decode_range(start, end),
        }
    }

    // ===== region keys =====

    /// The region key of a user key, as PD and TiKV bound regions (`EncodeRegionKey`).
    pub fn encode_region_key(&self, key: &[u8]) -> Vec<u8> {
        match self {
            Codec::V1(c) => c.encode_region_key(key),
            Codec::V2(c) => c.keyspace_prefix().encode_region_key(key),
        }
    }

    /// The user key of a region key (`DecodeRegionKey`).
    ///
    /// # Errors
    ///
    /// A malformed memcomparable key ([`super::is_decode_error`]), or under V2 a key
    /// outside the keyspace.
    pub fn decode_region_key(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Codec::V1(c) => c.decode_region_key(key),
            Codec::V2(c) => c.keyspace_prefix().decode_region_key(key),
        }
    }

    /// The region keys of a user-key range (`EncodeRegionRange`).
    pub fn encode_region_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self {
            Codec::V1(c) => c.encode_region_range(start, end),
            Codec::V2(c) => c.keyspace_prefix().encode_region_range(start, end),
        }
    }

    /// The user-key range of a region (`DecodeRegionRange`), clipped to the keyspace
    /// under V2.
    ///
    /// # Errors
    ///
    /// A malformed memcomparable key, or under V2 a region entirely outside the keyspace.
    pub fn decode_region_range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        match self {
            Codec::V1(c) => c.decode_region_range(start, end),
            Codec::V2(c) => c.keyspace_prefix().decode_region_range(start, end),
        }
    }

    /// The user keys of region bucket boundaries (`DecodeBucketKeys`), clipped to the
    /// keyspace under V2.
    ///
    /// # Errors
    ///
    /// A malformed memcomparable key.
    pub fn decode_bucket_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Error> {
        match self {
            Codec::V1(c) => c.decode_bucket_keys(keys),
            Codec::V2(c) => c.keyspace_prefix().decode_bucket_keys(keys),
        }
    }
}

/// Stamps the API version and keyspace on the envelope's context and on the bodies that
/// carry them (client-go's `setAPICtx`, KS-4). Writes fields only; allocates nothing unless
/// a keyspace name must be copied into an empty context.
pub(crate) fn stamp(
    req: &mut RpcRequest,
    version: kvrpcpb::ApiVersion,
    keyspace_id: u32,
    keyspace_name: Option<&str>,
) {
    let ctx = &mut req.context;
    ctx.set_api_version(version);
    ctx.keyspace = Some(context::Keyspace::KeyspaceId(keyspace_id));
    if let Some(name) = keyspace_name
        && ctx.keyspace_name != name
    {
        ctx.keyspace_name.clear();
        ctx.keyspace_name.push_str(name);
    }
    match &mut req.cmd {
        Command::MppTask(r) => {
            let meta = r.meta.get_or_insert_with(Default::default);
            meta.keyspace = Some(task_meta::Keyspace::KeyspaceId(keyspace_id));
            meta.set_api_version(version);
        }
        Command::Compact(r) => {
            r.keyspace = Some(compact_request::Keyspace::KeyspaceId(keyspace_id));
            r.set_api_version(version);
        }
        _ => {}
    }
}
