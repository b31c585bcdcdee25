//! Decoding input records into [`Rows`]: JSON lines and CSV with Arrow's
//! decoders, event times, and dead letters for the records that fail.
//!
//! A chunk of lines is decoded in one call; only when that fails are its
//! lines decoded one by one, so that one bad line costs its own record and
//! not the chunk.

use crate::error::{Error, Result};
use crate::rows::Rows;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use std::ops::Range;

mod infer;

pub use infer::{csv_header, explicit_schema, infer_csv, infer_jsonl};

/// An input or output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format a name gives (`jsonl`, `json`, `ndjson`, `csv`, `parquet`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format a file's extension gives.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        Format::from_name(path.extension()?.to_str()?)
    }

    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// A record that could not be decoded or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it failed: the source or the transform.
    pub origin: String,
    /// The record's line in the source (the row number for Parquet).
    pub line: u64,
    /// Why it failed.
    pub reason: String,
    /// The record as read (a line), or as JSON when it was decoded.
    pub record: String,
}

/// Reads a type name of a `schema` table.
pub fn parse_type(name: &str) -> Option<DataType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "string" | "utf8" | "text" | "str" => DataType::Utf8,
        "int64" | "int" | "integer" | "bigint" | "long" => DataType::Int64,
        "int32" => DataType::Int32,
        "float64" | "double" | "float" => DataType::Float64,
        "float32" => DataType::Float32,
        "bool" | "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        _ => return None,
    })
}

/// The type names [`parse_type`] knows, for error messages.
pub const TYPE_NAMES: &str = "string, int64, int32, float64, float32, boolean, timestamp";

/// Finds each row's event time in the column `field`.
#[derive(Debug, Clone)]
pub struct EventTime {
    /// The column's name.
    pub field: String,
    /// The column's index in the decoded schema.
    pub index: usize,
}

impl EventTime {
    /// Checks that `field` exists in `schema` with a type that can hold an
    /// event time.
    pub fn new(schema: &Schema, field: &str) -> Result<EventTime> {
        let (index, f) = schema.column_with_name(field).ok_or_else(|| {
            Error::input(format!(
                "event_time field `{field}` is not in the input; fields: {}",
                field_names(schema)
            ))
        })?;
        match f.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Timestamp(_, _) => Ok(EventTime {
                field: field.to_string(),
                index,
            }),
            other => Err(Error::input(format!(
                "event_time field `{field}` has type {other}; it must hold epoch \
                 milliseconds (an integer) or an RFC 3339 string"
            ))),
        }
    }

    /// Each row's event time; `Err` rows say why they have none.
    pub fn times(&self, batch: &RecordBatch) -> (Int64Array, Vec<(usize, String)>) {
        let column = batch.column(self.index);
        let mut bad = Vec::new();
        let times: Int64Array = match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                let strings = cast(column, &DataType::Utf8).unwrap_or_else(|_| column.clone());
                let strings = strings.as_string::<i32>();
                strings
                    .iter()
                    .enumerate()
                    .map(|(row, value)| match value {
                        None => {
                            bad.push((row, format!("event time `{}` is missing", self.field)));
                            None
                        }
                        Some(text) => match parse_time(text) {
                            Some(ms) => Some(ms),
                            None => {
                                bad.push((
                                    row,
                                    format!(
                                        "event time `{}` = {text:?} is neither epoch \
                                         milliseconds nor an RFC 3339 time",
                                        self.field
                                    ),
                                ));
                                None
                            }
                        },
                    })
                    .collect()
            }
            DataType::Timestamp(unit, _) => {
                let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|a| cast(&a, &DataType::Int64));
                let _ = unit;
                self.check_nulls(ms, &mut bad)
            }
            _ => self.check_nulls(cast(column, &DataType::Int64), &mut bad),
        };
        (times, bad)
    }

    fn check_nulls(
        &self,
        cast_result: Result<ArrayRef, arrow::error::ArrowError>,
        bad: &mut Vec<(usize, String)>,
    ) -> Int64Array {
        match cast_result {
            Ok(array) => {
                let array = array.as_primitive::<arrow::datatypes::Int64Type>().clone();
                for row in 0..array.len() {
                    if array.is_null(row) {
                        bad.push((row, format!("event time `{}` is missing", self.field)));
                    }
                }
                array
            }
            Err(error) => {
                let len = bad.len();
                bad.push((0, format!("event time `{}`: {error}", self.field)));
                let _ = len;
                Int64Array::new_null(0)
            }
        }
    }
}

