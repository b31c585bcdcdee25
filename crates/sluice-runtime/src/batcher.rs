//! The batcher: holds an edge's events and releases them as batches by its flush policy.

use crate::FlushPolicy;
use sluice_core::cut::{interval_index, BalancedSizes};
use sluice_core::{Batch, Error};
use std::time::Duration;

/// Applies a [`FlushPolicy`] to a stream of batches: holds events and
/// releases them as batches when the policy says so.
///
/// The batcher owns no channel and reads no clock: the caller passes the
/// processing time and a `release` function that takes the held batch (and
/// must leave it empty, typically by swapping in a recycled buffer). This
/// keeps it deterministic and testable on its own.
///
/// ```
/// use sluice_runtime::{Batcher, FlushPolicy};
/// use sluice_core::Batch;
/// use std::time::Duration;
///
/// let mut batcher = Batcher::new(FlushPolicy::Count(3), None)?;
/// let mut released = Vec::new();
/// let mut release = |b: &mut Batch<i32>| -> Result<(), ()> {
///     released.push(b.items().to_vec());
///     b.clear();
///     Ok(())
/// };
/// let mut input = Batch::from_parts(vec![1, 2, 3, 4], vec![0; 4]);
/// batcher.push(&mut input, Duration::ZERO, &mut release).unwrap();
/// batcher.finish(&mut release).unwrap(); // the partial batch at end of input
/// assert_eq!(released, vec![vec![1, 2, 3], vec![4]]);
/// # Ok::<(), sluice_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Batcher<T> {
    policy: FlushPolicy,
    held: Batch<T>,
    /// Processing time when the oldest held event arrived.
    held_since: Option<Duration>,
    /// Event-time interval of the held events (for `FlushPolicy::EventTime`).
    held_interval: i64,
    /// Remaining balanced sizes (for `FlushPolicy::Batches`).
    balanced: Option<BalancedSizes>,
    /// The number of events that releases the held batch.
    target: usize,
    /// How long the oldest held event may wait, if the policy bounds it.
    interval: Option<Duration>,
}

impl<T> Batcher<T> {
    /// A batcher for `policy`; `exact_len` is the number of events the edge
    /// will carry, when known (required by `FlushPolicy::Batches`).
    pub fn new(policy: FlushPolicy, exact_len: Option<u64>) -> Result<Self, Error> {
        policy.validate()?;
        let mut balanced = match policy {
            FlushPolicy::Batches(k) => {
                let len = exact_len.ok_or(Error::UnknownLength { batches: k })?;
                Some(BalancedSizes::new(len, k as u64)?)
            }
            _ => None,
        };
        let target = match policy {
            FlushPolicy::EachEvent => 1,
            FlushPolicy::Count(n) | FlushPolicy::CountOrInterval(n, _) => n,
            FlushPolicy::Batches(_) => next_nonzero(&mut balanced),
            FlushPolicy::Interval(_) | FlushPolicy::EventTime(_) | FlushPolicy::Forward => {
                usize::MAX
            }
            // Event by event until the controller knows more.
            FlushPolicy::Adaptive { .. } => 1,
        };
        let interval = match policy {
            FlushPolicy::Adaptive { target_latency } => Some(target_latency / 2),
            _ => policy.interval(),
        };
        let capacity = target.min(4096);
        Ok(Self {
            policy,
            held: Batch::with_capacity(capacity),
            held_since: None,
            held_interval: 0,
            balanced,
            target,
            interval,
        })
    }

    /// Sets the batch size and the longest the oldest held event waits:
    /// how [`FlushPolicy::Adaptive`]'s controller steers the batcher. Held
    /// events are released by the next push or tick if they reach the new
    /// size or deadline.
    pub fn retarget(&mut self, size: usize, deadline: Duration) {
        self.target = size.max(1);
        self.interval = Some(deadline);
    }

    /// The policy this batcher applies.
    pub fn policy(&self) -> FlushPolicy {
        self.policy
    }

