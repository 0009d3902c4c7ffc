//! The delay schedule of one kind inside one backoffer (client-go's `newBackoffFn` and
//! `expo`), expressed as a `backoff::backoff::Backoff` policy.
//!
//! This is the only file that names the `backoff` crate: the schedule implements its
//! `Backoff` trait and the [`Backoffer`](super::Backoffer) drives it through that trait.
//! The budget, the kinds and the counters are not the crate's business.

use std::time::Duration;

use rand::Rng;
#[cfg(test)]
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::kind::Jitter;

pub(crate) use backoff::backoff::Backoff as BackoffPolicy;

/// The smallest base a schedule accepts; smaller ones are raised (client-go avoids an
/// empty random range this way).
const MIN_BASE_MS: u64 = 2;

/// The exponential, jittered delay sequence of one kind.
///
/// State is the number of completed sleeps (`attempts`) and the previous uncapped sleep
/// (`last_sleep`, the base at first). [`BackoffPolicy::next_backoff`] returns the next
/// delay and advances the state, as if that sleep completed; a caller whose sleep was cut
/// short rolls it back with [`Schedule::restore`] (client-go only advances on completion).
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    base: u64,
    cap: u64,
    jitter: Jitter,
    attempts: u32,
    last_sleep: u64,
    rng: SmallRng,
}

/// A schedule's progress, saved before a sleep and restored if the sleep is canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScheduleState {
    attempts: u32,
    last_sleep: u64,
}

impl Schedule {
    /// A schedule with the given parameters, drawing from `rng`.
    pub(crate) fn new(base_ms: u64, cap_ms: u64, jitter: Jitter, rng: SmallRng) -> Schedule {
        let base = base_ms.max(MIN_BASE_MS);
        Schedule {
            base,
            cap: cap_ms,
            jitter,
            attempts: 0,
            last_sleep: base,
            rng,
        }
    }

    /// A schedule seeded deterministically.
    #[cfg(test)]
    pub(crate) fn seeded(base_ms: u64, cap_ms: u64, jitter: Jitter, seed: u64) -> Schedule {
        Schedule::new(base_ms, cap_ms, jitter, SmallRng::seed_from_u64(seed))
    }

    /// The effective base (at least 2 ms).
    #[cfg(test)]
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// `min(cap, base × 2ⁿ)`, saturating instead of overflowing.
    pub(crate) fn expo(&self, n: u32) -> u64 {
        let grown = if n >= 64 {
            u64::MAX
        } else {
            self.base.saturating_mul(1u64 << n)
        };
        grown.min(self.cap)
    }

    /// A uniform draw in `[0, n)`; `0` when the range is empty.
    fn draw(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }

    /// Computes the next (uncapped) sleep in milliseconds and advances the state.
    pub(crate) fn advance(&mut self) -> u64 {
        let sleep = match self.jitter {
            Jitter::None => self.expo(self.attempts),
            Jitter::Full => {
                let v = self.expo(self.attempts);
                self.draw(v)
            }
            Jitter::Equal => {
                let half = self.expo(self.attempts) / 2;
                half + self.draw(half)
            }
            Jitter::Decorrelated => {
                let range = self.last_sleep.saturating_mul(3).saturating_sub(self.base);
                self.base.saturating_add(self.draw(range)).min(self.cap)
            }
        };
        self.attempts = self.attempts.saturating_add(1);
        self.last_sleep = sleep;
        sleep
    }

    /// The current progress.
    pub(crate) fn state(&self) -> ScheduleState {
        ScheduleState {
            attempts: self.attempts,
            last_sleep: self.last_sleep,
        }
    }

    /// Rolls the progress back to a saved state.
    pub(crate) fn restore(&mut self, state: ScheduleState) {
        self.attempts = state.attempts;
        self.last_sleep = state.last_sleep;
    }

    /// Completed sleeps so far.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl BackoffPolicy for Schedule {
    /// Restarts the progression: no completed sleeps, last sleep = base.
    fn reset(&mut self) {
        self.attempts = 0;
        self.last_sleep = self.base;
    }

    /// The next delay; never `None`, because giving up is the budget's decision.
    fn next_backoff(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(self.advance()))
    }
}
