//! What makes a source replayable: its position in a checkpoint and how it
//! seeks back to it ([`Replayable`]), and the wrapper that injects barriers
//! and records positions ([`Checkpointed`]); the counters every source
//! keeps.

use crate::error::Error;
use crate::error::Result;
use crate::rows::Rows;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use crate::accounting::SourceCounters;

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
/// reading and injects a last barrier. A source read by several readers
/// has one per reader, each recording its own position (`source/N`) in
/// every checkpoint.
pub struct Checkpointed<S> {
    inner: S,
    checkpointing: Option<Arc<crate::checkpoint::Checkpointing>>,
    /// Its entry in checkpoints: `source`, or `source/N` for reader `N`.
    key: String,
    /// The last checkpoint it injected.
    injected: u64,
    max_time: i64,
    /// The input is done: no more checkpoints start here.
    exhausted: bool,
    /// The end is recorded (`Checkpointing::finish_reader`): no more
    /// barriers.
    finished: bool,
    /// The last checkpoint the source was told had committed.
    acknowledged: u64,
    /// Records read by this run, counted where they are framed.
    read: Option<Arc<SourceCounters>>,
    /// Records read before the checkpoint the run resumed from.
    read_before: u64,
    /// The watermark's lag behind the latest event time, when rows are
    /// stamped with the reader's watermark.
    lag: Option<i64>,
}

impl<S: Replayable> Checkpointed<S> {
    /// `inner`, checkpointed when `checkpointing` is given.
    pub fn new(inner: S, checkpointing: Option<Arc<crate::checkpoint::Checkpointing>>) -> Self {
        Self {
            inner,
            checkpointing,
            key: "source".into(),
            injected: 0,
            max_time: i64::MIN,
            exhausted: false,
            finished: false,
            acknowledged: 0,
            read: None,
            read_before: 0,
            lag: None,
        }
    }

    /// Makes it reader `index` of `readers` (its entry `source/N` when
    /// there are several).
    pub fn reader(mut self, index: usize, readers: usize) -> Self {
        if readers > 1 {
            self.key = format!("source/{index}");
        }
        self
    }

    /// Its entry in checkpoints.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stamps each chunk with this reader's watermark when it reads it:
    /// the latest event time of the chunks before, less `lag` ms (what the
    /// watermark generator after it emits).
    pub fn stamping(mut self, lag: i64) -> Self {
        self.lag = Some(lag);
        self
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
            // checkpoint still in flight: end once it has committed (its
            // barrier injected first, if another reader started it). Later
            // checkpoints record the last position.
            if let Some(checkpointing) = &self.checkpointing {
                if !self.finished
                    && !checkpointing.finish_reader(|| vec![(self.key.clone(), self.position())])
                {
                    return Ok(SourceStatus::Idle);
                }
            }
            self.finished = true;
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
        let before = self.max_time;
        let status = self.inner.poll(out, max)?;
        if let (Some(lag), false) = (self.lag, before == i64::MIN) {
            let watermark = before.saturating_sub(lag);
            for rows in out.parts_mut().0 {
                rows.watermark = watermark;
            }
        }
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
        let Some(checkpointing) = &self.checkpointing else {
            return Ok(None);
        };
        // At the end of its input a reader starts no checkpoint, and once
        // it has finished it takes part in none; until then it injects one
        // another reader started.
        let due = if self.finished {
            None
        } else if self.exhausted {
            checkpointing.flying(self.injected)
        } else {
            checkpointing.due(self.injected)?
        };
        let Some(id) = due else {
            return Ok(None);
        };
        self.injected = id;
        self.inner.release_reserved();
        checkpointing.report(id, vec![(self.key.clone(), self.position())])?;
        Ok(Some(sluice::Barrier { id }))
    }
}

impl<S: Replayable> Checkpointed<S> {
    /// The position a checkpoint records: the inner source's, the latest
    /// event time emitted, and the records read from the start.
    fn position(&self) -> Vec<u8> {
        let read = self
            .read
            .as_ref()
            .map_or(0, |r| r.read.load(Ordering::Relaxed));
        serde_json::json!({
            "inner": self.inner.position(),
            "max_time": self.max_time,
            "read": self.read_before + read,
        })
        .to_string()
        .into_bytes()
    }
}

/// Appends a chunk of rows with its largest event time.
pub(crate) fn push(out: &mut Batch<Rows>, rows: Rows) {
    let time = rows.max_time().unwrap_or(i64::MIN);
    out.push(rows, time);
}
