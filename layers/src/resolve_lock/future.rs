//! [`ResponseFuture`]: a read, and its resolve-and-resend rounds when it meets a lock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use pin_project::pin_project;
use tower_service::Service;

use super::read;
use super::service::Resend;
use crate::error::{Error, ErrorDetail, Result};
use crate::request::{RpcRequest, RpcResponse};

/// The future of [`ResolveLock`](super::ResolveLock).
///
/// Commands the layer does not handle are the inner future itself. A handled read polls
/// its first attempt in place; only when the answer carries a lock does it switch to the
/// (boxed) resolve-and-resend loop. Dropping the future abandons the read: nothing keeps
/// running (a resolution in flight is dropped with it).
#[pin_project]
pub struct ResponseFuture<S: Service<RpcRequest>> {
    #[pin]
    state: State<S>,
}

// The first-attempt state holds the saved request inline on purpose: boxing it would cost
// an allocation on every read, and the future is as large as that state anyway.
#[allow(clippy::large_enum_variant)]
#[pin_project(project = StateProj)]
enum State<S: Service<RpcRequest>> {
    /// Not a read this layer resolves locks for.
    Passthrough {
        #[pin]
        fut: S::Future,
    },
    /// The first attempt of a read.
    First {
        #[pin]
        fut: S::Future,
        resend: Option<Resend<S>>,
    },
    /// Resolving and resending.
    Looping {
        fut: BoxFuture<'static, Result<RpcResponse>>,
    },
}

impl<S: Service<RpcRequest>> ResponseFuture<S> {
    pub(super) fn passthrough(fut: S::Future) -> Self {
        ResponseFuture {
            state: State::Passthrough { fut },
        }
    }

    pub(super) fn first(fut: S::Future, resend: Resend<S>) -> Self {
        ResponseFuture {
            state: State::First {
                fut,
                resend: Some(resend),
            },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
{
    type Output = Result<RpcResponse>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Passthrough { fut } => return fut.poll(cx),
                StateProj::Looping { fut } => return fut.as_mut().poll(cx),
                StateProj::First { fut, resend } => {
                    let resp = match std::task::ready!(fut.poll(cx)) {
                        Ok(resp) => resp,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    if !read::meets_lock(&resp) {
                        return Poll::Ready(Ok(resp));
                    }
                    let Some(resend) = resend.take() else {
                        return Poll::Ready(Err(ErrorDetail::Internal(
                            "resolve-lock future polled after completion".into(),
                        )
                        .into()));
                    };
                    State::Looping {
                        fut: Box::pin(resend.run(resp)),
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl<S: Service<RpcRequest>> fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "passthrough",
            State::First { .. } => "first attempt",
            State::Looping { .. } => "resolving",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
