use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::layer::RetryLayer;
use super::policy::{self, RegionErrorDecision, Sender};
use super::read_ts::read_ts_to_validate;
use crate::exec_details::{AccessReadType, BackoffStats, ExecDetails, ExecDetailsSink};
use crate::metrics::names;
use crate::network::ReadInvariants;
use crate::replica::{SelectorSlot, SlotOutcome};
use crate::request::{RpcRequest, RpcResponse};
use crate::{Error, ErrorDetail, Result};

/// The send-loop service; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Retry<S> {
    pub(super) inner: S,
    pub(super) layer: RetryLayer,
}

impl<S> Retry<S> {
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

/// The future of one call through [`Retry`].
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<RpcResponse>> + Send>>,
}

#[cfg(test)]
impl ResponseFuture {
    /// The size of the boxed future, for the size probe (`crate::future_sizes`).
    pub(crate) fn boxed_size(&self) -> usize {
        std::mem::size_of_val(&*self.inner)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<RpcResponse>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S> Service<RpcRequest> for Retry<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> ResponseFuture {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(send_loop(inner, self.layer.clone(), req)),
        }
    }
}

/// The SL-3 loop. `first` is the service polled ready by the caller; later attempts use
/// clones of it, each driven ready before it is called.
///
/// Not an `async fn`: its arguments would be copied from the future's captures into its
/// body's state, so the request would be held twice; the block below uses the captured
/// request in place.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold its by-value arguments twice in its future"
)]
fn send_loop<S>(
    first: S,
    layer: RetryLayer,
    mut base: RpcRequest,
) -> impl Future<Output = Result<RpcResponse>> + Send + 'static
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    async move {
        let stale_read = base.options.stale_read || base.context.stale_read;
        // SL-2 step 3: a read at a ts the oracle cannot vouch for is never sent.
        if let Some(validator) = &layer.read_ts
            && let Some(ts) = read_ts_to_validate(&base)
            && let Err(e) = validator.validate_read_ts(ts, stale_read).await
        {
            tracing::error!(
                cmd = %base.cmd_type(),
                read_ts = ts,
                stale_read,
                error = %e,
                "validate read ts failed for request"
            );
            return Err(e);
        }
        // The caller's read intent, for attempt-level layers (client-go's `reqInvariants`):
        // the selector may turn later attempts into leader reads.
        base.call.invariants = Some(ReadInvariants::of(&base));
        // `run` borrows the template and the layer: its future then holds no second copy of
        // them (every byte of this future is moved once, into its box).
        let Some(sink) = base.extensions.get::<ExecDetailsSink>().cloned() else {
            return run(first, &layer, &mut base, None).await;
        };
        // Backoff accounting is a delta over the call: the backoffer may be shared.
        let bo = base.backoffer.clone();
        let (times0, sleep0) = bo.with(|b| (b.backoff_times(), b.backoff_sleep_ms()));
        let mut details = ExecDetails::default();
        let result = run(first, &layer, &mut base, Some(&mut details)).await;
        let (times1, sleep1) = bo.with(|b| (b.backoff_times(), b.backoff_sleep_ms()));
        for (kind, n) in times1 {
            let count = n.saturating_sub(times0.get(&kind).copied().unwrap_or(0));
            let ms = sleep1
                .get(&kind)
                .copied()
                .unwrap_or(0)
                .saturating_sub(sleep0.get(&kind).copied().unwrap_or(0));
            if count > 0 {
                details.backoff.insert(
                    kind,
                    BackoffStats {
                        count,
                        duration: Duration::from_millis(ms),
                    },
                );
            }
        }
        sink.record(&details);
        result
    }
}

