//! The PD client proper: connection, members, leader failover and unary calls.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_layers::backoff::{BackoffKind, Backoffer};
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::keyspacepb::keyspace_client::KeyspaceClient;
use tikv_proto::pdpb::pd_client::PdClient as PdGrpc;
use tikv_proto::{keyspacepb, metapb, pdpb};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::transport::{ClientTlsConfig, Endpoint};

use super::layer::{PdChannel, pd_channel};
use super::tso::{self, TsoCall};
use super::{KeyRange, RegionInfo, RegionMetaClient, RegionOptions};
use crate::oracle::{TimestampSource, compose_ts};

/// How often members are refreshed without a trigger (PD-4, 60 s).
const MEMBER_UPDATE_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of one `GetMembers` during a refresh (PD-4, 1 s).
const MEMBER_UPDATE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between init attempts (PD-3, 1 s).
const INIT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

static CALLER_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn caller_id() -> String {
    CALLER_ID
        .get_or_init(|| format!("tikv-rs-{}", std::process::id()))
        .clone()
}

/// Options of [`PdClient::connect`] (the PD part of client-go's `tikv.NewPDClient`, PD-20).
#[derive(Debug, Clone)]
pub struct PdClientOptions {
    /// Per-call timeout and TSO batch deadline (`PDClient.PDServerTimeout`, default 3 s).
    pub timeout: Duration,
    /// TLS for PD connections; `None` = plaintext.
    pub tls: Option<ClientTlsConfig>,
    /// `RequestHeader.caller_component` (PD-8); client-go uses `client-go`.
    pub caller_component: String,
    /// HTTP/2 keepalive interval (`TiKVClient.GrpcKeepAliveTime`).
    pub keepalive_time: Option<Duration>,
    /// HTTP/2 keepalive timeout (`TiKVClient.GrpcKeepAliveTimeout`).
    pub keepalive_timeout: Option<Duration>,
    /// How many times creation walks the URLs before failing (PD-3).
    pub max_init_retries: usize,
    /// The most callers one TSO request carries (client-go's `defaultMaxTSOBatchSize`).
    pub max_tso_batch: usize,
    /// Pause between attempts to (re)create the TSO stream.
    pub tso_retry_interval: Duration,
}

impl Default for PdClientOptions {
    fn default() -> Self {
        PdClientOptions {
            timeout: Duration::from_secs(3),
            tls: None,
            caller_component: "client-go".to_owned(),
            keepalive_time: None,
            keepalive_timeout: None,
            max_init_retries: 3,
            max_tso_batch: 10_000,
            tso_retry_interval: Duration::from_millis(50),
        }
    }
}

