//! Windows: per-key aggregates over slices of event time (or of the stream).
//!
//! Kinds: [`Window::tumbling`], [`Window::sliding`], [`Window::session`]
//! (sessions merge when an event bridges them), [`Window::count`] (`n`
//! events per key, in arrival order), and [`Window::global`] with a custom
//! [`Trigger`].
//!
//! **Emission.** A time or session window `[start, end)` emits its result
//! when the watermark reaches `end` ([`Emission::OnTime`]); with
//! [`WindowedStream::early_firing`] it also emits [`Emission::Early`]
//! results at a processing-time interval while it is open. At the end of a
//! bounded input the watermark moves to the end of time and every open
//! window emits.
//!
//! **Lateness.** An event whose window has fired but whose
//! `end + allowed_lateness` the watermark has not reached yet updates the
//! window, which emits again ([`Emission::Late`]). An event whose window is
//! beyond that goes to the `late` stream with the reason, and is counted.
//!
//! **Recognising updates.** Every result carries `revision`: 0 for the first
//! result of a `(key, window_start, window_end)`, then 1, 2, … for each
//! re-emission. A consumer keeps, per `(key, window_start, window_end)`,
//! the row with the highest revision; a row with [`Emission::Retract`] says
//! a session window with those bounds no longer exists (a late event merged
//! it into a larger session). [`WindowResult::change`] names what a row
//! does ([`Change`]: insert, update, delete), as the `op` column of a
//! pipeline file's window does: both follow one semantics.
//!
//! **Parallelism.** Events of time and session windows are judged for
//! lateness on the worker that reads them, then exchanged by key. A batch
//! with several events per key and window is folded first (pre-aggregation:
//! one partial aggregate per key and window crosses the exchange); a batch
//! of tumbling windows where that does not pay (about one event per key and
//! window) sends its events as they are, each folded once into its window's
//! pane on the other side. With one worker and one instance nothing is
//! exchanged: time windows judge each event and fold it straight into its
//! pane, in one operator. Sessions are always exchanged (with one worker,
//! to the same worker).
//! Lateness is judged against the reading worker's watermark, which is
//! never behind the merging worker's; so the merging side never sees an
//! event beyond lateness.

mod count;
mod global;
mod pre_aggregate;
mod session;
mod time_window;

pub use sluice_core::window::Change;

pub use global::{CountTrigger, EventTimeTrigger, Trigger, TriggerAction, TriggerContext};

use crate::keyed::{key_hash, KeyedStream};
use crate::side::SideOutput;
use crate::{BuildError, Stream};
use count::CountWindowOperator;
use global::GlobalWindowOperator;
use pre_aggregate::{Assigner, PreOutput, WindowInput, WindowPartial, WindowPreAggregate};
use rustc_hash::{FxHashMap, FxHashSet};
use session::SessionOperator;
use sluice_core::window::{Lateness, SessionWindows, TimeWindows};
use sluice_core::{Aggregate, Batch, Timestamp, MIN_TIMESTAMP};
use sluice_runtime::Operator;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time_window::{DirectTimeWindows, TimeWindowInput, TimeWindowOperator};

/// Which windows a keyed stream is cut into.
#[derive(Clone)]
pub enum Window {
    /// Fixed, non-overlapping windows.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Fixed windows starting every `slide`.
    Sliding {
        /// Window length.
        size: Duration,
        /// Time between window starts.
        slide: Duration,
    },
    /// Activity separated by at least `gap` without events.
    Session {
        /// The gap that closes a session.
        gap: Duration,
    },
    /// `size` events per key, in arrival order.
    Count {
        /// Events per window.
        size: u64,
    },
    /// One window per key for the whole stream; `trigger` decides when it
    /// emits and whether it starts over.
    Global {
        /// When to emit.
        trigger: Arc<dyn Trigger>,
    },
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Tumbling { size } => write!(f, "Tumbling({size:?})"),
            Window::Sliding { size, slide } => write!(f, "Sliding({size:?}, {slide:?})"),
            Window::Session { gap } => write!(f, "Session({gap:?})"),
            Window::Count { size } => write!(f, "Count({size})"),
            Window::Global { .. } => write!(f, "Global"),
        }
    }
}