/// Epoch milliseconds from digits or an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The names of a schema's fields, for error messages.
pub fn field_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes chunks of JSON or CSV lines with a known schema.
pub struct TextDecoder {
    format: Format,
    schema: SchemaRef,
    time: EventTime,
    origin: String,
    /// Arrow's decoders, kept between chunks (their buffers are reused);
    /// dropped after an error.
    json: Option<arrow::json::reader::Decoder>,
    csv: Option<arrow::csv::reader::Decoder>,
    capacity: usize,
}

/// What one chunk decoded to.
pub struct Decoded {
    /// The rows that decoded, with their times.
    pub rows: Option<Rows>,
    /// The lines that failed.
    pub dead: Vec<DeadLetter>,
}

impl TextDecoder {
    /// A decoder of `format` (JSON lines or CSV without its header) into
    /// `schema`; `origin` names the source in dead letters.
    pub fn new(format: Format, schema: SchemaRef, time: EventTime, origin: String) -> Self {
        Self {
            format,
            schema,
            time,
            origin,
            json: None,
            csv: None,
            capacity: 0,
        }
    }

    /// The schema rows are decoded into.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn json_decoder(
        &self,
        rows: usize,
    ) -> Result<arrow::json::reader::Decoder, arrow::error::ArrowError> {
        arrow::json::ReaderBuilder::new(self.schema.clone())
            .with_coerce_primitive(true)
            .with_batch_size(rows.max(1))
            .build_decoder()
    }

    fn csv_decoder(&self, rows: usize) -> arrow::csv::reader::Decoder {
        arrow::csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_batch_size(rows.max(1))
            .build_decoder()
    }

    /// Decodes a chunk with the kept decoders (made for `rows` or more).
    fn decode_chunk(&mut self, bytes: &[u8], rows: usize) -> Result<RecordBatch> {
        if rows > self.capacity {
            self.capacity = rows;
            self.json = None;
            self.csv = None;
        }
        let result = match self.format {
            Format::Jsonl => {
                let mut decoder = match self.json.take() {
                    Some(decoder) => decoder,
                    None => self
                        .json_decoder(self.capacity)
                        .map_err(|e| Error::input(clean_arrow(&e.to_string())))?,
                };
                let result = run_json(&mut decoder, bytes);
                if result.is_ok() {
                    self.json = Some(decoder);
                }
                result
            }
            Format::Csv => {
                let mut decoder = self
                    .csv
                    .take()
                    .unwrap_or_else(|| self.csv_decoder(self.capacity));
                let result = run_csv(&mut decoder, bytes);
                if result.is_ok() {
                    self.csv = Some(decoder);
                }
                result
            }
            Format::Parquet => unreachable!("Parquet is not a text format"),
        };
        self.check_rows(result, rows)
    }

    fn check_rows(
        &self,
        result: Result<Option<RecordBatch>, arrow::error::ArrowError>,
        rows: usize,
    ) -> Result<RecordBatch> {
        match result {
            Ok(Some(batch)) if batch.num_rows() == rows => Ok(batch),
            Ok(Some(batch)) => Err(Error::input(format!(
                "expected {rows} record(s), found {}",
                batch.num_rows()
            ))),
            Ok(None) if rows == 0 => Ok(RecordBatch::new_empty(self.schema.clone())),
            Ok(None) => Err(Error::input("no record on the line")),
            Err(error) => Err(Error::input(clean_arrow(&error.to_string()))),
        }
    }

    /// Decodes one line with fresh decoders (after a chunk failed).
    fn decode_bytes(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch> {
        let result = match self.format {
            Format::Jsonl => self
                .json_decoder(rows)
                .and_then(|mut decoder| run_json(&mut decoder, bytes)),
            Format::Csv => run_csv(&mut self.csv_decoder(rows), bytes),
            Format::Parquet => unreachable!("Parquet is not a text format"),
        };
        self.check_rows(result, rows)
    }

    /// Decodes the lines of `region`: `lines` holds each non-blank line's
    /// number and byte range (without its newline).
    pub fn decode(&mut self, region: &[u8], lines: &[(u64, Range<usize>)]) -> Decoded {
        let mut dead = Vec::new();
        // For each decoded row, its index in `lines`.
        let mut positions: Vec<usize> = Vec::new();
        let (batch, line_numbers) = match self.decode_chunk(region, lines.len()) {
            Ok(batch) => {
                positions.extend(0..lines.len());
                (batch, lines.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            }
            Err(_) => {
                // Line by line: keep the good ones, dead-letter the others.
                let mut good = Vec::new();
                let mut numbers = Vec::new();
                for (position, (number, range)) in lines.iter().enumerate() {
                    let line = &region[range.clone()];
                    match self.decode_bytes(line, 1) {
                        Ok(batch) => {
                            good.push(batch);
                            numbers.push(*number);
                            positions.push(position);
                        }
                        Err(reason) => dead.push(DeadLetter {
                            origin: self.origin.clone(),
                            line: *number,
                            reason: reason.to_string(),
                            record: String::from_utf8_lossy(line).into_owned(),
                        }),
                    }
                }
                let batch = concat_batches(&self.schema, &good)
                    .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()));
                (batch, numbers)
            }
        };
        let rows = self.with_times(batch, line_numbers, &mut dead, |row| {
            let (_, range) = &lines[positions[row]];
            String::from_utf8_lossy(&region[range.clone()]).into_owned()
        });
        Decoded { rows, dead }
    }

    /// Adds event times, dead-lettering rows without one.
    pub fn with_times(
        &self,
        batch: RecordBatch,
        lines: Vec<u64>,
        dead: &mut Vec<DeadLetter>,
        record: impl Fn(usize) -> String,
    ) -> Option<Rows> {
        with_times(&self.time, &self.origin, batch, lines, dead, record)
    }
}

