use std::sync::Arc;

use tower_layer::Layer;

use super::policy::{DefaultShardPolicy, ShardPolicy};
use super::service::Shard;
use crate::locate::RegionLocator;

/// Spreads region-routed commands over regions and merges the answers; see the
/// [module docs](super).
pub struct ShardLayer<P = DefaultShardPolicy> {
    locator: Arc<dyn RegionLocator>,
    policy: Arc<P>,
}

impl ShardLayer {
    /// A layer locating regions with `locator`, with client-go's batch sizes.
    pub fn new(locator: Arc<dyn RegionLocator>) -> ShardLayer {
        ShardLayer {
            locator,
            policy: Arc::new(DefaultShardPolicy::default()),
        }
    }
}

impl<P: ShardPolicy> ShardLayer<P> {
    /// Replaces the batching and concurrency policy.
    pub fn policy<Q: ShardPolicy>(self, policy: Q) -> ShardLayer<Q> {
        ShardLayer {
            locator: self.locator,
            policy: Arc::new(policy),
        }
    }

    /// The policy in use.
    pub fn get_policy(&self) -> &P {
        &self.policy
    }
}

impl<P> Clone for ShardLayer<P> {
    fn clone(&self) -> Self {
        ShardLayer {
            locator: self.locator.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for ShardLayer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P> Layer<S> for ShardLayer<P> {
    type Service = Shard<S, P>;

    fn layer(&self, inner: S) -> Shard<S, P> {
        Shard::from_parts(inner, self.locator.clone(), self.policy.clone())
    }
}
