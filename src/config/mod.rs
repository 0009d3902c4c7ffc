//! Client configuration: every knob of client-go's `config` package, as plain data.
//!
//! [`Config`] is the root. Its sections mirror client-go's:
//!
//! | section | type | client-go |
//! |---|---|---|
//! | `tikv_client` | [`TikvClientConfig`] | `config.TiKVClient` |
//! | `tikv_client.async_commit` | [`AsyncCommit`] | `config.AsyncCommit` |
//! | `tikv_client.copr_cache` | [`CoprocessorCache`] | `config.CoprocessorCache` |
//! | `tikv_client.ru_v2` | [`RuV2Weights`] | `config.RUV2TiKVConfig` |
//! | `pd_client` | [`PdClientConfig`] | `config.PDClient` |
//! | `txn_local_latches` | [`TxnLocalLatches`] | `config.TxnLocalLatches` |
//! | `pessimistic_txn` | [`PessimisticTxn`] | `config.PessimisticTxn` |
//! | `security` | [`Security`] | `config.Security` |
//!
//! Every type is `Clone + Debug + PartialEq`, and its `Default` is client-go's default
//! (`config.DefaultConfig()` and the `Default*` functions). Change a value with the
//! `#[must_use] with_*` setters, then check the whole thing with [`Config::validate`], which
//! returns [`ErrorDetail::InvalidConfig`] naming the
//! offending field by its path (for example `tikv_client.grpc_keepalive_timeout`) and the rule
//! it broke.
//!
//! ```
//! use std::time::Duration;
//! use tikv::config::{BatchPolicy, Config, TikvClientConfig};
//!
//! let config = Config::default()
//!     .with_enable_async_commit(true)
//!     .with_tikv_client(
//!         TikvClientConfig::default()
//!             .with_grpc_connection_count(8)
//!             .with_batch_policy(BatchPolicy::Positive)
//!             .with_grpc_keepalive_timeout(Duration::from_secs(5)),
//!     );
//! config.validate()?;
//! # Ok::<(), tikv::layers::Error>(())
//! ```
//!
//! # Differences from client-go
//!
//! - **No process-wide config.** client-go keeps one global config
//!   (`GetGlobalConfig`/`StoreGlobalConfig`/`UpdateGlobal`) plus two global atomics,
//!   `kv.StoreLimit` and `kv.TxnCommitBatchSize`. This project has no global mutable state:
//!   a [`Config`] value is handed to the client builder, and the two atomics are ordinary
//!   fields, [`TikvClientConfig::store_limit`] (which already existed as
//!   `TiKVClient.StoreLimit`) and [`Config::txn_commit_batch_size`]. A component that needs
//!   to change one of them at run time owns its own live copy.
//! - **Typed values.** Durations are [`Duration`] where client-go uses seconds, milliseconds
//!   or duration strings ("41s", "1s"); closed string sets are enums ([`BatchPolicy`],
//!   [`GrpcCompression`]); TLS file paths are `Option<PathBuf>` instead of "" for unset.
//! - **Dropped:** the deprecated `TiKVClient.EnableReplicaSelectorV2` and everything about
//!   txn scope (`Config.TxnScope`, `GetTxnScopeFromConfig`), which is being removed from
//!   TiKV in favour of [`Config::zone_label`].
//! - **Stricter validation.** client-go checks four rules (connection count, compression,
//!   keepalive timeout, PD timeout) plus the latch capacity. [`Config::validate`] keeps those
//!   and also rejects values that would make the client unusable: zero intervals and timeouts,
//!   zero batch sizes and concurrency, non-finite or negative weights, a TLS certificate
//!   without its key (or without a CA), and a `path` that does not parse.
//! - Fields that client-go carries only for its consumer (TiDB) and never reads itself
//!   ([`Config::path`], [`PessimisticTxn`], [`CoprocessorCache`], `commit_timeout`,
//!   `enable_chunk_rpc`, `copr_req_timeout`, `allowed_clock_drift`) are kept so the config
//!   stays complete; their docs say so.

