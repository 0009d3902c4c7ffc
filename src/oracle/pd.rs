//! The PD-backed oracle (client-go's `oracle/oracles/pd.go`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use futures_core::future::BoxFuture;
use tikv_layers::{Error, ErrorDetail, Result};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    FutureTsRead, LatestStaleRead, Oracle, OracleOption, extract_physical, nanos_to_ts,
    normalize_scope, oracle_error, unix_nanos,
};

/// The oracle refresh period `KVStore` uses (client-go's `defaultOracleUpdateInterval`).
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(2);

/// Floor of adaptive shrinking (client-go's `minAllowedAdaptiveUpdateTSInterval`).
pub(crate) const MIN_ADAPTIVE_INTERVAL: Duration = Duration::from_millis(500);
/// How far below a requested staleness the interval shrinks
/// (`adaptiveUpdateTSIntervalShrinkingPreserve`).
pub(crate) const SHRINKING_PRESERVE: Duration = Duration::from_millis(100);
/// A read this close above the interval blocks recovery
/// (`adaptiveUpdateTSIntervalBlockRecoverThreshold`).
pub(crate) const BLOCK_RECOVER_THRESHOLD: Duration = Duration::from_millis(200);
/// Recovery speed per second since the last tick (`adaptiveUpdateTSIntervalRecoverPerSecond`).
pub(crate) const RECOVER_PER_SECOND: Duration = Duration::from_millis(20);
/// Quiet time before recovering (`adaptiveUpdateTSIntervalDelayBeforeRecovering`).
pub(crate) const DELAY_BEFORE_RECOVERING: Duration = Duration::from_secs(5 * 60);

/// A call slower than this logs a warning (client-go's `slowDist`).
const SLOW_DIST: Duration = Duration::from_millis(30);

/// What the PD oracle needs from PD (the TSO part of client-go's `pd.Client`).
///
/// [`crate::pd::PdClient`] implements it; tests use small in-memory stand-ins.
pub trait TimestampSource: Send + Sync + 'static {
    /// One fresh, composed ts from the global TSO (PD `GetTS`).
    fn get_ts(&self) -> BoxFuture<'static, Result<u64>>;
    /// The minimum ts over the TSO keyspace groups, composed (PD `GetMinTS`).
    fn get_min_ts(&self) -> BoxFuture<'static, Result<u64>>;
    /// PD `SetExternalTimestamp`.
    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>>;
    /// PD `GetExternalTimestamp`.
    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>>;
}

/// Options of [`PdOracle::new`] (client-go's `PDOracleOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdOracleOptions {
    /// Refresh period of the low-resolution cache; must be positive.
    pub update_interval: Duration,
    /// Do not start the update loop (tests).
    pub no_update_ts: bool,
    /// Whether [`Oracle::validate_read_ts`] checks anything (client-go's process-wide
    /// `EnableTSValidation`, default off; TiDB turns it on). Also settable later with
    /// [`PdOracle::set_ts_validation`].
    pub enable_ts_validation: bool,
}

impl Default for PdOracleOptions {
    fn default() -> Self {
        PdOracleOptions {
            update_interval: DEFAULT_UPDATE_INTERVAL,
            no_update_ts: false,
            enable_ts_validation: false,
        }
    }
}

/// The state of the adaptive update interval (client-go's `adaptiveUpdateTSIntervalState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptiveIntervalState {
    /// No decision taken yet.
    None,
    /// The interval equals the configured one.
    Normal,
    /// The interval was shrunk for short-staleness reads.
    Adapting,
    /// The interval grows back towards the configured one.
    Recovering,
    /// The configured interval is at or below the adaptive floor; no adaptation.
    Unadjustable,
}

#[derive(Debug, Clone, Copy)]
struct LastTs {
    ts: u64,
    arrival: SystemTime,
}

#[derive(Debug)]
struct Adaptive {
    state: AdaptiveIntervalState,
    last_tick: SystemTime,
}

