//! The PD request pipeline: a tower stack in front of a tonic `Channel`.
//!
//! `PdChannel = Forward<Deadline<Channel>>`:
//! - [`Deadline`]: every unary PD call gets the client timeout as its deadline (client-go's
//!   PD client uses `PDServerTimeout` as the per-call timeout, PD-20), reported as a
//!   [`DeadlineElapsed`] error. Streaming calls (TSO) only bound the wait for the response
//!   headers; their messages are timed by the TSO dispatcher.
//! - [`Forward`]: when the PD leader is unreachable and forwarding is on, a call goes to a
//!   follower carrying the [`FORWARD_METADATA_KEY`] header naming the leader, and the
//!   follower relays it (PD-5; the PD client's `BuildForwardContext`). A channel made by
//!   [`pd_channel`] adds no header; [`Forward::forwarded_to`] makes a copy that does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tikv_layers::BoxError;
use tonic::transport::Channel;
use tower::Service;

/// The service type PD's generated clients run on.
pub type PdChannel = Forward<Deadline<Channel>>;

/// The gRPC metadata key asking a PD follower to forward a request to the leader at the
/// URL it carries. The name is the PD client's `grpcutil.ForwardMetadataKey`
/// (`tikv/pd`, `client/pkg/utils/grpcutil/grpcutil.go`).
pub const FORWARD_METADATA_KEY: &str = "pd-forwarded-host";

/// Builds the pipeline over `channel`, without forwarding.
pub fn pd_channel(channel: Channel, timeout: Duration) -> PdChannel {
    tower::ServiceBuilder::new()
        .layer(ForwardLayer::none())
        .layer(DeadlineLayer::new(timeout))
        .service(channel)
}

/// Layer of [`Forward`].
#[derive(Debug, Clone, Default)]
pub struct ForwardLayer {
    leader: Option<http::HeaderValue>,
}

impl ForwardLayer {
    /// A layer that adds no header: calls are served by the member they reach.
    pub fn none() -> ForwardLayer {
        ForwardLayer { leader: None }
    }
}

impl<S> tower::Layer<S> for ForwardLayer {
    type Service = Forward<S>;
    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            leader: self.leader.clone(),
        }
    }
}

/// Stamps each request with the [`FORWARD_METADATA_KEY`] header when it is meant for the
/// leader but sent through a follower (PD-5); passes requests through unchanged otherwise.
#[derive(Debug, Clone)]
pub struct Forward<S> {
    inner: S,
    leader: Option<http::HeaderValue>,
}

impl<S: Clone> Forward<S> {
    /// A copy whose requests ask the member they reach to forward them to `leader_url`.
    ///
    /// Returns `None` when the URL cannot be a header value (it then cannot be forwarded to).
    pub fn forwarded_to(&self, leader_url: &str) -> Option<Forward<S>> {
        let value = http::HeaderValue::from_str(leader_url).ok()?;
        Some(Forward {
            inner: self.inner.clone(),
            leader: Some(value),
        })
    }
}

impl<S> Forward<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The leader URL requests are forwarded to, if any.
    pub fn forwarded_host(&self) -> Option<&str> {
        self.leader.as_ref().and_then(|v| v.to_str().ok())
    }
}

impl<S, B> Service<http::Request<B>> for Forward<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(v) = &self.leader {
            req.headers_mut().insert(FORWARD_METADATA_KEY, v.clone());
        }
        self.inner.call(req)
    }
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
