//! Topics: the named, typed handles events are published on, and their routes to handlers' queues.

use super::{BusError, BusShared};
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

pub(crate) type KeyHash<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// An inline handler: called with the event on the publisher's thread.
pub(crate) type Call<T> = Arc<dyn Fn(T) + Send + Sync>;

/// One subscribed handler: its queues and, with several, how events are
/// spread over them (by key, so that per-key order is kept); or, for an
/// inline handler, the call that runs it.
pub(crate) enum Route<T> {
    Queued {
        queues: Vec<Sender<T>>,
        key: Option<KeyHash<T>>,
    },
    Inline(Call<T>),
}

impl<T> Clone for Route<T> {
    fn clone(&self) -> Self {
        match self {
            Route::Queued { queues, key } => Route::Queued {
                queues: queues.clone(),
                key: key.clone(),
            },
            Route::Inline(call) => Route::Inline(call.clone()),
        }
    }
}

/// A topic's routes. A publish takes a copy of the list (one reference
/// count) and delivers without holding the lock, so an inline handler may
/// publish on any topic, even its own, and a full queue blocks no one else's
/// subscribe.
pub(crate) struct TopicCore<T> {
    name: String,
    routes: RwLock<Arc<Vec<Route<T>>>>,
}

impl<T> TopicCore<T> {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            routes: RwLock::new(Arc::new(Vec::new())),
        }
    }

    fn routes(&self) -> Arc<Vec<Route<T>>> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn add_route(&self, route: Route<T>) {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let mut more = Vec::clone(&routes);
        more.push(route);
        *routes = Arc::new(more);
    }

    /// Drops the queues' senders, so the handler threads end once drained.
    pub fn close(&self) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Vec::new());
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
        self.core.routes().len()
    }

    /// Hands `event` to every subscribed handler's queue, waiting while a
    /// queue is full (backpressure), and calls the inline handlers
    /// ([`Handler::inline`](super::Handler::inline)). Fails when nobody subscribed (the
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
        // Counted in flight before the check: a shutdown that has not seen
        // this publish is seen by it (see `InFlight::started`), so no
        // handler runs after `shutdown` returned.
        let started = self.bus.in_flight.start();
        let delivered = if self.bus.closed.load(Ordering::SeqCst) {
            Err(closed(self.name()))
        } else {
            self.deliver(event)
        };
        drop(started);
        delivered?;
        self.bus.counters.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Delivers without the shut-down check: for handlers' outputs, which
    /// belong to events the bus already accepted.
    pub(crate) fn deliver(&self, event: T) -> Result<(), BusError> {
        let routes = self.core.routes();
        if routes.is_empty() {
            return Err(BusError::NoSubscriber {
                topic: self.name().to_string(),
            });
        }
        let depth = crate::in_flight::handler_depth();
        if depth >= MAX_INLINE_DEPTH && routes.iter().any(|r| matches!(r, Route::Inline(_))) {
            return Err(BusError::InlineTooDeep {
                topic: self.name().to_string(),
                depth,
            });
        }
        let last = routes.len() - 1;
        let mut event = Some(event);
        for (i, route) in routes.iter().enumerate() {
            let copy = if i == last {
                event.take()
            } else {
                event.clone()
            };
            let Some(copy) = copy else { break };
            match route {
                Route::Queued { queues, key } => {
                    let queue = match key {
                        Some(hash) if queues.len() > 1 => {
                            (hash(&copy) % queues.len() as u64) as usize
                        }
                        _ => 0,
                    };
                    let started = self.bus.in_flight.start();
                    if queues[queue].send(copy).is_err() {
                        return Err(closed(self.name()));
                    }
                    // The handler's thread finishes it.
                    started.hand_over();
                    self.bus.counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Route::Inline(call) => {
                    let _started = self.bus.in_flight.start();
                    self.bus.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    crate::in_flight::in_handler(self.bus.id(), || call(copy));
                }
            }
        }
        Ok(())
    }
}

use crate::in_flight::MAX_INLINE_DEPTH;

fn closed(topic: &str) -> BusError {
    BusError::Closed {
        topic: topic.to_string(),
    }
}
