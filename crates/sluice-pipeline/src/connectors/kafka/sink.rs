//! The kafka sink's writer: each row a record, numbered in its headers,
//! handed to the producer a request's worth at a time (held meanwhile:
//! `KafkaWriter::pump`); every delivery awaited at a checkpoint, which
//! records where the writer's next records will start in each partition;
//! a resumed writer reads its records after the checkpoint back and skips
//! the replay's rows that are already there.
//!
//! The skip matches records by key and value, as many times as each is
//! there: the replay may give the rows in another order (partitions read
//! at other paces), and exactly once holds whenever it gives the same rows
//! (docs/kafka.md says when it does).

use super::client;
use super::held::Held;
use super::read_back::read_back;
use super::{KafkaTarget, Payload, CALL_TIMEOUT, RETRY_FOR, SEQUENCE_HEADER, WRITER_HEADER};
use crate::connectors::Resume;
use crate::error::{Error, Result};
use crate::output::{Durable, RowWriter};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a kafka sink records at a checkpoint, besides its length.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The number of the next record.
    next: u64,
    /// Per partition, the offset after the writer's last record before the
    /// checkpoint (or where the partition ended when the writer first
    /// opened it): its records after the checkpoint lie beyond. While
    /// `pending` is not empty, where it was when those were read back.
    tail: BTreeMap<i32, i64>,
    /// The numbers of records a recovery read back that the replay has not
    /// given again yet (they were written before a crash, for input after
    /// this checkpoint): a recovery from here reads them back too.
    #[serde(default)]
    pending: Vec<u64>,
}

/// Records delivered since the last checkpoint: the last offset in each
/// partition, and the first failure.
#[derive(Default)]
struct Delivered {
    last: BTreeMap<i32, i64>,
    failed: Option<String>,
}

/// The producer's context: it hears of every delivery.
#[derive(Default)]
struct Deliveries(Mutex<Delivered>);

impl Deliveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, Delivered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut delivered = self.lock();
        match result {
            Ok(message) => {
                let last = delivered.last.entry(message.partition()).or_insert(-1);
                *last = (*last).max(message.offset());
            }
            Err((error, message)) => {
                delivered
                    .failed
                    .get_or_insert_with(|| format!("partition {}: {error}", message.partition()));
            }
        }
    }
}

/// How often a checkpoint moves the partitions a writer did not write to
/// past other writers' records.
const REFRESH_UNTOUCHED: Duration = Duration::from_secs(10);

/// A record's key and value.
pub(super) type Record = (Option<Vec<u8>>, Vec<u8>);

pub(crate) struct KafkaWriter {
    target: KafkaTarget,
    producer: BaseProducer<Deliveries>,
    state: State,
    /// Records of this writer already in the topic that the replay gives
    /// again, with their numbers (one per time each is there): skipped.
    replayed: HashMap<Record, Vec<u64>>,
    replayed_left: u64,
    /// Where `State::tail` goes once nothing read back is pending.
    ahead: BTreeMap<i32, i64>,
    /// When `ahead` last moved the partitions it did not write to.
    refreshed: Instant,
    buf: Vec<u8>,
    /// Records numbered and not yet handed to the producer.
    held: Held,
    /// How much is handed to the producer at a time: one produce
    /// request's worth.
    hand_records: usize,
    hand_bytes: usize,
    /// Whether the writer is ticked (a sink stage's): only then does it
    /// hold records back between writes.
    ticked: bool,
}

/// How often a writer holding records asks to be called while the broker
/// has not answered.
const HOLD_POLL: Duration = Duration::from_millis(5);

/// How long a writer waiting for the broker's answers sleeps between two
/// looks. Not the client's `poll` with a timeout: rdkafka 0.39's polls
/// until the time is up, and its last millisecond without sleeping (a wait
/// of 1 ms would be a spin; `flush` waits in steps of 100 ms).
const WAIT_STEP: Duration = Duration::from_millis(1);

/// A record's framing in a produce request (lengths, offset and time
/// deltas, attributes: a few varints each), rounded up.
const RECORD_FRAMING: usize = 32;

/// The producer's `linger.ms` unless `properties` set it: longer than a
/// hand-over takes (a few ms for 10,000 records), and the longest a
/// record waits when the producer misses [`client::send_now`]'s window
/// (its I/O thread not scheduled within it, or no producer id yet).
const LINGER_MS: &str = "50";

/// How long a writer has the producer send at once after a hand-over.
const SEND_NOW: Duration = Duration::from_millis(2);

