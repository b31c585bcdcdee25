//! Window pre-aggregation before the exchange: events assigned to windows, late ones sent aside,
//! and each batch folded into one partial aggregate per key and window.

use super::{LateEvent, WindowCounters};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
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

/// Before the exchange: assigns events to windows, sends events beyond the
/// allowed lateness to the late stream, and folds the rest of each batch
/// into one partial aggregate per key and window.
///
/// Folding pays when a batch has several events per key and window. When
/// it has about one (many keys, short windows), the hash map only costs: a
/// batch of time windows that folded to at least three partials per four
/// window assignments (one per two on a single worker, where no partial
/// crosses to another core) makes the next [`DIRECT_BATCHES`] batches skip it,
/// each assignment becoming a partial of its own; then a batch folds again
/// to look. Session windows always fold.
pub(crate) struct WindowPreAggregate<T, K, A: Aggregate<T>> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub aggregate: A,
    pub assigner: Assigner,
    pub lateness: Lateness,
    pub watermark: Timestamp,
    pub partials: FxHashMap<(K, Timestamp, Timestamp), (A::Acc, Timestamp)>,
    /// Batches still to pass without folding.
    pub direct: u32,
    /// Window assignments of this batch that were not late.
    pub assigned: usize,
    /// Partials go to other workers: folding also saves their transfer,
    /// so it pays at more partials per assignment than on one worker.
    pub exchanged: bool,
    pub late: Downstream<LateEvent<T>>,
    pub late_batch: Batch<LateEvent<T>>,
    pub counters: Arc<WindowCounters>,
    pub out: Batch<WindowPartial<K, A::Acc>>,
    pub down: Downstream<WindowPartial<K, A::Acc>>,
}

/// Batches that skip folding after one that folded to little.
const DIRECT_BATCHES: u32 = 15;

impl<T, K, A> WindowPreAggregate<T, K, A>
where
    T: Clone,
    K: Hash + Eq + Clone,
    A: Aggregate<T>,
{
    fn add(
        &mut self,
        key: &K,
        item: &T,
        time: Timestamp,
        (start, end): (Timestamp, Timestamp),
        direct: bool,
    ) {
        let late = match self.assigner {
            // A session's lateness is judged on the session the event opens.
            Assigner::Session(_) => self.lateness.judge_session((start, end), self.watermark),
            _ => self.lateness.judge((start, end), self.watermark),
        };
        if let Some(late) = late {
            let reason = late.to_string();
            self.late_batch.push(
                LateEvent {
                    event: item.clone(),
                    time,
                    window_start: start,
                    window_end: end,
                    watermark: self.watermark,
                    reason,
                },
                time,
            );
            return;
        }
        self.assigned += 1;
        let aggregate = &self.aggregate;
        if direct {
            let mut acc = aggregate.init();
            aggregate.update(&mut acc, item);
            self.out.push(
                WindowPartial {
                    key: key.clone(),
                    start,
                    end,
                    acc,
                },
                time,
            );
            return;
        }
        let (acc, latest) = self
            .partials
            .entry((key.clone(), start, end))
            .or_insert_with(|| (aggregate.init(), time));
        aggregate.update(acc, item);
        *latest = (*latest).max(time);
    }
}

impl<T, K, A> Operator<T> for WindowPreAggregate<T, K, A>
where
    T: Clone + Send,
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let direct = self.direct > 0;
        self.direct = self.direct.saturating_sub(1);
        self.assigned = 0;
        // The tumbling window of the last event: most events fall in it.
        let mut last: Option<(Timestamp, Timestamp)> = None;
        for (item, time) in batch.iter() {
            let key = (self.key)(item);
            match self.assigner {
                Assigner::Time(windows) => {
                    if let Some(window) = last.filter(|&(start, end)| start <= time && time < end) {
                        self.add(&key, item, time, window, direct);
                        continue;
                    }
                    for window in windows.assign(time) {
                        self.add(&key, item, time, window, direct);
                        last = Some(window).filter(|_| windows.is_tumbling());
                    }
                }
                // Session partials fold only at equal times: always fold,
                // so that a batch's late updates of one session stay one.
                Assigner::Session(sessions) => {
                    self.add(&key, item, time, sessions.assign(time), false)
                }
                Assigner::None => {}
            }
        }
        // Sliding windows assign an event to several windows: compare the
        // partials with the assignments, not the events.
        let time_windows = matches!(self.assigner, Assigner::Time(_));
        if time_windows
            && !direct
            && self.assigned >= 64
            && if self.exchanged {
                self.partials.len() * 4 >= self.assigned * 3
            } else {
                self.partials.len() * 2 >= self.assigned
            }
        {
            self.direct = DIRECT_BATCHES;
        }
        if !self.late_batch.is_empty() {
            self.counters.add_late(self.late_batch.len() as u64);
            self.late.on_batch(&mut self.late_batch)?;
            self.late_batch.clear();
        }
        for ((key, start, end), (acc, latest)) in self.partials.drain() {
            self.out.push(
                WindowPartial {
                    key,
                    start,
                    end,
                    acc,
                },
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
