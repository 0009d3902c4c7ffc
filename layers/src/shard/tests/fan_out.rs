//! Point commands and the key fan-out through the service: which keys go to which region,
//! what the merged answer holds and in which order, which piece is sent again after a
//! region error, and which errors end a call (client-go's rawkv `sendReq`,
//! `sendBatchReq` / `doBatchReq`, the committer's batches and `splitBatchRegionsReq`;
//! spec request-path.md SL-14, RC-21, BO-7).

use super::*;

fn raw_get(key: &str) -> RpcRequest {
    RpcRequest::new(kvrpcpb::RawGetRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    })
}

fn transport(addr: &str) -> Error {
    ErrorDetail::Transport {
        addr: addr.into(),
        message: "connection reset".into(),
    }
    .into()
}

fn undetermined() -> errorpb::Error {
    region_err(|e| e.undetermined_result = Some(errorpb::UndeterminedResult::default()))
}

/// A raw batch get answer holding `v-<key>` for every key the sub-request carries.
fn found(req: &RpcRequest) -> RpcResponse {
    RpcResponse::new(kvrpcpb::RawBatchGetResponse {
        pairs: sent_keys(req)
            .iter()
            .map(|k| pair(k.as_bytes(), format!("v-{k}").as_bytes()))
            .collect(),
        ..Default::default()
    })
}

/// The keys of a raw batch get answer, in answer order.
fn found_keys(resp: RpcResponse) -> Vec<String> {
    let CommandResponse::RawBatchGet(r) = resp.resp else {
        panic!("not a raw batch get answer: {:?}", resp.resp)
    };
    r.pairs
        .into_iter()
        .map(|p| String::from_utf8(p.key).unwrap())
        .collect()
}

fn transport_addr(err: &Error) -> &str {
    match err.detail() {
        ErrorDetail::Transport { addr, .. } => addr,
        other => panic!("not a transport error: {other:?}"),
    }
}

// ===== point commands =====

#[tokio::test(start_paused = true)]
async fn point_command_keeps_the_callers_region_when_it_holds_the_key() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let mut req = raw_get("b");
    req.target.region = Some(locator.cached(b"a"));
    req.target.store_id = 7;
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(req));
    let (sub, send) = next_request(&mut handle).await.unwrap();
    assert_eq!((region_of(&sub).ver.id, sub.target.store_id), (1, 7));
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
    send.send_response(RpcResponse::new(kvrpcpb::RawGetResponse::default()));
    call.await.unwrap().unwrap();

    // A caller's region that does not hold the key is replaced by the located one, and
    // the caller's target goes with it.
    let mut req = raw_get("x");
    req.target.region = Some(locator.cached(b"a"));
    req.target.store_id = 7;
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let (sub, send) = next_request(&mut handle).await.unwrap();
    assert_eq!((region_of(&sub).ver.id, sub.target.store_id), (2, 0));
    assert_eq!(locator.locates.load(Ordering::SeqCst), 1);
    send.send_response(RpcResponse::new(kvrpcpb::RawGetResponse::default()));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn point_undetermined_result_is_returned_not_resent() {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let put = kvrpcpb::RawPutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let call =
        tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(put).backoffer(bo.clone())));
    let (req, send) = next_request(&mut handle).await.unwrap();
    send.send_response(with_region_error(&req.cmd, undetermined()));
    assert!(
        next_request(&mut handle).await.is_none(),
        "a write that may have applied is never resent"
    );
    let resp = call.await.unwrap().unwrap();
    assert!(
        resp.region_error()
            .is_some_and(|e| e.undetermined_result.is_some())
    );
    assert_eq!(bo.total_sleep_ms(), 0);
}

#[tokio::test(start_paused = true)]
async fn point_details_add_up_over_resends() {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_get("k").backoffer(bo.clone())));
    let (req, send) = next_request(&mut handle).await.unwrap();
    let mut resp = with_region_error(&req.cmd, not_leader());
    resp.details.attempts = 2;
    resp.details.rpc_time = Duration::from_millis(5);
    resp.details.addr = "s1".into();
    send.send_response(resp);
    let (_, send) = next_request(&mut handle).await.unwrap();
    let mut resp = RpcResponse::new(kvrpcpb::RawGetResponse {
        value: b"v".to_vec(),
        ..Default::default()
    });
    resp.details.attempts = 1;
    resp.details.rpc_time = Duration::from_millis(3);
    resp.details.addr = "s2".into();
    resp.details.store_id = 2;
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    let d = &resp.details;
    assert_eq!((d.attempts, d.rpc_time), (3, Duration::from_millis(8)));
    // The one regionMiss sleep between the sends (2 ms) is part of the answer's details.
    assert_eq!(d.backoff_time, Duration::from_millis(2));
    assert_eq!((d.addr.as_str(), d.store_id), ("s2", 2));
    assert_eq!(bo.total_sleep_ms(), 2);
}

