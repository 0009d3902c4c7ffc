//! [`ResponseFuture`]: one attempt raced against its deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::time::Sleep;

use crate::error::{Error, ErrorDetail};
use crate::request::RpcResponse;

/// The future of [`Timeout`](super::Timeout): the inner call, failed with
/// [`ErrorDetail::AttemptTimeout`] when its deadline passes first.
///
/// The inner future is polled before the timer, so an answer that is ready at the
/// deadline wins (like `tokio::time::timeout`). Dropping the future drops the inner call.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    #[pin]
    sleep: Sleep,
    addr: String,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, timeout: Duration, addr: String) -> Self {
        ResponseFuture {
            inner,
            // `sleep` saturates a deadline that would overflow to "far future".
            sleep: tokio::time::sleep(timeout),
            addr,
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(addr = %this.addr, "attempt deadline passed");
                Poll::Ready(Err(ErrorDetail::AttemptTimeout {
                    addr: std::mem::take(this.addr),
                }
                .into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.sleep.deadline())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