impl PdClientOptions {
    /// Options from a [`Config`](crate::config::Config): PD timeout, keepalive and TLS.
    ///
    /// PD uses TLS only when a client certificate or key is configured (PD-24); the files
    /// are read with `tokio::fs`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn from_config(config: &crate::config::Config) -> Result<PdClientOptions> {
        let sec = &config.security;
        let tls = if sec.cluster_ssl_cert.is_some() || sec.cluster_ssl_key.is_some() {
            sec.to_tls_config().await?
        } else {
            None
        };
        Ok(PdClientOptions {
            timeout: config.pd_client.pd_server_timeout,
            tls,
            keepalive_time: Some(config.tikv_client.grpc_keepalive_time),
            keepalive_timeout: Some(config.tikv_client.grpc_keepalive_timeout),
            ..PdClientOptions::default()
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Members {
    urls: Vec<String>,
    leader: String,
    followers: Vec<String>,
}

pub(super) struct Inner {
    pub(super) opts: PdClientOptions,
    cluster_id: u64,
    members: RwLock<Members>,
    channels: Mutex<HashMap<String, PdChannel>>,
    check_tx: mpsc::Sender<()>,
    update_lock: tokio::sync::Mutex<()>,
    pub(super) leader_version: watch::Sender<u64>,
    tso_tx: mpsc::Sender<TsoCall>,
    pub(super) cancel: CancellationToken,
    /// TSO requests sent (one per batch), for tests and benchmarks.
    pub(super) tso_rpcs: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A client of a PD cluster (client-go's `pd.Client`, built like `tikv.NewPDClient`).
///
/// Cheap to clone. It discovers the cluster id and the leader at creation, follows leader
/// changes (a refresh every 60 s, and at once after a connection error), retries unary
/// calls on connection errors with the `pdRPC` backoff, and batches concurrent timestamp
/// requests onto one TSO stream. Its background tasks end on [`close`](Self::close) or
/// when the last handle is dropped.
#[derive(Clone)]
pub struct PdClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdClient")
            .field("cluster_id", &self.inner.cluster_id)
            .field("leader", &self.leader_url())
            .finish_non_exhaustive()
    }
}

fn normalize_url(url: &str, tls: bool) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.trim_end_matches('/').to_owned()
    } else if tls {
        format!("https://{}", url.trim_end_matches('/'))
    } else {
        format!("http://{}", url.trim_end_matches('/'))
    }
}

fn make_channel(url: &str, opts: &PdClientOptions) -> Result<PdChannel> {
    let transport = |e: tonic::transport::Error| {
        Error::new(ErrorDetail::Transport {
            addr: url.to_owned(),
            message: e.to_string(),
        })
    };
    let mut ep = Endpoint::from_shared(url.to_owned())
        .map_err(transport)?
        .connect_timeout(opts.timeout)
        .tcp_nodelay(true);
    if let Some(t) = opts.keepalive_time {
        ep = ep.http2_keep_alive_interval(t).keep_alive_while_idle(true);
    }
    if let Some(t) = opts.keepalive_timeout {
        ep = ep.keep_alive_timeout(t);
    }
    if let Some(tls) = &opts.tls {
        ep = ep.tls_config(tls.clone()).map_err(transport)?;
    }
    Ok(pd_channel(ep.connect_lazy(), opts.timeout))
}

/// Maps a gRPC failure of a PD call to the client's error.
pub(super) fn status_error(status: tonic::Status, addr: &str) -> Error {
    let msg = status.message().to_owned();
    if msg.contains("deadline") && msg.contains("elapsed") {
        return Error::new(ErrorDetail::PdServerTimeout(format!("{addr}: {msg}")));
    }
    match status.code() {
        tonic::Code::Unavailable => Error::new(ErrorDetail::Transport {
            addr: addr.to_owned(),
            message: msg,
        }),
        tonic::Code::DeadlineExceeded => {
            Error::new(ErrorDetail::PdServerTimeout(format!("{addr}: {msg}")))
        }
        _ => status.into(),
    }
}

/// Whether a failed call may succeed on another attempt, possibly on a new leader.
fn is_retryable(err: &Error) -> bool {
    match err.detail() {
        ErrorDetail::Transport { .. } | ErrorDetail::PdServerTimeout(_) => true,
        ErrorDetail::Grpc(s) => matches!(
            s.code(),
            tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted
        ),
        _ => false,
    }
}

/// A `pdpb` response with a header.
pub(super) trait HasHeader {
    fn header(&self) -> Option<&pdpb::ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),* $(,)?) => {$(
        impl HasHeader for $t {
            fn header(&self) -> Option<&pdpb::ResponseHeader> { self.header.as_ref() }
        }
    )*};
}

has_header!(
    pdpb::GetMembersResponse,
    pdpb::GetClusterInfoResponse,
    pdpb::TsoResponse,
    pdpb::GetMinTsResponse,
    pdpb::SetExternalTimestampResponse,
    pdpb::GetExternalTimestampResponse,
    pdpb::GetStoreResponse,
    pdpb::GetAllStoresResponse,
    pdpb::GetRegionResponse,
    pdpb::ScanRegionsResponse,
    pdpb::BatchScanRegionsResponse,
    pdpb::ScatterRegionResponse,
    pdpb::GetOperatorResponse,
    pdpb::SplitRegionsResponse,
    pdpb::UpdateGcSafePointResponse,
    pdpb::UpdateServiceGcSafePointResponse,
    pdpb::AdvanceTxnSafePointResponse,
    pdpb::SetGcBarrierResponse,
    pdpb::DeleteGcBarrierResponse,
    pdpb::GetGcStateResponse,
    keyspacepb::LoadKeyspaceResponse,
);

