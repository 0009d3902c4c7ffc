//! Ports of client-go's `internal/locate/replica_selector_test.go` (T-REQUEST-049 ..
//! T-REQUEST-074): the replica selector driven directly, and the access-path case tables
//! (`TestReplicaReadAccessPathBy*Case`) run through the region send loop.
//!
//! client-go's tables exercise `RegionRequestSender.SendReqCtx` over a scripted RPC client
//! (`fnClient`): the i-th attempt gets the i-th scripted error, later attempts succeed. The
//! Rust unit under test is the same one: the send-loop segment of the default pipeline
//! (`retry → route → replica → timeout`, see `src/pipeline.rs`) over the caches of
//! `env.cluster`, ending in [`Scripted`], this file's terminal service. The request-level
//! layers (`shard`, `resolve_lock`, ...) are left out on purpose: `shard` re-sends pieces
//! that come back with region errors, which client-go's callers do, not its sender.
//!
//! Failpoints map as follows:
//! - `fastBackoffBySkipSleep`: paused tokio time (sleeps are counted, but cost nothing);
//! - `skipStoreCheckUntilHealth`: `StoreCache::set_health_check_loop_enabled(false)`;
//! - `RegionCacheNoHealthTick`: a store refresh interval far beyond any test's virtual time;
//! - `injectConstantLiveness(reachable|unreachable)`: a constant [`FnProber`];
//! - `randIntn = 0`: `ReplicaLayer::deterministic(true)` (first of equal scores).
//!
//! Paths are written `s1/L` (leader read on store1), `s2/R` (replica read), `s1/S` (stale
//! read) and `s2→s1/L` (sent to store2, forwarded to store1: client-go's
//! `{addr: store2, ..., forward_addr: store1}`).
//!
//! Not here: T-REQUEST-050 (next-gen builds only; this crate has no next-gen flavour),
//! T-REQUEST-051 and T-REQUEST-074 (they call the selector's private score function and
//! flag constants, which only the replica layer's own unit tests can reach).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tikv::config::Config;
use tikv::layers::backoff::{Backoffer, SharedBackoffer};
use tikv::layers::classify::is_fake_region_error;
use tikv::layers::locate::{
    InvalidReason, Liveness, RegionLocator, RegionSnapshot, RegionVerId, StoreResolver,
};
use tikv::layers::replica::{
    ReadFlags, RegionServices, ReplicaLayer, ReplicaSelector, ReplicaState, SelectorConfig,
    SelectorOptions, SelectorSlot,
};
use tikv::layers::retry::RetryLayer;
use tikv::layers::route::RouteLayer;
use tikv::layers::timeout::TimeoutLayer;
use tikv::layers::{CmdType, Error, ErrorDetail, ReplicaReadType, RpcRequest, RpcResponse};
use tikv::mock::RegionErrorType as E;
use tikv::proto::{errorpb, kvrpcpb, metapb};
use tikv::region_cache::RegionCache;
use tikv::store_cache::{FnProber, ProbeTarget, StoreCache};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::common::Env;

// ===== the scripted terminal (client-go's `fnClient` in `replicaSelectorAccessPathCase.run`) =====

/// What the scripted terminal saw and decided during one call.
#[derive(Default)]
struct Script {
    /// The error of the i-th attempt; attempts past the end succeed.
    errs: Vec<E>,
    /// Every attempt, as `s<addr>/<L|R|S>` (`s<proxy>→s<target>/<kind>` when forwarded).
    path: Vec<String>,
    /// `max_execution_duration_ms` of every attempt.
    max_exec_ms: Vec<u64>,
    /// Scripted errors a store could not have returned for the attempt (client-go's
    /// `accessErrInValid`): a case that hits one is itself wrong.
    invalid: Vec<String>,
    /// The call's selector slot, taken from the first attempt's extensions.
    slot: Option<SelectorSlot>,
    /// How long each answer takes (the read-timeout test's slow server).
    delay: Duration,
}

/// The terminal service: records each attempt, answers the scripted error or success.
#[derive(Clone)]
struct Scripted {
    script: Arc<Mutex<Script>>,
    stores: StoreCache,
    mock: tikv::mock::Cluster,
    region: u64,
}

/// `store7` → `s7`.
fn short_addr(addr: &str) -> String {
    format!("s{}", addr.strip_prefix("store").unwrap_or(addr))
}

/// client-go's `RegionErrorType.Valid`: whether a store can return `tp` to an attempt with
/// these flags, sent to (or forwarded to) `addr`.
fn valid(tp: E, addr: &str, replica_read: bool, stale_read: bool) -> bool {
    let not_leader = matches!(
        tp,
        E::NotLeader
            | E::NotLeaderWithNewLeader1
            | E::NotLeaderWithNewLeader2
            | E::NotLeaderWithNewLeader3
    );
    // Only stale reads see DataIsNotReady; replica and stale reads never see NotLeader.
    if !stale_read && tp == E::DataIsNotReady {
        return false;
    }
    if (replica_read || stale_read) && not_leader {
        return false;
    }
    // A store does not name itself as the new leader.
    !matches!(
        (addr, tp),
        ("store1", E::NotLeaderWithNewLeader1)
            | ("store2", E::NotLeaderWithNewLeader2)
            | ("store3", E::NotLeaderWithNewLeader3)
    )
}

impl tower::Service<RpcRequest> for Scripted {
    type Response = RpcResponse;
    type Error = Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<RpcResponse, Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let (replica, stale) = (req.context.replica_read, req.context.stale_read);
        let kind = if stale {
            "S"
        } else if replica {
            "R"
        } else {
            "L"
        };
        // The store the attempt is really for: the forwarded host when proxied.
        let target_addr = req
            .target
            .forwarded_host
            .clone()
            .unwrap_or_else(|| req.target.addr.clone());
        let entry = match &req.target.forwarded_host {
            Some(host) => format!(
                "{}→{}/{kind}",
                short_addr(&req.target.addr),
                short_addr(host)
            ),
            None => format!("{}/{kind}", short_addr(&req.target.addr)),
        };
        let (step, delay) = {
            let mut s = self.script.lock().unwrap();
            if s.slot.is_none() {
                s.slot = req.selector_slot().cloned();
            }
            let idx = s.path.len();
            s.path.push(entry.clone());
            s.max_exec_ms.push(req.context.max_execution_duration_ms);
            let step = s.errs.get(idx).copied();
            if let Some(tp) = step
                && !valid(tp, &target_addr, replica, stale)
            {
                s.invalid.push(format!("{tp:?} at attempt {idx} ({entry})"));
            }
            (step, s.delay)
        };
        let answer = match step {
            None => Ok(None),
            Some(E::DeadlineExceeded) => {
                // client-go injects unreachable liveness for every store with the error.
                self.stores
                    .set_prober(Arc::new(FnProber(|_: &ProbeTarget| Liveness::Unreachable)));
                Err(Error::new(ErrorDetail::AttemptTimeout {
                    addr: req.target.addr.clone(),
                }))
            }
            Some(tp) => {
                let peers = self
                    .mock
                    .get_region(self.region)
                    .map(|(r, _)| r.peers)
                    .unwrap_or_default();
                let mut e = tp
                    .generate(|store| peers.iter().find(|p| p.store_id == store).copied())
                    .expect("a region error kind");
                if let Some(nl) = e.not_leader.as_mut() {
                    nl.region_id = self.region;
                }
                Ok(Some(e))
            }
        };
        let cmd = req.cmd.clone();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match answer? {
                Some(e) => Ok(RpcResponse::new(cmd.region_error_response(e)?)),
                None => match cmd.cmd_type() {
                    CmdType::Prewrite => Ok(RpcResponse::new(kvrpcpb::PrewriteResponse::default())),
                    _ => Ok(RpcResponse::new(kvrpcpb::GetResponse {
                        value: b"hello world".to_vec(),
                        ..Default::default()
                    })),
                },
            }
        })
    }
}

// ===== the suite (client-go's `testReplicaSelectorSuite`) =====

/// Three stores labelled `id=<id>`, one region led by store 1, the client's caches over
/// them, and the send loop over [`Scripted`].
struct Suite {
    env: Env,
    /// client-go's `RegionCache.enableForwarding`.
    forwarding: bool,
}

impl Suite {
    async fn new() -> Suite {
        // No health ticks during the test (client-go's `RegionCacheNoHealthTick`).
        let config =
            Config::default().with_stores_refresh_interval(Duration::from_secs(1000 * 86_400));
        let env = Env::with_config(3, config).await;
        env.cluster
            .store_cache()
            .set_health_check_loop_enabled(false);
        let s = Suite {
            env,
            forwarding: false,
        };
        // The assumptions every case relies on (client-go's `SetupTest` checks).
        let rc = s.region().await;
        assert_eq!(rc.leader().map(|p| p.store_id), Some(1));
        assert_eq!(rc.tikv_count(), 3);
        for &i in rc.tikv_peers.iter() {
            let store = rc.region.peers[i].store_id;
            let snap = s.stores().cached_store(store).expect("resolved store");
            assert_eq!(snap.labels[0].key, "id");
            assert_eq!(snap.labels[0].value, store.to_string());
        }
        s
    }

    fn locator(&self) -> &RegionCache {
        self.env.cluster.region_cache()
    }

