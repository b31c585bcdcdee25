//! Session windows after the exchange: partial sessions merged per key, fired, retracted, dropped.

use super::pre_aggregate::WindowPartial;
use super::{emit, Emission, WindowCounters, WindowResult};
use crate::ops::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::timer::Timers;
use sluice_core::window::{Lateness, Session, SessionSet};
use sluice_core::{Aggregate, Batch, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use sluice_runtime::{Operator, OperatorResult};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

/// What a session keeps besides its bounds.
struct Open<Acc> {
    acc: Acc,
    /// Rows emitted for it: the next row's revision.
    emitted: u32,
    fired: bool,
}

/// After the exchange: merges partial sessions per key, fires a session
/// when the watermark passes its end (an event-time timer per key and
/// session end), and drops it when its allowed lateness has passed (a second
/// timer). A late event that bridges sessions merges them: closed sessions
/// that disappear are retracted and the merged one is emitted.
pub(crate) struct SessionOperator<T, K, A: Aggregate<T>> {
    aggregate: A,
    lateness: Lateness,
    sessions: FxHashMap<K, SessionSet<Open<A::Acc>>>,
    fire_timers: Timers<K>,
    cleanup_timers: Timers<K>,
    watermark: Timestamp,
    counters: Arc<WindowCounters>,
    out: Batch<WindowResult<K, A::Output>>,
    down: Downstream<WindowResult<K, A::Output>>,
    _in: PhantomData<fn(T)>,
}

impl<T, K, A> SessionOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    pub fn new(
        aggregate: A,
        lateness: Lateness,
        counters: Arc<WindowCounters>,
        down: Downstream<WindowResult<K, A::Output>>,
    ) -> Self {
        Self {
            aggregate,
            lateness,
            sessions: FxHashMap::default(),
            fire_timers: Timers::default(),
            cleanup_timers: Timers::default(),
            watermark: MIN_TIMESTAMP,
            counters,
            out: Batch::new(),
            down,
            _in: PhantomData,
        }
    }

    fn row(
        aggregate: &A,
        key: &K,
        s: &mut Session<Open<A::Acc>>,
        emission: Emission,
    ) -> WindowResult<K, A::Output> {
        let revision = s.payload.emitted;
        s.payload.emitted += 1;
        WindowResult {
            key: key.clone(),
            window_start: s.start,
            window_end: s.end,
            value: aggregate.finish(&s.payload.acc),
            emission,
            revision,
        }
    }

    fn add(&mut self, partial: WindowPartial<K, A::Acc>) {
        let key = partial.key;
        let aggregate = &self.aggregate;
        let list = self.sessions.entry(key.clone()).or_default();
        let session = Session {
            start: partial.start,
            end: partial.end,
            payload: Open {
                acc: partial.acc,
                emitted: 0,
                fired: false,
            },
        };
        let mut absorbed_fired = Vec::new();
        let mut same_bounds: Option<(u32, bool)> = None;
        let merged = list.insert(session, |merged, s| {
            aggregate.merge(&mut merged.payload.acc, &s.payload.acc);
            if s.payload.fired {
                absorbed_fired.push(s);
            } else if s.payload.emitted > 0 {
                same_bounds = Some((s.payload.emitted, false));
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let merged = match merged {
            Ok(merged) => merged,
            Err(never) => match never {},
        };
        // A closed session whose bounds did not change is updated in place;
        // the others are retracted, in the order of their starts.
        absorbed_fired.sort_unstable_by_key(|s| s.start);
        let mut rows = Vec::new();
        for mut s in absorbed_fired {
            if s.start == merged.start && s.end == merged.end {
                same_bounds = Some((s.payload.emitted, true));
            } else {
                rows.push(Self::row(aggregate, &key, &mut s, Emission::Retract));
            }
        }
        if let Some((emitted, fired)) = same_bounds {
            merged.payload.emitted = emitted;
            merged.payload.fired = fired;
        }
        if merged.end <= self.watermark {
            // Closed already: emit now (a late update, or a new merged session).
            let emission = if merged.payload.fired || !rows.is_empty() {
                Emission::Late
            } else {
                Emission::OnTime
            };
            rows.push(Self::row(aggregate, &key, merged, emission));
            merged.payload.fired = true;
            self.cleanup_timers
                .register(key.clone(), self.lateness.closes_at(merged.end));
        } else {
            self.fire_timers.register(key.clone(), merged.end);
        }
        for row in rows {
            emit(&mut self.out, row);
        }
    }

    fn advance(&mut self, watermark: Timestamp) -> OperatorResult {
        self.watermark = watermark;
        let mut due = Vec::new();
        self.fire_timers
            .advance_to(watermark, |key, end| due.push((key, end)));
        for (key, end) in due {
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            for s in list.iter_mut().filter(|s| s.end == end && !s.payload.fired) {
                let row = Self::row(&self.aggregate, &key, s, Emission::OnTime);
                s.payload.fired = true;
                emit(&mut self.out, row);
                self.cleanup_timers
                    .register(key.clone(), self.lateness.closes_at(end));
            }
        }
        let mut expired = Vec::new();
        self.cleanup_timers
            .advance_to(watermark, |key, at| expired.push((key, at)));
        for (key, _) in expired {
            if let Some(list) = self.sessions.get_mut(&key) {
                let lateness = self.lateness;
                list.retain(|s| !(s.payload.fired && lateness.is_closed(s.end, watermark)));
                if list.is_empty() {
                    self.sessions.remove(&key);
                }
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> OperatorResult {
        super::send_results(&mut self.out, &mut self.down, &self.counters)
    }
}

impl<T, K, A> Operator<WindowPartial<K, A::Acc>> for SessionOperator<T, K, A>
where
    K: Hash + Eq + Clone + Send,
    A: Aggregate<T>,
    A::Output: Send,
{
    fn on_batch(&mut self, batch: &mut Batch<WindowPartial<K, A::Acc>>) -> OperatorResult {
        for (partial, _) in batch.drain() {
            if self.lateness.is_closed(partial.end, self.watermark) {
                // Beyond lateness here (see WindowCounters::late_partials).
                self.counters.add_late_partial();
                continue;
            }
            self.add(partial);
        }
        self.flush()
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
