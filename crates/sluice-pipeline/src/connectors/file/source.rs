//! The text source of `type = "file"` (JSON lines, CSV) and of
//! `type = "stdin"`: bytes framed into lines, decoded in chunks, positions
//! by byte offset.

use crate::connectors::replay::Replayable;
use crate::connectors::replay::SourceCounters;
use crate::connectors::replay::*;
use crate::connectors::Reader;
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
    /// The stripes of a file read by several readers.
    stripes: Option<Stripes>,
}

/// A file read by several readers in stripes: from `start` (after a CSV
/// header) the file is cut into blocks of `block` bytes, dealt out in
/// turn; a line is the reader's whose block holds its first byte. Blocks
/// dealt in turn keep the readers at about the same place in the file, so
/// the event times they read stay close (the windows' watermark is the
/// slowest reader's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripes {
    /// Which reader this is.
    pub reader: Reader,
    /// Where the first block starts.
    pub start: u64,
    /// The size of a block.
    pub block: u64,
}

impl Stripes {
    /// The stripes of `len` bytes from `start` for `reader`: blocks of an
    /// eighth of a reader's share, between 4 KiB and 4 MiB.
    pub fn new(reader: Reader, start: u64, len: u64) -> Self {
        let share = len.saturating_sub(start) / (reader.readers as u64 * 8);
        Self {
            reader,
            start,
            block: share.clamp(4 << 10, 4 << 20),
        }
    }

    /// The block that holds `offset`.
    fn block_of(&self, offset: u64) -> u64 {
        offset.saturating_sub(self.start) / self.block
    }

    /// Whether a line starting at `offset` is this reader's.
    fn owns(&self, offset: u64) -> bool {
        offset >= self.start && self.reader.reads(self.block_of(offset))
    }

    /// The start of this reader's first block after `offset`'s.
    fn next_own(&self, offset: u64) -> u64 {
        let (b, n) = (self.block_of(offset), self.reader.readers as u64);
        let own = b + (self.reader.index as u64 + n - b % n) % n;
        let own = if own == b { b + n } else { own };
        self.start + own * self.block
    }

    /// The end of the block that holds `offset`.
    fn block_end(&self, offset: u64) -> u64 {
        self.start + (self.block_of(offset) + 1) * self.block
    }
}

