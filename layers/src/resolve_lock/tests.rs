//! Resolve-lock layer unit tests: a fake resolver, tower-test mocks, paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_proto::{errorpb, kvrpcpb};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::backoff::{BackoffKind, Backoffer, SharedBackoffer};
use crate::error::{BoxError, Error, ErrorDetail, ErrorKind, Result};
use crate::request::{CmdType, CommandResponse, ReplicaReadType, RpcRequest, RpcResponse};

/// A resolver that records what it was asked and answers from a script (resolved when the
/// script is empty).
#[derive(Default)]
struct FakeResolver {
    calls: Mutex<Vec<ResolveLocksOptions>>,
    script: Mutex<VecDeque<Result<ResolveOutcome>>>,
}

impl FakeResolver {
    fn with(script: Vec<Result<ResolveOutcome>>) -> Arc<FakeResolver> {
        Arc::new(FakeResolver {
            calls: Mutex::default(),
            script: Mutex::new(script.into()),
        })
    }

    fn calls(&self) -> Vec<ResolveLocksOptions> {
        self.calls.lock().unwrap().clone()
    }
}

impl LockResolver for FakeResolver {
    fn resolve_locks(
        &self,
        _bo: SharedBackoffer,
        opts: ResolveLocksOptions,
    ) -> BoxFuture<'static, Result<ResolveOutcome>> {
        self.calls.lock().unwrap().push(opts);
        let out = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(ResolveOutcome::resolved()));
        Box::pin(async move { out })
    }
}

type Handle = mock::Handle<RpcRequest, RpcResponse>;

/// The layer over a tower-test mock; returns the spawned call and the mock's handle.
async fn send(
    resolver: Arc<FakeResolver>,
    req: RpcRequest,
) -> (JoinHandle<Result<RpcResponse>>, Handle) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    let inner = svc.map_err(Error::from_boxed as fn(BoxError) -> Error);
    let mut svc = ResolveLockLayer::new(resolver).layer(inner);
    let fut = svc.ready().await.unwrap().call(req);
    (tokio::spawn(fut), handle)
}

/// Answers the next attempt with `resp` and returns the request it carried.
async fn answer(handle: &mut Handle, resp: RpcResponse) -> RpcRequest {
    let (req, send) = handle.next_request().await.expect("an attempt");
    send.send_response(resp);
    req
}

fn lock(key: &[u8], txn: u64) -> kvrpcpb::LockInfo {
    kvrpcpb::LockInfo {
        key: key.to_vec(),
        primary_lock: b"p".to_vec(),
        lock_version: txn,
        lock_ttl: 3000,
        ..Default::default()
    }
}

fn locked(key: &[u8], txn: u64) -> kvrpcpb::KeyError {
    kvrpcpb::KeyError {
        locked: Some(lock(key, txn)),
        ..Default::default()
    }
}

fn get(version: u64) -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"k".to_vec(),
        version,
        ..Default::default()
    });
    req.backoffer = SharedBackoffer::new(Backoffer::new(20_000));
    req
}

fn get_locked(txn: u64) -> RpcResponse {
    RpcResponse::new(kvrpcpb::GetResponse {
        error: Some(locked(b"k", txn)),
        ..Default::default()
    })
}

fn get_value(v: &[u8]) -> RpcResponse {
    RpcResponse::new(kvrpcpb::GetResponse {
        value: v.to_vec(),
        ..Default::default()
    })
}

