//! Ports of client-go's `internal/locate/region_cache_test.go` against the in-process mock
//! PD (`crate::mock::MockPd`) behind a V1 transactional codec PD client, like client-go's
//! `testRegionCacheSuite`.

use std::sync::Arc;

use tikv_layers::backoff::{Backoffer, SharedBackoffer};
use tikv_layers::locate::{
    EpochNotMatchOutcome, InvalidReason, RegionLocator, StoreResolver, contains, contains_by_end,
};
use tikv_proto::metapb;

use super::*;
use crate::mock::{Clock, Cluster, MockPd};
use crate::pd::{CodecPdClient, KeyMode, KeyRange, RegionInfo};

/// client-go's `testRegionCacheSuite.SetupTest`: two stores, one region, leader on store 1.
struct Suite {
    cluster: Cluster,
    cache: RegionCache,
    store1: u64,
    store2: u64,
    peer1: u64,
    peer2: u64,
    region1: u64,
}

impl Suite {
    fn new() -> Suite {
        let cluster = Cluster::new(Clock::new());
        let (stores, peers, region, _) = cluster.bootstrap_with_multi_stores(2);
        let pd = MockPd::new(cluster.clone(), 1);
        let codec = CodecPdClient::new(Arc::new(pd), KeyMode::TxnV1);
        let cache = RegionCache::new(Arc::new(codec), RegionCacheOptions::default());
        Suite {
            cluster,
            cache,
            store1: stores[0],
            store2: stores[1],
            peer1: peers[0],
            peer2: peers[1],
            region1: region,
        }
    }

    fn bo() -> Backoffer {
        Backoffer::new(LOCATE_BUDGET_MS)
    }

    async fn locate(&self, key: &[u8]) -> Arc<RegionSnapshot> {
        self.cache
            .locate_key_with(&mut Self::bo(), key)
            .await
            .expect("locate")
    }

    async fn locate_end(&self, key: &[u8]) -> Arc<RegionSnapshot> {
        self.cache
            .locate_end_key_with(&mut Self::bo(), key)
            .await
            .expect("locate end")
    }

    fn leader_store(snap: &RegionSnapshot) -> u64 {
        snap.leader().map_or(0, |p| p.store_id)
    }

    /// The first follower's store, seed 0 (client-go's `getAddr` with follower read).
    fn follower_store(snap: &RegionSnapshot) -> u64 {
        snap.tikv_peers
            .iter()
            .enumerate()
            .find(|(i, _)| *i != snap.work_tikv_idx)
            .and_then(|(_, &g)| snap.region.peers.get(g))
            .map_or(0, |p| p.store_id)
    }

    fn split(&self, region: u64, key: &[u8]) -> (u64, u64) {
        let ids = self.cluster.alloc_ids(3);
        let (new_region, p1, p2) = (ids[0], ids[1], ids[2]);
        self.cluster
            .split(region, new_region, key, &[p1, p2], p1)
            .expect("split");
        (new_region, p1)
    }
}

// client-go: T-LOCATE-004 testRegionCacheSuite.TestSimple
#[tokio::test]
async fn simple() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    assert_eq!(r.ver.id, s.region1);
    assert_eq!(Suite::leader_store(&r), s.store1);
    assert_eq!(Suite::follower_store(&r), s.store2);
    assert_eq!(s.cache.test_index_sizes(), (1, 1, 1));
    let cached = s.cache.get_cached(&r.ver).expect("cached");
    cached.set_ttl(0);
    assert!(
        s.cache.try_locate_key(b"a").is_none(),
        "expired region is not served"
    );
    assert!(s.cache.cached_region(&r.ver).is_none());
}

