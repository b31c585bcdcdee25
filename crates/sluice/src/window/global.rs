//! Global windows: triggers (custom, by count, by event time) and the operator that runs them.

use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::timer::Timers;
use sluice_core::{Aggregate, Batch, Timestamp, MAX_TIMESTAMP};
use sluice_runtime::{Clock, Operator, OperatorError, OperatorResult};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// What a trigger decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerAction {
    /// Keep accumulating.
    Continue,
    /// Emit the current result and keep accumulating.
    Fire,
    /// Emit the current result and start over.
    FireAndPurge,
}

/// What a trigger sees of one key's global window, and how it sets timers.
pub struct TriggerContext<'a> {
    /// Events since the window last started over.
    pub count: u64,
    /// The event time of the event being added (for `on_event`).
    pub event_time: Timestamp,
    /// The operator's watermark.
    pub watermark: Timestamp,
    /// Processing time now (since the pipeline's clock started).
    pub processing_time: Duration,
    event_timers: &'a mut Vec<Timestamp>,
    processing_timers: &'a mut Vec<Duration>,
}

impl TriggerContext<'_> {
    /// Calls `on_event_time` for this key when the watermark reaches `time`.
    pub fn register_event_timer(&mut self, time: Timestamp) {
        self.event_timers.push(time);
    }
    /// Calls `on_processing_time` for this key when the processing clock
    /// reaches `at` (time since the pipeline's clock started).
    pub fn register_processing_timer(&mut self, at: Duration) {
        self.processing_timers.push(at);
    }
}

/// Decides when a key's global window emits. The operator keeps one set of
/// keyed timers; a trigger registers them through its context.
///
/// ```
/// use sluice::window::{Trigger, TriggerAction, TriggerContext};
///
/// /// Emits when an event is over a threshold, then starts over.
/// struct Spike(i64);
/// impl Trigger for Spike {
///     fn on_event(&self, ctx: &mut TriggerContext<'_>) -> TriggerAction {
///         if ctx.event_time > self.0 { TriggerAction::FireAndPurge } else { TriggerAction::Continue }
///     }
/// }
/// ```
pub trait Trigger: Send + Sync + 'static {
    /// An event was added to the key's window.
    fn on_event(&self, ctx: &mut TriggerContext<'_>) -> TriggerAction;
    /// An event-time timer of the key fired.
    fn on_event_time(&self, _time: Timestamp, _ctx: &mut TriggerContext<'_>) -> TriggerAction {
        TriggerAction::Continue
    }
    /// A processing-time timer of the key fired.
    fn on_processing_time(&self, _now: Duration, _ctx: &mut TriggerContext<'_>) -> TriggerAction {
        TriggerAction::Continue
    }
}

/// Fires and starts over every `n` events of a key.
///
/// ```
/// use sluice::prelude::*;
/// use sluice::window::CountTrigger;
/// let window = Window::global(CountTrigger(100));
/// # drop(window);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger(pub u64);

impl Trigger for CountTrigger {
    fn on_event(&self, ctx: &mut TriggerContext<'_>) -> TriggerAction {
        if ctx.count >= self.0 {
            TriggerAction::FireAndPurge
        } else {
            TriggerAction::Continue
        }
    }
}

/// Fires and starts over each time the watermark passes a multiple of
/// `period_ms` after events arrived: an event-time timer per key.
///
/// ```
/// use sluice::prelude::*;
/// use sluice::window::EventTimeTrigger;
/// let window = Window::global(EventTimeTrigger { period_ms: 60_000 });
/// # drop(window);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventTimeTrigger {
    /// The period, in ms.
    pub period_ms: i64,
}

impl Trigger for EventTimeTrigger {
    fn on_event(&self, ctx: &mut TriggerContext<'_>) -> TriggerAction {
        let period = self.period_ms.max(1);
        let next = ctx
            .event_time
            .saturating_sub(ctx.event_time.rem_euclid(period))
            .saturating_add(period);
        ctx.register_event_timer(next);
        TriggerAction::Continue
    }
    fn on_event_time(&self, _time: Timestamp, _ctx: &mut TriggerContext<'_>) -> TriggerAction {
        TriggerAction::FireAndPurge
    }
}

struct Pane<Acc> {
    acc: Acc,
    count: u64,
    first: Timestamp,
    last: Timestamp,
    emitted: u32,
    /// Changed since it last fired.
    dirty: bool,
}

