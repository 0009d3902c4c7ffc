//! Unit tests of the send loop over the replica layer and a scripted leaf, under paused
//! time: client-go's access-path conformance vectors (request-path.md Appendix A) and the
//! RE-*/TE-* decisions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tikv_proto::{errorpb, kvrpcpb, metapb};
use tower::{ServiceBuilder, ServiceExt};

use crate::backoff::{BackoffKind, Backoffer, SharedBackoffer};
use crate::locate::InvalidReason;
use crate::replica::ReplicaLayer;
use crate::request::{CmdType, ReplicaReadType, RpcRequest, RpcResponse};
use crate::retry::RetryLayer;
use crate::test_support::Fake;
use crate::{Error, ErrorDetail, Result};

/// What the scripted leaf answers for one attempt.
#[derive(Clone)]
enum Step {
    Ok,
    Region(Box<errorpb::Error>),
    Timeout,
    /// The attempt fails with this error.
    Fail(ErrorDetail),
}

/// One attempt as the leaf saw it: `s<store>/<L|R|S>`, with `→` when forwarded.
type Path = Arc<Mutex<Vec<String>>>;

fn not_leader(leader_store: Option<u64>) -> Step {
    Step::Region(Box::new(errorpb::Error {
        not_leader: Some(errorpb::NotLeader {
            region_id: 10,
            leader: leader_store.map(|s| metapb::Peer {
                id: 100 + s,
                store_id: s,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }))
}

fn busy(wait_ms: u32) -> Step {
    Step::Region(Box::new(errorpb::Error {
        server_is_busy: Some(errorpb::ServerIsBusy {
            estimated_wait_ms: wait_ms,
            ..Default::default()
        }),
        ..Default::default()
    }))
}

fn region_err(f: impl FnOnce(&mut errorpb::Error)) -> Step {
    let mut e = errorpb::Error::default();
    f(&mut e);
    Step::Region(Box::new(e))
}

struct Run {
    path: Vec<String>,
    result: Result<RpcResponse>,
    bo: SharedBackoffer,
}

impl Run {
    fn ok(&self) -> bool {
        matches!(&self.result, Ok(r) if r.region_error().is_none())
    }

    fn pseudo(&self) -> bool {
        matches!(&self.result, Ok(r) if r.region_error().is_some_and(crate::classify::is_fake_region_error))
    }

    fn times(&self, kind: BackoffKind) -> u64 {
        self.bo.times_of(kind)
    }
}

/// Sends one request through retry → replica → scripted leaf.
async fn run(fake: &Fake, read: ReplicaReadType, stale: bool, script: Vec<Step>) -> Run {
    run_with(fake, read, stale, script, |_| {}).await
}

async fn run_with(
    fake: &Fake,
    read: ReplicaReadType,
    stale: bool,
    script: Vec<Step>,
    tweak: impl FnOnce(&mut RpcRequest),
) -> Run {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let path: Path = Arc::default();
    let leaf = {
        let (script, path) = (script.clone(), path.clone());
        tower::service_fn(move |req: RpcRequest| {
            let (script, path) = (script.clone(), path.clone());
            async move {
                let kind = if req.context.stale_read {
                    "S"
                } else if req.context.replica_read {
                    "R"
                } else {
                    "L"
                };
                let mut entry = format!("s{}/{kind}", req.target.store_id);
                if req.target.forwarded_host.is_some() {
                    entry = format!("{}→{entry}", req.target.addr.replace("store", "s"));
                }
                path.lock().unwrap().push(entry);
                let step = script.lock().unwrap().pop_front().unwrap_or(Step::Ok);
                match step {
                    Step::Ok => Ok(RpcResponse::new(kvrpcpb::GetResponse::default())),
                    Step::Region(e) => Ok(RpcResponse::new(
                        req.cmd.region_error_response(*e).expect("has region error"),
                    )),
                    Step::Timeout => Err(Error::new(ErrorDetail::AttemptTimeout {
                        addr: req.target.addr.clone(),
                    })),
                    Step::Fail(d) => Err(Error::new(d)),
                }
            }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()).connection_control(Arc::new(fake.clone())))
        .layer(ReplicaLayer::new(fake.services()).deterministic(true))
        .service(leaf);
    let bo = SharedBackoffer::new(Backoffer::new(60_000));
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        version: 1,
        ..Default::default()
    })
    .backoffer(bo.clone());
    req.set_replica_read(read);
    if stale {
        req.enable_stale_read();
    }
    req.target.region = Some(fake.snapshot());
    tweak(&mut req);
    let result = stack.oneshot(req).await;
    let path = path.lock().unwrap().clone();
    Run { path, result, bo }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn leader_success_and_busy() {
    // Vector 1: plain leader read.
    let fake = Fake::new(3);
    let r = run(&fake, ReplicaReadType::Leader, false, vec![]).await;
    assert_eq!(r.path, strs(&["s1/L"]));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);

    // Vector 2: Busy with an estimated wait, then Busy(0): the leader is retried after a
    // tikvServerBusy backoff each time.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![busy(10), busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s1/L", "s1/L"]));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 2);
}

#[tokio::test(start_paused = true)]
async fn leader_not_leader_paths() {
    // Vector 3: NotLeader without a leader: back off regionScheduling, try the next peer;
    // its success makes it the leader.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![not_leader(None)],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s2/L"]));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.times(BackoffKind::RegionScheduling), 1);
    assert_eq!(fake.leader_store(), 2);

    // Vector 4: NotLeader three times: every peer tried, pseudo error, region invalid.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![not_leader(None), not_leader(None), not_leader(None)],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s2/L", "s3/L"]));
    assert!(r.pseudo());
    assert!(!fake.is_valid());
    assert_eq!(r.times(BackoffKind::RegionScheduling), 3);

    // Vector 5: NotLeader naming s3: switch at once, no backoff.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![not_leader(Some(3))],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s3/L"]));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);
    assert_eq!(fake.leader_store(), 3);

    // Vector 6: NotLeader(s3) then Busy: s3 retried after one busy backoff.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![not_leader(Some(3)), busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s3/L", "s3/L"]));
    assert!(r.ok());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 1);
}

#[tokio::test(start_paused = true)]
async fn leader_deadline_paths() {
    // Vector 7: a deadline on the leader (not a configurable timeout): the leader's store
    // probes unreachable, tikvRPC backoff, the next peer answers.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let r = run(&fake, ReplicaReadType::Leader, false, vec![Step::Timeout]).await;
    assert_eq!(r.path, strs(&["s1/L", "s2/L"]));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVRpc), 1);

    // Vector 8: deadline, then NotLeader(s1) twice: s1 is unreachable so the hint is
    // ignored; every peer tried; pseudo error.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![Step::Timeout, not_leader(Some(1)), not_leader(Some(1))],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s2/L", "s3/L"]));
    assert!(r.pseudo());
    assert!(!fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVRpc), 1);
}

