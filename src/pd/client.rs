//! The PD client proper: connection, members, leader failover and unary calls.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
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

use super::health::{self, ApiKind, Availability, FOLLOWER_UNAVAILABLE_FOR};
use super::layer::{PdChannel, pd_channel};
use super::tso::{self, TsoCall};
use super::{KeyRange, RegionInfo, RegionMetaClient, RegionOptions};
use crate::oracle::TimestampSource;

/// How often members are refreshed without a trigger (PD-4, 60 s).
const MEMBER_UPDATE_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of one `GetMembers` during a refresh (PD-4, 1 s).
const MEMBER_UPDATE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between init attempts (PD-3, 1 s).
const INIT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often members are probed with the gRPC health service (PD-5, 1 s).
const MEMBER_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the service mode is asked for (PD-7, 3 s).
const SERVICE_MODE_UPDATE_INTERVAL: Duration = Duration::from_secs(3);

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
    /// Send requests through an available PD follower, which forwards them to the leader,
    /// while the leader fails its health probes (PD-5; client-go's
    /// `config.EnableForwarding`, passed as the PD client's `WithForwardingOption`).
    /// Default false.
    pub enable_forwarding: bool,
    /// Let PD followers answer region reads whose caller allows it
    /// ([`RegionOptions::allow_follower`]): `GetRegion`, `GetPrevRegion`, `GetRegionByID`,
    /// `ScanRegions` and `BatchScanRegions` then go round robin to the leader and the
    /// available followers, and a follower answers from its own, possibly stale, copy of
    /// the region table (PD-6). When the follower fails, or cannot serve the read
    /// (`REGION_NOT_FOUND`: its copy is not synced; such a follower is skipped for 10 s),
    /// the same call asks the leader, so the caller sees the leader's answer. Store reads
    /// always go to the leader.
    ///
    /// The PD client's `opt.EnableFollowerHandle` option (`opt.WithEnableFollowerHandle`),
    /// which TiDB sets from `pd_enable_follower_handle_region`; `tikv.NewPDClient` leaves it
    /// off. Default false: every region read goes to the leader.
    pub enable_follower_handle: bool,
    /// How often the leader and the followers are probed with the gRPC health service
    /// (PD-5; the PD client's `MemberHealthCheckInterval`, 1 s). A follower probe may take
    /// a third of it; the leader probe the client timeout.
    pub health_check_interval: Duration,
    /// How often the leader is asked for the service mode with `GetClusterInfo` (PD-7;
    /// the PD client's `serviceModeUpdateInterval`, 3 s).
    pub service_mode_interval: Duration,
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
            enable_forwarding: false,
            enable_follower_handle: false,
            health_check_interval: MEMBER_HEALTH_CHECK_INTERVAL,
            service_mode_interval: SERVICE_MODE_UPDATE_INTERVAL,
        }
    }
}

impl PdClientOptions {
    /// Options from a [`Config`](crate::config::Config): PD timeout, keepalive, TLS, the
    /// forwarding flag (`enable_forwarding`, PD-20) and follower-handled region reads
    /// (`pd_client.enable_follower_handle`).
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
            enable_forwarding: config.enable_forwarding,
            enable_follower_handle: config.pd_client.enable_follower_handle,
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
    /// Member health and forwarding exclusions (PD-5).
    availability: Mutex<Availability>,
    /// The last service mode PD reported, a `pdpb::ServiceMode` (PD-7).
    pub(super) service_mode: AtomicI32,
    /// The background tasks (member, TSO, health and service-mode loops).
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    pub(super) fn availability(&self) -> std::sync::MutexGuard<'_, Availability> {
        self.availability.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current leader URL (empty when unknown) and the follower URLs.
    pub(super) fn leader_and_followers(&self) -> (String, Vec<String>) {
        let m = self.members.read().unwrap_or_else(|e| e.into_inner());
        (m.leader.clone(), m.followers.clone())
    }

