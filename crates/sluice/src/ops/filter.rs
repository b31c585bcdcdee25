//! `Filter`: keeps the events for which a predicate holds.

use super::Downstream;
use sluice_core::{Batch, Timestamp};
use sluice_runtime::{Operator, OperatorResult};

/// Keeps the events for which the predicate holds.
pub(crate) struct Filter<T, F> {
    pub predicate: F,
    pub down: Downstream<T>,
}

impl<T, F> Operator<T> for Filter<T, F>
where
    T: Send,
    F: FnMut(&T) -> bool + Send,
{
    /// Keeps the events in place (the batch is this operator's to change)
    /// and hands the same batch on: no copy of the events kept.
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let (items, times) = batch.parts_mut();
        // Taken out while they are compacted: a predicate that panics
        // leaves the batch empty, not with items and times out of line.
        let (mut kept_items, mut kept_times) = (std::mem::take(items), std::mem::take(times));
        keep_in_place(&mut kept_items, &mut kept_times, &mut self.predicate);
        (*items, *times) = (kept_items, kept_times);
        if batch.is_empty() {
            return Ok(());
        }
        self.down.on_batch(batch)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}

/// Events up to this size are kept without a branch per event.
const SWAPPED: usize = 64;

/// Keeps the items for which `predicate` holds, and their times, in order.
///
/// Small items (up to [`SWAPPED`] bytes) are kept without a branch on the
/// predicate, which goes either way where a filter keeps about half: each
/// item is swapped to the end of those kept so far, which grows only past
/// one that is kept; the others gather behind it and are dropped at the
/// end. Larger items, whose swap costs more than a missed branch, go
/// through `Vec::retain`.
fn keep_in_place<T>(
    items: &mut Vec<T>,
    times: &mut Vec<Timestamp>,
    predicate: &mut impl FnMut(&T) -> bool,
) {
    let mut kept = 0;
    if std::mem::size_of::<T>() <= SWAPPED {
        for at in 0..items.len() {
            let keep = predicate(&items[at]);
            items.swap(kept, at);
            times[kept] = times[at];
            kept += usize::from(keep);
        }
        items.truncate(kept);
    } else {
        let mut at = 0;
        items.retain(|item| {
            let keep = predicate(item);
            if keep {
                times[kept] = times[at];
                kept += 1;
            }
            at += 1;
            keep
        });
    }
    times.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a filter keeps, by an iterator over the pairs.
    fn reference<T: Clone>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<(T, Timestamp)> {
        items
            .iter()
            .cloned()
            .zip(0..)
            .filter(|(item, _)| keep(item))
            .collect()
    }

    fn kept<T: Clone>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<(T, Timestamp)> {
        let (mut items, mut times) = (items.to_vec(), (0..items.len() as i64).collect());
        keep_in_place(&mut items, &mut times, &mut |item: &T| keep(item));
        assert_eq!(items.len(), times.len());
        items.into_iter().zip(times).collect()
    }

    proptest! {
        /// Small items (swapped) and large ones that own memory (retained):
        /// the items kept and their times, in order.
        #[test]
        fn keeps_what_an_iterator_keeps(values in prop::collection::vec(0u32..100, 0..300), cut in 0u32..101) {
            let keep = |v: &u32| *v < cut;
            prop_assert_eq!(kept(&values, keep), reference(&values, keep));
            // Small and owning memory (swapped, dropped at the end), and
            // exactly at the size that is still swapped.
            let owned: Vec<String> = values.iter().map(u32::to_string).collect();
            let keep_owned = |item: &String| item.parse::<u32>().is_ok_and(|v| v < cut);
            prop_assert_eq!(kept(&owned, keep_owned), reference(&owned, keep_owned));
            let edge: Vec<[u64; 8]> = values.iter().map(|v| [u64::from(*v); 8]).collect();
            prop_assert_eq!(std::mem::size_of::<[u64; 8]>(), SWAPPED);
            let keep_edge = |item: &[u64; 8]| item[7] < u64::from(cut);
            prop_assert_eq!(kept(&edge, keep_edge), reference(&edge, keep_edge));
            let large: Vec<(String, [u64; 9])> =
                values.iter().map(|v| (v.to_string(), [u64::from(*v); 9])).collect();
            let keep = |item: &(String, [u64; 9])| item.1[0] < u64::from(cut);
            prop_assert_eq!(kept(&large, keep), reference(&large, keep));
        }
    }
}