/// How long a writer waits for deliveries by looking before it flushes.
const FLUSH_AFTER: Duration = Duration::from_millis(50);

/// How long each flush of a long wait for deliveries lasts: the wait ends
/// up to this long after the broker's last answer (a step wakes every I/O
/// thread of the client). Not rdkafka's `flush`, which polls in steps of
/// 100 ms that each run to their end, the last millisecond without
/// sleeping.
const FLUSH_STEP: Duration = Duration::from_millis(10);

impl KafkaWriter {
    /// Opens the topic (creating it if missing); a resumed writer first
    /// reads back what it wrote after its checkpoint.
    pub(crate) fn open(
        target: &KafkaTarget,
        _schema: SchemaRef,
        resume: Option<&Resume>,
    ) -> Result<Self> {
        let topic = &target.topic;
        let consumer = client::consumer(&target.brokers, None, &target.properties, true)?;
        let partitions = match client::partitions(&consumer, &target.brokers, topic)? {
            Some(n) => n,
            None => {
                client::create_topic(
                    &target.brokers,
                    &target.properties,
                    topic,
                    target.partitions,
                    target.replicas,
                )?;
                wait_for_topic(&consumer, target)?
            }
        };
        let mut state = match resume {
            Some(r) if !r.state.is_empty() => serde_json::from_slice(&r.state).map_err(|e| {
                Error::damaged(format!(
                    "the checkpointed state of kafka sink `{}` is damaged ({e})",
                    target.id
                ))
            })?,
            Some(_) => {
                return Err(Error::damaged(format!(
                    "the checkpoint has no state for kafka sink `{}` (where its records after \
                     the checkpoint start): the state is damaged",
                    target.id
                )))
            }
            None => State::default(),
        };
        let mut replayed = HashMap::new();
        let mut replayed_left = 0;
        let resumed = resume.is_some();
        let mut ranges = Vec::new();
        // Where the partitions end now: once what was read back has been
        // given again, the writer's records after a checkpoint lie beyond.
        let mut ahead = BTreeMap::new();
        for partition in 0..partitions {
            let (low, high) = client::watermarks(&consumer, topic, partition)?;
            ahead.insert(partition, high);
            if !resumed
                || crate::fault::on(
                    crate::fault::Fault::KafkaSinkNoSkip,
                    std::path::Path::new("kafka"),
                )
            {
                // Records from now on lie beyond the partition's end.
                state.tail.insert(partition, high);
                continue;
            }
            let start = state.tail.get(&partition).copied().unwrap_or(low).max(low);
            if start < high {
                ranges.push((partition, start, high));
            }
        }
        let pending: std::collections::HashSet<u64> =
            std::mem::take(&mut state.pending).into_iter().collect();
        let wanted = |seq: u64| seq >= state.next || pending.contains(&seq);
        let mut next = state.next;
        for (record, seq) in read_back(&consumer, target, &ranges, wanted)? {
            next = next.max(seq.saturating_add(1));
            replayed.entry(record).or_insert_with(Vec::new).push(seq);
            replayed_left += 1;
        }
        state.next = next;
        // In a distributed run, a record handed to the client is written or
        // given up within a sixth of the lease's time to live: the writer
        // stops handing records over once the lease has gone unrenewed for
        // half of it (its fence), so its records land before two thirds,
        // and another process takes the partition over (and reads back)
        // only once all of it has passed. A request the client gave up on
        // that the broker still appends later is the condition docs/kafka.md
        // states.
        let delivery = match &target.claim {
            Some(claim) => claim.lease_ttl / 6,
            None => RETRY_FOR * 2,
        };
        let mut config = client::config(&target.brokers, &target.properties);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", delivery.as_millis().to_string());
        if !target.properties.iter().any(|(k, _)| k == "partitioner") {
            // Keys go where Kafka's own clients put them.
            config.set("partitioner", "murmur2_random");
        }
        if !target.properties.iter().any(|(k, _)| k == "linger.ms") {
            // The writer says when to send (`client::send_now` after each
            // hand-over): a request must not leave while one is being
            // handed over, or the rest waits behind it (and librdkafka's
            // idempotent producer polls without sleeping until the broker
            // answers).
            config.set("linger.ms", LINGER_MS);
        }
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| {
                Error::output(format!(
                    "cannot make a Kafka producer for {}",
                    target.brokers
                ))
                .caused_by(e)
            })?;
        Ok(Self {
            target: target.clone(),
            producer,
            state,
            replayed,
            replayed_left,
            ahead,
            refreshed: Instant::now(),
            buf: Vec::new(),
            held: Held::default(),
            hand_records: setting(&target.properties, "batch.num.messages").unwrap_or(10_000),
            // librdkafka's batch.size counts the framing too.
            hand_bytes: setting(&target.properties, "batch.size").unwrap_or(1_000_000) * 9 / 10,
            ticked: false,
        })
    }

    /// The rows of `batch` as one value each.
    fn values(&mut self, batch: &RecordBatch) -> Result<Vec<std::ops::Range<usize>>> {
        let what = || format!("kafka sink `{}`", self.target.id);
        self.buf.clear();
        let encode = |buf: &mut Vec<u8>, batch: &RecordBatch| match self.target.payload {
            Payload::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut *buf);
                writer.write(batch)
            }
            _ => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut *buf);
                writer.write(batch).and_then(|()| writer.finish())
            }
        };
        encode(&mut self.buf, batch).map_err(|e| Error::output(what()).caused_by(e))?;
        let mut ranges = lines(&self.buf);
        if ranges.len() != batch.num_rows() {
            // A CSV value with a newline in it: one row at a time.
            self.buf.clear();
            ranges.clear();
            for row in 0..batch.num_rows() {
                let start = self.buf.len();
                encode(&mut self.buf, &batch.slice(row, 1))
                    .map_err(|e| Error::output(what()).caused_by(e))?;
                let mut end = self.buf.len();
                while end > start && matches!(self.buf[end - 1], b'\n' | b'\r') {
                    end -= 1;
                }
                ranges.push(start..end);
            }
        }
        Ok(ranges)
    }

    /// Fails if a delivery has failed.
    fn check(&self) -> Result<()> {
        match self.producer.context().lock().failed.clone() {
            None => Ok(()),
            Some(reason) => Err(Error::output(format!(
                "kafka sink `{}`: a record could not be delivered to topic `{}` ({reason}); \
                 the run resumes from its last checkpoint without repeating what the topic \
                 already holds",
                self.target.id, self.target.topic
            ))),
        }
    }

    /// Hands the held records to the producer, one request's worth at a
    /// time, each once the producer has nothing in flight; with `wait`,
    /// waits for the broker's answers until all are handed over.
    ///
    /// librdkafka's idempotent producer keeps one request per partition in
    /// flight (it counts the records in flight against its limit of 5
    /// requests), and while more records wait behind that request its I/O
    /// thread polls without sleeping until the broker answers: a core kept
    /// busy for as long as a slow broker takes (librdkafka 2.12; its open
    /// pull request #4989 is about the limit). Records held here wait
    /// without costing anything, and the producer is given no more than it
    /// sends at once. A writer that is not ticked (of `dead_letter` or
    /// `late`) holds nothing back: it hands everything over at once.
    fn pump(&mut self, wait: bool) -> Result<()> {
        let deadline = Instant::now() + RETRY_FOR * 2;
        // Handed over in this call; handed over since the producer was last
        // told to send at once (it is told once, after the last hand-over
        // in a row: each time holds the writer `SEND_NOW`).
        let (mut handed, mut unsent) = (false, false);
        loop {
            self.serve_reports();
            self.check()?;
            if self.held.is_empty() {
                self.held.clear();
                self.send_now(&mut unsent);
                return Ok(());
            }
            // A writer that is not ticked hands everything over at once.
            if self.producer.in_flight_count() == 0 || !self.ticked {
                if self.hand_over()? > 0 {
                    (handed, unsent) = (true, true);
                    continue;
                }
                if self.producer.in_flight_count() == 0 {
                    return Err(Error::output(format!(
                        "kafka sink `{}`: a record does not fit in the producer's queue: \
                         raise `queue.buffering.max.kbytes` in `properties`",
                        self.target.id
                    )));
                }
                // The producer's queue is full: wait for deliveries.
            } else if !wait {
                self.send_now(&mut unsent);
                return Ok(());
            }
            self.send_now(&mut unsent);
            self.delivered_by(deadline, !handed)?;
        }
    }

    /// Has the producer send at once what it was handed, if `unsent`.
    fn send_now(&self, unsent: &mut bool) {
        if std::mem::take(unsent) {
            client::send_now(&self.producer, SEND_NOW);
        }
    }

    /// Waits until every record handed to the producer is delivered (or
    /// has failed).
    fn delivered(&self) -> Result<()> {
        self.delivered_by(Instant::now() + RETRY_FOR * 2, true)
    }

    /// Waits until every record handed to the producer is delivered, until
    /// `deadline`: it looks every [`WAIT_STEP`], and after [`FLUSH_AFTER`]
    /// it flushes in steps of [`FLUSH_STEP`] (librdkafka then also sends
    /// what a long `linger.ms` holds).
    /// `nudge`: first has the producer send at once what it was handed
    /// (not needed right after a hand-over, which did).
    fn delivered_by(&self, deadline: Instant, nudge: bool) -> Result<()> {
        let started = Instant::now();
        let late = || {
            Error::output(format!(
                "kafka sink `{}`: records to topic `{}` were not delivered within {:?}",
                self.target.id,
                self.target.topic,
                RETRY_FOR * 2
            ))
        };
        let mut first = nudge;
        loop {
            self.serve_reports();
            self.check()?;
            if self.producer.in_flight_count() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(late());
            }
            if now - started >= FLUSH_AFTER {
                client::send_now(&self.producer, FLUSH_STEP.min(deadline - now));
                continue;
            }
            if std::mem::take(&mut first) {
                // What was handed over and missed `send_now`'s window
                // goes now, not after `linger.ms` (each call wakes every
                // I/O thread of the client: once).
                client::send_now(&self.producer, WAIT_STEP);
            } else {
                std::thread::sleep(WAIT_STEP);
            }
        }
    }

    /// Serves the delivery reports that have come: one poll serves one
    /// report (a request's records to one partition).
    fn serve_reports(&self) {
        let mut left = self.producer.in_flight_count();
        while left > 0 {
            self.producer.poll(Duration::ZERO);
            let now = self.producer.in_flight_count();
            if now >= left {
                break;
            }
            left = now;
        }
    }

    /// Hands the producer the next request's worth of held records; how
    /// many it took.
    fn hand_over(&mut self) -> Result<usize> {
        self.fenced()?;
        // What each record adds to a request besides its key, value and
        // number: its headers' names and values, and Kafka's framing.
        let overhead = RECORD_FRAMING
            + WRITER_HEADER.len()
            + self.target.id.len()
            + SEQUENCE_HEADER.len()
            + (self.target.headers)
                .iter()
                .map(|(name, text)| name.len() + text.len())
                .sum::<usize>();
        let (mut records, mut bytes) = (0, 0);
        while records < self.hand_records && (records == 0 || bytes < self.hand_bytes) {
            let Some(held) = self.held.next() else { break };
            let seq = held.seq.to_string();
            let mut headers = OwnedHeaders::new_with_capacity(2 + self.target.headers.len())
                .insert(Header {
                    key: WRITER_HEADER,
                    value: Some(self.target.id.as_bytes()),
                })
                .insert(Header {
                    key: SEQUENCE_HEADER,
                    value: Some(seq.as_bytes()),
                });
            for (name, text) in &self.target.headers {
                headers = headers.insert(Header {
                    key: name.as_str(),
                    value: Some(text.as_bytes()),
                });
            }
            let (key, value) = (held.key, held.value);
            let mut record = BaseRecord::to(&self.target.topic)
                .payload(value)
                .headers(headers);
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send(record) {
                Ok(()) => {}
                // The producer's queue is full: the rest waits.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((error, _)) => {
                    return Err(Error::output(format!(
                        "kafka sink `{}`: cannot produce to topic `{}`",
                        self.target.id, self.target.topic
                    ))
                    .caused_by(error))
                }
            }
            records += 1;
            bytes += value.len() + key.map_or(0, <[u8]>::len) + seq.len() + overhead;
            self.held.advance();
        }
        Ok(records)
    }

    /// Waits until every record is handed to the producer and delivered.
    fn flush(&mut self) -> Result<()> {
        self.pump(true)?;
        self.delivered()
    }
}

