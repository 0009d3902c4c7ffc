//! Metric names of the transport.
//!
//! The names are declared, documented and described in one place,
//! [`tikv_layers::metrics::names`]; this module re-exports the ones the transport emits so
//! its code (and users who knew this path) keep working. Labels are low-cardinality: the
//! store address (`store`), the command type (`type`) and the batch `outcome` word.
//!
//! [`describe_metrics`] describes every metric of the client, these included.

pub use tikv_layers::metrics::names::{
    BATCH_BEST_SIZE, BATCH_MORE_REQUESTS, BATCH_OUTCOMES, BATCH_PENDING_REQUESTS, BATCH_RECONNECTS,
    BATCH_REQUESTS, BATCH_WAIT_OVERLOAD, BATCH_WAIT_SECONDS, IDLE_RECYCLES, INFLIGHT_REQUESTS,
    NO_AVAILABLE_CONNECTION, OUTDATED_RESPONSES, REQUEST_SECONDS, describe_metrics,
};
