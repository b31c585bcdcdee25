//! The event bus over NATS JetStream: the same [`EventBus`] as the
//! in-process [`sluice_bus::Bus`], with topics that cross processes and
//! machines.
//!
//! - A bus is a namespace: one stream (named after it) keeps every topic,
//!   topic `t` on subject `<namespace>.t`. Events are JSON.
//! - `publish` waits for the stream's acknowledgement: an accepted event is
//!   stored (replicated, in a cluster) before `publish` returns. A topic
//!   needs no subscriber yet: the stream keeps the events until handlers
//!   come.
//! - A handler is a durable consumer named after its topic and its own
//!   name, shared by every process that subscribes a handler of that name:
//!   each event is handled by one of them (a consumer group). A process
//!   that dies mid-event leaves it unacknowledged, and the server sends it
//!   to another after the ack wait: at-least-once.
//! - Failing handlers are retried by their [`RetryPolicy`], then the event
//!   goes to `<topic>.dead_letter` with the error, like the in-process bus.
//!   A payload that does not decode as the topic's type is reported in
//!   [`BusReport::unclaimed`].
//! - Order: one worker of one process handles a topic's events in order;
//!   several workers or processes share them with no order between them.
//!
//! ```no_run
//! use sluice_bus::{EventBus, Handler, PublishTopic};
//! let bus = sluice_nats::bus::NatsBus::connect("nats://127.0.0.1:4222", "plant")?;
//! let alerts = bus.topic::<String>("alerts")?;
//! bus.subscribe(&alerts, Handler::new("pager", |a: &String| {
//!     println!("{a}");
//!     Ok::<(), String>(())
//! }))?;
//! alerts.publish("boiler 3 is too hot".to_string())?;
//! bus.shutdown();
//! # Ok::<(), sluice_bus::BusError>(())
//! ```

use crate::NatsClient;
use sluice_bus::{
    BusCounters, BusError, BusEvent, BusReport, DeadLetter, EventBus, Handler, HandlerFn, Output,
    PublishTopic, RetryPolicy, UnclaimedDeadLetter,
};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a handler has for an event before the server sends it to
/// another copy of the handler.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// The longest `shutdown` waits for shared handlers to drain.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

struct Inner {
    client: NatsClient,
    namespace: String,
    closed: AtomicBool,
    stop: Arc<AtomicBool>,
    counters: BusCounters,
    /// Events handlers are working on now.
    busy: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The consumers of this bus's handlers, to drain at shutdown.
    consumers: Mutex<Vec<String>>,
    unclaimed: Mutex<Vec<UnclaimedDeadLetter>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event bus over NATS JetStream. Cloning gives another handle to it.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

/// A topic of a [`NatsBus`].
pub struct NatsTopic<T> {
    bus: Arc<Inner>,
    name: String,
    subject: String,
    _events: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for NatsTopic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsTopic")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .finish()
    }
}

impl<T> Clone for NatsTopic<T> {
    fn clone(&self) -> Self {
        Self {
            bus: self.bus.clone(),
            name: self.name.clone(),
            subject: self.subject.clone(),
            _events: PhantomData,
        }
    }
}

fn transport(topic: &str, error: impl std::fmt::Display) -> BusError {
    BusError::Transport {
        topic: topic.to_string(),
        error: error.to_string(),
    }
}

fn check_name(name: &str, what: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(transport(
            name,
            format!(
                "{what} `{name}` cannot be a NATS subject: use letters, digits, `_`, `-` and \
                 single dots"
            ),
        ))
    }
}

impl NatsBus {
    /// The bus `namespace` on the servers at `url` (comma-separated for a
    /// cluster); its stream is made if absent, with one replica.
    pub fn connect(url: &str, namespace: &str) -> Result<Self, BusError> {
        Self::connect_with_replicas(url, namespace, 1)
    }

