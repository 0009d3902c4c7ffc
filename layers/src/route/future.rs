use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::future::BoxFuture;
use pin_project::pin_project;
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_service::Service;

use crate::error::{Error, Result};
use crate::locate::RegionSnapshot;
use crate::request::{RpcRequest, RpcResponse};

/// The future of one call through [`Route`](super::Route): the region lookup, if one is
/// needed, then the inner service's call.
#[pin_project]
pub struct ResponseFuture<S>
where
    S: Service<RpcRequest>,
{
    #[pin]
    state: State<S>,
}

#[pin_project(project = StateProj)]
enum State<S>
where
    S: Service<RpcRequest>,
{
    Locating {
        lookup: BoxFuture<'static, Result<Arc<RegionSnapshot>>>,
        // Both `Some` until the lookup completes.
        svc: Option<S>,
        req: Option<RpcRequest>,
    },
    Calling {
        #[pin]
        fut: Oneshot<S, RpcRequest>,
    },
}

impl<S> ResponseFuture<S>
where
    S: Service<RpcRequest>,
{
    pub(super) fn call(svc: S, req: RpcRequest) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut: svc.oneshot(req),
            },
        }
    }

    pub(super) fn locate(
        lookup: BoxFuture<'static, Result<Arc<RegionSnapshot>>>,
        svc: S,
        req: RpcRequest,
    ) -> Self {
        ResponseFuture {
            state: State::Locating {
                lookup,
                svc: Some(svc),
                req: Some(req),
            },
        }
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<RpcRequest>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Locating { .. } => "locating",
            State::Calling { .. } => "calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Output = Result<RpcResponse>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Locating { lookup, svc, req } => {
                    let region = ready!(lookup.as_mut().poll(cx))?;
                    let (Some(svc), Some(mut req)) = (svc.take(), req.take()) else {
                        return Poll::Ready(Err(crate::ErrorDetail::Internal(
                            "route future polled after its request was sent".into(),
                        )
                        .into()));
                    };
                    tracing::trace!(cmd = %req.cmd_type(), region = region.ver.id, "routed");
                    req.target.region = Some(region);
                    State::Calling {
                        fut: svc.oneshot(req),
                    }
                }
                StateProj::Calling { fut } => return fut.poll(cx),
            };
            self.as_mut().project().state.set(next);
        }
    }
}
