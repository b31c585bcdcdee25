//! The stages: where the work happens.
//!
//! A stage is a source or an edge's receiver with the operators fused
//! behind it. Stages do not own threads: a worker ([`crate::worker`]) runs
//! each in turns, a `Stage::step` at a time. A source stage polls its
//! source once per turn; a receiver stage takes a few dozen messages from
//! its queue. Both give the operators processing-time ticks so that
//! interval flushes happen even when no input arrives.
//!
//! A source whose poll waits (for the network, or to keep a pace) says so
//! with [`Source::blocking`]; it is polled on a thread of its own, which
//! hands what it read to its stage.

use crate::worker::{Outputs, Shared, Stage, Step};
use crate::{
    Barrier, Clock, EdgeReceiver, Envelope, InputProgress, Message, Operator, OperatorError,
    OperatorResult, RuntimeError, RuntimeResult, Source, SourceStatus,
};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use sluice_core::Batch;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle source waits before polling again, at most.
const IDLE_WAIT: Duration = Duration::from_millis(1);

/// How often a blocking source's stage ticks its operators when its thread
/// hands nothing over (they are ticked at every hand-over, and at every
/// deadline they ask for): a source whose input comes slowly (a broker's
/// answers) would wake its worker a thousand times a second otherwise.
const IO_IDLE_TICK: Duration = Duration::from_millis(10);

/// The most messages a receiver takes in one turn.
const RECEIVER_TURN: usize = 32;

/// How an operator's error ends its stage: quietly when the stage after it
/// stopped (that stage reports why), as a failure otherwise.
fn operator_error(stage: &str, error: OperatorError) -> RuntimeResult<Step> {
    match error {
        OperatorError::DownstreamGone => Ok(Step::Done),
        OperatorError::Failed(error) => Err(RuntimeError::Operator {
            stage: stage.to_string(),
            error,
        }),
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A source and its fused operators.
pub(crate) struct SourceStage<T> {
    pub name: String,
    pub source: Box<dyn Source<T>>,
    pub chain: Box<dyn Operator<T>>,
    pub clock: Arc<dyn Clock>,
    pub poll_size: usize,
    pub buffer: Batch<T>,
    /// The operators' next deadline.
    pub deadline: Option<Duration>,
    /// The source said it had nothing: poll again once this much real time
    /// has passed since then (real time, so that a simulated clock that
    /// stands still does not stop the polls).
    pub idle: Option<(Instant, Duration)>,
}

impl<T> SourceStage<T> {
    fn source_error(&self, error: crate::BoxError) -> RuntimeError {
        RuntimeError::Source {
            source_name: self.name.clone(),
            error,
        }
    }
}

/// The processing time at which `wait` of real time will have passed.
fn after(clock: &dyn Clock, wait: Duration) -> Option<Duration> {
    Some(clock.now().saturating_add(wait))
}

impl<T: Send + 'static> Stage for SourceStage<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn step(&mut self, _outputs: &Outputs<'_>) -> RuntimeResult<Step> {
        if let Some((since, wait)) = self.idle {
            let left = wait.saturating_sub(since.elapsed());
            let now = self.clock.now();
            if !left.is_zero() && !self.deadline.is_some_and(|d| d <= now) {
                return Ok(Step::Wait(earliest(
                    after(&*self.clock, left),
                    self.deadline,
                )));
            }
            self.idle = None;
        }
        let status = self
            .source
            .poll(&mut self.buffer, self.poll_size)
            .map_err(|error| self.source_error(error))?;
        self.buffer.check();
        crate::worker::set_backlogged(self.buffer.len() >= self.poll_size);
        if !self.buffer.is_empty() {
            if let Err(e) = self.chain.on_batch(&mut self.buffer) {
                return operator_error(&self.name, e);
            }
            self.buffer.clear();
        }
        let barrier = self
            .source
            .barrier()
            .map_err(|error| self.source_error(error))?;
        if let Some(barrier) = barrier {
            if let Err(e) = self.chain.on_barrier(barrier) {
                return operator_error(&self.name, e);
            }
        }
        let now = self.clock.now();
        match status {
            SourceStatus::Ready => {}
            SourceStatus::Exhausted => {
                return match self.chain.on_end() {
                    Ok(()) => Ok(Step::Done),
                    Err(e) => operator_error(&self.name, e),
                };
            }
            SourceStatus::Idle => {
                let wait = self
                    .deadline
                    .map_or(IDLE_WAIT, |d| d.saturating_sub(now))
                    .min(IDLE_WAIT);
                self.idle = Some((Instant::now(), wait));
            }
        }
        self.deadline = match self.chain.on_tick(now) {
            Ok(d) => d,
            Err(e) => return operator_error(&self.name, e),
        };
        Ok(match self.idle {
            Some((_, wait)) => Step::Wait(earliest(after(&*self.clock, wait), self.deadline)),
            None => Step::Ran,
        })
    }
}

