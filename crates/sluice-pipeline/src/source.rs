//! Sources of rows: text files and stdin (JSON lines, CSV), Parquet files,
//! and generators.

use crate::error::{Error, Result};
use crate::format::{row_json, with_times, DeadLetter, EventTime, TextDecoder};
use crate::rows::Rows;
use crate::side_outputs::{Reserved, ReservedHandle};
use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use crossbeam_channel::{Receiver, TryRecvError};
use sluice::{Batch, BoxError, Source, SourceStatus};
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters a source keeps for the run's summary and progress bar.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records read (decoded or not).
    pub read: AtomicU64,
    /// Records decoded into rows.
    pub decoded: AtomicU64,
    /// Records the decoder refused (dead letters).
    pub dead_letter: AtomicU64,
    /// Bytes read, for the progress bar.
    pub bytes: AtomicU64,
}

impl SourceCounters {
    /// Counts what a decoder made of a region: `rows`, and `dead` records.
    pub fn decoded_into(&self, rows: Option<&Rows>, dead: &[crate::format::DeadLetter]) {
        let decoded = rows.map_or(0, Rows::len) as u64;
        self.decoded.fetch_add(decoded, Ordering::Relaxed);
        self.dead_letter
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
    }
}

/// Where a text source's bytes come from.
pub enum Bytes {
    /// A file, read as fast as the dataflow takes it.
    File(std::fs::File),
    /// Blocks from a reader thread (stdin): a poll never blocks.
    Feed(Receiver<std::io::Result<Vec<u8>>>),
}

impl Bytes {
    /// Standard input, read on a thread of its own.
    pub fn stdin() -> Bytes {
        let (tx, rx) = crossbeam_channel::bounded(16);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut block = vec![0u8; 1 << 16];
                match stdin.read(&mut block) {
                    Ok(0) => break,
                    Ok(n) => {
                        block.truncate(n);
                        if tx.send(Ok(block)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        Bytes::Feed(rx)
    }
}

/// What a read of more bytes found.
enum More {
    Read,
    Nothing,
    End,
}

/// JSON lines or CSV from a file or stdin, in chunks of `chunk_rows` lines.
pub struct TextSource {
    bytes: Bytes,
    buf: Vec<u8>,
    /// The input offset of `buf[0]`.
    base: u64,
    /// Bytes of `buf` already consumed.
    start: usize,
    eof: bool,
    /// The number of the next line to read.
    line: u64,
    /// Lines to skip first (a CSV header).
    skip: usize,
    decoder: TextDecoder,
    chunk_rows: usize,
    /// The longest a partial chunk waits for more lines (stdin).
    interval: Duration,
    waiting_since: Option<Instant>,
    reserved: ReservedHandle,
    counters: Arc<SourceCounters>,
    path: String,
    lines: Vec<(u64, Range<usize>)>,
}

impl TextSource {
    /// A source decoding `bytes` with `decoder`; `skip` header lines.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bytes: Bytes,
        path: String,
        decoder: TextDecoder,
        skip: usize,
        chunk_rows: usize,
        interval: Duration,
        reserved: Arc<Reserved>,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self {
            bytes,
            buf: Vec::with_capacity(1 << 20),
            base: 0,
            start: 0,
            eof: false,
            line: 1,
            skip,
            decoder,
            chunk_rows: chunk_rows.max(1),
            interval,
            waiting_since: None,
            reserved: ReservedHandle::new(reserved),
            counters,
            path,
            lines: Vec::new(),
        }
    }

    fn read_more(&mut self) -> Result<More, BoxError> {
        if self.eof {
            return Ok(More::End);
        }
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
        match &mut self.bytes {
            Bytes::File(file) => {
                let len = self.buf.len();
                self.buf.resize(len + (1 << 20), 0);
                let n = loop {
                    match file.read(&mut self.buf[len..]) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            self.buf.truncate(len);
                            return Err(Error::input(format!("cannot read {}", self.path))
                                .caused_by(e)
                                .into());
                        }
                    }
                };
                self.buf.truncate(len + n);
                self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if n == 0 {
                    self.eof = true;
                    return Ok(More::End);
                }
                Ok(More::Read)
            }
            Bytes::Feed(rx) => match rx.try_recv() {
                Ok(Ok(block)) => {
                    self.counters
                        .bytes
                        .fetch_add(block.len() as u64, Ordering::Relaxed);
                    self.buf.extend_from_slice(&block);
                    Ok(More::Read)
                }
                Ok(Err(e)) => Err(Error::input(format!("cannot read {}", self.path))
                    .caused_by(e)
                    .into()),
                Err(TryRecvError::Empty) => Ok(More::Nothing),
                Err(TryRecvError::Disconnected) => {
                    self.eof = true;
                    Ok(More::End)
                }
            },
        }
    }

