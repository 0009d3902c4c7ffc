//! Side-by-side benchmark (issue 9): our raw client (`tikv::raw::Client`) against the
//! published `tikv-client` 0.4 raw client, on the same mock cluster in the same run, with a
//! bare tonic call as the floor for raw get.
//!
//! How it measures (see doc/performance.md for the latest numbers):
//!
//! - The mock cluster's gRPC face (PD + three TiKV stores on 127.0.0.1, six regions, API V1)
//!   runs in a child process (this binary re-executed with `TIKV_PEER_BENCH_SERVER` set), so
//!   this process's CPU time and allocations are client-side only.
//! - Workloads: raw get, raw put, batch get of 100 keys, scan of 1000 rows over five regions;
//!   the same key sequence for every client. Each at 1, 16 and 256 concurrent callers.
//! - One warm-up round (discarded), then `PEER_BENCH_ROUNDS` rounds (default 5); in each
//!   round every cell runs every client back to back, the order flipped every round (A/B,
//!   B/A), so a shared machine's noise hits both alike. CPU per op and throughput are the
//!   median over rounds; latency percentiles pool every operation of every round.
//! - Output: a markdown table of ratios (ours / tikv-client, ours / bare tonic) and one of
//!   absolute figures.
//!
//! Knobs (environment):
//!
//! - `PEER_BENCH_ROUNDS`: measured rounds (default 5).
//! - `PEER_BENCH_SCALE`: multiplies the operations per cell (default 1.0; 0.1 for a smoke run).
//! - `PEER_BENCH_UNARY=1`: also runs our client over the unary transport (`ours-unary`).
//! - `PEER_BENCH_ONLY=<side>:<workload>:<callers>` with `PEER_BENCH_OPS=<n>`: one cell only,
//!   for profilers (`valgrind --tool=callgrind`): side `ours`, `ours-unary`, `tikv-client` or
//!   `bare-tonic`; workload `get`, `put`, `batch-get` or `scan`.

mod clients;
mod keys;
mod measure;
mod report;
mod server;

use std::alloc::System;
use std::sync::Arc;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::runtime::Runtime;

use clients::{Bare, Side, Workload};
use measure::{Sample, Stats};
use server::Server;

/// Counts every heap allocation of this process.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Concurrent callers of each cell.
pub(crate) const CALLERS: [usize; 3] = [1, 16, 256];

fn main() {
    let result = if std::env::var_os(server::SERVER_ENV).is_some() {
        server::serve()
    } else {
        run()
    };
    if let Err(e) = result {
        eprintln!("bench-peer: {e}");
        std::process::exit(1);
    }
}

/// The run's knobs.
struct Knobs {
    rounds: usize,
    scale: f64,
    unary: bool,
}

impl Knobs {
    fn from_env() -> Result<Knobs, String> {
        Ok(Knobs {
            rounds: env_parse("PEER_BENCH_ROUNDS", 5usize)?.max(1),
            scale: env_parse("PEER_BENCH_SCALE", 1.0f64)?,
            unary: std::env::var("PEER_BENCH_UNARY").is_ok_and(|v| v == "1"),
        })
    }

