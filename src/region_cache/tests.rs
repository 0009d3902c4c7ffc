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
use tikv_layers::ReplicaReadType;

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

// ---------------------------------------------------------------------------------------
// Selector-less routing (GetTiKVRPCContext / OnSendFail, RC-40, RC-48).
// ---------------------------------------------------------------------------------------

impl Suite {
    /// client-go's three-store variant: a third store with a peer of region 1, leader on
    /// peer 1. Returns `(store3, peer3)`.
    fn add_third_peer(&self) -> (u64, u64) {
        let store3 = self.cluster.alloc_id();
        let peer3 = self.cluster.alloc_id();
        self.cluster
            .add_store(store3, &format!("store{store3}"), &[]);
        self.cluster
            .add_peer(self.region1, store3, peer3)
            .expect("add peer");
        self.cluster
            .change_leader(self.region1, self.peer1)
            .expect("leader");
        (store3, peer3)
    }

    /// `GetTiKVRPCContext` with no selector options.
    async fn rpc_ctx(
        &self,
        ver: &RegionVerId,
        read: ReplicaReadType,
        seed: u32,
    ) -> Option<RpcContext> {
        self.rpc_ctx_with(ver, read, seed, &StoreSelectorOptions::default())
            .await
    }

    async fn rpc_ctx_with(
        &self,
        ver: &RegionVerId,
        read: ReplicaReadType,
        seed: u32,
        op: &StoreSelectorOptions,
    ) -> Option<RpcContext> {
        self.cache
            .get_tikv_rpc_context(&mut Self::bo(), ver, read, seed, op)
            .await
            .expect("rpc context")
    }

    /// The peer id of `GetTiKVRPCContext`'s answer (which must exist).
    async fn ctx_peer(&self, ver: &RegionVerId, read: ReplicaReadType, seed: u32) -> u64 {
        self.rpc_ctx(ver, read, seed)
            .await
            .expect("context")
            .peer
            .id
    }

    /// client-go's `getAddr`: locate `key`, then the context's address ("" when none).
    async fn addr(&self, key: &[u8], read: ReplicaReadType, seed: u32) -> String {
        let loc = self.locate(key).await;
        self.rpc_ctx(&loc.ver, read, seed)
            .await
            .map(|c| c.addr)
            .unwrap_or_default()
    }

    fn store_addr(&self, store: u64) -> String {
        self.cluster.get_store(store).expect("store").address
    }

    /// Asserts the follower picked by `seed` is `even` for an even seed, `odd` otherwise
    /// (client-go's `if seed%2 == 0` pattern over two candidate followers).
    async fn assert_follower_by_parity(&self, ver: &RegionVerId, seed: u32, even: u64, odd: u64) {
        let got = self.ctx_peer(ver, ReplicaReadType::Follower, seed).await;
        let want = if seed.is_multiple_of(2) { even } else { odd };
        assert_eq!(got, want, "seed {seed}");
    }
}

fn random_seed() -> u32 {
    rand::random::<u32>()
}

// client-go: T-LOCATE-011 testRegionCacheSuite.TestUpdateLeader2
#[tokio::test]
async fn update_leader_to_unknown_store() {
    let s = Suite::new();
    let seed = random_seed();
    let loc = s.locate(b"a").await;
    // A new store 3 becomes leader; the cache does not know it yet.
    let store3 = s.cluster.alloc_id();
    let peer3 = s.cluster.alloc_id();
    s.cluster.add_store(store3, &format!("store{store3}"), &[]);
    s.cluster.add_peer(s.region1, store3, peer3).expect("peer");
    let hint = metapb::Peer {
        id: peer3,
        store_id: store3,
        ..Default::default()
    };
    s.cache.update_leader(&loc.ver, Some(&hint), 0);

    // The unknown store forces a reload from PD, which still names peer 1.
    let r = s.locate(b"a").await;
    assert_eq!(r.ver.id, s.region1);
    assert_eq!(
        s.addr(b"a", ReplicaReadType::Leader, 0).await,
        s.store_addr(s.store1)
    );
    let pick = |seed: u32, even: u64, odd: u64| if seed.is_multiple_of(2) { even } else { odd };
    let follower = s.addr(b"a", ReplicaReadType::Follower, seed).await;
    assert_eq!(follower, s.store_addr(pick(seed, s.store2, store3)));
    let follower2 = s
        .addr(b"a", ReplicaReadType::Follower, seed.wrapping_add(1))
        .await;
    assert_eq!(
        follower2,
        s.store_addr(pick(seed.wrapping_add(1), s.store2, store3))
    );
    assert_ne!(follower, follower2);

    // PD learns the new leader; the next hint switches to it.
    s.cluster.change_leader(s.region1, peer3).expect("leader");
    s.cache.update_leader(&r.ver, Some(&hint), 0);
    let r = s.locate(b"a").await;
    assert_eq!(r.ver.id, s.region1);
    assert_eq!(
        s.addr(b"a", ReplicaReadType::Leader, 0).await,
        s.store_addr(store3)
    );
    let follower = s.addr(b"a", ReplicaReadType::Follower, seed).await;
    assert_eq!(follower, s.store_addr(pick(seed, s.store1, s.store2)));
    let follower2 = s
        .addr(b"a", ReplicaReadType::Follower, seed.wrapping_add(1))
        .await;
    assert_eq!(
        follower2,
        s.store_addr(pick(seed.wrapping_add(1), s.store1, s.store2))
    );
    assert_ne!(follower, follower2);
}

// client-go: T-LOCATE-012 testRegionCacheSuite.TestUpdateLeader3
#[tokio::test]
async fn update_leader_to_removed_store() {
    let s = Suite::new();
    let seed = random_seed();
    let loc = s.locate(b"a").await;
    let store2_addr = s.store_addr(s.store2);
    // Store 2 becomes leader, then is removed; a new store 3 takes over.
    s.cluster.change_leader(s.region1, s.peer2).expect("leader");
    s.cluster.remove_store(s.store2);
    let store3 = s.cluster.alloc_id();
    let peer3 = s.cluster.alloc_id();
    s.cluster.add_store(store3, &format!("store{store3}"), &[]);
    s.cluster.add_peer(s.region1, store3, peer3).expect("peer");
    s.cluster.change_leader(s.region1, peer3).expect("leader");
    // TiKV answers NotLeader naming store 2.
    let hint = metapb::Peer {
        id: s.peer2,
        store_id: s.store2,
        ..Default::default()
    };
    s.cache.update_leader(&loc.ver, Some(&hint), 0);

    let r = s.locate(b"a").await;
    assert_eq!(r.ver.id, s.region1);
    let loc = s.locate(b"a").await;
    // The stale, still resolved address of store 2 is tried and the send fails.
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, seed)
        .await
        .expect("context");
    assert_eq!(ctx.addr, store2_addr);
    s.cache.on_send_fail(&ctx, false, true);
    s.cache.stores().check_and_resolve(true).await;
    s.cache.update_leader(&loc.ver, Some(&hint), 0);
    assert_eq!(s.addr(b"a", ReplicaReadType::Leader, 0).await, "");
    assert_eq!(
        s.addr(b"a", ReplicaReadType::Leader, 0).await,
        s.store_addr(store3)
    );
    let addr = s.addr(b"a", ReplicaReadType::Follower, seed).await;
    let addr2 = s
        .addr(b"a", ReplicaReadType::Follower, seed.wrapping_add(1))
        .await;
    assert_ne!(addr, s.store_addr(store3));
    assert_ne!(addr2, s.store_addr(store3));
}

// client-go: T-LOCATE-013 testRegionCacheSuite.TestSendFailedButLeaderNotChange
#[tokio::test]
async fn send_failed_but_leader_not_change() {
    let s = Suite::new();
    let (_, peer3) = s.add_third_peer();
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer1);
    assert_eq!(ctx.meta.peers.len(), 3);

    let seed = random_seed();
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;

    // A send failure moves leader reads to peer 2.
    s.cache.on_send_fail(&ctx, false, false);
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer2);
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer1, peer3)
        .await;

    // Peer 1 answers NotLeader naming peer 2: the leader stays peer 2.
    let hint = metapb::Peer {
        id: s.peer2,
        store_id: s.store2,
        ..Default::default()
    };
    s.cache.update_leader(&loc.ver, Some(&hint), ctx.access_idx);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Leader, 0).await,
        s.peer2
    );
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer1, peer3)
        .await;
}

// client-go: T-LOCATE-014 testRegionCacheSuite.TestSendFailedInHibernateRegion
#[tokio::test]
async fn send_failed_in_hibernate_region() {
    let s = Suite::new();
    let (_, peer3) = s.add_third_peer();
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer1);
    assert_eq!(ctx.meta.peers.len(), 3);
    let seed = random_seed();
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;

    s.cache.on_send_fail(&ctx, false, false);
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer2);
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer1, peer3)
        .await;

    // Peer 2 is hibernating and names no leader: move on to peer 3.
    s.cache.update_leader(&loc.ver, None, ctx.access_idx);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Leader, 0).await,
        peer3
    );
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, s.peer2)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, s.peer2)
        .await;

    // And once more: back to peer 1.
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    s.cache.update_leader(&loc.ver, None, ctx.access_idx);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Leader, 0).await,
        s.peer1
    );
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer2, peer3)
        .await;
}

