//! The printed tables: ratios first (the figures the goals are stated in), then the
//! absolute numbers they come from.

use std::time::Duration;

use crate::CALLERS;
use crate::clients::Workload;
use crate::measure::Stats;

/// Everything the report needs.
pub(crate) struct Run<'a> {
    /// Side names, in column order of `stats`.
    pub(crate) names: &'a [&'a str],
    /// `stats[side][workload][callers]`, `None` where a side does not run a workload.
    pub(crate) stats: &'a [Vec<Vec<Option<Stats>>>],
    /// Measured rounds.
    pub(crate) rounds: usize,
    /// Operations per cell and round.
    pub(crate) ops: &'a dyn Fn(Workload, usize) -> usize,
    /// Wall time of the whole measured run.
    pub(crate) elapsed: Duration,
}

/// Microseconds, for printing.
pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl Run<'_> {
    fn side(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    fn get(&self, side: usize, w: usize, c: usize) -> Option<&Stats> {
        self.stats.get(side)?.get(w)?.get(c)?.as_ref()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".to_owned()
    }
}

/// The ratio row of `a` against `b` for workload `w`.
fn ratio_row(run: &Run<'_>, label: &str, a: usize, b: usize, w: usize) -> String {
    let cell = |c: usize, f: &dyn Fn(&Stats) -> f64| match (run.get(a, w, c), run.get(b, w, c)) {
        (Some(x), Some(y)) => ratio(f(x), f(y)),
        _ => "-".to_owned(),
    };
    let cpu = |s: &Stats| us(s.cpu_per_op);
    let tput = |s: &Stats| s.throughput;
    let p50 = |s: &Stats| us(s.p50);
    let p99 = |s: &Stats| us(s.p99);
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        cell(0, &cpu),
        cell(1, &cpu),
        cell(2, &cpu),
        cell(0, &tput),
        cell(1, &tput),
        cell(2, &tput),
        cell(0, &p50),
        cell(0, &p99),
        cell(1, &p50),
        cell(1, &p99),
    )
}

/// Prints both tables and the goal check.
pub(crate) fn print(run: &Run<'_>) {
    let ours = run.side("ours");
    let theirs = run.side("tikv-client");
    let unary = run.side("ours-unary");
    let bare = run.side("bare-tonic");

    println!();
    println!(
        "## ours (tikv::raw::Client) vs tikv-client 0.4: ratios ours / theirs \
         (CPU and latency: lower is better for us; throughput: higher is better)"
    );
    println!();
    println!(
        "| workload | CPU/op @1 | CPU/op @16 | CPU/op @256 | ops/s @1 | ops/s @16 | ops/s @256 \
         | p50 @1 | p99 @1 | p50 @16 | p99 @16 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (wi, w) in Workload::ALL.iter().enumerate() {
        if let (Some(a), Some(b)) = (ours, theirs) {
            println!("{}", ratio_row(run, w.name(), a, b, wi));
        }
    }
    println!("| 10-key txn commit | n/a (no txn client yet) | | | | | | | | | |");
    if let (Some(a), Some(b)) = (unary, theirs) {
        for (wi, w) in Workload::ALL.iter().enumerate() {
            let label = format!("{} (ours-unary)", w.name());
            println!("{}", ratio_row(run, &label, a, b, wi));
        }
    }
    if let (Some(o), Some(b)) = (ours, bare) {
        println!("{}", ratio_row(run, "raw get: ours / bare tonic", o, b, 0));
        if let Some(u) = unary {
            println!(
                "{}",
                ratio_row(run, "raw get: ours-unary / bare tonic", u, b, 0)
            );
        }
        if let Some(t) = theirs {
            println!(
                "{}",
                ratio_row(run, "raw get: tikv-client / bare tonic", t, b, 0)
            );
        }
    }

    println!();
    println!("## absolute figures (CPU = client process CPU time per op; p50/p99 in us)");
    println!();
    println!(
        "| workload | client | CPU us/op @1 | @16 | @256 | ops/s @1 | @16 | @256 \
         | p50 @1 | p99 @1 | p50 @16 | p99 @16 | p50 @256 | p99 @256 | allocs/op @1 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (wi, w) in Workload::ALL.iter().enumerate() {
        for (si, name) in run.names.iter().enumerate() {
            let Some(s1) = run.get(si, wi, 0) else {
                continue;
            };
            let f = |c: usize, g: &dyn Fn(&Stats) -> String| {
                run.get(si, wi, c).map_or_else(|| "-".to_owned(), g)
            };
            let cpu = |s: &Stats| format!("{:.1}", us(s.cpu_per_op));
            let tput = |s: &Stats| format!("{:.0}", s.throughput);
            let p50 = |s: &Stats| format!("{:.0}", us(s.p50));
            let p99 = |s: &Stats| format!("{:.0}", us(s.p99));
            println!(
                "| {} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                w.name(),
                f(0, &cpu),
                f(1, &cpu),
                f(2, &cpu),
                f(0, &tput),
                f(1, &tput),
                f(2, &tput),
                f(0, &p50),
                f(0, &p99),
                f(1, &p50),
                f(1, &p99),
                f(2, &p50),
                f(2, &p99),
                s1.allocs_per_op,
            );
        }
    }

    println!();
    println!("## goals (client CPU per op at 1 caller)");
    println!();
    if let (Some(a), Some(b)) = (ours, theirs) {
        for (wi, w) in Workload::ALL.iter().enumerate() {
            if let (Some(x), Some(y)) = (run.get(a, wi, 0), run.get(b, wi, 0)) {
                let r = us(x.cpu_per_op) / us(y.cpu_per_op).max(1e-9);
                println!(
                    "- {}: ours / tikv-client = {r:.2}x (goal <= 0.50x): {}",
                    w.name(),
                    verdict(r <= 0.5)
                );
            }
        }
        println!("- 10-key txn commit: n/a (no txn client yet)");
    }
    if let (Some(a), Some(b)) = (ours, bare)
        && let (Some(x), Some(y)) = (run.get(a, 0, 0), run.get(b, 0, 0))
    {
        let r = us(x.cpu_per_op) / us(y.cpu_per_op).max(1e-9);
        println!(
            "- raw get: ours / bare tonic = {r:.2}x (goal <= 1.30x): {}",
            verdict(r <= 1.3)
        );
    }

    println!();
    let cells: Vec<String> = Workload::ALL
        .iter()
        .map(|&w| {
            let per: Vec<String> = CALLERS
                .iter()
                .map(|&c| format!("{}@{c}", (run.ops)(w, c)))
                .collect();
            format!("{} {}", w.short(), per.join("/"))
        })
        .collect();
    println!(
        "{} measured rounds after one warm-up round; ops per cell and round: {}; \
         measured in {:.0} s; {} CPUs visible",
        run.rounds,
        cells.join(", "),
        run.elapsed.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from),
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
