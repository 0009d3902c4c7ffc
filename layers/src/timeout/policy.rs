//! How long one attempt may take: the [`TimeoutPolicy`] trait and client-go's per-command
//! defaults ([`DefaultTimeoutPolicy`]).

use std::sync::Arc;
use std::time::Duration;

use crate::request::{CmdType, RpcRequest};

/// Timeout of requests that read or write a few keys (client-go's `ReadTimeoutShort`).
#[doc(alias = "ReadTimeoutShort")]
pub const READ_TIMEOUT_SHORT: Duration = Duration::from_secs(30);

/// Timeout of requests that may scan a whole region (client-go's `ReadTimeoutMedium`).
#[doc(alias = "ReadTimeoutMedium")]
pub const READ_TIMEOUT_MEDIUM: Duration = Duration::from_secs(60);

/// Default timeout of one coprocessor or MPP request (client-go's `CoprReqTimeout`
/// default of the `TiKVClient` config section).
#[doc(alias = "CoprReqTimeout")]
pub const COPR_REQ_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeout of an active health-feedback request (client-go's health-feedback callers).
pub const HEALTH_FEEDBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Timeout of `UnsafeDestroyRange`, which GC sends to every store
/// (client-go's `unsafeDestroyRangeTimeout`).
pub const UNSAFE_DESTROY_RANGE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Decides the per-attempt timeout of a request whose caller left
/// [`RequestOptions::timeout`](crate::RequestOptions::timeout) unset.
///
/// client-go's callers pass the timeout to `SendReq` themselves (TP-10); here the policy is
/// the one place that maps a request to its timeout, so the [`TimeoutLayer`] and the
/// transport agree. The policy is asked once per attempt, with the attempt's request (its
/// target already chosen); it must be cheap and must not block.
///
/// Closures `Fn(&RpcRequest) -> Duration` are policies too:
///
/// ```
/// use std::time::Duration;
/// use tikv_layers::timeout::TimeoutLayer;
///
/// let layer = TimeoutLayer::with_policy(|_req: &tikv_layers::RpcRequest| Duration::from_secs(5));
/// # let _ = layer;
/// ```
///
/// [`TimeoutLayer`]: super::TimeoutLayer
pub trait TimeoutPolicy: Send + Sync + 'static {
    /// The timeout of one attempt of `req`.
    fn attempt_timeout(&self, req: &RpcRequest) -> Duration;
}

impl<F> TimeoutPolicy for F
where
    F: Fn(&RpcRequest) -> Duration + Send + Sync + 'static,
{
    fn attempt_timeout(&self, req: &RpcRequest) -> Duration {
        self(req)
    }
}

impl<P: TimeoutPolicy + ?Sized> TimeoutPolicy for Arc<P> {
    fn attempt_timeout(&self, req: &RpcRequest) -> Duration {
        (**self).attempt_timeout(req)
    }
}

/// The timeout classes of client-go's callers (TP-10), one per distinct timeout value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutClass {
    /// Point reads and writes, every transactional write, lock resolution, split, raw KV
    /// operations and everything not listed elsewhere ([`READ_TIMEOUT_SHORT`]).
    Short,
    /// Commands that may scan a region: batch get, buffer batch get, scan, scan lock,
    /// delete range ([`READ_TIMEOUT_MEDIUM`]).
    Medium,
    /// Coprocessor and MPP calls ([`COPR_REQ_TIMEOUT`] by default).
    Coprocessor,
    /// The active health-feedback request ([`HEALTH_FEEDBACK_TIMEOUT`]).
    HealthFeedback,
    /// GC's `UnsafeDestroyRange` ([`UNSAFE_DESTROY_RANGE_TIMEOUT`]).
    UnsafeDestroyRange,
}

impl TimeoutClass {
    /// The class of a command, following the timeout client-go's caller of that command
    /// passes to `SendReq`/`SendRequest`.
    ///
    /// Raw scans and raw range deletes are `Short`: client-go's raw client sends every raw
    /// command with `ReadTimeoutShort`.
    pub fn of(cmd: CmdType) -> TimeoutClass {
        use CmdType as C;
        match cmd {
            C::BatchGet | C::BufferBatchGet | C::Scan | C::ScanLock | C::DeleteRange => {
                TimeoutClass::Medium
            }
            C::Cop
            | C::CopStream
            | C::BatchCop
            | C::MppTask
            | C::MppConn
            | C::MppCancel
            | C::MppAlive => TimeoutClass::Coprocessor,
            C::GetHealthFeedback => TimeoutClass::HealthFeedback,
            C::UnsafeDestroyRange => TimeoutClass::UnsafeDestroyRange,
            _ => TimeoutClass::Short,
        }
    }
}