// client-go: T-LOCATE-005 testRegionCacheSuite.TestResolveStateTransition
#[tokio::test]
async fn resolve_state_transition() {
    let s = Suite::new();
    let stores = s.cache.stores().clone();
    let store = stores.get_or_insert(s.store1);
    assert_eq!(store.state(), ResolveState::Unresolved);
    let addr = stores
        .init_resolve(&store, &mut Suite::bo())
        .await
        .expect("resolve");
    assert!(!addr.is_empty());
    assert_eq!(store.state(), ResolveState::Resolved);
    stores.mark_store_need_check(&store);
    assert_eq!(store.state(), ResolveState::NeedCheck);
    stores.check_and_resolve(false).await;
    assert_eq!(store.state(), ResolveState::Resolved);
    // Address change is applied in place.
    s.cluster
        .update_store_labels(s.store1, &[("k", "v")])
        .expect("labels");
    stores.mark_store_need_check(&store);
    stores.check_and_resolve(false).await;
    assert_eq!(store.state(), ResolveState::Resolved);
    assert!(Arc::ptr_eq(
        &store,
        &stores.get(s.store1).expect("same object")
    ));
    assert_eq!(store.snapshot().label_value("k"), Some("v"));
    // Tombstone: epoch bumped, address gone.
    let epoch = store.epoch();
    s.cluster.mark_tombstone(s.store1).expect("tombstone");
    stores.mark_store_need_check(&store);
    stores.check_and_resolve(false).await;
    assert_eq!(store.state(), ResolveState::Tombstone);
    assert_eq!(store.epoch(), epoch + 1);
    // A removed store resolves to no address.
    s.cluster.remove_store(s.store2);
    let gone = stores.get_or_insert(s.store2);
    let addr = stores
        .init_resolve(&gone, &mut Suite::bo())
        .await
        .expect("resolve removed");
    assert!(addr.is_empty());
    assert_eq!(gone.state(), ResolveState::Tombstone);
}

// client-go: T-LOCATE-010 testRegionCacheSuite.TestUpdateLeader
#[tokio::test]
async fn update_leader() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    let follower = metapb::Peer {
        id: s.peer2,
        store_id: s.store2,
        ..Default::default()
    };
    s.cache.update_leader(&r.ver, Some(&follower), 0);
    let r = s.locate(b"a").await;
    assert_eq!(Suite::leader_store(&r), s.store2);
    assert_eq!(Suite::follower_store(&r), s.store1);
    let r = s.locate_end(b"z").await;
    assert_eq!(Suite::leader_store(&r), s.store2);
}

// client-go: T-LOCATE-014 testRegionCacheSuite.TestSendFailedInHibernateRegion
#[tokio::test]
async fn rotate_leader_without_hint() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    assert_eq!(Suite::leader_store(&r), s.store1);
    s.cache.update_leader(&r.ver, None, r.work_tikv_idx);
    let r = s.locate(b"a").await;
    assert_eq!(Suite::leader_store(&r), s.store2);
    s.cache.update_leader(&r.ver, None, r.work_tikv_idx);
    let r = s.locate(b"a").await;
    assert_eq!(
        Suite::leader_store(&r),
        s.store1,
        "wraps back to the first peer"
    );
}

// client-go: T-LOCATE-018 testRegionCacheSuite.TestSplit
#[tokio::test]
async fn split() {
    let s = Suite::new();
    let r = s.locate(b"x").await;
    assert_eq!(r.ver.id, s.region1);
    let (region2, _) = s.split(s.region1, b"m");
    s.cache.invalidate_region(&r.ver, InvalidReason::Other);
    let left = s.locate(b"a").await;
    assert_eq!(left.ver.id, s.region1);
    assert_eq!(left.end_key(), b"m");
    let right = s.locate(b"x").await;
    assert_eq!(right.ver.id, region2);
    assert_eq!(right.start_key(), b"m");
    let end = s.locate_end(b"m").await;
    assert_eq!(end.ver.id, s.region1);
    assert_eq!(Suite::leader_store(&left), s.store1);
}

// client-go: T-LOCATE-019 testRegionCacheSuite.TestMerge
#[tokio::test]
async fn merge() {
    let s = Suite::new();
    let (region2, _) = s.split(s.region1, b"m");
    let r = s.locate(b"x").await;
    assert_eq!(r.ver.id, region2);
    s.cluster.merge(s.region1, region2).expect("merge");
    s.cache.invalidate_region(&r.ver, InvalidReason::Other);
    let merged = s.locate(b"x").await;
    assert_eq!(merged.ver.id, s.region1);
    assert!(merged.start_key().is_empty() && merged.end_key().is_empty());
}

// client-go: T-LOCATE-020 testRegionCacheSuite.TestReconnect
#[tokio::test]
async fn reconnect() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    s.cache.invalidate_region(&r.ver, InvalidReason::Other);
    let again = s.locate(b"a").await;
    assert_eq!(again.ver, r.ver);
    assert_eq!(Suite::leader_store(&again), s.store1);
    assert_eq!(Suite::follower_store(&again), s.store2);
}

