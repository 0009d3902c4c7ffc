//! Write-buffer benchmark: 1M random inserts and a full iteration, `tikv::txn::memdb::MemDb`
//! against a plain `BTreeMap<Vec<u8>, Vec<u8>>`, plus memory per entry.
//!
//! Memory is reported once per run on stderr: the buffer's own accounting (`MemDb::mem`) and the
//! resident-set growth of building each structure (Linux `/proc/self/statm`), so both are
//! measured the same way.
#![allow(
    clippy::print_stderr,
    reason = "the benchmark reports memory on stderr"
)]
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tikv::txn::memdb::{KvIterator, MemDb};

const N: usize = 1_000_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 16;

/// Deterministic SplitMix64 keys.
fn keys() -> Vec<Vec<u8>> {
    let mut s: u64 = 42;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..N)
        .map(|_| {
            let mut k = Vec::with_capacity(KEY_LEN);
            k.extend_from_slice(&next().to_be_bytes());
            k.extend_from_slice(&next().to_be_bytes());
            k
        })
        .collect()
}

fn build_memdb(keys: &[Vec<u8>]) -> MemDb {
    let mut db = MemDb::new();
    let value = [7u8; VALUE_LEN];
    for k in keys {
        db.set(k, &value).expect("unlimited buffer");
    }
    db
}

fn build_btree(keys: &[Vec<u8>]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for k in keys {
        m.insert(k.clone(), vec![7u8; VALUE_LEN]);
    }
    m
}

/// Resident set size in bytes (0 where `/proc` is unavailable).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn report_memory(keys: &[Vec<u8>]) {
    let before = rss();
    let db = build_memdb(keys);
    let after = rss();
    eprintln!(
        "memdb: {} entries, mem() = {:.1} B/entry, RSS growth = {:.1} B/entry (key {KEY_LEN} B + value {VALUE_LEN} B)",
        db.len(),
        db.mem() as f64 / N as f64,
        after.saturating_sub(before) as f64 / N as f64
    );
    drop(db);
    let before = rss();
    let m = build_btree(keys);
    let after = rss();
    eprintln!(
        "btreemap: {} entries, RSS growth = {:.1} B/entry",
        m.len(),
        after.saturating_sub(before) as f64 / N as f64
    );
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    report_memory(&keys);

    let mut g = c.benchmark_group("insert_1m_random");
    g.sample_size(10);
    g.bench_function("memdb", |b| {
        b.iter_batched(
            || (),
            |()| black_box(build_memdb(&keys)),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("btreemap", |b| {
        b.iter_batched(
            || (),
            |()| black_box(build_btree(&keys)),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let db = build_memdb(&keys);
    let m = build_btree(&keys);
    let mut g = c.benchmark_group("iterate_1m");
    g.sample_size(10);
    g.bench_function("memdb", |b| {
        b.iter(|| {
            let mut it = db.iter(&[], &[]);
            let mut n = 0usize;
            while it.valid() {
                // Touch the bytes, not just the lengths, in both benchmarks.
                n += usize::from(it.key()[0]) + usize::from(it.value()[0]);
                it.next().expect("valid iterator");
            }
            black_box(n)
        })
    });
    g.bench_function("btreemap", |b| {
        b.iter(|| {
            black_box(
                m.iter()
                    .map(|(k, v)| usize::from(k[0]) + usize::from(v[0]))
                    .sum::<usize>(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
