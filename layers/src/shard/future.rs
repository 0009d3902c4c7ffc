//! The future of [`Shard`](super::Shard) and the two loops behind it: the key fan-out
//! (client-go's `GroupKeysByRegion` + batches + `doBatchReq` re-split) and the range
//! paging (client-go's `Scan` / `ReverseScan` / `DeleteRange` / `Checksum` loops and the
//! transactional scanner's `getData`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use futures_core::future::BoxFuture;
use pin_project::pin_project;
use tikv_proto::kvrpcpb;
use tower::ServiceExt;
use tower_service::Service;

use super::keys::{
    KeyPlan, Part, RangePlan, RouteKey, empty_response, fold_range, merge_keys, route_key,
};
use super::policy::{BatchLimit, ShardPolicy};
use crate::backoff::{SharedBackoffer, may_backoff_for_region_error};
use crate::classify::RegionErrorKind;
use crate::error::{Error, ErrorDetail, Result};
use crate::locate::{RegionLocator, RegionSnapshot, RegionVerId};
use crate::request::{
    AttemptDetails, Command, CommandResponse, RequestOptions, RpcRequest, RpcResponse, Target,
};

/// The future of one call through [`Shard`](super::Shard): either the inner service's
/// own future (commands that are not split) or the boxed fan-out / paging loop.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    kind: Kind<F>,
}

#[pin_project(project = KindProj)]
enum Kind<F> {
    Direct {
        #[pin]
        fut: F,
    },
    Sharded {
        fut: BoxFuture<'static, Result<RpcResponse>>,
    },
}

impl<F> ResponseFuture<F> {
    pub(super) fn direct(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Direct { fut },
        }
    }

    pub(super) fn sharded(fut: BoxFuture<'static, Result<RpcResponse>>) -> Self {
        ResponseFuture {
            kind: Kind::Sharded { fut },
        }
    }
}

