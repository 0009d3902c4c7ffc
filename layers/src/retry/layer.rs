use std::sync::Arc;

use tower_layer::Layer;

use super::service::Retry;
use crate::locate::ConnectionControl;
use crate::replica::RegionServices;

/// Adds the region send loop; see the [module docs](super).
#[derive(Clone)]
pub struct RetryLayer {
    pub(super) svc: RegionServices,
    pub(super) conn: Option<Arc<dyn ConnectionControl>>,
}

impl std::fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("conn", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A send loop over the given region and store services.
    pub fn new(svc: RegionServices) -> RetryLayer {
        RetryLayer { svc, conn: None }
    }

    /// Lets the loop close connections (a `StoreNotMatch` answer, a remote gRPC
    /// `Cancelled`); without it those steps are skipped.
    pub fn connection_control(mut self, conn: Arc<dyn ConnectionControl>) -> Self {
        self.conn = Some(conn);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            layer: self.clone(),
        }
    }
}
