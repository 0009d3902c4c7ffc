//! TiKV's execution details as a tree of timed spans, from client-go's
//! `internal/client/client.go` (`spanInfo`, `buildSpanInfoFromResp`).
//!
//! A response's `ExecDetailsV2` tells how long TiKV spent waiting, processing and writing.
//! [`SpanInfo::from_response`] turns it into the tree client-go reports to its tracer
//! (`tikv.RPC` > `tikv.Wait` / `tikv.Process` / `tikv.Suspend` / `tikv.AsyncWrite` > …),
//! and [`SpanInfo::add_to`] lays the tree out in time from the start of the RPC, each child
//! starting where its previous sibling ended. Asynchronous spans (raft log persistence) do
//! not push their siblings back.
//!
//! The transport emits the laid-out spans as `trace`-level events when that level is
//! enabled; [`FinishedSpan`] is what a tracer adapter receives.

use std::fmt;
use std::time::Duration;

use tikv_layers::CommandResponse;
use tikv_proto::kvrpcpb;

use super::batch::go_duration;

/// One node of the execution-detail tree (client-go `spanInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanInfo {
    name: &'static str,
    /// The reported duration in nanoseconds; 0 means "the sum of the children".
    dur_ns: u64,
    /// Runs beside its siblings instead of before the next one.
    is_async: bool,
    children: Vec<SpanInfo>,
}

/// A span laid out in time, as a tracer would record it (offsets from the RPC's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The span's name, e.g. `tikv.Process`.
    pub name: &'static str,
    /// When it started, after the RPC's start.
    pub start: Duration,
    /// When it ended, after the RPC's start.
    pub end: Duration,
    /// Whether it ran asynchronously (client-go tags such spans `async`).
    pub is_async: bool,
}

impl SpanInfo {
    fn leaf(name: &'static str, dur_ns: u64) -> SpanInfo {
        SpanInfo {
            name,
            dur_ns,
            ..SpanInfo::default()
        }
    }

    fn node(name: &'static str, dur_ns: u64, children: Vec<SpanInfo>) -> SpanInfo {
        SpanInfo {
            name,
            dur_ns,
            is_async: false,
            children,
        }
    }

    /// The tree of `resp`'s execution details, or `None` when the response carries no time
    /// details (client-go `buildSpanInfoFromResp`).
    pub fn from_response(resp: &CommandResponse) -> Option<SpanInfo> {
        Self::from_exec_details(resp.exec_details_v2()?)
    }

    /// The tree of `details`, or `None` without time details.
    pub fn from_exec_details(details: &kvrpcpb::ExecDetailsV2) -> Option<SpanInfo> {
        let td = details.time_detail_v2.as_ref();
        let td_old = details.time_detail.as_ref();
        let sd = details.scan_detail_v2.as_ref();
        let wd = details.write_detail.as_ref();
        let ms = |v: u64| v.saturating_mul(1_000_000);
        let (mut rpc, mut wait, mut process) = match (td, td_old) {
            (Some(t), _) => (
                SpanInfo::leaf("tikv.RPC", t.total_rpc_wall_time_ns),
                SpanInfo::leaf("tikv.Wait", t.wait_wall_time_ns),
                SpanInfo::leaf("tikv.Process", t.process_wall_time_ns),
            ),
            // The deprecated millisecond details of older TiKVs.
            (None, Some(t)) => (
                SpanInfo::leaf("tikv.RPC", t.total_rpc_wall_time_ns),
                SpanInfo::leaf("tikv.Wait", ms(t.wait_wall_time_ms)),
                SpanInfo::leaf("tikv.Process", ms(t.process_wall_time_ms)),
            ),
            (None, None) => return None,
        };
        if let Some(sd) = sd {
            wait.children
                .push(SpanInfo::leaf("tikv.GetSnapshot", sd.get_snapshot_nanos));
            // With write details the block reads belong to the write, not the process.
            if wd.is_none() {
                process.children.push(SpanInfo::leaf(
                    "tikv.RocksDBBlockRead",
                    sd.rocksdb_block_read_nanos,
                ));
            }
        }
        rpc.children.push(wait);
        rpc.children.push(process);
        if let Some(t) = td {
            rpc.children.push(SpanInfo::leaf(
                "tikv.Suspend",
                t.process_suspend_wall_time_ns,
            ));
        }
        if let Some(w) = wd {
            let mut persist = SpanInfo::node(
                "tikv.PersistLog",
                w.persist_log_nanos,
                vec![
                    // Mutex lock and write-leader wait.
                    SpanInfo::leaf("tikv.RaftDBWriteWait", w.raft_db_write_leader_wait_nanos),
                    SpanInfo::leaf("tikv.RaftDBWriteWAL", w.raft_db_sync_log_nanos),
                    SpanInfo::leaf("tikv.RaftDBWriteMemtable", w.raft_db_write_memtable_nanos),
                ],
            );
            persist.is_async = true;
            rpc.children.push(SpanInfo::node(
                "tikv.AsyncWrite",
                0,
                vec![
                    SpanInfo::leaf("tikv.StoreBatchWait", w.store_batch_wait_nanos),
                    SpanInfo::leaf("tikv.ProposeSendWait", w.propose_send_wait_nanos),
                    persist,
                    SpanInfo::leaf("tikv.CommitLog", w.commit_log_nanos),
                    SpanInfo::leaf("tikv.ApplyBatchWait", w.apply_batch_wait_nanos),
                    SpanInfo::node(
                        "tikv.ApplyLog",
                        w.apply_log_nanos,
                        vec![
                            SpanInfo::leaf("tikv.ApplyMutexLock", w.apply_mutex_lock_nanos),
                            SpanInfo::leaf(
                                "tikv.ApplyWriteLeaderWait",
                                w.apply_write_leader_wait_nanos,
                            ),
                            SpanInfo::leaf("tikv.ApplyWriteWAL", w.apply_write_wal_nanos),
                            SpanInfo::leaf("tikv.ApplyWriteMemtable", w.apply_write_memtable_nanos),
                        ],
                    ),
                ],
            ));
        }
        Some(rpc)
    }

