//! The API V1 codec (client-go: `internal/apicodec/codec_v1.go`, KS-12).

use tikv_proto::kvrpcpb;

use super::region_error;
use super::{KeyResult, Mode, NULLSPACE_ID, mc_decode, memcomparable};
use crate::error::Error;
use crate::request::{CommandResponse, RpcRequest};

/// The API V1 codec: keys travel unchanged; only region boundaries of transactional data
/// are memcomparable-encoded.
///
/// Requests are stamped with `api_version = V1` and the null keyspace id (KS-4). Responses
/// need work only in transactional mode, and only when they carry a region error whose
/// region boundaries (`KeyNotInRegion`, `EpochNotMatch`, `BucketVersionNotMatch`) come in
/// TiKV's encoded form. Both directions are free of clones and allocations otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecV1 {
    mode: Mode,
}

impl CodecV1 {
    /// The V1 codec for `mode` (client-go's `NewCodecV1`).
    pub fn new(mode: Mode) -> CodecV1 {
        CodecV1 { mode }
    }

    /// The mode the codec serves.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Stamps the context (KS-4); keys stay as they are.
    pub(crate) fn encode_request(&self, req: &mut RpcRequest) {
        super::codec::stamp(req, kvrpcpb::ApiVersion::V1, NULLSPACE_ID, None);
    }

    /// Decodes the region boundaries of the response's region errors in place.
    ///
    /// client-go decodes the region error of every response in place (its per-command
    /// re-assignment covers only a subset, but the objects are shared; the KS-12 quirk), so
    /// every response with a region error is covered here.
    pub(crate) fn decode_response(&self, resp: &mut CommandResponse) -> KeyResult {
        if self.mode == Mode::Raw {
            // Raw region keys are plain: nothing to translate.
            return Ok(());
        }
        if let Some(err) = region_error::region_error_mut(resp).and_then(Option::as_mut) {
            self.decode_region_error(err)?;
        }
        if let CommandResponse::Cop(r) = resp {
            self.decode_cop_batch(r)?;
        }
        Ok(())
    }

    /// Decodes one item of a coprocessor stream.
    pub(crate) fn decode_cop_item(&self, r: &mut tikv_proto::coprocessor::Response) -> KeyResult {
        if self.mode == Mode::Raw {
            return Ok(());
        }
        if let Some(err) = r.region_error.as_mut() {
            self.decode_region_error(err)?;
        }
        self.decode_cop_batch(r)
    }

    /// Whether responses need any work at all (transactional mode only).
    pub(crate) fn decodes_anything(&self) -> bool {
        self.mode == Mode::Txn
    }

    fn decode_cop_batch(&self, r: &mut tikv_proto::coprocessor::Response) -> KeyResult {
        for b in &mut r.batch_responses {
            if let Some(err) = b.region_error.as_mut() {
                self.decode_region_error(err)?;
            }
        }
        Ok(())
    }

    fn decode_region_error(&self, err: &mut tikv_proto::errorpb::Error) -> KeyResult {
        // KeyNotInRegion.key is a user key under V1 and stays as is.
        if let Some(e) = err.key_not_in_region.as_mut() {
            self.decode_region_range_in_place(&mut e.start_key, &mut e.end_key)?;
        }
        if let Some(e) = err.epoch_not_match.as_mut() {
            for region in &mut e.current_regions {
                self.decode_region_range_in_place(&mut region.start_key, &mut region.end_key)?;
            }
        }
        if let Some(e) = err.bucket_version_not_match.as_mut() {
            for key in &mut e.keys {
                self.decode_region_key_in_place(key)?;
            }
        }
        Ok(())
    }

    fn decode_region_key_in_place(&self, key: &mut Vec<u8>) -> KeyResult {
        if self.mode == Mode::Txn && !key.is_empty() {
            *key = mc_decode(key)?;
        }
        Ok(())
    }

    fn decode_region_range_in_place(&self, start: &mut Vec<u8>, end: &mut Vec<u8>) -> KeyResult {
        self.decode_region_key_in_place(start)?;
        self.decode_region_key_in_place(end)
    }

    // ===== region keys (PD edge) =====

    /// The region key of `key` (client-go's `EncodeRegionKey`): the key itself in raw
    /// mode, its memcomparable encoding in transactional mode.
    pub fn encode_region_key(&self, key: &[u8]) -> Vec<u8> {
        match self.mode {
            Mode::Raw => key.to_vec(),
            Mode::Txn => memcomparable::encode_bytes_to_vec(key),
        }
    }

    /// The user key of a region key (client-go's `DecodeRegionKey`); an empty key stays
    /// empty.
    ///
    /// # Errors
    ///
    /// A decode error ([`super::is_decode_error`]) for malformed memcomparable bytes.
    pub fn decode_region_key(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        let mut k = key.to_vec();
        self.decode_region_key_in_place(&mut k)?;
        Ok(k)
    }

    /// The region keys of a range (client-go's `EncodeRegionRange`); an empty (unbounded)
    /// end stays empty.
    pub fn encode_region_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let end = if end.is_empty() {
            Vec::new()
        } else {
            self.encode_region_key(end)
        };
        (self.encode_region_key(start), end)
    }

    /// The user-key range of a region range (client-go's `DecodeRegionRange`).
    ///
    /// # Errors
    ///
    /// A decode error for malformed memcomparable bytes.
    pub fn decode_region_range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        Ok((self.decode_region_key(start)?, self.decode_region_key(end)?))
    }

    /// The user keys of region bucket boundaries (client-go's `DecodeBucketKeys`).
    ///
    /// # Errors
    ///
    /// A decode error for malformed memcomparable bytes.
    pub fn decode_bucket_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Error> {
        keys.iter().map(|k| self.decode_region_key(k)).collect()
    }
}