// client-go: T-LOCATE-021 testRegionCacheSuite.TestRegionEpochAheadOfTiKV
#[tokio::test(start_paused = true)]
async fn region_epoch_ahead_of_tikv() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    let mut older = (*r.region).clone();
    older.region_epoch = Some(metapb::RegionEpoch {
        conf_ver: r.ver.conf_ver,
        version: r.ver.ver.saturating_sub(1),
    });
    // Cached epoch is ahead: retry after a regionMiss backoff.
    let mut newer = r.ver;
    newer.ver += 1;
    let bo = SharedBackoffer::new(Backoffer::new(2000));
    let out = s
        .cache
        .on_epoch_not_match(bo.clone(), newer, s.store1, vec![older])
        .await
        .expect("epoch");
    assert_eq!(out, EpochNotMatchOutcome::Retry);
    assert_eq!(
        bo.times_of(tikv_layers::backoff::BackoffKind::RegionMiss),
        1
    );
}

// client-go: T-LOCATE-023 testRegionCacheSuite.TestListRegionIDsInCache
#[tokio::test]
async fn list_region_ids() {
    let s = Suite::new();
    let (region2, _) = s.split(s.region1, b"m");
    let ids = s
        .cache
        .list_region_ids_in_key_range(&mut Suite::bo(), b"a", b"z")
        .await
        .expect("ids");
    assert_eq!(ids, vec![s.region1, region2]);
    let ids = s
        .cache
        .list_region_ids_in_key_range(&mut Suite::bo(), b"m", b"z")
        .await
        .expect("ids");
    assert_eq!(ids, vec![region2]);
    let ids = s
        .cache
        .list_region_ids_in_key_range(&mut Suite::bo(), b"a", b"m")
        .await
        .expect("ids");
    assert_eq!(ids, vec![s.region1, region2], "end is inclusive");
}

// client-go: T-LOCATE-024 testRegionCacheSuite.TestScanRegions
#[tokio::test]
async fn scan_regions_skips_leaderless() {
    let s = Suite::new();
    let (r2, _) = s.split(s.region1, b"b");
    let (r3, _) = s.split(r2, b"c");
    let (r4, _) = s.split(r3, b"d");
    let scanned = s
        .cache
        .scan_regions(&mut Suite::bo(), b"", b"", 100)
        .await
        .expect("scan");
    let ids: Vec<u64> = scanned.iter().map(|r| r.ver().id).collect();
    assert_eq!(ids, vec![s.region1, r2, r3, r4]);
    s.cluster.give_up_leader(r3).expect("give up");
    let scanned = s
        .cache
        .scan_regions(&mut Suite::bo(), b"", b"", 100)
        .await
        .expect("scan");
    let ids: Vec<u64> = scanned.iter().map(|r| r.ver().id).collect();
    assert_eq!(ids, vec![s.region1, r2, r4]);
}

// client-go: T-LOCATE-025 testRegionCacheSuite.TestBatchLoadRegions
#[tokio::test]
async fn batch_load_regions() {
    let s = Suite::new();
    let (r2, _) = s.split(s.region1, b"b");
    let (r3, _) = s.split(r2, b"c");
    let (_r4, _) = s.split(r3, b"d");
    let next = s
        .cache
        .batch_load_regions_from_key(&mut Suite::bo(), b"", 2)
        .await
        .expect("load");
    assert_eq!(next, b"c");
    let loaded = s
        .cache
        .batch_load_regions_with_key_range(&mut Suite::bo(), b"b", b"d", 10)
        .await
        .expect("load");
    let ids: Vec<u64> = loaded.iter().map(|r| r.ver.id).collect();
    assert_eq!(ids, vec![r2, r3]);
    assert_eq!(s.cache.region_count(), 3);
}

// client-go: T-LOCATE-030 testRegionCacheSuite.TestContains
#[test]
fn contains_rule() {
    assert!(!contains(b"c", b"e", b"a"));
    assert!(contains(b"c", b"e", b"c"));
    assert!(contains(b"c", b"e", b"d"));
    assert!(!contains(b"c", b"e", b"e"));
    assert!(!contains(b"c", b"e", b"z"));
    assert!(contains(b"", b"e", b""));
    assert!(contains(b"", b"", b"z"));
    assert!(!contains(b"c", b"", b"a"));
    assert!(contains(b"c", b"", b"z"));
}

