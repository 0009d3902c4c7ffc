//! Error injection (spec §3.8, §3.6) and the request log (MC-3.8.5).
//!
//! A [`Rule`] pairs a matcher (store, command kinds, region, key or request predicate, phase)
//! with an [`Action`] (region error, transport error, delay, pause, custom response, response
//! rewrite) and a [`FirePolicy`]. Rules are per cluster, evaluated in registration order; the
//! first matching rule that fires wins. The returned [`RuleHandle`] disables the rule when
//! dropped. [`Preset`] builds the rules that stand for client-go's mocktikv failpoints
//! (`rpc.go` `rpcPrewriteResult`, `rpcCommitResult`, ...; spec §3.2, §3.3).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tikv_layers::{CmdType, Command, CommandResponse, Error};
use tikv_proto::{errorpb, kvrpcpb, metapb};
use tokio::sync::Semaphore;

/// When a rule is evaluated on the request path (MC-2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// After address resolution, before the region checks.
    #[default]
    BeforeRegionCheck,
    /// After the region and size checks, before executing.
    AfterRegionCheck,
    /// After executing; only delays and rewrites make sense here.
    AfterExecute,
}

/// Which store a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreMatch {
    /// Every store.
    #[default]
    Any,
    /// The serving store with this id.
    Id(u64),
    /// Requests sent to this address.
    Addr(String),
}

/// How often a matching rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FirePolicy {
    /// Every match.
    #[default]
    Always,
    /// The first `n` matches (failpoint `n*return(...)`).
    FirstN(u64),
    /// Every `k`-th match (the k-th, 2k-th, ...).
    EveryKth(u64),
    /// Each match with probability `p`, from a seeded generator (deterministic).
    Probability {
        /// Probability in `[0, 1]`.
        p: f64,
        /// Seed of the generator.
        seed: u64,
    },
}

/// The transport-level failure kinds of MC-2.1.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    /// No store has the address ("connect fail").
    ConnectFail,
    /// Only stopped or tombstoned stores have it ("connection refused").
    ConnectionRefused,
    /// gRPC `Cancelled`.
    Cancelled,
    /// The request's deadline passed.
    DeadlineExceeded,
    /// gRPC `Unimplemented`.
    Unimplemented,
    /// Any other gRPC status code.
    Status(tonic::Code),
}

impl TransportKind {
    /// The error the in-process face returns for this kind (the gRPC face turns it into the
    /// matching status, MC-2.1.2).
    pub fn to_error(&self, addr: &str, message: &str) -> Error {
        use tikv_layers::ErrorDetail as D;
        match self {
            TransportKind::ConnectFail | TransportKind::ConnectionRefused => D::Transport {
                addr: addr.to_owned(),
                message: message.to_owned(),
            }
            .into(),
            TransportKind::DeadlineExceeded => D::AttemptTimeout {
                addr: addr.to_owned(),
            }
            .into(),
            TransportKind::Cancelled => D::Grpc(Box::new(tonic::Status::cancelled(message))).into(),
            TransportKind::Unimplemented => {
                D::Grpc(Box::new(tonic::Status::unimplemented(message))).into()
            }
            TransportKind::Status(code) => {
                D::Grpc(Box::new(tonic::Status::new(*code, message))).into()
            }
        }
    }
}

/// A custom-response callback: `None` falls through to normal handling.
pub type RespondFn = Arc<dyn Fn(&Command) -> Option<CommandResponse> + Send + Sync>;
/// A response rewrite run after execution.
pub type RewriteFn = Arc<dyn Fn(CommandResponse) -> Result<CommandResponse, Error> + Send + Sync>;
/// A predicate over a request's keys (user keys) or the whole request.
pub type KeyPred = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;
/// A predicate over the whole request and its context.
pub type RequestPred = Arc<dyn Fn(&Command, &kvrpcpb::Context) -> bool + Send + Sync>;

/// What a firing rule does.
#[derive(Clone)]
pub enum Action {
    /// Answer with this region error without executing (see [`Action::region_error`]).
    RegionError(Box<errorpb::Error>),
    /// Fail at the transport level.
    Transport(TransportKind, String),
    /// Sleep (mock clock), then continue.
    Delay(Duration),
    /// Block until the rule's handle is released (failpoint `pause`), then continue.
    Pause,
    /// Answer with a custom response (or fall through when the callback returns `None`).
    Respond(RespondFn),
    /// Rewrite the executed response (`AfterExecute` rules only).
    Rewrite(RewriteFn),
}

