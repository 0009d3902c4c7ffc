//! How `shard` cuts multi-key commands into sub-requests and how many it runs at once.

use crate::request::CmdType;

/// client-go's `rawBatchPairCount`: keys per raw batch get / batch delete request.
#[doc(alias = "rawBatchPairCount")]
pub const RAW_BATCH_PAIR_COUNT: usize = 512;

/// client-go's `rawBatchPutSize`: bytes (keys + values) per raw batch put request.
#[doc(alias = "rawBatchPutSize")]
pub const RAW_BATCH_PUT_SIZE: usize = 16 * 1024;

/// client-go's `batchGetSize`: keys per transactional batch get request.
#[doc(alias = "batchGetSize")]
pub const BATCH_GET_SIZE: usize = 5120;

/// client-go's `TxnCommitBatchSize`: bytes per two-phase-commit request (keys and values
/// for prewrite, keys only for the other actions).
#[doc(alias = "TxnCommitBatchSize")]
pub const TXN_COMMIT_BATCH_SIZE: usize = 16 * 1024;

/// client-go's `splitBatchRegionLimit`: split keys per `SplitRegion` request.
#[doc(alias = "splitBatchRegionLimit")]
pub const SPLIT_BATCH_REGION_LIMIT: usize = 2048;

/// Default bound on the sub-requests of one call in flight at once (client-go's
/// `CommitterConcurrency` default; its raw batch calls are unbounded).
pub const DEFAULT_SHARD_CONCURRENCY: usize = 128;

/// How a key counts toward a batch limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Weigh {
    /// Every key counts 1.
    Count,
    /// A key counts its length in bytes.
    KeyBytes,
    /// A key counts its length plus its value's length (mutations, raw pairs).
    KeyValueBytes,
}

/// A per-sub-request limit for one command type.
///
/// A batch is closed once its accumulated weight has reached `limit`, so the key that
/// crosses the limit stays in the batch it ends (client-go's `appendBatchKeysBySize`,
/// `appendBatchMutationsBySize` and `kvrpc.AppendBatches`). A batch therefore holds at
/// least one key whatever the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchLimit {
    /// How keys are weighed.
    pub weigh: Weigh,
    /// The weight at which a batch is closed.
    pub limit: usize,
}

impl BatchLimit {
    /// A limit of `limit` keys per batch.
    pub const fn count(limit: usize) -> BatchLimit {
        BatchLimit {
            weigh: Weigh::Count,
            limit,
        }
    }

    /// A limit of `limit` bytes per batch, weighed as `weigh`.
    pub const fn bytes(weigh: Weigh, limit: usize) -> BatchLimit {
        BatchLimit { weigh, limit }
    }
}

/// The decisions `shard` leaves to its owner: batch sizes per command type and the
/// concurrency bound.
///
/// ```
/// use tikv_layers::CmdType;
/// use tikv_layers::shard::{BatchLimit, ShardPolicy};
///
/// /// One key per request, one request at a time: handy to debug a server.
/// #[derive(Debug, Clone)]
/// struct OneByOne;
///
/// impl ShardPolicy for OneByOne {
///     fn batch_limit(&self, _cmd: CmdType) -> Option<BatchLimit> {
///         Some(BatchLimit::count(1))
///     }
///     fn max_concurrency(&self, _cmd: CmdType) -> usize {
///         1
///     }
/// }
/// ```
pub trait ShardPolicy: Send + Sync + 'static {
    /// The batch limit for sub-requests of `cmd`; `None` sends one sub-request per region.
    fn batch_limit(&self, cmd: CmdType) -> Option<BatchLimit>;

    /// How many sub-requests of one call of `cmd` may be in flight at once (0 counts as
    /// 1).
    fn max_concurrency(&self, cmd: CmdType) -> usize;
}

