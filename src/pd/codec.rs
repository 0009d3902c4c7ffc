//! The key-encoding PD wrapper (client-go's `internal/locate/pd_codec.go`, KS-17 .. KS-22).

use std::sync::Arc;

use futures_core::future::BoxFuture;
use tikv_layers::api_codec::{self, Codec, CodecV1, KeyspacePrefix, Mode};
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::keyspacepb::keyspace_meta::Keyspace;
use tikv_proto::{keyspacepb, metapb};

use super::{KeyRange, PdClient, RegionInfo, RegionMetaClient, RegionOptions, decode_error};

/// How region keys are encoded between the client's key space and PD's (RC-31, KS-19).
///
/// The translations are the API codec's ([`tikv_layers::api_codec`]), so the PD edge and
/// the request edge share one implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// API v1 raw: keys go to PD unchanged.
    RawV1,
    /// API v1 transactional: memcomparable-encoded keys.
    TxnV1,
    /// API v2: a 4-byte keyspace prefix, then memcomparable encoding.
    V2 {
        /// `[mode, id >> 16, id >> 8, id]`.
        prefix: [u8; 4],
        /// The first key after the keyspace.
        end: [u8; 4],
    },
}

/// The codec doing the work for a [`KeyMode`].
enum RegionKeys {
    V1(CodecV1),
    V2(KeyspacePrefix),
}

impl KeyMode {
    /// The v2 mode of keyspace `id`, `raw` choosing the `r` or `x` prefix (KS-5).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `id` does not fit in 24 bits.
    pub fn v2(id: u32, raw: bool) -> Result<KeyMode> {
        let mode = if raw { Mode::Raw } else { Mode::Txn };
        let keys = KeyspacePrefix::new(mode, id)?;
        Ok(KeyMode::V2 {
            prefix: *keys.prefix(),
            end: *keys.end(),
        })
    }

    /// The key mode matching the request codec `codec`, so PD lookups and requests use the
    /// same key space.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] for a codec of an API version PD keys are not
    /// defined for.
    pub fn from_codec(codec: &Codec) -> Result<KeyMode> {
        match codec {
            Codec::V1(c) => Ok(match c.mode() {
                Mode::Raw => KeyMode::RawV1,
                Mode::Txn => KeyMode::TxnV1,
            }),
            Codec::V2(c) => Ok(KeyMode::V2 {
                prefix: *c.keyspace_prefix().prefix(),
                end: *c.keyspace_prefix().end(),
            }),
            other => Err(Error::new(ErrorDetail::InvalidArgument(format!(
                "no region key mode for API version {:?}",
                other.api_version()
            )))),
        }
    }

    fn keys(&self) -> RegionKeys {
        match self {
            KeyMode::RawV1 => RegionKeys::V1(CodecV1::new(Mode::Raw)),
            KeyMode::TxnV1 => RegionKeys::V1(CodecV1::new(Mode::Txn)),
            // The end is always the prefix's successor; it is recomputed from the prefix.
            KeyMode::V2 { prefix, .. } => RegionKeys::V2(KeyspacePrefix::from_prefix(*prefix)),
        }
    }

    fn encode_key(&self, key: &[u8]) -> Vec<u8> {
        match self.keys() {
            RegionKeys::V1(c) => c.encode_region_key(key),
            RegionKeys::V2(k) => k.encode_region_key(key),
        }
    }

    fn encode_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self.keys() {
            RegionKeys::V1(c) => c.encode_region_range(start, end),
            RegionKeys::V2(k) => k.encode_region_range(start, end),
        }
    }

    fn decode_range(&self, start: &[u8], end: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        match self.keys() {
            RegionKeys::V1(c) => c.decode_region_range(start, end),
            RegionKeys::V2(k) => k.decode_region_range(start, end),
        }
        .map_err(pd_decode_error)
    }

    fn decode_bucket_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        match self.keys() {
            RegionKeys::V1(c) => c.decode_bucket_keys(keys),
            RegionKeys::V2(k) => k.decode_bucket_keys(keys),
        }
        .map_err(pd_decode_error)
    }

    fn decode_region(&self, mut r: RegionInfo) -> Result<RegionInfo> {
        let (s, e) = self.decode_range(&r.region.start_key, &r.region.end_key)?;
        r.region.start_key = s;
        r.region.end_key = e;
        if let Some(b) = r.buckets.as_mut() {
            b.keys = self.decode_bucket_keys(&b.keys)?;
        }
        Ok(r)
    }
}

/// Malformed region keys become the PD module's [`DecodeError`](super::DecodeError), which
/// the region cache fails on at once (KS-20); other errors (a region outside the keyspace)
/// pass unchanged and are retried (the KS-19 quirk).
fn pd_decode_error(e: Error) -> Error {
    match api_codec::decode_error_cause(&e) {
        Some(cause) => decode_error(cause.to_string()),
        None => e,
    }
}

/// A [`RegionMetaClient`] that encodes keys for PD and decodes region boundaries in PD's
/// answers (client-go's `CodecPDClient`, KS-18). Store calls pass through.
#[derive(Clone)]
pub struct CodecPdClient {
    inner: Arc<dyn RegionMetaClient>,
    mode: KeyMode,
}

