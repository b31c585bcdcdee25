//! The trait every event bus implements: the in-process [`Bus`](super::Bus)
//! and the distributed one over NATS JetStream (`sluice_nats::bus::NatsBus`).
//! Code written against [`EventBus`] runs on either: components in one
//! process, or in many on many machines.
//!
//! ```
//! use sluice_bus::{Bus, EventBus, Handler, PublishTopic};
//! use std::sync::{Arc, Mutex};
//!
//! /// Wires an alerting rule on any bus.
//! fn wire<B: EventBus>(bus: &B, seen: Arc<Mutex<Vec<String>>>) -> Result<B::Topic<f64>, sluice_bus::BusError> {
//!     let readings = bus.topic::<f64>("readings")?;
//!     let alerts = bus.topic::<String>("alerts")?;
//!     bus.subscribe(&alerts, Handler::new("pager", move |a: &String| {
//!         seen.lock().unwrap().push(a.clone());
//!         Ok::<(), String>(())
//!     }))?;
//!     bus.subscribe(&readings, Handler::publishing("threshold", &alerts, |c: &f64| {
//!         Ok::<_, String>((*c > 80.0).then(|| format!("too hot: {c}")))
//!     }))?;
//!     Ok(readings)
//! }
//!
//! let bus = Bus::new();
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let readings = wire(&bus, seen.clone())?;
//! PublishTopic::publish(&readings, 85.0)?;
//! EventBus::shutdown(&bus);
//! assert_eq!(*seen.lock().unwrap(), vec!["too hot: 85".to_string()]);
//! # Ok::<(), sluice_bus::BusError>(())
//! ```

use super::{Bus, BusError, BusReport, DeadLetter, Handler, Topic};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// What an event needs to travel on any bus: cloned to several handlers,
/// shown in dead letters, encoded to cross processes.
pub trait BusEvent:
    Clone + std::fmt::Debug + Send + Serialize + DeserializeOwned + 'static
{
}

impl<T: Clone + std::fmt::Debug + Send + Serialize + DeserializeOwned + 'static> BusEvent for T {}

/// Where a handler's outputs go: a topic of some bus, as a function.
pub struct Output<U> {
    name: String,
    deliver: Arc<dyn Fn(U) -> Result<(), BusError> + Send + Sync>,
}

impl<U> Clone for Output<U> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            deliver: self.deliver.clone(),
        }
    }
}

impl<U> Output<U> {
    /// Outputs handed to `deliver`, for the topic `name`.
    pub fn new(
        name: &str,
        deliver: impl Fn(U) -> Result<(), BusError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.to_string(),
            deliver: Arc::new(deliver),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes one output.
    pub fn deliver(&self, output: U) -> Result<(), BusError> {
        (self.deliver)(output)
    }
}

/// A topic events are published to.
pub trait PublishTopic<T>: Clone + Send + Sync + 'static {
    /// Its name.
    fn name(&self) -> &str;
    /// Publishes `event` to every handler subscribed (or, on a durable bus,
    /// to the topic, for handlers to read when they come).
    fn publish(&self, event: T) -> Result<(), BusError>;
    /// How a handler publishes its outputs here.
    fn output(&self) -> Output<T>;
}

/// An event bus: named topics, handlers that react to their events on
/// threads of their own, outputs that propagate, dead letters for events a
/// handler gave up on, and a shutdown that drains everything accepted.
pub trait EventBus: Clone + Send + Sync + 'static {
    /// The bus's topics.
    type Topic<T: BusEvent>: PublishTopic<T>;
    /// The topic named `name`.
    fn topic<T: BusEvent>(&self, name: &str) -> Result<Self::Topic<T>, BusError>;
    /// The topic where the dead letters of `topic` go: `<topic>.dead_letter`.
    fn dead_letter_topic<T: BusEvent>(
        &self,
        topic: &Self::Topic<T>,
    ) -> Result<Self::Topic<DeadLetter<T>>, BusError>;
    /// Attaches `handler` to `topic`.
    fn subscribe<T: BusEvent, U: BusEvent>(
        &self,
        topic: &Self::Topic<T>,
        handler: Handler<T, U>,
    ) -> Result<(), BusError>;
    /// Stops taking events, waits until every accepted one is handled,
    /// stops the handlers; the counters.
    fn shutdown(&self) -> BusReport;
}

impl<T: Clone + std::fmt::Debug + Send + 'static> PublishTopic<T> for Topic<T> {
    fn name(&self) -> &str {
        Topic::name(self)
    }
    fn publish(&self, event: T) -> Result<(), BusError> {
        Topic::publish(self, event)
    }
    fn output(&self) -> Output<T> {
        let topic = self.clone();
        Output::new(self.name(), move |event| topic.deliver(event))
    }
}

impl EventBus for Bus {
    type Topic<T: BusEvent> = Topic<T>;
    fn topic<T: BusEvent>(&self, name: &str) -> Result<Topic<T>, BusError> {
        Bus::topic(self, name)
    }
    fn dead_letter_topic<T: BusEvent>(
        &self,
        topic: &Topic<T>,
    ) -> Result<Topic<DeadLetter<T>>, BusError> {
        Bus::dead_letter_topic(self, topic)
    }
    fn subscribe<T: BusEvent, U: BusEvent>(
        &self,
        topic: &Topic<T>,
        handler: Handler<T, U>,
    ) -> Result<(), BusError> {
        Bus::subscribe(self, topic, handler)
    }
    fn shutdown(&self) -> BusReport {
        Bus::shutdown(self)
    }
}
