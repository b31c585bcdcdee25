//! Workers: one thread runs many stages, cooperatively.
//!
//! A worker holds the stages placed on it and runs them in turns. A turn
//! of a stage is a `Stage::step`: a source polls once, a receiver takes
//! up to a few dozen messages from its queue; both pass what they got
//! through their fused operators, so a `batch()` edge between two stages of
//! one worker is a queue that the next turn empties, not a thread hop.
//!
//! A stage is not run while one of the queues it sends to is full: its
//! worker runs its other stages instead (those drain its own input queues),
//! and parks when no stage can run. Nothing waits inside an operator, so
//! exchanges between workers cannot deadlock: the dataflow is acyclic, and
//! the stages at its end (sinks) can always run.
//!
//! A worker parks until a queue it reads gets a message, a queue it sends
//! to gets room, or the earliest deadline of its stages (flush intervals,
//! idle sources) passes.
//!
//! An operator that must wait for something another stage does (watermark
//! alignment: a partition ahead waits for the slowest) does not wait in
//! its call: it returns, and holds its stage back with a [`Hold`] until the
//! condition clears; the worker runs its other stages meanwhile.

use crate::{Clock, RuntimeError, RuntimeResult};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::Duration;

/// The longest a worker parks without being woken: a bound on any lost
/// wake-up, and the period at which it sees a stop.
const MAX_PARK: Duration = Duration::from_millis(10);

/// How long a worker with nothing to run keeps looking before it parks.
/// Waits between workers of one run are mostly shorter (the other worker
/// is in the middle of a turn whose output this one needs), and a park and
/// its wake-up cost the kernel's task switch on both sides, tens of
/// microseconds on a virtual machine.
const SPIN: Duration = Duration::from_micros(50);

/// Spinning before parking, while it pays: a worker spins while most of
/// its recent waits ended within [`SPIN`], and parks at once after a run of
/// longer ones (an idle pipeline costs no CPU), until a short wait shows
/// up again. Real time, not the run's clock: a simulated clock does not
/// move while a worker spins.
#[derive(Debug)]
struct Spin {
    /// When the current wait began.
    since: Option<std::time::Instant>,
    /// Recent waits that ended within `SPIN`, less those that did not
    /// (saturating at 0..=8).
    short: u8,
}

impl Default for Spin {
    fn default() -> Self {
        Self {
            since: None,
            short: 4,
        }
    }
}

impl Spin {
    /// When a pass over the stages begins: while waiting, the time the
    /// wait would end if this pass finds work (its turns' work is not
    /// part of the wait).
    fn pass(&self) -> Option<std::time::Instant> {
        self.since.map(|_| std::time::Instant::now())
    }

    /// A stage ran in the pass that began at `pass`: the wait, if any, is
    /// over.
    fn ran(&mut self, pass: Option<std::time::Instant>) {
        if let (Some(since), Some(pass)) = (self.since.take(), pass) {
            self.short = if pass.duration_since(since) <= SPIN {
                (self.short + 1).min(8)
            } else {
                self.short.saturating_sub(2)
            };
        }
    }

    /// Whether to look at the stages again instead of parking.
    fn keep_spinning(&mut self) -> bool {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if self.short > 0 && since.elapsed() < SPIN {
            std::hint::spin_loop();
            return true;
        }
        false
    }
}

/// What a turn of a stage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// It did work and may have more: run it again soon.
    Ran,
    /// It has nothing to do until its input gets a message or the given
    /// processing time passes.
    Wait(Option<Duration>),
    /// It has finished.
    Done,
}

/// A stage as a worker runs it.
pub(crate) trait Stage: Send {
    /// The stage's name (errors, thread names).
    fn name(&self) -> &str;

    /// The stage will run on the current thread: queues it reads wake it.
    fn attach(&mut self) {}

