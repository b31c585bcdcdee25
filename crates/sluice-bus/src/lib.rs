//! The event-driven layer: named topics, handlers that react to their
//! events, and propagation from topic to topic.
//!
//! A [`Bus`] holds typed [`Topic`]s. [`Bus::subscribe`] attaches a
//! [`Handler`]: it gets a bounded queue and a thread of its own (or several,
//! by key), so it runs decoupled from whoever publishes; or, made with
//! [`Handler::inline`], it runs as a call on the publisher's thread, for the
//! lowest latency. A handler may return
//! an output, which the bus publishes on another topic: components chain
//! through events. A handler that fails is retried with backoff; when it
//! still fails, its event goes to the topic's dead-letter topic
//! (`<topic>.dead_letter`) together with the error. [`Bus::shutdown`] stops
//! new publishes, drains every queue and handler, and only then stops the
//! threads: no accepted event is lost.
//!
//! ```
//! use sluice_bus::{Bus, Handler};
//! use std::sync::{Arc, Mutex};
//!
//! let bus = Bus::new();
//! let readings = bus.topic::<f64>("readings")?;
//! let alerts = bus.topic::<String>("alerts")?;
//! let received = Arc::new(Mutex::new(Vec::new()));
//! let sink = received.clone();
//!
//! bus.subscribe(&alerts, Handler::new("pager", move |alert: &String| {
//!     sink.lock().unwrap().push(alert.clone());
//!     Ok::<(), String>(())
//! }))?;
//! bus.subscribe(&readings, Handler::publishing("threshold", &alerts, |celsius: &f64| {
//!     Ok::<_, String>((*celsius > 80.0).then(|| format!("too hot: {celsius}")))
//! }))?;
//!
//! for celsius in [20.0, 85.0, 30.0] {
//!     readings.publish(celsius)?;
//! }
//! let report = bus.shutdown();
//! assert_eq!(*received.lock().unwrap(), vec!["too hot: 85".to_string()]);
//! assert_eq!(report.dead_lettered, 0);
//! # Ok::<(), sluice_bus::BusError>(())
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod dead_letter;
mod event_bus;
mod handler;
mod in_flight;
mod topic;
mod worker;

pub use dead_letter::{DeadLetter, UnclaimedDeadLetter};
pub use event_bus::{BusEvent, EventBus, Output, PublishTopic};
pub use handler::{Handler, HandlerFn, HandlerParts, RetryPolicy};
pub use topic::Topic;

use in_flight::InFlight;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use thiserror::Error;
use topic::TopicCore;

/// Why the bus refused something. Each message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BusError {
    /// An event was published on a topic that nobody subscribed to.
    #[error(
        "topic `{topic}` has no subscriber, so the event would be lost: subscribe a handler first"
    )]
    NoSubscriber {
        /// The topic.
        topic: String,
    },
    /// The bus is shutting down and takes no new events.
    #[error("the bus is shut down: topic `{topic}` takes no new events")]
    Closed {
        /// The topic.
        topic: String,
    },
    /// A topic was asked for with another event type than it was made with.
    #[error("topic `{topic}` carries `{existing}`, not `{requested}`: use another name or the same type")]
    TypeMismatch {
        /// The topic.
        topic: String,
        /// The type it carries.
        existing: &'static str,
        /// The type asked for.
        requested: &'static str,
    },
    /// A setting is out of range.
    #[error("{setting} must be at least 1 (got 0)")]
    ZeroSetting {
        /// The setting.
        setting: &'static str,
    },
    /// The bus's transport (a broker) failed.
    #[error("topic `{topic}`: {error}")]
    Transport {
        /// The topic.
        topic: String,
        /// What failed.
        error: String,
    },
    /// A handler asked for what this bus does not do.
    #[error("handler `{handler}`: {reason}")]
    Unsupported {
        /// The handler.
        handler: String,
        /// What this bus does not do, and what to do instead.
        reason: String,
    },
    /// Inline handlers called each other's topics deeper than the bus
    /// allows: a cycle of topics whose handlers are all inline.
    #[error(
        "topic `{topic}`: inline handlers nested {depth} deep (a cycle of topics?): give one handler of the cycle a thread of its own (drop `.inline()`)"
    )]
    InlineTooDeep {
        /// The topic whose inline handler was not called.
        topic: String,
        /// How deep the call was.
        depth: u32,
    },
    /// A handler thread could not be started.
    #[error("could not start a thread for handler `{handler}`: {error}")]
    Spawn {
        /// The handler.
        handler: String,
        /// The operating system's error.
        error: String,
    },
}

