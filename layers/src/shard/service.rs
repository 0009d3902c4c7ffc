use std::sync::Arc;
use std::task::{Context, Poll};

use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;

use super::future::{self, ResponseFuture};
use super::keys::{Shape, shape};
use super::policy::{DefaultShardPolicy, ShardPolicy};
use crate::error::{Error, Result};
use crate::locate::RegionLocator;
use crate::request::{RpcRequest, RpcResponse};

/// The service of [`ShardLayer`](super::ShardLayer); see the [module docs](super).
pub struct Shard<S, P = DefaultShardPolicy> {
    inner: S,
    locator: Arc<dyn RegionLocator>,
    policy: Arc<P>,
}

// ===== impl Shard =====

impl<S> Shard<S> {
    /// Wraps `inner`, locating regions with `locator`, with client-go's batch sizes.
    pub fn new(inner: S, locator: Arc<dyn RegionLocator>) -> Shard<S> {
        Shard::from_parts(inner, locator, Arc::new(DefaultShardPolicy::default()))
    }
}

impl<S, P> Shard<S, P> {
    pub(super) fn from_parts(inner: S, locator: Arc<dyn RegionLocator>, policy: Arc<P>) -> Self {
        Shard {
            inner,
            locator,
            policy,
        }
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

impl<S: Clone, P> Clone for Shard<S, P> {
    fn clone(&self) -> Self {
        Shard {
            inner: self.inner.clone(),
            locator: self.locator.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: std::fmt::Debug, P: std::fmt::Debug> std::fmt::Debug for Shard<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, P> Service<RpcRequest> for Shard<S, P>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: ShardPolicy,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<Oneshot<S, RpcRequest>>;

    /// Always ready: readiness of the inner service is driven per sub-request (spec
    /// request-path.md §8.4 item 9).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        match shape(&req.cmd) {
            Shape::PassThrough => ResponseFuture::direct(inner.oneshot(req)),
            Shape::Point => {
                ResponseFuture::sharded(Box::pin(future::point(inner, self.locator.clone(), req)))
            }
            Shape::Keys => ResponseFuture::sharded(Box::pin(future::fan_out(
                inner,
                self.locator.clone(),
                self.policy.clone(),
                req,
            ))),
            Shape::Range => {
                ResponseFuture::sharded(Box::pin(future::page(inner, self.locator.clone(), req)))
            }
        }
    }
}