// client-go: T-LOCATE-031 testRegionCacheSuite.TestContainsByEnd
#[test]
fn contains_by_end_rule() {
    assert!(!contains_by_end(b"c", b"e", b"a"));
    assert!(!contains_by_end(b"c", b"e", b"c"));
    assert!(contains_by_end(b"c", b"e", b"d"));
    assert!(contains_by_end(b"c", b"e", b"e"));
    assert!(!contains_by_end(b"c", b"e", b"z"));
    assert!(contains_by_end(b"", b"e", b"d"));
    assert!(contains_by_end(b"", b"", b""));
    assert!(!contains_by_end(b"c", b"", b"a"));
    assert!(contains_by_end(b"c", b"", b"z"));
}

// client-go: T-LOCATE-032 testRegionCacheSuite.TestSwitchPeerWhenNoLeader
#[tokio::test]
async fn switch_peer_when_no_leader() {
    let s = Suite::new();
    let mut prev = 0;
    for i in 0..4 {
        let r = s.locate(b"a").await;
        let leader = Suite::leader_store(&r);
        if i > 0 {
            assert_ne!(leader, prev, "round {i}");
        }
        prev = leader;
        s.cache.invalidate_region(&r.ver, InvalidReason::NoLeader);
        let cached = s.cache.get_cached(&r.ver).expect("still indexed");
        assert_eq!(cached.invalid_reason(), InvalidReason::NoLeader);
    }
}

// client-go: T-LOCATE-038 testRegionCacheSuite.TestRemoveIntersectingRegions
#[tokio::test]
async fn remove_intersecting_regions() {
    let s = Suite::new();
    let (region2, _) = s.split(s.region1, b"b");
    let r1 = s.locate(b"a").await;
    let r2 = s.locate(b"c").await;
    assert_eq!((r1.ver.id, r2.ver.id), (s.region1, region2));
    s.cluster.merge(s.region1, region2).expect("merge");
    // Loading the merged region by id evicts both pieces.
    let merged = s
        .cache
        .locate_region_by_id_from_pd(&mut Suite::bo(), s.region1)
        .await
        .expect("merged");
    let _ = merged;
    s.cache.invalidate_region(&r1.ver, InvalidReason::Other);
    let m = s.locate(b"a").await;
    assert!(m.end_key().is_empty());
    assert_eq!(
        s.cache.test_index_sizes().0,
        1,
        "the right piece was evicted"
    );
    let c = s.locate(b"c").await;
    assert_eq!(c.ver, m.ver);
}

/// client-go's `testSplitThenLocateKey`: after a split, a marked cached region is not
/// served, and locating reloads the post-split regions.
async fn split_then_locate_key(mark: impl FnOnce(&Suite, &Arc<Region>)) {
    let s = Suite::new();
    let k = b"k";
    s.cache
        .locate_region_by_id_with(&mut Suite::bo(), s.region1)
        .await
        .expect("by id");
    let r1 = s.cache.search_cached(k, false).expect("cached");
    let _ = s.split(s.region1, k);
    mark(&s, &r1);
    let start = r1.snapshot().start_key().to_vec();
    assert!(s.cache.try_locate_key(&start).is_none());
    assert!(s.cache.try_locate_key(k).is_none());
    let loc1 = s.locate(&start).await;
    assert!(!loc1.contains(k));
    let loc2 = s.locate(k).await;
    assert!(loc2.contains(k));
}

// client-go: T-LOCATE-046 testRegionCacheSuite.TestSplitThenLocateInvalidRegion
#[tokio::test]
async fn split_then_locate_invalid_region() {
    split_then_locate_key(|_, r| r.invalidate(InvalidReason::Other)).await;
}

// client-go: T-LOCATE-047 testRegionCacheSuite.TestSplitThenLocateRegionNeedReloadOnAccess
#[tokio::test]
async fn split_then_locate_need_reload_on_access() {
    split_then_locate_key(|_, r| r.set_flags(NEED_RELOAD_ON_ACCESS)).await;
}

