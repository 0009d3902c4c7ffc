//! Range paging through the service: how a range is clipped to regions in both
//! directions, where it stops (bounds on region boundaries, limits crossing regions,
//! empty and inverted ranges), and what a failure or a response-level error mid-way
//! leaves the caller with (client-go's rawkv `Scan` / `ReverseScan` / `DeleteRange` /
//! `Checksum` loops, the transactional scanner's `getData`, GC's scan-lock loop;
//! spec request-path.md SL-14).

use super::*;

/// `(start, end, region id)` of a range sub-request.
fn bounds(req: &RpcRequest) -> (String, String, u64) {
    let (s, e) = match &req.cmd {
        Command::Scan(r) => (&r.start_key, &r.end_key),
        Command::RawScan(r) => (&r.start_key, &r.end_key),
        Command::ScanLock(r) => (&r.start_key, &r.end_key),
        Command::RawDeleteRange(r) => (&r.start_key, &r.end_key),
        Command::FlashbackToVersion(r) => (&r.start_key, &r.end_key),
        Command::PrepareFlashbackToVersion(r) => (&r.start_key, &r.end_key),
        Command::RawChecksum(r) => match r.ranges.as_slice() {
            [one] => (&one.start_key, &one.end_key),
            other => panic!("a checksum piece covers one range, not {other:?}"),
        },
        other => panic!("not a range command: {other:?}"),
    };
    (
        String::from_utf8(s.clone()).unwrap(),
        String::from_utf8(e.clone()).unwrap(),
        region_of(req).ver.id,
    )
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn raw_scan_resp(ks: &[&str]) -> RpcResponse {
    RpcResponse::new(kvrpcpb::RawScanResponse {
        kvs: ks.iter().map(|k| pair(k.as_bytes(), b"v")).collect(),
        ..Default::default()
    })
}

fn raw_scanned(resp: RpcResponse) -> Vec<String> {
    let CommandResponse::RawScan(r) = resp.resp else {
        panic!("wrong type: {:?}", resp.resp)
    };
    r.kvs
        .into_iter()
        .map(|p| String::from_utf8(p.key).unwrap())
        .collect()
}

fn transport(addr: &str) -> Error {
    ErrorDetail::Transport {
        addr: addr.into(),
        message: "broken pipe".into(),
    }
    .into()
}

// ===== where pages start and stop =====

#[tokio::test(start_paused = true)]
async fn range_exactly_on_region_boundaries_is_one_request() {
    // Regions [, c) [c, f) [f, ).
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let cases = [
        // Forward [c, f): located by "c", ends where the region ends.
        (scan_req("c", "f", 10, false), ("c", "f", 2)),
        // Reverse [c, f): located by end key "f" (the region below it), ends at "c".
        (scan_req("f", "c", 10, true), ("f", "c", 2)),
        (raw_scan(b"f", b"c", 10, true), ("f", "c", 2)),
    ];
    for (req, (start, end, id)) in cases {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(req));
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        let resp = match req.cmd {
            Command::Scan(_) => scan_resp(&["d"]),
            _ => raw_scan_resp(&["d"]),
        };
        send.send_response(resp);
        assert!(next_request(&mut handle).await.is_none(), "{start}..{end}");
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn txn_reverse_scan_from_the_top_pages_down() {
    // An empty upper bound on a transactional reverse scan is +inf: the scanner starts
    // in the last region (LocateEndKey of the empty key).
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("", "", 10, true)));
    let pages = [
        (("", "f", 10, 3), vec!["h", "g"]),
        (("f", "c", 8, 2), vec!["e"]),
        (("c", "", 7, 1), vec!["b", "a"]),
    ];
    for ((start, end, limit, id), rows) in pages {
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(scan_args(&req), (start.into(), end.into(), limit, id));
        send.send_response(scan_resp(&rows));
    }
    assert!(
        next_request(&mut handle).await.is_none(),
        "the first region ends it"
    );
    assert_eq!(
        scanned(call.await.unwrap().unwrap()),
        ["h", "g", "e", "b", "a"]
    );
}

#[tokio::test(start_paused = true)]
async fn reverse_limit_crosses_regions() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_scan(b"z", b"", 4, true)));
    let pages = [
        (("z", "f", 4, 3), vec!["g"]),
        (("f", "c", 3, 2), vec!["e", "d"]),
        (("c", "", 1, 1), vec!["b"]),
    ];
    for ((start, end, limit, id), rows) in pages {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::RawScan(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!(r.limit, limit, "each page asks for the rows still missing");
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        send.send_response(raw_scan_resp(&rows));
    }
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(
        raw_scanned(call.await.unwrap().unwrap()),
        ["g", "e", "d", "b"]
    );
}