    /// The complete, non-blank lines from `start`, counted up to `limit`.
    fn complete_lines(&self, limit: usize) -> usize {
        let data = &self.buf[self.start..];
        let (mut at, mut count) = (0, 0);
        for nl in memchr::memchr_iter(b'\n', data) {
            if !is_blank(&data[at..nl]) {
                count += 1;
                if count >= limit {
                    break;
                }
            }
            at = nl + 1;
        }
        count
    }

    /// Finds up to `chunk_rows` complete lines from `start`; returns the
    /// end of the last one (after its newline).
    fn scan_lines(&mut self) -> usize {
        self.lines.clear();
        let mut at = self.start;
        let mut line = self.line;
        let data = &self.buf;
        while self.lines.len() < self.chunk_rows {
            let Some(nl) = memchr::memchr(b'\n', &data[at..]) else {
                if self.eof && at < data.len() {
                    // The last line, without its newline.
                    let end = data.len();
                    if !is_blank(&data[at..end]) {
                        if self.skip > 0 {
                            self.skip -= 1;
                        } else {
                            self.lines.push((line, at..trim_cr(data, at, end)));
                        }
                    }
                    at = end;
                    line += 1;
                }
                break;
            };
            let end = at + nl;
            if !is_blank(&data[at..end]) {
                if self.skip > 0 {
                    self.skip -= 1;
                } else {
                    self.lines.push((line, at..trim_cr(data, at, end)));
                }
            }
            at = end + 1;
            line += 1;
        }
        self.line = line;
        at
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn trim_cr(data: &[u8], start: usize, end: usize) -> usize {
    if end > start && data[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

impl Source<Rows> for TextSource {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        // Gather enough bytes for a full chunk, or what there is.
        // Chunks end where `chunk_rows` records do, wherever reads end: a
        // run resumed from a checkpoint cuts the same chunks (unless the
        // adaptive mode resizes them, which follows timing).
        let wanted = self.chunk_rows + self.skip;
        loop {
            let complete = self.complete_lines(wanted);
            if complete >= wanted || self.eof {
                break;
            }
            match self.read_more()? {
                More::Read => {}
                More::End => break,
                More::Nothing => {
                    // Stdin with a partial chunk: wait up to the interval.
                    if complete == 0 {
                        self.waiting_since = None;
                        return Ok(SourceStatus::Idle);
                    }
                    let since = *self.waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < self.interval {
                        return Ok(SourceStatus::Idle);
                    }
                    break;
                }
            }
        }
        self.waiting_since = None;
        let region_start = self.start;
        let end = self.scan_lines();
        self.start = end;
        if self.lines.is_empty() {
            return Ok(if self.eof && self.start >= self.buf.len() {
                SourceStatus::Exhausted
            } else {
                SourceStatus::Ready
            });
        }
        // Ranges relative to the region.
        let region = &self.buf[region_start..end];
        let lines: Vec<(u64, Range<usize>)> = self
            .lines
            .iter()
            .map(|(n, r)| (*n, r.start - region_start..r.end - region_start))
            .collect();
        self.counters
            .read
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        let decoded = self.decoder.decode(region, &lines);
        self.counters
            .decoded_into(decoded.rows.as_ref(), &decoded.dead);
        self.reserved.dead(&decoded.dead);
        if let Some(rows) = decoded.rows {
            push(out, rows);
        }
        Ok(SourceStatus::Ready)
    }
}

impl Replayable for TextSource {
    fn resize(&mut self, rows: usize, wait: Duration) {
        self.chunk_rows = rows.max(1);
        self.interval = wait;
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({
            "offset": self.base + self.start as u64,
            "line": self.line,
            "skip": self.skip,
        })
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let field = |name: &str| {
            position[name].as_u64().ok_or_else(|| {
                Error::damaged(format!(
                    "the checkpointed position has no `{name}`: the state is damaged"
                ))
            })
        };
        let (offset, line, skip) = (field("offset")?, field("line")?, field("skip")?);
        if let Bytes::File(file) = &mut self.bytes {
            use std::io::Seek;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offset {
                return Err(Error::damaged(format!(
                    "{} is shorter ({len} bytes) than the checkpoint's position ({offset} \
                     bytes): the input changed since the checkpoint. Restore it, or start \
                     over",
                    self.path
                )));
            }
            file.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| Error::input(format!("cannot seek in {}", self.path)).caused_by(e))?;
            self.counters.bytes.store(offset, Ordering::Relaxed);
        }
        // Stdin cannot go back: reading goes on with what comes next.
        self.buf.clear();
        self.base = offset;
        self.start = 0;
        self.eof = false;
        self.line = line;
        self.skip = skip as usize;
        Ok(())
    }

    fn release_reserved(&self) {
        self.reserved.release();
    }
}

/// A source whose position can be recorded and restored: what a
/// checkpoint needs to replay it.
pub trait Replayable {
    /// The position after everything emitted so far.
    fn position(&self) -> serde_json::Value;
    /// Goes to `position`, as returned by [`Replayable::position`].
    fn seek(&mut self, position: &serde_json::Value) -> Result<()>;
    /// Writes the dead letters held since the last barrier.
    fn release_reserved(&self) {}
    /// Sets the rows per chunk and how long a partial chunk waits for more
    /// input: how the adaptive mode steers the source.
    fn resize(&mut self, _rows: usize, _wait: Duration) {}
    /// The checkpoint whose position was taken last has committed: a
    /// source that acknowledges its input (NATS) does so now, never before.
    fn committed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A source of rows that can be replayed.
pub trait ReplayableSource: Source<Rows> + Replayable {}

impl<S: Source<Rows> + Replayable> ReplayableSource for S {}

impl Replayable for Box<dyn ReplayableSource> {
    fn position(&self) -> serde_json::Value {
        (**self).position()
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        (**self).seek(position)
    }
    fn release_reserved(&self) {
        (**self).release_reserved()
    }
    fn resize(&mut self, rows: usize, wait: Duration) {
        (**self).resize(rows, wait)
    }
    fn committed(&mut self) -> Result<()> {
        (**self).committed()
    }
}

/// A source with checkpoints: after a poll, when one is due, it records
/// its position and the latest event time it emitted (where the watermark
/// goes on from) and injects a barrier. On a graceful stop it stops
/// reading and injects a last barrier.
pub struct Checkpointed<S> {
    inner: S,
    checkpointing: Option<Arc<crate::checkpoint::Checkpointing>>,
    max_time: i64,
    /// The input is done: no more barriers.
    exhausted: bool,
    /// The last checkpoint the source was told had committed.
    acknowledged: u64,
    /// Records read by this run, counted where they are framed.
    read: Option<Arc<SourceCounters>>,
    /// Records read before the checkpoint the run resumed from.
    read_before: u64,
}

impl<S: Replayable> Checkpointed<S> {
    /// `inner`, checkpointed when `checkpointing` is given.
    pub fn new(inner: S, checkpointing: Option<Arc<crate::checkpoint::Checkpointing>>) -> Self {
        Self {
            inner,
            checkpointing,
            max_time: i64::MIN,
            exhausted: false,
            acknowledged: 0,
            read: None,
            read_before: 0,
        }
    }

    /// Records in each checkpoint how many records had been read, from
    /// the start of the input: `counters` counts this run's.
    pub fn counting(mut self, counters: Arc<SourceCounters>) -> Self {
        self.read = Some(counters);
        self
    }

    /// Records read before the checkpoint the run resumed from: this run
    /// does not read them again.
    pub fn read_before(&self) -> u64 {
        self.read_before
    }

    /// Resumes from a checkpointed position; returns the latest event time
    /// emitted before it.
    pub fn restore(&mut self, position: &[u8]) -> Result<Option<i64>> {
        let value: serde_json::Value = serde_json::from_slice(position).map_err(|e| {
            Error::damaged(format!("the checkpointed source position is damaged ({e})"))
        })?;
        self.inner.seek(&value["inner"])?;
        self.max_time = value["max_time"].as_i64().unwrap_or(i64::MIN);
        self.read_before = value["read"].as_u64().unwrap_or(0);
        Ok((self.max_time != i64::MIN).then_some(self.max_time))
    }
}

impl<S: Source<Rows> + Replayable> Source<Rows> for Checkpointed<S> {
    fn poll(&mut self, out: &mut Batch<Rows>, max: usize) -> Result<SourceStatus, BoxError> {
        if let Some(checkpointing) = &self.checkpointing {
            checkpointing.check()?;
            if let Some(last) = checkpointing.last().filter(|l| l.id > self.acknowledged) {
                // One call per checkpoint committed since the last poll.
                let first = if self.acknowledged == 0 {
                    checkpointing.restored().unwrap_or(0) + 1
                } else {
                    self.acknowledged + 1
                };
                for _ in first.min(last.id)..=last.id {
                    self.inner.committed()?;
                }
                self.acknowledged = last.id;
            }
        }
        if self.exhausted {
            // What the operators release at the end must not be in a
            // checkpoint still in flight: end once it has committed.
            if self.checkpointing.as_ref().is_some_and(|c| c.in_flight()) {
                return Ok(SourceStatus::Idle);
            }
            self.inner.release_reserved();
            return Ok(SourceStatus::Exhausted);
        }
        if let Some(checkpointing) = self.checkpointing.as_ref().filter(|c| c.stopping()) {
            // Graceful stop: read nothing more; once the last checkpoint
            // has committed, end the run without releasing any state.
            if let Some(id) = checkpointing.stopped() {
                return Err(Error::Stopped(id).into());
            }
            return Ok(SourceStatus::Idle);
        }
        let status = self.inner.poll(out, max)?;
        if let Some(time) = out.max_time() {
            self.max_time = self.max_time.max(time);
        }
        if status == SourceStatus::Exhausted {
            self.exhausted = true;
            return Ok(if out.is_empty() {
                SourceStatus::Idle
            } else {
                SourceStatus::Ready
            });
        }
        Ok(status)
    }

    fn exact_len(&self) -> Option<u64> {
        self.inner.exact_len()
    }

    fn blocking(&self) -> bool {
        self.inner.blocking()
    }

    fn barrier(&mut self) -> Result<Option<sluice::Barrier>, BoxError> {
        let Some(checkpointing) = self.checkpointing.as_ref().filter(|_| !self.exhausted) else {
            return Ok(None);
        };
        let Some(id) = checkpointing.due()? else {
            return Ok(None);
        };
        self.inner.release_reserved();
        let read = self
            .read
            .as_ref()
            .map_or(0, |r| r.read.load(Ordering::Relaxed));
        let position = serde_json::json!({
            "inner": self.inner.position(),
            "max_time": self.max_time,
            "read": self.read_before + read,
        });
        checkpointing.report(
            id,
            vec![("source".into(), position.to_string().into_bytes())],
        )?;
        Ok(Some(sluice::Barrier { id }))
    }
}

/// Appends a chunk of rows with its largest event time.
fn push(out: &mut Batch<Rows>, rows: Rows) {
    let time = rows.max_time().unwrap_or(i64::MIN);
    out.push(rows, time);
}

/// Rows of a Parquet file. The reader decodes batches of `read_rows`; the
/// source hands them on in chunks of `chunk_rows` (zero-copy slices), so the
/// adaptive mode can resize chunks while the file is read.
pub struct ParquetSource {
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// The rest of a decoded batch not handed on yet.
    held: Option<RecordBatch>,
    chunk_rows: usize,
    time: EventTime,
    origin: String,
    next_row: u64,
    reserved: ReservedHandle,
    counters: Arc<SourceCounters>,
    path: String,
}

impl ParquetSource {
    /// Opens `path`, decoding `read_rows` rows at a time and handing on
    /// chunks of `chunk_rows`.
    pub fn open(
        path: &std::path::Path,
        read_rows: usize,
        chunk_rows: usize,
        time: EventTime,
        reserved: Arc<Reserved>,
        counters: Arc<SourceCounters>,
    ) -> Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot read {}", path.display())).caused_by(e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(read_rows.max(1)).build())
            .map_err(|e| {
                Error::input(format!("cannot read {} as Parquet", path.display())).caused_by(e)
            })?;
        Ok(Self {
            reader,
            held: None,
            chunk_rows: chunk_rows.max(1),
            time,
            origin: "source".into(),
            next_row: 1,
            reserved: ReservedHandle::new(reserved),
            counters,
            path: path.display().to_string(),
        })
    }

    /// The next decoded rows: what is held, else a new batch.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if let Some(batch) = self.held.take() {
            return Ok(Some(batch));
        }
        match self.reader.next() {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => Err(Error::input(format!("cannot read {}", self.path)).caused_by(e)),
            None => Ok(None),
        }
    }

