//! The request path shared by both TiKV faces (spec §2.1 - §2.4, §2.21, §2.22, §2.26) and the
//! in-process face (MC-2.30).
//!
//! [`Mock`] owns the cluster model, the PD, the raw store, the MVCC engine, the injection rules
//! and the request log. [`Mock::dispatch`] runs one request in mocktikv's order (`rpc.go`
//! `RPCClient.SendRequest`, `session.go` `CheckRequestContext`): deadline, address resolution,
//! early rules, region checks, size check, late rules, scheduled delays, key-range checks,
//! execution, rewrite rules. [`MockTikv`] wraps it as the `tower::Service` that ends the
//! client's pipeline; the gRPC face (`grpc.rs`) calls the same `dispatch`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tikv_layers::{CmdType, Command, CommandResponse, Error, ErrorDetail, RpcRequest, RpcResponse};
use tikv_proto::{errorpb, kvrpcpb, metapb};
use tokio::time::Instant;

use super::Clock;
use super::cluster::{AddrError, Cluster, KeyViolation, decode_key, encode_key, region_contains};
use super::inject::{
    Action, LogEntry, MatchInput, Outcome, Phase, RequestLog, Rule, RuleHandle, TikvRules,
    TransportKind, eval_tikv,
};
use super::mvcc::{MvccEngine, RegionScope};
use super::pd::MockPd;
use super::raw::{Range, RawStore};

/// TiKV's raft entry limit mocktikv checks request sizes against (`rpc.go` `requestMaxSize`).
pub const REQUEST_MAX_SIZE: usize = 8 * 1024 * 1024;

/// Construction options of a mock cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MockOptions {
    /// The cluster id PD reports (MC-1.1.2); 1 like mocktikv.
    pub cluster_id: u64,
    /// Serve replica and stale reads on followers (MC-2.2.3); off like mocktikv.
    pub follower_read: bool,
    /// Capacity of the request log (MC-3.8.5).
    pub log_capacity: usize,
    /// Answer `MismatchPeerId` when `context.peer.id` is not the serving store's peer of the
    /// region (MC-2.2.1, TiKV behaviour); off like mocktikv.
    pub check_peer_id: bool,
    /// Answer `BucketVersionNotMatch` when a non-zero `context.buckets_version` is older than
    /// the region's buckets (MC-1.12.3); off like mocktikv.
    pub check_bucket_version: bool,
    /// The API version the stores run (MC-1.18.2). Under V2 a request must say V2 and its
    /// keys must carry the prefix of its keyspace; under V1 (the default) nothing is checked.
    pub api_version: kvrpcpb::ApiVersion,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            cluster_id: 1,
            follower_read: false,
            log_capacity: 4096,
            check_peer_id: false,
            check_bucket_version: false,
            api_version: kvrpcpb::ApiVersion::V1,
        }
    }
}

pub(crate) struct MockInner {
    pub(crate) clock: Clock,
    pub(crate) cluster: Cluster,
    pub(crate) pd: MockPd,
    pub(crate) raw: RawStore,
    pub(crate) mvcc: MvccEngine,
    pub(crate) rules: Arc<TikvRules>,
    pub(crate) log: RequestLog,
    pub(crate) opts: MockOptions,
    /// The coprocessor hook (MC-2.24.1); `None` answers coprocessor requests unimplemented.
    pub(crate) cop: std::sync::RwLock<Option<Arc<dyn CoprocessorHandler>>>,
}

/// What a [`CoprocessorHandler`] sees of the region a coprocessor request was routed to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CopContext {
    /// The routed region's range in user-key space.
    pub scope: RegionScope,
    /// Read access to the cluster's MVCC engine (reads honour the request's context).
    pub engine: MvccEngine,
}

/// The mock's coprocessor hook (MC-2.24.1, mocktikv's `CoprRPCHandler`): coprocessor
/// requests that pass the region checks are handed to it. Without a handler the mock
/// answers them `Unimplemented`, as mocktikv does when tests pass none.
pub trait CoprocessorHandler: Send + Sync + 'static {
    /// Serves one coprocessor request; a stream request is answered with this one response.
    fn handle(
        &self,
        ctx: CopContext,
        req: tikv_proto::coprocessor::Request,
    ) -> Pin<Box<dyn Future<Output = tikv_proto::coprocessor::Response> + Send + 'static>>;
}

/// One embedded mock cluster: the shared engine behind both faces. Cheap to clone.
#[derive(Clone)]
pub struct Mock {
    pub(crate) inner: Arc<MockInner>,
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock").finish_non_exhaustive()
    }
}

/// mocktikv's `NewMockTiKV`: (in-process TiKV face, cluster handle, PD), unbootstrapped
/// (MC-1.6.5).
pub fn new_mock_tikv() -> (MockTikv, Cluster, MockPd) {
    let m = Mock::new(MockOptions::default());
    (m.tikv(), m.cluster().clone(), m.pd().clone())
}

fn region_error(msg: &str, f: impl FnOnce(&mut errorpb::Error)) -> errorpb::Error {
    let mut e = errorpb::Error {
        message: msg.to_owned(),
        ..Default::default()
    };
    f(&mut e);
    e
}

/// Which key space a command's keys live in (MC-1.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyMode {
    Txn,
    Raw,
}