#[tokio::test(start_paused = true)]
async fn leader_busy_eleven_times() {
    // Vector 9: Busy(0) eleven times: two busy answers from the leader make it suspect,
    // followers are probed with leader reads, then the leader is used until exhausted
    // and the confirmed leader's budget resets.
    let fake = Fake::new(3);
    let r = run(&fake, ReplicaReadType::Leader, false, vec![busy(0); 11]).await;
    let mut want = vec!["s1/L", "s1/L", "s2/L", "s3/L"];
    want.extend(std::iter::repeat_n("s1/L", 8));
    assert_eq!(r.path, strs(&want));
    assert!(r.ok() && fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 11);
}

#[tokio::test(start_paused = true)]
async fn follower_paths() {
    // Vector 10.
    let fake = Fake::new(3);
    let r = run(&fake, ReplicaReadType::Follower, false, vec![]).await;
    assert_eq!(r.path, strs(&["s2/R"]));
    assert!(r.ok());

    // Vector 11: busy followers are fast-retried; the leader answers with a leader read.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Follower,
        false,
        vec![busy(10), busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s2/R", "s3/R", "s1/L"]));
    assert!(r.ok());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);

    // Vector 12: every replica busy: the largest pending backoff is paid once, pseudo
    // error, region invalid.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Follower,
        false,
        vec![busy(0), busy(10), busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s2/R", "s3/R", "s1/L"]));
    assert!(r.pseudo());
    assert!(!fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 1);

    // Vector 13: a configurable (1 s) timeout retries on the next replica at once.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let r = run_with(
        &fake,
        ReplicaReadType::Follower,
        false,
        vec![Step::Timeout, busy(0)],
        |req| req.options.timeout = Some(std::time::Duration::from_secs(1)),
    )
    .await;
    assert_eq!(r.path, strs(&["s2/R", "s3/R", "s1/L"]));
    assert!(r.ok());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);

    // Vector 14: the same with the default timeout: one tikvRPC backoff.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let r = run(
        &fake,
        ReplicaReadType::Follower,
        false,
        vec![Step::Timeout, busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s2/R", "s3/R", "s1/L"]));
    assert!(r.ok());
    assert_eq!(r.times(BackoffKind::TiKVRpc), 1);
}