/// Feeds all of `bytes` to a JSON decoder and flushes it.
fn run_json(
    decoder: &mut arrow::json::reader::Decoder,
    bytes: &[u8],
) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let mut at = 0;
    while at < bytes.len() {
        let read = decoder.decode(&bytes[at..])?;
        if read == 0 {
            break;
        }
        at += read;
    }
    if at < bytes.len() {
        return Err(arrow::error::ArrowError::JsonError(
            "more records than lines".into(),
        ));
    }
    decoder.flush()
}

/// Feeds all of `bytes` to a CSV decoder and flushes it.
fn run_csv(
    decoder: &mut arrow::csv::reader::Decoder,
    bytes: &[u8],
) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let mut at = 0;
    while at < bytes.len() {
        match decoder.decode(&bytes[at..])? {
            0 => break,
            read => at += read,
        }
    }
    // A last line without its newline ends the record.
    if !bytes.ends_with(b"\n") {
        decoder.decode(&[])?;
    }
    decoder.flush()
}

/// Adds event times from `time` to `batch`, dead-lettering rows without
/// one; `record(row)` gives the text of a row for its dead letter.
pub fn with_times(
    time: &EventTime,
    origin: &str,
    batch: RecordBatch,
    lines: Vec<u64>,
    dead: &mut Vec<DeadLetter>,
    record: impl Fn(usize) -> String,
) -> Option<Rows> {
    if batch.num_rows() == 0 {
        return None;
    }
    let (times, bad) = time.times(&batch);
    let lines = UInt64Array::from(lines);
    if bad.is_empty() && times.len() == batch.num_rows() {
        return Some(Rows::new(batch, times, lines));
    }
    if times.len() != batch.num_rows() {
        // The whole column failed to convert.
        for (row, &line) in lines.values().iter().enumerate() {
            dead.push(DeadLetter {
                origin: origin.to_string(),
                line,
                reason: bad.first().map_or_else(String::new, |(_, r)| r.clone()),
                record: record(row),
            });
        }
        return None;
    }
    let mut keep = vec![true; batch.num_rows()];
    for (row, reason) in bad {
        keep[row] = false;
        dead.push(DeadLetter {
            origin: origin.to_string(),
            line: lines.value(row),
            reason,
            record: record(row),
        });
    }
    let indices: UInt32Array = keep
        .iter()
        .enumerate()
        .filter(|(_, k)| **k)
        .map(|(i, _)| i as u32)
        .collect();
    let rows = Rows::new(batch, times, lines).take(&indices).ok()?;
    (!rows.is_empty()).then_some(rows)
}

