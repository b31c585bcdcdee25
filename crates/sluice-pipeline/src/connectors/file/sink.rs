//! File sinks: JSON lines and CSV, created and closed durably (the file
//! and the directory entries are synced), cut back to a checkpoint's length
//! on resume.

use crate::error::Error;
use crate::error::Result;
use crate::fault::Fault;
use crate::format::Format;
use crate::output::{create_durably, io_error, sync_at_end, Durable, RowWriter};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::fs::File;
use std::io::BufWriter;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Opens `path` to go on writing at `length`: what follows is cut off.
fn resume(path: &Path, length: u64) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| {
            Error::damaged(format!(
                "cannot reopen {} to resume from the checkpoint ({e}): it was moved or \
                 removed after the checkpoint",
                path.display()
            ))
        })?;
    let found = file.metadata().map(|m| m.len()).unwrap_or(0);
    if found < length {
        return Err(Error::damaged(format!(
            "{} has {found} bytes but the checkpoint wrote {length}: it was changed outside \
             this run",
            path.display()
        )));
    }
    if !crate::fault::on(Fault::SkipTruncate, path) {
        file.set_len(length).map_err(|e| {
            Error::output(format!(
                "cannot cut {} back to the checkpoint",
                path.display()
            ))
            .caused_by(e)
        })?;
    }
    let mut file = file;
    file.seek(SeekFrom::End(0)).map_err(|e| io_error(path, e))?;
    Ok(file)
}

/// A file that counts the bytes written to it.
struct Counting {
    inner: File,
    written: Arc<AtomicU64>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A file handle to make writes durable, and the count of bytes written.
type Synced = (File, Arc<AtomicU64>);

fn durable(synced: &Synced, path: &Path) -> Result<Durable> {
    let file = synced.0.try_clone().map_err(|e| io_error(path, e))?;
    Ok(Durable {
        length: synced.1.load(Ordering::Relaxed),
        file: Some((file, path.to_path_buf())),
        wait: None,
        state: Vec::new(),
    })
}

struct JsonLines {
    out: Box<dyn Write + Send>,
    file: Option<Synced>,
    path: PathBuf,
}

impl RowWriter for JsonLines {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.out);
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| io_error(&self.path, e))
    }
    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| io_error(&self.path, e))?;
        match &self.file {
            Some((file, _)) => sync_at_end(file, &self.path),
            None => Ok(()),
        }
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        self.out.flush().map_err(|e| io_error(&self.path, e))?;
        match &self.file {
            Some(synced) => durable(synced, &self.path),
            None => Ok(Durable::nothing()),
        }
    }
}

struct Csv {
    /// Arrow's CSV writer flushes into the file after every batch.
    writer: Option<arrow::csv::Writer<Counting>>,
    file: Synced,
    path: PathBuf,
}

impl RowWriter for Csv {
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
            writer
                .into_inner()
                .flush()
                .map_err(|e| io_error(&self.path, e))?;
            sync_at_end(&self.file.0, &self.path)?;
        }
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        durable(&self.file, &self.path)
    }
}

/// JSON lines on standard output.
pub(crate) fn stdout() -> Box<dyn RowWriter> {
    Box::new(JsonLines {
        out: Box::new(std::io::stdout()),
        file: None,
        path: PathBuf::from("stdout"),
    })
}

/// Opens `path` for rows of `schema` in `format`, resuming at `length`
/// bytes when given (after a checkpoint): what the file has beyond it was
/// written after the checkpoint and is cut off. The error names the path.
pub(crate) fn open(
    path: &Path,
    format: Format,
    schema: SchemaRef,
    length: Option<u64>,
) -> Result<Box<dyn RowWriter>> {
    let file = match length {
        None => create_durably(path)?,
        Some(length) => resume(path, length)?,
    };
    let written = Arc::new(AtomicU64::new(length.unwrap_or(0)));
    let synced = file.try_clone().map_err(|e| io_error(path, e))?;
    let counting = Counting {
        inner: file,
        written: written.clone(),
    };
    Ok(match format {
        Format::Jsonl => Box::new(JsonLines {
            out: Box::new(BufWriter::with_capacity(1 << 16, counting)),
            file: Some((synced, written)),
            path: path.to_path_buf(),
        }),
        Format::Csv => {
            let header = length.unwrap_or(0) == 0;
            let writer = arrow::csv::WriterBuilder::new()
                .with_header(header)
                .build(counting);
            Box::new(Csv {
                writer: Some(writer),
                file: (synced, written),
                path: path.to_path_buf(),
            })
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => Box::new(super::parquet::ParquetWriter::open(
            counting.inner,
            synced,
            path,
            schema,
        )?),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => {
            drop(schema);
            return Err(super::no_parquet(path));
        }
    })
}
