//! The response future of the `metrics` layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;

use crate::error::Error;
use crate::request::RpcResponse;

use super::handles::{Outcome, Recording};

/// The future returned by [`Metrics`](super::Metrics): the inner future, plus a recording
/// that observes the outcome when it finishes, or `canceled` if it is dropped first.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    recording: Recording,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recording: Recording) -> ResponseFuture<F> {
        ResponseFuture { inner, recording }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        this.recording.finish(Outcome::of(&res));
        Poll::Ready(res)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}