/// What the thread of a blocking source hands to its stage: events (maybe
/// none), a barrier after them, and the source's status.
pub(crate) struct Polled<T>(Batch<T>, Option<Barrier>, SourceStatus);

/// A blocking source's stage: what its thread read, through the fused
/// operators. It ticks them at least every [`IO_IDLE_TICK`] of real time,
/// as a source stage that polls does when it polls, so that an input with
/// nothing to read is found idle.
pub(crate) struct IoSourceStage<T> {
    pub name: String,
    pub polled: Receiver<Polled<T>>,
    pub chain: Box<dyn Operator<T>>,
    pub clock: Arc<dyn Clock>,
    pub deadline: Option<Duration>,
    /// When the operators were last ticked (real time).
    pub ticked: Option<Instant>,
    /// Where the source's thread finds the worker to wake.
    pub waker: Arc<OnceLock<Thread>>,
    /// Set when the stage is dropped: the source's thread stops.
    pub gone: Arc<AtomicBool>,
}

impl<T> Drop for IoSourceStage<T> {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::SeqCst);
    }
}

impl<T: 'static + Send> Stage for IoSourceStage<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach(&mut self) {
        let _ = self.waker.set(std::thread::current());
    }

    fn step(&mut self, _outputs: &Outputs<'_>) -> RuntimeResult<Step> {
        let polled = match self.polled.try_recv() {
            Ok(polled) => Some(polled),
            Err(TryRecvError::Empty) => None,
            // The source's thread stopped without an end: it recorded why.
            Err(TryRecvError::Disconnected) => return Ok(Step::Done),
        };
        let ran = polled.is_some();
        if let Some(polled) = polled {
            crate::worker::set_backlogged(!self.polled.is_empty());
            let Polled(mut batch, barrier, status) = polled;
            if !batch.is_empty() {
                if let Err(e) = self.chain.on_batch(&mut batch) {
                    return operator_error(&self.name, e);
                }
            }
            if let Some(barrier) = barrier {
                if let Err(e) = self.chain.on_barrier(barrier) {
                    return operator_error(&self.name, e);
                }
            }
            if status == SourceStatus::Exhausted {
                return match self.chain.on_end() {
                    Ok(()) => Ok(Step::Done),
                    Err(e) => operator_error(&self.name, e),
                };
            }
        }
        let now = self.clock.now();
        let since = self.ticked.map_or(IO_IDLE_TICK, |t| t.elapsed());
        let due = self.deadline.is_some_and(|d| d <= now) || since >= IO_IDLE_TICK;
        if !ran && !due {
            let left = IO_IDLE_TICK.saturating_sub(since);
            return Ok(Step::Wait(earliest(
                after(&*self.clock, left),
                self.deadline,
            )));
        }
        self.ticked = Some(Instant::now());
        self.deadline = match self.chain.on_tick(now) {
            Ok(d) => d,
            Err(e) => return operator_error(&self.name, e),
        };
        Ok(if ran {
            Step::Ran
        } else {
            Step::Wait(earliest(after(&*self.clock, IO_IDLE_TICK), self.deadline))
        })
    }
}