#[cfg(test)]
impl<F> ResponseFuture<F> {
    /// The size of the boxed sharded future, or of the direct one, for the size probe
    /// (`crate::future_sizes`).
    pub(crate) fn boxed_size(&self) -> usize {
        match &self.kind {
            Kind::Direct { fut } => std::mem::size_of_val(fut),
            Kind::Sharded { fut } => std::mem::size_of_val(&**fut),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Direct { .. } => "direct",
            Kind::Sharded { .. } => "sharded",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse>>,
{
    type Output = Result<RpcResponse>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { fut } => fut.poll(cx),
            KindProj::Sharded { fut } => fut.as_mut().poll(cx),
        }
    }
}

// ===== shared pieces =====

/// Everything of the caller's request but the command, to stamp on each sub-request.
struct Template {
    context: kvrpcpb::Context,
    options: RequestOptions,
    target: Target,
    extensions: http::Extensions,
}

impl Template {
    /// A sub-request for `cmd` routed to `region` with its own backoffer. The caller's
    /// target is kept when the sub-request goes to the region the caller chose.
    fn request(
        &self,
        cmd: Command,
        region: &Arc<RegionSnapshot>,
        bo: SharedBackoffer,
    ) -> RpcRequest {
        let target = match &self.target.region {
            Some(r) if r.ver == region.ver => self.target.clone(),
            _ => Target {
                region: Some(region.clone()),
                ..Target::default()
            },
        };
        RpcRequest {
            cmd,
            context: self.context.clone(),
            options: self.options.clone(),
            target,
            backoffer: bo,
            extensions: self.extensions.clone(),
            call: Default::default(),
        }
    }
}

/// Adds a sub-response's details to the running totals of the call.
fn add_details(total: &mut AttemptDetails, d: &AttemptDetails) {
    total.attempts = total.attempts.saturating_add(d.attempts);
    total.rpc_time = total.rpc_time.saturating_add(d.rpc_time);
    total.backoff_time = total.backoff_time.saturating_add(d.backoff_time);
    total.addr.clone_from(&d.addr);
    total.store_id = d.store_id;
}

/// Backs off for a region error a sub-request carried (client-go's
/// `MayBackoffForRegionError`, SL-14) and returns the time slept.
async fn backoff_for(err: &tikv_proto::errorpb::Error, bo: &SharedBackoffer) -> Result<Duration> {
    let before = bo.total_sleep_ms();
    may_backoff_for_region_error(err, bo).await?;
    Ok(Duration::from_millis(
        bo.total_sleep_ms().saturating_sub(before),
    ))
}

fn is_undetermined(err: &tikv_proto::errorpb::Error) -> bool {
    RegionErrorKind::of(err) == RegionErrorKind::UndeterminedResult
}

fn foreign_region(region: &RegionSnapshot, key: &[u8]) -> Error {
    ErrorDetail::Internal(format!(
        "region cache answered region {} [{:?}, {:?}) for key {:?} outside it",
        region.ver.id,
        region.start_key(),
        region.end_key(),
        key
    ))
    .into()
}

// ===== point commands =====

/// The point loop: locate the command's key (the caller's region when it holds the key),
/// send, and on a region error other than `UndeterminedResult` back off (SL-14) and go
/// again against the refreshed cache, as client-go's single-key loops do (rawkv
/// `sendReq`, the snapshot's `get`).
///
/// Unlike the key fan-out it needs no plan, grouping, backoffer forks or merge: the
/// caller's backoffer is used directly, and the only per-send cost is the request copy
/// kept for a resend. Details of every send add up in the answer.
///
/// Not an `async fn`: the future holds the request once (an `async fn` copies its
/// arguments into its body's state), and it is moved into a box on every point call.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold its by-value arguments twice in its future"
)]
pub(super) fn point<S>(
    svc: S,
    locator: Arc<dyn RegionLocator>,
    mut req: RpcRequest,
) -> impl Future<Output = Result<RpcResponse>> + Send + 'static
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    async move {
        let cmd_type = req.cmd.cmd_type();
        // The details of every send so far; `None` until the first answer, which is then
        // taken as it is (no copy of its address).
        let mut totals: Option<AttemptDetails> = None;
        let mut slept_total = Duration::ZERO;
        loop {
            let key = match route_key(&req.cmd) {
                RouteKey::Key(k) | RouteKey::EndKey(k) => k,
                RouteKey::None => &[],
            };
            let hinted = matches!(&req.target.region, Some(r) if r.contains(key));
            if !hinted {
                let region = locator.locate_key(key).await?;
                if !region.contains(key) {
                    return Err(foreign_region(&region, key));
                }
                req.target = Target {
                    region: Some(region),
                    ..Target::default()
                };
            }
            // The answer lives in this block only, so that it is not held in this
            // future's state across the backoff below. What `oneshot` does: the clone
            // is driven ready, then called (no second copy of the request waits in a
            // `Oneshot` meanwhile).
            let region_err = {
                let mut inner = svc.clone();
                inner.ready().await?;
                let fut = inner.call(req.clone());
                drop(inner);
                let mut resp = fut.await?;
                resp.expect(cmd_type)?;
                if let Some(mut t) = totals.take() {
                    add_details(&mut t, &resp.details);
                    resp.details = t;
                }
                let Some(region_err) = resp.region_error() else {
                    resp.details.backoff_time =
                        resp.details.backoff_time.saturating_add(slept_total);
                    return Ok(resp);
                };
                if is_undetermined(region_err) {
                    return Ok(resp);
                }
                let region_err = Box::new(region_err.clone());
                tracing::debug!(
                    cmd = %cmd_type,
                    region = req.target.region.as_ref().map_or(0, |r| r.ver.id),
                    error = RegionErrorKind::of(&region_err).label(),
                    "point request met a region error; locating its key again"
                );
                totals = Some(resp.details);
                region_err
            };
            slept_total =
                slept_total.saturating_add(backoff_for(&region_err, &req.backoffer).await?);
            // Locate again: the send loop already invalidated what the error disproved.
            req.target = Target::default();
        }
    }
}

// ===== keys =====

/// One sub-request of a multi-key command: a batch of key indexes in one region.
struct Job {
    region: Arc<RegionSnapshot>,
    indices: Vec<usize>,
    bo: SharedBackoffer,
}

/// What one sub-request came back with.
enum JobOutcome {
    /// Answered (no region error).
    Done(Part, AttemptDetails),
    /// A region error: the keys were located again and cut into these new jobs.
    Resplit(Vec<Job>, AttemptDetails),
    /// An `UndeterminedResult` region error: never resent.
    Undetermined(RpcResponse),
}

/// The state every job of one call shares.
struct Shared {
    locator: Arc<dyn RegionLocator>,
    plan: KeyPlan,
    template: Template,
    limit: Option<BatchLimit>,
}