    /// Operations of one cell: enough that every caller runs several and a cell of a cheap
    /// workload lasts a few hundred milliseconds on a two-core machine.
    fn ops(&self, w: Workload, callers: usize) -> usize {
        let base: f64 = match w {
            Workload::Get | Workload::Put => 2000.0,
            Workload::BatchGet => 300.0,
            Workload::Scan => 60.0,
        };
        let factor = match callers {
            1 => 1.0,
            16 => 2.0,
            _ => 4.0,
        };
        ((base * factor * self.scale) as usize).max(2 * callers)
    }
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}: cannot parse {v:?}")),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let knobs = Knobs::from_env()?;
    let server = Server::spawn()?;
    // The same shape as the servers' runtime: two workers on a two-core machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let sides = rt.block_on(connect(&server.pd_addr, knobs.unary))?;

    if let Ok(only) = std::env::var("PEER_BENCH_ONLY") {
        return run_only(&rt, &sides, &only);
    }

    let started = tokio::time::Instant::now();
    // results[side][workload][callers]
    let mut samples: Vec<Vec<Vec<Vec<Sample>>>> = sides
        .iter()
        .map(|_| {
            Workload::ALL
                .iter()
                .map(|_| CALLERS.iter().map(|_| Vec::new()).collect())
                .collect()
        })
        .collect();
    for round in 0..=knobs.rounds {
        let warmup = round == 0;
        eprintln!(
            "bench-peer: round {round}/{}{}",
            knobs.rounds,
            if warmup { " (warm-up, discarded)" } else { "" }
        );
        for (wi, &w) in Workload::ALL.iter().enumerate() {
            for (ci, &callers) in CALLERS.iter().enumerate() {
                let ops = knobs.ops(w, callers);
                // A/B on even rounds, B/A on odd ones.
                let mut order: Vec<usize> = (0..sides.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for si in order {
                    let side = &sides[si];
                    if !side.runs(w) {
                        continue;
                    }
                    let s = measure::run_cell(&rt, side, w, callers, ops)?;
                    if !warmup {
                        samples[si][wi][ci].push(s);
                    }
                }
            }
        }
    }
    let stats: Vec<Vec<Vec<Option<Stats>>>> = samples
        .iter()
        .map(|per_w| {
            per_w
                .iter()
                .map(|per_c| {
                    per_c
                        .iter()
                        .map(|s| (!s.is_empty()).then(|| measure::fold(s)))
                        .collect()
                })
                .collect()
        })
        .collect();
    let names: Vec<&str> = sides.iter().map(|s| s.name()).collect();
    report::print(&report::Run {
        names: &names,
        stats: &stats,
        rounds: knobs.rounds,
        ops: &|w, c| knobs.ops(w, c),
        elapsed: started.elapsed(),
    });
    // Close our clients before the server goes away, so their loops stop quietly.
    rt.block_on(async {
        for s in &sides {
            if let Side::Ours(c) | Side::OursUnary(c) = s.as_ref() {
                c.close().await;
            }
        }
    });
    drop(server);
    Ok(())
}

/// Connects every side and loads the data set; the order here is the column order.
async fn connect(pd: &str, unary: bool) -> Result<Vec<Arc<Side>>, String> {
    let ours = clients::connect_ours(pd, false).await?;
    // The data set, written once through our client; every side reads it.
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..keys::ROWS)
        .map(|i| (keys::row(i), keys::value(i)))
        .collect();
    ours.batch_put(rows)
        .await
        .map_err(|e| format!("loading rows: {e}"))?;
    let theirs = clients::connect_theirs(pd).await?;
    let mut sides = vec![Arc::new(Side::Ours(ours)), Arc::new(Side::Theirs(theirs))];
    if unary {
        sides.push(Arc::new(Side::OursUnary(
            clients::connect_ours(pd, true).await?,
        )));
    }
    sides.push(Arc::new(Side::Bare(Bare::connect(pd).await?)));
    Ok(sides)
}

/// `PEER_BENCH_ONLY=<side>:<workload>:<callers>`: one cell, `PEER_BENCH_OPS` operations
/// (default 20 000), after a warm-up of a tenth of that; prints one line.
fn run_only(rt: &Runtime, sides: &[Arc<Side>], spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [side, workload, callers] = parts.as_slice() else {
        return Err(format!(
            "PEER_BENCH_ONLY={spec:?}: want <side>:<workload>:<callers>"
        ));
    };
    let side = sides
        .iter()
        .find(|s| s.name() == *side)
        .ok_or_else(|| format!("unknown side {side:?} (ours-unary needs PEER_BENCH_UNARY=1)"))?;
    let w = Workload::ALL
        .into_iter()
        .find(|w| w.short() == *workload)
        .ok_or_else(|| format!("unknown workload {workload:?}"))?;
    let callers: usize = callers
        .parse()
        .map_err(|_| format!("bad callers {callers:?}"))?;
    let ops = env_parse("PEER_BENCH_OPS", 20_000usize)?.max(callers);
    measure::run_cell(rt, side, w, callers, (ops / 10).max(callers))?;
    let s = measure::fold(&[measure::run_cell(rt, side, w, callers, ops)?]);
    println!(
        "{} {} x{callers}: {ops} ops, cpu {:.1} us/op, {:.0} ops/s, p50 {:.1} us, p99 {:.1} us, {:.1} allocs/op",
        side.name(),
        w.short(),
        report::us(s.cpu_per_op),
        s.throughput,
        report::us(s.p50),
        report::us(s.p99),
        s.allocs_per_op,
    );
    Ok(())
}