/// The loop of a blocking source's own thread: polls, and hands each poll
/// with something in it to the stage, waiting while the stage is behind.
/// It stops when the source ends or fails (recording the failure), when
/// the stage has gone, or when the run stops.
pub(crate) fn poll_blocking<T>(
    name: &str,
    mut source: Box<dyn Source<T>>,
    to_stage: Sender<Polled<T>>,
    waker: Arc<OnceLock<Thread>>,
    poll_size: usize,
    gone: Arc<AtomicBool>,
    shared: Shared,
) {
    let wake = || {
        if let Some(worker) = waker.get() {
            worker.unpark();
        }
    };
    loop {
        if shared.aborted.load(Ordering::SeqCst) || gone.load(Ordering::SeqCst) {
            return;
        }
        let mut batch = Batch::with_capacity(poll_size);
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let status = source.poll(&mut batch, poll_size)?;
            batch.check();
            let barrier = source.barrier()?;
            Ok::<_, crate::BoxError>((status, barrier))
        }));
        let (status, barrier) = match polled {
            Ok(Ok(polled)) => polled,
            Ok(Err(error)) => {
                shared.fail(RuntimeError::Source {
                    source_name: name.to_string(),
                    error,
                });
                wake();
                return;
            }
            Err(panic) => {
                shared.fail(RuntimeError::Panicked {
                    stage: name.to_string(),
                    message: crate::worker::panic_message(&*panic),
                });
                wake();
                return;
            }
        };
        let idle = status == SourceStatus::Idle;
        if !batch.is_empty() || barrier.is_some() || status == SourceStatus::Exhausted {
            if to_stage.send(Polled(batch, barrier, status)).is_err() {
                // The stage has gone: the run stopped.
                return;
            }
            wake();
        }
        if status == SourceStatus::Exhausted {
            return;
        }
        if idle {
            std::thread::sleep(IDLE_WAIT);
        }
    }
}

/// The receiving side of an edge and its fused operators.
pub(crate) struct ReceiverStage<T> {
    pub name: String,
    pub receiver: EdgeReceiver<T>,
    pub chain: Box<dyn Operator<T>>,
    pub clock: Arc<dyn Clock>,
    pub state: Receiving<T>,
}

impl<T: Send + 'static> Stage for ReceiverStage<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach(&mut self) {
        self.receiver.queue.attach_receiver(std::thread::current());
    }

    fn step(&mut self, outputs: &Outputs<'_>) -> RuntimeResult<Step> {
        self.state.step(
            &self.name,
            &self.receiver,
            &mut *self.chain,
            &*self.clock,
            outputs,
        )
    }
}

/// Drives the fused operators behind an edge on the current thread until
/// every sender has ended, or until an operator fails: a receiver stage
/// without a worker (benchmarks, tests).
pub fn run_receiver<T>(
    name: &str,
    receiver: &EdgeReceiver<T>,
    chain: &mut dyn Operator<T>,
    clock: &dyn Clock,
) -> RuntimeResult<()> {
    receiver.queue.attach_receiver(std::thread::current());
    let mut state = Receiving::new(receiver.senders);
    loop {
        match state.step(name, receiver, chain, clock, &Outputs(&[]))? {
            Step::Ran => {}
            Step::Done => return Ok(()),
            Step::Wait(until) => {
                let timeout = until.map_or(IDLE_WAIT * 10, |u| u.saturating_sub(clock.now()));
                std::thread::park_timeout(timeout.min(IDLE_WAIT * 10));
            }
        }
    }
}

/// What a receiver keeps between turns: the senders' progress, barrier
/// alignment, and the operators' next deadline.
///
/// Checkpoint barriers are aligned: once a sender's barrier has come, its
/// later messages are held back until every other sender (that has not
/// ended) has sent the barrier too; then the operators get the barrier once,
/// and the held messages are processed in the order they came.
pub(crate) struct Receiving<T> {
    progress: InputProgress,
    signalled_idle: bool,
    barrier: Alignment<T>,
    deadline: Option<Duration>,
}

