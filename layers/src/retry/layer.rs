use std::sync::Arc;

use tower_layer::Layer;

use super::read_ts::ReadTsValidator;
use super::service::Retry;
use crate::locate::ConnectionControl;
use crate::replica::RegionServices;

/// Adds the region send loop; see the [module docs](super).
#[derive(Clone)]
pub struct RetryLayer {
    pub(super) svc: RegionServices,
    pub(super) conn: Option<Arc<dyn ConnectionControl>>,
    pub(super) read_ts: Option<Arc<dyn ReadTsValidator>>,
}

impl std::fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("conn", &self.conn.is_some())
            .field("read_ts_validator", &self.read_ts.is_some())
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A send loop over the given region and store services.
    pub fn new(svc: RegionServices) -> RetryLayer {
        RetryLayer {
            svc,
            conn: None,
            read_ts: None,
        }
    }

    /// Lets the loop close connections (a `StoreNotMatch` answer, a remote gRPC
    /// `Cancelled`); without it those steps are skipped.
    pub fn connection_control(mut self, conn: Arc<dyn ConnectionControl>) -> Self {
        self.conn = Some(conn);
        self
    }

    /// Validates the read ts of snapshot reads before the first attempt (SL-2 step 3,
    /// client-go's `readTSValidator`); a rejected ts fails the call without an RPC.
    /// Without it every ts passes.
    pub fn read_ts_validator(mut self, validator: Arc<dyn ReadTsValidator>) -> Self {
        self.read_ts = Some(validator);
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
