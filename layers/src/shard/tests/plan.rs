//! The `keys` module on its own: what each command carries (`route_key`, its shape), how
//! a key plan or a range plan cuts a command, and how sub-responses merge back into one
//! answer, including the answers the merge must refuse.

use kvrpcpb::prewrite_request::ForUpdateTsConstraint;
use tikv_proto::coprocessor;

use super::*;
use crate::shard::keys::{Folded, Part, RangePlan, Shape, fold_range, merge_keys, shape};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn mutation(k: &str, v: &str) -> kvrpcpb::Mutation {
    kvrpcpb::Mutation {
        key: b(k),
        value: b(v),
        ..Default::default()
    }
}

fn key_error(abort: &str) -> kvrpcpb::KeyError {
    kvrpcpb::KeyError {
        abort: abort.into(),
        ..Default::default()
    }
}

fn part(indices: &[usize], resp: impl Into<CommandResponse>) -> Part {
    Part {
        indices: indices.to_vec(),
        resp: resp.into(),
    }
}

fn region(id: u64) -> metapb::Region {
    metapb::Region {
        id,
        ..Default::default()
    }
}

// ===== what commands carry =====

#[test]
fn route_key_and_shape_of_every_command() {
    use RouteKey::{EndKey, Key, None as NoKey};
    use Shape::{Keys, PassThrough, Point, Range};
    let kr = |s: &str| kvrpcpb::KeyRange {
        start_key: b(s),
        end_key: Vec::new(),
    };
    let cop = coprocessor::Request {
        ranges: vec![coprocessor::KeyRange {
            start: b("cop"),
            end: b("coq"),
        }],
        ..Default::default()
    };
    let table: Vec<(Command, RouteKey<'static>, Shape)> = vec![
        // One key: the point loop.
        (
            kvrpcpb::GetRequest {
                key: b("g"),
                ..Default::default()
            }
            .into(),
            Key(b"g"),
            Point,
        ),
        (
            kvrpcpb::CleanupRequest {
                key: b("cl"),
                ..Default::default()
            }
            .into(),
            Key(b"cl"),
            Point,
        ),
        (
            kvrpcpb::CheckTxnStatusRequest {
                primary_key: b("pk"),
                ..Default::default()
            }
            .into(),
            Key(b"pk"),
            Point,
        ),
        (
            kvrpcpb::TxnHeartBeatRequest {
                primary_lock: b("hb"),
                ..Default::default()
            }
            .into(),
            Key(b"hb"),
            Point,
        ),
        (
            kvrpcpb::RawGetRequest {
                key: b("rg"),
                ..Default::default()
            }
            .into(),
            Key(b"rg"),
            Point,
        ),
        (
            kvrpcpb::RawPutRequest {
                key: b("rp"),
                ..Default::default()
            }
            .into(),
            Key(b"rp"),
            Point,
        ),
        (
            kvrpcpb::RawDeleteRequest {
                key: b("rd"),
                ..Default::default()
            }
            .into(),
            Key(b"rd"),
            Point,
        ),
        (
            kvrpcpb::RawCasRequest {
                key: b("cas"),
                ..Default::default()
            }
            .into(),
            Key(b"cas"),
            Point,
        ),
        (
            kvrpcpb::RawGetKeyTtlRequest {
                key: b("ttl"),
                ..Default::default()
            }
            .into(),
            Key(b"ttl"),
            Point,
        ),
        (
            kvrpcpb::MvccGetByKeyRequest {
                key: b("mv"),
                ..Default::default()
            }
            .into(),
            Key(b"mv"),
            Point,
        ),
        // Key lists: routed by their first key, fanned out.
        (
            kvrpcpb::BatchGetRequest {
                keys: keys(&["b1", "b0"]),
                ..Default::default()
            }
            .into(),
            Key(b"b1"),
            Keys,
        ),
        (kvrpcpb::BatchGetRequest::default().into(), NoKey, Keys),
        (
            kvrpcpb::BufferBatchGetRequest {
                keys: keys(&["bb"]),
                ..Default::default()
            }
            .into(),
            Key(b"bb"),
            Keys,
        ),
        (
            kvrpcpb::CommitRequest {
                keys: keys(&["co"]),
                ..Default::default()
            }
            .into(),
            Key(b"co"),
            Keys,
        ),
        (
            kvrpcpb::BatchRollbackRequest {
                keys: keys(&["br"]),
                ..Default::default()
            }
            .into(),
            Key(b"br"),
            Keys,
        ),
        (
            kvrpcpb::PessimisticRollbackRequest {
                keys: keys(&["pr"]),
                ..Default::default()
            }
            .into(),
            Key(b"pr"),
            Keys,
        ),
        (
            kvrpcpb::CheckSecondaryLocksRequest {
                keys: keys(&["cs"]),
                ..Default::default()
            }
            .into(),
            Key(b"cs"),
            Keys,
        ),
        (
            kvrpcpb::RawBatchGetRequest {
                keys: keys(&["rbg"]),
                ..Default::default()
            }
            .into(),
            Key(b"rbg"),
            Keys,
        ),
        (
            kvrpcpb::RawBatchDeleteRequest {
                keys: keys(&["rbd"]),
                ..Default::default()
            }
            .into(),
            Key(b"rbd"),
            Keys,
        ),
        (
            kvrpcpb::RawBatchPutRequest {
                pairs: vec![pair(b"rbp", b"v")],
                ..Default::default()
            }
            .into(),
            Key(b"rbp"),
            Keys,
        ),
        (kvrpcpb::RawBatchPutRequest::default().into(), NoKey, Keys),
        (
            kvrpcpb::PrewriteRequest {
                mutations: vec![mutation("pw", "")],
                ..Default::default()
            }
            .into(),
            Key(b"pw"),
            Keys,
        ),
        (kvrpcpb::PrewriteRequest::default().into(), NoKey, Keys),
        (
            kvrpcpb::PessimisticLockRequest {
                mutations: vec![mutation("pl", "")],
                ..Default::default()
            }
            .into(),
            Key(b"pl"),
            Keys,
        ),
        (
            kvrpcpb::FlushRequest {
                mutations: vec![mutation("fl", "")],
                ..Default::default()
            }
            .into(),
            Key(b"fl"),
            Keys,
        ),
        // Lite resolve lists its keys; a whole-region resolve is pinned by its caller.
        (
            kvrpcpb::ResolveLockRequest {
                keys: keys(&["rl"]),
                ..Default::default()
            }
            .into(),
            Key(b"rl"),
            Keys,
        ),
        (
            kvrpcpb::ResolveLockRequest {
                start_version: 3,
                ..Default::default()
            }
            .into(),
            NoKey,
            PassThrough,
        ),
        // Splits: the key list, else the deprecated single key, else nothing to split.
        (
            kvrpcpb::SplitRegionRequest {
                split_keys: keys(&["s1", "s2"]),
                split_key: b("old"),
                ..Default::default()
            }
            .into(),
            Key(b"s1"),
            Keys,
        ),
        (
            kvrpcpb::SplitRegionRequest {
                split_key: b("old"),
                ..Default::default()
            }
            .into(),
            Key(b"old"),
            Keys,
        ),
        (
            kvrpcpb::SplitRegionRequest::default().into(),
            NoKey,
            PassThrough,
        ),
        // Ranges: forward ones by their start, reverse scans by their exclusive upper
        // bound (located with LocateEndKey).
        (
            kvrpcpb::ScanRequest {
                start_key: b("s9"),
                end_key: b("s1"),
                reverse: true,
                ..Default::default()
            }
            .into(),
            EndKey(b"s9"),
            Range,
        ),
        (
            kvrpcpb::ScanRequest {
                start_key: b("s1"),
                ..Default::default()
            }
            .into(),
            Key(b"s1"),
            Range,
        ),
        (
            kvrpcpb::RawScanRequest {
                start_key: b("r9"),
                reverse: true,
                ..Default::default()
            }
            .into(),
            EndKey(b"r9"),
            Range,
        ),
        (
            kvrpcpb::RawScanRequest {
                start_key: b("r1"),
                ..Default::default()
            }
            .into(),
            Key(b"r1"),
            Range,
        ),
        (
            kvrpcpb::ScanLockRequest {
                start_key: b("sl"),
                ..Default::default()
            }
            .into(),
            Key(b"sl"),
            Range,
        ),
        (
            kvrpcpb::DeleteRangeRequest {
                start_key: b("dr"),
                ..Default::default()
            }
            .into(),
            Key(b"dr"),
            Range,
        ),
        (
            kvrpcpb::RawDeleteRangeRequest {
                start_key: b("rdr"),
                ..Default::default()
            }
            .into(),
            Key(b"rdr"),
            Range,
        ),
        (
            kvrpcpb::FlashbackToVersionRequest {
                start_key: b("fb"),
                ..Default::default()
            }
            .into(),
            Key(b"fb"),
            Range,
        ),
        (
            kvrpcpb::PrepareFlashbackToVersionRequest {
                start_key: b("pfb"),
                ..Default::default()
            }
            .into(),
            Key(b"pfb"),
            Range,
        ),
        (
            kvrpcpb::RawChecksumRequest {
                ranges: vec![kr("ck"), kr("cz")],
                ..Default::default()
            }
            .into(),
            Key(b"ck"),
            Range,
        ),
        (kvrpcpb::RawChecksumRequest::default().into(), NoKey, Range),
        // Coprocessor requests are routed by their first range but built into tasks by
        // their own client; store-level and id-pinned commands carry no key.
        (cop.clone().into(), Key(b"cop"), PassThrough),
        (Command::CopStream(cop), Key(b"cop"), PassThrough),
        (coprocessor::Request::default().into(), NoKey, PassThrough),
        (
            kvrpcpb::StoreSafeTsRequest::default().into(),
            NoKey,
            PassThrough,
        ),
        (
            kvrpcpb::MvccGetByStartTsRequest::default().into(),
            NoKey,
            PassThrough,
        ),
        (
            kvrpcpb::UnsafeDestroyRangeRequest {
                start_key: b("ud"),
                ..Default::default()
            }
            .into(),
            NoKey,
            PassThrough,
        ),
    ];
    for (cmd, route, want) in &table {
        assert_eq!(route_key(cmd), *route, "{}", cmd.cmd_type());
        assert_eq!(shape(cmd), *want, "{}", cmd.cmd_type());
    }
}