    /// One turn. A turn that could do more stops early once `outputs`
    /// is full, so that it sends at most one message's worth past a full
    /// queue.
    fn step(&mut self, outputs: &Outputs<'_>) -> RuntimeResult<Step>;
}

/// What holds a stage back: its worker does not run the stage while
/// [`Hold::holds`] is true. A full output queue is one; an operator can add
/// its own with [`hold_stage`].
pub trait Hold: Send + Sync {
    /// True while the stage must not run.
    fn holds(&self) -> bool;
    /// Wake `thread` when the hold may have cleared.
    fn wake_on_release(&self, thread: Thread);
    /// The stage was found held (a queue counts it as a blocked send).
    fn note_held(&self) {}
}

/// What holds a stage back: the queues it is known to send to, and the
/// holds of its operators.
pub(crate) struct Outputs<'a>(pub &'a [Arc<dyn Hold>]);

impl Outputs<'_> {
    /// True when one of them holds (an output is full).
    pub(crate) fn full(&self) -> bool {
        self.0.iter().any(|o| o.holds())
    }
}

/// A stage on a worker, and what its worker knows of it.
struct Slot {
    /// `None` while it runs (its turn is on the stack) and once it is done.
    stage: Option<Box<dyn Stage>>,
    /// The queues it sends to, learnt from its sends, and its operators'
    /// holds.
    outputs: Vec<Arc<dyn Hold>>,
    /// It was found blocked by a full output at its last turn.
    blocked: bool,
}

/// The run's shared state: the stop flag and the first failure.
#[derive(Clone, Default)]
pub(crate) struct Shared {
    pub aborted: Arc<AtomicBool>,
    pub failure: Arc<Mutex<Option<RuntimeError>>>,
}

impl Shared {
    /// Records `error` if it is the first, and stops the run.
    pub(crate) fn fail(&self, error: RuntimeError) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
        self.aborted.store(true, Ordering::SeqCst);
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

/// The worker of the current thread.
struct Worker {
    slots: Vec<Slot>,
    /// Queues that stages sent to during the turns on the stack, in order:
    /// each turn takes those above the mark it started with.
    learnt: Vec<Arc<dyn Hold>>,
    shared: Shared,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    /// The stage whose turn this thread runs (0 outside a turn).
    static CURRENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Whether the input the running turn passes on had more behind it.
    static BACKLOGGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Says whether the input the running turn passes on had more behind it: a
/// source that filled its poll, a queue with more messages after this one.
/// Reset at every turn.
pub(crate) fn set_backlogged(backlogged: bool) {
    BACKLOGGED.set(backlogged);
}

/// Whether the input the running turn passes on had more behind it. An
/// adaptive edge whose input is backlogged sends as fast as it can: its
/// arrival rate is its own pace, which larger batches raise.
pub(crate) fn backlogged() -> bool {
    BACKLOGGED.get()
}

/// The stage whose turn runs on this thread: a number that no other stage
/// of the process has while this one lives, or 0 outside a worker's turn
/// (on a thread of its own: the thread names the stage). For what an
/// operator keeps per stage while a worker runs several on one thread.
pub fn current_stage() -> usize {
    CURRENT.get()
}

/// Holds the stage running on this thread back while `hold` holds: its
/// worker will not give it a turn until then. For an operator that must
/// wait for another stage: it returns instead of waiting, after calling
/// this once. Returns false outside a worker's turn, when nothing is
/// recorded (the caller must then wait by itself).
pub fn hold_stage(hold: Arc<dyn Hold>) -> bool {
    WORKER.with(|worker| {
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return false;
        };
        let Some(worker) = worker.as_mut() else {
            return false;
        };
        hold.wake_on_release(std::thread::current());
        worker.learnt.push(hold);
        true
    })
}

/// True on a worker's thread.
pub(crate) fn on_worker() -> bool {
    WORKER.with(|worker| worker.try_borrow().map_or(true, |w| w.is_some()))
}

/// What a turn finds in a slot.
enum Taken {
    /// No stage to run: done, or its turn is already on the stack.
    Absent,
    /// An output of the stage is full.
    Blocked,
    /// The stage and its outputs, taken out for its turn, and the mark of
    /// `learnt`.
    Stage(Box<dyn Stage>, Vec<Arc<dyn Hold>>, usize),
}

/// One turn of the stage in slot `index`, if it can run. A failure is
/// recorded in the run's shared state (and reported as `Done`).
fn turn(index: usize) -> Option<Step> {
    let taken = WORKER.with(|worker| {
        let mut worker = worker.borrow_mut();
        let Some(worker) = worker.as_mut() else {
            return Taken::Absent;
        };
        let mark = worker.learnt.len();
        let Some(slot) = worker.slots.get_mut(index) else {
            return Taken::Absent;
        };
        if slot.stage.is_none() {
            return Taken::Absent;
        }
        let mut full = slot.outputs.iter().filter(|o| o.holds()).peekable();
        if full.peek().is_some() {
            if !slot.blocked {
                full.for_each(|o| o.note_held());
            }
            slot.blocked = true;
            return Taken::Blocked;
        }
        slot.blocked = false;
        let outputs = std::mem::take(&mut slot.outputs);
        slot.stage
            .take()
            .map_or(Taken::Absent, |stage| Taken::Stage(stage, outputs, mark))
    });
    let (mut stage, mut outputs, mark) = match taken {
        Taken::Absent => return None,
        // Woken when the full output has room.
        Taken::Blocked => return Some(Step::Wait(None)),
        Taken::Stage(stage, outputs, mark) => (stage, outputs, mark),
    };
    // The stage's address names it while it lives.
    let outer = CURRENT.replace(&*stage as *const dyn Stage as *const () as usize);
    BACKLOGGED.set(false);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stage.step(&Outputs(&outputs))
    }));
    CURRENT.set(outer);
    let result = result.unwrap_or_else(|panic| {
        Err(RuntimeError::Panicked {
            stage: stage.name().to_string(),
            message: panic_message(&*panic),
        })
    });
    WORKER.with(|worker| {
        let mut worker = worker.borrow_mut();
        let worker = worker.as_mut()?;
        outputs.extend(worker.learnt.drain(mark..));
        let step = match result {
            Ok(step) => step,
            Err(error) => {
                worker.shared.fail(error);
                Step::Done
            }
        };
        let slot = worker.slots.get_mut(index)?;
        slot.outputs = outputs;
        if step != Step::Done {
            slot.stage = Some(stage);
        }
        Some(step)
    })
}

