//! The read-ts check of the send loop's prelude (SL-2 step 3; client-go's
//! `RegionRequestSender.validateReadTS` through `oracle.ReadTSValidator`).

use futures_core::future::BoxFuture;

use crate::Result;
use crate::request::{CmdType, EndpointType, RpcRequest};

/// Vouches for the timestamp a read is about to use (client-go's `oracle.ReadTSValidator`).
///
/// The send loop asks it once per call, before the first attempt, for the reads whose
/// start ts TiKV uses to advance its `max_ts` (see [`read_ts_to_validate`]); an error is
/// returned to the caller as is and nothing is sent. The client's oracle implements it
/// (`PdOracle` rejects a ts ahead of the newest one PD handed out and a stale read at
/// `u64::MAX`); without a validator every ts passes (client-go's `NoopReadTSValidator`,
/// which raw KV uses).
pub trait ReadTsValidator: Send + Sync + 'static {
    /// Checks `read_ts` for a read that is (`is_stale_read`) or is not a stale read.
    ///
    /// # Errors
    ///
    /// Whatever the validator reports (the oracle's typed `FutureTsRead` /
    /// `LatestStaleRead` errors); the send loop returns it without an RPC.
    fn validate_read_ts(&self, read_ts: u64, is_stale_read: bool)
    -> BoxFuture<'static, Result<()>>;
}

/// The ts the send loop validates for `req`, or `None` when the request needs no check:
/// TiDB targets and every command but the snapshot reads `Get`, `Scan`, `BatchGet`,
/// `BufferBatchGet`, `Cop`, `CopStream`, `BatchCop` and `ScanLock` (client-go leaves the
/// implicit reads of transactional writes unchecked as well).
pub fn read_ts_to_validate(req: &RpcRequest) -> Option<u64> {
    if req.options.endpoint == EndpointType::TiDB {
        return None;
    }
    matches!(
        req.cmd_type(),
        CmdType::Get
            | CmdType::Scan
            | CmdType::BatchGet
            | CmdType::BufferBatchGet
            | CmdType::Cop
            | CmdType::CopStream
            | CmdType::BatchCop
            | CmdType::ScanLock
    )
    .then(|| req.cmd.start_ts())
}
