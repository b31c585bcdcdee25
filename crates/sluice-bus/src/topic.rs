//! Topics: the named, typed handles events are published on, and their routes to handlers' queues.

use super::{BusError, BusShared};
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

pub(crate) type KeyHash<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// One subscribed handler: its queues and, with several, how events are
/// spread over them (by key, so that per-key order is kept).
pub(crate) struct Route<T> {
    pub queues: Vec<Sender<T>>,
    pub key: Option<KeyHash<T>>,
}

pub(crate) struct TopicCore<T> {
    name: String,
    routes: RwLock<Vec<Route<T>>>,
}

impl<T> TopicCore<T> {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            routes: RwLock::new(Vec::new()),
        }
    }

    pub fn add_route(&self, route: Route<T>) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(route);
    }

    /// Drops the queues' senders, so the handler threads end once drained.
    pub fn close(&self) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A named, typed topic of a [`Bus`](super::Bus). Cloning gives another
/// handle to the same topic.
pub struct Topic<T> {
    core: Arc<TopicCore<T>>,
    bus: Arc<BusShared>,
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.core.name)
            .finish()
    }
}

impl<T: Clone + Send + 'static> Topic<T> {
    pub(crate) fn from_core(core: Arc<TopicCore<T>>, bus: Arc<BusShared>) -> Self {
        Self { core, bus }
    }

    pub(crate) fn core(&self) -> &Arc<TopicCore<T>> {
        &self.core
    }

    pub(crate) fn bus(&self) -> &Arc<BusShared> {
        &self.bus
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// How many handlers are subscribed.
    pub fn subscribers(&self) -> usize {
        self.core
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Hands `event` to every subscribed handler's queue, waiting while a
    /// queue is full (backpressure). Fails when nobody subscribed (the
    /// event would be lost) or when the bus is shut down.
    ///
    /// ```
    /// use sluice_bus::{Bus, BusError, Handler};
    /// let bus = Bus::new();
    /// let topic = bus.topic::<u8>("t")?;
    /// assert!(matches!(topic.publish(1), Err(BusError::NoSubscriber { .. })));
    /// bus.subscribe(&topic, Handler::new("ignore", |_: &u8| Ok::<(), String>(())))?;
    /// topic.publish(1)?;
    /// bus.shutdown();
    /// assert!(matches!(topic.publish(2), Err(BusError::Closed { .. })));
    /// # Ok::<(), BusError>(())
    /// ```
    pub fn publish(&self, event: T) -> Result<(), BusError> {
        if self.bus.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed {
                topic: self.name().to_string(),
            });
        }
        self.deliver(event)?;
        self.bus.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Delivers without the shut-down check: for handlers' outputs, which
    /// belong to events the bus already accepted.
    pub(crate) fn deliver(&self, event: T) -> Result<(), BusError> {
        let routes = self
            .core
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if routes.is_empty() {
            return Err(BusError::NoSubscriber {
                topic: self.name().to_string(),
            });
        }
        let last = routes.len() - 1;
        let mut event = Some(event);
        for (i, route) in routes.iter().enumerate() {
            let queue = match &route.key {
                Some(hash) if route.queues.len() > 1 => {
                    let e = event.as_ref().ok_or_else(|| closed(self.name()))?;
                    (hash(e) % route.queues.len() as u64) as usize
                }
                _ => 0,
            };
            let copy = if i == last {
                event.take()
            } else {
                event.clone()
            };
            let Some(copy) = copy else { break };
            self.bus.in_flight.started();
            if route.queues[queue].send(copy).is_err() {
                self.bus.in_flight.finished();
                return Err(closed(self.name()));
            }
            self.bus.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn closed(topic: &str) -> BusError {
    BusError::Closed {
        topic: topic.to_string(),
    }
}