/// Fails on a header error or a foreign cluster id (PD-8).
pub(super) fn check_header(h: Option<&pdpb::ResponseHeader>, cluster_id: u64) -> Result<()> {
    let Some(h) = h else { return Ok(()) };
    if cluster_id != 0 && h.cluster_id != 0 && h.cluster_id != cluster_id {
        return Err(Error::new(ErrorDetail::MismatchClusterId {
            expected: cluster_id,
            got: h.cluster_id,
        }));
    }
    if let Some(e) = &h.error
        && e.r#type() != pdpb::ErrorType::Ok
    {
        return Err(Error::new(ErrorDetail::Pd(Box::new(e.clone()))));
    }
    Ok(())
}

fn pick_leader_url(leader: &pdpb::Member, tls: bool) -> Option<String> {
    let scheme = if tls { "https://" } else { "http://" };
    leader
        .client_urls
        .iter()
        .find(|u| u.starts_with(scheme))
        .or_else(|| leader.client_urls.first())
        .map(|u| normalize_url(u, tls))
}

async fn get_members(
    channel: PdChannel,
    url: &str,
    timeout: Duration,
) -> Result<pdpb::GetMembersResponse> {
    let mut client = PdGrpc::new(channel);
    let req = pdpb::GetMembersRequest {
        header: Some(pdpb::RequestHeader::default()),
    };
    match tokio::time::timeout(timeout, client.get_members(req)).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(status_error(status, url)),
        Err(_) => Err(Error::new(ErrorDetail::PdServerTimeout(format!(
            "{url}: get members timed out"
        )))),
    }
}

impl PdClient {
    /// Connects to the PD cluster at `endpoints` (`host:port` or URLs): adopts the cluster
    /// id, finds the leader and starts the member loop and the TSO dispatcher (PD-3, PD-4).
    ///
    /// Fails when no endpoint answers after `max_init_retries` rounds, or when two
    /// endpoints report different cluster ids ([`ErrorDetail::MismatchClusterId`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is left running if the future is dropped.
    pub async fn connect(endpoints: &[String], opts: PdClientOptions) -> Result<PdClient> {
        let tls = opts.tls.is_some();
        let urls: Vec<String> = endpoints.iter().map(|u| normalize_url(u, tls)).collect();
        if urls.is_empty() {
            return Err(Error::new(ErrorDetail::InvalidArgument(
                "no PD endpoints".into(),
            )));
        }
        let mut channels = HashMap::new();
        for u in &urls {
            channels.insert(u.clone(), make_channel(u, &opts)?);
        }
        let mut last_err = None;
        let mut cluster_id = 0;
        let mut first_answer = None;
        for attempt in 0..opts.max_init_retries.max(1) {
            if attempt > 0 {
                tokio::time::sleep(INIT_RETRY_INTERVAL).await;
            }
            for u in &urls {
                let ch = channels[u].clone();
                match get_members(ch, u, opts.timeout).await {
                    Ok(resp) => {
                        let id = resp.header.as_ref().map_or(0, |h| h.cluster_id);
                        if id == 0 {
                            continue;
                        }
                        if cluster_id == 0 {
                            cluster_id = id;
                            first_answer = Some(resp);
                        } else if id != cluster_id {
                            return Err(Error::new(ErrorDetail::MismatchClusterId {
                                expected: cluster_id,
                                got: id,
                            }));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(url = %u, error = %e, "get cluster id failed");
                        last_err = Some(e);
                    }
                }
            }
            if cluster_id != 0 {
                break;
            }
        }
        if cluster_id == 0 {
            return Err(last_err.unwrap_or_else(|| {
                Error::new(ErrorDetail::PdServerTimeout("no PD answered".into()))
            }));
        }
        let (check_tx, check_rx) = mpsc::channel(1);
        let (tso_tx, tso_rx) = mpsc::channel(opts.max_tso_batch.max(1) * 2);
        let (leader_version, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            opts,
            cluster_id,
            members: RwLock::new(Members {
                urls: urls.clone(),
                ..Members::default()
            }),
            channels: Mutex::new(channels),
            check_tx,
            update_lock: tokio::sync::Mutex::new(()),
            leader_version,
            tso_tx,
            cancel: CancellationToken::new(),
            tso_rpcs: AtomicU64::new(0),
        });
        let client = PdClient { inner };
        let adopted = match first_answer {
            Some(resp) => client.adopt_members(&resp),
            None => false,
        };
        if !adopted {
            client.update_members().await?;
        }
        let weak = Arc::downgrade(&client.inner);
        tokio::spawn(member_loop(
            weak.clone(),
            client.inner.cancel.clone(),
            check_rx,
        ));
        tokio::spawn(tso::dispatcher(weak, client.inner.cancel.clone(), tso_rx));
        Ok(client)
    }

