//! One partition of a NATS JetStream source, and where its checkpoints
//! live: the pieces a distributed run ([`crate::distributed`]) puts together.
//!
//! - [`NatsSource`] reads one partition through a durable pull consumer
//!   (ack-all, `max_ack_pending` in flight) and acknowledges only what a
//!   committed checkpoint covers.
//! - [`PartitionStore`] keeps the partition's checkpoint in a key-value
//!   bucket, written by compare-and-set: the process that takes a partition
//!   over first rewrites the key, so a process that lost its lease cannot
//!   commit any more.
//! - [`CutLog`] records where partial chunks were cut (a chunk that waited
//!   out `batch_interval`): timing decides those cuts, so a replay after a
//!   crash reads them back and cuts the same chunks. Chunks decide where the
//!   watermark moves, so the replay then emits the same records in the same
//!   order, and the sinks' message ids (counted per partition) name the same
//!   records: the stream drops the repeats.

//! - The sink publishes rows with message ids counted per partition
//!   ([`sink`]).

use std::sync::Mutex;
use std::time::Duration;

pub mod sink;
pub mod source;
pub mod store;

pub use sink::NatsTarget;
pub use source::NatsSource;
pub use store::{partition_completed, CutLog, PartitionStore};

/// How long a delivered message waits for its acknowledgement before the
/// server sends it again: much longer than checkpoints take, so that it
/// only happens when an owner is gone (and the source skips repeats).
const ACK_WAIT: Duration = Duration::from_secs(600);

/// How long a request is retried through a failover (a cluster electing a
/// new leader for a stream or bucket takes a few seconds).
const RETRY_WITHIN: Duration = Duration::from_secs(20);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A NATS JetStream source: a stream partitioned by key, read by every
/// process that runs the pipeline, each owning some partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSourcePlan {
    /// The servers (comma-separated).
    pub url: String,
    /// The stream, its subject and partitions.
    pub stream: sluice_nats::PartitionedStream,
    /// Delivered and not yet acknowledged messages, per partition: the
    /// bound on what is in flight between checkpoints.
    pub max_ack_pending: i64,
    /// End each partition once it has read what the stream held when it
    /// first started (otherwise read forever).
    pub end_when_caught_up: bool,
    /// How long a lease or member lives unrenewed.
    pub lease_ttl: Duration,
    /// Event times from the message's timestamp (no `event_time` field):
    /// the source adds it to each record as `nats_time`.
    pub message_time: bool,
}

/// The field that holds a NATS message's timestamp when the source has no
/// `event_time`.
pub const NATS_TIME: &str = "nats_time";
