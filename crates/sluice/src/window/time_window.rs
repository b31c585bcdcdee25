//! Tumbling and sliding windows after the exchange: events folded and partials merged per window
//! and key, emitted when the watermark passes a window's end and again for late updates; with
//! one instance and nothing exchanged, the lateness check and the windows in one operator.

use super::pre_aggregate::{WindowInput, WindowPartial};
use super::{emit, Emission, LateEvent, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::window::{Lateness, TimeWindows};
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

/// Windows looked up without the ordered map: the last few an event fell in
/// (events come in runs of one tumbling window, or of the same few sliding
/// ones).
const RECENT: usize = 8;

/// Emptied panes kept for new windows (no rehashing as a window fills up);
/// beyond that, a dropped window's memory is given back.
const SPARE: usize = 16;

/// After the exchange: folds events (and merges partial aggregates) of
/// tumbling and sliding windows into one pane of keys per window, and emits
/// when the watermark passes a window's end (and again for late updates).
pub(crate) struct TimeWindowOperator<T, K, A: Aggregate<T>> {
    aggregate: A,
    windows: TimeWindows,
    lateness: Lateness,
    early: Option<Duration>,
    clock: Arc<dyn Clock>,
    next_early: Option<Duration>,
    /// Open windows by (end, start): their pane in `slab`.
    panes: BTreeMap<(Timestamp, Timestamp), usize>,
    slab: Vec<Pane<K, A::Acc>>,
    /// Panes of dropped windows, emptied.
    free: Vec<usize>,
    /// The last windows looked up, with their pane, latest last.
    recent: Vec<((Timestamp, Timestamp), usize)>,
    watermark: Timestamp,
    /// Late updates of closed windows, to emit after the batch.
    updated: Vec<(Timestamp, Timestamp, K)>,
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
        windows: TimeWindows,
        lateness: Lateness,
        early: Option<Duration>,
        clock: Arc<dyn Clock>,
        counters: Arc<WindowCounters>,
        down: Downstream<WindowResult<K, A::Output>>,
    ) -> Self {
        Self {
            aggregate,
            windows,
            lateness,
            early,
            clock,
            next_early: None,
            panes: BTreeMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            recent: Vec::with_capacity(RECENT),
            watermark: MIN_TIMESTAMP,
            updated: Vec::new(),
            counters,
            out: Batch::new(),
            down,
            _in: PhantomData,
        }
    }

    fn flush(&mut self) -> OperatorResult {
        super::send_results(&mut self.out, &mut self.down, &self.counters)
    }

    /// The pane of `(start, end)`, made if new; `None` when this worker
    /// has dropped the window (counted: see `WindowCounters::late_partials`).
    /// The window looked up last is the one asked for most often: checked
    /// inline, the rest in a call.
    #[inline(always)]
    fn pane(&mut self, (start, end): (Timestamp, Timestamp)) -> Option<usize> {
        match self.recent.last() {
            Some(&(window, pane)) if window == (end, start) => Some(pane),
            _ => self.pane_looked_up((start, end)),
        }
    }

    #[inline(never)]
    fn pane_looked_up(&mut self, (start, end): (Timestamp, Timestamp)) -> Option<usize> {
        if let Some(&(_, pane)) = self.recent.iter().rev().find(|(w, _)| *w == (end, start)) {
            return Some(pane);
        }
        if self.lateness.is_closed(end, self.watermark) {
            self.counters.add_late_partial();
            return None;
        }
        let Self {
            panes, slab, free, ..
        } = self;
        let pane = *panes.entry((end, start)).or_insert_with(|| {
            free.pop().unwrap_or_else(|| {
                slab.push(Pane::default());
                slab.len() - 1
            })
        });
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(((end, start), pane));
        Some(pane)
    }

    /// Folds `value` into `key`'s slot of `window`: one hash and probe.
    #[inline]
    fn fold(&mut self, window: (Timestamp, Timestamp), key: K, value: Value<'_, T, A::Acc>) {
        if let Some(pane) = self.pane(window) {
            self.fold_in(pane, window, key, value);
        }
    }

    /// Folds `value` into `key`'s slot in `pane`, the pane of `window`.
    #[inline(always)]
    fn fold_in(
        &mut self,
        pane: usize,
        (start, end): (Timestamp, Timestamp),
        key: K,
        value: Value<'_, T, A::Acc>,
    ) {
        let closed = end <= self.watermark;
        let aggregate = &self.aggregate;
        match self.slab[pane].entry(key) {
            Entry::Occupied(mut known) => {
                // A closed window's slot is dirty only while its late
                // update waits in `updated`: once is enough.
                if closed && !known.get().dirty {
                    self.updated.push((end, start, known.key().clone()));
                }
                let slot = known.get_mut();
                match value {
                    Value::Event(event) => aggregate.update(&mut slot.acc, event),
                    Value::Partial(acc) => aggregate.merge(&mut slot.acc, &acc),
                }
                slot.dirty = true;
            }
            Entry::Vacant(new) => {
                if closed {
                    self.updated.push((end, start, new.key().clone()));
                }
                let acc = match value {
                    Value::Event(event) => {
                        let mut acc = aggregate.init();
                        aggregate.update(&mut acc, event);
                        acc
                    }
                    Value::Partial(acc) => acc,
                };
                new.insert(Slot {
                    acc,
                    emitted: 0,
                    dirty: true,
                });
            }
        }
    }

    /// Emits every window the watermark has closed, drops those beyond the
    /// allowed lateness (keeping a few emptied panes for new windows).
    fn advance(&mut self, watermark: Timestamp) -> OperatorResult {
        let previous = self.watermark;
        self.watermark = watermark;
        let range = (
            Excluded((previous, MAX_TIMESTAMP)),
            Included((watermark, MAX_TIMESTAMP)),
        );
        let Self {
            panes,
            slab,
            aggregate,
            out,
            ..
        } = self;
        for (&window, &pane) in panes.range(range) {
            for (key, slot) in slab[pane].iter_mut() {
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
            // Panes that keep their memory are taken first (from the end).
            let pane = entry.remove();
            if self.free.len() < SPARE {
                self.slab[pane].clear();
                self.free.push(pane);
            } else {
                self.slab[pane] = Pane::default();
                self.free.insert(0, pane);
            }
            self.recent.clear();
        }
        self.flush()
    }

    fn fire_early(&mut self) {
        let Self {
            panes,
            slab,
            aggregate,
            out,
            watermark,
            ..
        } = self;
        let open = (
            Excluded((*watermark, MAX_TIMESTAMP)),
            std::ops::Bound::Unbounded,
        );
        for (&window, &pane) in panes.range(open) {
            for (key, slot) in slab[pane].iter_mut().filter(|(_, s)| s.dirty) {
                emit(
                    out,
                    row(&*aggregate, key.clone(), window, slot, Emission::Early),
                );
            }
        }
    }
}

/// What is folded into a slot: an event, or a partial aggregate of events.
enum Value<'a, T, Acc> {
    Event(&'a T),
    Partial(Acc),
}

/// What the windows take: events and partials (tumbling windows), or
/// partials only (sliding windows, whose events fold before the exchange).
pub(crate) trait TimeWindowInput<T, K, A: Aggregate<T>>: Send + Sized {
    /// Folds this input, of event time `time`, into `windows`.
    fn fold_into(self, time: Timestamp, windows: &mut TimeWindowOperator<T, K, A>);
}

impl<T, K, A> TimeWindowInput<T, K, A> for WindowPartial<K, A::Acc>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    #[inline]
    fn fold_into(self, _: Timestamp, windows: &mut TimeWindowOperator<T, K, A>) {
        let WindowPartial {
            key,
            start,
            end,
            acc,
        } = self;
        windows.fold((start, end), key, Value::Partial(acc));
    }
}

