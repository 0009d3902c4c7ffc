//! Which pieces of a multi-request write TiKV acknowledged, so a failed batch write can say
//! that it was partly applied (issue 7, "Bad input": nothing partially written without the
//! error saying so).
//!
//! `shard` splits `RawBatchPut`, `RawBatchDelete` and `RawDeleteRange` into sub-requests by
//! region and batch size and returns the first error (client-go's `sendBatchReq` /
//! `sendBatchPut` / the `DeleteRange` loop, RAW-17, RAW-22 .. RAW-25): the batches that
//! succeeded before or beside it stay written. The raw client puts a [`WriteProgress`] into
//! the request's extensions; `shard` clones the extensions into every sub-request and the
//! send loop into every attempt, and [`ProgressLayer`], installed at
//! [`Stage::Attempt`](crate::pipeline::Stage::Attempt) (innermost of that stage, so it sees
//! what the store answered before any user layer rewrites it), counts each attempt TiKV
//! answered without a region error and without an `error` message — a write the store
//! applied.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use tikv_layers::{Command, Error, Result, RpcRequest, RpcResponse};
use tower::{Layer, Service};

/// Counters shared by every sub-request and attempt of one write call.
#[derive(Debug, Default)]
pub(crate) struct WriteProgress {
    requests: AtomicUsize,
    keys: AtomicUsize,
}

impl WriteProgress {
    /// Sub-requests TiKV acknowledged.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }

    /// Keys (pairs) those sub-requests carried; 0 for range deletes.
    pub(crate) fn keys(&self) -> usize {
        self.keys.load(Ordering::Acquire)
    }

    fn record(&self, keys: usize) {
        self.keys.fetch_add(keys, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::AcqRel);
    }
}

/// The extension the raw client inserts into a write request.
#[derive(Debug, Clone)]
pub(crate) struct ProgressHandle(pub(crate) Arc<WriteProgress>);

/// Installs [`Progress`] (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProgressLayer;

impl<S> Layer<S> for ProgressLayer {
    type Service = Progress<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Progress { inner }
    }
}

/// Counts acknowledged write attempts of requests carrying a [`ProgressHandle`]; every
/// other request passes through untouched.
#[derive(Debug, Clone)]
pub(crate) struct Progress<S> {
    inner: S,
}

impl<S> Service<RpcRequest> for Progress<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
    S::Future: Send + Unpin + 'static,
{
    type Response = RpcResponse;
    type Error = Error;
    /// Untracked requests (every read) go through on the inner future, without a box.
    type Future = ProgressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let tracked = req
            .extensions
            .get::<ProgressHandle>()
            .map(|h| (h.0.clone(), key_count(&req.cmd)));
        let fut = self.inner.call(req);
        let Some(tracked) = tracked else {
            return ProgressFuture::Untracked(fut);
        };
        ProgressFuture::Tracked(Box::pin(async move {
            let resp = fut.await?;
            let (progress, keys) = tracked;
            if resp.region_error().is_none()
                && super::storage_error(&resp.resp).is_none_or(str::is_empty)
            {
                progress.record(keys);
            }
            Ok(resp)
        }))
    }
}

/// The future of [`Progress`]: the inner future as it is for untracked requests, a boxed
/// counting wrapper for tracked writes.
pub(crate) enum ProgressFuture<F> {
    /// Not a tracked write: the inner future, unwrapped.
    Untracked(F),
    /// A tracked write: counts the attempt once the store acknowledged it.
    Tracked(BoxFuture<'static, Result<RpcResponse>>),
}

impl<F> Future for ProgressFuture<F>
where
    F: Future<Output = Result<RpcResponse>> + Unpin,
{
    type Output = Result<RpcResponse>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ProgressFuture::Untracked(f) => Pin::new(f).poll(cx),
            ProgressFuture::Tracked(f) => f.as_mut().poll(cx),
        }
    }
}

/// The keys a write sub-request carries.
fn key_count(cmd: &Command) -> usize {
    match cmd {
        Command::RawBatchPut(r) => r.pairs.len(),
        Command::RawBatchDelete(r) => r.keys.len(),
        Command::RawPut(_) | Command::RawDelete(_) | Command::RawCompareAndSwap(_) => 1,
        _ => 0,
    }
}
