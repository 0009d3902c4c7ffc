//! Property test: random interleavings of prewrite/commit/rollback of several transactions
//! keep snapshot-isolation visibility (a read at ts sees exactly the latest commit <= ts) and
//! never let two overlapping transactions both commit the same key.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];
const TXNS: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    Prewrite { txn: usize, mask: u8 },
    Commit { txn: usize },
    Rollback { txn: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..TXNS, 1u8..16).prop_map(|(txn, mask)| Step::Prewrite { txn, mask }),
        (0..TXNS).prop_map(|txn| Step::Commit { txn }),
        (0..TXNS).prop_map(|txn| Step::Rollback { txn }),
    ]
}

#[derive(Default, Clone)]
struct Txn {
    start: u64,
    keys: Vec<&'static str>,
    prewritten: bool,
    done: bool,
}

/// Committed versions per key: commit ts -> (start ts, value).
type Model = BTreeMap<&'static str, BTreeMap<u64, (u64, String)>>;

async fn run(steps: Vec<Step>) {
    let h = H::new();
    let mut txns: Vec<Txn> = vec![Txn::default(); TXNS];
    let mut model: Model = BTreeMap::new();
    let mut now = 1u64;
    for s in steps {
        now += 1;
        match s {
            Step::Prewrite { txn, mask } => {
                let t = &mut txns[txn];
                if t.prewritten || t.done {
                    continue;
                }
                t.start = now;
                t.keys = (0..KEYS.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| KEYS[i])
                    .collect();
                let value = format!("t{txn}@{now}");
                let muts = t.keys.iter().map(|k| put(k, &value)).collect();
                let errs = h.prewrite(muts, t.keys[0], now, 0).await;
                if errs.is_empty() {
                    t.prewritten = true;
                } else {
                    // A failed prewrite wrote nothing; the transaction is abandoned.
                    t.done = true;
                }
            }
            Step::Commit { txn } => {
                let t = txns[txn].clone();
                if !t.prewritten || t.done {
                    continue;
                }
                let ks: Vec<&str> = t.keys.clone();
                if h.commit(&ks, t.start, now).await.is_none() {
                    let value = format!("t{txn}@{}", t.start);
                    for k in &t.keys {
                        model
                            .entry(k)
                            .or_default()
                            .insert(now, (t.start, value.clone()));
                    }
                }
                txns[txn].done = true;
            }
            Step::Rollback { txn } => {
                let t = txns[txn].clone();
                if !t.prewritten || t.done {
                    continue;
                }
                let ks: Vec<&str> = t.keys.clone();
                assert!(h.rollback(&ks, t.start).await.is_none());
                txns[txn].done = true;
            }
        }
    }
    // Roll back whatever is still pending so reads are not blocked.
    for t in txns.iter().filter(|t| t.prewritten && !t.done) {
        let ks: Vec<&str> = t.keys.clone();
        assert!(h.rollback(&ks, t.start).await.is_none());
    }
    assert_eq!(h.e.lock_count(), 0);
    for k in KEYS {
        let versions = model.get(k).cloned().unwrap_or_default();
        // No two committed writers of a key overlap (write-write conflict freedom).
        let spans: Vec<(u64, u64)> = versions.iter().map(|(c, (s, _))| (*s, *c)).collect();
        for w in spans.windows(2) {
            assert!(w[0].1 < w[1].0, "overlapping commits on {k}: {spans:?}");
        }
        for ts in 0..=now + 1 {
            let want = versions
                .range(..=ts)
                .next_back()
                .map(|(_, (_, v))| v.as_bytes().to_vec());
            assert_eq!(h.get(k, ts).await.unwrap(), want, "read {k}@{ts}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_isolation_visibility(steps in proptest::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(run(steps));
    }
}