type Flight = watch::Receiver<Option<std::result::Result<u64, ErrorDetail>>>;

struct Inner {
    source: Arc<dyn TimestampSource>,
    last_ts: RwLock<HashMap<String, LastTs>>,
    configured_ns: AtomicU64,
    adaptive_ns: AtomicU64,
    adaptive: Mutex<Adaptive>,
    last_short_staleness_read_ms: AtomicI64,
    shrink_tx: mpsc::Sender<Duration>,
    shrink_rx: Mutex<Option<mpsc::Receiver<Duration>>>,
    validation_flights: Mutex<HashMap<String, (u64, Flight)>>,
    flight_seq: AtomicU64,
    ts_validation: AtomicBool,
    cancel: CancellationToken,
    #[cfg(test)]
    hooks: test_hooks::Hooks,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The production oracle: timestamps from PD's TSO, with a per-scope low-resolution cache
/// refreshed in the background (client-go's `oracles.pdOracle`, `NewPdOracle`).
///
/// A cheap handle (`Arc` inside). The update loop stops on [`Oracle::close`] or when the
/// last handle is dropped.
#[derive(Clone)]
pub struct PdOracle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PdOracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdOracle")
            .field("configured_interval", &self.configured_interval())
            .field("adaptive_interval", &self.adaptive_interval())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PdOracle {
    /// Creates the oracle, starts its update loop (unless `no_update_ts`) and seeds the
    /// global scope with one synchronous fetch (client-go's `NewPdOracle`).
    ///
    /// Fails when `update_interval` is zero or when the seeding fetch fails (the oracle is
    /// closed then). Must run inside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped construction leaves nothing running.
    pub async fn new(
        source: Arc<dyn TimestampSource>,
        options: PdOracleOptions,
    ) -> Result<PdOracle> {
        if options.update_interval.is_zero() {
            return Err(oracle_error("updateInterval must be > 0"));
        }
        let oracle = PdOracle::build(source, &options);
        if !options.no_update_ts {
            oracle.start_update_loop();
        }
        if let Err(e) = oracle.fetch(super::GLOBAL_TXN_SCOPE).await {
            oracle.close();
            return Err(e);
        }
        Ok(oracle)
    }

    /// The oracle without its loop and without seeding.
    fn build(source: Arc<dyn TimestampSource>, options: &PdOracleOptions) -> PdOracle {
        let (shrink_tx, shrink_rx) = mpsc::channel(1);
        let ns = dur_ns(options.update_interval);
        let inner = Arc::new(Inner {
            source,
            last_ts: RwLock::new(HashMap::new()),
            configured_ns: AtomicU64::new(ns),
            adaptive_ns: AtomicU64::new(ns),
            adaptive: Mutex::new(Adaptive {
                state: AdaptiveIntervalState::None,
                last_tick: SystemTime::now(),
            }),
            last_short_staleness_read_ms: AtomicI64::new(0),
            shrink_tx,
            shrink_rx: Mutex::new(Some(shrink_rx)),
            validation_flights: Mutex::new(HashMap::new()),
            flight_seq: AtomicU64::new(0),
            ts_validation: AtomicBool::new(options.enable_ts_validation),
            cancel: CancellationToken::new(),
            #[cfg(test)]
            hooks: Default::default(),
        });
        PdOracle { inner }
    }

    /// Turns read-ts validation on or off (client-go's `EnableTSValidation`).
    pub fn set_ts_validation(&self, enabled: bool) {
        self.inner.ts_validation.store(enabled, Ordering::Relaxed);
    }

    /// The configured low-resolution refresh period.
    pub fn configured_interval(&self) -> Duration {
        Duration::from_nanos(self.inner.configured_ns.load(Ordering::Relaxed))
    }

    /// The refresh period in effect after adaptation
    /// (client-go's `adaptiveLastTSUpdateInterval`).
    pub fn adaptive_interval(&self) -> Duration {
        Duration::from_nanos(self.inner.adaptive_ns.load(Ordering::Relaxed))
    }

    /// The current state of the adaptive interval machine.
    pub fn adaptive_state(&self) -> AdaptiveIntervalState {
        lock(&self.inner.adaptive).state
    }

    fn start_update_loop(&self) {
        let Some(rx) = lock(&self.inner.shrink_rx).take() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let cancel = self.inner.cancel.clone();
        let period = self.configured_interval();
        tokio::spawn(update_loop(weak, cancel, rx, period));
    }

    /// One PD fetch for `scope`, pushed into the cache (client-go's `GetTimestamp`).
    async fn fetch(&self, scope: &str) -> Result<u64> {
        fetch(&self.inner, scope).await
    }

    fn last_ts(&self, scope: &str) -> Option<LastTs> {
        let map = self.inner.last_ts.read().unwrap_or_else(|e| e.into_inner());
        map.get(normalize_scope(scope)).copied()
    }

    #[cfg(test)]
    /// Stores `ts` for `scope` when it is newer than the cached one (client-go's
    /// `setLastTS`); the arrival time never moves backwards.
    fn set_last_ts(&self, ts: u64, scope: &str) {
        set_last_ts(&self.inner, ts, scope);
    }

    #[cfg(test)]
    /// The next refresh period (client-go's `nextUpdateInterval`, OR-9). `required` is zero
    /// for ticks and the requested staleness for shrink requests.
    pub(crate) fn next_update_interval(&self, now: SystemTime, required: Duration) -> Duration {
        next_update_interval(&self.inner, now, required)
    }

    /// Feedback from a stale read (client-go's
    /// `adjustUpdateLowResolutionTSIntervalWithRequestedStaleness`, OR-10).
    pub(crate) fn adjust_with_requested_staleness(
        &self,
        read_ts: u64,
        current_ts: u64,
        now: SystemTime,
    ) {
        adjust(&self.inner, read_ts, current_ts, now);
    }

    fn stale_from(&self, last: LastTs, prev_second: u64) -> Result<u64> {
        stale_timestamp_with_last_ts(last, prev_second, SystemTime::now())
    }

    /// The PD fetch shared by concurrent validations of one scope (client-go's
    /// `getCurrentTSForValidation`). The fetch runs on its own task, so a dropped caller
    /// does not cancel it for the others.
    async fn current_ts_for_validation(&self, scope: &str) -> Result<u64> {
        let mut rx = {
            let mut flights = lock(&self.inner.validation_flights);
            match flights.get(scope) {
                Some((_, rx)) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let seq = self.inner.flight_seq.fetch_add(1, Ordering::Relaxed);
                    flights.insert(scope.to_owned(), (seq, rx.clone()));
                    let inner = self.inner.clone();
                    let scope = scope.to_owned();
                    tokio::spawn(async move {
                        let res = fetch(&inner, &scope).await;
                        #[cfg(test)]
                        inner.hooks.before_validation_return().await;
                        {
                            let mut flights = lock(&inner.validation_flights);
                            if flights.get(&scope).is_some_and(|(s, _)| *s == seq) {
                                flights.remove(&scope);
                            }
                        }
                        let _ = tx.send(Some(res.map_err(Error::into_detail)));
                    });
                    rx
                }
            }
        };
        let res = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| Error::new(ErrorDetail::Internal("validation fetch vanished".into())))?;
        match res.as_ref() {
            Some(Ok(ts)) => Ok(*ts),
            Some(Err(detail)) => Err(Error::new(detail.clone())),
            None => Err(Error::new(ErrorDetail::Internal(
                "validation fetch vanished".into(),
            ))),
        }
    }

    async fn validate(self, read_ts: u64, is_stale_read: bool, scope: String) -> Result<()> {
        if !self.inner.ts_validation.load(Ordering::Relaxed) {
            return Ok(());
        }
        if read_ts >= i64::MAX as u64 && read_ts < u64::MAX {
            return Err(oracle_error(format!(
                "MaxInt64 <= readTS < MaxUint64, readTS={read_ts}"
            )));
        }
        if read_ts == u64::MAX {
            return if is_stale_read {
                Err(LatestStaleRead.into_error())
            } else {
                Ok(())
            };
        }
        let mut retrying = false;
        loop {
            let last = self.last_ts(&scope);
            match last {
                Some(last) if read_ts <= last.ts => {
                    if !retrying && is_stale_read {
                        match self.stale_from(last, 0) {
                            Ok(estimate) => self.adjust_with_requested_staleness(
                                read_ts,
                                estimate,
                                SystemTime::now(),
                            ),
                            Err(e) => tracing::warn!(
                                error = %e,
                                read_ts,
                                "failed to estimate current ts for adapting the update interval"
                            ),
                        }
                    }
                    return Ok(());
                }
                _ => {
                    let current = self.current_ts_for_validation(&scope).await.map_err(|e| {
                        oracle_error(format!("fail to validate read timestamp: {e}")).with_source(e)
                    })?;
                    if is_stale_read && !retrying {
                        self.adjust_with_requested_staleness(read_ts, current, SystemTime::now());
                    }
                    if read_ts > current {
                        #[cfg(test)]
                        let skip_retry = self.inner.hooks.skip_retry.load(Ordering::Relaxed);
                        #[cfg(not(test))]
                        let skip_retry = false;
                        if !retrying && !skip_retry {
                            retrying = true;
                            continue;
                        }
                        return Err(FutureTsRead {
                            read_ts,
                            current_ts: current,
                        }
                        .into_error());
                    }
                    return Ok(());
                }
            }
        }
    }
}

