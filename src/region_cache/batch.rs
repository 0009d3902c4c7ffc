//! Locating many key ranges at once, and whole-cache scans and refreshes (client-go's
//! `BatchLocateKeyRanges`, `batchLocateRangesMerger`, `rangesAfterKey`,
//! `BatchLoadRegionsWithKeyRanges`, `scanRegionsFromCache`, `refreshRegionIndex` and
//! `SortedRegions.AscendGreaterOrEqual` in `internal/locate/region_cache.go` and
//! `sorted_btree.go`; RC-20, RC-22, RC-55 of `shared/spec/request-path.md`).

use std::ops::Bound;
use std::sync::Arc;

use tikv_layers::backoff::Backoffer;
use tikv_layers::locate::{RegionSnapshot, contains, contains_by_end};
use tikv_layers::{Error, ErrorDetail, Result};

use super::{
    Index, NEED_DELAYED_RELOAD_READY, NEED_RELOAD_ON_ACCESS, REGIONS_PER_BATCH, Region, RegionCache,
};
use crate::pd::KeyRange;

/// Most key ranges one PD batch-scan call carries from [`RegionCache::batch_locate_key_ranges`]
/// (client-go: 16 × `defaultRegionsPerBatch`).
pub const MAX_RANGES_PER_BATCH: usize = 16 * REGIONS_PER_BATCH as usize;

/// Regions a full index refresh asks PD for per page (RC-55).
const REFRESH_PAGE: i32 = 10_000;

/// Options of [`RegionCache::batch_locate_key_ranges`] (client-go's
/// `BatchLocateKeyRangesOpt`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchLocateOptions {
    /// Ask PD for buckets of loaded regions (`WithNeedBuckets`).
    pub need_buckets: bool,
    /// Leave out loaded regions without a leader, retrying when none has one
    /// (`WithNeedRegionHasLeaderPeer`).
    pub need_leader: bool,
}

impl Index {
    /// `SortedRegions.AscendGreaterOrEqual`: from the item starting at or after `start`,
    /// consecutive regions while they are within their TTL, start before `end` and leave no
    /// hole, up to `limit`.
    fn ascend(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        mut alive: impl FnMut(&Region) -> bool,
    ) -> Vec<Arc<Region>> {
        let mut out = Vec::new();
        let mut last_start = start.to_vec();
        for r in self
            .sorted
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .map(|(_, r)| r)
        {
            if out.len() >= limit {
                break;
            }
            if !end.is_empty() && r.start.as_slice() >= end {
                break;
            }
            if !alive(r) || !contains(&r.start, &r.end, &last_start) {
                break;
            }
            last_start = r.end.to_vec();
            out.push(r.clone());
        }
        out
    }
}

/// Merges regions freshly loaded from PD (in key order) with the cached regions found for
/// the same ranges (client-go's `batchLocateRangesMerger`): a cached region is kept only
/// where the loaded ones leave a gap or overlap it just in part.
#[derive(Debug, Default)]
pub struct BatchLocateMerger {
    last_end: Option<Vec<u8>>,
    cached_idx: usize,
    cached: Vec<Arc<RegionSnapshot>>,
    merged: Vec<Arc<RegionSnapshot>>,
}

impl BatchLocateMerger {
    /// A merger over the cached regions, in key order.
    pub fn new(cached: Vec<Arc<RegionSnapshot>>, size_hint: usize) -> BatchLocateMerger {
        BatchLocateMerger {
            cached,
            merged: Vec::with_capacity(size_hint),
            ..BatchLocateMerger::default()
        }
    }

    /// Whether the cached region at `idx` is covered by what was loaded so far.
    fn covered(&self, idx: usize) -> bool {
        self.last_end
            .as_deref()
            .is_some_and(|last| last >= self.cached[idx].end_key())
    }

    /// Adds the next loaded region (`appendRegion`).
    pub fn append_region(&mut self, loaded: Arc<RegionSnapshot>) {
        let start = loaded.start_key();
        let direct = start.is_empty() || self.last_end.as_deref().is_some_and(|l| l >= start);
        if !direct {
            while self.cached_idx < self.cached.len() {
                if !self.covered(self.cached_idx) {
                    let c = &self.cached[self.cached_idx];
                    if c.start_key() >= start {
                        break;
                    }
                    self.merged.push(c.clone());
                }
                self.cached_idx += 1;
            }
        }
        if loaded.end_key().is_empty() {
            self.cached_idx = self.cached.len();
        } else {
            self.last_end = Some(loaded.end_key().to_vec());
        }
        self.merged.push(loaded);
    }

