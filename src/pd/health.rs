//! PD member health, request forwarding, follower handling and service mode (PD-5, PD-6,
//! PD-7).
//!
//! Mirrors the PD client's service discovery (`tikv/pd`, `client/servicediscovery/
//! service_discovery.go`: `memberHealthCheckLoop`, `checkNetworkAvailable`,
//! `GetServiceClient`, `GetServiceClientByKind`, `serviceBalancer`,
//! `serviceAPIClient.NeedRetry`, `Init`, `updateServiceModeLoop`,
//! `checkServiceModeChanged`), as client-go builds it through `tikv.NewPDClient`:
//!
//! - Every [`PdClientOptions::health_check_interval`](super::PdClientOptions) (1 s) the
//!   leader is probed with the gRPC health service (`grpc.health.v1.Health/Check`, timeout =
//!   the client timeout), then each follower (timeout = a third of the interval). An error
//!   or any answer but `SERVING` marks the member's network as failed; a `SERVING` answer
//!   clears it.
//! - With forwarding enabled and the leader's network failed, a request goes to the next
//!   available follower (round robin) carrying the forwarding header
//!   ([`FORWARD_METADATA_KEY`](super::layer::FORWARD_METADATA_KEY)) that names the leader.
//!   With no follower available, or forwarding off, the leader is used.
//! - A follower that answers a forwarded region query with `REGION_NOT_FOUND` is marked
//!   unavailable for forwarding for 10 s and the query is tried once more on the next
//!   target.
//! - With follower handling enabled
//!   ([`PdClientOptions::enable_follower_handle`](super::PdClientOptions)), a region read
//!   whose caller allows it goes to the next available member of the leader and the
//!   followers (round robin, its own cursor); a follower gets the follower-handle header
//!   ([`FOLLOWER_HANDLE_METADATA_KEY`](super::layer::FOLLOWER_HANDLE_METADATA_KEY)). A
//!   follower answering `REGION_NOT_FOUND` (its region table is not synced) is skipped for
//!   follower-handled reads for 10 s. These exclusions are kept per kind ([`ApiKind`]).
//! - At creation the leader is asked `GetClusterInfo` (up to the init retry count, 1 s
//!   apart), and creation fails if it never answers, as the PD client's `Init` does. Then,
//!   every [`PdClientOptions::service_mode_interval`](super::PdClientOptions) (3 s), it is
//!   asked again. `PD_SVC_MODE` (or `Unimplemented`, an old PD) means the PD leader serves
//!   TSO; `API_SVC_MODE` means a TSO microservice does, which this client does not support
//!   yet: timestamp calls then fail with a [`TsoServiceUnsupported`] error instead of
//!   asking a leader that will not answer. A failed periodic check keeps the last mode and
//!   asks the member loop for a refresh.
//!
//! Both loops run as background tasks holding the client weakly; they end when the client
//! is closed or its last handle is dropped.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::pdpb;
use tikv_proto::pdpb::pd_client::PdClient as PdGrpc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::client::{Inner, channel_for, check_header, schedule_check, status_error};
use super::layer::PdChannel;

/// How long a follower that answered a region query with `REGION_NOT_FOUND` is skipped
/// for that kind of request (PD-5; the PD client's `serviceAPIClient.NeedRetry`).
pub(super) const FOLLOWER_UNAVAILABLE_FOR: Duration = Duration::from_secs(10);
/// The shortest loop interval honoured, so a zero option cannot spin a loop.
const MIN_LOOP_INTERVAL: Duration = Duration::from_millis(10);

/// Which requests a member is picked for (the PD client's `APIKind`). Each kind has its
/// own round-robin cursor and its own temporary exclusions, as the PD client keeps one
/// candidate balancer per kind: a follower that cannot answer region reads itself is still
/// a good relay for forwarded requests, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiKind {
    /// Requests meant for the leader, sent through a follower that relays them while the
    /// leader fails its probes (`ForwardAPIKind`, PD-5). Candidates: the followers.
    Forward,
    /// Region reads any member may answer from its own region table
    /// (`UniversalAPIKind`, PD-6). Candidates: the leader, then the followers.
    Universal,
}

impl ApiKind {
    const COUNT: usize = 2;

    fn index(self) -> usize {
        match self {
            ApiKind::Forward => 0,
            ApiKind::Universal => 1,
        }
    }
}

