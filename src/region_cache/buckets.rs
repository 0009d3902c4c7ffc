//! Region buckets: finding the bucket of a key, clamping stale buckets to their region, and
//! refreshing a region's buckets in the background (client-go's `KeyLocation.LocateBucket`,
//! `locateBucket`, `clampBucketToRegion` and `RegionCache.UpdateBucketsIfNeeded` in
//! `internal/locate/region_cache.go`; RC-43, RC-45 of `shared/spec/request-path.md`).

use std::borrow::Cow;

use tikv_layers::backoff::Backoffer;
use tikv_layers::locate::{RegionSnapshot, RegionVerId, contains};
use tikv_proto::metapb;

use super::{LOCATE_BUDGET_MS, RegionCache};

/// One bucket's key range `[start, end)`; an empty `end` is +∞ (client-go's `Bucket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end; empty = +∞.
    pub end: Vec<u8>,
}

impl Bucket {
    /// Whether `key` falls in the bucket.
    pub fn contains(&self, key: &[u8]) -> bool {
        contains(&self.start, &self.end, key)
    }
}

/// The bucket of `key` among `buckets`' boundaries, without looking at the region
/// (client-go's `locateBucket`): `None` before the first boundary or at/after a non-empty
/// last one, which happens when the bucket information is stale.
pub fn locate_bucket_in(buckets: Option<&metapb::Buckets>, key: &[u8]) -> Option<Bucket> {
    let keys = buckets.map_or(&[][..], |b| b.keys.as_slice());
    let search = keys.len().checked_sub(1)?;
    // First boundary greater than the key among all but the last.
    let i = keys[..search].partition_point(|k| k.as_slice() <= key);
    if i == 0 {
        return None;
    }
    if i == search && !keys[search].is_empty() && key >= keys[search].as_slice() {
        return None;
    }
    Some(Bucket {
        start: keys[i - 1].clone(),
        end: keys[i].clone(),
    })
}

/// Clamps a bucket to its region's range (client-go's `clampBucketToRegion`): start is
/// raised to the region start, end lowered to the region end (empty = +∞), and a bucket
/// left empty by the clamp becomes the whole region. Returns the bucket itself (borrowed)
/// when nothing changed.
pub fn clamp_bucket_to_region<'a>(
    region_start: &[u8],
    region_end: &[u8],
    bucket: &'a Bucket,
) -> Cow<'a, Bucket> {
    let mut start = bucket.start.as_slice();
    let mut end = bucket.end.as_slice();
    if start < region_start {
        start = region_start;
    }
    if !region_end.is_empty() && (end.is_empty() || end > region_end) {
        end = region_end;
    }
    if !end.is_empty() && start >= end {
        tracing::warn!("clamped bucket is empty, using the region's range");
        start = region_start;
        end = region_end;
    }
    if start == bucket.start.as_slice() && end == bucket.end.as_slice() {
        return Cow::Borrowed(bucket);
    }
    metrics::counter!("tikv_client_bucket_clamped_total").increment(1);
    Cow::Owned(Bucket {
        start: start.to_vec(),
        end: end.to_vec(),
    })
}

impl RegionCache {
    /// The bucket holding `key` in a region snapshot (client-go's `LocateBucket`, RC-43):
    /// the located bucket clamped to the region; where the bucket keys leave a gap at the
    /// region's start or end, the gap itself; the whole region when there are no bucket
    /// keys. `None` when the region does not contain the key.
    pub fn locate_bucket(snap: &RegionSnapshot, key: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let (rs, re) = (snap.start_key(), snap.end_key());
        if let Some(b) = locate_bucket_in(snap.buckets.as_deref(), key) {
            let b = clamp_bucket_to_region(rs, re, &b).into_owned();
            return Some((b.start, b.end));
        }
        if !snap.contains(key) {
            return None;
        }
        let keys = snap.buckets.as_ref().map_or(&[][..], |b| b.keys.as_slice());
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Some((rs.to_vec(), re.to_vec()));
        };
        if key < first.as_slice() {
            return Some((rs.to_vec(), first.clone()));
        }
        if last.as_slice() <= key {
            return Some((last.clone(), re.to_vec()));
        }
        // Not reachable for well-formed boundaries; fall back to the whole region rather
        // than panicking on malformed ones.
        Some((rs.to_vec(), re.to_vec()))
    }

    /// Refreshes a cached region's buckets from PD in the background when a response said
    /// they are behind (client-go's `UpdateBucketsIfNeeded`, RC-45).
    ///
    /// Nothing happens when the region is not cached, when `request_ver` is non-zero and
    /// older than the cached bucket version, when the cached version is not older than
    /// `latest_ver`, or when a refresh of this region is already running. Otherwise one task
    /// reloads the region by id (fresh 20 s backoffer) and re-inserts it. Needs a tokio
    /// runtime; without one the refresh is skipped.
    pub fn update_buckets_if_needed(&self, ver: &RegionVerId, request_ver: u64, latest_ver: u64) {
        let Some(region) = self.get_cached(ver) else {
            return;
        };
        let cached_ver = region.snapshot().bucket_version();
        if request_ver != 0 && request_ver < cached_ver {
            return;
        }
        if cached_ver >= latest_ver {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(region = ver.id, "no runtime to refresh buckets on");
            return;
        };
        if !self.inflight_buckets().insert(ver.id) {
            return;
        }
        let this = self.clone();
        let id = ver.id;
        rt.spawn(async move {
            let mut bo = Backoffer::new(LOCATE_BUDGET_MS);
            match this.load_region_by_id(&mut bo, id).await {
                Ok(super::Loaded(new)) => {
                    this.write().insert(new, true);
                }
                Err(e) => {
                    tracing::error!(region = id, cached_ver, latest_ver, error = %e, "failed to update buckets");
                }
            }
            this.inflight_buckets().remove(&id);
        });
    }

    fn inflight_buckets(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
        self.inner
            .inflight_buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
