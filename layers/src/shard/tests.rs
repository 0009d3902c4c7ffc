//! Tests of the shard layer: a fake region locator whose regions can be split between
//! calls, tower-test mocks for scripted answers, and a small in-memory store model that
//! answers from its region's slice of a `BTreeMap` and rejects stale region versions.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::future::BoxFuture;
use proptest::prelude::*;
use tikv_proto::{errorpb, kvrpcpb, metapb};
use tower::{Service, ServiceExt};
use tower_test::mock;

use super::keys::{KeyPlan, RouteKey, route_key};
use super::*;
use crate::backoff::{BackoffKind, Backoffer, SharedBackoffer};
use crate::error::{BoxError, Error, ErrorDetail, ErrorKind, Result};
use crate::locate::{
    EpochNotMatchOutcome, InvalidReason, RegionLocator, RegionSnapshot, RegionVerId,
};
use crate::request::{CmdType, Command, CommandResponse, RpcRequest, RpcResponse};

// More tests by topic, sharing the fixtures of this file: the public surface (layer,
// service, policy, future), the key plans and merges, the point and key fan-out paths,
// and the range paging.
#[cfg(test)]
mod fan_out;
#[cfg(test)]
mod paging;
#[cfg(test)]
mod plan;
#[cfg(test)]
mod surface;

// ===== fixtures =====

fn snap(id: u64, ver: u64, start: &[u8], end: &[u8]) -> Arc<RegionSnapshot> {
    Arc::new(RegionSnapshot {
        ver: RegionVerId {
            id,
            conf_ver: 1,
            ver,
        },
        region: Arc::new(metapb::Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: ver,
            }),
            ..Default::default()
        }),
        store_epochs: Arc::from(Vec::new()),
        tikv_peers: Arc::from(Vec::new()),
        tiflash_peers: Arc::from(Vec::new()),
        work_tikv_idx: 0,
        work_tiflash_idx: 0,
        buckets: None,
        pending_peers: Arc::from(Vec::new()),
    })
}

#[derive(Default)]
struct LocatorState {
    /// The cluster's regions, in key order.
    truth: Vec<Arc<RegionSnapshot>>,
    /// What the "cache" answers; lags behind `truth` until `refresh`.
    cache: Vec<Arc<RegionSnapshot>>,
    next_id: u64,
    fail_next: Option<ErrorDetail>,
    /// A region the next lookup answers whatever it was asked (a cache gone wrong).
    answer_next: Option<Arc<RegionSnapshot>>,
}

/// A region locator over scripted regions. `split` changes the cluster only; the cache
/// learns it on `refresh` (what the retry layer's `on_epoch_not_match` does when a store
/// answers `EpochNotMatch`).
#[derive(Default)]
struct FakeLocator {
    state: Mutex<LocatorState>,
    locates: AtomicUsize,
}

impl FakeLocator {
    fn with_splits(splits: &[&[u8]]) -> Arc<FakeLocator> {
        let mut bounds: Vec<Vec<u8>> = vec![Vec::new()];
        bounds.extend(splits.iter().map(|s| s.to_vec()));
        bounds.push(Vec::new());
        let regions: Vec<_> = bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| snap(i as u64 + 1, 1, &w[0], &w[1]))
            .collect();
        let loc = FakeLocator::default();
        {
            let mut st = loc.state.lock().unwrap();
            st.next_id = regions.len() as u64 + 1;
            st.truth = regions.clone();
            st.cache = regions;
        }
        Arc::new(loc)
    }

    /// Splits the cluster's region holding `key` at `key` (both halves get a new version).
    fn split(&self, key: &[u8]) {
        let mut st = self.state.lock().unwrap();
        let Some(pos) = st.truth.iter().position(|r| r.contains(key)) else {
            return;
        };
        let r = st.truth[pos].clone();
        if r.start_key() == key {
            return;
        }
        let id = st.next_id;
        st.next_id += 1;
        let left = snap(r.ver.id, r.ver.ver + 1, r.start_key(), key);
        let right = snap(id, r.ver.ver + 1, key, r.end_key());
        st.truth.splice(pos..=pos, [left, right]);
    }

    fn refresh(&self) {
        let mut st = self.state.lock().unwrap();
        st.cache = st.truth.clone();
    }

    fn truth_by_id(&self, id: u64) -> Option<Arc<RegionSnapshot>> {
        let st = self.state.lock().unwrap();
        st.truth.iter().find(|r| r.ver.id == id).cloned()
    }

    fn truth(&self) -> Vec<Arc<RegionSnapshot>> {
        self.state.lock().unwrap().truth.clone()
    }

    fn cached(&self, key: &[u8]) -> Arc<RegionSnapshot> {
        let st = self.state.lock().unwrap();
        st.cache.iter().find(|r| r.contains(key)).cloned().unwrap()
    }

    fn fail_next(&self, e: ErrorDetail) {
        self.state.lock().unwrap().fail_next = Some(e);
    }

    /// Makes the next lookup answer `region`, whether or not it holds the key asked for.
    fn answer_next(&self, region: Arc<RegionSnapshot>) {
        self.state.lock().unwrap().answer_next = Some(region);
    }

    fn lookup(
        &self,
        f: impl Fn(&RegionSnapshot) -> bool,
    ) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        self.locates.fetch_add(1, Ordering::SeqCst);
        let mut st = self.state.lock().unwrap();
        let res = match (st.fail_next.take(), st.answer_next.take()) {
            (Some(e), _) => Err(e.into()),
            (None, Some(r)) => Ok(r),
            (None, None) => st
                .cache
                .iter()
                .find(|r| f(r))
                .cloned()
                .ok_or_else(|| ErrorDetail::Internal("no region".into()).into()),
        };
        Box::pin(std::future::ready(res))
    }
}

