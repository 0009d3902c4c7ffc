//! Ports of client-go's `internal/unionstore` tests (memdb, ART, union store, pipelined memdb)
//! plus property tests against a `BTreeMap` model.
//!
//! client-go runs most memdb tests twice (red-black tree and ART); there is one implementation
//! here, so each runs once. IDs refer to `shared/parity/tests.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tikv_layers::Error;
use tikv_layers::error::ErrorDetail;

use super::test_rng::Rng;
use super::*;

fn be(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

fn derive_and_fill(db: &mut MemDb, start: u32, end: u32, value_base: u32) -> usize {
    let h = db.staging();
    for i in start..end {
        db.set(&be(i), &be(i + value_base)).unwrap();
    }
    h
}

fn fill_db(db: &mut MemDb, cnt: u32) {
    let h = derive_and_fill(db, 0, cnt, 0);
    db.release(h);
}

fn pairs<I: KvIterator>(mut it: I) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next().unwrap();
    }
    out
}

fn is_not_exist(e: &Error) -> bool {
    matches!(e.detail(), ErrorDetail::NotExist)
}

// client-go: T-MEMDB-002 TestGetSet
#[test]
fn get_set() {
    let mut db = MemDb::new();
    fill_db(&mut db, 10_000);
    for i in 0..10_000 {
        assert_eq!(db.get(&be(i)), Some(&be(i)[..]));
    }
}

// client-go: T-MEMDB-003 TestIterator
#[test]
fn iterator() {
    let mut db = MemDb::new();
    let cnt = 10_000u32;
    fill_db(&mut db, cnt);
    let fwd = pairs(db.iter(&[], &[]));
    assert_eq!(fwd.len(), cnt as usize);
    for (i, (k, v)) in fwd.iter().enumerate() {
        assert_eq!(k, &be(i as u32));
        assert_eq!(v, &be(i as u32));
    }
    let rev = pairs(db.iter_reverse(&[], &[]));
    assert_eq!(rev.len(), cnt as usize);
    for (i, (k, v)) in rev.iter().enumerate() {
        assert_eq!(k, &be(cnt - 1 - i as u32));
        assert_eq!(v, &be(cnt - 1 - i as u32));
    }
    let bound = 400u32;
    let upto = pairs(db.iter(&[], &be(bound)));
    assert_eq!(upto.len(), bound as usize);
    assert_eq!(upto.last().unwrap().0, be(bound - 1));
    let down = pairs(db.iter_reverse(&[], &be(bound)));
    assert_eq!(down.len(), (cnt - bound) as usize);
    assert_eq!(down.first().unwrap().0, be(cnt - 1));
    assert_eq!(down.last().unwrap().0, be(bound));
}

// client-go: T-MEMDB-004 TestDiscard
#[test]
fn discard() {
    let mut db = MemDb::new();
    let cnt = 10_000u32;
    let base = derive_and_fill(&mut db, 0, cnt, 0);
    let sz = db.size();
    let h = derive_and_fill(&mut db, 0, cnt, 1);
    db.cleanup(h);
    assert_eq!(db.len(), cnt as usize);
    assert_eq!(db.size(), sz);
    for i in 0..cnt {
        assert_eq!(db.get(&be(i)), Some(&be(i)[..]));
    }
    let fwd = pairs(db.iter(&[], &[]));
    assert_eq!(fwd.len(), cnt as usize);
    assert!(
        fwd.iter()
            .enumerate()
            .all(|(i, (k, v))| k == &be(i as u32) && v == &be(i as u32))
    );
    let rev = pairs(db.iter_reverse(&[], &[]));
    assert_eq!(rev.len(), cnt as usize);
    assert_eq!(rev[0].0, be(cnt - 1));
    db.cleanup(base);
    for i in 0..cnt {
        assert!(db.get(&be(i)).is_none());
    }
    assert!(!db.iter(&[], &[]).valid());
}

// client-go: T-MEMDB-005 TestFlushOverwrite
#[test]
fn flush_overwrite() {
    let mut db = MemDb::new();
    let cnt = 10_000u32;
    let h = derive_and_fill(&mut db, 0, cnt, 0);
    db.release(h);
    let sz = db.size();
    let h = derive_and_fill(&mut db, 0, cnt, 1);
    db.release(h);
    assert_eq!(db.len(), cnt as usize);
    assert_eq!(db.size(), sz);
    for i in 0..cnt {
        assert_eq!(db.get(&be(i)), Some(&be(i + 1)[..]));
    }
    let fwd = pairs(db.iter(&[], &[]));
    assert_eq!(fwd.len(), cnt as usize);
    assert!(
        fwd.iter()
            .enumerate()
            .all(|(i, (k, v))| k == &be(i as u32) && v == &be(i as u32 + 1))
    );
    let rev = pairs(db.iter_reverse(&[], &[]));
    assert_eq!(rev.len(), cnt as usize);
    assert!(rev.iter().enumerate().all(|(i, (k, v))| {
        let j = cnt - 1 - i as u32;
        k == &be(j) && v == &be(j + 1)
    }));
}

// client-go: T-MEMDB-006 TestComplexUpdate
#[test]
fn complex_update() {
    let (keep, overwrite, insert) = (3000u32, 6000u32, 9000u32);
    let mut db = MemDb::new();
    let h = derive_and_fill(&mut db, 0, overwrite, 0);
    db.release(h);
    assert_eq!(db.len(), overwrite as usize);
    let h = derive_and_fill(&mut db, keep, insert, 1);
    db.release(h);
    assert_eq!(db.len(), insert as usize);
    for i in 0..insert {
        let want = if i >= keep { be(i + 1) } else { be(i) };
        assert_eq!(db.get(&be(i)), Some(&want[..]));
    }
}

// client-go: T-MEMDB-007 TestNestedSandbox
#[test]
fn nested_sandbox() {
    let mut db = MemDb::new();
    let h0 = derive_and_fill(&mut db, 0, 200, 0);
    let h1 = derive_and_fill(&mut db, 0, 100, 1);
    let h2 = derive_and_fill(&mut db, 50, 150, 2);
    let h3 = derive_and_fill(&mut db, 100, 120, 3);
    let h4 = derive_and_fill(&mut db, 0, 150, 4);
    db.cleanup(h4);
    db.release(h3);
    db.cleanup(h2);
    db.release(h1);
    db.release(h0);
    let want = |i: u32| if i < 100 { be(i + 1) } else { be(i) };
    for i in 0..200 {
        assert_eq!(db.get(&be(i)), Some(&want(i)[..]));
    }
    let fwd = pairs(db.iter(&[], &[]));
    assert_eq!(fwd.len(), 200);
    assert!(
        fwd.iter()
            .enumerate()
            .all(|(i, (k, v))| k == &be(i as u32) && v == &want(i as u32))
    );
    let rev = pairs(db.iter_reverse(&[], &[]));
    assert_eq!(rev.len(), 200);
    assert!(rev.iter().enumerate().all(|(i, (k, v))| {
        let j = 199 - i as u32;
        k == &be(j) && v == &want(j)
    }));
}

// client-go: T-MEMDB-008 TestOverwrite
#[test]
fn overwrite() {
    let mut db = MemDb::new();
    let cnt = 10_000u32;
    fill_db(&mut db, cnt);
    let sz = db.size();
    for i in (0..cnt).step_by(3) {
        db.set(&be(i), &be(i * 10)).unwrap();
    }
    assert_eq!(db.len(), cnt as usize);
    assert_eq!(db.size(), sz);
    let want = |i: u32| {
        if i.is_multiple_of(3) {
            be(i * 10)
        } else {
            be(i)
        }
    };
    for i in 0..cnt {
        assert_eq!(db.get(&be(i)), Some(&want(i)[..]));
    }
    let fwd = pairs(db.iter(&[], &[]));
    assert_eq!(fwd.len(), cnt as usize);
    assert!(
        fwd.iter()
            .enumerate()
            .all(|(i, (k, v))| k == &be(i as u32) && v == &want(i as u32))
    );
    let rev = pairs(db.iter_reverse(&[], &[]));
    assert_eq!(rev.len(), cnt as usize);
    assert!(
        rev.iter()
            .enumerate()
            .all(|(i, (_, v))| v == &want(cnt - 1 - i as u32))
    );
}

// client-go: T-MEMDB-009 TestReset
#[test]
fn reset() {
    let mut db = MemDb::new();
    fill_db(&mut db, 1000);
    db.reset();
    assert!(db.get(&[0, 0, 0, 0]).is_none());
    assert!(db.get_flags(&[0, 0, 0, 0]).is_none());
    assert!(!db.iter(&[], &[]).valid());
}

// client-go: T-MEMDB-010 TestInspectStage
#[test]
fn inspect_stage() {
    let mut db = MemDb::new();
    let h1 = derive_and_fill(&mut db, 0, 1000, 0);
    let h2 = derive_and_fill(&mut db, 500, 1000, 1);
    for i in 500..1500u32 {
        // 5-byte values: not updated in place.
        let mut v = [0u8; 5];
        v[..4].copy_from_slice(&be(i + 2));
        db.set(&be(i), &v).unwrap();
    }
    let h3 = derive_and_fill(&mut db, 1000, 2000, 3);
    let k_v = |k: &[u8], v: &[u8]| {
        (
            u32::from_be_bytes(k.try_into().unwrap()) as i64,
            u32::from_be_bytes(v[..4].try_into().unwrap()) as i64,
        )
    };
    let mut n = 0;
    db.inspect_stage(h3, |k, _, v| {
        let (k, v) = k_v(k, v);
        assert!((1000..2000).contains(&k));
        assert_eq!(v - k, 3);
        n += 1;
    });
    assert_eq!(n, 1000);
    let mut n = 0;
    db.inspect_stage(h2, |k, _, v| {
        let (k, v) = k_v(k, v);
        assert!((500..2000).contains(&k));
        assert_eq!(v - k, if k < 1000 { 2 } else { 3 });
        n += 1;
    });
    assert_eq!(n, 1500);
    db.cleanup(h3);
    db.release(h2);
    let mut n = 0;
    db.inspect_stage(h1, |k, _, v| {
        let (k, v) = k_v(k, v);
        assert!((0..1500).contains(&k));
        assert_eq!(v - k, if k < 500 { 0 } else { 2 });
        n += 1;
    });
    assert_eq!(n, 1500);
    db.release(h1);
}

