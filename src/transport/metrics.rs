//! Metric names of the transport, and the per-store handles it records through.
//!
//! The names are declared, documented and described in one place,
//! [`tikv_layers::metrics::names`]; this module re-exports the ones the transport emits so
//! its code (and users who knew this path) keep working. Labels are low-cardinality: the
//! store address (`store`), the command type (`type`), the batch `stage` and the `outcome`
//! word.
//!
//! [`describe_metrics`] describes every metric of the client, these included.
//!
//! Hot path: the labels of every series are resolved once per connection pool into
//! `metrics` handles (style guide §3.3, client-go's per-store
//! `storeMetrics` / `batchConnMetrics`), so a request records into ready handles instead of
//! building a label set (and cloning the address) per call.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tikv_layers::CmdType;
use tikv_layers::metrics::names::{BATCH_REQUEST_STAGE_SECONDS, labels};

pub use tikv_layers::metrics::names::{
    BATCH_BEST_SIZE, BATCH_MORE_REQUESTS, BATCH_OUTCOMES, BATCH_PENDING_REQUESTS, BATCH_RECONNECTS,
    BATCH_REQUESTS, BATCH_WAIT_OVERLOAD, BATCH_WAIT_SECONDS, BATCH_WINDOW_HOLDS, IDLE_RECYCLES,
    INFLIGHT_REQUESTS, NO_AVAILABLE_CONNECTION, OUTDATED_RESPONSES, REQUEST_SECONDS,
    describe_metrics,
};

use super::batch::{BatchOutcome, BatchStage};

/// Every handle the transport records into for one store address (client-go `storeMetrics`
/// plus `batchConnMetrics`). Built once per connection pool.
pub(crate) struct StoreMetrics {
    store: String,
    /// `REQUEST_SECONDS{store,type}`, resolved on first use per command type (indexed like
    /// [`CmdType::ALL`]) so a store does not export a series for every command it never saw.
    request_seconds: Box<[OnceLock<Histogram>]>,
    pub(crate) batch_requests: Histogram,
    pub(crate) batch_wait: Histogram,
    pub(crate) batch_pending: Histogram,
    pub(crate) batch_best_size: Histogram,
    pub(crate) batch_more: Histogram,
    pub(crate) inflight: Gauge,
    pub(crate) reconnects: Counter,
    pub(crate) outdated: Counter,
    pub(crate) no_available: Counter,
    pub(crate) wait_overload: Counter,
    pub(crate) window_holds: Counter,
    /// `BATCH_OUTCOMES{outcome}`, indexed by [`BatchOutcome::index`].
    outcomes: [Counter; BatchOutcome::COUNT],
    /// `BATCH_REQUEST_STAGE_SECONDS{store,stage,result}`, indexed by stage then outcome.
    stages: [[Histogram; BatchOutcome::COUNT]; BatchStage::COUNT],
}

impl StoreMetrics {
    /// Resolves the handles of `store`'s series.
    pub(crate) fn new(store: &str) -> StoreMetrics {
        let s = || store.to_owned();
        let outcomes =
            BatchOutcome::ALL.map(|o| counter!(BATCH_OUTCOMES, labels::OUTCOME => o.label()));
        let stages = BatchStage::ALL.map(|stage| {
            BatchOutcome::ALL.map(|o| {
                histogram!(
                    BATCH_REQUEST_STAGE_SECONDS,
                    labels::STORE => s(),
                    labels::STAGE => stage.label(),
                    labels::RESULT => o.label()
                )
            })
        });
        StoreMetrics {
            store: store.to_owned(),
            request_seconds: CmdType::ALL.iter().map(|_| OnceLock::new()).collect(),
            batch_requests: histogram!(BATCH_REQUESTS, labels::STORE => s()),
            batch_wait: histogram!(BATCH_WAIT_SECONDS, labels::STORE => s()),
            batch_pending: histogram!(BATCH_PENDING_REQUESTS, labels::STORE => s()),
            batch_best_size: histogram!(BATCH_BEST_SIZE, labels::STORE => s()),
            batch_more: histogram!(BATCH_MORE_REQUESTS, labels::STORE => s()),
            inflight: gauge!(INFLIGHT_REQUESTS, labels::STORE => s()),
            reconnects: counter!(BATCH_RECONNECTS, labels::STORE => s()),
            outdated: counter!(OUTDATED_RESPONSES, labels::STORE => s()),
            no_available: counter!(NO_AVAILABLE_CONNECTION),
            wait_overload: counter!(BATCH_WAIT_OVERLOAD),
            window_holds: counter!(BATCH_WINDOW_HOLDS, labels::STORE => s()),
            outcomes,
            stages,
        }
    }

    /// The `REQUEST_SECONDS` handle of `cmd` at this store.
    pub(crate) fn request_seconds(&self, cmd: CmdType) -> Option<&Histogram> {
        let i = CmdType::ALL.iter().position(|c| *c == cmd)?;
        let slot = self.request_seconds.get(i)?;
        Some(slot.get_or_init(|| {
            histogram!(REQUEST_SECONDS, labels::STORE => self.store.clone(), labels::TYPE => cmd.name())
        }))
    }

    /// Counts one finished batch request.
    pub(crate) fn outcome(&self, outcome: BatchOutcome) -> &Counter {
        &self.outcomes[outcome.index()]
    }

    /// The duration histogram of `stage` ending with `outcome`.
    pub(crate) fn stage(&self, stage: BatchStage, outcome: BatchOutcome) -> &Histogram {
        &self.stages[stage.index()][outcome.index()]
    }
}