#[tokio::test(start_paused = true)]
async fn scan_lock_limit_carries_over_regions() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::ScanLockRequest {
        limit: 3,
        max_version: 9,
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    for (limit, locked) in [(3, vec!["a", "b"]), (1, vec!["d"])] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        let Command::ScanLock(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!((r.limit, r.max_version), (limit, 9));
        send.send_response(RpcResponse::new(kvrpcpb::ScanLockResponse {
            locks: locked
                .iter()
                .map(|k| kvrpcpb::LockInfo {
                    key: b(k),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }));
    }
    assert!(
        next_request(&mut handle).await.is_none(),
        "the limit is reached"
    );
    let CommandResponse::ScanLock(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    let locked: Vec<&[u8]> = r.locks.iter().map(|l| l.key.as_slice()).collect();
    assert_eq!(locked, vec![&b"a"[..], b"b", b"d"]);
}

#[tokio::test(start_paused = true)]
async fn the_callers_region_serves_the_first_page_only() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    // Forward from "a" with the caller's region [, c): the first page goes there as the
    // caller routed it; the next page is located.
    let (svc, mut handle) = mock_pair();
    let mut req = scan_req("a", "e", 10, false);
    req.target.region = Some(locator.cached(b"a"));
    req.target.store_id = 7;
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(req));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        (bounds(&req), req.target.store_id),
        (("a".into(), "c".into(), 1), 7)
    );
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
    send.send_response(scan_resp(&["a"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        (bounds(&req), req.target.store_id),
        (("c".into(), "e".into(), 2), 0)
    );
    assert_eq!(locator.locates.load(Ordering::SeqCst), 1);
    send.send_response(scan_resp(&["d"]));
    assert_eq!(scanned(call.await.unwrap().unwrap()), ["a", "d"]);

    // Reverse from "e" with the caller's region [c, f), which holds "e" as an end key.
    let mut req = raw_scan(b"e", b"", 10, true);
    req.target.region = Some(locator.cached(b"c"));
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(req));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("e".into(), "c".into(), 2));
    assert_eq!(locator.locates.load(Ordering::SeqCst), 1);
    send.send_response(raw_scan_resp(&["d"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("c".into(), "".into(), 1));
    assert_eq!(locator.locates.load(Ordering::SeqCst), 2);
    send.send_response(raw_scan_resp(&["a"]));
    assert_eq!(raw_scanned(call.await.unwrap().unwrap()), ["d", "a"]);

    // A caller's region that does not hold the start is ignored.
    let mut req = scan_req("x", "", 10, false);
    req.target.region = Some(locator.cached(b"a"));
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("x".into(), "".into(), 3));
    send.send_response(scan_resp(&[]));
    assert!(scanned(call.await.unwrap().unwrap()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn inverted_ranges_answer_empty_without_a_request() {
    // client-go's range loops run only while start < end (forward) or start > end
    // (reverse): an inverted range is an empty answer, not an error.
    let locator = FakeLocator::with_splits(&[b"c"]);
    let inverted: Vec<(Command, CmdType)> = vec![
        (scan_req("d", "b", 10, false).cmd, CmdType::Scan),
        (scan_req("b", "d", 10, true).cmd, CmdType::Scan),
        (raw_scan(b"d", b"b", 10, false).cmd, CmdType::RawScan),
        (raw_scan(b"b", b"d", 10, true).cmd, CmdType::RawScan),
        (
            kvrpcpb::ScanLockRequest {
                start_key: b("d"),
                end_key: b("b"),
                ..Default::default()
            }
            .into(),
            CmdType::ScanLock,
        ),
        (
            kvrpcpb::DeleteRangeRequest {
                start_key: b("d"),
                end_key: b("b"),
                ..Default::default()
            }
            .into(),
            CmdType::DeleteRange,
        ),
        (
            kvrpcpb::RawDeleteRangeRequest {
                start_key: b("d"),
                end_key: b("b"),
                ..Default::default()
            }
            .into(),
            CmdType::RawDeleteRange,
        ),
        (
            kvrpcpb::FlashbackToVersionRequest {
                start_key: b("d"),
                end_key: b("b"),
                ..Default::default()
            }
            .into(),
            CmdType::FlashbackToVersion,
        ),
        (
            kvrpcpb::PrepareFlashbackToVersionRequest {
                start_key: b("d"),
                end_key: b("b"),
                ..Default::default()
            }
            .into(),
            CmdType::PrepareFlashbackToVersion,
        ),
        (
            kvrpcpb::RawChecksumRequest {
                ranges: vec![kvrpcpb::KeyRange {
                    start_key: b("d"),
                    end_key: b("b"),
                }],
                ..Default::default()
            }
            .into(),
            CmdType::RawChecksum,
        ),
        (
            kvrpcpb::RawChecksumRequest::default().into(),
            CmdType::RawChecksum,
        ),
    ];
    for (cmd, want) in inverted {
        let (svc, mut handle) = mock_pair();
        let call = tokio::spawn(shard(svc, &locator).oneshot(RpcRequest::new(cmd)));
        assert!(next_request(&mut handle).await.is_none(), "{want}");
        let resp = call.await.unwrap().unwrap();
        assert_eq!(resp.cmd_type(), want);
        assert!(
            resp.region_error().is_none() && !resp.has_key_error(),
            "{want}"
        );
    }
    assert_eq!(locator.locates.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn checksum_pages_each_range_in_turn() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let kr = |s: &str, e: &str| kvrpcpb::KeyRange {
        start_key: b(s),
        end_key: b(e),
    };
    let req = RpcRequest::new(kvrpcpb::RawChecksumRequest {
        ranges: vec![kr("a", "d"), kr("x", "x"), kr("e", "g")],
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    let pieces = [("a", "c", 1), ("c", "d", 2), ("e", "f", 2), ("f", "g", 3)];
    for (i, (start, end, id)) in pieces.into_iter().enumerate() {
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        send.send_response(RpcResponse::new(kvrpcpb::RawChecksumResponse {
            checksum: 1 << i,
            total_kvs: 1,
            total_bytes: 10,
            // client-go's loop never reads this field: paging goes on.
            error: if i == 1 { "odd".into() } else { String::new() },
            ..Default::default()
        }));
    }
    assert!(
        next_request(&mut handle).await.is_none(),
        "the empty range is skipped"
    );
    let CommandResponse::RawChecksum(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!((r.checksum, r.total_kvs, r.total_bytes), (0b1111, 4, 40));
    assert_eq!(r.error, "odd");
}

#[tokio::test(start_paused = true)]
async fn flashback_pages_every_region_of_its_range() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::FlashbackToVersionRequest {
        start_key: b("a"),
        end_key: b("z"),
        version: 5,
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(req));
    for (start, end, id) in [("a", "c", 1), ("c", "f", 2), ("f", "z", 3)] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        let Command::FlashbackToVersion(r) = &req.cmd else {
            panic!("wrong command")
        };
        assert_eq!(r.version, 5);
        send.send_response(RpcResponse::new(
            kvrpcpb::FlashbackToVersionResponse::default(),
        ));
    }
    assert!(next_request(&mut handle).await.is_none());
    let CommandResponse::FlashbackToVersion(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert!(r.error.is_empty());

    // The prepare step stops at the first region that refuses.
    let req = RpcRequest::new(kvrpcpb::PrepareFlashbackToVersionRequest {
        start_key: b("b"),
        end_key: b("g"),
        ..Default::default()
    });
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    for (start, end, id, error) in [("b", "c", 1, ""), ("c", "f", 2, "busy")] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        send.send_response(RpcResponse::new(
            kvrpcpb::PrepareFlashbackToVersionResponse {
                error: error.into(),
                ..Default::default()
            },
        ));
    }
    assert!(
        next_request(&mut handle).await.is_none(),
        "stopped at the error"
    );
    let CommandResponse::PrepareFlashbackToVersion(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.error, "busy");
}

// ===== failures mid-way =====

#[tokio::test(start_paused = true)]
async fn a_failure_mid_scan_is_the_error_without_partial_rows() {
    // client-go's Scan returns (nil, nil, err) when a later region fails: the rows of
    // the earlier regions are not reported.
    let locator = FakeLocator::with_splits(&[b"c"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc.clone(), &locator).oneshot(scan_req("", "", 10, false)));
    let (_, send) = next_request(&mut handle).await.unwrap();
    send.send_response(scan_resp(&["a", "b"]));
    let (_, send) = next_request(&mut handle).await.unwrap();
    send.send_error(transport("s2"));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");

    // The same when locating the next region fails.
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_scan(b"", b"", 10, false)));
    let (_, send) = next_request(&mut handle).await.unwrap();
    locator.fail_next(ErrorDetail::PdServerTimeout("pd down".into()));
    send.send_response(raw_scan_resp(&["a"]));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pd, "{err:?}");
    assert!(next_request(&mut handle).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_key_error_stops_paging_and_keeps_the_rows_before_it() {
    // A response-level error is data for the layers above (the lock resolver resolves a
    // KeyIsLocked and scans again): paging stops and the merged answer carries it.
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(scan_req("", "", 10, false)));
    let (_, send) = next_request(&mut handle).await.unwrap();
    send.send_response(scan_resp(&["a", "b"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("c".into(), "f".into(), 2));
    send.send_response(RpcResponse::new(kvrpcpb::ScanResponse {
        error: Some(kvrpcpb::KeyError {
            locked: Some(kvrpcpb::LockInfo {
                key: b("d"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert!(
        next_request(&mut handle).await.is_none(),
        "no page after the error"
    );
    let resp = call.await.unwrap().unwrap();
    assert!(resp.has_key_error());
    assert_eq!(scanned(resp), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn raw_delete_range_stops_at_the_first_error() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    let (svc, mut handle) = mock_pair();
    let req = RpcRequest::new(kvrpcpb::RawDeleteRangeRequest::default());
    let call = tokio::spawn(shard(svc, &locator).oneshot(req));
    for (start, end, id, error) in [("", "c", 1, ""), ("c", "f", 2, "boom")] {
        let (req, send) = next_request(&mut handle).await.unwrap();
        assert_eq!(bounds(&req), (start.into(), end.into(), id));
        send.send_response(RpcResponse::new(kvrpcpb::RawDeleteRangeResponse {
            error: error.into(),
            ..Default::default()
        }));
    }
    assert!(next_request(&mut handle).await.is_none());
    let CommandResponse::RawDeleteRange(r) = call.await.unwrap().unwrap().resp else {
        panic!("wrong type")
    };
    assert_eq!(r.error, "boom");
}

#[tokio::test(start_paused = true)]
async fn reverse_region_error_locates_the_same_end_key_again() {
    let locator = FakeLocator::with_splits(&[b"c"]);
    let (svc, mut handle) = mock_pair();
    let bo = SharedBackoffer::new(Backoffer::new(20_000));
    let call = tokio::spawn(
        shard(svc, &locator).oneshot(raw_scan(b"e", b"a", 10, true).backoffer(bo.clone())),
    );
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("e".into(), "c".into(), 2));
    send.send_response(with_region_error(&req.cmd, not_leader()));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(
        bounds(&req),
        ("e".into(), "c".into(), 2),
        "the same piece again"
    );
    send.send_response(raw_scan_resp(&["d"]));
    let (req, send) = next_request(&mut handle).await.unwrap();
    assert_eq!(bounds(&req), ("c".into(), "a".into(), 1));
    send.send_response(raw_scan_resp(&["b"]));
    assert!(next_request(&mut handle).await.is_none());
    assert_eq!(raw_scanned(call.await.unwrap().unwrap()), ["d", "b"]);
    assert_eq!(bo.times_of(BackoffKind::RegionMiss), 1);
    assert_eq!(locator.locates.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_region_not_holding_the_cursor_is_an_internal_error() {
    let locator = FakeLocator::with_splits(&[b"c", b"f"]);
    for req in [
        raw_scan(b"a", b"", 10, false),
        raw_scan(b"e", b"", 10, true),
    ] {
        let (svc, mut handle) = mock_pair();
        // [f, ) holds neither "a" nor "e" as an end key.
        locator.answer_next(locator.cached(b"x"));
        let err = shard(svc, &locator).oneshot(req).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
        assert!(next_request(&mut handle).await.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_of_another_command_is_a_protocol_error() {
    let locator = FakeLocator::with_splits(&[]);
    let (svc, mut handle) = mock_pair();
    let call = tokio::spawn(shard(svc, &locator).oneshot(raw_scan(b"a", b"", 10, false)));
    let (_, send) = next_request(&mut handle).await.unwrap();
    send.send_response(scan_resp(&["a"]));
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidResponse { expected: "RawScan", got } if got == "Scan"),
        "{err:?}"
    );
}

// ===== against the store model =====

/// Deletes `[start, end)` through the shard layer, drops the same keys from `expected`,
/// and checks the store holds exactly `expected` (client-go's `mustDeleteRange`).
async fn must_delete_range(
    model: &Model,
    start: &[u8],
    end: &[u8],
    expected: &mut BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let svc = Shard::new(model.service(), model.locator.clone());
    let req = RpcRequest::new(kvrpcpb::RawDeleteRangeRequest {
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        ..Default::default()
    });
    let CommandResponse::RawDeleteRange(r) = svc.oneshot(req).await.unwrap().resp else {
        panic!("wrong type")
    };
    assert!(r.error.is_empty(), "{}", r.error);
    expected.retain(|k, _| !(start <= k.as_slice() && (end.is_empty() || k.as_slice() < end)));
    check_data(model, expected).await;
}

/// Scans everything through the shard layer and compares with `expected` (client-go's
/// `checkData`).
async fn check_data(model: &Model, expected: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let svc = Shard::new(model.service(), model.locator.clone());
    let limit = u32::try_from(expected.len() + 1).unwrap();
    let resp = svc.oneshot(raw_scan(b"", b"", limit, false)).await.unwrap();
    let want: Vec<String> = expected
        .iter()
        .flat_map(|(k, v)| [k.clone(), v.clone()])
        .map(|x| String::from_utf8(x).unwrap())
        .collect();
    assert_eq!(flat(resp), want);
}

// client-go: T-RAW-021 testRawKVSuite.TestDeleteRange
#[tokio::test(start_paused = true)]
async fn raw_delete_range_removes_exactly_its_keys_across_regions() {
    let locator = FakeLocator::with_splits(&[]);
    let mut data = BTreeMap::new();
    for i in b"abcd" {
        for j in b'0'..=b'9' {
            data.insert(vec![*i, j], vec![b'v', *i, j]);
        }
    }
    let model = Model::with_data(locator.clone(), data.clone());
    // The cluster splits at "b", "c" and "d"; the cache learns it on the way.
    for k in [b"b", b"c", b"d"] {
        locator.split(k);
    }
    check_data(&model, &data).await;
    let ranges: [(&[u8], &[u8]); 5] = [
        (b"b", b"c0"),
        (b"c11", b"c12"),
        (b"d0", b"d0"),
        (b"c5", b"d5"),
        (b"a", b"z"),
    ];
    for (start, end) in ranges {
        must_delete_range(&model, start, end, &mut data).await;
    }
    assert!(model.snapshot().is_empty());
}

// client-go: T-RAW-011 testRawkvSuite.TestDeleteRangeEmptyKeysMultiRegion
#[tokio::test(start_paused = true)]
async fn raw_delete_range_with_empty_bounds_clears_every_region() {
    let locator = FakeLocator::with_splits(&[b"key3"]);
    let model = Model::new(locator.clone(), &[]);
    let svc = || Shard::new(model.service(), locator.clone());
    let pairs = [
        ("db", "TiDB"),
        ("key2", "value2"),
        ("key1", "value1"),
        ("key4", "value4"),
        ("key3", "value3"),
        ("kv", "TiKV"),
    ];
    let put = kvrpcpb::RawBatchPutRequest {
        pairs: pairs
            .iter()
            .map(|(k, v)| pair(k.as_bytes(), v.as_bytes()))
            .collect(),
        cf: "test_cf".into(),
        ..Default::default()
    };
    svc().oneshot(RpcRequest::new(put)).await.unwrap();
    // The keys live in different regions, the first of which has an end.
    let (loc1, loc4) = (locator.cached(b"key1"), locator.cached(b"key4"));
    assert_ne!(loc1.ver.id, loc4.ver.id);
    assert!(!loc1.end_key().is_empty());

    let scan_all = || raw_scan(b"", b"", 10, false);
    let resp = svc().oneshot(scan_all()).await.unwrap();
    assert_eq!(flat(resp).len(), 2 * pairs.len());
    let req = RpcRequest::new(kvrpcpb::RawDeleteRangeRequest {
        cf: "test_cf".into(),
        ..Default::default()
    });
    let CommandResponse::RawDeleteRange(r) = svc().oneshot(req).await.unwrap().resp else {
        panic!("wrong type")
    };
    assert!(r.error.is_empty());
    let resp = svc().oneshot(scan_all()).await.unwrap();
    assert!(flat(resp).is_empty());
}