/// Arrow's decoder messages, shorter.
fn clean_arrow(message: &str) -> String {
    let message = message
        .strip_prefix("Json error: ")
        .or_else(|| message.strip_prefix("Parser error: "))
        .or_else(|| message.strip_prefix("Csv error: "))
        .unwrap_or(message);
    // CSV's decoder counts lines from the chunk; the dead letter has the
    // real line.
    let mut message = message.to_string();
    for marker in [" for line ", " at line "] {
        if let Some(at) = message.find(marker) {
            let rest = &message[at + marker.len()..];
            let after = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            message = format!("{}{}", &message[..at], after);
        }
    }
    // "Row data: '[...]'" repeats the record, which the dead letter has.
    if let Some(at) = message.find(". Row data: ") {
        message.truncate(at);
    }
    message.trim().to_string()
}

/// A row as one JSON object, for dead letters and late events.
pub fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
        if writer.write(&batch.slice(row, 1)).is_err() || writer.finish().is_err() {
            return String::new();
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn decoder(format: Format) -> TextDecoder {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
            Field::new("ts", DataType::Int64, true),
        ]));
        let time = EventTime::new(&schema, "ts").unwrap();
        TextDecoder::new(format, schema, time, "source".into())
    }

    fn lines_of(text: &str) -> Vec<(u64, Range<usize>)> {
        let mut out = Vec::new();
        let mut at = 0;
        for (i, line) in text.split('\n').enumerate() {
            if !line.trim().is_empty() {
                out.push((i as u64 + 1, at..at + line.len()));
            }
            at += line.len() + 1;
        }
        out
    }

    #[test]
    fn a_bad_json_line_costs_only_its_record() {
        let text = "{\"k\":\"a\",\"v\":1.5,\"ts\":10}\n{not json\n{\"k\":\"b\",\"v\":\"hot\",\"ts\":11}\n{\"k\":\"c\",\"v\":2,\"ts\":12}\n{\"k\":\"d\",\"v\":2}\n";
        let decoded = decoder(Format::Jsonl).decode(text.as_bytes(), &lines_of(text));
        let rows = decoded.rows.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.lines.values().to_vec(), vec![1, 4]);
        assert_eq!(rows.times.values().to_vec(), vec![10, 12]);
        let lines: Vec<u64> = decoded.dead.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3, 5]);
        assert_eq!(decoded.dead[0].record, "{not json");
        assert!(
            decoded.dead[2].reason.contains("missing"),
            "{}",
            decoded.dead[2].reason
        );
    }

    #[test]
    fn a_csv_row_with_the_wrong_number_of_fields_is_dead_lettered() {
        let text = "a,1.5,10\nb,2.5\nc,3.5,2026-01-01T00:00:00Z\n";
        let decoded = decoder(Format::Csv).decode(text.as_bytes(), &lines_of(text));
        assert_eq!(decoded.dead.len(), 2, "{:?}", decoded.dead);
        assert_eq!(decoded.dead[0].line, 2);
        // The RFC 3339 time fails the int64 column: a type error, dead-lettered.
        assert_eq!(decoded.rows.unwrap().len(), 1);
    }

    #[test]
    fn string_event_times_accept_rfc3339_and_digits() {
        assert_eq!(parse_time("1000"), Some(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_time("yesterday"), None);
    }
}
