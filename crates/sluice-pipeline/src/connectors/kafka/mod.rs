//! `type = "kafka"`: a source that reads topics of a Kafka (or
//! Kafka-compatible) broker, and a sink that writes rows to a topic, both
//! exactly once with Sluice's checkpoints on any broker (no transactions).
//!
//! - [`source`]: every partition of the topics, read by offset; the offsets
//!   are the source's position in a checkpoint (a resumed run reads on
//!   from there), and committed to the consumer group once that checkpoint
//!   has, for monitoring tools. The watermark follows the slowest partition
//!   that still has records to give.
//! - [`sink`]: rows produced with headers that name the writer and number
//!   its records; at each checkpoint the sink waits for every delivery and
//!   records where its records after the checkpoint will start in each
//!   partition. A resumed sink reads its records after the checkpoint back
//!   and skips the replay's records that are already there ([`read_back`]).
//! - [`record`]: one record as a line for the source's decoder (JSON,
//!   CSV, raw text, Avro), or a dead letter;
//! - [`fetch`]: the source's consumer, whose records librdkafka hands over
//!   many at a time;
//! - [`client`]: settings and metadata calls both use; [`table`] checks
//!   and compiles their tables.
//!
//! docs/kafka.md has the settings, the guarantees and their conditions.

mod client;
mod fetch;
mod held;
mod read_back;
mod record;
mod sink;
mod source;
mod table;

use super::replay::ReplayableSource;
use super::{
    Coordination, Key, Kind, Opening, Resume, SinkClaim, SinkConnector, SinkType, SourceConnector,
    SourceType,
};
use crate::checkpoint::Guarantee;
use crate::error::{Error, Result};
use crate::output::RowWriter;
use crate::side_outputs::Reserved;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use std::time::Duration;

/// `type = "kafka"` as a source.
pub const SOURCE: SourceType = SourceType {
    name: "kafka",
    keys: &[
        Key("format", Kind::Text),
        Key("schema", Kind::Table),
        Key("brokers", Kind::Text),
        Key("topic", Kind::Names),
        Key("start", Kind::Text),
        Key("end", Kind::Text),
        Key("group", Kind::Text),
        Key("properties", Kind::Table),
        Key("avro_schema", Kind::Text),
        Key("coordination", Kind::Text),
        Key("lease_ttl", Kind::Text),
        Key("coordination_replicas", Kind::Unsigned32),
        Key("readers", Kind::Unsigned),
    ],
    compile: table::source,
};

/// `type = "kafka"` as a sink.
pub const SINK: SinkType = SinkType {
    name: "kafka",
    keys: &[
        Key("brokers", Kind::Text),
        Key("topic", Kind::Text),
        Key("format", Kind::Text),
        Key("key", Kind::Text),
        Key("headers", Kind::Table),
        Key("id", Kind::Text),
        Key("partitions", Kind::Unsigned32),
        Key("replicas", Kind::Unsigned32),
        Key("properties", Kind::Table),
    ],
    compile: table::sink,
};

/// The field that holds a record's Kafka timestamp (epoch milliseconds)
/// when the source has no `event_time`: the event time.
pub const KAFKA_TIME: &str = "kafka_time";

/// The header that names the sink that wrote a record.
pub const WRITER_HEADER: &str = "sluice-writer";
/// The header that numbers a sink's records.
pub const SEQUENCE_HEADER: &str = "sluice-seq";

/// How long a call to the broker (metadata, offsets) may take before it
/// is tried again.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the broker may be unreachable before a run fails.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// What a record's value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// One JSON object.
    Json,
    /// One CSV line, without a header.
    Csv,
    /// Text, taken as it is: the rows have `key` and `value`.
    Raw,
    /// One Avro datum of the source's `avro_schema`; `confluent`: after
    /// the 5 bytes of Confluent's framing (a zero and a schema id).
    Avro {
        /// The datum follows Confluent's framing.
        confluent: bool,
    },
}

/// Where a source starts reading a partition it has no checkpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record the broker keeps.
    Earliest,
    /// After the newest record: only what comes from now on.
    Latest,
    /// Where the consumer group's committed offset says (the earliest
    /// where it has none).
    Committed,
    /// The first record at or after this time (epoch milliseconds).
    Time(i64),
}

/// A Kafka source: topics read partition by partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourcePlan {
    /// The brokers to start from (`host:port`, comma-separated).
    pub brokers: String,
    /// The topics read.
    pub topics: Vec<String>,
    /// What the records hold.
    pub payload: Payload,
    /// Where a partition without a checkpoint starts.
    pub start: Start,
    /// End once every partition has read what it held when the run first
    /// started (otherwise read forever).
    pub end_when_caught_up: bool,
    /// The consumer group the offsets are committed to after each
    /// checkpoint (for monitoring; Sluice resumes from its checkpoint).
    pub group: String,
    /// More settings for the client (librdkafka's names:
    /// `security.protocol`, `fetch.max.bytes`, ...).
    pub properties: Vec<(String, String)>,
    /// Event times from the record's timestamp (no `event_time` field):
    /// the source adds it to each row as `kafka_time`.
    pub record_time: bool,
    /// The Avro schema of the records (its canonical form), with Avro.
    pub avro_schema: Option<String>,
    /// Where the processes of a distributed run meet, if it runs as one:
    /// they share the topics' partitions.
    pub coordination: Option<Coordination>,
}

impl KafkaSourcePlan {
    /// The settings that change results: without the brokers (a cluster
    /// may be listed otherwise), the group, the client's settings and
    /// where a distributed run meets.
    fn identity(&self) -> KafkaSourcePlan {
        KafkaSourcePlan {
            brokers: String::new(),
            group: String::new(),
            properties: Vec::new(),
            coordination: None,
            ..self.clone()
        }
    }

