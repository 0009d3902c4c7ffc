//! The TiKV RPC client section (client-go `config/client.go`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tikv_layers::Error;
use tikv_layers::ru::RuV2Weights;

use super::{
    DEF_BATCH_POLICY, DEF_BATCH_WINDOW_MAX_HOLD, DEF_GRPC_INITIAL_CONN_WINDOW_SIZE,
    DEF_GRPC_INITIAL_WINDOW_SIZE, DEF_MAX_CONCURRENCY_REQUEST_LIMIT, DEF_STORE_LIVENESS_TIMEOUT,
    MAX_GRPC_WINDOW_SIZE, MIN_GRPC_KEEPALIVE_TIMEOUT, invalid, non_zero, non_zero_duration,
    setters,
};

// ===== GrpcCompression =====

/// Compression of gRPC messages to TiKV (client-go `TiKVClient.GrpcCompressionType`, which
/// accepts the strings "none" and "gzip").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GrpcCompression {
    /// No compression (client-go "none"; the default).
    #[default]
    None,
    /// gzip-compress requests and accept gzip responses (client-go "gzip").
    Gzip,
}

impl GrpcCompression {
    /// The name client-go uses in its config ("none" or "gzip").
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCompression::None => "none",
            GrpcCompression::Gzip => "gzip",
        }
    }
}

impl fmt::Display for GrpcCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrpcCompression {
    type Err = Error;

    /// Parses client-go's names. Any other value is rejected with the message client-go's
    /// validation gives, naming `tikv_client.grpc_compression`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "none" => Ok(GrpcCompression::None),
            "gzip" => Ok(GrpcCompression::Gzip),
            other => Err(invalid(
                "tikv_client.grpc_compression",
                format!("should be none or gzip, but got {other}"),
            )),
        }
    }
}

// ===== BatchPolicy =====

/// How the batch-commands sender decides to wait for more requests before sending a batch
/// (client-go `TiKVClient.BatchPolicy`: "basic", "standard", "positive" or
/// "custom {json}").
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum BatchPolicy {
    /// Never waits for extra requests; the behaviour before TiDB v8.3.0 (client-go
    /// `BatchPolicyBasic`).
    Basic,
    /// Waits briefly when recent requests arrived close together (client-go
    /// `BatchPolicyStandard`; the default).
    #[default]
    Standard,
    /// Always waits briefly for more requests (client-go `BatchPolicyPositive`).
    Positive,
    /// User-tuned trigger options (client-go `BatchPolicyCustom`, given there as JSON after
    /// the word "custom").
    Custom(TurboBatchOptions),
}

