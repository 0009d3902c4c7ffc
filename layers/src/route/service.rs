use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use crate::error::{Error, Result};
use crate::locate::RegionLocator;
use crate::request::{RpcRequest, RpcResponse};
use crate::shard::{RouteKey, route_key};

/// The service of [`RouteLayer`](super::RouteLayer); see the [module docs](super).
#[derive(Clone)]
pub struct Route<S> {
    inner: S,
    locator: Arc<dyn RegionLocator>,
}

// ===== impl Route =====

impl<S> Route<S> {
    /// Wraps `inner`, locating regions with `locator`.
    pub fn new(inner: S, locator: Arc<dyn RegionLocator>) -> Route<S> {
        Route { inner, locator }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Route<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<RpcRequest> for Route<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S>;

    /// Always ready: the inner service's readiness is driven by the call (spec
    /// request-path.md §8.4 item 9).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if req.target.region.is_some() || req.cmd_type().is_store_level() {
            return ResponseFuture::call(inner, req);
        }
        let lookup = match route_key(&req.cmd) {
            RouteKey::Key(k) => self.locator.locate_key(k),
            RouteKey::EndKey(k) => self.locator.locate_end_key(k),
            RouteKey::None if req.context.region_id != 0 && req.cmd.has_context() => {
                self.locator.locate_region_by_id(req.context.region_id)
            }
            RouteKey::None => return ResponseFuture::call(inner, req),
        };
        ResponseFuture::locate(lookup, inner, req)
    }
}
