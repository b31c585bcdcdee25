//! Clocks: processing time from the machine, or from a simulated clock that moves only when told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Processing time, as the time elapsed since the clock started.
///
/// The runtime reads time only through a clock, so tests can use a
/// [`SimulatedClock`] and make interval flushes and timeouts deterministic.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Processing time now.
    fn now(&self) -> Duration;

    /// Wall-clock time now, in ms since the Unix epoch: what "the future"
    /// means for event times.
    fn wall_ms(&self) -> i64;
}

/// The machine's monotonic clock.
///
/// ```
/// use sluice_runtime::{Clock, SystemClock};
/// let clock = SystemClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock that starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to: for deterministic tests. Its wall
/// clock starts at the epoch plus `wall_start_ms` (0 by default).
///
/// ```
/// use sluice_runtime::{Clock, SimulatedClock};
/// use std::time::Duration;
///
/// let clock = SimulatedClock::new();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now(), Duration::from_millis(250));
/// ```
#[derive(Debug, Default)]
pub struct SimulatedClock {
    nanos: AtomicU64,
    wall_start_ms: i64,
}

impl SimulatedClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at zero whose wall clock reads `wall_start_ms` at zero.
    pub fn with_wall_start(wall_start_ms: i64) -> Self {
        Self {
            nanos: AtomicU64::new(0),
            wall_start_ms,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock (it may only move forward).
    pub fn set(&self, to: Duration) {
        let to = u64::try_from(to.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(to, Ordering::SeqCst);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn wall_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.now().as_millis()).unwrap_or(i64::MAX);
        self.wall_start_ms.saturating_add(elapsed)
    }
}
