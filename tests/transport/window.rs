//! The batch window (`TikvClientConfig::batch_window`, this client's own) against the
//! loopback server: with a window of one, a batch that finds the connection's last message
//! unstarted is held until TiKV starts on that message, then goes out as one message.
//!
//! The server's gate decides when a message is answered, so nothing here depends on
//! timing except the hold bound, whose lower bound is asserted (a timer never fires
//! early). Everything runs on one current-thread runtime: a request reaches the send
//! loop's queue on its future's first poll.

use std::sync::Arc;
use std::time::Duration;

use tikv::config::{BatchPolicy, TikvClientConfig, TurboBatchOptions, TurboBatchStrategy};
use tikv_layers::RpcRequest;
use tikv_proto::kvrpcpb;
use tokio::time::Instant;

use super::server::{HookReply, MockServer};
use super::{request, transport};

/// One connection, the basic policy (no wait of its own) and a window of `window`
/// messages held at most `max_hold`.
fn windowed(window: usize, max_hold: Duration) -> TikvClientConfig {
    TikvClientConfig::default()
        .with_batch_policy(BatchPolicy::Basic)
        .with_grpc_connection_count(1)
        .with_batch_window(window)
        .with_batch_window_max_hold(max_hold)
}

fn raw_get(addr: &str) -> RpcRequest {
    request(
        kvrpcpb::RawGetRequest::default(),
        addr,
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn held_requests_leave_together_when_the_server_starts_the_message() {
    let server = MockServer::start().await;
    let gate = server.close_gate();
    let t = transport(windowed(1, Duration::from_secs(3600)));
    let addr = server.addr();
    let first = tokio::spawn(t.send_request(raw_get(&addr)));
    server.wait_for_messages(1).await;
    // Three callers while the first message is unstarted: the window is full, so they wait
    // in one batch instead of going out one by one.
    // Polling each request's future once queues it.
    let mut later = Vec::new();
    for _ in 0..3 {
        let mut f = tokio_test::task::spawn(t.send_request(raw_get(&addr)));
        assert!(
            f.poll().is_pending(),
            "answered before the server was asked"
        );
        later.push(f);
    }
    // Let the send loop take them (nothing can be answered: the gate is closed).
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert_eq!(server.message_sizes(), vec![1]);
    // TiKV answers the first message: the held batch goes out as one message.
    gate.add_permits(1);
    first.await.unwrap().unwrap();
    server.wait_for_messages(2).await;
    assert_eq!(server.message_sizes(), vec![1, 3]);
    gate.add_permits(1);
    for f in later {
        f.await.unwrap();
    }
    t.close();
}

#[tokio::test]
async fn a_hold_ends_after_the_bound_when_the_server_never_starts() {
    let server = MockServer::start().await;
    let _gate = server.close_gate();
    let hold = Duration::from_millis(50);
    let t = transport(windowed(1, hold));
    let addr = server.addr();
    let _first = tokio::spawn(t.send_request(raw_get(&addr)));
    server.wait_for_messages(1).await;
    let start = Instant::now();
    let _second = tokio::spawn(t.send_request(raw_get(&addr)));
    // The first message is never answered: the second request still goes out, once the
    // hold bound has passed, on the same connection.
    server.wait_for_messages(2).await;
    assert!(start.elapsed() >= hold, "held {:?}", start.elapsed());
    assert_eq!(server.message_sizes(), vec![1, 1]);
    t.close();
}

#[tokio::test]
async fn high_priority_requests_are_never_held() {
    let server = MockServer::start().await;
    let _gate = server.close_gate();
    let t = transport(windowed(1, Duration::from_secs(3600)));
    let addr = server.addr();
    let _first = tokio::spawn(t.send_request(raw_get(&addr)));
    server.wait_for_messages(1).await;
    let mut urgent = raw_get(&addr);
    urgent.context.resource_control_context = Some(kvrpcpb::ResourceControlContext {
        override_priority: tikv::transport::HIGH_TASK_PRIORITY,
        ..Default::default()
    });
    let _urgent = tokio::spawn(t.send_request(urgent));
    // Sent at once although the window is full (held, it would wait an hour).
    tokio::time::timeout(Duration::from_secs(10), server.wait_for_messages(2))
        .await
        .expect("a high-priority request was held");
    assert_eq!(server.message_sizes(), vec![1, 1]);
    t.close();
}

#[tokio::test]
async fn a_broken_stream_frees_its_window() {
    let server = MockServer::start().await;
    let max_hold = Duration::from_secs(30);
    let t = transport(windowed(1, max_hold));
    let addr = server.addr();
    // The first message's stream breaks before any response: its caller fails.
    server.set_hook(Some(Arc::new(|_| {
        HookReply::Fail(tonic::Status::internal("stream broken"))
    })));
    let err = t.send_request(raw_get(&addr)).await.unwrap_err();
    assert_eq!(err.kind(), tikv_layers::ErrorKind::Transport);
    server.set_hook(None);
    // The message will never be answered, so it no longer counts: once the stream is back
    // (after its reconnection backoff), requests go out at once instead of being held for
    // the 30 s bound.
    let start = Instant::now();
    loop {
        let attempt = request(
            kvrpcpb::RawGetRequest::default(),
            &addr,
            Duration::from_secs(1),
        );
        if t.send_request(attempt).await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.close();
}

#[tokio::test]
async fn callers_answered_together_send_their_next_requests_together() {
    let server = MockServer::start().await;
    let gate = server.close_gate();
    // A policy whose own trigger never fires: only the window's wait for answered callers
    // can merge their next requests. Its wait is long (50 ms) so a loaded machine cannot
    // end it before the callers come back; they come back within microseconds.
    let never = TurboBatchOptions::default()
        .with_strategy(TurboBatchStrategy::TimeBased)
        .with_wait(Duration::from_millis(50))
        .with_max_arrival_factor(5)
        .with_smoothing(0.2)
        .with_threshold(0.0)
        .with_size_rounding(0.8);
    let t = transport(
        windowed(1, Duration::from_secs(3600)).with_batch_policy(BatchPolicy::Custom(never)),
    );
    let addr = server.addr();
    let first = tokio::spawn(t.send_request(raw_get(&addr)));
    server.wait_for_messages(1).await;
    // Three callers, each sending a second request shortly after its first is answered
    // (none, two and four scheduler turns later: a real caller does some work in between).
    let mut callers = Vec::new();
    for think in [0, 2, 4] {
        let mut f = tokio_test::task::spawn(t.send_request(raw_get(&addr)));
        assert!(f.poll().is_pending());
        let (t, addr) = (t.clone(), addr.clone());
        callers.push(tokio::spawn(async move {
            f.await.unwrap();
            for _ in 0..think {
                tokio::task::yield_now().await;
            }
            t.send_request(raw_get(&addr)).await.unwrap();
        }));
    }
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    first.await.unwrap().unwrap();
    server.wait_for_messages(2).await;
    // The three were answered by one message; their next requests leave as one message
    // too, instead of the first alone and the other two after it.
    gate.add_permits(1);
    server.wait_for_messages(3).await;
    assert_eq!(server.message_sizes(), vec![1, 3, 3]);
    gate.add_permits(1);
    for c in callers {
        c.await.unwrap();
    }
    t.close();
}
