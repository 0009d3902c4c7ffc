//! [`ApiCodec`]: the service of [`ApiCodecLayer`](super::ApiCodecLayer).

use std::task::{Context, Poll};

use tower_service::Service;

use super::{Codec, ResponseFuture};
use crate::error::Error;
use crate::request::{RpcRequest, RpcResponse};

/// The API codec service; see the [module docs](super).
///
/// `poll_ready` is the inner service's: the codec calls it exactly once, synchronously in
/// `call`, so it needs no clone of the inner service.
#[derive(Debug, Clone)]
pub struct ApiCodec<S> {
    inner: S,
    codec: Codec,
}

impl<S> ApiCodec<S> {
    /// Wraps `inner`, applying `codec` to every request and response.
    pub fn new(inner: S, codec: Codec) -> ApiCodec<S> {
        ApiCodec { inner, codec }
    }

    /// The codec applied.
    pub fn codec(&self) -> &Codec {
        &self.codec
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

impl<S> Service<RpcRequest> for ApiCodec<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        // The attempt is ours (the retry loop keeps its own base request), so it is
        // encoded in place.
        match self.codec.encode_request(&mut req) {
            Ok(()) => ResponseFuture::new(self.inner.call(req), &self.codec),
            Err(e) => ResponseFuture::failed(e),
        }
    }
}
