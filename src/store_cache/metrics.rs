//! Metric names of the store cache, in one place.
//!
//! Everything goes through the [`metrics`] facade; the library never installs a recorder.
//! Call [`describe_metrics`] once after installing yours for units and help texts. The
//! `store` label is the store id, except for the status-API latency where it is the probed
//! address (as in client-go).
//!
//! | name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`STORE_SLOW_SCORE`] | gauge | score | `store` | `tikv_client_go_store_slow_score` |
//! | [`FEEDBACK_SLOW_SCORE`] | gauge | score | `store` | `tikv_client_go_feedback_slow_score` |
//! | [`HEALTH_FEEDBACK_OPS`] | counter | count | `store`, `type` | `tikv_client_go_health_feedback_ops_counter` |
//! | [`PREFER_LEADER_FLOWS`] | gauge | count | `type`, `store` | `tikv_client_go_prefer_leader_flows_gauge` |
//! | [`STORE_LIVENESS`] | gauge | state | `store` | `tikv_client_go_store_liveness_state` |
//! | [`STATUS_REQUESTS`] | counter | count | `result` | `tikv_client_go_kv_status_api_count` |
//! | [`STATUS_SECONDS`] | histogram | seconds | `store` | `tikv_client_go_kv_status_api_duration` |
//! | [`STORE_LIMIT_ERRORS`] | counter | count | `store` | `tikv_client_go_get_store_limit_token_error` |

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Client-side slow score per store, published every health tick (gauge).
pub const STORE_SLOW_SCORE: &str = "tikv_client_store_slow_score";
/// TiKV-side (feedback) slow score per store, published every health tick (gauge).
pub const FEEDBACK_SLOW_SCORE: &str = "tikv_client_feedback_slow_score";
/// Health-feedback operations: `tick`, `active_update`, `active_update_err` (counter).
pub const HEALTH_FEEDBACK_OPS: &str = "tikv_client_health_feedback_ops_total";
/// Prefer-leader selections per 30 s window, `type` = `ToLeader` / `ToFollower` (gauge).
pub const PREFER_LEADER_FLOWS: &str = "tikv_client_prefer_leader_flows";
/// Liveness of a resolved TiKV store: 0 reachable, 1 unreachable, 2 unknown (gauge).
pub const STORE_LIVENESS: &str = "tikv_client_store_liveness_state";
/// Liveness probes by result, `ok` or `err` (counter).
pub const STATUS_REQUESTS: &str = "tikv_client_kv_status_api_total";
/// Duration of one liveness probe (histogram, seconds).
pub const STATUS_SECONDS: &str = "tikv_client_kv_status_api_seconds";
/// Attempts refused by the per-store token limit (counter).
pub const STORE_LIMIT_ERRORS: &str = "tikv_client_get_store_limit_token_error_total";

/// Registers help texts and units of every store-cache metric with the installed recorder.
pub fn describe_metrics() {
    describe_gauge!(
        STORE_SLOW_SCORE,
        "Client-side slow score of each store (1..100)."
    );
    describe_gauge!(
        FEEDBACK_SLOW_SCORE,
        "Slow score each TiKV store reports about itself (1..100)."
    );
    describe_counter!(
        HEALTH_FEEDBACK_OPS,
        Unit::Count,
        "Health ticks and active health-feedback requests per store."
    );
    describe_gauge!(
        PREFER_LEADER_FLOWS,
        Unit::Count,
        "Prefer-leader requests sent to leaders or followers in the last report window."
    );
    describe_gauge!(
        STORE_LIVENESS,
        "Liveness of each TiKV store: 0 reachable, 1 unreachable, 2 unknown."
    );
    describe_counter!(
        STATUS_REQUESTS,
        Unit::Count,
        "Store liveness probes by result."
    );
    describe_histogram!(
        STATUS_SECONDS,
        Unit::Seconds,
        "Duration of one store liveness probe."
    );
    describe_counter!(
        STORE_LIMIT_ERRORS,
        Unit::Count,
        "Attempts refused because the store's token limit was reached."
    );
}
