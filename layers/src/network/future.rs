//! The response future of the `network` layer: records the attempt's traffic when it
//! comes back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;

use crate::exec_details::{ExecDetailsSink, TrafficDetails};
use crate::metrics::names::{self, labels};
use crate::request::AccessLocation;
use crate::{Error, RpcResponse};

/// What the service learned about the attempt before sending it.
#[derive(Debug)]
pub(super) struct AttemptTraffic {
    pub(super) req_size: u64,
    pub(super) cross_zone: bool,
    pub(super) location: AccessLocation,
    pub(super) tiflash: bool,
    pub(super) stale_read: bool,
    pub(super) replica_read: bool,
    pub(super) read_req: bool,
    pub(super) sink: Option<ExecDetailsSink>,
}

impl AttemptTraffic {
    /// client-go's `networkCollector.onReq` then `onResp` (with `resp_size` 0 when the
    /// attempt failed: nothing came back).
    fn record(&self, resp_size: Option<u64>) {
        let zone = if self.cross_zone {
            labels::CROSS_ZONE
        } else {
            labels::LOCAL
        };
        let mut t = TrafficDetails::default();
        if self.req_size > 0 {
            let (total, cross) = if self.tiflash {
                (
                    &mut t.bytes_sent_mpp_total,
                    &mut t.bytes_sent_mpp_cross_zone,
                )
            } else {
                (&mut t.bytes_sent_kv_total, &mut t.bytes_sent_kv_cross_zone)
            };
            *total += self.req_size;
            if self.cross_zone {
                *cross += self.req_size;
            }
            if self.stale_read {
                metrics::counter!(names::STALE_READ_BYTES_TOTAL,
                    labels::RESULT => zone, labels::DIRECTION => labels::OUT)
                .increment(self.req_size);
                metrics::counter!(names::STALE_READ_REQ_TOTAL, labels::TYPE => zone).increment(1);
            }
        }
        let resp_size = resp_size.unwrap_or(0);
        if resp_size > 0 {
            let (total, cross) = if self.tiflash {
                (
                    &mut t.bytes_received_mpp_total,
                    &mut t.bytes_received_mpp_cross_zone,
                )
            } else {
                (
                    &mut t.bytes_received_kv_total,
                    &mut t.bytes_received_kv_cross_zone,
                )
            };
            *total += resp_size;
            if self.cross_zone {
                *cross += resp_size;
            }
            if self.stale_read {
                metrics::counter!(names::STALE_READ_BYTES_TOTAL,
                    labels::RESULT => zone, labels::DIRECTION => labels::IN)
                .increment(resp_size);
            }
            if self.read_req {
                let result = match self.location {
                    AccessLocation::LocalZone => Some(labels::LOCAL),
                    AccessLocation::CrossZone => Some(labels::CROSS_ZONE),
                    _ => None,
                };
                if let Some(result) = result {
                    let kind = if self.replica_read {
                        labels::FOLLOWER
                    } else {
                        labels::LEADER
                    };
                    metrics::histogram!(names::READ_REQUEST_BYTES,
                        labels::TYPE => kind, labels::RESULT => result)
                    .record((resp_size + self.req_size) as f64);
                }
            }
        }
        if let Some(sink) = &self.sink
            && t != TrafficDetails::default()
        {
            sink.record_traffic(&t);
        }
    }
}

/// The future returned by [`NetworkCollector`](super::NetworkCollector): the inner
/// future, recording the attempt's traffic when it finishes. A dropped attempt records
/// nothing.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    traffic: AttemptTraffic,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, traffic: AttemptTraffic) -> ResponseFuture<F> {
        ResponseFuture { inner, traffic }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<RpcResponse, Error>>,
{
    type Output = Result<RpcResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let resp_size = res.as_ref().ok().map(|r| r.resp.encoded_len() as u64);
        this.traffic.record(resp_size);
        Poll::Ready(res)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traffic", &self.traffic)
            .finish_non_exhaustive()
    }
}
