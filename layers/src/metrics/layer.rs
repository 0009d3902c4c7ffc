//! [`MetricsLayer`], the configuration value of the `metrics` layer.

use std::sync::Arc;

use tower_layer::Layer;

use super::handles::Handles;
use super::service::Metrics;

/// Records a count and a latency for every logical request, by command type and result
/// class; see the [module docs](super).
///
/// Clones share one handle cache, so every service the layer builds reuses the handles
/// resolved by the others.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    handles: Arc<Handles>,
}

impl MetricsLayer {
    /// A layer with an empty handle cache.
    pub fn new() -> MetricsLayer {
        MetricsLayer {
            handles: Arc::new(Handles::new()),
        }
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics::with_handles(inner, self.handles.clone())
    }
}
