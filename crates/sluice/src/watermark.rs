//! Event time and watermarks: how a stream says how far event time has got.
//!
//! [`Stream::with_watermarks`] follows each source partition's event times.
//! Its watermark is `max event time seen - max_out_of_orderness`, and it is
//! sent only after the events that raised it, so an event is never judged
//! against a watermark it helped to raise. A partition without events for
//! `idle_timeout` is declared idle and stops holding the watermark of the
//! operators after it back. An event time more than `future_bound` ahead of
//! the wall clock may not move the watermark: it is clamped to the bound or
//! rejected to a side stream with the reason, as configured. At the end of a
//! bounded input the watermark moves to the end of time.

use crate::ops::Downstream;
use crate::side::SideOutput;
use crate::Stream;
use sluice_core::{Batch, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use sluice_runtime::worker::Hold;
use sluice_runtime::{Clock, Operator, OperatorError, OperatorResult};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::Duration;

/// What to do with an event time too far in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutureEvents {
    /// Its event time is set to the bound (wall clock + bound).
    Clamp,
    /// It goes to the rejected stream, with the reason.
    Reject,
}

/// How a stream's watermarks are made.
///
/// ```
/// use sluice::watermark::{FutureEvents, WatermarkStrategy};
/// use std::time::Duration;
///
/// let strategy = WatermarkStrategy::bounded(Duration::from_secs(2))
///     .with_idle_timeout(Duration::from_secs(30))
///     .with_future_bound(Duration::from_secs(3600), FutureEvents::Reject);
/// assert_eq!(strategy.max_out_of_orderness, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// How far behind the latest event time the watermark stays.
    pub max_out_of_orderness: Duration,
    /// After this long without events, the partition is idle.
    pub idle_timeout: Option<Duration>,
    /// How far ahead of the wall clock an event time may be, and what
    /// happens to one further ahead.
    pub future_bound: Option<(Duration, FutureEvents)>,
    /// Watermark alignment: a partition whose watermark is more than this
    /// ahead of the slowest active partition's waits for it to catch up.
    pub alignment: Option<Duration>,
    /// The latest event time seen before a restart from a checkpoint: the
    /// watermark goes on from there instead of from the start of time.
    pub resume_from: Option<Timestamp>,
}

impl WatermarkStrategy {
    /// Watermarks `max_out_of_orderness` behind the latest event time.
    pub fn bounded(max_out_of_orderness: Duration) -> Self {
        Self {
            max_out_of_orderness,
            idle_timeout: None,
            future_bound: None,
            alignment: None,
            resume_from: None,
        }
    }

    /// Resumes after a restart from a checkpoint: `max_seen` is the latest
    /// event time the source had emitted when the checkpoint was taken, so
    /// the watermark goes on where it was.
    pub fn resuming_from(mut self, max_seen: Timestamp) -> Self {
        self.resume_from = Some(max_seen);
        self
    }

    /// Keeps partitions within `max_drift` of event time of each other: a
    /// partition further ahead than that of the slowest active one waits
    /// (as Flink's watermark alignment does). Without it, windows wait for
    /// the slowest partition while the others run ahead, and their state
    /// grows. An idle partition (see `with_idle_timeout`) or one that ended
    /// does not hold the others back; a partition that stays silent without
    /// an idle timeout does, so combine the two.
    pub fn with_alignment(mut self, max_drift: Duration) -> Self {
        self.alignment = Some(max_drift);
        self
    }

    /// Declares a partition idle after `timeout` without events.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Bounds how far ahead of the wall clock event times may be.
    pub fn with_future_bound(mut self, bound: Duration, action: FutureEvents) -> Self {
        self.future_bound = Some((bound, action));
        self
    }
}

/// The watermarks of the partitions of one stream, for alignment.
#[derive(Debug)]
pub(crate) struct AlignmentGroup {
    /// Per partition; `MAX_TIMESTAMP` for idle or ended partitions.
    watermarks: Vec<std::sync::atomic::AtomicI64>,
    /// The workers of partitions held back, woken when a watermark moves.
    waiting: Mutex<Vec<Thread>>,
}

impl AlignmentGroup {
    fn new(partitions: usize) -> Self {
        Self {
            watermarks: (0..partitions)
                .map(|_| std::sync::atomic::AtomicI64::new(MIN_TIMESTAMP))
                .collect(),
            waiting: Mutex::new(Vec::new()),
        }
    }

    fn publish(&self, partition: usize, watermark: Timestamp) {
        if let Some(w) = self.watermarks.get(partition) {
            let before = w.swap(watermark, std::sync::atomic::Ordering::SeqCst);
            if before != watermark {
                self.waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .for_each(Thread::unpark);
            }
        }
    }