#[tokio::test(start_paused = true)]
async fn stale_read_paths() {
    let data_not_ready = || {
        region_err(|e| {
            e.data_is_not_ready = Some(errorpb::DataIsNotReady::default());
        })
    };
    // Vector 15.
    let fake = Fake::new(3);
    let r = run(&fake, ReplicaReadType::Mixed, true, vec![]).await;
    assert_eq!(r.path, strs(&["s1/S"]));
    assert!(r.ok());

    // Vector 16: DataIsNotReady on the leader: the next replica with a replica read.
    let fake = Fake::new(3);
    let r = run(&fake, ReplicaReadType::Mixed, true, vec![data_not_ready()]).await;
    assert_eq!(r.path, strs(&["s1/S", "s2/R"]));
    assert!(r.ok());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);

    // Vector 17: label id=2: stale read on s2, then the untried leader with a leader read.
    let fake = Fake::new(3);
    let r = run_with(
        &fake,
        ReplicaReadType::Mixed,
        true,
        vec![data_not_ready()],
        |req| {
            req.options.match_labels = vec![metapb::StoreLabel {
                key: "id".into(),
                value: "2".into(),
            }]
        },
    )
    .await;
    assert_eq!(r.path, strs(&["s2/S", "s1/L"]));
    assert!(r.ok());

    // Vector 18.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Mixed,
        true,
        vec![data_not_ready(), busy(0), busy(0)],
    )
    .await;
    assert_eq!(r.path, strs(&["s1/S", "s2/R", "s3/R"]));
    assert!(r.pseudo());
    assert!(!fake.is_valid());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 1);

    // Vector 19: label id=2, DataIsNotReady then NotLeader(s3): follow the hint.
    let fake = Fake::new(3);
    let r = run_with(
        &fake,
        ReplicaReadType::Mixed,
        true,
        vec![data_not_ready(), not_leader(Some(3))],
        |req| {
            req.options.match_labels = vec![metapb::StoreLabel {
                key: "id".into(),
                value: "2".into(),
            }]
        },
    )
    .await;
    assert_eq!(r.path, strs(&["s2/S", "s1/L", "s3/L"]));
    assert!(r.ok());
}

#[tokio::test(start_paused = true)]
async fn busy_threshold_paths() {
    // Vector 20: a leader Get with a 10 ms busy threshold moves to idle followers.
    let fake = Fake::new(3);
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![busy(20), busy(20)],
        |req| req.context.busy_threshold_ms = 10,
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s2/R", "s3/R"]));
    assert!(r.ok());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);

    // Vector 22: a Prewrite ignores the threshold (not a read).
    let fake = Fake::new(3);
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![busy(0), busy(0)],
        |req| {
            req.cmd = kvrpcpb::PrewriteRequest::default().into();
            req.context.busy_threshold_ms = 10;
        },
    )
    .await;
    assert_eq!(r.path, strs(&["s1/L", "s1/L", "s2/L"]));
    assert!(r.ok());
    assert_eq!(r.times(BackoffKind::TiKVServerBusy), 2);
    assert_eq!(fake.leader_store(), 2);
}

#[tokio::test(start_paused = true)]
async fn mixed_paths() {
    // Vector 24: Busy on the leader then RegionNotFound from a follower: the region error
    // goes back to the caller and the region is invalid.
    for read in [ReplicaReadType::Mixed, ReplicaReadType::PreferLeader] {
        let fake = Fake::new(3);
        let r = run(
            &fake,
            read,
            false,
            vec![
                busy(0),
                region_err(|e| e.region_not_found = Some(errorpb::RegionNotFound::default())),
            ],
        )
        .await;
        assert_eq!(r.path, strs(&["s1/L", "s2/R"]), "{read:?}");
        let resp = r.result.as_ref().expect("response");
        assert!(
            resp.region_error()
                .is_some_and(|e| e.region_not_found.is_some())
        );
        assert!(!fake.is_valid());
    }
}

