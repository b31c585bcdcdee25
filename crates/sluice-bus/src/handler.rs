//! Handlers: functions that react to a topic's events, with their outputs, copies by key, retries.

use super::event_bus::{Output, PublishTopic};
use super::topic::KeyHash;
use super::BusError;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

/// A handler's function: its output, or why it failed.
pub type HandlerFn<T, U> = Arc<dyn Fn(&T) -> Result<Option<U>, String> + Send + Sync>;

/// How a failing handler is retried before its event is dead-lettered.
///
/// ```
/// use sluice_bus::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy {
///     max_attempts: 5,
///     initial_backoff: Duration::from_millis(50),
///     max_backoff: Duration::from_secs(2),
/// };
/// assert_eq!(patient.backoff(1), Duration::from_millis(50));
/// assert_eq!(patient.backoff(3), Duration::from_millis(200));
/// assert_eq!(patient.backoff(10), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. At least 1.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting 10 ms then 20 ms.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retry: the first failure dead-letters the event.
    pub const NEVER: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The wait after the `failures`-th failure.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Runs `handler` on `event` until it succeeds or the attempts are
    /// spent, waiting [`RetryPolicy::backoff`] between them; a panic counts
    /// as a failure. `retrying` is called before each wait. The outcome,
    /// and how many attempts were made.
    pub fn attempt<T, U>(
        &self,
        handler: &HandlerFn<T, U>,
        event: &T,
        mut retrying: impl FnMut(),
    ) -> (Result<Option<U>, String>, u32) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(event)))
                .unwrap_or_else(|panic| {
                    Err(format!("the handler panicked: {}", panic_text(&*panic)))
                });
            match result {
                Ok(output) => return (Ok(output), attempts),
                Err(error) if attempts >= self.max_attempts => return (Err(error), attempts),
                Err(_) => {
                    retrying();
                    std::thread::sleep(self.backoff(attempts));
                }
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<(), BusError> {
        if self.max_attempts == 0 {
            return Err(BusError::ZeroSetting {
                setting: "retry max_attempts",
            });
        }
        Ok(())
    }
}

/// Reacts to the events of a topic; see [`Bus::subscribe`](super::Bus::subscribe).
///
/// A handler gets `&event` and returns `Ok` or an error. One made with
/// [`Handler::publishing`] may also return an output, which the bus
/// publishes on the output topic. Errors and panics are retried by the
/// [`RetryPolicy`], then dead-lettered.
pub struct Handler<T, U> {
    pub(crate) name: String,
    pub(crate) run: HandlerFn<T, U>,
    pub(crate) output: Option<Output<U>>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) workers: usize,
    pub(crate) key: Option<KeyHash<T>>,
    pub(crate) inline: bool,
}

/// A handler taken apart, for a bus of another crate to run.
pub struct HandlerParts<T, U> {
    /// Its name.
    pub name: String,
    /// The handler itself: an output or an error.
    pub run: HandlerFn<T, U>,
    /// Where its outputs go.
    pub output: Option<Output<U>>,
    /// Its own retry policy, if it has one.
    pub retry: Option<RetryPolicy>,
    /// How many copies run.
    pub workers: usize,
    /// Whether it asked to run on the publisher's thread
    /// ([`Handler::inline`]).
    pub inline: bool,
}

impl<T, U> Handler<T, U> {
    /// Its parts, for a bus of another crate to run.
    pub fn into_parts(self) -> HandlerParts<T, U> {
        HandlerParts {
            name: self.name,
            run: self.run,
            output: self.output,
            retry: self.retry,
            workers: self.workers,
            inline: self.inline,
        }
    }
}

