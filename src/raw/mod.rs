//! The raw key-value client (client-go's `rawkv` package, api.md group RAW; rules RAW-1 ..
//! RAW-29 of `shared/spec/pd-oracle-rawkv.md`).
//!
//! Raw KV stores plain key-value pairs with no transactions and no MVCC. Every method
//! builds one request envelope and sends it through the [`Pipeline`]: the `shard` layer
//! splits batch commands by region (at client-go's batch limits, in parallel) and pages
//! scans, delete-range and checksum region by region, the `retry` layer handles region
//! and transport errors, and the `api_codec` layer adds the keyspace prefix under API V2.
//! So everything here works in user keys, and each method is "build, call, decode".
//!
//! Values read back distinguish a missing key (`None`) from an existing empty value
//! (`Some(vec![])`), as client-go does with nil versus empty slices (RAW-5a).
//!
//! ```
//! # #[cfg(feature = "mock")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tikv::raw::Client;
//!
//! let client = Client::embedded().await?;
//! client.put(b"k1".to_vec(), b"v1".to_vec()).await?;
//! assert_eq!(client.get(b"k1".to_vec()).await?, Some(b"v1".to_vec()));
//! let pairs = client.scan(b"a".to_vec()..b"z".to_vec(), 10).await?;
//! assert_eq!(pairs.len(), 1);
//! # Ok::<(), tikv::layers::Error>(())
//! # }).unwrap();
//! ```

mod builder;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use tikv_layers::backoff::{Backoffer, SharedBackoffer};
use tikv_layers::{Command, CommandResponse, Error, ErrorDetail, Result, RpcRequest, RpcResponse};
use tikv_proto::kvrpcpb;

pub use builder::ClientBuilder;

use crate::cluster::Cluster;
use crate::pipeline::Pipeline;

/// The budget of every raw call's backoffer (client-go's `rawkvMaxBackoff`, RAW-6).
pub const RAW_MAX_BACKOFF_MS: u64 = 20_000;
/// The largest scan limit (client-go's `MaxRawKVScanLimit`, RAW-18).
pub const MAX_RAW_SCAN_LIMIT: u32 = 10_240;
/// `max_execution_duration_ms` of raw writes (client-go's `MaxWriteExecutionTime`, RAW-8).
pub const MAX_WRITE_EXECUTION_MS: u64 = 20_000;

/// One key-value pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvPair {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for key-only scans).
    pub value: Vec<u8>,
}

/// The result of [`Client::checksum`] (client-go's `RawChecksum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    /// XOR of the CRC64-ECMA of every `key ‖ value` stored.
    pub crc64_xor: u64,
    /// Number of pairs.
    pub total_kvs: u64,
    /// Sum of key and value lengths, as stored (API V2 keys include their 4-byte prefix).
    pub total_bytes: u64,
}

struct Inner {
    cluster: Cluster,
    pipeline: Pipeline,
}

/// A raw KV client: cheap to clone; clones share the connection, caches and pipeline.
///
/// The column family and the compare-and-swap mode are per handle:
/// [`with_cf`](Self::with_cf) and [`with_atomic_for_cas`](Self::with_atomic_for_cas)
/// return a new handle, so one client can serve several column families at once (this
/// replaces client-go's mutating `SetColumnFamily` / `SetAtomicForCAS` and its per-call
/// `SetColumnFamily` option).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    cf: String,
    atomic: bool,
    max_scan_limit: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("raw::Client")
            .field("cf", &self.cf)
            .field("atomic", &self.atomic)
            .field("cluster", &self.inner.cluster)
            .finish()
    }
}