/// Groups the keys at `indices` by region (client-go's `GroupKeysByRegion`, RC-21): a
/// key is located only when it falls outside the previously located region; groups keep
/// the keys' order and come back in region order. A `hint` region containing every key is
/// used without locating, unless a split key sits on its start (that key must go through
/// the filter below, as it would for a located region).
async fn group(
    locator: &dyn RegionLocator,
    plan: &KeyPlan,
    indices: &[usize],
    hint: Option<&Arc<RegionSnapshot>>,
) -> Result<Vec<(Arc<RegionSnapshot>, Vec<usize>)>> {
    if let Some(h) = hint
        && indices.iter().all(|&i| {
            let key = plan.key(i);
            h.contains(key) && !(plan.skips_region_start_keys() && key == h.start_key())
        })
    {
        return Ok(vec![(h.clone(), indices.to_vec())]);
    }
    let mut groups: Vec<(Arc<RegionSnapshot>, Vec<usize>)> = Vec::new();
    let mut by_ver: HashMap<RegionVerId, usize> = HashMap::new();
    let mut last: Option<Arc<RegionSnapshot>> = None;
    for &i in indices {
        let key = plan.key(i);
        let region = match &last {
            Some(r) if r.contains(key) => r.clone(),
            _ => {
                let r = locator.locate_key(key).await?;
                if !r.contains(key) {
                    return Err(foreign_region(&r, key));
                }
                last = Some(r.clone());
                // Split keys equal to a region start are already split (checked only
                // when a region is freshly located, as client-go's filter is).
                if plan.skips_region_start_keys() && key == r.start_key() {
                    continue;
                }
                r
            }
        };
        match by_ver.get(&region.ver) {
            Some(&g) => {
                if let Some((_, v)) = groups.get_mut(g) {
                    v.push(i);
                }
            }
            None => {
                by_ver.insert(region.ver, groups.len());
                groups.push((region, vec![i]));
            }
        }
    }
    groups.sort_by(|a, b| a.0.start_key().cmp(b.0.start_key()));
    Ok(groups)
}

