//! TSO batching: many callers, one `Tso` stream request per batch (TSO-1 .. TSO-6).
//!
//! Callers push a one-shot reply slot into the dispatcher's queue (capacity
//! `2 × max_tso_batch`). The dispatcher takes everything queued (up to `max_tso_batch`),
//! sends one `TsoRequest{count = n}` on the stream to the current leader, and hands the
//! i-th caller `(physical, logical − n + 1 + i)` from the answer, whose `logical` is the
//! largest of the block. One batch is in flight at a time (client-go's default RPC
//! concurrency of 1), so callers arriving during an RPC form the next batch.
//!
//! Every batch has a deadline (the client timeout). A broken stream, a header error, a
//! count mismatch, a reply that is no timestamp or an expired deadline fails the batch's
//! callers with a typed error, drops the stream and refreshes members; the next batch
//! reconnects. When the client closes, queued callers get [`ErrorDetail::ShuttingDown`].
//! No caller waits forever.
//!
//! With forwarding on and the leader failing its health probes, the stream is opened
//! through a follower carrying the forwarding header (PD-5); it is reopened on the leader
//! once the leader passes its probes again.

use std::pin::Pin;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tikv_layers::{Error, ErrorDetail, Result};
use tikv_proto::pdpb;
use tikv_proto::pdpb::pd_client::PdClient as PdGrpc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{
    Inner, check_header, cluster_id_of, request_header, schedule_check, serving_target,
    status_error, update_members,
};
use crate::oracle::{PHYSICAL_SHIFT_BITS, extract_logical};

/// One waiting caller.
pub(super) struct TsoCall {
    reply: oneshot::Sender<Result<u64>>,
}

/// Enqueues a request and waits for its timestamp.
pub(super) async fn get_ts(tx: &mpsc::Sender<TsoCall>) -> Result<u64> {
    let (reply, rx) = oneshot::channel();
    tx.send(TsoCall { reply })
        .await
        .map_err(|_| Error::new(ErrorDetail::ShuttingDown))?;
    rx.await
        .unwrap_or_else(|_| Err(Error::new(ErrorDetail::ShuttingDown)))
}

/// The request half of a TSO stream, as a `Stream` for tonic.
struct RequestStream(mpsc::Receiver<pdpb::TsoRequest>);

impl futures_core::Stream for RequestStream {
    type Item = pdpb::TsoRequest;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

struct TsoStream {
    tx: mpsc::Sender<pdpb::TsoRequest>,
    rx: tonic::Streaming<pdpb::TsoResponse>,
    leader_version: u64,
    url: String,
    /// Opened through a follower that forwards to the leader (PD-5).
    forwarded: bool,
}

async fn connect(inner: &Inner) -> Result<TsoStream> {
    let leader_version = *inner.leader_version.borrow();
    // The leader, or a forwarding follower while the leader fails its probes (PD-5).
    let target = serving_target(inner)?;
    let (url, forwarded) = (target.url, target.via_follower);
    let (tx, rx) = mpsc::channel(64);
    let mut client = PdGrpc::new(target.channel);
    let resp = client
        .tso(RequestStream(rx))
        .await
        .map_err(|s| status_error(s, &url))?;
    Ok(TsoStream {
        tx,
        rx: resp.into_inner(),
        leader_version,
        url,
        forwarded,
    })
}

fn fail_all(batch: Vec<TsoCall>, err: &Error) {
    for call in batch {
        let _ = call.reply.send(Err(Error::new(err.detail().clone())));
    }
}

/// The dispatcher loop. Holds the client only weakly between batches, so dropping the last
/// [`super::PdClient`] ends it.
pub(super) async fn dispatcher(
    weak: Weak<Inner>,
    cancel: CancellationToken,
    mut rx: mpsc::Receiver<TsoCall>,
) {
    let mut stream: Option<TsoStream> = None;
    let mut last_ts: u64 = 0;
    loop {
        // Both branches are cancel safe (`recv` loses no message).
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            c = rx.recv() => match c { Some(c) => c, None => break },
        };
        let Some(inner) = weak.upgrade() else {
            fail_all(vec![first], &Error::new(ErrorDetail::ShuttingDown));
            break;
        };
        let max = inner.opts.max_tso_batch.max(1);
        let mut batch = Vec::with_capacity(max.min(1024));
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + inner.opts.timeout;
        let outcome = tokio::select! {
            _ = cancel.cancelled() => Err(Error::new(ErrorDetail::ShuttingDown)),
            r = process_batch(&inner, &mut stream, &mut last_ts, batch.len(), deadline) => r,
        };
        match outcome {
            Ok(first_ts) => {
                for (i, call) in batch.into_iter().enumerate() {
                    let _ = call.reply.send(Ok(first_ts + i as u64));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = batch.len(), "tso batch failed");
                fail_all(batch, &e);
                stream = None;
                if matches!(e.detail(), ErrorDetail::ShuttingDown) {
                    break;
                }
                // A broken stream usually means a leader change: refresh before the next
                // batch (bounded by the member-refresh timeouts).
                if let Err(e) = update_members(&inner).await {
                    tracing::warn!(error = %e, "update PD members after tso failure");
                    schedule_check(&inner);
                }
            }
        }
    }
    // Closing: everyone still queued learns it at once.
    rx.close();
    while let Ok(c) = rx.try_recv() {
        let _ = c.reply.send(Err(Error::new(ErrorDetail::ShuttingDown)));
    }
}