    /// Skips the first `rows` rows (to resume after a checkpoint).
    fn skip_rows(&mut self, rows: u64) -> Result<()> {
        let mut left = rows;
        while left > 0 {
            match self.next_batch()? {
                Some(batch) => {
                    let n = batch.num_rows() as u64;
                    if n > left {
                        let cut = left as usize;
                        self.held = Some(batch.slice(cut, batch.num_rows() - cut));
                        left = 0;
                    } else {
                        left -= n;
                    }
                }
                None => {
                    return Err(Error::damaged(format!(
                        "{} has fewer rows than the checkpoint's position ({rows}): the input \
                         changed since the checkpoint",
                        self.path
                    )))
                }
            }
        }
        self.next_row = rows + 1;
        Ok(())
    }

    /// The schema of a Parquet file.
    pub fn schema(path: &std::path::Path) -> Result<SchemaRef> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot read {}", path.display())).caused_by(e))?;
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map(|b| b.schema().clone())
            .map_err(|e| {
                Error::input(format!("cannot read {} as Parquet", path.display())).caused_by(e)
            })
    }
}

impl Source<Rows> for ParquetSource {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        let Some(mut batch) = self.next_batch()? else {
            return Ok(SourceStatus::Exhausted);
        };
        if batch.num_rows() > self.chunk_rows {
            let rest = batch.num_rows() - self.chunk_rows;
            self.held = Some(batch.slice(self.chunk_rows, rest));
            batch = batch.slice(0, self.chunk_rows);
        }
        let n = batch.num_rows() as u64;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        let lines: Vec<u64> = (self.next_row..self.next_row + n).collect();
        self.next_row += n;
        let mut dead: Vec<DeadLetter> = Vec::new();
        let rows = with_times(
            &self.time,
            &self.origin,
            batch.clone(),
            lines,
            &mut dead,
            |row| row_json(&batch, row),
        );
        self.counters.decoded_into(rows.as_ref(), &dead);
        self.reserved.dead(&dead);
        if let Some(rows) = rows {
            push(out, rows);
        }
        Ok(SourceStatus::Ready)
    }
}

