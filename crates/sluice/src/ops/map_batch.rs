//! `MapBatch`: a batch algorithm, one output per batch at the batch's latest event time.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};

/// A batch algorithm: one output per batch, at the batch's latest event time.
pub(crate) struct MapBatch<T, R, F> {
    pub f: F,
    pub out: Batch<R>,
    pub down: Downstream<R>,
    pub _in: std::marker::PhantomData<fn(T)>,
}

impl<T, R, F> Operator<T> for MapBatch<T, R, F>
where
    R: Send,
    F: FnMut(&[T]) -> R + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let Some(time) = batch.max_time() else {
            return Ok(());
        };
        let result = (self.f)(batch.items());
        self.out.push(result, time);
        self.down.on_batch(&mut self.out)?;
        self.out.clear();
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
