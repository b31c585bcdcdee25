//! The W0/W1 benchmark stream: its events from an integer formula, and a source of any partition.

use sluice_core::Batch;
use sluice_runtime::{BoxError, Source, SourceStatus};

/// One event of the shared W0/W1 workloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormulaEvent {
    /// In `0..1000`.
    pub key: i64,
    /// In `[0, 1)`.
    pub value: f64,
}

const P: i64 = 2_147_483_647;

impl FormulaEvent {
    /// Event `i` of the stream: the integer formula of the W0/W1 workloads
    /// (`a = i * 48271 mod P`, `b = a * a mod P`, `key = b mod 1000`,
    /// `value = (b * 16807 mod P) / P`, event time `i` ms). Defined for
    /// `|i|` below 1.9e14, where `i * 48271` fits in an `i64`.
    ///
    /// ```
    /// use sluice_connectors::FormulaEvent;
    /// let e = FormulaEvent::at(1);
    /// assert_eq!(e.key, (48271_i64 * 48271 % 2_147_483_647) % 1000);
    /// ```
    #[inline]
    pub fn at(i: i64) -> Self {
        let a = (i * 48_271) % P;
        let b = (a * a) % P;
        Self {
            key: b % 1000,
            value: ((b * 16_807) % P) as f64 / P as f64,
        }
    }
}

/// The events `i` in `start..end` with `i ≡ start (mod step)` of the
/// W0/W1 stream, with event time `i` ms: `step` partitions with
/// `start = 0..step` read the whole stream between them.
///
/// ```
/// use sluice_connectors::FormulaSource;
/// use sluice_runtime::{Batch, Source};
///
/// let mut source = FormulaSource::new(1, 10, 4); // events 1, 5, 9
/// let mut batch = Batch::new();
/// source.poll(&mut batch, 100)?;
/// assert_eq!(batch.times(), &[1, 5, 9]);
/// # Ok::<(), sluice_runtime::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FormulaSource {
    next: i64,
    end: i64,
    step: i64,
}

impl FormulaSource {
    /// Events `start, start + step, …` below `end`.
    pub fn new(start: i64, end: i64, step: i64) -> Self {
        Self {
            next: start,
            end,
            step: step.max(1),
        }
    }

    /// Partition `partition` of `partitions` of the first `n` events.
    pub fn partition(n: u64, partition: usize, partitions: usize) -> Self {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        Self::new(partition as i64, n, partitions as i64)
    }

    /// The events not made yet.
    fn left(&self) -> u64 {
        if self.next >= self.end {
            return 0;
        }
        self.next
            .abs_diff(self.end)
            .div_ceil(self.step.unsigned_abs())
    }
}

impl Source<FormulaEvent> for FormulaSource {
    fn poll(
        &mut self,
        out: &mut Batch<FormulaEvent>,
        max: usize,
    ) -> Result<SourceStatus, BoxError> {
        // Counted up front, so that the events are made in one tight loop
        // with no capacity check per event.
        let left = self.left();
        let n = left.min(max as u64).min(i64::MAX as u64) as i64;
        let (start, step) = (self.next, self.step);
        // Every index made (and the next, unless none is left) is below
        // `end`: exact, whatever wraps on the way.
        let index = |k: i64| start.wrapping_add(k.wrapping_mul(step));
        let (items, times) = out.parts_mut();
        items.extend((0..n).map(|k| FormulaEvent::at(index(k))));
        times.extend((0..n).map(index));
        self.next = if n as u64 == left { self.end } else { index(n) };
        Ok(if self.next >= self.end {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.left())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `source` with `max` until it is exhausted: the events' times
    /// in order, after checking each poll's size and status.
    fn drain(mut source: FormulaSource, max: usize) -> Vec<i64> {
        let mut batch = Batch::new();
        let mut times = Vec::new();
        loop {
            let left = source.exact_len().unwrap();
            let status = source.poll(&mut batch, max).unwrap();
            let want = left.min(max as u64);
            assert_eq!(batch.len() as u64, want, "a poll makes all it may");
            let exhausted = matches!(status, SourceStatus::Exhausted);
            assert_eq!(exhausted, left == want, "exhausted with the last events");
            for (event, time) in batch.drain() {
                assert_eq!(event, FormulaEvent::at(time));
                times.push(time);
            }
            if exhausted {
                assert_eq!(source.exact_len(), Some(0));
                return times;
            }
            assert!(max > 0 || times.is_empty());
            if max == 0 {
                return times;
            }
        }
    }

    /// Each partition gives its events, in order, with their index as
    /// their time, whatever the poll size; together every event once.
    #[test]
    fn partitions_cover_the_stream_once_in_order() {
        let (events, partitions) = (23_u64, 3);
        for max in [1, 2, 5, 4096] {
            let mut all = Vec::new();
            for p in 0..partitions {
                let times = drain(FormulaSource::partition(events, p, partitions), max);
                let want: Vec<i64> = (p as i64..events as i64).step_by(partitions).collect();
                assert_eq!(times, want, "partition {p}, polls of {max}");
                all.extend(times);
            }
            all.sort_unstable();
            assert_eq!(all, (0..events as i64).collect::<Vec<_>>());
        }
    }

    /// Empty ranges, polls of nothing, negative starts and steps that
    /// would pass the end of `i64` neither panic nor repeat an event.
    #[test]
    fn edges_of_the_range() {
        assert_eq!(drain(FormulaSource::new(5, 5, 1), 3), Vec::<i64>::new());
        assert_eq!(drain(FormulaSource::new(9, 5, 1), 3), Vec::<i64>::new());
        assert_eq!(drain(FormulaSource::new(0, 3, 1), 0), Vec::<i64>::new());
        assert_eq!(drain(FormulaSource::new(-4, 2, 3), 10), vec![-4, -1]);
        // The step after the only event passes the end of `i64`.
        let mut source = FormulaSource::new(10, i64::MAX, i64::MAX - 5);
        assert_eq!(source.exact_len(), Some(1));
        let mut batch = Batch::new();
        let status = source.poll(&mut batch, 8);
        assert!(matches!(status, Ok(SourceStatus::Exhausted)));
        assert_eq!(batch.times(), &[10]);
        assert_eq!(source.exact_len(), Some(0));
        let source = FormulaSource::partition(u64::MAX, 0, 2);
        assert_eq!(source.exact_len(), Some((i64::MAX as u64).div_ceil(2)));
    }
}
