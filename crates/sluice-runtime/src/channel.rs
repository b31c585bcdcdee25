//! Edges between stages: the messages they carry, their batching senders and their receivers,
//! and key exchanges.

use crate::queue::Queue;
use crate::{
    AdaptiveController, Barrier, Batcher, Clock, EdgeMetrics, FlushPolicy, Observed, Operator,
    OperatorError, OperatorResult,
};
use crossbeam_channel::{bounded, Receiver, Sender};
use sluice_core::{Batch, Error, Timestamp, MIN_TIMESTAMP};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What travels on an edge.
#[derive(Debug)]
pub enum Message<T> {
    /// Events released by the sender's flush policy.
    Batch(Batch<T>),
    /// The sender's watermark; it follows every event that raised it.
    Watermark(Timestamp),
    /// The sender has no events for now; do not wait for its watermark.
    Idle,
    /// The sender's input ended; nothing follows from it.
    End,
    /// A checkpoint barrier: the sender's messages before it belong to the
    /// checkpoint, those after it to the next.
    Barrier(Barrier),
}

/// A message and the index of the sender it comes from.
#[derive(Debug)]
pub struct Envelope<T> {
    /// Which sender of the edge.
    pub from: usize,
    /// What it sent.
    pub message: Message<T>,
    /// For a batch: the processing time at which its oldest event entered
    /// the sender's batcher, which adaptive edges measure latency from.
    /// Zero for other messages.
    pub stamp: Duration,
}

/// What the receiver of an adaptive edge tells its senders: its cost per
/// batch and busy time (shared), and each sender's worst batch latency.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    /// The receiver's totals, and per sender its batches and worst latency
    /// since it last looked.
    totals: Mutex<(Observed, Vec<(u64, Duration)>)>,
}

impl Feedback {
    fn new(senders: usize) -> Self {
        Self {
            totals: Mutex::new((Observed::default(), vec![(0, Duration::ZERO); senders])),
        }
    }

    /// A batch from `from` of `size` events took `service` to process and
    /// ended `latency` after its oldest event entered the batcher.
    pub(crate) fn record(&self, from: usize, size: usize, service: Duration, latency: Duration) {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        totals.0.record(size, service, latency);
        if let Some((batches, worst)) = totals.1.get_mut(from) {
            *batches += 1;
            *worst = (*worst).max(latency);
        }
    }

    /// What happened since `last` (updated), with `from`'s batches and
    /// worst latency.
    fn take(&self, from: usize, last: &mut Observed) -> Observed {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = totals.0.since(last);
        *last = totals.0;
        (seen.own_batches, seen.worst) = totals
            .1
            .get_mut(from)
            .map_or((0, Duration::ZERO), std::mem::take);
        seen
    }
}

/// An adaptive edge sender's controller and its view of the feedback.
struct Adaptive<T> {
    controller: AdaptiveController,
    feedback: Arc<Feedback>,
    last: Observed,
    /// A piece of a large input, pushed before the controller looks again.
    piece: Batch<T>,
}

/// The fewest events an adaptive edge pushes between two looks of its
/// controller.
const ADAPTIVE_PIECE: usize = 16;

/// Creates an edge from one sender: a batcher with `policy` in front of a
/// queue of `capacity` batches. `exact_len` is the number of events the
/// edge will carry, when known (needed by `FlushPolicy::Batches`).
///
/// The sender is an [`Operator`] to fuse at the end of the upstream stage;
/// the receiver feeds [`crate::stage::run_receiver`].
pub fn edge<T: Send>(
    name: &str,
    policy: FlushPolicy,
    capacity: usize,
    clock: Arc<dyn Clock>,
    exact_len: Option<u64>,
) -> Result<(EdgeSender<T>, EdgeReceiver<T>), Error> {
    let (mut senders, receiver) = multi_edge(name, policy, capacity, clock, exact_len, 1)?;
    let sender = senders.pop().ok_or(Error::ZeroBatchCount)?;
    Ok((sender, receiver))
}

