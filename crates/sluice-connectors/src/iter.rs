//! A source over any iterator, with event times from the events or from the wall clock.

use sluice_core::{Batch, Timestamp};
use sluice_runtime::{BoxError, Source, SourceStatus};
use std::time::{SystemTime, UNIX_EPOCH};

type EventTimeFn<T> = Box<dyn FnMut(&T) -> Timestamp + Send>;

/// A source over any iterator.
///
/// Event times come from [`IterSource::with_event_time`], or else from the
/// wall clock when each event is read (ingestion time). When the iterator
/// reports an exact length, the source does too, so edges right after it can
/// cut the input into a number of balanced batches.
///
/// ```
/// use sluice_connectors::IterSource;
/// use sluice_runtime::Source;
///
/// let source = IterSource::new(0..100);
/// assert_eq!(source.exact_len(), Some(100));
/// ```
pub struct IterSource<I: Iterator> {
    iter: I,
    event_time: Option<EventTimeFn<I::Item>>,
}

impl<I: Iterator> IterSource<I> {
    /// A source of the items of `iter`.
    pub fn new(iter: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            iter: iter.into_iter(),
            event_time: None,
        }
    }

    /// Takes each event's time (ms since the epoch) from the event.
    pub fn with_event_time(
        mut self,
        f: impl FnMut(&I::Item) -> Timestamp + Send + 'static,
    ) -> Self {
        self.event_time = Some(Box::new(f));
        self
    }
}

fn wall_clock_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<I> Source<I::Item> for IterSource<I>
where
    I: Iterator + Send,
{
    fn poll(&mut self, out: &mut Batch<I::Item>, max: usize) -> Result<SourceStatus, BoxError> {
        let ingestion = if self.event_time.is_none() {
            wall_clock_ms()
        } else {
            0
        };
        for _ in 0..max {
            let Some(item) = self.iter.next() else {
                return Ok(SourceStatus::Exhausted);
            };
            let time = match &mut self.event_time {
                Some(f) => f(&item),
                None => ingestion,
            };
            out.push(item, time);
        }
        Ok(SourceStatus::Ready)
    }

    fn exact_len(&self) -> Option<u64> {
        match self.iter.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        }
    }
}