fn value_of(resp: &RpcResponse) -> Vec<u8> {
    match &resp.resp {
        CommandResponse::Get(r) => r.value.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

fn pair(key: &[u8], value: &[u8]) -> kvrpcpb::KvPair {
    kvrpcpb::KvPair {
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    }
}

fn locked_pair(key: &[u8], txn: u64) -> kvrpcpb::KvPair {
    kvrpcpb::KvPair {
        key: key.to_vec(),
        error: Some(locked(key, txn)),
        ..Default::default()
    }
}

fn batch_get(keys: &[&[u8]]) -> RpcRequest {
    let mut req = RpcRequest::new(kvrpcpb::BatchGetRequest {
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        version: 50,
        ..Default::default()
    });
    req.backoffer = SharedBackoffer::new(Backoffer::new(20_000));
    req
}

fn batch_resp(pairs: Vec<kvrpcpb::KvPair>) -> RpcResponse {
    RpcResponse::new(kvrpcpb::BatchGetResponse {
        pairs,
        ..Default::default()
    })
}

fn keys_of(req: &RpcRequest) -> Vec<Vec<u8>> {
    req.cmd
        .batch_get()
        .map(|b| b.keys.clone())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn other_commands_pass_through() {
    let resolver = FakeResolver::with(vec![]);
    let req = RpcRequest::new(kvrpcpb::PrewriteRequest::default());
    let (task, mut handle) = send(resolver.clone(), req).await;
    // Even a lock error in the answer is the caller's business for writes.
    answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::PrewriteResponse {
            errors: vec![locked(b"k", 1)],
            ..Default::default()
        }),
    )
    .await;
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.cmd_type(), CmdType::Prewrite);
    assert!(resolver.calls().is_empty());
    assert!(!resolves_locks_for(CmdType::Prewrite));
    for cmd in [
        CmdType::Get,
        CmdType::BatchGet,
        CmdType::BufferBatchGet,
        CmdType::Scan,
    ] {
        assert!(resolves_locks_for(cmd), "{cmd}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_read_without_locks_is_answered_as_is() {
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver.clone(), get(10)).await;
    answer(&mut handle, get_value(b"v")).await;
    let resp = task.await.unwrap().unwrap();
    assert_eq!(value_of(&resp), b"v");
    assert!(resolver.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn get_resolves_lite_for_read_and_resends_at_once() {
    let resolver = FakeResolver::with(vec![Ok(ResolveOutcome::resolved()
        .with_ignore_locks(vec![7])
        .with_access_locks(vec![8]))]);
    let start = Instant::now();
    let (task, mut handle) = send(resolver.clone(), get(10)).await;
    let first = answer(&mut handle, get_locked(7)).await;
    assert!(first.context.resolved_locks.is_empty());
    let second = answer(&mut handle, get_value(b"v")).await;
    let resp = task.await.unwrap().unwrap();
    assert_eq!(value_of(&resp), b"v");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no backoff when all resolved"
    );

    let calls = resolver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].caller_start_ts, 10);
    assert_eq!(calls[0].locks, vec![lock(b"k", 7)]);
    assert!(calls[0].lite);
    assert!(calls[0].for_read);
    // What the resolver learned rides in the resend's context (client-go's ClientHelper).
    assert_eq!(second.context.resolved_locks, vec![7]);
    assert_eq!(second.context.committed_locks, vec![8]);
    assert_eq!(second.cmd, first.cmd);
    assert_eq!(resp.details.attempts, 0, "the mock reports no attempts");
}

#[tokio::test(start_paused = true)]
async fn a_live_lock_backs_off_txn_lock_fast_at_most_until_it_expires() {
    let resolver = FakeResolver::with(vec![Ok(ResolveOutcome::expires_in(3))]);
    let req = get(10);
    let bo = req.backoffer.clone();
    let start = Instant::now();
    let (task, mut handle) = send(resolver, req).await;
    answer(&mut handle, get_locked(7)).await;
    answer(&mut handle, get_value(b"v")).await;
    let resp = task.await.unwrap().unwrap();
    let waited = start.elapsed();
    assert_eq!(bo.times_of(BackoffKind::TxnLockFast), 1);
    // The txnLockFast base is 10 ms, but the sleep is capped by the lock's 3 ms.
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_millis(3),
        "{waited:?}"
    );
    assert_eq!(resp.details.backoff_time, waited);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_fails_with_resolve_lock_timeout() {
    let resolver = FakeResolver::with(
        (0..100)
            .map(|_| Ok(ResolveOutcome::expires_in(3_000)))
            .collect(),
    );
    let mut req = get(10);
    req.backoffer = SharedBackoffer::new(Backoffer::new(30));
    let (task, mut handle) = send(resolver, req).await;
    let answering = tokio::spawn(async move {
        while let Some((_req, send)) = handle.next_request().await {
            send.send_response(get_locked(7));
        }
    });
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::ResolveLockTimeout),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::BackoffExhausted);
    answering.abort();
}

