//! The mock cluster's one source of time (MC-0.4).
//!
//! Everything time-dependent in the mock (the TSO's physical part, lock TTL expiry, lock
//! waits, raw TTL, scheduled delays) reads a [`Clock`]: a wall-clock base captured when the
//! clock is created plus the `tokio::time::Instant` time elapsed since. Under
//! `tokio::time::pause` the elapsed part moves only when the test advances time, so TSO
//! values and TTLs are deterministic.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A cheap-to-clone clock: wall-clock base plus tokio-instant elapsed time.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    /// A clock whose base is the current wall-clock time.
    pub fn new() -> Clock {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock::with_base_ms(base_ms)
    }

    /// A clock starting at `base_ms` milliseconds since the Unix epoch (for tests that need
    /// exact timestamps).
    pub fn with_base_ms(base_ms: u64) -> Clock {
        Clock {
            inner: Arc::new(ClockInner {
                base_ms,
                start: Instant::now(),
            }),
        }
    }

    /// Milliseconds since the Unix epoch, as the mock sees it.
    pub fn now_ms(&self) -> u64 {
        self.inner.base_ms + self.elapsed().as_millis() as u64
    }

    /// Time elapsed since the clock was created (virtual under paused tokio time).
    pub fn elapsed(&self) -> Duration {
        self.inner.start.elapsed()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_only_when_advanced() {
        let c = Clock::with_base_ms(1_000);
        assert_eq!(c.now_ms(), 1_000);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(c.now_ms(), 1_250);
        let c2 = c.clone();
        assert_eq!(c2.now_ms(), 1_250);
    }

    #[test]
    fn wall_clock_base_is_recent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = Clock::new();
            assert!(c.now_ms() > 1_600_000_000_000);
        });
    }
}
