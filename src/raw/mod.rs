//! The raw key-value client (client-go's `rawkv` package, api.md group RAW; rules RAW-1 ..
//! RAW-30 and KS-1 .. KS-23 of `shared/spec/pd-oracle-rawkv.md`).
//!
//! Raw KV stores plain key-value pairs with no transactions and no MVCC. Every method
//! checks its arguments, builds one request envelope and sends it through the
//! [`Pipeline`]: the `shard` layer splits batch commands by region (at client-go's batch
//! limits, in parallel) and pages scans, delete-range and checksum region by region, the
//! `retry` layer handles region and transport errors, and the `api_codec` layer adds the
//! keyspace prefix under API V2. So everything here works in user keys, and each method is
//! "check, build, call, decode".
//!
//! Values read back distinguish a missing key (`None`) from an existing empty value
//! (`Some(vec![])`), as client-go does with nil versus empty slices (RAW-5a).
//!
//! # Per-call options
//!
//! client-go's per-call `RawOption`s become cheap handle copies: [`Client::with_cf`] is
//! `SetColumnFamily`, [`Client::with_atomic_for_cas`] is `SetAtomicForCAS`, and
//! `ScanKeyOnly` is the `*_keys` scan methods. A handle is an `Arc` and two small fields, so
//! `client.with_cf(ColumnFamily::Write).put(..)` costs nothing worth measuring.
//!
//! # Bad input
//!
//! These fail with a typed [`Error`] before any RPC (client-go sends most of them to TiKV
//! and reports whatever comes back):
//!
//! | input | error |
//! | --- | --- |
//! | scan limit above [`ClientBuilder::max_scan_limit`] (client-go's `ErrMaxScanLimitExceeded`) | [`ErrorDetail::InvalidArgument`] |
//! | an inverted range (`"z".."a"`); see [`BoundRange`] | [`ErrorDetail::InvalidArgument`] |
//! | a reverse scan without an upper bound | [`ErrorDetail::InvalidArgument`] |
//! | a key longer than TiKV's `storage.max-key-size` ([`ClientBuilder::max_key_size`]) | [`ErrorDetail::KeyTooLarge`] |
//! | a pair larger than TiKV's `raftstore.raft-entry-max-size` ([`ClientBuilder::raft_entry_max_size`]) | [`ErrorDetail::EntryTooLarge`] |
//! | a TTL, or `get_key_ttl`, on a cluster without TTL support ([`ClientBuilder::enable_ttl`]) | [`ErrorDetail::InvalidArgument`] |
//! | compare-and-swap on a handle not in atomic mode | [`ErrorDetail::InvalidArgument`] |
//! | a column family other than `default` under API V2 | [`ErrorDetail::InvalidArgument`] |
//! | `batch_put_with_ttl` with as many TTLs as pairs missing | [`ErrorDetail::InvalidArgument`] |
//!
//! Empty keys are accepted: TiKV's raw write path checks the key size, the column family
//! and TTL support, not emptiness, and an empty key is a real, readable key.
//!
//! A batch write (`batch_put`, `batch_delete`, `delete_range`) that spans several
//! sub-requests is not atomic. When it fails after some sub-requests were applied, the
//! error says so: its [`source`](std::error::Error::source) is a [`PartialWrite`] (find it
//! with [`PartialWrite::of`]) counting what TiKV acknowledged.
//!
//! ```
//! # #[cfg(feature = "mock")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tikv::raw::Client;
//!
//! let client = Client::embedded().await?;
//! client.put("k1", "v1").await?;
//! assert_eq!(client.get("k1").await?, Some(b"v1".to_vec()));
//! let pairs = client.scan("a".."z", 10).await?;
//! assert_eq!(pairs.len(), 1);
//! # Ok::<(), tikv::layers::Error>(())
//! # }).unwrap();
//! ```

mod builder;
mod progress;
mod range;

use std::collections::HashMap;
use std::sync::Arc;

use tikv_layers::backoff::{Backoffer, SharedBackoffer};
use tikv_layers::classify::RegionErrorKind;
use tikv_layers::{Command, CommandResponse, Error, ErrorDetail, Result, RpcRequest, RpcResponse};
use tikv_proto::kvrpcpb;

pub use builder::{ApiVersion, ClientBuilder};
pub use range::BoundRange;