// ===== key plans =====

#[test]
fn key_plan_refuses_what_it_cannot_cut() {
    // A for-update-ts constraint pointing past the mutations cannot follow its key.
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![mutation("a", "1")],
        for_update_ts_constraints: vec![ForUpdateTsConstraint {
            index: 1,
            expected_for_update_ts: 5,
        }],
        ..Default::default()
    };
    let err = KeyPlan::new(pw.into()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidArgument(m) if m.contains("index 1")),
        "{err:?}"
    );
    // A range command has no key list: a bug of the caller inside the crate, not a panic.
    let err = KeyPlan::new(kvrpcpb::RawScanRequest::default().into()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
}

#[test]
fn key_plans_cut_every_list_the_same_way() {
    // Flush: the mutations are cut; the rest of the command is kept.
    let flush = kvrpcpb::FlushRequest {
        mutations: vec![mutation("a", "1"), mutation("b", "22"), mutation("c", "")],
        primary_key: b("a"),
        start_ts: 7,
        ..Default::default()
    };
    let plan = KeyPlan::new(flush.into()).unwrap();
    assert_eq!(
        (plan.len(), plan.key(1), plan.key(3)),
        (3, &b"b"[..], &b""[..])
    );
    assert_eq!(plan.weight(1, Weigh::KeyValueBytes), 3);
    assert_eq!(plan.weight(1, Weigh::KeyBytes), 1);
    assert_eq!(plan.weight(1, Weigh::Count), 1);
    let Command::Flush(sub) = plan.build(&[0, 2]) else {
        panic!("wrong type")
    };
    assert_eq!(sub.mutations, vec![mutation("a", "1"), mutation("c", "")]);
    assert_eq!((sub.primary_key.as_slice(), sub.start_ts), (&b"a"[..], 7));

    // Pessimistic lock: the same for its mutations.
    let lock = kvrpcpb::PessimisticLockRequest {
        mutations: vec![mutation("a", ""), mutation("b", "")],
        for_update_ts: 9,
        ..Default::default()
    };
    let plan = KeyPlan::new(lock.into()).unwrap();
    let Command::PessimisticLock(sub) = plan.build(&[1]) else {
        panic!("wrong type")
    };
    assert_eq!(
        (sub.mutations, sub.for_update_ts),
        (vec![mutation("b", "")], 9)
    );

    // Raw batch put with one TTL for every pair: each piece keeps that one TTL.
    let put = kvrpcpb::RawBatchPutRequest {
        pairs: vec![pair(b"a", b"1"), pair(b"bb", b"22")],
        ttls: vec![9],
        ..Default::default()
    };
    let plan = KeyPlan::new(put.into()).unwrap();
    assert_eq!(plan.weight(1, Weigh::KeyValueBytes), 4);
    let Command::RawBatchPut(sub) = plan.build(&[1]) else {
        panic!("wrong type")
    };
    assert_eq!(
        (sub.pairs, sub.ttls, sub.ttl),
        (vec![pair(b"bb", b"22")], vec![9], 0)
    );

    // Prewrite without pessimistic actions: none are invented for the pieces.
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![mutation("a", "1"), mutation("b", "2")],
        ..Default::default()
    };
    let Command::Prewrite(sub) = KeyPlan::new(pw.into()).unwrap().build(&[1]) else {
        panic!("wrong type")
    };
    assert_eq!(sub.mutations, vec![mutation("b", "2")]);
    assert!(sub.pessimistic_actions.is_empty());
    assert!(sub.for_update_ts_constraints.is_empty());
}

