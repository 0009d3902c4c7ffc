//! Tests of the route layer against a scripted locator and a tower-test mock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::future::BoxFuture;
use tikv_proto::{kvrpcpb, metapb};
use tower::ServiceExt;
use tower_test::mock;

use super::*;
use crate::backoff::SharedBackoffer;
use crate::error::{BoxError, Error, ErrorDetail, ErrorKind, Result};
use crate::locate::{
    EpochNotMatchOutcome, InvalidReason, RegionLocator, RegionSnapshot, RegionVerId,
};
use crate::request::{RpcRequest, RpcResponse};

fn snap(id: u64, start: &[u8], end: &[u8]) -> Arc<RegionSnapshot> {
    Arc::new(RegionSnapshot {
        ver: RegionVerId {
            id,
            conf_ver: 1,
            ver: 1,
        },
        region: Arc::new(metapb::Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }),
        store_epochs: Arc::from(Vec::new()),
        tikv_peers: Arc::from(Vec::new()),
        tiflash_peers: Arc::from(Vec::new()),
        work_tikv_idx: 0,
        work_tiflash_idx: 0,
        buckets: None,
        pending_peers: Arc::from(Vec::new()),
    })
}

/// Regions [, c) #1, [c, f) #2, [f, ) #3; records which lookup was asked.
struct Locator {
    regions: Vec<Arc<RegionSnapshot>>,
    calls: Mutex<Vec<String>>,
    fail: AtomicUsize,
}

impl Locator {
    fn new() -> Arc<Locator> {
        Arc::new(Locator {
            regions: vec![snap(1, b"", b"c"), snap(2, b"c", b"f"), snap(3, b"f", b"")],
            calls: Mutex::new(Vec::new()),
            fail: AtomicUsize::new(0),
        })
    }

    fn answer(
        &self,
        call: String,
        f: impl Fn(&RegionSnapshot) -> bool,
    ) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        self.calls.lock().unwrap().push(call);
        let res = if self.fail.swap(0, Ordering::SeqCst) > 0 {
            Err(ErrorDetail::PdServerTimeout("pd down".into()).into())
        } else {
            self.regions
                .iter()
                .find(|r| f(r))
                .cloned()
                .ok_or_else(|| ErrorDetail::Internal("no region".into()).into())
        };
        Box::pin(std::future::ready(res))
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl RegionLocator for Locator {
    fn locate_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let k = key.to_vec();
        self.answer(format!("key {}", String::from_utf8_lossy(key)), move |r| {
            r.contains(&k)
        })
    }
    fn locate_end_key(&self, key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        let k = key.to_vec();
        self.answer(format!("end {}", String::from_utf8_lossy(key)), move |r| {
            r.contains_by_end(&k)
        })
    }
    fn locate_region_by_id(&self, id: u64) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        self.answer(format!("id {id}"), move |r| r.ver.id == id)
    }
    fn cached_region(&self, _ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        None
    }
    fn invalidate_region(&self, _ver: &RegionVerId, _reason: InvalidReason) {}
    fn schedule_reload(&self, _ver: &RegionVerId) {}
    fn schedule_delayed_reload(&self, _ver: &RegionVerId) {}
    fn switch_leader(&self, _ver: &RegionVerId, _peer: &metapb::Peer) -> bool {
        false
    }
    fn update_leader(&self, _ver: &RegionVerId, _leader: Option<&metapb::Peer>, _idx: usize) {}
    fn switch_next_tikv_peer(&self, _ver: &RegionVerId, _idx: usize) {}
    fn on_epoch_not_match(
        &self,
        _bo: SharedBackoffer,
        _ver: RegionVerId,
        _store_id: u64,
        _current: Vec<metapb::Region>,
    ) -> BoxFuture<'static, Result<EpochNotMatchOutcome>> {
        Box::pin(std::future::ready(Ok(EpochNotMatchOutcome::Updated)))
    }
    fn on_bucket_version_not_match(&self, _ver: &RegionVerId, _version: u64, _keys: Vec<Vec<u8>>) {}
    fn cluster_id(&self) -> u64 {
        0
    }
}

type MockSvc = tower::util::MapErr<mock::Mock<RpcRequest, RpcResponse>, fn(BoxError) -> Error>;

