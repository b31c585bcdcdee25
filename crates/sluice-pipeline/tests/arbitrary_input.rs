//! Random input never panics the decoders or the pipeline-file checker (the
//! same properties as the cargo-fuzz targets in `fuzz/`, run briefly on
//! every test run).

use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use sluice_pipeline::decode::{EventTime, Format, TextDecoder};
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
        let _ = sluice_pipeline::plan::load_str(&text, &dir.join("p.toml"), dir, None);
    }

    #[test]
    fn any_expression_is_compiled_or_refused(expr in "[a-z0-9_ +*/()<>=!'-.,]{0,40}") {
        let text = format!(
            "name = \"x\"\n[source]\ntype = \"generator\"\n[[transform]]\nname = \"t\"\ntype = \"select\"\ncolumns = {{ c = {expr:?} }}\n[[transform]]\nname = \"w\"\ntype = \"window\"\nfrom = \"source\"\nwindow = {{ type = \"tumbling\", size = \"1s\" }}\naggregates = {{ a = {expr:?} }}\n[[sink]]\nfrom = \"t\"\ntype = \"stdout\"\n"
        );
        let dir = Path::new("/nonexistent-sluice-test");
        let _ = sluice_pipeline::plan::load_str(&text, &dir.join("p.toml"), dir, None);
    }
}
