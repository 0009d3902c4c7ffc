//! Request-unit (RU) accounting, RU v2 in particular.
//!
//! TiKV reports what a request cost it as raw counters in the `ru_v2` block of
//! [`kvrpcpb::ExecDetailsV2`] (cache misses, processed keys, coprocessor iterations, ...).
//! The client turns those counters into one weighted, scaled RU value with a table of
//! coefficients, [`RuV2Weights`], and accumulates both the value and the raw counters in a
//! per-statement [`RuDetails`] that the caller owns.
//!
//! This is client-go's `util.RUDetails` (`util/execdetails.go`), the
//! `RUV2TiKVConfig` weights (`config/client.go`), the folding function
//! `UpdateTiKVRUV2FromExecDetailsV2` (`config/ruv2.go`) and the per-chunk charging of
//! `tikvrpc.CopStreamResponse.Recv` (`tikvrpc/tikvrpc.go`), which [`RuChargedStream`]
//! reproduces for coprocessor streams.
//!
//! It lives in `tikv-layers` because request-path code charges responses as they arrive;
//! `tikv::config` re-exports [`RuV2Weights`] as the RU v2 section of the client config.
//!
//! # Sharing
//!
//! client-go finds the `RUDetails` through the request's `context.Context`. Here the caller
//! creates an `Arc<RuDetails>`, hands a clone to the request path, and reads it back
//! afterwards. Every method takes `&self`: scalar values are atomics, and the raw counters sit
//! behind a `std::sync::Mutex` that is only held for a copy or an add, never across an
//! `.await`.
//!
//! ```
//! use std::sync::Arc;
//! use tikv_layers::ru::{RuDetails, RuV2Weights, update_tikv_ru_v2_from_exec_details_v2};
//! use tikv_proto::kvrpcpb::{ExecDetailsV2, Ruv2};
//!
//! let details = Arc::new(RuDetails::new());
//! let mut exec = ExecDetailsV2 {
//!     ru_v2: Some(Ruv2 { storage_processed_keys_get: 10, ..Default::default() }),
//!     ..Default::default()
//! };
//! // The request path charges one read RPC and the server-reported counters.
//! update_tikv_ru_v2_from_exec_details_v2(&details, &RuV2Weights::default(), &mut exec, 1, 0);
//! assert!(details.tikv_ru_v2() > 0.0);
//! let raw = details.drain_ru_v2().expect("counters were charged");
//! assert_eq!(raw.read_rpc_count, 1);
//! assert!(details.drain_ru_v2().is_none());
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project::pin_project;
use tikv_proto::{coprocessor, kvrpcpb, resource_manager};

use crate::error::{Error, ErrorDetail};
use crate::request::ResponseStream;

// ===== weights =====

/// Coefficients that turn TiKV's raw RU v2 counters into one RU value (client-go
/// `config.RUV2TiKVConfig`, the `TiKVClient.RUV2` config section; defaults from
/// `DefaultRUV2TiKVConfig`).
///
/// The weighted sum of the counters is multiplied by [`ru_scale`](Self::ru_scale). The default
/// coefficients were fitted by the TiKV/TiDB authors so that RU v2 stays close to the legacy
/// RU v1 numbers; change them only together with the server side.
///
/// ```
/// use tikv_layers::ru::RuV2Weights;
///
/// let w = RuV2Weights::default().with_ru_scale(1.0);
/// assert_eq!(w.ru_scale, 1.0);
/// assert_eq!(w.tikv_storage_processed_keys_get, 0.01416829);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RuV2Weights {
    /// Final multiplier applied to the weighted sum (client-go `RUScale`, default 2.10).
    pub ru_scale: f64,
    /// Weight of `kv_engine_cache_miss` (client-go `TiKVKVEngineCacheMiss`, default 0.45975389).
    pub tikv_kv_engine_cache_miss: f64,
    /// Weight of `write_rpc_count` (client-go `ResourceManagerWriteCntTiKV`, default
    /// 0.09642181).
    pub resource_manager_write_cnt_tikv: f64,
    /// Weight of the sum of every `executor_inputs` counter (client-go `ExecutorInputs`,
    /// default 0.00003150).
    pub executor_inputs: f64,
    /// Weight of `coprocessor_executor_iterations` (client-go
    /// `TiKVCoprocessorExecutorIterations`, default 0.05775369).
    pub tikv_coprocessor_executor_iterations: f64,
    /// Weight of `coprocessor_response_bytes` (client-go `TiKVCoprocessorResponseBytes`,
    /// default 0.00000087).
    pub tikv_coprocessor_response_bytes: f64,
    /// Weight of `raftstore_store_write_trigger_wb_bytes` (client-go
    /// `TiKVRaftstoreStoreWriteTriggerWB`, default 0.00006100).
    pub tikv_raftstore_store_write_trigger_wb: f64,
    /// Weight of `storage_processed_keys_batch_get` (client-go
    /// `TiKVStorageProcessedKeysBatchGet`, default 0.00266791).
    pub tikv_storage_processed_keys_batch_get: f64,
    /// Weight of `storage_processed_keys_get` (client-go `TiKVStorageProcessedKeysGet`,
    /// default 0.01416829).
    pub tikv_storage_processed_keys_get: f64,
}

