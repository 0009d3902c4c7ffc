//! The PD client: cluster id, members and leader failover, TSO batching, and every `pdpb`
//! call the client makes (PD-1 .. PD-24, TSO-1 .. TSO-8 of
//! `shared/spec/pd-oracle-rawkv.md`).
//!
//! - [`PdClient`]: the connection to a PD cluster (client-go's `pd.Client` as built by
//!   `tikv.NewPDClient`). A cheap handle; it owns the member-refresh loop and the TSO
//!   dispatcher, which stop when the last handle is dropped or on [`PdClient::close`].
//! - [`RegionMetaClient`]: the region/store part of PD the region cache needs, so the cache
//!   can run against [`PdClient`], a [`CodecPdClient`] or an in-process stand-in.
//! - [`CodecPdClient`]: encodes lookup keys and decodes region boundaries for the API
//!   mode in use (client-go's `locate.CodecPDClient`, KS-18).
//!
//! Every unary request goes through a small tower pipeline ([`layer`]): a per-call
//! deadline in front of a tonic `Channel` to the current leader, and the forwarding header
//! when the request goes through a follower. Retries (with a `pdRPC` backoff and a
//! blocking member refresh on connection errors) wrap that pipeline.
//!
//! Two more background loops watch the cluster (`health`): a gRPC health probe of every
//! member each second, which lets requests be forwarded through a follower while the
//! leader is unreachable ([`PdClientOptions::enable_forwarding`], PD-5) and lets region
//! reads go to healthy followers ([`PdClientOptions::enable_follower_handle`], PD-6), and a
//! service-mode check every 3 s, which fails timestamp calls with [`TsoServiceUnsupported`]
//! when PD hands TSO to its microservice (PD-7). The first service-mode check is part of
//! [`PdClient::connect`], which fails when it never succeeds, as the PD client's creation
//! does.

use std::sync::Arc;

use futures_core::future::BoxFuture;
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::{metapb, pdpb};

mod client;
mod codec;
mod health;
pub mod layer;
mod tso;

pub use client::{PdClient, PdClientOptions};
pub use codec::{CodecPdClient, KeyMode, get_keyspace_id, get_keyspace_meta};
pub use health::{TsoServiceUnsupported, is_tso_service_unsupported};

/// A region as PD describes it (the body of `GetRegionResponse` / `pdpb.Region`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionInfo {
    /// The region's meta: id, range, epoch and peers.
    pub region: metapb::Region,
    /// The leader peer PD knows, if any.
    pub leader: Option<metapb::Peer>,
    /// Peers PD reports down.
    pub down_peers: Vec<pdpb::PeerStats>,
    /// Peers PD reports pending.
    pub pending_peers: Vec<metapb::Peer>,
    /// The region's buckets when asked for.
    pub buckets: Option<metapb::Buckets>,
}

impl RegionInfo {
    /// A region with a leader (PD-12, RC-29: `leader != nil && leader.id != 0`).
    pub fn has_leader(&self) -> bool {
        self.leader.as_ref().is_some_and(|l| l.id != 0)
    }

    fn from_pd_region(r: pdpb::Region) -> Option<RegionInfo> {
        Some(RegionInfo {
            region: r.region?,
            leader: r.leader,
            down_peers: r.down_peers,
            pending_peers: r.pending_peers,
            buckets: r.buckets,
        })
    }
}

/// Routing and content options of region and store requests (PD-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionOptions {
    /// May be answered by a PD follower or the router service (`WithAllowFollowerHandle`,
    /// `WithAllowRouterServiceHandle`). [`PdClient`] honours it for region reads when
    /// [`PdClientOptions::enable_follower_handle`] is on (falling back to the leader in the
    /// same call when the follower cannot answer) and ignores it otherwise and for store
    /// reads; this client has no router-service support. The mock PD refuses such reads
    /// while its `mustLeader` switch is on.
    pub allow_follower: bool,
    /// Ask PD for buckets (`WithBuckets`).
    pub need_buckets: bool,
    /// Batch scans must cover every range (`WithOutputMustContainAllKeyRange`).
    pub contain_all_key_range: bool,
    /// Leave tombstone stores out (`WithExcludeTombstone`).
    pub exclude_tombstone: bool,
}

/// A key range of a batch scan (`pdpb.KeyRange`); an empty end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct KeyRange {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end; empty = +∞.
    pub end: Vec<u8>,
}

impl KeyRange {
    /// A range `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> KeyRange {
        KeyRange {
            start: start.into(),
            end: end.into(),
        }
    }
}

/// The region and store metadata calls of PD that the region and store caches make
/// (the region part of client-go's `pd.Client`).
///
/// Every future is `Send + 'static`. A `None` answer means PD has no such region/store.
pub trait RegionMetaClient: Send + Sync + 'static {
    /// `PD/GetRegion`: the region containing `key`.
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>>;
    /// `PD/GetPrevRegion`: the region ending at `key`.
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>>;
    /// `PD/GetRegionByID`.
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>>;
    /// `PD/ScanRegions` (deprecated by PD, still the fallback): up to `limit` regions
    /// from `start` (0 = unlimited).
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>>;
    /// `PD/BatchScanRegions`.
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>>;
    /// `PD/GetStore`. `Ok(None)` when PD has no such store.
    fn get_store(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>>;
    /// `PD/GetAllStores`.
    fn get_all_stores(&self, opts: RegionOptions)
    -> BoxFuture<'static, Result<Vec<metapb::Store>>>;
    /// The cluster id (0 when unknown).
    fn cluster_id(&self) -> u64;
}

impl<T: RegionMetaClient + ?Sized> RegionMetaClient for Arc<T> {
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        (**self).get_region(key, opts)
    }
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        (**self).get_prev_region(key, opts)
    }
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        (**self).get_region_by_id(id, opts)
    }
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        (**self).scan_regions(start, end, limit, opts)
    }
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        (**self).batch_scan_regions(ranges, limit, opts)
    }
    fn get_store(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>> {
        (**self).get_store(id, opts)
    }
    fn get_all_stores(
        &self,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<metapb::Store>>> {
        (**self).get_all_stores(opts)
    }
    fn cluster_id(&self) -> u64 {
        (**self).cluster_id()
    }
}

/// A region boundary PD sent could not be decoded (client-go's `decodeError`, KS-20).
///
/// Carried as the source of an [`ErrorDetail::Malformed`] error; the region cache fails a
/// load at once on it instead of backing off ([`is_decode_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to decode region range key: {0}")]
pub struct DecodeError(pub String);

/// Whether `err` is a [`DecodeError`] (client-go's `IsDecodeError`).
pub fn is_decode_error(err: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if e.is::<DecodeError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

pub(crate) fn decode_error(msg: impl Into<String>) -> Error {
    let e = DecodeError(msg.into());
    Error::new(ErrorDetail::Malformed(e.to_string())).with_source(e)
}

/// The PD error type of `err`, if it is a PD header error.
pub fn pd_error_type(err: &Error) -> Option<pdpb::ErrorType> {
    match err.detail() {
        ErrorDetail::Pd(e) => Some(e.r#type()),
        _ => None,
    }
}

/// Whether a `GetStore` error means "the store is gone" (client-go's
/// `isStoreNotFoundError`, PD-14).
pub fn is_store_not_found(err: &Error) -> bool {
    let s = err.to_string();
    s.contains("invalid store ID") && s.contains("not found")
}

#[cfg(test)]
mod tests;
