//! TSO batching: timestamps per PD RPC with 1/8/64/512 concurrent callers against a PD
//! that answers every TSO request after a fixed 1 ms delay.

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tikv::pd::{PdClient, PdClientOptions};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/pd/fake.rs"]
mod fake;

#[allow(clippy::print_stdout)]
fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, client) = rt.block_on(async {
        let cluster = fake::FakeCluster::start(1, 1).await;
        cluster.state.tso_delay_ms.store(1, Ordering::SeqCst);
        let client = PdClient::connect(&cluster.urls(), PdClientOptions::default())
            .await
            .expect("connect");
        (cluster, client)
    });
    let mut g = c.benchmark_group("tso");
    for callers in [1usize, 8, 64, 512] {
        let before_rpcs = client.tso_rpc_count();
        let before_ts = cluster.state.tso_allocated.load(Ordering::SeqCst);
        g.bench_with_input(BenchmarkId::new("callers", callers), &callers, |b, &n| {
            b.to_async(&rt).iter(|| {
                let client = client.clone();
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        let c = client.clone();
                        set.spawn(async move { c.get_ts().await });
                    }
                    while let Some(r) = set.join_next().await {
                        let _ = r.expect("task").expect("ts");
                    }
                }
            })
        });
        let rpcs = client.tso_rpc_count() - before_rpcs;
        let ts = cluster.state.tso_allocated.load(Ordering::SeqCst) - before_ts;
        println!(
            "tso callers={callers}: {ts} timestamps in {rpcs} RPCs = {:.2} per RPC",
            ts as f64 / rpcs.max(1) as f64
        );
    }
    g.finish();
    let _ = Duration::ZERO;
}

criterion_group!(benches, bench);
criterion_main!(benches);
