//! `mode = "adaptive"`: the source's chunk size follows the load.
//!
//! In a pipeline file the batching happens at the source: it reads and
//! decodes chunks of rows, and the operators after it run fused on its
//! thread (or behind a key exchange that keeps the chunks). So the
//! adaptive mode steers the chunk size with the same controller as an
//! adaptive edge ([`sluice::AdaptiveController`]): what a chunk costs is
//! the time from the poll that read it to the next poll, when the chain
//! has processed it; the arrival rate is the rows the source found.
//! Reading a file keeps the source always busy, so the controller plans
//! for saturation: the largest chunks whose processing fits the latency
//! budget. Standard input at a light rate gets small chunks, down to one
//! row, and a partial chunk waits at most the controller's deadline.

use crate::connectors::replay::{Replayable, ReplayableSource};
use crate::rows::Rows;
use sluice::{AdaptiveController, Batch, BoxError, Observed, Source, SourceStatus};
use std::time::{Duration, Instant};

/// A source whose chunk size an [`AdaptiveController`] sets.
pub struct AdaptiveChunks {
    inner: Box<dyn ReplayableSource>,
    controller: AdaptiveController,
    start: Instant,
    /// When the last poll that found rows began, and how many it found.
    pending: Option<(Instant, usize)>,
    seen: Observed,
}

impl AdaptiveChunks {
    /// `inner`, with chunks sized to stay under `target`.
    pub fn new(mut inner: Box<dyn ReplayableSource>, target: Duration) -> Self {
        // Nothing queues between the source and its fused operators.
        let controller = AdaptiveController::new(target, 0);
        inner.resize(controller.size(), controller.deadline());
        Self {
            inner,
            controller,
            start: Instant::now(),
            pending: None,
            seen: Observed::default(),
        }
    }
}

impl Source<Rows> for AdaptiveChunks {
    fn poll(&mut self, out: &mut Batch<Rows>, max: usize) -> Result<SourceStatus, BoxError> {
        let began = Instant::now();
        if let Some((read_at, rows)) = self.pending.take() {
            // From the read to the end of processing: the chunk's cost, and
            // the latency its first row saw.
            let took = began - read_at;
            self.seen.record(rows, took, took);
        }
        let now = began - self.start;
        if self.controller.due(now) {
            let seen = std::mem::take(&mut self.seen);
            self.controller.update(now, &seen);
            self.inner
                .resize(self.controller.size(), self.controller.deadline());
        }
        let before = out.len();
        let status = self.inner.poll(out, max)?;
        let rows: usize = out.items()[before..]
            .iter()
            .map(|r| r.batch.num_rows())
            .sum();
        if rows > 0 {
            self.controller.arrived(rows);
            self.pending = Some((began, rows));
        }
        Ok(status)
    }

    fn blocking(&self) -> bool {
        self.inner.blocking()
    }
}

impl Replayable for AdaptiveChunks {
    fn position(&self) -> serde_json::Value {
        self.inner.position()
    }
    fn seek(&mut self, position: &serde_json::Value) -> crate::error::Result<()> {
        self.inner.seek(position)
    }
    fn release_reserved(&self) {
        self.inner.release_reserved()
    }
    fn committed(&mut self) -> crate::error::Result<()> {
        self.inner.committed()
    }
}