    pub(super) fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    fn service_mode(&self) -> pdpb::ServiceMode {
        pdpb::ServiceMode::try_from(self.service_mode.load(Ordering::Acquire))
            .unwrap_or(pdpb::ServiceMode::PdSvcMode)
    }
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
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            // As in the PD client's `getMembers`, an answer carrying a header error is a
            // failed call: it gives neither the cluster id (PD-3) nor the leader (PD-4).
            check_header(resp.header.as_ref(), 0)?;
            Ok(resp)
        }
        Ok(Err(status)) => Err(status_error(status, url)),
        Err(_) => Err(Error::new(ErrorDetail::PdServerTimeout(format!(
            "{url}: get members timed out"
        )))),
    }
}

impl PdClient {
    /// Connects to the PD cluster at `endpoints` (`host:port` or URLs): adopts the cluster
    /// id, finds the leader, learns the service mode and starts the member loop, the TSO
    /// dispatcher, the health loop and the service-mode loop (PD-3, PD-4, PD-5, PD-7).
    ///
    /// Fails when no endpoint answers after `max_init_retries` rounds, or when two
    /// endpoints report different cluster ids ([`ErrorDetail::MismatchClusterId`]).
    /// Like the PD client's `Init`, it also fails when the leader's `GetClusterInfo`
    /// (the first service-mode check) fails `max_init_retries` times, 1 s apart, with the
    /// last check's error: a gRPC error other than `Unimplemented` ([`ErrorDetail::Grpc`],
    /// [`ErrorDetail::Transport`]), a timeout ([`ErrorDetail::PdServerTimeout`]), a header
    /// error ([`ErrorDetail::Pd`]) or an answer without a service mode
    /// ([`ErrorDetail::Malformed`]). An old PD answering `Unimplemented` is PD mode.
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
            availability: Mutex::new(Availability::default()),
            service_mode: AtomicI32::new(pdpb::ServiceMode::PdSvcMode as i32),
            tasks: Mutex::new(Vec::new()),
        });
        let client = PdClient { inner };
        let adopted = match first_answer {
            Some(resp) => client.adopt_members(&resp),
            None => false,
        };
        if !adopted {
            client.update_members().await?;
        }
        // The service mode decides where timestamps come from, so learn it before the first
        // one is asked for (PD-7). As in the PD client's `Init`, the check is retried like
        // the other init steps and creation fails when it never succeeds; dropping the
        // half-built client here cancels everything it set up.
        health::init_service_mode(
            &client.inner,
            client.inner.opts.max_init_retries,
            INIT_RETRY_INTERVAL,
        )
        .await?;
        let weak = Arc::downgrade(&client.inner);
        let cancel = client.inner.cancel.clone();
        let tasks = vec![
            tokio::spawn(member_loop(weak.clone(), cancel.clone(), check_rx)),
            tokio::spawn(tso::dispatcher(weak.clone(), cancel.clone(), tso_rx)),
            tokio::spawn(health::health_loop(weak.clone(), cancel.clone())),
            tokio::spawn(health::service_mode_loop(weak, cancel)),
        ];
        *client.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
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

    /// Whether the member at `url` may serve requests: its last health probe succeeded and
    /// no `REGION_NOT_FOUND` answer, to a forwarded (PD-5) or a follower-handled (PD-6)
    /// region read, excludes it at the moment. Members never probed are available.
    pub fn member_available(&self, url: &str) -> bool {
        let now = tokio::time::Instant::now();
        let avail = self.inner.availability();
        [ApiKind::Forward, ApiKind::Universal]
            .into_iter()
            .all(|kind| avail.is_available(kind, url, now))
    }

    /// The service mode PD last reported (PD-7); PD mode until PD says otherwise.
    pub fn service_mode(&self) -> pdpb::ServiceMode {
        self.inner.service_mode()
    }

    /// Asks the leader for the service mode now and records it (PD-7), instead of waiting
    /// for the periodic check.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn refresh_service_mode(&self) -> Result<pdpb::ServiceMode> {
        health::check_service_mode(&self.inner).await
    }

    /// How many of the client's background tasks (member refresh, TSO dispatcher, health
    /// probing, service mode) are still running. Zero some time after
    /// [`close`](Self::close).
    pub fn running_background_tasks(&self) -> usize {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|t| !t.is_finished())
            .count()
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
    ///
    /// With forwarding on and the leader failing its health probes, the call goes through
    /// a follower (PD-5); a follower answering `REGION_NOT_FOUND` is excluded for 10 s and
    /// the call is tried once more at once on the next target.
    async fn unary<Resp, F, Fut>(&self, name: &'static str, f: F) -> Result<Resp>
    where
        Resp: HasHeader,
        F: Fn(PdGrpc<PdChannel>, pdpb::RequestHeader) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let budget = u64::try_from(self.inner.opts.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut bo = Backoffer::new(budget);
        let mut follower_retried = false;
        loop {
            let target = serving_target(&self.inner)?;
            let url = target.url;
            let res = f(PdGrpc::new(target.channel), self.header()).await;
            let err = match res {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    match check_header(resp.header(), self.inner.cluster_id) {
                        Ok(()) => return Ok(resp),
                        Err(e)
                            if target.via_follower
                                && !follower_retried
                                && is_region_not_found(&e) =>
                        {
                            tracing::info!(call = name, url = %url, "PD follower cannot serve the region query, skipping it for 10s");
                            self.inner.availability().mark_unavailable(
                                ApiKind::Forward,
                                &url,
                                tokio::time::Instant::now(),
                                FOLLOWER_UNAVAILABLE_FOR,
                            );
                            follower_retried = true;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
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

    /// A region read (PD-6): with [`PdClientOptions::enable_follower_handle`] on and the
    /// caller allowing it, first one attempt on the next available member of the leader
    /// and the followers (round robin, the PD client's `GetServiceClientByKind(
    /// UniversalAPIKind)`), a follower being asked to answer itself; otherwise, or when that
    /// follower fails or answers with a header error, the call runs on the leader as
    /// [`unary`](Self::unary) runs it (the PD client's `serviceAPIClient.NeedRetry`
    /// followed by `getClientAndContext`). A follower answering `REGION_NOT_FOUND` (its
    /// region table is not synced) is skipped for follower-handled reads for 10 s; other
    /// failures only send this call to the leader, the health probes deciding whether the
    /// follower stays a candidate.
    async fn region_read<Resp, F, Fut>(
        &self,
        name: &'static str,
        allow_follower: bool,
        f: F,
    ) -> Result<Resp>
    where
        Resp: HasHeader,
        F: Fn(PdGrpc<PdChannel>, pdpb::RequestHeader) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        if allow_follower && self.inner.opts.enable_follower_handle {
            match follower_handle_target(&self.inner) {
                Ok(Some(target)) => {
                    let url = target.url;
                    let failure = match f(PdGrpc::new(target.channel), self.header()).await {
                        Ok(resp) => {
                            let resp = resp.into_inner();
                            match check_header(resp.header(), self.inner.cluster_id) {
                                Ok(()) => return Ok(resp),
                                Err(e) => e,
                            }
                        }
                        Err(status) => status_error(status, &url),
                    };
                    if is_region_not_found(&failure) {
                        self.inner.availability().mark_unavailable(
                            ApiKind::Universal,
                            &url,
                            tokio::time::Instant::now(),
                            FOLLOWER_UNAVAILABLE_FOR,
                        );
                    }
                    tracing::debug!(call = name, url = %url, error = %failure, "PD follower did not serve the region read, asking the leader");
                }
                // The pick is the leader, or no member is available: the leader path.
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(call = name, error = %e, "no PD follower channel, asking the leader");
                }
            }
        }
        self.unary(name, f).await
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
        // In API service mode the PD leader does not allocate timestamps (PD-7).
        if self.inner.service_mode() == pdpb::ServiceMode::ApiSvcMode {
            return Err(health::tso_service_unsupported());
        }
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
    /// Always asked of the leader; through [`RegionMetaClient`] with
    /// [`RegionOptions::allow_follower`] a follower may answer (PD-6).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_region(&self, key: &[u8], need_buckets: bool) -> Result<Option<RegionInfo>> {
        self.get_region_with(key.to_vec(), leader_read(need_buckets))
            .await
    }

    async fn get_region_with(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> Result<Option<RegionInfo>> {
        let need_buckets = opts.need_buckets;
        let resp = self
            .region_read("GetRegion", opts.allow_follower, |mut c, header| {
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
    /// Always asked of the leader; through [`RegionMetaClient`] with
    /// [`RegionOptions::allow_follower`] a follower may answer (PD-6).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_prev_region(
        &self,
        key: &[u8],
        need_buckets: bool,
    ) -> Result<Option<RegionInfo>> {
        self.get_prev_region_with(key.to_vec(), leader_read(need_buckets))
            .await
    }

    async fn get_prev_region_with(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> Result<Option<RegionInfo>> {
        let need_buckets = opts.need_buckets;
        let resp = self
            .region_read("GetPrevRegion", opts.allow_follower, |mut c, header| {
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
    /// Always asked of the leader; through [`RegionMetaClient`] with
    /// [`RegionOptions::allow_follower`] a follower may answer (PD-6).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get_region_by_id(
        &self,
        id: u64,
        need_buckets: bool,
    ) -> Result<Option<RegionInfo>> {
        self.get_region_by_id_with(id, leader_read(need_buckets))
            .await
    }

    async fn get_region_by_id_with(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> Result<Option<RegionInfo>> {
        let need_buckets = opts.need_buckets;
        let resp = self
            .region_read(
                "GetRegionByID",
                opts.allow_follower,
                |mut c, header| async move {
                    c.get_region_by_id(pdpb::GetRegionByIdRequest {
                        header: Some(header),
                        region_id: id,
                        need_buckets,
                    })
                    .await
                },
            )
            .await;
        region_response(resp)
    }

    /// `PD/ScanRegions`.
    ///
    /// Always asked of the leader; through [`RegionMetaClient`] with
    /// [`RegionOptions::allow_follower`] a follower may answer (PD-6).
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
        self.scan_regions_with(
            start.to_vec(),
            end.to_vec(),
            limit,
            RegionOptions::default(),
        )
        .await
    }

    async fn scan_regions_with(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> Result<Vec<RegionInfo>> {
        let resp = self
            .region_read("ScanRegions", opts.allow_follower, |mut c, header| {
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
    /// Always asked of the leader; through [`RegionMetaClient`] with
    /// [`RegionOptions::allow_follower`] a follower may answer (PD-6).
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
        let opts = RegionOptions {
            contain_all_key_range,
            ..leader_read(need_buckets)
        };
        self.batch_scan_regions_with(ranges, limit, opts).await
    }

    async fn batch_scan_regions_with(
        &self,
        ranges: &[KeyRange],
        limit: i32,
        opts: RegionOptions,
    ) -> Result<Vec<RegionInfo>> {
        let RegionOptions {
            need_buckets,
            contain_all_key_range,
            ..
        } = opts;
        let ranges: Vec<pdpb::KeyRange> = ranges
            .iter()
            .map(|r| pdpb::KeyRange {
                start_key: r.start.clone(),
                end_key: r.end.clone(),
            })
            .collect();
        let resp = self
            .region_read("BatchScanRegions", opts.allow_follower, |mut c, header| {
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

    /// `PD/GetStore`. `Ok(None)` when PD returns no store, or a store whose node is
    /// `Removed` (the PD client's `handleStoreResponse`: the store is gone).
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
        .map(|r| {
            r.store
                .filter(|s| s.node_state() != metapb::NodeState::Removed)
        })
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
            let target = serving_target(&self.inner)?;
            let url = target.url;
            let mut c = KeyspaceClient::new(target.channel);
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

pub(super) fn channel_for(inner: &Inner, url: &str) -> Result<PdChannel> {
    let mut chans = inner.channels.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = chans.get(url) {
        return Ok(c.clone());
    }
    let c = make_channel(url, &inner.opts)?;
    chans.insert(url.to_owned(), c.clone());
    Ok(c)
}

/// Where a request meant for the leader goes (the PD client's `GetServiceClient`).
pub(super) struct Target {
    /// The member the request is sent to.
    pub(super) url: String,
    /// Its channel, stamped with the forwarding header when `via_follower`.
    pub(super) channel: PdChannel,
    /// The request goes through a follower that forwards it to the leader.
    pub(super) via_follower: bool,
}

/// The leader, or with forwarding on and the leader failing its probes, the next
/// available follower asked to forward to it (PD-5). Falls back to the leader when no
/// follower is available.
pub(super) fn serving_target(inner: &Inner) -> Result<Target> {
    let (leader, followers) = inner.leader_and_followers();
    if leader.is_empty() {
        return Err(Error::new(ErrorDetail::PdServerTimeout(
            "no PD leader known".into(),
        )));
    }
    if inner.opts.enable_forwarding && !inner.availability().is_reachable(&leader) {
        let now = tokio::time::Instant::now();
        let picked = inner.availability().pick(ApiKind::Forward, &followers, now);
        if let Some(f) = picked
            && let Some(channel) = channel_for(inner, &f)?.forwarded_to(&leader)
        {
            tracing::debug!(follower = %f, leader = %leader, "forwarding PD request");
            return Ok(Target {
                url: f,
                channel,
                via_follower: true,
            });
        }
    }
    let channel = channel_for(inner, &leader)?;
    Ok(Target {
        url: leader,
        channel,
        via_follower: false,
    })
}

/// Where a region read allowed on followers goes first (PD-6; the PD client's
/// `getServiceClient` with follower handling): the next available member of the leader
/// and the followers, round robin with its own cursor ([`ApiKind::Universal`]).
///
/// `None` when that member is the leader, or no member is available: the read then takes
/// the leader path ([`serving_target`]). A follower's channel carries the follower-handle
/// header.
fn follower_handle_target(inner: &Inner) -> Result<Option<Target>> {
    let (leader, followers) = inner.leader_and_followers();
    if leader.is_empty() {
        return Ok(None);
    }
    let mut candidates = Vec::with_capacity(followers.len() + 1);
    candidates.push(leader.clone());
    candidates.extend(followers);
    let now = tokio::time::Instant::now();
    let picked = inner
        .availability()
        .pick(ApiKind::Universal, &candidates, now);
    match picked {
        Some(url) if url != leader => {
            let channel = channel_for(inner, &url)?.follower_handled();
            Ok(Some(Target {
                url,
                channel,
                via_follower: true,
            }))
        }
        _ => Ok(None),
    }
}

/// The options of a region read the leader must answer (the inherent methods of
/// [`PdClient`]; the [`RegionMetaClient`] methods take the caller's options).
fn leader_read(need_buckets: bool) -> RegionOptions {
    RegionOptions {
        need_buckets,
        ..RegionOptions::default()
    }
}

/// Whether `err` is PD's `REGION_NOT_FOUND` header error.
fn is_region_not_found(err: &Error) -> bool {
    matches!(err.detail(), ErrorDetail::Pd(e) if e.r#type() == pdpb::ErrorType::RegionNotFound)
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
    let urls: Vec<String> = urls.into_iter().collect();
    let changed = {
        let mut members = inner.members.write().unwrap_or_else(|e| e.into_inner());
        let changed = members.leader != leader_url;
        *members = Members {
            urls: urls.clone(),
            leader: leader_url.clone(),
            followers,
        };
        changed
    };
    {
        let mut avail = inner.availability();
        avail.retain(&urls);
        // A new leader starts out reachable, as a fresh PD service client does.
        if changed {
            avail.set_network(&leader_url, true);
        }
    }
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
        Box::pin(async move { this.get_region_with(key, opts).await })
    }
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.get_prev_region_with(key, opts).await })
    }
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.get_region_by_id_with(id, opts).await })
    }
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.scan_regions_with(start, end, limit, opts).await })
    }
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        let this = self.clone();
        Box::pin(async move { this.batch_scan_regions_with(&ranges, limit, opts).await })
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