impl BatchPolicy {
    /// client-go's name of the policy ("basic", "standard", "positive", "custom").
    pub fn name(&self) -> &'static str {
        match self {
            BatchPolicy::Basic => "basic",
            BatchPolicy::Standard => "standard",
            BatchPolicy::Positive => "positive",
            BatchPolicy::Custom(_) => "custom",
        }
    }

    /// The trigger options the sender runs with (client-go `presetBatchPolicies` for the
    /// named policies).
    pub fn turbo_options(&self) -> TurboBatchOptions {
        match self {
            BatchPolicy::Basic => TurboBatchOptions::default(),
            BatchPolicy::Standard => TurboBatchOptions {
                strategy: TurboBatchStrategy::TimeBased,
                wait: Duration::from_micros(100),
                max_arrival_factor: 5,
                smoothing: 0.2,
                threshold: 0.8,
                size_rounding: 0.8,
            },
            BatchPolicy::Positive => TurboBatchOptions {
                strategy: TurboBatchStrategy::Always,
                wait: Duration::from_micros(100),
                ..TurboBatchOptions::default()
            },
            BatchPolicy::Custom(opts) => *opts,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        const FIELD: &str = "tikv_client.batch_policy";
        let BatchPolicy::Custom(opts) = self else {
            return Ok(());
        };
        for (name, value) in [
            ("smoothing", opts.smoothing),
            ("threshold", opts.threshold),
            ("size_rounding", opts.size_rounding),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    FIELD,
                    format!("custom option `{name}` must be within [0, 1], got {value}"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for BatchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BatchPolicy {
    type Err = Error;

    /// Parses the named policies. A custom policy has options and is built with
    /// [`BatchPolicy::Custom`]; any other string is rejected naming
    /// `tikv_client.batch_policy`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "basic" => Ok(BatchPolicy::Basic),
            "standard" => Ok(BatchPolicy::Standard),
            "positive" => Ok(BatchPolicy::Positive),
            other => Err(invalid(
                "tikv_client.batch_policy",
                format!(
                    "should be basic, standard or positive (build custom policies with \
                     BatchPolicy::Custom), but got {other}"
                ),
            )),
        }
    }
}

/// When the batch trigger decides to wait for more requests (client-go `turboBatchOptions.V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TurboBatchStrategy {
    /// Always wait (client-go `v = 0`).
    #[default]
    Always,
    /// Wait when the smoothed request arrival interval is below `threshold * wait`
    /// (client-go `v = 1`).
    TimeBased,
    /// Wait when the smoothed probability that the next request arrives within `wait` is
    /// above `threshold` (client-go `v = 2`).
    ProbBased,
}

/// Options of the batch-commands trigger (client-go `turboBatchOptions`, the JSON of a
/// "custom" batch policy). The default is the "basic" policy: never wait.
///
/// ```
/// use std::time::Duration;
/// use tikv::config::{BatchPolicy, TurboBatchOptions, TurboBatchStrategy};
///
/// let policy = BatchPolicy::Custom(
///     TurboBatchOptions::default()
///         .with_strategy(TurboBatchStrategy::ProbBased)
///         .with_wait(Duration::from_micros(200))
///         .with_smoothing(0.5)
///         .with_threshold(0.6),
/// );
/// assert_eq!(policy.name(), "custom");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct TurboBatchOptions {
    /// The decision rule (client-go `v`).
    pub strategy: TurboBatchStrategy,
    /// The longest extra wait for a batch (client-go `t`, seconds there).
    pub wait: Duration,
    /// Arrival intervals are capped at `max_arrival_factor * wait` before smoothing
    /// (client-go `n`, time-based only).
    pub max_arrival_factor: u32,
    /// Weight of the newest sample in the exponential smoothing, in [0, 1] (client-go `w`).
    pub smoothing: f64,
    /// Decision threshold, in [0, 1] (client-go `p`).
    pub threshold: f64,
    /// Round the average wait size up when its fractional part is at least this, in [0, 1]
    /// (client-go `q`).
    pub size_rounding: f64,
}

setters!(TurboBatchOptions {
    /// Sets [`strategy`](Self::strategy).
    with_strategy => strategy: TurboBatchStrategy;
    /// Sets [`wait`](Self::wait).
    with_wait => wait: Duration;
    /// Sets [`max_arrival_factor`](Self::max_arrival_factor).
    with_max_arrival_factor => max_arrival_factor: u32;
    /// Sets [`smoothing`](Self::smoothing).
    with_smoothing => smoothing: f64;
    /// Sets [`threshold`](Self::threshold).
    with_threshold => threshold: f64;
    /// Sets [`size_rounding`](Self::size_rounding).
    with_size_rounding => size_rounding: f64;
});

// ===== AsyncCommit =====

/// Limits under which a transaction may use async commit or one-phase commit, and the DDL
/// safety window (client-go `TiKVClient.AsyncCommit`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AsyncCommit {
    /// Use async commit only for at most this many keys (client-go `KeysLimit`, default 256).
    pub keys_limit: usize,
    /// Use async commit only when the keys total at most this many bytes (client-go
    /// `TotalKeySizeLimit`, default 4 KiB).
    pub total_key_size_limit: u64,
    /// How long after its start an async-commit or 1PC transaction may still commit with an
    /// old schema (client-go `SafeWindow`, default 2 s). Leave it alone unless async commit
    /// and 1PC are off cluster-wide.
    pub safe_window: Duration,
    /// Extra margin on top of `safe_window` for clock drift in DDL; not read by the client
    /// itself (client-go `AllowedClockDrift`, default 500 ms).
    pub allowed_clock_drift: Duration,
}