    fn stores(&self) -> &StoreCache {
        self.env.cluster.store_cache()
    }

    fn services(&self) -> RegionServices {
        RegionServices {
            locator: Arc::new(self.locator().clone()),
            stores: Arc::new(self.stores().clone()),
        }
    }

    /// The region of `"key"`, reloaded when invalid (client-go's `getRegion`).
    async fn region(&self) -> Arc<RegionSnapshot> {
        self.locator().locate_key(b"key").await.unwrap()
    }

    /// Whether the region version is cached and valid (client-go's `Region.isValid`).
    fn is_valid(&self, ver: &RegionVerId) -> bool {
        self.locator().cached_region(ver).is_some()
    }

    /// The leader store of the cached region object of `ver`, valid or not.
    fn leader_store(&self, ver: &RegionVerId) -> u64 {
        self.locator()
            .cached_region_any(ver)
            .and_then(|r| r.leader().map(|p| p.store_id))
            .unwrap_or(0)
    }

    /// The peer of the test region on `store`.
    fn peer_on(&self, store: u64) -> metapb::Peer {
        let (region, _) = self.env.mock.cluster().get_region(self.env.region).unwrap();
        region
            .peers
            .into_iter()
            .find(|p| p.store_id == store)
            .unwrap()
    }

    /// Moves the leader in the mock cluster and drops the cached region
    /// (`changeRegionLeader`).
    async fn change_region_leader(&self, store: u64) {
        let rc = self.region().await;
        let peer = self.peer_on(store);
        self.env
            .mock
            .cluster()
            .change_leader(self.env.region, peer.id)
            .unwrap();
        self.locator()
            .invalidate_region(&rc.ver, InvalidReason::Other);
    }

    /// Undoes what earlier cases did to the stores (client-go's `resetStoreState`):
    /// reachable liveness, no load stats, no slow scores, resolved, and a reload of the
    /// region when its store epochs are behind.
    async fn reset_store_state(&self) {
        let stores = self.stores();
        stores.set_prober(Arc::new(FnProber(|_: &ProbeTarget| Liveness::Reachable)));
        let rc = self.region().await;
        let now = Instant::now();
        for p in rc.region.peers.iter() {
            let Some(store) = stores.get(p.store_id) else {
                continue;
            };
            store.update_server_load_stats(0);
            store.health().client_side().reset();
            // client-go's `ResetTiKVServerSideSlowScoreForTest(1)`: dated in the past so a
            // later update is not dropped as too frequent.
            store
                .health()
                .set_tikv_last_update(now.checked_sub(Duration::from_secs(2)).unwrap());
            store
                .health()
                .update_tikv_side(1, now.checked_sub(Duration::from_secs(1)).unwrap());
            store.health().update_slow_flag();
            stores.set_liveness(p.store_id, Liveness::Reachable);
        }
        // Stores left in need-check by an earlier case are resolved again.
        stores.check_and_resolve(false).await;
        for &i in rc.tikv_peers.iter() {
            let store = rc.region.peers[i].store_id;
            let epoch = stores.get(store).map(|s| s.epoch());
            if Some(rc.store_epochs[i]) != epoch {
                self.locator()
                    .invalidate_region(&rc.ver, InvalidReason::EpochNotMatch);
                break;
            }
        }
    }

    /// Marks store 1 slow on the TiKV side (client-go's
    /// `updateTiKVServerSideSlowScore(100, now)`).
    fn mark_store1_slow_on_tikv_side(&self) {
        let store = self.stores().get(1).unwrap();
        store.health().update_tikv_side(100, Instant::now());
        assert!(store.health().is_slow());
    }

    /// A selector for the current region, as `newReplicaSelector` builds it.
    async fn selector(&self, flags: ReadFlags, opts: SelectorOptions) -> Option<ReplicaSelector> {
        let rc = self.region().await;
        ReplicaSelector::new(
            self.services(),
            rc.ver,
            CmdType::Get,
            flags,
            opts,
            SelectorConfig {
                enable_forwarding: self.forwarding,
                deterministic: true,
            },
        )
    }

    /// The send loop over `terminal` (client-go's `RegionRequestSender`).
    fn sender(&self, terminal: Scripted) -> BoxCloneSyncService<RpcRequest, RpcResponse, Error> {
        let svc = self.services();
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(RetryLayer::new(svc.clone()))
                .layer(RouteLayer::new(svc.locator.clone()))
                .layer(
                    ReplicaLayer::new(svc)
                        .forwarding(self.forwarding)
                        .deterministic(true),
                )
                .layer(TimeoutLayer::new())
                .service(terminal),
        )
    }

    fn scripted(&self, errs: Vec<E>) -> (Scripted, Arc<Mutex<Script>>) {
        let script = Arc::new(Mutex::new(Script {
            errs,
            ..Script::default()
        }));
        let t = Scripted {
            script: script.clone(),
            stores: self.stores().clone(),
            mock: self.env.mock.cluster().clone(),
            region: self.env.region,
        };
        (t, script)
    }

    /// Runs one case (client-go's `replicaSelectorAccessPathCase.run` + `recordResult`).
    async fn run(&self, ca: &Case) -> Run {
        let (terminal, script) = self.scripted(ca.errs.clone());
        let mut req = match ca.cmd {
            CmdType::Prewrite => RpcRequest::new(kvrpcpb::PrewriteRequest::default()),
            _ => RpcRequest::new(kvrpcpb::GetRequest {
                key: b"key".to_vec(),
                ..Default::default()
            }),
        };
        if ca.stale {
            req.enable_stale_read();
        } else {
            req.set_replica_read(ca.read);
        }
        req.context.busy_threshold_ms = ca.busy_threshold_ms;
        if let Some(v) = ca.label {
            req.options.match_labels = vec![metapb::StoreLabel {
                key: "id".into(),
                value: v.into(),
            }];
        }
        // client-go's `ReadTimeoutShort` when the case gives none.
        req.options.timeout = Some(if ca.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            ca.timeout
        });
        if ca.keep_store_state {
            // beforeRun: nothing.
        } else {
            self.reset_store_state().await;
        }
        let rc = self.region().await;
        req.target.region = Some(rc.clone());
        let bo = SharedBackoffer::new(Backoffer::new(40_000));
        req.backoffer = bo.clone();
        let result = self.sender(terminal).oneshot(req).await;
        let region_valid = self.is_valid(&rc.ver);
        let s = script.lock().unwrap();
        let run = Run {
            path: s.path.clone(),
            result,
            bo,
            region_valid,
            ver: rc.ver,
            slot: s.slot.clone(),
            invalid: s.invalid.clone(),
        };
        drop(s);
        if !ca.keep_region {
            // afterRun: the selector invalidates its region for the next case.
            self.locator()
                .invalidate_region(&rc.ver, InvalidReason::Other);
        }
        run
    }

    /// Runs a case and compares with its expectation (`runCaseAndCompare`).
    async fn check(&self, ca: Case) -> Run {
        let run = self.run(&ca).await;
        run.assert(&ca);
        run
    }

    /// Runs cases in order (`runMultiCaseAndCompare`).
    async fn check_all(&self, cases: Vec<Case>) {
        for ca in cases {
            self.check(ca).await;
        }
    }
}

// ===== cases (client-go's `replicaSelectorAccessPathCase` and `accessPathResult`) =====

/// The error the call ends with (client-go's `respErr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespErr {
    None,
    /// "region 0 is not prepared for the flashback".
    FlashbackNotPrepared,
    /// "region 0 is in flashback progress, FlashbackStartTS is 0".
    FlashbackInProgress,
    /// The `RaftEntryTooLarge` region error itself.
    RaftEntryTooLarge,
}

/// What a case expects.
#[derive(Debug, Clone)]
struct Expect {
    path: Vec<String>,
    resp_err: RespErr,
    region_err: Option<errorpb::Error>,
    /// `"<kind>+<times>"`, sorted; the total count is their sum.
    backoff: Vec<String>,
    region_valid: bool,
}

/// client-go's `fakeEpochNotMatch`: the pseudo error answered when no replica is left.
fn fake_epoch_not_match() -> errorpb::Error {
    errorpb::Error {
        epoch_not_match: Some(errorpb::EpochNotMatch::default()),
        ..Default::default()
    }
}

