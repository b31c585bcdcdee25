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

use crate::checkpoint::{CheckpointStore, Snapshot};
use crate::error::{Error, Result};
use crate::format::TextDecoder;
use crate::plan::NatsSourcePlan;
use crate::rows::Rows;
use crate::side_outputs::{Reserved, ReservedHandle};
use crate::source::{Replayable, SourceCounters};
use sluice::{Batch, BoxError, Source, SourceStatus};
use sluice_nats::coordination::Lease;
use sluice_nats::kv::Bucket;
use sluice_nats::{Fetched, NatsClient, PullReader};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A checkpoint of one partition as stored: a JSON header line, then the
/// entries, each as a little-endian `u32` length and bytes, key then value.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Header {
    fingerprint: String,
    /// 0 while no checkpoint has committed.
    id: u64,
    completed: bool,
    /// Made when the partition's state is first created: part of the
    /// sinks' message ids, so a run started over (`--fresh`) is not taken
    /// for a replay of the earlier one.
    epoch: String,
    owner: String,
    lease: u64,
}

fn encode(header: &Header, entries: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    for (key, value) in entries {
        for part in [key.as_bytes(), value.as_slice()] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

fn decode(bytes: &[u8], what: &str) -> Result<(Header, BTreeMap<String, Vec<u8>>)> {
    let damaged =
        |why: &str| Error::damaged(format!("the checkpoint of {what} is damaged ({why})"));
    let nl = memchr::memchr(b'\n', bytes).ok_or_else(|| damaged("no header"))?;
    let header: Header =
        serde_json::from_slice(&bytes[..nl]).map_err(|e| damaged(&e.to_string()))?;
    let mut entries = BTreeMap::new();
    let mut at = nl + 1;
    let take = |at: &mut usize| -> Result<Vec<u8>> {
        let len = bytes
            .get(*at..*at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| damaged("cut short"))? as usize;
        let part = bytes
            .get(*at + 4..*at + 4 + len)
            .ok_or_else(|| damaged("cut short"))?;
        *at += 4 + len;
        Ok(part.to_vec())
    };
    while at < bytes.len() {
        let key = String::from_utf8(take(&mut at)?).map_err(|_| damaged("a key is not text"))?;
        let value = take(&mut at)?;
        entries.insert(key, value);
    }
    Ok((header, entries))
}

/// A new epoch: the time and the process, in hex.
fn new_epoch() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:x}", nanos ^ (u64::from(std::process::id()) << 40))
}

