//! Mutable access to the region error of any response, for in-place key decoding.

use tikv_proto::errorpb;

use crate::request::CommandResponse;

/// The `region_error` field of responses that have one; `None` for the rest (MPP, batch
/// coprocessor, streams, TiFlash admin, debug, broadcast, store safe ts, `Empty`).
///
/// The list matches the responses whose region error [`CommandResponse::region_error`]
/// reports.
pub(crate) fn region_error_mut(resp: &mut CommandResponse) -> Option<&mut Option<errorpb::Error>> {
    macro_rules! field {
        ($($v:ident),* $(,)?) => {
            match resp {
                $(CommandResponse::$v(r) => Some(&mut r.region_error),)*
                _ => None,
            }
        };
    }
    field!(
        Get,
        Scan,
        Prewrite,
        Commit,
        Cleanup,
        BatchGet,
        BatchRollback,
        ScanLock,
        ResolveLock,
        DeleteRange,
        PessimisticLock,
        PessimisticRollback,
        TxnHeartBeat,
        CheckTxnStatus,
        CheckSecondaryLocks,
        FlashbackToVersion,
        PrepareFlashbackToVersion,
        Flush,
        BufferBatchGet,
        RawGet,
        RawBatchGet,
        RawPut,
        RawBatchPut,
        RawDelete,
        RawBatchDelete,
        RawDeleteRange,
        RawScan,
        RawGetKeyTTL,
        RawCompareAndSwap,
        RawChecksum,
        UnsafeDestroyRange,
        LockWaitInfo,
        GetHealthFeedback,
        Cop,
        MvccGetByKey,
        MvccGetByStartTs,
        SplitRegion,
    )
}
