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
    /// `value = (b * 16807 mod P) / P`, event time `i` ms).
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
}

impl Source<FormulaEvent> for FormulaSource {
    fn poll(
        &mut self,
        out: &mut Batch<FormulaEvent>,
        max: usize,
    ) -> Result<SourceStatus, BoxError> {
        // Counted up front, so that the events are made in one tight loop
        // with no capacity check per event.
        let left = self
            .next
            .abs_diff(self.end)
            .div_ceil(self.step.unsigned_abs());
        let n = if self.next >= self.end {
            0
        } else {
            usize::try_from(left).unwrap_or(usize::MAX).min(max)
        };
        let (start, step) = (self.next, self.step);
        let (items, times) = out.parts_mut();
        items.extend((0..n as i64).map(|k| FormulaEvent::at(start + k * step)));
        times.extend((0..n as i64).map(|k| start + k * step));
        self.next = start.saturating_add((n as i64).saturating_mul(step));
        Ok(if self.next >= self.end {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }

    fn exact_len(&self) -> Option<u64> {
        let remaining = (self.end - self.next).max(0);
        u64::try_from((remaining + self.step - 1) / self.step).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of each partition, in order, with its index as its
    /// time, whatever the poll size; then exhausted.
    #[test]
    fn partitions_cover_the_stream_once() {
        let (events, partitions) = (23_u64, 3);
        let mut seen = Vec::new();
        for p in 0..partitions {
            let mut source = FormulaSource::partition(events, p, partitions);
            assert_eq!(source.exact_len(), Some((events + 2 - p as u64) / 3));
            let mut batch = Batch::new();
            loop {
                let status = source.poll(&mut batch, 2).unwrap();
                assert!(batch.len() <= 2);
                for (event, time) in batch.drain() {
                    assert_eq!(event, FormulaEvent::at(time));
                    seen.push(time);
                }
                if matches!(status, SourceStatus::Exhausted) {
                    break;
                }
            }
            assert_eq!(source.exact_len(), Some(0));
            assert!(matches!(
                source.poll(&mut batch, 2),
                Ok(SourceStatus::Exhausted)
            ));
            assert!(batch.is_empty());
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..events as i64).collect::<Vec<_>>());
    }
}
