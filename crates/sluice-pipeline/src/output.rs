//! What every output is, below the connectors and the side outputs that
//! write: a [`RowWriter`] that writes, finishes and hands its length to a
//! checkpoint with what makes it durable ([`Durable`]); and files and
//! folders made durable (created, synced, their directory entries synced).

use crate::error::{Error, Result};
use crate::fault::{record, Event, Fault};
use arrow::array::RecordBatch;
use std::fs::File;
use std::path::{Path, PathBuf};

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
    /// Called after every batch and when the time it asked for has passed:
    /// an output that holds rows back (a Kafka sink while the broker has
    /// not answered) hands them on, and says how soon to call again.
    fn tick(&mut self) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }
    /// Says that [`RowWriter::tick`] will be called (the writer is a sink
    /// stage's; the writers of `dead_letter` and `late` are not ticked and
    /// must not hold rows back between writes).
    fn will_be_ticked(&mut self) {}
}

/// An output's length at a checkpoint, and the file to sync before the
/// checkpoint may commit. Syncing can take long (it waits for the disk), so
/// a sink does it on another thread while the dataflow goes on.
pub struct Durable {
    pub(crate) length: u64,
    pub(crate) file: Option<(File, PathBuf)>,
    pub(crate) wait: Option<Wait>,
    /// What else the output needs to resume (a Kafka sink: where its
    /// records since the checkpoint start), recorded after the length.
    pub(crate) state: Vec<u8>,
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
            state: Vec::new(),
        }
    }

    /// An output of `length` (bytes, or rows) that is already durable (a
    /// database committed it).
    pub fn written(length: u64) -> Self {
        Self {
            length,
            file: None,
            wait: None,
            state: Vec::new(),
        }
    }

    /// An output of `length` (bytes, or messages) that is durable once
    /// `wait` returns.
    pub fn after(length: u64, wait: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Self {
            length,
            file: None,
            wait: Some(Box::new(wait)),
            state: Vec::new(),
        }
    }

    /// The output, with `state` recorded beside its length in the
    /// checkpoint (given back to the sink on resuming: `Resume::state`).
    pub fn with_state(mut self, state: Vec<u8>) -> Self {
        self.state = state;
        self
    }

    /// Waits until the output is durable up to its length; returns what
    /// the checkpoint records of it: the length (8 bytes, little-endian),
    /// then its state.
    pub fn sync(self) -> Result<Vec<u8>> {
        if let Some((file, path)) = self.file {
            sync_file(&file, &path)?;
        }
        if let Some(wait) = self.wait {
            wait()?;
        }
        let mut record = self.length.to_le_bytes().to_vec();
        record.extend_from_slice(&self.state);
        Ok(record)
    }
}

/// Creates (or empties) the file at `path`, and the folders it needs, so
/// that they survive a power cut: each new directory entry is synced. A
/// checkpoint that later commits the file's length relies on it.
pub fn create_durably(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir_durably(dir)?;
    }
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    record(|| Event::Created(path.to_path_buf()));
    sync_parent(path)?;
    Ok(file)
}

/// Creates the folder `dir` and those above it that are missing, syncing
/// the folder that holds each new one.
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::output(format!("cannot create the directory {}", dir.display())).caused_by(e)
    })?;
    for new in missing.iter().rev() {
        record(|| Event::Created(new.to_path_buf()));
        sync_parent(new)?;
    }
    Ok(())
}

/// Syncs the directory that holds `path`: its entry survives a power cut.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if crate::fault::on(Fault::SkipDirSync, path) {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        Error::output(format!("cannot sync the directory {}", dir.display())).caused_by(e)
    })?;
    record(|| Event::SyncedDir(dir.to_path_buf()));
    Ok(())
}

/// Waits until what was written to `file` is on disk.
pub(crate) fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(|e| io_error(path, e))?;
    record(|| Event::SyncedFile {
        path: path.to_path_buf(),
        length: file.metadata().map_or(0, |m| m.len()),
    });
    Ok(())
}

/// At the end of a run: flushed output is synced before the run may be
/// committed as completed (a power cut must not take its tail).
pub(crate) fn sync_at_end(file: &File, path: &Path) -> Result<()> {
    if crate::fault::on(Fault::SkipFinalSync, path) {
        return Ok(());
    }
    sync_file(file, path)
}

pub(crate) fn io_error(path: &Path, error: impl Into<crate::error::BoxError>) -> Error {
    Error::output(format!("cannot write {}", path.display())).caused_by(error)
}
