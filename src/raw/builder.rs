//! Building a raw client (client-go's `rawkv.NewClientWithOpts`, RAW-1 / RAW-2, KS-17).

use tikv_layers::api_codec::{Codec, Mode};
use tikv_layers::shard::DefaultShardPolicy;
use tikv_layers::{Error, ErrorDetail, Result, RpcRequest, RpcResponse};
use tower::{Layer, Service};

use super::progress::ProgressLayer;
use super::{
    Client, DEFAULT_MAX_KEY_SIZE, DEFAULT_RAFT_ENTRY_MAX_SIZE, Limits, MAX_RAW_SCAN_LIMIT,
};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::pd::{KeyMode, PdClient, PdClientOptions};
use crate::pipeline::{BoxedStage, PipelineBuilder, Stage};

/// Which key layout the client speaks (client-go's `kvrpcpb.APIVersion` for raw clients,
/// KS-1 / KS-2).
///
/// A TiKV running API V1 with `storage.enable-ttl` (client-go's `V1TTL`) is spoken to in
/// V1, as client-go does: requests always say V1; tell the builder about the TTL support
/// with [`ClientBuilder::enable_ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ApiVersion {
    /// API V1: keys as given.
    #[default]
    V1,
    /// API V2: keys live in a keyspace, behind its 4-byte prefix.
    V2,
}

/// Builds a [`Client`]; see [`Client::builder`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    pd_endpoints: Vec<String>,
    config: Config,
    api_version: ApiVersion,
    keyspace: Option<String>,
    pipeline: PipelineBuilder,
    has_transport: bool,
    max_scan_limit: Option<u32>,
    max_key_size: Option<usize>,
    raft_entry_max_size: Option<usize>,
    enable_ttl: Option<bool>,
    #[cfg(feature = "mock")]
    embedded: Option<crate::mock::Mock>,
}

impl ClientBuilder {
    /// A builder with the default configuration and API V1.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The PD endpoints (`host:port`, with or without a scheme).
    pub fn pd_endpoints<S: AsRef<str>>(mut self, endpoints: &[S]) -> Self {
        self.pd_endpoints = endpoints.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// The client configuration (timeouts, TLS, connection pool, ...).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The API version (client-go's `WithAPIVersion`; default V1).
    pub fn api_version(mut self, v: ApiVersion) -> Self {
        self.api_version = v;
        self
    }

    /// The keyspace of an API V2 client (client-go's `WithKeyspace`; default `DEFAULT`).
    /// Ignored under API V1.
    pub fn keyspace(mut self, name: impl Into<String>) -> Self {
        self.keyspace = Some(name.into());
        self
    }

    /// The largest scan limit accepted (client-go's `MaxRawKVScanLimit`, default
    /// [`MAX_RAW_SCAN_LIMIT`]).
    pub fn max_scan_limit(mut self, limit: u32) -> Self {
        self.max_scan_limit = Some(limit);
        self
    }

    /// The longest key TiKV accepts, in bytes, as TiKV counts it (API V2 keys include their
    /// 4-byte prefix): the cluster's `storage.max-key-size`, default
    /// [`DEFAULT_MAX_KEY_SIZE`]. Longer keys of writes fail with
    /// [`ErrorDetail::KeyTooLarge`] before any RPC.
    pub fn max_key_size(mut self, bytes: usize) -> Self {
        self.max_key_size = Some(bytes);
        self
    }

    /// The largest pair (key plus value, in bytes) a write may carry: the cluster's
    /// `raftstore.raft-entry-max-size`, default [`DEFAULT_RAFT_ENTRY_MAX_SIZE`]. Larger pairs
    /// fail with [`ErrorDetail::EntryTooLarge`] before any RPC. TiKV measures the whole raft
    /// entry, so a pair just under the limit may still be refused by the server.
    pub fn raft_entry_max_size(mut self, bytes: usize) -> Self {
        self.raft_entry_max_size = Some(bytes);
        self
    }

    /// Whether the cluster keeps TTLs. Default: yes under API V2 (TiKV always does), no
    /// under API V1 (TiKV's `storage.enable-ttl` defaults to off). Without TTL support,
    /// writes with a non-zero TTL and `get_key_ttl` fail with
    /// [`ErrorDetail::InvalidArgument`] before any RPC instead of being refused by TiKV.
    pub fn enable_ttl(mut self, enabled: bool) -> Self {
        self.enable_ttl = Some(enabled);
        self
    }

    /// The sharding policy of batch calls: batch sizes and how many sub-requests of one
    /// call run at once (RAW-26: client-go runs every batch at once; the default here caps
    /// them at [`DEFAULT_SHARD_CONCURRENCY`](tikv_layers::shard::DEFAULT_SHARD_CONCURRENCY)).
    pub fn shard_policy(mut self, policy: DefaultShardPolicy) -> Self {
        self.pipeline = self.pipeline.shard_policy(policy);
        self
    }

    /// Adds a user layer to the request pipeline at `at`.
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
        self.pipeline = self.pipeline.layer(at, layer);
        self
    }

