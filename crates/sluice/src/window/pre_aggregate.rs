//! Window pre-aggregation before the exchange: events assigned to windows, late ones sent aside,
//! and each batch folded into one partial aggregate per key and window, or, where folding does
//! not pay, each event passed on with its key.

use super::{LateEvent, WindowCounters};
use crate::ops::Downstream;
use rustc_hash::{FxHashMap, FxHashSet};
use sluice_core::window::{Lateness, SessionWindows, TimeWindows};
use sluice_core::{Aggregate, Batch, Timestamp};
use sluice_runtime::{Operator, OperatorError, OperatorResult};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// How events are assigned to windows before the exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Assigner {
    Time(TimeWindows),
    Session(SessionWindows),
    /// Count and global windows: no pre-aggregation.
    None,
}

/// The partial aggregate of one key's events in one window, from one batch.
#[derive(Debug, Clone)]
pub(crate) struct WindowPartial<K, Acc> {
    pub key: K,
    pub start: Timestamp,
    pub end: Timestamp,
    pub acc: Acc,
}

/// What time windows get after the exchange: an event with its key, or the
/// events of one key and window folded before the exchange.
#[derive(Debug, Clone)]
pub(crate) enum WindowInput<K, T, Acc> {
    /// An event, for those of its windows that start at `from` or later
    /// (the earlier ones were beyond the allowed lateness where it was read).
    Event { key: K, event: T, from: Timestamp },
    /// Boxed: a partial is several events' worth, and an event stays small.
    Partial(Box<WindowPartial<K, Acc>>),
}

/// What the pre-aggregation sends on: partials only (sessions), or events
/// and partials (time windows).
pub(crate) trait PreOutput<K, T, Acc>: Sized {
    /// Whether events can pass on unfolded.
    const EVENTS: bool;
    /// The key it is exchanged by.
    fn key(&self) -> &K;
    fn partial(partial: WindowPartial<K, Acc>) -> Self;
    /// The event itself, or `None` where events always fold.
    fn event(key: K, event: &T, from: Timestamp) -> Option<Self>;
}

impl<K, T, Acc> PreOutput<K, T, Acc> for WindowPartial<K, Acc> {
    const EVENTS: bool = false;
    fn key(&self) -> &K {
        &self.key
    }
    fn partial(partial: WindowPartial<K, Acc>) -> Self {
        partial
    }
    fn event(_: K, _: &T, _: Timestamp) -> Option<Self> {
        None
    }
}

impl<K, T: Clone, Acc> PreOutput<K, T, Acc> for WindowInput<K, T, Acc> {
    const EVENTS: bool = true;
    fn key(&self) -> &K {
        match self {
            WindowInput::Event { key, .. } => key,
            WindowInput::Partial(partial) => &partial.key,
        }
    }
    fn partial(partial: WindowPartial<K, Acc>) -> Self {
        WindowInput::Partial(Box::new(partial))
    }
    fn event(key: K, event: &T, from: Timestamp) -> Option<Self> {
        Some(WindowInput::Event {
            key,
            event: event.clone(),
            from,
        })
    }
}

/// Before the exchange: assigns events to windows, sends events beyond the
/// allowed lateness to the late stream, and folds the rest of each batch
/// into one partial aggregate per key and window.
///
/// Folding pays when a batch has several events per key and window: fewer
/// partials than events cross to the other workers. When it has about one
/// (many keys, short windows), the hash map only costs, and each event goes
/// on as it is (time windows: `O` is [`WindowInput`]), to be folded into its
/// window once, after the exchange. (Where nothing is exchanged, time
/// windows fold each event straight into its pane: `DirectTimeWindows`.)
/// A batch that folded to more than one partial per three window
/// assignments makes the next [`DIRECT_BATCHES`] batches pass their events
/// on; then a batch is looked at. Sliding windows pass single partials
/// instead (`Mode::Singles`). Session windows always fold.
pub(crate) struct WindowPreAggregate<T, K, A: Aggregate<T>, O> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub aggregate: A,
    pub assigner: Assigner,
    pub lateness: Lateness,
    pub watermark: Timestamp,
    pub partials: FxHashMap<(K, Timestamp, Timestamp), (A::Acc, Timestamp)>,
    /// Batches still to pass without folding.
    pub direct: u32,
    /// The last batch folded, and it paid: fold the next one too.
    pub folding: bool,
    /// The (key, window) pairs of a batch looked at before folding it.
    pub probe: FxHashSet<(K, Timestamp, Timestamp)>,
    /// Window assignments of this batch that were not late.
    pub assigned: usize,
    pub late: Downstream<LateEvent<T>>,
    pub late_batch: Batch<LateEvent<T>>,
    pub counters: Arc<WindowCounters>,
    pub out: Batch<O>,
    pub down: Downstream<O>,
}

