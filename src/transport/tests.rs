//! Unit tests of the transport internals (ported from client-go `internal/client`).

use std::time::Duration;

use tikv_layers::request::EndpointType;
use tikv_layers::{Error, ErrorDetail, RpcRequest};
use tikv_proto::kvrpcpb;
use tikv_proto::tikvpb::batch_commands_request;

use super::batch::{BatchBuilder, BatchOutcome, Entry, EntryProgress, format_progress};
use super::policy::TurboBatchTrigger;
use super::queue::{HIGH_TASK_PRIORITY, PriorityQueue, QueueItem};
use super::{ErrConn, completed_ru_v2_rpc_count};
use crate::config::{BatchPolicy, TurboBatchOptions, TurboBatchStrategy};

struct FakeItem {
    pri: u64,
    canceled: bool,
}

impl QueueItem for FakeItem {
    fn priority(&self) -> u64 {
        self.pri
    }
    fn is_canceled(&self) -> bool {
        self.canceled
    }
}

// client-go: T-RPC-062 TestPriority
#[test]
fn priority() {
    let mut q = PriorityQueue::new();
    for i in 1..=5 {
        q.push(FakeItem {
            pri: i,
            canceled: false,
        });
    }
    assert_eq!(q.len(), 5);
    assert_eq!(q.highest_priority(), 5);
    q.clean();
    assert_eq!(q.len(), 5);
    let got = q.take(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].pri, 5);
    assert_eq!(q.highest_priority(), 4);
    let got = q.take(2);
    assert_eq!(got.iter().map(|i| i.pri).collect::<Vec<_>>(), vec![4, 3]);
    assert_eq!(q.highest_priority(), 2);
    let got = q.take(5);
    assert_eq!(got.iter().map(|i| i.pri).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(q.highest_priority(), 0);
    assert_eq!(q.len(), 0);
    q.push(FakeItem {
        pri: 1,
        canceled: true,
    });
    assert_eq!(q.len(), 1);
    q.clean();
    assert_eq!(q.len(), 0);
}

fn req() -> batch_commands_request::Request {
    batch_commands_request::Request::default()
}

/// An entry whose caller is still waiting (the receiver is returned to keep it alive).
fn live(host: &str, pri: u64) -> (Entry, impl Sized) {
    let (e, rx, _) = Entry::new(req(), host.to_owned(), pri);
    (e, rx)
}

/// An entry whose caller gave up.
fn canceled(pri: u64) -> Entry {
    let (e, rx, _) = Entry::new(req(), String::new(), pri);
    drop(rx);
    e
}