/// client-go's per-command-class timeouts (TP-10), built from plain durations.
///
/// The layers crate does not know the client's `Config`; the `tikv` crate builds this policy
/// with the configured coprocessor timeout. Every field has client-go's default.
///
/// ```
/// use std::time::Duration;
/// use tikv_layers::CmdType;
/// use tikv_layers::timeout::DefaultTimeoutPolicy;
///
/// let policy = DefaultTimeoutPolicy::new().with_coprocessor(Duration::from_secs(10));
/// assert_eq!(policy.timeout_for(CmdType::Get), Duration::from_secs(30));
/// assert_eq!(policy.timeout_for(CmdType::BatchGet), Duration::from_secs(60));
/// assert_eq!(policy.timeout_for(CmdType::Cop), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DefaultTimeoutPolicy {
    /// Timeout of [`TimeoutClass::Short`] commands.
    pub short: Duration,
    /// Timeout of [`TimeoutClass::Medium`] commands.
    pub medium: Duration,
    /// Timeout of [`TimeoutClass::Coprocessor`] commands.
    pub coprocessor: Duration,
    /// Timeout of [`TimeoutClass::HealthFeedback`] commands.
    pub health_feedback: Duration,
    /// Timeout of [`TimeoutClass::UnsafeDestroyRange`] commands.
    pub unsafe_destroy_range: Duration,
}

impl Default for DefaultTimeoutPolicy {
    fn default() -> Self {
        DefaultTimeoutPolicy {
            short: READ_TIMEOUT_SHORT,
            medium: READ_TIMEOUT_MEDIUM,
            coprocessor: COPR_REQ_TIMEOUT,
            health_feedback: HEALTH_FEEDBACK_TIMEOUT,
            unsafe_destroy_range: UNSAFE_DESTROY_RANGE_TIMEOUT,
        }
    }
}

impl DefaultTimeoutPolicy {
    /// client-go's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`short`](Self::short).
    #[must_use]
    pub fn with_short(mut self, d: Duration) -> Self {
        self.short = d;
        self
    }

    /// Sets [`medium`](Self::medium).
    #[must_use]
    pub fn with_medium(mut self, d: Duration) -> Self {
        self.medium = d;
        self
    }

    /// Sets [`coprocessor`](Self::coprocessor) (the config's `copr_req_timeout`).
    #[must_use]
    pub fn with_coprocessor(mut self, d: Duration) -> Self {
        self.coprocessor = d;
        self
    }

    /// Sets [`health_feedback`](Self::health_feedback).
    #[must_use]
    pub fn with_health_feedback(mut self, d: Duration) -> Self {
        self.health_feedback = d;
        self
    }

    /// Sets [`unsafe_destroy_range`](Self::unsafe_destroy_range).
    #[must_use]
    pub fn with_unsafe_destroy_range(mut self, d: Duration) -> Self {
        self.unsafe_destroy_range = d;
        self
    }

    /// The timeout of a class.
    pub fn of_class(&self, class: TimeoutClass) -> Duration {
        match class {
            TimeoutClass::Short => self.short,
            TimeoutClass::Medium => self.medium,
            TimeoutClass::Coprocessor => self.coprocessor,
            TimeoutClass::HealthFeedback => self.health_feedback,
            TimeoutClass::UnsafeDestroyRange => self.unsafe_destroy_range,
        }
    }

    /// The timeout of a command ([`TimeoutClass::of`] then [`of_class`](Self::of_class)).
    pub fn timeout_for(&self, cmd: CmdType) -> Duration {
        self.of_class(TimeoutClass::of(cmd))
    }
}

impl TimeoutPolicy for DefaultTimeoutPolicy {
    fn attempt_timeout(&self, req: &RpcRequest) -> Duration {
        self.timeout_for(req.cmd_type())
    }
}

/// Fills the attempt's timeout fields and returns the timeout to enforce.
///
/// - [`RequestOptions::timeout`](crate::RequestOptions::timeout): kept when the caller set
///   it, else set to the policy's answer;
/// - `context.max_execution_duration_ms`: kept when non-zero, else set to the timeout in
///   milliseconds, so TiKV abandons work the client stopped waiting for (SL-2 step 4).
///
/// Idempotent, so the send loop may call it once in its prelude (where client-go applies
/// SL-2 step 4) and the [`TimeoutLayer`](super::TimeoutLayer) again on every attempt.
pub fn apply_timeout<P: TimeoutPolicy + ?Sized>(policy: &P, req: &mut RpcRequest) -> Duration {
    let timeout = match req.options.timeout {
        Some(t) => t,
        None => {
            let t = policy.attempt_timeout(req);
            req.options.timeout = Some(t);
            t
        }
    };
    if req.context.max_execution_duration_ms == 0 {
        req.context.max_execution_duration_ms =
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    }
    timeout
}