/// Creates an edge from `senders` senders into one receiver, which follows
/// the minimum of their watermarks and ends when all of them have ended.
pub fn multi_edge<T: Send>(
    name: &str,
    policy: FlushPolicy,
    capacity: usize,
    clock: Arc<dyn Clock>,
    exact_len: Option<u64>,
    senders: usize,
) -> Result<(Vec<EdgeSender<T>>, EdgeReceiver<T>), Error> {
    if capacity == 0 {
        return Err(Error::ZeroBatchSize);
    }
    let adaptive = match policy {
        FlushPolicy::Adaptive { target_latency } => Some(target_latency),
        _ => None,
    };
    let feedback = adaptive.map(|_| Arc::new(Feedback::new(senders)));
    let metrics = Arc::new(EdgeMetrics::default());
    // Room for at least one message per sender.
    let queue = Arc::new(Queue::new(capacity.max(senders), senders, metrics.clone()));
    // Emptied buffers go back to the senders: as many as can be in flight,
    // which is the queue's capacity plus what one turn of a stage sends
    // (a poll's worth of batches of one, in event mode).
    let (pool_tx, pool_rx) = bounded(capacity + 2 * senders + crate::DEFAULT_POLL_SIZE);
    let exact_len = if senders == 1 { exact_len } else { None };
    let mut ends = Vec::with_capacity(senders);
    for id in 0..senders {
        ends.push(EdgeSender {
            batcher: Batcher::new(policy, exact_len)?,
            outbox: Outbox {
                id,
                queue: queue.clone(),
                learnt: false,
                pool: pool_rx.clone(),
                metrics: metrics.clone(),
                capacity: policy.max_batch().unwrap_or(1024).min(4096),
                sent_events: 0,
                oldest: Duration::ZERO,
                now: Duration::ZERO,
                blocked_seen: 0,
                deepest: 0,
            },
            adaptive: adaptive
                .zip(feedback.clone())
                .map(|(target, feedback)| Adaptive {
                    controller: AdaptiveController::new(target, capacity.max(senders)),
                    feedback,
                    last: Observed::default(),
                    piece: Batch::new(),
                }),
            clock: clock.clone(),
            uses_clock: policy.uses_clock(),
            pending_watermark: None,
            last_watermark: MIN_TIMESTAMP,
        });
    }
    Ok((
        ends,
        EdgeReceiver {
            name: name.to_string(),
            queue,
            pool: pool_tx,
            metrics,
            senders,
            feedback,
        },
    ))
}

/// The sending side's end of the queue, and counters.
struct Outbox<T> {
    id: usize,
    queue: Arc<Queue<T>>,
    /// The worker running this sender knows it sends to `queue`.
    learnt: bool,
    pool: Receiver<Batch<T>>,
    metrics: Arc<EdgeMetrics>,
    capacity: usize,
    sent_events: u64,
    /// When the oldest event of the next batch entered the batcher, and
    /// the time of the current push (adaptive edges).
    oldest: Duration,
    now: Duration,
    /// The queue's count of held senders when the controller last looked.
    blocked_seen: u64,
    /// The most batches found waiting in the queue by a send since the
    /// controller last looked (adaptive edges).
    deepest: usize,
}

impl<T> Drop for Outbox<T> {
    fn drop(&mut self) {
        self.queue.close_sender();
    }
}

impl<T: Send + 'static> Outbox<T> {
    /// Sends `message`. It never waits: the worker does not run this
    /// sender's stage while the queue is full.
    fn send(&mut self, message: Message<T>) -> OperatorResult {
        if !self.learnt {
            self.learnt = crate::worker::hold_stage(self.queue.clone());
            if !self.learnt && !crate::worker::on_worker() {
                // No worker holds this sender back: it waits itself.
                self.queue.wait_for_room();
            }
        }
        let stamp = match message {
            Message::Batch(_) => self.oldest,
            _ => Duration::ZERO,
        };
        let envelope = Envelope {
            from: self.id,
            message,
            stamp,
        };
        self.queue
            .push(envelope)
            .map_err(|_| OperatorError::DownstreamGone)
    }

    /// True when a sender's stage was held back by this edge's full queue
    /// since the last call.
    fn was_blocked(&mut self) -> bool {
        let held = self.queue.held();
        let was = held > self.blocked_seen;
        self.blocked_seen = held;
        was
    }

    /// Sends `held`, swapping in a recycled buffer.
    fn send_batch(&mut self, held: &mut Batch<T>) -> OperatorResult {
        let fresh = self
            .pool
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(self.capacity));
        let full = std::mem::replace(held, fresh);
        let events = full.len();
        self.deepest = self.deepest.max(self.queue.batches());
        self.send(Message::Batch(full))?;
        self.metrics.sent(events);
        self.sent_events += events as u64;
        // Events held after this batch came with the current push.
        self.oldest = self.now;
        Ok(())
    }
}

/// The sending end of an edge: batches events by its flush policy and sends
/// them to the receiver's queue. A watermark is sent only after every event
/// that arrived before it, so it never overtakes them.
pub struct EdgeSender<T> {
    batcher: Batcher<T>,
    outbox: Outbox<T>,
    adaptive: Option<Adaptive<T>>,
    clock: Arc<dyn Clock>,
    uses_clock: bool,
    /// A watermark waiting for the events held before it: sent once
    /// `sent_events` reaches the count.
    pending_watermark: Option<(Timestamp, u64)>,
    last_watermark: Timestamp,
}