impl Default for RuV2Weights {
    /// client-go's `DefaultRUV2TiKVConfig()`.
    fn default() -> Self {
        RuV2Weights {
            ru_scale: 2.10,
            tikv_kv_engine_cache_miss: 0.459_753_89,
            resource_manager_write_cnt_tikv: 0.096_421_81,
            executor_inputs: 0.000_031_50,
            tikv_coprocessor_executor_iterations: 0.057_753_69,
            tikv_coprocessor_response_bytes: 0.000_000_87,
            tikv_raftstore_store_write_trigger_wb: 0.000_061_00,
            tikv_storage_processed_keys_batch_get: 0.002_667_91,
            tikv_storage_processed_keys_get: 0.014_168_29,
        }
    }
}

macro_rules! weight_setters {
    ($($(#[$doc:meta])* $setter:ident => $field:ident;)*) => {
        impl RuV2Weights {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $setter(mut self, value: f64) -> Self {
                    self.$field = value;
                    self
                }
            )*

            /// Each weight with the config path that names it, for validation messages.
            fn named(&self) -> [(&'static str, f64); 9] {
                [$((concat!("tikv_client.ru_v2.", stringify!($field)), self.$field)),*]
            }
        }
    };
}

weight_setters! {
    /// Sets [`ru_scale`](Self::ru_scale).
    with_ru_scale => ru_scale;
    /// Sets [`tikv_kv_engine_cache_miss`](Self::tikv_kv_engine_cache_miss).
    with_tikv_kv_engine_cache_miss => tikv_kv_engine_cache_miss;
    /// Sets [`resource_manager_write_cnt_tikv`](Self::resource_manager_write_cnt_tikv).
    with_resource_manager_write_cnt_tikv => resource_manager_write_cnt_tikv;
    /// Sets [`executor_inputs`](Self::executor_inputs).
    with_executor_inputs => executor_inputs;
    /// Sets [`tikv_coprocessor_executor_iterations`](Self::tikv_coprocessor_executor_iterations).
    with_tikv_coprocessor_executor_iterations => tikv_coprocessor_executor_iterations;
    /// Sets [`tikv_coprocessor_response_bytes`](Self::tikv_coprocessor_response_bytes).
    with_tikv_coprocessor_response_bytes => tikv_coprocessor_response_bytes;
    /// Sets [`tikv_raftstore_store_write_trigger_wb`](Self::tikv_raftstore_store_write_trigger_wb).
    with_tikv_raftstore_store_write_trigger_wb => tikv_raftstore_store_write_trigger_wb;
    /// Sets [`tikv_storage_processed_keys_batch_get`](Self::tikv_storage_processed_keys_batch_get).
    with_tikv_storage_processed_keys_batch_get => tikv_storage_processed_keys_batch_get;
    /// Sets [`tikv_storage_processed_keys_get`](Self::tikv_storage_processed_keys_get).
    with_tikv_storage_processed_keys_get => tikv_storage_processed_keys_get;
}

impl RuV2Weights {
    /// Checks that every weight is a finite, non-negative number.
    ///
    /// client-go does not check the weights; a NaN or negative weight would silently make
    /// every charged RU value meaningless, so this client rejects it. The error is
    /// [`ErrorDetail::InvalidConfig`] with `field` set to `tikv_client.ru_v2.<weight>`.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, value) in self.named() {
            if !value.is_finite() || value < 0.0 {
                return Err(ErrorDetail::InvalidConfig {
                    field,
                    reason: format!("must be a finite number >= 0, got {value}"),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The unscaled weighted sum of `ru`'s counters (read RPCs carry no weight).
    fn weighted_sum(&self, ru: &kvrpcpb::Ruv2) -> f64 {
        let exec_inputs = ru.executor_inputs.as_ref().map_or(0u64, |i| {
            [
                i.tikv_coprocessor_executor_work_total_batch_index_scan,
                i.tikv_coprocessor_executor_work_total_batch_table_scan,
                i.tikv_coprocessor_executor_work_total_batch_selection,
                i.tikv_coprocessor_executor_work_total_batch_top_n,
                i.tikv_coprocessor_executor_work_total_batch_limit,
                i.tikv_coprocessor_executor_work_total_batch_simple_aggr,
                i.tikv_coprocessor_executor_work_total_batch_fast_hash_aggr,
            ]
            .into_iter()
            .fold(0u64, u64::saturating_add)
        });
        ru.kv_engine_cache_miss as f64 * self.tikv_kv_engine_cache_miss
            + exec_inputs as f64 * self.executor_inputs
            + ru.coprocessor_executor_iterations as f64 * self.tikv_coprocessor_executor_iterations
            + ru.coprocessor_response_bytes as f64 * self.tikv_coprocessor_response_bytes
            + ru.raftstore_store_write_trigger_wb_bytes as f64
                * self.tikv_raftstore_store_write_trigger_wb
            + ru.storage_processed_keys_batch_get as f64
                * self.tikv_storage_processed_keys_batch_get
            + ru.storage_processed_keys_get as f64 * self.tikv_storage_processed_keys_get
            + ru.write_rpc_count as f64 * self.resource_manager_write_cnt_tikv
    }
}

// ===== RuDetails =====

/// An `f64` updated atomically (bit pattern stored in an `AtomicU64`).
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }

    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn add(&self, delta: f64) {
        // The closure never returns `None`, so `fetch_update` cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }
}

/// Per-statement request-unit accounting (client-go `util.RUDetails`).
///
/// Holds the read/write RU and RU wait time reported by the resource-control path, the
/// TiFlash share of them, the weighted TiKV RU v2 value, and the raw TiKV RU v2 counters
/// received since the last [`drain_ru_v2`](Self::drain_ru_v2). Share it as `Arc<RuDetails>`:
/// every method takes `&self` and is safe to call from many tasks at once.
///
/// `Clone` takes a snapshot (client-go `Clone`); the copy no longer shares state with the
/// original.
#[derive(Default)]
pub struct RuDetails {
    read_ru: AtomicF64,
    write_ru: AtomicF64,
    ru_wait_nanos: AtomicU64,
    tiflash_ru: AtomicF64,
    tikv_ru_v2: AtomicF64,
    /// Raw counters since the last drain; `None` when nothing arrived.
    raw_ru_v2: Mutex<Option<kvrpcpb::Ruv2>>,
}

impl RuDetails {
    /// An empty accumulator (client-go `NewRUDetails`).
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator starting from the given read RU, write RU and RU wait time (client-go
    /// `NewRUDetailsWith`, used by callers' tests).
    pub fn with_values(rru: f64, wru: f64, wait: Duration) -> Self {
        RuDetails {
            read_ru: AtomicF64::new(rru),
            write_ru: AtomicF64::new(wru),
            ru_wait_nanos: AtomicU64::new(duration_nanos(wait)),
            ..Self::default()
        }
    }

    /// Read request units so far (client-go `RRU`).
    pub fn rru(&self) -> f64 {
        self.read_ru.load()
    }

    /// Write request units so far (client-go `WRU`).
    pub fn wru(&self) -> f64 {
        self.write_ru.load()
    }

    /// Total time spent waiting for RU tokens (client-go `RUWaitDuration`).
    pub fn ru_wait_duration(&self) -> Duration {
        Duration::from_nanos(self.ru_wait_nanos.load(Ordering::Relaxed))
    }

    /// The TiFlash part (read + write) of the RU so far (client-go `TiflashRU`).
    pub fn tiflash_ru(&self) -> f64 {
        self.tiflash_ru.load()
    }

    /// The weighted, scaled TiKV RU v2 value so far (client-go `TiKVRUV2`).
    pub fn tikv_ru_v2(&self) -> f64 {
        self.tikv_ru_v2.load()
    }

    /// Adds an already scaled delta to the TiKV RU v2 value (client-go `AddTiKVRUV2`).
    /// A zero delta is ignored.
    pub fn add_tikv_ru_v2(&self, delta: f64) {
        if delta != 0.0 {
            self.tikv_ru_v2.add(delta);
        }
    }

    /// Adds raw TiKV RU v2 counters to the pending set (client-go `AddRUV2`).
    pub fn add_ru_v2(&self, delta: &kvrpcpb::Ruv2) {
        let mut raw = self.raw();
        match raw.as_mut() {
            Some(acc) => merge_ru_v2(acc, delta),
            None => *raw = Some(*delta),
        }
    }

    /// Takes the raw TiKV RU v2 counters accumulated since the previous drain and resets
    /// them (client-go `DrainRUV2`). Returns `None` when nothing arrived in between, so a
    /// second drain right after the first returns `None`.
    pub fn drain_ru_v2(&self) -> Option<kvrpcpb::Ruv2> {
        self.raw().take()
    }

    /// Adds a resource-manager consumption report and the time waited for tokens
    /// (client-go `Update`).
    pub fn update(&self, consumption: &resource_manager::Consumption, wait: Duration) {
        self.read_ru.add(consumption.r_r_u);
        self.write_ru.add(consumption.w_r_u);
        self.add_wait(duration_nanos(wait));
    }

    /// Adds a TiFlash consumption report: counted in read/write RU and in the TiFlash share
    /// (client-go `UpdateTiFlash`).
    pub fn update_tiflash(&self, consumption: &resource_manager::Consumption) {
        self.read_ru.add(consumption.r_r_u);
        self.write_ru.add(consumption.w_r_u);
        self.tiflash_ru.add(consumption.r_r_u + consumption.w_r_u);
    }

    /// Adds everything `other` holds to `self`; `other` is left unchanged (client-go
    /// `Merge`). Its raw counters are copied, not drained.
    pub fn merge(&self, other: &RuDetails) {
        self.read_ru.add(other.read_ru.load());
        self.write_ru.add(other.write_ru.load());
        self.add_wait(other.ru_wait_nanos.load(Ordering::Relaxed));
        self.tiflash_ru.add(other.tiflash_ru.load());
        self.tikv_ru_v2.add(other.tikv_ru_v2.load());
        // Copy first so the two locks are never held together.
        let other_raw = *other.raw();
        if let Some(delta) = other_raw {
            self.add_ru_v2(&delta);
        }
    }

    fn add_wait(&self, nanos: u64) {
        let _ = self
            .ru_wait_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(nanos))
            });
    }

    /// The raw-counter lock. A panic while holding it cannot leave the counters torn
    /// (every update is a plain add), so a poisoned lock is simply reused.
    fn raw(&self) -> MutexGuard<'_, Option<kvrpcpb::Ruv2>> {
        self.raw_ru_v2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clone for RuDetails {
    fn clone(&self) -> Self {
        RuDetails {
            read_ru: AtomicF64::new(self.read_ru.load()),
            write_ru: AtomicF64::new(self.write_ru.load()),
            ru_wait_nanos: AtomicU64::new(self.ru_wait_nanos.load(Ordering::Relaxed)),
            tiflash_ru: AtomicF64::new(self.tiflash_ru.load()),
            tikv_ru_v2: AtomicF64::new(self.tikv_ru_v2.load()),
            raw_ru_v2: Mutex::new(*self.raw()),
        }
    }
}

impl fmt::Debug for RuDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuDetails")
            .field("rru", &self.rru())
            .field("wru", &self.wru())
            .field("ru_wait_duration", &self.ru_wait_duration())
            .field("tiflash_ru", &self.tiflash_ru())
            .field("tikv_ru_v2", &self.tikv_ru_v2())
            .field("raw_ru_v2", &*self.raw())
            .finish()
    }
}

impl fmt::Display for RuDetails {
    /// The summary client-go prints: read RU, write RU and wait time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RRU:{:.6}, WRU:{:.6}, WaitDuration:{:?}",
            self.rru(),
            self.wru(),
            self.ru_wait_duration()
        )
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Adds every counter of `src` to `dst`, creating `dst`'s executor-inputs block on demand.
fn merge_ru_v2(dst: &mut kvrpcpb::Ruv2, src: &kvrpcpb::Ruv2) {
    fn add(d: &mut u64, s: u64) {
        *d = d.saturating_add(s);
    }
    add(&mut dst.kv_engine_cache_miss, src.kv_engine_cache_miss);
    add(
        &mut dst.coprocessor_executor_iterations,
        src.coprocessor_executor_iterations,
    );
    add(
        &mut dst.coprocessor_response_bytes,
        src.coprocessor_response_bytes,
    );
    add(
        &mut dst.raftstore_store_write_trigger_wb_bytes,
        src.raftstore_store_write_trigger_wb_bytes,
    );
    add(
        &mut dst.storage_processed_keys_batch_get,
        src.storage_processed_keys_batch_get,
    );
    add(
        &mut dst.storage_processed_keys_get,
        src.storage_processed_keys_get,
    );
    add(&mut dst.read_rpc_count, src.read_rpc_count);
    add(&mut dst.write_rpc_count, src.write_rpc_count);
    if let Some(s) = &src.executor_inputs {
        let d = dst.executor_inputs.get_or_insert_with(Default::default);
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_index_scan,
            s.tikv_coprocessor_executor_work_total_batch_index_scan,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_table_scan,
            s.tikv_coprocessor_executor_work_total_batch_table_scan,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_selection,
            s.tikv_coprocessor_executor_work_total_batch_selection,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_top_n,
            s.tikv_coprocessor_executor_work_total_batch_top_n,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_limit,
            s.tikv_coprocessor_executor_work_total_batch_limit,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_simple_aggr,
            s.tikv_coprocessor_executor_work_total_batch_simple_aggr,
        );
        add(
            &mut d.tikv_coprocessor_executor_work_total_batch_fast_hash_aggr,
            s.tikv_coprocessor_executor_work_total_batch_fast_hash_aggr,
        );
    }
}