use crate::cluster::Cluster;
use crate::pipeline::Pipeline;
use progress::{ProgressHandle, WriteProgress};

/// The budget of every raw call's backoffer (client-go's `rawkvMaxBackoff`, RAW-6).
pub const RAW_MAX_BACKOFF_MS: u64 = 20_000;
/// The default largest scan limit (client-go's `MaxRawKVScanLimit`, RAW-18).
pub const MAX_RAW_SCAN_LIMIT: u32 = 10_240;
/// `max_execution_duration_ms` of raw writes (client-go's `MaxWriteExecutionTime`, RAW-8).
pub const MAX_WRITE_EXECUTION_MS: u64 = 20_000;
/// TiKV's default `storage.max-key-size`: the longest key TiKV stores, in bytes.
pub const DEFAULT_MAX_KEY_SIZE: usize = 8 * 1024;
/// TiKV's default `raftstore.raft-entry-max-size`: the largest raft entry, in bytes.
pub const DEFAULT_RAFT_ENTRY_MAX_SIZE: usize = 8 * 1024 * 1024;
/// Length of the keyspace prefix API V2 puts in front of every key (KS-5).
const V2_PREFIX_LEN: usize = 4;

/// One key-value pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvPair {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for an existing empty value).
    pub value: Vec<u8>,
}

impl KvPair {
    /// A pair.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> KvPair {
        KvPair {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl From<KvPair> for (Vec<u8>, Vec<u8>) {
    fn from(p: KvPair) -> Self {
        (p.key, p.value)
    }
}

/// The result of [`Client::checksum`] (client-go's `RawChecksum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    /// XOR of the CRC64-ECMA of every `key ‖ value` stored.
    pub crc64_xor: u64,
    /// Number of pairs.
    pub total_kvs: u64,
    /// Sum of key and value lengths, as stored (API V2 keys include their 4-byte prefix,
    /// RAW-20).
    pub total_bytes: u64,
}

/// A raw column family (RAW-4). TiKV accepts exactly these three and rejects any other
/// name; API V2 keeps raw data in [`Default`](ColumnFamily::Default) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ColumnFamily {
    /// `default` (sent as the empty name, as client-go does).
    #[default]
    Default,
    /// `lock`.
    Lock,
    /// `write`.
    Write,
}

impl ColumnFamily {
    /// TiKV's name of the column family.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnFamily::Default => "default",
            ColumnFamily::Lock => "lock",
            ColumnFamily::Write => "write",
        }
    }

    /// The name sent in requests: empty for `default` (TiKV reads an empty name as
    /// `default`).
    fn wire(self) -> &'static str {
        match self {
            ColumnFamily::Default => "",
            other => other.as_str(),
        }
    }
}

impl std::fmt::Display for ColumnFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The [`source`](std::error::Error::source) of a batch write's error when the write was
/// partly applied: some of its sub-requests (split by region and batch size) were
/// acknowledged by TiKV before the call failed.
///
/// The error itself keeps the failing sub-request's [`ErrorDetail`], so its kind and
/// helpers answer as usual; this report adds what was already written, and its own source
/// is the failing sub-request's error.
///
/// ```no_run
/// # async fn demo(client: tikv::raw::Client) {
/// use tikv::raw::PartialWrite;
///
/// let pairs = (0..10_000u32).map(|i| (i.to_be_bytes().to_vec(), vec![0u8; 100]));
/// if let Err(e) = client.batch_put(pairs).await {
///     match PartialWrite::of(&e) {
///         Some(p) => eprintln!("{} of the keys were written: {e}", p.acknowledged_keys()),
///         None => eprintln!("nothing was acknowledged: {e}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct PartialWrite {
    op: &'static str,
    requests: usize,
    keys: usize,
    cause: Error,
}

impl PartialWrite {
    /// The partial-write report of `err`, when it carries one.
    pub fn of(err: &Error) -> Option<&PartialWrite> {
        std::error::Error::source(err)?.downcast_ref::<PartialWrite>()
    }