async fn fetch(inner: &Arc<Inner>, scope: &str) -> Result<u64> {
    let start = tokio::time::Instant::now();
    let ts = inner.source.get_ts().await?;
    let elapsed = start.elapsed();
    if elapsed > SLOW_DIST {
        tracing::warn!(?elapsed, "get timestamp too slow");
    }
    set_last_ts(inner, ts, scope);
    Ok(ts)
}

fn set_last_ts(inner: &Inner, ts: u64, scope: &str) {
    let scope = normalize_scope(scope);
    let now = SystemTime::now();
    let mut map = inner.last_ts.write().unwrap_or_else(|e| e.into_inner());
    match map.get_mut(scope) {
        None => {
            map.insert(scope.to_owned(), LastTs { ts, arrival: now });
        }
        Some(last) => {
            if ts <= last.ts {
                return;
            }
            let arrival = if last.arrival > now {
                last.arrival
            } else {
                now
            };
            *last = LastTs { ts, arrival };
        }
    }
}

fn stale_timestamp_with_last_ts(last: LastTs, prev_second: u64, now: SystemTime) -> Result<u64> {
    let physical_ms = extract_physical(last.ts);
    let physical_secs = physical_ms.div_euclid(1000);
    if physical_secs < 0 || (physical_secs as u64) <= prev_second {
        return Err(oracle_error(format!("invalid prevSecond {prev_second}")));
    }
    let physical_ns = i128::from(physical_ms) * 1_000_000;
    let back_ns = i128::from(prev_second) * 1_000_000_000;
    let stale = physical_ns + (unix_nanos(now) - back_ns - unix_nanos(last.arrival));
    Ok(nanos_to_ts(stale))
}

