//! `FlatMap`: turns each event into zero or more events with its event time.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};

/// Every event becomes zero or more events with its event time.
pub(crate) struct FlatMap<T, U, F> {
    pub f: F,
    pub out: Batch<U>,
    pub down: Downstream<U>,
    pub _in: std::marker::PhantomData<fn(T)>,
}

impl<T, U, I, F> Operator<T> for FlatMap<T, U, F>
where
    U: Send,
    I: IntoIterator<Item = U>,
    F: FnMut(T) -> I + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (item, time) in batch.drain() {
            for produced in (self.f)(item) {
                self.out.push(produced, time);
            }
        }
        crate::ops::send(&mut self.out, &mut self.down)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
