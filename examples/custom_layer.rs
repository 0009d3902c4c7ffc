//! Adding your own middleware to the client's pipeline, in a few lines, against the
//! embedded mock cluster (no setup needed):
//!
//! - an **audit layer** at `Stage::Request`: a plain `tower::Layer` that sees each API call
//!   once (after metrics, before sharding) and counts what passes through;
//! - a **per-store concurrency cap** at `Stage::Attempt`: `tower`'s own `ConcurrencyLimit`
//!   around every RPC attempt, which already knows its target store;
//! - a **named interceptor**: a closure that tags every attempt's request source, the
//!   lightweight hook for things that need no `.await`.
//!
//! Run with `cargo run --example custom_layer`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tikv::layers::{Error, RpcRequest, RpcResponse};
use tikv::mock::{Mock, MockOptions};
use tikv::pipeline::Stage;
use tikv::raw::Client;
use tower::{Layer, Service};

/// Counts API calls by command name: a minimal `tower` layer.
#[derive(Clone, Default)]
struct AuditLayer {
    calls: Arc<AtomicU64>,
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Audit<S> {
        Audit {
            inner,
            calls: self.calls.clone(),
        }
    }
}

#[derive(Clone)]
struct Audit<S> {
    inner: S,
    calls: Arc<AtomicU64>,
}

impl<S> Service<RpcRequest> for Audit<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error>,
{
    type Response = RpcResponse;
    type Error = Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        println!(
            "audit: {} ({} bytes)",
            req.cmd_type(),
            req.cmd.encoded_len()
        );
        self.inner.call(req)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // A mock cluster with two regions, split at "m".
    let mock = Mock::new(MockOptions::default());
    mock.cluster()
        .bootstrap_with_multi_regions(&[b"m".as_slice()]);

    let audit = AuditLayer::default();
    let attempts = Arc::new(AtomicU64::new(0));
    let counted = attempts.clone();

    let client = Client::builder()
        .embedded(mock)
        .layer(Stage::Request, audit.clone())
        .layer(Stage::Attempt, tower::limit::ConcurrencyLimitLayer::new(64))
        .interceptor("tag-source", move |req: &mut RpcRequest| {
            counted.fetch_add(1, Ordering::Relaxed);
            req.context.request_source = "example_custom_layer".into();
            Ok(())
        })
        .build()
        .await?;

    client.put(b"apple".to_vec(), b"red".to_vec()).await?;
    client.put(b"pear".to_vec(), b"green".to_vec()).await?;
    let values = client
        .batch_get([b"apple".to_vec(), b"pear".to_vec(), b"plum".to_vec()])
        .await?;
    println!("batch_get: {values:?}");
    let all = client.scan(b"a".to_vec()..b"z".to_vec(), 10).await?;
    println!("scan over two regions: {} pairs", all.len());

    println!(
        "{} API calls audited, {} RPC attempts intercepted",
        audit.calls.load(Ordering::Relaxed),
        attempts.load(Ordering::Relaxed)
    );
    Ok(())
}
