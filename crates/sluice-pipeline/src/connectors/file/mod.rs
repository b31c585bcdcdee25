//! `type = "file"` (and `"stdin"`, `"stdout"`, which read and write the
//! same formats): text sources, Parquet, and file sinks.
//!
//! - [`table`]: checking and compiling their tables;
//! - [`source`]: text sources (JSON lines, CSV) over a file or stdin;
//! - [`parquet`]: Parquet files, read in row groups;
//! - [`sink`]: files and stdout, written durably.

#[cfg(feature = "parquet")]
pub mod parquet;
pub mod sink;
pub mod source;
mod table;

use super::replay::ReplayableSource;
use super::{Key, Kind, Opening, SinkConnector, SinkType, SourceConnector, SourceType};
use crate::checkpoint::Guarantee;
use crate::error::{Error, Fix, Result};
use crate::format::{Format, TextDecoder};
use crate::output::RowWriter;
use arrow::datatypes::SchemaRef;
use std::path::{Path, PathBuf};

#[cfg(feature = "parquet")]
pub use parquet::ParquetSource;
pub use source::{Bytes, Stripes, TextSource};

/// The error for a Parquet file in a build without the `parquet` feature.
#[cfg(not(feature = "parquet"))]
fn no_parquet(path: &Path) -> Error {
    Error::refused(format!(
        "{}: this build of Sluice reads and writes no Parquet (the `parquet` feature of \
         sluice-pipeline is off); use jsonl or csv, or build with it",
        path.display()
    ))
}

/// `type = "file"` as a source.
pub const FILE_SOURCE: SourceType = SourceType {
    name: "file",
    keys: &[
        Key("path", Kind::Text),
        Key("format", Kind::Text),
        Key("schema", Kind::Table),
        Key("readers", Kind::Unsigned),
    ],
    compile: table::file_source,
};

/// `type = "stdin"`.
pub const STDIN: SourceType = SourceType {
    name: "stdin",
    keys: &[Key("format", Kind::Text), Key("schema", Kind::Table)],
    compile: table::stdin_source,
};

/// `type = "stdout"`.
pub const STDOUT: SinkType = SinkType {
    name: "stdout",
    keys: &[Key("format", Kind::Text)],
    compile: table::stdout_sink,
};

/// `type = "file"` as a sink.
pub const FILE_SINK: SinkType = SinkType {
    name: "file",
    keys: &[Key("path", Kind::Text), Key("format", Kind::Text)],
    compile: table::file_sink,
};

/// A file to read.
#[derive(Debug, Clone)]
pub struct File {
    /// Resolved against the pipeline file's folder.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// At most this many readers (`readers =`); one per worker when not
    /// given.
    pub readers: Option<usize>,
}

/// Standard input.
#[derive(Debug, Clone)]
pub struct Stdin {
    /// JSON lines or CSV.
    pub format: Format,
}

/// A text source over `bytes`, read as `format`.
fn text(at: &Opening<'_>, bytes: Bytes, path: String, format: Format) -> Box<TextSource> {
    let decoder = TextDecoder::new(format, at.schema.clone(), at.time.clone(), "source".into());
    let header = usize::from(format == Format::Csv);
    Box::new(TextSource::new(
        bytes,
        path,
        decoder,
        header,
        at.chunk_rows,
        at.batch_interval,
        at.reserved.clone(),
        at.counters.clone(),
    ))
}

impl SourceConnector for File {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        #[cfg(not(feature = "parquet"))]
        if self.format == Format::Parquet {
            return Err(no_parquet(&self.path));
        }
        #[cfg(feature = "parquet")]
        if self.format == Format::Parquet {
            return Ok(Box::new(ParquetSource::open(
                &self.path,
                at.reader,
                // Adaptive chunks are slices of batches of the largest size
                // the controller picks.
                if at.adaptive {
                    sluice::MAX_ADAPTIVE_BATCH
                } else {
                    at.chunk_rows
                },
                at.chunk_rows,
                at.time.clone(),
                at.reserved.clone(),
                at.counters.clone(),
            )?));
        }
        let file = std::fs::File::open(&self.path).map_err(|e| {
            Error::input(format!("cannot read {}", self.path.display())).caused_by(e)
        })?;
        let name = self.path.display().to_string();
        let source = text(at, Bytes::File(file), name, self.format);
        if at.reader.readers == 1 {
            return Ok(source);
        }
        let (start, line) = self.first_record()?;
        let len = self.total_bytes().unwrap_or(0);
        Ok(Box::new(
            (*source).striped(Stripes::new(at.reader, start, len), line)?,
        ))
    }

    fn readers(&self, most: usize) -> Result<usize> {
        // Unless the table says how many, a file has a reader per MiB at
        // most (a smaller share costs more than it saves); a Parquet file
        // one per row group at most (they are dealt to the readers).
        let readers = match self.readers {
            Some(readers) => readers.min(most),
            None => {
                let mib = self.total_bytes().unwrap_or(0) >> 20;
                most.min(usize::try_from(mib).unwrap_or(usize::MAX).max(1))
            }
        };
        #[cfg(feature = "parquet")]
        if self.format == Format::Parquet {
            return Ok(readers.min(ParquetSource::row_groups(&self.path)?.max(1)));
        }
        Ok(readers)
    }

    fn describe(&self) -> String {
        format!("file {} ({})", self.path.display(), self.format.name())
    }

    fn label(&self) -> String {
        let name = self.path.file_name();
        let name = name.map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        format!("{:?} file {name}", self.format).to_lowercase()
    }

    fn total_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }

    fn identity(&self) -> String {
        // Without `readers`: a resumed run keeps its checkpoint's readers.
        format!(
            "File {{ path: {:?}, format: {:?} }}",
            self.path, self.format
        )
    }
}