/// The round-robin state of one [`ApiKind`] (the PD client's `serviceBalancer`).
#[derive(Debug, Default)]
struct Candidates {
    /// Members skipped for this kind until the given instant (a `REGION_NOT_FOUND`
    /// answer, the PD client's `serviceAPIClient.unavailableUntil`).
    excluded_until: HashMap<String, Instant>,
    /// Where the next pick starts.
    cursor: usize,
}

/// Which PD members may serve requests: probe results (shared by every kind), and per
/// [`ApiKind`] the temporary exclusions and the round-robin cursor.
///
/// Members never probed are available, as a fresh PD service client is.
#[derive(Debug, Default)]
pub(super) struct Availability {
    /// URLs whose last probe failed (the PD client's `networkFailure`).
    network_failure: HashMap<String, bool>,
    kinds: [Candidates; ApiKind::COUNT],
}

impl Availability {
    /// Records a probe result for `url`.
    pub(super) fn set_network(&mut self, url: &str, ok: bool) {
        self.network_failure.insert(url.to_owned(), !ok);
    }

    /// Whether the last probe of `url` succeeded (or it was never probed).
    pub(super) fn is_reachable(&self, url: &str) -> bool {
        !self.network_failure.get(url).copied().unwrap_or(false)
    }

    /// Skips `url` for requests of `kind` until `now + duration`.
    pub(super) fn mark_unavailable(
        &mut self,
        kind: ApiKind,
        url: &str,
        now: Instant,
        duration: Duration,
    ) {
        self.kinds[kind.index()]
            .excluded_until
            .insert(url.to_owned(), now + duration);
    }

    /// Whether `url` is reachable and not excluded for `kind` at `now`.
    pub(super) fn is_available(&self, kind: ApiKind, url: &str, now: Instant) -> bool {
        self.is_reachable(url)
            && self.kinds[kind.index()]
                .excluded_until
                .get(url)
                .is_none_or(|t| now >= *t)
    }

    /// The next member of `candidates` available for `kind`, after the last one picked
    /// for that kind, if any.
    pub(super) fn pick(
        &mut self,
        kind: ApiKind,
        candidates: &[String],
        now: Instant,
    ) -> Option<String> {
        let n = candidates.len();
        let start = self.kinds[kind.index()].cursor;
        for i in 0..n {
            let idx = (start + i) % n;
            if self.is_available(kind, &candidates[idx], now) {
                self.kinds[kind.index()].cursor = (idx + 1) % n;
                return Some(candidates[idx].clone());
            }
        }
        None
    }

    /// Forgets members that left the cluster.
    pub(super) fn retain(&mut self, urls: &[String]) {
        let keep = |u: &String| urls.iter().any(|x| x == u);
        self.network_failure.retain(|u, _| keep(u));
        for k in &mut self.kinds {
            k.excluded_until.retain(|u, _| keep(u));
        }
    }
}

/// PD runs in API service mode, where timestamps come from the TSO microservice
/// (`tsopb.TSO/Tso`), which this client does not implement yet (PD-7).
///
/// Carried as the source of an [`ErrorDetail::Pd`] error returned by timestamp calls; test
/// for it with [`is_tso_service_unsupported`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "PD reports API_SVC_MODE: timestamps are served by the TSO microservice, which this \
     client does not support"
)]
pub struct TsoServiceUnsupported;