impl RegionLocator for FakeLocator {
    fn locate_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let key = key.to_vec();
        self.lookup(move |r| r.contains(&key))
    }
    fn locate_end_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let key = key.to_vec();
        self.lookup(move |r| r.contains_by_end(&key))
    }
    fn locate_region_by_id(&self, id: u64) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        self.lookup(move |r| r.ver.id == id)
    }
    fn cached_region(&self, _ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        None
    }
    fn invalidate_region(&self, _ver: &RegionVerId, _reason: InvalidReason) {}
    fn schedule_reload(&self, _ver: &RegionVerId) {}
    fn schedule_delayed_reload(&self, _ver: &RegionVerId) {}
    fn switch_leader(&self, _ver: &RegionVerId, _peer: &metapb::Peer) -> bool {
        false
    }
    fn update_leader(&self, _ver: &RegionVerId, _leader: Option<&metapb::Peer>, _idx: usize) {}
    fn switch_next_tikv_peer(&self, _ver: &RegionVerId, _idx: usize) {}
    fn on_epoch_not_match(
        &self,
        _bo: SharedBackoffer,
        _ver: RegionVerId,
        _store_id: u64,
        _current: Vec<metapb::Region>,
    ) -> BoxFuture<'static, Result<EpochNotMatchOutcome>> {
        Box::pin(std::future::ready(Ok(EpochNotMatchOutcome::Updated)))
    }
    fn on_bucket_version_not_match(&self, _ver: &RegionVerId, _version: u64, _keys: Vec<Vec<u8>>) {}
    fn cluster_id(&self) -> u64 {
        0
    }
}

type MockSvc = tower::util::MapErr<mock::Mock<RpcRequest, RpcResponse>, fn(BoxError) -> Error>;

fn mock_pair() -> (MockSvc, mock::Handle<RpcRequest, RpcResponse>) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    let svc = svc.map_err(Error::from_boxed as fn(BoxError) -> Error);
    (svc, handle)
}

fn shard<S>(svc: S, locator: &Arc<FakeLocator>) -> Shard<S> {
    Shard::new(svc, locator.clone())
}

fn region_err(f: impl FnOnce(&mut errorpb::Error)) -> errorpb::Error {
    let mut e = errorpb::Error {
        message: "injected".into(),
        ..Default::default()
    };
    f(&mut e);
    e
}

fn not_leader() -> errorpb::Error {
    region_err(|e| e.not_leader = Some(errorpb::NotLeader::default()))
}

fn with_region_error(cmd: &Command, e: errorpb::Error) -> RpcResponse {
    RpcResponse::new(cmd.region_error_response(e).unwrap())
}

fn pair(k: &[u8], v: &[u8]) -> kvrpcpb::KvPair {
    kvrpcpb::KvPair {
        key: k.to_vec(),
        value: v.to_vec(),
        ..Default::default()
    }
}

fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
    ks.iter().map(|k| k.as_bytes().to_vec()).collect()
}

fn raw_batch_get(ks: &[&str]) -> RpcRequest {
    RpcRequest::new(kvrpcpb::RawBatchGetRequest {
        keys: keys(ks),
        ..Default::default()
    })
}

/// The keys a sub-request carries, as strings.
fn sent_keys(req: &RpcRequest) -> Vec<String> {
    let ks: Vec<Vec<u8>> = match &req.cmd {
        Command::RawBatchGet(r) => r.keys.clone(),
        Command::RawBatchDelete(r) => r.keys.clone(),
        Command::Commit(r) => r.keys.clone(),
        Command::RawBatchPut(r) => r.pairs.iter().map(|p| p.key.clone()).collect(),
        Command::RawGet(r) => vec![r.key.clone()],
        Command::RawPut(r) => vec![r.key.clone()],
        Command::BatchGet(r) => r.keys.clone(),
        Command::BatchRollback(r) => r.keys.clone(),
        Command::PessimisticRollback(r) => r.keys.clone(),
        Command::CheckSecondaryLocks(r) => r.keys.clone(),
        Command::ResolveLock(r) => r.keys.clone(),
        Command::SplitRegion(r) if r.split_keys.is_empty() => vec![r.split_key.clone()],
        Command::SplitRegion(r) => r.split_keys.clone(),
        Command::Prewrite(r) => r.mutations.iter().map(|m| m.key.clone()).collect(),
        Command::PessimisticLock(r) => r.mutations.iter().map(|m| m.key.clone()).collect(),
        Command::Flush(r) => r.mutations.iter().map(|m| m.key.clone()).collect(),
        other => panic!("unexpected {other:?}"),
    };
    ks.into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect()
}

fn region_of(req: &RpcRequest) -> Arc<RegionSnapshot> {
    req.target.region.clone().expect("sub-request routed")
}

/// Waits for the next request, or `None` when nothing arrives in a (virtual) second.
async fn next_request(
    handle: &mut mock::Handle<RpcRequest, RpcResponse>,
) -> Option<(RpcRequest, mock::SendResponse<RpcResponse>)> {
    tokio::time::timeout(Duration::from_secs(1), handle.next_request())
        .await
        .ok()
        .flatten()
}

// ===== key fan-out =====

#[tokio::test(start_paused = true)]
async fn batch_get_splits_by_region_and_merges_in_key_order() {
    let locator = FakeLocator::with_splits(&[b"f", b"q"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&["a", "b", "m", "x"])));

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            next_request(&mut handle)
                .await
                .expect("a sub-request per region"),
        );
    }
    assert!(next_request(&mut handle).await.is_none());
    let mut seen: Vec<(u64, Vec<String>)> = got
        .iter()
        .map(|(r, _)| (region_of(r).ver.id, sent_keys(r)))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (1, vec!["a".into(), "b".into()]),
            (2, vec!["m".into()]),
            (3, vec!["x".into()]),
        ]
    );
    // Answer in reverse key order: the merge still comes out in key order.
    got.sort_by_key(|(r, _)| std::cmp::Reverse(region_of(r).ver.id));
    for (req, send) in got {
        let pairs = sent_keys(&req)
            .iter()
            .map(|k| pair(k.as_bytes(), b"v"))
            .collect();
        let mut resp = RpcResponse::new(kvrpcpb::RawBatchGetResponse {
            pairs,
            ..Default::default()
        });
        resp.details.attempts = 1;
        send.send_response(resp);
    }
    let resp = call.await.unwrap().unwrap();
    let CommandResponse::RawBatchGet(r) = resp.resp else {
        panic!("wrong type")
    };
    let merged: Vec<&[u8]> = r.pairs.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(merged, vec![&b"a"[..], b"b", b"m", b"x"]);
    assert_eq!(resp.details.attempts, 3);
}

