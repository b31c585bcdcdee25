//! Records of Kafka topics as events of the typed API (feature `kafka`).
//!
//! [`KafkaSource`] reads every partition of its topics by offset (it is
//! given them: no subscription, no rebalance), from the start or the end of
//! each, and turns each record into an event with a function of yours. The
//! event time is the record's timestamp, or what
//! [`KafkaSource::with_event_time`] takes from the event. With
//! [`KafkaSource::until_caught_up`] the source ends once it has read what the
//! partitions held when it started (a batch job over a topic); otherwise it
//! reads until the run stops.
//!
//! The typed API has no checkpoints yet: a run reads from where `start`
//! says each time. Pipeline files (`type = "kafka"`) keep offsets in
//! checkpoints and write exactly once (docs/kafka.md).
//!
//! ```no_run
//! use sluice_connectors::kafka::KafkaSource;
//! use sluice_runtime::{Batch, Source, SourceStatus};
//!
//! let mut readings = KafkaSource::new("127.0.0.1:9092", &["readings"], |record| {
//!     let value = std::str::from_utf8(record.value.unwrap_or_default())?;
//!     Ok(value.parse::<f64>()?)
//! })?
//! .until_caught_up();
//! let mut batch = Batch::new();
//! while readings.poll(&mut batch, 1024)? != SourceStatus::Exhausted {}
//! println!("{} readings", batch.len()); // every one: a poll appends up to 1024
//! # Ok::<(), sluice_runtime::BoxError>(())
//! ```
//!
//! In a pipeline: `Pipeline::new().source(readings)`, as any source; or
//! `partitioned_source(n, |i| source(i))` where `source(i)` makes a
//! `KafkaSource` with `.share(i, n)`, to read the partitions in `n` stages
//! at once.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::{Batch, Timestamp};
use sluice_runtime::{BoxError, Source, SourceStatus};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a metadata or offsets call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a poll waits for records before the source says it is idle.
const POLL_WAIT: Duration = Duration::from_millis(50);

/// How long reads may fail (the broker away) before the run fails.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// One record, as the decoding function sees it.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if it has one.
    pub key: Option<&'a [u8]>,
    /// Its value (none: a tombstone).
    pub value: Option<&'a [u8]>,
    /// Its timestamp (ms since the epoch), if it has one.
    pub timestamp: Option<Timestamp>,
}

type Decode<T> = Box<dyn FnMut(&KafkaRecord<'_>) -> Result<T, BoxError> + Send>;
type EventTime<T> = Box<dyn FnMut(&T) -> Timestamp + Send>;

/// Where a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
}

/// Every partition of some Kafka topics, read by offset into events.
pub struct KafkaSource<T> {
    brokers: String,
    topics: Vec<String>,
    properties: Vec<(String, String)>,
    decode: Decode<T>,
    event_time: Option<EventTime<T>>,
    start: Start,
    caught_up: bool,
    /// Reads only the partitions whose index among all of the topics' is
    /// `share.0` modulo `share.1`.
    share: (usize, usize),
    /// One per topic (a partition's end says only its number), made at
    /// the first poll.
    consumers: Vec<BaseConsumer>,
    opened: bool,
    /// Which consumer is polled next.
    turn: usize,
    /// Per (topic, partition): the next offset to read, and where it ends
    /// (with `until_caught_up`).
    next: HashMap<(usize, i32), (i64, Option<i64>)>,
    /// Per consumer (one per topic): since when its polls fail, with no
    /// record or partition end since (one topic's leader away fails the run
    /// after `RETRY_FOR` though another topic answers).
    failing_since: Vec<Option<Instant>>,
}

impl<T> KafkaSource<T> {
    /// Reads `topics` at `brokers` (`host:port`, comma-separated) from
    /// their earliest records, each record made an event by `decode`; a
    /// record `decode` fails on fails the run, with where it was.
    pub fn new(
        brokers: &str,
        topics: &[&str],
        decode: impl FnMut(&KafkaRecord<'_>) -> Result<T, BoxError> + Send + 'static,
    ) -> Result<Self, BoxError> {
        if topics.is_empty() {
            return Err("a kafka source needs at least one topic".into());
        }
        Ok(Self {
            brokers: brokers.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            properties: Vec::new(),
            decode: Box::new(decode),
            event_time: None,
            start: Start::Earliest,
            caught_up: false,
            share: (0, 1),
            consumers: Vec::new(),
            opened: false,
            turn: 0,
            next: HashMap::new(),
            failing_since: Vec::new(),
        })
    }

    /// Starts each partition after its newest record: only what comes from
    /// now on.
    pub fn from_latest(mut self) -> Self {
        self.start = Start::Latest;
        self
    }

    /// Ends once every partition has been read to where it ended when the
    /// source opened.
    pub fn until_caught_up(mut self) -> Self {
        self.caught_up = true;
        self
    }

    /// Reads share `index` of `shares` of the partitions (those whose
    /// index among all of the topics', in the order given, is `index`
    /// modulo `shares`): with `sluice::Pipeline::partitioned_source`, the
    /// partitions spread over stages that read in parallel.
    pub fn share(mut self, index: usize, shares: usize) -> Self {
        let shares = shares.max(1);
        self.share = (index % shares, shares);
        self
    }

    /// Takes each event's time (ms since the epoch) from the event, not
    /// from the record's timestamp.
    pub fn with_event_time(mut self, f: impl FnMut(&T) -> Timestamp + Send + 'static) -> Self {
        self.event_time = Some(Box::new(f));
        self
    }

    /// Sets a client setting (librdkafka's names: `security.protocol`,
    /// `fetch.max.bytes`, ...).
    pub fn with_property(mut self, name: &str, value: &str) -> Self {
        self.properties.push((name.to_string(), value.to_string()));
        self
    }

    /// Makes a consumer per topic and gives it the topic's partitions.
    fn open(&mut self) -> Result<(), BoxError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("log_level", "3")
            // librdkafka wants a group even to read; nothing is committed.
            .set(
                "group.id",
                format!("sluice-typed-{}", self.topics.join("-")),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100");
        for (name, value) in &self.properties {
            config.set(name, value);
        }
        let mut index = 0;
        for (t, topic) in self.topics.iter().enumerate() {
            let consumer: BaseConsumer = config.create()?;
            let mut assignment = TopicPartitionList::new();
            let metadata = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
            let partitions = metadata
                .topics()
                .first()
                .filter(|t| t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!(
                        "Kafka topic `{topic}` does not exist at {}: create it, or check the \
                         topic and the brokers",
                        self.brokers
                    )
                })?;
            for partition in 0..partitions {
                let mine = index % self.share.1 == self.share.0;
                index += 1;
                if !mine {
                    continue;
                }
                let (low, high) = consumer.fetch_watermarks(topic, partition, CALL_TIMEOUT)?;
                let next = match self.start {
                    Start::Earliest => low,
                    Start::Latest => high,
                };
                let end = self.caught_up.then_some(high);
                if end.map_or(true, |end| next < end) {
                    assignment.add_partition_offset(topic, partition, Offset::Offset(next))?;
                }
                self.next.insert((t, partition), (next, end));
            }
            consumer.assign(&assignment)?;
            self.consumers.push(consumer);
            self.failing_since.push(None);
        }
        self.opened = true;
        Ok(())
    }