impl<T> Receiving<T> {
    pub(crate) fn new(senders: usize) -> Self {
        Self {
            progress: InputProgress::new(senders),
            signalled_idle: false,
            barrier: Alignment::new(senders),
            deadline: None,
        }
    }

    /// One turn: up to [`RECEIVER_TURN`] messages, each followed by a tick,
    /// until an output is full; a tick alone when the deadline has passed.
    fn step(
        &mut self,
        name: &str,
        receiver: &EdgeReceiver<T>,
        chain: &mut dyn Operator<T>,
        clock: &dyn Clock,
        outputs: &Outputs<'_>,
    ) -> RuntimeResult<Step> {
        let mut handled = 0;
        while handled < RECEIVER_TURN && (handled == 0 || !outputs.full()) {
            let envelope = match self.barrier.replay.pop_front() {
                Some(envelope) => envelope,
                None => match receiver.queue.pop() {
                    Some(envelope) => envelope,
                    None => break,
                },
            };
            handled += 1;
            crate::worker::set_backlogged(receiver.queue.batches() > 0);
            match self.handle(envelope, receiver, chain, clock) {
                Ok(true) => {}
                // Every sender has ended.
                Ok(false) => {
                    return match chain.on_end() {
                        Ok(()) => Ok(Step::Done),
                        Err(e) => operator_error(name, e),
                    }
                }
                Err(e) => return operator_error(name, e),
            }
            self.deadline = match chain.on_tick(clock.now()) {
                Ok(d) => d,
                Err(e) => return operator_error(name, e),
            };
        }
        if handled > 0 {
            return Ok(Step::Ran);
        }
        if receiver.queue.disconnected() {
            // A sender stopped without an end: its stage reports why.
            return Ok(Step::Done);
        }
        let now = clock.now();
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = match chain.on_tick(now) {
                Ok(d) => d,
                Err(e) => return operator_error(name, e),
            };
        }
        Ok(Step::Wait(self.deadline))
    }

    /// Passes one message to the operators. Returns false once every
    /// sender has ended (the caller ends the operators).
    fn handle(
        &mut self,
        envelope: Envelope<T>,
        receiver: &EdgeReceiver<T>,
        chain: &mut dyn Operator<T>,
        clock: &dyn Clock,
    ) -> Result<bool, OperatorError> {
        if self.barrier.blocked[envelope.from] {
            self.barrier.held.push_back(envelope);
            return Ok(true);
        }
        let Envelope {
            from,
            message,
            stamp,
        } = envelope;
        let progress = &mut self.progress;
        match message {
            Message::Batch(mut batch) => {
                let size = batch.len();
                receiver.metrics.received(size);
                self.signalled_idle = false;
                let advanced = progress.active(from);
                let started = receiver.feedback.as_ref().map(|_| clock.now());
                let result = chain.on_batch(&mut batch);
                if let (Some(feedback), Some(started)) = (&receiver.feedback, started) {
                    let ended = clock.now();
                    feedback.record(
                        from,
                        size,
                        ended.saturating_sub(started),
                        ended.saturating_sub(stamp),
                    );
                }
                receiver.recycle(batch);
                result.and_then(|()| advanced.map_or(Ok(()), |w| chain.on_watermark(w)))?;
            }
            Message::Watermark(w) => {
                self.signalled_idle = false;
                progress
                    .watermark(from, w)
                    .map_or(Ok(()), |w| chain.on_watermark(w))?;
            }
            Message::Barrier(b) => {
                self.barrier.blocked[from] = true;
                self.barrier.pending = Some(b);
                self.barrier.release(progress, chain)?;
            }
            Message::Idle => {
                let advanced = progress.idle(from);
                advanced.map_or(Ok(()), |w| chain.on_watermark(w))?;
                if progress.all_idle() && !self.signalled_idle {
                    self.signalled_idle = true;
                    chain.on_idle()?;
                }
            }
            Message::End => {
                let advanced = progress.end(from);
                advanced.map_or(Ok(()), |w| chain.on_watermark(w))?;
                // An ended sender no longer holds a barrier back.
                self.barrier.release(progress, chain)?;
                if progress.all_ended() {
                    return Ok(false);
                }
                // The last active sender ended and the others are idle.
                if progress.all_idle() && !self.signalled_idle {
                    self.signalled_idle = true;
                    chain.on_idle()?;
                }
            }
        }
        Ok(true)
    }
}

