//! Every partition of a source's topics, read by offset: a consumer per
//! topic, given its partitions (no subscription, so no rebalancing moves
//! them), each from its checkpointed offset.

use super::client::{self, failed};
use super::fetch::TopicConsumer;
use super::record::{take, Part, Reading};
use super::{KafkaSourcePlan, Payload, Start, RETRY_FOR};
use crate::connectors::replay::{Replayable, SourceCounters};
use crate::connectors::{Opening, Reader};
use crate::error::{Error, Result};
use crate::format::{EventTime, Format, TextDecoder};
use crate::rows::Rows;
use crate::side_outputs::ReservedHandle;
use arrow::array::UInt64Array;
use arrow::datatypes::SchemaRef;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice::{Batch, BoxError, Source, SourceStatus};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most records one fetch takes from librdkafka.
const FETCH_MOST: usize = 10_000;

/// Where a partition is, in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Position {
    topic: String,
    partition: i32,
    /// The offset of the next record to read.
    next: i64,
    /// With `end = "caught-up"`: the offset after the last record it held
    /// when the run first started.
    end: Option<i64>,
}

/// A kafka source: every partition of its topics.
pub struct KafkaSource {
    plan: KafkaSourcePlan,
    /// How records become lines.
    reading: Reading,
    /// The one partition this run reads, in a distributed run: its index
    /// among the partitions of the topics, in the order listed.
    only: Option<u32>,
    /// Which of the source's readers this is: it reads the partitions
    /// whose index among all of them is its in turn.
    reader: Reader,
    /// The topics it reads partitions of (the consumers' topics).
    topics: Vec<String>,
    schema: SchemaRef,
    time: EventTime,
    /// One per topic, made when the first poll opens the partitions.
    consumers: Vec<TopicConsumer>,
    /// Sorted by topic, then partition; `first[t]` is the first of
    /// `topics[t]`.
    parts: Vec<Part>,
    first: Vec<usize>,
    /// The positions a resumed run starts from.
    seeked: Vec<Position>,
    /// The run resumed from a checkpoint (whose position for this reader
    /// may list no partition).
    resumed: bool,
    opened: bool,
    chunk_rows: usize,
    interval: Duration,
    waiting_since: Option<Instant>,
    /// Records read and not yet emitted.
    pending: usize,
    /// Which consumer is polled next (several topics take turns).
    turn: usize,
    /// The positions of checkpoints in flight, committed to the consumer
    /// group once their checkpoint has.
    to_commit: Mutex<VecDeque<Vec<Position>>>,
    /// Per consumer (one per topic): its reads have failed since then (the
    /// broker is unreachable), with no record or partition end since.
    failing_since: Vec<Option<Instant>>,
    /// The latest time chunks have carried.
    told_time: i64,
    /// Checkpoints are on: a caught-up end waits for one that holds every
    /// partition's end, so that the group's offsets say so too.
    durable: bool,
    /// A checkpoint that holds every partition's end has committed.
    end_committed: bool,
    /// Nothing is read until the first checkpoint, taken at the first poll,
    /// has committed.
    awaiting_first: bool,
    done: bool,
    reserved: ReservedHandle,
    counters: Arc<SourceCounters>,
}

impl KafkaSource {
    /// The source of `plan`'s topics, opened (its partitions assigned) at
    /// its first poll, after a resumed run has sought.
    pub fn new(plan: KafkaSourcePlan, at: &Opening<'_>) -> Result<Self> {
        #[cfg(feature = "nats")]
        let only = at.partition.map(|c| c.partition);
        #[cfg(not(feature = "nats"))]
        let only = None;
        let avro = match &plan.avro_schema {
            None => None,
            Some(text) => Some(apache_avro::Schema::parse_str(text).map_err(|e| {
                Error::refused(format!(
                    "the kafka source's Avro schema does not parse: {e}"
                ))
            })?),
        };
        Ok(Self {
            reading: Reading {
                payload: plan.payload,
                record_time: plan.record_time,
                avro,
            },
            plan,
            only,
            reader: at.reader,
            topics: Vec::new(),
            schema: at.schema.clone(),
            time: at.time.clone(),
            consumers: Vec::new(),
            parts: Vec::new(),
            first: Vec::new(),
            seeked: Vec::new(),
            resumed: false,
            opened: false,
            chunk_rows: at.chunk_rows.max(1),
            interval: at.batch_interval.max(Duration::from_millis(1)),
            waiting_since: None,
            pending: 0,
            turn: 0,
            to_commit: Mutex::new(VecDeque::new()),
            failing_since: Vec::new(),
            told_time: i64::MIN,
            durable: at.reserved.holds(),
            end_committed: false,
            awaiting_first: at.first_checkpoint_at_once,
            done: false,
            reserved: ReservedHandle::new(at.reserved.clone()),
            counters: at.counters.clone(),
        })
    }

