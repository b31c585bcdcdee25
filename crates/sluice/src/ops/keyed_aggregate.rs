use super::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Aggregate, Batch, Timestamp};
use sluice_runtime::{Operator, OperatorError, OperatorResult};
use std::hash::Hash;
use std::time::Duration;

/// One aggregate per key over the whole input, emitted at the end of the
/// input as `(key, result)` in the order the keys first appeared.
pub(crate) struct KeyedAggregate<T, K, A: Aggregate<T>, F> {
    pub key: F,
    pub aggregate: A,
    pub index: FxHashMap<K, usize>,
    pub states: Vec<(K, A::Acc, Timestamp)>,
    pub down: Downstream<(K, A::Output)>,
}

impl<T, K, A, F> Operator<T> for KeyedAggregate<T, K, A, F>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
    F: FnMut(&T) -> K + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            let slot = match self.index.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = self.states.len();
                    self.index.insert(key.clone(), slot);
                    self.states.push((key, self.aggregate.init(), time));
                    slot
                }
            };
            let (_, acc, latest) = &mut self.states[slot];
            self.aggregate.update(acc, item);
            *latest = (*latest).max(time);
        }
        Ok(())
    }
    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.down.on_tick(now)
    }
    fn on_end(&mut self) -> OperatorResult {
        let mut out = Batch::with_capacity(self.states.len());
        for (key, acc, latest) in self.states.drain(..) {
            out.push((key, self.aggregate.finish(&acc)), latest);
        }
        self.index.clear();
        if !out.is_empty() {
            self.down.on_batch(&mut out)?;
        }
        self.down.on_end()
    }
}