    /// The merged list (`build`): the remaining uncovered cached regions are appended.
    pub fn build(mut self) -> Vec<Arc<RegionSnapshot>> {
        while self.cached_idx < self.cached.len() {
            if !self.covered(self.cached_idx) {
                self.merged.push(self.cached[self.cached_idx].clone());
            }
            self.cached_idx += 1;
        }
        self.merged
    }
}

/// The parts of sorted, disjoint `ranges` at or after `split` (client-go's
/// `rangesAfterKey`); an empty `split` (+∞) leaves nothing.
pub fn ranges_after_key(ranges: &[KeyRange], split: &[u8]) -> Vec<KeyRange> {
    let Some(last) = ranges.last() else {
        return Vec::new();
    };
    if split.is_empty() || (!last.end.is_empty() && split >= last.end.as_slice()) {
        return Vec::new();
    }
    let n = ranges.partition_point(|r| !r.end.is_empty() && r.end.as_slice() <= split);
    let mut out = ranges[n..].to_vec();
    if let Some(first) = out.first_mut()
        && split > first.start.as_slice()
    {
        first.start = split.to_vec();
    }
    out
}

impl RegionCache {
    /// The cached regions from the one starting at or after `start` while they are
    /// consecutive, valid and start before `end`, up to `limit`; regions flagged for reload
    /// are left out (client-go's `scanRegionsFromCache`).
    pub fn scan_regions_from_cache(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Vec<Arc<Region>> {
        if limit == 0 {
            return Vec::new();
        }
        let clock = &self.inner.clock;
        let now = clock.now();
        let mut found = self
            .read()
            .ascend(start, end, limit, |r| r.check_ttl(now, clock));
        found.retain(|r| r.flags() & (NEED_RELOAD_ON_ACCESS | NEED_DELAYED_RELOAD_READY) == 0);
        found
    }

    /// Replaces the whole index with every region PD knows, scanned in pages (client-go's
    /// `refreshRegionIndex`, RC-55).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the index is swapped only after every page arrived.
    pub async fn refresh_region_index(&self, bo: &mut Backoffer) -> Result<()> {
        let mut all = Vec::new();
        let mut start = Vec::new();
        loop {
            let page = self.scan_regions(bo, &start, &[], REFRESH_PAGE).await?;
            let next = page.last().map(|r| r.end.to_vec());
            all.extend(page);
            match next {
                Some(end) if !end.is_empty() => start = end,
                _ => break,
            }
        }
        let mut fresh = Index::default();
        for r in all {
            fresh.insert(r, true);
        }
        *self.write() = fresh;
        Ok(())
    }

    /// Loads the regions covering `ranges` from PD in one batch scan and caches them
    /// (client-go's `BatchLoadRegionsWithKeyRanges`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn batch_load_regions_with_key_ranges(
        &self,
        bo: &mut Backoffer,
        ranges: &[KeyRange],
        count: i32,
        opts: BatchLocateOptions,
    ) -> Result<Vec<Arc<Region>>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let regions = self
            .batch_scan_regions(bo, ranges, count, opts.need_buckets, opts.need_leader)
            .await?;
        if regions.is_empty() {
            return Err(Error::new(ErrorDetail::Internal(format!(
                "PD returned no region, range num: {}, count: {count}",
                ranges.len()
            ))));
        }
        let mut idx = self.write();
        for r in &regions {
            idx.insert(r.clone(), false);
        }
        Ok(regions)
    }

    /// The regions covering every key range, in key order, taken from the cache where it
    /// has them and from PD (in batches of at most [`MAX_RANGES_PER_BATCH`] ranges)
    /// otherwise (client-go's `BatchLocateKeyRanges`, RC-20). `ranges` must be sorted and
    /// disjoint.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: regions already loaded stay cached.
    pub async fn batch_locate_key_ranges(
        &self,
        bo: &mut Backoffer,
        ranges: &[KeyRange],
        opts: BatchLocateOptions,
    ) -> Result<Vec<Arc<RegionSnapshot>>> {
        let mut uncached: Vec<KeyRange> = Vec::with_capacity(ranges.len());
        let mut cached: Vec<Arc<RegionSnapshot>> = Vec::with_capacity(ranges.len());
        let mut last: Option<Arc<RegionSnapshot>> = None;
        let per_batch = REGIONS_PER_BATCH as usize;
        for range in ranges {
            let mut start = range.start.clone();
            let end = range.end.as_slice();
            if let Some(l) = &last {
                if l.contains_by_end(end) {
                    continue;
                }
                if l.contains(&start) {
                    start = l.end_key().to_vec();
                }
            }
            let Some(r) = self.try_locate_key(&start) else {
                last = None;
                uncached.push(KeyRange::new(start, end.to_vec()));
                continue;
            };
            last = Some(r.clone());
            cached.push(r.clone());
            if r.contains_by_end(end) {
                continue;
            }
            start = r.end_key().to_vec();
            let mut covered = false;
            'scan: loop {
                let batch = self.scan_regions_from_cache(&start, end, per_batch);
                for r in &batch {
                    if !contains(&r.start, &r.end, &start) {
                        break 'scan;
                    }
                    let snap = r.snapshot();
                    cached.push(snap.clone());
                    last = Some(snap);
                    if contains_by_end(&r.start, &r.end, end) {
                        covered = true;
                        break 'scan;
                    }
                    start = r.end.to_vec();
                }
                if batch.len() < per_batch {
                    break;
                }
            }
            if !covered {
                uncached.push(KeyRange::new(start, end.to_vec()));
            }
        }

        let mut merger = BatchLocateMerger::new(cached, ranges.len());
        while !uncached.is_empty() {
            let n = uncached.len().min(MAX_RANGES_PER_BATCH);
            let loaded = self
                .batch_load_regions_with_key_ranges(bo, &uncached[..n], REGIONS_PER_BATCH, opts)
                .await?;
            let Some(last_end) = loaded.last().map(|r| r.end.to_vec()) else {
                return Err(Error::new(ErrorDetail::Internal(
                    "batch load returned no region without an error".into(),
                )));
            };
            for r in &loaded {
                merger.append_region(r.snapshot());
            }
            uncached = ranges_after_key(&uncached, &last_end);
        }
        Ok(merger.build())
    }
}

