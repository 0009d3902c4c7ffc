//! Tests of the API codec: client-go's `internal/apicodec` tests (T-CODEC-001 ..
//! T-CODEC-019) and the layer's own tests against a tower-test mock transport.

use futures::StreamExt;
use tikv_proto::keyspacepb::keyspace_meta::Keyspace as MetaKeyspace;
use tikv_proto::kvrpcpb::context::Keyspace as CtxKeyspace;
use tikv_proto::{apipb, coprocessor, deadlock, errorpb, keyspacepb, kvrpcpb, metapb, mpp};
use tower::{Layer, Service, ServiceExt};

use super::memcomparable::encode_bytes_to_vec as mce;
use super::*;
use crate::error::{BoxError, ErrorDetail};
use crate::request::{Command, CommandResponse, ResponseStream, RpcRequest, RpcResponse};

// ===== fixtures (client-go's codec_v2_test.go globals) =====

const TEST_KEYSPACE_ID: u32 = 4242;
// Ordered: before < prev < prefix < inside_left < inside_right < end < after; the
// keyspace is [KEYSPACE_PREFIX, KEYSPACE_END).
const PREV_KEYSPACE_PREFIX: &[u8] = &[b'r', 0, 16, 145];
const TEST_PREFIX: &[u8] = &[b'r', 0, 16, 146];
const KEYSPACE_END: &[u8] = &[b'r', 0, 16, 147];
const BEFORE_PREFIX: &[u8] = &[b'r', 0, 0, 1];
const AFTER_END_KEY: &[u8] = &[b'r', 1, 0, 0];
const INSIDE_LEFT: &[u8] = &[b'r', 0, 16, 146, 100];
const INSIDE_RIGHT: &[u8] = &[b'r', 0, 16, 146, 200];

/// The suite's codec: raw mode, keyspace 4242.
fn v2() -> CodecV2 {
    CodecV2::with_keyspace_id(Mode::Raw, TEST_KEYSPACE_ID).unwrap()
}

fn ks() -> KeyspacePrefix {
    *v2().keyspace_prefix()
}

/// `prefix ‖ key`.
fn pfx(key: &[u8]) -> Vec<u8> {
    [TEST_PREFIX, key].concat()
}

/// Encodes `cmd` as one attempt would be encoded.
fn encoded(codec: &Codec, cmd: impl Into<Command>) -> RpcRequest {
    let mut req = RpcRequest::new(cmd);
    codec.encode_request(&mut req).unwrap();
    req
}

fn decoded(codec: &Codec, resp: impl Into<CommandResponse>) -> CommandResponse {
    codec.decode_command_response(resp.into()).unwrap()
}