impl Replayable for ParquetSource {
    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "rows": self.next_row - 1 })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let rows = position["rows"]
            .as_u64()
            .ok_or_else(|| Error::damaged("the checkpointed Parquet position is damaged"))?;
        self.skip_rows(rows)
    }
    fn release_reserved(&self) {
        self.reserved.release();
    }
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }
}

/// Synthetic sensor readings: `sensor` (string), `temperature` (float64),
/// `ts` (int64 epoch ms), reproducible from a seed.
pub struct GeneratorSource {
    schema: SchemaRef,
    remaining: u64,
    next: u64,
    keys: u64,
    interval_ms: u64,
    state: u64,
    chunk_rows: usize,
    counters: Arc<SourceCounters>,
}

impl GeneratorSource {
    /// `events` readings over `keys` sensors, one every `interval_ms`.
    pub fn new(
        events: u64,
        keys: u64,
        seed: u64,
        interval_ms: u64,
        chunk_rows: usize,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self {
            schema: Self::schema(),
            remaining: events,
            next: 0,
            keys: keys.max(1),
            interval_ms,
            state: seed,
            chunk_rows: chunk_rows.max(1),
            counters,
        }
    }

    /// The generator's fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("sensor", DataType::Utf8, false),
            Field::new("temperature", DataType::Float64, false),
            Field::new("ts", DataType::Int64, false),
        ]))
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64: small, fast, and the same on every platform.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source<Rows> for GeneratorSource {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.remaining == 0 {
            return Ok(SourceStatus::Exhausted);
        }
        let n = (self.chunk_rows as u64).min(self.remaining);
        let mut sensors = Vec::with_capacity(n as usize);
        let mut temps = Vec::with_capacity(n as usize);
        let mut times = Vec::with_capacity(n as usize);
        for i in 0..n {
            let r = self.next_random();
            sensors.push(format!("sensor-{}", r % self.keys));
            // 15.0 .. 95.0 degrees, in steps of 0.1.
            temps.push(15.0 + ((r >> 20) % 800) as f64 / 10.0);
            times.push(((self.next + i) * self.interval_ms) as i64);
        }
        let lines = UInt64Array::from_iter_values(self.next + 1..=self.next + n);
        self.next += n;
        self.remaining -= n;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        self.counters.decoded.fetch_add(n, Ordering::Relaxed);
        let ts = Int64Array::from(times);
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from(sensors)),
                Arc::new(Float64Array::from(temps)),
                Arc::new(ts.clone()),
            ],
        )?;
        push(out, Rows::new(batch, ts, lines));
        Ok(SourceStatus::Ready)
    }

    fn exact_len(&self) -> Option<u64> {
        None
    }
}