// client-go: T-LOCATE-048 testRegionCacheSuite.TestSplitThenLocateRegionNeedDelayedReload
#[tokio::test]
async fn split_then_locate_need_delayed_reload() {
    split_then_locate_key(|_, r| r.set_flags(NEED_DELAYED_RELOAD_READY)).await;
}

// client-go: T-LOCATE-053 testRegionCacheWithDelaySuite.TestInsertStaleRegion
#[tokio::test]
async fn insert_stale_region() {
    let s = Suite::new();
    let old = s.locate(b"a").await;
    let (region2, _) = s.split(s.region1, b"m");
    s.cache.invalidate_region(&old.ver, InvalidReason::Other);
    let a = s.locate(b"a").await;
    let x = s.locate(b"x").await;
    // Re-inserting the pre-split region is rejected.
    let stale = RegionInfo {
        region: (*old.region).clone(),
        leader: old.leader().cloned(),
        ..RegionInfo::default()
    };
    assert!(!s.cache.insert_region(stale, true).expect("insert"));
    assert_eq!(s.locate(b"a").await.ver, a.ver);
    assert_eq!(s.locate(b"x").await.ver.id, region2);
    assert_eq!(x.ver.id, region2);
}

// client-go: T-LOCATE-060 testRegionCacheSuite.TestRangesAreCoveredCheck
#[test]
fn ranges_are_covered_check() {
    let region = |s: &[u8], e: &[u8]| RegionInfo {
        region: metapb::Region {
            start_key: s.to_vec(),
            end_key: e.to_vec(),
            ..Default::default()
        },
        ..RegionInfo::default()
    };
    let r = |s: &[u8], e: &[u8]| KeyRange::new(s, e);
    // Bounded, covered.
    assert!(!regions_have_gap(
        &[r(b"a", b"c")],
        &[region(b"a", b"b"), region(b"b", b"c")],
        0
    ));
    // Gap in the middle.
    assert!(regions_have_gap(
        &[r(b"a", b"c")],
        &[region(b"a", b"b"), region(b"bb", b"c")],
        0
    ));
    // Not reaching the end.
    assert!(regions_have_gap(&[r(b"a", b"c")], &[region(b"a", b"b")], 0));
    // ...unless the limit was hit.
    assert!(!regions_have_gap(
        &[r(b"a", b"c")],
        &[region(b"a", b"b")],
        1
    ));
    // Non-continuous ranges.
    assert!(!regions_have_gap(
        &[r(b"a", b"b"), r(b"d", b"e")],
        &[region(b"a", b"b"), region(b"c", b"f")],
        0
    ));
    assert!(regions_have_gap(
        &[r(b"a", b"b"), r(b"d", b"e")],
        &[region(b"a", b"b"), region(b"e", b"f")],
        0
    ));
    // Unbounded.
    assert!(!regions_have_gap(&[r(b"a", b"")], &[region(b"", b"")], 0));
    assert!(regions_have_gap(&[r(b"a", b"")], &[region(b"a", b"z")], 0));
    assert!(regions_have_gap(&[r(b"a", b"")], &[], 0));
}

// client-go: T-LOCATE-067 testRegionCacheSuite.TestLocateRegionByIDFromPD
#[tokio::test]
async fn locate_region_by_id_from_pd() {
    let s = Suite::new();
    let (region2, _) = s.split(s.region1, b"m");
    let r = s
        .cache
        .locate_region_by_id_from_pd(&mut Suite::bo(), region2)
        .await
        .expect("from pd");
    assert_eq!(r.ver.id, region2);
    assert_eq!(s.cache.region_count(), 0, "not cached");
    let r = s
        .cache
        .locate_region_by_id_with(&mut Suite::bo(), region2)
        .await
        .expect("by id");
    assert_eq!(r.ver.id, region2);
    assert_eq!(s.cache.region_count(), 1, "cached");
}

// client-go: T-LOCATE-003 testRegionCacheSuite.TestStoreLabels
#[tokio::test]
async fn store_labels() {
    let s = Suite::new();
    for id in [s.store1, s.store2] {
        let snap = s.cache.stores().resolve_store(id).await.expect("resolve");
        let want = snap.labels.clone();
        let matched = s
            .cache
            .stores()
            .filter(|st| st.snapshot().is_labels_match(&want));
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].id(), id);
    }
}