#[tokio::test(start_paused = true)]
async fn empty_key_belongs_to_the_first_region() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(raw_get("")));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        (sent_keys(&req), region_of(&req).ver.id),
        (vec![String::new()], 1)
    );
    send.send_response(RpcResponse::new(kvrpcpb::RawGetResponse::default()));
    call.await.unwrap().unwrap();

    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&["z", ""])));
    let mut routed = Vec::new();
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        routed.push((region_of(&req).ver.id, sent_keys(&req)));
        send.send_response(found(&req));
    }
    routed.sort();
    assert_eq!(
        routed,
        vec![(1, vec![String::new()]), (2, vec!["z".to_string()])]
    );
    assert_eq!(found_keys(call.await.unwrap().unwrap()), ["", "z"]);
}

// ===== the key fan-out: grouping, batching, merging =====

#[tokio::test(start_paused = true)]
async fn duplicate_and_unsorted_keys_are_grouped_and_merged_in_key_order() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&["x", "a", "x", "b"])));
    let mut routed = Vec::new();
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        routed.push((region_of(&req).ver.id, sent_keys(&req)));
        send.send_response(found(&req));
    }
    assert!(next_request(&mut handle).await.is_none());
    routed.sort();
    // Duplicates are sent as the caller gave them (client-go's rawkv maps the answers
    // back to keys); each region's keys keep the caller's order.
    assert_eq!(
        routed,
        vec![
            (1, vec!["a".to_string(), "b".into()]),
            (2, vec!["x".to_string(), "x".into()]),
        ]
    );
    assert_eq!(
        found_keys(call.await.unwrap().unwrap()),
        ["a", "b", "x", "x"]
    );
    // RC-21: a key is located again whenever it falls outside the last located region,
    // so unsorted keys cost one lookup per change of region.
    assert_eq!(locator.locates.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn txn_batches_close_at_the_limit_not_past_it() {
    // client-go's appendBatchKeysBySize: a batch takes keys while its size is below the
    // limit, so a batch get size of 2 gives batches of 2 (raw batches take one more).
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone()).policy(
        DefaultShardPolicy::default()
            .with_batch_get_size(2)
            .with_txn_commit_batch_size(4),
    );
    let get = kvrpcpb::BatchGetRequest {
        keys: keys(&["a", "b", "c", "d", "e"]),
        version: 5,
        ..Default::default()
    };
    let call = tokio::spawn(tower::Layer::layer(&layer, svc.clone()).oneshot(RpcRequest::new(get)));
    let mut sent = Vec::new();
    while let Some((req, send)) = next_request(&mut handle).await {
        sent.push(sent_keys(&req));
        send.send_response(RpcResponse::new(kvrpcpb::BatchGetResponse::default()));
    }
    sent.sort();
    assert_eq!(sent, vec![vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    call.await.unwrap().unwrap();

    // Commit batches weigh key bytes: "aa" + "bb" reach 4 bytes and close the batch.
    let commit = kvrpcpb::CommitRequest {
        keys: keys(&["aa", "bb", "cc"]),
        ..Default::default()
    };
    let call = tokio::spawn(tower::Layer::layer(&layer, svc).oneshot(RpcRequest::new(commit)));
    let mut sent = Vec::new();
    while let Some((req, send)) = next_request(&mut handle).await {
        sent.push(sent_keys(&req));
        send.send_response(RpcResponse::new(kvrpcpb::CommitResponse::default()));
    }
    sent.sort();
    assert_eq!(sent, vec![vec!["aa", "bb"], vec!["cc"]]);
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn unbatched_commands_send_one_piece_per_region() {
    // CheckSecondaryLocks has no batch limit: one sub-request per region, whatever the
    // number of keys; the answers merge in key order.
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let check = kvrpcpb::CheckSecondaryLocksRequest {
        keys: keys(&["a", "b", "c", "x"]),
        start_version: 3,
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(check)));
    let mut pending = Vec::new();
    for _ in 0..2 {
        pending.push(next_request(&mut handle).await.unwrap());
    }
    assert!(next_request(&mut handle).await.is_none());
    // Answer the later region first.
    pending.sort_by_key(|(r, _)| std::cmp::Reverse(region_of(r).ver.id));
    for (req, send) in pending {
        let Command::CheckSecondaryLocks(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!(r.start_version, 3);
        let locks = r
            .keys
            .iter()
            .map(|k| kvrpcpb::LockInfo {
                key: k.clone(),
                ..Default::default()
            })
            .collect();
        let commit_ts = if region_of(&req).ver.id == 2 { 42 } else { 0 };
        send.send_response(RpcResponse::new(kvrpcpb::CheckSecondaryLocksResponse {
            locks,
            commit_ts,
            ..Default::default()
        }));
    }
    let CommandResponse::CheckSecondaryLocks(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    let locked: Vec<&[u8]> = r.locks.iter().map(|l| l.key.as_slice()).collect();
    assert_eq!(locked, vec![&b"a"[..], b"b", b"c", b"x"]);
    assert_eq!(r.commit_ts, 42);
}

#[tokio::test(start_paused = true)]
async fn prewrite_pieces_carry_their_aligned_lists_and_merge_their_answers() {
    use kvrpcpb::prewrite_request::ForUpdateTsConstraint;
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let m = |k: &str| kvrpcpb::Mutation {
        key: k.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![m("a"), m("x"), m("b")],
        pessimistic_actions: vec![1, 2, 3],
        for_update_ts_constraints: vec![ForUpdateTsConstraint {
            index: 2,
            expected_for_update_ts: 9,
        }],
        primary_lock: b"a".to_vec(),
        start_version: 4,
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(pw)));
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::Prewrite(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!((r.primary_lock.as_slice(), r.start_version), (&b"a"[..], 4));
        let resp = if region_of(&req).ver.id == 1 {
            assert_eq!(r.mutations, vec![m("a"), m("b")]);
            assert_eq!(r.pessimistic_actions, vec![1, 3]);
            assert_eq!(
                r.for_update_ts_constraints,
                vec![ForUpdateTsConstraint {
                    index: 1,
                    expected_for_update_ts: 9
                }]
            );
            kvrpcpb::PrewriteResponse {
                min_commit_ts: 10,
                ..Default::default()
            }
        } else {
            assert_eq!(r.mutations, vec![m("x")]);
            assert_eq!(r.pessimistic_actions, vec![2]);
            assert!(r.for_update_ts_constraints.is_empty());
            kvrpcpb::PrewriteResponse {
                min_commit_ts: 12,
                errors: vec![kvrpcpb::KeyError {
                    abort: "x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }
        };
        send.send_response(RpcResponse::new(resp));
    }
    let CommandResponse::Prewrite(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!((r.min_commit_ts, r.one_pc_commit_ts), (12, 0));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].abort, "x");
}

#[tokio::test(start_paused = true)]
async fn commit_reports_the_first_key_error_in_key_order() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let commit = kvrpcpb::CommitRequest {
        keys: keys(&["a", "d", "g"]),
        commit_version: 20,
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(commit)));
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(next_request(&mut handle).await.unwrap());
    }
    // The last region answers first; its error must not win over the middle one's.
    pending.sort_by_key(|(r, _)| std::cmp::Reverse(region_of(r).ver.id));
    for (req, send) in pending {
        let id = region_of(&req).ver.id;
        let error = (id > 1).then(|| kvrpcpb::KeyError {
            abort: format!("region {id}"),
            ..Default::default()
        });
        send.send_response(RpcResponse::new(kvrpcpb::CommitResponse {
            error,
            commit_version: 20 + id,
            ..Default::default()
        }));
    }
    let CommandResponse::Commit(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.error.map(|e| e.abort).as_deref(), Some("region 2"));
    assert_eq!(r.commit_version, 23);
}

#[tokio::test(start_paused = true)]
async fn empty_multi_key_commands_answer_without_a_request() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let cases: Vec<(Command, CmdType)> = vec![
        (
            kvrpcpb::RawBatchPutRequest::default().into(),
            CmdType::RawBatchPut,
        ),
        (
            kvrpcpb::RawBatchDeleteRequest::default().into(),
            CmdType::RawBatchDelete,
        ),
        (
            kvrpcpb::PrewriteRequest::default().into(),
            CmdType::Prewrite,
        ),
        (kvrpcpb::CommitRequest::default().into(), CmdType::Commit),
        (
            kvrpcpb::PessimisticLockRequest::default().into(),
            CmdType::PessimisticLock,
        ),
        (
            kvrpcpb::BatchGetRequest::default().into(),
            CmdType::BatchGet,
        ),
    ];
    for (cmd, want) in cases {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(cmd)));
        assert!(next_request(&mut handle).await.is_none(), "{want}");
        let resp = call.await.unwrap().unwrap();
        assert_eq!(resp.cmd_type(), want);
        assert!(resp.region_error().is_none(), "{want}");
        assert!(!resp.has_key_error(), "{want}");
    }
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_concurrency_sends_one_piece_at_a_time() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_max_concurrency(0));
    let call =
        tokio::spawn(tower::Layer::layer(&layer, svc).oneshot(raw_batch_get(&["a", "d", "g"])));
    let mut order = Vec::new();
    for _ in 0..3 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        order.push(sent_keys(&req));
        // Nothing else is in flight while this piece waits for its answer.
        assert!(next_request(&mut handle).await.is_none());
        send.send_response(found(&req));
    }
    assert_eq!(order, vec![vec!["a"], vec!["d"], vec!["g"]]);
    assert_eq!(found_keys(call.await.unwrap().unwrap()), ["a", "d", "g"]);
}

