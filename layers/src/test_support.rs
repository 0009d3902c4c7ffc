//! In-memory region and store services for the layers' unit tests: one region with
//! `n` TiKV peers on stores `1..=n`, leader on store 1, every store labelled `id=<n>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_core::future::BoxFuture;
use tikv_proto::metapb;

use crate::Result;
use crate::backoff::SharedBackoffer;
use crate::locate::{
    EpochNotMatchOutcome, InvalidReason, Liveness, RegionLocator, RegionSnapshot, RegionVerId,
    StoreResolver, StoreSnapshot,
};
use crate::replica::RegionServices;

#[derive(Default)]
pub(crate) struct FakeState {
    pub(crate) region: Option<Arc<RegionSnapshot>>,
    pub(crate) valid: bool,
    pub(crate) invalidations: Vec<InvalidReason>,
    pub(crate) epochs: HashMap<u64, u32>,
    pub(crate) liveness: HashMap<u64, Liveness>,
    pub(crate) slow: HashMap<u64, bool>,
    pub(crate) closed_addrs: Vec<String>,
    pub(crate) need_check: Vec<u64>,
    /// After the first probe every liveness probe answers unreachable (client-go's
    /// access-path harness).
    pub(crate) probe_unreachable: bool,
    /// Store labels replacing the default `id=<n>`.
    pub(crate) labels: HashMap<u64, Vec<metapb::StoreLabel>>,
}

/// The fake: a region locator and store resolver over one shared state.
#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub(crate) state: Arc<Mutex<FakeState>>,
}

impl Fake {
    /// One region (id 10, version 1/1) with `n` peers `100+i` on stores `i`.
    pub(crate) fn new(n: u64) -> Fake {
        let peers: Vec<metapb::Peer> = (1..=n)
            .map(|i| metapb::Peer {
                id: 100 + i,
                store_id: i,
                ..Default::default()
            })
            .collect();
        let region = metapb::Region {
            id: 10,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers,
            ..Default::default()
        };
        let snap = RegionSnapshot {
            ver: RegionVerId::of(&region),
            store_epochs: vec![0; n as usize].into(),
            tikv_peers: (0..n as usize).collect::<Vec<_>>().into(),
            tiflash_peers: Vec::new().into(),
            work_tikv_idx: 0,
            work_tiflash_idx: 0,
            buckets: None,
            pending_peers: Vec::new().into(),
            region: Arc::new(region),
        };
        let fake = Fake::default();
        {
            let mut s = fake.lock();
            s.region = Some(Arc::new(snap));
            s.valid = true;
        }
        fake
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn services(&self) -> RegionServices {
        RegionServices {
            locator: Arc::new(self.clone()),
            stores: Arc::new(self.clone()),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<RegionSnapshot> {
        self.lock().region.clone().expect("region")
    }

    pub(crate) fn ver(&self) -> RegionVerId {
        self.snapshot().ver
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.lock().valid
    }

    pub(crate) fn leader_store(&self) -> u64 {
        self.snapshot().leader().map_or(0, |p| p.store_id)
    }

    pub(crate) fn set_liveness(&self, store: u64, l: Liveness) {
        self.lock().liveness.insert(store, l);
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

impl RegionLocator for Fake {
    fn locate_key(&self, _key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        ready(Ok(self.snapshot()))
    }
    fn locate_end_key(&self, _key: &[u8]) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        ready(Ok(self.snapshot()))
    }
    fn locate_region_by_id(&self, _id: u64) -> BoxFuture<'static, Result<Arc<RegionSnapshot>>> {
        ready(Ok(self.snapshot()))
    }
    fn cached_region(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        let s = self.lock();
        s.region.clone().filter(|r| s.valid && r.ver == *ver)
    }
    fn cached_region_any(&self, ver: &RegionVerId) -> Option<Arc<RegionSnapshot>> {
        self.lock().region.clone().filter(|r| r.ver == *ver)
    }
    fn invalidate_region(&self, _ver: &RegionVerId, reason: InvalidReason) {
        let mut s = self.lock();
        s.valid = false;
        s.invalidations.push(reason);
    }
    fn schedule_reload(&self, _ver: &RegionVerId) {}
    fn schedule_delayed_reload(&self, _ver: &RegionVerId) {}
    fn switch_leader(&self, _ver: &RegionVerId, peer: &metapb::Peer) -> bool {
        let mut s = self.lock();
        let Some(r) = s.region.clone() else {
            return false;
        };
        let Some(pos) = r.region.peers.iter().position(|p| p.id == peer.id) else {
            return false;
        };
        let mut next = (*r).clone();
        next.work_tikv_idx = pos;
        s.region = Some(Arc::new(next));
        true
    }
    fn update_leader(&self, ver: &RegionVerId, leader: Option<&metapb::Peer>, _idx: usize) {
        if let Some(l) = leader {
            self.switch_leader(ver, l);
        }
    }
    fn switch_next_tikv_peer(&self, _ver: &RegionVerId, _current_idx: usize) {}
    fn on_epoch_not_match(
        &self,
        _bo: SharedBackoffer,
        ver: RegionVerId,
        _store_id: u64,
        _current_regions: Vec<metapb::Region>,
    ) -> BoxFuture<'static, Result<EpochNotMatchOutcome>> {
        self.invalidate_region(&ver, InvalidReason::EpochNotMatch);
        ready(Ok(EpochNotMatchOutcome::Updated))
    }
    fn on_bucket_version_not_match(&self, _ver: &RegionVerId, _version: u64, _keys: Vec<Vec<u8>>) {}
    fn cluster_id(&self) -> u64 {
        7
    }
}

impl StoreResolver for Fake {
    fn resolve_store(&self, store_id: u64) -> BoxFuture<'static, Result<Arc<StoreSnapshot>>> {
        ready(Ok(self.cached_store(store_id).unwrap_or_default()))
    }
    fn cached_store(&self, store_id: u64) -> Option<Arc<StoreSnapshot>> {
        let labels = self
            .lock()
            .labels
            .get(&store_id)
            .cloned()
            .unwrap_or_else(|| {
                vec![metapb::StoreLabel {
                    key: "id".into(),
                    value: store_id.to_string(),
                }]
            });
        Some(Arc::new(StoreSnapshot {
            id: store_id,
            addr: format!("store{store_id}"),
            labels,
            ..Default::default()
        }))
    }
    fn store_epoch(&self, store_id: u64) -> Option<u32> {
        Some(self.lock().epochs.get(&store_id).copied().unwrap_or(0))
    }
    fn invalidate_store(&self, store_id: u64, epoch: u32) -> bool {
        let mut s = self.lock();
        let cur = s.epochs.entry(store_id).or_insert(0);
        if *cur == epoch {
            *cur += 1;
            true
        } else {
            false
        }
    }
    fn mark_need_check(&self, store_id: u64) {
        self.lock().need_check.push(store_id);
    }
    fn liveness(&self, store_id: u64) -> Liveness {
        self.lock()
            .liveness
            .get(&store_id)
            .copied()
            .unwrap_or(Liveness::Reachable)
    }
    fn set_liveness(&self, store_id: u64, liveness: Liveness) {
        self.lock().liveness.insert(store_id, liveness);
    }
    fn probe_liveness(&self, store_id: u64) -> BoxFuture<'static, Liveness> {
        let mut s = self.lock();
        if s.probe_unreachable {
            s.liveness.insert(store_id, Liveness::Unreachable);
        }
        let l = s
            .liveness
            .get(&store_id)
            .copied()
            .unwrap_or(Liveness::Reachable);
        ready(l)
    }
    fn is_slow(&self, store_id: u64) -> bool {
        self.lock().slow.get(&store_id).copied().unwrap_or(false)
    }
    fn mark_slow(&self, store_id: u64) {
        self.lock().slow.insert(store_id, true);
    }
}

