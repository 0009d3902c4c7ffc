//! Pipeline overhead benchmark (issue 6 acceptance): one raw get through the full default
//! stack (`tikv::raw::Client::get`: trace, metrics, shard, retry, route, replica,
//! interceptor, timeout, api codec, tonic transport, real PD client and region cache) against
//! a bare tonic `TikvClient::raw_get` to the same mock gRPC server, in the same run.
//!
//! Goals: CPU per get at most 1.3x the bare call, p50 at most +10 us, at most 10 heap
//! allocations per get beyond the bare call.
//!
//! How it measures:
//!
//! - The mock cluster (PD + one TiKV store, `tikv::mock::MockGrpc` on loopback) runs in a
//!   child process: this binary re-executed with `TIKV_PIPELINE_BENCH_SERVER` set. So the
//!   process CPU time (`cpu_time::ProcessTime`) and the allocation counter (a counting
//!   global allocator, `stats_alloc`) of this process see only client-side work: the
//!   caller, tonic/hyper tasks, the layers and the client's background loops.
//! - One caller, sequential gets, on a 2-worker tokio runtime.
//! - Criterion measures wall time per get (group `pipeline`) and process CPU time per get
//!   (group `pipeline_cpu`, via `iter_custom`) for the three headline cases.
//! - A measured pass of `PIPELINE_BENCH_OPS` gets (default 10 000) per case then prints a
//!   table: CPU per get, p50/p99 latency, allocations and bytes per get, and the ratios
//!   against the bare call. Cases run interleaved in 20 rounds (CPU is the median round), so
//!   the noise of a shared machine hits them alike. A breakdown runs partial stacks
//!   (transport only, + timeout and codec, + the region send loop, + shard, + metrics and
//!   trace, the `PipelineBuilder` pipeline, the raw client) over their own transport, for
//!   both the batch-commands and the unary transport, to show where the cost goes.
//! - `PIPELINE_BENCH_ONLY=<case>` runs one case alone (no criterion), for profilers, e.g.
//!   `PIPELINE_BENCH_ONLY='batched/+shard' heaptrack target/release/deps/pipeline-* --bench`.
//!
//! Run: `cargo bench --bench pipeline -- --quick` (add `--noplot`). Under `cargo test
//! --benches` (criterion's test mode) every case runs a few gets only.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

use std::alloc::System;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cpu_time::ProcessTime;
use criterion::Criterion;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tikv::cluster::Cluster;
use tikv::config::Config;
use tikv::layers::api_codec::{ApiCodecLayer, Codec, Mode};
use tikv::layers::backoff::{Backoffer, SharedBackoffer};
use tikv::layers::interceptor::InterceptorLayer;
use tikv::layers::metrics::MetricsLayer;
use tikv::layers::replica::{RegionServices, ReplicaLayer};
use tikv::layers::retry::RetryLayer;
use tikv::layers::route::RouteLayer;
use tikv::layers::shard::ShardLayer;
use tikv::layers::timeout::{DefaultTimeoutPolicy, TimeoutLayer};
use tikv::layers::trace::{AttemptTraceLayer, TraceLayer};
use tikv::layers::{CommandResponse, RpcRequest};
use tikv::mock::{Mock, MockGrpc, MockOptions};
use tikv::pipeline::{BoxedStage, PipelineBuilder};
use tikv::proto::kvrpcpb;
use tikv::proto::pdpb::{self, pd_client::PdClient};
use tikv::proto::tikvpb::tikv_client::TikvClient;
use tikv::raw::{self, Client};
use tikv::transport::Transport;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, ServiceBuilder, ServiceExt};

/// Counts every heap allocation of this process (no `unsafe` needed on our side).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Set in the child process that serves the mock cluster.
const SERVER_ENV: &str = "TIKV_PIPELINE_BENCH_SERVER";
/// Overrides the number of measured gets per case in the table.
const OPS_ENV: &str = "PIPELINE_BENCH_OPS";
/// Runs one case only (no criterion, no table), for profilers (`heaptrack`, `perf`,
/// `valgrind --tool=dhat`): `bare`, `full-batched`, `full-unary`, or `<mode>/<stack>` with
/// mode `batched` or `unary` and a stack name of the breakdown (`batched/+shard`).
const ONLY_ENV: &str = "PIPELINE_BENCH_ONLY";
/// The child's first stdout line: this prefix, then PD's `host:port`.
const PD_LINE: &str = "pd-addr ";
/// Rounds of the interleaved measured pass.
const ROUNDS: usize = 20;
const KEY: &[u8] = b"pipeline-bench-key";
const VALUE: &[u8] = b"pipeline-bench-value-0123456789abcdef";

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    // Criterion's own convention: `cargo bench` passes `--bench`; anything else (cargo test
    // --benches) is a smoke run.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let listing = std::env::args().any(|a| a == "--list");
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let ops = std::env::var(OPS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench_mode { 10_000 } else { 20 });
    let bench = Bench::start();
    if let Ok(case) = std::env::var(ONLY_ENV) {
        run_only(&bench, &case, ops);
        return;
    }
    criterion_groups(&mut c, &bench);
    c.final_summary();
    if !listing {
        report(&bench, ops);
    }
}