fn next_update_interval(inner: &Inner, now: SystemTime, required: Duration) -> Duration {
    use AdaptiveIntervalState as S;
    let mut st = lock(&inner.adaptive);
    let configured = Duration::from_nanos(inner.configured_ns.load(Ordering::Relaxed));
    let prev = Duration::from_nanos(inner.adaptive_ns.load(Ordering::Relaxed));
    let last_short_ms = inner.last_short_staleness_read_ms.load(Ordering::Relaxed);
    let now_ms = super::get_physical(now);
    let since_short = Duration::from_millis(now_ms.saturating_sub(last_short_ms).max(0) as u64);
    // `now - lastShort < DELAY` in Go also holds when lastShort is in the future.
    let recent_short = now_ms < last_short_ms || since_short < DELAY_BEFORE_RECOVERING;
    let current = prev;

    let unadjustable =
        || (configured <= MIN_ADAPTIVE_INTERVAL).then_some((S::Unadjustable, configured));
    let adapting = || {
        if !required.is_zero() && required < current && current > MIN_ADAPTIVE_INTERVAL {
            let shrunk = required
                .saturating_sub(SHRINKING_PRESERVE)
                .max(MIN_ADAPTIVE_INTERVAL);
            return Some((S::Adapting, shrunk));
        }
        if current != configured && recent_short {
            return Some((S::Adapting, current));
        }
        None
    };
    let normal = |cur: Duration| {
        (configured > MIN_ADAPTIVE_INTERVAL && cur == configured).then_some((S::Normal, cur))
    };
    let last_tick = st.last_tick;
    let recovering = || {
        if current == configured || recent_short {
            return None;
        }
        let since_tick = unix_nanos(now) - unix_nanos(last_tick);
        let secs = since_tick as f64 / 1e9;
        let grow_ns = secs * RECOVER_PER_SECOND.as_nanos() as f64;
        let grown = if grow_ns <= 0.0 {
            current
        } else {
            current + Duration::from_nanos(grow_ns as u64)
        };
        Some((S::Recovering, grown.min(configured)))
    };

    let decision = if !required.is_zero() {
        unadjustable().or_else(adapting)
    } else {
        unadjustable()
            .or_else(adapting)
            .or_else(|| normal(current))
            .or_else(recovering)
    };
    let mut interval = current;
    if let Some((mut state, new)) = decision {
        interval = new;
        if state == S::Recovering
            && let Some((s, n)) = normal(interval)
        {
            state = s;
            interval = n;
        }
        inner.adaptive_ns.store(dur_ns(interval), Ordering::Relaxed);
        if st.state != state {
            tracing::info!(
                ?configured,
                prev_adaptive = ?prev,
                new_adaptive = ?interval,
                ?required,
                prev_state = ?st.state,
                new_state = ?state,
                "adaptive update ts interval state transition"
            );
            st.state = state;
        }
    }
    metrics::gauge!(tikv_layers::metrics::names::LOW_RESOLUTION_TSO_UPDATE_INTERVAL_SECONDS)
        .set(interval.as_secs_f64());
    interval
}