// ===== region errors and failures =====

#[tokio::test(start_paused = true)]
async fn only_the_piece_that_met_a_region_error_is_resent() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let req = raw_batch_get(&["a", "d", "g"]).backoffer(bo.clone());
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(next_request(&mut handle).await.unwrap());
    }
    for (req, send) in first {
        if sent_keys(&req) == ["d"] {
            send.send_response(with_region_error(&req.cmd, not_leader()));
        } else {
            send.send_response(found(&req));
        }
    }
    let (req, send) = next_request(&mut handle)
        .await
        .expect("the failed piece again");
    assert_eq!(
        (sent_keys(&req), region_of(&req).ver.id),
        (vec!["d".to_string()], 2)
    );
    send.send_response(found(&req));
    assert!(
        next_request(&mut handle).await.is_none(),
        "the answered pieces are not resent"
    );
    assert_eq!(found_keys(call.await.unwrap().unwrap()), ["a", "d", "g"]);
    // SL-14: NotLeader handed back by the send loop costs one regionMiss backoff.
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_piece_fails_the_call_without_partial_results() {
    // client-go's sendBatchReq returns the first batch error, not the pairs the other
    // batches found.
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_batch_get(&["a", "d", "g"])));
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(next_request(&mut handle).await.unwrap());
    }
    // The failing piece answers last, after the others found their keys.
    pending.sort_by_key(|(r, _)| sent_keys(r) == ["d"]);
    for (req, send) in pending {
        if sent_keys(&req) == ["d"] {
            send.send_error(transport("s2"));
        } else {
            send.send_response(found(&req));
        }
    }
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(transport_addr(&err), "s2");
}

