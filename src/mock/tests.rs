//! Invariant checks of spec §6.2 B/C (topology, PD, TSO) and the raw store, in-process.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tikv_layers::{CmdType, Command, CommandResponse};
use tikv_proto::{kvrpcpb, metapb, pdpb};

use super::*;

fn mock() -> Mock {
    Mock::with_clock(Clock::with_base_ms(1_000_000), MockOptions::default())
}

fn ctx(r: &metapb::Region, p: &metapb::Peer) -> kvrpcpb::Context {
    kvrpcpb::Context {
        region_id: r.id,
        region_epoch: r.region_epoch,
        peer: Some(*p),
        ..Default::default()
    }
}

async fn raw_get(
    m: &Mock,
    addr: &str,
    c: kvrpcpb::Context,
    key: &[u8],
) -> Result<CommandResponse, tikv_layers::Error> {
    let cmd = Command::RawGet(kvrpcpb::RawGetRequest {
        context: Some(c),
        key: key.to_vec(),
        ..Default::default()
    });
    m.dispatch(addr, cmd, None).await
}

// client-go: T-MOCK-006 TestRegionContains
#[test]
fn region_contains_boundaries() {
    use cluster::region_contains as rc;
    assert!(rc(b"", b"", b""));
    assert!(rc(b"", b"", b"a"));
    assert!(rc(b"", b"b", b"a"));
    assert!(!rc(b"", b"b", b"b"));
    assert!(rc(b"a", b"", b"a"));
    assert!(!rc(b"b", b"", b"a"));
    assert!(rc(b"a", b"c", b"b"));
    assert!(!rc(b"a", b"c", b"c"));
    assert!(!rc(b"a", b"c", b""));
    assert!(rc(b"a", b"c", b"a"));
}

#[tokio::test(start_paused = true)]
async fn bootstrap_ids_follow_mocktikv() {
    let m = mock();
    assert_eq!(m.cluster().bootstrap_with_single_store(), (1, 2, 3));
    let m = mock();
    let (stores, peers, region, leader) = m.cluster().bootstrap_with_multi_stores(3);
    assert_eq!(
        (stores, peers, region, leader),
        (vec![1, 2, 3], vec![4, 5, 6], 7, 4)
    );
    let s = m.cluster().get_store(2).unwrap();
    assert_eq!(s.address, "store2");
    assert_eq!(s.labels[0].key, "id");
}

#[tokio::test(start_paused = true)]
async fn splits_and_merges_keep_cover_and_epochs() {
    let m = mock();
    let c = m.cluster();
    let (_, regions, _) = c.bootstrap_with_multi_regions(&[b"b", b"d"]);
    let all = c.get_all_regions();
    assert_eq!(all.len(), 3);
    assert!(all[0].region.start_key.is_empty() && all[2].region.end_key.is_empty());
    for w in all.windows(2) {
        assert_eq!(w[0].region.end_key, w[1].region.start_key);
    }
    let v0 = c.get_region(regions[0]).unwrap().0.region_epoch.unwrap();
    c.merge(regions[0], regions[1]).unwrap();
    let v1 = c.get_region(regions[0]).unwrap().0.region_epoch.unwrap();
    assert_eq!(v1.version, v0.version + 1);
    assert!(c.get_region(regions[1]).is_none());
    assert!(c.merge(regions[0], regions[0]).is_err());
    // change_leader changes no epoch; remove_peer of the leader leaves no leader.
    let (r, leader) = c.get_region(regions[0]).unwrap();
    c.change_leader(regions[0], leader).unwrap();
    assert_eq!(
        c.get_region(regions[0]).unwrap().0.region_epoch,
        r.region_epoch
    );
    c.remove_peer(regions[0], leader).unwrap();
    assert_eq!(c.get_region(regions[0]).unwrap().1, 0);
}

