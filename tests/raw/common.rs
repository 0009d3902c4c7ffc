//! Fixtures of the raw client tests: the embedded mock cluster in client-go's two layouts
//! (rawkv_test.go's two stores with the leader on the first, api_mock_test.go's single
//! store), region splits in raw key space, liveness scripting, and a CRC64 to check
//! checksums against.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tikv::layers::locate::Liveness;
use tikv::mock::{LogEntry, Mock, MockOptions};
use tikv::raw::{Client, ClientBuilder};
use tikv::store_cache::{FnProber, ProbeTarget};

/// A raw client over an embedded mock cluster.
pub struct Env {
    /// The mock cluster (PD + TiKV).
    pub mock: Mock,
    /// The client under test.
    pub client: Client,
    /// Store ids in creation order; the first holds the leader.
    pub stores: Vec<u64>,
    /// Peer ids of the first region, in store order.
    pub peers: Vec<u64>,
    /// The first region.
    pub region: u64,
}

impl Env {
    /// client-go's `testRawkvSuite.SetupTest`: two stores, one region, leader on store 1,
    /// store re-resolve every second (the `injectReResolveInterval` failpoint).
    pub async fn two_stores() -> Env {
        Env::two_stores_with(|b| b).await
    }

    /// [`two_stores`](Self::two_stores) with extra builder settings.
    pub async fn two_stores_with(f: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Env {
        let mock = Mock::new(MockOptions::default());
        let (stores, peers, region, _leader) = mock.cluster().bootstrap_with_multi_stores(2);
        let client = f(Client::builder().embedded(mock.clone()))
            .build()
            .await
            .unwrap();
        client
            .cluster()
            .store_cache()
            .set_health_check_intervals(Duration::from_secs(1), Duration::from_secs(1));
        Env {
            mock,
            client,
            stores,
            peers,
            region,
        }
    }

    /// client-go's `testRawKVSuite.SetupTest` (api_mock_test.go): a single store.
    pub async fn single_store() -> Env {
        Env::single_store_with(|b| b).await
    }

    /// [`single_store`](Self::single_store) with extra builder settings.
    pub async fn single_store_with(f: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Env {
        let mock = Mock::new(MockOptions::default());
        let (store, peer, region) = mock.cluster().bootstrap_with_single_store();
        let client = f(Client::builder().embedded(mock.clone()))
            .build()
            .await
            .unwrap();
        Env {
            mock,
            client,
            stores: vec![store],
            peers: vec![peer],
            region,
        }
    }

    /// The address the mock gave a store (client-go's `storeAddr`).
    pub fn store_addr(&self, id: u64) -> String {
        self.mock.cluster().get_store(id).unwrap().address
    }

    /// What most rawkv_test.go tests do after writing: store 2 takes store 1's address
    /// (and store 1 store 2's), store 1 is removed, leadership moves to store 2's peer and
    /// store 1's peer leaves the region; then the `injectLiveness` failpoint makes the
    /// address `store1` reachable and `store2` unreachable.
    pub fn replace_store1_with_store2(&self) {
        let c = self.mock.cluster();
        let (s1, s2) = (self.stores[0], self.stores[1]);
        let addr1 = self.store_addr(s1);
        let addr2 = self.store_addr(s2);
        c.update_store_addr(s1, &addr2, &[]).unwrap();
        c.update_store_addr(s2, &addr1, &[]).unwrap();
        c.remove_store(s1);
        c.change_leader(self.region, self.peers[1]).unwrap();
        c.remove_peer(self.region, self.peers[0]).unwrap();
        self.inject_liveness(&addr1, &addr2);
    }

    /// The `injectLiveness` failpoint: `reachable` answers the probe, `unreachable` does
    /// not, anything else is unknown.
    pub fn inject_liveness(&self, reachable: &str, unreachable: &str) {
        let (up, down) = (reachable.to_owned(), unreachable.to_owned());
        self.client
            .cluster()
            .store_cache()
            .set_prober(Arc::new(FnProber(move |t: &ProbeTarget| {
                if t.addr == up {
                    Liveness::Reachable
                } else if t.addr == down {
                    Liveness::Unreachable
                } else {
                    Liveness::Unknown
                }
            })));
    }

    /// Splits the region holding `key` at `key` (raw keys are PD keys under API V1; the
    /// mock's `SplitRaw`).
    pub fn split(&self, key: &[u8]) {
        split_raw(&self.mock, key);
    }

    /// client-go's `split(regionKey, splitKey)`: splits the region holding `region_key` at
    /// `split_key`, with a fresh region and peer id (mocktikv `SplitRaw`). The region is
    /// looked up in the mock, not in the client's cache, which may be stale by then.
    pub fn split_located(&self, region_key: &[u8], split_key: &[u8]) {
        let c = self.mock.cluster();
        let region = c.get_region_by_key(region_key).unwrap().region;
        let (new_region, peer) = (c.alloc_id(), c.alloc_id());
        c.split_raw(region.id, new_region, split_key, &[peer], peer)
            .unwrap();
    }

    /// The raw commands the mock served so far.
    pub fn raw_requests(&self) -> Vec<LogEntry> {
        self.mock
            .request_log()
            .into_iter()
            .filter(|e| e.cmd_type.name().starts_with("Raw"))
            .collect()
    }
}

/// Splits the mock at each raw key (API V1 raw keys are PD keys as they are).
pub fn split_raw(mock: &Mock, key: &[u8]) {
    mock.cluster().split_at_keys(&[key.to_vec()]);
}

/// CRC-64/XZ: Go's `crc64.New(crc64.MakeTable(crc64.ECMA))`, which TiKV's raw checksum
/// uses (reflected ECMA-182 polynomial, all-ones init and final xor), bit by bit.
pub fn crc64_ecma(parts: &[&[u8]]) -> u64 {
    const REFLECTED_ECMA: u64 = 0xC96C_5795_D787_0F42;
    let mut crc = u64::MAX;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u64::from(*byte);
        for _ in 0..8 {
            let low = crc & 1;
            crc >>= 1;
            if low == 1 {
                crc ^= REFLECTED_ECMA;
            }
        }
    }
    crc ^ u64::MAX
}

/// `s` as bytes.
pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Keys of `pairs` as strings, values as strings (for readable assertions).
pub fn strings(pairs: &[tikv::raw::KvPair]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|p| {
            (
                String::from_utf8_lossy(&p.key).into_owned(),
                String::from_utf8_lossy(&p.value).into_owned(),
            )
        })
        .collect()
}

/// The API V1/V2 id of a keyspace.
pub fn keyspace_id(meta: &tikv::proto::keyspacepb::KeyspaceMeta) -> u32 {
    match meta.keyspace {
        Some(tikv::proto::keyspacepb::keyspace_meta::Keyspace::Id(id)) => id,
        _ => panic!("keyspace {} has no V2 id", meta.name),
    }
}
