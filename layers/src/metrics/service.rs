//! [`Metrics`], the service of the `metrics` layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::Error;
use crate::request::{RpcRequest, RpcResponse};

use super::future::ResponseFuture;
use super::handles::{Handles, Recording};
use super::layer::MetricsLayer;

/// Counts and times every request passed to the inner service; built by [`MetricsLayer`].
///
/// The inner service is called once per request, synchronously in [`call`](Service::call),
/// so readiness is simply forwarded.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

// ===== impl Metrics =====

impl<S> Metrics<S> {
    /// Wraps `inner` with a handle cache of its own.
    pub fn new(inner: S) -> Metrics<S> {
        Metrics::with_handles(inner, Arc::new(Handles::new()))
    }

    pub(crate) fn with_handles(inner: S, handles: Arc<Handles>) -> Metrics<S> {
        Metrics { inner, handles }
    }

    /// A [`MetricsLayer`] building this service.
    pub fn layer() -> MetricsLayer {
        MetricsLayer::new()
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

impl<S> Service<RpcRequest> for Metrics<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let recording = Recording::start(self.handles.clone(), req.cmd_type());
        ResponseFuture::new(self.inner.call(req), recording)
    }
}
