//! [`Intercept`]: the service of the interceptor layer.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::chain::{AttemptInfo, Interceptor, InterceptorChain, rpc_interceptor};
use super::future::ResponseFuture;
use crate::error::{Error, Result};
use crate::request::{RpcRequest, RpcResponse};

/// Runs the client-level chain and the request's own chain around the inner call; see
/// the [module docs](super).
#[derive(Debug, Clone)]
pub struct Intercept<S> {
    inner: S,
    chain: InterceptorChain,
}

// ===== impl Intercept =====

impl<S> Intercept<S> {
    /// Wraps `inner` with a client-level chain.
    pub fn new(inner: S, chain: InterceptorChain) -> Intercept<S> {
        Intercept { inner, chain }
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

    /// The client-level chain.
    pub fn chain(&self) -> &InterceptorChain {
        &self.chain
    }
}

impl<S> Service<RpcRequest> for Intercept<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Hooks are synchronous and the inner service is called at most once, from `call`,
        // so readiness is the inner service's.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        let per_request = rpc_interceptor(&req).filter(|c| !c.is_empty()).cloned();
        if self.chain.is_empty() && per_request.is_none() {
            // Nothing to run: no clone, no allocation.
            return ResponseFuture::direct(self.inner.call(req));
        }
        let hooks = Hooks {
            client: self.chain.clone(),
            request: per_request,
        };
        for k in 0..hooks.len() {
            let Some(it) = hooks.get(k) else { break };
            if let Err(e) = it.before(&mut req) {
                let info = AttemptInfo::of(&req);
                tracing::debug!(
                    interceptor = it.name(),
                    cmd = %info.cmd,
                    error = %e,
                    "attempt rejected by interceptor"
                );
                let mut outcome = Err(e);
                hooks.after_first(k, &info, &mut outcome);
                return ResponseFuture::ready(outcome);
            }
        }
        // Described as sent, after every `before` hook had its say.
        let info = AttemptInfo::of(&req);
        ResponseFuture::hooked(self.inner.call(req), hooks, info)
    }
}

/// The client-level chain followed by the request's own chain, seen as one list.
#[derive(Debug)]
pub(super) struct Hooks {
    client: InterceptorChain,
    request: Option<InterceptorChain>,
}

impl Hooks {
    fn len(&self) -> usize {
        self.client.len() + self.request.as_ref().map_or(0, InterceptorChain::len)
    }

    fn get(&self, i: usize) -> Option<&Arc<dyn Interceptor>> {
        let client = self.client.members();
        match client.get(i) {
            Some(it) => Some(it),
            None => self
                .request
                .as_ref()
                .and_then(|c| c.members().get(i - client.len())),
        }
    }

    /// Runs the `after` hooks of members `k-1 .. 0` (those whose `before` accepted).
    fn after_first(&self, k: usize, info: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        for i in (0..k).rev() {
            if let Some(it) = self.get(i) {
                it.after(info, outcome);
            }
        }
    }

    /// Runs every `after` hook, innermost first.
    pub(super) fn after_all(&self, info: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        self.after_first(self.len(), info, outcome);
    }
}