    /// The operation (`"batch put"`, `"batch delete"`, `"delete range"`).
    pub fn operation(&self) -> &'static str {
        self.op
    }

    /// How many sub-requests TiKV acknowledged (for a delete range: regions cleared).
    pub fn acknowledged_requests(&self) -> usize {
        self.requests
    }

    /// How many keys those sub-requests carried (0 for a delete range). Duplicate keys of
    /// the input count once per occurrence.
    pub fn acknowledged_keys(&self) -> usize {
        self.keys
    }

    /// The error of the failing sub-request.
    pub fn cause(&self) -> &Error {
        &self.cause
    }

    /// `cause` with this report attached.
    fn wrap(op: &'static str, progress: &WriteProgress, cause: Error) -> Error {
        let detail = cause.detail().clone();
        let report = PartialWrite {
            op,
            requests: progress.requests(),
            keys: progress.keys(),
            cause,
        };
        Error::new(detail).with_source(report)
    }
}

impl std::fmt::Display for PartialWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} partly applied: {} sub-request(s) with {} key(s) were written before it failed",
            self.op, self.requests, self.keys
        )
    }
}

impl std::error::Error for PartialWrite {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// What the builder decided about the cluster, shared by every handle.
#[derive(Debug, Clone, Copy)]
struct Limits {
    api_version: ApiVersion,
    max_scan_limit: u32,
    max_key_size: usize,
    raft_entry_max_size: usize,
    ttl_enabled: bool,
}

struct Inner {
    cluster: Cluster,
    pipeline: Pipeline,
    limits: Limits,
}

/// A raw KV client: cheap to clone; clones share the connection, caches and pipeline.
///
/// The column family and the compare-and-swap mode are per handle:
/// [`with_cf`](Self::with_cf) and [`with_atomic_for_cas`](Self::with_atomic_for_cas)
/// return a new handle, so one client serves several column families at once (this
/// replaces client-go's mutating `SetColumnFamily` / `SetAtomicForCAS` and its per-call
/// `SetColumnFamily` option, RAW-3, RAW-4).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    cf: ColumnFamily,
    atomic: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("raw::Client")
            .field("cf", &self.cf)
            .field("atomic", &self.atomic)
            .field("api_version", &self.inner.limits.api_version)
            .field("cluster", &self.inner.cluster)
            .finish()
    }
}

