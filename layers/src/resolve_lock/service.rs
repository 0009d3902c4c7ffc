//! [`ResolveLock`]: the service of the resolve-lock layer, and its resend loop.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::future::ResponseFuture;
use super::policy::LockResolver;
use super::read::{self, Rounds, Step};
use crate::backoff::BackoffKind;
use crate::error::{Error, Result};
use crate::request::{RpcRequest, RpcResponse};

/// Resolves the locks transactional reads meet and resends them; see the
/// [module docs](super).
#[derive(Clone)]
pub struct ResolveLock<S> {
    inner: S,
    resolver: Arc<dyn LockResolver>,
}

// ===== impl ResolveLock =====

impl<S> ResolveLock<S> {
    /// Wraps `inner`, resolving locks with `resolver`.
    pub fn new(inner: S, resolver: Arc<dyn LockResolver>) -> ResolveLock<S> {
        ResolveLock { inner, resolver }
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

impl<S: fmt::Debug> fmt::Debug for ResolveLock<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveLock")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<RpcRequest> for ResolveLock<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        if !read::handles(req.cmd_type()) {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        // The first attempt goes to the service that was polled ready; a clone of it and
        // of the request stay behind for resends (tower's "clone and mem::replace").
        let saved = req.clone();
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let fut = ready.call(req);
        ResponseFuture::first(
            fut,
            Resend {
                svc: ready,
                req: saved,
                resolver: Arc::clone(&self.resolver),
            },
        )
    }
}

/// What a read needs to go round again.
pub(super) struct Resend<S> {
    svc: S,
    req: RpcRequest,
    resolver: Arc<dyn LockResolver>,
}

impl<S> Resend<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
{
    /// Resolves, backs off and resends until an answer needs no resolution (client-go's
    /// read loops), starting from `resp`, the first answer, which met a lock.
    pub(super) async fn run(self, mut resp: RpcResponse) -> Result<RpcResponse> {
        let Resend {
            mut svc,
            mut req,
            resolver,
        } = self;
        let mut rounds = Rounds::default();
        let mut attempts = 0u32;
        let mut rpc_time = std::time::Duration::ZERO;
        let mut backoff_time = std::time::Duration::ZERO;
        loop {
            attempts = attempts.saturating_add(resp.details.attempts);
            rpc_time = rpc_time.saturating_add(resp.details.rpc_time);
            backoff_time = backoff_time.saturating_add(resp.details.backoff_time);
            match read::step(&mut req, resp, &mut rounds) {
                Step::Done(mut resp) => {
                    resp.details.attempts = attempts;
                    resp.details.rpc_time = rpc_time;
                    resp.details.backoff_time = backoff_time;
                    return Ok(resp);
                }
                Step::Resend => {
                    tracing::debug!(cmd = %req.cmd_type(), "reading through a lock of another transaction");
                }
                Step::Resolve { opts, reason } => {
                    tracing::debug!(
                        cmd = %req.cmd_type(),
                        locks = opts.locks.len(),
                        lite = opts.lite,
                        for_read = opts.for_read,
                        "resolving locks met by a read"
                    );
                    let outcome = resolver.resolve_locks(req.backoffer.clone(), opts).await?;
                    read::add_txns(&mut req.context.resolved_locks, &outcome.ignore_locks);
                    read::add_txns(&mut req.context.committed_locks, &outcome.access_locks);
                    if outcome.ms_before_expired > 0 {
                        // Some lock is still alive: wait for it, at most until it expires
                        // (client-go's `BackoffWithMaxSleepTxnLockFast`).
                        let start = Instant::now();
                        let slept = req
                            .backoffer
                            .backoff_with_max_sleep(
                                BackoffKind::TxnLockFast,
                                outcome.ms_before_expired,
                                reason,
                            )
                            .await;
                        backoff_time = backoff_time.saturating_add(start.elapsed());
                        slept?;
                    }
                }
            }
            resp = svc.ready().await?.call(req.clone()).await?;
        }
    }
}