impl Replayable for GeneratorSource {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({
            "next": self.next,
            "remaining": self.remaining,
            "state": self.state.to_string(),
        })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let damaged = || Error::damaged("the checkpointed generator position is damaged");
        self.next = position["next"].as_u64().ok_or_else(damaged)?;
        self.remaining = position["remaining"].as_u64().ok_or_else(damaged)?;
        self.state = position["state"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(damaged)?;
        Ok(())
    }
}

/// Nexmark events (people, auctions, bids) as rows of one flat schema:
/// `kind`, `person` (the person, seller or bidder), `auction`, `price`
/// (cents: a bid's price, an auction's initial bid), `category`, `channel`,
/// `city`, `state`, `ts`; fields that don't apply to a kind are null.
pub struct NexmarkRows {
    events: sluice_connectors::nexmark::NexmarkSource,
    buffer: Batch<sluice_connectors::nexmark::Event>,
    schema: SchemaRef,
    chunk_rows: usize,
    next_line: u64,
    counters: Arc<SourceCounters>,
}

impl NexmarkRows {
    /// The first `events` Nexmark events of the standard generator.
    pub fn new(events: u64, chunk_rows: usize, counters: Arc<SourceCounters>) -> Self {
        Self {
            events: sluice_connectors::nexmark::NexmarkSource::partition(events, 0, 1),
            buffer: Batch::new(),
            schema: Self::schema(),
            chunk_rows: chunk_rows.max(1),
            next_line: 1,
            counters,
        }
    }