impl std::fmt::Debug for CodecPdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecPdClient")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl CodecPdClient {
    /// Wraps `inner` with the key encoding of `mode`.
    pub fn new(inner: Arc<dyn RegionMetaClient>, mode: KeyMode) -> CodecPdClient {
        CodecPdClient { inner, mode }
    }

    /// The key mode in use.
    pub fn mode(&self) -> &KeyMode {
        &self.mode
    }

    fn decode_opt(&self, r: Result<Option<RegionInfo>>) -> Result<Option<RegionInfo>> {
        match r? {
            None => Ok(None),
            Some(r) => self.mode.decode_region(r).map(Some),
        }
    }

    fn decode_all(&self, r: Result<Vec<RegionInfo>>) -> Result<Vec<RegionInfo>> {
        r?.into_iter().map(|r| self.mode.decode_region(r)).collect()
    }
}

impl RegionMetaClient for CodecPdClient {
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        let fut = self.inner.get_region(self.mode.encode_key(&key), opts);
        Box::pin(async move { this.decode_opt(fut.await) })
    }
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        let fut = self.inner.get_prev_region(self.mode.encode_key(&key), opts);
        Box::pin(async move { this.decode_opt(fut.await) })
    }
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        let fut = self.inner.get_region_by_id(id, opts);
        Box::pin(async move { this.decode_opt(fut.await) })
    }
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        let (s, e) = self.mode.encode_range(&start, &end);
        let fut = self.inner.scan_regions(s, e, limit, opts);
        Box::pin(async move { this.decode_all(fut.await) })
    }
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        let ranges = ranges
            .iter()
            .map(|r| {
                let (s, e) = self.mode.encode_range(&r.start, &r.end);
                KeyRange::new(s, e)
            })
            .collect();
        let fut = self.inner.batch_scan_regions(ranges, limit, opts);
        Box::pin(async move { this.decode_all(fut.await) })
    }
    fn get_store(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>> {
        self.inner.get_store(id, opts)
    }
    fn get_all_stores(
        &self,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<metapb::Store>>> {
        self.inner.get_all_stores(opts)
    }
    fn cluster_id(&self) -> u64 {
        self.inner.cluster_id()
    }
}

/// Something that can load a keyspace's meta by name (`LoadKeyspace`).
pub trait KeyspaceLoader: Send + Sync {
    /// `keyspacepb.Keyspace/LoadKeyspace`.
    fn load_keyspace(&self, name: &str) -> BoxFuture<'static, Result<keyspacepb::KeyspaceMeta>>;
}

impl KeyspaceLoader for PdClient {
    fn load_keyspace(&self, name: &str) -> BoxFuture<'static, Result<keyspacepb::KeyspaceMeta>> {
        let this = self.clone();
        let name = name.to_owned();
        Box::pin(async move { PdClient::load_keyspace(&this, &name).await })
    }
}

/// Loads a keyspace's meta, whatever its state (client-go's `GetKeyspaceMeta`, KS-17).
///
/// # Cancel safety
///
/// Cancel safe.
pub async fn get_keyspace_meta(
    pd: &dyn KeyspaceLoader,
    name: &str,
) -> Result<keyspacepb::KeyspaceMeta> {
    pd.load_keyspace(api_codec::build_keyspace_name(name)).await
}

/// The id of an enabled API-v1/v2 keyspace (client-go's `GetKeyspaceID`, KS-17): fails
/// when the keyspace is not enabled or carries an API-v3 identity.
///
/// # Cancel safety
///
/// Cancel safe.
pub async fn get_keyspace_id(pd: &dyn KeyspaceLoader, name: &str) -> Result<u32> {
    let meta = get_keyspace_meta(pd, name).await?;
    if meta.state() != keyspacepb::KeyspaceState::Enabled {
        return Err(Error::new(ErrorDetail::InvalidArgument(format!(
            "keyspace {name} not enabled, state: {:?}",
            meta.state()
        ))));
    }
    match meta.keyspace {
        Some(Keyspace::Id(id)) => Ok(id),
        None => Ok(0),
        Some(Keyspace::KeyspaceIdentity(_)) => Err(Error::new(ErrorDetail::InvalidArgument(
            format!("keyspace {name} has an API v3 identity, not a keyspace id"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pd::is_decode_error;

    #[test]
    fn key_mode_follows_the_request_codec() {
        let v2 = Codec::v2_with_id(Mode::Txn, 4242).expect("codec");
        let mode = KeyMode::from_codec(&v2).expect("mode");
        assert_eq!(mode, KeyMode::v2(4242, false).expect("mode"));
        assert_eq!(
            KeyMode::from_codec(&Codec::v1(Mode::Raw)).expect("mode"),
            KeyMode::RawV1
        );
        assert_eq!(
            KeyMode::from_codec(&Codec::v1(Mode::Txn)).expect("mode"),
            KeyMode::TxnV1
        );
        // Both edges produce the same region keys.
        assert_eq!(mode.encode_key(b"k"), v2.encode_region_key(b"k"));
        assert_eq!(
            mode.encode_range(b"a", b""),
            v2.encode_region_range(b"a", b"")
        );
    }

    #[test]
    fn decode_failures_keep_their_pd_meaning() {
        // Malformed memcomparable bytes: a PD decode error, failed at once by the cache.
        let bad = KeyMode::TxnV1
            .decode_range(b"\x01", b"")
            .expect_err("malformed");
        assert!(is_decode_error(&bad));
        // A region outside the keyspace: not a decode error (retried, KS-19).
        let mode = KeyMode::v2(1, true).expect("mode");
        let (start, _) = KeyMode::v2(2, true).expect("mode").encode_range(b"", b"");
        let out = mode.decode_range(&start, b"").expect_err("out of keyspace");
        assert!(!is_decode_error(&out));
    }
}