#[tokio::test]
async fn lookups_share_snapshots() {
    let s = Suite::new();
    let a = s.locate(b"a").await;
    let b = s.cache.try_locate_key(b"b").expect("cached");
    assert!(Arc::ptr_eq(&a, &b), "no copy per lookup");
    let _ = (s.peer1, s.peer2);
    // Bucket lookup falls back to the region range without buckets.
    assert_eq!(
        RegionCache::locate_bucket(&a, b"a"),
        Some((Vec::new(), Vec::new()))
    );
}

// ----- store health and liveness through the region cache (HS-3, SC-10) -----

/// The store's labels as the mock cluster's `(key, value)` pairs.
fn label_pairs(snap: &tikv_layers::locate::StoreSnapshot) -> Vec<(String, String)> {
    snap.labels
        .iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect()
}

fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A liveness answer tests flip, for one store; every other store is reachable (the
/// scripted `setMockRequestLiveness` of client-go's tests).
fn scripted_prober(
    store: u64,
    answer: Arc<std::sync::atomic::AtomicU8>,
) -> Arc<dyn crate::store_cache::LivenessProber> {
    use std::sync::atomic::Ordering;
    Arc::new(crate::store_cache::FnProber(
        move |t: &crate::store_cache::ProbeTarget| {
            if t.store_id == store {
                Liveness::from_u8(answer.load(Ordering::SeqCst))
            } else {
                Liveness::Reachable
            }
        },
    ))
}

/// Client-go's `Eventually(cond, 3s, 1s)` under paused time.
async fn eventually_within_3s(cond: impl Fn() -> bool) -> bool {
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if cond() {
            return true;
        }
    }
    false
}

use tikv_layers::locate::Liveness;

// client-go: T-LOCATE-045 testRegionCacheSuite.TestRegionCacheHandleHealthStatus
#[tokio::test(start_paused = true)]
async fn region_cache_handle_health_status() {
    use tikv_proto::kvrpcpb::HealthFeedback;
    let s = Suite::new();
    s.locate(b"k").await;
    let stores = s.cache.stores();
    let store1 = stores.get(s.store1).expect("store1");
    assert!(!store1.health().is_slow());
    let feedback = |seq, score| HealthFeedback {
        store_id: s.store1,
        feedback_seq_no: seq,
        slow_score: score,
    };
    let a_second_ago = || {
        tokio::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(1))
            .expect("instant")
    };

    stores.on_health_feedback(&feedback(1, 100));
    assert!(store1.health().is_slow());
    assert_eq!(store1.health().detail().tikv_side_slow_score, 100);

    // Too soon after the previous update: ignored.
    stores.on_health_feedback(&feedback(2, 90));
    assert_eq!(store1.health().detail().tikv_side_slow_score, 100);

    store1.health().set_tikv_last_update(a_second_ago());
    stores.on_health_feedback(&feedback(3, 90));
    assert_eq!(store1.health().detail().tikv_side_slow_score, 90);

    store1.health().set_tikv_last_update(a_second_ago());
    stores.on_health_feedback(&feedback(4, 50));
    assert!(!store1.health().is_slow());
    assert_eq!(store1.health().detail().tikv_side_slow_score, 50);

    // Store 2 is never affected by store 1's feedback.
    let store2 = stores.get(s.store2).expect("store2");
    assert!(store2.health().detail().tikv_side_slow_score <= 1);
    assert!(!store2.health().is_slow());
}

// client-go: T-LOCATE-042 testRegionCacheSuite.TestHealthCheckWithAddressChange
#[tokio::test(start_paused = true)]
async fn health_check_with_address_change() {
    use std::sync::atomic::{AtomicU8, Ordering};
    let s = Suite::new();
    s.locate(b"a").await;
    let stores = s.cache.stores().clone();
    let store1 = stores.get(s.store1).expect("store1");
    assert_eq!(store1.state(), ResolveState::Resolved);

    let store1_liveness = Arc::new(AtomicU8::new(Liveness::Unreachable as u8));
    stores.set_prober(scripted_prober(s.store1, store1_liveness.clone()));

    stores.set_liveness(s.store1, Liveness::Unreachable);
    stores.start_health_check_loop(store1.clone(), std::time::Duration::from_secs(1));

    let new_addr = format!("{}0", store1.snapshot().addr);
    let labels = label_pairs(&store1.snapshot());
    s.cluster
        .update_store_addr(s.store1, &new_addr, &as_refs(&labels))
        .expect("update addr");

    let again = stores.get(s.store1).expect("store1");
    assert!(Arc::ptr_eq(&store1, &again), "the same store object");
    assert_ne!(store1.liveness(), Liveness::Reachable);

    store1_liveness.store(Liveness::Reachable as u8, Ordering::SeqCst);
    assert!(
        eventually_within_3s(|| store1.state() == ResolveState::Resolved
            && store1.liveness() == Liveness::Reachable
            && store1.snapshot().addr == new_addr)
        .await
    );
}