    /// The rows' fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("person", DataType::UInt64, true),
            Field::new("auction", DataType::UInt64, true),
            Field::new("price", DataType::UInt64, true),
            Field::new("category", DataType::UInt64, true),
            Field::new("channel", DataType::Utf8, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("state", DataType::Utf8, true),
            Field::new("ts", DataType::Int64, false),
        ]))
    }
}

impl Source<Rows> for NexmarkRows {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        use arrow::array::{StringBuilder, UInt64Builder};
        use sluice_connectors::nexmark::Event;
        self.buffer.clear();
        let status = self.events.poll(&mut self.buffer, self.chunk_rows)?;
        let n = self.buffer.len();
        if n > 0 {
            let mut kind = StringBuilder::new();
            let mut person = UInt64Builder::new();
            let mut auction = UInt64Builder::new();
            let mut price = UInt64Builder::new();
            let mut category = UInt64Builder::new();
            let mut channel = StringBuilder::new();
            let mut city = StringBuilder::new();
            let mut state = StringBuilder::new();
            let mut ts = Vec::with_capacity(n);
            for event in self.buffer.items() {
                ts.push(event.date_time());
                match event {
                    Event::Person(p) => {
                        kind.append_value("person");
                        person.append_value(p.id);
                        auction.append_null();
                        price.append_null();
                        category.append_null();
                        channel.append_null();
                        city.append_value(p.city());
                        state.append_value(p.state());
                    }
                    Event::Auction(a) => {
                        kind.append_value("auction");
                        person.append_value(a.seller);
                        auction.append_value(a.id);
                        price.append_value(a.initial_bid);
                        category.append_value(a.category);
                        channel.append_null();
                        city.append_null();
                        state.append_null();
                    }
                    Event::Bid(b) => {
                        kind.append_value("bid");
                        person.append_value(b.bidder);
                        auction.append_value(b.auction);
                        price.append_value(b.price);
                        category.append_null();
                        channel.append_value(b.channel_name());
                        city.append_null();
                        state.append_null();
                    }
                }
            }
            let times = Int64Array::from(ts);
            let batch = RecordBatch::try_new(
                self.schema.clone(),
                vec![
                    Arc::new(kind.finish()),
                    Arc::new(person.finish()),
                    Arc::new(auction.finish()),
                    Arc::new(price.finish()),
                    Arc::new(category.finish()),
                    Arc::new(channel.finish()),
                    Arc::new(city.finish()),
                    Arc::new(state.finish()),
                    Arc::new(times.clone()),
                ],
            )?;
            let lines = UInt64Array::from_iter_values(self.next_line..self.next_line + n as u64);
            self.next_line += n as u64;
            self.counters.read.fetch_add(n as u64, Ordering::Relaxed);
            self.counters.decoded.fetch_add(n as u64, Ordering::Relaxed);
            push(out, Rows::new(batch, times, lines));
        }
        Ok(status)
    }
}