// client-go: T-MEMDB-011 TestDirty
#[test]
fn dirty() {
    let mut db = MemDb::new();
    db.set(&[1], &[1]).unwrap();
    assert!(db.dirty());

    let mut db = MemDb::new();
    let h = db.staging();
    db.set(&[1], &[1]).unwrap();
    db.cleanup(h);
    assert!(!db.dirty());
    let h = db.staging();
    db.set(&[1], &[1]).unwrap();
    db.release(h);
    assert!(db.dirty());

    // Persistent flags make it dirty.
    let mut db = MemDb::new();
    let h = db.staging();
    db.set_with_flags(&[1], &[1], &[FlagsOp::SetKeyLocked])
        .unwrap();
    db.cleanup(h);
    assert!(db.dirty());

    // Non-persistent flags do not.
    let mut db = MemDb::new();
    let h = db.staging();
    db.set_with_flags(&[1], &[1], &[FlagsOp::SetPresumeKeyNotExists])
        .unwrap();
    db.cleanup(h);
    assert!(!db.dirty());
}

fn check_flags(reverse: bool) {
    let mut db = MemDb::new();
    let cnt = 10_000u32;
    let h = db.staging();
    for i in 0..cnt {
        let ops: &[FlagsOp] = if i % 2 == 0 {
            &[FlagsOp::SetPresumeKeyNotExists, FlagsOp::SetKeyLocked]
        } else {
            &[FlagsOp::SetPresumeKeyNotExists]
        };
        db.set_with_flags(&be(i), &be(i), ops).unwrap();
    }
    db.cleanup(h);
    for i in 0..cnt {
        assert!(db.get(&be(i)).is_none());
        let flags = db.get_flags(&be(i));
        if i % 2 == 0 {
            let f = flags.unwrap();
            assert!(f.has_locked());
            assert!(!f.has_presume_key_not_exists());
        } else {
            assert!(flags.is_none());
        }
    }
    assert_eq!(db.len(), 5000);
    assert_eq!(db.size(), 20000);
    assert!(!db.iter(&[], &[]).valid());
    let mut it = if reverse {
        db.iter_reverse_with_flags(&[])
    } else {
        db.iter_with_flags(&[], &[])
    };
    let mut seen = 0;
    while it.valid() {
        let k = u32::from_be_bytes(it.key().try_into().unwrap());
        assert_eq!(k % 2, 0);
        assert!(!it.has_value());
        seen += 1;
        it.next().unwrap();
    }
    assert_eq!(seen, 5000);
    for i in 0..cnt {
        db.update_flags(&be(i), &[FlagsOp::DelKeyLocked]);
    }
    for i in 0..cnt {
        assert!(db.get(&be(i)).is_none());
        // UpdateFlags creates missing keys.
        let f = db.get_flags(&be(i)).unwrap();
        assert!(!f.has_locked());
    }
}

// client-go: T-MEMDB-012 TestFlags
#[test]
fn flags_forward() {
    check_flags(false);
}

// client-go: T-MEMDB-012 TestFlags
#[test]
fn flags_reverse() {
    check_flags(true);
}

fn encode_int(n: u32) -> Vec<u8> {
    format!("{n:010}").into_bytes()
}

fn insert_data(db: &mut MemDb) {
    for i in 0..2 {
        let v = encode_int(i * 2);
        db.set(&v, &v).unwrap();
    }
}

// client-go: T-MEMDB-013 TestKVGetSet
#[test]
fn kv_get_set() {
    let mut db = MemDb::new();
    insert_data(&mut db);
    for i in 0..2 {
        let s = encode_int(i * 2);
        assert_eq!(db.get(&s), Some(&s[..]));
    }
}

// client-go: T-MEMDB-014 TestNewIterator
#[test]
fn new_iterator() {
    let mut db = MemDb::new();
    assert!(!db.iter(&[], &[]).valid());
    insert_data(&mut db);
    for i in 0..2 {
        let v = encode_int(i * 2);
        let it = db.iter(&v, &[]);
        assert_eq!(it.key(), &v[..]);
        assert_eq!(it.value(), &v[..]);
    }
    let v = encode_int(0);
    let mut it = db.iter(&v, &[]);
    assert_eq!(it.key(), &v[..]);
    it.next().unwrap();
    assert!(it.valid());
    assert_eq!(it.key(), &encode_int(2)[..]);
    assert_eq!(it.value(), &encode_int(2)[..]);
    assert!(!db.iter(&encode_int(4), &[]).valid());
    let in_between = encode_int(1);
    let it = db.iter(&in_between, &[]);
    assert!(it.valid());
    assert_eq!(it.key(), &encode_int(2)[..]);
}

// client-go: T-MEMDB-015 TestIterNextUntil
#[test]
fn iter_next_until() {
    let mut db = MemDb::new();
    insert_data(&mut db);
    let mut it = db.iter(&[], &[]);
    while it.valid() {
        it.next().unwrap();
    }
    assert!(!it.valid());
}

// client-go: T-MEMDB-016 TestBasicNewIterator
#[test]
fn basic_new_iterator() {
    let db = MemDb::new();
    assert!(!db.iter(b"2", &[]).valid());
}

// client-go: T-MEMDB-017 TestNewIteratorMin
#[test]
fn new_iterator_min() {
    let kvs = [
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000001",
            "lock-version",
        ),
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000001_0002",
            "1",
        ),
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000001_0003",
            "hello",
        ),
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000002",
            "lock-version",
        ),
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000002_0002",
            "2",
        ),
        (
            "DATA_test_main_db_tbl_tbl_test_record__00000000000000000002_0003",
            "hello",
        ),
    ];
    let mut db = MemDb::new();
    for (k, v) in kvs {
        db.set(k.as_bytes(), v.as_bytes()).unwrap();
    }
    assert_eq!(pairs(db.iter(&[], &[])).len(), 6);
    let it = db.iter(
        b"DATA_test_main_db_tbl_tbl_test_record__00000000000000000000",
        &[],
    );
    assert_eq!(it.key(), kvs[0].0.as_bytes());
}

// client-go: T-MEMDB-018 TestMemDBStaging
#[test]
fn memdb_staging() {
    let mut db = MemDb::new();
    db.set(b"x", &[0; 2]).unwrap();
    let h1 = db.staging();
    db.set(b"x", &[0; 3]).unwrap();
    let h2 = db.staging();
    db.set(b"yz", &[0; 1]).unwrap();
    assert_eq!(db.get(b"x").unwrap().len(), 3);
    db.release(h2);
    assert_eq!(db.get(b"yz").unwrap().len(), 1);
    db.cleanup(h1);
    assert_eq!(db.get(b"x").unwrap().len(), 2);
}

// client-go: T-MEMDB-019 TestMemDBMultiLevelStaging
#[test]
fn memdb_multi_level_staging() {
    let mut db = MemDb::new();
    let key = [0u8];
    for i in 0..100usize {
        assert_eq!(i + 1, db.staging());
        db.set(&key, &[i as u8]).unwrap();
        assert_eq!(db.get(&key), Some(&[i as u8][..]));
    }
    for i in (0..100usize).rev() {
        let expect = if i % 2 == 1 {
            db.cleanup(i + 1);
            i - 1
        } else {
            db.release(i + 1);
            i
        };
        assert_eq!(db.get(&key), Some(&[expect as u8][..]));
    }
}

// client-go: T-MEMDB-020 TestInvalidStagingHandle
#[test]
fn invalid_staging_handle() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let mut db = MemDb::new();
    let h1 = db.staging();
    assert!(h1 > 0);
    let h2 = db.staging();
    assert!(h2 > 0);
    assert!(catch_unwind(AssertUnwindSafe(|| db.release(h2 + 1))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| db.release(h2 - 1))).is_err());
    db.release(0);
    db.release(h2);
    db.release(0);
    db.release(h1);
    db.release(0);

    let h1 = db.staging();
    assert!(h1 > 0);
    let h2 = db.staging();
    assert!(h2 > 0);
    db.cleanup(h2 + 1); // no-op
    assert!(catch_unwind(AssertUnwindSafe(|| db.cleanup(h2 - 1))).is_err());
    db.cleanup(0);
    db.cleanup(h2);
    db.cleanup(0);
    db.cleanup(h1);
    db.cleanup(0);
}

// client-go: T-MEMDB-020 TestInvalidStagingHandle (release of a non-latest handle panics)
#[test]
#[should_panic(expected = "cannot release staging buffer")]
fn release_non_latest_handle_panics() {
    let mut db = MemDb::new();
    let h1 = db.staging();
    let _h2 = db.staging();
    db.release(h1);
}

// client-go: T-MEMDB-020 TestInvalidStagingHandle (cleanup below the latest handle panics)
#[test]
#[should_panic(expected = "cannot cleanup staging buffer")]
fn cleanup_below_latest_handle_panics() {
    let mut db = MemDb::new();
    let h1 = db.staging();
    let _h2 = db.staging();
    db.cleanup(h1);
}

// client-go: T-MEMDB-021 TestMemDBCheckpoint
#[test]
fn memdb_checkpoint() {
    let mut db = MemDb::new();
    let cp1 = db.checkpoint();
    db.set(b"x", b"x").unwrap();
    let cp2 = db.checkpoint();
    db.set(b"y", b"y").unwrap();
    let h = db.staging();
    db.set(b"z", b"z").unwrap();
    db.release(h);
    for k in [b"x", b"y", b"z"] {
        assert_eq!(db.get(k), Some(&k[..]));
    }
    db.revert_to_checkpoint(&cp2);
    assert_eq!(db.get(b"x"), Some(&b"x"[..]));
    assert!(db.get(b"y").is_none());
    assert!(db.get(b"z").is_none());
    db.revert_to_checkpoint(&cp1);
    assert!(db.get(b"x").is_none());
}

// client-go: T-MEMDB-022 TestBufferLimit
#[test]
fn buffer_limit() {
    let mut db = MemDb::new();
    db.set_entry_size_limit(500, 1000);
    let e = db.set(b"x", &[0; 500]).unwrap_err();
    assert!(matches!(
        e.detail(),
        ErrorDetail::EntryTooLarge {
            limit: 500,
            size: 501
        }
    ));
    db.set(b"x", &[0; 499]).unwrap();
    // client-go's comment calls this the buffer limit; with 2 + 499 bytes it is the entry limit.
    assert!(db.set(b"yz", &[0; 499]).is_err());
    db.delete(&[0; 499]).unwrap();
    // Entry 500 is within the entry limit; the buffer limit trips (applied, then reported).
    let e = db.delete(&[0; 500]).unwrap_err();
    assert!(
        matches!(e.detail(), ErrorDetail::TxnTooLarge { .. }),
        "{e:?}"
    );
}

/// Spec M10: a write that pushes the buffer over its limit is applied, then reported.
#[test]
fn buffer_limit_error_leaves_write_applied() {
    let mut db = MemDb::new();
    db.set_entry_size_limit(500, 1000);
    db.set(b"x", &[0; 499]).unwrap();
    db.set(b"y", &[0; 499]).unwrap();
    let e = db.set(b"z", &[0; 10]).unwrap_err();
    assert!(
        matches!(e.detail(), ErrorDetail::TxnTooLarge { size: 1011 }),
        "{e:?}"
    );
    assert_eq!(db.get(b"z").map(<[u8]>::len), Some(10));
    // Flag-only updates never trip it.
    db.update_flags(b"w", &[FlagsOp::SetKeyLocked]);
    assert!(db.get_flags(b"w").unwrap().has_locked());
}

