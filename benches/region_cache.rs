//! Region lookup cost of the region cache against a plain `BTreeMap` in the same run, at
//! 10k and 1M cached regions, with random and sequential keys.
//!
//! `REGION_BENCH_SIZES=10000` (a comma-separated list) limits the sizes built, e.g. to
//! profile one case without building the 1M-region cache.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_core::future::BoxFuture;
use rand::{Rng, SeedableRng};
use tikv::layers::Result;
use tikv::pd::{KeyRange, RegionInfo, RegionMetaClient, RegionOptions};
use tikv::proto::metapb;
use tikv::region_cache::{RegionCache, RegionCacheOptions};

/// A PD that is never asked: every region is inserted up front.
struct NoPd;

fn never<T: Send + 'static>() -> BoxFuture<'static, Result<T>> {
    Box::pin(async { Err(tikv::layers::ErrorDetail::Internal("benchmark PD".into()).into()) })
}

impl RegionMetaClient for NoPd {
    fn get_region(
        &self,
        _: Vec<u8>,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        never()
    }
    fn get_prev_region(
        &self,
        _: Vec<u8>,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        never()
    }
    fn get_region_by_id(
        &self,
        _: u64,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        never()
    }
    fn scan_regions(
        &self,
        _: Vec<u8>,
        _: Vec<u8>,
        _: i32,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        never()
    }
    fn batch_scan_regions(
        &self,
        _: Vec<KeyRange>,
        _: i32,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        never()
    }
    fn get_store(
        &self,
        _: u64,
        _: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>> {
        never()
    }
    fn get_all_stores(&self, _: RegionOptions) -> BoxFuture<'static, Result<Vec<metapb::Store>>> {
        never()
    }
    fn cluster_id(&self) -> u64 {
        1
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:010}").into_bytes()
}

fn build(n: u64) -> (RegionCache, BTreeMap<Vec<u8>, Arc<metapb::Region>>) {
    let cache = RegionCache::new(Arc::new(NoPd), RegionCacheOptions::default());
    let mut map = BTreeMap::new();
    for i in 0..n {
        let start = if i == 0 { Vec::new() } else { key(i) };
        let end = if i + 1 == n { Vec::new() } else { key(i + 1) };
        let region = metapb::Region {
            id: i + 1,
            start_key: start.clone(),
            end_key: end,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![metapb::Peer {
                id: i + 1,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        map.insert(start, Arc::new(region.clone()));
        let leader = region.peers.first().cloned();
        let _ = cache.insert_region(
            RegionInfo {
                region,
                leader,
                ..RegionInfo::default()
            },
            false,
        );
    }
    (cache, map)
}

fn btree_lookup(
    map: &BTreeMap<Vec<u8>, Arc<metapb::Region>>,
    k: &[u8],
) -> Option<Arc<metapb::Region>> {
    let (_, r) = map
        .range::<[u8], _>((Bound::Unbounded, Bound::Included(k)))
        .next_back()?;
    let hit = r.start_key.as_slice() <= k && (r.end_key.is_empty() || k < r.end_key.as_slice());
    hit.then(|| r.clone())
}

fn bench(c: &mut Criterion) {
    let sizes: Vec<u64> = std::env::var("REGION_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 1_000_000]);
    for n in sizes {
        let (cache, map) = build(n);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let random: Vec<Vec<u8>> = (0..4096).map(|_| key(rng.random_range(0..n))).collect();
        let sequential: Vec<Vec<u8>> = (0..4096).map(|i| key(i % n)).collect();
        let mut g = c.benchmark_group(format!("region_lookup_{n}"));
        for (name, keys) in [("random", &random), ("sequential", &sequential)] {
            g.bench_with_input(BenchmarkId::new("region_cache", name), keys, |b, keys| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    black_box(cache.try_locate_key(&keys[i]))
                })
            });
            g.bench_with_input(BenchmarkId::new("btreemap", name), keys, |b, keys| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    black_box(btree_lookup(&map, &keys[i]))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