/// Counters of a bus, as [`Bus::shutdown`] reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusReport {
    /// Events accepted by `publish` from outside the bus.
    pub published: u64,
    /// Events handed to handlers (one per subscribed handler).
    pub delivered: u64,
    /// Events handlers finished with, successfully or not.
    pub handled: u64,
    /// Handler attempts that failed and were retried.
    pub retries: u64,
    /// Events given up on and sent to a dead-letter topic.
    pub dead_lettered: u64,
    /// Dead letters of topics whose dead-letter topic had no subscriber:
    /// kept here so that none is lost.
    pub unclaimed: Vec<UnclaimedDeadLetter>,
}

/// Settings of a bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Events a handler's queue holds before publishers wait. Default 1024.
    pub queue_capacity: usize,
    /// Retries of a failing handler, unless the handler sets its own
    /// (inline handlers do not retry unless they set one).
    pub retry: RetryPolicy,
    /// How long an idle handler polls its queue before its thread sleeps
    /// (default 0: sleep at once). A few hundred microseconds buys
    /// microsecond latency at moderate rates for a core kept busy.
    pub spin_before_park: std::time::Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            retry: RetryPolicy::default(),
            spin_before_park: std::time::Duration::ZERO,
        }
    }
}

/// The counters of a bus, shared by its topics and handlers (every bus
/// keeps the same ones; [`BusCounters::report`] reads them).
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Events accepted by `publish` from outside the bus.
    pub published: AtomicU64,
    /// Events handed to handlers.
    pub delivered: AtomicU64,
    /// Events handlers finished with.
    pub handled: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Events sent to a dead-letter topic.
    pub dead_lettered: AtomicU64,
}

impl BusCounters {
    /// The counters now, with the dead letters nobody could take.
    pub fn report(&self, unclaimed: Vec<UnclaimedDeadLetter>) -> BusReport {
        BusReport {
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            unclaimed,
        }
    }
}

type Closer = Box<dyn FnOnce() + Send>;