    /// The adopted cluster id (client-go's `GetClusterID`).
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The URL of the current leader.
    pub fn leader_url(&self) -> String {
        self.read_members().leader.clone()
    }

    /// The URLs of the known members, sorted.
    pub fn member_urls(&self) -> Vec<String> {
        self.read_members().urls.clone()
    }

    /// The URLs of the followers, as of the last member refresh.
    pub fn follower_urls(&self) -> Vec<String> {
        self.read_members().followers.clone()
    }

    /// How many TSO requests (batches) this client has sent.
    pub fn tso_rpc_count(&self) -> u64 {
        self.inner.tso_rpcs.load(Ordering::Relaxed)
    }

    /// Stops the background tasks; waiting TSO callers fail with
    /// [`ErrorDetail::ShuttingDown`]. Idempotent (client-go's `Close`).
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    fn read_members(&self) -> std::sync::RwLockReadGuard<'_, Members> {
        self.inner.members.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A `RequestHeader` for this client (PD-8).
    pub fn header(&self) -> pdpb::RequestHeader {
        header(&self.inner)
    }

    /// Asks the member loop for a refresh without waiting (client-go's
    /// `ScheduleCheckMemberChanged`, coalesced).
    pub fn schedule_check_members(&self) {
        let _ = self.inner.check_tx.try_send(());
    }