fn adjust(inner: &Inner, read_ts: u64, current_ts: u64, now: SystemTime) {
    let required_ms = extract_physical(current_ts) - extract_physical(read_ts);
    let current = Duration::from_nanos(inner.adaptive_ns.load(Ordering::Relaxed));
    let current_ms = current.as_millis() as i64;
    if required_ms <= current_ms + BLOCK_RECOVER_THRESHOLD.as_millis() as i64 {
        let now_ms = super::get_physical(now);
        let last = inner.last_short_staleness_read_ms.load(Ordering::Relaxed);
        if last < now_ms {
            let _ = inner.last_short_staleness_read_ms.compare_exchange(
                last,
                now_ms,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
    if required_ms <= current_ms && current > MIN_ADAPTIVE_INTERVAL {
        let required = Duration::from_millis(required_ms.max(1) as u64);
        let _ = inner.shrink_tx.try_send(required);
    }
}

/// The low-resolution refresh loop (client-go's `updateTS`, OR-8). Holds only a weak
/// reference so dropping the last oracle handle ends it.
async fn update_loop(
    weak: Weak<Inner>,
    cancel: CancellationToken,
    mut shrink_rx: mpsc::Receiver<Duration>,
    mut period: Duration,
) {
    let mut ticker = new_ticker(period);
    loop {
        // Every branch is cancel safe: `Interval::tick`, `Receiver::recv` and
        // `cancelled` lose nothing when another branch wins.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                let now = SystemTime::now();
                let next = next_update_interval(&inner, now, Duration::ZERO);
                refresh_all(&inner, now).await;
                if next != period {
                    period = next;
                    ticker = new_ticker(period);
                }
            }
            required = shrink_rx.recv() => {
                let Some(required) = required else { return };
                let Some(inner) = weak.upgrade() else { return };
                let now = SystemTime::now();
                let next = next_update_interval(&inner, now, required);
                if next != period {
                    period = next;
                    let last_tick = lock(&inner.adaptive).last_tick;
                    let since = now.duration_since(last_tick).unwrap_or_default();
                    if since >= period {
                        refresh_all(&inner, SystemTime::now()).await;
                    }
                    ticker = new_ticker(period);
                }
            }
        }
    }
}

fn new_ticker(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(1));
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

async fn refresh_all(inner: &Arc<Inner>, now: SystemTime) {
    let scopes: Vec<String> = {
        let map = inner.last_ts.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    };
    for scope in scopes {
        if let Err(e) = fetch(inner, &scope).await {
            tracing::error!(txn_scope = %scope, error = %e, "updateTS error");
        }
    }
    lock(&inner.adaptive).last_tick = now;
}

impl Oracle for PdOracle {
    fn get_timestamp(&self, opt: &OracleOption) -> BoxFuture<'static, Result<u64>> {
        let this = self.clone();
        let scope = opt.scope().to_owned();
        Box::pin(async move { this.fetch(&scope).await })
    }

    fn get_low_resolution_timestamp(&self, opt: &OracleOption) -> Result<u64> {
        match self.last_ts(opt.scope()) {
            Some(last) => Ok(last.ts),
            None => Err(oracle_error(format!(
                "get low resolution timestamp fail, invalid txnScope = {}",
                opt.txn_scope
            ))),
        }
    }

    fn set_low_resolution_timestamp_update_interval(&self, interval: Duration) -> Result<()> {
        if interval.is_zero() {
            return Err(oracle_error("updateInterval must be > 0"));
        }
        let _st = lock(&self.inner.adaptive);
        let new = dur_ns(interval);
        let prev = self.inner.configured_ns.swap(new, Ordering::Relaxed);
        let adaptive = self.inner.adaptive_ns.load(Ordering::Relaxed);
        if new == prev {
            return Ok(());
        }
        let updated = adaptive == prev || new < adaptive;
        if updated {
            self.inner.adaptive_ns.store(new, Ordering::Relaxed);
        }
        tracing::info!(
            previous = ?Duration::from_nanos(prev),
            new = ?interval,
            prev_adaptive = ?Duration::from_nanos(adaptive),
            adaptive_updated = updated,
            "updated low resolution ts update interval"
        );
        Ok(())
    }

    fn get_stale_timestamp(
        &self,
        txn_scope: &str,
        prev_second: u64,
    ) -> BoxFuture<'static, Result<u64>> {
        let this = self.clone();
        let scope = normalize_scope(txn_scope).to_owned();
        Box::pin(async move {
            let res = match this.last_ts(&scope) {
                Some(last) => this.stale_from(last, prev_second),
                None => Err(oracle_error(format!(
                    "get stale timestamp fail, txnScope: {scope}"
                ))),
            };
            match res {
                Ok(ts) => Ok(ts),
                Err(e) => {
                    if !e.to_string().contains("invalid prevSecond") {
                        this.fetch(&scope).await?;
                    }
                    Err(e)
                }
            }
        })
    }

    fn is_expired(&self, lock_ts: u64, ttl_ms: u64, opt: &OracleOption) -> bool {
        match self.last_ts(opt.scope()) {
            None => true,
            Some(last) => {
                extract_physical(last.ts) >= extract_physical(lock_ts).saturating_add(ttl_ms as i64)
            }
        }
    }

    fn until_expired(&self, lock_ts: u64, ttl_ms: u64, opt: &OracleOption) -> i64 {
        match self.last_ts(opt.scope()) {
            None => 0,
            Some(last) => extract_physical(lock_ts) + ttl_ms as i64 - extract_physical(last.ts),
        }
    }

    fn close(&self) {
        self.inner.cancel.cancel();
    }

    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        self.inner.source.get_external_timestamp()
    }

    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>> {
        self.inner.source.set_external_timestamp(ts)
    }

    fn get_all_tso_keyspace_group_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let fut = self.inner.source.get_min_ts();
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let ts = fut.await?;
            if start.elapsed() > SLOW_DIST {
                tracing::warn!(elapsed = ?start.elapsed(), "get min timestamp too slow");
            }
            Ok(ts)
        })
    }

    fn validate_read_ts(
        &self,
        read_ts: u64,
        is_stale_read: bool,
        opt: &OracleOption,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(
            self.clone()
                .validate(read_ts, is_stale_read, opt.scope().to_owned()),
        )
    }
}

