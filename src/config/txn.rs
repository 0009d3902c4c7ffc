//! The PD client, local latch and pessimistic-transaction sections (client-go
//! `config/config.go`).

use std::time::Duration;

use tikv_layers::Error;

use super::{invalid, non_zero_duration, setters};

/// The PD client section (client-go `config.PDClient`, defaults from `DefaultPDClient()`).
#[doc(alias = "PDClient")]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PdClientConfig {
    /// The longest the client waits for a PD response (client-go `PDServerTimeout`, seconds
    /// there; default 3 s). Must not be zero.
    pub pd_server_timeout: Duration,
    /// Whether PD followers may answer region reads (get/prev region, region by id,
    /// scan and batch-scan regions), spreading them round robin over the leader and the
    /// followers. It mirrors the PD client's `EnableFollowerHandle` option, which TiDB
    /// turns on and client-go leaves off; default `false`.
    pub enable_follower_handle: bool,
}

impl Default for PdClientConfig {
    fn default() -> Self {
        PdClientConfig {
            pd_server_timeout: Duration::from_secs(3),
            enable_follower_handle: false,
        }
    }
}

setters!(PdClientConfig {
    /// Sets [`pd_server_timeout`](Self::pd_server_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pd = tikv::config::PdClientConfig::default()
    ///     .with_pd_server_timeout(Duration::from_secs(10));
    /// assert_eq!(pd.pd_server_timeout, Duration::from_secs(10));
    /// ```
    with_pd_server_timeout => pd_server_timeout: Duration;
    /// Sets [`enable_follower_handle`](Self::enable_follower_handle).
    with_enable_follower_handle => enable_follower_handle: bool;
});

impl PdClientConfig {
    /// Checks this section (client-go `PDClient.Valid`): `pd_server_timeout` must not be zero.
    pub fn validate(&self) -> Result<(), Error> {
        non_zero_duration("pd_client.pd_server_timeout", self.pd_server_timeout)
    }
}

/// In-process latches that serialize this client's optimistic transactions on the same keys
/// before they reach TiKV (client-go `config.TxnLocalLatches`; default disabled, capacity 0).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TxnLocalLatches {
    /// Whether the latches are used (client-go `Enabled`, default `false`).
    pub enabled: bool,
    /// Number of latch slots (client-go `Capacity`, default 0). Must be greater than 0 when
    /// enabled.
    pub capacity: usize,
}

setters!(TxnLocalLatches {
    /// Sets [`enabled`](Self::enabled).
    with_enabled => enabled: bool;
    /// Sets [`capacity`](Self::capacity).
    with_capacity => capacity: usize;
});

impl TxnLocalLatches {
    /// Enabled latches with `capacity` slots.
    ///
    /// ```
    /// let latches = tikv::config::TxnLocalLatches::enabled_with_capacity(1024);
    /// assert!(latches.enabled);
    /// assert_eq!(latches.capacity, 1024);
    /// ```
    pub fn enabled_with_capacity(capacity: usize) -> Self {
        TxnLocalLatches {
            enabled: true,
            capacity,
        }
    }

    /// Checks this section (client-go `TxnLocalLatches.Valid`): when enabled, `capacity`
    /// must be greater than 0.
    pub fn validate(&self) -> Result<(), Error> {
        if self.enabled && self.capacity == 0 {
            return Err(invalid(
                "txn_local_latches.capacity",
                "must be greater than 0 when latches are enabled",
            ));
        }
        Ok(())
    }
}

/// The pessimistic-transaction section; carried for the caller, not read by the client
/// (client-go `config.PessimisticTxn`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct PessimisticTxn {
    /// Most retries of one statement in a pessimistic transaction (client-go
    /// `MaxRetryCount`, default 0).
    pub max_retry_count: u32,
}

setters!(PessimisticTxn {
    /// Sets [`max_retry_count`](Self::max_retry_count).
    with_max_retry_count => max_retry_count: u32;
});
