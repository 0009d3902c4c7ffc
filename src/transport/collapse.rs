//! Request collapsing for whole-region `ResolveLock` (TP-22), from client-go's
//! `internal/client/client_collapse.go` `reqCollapse`.
//!
//! Concurrent `ResolveLock` requests with no `keys` and no `txn_infos` for the same
//! `(region, start_version, is_async)` share one call to the inner service. The shared call
//! runs on a spawned task with [`READ_TIMEOUT_SHORT`](crate::config::READ_TIMEOUT_SHORT),
//! on a copy of the first caller's request, and keeps running when callers go away; every
//! waiter races the shared result against its own timeout (the request's
//! `options.timeout`, else the command's default). As in client-go, layers below see only
//! the first caller's request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tikv_layers::backoff::SharedBackoffer;
use tikv_layers::{AttemptDetails, CmdType, Error, ErrorDetail, RpcRequest, RpcResponse};
use tikv_proto::kvrpcpb;
use tokio::sync::watch;
use tower::{Layer, Service, ServiceExt};

use crate::config::{READ_TIMEOUT_SHORT, TikvClientConfig};

type Shared = Option<Result<(kvrpcpb::ResolveLockResponse, AttemptDetails), ErrorDetail>>;

/// Adds [`Collapse`] around a service.
#[derive(Debug, Clone, Default)]
pub struct CollapseLayer {
    config: TikvClientConfig,
}

impl CollapseLayer {
    /// A layer whose waiters fall back to the default timeouts of `config`.
    pub fn new(config: TikvClientConfig) -> Self {
        CollapseLayer { config }
    }
}

impl<S> Layer<S> for CollapseLayer {
    type Service = Collapse<S>;
    fn layer(&self, inner: S) -> Collapse<S> {
        Collapse::with_config(inner, self.config.clone())
    }
}

/// Collapses identical whole-region `ResolveLock` requests into one call of `S` (client-go
/// `reqCollapse`). Other requests pass through unchanged.
#[derive(Clone)]
pub struct Collapse<S> {
    inner: S,
    config: Arc<TikvClientConfig>,
    calls: Arc<Mutex<HashMap<String, watch::Receiver<Shared>>>>,
}

impl<S> std::fmt::Debug for Collapse<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collapse").finish_non_exhaustive()
    }
}

impl<S> Collapse<S> {
    /// Wraps `inner` with the default client config.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, TikvClientConfig::default())
    }

    /// Wraps `inner`; waiters without their own timeout use the defaults of `config`.
    pub fn with_config(inner: S, config: TikvClientConfig) -> Self {
        Collapse {
            inner,
            config: Arc::new(config),
            calls: Arc::default(),
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The collapse key of a request, or `None` when it must not be collapsed (client-go
/// `tryCollapseRequest` / `resolveLockCollapseKey`).
pub fn collapse_key(req: &RpcRequest) -> Option<String> {
    let r = req.cmd.resolve_lock()?;
    if !r.keys.is_empty() || !r.txn_infos.is_empty() {
        return None;
    }
    Some(format!(
        "{}-{}-{}",
        req.context.region_id, r.start_version, r.is_async
    ))
}

type SharedWait = Pin<Box<dyn Future<Output = Result<RpcResponse, Error>> + Send>>;

/// The future returned by [`Collapse`]: the inner service's own future for a request that
/// is not collapsed (no allocation on the common path), or the wait for a shared call.
#[pin_project::pin_project]
pub struct CollapseFuture<F> {
    #[pin]
    state: CollapseState<F>,
}

#[pin_project::pin_project(project = StateProj)]
enum CollapseState<F> {
    Direct(#[pin] F),
    Shared(SharedWait),
}

impl<F> std::fmt::Debug for CollapseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.state {
            CollapseState::Direct(_) => "direct",
            CollapseState::Shared(_) => "shared",
        };
        f.debug_struct("CollapseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F> Future for CollapseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Direct(fut) => fut.poll(cx),
            StateProj::Shared(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl<S> Service<RpcRequest> for Collapse<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = CollapseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> CollapseFuture<S::Future> {
        let Some(key) = collapse_key(&req) else {
            return CollapseFuture {
                state: CollapseState::Direct(self.inner.call(req)),
            };
        };
        let timeout = req
            .options
            .timeout
            .unwrap_or_else(|| super::default_timeout(CmdType::ResolveLock, &self.config));
        let addr = req.target.addr.clone();
        let mut rx = {
            let mut calls = self
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A closed entry is a shared call that ended without removing itself (its task
            // panicked or was dropped with its runtime): start a new call instead of
            // joining it, as singleflight forgets a call whose function panicked.
            if let Some(rx) = calls.get(&key).filter(|rx| !rx.is_closed()) {
                rx.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                calls.insert(key.clone(), rx.clone());
                let svc = self.inner.clone();
                let calls = self.calls.clone();
                let mut copy = req;
                copy.options.timeout = Some(READ_TIMEOUT_SHORT);
                // The shared call belongs to no caller (client-go runs it under
                // `context.Background()`): a fresh backoffer, so the first caller's
                // cancellation does not cancel it for the others.
                copy.backoffer = SharedBackoffer::default();
                tokio::spawn(async move {
                    let res = svc.oneshot(copy).await;
                    let shared = match res {
                        Ok(resp) => {
                            let details = resp.details.clone();
                            match resp.resp {
                                tikv_layers::CommandResponse::ResolveLock(r) => Ok((r, details)),
                                other => Err(ErrorDetail::InvalidResponse {
                                    expected: "ResolveLock",
                                    got: other.cmd_type().name().to_owned(),
                                }),
                            }
                        }
                        Err(e) => Err(e.into_detail()),
                    };
                    calls
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&key);
                    let _ = tx.send(Some(shared));
                });
                rx
            }
        };
        let fut: SharedWait = Box::pin(async move {
            let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
            let value = match waited {
                Err(_) => return Err(ErrorDetail::AttemptTimeout { addr }.into()),
                Ok(Err(_)) => {
                    return Err(ErrorDetail::Internal(
                        "collapsed resolve-lock call ended without a result".to_owned(),
                    )
                    .into());
                }
                Ok(Ok(v)) => v.clone(),
            };
            match value {
                Some(Ok((r, details))) => {
                    let mut resp = RpcResponse::new(r);
                    resp.details = details;
                    Ok(resp)
                }
                Some(Err(detail)) => Err(Error::new(detail)),
                None => Err(ErrorDetail::Internal("collapsed call lost".to_owned()).into()),
            }
        });
        CollapseFuture {
            state: CollapseState::Shared(fut),
        }
    }
}