use std::time::Duration;

use tikv_layers::{Error, ErrorDetail};

mod client;
mod path;
mod security;
mod txn;

#[cfg(test)]
mod tests;

pub use client::{
    AsyncCommit, BatchPolicy, CoprocessorCache, GrpcCompression, TikvClientConfig,
    TurboBatchOptions, TurboBatchStrategy,
};
pub use path::{PathError, StorePath, parse_path};
pub use security::Security;
pub use tikv_layers::ru::RuV2Weights;
pub use txn::{PdClientConfig, PessimisticTxn, TxnLocalLatches};

// ===== constants =====

/// Timeout of requests that read or write a few keys (client-go `tikv.ReadTimeoutShort`).
pub const READ_TIMEOUT_SHORT: Duration = Duration::from_secs(30);

/// Timeout of requests that may scan a whole region (client-go `tikv.ReadTimeoutMedium`).
pub const READ_TIMEOUT_MEDIUM: Duration = Duration::from_secs(60);

/// The execution-time hint sent with write requests (`max_execution_duration_ms`), 10 s less
/// than [`READ_TIMEOUT_SHORT`] so TiKV gives up before the client does (client-go
/// `tikv.MaxWriteExecutionTime`).
pub const MAX_WRITE_EXECUTION_TIME: Duration = Duration::from_secs(20);

