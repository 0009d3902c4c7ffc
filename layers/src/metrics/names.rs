//! Every metric name of the client, in one place.
//!
//! The client emits metrics only through the [`metrics`] facade: it never
//! installs a recorder and never depends on an exporter. Install a recorder (for example
//! `metrics-exporter-prometheus`) **before the first request**, then call
//! [`describe_metrics`] once so the exporter knows each metric's type, unit and help text.
//! Handles are resolved lazily and cached by the layers, so a recorder installed after the
//! first request may miss the series cached before it.
//!
//! Names mirror client-go's `metrics/metrics.go` (namespace `tikv`, subsystem `client_go`)
//! with the prefix `tikv_client_` instead of `tikv_client_go_`, so dashboards carry over
//! with one rename. Where a client-go name breaks Prometheus conventions the name is
//! adjusted and the table says so: counters end in `_total` (client-go's `_counter` and
//! `_count` suffixes become `_total`), durations in `_seconds`, sizes in `_bytes`, and
//! client-go's summaries are histograms here. Label keys are client-go's (`type`, `store`,
//! `result`, ...); [`labels`] holds the keys and the label values the client uses.
//!
//! Labels stay low-cardinality and bounded: command type, store id or address, error or
//! result kind. Never a region id, a key, or a timestamp.
//!
//! Histogram buckets belong to the exporter. Recommended: exponential from 0.5 ms with
//! factor 2 for `_seconds` histograms (client-go's `ExponentialBuckets(0.0005, 2, 29)`),
//! powers of two up to 1024 for batch sizes, `1, 2, 3, 4, 8, ..., 256` for
//! [`REQUEST_RETRY_TIMES`].
//!
//! [`ALL`] lists every metric with its type and unit; the module tests check that the
//! table below, [`ALL`] and [`describe_metrics`] agree.
//!
//! # The metrics
//!
//! **Request path (layers)**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`CMD_SECONDS`] `tikv_client_cmd_seconds` | histogram | seconds | `type`, `result` | per command, like `tikv_client_go_txn_cmd_duration_seconds` (`TiKVTxnCmdHistogram`) per operation |
//! | [`CMD_TOTAL`] `tikv_client_cmd_total` | counter | count | `type`, `result` | none (this client's own) |
//! | [`REQUEST_SECONDS`] `tikv_client_request_seconds` | histogram | seconds | `type`, `store`, `stale_read`, `scope` | `tikv_client_go_request_seconds` (`TiKVSendReqHistogram`) |
//! | [`SOURCE_REQUEST_SECONDS`] `tikv_client_source_request_seconds` | histogram | seconds | `type`, `store`, `stale_read`, `scope`, `source` | `tikv_client_go_source_request_seconds` (summary) (`TiKVSendReqBySourceSummary`) |
//! | [`RPC_NET_LATENCY_SECONDS`] `tikv_client_rpc_net_latency_seconds` | histogram | seconds | `store`, `scope` | `tikv_client_go_rpc_net_latency_seconds` (`TiKVRPCNetLatencyHistogram`) |
//! | [`REQUEST_RETRY_TIMES`] `tikv_client_request_retry_times` | histogram | count | — | `tikv_client_go_request_retry_times` (`TiKVRequestRetryTimesHistogram`) |
//! | [`REGION_ERR_TOTAL`] `tikv_client_region_err_total` | counter | count | `type`, `store` | `tikv_client_go_region_err_total` (`TiKVRegionErrorCounter`) |
//! | [`RPC_ERR_TOTAL`] `tikv_client_rpc_err_total` | counter | count | `type`, `store` | `tikv_client_go_rpc_err_total` (`TiKVRPCErrorCounter`) |
//! | [`STALE_READ_TOTAL`] `tikv_client_stale_read_total` | counter | count | `result` | `tikv_client_go_stale_read_counter` (`TiKVStaleReadCounter`) |
//! | [`STALE_READ_REQ_TOTAL`] `tikv_client_stale_read_req_total` | counter | count | `type` | `tikv_client_go_stale_read_req_counter` (`TiKVStaleReadReqCounter`) |
//! | [`STALE_READ_BYTES_TOTAL`] `tikv_client_stale_read_bytes_total` | counter | bytes | `result`, `direction` | `tikv_client_go_stale_read_bytes` (`TiKVStaleReadBytes`) |
//! | [`READ_REQUEST_BYTES`] `tikv_client_read_request_bytes` | histogram | bytes | `type`, `result` | `tikv_client_go_read_request_bytes` (summary) (`TiKVReadRequestBytes`) |
//! | [`REPLICA_SELECTOR_FAILURE_TOTAL`] `tikv_client_replica_selector_failure_total` | counter | count | `type` | `tikv_client_go_replica_selector_failure_counter` (`TiKVReplicaSelectorFailureCounter`) |
//! | [`FORWARD_REQUEST_TOTAL`] `tikv_client_forward_request_total` | counter | count | `from_store`, `to_store`, `type`, `result` | `tikv_client_go_forward_request_counter` (`TiKVForwardRequestCounter`) |
//! | [`STORE_LIMIT_TOKEN_ERROR_TOTAL`] `tikv_client_get_store_limit_token_error_total` | counter | count | `address`, `store` | `tikv_client_go_get_store_limit_token_error` (`TiKVStoreLimitErrorCounter`) |
//! | [`ASYNC_SEND_REQ_TOTAL`] `tikv_client_async_send_req_total` | counter | count | `result` | `tikv_client_go_async_send_req_total` (`TiKVAsyncSendReqCounter`) |
//! | [`PREFER_LEADER_FLOWS`] `tikv_client_prefer_leader_flows` | gauge | count | `type`, `store` | `tikv_client_go_prefer_leader_flows_gauge` (`TiKVPreferLeaderFlowsGauge`) |
//! | [`HEALTH_FEEDBACK_OPS_TOTAL`] `tikv_client_health_feedback_ops_total` | counter | count | `scope`, `type` | `tikv_client_go_health_feedback_ops_counter` (`TiKVHealthFeedbackOpsCounter`) |
//! | [`STORE_SLOW_SCORE`] `tikv_client_store_slow_score` | gauge | — | `store` | `tikv_client_go_store_slow_score` (`TiKVStoreSlowScoreGauge`) |
//! | [`FEEDBACK_SLOW_SCORE`] `tikv_client_feedback_slow_score` | gauge | — | `store` | `tikv_client_go_feedback_slow_score` (`TiKVFeedbackSlowScoreGauge`) |
//! | [`STORE_LIVENESS_STATE`] `tikv_client_store_liveness_state` | gauge | — | `store` | `tikv_client_go_store_liveness_state` (`TiKVStoreLivenessGauge`) |
//! | [`PANIC_TOTAL`] `tikv_client_panic_total` | counter | count | `type` | `tikv_client_go_panic_total` (`TiKVPanicCounter`) |
//!
//! **Backoff**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`BACKOFF_SECONDS`] `tikv_client_backoff_seconds` | histogram | seconds | `type` | `tikv_client_go_backoff_seconds` (`TiKVBackoffHistogram`) |
//! | [`TXN_COMMIT_BACKOFF_SECONDS`] `tikv_client_txn_commit_backoff_seconds` | histogram | seconds | — | `tikv_client_go_txn_commit_backoff_seconds` (`TiKVTxnCommitBackoffSeconds`) |
//! | [`TXN_COMMIT_BACKOFF_COUNT`] `tikv_client_txn_commit_backoff_count` | histogram | count | — | `tikv_client_go_txn_commit_backoff_count` (`TiKVTxnCommitBackoffCount`) |
//!
//! **Region cache and stores**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`REGION_CACHE_OPERATIONS_TOTAL`] `tikv_client_region_cache_operations_total` | counter | count | `type`, `result` | `tikv_client_go_region_cache_operations_total` (`TiKVRegionCacheCounter`) |
//! | [`LOAD_REGION_TOTAL`] `tikv_client_load_region_total` | counter | count | `type`, `reason` | `tikv_client_go_load_region_total` (`TiKVLoadRegionCounter`) |
//! | [`LOAD_REGION_CACHE_SECONDS`] `tikv_client_load_region_cache_seconds` | histogram | seconds | `type` | `tikv_client_go_load_region_cache_seconds` (`TiKVLoadRegionCacheHistogram`) |
//! | [`STALE_REGION_FROM_PD_TOTAL`] `tikv_client_stale_region_from_pd_total` | counter | count | — | `tikv_client_go_stale_region_from_pd` (`TiKVStaleRegionFromPDCounter`) |
//! | [`STALE_BUCKET_FROM_PD_TOTAL`] `tikv_client_stale_bucket_from_pd_total` | counter | count | — | `tikv_client_go_stale_bucket_from_pd` (`TiKVStaleBucketFromPDCounter`) |
//! | [`BUCKET_CLAMPED_TOTAL`] `tikv_client_bucket_clamped_total` | counter | count | — | `tikv_client_go_bucket_clamped` (`TiKVBucketClampedCounter`) |
//! | [`KV_STATUS_API_SECONDS`] `tikv_client_kv_status_api_duration_seconds` | histogram | seconds | `store` | `tikv_client_go_kv_status_api_duration` (`TiKVStatusDuration`) |
//! | [`KV_STATUS_API_TOTAL`] `tikv_client_kv_status_api_total` | counter | count | `result` | `tikv_client_go_kv_status_api_count` (`TiKVStatusCounter`) |
//! | [`SAFE_TS_UPDATE_TOTAL`] `tikv_client_safets_update_total` | counter | count | `result`, `store` | `tikv_client_go_safets_update_counter` (`TiKVSafeTSUpdateCounter`) |
//! | [`MIN_SAFE_TS_GAP_SECONDS`] `tikv_client_min_safets_gap_seconds` | gauge | seconds | `store` | `tikv_client_go_min_safets_gap_seconds` (`TiKVMinSafeTSGapSeconds`) |
//!
//! **Transport**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`BATCH_REQUESTS`] `tikv_client_batch_requests` | histogram | count | `store` | `tikv_client_go_batch_requests` (`TiKVBatchRequests`) |
//! | [`BATCH_PENDING_REQUESTS`] `tikv_client_batch_pending_requests` | histogram | count | `store` | `tikv_client_go_batch_pending_requests` (`TiKVBatchPendingRequests`) |
//! | [`BATCH_WAIT_SECONDS`] `tikv_client_batch_wait_seconds` | histogram | seconds | `store` | `tikv_client_go_batch_request_stage_duration_seconds{stage="batch_wait"}` (`TiKVBatchRequestStageDuration`) |
//! | [`BATCH_MORE_REQUESTS`] `tikv_client_batch_more_requests` | histogram | count | `store` | `tikv_client_go_batch_more_requests_total` (summary) (`TiKVBatchMoreRequests`) |
//! | [`BATCH_BEST_SIZE`] `tikv_client_batch_best_size` | histogram | count | `store` | `tikv_client_go_batch_best_size` (summary) (`TiKVBatchBestSize`) |
//! | [`INFLIGHT_REQUESTS`] `tikv_client_batch_inflight_requests` | gauge | count | `store` | `tikv_client_go_batch_client_inflight` (approx.) |
//! | [`BATCH_RECONNECTS`] `tikv_client_batch_reconnects_total` | counter | count | `store` | `tikv_client_go_batch_client_reset` (count) (`TiKVBatchClientRecycle`) |
//! | [`NO_AVAILABLE_CONNECTION`] `tikv_client_batch_client_no_available_connection_total` | counter | count | — | `tikv_client_go_batch_client_no_available_connection_total` (`TiKVNoAvailableConnectionCounter`) |
//! | [`OUTDATED_RESPONSES`] `tikv_client_batch_stream_outdated_response_total` | counter | count | `store` | `tikv_client_go_batch_stream_outdated_response_count` (`TiKVBatchStreamOutdatedResponseCount`) |
//! | [`BATCH_WAIT_OVERLOAD`] `tikv_client_batch_wait_overload_total` | counter | count | — | `tikv_client_go_batch_wait_overload` (`TiKVBatchWaitOverLoad`) |
//! | [`BATCH_WINDOW_HOLDS`] `tikv_client_batch_window_holds_total` | counter | count | `store` | none (this client's own) |
//! | [`BATCH_OUTCOMES`] `tikv_client_batch_outcomes_total` | counter | count | `outcome` | `tikv_client_go_batch_request_stage_duration_seconds` (result label) (`TiKVBatchRequestStageDuration`) |
//! | [`IDLE_RECYCLES`] `tikv_client_batch_idle_recycles_total` | counter | count | — | `tikv_client_go_batch_client_reset` (`TiKVBatchClientRecycle`) |
//! | [`BATCH_REQUEST_STAGE_SECONDS`] `tikv_client_batch_request_stage_duration_seconds` | histogram | seconds | `store`, `stage`, `result` | `tikv_client_go_batch_request_stage_duration_seconds` (summary) (`TiKVBatchRequestStageDuration`) |
//! | [`BATCH_SEND_TAIL_LATENCY_SECONDS`] `tikv_client_batch_send_tail_latency_seconds` | histogram | seconds | `target` | `tikv_client_go_batch_send_tail_latency_seconds` (`TiKVBatchSendTailLatency`) |
//! | [`BATCH_SEND_LOOP_SECONDS`] `tikv_client_batch_send_loop_duration_seconds` | histogram | seconds | `target`, `step` | `tikv_client_go_batch_send_loop_duration_seconds` (summary) (`TiKVBatchSendLoopDuration`) |
//! | [`BATCH_RECV_LOOP_SECONDS`] `tikv_client_batch_stream_recv_loop_duration_seconds` | histogram | seconds | `target`, `conn`, `forward`, `step` | `tikv_client_go_batch_stream_recv_loop_duration_seconds` (summary) (`TiKVBatchStreamRecvLoopDuration`) |
//! | [`BATCH_RECV_TAIL_LATENCY_SECONDS`] `tikv_client_batch_stream_recv_tail_latency_seconds` | histogram | seconds | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_recv_tail_latency_seconds` (`TiKVBatchStreamRecvTailLatency`) |
//! | [`BATCH_TIKV_SEND_TAIL_LATENCY_SECONDS`] `tikv_client_batch_stream_tikv_send_tail_latency_seconds` | histogram | seconds | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_tikv_send_tail_latency_seconds` (`TiKVBatchStreamTiKVSendTailLatency`) |
//! | [`BATCH_CANCELED_ENTRY_TAIL_LATENCY_SECONDS`] `tikv_client_batch_stream_canceled_entry_tail_latency_seconds` | histogram | seconds | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_canceled_entry_tail_latency_seconds` (`TiKVBatchStreamCanceledEntryTailLatency`) |
//! | [`BATCH_STREAM_TRACKED_REQUESTS_TOTAL`] `tikv_client_batch_stream_tracked_request_total` | counter | count | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_tracked_request_count` (`TiKVBatchStreamTrackedRequestCount`) |
//! | [`BATCH_STREAM_RETIRED_REQUESTS_TOTAL`] `tikv_client_batch_stream_retired_request_total` | counter | count | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_retired_request_count` (`TiKVBatchStreamRetiredRequestCount`) |
//! | [`BATCH_STREAM_COMPLETED_RESPONSES_TOTAL`] `tikv_client_batch_stream_completed_response_total` | counter | count | `target`, `conn`, `forward` | `tikv_client_go_batch_stream_completed_response_count` (`TiKVBatchStreamCompletedResponseCount`) |
//! | [`BATCH_HEAD_ARRIVAL_INTERVAL_SECONDS`] `tikv_client_batch_head_arrival_interval_seconds` | histogram | seconds | `target` | `tikv_client_go_batch_head_arrival_interval_seconds` (summary) (`TiKVBatchHeadArrivalInterval`) |
//! | [`BATCH_CLIENT_UNAVAILABLE_SECONDS`] `tikv_client_batch_client_unavailable_seconds` | histogram | seconds | — | `tikv_client_go_batch_client_unavailable_seconds` (`TiKVBatchClientUnavailable`) |
//! | [`BATCH_CLIENT_WAIT_ESTABLISH_SECONDS`] `tikv_client_batch_client_wait_connection_establish_seconds` | histogram | seconds | — | `tikv_client_go_batch_client_wait_connection_establish` (`TiKVBatchClientWaitEstablish`) |
//! | [`BATCH_CLIENT_RESET_SECONDS`] `tikv_client_batch_client_reset_seconds` | histogram | seconds | — | `tikv_client_go_batch_client_reset` (`TiKVBatchClientRecycle`) |
//! | [`CONNECTION_TRANSIENT_FAILURE_TOTAL`] `tikv_client_connection_transient_failure_total` | counter | count | `address`, `store` | `tikv_client_go_connection_transient_failure_count` (`TiKVGRPCConnTransientFailureCounter`) |
//! | [`GRPC_CONNECTION_STATE`] `tikv_client_grpc_connection_state` | gauge | — | `connection_id`, `store_ip`, `grpc_state` | `tikv_client_go_grpc_connection_state` (`TiKVGrpcConnectionState`) |
//!
//! **PD, TSO and oracle**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`TS_FUTURE_WAIT_SECONDS`] `tikv_client_ts_future_wait_seconds` | histogram | seconds | — | `tikv_client_go_ts_future_wait_seconds` (`TiKVTSFutureWaitDuration`) |
//! | [`LOW_RESOLUTION_TSO_UPDATE_INTERVAL_SECONDS`] `tikv_client_low_resolution_tso_update_interval_seconds` | gauge | seconds | — | `tikv_client_go_low_resolution_tso_update_interval_seconds` (`TiKVLowResolutionTSOUpdateIntervalSecondsGauge`) |
//! | [`VALIDATE_READ_TS_FROM_PD_TOTAL`] `tikv_client_validate_read_ts_from_pd_total` | counter | count | — | `tikv_client_go_validate_read_ts_from_pd_count` (`TiKVValidateReadTSFromPDCount`) |
//! | [`LOAD_SAFEPOINT_TOTAL`] `tikv_client_load_safepoint_total` | counter | count | `type` | `tikv_client_go_load_safepoint_total` (`TiKVLoadTxnSafePointCounter`) |
//! | [`PD_CMD_SECONDS`] `tikv_client_pd_cmd_duration_seconds` | histogram | seconds | `type` | `pd_client_cmd_handle_cmds_duration_seconds` (PD client) |
//! | [`PD_CMD_FAILED_SECONDS`] `tikv_client_pd_cmd_failed_duration_seconds` | histogram | seconds | `type` | `pd_client_cmd_handle_failed_cmds_duration_seconds` (PD client) |
//! | [`PD_REQUEST_SECONDS`] `tikv_client_pd_request_duration_seconds` | histogram | seconds | `type` | `pd_client_request_handle_requests_duration_seconds` (PD client) |
//! | [`TSO_BATCH_SIZE`] `tikv_client_pd_tso_batch_size` | histogram | count | — | `pd_client_request_handle_tso_batch_size` (PD client) |
//!
//! **Transactions and raw KV**
//!
//! | constant and name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`TXN_CMD_SECONDS`] `tikv_client_txn_cmd_duration_seconds` | histogram | seconds | `type`, `scope` | `tikv_client_go_txn_cmd_duration_seconds` (`TiKVTxnCmdHistogram`) |
//! | [`RAWKV_CMD_SECONDS`] `tikv_client_rawkv_cmd_seconds` | histogram | seconds | `type` | `tikv_client_go_rawkv_cmd_seconds` (`TiKVRawkvCmdHistogram`) |
//! | [`RAWKV_KV_SIZE_BYTES`] `tikv_client_rawkv_kv_size_bytes` | histogram | bytes | `type` | `tikv_client_go_rawkv_kv_size_bytes` (`TiKVRawkvSizeHistogram`) |
//! | [`TXN_WRITE_KV_NUM`] `tikv_client_txn_write_kv_num` | histogram | count | `scope` | `tikv_client_go_txn_write_kv_num` (`TiKVTxnWriteKVCountHistogram`) |
//! | [`TXN_WRITE_SIZE_BYTES`] `tikv_client_txn_write_size_bytes` | histogram | bytes | `scope` | `tikv_client_go_txn_write_size_bytes` (`TiKVTxnWriteSizeHistogram`) |
//! | [`TXN_REGIONS_NUM`] `tikv_client_txn_regions_num` | histogram | count | `type`, `scope` | `tikv_client_go_txn_regions_num` (`TiKVTxnRegionsNumHistogram`) |
//! | [`LOCK_RESOLVER_ACTIONS_TOTAL`] `tikv_client_lock_resolver_actions_total` | counter | count | `type` | `tikv_client_go_lock_resolver_actions_total` (`TiKVLockResolverCounter`) |
//! | [`LOCK_RESOLVER_ASYNC_RUNNING_TASKS`] `tikv_client_lock_resolver_async_running_tasks` | gauge | count | `type` | `tikv_client_go_lock_resolver_async_running_tasks` (`TiKVLockResolverAsyncRunningTasks`) |
//! | [`LOCK_CLEANUP_TASK_TOTAL`] `tikv_client_lock_cleanup_task_total` | counter | count | `type` | `tikv_client_go_lock_cleanup_task_total` (`TiKVSecondaryLockCleanupFailureCounter`) |
//! | [`LOCAL_LATCH_WAIT_SECONDS`] `tikv_client_local_latch_wait_seconds` | histogram | seconds | — | `tikv_client_go_local_latch_wait_seconds` (`TiKVLocalLatchWaitTimeHistogram`) |
//! | [`TOKEN_WAIT_SECONDS`] `tikv_client_batch_executor_token_wait_duration_seconds` | histogram | seconds | — | `tikv_client_go_batch_executor_token_wait_duration` (ns) (`TiKVTokenWaitDuration`) |
//! | [`TXN_HEART_BEAT_SECONDS`] `tikv_client_txn_heart_beat_seconds` | histogram | seconds | `type` | `tikv_client_go_txn_heart_beat` (`TiKVTxnHeartBeatHistogram`) |
//! | [`TXN_TTL_MANAGER_SECONDS`] `tikv_client_txn_ttl_manager_seconds` | histogram | seconds | — | `tikv_client_go_txn_ttl_manager` (`TiKVTTLManagerHistogram`) |
//! | [`TTL_LIFETIME_REACH_TOTAL`] `tikv_client_ttl_lifetime_reach_total` | counter | count | — | `tikv_client_go_ttl_lifetime_reach_total` (`TiKVTTLLifeTimeReachCounter`) |
//! | [`COMMIT_TXN_TOTAL`] `tikv_client_commit_txn_total` | counter | count | `type` | `tikv_client_go_commit_txn_counter` (`TiKVTwoPCTxnCounter`) |
//! | [`ASYNC_COMMIT_TXN_TOTAL`] `tikv_client_async_commit_txn_total` | counter | count | `type` | `tikv_client_go_async_commit_txn_counter` (`TiKVAsyncCommitTxnCounter`) |
//! | [`ONE_PC_TXN_TOTAL`] `tikv_client_one_pc_txn_total` | counter | count | `type` | `tikv_client_go_one_pc_txn_counter` (`TiKVOnePCTxnCounter`) |
//! | [`PREWRITE_ASSERTION_TOTAL`] `tikv_client_prewrite_assertion_total` | counter | count | `type` | `tikv_client_go_prewrite_assertion_count` (`TiKVPrewriteAssertionUsageCounter`) |
//! | [`AGGRESSIVE_LOCKING_TOTAL`] `tikv_client_aggressive_locking_total` | counter | count | `type` | `tikv_client_go_aggressive_locking_count` (`TiKVAggressiveLockedKeysCounter`) |
//! | [`PIPELINED_FLUSH_LEN`] `tikv_client_pipelined_flush_len` | histogram | count | — | `tikv_client_go_pipelined_flush_len` (`TiKVPipelinedFlushLenHistogram`) |
//! | [`PIPELINED_FLUSH_SIZE_BYTES`] `tikv_client_pipelined_flush_size_bytes` | histogram | bytes | — | `tikv_client_go_pipelined_flush_size` (`TiKVPipelinedFlushSizeHistogram`) |
//! | [`PIPELINED_FLUSH_SECONDS`] `tikv_client_pipelined_flush_duration_seconds` | histogram | seconds | — | `tikv_client_go_pipelined_flush_duration` (`TiKVPipelinedFlushDuration`) |
//! | [`PIPELINED_FLUSH_THROTTLE_SECONDS`] `tikv_client_pipelined_flush_throttle_seconds` | histogram | seconds | — | `tikv_client_go_pipelined_flush_throttle_seconds` (`TiKVPipelinedFlushThrottleSecondsHistogram`) |
//! | [`TXN_WRITE_CONFLICT_TOTAL`] `tikv_client_txn_write_conflict_total` | counter | count | — | `tikv_client_go_txn_write_conflict_counter` (`TiKVTxnWriteConflictCounter`) |
//! | [`ASYNC_BATCH_GET_TOTAL`] `tikv_client_async_batch_get_total` | counter | count | `result` | `tikv_client_go_async_batch_get_total` (`TiKVAsyncBatchGetCounter`) |
//! | [`TXN_LAG_COMMIT_TS_WAIT_SECONDS`] `tikv_client_txn_lag_commit_ts_wait_seconds` | histogram | seconds | `result` | `tikv_client_go_txn_lag_commit_ts_wait_seconds` (`TiKVTxnLagCommitTSWaitHistogram`) |
//! | [`TXN_LAG_COMMIT_TS_ATTEMPT_COUNT`] `tikv_client_txn_lag_commit_ts_attempt_count` | histogram | count | `result` | `tikv_client_go_txn_lag_commit_ts_attempt_count` (`TiKVTxnLagCommitTSAttemptHistogram`) |
//! | [`RANGE_TASK_STATS`] `tikv_client_range_task_stats` | gauge | count | `type`, `result` | `tikv_client_go_range_task_stats` (`TiKVRangeTaskStats`) |
//! | [`RANGE_TASK_PUSH_SECONDS`] `tikv_client_range_task_push_duration_seconds` | histogram | seconds | `type` | `tikv_client_go_range_task_push_duration` (`TiKVRangeTaskPushDuration`) |
//! | [`GC_UNSAFE_DESTROY_RANGE_FAILURES_TOTAL`] `tikv_client_gc_unsafe_destroy_range_failures_total` | counter | count | `type` | `tikv_client_go_gc_unsafe_destroy_range_failures` (`TiKVUnsafeDestroyRangeFailuresCounterVec`) |
//! | [`SMALL_READ_SECONDS`] `tikv_client_sli_small_read_duration_seconds` | histogram | seconds | — | `tikv_sli_tikv_small_read_duration` (`TiKVSmallReadDuration`) |
//! | [`READ_THROUGHPUT`] `tikv_client_sli_read_throughput` | histogram | — | — | `tikv_sli_tikv_read_throughput` (`TiKVReadThroughput`) |