// client-go: T-MEMDB-023 TestUnsetTemporaryFlag
#[test]
fn unset_temporary_flag() {
    let mut db = MemDb::new();
    db.set_with_flags(&[1], &[2], &[FlagsOp::SetNeedConstraintCheckInPrewrite])
        .unwrap();
    db.set(&[1], &[2]).unwrap();
    assert!(
        !db.get_flags(&[1])
            .unwrap()
            .has_need_constraint_check_in_prewrite()
    );
}

// client-go: T-MEMDB-024 TestSnapshotGetIter
#[test]
fn snapshot_get_iter() {
    let mut db = MemDb::new();
    let mut getters = Vec::new();
    let mut iters = Vec::new();
    let mut reverse_iters = Vec::new();
    for i in 0..100u32 {
        db.set(&[0], &[i as u8]).unwrap();
        db.set(&[1], &[i as u8]).unwrap();
        let expect = [i.min(50) as u8];
        let getter = db.snapshot_getter();
        assert_eq!(getter.get(&db, &[0]).unwrap(), Some(&expect[..]));
        getters.push(getter);
        let it = db.snapshot_iter(&[], &[]);
        assert_eq!(it.key(), &[0]);
        assert_eq!(it.value(&db), &expect);
        iters.push(db.snapshot_iter(&[], &[]));
        let it = db.snapshot_iter_reverse(&[], &[]);
        assert_eq!(it.key(), &[1]);
        assert_eq!(it.value(&db), &expect);
        reverse_iters.push(db.snapshot_iter_reverse(&[], &[]));
        // Writes after the staging are not visible to snapshot reads.
        if i == 50 {
            db.staging();
        }
    }
    for g in &getters {
        assert_eq!(g.get(&db, &[0]).unwrap(), Some(&[50u8][..]));
    }
    for it in &iters {
        assert_eq!(it.key(), &[0]);
        assert_eq!(it.value(&db), &[50]);
    }
    for it in &reverse_iters {
        assert_eq!(it.key(), &[1]);
        assert_eq!(it.value(&db), &[50]);
    }

    db.reset();
    db.update_flags(&[255], &[FlagsOp::SetPresumeKeyNotExists]);
    for i in 1..50u8 {
        db.set(&[2 * i], &[2 * i]).unwrap();
    }
    let h = db.staging();
    for i in 0..100u8 {
        db.set(&[i], &[2 * i]).unwrap();
    }
    let g = db.snapshot_getter();
    assert_eq!(g.get(&db, &[2]).unwrap(), Some(&[2u8][..]));
    assert!(g.get(&db, &[1]).unwrap().is_none());
    assert!(g.get(&db, &[254]).unwrap().is_none());
    assert!(g.get(&db, &[255]).unwrap().is_none());
    let mut it = db.snapshot_iter(&[], &[]);
    for i in 1..50u8 {
        assert!(it.valid());
        assert_eq!(it.key(), &[2 * i]);
        assert_eq!(it.value(&db), &[2 * i]);
        it.next(&db).unwrap();
    }
    let mut it = db.snapshot_iter_reverse(&[], &[]);
    for i in (1..50u8).rev() {
        assert!(it.valid());
        assert_eq!(it.key(), &[2 * i]);
        assert_eq!(it.value(&db), &[2 * i]);
        it.next(&db).unwrap();
    }
    assert!(!it.valid());
    db.release(h);
}

// client-go: T-MEMDB-025 TestCleanupKeepPersistentFlag
#[test]
fn cleanup_keep_persistent_flag() {
    let mut db = MemDb::new();
    let h = db.staging();
    db.set_with_flags(&[1], &[1], &[FlagsOp::SetKeyLocked])
        .unwrap();
    db.set_with_flags(&[2], &[2], &[FlagsOp::SetPresumeKeyNotExists])
        .unwrap();
    db.set_with_flags(
        &[3],
        &[3],
        &[FlagsOp::SetKeyLocked, FlagsOp::SetPresumeKeyNotExists],
    )
    .unwrap();
    db.cleanup(h);
    for k in [[1u8], [2], [3]] {
        assert!(db.get(&k).is_none());
    }
    assert!(db.get_flags(&[1]).unwrap().has_locked());
    assert!(db.get_flags(&[2]).is_none());
    let f = db.get_flags(&[3]).unwrap();
    assert!(f.has_locked());
    assert!(!f.has_presume_key_not_exists());
}

// client-go: T-MEMDB-026 TestIterNoResult
#[test]
fn iter_no_result() {
    let mut db = MemDb::new();
    db.set(&[1, 1], &[1, 1]).unwrap();
    let check = |lower: &[u8], upper: &[u8]| {
        assert!(!db.iter(lower, upper).valid());
        assert!(!db.iter_reverse(upper, lower).valid());
    };
    check(&[1, 1], &[1, 1]);
    check(&[1, 0, 0], &[1, 0, 1]);
    check(&[1, 0, 1], &[1, 0, 0]);
}

// client-go: T-MEMDB-027 TestMemBufferCache
#[test]
fn mem_buffer_cache() {
    let mut db = MemDb::new();
    fn check(db: &mut MemDb, hit: bool, f: impl FnOnce(&mut MemDb)) {
        let (h0, m0) = (db.cache_hit_count(), db.cache_miss_count());
        f(db);
        let (h, m) = (db.cache_hit_count() - h0, db.cache_miss_count() - m0);
        assert_eq!((h, m), if hit { (1, 0) } else { (0, 1) });
    }
    check(&mut db, false, |db| db.set(&[1], &[0]).unwrap());
    check(&mut db, true, |db| db.set(&[1], &[1]).unwrap());
    check(&mut db, false, |db| db.set(&[2], &[2]).unwrap());
    check(&mut db, true, |db| {
        assert_eq!(db.get(&[2]), Some(&[2u8][..]))
    });
    check(&mut db, false, |db| {
        assert_eq!(db.get(&[1]), Some(&[1u8][..]))
    });
    check(&mut db, true, |db| {
        assert_eq!(db.get(&[1]), Some(&[1u8][..]))
    });
    check(&mut db, false, |db| {
        assert_eq!(db.get(&[2]), Some(&[2u8][..]))
    });
    check(&mut db, true, |db| db.set(&[2], &[2, 2]).unwrap());
    check(&mut db, true, |db| {
        assert_eq!(db.get(&[2]), Some(&[2u8, 2][..]))
    });
}

// client-go: T-MEMDB-028 TestMemDBLeafFragmentation
#[test]
fn memdb_leaf_fragmentation() {
    let mut db = MemDb::new();
    let mut h = db.staging();
    let mut mem = db.mem();
    for _ in 0..10 {
        for k in 0..100 {
            db.set(k.to_string().repeat(256).as_bytes(), b"value")
                .unwrap();
        }
        let cur = db.mem();
        if mem == 0 {
            mem = cur;
        } else {
            assert!(cur <= mem, "{cur} > {mem}");
        }
        db.cleanup(h);
        h = db.staging();
    }
}

// client-go: T-MEMDB-029 TestReadOnlyZeroMem
#[test]
fn read_only_zero_mem() {
    assert_eq!(MemDb::new().mem(), 0);
}

// client-go: T-MEMDB-030 TestKeyValueOversize
#[test]
fn key_value_oversize() {
    let mut db = MemDb::new();
    let key = vec![0u8; MAX_KEY_LEN];
    let over = vec![0u8; MAX_KEY_LEN + 1];
    db.set(&key, &over).unwrap();
    let e = db.set(&over, &key).unwrap_err();
    assert!(
        matches!(e.detail(), ErrorDetail::KeyTooLarge { size } if *size == (MAX_KEY_LEN + 1) as u64)
    );
}

// client-go: T-MEMDB-031 TestSetMemoryFootprintChangeHook
#[test]
fn set_memory_footprint_change_hook() {
    let mut db = MemDb::new();
    let consumed = Arc::new(AtomicU64::new(0));
    assert!(!db.mem_hook_set());
    let c = consumed.clone();
    db.set_memory_footprint_change_hook(move |m| c.store(m, Ordering::SeqCst));
    assert!(db.mem_hook_set());
    assert_eq!(consumed.load(Ordering::SeqCst), 0);
    db.set(&[1], &[1]).unwrap();
    assert_ne!(consumed.load(Ordering::SeqCst), 0);
}

// client-go: T-MEMDB-032 TestSelectValueHistory
#[test]
fn select_value_history() {
    let mut db = MemDb::new();
    db.set(&[1], &[1]).unwrap();
    let h = db.staging();
    db.set(&[1], &[1, 1]).unwrap();
    assert_eq!(
        db.select_value_history(&[1], |v| v == [1]).unwrap(),
        Some(&[1u8][..])
    );
    assert_eq!(
        db.select_value_history(&[1], |v| v == [1, 1]).unwrap(),
        Some(&[1u8, 1][..])
    );
    assert_eq!(
        db.select_value_history(&[1], |v| v == [1, 1, 1]).unwrap(),
        None
    );
    assert!(is_not_exist(
        &db.select_value_history(&[2], |_| false).unwrap_err()
    ));
    db.cleanup(h);
    assert_eq!(
        db.select_value_history(&[1], |v| v == [1]).unwrap(),
        Some(&[1u8][..])
    );
    assert_eq!(
        db.select_value_history(&[1], |v| v == [1, 1]).unwrap(),
        None
    );
}

// client-go: T-MEMDB-033 TestSnapshotReaderWithWrite
#[test]
fn snapshot_reader_with_write() {
    for num in [4u8, 16, 48] {
        let mut db = MemDb::new();
        for i in 0..num {
            db.set(&[0, i], &[0, i]).unwrap();
        }
        let h = db.staging();
        let mut it = db.snapshot_iter(&[0, 0], &[0, 255]);
        assert_eq!(it.key(), &[0, 0]);
        db.set(&[0, num], &[0, num]).unwrap();
        for i in 0..num {
            db.set(&[1, i], &[1, i]).unwrap();
        }
        for i in 0..num {
            assert!(it.valid());
            assert_eq!(it.key(), &[0, i]);
            it.next(&db).unwrap();
        }
        assert!(!it.valid());
        db.release(h);
    }
}