// client-go: T-LOCATE-062 testRegionCacheSuite.TestIssue1401
#[tokio::test(start_paused = true)]
async fn issue_1401_unreachable_store_with_new_labels() {
    let s = Suite::new();
    s.locate(b"a").await;
    let stores = s.cache.stores().clone();
    let store1 = stores.get(s.store1).expect("store1");
    assert_eq!(store1.state(), ResolveState::Resolved);

    let mut labels = label_pairs(&store1.snapshot());
    labels.push(("host".into(), "0.0.0.0:20161".into()));
    s.cluster
        .update_store_addr(s.store1, &store1.snapshot().addr, &as_refs(&labels))
        .expect("update labels");

    // Unreachable and waiting for a re-resolve.
    stores.set_liveness(s.store1, Liveness::Unreachable);
    stores.mark_store_need_check(&store1);
    assert_eq!(store1.state(), ResolveState::NeedCheck);

    stores.set_prober(Arc::new(crate::store_cache::FnProber(|_: &_| {
        Liveness::Reachable
    })));
    stores.start_health_check_loop(store1.clone(), std::time::Duration::from_secs(30));

    // What the re-resolve loop does on a need-check event.
    stores.check_and_resolve(false).await;

    let again = stores.get(s.store1).expect("store1");
    assert!(Arc::ptr_eq(&store1, &again), "the same store object");
    assert!(
        eventually_within_3s(
            || store1.state() == ResolveState::Resolved && store1.liveness() == Liveness::Reachable
        )
        .await
    );
    assert_eq!(again.snapshot().label_value("host"), Some("0.0.0.0:20161"));
}

// client-go: T-LOCATE-063 testRegionCacheSuite.TestStoreRestartWithNewLabels
#[tokio::test(start_paused = true)]
async fn store_restart_with_new_labels() {
    use std::sync::atomic::{AtomicU8, Ordering};
    use tikv_layers::CmdType;
    use tikv_layers::replica::{
        ReadFlags, RegionServices, ReplicaSelector, SelectorConfig, SelectorOptions,
    };
    use tikv_layers::request::ReplicaReadType;

    let s = Suite::new();
    let loc = s.locate(b"a").await;
    let stores = s.cache.stores().clone();
    let store1 = stores.get(s.store1).expect("store1");
    assert_eq!(store1.state(), ResolveState::Resolved);

    // Up, then down.
    stores.set_liveness(s.store1, Liveness::Reachable);
    assert_eq!(store1.liveness(), Liveness::Reachable);
    let store1_liveness = Arc::new(AtomicU8::new(Liveness::Unreachable as u8));
    stores.set_prober(scripted_prober(s.store1, store1_liveness.clone()));
    stores.set_liveness(s.store1, Liveness::Unreachable);
    assert_eq!(store1.liveness(), Liveness::Unreachable);
    stores.start_health_check_loop(store1.clone(), std::time::Duration::from_secs(1));

    // A selector built while the store is down.
    let svc = RegionServices {
        locator: Arc::new(s.cache.clone()),
        stores: Arc::new(stores.clone()),
    };
    let flags = ReadFlags {
        replica_read: false,
        stale_read: false,
        busy_threshold_ms: 0,
        read_type: ReplicaReadType::Leader,
    };
    let selector = ReplicaSelector::new(
        svc.clone(),
        loc.ver,
        CmdType::Get,
        flags,
        SelectorOptions::default(),
        SelectorConfig::default(),
    )
    .expect("selector");
    let replica = selector
        .replicas()
        .iter()
        .find(|r| r.peer.store_id == s.store1)
        .expect("replica on store 1");
    assert_eq!(
        svc.stores.liveness(replica.peer.store_id),
        Liveness::Unreachable
    );

    // The store restarts at the same address with a new label.
    let mut labels = label_pairs(&store1.snapshot());
    labels.push(("zone".into(), "zone1".into()));
    s.cluster
        .update_store_addr(s.store1, &store1.snapshot().addr, &as_refs(&labels))
        .expect("update labels");
    store1_liveness.store(Liveness::Reachable as u8, Ordering::SeqCst);
    stores.mark_store_need_check(&store1);
    stores.check_and_resolve(false).await;
    assert_eq!(store1.state(), ResolveState::Resolved);
    assert_eq!(store1.snapshot().label_value("zone"), Some("zone1"));
    assert!(eventually_within_3s(|| store1.liveness() == Liveness::Reachable).await);

    // The selector's replica still names the same store object, now reachable.
    assert!(Arc::ptr_eq(
        &store1,
        &stores.get(replica.peer.store_id).expect("store1")
    ));
    assert_eq!(
        svc.stores.liveness(replica.peer.store_id),
        Liveness::Reachable
    );
}