/// Label keys and the label values the client uses (client-go's `Lbl*` constants and the
/// values bound by `metrics/shortcuts.go`).
///
/// Use these instead of string literals so every label stays in one place.
#[doc(alias = "LblType")]
pub mod labels {
    use crate::backoff::BackoffKind;
    use crate::classify::ResponseClass;
    use crate::error::ErrorKind;

    // ----- keys -----

    /// The command, operation or reason (`LblType`).
    pub const TYPE: &str = "type";
    /// The outcome (`LblResult`).
    pub const RESULT: &str = "result";
    /// The store (`LblStore`).
    pub const STORE: &str = "store";
    /// The batch client's target address (`LblTarget`).
    pub const TARGET: &str = "target";
    /// The connection index in a pool (`LblConn`).
    pub const CONN: &str = "conn";
    /// The forwarded host of a batch stream (`LblForward`).
    pub const FORWARD: &str = "forward";
    /// A store address (`LblAddress`).
    pub const ADDRESS: &str = "address";
    /// The proxy store of a forwarded request (`LblFromStore`).
    pub const FROM_STORE: &str = "from_store";
    /// The target store of a forwarded request (`LblToStore`).
    pub const TO_STORE: &str = "to_store";
    /// Whether the request was a stale read (`LblStaleRead`), [`TRUE`] or [`FALSE`].
    pub const STALE_READ: &str = "stale_read";
    /// The request source (`LblSource`).
    pub const SOURCE: &str = "source";
    /// Whether the request is internal (`LblScope`): [`TRUE`]/[`FALSE`] on RPC metrics,
    /// [`INTERNAL`]/[`GENERAL`] on transaction metrics, as in client-go.
    pub const SCOPE: &str = "scope";
    /// Traffic direction (`LblDirection`), [`IN`] or [`OUT`].
    pub const DIRECTION: &str = "direction";
    /// Why something happened (`LblReason`).
    pub const REASON: &str = "reason";
    /// A stage of a batch request (`LblStage`).
    pub const STAGE: &str = "stage";
    /// A step of a batch loop.
    pub const STEP: &str = "step";
    /// How a batch request ended (this client's transport).
    pub const OUTCOME: &str = "outcome";
    /// A gRPC connection's id.
    pub const CONNECTION_ID: &str = "connection_id";
    /// A store's IP address.
    pub const STORE_IP: &str = "store_ip";
    /// A gRPC connectivity state.
    pub const GRPC_STATE: &str = "grpc_state";