// client-go: T-MEMDB-034 TestBatchedSnapshotIter
#[test]
fn batched_snapshot_iter() {
    for (num, reverse) in [
        (3u8, false),
        (17, false),
        (64, false),
        (3, true),
        (17, true),
        (64, true),
    ] {
        let mut db = MemDb::new();
        for i in 0..num {
            db.set(&[0, i], &[0, i]).unwrap();
        }
        let h = db.staging();
        let snap = db.get_snapshot();
        let mut it = snap.batched_iter(&db, &[0, 0], &[0, 255], reverse);
        assert!(it.valid(&db));
        assert_eq!(it.key(), &[0, if reverse { num - 1 } else { 0 }]);
        db.set(&[0, num], &[0, num]).unwrap();
        for i in 0..num {
            db.set(&[1, i], &[1, i]).unwrap();
        }
        let order: Vec<u8> = if reverse {
            (0..num).rev().collect()
        } else {
            (0..num).collect()
        };
        for i in order {
            assert!(it.valid(&db));
            assert_eq!(it.key(), &[0, i]);
            assert_eq!(it.value(), &[0, i]);
            it.next(&db).unwrap();
        }
        assert!(!it.valid(&db));
        db.release(h);
    }
}

fn batched_keys(
    db: &MemDb,
    snap: &MemDbSnapshot,
    lower: &[u8],
    upper: &[u8],
    reverse: bool,
) -> Vec<Vec<u8>> {
    let mut it = snap.batched_iter(db, lower, upper, reverse);
    let mut out = Vec::new();
    while it.valid(db) {
        out.push(it.key().to_vec());
        it.next(db).unwrap();
    }
    out
}

// client-go: T-MEMDB-035 TestBatchedSnapshotIterEdgeCase (EdgeCases)
#[test]
fn batched_snapshot_iter_edge_cases() {
    let mut db = MemDb::new();
    let h = db.staging();
    let snap = db.get_snapshot();
    assert!(!snap.batched_iter(&db, &[1], &[1], false).valid(&db));
    assert!(!snap.batched_iter(&db, &[0], &[1], false).valid(&db));
    db.set(&[1], &[1]).unwrap();
    db.release(h);
    let h = db.staging();
    let snap = db.get_snapshot();
    let mut it = snap.batched_iter(&db, &[1], &[2], false);
    assert!(it.valid(&db));
    assert_eq!(it.key(), &[1]);
    it.next(&db).unwrap();
    assert!(!it.valid(&db));
    db.set(&[2], &[2]).unwrap();
    db.set(&[3], &[3]).unwrap();
    db.set(&[4], &[4]).unwrap();
    db.release(h);
    db.staging();
    let snap = db.get_snapshot();
    assert_eq!(
        batched_keys(&db, &snap, &[2], &[4], false),
        vec![vec![2], vec![3]]
    );
    assert_eq!(
        batched_keys(&db, &snap, &[2], &[4], true),
        vec![vec![3], vec![2]]
    );
}

// client-go: T-MEMDB-035 TestBatchedSnapshotIterEdgeCase (BoundaryTests)
#[test]
fn batched_snapshot_iter_boundaries() {
    let mut db = MemDb::new();
    for k in [[1u8, 0], [1, 2], [1, 4], [1, 6], [1, 8]] {
        db.set(&k, &k).unwrap();
    }
    let h = db.staging();
    let snap = db.get_snapshot();
    let seconds = |v: Vec<Vec<u8>>| v.into_iter().map(|k| k[1]).collect::<Vec<_>>();
    assert_eq!(
        seconds(batched_keys(&db, &snap, &[1, 2], &[1, 9], false)),
        vec![2, 4, 6, 8]
    );
    assert_eq!(
        seconds(batched_keys(&db, &snap, &[1, 0], &[1, 6], false)),
        vec![0, 2, 4]
    );
    assert_eq!(
        seconds(batched_keys(&db, &snap, &[1, 0], &[1, 6], true)),
        vec![4, 2, 0]
    );
    db.release(h);
}

// client-go: T-MEMDB-035 TestBatchedSnapshotIterEdgeCase (AlphabeticalOrder)
#[test]
fn batched_snapshot_iter_alphabetical() {
    let keys: Vec<Vec<u8>> = vec![vec![2], vec![2, 1], vec![2, 1, 1], vec![2, 1, 1, 1]];
    let mut db = MemDb::new();
    for k in &keys {
        db.set(k, k).unwrap();
    }
    let h = db.staging();
    let snap = db.get_snapshot();
    assert_eq!(batched_keys(&db, &snap, &[2], &[3], false), keys);
    let mut rev = keys.clone();
    rev.reverse();
    assert_eq!(batched_keys(&db, &snap, &[2], &[3], true), rev);
    db.release(h);
}

// client-go: T-MEMDB-035 TestBatchedSnapshotIterEdgeCase (BatchSizeGrowth)
#[test]
fn batched_snapshot_iter_batch_growth() {
    let mut db = MemDb::new();
    for i in 0..100u8 {
        db.set(&[3, i], &[3, i]).unwrap();
    }
    let h = db.staging();
    let snap = db.get_snapshot();
    let fwd = batched_keys(&db, &snap, &[3, 0], &[3, 255], false);
    assert_eq!(fwd, (0..100u8).map(|i| vec![3, i]).collect::<Vec<_>>());
    let rev = batched_keys(&db, &snap, &[3, 0], &[3, 255], true);
    assert_eq!(
        rev,
        (0..100u8).rev().map(|i| vec![3, i]).collect::<Vec<_>>()
    );
    db.release(h);
}

// client-go: T-MEMDB-035 TestBatchedSnapshotIterEdgeCase (SnapshotChange)
#[test]
fn batched_snapshot_iter_snapshot_change() {
    let mut db = MemDb::new();
    db.set(&[0], &[0]).unwrap();
    let h = db.staging();
    let snap = db.get_snapshot();
    db.set(&[1], &[1]).unwrap();
    let mut it = snap.batched_iter(&db, &[0], &[255], false);
    assert!(it.valid(&db));
    it.next(&db).unwrap();
    db.release(h);
    db.staging();
    assert!(!it.valid(&db));
    assert!(it.next(&db).is_err());
    // The checked snapshot's point reads fail too.
    assert!(snap.get(&db, &[0]).is_err());
}

/// Checks `db` against a sorted model: len, size, gets, seeks and both iteration directions
/// (client-go: `checkConsist`).
fn check_consist(db: &MemDb, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(db.len(), model.len());
    assert_eq!(
        db.size(),
        model.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    );
    let fwd = pairs(db.iter(&[], &[]));
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(fwd, want);
    let mut rev = pairs(db.iter_reverse(&[], &[]));
    rev.reverse();
    assert_eq!(rev, want);
    let mut prev: Option<(&Vec<u8>, &Vec<u8>)> = None;
    for (k, v) in model {
        assert_eq!(db.get(k), Some(&v[..]));
        let it = db.iter(k, &[]);
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
        if let Some((pk, pv)) = prev {
            let it = db.iter_reverse(k, &[]);
            assert_eq!((it.key(), it.value()), (&pk[..], &pv[..]));
        }
        prev = Some((k, v));
    }
}

// client-go: T-MEMDB-036 TestRandom (the ART part: random inserts match a reference map; the
// red-black-tree half with removals does not apply — see RemoveFromBuffer)
#[test]
fn random() {
    let cnt = 50_000;
    let mut rng = Rng::new(36);
    let mut db = MemDb::new();
    let mut model = BTreeMap::new();
    for _ in 0..cnt {
        let len = rng.below(19) + 1;
        let k = rng.bytes(len);
        db.set(&k, &k).unwrap();
        model.insert(k.clone(), k);
    }
    check_consist(&db, &model);
    // Random overwrites (client-go overwrites its red-black tree; the ART part only inserts).
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for k in keys {
        if rng.float() >= 0.35 {
            let len = rng.below(19) + 1;
            let v = rng.bytes(len);
            db.set(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    check_consist(&db, &model);
}

fn random_derive_recur(
    db: &mut MemDb,
    golden: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    depth: usize,
    rng: &mut Rng,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let op = rng.float();
    let keys: Vec<Vec<u8>> = if op < 0.33 {
        let (start, end) = (rng.below(512), rng.below(512) + 512);
        (start..end)
            .map(|i| (i as u64).to_be_bytes().to_vec())
            .collect()
    } else if op < 0.66 {
        let n = rng.below(512) + 512;
        (0..n)
            .map(|_| {
                let len = rng.below(19) + 1;
                rng.bytes(len)
            })
            .collect()
    } else {
        (0..512u64).map(|i| i.to_be_bytes().to_vec()).collect()
    };
    let vals: Vec<Vec<u8>> = keys
        .iter()
        .map(|_| {
            let len = rng.below(255) + 1;
            rng.bytes(len)
        })
        .collect();
    let h = db.staging();
    let mut op_log = Vec::with_capacity(keys.len());
    for (k, v) in keys.iter().zip(&vals) {
        db.set(k, v).unwrap();
        op_log.push((k.clone(), golden.get(k).cloned()));
        golden.insert(k.clone(), v.clone());
    }
    if depth < 100 {
        op_log.extend(random_derive_recur(db, golden, depth + 1, rng));
    }
    if rng.float() < 0.3 && depth > 0 {
        db.cleanup(h);
        for (k, old) in op_log.iter().rev() {
            match old {
                None => golden.remove(k),
                Some(v) => golden.insert(k.clone(), v.clone()),
            };
        }
        op_log.clear();
    } else {
        db.release(h);
    }
    if depth.is_multiple_of(10) {
        check_consist(db, golden);
    }
    op_log
}

// client-go: T-MEMDB-037 TestRandomDerive
#[test]
fn random_derive() {
    let mut db = MemDb::new();
    let mut golden = BTreeMap::new();
    let mut rng = Rng::new(37);
    random_derive_recur(&mut db, &mut golden, 0, &mut rng);
}

// client-go: T-MEMDB-038 TestRandomAB (client-go compares its two trees; here the buffer is
// compared with a model of the same staged writes, alternately released and discarded)
#[test]
fn random_ab() {
    let cnt = 50_000;
    let mut rng = Rng::new(38);
    let mut db = MemDb::new();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut model_dirty = false;
    for i in 0..cnt {
        let h = db.staging();
        assert_eq!(h, 1);
        let len = rng.below(19) + 1;
        let k = rng.bytes(len);
        db.set(&k, &k).unwrap();
        if i % 2 == 0 {
            db.cleanup(h);
        } else {
            db.release(h);
            model.insert(k.clone(), k);
            model_dirty = true;
        }
        if i % 5000 == 0 {
            let len = rng.below(19) + 1;
            let key = rng.bytes(len);
            assert_eq!(db.dirty(), model_dirty);
            assert_eq!(db.len(), model.len());
            assert_eq!(
                db.size(),
                model.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            );
            assert_eq!(db.get(&key), model.get(&key).map(Vec::as_slice));
            let want: Vec<_> = model
                .range(key.clone()..)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(pairs(db.iter(&key, &[])), want);
            let want: Vec<_> = model
                .range(key.clone()..)
                .rev()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(pairs(db.iter_reverse(&[], &key)), want);
        }
    }
}

// ----- union store -----

/// In-memory snapshot stand-in (client-go: `mockSnapshot`): commit ts is 1000 + first key byte.
struct MockSnapshot {
    store: MemDb,
}

struct MockIter {
    items: Vec<(Vec<u8>, Vec<u8>)>,
    pos: usize,
}

impl SnapshotIterator for MockIter {
    fn valid(&self) -> bool {
        self.pos < self.items.len()
    }
    fn key(&self) -> &[u8] {
        &self.items[self.pos].0
    }
    fn value(&self) -> &[u8] {
        &self.items[self.pos].1
    }
    async fn next(&mut self) -> Result<(), Error> {
        self.pos += 1;
        Ok(())
    }
}

impl SnapshotReader for MockSnapshot {
    type Iter<'a> = MockIter;

    async fn get(&self, key: &[u8], opts: GetOptions) -> Result<Option<ValueEntry>, Error> {
        Ok(self.store.get(key).map(|v| {
            let ts = if opts.return_commit_ts {
                key.first().map_or(1, |&b| 1000 + u64::from(b))
            } else {
                0
            };
            ValueEntry::new(v, ts)
        }))
    }

    async fn iter(&self, lower: &[u8], upper: &[u8]) -> Result<MockIter, Error> {
        Ok(MockIter {
            items: pairs(self.store.iter(lower, upper)),
            pos: 0,
        })
    }

    async fn iter_reverse(&self, upper: &[u8], lower: &[u8]) -> Result<MockIter, Error> {
        Ok(MockIter {
            items: pairs(self.store.iter_reverse(upper, lower)),
            pos: 0,
        })
    }
}

async fn union_pairs<S: SnapshotIterator>(
    mut it: UnionIter<Iter<'_>, S>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next().await.unwrap();
    }
    out
}

fn kvs(ks: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
    ks.iter()
        .map(|k| (k.as_bytes().to_vec(), k.as_bytes().to_vec()))
        .collect()
}

fn store_with(keys: &[&str]) -> MockSnapshot {
    let mut store = MemDb::new();
    for k in keys {
        store.set(k.as_bytes(), k.as_bytes()).unwrap();
    }
    MockSnapshot { store }
}

// client-go: T-MEMDB-048 TestUnionStoreGetSet
#[tokio::test]
async fn union_store_get_set() {
    let mut us = UnionStore::new(MemDb::new(), store_with(&["1"]));
    let e = us.get(b"1", GetOptions::default()).await.unwrap().unwrap();
    assert_eq!(e, ValueEntry::new(b"1".to_vec(), 0));
    let e = us
        .get(b"1", GetOptions::with_return_commit_ts())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e, ValueEntry::new(b"1".to_vec(), 1000 + u64::from(b'1')));
    us.mem_buffer_mut().set(b"1", b"2").unwrap();
    let e = us.get(b"1", GetOptions::default()).await.unwrap().unwrap();
    assert_eq!(e, ValueEntry::new(b"2".to_vec(), 0));
    let e = us
        .get(b"1", GetOptions::with_return_commit_ts())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e, ValueEntry::new(b"2".to_vec(), 0));
    assert_eq!(us.mem_buffer().size(), 2);
    assert_eq!(us.mem_buffer().len(), 1);
}