/// Writes `key` with `make(current)` by compare-and-set until it sticks:
/// after this, anyone who read the key before must fail their own
/// compare-and-set. Returns what was there and the new revision.
fn claim(
    bucket: &Bucket,
    key: &str,
    mut make: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, u64)> {
    let deadline = Instant::now() + RETRY_WITHIN;
    for _ in 0..1000 {
        let current = match bucket.get(key) {
            Ok(current) => current,
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let value = make(current.as_ref().map(|c| c.value.as_slice()))?;
        let written = match &current {
            None => bucket.create(key, value),
            Some(c) => bucket.update_retrying(key, value, c.revision, RETRY_WITHIN),
        };
        match written {
            Ok(Some(revision)) => return Ok((current.map(|c| c.value), revision)),
            Ok(None) => {}
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Err(Error::nats(format!(
        "cannot claim `{key}`: it keeps changing under this process"
    )))
}

/// The checkpoints of one partition, in the state bucket under
/// `ckpt.p<N>`, fenced by compare-and-set.
pub struct PartitionStore {
    bucket: Bucket,
    key: String,
    partition: u32,
    lease: Arc<Lease>,
    header: Mutex<Header>,
    revision: Mutex<u64>,
    restored: Option<Snapshot>,
}

impl PartitionStore {
    /// Takes the partition's state for the holder of `lease`: from now on,
    /// a process that held it before cannot commit. A state written by
    /// another pipeline (another `fingerprint`) is refused.
    pub fn claim(
        bucket: &Bucket,
        partition: u32,
        fingerprint: &str,
        lease: Arc<Lease>,
    ) -> Result<Self> {
        let key = format!("ckpt.p{partition}");
        let what = format!("partition {partition}");
        let mut found: Option<(Header, BTreeMap<String, Vec<u8>>)> = None;
        let mut written = Header::default();
        let (_, revision) = claim(bucket, &key, |current| {
            found = None;
            let mut header = match current {
                None => Header {
                    fingerprint: fingerprint.to_string(),
                    epoch: new_epoch(),
                    ..Header::default()
                },
                Some(bytes) => {
                    let (header, entries) = decode(bytes, &what)?;
                    if header.fingerprint != fingerprint {
                        return Err(Error::damaged(format!(
                            "the state of partition {partition} in bucket `{}` was written by \
                             another pipeline (or this one before a change to its source, \
                             transforms or sinks): it cannot be restored. Starting over \
                             discards the state of every partition",
                            bucket.name()
                        )));
                    }
                    found = Some((header.clone(), entries));
                    header
                }
            };
            header.owner = lease.member().to_string();
            header.lease = lease.revision();
            written = header.clone();
            let entries = found.as_ref().map(|f| f.1.clone()).unwrap_or_default();
            Ok(encode(&header, &entries))
        })?;
        let restored = found
            .filter(|(header, _)| header.id > 0)
            .map(|(header, entries)| Snapshot {
                id: header.id,
                completed: header.completed,
                entries,
            });
        let header = written;
        Ok(Self {
            bucket: bucket.clone(),
            key,
            partition,
            lease,
            header: Mutex::new(header),
            revision: Mutex::new(revision),
            restored,
        })
    }

    /// The epoch of the partition's state (see the sinks' message ids).
    pub fn epoch(&self) -> String {
        lock(&self.header).epoch.clone()
    }

    /// True when the partition's run completed.
    pub fn completed(&self) -> bool {
        self.restored.as_ref().is_some_and(|s| s.completed)
    }
}

impl CheckpointStore for PartitionStore {
    fn load(&self) -> Result<Option<Snapshot>> {
        if crate::fault::on(
            crate::fault::Fault::SkipPartitionResume,
            std::path::Path::new(""),
        ) {
            return Ok(None);
        }
        Ok(self.restored.clone())
    }

    fn commit(&self, snapshot: &Snapshot) -> Result<()> {
        if !self.lease.is_valid() {
            return Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "its lease was not renewed in time, so checkpoint {} is not committed",
                    snapshot.id
                ),
            });
        }
        let mut header = lock(&self.header).clone();
        header.id = snapshot.id;
        header.completed = snapshot.completed;
        header.lease = self.lease.revision();
        let value = encode(&header, &snapshot.entries);
        let mut revision = lock(&self.revision);
        match self
            .bucket
            .update_retrying(&self.key, value, *revision, RETRY_WITHIN)?
        {
            Some(next) => {
                *revision = next;
                *lock(&self.header) = header;
                Ok(())
            }
            None => Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "another process took it over, and checkpoint {} is not committed here",
                    snapshot.id
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("key `{}` of bucket `{}`", self.key, self.bucket.name())
    }
}

/// Whether partition `partition`'s run completed, from the state bucket.
pub fn partition_completed(bucket: &Bucket, partition: u32) -> Result<bool> {
    let what = format!("partition {partition}");
    match bucket.get(&format!("ckpt.p{partition}"))? {
        None => Ok(false),
        Some(v) => Ok(decode(&v.value, &what)?.0.completed),
    }
}

/// Where the partial chunks of a partition were cut since its last
/// checkpoint, and where a `caught-up` partition ends; under `cuts.p<N>`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Cuts {
    /// The last stream sequence a `caught-up` partition reads.
    end: Option<u64>,
    /// Stream sequences of the last message of each partial chunk.
    cuts: Vec<u64>,
    /// Who claimed the log, under which lease revision: every claim
    /// writes new bytes, so a compare-and-set whose answer was lost can
    /// never mistake another's claim for its own write.
    #[serde(default)]
    owner: String,
    #[serde(default)]
    lease: u64,
    /// The durable consumer the owner reads the partition with (one per
    /// claim, so an earlier owner's pulls cannot take the new one's
    /// messages).
    #[serde(default)]
    consumer: Option<String>,
}

/// The log of a partition's partial cuts (see the module's documentation).
pub struct CutLog {
    bucket: Bucket,
    partition: u32,
    key: String,
    revision: u64,
    cuts: Cuts,
    /// The consumer of the previous owner, to delete.
    previous_consumer: Option<String>,
}

