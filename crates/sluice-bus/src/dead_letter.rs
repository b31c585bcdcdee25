//! Dead letters: events a handler gave up on, with why, and how a dead-letter topic is named.

/// An event a handler gave up on, with why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter<T> {
    /// The topic the event was published on.
    pub topic: String,
    /// The handler that failed.
    pub handler: String,
    /// The event.
    pub event: T,
    /// The last error.
    pub error: String,
    /// How many times the handler was tried.
    pub attempts: u32,
}

/// A dead letter nobody subscribed to, kept by the bus as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclaimedDeadLetter {
    /// The topic the event was published on.
    pub topic: String,
    /// The handler that failed.
    pub handler: String,
    /// The event, in its `Debug` form.
    pub event: String,
    /// The last error.
    pub error: String,
    /// How many times the handler was tried.
    pub attempts: u32,
}

pub(crate) fn topic_name(topic: &str) -> String {
    format!("{topic}.dead_letter")
}