    /// The slowest watermark of the other partitions that are active.
    fn slowest_other(&self, partition: usize) -> Timestamp {
        self.watermarks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != partition)
            .map(|(_, w)| w.load(std::sync::atomic::Ordering::SeqCst))
            .min()
            .unwrap_or(MAX_TIMESTAMP)
    }

    /// True while `partition` is more than `drift` ahead of the slowest
    /// other active partition.
    fn ahead(&self, partition: usize, drift: i64) -> bool {
        let Some(own) = self.watermarks.get(partition) else {
            return false;
        };
        let own = own.load(std::sync::atomic::Ordering::SeqCst);
        // An idle partition (at the end of time for the others) is polled
        // to find out whether it has events again.
        own != MAX_TIMESTAMP && own > self.slowest_other(partition).saturating_add(drift)
    }
}

/// Holds a partition's source stage back while it is too far ahead: its
/// worker runs its other stages (the slowest partition may be one of them)
/// and polls this source again once the others have caught up.
struct AlignmentHold {
    group: Arc<AlignmentGroup>,
    partition: usize,
    drift: i64,
}

impl Hold for AlignmentHold {
    fn holds(&self) -> bool {
        self.group.ahead(self.partition, self.drift)
    }

    fn wake_on_release(&self, thread: Thread) {
        let mut waiting = self
            .group
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !waiting.iter().any(|t| t.id() == thread.id()) {
            waiting.push(thread);
        }
    }
}

/// An event rejected before it entered event-time processing.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedEvent<T> {
    /// The event.
    pub event: T,
    /// Its event time.
    pub time: Timestamp,
    /// Why it was rejected.
    pub reason: String,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Follows one partition's event times and emits its watermarks.
pub(crate) struct WatermarkGenerator<T> {
    strategy: WatermarkStrategy,
    clock: Arc<dyn Clock>,
    max_seen: Timestamp,
    emitted: Timestamp,
    last_activity: Duration,
    idle: bool,
    rejected: Option<Downstream<RejectedEvent<T>>>,
    rejects: Batch<RejectedEvent<T>>,
    /// This partition's index and its group, when aligned.
    alignment: Option<(usize, Arc<AlignmentGroup>)>,
    /// The worker holds this partition's stage back while it is ahead.
    held: bool,
    kept: Batch<T>,
    down: Downstream<T>,
}

impl<T: Send> WatermarkGenerator<T> {
    fn screen_future(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let Some((bound, action)) = self.strategy.future_bound else {
            return Ok(());
        };
        let limit = self.clock.wall_ms().saturating_add(millis(bound));
        if batch.times().iter().all(|t| *t <= limit) {
            return Ok(());
        }
        for (event, time) in batch.drain() {
            if time <= limit {
                self.kept.push(event, time);
            } else if action == FutureEvents::Clamp {
                self.kept.push(event, limit);
            } else {
                let reason = format!(
                    "event time {time} is {} ms ahead of the wall clock; at most {} ms is allowed",
                    time - limit + millis(bound),
                    millis(bound)
                );
                self.rejects.push(
                    RejectedEvent {
                        event,
                        time,
                        reason,
                    },
                    time,
                );
            }
        }
        std::mem::swap(batch, &mut self.kept);
        self.kept.clear();
        if !self.rejects.is_empty() {
            if let Some(rejected) = &mut self.rejected {
                rejected.on_batch(&mut self.rejects)?;
            }
            self.rejects.clear();
        }
        Ok(())
    }
}

