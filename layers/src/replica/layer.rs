use tower_layer::Layer;

use super::policy::{RegionServices, SelectorConfig};
use super::service::Replica;

/// Adds replica selection to a per-attempt service; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct ReplicaLayer {
    pub(super) svc: RegionServices,
    pub(super) config: SelectorConfig,
    pub(super) local_zone: Option<String>,
    pub(super) store_limit: u64,
}

impl ReplicaLayer {
    /// A replica layer over the given region and store services.
    pub fn new(svc: RegionServices) -> ReplicaLayer {
        ReplicaLayer {
            svc,
            config: SelectorConfig::default(),
            local_zone: None,
            store_limit: 0,
        }
    }

    /// Forward leader requests through a follower when the leader's store is unreachable
    /// (client-go's `EnableForwarding`).
    pub fn forwarding(mut self, enable: bool) -> Self {
        self.config.enable_forwarding = enable;
        self
    }

    /// Break score ties by taking the first replica (deterministic tests).
    pub fn deterministic(mut self, yes: bool) -> Self {
        self.config.deterministic = yes;
        self
    }

    /// The client's zone (the value of the `zone` label), for access-location accounting
    /// (SL-11).
    pub fn local_zone(mut self, zone: impl Into<String>) -> Self {
        let z = zone.into();
        self.local_zone = (!z.is_empty()).then_some(z);
        self
    }
}

impl ReplicaLayer {
    /// Caps the in-flight attempts per store (client-go's `StoreLimit`, SC-16); an attempt
    /// over the cap fails at once with `TokenLimit`. 0 (the default) means no cap.
    pub fn store_limit(mut self, limit: u64) -> Self {
        self.store_limit = limit;
        self
    }
}

impl<S> Layer<S> for ReplicaLayer {
    type Service = Replica<S>;

    fn layer(&self, inner: S) -> Replica<S> {
        Replica {
            inner,
            layer: self.clone(),
        }
    }
}
