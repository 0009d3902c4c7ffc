//! Store health: the client-side and TiKV-side slow scores and the cached "is slow" flag the
//! replica selector reads (HS-1, HS-3, HS-4 of `shared/spec/request-path.md`; client-go's
//! `StoreHealthStatus`, `HealthStatusDetail`, `updateTiKVServerSideSlowScore` and
//! `updateTiKVServerSideSlowScoreOnTick` in `internal/locate/store_cache.go`), plus the
//! prefer-leader replica flow counters (HS-6, `replicaFlowsType` in `slow_score.go`).
//!
//! Timestamps are [`tokio::time::Instant`]s, so tests under paused time drive the decay.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::kvrpcpb;
use tokio::time::Instant;

use super::Store;
use super::metrics as m;
use super::slow_score::{SlowScoreStat, is_slow_score};
use tikv_layers::locate::Liveness;

/// From this TiKV-side score on the store counts as slow (`tikvSlowScoreSlowThreshold`).
pub const TIKV_SLOW_SCORE_THRESHOLD: i64 = 80;
/// Linear decay of a stale TiKV-side score, points per second (`tikvSlowScoreDecayRate`).
pub const TIKV_SLOW_SCORE_DECAY_PER_SEC: f64 = 20.0 / 60.0;
/// Feedback arriving sooner than this after the last accepted one is dropped
/// (`tikvSlowScoreUpdateInterval`).
pub const TIKV_SLOW_SCORE_UPDATE_INTERVAL: Duration = Duration::from_millis(100);
/// A TiKV-side score not refreshed for this long is actively re-requested, then decayed
/// (`tikvSlowScoreActiveUpdateInterval`).
pub const TIKV_SLOW_SCORE_ACTIVE_UPDATE_INTERVAL: Duration = Duration::from_secs(15);

/// Asks the store at an address to send fresh health feedback (client-go's
/// `requestHealthFeedbackCallback`, a `GetHealthFeedback` RPC whose answer reaches the cache
/// through the batch stream's [`EventListener`](crate::transport::EventListener)).
pub type HealthFeedbackRequester =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A [`HealthFeedbackRequester`] sending `GetHealthFeedback` through `transport` (client-go's
/// `requestHealthFeedbackFromKVClient`): the transport's own 2 s deadline for that command
/// bounds it, and a region error in the answer is an error.
pub fn transport_feedback_requester(
    transport: crate::transport::Transport,
) -> HealthFeedbackRequester {
    Arc::new(move |addr: String| {
        let transport = transport.clone();
        Box::pin(async move {
            use tower::ServiceExt;
            let mut req =
                tikv_layers::RpcRequest::new(kvrpcpb::GetHealthFeedbackRequest::default());
            req.target.addr = addr;
            let resp = transport.oneshot(req).await?;
            if let Some(e) = resp.region_error() {
                return Err(Error::new(ErrorDetail::Internal(format!(
                    "requested health feedback from store but received region error: {}",
                    e.message
                ))));
            }
            Ok(())
        })
    })
}

/// Both slow scores of a store at one moment (client-go's `HealthStatusDetail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthStatusDetail {
    /// The client-side score (HS-2), 0 before the first tick.
    pub client_side_slow_score: i64,
    /// The TiKV-side score (HS-3), 0 before the first feedback.
    pub tikv_side_slow_score: i64,
}

impl HealthStatusDetail {
    /// Slow when either score is at or above 80 (HS-1).
    pub fn is_slow(&self) -> bool {
        is_slow_score(u64::try_from(self.client_side_slow_score).unwrap_or(0))
            || self.tikv_side_slow_score >= TIKV_SLOW_SCORE_THRESHOLD
    }
}

impl std::fmt::Display for HealthStatusDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client-side slow score {}, tikv-side slow score {}",
            self.client_side_slow_score, self.tikv_side_slow_score
        )
    }
}

/// The TiKV-side score. Reads are lock-free; writers take `write` with `try_lock` and skip
/// when another writer holds it, as client-go does.
#[derive(Debug, Default)]
struct TikvSideScore {
    write: Mutex<()>,
    has_feedback: AtomicBool,
    score: AtomicI64,
    last_update: Mutex<Option<Instant>>,
}