    /// Assigns every partition of every topic (or the one of a distributed
    /// run) to its consumer, at its checkpointed offset or where `start`
    /// says.
    fn open(&mut self) -> Result<()> {
        let brokers = self.plan.brokers.clone();
        let format = match self.plan.payload {
            Payload::Csv => Format::Csv,
            Payload::Json | Payload::Raw | Payload::Avro { .. } => Format::Jsonl,
        };
        // The index of a topic's first partition among all of them.
        let mut counted = 0u32;
        for topic in &self.plan.topics {
            let consumer = TopicConsumer::new(client::consumer(
                &brokers,
                Some(&self.plan.group),
                &self.plan.properties,
                false,
            )?)?;
            let count =
                client::partitions(&consumer.consumer, &brokers, topic)?.ok_or_else(|| {
                    Error::input(format!(
                        "Kafka topic `{topic}` does not exist at {brokers}: create it, or check \
                     `topic` and `brokers`"
                    ))
                })?;
            let read: Vec<i32> = (0..count)
                .filter(|p| self.only.is_none_or(|only| only == counted + *p as u32))
                // Dealt in turn by their index among all the topics'.
                .filter(|p| self.reader.reads(u64::from(counted) + *p as u64))
                .collect();
            counted += count.max(0) as u32;
            if read.is_empty() {
                continue;
            }
            if let (Some(only), Some(seeked)) = (self.only, self.seeked.first()) {
                // Partition `only` must be the one its checkpoint read: a
                // partition added to a topic other than the last moves the
                // numbers of those after it.
                if seeked.topic != *topic || seeked.partition != read[0] {
                    return Err(Error::refused(format!(
                        "partition {only} of this distributed run read Kafka topic `{}`, \
                         partition {}, and is now topic `{topic}`, partition {}: partitions \
                         were added to a topic other than the last listed. Add partitions to \
                         the last topic only, or start the group afresh (--fresh)",
                        seeked.topic, seeked.partition, read[0]
                    )));
                }
            }
            let t = self.topics.len();
            let committed = match self.plan.start {
                Start::Committed => Some(client::committed(
                    &consumer.consumer,
                    &self.plan.group,
                    topic,
                    count,
                )?),
                _ => None,
            };
            let times = match self.plan.start {
                Start::Time(ms) => Some(client::offsets_at(&consumer.consumer, topic, count, ms)?),
                _ => None,
            };
            self.first.push(self.parts.len());
            let mut assignment = TopicPartitionList::new();
            for partition in read {
                let (low, high) = client::watermarks(&consumer.consumer, topic, partition)?;
                let seeked = self
                    .seeked
                    .iter()
                    .find(|p| p.topic == *topic && p.partition == partition);
                let resumed = self.resumed;
                let (next, end) = match seeked {
                    Some(p) => (p.next, p.end),
                    // A partition added since the checkpoint: all of it.
                    None if resumed => (low, self.plan.end_when_caught_up.then_some(high)),
                    None => {
                        let next = match self.plan.start {
                            Start::Earliest => low,
                            Start::Latest => high,
                            Start::Committed => committed
                                .as_ref()
                                .and_then(|c| c[partition as usize])
                                .unwrap_or(low),
                            Start::Time(_) => times
                                .as_ref()
                                .and_then(|t| t[partition as usize])
                                .unwrap_or(high),
                        };
                        (next, self.plan.end_when_caught_up.then_some(high))
                    }
                };
                if next < low {
                    return Err(Error::refused(format!(
                        "Kafka topic `{topic}`, partition {partition}: the run starts at offset \
                         {next}, but the broker keeps records from offset {low} on (retention \
                         deleted the others before they were read). Start afresh, or keep \
                         records longer"
                    )));
                }
                if next > high {
                    return Err(Error::refused(format!(
                        "Kafka topic `{topic}`, partition {partition}: the run starts at offset \
                         {next}, past the partition's end ({high}): the topic was made anew, \
                         or the group's offsets are another topic's. Start afresh, or say \
                         start = \"earliest\""
                    )));
                }
                assignment
                    .add_partition_offset(topic, partition, Offset::Offset(next))
                    .map_err(|e| failed(format!("cannot assign Kafka topic `{topic}`"), e))?;
                consumer.forward(topic, partition)?;
                self.parts.push(Part {
                    topic: t,
                    partition,
                    next,
                    end,
                    max_time: i64::MIN,
                    at_end: false,
                    decoder: TextDecoder::new(
                        format,
                        self.schema.clone(),
                        self.time.clone(),
                        format!("kafka:{topic}/{partition}"),
                    ),
                    region: Vec::new(),
                    lines: Vec::new(),
                    dead: Vec::new(),
                });
            }
            consumer.assign(topic, &assignment)?;
            // A partition already read to its end (a resumed caught-up run)
            // fetches nothing more.
            for part in self.parts[self.first[t]..].iter().filter(|p| p.finished()) {
                pause(&consumer, topic, part.partition);
            }
            self.consumers.push(consumer);
            self.failing_since.push(None);
            self.topics.push(topic.clone());
        }
        // A partition this reader's checkpoint read that is not its own now
        // (the numbers moved: partitions added to a topic other than the
        // last) would be read twice, by another reader from its start.
        let shared = self.only.is_none();
        if let Some(moved) = self.seeked.iter().filter(|_| shared).find(|s| {
            let t = self.topics.iter().position(|t| *t == s.topic);
            t.and_then(|t| self.part_of(t, s.partition)).is_none()
        }) {
            return Err(Error::refused(format!(
                "Kafka topic `{}`, partition {}: this run's checkpoint has it read by reader {} \
                 of {}, and it is now another reader's or gone: partitions were added to a \
                 topic other than the last listed, or removed. Add partitions to the last \
                 topic only, or start afresh (--fresh)",
                moved.topic, moved.partition, self.reader.index, self.reader.readers
            )));
        }
        if let Some(only) = self.only.filter(|_| self.parts.is_empty()) {
            return Err(Error::refused(format!(
                "Kafka topics {} have {counted} partitions, and this run was given partition \
                 {only} of them: partitions were removed since the group started. Stop every \
                 process of the group, and start them again",
                self.plan.topics.join(", ")
            )));
        }
        self.opened = true;
        Ok(())
    }

