//! Transport benchmark: unbatched (unary) vs batched (`BatchCommands`) requests against a
//! loopback gRPC server that delays every message, with 1 and with many concurrent callers.
//!
//! Each caller sends its requests one after another (a closed loop), so with `n` callers
//! `n` requests are in flight; criterion's time is per request. Besides the timings it
//! prints, per case, the p50 latency of single requests, the requests per stream message
//! and that figure as a share of the requests in flight.
//!
//! The server answers each stream message in turn after its delay, so with many callers it
//! is the bottleneck. Batched cases: the default policy (client-go's "standard", which
//! waits for more requests only when recent ones arrived close together), "positive"
//! (always waits briefly), and the default policy with a batch window of one message
//! (`TikvClientConfig::batch_window`, off by default): a batch is held while the
//! connection's last message is unstarted.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    unreachable_pub
)]

#[path = "../tests/transport/server.rs"]
#[allow(dead_code)]
mod server;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use server::MockServer;
use tikv::config::{BatchPolicy, TikvClientConfig};
use tikv::transport::{Transport, TransportConfig};
use tikv_layers::RpcRequest;
use tikv_proto::kvrpcpb;

const SERVER_DELAY: Duration = Duration::from_micros(200);

fn cases() -> Vec<(&'static str, TikvClientConfig)> {
    let one_conn = || TikvClientConfig::default().with_grpc_connection_count(1);
    vec![
        ("unbatched", one_conn().with_max_batch_size(0)),
        ("batched", one_conn()),
        (
            "batched-positive",
            one_conn().with_batch_policy(BatchPolicy::Positive),
        ),
        ("batched-window", one_conn().with_batch_window(1)),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(MockServer::start());
    server.set_delay(SERVER_DELAY);
    let addr = server.addr();
    let mut group = c.benchmark_group("transport");
    for callers in [1usize, 64] {
        for (mode, cfg) in cases() {
            let t = rt.block_on(async { Transport::new(TransportConfig::new(cfg)) });
            let lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
            server.state.batch_messages.store(0, Ordering::Relaxed);
            server.state.batch_requests.store(0, Ordering::Relaxed);
            let name = format!("{mode}/{callers}-callers");
            group.bench_function(&name, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let t = t.clone();
                    let addr = addr.clone();
                    let lat = lat.clone();
                    async move {
                        // `iters` requests in all, spread over the callers.
                        let per_caller = iters.div_ceil(callers as u64).max(1);
                        let start = tokio::time::Instant::now();
                        let hs: Vec<_> = (0..callers)
                            .map(|_| {
                                let t = t.clone();
                                let addr = addr.clone();
                                let lat = lat.clone();
                                tokio::spawn(async move {
                                    let mut mine = Vec::with_capacity(per_caller as usize);
                                    for _ in 0..per_caller {
                                        let mut r =
                                            RpcRequest::new(kvrpcpb::PrewriteRequest::default());
                                        r.target.addr = addr.clone();
                                        let s = tokio::time::Instant::now();
                                        t.send_request(r).await.unwrap();
                                        mine.push(s.elapsed());
                                    }
                                    lat.lock().unwrap().extend(mine);
                                })
                            })
                            .collect();
                        for h in hs {
                            h.await.unwrap();
                        }
                        let sent = per_caller * callers as u64;
                        start.elapsed().mul_f64(iters as f64 / sent as f64)
                    }
                });
            });
            let mut l = lat.lock().unwrap().clone();
            l.sort();
            let p50 = l.get(l.len() / 2).copied().unwrap_or_default();
            let msgs = server.state.batch_messages.load(Ordering::Relaxed);
            let reqs = server.state.batch_requests.load(Ordering::Relaxed);
            let per_msg = if msgs > 0 {
                reqs as f64 / msgs as f64
            } else {
                1.0
            };
            println!(
                "{name}: p50 {p50:?}, requests per stream message {per_msg:.2} \
                 ({:.2}x of the {callers} in flight)",
                per_msg / callers as f64
            );
            t.close();
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