#[tokio::test(start_paused = true)]
async fn a_stale_read_that_met_a_lock_goes_to_the_leader() {
    let resolver = FakeResolver::with(vec![]);
    let mut req = get(10);
    req.enable_stale_read();
    req.context.busy_threshold_ms = 50;
    let (task, mut handle) = send(resolver, req).await;
    let first = answer(&mut handle, get_locked(7)).await;
    assert!(first.context.stale_read);
    let second = answer(&mut handle, get_value(b"v")).await;
    task.await.unwrap().unwrap();
    assert!(!second.options.stale_read);
    assert!(!second.context.stale_read);
    assert_eq!(second.options.replica_read, ReplicaReadType::Leader);
    assert_eq!(second.context.busy_threshold_ms, 0);
}

#[tokio::test(start_paused = true)]
async fn an_auto_commit_point_get_is_blocked_only_by_its_first_lock() {
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver.clone(), get(u64::MAX)).await;
    answer(&mut handle, get_locked(7)).await;
    // A lock of another transaction on the resend: read through it, no resolution.
    let second = answer(&mut handle, get_locked(9)).await;
    assert!(second.context.resolved_locks.is_empty());
    let third = answer(&mut handle, get_value(b"v")).await;
    task.await.unwrap().unwrap();
    assert_eq!(third.context.resolved_locks, vec![9]);
    assert_eq!(resolver.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_regular_point_get_resolves_every_lock_it_meets() {
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver.clone(), get(10)).await;
    answer(&mut handle, get_locked(7)).await;
    answer(&mut handle, get_locked(9)).await;
    answer(&mut handle, get_value(b"v")).await;
    task.await.unwrap().unwrap();
    let calls = resolver.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].locks[0].lock_version, 9);
}

#[tokio::test(start_paused = true)]
async fn batch_get_resends_only_the_locked_keys_and_merges_the_pairs() {
    let resolver = FakeResolver::with(vec![Ok(ResolveOutcome::resolved())]);
    let (task, mut handle) = send(resolver.clone(), batch_get(&[b"a", b"b", b"c"])).await;
    let first = answer(
        &mut handle,
        batch_resp(vec![
            pair(b"a", b"1"),
            locked_pair(b"b", 7),
            locked_pair(b"c", 8),
        ]),
    )
    .await;
    assert_eq!(keys_of(&first).len(), 3);
    let second = answer(
        &mut handle,
        batch_resp(vec![pair(b"b", b"2"), pair(b"c", b"3")]),
    )
    .await;
    assert_eq!(keys_of(&second), vec![b"b".to_vec(), b"c".to_vec()]);
    let resp = task.await.unwrap().unwrap();
    let CommandResponse::BatchGet(r) = resp.resp else {
        panic!("not a batch get")
    };
    let got: Vec<_> = r
        .pairs
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec()),
        ]
    );
    let calls = resolver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].caller_start_ts, 50);
    assert_eq!(calls[0].locks, vec![lock(b"b", 7), lock(b"c", 8)]);
    assert!(!calls[0].lite);
    assert!(calls[0].for_read);
}