#[tokio::test(start_paused = true)]
async fn empty_batch_sends_nothing() {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&[])));
    assert!(next_request(&mut handle).await.is_none());
    let resp = call.await.unwrap().unwrap();
    assert!(matches!(resp.resp, CommandResponse::RawBatchGet(ref r) if r.pairs.is_empty()));
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn batches_follow_client_go_limits() {
    // Count limit: client-go's AppendKeyBatches closes a batch only once it holds more
    // than the limit, so a limit of 2 yields batches of 3.
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_raw_batch_pair_count(2));
    let svc = tower::Layer::layer(&layer, svc);
    let call = tokio::spawn(svc.oneshot(raw_batch_get(&["a", "b", "c", "d", "e", "f", "g"])));
    let mut sizes = Vec::new();
    while let Some((req, send)) = next_request(&mut handle).await {
        sizes.push(sent_keys(&req));
        send.send_response(RpcResponse::new(kvrpcpb::RawBatchGetResponse::default()));
    }
    sizes.sort();
    assert_eq!(
        sizes,
        vec![
            vec!["a".to_string(), "b".into(), "c".into()],
            vec!["d".into(), "e".into(), "f".into()],
            vec!["g".into()],
        ]
    );
    call.await.unwrap().unwrap();

    // Size limit: a batch is closed once keys + values reach the limit; the pair that
    // crosses it stays in the batch it ends.
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_raw_batch_put_size(10));
    let svc = tower::Layer::layer(&layer, svc);
    let put = kvrpcpb::RawBatchPutRequest {
        pairs: ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| pair(k.as_bytes(), b"1234567"))
            .collect(),
        ..Default::default()
    };
    let call = tokio::spawn(svc.oneshot(RpcRequest::new(put)));
    let mut sizes = Vec::new();
    while let Some((req, send)) = next_request(&mut handle).await {
        sizes.push(sent_keys(&req));
        send.send_response(RpcResponse::new(kvrpcpb::RawBatchPutResponse::default()));
    }
    sizes.sort();
    assert_eq!(
        sizes,
        vec![
            vec!["a".to_string(), "b".into()],
            vec!["c".into(), "d".into()],
            vec!["e".into()],
        ]
    );
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn epoch_not_match_resplits_without_backoff() {
    // One cached region; the cluster split it twice before the write arrives.
    let locator = FakeLocator::with_splits(&[]);
    locator.split(b"h");
    locator.split(b"q");
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let put = kvrpcpb::RawBatchPutRequest {
        pairs: vec![pair(b"a", b"1"), pair(b"m", b"2"), pair(b"x", b"3")],
        ttls: vec![7, 8, 9],
        ..Default::default()
    };
    let req = RpcRequest::new(put).backoffer(bo.clone());
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));

    let (first, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(sent_keys(&first), vec!["a", "m", "x"]);
    assert_eq!(region_of(&first).ver.ver, 1);
    // The store answers EpochNotMatch with the current regions; the retry layer below
    // would have put them in the cache.
    let current = locator
        .truth()
        .iter()
        .map(|r| (*r.region).clone())
        .collect();
    locator.refresh();
    send.send_response(with_region_error(
        &first.cmd,
        region_err(|e| {
            e.epoch_not_match = Some(errorpb::EpochNotMatch {
                current_regions: current,
            })
        }),
    ));

    let mut resent = Vec::new();
    for _ in 0..3 {
        let (req, send) = next_request(&mut handle).await.expect("re-split piece");
        let r = region_of(&req);
        assert!(r.ver.ver > 1, "sent with the new region version");
        let Command::RawBatchPut(put) = &req.cmd else {
            panic!("wrong command")
        };
        resent.push((sent_keys(&req), put.ttls.clone(), put.ttl));
        send.send_response(RpcResponse::new(kvrpcpb::RawBatchPutResponse::default()));
    }
    resent.sort();
    assert_eq!(
        resent,
        vec![
            (vec!["a".to_string()], vec![7], 7),
            (vec!["m".into()], vec![8], 8),
            (vec!["x".into()], vec![9], 9),
        ]
    );
    assert!(next_request(&mut handle).await.is_none());
    call.await.unwrap().unwrap();
    // A real EpochNotMatch re-splits at once (MayBackoffForRegionError).
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 0);
    assert_eq!(bo.total_sleep_ms(), 0);
}

#[tokio::test(start_paused = true)]
async fn other_region_errors_back_off_region_miss_then_relocate() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let get = kvrpcpb::RawGetRequest {
        key: b"x".to_vec(),
        ..Default::default()
    };
    let call =
        tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(get).backoffer(bo.clone())));

    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(region_of(&req).ver.id, 2);
    send.send_response(with_region_error(&req.cmd, not_leader()));
    // The pseudo EpochNotMatch (no current regions) backs off too.
    let (req, send) = next_request(&mut handle).await.unwrap();
    send.send_response(with_region_error(
        &req.cmd,
        region_err(|e| e.epoch_not_match = Some(errorpb::EpochNotMatch::default())),
    ));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(sent_keys(&req), vec!["x"]);
    send.send_response(RpcResponse::new(kvrpcpb::RawGetResponse {
        value: b"v".to_vec(),
        ..Default::default()
    }));
    let resp = call.await.unwrap().unwrap();
    assert!(matches!(resp.resp, CommandResponse::RawGet(ref r) if r.value == b"v"));
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 2);
    assert!(bo.total_sleep_ms() >= 4);
    assert_eq!(locator.locates.load(Ordering::SeqCst), 3);
}

/// Runs `req` against a locator with one region whose store answers `NotLeader` forever;
/// returns the error and how many sub-requests were sent.
async fn region_miss_until_exhausted(req: RpcRequest) -> (Error, usize) {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let mut sent = 0;
    while let Some((req, send)) = next_request(&mut handle).await {
        sent += 1;
        send.send_response(with_region_error(&req.cmd, not_leader()));
    }
    (call.await.unwrap().unwrap_err(), sent)
}

#[tokio::test(start_paused = true)]
async fn region_miss_budget_exhaustion_is_the_error_for_point_commands() {
    // A point command keeps one backoffer across its resends, as client-go's rawkv
    // `sendReq` does, so regionMiss sleeps grow: 2 + 4 + 8 ms passes the 10 ms budget and
    // the fourth answer fails.
    let bo = SharedBackoffer::new(Backoffer::new(10));
    let get = kvrpcpb::RawGetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let (err, sent) = region_miss_until_exhausted(RpcRequest::new(get).backoffer(bo.clone())).await;
    assert_eq!(err.kind(), ErrorKind::Region, "{err:?}");
    assert!(
        matches!(err.detail(), ErrorDetail::RegionUnavailable),
        "{err:?}"
    );
    assert_eq!(sent, 4);
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 3);
    assert_eq!(bo.total_sleep_ms(), 14);
}