// client-go: T-MEMDB-049 TestUnionStoreDelete
#[tokio::test]
async fn union_store_delete() {
    let mut us = UnionStore::new(MemDb::new(), store_with(&["1"]));
    us.mem_buffer_mut().delete(b"1").unwrap();
    assert!(us.get(b"1", GetOptions::default()).await.unwrap().is_none());
    us.mem_buffer_mut().set(b"1", b"2").unwrap();
    let e = us.get(b"1", GetOptions::default()).await.unwrap().unwrap();
    assert_eq!(e.value, b"2");
}

// client-go: T-MEMDB-050 TestUnionStoreSeek
#[tokio::test]
async fn union_store_seek() {
    let mut us = UnionStore::new(MemDb::new(), store_with(&["1", "2", "3"]));
    assert_eq!(
        union_pairs(us.iter(&[], &[]).await.unwrap()).await,
        kvs(&["1", "2", "3"])
    );
    assert_eq!(
        union_pairs(us.iter(b"2", &[]).await.unwrap()).await,
        kvs(&["2", "3"])
    );
    us.mem_buffer_mut().set(b"4", b"4").unwrap();
    assert_eq!(
        union_pairs(us.iter(b"2", &[]).await.unwrap()).await,
        kvs(&["2", "3", "4"])
    );
    us.mem_buffer_mut().delete(b"3").unwrap();
    assert_eq!(
        union_pairs(us.iter(b"2", &[]).await.unwrap()).await,
        kvs(&["2", "4"])
    );
}

// client-go: T-MEMDB-051 TestUnionStoreIterReverse
#[tokio::test]
async fn union_store_iter_reverse() {
    let mut us = UnionStore::new(MemDb::new(), store_with(&["1", "2", "3"]));
    assert_eq!(
        union_pairs(us.iter_reverse(&[], &[]).await.unwrap()).await,
        kvs(&["3", "2", "1"])
    );
    assert_eq!(
        union_pairs(us.iter_reverse(b"3", b"1").await.unwrap()).await,
        kvs(&["2", "1"])
    );
    assert_eq!(
        union_pairs(us.iter_reverse(b"3", &[]).await.unwrap()).await,
        kvs(&["2", "1"])
    );
    us.mem_buffer_mut().set(b"0", b"0").unwrap();
    assert_eq!(
        union_pairs(us.iter_reverse(b"3", &[]).await.unwrap()).await,
        kvs(&["2", "1", "0"])
    );
    us.mem_buffer_mut().delete(b"1").unwrap();
    assert_eq!(
        union_pairs(us.iter_reverse(b"3", &[]).await.unwrap()).await,
        kvs(&["2", "0"])
    );
    assert_eq!(
        union_pairs(us.iter_reverse(b"3", b"1").await.unwrap()).await,
        kvs(&["2"])
    );
}

#[tokio::test]
async fn union_store_flags_and_limits() {
    let mut us = UnionStore::new(MemDb::new(), store_with(&[]));
    us.mem_buffer_mut()
        .update_flags(b"k", &[FlagsOp::SetPresumeKeyNotExists]);
    assert!(us.has_presume_key_not_exists(b"k"));
    assert!(!us.has_presume_key_not_exists(b"x"));
    us.unmark_presume_key_not_exists(b"k");
    assert!(!us.has_presume_key_not_exists(b"k"));
    us.set_entry_size_limit(0, 0);
    assert_eq!(us.mem_buffer().entry_size_limit(), (u64::MAX, u64::MAX));
    us.set_entry_size_limit(10, 0);
    assert!(us.mem_buffer_mut().set(b"k", &[0; 10]).is_err());
}

// ----- red-black tree tests (behaviour only) -----

// client-go: T-MEMDB-052 TestDiscard (rbt)
#[test]
fn rbt_discard() {
    let mut db = MemDb::new();
    let base = derive_and_fill(&mut db, 0, 10_000, 0);
    let sz = db.size();
    let h = derive_and_fill(&mut db, 0, 10_000, 1);
    db.cleanup(h);
    assert_eq!((db.len(), db.size()), (10_000, sz));
    db.cleanup(base);
    assert!(db.get(&be(0)).is_none());
    assert!(!db.iter(&[], &[]).valid());
    assert!(!db.iter_reverse(&[], &[]).valid());
    assert!(!db.iter(&be(5), &[]).valid());
}

// client-go: T-MEMDB-053 TestEmptyDB
#[test]
fn rbt_empty_db() {
    let db = MemDb::new();
    assert!(db.get(&[0]).is_none());
    assert!(!db.iter(&[], &[]).valid());
    assert!(!db.iter_reverse(&[], &[]).valid());
    assert!(!db.iter(&[0xff], &[]).valid());
}

// client-go: T-MEMDB-054 TestFlags (rbt)
#[test]
fn rbt_flags() {
    check_flags(false);
}

// ----- ART tests (behaviour only) -----

// client-go: T-MEMDB-057 TestSimple
#[test]
fn art_simple() {
    let mut db = MemDb::new();
    for i in 0..=255u8 {
        assert!(db.get(&[i]).is_none());
        db.set(&[i], &[i]).unwrap();
        assert_eq!(db.get(&[i]), Some(&[i][..]));
    }
}

// client-go: T-MEMDB-058 TestSubNode
#[test]
fn art_sub_node() {
    let mut db = MemDb::new();
    for k in [&b"a"[..], b"aa", b"aaa"] {
        db.set(k, k).unwrap();
    }
    for k in [&b"a"[..], b"aa", b"aaa"] {
        assert_eq!(db.get(k), Some(k));
    }
}

// client-go: T-MEMDB-059 TestBenchKey
#[test]
fn art_bench_key() {
    let mut db = MemDb::new();
    for k in 0..100_000 {
        db.set(&encode_int(k), &encode_int(k)).unwrap();
    }
    for k in 0..100_000 {
        assert_eq!(db.get(&encode_int(k)), Some(&encode_int(k)[..]));
    }
}

// client-go: T-MEMDB-060 TestLeafWithCommonPrefix
#[test]
fn art_leaf_with_common_prefix() {
    let mut db = MemDb::new();
    db.set(&[1, 1, 1], &[1, 1, 1]).unwrap();
    db.set(&[1, 1, 2], &[1, 1, 2]).unwrap();
    assert_eq!(db.get(&[1, 1, 1]), Some(&[1u8, 1, 1][..]));
    assert_eq!(db.get(&[1, 1, 2]), Some(&[1u8, 1, 2][..]));
}

// client-go: T-MEMDB-061 TestUpdateInplace
#[test]
fn art_update_inplace() {
    let mut db = MemDb::new();
    for _ in 0..256 {
        db.set(&[0], &[0u8; 4096]).unwrap();
        assert_eq!(db.vlog_blocks(), 1);
    }
}

// client-go: T-MEMDB-062 TestFlag
#[test]
fn art_flag() {
    let mut db = MemDb::new();
    db.set_with_flags(&[0], &[0], &[FlagsOp::SetPresumeKeyNotExists])
        .unwrap();
    assert!(db.get_flags(&[0]).unwrap().has_presume_key_not_exists());
    db.set_with_flags(&[1], &[1], &[FlagsOp::SetKeyLocked])
        .unwrap();
    assert!(db.get_flags(&[1]).unwrap().has_locked());
    let mut it = db.iter(&[], &[]);
    assert!(it.valid());
    assert_eq!((it.key(), it.value()), (&[0u8][..], &[0u8][..]));
    assert!(it.flags().has_presume_key_not_exists() && !it.flags().has_locked());
    it.next().unwrap();
    assert!(it.valid());
    assert_eq!((it.key(), it.value()), (&[1u8][..], &[1u8][..]));
    assert!(it.flags().has_locked() && !it.flags().has_presume_key_not_exists());
    it.next().unwrap();
    assert!(!it.valid());
}

