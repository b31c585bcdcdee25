//! Count windows: one result for every `n` events of a key, and the partial windows at the end.

use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Aggregate, Batch, Timestamp};
use sluice_runtime::{Operator, OperatorResult};
use std::hash::Hash;
use std::sync::Arc;

pub(crate) struct CountSlot<Acc> {
    acc: Acc,
    count: u64,
    first: Timestamp,
    last: Timestamp,
    /// When the slot was opened, for a deterministic order at the end.
    opened: u64,
}

/// Count windows: every `size` events of a key (in arrival order) make one
/// result; at the end of the input, the partial windows emit too. Bounds are
/// those of the events' times: `[earliest, latest + 1)`.
pub(crate) struct CountWindowOperator<T, K, A: Aggregate<T>> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub size: u64,
    pub aggregate: A,
    pub slots: FxHashMap<K, CountSlot<A::Acc>>,
    /// Slots opened so far (orders the partial windows at the end).
    pub opened: u64,
    pub counters: Arc<WindowCounters>,
    pub out: Batch<WindowResult<K, A::Output>>,
    pub down: Downstream<WindowResult<K, A::Output>>,
}

impl<T, K, A> CountWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    fn emit_slot(&mut self, key: K, slot: &CountSlot<A::Acc>) {
        let row = WindowResult {
            key,
            window_start: slot.first,
            window_end: slot.last.saturating_add(1),
            value: self.aggregate.finish(&slot.acc),
            emission: Emission::OnTime,
            revision: 0,
        };
        emit(&mut self.out, row);
    }
}

impl<T, K, A> Operator<T> for CountWindowOperator<T, K, A>
where
    T: Send,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            let aggregate = &self.aggregate;
            let opened = &mut self.opened;
            let slot = self.slots.entry(key.clone()).or_insert_with(|| {
                *opened += 1;
                CountSlot {
                    acc: aggregate.init(),
                    count: 0,
                    first: time,
                    last: time,
                    opened: *opened,
                }
            });
            aggregate.update(&mut slot.acc, item);
            slot.count += 1;
            slot.first = slot.first.min(time);
            slot.last = slot.last.max(time);
            if slot.count == self.size {
                // A full window: emitted, and its slot freed.
                if let Some(full) = self.slots.remove(&key) {
                    self.emit_slot(key, &full);
                }
            }
        }
        super::send_results(&mut self.out, &mut self.down, &self.counters)
    }

    fn on_end(&mut self) -> OperatorResult {
        let mut partial: Vec<(K, CountSlot<A::Acc>)> = self.slots.drain().collect();
        partial.sort_by_key(|(_, slot)| slot.opened);
        for (key, slot) in partial {
            self.emit_slot(key, &slot);
        }
        super::send_results(&mut self.out, &mut self.down, &self.counters)?;
        self.down.on_end()
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