/// The alignment of a checkpoint barrier over the senders of an edge.
struct Alignment<T> {
    /// The barrier being aligned, if any.
    pending: Option<Barrier>,
    /// Senders whose barrier has come.
    blocked: Vec<bool>,
    /// Messages of blocked senders, in the order they came.
    held: VecDeque<Envelope<T>>,
    /// Messages to process before receiving more.
    replay: VecDeque<Envelope<T>>,
}

impl<T> Alignment<T> {
    fn new(senders: usize) -> Self {
        Self {
            pending: None,
            blocked: vec![false; senders],
            held: VecDeque::new(),
            replay: VecDeque::new(),
        }
    }

    /// Passes the pending barrier on once every sender that has not ended
    /// has sent it, and schedules the held messages.
    fn release(&mut self, progress: &InputProgress, chain: &mut dyn Operator<T>) -> OperatorResult {
        let Some(barrier) = self.pending else {
            return Ok(());
        };
        let aligned = (0..self.blocked.len()).all(|s| self.blocked[s] || progress.has_ended(s));
        if !aligned {
            return Ok(());
        }
        self.pending = None;
        self.blocked.iter_mut().for_each(|b| *b = false);
        // Held messages came before the ones still to replay.
        self.held.append(&mut self.replay);
        std::mem::swap(&mut self.held, &mut self.replay);
        chain.on_barrier(barrier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{multi_edge, FlushPolicy, SystemClock};
    use std::sync::Arc;

    /// What the operators behind an edge saw, in order.
    #[derive(Default)]
    struct Record(Vec<String>);

    impl Operator<u32> for Record {
        fn on_batch(&mut self, batch: &mut Batch<u32>) -> OperatorResult {
            self.0.extend(batch.items().iter().map(|n| n.to_string()));
            Ok(())
        }
        fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
            self.0.push(format!("barrier {}", barrier.id));
            Ok(())
        }
        fn on_end(&mut self) -> OperatorResult {
            self.0.push("end".into());
            Ok(())
        }
        fn downstream(&mut self) -> Option<&mut dyn crate::Signals> {
            None
        }
    }

    fn send(sender: &mut impl Operator<u32>, n: u32) {
        sender
            .on_batch(&mut Batch::from_parts(vec![n], vec![i64::from(n)]))
            .unwrap();
    }

    #[test]
    fn a_barrier_passes_once_every_sender_has_sent_it_and_holds_back_what_follows() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let (mut senders, receiver) =
            multi_edge::<u32>("e", FlushPolicy::EachEvent, 16, clock.clone(), None, 3).unwrap();
        let mut c = senders.pop().unwrap();
        let mut b = senders.pop().unwrap();
        let mut a = senders.pop().unwrap();
        send(&mut a, 1);
        a.on_barrier(Barrier { id: 1 }).unwrap();
        send(&mut a, 10); // after the barrier: held until b and c send theirs
        send(&mut b, 2);
        b.on_barrier(Barrier { id: 1 }).unwrap();
        send(&mut b, 20);
        send(&mut c, 3);
        c.on_end().unwrap(); // an ended sender does not hold the barrier back
        a.on_barrier(Barrier { id: 2 }).unwrap();
        a.on_end().unwrap();
        b.on_barrier(Barrier { id: 2 }).unwrap();
        b.on_end().unwrap();

        let mut record = Record::default();
        run_receiver("r", &receiver, &mut record, clock.as_ref()).unwrap();
        assert_eq!(
            record.0,
            ["1", "2", "3", "barrier 1", "10", "20", "barrier 2", "end"]
        );
    }
}