// client-go: T-LOCATE-015 testRegionCacheSuite.TestSendFailInvalidateRegionsInSameStore
#[tokio::test]
async fn send_fail_invalidates_regions_in_same_store() {
    let s = Suite::new();
    // ['' - 'm' - 'z']
    let (region2, _) = s.split(s.region1, b"m");
    let loc1 = s.locate(b"a").await;
    assert_eq!(loc1.ver.id, s.region1);
    let loc2 = s.locate(b"x").await;
    assert_eq!(loc2.ver.id, region2);

    let ctx = s
        .rpc_ctx(&loc1.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(s.cache.test_index_sizes(), (2, 2, 2));
    s.cache.on_send_fail(&ctx, false, true);
    // Region 2 is led from the same store: no context until it is reloaded.
    assert!(
        s.rpc_ctx(&loc2.ver, ReplicaReadType::Leader, 0)
            .await
            .is_none()
    );
}

// client-go: T-LOCATE-016 testRegionCacheSuite.TestSendFailedInMultipleNode
#[tokio::test]
async fn send_failed_in_multiple_node() {
    let s = Suite::new();
    let (_, peer3) = s.add_third_peer();
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer1);
    assert_eq!(ctx.meta.peers.len(), 3);
    let seed = random_seed();
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;

    // Failure on 1: leader reads go to 2.
    s.cache.on_send_fail(&ctx, false, false);
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer2);
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer1, peer3)
        .await;

    // Failure on 2: leader reads go to 3.
    s.cache.on_send_fail(&ctx, false, false);
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, peer3);
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, s.peer2)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed, s.peer1, s.peer2)
        .await;

    // Peer 3 answers NotLeader naming peer 1.
    let hint = metapb::Peer {
        id: s.peer1,
        store_id: s.store1,
        ..Default::default()
    };
    s.cache.update_leader(&loc.ver, Some(&hint), ctx.access_idx);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Leader, 0).await,
        s.peer1
    );
    s.assert_follower_by_parity(&loc.ver, seed, s.peer2, peer3)
        .await;
    s.assert_follower_by_parity(&loc.ver, seed.wrapping_add(1), s.peer2, peer3)
        .await;
}

// client-go: T-LOCATE-017 testRegionCacheSuite.TestLabelSelectorTiKVPeer
#[tokio::test]
async fn label_selector_tikv_peer() {
    let s = Suite::new();
    let label = |zone: &str| metapb::StoreLabel {
        key: "zone".into(),
        value: zone.into(),
    };
    s.cluster
        .update_store_labels(s.store1, &[("zone", "dc-1")])
        .expect("labels");
    s.cluster
        .update_store_labels(s.store2, &[("zone", "dc-2")])
        .expect("labels");
    let store3 = s.cluster.alloc_id();
    let peer3 = s.cluster.alloc_id();
    s.cluster.add_store(store3, &format!("store{store3}"), &[]);
    s.cluster.add_peer(s.region1, store3, peer3).expect("peer");
    s.cluster
        .update_store_labels(store3, &[("zone", "dc-1")])
        .expect("labels");
    // Three peers: the leader in dc-1, followers in dc-1 and dc-2.
    let loc = s.locate(b"a").await;
    let seed = random_seed();
    let cases: [(&str, ReplicaReadType, &str, Vec<u64>); 5] = [
        (
            "any peer, located in dc-1",
            ReplicaReadType::Mixed,
            "dc-1",
            vec![s.store1, store3],
        ),
        (
            "any peer, located in dc-2",
            ReplicaReadType::Mixed,
            "dc-2",
            vec![s.store2],
        ),
        (
            "only follower, located in dc-1",
            ReplicaReadType::Follower,
            "dc-1",
            vec![store3],
        ),
        (
            "only leader, labels ignored",
            ReplicaReadType::Leader,
            "dc-2",
            vec![s.store1],
        ),
        (
            "no label matching, fallback to leader",
            ReplicaReadType::Mixed,
            "dc-3",
            vec![s.store1],
        ),
    ];
    for (name, read, zone, want) in cases {
        let op = StoreSelectorOptions {
            labels: vec![label(zone)],
            ..StoreSelectorOptions::default()
        };
        let ctx = s
            .rpc_ctx_with(&loc.ver, read, seed, &op)
            .await
            .expect("context");
        assert!(want.contains(&ctx.store_id), "{name}: got {}", ctx.store_id);
    }
}

// client-go: T-LOCATE-026 testRegionCacheSuite.TestFollowerReadFallback
#[tokio::test]
async fn follower_read_fallback() {
    let s = Suite::new();
    let (_, peer3) = s.add_third_peer();
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer1);
    assert_eq!(ctx.meta.peers.len(), 3);
    let f1 = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Follower, 0)
        .await
        .expect("context");
    assert_eq!(f1.peer.id, s.peer2);
    let f2 = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Follower, 1)
        .await
        .expect("context");
    assert_eq!(f2.peer.id, peer3);
    assert_ne!(f1.peer.id, f2.peer.id);
    // A send failure on store 2: the same seed falls back to store 3.
    s.cache.on_send_fail(&f1, false, true);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Follower, 0).await,
        peer3
    );
}

// client-go: T-LOCATE-027 testRegionCacheSuite.TestMixedReadFallback
#[tokio::test]
async fn mixed_read_fallback() {
    let s = Suite::new();
    let (_, peer3) = s.add_third_peer();
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.id, s.peer1);
    assert_eq!(ctx.meta.peers.len(), 3);
    let m1 = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Mixed, 0)
        .await
        .expect("context");
    assert_eq!(m1.peer.id, s.peer1);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Mixed, 1).await,
        s.peer2
    );
    assert_eq!(s.ctx_peer(&loc.ver, ReplicaReadType::Mixed, 2).await, peer3);
    // A send failure on the leader: the same seed moves to the next peer.
    s.cache.on_send_fail(&m1, false, true);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Mixed, 0).await,
        s.peer2
    );
}

/// The shared body of `TestPeersLenChange` / `TestPeersLenChangedByWitness`: peer 2 leads,
/// then a region with one peer fewer (built by `shrink`) replaces the cached one between
/// the context and the send failure; reporting the failure must neither panic nor act.
async fn peers_len_change(shrink: impl FnOnce(&Suite, &RpcContext) -> RegionInfo) {
    let s = Suite::new();
    let loc = s.locate(b"a").await;
    let hint = metapb::Peer {
        id: s.peer2,
        store_id: s.store2,
        ..Default::default()
    };
    s.cache.update_leader(&loc.ver, Some(&hint), 0);
    let loc = s.locate(b"a").await;
    let ctx = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_eq!(ctx.peer.store_id, s.store2);

    let info = shrink(&s, &ctx);
    let region = s
        .cache
        .new_region(&mut Suite::bo(), info)
        .await
        .expect("new region");
    assert_eq!(region.snapshot().region.peers.len(), 1);
    assert!(s.cache.write().insert(region, true));

    let epoch = s.cache.stores().get(s.store2).expect("store").epoch();
    // Must not panic, and must not act on a context whose peers no longer match.
    s.cache.on_send_fail(&ctx, false, true);
    assert_eq!(
        s.cache.stores().get(s.store2).expect("store").epoch(),
        epoch
    );
}