#[tokio::test(start_paused = true)]
async fn forwarding_paths() {
    let stack_run = async |fake: &Fake, script: Vec<Step>| {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let path: Path = Arc::default();
        let leaf = {
            let (script, path) = (script.clone(), path.clone());
            tower::service_fn(move |req: RpcRequest| {
                let (script, path) = (script.clone(), path.clone());
                async move {
                    let entry = match &req.target.forwarded_host {
                        Some(_) => format!(
                            "{}→s{}",
                            req.target.addr.replace("store", "s"),
                            req.target.store_id
                        ),
                        None => format!("s{}/L", req.target.store_id),
                    };
                    path.lock().unwrap().push(entry);
                    match script.lock().unwrap().pop_front().unwrap_or(Step::Ok) {
                        Step::Timeout => Err(Error::new(ErrorDetail::AttemptTimeout {
                            addr: req.target.addr.clone(),
                        })),
                        _ => Ok(RpcResponse::new(kvrpcpb::GetResponse::default())),
                    }
                }
            })
        };
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new(fake.services()))
            .layer(
                ReplicaLayer::new(fake.services())
                    .deterministic(true)
                    .forwarding(true),
            )
            .service(leaf);
        let bo = SharedBackoffer::new(Backoffer::new(60_000));
        let mut req = RpcRequest::new(kvrpcpb::GetRequest::default()).backoffer(bo.clone());
        req.target.region = Some(fake.snapshot());
        let res = stack.oneshot(req).await;
        let p = path.lock().unwrap().clone();
        (p, res, bo)
    };
    // Vector 25: the leader times out and probes unreachable: the next attempt goes to
    // the leader through s2.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let (path, res, bo) = stack_run(&fake, vec![Step::Timeout]).await;
    assert_eq!(path, strs(&["s1/L", "s2→s1"]));
    assert!(res.is_ok());
    assert_eq!(bo.times_of(BackoffKind::TiKVRpc), 1);

    // Vector 26: every proxy fails too: pseudo error, region invalid.
    let fake = Fake::new(3);
    fake.lock().probe_unreachable = true;
    let (path, res, bo) = stack_run(&fake, vec![Step::Timeout, Step::Timeout, Step::Timeout]).await;
    assert_eq!(path, strs(&["s1/L", "s2→s1", "s3→s1"]));
    let resp = res.expect("pseudo response");
    assert!(
        resp.region_error()
            .is_some_and(crate::classify::is_fake_region_error)
    );
    assert_eq!(bo.times_of(BackoffKind::TiKVRpc), 3);
}

#[tokio::test(start_paused = true)]
async fn region_error_decisions() {
    // RE-23: undetermined results go straight back.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![region_err(|e| {
            e.undetermined_result = Some(errorpb::UndeterminedResult::default())
        })],
    )
    .await;
    assert_eq!(r.path.len(), 1);
    assert!(r.result.as_ref().expect("resp").region_error().is_some());
    assert!(fake.is_valid());

    // RE-8: KeyNotInRegion invalidates and returns.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![region_err(|e| {
            e.key_not_in_region = Some(errorpb::KeyNotInRegion::default())
        })],
    )
    .await;
    assert_eq!(r.path.len(), 1);
    assert!(!fake.is_valid());
    assert_eq!(fake.lock().invalidations, vec![InvalidReason::Other]);

    // RE-13: StoreNotMatch marks the store, invalidates, closes the address.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![region_err(|e| {
            e.store_not_match = Some(errorpb::StoreNotMatch::default())
        })],
    )
    .await;
    assert!(r.result.is_ok());
    assert_eq!(fake.lock().need_check, vec![1]);
    assert_eq!(fake.lock().closed_addrs, vec!["store1".to_string()]);

    // RE-14: RaftEntryTooLarge fails.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![region_err(|e| {
            e.raft_entry_too_large = Some(errorpb::RaftEntryTooLarge::default())
        })],
    )
    .await;
    assert!(r.result.is_err());

    // RE-6: FlashbackNotPrepared fails with its typed error.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![region_err(|e| {
            e.flashback_not_prepared = Some(errorpb::FlashbackNotPrepared { region_id: 10 })
        })],
    )
    .await;
    let err = r.result.expect_err("fails");
    assert!(matches!(
        err.detail(),
        ErrorDetail::RegionFlashbackNotPrepared
    ));

    // RE-15/RE-17: backed-off retries.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![
            region_err(|e| {
                e.max_timestamp_not_synced = Some(errorpb::MaxTimestampNotSynced::default())
            }),
            region_err(|e| e.read_index_not_ready = Some(errorpb::ReadIndexNotReady::default())),
        ],
    )
    .await;
    assert!(r.ok());
    assert_eq!(r.times(BackoffKind::MaxTsNotSynced), 1);
    assert_eq!(r.times(BackoffKind::RegionScheduling), 1);

    // RE-24: unknown errors re-hit the leader without backoff, 10 attempts at most.
    let fake = Fake::new(1);
    let unknown = region_err(|e| e.message = "something new".into());
    let r = run(&fake, ReplicaReadType::Leader, false, vec![unknown; 12]).await;
    assert_eq!(r.path.len(), 10);
    assert!(r.pseudo());
    assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);
}