#[test]
fn one_key_commands_are_point_plans() {
    // The deprecated single split key: one key, the command sent as it is, and a key on
    // a region start is dropped (client-go's equalRegionStartKey filter).
    let split = kvrpcpb::SplitRegionRequest {
        split_key: b("s"),
        ..Default::default()
    };
    let plan = KeyPlan::new(split.clone().into()).unwrap();
    assert_eq!(
        (plan.len(), plan.key(0), plan.key(1)),
        (1, &b"s"[..], &b""[..])
    );
    assert_eq!(plan.weight(0, Weigh::KeyValueBytes), 1);
    assert!(plan.skips_region_start_keys());
    assert_eq!(plan.build(&[0]), Command::from(split));
    assert_eq!(plan.cmd_type(), CmdType::SplitRegion);

    let get = kvrpcpb::RawGetRequest {
        key: b("k"),
        cf: "c".into(),
        ..Default::default()
    };
    let plan = KeyPlan::new(get.clone().into()).unwrap();
    assert_eq!((plan.len(), plan.key(0)), (1, &b"k"[..]));
    assert!(!plan.skips_region_start_keys());
    assert_eq!(plan.shell(), &Command::from(get));
}

// ===== merging key answers =====

#[test]
fn merging_nothing_or_one_part() {
    let shell = Command::from(kvrpcpb::BatchGetRequest::default());
    let CommandResponse::BatchGet(r) = merge_keys(&shell, 0, Vec::new()).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r, kvrpcpb::BatchGetResponse::default());
    let only = kvrpcpb::BatchGetResponse {
        pairs: vec![pair(b"a", b"1")],
        ..Default::default()
    };
    let CommandResponse::BatchGet(r) =
        merge_keys(&shell, 1, vec![part(&[0], only.clone())]).unwrap()
    else {
        panic!("wrong type")
    };
    assert_eq!(r, only);
}