// client-go: T-LOCATE-028 testRegionCacheSuite.TestPeersLenChange
#[tokio::test]
async fn peers_len_change_by_down_peer() {
    peers_len_change(|s, ctx| RegionInfo {
        region: (*ctx.meta).clone(),
        down_peers: vec![tikv_proto::pdpb::PeerStats {
            peer: Some(metapb::Peer {
                id: s.peer1,
                store_id: s.store1,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..RegionInfo::default()
    })
    .await;
}

// client-go: T-LOCATE-029 testRegionCacheSuite.TestPeersLenChangedByWitness
#[tokio::test]
async fn peers_len_changed_by_witness() {
    peers_len_change(|s, ctx| {
        let mut meta = (*ctx.meta).clone();
        for p in &mut meta.peers {
            if p.id == s.peer1 {
                p.is_witness = true;
            }
        }
        RegionInfo {
            region: meta,
            ..RegionInfo::default()
        }
    })
    .await;
}

// client-go: T-LOCATE-009 testRegionCacheSuite.TestFilterDownPeersOrPeersOnTombstoneOrDroppedStores
#[tokio::test(start_paused = true)]
async fn filter_peers_on_tombstone_or_dropped_stores() {
    let s = Suite::new();
    let key = b"a";
    let bo = || Backoffer::new(100);
    let find = |s: &Suite| {
        let cache = s.cache.clone();
        async move { cache.find_region_by_key(&mut bo(), key, false).await }
    };
    async fn verify_ctx(s: &Suite, meta: &metapb::Region) {
        let loc = s.locate(b"a").await;
        let leader = s
            .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
            .await
            .expect("leader context");
        assert_eq!(*leader.meta, *meta);
        let follower = s
            .rpc_ctx(&loc.ver, ReplicaReadType::Follower, random_seed())
            .await
            .expect("follower context");
        assert_eq!(*follower.meta, *meta);
    }
    let peers_match_stores = |r: &Region| {
        let snap = r.snapshot();
        snap.region.peers.len() == snap.store_epochs.len()
    };

    // All peers normal: every peer is cached.
    let reg = find(&s).await.expect("region");
    let (in_pd, _) = s.cluster.get_region(reg.ver.id).expect("pd region");
    assert_eq!(*reg.snapshot().region, in_pd);
    assert!(peers_match_stores(&reg));
    verify_ctx(&s, &reg.snapshot().region).await;
    assert_eq!(s.cache.test_index_sizes(), (1, 1, 1));
    s.cache.clear();

    // The peer on a tombstone store is left out.
    s.cluster.mark_tombstone(s.store1).expect("tombstone");
    let reg = find(&s).await.expect("region");
    let snap = reg.snapshot();
    assert_eq!(snap.region.peers.len(), in_pd.peers.len() - 1);
    assert!(peers_match_stores(&reg));
    assert!(snap.region.peers.iter().all(|p| p.store_id != s.store1));
    verify_ctx(&s, &snap.region).await;
    assert_eq!(s.cache.test_index_sizes(), (1, 1, 1));
    s.cache.clear();
    s.cluster.start_store(s.store1).expect("start");

    // The peer on a dropped store is left out.
    let store = s.cluster.get_store(s.store1).expect("store");
    s.cluster.remove_store(s.store1);
    let reg = find(&s).await.expect("region");
    let snap = reg.snapshot();
    assert_eq!(snap.region.peers.len(), in_pd.peers.len() - 1);
    assert!(peers_match_stores(&reg));
    assert!(snap.region.peers.iter().all(|p| p.store_id != s.store1));
    verify_ctx(&s, &snap.region).await;
    assert_eq!(s.cache.test_index_sizes(), (1, 1, 1));
    s.cache.clear();
    let labels: Vec<(&str, &str)> = store
        .labels
        .iter()
        .map(|l| (l.key.as_str(), l.value.as_str()))
        .collect();
    s.cluster.add_store(store.id, &store.address, &labels);

    // No usable peer at all: an error.
    s.cluster.mark_tombstone(s.store1).expect("tombstone");
    s.cluster.mark_tombstone(s.store2).expect("tombstone");
    let err = find(&s).await.expect_err("no peers");
    assert!(err.to_string().contains("no available peers"), "{err}");
    s.cluster.start_store(s.store1).expect("start");
    s.cluster.start_store(s.store2).expect("start");
}

// ---------------------------------------------------------------------------------------
// An inspectable PD (client-go's `inspectedPDClient` and mocktikv's `WithDelay`).
// ---------------------------------------------------------------------------------------

/// A PD source wrapping the suite's codec PD client: counts calls, can hold answers back
/// and can answer the first batch scan with a scripted answer.
#[derive(Default)]
struct InspectedPd {
    inner: Option<Arc<dyn RegionMetaClient>>,
    get_region_calls: std::sync::atomic::AtomicUsize,
    get_region_by_id_calls: Arc<std::sync::atomic::AtomicUsize>,
    /// When set, `GetRegion` reads its answer, then holds it back 200 ms (mocktikv's
    /// `WithDelay`): the caller receives what PD knew before the wait.
    delay: Arc<std::sync::atomic::AtomicBool>,
    /// Extra latency of `GetRegionByID`, counted after the wait (client-go's slowed hook).
    by_id_latency: std::sync::Mutex<Option<std::time::Duration>>,
    /// Answers the next batch scan instead of PD, once.
    next_batch_scan: std::sync::Mutex<Option<Vec<RegionInfo>>>,
    /// The most key ranges seen in one batch scan.
    max_batch_ranges: std::sync::atomic::AtomicUsize,
}

impl InspectedPd {
    fn inner(&self) -> Arc<dyn RegionMetaClient> {
        self.inner.clone().expect("inner PD")
    }
}

impl RegionMetaClient for InspectedPd {
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Option<RegionInfo>>> {
        self.get_region_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inner = self.inner();
        let delay = self.delay.clone();
        Box::pin(async move {
            let answer = inner.get_region(key, opts).await;
            if delay.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            answer
        })
    }

    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Option<RegionInfo>>> {
        self.inner().get_prev_region(key, opts)
    }

    fn get_region_by_id(
        &self,
        id: u64,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Option<RegionInfo>>> {
        let inner = self.inner();
        let latency = *self.by_id_latency.lock().expect("lock");
        let calls = self.get_region_by_id_calls.clone();
        Box::pin(async move {
            if let Some(d) = latency {
                tokio::time::sleep(d).await;
            }
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            inner.get_region_by_id(id, opts).await
        })
    }

    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Vec<RegionInfo>>> {
        self.inner().scan_regions(start, end, limit, opts)
    }

    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Vec<RegionInfo>>> {
        self.max_batch_ranges
            .fetch_max(ranges.len(), std::sync::atomic::Ordering::SeqCst);
        if let Some(answer) = self.next_batch_scan.lock().expect("lock").take() {
            return Box::pin(std::future::ready(Ok(answer)));
        }
        self.inner().batch_scan_regions(ranges, limit, opts)
    }

    fn get_store(
        &self,
        id: u64,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Option<metapb::Store>>> {
        self.inner().get_store(id, opts)
    }

    fn get_all_stores(
        &self,
        opts: crate::pd::RegionOptions,
    ) -> futures_core::future::BoxFuture<'static, Result<Vec<metapb::Store>>> {
        self.inner().get_all_stores(opts)
    }

    fn cluster_id(&self) -> u64 {
        self.inner().cluster_id()
    }
}

/// A codec PD client over the mock cluster's PD, wrapped for inspection.
fn inspected_pd(cluster: &Cluster) -> Arc<InspectedPd> {
    let pd = MockPd::new(cluster.clone(), 1);
    let codec = CodecPdClient::new(Arc::new(pd), KeyMode::TxnV1);
    Arc::new(InspectedPd {
        inner: Some(Arc::new(codec)),
        ..InspectedPd::default()
    })
}

impl Suite {
    /// [`Suite::new`] whose cache reads PD through an [`InspectedPd`].
    fn inspected() -> (Suite, Arc<InspectedPd>) {
        let mut s = Suite::new();
        let pd = inspected_pd(&s.cluster);
        s.cache = RegionCache::new(pd.clone(), RegionCacheOptions::default());
        (s, pd)
    }

    /// Splits region `regions[i]` at each key in turn (client-go's split loops); returns
    /// every region id, the original first.
    fn split_at(&self, keys: &[&[u8]]) -> Vec<u64> {
        let mut regions = vec![self.region1];
        for key in keys {
            let last = *regions.last().expect("region");
            let (new, _) = self.split(last, key);
            regions.push(new);
        }
        regions
    }
}

/// Runs the cache's background GC (client-go's `NewRegionCache` starts it) until dropped.
struct GcLoop(Option<tokio::sync::oneshot::Sender<()>>);

impl GcLoop {
    fn start(cache: &RegionCache) -> GcLoop {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .run_gc(GC_INTERVAL, GC_REGIONS_PER_ROUND, async {
                    let _ = rx.await;
                })
                .await;
        });
        GcLoop(Some(tx))
    }
}

impl Drop for GcLoop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

// client-go: T-LOCATE-006 testRegionCacheSuite.TestReturnRegionWithNoLeader
#[tokio::test(start_paused = true)]
async fn return_region_with_no_leader() {
    let (s, pd) = Suite::inspected();
    let region = s.locate(b"x").await;
    // PD first answers a batch scan with the region but no leader.
    *pd.next_batch_scan.lock().expect("lock") = Some(vec![RegionInfo {
        region: (*region.region).clone(),
        leader: None,
        ..RegionInfo::default()
    }]);
    let mut bo = Backoffer::new(1000);
    let got = s
        .cache
        .scan_regions(&mut bo, b"", b"", 100)
        .await
        .expect("scan");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ver.id, region.ver.id);
    let got = s
        .cache
        .batch_scan_regions(&mut bo, &[KeyRange::new(b"", b"")], 100, false, true)
        .await
        .expect("batch scan");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ver.id, region.ver.id);
    assert!(got[0].snapshot().leader().is_some());
}

/// One `TestNeedExpireRegionAfterTTL` subtest: 50 lookups 100 ms apart under a 2 s TTL
/// without jitter load the region from PD exactly twice.
async fn reloads_once_per_ttl(s: &Suite, pd: &InspectedPd, mut each: impl FnMut(usize)) {
    pd.get_region_calls
        .store(0, std::sync::atomic::Ordering::SeqCst);
    for i in 0..50 {
        each(i);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s.locate(b"a").await;
    }
    assert_eq!(
        pd.get_region_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "should reload the region every RegionCacheTTL"
    );
}

// client-go: T-LOCATE-007 testRegionCacheSuite.TestNeedExpireRegionAfterTTL
#[tokio::test(start_paused = true)]
async fn need_expire_region_after_ttl_with_down_peers() {
    let (s, pd) = Suite::inspected();
    s.cache.set_ttl_with_jitter(2, 0);
    let _gc = GcLoop::start(&s.cache);
    s.cache.clear();
    s.cluster.mark_peer_down(s.peer2);
    reloads_once_per_ttl(&s, &pd, |_| {}).await;
}

// client-go: T-LOCATE-007 testRegionCacheSuite.TestNeedExpireRegionAfterTTL
#[tokio::test(start_paused = true)]
async fn need_expire_region_after_ttl_with_stale_stores() {
    let (s, pd) = Suite::inspected();
    s.cache.set_ttl_with_jitter(2, 0);
    let _gc = GcLoop::start(&s.cache);
    s.cache.clear();
    let store2 = s.cache.stores().get_or_insert(s.store2);
    reloads_once_per_ttl(&s, &pd, |i| store2.set_epoch(i as u32)).await;
}

// client-go: T-LOCATE-007 testRegionCacheSuite.TestNeedExpireRegionAfterTTL
#[tokio::test(start_paused = true)]
async fn need_expire_region_after_ttl_with_unreachable_stores() {
    let (s, pd) = Suite::inspected();
    s.cache.set_ttl_with_jitter(2, 0);
    let _gc = GcLoop::start(&s.cache);
    s.cache.clear();
    s.cache.stores().get_or_insert(s.store2);
    s.cache
        .stores()
        .set_liveness(s.store2, tikv_layers::locate::Liveness::Unreachable);
    reloads_once_per_ttl(&s, &pd, |_| {}).await;
}

// client-go: T-LOCATE-033 testRegionCacheSuite.TestNoBackoffWhenFailToDecodeRegion
#[tokio::test(start_paused = true)]
async fn no_backoff_when_fail_to_decode_region() {
    let s = Suite::new();
    let region2 = s.cluster.alloc_id();
    let peers = s.cluster.alloc_ids(2);
    // A raw split leaves region keys that are not memcomparable-encoded.
    s.cluster
        .split_raw(s.region1, region2, b"k", &peers, peers[0])
        .expect("split raw");
    let mut bo = Suite::bo();
    assert!(s.cache.locate_key_with(&mut bo, b"k").await.is_err());
    assert_eq!(bo.total_backoff_times(), 0);
    assert!(
        s.cache
            .locate_region_by_id_with(&mut bo, region2)
            .await
            .is_err()
    );
    assert_eq!(bo.total_backoff_times(), 0);
    assert!(s.cache.scan_regions(&mut bo, b"", b"", 10).await.is_err());
    assert_eq!(bo.total_backoff_times(), 0);
}

/// A region snapshot over `[start, end)` with the given bucket keys.
fn snap_with_buckets(start: &[u8], end: &[u8], keys: Option<Vec<Vec<u8>>>) -> RegionSnapshot {
    RegionSnapshot {
        ver: RegionVerId::default(),
        region: Arc::new(metapb::Region {
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }),
        store_epochs: Vec::new().into(),
        tikv_peers: Vec::new().into(),
        tiflash_peers: Vec::new().into(),
        work_tikv_idx: 0,
        work_tiflash_idx: 0,
        buckets: keys.map(|keys| {
            Arc::new(metapb::Buckets {
                keys,
                ..Default::default()
            })
        }),
        pending_peers: Vec::new().into(),
    }
}

/// client-go's `TestBuckets` bucket checks over a located region: every listed key has a
/// bucket containing it; with stale boundaries the internal lookup finds none.
fn assert_buckets_locate(snap: &RegionSnapshot) {
    for key in [&b""[..], &[b'a' - 1], b"a", b"a0", b"b", b"c"] {
        let b = locate_bucket_in(snap.buckets.as_deref(), key).expect("bucket");
        assert!(b.contains(key), "{key:?} in {b:?}");
    }
    let mut stale = snap.clone();
    stale.buckets = Some(Arc::new(metapb::Buckets {
        keys: vec![b"b".to_vec(), b"c".to_vec(), b"d".to_vec()],
        ..(**snap.buckets.as_ref().expect("buckets")).clone()
    }));
    for key in [&b"a"[..], b"d", b"e"] {
        assert!(locate_bucket_in(stale.buckets.as_deref(), key).is_none());
    }
}

/// Waits (100 ms steps, ten at most) until the region of `key` carries `want` buckets.
async fn wait_buckets(s: &Suite, key: &[u8], want: Option<&metapb::Buckets>) {
    let mut got = None;
    for _ in 0..10 {
        got = s.locate(key).await.buckets.clone();
        if got.as_deref() == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got.as_deref(), want);
}

/// A region object over `snap` as client-go's tests build a fake `Region`.
fn fake_region(like: &Region, snap: RegionSnapshot) -> Arc<Region> {
    Arc::new(Region {
        ver: snap.ver,
        start: super::IndexKey::new(&snap.region.start_key),
        end: super::IndexKey::new(&snap.region.end_key),
        snap: RwLock::new(Arc::new(snap)),
        ttl: AtomicI64::new(like.ttl()),
        flags: AtomicU8::new(like.flags()),
        invalid: AtomicU8::new(like.invalid_reason() as u8),
        proxy: AtomicUsize::new(NO_PROXY),
    })
}

// client-go: T-LOCATE-034 testRegionCacheSuite.TestBuckets
#[tokio::test(start_paused = true)]
async fn buckets() {
    let s = Suite::new();
    // 1. Cached regions carry PD's buckets.
    let (r, _) = s.cluster.get_region(s.region1).expect("region");
    let version = 1_000;
    let keys: Vec<&[u8]> = vec![&r.start_key, b"a", b"b", &r.end_key];
    s.cluster
        .split_region_buckets(s.region1, &keys, version)
        .expect("buckets");
    let default_buckets = metapb::Buckets {
        region_id: s.region1,
        version,
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        ..Default::default()
    };
    let cached = s.locate(b"a").await;
    assert_eq!(cached.ver.id, s.region1);
    assert_eq!(cached.buckets.as_deref(), Some(&default_buckets));
    assert_eq!(cached.bucket_version(), version);
    assert_buckets_locate(&cached);

    // 2. Inserting a region keeps the newer bucket set.
    let region = s.cache.get_cached(&cached.ver).expect("cached");
    let mut fake = (*cached).clone();
    fake.buckets = None;
    s.cache
        .write()
        .insert(fake_region(&region, fake.clone()), true);
    assert_eq!(
        s.locate(b"a").await.buckets.as_deref(),
        Some(&default_buckets)
    );
    fake.buckets = Some(Arc::new(metapb::Buckets {
        version: version - 1,
        ..Default::default()
    }));
    s.cache
        .write()
        .insert(fake_region(&region, fake.clone()), true);
    assert_eq!(
        s.locate(b"a").await.buckets.as_deref(),
        Some(&default_buckets)
    );
    let new_buckets = metapb::Buckets {
        version: version + 1,
        ..default_buckets.clone()
    };
    fake.buckets = Some(Arc::new(new_buckets.clone()));
    s.cache
        .write()
        .insert(fake_region(&region, fake.clone()), true);
    assert_eq!(s.locate(b"a").await.buckets.as_deref(), Some(&new_buckets));

    // 3. EpochNotMatch keeps the buckets.
    let cached = s.locate(b"a").await;
    let mut new_meta = (*cached.region).clone();
    let epoch = new_meta.region_epoch.get_or_insert_default();
    epoch.version += 1;
    epoch.conf_ver += 1;
    let new_epoch = *epoch;
    s.cache
        .on_epoch_not_match(
            SharedBackoffer::new(Suite::bo()),
            cached.ver,
            s.store1,
            vec![new_meta],
        )
        .await
        .expect("epoch not match");
    assert_eq!(s.locate(b"a").await.buckets.as_deref(), Some(&new_buckets));

    // 4. Bucket refreshes.
    let cached = s.locate(b"a").await;
    let current = cached.buckets.clone();
    // A stale latest version changes nothing.
    s.cache
        .update_buckets_if_needed(&cached.ver, 0, cached.bucket_version() - 1);
    wait_buckets(&s, b"a", current.as_deref()).await;

    // Missing buckets are refreshed; PD must know the cached epoch.
    s.cache
        .get_cached(&cached.ver)
        .expect("cached")
        .update_snapshot(|snap| snap.buckets = None);
    s.cluster
        .put_region(
            r.id,
            new_epoch.conf_ver,
            new_epoch.version,
            &[s.store1, s.store2],
            &[s.peer1, s.peer2],
            s.peer1,
        )
        .expect("put region");
    s.cluster
        .split_region_buckets(s.region1, &keys, version)
        .expect("buckets");
    s.cache.update_buckets_if_needed(&cached.ver, 0, version);
    wait_buckets(&s, b"a", Some(&default_buckets)).await;

    // A newer version is refreshed.
    let cached = s.locate(b"a").await;
    let newer_keys: Vec<&[u8]> = vec![&r.start_key, b"a", &r.end_key];
    s.cluster
        .split_region_buckets(s.region1, &newer_keys, version + 1)
        .expect("buckets");
    let newer = metapb::Buckets {
        region_id: s.region1,
        version: version + 1,
        keys: newer_keys.iter().map(|k| k.to_vec()).collect(),
        ..Default::default()
    };
    s.cache
        .update_buckets_if_needed(&cached.ver, 0, version + 1);
    wait_buckets(&s, b"a", Some(&newer)).await;
}

// client-go: T-LOCATE-035 testRegionCacheSuite.TestLocateBucket
#[tokio::test(start_paused = true)]
async fn locate_bucket() {
    let s = Suite::new();
    let (r, _) = s.cluster.get_region(s.region1).expect("region");
    // Boundaries matching the region's range.
    s.cluster
        .split_region_buckets(s.region1, &[&r.start_key, b"a", b"b", &r.end_key], 1)
        .expect("buckets");
    let loc = s.locate(b"a").await;
    for key in [&b""[..], &[b'a' - 1], b"a", b"a0", b"b", b"c"] {
        let b = locate_bucket_in(loc.buckets.as_deref(), key).expect("bucket");
        assert!(b.contains(key));
    }
    // Holes between the region start and the first boundary, and after the last one.
    s.cluster
        .split_region_buckets(s.region1, &[b"a", b"b"], 2)
        .expect("buckets");
    s.cache.update_buckets_if_needed(&loc.ver, 0, 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let loc = s.locate(b"a").await;
    assert_eq!(loc.bucket_version(), 2);
    for key in [&[b'a' - 1][..], b"c"] {
        assert!(locate_bucket_in(loc.buckets.as_deref(), key).is_none());
        let (start, end) = RegionCache::locate_bucket(&loc, key).expect("public bucket");
        assert!(contains(&start, &end, key), "{key:?} in {start:?}..{end:?}");
    }
}

// client-go: T-LOCATE-036 TestBucketClampingToRegion
#[test]
fn bucket_clamping_to_region() {
    struct Case {
        name: &'static str,
        region: (&'static [u8], &'static [u8]),
        bucket: (&'static [u8], &'static [u8]),
        want: (&'static [u8], &'static [u8]),
        clamped: bool,
    }
    let cases = [
        Case {
            name: "bucket within region",
            region: (b"a", b"z"),
            bucket: (b"f", b"m"),
            want: (b"f", b"m"),
            clamped: false,
        },
        Case {
            name: "start before region",
            region: (b"f", b"z"),
            bucket: (b"a", b"m"),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "end after region",
            region: (b"a", b"m"),
            bucket: (b"f", b"z"),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "exceeds both",
            region: (b"f", b"m"),
            bucket: (b"a", b"z"),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "empty region start",
            region: (b"", b"m"),
            bucket: (b"a", b"z"),
            want: (b"a", b"m"),
            clamped: true,
        },
        Case {
            name: "empty region end",
            region: (b"f", b""),
            bucket: (b"a", b"z"),
            want: (b"f", b"z"),
            clamped: true,
        },
        Case {
            name: "bucket before region",
            region: (b"m", b"z"),
            bucket: (b"a", b"f"),
            want: (b"m", b"z"),
            clamped: true,
        },
        Case {
            name: "empty bucket start",
            region: (b"f", b"z"),
            bucket: (b"", b"m"),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "empty bucket end",
            region: (b"a", b"m"),
            bucket: (b"f", b""),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "both starts empty",
            region: (b"", b"z"),
            bucket: (b"", b"m"),
            want: (b"", b"m"),
            clamped: false,
        },
        Case {
            name: "both ends empty",
            region: (b"a", b""),
            bucket: (b"f", b""),
            want: (b"f", b""),
            clamped: false,
        },
        Case {
            name: "bucket spans keyspace",
            region: (b"f", b"m"),
            bucket: (b"", b""),
            want: (b"f", b"m"),
            clamped: true,
        },
        Case {
            name: "infinite region",
            region: (b"", b""),
            bucket: (b"a", b"z"),
            want: (b"a", b"z"),
            clamped: false,
        },
    ];
    for c in cases {
        let bucket = Bucket {
            start: c.bucket.0.to_vec(),
            end: c.bucket.1.to_vec(),
        };
        let got = clamp_bucket_to_region(c.region.0, c.region.1, &bucket);
        assert_eq!(got.start, c.want.0, "{}", c.name);
        assert_eq!(got.end, c.want.1, "{}", c.name);
        let same = matches!(got, std::borrow::Cow::Borrowed(b) if std::ptr::eq(b, &bucket));
        assert_eq!(!same, c.clamped, "{}", c.name);
    }
}

// client-go: T-LOCATE-066 testRegionCacheSuite.TestUpdateBucketsConcurrently
#[tokio::test(start_paused = true)]
async fn update_buckets_concurrently() {
    let (s, pd) = Suite::inspected();
    *pd.by_id_latency.lock().expect("lock") = Some(std::time::Duration::from_millis(500));
    let count = || {
        pd.get_region_by_id_calls
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let loc = s.locate(b"a").await;
    let ver = loc.bucket_version();
    // Two refreshes at once collapse into one; not-newer requests are ignored.
    s.cache.update_buckets_if_needed(&loc.ver, 0, ver + 1);
    s.cache.update_buckets_if_needed(&loc.ver, 0, ver + 1);
    s.cache.update_buckets_if_needed(&loc.ver, ver, ver + 1);
    s.cache.update_buckets_if_needed(&loc.ver, ver + 1, ver + 1);
    assert_eq!(count(), 0);
    assert!(eventually_within_3s(|| count() > 0).await);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(count(), 1);
    // Once it finished, a new request triggers a new call.
    s.cache.update_buckets_if_needed(&loc.ver, 0, ver + 1);
    assert!(eventually_within_3s(|| count() > 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(count(), 2);
}

// client-go: T-LOCATE-040 testRegionCacheSuite.TestBackgroundCacheGC
#[tokio::test(start_paused = true)]
async fn background_cache_gc() {
    let s = Suite::new();
    let count = 100usize;
    let keys: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("t{i:08}").into_bytes())
        .collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    s.split_at(&key_refs);
    for k in &keys {
        s.locate(k).await;
    }
    assert_eq!(s.cache.test_index_sizes(), (count, count, count));

    let stats: Arc<std::sync::Mutex<HashMap<u64, usize>>> = Arc::default();
    let hook_stats = stats.clone();
    s.cache.set_gc_scan_hook(Some(Arc::new(move |r: &Region| {
        *hook_stats
            .lock()
            .expect("lock")
            .entry(r.ver().id)
            .or_default() += 1;
    })));
    let _gc = GcLoop::start(&s.cache);
    // Every region is scanned evenly: twice in 2 × 100 / 50 intervals.
    let rounds = (2 * count / GC_REGIONS_PER_ROUND) as u32;
    tokio::time::sleep(GC_INTERVAL * rounds + GC_INTERVAL / 2).await;
    {
        let stats = stats.lock().expect("lock");
        assert_eq!(stats.len(), count);
        assert!(stats.values().all(|&n| n == 2), "{stats:?}");
    }

    for part in [0, 1] {
        // Make a third of the regions stale; the GC evicts them.
        let now = s.cache.now_secs();
        let mut remaining = 0;
        for r in s.cache.read().regions.values() {
            if r.ver().id % 3 == part {
                r.set_ttl(now - 10);
            } else {
                remaining += 1;
            }
        }
        let mut evicted = false;
        for _ in 0..15 {
            if s.cache.read().regions.len() == remaining {
                evicted = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(evicted, "stale regions evicted within 3 s");
        assert_eq!(
            s.cache.test_index_sizes(),
            (remaining, remaining, remaining)
        );
    }
}

/// client-go's `testRegionRequestToSingleStoreSuite`: one store, one region.
async fn single_store() -> (Cluster, RegionCache, u64) {
    let cluster = Cluster::new(Clock::new());
    let (_, _, region) = cluster.bootstrap_with_single_store();
    let pd = MockPd::new(cluster.clone(), 1);
    let codec = CodecPdClient::new(Arc::new(pd), KeyMode::TxnV1);
    let cache = RegionCache::new(Arc::new(codec), RegionCacheOptions::default());
    (cluster, cache, region)
}

/// A cached region of `region_id` over `[start, end)` with the given conf version and no
/// peers (client-go's tests insert such bare regions).
fn bare_region(like: &RegionSnapshot, conf_ver: u64, start: &[u8], end: &[u8]) -> RegionInfo {
    RegionInfo {
        region: metapb::Region {
            id: like.ver.id,
            region_epoch: Some(metapb::RegionEpoch {
                version: like.ver.ver,
                conf_ver,
            }),
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        },
        ..RegionInfo::default()
    }
}

// client-go: T-LOCATE-049 testRegionRequestToSingleStoreSuite.TestRefreshCache
#[tokio::test]
async fn refresh_cache() {
    let (_cluster, cache, region) = single_store().await;
    let mut bo = Suite::bo();
    cache.refresh_region_index(&mut bo).await.expect("refresh");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 1);

    let loc = cache
        .locate_region_by_id_with(&mut bo, region)
        .await
        .expect("locate");
    let conf = loc.ver.conf_ver;
    // [{2}, +inf) is shadowed by the first intersecting region, (-inf, +inf).
    cache
        .insert_region(bare_region(&loc, conf + 1, &[2], b""), true)
        .expect("insert");
    let r = cache.scan_regions_from_cache(b"", b"", 10);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].snapshot().start_key(), b"");

    // (-inf, {2}), [{2}, +inf): both.
    cache
        .insert_region(bare_region(&loc, conf + 2, b"", &[2]), true)
        .expect("insert");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 2);

    // (-inf, {1}), [{2}, +inf): only the first, then a hole.
    cache
        .insert_region(bare_region(&loc, conf + 3, b"", &[1]), true)
        .expect("insert");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 1);

    cache.refresh_region_index(&mut bo).await.expect("refresh");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 1);
}