/// Sends one request for `count` timestamps and returns the first of the block.
async fn process_batch(
    inner: &Inner,
    stream: &mut Option<TsoStream>,
    last_ts: &mut u64,
    count: usize,
    deadline: Instant,
) -> Result<u64> {
    // (Re)connect when there is no stream, the leader moved, or the leader's probes changed
    // which way the stream should go: through a follower while the leader fails them (with
    // forwarding on), straight to the leader once it passes them again.
    let current_version = *inner.leader_version.borrow();
    let leader = inner.leader_and_followers().0;
    let leader_reachable = inner.availability().is_reachable(&leader);
    if stream.as_ref().is_some_and(|s| {
        s.leader_version != current_version
            || (s.forwarded && leader_reachable)
            || (!s.forwarded && inner.opts.enable_forwarding && !leader_reachable)
    }) {
        *stream = None;
    }
    while stream.is_none() {
        match tokio::time::timeout_at(deadline, connect(inner)).await {
            Ok(Ok(s)) => *stream = Some(s),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "create tso stream failed");
                schedule_check(inner);
                if Instant::now() + inner.opts.tso_retry_interval >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(inner.opts.tso_retry_interval).await;
            }
            Err(_) => {
                return Err(Error::new(ErrorDetail::PdServerTimeout(
                    "create tso stream timed out".into(),
                )));
            }
        }
    }
    let Some(s) = stream.as_mut() else {
        return Err(Error::new(ErrorDetail::Internal("no tso stream".into())));
    };
    let count32 = u32::try_from(count).unwrap_or(u32::MAX);
    let req = pdpb::TsoRequest {
        header: Some(request_header(inner)),
        count: count32,
        dc_location: String::new(),
    };
    let url = s.url.clone();
    inner.tso_rpcs.fetch_add(1, Ordering::Relaxed);
    if s.tx.send(req).await.is_err() {
        return Err(Error::new(ErrorDetail::Transport {
            addr: url,
            message: "tso stream closed".into(),
        }));
    }
    let resp = match tokio::time::timeout_at(deadline, s.rx.message()).await {
        Err(_) => {
            return Err(Error::new(ErrorDetail::PdServerTimeout(format!(
                "{url}: tso request timed out"
            ))));
        }
        Ok(Err(status)) => return Err(status_error(status, &url)),
        Ok(Ok(None)) => {
            return Err(Error::new(ErrorDetail::Transport {
                addr: url,
                message: "tso stream closed by PD".into(),
            }));
        }
        Ok(Ok(Some(resp))) => resp,
    };
    check_header(resp.header.as_ref(), cluster_id_of(inner))?;
    if resp.count != count32 {
        return Err(Error::new(ErrorDetail::Malformed(format!(
            "tso length mismatch: asked {count32}, got {}",
            resp.count
        ))));
    }
    let Some(ts) = resp.timestamp.as_ref() else {
        return Err(Error::new(ErrorDetail::Malformed(
            "tso response without timestamp".into(),
        )));
    };
    // TSO-2: `logical` is the largest of the block; `suffix_bits` is ignored, as the PD
    // client ignores it. The numbers are the server's, so they are composed with checked
    // arithmetic: a reply that cannot be a block of timestamps is a typed error, never an
    // overflow (and never a negative ts that would poison the monotonicity guard).
    let span = i64::from(count32) - 1;
    let block = ts
        .physical
        .checked_mul(1 << PHYSICAL_SHIFT_BITS)
        .and_then(|p| p.checked_add(ts.logical))
        .and_then(|largest| Some((largest.checked_sub(span)?, largest)))
        .filter(|&(first, _)| first >= 0);
    let Some((first, largest)) = block.map(|(first, largest)| (first as u64, largest as u64))
    else {
        return Err(Error::new(ErrorDetail::Malformed(format!(
            "tso reply ({}, {}) for count {count32} is not a timestamp",
            ts.physical, ts.logical
        ))));
    };
    let first_logical = extract_logical(largest) - span;
    if first_logical < 0 && ts.logical < span {
        return Err(Error::new(ErrorDetail::Malformed(format!(
            "tso logical {} too small for count {count32}",
            ts.logical
        ))));
    }
    if first <= *last_ts {
        tracing::error!(first, last = *last_ts, "timestamp fallback");
        return Err(Error::new(ErrorDetail::Internal(format!(
            "timestamp fallback: {first} <= {}",
            *last_ts
        ))));
    }
    *last_ts = largest;
    Ok(first)
}
