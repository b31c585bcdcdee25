//! What the kafka source and sink both ask of the broker: clients made from
//! the table's settings, a topic's partitions and offsets, topic creation.
//! Calls are tried again while the broker is unreachable (a restart), for
//! up to [`RETRY_FOR`].

use super::{CALL_TIMEOUT, RETRY_FOR};
use crate::error::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Client settings Sluice sets itself: its guarantees rest on them.
pub(super) const OWNED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "isolation.level",
    "transactional.id",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "auto.commit.enable",
];

/// A client's settings: the brokers, then the table's `properties`.
pub(super) fn config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    // The broker's answers in the client's log would go to stderr; errors
    // come back through the calls.
    config.set("log_level", "3");
    for (name, value) in properties {
        config.set(name, value);
    }
    config
}

/// A consumer that reads partitions it is given (no subscription, no
/// rebalancing), in `group` for committing offsets when given (librdkafka
/// wants a group even to read: one that is never committed to otherwise).
/// It reads the records of committed transactions only (a source: records
/// a transactional producer aborted are not input), or every record
/// (`uncommitted`: a sink reading back its own, which are in no
/// transaction, must not stop at another writer's open one). Its offsets
/// and watermarks follow the same choice.
pub(super) fn consumer(
    brokers: &str,
    group: Option<&str>,
    properties: &[(String, String)],
    uncommitted: bool,
) -> Result<BaseConsumer> {
    let mut config = config(brokers, properties);
    if !properties
        .iter()
        .any(|(name, _)| name == "fetch.wait.max.ms")
    {
        // A fetch waits this long for records when there are none
        // (librdkafka's default is 500 ms; some brokers, tansu among them,
        // hold every fetch that long).
        config.set("fetch.wait.max.ms", "100");
    }
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .set(
            "isolation.level",
            if uncommitted {
                "read_uncommitted"
            } else {
                "read_committed"
            },
        );
    config.set("group.id", group.unwrap_or("sluice-reader"));
    config
        .create()
        .map_err(|e| Error::input(format!("cannot make a Kafka client for {brokers}")).caused_by(e))
}

/// Calls `call` until it answers, while the broker is unreachable, for
/// up to [`RETRY_FOR`].
pub(super) fn retried<T>(
    what: impl Fn() -> String,
    mut call: impl FnMut() -> std::result::Result<T, KafkaError>,
) -> Result<T> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        match call() {
            Ok(answer) => return Ok(answer),
            Err(error) if Instant::now() >= deadline || !passing(&error) => {
                return Err(Error::input(what()).caused_by(error));
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// An error that a broker coming back can cure.
fn passing(error: &KafkaError) -> bool {
    !matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::InvalidConfig
        )
    )
}

/// The number of partitions of `topic`; `None` when the broker does not
/// have it.
pub(super) fn partitions(
    consumer: &BaseConsumer,
    brokers: &str,
    topic: &str,
) -> Result<Option<i32>> {
    let metadata = retried(
        || format!("cannot read the partitions of Kafka topic `{topic}` at {brokers}"),
        || consumer.fetch_metadata(Some(topic), CALL_TIMEOUT),
    )?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error() {
        None if !found.partitions().is_empty() => Ok(Some(found.partitions().len() as i32)),
        _ => Ok(None),
    }
}

/// The first offset the broker keeps and the one after its last record.
pub(super) fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    retried(
        || format!("cannot read the offsets of Kafka topic `{topic}`, partition {partition}"),
        || consumer.fetch_watermarks(topic, partition, CALL_TIMEOUT),
    )
}

/// The group's committed offset of each partition of `topic`.
pub(super) fn committed(
    consumer: &BaseConsumer,
    group: &str,
    topic: &str,
    count: i32,
) -> Result<Vec<Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for p in 0..count {
        list.add_partition(topic, p);
    }
    let answer = retried(
        || format!("cannot read the committed offsets of group `{group}`"),
        || consumer.committed_offsets(list.clone(), CALL_TIMEOUT),
    )?;
    Ok(offsets(&answer, topic, count))
}

/// The offset of each partition's first record at or after `ms`.
pub(super) fn offsets_at(
    consumer: &BaseConsumer,
    topic: &str,
    count: i32,
    ms: i64,
) -> Result<Vec<Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for p in 0..count {
        list.add_partition_offset(topic, p, Offset::Offset(ms))
            .map_err(|e| failed("cannot ask for offsets by time", e))?;
    }
    let answer = retried(
        || format!("cannot read the offsets of Kafka topic `{topic}` by time"),
        || consumer.offsets_for_times(list.clone(), CALL_TIMEOUT),
    )?;
    Ok(offsets(&answer, topic, count))
}

/// The offset `answer` gives each partition of `topic` (none: not a number).
fn offsets(answer: &TopicPartitionList, topic: &str, count: i32) -> Vec<Option<i64>> {
    (0..count)
        .map(
            |p| match answer.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => Some(n),
                _ => None,
            },
        )
        .collect()
}

/// Creates `topic` with `partitions` of `replicas` copies, unless it
/// exists.
pub(super) fn create_topic(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
    replicas: i32,
) -> Result<()> {
    let what = || format!("cannot create Kafka topic `{topic}` at {brokers}");
    let admin: AdminClient<DefaultClientContext> = config(brokers, properties)
        .create()
        .map_err(|e| Error::output(what()).caused_by(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Error::output(what()).caused_by(e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
    let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
    let answers = runtime
        .block_on(admin.create_topics([&new], &options))
        .map_err(|e| Error::output(what()).caused_by(e))?;
    for answer in answers {
        match answer {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::output(what()).caused_by(KafkaError::AdminOp(code)))
            }
        }
    }
    Ok(())
}

/// The error of a Kafka call, with what it was for.
pub(super) fn failed(what: impl Into<String>, error: KafkaError) -> Error {
    Error::input(what).caused_by(error)
}

/// Has `producer` send what it was handed at once rather than when
/// `linger.ms` is up: librdkafka sends at once while a flush runs, and
/// this one runs for `window` (the client's I/O threads, woken by it,
/// take the records meanwhile). rdkafka's own `flush` holds that state for
/// an instant only, between polls of up to 100 ms. With delivery reports
/// as events (rdkafka's way) the call serves nothing: it waits for the
/// producer's records to be gone, which takes the next poll, so it returns
/// when `window` is up.
#[allow(unsafe_code)]
pub(super) fn send_now<C: ProducerContext>(producer: &BaseProducer<C>, window: Duration) {
    let ms = i32::try_from(window.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: the handle of a live producer; librdkafka's flush may be
    // called from any thread.
    unsafe {
        rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms);
    }
}