/// A `KeyNotInRegion` region error whose keys are in TiKV's form.
fn key_not_in_region(key: &[u8], start: &[u8], end: &[u8]) -> errorpb::Error {
    let (start_key, end_key) = ks().encode_region_range(start, end);
    errorpb::Error {
        key_not_in_region: Some(errorpb::KeyNotInRegion {
            key: ks().encode_key(key),
            start_key,
            end_key,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn assert_key_not_in_region_decoded(e: &Option<errorpb::Error>) {
    let e = e.as_ref().unwrap().key_not_in_region.as_ref().unwrap();
    assert_eq!(e.key, b"region-key");
    assert_eq!(e.start_key, b"range-start");
    assert_eq!(e.end_key, b"range-end");
}

fn lock_not_found(key: &[u8]) -> kvrpcpb::KeyError {
    kvrpcpb::KeyError {
        txn_lock_not_found: Some(kvrpcpb::TxnLockNotFound { key: key.to_vec() }),
        ..Default::default()
    }
}

fn region(id: u64, start: Vec<u8>, end: Vec<u8>) -> metapb::Region {
    metapb::Region {
        id,
        start_key: start,
        end_key: end,
        ..Default::default()
    }
}

// ===== codec_test.go =====

// client-go: T-CODEC-001 TestParseKeyspaceID
#[test]
fn parse_keyspace_id_reads_the_three_id_bytes() {
    assert_eq!(
        parse_keyspace_id(&[b'x', 1, 2, 3, 1, 2, 3]).unwrap(),
        0x010203
    );
    assert_eq!(
        parse_keyspace_id(&[b'r', 1, 2, 3, 1, 2, 3, 4]).unwrap(),
        0x010203
    );
    // Too short, or not a V2 mode byte: rejected (client-go also returns the null id;
    // here the error carries no id at all).
    assert!(parse_keyspace_id(&[b't', 0, 0]).is_err());
    assert!(parse_keyspace_id(&[b't', 0, 0, 1, 1, 2, 3]).is_err());
    assert!(parse_keyspace_id(&[b'x', 0, 0]).is_err());
}

// client-go: T-CODEC-002 TestDecodeKey
#[test]
fn decode_key_splits_prefix_by_api_version() {
    let (p, k) = decode_key(&[b'r', 1, 2, 3, 1, 2, 3, 4], kvrpcpb::ApiVersion::V2).unwrap();
    assert_eq!(p, [b'r', 1, 2, 3]);
    assert_eq!(k, [1, 2, 3, 4]);

    let (p, k) = decode_key(&[b'x', 1, 2, 3, 1, 2, 3, 4], kvrpcpb::ApiVersion::V2).unwrap();
    assert_eq!(p, [b'x', 1, 2, 3]);
    assert_eq!(k, [1, 2, 3, 4]);

    let (p, k) = decode_key(&[b't', 1, 2, 3, 1, 2, 3, 4], kvrpcpb::ApiVersion::V1).unwrap();
    assert!(p.is_empty());
    assert_eq!(k, [b't', 1, 2, 3, 1, 2, 3, 4]);

    assert!(decode_key(&[b't', 1, 2, 3, 1, 2, 3, 4], kvrpcpb::ApiVersion::V2).is_err());
    // Versions other than V1 and V2 are not codec versions.
    assert!(decode_key(b"abcd", kvrpcpb::ApiVersion::V1ttl).is_err());
}

// client-go: T-CODEC-003 TestEncodeUnknownRequest
#[test]
fn v1_encodes_a_request_without_keys() {
    let codec = Codec::v1(Mode::Txn);
    let mut req = RpcRequest::new(kvrpcpb::StoreSafeTsRequest::default());
    assert!(codec.encode_request(&mut req).is_ok());
    assert_eq!(req.cmd, Command::StoreSafeTS(Default::default()));
    assert_eq!(req.context.api_version(), kvrpcpb::ApiVersion::V1);
    assert_eq!(
        req.context.keyspace,
        Some(CtxKeyspace::KeyspaceId(NULLSPACE_ID))
    );
}

// client-go: T-CODEC-004 TestCodecListUtilityFunctions
#[test]
fn prefix_lists_are_sorted() {
    assert!(codec_v2_prefixes().is_sorted());
    assert!(codec_v1_exclude_prefixes().is_sorted());
    assert_eq!(codec_v2_prefixes(), [b"r", b"x"]);
}

// ===== codec_v1_test.go =====

// client-go: T-CODEC-005 TestV1DecodeBucketKey
#[test]
fn v1_decodes_bucket_keys() {
    // client-go's test body is empty; this gives it the behaviour its name promises
    // (KS-12: each bucket key decoded with the region-key decoder).
    let keys = vec![Vec::new(), mce(b"a"), mce(b"b"), Vec::new()];
    let txn = Codec::v1(Mode::Txn);
    assert_eq!(
        txn.decode_bucket_keys(&keys).unwrap(),
        vec![b"".to_vec(), b"a".to_vec(), b"b".to_vec(), b"".to_vec()]
    );
    assert!(is_decode_error(
        &txn.decode_bucket_keys(&[b"bad".to_vec()]).unwrap_err()
    ));
    // Raw region keys are plain.
    assert_eq!(
        Codec::v1(Mode::Raw).decode_bucket_keys(&keys).unwrap(),
        keys
    );
}

// ===== codec_v2_test.go =====

// client-go: T-CODEC-006 TestCodecV2
#[test]
fn suite_codec_has_keyspace_prefix() {
    let codec = Codec::V2(v2());
    assert_eq!(codec.keyspace(), TEST_PREFIX);
    assert_eq!(codec.api_version(), kvrpcpb::ApiVersion::V2);
}

// client-go: T-CODEC-007 testCodecV2Suite.TestEncodeRequest
#[test]
fn encode_request_prefixes_every_key() {
    let codec = Codec::V2(v2());

    // CmdRawGet
    let req = encoded(
        &codec,
        kvrpcpb::RawGetRequest {
            key: b"key".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(req.cmd.raw_get().unwrap().key, pfx(b"key"));

    // CmdCommitWithOutPrimaryKey
    let req = encoded(
        &codec,
        kvrpcpb::CommitRequest {
            keys: vec![b"key1".to_vec(), b"key2".to_vec()],
            ..Default::default()
        },
    );
    let commit = req.cmd.commit().unwrap();
    assert_eq!(commit.keys, vec![pfx(b"key1"), pfx(b"key2")]);
    assert!(commit.primary_key.is_empty());

    // CmdCommitWithPrimaryKey
    let req = encoded(
        &codec,
        kvrpcpb::CommitRequest {
            keys: vec![b"key1".to_vec(), b"key2".to_vec()],
            primary_key: b"key1".to_vec(),
            ..Default::default()
        },
    );
    let commit = req.cmd.commit().unwrap();
    assert_eq!(commit.keys, vec![pfx(b"key1"), pfx(b"key2")]);
    assert_eq!(commit.primary_key, pfx(b"key1"));

    // CmdFlush
    let req = encoded(
        &codec,
        kvrpcpb::FlushRequest {
            mutations: vec![
                kvrpcpb::Mutation {
                    op: kvrpcpb::Op::Put as i32,
                    key: b"key1".to_vec(),
                    ..Default::default()
                },
                kvrpcpb::Mutation {
                    op: kvrpcpb::Op::Del as i32,
                    key: b"key2".to_vec(),
                    ..Default::default()
                },
            ],
            primary_key: b"primary".to_vec(),
            ..Default::default()
        },
    );
    let flush = req.cmd.flush().unwrap();
    assert_eq!(flush.mutations.len(), 2);
    assert_eq!(flush.mutations[0].key, pfx(b"key1"));
    assert_eq!(flush.mutations[1].key, pfx(b"key2"));
    assert_eq!(flush.primary_key, pfx(b"primary"));

    // CmdBufferBatchGet
    let req = encoded(
        &codec,
        kvrpcpb::BufferBatchGetRequest {
            keys: vec![b"key1".to_vec(), b"key2".to_vec()],
            ..Default::default()
        },
    );
    assert_eq!(
        req.cmd.buffer_batch_get().unwrap().keys,
        vec![pfx(b"key1"), pfx(b"key2")]
    );

    // CmdFlashbackToVersion
    let req = encoded(
        &codec,
        kvrpcpb::FlashbackToVersionRequest {
            start_key: b"start".to_vec(),
            ..Default::default()
        },
    );
    let fb = req.cmd.flashback_to_version().unwrap();
    assert_eq!(fb.start_key, pfx(b"start"));
    assert_eq!(fb.end_key, KEYSPACE_END);

    // CmdPrepareFlashbackToVersion
    let req = encoded(
        &codec,
        kvrpcpb::PrepareFlashbackToVersionRequest {
            start_key: b"prepare-start".to_vec(),
            ..Default::default()
        },
    );
    let fb = req.cmd.prepare_flashback_to_version().unwrap();
    assert_eq!(fb.start_key, pfx(b"prepare-start"));
    assert_eq!(fb.end_key, KEYSPACE_END);

    // CmdCompact: TiFlash cursors stay as they are; the body carries the keyspace.
    let req = encoded(
        &codec,
        kvrpcpb::CompactRequest {
            start_key: b"compact-start".to_vec(),
            ..Default::default()
        },
    );
    let compact = req.cmd.compact().unwrap();
    assert_eq!(compact.start_key, b"compact-start");
    assert_eq!(compact.api_version(), kvrpcpb::ApiVersion::V2);
    assert_eq!(
        compact.keyspace,
        Some(kvrpcpb::compact_request::Keyspace::KeyspaceId(
            TEST_KEYSPACE_ID
        ))
    );
}

// client-go: T-CODEC-008 testCodecV2Suite.TestEncodeV2KeyRanges
#[test]
fn encode_key_ranges_maps_empty_bounds_to_keyspace_bounds() {
    let range = |s: &[u8], e: &[u8]| kvrpcpb::KeyRange {
        start_key: s.to_vec(),
        end_key: e.to_vec(),
    };
    let cases = [
        (range(b"", b""), range(TEST_PREFIX, KEYSPACE_END)),
        (range(b"", b"z"), range(TEST_PREFIX, &pfx(b"z"))),
        (range(b"a", b""), range(&pfx(b"a"), KEYSPACE_END)),
        (range(b"a", b"z"), range(&pfx(b"a"), &pfx(b"z"))),
    ];
    let ks = ks();
    for (mut input, expect) in cases.clone() {
        ks.encode_kv_range(&mut input);
        assert_eq!(input, expect);
    }
    // The same through a request carrying key ranges.
    let req = encoded(
        &Codec::V2(v2()),
        kvrpcpb::RawChecksumRequest {
            ranges: cases.iter().map(|(i, _)| i.clone()).collect(),
            ..Default::default()
        },
    );
    let expect: Vec<_> = cases.into_iter().map(|(_, e)| e).collect();
    assert_eq!(req.cmd.raw_checksum().unwrap().ranges, expect);
}

// client-go: T-CODEC-009 testCodecV2Suite.TestNewCodecV2
#[test]
fn new_codec_v2_computes_prefix_and_end() {
    let meta = |id: u32| keyspacepb::KeyspaceMeta {
        keyspace: Some(MetaKeyspace::Id(id)),
        ..Default::default()
    };
    // A too large keyspace id is rejected. (A bad mode cannot be expressed: `Mode` is an
    // enum of the two modes.)
    assert!(CodecV2::new(Mode::Raw, Some(meta(u32::MAX))).is_err());
    assert!(CodecV2::new(Mode::Raw, Some(meta(1 << 24))).is_err());

    let cases: [(Mode, u32, [u8; 4], [u8; 4]); 4] = [
        (
            Mode::Raw,
            (1 << 24) - 2,
            *b"r\xff\xff\xfe",
            *b"r\xff\xff\xff",
        ),
        // The end carries the increment into the higher bytes.
        (
            Mode::Txn,
            (1 << 8) - 1,
            *b"x\x00\x00\xff",
            *b"x\x00\x01\x00",
        ),
        (
            Mode::Txn,
            (1 << 16) - 1,
            *b"x\x00\xff\xff",
            *b"x\x01\x00\x00",
        ),
        // The last keyspace ends in the next mode byte.
        (
            Mode::Raw,
            (1 << 24) - 1,
            *b"r\xff\xff\xff",
            *b"s\x00\x00\x00",
        ),
    ];
    for (mode, id, prefix, end) in cases {
        let codec = CodecV2::new(mode, Some(meta(id))).unwrap();
        assert_eq!(codec.keyspace_meta(), &meta(id));
        assert_eq!(codec.keyspace_prefix().prefix(), &prefix, "{id}");
        assert_eq!(codec.keyspace_prefix().end(), &end, "{id}");
    }
}

// client-go: T-CODEC-010 testCodecV2Suite.TestNewCodecV2RejectsKeyspaceIdentity
#[test]
fn new_codec_v2_rejects_keyspace_identity() {
    let meta = keyspacepb::KeyspaceMeta {
        keyspace: Some(MetaKeyspace::KeyspaceIdentity(apipb::KeyspaceIdentity {
            namespace_id: 1,
            keyspace_id: 2,
        })),
        ..Default::default()
    };
    assert!(CodecV2::new(Mode::Txn, Some(meta)).is_err());
}

// client-go: T-CODEC-011 testCodecV2Suite.TestNewCodecV2RejectsNilMeta
#[test]
fn new_codec_v2_rejects_missing_meta() {
    assert!(CodecV2::new(Mode::Txn, None).is_err());
    assert!(Codec::v2(Mode::Txn, None).is_err());
}

// client-go: T-CODEC-012 testCodecV2Suite.TestDecodeEpochNotMatch
#[test]
fn decode_epoch_not_match_clips_and_drops_regions() {
    let mut err = Some(errorpb::Error {
        epoch_not_match: Some(errorpb::EpochNotMatch {
            current_regions: vec![
                // Exactly the keyspace.
                region(1, mce(TEST_PREFIX), mce(KEYSPACE_END)),
                // Covers the keyspace.
                region(2, mce(BEFORE_PREFIX), mce(AFTER_END_KEY)),
                // Straddles the keyspace start.
                region(3, mce(BEFORE_PREFIX), mce(INSIDE_LEFT)),
                // Inside the keyspace.
                region(4, mce(INSIDE_LEFT), mce(INSIDE_RIGHT)),
                // Ends where the keyspace starts: dropped.
                region(5, mce(BEFORE_PREFIX), mce(TEST_PREFIX)),
                // Starts where the keyspace ends: dropped.
                region(6, mce(KEYSPACE_END), mce(AFTER_END_KEY)),
            ],
        }),
        ..Default::default()
    });
    ks().decode_region_error(&mut err).unwrap();
    let expected = vec![
        region(1, vec![], vec![]),
        region(2, vec![], vec![]),
        region(3, vec![], INSIDE_LEFT[TEST_PREFIX.len()..].to_vec()),
        region(
            4,
            INSIDE_LEFT[TEST_PREFIX.len()..].to_vec(),
            INSIDE_RIGHT[TEST_PREFIX.len()..].to_vec(),
        ),
    ];
    assert_eq!(
        err.unwrap().epoch_not_match.unwrap().current_regions,
        expected
    );
}

// client-go: T-CODEC-013 testCodecV2Suite.TestDecodeKeyError
#[test]
fn decode_key_error_strips_every_key() {
    let ks = ks();

    // TxnLockNotFound
    let mut e = lock_not_found(&pfx(b"key1"));
    ks.decode_key_error(&mut e).unwrap();
    assert_eq!(e.txn_lock_not_found.unwrap().key, b"key1");

    // LockedSharedLockInfos
    let lock = |k: &[u8], p: &[u8], s: &[u8], t: kvrpcpb::Op| kvrpcpb::LockInfo {
        key: pfx(k),
        primary_lock: pfx(p),
        secondaries: vec![pfx(s)],
        lock_type: t as i32,
        ..Default::default()
    };
    let mut outer = lock(
        b"outer-key",
        b"outer-primary",
        b"outer-secondary",
        kvrpcpb::Op::SharedLock,
    );
    outer.shared_lock_infos = vec![lock(
        b"inner-key",
        b"inner-primary",
        b"inner-secondary",
        kvrpcpb::Op::Lock,
    )];
    let mut e = kvrpcpb::KeyError {
        locked: Some(outer),
        ..Default::default()
    };
    ks.decode_key_error(&mut e).unwrap();
    let locked = e.locked.unwrap();
    assert_eq!(locked.key, b"outer-key");
    assert_eq!(locked.primary_lock, b"outer-primary");
    assert_eq!(locked.secondaries, vec![b"outer-secondary".to_vec()]);
    assert_eq!(locked.shared_lock_infos.len(), 1);
    let inner = &locked.shared_lock_infos[0];
    assert_eq!(inner.key, b"inner-key");
    assert_eq!(inner.primary_lock, b"inner-primary");
    assert_eq!(inner.secondaries, vec![b"inner-secondary".to_vec()]);

    // PrimaryMismatchLockInfo
    let mut e = kvrpcpb::KeyError {
        primary_mismatch: Some(kvrpcpb::PrimaryMismatch {
            lock_info: Some(lock(
                b"mismatch-key",
                b"mismatch-primary",
                b"mismatch-secondary",
                kvrpcpb::Op::Put,
            )),
        }),
        ..Default::default()
    };
    ks.decode_key_error(&mut e).unwrap();
    let info = e.primary_mismatch.unwrap().lock_info.unwrap();
    assert_eq!(info.key, b"mismatch-key");
    assert_eq!(info.primary_lock, b"mismatch-primary");
    assert_eq!(info.secondaries, vec![b"mismatch-secondary".to_vec()]);

    // DeadlockDeadlockKey
    let mut e = kvrpcpb::KeyError {
        deadlock: Some(kvrpcpb::Deadlock {
            lock_key: pfx(b"lock-key"),
            deadlock_key: pfx(b"deadlock-key"),
            wait_chain: vec![deadlock::WaitForEntry {
                key: pfx(b"wait-key"),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    ks.decode_key_error(&mut e).unwrap();
    let d = e.deadlock.unwrap();
    assert_eq!(d.lock_key, b"lock-key");
    assert_eq!(d.deadlock_key, b"deadlock-key");
    assert_eq!(d.wait_chain.len(), 1);
    assert_eq!(d.wait_chain[0].key, b"wait-key");

    // MvccDebugInfo
    let mut e = lock_not_found(&pfx(b"key1"));
    e.debug_info = Some(kvrpcpb::DebugInfo {
        mvcc_info: vec![kvrpcpb::MvccDebugInfo {
            key: pfx(b"key1"),
            mvcc: Some(kvrpcpb::MvccInfo {
                lock: Some(kvrpcpb::MvccLock {
                    primary: pfx(b"debug-primary"),
                    secondaries: vec![pfx(b"debug-secondary-1"), pfx(b"debug-secondary-2")],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }],
    });
    ks.decode_key_error(&mut e).unwrap();
    assert_eq!(e.txn_lock_not_found.unwrap().key, b"key1");
    let debug = e.debug_info.unwrap();
    assert_eq!(debug.mvcc_info.len(), 1);
    assert_eq!(debug.mvcc_info[0].key, b"key1");
    let lock = debug.mvcc_info[0]
        .mvcc
        .as_ref()
        .unwrap()
        .lock
        .as_ref()
        .unwrap();
    assert_eq!(lock.primary, b"debug-primary");
    assert_eq!(
        lock.secondaries,
        vec![b"debug-secondary-1".to_vec(), b"debug-secondary-2".to_vec()]
    );
}

// client-go: T-CODEC-014 testCodecV2Suite.TestDecodeResponseHotPathCommands
#[test]
fn decode_response_hot_path_commands() {
    let codec = Codec::V2(v2());
    let region_err = || {
        Some(key_not_in_region(
            b"region-key",
            b"range-start",
            b"range-end",
        ))
    };

    // CmdFlush
    let resp = decoded(
        &codec,
        kvrpcpb::FlushResponse {
            region_error: region_err(),
            errors: vec![lock_not_found(&pfx(b"lock-key"))],
            ..Default::default()
        },
    );
    let CommandResponse::Flush(r) = resp else {
        panic!("not a flush response")
    };
    assert_key_not_in_region_decoded(&r.region_error);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        r.errors[0].txn_lock_not_found.as_ref().unwrap().key,
        b"lock-key"
    );

    // CmdBufferBatchGet
    let resp = decoded(
        &codec,
        kvrpcpb::BufferBatchGetResponse {
            region_error: region_err(),
            error: Some(lock_not_found(&pfx(b"response-lock"))),
            pairs: vec![kvrpcpb::KvPair {
                key: pfx(b"pair-key"),
                error: Some(lock_not_found(&pfx(b"pair-lock"))),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let CommandResponse::BufferBatchGet(r) = resp else {
        panic!("not a buffer batch get response")
    };
    assert_key_not_in_region_decoded(&r.region_error);
    assert_eq!(
        r.error.unwrap().txn_lock_not_found.unwrap().key,
        b"response-lock"
    );
    assert_eq!(r.pairs.len(), 1);
    assert_eq!(r.pairs[0].key, b"pair-key");
    assert_eq!(
        r.pairs[0]
            .error
            .as_ref()
            .unwrap()
            .txn_lock_not_found
            .as_ref()
            .unwrap()
            .key,
        b"pair-lock"
    );
}

// client-go: T-CODEC-015 testCodecV2Suite.TestDecodeResponseSecondWaveCommands
#[test]
fn decode_response_second_wave_commands() {
    // client-go's CheckLockObserver subtest has no counterpart: current TiKV no longer
    // serves the lock-observer commands, so the envelope does not carry them.
    let codec = Codec::V2(v2());
    let region_err = || {
        Some(key_not_in_region(
            b"region-key",
            b"range-start",
            b"range-end",
        ))
    };

    // CmdLockWaitInfo
    let resp = decoded(
        &codec,
        kvrpcpb::GetLockWaitInfoResponse {
            region_error: region_err(),
            entries: vec![deadlock::WaitForEntry {
                key: pfx(b"wait-key"),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let CommandResponse::LockWaitInfo(r) = resp else {
        panic!("not a lock wait info response")
    };
    assert_key_not_in_region_decoded(&r.region_error);
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries[0].key, b"wait-key");

    let mvcc = |p: &[u8], s1: &[u8], s2: &[u8]| kvrpcpb::MvccInfo {
        lock: Some(kvrpcpb::MvccLock {
            primary: pfx(p),
            secondaries: vec![pfx(s1), pfx(s2)],
            ..Default::default()
        }),
        ..Default::default()
    };

    // CmdMvccGetByStartTs
    let resp = decoded(
        &codec,
        kvrpcpb::MvccGetByStartTsResponse {
            region_error: region_err(),
            key: pfx(b"mvcc-key"),
            info: Some(mvcc(
                b"mvcc-primary",
                b"mvcc-secondary-1",
                b"mvcc-secondary-2",
            )),
            ..Default::default()
        },
    );
    let CommandResponse::MvccGetByStartTs(r) = resp else {
        panic!("not an mvcc-by-start-ts response")
    };
    assert_key_not_in_region_decoded(&r.region_error);
    assert_eq!(r.key, b"mvcc-key");
    let lock = r.info.unwrap().lock.unwrap();
    assert_eq!(lock.primary, b"mvcc-primary");
    assert_eq!(
        lock.secondaries,
        vec![b"mvcc-secondary-1".to_vec(), b"mvcc-secondary-2".to_vec()]
    );

    // CmdMvccGetByKey
    let resp = decoded(
        &codec,
        kvrpcpb::MvccGetByKeyResponse {
            region_error: region_err(),
            info: Some(mvcc(
                b"mvcc-by-key-primary",
                b"mvcc-by-key-secondary-1",
                b"mvcc-by-key-secondary-2",
            )),
            ..Default::default()
        },
    );
    let CommandResponse::MvccGetByKey(r) = resp else {
        panic!("not an mvcc-by-key response")
    };
    assert_key_not_in_region_decoded(&r.region_error);
    let lock = r.info.unwrap().lock.unwrap();
    assert_eq!(lock.primary, b"mvcc-by-key-primary");
    assert_eq!(
        lock.secondaries,
        vec![
            b"mvcc-by-key-secondary-1".to_vec(),
            b"mvcc-by-key-secondary-2".to_vec()
        ]
    );

    // CmdFlashbackToVersion
    let resp = decoded(
        &codec,
        kvrpcpb::FlashbackToVersionResponse {
            region_error: region_err(),
            ..Default::default()
        },
    );
    let CommandResponse::FlashbackToVersion(r) = resp else {
        panic!("not a flashback response")
    };
    assert_key_not_in_region_decoded(&r.region_error);

    // CmdPrepareFlashbackToVersion
    let resp = decoded(
        &codec,
        kvrpcpb::PrepareFlashbackToVersionResponse {
            region_error: region_err(),
            ..Default::default()
        },
    );
    let CommandResponse::PrepareFlashbackToVersion(r) = resp else {
        panic!("not a prepare flashback response")
    };
    assert_key_not_in_region_decoded(&r.region_error);

    // CmdCompact: TiFlash cursors are not storage keys and stay untouched.
    let resp = decoded(
        &codec,
        kvrpcpb::CompactResponse {
            compacted_start_key: b"compacted-start".to_vec(),
            compacted_end_key: b"compacted-end".to_vec(),
            ..Default::default()
        },
    );
    let CommandResponse::Compact(r) = resp else {
        panic!("not a compact response")
    };
    assert_eq!(r.compacted_start_key, b"compacted-start");
    assert_eq!(r.compacted_end_key, b"compacted-end");
}

// client-go: T-CODEC-016 testCodecV2Suite.TestDecodeMvccInfoPreservesEmptyLockKeys
#[test]
fn decode_mvcc_info_keeps_empty_lock_keys() {
    let mut info = Some(kvrpcpb::MvccInfo {
        lock: Some(kvrpcpb::MvccLock {
            primary: Vec::new(),
            secondaries: vec![Vec::new(), pfx(b"mvcc-secondary")],
            ..Default::default()
        }),
        ..Default::default()
    });
    let secondary_buf = info.as_ref().unwrap().lock.as_ref().unwrap().secondaries[1].as_ptr();
    ks().decode_mvcc(&mut info).unwrap();
    let lock = info.unwrap().lock.unwrap();
    assert!(lock.primary.is_empty());
    assert_eq!(lock.secondaries.len(), 2);
    assert!(lock.secondaries[0].is_empty());
    assert_eq!(lock.secondaries[1], b"mvcc-secondary");
    // Decoded in place: the key keeps its buffer.
    assert_eq!(lock.secondaries[1].as_ptr(), secondary_buf);
}

// client-go: T-CODEC-017 testCodecV2Suite.TestGetKeyspaceID
#[test]
fn codec_reports_its_keyspace_id() {
    assert_eq!(v2().keyspace_id(), TEST_KEYSPACE_ID);
    assert_eq!(Codec::V2(v2()).keyspace_id(), TEST_KEYSPACE_ID);
    assert_eq!(Codec::v1(Mode::Raw).keyspace_id(), NULLSPACE_ID);
}

// client-go: T-CODEC-018 testCodecV2Suite.TestEncodeMPPRequest
#[test]
fn encode_mpp_request_sets_meta_and_prefixes_ranges() {
    let req = encoded(
        &Codec::V2(v2()),
        mpp::DispatchTaskRequest {
            meta: Some(mpp::TaskMeta::default()),
            regions: vec![coprocessor::RegionInfo {
                ranges: vec![coprocessor::KeyRange {
                    start: b"a".to_vec(),
                    end: b"b".to_vec(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let task = req.cmd.dispatch_mpp_task().unwrap();
    let meta = task.meta.as_ref().unwrap();
    assert_eq!(
        meta.keyspace,
        Some(mpp::task_meta::Keyspace::KeyspaceId(TEST_KEYSPACE_ID))
    );
    assert_eq!(meta.api_version(), kvrpcpb::ApiVersion::V2);
    assert_eq!(task.regions[0].ranges[0].start, pfx(b"a"));
    assert_eq!(task.regions[0].ranges[0].end, pfx(b"b"));
}

// client-go: T-CODEC-019 testCodecV2Suite.TestDecodeBucketKeys
#[test]
fn decode_bucket_keys_clips_to_keyspace() {
    let ks = ks();
    let with_prefix = |prefix: &[u8], key: &[u8]| mce(&[prefix, key].concat());
    let expected = vec![
        Vec::new(),
        b"a".to_vec(),
        b"b".to_vec(),
        b"c".to_vec(),
        Vec::new(),
    ];

    let keys = vec![
        with_prefix(PREV_KEYSPACE_PREFIX, b"a"),
        with_prefix(PREV_KEYSPACE_PREFIX, b"b"),
        with_prefix(PREV_KEYSPACE_PREFIX, b"c"),
        ks.encode_region_key(b"a"),
        ks.encode_region_key(b"b"),
        ks.encode_region_key(b"c"),
        with_prefix(KEYSPACE_END, b""),
        with_prefix(KEYSPACE_END, b"a"),
        with_prefix(KEYSPACE_END, b"b"),
        with_prefix(KEYSPACE_END, b"c"),
    ];
    assert_eq!(ks.decode_bucket_keys(&keys).unwrap(), expected);

    let keys = vec![
        with_prefix(PREV_KEYSPACE_PREFIX, b"a"),
        with_prefix(PREV_KEYSPACE_PREFIX, b"b"),
        with_prefix(PREV_KEYSPACE_PREFIX, b"c"),
        ks.encode_region_key(b""),
        ks.encode_region_key(b"a"),
        ks.encode_region_key(b"b"),
        ks.encode_region_key(b"c"),
        Vec::new(),
    ];
    assert_eq!(ks.decode_bucket_keys(&keys).unwrap(), expected);

    let mut keys_with_empty_first = vec![Vec::new()];
    keys_with_empty_first.extend(keys);
    assert_eq!(
        ks.decode_bucket_keys(&keys_with_empty_first).unwrap(),
        expected
    );
}

// ===== key and region-key primitives =====

#[test]
fn reverse_scan_ranges_swap_bound_roles() {
    let codec = Codec::V2(v2());
    // Reverse: start is the upper bound, end the lower one; both empty = whole keyspace.
    let req = encoded(
        &codec,
        kvrpcpb::ScanRequest {
            reverse: true,
            ..Default::default()
        },
    );
    let scan = req.cmd.scan().unwrap();
    assert_eq!(scan.start_key, KEYSPACE_END);
    assert_eq!(scan.end_key, TEST_PREFIX);

    let req = encoded(
        &codec,
        kvrpcpb::RawScanRequest {
            start_key: b"z".to_vec(),
            end_key: b"a".to_vec(),
            reverse: true,
            ..Default::default()
        },
    );
    let scan = req.cmd.raw_scan().unwrap();
    assert_eq!(scan.start_key, pfx(b"z"));
    assert_eq!(scan.end_key, pfx(b"a"));

    // Forward: an empty end is the keyspace end.
    let req = encoded(
        &codec,
        kvrpcpb::RawScanRequest {
            start_key: b"a".to_vec(),
            ..Default::default()
        },
    );
    let scan = req.cmd.raw_scan().unwrap();
    assert_eq!(scan.start_key, pfx(b"a"));
    assert_eq!(scan.end_key, KEYSPACE_END);
}

#[test]
fn encode_covers_every_key_field() {
    let codec = Codec::V2(CodecV2::with_keyspace_id(Mode::Txn, 1).unwrap());
    let p = |k: &[u8]| [b"x\x00\x00\x01".as_slice(), k].concat();
    let mutation = |k: &[u8]| kvrpcpb::Mutation {
        key: k.to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };

    let req = encoded(
        &codec,
        kvrpcpb::PrewriteRequest {
            mutations: vec![mutation(b"k1")],
            primary_lock: b"k1".to_vec(),
            secondaries: vec![b"k2".to_vec()],
            ..Default::default()
        },
    );
    let r = req.cmd.prewrite().unwrap();
    assert_eq!(r.mutations[0].key, p(b"k1"));
    assert_eq!(r.mutations[0].value, b"v", "values are never encoded");
    assert_eq!(r.primary_lock, p(b"k1"));
    assert_eq!(r.secondaries, vec![p(b"k2")]);

    let req = encoded(
        &codec,
        kvrpcpb::PessimisticLockRequest {
            mutations: vec![mutation(b"k")],
            primary_lock: b"p".to_vec(),
            ..Default::default()
        },
    );
    let r = req.cmd.pessimistic_lock().unwrap();
    assert_eq!(
        (r.mutations[0].key.clone(), r.primary_lock.clone()),
        (p(b"k"), p(b"p"))
    );

    let req = encoded(
        &codec,
        kvrpcpb::RawBatchPutRequest {
            pairs: vec![kvrpcpb::KvPair {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let r = req.cmd.raw_batch_put().unwrap();
    assert_eq!(
        (r.pairs[0].key.clone(), r.pairs[0].value.clone()),
        (p(b"k"), b"v".to_vec())
    );

    let req = encoded(
        &codec,
        kvrpcpb::SplitRegionRequest {
            split_key: b"s".to_vec(),
            split_keys: vec![b"a".to_vec(), b"b".to_vec()],
            ..Default::default()
        },
    );
    let r = req.cmd.split_region().unwrap();
    assert_eq!(r.split_key, p(b"s"));
    assert_eq!(r.split_keys, vec![p(b"a"), p(b"b")]);

    // A store safe-ts request without a range asks about the whole keyspace.
    let req = encoded(&codec, kvrpcpb::StoreSafeTsRequest::default());
    let range = req.cmd.store_safe_ts().unwrap().key_range.clone().unwrap();
    assert_eq!(range.start_key, p(b""));
    assert_eq!(range.end_key, b"x\x00\x00\x02");

    let cop_range = |s: &[u8], e: &[u8]| coprocessor::KeyRange {
        start: s.to_vec(),
        end: e.to_vec(),
    };
    let mut req = RpcRequest::new(Command::CopStream(coprocessor::Request {
        ranges: vec![cop_range(b"a", b"b")],
        tasks: vec![coprocessor::StoreBatchTask {
            ranges: vec![cop_range(b"c", b"")],
            ..Default::default()
        }],
        versioned_ranges: vec![coprocessor::VersionedKeyRange {
            range: Some(cop_range(b"d", b"e")),
            read_ts: 7,
        }],
        ..Default::default()
    }));
    codec.encode_request(&mut req).unwrap();
    let r = req.cmd.cop_stream().unwrap();
    assert_eq!(r.ranges[0], cop_range(&p(b"a"), &p(b"b")));
    assert_eq!(r.tasks[0].ranges[0], cop_range(&p(b"c"), b"x\x00\x00\x02"));
    assert_eq!(
        r.versioned_ranges[0].range,
        Some(cop_range(&p(b"d"), &p(b"e")))
    );

    let req = encoded(
        &codec,
        coprocessor::BatchRequest {
            table_regions: vec![coprocessor::TableRegions {
                regions: vec![coprocessor::RegionInfo {
                    ranges: vec![cop_range(b"a", b"b")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let r = req.cmd.batch_cop().unwrap();
    assert_eq!(
        r.table_regions[0].regions[0].ranges[0],
        cop_range(&p(b"a"), &p(b"b"))
    );
}

#[test]
fn stamp_sets_context_for_every_command() {
    let meta = keyspacepb::KeyspaceMeta {
        name: "ks1".to_owned(),
        keyspace: Some(MetaKeyspace::Id(7)),
        ..Default::default()
    };
    let v2 = Codec::v2(Mode::Txn, Some(meta)).unwrap();
    let v1 = Codec::v1(Mode::Txn);
    for &t in crate::CmdType::ALL {
        let mut req = RpcRequest::new(t.empty_command());
        v2.encode_request(&mut req).unwrap();
        assert_eq!(req.context.api_version(), kvrpcpb::ApiVersion::V2, "{t}");
        assert_eq!(
            req.context.keyspace,
            Some(CtxKeyspace::KeyspaceId(7)),
            "{t}"
        );
        assert_eq!(req.context.keyspace_name, "ks1", "{t}");

        let mut req = RpcRequest::new(t.empty_command());
        v1.encode_request(&mut req).unwrap();
        assert_eq!(req.context.api_version(), kvrpcpb::ApiVersion::V1, "{t}");
        assert_eq!(
            req.context.keyspace,
            Some(CtxKeyspace::KeyspaceId(NULLSPACE_ID)),
            "{t}"
        );
        assert!(req.context.keyspace_name.is_empty(), "{t}");
    }
    // MPP tasks under V1 carry the null keyspace in their meta too (KS-4).
    let req = encoded(&v1, mpp::DispatchTaskRequest::default());
    let meta = req.cmd.dispatch_mpp_task().unwrap().meta.clone().unwrap();
    assert_eq!(
        meta.keyspace,
        Some(mpp::task_meta::Keyspace::KeyspaceId(NULLSPACE_ID))
    );
    assert_eq!(meta.api_version(), kvrpcpb::ApiVersion::V1);
}

#[test]
fn v1_leaves_keys_in_their_buffers() {
    let codec = Codec::v1(Mode::Txn);
    let mut req = RpcRequest::new(kvrpcpb::BatchGetRequest {
        keys: vec![b"a".to_vec(), b"b".to_vec()],
        ..Default::default()
    });
    let before = req.cmd.clone();
    let ptr = req.cmd.batch_get().unwrap().keys[0].as_ptr();
    codec.encode_request(&mut req).unwrap();
    assert_eq!(req.cmd, before);
    assert_eq!(req.cmd.batch_get().unwrap().keys[0].as_ptr(), ptr);
}

#[test]
fn key_and_range_helpers() {
    let ks = ks();
    assert_eq!(ks.decode_key(&pfx(b"k")).unwrap(), b"k");
    assert_eq!(ks.decode_key(b"").unwrap(), b"");
    assert!(ks.decode_key(b"x\x00\x00\x01k").is_err());
    // Bounds outside the keyspace are clipped to unbounded.
    assert_eq!(
        ks.decode_range(BEFORE_PREFIX, AFTER_END_KEY).unwrap(),
        (&b""[..], &b""[..])
    );
    assert_eq!(
        ks.decode_range(INSIDE_LEFT, KEYSPACE_END).unwrap(),
        (&[100u8][..], &b""[..])
    );
    assert!(ks.decode_range(KEYSPACE_END, b"").is_err());
    assert!(ks.decode_range(BEFORE_PREFIX, TEST_PREFIX).is_err());

    assert_eq!(ks.keyspace_id(), TEST_KEYSPACE_ID);
    assert_eq!(KeyspacePrefix::from_prefix(*b"r\x00\x10\x92"), ks);
    assert_eq!(build_keyspace_name(""), DEFAULT_KEYSPACE_NAME);
    assert_eq!(build_keyspace_name("a"), "a");

    let v1 = Codec::v1(Mode::Raw);
    assert_eq!(v1.encode_key(b"k"), b"k");
    assert_eq!(v1.decode_key(b"k").unwrap(), b"k");
    assert_eq!(v1.encode_range(b"a", b""), (b"a".to_vec(), Vec::new()));
    assert_eq!(v1.decode_range(b"a", b"b").unwrap(), (&b"a"[..], &b"b"[..]));
    let v2 = Codec::V2(v2());
    assert_eq!(v2.encode_key(b"k"), pfx(b"k"));
    assert_eq!(v2.decode_key(&pfx(b"k")).unwrap(), b"k");
    assert_eq!(
        v2.encode_range(b"a", b""),
        (pfx(b"a"), KEYSPACE_END.to_vec())
    );
    assert!(v2.keyspace_meta().is_some() && Codec::v1(Mode::Txn).keyspace_meta().is_none());
}

#[test]
fn region_key_helpers() {
    // V1 raw: identity; V1 txn: memcomparable with an empty end kept empty.
    let raw = Codec::v1(Mode::Raw);
    assert_eq!(raw.encode_region_key(b"k"), b"k");
    assert_eq!(
        raw.encode_region_range(b"a", b""),
        (b"a".to_vec(), Vec::new())
    );
    assert_eq!(
        raw.decode_region_range(b"a", b"b").unwrap(),
        (b"a".to_vec(), b"b".to_vec())
    );
    let txn = Codec::v1(Mode::Txn);
    assert_eq!(txn.encode_region_key(b"k"), mce(b"k"));
    assert_eq!(txn.encode_region_range(b"a", b""), (mce(b"a"), Vec::new()));
    assert_eq!(
        txn.decode_region_range(&mce(b"a"), b"").unwrap(),
        (b"a".to_vec(), Vec::new())
    );
    let bad = txn.decode_region_key(b"\x01").unwrap_err();
    assert!(is_decode_error(&bad));
    assert_eq!(decode_error_cause(&bad), Some(&DecodeError::Insufficient));

    // V2: prefixed memcomparable keys, clipped ranges.
    let v2 = Codec::V2(v2());
    assert_eq!(v2.encode_region_key(b"k"), mce(&pfx(b"k")));
    assert_eq!(
        v2.encode_region_range(b"a", b""),
        (mce(&pfx(b"a")), mce(KEYSPACE_END))
    );
    assert_eq!(v2.decode_region_key(&mce(&pfx(b"k"))).unwrap(), b"k");
    assert!(is_decode_error(&v2.decode_region_key(b"").unwrap_err()));
    assert_eq!(
        v2.decode_region_range(&mce(BEFORE_PREFIX), b"").unwrap(),
        (Vec::new(), Vec::new())
    );
    let out = v2
        .decode_region_range(&mce(AFTER_END_KEY), b"")
        .unwrap_err();
    assert!(
        !is_decode_error(&out),
        "out of keyspace is not a decode error"
    );
    assert_eq!(out.kind(), crate::ErrorKind::InvalidArgument);
}

#[test]
fn v1_txn_decodes_region_error_boundaries() {
    let codec = Codec::v1(Mode::Txn);
    let resp = kvrpcpb::CommitResponse {
        region_error: Some(errorpb::Error {
            key_not_in_region: Some(errorpb::KeyNotInRegion {
                key: b"user-key".to_vec(),
                start_key: mce(b"a"),
                end_key: Vec::new(),
                ..Default::default()
            }),
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![region(1, mce(b"a"), mce(b"b"))],
            }),
            bucket_version_not_match: Some(errorpb::BucketVersionNotMatch {
                version: 3,
                keys: vec![mce(b"a"), Vec::new()],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let CommandResponse::Commit(r) = decoded(&codec, resp) else {
        panic!("not a commit response")
    };
    let e = r.region_error.unwrap();
    let k = e.key_not_in_region.unwrap();
    assert_eq!(
        (k.key, k.start_key, k.end_key),
        (b"user-key".to_vec(), b"a".to_vec(), Vec::new())
    );
    assert_eq!(
        e.epoch_not_match.unwrap().current_regions,
        vec![region(1, b"a".to_vec(), b"b".to_vec())]
    );
    assert_eq!(
        e.bucket_version_not_match.unwrap().keys,
        vec![b"a".to_vec(), Vec::new()]
    );

    // A malformed boundary fails the response with a decode error.
    let resp = kvrpcpb::GetResponse {
        region_error: Some(errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![region(1, b"bad".to_vec(), Vec::new())],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = codec.decode_command_response(resp.into()).unwrap_err();
    assert!(is_decode_error(&err));
}

#[test]
fn v2_decodes_response_keys() {
    let codec = Codec::V2(v2());
    let pair = |k: &[u8]| kvrpcpb::KvPair {
        key: pfx(k),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let CommandResponse::RawScan(r) = decoded(
        &codec,
        kvrpcpb::RawScanResponse {
            kvs: vec![pair(b"a"), pair(b"b")],
            ..Default::default()
        },
    ) else {
        panic!("not a raw scan response")
    };
    assert_eq!(
        r.kvs.iter().map(|p| p.key.as_slice()).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    assert_eq!(r.kvs[0].value, b"v");

    let lock = |k: &[u8]| kvrpcpb::LockInfo {
        key: pfx(k),
        primary_lock: pfx(b"p"),
        ..Default::default()
    };
    let CommandResponse::ScanLock(r) = decoded(
        &codec,
        kvrpcpb::ScanLockResponse {
            locks: vec![lock(b"l1")],
            ..Default::default()
        },
    ) else {
        panic!("not a scan lock response")
    };
    assert_eq!(
        (
            r.locks[0].key.as_slice(),
            r.locks[0].primary_lock.as_slice()
        ),
        (&b"l1"[..], &b"p"[..])
    );

    let CommandResponse::CheckTxnStatus(r) = decoded(
        &codec,
        kvrpcpb::CheckTxnStatusResponse {
            lock_info: Some(lock(b"l2")),
            ..Default::default()
        },
    ) else {
        panic!("not a check txn status response")
    };
    assert_eq!(r.lock_info.unwrap().key, b"l2");

    let CommandResponse::Cop(r) = decoded(
        &codec,
        coprocessor::Response {
            locked: Some(lock(b"l3")),
            range: Some(coprocessor::KeyRange {
                start: pfx(b"a"),
                end: KEYSPACE_END.to_vec(),
            }),
            batch_responses: vec![coprocessor::StoreBatchTaskResponse {
                locked: Some(lock(b"l4")),
                ..Default::default()
            }],
            ..Default::default()
        },
    ) else {
        panic!("not a coprocessor response")
    };
    assert_eq!(r.locked.unwrap().key, b"l3");
    let range = r.range.unwrap();
    assert_eq!((range.start, range.end), (b"a".to_vec(), Vec::new()));
    assert_eq!(r.batch_responses[0].locked.as_ref().unwrap().key, b"l4");

    let conflict = kvrpcpb::KeyError {
        conflict: Some(kvrpcpb::WriteConflict {
            key: pfx(b"k"),
            primary: pfx(b"p"),
            ..Default::default()
        }),
        already_exist: Some(kvrpcpb::AlreadyExist { key: pfx(b"e") }),
        commit_ts_expired: Some(kvrpcpb::CommitTsExpired {
            key: pfx(b"c"),
            ..Default::default()
        }),
        txn_not_found: Some(kvrpcpb::TxnNotFound {
            primary_key: pfx(b"t"),
            ..Default::default()
        }),
        assertion_failed: Some(kvrpcpb::AssertionFailed {
            key: pfx(b"a"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let CommandResponse::Prewrite(r) = decoded(
        &codec,
        kvrpcpb::PrewriteResponse {
            errors: vec![conflict],
            ..Default::default()
        },
    ) else {
        panic!("not a prewrite response")
    };
    let e = &r.errors[0];
    let c = e.conflict.as_ref().unwrap();
    assert_eq!(
        (c.key.as_slice(), c.primary.as_slice()),
        (&b"k"[..], &b"p"[..])
    );
    assert_eq!(e.already_exist.as_ref().unwrap().key, b"e");
    assert_eq!(e.commit_ts_expired.as_ref().unwrap().key, b"c");
    assert_eq!(e.txn_not_found.as_ref().unwrap().primary_key, b"t");
    assert_eq!(e.assertion_failed.as_ref().unwrap().key, b"a");

    let CommandResponse::SplitRegion(r) = decoded(
        &codec,
        kvrpcpb::SplitRegionResponse {
            regions: vec![
                region(1, mce(TEST_PREFIX), mce(&pfx(b"m"))),
                region(2, mce(&pfx(b"m")), mce(KEYSPACE_END)),
            ],
            ..Default::default()
        },
    ) else {
        panic!("not a split response")
    };
    assert_eq!(
        r.regions,
        vec![
            region(1, Vec::new(), b"m".to_vec()),
            region(2, b"m".to_vec(), Vec::new())
        ]
    );
}

#[test]
fn v2_decode_rejects_keys_outside_the_keyspace() {
    let codec = Codec::V2(v2());
    let resp = kvrpcpb::BatchGetResponse {
        pairs: vec![kvrpcpb::KvPair {
            key: b"x\x00\x00\x01k".to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = codec.decode_command_response(resp.into()).unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::InvalidArgument(_)));
    // A split answer with a region outside the keyspace fails too (unlike EpochNotMatch).
    let resp = kvrpcpb::SplitRegionResponse {
        regions: vec![region(1, mce(AFTER_END_KEY), Vec::new())],
        ..Default::default()
    };
    assert!(codec.decode_command_response(resp.into()).is_err());
}

// ===== the layer =====

type MockSvc =
    tower::util::MapErr<tower_test::mock::Mock<RpcRequest, RpcResponse>, fn(BoxError) -> Error>;

fn layer_pair(
    codec: Codec,
) -> (
    ApiCodec<MockSvc>,
    tower_test::mock::Handle<RpcRequest, RpcResponse>,
) {
    let (mock, handle) = tower_test::mock::pair::<RpcRequest, RpcResponse>();
    let mock: MockSvc = mock.map_err(Error::from_boxed as fn(BoxError) -> Error);
    (ApiCodecLayer::new(codec).layer(mock), handle)
}

#[tokio::test(start_paused = true)]
async fn layer_encodes_request_and_decodes_response_v2() {
    let (mut svc, mut handle) = layer_pair(Codec::V2(v2()));
    let req = RpcRequest::new(kvrpcpb::RawScanRequest {
        start_key: b"a".to_vec(),
        ..Default::default()
    });
    let fut = svc.ready().await.unwrap().call(req);

    let (sent, reply) = handle.next_request().await.unwrap();
    assert_eq!(sent.context.api_version(), kvrpcpb::ApiVersion::V2);
    assert_eq!(
        sent.context.keyspace,
        Some(CtxKeyspace::KeyspaceId(TEST_KEYSPACE_ID))
    );
    let scan = sent.cmd.raw_scan().unwrap();
    assert_eq!(
        (scan.start_key.clone(), scan.end_key.clone()),
        (pfx(b"a"), KEYSPACE_END.to_vec())
    );

    reply.send_response(RpcResponse::new(kvrpcpb::RawScanResponse {
        region_error: Some(errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![
                    region(1, mce(BEFORE_PREFIX), mce(INSIDE_LEFT)),
                    region(2, mce(KEYSPACE_END), Vec::new()),
                ],
            }),
            ..Default::default()
        }),
        kvs: vec![kvrpcpb::KvPair {
            key: pfx(b"b"),
            ..Default::default()
        }],
    }));
    let resp = fut.await.unwrap();
    let CommandResponse::RawScan(r) = resp.resp else {
        panic!("not a raw scan response")
    };
    assert_eq!(r.kvs[0].key, b"b");
    assert_eq!(
        r.region_error
            .unwrap()
            .epoch_not_match
            .unwrap()
            .current_regions,
        vec![region(1, Vec::new(), vec![100])]
    );
}

#[tokio::test(start_paused = true)]
async fn layer_v1_passes_keys_through_without_copying() {
    let (mut svc, mut handle) = layer_pair(Codec::v1(Mode::Raw));
    let req = RpcRequest::new(kvrpcpb::RawGetRequest {
        key: b"key".to_vec(),
        ..Default::default()
    });
    let ptr = req.cmd.raw_get().unwrap().key.as_ptr();
    let fut = svc.ready().await.unwrap().call(req);
    let (sent, reply) = handle.next_request().await.unwrap();
    let key = &sent.cmd.raw_get().unwrap().key;
    assert_eq!(key, b"key");
    assert_eq!(key.as_ptr(), ptr, "the V1 path must not copy keys");
    assert_eq!(sent.context.api_version(), kvrpcpb::ApiVersion::V1);
    assert_eq!(
        sent.context.keyspace,
        Some(CtxKeyspace::KeyspaceId(NULLSPACE_ID))
    );

    // Raw V1 responses are not touched, whatever they hold.
    reply.send_response(RpcResponse::new(kvrpcpb::RawGetResponse {
        region_error: Some(errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![region(1, b"raw".to_vec(), Vec::new())],
            }),
            ..Default::default()
        }),
        value: b"v".to_vec(),
        ..Default::default()
    }));
    let CommandResponse::RawGet(r) = fut.await.unwrap().resp else {
        panic!("not a raw get response")
    };
    assert_eq!(r.value, b"v");
    assert_eq!(
        r.region_error
            .unwrap()
            .epoch_not_match
            .unwrap()
            .current_regions[0]
            .start_key,
        b"raw"
    );
}

#[tokio::test(start_paused = true)]
async fn layer_v1_txn_decodes_region_errors() {
    let (mut svc, mut handle) = layer_pair(Codec::v1(Mode::Txn));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(RpcRequest::new(kvrpcpb::GetRequest::default()));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(RpcResponse::new(kvrpcpb::GetResponse {
        region_error: Some(errorpb::Error {
            epoch_not_match: Some(errorpb::EpochNotMatch {
                current_regions: vec![region(1, mce(b"a"), Vec::new())],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let resp = fut.await.unwrap();
    assert_eq!(
        resp.region_error()
            .unwrap()
            .epoch_not_match
            .as_ref()
            .unwrap()
            .current_regions,
        vec![region(1, b"a".to_vec(), Vec::new())]
    );
}

#[tokio::test(start_paused = true)]
async fn layer_fails_the_attempt_on_decode_errors() {
    let (mut svc, mut handle) = layer_pair(Codec::V2(v2()));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(RpcRequest::new(kvrpcpb::GetRequest::default()));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(RpcResponse::new(kvrpcpb::GetResponse {
        error: Some(lock_not_found(b"not-in-keyspace")),
        ..Default::default()
    }));
    let err = fut.await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
}

#[tokio::test(start_paused = true)]
async fn layer_passes_transport_errors_through() {
    let (mut svc, mut handle) = layer_pair(Codec::V2(v2()));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(RpcRequest::new(kvrpcpb::GetRequest::default()));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(Error::new(ErrorDetail::Canceled));
    let err = fut.await.unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::Canceled));
}

#[tokio::test(start_paused = true)]
async fn layer_readiness_is_the_inner_services() {
    let (mut svc, mut handle) = layer_pair(Codec::v1(Mode::Txn));
    handle.allow(0);
    let mut ready = tokio_test::task::spawn(svc.ready());
    tokio_test::assert_pending!(ready.poll());
    handle.allow(1);
    tokio_test::assert_ready_ok!(ready.poll());
}

#[tokio::test(start_paused = true)]
async fn layer_decodes_coprocessor_streams_item_by_item() {
    let (mut svc, mut handle) = layer_pair(Codec::V2(v2()));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(RpcRequest::new(Command::CopStream(
            coprocessor::Request::default(),
        )));
    let (_, reply) = handle.next_request().await.unwrap();
    let items: Vec<Result<coprocessor::Response, Error>> = vec![
        Ok(coprocessor::Response {
            range: Some(coprocessor::KeyRange {
                start: pfx(b"a"),
                end: pfx(b"b"),
            }),
            ..Default::default()
        }),
        Ok(coprocessor::Response {
            locked: Some(kvrpcpb::LockInfo {
                key: b"outside".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    ];
    reply.send_response(RpcResponse::new(CommandResponse::CopStream(
        ResponseStream::new(futures::stream::iter(items)),
    )));
    let CommandResponse::CopStream(stream) = fut.await.unwrap().resp else {
        panic!("not a stream")
    };
    let got: Vec<_> = stream.collect().await;
    let first = got[0].as_ref().unwrap().range.clone().unwrap();
    assert_eq!((first.start, first.end), (b"a".to_vec(), b"b".to_vec()));
    assert!(
        got[1].is_err(),
        "a lock outside the keyspace fails its item"
    );
}

#[test]
fn futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<ResponseFuture<<MockSvc as Service<RpcRequest>>::Future>>();
    assert_send_static::<ApiCodec<MockSvc>>();
    assert_send_static::<Codec>();
}