#[tokio::test(start_paused = true)]
async fn region_check_order_and_errors() {
    let m = mock();
    let c = m.cluster();
    let (_, peers, region, _) = c.bootstrap_with_multi_stores(3);
    let (r, _) = c.get_region(region).unwrap();
    let leader = r.peers[0];
    // store mismatch wins over everything else.
    let mut bad = ctx(&r, &leader);
    bad.region_id = 999;
    bad.region_epoch = None;
    let resp = raw_get(&m, "store2", bad, b"a").await.unwrap();
    assert!(resp.region_error().unwrap().store_not_match.is_some());
    // unknown region.
    let mut bad = ctx(&r, &leader);
    bad.region_id = 999;
    let resp = raw_get(&m, "store1", bad, b"a").await.unwrap();
    assert!(resp.region_error().unwrap().region_not_found.is_some());
    // not leader names the leader.
    let resp = raw_get(&m, "store2", ctx(&r, &r.peers[1]), b"a")
        .await
        .unwrap();
    assert_eq!(
        resp.region_error()
            .unwrap()
            .not_leader
            .as_ref()
            .unwrap()
            .leader
            .as_ref()
            .unwrap()
            .id,
        peers[0]
    );
    // epoch not match lists the region and its right neighbour.
    c.split_raw(region, 100, b"m", &[101, 102, 103], 101)
        .unwrap();
    let resp = raw_get(&m, "store1", ctx(&r, &leader), b"a").await.unwrap();
    let e = resp
        .region_error()
        .unwrap()
        .epoch_not_match
        .clone()
        .unwrap();
    assert_eq!(e.current_regions.len(), 2);
    assert_eq!(e.current_regions[1].id, 100);
    // key not in region + violation log.
    let (r, _) = c.get_region(region).unwrap();
    let resp = raw_get(&m, "store1", ctx(&r, &leader), b"z").await.unwrap();
    assert!(resp.region_error().unwrap().key_not_in_region.is_some());
    assert_eq!(c.take_violations().len(), 1);
    // no leader.
    c.give_up_leader(region).unwrap();
    let resp = raw_get(&m, "store1", ctx(&r, &leader), b"a").await.unwrap();
    let nl = resp.region_error().unwrap().not_leader.unwrap();
    assert!(nl.leader.is_none());
}

#[tokio::test(start_paused = true)]
async fn store_states_are_transport_errors() {
    let m = mock();
    let c = m.cluster();
    let (_, _, region) = c.bootstrap_with_single_store();
    let (r, _) = c.get_region(region).unwrap();
    let p = r.peers[0];
    assert!(raw_get(&m, "nowhere", ctx(&r, &p), b"a").await.is_err());
    c.stop_store(1).unwrap();
    let e = raw_get(&m, "store1", ctx(&r, &p), b"a").await.unwrap_err();
    assert!(e.to_string().contains("connection refused"));
    c.start_store(1).unwrap();
    assert!(raw_get(&m, "store1", ctx(&r, &p), b"a").await.is_ok());
    c.cancel_store(1).unwrap();
    assert!(raw_get(&m, "store1", ctx(&r, &p), b"a").await.is_err());
    c.uncancel_store(1).unwrap();
    assert_eq!(c.probe("store1"), Liveness::Reachable);
    let unimpl = m
        .dispatch("store1", Command::Compact(Default::default()), None)
        .await;
    assert!(unimpl.is_err());
}