#[tokio::test(start_paused = true)]
async fn transport_error_decisions_and_details() {
    // TE-1: the caller's cancellation ends the call without backoff.
    let fake = Fake::new(3);
    let path: Path = Arc::default();
    let leaf = {
        let path = path.clone();
        tower::service_fn(move |req: RpcRequest| {
            path.lock().unwrap().push(req.target.addr.clone());
            async { Err::<RpcResponse, _>(Error::new(ErrorDetail::Canceled)) }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()))
        .layer(ReplicaLayer::new(fake.services()))
        .service(leaf);
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.target.region = Some(fake.snapshot());
    let err = stack.oneshot(req).await.expect_err("canceled");
    assert!(matches!(err.detail(), ErrorDetail::Canceled));
    assert_eq!(path.lock().unwrap().len(), 1);

    // A budget exhausted in the transport-error backoff returns the transport error itself
    // (SL-3 step 2).
    let fake = Fake::new(3);
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![Step::Timeout; 40],
        |req| req.backoffer = SharedBackoffer::new(Backoffer::new(300)),
    )
    .await;
    let err = r.result.expect_err("fails");
    assert!(matches!(err.detail(), ErrorDetail::AttemptTimeout { .. }));

    // Details: attempts and backoff time are reported.
    let fake = Fake::new(3);
    let r = run(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![not_leader(None)],
    )
    .await;
    let resp = r.result.expect("ok");
    assert_eq!(resp.details.attempts, 2);
    assert_eq!(
        resp.details.backoff_time.as_millis() as u64,
        r.bo.total_sleep_ms()
    );
    let _ = CmdType::Get;
}

#[tokio::test(start_paused = true)]
async fn region_gone_gives_pseudo_error_without_sending() {
    let fake = Fake::new(3);
    let snap = fake.snapshot();
    fake.lock().valid = false;
    let leaf = tower::service_fn(|_req: RpcRequest| async {
        panic!("must not be called");
        #[allow(unreachable_code)]
        Ok::<RpcResponse, Error>(RpcResponse::new(kvrpcpb::GetResponse::default()))
    });
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()))
        .layer(ReplicaLayer::new(fake.services()))
        .service(leaf);
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.target.region = Some(snap);
    let resp = stack.oneshot(req).await.expect("pseudo response");
    assert!(
        resp.region_error()
            .is_some_and(crate::classify::is_fake_region_error)
    );
}

#[tokio::test(start_paused = true)]
async fn exec_details_are_recorded_when_asked() {
    let fake = Fake::new(3);
    let sink = crate::exec_details::ExecDetailsSink::new();
    let s2 = sink.clone();
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![busy(10), not_leader(None)],
        move |req| {
            req.extensions.insert(s2);
        },
    )
    .await;
    assert!(r.ok());
    let d = sink.snapshot();
    assert_eq!(d.rpc_count(), 3);
    assert_eq!(d.rpc[&CmdType::Get].count, 3);
    assert_eq!(d.errors["not_leader"], 1);
    assert_eq!(d.errors["server_is_busy"], 1);
    assert_eq!(d.backoff["regionScheduling"].count, 1);
    assert_eq!(d.backoff["tikvServerBusy"].count, 1);
    assert_eq!(d.backoff_count(), 2);
    assert_eq!(
        d.backoff_duration().as_millis() as u64,
        r.bo.total_sleep_ms()
    );
}