#[tokio::test(start_paused = true)]
async fn region_miss_budget_exhaustion_is_the_error_for_batches() {
    let bo = SharedBackoffer::new(Backoffer::new(10));
    let get = kvrpcpb::RawBatchGetRequest {
        keys: keys(&["k"]),
        ..Default::default()
    };
    let (err, sent) = region_miss_until_exhausted(RpcRequest::new(get).backoffer(bo.clone())).await;
    assert_eq!(err.kind(), ErrorKind::Region, "{err:?}");
    assert!(
        matches!(err.detail(), ErrorDetail::RegionUnavailable),
        "{err:?}"
    );
    // regionMiss sleeps 2 ms per try (each re-split forks a fresh schedule): five sleeps
    // fill the 10 ms budget, the sixth answer fails.
    assert_eq!(sent, 6);
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 5);
    assert_eq!(bo.total_sleep_ms(), 10);
}

#[tokio::test(start_paused = true)]
async fn undetermined_result_is_returned_not_resent() {
    let locator = FakeLocator::with_splits(&[b"f"]);
    let (svc, mut handle) = mock_pair();
    let commit = kvrpcpb::CommitRequest {
        keys: keys(&["a", "x"]),
        start_version: 1,
        commit_version: 2,
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(commit)));
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        if sent_keys(&req) == vec!["x"] {
            send.send_response(with_region_error(
                &req.cmd,
                region_err(|e| {
                    e.undetermined_result = Some(errorpb::UndeterminedResult::default())
                }),
            ));
        } else {
            send.send_response(RpcResponse::new(kvrpcpb::CommitResponse::default()));
        }
    }
    assert!(next_request(&mut handle).await.is_none(), "never resent");
    let resp = call.await.unwrap().unwrap();
    assert!(
        resp.region_error()
            .is_some_and(|e| e.undetermined_result.is_some())
    );
}

#[tokio::test(start_paused = true)]
async fn first_error_wins_and_stops_new_batches() {
    let locator = FakeLocator::with_splits(&[b"b", b"c", b"d"]);
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_max_concurrency(1));
    let svc = tower::Layer::layer(&layer, svc);
    let call = tokio::spawn(svc.oneshot(raw_batch_get(&["a", "b", "c", "d"])));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(sent_keys(&req), vec!["a"]);
    send.send_response(RpcResponse::new(kvrpcpb::RawBatchGetResponse::default()));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(sent_keys(&req), vec!["b"]);
    send.send_error(Error::from(ErrorDetail::Transport {
        addr: "s1".into(),
        message: "reset".into(),
    }));
    assert!(next_request(&mut handle).await.is_none());
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
}

#[tokio::test(start_paused = true)]
async fn concurrency_bound_is_honoured() {
    let locator = FakeLocator::with_splits(&[b"b", b"c", b"d", b"e"]);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let (in_flight, peak, calls) = (in_flight.clone(), peak.clone(), calls.clone());
        tower::service_fn(move |req: RpcRequest| {
            let (in_flight, peak, calls) = (in_flight.clone(), peak.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let pairs = sent_keys(&req)
                    .iter()
                    .map(|k| pair(k.as_bytes(), b"v"))
                    .collect();
                Ok::<_, Error>(RpcResponse::new(kvrpcpb::RawBatchGetResponse {
                    pairs,
                    ..Default::default()
                }))
            }
        })
    };
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_max_concurrency(2));
    let resp = tower::Layer::layer(&layer, svc)
        .oneshot(raw_batch_get(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    let CommandResponse::RawBatchGet(r) = resp.resp else {
        panic!("wrong type")
    };
    assert_eq!(r.pairs.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn caller_region_is_used_when_it_holds_every_key() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let mut req = raw_batch_get(&["a", "b"]);
    req.target.region = Some(locator.cached(b"a"));
    req.target.store_id = 7;
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let (sub, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(sub.target.store_id, 7, "the caller's target is kept");
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
    send.send_response(RpcResponse::new(kvrpcpb::RawBatchGetResponse::default()));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn locate_error_is_the_error() {
    let locator = FakeLocator::with_splits(&[]);
    locator.fail_next(ErrorDetail::PdServerTimeout("pd down".into()));
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&["a"])));
    assert!(next_request(&mut handle).await.is_none());
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pd);
}

#[tokio::test(start_paused = true)]
async fn store_level_and_keyless_commands_pass_through() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    for cmd in [
        Command::from(kvrpcpb::StoreSafeTsRequest::default()),
        Command::from(kvrpcpb::ResolveLockRequest {
            start_version: 5,
            ..Default::default()
        }),
        Command::from(tikv_proto::coprocessor::Request::default()),
    ] {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(cmd.clone())));
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(req.cmd, cmd);
        assert!(req.target.region.is_none());
        let resp = match cmd.cmd_type() {
            CmdType::StoreSafeTS => RpcResponse::new(kvrpcpb::StoreSafeTsResponse::default()),
            CmdType::ResolveLock => RpcResponse::new(kvrpcpb::ResolveLockResponse::default()),
            _ => RpcResponse::new(tikv_proto::coprocessor::Response::default()),
        };
        send.send_response(resp);
        call.await.unwrap().unwrap();
    }
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
}

