//! [`Timeout`]: the service of the timeout layer.

use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use super::policy::{DefaultTimeoutPolicy, TimeoutPolicy, apply_timeout};
use crate::error::Error;
use crate::request::{RpcRequest, RpcResponse};

/// Fills the attempt's timeout and bounds the inner call by it; see the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct Timeout<S, P = DefaultTimeoutPolicy> {
    inner: S,
    policy: P,
}

// ===== impl Timeout =====

impl<S> Timeout<S> {
    /// Wraps `inner` with client-go's default timeouts.
    pub fn new(inner: S) -> Timeout<S> {
        Timeout {
            inner,
            policy: DefaultTimeoutPolicy::default(),
        }
    }
}

impl<S, P> Timeout<S, P> {
    /// Wraps `inner`, deciding timeouts with `policy`.
    pub fn with_policy(inner: S, policy: P) -> Timeout<S, P> {
        Timeout { inner, policy }
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

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<S, P> Service<RpcRequest> for Timeout<S, P>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
    P: TimeoutPolicy,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The layer calls the inner service exactly once, synchronously, so readiness is
        // the inner service's.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        let timeout = apply_timeout(&self.policy, &mut req);
        // Kept for the error message; the only allocation of this layer.
        let addr = req.target.addr.clone();
        ResponseFuture::new(self.inner.call(req), timeout, addr)
    }
}