/// The region error a kind generates (client-go's `GenRegionError`).
fn gen_region_error(tp: E) -> errorpb::Error {
    tp.generate(|_| None).expect("a region error kind")
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl Expect {
    /// Success along `path`, no backoff, region still valid.
    fn ok(path: &[&str]) -> Expect {
        Expect {
            path: strs(path),
            resp_err: RespErr::None,
            region_err: None,
            backoff: Vec::new(),
            region_valid: true,
        }
    }

    fn backoff(mut self, detail: &[&str]) -> Expect {
        self.backoff = strs(detail);
        self
    }

    /// Ends with the pseudo `EpochNotMatch`.
    fn fake(mut self) -> Expect {
        self.region_err = Some(fake_epoch_not_match());
        self
    }

    fn region_err(mut self, e: errorpb::Error) -> Expect {
        self.region_err = Some(e);
        self
    }

    fn err(mut self, e: RespErr) -> Expect {
        self.resp_err = e;
        self
    }

    fn invalid(mut self) -> Expect {
        self.region_valid = false;
        self
    }

    fn valid(mut self, v: bool) -> Expect {
        self.region_valid = v;
        self
    }
}

/// One access-path case.
#[derive(Debug, Clone)]
struct Case {
    cmd: CmdType,
    read: ReplicaReadType,
    stale: bool,
    timeout: Duration,
    busy_threshold_ms: u32,
    /// The `id` label value to match.
    label: Option<&'static str>,
    errs: Vec<E>,
    expect: Expect,
    /// client-go's no-op `beforeRun` (keep the store state of the previous case).
    keep_store_state: bool,
    /// client-go's no-op `afterRun` (keep the region cached and valid).
    keep_region: bool,
}

fn case(cmd: CmdType, read: ReplicaReadType, errs: &[E], expect: Expect) -> Case {
    Case {
        cmd,
        read,
        stale: false,
        timeout: Duration::ZERO,
        busy_threshold_ms: 0,
        label: None,
        errs: errs.to_vec(),
        expect,
        keep_store_state: false,
        keep_region: false,
    }
}

/// A `Get` read of type `read`.
fn get(read: ReplicaReadType, errs: &[E], expect: Expect) -> Case {
    case(CmdType::Get, read, errs, expect)
}

/// A `Get` stale read (mixed replica read).
fn stale(errs: &[E], expect: Expect) -> Case {
    let mut c = case(CmdType::Get, ReplicaReadType::Mixed, errs, expect);
    c.stale = true;
    c
}

/// A `Prewrite` (leader only).
fn prewrite(errs: &[E], expect: Expect) -> Case {
    case(CmdType::Prewrite, ReplicaReadType::Leader, errs, expect)
}

impl Case {
    fn label(mut self, v: &'static str) -> Case {
        self.label = Some(v);
        self
    }

    fn timeout(mut self, d: Duration) -> Case {
        self.timeout = d;
        self
    }

    fn busy_threshold(mut self, ms: u32) -> Case {
        self.busy_threshold_ms = ms;
        self
    }

    fn keep_store_state(mut self) -> Case {
        self.keep_store_state = true;
        self
    }

    fn keep_region(mut self) -> Case {
        self.keep_region = true;
        self
    }
}

/// One call's result (client-go's `accessPathResult` plus the sender).
struct Run {
    path: Vec<String>,
    result: Result<RpcResponse, Error>,
    bo: SharedBackoffer,
    region_valid: bool,
    ver: RegionVerId,
    slot: Option<SelectorSlot>,
    invalid: Vec<String>,
}

impl Run {
    /// `"<kind>+<times>"` of every kind that backed off, sorted.
    fn backoff_detail(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .bo
            .with(|b| b.backoff_times())
            .into_iter()
            .map(|(k, n)| format!("{k}+{n}"))
            .collect();
        v.sort();
        v
    }

    fn backoff_count(&self) -> u64 {
        self.bo.with(|b| b.total_backoff_times())
    }

    /// The call's selector, as it ended (client-go's `sender.replicaSelector`).
    fn selector(&self) -> ReplicaSelector {
        self.slot
            .as_ref()
            .and_then(SelectorSlot::take)
            .expect("the call built a selector")
    }

    /// client-go's `checkResult`.
    fn assert(&self, ca: &Case) {
        let msg = format!(
            "case: {ca:#?}\npath: {:?}\nresult: {:?}\nbackoff: {:?}\nregion valid: {}",
            self.path,
            self.result,
            self.backoff_detail(),
            self.region_valid
        );
        assert!(
            self.invalid.is_empty(),
            "invalid scripted errors {:?}\n{msg}",
            self.invalid
        );
        let e = &ca.expect;
        assert_eq!(self.path, e.path, "access path\n{msg}");
        match (&self.result, e.resp_err) {
            (Ok(resp), RespErr::None) => {
                assert_eq!(
                    resp.region_error(),
                    e.region_err.as_ref(),
                    "region error\n{msg}"
                );
            }
            (Ok(_), want) => panic!("want error {want:?}\n{msg}"),
            (Err(err), RespErr::FlashbackNotPrepared) => {
                assert!(
                    matches!(err.detail(), ErrorDetail::RegionFlashbackNotPrepared),
                    "{msg}"
                );
                assert_eq!(
                    std::error::Error::source(err)
                        .map(|s| s.to_string())
                        .as_deref(),
                    Some("region 0 is not prepared for the flashback"),
                    "{msg}"
                );
            }
            (Err(err), RespErr::FlashbackInProgress) => {
                assert!(
                    matches!(err.detail(), ErrorDetail::RegionFlashbackInProgress),
                    "{msg}"
                );
                assert_eq!(
                    std::error::Error::source(err)
                        .map(|s| s.to_string())
                        .as_deref(),
                    Some("region 0 is in flashback progress, FlashbackStartTS is 0"),
                    "{msg}"
                );
            }
            (Err(err), RespErr::RaftEntryTooLarge) => {
                assert_eq!(
                    err.region_error(),
                    Some(&gen_region_error(E::RaftEntryTooLarge)),
                    "{msg}"
                );
            }
            (Err(_), RespErr::None) => panic!("unexpected error\n{msg}"),
        }
        assert_eq!(self.region_valid, e.region_valid, "region validity\n{msg}");
        let want_count: u64 = e
            .backoff
            .iter()
            .map(|d| d.rsplit('+').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(self.backoff_count(), want_count, "backoff count\n{msg}");
        assert_eq!(self.backoff_detail(), e.backoff, "backoff detail\n{msg}");
    }
}

/// A replica's private flags as its `Debug` output shows them (the selector keeps them
/// private; client-go's tests read `replica.flags` directly).
fn replica_flags(r: &ReplicaState) -> u8 {
    let dbg = format!("{r:?}");
    let tail = dbg
        .rsplit("flags: ")
        .next()
        .expect("Replica's Debug prints its flags");
    tail.trim_end_matches([' ', '}'])
        .parse()
        .expect("flags are a number")
}

/// client-go's `suspectNotLeaderFlag` (the fifth replica flag bit).
const SUSPECT_NOT_LEADER_FLAG: u8 = 1 << 4;

fn has_suspect_flag(r: &ReplicaState) -> bool {
    replica_flags(r) & SUSPECT_NOT_LEADER_FLAG != 0
}

const SEC: Duration = Duration::from_secs(1);
const LEADER: ReplicaReadType = ReplicaReadType::Leader;
const FOLLOWER: ReplicaReadType = ReplicaReadType::Follower;
const MIXED: ReplicaReadType = ReplicaReadType::Mixed;
const LEARNER: ReplicaReadType = ReplicaReadType::Learner;
const PREFER_LEADER: ReplicaReadType = ReplicaReadType::PreferLeader;

// ===== tests =====

// The `*UsingAsyncAPI` variants run the same cases through client-go's async send path;
// Rust has one async path, so they share the test of their synchronous twin.
// client-go: T-REQUEST-055 TestReplicaReadAccessPathByCaseUsingAsyncAPI
// client-go: T-REQUEST-054 TestReplicaReadAccessPathByCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_case() {
    use E::*;
    let s = Suite::new().await;
    s.check(stale(
        &[DataIsNotReady, ServerIsBusy],
        Expect::ok(&["s1/S", "s2/R", "s3/R"]),
    ))
    .await;
    // Stale read with a label: the leader is retried with a leader read.
    s.check(stale(&[DataIsNotReady], Expect::ok(&["s2/S", "s1/L"])).label("2"))
        .await;
    s.check(
        stale(
            &[DataIsNotReady, ServerIsBusy],
            Expect::ok(&["s2/S", "s1/L", "s2/S"]),
        )
        .label("2"),
    )
    .await;
    // The new leader named by NotLeader is retried.
    s.check(
        stale(
            &[DataIsNotReady, NotLeaderWithNewLeader2],
            Expect::ok(&["s2/S", "s1/L", "s2/L"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    // store2 timed out, so it is not retried even as the new leader.
    s.check(
        stale(
            &[DeadlineExceeded, NotLeaderWithNewLeader2],
            Expect::ok(&["s2/S", "s1/L", "s3/S"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    s.check(get(LEADER, &[DeadlineExceeded], Expect::ok(&["s1/L", "s2/R"])).timeout(SEC))
        .await;
    s.check(
        get(
            LEADER,
            &[NotLeaderWithNewLeader3, DeadlineExceeded],
            Expect::ok(&["s1/L", "s3/L", "s2/R"]),
        )
        .timeout(SEC),
    )
    .await;
    // The read timeout does not apply to writes: store3 is probed unreachable and the
    // remaining replica is tried after a tikvRPC backoff.
    s.check(
        prewrite(
            &[NotLeaderWithNewLeader3, DeadlineExceeded],
            Expect::ok(&["s1/L", "s3/L", "s2/L"]).backoff(&["tikvRPC+1"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[NotLeader, DeadlineExceeded, NotLeaderWithNewLeader2],
            Expect::ok(&["s1/L", "s2/L", "s3/L"])
                .fake()
                .backoff(&["regionScheduling+1"]),
        )
        .timeout(SEC),
    )
    .await;
    // The region is not invalidated when the leader met a deadline error.
    s.check(
        stale(
            &[DeadlineExceeded, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s1/S", "s2/S", "s3/S"])
                .fake()
                .backoff(&["tikvServerBusy+1"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        get(
            MIXED,
            &[ServerIsBusy, ServerIsBusy, DeadlineExceeded],
            Expect::ok(&["s1/L", "s2/R", "s3/R"])
                .fake()
                .backoff(&["tikvServerBusy+1"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        stale(
            &[ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s3/S", "s1/L", "s2/S"]),
        )
        .label("3"),
    )
    .await;
    s.check(
        stale(
            &[DataIsNotReady, ServerIsBusy, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s2/S", "s1/L", "s2/S", "s3/S"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .label("2"),
    )
    .await;

    s.change_region_leader(2).await;
    s.check(stale(
        &[DataIsNotReady, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/S", "s2/L", "s3/S", "s1/S"]),
    ))
    .await;
    s.check(stale(
        &[DataIsNotReady, ServerIsBusy, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/S", "s2/L", "s3/S", "s1/S"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.change_region_leader(1).await;

    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/R", "s1/L", "s3/R"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    s.check(
        stale(
            &[ServerIsBusy, ServerIsBusyWithEstimatedWait],
            Expect::ok(&["s1/S", "s2/S", "s3/S"]),
        )
        .timeout(Duration::from_micros(100)),
    )
    .await;

    s.change_region_leader(3).await;
    s.check(get(
        MIXED,
        &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/R", "s2/R", "s3/L"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.check(get(
        PREFER_LEADER,
        &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s3/L", "s1/R", "s2/R"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.check(
        get(
            PREFER_LEADER,
            &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s2/R", "s3/L", "s1/R"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .label("2"),
    )
    .await;
    s.change_region_leader(1).await;
}

// client-go: T-REQUEST-057 TestReplicaReadAccessPathByCase2UsingAsyncAPI
// client-go: T-REQUEST-056 TestReplicaReadAccessPathByCase2
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_case2() {
    use E::*;
    let s = Suite::new().await;
    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, DiskFull, FlashbackNotPrepared],
            Expect::ok(&["s2/R", "s1/L", "s3/R"])
                .err(RespErr::FlashbackNotPrepared)
                .backoff(&["tikvDiskFull+1"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    // The region is not invalidated when the leader met a deadline error.
    s.check(
        get(
            LEADER,
            &[NotLeader, NotLeaderWithNewLeader3, DeadlineExceeded],
            Expect::ok(&["s1/L", "s2/L", "s3/L"])
                .fake()
                .backoff(&["regionScheduling+1"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        get(
            MIXED,
            &[ServerIsBusy, ServerIsBusy, DeadlineExceeded],
            Expect::ok(&["s1/L", "s2/R", "s3/R"])
                .fake()
                .backoff(&["tikvServerBusy+1"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        stale(
            &[DataIsNotReady, NotLeader],
            Expect::ok(&["s3/S", "s1/L", "s3/R"]).backoff(&["regionScheduling+1"]),
        )
        .label("3"),
    )
    .await;
    s.check(
        get(MIXED, &[FlashbackInProgress], Expect::ok(&["s2/R", "s1/L"]))
            .timeout(SEC)
            .label("2"),
    )
    .await;
    // The leader is not retried with a leader read: it never answers DataIsNotReady, and
    // a leader read there could meet NotLeader.
    s.check(
        stale(
            &[DataIsNotReady, ServerIsBusy],
            Expect::ok(&["s1/S", "s2/R", "s3/R"]),
        )
        .timeout(Duration::from_micros(100))
        .label("1"),
    )
    .await;
    s.check(prewrite(
        &[
            DeadlineExceeded,
            NotLeader,
            NotLeaderWithNewLeader2,
            ServerIsBusy,
            DeadlineExceeded,
        ],
        Expect::ok(&["s1/L", "s2/L", "s3/L", "s2/L", "s2/L"])
            .fake()
            .backoff(&["regionScheduling+1", "tikvRPC+2", "tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.check(stale(
        &[DeadlineExceeded, RegionNotInitialized, DeadlineExceeded],
        Expect::ok(&["s1/S", "s2/R", "s3/R"])
            .fake()
            .backoff(&["regionNotInitialized+1", "tikvRPC+2"])
            .invalid(),
    ))
    .await;
    s.check(
        stale(
            &[DeadlineExceeded, NotLeaderWithNewLeader2],
            Expect::ok(&["s2/S", "s1/L", "s3/S"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/R", "s1/L", "s3/R"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;

    s.change_region_leader(2).await;
    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s3/R", "s2/L", "s1/R"]),
        )
        .timeout(SEC)
        .label("3"),
    )
    .await;
    s.change_region_leader(1).await;

    s.check(
        get(
            LEADER,
            &[NotLeader, DeadlineExceeded, NotLeaderWithNewLeader2],
            Expect::ok(&["s1/L", "s2/L", "s3/L"])
                .fake()
                .backoff(&["regionScheduling+1"]),
        )
        .timeout(SEC),
    )
    .await;
}

// client-go: T-REQUEST-059 TestReplicaReadAccessPathByBasicCaseUsingAsyncAPI
// client-go: T-REQUEST-058 TestReplicaReadAccessPathByBasicCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_basic_case() {
    use E::*;
    let s = Suite::new().await;
    let retryable = [
        ServerIsBusy,
        ServerIsBusyWithEstimatedWait,
        StaleCommand,
        MaxTimestampNotSynced,
        ProposalInMergingMode,
        ReadIndexNotReady,
        RegionNotInitialized,
        DiskFull,
    ];
    let no_retry = [
        RegionNotFound,
        KeyNotInRegion,
        EpochNotMatch,
        StoreNotMatch,
        RaftEntryTooLarge,
        RecoveryInProgress,
        FlashbackNotPrepared,
        IsWitness,
        MismatchPeerId,
        BucketVersionNotMatch,
    ];
    for cmd in [CmdType::Get, CmdType::Prewrite] {
        for read in [LEADER, FOLLOWER, MIXED, PREFER_LEADER] {
            // Writes are leader-only.
            if cmd == CmdType::Prewrite && read != LEADER {
                continue;
            }
            for is_stale in [false, true] {
                // Stale reads are mixed reads.
                if is_stale && read != MIXED {
                    continue;
                }
                let mk = |errs: &[E], expect: Expect| {
                    let mut c = case(cmd, read, errs, expect);
                    c.stale = is_stale;
                    c
                };
                for tp in retryable {
                    let mut backoff: Vec<&str> = match tp {
                        ServerIsBusy | ServerIsBusyWithEstimatedWait if read == LEADER => {
                            vec!["tikvServerBusy+1"]
                        }
                        DiskFull => vec!["tikvDiskFull+1"],
                        RegionNotInitialized => vec!["regionNotInitialized+1"],
                        ReadIndexNotReady | ProposalInMergingMode => vec!["regionScheduling+1"],
                        MaxTimestampNotSynced => vec!["maxTsNotSynced+1"],
                        _ => vec![],
                    };
                    let path: Vec<&str> = match read {
                        LEADER => vec!["s1/L", "s1/L"],
                        FOLLOWER => {
                            if tp == ServerIsBusy {
                                backoff.clear();
                            }
                            vec!["s2/R", "s3/R"]
                        }
                        MIXED => {
                            if tp == ServerIsBusy {
                                backoff.clear();
                            }
                            match (is_stale, tp) {
                                (true, ServerIsBusy | ServerIsBusyWithEstimatedWait) => {
                                    vec!["s1/S", "s2/S"]
                                }
                                (true, _) => vec!["s1/S", "s2/R"],
                                (false, _) => vec!["s1/L", "s2/R"],
                            }
                        }
                        _ => {
                            if tp == ServerIsBusy {
                                backoff.clear();
                            }
                            vec!["s1/L", "s2/R"]
                        }
                    };
                    s.check(mk(&[tp], Expect::ok(&path).backoff(&backoff)))
                        .await;
                }
                for tp in no_retry {
                    let mut backoff: Vec<&str> = vec![];
                    let mut valid = false;
                    let mut resp_err = RespErr::None;
                    let mut region_err = Some(gen_region_error(tp));
                    match tp {
                        RecoveryInProgress => backoff = vec!["regionRecoveryInProgress+1"],
                        IsWitness => backoff = vec!["isWitness+1"],
                        BucketVersionNotMatch => valid = true,
                        RaftEntryTooLarge => {
                            resp_err = RespErr::RaftEntryTooLarge;
                            region_err = None;
                            valid = true;
                        }
                        FlashbackNotPrepared => {
                            resp_err = RespErr::FlashbackNotPrepared;
                            region_err = None;
                            valid = true;
                        }
                        _ => {}
                    }
                    let path: Vec<&str> = match read {
                        FOLLOWER if tp == RegionNotFound => {
                            // RegionNotFound from a follower retries once on the leader: the
                            // region is hard-invalidated to stop concurrent requests, but this
                            // selector gets its one grace attempt.
                            region_err = None;
                            valid = false;
                            vec!["s2/R", "s1/L"]
                        }
                        FOLLOWER => vec!["s2/R"],
                        MIXED if is_stale => vec!["s1/S"],
                        _ => vec!["s1/L"],
                    };
                    let mut expect = Expect::ok(&path)
                        .backoff(&backoff)
                        .err(resp_err)
                        .valid(valid);
                    expect.region_err = region_err;
                    s.check(mk(&[tp], expect)).await;
                }
            }
        }
    }
}

// client-go: T-REQUEST-061 TestReplicaReadAccessPathByLeaderCaseUsingAsyncAPI
// client-go: T-REQUEST-060 TestReplicaReadAccessPathByLeaderCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_leader_case() {
    use E::*;
    let s = Suite::new().await;
    s.check(get(LEADER, &[], Expect::ok(&["s1/L"]))).await;
    s.check(get(
        LEADER,
        &[ServerIsBusyWithEstimatedWait, ServerIsBusy],
        Expect::ok(&["s1/L", "s1/L", "s1/L"]).backoff(&["tikvServerBusy+2"]),
    ))
    .await;
    // After two ServerIsBusy(0) answers from the cached leader it is suspected and the
    // followers are probed; every store is busy, so the leader is restored and retried
    // with plain backoffs instead of invalidating the region (tikv/client-go#2028).
    s.check(get(
        LEADER,
        &[ServerIsBusy; 11],
        Expect::ok(&[
            "s1/L", "s1/L", "s2/L", "s3/L", "s1/L", "s1/L", "s1/L", "s1/L", "s1/L", "s1/L", "s1/L",
            "s1/L",
        ])
        .backoff(&["tikvServerBusy+11"]),
    ))
    .await;
    s.check(get(
        LEADER,
        &[NotLeader],
        Expect::ok(&["s1/L", "s2/L"]).backoff(&["regionScheduling+1"]),
    ))
    .await;
    s.check(get(
        LEADER,
        &[NotLeader, NotLeader],
        Expect::ok(&["s1/L", "s2/L", "s3/L"]).backoff(&["regionScheduling+2"]),
    ))
    .await;
    s.check(get(
        LEADER,
        &[NotLeader, NotLeader, NotLeader],
        Expect::ok(&["s1/L", "s2/L", "s3/L"])
            .fake()
            .backoff(&["regionScheduling+3"])
            .invalid(),
    ))
    .await;
    // A named new leader is tried at once, without backoff.
    s.check(get(
        LEADER,
        &[NotLeaderWithNewLeader3],
        Expect::ok(&["s1/L", "s3/L"]),
    ))
    .await;
    s.check(get(
        LEADER,
        &[NotLeaderWithNewLeader3, ServerIsBusy],
        Expect::ok(&["s1/L", "s3/L", "s3/L"]).backoff(&["tikvServerBusy+1"]),
    ))
    .await;
    s.check(get(
        LEADER,
        &[DeadlineExceeded],
        Expect::ok(&["s1/L", "s2/L"]).backoff(&["tikvRPC+1"]),
    ))
    .await;
    // A network partition between the client and store1.
    s.check(get(
        LEADER,
        &[
            DeadlineExceeded,
            NotLeaderWithNewLeader1,
            NotLeaderWithNewLeader1,
        ],
        Expect::ok(&["s1/L", "s2/L", "s3/L"])
            .fake()
            .backoff(&["tikvRPC+1"])
            .invalid(),
    ))
    .await;
    s.check(get(
        LEADER,
        &[DeadlineExceeded, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/L", "s2/L", "s3/L"])
            .fake()
            .backoff(&["tikvRPC+1", "tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.check(
        get(
            LEADER,
            &[
                NotLeader,
                NotLeaderWithNewLeader3,
                ServerIsBusyWithEstimatedWait,
                NotLeader,
            ],
            Expect::ok(&["s1/L", "s2/L", "s3/L", "s3/L"])
                .fake()
                .backoff(&["regionScheduling+2", "tikvServerBusy+1"])
                .invalid(),
        )
        .busy_threshold(10),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[
                NotLeader,
                NotLeaderWithNewLeader3,
                ServerIsBusyWithEstimatedWait,
                ServerIsBusy,
            ],
            Expect::ok(&["s1/L", "s2/L", "s3/L", "s3/L", "s3/L"])
                .backoff(&["regionScheduling+1", "tikvServerBusy+2"]),
        )
        .busy_threshold(10),
    )
    .await;

    // Leader switches carry over to later requests.
    s.check_all(vec![
        get(
            LEADER,
            &[NotLeader],
            Expect::ok(&["s1/L", "s2/L"]).backoff(&["regionScheduling+1"]),
        )
        .keep_region(),
        // The new leader is tried directly.
        get(
            LEADER,
            &[NotLeaderWithNewLeader3],
            Expect::ok(&["s2/L", "s3/L"]),
        )
        .keep_store_state()
        .keep_region(),
        get(
            LEADER,
            &[ServerIsBusy],
            Expect::ok(&["s3/L", "s3/L"]).backoff(&["tikvServerBusy+1"]),
        )
        .keep_store_state(),
    ])
    .await;
}

// client-go: T-REQUEST-063 TestReplicaReadAccessPathByFollowerCaseUsingAsyncAPI
// client-go: T-REQUEST-062 TestReplicaReadAccessPathByFollowerCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_follower_case() {
    use E::*;
    let s = Suite::new().await;
    s.check(get(FOLLOWER, &[], Expect::ok(&["s2/R"]))).await;
    s.check(get(
        FOLLOWER,
        &[ServerIsBusyWithEstimatedWait, ServerIsBusy],
        Expect::ok(&["s2/R", "s3/R", "s1/L"]),
    ))
    .await;
    s.check(get(
        FOLLOWER,
        &[ServerIsBusy, ServerIsBusyWithEstimatedWait, ServerIsBusy],
        Expect::ok(&["s2/R", "s3/R", "s1/L"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.check(get(
        FOLLOWER,
        &[DeadlineExceeded, ServerIsBusy],
        Expect::ok(&["s2/R", "s3/R", "s1/L"]).backoff(&["tikvRPC+1"]),
    ))
    .await;
    s.check(
        get(
            FOLLOWER,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/R", "s3/R", "s1/L"]),
        )
        .timeout(SEC),
    )
    .await;
}

// client-go: T-REQUEST-065 TestReplicaReadAccessPathByMixedAndPreferLeaderCaseUsingAsyncAPI
// client-go: T-REQUEST-064 TestReplicaReadAccessPathByMixedAndPreferLeaderCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_mixed_and_prefer_leader_case() {
    use E::*;
    let s = Suite::new().await;
    // With the leader on store1, mixed and prefer-leader reads take the same path.
    for read in [MIXED, PREFER_LEADER] {
        s.check(get(read, &[], Expect::ok(&["s1/L"]))).await;
        s.check(get(
            read,
            &[ServerIsBusyWithEstimatedWait, StaleCommand, ServerIsBusy],
            Expect::ok(&["s1/L", "s2/R", "s3/R"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        ))
        .await;
        s.check(get(
            read,
            &[ServerIsBusy, RegionNotFound],
            Expect::ok(&["s1/L", "s2/R"])
                .region_err(gen_region_error(RegionNotFound))
                .invalid(),
        ))
        .await;
        s.check(get(
            read,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s1/L", "s2/R", "s3/R"]).backoff(&["tikvRPC+1"]),
        ))
        .await;
        s.check(
            get(
                read,
                &[DeadlineExceeded, ServerIsBusy],
                Expect::ok(&["s1/L", "s2/R", "s3/R"]),
            )
            .timeout(SEC),
        )
        .await;
    }

    // The label-matching store is tried first.
    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/R", "s1/L", "s3/R"]).backoff(&["tikvRPC+1"]),
        )
        .label("2"),
    )
    .await;

    s.change_region_leader(3).await;
    // Prefer-leader tries the leader first ...
    s.check(get(
        PREFER_LEADER,
        &[DeadlineExceeded, ServerIsBusy],
        Expect::ok(&["s3/L", "s1/R", "s2/R"]).backoff(&["tikvRPC+1"]),
    ))
    .await;
    // ... unless a store matches the labels, which ranks higher.
    s.check(
        get(
            PREFER_LEADER,
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/R", "s3/L", "s1/R"]).backoff(&["tikvRPC+1"]),
        )
        .label("2"),
    )
    .await;
    s.change_region_leader(1).await;

    s.check_all(vec![
        // ServerIsBusy marks store1 slow.
        get(
            PREFER_LEADER,
            &[ServerIsBusy],
            Expect::ok(&["s1/L", "s2/R"]),
        )
        .keep_region(),
        // The slow leader is tried last.
        get(
            PREFER_LEADER,
            &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s2/R", "s3/R", "s1/L"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .keep_store_state(),
    ])
    .await;

    s.check_all(vec![
        // store1 and store2 are marked slow.
        get(
            PREFER_LEADER,
            &[ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s1/L", "s2/R", "s3/R"]),
        )
        .keep_region(),
        // The slow leader goes after store3; the slow follower store2 is not tried.
        get(
            PREFER_LEADER,
            &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s3/R", "s1/L"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .keep_store_state(),
    ])
    .await;
}

// client-go: T-REQUEST-066 TestReplicaReadAccessPathByStaleReadCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_stale_read_case() {
    use E::*;
    let s = Suite::new().await;
    s.check(stale(&[], Expect::ok(&["s1/S"]))).await;
    s.check(stale(&[DataIsNotReady], Expect::ok(&["s1/S", "s2/R"])))
        .await;
    // With a label: the leader is retried with a leader read.
    s.check(stale(&[DataIsNotReady], Expect::ok(&["s2/S", "s1/L"])).label("2"))
        .await;
    s.check(stale(
        &[DataIsNotReady, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/S", "s2/R", "s3/R"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    // The new leader is tried.
    s.check(
        stale(
            &[DataIsNotReady, NotLeaderWithNewLeader3],
            Expect::ok(&["s2/S", "s1/L", "s3/L"]),
        )
        .label("2"),
    )
    .await;
    s.check(
        stale(
            &[DataIsNotReady, ServerIsBusy, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s2/S", "s1/L", "s2/S", "s3/S"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .label("2"),
    )
    .await;

    s.change_region_leader(2).await;
    s.check(stale(
        &[DataIsNotReady, ServerIsBusy, ServerIsBusy, ServerIsBusy],
        Expect::ok(&["s1/S", "s2/L", "s3/S", "s1/S"])
            .fake()
            .backoff(&["tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    s.change_region_leader(1).await;

    // store2 is retried with a replica read.
    let not_leader_then_busy = || {
        stale(
            &[DataIsNotReady, NotLeader, ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s2/S", "s1/L", "s2/R", "s3/R"])
                .fake()
                .backoff(&["regionScheduling+1", "tikvServerBusy+1"])
                .invalid(),
        )
        .label("2")
    };
    s.check(not_leader_then_busy()).await;
    s.check(
        stale(
            &[
                DataIsNotReady,
                NotLeaderWithNewLeader3,
                ServerIsBusy,
                NotLeaderWithNewLeader2,
                ServerIsBusy,
            ],
            Expect::ok(&["s2/S", "s1/L", "s3/L", "s3/L", "s2/L", "s2/L"])
                .backoff(&["tikvServerBusy+2"]),
        )
        .label("2"),
    )
    .await;
    s.check(not_leader_then_busy()).await;
    s.check(
        stale(
            &[DataIsNotReady, RegionNotFound],
            Expect::ok(&["s2/S", "s1/L"])
                .region_err(gen_region_error(RegionNotFound))
                .invalid(),
        )
        .label("2"),
    )
    .await;
    s.check(
        stale(
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s1/S", "s2/S", "s3/S"]),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        stale(
            &[DeadlineExceeded, ServerIsBusy],
            Expect::ok(&["s2/S", "s1/L", "s3/S"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;
    s.check(
        stale(
            &[DeadlineExceeded, DeadlineExceeded],
            Expect::ok(&["s2/S", "s1/L", "s3/S"]),
        )
        .timeout(SEC)
        .label("2"),
    )
    .await;

    s.check_all(vec![
        stale(
            &[DeadlineExceeded, DeadlineExceeded],
            Expect::ok(&["s2/S", "s1/L", "s3/R"]).backoff(&["tikvRPC+2"]),
        )
        .label("2")
        .keep_region(),
        stale(
            &[ServerIsBusy],
            Expect::ok(&["s3/S"])
                .fake()
                .backoff(&["tikvServerBusy+1"])
                .invalid(),
        )
        .label("2")
        .keep_store_state()
        .keep_region(),
    ])
    .await;
}

// client-go: T-REQUEST-067 TestReplicaReadAccessPathByTryIdleReplicaCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_try_idle_replica_case() {
    use E::*;
    let s = Suite::new().await;
    // Writes never try idle replicas; after two ServerIsBusy(0) from the cached leader a
    // follower is probed (tikv/client-go#2028).
    s.check(
        prewrite(
            &[ServerIsBusy, ServerIsBusy],
            Expect::ok(&["s1/L", "s1/L", "s2/L"]).backoff(&["tikvServerBusy+2"]),
        )
        .busy_threshold(10),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[ServerIsBusyWithEstimatedWait, ServerIsBusyWithEstimatedWait],
            Expect::ok(&["s1/L", "s2/R", "s3/R"]),
        )
        .busy_threshold(10),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[ServerIsBusyWithEstimatedWait; 3],
            Expect::ok(&["s1/L", "s2/R", "s3/R", "s1/L"]).backoff(&["tikvServerBusy+1"]),
        )
        .busy_threshold(10),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[
                NotLeader,
                NotLeaderWithNewLeader3,
                ServerIsBusyWithEstimatedWait,
                NotLeader,
            ],
            Expect::ok(&["s1/L", "s2/L", "s3/L", "s3/L"])
                .fake()
                .backoff(&["regionScheduling+2", "tikvServerBusy+1"])
                .invalid(),
        )
        .busy_threshold(10),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[
                NotLeader,
                NotLeaderWithNewLeader3,
                ServerIsBusyWithEstimatedWait,
                ServerIsBusy,
            ],
            Expect::ok(&["s1/L", "s2/L", "s3/L", "s3/L", "s3/L"])
                .backoff(&["regionScheduling+1", "tikvServerBusy+2"]),
        )
        .busy_threshold(10),
    )
    .await;
}

/// The leader-busy probe state of a finished call (client-go's `leaderBusyProbed` and
/// `leaderBusyCount` are not visible here; the suspect flag of each replica is).
fn suspect_flags(sel: &ReplicaSelector) -> Vec<bool> {
    sel.replicas().iter().map(has_suspect_flag).collect()
}

// client-go: T-REQUEST-068 TestReplicaSelectorLeaderBusyProbe
#[tokio::test(start_paused = true)]
async fn replica_selector_leader_busy_probe() {
    use E::*;
    let s = Suite::new().await;
    // The leader is not suspected; the caller invalidates the region afterwards.
    let assert_not_probed = |run: &Run| {
        let sel = run.selector();
        assert_eq!(suspect_flags(&sel), vec![false; 3]);
        sel.invalidate_region();
    };

    // One ServerIsBusy(0) does not trigger the probe.
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy],
                Expect::ok(&["s1/L", "s1/L"]).backoff(&["tikvServerBusy+1"]),
            )
            .keep_region(),
        )
        .await;
    assert_not_probed(&run);

    // Two mark the cached leader suspect and probe a follower with a leader read (the
    // follower is expected to answer NotLeader with the real leader).
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy, ServerIsBusy],
                Expect::ok(&["s1/L", "s1/L", "s2/L"]).backoff(&["tikvServerBusy+2"]),
            )
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert!(has_suspect_flag(&sel.replicas()[0]));
    sel.invalidate_region();

    // The probed follower names store3: the shared cache is healed and a new selector
    // goes to store3 directly.
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy, ServerIsBusy, NotLeaderWithNewLeader3],
                Expect::ok(&["s1/L", "s1/L", "s2/L", "s3/L"]).backoff(&["tikvServerBusy+2"]),
            )
            .keep_region(),
        )
        .await;
    assert_eq!(s.leader_store(&run.ver), 3);
    let mut fresh = ReplicaSelector::new(
        s.services(),
        run.ver,
        CmdType::Get,
        leader_flags(),
        SelectorOptions::default(),
        SelectorConfig {
            enable_forwarding: false,
            deterministic: true,
        },
    )
    .expect("the region is cached");
    let target = fresh.next().await.unwrap().expect("a target");
    assert_eq!(target.addr, "store3");
    run.selector().invalidate_region();

    // Misjudgment: the hint names store1 again. The leader is a candidate again and later
    // busy(0) answers do not probe a second time.
    let run = s
        .check(
            get(
                LEADER,
                &[
                    ServerIsBusy,
                    ServerIsBusy,
                    NotLeaderWithNewLeader1,
                    ServerIsBusy,
                    ServerIsBusy,
                ],
                Expect::ok(&["s1/L", "s1/L", "s2/L", "s1/L", "s1/L", "s1/L"])
                    .backoff(&["tikvServerBusy+4"]),
            )
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert!(!has_suspect_flag(&sel.replicas()[0]));
    assert_eq!(s.leader_store(&run.ver), 1);
    sel.invalidate_region();

    // The probed follower answers NotLeader without a hint: back off and try the
    // remaining follower.
    s.check(get(
        LEADER,
        &[ServerIsBusy, ServerIsBusy, NotLeader],
        Expect::ok(&["s1/L", "s1/L", "s2/L", "s3/L"])
            .backoff(&["regionScheduling+1", "tikvServerBusy+2"]),
    ))
    .await;

    // The busy count belongs to the cached leader: after a NotLeader hint moves it to
    // store2, store2 needs its own two busy(0) answers before the probe.
    let run = s
        .check(
            get(
                LEADER,
                &[
                    ServerIsBusy,
                    NotLeaderWithNewLeader2,
                    ServerIsBusy,
                    ServerIsBusy,
                ],
                Expect::ok(&["s1/L", "s1/L", "s2/L", "s2/L", "s3/L"])
                    .backoff(&["tikvServerBusy+3"]),
            )
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert_eq!(suspect_flags(&sel), vec![false, true, false]);
    assert_eq!(sel.replicas()[1].peer.store_id, 2);
    sel.invalidate_region();

    // The count is cumulative, not consecutive: a busy answer with a wait estimate in
    // between does not count but does not reset it either.
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy, ServerIsBusyWithEstimatedWait, ServerIsBusy],
                Expect::ok(&["s1/L", "s1/L", "s1/L", "s2/L"]).backoff(&["tikvServerBusy+3"]),
            )
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert!(has_suspect_flag(&sel.replicas()[0]));
    sel.invalidate_region();

    // Both probed followers answer NotLeader without a hint: the leader is restored
    // instead of invalidating the region.
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy, ServerIsBusy, NotLeader, NotLeader],
                Expect::ok(&["s1/L", "s1/L", "s2/L", "s3/L", "s1/L"])
                    .backoff(&["regionScheduling+2", "tikvServerBusy+2"]),
            )
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert!(!has_suspect_flag(&sel.replicas()[0]));
    assert_eq!(s.leader_store(&run.ver), 1);
    sel.invalidate_region();

    // Stale reads never probe.
    let run = s
        .check(
            stale(
                &[ServerIsBusy, ServerIsBusy],
                Expect::ok(&["s1/S", "s2/S", "s3/S"]),
            )
            .keep_region(),
        )
        .await;
    assert_not_probed(&run);
    // Follower reads never probe.
    let run = s
        .check(
            get(
                FOLLOWER,
                &[ServerIsBusy, ServerIsBusy],
                Expect::ok(&["s2/R", "s3/R", "s1/L"]),
            )
            .keep_region(),
        )
        .await;
    assert_not_probed(&run);

    // Leader-only requests never probe.
    let mut sel = s
        .selector(
            leader_flags(),
            SelectorOptions {
                leader_only: true,
                ..SelectorOptions::default()
            },
        )
        .await
        .expect("a selector");
    let leader_peer = s.region().await.leader().unwrap().id;
    let leader_idx = sel
        .replicas()
        .iter()
        .position(|r| r.peer.id == leader_peer)
        .unwrap();
    // No budget limit (client-go's `NewBackoffer(ctx, -1)`).
    let bo = SharedBackoffer::new(Backoffer::new(0));
    for _ in 0..3 {
        let target = sel.next().await.unwrap().expect("a target");
        assert_eq!(target.peer.id, leader_peer);
        let retry = sel
            .on_server_is_busy(&bo, &errorpb::ServerIsBusy::default(), CmdType::Get, false)
            .await
            .unwrap();
        assert!(retry);
        assert!(!has_suspect_flag(&sel.replicas()[leader_idx]));
    }

    // A single-replica region has no follower to probe: the suspected leader is restored
    // and retried with plain backoffs; the region stays valid.
    s.reset_store_state().await;
    let rc = s.region().await;
    let cluster = s.env.mock.cluster();
    for p in rc.region.peers.iter().filter(|p| p.store_id != 1) {
        cluster.remove_peer(s.env.region, p.id).unwrap();
    }
    s.locator().invalidate_region(&rc.ver, InvalidReason::Other);
    let run = s
        .check(
            get(
                LEADER,
                &[ServerIsBusy, ServerIsBusy, ServerIsBusy],
                Expect::ok(&["s1/L", "s1/L", "s1/L", "s1/L"]).backoff(&["tikvServerBusy+3"]),
            )
            .keep_store_state()
            .keep_region(),
        )
        .await;
    let sel = run.selector();
    assert_eq!(suspect_flags(&sel), vec![false]);
    for store in [2, 3] {
        cluster
            .add_peer(s.env.region, store, cluster.alloc_id())
            .unwrap();
    }
    sel.invalidate_region();
}

/// Leader-read flags as a plain `Get` has them.
fn leader_flags() -> ReadFlags {
    ReadFlags {
        replica_read: false,
        stale_read: false,
        busy_threshold_ms: 0,
        read_type: LEADER,
    }
}

/// Stale-read flags (`EnableStaleWithMixedReplicaRead`).
fn stale_flags() -> ReadFlags {
    ReadFlags {
        replica_read: false,
        stale_read: true,
        busy_threshold_ms: 0,
        read_type: MIXED,
    }
}

// client-go: T-REQUEST-069 TestReplicaReadAccessPathByFlashbackInProgressCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_flashback_in_progress_case() {
    use E::*;
    let s = Suite::new().await;
    s.check(
        get(
            LEADER,
            &[FlashbackInProgress],
            Expect::ok(&["s1/L"]).err(RespErr::FlashbackInProgress),
        )
        .timeout(SEC),
    )
    .await;
    s.check(
        get(
            LEADER,
            &[DeadlineExceeded, FlashbackInProgress, FlashbackInProgress],
            Expect::ok(&["s1/L", "s2/R", "s3/R"]).fake(),
        )
        .timeout(SEC),
    )
    .await;
    // Not compatible: the leader answers FlashbackInProgress to a mixed read.
    s.check(get(
        MIXED,
        &[FlashbackInProgress],
        Expect::ok(&["s1/L"]).err(RespErr::FlashbackInProgress),
    ))
    .await;
    s.check(
        get(
            MIXED,
            &[DeadlineExceeded, FlashbackInProgress, FlashbackInProgress],
            Expect::ok(&["s1/L", "s2/R", "s3/R"]).fake(),
        )
        .timeout(SEC),
    )
    .await;
}

// client-go: T-REQUEST-070 TestReplicaReadAccessPathByProxyCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_proxy_case() {
    use E::*;
    let mut s = Suite::new().await;
    s.forwarding = true;
    s.check_all(vec![
        get(
            LEADER,
            &[DeadlineExceeded],
            Expect::ok(&["s1/L", "s2→s1/L"]).backoff(&["tikvRPC+1"]),
        )
        .keep_region(),
        // The known proxy is used directly.
        get(LEADER, &[], Expect::ok(&["s2→s1/L"])).keep_store_state(),
    ])
    .await;
    s.check(get(
        LEADER,
        &[DeadlineExceeded, DeadlineExceeded, DeadlineExceeded],
        Expect::ok(&["s1/L", "s2→s1/L", "s3→s1/L"])
            .fake()
            .backoff(&["tikvRPC+3"])
            .invalid(),
    ))
    .await;
    s.check(get(
        LEADER,
        &[
            DeadlineExceeded,
            NotLeaderWithNewLeader2,
            DeadlineExceeded,
            ServerIsBusy,
        ],
        Expect::ok(&["s1/L", "s2→s1/L", "s2/L", "s3→s2/L"])
            .fake()
            .backoff(&["tikvRPC+2", "tikvServerBusy+1"])
            .invalid(),
    ))
    .await;
    let run = s
        .check(
            get(
                LEADER,
                &[
                    DeadlineExceeded,
                    ServerIsBusyWithEstimatedWait,
                    ServerIsBusyWithEstimatedWait,
                ],
                Expect::ok(&["s1/L", "s2→s1/L", "s3→s1/L"])
                    .fake()
                    .backoff(&["tikvRPC+1", "tikvServerBusy+2"])
                    .invalid(),
            )
            .keep_region(),
        )
        .await;
    // The leader's store epoch moved past the one the selector started with.
    let sel = run.selector();
    let leader = &sel.replicas()[0];
    let global = sel
        .region()
        .region
        .peers
        .iter()
        .position(|p| p.id == leader.peer.id)
        .unwrap();
    let store_epoch = s.stores().get(leader.peer.store_id).unwrap().epoch();
    assert!(sel.region().store_epochs[global] < store_epoch);
    assert!(!s.is_valid(&run.ver));

    s.check(prewrite(
        &[NotLeader],
        Expect::ok(&["s1/L", "s2/L"]).backoff(&["regionScheduling+1"]),
    ))
    .await;
    s.check(prewrite(
        &[DeadlineExceeded, NotLeader],
        Expect::ok(&["s1/L", "s2→s1/L", "s3/L"]).backoff(&["regionScheduling+1", "tikvRPC+1"]),
    ))
    .await;
    s.check(prewrite(
        &[NotLeaderWithNewLeader2, DeadlineExceeded, NotLeader],
        Expect::ok(&["s1/L", "s2/L", "s3→s2/L"])
            .fake()
            .backoff(&["regionScheduling+1", "tikvRPC+1"])
            .invalid(),
    ))
    .await;
}

// client-go: T-REQUEST-071 TestReplicaReadAccessPathByLearnerCase
#[tokio::test(start_paused = true)]
async fn replica_read_access_path_by_learner_case() {
    let s = Suite::new().await;
    // A TiKV learner on a fourth store.
    let rc = s.region().await;
    let cluster = s.env.mock.cluster();
    cluster.add_store(4, "store4", &[]);
    cluster
        .add_learner(s.env.region, 4, cluster.alloc_id())
        .unwrap();
    s.locator().invalidate_region(&rc.ver, InvalidReason::Other);
    s.check(get(
        LEARNER,
        &[E::ServerIsBusy],
        Expect::ok(&["s4/R", "s1/L"]),
    ))
    .await;
}

// client-go: T-REQUEST-072 TestReplicaReadAvoidSlowStore
#[tokio::test(start_paused = true)]
async fn replica_read_avoid_slow_store() {
    let s = Suite::new().await;
    s.change_region_leader(3).await;
    let kind = |replica: bool, is_stale: bool| {
        if is_stale {
            "S"
        } else if replica {
            "R"
        } else {
            "L"
        }
    };
    for is_stale in [false, true] {
        for with_label in [false, true] {
            let mk = |errs: &[E], path: Vec<String>| {
                let mut c = get(MIXED, errs, Expect::ok(&[]));
                c.expect.path = path;
                c.stale = is_stale;
                if with_label {
                    c.label = Some("1");
                }
                c
            };
            let first_local = format!("s1/{}", kind(!is_stale, is_stale));

            // store1 healthy: the local (or first) replica serves.
            s.check(mk(&[], vec![first_local.clone()])).await;

            // store1 slow: another replica, the leader when labels are asked for.
            let first_store = if with_label { 3 } else { 2 };
            let first_slow = format!(
                "s{first_store}/{}",
                kind(!is_stale && first_store != 3, is_stale)
            );
            let mut ca = mk(&[], vec![first_slow.clone()]).keep_store_state();
            s.reset_store_state().await;
            s.mark_store1_slow_on_tikv_side();
            s.check(ca.clone()).await;

            // store1 healthy but busy: a stale read retries the leader with a leader read;
            // a replica read retries the leader when labels are asked for, else another
            // replica.
            let second = if is_stale || with_label {
                "s3/L"
            } else {
                "s2/R"
            };
            s.check(mk(
                &[E::ServerIsBusy],
                vec![first_local.clone(), second.to_owned()],
            ))
            .await;

            // store1 slow and the first choice busy.
            let second = if first_store == 3 {
                // A follower next; a stale read stays a stale read there.
                if is_stale { "s2/S" } else { "s2/R" }
            } else {
                // A leader retry is a leader read.
                "s3/L"
            };
            ca = mk(&[E::ServerIsBusy], vec![first_slow, second.to_owned()]).keep_store_state();
            s.reset_store_state().await;
            s.mark_store1_slow_on_tikv_side();
            s.check(ca).await;
        }
    }
}

// client-go: T-REQUEST-049 TestReplicaSelectorBasic
#[tokio::test(start_paused = true)]
async fn replica_selector_basic() {
    let s = Suite::new().await;
    let config = SelectorConfig {
        enable_forwarding: false,
        deterministic: true,
    };
    // No selector for an invalidated region, however often it is asked for.
    let rc = s.region().await;
    s.locator().invalidate_region(&rc.ver, InvalidReason::Other);
    for _ in 0..2 {
        let sel = ReplicaSelector::new(
            s.services(),
            rc.ver,
            CmdType::Get,
            stale_flags(),
            SelectorOptions::default(),
            config,
        );
        assert!(sel.is_none());
    }

    // A mixed stale read: leader, then the followers, then nothing.
    let mut sel = s
        .selector(stale_flags(), SelectorOptions::default())
        .await
        .expect("the reloaded region has a selector");
    for want in ["leader", "follower", "follower", "unknown"] {
        sel.next().await.unwrap();
        assert_eq!(sel.replica_type(), want);
    }

    // Invalidating the region mid-way: the next attempt has no target.
    let mut sel = s
        .selector(stale_flags(), SelectorOptions::default())
        .await
        .expect("the reloaded region has a selector");
    assert!(sel.next().await.unwrap().is_some());
    s.locator()
        .invalidate_region(&sel.ver(), InvalidReason::Other);
    assert!(sel.next().await.unwrap().is_none());
}

/// Whether a ServerIsBusy answer (with a wait estimate, so no slow mark or leader probe)
/// retries at once: `canFastRetry` is private, its effect is not. A fast retry records
/// the backoff as pending for the store instead of sleeping now.
async fn busy_retries_fast(sel: &mut ReplicaSelector, bo: &SharedBackoffer) -> bool {
    let busy = errorpb::ServerIsBusy {
        estimated_wait_ms: 10,
        ..Default::default()
    };
    let before = bo.with(|b| b.total_backoff_times());
    let retry = sel
        .on_server_is_busy(bo, &busy, CmdType::Get, false)
        .await
        .unwrap();
    assert!(retry);
    bo.with(|b| b.total_backoff_times()) == before
}

// client-go: T-REQUEST-052 TestCanFastRetry
#[tokio::test(start_paused = true)]
async fn can_fast_retry() {
    let s = Suite::new().await;
    let bo = SharedBackoffer::new(Backoffer::new(0));

    // Stale (mixed) reads can always retry at once on another replica.
    let mut sel = s
        .selector(stale_flags(), SelectorOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        sel.next().await.unwrap();
        assert!(busy_retries_fast(&mut sel, &bo).await);
    }

    // Leader reads only once the leader has used up its attempts.
    let mut sel = s
        .selector(leader_flags(), SelectorOptions::default())
        .await
        .unwrap();
    for i in 0..12 {
        sel.next().await.unwrap();
        let fast = busy_retries_fast(&mut sel, &bo).await;
        // Not before: the leader is still available.
        assert_eq!(fast, i > 8, "attempt {i}");
    }
}

// client-go: T-REQUEST-053 TestPendingBackoff
#[tokio::test(start_paused = true)]
async fn pending_backoff() {
    let s = Suite::new().await;
    let mut sel = s
        .selector(stale_flags(), SelectorOptions::default())
        .await
        .unwrap();
    // A no-op backoffer hands back the pending error instead of sleeping.
    let bo = SharedBackoffer::new(Backoffer::noop());
    // Nothing pending yet.
    assert!(sel.backoff_on_retry(0, &bo).await.is_ok());
    assert!(sel.backoff_on_retry(1, &bo).await.is_ok());
    assert!(sel.backoff_on_no_candidate(&bo).await.is_ok());

    // Pending backoffs come from fast retries after ServerIsBusy: one before any attempt
    // (no store), one for store1, and two for store2 (the latest replaces the first).
    let busy = errorpb::ServerIsBusy {
        estimated_wait_ms: 10,
        ..Default::default()
    };
    let pend = async |sel: &mut ReplicaSelector| {
        assert!(
            sel.on_server_is_busy(&bo, &busy, CmdType::Get, false)
                .await
                .unwrap()
        );
    };
    pend(&mut sel).await;
    assert_eq!(sel.next().await.unwrap().unwrap().peer.store_id, 1);
    pend(&mut sel).await;
    assert_eq!(sel.next().await.unwrap().unwrap().peer.store_id, 2);
    pend(&mut sel).await;
    pend(&mut sel).await;

    // Retrying "no store" applies and clears its entry.
    let err = sel.backoff_on_retry(0, &bo).await.unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::TiKVServerBusy),
        "{err:?}"
    );
    assert!(sel.backoff_on_retry(0, &bo).await.is_ok());
    // A store with nothing pending.
    assert!(sel.backoff_on_retry(10, &bo).await.is_ok());
    // No candidate: the remaining entries (store1, store2) are applied one at a time.
    for _ in 0..2 {
        let err = sel.backoff_on_no_candidate(&bo).await.unwrap_err();
        assert!(
            matches!(err.detail(), ErrorDetail::TiKVServerBusy),
            "{err:?}"
        );
    }
    assert!(sel.backoff_on_no_candidate(&bo).await.is_ok());
}

// client-go: T-REQUEST-073 TestTiKVClientReadTimeout
#[tokio::test(start_paused = true)]
async fn tikv_client_read_timeout() {
    let s = Suite::new().await;
    // Every answer takes 10 ms (client-go's mock server meta checker).
    let (terminal, script) = s.scripted(vec![]);
    script.lock().unwrap().delay = Duration::from_millis(10);
    let rc = s.region().await;
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"key".to_vec(),
        version: 1,
        ..Default::default()
    });
    req.set_replica_read(LEADER);
    req.context.max_execution_duration_ms = 1;
    req.options.timeout = Some(Duration::from_millis(1));
    req.target.region = Some(rc.clone());
    let bo = SharedBackoffer::new(Backoffer::new(2000));
    req.backoffer = bo.clone();

    // A 1 ms limit times out on every replica in turn, without backoff.
    let resp = s
        .sender(terminal.clone())
        .oneshot(req.clone())
        .await
        .unwrap();
    assert!(resp.region_error().is_some_and(is_fake_region_error));
    assert_eq!(bo.with(|b| b.total_backoff_times()), 0);
    {
        let sc = script.lock().unwrap();
        assert_eq!(sc.path, strs(&["s1/L", "s2/R", "s3/R"]));
        assert_eq!(sc.max_exec_ms, vec![1, 1, 1]);
    }

    // Without the limit and with a longer timeout the leader answers. client-go reuses
    // the request its last attempt turned into a replica read; a Rust request is never
    // changed by the pipeline, so the flag is set here as client-go's request carries it.
    req.context.max_execution_duration_ms = 0;
    req.options.timeout = Some(SEC);
    req.context.replica_read = true;
    let resp = s.sender(terminal).oneshot(req).await.unwrap();
    assert!(resp.region_error().is_none());
    assert_eq!(bo.with(|b| b.total_backoff_times()), 0);
    let sc = script.lock().unwrap();
    assert_eq!(sc.path, strs(&["s1/L", "s2/R", "s3/R", "s1/R"]));
    assert_eq!(sc.max_exec_ms, vec![1, 1, 1, 1000]);
}