impl crate::locate::ConnectionControl for Fake {
    fn close_addr(&self, addr: &str) {
        self.lock().closed_addrs.push(addr.to_owned());
    }
    fn close_for_error(&self, _err: &crate::Error) -> bool {
        false
    }
}

/// Reading back what a `metrics_util` debugging recorder saw, for the tests of the layers
/// that record metrics.
pub(crate) mod recorded {
    use std::collections::BTreeMap;

    use metrics_util::debugging::{DebugValue, Snapshotter};

    /// Every observation of a local recorder: `(name, sorted labels) -> value`.
    pub(crate) type Observed = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

    /// Takes a snapshot of the recorder behind `snapshotter`.
    pub(crate) fn observed(snapshotter: &Snapshotter) -> Observed {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, value)| {
                let key = ck.key();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                ((key.name().to_owned(), labels), value)
            })
            .collect()
    }

    /// The [`Observed`] key of metric `name` with `labels` in any order.
    pub(crate) fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        (name.to_owned(), labels)
    }

    /// The counter's value, `None` when it was never registered.
    pub(crate) fn counter(obs: &Observed, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match obs.get(&key(name, labels)) {
            Some(DebugValue::Counter(n)) => Some(*n),
            _ => None,
        }
    }

    /// The histogram's samples, `None` when it was never registered.
    pub(crate) fn histogram(
        obs: &Observed,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<Vec<f64>> {
        match obs.get(&key(name, labels)) {
            Some(DebugValue::Histogram(v)) => Some(v.iter().map(|f| f.into_inner()).collect()),
            _ => None,
        }
    }
}