#[test]
fn prewrite_subset_keeps_aligned_lists() {
    use kvrpcpb::prewrite_request::ForUpdateTsConstraint;
    let m = |k: &str| kvrpcpb::Mutation {
        key: k.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![m("a"), m("b"), m("c"), m("d")],
        pessimistic_actions: vec![0, 1, 2, 1],
        for_update_ts_constraints: vec![
            ForUpdateTsConstraint {
                index: 1,
                expected_for_update_ts: 10,
            },
            ForUpdateTsConstraint {
                index: 3,
                expected_for_update_ts: 30,
            },
        ],
        primary_lock: b"a".to_vec(),
        ..Default::default()
    };
    let plan = KeyPlan::new(pw.into()).unwrap();
    assert_eq!(plan.len(), 4);
    let Command::Prewrite(sub) = plan.build(&[2, 3]) else {
        panic!("wrong type")
    };
    assert_eq!(sub.mutations, vec![m("c"), m("d")]);
    assert_eq!(sub.pessimistic_actions, vec![2, 1]);
    assert_eq!(
        sub.for_update_ts_constraints,
        vec![ForUpdateTsConstraint {
            index: 1,
            expected_for_update_ts: 30
        }]
    );
    assert_eq!(sub.primary_lock, b"a");

    let bad = kvrpcpb::PrewriteRequest {
        mutations: vec![m("a")],
        pessimistic_actions: vec![0, 1],
        ..Default::default()
    };
    let err = KeyPlan::new(bad.into()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let bad = kvrpcpb::RawBatchPutRequest {
        pairs: vec![pair(b"a", b"1"), pair(b"b", b"2"), pair(b"c", b"3")],
        ttls: vec![1, 2],
        ..Default::default()
    };
    let err = KeyPlan::new(bad.into()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test(start_paused = true)]
async fn bad_split_input_is_invalid_argument() {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let put = kvrpcpb::RawBatchPutRequest {
        pairs: vec![pair(b"a", b"1"), pair(b"b", b"2"), pair(b"c", b"3")],
        ttls: vec![1, 2],
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(put)));
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(
        call.await.unwrap().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[tokio::test(start_paused = true)]
async fn pessimistic_lock_values_return_to_their_keys() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let mutation = |k: &str| kvrpcpb::Mutation {
        key: k.as_bytes().to_vec(),
        ..Default::default()
    };
    // Not sorted: "x" (region 2) comes between "a" and "b" (region 1).
    let lock = kvrpcpb::PessimisticLockRequest {
        mutations: vec![mutation("a"), mutation("x"), mutation("b")],
        return_values: true,
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(lock)));
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::PessimisticLock(r) = &req.cmd else {
            panic!("wrong command")
        };
        let values = r
            .mutations
            .iter()
            .map(|m| [b"v-".as_slice(), &m.key].concat())
            .collect();
        send.send_response(RpcResponse::new(kvrpcpb::PessimisticLockResponse {
            values,
            ..Default::default()
        }));
    }
    let resp = call.await.unwrap().unwrap();
    let CommandResponse::PessimisticLock(r) = resp.resp else {
        panic!("wrong type")
    };
    assert_eq!(
        r.values,
        vec![b"v-a".to_vec(), b"v-x".to_vec(), b"v-b".to_vec()]
    );
}

#[test]
fn route_keys_of_commands() {
    let scan = kvrpcpb::RawScanRequest {
        start_key: b"k5".to_vec(),
        end_key: b"k1".to_vec(),
        reverse: true,
        ..Default::default()
    };
    assert_eq!(route_key(&scan.into()), RouteKey::EndKey(b"k5"));
    let scan = kvrpcpb::ScanRequest {
        start_key: b"k1".to_vec(),
        ..Default::default()
    };
    assert_eq!(route_key(&scan.into()), RouteKey::Key(b"k1"));
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![kvrpcpb::Mutation {
            key: b"p".to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(route_key(&pw.into()), RouteKey::Key(b"p"));
    assert_eq!(
        route_key(&kvrpcpb::ResolveLockRequest::default().into()),
        RouteKey::None
    );
    assert_eq!(
        route_key(&kvrpcpb::StoreSafeTsRequest::default().into()),
        RouteKey::None
    );
}

// ===== ranges, scripted =====

fn scan_req(start: &str, end: &str, limit: u32, reverse: bool) -> RpcRequest {
    RpcRequest::new(kvrpcpb::ScanRequest {
        start_key: start.as_bytes().to_vec(),
        end_key: end.as_bytes().to_vec(),
        limit,
        reverse,
        version: 10,
        ..Default::default()
    })
}

/// `(start, end, limit, region id)` of a `Scan` sub-request.
fn scan_args(req: &RpcRequest) -> (String, String, u32, u64) {
    let Command::Scan(r) = &req.cmd else {
        panic!("not a scan: {:?}", req.cmd)
    };
    (
        String::from_utf8(r.start_key.clone()).unwrap(),
        String::from_utf8(r.end_key.clone()).unwrap(),
        r.limit,
        region_of(req).ver.id,
    )
}

fn scan_resp(ks: &[&str]) -> RpcResponse {
    RpcResponse::new(kvrpcpb::ScanResponse {
        pairs: ks.iter().map(|k| pair(k.as_bytes(), b"v")).collect(),
        ..Default::default()
    })
}

fn scanned(resp: RpcResponse) -> Vec<String> {
    let CommandResponse::Scan(r) = resp.resp else {
        panic!("wrong type")
    };
    r.pairs
        .into_iter()
        .map(|p| String::from_utf8(p.key).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn forward_scan_limit_lands_on_region_boundary() {
    // Regions [, c) [c, f) [f, ).
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("", "", 2, false)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("".into(), "c".into(), 2, 1));
    send.send_response(scan_resp(&["a", "b"]));
    assert!(next_request(&mut handle).await.is_none(), "limit reached");
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["a", "b"]);

    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("", "", 3, false)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("".into(), "c".into(), 3, 1));
    send.send_response(scan_resp(&["a", "b"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("c".into(), "f".into(), 1, 2));
    send.send_response(scan_resp(&["c"]));
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn reverse_scan_limit_lands_on_region_boundary() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    // [, z) descending, 2 rows: the last region holds exactly 2.
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("z", "", 2, true)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("z".into(), "f".into(), 2, 3));
    send.send_response(scan_resp(&["g", "f"]));
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["g", "f"]);

    // Upper bound exactly on a region start: located by end key, so the scan starts in
    // the region below it.
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("f", "b", 5, true)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("f".into(), "c".into(), 5, 2));
    send.send_response(scan_resp(&["e", "c"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("c".into(), "b".into(), 3, 1));
    send.send_response(scan_resp(&["b"]));
    assert!(
        next_request(&mut handle).await.is_none(),
        "lower bound reached"
    );
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["e", "c", "b"]);
}

#[tokio::test(start_paused = true)]
async fn bounded_scan_ends_in_the_last_region_it_touches() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("b", "d", 10, false)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("b".into(), "c".into(), 10, 1));
    send.send_response(scan_resp(&["b"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("c".into(), "d".into(), 9, 2));
    send.send_response(scan_resp(&["c"]));
    assert!(
        next_request(&mut handle).await.is_none(),
        "upper bound reached"
    );
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["b", "c"]);

    // An end key equal to a region end stops there too.
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("d", "f", 10, false)));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("d".into(), "f".into(), 10, 2));
    send.send_response(scan_resp(&["d"]));
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(scanned(call.await.unwrap().unwrap()), vec!["d"]);
}