impl<T: Send + 'static> EdgeSender<T> {
    /// The edge's counters.
    pub fn metrics(&self) -> Arc<EdgeMetrics> {
        self.outbox.metrics.clone()
    }

    fn now(&self) -> Duration {
        if self.uses_clock {
            self.clock.now()
        } else {
            Duration::ZERO
        }
    }

    /// Once a control period: the adaptive controller looks at what
    /// happened and retargets the batcher.
    fn adapt(&mut self, now: Duration) {
        let Some(adaptive) = &mut self.adaptive else {
            return;
        };
        if !adaptive.controller.due(now) {
            return;
        }
        if self.outbox.was_blocked() {
            adaptive.controller.blocked();
        }
        adaptive
            .controller
            .queued(std::mem::take(&mut self.outbox.deepest));
        let seen = adaptive.feedback.take(self.outbox.id, &mut adaptive.last);
        adaptive.controller.update(now, &seen);
        self.batcher
            .retarget(adaptive.controller.size(), adaptive.controller.deadline());
    }

    /// Pushes `batch` in pieces of about the controller's size, so that a
    /// large input that meets small batches (a burst) is seen by the
    /// controller after a piece, not after the whole input.
    fn push_adaptive(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let mut piece = match &mut self.adaptive {
            Some(adaptive) => std::mem::take(&mut adaptive.piece),
            None => Batch::new(),
        };
        let result = loop {
            let now = self.clock.now();
            let size = self
                .adaptive
                .as_ref()
                .map_or(usize::MAX, |a| a.controller.size().max(ADAPTIVE_PIECE));
            let input = if batch.len() > size {
                batch.move_front_into(size, &mut piece);
                &mut piece
            } else {
                &mut *batch
            };
            if input.is_empty() {
                break Ok(());
            }
            if let Some(adaptive) = &mut self.adaptive {
                adaptive.controller.arrived(input.len());
                if crate::worker::backlogged() {
                    adaptive.controller.backlogged(input.len());
                }
            }
            if self.batcher.held() == 0 {
                self.outbox.oldest = now;
            }
            self.outbox.now = now;
            let outbox = &mut self.outbox;
            if let Err(e) = self
                .batcher
                .push(input, now, &mut |held| outbox.send_batch(held))
            {
                break Err(e);
            }
            self.adapt(now);
            if batch.is_empty() {
                break Ok(());
            }
        };
        piece.clear();
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.piece = piece;
        }
        result?;
        self.send_due_watermark()
    }

    fn send_due_watermark(&mut self) -> OperatorResult {
        if let Some((watermark, after)) = self.pending_watermark {
            if self.outbox.sent_events >= after {
                self.pending_watermark = None;
                self.outbox.send(Message::Watermark(watermark))?;
            }
        }
        Ok(())
    }
}

impl<T: Send + 'static> Operator<T> for EdgeSender<T> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        if self.adaptive.is_some() {
            return self.push_adaptive(batch);
        }
        let now = self.now();
        let outbox = &mut self.outbox;
        self.batcher
            .push(batch, now, &mut |held| outbox.send_batch(held))?;
        self.send_due_watermark()
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.outbox.now = now;
        // Adapt first: a deadline the controller has just shortened sends
        // what is held now, not one tick later.
        self.adapt(now);
        let outbox = &mut self.outbox;
        let deadline = self
            .batcher
            .tick(now, &mut |held| outbox.send_batch(held))?;
        self.send_due_watermark()?;
        Ok(deadline)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        if watermark <= self.last_watermark {
            return Ok(());
        }
        self.last_watermark = watermark;
        let after = self.outbox.sent_events + self.batcher.held() as u64;
        self.pending_watermark = Some((watermark, after));
        self.send_due_watermark()
    }

    /// The input is idle: what is held goes now (it would otherwise wait for
    /// events that are not coming), then its watermark, then the idle mark.
    fn on_idle(&mut self) -> OperatorResult {
        let outbox = &mut self.outbox;
        self.batcher.finish(&mut |held| outbox.send_batch(held))?;
        self.send_due_watermark()?;
        self.outbox.send(Message::Idle)
    }

    fn on_end(&mut self) -> OperatorResult {
        let outbox = &mut self.outbox;
        self.batcher.finish(&mut |held| outbox.send_batch(held))?;
        self.send_due_watermark()?;
        self.outbox.send(Message::End)
    }

    /// What is held goes now (it belongs to the checkpoint), then its
    /// watermark, then the barrier.
    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        let outbox = &mut self.outbox;
        self.batcher.finish(&mut |held| outbox.send_batch(held))?;
        self.send_due_watermark()?;
        self.outbox.send(Message::Barrier(barrier))
    }
    fn downstream(&mut self) -> Option<&mut dyn crate::Signals> {
        None
    }
}