// client-go: T-LOCATE-050 testRegionRequestToSingleStoreSuite.TestRegionCacheStartNonEmpty
#[tokio::test]
async fn region_cache_start_non_empty() {
    let (_cluster, cache, region) = single_store().await;
    let mut bo = Suite::bo();
    cache.refresh_region_index(&mut bo).await.expect("refresh");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 1);
    let loc = cache
        .locate_region_by_id_with(&mut bo, region)
        .await
        .expect("locate");
    cache.write().sorted.clear();
    cache
        .insert_region(bare_region(&loc, loc.ver.conf_ver + 1, &[1], b""), true)
        .expect("insert");
    // Cache: [[{1}, +inf)]: nothing covers the empty key.
    assert!(cache.scan_regions_from_cache(b"", b"", 10).is_empty());
}

// client-go: T-LOCATE-051 testRegionRequestToSingleStoreSuite.TestRefreshCacheConcurrency
//
// client-go runs both loops for 5 s of wall time; here each runs a fixed number of rounds
// on a multi-threaded runtime (no real sleeps), which exercises the same interleavings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_cache_concurrency() {
    let (_cluster, cache, region) = single_store().await;
    let refresher = {
        let cache = cache.clone();
        tokio::spawn(async move {
            for _ in 0..500 {
                let _ = cache.refresh_region_index(&mut Backoffer::noop()).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let locator = {
        let cache = cache.clone();
        tokio::spawn(async move {
            for _ in 0..500 {
                let _ = cache
                    .locate_region_by_id_with(&mut Backoffer::noop(), region)
                    .await;
                tokio::task::yield_now().await;
            }
        })
    };
    refresher.await.expect("no panic while refreshing");
    locator.await.expect("no panic while locating");
    assert_eq!(cache.scan_regions_from_cache(b"", b"", 10).len(), 1);
}

/// client-go's `testRegionCacheWithDelaySuite`: one store; `cache` reads PD directly,
/// `delay_cache` through a PD whose answers can be held back.
struct DelaySuite {
    cluster: Cluster,
    cache: RegionCache,
    delay_cache: RegionCache,
    delay: Arc<std::sync::atomic::AtomicBool>,
}

impl DelaySuite {
    fn new() -> DelaySuite {
        let cluster = Cluster::new(Clock::new());
        cluster.bootstrap_with_multi_stores(1);
        let pd = MockPd::new(cluster.clone(), 1);
        let codec = CodecPdClient::new(Arc::new(pd), KeyMode::TxnV1);
        let cache = RegionCache::new(Arc::new(codec), RegionCacheOptions::default());
        let delayed = inspected_pd(&cluster);
        let delay = delayed.delay.clone();
        let delay_cache = RegionCache::new(delayed, RegionCacheOptions::default());
        DelaySuite {
            cluster,
            cache,
            delay_cache,
            delay,
        }
    }

    fn split(&self, region: u64, key: &[u8]) {
        let new_region = self.cluster.alloc_id();
        let peer = self.cluster.alloc_ids(1);
        self.cluster
            .split(region, new_region, key, &peer, peer[0])
            .expect("split");
    }
}

async fn find(cache: &RegionCache, key: &[u8]) -> Arc<Region> {
    cache
        .find_region_by_key(&mut Suite::bo(), key, false)
        .await
        .expect("find region")
}

// client-go: T-LOCATE-054 testRegionCacheWithDelaySuite.TestStaleGetRegion
#[tokio::test(start_paused = true)]
async fn stale_get_region() {
    let s = DelaySuite::new();
    let r1 = find(&s.cache, b"a").await;
    let r2 = find(&s.delay_cache, b"a").await;
    assert_eq!(r1.snapshot().region, r2.snapshot().region);

    // PD's answer to the delayed cache is held back while the region splits.
    s.delay.store(true, std::sync::atomic::Ordering::SeqCst);
    let delayed = {
        let cache = s.delay_cache.clone();
        let r2 = r2.clone();
        tokio::spawn(async move {
            r2.invalidate(InvalidReason::Other);
            find(&cache, b"b").await;
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    s.split(r1.ver().id, b"b");
    r1.invalidate(InvalidReason::Other);
    assert_eq!(find(&s.cache, b"b").await.snapshot().start_key(), b"b");
    assert_eq!(find(&s.cache, b"c").await.snapshot().start_key(), b"b");

    s.delay.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        find(&s.delay_cache, b"b").await.snapshot().start_key(),
        b"b"
    );
    delayed.await.expect("delayed lookup");
    // The stale answer arrived but was not inserted.
    assert_eq!(
        find(&s.delay_cache, b"b").await.snapshot().start_key(),
        b"b"
    );
    assert_eq!(find(&s.delay_cache, b"a").await.snapshot().end_key(), b"b");
}

// client-go: T-LOCATE-055 testRegionCacheWithDelaySuite.TestFollowerGetStaleRegion
#[tokio::test(start_paused = true)]
async fn follower_get_stale_region() {
    let s = DelaySuite::new();
    let delayed_pd = inspected_pd(&s.cluster);
    let delay = delayed_pd.delay.clone();
    let follower_cache = RegionCache::new(delayed_pd, RegionCacheOptions::default());

    delay.store(true, std::sync::atomic::Ordering::SeqCst);
    // The cache is empty, so this first lookup may be answered by a (slow) follower.
    let stale = {
        let cache = follower_cache.clone();
        tokio::spawn(async move { find(&cache, b"z").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    delay.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = find(&follower_cache, b"y").await;
    s.split(r.ver().id, b"z");
    r.invalidate(InvalidReason::Other);
    let r = find(&follower_cache, b"y").await;
    assert_eq!(r.snapshot().end_key(), b"z");

    let fin = stale.await.expect("stale lookup");
    assert_eq!(fin.snapshot().start_key(), b"z");
}

// client-go: T-LOCATE-056 testRegionCacheSuite.TestBatchScanRegionsMerger
#[test]
fn batch_scan_regions_merger() {
    fn regions(keys: &[&str]) -> Vec<Arc<RegionSnapshot>> {
        keys.chunks(2)
            .map(|p| Arc::new(snap_with_buckets(p[0].as_bytes(), p[1].as_bytes(), None)))
            .collect()
    }
    fn check(uncached: &[&str], cached: &[&str], want: &[&str]) {
        let mut m = BatchLocateMerger::new(regions(cached), 0);
        for r in regions(uncached) {
            m.append_region(r);
        }
        let got: Vec<String> = m
            .build()
            .iter()
            .flat_map(|r| {
                [
                    String::from_utf8_lossy(r.start_key()).into_owned(),
                    String::from_utf8_lossy(r.end_key()).into_owned(),
                ]
            })
            .collect();
        assert_eq!(got, want, "uncached {uncached:?} cached {cached:?}");
    }
    check(
        &["b", "c", "c", "d"],
        &["a", "b"],
        &["a", "b", "b", "c", "c", "d"],
    );
    check(
        &["a", "b", "c", "d"],
        &["b", "c"],
        &["a", "b", "b", "c", "c", "d"],
    );
    check(
        &["a", "b", "b", "c"],
        &["c", "d"],
        &["a", "b", "b", "c", "c", "d"],
    );
    check(&["", ""], &["a", "b", "b", "c"], &["", ""]);
    check(&["", "b"], &["a", "b", "b", "c"], &["", "b", "b", "c"]);
    check(&["b", ""], &["a", "b", "b", "c"], &["a", "b", "b", ""]);
    // A loaded region covering a cached one replaces it.
    check(&["b", ""], &["a", "b", "c", "d"], &["a", "b", "b", ""]);
    check(&["b", "e"], &["a", "b", "c", "d"], &["a", "b", "b", "e"]);
    check(
        &["b", "i"],
        &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
        &["a", "b", "b", "i", "i", "j"],
    );
    // Partly overlapping: both are kept.
    check(
        &["b", "d"],
        &["a", "b", "c", "e"],
        &["a", "b", "b", "d", "c", "e"],
    );
    // Covered by several loaded regions: skipped.
    check(
        &["b", "d", "d", "f"],
        &["a", "b", "c", "e"],
        &["a", "b", "b", "d", "d", "f"],
    );
    check(
        &["b", "d", "d", "e", "e", "g"],
        &["a", "b", "c", "f"],
        &["a", "b", "b", "d", "d", "e", "e", "g"],
    );
    // Loaded regions with a hole cannot cover the cached one: it is kept.
    check(
        &["b", "d", "d", "e", "f", "h"],
        &["a", "b", "c", "g"],
        &["a", "b", "b", "d", "d", "e", "c", "g", "f", "h"],
    );
}

// client-go: T-LOCATE-057 testRegionCacheSuite.TestSplitKeyRanges
#[test]
fn split_key_ranges() {
    fn check(keys: &[&str], split: &str, want: &[&str]) {
        let ranges: Vec<KeyRange> = keys
            .chunks(2)
            .map(|p| KeyRange::new(p[0].as_bytes(), p[1].as_bytes()))
            .collect();
        let got: Vec<String> = ranges_after_key(&ranges, split.as_bytes())
            .iter()
            .flat_map(|r| {
                [
                    String::from_utf8_lossy(&r.start).into_owned(),
                    String::from_utf8_lossy(&r.end).into_owned(),
                ]
            })
            .collect();
        assert_eq!(got, want, "{keys:?} after {split:?}");
    }
    check(&["a", "c"], "a", &["a", "c"]);
    check(&["b", "c"], "a", &["b", "c"]);
    check(&["a", "c"], "b", &["b", "c"]);
    check(&["a", "c"], "c", &[]);
    check(&["a", "c"], "", &[]);
    check(&["a", ""], "b", &["b", ""]);
    check(&["a", ""], "", &[]);
    check(&["a", "b", "c", "f"], "a1", &["a1", "b", "c", "f"]);
    check(&["a", "b", "c", "f"], "b", &["c", "f"]);
    check(&["a", "b", "c", "f"], "b1", &["c", "f"]);
    check(&["a", "b", "c", "f"], "c", &["c", "f"]);
    check(&["a", "b", "c", "f"], "d", &["d", "f"]);
}

fn key_ranges(keys: &[&str]) -> Vec<KeyRange> {
    keys.chunks(2)
        .map(|p| KeyRange::new(p[0].as_bytes(), p[1].as_bytes()))
        .collect()
}

// client-go: T-LOCATE-058 testRegionCacheSuite.TestBatchScanRegions
#[tokio::test(start_paused = true)]
async fn batch_scan_regions() {
    let s = Suite::new();
    // nil --- 'a' --- 'b' --- 'c' --- 'd' --- 'e' --- 'f' --- 'g' --- nil
    // <-  0  -> <- 1 -> <- 2 -> <- 3 -> <- 4 -> <- 5 -> <- 6 -> <-  7  ->
    let regions = s.split_at(&[b"a", b"b", b"c", b"d", b"e", b"f", b"g"]);
    async fn check(
        s: &Suite,
        scan: &[&str],
        cached: &[&str],
        after_load: impl FnOnce(),
        want: &[u64],
    ) {
        s.cache.clear();
        for r in key_ranges(cached) {
            let mut start = r.start.clone();
            loop {
                let loc = s.locate(&start).await;
                if loc.contains(&r.end) || r.end == loc.end_key() {
                    break;
                }
                start = loc.end_key().to_vec();
            }
        }
        after_load();
        let got = s
            .cache
            .batch_locate_key_ranges(
                &mut Suite::bo(),
                &key_ranges(scan),
                BatchLocateOptions::default(),
            )
            .await
            .expect("batch locate");
        let ids: Vec<u64> = got.iter().map(|r| r.ver.id).collect();
        assert_eq!(ids, want, "scan {scan:?} cached {cached:?}");
    }
    check(
        &s,
        &["A", "B", "C", "D", "E", "F"],
        &["", "a"],
        || {},
        &regions[..1],
    )
    .await;
    check(
        &s,
        &["A", "B", "C", "D", "E", "F", "G", "c"],
        &["", "c"],
        || {},
        &regions[..3],
    )
    .await;
    check(&s, &["a", "g"], &[], || {}, &regions[1..7]).await;
    check(&s, &["a", "g"], &["a", "d"], || {}, &regions[1..7]).await;
    let r = &regions;
    let want = [r[1], r[2], r[3], r[5], r[6]];
    check(&s, &["a", "d", "e", "g"], &["a", "d"], || {}, &want).await;
    check(
        &s,
        &["a", "d", "e", "g"],
        &["a", "b", "e", "f"],
        || {},
        &want,
    )
    .await;
    check(
        &s,
        &["a", "d", "e", "g"],
        &["a", "b", "e", "f"],
        || {},
        &want,
    )
    .await;

    // After a merge, PD's fresher regions replace the cached ones.
    check(
        &s,
        &["a", "d", "e", "g"],
        &["a", "b", "e", "f"],
        || s.cluster.merge(r[1], r[2]).expect("merge"),
        &[r[1], r[3], r[5], r[6]],
    )
    .await;

    // Cached regions PD's answer no longer covers are still returned.
    let new1 = s.cluster.alloc_id();
    let new2 = s.cluster.alloc_id();
    check(
        &s,
        &["a", "d3", "e", "g"],
        &["a", "c", "e", "f"],
        || {
            s.cluster.merge(r[4], r[5]).expect("merge");
            let p = s.cluster.alloc_ids(2);
            s.cluster.split(r[4], new1, b"d2", &p, p[0]).expect("split");
            let p = s.cluster.alloc_ids(2);
            s.cluster.split(new1, new2, b"e1", &p, p[0]).expect("split");
        },
        &[r[1], r[3], r[4], new1, r[5], r[6]],
    )
    .await;
}

// client-go: T-LOCATE-061 testRegionCacheSuite.TestScanRegionsWithGaps
#[tokio::test(start_paused = true)]
async fn scan_regions_with_gaps() {
    let s = Suite::new();
    // nil --- 'a' --- 'c' --- 'e' --- nil
    let regions = s.split_at(&[b"a", b"c", b"e"]);
    // Region 2's split is not reported to PD for a second: PD's list has a hole.
    async fn with_hole<T>(
        s: &Suite,
        hidden: u64,
        load: impl std::future::Future<Output = Result<Vec<T>>>,
        id: impl Fn(&T) -> u64,
    ) -> Vec<u64> {
        s.cache.clear();
        s.cluster.set_unreported_region(Some(hidden));
        let cluster = s.cluster.clone();
        let heal = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            cluster.set_unreported_region(None);
        });
        let got = load.await.expect("load");
        heal.await.expect("heal");
        got.iter().map(id).collect()
    }
    let mut bo = Suite::bo();
    let ids = with_hole(
        &s,
        regions[2],
        s.cache
            .batch_load_regions_with_key_range(&mut bo, b"", b"", 10),
        |r| r.ver.id,
    )
    .await;
    assert_eq!(ids, regions);
    let mut bo = Suite::bo();
    let ids = with_hole(
        &s,
        regions[2],
        s.cache.batch_load_regions_with_key_ranges(
            &mut bo,
            &[KeyRange::new(b"", b"")],
            10,
            BatchLocateOptions::default(),
        ),
        |r| r.ver().id,
    )
    .await;
    assert_eq!(ids, regions);
}

// client-go: T-LOCATE-065 testRegionCacheSuite.TestBatchLoadLimitRanges
#[tokio::test(start_paused = true)]
async fn batch_load_limit_ranges() {
    let (s, pd) = Suite::inspected();
    let ranges: Vec<KeyRange> = (0..100_000u64)
        .map(|i| KeyRange::new((i * 2).to_be_bytes(), (i * 2 + 1).to_be_bytes()))
        .collect();
    s.cache
        .batch_locate_key_ranges(&mut Suite::bo(), &ranges, BatchLocateOptions::default())
        .await
        .expect("batch locate");
    let most = pd
        .max_batch_ranges
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most > 0 && most <= 16 * REGIONS_PER_BATCH as usize,
        "{most}"
    );
}

// client-go: T-LOCATE-037 testRegionCacheSuite.TestLoadRegionsWithLeader
#[tokio::test(start_paused = true)]
async fn load_regions_with_leader() {
    let mut s = Suite::new();
    let pd = MockPd::new(s.cluster.clone(), 1);
    let codec = CodecPdClient::new(Arc::new(pd.clone()), KeyMode::TxnV1);
    s.cache = RegionCache::new(Arc::new(codec), RegionCacheOptions::default());
    let regions = s.split_at(&[b"b", b"c", b"d", b"e"]);
    // PD followers refuse to answer: the lookup must end up at the leader.
    pd.set_must_leader(true);
    let Loaded(region) = s
        .cache
        .load_region(&mut Suite::bo(), b"a", false, true)
        .await
        .expect("load");
    assert_eq!(region.ver().id, regions[0]);
}

// client-go: T-LOCATE-064 testRegionCacheSuite.TestRegionCacheValidAfterLoading
#[tokio::test(start_paused = true)]
async fn region_cache_valid_after_loading() {
    let s = Suite::new();
    s.cache.clear();
    let keys: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i]).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let regions = s.split_at(&key_refs);

    async fn load_with(s: &Suite, regions: &[u64], which: usize) {
        let c = &s.cache;
        let bo = &mut Suite::bo();
        let ok = match which {
            0 => c.locate_key_range(bo, b"a", b"e").await.is_ok(),
            1 => c
                .batch_locate_key_ranges(
                    bo,
                    &[KeyRange::new(b"a", b"e")],
                    BatchLocateOptions::default(),
                )
                .await
                .is_ok(),
            2 => c.locate_key_with(bo, b"b").await.is_ok(),
            3 => c.locate_end_key_with(bo, b"c").await.is_ok(),
            4 => {
                let mut ok = true;
                for id in regions {
                    ok &= c.locate_region_by_id_with(bo, *id).await.is_ok();
                }
                ok
            }
            5 => c
                .group_keys_by_region(bo, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], None)
                .await
                .is_ok(),
            6 => c.list_region_ids_in_key_range(bo, b"a", b"e").await.is_ok(),
            7 => c.load_regions_in_key_range(bo, b"a", b"e").await.is_ok(),
            8 => c
                .batch_load_regions_with_key_range(bo, b"a", b"e", 10)
                .await
                .is_ok(),
            9 => c
                .batch_load_regions_with_key_ranges(
                    bo,
                    &[KeyRange::new(b"a", b"e")],
                    10,
                    BatchLocateOptions::default(),
                )
                .await
                .is_ok(),
            _ => c.batch_load_regions_from_key(bo, b"a", 10).await.is_ok(),
        };
        assert!(ok, "loader {which}");
    }
    let is_valid = |r: &Region| r.is_valid(s.cache.now_secs(), &s.cache.inner.clock);

    // Loading, from the cache or from PD, never invalidates a valid cached region.
    for which in 0..11 {
        let loc = s.locate(b"b").await;
        let region = s.cache.get_cached(&loc.ver).expect("cached");
        load_with(&s, &regions, which).await;
        assert!(
            is_valid(&region),
            "loader {which} invalidated a valid region"
        );
    }
    // An invalidated region is reloaded and re-inserted by every loader.
    for which in 0..11 {
        let loc = s.locate(b"b").await;
        let region = s.cache.get_cached(&loc.ver).expect("cached");
        region.invalidate(InvalidReason::Other);
        assert!(!is_valid(&region));
        load_with(&s, &regions, which).await;
        assert!(!is_valid(&region));
        let fresh = s.cache.try_locate_key(b"b").expect("reloaded");
        let fresh = s.cache.get_cached(&fresh.ver).expect("cached");
        assert!(is_valid(&fresh), "loader {which}");
    }
}

// client-go: T-LOCATE-022 testRegionCacheSuite.TestRegionEpochOnTiFlash
//
// client-go picks the TiFlash context with `GetTiFlashRPCContext` and feeds the error to
// the request sender's `onRegionError`; the Rust cache has no TiFlash context helper, so
// the TiFlash peer is read from the snapshot's TiFlash peers and the EpochNotMatch goes to
// the cache's `on_epoch_not_match`, the part of `onRegionError` that handles it.
#[tokio::test(start_paused = true)]
async fn region_epoch_on_tiflash() {
    let s = Suite::new();
    // Store 1 becomes a TiFlash store; a new TiKV store 3 takes the leadership.
    let addr1 = s.store_addr(s.store1);
    s.cluster
        .update_store_addr(s.store1, &addr1, &[("engine", "tiflash")])
        .expect("tiflash");
    let store3 = s.cluster.alloc_id();
    let peer3 = s.cluster.alloc_id();
    s.cluster.add_store(store3, &format!("store{store3}"), &[]);
    s.cluster.add_peer(s.region1, store3, peer3).expect("peer");
    s.cluster.change_leader(s.region1, peer3).expect("leader");

    let loc = s.locate(b"a").await;
    assert_eq!(loc.ver.id, s.region1);
    assert_eq!(
        s.ctx_peer(&loc.ver, ReplicaReadType::Leader, 0).await,
        peer3
    );
    // The TiFlash peer is peer 1.
    let tiflash = loc
        .tiflash_peers
        .get(loc.work_tiflash_idx)
        .and_then(|&i| loc.region.peers.get(i))
        .copied()
        .expect("tiflash peer");
    assert_eq!(tiflash.id, s.peer1);

    // EpochNotMatch answered by the TiFlash learner.
    let mut meta = (*loc.region).clone();
    for p in &mut meta.peers {
        if p.id == s.peer1 {
            p.role = metapb::PeerRole::Learner as i32;
        }
    }
    s.cache
        .on_epoch_not_match(
            SharedBackoffer::new(Suite::bo()),
            loc.ver,
            s.store1,
            vec![meta],
        )
        .await
        .expect("epoch not match");
    // Leader reads must not go to the TiFlash peer.
    let leader = s
        .rpc_ctx(&loc.ver, ReplicaReadType::Leader, 0)
        .await
        .expect("context");
    assert_ne!(leader.peer.id, s.peer1);
}

// client-go: T-LOCATE-008 testRegionCacheSuite.TestTiFlashRecoveredFromDown
#[tokio::test(start_paused = true)]
async fn tiflash_recovered_from_down() {
    let s = Suite::new();
    s.cache.set_ttl_with_jitter(3, 0);
    let mut tiflash = Vec::new();
    for _ in 0..2 {
        let store = s.cluster.alloc_id();
        let peer = s.cluster.alloc_id();
        let addr = format!("store{store}");
        s.cluster.add_store(store, &addr, &[]);
        s.cluster.add_peer(s.region1, store, peer).expect("peer");
        s.cluster
            .update_store_addr(store, &addr, &[("engine", "tiflash")])
            .expect("tiflash");
        tiflash.push((store, peer));
    }
    let (store3, peer3) = tiflash[0];
    let store3_addr = s.store_addr(store3);
    let tiflash_ctx = |ver: RegionVerId| {
        let cache = s.cache.clone();
        async move {
            cache
                .get_tiflash_rpc_context(&mut Suite::bo(), &ver, true, no_tiflash_write_node)
                .await
                .expect("tiflash context")
        }
    };

    // Loaded with no down TiFlash peer.
    let loc = s.locate(b"a").await;
    assert_eq!(loc.ver.id, s.region1);
    assert!(tiflash_ctx(loc.ver).await.is_some());
    let region = s.cache.get_cached(&loc.ver).expect("cached");
    assert_eq!(region.flags() & NEED_EXPIRE_AFTER_TTL, 0);
    s.cache.clear();

    // Peer 3 goes down: the region expires after its TTL and peer 3 is never chosen.
    s.cluster.mark_peer_down(peer3);
    let loc = s.locate(b"a").await;
    assert_eq!(loc.ver.id, s.region1);
    let region = s.cache.get_cached(&loc.ver).expect("cached");
    assert_ne!(region.flags() & NEED_EXPIRE_AFTER_TTL, 0);
    let mut loc = loc;
    for _ in 0..=3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        loc = s.locate(b"a").await;
        if let Some(ctx) = tiflash_ctx(loc.ver).await {
            assert_ne!(
                ctx.addr, store3_addr,
                "should not access peer3 when it is down"
            );
        }
    }
    let reloaded = s.cache.get_cached(&loc.ver).expect("cached");
    assert!(!Arc::ptr_eq(&region, &reloaded), "the region was reloaded");

    // Peer 3 recovers: after the next reload it is chosen again.
    s.cluster.remove_down_peer(peer3);
    let mut reached = false;
    for _ in 0..=10 {
        let loc = s.locate(b"a").await;
        if tiflash_ctx(loc.ver)
            .await
            .is_some_and(|ctx| ctx.addr == store3_addr)
        {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(reached, "should access peer3 after it is up");
}

/// RC-7: a renewed region lives `[ttl, ttl + jitter)` after its last use, with the jitter
/// independent of the TTL as in client-go's `nextTTL` (a 2 s TTL with a 60 s jitter may
/// live up to 61 s), and no jitter at all when it is 0.
#[tokio::test(start_paused = true)]
async fn ttl_jitter_spans_the_configured_range() {
    let s = Suite::new();
    let (mut keys, mut last) = (Vec::new(), s.region1);
    for i in 0..40u8 {
        let key = vec![b'k', i];
        last = s.split(last, &key).0;
        keys.push(key);
    }
    s.cache.set_ttl_with_jitter(2, 60);
    let mut extra = Vec::new();
    for key in &keys {
        let r = s.locate(key).await;
        let ttl = s.cache.get_cached(&r.ver).expect("cached").ttl();
        extra.push(ttl - s.cache.now_secs() - 2);
    }
    assert!(extra.iter().all(|e| (0..60).contains(e)), "{extra:?}");
    assert!(
        extra.iter().any(|e| *e >= 6),
        "jitter is not capped at a tenth of the TTL: {extra:?}"
    );
    s.cache.clear();
    s.cache.set_ttl_with_jitter(2, 0);
    let r = s.locate(b"a").await;
    let ttl = s.cache.get_cached(&r.ver).expect("cached").ttl();
    assert_eq!(ttl, s.cache.now_secs() + 2);
}

/// `RegionCacheOptions::from_config` takes the TTL and its jitter from the client config.
#[test]
fn options_follow_the_client_config() {
    let config = crate::config::TikvClientConfig::default()
        .with_region_cache_ttl(std::time::Duration::from_secs(30))
        .with_region_cache_ttl_jitter(std::time::Duration::ZERO);
    assert_eq!(
        RegionCacheOptions::from_config(&config),
        RegionCacheOptions {
            ttl_secs: 30,
            ttl_jitter_secs: 0
        }
    );
    assert_eq!(
        RegionCacheOptions::from_config(&crate::config::TikvClientConfig::default()),
        RegionCacheOptions::default()
    );
}
