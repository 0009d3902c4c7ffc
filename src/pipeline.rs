//! The request pipeline: the default tower stack every client call goes through, and the
//! places where users plug in their own layers (`doc/architecture.md`, "Layer order";
//! `shared/design/style.md` §2.4).
//!
//! ```text
//! trace → metrics → [Stage::Request layers] → shard → resolve_lock → retry → route
//!       → replica → collapse → interceptor → [Stage::Attempt layers] → timeout → api_codec
//!       → network → transport
//! ```
//!
//! Everything above `retry` sees one logical request; everything below it sees one
//! attempt (with its chosen peer and address in [`Target`](tikv_layers::Target)).
//!
//! Three ways to compose, from easiest to most powerful:
//!
//! 1. [`PipelineBuilder`]: the default stack with user layers inserted at a [`Stage`],
//!    a swapped terminal service ([`PipelineBuilder::transport`]: the embedded mock, a
//!    chaos wrapper, a recording fake), and client-level settings.
//! 2. [`Pipeline::from_service`]: any `Service<RpcRequest>` — a `tower_test` mock, a
//!    `service_fn`, or a stack built by hand from `tikv::layers` — becomes the pipeline.
//!    This is how users test code that uses the clients.
//! 3. Per-request hooks ride in the request itself (see `tikv::layers::interceptor`).
//!
//! Each stage boundary is a type-erased, cloneable service ([`BoxedStage`]): inserting
//! layers never changes the client's type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tikv_layers::api_codec::{ApiCodecLayer, Codec, Mode};
use tikv_layers::interceptor::{Interceptor, InterceptorLayer, named};
use tikv_layers::locate::ConnectionControl;
use tikv_layers::metrics::MetricsLayer;
use tikv_layers::network::NetworkLayer;
use tikv_layers::replica::{RegionServices, ReplicaLayer};
use tikv_layers::resolve_lock::{LockResolver, ResolveLockLayer};
use tikv_layers::retry::{ReadTsValidator, RetryLayer};
use tikv_layers::route::RouteLayer;
use tikv_layers::shard::{DefaultShardPolicy, ShardLayer};
use tikv_layers::timeout::{DefaultTimeoutPolicy, TimeoutLayer};
use tikv_layers::trace::{AttemptTraceLayer, TraceLayer};
use tikv_layers::{Error, ErrorDetail, Result, RpcRequest, RpcResponse};
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::cluster::Cluster;
use crate::config::Config;
use crate::transport::CollapseLayer;

/// A pipeline stage boundary: a type-erased, cloneable, `Sync` service over the request
/// envelope. User layers at a [`Stage`] wrap one of these.
///
/// Unlike `tower::util::BoxCloneSyncService`, cloning a `BoxedStage` does not allocate:
/// the erased service sits behind an `Arc` and each call clones the concrete service
/// inside (a few reference-count bumps for this crate's layers) and drives it with
/// [`ServiceExt::oneshot`]. Layers clone their inner service once per call (and the send
/// loop once per attempt), so with nested boundaries a per-clone allocation added up to
/// a large share of the pipeline's allocations per request (issue 6, benches/pipeline.rs).
///
/// Always ready: readiness of the wrapped service is awaited inside the call's future,
/// as every layer of `tikv::layers` expects of its inner service.
#[derive(Clone)]
pub struct BoxedStage {
    inner: Arc<dyn StageCall>,
}

/// The future of one call through a [`BoxedStage`].
pub type StageFuture = Pin<Box<dyn Future<Output = Result<RpcResponse>> + Send + 'static>>;

/// The object-safe face of a stage: a call through `&self`.
trait StageCall: Send + Sync {
    fn call(&self, req: RpcRequest) -> StageFuture;
}

/// A concrete service behind a [`BoxedStage`]; each call runs on a clone of it.
struct CloneOnCall<S>(S);

