//! Running one cell (a side, a workload, a number of concurrent callers) and folding the
//! rounds of a cell into its figures.
//!
//! A cell spawns `callers` tasks on the parent's runtime; they pull operation numbers from a
//! shared counter until `ops` have run, each timing its own operations. Around the whole cell
//! the harness reads the process CPU clock (`cpu_time::ProcessTime`: every thread of this
//! process, so tonic/hyper tasks and the client's background loops count; the servers are
//! another process), the wall clock and the allocation counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpu_time::ProcessTime;
use stats_alloc::Region;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::GLOBAL;
use crate::clients::{Side, Workload};

/// What one run of a cell measured.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    /// Operations run.
    pub(crate) ops: usize,
    /// Process CPU time of the whole cell.
    pub(crate) cpu: Duration,
    /// Wall time of the whole cell.
    pub(crate) wall: Duration,
    /// Heap allocations of the whole cell.
    pub(crate) allocs: usize,
    /// Latency of every operation.
    pub(crate) lat: Vec<Duration>,
}

/// Runs `ops` operations of `w` on `side` from `callers` concurrent tasks.
pub(crate) fn run_cell(
    rt: &Runtime,
    side: &Arc<Side>,
    w: Workload,
    callers: usize,
    ops: usize,
) -> Result<Sample, String> {
    rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let region = Region::new(GLOBAL);
        let cpu = ProcessTime::now();
        let wall = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let side = side.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(ops / callers + 1);
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= ops {
                            return Ok::<_, String>(lat);
                        }
                        let t = Instant::now();
                        side.exec(w, n).await?;
                        lat.push(t.elapsed());
                    }
                })
            })
            .collect();
        let mut lat = Vec::with_capacity(ops);
        let mut first_err = None;
        for t in tasks {
            match t.await {
                Ok(Ok(l)) => lat.extend(l),
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(e) => first_err = first_err.or(Some(format!("caller task: {e}"))),
            }
        }
        let wall = wall.elapsed();
        let cpu = cpu.elapsed();
        let allocs = region.change().allocations;
        if let Some(e) = first_err {
            return Err(format!("{} {}: {e}", side.name(), w.short()));
        }
        Ok(Sample {
            ops,
            cpu,
            wall,
            allocs,
            lat,
        })
    })
}

/// The figures of one cell over its measured rounds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Process CPU per operation, median over the rounds.
    pub(crate) cpu_per_op: Duration,
    /// Operations per second, median over the rounds.
    pub(crate) throughput: f64,
    /// Median latency over every operation of every round.
    pub(crate) p50: Duration,
    /// 99th percentile latency over every operation of every round.
    pub(crate) p99: Duration,
    /// Heap allocations per operation over all rounds.
    pub(crate) allocs_per_op: f64,
}

/// Folds the measured rounds of one cell.
pub(crate) fn fold(samples: &[Sample]) -> Stats {
    let mut cpu: Vec<Duration> = samples
        .iter()
        .map(|s| s.cpu / s.ops.max(1) as u32)
        .collect();
    cpu.sort_unstable();
    let mut tput: Vec<f64> = samples
        .iter()
        .map(|s| s.ops as f64 / s.wall.as_secs_f64().max(1e-9))
        .collect();
    tput.sort_unstable_by(f64::total_cmp);
    let mut lat: Vec<Duration> = samples.iter().flat_map(|s| s.lat.iter().copied()).collect();
    lat.sort_unstable();
    let ops: usize = samples.iter().map(|s| s.ops).sum();
    let allocs: usize = samples.iter().map(|s| s.allocs).sum();
    Stats {
        cpu_per_op: quantile(&cpu, 0.5).unwrap_or_default(),
        throughput: quantile(&tput, 0.5).unwrap_or_default(),
        p50: quantile(&lat, 0.5).unwrap_or_default(),
        p99: quantile(&lat, 0.99).unwrap_or_default(),
        allocs_per_op: allocs as f64 / ops.max(1) as f64,
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().checked_sub(1)?);
    sorted.get(i).copied()
}