/// A key a command names, for the key-range checks of MC-2.4.2.
enum KeyCheck<'a> {
    /// Must lie in the region.
    In(&'a [u8]),
    /// DeleteRange end: not beyond the region end (empty only when the region end is).
    EndWithin(&'a [u8]),
    /// RawDeleteRange end: within `(region start, region end]`.
    RawEnd(&'a [u8]),
}

fn txn(v: Vec<KeyCheck<'_>>) -> (KeyMode, Vec<KeyCheck<'_>>) {
    (KeyMode::Txn, v)
}

fn raw(v: Vec<KeyCheck<'_>>) -> (KeyMode, Vec<KeyCheck<'_>>) {
    (KeyMode::Raw, v)
}

fn all(keys: &[Vec<u8>]) -> Vec<KeyCheck<'_>> {
    keys.iter().map(|k| KeyCheck::In(k)).collect()
}

fn key_checks(cmd: &Command) -> (KeyMode, Vec<KeyCheck<'_>>) {
    use KeyCheck::*;
    match cmd {
        Command::Get(r) => txn(vec![In(&r.key)]),
        Command::Scan(r) => {
            if r.reverse {
                txn(if r.end_key.is_empty() {
                    vec![]
                } else {
                    vec![In(&r.end_key)]
                })
            } else {
                txn(vec![In(&r.start_key)])
            }
        }
        Command::BatchGet(r) => txn(all(&r.keys)),
        Command::BufferBatchGet(r) => txn(all(&r.keys)),
        Command::Prewrite(r) => txn(r.mutations.iter().map(|m| In(&m.key)).collect()),
        Command::Flush(r) => txn(r.mutations.iter().map(|m| In(&m.key)).collect()),
        Command::PessimisticLock(r) => txn(r.mutations.iter().map(|m| In(&m.key)).collect()),
        Command::PessimisticRollback(r) => txn(all(&r.keys)),
        Command::Commit(r) => txn(all(&r.keys)),
        Command::Cleanup(r) => txn(vec![In(&r.key)]),
        Command::BatchRollback(r) => txn(all(&r.keys)),
        Command::CheckTxnStatus(r) => txn(vec![In(&r.primary_key)]),
        Command::TxnHeartBeat(r) => txn(vec![In(&r.primary_lock)]),
        Command::CheckSecondaryLocks(r) => txn(all(&r.keys)),
        Command::ResolveLock(r) => txn(all(&r.keys)),
        Command::DeleteRange(r) => txn(vec![In(&r.start_key), EndWithin(&r.end_key)]),
        Command::MvccGetByKey(r) => txn(vec![In(&r.key)]),
        Command::SplitRegion(r) => {
            let mut v: Vec<KeyCheck<'_>> = all(&r.split_keys);
            if !r.split_key.is_empty() {
                v.push(In(&r.split_key));
            }
            (
                if r.is_raw_kv {
                    KeyMode::Raw
                } else {
                    KeyMode::Txn
                },
                v,
            )
        }
        Command::RawGet(r) => raw(vec![In(&r.key)]),
        Command::RawPut(r) => raw(vec![In(&r.key)]),
        Command::RawDelete(r) => raw(vec![In(&r.key)]),
        Command::RawCompareAndSwap(r) => raw(vec![In(&r.key)]),
        Command::RawGetKeyTTL(r) => raw(vec![In(&r.key)]),
        Command::RawBatchGet(r) => raw(all(&r.keys)),
        Command::RawBatchDelete(r) => raw(all(&r.keys)),
        Command::RawBatchPut(r) => raw(r.pairs.iter().map(|p| In(&p.key)).collect()),
        Command::RawDeleteRange(r) => raw(vec![In(&r.start_key), RawEnd(&r.end_key)]),
        Command::RawScan(r) => {
            if r.reverse {
                raw(if r.end_key.is_empty() {
                    vec![]
                } else {
                    vec![In(&r.end_key)]
                })
            } else {
                raw(vec![In(&r.start_key)])
            }
        }
        _ => (KeyMode::Txn, Vec::new()),
    }
}

fn user_keys(cmd: &Command) -> Vec<Vec<u8>> {
    key_checks(cmd)
        .1
        .into_iter()
        .map(|k| match k {
            KeyCheck::In(k) | KeyCheck::EndWithin(k) | KeyCheck::RawEnd(k) => k.to_vec(),
        })
        .filter(|k| !k.is_empty())
        .collect()
}

/// Commands that skip the region checks (MC-2.2.4).
fn is_store_level(t: CmdType) -> bool {
    matches!(
        t,
        CmdType::StoreSafeTS
            | CmdType::GetHealthFeedback
            | CmdType::BroadcastTxnStatus
            | CmdType::LockWaitInfo
            | CmdType::UnsafeDestroyRange
            | CmdType::Empty
    )
}

/// Commands the mock serves (§2.27); everything else is *unimplemented*.
fn is_served(t: CmdType) -> bool {
    use CmdType as C;
    matches!(
        t,
        C::Get
            | C::Scan
            | C::BatchGet
            | C::Prewrite
            | C::Commit
            | C::Cleanup
            | C::BatchRollback
            | C::ScanLock
            | C::ResolveLock
            | C::DeleteRange
            | C::PessimisticLock
            | C::PessimisticRollback
            | C::TxnHeartBeat
            | C::CheckTxnStatus
            | C::CheckSecondaryLocks
            | C::FlashbackToVersion
            | C::PrepareFlashbackToVersion
            | C::Flush
            | C::BufferBatchGet
            | C::RawGet
            | C::RawBatchGet
            | C::RawPut
            | C::RawBatchPut
            | C::RawDelete
            | C::RawBatchDelete
            | C::RawDeleteRange
            | C::RawScan
            | C::RawGetKeyTTL
            | C::RawCompareAndSwap
            | C::RawChecksum
            | C::UnsafeDestroyRange
            | C::StoreSafeTS
            | C::LockWaitInfo
            | C::GetHealthFeedback
            | C::BroadcastTxnStatus
            | C::MvccGetByKey
            | C::MvccGetByStartTs
            | C::SplitRegion
            | C::Empty
    )
}

fn is_read(t: CmdType) -> bool {
    matches!(
        t,
        CmdType::Get | CmdType::BatchGet | CmdType::Scan | CmdType::BufferBatchGet | CmdType::Cop
    )
}

/// The region a request passed the checks for.
struct Routed {
    region: metapb::Region,
}

async fn bounded(
    deadline: Option<Instant>,
    addr: &str,
    fut: impl Future<Output = ()>,
) -> Result<(), Error> {
    match deadline {
        None => {
            fut.await;
            Ok(())
        }
        Some(d) => tokio::time::timeout_at(d, fut).await.map_err(|_| {
            Error::from(ErrorDetail::AttemptTimeout {
                addr: addr.to_owned(),
            })
        }),
    }
}

impl Mock {
    /// A fresh, unbootstrapped mock cluster with its own clock.
    pub fn new(opts: MockOptions) -> Mock {
        Mock::with_clock(Clock::new(), opts)
    }

    /// A fresh mock cluster reading time from `clock`.
    pub fn with_clock(clock: Clock, opts: MockOptions) -> Mock {
        let cluster = Cluster::new(clock.clone());
        let pd = MockPd::new(cluster.clone(), opts.cluster_id);
        let mvcc = MvccEngine::new(clock.clone());
        // Async-commit min_commit_ts and 1PC commit ts must come from the cluster's TSO so
        // they exceed every timestamp PD has handed out (MC-2.8.9).
        let tso_pd = pd.clone();
        mvcc.set_tso(Arc::new(move || tso_pd.alloc_ts(1)));
        Mock {
            inner: Arc::new(MockInner {
                raw: RawStore::new(clock.clone()),
                mvcc,
                rules: Arc::new(TikvRules::default()),
                log: RequestLog::new(opts.log_capacity),
                clock,
                cluster,
                pd,
                opts,
                cop: std::sync::RwLock::new(None),
            }),
        }
    }

    /// Installs the coprocessor hook (MC-2.24.1); replaces any earlier one.
    pub fn set_coprocessor_handler(&self, handler: Arc<dyn CoprocessorHandler>) {
        *self.inner.cop.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    fn cop_handler(&self) -> Option<Arc<dyn CoprocessorHandler>> {
        self.inner
            .cop
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster model.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The in-process PD.
    pub fn pd(&self) -> &MockPd {
        &self.inner.pd
    }

    /// The MVCC engine (read-only inspection in tests).
    pub fn mvcc(&self) -> &MvccEngine {
        &self.inner.mvcc
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The in-process TiKV face.
    pub fn tikv(&self) -> MockTikv {
        MockTikv { mock: self.clone() }
    }

    /// Installs an injection rule (MC-3.8.1).
    pub fn inject(&self, rule: Rule) -> RuleHandle {
        let policy = rule.policy;
        self.inner.rules.add(rule, policy)
    }

    /// A snapshot of the request log (MC-3.8.5).
    pub fn request_log(&self) -> Vec<LogEntry> {
        self.inner.log.snapshot()
    }

    /// Clears the request log.
    pub fn clear_request_log(&self) {
        self.inner.log.clear();
    }

    /// mocktikv `SplitKeys` (MC-1.8.2): `[start, end)` (user keys) becomes `count` regions
    /// split by the visible data; `start >= end` is a no-op.
    pub async fn split_keys(&self, start: &[u8], end: &[u8], count: usize) -> Result<(), Error> {
        if (!end.is_empty() && start >= end) || count == 0 {
            return Ok(());
        }
        let scope = RegionScope {
            region_id: 0,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
        };
        let scan = kvrpcpb::ScanRequest {
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            limit: u32::MAX,
            version: u64::MAX,
            key_only: true,
            ..Default::default()
        };
        let keys: Vec<Vec<u8>> = match self.inner.mvcc.execute(Command::Scan(scan), &scope).await? {
            CommandResponse::Scan(r) => r.pairs.into_iter().map(|p| p.key).collect(),
            _ => Vec::new(),
        };
        let n = keys.len();
        let mut starts = Vec::new();
        if n > 0 {
            let (base, extra) = (n / count, n % count);
            let mut i = 0;
            for g in 0..count.min(n) {
                starts.push(keys[i].clone());
                i += base + usize::from(g < extra);
            }
        }
        self.inner
            .cluster
            .split_range_by_keys(&encode_key(start), &encode_key(end), &starts);
        Ok(())
    }

    fn log(
        &self,
        addr: &str,
        store_id: u64,
        cmd: &Command,
        ctx: &kvrpcpb::Context,
        r: &Result<CommandResponse, Error>,
    ) {
        let outcome = match r {
            Ok(resp) => match resp.region_error() {
                Some(e) => Outcome::RegionError(e.message.clone()),
                None => Outcome::Ok,
            },
            Err(e) => Outcome::Transport(e.to_string()),
        };
        self.inner.log.push(LogEntry {
            time_ms: self.inner.clock.now_ms(),
            addr: addr.to_owned(),
            store_id,
            cmd_type: cmd.cmd_type(),
            context: ctx.clone(),
            request: cmd.clone(),
            outcome,
        });
    }

    /// Runs one request sent to `addr` (both faces call this; the command's own `context`
    /// field is the request context, as on the wire).
    pub async fn dispatch(
        &self,
        addr: &str,
        cmd: Command,
        deadline: Option<Instant>,
    ) -> Result<CommandResponse, Error> {
        let ctx = cmd.context().cloned().unwrap_or_default();
        let mut store_id = 0;
        let r = self
            .dispatch_inner(addr, &cmd, &ctx, deadline, &mut store_id)
            .await;
        self.log(addr, store_id, &cmd, &ctx, &r);
        r
    }

    async fn apply(
        &self,
        action: Action,
        gate: Arc<tokio::sync::Semaphore>,
        cmd: &Command,
        addr: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<CommandResponse>, Error> {
        match action {
            Action::RegionError(e) => cmd.region_error_response(*e).map(Some),
            Action::Transport(kind, msg) => Err(kind.to_error(addr, &msg)),
            Action::Delay(d) => {
                bounded(deadline, addr, tokio::time::sleep(d)).await?;
                Ok(None)
            }
            Action::Pause => {
                bounded(deadline, addr, async {
                    let _ = gate.acquire().await;
                })
                .await?;
                Ok(None)
            }
            Action::Respond(f) => Ok(f(cmd)),
            Action::Rewrite(_) => Ok(None),
        }
    }

    async fn dispatch_inner(
        &self,
        addr: &str,
        cmd: &Command,
        ctx: &kvrpcpb::Context,
        deadline: Option<Instant>,
        store_out: &mut u64,
    ) -> Result<CommandResponse, Error> {
        // 1. deadline (MC-2.1.1 step 1).
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(TransportKind::DeadlineExceeded.to_error(addr, "deadline exceeded"));
        }
        // 2. address resolution (MC-1.2.5).
        let resolved = self.inner.cluster.read().store_by_addr_checked(addr);
        let store_id = match resolved {
            Ok(id) => id,
            // mocktikv answers a cancelled store with `context.Canceled` itself, which the
            // client treats as its own cancellation (TE-1), not as a remote gRPC cancel.
            Err(AddrError::Cancelled) => return Err(ErrorDetail::Canceled.into()),
            Err(AddrError::ConnectFail) => {
                return Err(TransportKind::ConnectFail.to_error(addr, "connect fail"));
            }
            Err(AddrError::Refused) => {
                return Err(TransportKind::ConnectionRefused.to_error(addr, "connection refused"));
            }
            Err(AddrError::Timeout) => {
                if let Some(d) = deadline {
                    tokio::time::sleep_until(d).await;
                }
                return Err(TransportKind::DeadlineExceeded.to_error(addr, "deadline exceeded"));
            }
        };
        *store_out = store_id;
        // TiKV refuses a request meant for another cluster before anything else (MC-1.1.2).
        if ctx.cluster_id != 0 && ctx.cluster_id != self.inner.opts.cluster_id {
            return Err(
                TransportKind::Status(tonic::Code::InvalidArgument).to_error(
                    addr,
                    "the cluster id of the request does not match the TiKV cluster",
                ),
            );
        }
        let keys = user_keys(cmd);
        let m = MatchInput {
            addr,
            store_id,
            cmd,
            ctx,
            keys: &keys,
        };
        // 3. early injection.
        if let Some((a, g)) = eval_tikv(&self.inner.rules, Phase::BeforeRegionCheck, &m)
            && let Some(resp) = self.apply(a, g, cmd, addr, deadline).await?
        {
            return Ok(resp);
        }
        let t = cmd.cmd_type();
        let cop_served =
            matches!(t, CmdType::Cop | CmdType::CopStream) && self.cop_handler().is_some();
        if !is_served(t) && !cop_served {
            return Err(
                TransportKind::Unimplemented.to_error(addr, "unsupported this request type")
            );
        }
        // 4. region and size checks.
        let routed = if is_store_level(t) {
            None
        } else {
            match self.check_region(store_id, ctx, t, cmd.start_ts()) {
                Ok(r) => Some(r),
                Err(e) => return cmd.region_error_response(*e),
            }
        };
        // A region in the middle of a flashback refuses everything but the flashback
        // commands themselves (MC-2.25.1).
        if let Some(r) = &routed
            && !matches!(
                t,
                CmdType::PrepareFlashbackToVersion | CmdType::FlashbackToVersion
            )
            && let Some(start_ts) = self.inner.mvcc.flashback_in_progress(r.region.id)
        {
            let region_id = r.region.id;
            return cmd.region_error_response(region_error("flashback in progress", |e| {
                e.flashback_in_progress = Some(errorpb::FlashbackInProgress {
                    region_id,
                    flashback_start_ts: start_ts,
                });
            }));
        }
        if let Some(r) = &routed {
            let size = cmd.encoded_len();
            if size >= REQUEST_MAX_SIZE {
                return cmd.region_error_response(region_error("raft entry is too large", |e| {
                    e.raft_entry_too_large = Some(errorpb::RaftEntryTooLarge {
                        region_id: r.region.id,
                        entry_size: size as u64,
                    })
                }));
            }
        }
        if let Some((a, g)) = eval_tikv(&self.inner.rules, Phase::AfterRegionCheck, &m)
            && let Some(resp) = self.apply(a, g, cmd, addr, deadline).await?
        {
            return Ok(resp);
        }
        // Scheduled delays (MC-1.13.1).
        if let (Some(r), Command::Prewrite(_) | Command::PessimisticLock(_)) = (&routed, cmd)
            && let Some(d) = self.inner.cluster.take_delay(cmd.start_ts(), r.region.id)
        {
            bounded(deadline, addr, tokio::time::sleep(d)).await?;
        }
        // 5. API version and keyspace (MC-1.18.2), key-range checks, then execute.
        if let Some(msg) = self.check_api_version(cmd, ctx)
            && let Some(resp) = storage_error_response(cmd, &msg)
        {
            return Ok(resp);
        }
        let resp = match &routed {
            Some(r) => {
                if let Some(e) = self.check_keys(cmd, &r.region) {
                    return cmd.region_error_response(e);
                }
                self.execute(cmd.clone(), &r.region, store_id, addr).await?
            }
            None => {
                self.execute_store_level(cmd.clone(), store_id, addr)
                    .await?
            }
        };
        // 6. rewrite rules.
        if let Some((a, g)) = eval_tikv(&self.inner.rules, Phase::AfterExecute, &m) {
            match a {
                Action::Rewrite(f) => return f(resp),
                other => {
                    if let Some(r) = self.apply(other, g, cmd, addr, deadline).await? {
                        return Ok(r);
                    }
                }
            }
        }
        Ok(resp)
    }

    /// MC-2.2.1 in mocktikv's order.
    fn check_region(
        &self,
        store_id: u64,
        ctx: &kvrpcpb::Context,
        t: CmdType,
        read_ts: u64,
    ) -> Result<Routed, Box<errorpb::Error>> {
        let m = self.inner.cluster.read();
        if let Some(p) = &ctx.peer
            && p.store_id != store_id
        {
            return Err(Box::new(region_error("store not match", |e| {
                e.store_not_match = Some(errorpb::StoreNotMatch {
                    request_store_id: p.store_id,
                    actual_store_id: store_id,
                })
            })));
        }
        let not_found = || {
            Box::new(region_error("region not found", |e| {
                e.region_not_found = Some(errorpb::RegionNotFound {
                    region_id: ctx.region_id,
                })
            }))
        };
        let Some(region) = m.regions.get(&ctx.region_id) else {
            return Err(not_found());
        };
        let Some(store_peer) = region.meta.peers.iter().find(|p| p.store_id == store_id) else {
            return Err(not_found());
        };
        if self.inner.opts.check_peer_id
            && let Some(p) = &ctx.peer
            && p.id != store_peer.id
        {
            return Err(Box::new(region_error("mismatch peer id", |e| {
                e.mismatch_peer_id = Some(errorpb::MismatchPeerId {
                    request_peer_id: p.id,
                    store_peer_id: store_peer.id,
                })
            })));
        }
        let Some(leader) = region.leader_peer() else {
            return Err(Box::new(region_error("no leader", |e| {
                e.not_leader = Some(errorpb::NotLeader {
                    region_id: ctx.region_id,
                    leader: None,
                })
            })));
        };
        let tiflash = m.stores.get(&store_id).is_some_and(|s| {
            s.meta
                .labels
                .iter()
                .any(|l| l.key == "engine" && (l.value == "tiflash" || l.value == "tiflash_mpp"))
        });
        let follower_ok =
            self.inner.opts.follower_read && is_read(t) && (ctx.replica_read || ctx.stale_read);
        if store_peer.id != leader.id && !tiflash && !follower_ok {
            return Err(Box::new(region_error("not leader", |e| {
                e.not_leader = Some(errorpb::NotLeader {
                    region_id: ctx.region_id,
                    leader: Some(leader),
                })
            })));
        }
        if ctx.region_epoch.as_ref() != region.meta.region_epoch.as_ref()
            || ctx.region_epoch.is_none()
        {
            let mut current = vec![region.meta.clone()];
            if !region.meta.end_key.is_empty()
                && let Some(next) = m.region_by_key(&region.meta.end_key)
            {
                current.push(next.meta.clone());
            }
            return Err(Box::new(region_error("epoch not match", |e| {
                e.epoch_not_match = Some(errorpb::EpochNotMatch {
                    current_regions: current,
                })
            })));
        }
        if self.inner.opts.check_bucket_version
            && ctx.buckets_version != 0
            && let Some(b) = &region.buckets
            && ctx.buckets_version < b.version
        {
            return Err(Box::new(region_error("bucket version not match", |e| {
                e.bucket_version_not_match = Some(errorpb::BucketVersionNotMatch {
                    version: b.version,
                    keys: b.keys.clone(),
                })
            })));
        }
        if follower_ok && store_peer.id != leader.id && ctx.stale_read {
            let safe_ts = m.stores.get(&store_id).map_or(0, |s| s.safe_ts);
            if read_ts > safe_ts {
                return Err(Box::new(region_error("data is not ready", |e| {
                    e.data_is_not_ready = Some(errorpb::DataIsNotReady {
                        region_id: ctx.region_id,
                        peer_id: store_peer.id,
                        safe_ts,
                    })
                })));
            }
        }
        Ok(Routed {
            region: region.meta.clone(),
        })
    }

    /// MC-1.18.2: under API V2 the request must say V2 and every key must carry its
    /// keyspace's prefix (`x` + 3-byte id for transactional keys, `r` + id for raw keys).
    fn check_api_version(&self, cmd: &Command, ctx: &kvrpcpb::Context) -> Option<String> {
        let want = self.inner.opts.api_version;
        if want == kvrpcpb::ApiVersion::V1 {
            return None;
        }
        if ctx.api_version() != want {
            return Some(format!(
                "api version not match: the request is {:?}, the storage is {want:?}",
                ctx.api_version()
            ));
        }
        let (mode, checks) = key_checks(cmd);
        let id = match ctx.keyspace {
            Some(kvrpcpb::context::Keyspace::KeyspaceId(id)) => id,
            _ => 0,
        };
        let [_, a, b, c] = id.to_be_bytes();
        let mode_byte = match mode {
            KeyMode::Txn => b'x',
            KeyMode::Raw => b'r',
        };
        let prefix = [mode_byte, a, b, c];
        // The exclusive end of the keyspace: the next keyspace's prefix, or the next mode
        // byte alone after the last id (KS-13 `keyspaceEnd`). TiKV checks only the mode
        // byte of a range end and admits the mode's end (`check_api_version_ranges`), so a
        // range running to the end of the keyspace must pass here too.
        let keyspace_end = match id.checked_add(1).filter(|n| *n <= 0x00FF_FFFF) {
            Some(next) => {
                let [_, a, b, c] = next.to_be_bytes();
                vec![mode_byte, a, b, c]
            }
            None => vec![mode_byte + 1],
        };
        for k in checks {
            let (key, is_end) = match k {
                KeyCheck::In(key) => (key, false),
                KeyCheck::EndWithin(key) | KeyCheck::RawEnd(key) => (key, true),
            };
            if is_end && key == keyspace_end.as_slice() {
                continue;
            }
            if !key.is_empty() && !key.starts_with(&prefix) {
                return Some(format!(
                    "invalid key mode: key {key:?} is not in keyspace {id} ({mode:?} mode)"
                ));
            }
        }
        None
    }

    /// Whether raw keys live in the memcomparable region space. Under API V1 raw regions
    /// are bounded by raw keys (mocktikv's raw tests split at raw keys); under API V2 raw and
    /// transactional keys share one key space whose region bounds are memcomparable-encoded
    /// (client-go `codec_v2.go` decodes every region key with `DecodeBytes` first), so a raw
    /// key must be encoded before it is compared with a bound.
    fn raw_keys_encoded(&self) -> bool {
        self.inner.opts.api_version == kvrpcpb::ApiVersion::V2
    }

    /// A command key in the encoding of the region bounds (MC-2.4.2).
    fn region_space_key(&self, mode: KeyMode, k: &[u8]) -> Vec<u8> {
        match mode {
            KeyMode::Raw if !self.raw_keys_encoded() => k.to_vec(),
            _ => encode_key(k),
        }
    }

    /// The routed region's range in raw key space, what the raw store clamps scans and
    /// checksums to: the bounds themselves under V1, their decoded form under V2.
    fn raw_region_range(&self, region: &metapb::Region) -> (Vec<u8>, Vec<u8>) {
        if self.raw_keys_encoded() {
            (decode_key(&region.start_key), decode_key(&region.end_key))
        } else {
            (region.start_key.clone(), region.end_key.clone())
        }
    }

    /// MC-2.4: the first key outside the region gives `KeyNotInRegion` and a violation.
    fn check_keys(&self, cmd: &Command, region: &metapb::Region) -> Option<errorpb::Error> {
        let (mode, checks) = key_checks(cmd);
        let (s, e) = (&region.start_key, &region.end_key);
        let pd = |k: &[u8]| self.region_space_key(mode, k);
        for c in checks {
            let (key, ok) = match c {
                KeyCheck::In(k) => (
                    k,
                    region_contains(s, e, &pd(k)) || (k.is_empty() && s.is_empty()),
                ),
                KeyCheck::EndWithin(k) => {
                    let ok = if k.is_empty() {
                        e.is_empty()
                    } else {
                        e.is_empty() || pd(k).as_slice() <= e.as_slice()
                    };
                    (k, ok)
                }
                KeyCheck::RawEnd(k) => {
                    let ok = if k.is_empty() {
                        e.is_empty()
                    } else {
                        let k = pd(k);
                        s.as_slice() < k.as_slice()
                            && (e.is_empty() || k.as_slice() <= e.as_slice())
                    };
                    (k, ok)
                }
            };
            if !ok {
                self.inner.cluster.record_violation(KeyViolation {
                    cmd: cmd.cmd_type().name(),
                    key: key.to_vec(),
                    region_id: region.id,
                });
                return Some(region_error("key not in region", |err| {
                    err.key_not_in_region = Some(errorpb::KeyNotInRegion {
                        key: key.to_vec(),
                        region_id: region.id,
                        start_key: s.clone(),
                        end_key: e.clone(),
                    })
                }));
            }
        }
        None
    }

    async fn execute(
        &self,
        cmd: Command,
        region: &metapb::Region,
        _store_id: u64,
        _addr: &str,
    ) -> Result<CommandResponse, Error> {
        let raw = &self.inner.raw;
        let cmd_is_stream = cmd.cmd_type() == CmdType::CopStream;
        let (raw_start, raw_end) = self.raw_region_range(region);
        let range = Range {
            start: &raw_start,
            end: &raw_end,
        };
        Ok(match cmd {
            Command::RawGet(r) => raw.get(&r).into(),
            Command::RawBatchGet(r) => raw.batch_get(&r).into(),
            Command::RawPut(r) => raw.put(&r).into(),
            Command::RawBatchPut(r) => raw.batch_put(&r).into(),
            Command::RawDelete(r) => raw.delete(&r).into(),
            Command::RawBatchDelete(r) => raw.batch_delete(&r).into(),
            Command::RawDeleteRange(r) => raw.delete_range(&r).into(),
            Command::RawScan(r) => raw.scan(&r, &range).into(),
            Command::RawGetKeyTTL(r) => raw.get_key_ttl(&r).into(),
            Command::RawCompareAndSwap(r) => raw.compare_and_swap(&r).into(),
            Command::RawChecksum(r) => raw.checksum(&r, &range).into(),
            Command::SplitRegion(r) => self.split_region(r, region).into(),
            Command::Cop(r) | Command::CopStream(r) if self.cop_handler().is_some() => {
                let stream = cmd_is_stream;
                let Some(h) = self.cop_handler() else {
                    return Err(ErrorDetail::Internal("coprocessor handler vanished".into()).into());
                };
                let ctx = CopContext {
                    scope: RegionScope {
                        region_id: region.id,
                        start_key: decode_key(&region.start_key),
                        end_key: decode_key(&region.end_key),
                    },
                    engine: self.inner.mvcc.clone(),
                };
                let resp = h.handle(ctx, r).await;
                if stream {
                    CommandResponse::CopStream(tikv_layers::request::ResponseStream::new(
                        OneShotStream(Some(Ok(resp))),
                    ))
                } else {
                    CommandResponse::Cop(resp)
                }
            }
            cmd => {
                let scope = RegionScope {
                    region_id: region.id,
                    start_key: decode_key(&region.start_key),
                    end_key: decode_key(&region.end_key),
                };
                self.inner.mvcc.execute(cmd, &scope).await?
            }
        })
    }

    async fn execute_store_level(
        &self,
        cmd: Command,
        store_id: u64,
        _addr: &str,
    ) -> Result<CommandResponse, Error> {
        Ok(match cmd {
            Command::StoreSafeTS(_) => kvrpcpb::StoreSafeTsResponse {
                safe_ts: self
                    .inner
                    .cluster
                    .read()
                    .stores
                    .get(&store_id)
                    .map_or(0, |s| s.safe_ts),
            }
            .into(),
            Command::GetHealthFeedback(_) => kvrpcpb::GetHealthFeedbackResponse {
                health_feedback: Some(self.inner.cluster.next_health_feedback(store_id)),
                ..Default::default()
            }
            .into(),
            // The waiters the engine currently parks (MC-2.11.5).
            Command::LockWaitInfo(_) => kvrpcpb::GetLockWaitInfoResponse {
                entries: self.inner.mvcc.lock_wait_info(),
                ..Default::default()
            }
            .into(),
            Command::Empty(r) => {
                tikv_proto::tikvpb::BatchCommandsEmptyResponse { test_id: r.test_id }.into()
            }
            Command::UnsafeDestroyRange(r) => {
                self.inner.raw.destroy_range(&r.start_key, &r.end_key);
                self.inner
                    .mvcc
                    .execute(Command::UnsafeDestroyRange(r), &RegionScope::everything())
                    .await?
            }
            cmd => {
                self.inner
                    .mvcc
                    .execute(cmd, &RegionScope::everything())
                    .await?
            }
        })
    }

    /// MC-2.22.1: split at each key (ascending, deduplicated, skipping region starts); answer
    /// the resulting regions in key order with current metadata.
    fn split_region(
        &self,
        r: kvrpcpb::SplitRegionRequest,
        region: &metapb::Region,
    ) -> kvrpcpb::SplitRegionResponse {
        let mut keys: Vec<Vec<u8>> = r.split_keys.clone();
        if !r.split_key.is_empty() {
            keys.push(r.split_key.clone());
        }
        let keys: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|k| {
                let mode = if r.is_raw_kv {
                    KeyMode::Raw
                } else {
                    KeyMode::Txn
                };
                self.region_space_key(mode, &k)
            })
            .collect();
        self.inner.cluster.split_at_keys(&keys);
        let regions: Vec<metapb::Region> = self
            .inner
            .cluster
            .scan_regions(&region.start_key, &region.end_key, 0)
            .into_iter()
            .map(|i| i.region)
            .collect();
        let (left, right) = if regions.len() == 2 {
            (Some(regions[0].clone()), Some(regions[1].clone()))
        } else {
            (None, None)
        };
        kvrpcpb::SplitRegionResponse {
            left,
            right,
            regions,
            ..Default::default()
        }
    }
}

/// The response TiKV gives for a storage error that is not a region error (MC-1.18.2):
/// transactional commands carry `KeyError.abort`, raw commands the string `error`; `None`
/// for commands whose response has neither.
fn storage_error_response(cmd: &Command, msg: &str) -> Option<CommandResponse> {
    use CommandResponse as R;
    let ke = || kvrpcpb::KeyError {
        abort: msg.to_owned(),
        ..Default::default()
    };
    let pair = || kvrpcpb::KvPair {
        error: Some(ke()),
        ..Default::default()
    };
    let s = msg.to_owned();
    Some(match cmd {
        Command::Get(_) => R::Get(kvrpcpb::GetResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::Scan(_) => R::Scan(kvrpcpb::ScanResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::BatchGet(_) => R::BatchGet(kvrpcpb::BatchGetResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::BufferBatchGet(_) => R::BufferBatchGet(kvrpcpb::BufferBatchGetResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::Prewrite(_) => R::Prewrite(kvrpcpb::PrewriteResponse {
            errors: vec![ke()],
            ..Default::default()
        }),
        Command::Flush(_) => R::Flush(kvrpcpb::FlushResponse {
            errors: vec![ke()],
            ..Default::default()
        }),
        Command::PessimisticLock(_) => R::PessimisticLock(kvrpcpb::PessimisticLockResponse {
            errors: vec![ke()],
            ..Default::default()
        }),
        Command::PessimisticRollback(_) => {
            R::PessimisticRollback(kvrpcpb::PessimisticRollbackResponse {
                errors: vec![ke()],
                ..Default::default()
            })
        }
        Command::Commit(_) => R::Commit(kvrpcpb::CommitResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::Cleanup(_) => R::Cleanup(kvrpcpb::CleanupResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::BatchRollback(_) => R::BatchRollback(kvrpcpb::BatchRollbackResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::ScanLock(_) => R::ScanLock(kvrpcpb::ScanLockResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::ResolveLock(_) => R::ResolveLock(kvrpcpb::ResolveLockResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::TxnHeartBeat(_) => R::TxnHeartBeat(kvrpcpb::TxnHeartBeatResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::CheckTxnStatus(_) => R::CheckTxnStatus(kvrpcpb::CheckTxnStatusResponse {
            error: Some(ke()),
            ..Default::default()
        }),
        Command::CheckSecondaryLocks(_) => {
            R::CheckSecondaryLocks(kvrpcpb::CheckSecondaryLocksResponse {
                error: Some(ke()),
                ..Default::default()
            })
        }
        Command::DeleteRange(_) => R::DeleteRange(kvrpcpb::DeleteRangeResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawGet(_) => R::RawGet(kvrpcpb::RawGetResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawPut(_) => R::RawPut(kvrpcpb::RawPutResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawDelete(_) => R::RawDelete(kvrpcpb::RawDeleteResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawBatchPut(_) => R::RawBatchPut(kvrpcpb::RawBatchPutResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawBatchDelete(_) => R::RawBatchDelete(kvrpcpb::RawBatchDeleteResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawDeleteRange(_) => R::RawDeleteRange(kvrpcpb::RawDeleteRangeResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawCompareAndSwap(_) => R::RawCompareAndSwap(kvrpcpb::RawCasResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawGetKeyTTL(_) => R::RawGetKeyTTL(kvrpcpb::RawGetKeyTtlResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawChecksum(_) => R::RawChecksum(kvrpcpb::RawChecksumResponse {
            error: s,
            ..Default::default()
        }),
        Command::RawBatchGet(_) => R::RawBatchGet(kvrpcpb::RawBatchGetResponse {
            pairs: vec![pair()],
            ..Default::default()
        }),
        Command::RawScan(_) => R::RawScan(kvrpcpb::RawScanResponse {
            kvs: vec![pair()],
            ..Default::default()
        }),
        _ => return None,
    })
}

/// The in-process TiKV face (MC-2.30): a `tower::Service` ending the client's pipeline.
/// Cheap to clone, always ready; futures are `Send + 'static`.
#[derive(Clone, Debug)]
pub struct MockTikv {
    mock: Mock,
}

impl MockTikv {
    /// The shared engine.
    pub fn mock(&self) -> &Mock {
        &self.mock
    }
}

impl tower::Service<RpcRequest> for MockTikv {
    type Response = RpcResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<RpcResponse, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: RpcRequest) -> Self::Future {
        let mock = self.mock.clone();
        Box::pin(async move {
            // mocktikv's `checkGoContext` (MC-2.1.1 step 1): a request whose caller already
            // gave up (the backoffer's token stands for client-go's context) is not served.
            if req.backoffer.cancel_token().is_cancelled() {
                return Err(ErrorDetail::Canceled.into());
            }
            // Send exactly what the wire would carry: the envelope's context in the message.
            req.attach_context();
            let deadline = req.options.timeout.map(|t: Duration| Instant::now() + t);
            let addr = req.target.addr.clone();
            let store_id = req.target.store_id;
            let resp = mock.dispatch(&addr, req.cmd, deadline).await?;
            let mut out = RpcResponse::new(resp);
            out.details.addr = addr;
            out.details.store_id = store_id;
            out.details.attempts = 1;
            Ok(out)
        })
    }
}

/// A stream of at most one item (the coprocessor hook's answer to a stream request).
struct OneShotStream<T>(Option<T>);

impl<T: Unpin> futures_core::Stream for OneShotStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        Poll::Ready(self.0.take())
    }
}