impl Window {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        Window::Tumbling { size }
    }
    /// Windows of `size` starting every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Window::Sliding { size, slide }
    }
    /// Session windows closed by `gap` without events.
    pub fn session(gap: Duration) -> Self {
        Window::Session { gap }
    }
    /// Windows of `size` events per key.
    pub fn count(size: u64) -> Self {
        Window::Count { size }
    }
    /// One window per key, emitted when `trigger` says.
    pub fn global(trigger: impl Trigger) -> Self {
        Window::Global {
            trigger: Arc::new(trigger),
        }
    }
}

/// Why a window result was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emission {
    /// Before the window closed, at the early-firing interval.
    Early,
    /// When the window closed (the watermark reached its end), or when a
    /// count or global window's trigger fired.
    OnTime,
    /// An update after the window closed, for late events within the
    /// allowed lateness.
    Late,
    /// The session window with these bounds no longer exists: it was merged
    /// into a larger one, which is emitted separately.
    Retract,
}

/// The result of one window of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult<K, O> {
    /// The key.
    pub key: K,
    /// Window start, ms (inclusive).
    pub window_start: Timestamp,
    /// Window end, ms (exclusive).
    pub window_end: Timestamp,
    /// The aggregate's result.
    pub value: O,
    /// Why it was emitted.
    pub emission: Emission,
    /// 0 for the first result of this key and window, then 1, 2, …
    pub revision: u32,
}

impl<K, O> WindowResult<K, O> {
    /// What this row does to its window's result: insert (revision 0),
    /// update (a later revision) or delete (`Emission::Retract`). The
    /// windows of pipeline files write the same in their `op` column.
    ///
    /// For time and session windows. Count and global windows are appends:
    /// their bounds are their events' times, so two results can share
    /// bounds, and a global window's revision counts its firings.
    pub fn change(&self) -> Change {
        Change::of(self.revision, self.emission == Emission::Retract)
    }
}

/// An event that came after its window's allowed lateness.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent<T> {
    /// The event.
    pub event: T,
    /// Its event time.
    pub time: Timestamp,
    /// Start of the window it missed.
    pub window_start: Timestamp,
    /// End of the window it missed.
    pub window_end: Timestamp,
    /// The watermark when it arrived.
    pub watermark: Timestamp,
    /// Why it is late, in words.
    pub reason: String,
}

impl<T> LateEvent<T> {
    /// `event`, of time `time`, beyond the allowed lateness as `late` says.
    pub(crate) fn new(event: T, time: Timestamp, late: sluice_core::window::Late) -> Self {
        let (window_start, window_end) = late.window;
        Self {
            event,
            time,
            window_start,
            window_end,
            watermark: late.watermark,
            reason: late.to_string(),
        }
    }
}

/// Counters of a window operator, across its workers.
#[derive(Debug, Default)]
pub struct WindowCounters {
    late: AtomicU64,
    late_partials: AtomicU64,
    results: AtomicU64,
    updates: AtomicU64,
}

impl WindowCounters {
    /// Events (per missed window) sent to the late stream.
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }
    /// Partial aggregates (and events sent on unfolded, per window) that
    /// reached a worker after it had dropped their window (beyond the
    /// allowed lateness by its watermark, though not by the reading
    /// worker's). Happens only when an input that was idle resumes behind
    /// the others; their events are not in any result.
    pub fn late_partials(&self) -> u64 {
        self.late_partials.load(Ordering::Relaxed)
    }
    pub(crate) fn add_late_partial(&self) {
        self.late_partials.fetch_add(1, Ordering::Relaxed);
    }
    /// Results emitted, updates included.
    pub fn results(&self) -> u64 {
        self.results.load(Ordering::Relaxed)
    }
    /// Results that updated an earlier one (late or early re-emissions).
    pub fn updates(&self) -> u64 {
        self.updates.load(Ordering::Relaxed)
    }
    pub(crate) fn add_late(&self, n: u64) {
        self.late.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_results(&self, n: u64, updates: u64) {
        self.results.fetch_add(n, Ordering::Relaxed);
        self.updates.fetch_add(updates, Ordering::Relaxed);
    }
}