// client-go: T-MEMDB-063 TestLongPrefix1
#[test]
fn art_long_prefix1() {
    let key1 = [
        109, 68, 66, 115, 0, 0, 0, 0, 0, 250, 0, 0, 0, 0, 0, 0, 0, 104, 68, 66, 58, 49, 0, 0, 0, 0,
        251,
    ];
    let key2 = [
        109, 68, 66, 115, 0, 0, 0, 0, 0, 250, 0, 0, 0, 0, 0, 0, 0, 105, 68, 66, 58, 49, 0, 0, 0, 0,
        251,
    ];
    let mut db = MemDb::new();
    db.set(&key1, &[1]).unwrap();
    db.set(&key2, &[2]).unwrap();
    assert_eq!(db.get(&key1), Some(&[1u8][..]));
    assert_eq!(db.get(&key2), Some(&[2u8][..]));
    db.set(&key2, &[3]).unwrap();
    assert_eq!(db.get(&key2), Some(&[3u8][..]));
}

// client-go: T-MEMDB-064 TestLongPrefix2
#[test]
fn art_long_prefix2() {
    let p = [0u8, 97, 0, 0, 0, 0, 0, 0, 0, 248, 0, 0, 0, 0, 0, 0, 0];
    let k = |tail: &[u8]| [&p[..], tail].concat();
    let keys = [
        k(&[108, 127, 255, 255, 255, 255, 255, 255, 255]),
        k(&[108, 127, 255, 255, 255, 255, 255, 255, 254]),
        k(&[108, 127, 255, 255, 255, 255, 255, 255, 253]),
        k(&[76]),
        k(&[108, 127, 255, 255, 255, 255, 255, 255, 252]),
    ];
    let mut db = MemDb::new();
    for key in &keys {
        db.set(key, key).unwrap();
    }
    db.set(&keys[3], &keys[3]).unwrap();
    for key in &keys {
        assert_eq!(db.get(key), Some(&key[..]));
    }
}

// client-go: T-MEMDB-065 TestFlagOnlyKey
#[test]
fn art_flag_only_key() {
    let mut db = MemDb::new();
    db.update_flags(&[0], &[FlagsOp::SetAssertNone]);
    assert!(!db.get_flags(&[0]).unwrap().has_assertion_flags());
    assert!(db.get(&[0]).is_none());
}

// client-go: T-MEMDB-066 TestSearchPrefixMisatch
#[test]
fn art_search_prefix_mismatch() {
    let mut db = MemDb::new();
    db.set(&[1, 1, 1, 1, 1, 1], &[1, 1, 1, 1, 1, 1]).unwrap();
    db.set(&[1, 1, 1, 1, 1, 2], &[1, 1, 1, 1, 1, 2]).unwrap();
    assert!(db.get(&[1, 1, 1, 3, 1, 1]).is_none());
}

// client-go: T-MEMDB-067 TestSearchOptimisticMismatch
#[test]
fn art_search_optimistic_mismatch() {
    let mut db = MemDb::new();
    let prefix = [0u8; 22];
    db.set(&[&prefix[..], &[1]].concat(), &prefix).unwrap();
    db.set(&[&prefix[..], &[2]].concat(), &prefix).unwrap();
    assert!(db.get(&[&[0u8; 21][..], &[1, 1]].concat()).is_none());
}

// client-go: T-MEMDB-068 TestExpansion (behaviour only: keys diverging inside a shared prefix)
#[test]
fn art_expansion_behaviour() {
    let prefix = [0u8; 20];
    let keys = [
        [&prefix[..], &[1, 1, 1, 1]].concat(),
        [&prefix[..], &[1, 1, 1, 2]].concat(),
        [&prefix[..], &[1, 255, 2]].concat(),
    ];
    let mut db = MemDb::new();
    for (i, k) in keys.iter().enumerate() {
        db.set(k, &[i as u8]).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(db.get(k), Some(&[i as u8][..]));
    }
    assert_eq!(
        pairs(db.iter(&[], &[]))
            .into_iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        keys.to_vec()
    );
}

// client-go: T-MEMDB-069 TestDiscardValues
#[test]
fn art_discard_values() {
    let mut db = MemDb::new();
    db.set(&[1], &[2]).unwrap();
    let handle = db.iter_with_flags(&[], &[]).handle();
    assert_eq!(db.value_by_handle(handle), Some(&[2u8][..]));
    assert_eq!(db.key_by_handle(handle), &[1]);
    db.discard_values();
    assert!(db.value_by_handle(handle).is_none());
    assert_eq!(db.key_by_handle(handle), &[1]);
}

// client-go: T-MEMDB-069 TestDiscardValues (Get panics after DiscardValues)
#[test]
#[should_panic(expected = "vlog is reset")]
fn art_discard_values_get_panics() {
    let mut db = MemDb::new();
    db.set(&[1], &[2]).unwrap();
    db.discard_values();
    let _ = db.get(&[3]);
}

// client-go: T-MEMDB-069 TestDiscardValues (Set panics after DiscardValues)
#[test]
#[should_panic(expected = "vlog is reset")]
fn art_discard_values_set_panics() {
    let mut db = MemDb::new();
    db.set(&[1], &[2]).unwrap();
    db.discard_values();
    let _ = db.set(&[3], &[4]);
}

fn check_range(db: &MemDb, lower: &[u8], upper: &[u8], start: u32, end: u32) {
    let mut it = db.iter(lower, upper);
    let mut handles = Vec::new();
    for i in start..=end {
        assert!(it.valid(), "{i}");
        assert_eq!((it.key(), it.value()), (&[i as u8][..], &[i as u8][..]));
        handles.push(it.handle());
        it.next().unwrap();
    }
    assert!(!it.valid());
    assert!(it.next().is_err());
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(db.key_by_handle(*h), &[(start as usize + i) as u8]);
        assert_eq!(
            db.value_by_handle(*h),
            Some(&[(start as usize + i) as u8][..])
        );
    }
    let mut it = db.iter_reverse(upper, lower);
    for i in (start..=end).rev() {
        assert!(it.valid(), "{i}");
        assert_eq!((it.key(), it.value()), (&[i as u8][..], &[i as u8][..]));
        assert_eq!(db.key_by_handle(it.handle()), &[i as u8]);
        it.next().unwrap();
    }
    assert!(!it.valid());
    assert!(it.next().is_err());
}

// client-go: T-MEMDB-080 TestIterateNodeCapacity
#[test]
fn art_iterate_node_capacity() {
    for cap in [4u32, 16, 48, 256] {
        let mut db = MemDb::new();
        for i in 0..cap {
            db.set(&[i as u8], &[i as u8]).unwrap();
        }
        check_range(&db, &[], &[], 0, cap - 1);
        let mid = cap / 2;
        check_range(&db, &[mid as u8], &[], mid, cap - 1);
        check_range(&db, &[], &[mid as u8], 0, mid - 1);
    }
}

// client-go: T-MEMDB-081 TestIterSeekLeaf (behaviour only: seeking to any key lands on it)
#[test]
fn art_iter_seek_leaf() {
    for cap in [4u32, 16, 48, 256] {
        let mut db = MemDb::new();
        for i in 0..cap {
            db.set(&[i as u8], &[i as u8]).unwrap();
        }
        for i in 0..cap {
            assert_eq!(db.iter(&[i as u8], &[]).key(), &[i as u8]);
        }
    }
}

// client-go: T-MEMDB-082 TestMultiLevelIterate
#[test]
fn art_multi_level_iterate() {
    let keys: Vec<Vec<u8>> = (0..20).map(|i| vec![0u8; i + 1]).collect();
    let mut db = MemDb::new();
    for k in &keys {
        db.set(k, k).unwrap();
    }
    let mut it = db.iter(&[], &[]);
    for k in &keys {
        assert!(it.valid());
        assert_eq!((it.key(), it.value()), (&k[..], &k[..]));
        let h = it.handle();
        assert_eq!(db.key_by_handle(h), &k[..]);
        assert_eq!(db.value_by_handle(h), Some(&k[..]));
        it.next().unwrap();
    }
    assert!(!it.valid());
    assert!(it.next().is_err());
    let mut it = db.iter_reverse(&[], &[]);
    for k in keys.iter().rev() {
        assert!(it.valid());
        assert_eq!((it.key(), it.value()), (&k[..], &k[..]));
        it.next().unwrap();
    }
    assert!(!it.valid());
    assert!(it.next().is_err());
}

// client-go: T-MEMDB-083 TestSeekMeetLeaf
#[test]
fn art_seek_meet_leaf() {
    let mut db = MemDb::new();
    db.set(&[1], &[1]).unwrap();
    assert_eq!(pairs(db.iter(&[1], &[1, 1])), vec![(vec![1], vec![1])]);
    db.set(&[2], &[2]).unwrap();
    assert_eq!(
        pairs(db.iter_reverse(&[2, 2], &[1, 1])),
        vec![(vec![2], vec![2])]
    );
    let mut db = MemDb::new();
    db.set(&[1, 1], &[1, 1]).unwrap();
    assert_eq!(
        pairs(db.iter(&[1, 0, 0], &[1, 2, 0])),
        vec![(vec![1, 1], vec![1, 1])]
    );
}

// client-go: T-MEMDB-086 TestIterateHandle
#[test]
fn art_iterate_handle() {
    let mut db = MemDb::new();
    let h = db.staging();
    db.set(&[1], &[2]).unwrap();
    let handle = db.iter_with_flags(&[], &[]).handle();
    assert_eq!(db.key_by_handle(handle), &[1]);
    assert_eq!(db.value_by_handle(handle), Some(&[2u8][..]));
    db.cleanup(h);
    assert_eq!(db.key_by_handle(handle), &[1]);
    assert!(db.value_by_handle(handle).is_none());
}

// client-go: T-MEMDB-087 TestSeekPrefixMismatch
#[test]
fn art_seek_prefix_mismatch() {
    let short = [1u8; 10];
    let long = [2u8; 30];
    let keys = [
        [&short[..], &[1]].concat(),
        [&short[..], &[2]].concat(),
        [&long[..], &[3]].concat(),
        [&long[..], &[4]].concat(),
    ];
    let mut db = MemDb::new();
    for k in &keys {
        db.set(k, k).unwrap();
    }
    let lower = [&short[..9], &[0]].concat();
    let upper = [&long[..29], &[3]].concat();
    let got: Vec<Vec<u8>> = pairs(db.iter(&lower, &upper))
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(got, keys.to_vec());
}