    /// The index in `parts` of partition `p` of `topics[t]`, if it is read.
    fn part_of(&self, t: usize, p: i32) -> Option<usize> {
        let first = self.first[t];
        let end = self.first.get(t + 1).copied().unwrap_or(self.parts.len());
        self.parts[first..end]
            .binary_search_by_key(&p, |part| part.partition)
            .ok()
            .map(|i| first + i)
    }

    /// What a read that failed means: the run fails (records gone, a
    /// fatal client error) or reads on while the broker is unreachable, for
    /// up to [`RETRY_FOR`] (the client connects again by itself).
    fn failure(&mut self, t: usize, error: KafkaError) -> Result<()> {
        match error {
            KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset) => {
                Err(Error::input(format!(
                    "Kafka topic `{}`: the broker no longer has the records at a partition's \
                     offset (retention deleted them before they were read). Start afresh, or \
                     keep records longer",
                    self.topics[t]
                )))
            }
            error @ KafkaError::MessageConsumptionFatal(_) => Err(failed(
                format!("cannot read Kafka topic `{}`", self.topics[t]),
                error,
            )),
            error => {
                let since = *self.failing_since[t].get_or_insert_with(Instant::now);
                if since.elapsed() > RETRY_FOR {
                    return Err(failed(
                        format!(
                            "cannot read Kafka topic `{}` for {RETRY_FOR:?}",
                            self.topics[t]
                        ),
                        error,
                    ));
                }
                Ok(())
            }
        }
    }

    fn positions(&self) -> Vec<Position> {
        if !self.opened {
            return self.seeked.clone();
        }
        self.parts
            .iter()
            .map(|p| Position {
                topic: self.topics[p.topic].clone(),
                partition: p.partition,
                next: p.next,
                end: p.end,
            })
            .collect()
    }

    /// The time the watermark may follow: the slowest partition that still
    /// has records to give (one at its end, or finished, holds nothing
    /// back); the latest of all once every one is at its end.
    fn watermark_time(&self) -> i64 {
        let holding = self
            .parts
            .iter()
            .filter(|p| !p.at_end && !p.finished())
            .map(|p| p.max_time)
            .min();
        holding.unwrap_or_else(|| {
            self.parts
                .iter()
                .map(|p| p.max_time)
                .max()
                .unwrap_or(i64::MIN)
        })
    }

    /// Decodes what each partition read, as a chunk of rows per partition.
    fn emit(&mut self, out: &mut Batch<Rows>) {
        let several = self.parts.len() > 1;
        let mut chunks = Vec::new();
        for (index, part) in self.parts.iter_mut().enumerate() {
            if !part.dead.is_empty() {
                self.counters.decoded_into(None, &part.dead);
                self.reserved.dead(&part.dead);
                part.dead.clear();
            }
            if part.lines.is_empty() {
                continue;
            }
            let decoded = part.decoder.decode(&part.region, &part.lines);
            part.region.clear();
            part.lines.clear();
            self.counters
                .decoded_into(decoded.rows.as_ref(), &decoded.dead);
            self.reserved.dead(&decoded.dead);
            let Some(mut rows) = decoded.rows else {
                continue;
            };
            if let Some(time) = rows.max_time() {
                part.max_time = part.max_time.max(time);
            }
            if several {
                // Lines name records in the run's accounting: offsets of
                // different partitions must not meet.
                let lines: UInt64Array = rows
                    .lines
                    .values()
                    .iter()
                    .map(|offset| ((index as u64) << 40) | offset)
                    .collect();
                rows.lines = lines;
            }
            chunks.push(rows);
        }
        let time = self.watermark_time();
        if !chunks.is_empty() {
            self.told_time = self.told_time.max(time);
        }
        for rows in chunks {
            out.push(rows, time);
        }
        self.pending = 0;
        self.waiting_since = None;
    }
}

