//! Store liveness: probing a store and the per-store health-check loop (SC-9, SC-10, SC-11
//! of `shared/spec/request-path.md`; client-go's `requestLiveness`,
//! `requestLivenessAndStartHealthCheckLoopIfNeeded`, `startHealthCheckLoop`,
//! `invokeKVStatusAPI` and `createKVHealthClient` in `internal/locate/store_cache.go`).
//!
//! A [`LivenessProber`] answers "is this store serving?". The default,
//! [`GrpcHealthProber`], calls `grpc.health.v1.Health/Check` over a short-lived channel of
//! its own (not the request pools), bounded by the liveness timeout, and deduplicates
//! concurrent probes of one address. Tests install a scripted prober instead
//! ([`FnProber`], or the mock cluster's own probe) with
//! [`StoreCache::set_prober`](super::StoreCache::set_prober), which replaces the whole
//! probe like client-go's `setMockRequestLiveness`.
//!
//! When a TiKV store is found not reachable, the first caller to flip its liveness away
//! from reachable starts a loop that re-probes every second (and re-reads the store from PD
//! every 30 s) until the store answers again; only that loop moves a store back to
//! reachable. Loops end when the store becomes reachable or invalid, and when the cache is
//! closed or dropped.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_layers::locate::{Liveness, StoreType};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::metrics as m;
use super::{Inner, ResolveState, Store, StoreCache};
use crate::config::TikvClientConfig;

/// How often a health-check loop re-probes its store (client-go schedules it every second).
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a health-check loop re-reads its store from PD (`storeReResolveInterval`).
pub const STORE_RE_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// What a probe is about: the store as the cache knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeTarget {
    /// Store id.
    pub store_id: u64,
    /// The store's gRPC address ("" when unknown).
    pub addr: String,
    /// Whether the store's resolve state is exactly "resolved" (SC-3).
    pub resolved: bool,
}

/// Answers whether a store is serving (client-go's `requestLiveness`, or a test's
/// `livenessFunc`). Implementations must not block; the returned future is `'static`.
pub trait LivenessProber: Send + Sync + 'static {
    /// Probes the store once.
    fn probe(&self, target: &ProbeTarget) -> BoxFuture<'static, Liveness>;
}

/// A prober computed synchronously by a closure: the scripted probes tests install
/// (client-go's `setMockRequestLiveness`).
///
/// ```
/// use std::sync::Arc;
/// use tikv::layers::locate::Liveness;
/// use tikv::store_cache::{FnProber, LivenessProber};
///
/// let down = 7;
/// let p: Arc<dyn LivenessProber> = Arc::new(FnProber(move |t: &tikv::store_cache::ProbeTarget| {
///     if t.store_id == down { Liveness::Unreachable } else { Liveness::Reachable }
/// }));
/// # let _ = p;
/// ```
#[derive(Clone, Copy)]
pub struct FnProber<F>(pub F);

impl<F> std::fmt::Debug for FnProber<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnProber")
    }
}

impl<F> LivenessProber for FnProber<F>
where
    F: Fn(&ProbeTarget) -> Liveness + Send + Sync + 'static,
{
    fn probe(&self, target: &ProbeTarget) -> BoxFuture<'static, Liveness> {
        let l = (self.0)(target);
        Box::pin(std::future::ready(l))
    }
}

/// The mock cluster's probe (MC-3.7.1): reachable while a request to the address would be
/// served, unreachable after `set_store_unreachable`/`stop_store`, unknown for an address no
/// store has.
#[cfg(feature = "mock")]
impl LivenessProber for crate::mock::Cluster {
    fn probe(&self, target: &ProbeTarget) -> BoxFuture<'static, Liveness> {
        let l = match crate::mock::Cluster::probe(self, &target.addr) {
            crate::mock::Liveness::Reachable => Liveness::Reachable,
            crate::mock::Liveness::Unreachable => Liveness::Unreachable,
            crate::mock::Liveness::Unknown => Liveness::Unknown,
        };
        Box::pin(std::future::ready(l))
    }
}