/// Cuts one region's keys into batches: a batch is closed once its weight reached the
/// limit (see [`BatchLimit`]).
fn batches(plan: &KeyPlan, limit: Option<BatchLimit>, indices: Vec<usize>) -> Vec<Vec<usize>> {
    let Some(limit) = limit else {
        return vec![indices];
    };
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut size = 0usize;
    for i in indices {
        if size >= limit.limit && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        cur.push(i);
        size = size.saturating_add(plan.weight(i, limit.weigh));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Jobs for grouped keys, each with a fork of `bo`.
fn jobs_for(
    plan: &KeyPlan,
    limit: Option<BatchLimit>,
    groups: Vec<(Arc<RegionSnapshot>, Vec<usize>)>,
    bo: &SharedBackoffer,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (region, indices) in groups {
        for b in batches(plan, limit, indices) {
            jobs.push(Job {
                region: region.clone(),
                indices: b,
                bo: bo.fork(),
            });
        }
    }
    jobs
}

/// Sends one batch. On a region error other than `UndeterminedResult` it backs off on the
/// batch's backoffer when needed and re-groups the batch's keys against the refreshed
/// region cache (client-go's `doBatchReq` / `doBatchPut`, which recurse into
/// `sendBatchReq` with the batch's keys).
async fn run_job<S>(shared: Arc<Shared>, svc: S, job: Job) -> (SharedBackoffer, Result<JobOutcome>)
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    let bo = job.bo.clone();
    let result = async {
        let cmd = shared.plan.build(&job.indices);
        let cmd_type = cmd.cmd_type();
        let req = shared.template.request(cmd, &job.region, job.bo.clone());
        let resp = svc.oneshot(req).await?;
        resp.expect(cmd_type)?;
        let mut details = resp.details.clone();
        let Some(region_err) = resp.region_error() else {
            let part = Part {
                indices: job.indices,
                resp: resp.resp,
            };
            return Ok(JobOutcome::Done(part, details));
        };
        if is_undetermined(region_err) {
            return Ok(JobOutcome::Undetermined(resp));
        }
        let region_err = region_err.clone();
        tracing::debug!(
            cmd = %cmd_type,
            region = job.region.ver.id,
            keys = job.indices.len(),
            error = RegionErrorKind::of(&region_err).label(),
            "sub-request met a region error; re-splitting its keys"
        );
        let slept = backoff_for(&region_err, &job.bo).await?;
        details.backoff_time = details.backoff_time.saturating_add(slept);
        let groups = group(&*shared.locator, &shared.plan, &job.indices, None).await?;
        let jobs = jobs_for(&shared.plan, shared.limit, groups, &job.bo);
        Ok(JobOutcome::Resplit(jobs, details))
    }
    .await;
    (bo, result)
}

/// The key fan-out: group, batch, send with bounded concurrency, re-split on region
/// errors, merge in key order.
///
/// Backoffers follow client-go's `sendBatchReq`: one fork of the caller's backoffer
/// stands for the whole call (cancelled at the first error, so sleeping siblings stop),
/// each batch forks it again, a re-split batch forks its own, and the caller's backoffer
/// adopts the accounting of the last batch that finished (BO-7). The first error wins and
/// no further batch is started (batches in flight finish; later errors are logged). An
/// `UndeterminedResult` answer is returned as it is and outranks errors: the caller must
/// learn that a write may have been applied.
pub(super) async fn fan_out<S, P>(
    svc: S,
    locator: Arc<dyn RegionLocator>,
    policy: Arc<P>,
    req: RpcRequest,
) -> Result<RpcResponse>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: ShardPolicy,
{
    let RpcRequest {
        cmd,
        context,
        options,
        target,
        backoffer: parent,
        extensions,
        call: _,
    } = req;
    let plan = KeyPlan::new(cmd)?;
    let total = plan.len();
    if total == 0 {
        return Ok(RpcResponse::new(empty_response(plan.shell())?));
    }
    let cmd_type = plan.cmd_type();
    let limit = policy.batch_limit(cmd_type);
    let max_in_flight = policy.max_concurrency(cmd_type).max(1);

    let all: Vec<usize> = (0..total).collect();
    let groups = group(&*locator, &plan, &all, target.region.as_ref()).await?;
    let call_bo = parent.fork();
    let mut queue: VecDeque<Job> = jobs_for(&plan, limit, groups, &call_bo).into();
    tracing::debug!(cmd = %cmd_type, keys = total, batches = queue.len(), "sharding by region");
    let shared = Arc::new(Shared {
        locator,
        plan,
        template: Template {
            context,
            options,
            target,
            extensions,
        },
        limit,
    });

    let mut in_flight = FuturesUnordered::new();
    let mut parts: Vec<(Part, AttemptDetails)> = Vec::new();
    let mut totals = AttemptDetails::default();
    let mut first_err: Option<Error> = None;
    let mut undetermined: Option<RpcResponse> = None;
    let mut stopped = false;
    loop {
        while !stopped && in_flight.len() < max_in_flight {
            let Some(job) = queue.pop_front() else { break };
            in_flight.push(run_job(shared.clone(), svc.clone(), job));
        }
        let Some((bo, result)) = in_flight.next().await else {
            break;
        };
        parent.update_using_forked(&bo);
        match result {
            Ok(JobOutcome::Done(part, d)) => {
                add_details(&mut totals, &d);
                parts.push((part, d));
            }
            Ok(JobOutcome::Resplit(jobs, d)) => {
                add_details(&mut totals, &d);
                queue.extend(jobs);
            }
            Ok(JobOutcome::Undetermined(resp)) => {
                stopped = true;
                if undetermined.is_none() {
                    undetermined = Some(resp);
                }
            }
            Err(e) => {
                stopped = true;
                if first_err.is_none() {
                    call_bo.cancel_token().cancel();
                    first_err = Some(e);
                } else {
                    tracing::warn!(cmd = %cmd_type, error = %e, "another sub-request failed");
                }
            }
        }
    }
    if let Some(resp) = undetermined {
        if let Some(e) = first_err {
            tracing::warn!(cmd = %cmd_type, error = %e, "sub-request failed beside an undetermined one");
        }
        return Ok(resp);
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // Key order: by each part's first key (ties: input order).
    parts.sort_by(|(a, _), (b, _)| {
        let ka = a.indices.first().map_or(&[][..], |&i| shared.plan.key(i));
        let kb = b.indices.first().map_or(&[][..], |&i| shared.plan.key(i));
        ka.cmp(kb)
            .then_with(|| a.indices.first().cmp(&b.indices.first()))
    });
    if let Some((_, d)) = parts.last() {
        totals.addr.clone_from(&d.addr);
        totals.store_id = d.store_id;
    }
    let parts: Vec<Part> = parts.into_iter().map(|(p, _)| p).collect();
    let resp = merge_keys(shared.plan.shell(), total, parts)?;
    Ok(RpcResponse {
        resp,
        details: totals,
    })
}

// ===== ranges =====

/// The later of a range's lower bound and a region's start (empty = −∞).
fn max_start(lower: &[u8], region_start: &[u8]) -> Vec<u8> {
    lower.max(region_start).to_vec()
}

/// The earlier of a range's upper bound and a region's end (empty = +∞).
fn min_end(upper: &[u8], region_end: &[u8]) -> Vec<u8> {
    match (upper.is_empty(), region_end.is_empty()) {
        (true, _) => region_end.to_vec(),
        (false, true) => upper.to_vec(),
        (false, false) => upper.min(region_end).to_vec(),
    }
}

/// The range paging loop, one region at a time, in key order (descending for reverse
/// scans).
///
/// Forward: locate the cursor (initially the lower bound), send `[cursor, min(upper,
/// region end))`, continue at the region end while rows are still wanted and the region
/// ends before the upper bound. Reverse: locate the region ending at or after the cursor
/// (initially the upper bound) with `locate_end_key`, send `[max(lower, region start),
/// cursor)`, continue at the region start while it is above the lower bound. Each
/// sub-request asks for the rows still missing. A region error backs off if needed and
/// re-locates the same cursor; `UndeterminedResult` is returned as it is. A response-level
/// error stops the loop and is returned with what was merged so far.
///
/// Sub-requests are clipped to their region on both sides; TiKV bounds a request by its
/// region anyway, so this changes nothing on a real store and keeps every key a
/// sub-request names inside its region.
pub(super) async fn page<S>(
    svc: S,
    locator: Arc<dyn RegionLocator>,
    req: RpcRequest,
) -> Result<RpcResponse>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let RpcRequest {
        cmd,
        context,
        options,
        target,
        backoffer: parent,
        extensions,
        call: _,
    } = req;
    let plan = RangePlan::new(cmd);
    let cmd_type = plan.command().cmd_type();
    let mut hint = target.region.clone();
    let template = Template {
        context,
        options,
        target,
        extensions,
    };
    let mut acc: Option<CommandResponse> = None;
    let mut remaining = plan.limit;
    let mut totals = AttemptDetails::default();

    'ranges: for (lower, upper) in &plan.ranges {
        if plan.is_empty_range(lower, upper) {
            continue;
        }
        let mut cursor = if plan.reverse {
            upper.clone()
        } else {
            lower.clone()
        };
        loop {
            if remaining == Some(0) {
                break 'ranges;
            }
            let hinted = hint.take().filter(|h| {
                if plan.reverse {
                    h.contains_by_end(&cursor)
                } else {
                    h.contains(&cursor)
                }
            });
            let region = match hinted {
                Some(h) => h,
                None if plan.reverse => locator.locate_end_key(&cursor).await?,
                None => locator.locate_key(&cursor).await?,
            };
            let (sub_lower, sub_upper) = if plan.reverse {
                if !region.contains_by_end(&cursor) {
                    return Err(foreign_region(&region, &cursor));
                }
                (max_start(lower, region.start_key()), cursor.clone())
            } else {
                if !region.contains(&cursor) {
                    return Err(foreign_region(&region, &cursor));
                }
                (cursor.clone(), min_end(upper, region.end_key()))
            };
            let sub = plan.build(&sub_lower, &sub_upper, remaining);
            let bo = parent.fork();
            let result = svc
                .clone()
                .oneshot(template.request(sub, &region, bo.clone()))
                .await;
            parent.update_using_forked(&bo);
            let resp = result?;
            resp.expect(cmd_type)?;
            add_details(&mut totals, &resp.details);
            if let Some(region_err) = resp.region_error() {
                if is_undetermined(region_err) {
                    return Ok(resp);
                }
                let region_err = region_err.clone();
                tracing::debug!(
                    cmd = %cmd_type,
                    region = region.ver.id,
                    error = RegionErrorKind::of(&region_err).label(),
                    "range sub-request met a region error; locating again"
                );
                let slept = backoff_for(&region_err, &bo).await;
                parent.update_using_forked(&bo);
                totals.backoff_time = totals.backoff_time.saturating_add(slept?);
                continue;
            }
            let folded = fold_range(&mut acc, resp.resp)?;
            if let Some(r) = remaining.as_mut() {
                *r = r.saturating_sub(u32::try_from(folded.rows).unwrap_or(u32::MAX));
            }
            if folded.stop {
                break 'ranges;
            }
            if plan.reverse {
                let start = region.start_key();
                if start.is_empty() || (!lower.is_empty() && start <= lower.as_slice()) {
                    break;
                }
                cursor = start.to_vec();
            } else {
                let end = region.end_key();
                if end.is_empty() || (!upper.is_empty() && end >= upper.as_slice()) {
                    break;
                }
                cursor = end.to_vec();
            }
        }
    }
    let resp = match acc {
        Some(r) => r,
        None => empty_response(plan.command())?,
    };
    Ok(RpcResponse {
        resp,
        details: totals,
    })
}