// ===== TE-5, SL-2 step 3, read invariants, capped error stats and access history =====

#[tokio::test(start_paused = true)]
async fn resource_group_errors_fail_at_once_without_store_feedback() {
    for detail in [
        ErrorDetail::ResourceGroupThrottled("wait 3s".into()),
        ErrorDetail::ResourceGroupConfigUnavailable("no config".into()),
        ErrorDetail::GetResourceGroup {
            name: "rg1".into(),
            cause: "pd down".into(),
        },
    ] {
        let fake = Fake::new(3);
        // A probe would find the store unreachable: TE-6 must not even ask.
        fake.lock().probe_unreachable = true;
        let r = run(
            &fake,
            ReplicaReadType::Leader,
            false,
            vec![Step::Fail(detail.clone())],
        )
        .await;
        assert_eq!(r.path, strs(&["s1/L"]), "{detail:?}");
        let err = r.result.expect_err("fails");
        assert!(err.is_resource_group_error(), "{err:?}");
        assert_eq!(err.to_string(), Error::new(detail).to_string());
        assert_eq!(r.bo.with(|b| b.total_backoff_times()), 0);
        let s = fake.lock();
        assert_eq!(s.epochs.get(&1).copied().unwrap_or(0), 0);
        assert!(s.need_check.is_empty());
        assert!(s.slow.is_empty());
        drop(s);
        assert!(fake.is_valid());
    }
}

/// A validator that rejects every ts above `max` and remembers what it was asked.
struct MaxTs {
    max: u64,
    seen: Mutex<Vec<(u64, bool)>>,
}

impl super::ReadTsValidator for MaxTs {
    fn validate_read_ts(
        &self,
        read_ts: u64,
        is_stale_read: bool,
    ) -> futures_core::future::BoxFuture<'static, Result<()>> {
        self.seen.lock().unwrap().push((read_ts, is_stale_read));
        let r = if read_ts > self.max {
            Err(Error::new(ErrorDetail::InvalidArgument(format!(
                "read ts {read_ts} is in the future"
            ))))
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(r))
    }
}