impl<S> StageCall for CloneOnCall<S>
where
    S: Service<RpcRequest, Response = RpcResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, req: RpcRequest) -> StageFuture {
        Box::pin(self.0.clone().oneshot(req))
    }
}

impl BoxedStage {
    /// Erases `svc`'s type. The service is cloned once per call, so it should be cheap to
    /// clone (shared state behind `Arc`s), as tower services conventionally are.
    pub fn new<S>(svc: S) -> BoxedStage
    where
        S: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        BoxedStage {
            inner: Arc::new(CloneOnCall(svc)),
        }
    }
}

impl std::fmt::Debug for BoxedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedStage").finish_non_exhaustive()
    }
}

impl Service<RpcRequest> for BoxedStage {
    type Response = RpcResponse;
    type Error = Error;
    type Future = StageFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RpcRequest) -> StageFuture {
        self.inner.call(req)
    }
}

/// Where a user layer goes in the default stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Once per API call, after `metrics` and before `shard`: sees each logical request
    /// once (audit, quotas, request-source tagging).
    Request,
    /// Once per RPC attempt, after the interceptors and before `timeout`: sees every
    /// attempt with its target store and address (auth headers, chaos, per-store limits).
    Attempt,
}

type StageFn = Arc<dyn Fn(BoxedStage) -> BoxedStage + Send + Sync>;

/// The per-attempt core over the terminal service: `timeout → api_codec → network →
/// transport`.
type Core = Stack<NetworkLayer, Stack<ApiCodecLayer, Stack<TimeoutLayer, Identity>>>;

/// Builds the core over the terminal service the user gave, keeping the terminal's
/// concrete type so the core costs one boxed boundary per attempt, not two.
type TerminalFn = Arc<dyn Fn(ServiceBuilder<Core>) -> BoxedStage + Send + Sync>;

/// Builds a [`Pipeline`]: the default stack plus user layers; see the [module docs](self).
#[derive(Clone, Default)]
pub struct PipelineBuilder {
    request: Vec<StageFn>,
    attempt: Vec<StageFn>,
    transport: Option<TerminalFn>,
    conn: Option<Arc<dyn ConnectionControl>>,
    forwarding: bool,
    local_zone: Option<String>,
    deterministic: bool,
    interceptors: InterceptorLayer,
    codec: Option<Codec>,
    timeouts: DefaultTimeoutPolicy,
    shard: DefaultShardPolicy,
    resolver: Option<Arc<dyn LockResolver>>,
    read_ts: Option<Arc<dyn ReadTsValidator>>,
    trace: TraceLayer,
    store_limit: u64,
    collapse: CollapseLayer,
}

impl std::fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("request_layers", &self.request.len())
            .field("attempt_layers", &self.attempt.len())
            .field("transport", &self.transport.is_some())
            .field("forwarding", &self.forwarding)
            .finish_non_exhaustive()
    }
}

impl PipelineBuilder {
    /// An empty builder: the default stack, no user layers, no transport yet.
    pub fn new() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Adds a user layer at `at`. Layers added at the same stage apply in the order added:
    /// the first added sees the request first, as in `tower::ServiceBuilder`.
    pub fn layer<L>(mut self, at: Stage, layer: L) -> Self
    where
        L: Layer<BoxedStage> + Send + Sync + 'static,
        L::Service: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<RpcRequest>>::Future: Send + 'static,
    {
        let f: StageFn = Arc::new(move |inner| BoxedStage::new(layer.layer(inner)));
        match at {
            Stage::Request => self.request.push(f),
            Stage::Attempt => self.attempt.push(f),
        }
        self
    }

    /// Replaces the terminal service (normally the tonic [`Transport`](crate::transport::Transport)):
    /// the embedded mock's in-process TiKV, a recording fake, a chaos wrapper.
    pub fn transport<T>(mut self, transport: T) -> Self
    where
        T: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Future: Send + 'static,
    {
        self.transport = Some(Arc::new(move |core: ServiceBuilder<Core>| {
            BoxedStage::new(core.service(transport.clone()))
        }));
        self
    }

