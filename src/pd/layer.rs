//! The PD request pipeline: a tower stack in front of a tonic `Channel`.
//!
//! `PdChannel = Deadline<Channel>`: every unary PD call gets the client timeout as its
//! deadline (client-go's PD client uses `PDServerTimeout` as the per-call timeout, PD-20),
//! reported as a [`DeadlineElapsed`] error. Streaming calls (TSO) only bound the wait for
//! the response headers; their messages are timed by the TSO dispatcher.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tikv_layers::BoxError;
use tonic::transport::Channel;
use tower::Service;

/// The service type PD's generated clients run on.
pub type PdChannel = Deadline<Channel>;

/// Builds the pipeline over `channel`.
pub fn pd_channel(channel: Channel, timeout: Duration) -> PdChannel {
    tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeout))
        .service(channel)
}

/// A PD call did not get its response headers before the deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("pd request deadline ({0:?}) elapsed")]
pub struct DeadlineElapsed(pub Duration);

/// Layer of [`Deadline`].
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    /// A layer bounding each call by `timeout`.
    pub const fn new(timeout: Duration) -> DeadlineLayer {
        DeadlineLayer { timeout }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// Bounds each call of the inner service by a deadline.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Deadline<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, R> Service<R> for Deadline<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let fut = self.inner.call(req);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(res) => res.map_err(Into::into),
                Err(_) => Err(Box::new(DeadlineElapsed(timeout)) as BoxError),
            }
        })
    }
}