/// Default of [`Config::stores_refresh_interval`] (client-go `DefStoresRefreshInterval`, 60 s).
pub const DEF_STORES_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Default of [`TikvClientConfig::store_liveness_timeout`] (client-go
/// `DefStoreLivenessTimeout`, "1s").
pub const DEF_STORE_LIVENESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Default HTTP/2 per-stream flow-control window, 128 MiB (client-go
/// `DefGrpcInitialWindowSize`).
pub const DEF_GRPC_INITIAL_WINDOW_SIZE: u32 = 1 << 27;

/// Default HTTP/2 per-connection flow-control window, 128 MiB (client-go
/// `DefGrpcInitialConnWindowSize`).
pub const DEF_GRPC_INITIAL_CONN_WINDOW_SIZE: u32 = 1 << 27;

/// The largest flow-control window HTTP/2 allows (2^31 - 1); bigger windows are rejected by
/// [`TikvClientConfig::validate`].
pub const MAX_GRPC_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// Default of [`TikvClientConfig::max_concurrency_request_limit`]: `i64::MAX`, i.e. no limit
/// (client-go `DefMaxConcurrencyRequestLimit`).
pub const DEF_MAX_CONCURRENCY_REQUEST_LIMIT: u64 = i64::MAX.unsigned_abs();

/// Default batch policy of the batch-commands stream (client-go `DefBatchPolicy`, "standard").
pub const DEF_BATCH_POLICY: BatchPolicy = BatchPolicy::Standard;

/// Default of [`TikvClientConfig::batch_window_max_hold`], 5 ms (this client's own; the
/// window is off by default).
pub const DEF_BATCH_WINDOW_MAX_HOLD: Duration = Duration::from_millis(5);

/// Default of [`Config::txn_commit_batch_size`], 16 KiB (client-go `kv.DefTxnCommitBatchSize`).
pub const DEF_TXN_COMMIT_BATCH_SIZE: u64 = 16 * 1024;

/// The smallest accepted [`TikvClientConfig::grpc_keepalive_timeout`], 50 ms (client-go
/// `TiKVClient.Valid`).
pub const MIN_GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(50);

/// Whether this build targets next-generation (cloud) TiKV (client-go `config.NextGen`, set by
/// the `nextgen` build tag there). This crate has no next-generation flavour yet, so it is
/// always `false`.
pub const NEXT_GEN: bool = false;

// ===== Config =====

/// The whole client configuration (client-go `config.Config`).
///
/// `Default` is client-go's `DefaultConfig()`; see the [module docs](self) for the sections
/// and for what differs from client-go.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// How many region batches one two-phase-commit action (prewrite, commit, ...) sends
    /// concurrently (client-go `CommitterConcurrency`, default 128).
    pub committer_concurrency: usize,
    /// The longest a transaction's locks are kept alive by the TTL manager (client-go
    /// `MaxTxnTTL`, milliseconds there; default 1 hour).
    pub max_txn_ttl: Duration,
    /// The TiKV RPC client section (client-go `TiKVClient`).
    pub tikv_client: TikvClientConfig,
    /// TLS material; the default is no TLS (client-go `Security`).
    pub security: Security,
    /// The PD client section (client-go `PDClient`).
    pub pd_client: PdClientConfig,
    /// The pessimistic-transaction section; not read by the client itself (client-go
    /// `PessimisticTxn`).
    pub pessimistic_txn: PessimisticTxn,
    /// In-process latches for optimistic transactions (client-go `TxnLocalLatches`).
    pub txn_local_latches: TxnLocalLatches,
    /// Base period of the background store checks: stores are re-resolved every quarter of
    /// it and replica-flow reports sent every half (client-go `StoresRefreshInterval`,
    /// seconds there; default 60 s).
    pub stores_refresh_interval: Duration,
    /// Whether to trace every gRPC call (client-go `OpenTracingEnable`, which installs
    /// OpenTracing interceptors; here the calls get `tracing` spans). Default `false`.
    pub open_tracing_enable: bool,
    /// The store path the client was configured from, e.g.
    /// `tikv://pd1:2379,pd2:2379?keyspaceName=ks`; see [`parse_path`]. Carried for the
    /// caller, not read by the client (client-go `Path`). Default empty.
    pub path: String,
    /// Whether a request may be forwarded through another TiKV when the leader is
    /// unreachable from this client, and PD requests through a PD follower (client-go
    /// `EnableForwarding`). Default `false`.
    pub enable_forwarding: bool,
    /// Whether transactions use async commit by default (client-go `EnableAsyncCommit`).
    /// Default `false`.
    pub enable_async_commit: bool,
    /// Whether transactions use one-phase commit when possible, by default (client-go
    /// `Enable1PC`). Default `false`.
    pub enable_1pc: bool,
    /// Period of a full reload of the region cache from PD; `None` disables it (client-go
    /// `RegionsRefreshInterval`, seconds there, 0 = disabled). While enabled, idle regions are
    /// not garbage-collected from the cache. Default `None`.
    pub regions_refresh_interval: Option<Duration>,
    /// Whether to load every region when the region cache starts (client-go
    /// `EnablePreload`). Default `false`.
    pub enable_preload: bool,
    /// Whether snapshot batch-gets use the asynchronous RPC path (client-go
    /// `EnableAsyncBatchGet`). Default `false`.
    pub enable_async_batch_get: bool,
    /// The `zone` label of this client, used to tell local from cross-zone traffic (client-go
    /// `ZoneLabel`). Default empty (unknown zone).
    pub zone_label: String,
    /// Target size in bytes of each commit-phase batch sent to TiKV; TiKV prefers RPCs under
    /// about 1 MiB (client-go global `kv.TxnCommitBatchSize`, default 16 KiB).
    pub txn_commit_batch_size: u64,
}

impl Default for Config {
    /// client-go's `config.DefaultConfig()`.
    fn default() -> Self {
        Config {
            committer_concurrency: 128,
            max_txn_ttl: Duration::from_secs(60 * 60),
            tikv_client: TikvClientConfig::default(),
            security: Security::default(),
            pd_client: PdClientConfig::default(),
            pessimistic_txn: PessimisticTxn::default(),
            txn_local_latches: TxnLocalLatches::default(),
            stores_refresh_interval: DEF_STORES_REFRESH_INTERVAL,
            open_tracing_enable: false,
            path: String::new(),
            enable_forwarding: false,
            enable_async_commit: false,
            enable_1pc: false,
            regions_refresh_interval: None,
            enable_preload: false,
            enable_async_batch_get: false,
            zone_label: String::new(),
            txn_commit_batch_size: DEF_TXN_COMMIT_BATCH_SIZE,
        }
    }
}

/// Generates `#[must_use] with_<field>(self, value) -> Self` setters.
macro_rules! setters {
    ($ty:ty { $( $(#[$doc:meta])* $setter:ident => $field:ident : $t:ty; )* }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $setter(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

setters!(Config {
    /// Sets [`committer_concurrency`](Self::committer_concurrency).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_committer_concurrency(64);
    /// assert_eq!(config.committer_concurrency, 64);
    /// ```
    with_committer_concurrency => committer_concurrency: usize;
    /// Sets [`max_txn_ttl`](Self::max_txn_ttl).
    with_max_txn_ttl => max_txn_ttl: Duration;
    /// Replaces the [`tikv_client`](Self::tikv_client) section.
    ///
    /// ```
    /// use tikv::config::{Config, GrpcCompression, TikvClientConfig};
    ///
    /// let config = Config::default().with_tikv_client(
    ///     TikvClientConfig::default().with_grpc_compression(GrpcCompression::Gzip),
    /// );
    /// assert_eq!(config.tikv_client.grpc_compression, GrpcCompression::Gzip);
    /// ```
    with_tikv_client => tikv_client: TikvClientConfig;
    /// Replaces the [`security`](Self::security) section.
    ///
    /// ```
    /// use tikv::config::{Config, Security};
    ///
    /// let config = Config::default()
    ///     .with_security(Security::new("ca.pem", "client.pem", "client-key.pem", vec![]));
    /// assert!(config.security.is_tls_enabled());
    /// ```
    with_security => security: Security;
    /// Replaces the [`pd_client`](Self::pd_client) section.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tikv::config::{Config, PdClientConfig};
    ///
    /// let config = Config::default()
    ///     .with_pd_client(PdClientConfig::default().with_pd_server_timeout(Duration::from_secs(5)));
    /// assert_eq!(config.pd_client.pd_server_timeout, Duration::from_secs(5));
    /// ```
    with_pd_client => pd_client: PdClientConfig;
    /// Replaces the [`pessimistic_txn`](Self::pessimistic_txn) section.
    with_pessimistic_txn => pessimistic_txn: PessimisticTxn;
    /// Replaces the [`txn_local_latches`](Self::txn_local_latches) section.
    ///
    /// ```
    /// use tikv::config::{Config, TxnLocalLatches};
    ///
    /// let config = Config::default().with_txn_local_latches(TxnLocalLatches::enabled_with_capacity(2048));
    /// assert!(config.validate().is_ok());
    /// ```
    with_txn_local_latches => txn_local_latches: TxnLocalLatches;
    /// Sets [`stores_refresh_interval`](Self::stores_refresh_interval).
    with_stores_refresh_interval => stores_refresh_interval: Duration;
    /// Sets [`open_tracing_enable`](Self::open_tracing_enable).
    with_open_tracing_enable => open_tracing_enable: bool;
    /// Sets [`enable_forwarding`](Self::enable_forwarding).
    with_enable_forwarding => enable_forwarding: bool;
    /// Sets [`enable_async_commit`](Self::enable_async_commit).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_enable_async_commit(true);
    /// assert!(config.enable_async_commit);
    /// ```
    with_enable_async_commit => enable_async_commit: bool;
    /// Sets [`enable_1pc`](Self::enable_1pc).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_enable_1pc(true);
    /// assert!(config.enable_1pc);
    /// ```
    with_enable_1pc => enable_1pc: bool;
    /// Sets [`regions_refresh_interval`](Self::regions_refresh_interval); `None` disables the
    /// periodic reload.
    with_regions_refresh_interval => regions_refresh_interval: Option<Duration>;
    /// Sets [`enable_preload`](Self::enable_preload).
    with_enable_preload => enable_preload: bool;
    /// Sets [`enable_async_batch_get`](Self::enable_async_batch_get).
    with_enable_async_batch_get => enable_async_batch_get: bool;
    /// Sets [`txn_commit_batch_size`](Self::txn_commit_batch_size).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_txn_commit_batch_size(64 * 1024);
    /// assert_eq!(config.txn_commit_batch_size, 64 * 1024);
    /// ```
    with_txn_commit_batch_size => txn_commit_batch_size: u64;
});

impl Config {
    /// Sets [`path`](Self::path).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_path("tikv://pd1:2379");
    /// assert_eq!(config.path, "tikv://pd1:2379");
    /// ```
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets [`zone_label`](Self::zone_label).
    ///
    /// ```
    /// let config = tikv::config::Config::default().with_zone_label("us-west-1a");
    /// assert_eq!(config.zone_label, "us-west-1a");
    /// ```
    #[must_use]
    pub fn with_zone_label(mut self, zone_label: impl Into<String>) -> Self {
        self.zone_label = zone_label.into();
        self
    }

    /// Checks every section and every field, returning the first violation as
    /// [`ErrorDetail::InvalidConfig`] with the field's path (e.g.
    /// `tikv_client.grpc_keepalive_timeout`) and the rule it broke.
    ///
    /// Top-level rules: `committer_concurrency`, `max_txn_ttl`, `stores_refresh_interval` and
    /// `txn_commit_batch_size` must be non-zero, `regions_refresh_interval` must not be
    /// `Some(0)` (use `None` to disable), and a non-empty `path` must parse with
    /// [`parse_path`]. Then the sections: [`TikvClientConfig::validate`],
    /// [`PdClientConfig::validate`], [`TxnLocalLatches::validate`] and
    /// [`Security::validate`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tikv::config::{Config, TikvClientConfig};
    /// use tikv::layers::ErrorDetail;
    ///
    /// let config = Config::default().with_tikv_client(
    ///     TikvClientConfig::default().with_grpc_keepalive_timeout(Duration::from_millis(40)),
    /// );
    /// let err = config.validate().unwrap_err();
    /// let ErrorDetail::InvalidConfig { field, reason } = err.detail() else { unreachable!() };
    /// assert_eq!(*field, "tikv_client.grpc_keepalive_timeout");
    /// assert_eq!(reason, "must be at least 50ms, got 40ms");
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        non_zero("committer_concurrency", self.committer_concurrency as u64)?;
        non_zero_duration("max_txn_ttl", self.max_txn_ttl)?;
        non_zero_duration("stores_refresh_interval", self.stores_refresh_interval)?;
        if self.regions_refresh_interval == Some(Duration::ZERO) {
            return Err(invalid(
                "regions_refresh_interval",
                "must not be zero; use None to disable the periodic reload",
            ));
        }
        non_zero("txn_commit_batch_size", self.txn_commit_batch_size)?;
        if !self.path.is_empty() {
            parse_path(&self.path).map_err(Error::from)?;
        }
        self.tikv_client.validate()?;
        self.pd_client.validate()?;
        self.txn_local_latches.validate()?;
        self.security.validate()?;
        Ok(())
    }
}

// ===== validation helpers =====

/// An `InvalidConfig` error for `field`.
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::new(ErrorDetail::InvalidConfig {
        field,
        reason: reason.into(),
    })
}

/// Rejects a zero count.
pub(crate) fn non_zero(field: &'static str, value: u64) -> Result<(), Error> {
    if value == 0 {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(())
}

/// Rejects a zero duration.
pub(crate) fn non_zero_duration(field: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return Err(invalid(field, "must not be zero"));
    }
    Ok(())
}