/// The global window: one pane per key, emitted when its trigger says, and
/// at the end of the input.
pub(crate) struct GlobalWindowOperator<T, K, A: Aggregate<T>> {
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    trigger: Arc<dyn Trigger>,
    aggregate: A,
    clock: Arc<dyn Clock>,
    panes: FxHashMap<K, Pane<A::Acc>>,
    event_timers: Timers<K>,
    processing_timers: Timers<K>,
    watermark: Timestamp,
    counters: Arc<WindowCounters>,
    out: Batch<WindowResult<K, A::Output>>,
    down: Downstream<WindowResult<K, A::Output>>,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl<T, K, A> GlobalWindowOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    pub fn new(
        key: Arc<dyn Fn(&T) -> K + Send + Sync>,
        trigger: Arc<dyn Trigger>,
        aggregate: A,
        clock: Arc<dyn Clock>,
        counters: Arc<WindowCounters>,
        down: Downstream<WindowResult<K, A::Output>>,
    ) -> Self {
        Self {
            key,
            trigger,
            aggregate,
            clock,
            panes: FxHashMap::default(),
            event_timers: Timers::default(),
            processing_timers: Timers::default(),
            watermark: sluice_core::MIN_TIMESTAMP,
            counters,
            out: Batch::new(),
            down,
        }
    }

    /// Runs a trigger callback for `key` and applies its decision.
    fn decide(
        &mut self,
        key: &K,
        event_time: Timestamp,
        call: impl FnOnce(&dyn Trigger, &mut TriggerContext<'_>) -> TriggerAction,
    ) {
        let Some(pane) = self.panes.get(key) else {
            return;
        };
        let mut event_timers = Vec::new();
        let mut processing_timers = Vec::new();
        let mut ctx = TriggerContext {
            count: pane.count,
            event_time,
            watermark: self.watermark,
            processing_time: self.clock.now(),
            event_timers: &mut event_timers,
            processing_timers: &mut processing_timers,
        };
        let action = call(&*self.trigger, &mut ctx);
        for t in event_timers {
            self.event_timers.register(key.clone(), t);
        }
        for t in processing_timers {
            self.processing_timers.register(key.clone(), nanos(t));
        }
        if action != TriggerAction::Continue {
            self.fire(key, action == TriggerAction::FireAndPurge);
        }
    }

    fn fire(&mut self, key: &K, purge: bool) {
        let Some(pane) = self.panes.get_mut(key) else {
            return;
        };
        if pane.count == 0 || !pane.dirty {
            return;
        }
        pane.dirty = false;
        let row = WindowResult {
            key: key.clone(),
            window_start: pane.first,
            window_end: pane.last.saturating_add(1),
            value: self.aggregate.finish(&pane.acc),
            emission: Emission::OnTime,
            revision: pane.emitted,
        };
        pane.emitted += 1;
        emit(&mut self.out, row);
        if purge {
            self.panes.remove(key);
        }
    }

    fn flush(&mut self) -> OperatorResult {
        super::send_results(&mut self.out, &mut self.down, &self.counters)
    }
}

impl<T, K, A> Operator<T> for GlobalWindowOperator<T, K, A>
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
            let pane = self.panes.entry(key.clone()).or_insert_with(|| Pane {
                acc: aggregate.init(),
                count: 0,
                first: time,
                last: time,
                emitted: 0,
                dirty: false,
            });
            aggregate.update(&mut pane.acc, item);
            pane.dirty = true;
            pane.count += 1;
            pane.first = pane.first.min(time);
            pane.last = pane.last.max(time);
            self.decide(&key, time, |trigger, ctx| trigger.on_event(ctx));
        }
        self.flush()
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let mut due = Vec::new();
        self.processing_timers
            .advance_to(nanos(now), |key, _| due.push(key));
        for key in due {
            self.decide(&key, self.watermark, |trigger, ctx| {
                trigger.on_processing_time(now, ctx)
            });
        }
        self.flush()?;
        let own = self
            .processing_timers
            .next()
            .map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(0)));
        let down = self.down.on_tick(now)?;
        Ok(match (own, down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.watermark = self.watermark.max(watermark);
        let mut due = Vec::new();
        self.event_timers
            .advance_to(watermark, |key, time| due.push((key, time)));
        for (key, time) in due {
            self.decide(&key, time, |trigger, ctx| trigger.on_event_time(time, ctx));
        }
        self.flush()?;
        self.down.on_watermark(watermark)
    }

    fn on_end(&mut self) -> OperatorResult {
        if self.watermark < MAX_TIMESTAMP {
            self.on_watermark(MAX_TIMESTAMP)?;
        }
        let keys: Vec<K> = self.panes.keys().cloned().collect();
        for key in keys {
            self.fire(&key, true);
        }
        self.flush()?;
        self.down.on_end()
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
