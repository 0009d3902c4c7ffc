//! The raw KV store (spec §2.21): column families, TTL through the mock [`Clock`], CAS,
//! checksum, range delete and scans.
//!
//! Mirrors the `Raw*` methods of client-go's `internal/mockstore/mocktikv/mvcc_leveldb.go`
//! with TiKV's semantics where the spec departs from mocktikv (§7 #8-#10): `""` and
//! `"default"` are one family, raw data never mixes with MVCC data, the CAS truth table is
//! TiKV's, absent keys are left out of `RawBatchGet`, `key_only` is honoured.
//!
//! Every method takes the routed region's range in raw key space (empty = unbounded) and
//! clamps to it; the key-range checks themselves happen in the TiKV face (MC-2.4.2). Under
//! API V1 raw region bounds are raw keys; under API V2 they are memcomparable-encoded like
//! every region bound, and the face hands this store their decoded form, so the store never
//! compares a raw key with an encoded bound.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use tikv_proto::kvrpcpb;

use super::Clock;

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    /// Mock-clock milliseconds after which the entry is gone; `None` = never.
    expire_ms: Option<u64>,
}

/// The raw store shared by every store of a mock cluster.
#[derive(Debug)]
pub(crate) struct RawStore {
    clock: Clock,
    cfs: Mutex<HashMap<String, BTreeMap<Vec<u8>, Entry>>>,
}

fn cf_name(cf: &str) -> String {
    if cf.is_empty() || cf == "default" {
        "default".to_owned()
    } else {
        cf.to_owned()
    }
}

/// A region range in raw key space (already decoded from the region-bound encoding).
#[derive(Debug, Clone)]
pub(crate) struct Range<'a> {
    pub(crate) start: &'a [u8],
    pub(crate) end: &'a [u8],
}

fn max_bytes<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    if a > b { a } else { b }
}

/// The smaller of two upper bounds where empty means +inf.
fn min_end<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => {
            if a < b {
                a
            } else {
                b
            }
        }
    }
}

