use std::path::PathBuf;
use std::time::Duration;

use tikv_layers::{Error, ErrorDetail, ErrorKind};

use super::*;

/// Asserts `result` is an `InvalidConfig` error on `field`; returns its reason.
#[track_caller]
fn invalid_field(result: Result<(), Error>, field: &str) -> String {
    let err = result.expect_err("config should be rejected");
    assert_eq!(err.kind(), ErrorKind::Config);
    match err.detail() {
        ErrorDetail::InvalidConfig { field: got, reason } => {
            assert_eq!(*got, field, "reason: {reason}");
            assert!(
                err.to_string().contains(field),
                "message names the field: {err}"
            );
            reason.clone()
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

// ===== defaults (api.md CFG-06, CFG-14..61; RPC-04) =====

#[test]
fn defaults_match_client_go() {
    let c = Config::default();
    // CFG-15..32 and CFG-14 (kv.TxnCommitBatchSize).
    assert_eq!(c.committer_concurrency, 128);
    assert_eq!(c.max_txn_ttl, Duration::from_millis(3_600_000));
    assert_eq!(c.security, Security::default());
    assert_eq!(c.pd_client, PdClientConfig::default());
    assert_eq!(c.pessimistic_txn.max_retry_count, 0);
    assert!(!c.txn_local_latches.enabled);
    assert_eq!(c.txn_local_latches.capacity, 0);
    assert_eq!(c.stores_refresh_interval, Duration::from_secs(60));
    assert!(!c.open_tracing_enable);
    assert_eq!(c.path, "");
    assert!(!c.enable_forwarding);
    assert!(!c.enable_async_commit);
    assert!(!c.enable_1pc);
    assert_eq!(c.regions_refresh_interval, None);
    assert!(!c.enable_preload);
    assert!(!c.enable_async_batch_get);
    assert_eq!(c.zone_label, "");
    assert_eq!(c.txn_commit_batch_size, 16 * 1024);

    // CFG-17, CFG-33..57.
    let t = &c.tikv_client;
    assert_eq!(*t, TikvClientConfig::default());
    assert_eq!(t.grpc_connection_count, 4);
    assert_eq!(t.grpc_keepalive_time, Duration::from_secs(10));
    assert_eq!(t.grpc_keepalive_timeout, Duration::from_secs(3));
    assert_eq!(t.grpc_compression, GrpcCompression::None);
    assert!(!t.grpc_shared_buffer_pool);
    assert_eq!(t.grpc_initial_window_size, 128 * 1024 * 1024);
    assert_eq!(t.grpc_initial_conn_window_size, 128 * 1024 * 1024);
    assert_eq!(t.commit_timeout, Duration::from_secs(41));
    assert_eq!(t.async_commit.keys_limit, 256);
    assert_eq!(t.async_commit.total_key_size_limit, 4096);
    assert_eq!(t.async_commit.safe_window, Duration::from_secs(2));
    assert_eq!(
        t.async_commit.allowed_clock_drift,
        Duration::from_millis(500)
    );
    assert_eq!(t.batch_policy, BatchPolicy::Standard);
    assert_eq!(t.max_batch_size, 128);
    assert_eq!(t.overload_threshold, 200);
    assert_eq!(t.max_batch_wait_time, Duration::ZERO);
    assert_eq!(t.batch_wait_size, 8);
    assert_eq!(t.batch_window, 0);
    assert_eq!(t.batch_window_max_hold, Duration::from_millis(5));
    assert!(t.enable_chunk_rpc);
    assert_eq!(t.region_cache_ttl, Duration::from_secs(600));
    assert_eq!(t.region_cache_ttl_jitter, Duration::from_secs(60));
    assert_eq!(t.store_limit, 0);
    assert_eq!(t.store_liveness_timeout, Duration::from_secs(1));
    assert_eq!(t.copr_cache.capacity_mb, 1000.0);
    assert_eq!(t.copr_cache.admission_max_ranges, 500);
    assert_eq!(t.copr_cache.admission_max_result_mb, 10.0);
    assert_eq!(
        t.copr_cache.admission_min_process_time,
        Duration::from_millis(5)
    );
    assert_eq!(t.copr_req_timeout, Duration::from_secs(60));
    assert_eq!(t.ttl_refreshed_txn_size, 32 * 1024 * 1024);
    assert_eq!(t.resolve_lock_lite_threshold, 512);
    assert_eq!(t.max_concurrency_request_limit, i64::MAX as u64);
    // CFG-57 / CFG-11.
    let w = &t.ru_v2;
    assert_eq!(w.ru_scale, 2.10);
    assert_eq!(w.tikv_kv_engine_cache_miss, 0.45975389);
    assert_eq!(w.resource_manager_write_cnt_tikv, 0.09642181);
    assert_eq!(w.executor_inputs, 0.00003150);
    assert_eq!(w.tikv_coprocessor_executor_iterations, 0.05775369);
    assert_eq!(w.tikv_coprocessor_response_bytes, 0.00000087);
    assert_eq!(w.tikv_raftstore_store_write_trigger_wb, 0.00006100);
    assert_eq!(w.tikv_storage_processed_keys_batch_get, 0.00266791);
    assert_eq!(w.tikv_storage_processed_keys_get, 0.01416829);

    // CFG-58.
    assert_eq!(c.pd_client.pd_server_timeout, Duration::from_secs(3));
    // CFG-61.
    assert_eq!(c.security.cluster_ssl_ca, None);
    assert_eq!(c.security.cluster_ssl_cert, None);
    assert_eq!(c.security.cluster_ssl_key, None);
    assert!(c.security.cluster_verify_cn.is_empty());

    assert!(c.validate().is_ok());
}

#[test]
fn constants_match_client_go() {
    // CFG-06.
    assert_eq!(DEF_STORES_REFRESH_INTERVAL, Duration::from_secs(60));
    assert_eq!(DEF_STORE_LIVENESS_TIMEOUT, Duration::from_secs(1));
    assert_eq!(DEF_GRPC_INITIAL_WINDOW_SIZE, 1 << 27);
    assert_eq!(DEF_GRPC_INITIAL_CONN_WINDOW_SIZE, 1 << 27);
    assert_eq!(DEF_MAX_CONCURRENCY_REQUEST_LIMIT, i64::MAX as u64);
    assert_eq!(DEF_BATCH_POLICY, BatchPolicy::Standard);
    // CFG-14.
    assert_eq!(DEF_TXN_COMMIT_BATCH_SIZE, 16 * 1024);
    // RPC-04.
    assert_eq!(READ_TIMEOUT_SHORT, Duration::from_secs(30));
    assert_eq!(READ_TIMEOUT_MEDIUM, Duration::from_secs(60));
    assert_eq!(MAX_WRITE_EXECUTION_TIME, Duration::from_secs(20));
    assert_eq!(
        MAX_WRITE_EXECUTION_TIME,
        READ_TIMEOUT_SHORT - Duration::from_secs(10)
    );
    assert_eq!(MIN_GRPC_KEEPALIVE_TIMEOUT, Duration::from_millis(50));
    assert_eq!(MAX_GRPC_WINDOW_SIZE, i32::MAX as u32);
    // CFG-05.
    const { assert!(!NEXT_GEN) };
}

// ===== T-CONFIG-001 / 003 =====

// client-go: T-CONFIG-001 TestParsePath
#[test]
fn parse_path_reads_endpoints_and_flags() {
    let p = parse_path("tikv://node1:2379,node2:2379").expect("valid path");
    assert_eq!(p.pd_endpoints, ["node1:2379", "node2:2379"]);
    assert!(!p.disable_gc);
    assert_eq!(p.keyspace_name, None);

    assert!(parse_path("tikv://node1:2379").is_ok());

    let p = parse_path("tikv://node1:2379?disableGC=true&keyspaceName=DEFAULT").expect("valid");
    assert!(p.disable_gc);
    assert_eq!(p.keyspace_name.as_deref(), Some("DEFAULT"));
}

// client-go: T-CONFIG-003 TestValidateGRPCKeepAliveTimeout
#[test]
fn validate_grpc_keepalive_timeout() {
    let cfg = TikvClientConfig::default();
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.grpc_keepalive_timeout, Duration::from_secs(3));
    let cfg = cfg.with_grpc_keepalive_timeout(Duration::from_millis(50));
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.grpc_keepalive_timeout, Duration::from_millis(50));
    let cfg = cfg.with_grpc_keepalive_timeout(Duration::from_millis(40));
    let reason = invalid_field(cfg.validate(), "tikv_client.grpc_keepalive_timeout");
    assert_eq!(reason, "must be at least 50ms, got 40ms");
    // The same error surfaces through the whole config.
    let reason = invalid_field(
        Config::default().with_tikv_client(cfg).validate(),
        "tikv_client.grpc_keepalive_timeout",
    );
    assert!(reason.contains("50ms") && reason.contains("40ms"));
}

// ===== parse_path details =====

#[test]
fn parse_path_variants() {
    // Scheme is case-insensitive; path, fragment, user info and unknown params are ignored.
    let p = parse_path("TiKV://u:pw@a:1,b:2/pd?cluster=1&disableGC=FALSE#frag").expect("valid");
    assert_eq!(p.pd_endpoints, ["a:1", "b:2"]);
    assert!(!p.disable_gc);
    // Percent-decoding, `+` as space, first value wins, empty keyspace is None.
    let p = parse_path("tikv://a?keyspaceName=my%20ks+x&keyspaceName=other&disableGC=True")
        .expect("valid");
    assert_eq!(p.keyspace_name.as_deref(), Some("my ks x"));
    assert!(p.disable_gc);
    let p = parse_path("tikv://a?keyspaceName=&disableGC=&&flag").expect("valid");
    assert_eq!(p.keyspace_name, None);
    assert!(!p.disable_gc);
    assert_eq!(
        p,
        StorePath {
            pd_endpoints: vec!["a".into()],
            ..StorePath::default()
        }
    );
}

#[test]
fn parse_path_errors() {
    let cases: [(&str, PathError); 7] = [
        ("node1:2379", PathError::MissingScheme("node1:2379".into())),
        ("http://node1:2379", PathError::WrongScheme("http".into())),
        ("tikv://", PathError::EmptyEndpoint("tikv://".into())),
        (
            "tikv://a,,b",
            PathError::EmptyEndpoint("tikv://a,,b".into()),
        ),
        (
            "tikv://a?disableGC=yes",
            PathError::InvalidDisableGc("yes".into()),
        ),
        (
            "tikv://a?keyspaceName=%zz",
            PathError::InvalidEscape("%zz".into()),
        ),
        (
            "tikv://a?keyspaceName=%+1",
            PathError::InvalidEscape("%+1".into()),
        ),
    ];
    for (path, want) in cases {
        assert_eq!(parse_path(path), Err(want), "{path}");
    }
    assert_eq!(
        parse_path("tikv://a?keyspaceName=%ff"),
        Err(PathError::InvalidEscape("%ff".into()))
    );
    assert_eq!(
        parse_path("tikv://a?keyspaceName=%4"),
        Err(PathError::InvalidEscape("%4".into()))
    );
    let err = parse_path("http://x").expect_err("wrong scheme");
    assert_eq!(
        err.to_string(),
        "URI scheme expected [tikv] but found [http]"
    );
    let err: Error = err.into();
    assert!(std::error::Error::source(&err).is_some());
    assert!(matches!(
        err.detail(),
        ErrorDetail::InvalidConfig { field: "path", .. }
    ));
}

// ===== one test per validation rule =====

#[test]
fn validate_top_level_rules() {
    let base = Config::default;
    invalid_field(
        base().with_committer_concurrency(0).validate(),
        "committer_concurrency",
    );
    invalid_field(
        base().with_max_txn_ttl(Duration::ZERO).validate(),
        "max_txn_ttl",
    );
    invalid_field(
        base()
            .with_stores_refresh_interval(Duration::ZERO)
            .validate(),
        "stores_refresh_interval",
    );
    let reason = invalid_field(
        base()
            .with_regions_refresh_interval(Some(Duration::ZERO))
            .validate(),
        "regions_refresh_interval",
    );
    assert!(reason.contains("None"));
    assert!(
        base()
            .with_regions_refresh_interval(Some(Duration::from_secs(30)))
            .validate()
            .is_ok()
    );
    invalid_field(
        base().with_txn_commit_batch_size(0).validate(),
        "txn_commit_batch_size",
    );
    let reason = invalid_field(base().with_path("http://pd:2379").validate(), "path");
    assert!(reason.contains("http"), "{reason}");
    assert!(base().with_path("tikv://pd:2379").validate().is_ok());
}

#[test]
fn validate_grpc_connection_count() {
    let reason = invalid_field(
        TikvClientConfig::default()
            .with_grpc_connection_count(0)
            .validate(),
        "tikv_client.grpc_connection_count",
    );
    assert_eq!(reason, "must be greater than 0");
}

#[test]
fn validate_grpc_compression() {
    assert_eq!(
        "none".parse::<GrpcCompression>().ok(),
        Some(GrpcCompression::None)
    );
    assert_eq!(
        "gzip".parse::<GrpcCompression>().ok(),
        Some(GrpcCompression::Gzip)
    );
    let reason = invalid_field(
        "zstd".parse::<GrpcCompression>().map(drop),
        "tikv_client.grpc_compression",
    );
    assert_eq!(reason, "should be none or gzip, but got zstd");
    assert_eq!(GrpcCompression::Gzip.to_string(), "gzip");
    assert_eq!(GrpcCompression::None.as_str(), "none");
}

#[test]
fn validate_tikv_client_durations_non_zero() {
    let z = Duration::ZERO;
    let d = TikvClientConfig::default;
    let cases = [
        (
            d().with_grpc_keepalive_time(z),
            "tikv_client.grpc_keepalive_time",
        ),
        (d().with_commit_timeout(z), "tikv_client.commit_timeout"),
        (d().with_region_cache_ttl(z), "tikv_client.region_cache_ttl"),
        (
            d().with_store_liveness_timeout(z),
            "tikv_client.store_liveness_timeout",
        ),
        (d().with_copr_req_timeout(z), "tikv_client.copr_req_timeout"),
    ];
    for (cfg, field) in cases {
        assert_eq!(invalid_field(cfg.validate(), field), "must not be zero");
    }
}

#[test]
fn validate_window_sizes() {
    for (cfg, field) in [
        (
            TikvClientConfig::default().with_grpc_initial_window_size(0),
            "tikv_client.grpc_initial_window_size",
        ),
        (
            TikvClientConfig::default().with_grpc_initial_window_size(1 << 31),
            "tikv_client.grpc_initial_window_size",
        ),
        (
            TikvClientConfig::default().with_grpc_initial_conn_window_size(0),
            "tikv_client.grpc_initial_conn_window_size",
        ),
        (
            TikvClientConfig::default().with_grpc_initial_conn_window_size(u32::MAX),
            "tikv_client.grpc_initial_conn_window_size",
        ),
    ] {
        let reason = invalid_field(cfg.validate(), field);
        assert!(reason.contains("2147483647"), "{reason}");
    }
    assert!(
        TikvClientConfig::default()
            .with_grpc_initial_window_size(MAX_GRPC_WINDOW_SIZE)
            .with_grpc_initial_conn_window_size(1)
            .validate()
            .is_ok()
    );
}

#[test]
fn validate_max_concurrency_request_limit() {
    invalid_field(
        TikvClientConfig::default()
            .with_max_concurrency_request_limit(0)
            .validate(),
        "tikv_client.max_concurrency_request_limit",
    );
}

#[test]
fn validate_custom_batch_policy() {
    let ok = BatchPolicy::Custom(
        TurboBatchOptions::default()
            .with_strategy(TurboBatchStrategy::TimeBased)
            .with_wait(Duration::from_micros(100))
            .with_max_arrival_factor(3)
            .with_smoothing(0.0)
            .with_threshold(1.0)
            .with_size_rounding(0.5),
    );
    assert!(
        TikvClientConfig::default()
            .with_batch_policy(ok)
            .validate()
            .is_ok()
    );
    for bad in [
        TurboBatchOptions::default().with_smoothing(1.5),
        TurboBatchOptions::default().with_threshold(-0.1),
        TurboBatchOptions::default().with_size_rounding(f64::NAN),
    ] {
        let reason = invalid_field(
            TikvClientConfig::default()
                .with_batch_policy(BatchPolicy::Custom(bad))
                .validate(),
            "tikv_client.batch_policy",
        );
        assert!(reason.contains("[0, 1]"), "{reason}");
    }
}

#[test]
fn validate_copr_cache() {
    for (cache, field) in [
        (
            CoprocessorCache::default().with_capacity_mb(-1.0),
            "tikv_client.copr_cache.capacity_mb",
        ),
        (
            CoprocessorCache::default().with_admission_max_result_mb(f64::INFINITY),
            "tikv_client.copr_cache.admission_max_result_mb",
        ),
    ] {
        invalid_field(
            TikvClientConfig::default()
                .with_copr_cache(cache)
                .validate(),
            field,
        );
    }
    // Zero capacity disables the cache and is valid.
    let cache = CoprocessorCache::default()
        .with_capacity_mb(0.0)
        .with_admission_max_ranges(1)
        .with_admission_min_process_time(Duration::ZERO);
    assert!(
        TikvClientConfig::default()
            .with_copr_cache(cache)
            .validate()
            .is_ok()
    );
}

#[test]
fn validate_ru_v2_weights() {
    invalid_field(
        Config::default()
            .with_tikv_client(
                TikvClientConfig::default().with_ru_v2(RuV2Weights::default().with_ru_scale(-2.0)),
            )
            .validate(),
        "tikv_client.ru_v2.ru_scale",
    );
}

#[test]
fn validate_pd_server_timeout() {
    let pd = PdClientConfig::default().with_pd_server_timeout(Duration::ZERO);
    invalid_field(pd.validate(), "pd_client.pd_server_timeout");
    invalid_field(
        Config::default().with_pd_client(pd).validate(),
        "pd_client.pd_server_timeout",
    );
}

#[test]
fn validate_txn_local_latches() {
    let latches = TxnLocalLatches::default().with_enabled(true);
    let reason = invalid_field(latches.validate(), "txn_local_latches.capacity");
    assert!(reason.contains("enabled"));
    invalid_field(
        Config::default()
            .with_txn_local_latches(latches.clone())
            .validate(),
        "txn_local_latches.capacity",
    );
    assert!(latches.with_capacity(1).validate().is_ok());
    // Capacity 0 is fine while disabled.
    assert!(TxnLocalLatches::default().validate().is_ok());
    assert_eq!(
        TxnLocalLatches::enabled_with_capacity(8),
        TxnLocalLatches::default()
            .with_enabled(true)
            .with_capacity(8)
    );
}

#[test]
fn validate_security_pairs() {
    invalid_field(
        Security::default()
            .with_cluster_ssl_ca("ca")
            .with_cluster_ssl_cert("cert")
            .validate(),
        "security.cluster_ssl_key",
    );
    invalid_field(
        Security::default()
            .with_cluster_ssl_ca("ca")
            .with_cluster_ssl_key("key")
            .validate(),
        "security.cluster_ssl_cert",
    );
    let no_ca = Security::default()
        .with_cluster_ssl_cert("cert")
        .with_cluster_ssl_key("key");
    invalid_field(no_ca.validate(), "security.cluster_ssl_ca");
    invalid_field(
        Config::default().with_security(no_ca).validate(),
        "security.cluster_ssl_ca",
    );
    // CA only (server authentication only) is fine.
    assert!(
        Security::default()
            .with_cluster_ssl_ca("ca")
            .validate()
            .is_ok()
    );
}

// ===== setters, enums =====

#[test]
fn config_setters_set_their_field() {
    let c = Config::default()
        .with_committer_concurrency(1)
        .with_max_txn_ttl(Duration::from_secs(2))
        .with_pessimistic_txn(PessimisticTxn::default().with_max_retry_count(3))
        .with_stores_refresh_interval(Duration::from_secs(4))
        .with_open_tracing_enable(true)
        .with_path("tikv://a")
        .with_enable_forwarding(true)
        .with_enable_async_commit(true)
        .with_enable_1pc(true)
        .with_regions_refresh_interval(Some(Duration::from_secs(5)))
        .with_enable_preload(true)
        .with_enable_async_batch_get(true)
        .with_zone_label("z")
        .with_txn_commit_batch_size(6);
    assert_eq!(c.committer_concurrency, 1);
    assert_eq!(c.max_txn_ttl, Duration::from_secs(2));
    assert_eq!(c.pessimistic_txn.max_retry_count, 3);
    assert_eq!(c.stores_refresh_interval, Duration::from_secs(4));
    assert!(c.open_tracing_enable);
    assert_eq!(c.path, "tikv://a");
    assert!(c.enable_forwarding && c.enable_async_commit && c.enable_1pc);
    assert_eq!(c.regions_refresh_interval, Some(Duration::from_secs(5)));
    assert!(c.enable_preload && c.enable_async_batch_get);
    assert_eq!(c.zone_label, "z");
    assert_eq!(c.txn_commit_batch_size, 6);
    assert!(c.validate().is_ok());
    assert_ne!(c, Config::default());

    let t = TikvClientConfig::default()
        .with_grpc_shared_buffer_pool(true)
        .with_async_commit(
            AsyncCommit::default()
                .with_keys_limit(1)
                .with_total_key_size_limit(2)
                .with_safe_window(Duration::from_secs(3))
                .with_allowed_clock_drift(Duration::from_secs(4)),
        )
        .with_max_batch_size(0)
        .with_overload_threshold(7)
        .with_max_batch_wait_time(Duration::from_millis(8))
        .with_batch_wait_size(9)
        .with_enable_chunk_rpc(false)
        .with_ttl_refreshed_txn_size(10)
        .with_resolve_lock_lite_threshold(11);
    assert!(t.grpc_shared_buffer_pool);
    assert_eq!(t.async_commit.keys_limit, 1);
    assert_eq!(t.async_commit.total_key_size_limit, 2);
    assert_eq!(t.async_commit.safe_window, Duration::from_secs(3));
    assert_eq!(t.async_commit.allowed_clock_drift, Duration::from_secs(4));
    assert_eq!(t.max_batch_size, 0);
    assert_eq!(t.overload_threshold, 7);
    assert_eq!(t.max_batch_wait_time, Duration::from_millis(8));
    assert_eq!(t.batch_wait_size, 9);
    assert!(!t.enable_chunk_rpc);
    assert_eq!(t.ttl_refreshed_txn_size, 10);
    assert_eq!(t.resolve_lock_lite_threshold, 11);
    assert!(t.validate().is_ok());
}

#[test]
fn batch_window_needs_a_hold_bound() {
    // Off, a zero hold is meaningless but harmless.
    let off = TikvClientConfig::default().with_batch_window_max_hold(Duration::ZERO);
    assert!(off.validate().is_ok());
    let on = TikvClientConfig::default()
        .with_batch_window(1)
        .with_batch_window_max_hold(Duration::from_millis(2));
    assert_eq!(on.batch_window, 1);
    assert_eq!(on.batch_window_max_hold, Duration::from_millis(2));
    assert!(on.validate().is_ok());
    invalid_field(
        on.with_batch_window_max_hold(Duration::ZERO).validate(),
        "tikv_client.batch_window_max_hold",
    );
}

#[test]
fn batch_policy_names_and_presets() {
    for (name, policy) in [
        ("basic", BatchPolicy::Basic),
        ("standard", BatchPolicy::Standard),
        ("positive", BatchPolicy::Positive),
    ] {
        assert_eq!(name.parse::<BatchPolicy>().ok(), Some(policy));
        assert_eq!(policy.to_string(), name);
    }
    invalid_field(
        "custom".parse::<BatchPolicy>().map(drop),
        "tikv_client.batch_policy",
    );
    assert_eq!(
        BatchPolicy::Basic.turbo_options(),
        TurboBatchOptions::default()
    );
    let standard = BatchPolicy::Standard.turbo_options();
    assert_eq!(standard.strategy, TurboBatchStrategy::TimeBased);
    assert_eq!(standard.wait, Duration::from_micros(100));
    assert_eq!(standard.max_arrival_factor, 5);
    assert_eq!(
        (
            standard.smoothing,
            standard.threshold,
            standard.size_rounding
        ),
        (0.2, 0.8, 0.8)
    );
    let positive = BatchPolicy::Positive.turbo_options();
    assert_eq!(positive.strategy, TurboBatchStrategy::Always);
    assert_eq!(positive.wait, Duration::from_micros(100));
    let custom = TurboBatchOptions::default().with_strategy(TurboBatchStrategy::ProbBased);
    assert_eq!(BatchPolicy::Custom(custom).turbo_options(), custom);
    assert_eq!(BatchPolicy::Custom(custom).name(), "custom");
}

// ===== TLS =====

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tikv-config-{tag}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a CA certificate, a client certificate signed by it and the client key.
fn write_pki(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &issuer)
        .expect("client cert");

    (
        dir.write("ca.pem", &ca_cert.pem()),
        dir.write("cert.pem", &client_cert.pem()),
        dir.write("key.pem", &client_key.serialize_pem()),
    )
}

