//! `Batch`: a run of events and their event times, kept in two parallel vectors.

use crate::Timestamp;

/// A run of events with their event times: what moves between operators.
///
/// Per-event processing is a batch of one; micro-batching is a batch that was
/// held until a flush policy released it. Items and times are kept in two
/// parallel vectors so that operators which only touch items (`map`) can hand
/// the times vector on without copying it, and so that buffers can be cleared
/// and reused without allocating.
///
/// ```
/// use sluice_core::Batch;
///
/// let mut batch = Batch::with_capacity(4);
/// batch.push("a", 10);
/// batch.push("b", 12);
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.max_time(), Some(12));
/// let pairs: Vec<_> = batch.iter().collect();
/// assert_eq!(pairs, vec![(&"a", 10), (&"b", 12)]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T> {
    items: Vec<T>,
    times: Vec<Timestamp>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Batch<T> {
    /// An empty batch that has not allocated.
    pub fn new() -> Self {
        Self {
            items: Vec::new(),
            times: Vec::new(),
        }
    }

    /// An empty batch with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            times: Vec::with_capacity(capacity),
        }
    }

    /// A batch from items and their event times.
    ///
    /// # Panics
    /// If the two vectors differ in length (a programming error, not input).
    pub fn from_parts(items: Vec<T>, times: Vec<Timestamp>) -> Self {
        assert_eq!(items.len(), times.len(), "every item needs one event time");
        Self { items, times }
    }

    /// Appends one event.
    #[inline]
    pub fn push(&mut self, item: T, time: Timestamp) {
        self.items.push(item);
        self.times.push(time);
    }

    /// Number of events.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the batch holds no event.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many events fit before the buffers must grow.
    pub fn capacity(&self) -> usize {
        self.items.capacity().min(self.times.capacity())
    }

    /// Empties the batch and keeps its buffers for reuse.
    #[inline]
    pub fn clear(&mut self) {
        self.items.clear();
        self.times.clear();
    }

    /// The events.
    #[inline]
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The event times, one per item.
    #[inline]
    pub fn times(&self) -> &[Timestamp] {
        &self.times
    }

    /// Events and times as pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&T, Timestamp)> + '_ {
        self.items.iter().zip(self.times.iter().copied())
    }

    /// The latest event time in the batch.
    pub fn max_time(&self) -> Option<Timestamp> {
        self.times.iter().copied().max()
    }

    /// Both vectors, for operators that rebuild a batch in place.
    ///
    /// The caller must leave them of equal length; every operator of the
    /// runtime does, and [`Batch::check`] verifies it in debug builds.
    #[inline]
    pub fn parts_mut(&mut self) -> (&mut Vec<T>, &mut Vec<Timestamp>) {
        (&mut self.items, &mut self.times)
    }

    /// Debug check of the one invariant: one time per item.
    #[inline]
    pub fn check(&self) {
        debug_assert_eq!(self.items.len(), self.times.len());
    }

    /// Moves the first `n` events (or all, if fewer) to the end of `dst`.
    pub fn move_front_into(&mut self, n: usize, dst: &mut Batch<T>) {
        let n = n.min(self.len());
        if n == self.len() {
            dst.items.append(&mut self.items);
            dst.times.append(&mut self.times);
        } else {
            dst.items.extend(self.items.drain(..n));
            dst.times.extend(self.times.drain(..n));
        }
    }

    /// Moves every event to the end of `dst`, leaving this batch empty.
    /// Into an empty `dst` the buffers are exchanged, not copied (this
    /// batch keeps `dst`'s empty buffers and their capacity).
    pub fn append_into(&mut self, dst: &mut Batch<T>) {
        if dst.items.is_empty() && dst.times.is_empty() {
            std::mem::swap(&mut dst.items, &mut self.items);
            std::mem::swap(&mut dst.times, &mut self.times);
            return;
        }
        dst.items.append(&mut self.items);
        dst.times.append(&mut self.times);
    }

    /// Removes and returns all events as pairs.
    pub fn drain(&mut self) -> impl Iterator<Item = (T, Timestamp)> + '_ {
        self.items.drain(..).zip(self.times.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_front_keeps_items_and_times_together() {
        let mut a = Batch::from_parts(vec![1, 2, 3, 4], vec![10, 20, 30, 40]);
        let mut b = Batch::new();
        a.move_front_into(3, &mut b);
        assert_eq!(b, Batch::from_parts(vec![1, 2, 3], vec![10, 20, 30]));
        assert_eq!(a, Batch::from_parts(vec![4], vec![40]));
        a.move_front_into(10, &mut b);
        assert!(a.is_empty());
        assert_eq!(b.len(), 4);
    }
}
