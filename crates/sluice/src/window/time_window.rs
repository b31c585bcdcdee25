//! Tumbling and sliding windows after the exchange: partials merged per window and key, emitted
//! when the watermark passes a window's end and again for late updates.

use super::pre_aggregate::WindowPartial;
use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::window::Lateness;
use sluice_core::{Aggregate, Batch, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use sluice_runtime::{Clock, Operator, OperatorError, OperatorResult};
use std::collections::hash_map::Entry;
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

/// The result row of one key's window, counted as one more emission.
fn row<T, K, A: Aggregate<T>>(
    aggregate: &A,
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
        value: aggregate.finish(&slot.acc),
        emission,
        revision,
    }
}

/// The keys of one window and their state.
type Pane<K, Acc> = FxHashMap<K, Slot<Acc>>;

/// After the exchange: merges partial aggregates of tumbling and sliding
/// windows, one pane of keys per window, and emits when the watermark
/// passes a window's end (and again for late updates).
pub(crate) struct TimeWindowOperator<T, K, A: Aggregate<T>> {
    aggregate: A,
    lateness: Lateness,
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
        lateness: Lateness,
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

    fn flush(&mut self) -> OperatorResult {
        super::send_results(&mut self.out, &mut self.down, &self.counters)
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
            ..
        } = self;
        for (&window, pane) in panes.range_mut(range) {
            for (key, slot) in pane.iter_mut() {
                emit(
                    out,
                    row(&*aggregate, key.clone(), window, slot, Emission::OnTime),
                );
            }
        }
        while let Some(entry) = self.panes.first_entry() {
            let (end, _) = *entry.key();
            if !self.lateness.is_closed(end, watermark) {
                break;
            }
            let mut pane = entry.remove();
            if self.spare.len() < 16 {
                pane.clear();
                self.spare.push(pane);
            }
        }
        self.flush()
    }

    fn fire_early(&mut self) {
        let Self {
            panes,
            aggregate,
            out,
            watermark,
            ..
        } = self;
        let open = (
            Excluded((*watermark, MAX_TIMESTAMP)),
            std::ops::Bound::Unbounded,
        );
        for (&window, pane) in panes.range_mut(open) {
            for (key, slot) in pane.iter_mut().filter(|(_, s)| s.dirty) {
                emit(
                    out,
                    row(&*aggregate, key.clone(), window, slot, Emission::Early),
                );
            }
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
        let Self {
            panes,
            spare,
            aggregate,
            updated,
            counters,
            watermark,
            lateness,
            ..
        } = self;
        // Partials come in runs of one window: one pane lookup per run.
        let mut partials = batch.drain().map(|(partial, _)| partial).peekable();
        while let Some(first) = partials.next() {
            let (start, end) = (first.start, first.end);
            if lateness.is_closed(end, *watermark) {
                // Its window was dropped here already (see WindowCounters::late_partials).
                counters.add_late_partial();
                continue;
            }
            let closed = end <= *watermark;
            let pane = panes
                .entry((end, start))
                .or_insert_with(|| spare.pop().unwrap_or_default());
            let mut next = Some(first);
            while let Some(partial) = next {
                // One hash and probe per partial, new key or not.
                match pane.entry(partial.key) {
                    Entry::Occupied(mut known) => {
                        let slot = known.get_mut();
                        aggregate.merge(&mut slot.acc, &partial.acc);
                        slot.dirty = true;
                        if closed {
                            updated.push((end, start, known.key().clone()));
                        }
                    }
                    Entry::Vacant(new) => {
                        if closed {
                            updated.push((end, start, new.key().clone()));
                        }
                        new.insert(Slot {
                            acc: partial.acc,
                            emitted: 0,
                            dirty: true,
                        });
                    }
                }
                next = partials.next_if(|p| p.start == start && p.end == end);
            }
        }
        let Self {
            panes,
            aggregate,
            out,
            updated,
            ..
        } = self;
        for (end, start, key) in updated.drain(..) {
            let slot = panes
                .get_mut(&(end, start))
                .and_then(|pane| pane.get_mut(&key));
            if let Some(slot) = slot.filter(|s| s.dirty) {
                emit(
                    out,
                    row(&*aggregate, key, (end, start), slot, Emission::Late),
                );
            }
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

    fn on_end(&mut self) -> OperatorResult {
        if self.watermark < MAX_TIMESTAMP {
            self.advance(MAX_TIMESTAMP)?;
        }
        self.down.on_end()
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