impl Default for AsyncCommit {
    fn default() -> Self {
        AsyncCommit {
            keys_limit: 256,
            total_key_size_limit: 4 * 1024,
            safe_window: Duration::from_secs(2),
            allowed_clock_drift: Duration::from_millis(500),
        }
    }
}

setters!(AsyncCommit {
    /// Sets [`keys_limit`](Self::keys_limit).
    with_keys_limit => keys_limit: usize;
    /// Sets [`total_key_size_limit`](Self::total_key_size_limit).
    with_total_key_size_limit => total_key_size_limit: u64;
    /// Sets [`safe_window`](Self::safe_window).
    with_safe_window => safe_window: Duration;
    /// Sets [`allowed_clock_drift`](Self::allowed_clock_drift).
    with_allowed_clock_drift => allowed_clock_drift: Duration;
});

// ===== CoprocessorCache =====

/// Sizing and admission of the coprocessor result cache; carried for the caller, not read
/// by the client (client-go `TiKVClient.CoprCache`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CoprocessorCache {
    /// Cache capacity in MB; 0 disables the cache (client-go `CapacityMB`, default 1000).
    pub capacity_mb: f64,
    /// Only cache requests with at most this many ranges (client-go `AdmissionMaxRanges`,
    /// default 500).
    pub admission_max_ranges: u64,
    /// Only cache results of at most this many MB (client-go `AdmissionMaxResultMB`,
    /// default 10).
    pub admission_max_result_mb: f64,
    /// Only cache requests that took at least this long to process (client-go
    /// `AdmissionMinProcessMs`, milliseconds there; default 5 ms).
    pub admission_min_process_time: Duration,
}

impl Default for CoprocessorCache {
    fn default() -> Self {
        CoprocessorCache {
            capacity_mb: 1000.0,
            admission_max_ranges: 500,
            admission_max_result_mb: 10.0,
            admission_min_process_time: Duration::from_millis(5),
        }
    }
}

setters!(CoprocessorCache {
    /// Sets [`capacity_mb`](Self::capacity_mb).
    with_capacity_mb => capacity_mb: f64;
    /// Sets [`admission_max_ranges`](Self::admission_max_ranges).
    with_admission_max_ranges => admission_max_ranges: u64;
    /// Sets [`admission_max_result_mb`](Self::admission_max_result_mb).
    with_admission_max_result_mb => admission_max_result_mb: f64;
    /// Sets [`admission_min_process_time`](Self::admission_min_process_time).
    with_admission_min_process_time => admission_min_process_time: Duration;
});

impl CoprocessorCache {
    fn validate(&self) -> Result<(), Error> {
        for (field, value) in [
            ("tikv_client.copr_cache.capacity_mb", self.capacity_mb),
            (
                "tikv_client.copr_cache.admission_max_result_mb",
                self.admission_max_result_mb,
            ),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(invalid(
                    field,
                    format!("must be a finite number >= 0, got {value}"),
                ));
            }
        }
        Ok(())
    }
}

// ===== TikvClientConfig =====