/// The number of line ends in `data`.
fn newlines(data: &[u8]) -> u64 {
    data.iter().filter(|b| **b == b'\n').count() as u64
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
            stripes: None,
        }
    }

    /// Reads only the lines of `stripes`, from its start, which is line
    /// `line` of the file (after a CSV header: no line is skipped).
    pub fn striped(mut self, stripes: Stripes, line: u64) -> Result<Self> {
        if let Bytes::File(file) = &mut self.bytes {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(stripes.start))
                .map_err(|e| Error::input(format!("cannot seek in {}", self.path)).caused_by(e))?;
        }
        self.base = stripes.start;
        self.line = line;
        self.skip = 0;
        self.stripes = Some(stripes);
        Ok(self)
    }

    /// Moves past the lines of the other readers' blocks, counting them,
    /// to the start of this reader's next line (or the end of the input).
    /// `start` stays at the start of a line.
    fn skip_foreign(&mut self) -> Result<(), BoxError> {
        let Some(stripes) = self.stripes else {
            return Ok(());
        };
        loop {
            let offset = self.base + self.start as u64;
            if stripes.owns(offset) {
                return Ok(());
            }
            // Lines that start before `target` are another reader's: go to
            // the first line end at or after `target - 1`.
            let target = stripes.next_own(offset);
            let from = ((target - 1 - self.base) as usize).max(self.start);
            let len = self.buf.len();
            if let Some(nl) = self.buf.get(from..).and_then(|b| memchr::memchr(b'\n', b)) {
                let end = from + nl + 1;
                self.line += newlines(&self.buf[self.start..end]);
                self.start = end;
                continue;
            }
            // Not in the buffer yet: count up to its last line start.
            if let Some(last) = memchr::memrchr(b'\n', &self.buf[self.start..from.min(len)]) {
                let end = self.start + last + 1;
                self.line += newlines(&self.buf[self.start..end]);
                self.start = end;
            }
            if let More::End | More::Nothing = self.read_more()? {
                // The rest of the input is other readers'.
                self.line += newlines(&self.buf[self.start..]);
                self.start = self.buf.len();
                return Ok(());
            }
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
                if self.stripes.is_none() {
                    // A reader of stripes counts the bytes of its lines.
                    self.counters.add_bytes(n as u64);
                }
                if n == 0 {
                    self.eof = true;
                    return Ok(More::End);
                }
                Ok(More::Read)
            }
            Bytes::Feed(rx) => match rx.try_recv() {
                Ok(Ok(block)) => {
                    self.counters.add_bytes(block.len() as u64);
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

    /// The complete, non-blank lines from `start` that start before
    /// `stop` (an input offset), counted up to `limit`; and whether the
    /// buffer reaches `stop`.
    fn complete_lines(&self, limit: usize, stop: u64) -> (usize, bool) {
        let data = &self.buf[self.start..];
        let first = self.base + self.start as u64;
        let (mut at, mut count) = (0, 0);
        for nl in memchr::memchr_iter(b'\n', data) {
            if first + at as u64 >= stop {
                return (count, true);
            }
            if !is_blank(&data[at..nl]) {
                count += 1;
                if count >= limit {
                    break;
                }
            }
            at = nl + 1;
        }
        (count, first + at as u64 >= stop)
    }

    /// Finds up to `chunk_rows` complete lines from `start` that start
    /// before `stop` (an input offset); returns the end of the last one
    /// (after its newline).
    fn scan_lines(&mut self, stop: u64) -> usize {
        self.lines.clear();
        let mut at = self.start;
        let mut line = self.line;
        let data = &self.buf;
        while self.lines.len() < self.chunk_rows && self.base + (at as u64) < stop {
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
        self.skip_foreign()?;
        // A reader of stripes reads to the end of the block it is in.
        let stop = match self.stripes {
            Some(stripes) => stripes.block_end(self.base + self.start as u64),
            None => u64::MAX,
        };
        let wanted = self.chunk_rows + self.skip;
        loop {
            let (complete, stopped) = self.complete_lines(wanted, stop);
            if complete >= wanted || stopped || self.eof {
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
        let end = self.scan_lines(stop);
        self.start = end;
        if self.stripes.is_some() {
            self.counters.add_bytes((end - region_start) as u64);
        }
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
        self.counters.add_read(lines.len() as u64);
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
        let mut position = serde_json::json!({
            "offset": self.base + self.start as u64,
            "line": self.line,
            "skip": self.skip,
        });
        if let Some(stripes) = &self.stripes {
            position["stripes"] = serde_json::json!({
                "start": stripes.start,
                "block": stripes.block,
            });
        }
        position
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
        if let Some(stripes) = &mut self.stripes {
            // The stripes the checkpoint's run cut (the file's length
            // chose their size).
            let cut = &position["stripes"];
            match (cut["start"].as_u64(), cut["block"].as_u64()) {
                (Some(start), Some(block)) if block > 0 => {
                    stripes.start = start;
                    stripes.block = block;
                }
                _ => {
                    return Err(Error::damaged(
                        "the checkpointed position of a reader of stripes has none: the \
                         state is damaged",
                    ))
                }
            }
        }
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
            match self.stripes {
                // About this reader's share of what lies before.
                Some(stripes) => self.counters.add_bytes(
                    offset.saturating_sub(stripes.start) / stripes.reader.readers as u64,
                ),
                None => self.counters.bytes.store(offset, Ordering::Relaxed),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offset_has_one_reader_and_next_own_is_its_next_block() {
        for readers in 1..=5 {
            let stripes: Vec<Stripes> = (0..readers)
                .map(|index| Stripes {
                    reader: Reader { index, readers },
                    start: 7,
                    block: 10,
                })
                .collect();
            for offset in 7..400u64 {
                let owners = stripes.iter().filter(|s| s.owns(offset)).count();
                assert_eq!(owners, 1, "offset {offset} of {readers} readers");
                for s in &stripes {
                    let next = s.next_own(offset);
                    assert!(next > offset && s.owns(next), "{s:?} {offset} -> {next}");
                    // No block of its own between.
                    let first = (s.block_end(offset)..next).find(|o| s.owns(*o));
                    assert_eq!(first, None, "{s:?} {offset}");
                }
            }
            assert!(stripes.iter().all(|s| !s.owns(6)));
        }
    }
}