impl TikvSideScore {
    fn last_update(&self) -> Option<Instant> {
        *self.last_update.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_last_update(&self, t: Instant) {
        *self.last_update.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }
}

/// The health of one store (client-go's `StoreHealthStatus`, HS-1): a client-side slow
/// score, a TiKV-side slow score, and the cached `is_slow` flag recomputed after each change.
#[derive(Debug)]
pub struct StoreHealthStatus {
    store_id: u64,
    is_slow: AtomicBool,
    client: SlowScoreStat,
    tikv: TikvSideScore,
}

impl StoreHealthStatus {
    /// A healthy status for `store_id` (both scores 0).
    pub fn new(store_id: u64) -> StoreHealthStatus {
        StoreHealthStatus {
            store_id,
            is_slow: AtomicBool::new(false),
            client: SlowScoreStat::new(),
            tikv: TikvSideScore::default(),
        }
    }

    /// The cached flag (`IsSlow`).
    pub fn is_slow(&self) -> bool {
        self.is_slow.load(Ordering::Acquire)
    }

    /// Both scores (`GetHealthStatusDetail`).
    pub fn detail(&self) -> HealthStatusDetail {
        HealthStatusDetail {
            client_side_slow_score: i64::try_from(self.client.score()).unwrap_or(i64::MAX),
            tikv_side_slow_score: self.tikv.score.load(Ordering::Acquire),
        }
    }

    /// The client-side statistic (tests and diagnostics).
    pub fn client_side(&self) -> &SlowScoreStat {
        &self.client
    }

    /// Whether TiKV ever sent this store's feedback.
    pub fn has_tikv_feedback(&self) -> bool {
        self.tikv.has_feedback.load(Ordering::Acquire)
    }

    /// Feeds one request duration to the client-side score
    /// (`recordClientSideSlowScoreStat`).
    pub fn record_client_side(&self, d: Duration) {
        self.client.record(d);
        self.update_slow_flag();
    }

    /// Sets the client-side score to the maximum (`markAlreadySlow`).
    pub fn mark_already_slow(&self) {
        self.client.mark_already_slow();
        self.update_slow_flag();
    }

    /// Recomputes the cached flag from both scores (`updateSlowFlag`), logging changes.
    pub fn update_slow_flag(&self) {
        let detail = self.detail();
        let slow = detail.is_slow();
        if self.is_slow.swap(slow, Ordering::AcqRel) != slow {
            tracing::info!(store = self.store_id, is_slow = slow, detail = %detail, "store health status changed");
        }
    }

    /// Applies a TiKV-side score received at `now` (`updateTiKVServerSideSlowScore`, HS-3):
    /// an unchanged score only refreshes the timestamp (when above 1); a changed one is
    /// dropped if it comes within 100 ms of the previous update, and otherwise stored.
    pub fn update_tikv_side(&self, score: i64, now: Instant) {
        self.apply_tikv_side(score, now);
        self.update_slow_flag();
    }

    fn apply_tikv_side(&self, score: i64, now: Instant) {
        let last_score = self.tikv.score.load(Ordering::Acquire);
        if last_score == score {
            // Keep the timestamp fresh so the tick does not think the score went stale; a
            // score of 1 is never re-requested, so it needs no refresh.
            if score > 1
                && let Ok(_guard) = self.tikv.write.try_lock()
            {
                self.tikv.set_last_update(now);
            }
            return;
        }
        let too_soon = |last: Option<Instant>| {
            last.is_some_and(|t| now.saturating_duration_since(t) < TIKV_SLOW_SCORE_UPDATE_INTERVAL)
        };
        if too_soon(self.tikv.last_update()) {
            return;
        }
        let Ok(_guard) = self.tikv.write.try_lock() else {
            // Another writer is updating it.
            return;
        };
        self.tikv.has_feedback.store(true, Ordering::Release);
        // Re-check under the write lock: a concurrent writer may have just updated it.
        if too_soon(self.tikv.last_update()) {
            return;
        }
        self.tikv.score.store(score, Ordering::Release);
        self.tikv.set_last_update(now);
    }