/// A topic of any event type, with the name of that type.
type NamedTopic = (Arc<dyn Any + Send + Sync>, &'static str);

/// What every topic and handler of a bus shares.
pub(crate) struct BusShared {
    config: BusConfig,
    topics: Mutex<HashMap<String, NamedTopic>>,
    closers: Mutex<Vec<Closer>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    in_flight: InFlight,
    closed: AtomicBool,
    counters: BusCounters,
    unclaimed: Mutex<Vec<UnclaimedDeadLetter>>,
}

/// An in-process event bus: the embedded default of Sluice's event-driven
/// layer. Cloning gives another handle to the same bus.
#[derive(Clone)]
pub struct Bus {
    shared: Arc<BusShared>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Bus {
    /// A bus with the default settings.
    pub fn new() -> Self {
        Self::build(BusConfig::default())
    }

    /// A bus with `config`; a queue capacity of zero is refused.
    ///
    /// ```
    /// use sluice_bus::{Bus, BusConfig};
    /// let bus = Bus::with_config(BusConfig { queue_capacity: 64, ..BusConfig::default() })?;
    /// assert!(Bus::with_config(BusConfig { queue_capacity: 0, ..BusConfig::default() }).is_err());
    /// # drop(bus);
    /// # Ok::<(), sluice_bus::BusError>(())
    /// ```
    pub fn with_config(config: BusConfig) -> Result<Self, BusError> {
        if config.queue_capacity == 0 {
            return Err(BusError::ZeroSetting {
                setting: "queue capacity",
            });
        }
        config.retry.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: BusConfig) -> Self {
        Self {
            shared: Arc::new(BusShared {
                config,
                topics: Mutex::new(HashMap::new()),
                closers: Mutex::new(Vec::new()),
                workers: Mutex::new(Vec::new()),
                in_flight: InFlight::default(),
                closed: AtomicBool::new(false),
                counters: BusCounters::default(),
                unclaimed: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The topic named `name`, made on first use. Asking for an existing
    /// topic with another event type is an error.
    ///
    /// ```
    /// let bus = sluice_bus::Bus::new();
    /// let a = bus.topic::<u32>("counts")?;
    /// let b = bus.topic::<u32>("counts")?; // the same topic
    /// assert_eq!(a.name(), b.name());
    /// assert!(bus.topic::<String>("counts").is_err());
    /// # Ok::<(), sluice_bus::BusError>(())
    /// ```
    pub fn topic<T>(&self, name: &str) -> Result<Topic<T>, BusError>
    where
        T: Clone + std::fmt::Debug + Send + 'static,
    {
        self.shared.topic(name)
    }

    /// The topic where the dead letters of `topic` go: `<topic>.dead_letter`.
    ///
    /// ```
    /// let bus = sluice_bus::Bus::new();
    /// let jobs = bus.topic::<u32>("jobs")?;
    /// assert_eq!(bus.dead_letter_topic(&jobs)?.name(), "jobs.dead_letter");
    /// # Ok::<(), sluice_bus::BusError>(())
    /// ```
    pub fn dead_letter_topic<T>(&self, topic: &Topic<T>) -> Result<Topic<DeadLetter<T>>, BusError>
    where
        T: Clone + std::fmt::Debug + Send + 'static,
    {
        self.shared.topic(&dead_letter::topic_name(topic.name()))
    }

    /// Attaches `handler` to `topic`: from now on it receives every event
    /// published there, on its own thread(s) and queue(s), or on the
    /// publisher's thread if it is [inline](Handler::inline).
    pub fn subscribe<T, U>(&self, topic: &Topic<T>, handler: Handler<T, U>) -> Result<(), BusError>
    where
        T: Clone + std::fmt::Debug + Send + 'static,
        U: Clone + std::fmt::Debug + Send + 'static,
    {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                topic: topic.name().to_string(),
            });
        }
        worker::start(&self.shared, topic, handler)
    }

    /// Stops taking new events, waits until every queue is drained and
    /// every handler (and what it published) is done, then stops the
    /// handler threads. Returns the bus's counters. Calling it again
    /// returns the counters again.
    ///
    /// Called from one of this bus's handlers (which cannot wait for
    /// itself), it only stops taking new events and returns the counters; a
    /// call from outside its handlers then waits and stops the threads.
    pub fn shutdown(&self) -> BusReport {
        self.shared.closed.store(true, Ordering::SeqCst);
        if in_flight::in_handler_of(self.shared.id()) {
            return self.report();
        }
        self.shared.in_flight.wait_idle();
        let closers: Vec<Closer> = lock(&self.shared.closers).drain(..).collect();
        for close in closers {
            close();
        }
        let workers: Vec<JoinHandle<()>> = lock(&self.shared.workers).drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
        self.report()
    }

    /// The bus's counters now.
    pub fn report(&self) -> BusReport {
        self.shared
            .counters
            .report(lock(&self.shared.unclaimed).clone())
    }
}

impl BusShared {
    /// This bus's identity, for the handlers a thread is in.
    pub(crate) fn id(&self) -> usize {
        self as *const Self as usize
    }

    fn topic<T>(self: &Arc<Self>, name: &str) -> Result<Topic<T>, BusError>
    where
        T: Clone + std::fmt::Debug + Send + 'static,
    {
        let requested = std::any::type_name::<T>();
        let mut topics = lock(&self.topics);
        if let Some((core, existing)) = topics.get(name) {
            let core =
                core.clone()
                    .downcast::<TopicCore<T>>()
                    .map_err(|_| BusError::TypeMismatch {
                        topic: name.to_string(),
                        existing,
                        requested,
                    })?;
            return Ok(Topic::from_core(core, self.clone()));
        }
        let core = Arc::new(TopicCore::<T>::new(name));
        topics.insert(name.to_string(), (core.clone(), requested));
        let closing = core.clone();
        lock(&self.closers).push(Box::new(move || closing.close()));
        Ok(Topic::from_core(core, self.clone()))
    }
}