    /// Refreshes members now (client-go's `updateMember`): the first member whose answer
    /// has our cluster id and a leader with a client URL wins.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn update_members(&self) -> Result<()> {
        update_members(&self.inner).await
    }

    fn adopt_members(&self, resp: &pdpb::GetMembersResponse) -> bool {
        adopt_members(&self.inner, resp)
    }

    /// Runs one unary call against the leader with retries on connection errors: each
    /// failure refreshes members (blocking) and backs off `pdRPC` within a budget of the
    /// client timeout.
    async fn unary<Resp, F, Fut>(&self, name: &'static str, f: F) -> Result<Resp>
    where
        Resp: HasHeader,
        F: Fn(PdGrpc<PdChannel>, pdpb::RequestHeader) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let budget = u64::try_from(self.inner.opts.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut bo = Backoffer::new(budget);
        loop {
            let (url, channel) = leader_channel(&self.inner)?;
            let res = f(PdGrpc::new(channel), self.header()).await;
            let err = match res {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    check_header(resp.header(), self.inner.cluster_id)?;
                    return Ok(resp);
                }
                Err(status) => status_error(status, &url),
            };
            if !is_retryable(&err) {
                return Err(err);
            }
            tracing::warn!(call = name, url = %url, error = %err, "pd call failed, retrying");
            if let Err(e) = self.update_members().await {
                tracing::warn!(error = %e, "pd member refresh failed");
            }
            bo.backoff(BackoffKind::PdRpc, err).await?;
        }
    }

    /// A fresh timestamp from the TSO (client-go's `GetTS`), batched with concurrent
    /// callers onto one stream request (TSO-5).
    ///
    /// Fails with a typed error when the stream breaks, PD answers with an error or the
    /// batch deadline (the client timeout) passes; never waits forever.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped caller's timestamp is simply not delivered.
    pub async fn get_ts(&self) -> Result<u64> {
        tso::get_ts(&self.inner.tso_tx).await
    }

    /// `GetMinTS` (TSO-8): in PD service mode there is one timeline, so this is a fresh
    /// [`get_ts`](Self::get_ts).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_min_ts(&self) -> Result<u64> {
        self.get_ts().await
    }

    /// `PD/SetExternalTimestamp` (PD-17).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the update may or may not have been applied.
    pub async fn set_external_timestamp(&self, ts: u64) -> Result<()> {
        self.unary("SetExternalTimestamp", |mut c, header| async move {
            c.set_external_timestamp(pdpb::SetExternalTimestampRequest {
                header: Some(header),
                timestamp: ts,
            })
            .await
        })
        .await
        .map(|_| ())
    }

    /// `PD/GetExternalTimestamp` (PD-17); 0 when unset.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_external_timestamp(&self) -> Result<u64> {
        self.unary("GetExternalTimestamp", |mut c, header| async move {
            c.get_external_timestamp(pdpb::GetExternalTimestampRequest {
                header: Some(header),
            })
            .await
        })
        .await
        .map(|r| r.timestamp)
    }

    /// `PD/GetClusterInfo`: the service modes PD reports (PD-7).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_cluster_info(&self) -> Result<pdpb::GetClusterInfoResponse> {
        self.unary("GetClusterInfo", |mut c, _header| async move {
            c.get_cluster_info(pdpb::GetClusterInfoRequest::default())
                .await
        })
        .await
    }

    /// `PD/GetRegion` (client-go's `GetRegion`): the region containing `key`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_region(&self, key: &[u8], need_buckets: bool) -> Result<Option<RegionInfo>> {
        let key = key.to_vec();
        let resp = self
            .unary("GetRegion", |mut c, header| {
                let key = key.clone();
                async move {
                    c.get_region(pdpb::GetRegionRequest {
                        header: Some(header),
                        region_key: key,
                        need_buckets,
                    })
                    .await
                }
            })
            .await;
        region_response(resp)
    }

    /// `PD/GetPrevRegion`: the region just before the one containing `key`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_prev_region(
        &self,
        key: &[u8],
        need_buckets: bool,
    ) -> Result<Option<RegionInfo>> {
        let key = key.to_vec();
        let resp = self
            .unary("GetPrevRegion", |mut c, header| {
                let key = key.clone();
                async move {
                    c.get_prev_region(pdpb::GetRegionRequest {
                        header: Some(header),
                        region_key: key,
                        need_buckets,
                    })
                    .await
                }
            })
            .await;
        region_response(resp)
    }

    /// `PD/GetRegionByID`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_region_by_id(
        &self,
        id: u64,
        need_buckets: bool,
    ) -> Result<Option<RegionInfo>> {
        let resp = self
            .unary("GetRegionByID", |mut c, header| async move {
                c.get_region_by_id(pdpb::GetRegionByIdRequest {
                    header: Some(header),
                    region_id: id,
                    need_buckets,
                })
                .await
            })
            .await;
        region_response(resp)
    }

    /// `PD/ScanRegions`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn scan_regions(
        &self,
        start: &[u8],
        end: &[u8],
        limit: i32,
    ) -> Result<Vec<RegionInfo>> {
        let (start, end) = (start.to_vec(), end.to_vec());
        let resp = self
            .unary("ScanRegions", |mut c, header| {
                let (start, end) = (start.clone(), end.clone());
                async move {
                    c.scan_regions(pdpb::ScanRegionsRequest {
                        header: Some(header),
                        start_key: start,
                        limit,
                        end_key: end,
                    })
                    .await
                }
            })
            .await?;
        if !resp.regions.is_empty() {
            return Ok(resp
                .regions
                .into_iter()
                .filter_map(RegionInfo::from_pd_region)
                .collect());
        }
        // Old PD versions answer with the parallel lists only.
        let mut leaders = resp.leaders.into_iter();
        Ok(resp
            .region_metas
            .into_iter()
            .map(|region| RegionInfo {
                region,
                leader: leaders.next().filter(|l| l.id != 0),
                ..RegionInfo::default()
            })
            .collect())
    }

    /// `PD/BatchScanRegions`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn batch_scan_regions(
        &self,
        ranges: &[KeyRange],
        limit: i32,
        need_buckets: bool,
        contain_all_key_range: bool,
    ) -> Result<Vec<RegionInfo>> {
        let ranges: Vec<pdpb::KeyRange> = ranges
            .iter()
            .map(|r| pdpb::KeyRange {
                start_key: r.start.clone(),
                end_key: r.end.clone(),
            })
            .collect();
        let resp = self
            .unary("BatchScanRegions", |mut c, header| {
                let ranges = ranges.clone();
                async move {
                    c.batch_scan_regions(pdpb::BatchScanRegionsRequest {
                        header: Some(header),
                        need_buckets,
                        ranges,
                        limit,
                        contain_all_key_range,
                    })
                    .await
                }
            })
            .await?;
        Ok(resp
            .regions
            .into_iter()
            .filter_map(RegionInfo::from_pd_region)
            .collect())
    }

    /// `PD/GetStore`. `Ok(None)` when PD returns no store.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_store(&self, id: u64) -> Result<Option<metapb::Store>> {
        self.unary("GetStore", |mut c, header| async move {
            c.get_store(pdpb::GetStoreRequest {
                header: Some(header),
                store_id: id,
            })
            .await
        })
        .await
        .map(|r| r.store)
    }

    /// `PD/GetAllStores`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_all_stores(&self, exclude_tombstone: bool) -> Result<Vec<metapb::Store>> {
        self.unary("GetAllStores", |mut c, header| async move {
            c.get_all_stores(pdpb::GetAllStoresRequest {
                header: Some(header),
                exclude_tombstone_stores: exclude_tombstone,
            })
            .await
        })
        .await
        .map(|r| r.stores)
    }

    /// `PD/ScatterRegion` for `ids` (client-go's `ScatterRegions`, PD-15).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: PD may have started scattering.
    pub async fn scatter_regions(
        &self,
        ids: &[u64],
        group: &str,
        retry_limit: u64,
    ) -> Result<pdpb::ScatterRegionResponse> {
        let ids = ids.to_vec();
        let group = group.to_owned();
        self.unary("ScatterRegion", |mut c, header| {
            let (ids, group) = (ids.clone(), group.clone());
            async move {
                c.scatter_region(pdpb::ScatterRegionRequest {
                    header: Some(header),
                    regions_id: ids,
                    group,
                    retry_limit,
                    ..Default::default()
                })
                .await
            }
        })
        .await
    }

    /// `PD/GetOperator` (PD-16).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_operator(&self, region_id: u64) -> Result<pdpb::GetOperatorResponse> {
        self.unary("GetOperator", |mut c, header| async move {
            c.get_operator(pdpb::GetOperatorRequest {
                header: Some(header),
                region_id,
            })
            .await
        })
        .await
    }

    /// `PD/SplitRegions` with already-encoded keys (PD-15).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn split_regions(
        &self,
        keys: &[Vec<u8>],
        retry_limit: u64,
    ) -> Result<pdpb::SplitRegionsResponse> {
        let keys = keys.to_vec();
        self.unary("SplitRegions", |mut c, header| {
            let keys = keys.clone();
            async move {
                c.split_regions(pdpb::SplitRegionsRequest {
                    header: Some(header),
                    split_keys: keys,
                    retry_limit,
                })
                .await
            }
        })
        .await
    }

    /// `PD/UpdateGCSafePoint` (deprecated by PD; still used by `KVStore.GC`).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn update_gc_safe_point(&self, safe_point: u64) -> Result<u64> {
        self.unary("UpdateGCSafePoint", |mut c, header| async move {
            c.update_gc_safe_point(pdpb::UpdateGcSafePointRequest {
                header: Some(header),
                safe_point,
            })
            .await
        })
        .await
        .map(|r| r.new_safe_point)
    }

    /// `PD/AdvanceTxnSafePoint` for a keyspace scope.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn advance_txn_safe_point(
        &self,
        req: pdpb::AdvanceTxnSafePointRequest,
    ) -> Result<pdpb::AdvanceTxnSafePointResponse> {
        self.unary("AdvanceTxnSafePoint", |mut c, header| {
            let mut req = req.clone();
            req.header = Some(header);
            async move { c.advance_txn_safe_point(req).await }
        })
        .await
    }

    /// `PD/GetGCState` for a keyspace scope.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_gc_state(
        &self,
        req: pdpb::GetGcStateRequest,
    ) -> Result<pdpb::GetGcStateResponse> {
        self.unary("GetGCState", |mut c, header| {
            let mut req = req.clone();
            req.header = Some(header);
            async move { c.get_gc_state(req).await }
        })
        .await
    }

    /// `PD/SetGCBarrier` pass-through (GC-3).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn set_gc_barrier(
        &self,
        req: pdpb::SetGcBarrierRequest,
    ) -> Result<pdpb::SetGcBarrierResponse> {
        self.unary("SetGCBarrier", |mut c, header| {
            let mut req = req.clone();
            req.header = Some(header);
            async move { c.set_gc_barrier(req).await }
        })
        .await
    }

    /// `PD/DeleteGCBarrier` pass-through (GC-3).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn delete_gc_barrier(
        &self,
        req: pdpb::DeleteGcBarrierRequest,
    ) -> Result<pdpb::DeleteGcBarrierResponse> {
        self.unary("DeleteGCBarrier", |mut c, header| {
            let mut req = req.clone();
            req.header = Some(header);
            async move { c.delete_gc_barrier(req).await }
        })
        .await
    }

    /// `PD/UpdateServiceGCSafePoint` pass-through (GC-3).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn update_service_gc_safe_point(
        &self,
        req: pdpb::UpdateServiceGcSafePointRequest,
    ) -> Result<pdpb::UpdateServiceGcSafePointResponse> {
        self.unary("UpdateServiceGCSafePoint", |mut c, header| {
            let mut req = req.clone();
            req.header = Some(header);
            async move { c.update_service_gc_safe_point(req).await }
        })
        .await
    }

    /// `keyspacepb.Keyspace/LoadKeyspace` by name (client-go's `LoadKeyspace`, KS-17).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn load_keyspace(&self, name: &str) -> Result<keyspacepb::KeyspaceMeta> {
        let name = name.to_owned();
        let budget = u64::try_from(self.inner.opts.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut bo = Backoffer::new(budget);
        loop {
            let (url, channel) = leader_channel(&self.inner)?;
            let mut c = KeyspaceClient::new(channel);
            let req = keyspacepb::LoadKeyspaceRequest {
                header: Some(self.header()),
                name: name.clone(),
                ..Default::default()
            };
            let err = match c.load_keyspace(req).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    check_header(resp.header(), self.inner.cluster_id)?;
                    return resp.keyspace.ok_or_else(|| {
                        Error::new(ErrorDetail::Pd(Box::new(pdpb::Error {
                            r#type: pdpb::ErrorType::EntryNotFound as i32,
                            message: format!("keyspace {name} not found"),
                        })))
                    });
                }
                Err(status) => status_error(status, &url),
            };
            if !is_retryable(&err) {
                return Err(err);
            }
            let _ = self.update_members().await;
            bo.backoff(BackoffKind::PdRpc, err).await?;
        }
    }
}