#[tokio::test(start_paused = true)]
async fn batch_get_keeps_every_key_after_a_response_level_lock() {
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver.clone(), batch_get(&[b"a", b"b"])).await;
    answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::BatchGetResponse {
            // Pairs next to a response-level error are incomplete and ignored.
            pairs: vec![pair(b"a", b"stale")],
            error: Some(locked(b"b", 7)),
            ..Default::default()
        }),
    )
    .await;
    let second = answer(
        &mut handle,
        batch_resp(vec![pair(b"a", b"1"), pair(b"b", b"2")]),
    )
    .await;
    assert_eq!(keys_of(&second), vec![b"a".to_vec(), b"b".to_vec()]);
    let resp = task.await.unwrap().unwrap();
    let CommandResponse::BatchGet(r) = resp.resp else {
        panic!("not a batch get")
    };
    assert_eq!(r.pairs.len(), 2);
    assert_eq!(resolver.calls()[0].locks, vec![lock(b"b", 7)]);
}

#[tokio::test(start_paused = true)]
async fn buffer_batch_get_is_resolved_like_batch_get() {
    let resolver = FakeResolver::with(vec![]);
    let mut req = RpcRequest::new(kvrpcpb::BufferBatchGetRequest {
        keys: vec![b"a".to_vec(), b"b".to_vec()],
        version: 5,
        ..Default::default()
    });
    req.backoffer = SharedBackoffer::new(Backoffer::new(20_000));
    let (task, mut handle) = send(resolver.clone(), req).await;
    answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::BufferBatchGetResponse {
            pairs: vec![pair(b"a", b"1"), locked_pair(b"b", 3)],
            ..Default::default()
        }),
    )
    .await;
    let second = answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::BufferBatchGetResponse {
            pairs: vec![pair(b"b", b"2")],
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        second.cmd.buffer_batch_get().map(|b| b.keys.clone()),
        Some(vec![b"b".to_vec()])
    );
    let resp = task.await.unwrap().unwrap();
    let CommandResponse::BufferBatchGet(r) = resp.resp else {
        panic!("not a buffer batch get")
    };
    assert_eq!(r.pairs.len(), 2);
    assert!(resolver.calls()[0].for_read);
}

#[tokio::test(start_paused = true)]
async fn scan_resolves_a_response_level_lock_and_resends_the_same_request() {
    let resolver = FakeResolver::with(vec![]);
    let mut req = RpcRequest::new(kvrpcpb::ScanRequest {
        start_key: b"a".to_vec(),
        limit: 10,
        version: 20,
        ..Default::default()
    });
    req.backoffer = SharedBackoffer::new(Backoffer::new(20_000));
    let (task, mut handle) = send(resolver.clone(), req).await;
    let first = answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::ScanResponse {
            error: Some(locked(b"c", 4)),
            ..Default::default()
        }),
    )
    .await;
    // Locks on single pairs are the scanner's to resolve, key by key.
    let second = answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::ScanResponse {
            pairs: vec![pair(b"a", b"1"), locked_pair(b"c", 4)],
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(first.cmd, second.cmd);
    let resp = task.await.unwrap().unwrap();
    let CommandResponse::Scan(r) = resp.resp else {
        panic!("not a scan")
    };
    assert_eq!(r.pairs.len(), 2);
    assert!(r.pairs[1].error.is_some());
    let calls = resolver.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].caller_start_ts, 20);
    assert!(!calls[0].for_read && !calls[0].lite);
}