// client-go: T-CONFIG-016 TestTLSConfig
#[tokio::test]
async fn tls_config_from_pem_files() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = write_pki(&dir);
    let security = Security::default()
        .with_cluster_ssl_ca(&ca)
        .with_cluster_ssl_cert(&cert)
        .with_cluster_ssl_key(&key);

    let tls = security.to_tls_config().await.expect("tls config builds");
    let tls = tls.expect("TLS is on when a CA is set");
    // tonic accepts it for a channel (it parses the CA and identity here).
    tonic::transport::Endpoint::from_static("https://localhost:20160")
        .tls_config(tls)
        .expect("endpoint takes the tls config");

    // CA only: server authentication without a client identity.
    let tls = Security::default()
        .with_cluster_ssl_ca(&ca)
        .to_tls_config()
        .await
        .expect("ca-only config builds");
    assert!(tls.is_some());

    drop(dir);
    assert!(!ca.exists());
}

#[tokio::test]
async fn tls_config_off_without_ca() {
    let tls = Security::default().to_tls_config().await.expect("no tls");
    assert!(tls.is_none());
}

#[tokio::test]
async fn tls_config_errors_name_the_field() {
    let dir = TempDir::new("tls-err");
    let (ca, cert, key) = write_pki(&dir);
    let missing = dir.0.join("missing.pem");
    let garbage = dir.write("garbage.pem", "not a pem file\n");

    async fn reason(security: Security, field: &str) -> String {
        invalid_field(security.to_tls_config().await.map(drop), field)
    }

    // Missing files.
    let r = reason(
        Security::new(&missing, &cert, &key, vec![]),
        "security.cluster_ssl_ca",
    )
    .await;
    assert!(
        r.contains("could not read") && r.contains("missing.pem"),
        "{r}"
    );
    let r = reason(
        Security::new(&ca, &missing, &key, vec![]),
        "security.cluster_ssl_cert",
    )
    .await;
    assert!(r.contains("could not read"), "{r}");
    let r = reason(
        Security::new(&ca, &cert, &missing, vec![]),
        "security.cluster_ssl_key",
    )
    .await;
    assert!(r.contains("could not read"), "{r}");

    // Files without the expected PEM content.
    let r = reason(
        Security::new(&garbage, &cert, &key, vec![]),
        "security.cluster_ssl_ca",
    )
    .await;
    assert!(r.contains("no PEM certificate"), "{r}");
    let r = reason(
        Security::new(&ca, &key, &key, vec![]),
        "security.cluster_ssl_cert",
    )
    .await;
    assert!(r.contains("no PEM certificate"), "{r}");
    let r = reason(
        Security::new(&ca, &cert, &cert, vec![]),
        "security.cluster_ssl_key",
    )
    .await;
    assert!(r.contains("no PEM private key"), "{r}");
    let broken = dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let r = reason(
        Security::new(&broken, &cert, &key, vec![]),
        "security.cluster_ssl_ca",
    )
    .await;
    assert!(r.contains("malformed"), "{r}");

    // An I/O error keeps its source.
    let err = Security::default()
        .with_cluster_ssl_ca(&missing)
        .to_tls_config()
        .await
        .expect_err("missing ca");
    assert!(std::error::Error::source(&err).is_some());

    // Path combinations are checked before any file is read.
    reason(
        Security::default()
            .with_cluster_ssl_ca(&ca)
            .with_cluster_ssl_cert(&cert),
        "security.cluster_ssl_key",
    )
    .await;
}

#[test]
fn security_new_and_setters() {
    let s = Security::new("a", "b", "c", vec!["tikv".into()]);
    assert_eq!(s.cluster_ssl_ca.as_deref(), Some(std::path::Path::new("a")));
    assert_eq!(
        s.cluster_ssl_cert.as_deref(),
        Some(std::path::Path::new("b"))
    );
    assert_eq!(
        s.cluster_ssl_key.as_deref(),
        Some(std::path::Path::new("c"))
    );
    assert_eq!(
        Security::default()
            .with_cluster_ssl_ca("a")
            .with_cluster_ssl_cert("b")
            .with_cluster_ssl_key("c")
            .with_cluster_verify_cn(vec!["tikv".into()]),
        s
    );
    assert!(s.is_tls_enabled());
}

#[test]
fn config_types_are_send_sync_and_tls_future_is_send() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Config>();
    send_sync::<PathError>();
    let security = Security::default();
    send(&security.to_tls_config());
}