    /// Number of events held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes every event of `input` (leaving it empty), releasing batches as
    /// the policy says.
    pub fn push<E>(
        &mut self,
        input: &mut Batch<T>,
        now: Duration,
        release: &mut impl FnMut(&mut Batch<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        if input.is_empty() {
            return Ok(());
        }
        if self.held.is_empty() {
            self.held_since = Some(now);
        }
        match self.policy {
            FlushPolicy::EventTime(d) => return self.push_by_event_time(input, d, release),
            FlushPolicy::Forward => {
                input.append_into(&mut self.held);
                return self.release_held(release);
            }
            _ => {}
        }
        if self.held.len() >= self.target {
            // The target shrank (adaptive) below what is held.
            self.release_held(release)?;
            self.held_since = Some(now);
        }
        // Fast path: everything fits below the target.
        if self.held.len() + input.len() < self.target {
            input.append_into(&mut self.held);
        } else {
            // Move whole runs at once: the two columns are drained side by
            // side and extended in bulk, not pushed event by event.
            let (items, times) = input.parts_mut();
            let mut items = items.drain(..);
            let mut times = times.drain(..);
            loop {
                let need = self.target - self.held.len();
                let (held_items, held_times) = self.held.parts_mut();
                let before = held_items.len();
                held_items.extend(items.by_ref().take(need));
                held_times.extend(times.by_ref().take(need));
                if self.held.len() < self.target {
                    break;
                }
                let moved = self.held.len() > before;
                self.release_held(release)?;
                if !moved {
                    break;
                }
                self.held_since = Some(now);
            }
            if self.held.is_empty() {
                self.held_since = None;
            }
        }
        self.tick(now, release).map(|_| ())
    }

    fn push_by_event_time<E>(
        &mut self,
        input: &mut Batch<T>,
        interval: Duration,
        release: &mut impl FnMut(&mut Batch<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        for (item, time) in input.drain() {
            let index = interval_index(time, interval_ms);
            if !self.held.is_empty() && index != self.held_interval {
                release(&mut self.held)?;
                self.held.clear();
            }
            self.held_interval = index;
            self.held.push(item, time);
        }
        Ok(())
    }

    /// Releases the held batch if its processing-time interval has passed;
    /// returns when the next check is due, if events are held.
    pub fn tick<E>(
        &mut self,
        now: Duration,
        release: &mut impl FnMut(&mut Batch<T>) -> Result<(), E>,
    ) -> Result<Option<Duration>, E> {
        if !self.held.is_empty() && self.held.len() >= self.target {
            // The target shrank (adaptive) below what is held.
            self.release_held(release)?;
        }
        let (Some(interval), Some(since)) = (self.interval, self.held_since) else {
            return Ok(None);
        };
        if self.held.is_empty() {
            return Ok(None);
        }
        let due = since + interval;
        if now >= due {
            self.release_held(release)?;
            return Ok(None);
        }
        Ok(Some(due))
    }

    /// When the held events must be released by a tick, if any are held.
    pub fn deadline(&self) -> Option<Duration> {
        match (self.interval, self.held_since) {
            (Some(interval), Some(since)) if !self.held.is_empty() => Some(since + interval),
            _ => None,
        }
    }

    /// Releases the partial batch at the end of the input.
    pub fn finish<E>(
        &mut self,
        release: &mut impl FnMut(&mut Batch<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.held.is_empty() {
            self.release_held(release)?;
        }
        Ok(())
    }

    fn release_held<E>(
        &mut self,
        release: &mut impl FnMut(&mut Batch<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        release(&mut self.held)?;
        self.held.clear();
        self.held_since = None;
        if self.balanced.is_some() {
            self.target = next_nonzero(&mut self.balanced);
        }
        Ok(())
    }
}

/// The next non-empty balanced size; after the last, no further cut.
fn next_nonzero(sizes: &mut Option<BalancedSizes>) -> usize {
    sizes
        .as_mut()
        .and_then(|s| s.find(|&n| n > 0))
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: FlushPolicy, len: usize, chunk: usize, exact: bool) -> Vec<usize> {
        let mut batcher = Batcher::new(policy, exact.then_some(len as u64)).unwrap();
        let mut sizes = Vec::new();
        let mut release = |b: &mut Batch<usize>| -> Result<(), ()> {
            sizes.push(b.len());
            b.clear();
            Ok(())
        };
        let data: Vec<usize> = (0..len).collect();
        for piece in data.chunks(chunk) {
            let mut input =
                Batch::from_parts(piece.to_vec(), piece.iter().map(|&i| i as i64).collect());
            batcher
                .push(&mut input, Duration::ZERO, &mut release)
                .unwrap();
            assert!(input.is_empty());
        }
        batcher.finish(&mut release).unwrap();
        sizes
    }

    #[test]
    fn count_cuts_across_input_chunks() {
        assert_eq!(run(FlushPolicy::Count(4), 10, 3, false), vec![4, 4, 2]);
        assert_eq!(run(FlushPolicy::Count(4), 8, 8, false), vec![4, 4]);
        assert_eq!(run(FlushPolicy::EachEvent, 3, 2, false), vec![1, 1, 1]);
    }

    #[test]
    fn balanced_batches_follow_array_split() {
        assert_eq!(run(FlushPolicy::Batches(3), 10, 4, true), vec![4, 3, 3]);
        // more batches than events: empty ones are not sent
        assert_eq!(run(FlushPolicy::Batches(5), 3, 2, true), vec![1, 1, 1]);
        assert_eq!(
            Batcher::<u8>::new(FlushPolicy::Batches(2), None).err(),
            Some(Error::UnknownLength { batches: 2 })
        );
    }

    #[test]
    fn event_time_cuts_at_interval_boundaries() {
        // times are the indices: 0..2500 ms in 1 s intervals
        assert_eq!(
            run(
                FlushPolicy::EventTime(Duration::from_secs(1)),
                2500,
                300,
                false
            ),
            vec![1000, 1000, 500]
        );
    }

    #[test]
    fn interval_releases_on_tick_with_a_simulated_clock() {
        let d = Duration::from_millis(100);
        let mut batcher = Batcher::new(FlushPolicy::CountOrInterval(10, d), None).unwrap();
        let sizes = std::cell::RefCell::new(Vec::new());
        let mut release = |b: &mut Batch<u8>| -> Result<(), ()> {
            sizes.borrow_mut().push(b.len());
            b.clear();
            Ok(())
        };
        let mut input = Batch::from_parts(vec![1, 2, 3], vec![0; 3]);
        batcher
            .push(&mut input, Duration::from_millis(5), &mut release)
            .unwrap();
        assert_eq!(batcher.deadline(), Some(Duration::from_millis(105)));
        assert_eq!(
            batcher
                .tick(Duration::from_millis(104), &mut release)
                .unwrap(),
            Some(Duration::from_millis(105))
        );
        assert!(sizes.borrow().is_empty());
        assert_eq!(
            batcher
                .tick(Duration::from_millis(105), &mut release)
                .unwrap(),
            None
        );
        assert_eq!(*sizes.borrow(), vec![3]);
    }

    #[test]
    fn a_shrinking_target_releases_what_is_held_at_the_next_tick() {
        let ms = Duration::from_millis;
        let policy = FlushPolicy::Adaptive {
            target_latency: ms(5),
        };
        let mut batcher = Batcher::new(policy, None).unwrap();
        let sizes = std::cell::RefCell::new(Vec::new());
        let mut release = |b: &mut Batch<u8>| -> Result<(), ()> {
            sizes.borrow_mut().push(b.len());
            b.clear();
            Ok(())
        };
        batcher.retarget(8, ms(10));
        let mut input = Batch::from_parts(vec![0; 6], vec![0; 6]);
        batcher.push(&mut input, ms(0), &mut release).unwrap();
        assert!(sizes.borrow().is_empty());
        assert_eq!(batcher.deadline(), Some(ms(10)));
        // A shorter deadline moves the held events' deadline with it.
        batcher.retarget(8, ms(2));
        assert_eq!(batcher.deadline(), Some(ms(2)));
        assert_eq!(batcher.tick(ms(1), &mut release).unwrap(), Some(ms(2)));
        // A size below what is held releases it at the next tick, early.
        batcher.retarget(4, ms(2));
        assert_eq!(batcher.tick(ms(1), &mut release).unwrap(), None);
        assert_eq!(*sizes.borrow(), vec![6]);
        assert_eq!(batcher.deadline(), None);
        // Then batches of the new size, and the rest at its deadline.
        let mut input = Batch::from_parts(vec![0; 9], vec![0; 9]);
        batcher.push(&mut input, ms(5), &mut release).unwrap();
        assert_eq!(*sizes.borrow(), vec![6, 4, 4]);
        assert_eq!(batcher.deadline(), Some(ms(7)));
        assert_eq!(batcher.tick(ms(7), &mut release).unwrap(), None);
        assert_eq!(*sizes.borrow(), vec![6, 4, 4, 1]);
    }
}