impl CutLog {
    /// Takes the partition's log (fencing the previous owner's writes);
    /// `end` gives the end of a `caught-up` partition when it starts for
    /// the first time.
    pub fn claim(
        bucket: &Bucket,
        partition: u32,
        lease: &Lease,
        consumer: &str,
        end: impl Fn() -> Result<Option<u64>>,
    ) -> Result<Self> {
        let key = format!("cuts.p{partition}");
        let mut cuts = Cuts::default();
        let mut previous_consumer = None;
        let (_, revision) = claim(bucket, &key, |current| {
            cuts = match current {
                Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                    Error::damaged(format!(
                        "the cut log of partition {partition} is damaged ({e})"
                    ))
                })?,
                None => Cuts {
                    end: end()?,
                    ..Cuts::default()
                },
            };
            previous_consumer = cuts.consumer.take().filter(|c| c != consumer);
            cuts.owner = lease.member().to_string();
            cuts.lease = lease.revision();
            cuts.consumer = Some(consumer.to_string());
            Ok(serde_json::to_vec(&cuts).unwrap_or_default())
        })?;
        Ok(Self {
            bucket: bucket.clone(),
            partition,
            key,
            revision,
            cuts,
            previous_consumer,
        })
    }

    /// The consumer the previous owner read the partition with, if it was
    /// another one: the new owner deletes it.
    pub fn previous_consumer(&self) -> Option<&str> {
        self.previous_consumer.as_deref()
    }

    /// Records a cut after `sequence`, forgetting the cuts at or before
    /// `committed` (the position of the last committed checkpoint). An
    /// error if another process has taken the partition.
    fn record(&mut self, sequence: u64, committed: u64) -> Result<()> {
        self.cuts.cuts.retain(|&c| c > committed);
        self.cuts.cuts.push(sequence);
        let value = serde_json::to_vec(&self.cuts).unwrap_or_default();
        match self
            .bucket
            .update_retrying(&self.key, value, self.revision, RETRY_WITHIN)?
        {
            Some(revision) => {
                self.revision = revision;
                Ok(())
            }
            None => Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "another process took it over (its cut log `{}` changed)",
                    self.key
                ),
            }),
        }
    }

    /// The first logged cut after `sequence`.
    fn next_after(&self, sequence: u64) -> Option<u64> {
        self.cuts
            .cuts
            .iter()
            .copied()
            .filter(|&c| c > sequence)
            .min()
    }
}

/// One partition of a NATS source.
pub struct NatsSource {
    plan: NatsSourcePlan,
    partition: u32,
    durable: String,
    client: NatsClient,
    reader: Option<PullReader>,
    decoder: TextDecoder,
    chunk_rows: usize,
    interval: Duration,
    /// The stream sequence of the last message emitted.
    emitted: u64,
    /// The position of the last committed checkpoint.
    committed: u64,
    log: CutLog,
    pending: Vec<Fetched>,
    /// Delivered and not yet looked at (a reader hands several at once).
    inbox: VecDeque<Fetched>,
    waiting_since: Option<Instant>,
    /// The last message emitted: what a checkpoint taken now covers.
    last: Mutex<Option<Fetched>>,
    /// The last message of each checkpoint in flight, acknowledged (with
    /// all before it) when that checkpoint commits.
    to_ack: Mutex<VecDeque<Option<Fetched>>>,
    done: bool,
    /// Reads have failed since then (a failover in progress).
    failing_since: Option<Instant>,
    /// Nothing has come since then.
    quiet_since: Option<Instant>,
    /// The consumer sequence the reader's next delivery must have.
    next_delivery: u64,
    region: Vec<u8>,
    reserved: ReservedHandle,
    counters: Arc<SourceCounters>,
}

