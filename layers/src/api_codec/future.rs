//! [`ResponseFuture`] of the [`ApiCodec`](super::ApiCodec) service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;

use super::Codec;
use crate::error::Error;
use crate::request::RpcResponse;

/// Waits for the inner service, then decodes the response back to user keys.
///
/// Only successful responses are decoded; transport errors pass through unchanged
/// (client-go decodes only on success).
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F> {
    Called {
        #[pin]
        fut: F,
        /// `None` when responses need no decoding (V1 raw), so that path holds nothing.
        codec: Option<Codec>,
    },
    Failed {
        err: Option<Error>,
    },
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(fut: F, codec: &Codec) -> Self {
        let codec = codec.decodes_responses().then(|| codec.clone());
        ResponseFuture {
            state: State::Called { fut, codec },
        }
    }

    pub(super) fn failed(err: Error) -> Self {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { fut, codec } => {
                let resp = ready!(fut.poll(cx))?;
                Poll::Ready(match codec.take() {
                    Some(codec) => codec.decode_response(resp).inspect_err(|e| {
                        tracing::debug!(error = %e, "api codec failed to decode a response");
                    }),
                    None => Ok(resp),
                })
            }
            StateProj::Failed { err } => Poll::Ready(Err(err.take().unwrap_or_else(|| {
                crate::ErrorDetail::Internal("future polled after completion".to_owned()).into()
            }))),
        }
    }
}
