//! `Inspect`: shows every event to a function and passes the batch on unchanged.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};

/// Shows every event to `f`, then passes the batch on unchanged.
pub(crate) struct Inspect<T, F> {
    pub f: F,
    pub down: Downstream<T>,
}

impl<T, F> Operator<T> for Inspect<T, F>
where
    F: FnMut(&T) + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        batch.items().iter().for_each(&mut self.f);
        self.down.on_batch(batch)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