impl<T: Send> Operator<T> for WatermarkGenerator<T> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        self.screen_future(batch)?;
        // Events that were all rejected are no activity: a partition that
        // only reads those goes idle and holds no aligned partition back.
        let Some(latest) = batch.max_time() else {
            return Ok(());
        };
        self.last_activity = self.clock.now();
        self.idle = false;
        self.max_seen = self.max_seen.max(latest);
        self.down.on_batch(batch)?;
        // Only now, after the events that raised it.
        let watermark = self
            .max_seen
            .saturating_sub(millis(self.strategy.max_out_of_orderness));
        if watermark > self.emitted {
            self.emitted = watermark;
            self.down.on_watermark(watermark)?;
            if let Some(rejected) = &mut self.rejected {
                rejected.on_watermark(watermark)?;
            }
        }
        if let (Some((partition, group)), Some(drift)) = (&self.alignment, self.strategy.alignment)
        {
            group.publish(*partition, self.emitted);
            let drift = millis(drift);
            if !self.held {
                // From now on the worker does not poll this partition while
                // it is ahead: waiting here would hold up the worker.
                self.held = sluice_runtime::worker::hold_stage(Arc::new(AlignmentHold {
                    group: group.clone(),
                    partition: *partition,
                    drift,
                }));
            }
            if !self.held {
                // Outside a worker: wait here.
                while group.ahead(*partition, drift) {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        Ok(())
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let mut deadline = self.down.on_tick(now)?;
        if let Some(timeout) = self.strategy.idle_timeout {
            if !self.idle {
                let due = self.last_activity + timeout;
                if now >= due {
                    self.idle = true;
                    if let Some((partition, group)) = &self.alignment {
                        group.publish(*partition, MAX_TIMESTAMP);
                    }
                    self.down.on_idle()?;
                    if let Some(rejected) = &mut self.rejected {
                        rejected.on_idle()?;
                    }
                } else {
                    deadline = Some(deadline.map_or(due, |d| d.min(due)));
                }
            }
        }
        Ok(deadline)
    }

    /// A stream's own watermarks replace those from upstream.
    fn on_watermark(&mut self, _watermark: Timestamp) -> OperatorResult {
        Ok(())
    }

    fn on_idle(&mut self) -> OperatorResult {
        Ok(())
    }

    fn on_end(&mut self) -> OperatorResult {
        if let Some((partition, group)) = &self.alignment {
            group.publish(*partition, MAX_TIMESTAMP);
        }
        self.down.on_watermark(MAX_TIMESTAMP)?;
        if let Some(rejected) = &mut self.rejected {
            rejected.on_end()?;
        }
        self.down.on_end()
    }

    fn on_barrier(&mut self, barrier: sluice_runtime::Barrier) -> OperatorResult {
        if let Some(rejected) = &mut self.rejected {
            rejected.on_barrier(barrier)?;
        }
        self.down.on_barrier(barrier)
    }
    /// Two outputs (and a side output): every hook passes its signal on
    /// by hand, so none can skip the side output.
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}

/// A stream with watermarks, and the events its strategy rejected.
pub struct Watermarked<T> {
    /// The events, followed by watermarks.
    pub events: Stream<T>,
    /// Events rejected for an event time too far in the future (only with
    /// `FutureEvents::Reject`), with the reason.
    pub rejected: Stream<RejectedEvent<T>>,
}

impl<T: Send + 'static> Stream<T> {
    /// Follows event times and emits watermarks by `strategy`, per
    /// partition (per parallel instance of the source).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use sluice::watermark::WatermarkStrategy;
    /// use std::time::Duration;
    ///
    /// let p = Pipeline::new();
    /// let events = p
    ///     .source(IterSource::new([1_000_i64, 3_000, 2_500]).with_event_time(|t| *t))
    ///     .with_watermarks(WatermarkStrategy::bounded(Duration::from_secs(1)))
    ///     .events
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(events.len(), 3);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn with_watermarks(self, strategy: WatermarkStrategy) -> Watermarked<T> {
        self.with_watermarks_each(move |_| strategy)
    }

    /// Follows event times and emits watermarks per partition, partition
    /// `i` by `strategy(i)` (a source's partitions resumed from different
    /// event times). The alignment is partition 0's.
    pub fn with_watermarks_each(
        self,
        strategy: impl Fn(usize) -> WatermarkStrategy + Send + Sync + 'static,
    ) -> Watermarked<T> {
        let alignment = strategy(0).alignment;
        if alignment.is_some() && !self.on_source_stage() {
            self.plan()
                .borrow_mut()
                .add_error(crate::BuildError::AlignmentAfterSource);
        }
        let side: SideOutput<RejectedEvent<T>> = self.side_output("rejected");
        let rejected = side.stream(self.plan());
        let group = Arc::new(AlignmentGroup::new(self.parallelism()));
        let events = self.fuse_with_builder(move |down, instance, builder| {
            let mut strategy = strategy(instance);
            strategy.alignment = alignment;
            let rejected = match strategy.future_bound {
                Some((_, FutureEvents::Reject)) => Some(side.sender(instance, builder)?),
                _ => None,
            };
            let clock = builder.settings.clock.clone();
            Ok(Box::new(WatermarkGenerator {
                strategy,
                last_activity: clock.now(),
                clock,
                max_seen: strategy.resume_from.unwrap_or(MIN_TIMESTAMP),
                emitted: strategy.resume_from.map_or(MIN_TIMESTAMP, |seen| {
                    seen.saturating_sub(millis(strategy.max_out_of_orderness))
                }),
                idle: false,
                rejected,
                rejects: Batch::new(),
                alignment: strategy.alignment.map(|_| (instance, group.clone())),
                held: false,
                kept: Batch::new(),
                down,
            }) as Box<dyn Operator<T>>)
        });
        Watermarked { events, rejected }
    }
}
