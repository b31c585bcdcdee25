//! The properties the fuzz targets check, shared by `cargo fuzz` (nightly,
//! `fuzz/fuzz_targets/*.rs`) and by the bounded runs of
//! `crates/sluice-pipeline/tests/fuzz.rs` on every `cargo test`.

// Each cargo-fuzz target uses one of the checks.
#![allow(dead_code)]

use arrow::datatypes::{DataType, Field, Schema};
use sluice_pipeline::{EventTime, Format, TextDecoder};
use std::path::Path;
use std::sync::Arc;

/// Any bytes as lines of `format`: every non-blank line becomes a row or a
/// dead letter, never a panic, and no line is lost.
pub fn decode(format: Format, data: &[u8]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("ts", DataType::Utf8, true),
    ]));
    let time = EventTime::new(&schema, "ts").expect("ts is in the schema");
    let mut decoder = TextDecoder::new(format, schema, time, "fuzz".into());
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
}

/// Any text as a pipeline file: reading, `--set` overrides (a first line
/// `--set KEY=VALUE`), checking and compiling its SQL return errors with a
/// position, never panic. Relative paths in it resolve against `base` (a
/// folder with the inputs it names, so that checking goes past the source).
pub fn pipeline_file(base: &Path, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (assignment, text) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("--set ") => (Some(&first[6..]), rest),
        _ => (None, text),
    };
    let text = match assignment {
        Some(a) => match sluice_pipeline::apply_override(text, a) {
            Ok(t) => t,
            Err(_) => return,
        },
        None => text.to_string(),
    };
    let path = Path::new("/nonexistent-sluice-fuzz/p.toml");
    if let Err(sluice_pipeline::Error::Invalid(error)) =
        sluice_pipeline::load_str(&text, path, base, None)
    {
        assert!(
            error.starts_with("/nonexistent-sluice-fuzz/p.toml"),
            "an error without its file: {error}"
        );
    }
}
