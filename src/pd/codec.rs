//! The key-encoding PD wrapper (client-go's `internal/locate/pd_codec.go`, KS-17 .. KS-22).

use std::sync::Arc;

use futures_core::future::BoxFuture;
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::keyspacepb::keyspace_meta::Keyspace;
use tikv_proto::{keyspacepb, metapb};

use super::{KeyRange, PdClient, RegionInfo, RegionMetaClient, RegionOptions, decode_error};
use crate::codec::{decode_bytes, encode_bytes};

/// The largest API-v2 keyspace id (24 bits).
const MAX_KEYSPACE_ID: u32 = 0xFF_FFFF;

/// How region keys are encoded between the client's key space and PD's (RC-31, KS-19).
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

impl KeyMode {
    /// The v2 mode of keyspace `id`, `raw` choosing the `r` or `x` prefix (KS-5).
    pub fn v2(id: u32, raw: bool) -> Result<KeyMode> {
        if id > MAX_KEYSPACE_ID {
            return Err(Error::new(ErrorDetail::InvalidArgument(format!(
                "keyspaceID {id} is out of range"
            ))));
        }
        let mode = if raw { b'r' } else { b'x' };
        let prefix_u32 = (u32::from(mode) << 24) | id;
        let end_u32 = prefix_u32.wrapping_add(1);
        Ok(KeyMode::V2 {
            prefix: prefix_u32.to_be_bytes(),
            end: end_u32.to_be_bytes(),
        })
    }

    fn encode_key(&self, key: &[u8]) -> Vec<u8> {
        match self {
            KeyMode::RawV1 => key.to_vec(),
            KeyMode::TxnV1 => mce(key),
            KeyMode::V2 { prefix, .. } => {
                let mut k = Vec::with_capacity(4 + key.len());
                k.extend_from_slice(prefix);
                k.extend_from_slice(key);
                mce(&k)
            }
        }
    }

    fn encode_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeyMode::RawV1 => (start.to_vec(), end.to_vec()),
            KeyMode::TxnV1 => (
                mce(start),
                if end.is_empty() { Vec::new() } else { mce(end) },
            ),
            KeyMode::V2 { end: ks_end, .. } => (
                self.encode_key(start),
                if end.is_empty() {
                    mce(ks_end)
                } else {
                    self.encode_key(end)
                },
            ),
        }
    }

    fn decode_range(&self, start: &[u8], end: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        match self {
            KeyMode::RawV1 => Ok((start.to_vec(), end.to_vec())),
            KeyMode::TxnV1 => Ok((mcd(start)?, mcd(end)?)),
            KeyMode::V2 {
                prefix,
                end: ks_end,
            } => {
                let (s, e) = (mcd(start)?, mcd(end)?);
                if s.as_slice() >= ks_end.as_slice()
                    || (!e.is_empty() && e.as_slice() <= prefix.as_slice())
                {
                    return Err(Error::new(ErrorDetail::InvalidArgument(
                        "given key does not belong to the keyspace".into(),
                    )));
                }
                let strip = |k: Vec<u8>| {
                    if k.starts_with(prefix) {
                        k[4..].to_vec()
                    } else {
                        Vec::new()
                    }
                };
                Ok((strip(s), strip(e)))
            }
        }
    }

    fn decode_bucket_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        match self {
            KeyMode::RawV1 => Ok(keys.to_vec()),
            KeyMode::TxnV1 => keys.iter().map(|k| mcd(k)).collect(),
            KeyMode::V2 { prefix, end } => {
                let mut out: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
                let n = keys.len();
                for (i, k) in keys.iter().enumerate() {
                    let k = mcd(k)?;
                    let below = i == 0 && k.as_slice() < prefix.as_slice();
                    let beyond = i + 1 == n && (k.is_empty() || k.as_slice() >= end.as_slice());
                    if below || beyond {
                        out.push(Vec::new());
                    } else if k.starts_with(prefix) {
                        let stripped = k[4..].to_vec();
                        if stripped.is_empty() && out.first().is_some_and(|f| f.is_empty()) {
                            continue;
                        }
                        out.push(stripped);
                    }
                }
                Ok(out)
            }
        }
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

fn mce(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(key.len() / 8 * 9 + 9);
    encode_bytes(&mut buf, key);
    buf
}

fn mcd(key: &[u8]) -> Result<Vec<u8>> {
    if key.is_empty() {
        return Ok(Vec::new());
    }
    decode_bytes(key)
        .map(|(_, k)| k)
        .map_err(|e| decode_error(format!("{e}")))
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

/// `""` names the default keyspace (client-go's `BuildKeyspaceName`, KS-9).
fn keyspace_name(name: &str) -> &str {
    if name.is_empty() { "DEFAULT" } else { name }
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
    pd.load_keyspace(keyspace_name(name)).await
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