impl<T, K, A> TimeWindowInput<T, K, A> for WindowInput<K, T, A::Acc>
where
    T: Send,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    #[inline]
    fn fold_into(self, time: Timestamp, windows: &mut TimeWindowOperator<T, K, A>) {
        match self {
            // A tumbling window starts where the event's windows do.
            WindowInput::Event { key, event, from } if windows.windows.is_tumbling() => {
                let window = (from, from.saturating_add(windows.windows.size()));
                windows.fold(window, key, Value::Event(&event));
            }
            WindowInput::Event { key, event, from } => {
                let mut assigned = windows
                    .windows
                    .assign(time)
                    .take_while(|&(start, _)| start >= from);
                if let Some(mut window) = assigned.next() {
                    for next in assigned {
                        windows.fold(window, key.clone(), Value::Event(&event));
                        window = next;
                    }
                    windows.fold(window, key, Value::Event(&event));
                }
            }
            WindowInput::Partial(partial) => (*partial).fold_into(time, windows),
        }
    }
}

impl<T, K, A> TimeWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    /// After a batch: the closed windows it updated emit again, then the
    /// results go on.
    fn finish_batch(&mut self) -> OperatorResult {
        let Self {
            panes,
            slab,
            aggregate,
            out,
            updated,
            ..
        } = self;
        for (end, start, key) in updated.drain(..) {
            let slot = panes
                .get(&(end, start))
                .and_then(|&pane| slab[pane].get_mut(&key));
            if let Some(slot) = slot.filter(|s| s.dirty) {
                emit(
                    out,
                    row(&*aggregate, key, (end, start), slot, Emission::Late),
                );
            }
        }
        self.flush()
    }

    /// Early results when their interval is due; the next deadline.
    fn tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
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

    fn watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        if watermark > self.watermark {
            self.advance(watermark)?;
        }
        self.down.on_watermark(watermark)
    }

    fn end(&mut self) -> OperatorResult {
        if self.watermark < MAX_TIMESTAMP {
            self.advance(MAX_TIMESTAMP)?;
        }
        self.down.on_end()
    }
}