impl NatsSource {
    /// Partition `partition` of `plan`'s stream, read by the durable
    /// consumer `durable`, chunked like the file sources.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: NatsSourcePlan,
        partition: u32,
        durable: String,
        log: CutLog,
        decoder: TextDecoder,
        chunk_rows: usize,
        interval: Duration,
        reserved: Arc<Reserved>,
        counters: Arc<SourceCounters>,
    ) -> Result<Self> {
        let client = NatsClient::shared(&plan.url)?;
        Ok(Self {
            plan,
            partition,
            durable,
            client,
            reader: None,
            decoder,
            chunk_rows: chunk_rows.max(1),
            interval,
            emitted: 0,
            committed: 0,
            log,
            pending: Vec::new(),
            inbox: VecDeque::new(),
            waiting_since: None,
            last: Mutex::new(None),
            to_ack: Mutex::new(VecDeque::new()),
            done: false,
            failing_since: None,
            quiet_since: None,
            next_delivery: 1,
            region: Vec::new(),
            reserved: ReservedHandle::new(reserved),
            counters,
        })
    }

    fn reader(&mut self) -> Result<&mut PullReader> {
        if self.reader.is_none() {
            let filter = self.plan.stream.partition_filter(self.partition);
            // Read from what is already pending, or the last emitted.
            let start = self.pending.last().map_or(self.emitted, |m| m.sequence) + 1;
            let deadline = Instant::now() + RETRY_WITHIN;
            let reader = loop {
                match self.client.pull_reader(
                    &self.plan.stream.name,
                    &self.durable,
                    &filter,
                    start,
                    self.plan.max_ack_pending,
                    ACK_WAIT,
                ) {
                    Ok(reader) => break reader,
                    Err(e) if Instant::now() >= deadline => return Err(e.into()),
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            self.reader = Some(reader);
            self.next_delivery = 1;
        }
        match self.reader.as_mut() {
            Some(reader) => Ok(reader),
            None => unreachable!("made above"),
        }
    }

    /// Drops the reader and what it delivered beyond the pending chunk: the
    /// next one starts after the newest message held.
    fn reset_reader(&mut self) {
        self.reader = None;
        self.inbox.clear();
    }

    /// True once a `caught-up` partition has read everything up to its end.
    ///
    /// Called after a second without messages. The reader is made anew at
    /// the position (a consumer whose leader moved in a failover can go
    /// quiet, and a message delivered while a connection failed can be
    /// lost in transit); a new consumer that has neither undelivered nor
    /// delivered messages proves there is nothing after the position.
    fn caught_up(&mut self) -> Result<bool> {
        let end = self.log.cuts.end;
        if end.is_some_and(|end| self.emitted >= end) {
            return Ok(true);
        }
        if end.is_none() {
            // Read forever: a reader is made anew only when it is stuck
            // (quiet while the server holds messages for it).
            match self.reader()?.pending() {
                Ok((0, _)) => {}
                _ => self.reader = None,
            }
            return Ok(false);
        }
        self.reset_reader();
        let Ok((undelivered, unacknowledged)) = self.reader()?.pending() else {
            self.reset_reader();
            return Ok(false);
        };
        Ok(end.is_some() && undelivered == 0 && unacknowledged == 0)
    }

    /// Decodes the pending messages as one chunk.
    fn emit(&mut self, out: &mut Batch<Rows>) {
        let pending = std::mem::take(&mut self.pending);
        let Some(newest) = pending.last().map(|m| m.sequence) else {
            return;
        };
        self.region.clear();
        let mut lines: Vec<(u64, Range<usize>)> = Vec::with_capacity(pending.len());
        for message in &pending {
            let start = self.region.len();
            let payload = message.payload.as_ref();
            let body = payload.trim_ascii_start();
            match (self.plan.message_time, body.first()) {
                (true, Some(b'{')) => {
                    let _ = write!(
                        self.region,
                        "{{\"{}\":{},",
                        crate::plan::NATS_TIME,
                        message.published_ms
                    );
                    let rest = &body[1..];
                    // `{}`: no comma after the added field.
                    if rest.trim_ascii_start().first() == Some(&b'}') {
                        self.region.pop();
                    }
                    self.region.extend_from_slice(rest);
                }
                _ => self.region.extend_from_slice(payload),
            }
            // A payload's newlines are JSON whitespace; lines end records.
            for byte in &mut self.region[start..] {
                if *byte == b'\n' || *byte == b'\r' {
                    *byte = b' ';
                }
            }
            lines.push((message.sequence, start..self.region.len()));
            self.region.push(b'\n');
        }
        self.counters
            .read
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        self.counters.bytes.fetch_add(
            pending.iter().map(|m| m.payload.len() as u64).sum(),
            Ordering::Relaxed,
        );
        let decoded = self.decoder.decode(&self.region, &lines);
        self.counters
            .decoded_into(decoded.rows.as_ref(), &decoded.dead);
        self.reserved.dead(&decoded.dead);
        if let Some(rows) = decoded.rows {
            let time = rows.max_time().unwrap_or(i64::MIN);
            out.push(rows, time);
        }
        self.emitted = newest;
        *lock(&self.last) = pending.into_iter().last();
    }
}

impl Source<Rows> for NatsSource {
    /// A poll waits for messages from the server (up to the batch
    /// interval): a thread of its own.
    fn blocking(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.done {
            return Ok(SourceStatus::Exhausted);
        }
        let end = self.log.cuts.end;
        let replay_cut = self.log.next_after(self.emitted);
        loop {
            let newest = self.pending.last().map_or(self.emitted, |m| m.sequence);
            if self.pending.len() >= self.chunk_rows || replay_cut.is_some_and(|c| newest >= c) {
                break;
            }
            let wait = match self.waiting_since {
                None => self.interval,
                Some(since) => self.interval.saturating_sub(since.elapsed()),
            };
            let want = self.chunk_rows.saturating_sub(self.pending.len()).max(1);
            let next = match self.inbox.pop_front() {
                Some(message) => Ok(Some(message)),
                None => self.reader()?.next_batch(want, wait).map(|batch| {
                    self.inbox.extend(batch);
                    self.inbox.pop_front()
                }),
            };
            let next = match next {
                Ok(next) => next,
                Err(error) => {
                    // A failover: read again from a new consumer (the
                    // messages after the newest one held).
                    if self
                        .failing_since
                        .get_or_insert_with(Instant::now)
                        .elapsed()
                        > RETRY_WITHIN
                    {
                        return Err(Error::from(error).into());
                    }
                    self.reset_reader();
                    return Ok(SourceStatus::Idle);
                }
            };
            self.failing_since = None;
            if let Some(message) = &next {
                if message.consumer_sequence != self.next_delivery {
                    // A delivery was lost in transit (a reconnect): what
                    // came after it must not be taken for the next message.
                    // Read again after the newest message held.
                    self.reset_reader();
                    return Ok(SourceStatus::Idle);
                }
                self.next_delivery += 1;
            }
            match next {
                // A repeat (the server resends what an earlier owner did
                // not acknowledge): already read.
                Some(message) if message.sequence <= newest => {}
                Some(message) if end.is_some_and(|e| message.sequence > e) => {
                    self.done = true;
                    break;
                }
                Some(message) => {
                    self.quiet_since = None;
                    // Nothing of the partition came after it: every message
                    // up to the end (all in the stream since the start) is
                    // read. (A replay cuts here too: its next message, if
                    // any, is past the end.)
                    let last = end.is_some() && message.pending == 0;
                    self.pending.push(message);
                    self.waiting_since.get_or_insert_with(Instant::now);
                    if last {
                        self.done = true;
                        break;
                    }
                }
                None if self.pending.is_empty() => {
                    self.waiting_since = None;
                    // Asking the server costs a round trip: at most once
                    // per second of silence.
                    let quiet = self.quiet_since.get_or_insert_with(Instant::now);
                    if quiet.elapsed() < Duration::from_secs(1) {
                        return Ok(SourceStatus::Idle);
                    }
                    self.quiet_since = None;
                    if self.caught_up()? {
                        self.done = true;
                        return Ok(SourceStatus::Exhausted);
                    }
                    return Ok(SourceStatus::Idle);
                }
                // A replay waits for its logged cut: those messages exist.
                None if replay_cut.is_some() => return Ok(SourceStatus::Idle),
                None => {
                    // A partial chunk waited out the interval: timing cut
                    // it, so the cut is logged before anything is emitted.
                    self.log.record(newest, self.committed)?;
                    break;
                }
            }
        }
        self.waiting_since = None;
        self.emit(out);
        Ok(if self.done && out.is_empty() {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }
}

impl Replayable for NatsSource {
    fn position(&self) -> serde_json::Value {
        // Called when a checkpoint is taken: its acknowledgement waits.
        lock(&self.to_ack).push_back(lock(&self.last).take());
        serde_json::json!({ "sequence": self.emitted })
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let sequence = position["sequence"].as_u64().ok_or_else(|| {
            Error::damaged("the checkpointed position has no `sequence`: the state is damaged")
        })?;
        self.emitted = sequence;
        self.committed = sequence;
        self.reset_reader();
        Ok(())
    }

    fn release_reserved(&self) {
        self.reserved.release();
    }

    fn resize(&mut self, rows: usize, wait: Duration) {
        self.chunk_rows = rows.max(1);
        self.interval = wait;
    }

    fn committed(&mut self) -> Result<()> {
        let acked = lock(&self.to_ack).pop_front().flatten();
        if let Some(message) = acked {
            self.committed = self.committed.max(message.sequence);
            // A lost ack is harmless: the next one covers it (ack-all),
            // and a consumer made anew starts after the checkpoint.
            let _ = message.ack();
        }
        Ok(())
    }
}
