//! Edge metrics: live counters of batches, events and backpressure, and snapshots of them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live counters of one edge, shared by its two ends. Updated once per
/// batch, never per event.
#[derive(Debug, Default)]
pub struct EdgeMetrics {
    batches: AtomicU64,
    events: AtomicU64,
    /// Events sent and not yet taken by the receiver.
    in_channel: AtomicI64,
    max_in_channel: AtomicI64,
    /// Sends that found the channel full and had to wait (backpressure).
    blocked_sends: AtomicU64,
}

/// A copy of an edge's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdgeSnapshot {
    /// Batches sent.
    pub batches: u64,
    /// Events sent.
    pub events: u64,
    /// Events in the channel now.
    pub in_channel: u64,
    /// The most events that were ever in the channel at once.
    pub max_in_channel: u64,
    /// Sends that waited on a full channel.
    pub blocked_sends: u64,
}

impl EdgeMetrics {
    pub(crate) fn sent(&self, events: usize) {
        let events = events as i64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        let now = self.in_channel.fetch_add(events, Ordering::AcqRel) + events;
        self.max_in_channel.fetch_max(now, Ordering::AcqRel);
    }

    pub(crate) fn received(&self, events: usize) {
        self.in_channel.fetch_sub(events as i64, Ordering::AcqRel);
    }

    pub(crate) fn blocked(&self) {
        self.blocked_sends.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> EdgeSnapshot {
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0);
        EdgeSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            in_channel: clamp(self.in_channel.load(Ordering::Relaxed)),
            max_in_channel: clamp(self.max_in_channel.load(Ordering::Relaxed)),
            blocked_sends: self.blocked_sends.load(Ordering::Relaxed),
        }
    }
}