/// A failed read that no retry mends: records gone, or a fatal client
/// error.
fn ends_the_run(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)
            | KafkaError::MessageConsumptionFatal(_)
    )
}

/// `part`, of `topic` read by `consumer`, has given every record the
/// broker holds.
fn reached_end(consumer: &TopicConsumer, topic: &str, part: &mut Part) -> Result<()> {
    part.at_end = true;
    // Every record to the partition's end has come: what lies between
    // `next` and a caught-up end is not data (transaction markers, records
    // compacted away), once the broker's end is past it (a new leader's
    // may lag).
    if let Some(end) = part.end.filter(|e| *e > part.next) {
        let (_, high) = client::watermarks(&consumer.consumer, topic, part.partition)?;
        if high >= end {
            part.next = end;
        }
    }
    if part.finished() {
        pause(consumer, topic, part.partition);
    }
    Ok(())
}

/// Stops fetching partition `partition` of `topic`: it has read to its end.
fn pause(consumer: &TopicConsumer, topic: &str, partition: i32) {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    // Records fetched past the end are skipped anyway.
    let _ = consumer.consumer.pause(&list);
}

/// No rows: a chunk that only carries a time for the watermark.
fn empty_rows(schema: &SchemaRef) -> Rows {
    Rows::new(
        arrow::array::RecordBatch::new_empty(schema.clone()),
        arrow::array::Int64Array::from(Vec::<i64>::new()),
        UInt64Array::from(Vec::<u64>::new()),
    )
}

impl Source<Rows> for KafkaSource {
    /// A poll waits for records from the broker (up to the batch
    /// interval): a thread of its own.
    fn blocking(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.done {
            // A reader given no partition has no end to wait for.
            if self.durable && !self.end_committed && !self.parts.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
                return Ok(SourceStatus::Idle);
            }
            return Ok(SourceStatus::Exhausted);
        }
        if !self.opened {
            self.open()?;
        }
        if self.awaiting_first {
            // The first checkpoint holds where every partition starts.
            std::thread::sleep(Duration::from_millis(2));
            return Ok(SourceStatus::Idle);
        }