/// The TiKV RPC client section (client-go `config.TiKVClient`, defaults from
/// `DefaultTiKVClient()`).
#[doc(alias = "TiKVClient")]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TikvClientConfig {
    /// gRPC connections opened to each TiKV store (client-go `GrpcConnectionCount`,
    /// default 4). Must be greater than 0.
    pub grpc_connection_count: usize,
    /// Idle time after which a keepalive ping is sent (client-go `GrpcKeepAliveTime`,
    /// seconds there; default 10 s). Must not be zero.
    pub grpc_keepalive_time: Duration,
    /// How long to wait for the ping's answer before closing the connection (client-go
    /// `GrpcKeepAliveTimeout`, fractional seconds there; default 3 s). At least
    /// [`MIN_GRPC_KEEPALIVE_TIMEOUT`] (50 ms).
    pub grpc_keepalive_timeout: Duration,
    /// Message compression (client-go `GrpcCompressionType`, default none).
    pub grpc_compression: GrpcCompression,
    /// Whether receive buffers are shared across connections (client-go
    /// `GrpcSharedBufferPool`, default `false`).
    pub grpc_shared_buffer_pool: bool,
    /// HTTP/2 per-stream flow-control window in bytes (client-go `GrpcInitialWindowSize`,
    /// default 128 MiB). Between 1 and 2^31 - 1.
    pub grpc_initial_window_size: u32,
    /// HTTP/2 per-connection flow-control window in bytes (client-go
    /// `GrpcInitialConnWindowSize`, default 128 MiB). Between 1 and 2^31 - 1.
    pub grpc_initial_conn_window_size: u32,
    /// The longest a commit may wait; not read by the client itself (client-go
    /// `CommitTimeout`, the string "41s" by default). Must not be zero.
    pub commit_timeout: Duration,
    /// Async-commit and 1PC limits (client-go `AsyncCommit`).
    pub async_commit: AsyncCommit,
    /// How the batch-commands sender waits for more requests (client-go `BatchPolicy`,
    /// default standard).
    pub batch_policy: BatchPolicy,
    /// Most requests per batch-commands message; 0 disables batch commands (client-go
    /// `MaxBatchSize`, default 128).
    pub max_batch_size: usize,
    /// TiKV load above which the sender waits to form bigger batches (client-go
    /// `OverloadThreshold`, default 200).
    pub overload_threshold: u64,
    /// Longest extra wait to fill a batch when TiKV is overloaded (client-go
    /// `MaxBatchWaitTime`, default 0).
    pub max_batch_wait_time: Duration,
    /// Batch size to aim for while waiting (client-go `BatchWaitSize`, default 8).
    pub batch_wait_size: usize,
    /// Most batch-commands messages per connection that TiKV has not started to answer;
    /// 0 (the default) means no limit, which is client-go's behaviour.
    ///
    /// client-go sends whatever is queued as soon as the stream takes it, so when TiKV is
    /// the bottleneck its queue fills with small messages and each costs it the same
    /// per-message work. With a window of `n`, a batch that finds `n` unstarted messages
    /// on every connection is held, and keeps collecting requests, until one of them gets
    /// its first response, until it is [`max_batch_size`](Self::max_batch_size) long, or
    /// for at most [`batch_window_max_hold`](Self::batch_window_max_hold). Callers answered
    /// meanwhile usually send their next request at once, so before a batch goes out it
    /// also waits, up to the batch policy's wait (`TurboBatchOptions::wait`; a single
    /// scheduler turn under the basic policy), for one request per answered caller. The
    /// message rate then follows the rate TiKV takes messages at, and messages grow with
    /// the load. The cost: a request arriving while the window is full waits for TiKV to
    /// start on an earlier message, so leave it off unless TiKV is the bottleneck. 1 is the
    /// usual setting. High-priority requests are never held.
    pub batch_window: usize,
    /// Longest a batch is held for [`batch_window`](Self::batch_window), and how long a
    /// message counts as unstarted without a response (so a message whose requests all
    /// wait long, such as lock waits, frees its place; default 5 ms). Must not be zero when
    /// the window is on.
    pub batch_window_max_hold: Duration,
    /// Whether coprocessor responses are chunk-encoded; not read by the client itself
    /// (client-go `EnableChunkRPC`, default `true`).
    pub enable_chunk_rpc: bool,
    /// A cached region not accessed for this long is reloaded from PD (client-go
    /// `RegionCacheTTL`, seconds there; default 600 s). Must not be zero.
    pub region_cache_ttl: Duration,
    /// Upper bound of the random extra idle time each region gets on top of
    /// [`region_cache_ttl`](Self::region_cache_ttl), so regions loaded together do not
    /// all expire together: a region lives `[ttl, ttl + jitter)` after its last use
    /// (client-go's `regionCacheTTLJitterSec`, set there with
    /// `SetRegionCacheTTLWithJitter`; default 60 s). Zero disables the jitter; whole
    /// seconds count.
    pub region_cache_ttl_jitter: Duration,
    /// Most requests in flight to one store before new ones fail with a token-limit error;
    /// 0 means unlimited (client-go `StoreLimit` together with the global `kv.StoreLimit`
    /// the sender reads; default 0).
    pub store_limit: u64,
    /// Timeout of the store liveness probe (client-go `StoreLivenessTimeout`, the string
    /// "1s" by default). Must not be zero.
    pub store_liveness_timeout: Duration,
    /// Coprocessor result cache (client-go `CoprCache`).
    pub copr_cache: CoprocessorCache,
    /// Timeout of one coprocessor request; not read by the client itself (client-go
    /// `CoprReqTimeout`, default 60 s). Must not be zero.
    pub copr_req_timeout: Duration,
    /// Transactions larger than this many bytes start the TTL-manager heartbeat once the
    /// primary key is prewritten (client-go `TTLRefreshedTxnSize`, default 32 MiB).
    pub ttl_refreshed_txn_size: u64,
    /// Transactions smaller than this many keys have their locks resolved one key at a time
    /// ("lite" resolution; client-go `ResolveLockLiteThreshold`, default 512).
    pub resolve_lock_lite_threshold: u64,
    /// Most requests in flight on one connection (client-go `MaxConcurrencyRequestLimit`,
    /// default [`DEF_MAX_CONCURRENCY_REQUEST_LIMIT`], i.e. unlimited). Must be greater than 0.
    pub max_concurrency_request_limit: u64,
    /// Weights of the RU v2 accounting (client-go `RUV2`).
    pub ru_v2: RuV2Weights,
}

