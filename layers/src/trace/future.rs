//! The response future of the `trace` layer.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::{pin_project, pinned_drop};
use tracing::Span;
use tracing::instrument::Instrumented;

use super::service::AttemptCounter;
use crate::backoff::SharedBackoffer;
use crate::classify::ResponseClass;
use crate::error::Error;
use crate::metrics::names::labels;
use crate::request::RpcResponse;

/// What a request span needs to report at the end: the request's backoff counters when it
/// entered the layer (so that the span reports only this request's backoff even when the
/// budget is shared with earlier requests) and its attempt counter.
#[derive(Debug)]
pub(crate) struct RequestStart {
    bo: SharedBackoffer,
    sleep_ms: u64,
    times: BTreeMap<String, u64>,
    attempts: Option<AttemptCounter>,
}

impl RequestStart {
    pub(crate) fn of(bo: &SharedBackoffer, attempts: Option<AttemptCounter>) -> RequestStart {
        let (sleep_ms, times) = bo.with(|b| (b.total_sleep_ms(), b.backoff_times()));
        RequestStart {
            bo: bo.clone(),
            sleep_ms,
            times,
            attempts,
        }
    }

    /// The attempts counted by [`AttemptTrace`](super::AttemptTrace), when any.
    fn attempts(&self) -> Option<u32> {
        self.attempts
            .as_ref()
            .map(AttemptCounter::count)
            .filter(|n| *n > 0)
    }

    /// Records `backoff_ms` and `backoff_kind` (the kinds that slept since the start,
    /// comma-separated), when this request backed off at all.
    fn record_backoff(&self, span: &Span) {
        let (sleep_ms, times) = self.bo.with(|b| (b.total_sleep_ms(), b.backoff_times()));
        let kinds: Vec<&str> = times
            .iter()
            .filter(|(kind, n)| self.times.get(*kind).is_none_or(|before| *n > before))
            .map(|(kind, _)| kind.as_str())
            .collect();
        if !kinds.is_empty() {
            span.record("backoff_kind", kinds.join(",").as_str());
        }
        let slept = sleep_ms.saturating_sub(self.sleep_ms);
        if slept > 0 {
            span.record("backoff_ms", slept);
        }
    }
}

/// What to record when the future finishes.
#[derive(Debug)]
enum Finish {
    /// A request span: details, backoff, result.
    Request(Option<RequestStart>),
    /// An attempt span: result only.
    Attempt,
    /// Already recorded.
    Done,
}

/// The future returned by [`Trace`](super::Trace) and [`AttemptTrace`](super::AttemptTrace):
/// the inner future, instrumented with the span (entered on every poll, never held across
/// an await), recording the outcome on the span when it finishes, and `result=canceled`
/// if it is dropped first.
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: Instrumented<F>,
    finish: Finish,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn request(
        inner: Instrumented<F>,
        start: Option<RequestStart>,
    ) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            finish: Finish::Request(start),
        }
    }

    pub(crate) fn attempt(inner: Instrumented<F>) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            finish: Finish::Attempt,
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let res = ready!(this.inner.as_mut().poll(cx));
        let span = this.inner.span();
        if !span.is_disabled() {
            match std::mem::replace(this.finish, Finish::Done) {
                Finish::Request(start) => {
                    let counted = start.as_ref().and_then(RequestStart::attempts);
                    if let Ok(resp) = &res {
                        record_details(span, resp, counted);
                    } else if let Some(n) = counted {
                        span.record("attempt", n);
                    }
                    if let Some(start) = start {
                        start.record_backoff(span);
                    }
                    record_result(span, &res);
                }
                Finish::Attempt => record_result(span, &res),
                Finish::Done => {}
            }
        }
        *this.finish = Finish::Done;
        Poll::Ready(res)
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ResponseFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if !matches!(this.finish, Finish::Done) {
            this.inner.span().record("result", labels::CANCELED);
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", self.inner.span())
            .finish_non_exhaustive()
    }
}

/// Where the final attempt went, from the response's details; the attempt count falls
/// back to the attempts [`AttemptTrace`](super::AttemptTrace) numbered.
fn record_details(span: &Span, resp: &RpcResponse, counted: Option<u32>) {
    let d = &resp.details;
    if d.store_id != 0 {
        span.record("store_id", d.store_id);
    }
    if !d.addr.is_empty() {
        span.record("addr", d.addr.as_str());
        span.record("server.address", d.addr.as_str());
    }
    if d.attempts != 0 {
        span.record("attempt", d.attempts);
    } else if let Some(n) = counted {
        span.record("attempt", n);
    }
}

/// `result` (the `metrics` layer's result label) and `error.kind`: the error kind for an
/// error, the region error's label or `key_error` for a response carrying one.
fn record_result(span: &Span, res: &Result<RpcResponse, Error>) {
    match res {
        Ok(resp) => {
            let class = ResponseClass::of(resp);
            span.record("result", labels::response_result(class));
            match class {
                ResponseClass::RegionError(kind) => span.record("error.kind", kind.label()),
                ResponseClass::KeyError => span.record("error.kind", labels::KEY_ERROR),
                _ => span,
            };
        }
        Err(e) => {
            span.record("result", labels::error_result(e.kind()));
            span.record("error.kind", labels::error_kind(e.kind()));
        }
    }
}