/// Settings of the [`GrpcHealthProber`] (client-go's `createKVHealthClient` options).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GrpcProberConfig {
    /// Bound of one probe, connect included (`StoreLivenessTimeout`, default 1 s). Zero
    /// makes every probe answer unreachable, like client-go.
    pub timeout: Duration,
    /// TLS for the probe connection (used when the cluster has a CA configured).
    pub tls: Option<ClientTlsConfig>,
    /// HTTP/2 keepalive interval.
    pub keepalive_time: Duration,
    /// HTTP/2 keepalive timeout.
    pub keepalive_timeout: Duration,
    /// Initial stream window size.
    pub initial_window_size: u32,
    /// Initial connection window size.
    pub initial_conn_window_size: u32,
}

impl Default for GrpcProberConfig {
    fn default() -> Self {
        GrpcProberConfig::from_client_config(&TikvClientConfig::default(), None)
    }
}

impl GrpcProberConfig {
    /// The probe settings of `cfg` (timeout, keepalive, windows) with `tls`.
    pub fn from_client_config(
        cfg: &TikvClientConfig,
        tls: Option<ClientTlsConfig>,
    ) -> GrpcProberConfig {
        GrpcProberConfig {
            timeout: cfg.store_liveness_timeout,
            tls,
            keepalive_time: cfg.grpc_keepalive_time,
            keepalive_timeout: cfg.grpc_keepalive_timeout,
            initial_window_size: cfg.grpc_initial_window_size,
            initial_conn_window_size: cfg.grpc_initial_conn_window_size,
        }
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

struct GrpcInner {
    config: GrpcProberConfig,
    /// Probes in flight, by address: later callers wait for the first one's answer
    /// (client-go's `livenessSf` singleflight group).
    inflight: Mutex<HashMap<String, watch::Receiver<Option<Liveness>>>>,
}

/// The default prober: a gRPC health check over a dedicated, short-lived connection
/// (SC-9, SC-11). Concurrent probes of one address share one check.
#[derive(Clone)]
pub struct GrpcHealthProber {
    inner: Arc<GrpcInner>,
}

impl std::fmt::Debug for GrpcHealthProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcHealthProber")
            .field("timeout", &self.inner.config.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for GrpcHealthProber {
    fn default() -> Self {
        GrpcHealthProber::new(GrpcProberConfig::default())
    }
}

impl GrpcHealthProber {
    /// A prober with `config`.
    pub fn new(config: GrpcProberConfig) -> GrpcHealthProber {
        GrpcHealthProber {
            inner: Arc::new(GrpcInner {
                config,
                inflight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The probe timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    /// Runs (or joins) the probe of `addr`. The probe itself runs on its own task, so a
    /// caller that gives up does not cancel it for the others.
    async fn probe_addr(inner: Arc<GrpcInner>, addr: String) -> Liveness {
        let mut rx = {
            let mut map = inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&addr) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(addr.clone(), rx.clone());
                    let task_inner = inner.clone();
                    let task_addr = addr.clone();
                    tokio::spawn(async move {
                        let l = invoke_health_check(&task_inner.config, &task_addr).await;
                        task_inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&task_addr);
                        let _ = tx.send(Some(l));
                    });
                    rx
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(Liveness::Unknown),
            // The probe task went away without answering.
            Err(_) => Liveness::Unknown,
        }
    }
}

impl LivenessProber for GrpcHealthProber {
    fn probe(&self, target: &ProbeTarget) -> BoxFuture<'static, Liveness> {
        if self.inner.config.timeout.is_zero() {
            return Box::pin(std::future::ready(Liveness::Unreachable));
        }
        if !target.resolved {
            return Box::pin(std::future::ready(Liveness::Unknown));
        }
        Box::pin(GrpcHealthProber::probe_addr(
            self.inner.clone(),
            target.addr.clone(),
        ))
    }
}

fn probe_endpoint(config: &GrpcProberConfig, addr: &str) -> Option<Endpoint> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else if config.tls.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let mut ep = Endpoint::from_shared(uri)
        .ok()?
        .connect_timeout(config.timeout)
        .timeout(config.timeout)
        .http2_keep_alive_interval(config.keepalive_time)
        .keep_alive_timeout(config.keepalive_timeout)
        .initial_stream_window_size(Some(config.initial_window_size))
        .initial_connection_window_size(Some(config.initial_conn_window_size));
    if let Some(tls) = &config.tls {
        ep = ep.tls_config(tls.clone()).ok()?;
    }
    Some(ep)
}

/// One health check (client-go's `invokeKVStatusAPI`): SERVING → reachable; UNKNOWN or
/// SERVICE_UNKNOWN → unknown; anything else, a connect failure, an error or the timeout →
/// unreachable.
async fn invoke_health_check(config: &GrpcProberConfig, addr: &str) -> Liveness {
    let start = Instant::now();
    let check = async {
        let Some(ep) = probe_endpoint(config, addr) else {
            tracing::info!(store = addr, "[health check] invalid store address");
            return Liveness::Unreachable;
        };
        let channel = match ep.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(store = addr, error = %e, "[health check] connect failed");
                return Liveness::Unreachable;
            }
        };
        let resp = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        match resp {
            Err(e) => {
                tracing::info!(store = addr, error = %e, "[health check] check failed");
                Liveness::Unreachable
            }
            Ok(r) => match ServingStatus::try_from(r.into_inner().status) {
                Ok(ServingStatus::Serving) => Liveness::Reachable,
                Ok(ServingStatus::Unknown) | Ok(ServingStatus::ServiceUnknown) => {
                    tracing::info!(store = addr, "[health check] store answers unknown");
                    Liveness::Unknown
                }
                other => {
                    tracing::info!(store = addr, status = ?other, "[health check] store not serving");
                    Liveness::Unreachable
                }
            },
        }
    };
    // The dedicated channel is dropped (closed) when `check` ends.
    let l = tokio::time::timeout(config.timeout, check)
        .await
        .unwrap_or(Liveness::Unreachable);
    let result = if l == Liveness::Reachable {
        "ok"
    } else {
        "err"
    };
    metrics::counter!(m::STATUS_REQUESTS, "result" => result).increment(1);
    metrics::histogram!(m::STATUS_SECONDS, "store" => addr.to_owned())
        .record(start.elapsed().as_secs_f64());
    l
}

/// Health-check loop settings of a [`StoreCache`].
#[derive(Clone)]
pub(super) struct LivenessSettings {
    pub(super) prober: Arc<dyn LivenessProber>,
    pub(super) loop_enabled: bool,
    pub(super) check_interval: Duration,
    pub(super) re_resolve_interval: Duration,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        LivenessSettings {
            prober: Arc::new(GrpcHealthProber::default()),
            loop_enabled: true,
            check_interval: HEALTH_CHECK_INTERVAL,
            re_resolve_interval: STORE_RE_RESOLVE_INTERVAL,
        }
    }
}