#[tokio::test(start_paused = true)]
async fn read_ts_is_validated_before_the_first_attempt() {
    let fake = Fake::new(3);
    let validator = Arc::new(MaxTs {
        max: 100,
        seen: Mutex::new(Vec::new()),
    });
    let sent: Path = Arc::default();
    let leaf = {
        let sent = sent.clone();
        tower::service_fn(move |req: RpcRequest| {
            sent.lock().unwrap().push(format!("{}", req.cmd_type()));
            async { Ok::<_, Error>(RpcResponse::new(kvrpcpb::GetResponse::default())) }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()).read_ts_validator(validator.clone()))
        .layer(ReplicaLayer::new(fake.services()).deterministic(true))
        .service(leaf);
    let get = |version: u64, stale: bool| {
        let mut req = RpcRequest::new(kvrpcpb::GetRequest {
            key: b"k".to_vec(),
            version,
            ..Default::default()
        });
        if stale {
            req.enable_stale_read();
        }
        req.target.region = Some(fake.snapshot());
        req
    };

    // Accepted: sent.
    stack.clone().oneshot(get(100, false)).await.expect("ok");
    // Rejected: the validator's error, no RPC.
    let err = stack
        .clone()
        .oneshot(get(101, true))
        .await
        .expect_err("rejected");
    assert!(matches!(err.detail(), ErrorDetail::InvalidArgument(_)));
    assert_eq!(*sent.lock().unwrap(), strs(&["Get"]));
    assert_eq!(
        *validator.seen.lock().unwrap(),
        vec![(100, false), (101, true)]
    );

    // Writes and raw commands are not validated.
    let mut req = RpcRequest::new(kvrpcpb::RawPutRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    req.target.region = Some(fake.snapshot());
    let _ = stack.clone().oneshot(req).await;
    assert_eq!(validator.seen.lock().unwrap().len(), 2);

    // Neither are requests to TiDB.
    let mut req = get(u64::MAX, false);
    req.options.endpoint = crate::request::EndpointType::TiDB;
    let _ = stack.clone().oneshot(req).await;
    assert_eq!(validator.seen.lock().unwrap().len(), 2);
}

#[test]
fn read_ts_commands() {
    use super::read_ts_to_validate;
    let scan_lock = RpcRequest::new(kvrpcpb::ScanLockRequest {
        max_version: 9,
        ..Default::default()
    });
    assert_eq!(read_ts_to_validate(&scan_lock), Some(9));
    let cop = RpcRequest::new(tikv_proto::coprocessor::Request {
        start_ts: 8,
        ..Default::default()
    });
    assert_eq!(read_ts_to_validate(&cop), Some(8));
    let prewrite = RpcRequest::new(kvrpcpb::PrewriteRequest {
        start_version: 7,
        ..Default::default()
    });
    assert_eq!(read_ts_to_validate(&prewrite), None);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_carries_the_callers_read_intent() {
    use crate::network::ReadInvariants;
    let fake = Fake::new(3);
    let seen: Arc<Mutex<Vec<(bool, Option<ReadInvariants>)>>> = Arc::default();
    let leaf = {
        let seen = seen.clone();
        tower::service_fn(move |req: RpcRequest| {
            let first = seen.lock().unwrap().is_empty();
            seen.lock()
                .unwrap()
                .push((req.context.stale_read, req.read_invariants()));
            async move {
                if first {
                    let e = errorpb::Error {
                        data_is_not_ready: Some(Default::default()),
                        ..Default::default()
                    };
                    Ok::<_, Error>(RpcResponse::new(kvrpcpb::GetResponse {
                        region_error: Some(e),
                        ..Default::default()
                    }))
                } else {
                    Ok(RpcResponse::new(kvrpcpb::GetResponse::default()))
                }
            }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(fake.services()))
        .layer(ReplicaLayer::new(fake.services()).deterministic(true))
        .service(leaf);
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.enable_stale_read();
    req.target.region = Some(fake.snapshot());
    stack.oneshot(req).await.expect("ok");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The retry after DataIsNotReady is a leader read, but the call is a stale read.
    assert!(seen[0].0 && !seen[1].0, "{seen:?}");
    for (_, inv) in seen {
        assert_eq!(
            inv,
            Some(ReadInvariants {
                stale_read: true,
                replica_read: ReplicaReadType::Mixed,
            })
        );
    }
}

#[tokio::test(start_paused = true)]
async fn exec_details_record_the_replicas_tried() {
    use crate::exec_details::AccessReadType;
    let fake = Fake::new(3);
    let sink = crate::exec_details::ExecDetailsSink::new();
    let s2 = sink.clone();
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        true,
        vec![region_err(|e| {
            e.data_is_not_ready = Some(Default::default())
        })],
        move |req| {
            req.extensions.insert(s2);
        },
    )
    .await;
    assert!(r.ok(), "{:?}", r.path);
    let d = sink.snapshot();
    assert_eq!(d.errors["data_is_not_ready"], 1);
    assert_eq!(d.access.infos.len(), 1);
    let info = &d.access.infos[0];
    assert_eq!(info.read_type, AccessReadType::StaleRead);
    assert_eq!(info.err, "data_is_not_ready");
    // The first stale read went to the store the path names first.
    let first_store: u64 = r.path[0][1..2].parse().unwrap();
    assert_eq!(info.store, first_store);
    assert_eq!(info.peer, 100 + first_store);

    // Many distinct errors: 16 labels kept, the rest counted as other_error.
    let fake = Fake::new(3);
    let sink = crate::exec_details::ExecDetailsSink::new();
    let mut d = crate::exec_details::ExecDetails::default();
    for i in 0..20 {
        d.record_error(&format!("e{i}"));
    }
    sink.record(&d);
    let s2 = sink.clone();
    let r = run_with(
        &fake,
        ReplicaReadType::Leader,
        false,
        vec![busy(0)],
        move |req| {
            req.extensions.insert(s2);
        },
    )
    .await;
    assert!(r.ok());
    let d = sink.snapshot();
    assert_eq!(d.other_errors(), 5);
    assert!(!d.errors.contains_key("server_is_busy"));
}