/// Whether `err` says PD serves timestamps through the TSO microservice
/// ([`TsoServiceUnsupported`]).
pub fn is_tso_service_unsupported(err: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if e.is::<TsoServiceUnsupported>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The error timestamp calls fail with in API service mode.
pub(super) fn tso_service_unsupported() -> Error {
    let e = TsoServiceUnsupported;
    Error::new(ErrorDetail::Pd(Box::new(pdpb::Error {
        r#type: pdpb::ErrorType::Unknown as i32,
        message: e.to_string(),
    })))
    .with_source(e)
}

/// One `grpc.health.v1.Health/Check` of the member behind `channel`: true only for a
/// `SERVING` answer within `timeout` (the PD client's `checkNetworkAvailable`).
async fn probe(channel: PdChannel, timeout: Duration) -> bool {
    let mut client = HealthClient::new(channel);
    let req = HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(timeout, client.check(req)).await {
        Ok(Ok(resp)) => resp.into_inner().status == ServingStatus::Serving as i32,
        _ => false,
    }
}

/// The member health loop (PD-5): probes the leader, then every follower, once per
/// interval. Holds the client only between probes, so dropping the last handle ends it.
pub(super) async fn health_loop(weak: Weak<Inner>, cancel: CancellationToken) {
    loop {
        let Some((interval, timeout)) = weak.upgrade().map(|i| {
            (
                i.opts.health_check_interval.max(MIN_LOOP_INTERVAL),
                i.opts.timeout,
            )
        }) else {
            return;
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        // Snapshot what to probe, then release the client while waiting on the network.
        let targets: Vec<(String, PdChannel, Duration)> = {
            let Some(inner) = weak.upgrade() else { return };
            let (leader, followers) = inner.leader_and_followers();
            let follower_timeout = interval / 3;
            let mut v = Vec::with_capacity(followers.len() + 1);
            if !leader.is_empty()
                && let Ok(ch) = channel_for(&inner, &leader)
            {
                v.push((leader, ch, timeout));
            }
            for f in followers {
                if let Ok(ch) = channel_for(&inner, &f) {
                    v.push((f, ch, follower_timeout));
                }
            }
            v
        };
        for (url, channel, timeout) in targets {
            let ok = tokio::select! {
                _ = cancel.cancelled() => return,
                ok = probe(channel, timeout) => ok,
            };
            let Some(inner) = weak.upgrade() else { return };
            let was = inner.availability().is_reachable(&url);
            inner.availability().set_network(&url, ok);
            if was != ok {
                tracing::info!(url = %url, available = ok, "PD member availability changed");
            }
        }
    }
}

/// Asks the leader for the service mode once and records it (the PD client's
/// `checkServiceModeChanged`).
///
/// `Unimplemented` means an old PD: PD mode. An answer without modes is an error and
/// leaves the recorded mode as it was.
pub(super) async fn check_service_mode(inner: &Inner) -> Result<pdpb::ServiceMode> {
    let leader = inner.leader_and_followers().0;
    if leader.is_empty() {
        return Err(Error::new(ErrorDetail::PdServerTimeout(
            "no PD leader known".into(),
        )));
    }
    let channel = channel_for(inner, &leader)?;
    let mut client = PdGrpc::new(channel);
    let res = tokio::time::timeout(
        inner.opts.timeout,
        client.get_cluster_info(pdpb::GetClusterInfoRequest::default()),
    )
    .await;
    let mode = match res {
        Err(_) => {
            return Err(Error::new(ErrorDetail::PdServerTimeout(format!(
                "{leader}: get cluster info timed out"
            ))));
        }
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            pdpb::ServiceMode::PdSvcMode
        }
        Ok(Err(status)) => return Err(status_error(status, &leader)),
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            check_header(resp.header.as_ref(), inner.cluster_id())?;
            match resp.service_modes.first() {
                Some(m) => pdpb::ServiceMode::try_from(*m).map_err(|_| {
                    Error::new(ErrorDetail::Malformed(format!(
                        "unknown PD service mode {m}"
                    )))
                })?,
                None => {
                    return Err(Error::new(ErrorDetail::Malformed(
                        "PD returned no service mode".into(),
                    )));
                }
            }
        }
    };
    let old = inner.service_mode.swap(mode as i32, Ordering::AcqRel);
    if old != mode as i32 {
        tracing::info!(mode = ?mode, "PD service mode changed");
    }
    Ok(mode)
}

/// The first service-mode check, part of creating the client (PD-7; the PD client's
/// `Init` runs `checkServiceModeChanged` under `initRetry` and fails the creation when it
/// never succeeds): up to `attempts` checks, `interval` apart. Returns the last error when
/// every check failed.
pub(super) async fn init_service_mode(
    inner: &Inner,
    attempts: usize,
    interval: Duration,
) -> Result<pdpb::ServiceMode> {
    let attempts = attempts.max(1);
    let mut tried = 0;
    loop {
        tried += 1;
        match check_service_mode(inner).await {
            Ok(mode) => return Ok(mode),
            Err(e) if tried >= attempts => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, attempt = tried, "initial PD service mode check failed, retrying");
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// The service-mode loop (PD-7): one check per interval; a failed check asks the member
/// loop for a refresh, as the leader may have moved.
pub(super) async fn service_mode_loop(weak: Weak<Inner>, cancel: CancellationToken) {
    loop {
        let Some(interval) = weak
            .upgrade()
            .map(|i| i.opts.service_mode_interval.max(MIN_LOOP_INTERVAL))
        else {
            return;
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let res = tokio::select! {
            _ = cancel.cancelled() => return,
            r = check_service_mode(&inner) => r,
        };
        // Any failure, an answer without modes included, may mean the leader moved: keep
        // the last mode and ask for a member refresh, as the PD client's loop does.
        if let Err(e) = res {
            tracing::warn!(error = %e, "update PD service mode failed");
            schedule_check(&inner);
        }
    }
}