    /// As [`NatsBus::connect`], with `replicas` copies of the stream.
    pub fn connect_with_replicas(
        url: &str,
        namespace: &str,
        replicas: usize,
    ) -> Result<Self, BusError> {
        check_name(namespace, "namespace")?;
        if namespace.contains('.') {
            return Err(transport(
                namespace,
                "a namespace has no dots (it names a stream)",
            ));
        }
        let client = NatsClient::connect(url).map_err(|e| transport(namespace, e))?;
        client
            .ensure_stream(namespace, &[&format!("{namespace}.>")], replicas)
            .map_err(|e| transport(namespace, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                namespace: namespace.to_string(),
                closed: AtomicBool::new(false),
                stop: Arc::new(AtomicBool::new(false)),
                counters: BusCounters::default(),
                busy: AtomicU64::new(0),
                workers: Mutex::new(Vec::new()),
                consumers: Mutex::new(Vec::new()),
                unclaimed: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The bus's counters now.
    pub fn report(&self) -> BusReport {
        self.inner
            .counters
            .report(lock(&self.inner.unclaimed).clone())
    }

    fn make_topic<T>(&self, name: &str) -> Result<NatsTopic<T>, BusError> {
        check_name(name, "topic")?;
        Ok(NatsTopic {
            bus: self.inner.clone(),
            name: name.to_string(),
            subject: format!("{}.{name}", self.inner.namespace),
            _events: PhantomData,
        })
    }

    /// True once every handler's consumer has nothing pending or in hand.
    fn drained(&self) -> bool {
        if self.inner.busy.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let consumers = lock(&self.inner.consumers).clone();
        consumers.iter().all(|durable| {
            self.inner
                .client
                .consumer_pending(&self.inner.namespace, durable)
                .is_ok_and(|(pending, unacknowledged)| pending == 0 && unacknowledged == 0)
        })
    }
}

impl<T: serde::Serialize> NatsTopic<T> {
    fn send(&self, event: &T) -> Result<(), BusError> {
        let payload = serde_json::to_vec(event).map_err(|e| transport(&self.name, e))?;
        let ack = self
            .bus
            .client
            .publish_async(&self.subject, payload, None)
            .map_err(|e| transport(&self.name, e))?;
        NatsClient::wait_ack(ack, &self.subject).map_err(|e| transport(&self.name, e))?;
        Ok(())
    }
}

impl<T: BusEvent> PublishTopic<T> for NatsTopic<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish(&self, event: T) -> Result<(), BusError> {
        if self.bus.closed.load(Ordering::SeqCst) {
            return Err(BusError::Closed {
                topic: self.name.clone(),
            });
        }
        self.send(&event)?;
        self.bus.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn output(&self) -> Output<T> {
        // Outputs belong to events already accepted: no shut-down check.
        let topic = self.clone();
        Output::new(&self.name, move |event: T| topic.send(&event))
    }
}

impl EventBus for NatsBus {
    type Topic<T: BusEvent> = NatsTopic<T>;

    fn topic<T: BusEvent>(&self, name: &str) -> Result<NatsTopic<T>, BusError> {
        self.make_topic(name)
    }

    fn dead_letter_topic<T: BusEvent>(
        &self,
        topic: &NatsTopic<T>,
    ) -> Result<NatsTopic<DeadLetter<T>>, BusError> {
        self.make_topic(&format!("{}.dead_letter", topic.name))
    }

    fn subscribe<T: BusEvent, U: BusEvent>(
        &self,
        topic: &NatsTopic<T>,
        handler: Handler<T, U>,
    ) -> Result<(), BusError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(BusError::Closed {
                topic: topic.name.clone(),
            });
        }
        let parts = handler.into_parts();
        check_name(&parts.name, "handler")?;
        if parts.inline {
            return Err(BusError::Unsupported {
                handler: parts.name,
                reason: "a NATS bus hands events to handlers through the broker, so a \
                         handler cannot run on the publisher's thread: drop `.inline()`, or \
                         use the in-process bus"
                    .to_string(),
            });
        }
        let durable = format!(
            "{}__{}",
            topic.name.replace('.', "_"),
            parts.name.replace('.', "_")
        );
        let dead = self.make_topic::<DeadLetter<T>>(&format!("{}.dead_letter", topic.name))?;
        for index in 0..parts.workers.max(1) {
            let reader = self
                .inner
                .client
                .shared_reader(
                    &self.inner.namespace,
                    &durable,
                    &topic.subject,
                    ACK_WAIT,
                    1024,
                )
                .map_err(|e| transport(&topic.name, e))?;
            let worker = Worker {
                durable: durable.clone(),
                subject: topic.subject.clone(),
                bus: self.inner.clone(),
                topic: topic.name.clone(),
                name: parts.name.clone(),
                run: parts.run.clone(),
                output: parts.output.clone(),
                retry: parts.retry.unwrap_or_default(),
                dead: dead.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sluice-nats-handler-{}-{index}", parts.name))
                .spawn(move || worker.run(reader))
                .map_err(|e| BusError::Spawn {
                    handler: parts.name.clone(),
                    error: e.to_string(),
                })?;
            lock(&self.inner.workers).push(thread);
        }
        lock(&self.inner.consumers).push(durable);
        Ok(())
    }

    fn shutdown(&self) -> BusReport {
        self.inner.closed.store(true, Ordering::SeqCst);
        // Everything accepted so far is handled before the handlers stop;
        // but peers may go on publishing to shared handlers: the wait ends
        // after SHUTDOWN_WAIT (what is left stays in the stream for them).
        let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
        while !lock(&self.inner.workers).is_empty()
            && !self.drained()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        let workers: Vec<JoinHandle<()>> = lock(&self.inner.workers).drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
        self.report()
    }
}

/// One copy of a handler: reads its consumer, handles, acknowledges.
struct Worker<T, U> {
    durable: String,
    subject: String,
    bus: Arc<Inner>,
    topic: String,
    name: String,
    run: HandlerFn<T, U>,
    output: Option<Output<U>>,
    retry: RetryPolicy,
    dead: NatsTopic<DeadLetter<T>>,
}

impl<T: BusEvent, U: BusEvent> Worker<T, U> {
    fn run(self, mut reader: crate::PullReader) {
        while !self.bus.stop.load(Ordering::SeqCst) {
            let message = match reader.next(Duration::from_millis(100)) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(_) => {
                    // A failover: read again from the durable consumer.
                    std::thread::sleep(Duration::from_millis(200));
                    if let Ok(fresh) = self.bus.client.shared_reader(
                        &self.bus.namespace,
                        &self.durable,
                        &self.subject,
                        ACK_WAIT,
                        1024,
                    ) {
                        reader = fresh;
                    }
                    continue;
                }
            };
            self.bus.busy.fetch_add(1, Ordering::SeqCst);
            self.bus.counters.delivered.fetch_add(1, Ordering::Relaxed);
            match serde_json::from_slice::<T>(&message.payload) {
                Ok(event) => self.handle(event, &message),
                Err(error) => lock(&self.bus.unclaimed).push(UnclaimedDeadLetter {
                    topic: self.topic.clone(),
                    handler: self.name.clone(),
                    event: String::from_utf8_lossy(&message.payload).into_owned(),
                    error: format!(
                        "message {} does not decode as `{}`: {error}",
                        message.sequence,
                        std::any::type_name::<T>()
                    ),
                    attempts: 0,
                }),
            }
            // Acknowledged once handled (and its output or dead letter
            // stored): a crash before this sends it again.
            let _ = message.ack();
            self.bus.counters.handled.fetch_add(1, Ordering::Relaxed);
            self.bus.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn handle(&self, event: T, message: &crate::Fetched) {
        let (outcome, attempts) = self.retry.attempt(&self.run, &event, || {
            self.bus.counters.retries.fetch_add(1, Ordering::Relaxed);
            // Still ours: not to be sent to another copy meanwhile.
            let _ = message.in_progress();
        });
        let failed = match outcome {
            Ok(Some(output)) => match &self.output {
                Some(topic) => topic
                    .deliver(output)
                    .err()
                    .map(|e| format!("its output could not be published: {e}")),
                None => None,
            },
            Ok(None) => None,
            Err(error) => Some(error),
        };
        if let Some(error) = failed {
            self.bus
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            let letter = DeadLetter {
                topic: self.topic.clone(),
                handler: self.name.clone(),
                event,
                error,
                attempts,
            };
            if let Err(e) = self.dead.send(&letter) {
                lock(&self.bus.unclaimed).push(UnclaimedDeadLetter {
                    topic: letter.topic,
                    handler: letter.handler,
                    event: format!("{:?}", letter.event),
                    error: format!("{} (and the dead letter was not stored: {e})", letter.error),
                    attempts,
                });
            }
        }
    }
}