/// Publishes a resolved TiKV store's liveness (`updateStoreLivenessGauge`).
pub(super) fn update_liveness_gauge(store: &Store) {
    if store.snapshot().store_type != StoreType::TiKv || store.state() != ResolveState::Resolved {
        return;
    }
    metrics::gauge!(m::STORE_LIVENESS, "store" => store.id().to_string())
        .set(f64::from(store.liveness() as u8));
}

impl StoreCache {
    fn liveness_settings(&self) -> LivenessSettings {
        self.inner
            .liveness
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs the prober every liveness probe goes through (client-go's
    /// `setMockRequestLiveness` in tests; the gRPC health prober with the configured
    /// timeout and TLS otherwise).
    pub fn set_prober(&self, prober: Arc<dyn LivenessProber>) {
        self.inner
            .liveness
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .prober = prober;
    }

    /// Enables or disables starting health-check loops (disabled = client-go's
    /// `skipStoreCheckUntilHealth` failpoint: the liveness still flips, no loop runs).
    pub fn set_health_check_loop_enabled(&self, enabled: bool) {
        self.inner
            .liveness
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .loop_enabled = enabled;
    }

    /// Sets how often health-check loops re-probe (1 s) and re-read the store from PD (30 s;
    /// client-go's `injectReResolveInterval` failpoint changes the latter). Affects loops
    /// started afterwards.
    pub fn set_health_check_intervals(&self, check: Duration, re_resolve: Duration) {
        let mut s = self
            .inner
            .liveness
            .write()
            .unwrap_or_else(|e| e.into_inner());
        s.check_interval = check.max(Duration::from_millis(1));
        s.re_resolve_interval = re_resolve;
    }

    /// Probes `store` once through the installed prober (client-go's `requestLiveness`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; a shared gRPC probe keeps running for the other waiters.
    pub async fn request_liveness(&self, store: &Store) -> Liveness {
        let prober = self.liveness_settings().prober;
        let target = ProbeTarget {
            store_id: store.id(),
            addr: store.snapshot().addr.clone(),
            resolved: store.state() == ResolveState::Resolved,
        };
        prober.probe(&target).await
    }

    /// Probes `store` and, when a TiKV store is not reachable, records that and starts its
    /// health-check loop unless one is already running (client-go's
    /// `requestLivenessAndStartHealthCheckLoopIfNeeded`, SC-10). Non-TiKV stores get the
    /// probe result without any state change.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing changes until the probe has answered.
    pub async fn probe_store_liveness(&self, store: &Arc<Store>) -> Liveness {
        let l = self.request_liveness(store).await;
        if l == Liveness::Reachable {
            return l;
        }
        if store.snapshot().store_type != StoreType::TiKv {
            tracing::info!(
                store = store.id(),
                "[health check] skip health check loop for non-tikv store"
            );
            return l;
        }
        // Only the caller that moves the store away from reachable starts the loop; the
        // non-reachable liveness is the "loop running" mark.
        if store
            .liveness
            .compare_exchange(
                Liveness::Reachable as u8,
                l as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            update_liveness_gauge(store);
            *store
                .unreachable_since
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            let settings = self.liveness_settings();
            if settings.loop_enabled {
                self.start_health_check_loop(store.clone(), settings.re_resolve_interval);
            }
        }
        l
    }

    /// Starts the health-check loop of `store` (client-go's `startHealthCheckLoop`): every
    /// check interval it re-reads the store from PD when `re_resolve_interval` has passed
    /// since the last read (stopping if the store is gone), then probes and stores the
    /// liveness, stopping once reachable. The loop also ends when the cache is closed or
    /// dropped. Must be called inside a tokio runtime.
    pub fn start_health_check_loop(&self, store: Arc<Store>, re_resolve_interval: Duration) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let cancel = self.inner.cancel.clone();
        let interval = self.liveness_settings().check_interval;
        // The schedule starts now, not when the task is first polled.
        let started = Instant::now();
        tokio::spawn(async move {
            let mut last_pd_check = started;
            let mut ticker = tokio::time::interval_at(started + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                // Both branches are cancel safe.
                let now = tokio::select! {
                    _ = cancel.cancelled() => return,
                    t = ticker.tick() => t,
                };
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let cache = StoreCache { inner };
                // `>=`: under a paused clock ticks land exactly on the interval, where Go's
                // wall-clock ticker is always a little late.
                if now.saturating_duration_since(last_pd_check) >= re_resolve_interval {
                    last_pd_check = now;
                    match cache.re_resolve(&store).await {
                        Err(e) => {
                            tracing::warn!(store = store.id(), error = %e, "[health check] failed to re-resolve unhealthy store")
                        }
                        Ok(false) => {
                            tracing::info!(
                                store = store.id(),
                                "[health check] store is invalid (tombstone or removed), stop checking"
                            );
                            return;
                        }
                        Ok(true) => {}
                    }
                }
                let l = cache.request_liveness(&store).await;
                store.liveness.store(l as u8, Ordering::Release);
                update_liveness_gauge(&store);
                if l == Liveness::Reachable {
                    tracing::info!(store = store.id(), "[health check] store became reachable");
                    return;
                }
            }
        });
    }
}