// client-go: T-RPC-024 TestBatchCommandsBuilder
#[test]
fn batch_commands_builder() {
    let mut b = BatchBuilder::new();
    b.reset();
    let mut keep = Vec::new();
    for i in 0..10 {
        let (e, rx) = live("", 0);
        keep.push(rx);
        b.push(e);
        assert_eq!(b.len(), i + 1);
    }
    let (direct, fwd) = b.build_with_limit(i64::MAX);
    let direct = direct.expect("direct group");
    assert_eq!(direct.req.requests.len(), 10);
    assert_eq!(direct.req.request_ids, (1..=10).collect::<Vec<u64>>());
    assert_eq!(direct.sinks.len(), 10);
    assert!(fwd.is_empty());
    assert_eq!(b.last_id(), 10);

    // Forwarded entries are grouped per host and interleave with direct ones.
    b.reset();
    let hosts = ["", "127.0.0.1:6666", "127.0.0.1:7777", "127.0.0.1:8888"];
    for i in 0..hosts.len() {
        for (j, h) in hosts.iter().enumerate() {
            if i <= j {
                let (e, rx) = live(h, 0);
                keep.push(rx);
                b.push(e);
            }
        }
    }
    let (direct, fwd) = b.build_with_limit(i64::MAX);
    let direct = direct.expect("direct group");
    assert_eq!(direct.req.requests.len(), 1);
    assert_eq!(direct.req.request_ids.len(), 1);
    assert_eq!(fwd.len(), 3);
    for (i, h) in hosts[1..].iter().enumerate() {
        let g = &fwd[*h];
        assert_eq!(g.req.requests.len(), i + 2);
        assert_eq!(g.req.request_ids.len(), i + 2);
        assert!(g.sinks.iter().all(|s| s.forwarded_host() == *h));
    }
    assert_eq!(b.last_id(), 20);

    // Canceled entries are not collected.
    b.reset();
    for c in [true, false, true, true, false] {
        if c {
            b.push(canceled(0));
        } else {
            let (e, rx) = live("", 0);
            keep.push(rx);
            b.push(e);
        }
    }
    let (direct, fwd) = b.build_with_limit(i64::MAX);
    let direct = direct.expect("direct group");
    assert_eq!(direct.req.requests.len(), 2);
    assert_eq!(direct.req.request_ids.len(), 2);
    assert!(fwd.is_empty());
    assert!(direct.sinks.iter().all(|s| !s.is_canceled()));

    // Canceling fails every queued entry with the error.
    b.reset();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        let (e, rx, _) = Entry::new(req(), String::new(), 0);
        rxs.push(rx);
        b.push(e);
    }
    b.cancel(&ErrorDetail::Internal("error".into()).into());
    for mut rx in rxs {
        let got = rx.try_recv().expect("answered");
        let err = got.expect_err("failed");
        assert!(matches!(err.detail(), ErrorDetail::Internal(m) if m == "error"));
    }

    // Reset leaves an empty builder and keeps the id counter.
    b.reset();
    assert_eq!(b.len(), 0);
    assert_ne!(b.last_id(), 0);
}

// client-go: T-RPC-032 TestLimitConcurrency
#[test]
fn limit_concurrency() {
    let mut b = BatchBuilder::new();
    let mut keep = Vec::new();
    {
        let (e, rx) = live("", 0);
        keep.push(rx);
        b.push(e);
        let (d, _) = b.build_with_limit(1);
        assert_eq!(d.expect("group").req.request_ids.len(), 1);
        assert_eq!(b.len(), 0);
        b.reset();
    }
    // The highest-priority entry is sent even with no spare concurrency.
    {
        let (e, rx) = live("", HIGH_TASK_PRIORITY);
        keep.push(rx);
        b.push(e);
        let (e, rx) = live("", HIGH_TASK_PRIORITY - 1);
        keep.push(rx);
        b.push(e);
        let (d, _) = b.build_with_limit(0);
        assert_eq!(d.expect("group").req.request_ids.len(), 1);
        b.reset();
        assert_eq!(b.len(), 1);
    }
    // Normal-priority entries are limited.
    {
        for _ in 0..2 {
            let (e, rx) = live("", 0);
            keep.push(rx);
            b.push(e);
        }
        let (d, _) = b.build_with_limit(2);
        assert_eq!(d.expect("group").req.request_ids.len(), 2);
        assert_eq!(b.len(), 1);
        b.reset();
    }
    // Canceled entries are dropped on reset.
    {
        b.push(canceled(0));
        b.push(canceled(0));
        b.reset();
        assert_eq!(b.len(), 1);
    }
}