/// A numeric client setting of the table's `properties`, if given.
fn setting(properties: &[(String, String)], name: &str) -> Option<usize> {
    properties
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .filter(|n| *n > 0)
}

/// The ranges of the lines in `buf` (without their ends).
fn lines(buf: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, byte) in buf.iter().enumerate() {
        if *byte == b'\n' {
            let mut end = i;
            if end > start && buf[end - 1] == b'\r' {
                end -= 1;
            }
            out.push(start..end);
            start = i + 1;
        }
    }
    if start < buf.len() {
        out.push(start..buf.len());
    }
    out
}

/// The partitions of a topic just created, once the broker shows them.
fn wait_for_topic(consumer: &rdkafka::consumer::BaseConsumer, target: &KafkaTarget) -> Result<i32> {
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        if let Some(n) = client::partitions(consumer, &target.brokers, &target.topic)? {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(Error::output(format!(
                "Kafka topic `{}` was created at {} but does not show",
                target.topic, target.brokers
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl KafkaWriter {
    /// In a distributed run: an error once the partition may no longer be
    /// this process's (nothing more is handed to the client).
    fn fenced(&self) -> Result<()> {
        match &self.target.claim {
            Some(claim) if !claim.fence.holds() => Err(Error::Fenced {
                partition: claim.partition,
                why: format!(
                    "kafka sink `{}` writes no more: its partition's lease was not renewed in \
                     time, and another process may take it over",
                    self.target.id
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl RowWriter for KafkaWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let ranges = self.values(batch)?;
        let keys = match &self.target.key {
            None => None,
            Some(name) => Some(key_values(batch, name, &self.target.id)?),
        };
        for (row, range) in ranges.into_iter().enumerate() {
            let value = &self.buf[range];
            let key = keys.as_ref().and_then(|k| k[row].as_deref());
            if self.replayed_left > 0 {
                let record = (key.map(<[u8]>::to_vec), value.to_vec());
                if let Some(seqs) = self.replayed.get_mut(&record) {
                    if seqs.pop().is_some() {
                        self.replayed_left -= 1;
                        continue;
                    }
                }
            }
            self.held.push(key, value, self.state.next);
            self.state.next += 1;
        }
        let full = self.held.full();
        self.pump(full)
    }

    fn will_be_ticked(&mut self) {
        self.ticked = true;
    }

    fn tick(&mut self) -> Result<Option<Duration>> {
        if crate::fault::on(
            crate::fault::Fault::KafkaSinkHoldsBack,
            std::path::Path::new("kafka"),
        ) {
            return Ok(None);
        }
        self.pump(false)?;
        Ok((!self.held.is_empty()).then_some(HOLD_POLL))
    }

    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if self.replayed_left > 0 {
            eprintln!(
                "warning: kafka sink `{}`: {} records written to topic `{}` before the crash \
                 were not given again by the replay; they stay in the topic",
                self.target.id, self.replayed_left, self.target.topic
            );
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<Durable> {
        self.flush()?;
        let last = std::mem::take(&mut self.producer.context().lock().last);
        if self.refreshed.elapsed() >= REFRESH_UNTOUCHED {
            // Partitions it has not written to lately move to their end,
            // past other writers' records: a read-back after this
            // checkpoint does not go through all they wrote since.
            self.refreshed = Instant::now();
            for (partition, at) in self.ahead.iter_mut() {
                if last.contains_key(partition) {
                    continue;
                }
                let client = self.producer.client();
                if let Ok((_, high)) =
                    client.fetch_watermarks(&self.target.topic, *partition, Duration::from_secs(1))
                {
                    *at = (*at).max(high);
                }
            }
        }
        for (partition, offset) in last {
            self.ahead.insert(partition, offset + 1);
        }
        self.state.pending = self.replayed.values().flatten().copied().collect();
        self.state.pending.sort_unstable();
        if self.state.pending.is_empty() {
            self.state.tail = self.ahead.clone();
        }
        let state = serde_json::to_vec(&self.state)
            .map_err(|e| Error::output("cannot record a kafka sink's state").caused_by(e))?;
        Ok(Durable::written(self.state.next).with_state(state))
    }
}

/// Each row's key: the value of column `name` as text (none when null).
fn key_values(batch: &RecordBatch, name: &str, id: &str) -> Result<Vec<Option<Vec<u8>>>> {
    let column = batch.column_by_name(name).ok_or_else(|| {
        Error::output(format!(
            "kafka sink `{id}`: the stream has no field `{name}` for the key"
        ))
    })?;
    let options = arrow::util::display::FormatOptions::default();
    let formatter = arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &options)
        .map_err(|e| Error::output(format!("kafka sink `{id}`: key `{name}`")).caused_by(e))?;
    Ok((0..batch.num_rows())
        .map(|row| (!column.is_null(row)).then(|| formatter.value(row).to_string().into_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lines_are_split_without_their_ends() {
        let buf = b"a\r\nbb\n\nc";
        let parts: Vec<&[u8]> = lines(buf).into_iter().map(|r| &buf[r]).collect();
        assert_eq!(parts, [&b"a"[..], b"bb", b"", b"c"]);
    }
}
