//! [`TimeoutLayer`]: the per-attempt deadline as a tower layer.

use tower_layer::Layer;

use super::policy::{DefaultTimeoutPolicy, TimeoutPolicy};
use super::service::Timeout;

/// Bounds every attempt by its timeout; see the [module docs](super).
///
/// Holds the [`TimeoutPolicy`] (by default client-go's per-command classes); each service
/// it builds gets a clone of it, so a policy with shared state should be an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct TimeoutLayer<P = DefaultTimeoutPolicy> {
    policy: P,
}

impl TimeoutLayer {
    /// A layer with client-go's default timeouts ([`DefaultTimeoutPolicy::default`]).
    pub fn new() -> TimeoutLayer {
        TimeoutLayer::default()
    }
}

impl<P> TimeoutLayer<P> {
    /// A layer deciding timeouts with `policy`.
    pub fn with_policy(policy: P) -> TimeoutLayer<P> {
        TimeoutLayer { policy }
    }

    /// The layer's policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<S, P> Layer<S> for TimeoutLayer<P>
where
    P: TimeoutPolicy + Clone,
{
    type Service = Timeout<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::with_policy(inner, self.policy.clone())
    }
}