// client-go: T-MEMDB-089 TestIterSeekNoResult
#[test]
fn art_iter_seek_no_result() {
    for child in [0u8, 5, 17, 49] {
        let mut db = MemDb::new();
        for i in 0..child {
            db.set(&[1, i], &[1, i]).unwrap();
        }
        db.set(&[1, 100], &[1, 100]).unwrap();
        db.set(&[1, 200], &[1, 200]).unwrap();
        assert!(!db.iter(&[1, 100, 1], &[1, 200]).valid());
        assert!(!db.iter_reverse(&[1, 200], &[1, 100, 1]).valid());
    }
}

// client-go: T-MEMDB-090 TestSnapshotIteratorPreventFreeNode (behaviour only: a snapshot
// cursor keeps working across writes that grow the structure)
#[test]
fn art_snapshot_iterator_survives_growth() {
    for num in [4u8, 16, 48] {
        let mut db = MemDb::new();
        for i in 0..num {
            db.set(&[0, i], &[0, i]).unwrap();
        }
        let mut it = db.get_snapshot().cursor(&db, &[], &[], false);
        db.set(&[0, num], &[0, num]).unwrap();
        // No staging: the snapshot is the tail when taken, so the new key is not in it.
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &[0, n]);
            it.next(&db).unwrap();
            n += 1;
        }
        assert_eq!(n, num);
    }
}

// ----- pipelined memdb -----

fn empty_getter() -> BufferBatchGetter {
    Arc::new(|_keys| Box::pin(async { Ok(HashMap::new()) }))
}

/// A flush function that blocks until a message arrives or the sender is dropped.
fn blocking_flush() -> (FlushFunc, tokio::sync::mpsc::Sender<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let f: FlushFunc = Arc::new(move |_gen, _db| {
        let rx = rx.clone();
        Box::pin(async move {
            rx.lock().await.recv().await;
            Ok(())
        })
    });
    (f, tx)
}

fn ok_flush() -> FlushFunc {
    Arc::new(|_gen, _db| Box::pin(async { Ok(()) }))
}

const AVG: usize = (MIN_FLUSH_MEM_SIZE / MIN_FLUSH_KEYS) as usize;

// client-go: T-MEMDB-039 TestPipelinedFlushTrigger
#[tokio::test]
async fn pipelined_flush_trigger() {
    let n = MIN_FLUSH_KEYS as usize;
    // Enough keys but too little memory: no flush.
    let avg = AVG / 3;
    let (f, _tx) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    for i in 0..n {
        let key = i.to_string().into_bytes();
        db.set(&key, &vec![0; avg - key.len() - 1]).unwrap();
        assert!(!db.flush(false).await.unwrap());
        assert!(!db.on_flushing());
    }
    assert_eq!(db.mutable_db().len(), n);
    assert!(db.mutable_db().mem() < MIN_FLUSH_MEM_SIZE);

    // Enough memory but too few keys: no flush.
    let avg = AVG / 2;
    let (f, _tx2) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    for i in 0..n - 1 {
        let key = i.to_string().into_bytes();
        db.set(&key, &vec![0; avg * 2 - key.len() + 1]).unwrap();
        assert!(!db.flush(false).await.unwrap());
        assert!(!db.on_flushing());
    }
    assert!(db.mutable_db().len() < n);
    assert!(db.mutable_db().mem() > MIN_FLUSH_MEM_SIZE);
    assert!(db.mutable_db().mem() < FORCE_FLUSH_MEM_SIZE_THRESHOLD);

    // Both: flush on the last key.
    let (f, tx) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    for i in 0..n {
        let key = i.to_string().into_bytes();
        db.set(&key, &vec![0; avg * 2 - key.len() + 1]).unwrap();
        let flushed = db.flush(false).await.unwrap();
        assert_eq!(flushed, i == n - 1);
        assert_eq!(db.on_flushing(), i == n - 1);
    }
    assert_eq!(db.mutable_db().len(), 0);
    assert_eq!(db.mutable_db().size(), 0);
    assert_eq!(db.len(), n);
    assert_eq!(db.size(), db.flushing_db().unwrap().size());
    drop(tx);
    db.flush_wait().await.unwrap();
}

async fn fill_pipelined(
    db: &mut PipelinedMemDb,
    from: usize,
    count: usize,
    value_len: impl Fn(&[u8]) -> usize,
) {
    for i in from..from + count {
        let key = i.to_string().into_bytes();
        db.set(&key, &vec![0; value_len(&key)]).unwrap();
    }
}

