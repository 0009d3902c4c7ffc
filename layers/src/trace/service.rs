//! [`Trace`] and [`AttemptTrace`], the services of the `trace` layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use tower_service::Service;
use tracing::{Instrument, Level};

use crate::error::Error;
use crate::request::{RpcRequest, RpcResponse};

use super::future::{RequestStart, ResponseFuture};
use super::layer::{AttemptTraceLayer, TraceLayer};
use super::make_span::{DefaultMakeSpan, MakeSpan, attempt_span};

/// Counts the RPC attempts of one logical request. [`Trace`] puts it in the request's
/// extensions; every attempt (and every sharded sub-request) carries a clone of the same
/// counter, so [`AttemptTrace`] can number the attempts.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttemptCounter(Arc<AtomicU32>);

impl AttemptCounter {
    /// The number of the next attempt, from 1.
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// How many attempts were numbered so far.
    pub(crate) fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs every request inside its own span; built by [`TraceLayer`].
///
/// The inner service is called once per request, synchronously in
/// [`call`](Service::call) (inside the span), so readiness is simply forwarded.
#[derive(Debug, Clone)]
pub struct Trace<S, M = DefaultMakeSpan> {
    inner: S,
    make_span: M,
}

// ===== impl Trace =====

impl<S> Trace<S> {
    /// Wraps `inner` with [`DefaultMakeSpan`].
    pub fn new(inner: S) -> Trace<S> {
        Trace::with_make_span(inner, DefaultMakeSpan::new())
    }

    /// A [`TraceLayer`] building this service.
    pub fn layer() -> TraceLayer {
        TraceLayer::new()
    }
}

impl<S, M> Trace<S, M> {
    /// Wraps `inner`, making spans with `make_span`.
    pub fn with_make_span(inner: S, make_span: M) -> Trace<S, M> {
        Trace { inner, make_span }
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

impl<S, M> Service<RpcRequest> for Trace<S, M>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
    M: MakeSpan,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        let span = self.make_span.make_span(&req);
        if span.is_disabled() {
            let fut = self.inner.call(req);
            return ResponseFuture::request(fut.instrument(span), None);
        }
        // A nested trace layer keeps the outer request's counter.
        let attempts = match req.extensions.get::<AttemptCounter>() {
            Some(c) => c.clone(),
            None => {
                let c = AttemptCounter::default();
                req.extensions.insert(c.clone());
                c
            }
        };
        let start = RequestStart::of(&req.backoffer, Some(attempts));
        let fut = span.in_scope(|| self.inner.call(req));
        ResponseFuture::request(fut.instrument(span), Some(start))
    }
}

/// Runs every attempt inside a child span; built by [`AttemptTraceLayer`].
#[derive(Debug, Clone)]
pub struct AttemptTrace<S> {
    inner: S,
    level: Level,
}

// ===== impl AttemptTrace =====

impl<S> AttemptTrace<S> {
    /// Wraps `inner`, opening attempt spans at [`Level::TRACE`].
    pub fn new(inner: S) -> AttemptTrace<S> {
        AttemptTrace::with_level(inner, Level::TRACE)
    }

    pub(crate) fn with_level(inner: S, level: Level) -> AttemptTrace<S> {
        AttemptTrace { inner, level }
    }

    /// An [`AttemptTraceLayer`] building this service.
    pub fn layer() -> AttemptTraceLayer {
        AttemptTraceLayer::new()
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

impl<S> Service<RpcRequest> for AttemptTrace<S>
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
        let attempt = req
            .extensions
            .get::<AttemptCounter>()
            .map(AttemptCounter::next);
        let span = attempt_span(self.level, &req, attempt);
        let fut = span.in_scope(|| self.inner.call(req));
        ResponseFuture::attempt(fut.instrument(span))
    }
}
