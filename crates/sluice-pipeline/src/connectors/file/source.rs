//! The text source of `type = "file"` (JSON lines, CSV) and of
//! `type = "stdin"`: bytes framed into lines, decoded in chunks, positions
//! by byte offset.

use crate::connectors::replay::Replayable;
use crate::connectors::replay::SourceCounters;
use crate::connectors::replay::*;
use crate::error::Error;
use crate::error::Result;
use crate::format::TextDecoder;
use crate::rows::Rows;
use crate::side_outputs::Reserved;
use crate::side_outputs::ReservedHandle;
use crossbeam_channel::Receiver;
use crossbeam_channel::TryRecvError;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

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