fn region_response(resp: Result<pdpb::GetRegionResponse>) -> Result<Option<RegionInfo>> {
    let resp = resp?;
    Ok(resp.region.map(|region| RegionInfo {
        region,
        leader: resp.leader.filter(|l| l.id != 0),
        down_peers: resp.down_peers,
        pending_peers: resp.pending_peers,
        buckets: resp.buckets,
    }))
}

fn header(inner: &Inner) -> pdpb::RequestHeader {
    pdpb::RequestHeader {
        cluster_id: inner.cluster_id,
        sender_id: 0,
        caller_id: caller_id(),
        caller_component: inner.opts.caller_component.clone(),
    }
}

pub(super) fn request_header(inner: &Inner) -> pdpb::RequestHeader {
    header(inner)
}

pub(super) fn cluster_id_of(inner: &Inner) -> u64 {
    inner.cluster_id
}

fn channel_for(inner: &Inner, url: &str) -> Result<PdChannel> {
    let mut chans = inner.channels.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = chans.get(url) {
        return Ok(c.clone());
    }
    let c = make_channel(url, &inner.opts)?;
    chans.insert(url.to_owned(), c.clone());
    Ok(c)
}

/// The leader's URL and channel.
pub(super) fn leader_channel(inner: &Inner) -> Result<(String, PdChannel)> {
    let leader = inner
        .members
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .leader
        .clone();
    if leader.is_empty() {
        return Err(Error::new(ErrorDetail::PdServerTimeout(
            "no PD leader known".into(),
        )));
    }
    let ch = channel_for(inner, &leader)?;
    Ok((leader, ch))
}

