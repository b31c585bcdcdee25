use super::pre_aggregate::WindowPartial;
use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Aggregate, Batch, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use sluice_runtime::{Clock, Operator, OperatorError, OperatorResult};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;
use std::time::Duration;

/// One key's state in one window.
struct Slot<Acc> {
    acc: Acc,
    /// Results emitted so far: the next result's revision.
    emitted: u32,
    /// Changed since its last result.
    dirty: bool,
}

/// The keys of one window and their state.
type Pane<K, Acc> = FxHashMap<K, Slot<Acc>>;

/// After the exchange: merges partial aggregates of tumbling and sliding
/// windows, one pane of keys per window, and emits when the watermark
/// passes a window's end (and again for late updates).
pub(crate) struct TimeWindowOperator<T, K, A: Aggregate<T>> {
    aggregate: A,
    lateness: i64,
    early: Option<Duration>,
    clock: Arc<dyn Clock>,
    next_early: Option<Duration>,
    /// Panes by (end, start).
    panes: BTreeMap<(Timestamp, Timestamp), Pane<K, A::Acc>>,
    watermark: Timestamp,
    /// Late updates of closed windows, to emit after the batch.
    updated: Vec<(Timestamp, Timestamp, K)>,
    /// Emptied maps of dropped windows, reused for new ones (no rehashing
    /// as a new window fills up).
    spare: Vec<Pane<K, A::Acc>>,
    counters: Arc<WindowCounters>,
    out: Batch<WindowResult<K, A::Output>>,
    down: Downstream<WindowResult<K, A::Output>>,
    _in: PhantomData<fn(T)>,
}

impl<T, K, A> TimeWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    pub fn new(
        aggregate: A,
        lateness: i64,
        early: Option<Duration>,
        clock: Arc<dyn Clock>,
        counters: Arc<WindowCounters>,
        down: Downstream<WindowResult<K, A::Output>>,
    ) -> Self {
        Self {
            aggregate,
            lateness,
            early,
            clock,
            next_early: None,
            panes: BTreeMap::new(),
            watermark: MIN_TIMESTAMP,
            updated: Vec::new(),
            spare: Vec::new(),
            counters,
            out: Batch::new(),
            down,
            _in: PhantomData,
        }
    }

    fn result(
        &self,
        key: K,
        (end, start): (Timestamp, Timestamp),
        slot: &mut Slot<A::Acc>,
        emission: Emission,
    ) -> WindowResult<K, A::Output> {
        let revision = slot.emitted;
        slot.emitted += 1;
        slot.dirty = false;
        WindowResult {
            key,
            window_start: start,
            window_end: end,
            value: self.aggregate.finish(&slot.acc),
            emission,
            revision,
        }
    }

    fn flush(&mut self) -> OperatorResult {
        crate::ops::send(&mut self.out, &mut self.down)
    }

    /// Emits every window the watermark has closed, drops those beyond the
    /// allowed lateness (keeping their maps, emptied, for new windows).
    fn advance(&mut self, watermark: Timestamp) -> OperatorResult {
        let previous = self.watermark;
        self.watermark = watermark;
        let range = (
            Excluded((previous, MAX_TIMESTAMP)),
            Included((watermark, MAX_TIMESTAMP)),
        );
        let Self {
            panes,
            aggregate,
            out,
            counters,
            ..
        } = self;
        for (&(end, start), pane) in panes.range_mut(range) {
            for (key, slot) in pane.iter_mut() {
                let revision = slot.emitted;
                slot.emitted += 1;
                slot.dirty = false;
                let row = WindowResult {
                    key: key.clone(),
                    window_start: start,
                    window_end: end,
                    value: aggregate.finish(&slot.acc),
                    emission: Emission::OnTime,
                    revision,
                };
                emit(out, row, counters);
            }
        }
        while let Some(entry) = self.panes.first_entry() {
            let (end, _) = *entry.key();
            if end.saturating_add(self.lateness) > watermark {
                break;
            }
            let mut pane = entry.remove();
            if self.spare.len() < 4 {
                pane.clear();
                self.spare.push(pane);
            }
        }
        self.flush()
    }

    fn fire_early(&mut self) {
        let watermark = self.watermark;
        let mut rows = Vec::new();
        let open: Vec<(Timestamp, Timestamp)> = self
            .panes
            .keys()
            .filter(|(end, _)| *end > watermark)
            .copied()
            .collect();
        for window in open {
            if let Some(mut pane) = self.panes.remove(&window) {
                for (key, slot) in pane.iter_mut().filter(|(_, s)| s.dirty) {
                    rows.push(self.result(key.clone(), window, slot, Emission::Early));
                }
                self.panes.insert(window, pane);
            }
        }
        for row in rows {
            emit(&mut self.out, row, &self.counters);
        }
    }
}

impl<T, K, A> Operator<WindowPartial<K, A::Acc>> for TimeWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<WindowPartial<K, A::Acc>>) -> OperatorResult {
        for (partial, _) in batch.drain() {
            if partial.end.saturating_add(self.lateness) <= self.watermark {
                // Its window was dropped here already (see WindowCounters::late_partials).
                self.counters.add_late_partial();
                continue;
            }
            let window = (partial.end, partial.start);
            let closed = partial.end <= self.watermark;
            let spare = &mut self.spare;
            let pane = self
                .panes
                .entry(window)
                .or_insert_with(|| spare.pop().unwrap_or_default());
            match pane.get_mut(&partial.key) {
                Some(slot) => {
                    self.aggregate.merge(&mut slot.acc, &partial.acc);
                    slot.dirty = true;
                }
                None => {
                    pane.insert(
                        partial.key.clone(),
                        Slot {
                            acc: partial.acc,
                            emitted: 0,
                            dirty: true,
                        },
                    );
                }
            }
            if closed {
                self.updated.push((partial.end, partial.start, partial.key));
            }
        }
        let updated = std::mem::take(&mut self.updated);
        let mut rows = Vec::new();
        for (end, start, key) in updated {
            let Some(mut pane) = self.panes.remove(&(end, start)) else {
                continue;
            };
            if let Some(slot) = pane.get_mut(&key).filter(|s| s.dirty) {
                rows.push(self.result(key, (end, start), slot, Emission::Late));
            }
            self.panes.insert((end, start), pane);
        }
        for row in rows {
            emit(&mut self.out, row, &self.counters);
        }
        self.flush()
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let mut deadline = self.down.on_tick(now)?;
        if let Some(interval) = self.early {
            let due = *self.next_early.get_or_insert(self.clock.now() + interval);
            if now >= due {
                self.fire_early();
                self.flush()?;
                self.next_early = Some(now + interval);
            }
            let next = self.next_early.unwrap_or(now + interval);
            deadline = Some(deadline.map_or(next, |d| d.min(next)));
        }
        Ok(deadline)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        if watermark > self.watermark {
            self.advance(watermark)?;
        }
        self.down.on_watermark(watermark)
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.down.on_idle()
    }

    fn on_end(&mut self) -> OperatorResult {
        if self.watermark < MAX_TIMESTAMP {
            self.advance(MAX_TIMESTAMP)?;
        }
        self.down.on_end()
    }
}