    // ----- common values -----

    /// Success.
    pub const OK: &str = "ok";
    /// Failure (most `result` labels).
    pub const ERR: &str = "err";
    /// Failure (the forwarding counter and safe-point loads).
    pub const FAIL: &str = "fail";
    /// A 1PC commit that fell back to 2PC.
    pub const FALLBACK: &str = "fallback";
    /// `true` (for boolean labels such as [`STALE_READ`]).
    pub const TRUE: &str = "true";
    /// `false` (for boolean labels such as [`STALE_READ`]).
    pub const FALSE: &str = "false";
    /// Internal requests (`LblInternal`).
    pub const INTERNAL: &str = "internal";
    /// User requests (`LblGeneral`).
    pub const GENERAL: &str = "general";
    /// A stale read served by the first replica tried.
    pub const HIT: &str = "hit";
    /// A stale read that needed a retry.
    pub const MISS: &str = "miss";
    /// A replica in the client's zone.
    pub const LOCAL: &str = "local";
    /// A replica in another zone.
    pub const CROSS_ZONE: &str = "cross-zone";
    /// Bytes received.
    pub const IN: &str = "in";
    /// Bytes sent.
    pub const OUT: &str = "out";
    /// Served by the leader.
    pub const LEADER: &str = "leader";
    /// Served by a follower.
    pub const FOLLOWER: &str = "follower";

    // ----- result classes of the `metrics` layer and the send loop -----

    /// A response that carries a region error.
    pub const REGION_ERROR: &str = "region_error";
    /// A response that carries a key error.
    pub const KEY_ERROR: &str = "key_error";
    /// A request whose future was dropped before it finished.
    pub const CANCELED: &str = "canceled";
    /// An RPC failure (asynchronous send outcome).
    pub const RPC_ERROR: &str = "rpc_error";
    /// A send failure (asynchronous send outcome).
    pub const SEND_ERROR: &str = "send_error";
    /// A lock met by an asynchronous batch get.
    pub const LOCK_ERROR: &str = "lock_error";
    /// Any other failure (asynchronous outcomes).
    pub const OTHER_ERROR: &str = "other_error";

    // ----- RPC error types (`rpc_err_total{type}`) -----

    /// The caller canceled the request.
    pub const CONTEXT_CANCELED: &str = "context-canceled";
    /// The client is shutting down.
    pub const SHUTTING_DOWN: &str = "shutting-down";
    /// gRPC reported `Canceled` because the caller canceled.
    pub const GRPC_CANCELED: &str = "grpc-canceled";
    /// A failure without a message.
    pub const UNKNOWN: &str = "unknown";

    // ----- replica selector failures (`replica_selector_failure_total{type}`) -----

    /// The selector's region became invalid.
    pub const SELECTOR_INVALID: &str = "invalid";
    /// Every replica was tried.
    pub const SELECTOR_EXHAUSTED: &str = "exhausted";
    /// The chosen store's epoch is stale.
    pub const SELECTOR_STALE_STORE: &str = "stale_store";

    // ----- region cache operations (`region_cache_operations_total{type}`) -----

    /// A region dropped from the cache.
    pub const OP_INVALIDATE_REGION_FROM_CACHE: &str = "invalidate_region_from_cache";
    /// A send failure reported to the cache.
    pub const OP_SEND_FAIL: &str = "send_fail";
    /// A region loaded by id.
    pub const OP_GET_REGION_BY_ID: &str = "get_region_by_id";
    /// A region loaded after a cache miss.
    pub const OP_GET_REGION_WHEN_MISS: &str = "get_region_when_miss";
    /// Regions loaded by a scan.
    pub const OP_SCAN_REGIONS: &str = "scan_regions";
    /// Regions loaded by a batch scan.
    pub const OP_BATCH_SCAN_REGIONS: &str = "batch_scan_regions";
    /// A store loaded from PD.
    pub const OP_GET_STORE: &str = "get_store";
    /// Every region of a store invalidated.
    pub const OP_INVALIDATE_STORE_REGIONS: &str = "invalidate_store_regions";

    // ----- transaction operations (`txn_cmd_duration_seconds{type}`) -----

