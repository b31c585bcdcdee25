//! `Map`: a function applied to every event, with event times handed on without copying.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};

/// `f` applied to every event; event times are handed on without copying.
pub(crate) struct Map<T, U, F> {
    pub f: F,
    pub out: Batch<U>,
    pub down: Downstream<U>,
    pub _in: std::marker::PhantomData<fn(T)>,
}

impl<T, U, F> Operator<T> for Map<T, U, F>
where
    U: Send,
    F: FnMut(T) -> U + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let (items, times) = batch.parts_mut();
        let (out_items, out_times) = self.out.parts_mut();
        out_items.extend(items.drain(..).map(&mut self.f));
        std::mem::swap(out_times, times);
        self.down.on_batch(&mut self.out)?;
        self.out.clear();
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