    /// Adds a named RPC interceptor (same name replaces, as client-go's chain does).
    pub fn interceptor(
        mut self,
        name: &'static str,
        interceptor: impl tikv_layers::interceptor::Interceptor,
    ) -> Self {
        self.pipeline = self.pipeline.interceptor(name, interceptor);
        self
    }

    /// Replaces the terminal service (the tonic transport): a recording fake, a chaos
    /// wrapper, another client's transport.
    pub fn transport<T>(mut self, transport: T) -> Self
    where
        T: Service<RpcRequest, Response = RpcResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Future: Send + 'static,
    {
        self.pipeline = self.pipeline.transport(transport);
        self.has_transport = true;
        self
    }

    /// Runs over the embedded mock cluster `mock` in process (its PD and its TiKV face):
    /// no sockets. PD endpoints are ignored.
    #[cfg(feature = "mock")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
    pub fn embedded(mut self, mock: crate::mock::Mock) -> Self {
        self.embedded = Some(mock);
        self
    }

    /// Connects and assembles the client.
    ///
    /// # Errors
    ///
    /// An invalid configuration, an unreachable PD, an unknown keyspace.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped build stops everything it started.
    pub async fn build(self) -> Result<Client> {
        self.config.validate()?;
        let keyspace = self
            .keyspace
            .clone()
            .unwrap_or_else(|| "DEFAULT".to_owned());
        let limits = Limits {
            api_version: self.api_version,
            max_scan_limit: self.max_scan_limit.unwrap_or(MAX_RAW_SCAN_LIMIT),
            max_key_size: self.max_key_size.unwrap_or(DEFAULT_MAX_KEY_SIZE),
            raft_entry_max_size: self
                .raft_entry_max_size
                .unwrap_or(DEFAULT_RAFT_ENTRY_MAX_SIZE),
            ttl_enabled: self
                .enable_ttl
                .unwrap_or(self.api_version == ApiVersion::V2),
        };
        #[cfg(feature = "mock")]
        if let Some(mock) = self.embedded.clone() {
            let codec = match self.api_version {
                ApiVersion::V1 => Codec::v1(Mode::Raw),
                ApiVersion::V2 => {
                    // client-go loads the meta without a state check (KS-17).
                    let meta = mock.pd().keyspace_by_name(&keyspace).ok_or_else(|| {
                        Error::from(ErrorDetail::InvalidArgument(format!(
                            "keyspace {keyspace} not found"
                        )))
                    })?;
                    Codec::v2(Mode::Raw, Some(meta))?
                }
            };
            let mode = KeyMode::from_codec(&codec)?;
            let cluster = Cluster::embedded(&mock, mode, &self.config).await?;
            let mut pipeline = self.pipeline;
            if !self.has_transport {
                pipeline = pipeline.transport(mock.tikv());
            }
            return finish(pipeline, cluster, codec, &self.config, limits);
        }
        if self.pd_endpoints.is_empty() {
            return Err(ErrorDetail::InvalidArgument("no PD endpoints given".into()).into());
        }
        let opts = PdClientOptions::from_config(&self.config).await?;
        let pd = PdClient::connect(&self.pd_endpoints, opts).await?;
        let codec = match self.api_version {
            ApiVersion::V1 => Codec::v1(Mode::Raw),
            ApiVersion::V2 => {
                let meta = crate::pd::get_keyspace_meta(&pd, &keyspace).await?;
                Codec::v2(Mode::Raw, Some(meta))?
            }
        };
        let mode = KeyMode::from_codec(&codec)?;
        let cluster = Cluster::from_pd(pd, mode, &self.config).await?;
        let mut pipeline = self.pipeline;
        if !self.has_transport {
            let transport = crate::transport::Transport::from_config(&self.config).await?;
            connect_transport(&cluster, &transport);
            pipeline = pipeline
                .connection_control(std::sync::Arc::new(transport.clone()))
                .transport(transport);
        }
        finish(pipeline, cluster, codec, &self.config, limits)
    }
}

/// Wires the transport's store events to the store cache (health feedback, HS-3), lets the
/// health tick ask stores for fresh feedback (HS-4), and lets the send loop close pools.
fn connect_transport(cluster: &Cluster, transport: &crate::transport::Transport) {
    let stores = cluster.store_cache();
    transport.set_event_listener(std::sync::Arc::new(stores.clone()));
    stores.set_health_feedback_requester(Some(crate::store_cache::transport_feedback_requester(
        transport.clone(),
    )));
}

fn finish(
    pipeline: PipelineBuilder,
    cluster: Cluster,
    codec: Codec,
    config: &Config,
    limits: Limits,
) -> Result<Client> {
    // The write-progress counter goes last, so it is the innermost attempt-stage layer:
    // it sees the store's answer before any user layer does.
    let pipeline = pipeline
        .layer(Stage::Attempt, ProgressLayer)
        .api_codec(codec)
        .config(config)
        .build(&cluster)?;
    Ok(Client::assemble(cluster, pipeline, limits))
}
