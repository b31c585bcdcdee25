//! The stage loops: where the work happens.
//!
//! Each stage runs on its own thread, as a plain loop (no async): a source
//! stage polls its source and pushes into its fused operators; a receiver
//! stage takes batches from an edge and does the same. Both give the
//! operators processing-time ticks so that interval flushes happen even when
//! no input arrives.

use crate::{
    Barrier, Clock, EdgeReceiver, Envelope, InputProgress, Message, Operator, OperatorError,
    OperatorResult, RuntimeError, RuntimeResult, Source, SourceStatus,
};
use crossbeam_channel::RecvTimeoutError;
use sluice_core::Batch;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long an idle source waits before polling again, at most.
const IDLE_WAIT: Duration = Duration::from_millis(1);

fn operator_error(stage: &str, error: OperatorError) -> RuntimeResult<()> {
    match error {
        // The downstream stage reports why it stopped.
        OperatorError::DownstreamGone => Ok(()),
        OperatorError::Failed(error) => Err(RuntimeError::Operator {
            stage: stage.to_string(),
            error,
        }),
    }
}

/// Drives `source` and the fused operators after it until the source is
/// exhausted, an operator fails, or `aborted` is set (another stage of the
/// run failed: that stage reports why).
pub fn run_source<T>(
    name: &str,
    source: &mut dyn Source<T>,
    chain: &mut dyn Operator<T>,
    clock: &dyn Clock,
    poll_size: usize,
    aborted: &AtomicBool,
) -> RuntimeResult<()> {
    let mut buffer = Batch::with_capacity(poll_size);
    let mut deadline: Option<Duration> = None;
    loop {
        if aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let status = source
            .poll(&mut buffer, poll_size)
            .map_err(|error| RuntimeError::Source {
                source_name: name.to_string(),
                error,
            })?;
        buffer.check();
        if !buffer.is_empty() {
            if let Err(e) = chain.on_batch(&mut buffer) {
                return operator_error(name, e);
            }
            buffer.clear();
        }
        let barrier = source.barrier().map_err(|error| RuntimeError::Source {
            source_name: name.to_string(),
            error,
        })?;
        if let Some(barrier) = barrier {
            if let Err(e) = chain.on_barrier(barrier) {
                return operator_error(name, e);
            }
        }
        match status {
            SourceStatus::Ready => {}
            SourceStatus::Exhausted => {
                return chain.on_end().or_else(|e| operator_error(name, e));
            }
            SourceStatus::Idle => {
                let wait = deadline
                    .map(|d| d.saturating_sub(clock.now()))
                    .unwrap_or(IDLE_WAIT)
                    .min(IDLE_WAIT);
                std::thread::sleep(wait);
            }
        }
        deadline = match chain.on_tick(clock.now()) {
            Ok(d) => d,
            Err(e) => return operator_error(name, e),
        };
    }
}

/// Drives the fused operators behind an edge until every sender has ended,
/// or until an operator fails. The operators' watermark is the minimum over
/// the senders' (see [`InputProgress`]).
///
/// Checkpoint barriers are aligned: once a sender's barrier has come, its
/// later messages are held back until every other sender (that has not
/// ended) has sent the barrier too; then the operators get the barrier once,
/// and the held messages are processed in the order they came.
pub fn run_receiver<T>(
    name: &str,
    receiver: &EdgeReceiver<T>,
    chain: &mut dyn Operator<T>,
    clock: &dyn Clock,
) -> RuntimeResult<()> {
    let mut deadline: Option<Duration> = None;
    let mut progress = InputProgress::new(receiver.senders);
    let mut signalled_idle = false;
    let mut barrier = Alignment::new(receiver.senders);
    loop {
        let envelope = match barrier.replay.pop_front() {
            Some(envelope) => Ok(envelope),
            None => match deadline {
                Some(due) => receiver.rx.recv_timeout(due.saturating_sub(clock.now())),
                None => receiver
                    .rx
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            },
        };
        let step = match envelope {
            Ok(envelope) if barrier.blocked[envelope.from] => {
                barrier.held.push_back(envelope);
                Ok(())
            }
            Ok(Envelope {
                from,
                message,
                stamp,
            }) => match message {
                Message::Batch(mut batch) => {
                    let size = batch.len();
                    receiver.metrics.received(size);
                    signalled_idle = false;
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
                    result.and_then(|()| advanced.map_or(Ok(()), |w| chain.on_watermark(w)))
                }
                Message::Watermark(w) => {
                    signalled_idle = false;
                    progress
                        .watermark(from, w)
                        .map_or(Ok(()), |w| chain.on_watermark(w))
                }
                Message::Barrier(b) => {
                    barrier.blocked[from] = true;
                    barrier.pending = Some(b);
                    barrier.release(&progress, chain)
                }
                Message::Idle => {
                    let advanced = progress.idle(from);
                    let result = advanced.map_or(Ok(()), |w| chain.on_watermark(w));
                    if result.is_ok() && progress.all_idle() && !signalled_idle {
                        signalled_idle = true;
                        chain.on_idle()
                    } else {
                        result
                    }
                }
                Message::End => {
                    let advanced = progress.end(from);
                    let result = advanced
                        .map_or(Ok(()), |w| chain.on_watermark(w))
                        // An ended sender no longer holds a barrier back.
                        .and_then(|()| barrier.release(&progress, chain));
                    if progress.all_ended() {
                        return result
                            .and_then(|()| chain.on_end())
                            .or_else(|e| operator_error(name, e));
                    }
                    // The last active sender ended and the others are idle.
                    if result.is_ok() && progress.all_idle() && !signalled_idle {
                        signalled_idle = true;
                        chain.on_idle()
                    } else {
                        result
                    }
                }
            },
            Err(RecvTimeoutError::Timeout) => Ok(()),
            // A sender stopped without an end: its stage reports why.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if let Err(e) = step {
            return operator_error(name, e);
        }
        deadline = match chain.on_tick(clock.now()) {
            Ok(d) => d,
            Err(e) => return operator_error(name, e),
        };
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