#[cfg(test)]
impl PdOracle {
    /// client-go's `NewEmptyPDOracle` / `NewPdOracleWithClient`: no loop, no seed.
    pub(crate) fn test_empty(source: Arc<dyn TimestampSource>, interval: Duration) -> PdOracle {
        PdOracle::build(
            source,
            &PdOracleOptions {
                update_interval: interval,
                no_update_ts: true,
                enable_ts_validation: false,
            },
        )
    }

    pub(crate) fn hooks(&self) -> &test_hooks::Hooks {
        &self.inner.hooks
    }

    /// client-go's `SetEmptyPDOracleLastTs`.
    pub(crate) fn test_set_last_ts(&self, ts: u64) {
        let mut map = self
            .inner
            .last_ts
            .write()
            .unwrap_or_else(|e| e.into_inner());
        map.insert(
            super::GLOBAL_TXN_SCOPE.to_owned(),
            LastTs {
                ts,
                arrival: super::get_time_from_ts(ts),
            },
        );
    }

    pub(crate) fn test_last_ts(&self, scope: &str) -> Option<u64> {
        self.last_ts(scope).map(|l| l.ts)
    }

    pub(crate) fn test_set_last_tick(&self, t: SystemTime) {
        lock(&self.inner.adaptive).last_tick = t;
    }

