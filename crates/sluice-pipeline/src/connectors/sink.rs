//! What every sink is: a [`RowWriter`] that writes, finishes and hands its
//! length to a checkpoint with what makes it durable ([`Durable`]); the
//! [`Target`](super::Target) of a sink as the plan names it; [`RowSink`], the dataflow's
//! sink stage around a writer.

use super::file::sink::sync_file;
use crate::checkpoint::Checkpointing;
use crate::error::Error;
use crate::error::Result;
use crate::rows::Rows;
use arrow::array::RecordBatch;
use sluice::Batch;
use sluice::BoxError;
use sluice::Sink;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Writes record batches somewhere.
pub trait RowWriter: Send {
    /// Writes the rows of `batch`.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Flushes and closes the output.
    fn finish(&mut self) -> Result<()>;
    /// Hands what was written to the operating system; returns the
    /// output's length, which a recovery cuts the output back to, and what
    /// makes it durable.
    fn checkpoint(&mut self) -> Result<Durable>;
}

/// An output's length at a checkpoint, and the file to sync before the
/// checkpoint may commit. Syncing can take long (it waits for the disk), so
/// a sink does it on another thread while the dataflow goes on.
pub struct Durable {
    pub(crate) length: u64,
    pub(crate) file: Option<(File, PathBuf)>,
    pub(crate) wait: Option<Wait>,
}

/// What makes an output durable that is not a file (waiting for a broker's
/// acknowledgements).
pub(crate) type Wait = Box<dyn FnOnce() -> Result<()> + Send>;

impl Durable {
    /// An output with nothing to sync (stdout, a discarded stream).
    pub fn nothing() -> Self {
        Self {
            length: 0,
            file: None,
            wait: None,
        }
    }

    /// An output of `length` (bytes, or messages) that is durable once
    /// `wait` returns.
    pub fn after(length: u64, wait: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Self {
            length,
            file: None,
            wait: Some(Box::new(wait)),
        }
    }

    /// Waits until the output is durable up to its length; returns it.
    pub fn sync(self) -> Result<u64> {
        if let Some((file, path)) = self.file {
            sync_file(&file, &path)?;
        }
        if let Some(wait) = self.wait {
            wait()?;
        }
        Ok(self.length)
    }
}

/// Writes nothing.
struct Discard;

impl RowWriter for Discard {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        Ok(Durable::nothing())
    }
}

/// A sink of a named stream: writes its rows and counts them.
pub struct RowSink {
    writer: Box<dyn RowWriter>,
    emitted: Arc<AtomicU64>,
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    /// Measures the latency of what it writes, for the dashboard.
    watch: Option<Arc<crate::dashboard::Watch>>,
    /// The run's accounting, for a sink of the input: it accepts every
    /// record it writes.
    judge: Option<Arc<crate::accounting::Accounting>>,
}

impl RowSink {
    /// A sink writing with `writer`, counting rows into `emitted`.
    pub fn new(writer: Box<dyn RowWriter>, emitted: Arc<AtomicU64>) -> Self {
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
    pub fn with_watch(mut self, watch: Arc<crate::dashboard::Watch>) -> Self {
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
    fn checkpoint(&mut self, barrier: sluice::Barrier) -> Result<(), BoxError> {
        if let Some((checkpointing, key)) = &self.checkpoint {
            let durable = self.writer.checkpoint()?;
            let (checkpointing, key) = (checkpointing.clone(), key.clone());
            // The sync waits for the disk: the dataflow goes on meanwhile
            // (what it writes next lies beyond the recorded length).
            std::thread::Builder::new()
                .name("sluice-sync".into())
                .spawn(move || {
                    let reported = durable.sync().and_then(|length| {
                        checkpointing.report(barrier.id, vec![(key, length.to_le_bytes().to_vec())])
                    });
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