impl Default for TikvClientConfig {
    /// client-go's `DefaultTiKVClient()`.
    fn default() -> Self {
        TikvClientConfig {
            grpc_connection_count: 4,
            grpc_keepalive_time: Duration::from_secs(10),
            grpc_keepalive_timeout: Duration::from_secs(3),
            grpc_compression: GrpcCompression::None,
            grpc_shared_buffer_pool: false,
            grpc_initial_window_size: DEF_GRPC_INITIAL_WINDOW_SIZE,
            grpc_initial_conn_window_size: DEF_GRPC_INITIAL_CONN_WINDOW_SIZE,
            commit_timeout: Duration::from_secs(41),
            async_commit: AsyncCommit::default(),
            batch_policy: DEF_BATCH_POLICY,
            max_batch_size: 128,
            overload_threshold: 200,
            max_batch_wait_time: Duration::ZERO,
            batch_wait_size: 8,
            batch_window: 0,
            batch_window_max_hold: DEF_BATCH_WINDOW_MAX_HOLD,
            enable_chunk_rpc: true,
            region_cache_ttl: Duration::from_secs(600),
            region_cache_ttl_jitter: Duration::from_secs(60),
            store_limit: 0,
            store_liveness_timeout: DEF_STORE_LIVENESS_TIMEOUT,
            copr_cache: CoprocessorCache::default(),
            copr_req_timeout: Duration::from_secs(60),
            ttl_refreshed_txn_size: 32 * 1024 * 1024,
            resolve_lock_lite_threshold: 512,
            max_concurrency_request_limit: DEF_MAX_CONCURRENCY_REQUEST_LIMIT,
            ru_v2: RuV2Weights::default(),
        }
    }
}