impl Client {
    /// A builder: PD endpoints, configuration, API version and keyspace, user layers.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Connects to the cluster whose PD answers at `pd_endpoints`, with the default
    /// configuration and API V1 (client-go's `NewClientWithOpts` without options).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect(pd_endpoints: &[String]) -> Result<Client> {
        ClientBuilder::new()
            .pd_endpoints(pd_endpoints)
            .build()
            .await
    }

    /// A client over a fresh embedded mock cluster (one store, one region): no sockets,
    /// no setup. For examples and tests.
    #[cfg(feature = "mock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
    pub async fn embedded() -> Result<Client> {
        let mock = crate::mock::Mock::new(crate::mock::MockOptions::default());
        mock.cluster().bootstrap_with_single_store();
        ClientBuilder::new().embedded(mock).build().await
    }

    fn assemble(cluster: Cluster, pipeline: Pipeline, max_scan_limit: u32) -> Client {
        Client {
            inner: Arc::new(Inner { cluster, pipeline }),
            cf: String::new(),
            atomic: false,
            max_scan_limit,
        }
    }

    /// This handle with column family `cf` (`""` = TiKV's `default`; TiKV also accepts
    /// `lock` and `write`, and API V2 keeps raw data in `default`).
    pub fn with_cf(&self, cf: impl Into<String>) -> Client {
        Client {
            cf: cf.into(),
            ..self.clone()
        }
    }

    /// This handle with atomic mode on or off (client-go's `SetAtomicForCAS`): in atomic
    /// mode writes go through TiKV's compare-and-swap path (`for_cas`), which
    /// [`compare_and_swap`](Self::compare_and_swap) requires. Mixing atomic and
    /// non-atomic writers on the same keys breaks linearizability.
    pub fn with_atomic_for_cas(&self, atomic: bool) -> Client {
        Client {
            atomic,
            ..self.clone()
        }
    }

    /// The column family of this handle.
    pub fn cf(&self) -> &str {
        &self.cf
    }

    /// The cluster id (client-go's `ClusterID`).
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster.cluster_id()
    }

    /// The shared cluster state (PD client, caches).
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Stops the background tasks (client-go's `Close`). Other handles stop working.
    pub async fn close(&self) {
        self.inner.cluster.shutdown().await;
    }

    // ----- plumbing -----

    fn request(&self, cmd: impl Into<Command>, write_deadline: bool) -> RpcRequest {
        let mut req = RpcRequest::new(cmd)
            .backoffer(SharedBackoffer::new(Backoffer::new(RAW_MAX_BACKOFF_MS)));
        if write_deadline {
            req.context.max_execution_duration_ms = MAX_WRITE_EXECUTION_MS;
        }
        req
    }

    /// Sends a request and checks what every raw answer must satisfy (RAW-7): no region
    /// error left over, and no `error` message.
    async fn send(&self, req: RpcRequest) -> Result<CommandResponse> {
        let want = req.cmd_type();
        let resp: RpcResponse = self.inner.pipeline.call(req).await?;
        resp.expect(want)?;
        let mut resp = resp.resp;
        if let Some(e) = resp.take_region_error() {
            return Err(Error::from(e));
        }
        if let Some(msg) = storage_error(&resp)
            && !msg.is_empty()
        {
            return Err(ErrorDetail::Storage(msg.to_owned()).into());
        }
        Ok(resp)
    }

    // ----- reads -----

    /// The value of `key`; `None` when it does not exist (RAW-10).
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let req = self.request(
            kvrpcpb::RawGetRequest {
                key: key.into(),
                cf: self.cf.clone(),
                ..Default::default()
            },
            false,
        );
        match self.send(req).await? {
            CommandResponse::RawGet(r) => Ok((!r.not_found).then_some(r.value)),
            other => Err(unexpected("RawGet", &other)),
        }
    }

    /// The values of `keys`, aligned with the input: `None` for missing keys; duplicate
    /// keys get the same value (RAW-11). Empty input makes no RPC.
    pub async fn batch_get<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(Into::into).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let req = self.request(
            kvrpcpb::RawBatchGetRequest {
                keys: keys.clone(),
                cf: self.cf.clone(),
                ..Default::default()
            },
            true,
        );
        let pairs = match self.send(req).await? {
            CommandResponse::RawBatchGet(r) => r.pairs,
            other => return Err(unexpected("RawBatchGet", &other)),
        };
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            pairs.into_iter().map(|p| (p.key, p.value)).collect();
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// The remaining TTL of `key` in seconds (0 for a key stored without TTL); `None`
    /// when the key does not exist (RAW-13).
    pub async fn get_key_ttl(&self, key: impl Into<Vec<u8>>) -> Result<Option<u64>> {
        let req = self.request(
            kvrpcpb::RawGetKeyTtlRequest {
                key: key.into(),
                cf: self.cf.clone(),
                ..Default::default()
            },
            false,
        );
        match self.send(req).await? {
            CommandResponse::RawGetKeyTTL(r) => Ok((!r.not_found).then_some(r.ttl)),
            other => Err(unexpected("RawGetKeyTTL", &other)),
        }
    }

    /// Up to `limit` pairs of `range` in ascending key order, across every region the
    /// range covers (RAW-18).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `limit` exceeds [`MAX_RAW_SCAN_LIMIT`].
    pub async fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        self.scan_inner(range, limit, false, false).await
    }

    /// Like [`scan`](Self::scan), keys only (values are empty).
    pub async fn scan_keys<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>> {
        let pairs = self.scan_inner(range, limit, false, true).await?;
        Ok(pairs.into_iter().map(|p| p.key).collect())
    }

    /// Up to `limit` pairs of `range` in descending key order: the largest keys first,
    /// starting below the range's upper bound (RAW-19). An unbounded upper end starts at
    /// the top of the key space.
    pub async fn reverse_scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        self.scan_inner(range, limit, true, false).await
    }

    /// Like [`reverse_scan`](Self::reverse_scan), keys only.
    pub async fn reverse_scan_keys<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>> {
        let pairs = self.scan_inner(range, limit, true, true).await?;
        Ok(pairs.into_iter().map(|p| p.key).collect())
    }

    async fn scan_inner<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        limit: u32,
        reverse: bool,
        key_only: bool,
    ) -> Result<Vec<KvPair>> {
        if limit > self.max_scan_limit {
            return Err(ErrorDetail::InvalidArgument(format!(
                "scan limit {limit} exceeds the maximum of {}",
                self.max_scan_limit
            ))
            .into());
        }
        let (start, end) = to_half_open(&range);
        if limit == 0 || is_empty_range(&start, &end) {
            return Ok(Vec::new());
        }
        // TiKV's reverse scan takes the exclusive upper bound as `start_key`.
        let (start_key, end_key) = if reverse { (end, start) } else { (start, end) };
        let req = self.request(
            kvrpcpb::RawScanRequest {
                start_key,
                end_key,
                limit,
                key_only,
                cf: self.cf.clone(),
                reverse,
                ..Default::default()
            },
            false,
        );
        match self.send(req).await? {
            CommandResponse::RawScan(r) => Ok(r
                .kvs
                .into_iter()
                .map(|p| KvPair {
                    key: p.key,
                    value: p.value,
                })
                .collect()),
            other => Err(unexpected("RawScan", &other)),
        }
    }

    /// The checksum of `range` over every region it covers (RAW-20).
    pub async fn checksum<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<Checksum> {
        let (start, end) = to_half_open(&range);
        if is_empty_range(&start, &end) {
            return Ok(Checksum::default());
        }
        let req = self.request(
            kvrpcpb::RawChecksumRequest {
                algorithm: kvrpcpb::ChecksumAlgorithm::Crc64Xor as i32,
                ranges: vec![kvrpcpb::KeyRange {
                    start_key: start,
                    end_key: end,
                }],
                ..Default::default()
            },
            false,
        );
        // client-go ignores the `error` string of checksum answers (RAW-7 quirk); an error
        // message still means the checksum is wrong, so it is reported here.
        match self.send(req).await? {
            CommandResponse::RawChecksum(r) => Ok(Checksum {
                crc64_xor: r.checksum,
                total_kvs: r.total_kvs,
                total_bytes: r.total_bytes,
            }),
            other => Err(unexpected("RawChecksum", &other)),
        }
    }

    // ----- writes -----

    /// Writes `key` = `value` (RAW-12).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] for an empty key (TiKV rejects it).
    pub async fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        self.put_with_ttl(key, value, 0).await
    }

    /// Writes `key` = `value` expiring after `ttl_secs` seconds (0 = never). A cluster
    /// without TTL support answers with an error (RAW-12).
    pub async fn put_with_ttl(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl_secs: u64,
    ) -> Result<()> {
        let key = non_empty_key(key.into(), "put")?;
        let req = self.request(
            kvrpcpb::RawPutRequest {
                key,
                value: value.into(),
                cf: self.cf.clone(),
                ttl: ttl_secs,
                for_cas: self.atomic,
                ..Default::default()
            },
            false,
        );
        self.send(req).await.map(drop)
    }

    /// Writes every pair, split by region and batch size and sent in parallel (RAW-14,
    /// RAW-24). With duplicate keys the last pair wins. Empty input makes no RPC.
    ///
    /// # Errors
    ///
    /// The first failing batch's error; other batches may have been written.
    pub async fn batch_put<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.batch_put_inner(pairs, Vec::new()).await
    }

    /// Like [`batch_put`](Self::batch_put) with one TTL (seconds) per pair.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `ttls` and `pairs` differ in length.
    pub async fn batch_put_with_ttl<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        ttls: impl IntoIterator<Item = u64>,
    ) -> Result<()> {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let ttls: Vec<u64> = ttls.into_iter().collect();
        if ttls.len() != pairs.len() {
            return Err(ErrorDetail::InvalidArgument(format!(
                "{} ttls for {} pairs",
                ttls.len(),
                pairs.len()
            ))
            .into());
        }
        self.batch_put_inner(pairs, ttls).await
    }

    async fn batch_put_inner(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>, ttls: Vec<u64>) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        // RAW-24: with duplicate keys the last value (and TTL) wins for every occurrence.
        let mut last: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if k.is_empty() {
                return Err(ErrorDetail::InvalidArgument("batch put: empty key".into()).into());
            }
            last.insert(k.as_slice(), i);
        }
        let mut kv = Vec::with_capacity(pairs.len());
        let mut per_key_ttl = Vec::with_capacity(if ttls.is_empty() { 0 } else { pairs.len() });
        for (k, _) in &pairs {
            let j = last.get(k.as_slice()).copied().unwrap_or(0);
            kv.push(kvrpcpb::KvPair {
                key: k.clone(),
                value: pairs[j].1.clone(),
                ..Default::default()
            });
            if !ttls.is_empty() {
                per_key_ttl.push(ttls[j]);
            }
        }
        let req = self.request(
            kvrpcpb::RawBatchPutRequest {
                ttl: per_key_ttl.first().copied().unwrap_or(0),
                pairs: kv,
                cf: self.cf.clone(),
                for_cas: self.atomic,
                ttls: per_key_ttl,
                ..Default::default()
            },
            true,
        );
        self.send(req).await.map(drop)
    }

    /// Deletes `key`; deleting a missing key succeeds (RAW-15).
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<()> {
        let req = self.request(
            kvrpcpb::RawDeleteRequest {
                key: key.into(),
                cf: self.cf.clone(),
                for_cas: self.atomic,
                ..Default::default()
            },
            true,
        );
        self.send(req).await.map(drop)
    }

    /// Deletes every key, split by region and sent in parallel (RAW-16).
    pub async fn batch_delete<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<()> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(Into::into).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let req = self.request(
            kvrpcpb::RawBatchDeleteRequest {
                keys,
                cf: self.cf.clone(),
                for_cas: self.atomic,
                ..Default::default()
            },
            true,
        );
        self.send(req).await.map(drop)
    }

    /// Deletes every key of `range`, region by region (RAW-17). An empty range is a no-op.
    pub async fn delete_range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<()> {
        let (start, end) = to_half_open(&range);
        if is_empty_range(&start, &end) {
            return Ok(());
        }
        let req = self.request(
            kvrpcpb::RawDeleteRangeRequest {
                start_key: start,
                end_key: end,
                cf: self.cf.clone(),
                ..Default::default()
            },
            true,
        );
        self.send(req).await.map(drop)
    }

    /// Sets `key` to `new` if its current value is `previous` (`None` = the key must not
    /// exist). Returns the value before the call and whether the swap happened; the
    /// previous value is reported either way (RAW-21).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when this handle is not in atomic mode (see
    /// [`with_atomic_for_cas`](Self::with_atomic_for_cas)) or the key is empty; no RPC
    /// is made.
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Vec<u8>>,
        previous: Option<Vec<u8>>,
        new: impl Into<Vec<u8>>,
    ) -> Result<(Option<Vec<u8>>, bool)> {
        if !self.atomic {
            return Err(ErrorDetail::InvalidArgument(
                "using CompareAndSwap without enable atomic mode".into(),
            )
            .into());
        }
        let key = non_empty_key(key.into(), "compare and swap")?;
        let req = self.request(
            kvrpcpb::RawCasRequest {
                key,
                value: new.into(),
                previous_not_exist: previous.is_none(),
                previous_value: previous.unwrap_or_default(),
                cf: self.cf.clone(),
                ..Default::default()
            },
            true,
        );
        match self.send(req).await? {
            CommandResponse::RawCompareAndSwap(r) => Ok((
                (!r.previous_not_exist).then_some(r.previous_value),
                r.succeed,
            )),
            other => Err(unexpected("RawCompareAndSwap", &other)),
        }
    }
}

