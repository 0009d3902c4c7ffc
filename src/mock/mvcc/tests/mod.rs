//! Tests of the mock MVCC engine: ports of mocktikv's tests (T-MOCK-*), the transaction
//! invariants of spec §6.2 D, and a snapshot-isolation property test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod invariants;
mod mocktikv;
mod property;
mod waiting;

use tikv_layers::{Command, CommandResponse};
use tikv_proto::kvrpcpb::{self, Op};

use super::{MvccEngine, RegionScope};
use crate::mock::Clock;

/// A test engine over the whole key space with typed request helpers.
pub(super) struct H {
    pub(super) e: MvccEngine,
    pub(super) scope: RegionScope,
}

macro_rules! typed {
    ($name:ident, $variant:ident, $req:ty, $resp:ty) => {
        pub(super) async fn $name(&self, req: $req) -> $resp {
            match self.e.execute(Command::$variant(req), &self.scope).await {
                Ok(CommandResponse::$variant(r)) => r,
                other => panic!("unexpected response {other:?}"),
            }
        }
    };
}

pub(super) fn put(key: &str, value: &str) -> kvrpcpb::Mutation {
    kvrpcpb::Mutation {
        op: Op::Put as i32,
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub(super) fn mutation(op: Op, key: &str) -> kvrpcpb::Mutation {
    kvrpcpb::Mutation {
        op: op as i32,
        key: key.into(),
        ..Default::default()
    }
}

pub(super) fn puts(kv: &[(&str, &str)]) -> Vec<kvrpcpb::Mutation> {
    kv.iter().map(|(k, v)| put(k, v)).collect()
}

pub(super) fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
    ks.iter().map(|k| k.as_bytes().to_vec()).collect()
}

pub(super) fn si() -> kvrpcpb::Context {
    kvrpcpb::Context::default()
}

impl H {
    pub(super) fn new() -> H {
        H {
            e: MvccEngine::new(Clock::with_base_ms(1_000_000)),
            scope: RegionScope::everything(),
        }
    }

    typed!(get_req, Get, kvrpcpb::GetRequest, kvrpcpb::GetResponse);
    typed!(scan_req, Scan, kvrpcpb::ScanRequest, kvrpcpb::ScanResponse);
    typed!(
        batch_get_req,
        BatchGet,
        kvrpcpb::BatchGetRequest,
        kvrpcpb::BatchGetResponse
    );
    typed!(
        prewrite_req,
        Prewrite,
        kvrpcpb::PrewriteRequest,
        kvrpcpb::PrewriteResponse
    );
    typed!(
        commit_req,
        Commit,
        kvrpcpb::CommitRequest,
        kvrpcpb::CommitResponse
    );
    typed!(
        cleanup_req,
        Cleanup,
        kvrpcpb::CleanupRequest,
        kvrpcpb::CleanupResponse
    );
    typed!(
        rollback_req,
        BatchRollback,
        kvrpcpb::BatchRollbackRequest,
        kvrpcpb::BatchRollbackResponse
    );
    typed!(
        scan_lock_req,
        ScanLock,
        kvrpcpb::ScanLockRequest,
        kvrpcpb::ScanLockResponse
    );
    typed!(
        resolve_req,
        ResolveLock,
        kvrpcpb::ResolveLockRequest,
        kvrpcpb::ResolveLockResponse
    );
    typed!(
        delete_range_req,
        DeleteRange,
        kvrpcpb::DeleteRangeRequest,
        kvrpcpb::DeleteRangeResponse
    );
    typed!(
        lock_req,
        PessimisticLock,
        kvrpcpb::PessimisticLockRequest,
        kvrpcpb::PessimisticLockResponse
    );
    typed!(
        pessimistic_rollback_req,
        PessimisticRollback,
        kvrpcpb::PessimisticRollbackRequest,
        kvrpcpb::PessimisticRollbackResponse
    );
    typed!(
        heartbeat_req,
        TxnHeartBeat,
        kvrpcpb::TxnHeartBeatRequest,
        kvrpcpb::TxnHeartBeatResponse
    );
    typed!(
        check_txn_status_req,
        CheckTxnStatus,
        kvrpcpb::CheckTxnStatusRequest,
        kvrpcpb::CheckTxnStatusResponse
    );
    typed!(
        check_secondary_req,
        CheckSecondaryLocks,
        kvrpcpb::CheckSecondaryLocksRequest,
        kvrpcpb::CheckSecondaryLocksResponse
    );
    typed!(
        flush_req,
        Flush,
        kvrpcpb::FlushRequest,
        kvrpcpb::FlushResponse
    );
    typed!(
        buffer_get_req,
        BufferBatchGet,
        kvrpcpb::BufferBatchGetRequest,
        kvrpcpb::BufferBatchGetResponse
    );
    typed!(
        mvcc_by_key_req,
        MvccGetByKey,
        kvrpcpb::MvccGetByKeyRequest,
        kvrpcpb::MvccGetByKeyResponse
    );
    typed!(
        mvcc_by_start_ts_req,
        MvccGetByStartTs,
        kvrpcpb::MvccGetByStartTsRequest,
        kvrpcpb::MvccGetByStartTsResponse
    );
    typed!(
        destroy_req,
        UnsafeDestroyRange,
        kvrpcpb::UnsafeDestroyRangeRequest,
        kvrpcpb::UnsafeDestroyRangeResponse
    );
    typed!(
        prepare_flashback_req,
        PrepareFlashbackToVersion,
        kvrpcpb::PrepareFlashbackToVersionRequest,
        kvrpcpb::PrepareFlashbackToVersionResponse
    );
    typed!(
        flashback_req,
        FlashbackToVersion,
        kvrpcpb::FlashbackToVersionRequest,
        kvrpcpb::FlashbackToVersionResponse
    );

    /// SI get: Ok(value or None) or Err(key error).
    pub(super) async fn get_ctx(
        &self,
        key: &str,
        ts: u64,
        ctx: kvrpcpb::Context,
    ) -> Result<Option<Vec<u8>>, kvrpcpb::KeyError> {
        let r = self
            .get_req(kvrpcpb::GetRequest {
                context: Some(ctx),
                key: key.into(),
                version: ts,
                need_commit_ts: false,
            })
            .await;
        match r.error {
            Some(e) => Err(e),
            None if r.not_found => Ok(None),
            None => Ok(Some(r.value)),
        }
    }

    pub(super) async fn get(
        &self,
        key: &str,
        ts: u64,
    ) -> Result<Option<Vec<u8>>, kvrpcpb::KeyError> {
        self.get_ctx(key, ts, si()).await
    }

    pub(super) async fn must_get_none(&self, key: &str, ts: u64) {
        assert_eq!(self.get(key, ts).await.unwrap(), None, "get {key}@{ts}");
    }

    pub(super) async fn must_get_ok(&self, key: &str, ts: u64, want: &str) {
        assert_eq!(
            self.get(key, ts).await.unwrap(),
            Some(want.as_bytes().to_vec()),
            "get {key}@{ts}"
        );
    }

    pub(super) async fn must_get_err(&self, key: &str, ts: u64) {
        assert!(
            self.get(key, ts).await.is_err(),
            "get {key}@{ts} should fail"
        );
    }

    /// Prewrite like mocktikv's `mustPrewriteWithTTL` (min commit ts = start + 1).
    pub(super) async fn prewrite(
        &self,
        muts: Vec<kvrpcpb::Mutation>,
        primary: &str,
        start: u64,
        ttl: u64,
    ) -> Vec<kvrpcpb::KeyError> {
        self.prewrite_req(kvrpcpb::PrewriteRequest {
            mutations: muts,
            primary_lock: primary.into(),
            start_version: start,
            lock_ttl: ttl,
            min_commit_ts: start + 1,
            ..Default::default()
        })
        .await
        .errors
    }

    pub(super) async fn must_prewrite_ok(
        &self,
        muts: Vec<kvrpcpb::Mutation>,
        primary: &str,
        start: u64,
    ) {
        let errs = self.prewrite(muts, primary, start, 0).await;
        assert!(errs.is_empty(), "prewrite @{start}: {errs:?}");
    }

    pub(super) async fn commit(
        &self,
        ks: &[&str],
        start: u64,
        commit: u64,
    ) -> Option<kvrpcpb::KeyError> {
        self.commit_req(kvrpcpb::CommitRequest {
            start_version: start,
            keys: keys(ks),
            commit_version: commit,
            ..Default::default()
        })
        .await
        .error
    }

    pub(super) async fn must_commit_ok(&self, ks: &[&str], start: u64, commit: u64) {
        let e = self.commit(ks, start, commit).await;
        assert!(e.is_none(), "commit @{start},{commit}: {e:?}");
    }

    pub(super) async fn rollback(&self, ks: &[&str], start: u64) -> Option<kvrpcpb::KeyError> {
        self.rollback_req(kvrpcpb::BatchRollbackRequest {
            start_version: start,
            keys: keys(ks),
            ..Default::default()
        })
        .await
        .error
    }

    pub(super) async fn must_put_ok(&self, key: &str, value: &str, start: u64, commit: u64) {
        self.must_prewrite_ok(vec![put(key, value)], key, start)
            .await;
        self.must_commit_ok(&[key], start, commit).await;
    }

    pub(super) async fn must_delete_ok(&self, key: &str, start: u64, commit: u64) {
        self.must_prewrite_ok(vec![mutation(Op::Del, key)], key, start)
            .await;
        self.must_commit_ok(&[key], start, commit).await;
    }

    pub(super) async fn scan(
        &self,
        start: &str,
        end: &str,
        limit: u32,
        ts: u64,
        reverse: bool,
        ctx: kvrpcpb::Context,
    ) -> Vec<kvrpcpb::KvPair> {
        self.scan_req(kvrpcpb::ScanRequest {
            context: Some(ctx),
            start_key: start.into(),
            end_key: end.into(),
            limit,
            version: ts,
            reverse,
            ..Default::default()
        })
        .await
        .pairs
    }

    pub(super) async fn scan_locks(
        &self,
        start: &str,
        end: &str,
        max_ts: u64,
    ) -> Vec<kvrpcpb::LockInfo> {
        self.scan_lock_req(kvrpcpb::ScanLockRequest {
            max_version: max_ts,
            start_key: start.into(),
            end_key: end.into(),
            ..Default::default()
        })
        .await
        .locks
    }

    pub(super) async fn check_txn_status(
        &self,
        primary: &str,
        lock_ts: u64,
        caller: u64,
        current: u64,
        rollback_if_not_exist: bool,
    ) -> kvrpcpb::CheckTxnStatusResponse {
        self.check_txn_status_req(kvrpcpb::CheckTxnStatusRequest {
            primary_key: primary.into(),
            lock_ts,
            caller_start_ts: caller,
            current_ts: current,
            rollback_if_not_exist,
            ..Default::default()
        })
        .await
    }

    pub(super) async fn cleanup(
        &self,
        key: &str,
        start: u64,
        current: u64,
    ) -> kvrpcpb::CleanupResponse {
        self.cleanup_req(kvrpcpb::CleanupRequest {
            key: key.into(),
            start_version: start,
            current_ts: current,
            ..Default::default()
        })
        .await
    }

    pub(super) async fn heartbeat(
        &self,
        key: &str,
        start: u64,
        ttl: u64,
    ) -> kvrpcpb::TxnHeartBeatResponse {
        self.heartbeat_req(kvrpcpb::TxnHeartBeatRequest {
            primary_lock: key.into(),
            start_version: start,
            advise_lock_ttl: ttl,
            ..Default::default()
        })
        .await
    }

    /// A pessimistic lock request on `ks` (normal mode, no wait unless `wait` is set).
    pub(super) fn lock_request(
        &self,
        ks: &[&str],
        primary: &str,
        start: u64,
        for_update: u64,
    ) -> kvrpcpb::PessimisticLockRequest {
        kvrpcpb::PessimisticLockRequest {
            mutations: ks
                .iter()
                .map(|k| mutation(Op::PessimisticLock, k))
                .collect(),
            primary_lock: primary.into(),
            start_version: start,
            lock_ttl: 3000,
            for_update_ts: for_update,
            wait_timeout: -1,
            ..Default::default()
        }
    }
}

/// Asserts a key error is a write conflict with the given reason.
pub(super) fn assert_conflict(e: &kvrpcpb::KeyError, reason: kvrpcpb::write_conflict::Reason) {
    let c = e
        .conflict
        .as_ref()
        .unwrap_or_else(|| panic!("not a conflict: {e:?}"));
    assert_eq!(c.reason, reason as i32, "{e:?}");
}

/// The engine is shareable and its futures can be spawned (the gRPC face spawns them).
#[test]
fn engine_and_execute_future_are_send() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let h = H::new();
    assert_send_sync(&h.e);
    let scope = RegionScope::everything();
    assert_send(h.e.execute(
        Command::PessimisticLock(kvrpcpb::PessimisticLockRequest::default()),
        &scope,
    ));
}
