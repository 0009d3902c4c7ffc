//! Request collapsing in the default stack (TP-22; client-go builds its store client as
//! `reqCollapse(interceptedClient(rpc))`): identical whole-region resolve-locks in flight
//! share one RPC; other requests each get their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tikv::layers::locate::RegionLocator;
use tikv::layers::{Error, RpcRequest, RpcResponse};
use tikv::pipeline::Pipeline;
use tikv::proto::kvrpcpb;
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

use crate::common::Env;

/// The mock's TiKV face behind a gate: every resolve-lock is counted and waits for a
/// permit, so a test decides when the RPC in flight ends.
#[derive(Clone)]
struct Gated {
    inner: tikv::mock::MockTikv,
    resolve_locks: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Service<RpcRequest> for Gated {
    type Response = RpcResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<RpcResponse, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        let inner = self.inner.clone();
        let gate = self.gate.clone();
        if req.cmd.resolve_lock().is_some() {
            self.resolve_locks.fetch_add(1, Ordering::SeqCst);
        }
        Box::pin(async move {
            if req.cmd.resolve_lock().is_some() {
                gate.acquire().await.expect("gate open").forget();
            }
            inner.oneshot(req).await
        })
    }
}

async fn setup() -> (Env, Pipeline, Arc<AtomicUsize>, Arc<Semaphore>) {
    let env = Env::new(1).await;
    let resolve_locks = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let svc = Gated {
        inner: env.mock.tikv(),
        resolve_locks: resolve_locks.clone(),
        gate: gate.clone(),
    };
    let pipeline = env.builder().transport(svc).build(&env.cluster).unwrap();
    (env, pipeline, resolve_locks, gate)
}

async fn resolve_lock(env: &Env, keys: Vec<Vec<u8>>) -> RpcRequest {
    let region = env.cluster.region_cache().locate_key(b"").await.unwrap();
    let mut req = RpcRequest::new(kvrpcpb::ResolveLockRequest {
        start_version: 10,
        commit_version: 0,
        keys,
        ..Default::default()
    });
    req.target.region = Some(region);
    req
}

/// Lets every spawned request run as far as it can (one current-thread runtime).
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn identical_whole_region_resolve_locks_share_one_rpc() {
    let (env, pipeline, resolve_locks, gate) = setup().await;
    let mut callers = Vec::new();
    for _ in 0..3 {
        let req = resolve_lock(&env, Vec::new()).await;
        callers.push(tokio::spawn(pipeline.clone().oneshot(req)));
    }
    settle().await;
    assert_eq!(resolve_locks.load(Ordering::SeqCst), 1, "one RPC in flight");
    gate.add_permits(1);
    for c in callers {
        c.await.unwrap().unwrap();
    }
    assert_eq!(
        resolve_locks.load(Ordering::SeqCst),
        1,
        "all three answered by it"
    );
    // Collapsing is not a cache: a call after the shared one ended sends again.
    gate.add_permits(1);
    let req = resolve_lock(&env, Vec::new()).await;
    pipeline.clone().oneshot(req).await.unwrap();
    assert_eq!(resolve_locks.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn resolve_locks_with_keys_are_not_collapsed() {
    let (env, pipeline, resolve_locks, gate) = setup().await;
    let mut callers = Vec::new();
    for _ in 0..3 {
        let req = resolve_lock(&env, vec![b"k".to_vec()]).await;
        callers.push(tokio::spawn(pipeline.clone().oneshot(req)));
    }
    settle().await;
    assert_eq!(resolve_locks.load(Ordering::SeqCst), 3, "one RPC each");
    gate.add_permits(3);
    for c in callers {
        c.await.unwrap().unwrap();
    }
}
