//! The queue of one edge: where its senders leave messages for its
//! receiver.
//!
//! A push never blocks. The queue has a capacity, and a stage whose output
//! queue is at capacity is not run until the receiver has taken a message
//! out ([`crate::worker`]): that is the backpressure. A turn of a stage may
//! go over the capacity by what one poll or one input message produces
//! (every sender of the queue may, once), so memory stays bounded without
//! a sender ever waiting inside an operator. Waiting
//! inside an operator is what would deadlock cooperative workers: the
//! receiver may be another stage of the same thread.
//!
//! Each side wakes the other's worker: a push unparks the receiver's, a pop
//! that brings the queue below capacity unparks the senders' workers.

use crate::worker::Hold;
use crate::{EdgeMetrics, Envelope, Message};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;

/// The receiver has gone: nothing sent is read any more.
#[derive(Debug)]
pub(crate) struct ReceiverGone;

/// A queue of messages from the senders of one edge to its receiver.
pub(crate) struct Queue<T> {
    messages: Mutex<VecDeque<Envelope<T>>>,
    /// `messages.len()`, readable without the lock.
    len: AtomicUsize,
    /// Of them, batches (not watermarks, barriers or ends): counted where
    /// they go in and come out.
    batches: AtomicUsize,
    capacity: usize,
    /// Senders that have not been dropped.
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    /// The thread that runs the receiver, once it runs.
    receiver: OnceLock<Thread>,
    /// The threads that run senders: woken when there is room again.
    senders_threads: Mutex<Vec<Thread>>,
    metrics: Arc<EdgeMetrics>,
    /// Times a worker found a sender's stage held back by this queue being
    /// full: what adaptive senders learn pressure from. Pushes past the
    /// capacity within one turn are not in it (they are in the metrics'
    /// blocked sends): on one worker the receiver may simply not have had
    /// its turn yet.
    held: AtomicU64,
}

impl<T> Queue<T> {
    /// How often a sender's stage was found held back by this queue.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Batches waiting (watermarks and other signals aside).
    pub(crate) fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    pub(crate) fn new(capacity: usize, senders: usize, metrics: Arc<EdgeMetrics>) -> Self {
        Self {
            messages: Mutex::new(VecDeque::with_capacity(capacity + 1)),
            len: AtomicUsize::new(0),
            batches: AtomicUsize::new(0),
            capacity: capacity.max(1),
            senders: AtomicUsize::new(senders),
            receiver_gone: AtomicBool::new(false),
            receiver: OnceLock::new(),
            senders_threads: Mutex::new(Vec::new()),
            metrics,
            held: AtomicU64::new(0),
        }
    }

    /// Appends `envelope`, and wakes the receiver's thread.
    pub(crate) fn push(&self, envelope: Envelope<T>) -> Result<(), ReceiverGone> {
        if self.receiver_gone.load(Ordering::SeqCst) {
            return Err(ReceiverGone);
        }
        let before = {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(envelope.message, Message::Batch(_)) {
                self.batches.fetch_add(1, Ordering::SeqCst);
            }
            messages.push_back(envelope);
            self.len.fetch_add(1, Ordering::SeqCst)
        };
        if before >= self.capacity {
            // A thread-per-stage sender would have waited here.
            self.metrics.blocked();
        }
        if let Some(receiver) = self.receiver.get() {
            receiver.unpark();
        }
        Ok(())
    }

    /// Takes the oldest message out; wakes the senders' threads when the
    /// queue goes below its capacity.
    pub(crate) fn pop(&self) -> Option<Envelope<T>> {
        // Without the lock when empty: a worker looking for work before it
        // parks does not contend with the senders. A push counts its message
        // before it wakes the receiver, so none is missed.
        if self.len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let (envelope, before) = {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            let envelope = messages.pop_front()?;
            if matches!(envelope.message, Message::Batch(_)) {
                self.batches.fetch_sub(1, Ordering::SeqCst);
            }
            (envelope, self.len.fetch_sub(1, Ordering::SeqCst))
        };
        if before == self.capacity {
            self.wake_senders();
        }
        Some(envelope)
    }

    /// True when every sender has gone and nothing is left to read.
    pub(crate) fn disconnected(&self) -> bool {
        self.senders.load(Ordering::SeqCst) == 0 && self.len.load(Ordering::SeqCst) == 0
    }

    /// The receiver runs on `thread` from now on.
    pub(crate) fn attach_receiver(&self, thread: Thread) {
        // Set once: a receiver stage runs on one thread for the whole run.
        let _ = self.receiver.set(thread);
        if self.len.load(Ordering::SeqCst) > 0 {
            if let Some(receiver) = self.receiver.get() {
                receiver.unpark();
            }
        }
    }

    /// The receiver has been dropped: senders stop, and blocked senders
    /// wake up to find out.
    pub(crate) fn close_receiver(&self) {
        self.receiver_gone.store(true, Ordering::SeqCst);
        let dropped =
            std::mem::take(&mut *self.messages.lock().unwrap_or_else(PoisonError::into_inner));
        self.len.store(0, Ordering::SeqCst);
        self.batches.store(0, Ordering::SeqCst);
        drop(dropped);
        self.wake_senders();
    }

    /// A sender has been dropped.
    pub(crate) fn close_sender(&self) {
        self.senders.fetch_sub(1, Ordering::SeqCst);
        if let Some(receiver) = self.receiver.get() {
            receiver.unpark();
        }
    }

    fn wake_senders(&self) {
        let threads = self
            .senders_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        threads.iter().for_each(Thread::unpark);
    }
}

impl<T: Send> Hold for Queue<T> {
    /// Full, and its receiver still reads.
    fn holds(&self) -> bool {
        self.len.load(Ordering::SeqCst) >= self.capacity
            && !self.receiver_gone.load(Ordering::SeqCst)
    }

    fn note_held(&self) {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.metrics.blocked();
    }

    fn wake_on_release(&self, thread: Thread) {
        let mut threads = self
            .senders_threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !threads.iter().any(|t| t.id() == thread.id()) {
            threads.push(thread);
        }
    }
}

impl<T: Send> Queue<T> {
    /// Waits on this thread until the queue has room: for senders outside
    /// a worker (benchmarks, tests), which nothing else holds back.
    pub(crate) fn wait_for_room(&self) {
        if !self.holds() {
            return;
        }
        self.wake_on_release(std::thread::current());
        while self.holds() {
            std::thread::park_timeout(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Batch;
    use std::time::Duration;

    fn envelope(message: Message<u8>) -> Envelope<u8> {
        Envelope {
            from: 0,
            message,
            stamp: Duration::ZERO,
        }
    }

    /// A batch followed by its watermark leaves no batch behind once the
    /// batch is taken: what a receiver reports as backlog (adaptive edges
    /// downstream) counts batches, not signals.
    #[test]
    fn batches_waiting_do_not_count_watermarks_or_ends() {
        let queue = Queue::new(4, 1, Arc::new(EdgeMetrics::default()));
        queue
            .push(envelope(Message::Batch(Batch::from_parts(
                vec![1],
                vec![0],
            ))))
            .unwrap();
        queue.push(envelope(Message::Watermark(0))).unwrap();
        assert_eq!(queue.batches(), 1);
        assert!(matches!(queue.pop().unwrap().message, Message::Batch(_)));
        assert_eq!(queue.batches(), 0);
        queue.push(envelope(Message::End)).unwrap();
        assert_eq!(queue.batches(), 0);
        queue.close_receiver();
        assert_eq!(queue.batches(), 0);
    }
}
