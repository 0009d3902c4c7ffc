//! The pipeline test harness: an embedded mock cluster, the client's region and store
//! caches over its in-process PD, and the full default pipeline ending in a recording
//! wrapper around the mock's TiKV face (client-go's `replicaSelectorAccessPathCase`
//! harness and `testRegionRequestToThreeStoresSuite`, reduced to what Rust needs).
//!
//! Errors are injected with the mock's own rules (`Mock::inject`); every attempt that
//! reaches the terminal service is recorded with its target and read flags.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tikv::cluster::Cluster;
use tikv::config::Config;
use tikv::layers::api_codec::{Codec, Mode};
use tikv::layers::{Error, RpcRequest, RpcResponse};
use tikv::mock::{Mock, MockOptions, MockTikv};
use tikv::pd::KeyMode;
use tikv::pipeline::{Pipeline, PipelineBuilder};
use tower::{Service, ServiceExt};

/// One attempt as the terminal service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The command.
    pub cmd: &'static str,
    /// The store the attempt targets (the leader when forwarded).
    pub store_id: u64,
    /// The address the attempt went to (the proxy when forwarded).
    pub addr: String,
    /// `Context.replica_read`.
    pub replica_read: bool,
    /// `Context.stale_read`.
    pub stale_read: bool,
    /// `tikv-forwarded-host`, when forwarded.
    pub forwarded_host: Option<String>,
    /// `Context.is_retry_request`.
    pub is_retry: bool,
    /// `Context.request_source`.
    pub request_source: String,
}

impl Attempt {
    /// `s<store>/<L|R|S>` as client-go's access-path tests print it.
    pub fn short(&self) -> String {
        let kind = if self.stale_read {
            "S"
        } else if self.replica_read {
            "R"
        } else {
            "L"
        };
        format!("s{}/{kind}", self.store_id)
    }
}

/// The recording terminal service: records, then hands the attempt to the mock.
#[derive(Clone)]
pub struct Recorder {
    inner: MockTikv,
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl Recorder {
    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// The access path so far, in client-go's notation.
    pub fn path(&self) -> Vec<String> {
        self.attempts().iter().map(Attempt::short).collect()
    }

    /// Forgets the attempts so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Service<RpcRequest> for Recorder {
    type Response = RpcResponse;
    type Error = Error;
    type Future = <MockTikv as Service<RpcRequest>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RpcRequest) -> Self::Future {
        self.log.lock().unwrap().push(Attempt {
            cmd: req.cmd_type().name(),
            store_id: req.target.store_id,
            addr: req.target.addr.clone(),
            replica_read: req.context.replica_read,
            stale_read: req.context.stale_read,
            forwarded_host: req.target.forwarded_host.clone(),
            is_retry: req.context.is_retry_request,
            request_source: req.context.request_source.clone(),
        });
        self.inner.call(req)
    }
}

/// A test environment over one mock cluster.
pub struct Env {
    /// The mock cluster.
    pub mock: Mock,
    /// The client's shared state over the mock's PD.
    pub cluster: Cluster,
    /// The recording terminal.
    pub recorder: Recorder,
    /// The store ids, in creation order (store `i` carries label `id=<i+1>`).
    pub stores: Vec<u64>,
    /// The peer ids of the first region, one per store, in store order.
    pub peers: Vec<u64>,
    /// The first region's id.
    pub region: u64,
}

impl Env {
    /// `n` stores with one region whose leader is on the first store; store `i` is
    /// labelled `id=<i+1>` (client-go's access-path harness).
    pub async fn new(n: usize) -> Env {
        Env::with_config(n, Config::default()).await
    }

    /// Like [`new`](Self::new) with a client configuration.
    pub async fn with_config(n: usize, config: Config) -> Env {
        // Followers serve replica and stale reads (client-go's access-path tests run
        // against stores that do).
        let mut opts = MockOptions::default();
        opts.follower_read = true;
        let mock = Mock::new(opts);
        let (stores, peers, region, _leader) = mock.cluster().bootstrap_with_multi_stores(n);
        for (i, s) in stores.iter().enumerate() {
            let id = (i + 1).to_string();
            mock.cluster()
                .update_store_labels(*s, &[("id", id.as_str())])
                .unwrap();
        }
        let cluster = Cluster::embedded(&mock, KeyMode::RawV1, &config)
            .await
            .unwrap();
        let recorder = Recorder {
            inner: mock.tikv(),
            log: Arc::default(),
        };
        Env {
            mock,
            cluster,
            recorder,
            stores,
            peers,
            region,
        }
    }

    /// The default pipeline over the recorder (deterministic replica ties), ready for
    /// extra settings.
    pub fn builder(&self) -> PipelineBuilder {
        PipelineBuilder::new()
            .transport(self.recorder.clone())
            .api_codec(Codec::v1(Mode::Raw))
            .deterministic_replica_choice(true)
    }

    /// The default pipeline over the recorder.
    pub fn pipeline(&self) -> Pipeline {
        self.builder().build(&self.cluster).unwrap()
    }

    /// Sends one request through a fresh default pipeline.
    pub async fn send(&self, req: RpcRequest) -> Result<RpcResponse, Error> {
        self.pipeline().oneshot(req).await
    }
}
