//! Transport benchmark: unbatched (unary) vs batched (`BatchCommands`) requests against a
//! loopback gRPC server that delays every message, with 1 and with many concurrent callers.
//! Besides criterion's timings it prints, per case, the requests per stream message and the
//! p50 latency of single requests.
//!
//! Batched cases run with the default batch policy (client-go's "standard", which waits for
//! more requests only when recent ones arrived close together) and with "positive" (always
//! waits briefly). The server answers each stream message in turn after its delay, so with
//! many callers it is the bottleneck.
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
        for (mode, policy) in [
            ("unbatched", None),
            ("batched", Some(BatchPolicy::Standard)),
            ("batched-positive", Some(BatchPolicy::Positive)),
        ] {
            let cfg = match policy {
                Some(p) => TikvClientConfig::default()
                    .with_batch_policy(p)
                    .with_grpc_connection_count(1),
                None => TikvClientConfig::default()
                    .with_max_batch_size(0)
                    .with_grpc_connection_count(1),
            };
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
                        let start = tokio::time::Instant::now();
                        for _ in 0..iters {
                            let mut hs = Vec::with_capacity(callers);
                            for _ in 0..callers {
                                let t = t.clone();
                                let addr = addr.clone();
                                let lat = lat.clone();
                                hs.push(tokio::spawn(async move {
                                    let mut r =
                                        RpcRequest::new(kvrpcpb::PrewriteRequest::default());
                                    r.target.addr = addr;
                                    let s = tokio::time::Instant::now();
                                    t.send_request(r).await.unwrap();
                                    lat.lock().unwrap().push(s.elapsed());
                                }));
                            }
                            for h in hs {
                                h.await.unwrap();
                            }
                        }
                        start.elapsed()
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
            println!("{name}: p50 {p50:?}, requests per stream message {per_msg:.2}");
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
