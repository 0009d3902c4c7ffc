//! [`NetworkLayer`], the configuration value of the `network` layer.

use tower_layer::Layer;

use super::service::NetworkCollector;

/// Records each attempt's request and response bytes; see the [module docs](super).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkLayer {
    _priv: (),
}

impl NetworkLayer {
    /// The layer. It has no settings: the zone comparison is made by `replica`, the sink
    /// and the call's stale-read intent ride in the request.
    pub fn new() -> NetworkLayer {
        NetworkLayer::default()
    }
}

impl<S> Layer<S> for NetworkLayer {
    type Service = NetworkCollector<S>;

    fn layer(&self, inner: S) -> NetworkCollector<S> {
        NetworkCollector { inner }
    }
}