/// A keyed stream cut into windows; see [`KeyedStream::window`].
pub struct WindowedStream<K, T> {
    keyed: KeyedStream<K, T>,
    window: Window,
    allowed_lateness: Duration,
    early_firing: Option<Duration>,
}

/// The outputs of a window aggregate.
pub struct Windowed<K, T, O> {
    /// One row per window result (updates included).
    pub results: Stream<WindowResult<K, O>>,
    /// Events beyond the allowed lateness, with the window they missed.
    pub late: Stream<LateEvent<T>>,
    /// Counts of late events, results and updates.
    pub counters: Arc<WindowCounters>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<K, T> WindowedStream<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    pub(crate) fn new(keyed: KeyedStream<K, T>, window: Window) -> Self {
        Self {
            keyed,
            window,
            allowed_lateness: Duration::ZERO,
            early_firing: None,
        }
    }

    /// How long after a window closed late events still update it
    /// (default 0).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::time::Duration;
    /// let p = Pipeline::new();
    /// let w = p
    ///     .source(IterSource::new([1_i64]).with_event_time(|t| *t))
    ///     .key_by(|_| ())
    ///     .window(Window::tumbling(Duration::from_secs(1)))
    ///     .allowed_lateness(Duration::from_secs(5))
    ///     .aggregate(Count);
    /// # drop(w);
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness;
        self
    }

    /// Emits the current result of open windows every `interval` of
    /// processing time, for windows with new events (tumbling and sliding
    /// windows).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::time::Duration;
    /// let p = Pipeline::new();
    /// let w = p
    ///     .source(IterSource::new([1_i64]).with_event_time(|t| *t))
    ///     .key_by(|_| ())
    ///     .window(Window::tumbling(Duration::from_secs(60)))
    ///     .early_firing(Duration::from_secs(1))
    ///     .aggregate(Count);
    /// # drop(w);
    /// ```
    pub fn early_firing(mut self, interval: Duration) -> Self {
        self.early_firing = Some(interval);
        self
    }

    /// Aggregates each key's events per window with a mergeable aggregate.
    pub fn aggregate<A>(self, aggregate: A) -> Windowed<K, T, A::Output>
    where
        A: Aggregate<T> + Clone + 'static,
        A::Output: Send + 'static,
    {
        let counters = Arc::new(WindowCounters::default());
        let lateness = Lateness::allowing(millis(self.allowed_lateness));
        let early = self.early_firing.filter(|d| !d.is_zero());
        let KeyedStream {
            stream,
            key,
            exchange_policy,
        } = self.keyed;
        let plan = stream.plan().clone();
        let late_side: SideOutput<LateEvent<T>> = stream.side_output("late");
        let late = late_side.stream(&plan);
        let report = |error: sluice_core::Error| {
            plan.borrow_mut().add_error(BuildError::InvalidBatching {
                edge: "window".to_string(),
                error,
            });
        };
        let assigner = match &self.window {
            Window::Tumbling { size } => TimeWindows::tumbling(millis(*size)).map(Assigner::Time),
            Window::Sliding { size, slide } => {
                TimeWindows::sliding(millis(*size), millis(*slide)).map(Assigner::Time)
            }
            Window::Session { gap } => {
                SessionWindows::with_gap(millis(*gap)).map(Assigner::Session)
            }
            Window::Count { size: 0 } => Err(sluice_core::Error::ZeroBatchSize),
            Window::Count { .. } | Window::Global { .. } => Ok(Assigner::None),
        };
        let assigner = assigner.unwrap_or_else(|e| {
            report(e);
            Assigner::None
        });
        let results = match (assigner, self.window) {
            (Assigner::None, Window::Global { trigger }) => {
                let counters = counters.clone();
                stream
                    .exchange_by_key(key.clone(), exchange_policy)
                    .fuse_with_builder(move |down, _, builder| {
                        Ok(Box::new(GlobalWindowOperator::new(
                            key.clone(),
                            trigger.clone(),
                            aggregate.clone(),
                            builder.settings.clock.clone(),
                            counters.clone(),
                            down,
                        )) as Box<dyn Operator<T>>)
                    })
            }
            // Count windows, and windows whose error the run reports.
            (Assigner::None, window) => {
                let size = match window {
                    Window::Count { size } => size,
                    _ => 1,
                };
                let counters = counters.clone();
                stream
                    .exchange_by_key(key.clone(), exchange_policy)
                    .fuse(None, move |down| {
                        Box::new(CountWindowOperator {
                            key: key.clone(),
                            size,
                            aggregate: aggregate.clone(),
                            slots: FxHashMap::default(),
                            opened: 0,
                            counters: counters.clone(),
                            out: Batch::new(),
                            down,
                        }) as Box<dyn Operator<T>>
                    })
            }
            (Assigner::Session(sessions), _) => {
                let partials = pre_aggregate::<_, _, _, WindowPartial<K, A::Acc>>(
                    stream,
                    key,
                    aggregate.clone(),
                    Assigner::Session(sessions),
                    lateness,
                    late_side,
                    counters.clone(),
                );
                let counters = counters.clone();
                partials
                    .exchange(
                        Arc::new(|p: &WindowPartial<K, A::Acc>| key_hash(&p.key)),
                        exchange_policy,
                    )
                    .fuse(None, move |down| {
                        Box::new(SessionOperator::new(
                            aggregate.clone(),
                            lateness,
                            counters.clone(),
                            down,
                        )) as Box<dyn Operator<WindowPartial<K, A::Acc>>>
                    })
            }
            (Assigner::Time(windows), _) => {
                let parts = TimeWindowParts {
                    stream,
                    key,
                    aggregate,
                    windows,
                    lateness,
                    early,
                    late_side,
                    counters: counters.clone(),
                    exchange_policy,
                };
                // Tumbling windows: an event is in one window, so an event
                // that its batch does not fold with others crosses the
                // exchange as it is and is folded once, into its pane.
                // Sliding windows: an event is in several windows, folded
                // into a partial per window before the exchange.
                if windows.is_tumbling() {
                    time_windows::<_, _, _, WindowInput<K, T, A::Acc>>(parts)
                } else {
                    time_windows::<_, _, _, WindowPartial<K, A::Acc>>(parts)
                }
            }
        };
        Windowed {
            results,
            late,
            counters,
        }
    }
}