    pub(crate) fn test_last_short_staleness_read_ms(&self) -> i64 {
        self.inner
            .last_short_staleness_read_ms
            .load(Ordering::Relaxed)
    }

    /// Takes a pending shrink request, if any (the loop must not be running).
    pub(crate) fn test_try_recv_shrink(&self) -> Option<Duration> {
        lock(&self.inner.shrink_rx).as_mut()?.try_recv().ok()
    }

    pub(crate) fn test_start_update_loop(&self) {
        self.start_update_loop();
    }

    pub(crate) fn test_set_last_ts_scope(&self, ts: u64, scope: &str) {
        self.set_last_ts(ts, scope);
    }
}

#[cfg(test)]
pub(crate) mod test_hooks {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use tokio::sync::Semaphore;

    /// Test-only stand-ins for client-go's failpoints in this file.
    #[derive(Default)]
    pub(crate) struct Hooks {
        /// `validateReadTSRetryGetTS = return("skip")`.
        pub(crate) skip_retry: AtomicBool,
        /// `getCurrentTSForValidationBeforeReturn = pause`: when set, the shared fetch
        /// waits for one permit before publishing its result.
        pub(crate) before_return: Mutex<Option<std::sync::Arc<Semaphore>>>,
    }

    impl Hooks {
        pub(crate) async fn before_validation_return(&self) {
            let gate = self
                .before_return
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(gate) = gate
                && let Ok(p) = gate.acquire().await
            {
                p.forget();
            }
        }
    }
}
