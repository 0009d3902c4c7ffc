//! The client-side slow score of a store (HS-2 of `shared/spec/request-path.md`; client-go's
//! `SlowScoreStat` and `CountSlidingWindow` in `internal/locate/slow_score.go`).
//!
//! The score runs from 1 to 100; a store is slow from 80 on. Requests feed their durations
//! with [`SlowScoreStat::record`]; every health tick calls [`SlowScoreStat::update`], which
//! compares the tick's request count and average latency with the averages of the last ten
//! ticks. Falling traffic with rising latency raises the score (multiplicatively, capped);
//! anything else lets it decay by one to three points. A single request of 30 s or more,
//! or an explicit [`SlowScoreStat::mark_already_slow`], sets the maximum at once.
//!
//! The counters are atomics, so recording is lock-free; the sliding windows are only touched
//! by the tick and sit behind a mutex that nothing else takes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The score of a store with nothing to report (`slowScoreInitVal`).
pub const SLOW_SCORE_INIT: u64 = 1;
/// From this score on the store counts as slow (`slowScoreThreshold`).
pub const SLOW_SCORE_THRESHOLD: u64 = 80;
/// The highest score (`slowScoreMax`).
pub const SLOW_SCORE_MAX: u64 = 100;
/// The average latency assumed when the statistics start, in µs (`slowScoreInitTimeoutInUs`).
const INIT_TIMECOST_US: u64 = 500_000;
/// A request this slow (the longest a request may take) marks the store slow at once, in µs
/// (`slowScoreMaxTimeoutInUs`).
const MAX_TIMECOST_US: u64 = 30_000_000;
/// How many ticks the sliding windows remember (`slidingWindowSize`).
const WINDOW_SIZE: usize = 10;
/// Upper bound of the factor a rising score is multiplied by.
const MAX_RISE_RATIO: f64 = 5.43;
/// Upper bound of one decay step.
const MAX_DECAY_STEP: f64 = 2.71;
/// Gradient reported when there is nothing to compare with.
const NO_GRADIENT: f64 = 1e-6;

/// Whether a client-side score means "slow" (`clientSideSlowScoreIsSlow`).
pub fn is_slow_score(score: u64) -> bool {
    score >= SLOW_SCORE_THRESHOLD
}

/// The last ten values of a per-tick statistic with their running sum and
/// integer average (client-go's `CountSlidingWindow`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountSlidingWindow {
    avg: u64,
    sum: u64,
    history: VecDeque<u64>,
}

impl CountSlidingWindow {
    /// The integer average of the remembered values.
    pub fn avg(&self) -> u64 {
        self.avg
    }

    /// The sum of the remembered values.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Adds `value`, forgetting the oldest one when the window is full, and returns the
    /// relative change of `value` against the previous average: `(value - avg) / avg`, or
    /// `1e-6` when the previous average is 0 or equal to `value`.
    pub fn append(&mut self, value: u64) -> f64 {
        let prev_avg = self.avg;
        if self.history.len() >= WINDOW_SIZE {
            let oldest = self.history.pop_front().unwrap_or(0);
            self.sum = self.sum.wrapping_sub(oldest);
        }
        self.sum = self.sum.wrapping_add(value);
        self.history.push_back(value);
        // `history` is never empty here.
        self.avg = self.sum / self.history.len() as u64;
        if prev_avg > 0 && value != prev_avg {
            (value as f64 - prev_avg as f64) / prev_avg as f64
        } else {
            NO_GRADIENT
        }
    }
}

#[derive(Debug, Default)]
struct Windows {
    timecost: CountSlidingWindow,
    count: CountSlidingWindow,
}

/// The client-side slow score of one store (client-go's `SlowScoreStat`, HS-2).
///
/// A fresh value has score 0 and no statistics; the first [`record`](Self::record) or
/// [`update`](Self::update) initializes it (score 1, assumed average 500 ms).
#[derive(Debug, Default)]
pub struct SlowScoreStat {
    avg_score: AtomicU64,
    /// Average request time in µs; 0 means "not initialized".
    avg_timecost: AtomicU64,
    /// Sum of the request times of the current tick, µs.
    interval_timecost: AtomicU64,
    /// Requests recorded in the current tick.
    interval_count: AtomicU64,
    windows: Mutex<Windows>,
}