#[tokio::test(start_paused = true)]
async fn other_key_errors_and_region_errors_pass_through() {
    // A key error that is not a lock.
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver.clone(), get(10)).await;
    answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::GetResponse {
            error: Some(kvrpcpb::KeyError {
                abort: "gone".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await;
    let resp = task.await.unwrap().unwrap();
    assert!(resp.has_key_error());

    // A region error after a resolve round: handed up without the pairs read so far.
    let (task, mut handle) = send(resolver.clone(), batch_get(&[b"a", b"b"])).await;
    answer(
        &mut handle,
        batch_resp(vec![pair(b"a", b"1"), locked_pair(b"b", 7)]),
    )
    .await;
    let region_err = errorpb::Error {
        epoch_not_match: Some(Default::default()),
        ..Default::default()
    };
    answer(
        &mut handle,
        RpcResponse::new(kvrpcpb::BatchGetResponse {
            region_error: Some(region_err.clone()),
            ..Default::default()
        }),
    )
    .await;
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.region_error(), Some(&region_err));

    // A batch-get pair with another key error ends the loop; the caller maps it.
    let (task, mut handle) = send(resolver.clone(), batch_get(&[b"a", b"b"])).await;
    let conflict = kvrpcpb::KvPair {
        key: b"b".to_vec(),
        error: Some(kvrpcpb::KeyError {
            retryable: "again".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    answer(
        &mut handle,
        batch_resp(vec![locked_pair(b"a", 1), conflict]),
    )
    .await;
    let resp = task.await.unwrap().unwrap();
    let CommandResponse::BatchGet(r) = resp.resp else {
        panic!("not a batch get")
    };
    assert_eq!(r.pairs.len(), 2);
    assert_eq!(
        resolver.calls().len(),
        1,
        "only the first batch get resolved"
    );
}

#[tokio::test(start_paused = true)]
async fn resolver_and_transport_errors_fail_the_read() {
    let resolver = FakeResolver::with(vec![Err(ErrorDetail::TxnNotFound { start_ts: 7 }.into())]);
    let (task, mut handle) = send(resolver, get(10)).await;
    answer(&mut handle, get_locked(7)).await;
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(
        err.detail(),
        ErrorDetail::TxnNotFound { start_ts: 7 }
    ));

    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver, get(10)).await;
    answer(&mut handle, get_locked(7)).await;
    let (_req, send) = handle.next_request().await.unwrap();
    send.send_error(Error::from(ErrorDetail::Transport {
        addr: "a".into(),
        message: "reset".into(),
    }));
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
}

#[tokio::test(start_paused = true)]
async fn details_add_up_over_the_rounds() {
    let resolver = FakeResolver::with(vec![]);
    let (task, mut handle) = send(resolver, get(10)).await;
    let mut r1 = get_locked(7);
    r1.details.attempts = 2;
    r1.details.rpc_time = Duration::from_millis(5);
    answer(&mut handle, r1).await;
    let mut r2 = get_value(b"v");
    r2.details.attempts = 1;
    r2.details.rpc_time = Duration::from_millis(3);
    answer(&mut handle, r2).await;
    let resp = task.await.unwrap().unwrap();
    assert_eq!(resp.details.attempts, 3);
    assert_eq!(resp.details.rpc_time, Duration::from_millis(8));
}

#[test]
fn options_and_outcomes_build() {
    // The layer fits a boxed pipeline stage (`BoxCloneSyncService`).
    fn inner() -> tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(|_req: RpcRequest| {
            std::future::ready(Ok::<_, Error>(RpcResponse::new(
                tikv_proto::kvrpcpb::GetResponse::default(),
            )))
        }))
    }
    let _stage = tower::util::BoxCloneSyncService::new(
        ResolveLockLayer::new(FakeResolver::with(vec![])).layer(inner()),
    );
    let o = ResolveLocksOptions::new(5, vec![lock(b"k", 1)])
        .lite(true)
        .for_read(true);
    assert!(o.lite && o.for_read);
    assert_eq!(o.caller_start_ts, 5);
    assert_eq!(ResolveOutcome::expires_in(9).ms_before_expired, 9);
    assert_eq!(ResolveOutcome::resolved(), ResolveOutcome::default());
    fn assert_send_static<T: Send + 'static>() {}
    type Inner = tower::util::BoxCloneSyncService<RpcRequest, RpcResponse, Error>;
    assert_send_static::<ResolveLock<Inner>>();
    assert_send_static::<ResponseFuture<Inner>>();
    let layer = ResolveLockLayer::new(FakeResolver::with(vec![]));
    assert!(format!("{layer:?}").contains("ResolveLockLayer"));
}
