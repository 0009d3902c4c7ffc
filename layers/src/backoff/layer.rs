//! A thin layer that gives each request a fresh budget, for hand-built pipelines.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::request::RpcRequest;

use super::backoffer::Backoffer;
use super::shared::SharedBackoffer;
use super::vars::Variables;

/// Installs a fresh [`Backoffer`] on every request that still carries the default
/// (unlimited) [`SharedBackoffer`]; requests whose caller chose a budget pass unchanged.
///
/// The client's API functions create the budget themselves when they build a request, as
/// client-go's callers create `bo`; this layer is for users who assemble a pipeline by
/// hand and want the same guarantee. The budget is built like client-go's
/// `NewBackofferWithVars`: `max_sleep_ms` multiplied by the variables' weight.
#[derive(Debug, Clone)]
pub struct BackoffLayer {
    max_sleep_ms: u64,
    vars: Variables,
}

impl BackoffLayer {
    /// A layer installing a budget of `max_sleep_ms` (before the weight) with default
    /// variables.
    pub fn new(max_sleep_ms: u64) -> BackoffLayer {
        BackoffLayer {
            max_sleep_ms,
            vars: Variables::default(),
        }
    }

    /// Uses these variables (weight, lock-fast base, kill flag) for every installed budget.
    #[must_use]
    pub fn vars(mut self, vars: Variables) -> Self {
        self.vars = vars;
        self
    }
}

impl<S> Layer<S> for BackoffLayer {
    type Service = Backoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Backoff {
            inner,
            max_sleep_ms: self.max_sleep_ms,
            vars: self.vars.clone(),
        }
    }
}

/// The service of [`BackoffLayer`].
#[derive(Debug, Clone)]
pub struct Backoff<S> {
    inner: S,
    max_sleep_ms: u64,
    vars: Variables,
}

impl<S> Backoff<S> {
    /// Wraps `inner`, installing budgets of `max_sleep_ms` with default variables.
    pub fn new(inner: S, max_sleep_ms: u64) -> Backoff<S> {
        BackoffLayer::new(max_sleep_ms).layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<RpcRequest> for Backoff<S>
where
    S: Service<RpcRequest>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        if req.backoffer.is_default() {
            req.backoffer =
                SharedBackoffer::new(Backoffer::with_vars(self.max_sleep_ms, self.vars.clone()));
        }
        self.inner.call(req)
    }
}
