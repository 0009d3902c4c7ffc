//! Metric names of the transport, in one place.
//!
//! Everything is emitted through the [`metrics`] facade; the library never installs a
//! recorder. Call [`describe_metrics`] once after installing yours to get units and help
//! texts. Labels are low-cardinality: the store address (`store`), the command type
//! (`type`) and a short `reason` or `outcome` word.
//!
//! | name | type | unit | labels | client-go equivalent |
//! |---|---|---|---|---|
//! | [`BATCH_REQUESTS`] | histogram | count | `store` | `tikv_client_go_batch_requests` |
//! | [`BATCH_PENDING_REQUESTS`] | histogram | count | `store` | `tikv_client_go_batch_pending_requests` |
//! | [`BATCH_WAIT_SECONDS`] | histogram | seconds | `store` | `tikv_client_go_batch_wait_duration` |
//! | [`BATCH_MORE_REQUESTS`] | histogram | count | `store` | `tikv_client_go_batch_more_requests` |
//! | [`BATCH_BEST_SIZE`] | histogram | count | `store` | `tikv_client_go_batch_best_size` |
//! | [`INFLIGHT_REQUESTS`] | gauge | count | `store` | `tikv_client_go_batch_client_inflight` (approx.) |
//! | [`BATCH_RECONNECTS`] | counter | count | `store` | `tikv_client_go_batch_client_reset` |
//! | [`NO_AVAILABLE_CONNECTION`] | counter | count | — | `tikv_client_go_batch_client_no_available_connection_total` |
//! | [`OUTDATED_RESPONSES`] | counter | count | `store` | `tikv_client_go_batch_stream_outdated_response_count` |
//! | [`BATCH_WAIT_OVERLOAD`] | counter | count | — | `tikv_client_go_batch_wait_overload` |
//! | [`REQUEST_SECONDS`] | histogram | seconds | `store`, `type` | `tikv_client_go_request_seconds` |
//! | [`BATCH_OUTCOMES`] | counter | count | `outcome` | `tikv_client_go_batch_request_duration` outcome label |
//! | [`IDLE_RECYCLES`] | counter | count | — | `tikv_client_go_batch_client_recycle` |
//!
//! Recommended histogram buckets (exporter side): exponential from 0.5 ms, factor 2, for
//! the `_seconds` histograms; powers of two up to 1024 for the batch sizes.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Requests per `BatchCommands` message (histogram).
pub const BATCH_REQUESTS: &str = "tikv_client_batch_requests";
/// Requests queued when the send loop forms a batch (histogram).
pub const BATCH_PENDING_REQUESTS: &str = "tikv_client_batch_pending_requests";
/// Time an entry waited between arrival and being put on a stream (histogram, seconds).
pub const BATCH_WAIT_SECONDS: &str = "tikv_client_batch_wait_seconds";
/// Extra entries gained by waiting for more (histogram).
pub const BATCH_MORE_REQUESTS: &str = "tikv_client_batch_more_requests";
/// The running average batch size the trigger aims for (histogram).
pub const BATCH_BEST_SIZE: &str = "tikv_client_batch_best_size";
/// Batch requests sent and not yet answered, per store (gauge).
pub const INFLIGHT_REQUESTS: &str = "tikv_client_batch_inflight_requests";
/// Batch streams re-created after a failure (counter).
pub const BATCH_RECONNECTS: &str = "tikv_client_batch_reconnects_total";
/// Rounds in which no stream could take the queued entries (counter).
pub const NO_AVAILABLE_CONNECTION: &str = "tikv_client_batch_no_available_connection_total";
/// Responses whose request id was unknown (counter).
pub const OUTDATED_RESPONSES: &str = "tikv_client_batch_outdated_responses_total";
/// Rounds that waited for more requests because TiKV reported overload (counter).
pub const BATCH_WAIT_OVERLOAD: &str = "tikv_client_batch_wait_overload_total";
/// Latency of one transport call, by store and command (histogram, seconds).
pub const REQUEST_SECONDS: &str = "tikv_client_request_seconds";
/// How batch requests ended: ok, timeout, canceled, closed, failed (counter).
pub const BATCH_OUTCOMES: &str = "tikv_client_batch_outcomes_total";
/// Idle pools closed by the recycler (counter).
pub const IDLE_RECYCLES: &str = "tikv_client_batch_idle_recycles_total";

/// Registers units and help texts of every transport metric with the installed recorder.
pub fn describe_metrics() {
    describe_histogram!(
        BATCH_REQUESTS,
        Unit::Count,
        "requests per BatchCommands message"
    );
    describe_histogram!(
        BATCH_PENDING_REQUESTS,
        Unit::Count,
        "requests queued when a batch is formed"
    );
    describe_histogram!(
        BATCH_WAIT_SECONDS,
        Unit::Seconds,
        "time from arrival until a request is put on a stream"
    );
    describe_histogram!(
        BATCH_MORE_REQUESTS,
        Unit::Count,
        "extra requests gained by waiting"
    );
    describe_histogram!(BATCH_BEST_SIZE, Unit::Count, "average batch size aimed for");
    describe_gauge!(
        INFLIGHT_REQUESTS,
        Unit::Count,
        "batch requests sent and not yet answered"
    );
    describe_counter!(BATCH_RECONNECTS, Unit::Count, "batch streams re-created");
    describe_counter!(
        NO_AVAILABLE_CONNECTION,
        Unit::Count,
        "rounds without an available batch stream"
    );
    describe_counter!(
        OUTDATED_RESPONSES,
        Unit::Count,
        "batch responses with an unknown request id"
    );
    describe_counter!(
        BATCH_WAIT_OVERLOAD,
        Unit::Count,
        "rounds that waited because TiKV was overloaded"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "latency of one transport call"
    );
    describe_counter!(BATCH_OUTCOMES, Unit::Count, "how batch requests ended");
    describe_counter!(IDLE_RECYCLES, Unit::Count, "idle pools closed");
}