// ===== folding a response into RuDetails =====

/// Charges the RU v2 block of one TiKV response to `ru_details` (client-go
/// `config.UpdateTiKVRUV2FromExecDetailsV2`).
///
/// Does nothing when `details` has no `ru_v2` block. Otherwise:
///
/// 1. the client-side RPC counts are written into the response's own block
///    (`read_rpc_count += read_rpc_count`, `write_rpc_count += write_rpc_count`), so whoever
///    reads the response afterwards sees them too; TiKV does not count RPCs itself;
/// 2. the (patched) raw counters are added to `ru_details`' pending set;
/// 3. the weighted sum of the counters, times [`RuV2Weights::ru_scale`], is added to
///    [`RuDetails::tikv_ru_v2`]. Read RPCs carry no weight; write RPCs do.
///
/// Returns the scaled RU v2 delta that was added (0 when nothing was charged).
///
/// client-go reads the weights from its process-wide config; here the caller passes them
/// (normally `config.tikv_client.ru_v2`).
#[doc(alias = "UpdateTiKVRUV2FromExecDetailsV2")]
pub fn update_tikv_ru_v2_from_exec_details_v2(
    ru_details: &RuDetails,
    weights: &RuV2Weights,
    details: &mut kvrpcpb::ExecDetailsV2,
    read_rpc_count: u64,
    write_rpc_count: u64,
) -> f64 {
    let Some(ru) = details.ru_v2.as_mut() else {
        return 0.0;
    };
    ru.read_rpc_count = ru.read_rpc_count.saturating_add(read_rpc_count);
    ru.write_rpc_count = ru.write_rpc_count.saturating_add(write_rpc_count);
    ru_details.add_ru_v2(ru);
    let sum = weights.weighted_sum(ru);
    if sum == 0.0 {
        return 0.0;
    }
    let delta = sum * weights.ru_scale;
    ru_details.add_tikv_ru_v2(delta);
    delta
}

