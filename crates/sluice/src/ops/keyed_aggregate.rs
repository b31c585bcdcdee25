//! Per-key aggregates: each batch pre-aggregated per key before the exchange, and merged after it.

use super::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Aggregate, Batch, Timestamp};
use sluice_runtime::{Operator, OperatorResult};
use std::hash::Hash;

/// A key and the partial aggregate of its events in one batch.
pub(crate) type KeyedPartial<K, Acc> = (K, Acc);

/// Before the exchange: folds each batch into one partial aggregate per key
/// (pre-aggregation), so that only one record per key and batch crosses
/// between workers.
pub(crate) struct KeyedPreAggregate<T, K, A: Aggregate<T>, F> {
    pub key: F,
    pub aggregate: A,
    pub partials: FxHashMap<K, (A::Acc, Timestamp)>,
    pub out: Batch<KeyedPartial<K, A::Acc>>,
    pub down: Downstream<KeyedPartial<K, A::Acc>>,
}

impl<T, K, A, F> Operator<T> for KeyedPreAggregate<T, K, A, F>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    F: FnMut(&T) -> K + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            let aggregate = &self.aggregate;
            let (acc, latest) = self
                .partials
                .entry(key)
                .or_insert_with(|| (aggregate.init(), time));
            aggregate.update(acc, item);
            *latest = (*latest).max(time);
        }
        for (key, (acc, latest)) in self.partials.drain() {
            self.out.push((key, acc), latest);
        }
        crate::ops::send(&mut self.out, &mut self.down)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}

/// After the exchange: merges the partial aggregates of each key and emits
/// `(key, result)` at the end of the input, in the order the keys arrived.
pub(crate) struct KeyedMerge<K, In, A: Aggregate<In>> {
    pub aggregate: A,
    pub index: FxHashMap<K, usize>,
    pub states: Vec<(K, A::Acc, Timestamp)>,
    pub down: Downstream<(K, A::Output)>,
    pub _in: std::marker::PhantomData<fn(In)>,
}

impl<K, In, A> Operator<KeyedPartial<K, A::Acc>> for KeyedMerge<K, In, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<In>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<KeyedPartial<K, A::Acc>>) -> OperatorResult {
        for ((key, partial), time) in batch.drain() {
            match self.index.get(&key) {
                Some(&slot) => {
                    let (_, acc, latest) = &mut self.states[slot];
                    self.aggregate.merge(acc, &partial);
                    *latest = (*latest).max(time);
                }
                None => {
                    self.index.insert(key.clone(), self.states.len());
                    self.states.push((key, partial, time));
                }
            }
        }
        Ok(())
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
