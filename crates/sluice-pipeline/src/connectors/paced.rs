//! A source read at most `rate` records per second.

use crate::connectors::replay::Replayable;
use crate::connectors::replay::*;
use crate::error::Result;
use crate::rows::Rows;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use std::time::Duration;

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