/// How a batch of time windows goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Folded into one partial per key and window.
    Fold,
    /// Each event as it is (`O::EVENTS`).
    Events,
    /// A partial of one event per window assignment (where `O` has no
    /// events: sliding windows, whose events would be folded once per
    /// window after the exchange).
    Singles,
}

/// Batches that pass events on after one that folded to little.
const DIRECT_BATCHES: u32 = 31;

/// Batches of singles after one that folded to little.
const SINGLES_BATCHES: u32 = 15;

/// Whether a batch folds to few enough partials to fold it: at most one
/// per three window assignments.
fn pays(partials: usize, assigned: usize) -> bool {
    partials * 3 <= assigned
}

impl<T, K, A, O> WindowPreAggregate<T, K, A, O>
where
    T: Clone,
    K: Hash + Eq + Clone,
    A: Aggregate<T>,
    O: PreOutput<K, T, A::Acc>,
{
    /// How this batch goes on. Events: for [`DIRECT_BATCHES`] after a
    /// batch that folded to little; then a batch is looked at (its distinct
    /// keys and windows counted, nothing folded) to choose. Singles: for
    /// [`SINGLES_BATCHES`] after a batch that folded to little.
    fn mode(&mut self, batch: &Batch<T>) -> Mode {
        let Assigner::Time(windows) = self.assigner else {
            return Mode::Fold;
        };
        if self.direct > 0 {
            self.direct -= 1;
            return if O::EVENTS {
                Mode::Events
            } else {
                Mode::Singles
            };
        }
        if self.folding || !O::EVENTS {
            return Mode::Fold;
        }
        let mut assigned = 0;
        for (item, time) in batch.iter() {
            for (start, end) in windows.assign(time) {
                assigned += 1;
                self.probe.insert(((self.key)(item), start, end));
            }
        }
        self.folding = pays(self.probe.len(), assigned);
        self.probe.clear();
        if self.folding {
            Mode::Fold
        } else {
            self.direct = DIRECT_BATCHES;
            Mode::Events
        }
    }

    /// Sends the event to the late stream when `(start, end)` is beyond the
    /// allowed lateness; true if so.
    fn late(&mut self, item: &T, time: Timestamp, (start, end): (Timestamp, Timestamp)) -> bool {
        let late = match self.assigner {
            // A session's lateness is judged on the session the event opens.
            Assigner::Session(_) => self.lateness.judge_session((start, end), self.watermark),
            _ => self.lateness.judge((start, end), self.watermark),
        };
        if let Some(late) = late {
            self.late_batch
                .push(LateEvent::new(item.clone(), time, late), time);
            return true;
        }
        self.assigned += 1;
        false
    }

    /// Folds the event into its partial of `(start, end)`, unless late.
    fn fold(&mut self, key: &K, item: &T, time: Timestamp, (start, end): (Timestamp, Timestamp)) {
        if !self.late(item, time, (start, end)) {
            self.fold_judged(key, item, time, (start, end));
        }
    }

    /// Folds the event into its partial of a window it is not late for.
    fn fold_judged(
        &mut self,
        key: &K,
        item: &T,
        time: Timestamp,
        (start, end): (Timestamp, Timestamp),
    ) {
        let aggregate = &self.aggregate;
        let (acc, latest) = self
            .partials
            .entry((key.clone(), start, end))
            .or_insert_with(|| (aggregate.init(), time));
        aggregate.update(acc, item);
        *latest = (*latest).max(time);
    }
}

