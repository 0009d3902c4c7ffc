//! The "turbo" batch trigger: whether the send loop waits a little for more requests before
//! sending a batch (TP-12), from client-go's `internal/client/client_batch.go`
//! `turboBatchTrigger`.

use std::time::Duration;

use crate::config::{BatchPolicy, TurboBatchOptions, TurboBatchStrategy};

/// The stateful decision rule of a [`BatchPolicy`] (client-go `turboBatchTrigger`).
#[derive(Debug, Clone)]
pub struct TurboBatchTrigger {
    opts: TurboBatchOptions,
    est_fetch_more_prob: f64,
    est_arrival_interval: f64,
    max_arrival_interval: f64,
}

impl TurboBatchTrigger {
    /// A trigger for `policy` (client-go `newTurboBatchTriggerFromPolicy`; the policy was
    /// validated when the config was built, so there is no fallback case here).
    pub fn new(policy: &BatchPolicy) -> Self {
        Self::from_options(policy.turbo_options())
    }

    /// A trigger with explicit options.
    pub fn from_options(opts: TurboBatchOptions) -> Self {
        TurboBatchTrigger {
            opts,
            est_fetch_more_prob: 0.0,
            est_arrival_interval: 0.0,
            max_arrival_interval: 0.0,
        }
    }

    /// The options in use.
    pub fn options(&self) -> &TurboBatchOptions {
        &self.opts
    }

    /// The longest extra wait for a batch; zero means the trigger never waits.
    pub fn turbo_wait_time(&self) -> Duration {
        self.opts.wait
    }

    /// The smoothed arrival interval estimate, in seconds (time-based strategy).
    pub fn est_arrival_interval(&self) -> f64 {
        self.est_arrival_interval
    }

    /// The cap applied to arrival intervals, in seconds (time-based strategy; 0 until the
    /// first sample).
    pub fn max_arrival_interval(&self) -> f64 {
        self.max_arrival_interval
    }

    /// Feeds the interval between the last two request arrivals and answers whether to
    /// wait for more requests (client-go `needFetchMore`).
    pub fn need_fetch_more(&mut self, arrival_interval: Duration) -> bool {
        let wait = self.opts.wait.as_secs_f64();
        match self.opts.strategy {
            TurboBatchStrategy::TimeBased => {
                let mut this = arrival_interval.as_secs_f64();
                if self.max_arrival_interval == 0.0 {
                    self.max_arrival_interval = wait * f64::from(self.opts.max_arrival_factor);
                }
                if this > self.max_arrival_interval {
                    this = self.max_arrival_interval;
                }
                if self.est_arrival_interval == 0.0 {
                    self.est_arrival_interval = this;
                } else {
                    self.est_arrival_interval = self.opts.smoothing * this
                        + (1.0 - self.opts.smoothing) * self.est_arrival_interval;
                }
                self.est_arrival_interval < wait * self.opts.threshold
            }
            TurboBatchStrategy::ProbBased => {
                let this = if arrival_interval.as_secs_f64() < wait {
                    1.0
                } else {
                    0.0
                };
                self.est_fetch_more_prob = self.opts.smoothing * this
                    + (1.0 - self.opts.smoothing) * self.est_fetch_more_prob;
                self.est_fetch_more_prob > self.opts.threshold
            }
            TurboBatchStrategy::Always => true,
        }
    }

    /// How many entries to wait for, from the running average batch size (client-go
    /// `preferredBatchWaitSize`): the configured `default_size` for the always-wait
    /// strategy, else the integer part of the average, plus one when its fractional part
    /// reaches `size_rounding`.
    pub fn preferred_batch_wait_size(
        &self,
        avg_batch_wait_size: f64,
        default_size: usize,
    ) -> usize {
        if self.opts.strategy == TurboBatchStrategy::Always {
            return default_size;
        }
        let whole = avg_batch_wait_size.trunc();
        let frac = avg_batch_wait_size - whole;
        // Batch sizes are small non-negative numbers; the cast saturates on nonsense.
        let mut n = whole.max(0.0) as usize;
        if frac >= self.opts.size_rounding {
            n += 1;
        }
        n
    }
}