impl SlowScoreStat {
    /// A fresh, uninitialized statistic (score 0).
    pub fn new() -> SlowScoreStat {
        SlowScoreStat::default()
    }

    /// The current score.
    pub fn score(&self) -> u64 {
        self.avg_score.load(Ordering::Acquire)
    }

    /// Whether the score is at or above the threshold (80).
    pub fn is_slow(&self) -> bool {
        is_slow_score(self.score())
    }

    fn init(&self) {
        self.avg_score.store(SLOW_SCORE_INIT, Ordering::Release);
        self.avg_timecost.store(INIT_TIMECOST_US, Ordering::Release);
    }

    /// Records one request's duration (`recordSlowScoreStat`). The first sample initializes
    /// the statistics; a sample of 30 s or more sets the maximum score.
    pub fn record(&self, timecost: Duration) {
        self.interval_count.fetch_add(1, Ordering::AcqRel);
        let us = u64::try_from(timecost.as_micros()).unwrap_or(u64::MAX);
        if self.avg_timecost.load(Ordering::Acquire) == 0 {
            self.init();
            self.interval_timecost.store(us, Ordering::Release);
            return;
        }
        if us >= MAX_TIMECOST_US {
            // Too slow to serve within the longest request timeout.
            self.avg_score.store(SLOW_SCORE_MAX, Ordering::Release);
            return;
        }
        self.interval_timecost.fetch_add(us, Ordering::AcqRel);
    }

    /// Sets the maximum score (`markAlreadySlow`): after a busy answer without an estimated
    /// wait, or when a send failure invalidated the store.
    pub fn mark_already_slow(&self) {
        self.avg_score.store(SLOW_SCORE_MAX, Ordering::Release);
    }

    /// Resets to score 1 and empty statistics (client-go's `resetSlowScore`, for tests).
    pub fn reset(&self) {
        self.avg_score.store(SLOW_SCORE_INIT, Ordering::Release);
        self.avg_timecost.store(0, Ordering::Release);
        self.interval_timecost.store(0, Ordering::Release);
        self.interval_count.store(0, Ordering::Release);
        *self.windows.lock().unwrap_or_else(|e| e.into_inner()) = Windows::default();
    }

    /// The per-tick update (`updateSlowScore`): folds the tick's count and average latency
    /// into the windows, moves the score, and starts a new tick.
    pub fn update(&self) {
        let avg_timecost = self.avg_timecost.load(Ordering::Acquire);
        if avg_timecost == 0 {
            self.init();
            return;
        }
        let count = self.interval_count.load(Ordering::Acquire);
        let timecost = self.interval_timecost.load(Ordering::Acquire);

        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Without traffic in this tick both gradients read as "unchanged" (1.0).
        let (count_gradient, time_gradient) = if count > 0 {
            (
                windows.count.append(count),
                windows.timecost.append(timecost / count),
            )
        } else {
            (1.0, 1.0)
        };

        // Fewer requests and longer latency: the store is getting slower. Changes go
        // through compare-and-swap so a concurrent `mark_already_slow` wins.
        let score = self.avg_score.load(Ordering::Acquire);
        let next = if count_gradient + 0.1 <= 1e-9 && time_gradient - 0.1 >= 1e-9 {
            let ratio = MAX_RISE_RATIO.min((time_gradient / count_gradient).abs());
            (score as f64 * ratio + 1.0)
                .min(SLOW_SCORE_MAX as f64)
                .ceil() as u64
        } else {
            let step = (SLOW_SCORE_INIT as f64)
                .max(MAX_DECAY_STEP.min(1.0 + count_gradient.abs()))
                .ceil() as u64;
            if score <= SLOW_SCORE_INIT + step {
                SLOW_SCORE_INIT
            } else {
                score - step
            }
        };
        let _ = self
            .avg_score
            .compare_exchange(score, next, Ordering::AcqRel, Ordering::Acquire);
        let _ = self.avg_timecost.compare_exchange(
            avg_timecost,
            windows.timecost.avg(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        drop(windows);

        self.interval_timecost.store(0, Ordering::Release);
        self.interval_count.store(0, Ordering::Release);
    }
}