/// client-go's batch sizes, settable one by one.
///
/// | commands | limit |
/// |---|---|
/// | `RawBatchGet`, `RawBatchDelete` | [`RAW_BATCH_PAIR_COUNT`] keys, plus one: client-go's `AppendKeyBatches` closes a batch only once it holds *more* than the limit, so batches carry up to 513 keys |
/// | `RawBatchPut` | [`RAW_BATCH_PUT_SIZE`] bytes of keys and values |
/// | `BatchGet`, `BufferBatchGet` | [`BATCH_GET_SIZE`] keys |
/// | `Prewrite` | [`TXN_COMMIT_BATCH_SIZE`] bytes of keys and values |
/// | `Commit`, `BatchRollback`, `PessimisticLock`, `PessimisticRollback`, `Flush` | [`TXN_COMMIT_BATCH_SIZE`] bytes of keys |
/// | `SplitRegion` | [`SPLIT_BATCH_REGION_LIMIT`] keys, plus one (same rule as raw batches) |
/// | everything else | one sub-request per region |
///
/// Concurrency: [`DEFAULT_SHARD_CONCURRENCY`] for every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultShardPolicy {
    raw_batch_pair_count: usize,
    raw_batch_put_size: usize,
    batch_get_size: usize,
    txn_commit_batch_size: usize,
    split_batch_region_limit: usize,
    max_concurrency: usize,
}

impl Default for DefaultShardPolicy {
    fn default() -> Self {
        DefaultShardPolicy {
            raw_batch_pair_count: RAW_BATCH_PAIR_COUNT,
            raw_batch_put_size: RAW_BATCH_PUT_SIZE,
            batch_get_size: BATCH_GET_SIZE,
            txn_commit_batch_size: TXN_COMMIT_BATCH_SIZE,
            split_batch_region_limit: SPLIT_BATCH_REGION_LIMIT,
            max_concurrency: DEFAULT_SHARD_CONCURRENCY,
        }
    }
}

impl DefaultShardPolicy {
    /// Sets the raw batch get / delete key count (`rawBatchPairCount`).
    #[must_use]
    pub fn with_raw_batch_pair_count(mut self, n: usize) -> Self {
        self.raw_batch_pair_count = n;
        self
    }

    /// Sets the raw batch put size in bytes (`rawBatchPutSize`).
    #[must_use]
    pub fn with_raw_batch_put_size(mut self, bytes: usize) -> Self {
        self.raw_batch_put_size = bytes;
        self
    }

    /// Sets the transactional batch get key count (`batchGetSize`).
    #[must_use]
    pub fn with_batch_get_size(mut self, n: usize) -> Self {
        self.batch_get_size = n;
        self
    }

    /// Sets the two-phase-commit batch size in bytes (`TxnCommitBatchSize`).
    #[must_use]
    pub fn with_txn_commit_batch_size(mut self, bytes: usize) -> Self {
        self.txn_commit_batch_size = bytes;
        self
    }

    /// Sets the split keys per `SplitRegion` request (`splitBatchRegionLimit`).
    #[must_use]
    pub fn with_split_batch_region_limit(mut self, n: usize) -> Self {
        self.split_batch_region_limit = n;
        self
    }

    /// Sets how many sub-requests of one call may be in flight at once.
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }
}

impl ShardPolicy for DefaultShardPolicy {
    fn batch_limit(&self, cmd: CmdType) -> Option<BatchLimit> {
        use CmdType as C;
        match cmd {
            C::RawBatchGet | C::RawBatchDelete => Some(BatchLimit::count(
                self.raw_batch_pair_count.saturating_add(1),
            )),
            C::SplitRegion => Some(BatchLimit::count(
                self.split_batch_region_limit.saturating_add(1),
            )),
            C::RawBatchPut => Some(BatchLimit::bytes(
                Weigh::KeyValueBytes,
                self.raw_batch_put_size,
            )),
            C::BatchGet | C::BufferBatchGet => Some(BatchLimit::count(self.batch_get_size)),
            C::Prewrite => Some(BatchLimit::bytes(
                Weigh::KeyValueBytes,
                self.txn_commit_batch_size,
            )),
            C::Commit
            | C::BatchRollback
            | C::PessimisticLock
            | C::PessimisticRollback
            | C::Flush => Some(BatchLimit::bytes(
                Weigh::KeyBytes,
                self.txn_commit_batch_size,
            )),
            _ => None,
        }
    }

    fn max_concurrency(&self, _cmd: CmdType) -> usize {
        self.max_concurrency
    }
}

#[cfg(test)]
fn _obj_safe(_: &dyn ShardPolicy) {}