    /// Adds a named RPC interceptor, run on every attempt with the attempt's target
    /// (client-go's interceptor chain: link order, and a second interceptor of the same
    /// name replaces the first and moves to the end).
    pub fn interceptor(mut self, name: &'static str, interceptor: impl Interceptor) -> Self {
        self.interceptors = self.interceptors.link(named(name, interceptor));
        self
    }

    /// The API codec (API V1/V2 keyspace encoding) at the transport edge. Default: API V1
    /// raw keys.
    pub fn api_codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Per-attempt timeouts and the sharding limits from the client configuration.
    pub fn config(mut self, config: &Config) -> Self {
        self.timeouts =
            DefaultTimeoutPolicy::new().with_coprocessor(config.tikv_client.copr_req_timeout);
        self.forwarding = config.enable_forwarding;
        self.store_limit = config.tikv_client.store_limit;
        self.collapse = CollapseLayer::new(config.tikv_client.clone());
        let zone = config.zone_label.clone();
        self.local_zone = (!zone.is_empty()).then_some(zone);
        self
    }

    /// The sharding policy: batch limits and concurrency of multi-region requests.
    pub fn shard_policy(mut self, policy: DefaultShardPolicy) -> Self {
        self.shard = policy;
        self
    }

    /// The lock resolver transactional reads use on `KeyIsLocked` answers; without one,
    /// locked answers go back to the caller as they are.
    pub fn lock_resolver(mut self, resolver: Arc<dyn LockResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Validates read timestamps before a read's first attempt (client-go's
    /// `ReadTSValidator`, SL-2 step 3): a read ts the oracle cannot vouch for fails
    /// without an RPC. Transactional clients set their cluster's oracle here (see
    /// [`OracleReadTsValidator`](crate::oracle::OracleReadTsValidator)); raw KV sets none,
    /// like client-go's no-op validator.
    pub fn read_ts_validator(mut self, validator: Arc<dyn ReadTsValidator>) -> Self {
        self.read_ts = Some(validator);
        self
    }

    /// The request span layer (level, key logging).
    pub fn trace(mut self, trace: TraceLayer) -> Self {
        self.trace = trace;
        self
    }

    /// Lets the send loop close connections of a misbehaving address (normally the tonic
    /// transport's control handle).
    pub fn connection_control(mut self, conn: Arc<dyn ConnectionControl>) -> Self {
        self.conn = Some(conn);
        self
    }

    /// Forward leader requests through a follower when the leader's store is unreachable
    /// (client-go's `EnableForwarding`; off by default).
    pub fn forwarding(mut self, enable: bool) -> Self {
        self.forwarding = enable;
        self
    }

    /// The client's zone (its `zone` label value), for access-location accounting.
    pub fn local_zone(mut self, zone: impl Into<String>) -> Self {
        let z = zone.into();
        self.local_zone = (!z.is_empty()).then_some(z);
        self
    }

    /// Break replica-score ties by taking the first replica instead of a random one, so
    /// tests see one access path (client-go's tests pin the random pick the same way).
    pub fn deterministic_replica_choice(mut self, yes: bool) -> Self {
        self.deterministic = yes;
        self
    }

    /// Assembles the stack over `cluster`'s region and store caches.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidConfig`] when no transport was given.
    pub fn build(self, cluster: &Cluster) -> Result<Pipeline> {
        let Some(terminal) = self.transport else {
            return Err(ErrorDetail::InvalidConfig {
                field: "transport",
                reason: "a pipeline needs a terminal service (PipelineBuilder::transport)".into(),
            }
            .into());
        };
        let locator = Arc::new(cluster.region_cache().clone());
        let svc = RegionServices {
            locator: locator.clone(),
            stores: Arc::new(cluster.store_cache().clone()),
        };
        let codec = self.codec.unwrap_or_else(|| Codec::v1(Mode::Raw));

        // Per attempt, innermost first: timeout and codec over the terminal, then the
        // user's attempt-stage layers.
        let core = ServiceBuilder::new()
            .layer(TimeoutLayer::with_policy(self.timeouts))
            .layer(ApiCodecLayer::new(codec))
            // Measures what goes on the wire (after the codec), client-go's network
            // collector: stale-read traffic, read bytes, traffic exec details.
            .layer(NetworkLayer::new());
        let mut attempt: BoxedStage = terminal(core);
        for f in self.attempt.iter().rev() {
            attempt = f(attempt);
        }

        // The region send loop: retry → route → replica → collapse → interceptors → attempt
        // stage.
        let mut replica = ReplicaLayer::new(svc.clone())
            .forwarding(self.forwarding)
            .deterministic(self.deterministic)
            .store_limit(self.store_limit);
        if let Some(z) = &self.local_zone {
            replica = replica.local_zone(z.clone());
        }
        let mut retry = RetryLayer::new(svc);
        if let Some(conn) = self.conn {
            retry = retry.connection_control(conn);
        }
        if let Some(v) = self.read_ts {
            retry = retry.read_ts_validator(v);
        }
        let send_loop = ServiceBuilder::new()
            .layer(retry)
            .layer(RouteLayer::new(locator.clone()))
            .layer(replica)
            // client-go wraps its RPC client as `reqCollapse(interceptedClient(rpc))`:
            // identical whole-region resolve-locks share one attempt (TP-22).
            .layer(self.collapse)
            .layer(self.interceptors)
            .layer(AttemptTraceLayer::new())
            .service(attempt);

        // Per logical request: shard (and lock resolution) over the send loop, then the
        // user's request-stage layers, then metrics and the request span.
        let top = RequestTop {
            request: self.request,
            trace: self.trace,
            shard: ShardLayer::new(locator).policy(self.shard),
        };
        let svc = match self.resolver {
            Some(r) => top.build(ResolveLockLayer::new(r).layer(send_loop)),
            None => top.build(send_loop),
        };
        Ok(Pipeline { svc })
    }
}

/// The per-request part of the stack, over the region send loop.
struct RequestTop {
    request: Vec<StageFn>,
    trace: TraceLayer,
    shard: ShardLayer,
}

impl RequestTop {
    /// `trace → metrics → [request stage] → shard → per_region`. Without request-stage
    /// layers nothing in between is erased, so a call pays for one boxed boundary here
    /// instead of three.
    fn build<S>(self, per_region: S) -> BoxedStage
    where
        S: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let observe = ServiceBuilder::new()
            .layer(self.trace)
            .layer(MetricsLayer::new());
        if self.request.is_empty() {
            return BoxedStage::new(observe.service(self.shard.layer(per_region)));
        }
        let mut stage = BoxedStage::new(self.shard.layer(BoxedStage::new(per_region)));
        for f in self.request.iter().rev() {
            stage = f(stage);
        }
        BoxedStage::new(observe.service(stage))
    }
}

/// The assembled request pipeline: cheap to clone, `Send + Sync`; every client handle
/// holds one.
#[derive(Clone)]
pub struct Pipeline {
    svc: BoxedStage,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Runs the clients over any service: a `tower_test` mock, a `service_fn`, or a stack
    /// built by hand. The service must be ready whenever called (as every layer of this
    /// crate is).
    pub fn from_service<S>(svc: S) -> Pipeline
    where
        S: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Pipeline {
            svc: BoxedStage::new(svc),
        }
    }

    /// Sends one request through the pipeline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future abandons the request; nothing is left half-sent
    /// on the client side (a write the server already received may still apply, as with
    /// any RPC).
    pub async fn call(&self, req: RpcRequest) -> Result<RpcResponse> {
        self.svc.inner.call(req).await
    }
}

impl Service<RpcRequest> for Pipeline {
    type Response = RpcResponse;
    type Error = Error;
    type Future = <BoxedStage as Service<RpcRequest>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.svc.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        self.svc.call(req)
    }
}