/// Keys grouped by region: the groups and the region of the first key (client-go's
/// `GroupKeysByRegion` result).
pub type KeyGroups = (
    std::collections::HashMap<tikv_layers::locate::RegionVerId, Vec<Vec<u8>>>,
    tikv_layers::locate::RegionVerId,
);

impl RegionCache {
    /// Groups sorted `keys` by region, locating a region only when a key leaves the
    /// previous one (client-go's `GroupKeysByRegion`, RC-21). `filter(key, region_start)`
    /// returning true drops the key; like client-go it is asked only for the key that
    /// located a new region. Returns the groups and the region of `keys[0]` (the primary
    /// candidate).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn group_keys_by_region(
        &self,
        bo: &mut Backoffer,
        keys: &[Vec<u8>],
        filter: Option<&(dyn Fn(&[u8], &[u8]) -> bool + Sync)>,
    ) -> Result<KeyGroups> {
        let mut groups: std::collections::HashMap<_, Vec<Vec<u8>>> =
            std::collections::HashMap::new();
        let mut first = tikv_layers::locate::RegionVerId::default();
        let mut last: Option<Arc<RegionSnapshot>> = None;
        for (i, key) in keys.iter().enumerate() {
            let loc = match &last {
                Some(l) if l.contains(key) => l.clone(),
                _ => {
                    let l = self.locate_key_with(bo, key).await?;
                    last = Some(l.clone());
                    if filter.is_some_and(|f| f(key, l.start_key())) {
                        continue;
                    }
                    l
                }
            };
            if i == 0 {
                first = loc.ver;
            }
            groups.entry(loc.ver).or_default().push(key.clone());
        }
        Ok((groups, first))
    }

    /// Loads and caches every region overlapping `[start, end]`, a batch at a time
    /// (client-go's `LoadRegionsInKeyRange`, RC-22).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn load_regions_in_key_range(
        &self,
        bo: &mut Backoffer,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<Arc<RegionSnapshot>>> {
        let mut out = Vec::new();
        let mut start = start.to_vec();
        loop {
            let batch = self
                .batch_load_regions_with_key_range(bo, &start, end, REGIONS_PER_BATCH)
                .await?;
            let Some(last) = batch.last().cloned() else {
                break;
            };
            out.extend(batch);
            if last.contains_by_end(end) || last.end_key().is_empty() {
                break;
            }
            start = last.end_key().to_vec();
        }
        Ok(out)
    }
}
