use std::sync::Arc;

use tower_layer::Layer;

use super::service::Route;
use crate::locate::RegionLocator;

/// Locates the region of requests that arrive without one; see the [module docs](super).
#[derive(Clone)]
pub struct RouteLayer {
    locator: Arc<dyn RegionLocator>,
}

impl RouteLayer {
    /// A layer locating regions with `locator`.
    pub fn new(locator: Arc<dyn RegionLocator>) -> RouteLayer {
        RouteLayer { locator }
    }
}

impl std::fmt::Debug for RouteLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route::new(inner, self.locator.clone())
    }
}