// ----- hooks the replica selector uses (RS-1, RS-15, RS-20) -----

#[tokio::test]
async fn invalidated_region_stays_visible_to_its_selector() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    assert_eq!(Suite::leader_store(&r), s.store1);
    s.cache.invalidate_region(&r.ver, InvalidReason::Other);
    assert!(s.cache.cached_region(&r.ver).is_none(), "invalid");
    let any = s.cache.cached_region_any(&r.ver).expect("still cached");
    assert_eq!(any.ver, r.ver);

    // A leader switch after the invalidation is visible through the same version.
    let follower = *any
        .region
        .peers
        .iter()
        .find(|p| p.store_id == s.store2)
        .expect("follower");
    assert!(s.cache.switch_leader(&r.ver, &follower));
    let any = s.cache.cached_region_any(&r.ver).expect("still cached");
    assert_eq!(Suite::leader_store(&any), s.store2);
    assert_eq!(
        any.tikv_peers[any.work_tikv_idx],
        any.region
            .peers
            .iter()
            .position(|p| p.id == follower.id)
            .expect("pos")
    );

    // A reload with the same epoch replaces the object under the same version, valid again
    // and led by PD's leader.
    let fresh = s.locate(b"a").await;
    assert_eq!(fresh.ver, r.ver);
    let now = s.cache.cached_region(&r.ver).expect("valid again");
    assert_eq!(Suite::leader_store(&now), s.store1);
}

#[tokio::test]
async fn proxy_index_lives_with_the_region_object() {
    let s = Suite::new();
    let r = s.locate(b"a").await;
    assert_eq!(s.cache.proxy_idx(&r.ver), None);
    s.cache.set_proxy_idx(&r.ver, Some(1));
    assert_eq!(s.cache.proxy_idx(&r.ver), Some(1));

    // Leader switches and invalidation keep it (it belongs to the region object).
    let follower = *r
        .region
        .peers
        .iter()
        .find(|p| p.store_id == s.store2)
        .expect("follower");
    assert!(s.cache.switch_leader(&r.ver, &follower));
    assert_eq!(s.cache.proxy_idx(&r.ver), Some(1));
    s.cache.invalidate_region(&r.ver, InvalidReason::Other);
    assert_eq!(s.cache.proxy_idx(&r.ver), Some(1));
    s.cache.set_proxy_idx(&r.ver, None);
    assert_eq!(s.cache.proxy_idx(&r.ver), None);
    s.cache.set_proxy_idx(&r.ver, Some(0));

    // A reloaded region starts without a proxy (client-go's `newRegion`: -1).
    s.locate(b"a").await;
    assert_eq!(s.cache.proxy_idx(&r.ver), None);

    // Unknown versions: nothing remembered, nothing set.
    let unknown = RegionVerId {
        id: 12345,
        conf_ver: 1,
        ver: 1,
    };
    s.cache.set_proxy_idx(&unknown, Some(1));
    assert_eq!(s.cache.proxy_idx(&unknown), None);
    assert!(s.cache.cached_region_any(&unknown).is_none());
}