fn adopt_members(inner: &Inner, resp: &pdpb::GetMembersResponse) -> bool {
    let tls = inner.opts.tls.is_some();
    let id = resp.header.as_ref().map_or(0, |h| h.cluster_id);
    if id != inner.cluster_id {
        return false;
    }
    let Some(leader) = resp.leader.as_ref() else {
        return false;
    };
    let Some(leader_url) = pick_leader_url(leader, tls) else {
        return false;
    };
    let mut urls = BTreeSet::new();
    for m in &resp.members {
        for u in &m.client_urls {
            urls.insert(normalize_url(u, tls));
        }
    }
    urls.insert(leader_url.clone());
    let followers = resp
        .members
        .iter()
        .filter(|m| m.member_id != leader.member_id)
        .filter_map(|m| m.client_urls.first().map(|u| normalize_url(u, tls)))
        .collect();
    let changed = {
        let mut members = inner.members.write().unwrap_or_else(|e| e.into_inner());
        let changed = members.leader != leader_url;
        *members = Members {
            urls: urls.into_iter().collect(),
            leader: leader_url.clone(),
            followers,
        };
        changed
    };
    if changed {
        tracing::info!(leader = %leader_url, "switch PD leader");
        inner.leader_version.send_modify(|v| *v += 1);
    }
    true
}

