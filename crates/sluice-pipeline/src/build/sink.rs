//! The dataflow's sink stage around a writer: writes a stream's rows,
//! counts them, reports its length and durability at each checkpoint, and
//! tells the accounting and the dashboard what it wrote.

use crate::checkpoint::Checkpointing;
use crate::error::Error;
use crate::output::{Durable, RowWriter};
use crate::rows::Rows;
use arrow::array::RecordBatch;
use sluice::{Batch, BoxError, Sink};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes nothing.
struct Discard;

impl RowWriter for Discard {
    fn write(&mut self, _batch: &RecordBatch) -> crate::error::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> crate::error::Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self) -> crate::error::Result<Durable> {
        Ok(Durable::nothing())
    }
}

/// A sink of a named stream: writes its rows and counts them.
pub struct RowSink {
    writer: Box<dyn RowWriter>,
    emitted: Arc<AtomicU64>,
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    /// Measures the latency of what it writes, for the dashboard.
    watch: Option<Arc<dyn crate::telemetry::Telemetry>>,
    /// The run's accounting, for a sink of the input: it accepts every
    /// record it writes.
    judge: Option<Arc<crate::accounting::Accounting>>,
}

impl RowSink {
    /// A sink writing with `writer`, counting rows into `emitted`.
    pub fn new(mut writer: Box<dyn RowWriter>, emitted: Arc<AtomicU64>) -> Self {
        writer.will_be_ticked();
        Self {
            writer,
            emitted,
            checkpoint: None,
            watch: None,
            judge: None,
        }
    }

    /// A sink of the input: tells `accounting` each record it writes is
    /// processed.
    pub fn judging(mut self, accounting: Arc<crate::accounting::Accounting>) -> Self {
        self.judge = Some(accounting);
        self
    }

    /// Tells `watch` how long after their read the rows it writes were
    /// written.
    pub fn with_watch(mut self, watch: Arc<dyn crate::telemetry::Telemetry>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// A sink that writes nothing: the end of a stream nobody reads.
    pub fn discard() -> Self {
        Self::new(Box::new(Discard), Arc::new(AtomicU64::new(0)))
    }

    /// Reports its length to `checkpointing` at every barrier, under `key`.
    pub fn with_checkpoints(mut self, checkpointing: Arc<Checkpointing>, key: String) -> Self {
        checkpointing.register();
        self.checkpoint = Some((checkpointing, key));
        self
    }
}

impl Sink<Rows> for RowSink {
    fn write(&mut self, batch: &mut Batch<Rows>) -> Result<(), BoxError> {
        for rows in batch.items() {
            if rows.is_empty() {
                continue;
            }
            self.writer.write(&rows.batch)?;
            self.emitted.fetch_add(rows.len() as u64, Ordering::Relaxed);
            if let Some(judge) = &self.judge {
                judge.accepted(rows.lines.values().iter().copied());
            }
            if let (Some(watch), Some(read_at)) = (&self.watch, rows.read_at) {
                watch.latency(read_at, rows.len());
            }
        }
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.writer.finish().map_err(Into::into)
    }
    fn tick(&mut self, now: Duration) -> Result<Option<Duration>, BoxError> {
        Ok(self.writer.tick()?.map(|after| now + after))
    }
    fn checkpoint(&mut self, barrier: sluice::Barrier) -> Result<(), BoxError> {
        if let Some((checkpointing, key)) = &self.checkpoint {
            let durable = self.writer.checkpoint()?;
            let (checkpointing, key) = (checkpointing.clone(), key.clone());
            // The sync waits for the disk: the dataflow goes on meanwhile
            // (what it writes next lies beyond the recorded length).
            std::thread::Builder::new()
                .name("sluice-sync".into())
                .spawn(move || {
                    let reported = durable
                        .sync()
                        .and_then(|record| checkpointing.report(barrier.id, vec![(key, record)]));
                    if let Err(error) = reported {
                        checkpointing.fail(error);
                    }
                })
                .map_err(|e| {
                    Error::output("cannot start a thread to sync the output").caused_by(e)
                })?;
        }
        Ok(())
    }
}
