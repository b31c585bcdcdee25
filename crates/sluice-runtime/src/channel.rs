use crate::{Batcher, Clock, EdgeMetrics, FlushPolicy, Operator, OperatorError, OperatorResult};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use sluice_core::{Batch, Error};
use std::sync::Arc;
use std::time::Duration;

/// What travels on an edge.
#[derive(Debug)]
pub enum Message<T> {
    /// Events released by the sender's flush policy.
    Batch(Batch<T>),
    /// The sender's input ended; nothing follows.
    End,
}

/// Creates an edge: a batcher with `policy` in front of a channel of
/// `capacity` batches. `exact_len` is the number of events the edge will
/// carry, when known (needed by `FlushPolicy::Batches`).
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
    if capacity == 0 {
        return Err(Error::ZeroBatchSize);
    }
    let batcher = Batcher::new(policy, exact_len)?;
    let (tx, rx) = bounded(capacity);
    // Emptied buffers go back to the sender; one more than can be in flight.
    let (pool_tx, pool_rx) = bounded(capacity + 2);
    let metrics = Arc::new(EdgeMetrics::default());
    let uses_clock = policy.interval().is_some();
    Ok((
        EdgeSender {
            batcher,
            tx,
            pool: pool_rx,
            metrics: metrics.clone(),
            clock,
            uses_clock,
            buffer_capacity: policy.max_batch().unwrap_or(1024).min(4096),
        },
        EdgeReceiver {
            name: name.to_string(),
            rx,
            pool: pool_tx,
            metrics,
        },
    ))
}

/// The sending end of an edge: batches events by its flush policy and sends
/// them, blocking while the channel is full.
pub struct EdgeSender<T> {
    batcher: Batcher<T>,
    tx: Sender<Message<T>>,
    pool: Receiver<Batch<T>>,
    metrics: Arc<EdgeMetrics>,
    clock: Arc<dyn Clock>,
    uses_clock: bool,
    buffer_capacity: usize,
}

impl<T: Send> EdgeSender<T> {
    /// The edge's counters.
    pub fn metrics(&self) -> Arc<EdgeMetrics> {
        self.metrics.clone()
    }

    fn now(&self) -> Duration {
        if self.uses_clock {
            self.clock.now()
        } else {
            Duration::ZERO
        }
    }
}

/// Sends `held`, swapping in a recycled buffer.
fn send<T>(
    held: &mut Batch<T>,
    tx: &Sender<Message<T>>,
    pool: &Receiver<Batch<T>>,
    metrics: &EdgeMetrics,
    capacity: usize,
) -> OperatorResult {
    let fresh = pool
        .try_recv()
        .unwrap_or_else(|_| Batch::with_capacity(capacity));
    let full = std::mem::replace(held, fresh);
    let events = full.len();
    let message = match tx.try_send(Message::Batch(full)) {
        Ok(()) => {
            metrics.sent(events);
            return Ok(());
        }
        Err(TrySendError::Full(message)) => message,
        Err(TrySendError::Disconnected(_)) => return Err(OperatorError::DownstreamGone),
    };
    metrics.blocked();
    tx.send(message)
        .map_err(|_| OperatorError::DownstreamGone)?;
    metrics.sent(events);
    Ok(())
}

impl<T: Send> Operator<T> for EdgeSender<T> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let now = self.now();
        let (tx, pool, metrics, capacity) =
            (&self.tx, &self.pool, &*self.metrics, self.buffer_capacity);
        self.batcher.push(batch, now, &mut |held| {
            send(held, tx, pool, metrics, capacity)
        })
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let (tx, pool, metrics, capacity) =
            (&self.tx, &self.pool, &*self.metrics, self.buffer_capacity);
        self.batcher
            .tick(now, &mut |held| send(held, tx, pool, metrics, capacity))
    }

    fn on_end(&mut self) -> OperatorResult {
        let (tx, pool, metrics, capacity) =
            (&self.tx, &self.pool, &*self.metrics, self.buffer_capacity);
        self.batcher
            .finish(&mut |held| send(held, tx, pool, metrics, capacity))?;
        self.tx
            .send(Message::End)
            .map_err(|_| OperatorError::DownstreamGone)
    }
}

/// The receiving end of an edge.
pub struct EdgeReceiver<T> {
    name: String,
    pub(crate) rx: Receiver<Message<T>>,
    pub(crate) pool: Sender<Batch<T>>,
    pub(crate) metrics: Arc<EdgeMetrics>,
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

    /// Returns an emptied buffer to the sender for reuse.
    pub(crate) fn recycle(&self, mut batch: Batch<T>) {
        batch.clear();
        let _ = self.pool.try_send(batch);
    }
}
