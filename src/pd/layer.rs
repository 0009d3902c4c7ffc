//! The PD request pipeline: a tower stack in front of a tonic `Channel`.
//!
//! `PdChannel = Forward<Deadline<Channel>>`:
//! - [`Deadline`]: every unary PD call gets the client timeout as its deadline (client-go's
//!   PD client uses `PDServerTimeout` as the per-call timeout, PD-20), reported as a
//!   [`DeadlineElapsed`] error. Streaming calls (TSO) only bound the wait for the response
//!   headers; their messages are timed by the TSO dispatcher.
//! - [`Forward`]: stamps the header that tells a PD follower what to do with a call it
//!   receives. When the PD leader is unreachable and forwarding is on, a call goes to a
//!   follower carrying the [`FORWARD_METADATA_KEY`] header naming the leader, and the
//!   follower relays it (PD-5; the PD client's `BuildForwardContext`). A region read that
//!   may be answered by a follower carries [`FOLLOWER_HANDLE_METADATA_KEY`] instead, and
//!   the follower answers it from its own copy of the region table (PD-6; the PD client's
//!   `BuildFollowerHandleContext`). A channel made by [`pd_channel`] adds no header;
//!   [`Forward::forwarded_to`] and [`Forward::follower_handled`] make copies that do.

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

/// The gRPC metadata key that lets a PD follower answer a region read itself, from its
/// possibly stale copy of the region table, instead of refusing it as "not leader". The
/// value is empty. The name is the PD client's `grpcutil.FollowerHandleMetadataKey`
/// (`tikv/pd`, `client/pkg/utils/grpcutil/grpcutil.go`).
pub const FOLLOWER_HANDLE_METADATA_KEY: &str = "pd-allow-follower-handle";

/// What a member receiving a call is asked to do with it (the metadata
/// `BuildGRPCTargetContext` of the PD client attaches).
#[derive(Debug, Clone, Default)]
enum Route {
    /// Serve it as the member it reached: no header.
    #[default]
    Direct,
    /// Relay it to the leader at this URL ([`FORWARD_METADATA_KEY`]).
    ForwardTo(http::HeaderValue),
    /// Answer it even as a follower ([`FOLLOWER_HANDLE_METADATA_KEY`]).
    FollowerHandle,
}

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
    route: Route,
}

impl ForwardLayer {
    /// A layer that adds no header: calls are served by the member they reach.
    pub fn none() -> ForwardLayer {
        ForwardLayer {
            route: Route::Direct,
        }
    }
}

impl<S> tower::Layer<S> for ForwardLayer {
    type Service = Forward<S>;
    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            route: self.route.clone(),
        }
    }
}

/// Stamps each request with the header that tells a PD follower how to treat it: the
/// [`FORWARD_METADATA_KEY`] header when it is meant for the leader but sent through a
/// follower (PD-5), the [`FOLLOWER_HANDLE_METADATA_KEY`] header when the follower may
/// answer it itself (PD-6); passes requests through unchanged otherwise.
#[derive(Debug, Clone)]
pub struct Forward<S> {
    inner: S,
    route: Route,
}

impl<S: Clone> Forward<S> {
    /// A copy whose requests ask the member they reach to forward them to `leader_url`.
    ///
    /// Returns `None` when the URL cannot be a header value (it then cannot be forwarded to).
    pub fn forwarded_to(&self, leader_url: &str) -> Option<Forward<S>> {
        let value = http::HeaderValue::from_str(leader_url).ok()?;
        Some(Forward {
            inner: self.inner.clone(),
            route: Route::ForwardTo(value),
        })
    }

    /// A copy whose requests allow the member they reach to answer them even when it is a
    /// follower (the PD client's follower handling of region reads, PD-6).
    pub fn follower_handled(&self) -> Forward<S> {
        Forward {
            inner: self.inner.clone(),
            route: Route::FollowerHandle,
        }
    }
}

impl<S> Forward<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The leader URL requests are forwarded to, if any.
    pub fn forwarded_host(&self) -> Option<&str> {
        match &self.route {
            Route::ForwardTo(v) => v.to_str().ok(),
            Route::Direct | Route::FollowerHandle => None,
        }
    }

    /// Whether requests allow a follower to answer them ([`Self::follower_handled`]).
    pub fn is_follower_handled(&self) -> bool {
        matches!(self.route, Route::FollowerHandle)
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
        match &self.route {
            Route::Direct => {}
            Route::ForwardTo(v) => {
                req.headers_mut().insert(FORWARD_METADATA_KEY, v.clone());
            }
            Route::FollowerHandle => {
                req.headers_mut().insert(
                    FOLLOWER_HANDLE_METADATA_KEY,
                    http::HeaderValue::from_static(""),
                );
            }
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