setters!(TikvClientConfig {
    /// Sets [`grpc_connection_count`](Self::grpc_connection_count).
    ///
    /// ```
    /// let c = tikv::config::TikvClientConfig::default().with_grpc_connection_count(16);
    /// assert_eq!(c.grpc_connection_count, 16);
    /// ```
    with_grpc_connection_count => grpc_connection_count: usize;
    /// Sets [`grpc_keepalive_time`](Self::grpc_keepalive_time).
    with_grpc_keepalive_time => grpc_keepalive_time: Duration;
    /// Sets [`grpc_keepalive_timeout`](Self::grpc_keepalive_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let c = tikv::config::TikvClientConfig::default()
    ///     .with_grpc_keepalive_timeout(Duration::from_millis(50));
    /// assert!(c.validate().is_ok());
    /// ```
    with_grpc_keepalive_timeout => grpc_keepalive_timeout: Duration;
    /// Sets [`grpc_compression`](Self::grpc_compression).
    ///
    /// ```
    /// use tikv::config::{GrpcCompression, TikvClientConfig};
    ///
    /// let c = TikvClientConfig::default().with_grpc_compression("gzip".parse()?);
    /// assert_eq!(c.grpc_compression, GrpcCompression::Gzip);
    /// # Ok::<(), tikv::layers::Error>(())
    /// ```
    with_grpc_compression => grpc_compression: GrpcCompression;
    /// Sets [`grpc_shared_buffer_pool`](Self::grpc_shared_buffer_pool).
    with_grpc_shared_buffer_pool => grpc_shared_buffer_pool: bool;
    /// Sets [`grpc_initial_window_size`](Self::grpc_initial_window_size).
    with_grpc_initial_window_size => grpc_initial_window_size: u32;
    /// Sets [`grpc_initial_conn_window_size`](Self::grpc_initial_conn_window_size).
    with_grpc_initial_conn_window_size => grpc_initial_conn_window_size: u32;
    /// Sets [`commit_timeout`](Self::commit_timeout).
    with_commit_timeout => commit_timeout: Duration;
    /// Replaces the [`async_commit`](Self::async_commit) section.
    with_async_commit => async_commit: AsyncCommit;
    /// Sets [`batch_policy`](Self::batch_policy).
    ///
    /// ```
    /// use tikv::config::{BatchPolicy, TikvClientConfig};
    ///
    /// let c = TikvClientConfig::default().with_batch_policy(BatchPolicy::Basic);
    /// assert_eq!(c.batch_policy.name(), "basic");
    /// ```
    with_batch_policy => batch_policy: BatchPolicy;
    /// Sets [`max_batch_size`](Self::max_batch_size).
    with_max_batch_size => max_batch_size: usize;
    /// Sets [`overload_threshold`](Self::overload_threshold).
    with_overload_threshold => overload_threshold: u64;
    /// Sets [`max_batch_wait_time`](Self::max_batch_wait_time).
    with_max_batch_wait_time => max_batch_wait_time: Duration;
    /// Sets [`batch_wait_size`](Self::batch_wait_size).
    with_batch_wait_size => batch_wait_size: usize;
    /// Sets [`batch_window`](Self::batch_window).
    ///
    /// ```
    /// let c = tikv::config::TikvClientConfig::default().with_batch_window(1);
    /// assert_eq!(c.batch_window, 1);
    /// assert!(c.validate().is_ok());
    /// ```
    with_batch_window => batch_window: usize;
    /// Sets [`batch_window_max_hold`](Self::batch_window_max_hold).
    with_batch_window_max_hold => batch_window_max_hold: Duration;
    /// Sets [`enable_chunk_rpc`](Self::enable_chunk_rpc).
    with_enable_chunk_rpc => enable_chunk_rpc: bool;
    /// Sets [`region_cache_ttl`](Self::region_cache_ttl).
    with_region_cache_ttl => region_cache_ttl: Duration;
    /// Sets [`region_cache_ttl_jitter`](Self::region_cache_ttl_jitter).
    with_region_cache_ttl_jitter => region_cache_ttl_jitter: Duration;
    /// Sets [`store_limit`](Self::store_limit).
    ///
    /// ```
    /// let c = tikv::config::TikvClientConfig::default().with_store_limit(1024);
    /// assert_eq!(c.store_limit, 1024);
    /// ```
    with_store_limit => store_limit: u64;
    /// Sets [`store_liveness_timeout`](Self::store_liveness_timeout).
    with_store_liveness_timeout => store_liveness_timeout: Duration;
    /// Replaces the [`copr_cache`](Self::copr_cache) section.
    with_copr_cache => copr_cache: CoprocessorCache;
    /// Sets [`copr_req_timeout`](Self::copr_req_timeout).
    with_copr_req_timeout => copr_req_timeout: Duration;
    /// Sets [`ttl_refreshed_txn_size`](Self::ttl_refreshed_txn_size).
    with_ttl_refreshed_txn_size => ttl_refreshed_txn_size: u64;
    /// Sets [`resolve_lock_lite_threshold`](Self::resolve_lock_lite_threshold).
    with_resolve_lock_lite_threshold => resolve_lock_lite_threshold: u64;
    /// Sets [`max_concurrency_request_limit`](Self::max_concurrency_request_limit).
    with_max_concurrency_request_limit => max_concurrency_request_limit: u64;
    /// Replaces the RU v2 weights, [`ru_v2`](Self::ru_v2).
    ///
    /// ```
    /// use tikv::config::{RuV2Weights, TikvClientConfig};
    ///
    /// let c = TikvClientConfig::default().with_ru_v2(RuV2Weights::default().with_ru_scale(1.0));
    /// assert_eq!(c.ru_v2.ru_scale, 1.0);
    /// ```
    with_ru_v2 => ru_v2: RuV2Weights;
});