impl Client {
    /// A builder: PD endpoints, configuration, API version and keyspace, limits, user
    /// layers.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Connects to the cluster whose PD answers at `pd_endpoints`, with the default
    /// configuration and API V1 (client-go's `NewClientWithOpts` without options).
    ///
    /// # Errors
    ///
    /// An unreachable PD or an invalid endpoint list.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect<S: AsRef<str>>(pd_endpoints: &[S]) -> Result<Client> {
        ClientBuilder::new()
            .pd_endpoints(pd_endpoints)
            .build()
            .await
    }

    /// A client over a fresh embedded mock cluster (one store, one region): no sockets,
    /// no setup. For examples and tests; [`ClientBuilder::embedded`] runs over a mock you
    /// keep a handle to (to split regions, inject errors, ...).
    ///
    /// # Errors
    ///
    /// Only on a bug of the mock.
    #[cfg(feature = "mock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
    pub async fn embedded() -> Result<Client> {
        let mock = crate::mock::Mock::new(crate::mock::MockOptions::default());
        mock.cluster().bootstrap_with_single_store();
        ClientBuilder::new().embedded(mock).build().await
    }

    fn assemble(cluster: Cluster, pipeline: Pipeline, limits: Limits) -> Client {
        Client {
            inner: Arc::new(Inner {
                cluster,
                pipeline,
                limits,
            }),
            cf: ColumnFamily::Default,
            atomic: false,
        }
    }

    /// This handle with column family `cf` (client-go's `SetColumnFamily`, client-wide or
    /// per call).
    #[must_use]
    pub fn with_cf(&self, cf: ColumnFamily) -> Client {
        Client { cf, ..self.clone() }
    }

    /// This handle with atomic mode on or off (client-go's `SetAtomicForCAS`, RAW-9): in
    /// atomic mode puts and deletes go through TiKV's compare-and-swap path (`for_cas`),
    /// which [`compare_and_swap`](Self::compare_and_swap) requires. Mixing atomic and
    /// non-atomic writers on the same keys breaks linearizability.
    #[must_use]
    pub fn with_atomic_for_cas(&self, atomic: bool) -> Client {
        Client {
            atomic,
            ..self.clone()
        }
    }

    /// The column family of this handle.
    pub fn cf(&self) -> ColumnFamily {
        self.cf
    }

    /// Whether this handle is in atomic mode.
    pub fn is_atomic_for_cas(&self) -> bool {
        self.atomic
    }

    /// The API version the client speaks.
    pub fn api_version(&self) -> ApiVersion {
        self.inner.limits.api_version
    }

    /// The cluster id (client-go's `ClusterID`).
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster.cluster_id()
    }

    /// The shared cluster state: PD client, region and store caches (client-go's
    /// `GetPDClient` and the region cache its tests reach into).
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Stops the background tasks (client-go's `Close`, RAW-5). Every handle of this
    /// client stops working.
    pub async fn close(&self) {
        self.inner.cluster.shutdown().await;
    }

    // ----- argument checks -----

    /// The column family to send (RAW-4; API V2 keeps raw data in `default`, KS-1).
    fn cf_name(&self) -> Result<String> {
        if self.inner.limits.api_version == ApiVersion::V2 && self.cf != ColumnFamily::Default {
            return Err(invalid(format!(
                "API V2 keeps raw data in the default column family, not `{}`",
                self.cf
            )));
        }
        Ok(self.cf.wire().to_owned())
    }

    /// The key and entry sizes TiKV would reject, measured as TiKV sees them (with the
    /// API V2 prefix).
    fn check_entry(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let limits = &self.inner.limits;
        let prefix = match limits.api_version {
            ApiVersion::V2 => V2_PREFIX_LEN,
            ApiVersion::V1 => 0,
        };
        let key_size = key.len().saturating_add(prefix);
        if key_size > limits.max_key_size {
            return Err(ErrorDetail::KeyTooLarge {
                size: key_size as u64,
            }
            .into());
        }
        if let Some(v) = value {
            let size = key_size.saturating_add(v.len());
            if size > limits.raft_entry_max_size {
                return Err(ErrorDetail::EntryTooLarge {
                    limit: limits.raft_entry_max_size as u64,
                    size: size as u64,
                }
                .into());
            }
        }
        Ok(())
    }

    /// TTLs need a cluster that keeps them (RAW-12; TiKV rejects them unless its storage
    /// runs API V1 with `enable-ttl` or API V2).
    fn check_ttl(&self, op: &str) -> Result<()> {
        if self.inner.limits.ttl_enabled {
            return Ok(());
        }
        Err(invalid(format!(
            "{op}: the cluster has no TTL support (TiKV needs `storage.enable-ttl` under API \
             V1, or API V2); if it has, build the client with `enable_ttl(true)`"
        )))
    }

    fn check_scan_limit(&self, limit: u32) -> Result<()> {
        let max = self.inner.limits.max_scan_limit;
        if limit > max {
            // client-go's ErrMaxScanLimitExceeded; equality is allowed.
            return Err(invalid(format!(
                "scan limit {limit} exceeds the maximum of {max} (MaxRawKVScanLimit)"
            )));
        }
        Ok(())
    }

    // ----- plumbing -----

    fn request(&self, cmd: impl Into<Command>, write_deadline: bool) -> RpcRequest {
        let bo = SharedBackoffer::new(Backoffer::new(RAW_MAX_BACKOFF_MS));
        let mut req = RpcRequest::with_backoffer(cmd, bo);
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
            // `shard` resends on every region error except an undetermined result, which
            // must reach the caller as such: the write may have been applied.
            if RegionErrorKind::of(&e) == RegionErrorKind::UndeterminedResult {
                return Err(Error::new(ErrorDetail::ResultUndetermined).with_source(Error::from(e)));
            }
            return Err(Error::from(e));
        }
        if let Some(msg) = storage_error(&resp)
            && !msg.is_empty()
        {
            return Err(ErrorDetail::Storage(msg.to_owned()).into());
        }
        Ok(resp)
    }

    /// Sends a write that `shard` may split, reporting a partial application on failure.
    async fn send_write(&self, op: &'static str, mut req: RpcRequest) -> Result<()> {
        let progress = Arc::new(WriteProgress::default());
        req.extensions.insert(ProgressHandle(progress.clone()));
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(e) if progress.requests() > 0 => Err(PartialWrite::wrap(op, &progress, e)),
            Err(e) => Err(e),
        }
    }

    // ----- reads -----

    /// The value of `key`; `None` when it does not exist (RAW-10).
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let req = self.request(
            kvrpcpb::RawGetRequest {
                key: key.into(),
                cf: self.cf_name()?,
                ..Default::default()
            },
            false,
        );
        match self.send(req).await? {
            CommandResponse::RawGet(r) => Ok((!r.not_found).then_some(r.value)),
            other => Err(unexpected("RawGet", &other)),
        }
    }

    /// The values of `keys`, aligned with the input: `None` for missing keys, duplicate
    /// keys get the same value (RAW-11). The keys are split by region and batches of 513
    /// and read in parallel (RAW-22); any failing batch fails the call. Empty input makes
    /// no RPC.
    pub async fn batch_get<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(Into::into).collect();
        let cf = self.cf_name()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // RAW-8: client-go gives batch gets the write deadline.
        let req = self.request(
            kvrpcpb::RawBatchGetRequest {
                keys: keys.clone(),
                cf,
                ..Default::default()
            },
            true,
        );
        let pairs = match self.send(req).await? {
            CommandResponse::RawBatchGet(r) => r.pairs,
            other => return Err(unexpected("RawBatchGet", &other)),
        };
        let mut found: HashMap<Vec<u8>, Vec<u8>> =
            pairs.into_iter().map(|p| (p.key, p.value)).collect();
        // Move each value into its last occurrence and clone it into earlier ones.
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
        let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            last.insert(k.as_slice(), i);
        }
        for (i, k) in keys.iter().enumerate() {
            let v = if last.get(k.as_slice()) == Some(&i) {
                found.remove(k)
            } else {
                found.get(k).cloned()
            };
            out.push(v);
        }
        Ok(out)
    }

    /// The remaining TTL of `key` in seconds (0 for a key stored without TTL); `None`
    /// when the key does not exist (RAW-13).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] without TTL support ([`ClientBuilder::enable_ttl`]).
    pub async fn get_key_ttl(&self, key: impl Into<Vec<u8>>) -> Result<Option<u64>> {
        self.check_ttl("get key ttl")?;
        let req = self.request(
            kvrpcpb::RawGetKeyTtlRequest {
                key: key.into(),
                cf: self.cf_name()?,
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
    /// range covers (RAW-18). A `limit` of 0 or an empty range makes no RPC.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `limit` exceeds the maximum (client-go's
    /// `ErrMaxScanLimitExceeded`) or the range is inverted.
    pub async fn scan(&self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<KvPair>> {
        self.scan_inner(range.into(), limit, false, false).await
    }

    /// Like [`scan`](Self::scan), keys only (client-go's `ScanKeyOnly`).
    pub async fn scan_keys(
        &self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>> {
        let pairs = self.scan_inner(range.into(), limit, false, true).await?;
        Ok(pairs.into_iter().map(|p| p.key).collect())
    }

    /// Up to `limit` pairs of `range` in descending key order: the largest keys first,
    /// starting below the range's upper bound (RAW-19). client-go's
    /// `ReverseScan(start, end)` is `reverse_scan(end..start)` here: the lower bound is
    /// inclusive and the upper exclusive, as in every Rust range (use `..=` to include the
    /// upper key).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] as for [`scan`](Self::scan), and when the range
    /// has no upper bound: TiKV scans backwards *from* a key, and there is no largest key
    /// to start from (client-go returns nothing for an empty start key).
    pub async fn reverse_scan(
        &self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        self.scan_inner(range.into(), limit, true, false).await
    }

    /// Like [`reverse_scan`](Self::reverse_scan), keys only.
    pub async fn reverse_scan_keys(
        &self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>> {
        let pairs = self.scan_inner(range.into(), limit, true, true).await?;
        Ok(pairs.into_iter().map(|p| p.key).collect())
    }

    async fn scan_inner(
        &self,
        range: BoundRange,
        limit: u32,
        reverse: bool,
        key_only: bool,
    ) -> Result<Vec<KvPair>> {
        self.check_scan_limit(limit)?;
        if reverse && range.is_unbounded_above() {
            return Err(invalid(
                "a reverse scan needs an upper bound (`..upper` or `lower..upper`): TiKV scans \
                 backwards from a key, and no key is the largest"
                    .into(),
            ));
        }
        let cf = self.cf_name()?;
        let Some((start, end)) = range.half_open()? else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        // TiKV's reverse scan takes the exclusive upper bound as `start_key` (RAW-19).
        let (start_key, end_key) = if reverse { (end, start) } else { (start, end) };
        let req = self.request(
            kvrpcpb::RawScanRequest {
                start_key,
                end_key,
                limit,
                key_only,
                cf,
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

    /// The checksum of `range` over every region it covers, region by region (RAW-20).
    ///
    /// TiKV's checksum request has no column family: it always covers `default`, so a
    /// handle with another column family is refused rather than answered for the wrong
    /// data (client-go silently ignores its column-family option here). Unlike client-go,
    /// an `error` message in a region's answer fails the call instead of being dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] for an inverted range or a non-default column
    /// family.
    pub async fn checksum(&self, range: impl Into<BoundRange>) -> Result<Checksum> {
        if self.cf != ColumnFamily::Default {
            return Err(invalid(format!(
                "checksum covers the default column family only, not `{}`",
                self.cf
            )));
        }
        let Some((start, end)) = range.into().half_open()? else {
            return Ok(Checksum::default());
        };
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

    /// Writes `key` = `value` (RAW-12; client-go's `Put`). An empty value is a value.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::KeyTooLarge`] / [`ErrorDetail::EntryTooLarge`] for a key or pair
    /// TiKV would reject.
    pub async fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        self.put_inner(key.into(), value.into(), 0).await
    }

    /// Writes `key` = `value` expiring after `ttl_secs` seconds; 0 means never (RAW-12).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put), and [`ErrorDetail::InvalidArgument`] for a non-zero TTL
    /// without TTL support ([`ClientBuilder::enable_ttl`]).
    pub async fn put_with_ttl(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl_secs: u64,
    ) -> Result<()> {
        if ttl_secs > 0 {
            self.check_ttl("put with ttl")?;
        }
        self.put_inner(key.into(), value.into(), ttl_secs).await
    }

    async fn put_inner(&self, key: Vec<u8>, value: Vec<u8>, ttl: u64) -> Result<()> {
        self.check_entry(&key, Some(&value))?;
        let req = self.request(
            kvrpcpb::RawPutRequest {
                key,
                value,
                cf: self.cf_name()?,
                ttl,
                for_cas: self.atomic,
                ..Default::default()
            },
            false,
        );
        self.send(req).await.map(drop)
    }

    /// Writes every pair, split by region and into batches of about 16 KiB sent in
    /// parallel (RAW-14, RAW-24). With duplicate keys the last pair wins. Empty input makes
    /// no RPC.
    ///
    /// # Errors
    ///
    /// Every pair is checked before anything is sent (key and entry size). A failing
    /// batch fails the call; when other batches were already written the error carries a
    /// [`PartialWrite`].
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

    /// Like [`batch_put`](Self::batch_put) with one TTL (seconds, 0 = never) per pair
    /// (client-go's `BatchPutWithTTL`).
    ///
    /// # Errors
    ///
    /// As [`batch_put`](Self::batch_put); [`ErrorDetail::InvalidArgument`] when `ttls` and
    /// `pairs` differ in length, or for a non-zero TTL without TTL support.
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
            // RAW-14: client-go's "the len of ttls is not equal to the len of values".
            return Err(invalid(format!(
                "batch put with ttl: {} ttls for {} pairs",
                ttls.len(),
                pairs.len()
            )));
        }
        if ttls.iter().any(|&t| t > 0) {
            self.check_ttl("batch put with ttl")?;
        }
        self.batch_put_inner(pairs, ttls).await
    }

    async fn batch_put_inner(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>, ttls: Vec<u64>) -> Result<()> {
        let cf = self.cf_name()?;
        for (k, v) in &pairs {
            self.check_entry(k, Some(v))?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        // RAW-24: with duplicate keys the last value (and TTL) wins for every occurrence.
        let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(pairs.len());
        for (i, (k, _)) in pairs.iter().enumerate() {
            last.insert(k.as_slice(), i);
        }
        let mut kv = Vec::with_capacity(pairs.len());
        let mut per_key_ttl = Vec::with_capacity(ttls.len());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let j = last.get(k.as_slice()).copied().unwrap_or(i);
            let value = if j == i {
                v.clone()
            } else {
                pairs.get(j).map_or_else(|| v.clone(), |p| p.1.clone())
            };
            kv.push(kvrpcpb::KvPair {
                key: k.clone(),
                value,
                ..Default::default()
            });
            if !ttls.is_empty() {
                per_key_ttl.push(ttls.get(j).copied().unwrap_or(0));
            }
        }
        // RAW-25: the deprecated single `ttl` carries the first key's TTL; `shard` keeps
        // the per-key list aligned when it cuts the batch.
        let req = self.request(
            kvrpcpb::RawBatchPutRequest {
                ttl: per_key_ttl.first().copied().unwrap_or(0),
                pairs: kv,
                cf,
                for_cas: self.atomic,
                ttls: per_key_ttl,
                ..Default::default()
            },
            true,
        );
        self.send_write("batch put", req).await
    }

    /// Deletes `key`; deleting a missing key succeeds (RAW-15).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::KeyTooLarge`] for a key TiKV would reject.
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<()> {
        let key = key.into();
        self.check_entry(&key, None)?;
        let req = self.request(
            kvrpcpb::RawDeleteRequest {
                key,
                cf: self.cf_name()?,
                for_cas: self.atomic,
                ..Default::default()
            },
            true,
        );
        self.send(req).await.map(drop)
    }

    /// Deletes every key, split by region and batches of 513 sent in parallel (RAW-16).
    /// Empty input makes no RPC.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete), checked for every key first; a failing batch fails
    /// the call, with a [`PartialWrite`] when other batches were applied.
    pub async fn batch_delete<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<()> {
        let keys: Vec<Vec<u8>> = keys.into_iter().map(Into::into).collect();
        let cf = self.cf_name()?;
        for k in &keys {
            self.check_entry(k, None)?;
        }
        if keys.is_empty() {
            return Ok(());
        }
        let req = self.request(
            kvrpcpb::RawBatchDeleteRequest {
                keys,
                cf,
                for_cas: self.atomic,
                ..Default::default()
            },
            true,
        );
        self.send_write("batch delete", req).await
    }

    /// Deletes every key of `range`, region by region in key order (RAW-17). An empty range
    /// makes no RPC; `..` empties the column family (of the keyspace, under API V2).
    /// Atomic mode does not apply (TiKV's delete-range has no CAS path).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] for an inverted range; a failing region fails the
    /// call, with a [`PartialWrite`] when earlier regions were already cleared.
    pub async fn delete_range(&self, range: impl Into<BoundRange>) -> Result<()> {
        let cf = self.cf_name()?;
        let Some((start, end)) = range.into().half_open()? else {
            return Ok(());
        };
        let req = self.request(
            kvrpcpb::RawDeleteRangeRequest {
                start_key: start,
                end_key: end,
                cf,
                ..Default::default()
            },
            true,
        );
        self.send_write("delete range", req).await
    }

    /// Sets `key` to `new` if its current value is `previous` (`None` = the key must not
    /// exist; `Some(vec![])` = it holds an empty value). Returns the value before the call
    /// and whether the swap happened; the previous value is reported either way (RAW-21).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when this handle is not in atomic mode (see
    /// [`with_atomic_for_cas`](Self::with_atomic_for_cas)); the size errors of
    /// [`put`](Self::put). No RPC is made in either case.
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Vec<u8>>,
        previous: Option<Vec<u8>>,
        new: impl Into<Vec<u8>>,
    ) -> Result<(Option<Vec<u8>>, bool)> {
        if !self.atomic {
            return Err(invalid(
                "compare and swap needs atomic mode (`with_atomic_for_cas(true)`; client-go: \
                 using CompareAndSwap without enable atomic mode)"
                    .into(),
            ));
        }
        let key = key.into();
        let new = new.into();
        self.check_entry(&key, Some(&new))?;
        let req = self.request(
            kvrpcpb::RawCasRequest {
                key,
                value: new,
                previous_not_exist: previous.is_none(),
                previous_value: previous.unwrap_or_default(),
                cf: self.cf_name()?,
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

fn invalid(msg: String) -> Error {
    ErrorDetail::InvalidArgument(msg).into()
}

#[cfg(all(test, feature = "mock"))]
mod tests;
