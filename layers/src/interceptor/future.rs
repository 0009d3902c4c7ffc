//! [`ResponseFuture`]: the attempt with its `after` hooks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use super::chain::AttemptInfo;
use super::service::Hooks;
use crate::error::{Error, Result};
use crate::request::RpcResponse;

/// The future of [`Intercept`](super::Intercept): the inner call, then the `after` hooks
/// over its outcome (innermost first). An attempt rejected by a `before` hook is answered
/// at once, without calling the inner service. Dropping the future drops the inner call
/// and runs no hook.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    kind: Kind<F>,
}

#[pin_project(project = KindProj)]
enum Kind<F> {
    /// No interceptor to run.
    Direct {
        #[pin]
        fut: F,
    },
    /// The inner call, then the hooks.
    Hooked {
        #[pin]
        fut: F,
        hooks: Hooks,
        info: AttemptInfo,
    },
    /// Rejected by a `before` hook; the outcome is handed out once. Boxed: a response is
    /// large and rejections are rare.
    Ready {
        outcome: Option<Box<Result<RpcResponse>>>,
    },
}

impl<F> ResponseFuture<F> {
    pub(super) fn direct(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Direct { fut },
        }
    }

    pub(super) fn hooked(fut: F, hooks: Hooks, info: AttemptInfo) -> Self {
        ResponseFuture {
            kind: Kind::Hooked { fut, hooks, info },
        }
    }

    pub(super) fn ready(outcome: Result<RpcResponse>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                outcome: Some(Box::new(outcome)),
            },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { fut } => fut.poll(cx),
            KindProj::Hooked { fut, hooks, info } => {
                let mut outcome = std::task::ready!(fut.poll(cx));
                hooks.after_all(info, &mut outcome);
                Poll::Ready(outcome)
            }
            KindProj::Ready { outcome } => Poll::Ready(outcome.take().map_or_else(
                || {
                    Err(Error::new(crate::ErrorDetail::Internal(
                        "interceptor future polled after completion".into(),
                    )))
                },
                |o| *o,
            )),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Direct { .. } => "direct",
            Kind::Hooked { .. } => "hooked",
            Kind::Ready { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