/// Whether a window's keys must be exchanged: not when one instance on one
/// worker has them all (then time windows judge lateness and fold each event
/// in one operator, `DirectTimeWindows`).
fn exchanges<T: Send + 'static>(stream: &Stream<T>) -> bool {
    stream.parallelism() > 1 || stream.plan().borrow().settings.workers > 1
}

/// What tumbling and sliding windows are made of.
struct TimeWindowParts<T, K, A> {
    stream: Stream<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    aggregate: A,
    windows: TimeWindows,
    lateness: Lateness,
    early: Option<Duration>,
    late_side: SideOutput<LateEvent<T>>,
    counters: Arc<WindowCounters>,
    exchange_policy: sluice_runtime::FlushPolicy,
}

/// Tumbling or sliding windows: the pre-aggregation sending `O` on every
/// instance of the stream, the exchange by key, and the windows; or, where
/// one instance has every key, the lateness check and the windows in one
/// operator.
fn time_windows<T, K, A, O>(parts: TimeWindowParts<T, K, A>) -> Stream<WindowResult<K, A::Output>>
where
    T: Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    A: Aggregate<T> + Clone + 'static,
    A::Output: Send + 'static,
    O: PreOutput<K, T, A::Acc> + TimeWindowInput<T, K, A> + 'static,
{
    let TimeWindowParts {
        stream,
        key,
        aggregate,
        windows,
        lateness,
        early,
        late_side,
        counters,
        exchange_policy,
    } = parts;
    let windows_of = {
        let (aggregate, counters) = (aggregate.clone(), counters.clone());
        move |down, clock| {
            TimeWindowOperator::new(
                aggregate.clone(),
                windows,
                lateness,
                early,
                clock,
                counters.clone(),
                down,
            )
        }
    };
    if !exchanges(&stream) {
        return stream.fuse_with_builder(move |down, instance, builder| {
            Ok(Box::new(DirectTimeWindows {
                key: key.clone(),
                late: late_side.sender(instance, builder)?,
                late_batch: Batch::new(),
                windows: windows_of(down, builder.settings.clock.clone()),
            }) as Box<dyn Operator<T>>)
        });
    }
    let inputs = pre_aggregate::<_, _, _, O>(
        stream,
        key,
        aggregate,
        Assigner::Time(windows),
        lateness,
        late_side,
        counters,
    );
    let inputs = inputs.exchange(Arc::new(|input: &O| key_hash(input.key())), exchange_policy);
    inputs.fuse_with_builder(move |down, _, builder| {
        Ok(Box::new(windows_of(down, builder.settings.clock.clone())) as Box<dyn Operator<O>>)
    })
}