    /// The span's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The span's duration: the reported one, or the sum of its synchronous children's
    /// when none was reported (client-go `calcDur`).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.calc_dur())
    }

    fn calc_dur(&self) -> u64 {
        if self.dur_ns != 0 {
            return self.dur_ns;
        }
        self.children
            .iter()
            .filter(|c| !c.is_async)
            .map(SpanInfo::calc_dur)
            .fold(0, u64::saturating_add)
    }

    /// Lays the tree out from `start` (an offset from the RPC's start), handing every span
    /// with a duration to `record` as it finishes (children before their parent, like a
    /// tracer sees them), and returns where the next sibling starts: `start` for an empty
    /// or asynchronous span, its end otherwise (client-go `addTo`).
    pub fn add_to(&self, start: Duration, record: &mut impl FnMut(FinishedSpan)) -> Duration {
        let dur = self.calc_dur();
        if dur == 0 {
            return start;
        }
        let end = start.saturating_add(Duration::from_nanos(dur));
        let mut t = start;
        for child in &self.children {
            t = child.add_to(t, record);
        }
        record(FinishedSpan {
            name: self.name,
            start,
            end,
            is_async: self.is_async,
        });
        if self.is_async { start } else { end }
    }
}

impl fmt::Display for SpanInfo {
    /// `tikv.RPC[1s]{ tikv.Wait[100ms] tikv.Process … }`: the name, `'` for an
    /// asynchronous span, the reported duration in brackets when there is one, then the
    /// children in braces (client-go `spanInfo.String`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if self.is_async {
            f.write_str("'")?;
        }
        if self.dur_ns > 0 {
            write!(f, "[{}]", go_duration(Duration::from_nanos(self.dur_ns)))?;
        }
        if !self.children.is_empty() {
            f.write_str("{")?;
            for child in &self.children {
                write!(f, " {child}")?;
            }
            f.write_str(" }")?;
        }
        Ok(())
    }
}

/// Emits `resp`'s execution-detail spans as `trace`-level events (target
/// `tikv::transport`), when that level is enabled.
pub(crate) fn trace_exec_details(resp: &CommandResponse) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    if let Some(info) = SpanInfo::from_response(resp) {
        info.add_to(Duration::ZERO, &mut |s: FinishedSpan| {
            tracing::trace!(
                span = s.name,
                start_us = s.start.as_micros() as u64,
                end_us = s.end.as_micros() as u64,
                is_async = s.is_async,
                "tikv exec detail"
            );
        });
    }
}