/// The receiving end of an edge.
pub struct EdgeReceiver<T> {
    name: String,
    pub(crate) queue: Arc<Queue<T>>,
    pub(crate) pool: Sender<Batch<T>>,
    pub(crate) metrics: Arc<EdgeMetrics>,
    pub(crate) senders: usize,
    /// For an adaptive edge: what its senders' controllers learn from.
    pub(crate) feedback: Option<Arc<Feedback>>,
}

impl<T> EdgeReceiver<T> {
    /// The edge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The edge's counters.
    pub fn metrics(&self) -> Arc<EdgeMetrics> {
        self.metrics.clone()
    }

    /// How many senders feed this receiver.
    pub fn senders(&self) -> usize {
        self.senders
    }

    /// Returns an emptied buffer to the senders for reuse.
    pub(crate) fn recycle(&self, mut batch: Batch<T>) {
        batch.clear();
        let _ = self.pool.try_send(batch);
    }
}

impl<T> Drop for EdgeReceiver<T> {
    fn drop(&mut self) {
        self.queue.close_receiver();
    }
}

type Route<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// The two sides of a key exchange: one sender per upstream instance, one
/// receiver per downstream instance.
pub type ExchangeEnds<T> = (Vec<ExchangeSender<T>>, Vec<EdgeReceiver<T>>);

/// The sending end of a key exchange: routes every event to the receiver
/// its key hashes to, through one batching edge per receiver. Watermarks,
/// idleness and the end go to every receiver.
pub struct ExchangeSender<T> {
    senders: Vec<EdgeSender<T>>,
    route: Route<T>,
    scratch: Vec<Batch<T>>,
}

/// Creates a key exchange from `upstream` senders to `downstream` receivers:
/// one [`ExchangeSender`] per upstream instance, one [`EdgeReceiver`] per
/// downstream instance. `route` hashes an event's key.
pub fn exchange<T: Send>(
    name: &str,
    policy: FlushPolicy,
    capacity: usize,
    clock: Arc<dyn Clock>,
    upstream: usize,
    downstream: usize,
    route: Route<T>,
) -> Result<ExchangeEnds<T>, Error> {
    let mut columns: Vec<std::vec::IntoIter<EdgeSender<T>>> = Vec::with_capacity(downstream);
    let mut receivers = Vec::with_capacity(downstream);
    for d in 0..downstream {
        let (senders, receiver) = multi_edge(
            &format!("{name}-{d}"),
            policy,
            capacity,
            clock.clone(),
            None,
            upstream,
        )?;
        columns.push(senders.into_iter());
        receivers.push(receiver);
    }
    let mut senders = Vec::with_capacity(upstream);
    for _ in 0..upstream {
        let row: Vec<EdgeSender<T>> = columns.iter_mut().filter_map(Iterator::next).collect();
        senders.push(ExchangeSender {
            scratch: (0..row.len()).map(|_| Batch::new()).collect(),
            senders: row,
            route: route.clone(),
        });
    }
    Ok((senders, receivers))
}

/// Moves every event of `batch` to the part its route picks.
#[inline(always)]
fn split<T>(
    batch: &mut Batch<T>,
    parts: &mut [Batch<T>],
    route: &(dyn Fn(&T) -> u64 + Send + Sync),
    pick: impl Fn(u64) -> u64,
) {
    for (item, time) in batch.drain() {
        parts[pick(route(&item)) as usize].push(item, time);
    }
}

impl<T: Send + 'static> Operator<T> for ExchangeSender<T> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let n = self.senders.len() as u64;
        if n == 1 {
            return self.senders[0].on_batch(batch);
        }
        // `hash % n`; for a power of two (1, 2, 4, 8 workers) the same
        // value by a mask, without a division per event.
        if n.is_power_of_two() {
            split(batch, &mut self.scratch, &*self.route, |hash| {
                hash & (n - 1)
            });
        } else {
            split(batch, &mut self.scratch, &*self.route, |hash| hash % n);
        }
        for (sender, part) in self.senders.iter_mut().zip(&mut self.scratch) {
            if !part.is_empty() {
                sender.on_batch(part)?;
                part.clear();
            }
        }
        Ok(())
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let mut earliest: Option<Duration> = None;
        for sender in &mut self.senders {
            if let Some(d) = sender.on_tick(now)? {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        Ok(earliest)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.senders
            .iter_mut()
            .try_for_each(|s| s.on_watermark(watermark))
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.senders.iter_mut().try_for_each(|s| s.on_idle())
    }

    fn on_end(&mut self) -> OperatorResult {
        self.senders.iter_mut().try_for_each(|s| s.on_end())
    }

    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        self.senders
            .iter_mut()
            .try_for_each(|s| s.on_barrier(barrier))
    }
    fn downstream(&mut self) -> Option<&mut dyn crate::Signals> {
        None
    }
}