pub(super) async fn update_members(inner: &Inner) -> Result<()> {
    let _serial = inner.update_lock.lock().await;
    let urls = inner
        .members
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .urls
        .clone();
    let mut last_err = None;
    for u in &urls {
        let ch = match channel_for(inner, u) {
            Ok(c) => c,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match get_members(ch, u, MEMBER_UPDATE_TIMEOUT).await {
            Ok(resp) => {
                if adopt_members(inner, &resp) {
                    return Ok(());
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        Error::new(ErrorDetail::PdServerTimeout(
            "no PD member reported a leader".into(),
        ))
    }))
}

async fn member_loop(
    weak: Weak<Inner>,
    cancel: CancellationToken,
    mut check_rx: mpsc::Receiver<()>,
) {
    loop {
        // All branches are cancel safe.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(MEMBER_UPDATE_INTERVAL) => {}
            msg = check_rx.recv() => if msg.is_none() { return },
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = update_members(&inner).await {
            tracing::warn!(error = %e, "update PD members failed");
        }
    }
}

pub(super) fn schedule_check(inner: &Inner) {
    let _ = inner.check_tx.try_send(());
}

// ===== trait impls =====

impl TimestampSource for PdClient {
    fn get_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let this = self.clone();
        Box::pin(async move { this.get_ts().await })
    }
    fn get_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let this = self.clone();
        Box::pin(async move { this.get_min_ts().await })
    }
    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>> {
        let this = self.clone();
        Box::pin(async move { this.set_external_timestamp(ts).await })
    }
    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        let this = self.clone();
        Box::pin(async move { this.get_external_timestamp().await })
    }
}

impl RegionMetaClient for PdClient {
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.get_region(&key, opts.need_buckets).await })
    }
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.get_prev_region(&key, opts.need_buckets).await })
    }
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.get_region_by_id(id, opts.need_buckets).await })
    }
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        _opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.scan_regions(&start, &end, limit).await })
    }
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move {
            this.batch_scan_regions(
                &ranges,
                limit,
                opts.need_buckets,
                opts.contain_all_key_range,
            )
            .await
        })
    }
    fn get_store(
        &self,
        id: u64,
        _opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>> {
        let this = self.clone();
        Box::pin(async move { this.get_store(id).await })
    }
    fn get_all_stores(
        &self,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<metapb::Store>>> {
        let this = self.clone();
        Box::pin(async move { this.get_all_stores(opts.exclude_tombstone).await })
    }
    fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }
}

/// Composes a `pdpb::Timestamp` (physical, logical) into a ts.
pub(super) fn compose(ts: &pdpb::Timestamp) -> u64 {
    compose_ts(ts.physical, ts.logical)
}