#[tokio::test(start_paused = true)]
async fn tso_is_monotonic_and_follows_clock() {
    let m = mock();
    let a = m.pd().get_ts().await.unwrap();
    let b = m.pd().get_ts().await.unwrap();
    assert!(b > a);
    tokio::time::advance(Duration::from_millis(10)).await;
    let c = m.pd().get_ts().await.unwrap();
    assert_eq!(c >> 18, (a >> 18) + 10);
    let r = m
        .pd()
        .tso(pdpb::TsoRequest {
            count: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.count, 5);
    assert!(m.pd().tso(pdpb::TsoRequest::default()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn pd_regions_stores_and_gc() {
    let m = mock();
    let c = m.cluster();
    c.bootstrap_with_multi_regions(&[b"b", b"d"]);
    let pd = m.pd();
    let r = pd
        .scan_regions(pdpb::ScanRegionsRequest {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.regions.len(), 2);
    let first = c.get_all_regions()[0].region.clone();
    let prev = pd
        .get_prev_region(pdpb::GetRegionRequest {
            region_key: b"".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(prev.region.is_none());
    let _ = first;
    c.mark_tombstone(1).unwrap();
    let s = pd
        .get_store(pdpb::GetStoreRequest {
            store_id: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(s.store.is_none() && s.header.unwrap().error.is_none());
    let s = pd
        .get_store(pdpb::GetStoreRequest {
            store_id: 77,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        s.header
            .unwrap()
            .error
            .unwrap()
            .message
            .contains("not found")
    );
    let g = pd
        .update_gc_safe_point(pdpb::UpdateGcSafePointRequest {
            safe_point: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(g.new_safe_point, 10);
    let g = pd
        .update_gc_safe_point(pdpb::UpdateGcSafePointRequest {
            safe_point: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(g.new_safe_point, 10);
    pd.set_gc_barrier(pdpb::SetGcBarrierRequest {
        barrier_id: "b".into(),
        barrier_ts: 50,
        ttl_seconds: 10,
        ..Default::default()
    })
    .await
    .unwrap();
    let a = pd
        .advance_txn_safe_point(pdpb::AdvanceTxnSafePointRequest {
            target: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.new_txn_safe_point, 50);
    assert!(!a.blocker_description.is_empty());
    assert!(
        pd.advance_gc_safe_point(pdpb::AdvanceGcSafePointRequest {
            target: 60,
            ..Default::default()
        })
        .await
        .is_err()
    );
    // PD rules.
    let h = pd.inject(PdRule::batch_scan_regions_unimplemented());
    assert!(pd.batch_scan_regions(Default::default()).await.is_err());
    drop(h);
    assert!(pd.batch_scan_regions(Default::default()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn raw_ttl_cas_and_injection() {
    let m = mock();
    let c = m.cluster();
    let (_, _, region) = c.bootstrap_with_single_store();
    let (r, _) = c.get_region(region).unwrap();
    let p = r.peers[0];
    let put = Command::RawPut(kvrpcpb::RawPutRequest {
        context: Some(ctx(&r, &p)),
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ttl: 2,
        ..Default::default()
    });
    m.dispatch("store1", put, None).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    match raw_get(&m, "store1", ctx(&r, &p), b"k").await.unwrap() {
        CommandResponse::RawGet(g) => assert!(g.not_found),
        other => panic!("{other:?}"),
    }
    let cas = Command::RawCompareAndSwap(kvrpcpb::RawCasRequest {
        context: Some(ctx(&r, &p)),
        key: b"k".to_vec(),
        value: b"x".to_vec(),
        previous_not_exist: true,
        ..Default::default()
    });
    match m.dispatch("store1", cas, None).await.unwrap() {
        CommandResponse::RawCompareAndSwap(r) => assert!(r.succeed && r.previous_not_exist),
        other => panic!("{other:?}"),
    }
    let h = m.inject(Preset::rpc_commit_result("notLeader"));
    let commit = Command::Commit(kvrpcpb::CommitRequest {
        context: Some(ctx(&r, &p)),
        ..Default::default()
    });
    let resp = m.dispatch("store1", commit.clone(), None).await.unwrap();
    assert!(resp.region_error().unwrap().not_leader.is_some());
    drop(h);
    let h = m.inject(
        Rule::new(Action::Delay(Duration::from_millis(50)))
            .cmds(&[CmdType::RawGet])
            .policy(FirePolicy::FirstN(1)),
    );
    let t0 = tokio::time::Instant::now();
    raw_get(&m, "store1", ctx(&r, &p), b"k").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(50));
    drop(h);
    assert!(m.request_log().len() >= 4);
}

/// API V2 regression: region bounds are memcomparable-encoded for raw keys too, so the
/// key-range checks encode raw keys before comparing, scans and checksums clamp to the
/// decoded bounds, raw splits encode their keys, and a range may end exactly at the
/// keyspace end (TiKV checks only the mode byte of a range end).
#[tokio::test(start_paused = true)]
async fn api_v2_raw_keys_follow_the_region_key_encoding() {
    let opts = MockOptions {
        api_version: kvrpcpb::ApiVersion::V2,
        ..MockOptions::default()
    };
    let m = Mock::with_clock(Clock::with_base_ms(1_000_000), opts);
    let c = m.cluster();
    c.bootstrap_with_single_store();
    // Keyspace 1: raw prefix `r 0 0 1`, keyspace end `r 0 0 2`.
    let ks = |k: &[u8]| [b"r\x00\x00\x01".as_slice(), k].concat();
    let ks_end = b"r\x00\x00\x02".to_vec();
    c.split_at_keys(&[encode_key(&ks(b"m"))]);
    let regions = c.get_all_regions();
    assert_eq!(regions.len(), 2);
    let v2 = |info: &cluster::RegionInfo| {
        let mut cx = ctx(&info.region, &info.region.peers[0]);
        cx.api_version = kvrpcpb::ApiVersion::V2 as i32;
        cx.keyspace = Some(kvrpcpb::context::Keyspace::KeyspaceId(1));
        cx
    };
    let (left, right) = (&regions[0], &regions[1]);

    // Keys on either side of the split are served by their own region...
    for (info, key) in [(left, ks(b"a")), (right, ks(b"x"))] {
        let put = Command::RawPut(kvrpcpb::RawPutRequest {
            context: Some(v2(info)),
            key: key.clone(),
            value: key.clone(),
            ..Default::default()
        });
        let resp = m.dispatch("store1", put, None).await.unwrap();
        assert!(resp.region_error().is_none(), "{resp:?}");
    }
    // ...and refused by the other one.
    let resp = raw_get(&m, "store1", v2(left), &ks(b"x")).await.unwrap();
    let knir = resp
        .region_error()
        .unwrap()
        .key_not_in_region
        .clone()
        .unwrap();
    assert_eq!(knir.key, ks(b"x"));

    // A scan of the left region stops at its (decoded) end.
    let scan = Command::RawScan(kvrpcpb::RawScanRequest {
        context: Some(v2(left)),
        start_key: ks(b""),
        end_key: ks_end.clone(),
        limit: 10,
        ..Default::default()
    });
    match m.dispatch("store1", scan, None).await.unwrap() {
        CommandResponse::RawScan(r) => {
            let keys: Vec<Vec<u8>> = r.kvs.into_iter().map(|p| p.key).collect();
            assert_eq!(keys, vec![ks(b"a")]);
        }
        other => panic!("{other:?}"),
    }

    // A delete-range ending at the keyspace end passes the API check and the range check
    // of the last region, and clears only its part of the keyspace.
    let del = Command::RawDeleteRange(kvrpcpb::RawDeleteRangeRequest {
        context: Some(v2(right)),
        start_key: ks(b"m"),
        end_key: ks_end.clone(),
        ..Default::default()
    });
    match m.dispatch("store1", del, None).await.unwrap() {
        CommandResponse::RawDeleteRange(r) => {
            assert!(r.region_error.is_none() && r.error.is_empty(), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    match raw_get(&m, "store1", v2(right), &ks(b"x")).await.unwrap() {
        CommandResponse::RawGet(g) => assert!(g.not_found),
        other => panic!("{other:?}"),
    }
    match raw_get(&m, "store1", v2(left), &ks(b"a")).await.unwrap() {
        CommandResponse::RawGet(g) => assert!(!g.not_found && g.error.is_empty(), "{g:?}"),
        other => panic!("{other:?}"),
    }

    // Another keyspace's key is still refused, as a range end too.
    let del = Command::RawDeleteRange(kvrpcpb::RawDeleteRangeRequest {
        context: Some(v2(right)),
        start_key: ks(b"m"),
        end_key: b"r\x00\x00\x03".to_vec(),
        ..Default::default()
    });
    match m.dispatch("store1", del, None).await.unwrap() {
        CommandResponse::RawDeleteRange(r) => assert!(r.error.contains("keyspace"), "{r:?}"),
        other => panic!("{other:?}"),
    }
}