impl Action {
    /// [`Action::RegionError`] without spelling the box.
    pub fn region_error(e: errorpb::Error) -> Action {
        Action::RegionError(Box::new(e))
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::RegionError(e) => f.debug_tuple("RegionError").field(e).finish(),
            Action::Transport(k, m) => f.debug_tuple("Transport").field(k).field(m).finish(),
            Action::Delay(d) => f.debug_tuple("Delay").field(d).finish(),
            Action::Pause => f.write_str("Pause"),
            Action::Respond(_) => f.write_str("Respond(..)"),
            Action::Rewrite(_) => f.write_str("Rewrite(..)"),
        }
    }
}

/// One injection rule (MC-3.8.1). Build with [`Rule::new`] and the matcher setters.
#[derive(Clone, Debug)]
pub struct Rule {
    pub(crate) store: StoreMatch,
    pub(crate) cmds: Vec<CmdType>,
    pub(crate) region: Option<u64>,
    pub(crate) key: Option<KeyPredBox>,
    pub(crate) request: Option<RequestPredBox>,
    pub(crate) phase: Phase,
    pub(crate) action: Action,
    pub(crate) policy: FirePolicy,
}

/// Debug-printable wrapper of a key predicate.
#[derive(Clone)]
pub(crate) struct KeyPredBox(pub(crate) KeyPred);
impl std::fmt::Debug for KeyPredBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPred")
    }
}
/// Debug-printable wrapper of a request predicate.
#[derive(Clone)]
pub(crate) struct RequestPredBox(pub(crate) RequestPred);
impl std::fmt::Debug for RequestPredBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestPred")
    }
}

impl Rule {
    /// A rule that applies `action` to every request, before the region checks, always.
    pub fn new(action: Action) -> Rule {
        Rule {
            store: StoreMatch::Any,
            cmds: Vec::new(),
            region: None,
            key: None,
            request: None,
            phase: Phase::BeforeRegionCheck,
            action,
            policy: FirePolicy::Always,
        }
    }
    /// Only requests served by this store.
    #[must_use]
    pub fn store(mut self, s: StoreMatch) -> Rule {
        self.store = s;
        self
    }
    /// Only these command kinds (empty = all).
    #[must_use]
    pub fn cmds(mut self, cmds: &[CmdType]) -> Rule {
        self.cmds = cmds.to_vec();
        self
    }
    /// Only requests whose context names this region.
    #[must_use]
    pub fn region(mut self, id: u64) -> Rule {
        self.region = Some(id);
        self
    }
    /// Only requests with at least one key satisfying `f`.
    #[must_use]
    pub fn key(mut self, f: impl Fn(&[u8]) -> bool + Send + Sync + 'static) -> Rule {
        self.key = Some(KeyPredBox(Arc::new(f)));
        self
    }
    /// Only requests satisfying `f`.
    #[must_use]
    pub fn request(
        mut self,
        f: impl Fn(&Command, &kvrpcpb::Context) -> bool + Send + Sync + 'static,
    ) -> Rule {
        self.request = Some(RequestPredBox(Arc::new(f)));
        self
    }
    /// Evaluate at this phase.
    #[must_use]
    pub fn phase(mut self, p: Phase) -> Rule {
        self.phase = p;
        self
    }
    /// Fire according to `p`.
    #[must_use]
    pub fn policy(mut self, p: FirePolicy) -> Rule {
        self.policy = p;
        self
    }
}

/// What a rule is matched against.
pub(crate) struct MatchInput<'a> {
    pub(crate) addr: &'a str,
    pub(crate) store_id: u64,
    pub(crate) cmd: &'a Command,
    pub(crate) ctx: &'a kvrpcpb::Context,
    pub(crate) keys: &'a [Vec<u8>],
}

impl Rule {
    fn matches(&self, phase: Phase, m: &MatchInput<'_>) -> bool {
        if self.phase != phase {
            return false;
        }
        match &self.store {
            StoreMatch::Any => {}
            StoreMatch::Id(id) => {
                if *id != m.store_id {
                    return false;
                }
            }
            StoreMatch::Addr(a) => {
                if a != m.addr {
                    return false;
                }
            }
        }
        if !self.cmds.is_empty() && !self.cmds.contains(&m.cmd.cmd_type()) {
            return false;
        }
        if self.region.is_some_and(|r| r != m.ctx.region_id) {
            return false;
        }
        if let Some(k) = &self.key
            && !m.keys.iter().any(|key| (k.0)(key))
        {
            return false;
        }
        if let Some(r) = &self.request
            && !(r.0)(m.cmd, m.ctx)
        {
            return false;
        }
        true
    }
}