// ----- the server (child process) -----

/// Serves the mock cluster until stdin closes (the parent exited or dropped us).
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let mock = Mock::new(MockOptions::default());
    mock.cluster().bootstrap_with_single_store();
    let grpc = MockGrpc::start(&mock).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PD_LINE}{}", grpc.pd_addr()).unwrap();
    out.flush().unwrap();
    drop(out);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(grpc);
}

/// The child process serving the mock cluster; killed on drop.
struct Server {
    child: Child,
    pd_addr: String,
}

impl Server {
    fn spawn() -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut child = Process::new(exe)
            .env(SERVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pd_addr = line
            .trim()
            .strip_prefix(PD_LINE)
            .unwrap_or_else(|| panic!("unexpected server line {line:?}"))
            .to_owned();
        Server { child, pd_addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the client side -----

/// Everything the cases need, set up once.
struct Bench {
    rt: Runtime,
    /// The raw client with the default config (batch-commands transport).
    batched: Client,
    /// The raw client with `max_batch_size = 0` (unary transport).
    unary: Client,
    /// A bare tonic client on a channel to the store.
    bare: TikvClient<Channel>,
    /// The request context of the key's region (id, epoch, leader) as PD reports it.
    ctx: kvrpcpb::Context,
    store_addr: String,
    store_id: u64,
    _server: Server,
}

impl Bench {
    fn start() -> Bench {
        let server = Server::spawn();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let pd_addr = server.pd_addr.clone();
        let (batched, unary, bare, ctx, store_addr, store_id) = rt.block_on(async move {
            let batched = Client::builder()
                .pd_endpoints(&[&pd_addr])
                .build()
                .await
                .unwrap();
            let unary = Client::builder()
                .pd_endpoints(&[&pd_addr])
                .config(unary_config())
                .build()
                .await
                .unwrap();
            batched.put(KEY, VALUE).await.unwrap();

            // The bare side learns the route from PD itself, as tests/mock/main.rs does.
            let mut pd = PdClient::new(channel(&pd_addr).await);
            let r = pd
                .get_region(pdpb::GetRegionRequest {
                    region_key: KEY.to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let (region, leader) = (r.region.unwrap(), r.leader.unwrap());
            let store = pd
                .get_store(pdpb::GetStoreRequest {
                    store_id: leader.store_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .store
                .unwrap();
            let ctx = kvrpcpb::Context {
                region_id: region.id,
                region_epoch: region.region_epoch,
                peer: Some(leader),
                ..Default::default()
            };
            let bare = TikvClient::new(channel(&store.address).await);
            (batched, unary, bare, ctx, store.address, store.id)
        });
        Bench {
            rt,
            batched,
            unary,
            bare,
            ctx,
            store_addr,
            store_id,
            _server: server,
        }
    }

    /// One bare tonic `RawGet`.
    fn bare_get(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut client = self.bare.clone();
        let req = kvrpcpb::RawGetRequest {
            context: Some(self.ctx.clone()),
            key: KEY.to_vec(),
            ..Default::default()
        };
        async move {
            let resp = client.raw_get(req).await.unwrap().into_inner();
            check(&resp);
        }
    }

    /// One `raw::Client::get` through the full default stack.
    fn client_get(client: &Client) -> impl Future<Output = ()> + Send + 'static {
        let client = client.clone();
        async move {
            let v = client.get(KEY).await.unwrap();
            assert_eq!(v.as_deref(), Some(VALUE));
        }
    }

    /// One get through a partial stack; `routed` says whether the stack routes the request
    /// itself (else the request carries the context and target the route/replica layers
    /// would have set).
    fn stack_get(&self, stack: &Stack) -> impl Future<Output = ()> + Send + 'static {
        let get = kvrpcpb::RawGetRequest {
            key: KEY.to_vec(),
            ..Default::default()
        };
        let req = if stack.routed {
            RpcRequest::new(get).backoffer(SharedBackoffer::new(Backoffer::new(
                raw::RAW_MAX_BACKOFF_MS,
            )))
        } else {
            let mut r = RpcRequest::with_context(get, self.ctx.clone());
            r.target.addr.clone_from(&self.store_addr);
            r.target.store_id = self.store_id;
            r
        };
        let svc = stack.svc.clone();
        async move {
            let resp = svc.oneshot(req).await.unwrap();
            match resp.resp {
                CommandResponse::RawGet(r) => check(&r),
                other => panic!("unexpected response {other:?}"),
            }
        }
    }
}

async fn channel(addr: &str) -> Channel {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri)
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

fn check(r: &kvrpcpb::RawGetResponse) {
    assert!(r.region_error.is_none(), "{r:?}");
    assert!(r.error.is_empty(), "{r:?}");
    assert_eq!(r.value, VALUE);
}

// ----- partial stacks (the breakdown) -----

/// A partial stack over its own transport, assembled as `PipelineBuilder::build` assembles
/// the default one (same layers, same boxed stage boundaries).
struct Stack {
    name: &'static str,
    svc: BoxedStage,
    routed: bool,
}

/// The partial stacks over `transport`, innermost first, ending with the whole default
/// pipeline built by `PipelineBuilder` over the same transport.
fn stacks(cluster: &Cluster, transport: &Transport) -> Vec<Stack> {
    let terminal: BoxedStage = BoxedStage::new(transport.clone());
    let locator = Arc::new(cluster.region_cache().clone());
    let services = RegionServices {
        locator: locator.clone(),
        stores: Arc::new(cluster.store_cache().clone()),
    };
    let attempt: BoxedStage = BoxedStage::new(
        ServiceBuilder::new()
            .layer(TimeoutLayer::with_policy(DefaultTimeoutPolicy::new()))
            .layer(ApiCodecLayer::new(Codec::v1(Mode::Raw)))
            .service(terminal.clone()),
    );
    let send_loop: BoxedStage = BoxedStage::new(
        ServiceBuilder::new()
            .layer(RetryLayer::new(services.clone()))
            .layer(RouteLayer::new(locator.clone()))
            .layer(ReplicaLayer::new(services))
            .layer(InterceptorLayer::default())
            .layer(AttemptTraceLayer::new())
            .service(attempt.clone()),
    );
    let shard: BoxedStage =
        BoxedStage::new(ShardLayer::new(locator).layer(BoxedStage::new(send_loop.clone())));
    let observed: BoxedStage = BoxedStage::new(
        ServiceBuilder::new()
            .layer(TraceLayer::default())
            .layer(MetricsLayer::new())
            .service(shard.clone()),
    );
    let pipeline = PipelineBuilder::new()
        .transport(transport.clone())
        .build(cluster)
        .unwrap();
    vec![
        Stack {
            name: "transport",
            svc: terminal,
            routed: false,
        },
        Stack {
            name: "+timeout+codec",
            svc: attempt,
            routed: false,
        },
        Stack {
            name: "+send loop",
            svc: send_loop,
            routed: true,
        },
        Stack {
            name: "+shard",
            svc: shard,
            routed: true,
        },
        Stack {
            name: "+metrics+trace",
            svc: observed,
            routed: true,
        },
        Stack {
            name: "PipelineBuilder",
            svc: BoxedStage::new(pipeline),
            routed: true,
        },
    ]
}

// ----- criterion -----

fn criterion_groups(c: &mut Criterion, b: &Bench) {
    let mut wall = c.benchmark_group("pipeline");
    wall.bench_function("bare-tonic", |x| x.to_async(&b.rt).iter(|| b.bare_get()));
    wall.bench_function("full-batched", |x| {
        x.to_async(&b.rt).iter(|| Bench::client_get(&b.batched))
    });
    wall.bench_function("full-unary", |x| {
        x.to_async(&b.rt).iter(|| Bench::client_get(&b.unary))
    });
    wall.finish();

    // The same three cases, timed in process CPU (client side only: the server is another
    // process).
    let mut cpu = c.benchmark_group("pipeline_cpu");
    cpu.bench_function("bare-tonic", |x| {
        x.to_async(&b.rt)
            .iter_custom(|n| cpu_loop(n, || b.bare_get()))
    });
    cpu.bench_function("full-batched", |x| {
        x.to_async(&b.rt)
            .iter_custom(|n| cpu_loop(n, || Bench::client_get(&b.batched)))
    });
    cpu.bench_function("full-unary", |x| {
        x.to_async(&b.rt)
            .iter_custom(|n| cpu_loop(n, || Bench::client_get(&b.unary)))
    });
    cpu.finish();
}

/// Runs `n` ops sequentially and returns the process CPU time they took.
async fn cpu_loop<F, Fut>(n: u64, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = ProcessTime::now();
    for _ in 0..n {
        op().await;
    }
    start.elapsed()
}

// ----- the measured pass and the table -----

/// What one case cost per get.
#[derive(Debug, Clone, Copy)]
struct Stats {
    /// Process CPU per get: the median over the rounds.
    cpu: Duration,
    /// Wall time per get over all rounds.
    wall: Duration,
    p50: Duration,
    p99: Duration,
    allocs: f64,
    bytes: f64,
}

/// One case of the measured pass.
#[derive(Clone, Copy)]
enum Case<'a> {
    Bare,
    Client(&'a Client),
    Stack(&'a Stack),
}

impl Bench {
    /// One get of `case` (one future type for every case, so cases can be interleaved
    /// without boxing).
    async fn run(&self, case: Case<'_>) {
        match case {
            Case::Bare => self.bare_get().await,
            Case::Client(c) => Bench::client_get(c).await,
            Case::Stack(s) => self.stack_get(s).await,
        }
    }
}

/// Running totals of one case.
#[derive(Default)]
struct Acc {
    lat: Vec<Duration>,
    cpu_per_op: Vec<Duration>,
    wall: Duration,
    allocs: usize,
    bytes: usize,
}

/// Measures `ops` sequential gets of every case, interleaved: `rounds` rounds, each running
/// every case for `ops / rounds` gets, after one warm-up round. Interleaving spreads the
/// noise of a shared machine over all cases alike; the CPU figure is the median of the
/// rounds.
async fn measure(b: &Bench, cases: &[Case<'_>], ops: usize) -> Vec<Stats> {
    let rounds = ROUNDS.min(ops).max(1);
    let per_round = (ops / rounds).max(1);
    for &c in cases {
        for _ in 0..per_round {
            b.run(c).await;
        }
    }
    let mut accs: Vec<Acc> = cases
        .iter()
        .map(|_| Acc {
            lat: Vec::with_capacity(per_round * rounds),
            cpu_per_op: Vec::with_capacity(rounds),
            ..Acc::default()
        })
        .collect();
    for _ in 0..rounds {
        for (&c, acc) in cases.iter().zip(accs.iter_mut()) {
            let region = Region::new(GLOBAL);
            let cpu = ProcessTime::now();
            let wall = Instant::now();
            for _ in 0..per_round {
                let s = Instant::now();
                b.run(c).await;
                acc.lat.push(s.elapsed());
            }
            acc.wall += wall.elapsed();
            acc.cpu_per_op.push(cpu.elapsed() / per_round as u32);
            let alloc = region.change();
            acc.allocs += alloc.allocations;
            acc.bytes += alloc.bytes_allocated;
        }
    }
    accs.into_iter()
        .map(|mut a| {
            let n = a.lat.len().max(1);
            a.lat.sort_unstable();
            a.cpu_per_op.sort_unstable();
            let at = |v: &[Duration], q: f64| {
                v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or_default()
            };
            Stats {
                cpu: at(&a.cpu_per_op, 0.5),
                wall: a.wall / n as u32,
                p50: at(&a.lat, 0.5),
                p99: at(&a.lat, 0.99),
                allocs: a.allocs as f64 / n as f64,
                bytes: a.bytes as f64 / n as f64,
            }
        })
        .collect()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(name: &str, s: &Stats, base: &Stats) {
    println!(
        "{name:<34} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>9.0} | {:>6.2}x {:>+8.1} {:>+8.1}",
        us(s.cpu),
        us(s.wall),
        us(s.p50),
        us(s.p99),
        s.allocs,
        s.bytes,
        s.cpu.as_secs_f64() / base.cpu.as_secs_f64().max(1e-12),
        us(s.p50) - us(base.p50),
        s.allocs - base.allocs,
    );
}

fn header(title: &str, base: &str) {
    println!();
    println!("{title} (ratios and deltas against {base})");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} | {:>7} {:>8} {:>8}",
        "case",
        "cpu us",
        "wall us",
        "p50 us",
        "p99 us",
        "allocs",
        "bytes",
        "cpu",
        "p50 us",
        "allocs"
    );
}

fn report(b: &Bench, ops: usize) {
    println!();
    println!(
        "pipeline: {ops} sequential raw gets per case (1 caller, {ROUNDS} interleaved rounds); \
         client-side process CPU and heap allocations (the mock cluster is another process)"
    );
    let st = b.rt.block_on(measure(
        b,
        &[Case::Bare, Case::Client(&b.batched), Case::Client(&b.unary)],
        ops,
    ));
    let (bare, full_batched, full_unary) = (st[0], st[1], st[2]);
    header("headline", "bare-tonic");
    row("bare-tonic (TikvClient::raw_get)", &bare, &bare);
    row("full stack, batch-commands", &full_batched, &bare);
    row("full stack, unary", &full_unary, &bare);
    let verdict = |name: &str, s: &Stats| {
        let cpu = s.cpu.as_secs_f64() / bare.cpu.as_secs_f64().max(1e-12);
        let p50 = us(s.p50) - us(bare.p50);
        let allocs = s.allocs - bare.allocs;
        println!(
            "goal check {name}: cpu {cpu:.2}x (goal <= 1.30) {}, p50 {p50:+.1} us \
             (goal <= +10) {}, allocs {allocs:+.1} (goal <= 10) {}",
            ok(cpu <= 1.3),
            ok(p50 <= 10.0),
            ok(allocs <= 10.0),
        );
    };
    verdict("batch-commands", &full_batched);
    verdict("unary", &full_unary);

    // Breakdown: partial stacks, each over a transport of its mode, interleaved with the
    // bare call and the raw client of that mode.
    for (mode, cfg, client) in [
        ("batch-commands", Config::default(), &b.batched),
        ("unary", unary_config(), &b.unary),
    ] {
        let transport =
            b.rt.block_on(async { Transport::from_config(&cfg).await.unwrap() });
        let list = stacks(b.batched.cluster(), &transport);
        let mut cases = vec![Case::Bare];
        cases.extend(list.iter().map(Case::Stack));
        cases.push(Case::Client(client));
        let st = b.rt.block_on(measure(b, &cases, ops));
        let bare = st[0];
        let mut rows: Vec<(&str, Stats)> = list
            .iter()
            .map(|s| s.name)
            .zip(st[1..].iter().copied())
            .collect();
        if let Some(last) = st.last() {
            rows.push(("raw::Client::get", *last));
        }
        header(&format!("breakdown, {mode} transport"), "bare-tonic");
        row("bare-tonic", &bare, &bare);
        for (name, st) in &rows {
            row(name, st, &bare);
        }
        println!("step costs (each row minus the one above it; the first minus bare-tonic):");
        let mut last = &bare;
        for (name, st) in &rows {
            println!(
                "  {name:<32} cpu {:>+7.1} us  allocs {:>+6.1}  bytes {:>+7.0}",
                us(st.cpu) - us(last.cpu),
                st.allocs - last.allocs,
                st.bytes - last.bytes,
            );
            last = st;
        }
        transport.close();
    }
}

fn unary_config() -> Config {
    let mut c = Config::default();
    c.tikv_client = c.tikv_client.with_max_batch_size(0);
    c
}

/// The `PIPELINE_BENCH_ONLY` mode: one case, one row.
fn run_only(b: &Bench, case: &str, ops: usize) {
    let one = |c: Case<'_>| b.rt.block_on(measure(b, &[c], ops))[0];
    let st = match case {
        "bare" => one(Case::Bare),
        "full-batched" => one(Case::Client(&b.batched)),
        "full-unary" => one(Case::Client(&b.unary)),
        _ => {
            let (mode, name) = case
                .split_once('/')
                .unwrap_or_else(|| panic!("unknown case {case:?}"));
            let cfg = match mode {
                "batched" => Config::default(),
                "unary" => unary_config(),
                _ => panic!("unknown mode {mode:?}"),
            };
            let transport =
                b.rt.block_on(async { Transport::from_config(&cfg).await.unwrap() });
            let list = stacks(b.batched.cluster(), &transport);
            let stack = list
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("unknown stack {name:?}"));
            one(Case::Stack(stack))
        }
    };
    header(case, "itself");
    row(case, &st, &st);
}

fn ok(pass: bool) -> &'static str {
    if pass { "met" } else { "MISSED" }
}
