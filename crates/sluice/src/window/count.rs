use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Aggregate, Batch, Timestamp};
use sluice_runtime::{Operator, OperatorError, OperatorResult};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct CountSlot<Acc> {
    acc: Acc,
    count: u64,
    first: Timestamp,
    last: Timestamp,
}

/// Count windows: every `size` events of a key (in arrival order) make one
/// result; at the end of the input, the partial windows emit too. Bounds are
/// those of the events' times: `[earliest, latest + 1)`.
pub(crate) struct CountWindowOperator<T, K, A: Aggregate<T>> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub size: u64,
    pub aggregate: A,
    pub slots: FxHashMap<K, CountSlot<A::Acc>>,
    /// Keys in the order they first appeared, for a deterministic end.
    pub order: Vec<K>,
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
        emit(&mut self.out, row, &self.counters);
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
            let slot = match self.slots.get_mut(&key) {
                Some(slot) => slot,
                None => {
                    self.order.push(key.clone());
                    self.slots.entry(key.clone()).or_insert(CountSlot {
                        acc: self.aggregate.init(),
                        count: 0,
                        first: time,
                        last: time,
                    })
                }
            };
            if slot.count == 0 {
                slot.first = time;
                slot.last = time;
            }
            self.aggregate.update(&mut slot.acc, item);
            slot.count += 1;
            slot.first = slot.first.min(time);
            slot.last = slot.last.max(time);
            if slot.count == self.size {
                let full = std::mem::replace(
                    slot,
                    CountSlot {
                        acc: self.aggregate.init(),
                        count: 0,
                        first: time,
                        last: time,
                    },
                );
                self.emit_slot(key, &full);
            }
        }
        crate::ops::send(&mut self.out, &mut self.down)?;
        Ok(())
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.down.on_tick(now)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.down.on_watermark(watermark)
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.down.on_idle()
    }

    fn on_end(&mut self) -> OperatorResult {
        for key in std::mem::take(&mut self.order) {
            if let Some(slot) = self.slots.remove(&key) {
                if slot.count > 0 {
                    self.emit_slot(key, &slot);
                }
            }
        }
        crate::ops::send(&mut self.out, &mut self.down)?;
        self.down.on_end()
    }
}