#[tokio::test(start_paused = true)]
async fn the_first_error_wins_and_later_ones_are_dropped() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let layer = ShardLayer::new(locator.clone())
        .policy(DefaultShardPolicy::default().with_max_concurrency(2));
    let call =
        tokio::spawn(tower::Layer::layer(&layer, svc).oneshot(raw_batch_get(&["a", "d", "g"])));
    let (first, send_first) = next_request(&mut handle).await.unwrap();
    let (second, send_second) = next_request(&mut handle).await.unwrap();
    let mut started = [sent_keys(&first), sent_keys(&second)];
    started.sort();
    assert_eq!(
        started,
        [["a"], ["d"]],
        "two pieces in flight, the third queued"
    );
    send_first.send_error(transport("s1"));
    assert!(
        next_request(&mut handle).await.is_none(),
        "no piece is started after an error"
    );
    send_second.send_error(transport("s2"));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(transport_addr(&err), "s1");
}

#[tokio::test(start_paused = true)]
async fn the_first_error_cancels_a_sibling_backing_off() {
    // BO-7: every piece sleeps on a fork of one call backoffer that the first error
    // cancels, so a sibling's regionMiss sleep ends at once and nothing is resent.
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let call = tokio::spawn(
        shard(svc, &locator).oneshot(raw_batch_get(&["a", "x"]).backoffer(bo.clone())),
    );
    let started = tokio::time::Instant::now();
    let mut pending = Vec::new();
    for _ in 0..2 {
        pending.push(next_request(&mut handle).await.unwrap());
    }
    for (req, send) in pending {
        if sent_keys(&req) == ["a"] {
            send.send_response(with_region_error(&req.cmd, not_leader()));
        } else {
            send.send_error(transport("s2"));
        }
    }
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(transport_addr(&err), "s2");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no regionMiss sleep was waited out"
    );
    assert!(
        next_request(&mut handle).await.is_none(),
        "the sibling is not resent"
    );
    assert_eq!(bo.total_sleep_ms(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_undetermined_piece_outranks_an_error() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let commit = kvrpcpb::CommitRequest {
        keys: keys(&["a", "x"]),
        ..Default::default()
    };
    let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(commit)));
    let mut pending = Vec::new();
    for _ in 0..2 {
        pending.push(next_request(&mut handle).await.unwrap());
    }
    for (req, send) in pending {
        if sent_keys(&req) == ["a"] {
            send.send_error(transport("s1"));
        } else {
            send.send_response(with_region_error(&req.cmd, undetermined()));
        }
    }
    // The caller must learn that a write may have been applied, not a plain failure.
    let resp = call.await.unwrap().unwrap();
    assert!(
        resp.region_error()
            .is_some_and(|e| e.undetermined_result.is_some())
    );
    assert!(next_request(&mut handle).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_locate_error_while_resplitting_is_the_error() {
    let locator = FakeLocator::with_splits(&[b"m"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let call = tokio::spawn(
        shard(svc, &locator).oneshot(raw_batch_get(&["a", "b"]).backoffer(bo.clone())),
    );
    let (req, send) = next_request(&mut handle).await.unwrap();
    locator.fail_next(ErrorDetail::PdServerTimeout("pd down".into()));
    send.send_response(with_region_error(&req.cmd, not_leader()));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pd, "{err:?}");
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 1);
}

#[tokio::test(start_paused = true)]
async fn a_region_not_holding_the_key_is_an_internal_error() {
    // A region cache answering a region that does not hold the key asked for would
    // send keys to the wrong region; the call fails instead.
    let locator = FakeLocator::with_splits(&[b"m"]);
    let elsewhere = locator.cached(b"x");
    for req in [raw_get("a"), raw_batch_get(&["a", "b"])] {
        let (svc, mut handle) = mock_pair();
        locator.answer_next(elsewhere.clone());
        let err = shard(svc, &locator).oneshot(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
        assert!(next_request(&mut handle).await.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_of_another_command_is_a_protocol_error() {
    let locator = FakeLocator::with_splits(&[]);
    for req in [raw_get("a"), raw_batch_get(&["a", "b"])] {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(req));
        let (_, send) = next_request(&mut handle).await.unwrap();
        send.send_response(RpcResponse::new(kvrpcpb::RawPutResponse::default()));
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        assert!(
            matches!(err.detail(), ErrorDetail::InvalidResponse { got, .. } if got == "RawPut"),
            "{err:?}"
        );
    }
}

// ===== splits =====

fn split(keys_: &[&str]) -> RpcRequest {
    RpcRequest::new(kvrpcpb::SplitRegionRequest {
        split_keys: keys(keys_),
        ..Default::default()
    })
}

#[tokio::test(start_paused = true)]
async fn split_keys_on_region_starts_are_dropped() {
    // client-go's splitBatchRegionsReq groups with the equalRegionStartKey filter: a key
    // equal to the start of its freshly located region is already split.
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(split(&["c", "d", "f", "g"])));
    let mut routed = Vec::new();
    for _ in 0..2 {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let id = region_of(&req).ver.id;
        routed.push((id, sent_keys(&req)));
        send.send_response(RpcResponse::new(kvrpcpb::SplitRegionResponse {
            regions: vec![metapb::Region {
                id: id * 10,
                ..Default::default()
            }],
            ..Default::default()
        }));
    }
    assert!(next_request(&mut handle).await.is_none());
    routed.sort();
    assert_eq!(
        routed,
        vec![(2, vec!["d".to_string()]), (3, vec!["g".to_string()])]
    );
    let CommandResponse::SplitRegion(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    let ids: Vec<u64> = r.regions.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![20, 30]);

    // Nothing left to split: no request, an empty answer (client-go returns nothing).
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(split(&["c", "f"])));
    assert!(next_request(&mut handle).await.is_none());
    let CommandResponse::SplitRegion(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert!(r.regions.is_empty());

    // The deprecated single split key follows the same rule.
    let one = |k: &str| {
        RpcRequest::new(kvrpcpb::SplitRegionRequest {
            split_key: k.as_bytes().to_vec(),
            ..Default::default()
        })
    };
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(one("f")));
    assert!(next_request(&mut handle).await.is_none());
    call.await.unwrap().unwrap();
    let call = tokio::spawn(shard(svc, &locator).oneshot(one("e")));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        (sent_keys(&req), region_of(&req).ver.id),
        (vec!["e".to_string()], 2)
    );
    send.send_response(RpcResponse::new(kvrpcpb::SplitRegionResponse::default()));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn split_key_on_the_callers_region_start_is_dropped_too() {
    // A caller-chosen region is no reason to skip the filter: the key equal to its start
    // is already split, and TiKV only splits strictly inside a region.
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let mut req = split(&["c", "d"]);
    req.target.region = Some(locator.cached(b"c"));
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        (sent_keys(&req), region_of(&req).ver.id),
        (vec!["d".to_string()], 2)
    );
    send.send_response(RpcResponse::new(kvrpcpb::SplitRegionResponse::default()));
    assert!(next_request(&mut handle).await.is_none());
    call.await.unwrap().unwrap();
}

// ===== against the store model =====

// client-go: T-RAW-017 testRawKVSuite.TestRawBatch
#[tokio::test(start_paused = true)]
async fn raw_batches_over_a_split_need_several_requests_and_all_succeed() {
    let locator = FakeLocator::with_splits(&[]);
    let model = Model::new(locator.clone(), &[]);
    let svc = || Shard::new(model.service(), locator.clone());
    // Enough pairs for four raw batch puts' worth of bytes.
    let (mut test_keys, mut test_values) = (Vec::new(), Vec::new());
    let mut size = 0;
    let mut i = 0;
    while size / RAW_BATCH_PUT_SIZE < 4 {
        let (k, v) = (format!("key{i}"), format!("value{i}"));
        size += k.len() + v.len();
        let CommandResponse::RawGet(r) = svc().oneshot(raw_get(&k)).await.unwrap().resp else {
            panic!("wrong type")
        };
        assert!(r.not_found, "{k} must not exist yet");
        test_keys.push(k.into_bytes());
        test_values.push(v.into_bytes());
        i += 1;
    }
    // The cluster splits the only region in the middle; the cache learns it from the
    // first EpochNotMatch.
    locator.split(format!("key{}", (i - 1) / 2).as_bytes());

    let put = kvrpcpb::RawBatchPutRequest {
        pairs: test_keys
            .iter()
            .zip(&test_values)
            .map(|(k, v)| pair(k, v))
            .collect(),
        ..Default::default()
    };
    svc().oneshot(RpcRequest::new(put)).await.unwrap();
    let before = model.sent.load(Ordering::SeqCst);

    let batch_get = || {
        RpcRequest::new(kvrpcpb::RawBatchGetRequest {
            keys: test_keys.clone(),
            ..Default::default()
        })
    };
    let CommandResponse::RawBatchGet(r) = svc().oneshot(batch_get()).await.unwrap().resp else {
        panic!("wrong type")
    };
    let got: BTreeMap<Vec<u8>, Vec<u8>> = r.pairs.into_iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(got.len(), test_keys.len());
    for (k, v) in test_keys.iter().zip(&test_values) {
        assert_eq!(got.get(k), Some(v));
    }
    // Two regions and more than 513 keys: several batch gets were needed.
    assert!(model.sent.load(Ordering::SeqCst) - before > 2);

    let delete = kvrpcpb::RawBatchDeleteRequest {
        keys: test_keys.clone(),
        ..Default::default()
    };
    svc().oneshot(RpcRequest::new(delete)).await.unwrap();
    let CommandResponse::RawBatchGet(r) = svc().oneshot(batch_get()).await.unwrap().resp else {
        panic!("wrong type")
    };
    assert!(r.pairs.is_empty(), "every key deleted");
    assert!(model.snapshot().is_empty());
}