impl<T: 'static> Handler<T, ()> {
    /// A handler with no output.
    ///
    /// ```
    /// use sluice_bus::Handler;
    /// let printer = Handler::new("printer", |x: &i64| {
    ///     println!("got {x}");
    ///     Ok::<(), String>(())
    /// });
    /// # drop(printer);
    /// ```
    pub fn new<E, F>(name: &str, f: F) -> Self
    where
        E: std::fmt::Display,
        F: Fn(&T) -> Result<(), E> + Send + Sync + 'static,
    {
        Self {
            name: name.to_string(),
            run: Arc::new(move |event| f(event).map(|()| None).map_err(|e| e.to_string())),
            output: None,
            retry: None,
            workers: 1,
            key: None,
            inline: false,
        }
    }
}

impl<T: 'static, U: Clone + Send + 'static> Handler<T, U> {
    /// A handler whose `Some` outputs are published on `output` (a topic of
    /// any [`EventBus`](super::EventBus)).
    ///
    /// ```
    /// use sluice_bus::{Bus, Handler};
    /// let bus = Bus::new();
    /// let out = bus.topic::<i64>("doubled")?;
    /// let doubler = Handler::publishing("doubler", &out, |x: &i64| Ok::<_, String>(Some(x * 2)));
    /// # drop(doubler);
    /// # Ok::<(), sluice_bus::BusError>(())
    /// ```
    pub fn publishing<E, F>(name: &str, output: &impl PublishTopic<U>, f: F) -> Self
    where
        E: std::fmt::Display,
        F: Fn(&T) -> Result<Option<U>, E> + Send + Sync + 'static,
    {
        Self {
            name: name.to_string(),
            run: Arc::new(move |event| f(event).map_err(|e| e.to_string())),
            output: Some(output.output()),
            retry: None,
            workers: 1,
            key: None,
            inline: false,
        }
    }

    /// Retries by `policy` instead of the bus's default.
    ///
    /// ```
    /// use sluice_bus::{Handler, RetryPolicy};
    /// let h = Handler::new("strict", |_: &u8| Ok::<(), String>(())).with_retry(RetryPolicy::NEVER);
    /// # drop(h);
    /// ```
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Runs the handler as a call on the thread that publishes, instead of on
    /// a queue and a thread of its own: the event is handled (and its
    /// output published, or its dead letter sent) before `publish` returns.
    /// This is the event path without a thread hop, for handlers that are
    /// quick: the publisher (a pipeline's worker) waits for the handler.
    /// It does not retry unless given [`Handler::with_retry`] (a backoff
    /// would hold up the publisher). Inline handlers that publish to each
    /// other's topics nest on the publisher's stack, 64 deep at most
    /// ([`BusError::InlineTooDeep`]: a cycle ends in a dead letter). Events are handled in the
    /// order each publisher publishes them; publishers on several threads
    /// call the handler concurrently, so `keyed` copies do not apply. Only
    /// the in-process [`Bus`](super::Bus) runs inline handlers; a NATS bus
    /// refuses them (its events go through the broker).
    ///
    /// ```
    /// use sluice_bus::{Bus, Handler};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let bus = Bus::new();
    /// let topic = bus.topic::<u64>("ticks")?;
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// bus.subscribe(&topic, Handler::new("count", move |_: &u64| {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    ///     Ok::<(), String>(())
    /// }).inline())?;
    /// topic.publish(7)?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 1); // handled before publish returned
    /// # bus.shutdown();
    /// # Ok::<(), sluice_bus::BusError>(())
    /// ```
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    /// Runs `workers` copies of the handler, each with its own queue and
    /// thread; events with the same key go to the same copy, so per-key
    /// order is kept. (With one worker, the default, all order is kept.)
    ///
    /// ```
    /// use sluice_bus::Handler;
    /// let h = Handler::new("per-user", |(user, _): &(u32, String)| Ok::<(), String>(()))
    ///     .keyed(4, |(user, _): &(u32, String)| *user);
    /// # drop(h);
    /// ```
    pub fn keyed<K: Hash>(
        mut self,
        workers: usize,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Self {
        self.workers = workers.max(1);
        let hasher = rustc_hash::FxBuildHasher;
        self.key = Some(Arc::new(move |event| hasher.hash_one(key(event))));
        self
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}