/// Runs `stages` on the current thread until all are done or the run
/// stops. Failures go to `shared`.
pub(crate) fn run(stages: Vec<Box<dyn Stage>>, clock: &dyn Clock, shared: Shared) {
    let slots = stages
        .into_iter()
        .map(|mut stage| {
            stage.attach();
            Slot {
                stage: Some(stage),
                outputs: Vec::new(),
                blocked: false,
            }
        })
        .collect::<Vec<_>>();
    let count = slots.len();
    WORKER.with(|worker| {
        *worker.borrow_mut() = Some(Worker {
            slots,
            learnt: Vec::new(),
            shared: shared.clone(),
        });
    });
    let mut spin = Spin::default();
    loop {
        if shared.aborted() {
            break;
        }
        let pass = spin.pass();
        let mut ran = false;
        let mut live = false;
        let mut wake: Option<Duration> = None;
        for index in 0..count {
            match turn(index) {
                None | Some(Step::Done) => {}
                Some(Step::Ran) => {
                    ran = true;
                    live = true;
                }
                Some(Step::Wait(until)) => {
                    live = true;
                    if let Some(until) = until {
                        wake = Some(wake.map_or(until, |w| w.min(until)));
                    }
                }
            }
        }
        if !live {
            break;
        }
        if ran {
            spin.ran(pass);
            continue;
        }
        if spin.keep_spinning() {
            continue;
        }
        let timeout = wake
            .map_or(MAX_PARK, |until| until.saturating_sub(clock.now()))
            .min(MAX_PARK);
        if !timeout.is_zero() {
            std::thread::park_timeout(timeout);
        }
    }
    // Dropping the stages closes their queues: stages of other workers
    // that wait for them see the run end.
    let worker = WORKER.with(|worker| worker.borrow_mut().take());
    drop(worker);
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
