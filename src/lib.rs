//! `tikv`: a TiKV client built as a tower middleware stack.
//!
//! Every request flows through a `tower::Service` pipeline (see `doc/architecture.md`);
//! each cross-cutting concern (routing, replica selection, retries, backoff, interceptors)
//! is a layer from [`tikv_layers`], and the pipeline ends in a tonic channel pool.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use tikv_layers as layers;
pub use tikv_proto as proto;

pub mod cluster;
pub mod codec;
pub mod config;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
pub mod oracle;
pub mod pd;
pub mod pipeline;
pub mod raw;
pub mod region_cache;
pub mod store_cache;
pub mod transport;
pub mod txn;
