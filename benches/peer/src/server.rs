//! The mock cluster's gRPC face in a child process.
//!
//! The parent re-executes its own binary with [`SERVER_ENV`] set; the child builds the mock
//! cluster (three stores, regions split so the scan workload crosses five of them, leaders
//! spread over the stores), starts `tikv::mock::MockGrpc` on 127.0.0.1, prints PD's address
//! on its first stdout line and serves until its stdin closes. Keeping the servers out of the
//! parent means the parent's process CPU time and allocation counts are client-side only.
//!
//! This bootstrap is a small, deliberate duplicate of the one in `benches/pipeline.rs` (that
//! bench serves one store and one region; this one needs several of each).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use tikv::mock::{Mock, MockGrpc, MockOptions};

use crate::keys;

/// Set in the child process that serves the mock cluster.
pub(crate) const SERVER_ENV: &str = "TIKV_PEER_BENCH_SERVER";
/// The child's first stdout line: this prefix, then PD's `host:port`.
const PD_LINE: &str = "pd-addr ";
/// Stores of the mock cluster.
pub(crate) const STORES: usize = 3;

/// Serves the mock cluster until stdin closes (the parent exited or dropped its handle).
pub(crate) fn serve() -> Result<(), String> {
    // Two workers like the parent's runtime: the machine has two cores shared by both sides.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("server runtime: {e}"))?;
    let _enter = rt.enter();
    // API V1 (the default options): tikv-client 0.4's `RawClient::new` sends V1 raw requests
    // with unencoded keys, and so does our client's default configuration.
    let mock = Mock::new(MockOptions::default());
    let cluster = mock.cluster();
    let (stores, _, _, _) = cluster.bootstrap_with_multi_stores(STORES);
    // Raw V1 keys are PD keys as they are, so split at the raw keys.
    cluster.split_at_keys(&keys::split_keys());
    let mut regions = cluster.get_all_regions();
    regions.sort_by(|a, b| a.region.start_key.cmp(&b.region.start_key));
    // Leaders round-robin over the stores in key order, so batch gets and scans talk to
    // every store.
    for (i, r) in regions.iter().enumerate() {
        let store = stores[i % stores.len()];
        if let Some(p) = r.region.peers.iter().find(|p| p.store_id == store) {
            cluster
                .change_leader(r.region.id, p.id)
                .map_err(|e| format!("change leader: {e}"))?;
        }
    }
    let grpc = MockGrpc::start(&mock).map_err(|e| format!("mock gRPC: {e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PD_LINE}{}", grpc.pd_addr()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(grpc);
    Ok(())
}

/// The child process serving the mock cluster; killed on drop.
pub(crate) struct Server {
    child: Child,
    /// PD's `host:port`.
    pub(crate) pd_addr: String,
}

impl Server {
    /// Starts the child and waits for its PD address.
    pub(crate) fn spawn() -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(SERVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn server: {e}"))?;
        let mut line = String::new();
        let read = match child.stdout.take() {
            Some(out) => BufReader::new(out)
                .read_line(&mut line)
                .map_err(|e| e.to_string()),
            None => Err("no stdout".to_owned()),
        };
        // From here on, an early return drops `server`, which kills the child.
        let mut server = Server {
            child,
            pd_addr: String::new(),
        };
        read?;
        server.pd_addr = line
            .trim()
            .strip_prefix(PD_LINE)
            .ok_or_else(|| format!("unexpected server line {line:?}"))?
            .to_owned();
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