impl<T, K, A, O> Operator<T> for WindowPreAggregate<T, K, A, O>
where
    T: Clone + Send,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    O: PreOutput<K, T, A::Acc> + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let mode = self.mode(batch);
        self.assigned = 0;
        // The tumbling window of the last event (most events fall in it),
        // and whether it is open (the watermark stays put within a batch).
        let mut last: Option<((Timestamp, Timestamp), bool)> = None;
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            match self.assigner {
                Assigner::Time(windows) => {
                    let cached = last.filter(|&((start, end), _)| start <= time && time < end);
                    if mode == Mode::Events {
                        // Windows come latest start first; those beyond the
                        // lateness are the ones that ended first, at the end.
                        let mut from = None;
                        match cached {
                            Some(((start, _), true)) => {
                                self.assigned += 1;
                                from = Some(start);
                            }
                            Some((window, false)) => {
                                self.late(item, time, window);
                            }
                            None => {
                                for window in windows.assign(time) {
                                    let open = !self.late(item, time, window);
                                    if open {
                                        from = Some(window.0);
                                    }
                                    last = Some((window, open)).filter(|_| windows.is_tumbling());
                                }
                            }
                        }
                        if let Some(from) = from {
                            match O::event(key, item, from) {
                                Some(event) => self.out.push(event, time),
                                // Not with `O::EVENTS`; folds what was judged.
                                None => {
                                    let key = (self.key)(item);
                                    windows
                                        .assign(time)
                                        .take_while(|&(start, _)| start >= from)
                                        .for_each(|w| self.fold_judged(&key, item, time, w));
                                }
                            }
                        }
                        continue;
                    }
                    if mode == Mode::Singles {
                        for window in windows.assign(time) {
                            if !self.late(item, time, window) {
                                let mut acc = self.aggregate.init();
                                self.aggregate.update(&mut acc, item);
                                let (start, end) = window;
                                let single = WindowPartial {
                                    key: key.clone(),
                                    start,
                                    end,
                                    acc,
                                };
                                self.out.push(O::partial(single), time);
                            }
                        }
                        continue;
                    }
                    if let Some((window, _)) = cached {
                        self.fold(&key, item, time, window);
                        continue;
                    }
                    for window in windows.assign(time) {
                        self.fold(&key, item, time, window);
                        last = Some((window, true)).filter(|_| windows.is_tumbling());
                    }
                }
                // Session partials fold only at equal times: always fold,
                // so that a batch's late updates of one session stay one.
                Assigner::Session(sessions) => self.fold(&key, item, time, sessions.assign(time)),
                Assigner::None => {}
            }
        }
        // Sliding windows assign an event to several windows: compare the
        // partials with the assignments, not the events. Singles cost less
        // than events' partials after the exchange, so they take over at
        // more partials: three per four assignments (folding also saves
        // their transfer to another core).
        let singles_pay =
            |partials: usize, assigned: usize| assigned >= 64 && partials * 4 >= assigned * 3;
        let (partials, assigned) = (self.partials.len(), self.assigned);
        if mode == Mode::Fold && matches!(self.assigner, Assigner::Time(_)) {
            if O::EVENTS && !pays(partials, assigned) {
                self.direct = DIRECT_BATCHES;
                self.folding = false;
            } else if !O::EVENTS && singles_pay(partials, assigned) {
                self.direct = SINGLES_BATCHES;
            }
        }
        if !self.late_batch.is_empty() {
            self.counters.add_late(self.late_batch.len() as u64);
            self.late.on_batch(&mut self.late_batch)?;
            self.late_batch.clear();
        }
        for ((key, start, end), (acc, latest)) in self.partials.drain() {
            self.out.push(
                O::partial(WindowPartial {
                    key,
                    start,
                    end,
                    acc,
                }),
                latest,
            );
        }
        crate::ops::send(&mut self.out, &mut self.down)
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let late = self.late.on_tick(now)?;
        let down = self.down.on_tick(now)?;
        Ok(match (late, down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.watermark = self.watermark.max(watermark);
        self.late.on_watermark(watermark)?;
        self.down.on_watermark(watermark)
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.late.on_idle()?;
        self.down.on_idle()
    }

    fn on_barrier(&mut self, barrier: sluice_runtime::Barrier) -> OperatorResult {
        self.late.on_barrier(barrier)?;
        self.down.on_barrier(barrier)
    }

    fn on_end(&mut self) -> OperatorResult {
        self.late.on_end()?;
        self.down.on_end()
    }
    /// Two outputs (and a side output): every hook passes its signal on
    /// by hand, so none can skip the side output.
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}