/// The loop itself; `details`, when given, collects RPC and error statistics.
async fn run<S>(
    first: S,
    layer: &RetryLayer,
    base: &mut RpcRequest,
    mut details: Option<&mut ExecDetails>,
) -> Result<RpcResponse>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let slot = SelectorSlot::new();
    base.call.slot = Some(slot.clone());
    let bo = base.backoffer.clone();
    let cmd = base.cmd_type();
    let sleep_before = bo.total_sleep_ms();
    let sender = Sender {
        svc: &layer.svc,
        conn: layer.conn.as_deref(),
        slot: &slot,
        bo: &bo,
        cmd,
        max_exec_ms: policy::effective_max_exec_ms(base),
    };
    // The first attempt uses the service the caller polled ready; later attempts use
    // clones of it, driven ready before each call.
    let template = first.clone();
    let mut first = Some(first);
    let mut send_times: u32 = 0;
    let mut rpc_time = Duration::ZERO;

    let stale_read = base.options.stale_read || base.context.stale_read;
    let finish = |mut resp: RpcResponse, send_times: u32, rpc_time: Duration| {
        // SL-2 step 7: retry histogram and stale-read hit/miss.
        if send_times > 1 {
            metrics::histogram!(names::REQUEST_RETRY_TIMES).record(f64::from(send_times - 1));
        }
        if stale_read {
            let result = if send_times <= 1 {
                names::labels::HIT
            } else {
                names::labels::MISS
            };
            metrics::counter!(names::STALE_READ_TOTAL, names::labels::RESULT => result)
                .increment(1);
        }
        resp.details.attempts = send_times;
        resp.details.rpc_time = rpc_time;
        resp.details.backoff_time =
            Duration::from_millis(bo.total_sleep_ms().saturating_sub(sleep_before));
        resp
    };

    loop {
        // SL-3 step 1: a killed query stops before the next attempt.
        if cmd.is_interruptible() {
            bo.check_killed()?;
        }
        let mut svc = first.take().unwrap_or_else(|| template.clone());
        // The attempt's result lives in this block only: a local that is borrowed stays
        // in the future's state until its scope ends, so it must end before the awaits of
        // the error handling below.
        let failure = {
            let started = Instant::now();
            // What `oneshot` does (ready, call, the service dropped once called), with
            // the attempt's request built only once the service is ready, so that no
            // `Oneshot` holds and moves it meanwhile.
            let result = match svc.ready().await {
                Ok(_) => {
                    let mut attempt = base.clone();
                    if send_times > 0 {
                        attempt.context.is_retry_request = true;
                    }
                    let fut = svc.call(attempt);
                    drop(svc);
                    fut.await
                }
                Err(e) => Err(e),
            };
            let took = started.elapsed();
            rpc_time += took;
            // Only attempts that reached the transport count as RPCs (SL-4): the replica layer
            // records an outcome for the ones it answered itself.
            let outcome = slot.take_outcome();
            if outcome.is_none()
                && let Some(d) = details.as_deref_mut()
            {
                d.record_rpc(cmd, took);
                d.wait_kv_resp += took;
                let label = match &result {
                    Ok(r) => r
                        .region_error()
                        .map(|e| crate::classify::RegionErrorKind::of(e).label()),
                    Err(e) => Some(e.kind().label()),
                };
                // `RecordRPCErrorStats` and `recordRPCAccessInfo`, for attempts that met an
                // error.
                if let Some(l) = label {
                    d.record_error(l);
                    let (peer, store, read_type) = attempt_target(&slot, base);
                    d.access.record(read_type, peer, store, l);
                }
            }

            // Outcomes decided below us, in the replica layer, end the call as they are.
            match outcome {
                Some(SlotOutcome::Fatal) => return result.map(|r| finish(r, send_times, rpc_time)),
                Some(SlotOutcome::NoCandidate) => {
                    return result.map(|r| finish(r, send_times, rpc_time));
                }
                None => {}
            }
            send_times += 1;
            // Later attempts stay on the region this call was routed to (client-go's
            // `regionVer` argument), even when `route` below us located it.
            if base.target.region.is_none() {
                base.target.region = slot.routed_region();
            }

            // The common answer returns here. What is left to handle is small: nothing the
            // size of a response stays in this future across the awaits below (a response
            // value that lived across them would be laid out in every state of the future).
            match Failure::of(result) {
                Ok(resp) => return Ok(finish(resp, send_times, rpc_time)),
                Err(f) => f,
            }
        };
        match failure {
            Failure::Send(err) => {
                // SL-3 step 11: the caller's own cancellation ends the call at once.
                if matches!(err.detail(), ErrorDetail::Canceled) {
                    return Err(err);
                }
                // SL-3 step 2: when handling fails, the caller sees the transport error.
                if sender.on_send_fail(&err, base).await.is_err() {
                    return Err(err);
                }
            }
            Failure::Region(resp) => {
                let Some(region_err) = resp.region_error() else {
                    return Ok(finish(*resp, send_times, rpc_time));
                };
                match sender.on_region_error(region_err, base).await {
                    RegionErrorDecision::Retry => {}
                    RegionErrorDecision::ReturnToCaller => {
                        return Ok(finish(*resp, send_times, rpc_time));
                    }
                    RegionErrorDecision::Fail(e) => return Err(e),
                }
            }
        }
    }
}

/// An attempt's outcome that the loop must handle before it ends or sends again.
enum Failure {
    /// The attempt failed to send or to get an answer.
    Send(Error),
    /// The answer carries a region error; boxed, since it is held across the handling.
    Region(Box<RpcResponse>),
}

impl Failure {
    /// Splits an attempt's result into the answer that ends the call (no region error)
    /// and what is left to handle. Taking the result by value keeps it out of the loop's
    /// future: a partly moved-out local would still be held there.
    fn of(result: Result<RpcResponse>) -> std::result::Result<RpcResponse, Failure> {
        match result {
            Err(err) => Err(Failure::Send(err)),
            Ok(resp) if resp.region_error().is_some() => Err(Failure::Region(Box::new(resp))),
            Ok(resp) => Ok(resp),
        }
    }
}

/// The peer, store and read kind of the attempt that just came back: the selector's
/// target when there is one, else the request's own target and flags.
fn attempt_target(slot: &SelectorSlot, base: &RpcRequest) -> (u64, u64, AccessReadType) {
    if let Some(sel) = slot.take() {
        let store = sel.target_store().unwrap_or(0);
        let peer = sel
            .replicas()
            .iter()
            .find(|r| r.peer.store_id == store)
            .map_or(0, |r| r.peer.id);
        let flags = sel.read_flags();
        slot.put(sel);
        return (
            peer,
            store,
            AccessReadType::of(flags.stale_read, flags.replica_read),
        );
    }
    (
        base.target.peer.as_ref().map_or(0, |p| p.id),
        base.target.store_id,
        AccessReadType::of(base.context.stale_read, base.context.replica_read),
    )
}