    /// Partition `p` of topic `t` has given every committed record the
    /// broker holds (librdkafka says so at the last stable offset): what
    /// lies between its next offset and its end is not data (transaction
    /// markers, records compacted away, a transaction open at the start).
    fn reached_end(&mut self, t: usize, p: i32) {
        if let Some((next, Some(end))) = self.next.get_mut(&(t, p)) {
            if *next < *end {
                *next = *end;
            }
            self.done_with(t, p);
        }
    }

    /// Stops fetching partition `p` of topic `t` once it has reached its
    /// end.
    fn done_with(&self, t: usize, p: i32) {
        if self
            .next
            .get(&(t, p))
            .is_some_and(|(next, end)| end.is_some_and(|e| *next >= e))
        {
            let mut list = TopicPartitionList::new();
            list.add_partition(&self.topics[t], p);
            let _ = self.consumers[t].pause(&list);
        }
    }

    /// Whether every partition has been read to its end.
    fn finished(&self) -> bool {
        self.caught_up
            && self
                .next
                .values()
                .all(|(next, end)| end.is_some_and(|end| *next >= end))
    }
}

impl<T: Send> Source<T> for KafkaSource<T> {
    fn poll(&mut self, out: &mut Batch<T>, max: usize) -> Result<SourceStatus, BoxError> {
        if !self.opened {
            self.open()?;
        }
        let mut wait = POLL_WAIT / self.consumers.len().max(1) as u32;
        let mut quiet = 0;
        let (first, started) = (out.len(), Instant::now());
        // Up to `max` events, and no longer than a wait: the run's stop is
        // looked at between polls.
        while out.len() - first < max
            && quiet < self.consumers.len()
            && started.elapsed() < POLL_WAIT
        {
            if self.finished() {
                return Ok(SourceStatus::Exhausted);
            }
            let t = self.turn % self.consumers.len();
            self.turn = self.turn.wrapping_add(1);
            let message = match self.consumers[t].poll(wait) {
                None => {
                    quiet += 1;
                    continue;
                }
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.failing_since[t] = None;
                    self.reached_end(t, p);
                    continue;
                }
                Some(Err(error @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(error.into());
                }
                Some(Err(error)) => {
                    // The broker is away: the client connects again.
                    let since = *self.failing_since[t].get_or_insert_with(Instant::now);
                    if since.elapsed() > RETRY_FOR {
                        return Err(
                            format!("cannot read from Kafka for {RETRY_FOR:?}: {error}").into()
                        );
                    }
                    break;
                }
            };
            self.failing_since[t] = None;
            // Records already there: take what is ready without waiting.
            wait = Duration::ZERO;
            quiet = 0;
            let Some((next, end)) = self.next.get_mut(&(t, message.partition())) else {
                continue;
            };
            let offset = message.offset();
            if offset < *next {
                continue;
            }
            if let Some(end) = end.filter(|end| offset >= *end) {
                // Past where the partition ended at the start: done with it.
                *next = end;
                self.done_with(t, message.partition());
                continue;
            }
            *next = offset + 1;
            let record = KafkaRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset,
                key: message.key(),
                value: message.payload(),
                timestamp: message.timestamp().to_millis(),
            };
            let event = (self.decode)(&record).map_err(|e| {
                format!(
                    "Kafka topic `{}`, partition {}, offset {offset}: {e}",
                    record.topic, record.partition
                )
            })?;
            let time = match &mut self.event_time {
                Some(f) => f(&event),
                None => record.timestamp.unwrap_or(0),
            };
            out.push(event, time);
        }
        if self.finished() {
            return Ok(SourceStatus::Exhausted);
        }
        Ok(if out.is_empty() {
            SourceStatus::Idle
        } else {
            SourceStatus::Ready
        })
    }

    fn blocking(&self) -> bool {
        // A poll waits for the broker.
        true
    }
}
