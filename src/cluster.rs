//! The shared state of a client: PD client, region and store caches, oracle, and every
//! background task (architecture.md "Shared state"; client-go's `KVStore` wiring in
//! `tikv/kv.go`, LC-2 .. LC-6).
//!
//! [`Cluster`] is a cheap handle (`Arc` inside). Its background tasks (region-cache GC,
//! store re-resolve on need-check events and on a tick, the store health tick and the
//! replica-flow report (RC-53), the stores' health-check loops (SC-10), the oracle's update
//! loop, and the PD client's member loop and TSO dispatcher) stop when
//! [`Cluster::shutdown`] is called or when the last handle is dropped.

use std::sync::Arc;
use std::time::Duration;

use tikv_layers::Result;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::oracle::{Oracle, PdOracle, PdOracleOptions};
use crate::pd::{CodecPdClient, KeyMode, PdClient, PdClientOptions, RegionMetaClient};
use crate::region_cache::{GC_INTERVAL, GC_REGIONS_PER_ROUND, RegionCache, RegionCacheOptions};
use crate::store_cache::{GrpcHealthProber, GrpcProberConfig, StoreCache};

struct Inner {
    /// The PD client; `None` for a cluster over the in-process mock PD.
    pd: Option<PdClient>,
    regions: RegionCache,
    oracle: Arc<dyn Oracle>,
    cancel: CancellationToken,
    tasks: std::sync::Mutex<Option<JoinSet<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.regions.stores().close();
        self.oracle.close();
        if let Some(pd) = &self.pd {
            pd.close();
        }
        if let Some(mut tasks) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tasks.abort_all();
        }
    }
}