    /// Commit (`LblCommit`).
    pub const TXN_COMMIT: &str = "commit";
    /// Rollback (`LblRollback`).
    pub const TXN_ROLLBACK: &str = "rollback";
    /// Snapshot batch get (`LblBatchGet`).
    pub const TXN_BATCH_GET: &str = "batch_get";
    /// Snapshot get (`LblGet`).
    pub const TXN_GET: &str = "get";
    /// Pessimistic lock keys (`LblLockKeys`).
    pub const TXN_LOCK_KEYS: &str = "lock_keys";
    /// Shared pessimistic lock keys (`LblSharedLockKeys`).
    pub const TXN_SHARED_LOCK_KEYS: &str = "shared_lock_keys";

    /// The `type` label client-go gives a backoff kind's sleeps in
    /// [`BACKOFF_SECONDS`](super::BACKOFF_SECONDS) (the shortcuts of
    /// `TiKVBackoffHistogram`).
    ///
    /// Several kinds share a label, as in client-go: both RPC kinds are `tikvRPC`, both
    /// server-busy kinds are `serverBusy`, `txnLockFast` is `tikvLockFast`, and the kinds
    /// client-go files under its empty shortcut (`txnNotFound`, `maxTsNotSynced`,
    /// `commitTSLag`, `regionNotInitialized`) have the empty label.
    pub fn backoff_type(kind: BackoffKind) -> &'static str {
        use BackoffKind as K;
        match kind {
            K::TiKVRpc | K::TiFlashRpc => "tikvRPC",
            K::TxnLock => "txnLock",
            K::TxnLockFast => "tikvLockFast",
            K::PdRpc => "pdRPC",
            K::RegionMiss => "regionMiss",
            K::RegionScheduling => "regionScheduling",
            K::TiKVServerBusy | K::TiFlashServerBusy => "serverBusy",
            K::TiKVDiskFull => "tikvDiskFull",
            K::RegionRecoveryInProgress => "regionRecoveryInProgress",
            K::StaleCommand => "staleCommand",
            K::IsWitness => "isWitness",
            K::TxnNotFound | K::MaxTsNotSynced | K::CommitTsLag | K::RegionNotInitialized => "",
        }
    }

    /// The `type` label of a backoff kind given by name: the predefined kind's
    /// [`backoff_type`] label, or `None` for a custom [`BackoffConfig`] name (whose own
    /// name is then the label).
    ///
    /// [`BackoffConfig`]: crate::backoff::BackoffConfig
    pub fn backoff_type_of(name: &str) -> Option<&'static str> {
        BackoffKind::ALL
            .iter()
            .find(|k| k.name() == name)
            .map(|k| backoff_type(*k))
    }

    macro_rules! error_kinds {
        ($($kind:ident => $label:literal,)*) => {
            /// A short snake_case name for an [`ErrorKind`], used as the `error.kind` span
            /// field and, prefixed with `err_`, as a result label.
            pub fn error_kind(kind: ErrorKind) -> &'static str {
                match kind {
                    $(ErrorKind::$kind => $label,)*
                }
            }

            /// The `result` label of a request that failed with an error of this kind:
            /// `err_` followed by [`error_kind`] (for example `err_timeout`).
            pub fn error_result(kind: ErrorKind) -> &'static str {
                match kind {
                    $(ErrorKind::$kind => concat!("err_", $label),)*
                }
            }

            /// Every error kind, in declaration order (the `metrics` layer's handle cache
            /// is indexed by position in this list).
            pub(crate) const ERROR_KINDS: &[ErrorKind] = &[$(ErrorKind::$kind,)*];
        };
    }

    error_kinds! {
        Region => "region",
        Key => "key",
        Grpc => "grpc",
        Transport => "transport",
        Timeout => "timeout",
        BackoffExhausted => "backoff_exhausted",
        Undetermined => "undetermined",
        Pd => "pd",
        Config => "config",
        InvalidArgument => "invalid_argument",
        NotFound => "not_found",
        Canceled => "canceled",
        Txn => "txn",
        Protocol => "protocol",
        Internal => "internal",
    }

    /// The `result` label of a response: [`OK`], [`REGION_ERROR`] or [`KEY_ERROR`] (the
    /// region error's own kind goes to [`REGION_ERR_TOTAL`](super::REGION_ERR_TOTAL)).
    pub fn response_result(class: ResponseClass) -> &'static str {
        match class {
            ResponseClass::Ok => OK,
            ResponseClass::RegionError(_) => REGION_ERROR,
            ResponseClass::KeyError => KEY_ERROR,
        }
    }

    /// [`TRUE`] or [`FALSE`].
    pub fn from_bool(b: bool) -> &'static str {
        if b { TRUE } else { FALSE }
    }
}

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// One metric of the client: name, type, unit and help text.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MetricInfo {
    /// The full metric name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// The unit, when the value has one.
    pub unit: Option<Unit>,
    /// A one-line help text.
    pub help: &'static str,
}

