//! The global aggregate: folds each batch, merges it into a total, and emits that at the end.

use super::Downstream;
use sluice_core::{Aggregate, Batch, Timestamp, MIN_TIMESTAMP};
use sluice_runtime::{Operator, OperatorResult};

/// One aggregate over the whole input, computed the micro-batch way: each
/// batch is folded on its own (the batch algorithm), and the partial result
/// is merged into the total. The result is emitted at the end of the input.
pub(crate) struct GlobalAggregate<T, A: Aggregate<T>> {
    pub aggregate: A,
    pub total: A::Acc,
    pub latest: Timestamp,
    pub down: Downstream<A::Output>,
}

impl<T, A> Operator<T> for GlobalAggregate<T, A>
where
    A: Aggregate<T>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let partial = self.aggregate.fold(batch.items());
        self.aggregate.merge(&mut self.total, &partial);
        if let Some(time) = batch.max_time() {
            self.latest = self.latest.max(time);
        }
        Ok(())
    }
    fn on_end(&mut self) -> OperatorResult {
        let result = self.aggregate.finish(&self.total);
        let time = if self.latest == MIN_TIMESTAMP {
            0
        } else {
            self.latest
        };
        self.down
            .on_batch(&mut Batch::from_parts(vec![result], vec![time]))?;
        self.down.on_end()
    }
    // Its result comes at the end, with the latest event time: a watermark
    // passed on before it would overtake it.
    fn on_watermark(&mut self, _watermark: Timestamp) -> OperatorResult {
        Ok(())
    }
    fn on_idle(&mut self) -> OperatorResult {
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