impl Replayable for NexmarkRows {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "events": self.next_line - 1 })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let events = position["events"]
            .as_u64()
            .ok_or_else(|| Error::damaged("the checkpointed Nexmark position is damaged"))?;
        // The generator is deterministic: generate and drop what was read.
        let mut left = events;
        while left > 0 {
            self.buffer.clear();
            let want = left.min(1 << 16) as usize;
            let status = self
                .events
                .poll(&mut self.buffer, want)
                .map_err(|e| Error::input("cannot generate the Nexmark input").caused_by(e))?;
            left -= self.buffer.len() as u64;
            if status == SourceStatus::Exhausted && left > 0 {
                return Err(Error::damaged(
                    "the checkpoint is past the end of the Nexmark input",
                ));
            }
        }
        self.buffer.clear();
        self.next_line = events + 1;
        Ok(())
    }
}

/// The shared W0/W1 benchmark stream as rows: `key` (int64, 0..1000),
/// `value` (float64 in [0, 1)) and `ts` (int64: event `i` at `i` ms).
pub struct FormulaRows {
    next: u64,
    events: u64,
    chunk_rows: usize,
    schema: SchemaRef,
    counters: Arc<SourceCounters>,
}

impl FormulaRows {
    /// The first `events` events of the stream.
    pub fn new(events: u64, chunk_rows: usize, counters: Arc<SourceCounters>) -> Self {
        Self {
            next: 0,
            events,
            chunk_rows: chunk_rows.max(1),
            schema: Self::schema(),
            counters,
        }
    }

