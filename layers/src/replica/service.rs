use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::layer::ReplicaLayer;
use super::policy::{AttemptTarget, ReadFlags, ReplicaSelector, SelectorOptions, SlotOutcome};
use crate::request::{AccessLocation, EndpointType, ReplicaReadType, RpcRequest, RpcResponse};
use crate::{Error, Result};

/// The store label naming a store's zone (client-go's `DCLabelKey`).
const ZONE_LABEL: &str = "zone";

/// The replica selection service; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Replica<S> {
    pub(super) inner: S,
    pub(super) layer: ReplicaLayer,
}

impl<S> Replica<S> {
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

/// The future of one attempt through [`Replica`].
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

impl<S> Service<RpcRequest> for Replica<S>
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
        // The service polled ready is the one that must serve the call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(attempt(inner, self.layer.clone(), req)),
        }
    }
}

/// One attempt: pick, patch, pay pending backoff, send, record (SL-3 steps 5 .. 13).
///
/// Not an `async fn`, so that the future holds the request once (an `async fn` copies its
/// arguments from its captures into its body's state); the inner service is driven ready
/// before it takes the request, so no `Oneshot` holds a second copy either.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold its by-value arguments twice in its future"
)]
fn attempt<S>(
    mut inner: S,
    layer: ReplicaLayer,
    mut req: RpcRequest,
) -> impl Future<Output = Result<RpcResponse>> + Send + 'static
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
{
    async move {
        // Only TiKV requests routed to a region have replicas to choose from; anything else
        // (store-level commands, TiDB endpoints, requests the caller aimed at an address
        // itself) goes through untouched.
        let region = match &req.target.region {
            Some(r) if req.options.endpoint == EndpointType::TiKV && req.target.addr.is_empty() => {
                r.clone()
            }
            _ => {
                inner.ready().await?;
                let fut = inner.call(req);
                drop(inner);
                return fut.await;
            }
        };
        let slot = req.call.slot.clone().unwrap_or_default();

        let selector = match slot.take() {
            Some(s) => Some(s),
            None if slot.is_unavailable() => None,
            None => {
                let flags = ReadFlags {
                    replica_read: req.context.replica_read
                        || req.options.replica_read.is_follower_read(),
                    stale_read: req.context.stale_read || req.options.stale_read,
                    busy_threshold_ms: req.context.busy_threshold_ms,
                    read_type: req.options.replica_read,
                };
                let opts = SelectorOptions {
                    labels: req.options.match_labels.clone(),
                    stores: req.options.match_store_ids.clone(),
                    leader_only: req.options.leader_only,
                    prefer_leader: req.options.prefer_leader,
                };
                let s = ReplicaSelector::new(
                    layer.svc.clone(),
                    region.ver,
                    req.cmd_type(),
                    flags,
                    opts,
                    layer.config,
                );
                if s.is_none() {
                    slot.set_unavailable();
                }
                s
            }
        };
        let Some(mut sel) = selector else {
            // RS-1: the region left the cache; no selector, no backoff, pseudo error.
            slot.set_outcome(SlotOutcome::NoCandidate);
            return pseudo_region_error(&req);
        };

        let target = match sel.next().await {
            Ok(Some(t)) => t,
            Ok(None) => {
                let r = sel.backoff_on_no_candidate(&req.backoffer).await;
                slot.put(sel);
                if let Err(e) = r {
                    slot.set_outcome(SlotOutcome::Fatal);
                    return Err(e);
                }
                slot.set_outcome(SlotOutcome::NoCandidate);
                return pseudo_region_error(&req);
            }
            Err(e) => {
                slot.put(sel);
                slot.set_outcome(SlotOutcome::Fatal);
                return Err(e);
            }
        };

        let store_id = target.peer.store_id;
        if let Err(e) = patch(&layer, &mut sel, target, &mut req) {
            slot.put(sel);
            slot.set_outcome(SlotOutcome::Fatal);
            return Err(e);
        }
        if let Err(e) = sel.backoff_on_retry(store_id, &req.backoffer).await {
            slot.put(sel);
            slot.set_outcome(SlotOutcome::Fatal);
            return Err(e);
        }

        // SC-16: a per-store cap on attempts in flight; held until the attempt completes.
        let _token = if layer.store_limit > 0 {
            match layer
                .svc
                .stores
                .acquire_store_token(store_id, layer.store_limit)
            {
                Ok(t) => t,
                Err(e) => {
                    slot.put(sel);
                    slot.set_outcome(SlotOutcome::Fatal);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let feed_slow_score = sel.read_type() == ReplicaReadType::PreferLeader
            && !req.context.request_source.starts_with("internal");
        let start = Instant::now();
        // What `oneshot` does: ready, call, and the service dropped once called.
        let res = match inner.ready().await {
            Ok(_) => {
                let fut = inner.call(req);
                drop(inner);
                fut.await
            }
            Err(e) => Err(e),
        };
        let took = start.elapsed();
        sel.record_attempted_time(took);
        if feed_slow_score {
            layer.svc.stores.record_rpc_duration(store_id, took);
        }
        if let Ok(resp) = &res
            && resp.region_error().is_none()
        {
            sel.on_send_success();
        }
        slot.put(sel);
        res
    }
}

/// Writes the attempt's target into the request (SL-3 step 7, SL-4 steps 2 .. 3, SL-10,
/// SL-11).
fn patch(
    layer: &ReplicaLayer,
    sel: &mut ReplicaSelector,
    target: AttemptTarget,
    req: &mut RpcRequest,
) -> Result<()> {
    let flags = sel.read_flags();
    req.context.replica_read = flags.replica_read;
    req.context.stale_read = flags.stale_read;
    req.context.busy_threshold_ms = flags.busy_threshold_ms;
    req.options.replica_read = flags.read_type;
    req.options.stale_read = flags.stale_read;
    req.context.cluster_id = layer.svc.locator.cluster_id();
    if !req.options.input_request_source.is_empty() {
        patch_request_source(sel, req);
    }
    req.set_region_context(target.ver.id, target.region.region_epoch, Some(target.peer))?;

    let target_store = layer.svc.stores.cached_store(target.peer.store_id);
    req.target.access_location = match (&layer.local_zone, target_store.as_ref()) {
        (Some(local), Some(s)) => match s.label_value(ZONE_LABEL) {
            Some(z) if !z.is_empty() && z == local => AccessLocation::LocalZone,
            Some(z) if !z.is_empty() => AccessLocation::CrossZone,
            _ => AccessLocation::Unknown,
        },
        _ => AccessLocation::Unknown,
    };
    req.target.peer = Some(target.peer);
    req.target.store_id = target.peer.store_id;
    // The addresses move into the request: the target is this attempt's alone.
    match target.proxy {
        Some((_, proxy_addr)) => {
            req.target.forwarded_host = Some(target.addr);
            req.target.addr = proxy_addr;
        }
        None => {
            req.target.forwarded_host = None;
            req.target.addr = target.addr;
        }
    }
    Ok(())
}

/// `patchRequestSource` (SL-10): TiKV rate-limits on the last `_` component, so the
/// caller's source stays last.
fn patch_request_source(sel: &mut ReplicaSelector, req: &mut RpcRequest) {
    let replica_type = sel.replica_type();
    let input = &req.options.input_request_source;
    let source = if req.context.is_retry_request {
        let read_type = sel.source_read_type.clone().unwrap_or_default();
        format!("retry_{read_type}_{replica_type}_{input}")
    } else {
        let read_type = if req.context.stale_read {
            format!("stale_{replica_type}")
        } else {
            replica_type.to_owned()
        };
        let s = format!("{read_type}_{input}");
        sel.source_read_type = Some(read_type);
        s
    };
    req.context.request_source = source;
}

/// The pseudo `EpochNotMatch` answered when no replica can serve the request (SL-9).
pub(crate) fn pseudo_region_error(req: &RpcRequest) -> Result<RpcResponse> {
    let err = tikv_proto::errorpb::Error {
        epoch_not_match: Some(tikv_proto::errorpb::EpochNotMatch::default()),
        ..Default::default()
    };
    let resp = req.cmd.region_error_response(err)?;
    Ok(RpcResponse::new(resp))
}
