//! `Filter`: keeps the events for which a predicate holds.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};

/// Keeps the events for which the predicate holds.
pub(crate) struct Filter<T, F> {
    pub predicate: F,
    pub out: Batch<T>,
    pub down: Downstream<T>,
}

impl<T, F> Operator<T> for Filter<T, F>
where
    T: Send,
    F: FnMut(&T) -> bool + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (item, time) in batch.drain() {
            if (self.predicate)(&item) {
                self.out.push(item, time);
            }
        }
        crate::ops::send(&mut self.out, &mut self.down)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
