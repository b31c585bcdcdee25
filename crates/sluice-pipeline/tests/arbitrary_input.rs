//! Random input never panics the decoders or the pipeline-file checker (the
//! same properties as the cargo-fuzz targets in `fuzz/`, run briefly on
//! every test run).

use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use sluice_pipeline::{EventTime, Format, TextDecoder};
use std::path::Path;
use std::sync::Arc;

fn lines(data: &[u8]) -> Vec<(u64, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push((i as u64 + 1, at..at + line.len()));
        }
        at += line.len() + 1;
    }
    out
}

fn decoder(format: Format) -> TextDecoder {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("ts", DataType::Utf8, true),
    ]));
    let time = EventTime::new(&schema, "ts").unwrap();
    TextDecoder::new(format, schema, time, "test".into())
}

/// Lines that look like records, with damage.
fn record_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(r#"{"k":"a","v":1.5,"ts":10}"#.to_string()),
            Just(r#"{"k":"b","v":"x","ts":"2026-01-01T00:00:00Z"}"#.to_string()),
            Just("a,1.5,10".to_string()),
            Just("\"q,uoted\",2,11".to_string()),
            "[ -~]{0,40}",
            Just(String::new()),
        ],
        0..30,
    )
    .prop_map(|v| v.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_line_becomes_a_row_or_a_dead_letter(text in record_like(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
        for format in [Format::Jsonl, Format::Csv] {
            for data in [text.as_bytes(), raw.as_slice()] {
                let lines = lines(data);
                let decoded = decoder(format).decode(data, &lines);
                let rows = decoded.rows.map_or(0, |r| r.len());
                prop_assert_eq!(rows + decoded.dead.len(), lines.len());
            }
        }
    }

    #[test]
    fn any_pipeline_text_is_checked_without_panicking(text in "[a-z_=\"\\[\\]{}., \n0-9*()<>']{0,300}") {
        let dir = Path::new("/nonexistent-sluice-test");
        let _ = sluice_pipeline::load_str(&text, &dir.join("p.toml"), dir, None);
    }

    #[test]
    fn any_expression_is_compiled_or_refused(expr in "[a-z0-9_ +*/()<>=!'-.,]{0,40}") {
        let text = format!(
            "name = \"x\"\n[source]\ntype = \"generator\"\n[[transform]]\nname = \"t\"\ntype = \"select\"\ncolumns = {{ c = {expr:?} }}\n[[transform]]\nname = \"w\"\ntype = \"window\"\nfrom = \"source\"\nwindow = {{ type = \"tumbling\", size = \"1s\" }}\naggregates = {{ a = {expr:?} }}\n[[sink]]\nfrom = \"t\"\ntype = \"stdout\"\n"
        );
        let dir = Path::new("/nonexistent-sluice-test");
        let _ = sluice_pipeline::load_str(&text, &dir.join("p.toml"), dir, None);
    }
}

/// A duration as a user might write one, valid or not.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0s".to_string()),
        Just("500us".to_string()),
        Just("1.5ms".to_string()),
        Just("1ms".to_string()),
        Just("37ms".to_string()),
        Just("1s".to_string()),
        Just("10s".to_string()),
        Just("1h".to_string()),
        Just("365d".to_string()),
        Just("11y".to_string()),
        Just("18446744073709551615s".to_string()),
        Just("-1s".to_string()),
        Just("soon".to_string()),
        (1u64..100_000).prop_map(|n| format!("{n}ms")),
    ]
}

/// A window table, valid or not.
fn window_text() -> impl Strategy<Value = String> {
    prop_oneof![
        duration_text().prop_map(|size| format!(r#"{{ type = "tumbling", size = "{size}" }}"#)),
        (duration_text(), duration_text()).prop_map(|(size, slide)| format!(
            r#"{{ type = "sliding", size = "{size}", slide = "{slide}" }}"#
        )),
        duration_text().prop_map(|gap| format!(r#"{{ type = "session", gap = "{gap}" }}"#)),
        (-2i64..300).prop_map(|n| format!(r#"{{ type = "count", size = {n} }}"#)),
        Just(r#"{ type = "hopping", size = "1s" }"#.to_string()),
    ]
}

/// A pipeline file over a small generated input, its numbers and durations
/// drawn from valid and invalid values. At most 60 events: a valid sliding
/// window may put each event in 10,000 panes (a 10 s window sliding by 1 ms),
/// each a result row, which costs seconds per hundred events in a debug
/// build; the test must stay short on a loaded machine.
fn pipeline_text() -> impl Strategy<Value = String> {
    (
        (0i64..60, -1i64..20, 0u64..10_000, prop::bool::ANY),
        (window_text(), prop::option::of(duration_text())),
        (
            -1i64..5000,
            -1i64..5,
            prop::sample::select(vec!["event", "micro-batch", "adaptive"]),
        ),
        prop::option::of(duration_text()),
    )
        .prop_map(
            |(
                (events, keys, interval, disorder),
                (window, lateness),
                (batch, workers, mode),
                idle,
            )| {
                let lateness = lateness
                    .map(|d| format!("allowed_lateness = \"{d}\"\n"))
                    .unwrap_or_default();
                let idle = idle
                    .map(|d| format!("idle_timeout = \"{d}\"\n"))
                    .unwrap_or_default();
                let disorder = if disorder {
                    "max_out_of_orderness = \"2s\"\n"
                } else {
                    ""
                };
                format!(
                    r#"name = "random"

[source]
type = "generator"
events = {events}
keys = {keys}
interval_ms = {interval}
{disorder}{idle}
[execution]
mode = "{mode}"
batch_size = {batch}
workers = {workers}

[[transform]]
name = "w"
type = "window"
key = "sensor"
window = {window}
aggregates = {{ n = "count(*)", s = "sum(temperature)", sd = "stddev(temperature)" }}
{lateness}
[[sink]]
from = "w"
type = "file"
path = "out.jsonl"
"#
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// `validate` refuses a file at a position, or the file runs on a small
    /// input to its end without panicking.
    #[test]
    fn a_pipeline_file_is_refused_at_a_position_or_runs(text in pipeline_text()) {
        let dir = tempfile::tempdir().unwrap();
        match sluice_pipeline::load_str(&text, Path::new("p.toml"), dir.path(), None) {
            Err(sluice_pipeline::Error::Invalid(message)) => {
                let position = message
                    .strip_prefix("p.toml:")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|line| line.parse::<usize>().ok());
                prop_assert!(position.is_some_and(|l| l > 0), "no position: {}", message);
            }
            Err(other) => prop_assert!(false, "not a diagnostic: {}\n{}", other, text),
            Ok(plan) => {
                let progress = sluice_pipeline::progress(&plan);
                let result = sluice_pipeline::run(plan, &progress);
                if let Err(e) = &result {
                    prop_assert!(!e.to_string().contains("panic"), "{}\n{}", e, text);
                }
                prop_assert!(result.is_ok(), "{:?}\n{}", result.err(), text);
            }
        }
    }
}