fn route(locator: &Arc<Locator>) -> (Route<MockSvc>, mock::Handle<RpcRequest, RpcResponse>) {
    let (svc, handle) = mock::pair::<RpcRequest, RpcResponse>();
    let svc = svc.map_err(Error::from_boxed as fn(BoxError) -> Error);
    let layer = RouteLayer::new(locator.clone());
    (tower::Layer::layer(&layer, svc), handle)
}

/// Sends `req` through the route layer and returns the request the inner service saw.
async fn routed(locator: &Arc<Locator>, req: RpcRequest) -> RpcRequest {
    let (svc, mut handle) = route(locator);
    let call = tokio::spawn(svc.oneshot(req));
    let (seen, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
        .await
        .expect("inner service called")
        .expect("request");
    send.send_response(RpcResponse::new(kvrpcpb::RawGetResponse::default()));
    call.await.unwrap().unwrap();
    seen
}

fn region_id(req: &RpcRequest) -> Option<u64> {
    req.target.region.as_ref().map(|r| r.ver.id)
}

#[tokio::test(start_paused = true)]
async fn locates_by_the_routing_key() {
    let locator = Locator::new();
    let get = kvrpcpb::RawGetRequest {
        key: b"d".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        region_id(&routed(&locator, RpcRequest::new(get)).await),
        Some(2)
    );

    // A batch goes where its first key is.
    let batch = kvrpcpb::BatchGetRequest {
        keys: vec![b"g".to_vec(), b"a".to_vec()],
        ..Default::default()
    };
    assert_eq!(
        region_id(&routed(&locator, RpcRequest::new(batch)).await),
        Some(3)
    );
    assert_eq!(locator.calls(), vec!["key d", "key g"]);
}

#[tokio::test(start_paused = true)]
async fn reverse_scan_locates_its_upper_bound_by_end_key() {
    let locator = Locator::new();
    // "f" starts region 3, so the region ending at "f" holds the keys below it.
    let scan = kvrpcpb::RawScanRequest {
        start_key: b"f".to_vec(),
        reverse: true,
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        region_id(&routed(&locator, RpcRequest::new(scan)).await),
        Some(2)
    );
    // An empty upper bound is the top of the key space: the last region.
    let scan = kvrpcpb::ScanRequest {
        reverse: true,
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        region_id(&routed(&locator, RpcRequest::new(scan)).await),
        Some(3)
    );
    assert_eq!(locator.calls(), vec!["end f", "end "]);
}

#[tokio::test(start_paused = true)]
async fn keyless_command_uses_the_pinned_region_id() {
    let locator = Locator::new();
    let resolve = kvrpcpb::ResolveLockRequest {
        start_version: 5,
        ..Default::default()
    };
    let mut req = RpcRequest::new(resolve);
    req.context.region_id = 3;
    assert_eq!(region_id(&routed(&locator, req).await), Some(3));
    assert_eq!(locator.calls(), vec!["id 3"]);
}

#[tokio::test(start_paused = true)]
async fn routed_and_store_level_requests_pass_through() {
    let locator = Locator::new();
    let mut req = RpcRequest::new(kvrpcpb::RawGetRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    req.target.region = Some(snap(9, b"", b""));
    assert_eq!(region_id(&routed(&locator, req).await), Some(9));

    let seen = routed(
        &locator,
        RpcRequest::new(kvrpcpb::StoreSafeTsRequest::default()),
    )
    .await;
    assert_eq!(region_id(&seen), None);
    // No key and no pinned region: nothing to locate.
    let seen = routed(
        &locator,
        RpcRequest::new(kvrpcpb::ResolveLockRequest::default()),
    )
    .await;
    assert_eq!(region_id(&seen), None);
    assert!(locator.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn locate_error_fails_the_call() {
    let locator = Locator::new();
    locator.fail.store(1, Ordering::SeqCst);
    let (svc, mut handle) = route(&locator);
    let call = tokio::spawn(svc.oneshot(RpcRequest::new(kvrpcpb::RawGetRequest {
        key: b"a".to_vec(),
        ..Default::default()
    })));
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pd);
    let next = tokio::time::timeout(Duration::from_secs(1), handle.next_request()).await;
    assert!(!matches!(next, Ok(Some(_))), "nothing sent");
}