pub(crate) struct Entry<R> {
    id: u64,
    pub(crate) rule: R,
    policy: FirePolicy,
    count: AtomicU64,
    rng: Mutex<u64>,
    pub(crate) gate: Arc<Semaphore>,
}

impl<R> Entry<R> {
    fn fires(&self) -> bool {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        match self.policy {
            FirePolicy::Always => true,
            FirePolicy::FirstN(k) => n <= k,
            FirePolicy::EveryKth(k) => k > 0 && n.is_multiple_of(k),
            FirePolicy::Probability { p, .. } => {
                let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                // splitmix64
                *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = *s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 11) as f64 / (1u64 << 53) as f64) < p
            }
        }
    }
}

/// An ordered, per-cluster list of rules of one kind.
pub(crate) struct RuleSet<R> {
    next: AtomicU64,
    entries: Mutex<Vec<Arc<Entry<R>>>>,
}

impl<R> Default for RuleSet<R> {
    fn default() -> Self {
        RuleSet {
            next: AtomicU64::new(1),
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl<R: Send + Sync + 'static> RuleSet<R> {
    pub(crate) fn add(self: &Arc<Self>, rule: R, policy: FirePolicy) -> RuleHandle {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let seed = match policy {
            FirePolicy::Probability { seed, .. } => seed,
            _ => 0,
        };
        let gate = Arc::new(Semaphore::new(0));
        let e = Arc::new(Entry {
            id,
            rule,
            policy,
            count: AtomicU64::new(0),
            rng: Mutex::new(seed),
            gate: gate.clone(),
        });
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
        let weak: Weak<RuleSet<R>> = Arc::downgrade(self);
        RuleHandle {
            remove: Some(Box::new(move || {
                if let Some(set) = weak.upgrade() {
                    set.entries
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|e| e.id != id);
                }
                gate.close();
            })),
        }
    }

    /// The first rule that matches and fires.
    pub(crate) fn eval(&self, matches: impl Fn(&R) -> bool) -> Option<Arc<Entry<R>>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        entries.into_iter().find(|e| matches(&e.rule) && e.fires())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

pub(crate) type TikvRules = RuleSet<Rule>;

pub(crate) fn eval_tikv(
    set: &TikvRules,
    phase: Phase,
    m: &MatchInput<'_>,
) -> Option<(Action, Arc<Semaphore>)> {
    if set.is_empty() {
        return None;
    }
    set.eval(|r| r.matches(phase, m))
        .map(|e| (e.rule.action.clone(), e.gate.clone()))
}

/// Keeps an injected rule alive; dropping it (or [`remove`](Self::remove)) disables the rule
/// and releases requests paused by it.
#[must_use = "dropping the handle removes the rule"]
pub struct RuleHandle {
    remove: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for RuleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleHandle").finish_non_exhaustive()
    }
}

impl RuleHandle {
    /// Disables the rule now.
    pub fn remove(mut self) {
        if let Some(f) = self.remove.take() {
            f();
        }
    }
}

impl Drop for RuleHandle {
    fn drop(&mut self) {
        if let Some(f) = self.remove.take() {
            f();
        }
    }
}

// ===== PD rules (§3.6) =====

/// What a PD rule does.
#[derive(Debug, Clone)]
pub enum PdAction {
    /// Fail the call with this status (gRPC) / `ErrorDetail::Grpc` (in-process).
    Error(tonic::Status),
    /// Sleep, then answer normally (generalizes mocktikv `WithDelay`, MC-1.14.5).
    Delay(Duration),
    /// Block until the handle is released, then answer.
    Pause,
}

/// A PD injection rule: a method name (`"GetRegion"`, `"Tso"`, ...; `None` = every method),
/// an action and a firing policy (MC-3.6.1).
#[derive(Debug, Clone)]
pub struct PdRule {
    pub(crate) method: Option<String>,
    pub(crate) action: PdAction,
    pub(crate) policy: FirePolicy,
}

impl PdRule {
    /// A rule for one method (the gRPC method name, e.g. `"GetRegion"`), or all with `None`.
    pub fn new(method: Option<&str>, action: PdAction) -> PdRule {
        PdRule {
            method: method.map(str::to_owned),
            action,
            policy: FirePolicy::Always,
        }
    }
    /// Every call fails (`split_test.go` `mockPDClient.disable`).
    pub fn stopped() -> PdRule {
        PdRule::new(
            None,
            PdAction::Error(tonic::Status::unavailable("pd stopped")),
        )
    }
    /// The `mustLeader` failpoint: region and store calls fail with `Unavailable`.
    pub fn must_leader(method: &str) -> PdRule {
        PdRule::new(
            Some(method),
            PdAction::Error(tonic::Status::unavailable(format!(
                "mock {method}: not leader"
            ))),
        )
    }
    /// The `mockBatchScanRegionsUnimplemented` failpoint.
    pub fn batch_scan_regions_unimplemented() -> PdRule {
        PdRule::new(
            Some("BatchScanRegions"),
            PdAction::Error(tonic::Status::unimplemented("BatchScanRegions")),
        )
    }
    /// Fire according to `p`.
    #[must_use]
    pub fn policy(mut self, p: FirePolicy) -> PdRule {
        self.policy = p;
        self
    }
}

// ===== presets (§3.2, §3.3) =====

/// The mocktikv and `fpClient` failpoints as rules (MC-3.8.2).
#[derive(Debug)]
pub struct Preset;

fn region_err(msg: &str, f: impl FnOnce(&mut errorpb::Error)) -> errorpb::Error {
    let mut e = errorpb::Error {
        message: msg.to_owned(),
        ..Default::default()
    };
    f(&mut e);
    e
}

impl Preset {
    /// `rpcAllowedOnAlmostFull`: Prewrite/Commit without `AllowedOnAlmostFull` get
    /// `DiskFull {store_id: [1, 10]}`.
    pub fn allowed_on_almost_full() -> Rule {
        Rule::new(Action::region_error(region_err("disk almost full", |e| {
            e.disk_full = Some(errorpb::DiskFull {
                store_id: vec![1, 10],
                reason: "disk almost full".to_owned(),
            })
        })))
        .cmds(&[CmdType::Prewrite, CmdType::Commit])
        .request(|_, ctx| ctx.disk_full_opt() != kvrpcpb::DiskFullOpt::AllowedOnAlmostFull)
    }

