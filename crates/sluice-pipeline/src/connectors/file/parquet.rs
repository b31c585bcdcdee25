//! Parquet files: the source (positions by row) and the writer (no
//! checkpoints: a Parquet file's footer comes last).

use crate::connectors::replay::Replayable;
use crate::connectors::replay::SourceCounters;
use crate::connectors::replay::*;
use crate::connectors::Reader;
use crate::error::Error;
use crate::error::Fix;
use crate::error::Result;
use crate::format::row_json;
use crate::format::with_times;
use crate::format::DeadLetter;
use crate::format::EventTime;
use crate::output::io_error;
use crate::output::sync_at_end;
use crate::output::{Durable, RowWriter};
use crate::rows::Rows;
use crate::side_outputs::Reserved;
use crate::side_outputs::ReservedHandle;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// Rows of this reader's row groups read so far (its position).
    read: u64,
    /// This reader's row groups: where each starts among the file's rows
    /// (from 0), and its rows. Every row group when one reader reads it.
    groups: Vec<(u64, u64)>,
    reserved: ReservedHandle,
    counters: Arc<SourceCounters>,
    path: String,
}

impl ParquetSource {
    /// Opens `path` for `reader`, which reads the row groups dealt to it in
    /// turn, decoding `read_rows` rows at a time and handing on chunks of
    /// `chunk_rows`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        path: &std::path::Path,
        reader: Reader,
        read_rows: usize,
        chunk_rows: usize,
        time: EventTime,
        reserved: Arc<Reserved>,
        counters: Arc<SourceCounters>,
    ) -> Result<Self> {
        let unreadable =
            |e| Error::input(format!("cannot read {} as Parquet", path.display())).caused_by(e);
        let file = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot read {}", path.display())).caused_by(e))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(unreadable)?;
        let (mut groups, mut own, mut start) = (Vec::new(), Vec::new(), 0u64);
        for (g, group) in builder.metadata().row_groups().iter().enumerate() {
            let rows = group.num_rows().max(0) as u64;
            if reader.reads(g as u64) {
                groups.push((start, rows));
                own.push(g);
            }
            start += rows;
        }
        let reader = builder
            .with_row_groups(own)
            .with_batch_size(read_rows.max(1))
            .build()
            .map_err(unreadable)?;
        Ok(Self {
            reader,
            held: None,
            chunk_rows: chunk_rows.max(1),
            time,
            origin: "source".into(),
            read: 0,
            groups,
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
        self.read = rows;
        Ok(())
    }

    /// The file's row numbers (from 1) of this reader's rows `from` to
    /// `from + n`.
    fn row_numbers(&self, from: u64, n: u64) -> Vec<u64> {
        let mut numbers = Vec::with_capacity(n as usize);
        let mut local = 0u64;
        for &(start, rows) in &self.groups {
            let (lo, hi) = (from.max(local), (from + n).min(local + rows));
            numbers.extend((lo..hi.max(lo)).map(|r| start + (r - local) + 1));
            local += rows;
        }
        numbers
    }

    /// How many row groups the Parquet file at `path` has.
    pub fn row_groups(path: &std::path::Path) -> Result<usize> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::input(format!("cannot read {}", path.display())).caused_by(e))?;
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map(|b| b.metadata().num_row_groups())
            .map_err(|e| {
                Error::input(format!("cannot read {} as Parquet", path.display())).caused_by(e)
            })
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
        self.counters.add_read(n);
        let lines = self.row_numbers(self.read, n);
        self.read += n;
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
        serde_json::json!({ "rows": self.read })
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

pub(crate) struct ParquetWriter {
    writer: Option<parquet::arrow::ArrowWriter<File>>,
    /// The same file, to sync once the footer is written.
    file: File,
    path: PathBuf,
}

impl ParquetWriter {
    /// Writes rows of `schema` to `file` (at `path`); `synced` is the same
    /// file, synced once the footer is written.
    pub(crate) fn open(file: File, synced: File, path: &Path, schema: SchemaRef) -> Result<Self> {
        Ok(Self {
            writer: Some(
                parquet::arrow::ArrowWriter::try_new(file, schema, None)
                    .map_err(|e| io_error(path, e))?,
            ),
            file: synced,
            path: path.to_path_buf(),
        })
    }
}

impl RowWriter for ParquetWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            Some(writer) => writer.write(batch).map_err(|e| io_error(&self.path, e)),
            None => Err(Error::output(format!(
                "{} is already closed",
                self.path.display()
            ))),
        }
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| io_error(&self.path, e))?;
            sync_at_end(&self.file, &self.path)?;
        }
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        Err(Error::refused(format!(
            "{}: Parquet sinks cannot take part in checkpoints",
            self.path.display()
        ))
        .with_fix(Fix::NoCheckpoints))
    }
}
