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
//! - [`table`] checks and compiles the tables of both.

use super::replay::ReplayableSource;
use super::{
    Coordination, Key, Kind, Opening, SinkClaim, SinkConnector, SinkType, SourceConnector,
    SourceType,
};
use crate::checkpoint::Guarantee;
use crate::error::{Error, Fix, Result};
use crate::output::RowWriter;
use arrow::datatypes::SchemaRef;
use std::sync::Mutex;
use std::time::Duration;

pub mod sink;
pub mod source;
pub mod store;
mod table;

/// `type = "nats"` as a source.
pub const SOURCE: SourceType = SourceType {
    name: "nats",
    keys: &[
        Key("format", Kind::Text),
        Key("schema", Kind::Table),
        Key("url", Kind::Text),
        Key("stream", Kind::Text),
        Key("subject", Kind::Text),
        Key("partitions", Kind::Unsigned32),
        Key("replicas", Kind::Unsigned32),
        Key("max_ack_pending", Kind::Integer),
        Key("end", Kind::Text),
        Key("lease_ttl", Kind::Text),
    ],
    compile: table::source,
};

/// `type = "nats"` as a sink.
pub const SINK: SinkType = SinkType {
    name: "nats",
    keys: &[
        Key("url", Kind::Text),
        Key("subject", Kind::Text),
        Key("stream", Kind::Text),
        Key("replicas", Kind::Unsigned32),
    ],
    compile: table::sink,
};

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

/// What the run of one partition of a nats source reads it with.
#[derive(Clone)]
pub struct NatsClaim {
    /// The durable consumer that reads it.
    pub durable: String,
    /// Its log of partial cuts, claimed for this run.
    pub log: std::sync::Arc<Mutex<Option<CutLog>>>,
}

impl std::fmt::Debug for NatsClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClaim")
            .field("durable", &self.durable)
            .finish()
    }
}

impl NatsSourcePlan {
    /// The settings that change results: without the servers (processes of
    /// one group may list them differently), the TTL, flow control and
    /// replicas (which can be tuned between runs).
    pub fn identity(&self) -> NatsSourcePlan {
        NatsSourcePlan {
            url: String::new(),
            lease_ttl: Duration::ZERO,
            max_ack_pending: 0,
            stream: sluice_nats::PartitionedStream {
                replicas: 0,
                ..self.stream.clone()
            },
            ..self.clone()
        }
    }
}

/// A nats source, as the registry holds it.
#[derive(Debug, Clone)]
pub struct Nats(pub NatsSourcePlan);

impl SourceConnector for Nats {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        open(&self.0, at)
    }

    fn describe(&self) -> String {
        let stream = &self.0.stream;
        format!(
            "nats stream {} ({} partitions of {})",
            stream.name, stream.partitions, stream.subject
        )
    }

    fn label(&self) -> String {
        format!("nats {}", self.0.stream.name)
    }

    fn default_time_field(&self) -> Option<&str> {
        self.0.message_time.then_some(NATS_TIME)
    }

    fn nats(&self) -> Option<&NatsSourcePlan> {
        Some(&self.0)
    }

    fn coordination(&self) -> Option<Coordination> {
        Some(Coordination {
            url: self.0.url.clone(),
            lease_ttl: self.0.lease_ttl,
            replicas: self.0.stream.replicas,
        })
    }

    fn partition_count(&self) -> Result<u32> {
        Ok(self.0.stream.partitions)
    }

    fn identity(&self) -> String {
        format!("{:?}", Nats(self.0.identity()))
    }
}

impl SinkConnector for NatsTarget {
    fn open_at(&self, _schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        Ok(Box::new(sink::NatsWriter::open(self, length)?))
    }

    fn describe(&self) -> String {
        format!("nats subject {}", self.subject)
    }

    fn label(&self) -> String {
        format!("nats:{}", self.subject)
    }

    fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        (self.id_prefix.is_empty() && guarantee == Guarantee::ExactlyOnce).then(|| {
            Error::refused(format!(
                "nats:{}: outside a distributed run (a nats source) a nats sink cannot tell \
                 a replay from new output, so after a crash what it published since the last \
                 checkpoint is published again. Accept repeats",
                self.subject
            ))
            .with_fix(Fix::AcceptRepeats)
        })
    }

    fn refuses_distributed(&self, _guarantee: Guarantee) -> Option<Error> {
        None
    }

    fn nats(&self) -> Option<&NatsTarget> {
        Some(self)
    }

    fn in_partition(&mut self, claim: &SinkClaim) {
        self.id_prefix = claim.prefix.clone();
    }
}

/// Opens the source of the partition a distributed run gave this run.
fn open(settings: &NatsSourcePlan, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
    let context = at.partition.filter(|c| c.nats.is_some()).ok_or_else(|| {
        Error::refused(
            "a nats source is read by a distributed run, partition by partition: `sluice run` \
             starts one (sluice_pipeline::distributed::run)",
        )
    })?;
    if at.adaptive {
        return Err(Error::refused(
            "a nats source runs in event or micro-batch mode: adaptive chunk sizes follow \
             timing, so a replay could not cut the same chunks",
        ));
    }
    let claim = context
        .nats
        .as_ref()
        .ok_or_else(|| Error::nats("no claim"))?;
    let log = lock(&claim.log)
        .take()
        .ok_or_else(|| Error::nats("the partition's cut log is already in use"))?;
    let decoder = crate::format::TextDecoder::new(
        crate::format::Format::Jsonl,
        at.schema.clone(),
        at.time.clone(),
        format!(
            "nats:{}/partition {}",
            settings.stream.name, context.partition
        ),
    );
    Ok(Box::new(NatsSource::new(
        settings.clone(),
        context.partition,
        claim.durable.clone(),
        log,
        decoder,
        at.chunk_rows,
        at.batch_interval,
        at.reserved.clone(),
        at.counters.clone(),
    )?))
}