    /// `rpcPrewriteResult`: `"notLeader"`, `"undeterminedResult"`, `"timeout"`,
    /// `"writeConflict"`.
    pub fn rpc_prewrite_result(value: &str) -> Rule {
        let action = match value {
            "notLeader" => Action::region_error(region_err("not leader", |e| {
                e.not_leader = Some(Default::default())
            })),
            "undeterminedResult" => Action::region_error(region_err("undetermined result", |e| {
                e.undetermined_result = Some(Default::default())
            })),
            "writeConflict" => Action::Respond(Arc::new(|_| {
                Some(CommandResponse::Prewrite(kvrpcpb::PrewriteResponse {
                    errors: vec![kvrpcpb::KeyError {
                        conflict: Some(Default::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }))
            })),
            _ => Action::Transport(
                TransportKind::Status(tonic::Code::Unknown),
                "timeout".into(),
            ),
        };
        Rule::new(action).cmds(&[CmdType::Prewrite])
    }

    /// `rpcCommitResult`: `"timeout"`, `"notLeader"`, `"keyError"`, `"undeterminedResult"`;
    /// the commit is not executed.
    pub fn rpc_commit_result(value: &str) -> Rule {
        let action = match value {
            "notLeader" => Action::region_error(region_err("not leader", |e| {
                e.not_leader = Some(Default::default())
            })),
            "undeterminedResult" => Action::region_error(region_err("undetermined result", |e| {
                e.undetermined_result = Some(Default::default())
            })),
            "keyError" => Action::Respond(Arc::new(|_| {
                Some(CommandResponse::Commit(kvrpcpb::CommitResponse {
                    error: Some(Default::default()),
                    ..Default::default()
                }))
            })),
            _ => Action::Transport(
                TransportKind::Status(tonic::Code::Unknown),
                "timeout".into(),
            ),
        };
        Rule::new(action).cmds(&[CmdType::Commit])
    }

    /// `rpcCommitTimeout` / `rpcPrewriteTimeout`: apply, then report "result undetermined".
    pub fn apply_then_undetermined(cmd: CmdType) -> Rule {
        Rule::new(Action::Rewrite(Arc::new(|_| {
            Err(tikv_layers::ErrorDetail::ResultUndetermined.into())
        })))
        .cmds(&[cmd])
        .phase(Phase::AfterExecute)
    }

    /// `rpcBatchGetResult` / `rpcScanResult` = `"keyError"`: a synthetic lock (primary = first
    /// key, lock version = version - 1, ttl 50, txn size 1).
    pub fn read_key_error(cmd: CmdType) -> Rule {
        Rule::new(Action::Respond(Arc::new(|c| {
            let (key, version) = match c {
                Command::BatchGet(r) => (r.keys.first().cloned().unwrap_or_default(), r.version),
                Command::Scan(r) => (r.start_key.clone(), r.version),
                _ => return None,
            };
            let err = kvrpcpb::KeyError {
                locked: Some(kvrpcpb::LockInfo {
                    primary_lock: key.clone(),
                    lock_version: version.saturating_sub(1),
                    key,
                    lock_ttl: 50,
                    txn_size: 1,
                    lock_type: kvrpcpb::Op::Put as i32,
                    ..Default::default()
                }),
                ..Default::default()
            };
            Some(match c {
                Command::BatchGet(_) => CommandResponse::BatchGet(kvrpcpb::BatchGetResponse {
                    error: Some(err),
                    ..Default::default()
                }),
                _ => CommandResponse::Scan(kvrpcpb::ScanResponse {
                    error: Some(err),
                    ..Default::default()
                }),
            })
        })))
        .cmds(&[cmd])
    }

    /// `BatchCopCancelled`.
    pub fn batch_cop_cancelled() -> Rule {
        Rule::new(Action::Transport(
            TransportKind::Cancelled,
            "canceled".into(),
        ))
        .cmds(&[CmdType::BatchCop])
    }

    /// `BatchCopRpcErr`: fires only for the given address.
    pub fn batch_cop_rpc_err(addr: &str) -> Rule {
        Rule::new(Action::Transport(
            TransportKind::Status(tonic::Code::Unknown),
            "rpc error".into(),
        ))
        .cmds(&[CmdType::BatchCop])
        .store(StoreMatch::Addr(addr.to_owned()))
    }
}

// ===== region error catalogue (MC-3.8.3) =====

/// Every region error kind the replica-selector tests enumerate (client-go
/// `replica_selector_test.go` `RegionErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RegionErrorType {
    NotLeader,
    NotLeaderWithNewLeader1,
    NotLeaderWithNewLeader2,
    NotLeaderWithNewLeader3,
    RegionNotFound,
    KeyNotInRegion,
    EpochNotMatch,
    ServerIsBusy,
    ServerIsBusyWithEstimatedWait,
    StaleCommand,
    StoreNotMatch,
    RaftEntryTooLarge,
    MaxTimestampNotSynced,
    ReadIndexNotReady,
    ProposalInMergingMode,
    DataIsNotReady,
    RegionNotInitialized,
    DiskFull,
    RecoveryInProgress,
    FlashbackInProgress,
    FlashbackNotPrepared,
    IsWitness,
    MismatchPeerId,
    BucketVersionNotMatch,
    UndeterminedResult,
    /// Not a region error: a transport-level deadline exceeded.
    DeadlineExceeded,
}

impl RegionErrorType {
    /// All variants, in catalogue order.
    pub const ALL: &'static [RegionErrorType] = &[
        Self::NotLeader,
        Self::NotLeaderWithNewLeader1,
        Self::NotLeaderWithNewLeader2,
        Self::NotLeaderWithNewLeader3,
        Self::RegionNotFound,
        Self::KeyNotInRegion,
        Self::EpochNotMatch,
        Self::ServerIsBusy,
        Self::ServerIsBusyWithEstimatedWait,
        Self::StaleCommand,
        Self::StoreNotMatch,
        Self::RaftEntryTooLarge,
        Self::MaxTimestampNotSynced,
        Self::ReadIndexNotReady,
        Self::ProposalInMergingMode,
        Self::DataIsNotReady,
        Self::RegionNotInitialized,
        Self::DiskFull,
        Self::RecoveryInProgress,
        Self::FlashbackInProgress,
        Self::FlashbackNotPrepared,
        Self::IsWitness,
        Self::MismatchPeerId,
        Self::BucketVersionNotMatch,
        Self::UndeterminedResult,
        Self::DeadlineExceeded,
    ];

    /// The `errorpb::Error` for this type (client-go `GenRegionError`); `None` for
    /// [`DeadlineExceeded`](Self::DeadlineExceeded), which is a transport error. `leader_on`
    /// maps store 1/2/3 to that store's peer for the `NotLeaderWithNewLeader*` kinds.
    pub fn generate(
        self,
        leader_on: impl Fn(u64) -> Option<metapb::Peer>,
    ) -> Option<errorpb::Error> {
        use RegionErrorType as T;
        let mut e = errorpb::Error::default();
        match self {
            T::NotLeader => e.not_leader = Some(Default::default()),
            T::NotLeaderWithNewLeader1
            | T::NotLeaderWithNewLeader2
            | T::NotLeaderWithNewLeader3 => {
                let store = match self {
                    T::NotLeaderWithNewLeader1 => 1,
                    T::NotLeaderWithNewLeader2 => 2,
                    _ => 3,
                };
                e.not_leader = Some(errorpb::NotLeader {
                    leader: leader_on(store),
                    ..Default::default()
                })
            }
            T::RegionNotFound => e.region_not_found = Some(Default::default()),
            T::KeyNotInRegion => e.key_not_in_region = Some(Default::default()),
            T::EpochNotMatch => e.epoch_not_match = Some(Default::default()),
            T::ServerIsBusy => e.server_is_busy = Some(Default::default()),
            T::ServerIsBusyWithEstimatedWait => {
                e.server_is_busy = Some(errorpb::ServerIsBusy {
                    estimated_wait_ms: 10,
                    ..Default::default()
                })
            }
            T::StaleCommand => e.stale_command = Some(Default::default()),
            T::StoreNotMatch => e.store_not_match = Some(Default::default()),
            T::RaftEntryTooLarge => e.raft_entry_too_large = Some(Default::default()),
            T::MaxTimestampNotSynced => e.max_timestamp_not_synced = Some(Default::default()),
            T::ReadIndexNotReady => e.read_index_not_ready = Some(Default::default()),
            T::ProposalInMergingMode => e.proposal_in_merging_mode = Some(Default::default()),
            T::DataIsNotReady => e.data_is_not_ready = Some(Default::default()),
            T::RegionNotInitialized => e.region_not_initialized = Some(Default::default()),
            T::DiskFull => e.disk_full = Some(Default::default()),
            T::RecoveryInProgress => e.recovery_in_progress = Some(Default::default()),
            T::FlashbackInProgress => e.flashback_in_progress = Some(Default::default()),
            T::FlashbackNotPrepared => e.flashback_not_prepared = Some(Default::default()),
            T::IsWitness => e.is_witness = Some(Default::default()),
            T::MismatchPeerId => e.mismatch_peer_id = Some(Default::default()),
            T::BucketVersionNotMatch => e.bucket_version_not_match = Some(Default::default()),
            T::UndeterminedResult => e.undetermined_result = Some(Default::default()),
            T::DeadlineExceeded => return None,
        }
        Some(e)
    }

    /// Whether a store can legitimately return this error for a leader read, a replica read
    /// or a stale read (client-go `RegionErrorType.Valid`).
    pub fn valid(self, replica_read: bool, stale_read: bool) -> bool {
        use RegionErrorType as T;
        match self {
            T::DataIsNotReady => stale_read,
            T::NotLeader
            | T::NotLeaderWithNewLeader1
            | T::NotLeaderWithNewLeader2
            | T::NotLeaderWithNewLeader3 => !replica_read || stale_read,
            T::ReadIndexNotReady => replica_read && !stale_read,
            _ => true,
        }
    }
}

// ===== request log (MC-3.8.5) =====

/// How a request ended, coarsely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response without region error.
    Ok,
    /// A response carrying a region error (its message).
    RegionError(String),
    /// A transport-level failure (its display text).
    Transport(String),
}

/// One request the TiKV face saw.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Mock-clock milliseconds when the request arrived.
    pub time_ms: u64,
    /// The address it was sent to.
    pub addr: String,
    /// The serving store (0 when the address did not resolve).
    pub store_id: u64,
    /// The command kind.
    pub cmd_type: CmdType,
    /// The request's context.
    pub context: kvrpcpb::Context,
    /// The request itself.
    pub request: Command,
    /// How it ended.
    pub outcome: Outcome,
}

/// A bounded request log.
#[derive(Debug)]
pub(crate) struct RequestLog {
    cap: usize,
    entries: Mutex<VecDeque<LogEntry>>,
}

impl RequestLog {
    pub(crate) fn new(cap: usize) -> RequestLog {
        RequestLog {
            cap,
            entries: Mutex::new(VecDeque::new()),
        }
    }
    pub(crate) fn push(&self, e: LogEntry) {
        let mut q = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.cap {
            q.pop_front();
        }
        q.push_back(e);
    }
    pub(crate) fn snapshot(&self) -> Vec<LogEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
