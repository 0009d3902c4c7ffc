//! The store cache's metric names: aliases of the one table in
//! [`tikv_layers::metrics::names`] (where every name, its labels and its client-go
//! equivalent are documented), under the names the store-cache code uses.
//!
//! Everything goes through the [`metrics`] facade; the library never installs a recorder.

pub use tikv_layers::metrics::names::{
    FEEDBACK_SLOW_SCORE, HEALTH_FEEDBACK_OPS_TOTAL as HEALTH_FEEDBACK_OPS,
    KV_STATUS_API_SECONDS as STATUS_SECONDS, KV_STATUS_API_TOTAL as STATUS_REQUESTS,
    PREFER_LEADER_FLOWS, STORE_LIMIT_TOKEN_ERROR_TOTAL as STORE_LIMIT_ERRORS,
    STORE_LIVENESS_STATE as STORE_LIVENESS, STORE_SLOW_SCORE, describe_metrics,
};
