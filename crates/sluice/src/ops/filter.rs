//! `Filter`: keeps the events for which a predicate holds.

use super::Downstream;
use sluice_core::Batch;
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
        let (mut at, mut kept) = (0, 0);
        kept_items.retain(|item| {
            let keep = (self.predicate)(item);
            if keep {
                kept_times[kept] = kept_times[at];
                kept += 1;
            }
            at += 1;
            keep
        });
        kept_times.truncate(kept);
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
