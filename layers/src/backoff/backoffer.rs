//! The per-operation sleep budget (client-go's `retry.Backoffer`).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tikv_proto::errorpb;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorDetail, MISMATCH_CLUSTER_ID, Result};
use crate::metrics::names::{BACKOFF_SECONDS, labels};

use super::MAX_RECORD_BACKOFF_ERR_COUNT;
use super::kind::{BackoffConfig, BackoffKind, excluded_limit_ms};
use super::record::RecordedError;
use super::schedule::{BackoffPolicy, Schedule, ScheduleState};
use super::vars::Variables;

/// Identity of a backoffer, used to recognise a fork's ancestors (client-go compares
/// pointers).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A link to the backoffer a fork was made from: its identity, the kinds it had used at
/// fork time, and its own parent.
#[derive(Debug)]
struct ParentLink {
    id: u64,
    types: Vec<Cow<'static, str>>,
    parent: Option<Arc<ParentLink>>,
}

/// Sleep and count of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindStat {
    name: Cow<'static, str>,
    sleep_ms: u64,
    times: u64,
}

/// What [`Backoffer::begin`] decided: how long to sleep, and how to record it afterwards.
#[derive(Debug)]
pub(crate) struct SleepPlan {
    name: Cow<'static, str>,
    excluded: bool,
    real_sleep_ms: u64,
    saved: ScheduleState,
    cancel: CancellationToken,
}

impl SleepPlan {
    /// Sleeps the planned time; `false` if the cancellation token fired first.
    pub(crate) async fn sleep(&self) -> bool {
        let sleep = tokio::time::sleep(Duration::from_millis(self.real_sleep_ms));
        self.cancel.run_until_cancelled(sleep).await.is_some()
    }
}

/// A retry helper with a total sleep budget, mirroring client-go's `retry.Backoffer`.
///
/// One backoffer serves one logical operation (a get, a prewrite, a scan, ...) and all
/// its sub-requests. Every retry calls [`backoff`](Self::backoff) with the
/// [`BackoffKind`] that explains it; the backoffer
///
/// 1. returns the reason at once if the operation was canceled, if this is a no-op
///    backoffer, or if the reason is a cluster-id mismatch;
/// 2. checks the budget **before** sleeping: once the non-excluded sleep reaches
///    [`max_sleep_ms`](Self::max_sleep_ms) (or an excluded kind's own sleep reaches its
///    limit and the budget) it returns the error of the kind that slept the longest;
/// 3. otherwise records the reason, sleeps the kind's next delay, updates the counters,
///    and fails if the caller's kill flag is set.
///
/// The last sleep may therefore overshoot the budget by up to one cap. A budget of `0`
/// is unlimited. Sleeps use [`tokio::time::sleep`] and end early, returning `Ok`, when
/// the [cancellation token](Self::cancel_token) fires; the next call then fails with its
/// reason (client-go's behaviour with a done context).
///
/// [`Clone`] copies the counters but restarts every kind's exponential progression;
/// [`fork`](Self::fork) additionally gives the copy a child cancellation token and
/// remembers its parent, so that [`update_using_forked`](Self::update_using_forked) can
/// fold the fork's sleep back.
#[derive(Debug)]
#[doc(alias = "retry.Backoffer")]
pub struct Backoffer {
    id: u64,
    cancel: CancellationToken,
    max_sleep_ms: u64,
    total_sleep_ms: u64,
    excluded_sleep_ms: u64,
    vars: Variables,
    noop: bool,
    errors: VecDeque<RecordedError>,
    errors_num: usize,
    configs: Vec<BackoffConfig>,
    kinds: Vec<KindStat>,
    schedules: Vec<(Cow<'static, str>, Schedule)>,
    parent: Option<Arc<ParentLink>>,
    rng_seed: Option<u64>,
    schedules_created: u64,
    excluded_limit_override: Option<u64>,
}

impl Backoffer {
    /// A backoffer with a budget of `max_sleep_ms` (0 = unlimited) and default variables,
    /// **without** applying the budget weight (client-go's `NewBackoffer`; most callers
    /// want [`with_vars`](Self::with_vars)).
    #[doc(alias = "NewBackoffer")]
    pub fn new(max_sleep_ms: u64) -> Backoffer {
        Backoffer {
            id: next_id(),
            cancel: CancellationToken::new(),
            max_sleep_ms,
            total_sleep_ms: 0,
            excluded_sleep_ms: 0,
            vars: Variables::default(),
            noop: false,
            // Grown on the first recorded error: most requests never back off.
            errors: VecDeque::new(),
            errors_num: 0,
            configs: Vec::new(),
            kinds: Vec::new(),
            schedules: Vec::new(),
            parent: None,
            rng_seed: None,
            schedules_created: 0,
            excluded_limit_override: None,
        }
    }