    /// Forces the TiKV-side score's last update time (client-go's
    /// `setTiKVSlowScoreLastUpdateTimeForTest`).
    pub fn set_tikv_last_update(&self, t: Instant) {
        let _guard = self.tikv.write.lock().unwrap_or_else(|e| e.into_inner());
        self.tikv.set_last_update(t);
    }

    /// The periodic update (`tick`, HS-4): the client-side score's tick, then the TiKV-side
    /// staleness handling, then the cached flag.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it mid-request only skips the decay of this tick.
    pub async fn tick(
        &self,
        now: Instant,
        store: &Store,
        requester: Option<&HealthFeedbackRequester>,
    ) {
        metrics::counter!(m::HEALTH_FEEDBACK_OPS, "store" => store.id().to_string(), "type" => "tick")
            .increment(1);
        self.client.update();
        self.tikv_side_on_tick(now, store, requester).await;
        self.update_slow_flag();
    }

    /// `updateTiKVServerSideSlowScoreOnTick`: a score above 1 that was not refreshed for 15 s
    /// is first re-requested from a reachable store, and if still stale decays linearly by
    /// elapsed time (floored at 1).
    async fn tikv_side_on_tick(
        &self,
        now: Instant,
        store: &Store,
        requester: Option<&HealthFeedbackRequester>,
    ) {
        if !self.has_tikv_feedback() {
            return;
        }
        // A healthy store that is simply idle sends nothing; nothing to decay.
        if self.tikv.score.load(Ordering::Acquire) <= 1 {
            return;
        }
        let needs_refresh = || {
            self.tikv.last_update().is_some_and(|t| {
                now.saturating_duration_since(t) >= TIKV_SLOW_SCORE_ACTIVE_UPDATE_INTERVAL
            })
        };
        if !needs_refresh() {
            return;
        }
        // Ask the store for fresh feedback first. Its answer arrives through the event
        // listener, which takes the write lock, so it is not held here.
        if let Some(requester) = requester
            && store.liveness() == Liveness::Reachable
        {
            let addr = store.snapshot().addr.clone();
            let sid = store.id().to_string();
            if addr.is_empty() {
                tracing::warn!(
                    store = store.id(),
                    "skip requesting health feedback: unknown address"
                );
            } else {
                metrics::counter!(m::HEALTH_FEEDBACK_OPS, "store" => sid.clone(), "type" => "active_update")
                    .increment(1);
                if let Err(e) = requester(addr).await {
                    metrics::counter!(m::HEALTH_FEEDBACK_OPS, "store" => sid, "type" => "active_update_err")
                        .increment(1);
                    tracing::warn!(store = store.id(), error = %e, "requesting health feedback failed");
                }
            }
            if !needs_refresh() {
                return;
            }
        }
        let Ok(_guard) = self.tikv.write.try_lock() else {
            return;
        };
        let Some(last) = self.tikv.last_update() else {
            return;
        };
        let elapsed = now.saturating_duration_since(last);
        if elapsed < TIKV_SLOW_SCORE_ACTIVE_UPDATE_INTERVAL {
            return;
        }
        let score = self.tikv.score.load(Ordering::Acquire);
        if score < 1 {
            return;
        }
        let decayed =
            (score as f64 - TIKV_SLOW_SCORE_DECAY_PER_SEC * elapsed.as_secs_f64()).round() as i64;
        self.tikv.score.store(decayed.max(1), Ordering::Release);
        self.tikv.set_last_update(now);
    }
}

/// Where a prefer-leader selection sent a request (client-go's `replicaFlowsType`, HS-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaFlow {
    /// To the leader.
    ToLeader = 0,
    /// To a follower.
    ToFollower = 1,
}

impl ReplicaFlow {
    /// Both kinds, in counter order.
    pub const ALL: [ReplicaFlow; 2] = [ReplicaFlow::ToLeader, ReplicaFlow::ToFollower];

    /// The metric label (client-go's names).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaFlow::ToLeader => "ToLeader",
            ReplicaFlow::ToFollower => "ToFollower",
        }
    }
}
