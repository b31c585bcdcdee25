//! Any bytes as csv lines: every non-blank line becomes a row or a dead
//! letter, never a panic, and no line is lost.
#![no_main]

use arrow::datatypes::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use sluice_pipeline::decode::{EventTime, Format, TextDecoder};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("ts", DataType::Utf8, true),
    ]));
    let time = EventTime::new(&schema, "ts").expect("ts is in the schema");
    let mut decoder = TextDecoder::new(Format::Csv, schema, time, "fuzz".into());
    let mut lines = Vec::new();
    let mut at = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push((i as u64 + 1, at..at + line.len()));
        }
        at += line.len() + 1;
    }
    let decoded = decoder.decode(data, &lines);
    let rows = decoded.rows.map_or(0, |r| r.len());
    assert_eq!(rows + decoded.dead.len(), lines.len(), "a line was lost");
});