// client-go: T-RPC-040 TestBatchPolicy
#[test]
fn batch_policy() {
    // basic
    let t = TurboBatchTrigger::new(&BatchPolicy::Basic);
    assert!(t.turbo_wait_time().is_zero());
    // positive
    let mut t = TurboBatchTrigger::new(&BatchPolicy::Positive);
    assert_eq!(t.turbo_wait_time(), Duration::from_micros(100));
    assert!(t.need_fetch_more(Duration::from_secs(3600)));
    assert!(t.need_fetch_more(Duration::from_millis(1)));
    assert_eq!(t.preferred_batch_wait_size(1.0, 8), 8);
    assert_eq!(t.preferred_batch_wait_size(1.2, 8), 8);
    assert_eq!(t.preferred_batch_wait_size(1.8, 8), 8);
    // standard
    let mut t = TurboBatchTrigger::new(&BatchPolicy::Standard);
    assert_eq!(t.preferred_batch_wait_size(1.0, 8), 1);
    assert_eq!(t.preferred_batch_wait_size(1.2, 8), 1);
    assert_eq!(t.preferred_batch_wait_size(1.8, 8), 2);
    assert_eq!(t.turbo_wait_time(), Duration::from_micros(100));
    assert!(!t.need_fetch_more(Duration::from_micros(100)));
    assert!(!t.need_fetch_more(Duration::from_micros(80)));
    assert!(t.need_fetch_more(Duration::from_micros(10)));
    assert!(t.need_fetch_more(Duration::from_micros(80)));
    assert!(!t.need_fetch_more(Duration::from_micros(90)));
    for _ in 0..50 {
        t.need_fetch_more(Duration::from_secs(3600));
    }
    assert!(t.est_arrival_interval() < t.max_arrival_interval());
    for _ in 0..8 {
        assert!(!t.need_fetch_more(Duration::from_micros(10)));
    }
    assert!(t.need_fetch_more(Duration::from_micros(10)));
    // custom: empty options are the basic policy, `{"t":0.0001}` positive, the standard
    // options standard.
    assert_eq!(
        BatchPolicy::Custom(TurboBatchOptions::default()).turbo_options(),
        BatchPolicy::Basic.turbo_options()
    );
    assert_eq!(
        BatchPolicy::Custom(TurboBatchOptions::default().with_wait(Duration::from_micros(100)))
            .turbo_options(),
        BatchPolicy::Positive.turbo_options()
    );
    let standard = TurboBatchOptions::default()
        .with_strategy(TurboBatchStrategy::TimeBased)
        .with_wait(Duration::from_micros(100))
        .with_max_arrival_factor(5)
        .with_smoothing(0.2)
        .with_threshold(0.8)
        .with_size_rounding(0.8);
    assert_eq!(
        BatchPolicy::Custom(standard).turbo_options(),
        BatchPolicy::Standard.turbo_options()
    );
    let mut t = TurboBatchTrigger::from_options(
        TurboBatchOptions::default()
            .with_strategy(TurboBatchStrategy::ProbBased)
            .with_wait(Duration::from_millis(1))
            .with_smoothing(0.2)
            .with_threshold(0.5),
    );
    assert_eq!(t.preferred_batch_wait_size(1.0, 8), 2);
    assert_eq!(t.preferred_batch_wait_size(1.2, 8), 2);
    assert_eq!(t.turbo_wait_time(), Duration::from_millis(1));
    let d = Duration::from_millis(1) - Duration::from_micros(1);
    assert!(!t.need_fetch_more(d));
    assert!(!t.need_fetch_more(d));
    assert!(!t.need_fetch_more(d));
    assert!(t.need_fetch_more(d));
    assert!(!t.need_fetch_more(Duration::from_millis(1)));
    // invalid strings are rejected when the config is parsed.
    for s in ["", "invalid", "custom", "custom {x:1}"] {
        assert!(s.parse::<BatchPolicy>().is_err());
    }
}

// client-go: T-RPC-025 TestBatchRequestTerminalOutcome
#[test]
fn batch_request_terminal_outcome() {
    let t = |m: &str| -> Result<(), Error> {
        Err(ErrorDetail::Transport {
            addr: "a".into(),
            message: m.into(),
        }
        .into())
    };
    assert_eq!(BatchOutcome::of(&Ok::<(), Error>(())), BatchOutcome::Ok);
    assert_eq!(
        BatchOutcome::of::<()>(&Err(ErrorDetail::AttemptTimeout { addr: "a".into() }.into())),
        BatchOutcome::Timeout
    );
    assert_eq!(
        BatchOutcome::of::<()>(&Err(ErrorDetail::Canceled.into())),
        BatchOutcome::Canceled
    );
    assert_eq!(
        BatchOutcome::of(&t("batchConn closed")),
        BatchOutcome::Closed
    );
    assert_eq!(
        BatchOutcome::of(&t("batch client closed")),
        BatchOutcome::Closed
    );
    assert_eq!(BatchOutcome::of(&t("boom")), BatchOutcome::Failed);
}