/// The handle over a TiKV cluster's shared client state (client-go's `KVStore`).
///
/// Clone it freely; every clone shares the same PD connection, caches and oracle.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cluster_id", &self.cluster_id())
            .field("regions", &self.inner.regions)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to PD at `pd_endpoints` and builds the caches and the oracle from
    /// `config` (client-go's `NewKVStore` with `NewPDClient`, LC-2): API v1 transactional
    /// key encoding, a 2 s oracle update interval.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped connect stops everything it started.
    pub async fn connect(pd_endpoints: &[String], config: &Config) -> Result<Cluster> {
        config.validate()?;
        let opts = PdClientOptions::from_config(config).await?;
        let pd = PdClient::connect(pd_endpoints, opts).await?;
        Cluster::from_pd(pd, KeyMode::TxnV1, config).await
    }

    /// Builds the cluster state over an existing PD client.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn from_pd(pd: PdClient, mode: KeyMode, config: &Config) -> Result<Cluster> {
        let meta: Arc<dyn RegionMetaClient> =
            Arc::new(CodecPdClient::new(Arc::new(pd.clone()), mode));
        let regions = RegionCache::new(meta, RegionCacheOptions::from_config(&config.tikv_client));
        // Liveness probes use the configured timeout and the cluster's TLS (SC-9, SC-11).
        let tls = config.security.to_tls_config().await?;
        regions.stores().set_prober(Arc::new(GrpcHealthProber::new(
            GrpcProberConfig::from_client_config(&config.tikv_client, tls),
        )));
        let oracle = PdOracle::new(Arc::new(pd.clone()), PdOracleOptions::default()).await?;
        Ok(Cluster::assemble(
            Some(pd),
            regions,
            Arc::new(oracle),
            config.stores_refresh_interval,
        ))
    }

    /// Builds the cluster state over the embedded mock cluster's in-process PD: no sockets,
    /// the mock's TSO as the oracle's source, region keys translated by `mode`. Pair it with
    /// [`Mock::tikv`](crate::mock::Mock::tikv) as the pipeline's transport.
    #[cfg(feature = "mock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
    pub async fn embedded(
        mock: &crate::mock::Mock,
        mode: KeyMode,
        config: &Config,
    ) -> Result<Cluster> {
        config.validate()?;
        let pd = mock.pd().clone();
        let meta: Arc<dyn RegionMetaClient> =
            Arc::new(CodecPdClient::new(Arc::new(pd.clone()), mode));
        let regions = RegionCache::new(meta, RegionCacheOptions::from_config(&config.tikv_client));
        // Liveness comes from the mock's probe (MC-3.7.1): no sockets.
        regions
            .stores()
            .set_prober(Arc::new(mock.cluster().clone()));
        let oracle = PdOracle::new(Arc::new(pd), PdOracleOptions::default()).await?;
        Ok(Cluster::assemble(
            None,
            regions,
            Arc::new(oracle),
            config.stores_refresh_interval,
        ))
    }

    /// Starts the background loops; `stores_refresh` is client-go's
    /// `StoresRefreshInterval` (RC-53: store re-resolve and health tick every quarter of it,
    /// the replica-flow report every half).
    fn assemble(
        pd: Option<PdClient>,
        regions: RegionCache,
        oracle: Arc<dyn Oracle>,
        stores_refresh: Duration,
    ) -> Cluster {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let min = Duration::from_millis(100);
        tasks.spawn(gc_loop(regions.clone(), cancel.clone()));
        tasks.spawn(store_loop(
            regions.stores().clone(),
            cancel.clone(),
            (stores_refresh / 4).max(min),
        ));
        tasks.spawn(health_loop(
            regions.stores().clone(),
            cancel.clone(),
            (stores_refresh / 4).max(min),
        ));
        tasks.spawn(flows_loop(
            regions.stores().clone(),
            cancel.clone(),
            (stores_refresh / 2).max(min),
        ));
        Cluster {
            inner: Arc::new(Inner {
                pd,
                regions,
                oracle,
                cancel,
                tasks: std::sync::Mutex::new(Some(tasks)),
            }),
        }
    }

    /// The PD client; `None` for a cluster over the in-process mock PD
    /// ([`Cluster::embedded`]).
    pub fn pd(&self) -> Option<&PdClient> {
        self.inner.pd.as_ref()
    }

    /// The region cache (the layers' `RegionLocator`).
    pub fn region_cache(&self) -> &RegionCache {
        &self.inner.regions
    }

    /// The store cache (the layers' `StoreResolver`).
    pub fn store_cache(&self) -> &StoreCache {
        self.inner.regions.stores()
    }

    /// The oracle.
    pub fn oracle(&self) -> &Arc<dyn Oracle> {
        &self.inner.oracle
    }

    /// The cluster id (client-go's `GetClusterID`).
    pub fn cluster_id(&self) -> u64 {
        use tikv_layers::locate::RegionLocator;
        self.inner.regions.cluster_id()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Stops every background task and waits for them to end (client-go's
    /// `KVStore.Close`, LC-6: caches before the oracle, the oracle before PD). Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the tasks are already signalled when this future is first polled past
    /// its first step; dropping it only stops the waiting.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.regions.stores().close();
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
        self.inner.oracle.close();
        if let Some(pd) = &self.inner.pd {
            pd.close();
        }
    }
}

/// Region-cache GC (RC-54), one batch per second.
async fn gc_loop(regions: RegionCache, cancel: CancellationToken) {
    // The first round runs one interval after start, as client-go's `gcRoundRobin` does.
    regions
        .run_gc(GC_INTERVAL, GC_REGIONS_PER_ROUND, cancel.cancelled())
        .await;
}

/// Store re-resolve (SC-7): every tick for all stores, and at once on need-check events.
async fn store_loop(stores: StoreCache, cancel: CancellationToken, interval: Duration) {
    let mut events = stores.take_need_check_events();
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        // All branches are cancel safe.
        let all = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => true,
            ev = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if ev.is_none() {
                    events = None;
                }
                false
            }
        };
        stores.check_and_resolve(all).await;
    }
}

/// Store health tick (RC-53, HS-4): every tick, each store's slow scores are updated.
async fn health_loop(stores: StoreCache, cancel: CancellationToken, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        // Both branches are cancel safe.
        let now = tokio::select! {
            _ = cancel.cancelled() => return,
            t = tick.tick() => t,
        };
        // The tick may wait for an active health-feedback request; stop waiting on close.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = stores.tick_health(now) => {}
        }
    }
}

/// Prefer-leader flow report (RC-53, HS-6): publish and reset the counters every tick.
async fn flows_loop(stores: StoreCache, cancel: CancellationToken, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        // Both branches are cancel safe.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        stores.report_replica_flows();
    }
}