// client-go: T-MEMDB-040 TestPipelinedFlushSkip
#[tokio::test]
async fn pipelined_flush_skip() {
    let n = MIN_FLUSH_KEYS as usize;
    let (f, tx) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    fill_pipelined(&mut db, 0, n, |k| AVG - k.len() + 1).await;
    assert!(db.flush(false).await.unwrap());
    assert!(db.on_flushing());
    assert_eq!((db.mutable_db().len(), db.mutable_db().size()), (0, 0));
    fill_pipelined(&mut db, n, n, |k| AVG - k.len() + 1).await;
    // Skipped: a flush is in progress.
    assert!(!db.flush(false).await.unwrap());
    assert_eq!(db.mutable_db().len(), n);
    drop(tx);
    db.flush_wait().await.unwrap();
    assert!(db.flush(false).await.unwrap());
    assert_eq!(db.mutable_db().len(), 0);
    assert_eq!(db.len(), 2 * n);
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-041 TestPipelinedFlushBlock
#[tokio::test(start_paused = true)]
async fn pipelined_flush_block() {
    let n = MIN_FLUSH_KEYS as usize;
    let (f, tx) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    fill_pipelined(&mut db, 0, n, |k| AVG - k.len() + 1).await;
    assert!(db.flush(false).await.unwrap());
    assert!(db.on_flushing());
    assert_eq!((db.mutable_db().len(), db.mutable_db().size()), (0, 0));
    let big = (FORCE_FLUSH_MEM_SIZE_THRESHOLD / (MIN_FLUSH_KEYS - 1)) as usize;
    fill_pipelined(&mut db, n, n - 1, |k| big - k.len() + 1).await;
    assert!(db.mutable_db().mem() > FORCE_FLUSH_MEM_SIZE_THRESHOLD);
    let flag = db.on_flushing_flag();
    {
        let fut = db.flush(false);
        tokio::pin!(fut);
        tokio::select! {
            _ = &mut fut => panic!("Flush should be blocked"),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        assert!(flag.load(Ordering::SeqCst));
        tx.send(()).await.unwrap(); // first flush done
        assert!(fut.await.unwrap()); // second flush started
    }
    assert!(db.on_flushing());
    drop(tx);
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-042 TestPipelinedFlushGet
#[tokio::test]
async fn pipelined_flush_get() {
    let n = MIN_FLUSH_KEYS as usize;
    let (f, tx) = blocking_flush();
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    db.set(b"key", b"value").unwrap();
    fill_pipelined(&mut db, 0, n, |k| AVG - k.len() + 1).await;
    assert_eq!(
        db.get(b"key").await.unwrap(),
        Some(ValueEntry::new(b"value".to_vec(), 0))
    );
    assert!(db.flush(false).await.unwrap());
    assert!(db.on_flushing());
    // The key moved to the flushing buffer but is still readable.
    assert!(db.mutable_db().get(b"key").is_none());
    assert_eq!(
        db.get(b"key").await.unwrap(),
        Some(ValueEntry::new(b"value".to_vec(), 0))
    );
    tx.send(()).await.unwrap();
    // Go's flush goroutine clears its flag right after receiving; let the task run.
    while db.on_flushing() {
        tokio::task::yield_now().await;
    }
    fill_pipelined(&mut db, 0, n, |k| AVG - k.len() + 1).await;
    assert!(db.flush(false).await.unwrap());
    assert!(db.on_flushing());
    // Now only the store has it (the empty remote getter stands in for it).
    assert!(db.get(b"key").await.unwrap().is_none());
    drop(tx);
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-043 TestPipelinedFlushSize
#[tokio::test]
async fn pipelined_flush_size() {
    let n = MIN_FLUSH_KEYS as usize;
    let mut db = PipelinedMemDb::new(empty_getter(), Some(ok_flush()));
    let (mut size, mut keys) = (0, 0);
    for i in 0..n {
        let key = i.to_string().into_bytes();
        let value = vec![0; AVG - key.len() + 1];
        keys += 1;
        size += key.len() + value.len();
        db.set(&key, &value).unwrap();
        assert_eq!((db.len(), db.size()), (keys, size));
    }
    assert!(db.flush(false).await.unwrap());
    assert_eq!((db.mutable_db().len(), db.mutable_db().size()), (0, 0));
    assert_eq!((db.len(), db.size()), (keys, size));
    for i in 0..n {
        let key = (n + i).to_string().into_bytes();
        let value = vec![0; AVG - key.len() + 1];
        keys += 1;
        size += key.len() + value.len();
        db.set(&key, &value).unwrap();
        assert_eq!((db.len(), db.size()), (keys, size));
    }
    assert!(db.flush(true).await.unwrap());
    assert_eq!((db.len(), db.size()), (keys, size));
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-044 TestPipelinedFlushGeneration
#[tokio::test]
async fn pipelined_flush_generation() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let f: FlushFunc = Arc::new(move |generation, _db| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(generation);
            Ok(())
        })
    });
    let mut db = PipelinedMemDb::new(empty_getter(), Some(f));
    for i in 0..100u64 {
        db.set(&[i as u8], &[i as u8]).unwrap();
        db.flush(true).await.unwrap();
        assert_eq!(rx.recv().await, Some(i + 1));
    }
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-045 TestErrorIterator
#[test]
fn pipelined_error_iterator() {
    let db = PipelinedMemDb::new(empty_getter(), Some(ok_flush()));
    fn to_err(mut it: impl KvIterator) {
        while it.valid() {
            if it.next().is_err() {
                return;
            }
        }
        panic!("iterator does not return error");
    }
    to_err(db.snapshot_iter(&[], &[]));
    to_err(db.snapshot_iter_reverse(&[], &[]));
    assert!(db.iter(&[], &[]).is_err());
}

// client-go: T-MEMDB-046 TestPipelinedAdjustFlushCondition (failpoints become FlushOptions)
#[tokio::test]
async fn pipelined_adjust_flush_condition() {
    let mut db = PipelinedMemDb::new(empty_getter(), Some(ok_flush()));
    db.set(b"key", b"value").unwrap();
    assert!(!db.flush(false).await.unwrap());

    let opts = FlushOptions::new(1, 1, FORCE_FLUSH_MEM_SIZE_THRESHOLD);
    let mut db = PipelinedMemDb::with_options(empty_getter(), Some(ok_flush()), opts);
    db.set(b"key", b"value").unwrap();
    assert!(db.flush(false).await.unwrap());
    db.flush_wait().await.unwrap();

    let opts = FlushOptions::new(2, 1, FORCE_FLUSH_MEM_SIZE_THRESHOLD);
    let mut db = PipelinedMemDb::with_options(empty_getter(), Some(ok_flush()), opts);
    db.set(b"key", b"value").unwrap();
    assert!(!db.flush(false).await.unwrap());
    db.flush_wait().await.unwrap();

    let opts = FlushOptions::new(2, 1, 2);
    let mut db = PipelinedMemDb::with_options(empty_getter(), Some(ok_flush()), opts);
    db.set(b"key", b"value").unwrap();
    assert!(db.flush(false).await.unwrap());
    db.flush_wait().await.unwrap();
}

// client-go: T-MEMDB-047 TestMemBufferBatchGetCache
#[tokio::test]
async fn pipelined_batch_get_cache() {
    let remote: Arc<std::sync::Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let r = remote.clone();
    let getter: BufferBatchGetter = Arc::new(move |keys| {
        let r = r.clone();
        Box::pin(async move {
            let m = r.lock().unwrap();
            Ok(keys
                .into_iter()
                .filter_map(|k| m.get(&k).map(|v| (k, ValueEntry::new(v.clone(), 0))))
                .collect())
        })
    });
    let r = remote.clone();
    let flush: FlushFunc = Arc::new(move |_gen, db| {
        let (r, done) = (r.clone(), done_tx.clone());
        Box::pin(async move {
            {
                let mut m = r.lock().unwrap();
                for (k, v) in pairs(db.iter(&[], &[])) {
                    m.insert(k, v);
                }
            }
            let _ = done.send(());
            Ok(())
        })
    });
    let mut db = PipelinedMemDb::new(getter, Some(flush));
    let cached = |db: &PipelinedMemDb, k: &[u8]| -> Option<Vec<u8>> {
        assert!(db.has_batch_get_cache());
        db.cached(k).expect("cached").map(<[u8]>::to_vec)
    };
    db.set(b"k1", b"v11").unwrap();
    assert!(db.flush(true).await.unwrap());
    done_rx.recv().await.unwrap();
    db.set(b"k2", b"v21").unwrap();
    assert!(db.flush(true).await.unwrap());
    done_rx.recv().await.unwrap();

    assert!(db.get_local(b"k1").is_none());
    assert_eq!(db.get_local(b"k2"), Some(&b"v21"[..]));
    let m = db.batch_get(&[b"k1", b"k2"]).await.unwrap();
    assert_eq!(
        m,
        HashMap::from([
            (b"k1".to_vec(), ValueEntry::new(b"v11".to_vec(), 0)),
            (b"k2".to_vec(), ValueEntry::new(b"v21".to_vec(), 0)),
        ])
    );
    assert_eq!(cached(&db, b"k1"), Some(b"v11".to_vec()));
    assert_eq!(cached(&db, b"k2"), Some(b"v21".to_vec()));
    assert!(db.cached(b"k3").is_none());
    let m = db.batch_get(&[b"k3"]).await.unwrap();
    assert!(m.is_empty());
    assert_eq!(cached(&db, b"k3"), None);

    db.delete(b"k1").unwrap();
    db.set(b"k2", b"v22").unwrap();
    db.delete(b"k3").unwrap();
    assert!(db.flush(true).await.unwrap());
    done_rx.recv().await.unwrap();
    assert!(!db.has_batch_get_cache());
    let m = db
        .batch_get(&[&b"k1"[..], b"k2", b"k3", b"k4"])
        .await
        .unwrap();
    assert_eq!(
        m,
        HashMap::from([
            (b"k1".to_vec(), ValueEntry::new(Vec::new(), 0)),
            (b"k2".to_vec(), ValueEntry::new(b"v22".to_vec(), 0)),
            (b"k3".to_vec(), ValueEntry::new(Vec::new(), 0)),
        ])
    );
    assert_eq!(cached(&db, b"k1"), Some(Vec::new()));
    assert_eq!(cached(&db, b"k2"), Some(b"v22".to_vec()));
    assert_eq!(cached(&db, b"k3"), Some(Vec::new()));
    assert_eq!(cached(&db, b"k4"), None);
    db.flush_wait().await.unwrap();
}

#[tokio::test]
async fn pipelined_flush_errors() {
    let mut db = PipelinedMemDb::new(empty_getter(), None);
    assert!(db.flush(true).await.is_err());
    let mut db = PipelinedMemDb::new(empty_getter(), Some(ok_flush()));
    let h = db.staging();
    db.set(b"k", b"v").unwrap();
    assert!(db.flush(true).await.is_err());
    db.release(h);
    assert!(db.flush(true).await.unwrap());
    assert!(db.dirty());
    db.flush_wait().await.unwrap();
}

// ----- property tests -----

mod model_tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Set(Vec<u8>, Vec<u8>),
        Delete(Vec<u8>),
        Lock(Vec<u8>),
        Presume(Vec<u8>),
        Staging,
        Release,
        Cleanup,
        Check(Vec<u8>, Vec<u8>),
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 0..4).prop_map(|mut k| {
            k.insert(0, 1);
            k
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (key(), proptest::collection::vec(any::<u8>(), 1..4)).prop_map(|(k, v)| Op::Set(k, v)),
            2 => key().prop_map(Op::Delete),
            1 => key().prop_map(Op::Lock),
            1 => key().prop_map(Op::Presume),
            2 => Just(Op::Staging),
            1 => Just(Op::Release),
            1 => Just(Op::Cleanup),
            1 => (key(), key()).prop_map(|(a, b)| Op::Check(a, b)),
        ]
    }

    /// The model: per key an optional value and flags, plus per staging level a backup of the
    /// values it changed (flags are never reverted; spec M24).
    #[derive(Debug, Default, Clone)]
    struct Model {
        values: BTreeMap<Vec<u8>, Vec<u8>>,
        flags: BTreeMap<Vec<u8>, KeyFlags>,
        stages: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    }

    impl Model {
        fn write(&mut self, k: &[u8], v: Option<Vec<u8>>, ops: &[FlagsOp]) {
            let f = self.flags.get(k).copied().unwrap_or_default();
            let f = if v.is_some() {
                f.apply_one(FlagsOp::DelNeedConstraintCheckInPrewrite)
                    .apply(ops)
            } else {
                f.apply(ops)
            };
            self.flags.insert(k.to_vec(), f);
            if let Some(v) = v {
                let old = self.values.insert(k.to_vec(), v);
                if let Some(stage) = self.stages.last_mut() {
                    stage.entry(k.to_vec()).or_insert(old);
                }
            }
        }

        fn cleanup(&mut self) {
            let Some(stage) = self.stages.pop() else {
                return;
            };
            for (k, old) in stage {
                match old {
                    Some(v) => {
                        self.values.insert(k, v);
                    }
                    None => {
                        self.values.remove(&k);
                        let kept = self
                            .flags
                            .get(&k)
                            .copied()
                            .unwrap_or_default()
                            .and_persistent();
                        if kept.is_empty() {
                            self.flags.remove(&k);
                        } else {
                            self.flags.insert(k, kept);
                        }
                    }
                }
            }
        }

        fn release(&mut self) {
            let Some(top) = self.stages.pop() else { return };
            if let Some(parent) = self.stages.last_mut() {
                for (k, old) in top {
                    parent.entry(k).or_insert(old);
                }
            }
        }
    }

    fn check(db: &MemDb, m: &Model, lower: &[u8], upper: &[u8]) {
        for (k, v) in &m.values {
            assert_eq!(db.get(k), Some(&v[..]), "key {k:?}");
        }
        for (k, f) in &m.flags {
            assert_eq!(db.get_flags(k), Some(*f), "flags {k:?}");
        }
        let in_range = |k: &Vec<u8>| {
            (lower.is_empty() || k.as_slice() >= lower)
                && (upper.is_empty() || k.as_slice() < upper)
        };
        let want: Vec<_> = m
            .values
            .iter()
            .filter(|(k, _)| in_range(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let empty_range = !lower.is_empty() && !upper.is_empty() && lower >= upper;
        let want = if empty_range { Vec::new() } else { want };
        assert_eq!(pairs(db.iter(lower, upper)), want);
        let mut rev = pairs(db.iter_reverse(upper, lower));
        rev.reverse();
        assert_eq!(rev, want);
        // With flags: keys with a value or flags.
        let mut want_keys: Vec<Vec<u8>> = m
            .values
            .keys()
            .chain(m.flags.keys())
            .filter(|k| in_range(k))
            .cloned()
            .collect();
        want_keys.sort();
        want_keys.dedup();
        if empty_range {
            want_keys.clear();
        }
        let mut it = db.iter_with_flags(lower, upper);
        let mut got = Vec::new();
        while it.valid() {
            got.push(it.key().to_vec());
            it.next().unwrap();
        }
        assert_eq!(got, want_keys);
        // Len counts keys with a value or a non-empty flag set (model keys always have one of
        // them, except flag-only keys whose flags are empty, which this strategy never creates).
        assert_eq!(db.len(), want_len(m));
    }

    fn want_len(m: &Model) -> usize {
        let mut keys: Vec<&Vec<u8>> = m.values.keys().chain(m.flags.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn memdb_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut db = MemDb::new();
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Set(k, v) => {
                        db.set(&k, &v).unwrap();
                        m.write(&k, Some(v), &[]);
                    }
                    Op::Delete(k) => {
                        db.delete(&k).unwrap();
                        m.write(&k, Some(Vec::new()), &[]);
                    }
                    Op::Lock(k) => {
                        db.update_flags(&k, &[FlagsOp::SetKeyLocked]);
                        m.write(&k, None, &[FlagsOp::SetKeyLocked]);
                    }
                    Op::Presume(k) => {
                        db.set_with_flags(&k, b"p", &[FlagsOp::SetPresumeKeyNotExists]).unwrap();
                        m.write(&k, Some(b"p".to_vec()), &[FlagsOp::SetPresumeKeyNotExists]);
                    }
                    Op::Staging => {
                        let h = db.staging();
                        m.stages.push(BTreeMap::new());
                        prop_assert_eq!(h, m.stages.len());
                    }
                    Op::Release => {
                        db.release(db.stages().len());
                        m.release();
                    }
                    Op::Cleanup => {
                        db.cleanup(db.stages().len());
                        m.cleanup();
                    }
                    Op::Check(a, b) => check(&db, &m, &a, &b),
                }
            }
            check(&db, &m, &[], &[]);
            let size: usize = m.values.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                + m.flags.keys().filter(|k| !m.values.contains_key(*k)).map(|k| k.len()).sum::<usize>();
            prop_assert_eq!(db.size(), size);
        }
    }
}
