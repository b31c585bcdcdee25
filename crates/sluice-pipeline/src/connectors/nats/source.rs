//! One partition of a NATS JetStream stream, read through a durable pull
//! consumer and acknowledged only once a checkpoint covers it.

use super::store::CutLog;
use super::NatsSourcePlan;
use super::*;
use crate::connectors::replay::Replayable;
use crate::connectors::replay::SourceCounters;
use crate::error::Error;
use crate::error::Result;
use crate::format::TextDecoder;
use crate::rows::Rows;
use crate::side_outputs::Reserved;
use crate::side_outputs::ReservedHandle;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use sluice_nats::Fetched;
use sluice_nats::NatsClient;
use sluice_nats::PullReader;
use std::collections::VecDeque;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
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
                        super::NATS_TIME,
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
        self.counters.add_read(pending.len() as u64);
        self.counters
            .add_bytes(pending.iter().map(|m| m.payload.len() as u64).sum());
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