        loop {
            if self.pending >= self.chunk_rows {
                break;
            }
            if !self.parts.is_empty() && self.parts.iter().all(Part::finished) {
                self.done = true;
                break;
            }
            if self.parts.is_empty() {
                self.done = true;
                break;
            }
            let wait = match self.waiting_since {
                None => self.interval,
                Some(since) => self.interval.saturating_sub(since.elapsed()),
            };
            let many = self.consumers.len() > 1;
            let t = self.turn % self.consumers.len();
            self.turn = self.turn.wrapping_add(1);
            let timeout = if many {
                wait.min(Duration::from_millis(5))
            } else {
                wait
            };
            // The consumer's own queue: client errors (a broker gone).
            if let Some(error) = self.consumers[t].events()? {
                self.failure(t, error)?;
            }
            let consumer = &self.consumers[t];
            // The first record (or partition event) as soon as it comes,
            // then whatever else has come, without waiting.
            let first = consumer.fetch(timeout, 1);
            let room = (self.chunk_rows.saturating_sub(self.pending + 1)).min(FETCH_MOST);
            let rest =
                (!first.is_empty() && room > 0).then(|| consumer.fetch(Duration::ZERO, room));
            let (mut taken, mut bytes, mut answered, mut failure) = (0u64, 0u64, false, None);
            for record in first.iter().chain(rest.iter().flat_map(|r| r.iter())) {
                match record {
                    Ok(message) => {
                        answered = true;
                        let p = message.partition();
                        let Some(index) = self.part_of(t, p) else {
                            continue;
                        };
                        let part = &mut self.parts[index];
                        let finished = part.finished();
                        if take(part, &message, &self.reading) {
                            taken += 1;
                            bytes += message.payload().map_or(0, <[u8]>::len) as u64;
                        }
                        if !finished && part.finished() {
                            pause(consumer, &self.topics[t], p);
                        }
                    }
                    Err(KafkaError::PartitionEOF(p)) => {
                        answered = true;
                        if let Some(index) = self.part_of(t, p) {
                            reached_end(consumer, &self.topics[t], &mut self.parts[index])?;
                        }
                    }
                    // The last, unless an earlier one ends the run.
                    Err(error) => {
                        if failure.as_ref().is_none_or(|f| !ends_the_run(f)) {
                            failure = Some(error);
                        }
                    }
                }
            }
            drop((first, rest));
            if answered {
                self.failing_since[t] = None;
            }
            if let Some(error) = failure {
                self.failure(t, error)?;
            }
            if taken > 0 {
                self.pending += taken as usize;
                self.counters.add_read(taken);
                self.counters.add_bytes(bytes);
                self.waiting_since.get_or_insert_with(Instant::now);
                if !wait.is_zero() {
                    continue;
                }
                break;
            }
            if self.pending == 0 {
                if !many || self.turn.is_multiple_of(self.consumers.len()) {
                    // Nothing came. Partitions that reached their end no
                    // longer hold the watermark back: an empty chunk says
                    // so.
                    let time = self.watermark_time();
                    if time > self.told_time {
                        self.told_time = time;
                        out.push(empty_rows(&self.schema), time);
                        return Ok(SourceStatus::Ready);
                    }
                    return Ok(SourceStatus::Idle);
                }
            } else if wait.is_zero() {
                break;
            }
        }
        self.emit(out);
        Ok(if out.is_empty() {
            SourceStatus::Idle
        } else {
            SourceStatus::Ready
        })
    }
}

impl Replayable for KafkaSource {
    fn position(&self) -> serde_json::Value {
        // Called when a checkpoint is taken: its commit to the group waits.
        let positions = self.positions();
        self.to_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(positions.clone());
        serde_json::json!({ "partitions": positions })
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let positions: Vec<Position> = serde_json::from_value(position["partitions"].clone())
            .map_err(|e| {
                Error::damaged(format!(
                    "the checkpointed position of the kafka source is damaged ({e})"
                ))
            })?;
        self.seeked = positions;
        self.resumed = true;
        self.consumers.clear();
        self.failing_since.clear();
        self.topics.clear();
        self.parts.clear();
        self.first.clear();
        self.opened = false;
        Ok(())
    }

    fn release_reserved(&self) {
        self.reserved.release();
    }

    fn resize(&mut self, rows: usize, wait: Duration) {
        self.chunk_rows = rows.max(1);
        self.interval = wait.max(Duration::from_millis(1));
    }

    fn committed(&mut self) -> Result<()> {
        let positions = self
            .to_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        self.awaiting_first = false;
        let Some(positions) = positions else {
            return Ok(());
        };
        if self.opened
            && !positions.is_empty()
            && positions.len() == self.parts.len()
            && positions
                .iter()
                .all(|p| p.end.is_some_and(|end| p.next >= end))
        {
            self.end_committed = true;
        }
        // For monitoring tools (consumer lag): a commit that fails is
        // harmless, the next one covers it; Sluice resumes from its own
        // checkpoint.
        for (topic, consumer) in self.topics.iter().zip(&self.consumers) {
            let mut list = TopicPartitionList::new();
            for p in positions.iter().filter(|p| p.topic == *topic) {
                let _ = list.add_partition_offset(topic, p.partition, Offset::Offset(p.next));
            }
            if list.count() > 0 {
                let _ = consumer.consumer.commit(&list, CommitMode::Async);
            }
        }
        Ok(())
    }
}