/// The `error` message of a raw answer (RAW-7); scans and batch gets have none.
fn storage_error(resp: &CommandResponse) -> Option<&str> {
    use CommandResponse as R;
    Some(match resp {
        R::RawGet(r) => &r.error,
        R::RawPut(r) => &r.error,
        R::RawBatchPut(r) => &r.error,
        R::RawDelete(r) => &r.error,
        R::RawBatchDelete(r) => &r.error,
        R::RawDeleteRange(r) => &r.error,
        R::RawGetKeyTTL(r) => &r.error,
        R::RawCompareAndSwap(r) => &r.error,
        R::RawChecksum(r) => &r.error,
        _ => return None,
    })
}

fn unexpected(want: &'static str, got: &CommandResponse) -> Error {
    ErrorDetail::InvalidResponse {
        expected: want,
        got: got.cmd_type().name().to_owned(),
    }
    .into()
}

fn non_empty_key(key: Vec<u8>, op: &str) -> Result<Vec<u8>> {
    if key.is_empty() {
        return Err(ErrorDetail::InvalidArgument(format!("{op}: empty key")).into());
    }
    Ok(key)
}

/// `[start, end)` of a range, empty end = unbounded. An excluded start or included end
/// moves to the next key (`key ‖ 0x00`).
fn to_half_open<K: AsRef<[u8]>>(range: &impl RangeBounds<K>) -> (Vec<u8>, Vec<u8>) {
    let start = match range.start_bound() {
        Bound::Included(k) => k.as_ref().to_vec(),
        Bound::Excluded(k) => next_key(k.as_ref()),
        Bound::Unbounded => Vec::new(),
    };
    let end = match range.end_bound() {
        Bound::Included(k) => next_key(k.as_ref()),
        Bound::Excluded(k) => k.as_ref().to_vec(),
        Bound::Unbounded => Vec::new(),
    };
    (start, end)
}

fn next_key(k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.extend_from_slice(k);
    v.push(0);
    v
}

/// Whether `[start, end)` holds no key (a non-empty end at or below the start).
fn is_empty_range(start: &[u8], end: &[u8]) -> bool {
    !end.is_empty() && start >= end
}

#[cfg(all(test, feature = "mock"))]
mod tests;