// ===== coprocessor stream adapter =====

/// A coprocessor response stream that charges each received chunk's RU v2 details
/// (client-go `tikvrpc.CopStreamResponse.Recv`).
///
/// For every `Ok(response)` item that carries `exec_details_v2.ru_v2`, the adapter calls
/// [`update_tikv_ru_v2_from_exec_details_v2`] before yielding the response, unless the stream
/// is marked RU-bypass ([`with_bypass`](Self::with_bypass), for requests that resource control
/// does not account) or no [`RuDetails`] is attached. With
/// [`with_count_rpc`](Self::with_count_rpc) the first received chunk is also stamped with one
/// read RPC: a whole stream counts as one RPC. The stamp is consumed by the first chunk even
/// on a bypass stream, where it is then not written, as in client-go. Errors pass through
/// unchanged.
///
/// ```
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use futures_core::Stream;
/// use tikv_layers::ru::{RuChargedStream, RuDetails, RuV2Weights};
/// use tikv_proto::{coprocessor, kvrpcpb};
/// # struct Chunks(Vec<Result<coprocessor::Response, tikv_layers::Error>>);
/// # impl Stream for Chunks {
/// #     type Item = Result<coprocessor::Response, tikv_layers::Error>;
/// #     fn poll_next(
/// #         mut self: Pin<&mut Self>,
/// #         _: &mut std::task::Context<'_>,
/// #     ) -> std::task::Poll<Option<Self::Item>> {
/// #         std::task::Poll::Ready(self.0.pop())
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let chunk = coprocessor::Response {
///     exec_details_v2: Some(kvrpcpb::ExecDetailsV2 {
///         ru_v2: Some(kvrpcpb::Ruv2 { storage_processed_keys_get: 2, ..Default::default() }),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// let ru = Arc::new(RuDetails::new());
/// // `Chunks` stands for the transport's stream of `Result<coprocessor::Response, Error>`.
/// let mut stream = RuChargedStream::new(Chunks(vec![Ok(chunk)]), RuV2Weights::default())
///     .with_ru_details(ru.clone())
///     .with_count_rpc(true);
/// let got = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await.unwrap().unwrap();
/// assert_eq!(got.exec_details_v2.unwrap().ru_v2.unwrap().read_rpc_count, 1);
/// assert!(ru.tikv_ru_v2() > 0.0);
/// # }
/// ```
#[pin_project]
pub struct RuChargedStream<S> {
    #[pin]
    inner: S,
    weights: RuV2Weights,
    ru_details: Option<Arc<RuDetails>>,
    bypass: bool,
    count_rpc: bool,
}

impl<S> RuChargedStream<S> {
    /// Wraps `inner`; charges nothing until an [`RuDetails`] is attached.
    pub fn new(inner: S, weights: RuV2Weights) -> Self {
        RuChargedStream {
            inner,
            weights,
            ru_details: None,
            bypass: false,
            count_rpc: false,
        }
    }

    /// Attaches the accumulator received chunks are charged to (client-go: the
    /// `RUDetails` in the stream's context).
    #[must_use]
    pub fn with_ru_details(mut self, ru_details: Arc<RuDetails>) -> Self {
        self.ru_details = Some(ru_details);
        self
    }

    /// Marks the stream as RU-bypass: chunks are passed through uncharged (client-go
    /// `CopStreamResponse.Bypass`, set from the request's resource-control info).
    #[must_use]
    pub fn with_bypass(mut self, bypass: bool) -> Self {
        self.bypass = bypass;
        self
    }

    /// Makes the first received chunk count one read RPC (client-go
    /// `CopStreamResponse.CountRPC`, which the sender sets for every new stream).
    #[must_use]
    pub fn with_count_rpc(mut self, count_rpc: bool) -> Self {
        self.count_rpc = count_rpc;
        self
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> RuChargedStream<S>
where
    S: Stream<Item = Result<coprocessor::Response, Error>> + Send + 'static,
{
    /// Boxes the adapter into the envelope's stream type.
    pub fn into_response_stream(self) -> ResponseStream<coprocessor::Response> {
        ResponseStream::new(self)
    }
}

impl<S> Stream for RuChargedStream<S>
where
    S: Stream<Item = Result<coprocessor::Response, Error>>,
{
    type Item = Result<coprocessor::Response, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let mut item = match this.inner.poll_next(cx) {
            Poll::Ready(Some(item)) => item,
            other => return other,
        };
        if let Ok(resp) = &mut item {
            let read_rpc_count = u64::from(std::mem::take(this.count_rpc));
            if !*this.bypass
                && let (Some(ru), Some(details)) =
                    (this.ru_details.as_deref(), resp.exec_details_v2.as_mut())
            {
                update_tikv_ru_v2_from_exec_details_v2(
                    ru,
                    this.weights,
                    details,
                    read_rpc_count,
                    0,
                );
            }
        }
        Poll::Ready(Some(item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> fmt::Debug for RuChargedStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuChargedStream")
            .field("weights", &self.weights)
            .field("ru_details", &self.ru_details)
            .field("bypass", &self.bypass)
            .field("count_rpc", &self.count_rpc)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::poll_fn;

    fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        let mut fut = poll_fn(|cx| Pin::new(&mut *s).poll_next(cx));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("test stream is always ready"),
        }
    }

    use std::future::Future;

    /// A stream over a fixed list of items, always ready.
    struct Iter<T>(std::collections::VecDeque<T>);

    impl<T: Unpin> Stream for Iter<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn iter<T>(items: Vec<T>) -> Iter<T> {
        Iter(items.into())
    }

    // client-go: T-CONFIG-014 TestUpdateTiKVRUV2FromExecDetailsV2
    #[test]
    fn update_tikv_ru_v2_from_exec_details_v2_charges_weighted_value() {
        let weights = RuV2Weights::default();
        let ru_details = RuDetails::new();
        let mut details = kvrpcpb::ExecDetailsV2 {
            ru_v2: Some(kvrpcpb::Ruv2 {
                kv_engine_cache_miss: 43,
                executor_inputs: Some(kvrpcpb::ExecutorInputs {
                    tikv_coprocessor_executor_work_total_batch_selection: 53,
                    tikv_coprocessor_executor_work_total_batch_top_n: 59,
                    ..Default::default()
                }),
                coprocessor_executor_iterations: 61,
                coprocessor_response_bytes: 67,
                raftstore_store_write_trigger_wb_bytes: 71,
                storage_processed_keys_batch_get: 73,
                storage_processed_keys_get: 79,
                write_rpc_count: 31,
                ..Default::default()
            }),
            ..Default::default()
        };

        update_tikv_ru_v2_from_exec_details_v2(&ru_details, &weights, &mut details, 0, 0);

        assert!((ru_details.tikv_ru_v2() - 57.967_220_01).abs() <= 1e-9);
        let drained = ru_details.drain_ru_v2().expect("counters were charged");
        assert_eq!(drained.kv_engine_cache_miss, 43);
        let inputs = drained.executor_inputs.expect("executor inputs kept");
        assert_eq!(
            inputs.tikv_coprocessor_executor_work_total_batch_selection,
            53
        );
        assert_eq!(inputs.tikv_coprocessor_executor_work_total_batch_top_n, 59);
        assert_eq!(drained.write_rpc_count, 31);
        assert!(ru_details.drain_ru_v2().is_none());
    }

    // client-go: T-CONFIG-015 TestUpdateTiKVRUV2FromExecDetailsV2PatchesReadRPCCountInRawRUV2
    #[test]
    fn update_tikv_ru_v2_patches_read_rpc_count_in_raw_ru_v2() {
        let ru_details = RuDetails::new();
        let mut details = kvrpcpb::ExecDetailsV2 {
            ru_v2: Some(kvrpcpb::Ruv2 {
                storage_processed_keys_get: 7,
                ..Default::default()
            }),
            ..Default::default()
        };

        update_tikv_ru_v2_from_exec_details_v2(
            &ru_details,
            &RuV2Weights::default(),
            &mut details,
            1,
            0,
        );

        assert_eq!(details.ru_v2.as_ref().map(|r| r.read_rpc_count), Some(1));
        let drained = ru_details.drain_ru_v2().expect("counters were charged");
        assert_eq!(drained.read_rpc_count, 1);
        assert_eq!(drained.storage_processed_keys_get, 7);
    }

    fn cop_chunk() -> coprocessor::Response {
        coprocessor::Response {
            exec_details_v2: Some(kvrpcpb::ExecDetailsV2 {
                ru_v2: Some(kvrpcpb::Ruv2 {
                    kv_engine_cache_miss: 1,
                    storage_processed_keys_get: 2,
                    storage_processed_keys_batch_get: 3,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ru_of(resp: &coprocessor::Response) -> kvrpcpb::Ruv2 {
        resp.exec_details_v2
            .as_ref()
            .and_then(|d| d.ru_v2)
            .unwrap_or_default()
    }

    // client-go: T-RPC-006 TestCopStreamResponseRecvBypass
    #[test]
    fn cop_stream_recv_charges_unless_bypass() {
        // Subtest "charged stream updates tikv ruv2".
        {
            let ru_details = Arc::new(RuDetails::new());
            let mut stream = RuChargedStream::new(
                iter(vec![Ok::<_, Error>(cop_chunk())]),
                RuV2Weights::default(),
            )
            .with_ru_details(ru_details.clone())
            .with_count_rpc(true);
            let resp = next(&mut stream)
                .expect("one chunk")
                .expect("chunk is not an error");
            assert!(ru_details.tikv_ru_v2() > 0.0);
            let ru = ru_of(&resp);
            assert_eq!(ru.read_rpc_count, 1);
            assert_eq!(ru.storage_processed_keys_get, 2);
            assert_eq!(ru.storage_processed_keys_batch_get, 3);
            let drained = ru_details.drain_ru_v2().expect("counters were charged");
            assert_eq!(drained.read_rpc_count, 1);
            assert_eq!(drained.storage_processed_keys_get, 2);
            assert_eq!(drained.storage_processed_keys_batch_get, 3);
            assert!(ru_details.drain_ru_v2().is_none());
        }
        // Subtest "bypass stream skips tikv ruv2".
        {
            let ru_details = Arc::new(RuDetails::new());
            let mut stream = RuChargedStream::new(
                iter(vec![Ok::<_, Error>(cop_chunk())]),
                RuV2Weights::default(),
            )
            .with_ru_details(ru_details.clone())
            .with_bypass(true)
            .with_count_rpc(true);
            let resp = next(&mut stream)
                .expect("one chunk")
                .expect("chunk is not an error");
            assert_eq!(ru_details.tikv_ru_v2(), 0.0);
            let ru = ru_of(&resp);
            assert_eq!(ru.read_rpc_count, 0);
            assert_eq!(ru.storage_processed_keys_get, 2);
            assert_eq!(ru.storage_processed_keys_batch_get, 3);
            assert!(ru_details.drain_ru_v2().is_none());
        }
    }

    #[test]
    fn cop_stream_counts_the_rpc_once_and_passes_errors() {
        let ru_details = Arc::new(RuDetails::new());
        let mut stream = RuChargedStream::new(
            iter(vec![
                Ok(cop_chunk()),
                Err(Error::new(ErrorDetail::Canceled)),
                Ok(cop_chunk()),
                Ok(coprocessor::Response::default()),
            ]),
            RuV2Weights::default(),
        )
        .with_ru_details(ru_details.clone())
        .with_count_rpc(true);
        let first = next(&mut stream).expect("item").expect("ok");
        assert_eq!(ru_of(&first).read_rpc_count, 1);
        let err = next(&mut stream).expect("item").expect_err("error passes");
        assert!(matches!(err.detail(), ErrorDetail::Canceled));
        let second = next(&mut stream).expect("item").expect("ok");
        assert_eq!(ru_of(&second).read_rpc_count, 0);
        // A chunk without exec details is passed through untouched.
        let third = next(&mut stream).expect("item").expect("ok");
        assert!(third.exec_details_v2.is_none());
        assert!(next(&mut stream).is_none());
        let drained = ru_details.drain_ru_v2().expect("charged");
        assert_eq!(drained.read_rpc_count, 1);
        assert_eq!(drained.storage_processed_keys_get, 4);
        assert_eq!(drained.kv_engine_cache_miss, 2);
    }

    #[test]
    fn cop_stream_without_ru_details_charges_nothing() {
        let stream = RuChargedStream::new(
            iter(vec![Ok::<_, Error>(cop_chunk())]),
            RuV2Weights::default(),
        )
        .with_count_rpc(true);
        assert!(format!("{stream:?}").contains("RuChargedStream"));
        assert_eq!(stream.size_hint(), (0, None));
        let mut boxed = stream.into_response_stream();
        let resp = next(&mut boxed).expect("item").expect("ok");
        assert_eq!(ru_of(&resp).read_rpc_count, 0);
        let inner = RuChargedStream::new(
            iter(Vec::<Result<coprocessor::Response, Error>>::new()),
            RuV2Weights::default(),
        )
        .into_inner();
        assert!(inner.0.is_empty());
    }

    #[test]
    fn default_weights_match_client_go() {
        let w = RuV2Weights::default();
        assert_eq!(w.ru_scale, 2.10);
        assert_eq!(w.tikv_kv_engine_cache_miss, 0.45975389);
        assert_eq!(w.resource_manager_write_cnt_tikv, 0.09642181);
        assert_eq!(w.executor_inputs, 0.00003150);
        assert_eq!(w.tikv_coprocessor_executor_iterations, 0.05775369);
        assert_eq!(w.tikv_coprocessor_response_bytes, 0.00000087);
        assert_eq!(w.tikv_raftstore_store_write_trigger_wb, 0.00006100);
        assert_eq!(w.tikv_storage_processed_keys_batch_get, 0.00266791);
        assert_eq!(w.tikv_storage_processed_keys_get, 0.01416829);
        assert!(w.validate().is_ok());
    }

    #[test]
    fn weight_setters_and_validation() {
        let w = RuV2Weights::default()
            .with_ru_scale(1.0)
            .with_tikv_kv_engine_cache_miss(2.0)
            .with_resource_manager_write_cnt_tikv(3.0)
            .with_executor_inputs(4.0)
            .with_tikv_coprocessor_executor_iterations(5.0)
            .with_tikv_coprocessor_response_bytes(6.0)
            .with_tikv_raftstore_store_write_trigger_wb(7.0)
            .with_tikv_storage_processed_keys_batch_get(8.0)
            .with_tikv_storage_processed_keys_get(9.0);
        let values: Vec<f64> = w.named().iter().map(|(_, v)| *v).collect();
        assert_eq!(values, (1..=9).map(f64::from).collect::<Vec<_>>());
        assert!(w.validate().is_ok());

        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = RuV2Weights::default()
                .with_executor_inputs(bad)
                .validate()
                .expect_err("bad weight");
            match err.detail() {
                ErrorDetail::InvalidConfig { field, reason } => {
                    assert_eq!(*field, "tikv_client.ru_v2.executor_inputs");
                    assert!(reason.contains(">= 0"), "{reason}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn weighted_sum_counts_every_executor_input_and_ignores_read_rpcs() {
        let w = RuV2Weights::default()
            .with_executor_inputs(1.0)
            .with_ru_scale(1.0);
        let ru = kvrpcpb::Ruv2 {
            executor_inputs: Some(kvrpcpb::ExecutorInputs {
                tikv_coprocessor_executor_work_total_batch_index_scan: 1,
                tikv_coprocessor_executor_work_total_batch_table_scan: 2,
                tikv_coprocessor_executor_work_total_batch_selection: 4,
                tikv_coprocessor_executor_work_total_batch_top_n: 8,
                tikv_coprocessor_executor_work_total_batch_limit: 16,
                tikv_coprocessor_executor_work_total_batch_simple_aggr: 32,
                tikv_coprocessor_executor_work_total_batch_fast_hash_aggr: 64,
            }),
            read_rpc_count: 1000,
            ..Default::default()
        };
        assert_eq!(w.weighted_sum(&ru), 127.0);
    }

    #[test]
    fn no_ru_v2_block_or_zero_sum_charges_nothing() {
        let ru_details = RuDetails::new();
        let mut empty = kvrpcpb::ExecDetailsV2::default();
        let d = update_tikv_ru_v2_from_exec_details_v2(
            &ru_details,
            &RuV2Weights::default(),
            &mut empty,
            1,
            1,
        );
        assert_eq!(d, 0.0);
        assert!(empty.ru_v2.is_none());
        assert!(ru_details.drain_ru_v2().is_none());

        // Only read RPCs: raw counters recorded, no weighted value.
        let mut reads = kvrpcpb::ExecDetailsV2 {
            ru_v2: Some(kvrpcpb::Ruv2::default()),
            ..Default::default()
        };
        let d = update_tikv_ru_v2_from_exec_details_v2(
            &ru_details,
            &RuV2Weights::default(),
            &mut reads,
            2,
            0,
        );
        assert_eq!(d, 0.0);
        assert_eq!(ru_details.tikv_ru_v2(), 0.0);
        assert_eq!(ru_details.drain_ru_v2().map(|r| r.read_rpc_count), Some(2));

        // A write RPC carries weight.
        let mut writes = kvrpcpb::ExecDetailsV2 {
            ru_v2: Some(kvrpcpb::Ruv2::default()),
            ..Default::default()
        };
        let w = RuV2Weights::default();
        let d = update_tikv_ru_v2_from_exec_details_v2(&ru_details, &w, &mut writes, 0, 1);
        assert_eq!(d, w.resource_manager_write_cnt_tikv * w.ru_scale);
        assert_eq!(ru_details.tikv_ru_v2(), d);
    }

    #[test]
    fn ru_details_accumulates_merges_and_clones() {
        let a = RuDetails::with_values(1.0, 2.0, Duration::from_millis(3));
        assert_eq!(a.rru(), 1.0);
        assert_eq!(a.wru(), 2.0);
        assert_eq!(a.ru_wait_duration(), Duration::from_millis(3));
        assert_eq!(
            a.to_string(),
            "RRU:1.000000, WRU:2.000000, WaitDuration:3ms"
        );

        let c = resource_manager::Consumption {
            r_r_u: 10.0,
            w_r_u: 20.0,
            ..Default::default()
        };
        a.update(&c, Duration::from_millis(7));
        assert_eq!(a.rru(), 11.0);
        assert_eq!(a.wru(), 22.0);
        assert_eq!(a.ru_wait_duration(), Duration::from_millis(10));
        a.update_tiflash(&c);
        assert_eq!(a.rru(), 21.0);
        assert_eq!(a.tiflash_ru(), 30.0);
        a.add_tikv_ru_v2(1.5);
        a.add_tikv_ru_v2(0.0);
        assert_eq!(a.tikv_ru_v2(), 1.5);
        a.add_ru_v2(&kvrpcpb::Ruv2 {
            read_rpc_count: 1,
            executor_inputs: Some(kvrpcpb::ExecutorInputs {
                tikv_coprocessor_executor_work_total_batch_limit: 5,
                ..Default::default()
            }),
            ..Default::default()
        });

        let snapshot = a.clone();
        let b = RuDetails::new();
        b.add_ru_v2(&kvrpcpb::Ruv2 {
            read_rpc_count: 2,
            ..Default::default()
        });
        b.merge(&a);
        assert_eq!(b.rru(), 21.0);
        assert_eq!(b.wru(), 42.0);
        assert_eq!(b.ru_wait_duration(), Duration::from_millis(10));
        assert_eq!(b.tiflash_ru(), 30.0);
        assert_eq!(b.tikv_ru_v2(), 1.5);
        let raw = b.drain_ru_v2().expect("merged");
        assert_eq!(raw.read_rpc_count, 3);
        assert_eq!(
            raw.executor_inputs
                .map(|i| i.tikv_coprocessor_executor_work_total_batch_limit),
            Some(5)
        );
        // Merge copies; the source keeps its counters. The clone is independent.
        assert!(a.drain_ru_v2().is_some());
        assert!(snapshot.drain_ru_v2().is_some());
        assert!(format!("{snapshot:?}").contains("tikv_ru_v2"));
    }

    #[test]
    fn ru_details_is_shareable_across_threads() {
        let ru = Arc::new(RuDetails::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ru = ru.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        ru.add_tikv_ru_v2(1.0);
                        ru.add_ru_v2(&kvrpcpb::Ruv2 {
                            read_rpc_count: 1,
                            ..Default::default()
                        });
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(ru.tikv_ru_v2(), 4000.0);
        assert_eq!(ru.drain_ru_v2().map(|r| r.read_rpc_count), Some(4000));
    }
}