    /// The rows' fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
            Field::new("ts", DataType::Int64, false),
        ]))
    }
}

impl Source<Rows> for FormulaRows {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        use sluice_connectors::FormulaEvent;
        let n = (self.chunk_rows as u64).min(self.events - self.next);
        if n == 0 {
            return Ok(SourceStatus::Exhausted);
        }
        let range = self.next as i64..(self.next + n) as i64;
        let (keys, values): (Vec<i64>, Vec<f64>) = range
            .clone()
            .map(|i| {
                let e = FormulaEvent::at(i);
                (e.key, e.value)
            })
            .unzip();
        let times = Int64Array::from_iter_values(range);
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(Float64Array::from(values)),
                Arc::new(times.clone()),
            ],
        )?;
        let lines = UInt64Array::from_iter_values(self.next + 1..=self.next + n);
        self.next += n;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        self.counters.decoded.fetch_add(n, Ordering::Relaxed);
        push(out, Rows::new(batch, times, lines));
        Ok(SourceStatus::Ready)
    }
}

impl Replayable for FormulaRows {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "next": self.next })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.next = position["next"]
            .as_u64()
            .filter(|&n| n <= self.events)
            .ok_or_else(|| Error::damaged("the checkpointed formula position is damaged"))?;
        Ok(())
    }
}

/// A source read at most `rate` records per second (`rate` in the source's
/// table): it sleeps between polls, in chunks of about a fiftieth of a
/// second's records, so the dataflow sees a steady stream.
pub struct Paced {
    inner: Box<dyn ReplayableSource>,
    rate: f64,
    /// Rows per chunk when paced.
    chunk: usize,
    start: Option<std::time::Instant>,
    read: u64,
}

impl Paced {
    /// `inner`, read at most `rate` records per second.
    pub fn new(mut inner: Box<dyn ReplayableSource>, rate: f64, chunk_rows: usize) -> Self {
        let chunk = ((rate / 50.0) as usize).clamp(1, chunk_rows.max(1));
        inner.resize(chunk, Duration::from_millis(20));
        Self {
            inner,
            rate,
            chunk,
            start: None,
            read: 0,
        }
    }
}

impl Source<Rows> for Paced {
    fn poll(&mut self, out: &mut Batch<Rows>, max: usize) -> Result<SourceStatus, BoxError> {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        // Wait until the rows read so far are due.
        let due =
            Duration::try_from_secs_f64(self.read as f64 / self.rate).unwrap_or(Duration::MAX);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let before = out.len();
        let status = self.inner.poll(out, max)?;
        self.read += out.items()[before..]
            .iter()
            .map(|r| r.len() as u64)
            .sum::<u64>();
        Ok(status)
    }

    /// It sleeps to keep its pace: a thread of its own.
    fn blocking(&self) -> bool {
        true
    }
}

impl Replayable for Paced {
    fn position(&self) -> serde_json::Value {
        self.inner.position()
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.inner.seek(position)
    }
    fn release_reserved(&self) {
        self.inner.release_reserved()
    }
    fn resize(&mut self, rows: usize, wait: Duration) {
        self.inner.resize(rows.min(self.chunk), wait)
    }
    fn committed(&mut self) -> Result<()> {
        self.inner.committed()
    }
}