impl File {
    /// Where the first record starts, and its line: after the header of a
    /// CSV file (its first line that is not blank).
    fn first_record(&self) -> Result<(u64, u64)> {
        if self.format != Format::Csv {
            return Ok((0, 1));
        }
        use std::io::BufRead;
        let file = std::fs::File::open(&self.path).map_err(|e| {
            Error::input(format!("cannot read {}", self.path.display())).caused_by(e)
        })?;
        let mut reader = std::io::BufReader::new(file);
        let (mut offset, mut line) = (0u64, 1u64);
        let mut text = Vec::new();
        loop {
            text.clear();
            let n = reader.read_until(b'\n', &mut text).map_err(|e| {
                Error::input(format!("cannot read {}", self.path.display())).caused_by(e)
            })?;
            offset += n as u64;
            line += 1;
            if n == 0 || !text.iter().all(u8::is_ascii_whitespace) {
                return Ok((offset, line));
            }
        }
    }
}

impl SourceConnector for Stdin {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        Ok(text(at, Bytes::stdin(), "stdin".into(), self.format))
    }

    fn describe(&self) -> String {
        format!("stdin ({})", self.format.name())
    }

    fn label(&self) -> String {
        format!("{:?} stdin", self.format).to_lowercase()
    }

    fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        (guarantee != Guarantee::AtMostOnce).then(|| {
            Error::refused(
                "stdin cannot be read again after a crash, so a run from stdin cannot be \
                 exactly-once (or at-least-once): what was read since the last checkpoint \
                 is lost. Read from a file, or accept that loss",
            )
            .with_fix(Fix::AcceptLoss)
        })
    }
}

/// Standard output, as JSON lines.
#[derive(Debug, Clone)]
pub struct Stdout;

/// A file to write.
#[derive(Debug, Clone)]
pub struct FileSink {
    /// Resolved against the pipeline file's folder.
    pub path: PathBuf,
    /// As the pipeline file names it.
    pub written: String,
    /// Its format.
    pub format: Format,
}

impl SinkConnector for Stdout {
    fn open_at(&self, _schema: SchemaRef, _length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        Ok(sink::stdout())
    }

    fn describe(&self) -> String {
        "stdout".into()
    }

    fn label(&self) -> String {
        "stdout".into()
    }

    fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        (guarantee == Guarantee::ExactlyOnce).then(|| {
            Error::refused(
                "stdout cannot take back what it printed, so after a crash the lines since \
                 the last checkpoint would be printed twice. Write to a file (jsonl or csv), \
                 or accept repeats",
            )
            .with_fix(Fix::AcceptRepeats)
        })
    }

    fn refuses_distributed(&self, guarantee: Guarantee) -> Option<Error> {
        (guarantee == Guarantee::ExactlyOnce).then(|| {
            Error::refused(
                "stdout cannot take back what it printed, so after a takeover the lines since \
                 the last checkpoint are printed again. Publish to a nats sink, or accept \
                 repeats",
            )
            .with_fix(Fix::AcceptRepeats)
        })
    }
}

impl SinkConnector for FileSink {
    fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        sink::open(&self.path, self.format, schema, length)
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.path.display(), self.format.name())
    }

    fn label(&self) -> String {
        self.written.clone()
    }

    fn refuses(&self, _guarantee: Guarantee) -> Option<Error> {
        (self.format == Format::Parquet).then(|| {
            Error::refused(format!(
                "{}: Parquet files cannot be cut back to a checkpoint (their footer comes \
                 last), so they cannot be written with checkpoints yet. Write jsonl or csv, \
                 or run without checkpoints",
                self.path.display()
            ))
            .with_fix(Fix::NoCheckpoints)
        })
    }

    fn refuses_distributed(&self, _guarantee: Guarantee) -> Option<Error> {
        Some(Error::refused(format!(
            "in a distributed run (a nats source) a partition moves between processes and \
             machines, so {} would be written in pieces in many places. Publish to a nats \
             sink (type = \"nats\") instead",
            self.path.display()
        )))
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