// client-go: T-RPC-028 TestWriteBatchCommandsEntryProgress
#[test]
fn write_batch_commands_entry_progress() {
    let p = EntryProgress::default();
    let now = tokio::time::Instant::now();
    assert_eq!(format_progress(&p, now, ""), "EntryProgress{}");
    p.batched_ns
        .store(1_000, std::sync::atomic::Ordering::Relaxed);
    p.request_id.store(3, std::sync::atomic::Ordering::Relaxed);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(5));
    let _ = p.stream_acked.set(acked);
    let s = format_progress(&p, now, "");
    assert!(s.starts_with("EntryProgress{batch:"), "{s}");
    assert!(s.contains("ack:yes"), "{s}");
}

// client-go: T-RPC-019 TestCompletedTiKVRUV2RPCCount
#[test]
fn completed_tikv_ruv2_rpc_count() {
    let cases: Vec<(RpcRequest, (u64, u64))> = vec![
        (RpcRequest::new(kvrpcpb::GetRequest::default()), (1, 0)),
        (RpcRequest::new(kvrpcpb::BatchGetRequest::default()), (1, 0)),
        (RpcRequest::new(kvrpcpb::PrewriteRequest::default()), (0, 1)),
        (RpcRequest::new(kvrpcpb::CommitRequest::default()), (0, 1)),
    ];
    for (mut req, want) in cases {
        req.options.endpoint = EndpointType::TiKV;
        assert_eq!(completed_ru_v2_rpc_count(&req), want, "{}", req.cmd_type());
    }
}

// client-go: T-RPC-037 TestErrConn
#[test]
fn err_conn() {
    let e = ErrConn::wrap(
        ErrorDetail::Transport {
            addr: "127.0.0.1".into(),
            message: "conn error".into(),
        }
        .into(),
        "127.0.0.1",
        10,
    );
    let c = ErrConn::of(&e).expect("ErrConn in the chain");
    assert_eq!(c.addr, "127.0.0.1");
    assert_eq!(c.ver, 10);
    assert!(c.message.contains("conn error"));
    assert!(c.to_string().starts_with("[127.0.0.1](10) "));
    let plain: Error = ErrorDetail::Internal("not ErrConn".into()).into();
    assert!(ErrConn::of(&plain).is_none());
    // Two wrappers with the same fields compare equal; identity in Go, value here.
    let d = ErrConn::wrap(ErrorDetail::Canceled.into(), "x", 1);
    assert_ne!(ErrConn::of(&d), Some(c));
}

#[test]
fn default_timeout_follows_the_layers_policy() {
    use tikv_layers::CmdType;
    use tikv_layers::timeout::DefaultTimeoutPolicy;

    let cfg =
        crate::config::TikvClientConfig::default().with_copr_req_timeout(Duration::from_secs(7));
    let policy = DefaultTimeoutPolicy::new().with_coprocessor(Duration::from_secs(7));
    for cmd in CmdType::ALL {
        assert_eq!(
            super::default_timeout(*cmd, &cfg),
            policy.timeout_for(*cmd),
            "{cmd}"
        );
    }
    assert_eq!(
        super::default_timeout(CmdType::Get, &cfg),
        crate::config::READ_TIMEOUT_SHORT
    );
    assert_eq!(
        super::default_timeout(CmdType::Scan, &cfg),
        crate::config::READ_TIMEOUT_MEDIUM
    );
    assert_eq!(
        super::default_timeout(CmdType::Cop, &cfg),
        Duration::from_secs(7)
    );
}