/// The pre-aggregation of a time or session window on every instance of
/// `stream`: lateness judged, events folded into partials or passed on.
#[allow(clippy::too_many_arguments)]
fn pre_aggregate<T, K, A, O>(
    stream: Stream<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    aggregate: A,
    assigner: Assigner,
    lateness: Lateness,
    late_side: SideOutput<LateEvent<T>>,
    counters: Arc<WindowCounters>,
) -> Stream<O>
where
    T: Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    A: Aggregate<T> + Clone + 'static,
    O: PreOutput<K, T, A::Acc> + Send + 'static,
{
    stream.fuse_with_builder(move |down, instance, builder| {
        Ok(Box::new(WindowPreAggregate {
            key: key.clone(),
            aggregate: aggregate.clone(),
            assigner,
            lateness,
            watermark: MIN_TIMESTAMP,
            partials: FxHashMap::default(),
            direct: 0,
            folding: false,
            probe: FxHashSet::default(),
            assigned: 0,
            late: late_side.sender(instance, builder)?,
            late_batch: Batch::new(),
            counters: counters.clone(),
            out: Batch::new(),
            down,
        }) as Box<dyn Operator<T>>)
    })
}

/// Appends a result row and counts it.
pub(crate) fn emit<K, O>(out: &mut Batch<WindowResult<K, O>>, row: WindowResult<K, O>) {
    let time = row.window_end.saturating_sub(1).max(row.window_start);
    out.push(row, time);
}

/// Counts the results of `out` (once per batch: the counters are shared by
/// every worker, and a count per row made the workers contend for them),
/// then sends them on.
pub(crate) fn send_results<K, O>(
    out: &mut Batch<WindowResult<K, O>>,
    down: &mut crate::ops::Downstream<WindowResult<K, O>>,
    counters: &WindowCounters,
) -> sluice_runtime::OperatorResult {
    if !out.is_empty() {
        let updates = out
            .items()
            .iter()
            .filter(|r| r.revision > 0 && r.emission != Emission::Retract)
            .count();
        counters.add_results(out.len() as u64, updates as u64);
    }
    crate::ops::send(out, down)
}