impl<T, K, A, I> Operator<I> for TimeWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
    I: TimeWindowInput<T, K, A>,
{
    fn on_batch(&mut self, batch: &mut Batch<I>) -> OperatorResult {
        for (input, time) in batch.drain() {
            input.fold_into(time, self);
        }
        self.finish_batch()
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.tick(now)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.watermark(watermark)
    }

    fn on_end(&mut self) -> OperatorResult {
        self.end()
    }

    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}

/// The windows of one instance that has every key (one worker: nothing is
/// exchanged): the lateness check and the windows in one operator, each
/// event folded straight into its window's pane (not first written out as
/// a [`WindowInput`] for a stage behind).
pub(crate) struct DirectTimeWindows<T, K, A: Aggregate<T>> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub late: Downstream<LateEvent<T>>,
    pub late_batch: Batch<LateEvent<T>>,
    pub windows: TimeWindowOperator<T, K, A>,
}

impl<T, K, A> DirectTimeWindows<T, K, A>
where
    T: Clone,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    /// Folds `item` into `window`, or sends it to the late stream when the
    /// window is beyond the allowed lateness: the window's pane if it folded,
    /// `None` if it went to the late stream.
    #[inline]
    fn fold(
        &mut self,
        key: K,
        item: &T,
        time: Timestamp,
        window: (Timestamp, Timestamp),
    ) -> Option<usize> {
        match self.windows.lateness.judge(window, self.windows.watermark) {
            Some(late) => {
                self.late_batch
                    .push(LateEvent::new(item.clone(), time, late), time);
                None
            }
            None => {
                let pane = self.windows.pane(window)?;
                self.windows.fold_in(pane, window, key, Value::Event(item));
                Some(pane)
            }
        }
    }
}

impl<T, K, A> Operator<T> for DirectTimeWindows<T, K, A>
where
    T: Clone + Send,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let windows = self.windows.windows;
        // The tumbling window of the last event (most events fall in it),
        // and its pane if it is open (the watermark stays put within a
        // batch, and no pane goes away).
        let mut last: Option<((Timestamp, Timestamp), Option<usize>)> = None;
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            match last.filter(|&((start, end), _)| start <= time && time < end) {
                Some((window, Some(pane))) => {
                    self.windows.fold_in(pane, window, key, Value::Event(item))
                }
                Some((window, None)) => {
                    self.fold(key, item, time, window);
                }
                None if windows.is_tumbling() => {
                    if let Some(window) = windows.assign(time).next() {
                        let pane = self.fold(key, item, time, window);
                        last = Some((window, pane));
                    }
                }
                None => {
                    for window in windows.assign(time) {
                        self.fold(key.clone(), item, time, window);
                    }
                }
            }
        }
        if !self.late_batch.is_empty() {
            self.windows.counters.add_late(self.late_batch.len() as u64);
            self.late.on_batch(&mut self.late_batch)?;
            self.late_batch.clear();
        }
        self.windows.finish_batch()
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let late = self.late.on_tick(now)?;
        let down = self.windows.tick(now)?;
        Ok(match (late, down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.late.on_watermark(watermark)?;
        self.windows.watermark(watermark)
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.late.on_idle()?;
        self.windows.down.on_idle()
    }

    fn on_barrier(&mut self, barrier: sluice_runtime::Barrier) -> OperatorResult {
        self.late.on_barrier(barrier)?;
        self.windows.down.on_barrier(barrier)
    }

    fn on_end(&mut self) -> OperatorResult {
        self.late.on_end()?;
        self.windows.end()
    }

    /// Two outputs (the results and the late stream): every hook passes its
    /// signal on by hand, so none can skip the late stream.
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}