#[tokio::test(start_paused = true)]
async fn empty_ranges_and_zero_limits_send_nothing() {
    let locator = FakeLocator::with_splits(&[b"c"]);
    for req in [
        scan_req("d", "b", 10, false),
        scan_req("a", "", 0, false),
        RpcRequest::new(kvrpcpb::RawScanRequest {
            start_key: Vec::new(),
            reverse: true,
            limit: 10,
            ..Default::default()
        }),
        RpcRequest::new(kvrpcpb::RawDeleteRangeRequest {
            start_key: b"x".to_vec(),
            end_key: b"x".to_vec(),
            ..Default::default()
        }),
    ] {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(req));
        assert!(next_request(&mut handle).await.is_none());
        let resp = call.await.unwrap().unwrap();
        assert!(resp.region_error().is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn scan_region_error_relocates_the_same_cursor() {
    let locator = FakeLocator::with_splits(&[b"c"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let call = tokio::spawn(
        shard(svc, &locator).oneshot(scan_req("a", "", 10, false).backoffer(bo.clone())),
    );
    let (req, send) = next_request(&mut handle).await.unwrap();
    send.send_response(with_region_error(&req.cmd, not_leader()));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("a".into(), "c".into(), 10, 1));
    send.send_response(scan_resp(&["a"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(scan_args(&req), ("c".into(), "".into(), 9, 2));
    send.send_response(with_region_error(
        &req.cmd,
        region_err(|e| e.undetermined_result = Some(Default::default())),
    ));
    let resp = call.await.unwrap().unwrap();
    assert!(
        resp.region_error()
            .is_some_and(|e| e.undetermined_result.is_some())
    );
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 1);
}

#[tokio::test(start_paused = true)]
async fn checksum_combines_regions() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::RawChecksumRequest {
        ranges: vec![kvrpcpb::KeyRange {
            start_key: b"a".to_vec(),
            end_key: Vec::new(),
        }],
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let mut ranges = Vec::new();
    for (crc, kvs, bytes) in [(1u64, 1u64, 10u64), (2, 2, 20), (4, 3, 30)] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::RawChecksum(r) = &req.cmd else {
            panic!("wrong command")
        };
        ranges.push(r.ranges.clone());
        send.send_response(RpcResponse::new(kvrpcpb::RawChecksumResponse {
            checksum: crc,
            total_kvs: kvs,
            total_bytes: bytes,
            ..Default::default()
        }));
    }
    assert!(next_request(&mut handle).await.is_none());
    let kr = |s: &str, e: &str| {
        vec![kvrpcpb::KeyRange {
            start_key: s.as_bytes().to_vec(),
            end_key: e.as_bytes().to_vec(),
        }]
    };
    assert_eq!(ranges, vec![kr("a", "c"), kr("c", "f"), kr("f", "")]);
    let CommandResponse::RawChecksum(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!((r.checksum, r.total_kvs, r.total_bytes), (7, 6, 60));
}

#[tokio::test(start_paused = true)]
async fn delete_range_stops_at_the_first_error() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::DeleteRangeRequest {
        start_key: b"a".to_vec(),
        end_key: b"z".to_vec(),
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let (req, send) = next_request(&mut handle).await.unwrap();
    let Command::DeleteRange(r) = &req.cmd else {
        panic!("wrong command")
    };
    assert_eq!(
        (r.start_key.as_slice(), r.end_key.as_slice()),
        (&b"a"[..], &b"c"[..])
    );
    send.send_response(RpcResponse::new(kvrpcpb::DeleteRangeResponse::default()));
    let (req, send) = next_request(&mut handle).await.unwrap();
    let Command::DeleteRange(r) = &req.cmd else {
        panic!("wrong command")
    };
    assert_eq!(
        (r.start_key.as_slice(), r.end_key.as_slice()),
        (&b"c"[..], &b"f"[..])
    );
    send.send_response(RpcResponse::new(kvrpcpb::DeleteRangeResponse {
        error: "boom".into(),
        ..Default::default()
    }));
    assert!(next_request(&mut handle).await.is_none());
    let CommandResponse::DeleteRange(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.error, "boom");
}

#[tokio::test(start_paused = true)]
async fn scan_lock_zero_limit_pages_every_region() {
    let locator = FakeLocator::with_splits(&[b"c"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::ScanLockRequest {
        max_version: 9,
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    for key in ["a", "d"] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::ScanLock(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!(r.limit, 0, "no limit stays no limit");
        send.send_response(RpcResponse::new(kvrpcpb::ScanLockResponse {
            locks: vec![kvrpcpb::LockInfo {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }));
    }
    assert!(next_request(&mut handle).await.is_none());
    let CommandResponse::ScanLock(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.locks.len(), 2);
}

// ===== ranges against an in-memory store =====

/// A store model: answers raw and transactional scans, raw gets, raw batch gets, puts and
/// deletes and raw delete ranges from its region's slice of a `BTreeMap`. A sub-request for a
/// stale region version gets `EpochNotMatch` with the current regions (and the locator's
/// cache learns them, as the retry layer would make it); a sub-request whose range or
/// keys leave its region is a test failure.
#[derive(Clone)]
struct Model {
    data: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
    locator: Arc<FakeLocator>,
    sent: Arc<AtomicUsize>,
}

impl Model {
    fn new(locator: Arc<FakeLocator>, kvs: &[(&str, &str)]) -> Model {
        Model {
            data: Arc::new(Mutex::new(
                kvs.iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect(),
            )),
            locator,
            sent: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn with_data(locator: Arc<FakeLocator>, data: BTreeMap<Vec<u8>, Vec<u8>>) -> Model {
        Model {
            data: Arc::new(Mutex::new(data)),
            locator,
            sent: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn range(&self, lo: &[u8], hi: &[u8], limit: u32, reverse: bool) -> Vec<kvrpcpb::KvPair> {
        let upper = if hi.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(hi.to_vec())
        };
        if !hi.is_empty() && lo >= hi {
            return Vec::new();
        }
        let data = self.data.lock().unwrap();
        let it = data
            .range((Bound::Included(lo.to_vec()), upper))
            .map(|(k, v)| pair(k, v));
        if reverse {
            it.rev().take(limit as usize).collect()
        } else {
            it.take(limit as usize).collect()
        }
    }

    /// A copy of the stored data.
    fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.data.lock().unwrap().clone()
    }

    /// Fails unless every key of a batch lies in the region the batch was sent to.
    fn check_keys<'a>(
        region: &RegionSnapshot,
        keys: impl IntoIterator<Item = &'a Vec<u8>>,
    ) -> Result<()> {
        match keys.into_iter().find(|k| !region.contains(k)) {
            Some(k) => Err(ErrorDetail::Internal(format!(
                "key {k:?} sent to region [{:?}, {:?})",
                region.start_key(),
                region.end_key()
            ))
            .into()),
            None => Ok(()),
        }
    }

    /// Answers raw gets, the raw batch commands and raw delete range; `None` for other
    /// commands.
    fn answer_raw(&self, region: &RegionSnapshot, cmd: &Command) -> Option<Result<RpcResponse>> {
        let mut data = self.data.lock().unwrap();
        let resp = match cmd {
            Command::RawGet(r) => Model::check_keys(region, [&r.key]).map(|()| {
                let value = data.get(&r.key).cloned();
                RpcResponse::new(kvrpcpb::RawGetResponse {
                    not_found: value.is_none(),
                    value: value.unwrap_or_default(),
                    ..Default::default()
                })
            }),
            Command::RawBatchPut(r) => Model::check_keys(region, r.pairs.iter().map(|p| &p.key))
                .map(|()| {
                    for p in &r.pairs {
                        data.insert(p.key.clone(), p.value.clone());
                    }
                    RpcResponse::new(kvrpcpb::RawBatchPutResponse::default())
                }),
            Command::RawBatchGet(r) => Model::check_keys(region, &r.keys).map(|()| {
                let pairs = r
                    .keys
                    .iter()
                    .filter_map(|k| data.get(k).map(|v| pair(k, v)))
                    .collect();
                RpcResponse::new(kvrpcpb::RawBatchGetResponse {
                    pairs,
                    ..Default::default()
                })
            }),
            Command::RawBatchDelete(r) => Model::check_keys(region, &r.keys).map(|()| {
                for k in &r.keys {
                    data.remove(k);
                }
                RpcResponse::new(kvrpcpb::RawBatchDeleteResponse::default())
            }),
            Command::RawDeleteRange(r) => {
                let (lo, hi) = (r.start_key.as_slice(), r.end_key.as_slice());
                let inside = region.contains(lo)
                    && (hi.is_empty() && region.end_key().is_empty()
                        || !hi.is_empty() && region.contains_by_end(hi));
                if inside {
                    data.retain(|k, _| k.as_slice() < lo || !hi.is_empty() && k.as_slice() >= hi);
                    Ok(RpcResponse::new(kvrpcpb::RawDeleteRangeResponse::default()))
                } else {
                    Err(ErrorDetail::Internal(format!(
                        "delete range [{lo:?}, {hi:?}) leaves region [{:?}, {:?})",
                        region.start_key(),
                        region.end_key()
                    ))
                    .into())
                }
            }
            _ => return None,
        };
        Some(resp)
    }

    fn answer(&self, req: RpcRequest) -> Result<RpcResponse> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        let region = req
            .target
            .region
            .clone()
            .ok_or_else(|| Error::from(ErrorDetail::Internal("unrouted".into())))?;
        let current = self.locator.truth_by_id(region.ver.id);
        if current.as_ref().map(|c| c.ver) != Some(region.ver) {
            let current_regions = self
                .locator
                .truth()
                .iter()
                .filter(|r| {
                    (r.end_key().is_empty() || r.end_key() > region.start_key())
                        && (region.end_key().is_empty() || r.start_key() < region.end_key())
                })
                .map(|r| (*r.region).clone())
                .collect();
            self.locator.refresh();
            let err = region_err(|e| {
                e.epoch_not_match = Some(errorpb::EpochNotMatch { current_regions })
            });
            return Ok(with_region_error(&req.cmd, err));
        }
        if let Some(resp) = self.answer_raw(&region, &req.cmd) {
            return resp;
        }
        let (rs, re) = (region.start_key(), region.end_key());
        let (start, end, limit, reverse) = match &req.cmd {
            Command::RawScan(r) => (&r.start_key, &r.end_key, r.limit, r.reverse),
            Command::Scan(r) => (&r.start_key, &r.end_key, r.limit, r.reverse),
            other => {
                return Err(ErrorDetail::Internal(format!("model got {other:?}")).into());
            }
        };
        let (lo, hi) = if reverse { (end, start) } else { (start, end) };
        let lo_ok = lo.as_slice() >= rs && (re.is_empty() || lo.as_slice() < re);
        let hi_ok = if hi.is_empty() {
            re.is_empty()
        } else {
            hi.as_slice() > rs && (re.is_empty() || hi.as_slice() <= re)
        };
        if !lo_ok || !hi_ok {
            return Err(ErrorDetail::Internal(format!(
                "sub-request [{lo:?}, {hi:?}) leaves region [{rs:?}, {re:?})"
            ))
            .into());
        }
        let pairs = self.range(lo, hi, limit, reverse);
        Ok(match req.cmd {
            Command::RawScan(_) => RpcResponse::new(kvrpcpb::RawScanResponse {
                kvs: pairs,
                ..Default::default()
            }),
            _ => RpcResponse::new(kvrpcpb::ScanResponse {
                pairs,
                ..Default::default()
            }),
        })
    }

    fn service(
        &self,
    ) -> impl Service<
        RpcRequest,
        Response = RpcResponse,
        Error = Error,
        Future = std::future::Ready<Result<RpcResponse>>,
    > + Clone
    + Send
    + 'static {
        let m = self.clone();
        tower::service_fn(move |req: RpcRequest| std::future::ready(m.answer(req)))
    }
}

fn raw_scan(start: &[u8], end: &[u8], limit: u32, reverse: bool) -> RpcRequest {
    RpcRequest::new(kvrpcpb::RawScanRequest {
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        limit,
        reverse,
        ..Default::default()
    })
}

/// Keys and values of a scan answer, as `[k, v, k, v, ...]`.
fn flat(resp: RpcResponse) -> Vec<String> {
    let pairs = match resp.resp {
        CommandResponse::RawScan(r) => r.kvs,
        CommandResponse::Scan(r) => r.pairs,
        other => panic!("not a scan answer: {other:?}"),
    };
    pairs
        .into_iter()
        .flat_map(|p| [p.key, p.value])
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

async fn must_scan(model: &Model, start: &[u8], end: &[u8], limit: u32, expect: &[&str]) {
    let svc = Shard::new(model.service(), model.locator.clone());
    let resp = svc
        .oneshot(raw_scan(start, end, limit, false))
        .await
        .unwrap();
    assert_eq!(flat(resp), expect, "scan({start:?}, {end:?}, {limit})");
}

async fn must_reverse_scan(model: &Model, start: &[u8], end: &[u8], limit: u32, expect: &[&str]) {
    let svc = Shard::new(model.service(), model.locator.clone());
    let resp = svc
        .oneshot(raw_scan(start, end, limit, true))
        .await
        .unwrap();
    assert_eq!(
        flat(resp),
        expect,
        "reverse_scan({start:?}, {end:?}, {limit})"
    );
}

const SCAN_DATA: [(&str, &str); 4] = [("k1", "v1"), ("k3", "v3"), ("k5", "v5"), ("k7", "v7")];

// client-go: T-RAW-019 testRawKVSuite.TestScan
#[tokio::test(start_paused = true)]
async fn raw_scan_same_before_and_after_splits() {
    let locator = FakeLocator::with_splits(&[]);
    let model = Model::new(locator.clone(), &SCAN_DATA);
    for split in [None, Some(&b"k2"[..]), Some(&b"k5"[..])] {
        if let Some(k) = split {
            locator.split(k);
        }
        let m = &model;
        must_scan(m, b"", b"", 1, &["k1", "v1"]).await;
        must_scan(m, b"k1", b"", 2, &["k1", "v1", "k3", "v3"]).await;
        must_scan(
            m,
            b"",
            b"",
            10,
            &["k1", "v1", "k3", "v3", "k5", "v5", "k7", "v7"],
        )
        .await;
        must_scan(m, b"k2", b"", 2, &["k3", "v3", "k5", "v5"]).await;
        must_scan(m, b"k2", b"", 3, &["k3", "v3", "k5", "v5", "k7", "v7"]).await;
        must_scan(m, b"", b"k1", 1, &[]).await;
        must_scan(m, b"k1", b"k3", 2, &["k1", "v1"]).await;
        must_scan(m, b"k1", b"k5", 10, &["k1", "v1", "k3", "v3"]).await;
        must_scan(
            m,
            b"k1",
            b"k5\x00",
            10,
            &["k1", "v1", "k3", "v3", "k5", "v5"],
        )
        .await;
        must_scan(m, b"k5\x00", b"k5\x00\x00", 10, &[]).await;
    }
}

// client-go: T-RAW-020 testRawKVSuite.TestReverseScan
#[tokio::test(start_paused = true)]
async fn raw_reverse_scan_same_before_and_after_splits() {
    let locator = FakeLocator::with_splits(&[]);
    let model = Model::new(locator.clone(), &SCAN_DATA);
    for split in [None, Some(&b"k2"[..]), Some(&b"k5"[..])] {
        if let Some(k) = split {
            locator.split(k);
        }
        let m = &model;
        must_reverse_scan(m, b"", b"", 10, &[]).await;
        must_reverse_scan(m, b"z", b"", 1, &["k7", "v7"]).await;
        must_reverse_scan(m, b"z", b"", 2, &["k7", "v7", "k5", "v5"]).await;
        must_reverse_scan(
            m,
            b"z",
            b"",
            10,
            &["k7", "v7", "k5", "v5", "k3", "v3", "k1", "v1"],
        )
        .await;
        must_reverse_scan(m, b"k2", b"", 10, &["k1", "v1"]).await;
        must_reverse_scan(m, b"k6", b"", 2, &["k5", "v5", "k3", "v3"]).await;
        must_reverse_scan(m, b"k5", b"", 1, &["k3", "v3"]).await;
        must_reverse_scan(m, b"k5\x00", b"", 1, &["k5", "v5"]).await;
        must_reverse_scan(m, b"k6", b"", 3, &["k5", "v5", "k3", "v3", "k1", "v1"]).await;
        must_reverse_scan(m, b"z", b"k3", 10, &["k7", "v7", "k5", "v5", "k3", "v3"]).await;
        must_reverse_scan(m, b"k7", b"k3\x00", 10, &["k5", "v5"]).await;
    }
}

/// What a scan over the model must return.
fn expected(
    data: &BTreeMap<Vec<u8>, Vec<u8>>,
    raw: bool,
    reverse: bool,
    lower: &[u8],
    upper: &[u8],
    limit: u32,
) -> Vec<String> {
    if reverse && raw && upper.is_empty() {
        return Vec::new();
    }
    let in_range =
        |k: &Vec<u8>| k.as_slice() >= lower && (upper.is_empty() || k.as_slice() < upper);
    let it = data.iter().filter(|(k, _)| in_range(k));
    let picked: Vec<(&Vec<u8>, &Vec<u8>)> = if reverse {
        it.rev().take(limit as usize).collect()
    } else {
        it.take(limit as usize).collect()
    };
    picked
        .into_iter()
        .flat_map(|(k, v)| [k.clone(), v.clone()])
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
struct ScanCase {
    raw: bool,
    reverse: bool,
    lower: Vec<u8>,
    upper: Vec<u8>,
    limit: u32,
    splits_before: Vec<Vec<u8>>,
}

fn small_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(b'a'..=b'h', 1..=2)
}

fn bound() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), small_key()]
}

fn scan_case() -> impl Strategy<Value = ScanCase> {
    (
        any::<bool>(),
        any::<bool>(),
        bound(),
        bound(),
        0u32..12,
        proptest::collection::vec(small_key(), 0..3),
    )
        .prop_map(
            |(raw, reverse, lower, upper, limit, splits_before)| ScanCase {
                raw,
                reverse,
                lower,
                upper,
                limit,
                splits_before,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_scans_over_random_regions_match_a_btreemap(
        data in proptest::collection::btree_map(small_key(), small_key(), 0..30),
        splits in proptest::collection::btree_set(small_key(), 0..6),
        cases in proptest::collection::vec(scan_case(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let split_refs: Vec<&[u8]> = splits.iter().map(Vec::as_slice).collect();
            let locator = FakeLocator::with_splits(&split_refs);
            let model = Model::with_data(locator.clone(), data.clone());
            for case in &cases {
                // The cluster splits behind the cache's back between calls.
                for k in &case.splits_before {
                    locator.split(k);
                }
                let (start, end) = if case.reverse {
                    (case.upper.clone(), case.lower.clone())
                } else {
                    (case.lower.clone(), case.upper.clone())
                };
                let req = if case.raw {
                    raw_scan(&start, &end, case.limit, case.reverse)
                } else {
                    RpcRequest::new(kvrpcpb::ScanRequest {
                        start_key: start,
                        end_key: end,
                        limit: case.limit,
                        reverse: case.reverse,
                        ..Default::default()
                    })
                };
                let svc = Shard::new(model.service(), locator.clone());
                let resp = svc.oneshot(req).await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => panic!("{case:?}: {e:?}"),
                };
                let want = expected(&data, case.raw, case.reverse, &case.lower, &case.upper, case.limit);
                assert_eq!(flat(resp), want, "{case:?}");
            }
        });
    }
}
