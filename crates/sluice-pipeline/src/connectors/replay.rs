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
pub(crate) fn push(out: &mut Batch<Rows>, rows: Rows) {
    let time = rows.max_time().unwrap_or(i64::MIN);
    out.push(rows, time);
}
