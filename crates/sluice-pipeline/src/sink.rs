//! Writers of rows: JSON lines, CSV and Parquet files, and stdout.

use crate::decode::Format;
use crate::rows::Rows;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sluice::{Batch, BoxError, Sink};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Writes record batches somewhere.
pub trait RowWriter: Send {
    /// Writes the rows of `batch`.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String>;
    /// Flushes and closes the output.
    fn finish(&mut self) -> Result<(), String>;
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Standard output, as JSON lines.
    Stdout,
    /// A file in a format.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
}

impl Target {
    /// Opens the target for rows of `schema`; the error names the path.
    pub fn open(&self, schema: SchemaRef) -> Result<Box<dyn RowWriter>, String> {
        match self {
            Target::Stdout => Ok(Box::new(JsonLines {
                out: Box::new(std::io::stdout()),
                path: PathBuf::from("stdout"),
            })),
            Target::File { path, format } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        format!("cannot create the directory {}: {e}", dir.display())
                    })?;
                }
                let file = File::create(path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(match format {
                    Format::Jsonl => Box::new(JsonLines {
                        out: Box::new(BufWriter::with_capacity(1 << 16, file)),
                        path: path.clone(),
                    }),
                    Format::Csv => Box::new(Csv {
                        writer: Some(arrow::csv::Writer::new(BufWriter::new(file))),
                        path: path.clone(),
                    }),
                    Format::Parquet => Box::new(Parquet {
                        writer: Some(
                            parquet::arrow::ArrowWriter::try_new(file, schema, None)
                                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                        ),
                        path: path.clone(),
                    }),
                })
            }
        }
    }

    /// The target's name, for reports.
    pub fn describe(&self) -> String {
        match self {
            Target::Stdout => "stdout".into(),
            Target::File { path, format } => format!("{} ({})", path.display(), format.name()),
        }
    }
}

struct JsonLines {
    out: Box<dyn Write + Send>,
    path: PathBuf,
}

impl RowWriter for JsonLines {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.out);
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| io_error(&self.path, e))
    }
    fn finish(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| io_error(&self.path, e))
    }
}

struct Csv {
    writer: Option<arrow::csv::Writer<BufWriter<File>>>,
    path: PathBuf,
}

impl RowWriter for Csv {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        match &mut self.writer {
            Some(writer) => writer.write(batch).map_err(|e| io_error(&self.path, e)),
            None => Err(format!("{} is already closed", self.path.display())),
        }
    }
    fn finish(&mut self) -> Result<(), String> {
        if let Some(writer) = self.writer.take() {
            writer
                .into_inner()
                .flush()
                .map_err(|e| io_error(&self.path, e))?;
        }
        Ok(())
    }
}

struct Parquet {
    writer: Option<parquet::arrow::ArrowWriter<File>>,
    path: PathBuf,
}

impl RowWriter for Parquet {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        match &mut self.writer {
            Some(writer) => writer.write(batch).map_err(|e| io_error(&self.path, e)),
            None => Err(format!("{} is already closed", self.path.display())),
        }
    }
    fn finish(&mut self) -> Result<(), String> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| io_error(&self.path, e))?;
        }
        Ok(())
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> String {
    format!("cannot write {}: {error}", path.display())
}

/// A sink of a named stream: writes its rows and counts them.
pub struct RowSink {
    writer: Box<dyn RowWriter>,
    emitted: Arc<AtomicU64>,
}

impl RowSink {
    /// A sink writing with `writer`, counting rows into `emitted`.
    pub fn new(writer: Box<dyn RowWriter>, emitted: Arc<AtomicU64>) -> Self {
        Self { writer, emitted }
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
        }
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.writer.finish().map_err(Into::into)
    }
}