/// Declares every name constant, [`ALL`] and the test-only identifier list from one table.
macro_rules! metrics_table {
    ($(
        $(#[$meta:meta])*
        $ident:ident = ($name:literal, $kind:ident, $unit:expr, $help:literal);
    )*) => {
        $( $(#[$meta])* pub const $ident: &str = $name; )*

        /// Every metric of the client, in the order of the module's table.
        pub const ALL: &[MetricInfo] = &[
            $( MetricInfo { name: $name, kind: MetricType::$kind, unit: $unit, help: $help }, )*
        ];

        /// `(constant name, metric name)` for every entry, for the table checks.
        #[cfg(test)]
        pub(crate) const IDENTS: &[(&str, &str)] = &[$( (stringify!($ident), $name), )*];
    };
}

/// Registers the type, unit and help text of every metric in [`ALL`] with the installed
/// recorder (`describe_counter!`, `describe_gauge!`, `describe_histogram!`).
///
/// Call it once after installing a recorder; calling it again is harmless.
pub fn describe_metrics() {
    for m in ALL {
        match (m.kind, m.unit) {
            (MetricType::Counter, Some(unit)) => describe_counter!(m.name, unit, m.help),
            (MetricType::Counter, None) => describe_counter!(m.name, m.help),
            (MetricType::Gauge, Some(unit)) => describe_gauge!(m.name, unit, m.help),
            (MetricType::Gauge, None) => describe_gauge!(m.name, m.help),
            (MetricType::Histogram, Some(unit)) => describe_histogram!(m.name, unit, m.help),
            (MetricType::Histogram, None) => describe_histogram!(m.name, m.help),
        }
    }
}

metrics_table! {

    // ----- Request path (layers) -----

    /// Latency of one logical request, as the `metrics` layer sees it (outside `shard`), by
    /// command type and result class. The request-level cousin of client-go's per-operation
    /// histograms.
    ///
    /// Type histogram, unit seconds, labels `type`, `result`; client-go: per command, like
    /// `tikv_client_go_txn_cmd_duration_seconds` (`TiKVTxnCmdHistogram`) per operation.
    #[doc(alias = "TiKVTxnCmdHistogram")]
    CMD_SECONDS = (
        "tikv_client_cmd_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of one logical request through the pipeline, by command and result"
    );
    /// Logical requests finished, by command type and result class (see [`labels`] for the
    /// result values, including `canceled` for dropped futures).
    ///
    /// Type counter, unit count, labels `type`, `result`; client-go: none (this client's own).
    CMD_TOTAL = (
        "tikv_client_cmd_total",
        Counter,
        Some(Unit::Count),
        "logical requests finished, by command and result"
    );
    /// Latency of one RPC attempt, measured at the transport.
    ///
    /// Type histogram, unit seconds, labels `type`, `store`, `stale_read`, `scope`; client-go:
    /// `tikv_client_go_request_seconds` (`TiKVSendReqHistogram`).
    #[doc(alias = "TiKVSendReqHistogram")]
    REQUEST_SECONDS = (
        "tikv_client_request_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of one RPC attempt at the transport"
    );
    /// Latency of one RPC attempt with the request source as an extra label (a summary in
    /// client-go).
    ///
    /// Type histogram, unit seconds, labels `type`, `store`, `stale_read`, `scope`, `source`;
    /// client-go: `tikv_client_go_source_request_seconds` (summary)
    /// (`TiKVSendReqBySourceSummary`).
    #[doc(alias = "TiKVSendReqBySourceSummary")]
    SOURCE_REQUEST_SECONDS = (
        "tikv_client_source_request_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of one RPC attempt by request source"
    );
    /// RPC time not accounted for by TiKV's own processing time: the network and queue share.
    ///
    /// Type histogram, unit seconds, labels `store`, `scope`; client-go:
    /// `tikv_client_go_rpc_net_latency_seconds` (`TiKVRPCNetLatencyHistogram`).
    #[doc(alias = "TiKVRPCNetLatencyHistogram")]
    RPC_NET_LATENCY_SECONDS = (
        "tikv_client_rpc_net_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "RPC time not spent inside TiKV (network and queues)"
    );
    /// How many times the send loop retried one region request; observed only when it retried
    /// at least once.
    ///
    /// Type histogram, unit count, labels none; client-go: `tikv_client_go_request_retry_times`
    /// (`TiKVRequestRetryTimesHistogram`).
    #[doc(alias = "TiKVRequestRetryTimesHistogram")]
    REQUEST_RETRY_TIMES = (
        "tikv_client_request_retry_times",
        Histogram,
        Some(Unit::Count),
        "retries of one region request (observed only when above 0)"
    );
    /// Region errors met by the send loop; `type` is
    /// [`RegionErrorKind::label`](crate::classify::RegionErrorKind::label).
    ///
    /// Type counter, unit count, labels `type`, `store`; client-go:
    /// `tikv_client_go_region_err_total` (`TiKVRegionErrorCounter`).
    #[doc(alias = "TiKVRegionErrorCounter")]
    REGION_ERR_TOTAL = (
        "tikv_client_region_err_total",
        Counter,
        Some(Unit::Count),
        "region errors, by kind label and store"
    );
    /// RPC failures met by the send loop (`onSendFail`), by reason (for example `context-
    /// canceled`, `grpc-canceled`, a read-timeout label, the error text) and store.
    ///
    /// Type counter, unit count, labels `type`, `store`; client-go:
    /// `tikv_client_go_rpc_err_total` (`TiKVRPCErrorCounter`).
    #[doc(alias = "TiKVRPCErrorCounter")]
    RPC_ERR_TOTAL = (
        "tikv_client_rpc_err_total",
        Counter,
        Some(Unit::Count),
        "RPC (send) failures, by reason and store"
    );
    /// Stale reads answered by the first replica tried (`hit`) or only after a retry (`miss`).
    ///
    /// Type counter, unit count, labels `result`; client-go:
    /// `tikv_client_go_stale_read_counter` (`TiKVStaleReadCounter`).
    #[doc(alias = "TiKVStaleReadCounter")]
    STALE_READ_TOTAL = (
        "tikv_client_stale_read_total",
        Counter,
        Some(Unit::Count),
        "stale reads served at the first try (hit) or not (miss)"
    );
    /// Stale-read requests sent, by `local` or `cross-zone` target.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_stale_read_req_counter` (`TiKVStaleReadReqCounter`).
    #[doc(alias = "TiKVStaleReadReqCounter")]
    STALE_READ_REQ_TOTAL = (
        "tikv_client_stale_read_req_total",
        Counter,
        Some(Unit::Count),
        "stale-read requests by zone locality"
    );
    /// Stale-read traffic in bytes: `result` is `local` or `cross-zone`, `direction` is `in` or
    /// `out`.
    ///
    /// Type counter, unit bytes, labels `result`, `direction`; client-go:
    /// `tikv_client_go_stale_read_bytes` (`TiKVStaleReadBytes`).
    #[doc(alias = "TiKVStaleReadBytes")]
    STALE_READ_BYTES_TOTAL = (
        "tikv_client_stale_read_bytes_total",
        Counter,
        Some(Unit::Bytes),
        "stale-read traffic by zone locality and direction"
    );
    /// Read request and response bytes: `type` is `leader` or `follower`, `result` is `local`
    /// or `cross-zone` (a summary in client-go).
    ///
    /// Type histogram, unit bytes, labels `type`, `result`; client-go:
    /// `tikv_client_go_read_request_bytes` (summary) (`TiKVReadRequestBytes`).
    #[doc(alias = "TiKVReadRequestBytes")]
    READ_REQUEST_BYTES = (
        "tikv_client_read_request_bytes",
        Histogram,
        Some(Unit::Bytes),
        "read traffic by replica role and zone locality"
    );
    /// Times the replica selector gave up: `invalid`, `exhausted` or `stale_store`.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_replica_selector_failure_counter` (`TiKVReplicaSelectorFailureCounter`).
    #[doc(alias = "TiKVReplicaSelectorFailureCounter")]
    REPLICA_SELECTOR_FAILURE_TOTAL = (
        "tikv_client_replica_selector_failure_total",
        Counter,
        Some(Unit::Count),
        "times the replica selector could not pick a replica"
    );
    /// Requests sent through a proxy store to an unreachable leader; `result` is `ok` or
    /// `fail`.
    ///
    /// Type counter, unit count, labels `from_store`, `to_store`, `type`, `result`; client-go:
    /// `tikv_client_go_forward_request_counter` (`TiKVForwardRequestCounter`).
    #[doc(alias = "TiKVForwardRequestCounter")]
    FORWARD_REQUEST_TOTAL = (
        "tikv_client_forward_request_total",
        Counter,
        Some(Unit::Count),
        "requests forwarded through a proxy store"
    );
    /// Requests refused because the store already had the configured number of requests in
    /// flight (store limit).
    ///
    /// Type counter, unit count, labels `address`, `store`; client-go:
    /// `tikv_client_go_get_store_limit_token_error` (`TiKVStoreLimitErrorCounter`).
    #[doc(alias = "TiKVStoreLimitErrorCounter")]
    STORE_LIMIT_TOKEN_ERROR_TOTAL = (
        "tikv_client_get_store_limit_token_error_total",
        Counter,
        Some(Unit::Count),
        "requests refused by the per-store in-flight limit"
    );
    /// Asynchronous sends of the region request sender, by outcome (`ok`, `region_error`,
    /// `rpc_error`, `send_error`, `other_error`).
    ///
    /// Type counter, unit count, labels `result`; client-go:
    /// `tikv_client_go_async_send_req_total` (`TiKVAsyncSendReqCounter`).
    #[doc(alias = "TiKVAsyncSendReqCounter")]
    ASYNC_SEND_REQ_TOTAL = (
        "tikv_client_async_send_req_total",
        Counter,
        Some(Unit::Count),
        "asynchronous sends by outcome"
    );
    /// Requests routed under the prefer-leader read mode, by store.
    ///
    /// Type gauge, unit count, labels `type`, `store`; client-go:
    /// `tikv_client_go_prefer_leader_flows_gauge` (`TiKVPreferLeaderFlowsGauge`).
    #[doc(alias = "TiKVPreferLeaderFlowsGauge")]
    PREFER_LEADER_FLOWS = (
        "tikv_client_prefer_leader_flows",
        Gauge,
        Some(Unit::Count),
        "flows under the prefer-leader read mode"
    );
    /// Health-feedback operations (received, applied, skipped) by scope.
    ///
    /// Type counter, unit count, labels `scope`, `type`; client-go:
    /// `tikv_client_go_health_feedback_ops_counter` (`TiKVHealthFeedbackOpsCounter`).
    #[doc(alias = "TiKVHealthFeedbackOpsCounter")]
    HEALTH_FEEDBACK_OPS_TOTAL = (
        "tikv_client_health_feedback_ops_total",
        Counter,
        Some(Unit::Count),
        "operations on TiKV health feedback"
    );
    /// The slow score the client computes for each store from RPC latencies.
    ///
    /// Type gauge, unit none, labels `store`; client-go: `tikv_client_go_store_slow_score`
    /// (`TiKVStoreSlowScoreGauge`).
    #[doc(alias = "TiKVStoreSlowScoreGauge")]
    STORE_SLOW_SCORE = (
        "tikv_client_store_slow_score",
        Gauge,
        None,
        "client-side slow score of each store"
    );
    /// The slow score a store reports about itself in its health feedback.
    ///
    /// Type gauge, unit none, labels `store`; client-go: `tikv_client_go_feedback_slow_score`
    /// (`TiKVFeedbackSlowScoreGauge`).
    #[doc(alias = "TiKVFeedbackSlowScoreGauge")]
    FEEDBACK_SLOW_SCORE = (
        "tikv_client_feedback_slow_score",
        Gauge,
        None,
        "slow score reported by each store in its health feedback"
    );
    /// The liveness state of each store (reachable, unreachable, unknown) as a number.
    ///
    /// Type gauge, unit none, labels `store`; client-go: `tikv_client_go_store_liveness_state`
    /// (`TiKVStoreLivenessGauge`).
    #[doc(alias = "TiKVStoreLivenessGauge")]
    STORE_LIVENESS_STATE = (
        "tikv_client_store_liveness_state",
        Gauge,
        None,
        "liveness state of each store"
    );
    /// Panics caught in background loops, by loop name.
    ///
    /// Type counter, unit count, labels `type`; client-go: `tikv_client_go_panic_total`
    /// (`TiKVPanicCounter`).
    #[doc(alias = "TiKVPanicCounter")]
    PANIC_TOTAL = (
        "tikv_client_panic_total",
        Counter,
        Some(Unit::Count),
        "panics caught in background loops"
    );

    // ----- Backoff -----

    /// One backoff sleep, recorded by [`Backoffer`](crate::backoff::Backoffer) after every
    /// sleep (0 when canceled), by client-go's backoff type label ([`labels::backoff_type`]).
    ///
    /// Type histogram, unit seconds, labels `type`; client-go: `tikv_client_go_backoff_seconds`
    /// (`TiKVBackoffHistogram`).
    #[doc(alias = "TiKVBackoffHistogram")]
    BACKOFF_SECONDS = (
        "tikv_client_backoff_seconds",
        Histogram,
        Some(Unit::Seconds),
        "one backoff sleep, by backoff type"
    );
    /// Total backoff time spent while committing one transaction.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_txn_commit_backoff_seconds` (`TiKVTxnCommitBackoffSeconds`).
    #[doc(alias = "TiKVTxnCommitBackoffSeconds")]
    TXN_COMMIT_BACKOFF_SECONDS = (
        "tikv_client_txn_commit_backoff_seconds",
        Histogram,
        Some(Unit::Seconds),
        "total backoff time of one commit"
    );
    /// Number of backoffs while committing one transaction.
    ///
    /// Type histogram, unit count, labels none; client-go:
    /// `tikv_client_go_txn_commit_backoff_count` (`TiKVTxnCommitBackoffCount`).
    #[doc(alias = "TiKVTxnCommitBackoffCount")]
    TXN_COMMIT_BACKOFF_COUNT = (
        "tikv_client_txn_commit_backoff_count",
        Histogram,
        Some(Unit::Count),
        "backoffs while committing one transaction"
    );

    // ----- Region cache and stores -----

    /// Region cache operations: `type` names the operation (see the `OP_*` values in
    /// [`labels`]), `result` is `ok` or `err`.
    ///
    /// Type counter, unit count, labels `type`, `result`; client-go:
    /// `tikv_client_go_region_cache_operations_total` (`TiKVRegionCacheCounter`).
    #[doc(alias = "TiKVRegionCacheCounter")]
    REGION_CACHE_OPERATIONS_TOTAL = (
        "tikv_client_region_cache_operations_total",
        Counter,
        Some(Unit::Count),
        "region cache operations by type and result"
    );
    /// Region loads from PD, by load kind and the reason the cached copy was not used.
    ///
    /// Type counter, unit count, labels `type`, `reason`; client-go:
    /// `tikv_client_go_load_region_total` (`TiKVLoadRegionCounter`).
    #[doc(alias = "TiKVLoadRegionCounter")]
    LOAD_REGION_TOTAL = (
        "tikv_client_load_region_total",
        Counter,
        Some(Unit::Count),
        "region loads from PD by kind and reason"
    );
    /// Latency of loading regions or stores from PD, by load kind.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `tikv_client_go_load_region_cache_seconds` (`TiKVLoadRegionCacheHistogram`).
    #[doc(alias = "TiKVLoadRegionCacheHistogram")]
    LOAD_REGION_CACHE_SECONDS = (
        "tikv_client_load_region_cache_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of loading regions or stores from PD"
    );
    /// Regions PD returned that were older than the cached copy and were dropped.
    ///
    /// Type counter, unit count, labels none; client-go: `tikv_client_go_stale_region_from_pd`
    /// (`TiKVStaleRegionFromPDCounter`).
    #[doc(alias = "TiKVStaleRegionFromPDCounter")]
    STALE_REGION_FROM_PD_TOTAL = (
        "tikv_client_stale_region_from_pd_total",
        Counter,
        Some(Unit::Count),
        "regions from PD older than the cached copy"
    );
    /// Bucket sets PD returned that were older than the cached copy.
    ///
    /// Type counter, unit count, labels none; client-go: `tikv_client_go_stale_bucket_from_pd`
    /// (`TiKVStaleBucketFromPDCounter`).
    #[doc(alias = "TiKVStaleBucketFromPDCounter")]
    STALE_BUCKET_FROM_PD_TOTAL = (
        "tikv_client_stale_bucket_from_pd_total",
        Counter,
        Some(Unit::Count),
        "buckets from PD older than the cached copy"
    );
    /// Bucket boundaries clamped to their region's key range.
    ///
    /// Type counter, unit count, labels none; client-go: `tikv_client_go_bucket_clamped`
    /// (`TiKVBucketClampedCounter`).
    #[doc(alias = "TiKVBucketClampedCounter")]
    BUCKET_CLAMPED_TOTAL = (
        "tikv_client_bucket_clamped_total",
        Counter,
        Some(Unit::Count),
        "bucket boundaries clamped to the region range"
    );
    /// Latency of the store status (health check) API, by store.
    ///
    /// Type histogram, unit seconds, labels `store`; client-go:
    /// `tikv_client_go_kv_status_api_duration` (`TiKVStatusDuration`).
    #[doc(alias = "TiKVStatusDuration")]
    KV_STATUS_API_SECONDS = (
        "tikv_client_kv_status_api_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of the store status API"
    );
    /// Calls of the store status API, by `ok` or `err`.
    ///
    /// Type counter, unit count, labels `result`; client-go:
    /// `tikv_client_go_kv_status_api_count` (`TiKVStatusCounter`).
    #[doc(alias = "TiKVStatusCounter")]
    KV_STATUS_API_TOTAL = (
        "tikv_client_kv_status_api_total",
        Counter,
        Some(Unit::Count),
        "calls of the store status API"
    );
    /// Safe-ts refreshes, by result and store.
    ///
    /// Type counter, unit count, labels `result`, `store`; client-go:
    /// `tikv_client_go_safets_update_counter` (`TiKVSafeTSUpdateCounter`).
    #[doc(alias = "TiKVSafeTSUpdateCounter")]
    SAFE_TS_UPDATE_TOTAL = (
        "tikv_client_safets_update_total",
        Counter,
        Some(Unit::Count),
        "safe-ts updates by result and store"
    );
    /// The smallest non-zero gap between now and a store's safe ts.
    ///
    /// Type gauge, unit seconds, labels `store`; client-go:
    /// `tikv_client_go_min_safets_gap_seconds` (`TiKVMinSafeTSGapSeconds`).
    #[doc(alias = "TiKVMinSafeTSGapSeconds")]
    MIN_SAFE_TS_GAP_SECONDS = (
        "tikv_client_min_safets_gap_seconds",
        Gauge,
        Some(Unit::Seconds),
        "smallest non-zero safe-ts gap per store"
    );

    // ----- Transport -----

    /// Requests per `BatchCommands` message.
    ///
    /// Type histogram, unit count, labels `store`; client-go: `tikv_client_go_batch_requests`
    /// (`TiKVBatchRequests`).
    #[doc(alias = "TiKVBatchRequests")]
    BATCH_REQUESTS = (
        "tikv_client_batch_requests",
        Histogram,
        Some(Unit::Count),
        "requests per BatchCommands message"
    );
    /// Requests queued when the send loop forms a batch.
    ///
    /// Type histogram, unit count, labels `store`; client-go:
    /// `tikv_client_go_batch_pending_requests` (`TiKVBatchPendingRequests`).
    #[doc(alias = "TiKVBatchPendingRequests")]
    BATCH_PENDING_REQUESTS = (
        "tikv_client_batch_pending_requests",
        Histogram,
        Some(Unit::Count),
        "requests queued when a batch is formed"
    );
    /// Time an entry waited between arrival and being put on a stream.
    ///
    /// Type histogram, unit seconds, labels `store`; client-go:
    /// `tikv_client_go_batch_request_stage_duration_seconds{stage="batch_wait"}`
    /// (`TiKVBatchRequestStageDuration`).
    #[doc(alias = "TiKVBatchRequestStageDuration")]
    BATCH_WAIT_SECONDS = (
        "tikv_client_batch_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time from arrival until a request is put on a stream"
    );
    /// Extra entries gained by waiting for more.
    ///
    /// Type histogram, unit count, labels `store`; client-go:
    /// `tikv_client_go_batch_more_requests_total` (summary) (`TiKVBatchMoreRequests`).
    #[doc(alias = "TiKVBatchMoreRequests")]
    BATCH_MORE_REQUESTS = (
        "tikv_client_batch_more_requests",
        Histogram,
        Some(Unit::Count),
        "extra requests gained by waiting"
    );
    /// The running average batch size the trigger aims for.
    ///
    /// Type histogram, unit count, labels `store`; client-go: `tikv_client_go_batch_best_size`
    /// (summary) (`TiKVBatchBestSize`).
    #[doc(alias = "TiKVBatchBestSize")]
    BATCH_BEST_SIZE = (
        "tikv_client_batch_best_size",
        Histogram,
        Some(Unit::Count),
        "average batch size aimed for"
    );
    /// Batch requests sent and not yet answered, per store.
    ///
    /// Type gauge, unit count, labels `store`; client-go:
    /// `tikv_client_go_batch_client_inflight` (approx.).
    INFLIGHT_REQUESTS = (
        "tikv_client_batch_inflight_requests",
        Gauge,
        Some(Unit::Count),
        "batch requests sent and not yet answered"
    );
    /// Batch streams re-created after a failure.
    ///
    /// Type counter, unit count, labels `store`; client-go: `tikv_client_go_batch_client_reset`
    /// (count) (`TiKVBatchClientRecycle`).
    #[doc(alias = "TiKVBatchClientRecycle")]
    BATCH_RECONNECTS = (
        "tikv_client_batch_reconnects_total",
        Counter,
        Some(Unit::Count),
        "batch streams re-created"
    );
    /// Rounds in which no stream could take the queued entries.
    ///
    /// Type counter, unit count, labels none; client-go:
    /// `tikv_client_go_batch_client_no_available_connection_total`
    /// (`TiKVNoAvailableConnectionCounter`).
    #[doc(alias = "TiKVNoAvailableConnectionCounter")]
    NO_AVAILABLE_CONNECTION = (
        "tikv_client_batch_client_no_available_connection_total",
        Counter,
        Some(Unit::Count),
        "rounds without an available batch stream"
    );
    /// Responses whose request id was unknown (the request had already finished).
    ///
    /// Type counter, unit count, labels `store`; client-go:
    /// `tikv_client_go_batch_stream_outdated_response_count`
    /// (`TiKVBatchStreamOutdatedResponseCount`).
    #[doc(alias = "TiKVBatchStreamOutdatedResponseCount")]
    OUTDATED_RESPONSES = (
        "tikv_client_batch_stream_outdated_response_total",
        Counter,
        Some(Unit::Count),
        "batch responses with an unknown request id"
    );
    /// Rounds that waited for more requests because TiKV reported overload.
    ///
    /// Type counter, unit count, labels none; client-go: `tikv_client_go_batch_wait_overload`
    /// (`TiKVBatchWaitOverLoad`).
    #[doc(alias = "TiKVBatchWaitOverLoad")]
    BATCH_WAIT_OVERLOAD = (
        "tikv_client_batch_wait_overload_total",
        Counter,
        Some(Unit::Count),
        "rounds that waited because TiKV was overloaded"
    );
    /// Batches held because every connection had `batch_window` messages TiKV had not
    /// started to answer (see `TikvClientConfig::batch_window`).
    ///
    /// Type counter, unit count, labels `store`; client-go: none (this client's own).
    BATCH_WINDOW_HOLDS = (
        "tikv_client_batch_window_holds_total",
        Counter,
        Some(Unit::Count),
        "batches held for a full batch window"
    );
    /// How batch requests ended: `ok`, `timeout`, `canceled`, `closed`, `failed`.
    ///
    /// Type counter, unit count, labels `outcome`; client-go:
    /// `tikv_client_go_batch_request_stage_duration_seconds` (result label)
    /// (`TiKVBatchRequestStageDuration`).
    #[doc(alias = "TiKVBatchRequestStageDuration")]
    BATCH_OUTCOMES = (
        "tikv_client_batch_outcomes_total",
        Counter,
        Some(Unit::Count),
        "how batch requests ended"
    );
    /// Idle pools closed by the recycler.
    ///
    /// Type counter, unit count, labels none; client-go: `tikv_client_go_batch_client_reset`
    /// (`TiKVBatchClientRecycle`).
    #[doc(alias = "TiKVBatchClientRecycle")]
    IDLE_RECYCLES = (
        "tikv_client_batch_idle_recycles_total",
        Counter,
        Some(Unit::Count),
        "idle pools closed"
    );
    /// Time a batch request spent in each stage (`batch_wait`, `send_wait`, `recv_wait`,
    /// `done`), by outcome.
    ///
    /// Type histogram, unit seconds, labels `store`, `stage`, `result`; client-go:
    /// `tikv_client_go_batch_request_stage_duration_seconds` (summary)
    /// (`TiKVBatchRequestStageDuration`).
    #[doc(alias = "TiKVBatchRequestStageDuration")]
    BATCH_REQUEST_STAGE_SECONDS = (
        "tikv_client_batch_request_stage_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time of each stage of a batch request"
    );
    /// Batch sends slower than the tail threshold.
    ///
    /// Type histogram, unit seconds, labels `target`; client-go:
    /// `tikv_client_go_batch_send_tail_latency_seconds` (`TiKVBatchSendTailLatency`).
    #[doc(alias = "TiKVBatchSendTailLatency")]
    BATCH_SEND_TAIL_LATENCY_SECONDS = (
        "tikv_client_batch_send_tail_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "slow batch sends"
    );
    /// Time of the send loop, broken down by step.
    ///
    /// Type histogram, unit seconds, labels `target`, `step`; client-go:
    /// `tikv_client_go_batch_send_loop_duration_seconds` (summary)
    /// (`TiKVBatchSendLoopDuration`).
    #[doc(alias = "TiKVBatchSendLoopDuration")]
    BATCH_SEND_LOOP_SECONDS = (
        "tikv_client_batch_send_loop_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "send loop time by step"
    );
    /// Time of a stream's receive loop, broken down by step.
    ///
    /// Type histogram, unit seconds, labels `target`, `conn`, `forward`, `step`; client-go:
    /// `tikv_client_go_batch_stream_recv_loop_duration_seconds` (summary)
    /// (`TiKVBatchStreamRecvLoopDuration`).
    #[doc(alias = "TiKVBatchStreamRecvLoopDuration")]
    BATCH_RECV_LOOP_SECONDS = (
        "tikv_client_batch_stream_recv_loop_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "receive loop time by step"
    );
    /// Batch receives slower than the tail threshold.
    ///
    /// Type histogram, unit seconds, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_recv_tail_latency_seconds`
    /// (`TiKVBatchStreamRecvTailLatency`).
    #[doc(alias = "TiKVBatchStreamRecvTailLatency")]
    BATCH_RECV_TAIL_LATENCY_SECONDS = (
        "tikv_client_batch_stream_recv_tail_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "slow batch receives"
    );
    /// Time from TiKV sending a batch response until the client received it, when above the
    /// tail threshold.
    ///
    /// Type histogram, unit seconds, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_tikv_send_tail_latency_seconds`
    /// (`TiKVBatchStreamTiKVSendTailLatency`).
    #[doc(alias = "TiKVBatchStreamTiKVSendTailLatency")]
    BATCH_TIKV_SEND_TAIL_LATENCY_SECONDS = (
        "tikv_client_batch_stream_tikv_send_tail_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "slow transfers from TiKV's send to the client's receive"
    );
    /// Age of canceled entries whose response still arrived.
    ///
    /// Type histogram, unit seconds, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_canceled_entry_tail_latency_seconds`
    /// (`TiKVBatchStreamCanceledEntryTailLatency`).
    #[doc(alias = "TiKVBatchStreamCanceledEntryTailLatency")]
    BATCH_CANCELED_ENTRY_TAIL_LATENCY_SECONDS = (
        "tikv_client_batch_stream_canceled_entry_tail_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "late responses to canceled entries"
    );
    /// Requests a batch stream started tracking.
    ///
    /// Type counter, unit count, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_tracked_request_count`
    /// (`TiKVBatchStreamTrackedRequestCount`).
    #[doc(alias = "TiKVBatchStreamTrackedRequestCount")]
    BATCH_STREAM_TRACKED_REQUESTS_TOTAL = (
        "tikv_client_batch_stream_tracked_request_total",
        Counter,
        Some(Unit::Count),
        "requests tracked by a batch stream"
    );
    /// Requests a batch stream stopped tracking.
    ///
    /// Type counter, unit count, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_retired_request_count`
    /// (`TiKVBatchStreamRetiredRequestCount`).
    #[doc(alias = "TiKVBatchStreamRetiredRequestCount")]
    BATCH_STREAM_RETIRED_REQUESTS_TOTAL = (
        "tikv_client_batch_stream_retired_request_total",
        Counter,
        Some(Unit::Count),
        "requests retired from a batch stream"
    );
    /// Responses matched to a waiting request on a batch stream.
    ///
    /// Type counter, unit count, labels `target`, `conn`, `forward`; client-go:
    /// `tikv_client_go_batch_stream_completed_response_count`
    /// (`TiKVBatchStreamCompletedResponseCount`).
    #[doc(alias = "TiKVBatchStreamCompletedResponseCount")]
    BATCH_STREAM_COMPLETED_RESPONSES_TOTAL = (
        "tikv_client_batch_stream_completed_response_total",
        Counter,
        Some(Unit::Count),
        "responses matched on a batch stream"
    );
    /// Interval between the arrivals of the first request of consecutive batches.
    ///
    /// Type histogram, unit seconds, labels `target`; client-go:
    /// `tikv_client_go_batch_head_arrival_interval_seconds` (summary)
    /// (`TiKVBatchHeadArrivalInterval`).
    #[doc(alias = "TiKVBatchHeadArrivalInterval")]
    BATCH_HEAD_ARRIVAL_INTERVAL_SECONDS = (
        "tikv_client_batch_head_arrival_interval_seconds",
        Histogram,
        Some(Unit::Seconds),
        "interval between the head requests of batches"
    );
    /// Time a batch client had no usable stream.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_batch_client_unavailable_seconds` (`TiKVBatchClientUnavailable`).
    #[doc(alias = "TiKVBatchClientUnavailable")]
    BATCH_CLIENT_UNAVAILABLE_SECONDS = (
        "tikv_client_batch_client_unavailable_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time a batch client had no usable stream"
    );
    /// Time spent waiting for a new connection to be established.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_batch_client_wait_connection_establish`
    /// (`TiKVBatchClientWaitEstablish`).
    #[doc(alias = "TiKVBatchClientWaitEstablish")]
    BATCH_CLIENT_WAIT_ESTABLISH_SECONDS = (
        "tikv_client_batch_client_wait_connection_establish_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time spent waiting for a new connection"
    );
    /// Time taken to recycle a broken connection and reconnect.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_batch_client_reset` (`TiKVBatchClientRecycle`).
    #[doc(alias = "TiKVBatchClientRecycle")]
    BATCH_CLIENT_RESET_SECONDS = (
        "tikv_client_batch_client_reset_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time to recycle a connection and reconnect"
    );
    /// gRPC connections that entered transient failure.
    ///
    /// Type counter, unit count, labels `address`, `store`; client-go:
    /// `tikv_client_go_connection_transient_failure_count`
    /// (`TiKVGRPCConnTransientFailureCounter`).
    #[doc(alias = "TiKVGRPCConnTransientFailureCounter")]
    CONNECTION_TRANSIENT_FAILURE_TOTAL = (
        "tikv_client_connection_transient_failure_total",
        Counter,
        Some(Unit::Count),
        "gRPC connections that entered transient failure"
    );
    /// The state of each gRPC connection (one-hot by `grpc_state`).
    ///
    /// Type gauge, unit none, labels `connection_id`, `store_ip`, `grpc_state`; client-go:
    /// `tikv_client_go_grpc_connection_state` (`TiKVGrpcConnectionState`).
    #[doc(alias = "TiKVGrpcConnectionState")]
    GRPC_CONNECTION_STATE = (
        "tikv_client_grpc_connection_state",
        Gauge,
        None,
        "state of each gRPC connection"
    );

    // ----- PD, TSO and oracle -----

    /// Time a caller waited for its timestamp after asking for it.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_ts_future_wait_seconds` (`TiKVTSFutureWaitDuration`).
    #[doc(alias = "TiKVTSFutureWaitDuration")]
    TS_FUTURE_WAIT_SECONDS = (
        "tikv_client_ts_future_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time waiting for a timestamp future"
    );
    /// The update interval the low-resolution ts loop currently uses (adaptive, so it may
    /// differ from the configuration).
    ///
    /// Type gauge, unit seconds, labels none; client-go:
    /// `tikv_client_go_low_resolution_tso_update_interval_seconds`
    /// (`TiKVLowResolutionTSOUpdateIntervalSecondsGauge`).
    #[doc(alias = "TiKVLowResolutionTSOUpdateIntervalSecondsGauge")]
    LOW_RESOLUTION_TSO_UPDATE_INTERVAL_SECONDS = (
        "tikv_client_low_resolution_tso_update_interval_seconds",
        Gauge,
        Some(Unit::Seconds),
        "current update interval of the low-resolution ts"
    );
    /// Read-ts validations that had to fetch a fresh ts from PD.
    ///
    /// Type counter, unit count, labels none; client-go:
    /// `tikv_client_go_validate_read_ts_from_pd_count` (`TiKVValidateReadTSFromPDCount`).
    #[doc(alias = "TiKVValidateReadTSFromPDCount")]
    VALIDATE_READ_TS_FROM_PD_TOTAL = (
        "tikv_client_validate_read_ts_from_pd_total",
        Counter,
        Some(Unit::Count),
        "read-ts validations that fetched a ts from PD"
    );
    /// GC safe point loads, by `ok` or `fail`.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_load_safepoint_total` (`TiKVLoadTxnSafePointCounter`).
    #[doc(alias = "TiKVLoadTxnSafePointCounter")]
    LOAD_SAFEPOINT_TOTAL = (
        "tikv_client_load_safepoint_total",
        Counter,
        Some(Unit::Count),
        "GC safe point loads by result"
    );
    /// Latency of successful PD calls, by call name.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `pd_client_cmd_handle_cmds_duration_seconds` (PD client).
    PD_CMD_SECONDS = (
        "tikv_client_pd_cmd_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of successful PD calls"
    );
    /// Latency of failed PD calls, by call name.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `pd_client_cmd_handle_failed_cmds_duration_seconds` (PD client).
    PD_CMD_FAILED_SECONDS = (
        "tikv_client_pd_cmd_failed_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of failed PD calls"
    );
    /// Latency of one PD RPC (including each TSO stream round trip), by request name.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `pd_client_request_handle_requests_duration_seconds` (PD client).
    PD_REQUEST_SECONDS = (
        "tikv_client_pd_request_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of one PD RPC"
    );
    /// Timestamps asked for in one TSO stream request (the batch size).
    ///
    /// Type histogram, unit count, labels none; client-go:
    /// `pd_client_request_handle_tso_batch_size` (PD client).
    TSO_BATCH_SIZE = (
        "tikv_client_pd_tso_batch_size",
        Histogram,
        Some(Unit::Count),
        "timestamps requested per TSO stream request"
    );

    // ----- Transactions and raw KV -----

    /// Latency of transaction operations (`commit`, `rollback`, `get`, `batch_get`,
    /// `lock_keys`, `shared_lock_keys`), by `internal`/`general` scope.
    ///
    /// Type histogram, unit seconds, labels `type`, `scope`; client-go:
    /// `tikv_client_go_txn_cmd_duration_seconds` (`TiKVTxnCmdHistogram`).
    #[doc(alias = "TiKVTxnCmdHistogram")]
    TXN_CMD_SECONDS = (
        "tikv_client_txn_cmd_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of transaction operations"
    );
    /// Latency of raw KV client operations.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `tikv_client_go_rawkv_cmd_seconds` (`TiKVRawkvCmdHistogram`).
    #[doc(alias = "TiKVRawkvCmdHistogram")]
    RAWKV_CMD_SECONDS = (
        "tikv_client_rawkv_cmd_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of raw KV operations"
    );
    /// Sizes of raw keys (`key`) and values (`value`) written.
    ///
    /// Type histogram, unit bytes, labels `type`; client-go:
    /// `tikv_client_go_rawkv_kv_size_bytes` (`TiKVRawkvSizeHistogram`).
    #[doc(alias = "TiKVRawkvSizeHistogram")]
    RAWKV_KV_SIZE_BYTES = (
        "tikv_client_rawkv_kv_size_bytes",
        Histogram,
        Some(Unit::Bytes),
        "sizes of raw keys and values written"
    );
    /// Keys written by one transaction.
    ///
    /// Type histogram, unit count, labels `scope`; client-go: `tikv_client_go_txn_write_kv_num`
    /// (`TiKVTxnWriteKVCountHistogram`).
    #[doc(alias = "TiKVTxnWriteKVCountHistogram")]
    TXN_WRITE_KV_NUM = (
        "tikv_client_txn_write_kv_num",
        Histogram,
        Some(Unit::Count),
        "keys written per transaction"
    );
    /// Bytes of keys and values written by one transaction.
    ///
    /// Type histogram, unit bytes, labels `scope`; client-go:
    /// `tikv_client_go_txn_write_size_bytes` (`TiKVTxnWriteSizeHistogram`).
    #[doc(alias = "TiKVTxnWriteSizeHistogram")]
    TXN_WRITE_SIZE_BYTES = (
        "tikv_client_txn_write_size_bytes",
        Histogram,
        Some(Unit::Bytes),
        "bytes written per transaction"
    );
    /// Regions one transaction phase (snapshot, 2PC prewrite/commit/cleanup, pessimistic
    /// lock/rollback, coprocessor) touched.
    ///
    /// Type histogram, unit count, labels `type`, `scope`; client-go:
    /// `tikv_client_go_txn_regions_num` (`TiKVTxnRegionsNumHistogram`).
    #[doc(alias = "TiKVTxnRegionsNumHistogram")]
    TXN_REGIONS_NUM = (
        "tikv_client_txn_regions_num",
        Histogram,
        Some(Unit::Count),
        "regions touched per transaction phase"
    );
    /// Lock resolver actions, by action.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_lock_resolver_actions_total` (`TiKVLockResolverCounter`).
    #[doc(alias = "TiKVLockResolverCounter")]
    LOCK_RESOLVER_ACTIONS_TOTAL = (
        "tikv_client_lock_resolver_actions_total",
        Counter,
        Some(Unit::Count),
        "lock resolver actions"
    );
    /// Asynchronous lock resolution tasks running, by kind.
    ///
    /// Type gauge, unit count, labels `type`; client-go:
    /// `tikv_client_go_lock_resolver_async_running_tasks`
    /// (`TiKVLockResolverAsyncRunningTasks`).
    #[doc(alias = "TiKVLockResolverAsyncRunningTasks")]
    LOCK_RESOLVER_ASYNC_RUNNING_TASKS = (
        "tikv_client_lock_resolver_async_running_tasks",
        Gauge,
        Some(Unit::Count),
        "asynchronous lock resolution tasks running"
    );
    /// Secondary lock cleanups that failed, by `commit` or `rollback`.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_lock_cleanup_task_total` (`TiKVSecondaryLockCleanupFailureCounter`).
    #[doc(alias = "TiKVSecondaryLockCleanupFailureCounter")]
    LOCK_CLEANUP_TASK_TOTAL = (
        "tikv_client_lock_cleanup_task_total",
        Counter,
        Some(Unit::Count),
        "failed secondary lock cleanups"
    );
    /// Time a transaction waited for its local latches.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_local_latch_wait_seconds` (`TiKVLocalLatchWaitTimeHistogram`).
    #[doc(alias = "TiKVLocalLatchWaitTimeHistogram")]
    LOCAL_LATCH_WAIT_SECONDS = (
        "tikv_client_local_latch_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time waiting for local latches"
    );
    /// Time a 2PC batch waited for an executor token (client-go records nanoseconds; this is
    /// seconds).
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_batch_executor_token_wait_duration` (ns) (`TiKVTokenWaitDuration`).
    #[doc(alias = "TiKVTokenWaitDuration")]
    TOKEN_WAIT_SECONDS = (
        "tikv_client_batch_executor_token_wait_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time waiting for a batch executor token"
    );
    /// Latency of transaction heartbeats, by `ok` or `err`.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go: `tikv_client_go_txn_heart_beat`
    /// (`TiKVTxnHeartBeatHistogram`).
    #[doc(alias = "TiKVTxnHeartBeatHistogram")]
    TXN_HEART_BEAT_SECONDS = (
        "tikv_client_txn_heart_beat_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of transaction heartbeats"
    );
    /// How long a transaction's TTL manager kept the primary lock alive.
    ///
    /// Type histogram, unit seconds, labels none; client-go: `tikv_client_go_txn_ttl_manager`
    /// (`TiKVTTLManagerHistogram`).
    #[doc(alias = "TiKVTTLManagerHistogram")]
    TXN_TTL_MANAGER_SECONDS = (
        "tikv_client_txn_ttl_manager_seconds",
        Histogram,
        Some(Unit::Seconds),
        "lifetime of a TTL manager"
    );
    /// TTL managers stopped because the transaction lived too long.
    ///
    /// Type counter, unit count, labels none; client-go:
    /// `tikv_client_go_ttl_lifetime_reach_total` (`TiKVTTLLifeTimeReachCounter`).
    #[doc(alias = "TiKVTTLLifeTimeReachCounter")]
    TTL_LIFETIME_REACH_TOTAL = (
        "tikv_client_ttl_lifetime_reach_total",
        Counter,
        Some(Unit::Count),
        "TTL managers that reached the lifetime limit"
    );
    /// Two-phase commits, by `ok` or `err`.
    ///
    /// Type counter, unit count, labels `type`; client-go: `tikv_client_go_commit_txn_counter`
    /// (`TiKVTwoPCTxnCounter`).
    #[doc(alias = "TiKVTwoPCTxnCounter")]
    COMMIT_TXN_TOTAL = (
        "tikv_client_commit_txn_total",
        Counter,
        Some(Unit::Count),
        "2PC commits by result"
    );
    /// Async-commit transactions, by `ok` or `err`.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_async_commit_txn_counter` (`TiKVAsyncCommitTxnCounter`).
    #[doc(alias = "TiKVAsyncCommitTxnCounter")]
    ASYNC_COMMIT_TXN_TOTAL = (
        "tikv_client_async_commit_txn_total",
        Counter,
        Some(Unit::Count),
        "async-commit commits by result"
    );
    /// One-phase commits, by `ok`, `err` or `fallback`.
    ///
    /// Type counter, unit count, labels `type`; client-go: `tikv_client_go_one_pc_txn_counter`
    /// (`TiKVOnePCTxnCounter`).
    #[doc(alias = "TiKVOnePCTxnCounter")]
    ONE_PC_TXN_TOTAL = (
        "tikv_client_one_pc_txn_total",
        Counter,
        Some(Unit::Count),
        "1PC commits by result"
    );
    /// Assertions sent with prewrite mutations, by `none`, `exist`, `not-exist`, `unknown`.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_prewrite_assertion_count` (`TiKVPrewriteAssertionUsageCounter`).
    #[doc(alias = "TiKVPrewriteAssertionUsageCounter")]
    PREWRITE_ASSERTION_TOTAL = (
        "tikv_client_prewrite_assertion_total",
        Counter,
        Some(Unit::Count),
        "assertions sent in prewrites"
    );
    /// Keys locked in aggressive locking mode, by how they were locked.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_aggressive_locking_count` (`TiKVAggressiveLockedKeysCounter`).
    #[doc(alias = "TiKVAggressiveLockedKeysCounter")]
    AGGRESSIVE_LOCKING_TOTAL = (
        "tikv_client_aggressive_locking_total",
        Counter,
        Some(Unit::Count),
        "keys locked in aggressive locking mode"
    );
    /// Keys in one pipelined-DML flush.
    ///
    /// Type histogram, unit count, labels none; client-go: `tikv_client_go_pipelined_flush_len`
    /// (`TiKVPipelinedFlushLenHistogram`).
    #[doc(alias = "TiKVPipelinedFlushLenHistogram")]
    PIPELINED_FLUSH_LEN = (
        "tikv_client_pipelined_flush_len",
        Histogram,
        Some(Unit::Count),
        "keys per pipelined flush"
    );
    /// Bytes in one pipelined-DML flush.
    ///
    /// Type histogram, unit bytes, labels none; client-go:
    /// `tikv_client_go_pipelined_flush_size` (`TiKVPipelinedFlushSizeHistogram`).
    #[doc(alias = "TiKVPipelinedFlushSizeHistogram")]
    PIPELINED_FLUSH_SIZE_BYTES = (
        "tikv_client_pipelined_flush_size_bytes",
        Histogram,
        Some(Unit::Bytes),
        "bytes per pipelined flush"
    );
    /// Time one pipelined-DML flush took.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_pipelined_flush_duration` (`TiKVPipelinedFlushDuration`).
    #[doc(alias = "TiKVPipelinedFlushDuration")]
    PIPELINED_FLUSH_SECONDS = (
        "tikv_client_pipelined_flush_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time of one pipelined flush"
    );
    /// Throttle delay applied before a pipelined-DML flush.
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_client_go_pipelined_flush_throttle_seconds`
    /// (`TiKVPipelinedFlushThrottleSecondsHistogram`).
    #[doc(alias = "TiKVPipelinedFlushThrottleSecondsHistogram")]
    PIPELINED_FLUSH_THROTTLE_SECONDS = (
        "tikv_client_pipelined_flush_throttle_seconds",
        Histogram,
        Some(Unit::Seconds),
        "throttle delay before a pipelined flush"
    );
    /// Write conflicts reported to transactions.
    ///
    /// Type counter, unit count, labels none; client-go:
    /// `tikv_client_go_txn_write_conflict_counter` (`TiKVTxnWriteConflictCounter`).
    #[doc(alias = "TiKVTxnWriteConflictCounter")]
    TXN_WRITE_CONFLICT_TOTAL = (
        "tikv_client_txn_write_conflict_total",
        Counter,
        Some(Unit::Count),
        "write conflicts"
    );
    /// Asynchronous snapshot batch gets, by outcome (`ok`, `region_error`, `lock_error`,
    /// `other_error`).
    ///
    /// Type counter, unit count, labels `result`; client-go:
    /// `tikv_client_go_async_batch_get_total` (`TiKVAsyncBatchGetCounter`).
    #[doc(alias = "TiKVAsyncBatchGetCounter")]
    ASYNC_BATCH_GET_TOTAL = (
        "tikv_client_async_batch_get_total",
        Counter,
        Some(Unit::Count),
        "asynchronous snapshot batch gets by outcome"
    );
    /// Time a commit waited for the TSO to pass a required commit ts, by `ok` or `err`.
    ///
    /// Type histogram, unit seconds, labels `result`; client-go:
    /// `tikv_client_go_txn_lag_commit_ts_wait_seconds` (`TiKVTxnLagCommitTSWaitHistogram`).
    #[doc(alias = "TiKVTxnLagCommitTSWaitHistogram")]
    TXN_LAG_COMMIT_TS_WAIT_SECONDS = (
        "tikv_client_txn_lag_commit_ts_wait_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time waiting for the commit ts to pass a target"
    );
    /// TSO fetches made while waiting for the commit ts to pass a target, by `ok` or `err`.
    ///
    /// Type histogram, unit count, labels `result`; client-go:
    /// `tikv_client_go_txn_lag_commit_ts_attempt_count` (`TiKVTxnLagCommitTSAttemptHistogram`).
    #[doc(alias = "TiKVTxnLagCommitTSAttemptHistogram")]
    TXN_LAG_COMMIT_TS_ATTEMPT_COUNT = (
        "tikv_client_txn_lag_commit_ts_attempt_count",
        Histogram,
        Some(Unit::Count),
        "TSO fetches while waiting for the commit ts"
    );
    /// Progress of range tasks: completed and failed regions, by task name.
    ///
    /// Type gauge, unit count, labels `type`, `result`; client-go:
    /// `tikv_client_go_range_task_stats` (`TiKVRangeTaskStats`).
    #[doc(alias = "TiKVRangeTaskStats")]
    RANGE_TASK_STATS = (
        "tikv_client_range_task_stats",
        Gauge,
        Some(Unit::Count),
        "progress of range tasks"
    );
    /// Time to hand a sub-task to a range-task worker.
    ///
    /// Type histogram, unit seconds, labels `type`; client-go:
    /// `tikv_client_go_range_task_push_duration` (`TiKVRangeTaskPushDuration`).
    #[doc(alias = "TiKVRangeTaskPushDuration")]
    RANGE_TASK_PUSH_SECONDS = (
        "tikv_client_range_task_push_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "time to push sub-tasks to range-task workers"
    );
    /// Unsafe-destroy-range calls that failed, by stage.
    ///
    /// Type counter, unit count, labels `type`; client-go:
    /// `tikv_client_go_gc_unsafe_destroy_range_failures`
    /// (`TiKVUnsafeDestroyRangeFailuresCounterVec`).
    #[doc(alias = "TiKVUnsafeDestroyRangeFailuresCounterVec")]
    GC_UNSAFE_DESTROY_RANGE_FAILURES_TOTAL = (
        "tikv_client_gc_unsafe_destroy_range_failures_total",
        Counter,
        Some(Unit::Count),
        "failed unsafe-destroy-range calls"
    );
    /// Latency of reads below the small-read threshold (the read SLI).
    ///
    /// Type histogram, unit seconds, labels none; client-go:
    /// `tikv_sli_tikv_small_read_duration` (`TiKVSmallReadDuration`).
    #[doc(alias = "TiKVSmallReadDuration")]
    SMALL_READ_SECONDS = (
        "tikv_client_sli_small_read_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "latency of small reads (read SLI)"
    );
    /// Throughput of reads above the small-read threshold, in bytes per second (the read SLI).
    ///
    /// Type histogram, unit none, labels none; client-go: `tikv_sli_tikv_read_throughput`
    /// (`TiKVReadThroughput`).
    #[doc(alias = "TiKVReadThroughput")]
    READ_THROUGHPUT = (
        "tikv_client_sli_read_throughput",
        Histogram,
        None,
        "throughput of large reads in bytes per second (read SLI)"
    );
}