#[test]
fn merging_refuses_answers_of_another_command() {
    let shell = Command::from(kvrpcpb::CommitRequest::default());
    let err = merge_keys(
        &shell,
        2,
        vec![
            part(&[0], kvrpcpb::CommitResponse::default()),
            part(&[1], kvrpcpb::RawGetResponse::default()),
        ],
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidResponse { expected: "Commit", got } if got == "RawGet"),
        "{err:?}"
    );
    // Parts of a command that has no merge rule (a point command never has two parts).
    let shell = Command::from(kvrpcpb::RawGetRequest::default());
    let err = merge_keys(
        &shell,
        2,
        vec![
            part(&[0], kvrpcpb::RawGetResponse::default()),
            part(&[1], kvrpcpb::RawGetResponse::default()),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidResponse { got, .. } if got == "RawGet"),
        "{err:?}"
    );
}

#[test]
fn batch_gets_concatenate_and_keep_the_first_key_error() {
    let shell = Command::from(kvrpcpb::BatchGetRequest::default());
    let parts = vec![
        part(
            &[0],
            kvrpcpb::BatchGetResponse {
                pairs: vec![pair(b"a", b"1")],
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::BatchGetResponse {
                pairs: vec![pair(b"m", b"2")],
                error: Some(key_error("second")),
                ..Default::default()
            },
        ),
        part(
            &[2],
            kvrpcpb::BatchGetResponse {
                error: Some(key_error("third")),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::BatchGet(r) = merge_keys(&shell, 3, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.pairs, vec![pair(b"a", b"1"), pair(b"m", b"2")]);
    assert_eq!(r.error, Some(key_error("second")));

    let shell = Command::from(kvrpcpb::BufferBatchGetRequest::default());
    let parts = vec![
        part(
            &[0],
            kvrpcpb::BufferBatchGetResponse {
                error: Some(key_error("first")),
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::BufferBatchGetResponse {
                pairs: vec![pair(b"x", b"9")],
                error: Some(key_error("later")),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::BufferBatchGet(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.pairs, vec![pair(b"x", b"9")]);
    assert_eq!(r.error, Some(key_error("first")));
}

#[test]
fn raw_batch_writes_keep_the_first_error_text() {
    let shell = Command::from(kvrpcpb::RawBatchDeleteRequest::default());
    let resp = |e: &str| kvrpcpb::RawBatchDeleteResponse {
        error: e.into(),
        ..Default::default()
    };
    let parts = vec![
        part(&[0], resp("")),
        part(&[1], resp("e2")),
        part(&[2], resp("e3")),
    ];
    let CommandResponse::RawBatchDelete(r) = merge_keys(&shell, 3, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.error, "e2");

    let shell = Command::from(kvrpcpb::RawBatchPutRequest::default());
    let resp = |e: &str| kvrpcpb::RawBatchPutResponse {
        error: e.into(),
        ..Default::default()
    };
    let parts = vec![part(&[0], resp("e1")), part(&[1], resp("e2"))];
    let CommandResponse::RawBatchPut(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.error, "e1");
}

#[test]
fn prewrite_merge_takes_the_largest_ts_and_one_pc_only_when_all_committed() {
    let shell = Command::from(kvrpcpb::PrewriteRequest::default());
    let resp = |min: u64, one_pc: u64, errs: &[&str]| kvrpcpb::PrewriteResponse {
        min_commit_ts: min,
        one_pc_commit_ts: one_pc,
        errors: errs.iter().map(|e| key_error(e)).collect(),
        ..Default::default()
    };
    let merged = |a, b| {
        let CommandResponse::Prewrite(r) =
            merge_keys(&shell, 2, vec![part(&[0], a), part(&[1], b)]).unwrap()
        else {
            panic!("wrong type")
        };
        r
    };
    let r = merged(resp(10, 20, &["e1"]), resp(15, 25, &["e2", "e3"]));
    assert_eq!((r.min_commit_ts, r.one_pc_commit_ts), (15, 25));
    assert_eq!(
        r.errors,
        vec![key_error("e1"), key_error("e2"), key_error("e3")]
    );
    // One piece fell back to two phases: the call did not commit in one phase.
    assert_eq!(
        merged(resp(10, 20, &[]), resp(5, 0, &[])).one_pc_commit_ts,
        0
    );
    assert_eq!(
        merged(resp(10, 0, &[]), resp(5, 25, &[])).one_pc_commit_ts,
        0
    );
}

#[test]
fn commit_rollback_and_resolve_keep_the_first_key_error() {
    let shell = Command::from(kvrpcpb::CommitRequest::default());
    let parts = vec![
        part(
            &[0],
            kvrpcpb::CommitResponse {
                commit_version: 30,
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::CommitResponse {
                error: Some(key_error("c2")),
                commit_version: 40,
                ..Default::default()
            },
        ),
        part(
            &[2],
            kvrpcpb::CommitResponse {
                error: Some(key_error("c3")),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::Commit(r) = merge_keys(&shell, 3, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!((r.error, r.commit_version), (Some(key_error("c2")), 40));

    // A later part without an error leaves the first error in place.
    let shell = Command::from(kvrpcpb::BatchRollbackRequest::default());
    let parts = vec![
        part(
            &[0],
            kvrpcpb::BatchRollbackResponse {
                error: Some(key_error("rb")),
                ..Default::default()
            },
        ),
        part(&[1], kvrpcpb::BatchRollbackResponse::default()),
    ];
    let CommandResponse::BatchRollback(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.error, Some(key_error("rb")));

    let shell = Command::from(kvrpcpb::ResolveLockRequest {
        keys: keys(&["a"]),
        ..Default::default()
    });
    let parts = vec![
        part(
            &[0],
            kvrpcpb::ResolveLockResponse {
                error: Some(key_error("r1")),
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::ResolveLockResponse {
                error: Some(key_error("r2")),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::ResolveLock(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.error, Some(key_error("r1")));
}

#[test]
fn per_key_error_lists_are_concatenated_in_key_order() {
    let shell = Command::from(kvrpcpb::PessimisticRollbackRequest::default());
    let parts = vec![
        part(
            &[0],
            kvrpcpb::PessimisticRollbackResponse {
                errors: vec![key_error("p1")],
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::PessimisticRollbackResponse {
                errors: vec![key_error("p2")],
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::PessimisticRollback(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.errors, vec![key_error("p1"), key_error("p2")]);

    let shell = Command::from(kvrpcpb::FlushRequest::default());
    let parts = vec![
        part(&[0], kvrpcpb::FlushResponse::default()),
        part(
            &[1],
            kvrpcpb::FlushResponse {
                errors: vec![key_error("f2")],
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::Flush(r) = merge_keys(&shell, 2, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.errors, vec![key_error("f2")]);
}

#[test]
fn check_secondary_locks_merge_locks_and_the_first_commit_ts() {
    let shell = Command::from(kvrpcpb::CheckSecondaryLocksRequest::default());
    let lock = |k: &str| kvrpcpb::LockInfo {
        key: b(k),
        ..Default::default()
    };
    let parts = vec![
        part(
            &[0],
            kvrpcpb::CheckSecondaryLocksResponse {
                locks: vec![lock("a")],
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::CheckSecondaryLocksResponse {
                locks: vec![lock("m")],
                commit_ts: 42,
                error: Some(key_error("s2")),
                ..Default::default()
            },
        ),
        part(
            &[2],
            kvrpcpb::CheckSecondaryLocksResponse {
                commit_ts: 43,
                error: Some(key_error("s3")),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::CheckSecondaryLocks(r) = merge_keys(&shell, 3, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.locks, vec![lock("a"), lock("m")]);
    assert_eq!((r.commit_ts, r.error), (42, Some(key_error("s2"))));
}

#[test]
fn split_region_merge_lists_every_new_region() {
    let shell = Command::from(kvrpcpb::SplitRegionRequest {
        split_keys: keys(&["c", "x"]),
        ..Default::default()
    });
    let parts = vec![
        part(
            &[0],
            kvrpcpb::SplitRegionResponse {
                regions: vec![region(1), region(2)],
                left: Some(region(1)),
                right: Some(region(2)),
                ..Default::default()
            },
        ),
        part(
            &[1],
            kvrpcpb::SplitRegionResponse {
                regions: vec![region(3), region(4)],
                errors: vec![key_error("sp")],
                ..Default::default()
            },
        ),
        part(
            &[2],
            kvrpcpb::SplitRegionResponse {
                regions: vec![region(5)],
                right: Some(region(5)),
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::SplitRegion(r) = merge_keys(&shell, 3, parts).unwrap() else {
        panic!("wrong type")
    };
    let ids: Vec<u64> = r.regions.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(r.errors, vec![key_error("sp")]);
    // The old two-way form: the first part's left, the last right reported.
    assert_eq!(
        (r.left.map(|r| r.id), r.right.map(|r| r.id)),
        (Some(1), Some(5))
    );
}

#[test]
fn pessimistic_lock_lists_go_back_to_their_keys() {
    let shell = Command::from(kvrpcpb::PessimisticLockRequest::default());
    let result = |v: &str| kvrpcpb::PessimisticLockKeyResult {
        value: b(v),
        existence: true,
        ..Default::default()
    };
    // Keys 0 and 2 in one region, 1 and 3 in another that answered key errors only: its
    // keys keep the default entries, the others are placed at their positions.
    let parts = vec![
        part(
            &[0, 2],
            kvrpcpb::PessimisticLockResponse {
                values: vec![b("v0"), b("v2")],
                not_founds: vec![false, true],
                results: vec![result("v0"), result("v2")],
                commit_ts: 5,
                ..Default::default()
            },
        ),
        part(
            &[1, 3],
            kvrpcpb::PessimisticLockResponse {
                errors: vec![key_error("locked")],
                commit_ts: 7,
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::PessimisticLock(r) = merge_keys(&shell, 4, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.values, vec![b("v0"), b(""), b("v2"), b("")]);
    assert_eq!(r.not_founds, vec![false, false, true, false]);
    assert_eq!(
        r.results,
        vec![
            result("v0"),
            Default::default(),
            result("v2"),
            Default::default()
        ]
    );
    assert_eq!((r.errors, r.commit_ts), (vec![key_error("locked")], 7));

    // A part whose list does not match its keys cannot be placed: the lists are then
    // concatenated in key order rather than guessed.
    let parts = vec![
        part(
            &[0, 2],
            kvrpcpb::PessimisticLockResponse {
                values: vec![b("v0"), b("v2")],
                ..Default::default()
            },
        ),
        part(
            &[1, 3],
            kvrpcpb::PessimisticLockResponse {
                values: vec![b("odd")],
                ..Default::default()
            },
        ),
    ];
    let CommandResponse::PessimisticLock(r) = merge_keys(&shell, 4, parts).unwrap() else {
        panic!("wrong type")
    };
    assert_eq!(r.values, vec![b("v0"), b("v2"), b("odd")]);
    assert!(r.not_founds.is_empty() && r.results.is_empty());
}

// ===== range plans and folding range answers =====

#[test]
fn range_plan_of_a_command_without_a_range_is_empty() {
    let get = Command::from(kvrpcpb::RawGetRequest {
        key: b("k"),
        ..Default::default()
    });
    let plan = RangePlan::new(get.clone());
    assert!(plan.ranges.is_empty());
    assert_eq!((plan.reverse, plan.limit), (false, None));
    assert_eq!(plan.build(b"a", b"b", Some(1)), get);
}

#[test]
fn range_plans_clip_each_command_to_a_piece() {
    let piece = |cmd: Command, limit: Option<u32>| RangePlan::new(cmd).build(b"c", b"f", limit);
    // Forward commands: [lower, upper) in start/end order, the limit when one is asked.
    let Command::ScanLock(r) = piece(
        kvrpcpb::ScanLockRequest {
            start_key: b("a"),
            end_key: b("z"),
            limit: 10,
            max_version: 4,
            ..Default::default()
        }
        .into(),
        Some(3),
    ) else {
        panic!("wrong type")
    };
    assert_eq!(
        (r.start_key, r.end_key, r.limit, r.max_version),
        (b("c"), b("f"), 3, 4)
    );
    let Command::FlashbackToVersion(r) = piece(
        kvrpcpb::FlashbackToVersionRequest {
            start_key: b("a"),
            version: 8,
            ..Default::default()
        }
        .into(),
        None,
    ) else {
        panic!("wrong type")
    };
    assert_eq!((r.start_key, r.end_key, r.version), (b("c"), b("f"), 8));
    let Command::PrepareFlashbackToVersion(r) = piece(
        kvrpcpb::PrepareFlashbackToVersionRequest {
            start_key: b("a"),
            ..Default::default()
        }
        .into(),
        None,
    ) else {
        panic!("wrong type")
    };
    assert_eq!((r.start_key, r.end_key), (b("c"), b("f")));
    let Command::RawDeleteRange(r) = piece(
        kvrpcpb::RawDeleteRangeRequest {
            cf: "lock".into(),
            ..Default::default()
        }
        .into(),
        None,
    ) else {
        panic!("wrong type")
    };
    assert_eq!(
        (r.start_key, r.end_key, r.cf.as_str()),
        (b("c"), b("f"), "lock")
    );
    // Reverse scans name the upper bound first; without a limit the caller's stays.
    let Command::Scan(r) = piece(
        kvrpcpb::ScanRequest {
            start_key: b("z"),
            reverse: true,
            limit: 6,
            ..Default::default()
        }
        .into(),
        None,
    ) else {
        panic!("wrong type")
    };
    assert_eq!((r.start_key, r.end_key, r.limit), (b("f"), b("c"), 6));
}

#[test]
fn empty_ranges_follow_client_go_loops() {
    let raw_rev = RangePlan::new(
        kvrpcpb::RawScanRequest {
            reverse: true,
            ..Default::default()
        }
        .into(),
    );
    let txn_rev = RangePlan::new(
        kvrpcpb::ScanRequest {
            reverse: true,
            ..Default::default()
        }
        .into(),
    );
    let fwd = RangePlan::new(kvrpcpb::RawScanRequest::default().into());
    // Forward: lower >= upper is empty (client-go's `start < end` loop guard); an
    // empty upper bound is +inf.
    assert!(fwd.is_empty_range(b"d", b"b"));
    assert!(fwd.is_empty_range(b"b", b"b"));
    assert!(!fwd.is_empty_range(b"b", b""));
    assert!(!fwd.is_empty_range(b"", b""));
    // Reverse from an empty upper bound: nothing for raw (ReverseScan's `start > end`
    // guard), everything from the top for the transactional scanner.
    assert!(raw_rev.is_empty_range(b"", b""));
    assert!(!txn_rev.is_empty_range(b"", b""));
    assert!(raw_rev.is_empty_range(b"k", b"c"));
    assert!(!raw_rev.is_empty_range(b"c", b"k"));
}

#[test]
fn folding_refuses_answers_of_another_command() {
    let mut acc = None;
    let err = fold_range(&mut acc, kvrpcpb::RawGetResponse::default().into()).unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidResponse { expected: "a range command", got } if got == "RawGet"),
        "{err:?}"
    );
    assert!(acc.is_none());
    let mut acc = Some(CommandResponse::from(kvrpcpb::RawScanResponse::default()));
    let err = fold_range(&mut acc, kvrpcpb::ScanResponse::default().into()).unwrap_err();
    assert!(
        matches!(err.detail(), ErrorDetail::InvalidResponse { expected: "RawScan", got } if got == "Scan"),
        "{err:?}"
    );
}

#[test]
fn folding_write_ranges_stops_at_the_first_error_text() {
    let go = Folded {
        rows: 0,
        stop: false,
    };
    let stop = Folded {
        rows: 0,
        stop: true,
    };
    let mut acc = None;
    let resp = |e: &str| kvrpcpb::RawDeleteRangeResponse {
        error: e.into(),
        ..Default::default()
    };
    assert_eq!(fold_range(&mut acc, resp("").into()).unwrap(), go);
    assert_eq!(fold_range(&mut acc, resp("e2").into()).unwrap(), stop);
    assert_eq!(fold_range(&mut acc, resp("e3").into()).unwrap(), stop);
    assert!(matches!(acc, Some(CommandResponse::RawDeleteRange(ref r)) if *r == resp("e2")));

    let mut acc = None;
    let resp = |e: &str| kvrpcpb::FlashbackToVersionResponse {
        error: e.into(),
        ..Default::default()
    };
    assert_eq!(fold_range(&mut acc, resp("").into()).unwrap(), go);
    assert_eq!(fold_range(&mut acc, resp("busy").into()).unwrap(), stop);
    assert!(matches!(acc, Some(CommandResponse::FlashbackToVersion(ref r)) if *r == resp("busy")));

    let mut acc = None;
    let resp = |e: &str| kvrpcpb::PrepareFlashbackToVersionResponse {
        error: e.into(),
        ..Default::default()
    };
    assert_eq!(fold_range(&mut acc, resp("").into()).unwrap(), go);
    assert_eq!(fold_range(&mut acc, resp("late").into()).unwrap(), stop);
    assert!(
        matches!(acc, Some(CommandResponse::PrepareFlashbackToVersion(ref r)) if *r == resp("late"))
    );
}

#[test]
fn folding_checksums_wraps_and_ignores_error_text() {
    let mut acc = None;
    let resp = |crc: u64, kvs: u64, bytes: u64, e: &str| kvrpcpb::RawChecksumResponse {
        checksum: crc,
        total_kvs: kvs,
        total_bytes: bytes,
        error: e.into(),
        ..Default::default()
    };
    let go = Folded {
        rows: 0,
        stop: false,
    };
    assert_eq!(
        fold_range(&mut acc, resp(0b0110, u64::MAX, 1, "").into()).unwrap(),
        go
    );
    // client-go's Checksum loop never reads the error field: it does not stop paging.
    assert_eq!(
        fold_range(&mut acc, resp(0b0011, 2, u64::MAX, "odd").into()).unwrap(),
        go
    );
    assert!(
        matches!(acc, Some(CommandResponse::RawChecksum(ref r)) if *r == resp(0b0101, 1, 0, "odd"))
    );
}