fn bounds(start: &[u8], end: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let hi = if end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(end.to_vec())
    };
    (Bound::Included(start.to_vec()), hi)
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones; MC-2.21.3).
pub(crate) fn crc64_xz(data: &[u8]) -> u64 {
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut crc = !0u64;
    for b in data {
        crc ^= u64::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl RawStore {
    pub(crate) fn new(clock: Clock) -> RawStore {
        RawStore {
            clock,
            cfs: Mutex::new(HashMap::new()),
        }
    }

    fn alive(&self, e: &Entry, now: u64) -> bool {
        e.expire_ms.is_none_or(|t| now < t)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, BTreeMap<Vec<u8>, Entry>>, u64) -> T,
    ) -> T {
        let now = self.clock.now_ms();
        let mut g = self.cfs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g, now)
    }

    fn get_entry(&self, cf: &str, key: &[u8]) -> Option<Entry> {
        self.with(|m, now| {
            m.get(&cf_name(cf))
                .and_then(|t| t.get(key))
                .filter(|e| self.alive(e, now))
                .cloned()
        })
    }

    pub(crate) fn get(&self, r: &kvrpcpb::RawGetRequest) -> kvrpcpb::RawGetResponse {
        match self.get_entry(&r.cf, &r.key) {
            Some(e) => kvrpcpb::RawGetResponse {
                value: e.value,
                ..Default::default()
            },
            None => kvrpcpb::RawGetResponse {
                not_found: true,
                ..Default::default()
            },
        }
    }

    pub(crate) fn batch_get(
        &self,
        r: &kvrpcpb::RawBatchGetRequest,
    ) -> kvrpcpb::RawBatchGetResponse {
        let pairs = r
            .keys
            .iter()
            .filter_map(|k| {
                self.get_entry(&r.cf, k).map(|e| kvrpcpb::KvPair {
                    key: k.clone(),
                    value: e.value,
                    ..Default::default()
                })
            })
            .collect();
        kvrpcpb::RawBatchGetResponse {
            pairs,
            ..Default::default()
        }
    }

    fn put_many(&self, cf: &str, pairs: Vec<(Vec<u8>, Vec<u8>, u64)>) {
        self.with(|m, now| {
            let t = m.entry(cf_name(cf)).or_default();
            for (k, v, ttl) in pairs {
                t.insert(
                    k,
                    Entry {
                        value: v,
                        expire_ms: (ttl > 0).then(|| now.saturating_add(ttl.saturating_mul(1000))),
                    },
                );
            }
        })
    }

    pub(crate) fn put(&self, r: &kvrpcpb::RawPutRequest) -> kvrpcpb::RawPutResponse {
        self.put_many(&r.cf, vec![(r.key.clone(), r.value.clone(), r.ttl)]);
        kvrpcpb::RawPutResponse::default()
    }

    pub(crate) fn batch_put(
        &self,
        r: &kvrpcpb::RawBatchPutRequest,
    ) -> kvrpcpb::RawBatchPutResponse {
        let ttl_of = |i: usize| -> Option<u64> {
            match r.ttls.len() {
                0 => Some(0),
                1 => Some(r.ttls[0]),
                n if n == r.pairs.len() => Some(r.ttls[i]),
                _ => None,
            }
        };
        if ttl_of(0).is_none() && !r.pairs.is_empty() {
            return kvrpcpb::RawBatchPutResponse {
                error: "The length of ttls does not equal to the length of pairs".to_owned(),
                ..Default::default()
            };
        }
        let pairs = r
            .pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), p.value.clone(), ttl_of(i).unwrap_or(0)))
            .collect();
        self.put_many(&r.cf, pairs);
        kvrpcpb::RawBatchPutResponse::default()
    }

    fn delete_keys(&self, cf: &str, keys: &[Vec<u8>]) {
        self.with(|m, _| {
            if let Some(t) = m.get_mut(&cf_name(cf)) {
                for k in keys {
                    t.remove(k);
                }
            }
        })
    }

    pub(crate) fn delete(&self, r: &kvrpcpb::RawDeleteRequest) -> kvrpcpb::RawDeleteResponse {
        self.delete_keys(&r.cf, std::slice::from_ref(&r.key));
        kvrpcpb::RawDeleteResponse::default()
    }

    pub(crate) fn batch_delete(
        &self,
        r: &kvrpcpb::RawBatchDeleteRequest,
    ) -> kvrpcpb::RawBatchDeleteResponse {
        self.delete_keys(&r.cf, &r.keys);
        kvrpcpb::RawBatchDeleteResponse::default()
    }

    pub(crate) fn delete_range_cf(&self, cf: &str, start: &[u8], end: &[u8]) {
        self.with(|m, _| {
            if let Some(t) = m.get_mut(&cf_name(cf)) {
                let keys: Vec<Vec<u8>> = t
                    .range(bounds(start, end))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    t.remove(&k);
                }
            }
        })
    }

    pub(crate) fn delete_range(
        &self,
        r: &kvrpcpb::RawDeleteRangeRequest,
    ) -> kvrpcpb::RawDeleteRangeResponse {
        self.delete_range_cf(&r.cf, &r.start_key, &r.end_key);
        kvrpcpb::RawDeleteRangeResponse::default()
    }

    /// Clears every family in `[start, end)` (UnsafeDestroyRange also destroys raw data).
    pub(crate) fn destroy_range(&self, start: &[u8], end: &[u8]) {
        let cfs: Vec<String> = self.with(|m, _| m.keys().cloned().collect());
        for cf in cfs {
            self.delete_range_cf(&cf, start, end);
        }
    }

    fn scan_range(
        &self,
        cf: &str,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
        key_only: bool,
        reverse: bool,
    ) -> Vec<kvrpcpb::KvPair> {
        self.with(|m, now| {
            let Some(t) = m.get(&cf_name(cf)) else {
                return Vec::new();
            };
            if !hi.is_empty() && lo >= hi {
                return Vec::new();
            }
            let it = t.range(bounds(lo, hi)).filter(|(_, e)| self.alive(e, now));
            let mk = |(k, e): (&Vec<u8>, &Entry)| kvrpcpb::KvPair {
                key: k.clone(),
                value: if key_only {
                    Vec::new()
                } else {
                    e.value.clone()
                },
                ..Default::default()
            };
            let limit = if limit == 0 { usize::MAX } else { limit };
            if reverse {
                it.rev().take(limit).map(mk).collect()
            } else {
                it.take(limit).map(mk).collect()
            }
        })
    }

    /// Forward: `[max(start, region start), min(end, region end))` ascending; reverse:
    /// `start_key` is the exclusive upper bound, `end_key` the inclusive lower bound, both
    /// clamped to the region, descending (MC-2.21.3).
    pub(crate) fn scan(
        &self,
        r: &kvrpcpb::RawScanRequest,
        region: &Range<'_>,
    ) -> kvrpcpb::RawScanResponse {
        let (lo, hi) = if r.reverse {
            (
                max_bytes(&r.end_key, region.start),
                min_end(&r.start_key, region.end),
            )
        } else {
            (
                max_bytes(&r.start_key, region.start),
                min_end(&r.end_key, region.end),
            )
        };
        kvrpcpb::RawScanResponse {
            kvs: self.scan_range(&r.cf, lo, hi, r.limit as usize, r.key_only, r.reverse),
            ..Default::default()
        }
    }

    pub(crate) fn get_key_ttl(
        &self,
        r: &kvrpcpb::RawGetKeyTtlRequest,
    ) -> kvrpcpb::RawGetKeyTtlResponse {
        let now = self.clock.now_ms();
        match self.get_entry(&r.cf, &r.key) {
            None => kvrpcpb::RawGetKeyTtlResponse {
                not_found: true,
                ..Default::default()
            },
            Some(e) => kvrpcpb::RawGetKeyTtlResponse {
                ttl: e.expire_ms.map_or(0, |t| t.saturating_sub(now) / 1000),
                ..Default::default()
            },
        }
    }

    /// TiKV's CAS truth table (MC-2.21.3, §7 #9), atomic under the store lock.
    pub(crate) fn compare_and_swap(&self, r: &kvrpcpb::RawCasRequest) -> kvrpcpb::RawCasResponse {
        self.with(|m, now| {
            let t = m.entry(cf_name(&r.cf)).or_default();
            let cur = t
                .get(&r.key)
                .filter(|e| self.alive(e, now))
                .map(|e| e.value.clone());
            let succeed = match &cur {
                None => r.previous_not_exist,
                Some(v) => !r.previous_not_exist && *v == r.previous_value,
            };
            if succeed {
                if r.delete {
                    t.remove(&r.key);
                } else {
                    t.insert(
                        r.key.clone(),
                        Entry {
                            value: r.value.clone(),
                            expire_ms: (r.ttl > 0)
                                .then(|| now.saturating_add(r.ttl.saturating_mul(1000))),
                        },
                    );
                }
            }
            kvrpcpb::RawCasResponse {
                succeed,
                previous_not_exist: cur.is_none(),
                previous_value: cur.unwrap_or_default(),
                ..Default::default()
            }
        })
    }

    /// CRC-64/XZ XOR over key ++ value of the default family, ranges clamped to the region.
    pub(crate) fn checksum(
        &self,
        r: &kvrpcpb::RawChecksumRequest,
        region: &Range<'_>,
    ) -> kvrpcpb::RawChecksumResponse {
        let mut resp = kvrpcpb::RawChecksumResponse::default();
        for kr in &r.ranges {
            let lo = max_bytes(&kr.start_key, region.start);
            let hi = min_end(&kr.end_key, region.end);
            for p in self.scan_range("", lo, hi, 0, false, false) {
                let mut buf = p.key.clone();
                buf.extend_from_slice(&p.value);
                resp.checksum ^= crc64_xz(&buf);
                resp.total_kvs += 1;
                resp.total_bytes += (p.key.len() + p.value.len()) as u64;
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_xz_check_value() {
        assert_eq!(crc64_xz(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }
}
