//! Flush policies: when an edge releases the events it holds as a batch.

use sluice_core::Error;
use std::time::Duration;

/// When an edge releases the events it holds as a batch.
///
/// Per-event processing and micro-batching are the same dataflow with
/// different policies on its edges. A partial batch is always released at
/// the end of the input.
///
/// ```
/// use sluice_runtime::FlushPolicy;
/// use std::time::Duration;
///
/// let spark_like = FlushPolicy::Interval(Duration::from_millis(100));
/// let usual = FlushPolicy::CountOrInterval(4096, Duration::from_millis(10));
/// assert!(usual.validate().is_ok());
/// assert!(FlushPolicy::Count(0).validate().is_err());
/// # let _ = spark_like;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every event is its own batch: lowest latency.
    EachEvent,
    /// Batches of `n` events.
    Count(usize),
    /// Whatever arrived within `d` of processing time since the first held event.
    Interval(Duration),
    /// `n` events or `d` since the first held event, whichever comes first.
    CountOrInterval(usize, Duration),
    /// `k` batches of balanced sizes over an input of known length, as
    /// `numpy.array_split(data, k)` cuts (empty batches are not sent). Only
    /// valid on an edge whose event count is known when the run starts.
    Batches(usize),
    /// A new batch whenever an event falls in another event-time interval
    /// `[m * d, (m + 1) * d)` than the events held.
    EventTime(Duration),
    /// Every incoming batch is released as it is: the batching upstream is kept.
    Forward,
    /// Batch size and flush deadline chosen as the run goes, so that events
    /// cross the edge within `target_latency` at the highest throughput the
    /// target allows: event by event under light load, large batches under
    /// saturation. See [`crate::AdaptiveController`] and docs/adaptive.md.
    Adaptive {
        /// The latency to stay under: from an event entering the edge to
        /// the end of its processing behind it.
        target_latency: Duration,
    },
}

/// The smallest adaptive target latency: below it, reading the clock and
/// waking threads cost more than the target.
const MIN_TARGET: Duration = Duration::from_micros(100);

impl Default for FlushPolicy {
    /// `CountOrInterval(1024, 10ms)`: high throughput, bounded latency.
    fn default() -> Self {
        FlushPolicy::CountOrInterval(1024, Duration::from_millis(10))
    }
}

impl FlushPolicy {
    /// Checks the policy's arguments; the error says how to fix them.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            FlushPolicy::EachEvent | FlushPolicy::Forward => Ok(()),
            FlushPolicy::Count(0) | FlushPolicy::CountOrInterval(0, _) => Err(Error::ZeroBatchSize),
            FlushPolicy::Batches(0) => Err(Error::ZeroBatchCount),
            FlushPolicy::Interval(d) | FlushPolicy::CountOrInterval(_, d) if d.is_zero() => {
                Err(Error::ZeroInterval {
                    what: "flush interval",
                })
            }
            FlushPolicy::EventTime(d) if d.as_millis() == 0 => Err(Error::ZeroInterval {
                what: "event-time batch interval (whole milliseconds)",
            }),
            FlushPolicy::Adaptive { target_latency } if target_latency < MIN_TARGET => {
                Err(Error::LatencyTargetTooSmall {
                    micros: target_latency.as_micros(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The largest batch the policy can release, when it is bounded.
    pub fn max_batch(&self) -> Option<usize> {
        match *self {
            FlushPolicy::EachEvent => Some(1),
            FlushPolicy::Count(n) | FlushPolicy::CountOrInterval(n, _) => Some(n),
            FlushPolicy::Adaptive { .. } => Some(crate::MAX_ADAPTIVE_BATCH),
            _ => None,
        }
    }

    /// Whether the policy reads the processing-time clock.
    pub fn uses_clock(&self) -> bool {
        self.interval().is_some() || matches!(self, FlushPolicy::Adaptive { .. })
    }

    /// The processing-time interval the policy waits for, if any (for the
    /// adaptive policy, it changes as the run goes).
    pub fn interval(&self) -> Option<Duration> {
        match *self {
            FlushPolicy::Interval(d) | FlushPolicy::CountOrInterval(_, d) => Some(d),
            _ => None,
        }
    }
}
