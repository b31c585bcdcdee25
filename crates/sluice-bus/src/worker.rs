//! Handler threads: each runs its handler on its queue's events with retries, publishes the
//! outputs, and dead-letters the events that still fail. An inline handler does the same as a
//! call on the publisher's thread.

use super::dead_letter::{topic_name, DeadLetter, UnclaimedDeadLetter};
use super::event_bus::Output;
use super::handler::HandlerFn;
use super::topic::Route;
use super::{lock, BusError, BusShared, Handler, RetryPolicy, Topic};
use crossbeam_channel::{bounded, Receiver};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Starts the threads of `handler` and routes `topic`'s events to them; an
/// inline handler gets no thread: its route calls it.
pub(crate) fn start<T, U>(
    shared: &Arc<BusShared>,
    topic: &Topic<T>,
    handler: Handler<T, U>,
) -> Result<(), BusError>
where
    T: Clone + std::fmt::Debug + Send + 'static,
    U: Clone + std::fmt::Debug + Send + 'static,
{
    // An inline handler's backoff would hold up the publisher: it does not
    // retry unless told to.
    let default = if handler.inline {
        RetryPolicy::NEVER
    } else {
        shared.config.retry
    };
    let retry = handler.retry.unwrap_or(default);
    retry.validate()?;
    let worker = || Worker {
        shared: shared.clone(),
        topic: topic.clone(),
        name: handler.name.clone(),
        run: handler.run.clone(),
        output: handler.output.clone(),
        retry,
    };
    if handler.inline {
        let worker = worker();
        topic.core().add_route(Route::Inline(Arc::new(move |event| {
            worker.handle(event);
            worker
                .shared
                .counters
                .handled
                .fetch_add(1, Ordering::Relaxed);
        })));
        return Ok(());
    }
    let mut queues = Vec::with_capacity(handler.workers);
    for index in 0..handler.workers {
        let (tx, rx) = bounded::<T>(shared.config.queue_capacity);
        let worker = worker();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-handler-{}-{index}", handler.name))
            .spawn(move || worker.run(rx))
            .map_err(|e| BusError::Spawn {
                handler: handler.name.clone(),
                error: e.to_string(),
            })?;
        lock(&shared.workers).push(thread);
        queues.push(tx);
    }
    topic.core().add_route(Route::Queued {
        queues,
        key: handler.key,
    });
    Ok(())
}

struct Worker<T, U> {
    shared: Arc<BusShared>,
    topic: Topic<T>,
    name: String,
    run: HandlerFn<T, U>,
    output: Option<Output<U>>,
    retry: RetryPolicy,
}

impl<T, U> Worker<T, U>
where
    T: Clone + std::fmt::Debug + Send + 'static,
    U: Clone + std::fmt::Debug + Send + 'static,
{
    fn run(self, queue: Receiver<T>) {
        let spin = self.shared.config.spin_before_park;
        while let Some(event) = next(&queue, spin) {
            // The handler's own panics are caught by its retries; one in
            // what follows (the next topic's key function, a clone) must not
            // end the thread: its queued events would never finish, and
            // shutdown would wait for them for ever.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::in_flight::in_handler(self.shared.id(), || self.handle(event))
            }));
            if let Err(panic) = handled {
                self.shared
                    .counters
                    .dead_lettered
                    .fetch_add(1, Ordering::Relaxed);
                lock(&self.shared.unclaimed).push(UnclaimedDeadLetter {
                    topic: self.topic.name().to_string(),
                    handler: self.name.clone(),
                    event: "(not kept: the panic consumed it)".to_string(),
                    error: format!(
                        "a panic after the handler ran: {}",
                        super::handler::panic_text(panic.as_ref())
                    ),
                    attempts: 1,
                });
            }
            self.shared.counters.handled.fetch_add(1, Ordering::Relaxed);
            self.shared.in_flight.finished();
        }
    }

    fn handle(&self, event: T) {
        let (outcome, attempts) = self.retry.attempt(&self.run, &event, || {
            self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        });
        match outcome {
            Ok(Some(output)) => {
                if let Some(topic) = &self.output {
                    if let Err(e) = topic.deliver(output) {
                        self.dead_letter(
                            event,
                            format!("its output could not be published: {e}"),
                            attempts,
                        );
                    }
                }
            }
            Ok(None) => {}
            Err(error) => self.dead_letter(event, error, attempts),
        }
    }

    fn dead_letter(&self, event: T, error: String, attempts: u32) {
        self.shared
            .counters
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        let letter = DeadLetter {
            topic: self.topic.name().to_string(),
            handler: self.name.clone(),
            event,
            error,
            attempts,
        };
        let delivered = self
            .topic
            .bus()
            .topic::<DeadLetter<T>>(&topic_name(self.topic.name()))
            .and_then(|dead| dead.deliver(letter.clone()));
        if delivered.is_err() {
            lock(&self.shared.unclaimed).push(UnclaimedDeadLetter {
                topic: letter.topic,
                handler: letter.handler,
                event: format!("{:?}", letter.event),
                error: letter.error,
                attempts,
            });
        }
    }
}

/// The next event: polled for up to `spin` before the thread sleeps, since
/// waking a sleeping thread can take milliseconds on a virtual machine.
fn next<T>(queue: &Receiver<T>, spin: std::time::Duration) -> Option<T> {
    if !spin.is_zero() {
        let started = std::time::Instant::now();
        loop {
            match queue.try_recv() {
                Ok(event) => return Some(event),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                Err(crossbeam_channel::TryRecvError::Empty) if started.elapsed() < spin => {
                    std::hint::spin_loop()
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
            }
        }
    }
    queue.recv().ok()
}
