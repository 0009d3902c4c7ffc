//! The `network` service: measures the attempt before handing it on.

use std::task::{Context, Poll};

use tikv_proto::kvrpcpb;
use tower_service::Service;

use super::future::{AttemptTraffic, ResponseFuture};
use crate::exec_details::ExecDetailsSink;
use crate::request::{AccessLocation, CmdType, EndpointType, ReplicaReadType, RpcRequest};
use crate::{Error, RpcResponse};

/// What the caller asked for the whole call, whatever later attempts became (client-go's
/// `reqInvariants`).
///
/// The `retry` layer records one in the request's call state ([`RpcRequest::read_invariants`])
/// before its first attempt; the
/// attempt-level `network` layer reads it, because the replica selector may turn a stale
/// read into a leader read on retry while client-go still counts every attempt of a stale
/// read call as stale-read traffic. Without it the attempt's own flags are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadInvariants {
    /// The call is a stale read.
    pub stale_read: bool,
    /// The call's replica read type.
    pub replica_read: ReplicaReadType,
}

impl ReadInvariants {
    /// The invariants of a request as the caller built it.
    pub fn of(req: &RpcRequest) -> ReadInvariants {
        ReadInvariants {
            stale_read: req.options.stale_read || req.context.stale_read,
            replica_read: req.options.replica_read,
        }
    }
}

/// The encoded size of the attempt's message with the envelope's context in it, as
/// [`RpcRequest::attach_context`] would send it (client-go's `Request.GetSize` after
/// `AttachContext`), computed without copying the message.
pub fn request_size(req: &RpcRequest) -> usize {
    let base = req.cmd.encoded_len();
    if !req.cmd.has_context() {
        return base;
    }
    // Every kvrpcpb request carries its context as field 1, a length-delimited message
    // field; the key takes one byte for any field number below 16.
    let old = req
        .cmd
        .context()
        .map_or(0, |c| prost::encoding::message::encoded_len(1, c));
    let new = if req.context.request_origin() == kvrpcpb::RequestOrigin::Unknown
        && req.options.default_origin != kvrpcpb::RequestOrigin::Unknown
    {
        // `attach_context` stamps the default origin first.
        let mut ctx = req.context.clone();
        ctx.set_request_origin(req.options.default_origin);
        prost::encoding::message::encoded_len(1, &ctx)
    } else {
        prost::encoding::message::encoded_len(1, &req.context)
    };
    (base + new).saturating_sub(old)
}

/// client-go's `isReadReq`: the commands whose traffic `READ_REQUEST_BYTES` observes.
fn is_read_req(cmd: CmdType) -> bool {
    matches!(
        cmd,
        CmdType::Get
            | CmdType::BatchGet
            | CmdType::Scan
            | CmdType::Cop
            | CmdType::BatchCop
            | CmdType::CopStream
    )
}

/// The `network` service; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct NetworkCollector<S> {
    pub(super) inner: S,
}

impl<S> NetworkCollector<S> {
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

impl<S> Service<RpcRequest> for NetworkCollector<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let stale_read = match req.call.invariants {
            Some(inv) => inv.stale_read,
            None => req.options.stale_read || req.context.stale_read,
        };
        let traffic = AttemptTraffic {
            req_size: request_size(&req) as u64,
            cross_zone: req.target.access_location == AccessLocation::CrossZone,
            location: req.target.access_location,
            tiflash: req.options.endpoint == EndpointType::TiFlash,
            stale_read,
            replica_read: req.context.replica_read,
            read_req: is_read_req(req.cmd_type()),
            sink: req.extensions.get::<ExecDetailsSink>().cloned(),
        };
        ResponseFuture::new(self.inner.call(req), traffic)
    }
}