    /// A backoffer whose budget is `max_sleep_ms` multiplied by
    /// [`Variables::backoff_weight`] and which observes the variables' kill flag
    /// (client-go's `NewBackofferWithVars`). The weight is applied only to a positive
    /// budget whose product stays within `i32::MAX` milliseconds, as in client-go; a
    /// weight of 0 leaves the budget as is.
    #[doc(alias = "NewBackofferWithVars")]
    pub fn with_vars(max_sleep_ms: u64, vars: Variables) -> Backoffer {
        let mut bo = Backoffer::new(max_sleep_ms);
        bo.vars = vars;
        bo.apply_weight();
        bo
    }

    /// A backoffer that never sleeps: every [`backoff`](Self::backoff) returns its
    /// reason at once (client-go's `NewNoopBackoff`).
    #[doc(alias = "NewNoopBackoff")]
    pub fn noop() -> Backoffer {
        let mut bo = Backoffer::new(0);
        bo.noop = true;
        bo
    }

    /// Binds the backoffer to a cancellation token, standing in for client-go's context
    /// (`SetCtx`): once it is canceled, every backoff returns its reason.
    #[must_use]
    pub fn with_cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Seeds the random source of every delay schedule this backoffer creates, so the
    /// jittered delays are reproducible (for tests).
    #[must_use]
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Multiplies the budget by the weight (client-go's `withVars`).
    fn apply_weight(&mut self) {
        let weight = u64::from(self.vars.backoff_weight);
        if self.max_sleep_ms > 0 && weight > 0 && i32::MAX as u64 / weight >= self.max_sleep_ms {
            self.max_sleep_ms *= weight;
        }
    }

    // ----- backing off -----

    /// Sleeps the kind's next delay and records `reason`, or fails once the budget is
    /// exhausted (client-go's `Backoff`).
    ///
    /// On exhaustion the error's detail is the configured error of the non-excluded kind
    /// that slept the longest (e.g. [`ErrorDetail::RegionUnavailable`] when `regionMiss`
    /// dominated), with `reason` as its source; if no such kind has slept, `reason`
    /// itself is returned. A canceled token, a no-op backoffer or a cluster-id mismatch
    /// return `reason` unchanged; a set kill flag after the sleep returns
    /// [`ErrorDetail::QueryInterrupted`].
    #[doc(alias = "Backoff")]
    pub async fn backoff(&mut self, kind: impl Into<BackoffConfig>, reason: Error) -> Result<()> {
        self.backoff_inner(kind.into(), None, reason).await
    }

    /// Like [`backoff`](Self::backoff), but no single sleep lasts longer than
    /// `max_sleep_ms` (client-go's `BackoffWithCfgAndMaxSleep`); the kind's progression
    /// still advances by its uncapped delay.
    #[doc(alias = "BackoffWithCfgAndMaxSleep")]
    pub async fn backoff_with_max_sleep(
        &mut self,
        kind: impl Into<BackoffConfig>,
        max_sleep_ms: u64,
        reason: Error,
    ) -> Result<()> {
        self.backoff_inner(kind.into(), Some(max_sleep_ms), reason)
            .await
    }

    /// [`backoff_with_max_sleep`](Self::backoff_with_max_sleep) with the `txnLockFast`
    /// kind (client-go's `BackoffWithMaxSleepTxnLockFast`).
    #[doc(alias = "BackoffWithMaxSleepTxnLockFast")]
    pub async fn backoff_with_max_sleep_txn_lock_fast(
        &mut self,
        max_sleep_ms: u64,
        reason: Error,
    ) -> Result<()> {
        self.backoff_with_max_sleep(BackoffKind::TxnLockFast, max_sleep_ms, reason)
            .await
    }

    /// Backs off `regionMiss` for region errors that need it (client-go's
    /// `MayBackoffForRegionError`); see [`may_backoff_for_region_error`].
    ///
    /// [`may_backoff_for_region_error`]: super::may_backoff_for_region_error
    pub async fn may_backoff_for_region_error(
        &mut self,
        region_err: &errorpb::Error,
    ) -> Result<()> {
        if !region_error_needs_backoff(region_err) {
            return Ok(());
        }
        self.backoff(BackoffKind::RegionMiss, Error::from(region_err.clone()))
            .await
    }

    async fn backoff_inner(
        &mut self,
        cfg: BackoffConfig,
        max_sleep_ms: Option<u64>,
        reason: Error,
    ) -> Result<()> {
        let plan = self.begin(cfg, max_sleep_ms, reason)?;
        let completed = plan.sleep().await;
        self.finish(plan, completed)
    }

    /// Steps before the sleep: the early exits, the budget check, recording the reason and
    /// drawing the delay. Never awaits, so a shared handle can run it under its lock.
    pub(crate) fn begin(
        &mut self,
        cfg: BackoffConfig,
        max_sleep_ms: Option<u64>,
        reason: Error,
    ) -> Result<SleepPlan> {
        if is_cluster_id_mismatch(&reason) {
            tracing::error!(error = %reason, "critical error: cluster id mismatch, not retrying");
            return Err(reason);
        }
        if self.cancel.is_cancelled() || self.noop {
            return Err(reason);
        }
        let excluded_limit = self.excluded_limit(cfg.name());
        let budget_exceeded =
            self.total_sleep_ms.saturating_sub(self.excluded_sleep_ms) >= self.max_sleep_ms;
        let excluded_exceeded = excluded_limit.is_some_and(|limit| {
            self.excluded_sleep_ms >= limit && self.excluded_sleep_ms >= self.max_sleep_ms
        });
        if self.max_sleep_ms > 0 && (budget_exceeded || excluded_exceeded) {
            return Err(self.budget_error(&cfg, reason, budget_exceeded, excluded_exceeded));
        }

        self.record_error(reason.to_string());
        let name = cfg.name_cow().clone();
        let lock_fast_base = u64::from(self.vars.backoff_lock_fast);
        let schedule = self.schedule_for(&cfg, lock_fast_base);
        let saved = schedule.state();
        let sleep_ms = schedule
            .next_backoff()
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let real_sleep_ms = max_sleep_ms.map_or(sleep_ms, |max| sleep_ms.min(max));
        self.configs.push(cfg);
        Ok(SleepPlan {
            name,
            excluded: excluded_limit.is_some(),
            real_sleep_ms,
            saved,
            cancel: self.cancel.clone(),
        })
    }

    /// Steps after the sleep: the counters and the kill check. A canceled sleep counts as
    /// 0 ms and does not advance the kind's progression.
    pub(crate) fn finish(&mut self, plan: SleepPlan, completed: bool) -> Result<()> {
        let slept = if completed {
            plan.real_sleep_ms
        } else {
            if let Some((_, s)) = self.schedules.iter_mut().find(|(n, _)| *n == plan.name) {
                s.restore(plan.saved);
            }
            0
        };
        self.total_sleep_ms = self.total_sleep_ms.saturating_add(slept);
        if plan.excluded {
            self.excluded_sleep_ms = self.excluded_sleep_ms.saturating_add(slept);
        }
        let stat = match self.kinds.iter().position(|k| k.name == plan.name) {
            Some(i) => &mut self.kinds[i],
            None => {
                self.kinds.push(KindStat {
                    name: plan.name.clone(),
                    sleep_ms: 0,
                    times: 0,
                });
                let last = self.kinds.len() - 1;
                &mut self.kinds[last]
            }
        };
        stat.sleep_ms = stat.sleep_ms.saturating_add(slept);
        stat.times += 1;
        // client-go observes the kind's backoff histogram after every sleep, before the
        // kill check, with 0 for a sleep cut short by cancellation.
        observe_sleep(&plan.name, slept);
        self.check_killed()?;
        tracing::debug!(
            kind = %plan.name,
            slept_ms = slept,
            total_sleep_ms = self.total_sleep_ms,
            excluded_sleep_ms = self.excluded_sleep_ms,
            max_sleep_ms = self.max_sleep_ms,
            "retry later"
        );
        Ok(())
    }

    /// The error returned when the budget is exhausted, with the log client-go writes.
    fn budget_error(
        &self,
        cfg: &BackoffConfig,
        reason: Error,
        budget_exceeded: bool,
        excluded_exceeded: bool,
    ) -> Error {
        let errors = self
            .latest_errors()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let detail = self
            .kinds
            .iter()
            .map(|k| format!("{}:{}", k.name, k.times))
            .collect::<Vec<_>>()
            .join(", ");
        let longest = self.longest_sleep_config();
        tracing::warn!(
            kind = %cfg,
            max_sleep_ms = self.max_sleep_ms,
            total_backoff_times = self.total_backoff_times(),
            backoff_detail = %detail,
            budget_exceeded,
            excluded_exceeded,
            longest_sleep_kind = longest.map(|(c, _)| c.name()),
            longest_sleep_ms = longest.map(|(_, ms)| ms),
            "backoffer.maxSleep is exceeded, errors:\n{errors}"
        );
        match longest {
            Some((c, _)) => Error::new(c.error().clone()).with_source(reason),
            None => reason,
        }
    }

    /// The configuration of the non-excluded kind with the largest accumulated sleep,
    /// looked up in the list of configurations used (client-go's `longestSleepCfg`). Ties
    /// go to the kind used first; a kind with no configuration in the list (its sleep was
    /// adopted from a fork) yields `None`, as in client-go.
    fn longest_sleep_config(&self) -> Option<(&BackoffConfig, u64)> {
        let mut best: Option<&KindStat> = None;
        for k in &self.kinds {
            if k.sleep_ms > best.map_or(0, |b| b.sleep_ms) && self.excluded_limit(&k.name).is_none()
            {
                best = Some(k);
            }
        }
        let best = best?;
        self.configs
            .iter()
            .find(|c| c.name() == best.name)
            .map(|c| (c, best.sleep_ms))
    }

    fn excluded_limit(&self, name: &str) -> Option<u64> {
        excluded_limit_ms(name).map(|limit| self.excluded_limit_override.unwrap_or(limit))
    }

    /// Overrides the excluded kinds' limit (client-go's test-only `setBackoffExcluded`).
    #[cfg(test)]
    pub(crate) fn set_excluded_limit(&mut self, limit_ms: u64) {
        self.excluded_limit_override = Some(limit_ms);
    }

    fn record_error(&mut self, reason: String) {
        if self.errors.len() == MAX_RECORD_BACKOFF_ERR_COUNT {
            self.errors.pop_front();
        }
        self.errors.push_back(RecordedError::now(reason));
        self.errors_num += 1;
    }

    fn schedule_for(&mut self, cfg: &BackoffConfig, lock_fast_base: u64) -> &mut Schedule {
        let pos = self.schedules.iter().position(|(n, _)| n == cfg.name());
        let i = match pos {
            Some(i) => i,
            None => {
                let base = if cfg.uses_lock_fast_base() {
                    lock_fast_base
                } else {
                    cfg.base_ms()
                };
                let rng = self.new_rng(cfg.name());
                self.schedules.push((
                    cfg.name_cow().clone(),
                    Schedule::new(base, cfg.cap_ms(), cfg.jitter(), rng),
                ));
                self.schedules.len() - 1
            }
        };
        &mut self.schedules[i].1
    }

    fn new_rng(&mut self, name: &str) -> SmallRng {
        self.schedules_created += 1;
        match self.rng_seed {
            Some(seed) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (seed, name, self.schedules_created).hash(&mut h);
                SmallRng::seed_from_u64(h.finish())
            }
            None => SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// Fails with [`ErrorDetail::QueryInterrupted`] if the variables' kill flag is set
    /// (client-go's `CheckKilled`).
    #[doc(alias = "CheckKilled")]
    pub fn check_killed(&self) -> Result<()> {
        match self.vars.killed_signal() {
            0 => Ok(()),
            signal => {
                tracing::info!(signal, "backoff stops because a killed signal is received");
                Err(ErrorDetail::QueryInterrupted { signal }.into())
            }
        }
    }

    // ----- copies -----

    fn copy_with(&self, cancel: CancellationToken, parent: Option<Arc<ParentLink>>) -> Backoffer {
        Backoffer {
            id: next_id(),
            cancel,
            max_sleep_ms: self.max_sleep_ms,
            total_sleep_ms: self.total_sleep_ms,
            excluded_sleep_ms: self.excluded_sleep_ms,
            vars: self.vars.clone(),
            noop: self.noop,
            errors: self.errors.clone(),
            errors_num: self.errors_num,
            configs: self.configs.clone(),
            kinds: self.kinds.clone(),
            schedules: Vec::new(),
            parent,
            rng_seed: self.rng_seed,
            schedules_created: 0,
            excluded_limit_override: self.excluded_limit_override,
        }
    }

    /// A copy with a child cancellation token whose parent is this backoffer (client-go's
    /// `Fork`), for parallel sub-requests. Cancel the fork alone through its
    /// [`cancel_token`](Self::cancel_token); canceling this backoffer's token cancels it
    /// too. Fold its sleep back with [`update_using_forked`](Self::update_using_forked).
    #[doc(alias = "Fork")]
    pub fn fork(&self) -> Backoffer {
        let link = ParentLink {
            id: self.id,
            types: self.configs.iter().map(|c| c.name_cow().clone()).collect(),
            parent: self.parent.clone(),
        };
        self.copy_with(self.cancel.child_token(), Some(Arc::new(link)))
    }

    /// Adopts a fork's total and excluded sleep, recorded errors and per-kind counters if
    /// this backoffer is among its ancestors (client-go's `UpdateUsingForked`); otherwise
    /// does nothing. The list of kinds used is not adopted.
    #[doc(alias = "UpdateUsingForked")]
    pub fn update_using_forked(&mut self, forked: &Backoffer) {
        let mut link = forked.parent.as_deref();
        while let Some(l) = link {
            if l.id == self.id {
                self.total_sleep_ms = forked.total_sleep_ms;
                self.excluded_sleep_ms = forked.excluded_sleep_ms;
                self.errors = forked.errors.clone();
                self.errors_num = forked.errors_num;
                self.kinds = forked.kinds.clone();
                return;
            }
            link = l.parent.as_deref();
        }
    }

    /// Restarts every kind's progression and zeroes the total and excluded sleep, keeping
    /// the counters (client-go's `Reset`), when an operation enters a new phase.
    #[doc(alias = "Reset")]
    pub fn reset(&mut self) {
        self.schedules.clear();
        self.total_sleep_ms = 0;
        self.excluded_sleep_ms = 0;
    }

    /// [`reset`](Self::reset), then sets a new budget and applies the variables' weight
    /// to it (client-go's `ResetMaxSleep`).
    #[doc(alias = "ResetMaxSleep")]
    pub fn reset_max_sleep(&mut self, max_sleep_ms: u64) {
        self.reset();
        self.max_sleep_ms = max_sleep_ms;
        self.apply_weight();
    }

    // ----- accessors -----

    /// The cancellation token bound to this backoffer (client-go's `GetCtx`).
    #[doc(alias = "GetCtx")]
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Rebinds the backoffer to another cancellation token (client-go's `SetCtx`).
    #[doc(alias = "SetCtx")]
    pub fn set_cancel_token(&mut self, token: CancellationToken) {
        self.cancel = token;
    }

    /// The variables (client-go's `GetVars`).
    #[doc(alias = "GetVars")]
    pub fn vars(&self) -> &Variables {
        &self.vars
    }

    /// Whether this is a no-op backoffer ([`noop`](Self::noop)).
    pub fn is_noop(&self) -> bool {
        self.noop
    }

    /// The budget in milliseconds, weight applied; 0 = unlimited.
    pub fn max_sleep_ms(&self) -> u64 {
        self.max_sleep_ms
    }

    /// Milliseconds slept so far, excluded kinds included (client-go's `GetTotalSleep`).
    #[doc(alias = "GetTotalSleep")]
    pub fn total_sleep_ms(&self) -> u64 {
        self.total_sleep_ms
    }

    /// Milliseconds slept in kinds excluded from the budget.
    pub fn excluded_sleep_ms(&self) -> u64 {
        self.excluded_sleep_ms
    }

    /// The name of every kind used, in order and with repeats, followed by those its
    /// ancestors had used when it was forked (client-go's `GetTypes`).
    #[doc(alias = "GetTypes")]
    pub fn types(&self) -> Vec<String> {
        let mut out: Vec<String> = self.configs.iter().map(|c| c.name().to_owned()).collect();
        let mut link = self.parent.as_deref();
        while let Some(l) = link {
            out.extend(l.types.iter().map(|t| t.to_string()));
            link = l.parent.as_deref();
        }
        out
    }

    /// How many times each kind backed off (client-go's `GetBackoffTimes`).
    #[doc(alias = "GetBackoffTimes")]
    pub fn backoff_times(&self) -> BTreeMap<String, u64> {
        self.kinds
            .iter()
            .map(|k| (k.name.to_string(), k.times))
            .collect()
    }

    /// Milliseconds slept per kind (client-go's `GetBackoffSleepMS`).
    #[doc(alias = "GetBackoffSleepMS")]
    pub fn backoff_sleep_ms(&self) -> BTreeMap<String, u64> {
        self.kinds
            .iter()
            .map(|k| (k.name.to_string(), k.sleep_ms))
            .collect()
    }

    /// How many times the named kind backed off (0 if never).
    pub fn times_of(&self, kind: impl Into<BackoffConfig>) -> u64 {
        let cfg = kind.into();
        self.kinds
            .iter()
            .find(|k| k.name == cfg.name())
            .map_or(0, |k| k.times)
    }

    /// Milliseconds the named kind slept (0 if never).
    pub fn sleep_ms_of(&self, kind: impl Into<BackoffConfig>) -> u64 {
        let cfg = kind.into();
        self.kinds
            .iter()
            .find(|k| k.name == cfg.name())
            .map_or(0, |k| k.sleep_ms)
    }

    /// The number of backoffs over all kinds (client-go's `GetTotalBackoffTimes`).
    #[doc(alias = "GetTotalBackoffTimes")]
    pub fn total_backoff_times(&self) -> u64 {
        self.kinds.iter().map(|k| k.times).sum()
    }

    /// How many reasons were recorded, including those no longer kept (client-go's
    /// `ErrorsNum`).
    #[doc(alias = "ErrorsNum")]
    pub fn errors_num(&self) -> usize {
        self.errors_num
    }

    /// The last (at most [`MAX_RECORD_BACKOFF_ERR_COUNT`]) recorded reasons, oldest
    /// first.
    pub fn latest_errors(&self) -> Vec<RecordedError> {
        self.errors.iter().cloned().collect()
    }
}

impl Default for Backoffer {
    /// An unlimited backoffer with default variables (`Backoffer::new(0)`).
    fn default() -> Self {
        Backoffer::new(0)
    }
}

impl Clone for Backoffer {
    /// A copy sharing the cancellation token and parent, with the same counters and
    /// recorded errors, whose kinds restart their progressions (client-go's `Clone`).
    fn clone(&self) -> Self {
        self.copy_with(self.cancel.clone(), self.parent.clone())
    }
}

impl fmt::Display for Backoffer {
    /// Empty when nothing was slept; otherwise ` backoff(<total>ms [<kinds used>])`, as
    /// client-go's `String` appends to slow-query logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total_sleep_ms == 0 {
            return Ok(());
        }
        write!(f, " backoff({}ms [", self.total_sleep_ms)?;
        for (i, c) in self.configs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(c.name())?;
        }
        f.write_str("])")
    }
}

/// Observes one sleep in [`BACKOFF_SECONDS`] (client-go's `TiKVBackoffHistogram`), under
/// client-go's `type` label for the kind ([`labels::backoff_type`]); a custom kind is
/// labelled with its own name, since client-go would observe its own metric for it.
fn observe_sleep(name: &str, slept_ms: u64) {
    let seconds = Duration::from_millis(slept_ms).as_secs_f64();
    match labels::backoff_type_of(name) {
        Some(label) => {
            ::metrics::histogram!(BACKOFF_SECONDS, labels::TYPE => label).record(seconds);
        }
        None => {
            ::metrics::histogram!(BACKOFF_SECONDS, labels::TYPE => name.to_owned()).record(seconds);
        }
    }
}

/// Whether a region error calls for a `regionMiss` backoff: everything except a real
/// `EpochNotMatch` (one that carries the current regions).
pub(crate) fn region_error_needs_backoff(e: &errorpb::Error) -> bool {
    e.epoch_not_match.is_none() || crate::classify::is_fake_region_error(e)
}

/// client-go exits the process on a cluster-id mismatch; we return it and never retry.
fn is_cluster_id_mismatch(reason: &Error) -> bool {
    matches!(reason.detail(), ErrorDetail::MismatchClusterId { .. })
        || reason.to_string().contains(MISMATCH_CLUSTER_ID)
}

#[cfg(test)]
impl Backoffer {
    /// The schedule of a kind, if created.
    pub(crate) fn schedule_of(&self, name: &str) -> Option<&Schedule> {
        self.schedules
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// The recorded configuration names (without ancestors).
    pub(crate) fn config_names(&self) -> Vec<&str> {
        self.configs.iter().map(BackoffConfig::name).collect()
    }

    /// Whether a parent link exists.
    pub(crate) fn has_parent(&self) -> bool {
        self.parent.is_some()
    }

    /// Field-by-field equality of the state client-go's `assertCloneOrForkEqual` checks.
    pub(crate) fn same_bookkeeping(&self, other: &Backoffer) -> bool {
        self.errors == other.errors
            && self.errors_num == other.errors_num
            && self.kinds == other.kinds
            && self.excluded_sleep_ms == other.excluded_sleep_ms
            && self.total_sleep_ms == other.total_sleep_ms
    }
}
