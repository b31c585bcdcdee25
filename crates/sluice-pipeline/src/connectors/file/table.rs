//! Checking and compiling the tables of file, stdin and stdout connectors:
//! paths against the pipeline file's folder, formats, and the input's
//! schema (given, or inferred from a sample of the file).

use super::{File, FileSink, Stdin, Stdout};
use crate::config::diag::{at, Failure, Span};
use crate::connectors::{CompiledSource, SinkConnector, SinkTable, SourceTable};
use crate::error::Error;
use crate::format::{self, Format};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::path::Path;
use std::sync::Arc;

/// How many bytes of an input to read to infer its schema.
const SAMPLE_BYTES: u64 = 1 << 20;

/// A file: its path (against the pipeline file's folder), format and schema.
pub(super) fn file_source(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let path_value = t
        .get::<String>("path")?
        .ok_or_else(|| at(t.span(), "a file source needs `path`, the input file"))?;
    let path = t.base.join(path_value.get_ref());
    let format = t.format(Format::from_path(&path))?;
    if !path.exists() {
        return Err(Failure::Runtime(Error::input(format!(
            "cannot read {}: no such file (from `path` of the source)",
            path.display()
        ))));
    }
    let time_field = t.spec.event_time.as_ref().map(|f| f.get_ref().as_str());
    let schema = input_schema(format, &path, t.schema(), time_field, path_value.span())?;
    Ok(CompiledSource {
        connector: Arc::new(File {
            path,
            format,
            readers: t.readers()?,
        }),
        schema,
    })
}

/// Standard input: JSON lines or CSV, with a given schema (stdin cannot be
/// read ahead).
pub(super) fn stdin_source(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let format = t.format(None)?;
    if format == Format::Parquet {
        let span = t.spec.format.as_ref().map_or(t.span(), |f| f.span());
        return Err(at(
            span,
            "stdin takes \"jsonl\" or \"csv\"; read Parquet from a file",
        ));
    }
    let fields = t.required_schema("stdin")?;
    Ok(CompiledSource {
        connector: Arc::new(Stdin { format }),
        schema: format::explicit_schema(&fields),
    })
}

/// Standard output: JSON lines only.
pub(super) fn stdout_sink(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    if let Some(format) = t.format()? {
        if *format.get_ref() != Format::Jsonl {
            return Err(at(
                format.span(),
                "stdout writes JSON lines; remove `format`",
            ));
        }
    }
    Ok(Box::new(Stdout))
}

/// A file: its path (against the pipeline file's folder) and format (by
/// default from its extension).
pub(super) fn file_sink(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    let format = t.format()?;
    let written = t
        .get::<String>("path")?
        .ok_or_else(|| at(t.span(), "a file sink needs `path`, the output file"))?;
    let path = t.base.join(written.get_ref());
    let format = match format {
        Some(format) => *format.get_ref(),
        None => Format::from_path(&path).ok_or_else(|| {
            at(
                written.span(),
                "can't tell the format from the extension; name the file .jsonl, .csv or \
                 .parquet, or add format = \"jsonl\"",
            )
        })?,
    };
    Ok(Box::new(FileSink {
        path,
        written: written.into_inner(),
        format,
    }))
}

/// The first whole lines of `path`, up to [`SAMPLE_BYTES`].
fn sample(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        Failure::Runtime(Error::input(format!("cannot read {}", path.display())).caused_by(e))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(SAMPLE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    // Only whole lines.
    if bytes.len() as u64 == SAMPLE_BYTES {
        if let Some(nl) = memchr::memrchr(b'\n', &bytes) {
            bytes.truncate(nl + 1);
        }
    }
    Ok(bytes)
}

/// The schema of a file: Parquet's own, the table's, or inferred from a
/// sample (JSON lines, CSV).
fn input_schema(
    format: Format,
    path: &Path,
    explicit: Option<&[(String, DataType)]>,
    time_field: Option<&str>,
    span: Span,
) -> Result<SchemaRef, Failure> {
    match format {
        #[cfg(feature = "parquet")]
        Format::Parquet => super::ParquetSource::schema(path).map_err(Failure::Runtime),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => Err(Failure::Runtime(super::no_parquet(path))),
        Format::Jsonl => match explicit {
            Some(fields) => Ok(format::explicit_schema(fields)),
            None => format::infer_jsonl(&sample(path)?, time_field)
                .map(Arc::new)
                .map_err(|m| at(span, format!("{}: {m}", path.display()))),
        },
        Format::Csv => {
            let bytes = sample(path)?;
            match explicit {
                Some(fields) => csv_columns(&format::csv_header(&bytes), fields, path, span),
                None => format::infer_csv(&bytes, time_field)
                    .map(|schema| {
                        // Nullable, for rows with empty fields.
                        let fields: Vec<Field> = schema
                            .fields()
                            .iter()
                            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                            .collect();
                        Arc::new(Schema::new(fields))
                    })
                    .map_err(|m| at(span, format!("{}: {m}", path.display()))),
            }
        }
    }
}

/// A CSV file's schema: its columns follow the header, their types come
/// from the table's `schema`.
fn csv_columns(
    header: &[String],
    fields: &[(String, DataType)],
    path: &Path,
    span: Span,
) -> Result<SchemaRef, Failure> {
    let mut out = Vec::new();
    for name in header {
        let t = fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| {
                at(
                    span.clone(),
                    format!(
                        "{}: column `{name}` of the header is not in `schema`; add it",
                        path.display()
                    ),
                )
            })?;
        out.push((name.clone(), t));
    }
    Ok(format::explicit_schema(&out))
}