    /// The partitions of every topic, asked of the broker.
    fn partition_count(&self) -> Result<u32> {
        let consumer = client::consumer(&self.brokers, None, &self.properties, false)?;
        let mut count = 0u32;
        for topic in &self.topics {
            let n = client::partitions(&consumer, &self.brokers, topic)?.ok_or_else(|| {
                Error::input(format!(
                    "Kafka topic `{topic}` does not exist at {}: create it, or check `topic` \
                     and `brokers`",
                    self.brokers
                ))
            })?;
            count += n.max(0) as u32;
        }
        Ok(count)
    }
}

/// A kafka source, as the registry holds it.
#[derive(Debug, Clone)]
pub struct KafkaSourceConnector(
    pub KafkaSourcePlan,
    /// At most this many readers in one process (`readers =`); one per
    /// worker when not given. Not part of the pipeline's identity: a
    /// resumed run keeps its checkpoint's readers.
    pub Option<usize>,
);

impl SourceConnector for KafkaSourceConnector {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        Ok(Box::new(source::KafkaSource::new(self.0.clone(), at)?))
    }

    fn describe(&self) -> String {
        // Without the brokers: a cluster may be listed otherwise between
        // runs (this text is part of the state's fingerprint).
        format!(
            "kafka topic {} ({})",
            self.0.topics.join(", "),
            match self.0.payload {
                Payload::Json => "JSON",
                Payload::Csv => "CSV",
                Payload::Raw => "raw text",
                Payload::Avro { confluent: false } => "Avro",
                Payload::Avro { confluent: true } => "Avro, Confluent's framing",
            }
        )
    }

    fn label(&self) -> String {
        format!("kafka {}", self.0.topics.join(","))
    }

    fn default_time_field(&self) -> Option<&str> {
        self.0.record_time.then_some(KAFKA_TIME)
    }

    fn coordination(&self) -> Option<Coordination> {
        self.0.coordination.clone()
    }

    fn partition_count(&self) -> Result<u32> {
        self.0.partition_count()
    }

    fn readers(&self, most: usize) -> Result<usize> {
        // A reader per worker, each reading every n-th partition; no more
        // readers than partitions (a reader without any ends at once). A
        // broker away at the start is asked again by each reader.
        let most = self.1.unwrap_or(most).min(most);
        Ok(match self.0.partition_count() {
            Ok(partitions) => most.min(partitions.max(1) as usize),
            Err(_) => most,
        })
    }

    fn identity(&self) -> String {
        format!("{:?}", self.0.identity())
    }
}

/// A topic rows are written to.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    /// The brokers to start from.
    pub brokers: String,
    /// The topic, created with `partitions` and `replicas` if missing.
    pub topic: String,
    /// A record's value: one JSON object, or one CSV line.
    pub payload: Payload,
    /// The column whose value is the record's key (records of one key go
    /// to one partition); none: no key.
    pub key: Option<String>,
    /// Headers every record carries.
    pub headers: Vec<(String, String)>,
    /// The writer's name in its records' `sluice-writer` header: unique
    /// among the writers of the topic (default: the pipeline's stream).
    pub id: String,
    /// Partitions of a topic it creates.
    pub partitions: i32,
    /// Copies of each record, for a topic it creates.
    pub replicas: i32,
    /// More settings for the client.
    pub properties: Vec<(String, String)>,
    /// In a distributed run, the partition it writes for: whether it is
    /// still this process's (it hands nothing over once not), and the
    /// lease's time to live (records handed to the client are written or
    /// given up within a sixth of it).
    pub claim: Option<SinkClaim>,
}

impl SinkConnector for KafkaTarget {
    fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        let resume = length.map(|length| Resume {
            length,
            state: Vec::new(),
        });
        self.open_resuming(schema, resume.as_ref(), None)
    }

    fn open_resuming(
        &self,
        schema: SchemaRef,
        resume: Option<&Resume>,
        _dead_letters: Option<&Arc<Reserved>>,
    ) -> Result<Box<dyn RowWriter>> {
        Ok(Box::new(sink::KafkaWriter::open(self, schema, resume)?))
    }

    fn describe(&self) -> String {
        // What names the writer's records in the topic, not the brokers:
        // this text is part of the state's fingerprint, and a resumed
        // writer must find its records by the same id, key and format.
        format!(
            "kafka topic {} (writer {}, key {}, {})",
            self.topic,
            self.id,
            self.key.as_deref().unwrap_or("none"),
            match self.payload {
                Payload::Csv => "CSV",
                _ => "JSON",
            }
        )
    }

    fn label(&self) -> String {
        format!("kafka:{}", self.topic)
    }

    fn refuses(&self, _guarantee: Guarantee) -> Option<Error> {
        None
    }

    fn refuses_distributed(&self, _guarantee: Guarantee) -> Option<Error> {
        None
    }

    fn exclusive(&self) -> Option<String> {
        Some(format!(
            "kafka topic `{}` at {} as writer `{}`",
            self.topic, self.brokers, self.id
        ))
    }

    fn least_lease_ttl(&self) -> Option<Duration> {
        // A sixth of it for deliveries: a second at least.
        Some(Duration::from_secs(6))
    }

    fn checkpoint_at_start(&self) -> bool {
        // Where its records will start is known durably only once a
        // checkpoint holds it.
        true
    }

    fn in_partition(&mut self, claim: &SinkClaim) {
        // A writer per partition: each numbers its own records, and reads
        // back its own after a takeover.
        self.id = format!("{}.p{}", self.id, claim.partition);
        self.claim = Some(claim.clone());
    }
}