impl TikvClientConfig {
    /// Checks this section (client-go `TiKVClient.Valid`, plus this client's extra rules).
    ///
    /// client-go's rules: `grpc_connection_count` > 0; compression none or gzip (enforced by
    /// [`GrpcCompression`]); `grpc_keepalive_timeout` >= 50 ms, with a message naming the
    /// minimum and the given value. Added here: `grpc_keepalive_time`, `commit_timeout`,
    /// `region_cache_ttl`, `store_liveness_timeout` and `copr_req_timeout` non-zero; both
    /// flow-control windows within 1..=2^31-1; `max_concurrency_request_limit` > 0; custom
    /// batch-policy ratios within [0, 1]; coprocessor-cache sizes finite and >= 0; RU v2
    /// weights finite and >= 0 ([`RuV2Weights::validate`]).
    pub fn validate(&self) -> Result<(), Error> {
        non_zero(
            "tikv_client.grpc_connection_count",
            self.grpc_connection_count as u64,
        )?;
        non_zero_duration("tikv_client.grpc_keepalive_time", self.grpc_keepalive_time)?;
        if self.grpc_keepalive_timeout < MIN_GRPC_KEEPALIVE_TIMEOUT {
            return Err(invalid(
                "tikv_client.grpc_keepalive_timeout",
                format!(
                    "must be at least {MIN_GRPC_KEEPALIVE_TIMEOUT:?}, got {:?}",
                    self.grpc_keepalive_timeout
                ),
            ));
        }
        for (field, value) in [
            (
                "tikv_client.grpc_initial_window_size",
                self.grpc_initial_window_size,
            ),
            (
                "tikv_client.grpc_initial_conn_window_size",
                self.grpc_initial_conn_window_size,
            ),
        ] {
            if value == 0 || value > MAX_GRPC_WINDOW_SIZE {
                return Err(invalid(
                    field,
                    format!("must be between 1 and {MAX_GRPC_WINDOW_SIZE} bytes, got {value}"),
                ));
            }
        }
        non_zero_duration("tikv_client.commit_timeout", self.commit_timeout)?;
        self.batch_policy.validate()?;
        if self.batch_window > 0 {
            non_zero_duration(
                "tikv_client.batch_window_max_hold",
                self.batch_window_max_hold,
            )?;
        }
        non_zero_duration("tikv_client.region_cache_ttl", self.region_cache_ttl)?;
        non_zero_duration(
            "tikv_client.store_liveness_timeout",
            self.store_liveness_timeout,
        )?;
        self.copr_cache.validate()?;
        non_zero_duration("tikv_client.copr_req_timeout", self.copr_req_timeout)?;
        non_zero(
            "tikv_client.max_concurrency_request_limit",
            self.max_concurrency_request_limit,
        )?;
        self.ru_v2.validate()?;
        Ok(())
    }
}
