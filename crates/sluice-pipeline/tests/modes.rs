//! The same pipeline gives the same results whichever way it runs: event by
//! event, in micro-batches of any size, on one worker or several.

use sluice_pipeline::load_str;
use sluice_pipeline::{progress, run};
use std::collections::BTreeMap;
use std::path::Path;

const PIPELINE: &str = r#"name = "modes"

[source]
type = "generator"
events = 6000
keys = 7
seed = 11
interval_ms = 37

[[transform]]
name = "tumbling"
type = "window"
key = "sensor"
window = { type = "tumbling", size = "10s" }
aggregates = { n = "count(*)", low = "min(temperature)", high = "max(temperature)", mean = "avg(temperature)" }

[[transform]]
name = "sliding"
type = "window"
from = "source"
key = ["sensor"]
window = { type = "sliding", size = "30s", slide = "10s" }
aggregates = { n = "count(*)", high = "max(temperature)" }

[[transform]]
name = "count"
type = "window"
from = "source"
key = ["sensor"]
window = { type = "count", size = 50 }
aggregates = { n = "count(*)", total = "sum(temperature)" }

[[transform]]
name = "everything"
type = "window"
from = "source"
window = { type = "tumbling", size = "1m" }
aggregates = { n = "count(*)", sensors = "approx_distinct(sensor)" }

[[sink]]
from = "tumbling"
type = "file"
path = "tumbling.jsonl"

[[sink]]
from = "sliding"
type = "file"
path = "sliding.jsonl"

[[sink]]
from = "count"
type = "file"
path = "count.jsonl"

[[sink]]
from = "everything"
type = "file"
path = "everything.jsonl"
"#;

/// Each output's rows, parsed and sorted.
fn run_with(mode: &str, batch_size: usize, workers: usize) -> BTreeMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{PIPELINE}\n[execution]\nmode = \"{mode}\"\nbatch_size = {batch_size}\n");
    let plan = load_str(&text, Path::new("modes.toml"), dir.path(), Some(workers)).unwrap();
    let summary = run(plan, &progress_of()).unwrap();
    assert_eq!(summary.read, 6000);
    assert_eq!(summary.processed, 6000);
    outputs(dir.path())
}

/// Each output's rows in `dir`, floats rounded, sorted.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in ["tumbling", "sliding", "count", "everything"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.jsonl"))).unwrap();
        let mut rows: Vec<String> = text.lines().map(round_floats).collect();
        rows.sort();
        out.insert(name.to_string(), rows);
    }
    out
}

fn progress_of() -> sluice_pipeline::Progress {
    let dir = tempfile::tempdir().unwrap();
    let plan = load_str(PIPELINE, Path::new("modes.toml"), dir.path(), None).unwrap();
    progress(&plan)
}

/// Floats to 9 significant digits: sums in another order differ in the last
/// bits.
fn round_floats(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    let object = value.as_object().unwrap();
    object
        .iter()
        .map(|(k, v)| match v.as_f64() {
            Some(f) if !v.is_i64() && !v.is_u64() => format!("{k}={f:.9e}"),
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn event_mode_micro_batches_and_workers_agree() {
    let reference = run_with("micro-batch", 4096, 1);
    assert_eq!(
        reference["everything"].len(),
        4,
        "{:?}",
        reference["everything"]
    );
    assert!(
        reference["everything"][0].contains("sensors=7"),
        "{:?}",
        reference["everything"]
    );
    // 6000 events over 7 keys in windows of 50: 6000 / 50 = 120 full windows
    // at most, plus one partial per key.
    assert!(
        reference["count"].len() >= 115,
        "{}",
        reference["count"].len()
    );
    for (mode, batch, workers) in [
        ("micro-batch", 1, 1),
        ("micro-batch", 333, 2),
        ("event", 4096, 1),
        ("event", 1, 3),
        ("adaptive", 4096, 1),
        ("adaptive", 4096, 2),
        ("micro-batch", 64, 8),
        ("event", 1, 5),
    ] {
        let other = run_with(mode, batch, workers);
        for (name, rows) in &reference {
            assert_eq!(
                &other[name], rows,
                "{name} differs in {mode} mode, batch {batch}, {workers} workers"
            );
        }
    }
}

#[test]
fn adaptive_mode_checks_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let load = |execution: &str| {
        let text = format!("{PIPELINE}\n[execution]\n{execution}\n");
        load_str(&text, Path::new("modes.toml"), dir.path(), None)
    };
    let plan = load("mode = \"adaptive\"\ntarget_latency = \"20ms\"").unwrap();
    assert_eq!(
        plan.execution.target_latency,
        Some(std::time::Duration::from_millis(20))
    );
    assert!(plan.describe().contains("adaptive"), "{}", plan.describe());
    // The default target.
    let plan = load("mode = \"adaptive\"").unwrap();
    assert_eq!(
        plan.execution.target_latency,
        Some(std::time::Duration::from_millis(5))
    );
    for (execution, says) in [
        (
            "mode = \"adaptive\"\ntarget_latency = \"10us\"",
            "at least 100µs",
        ),
        (
            "mode = \"adaptive\"\ntarget_latency = \"soon\"",
            "not a duration",
        ),
        ("target_latency = \"5ms\"", "for mode = \"adaptive\""),
        ("mode = \"fast\"", "\"adaptive\""),
    ] {
        let error = load(execution).err().expect(execution).to_string();
        assert!(error.contains(says), "{execution}: {error}");
        assert!(error.contains("modes.toml:"), "no place in: {error}");
    }
}

/// A Parquet input in adaptive mode is handed on in chunks the controller
/// resizes while the file is read; the answers are those of micro-batches.
#[test]
fn a_parquet_input_gives_the_same_answers_in_adaptive_mode() {
    let dir = tempfile::tempdir().unwrap();
    // PIPELINE's source, written as it is to Parquet.
    let source = &PIPELINE[..PIPELINE.find("[[transform]]").unwrap()];
    let writer = format!(
        "{source}\n[[sink]]\nfrom = \"source\"\ntype = \"file\"\npath = \"readings.parquet\"\n"
    );
    let plan = load_str(&writer, Path::new("writer.toml"), dir.path(), None).unwrap();
    let watch = progress(&plan);
    run(plan, &watch).unwrap();

    let reader = |mode: &str, workers: usize| {
        let out = tempfile::tempdir().unwrap();
        let input = dir.path().join("readings.parquet");
        // The windows of PIPELINE, read from the Parquet file.
        let transforms = &PIPELINE[PIPELINE.find("[[transform]]").unwrap()..];
        let text = format!(
            "name = \"from-parquet\"\n[source]\ntype = \"file\"\npath = {:?}\nevent_time = \"ts\"\n\n\
             {transforms}\n[execution]\nmode = \"{mode}\"\nbatch_size = 500\n",
            input.display().to_string()
        );
        let plan = load_str(&text, Path::new("reader.toml"), out.path(), Some(workers)).unwrap();
        let watch = progress(&plan);
        let summary = run(plan, &watch).unwrap();
        assert_eq!(summary.read, 6000, "{mode}");
        assert_eq!(summary.processed, 6000, "{mode}");
        outputs(out.path())
    };
    let reference = reader("micro-batch", 1);
    assert_eq!(reference, run_with("micro-batch", 4096, 1));
    assert_eq!(reader("adaptive", 1), reference);
    assert_eq!(reader("adaptive", 2), reference);
}

/// `rate` paces a source without changing what it reads; a rate that is
/// not above zero is an error at its place in the file.
#[test]
fn a_paced_source_reads_at_its_rate_and_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let paced = PIPELINE.replace("interval_ms = 37\n", "interval_ms = 37\nrate = 4000\n");
    assert_ne!(paced, PIPELINE);
    let plan = load_str(&paced, Path::new("modes.toml"), dir.path(), None).unwrap();
    assert_eq!(plan.source.rate, Some(4000.0));
    let started = std::time::Instant::now();
    let watch = progress(&plan);
    run(plan, &watch).unwrap();
    // 6000 events at 4000 a second: at least a second and a half.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400));
    assert_eq!(outputs(dir.path()), run_with("micro-batch", 4096, 1));
    for bad in ["rate = 0", "rate = -5", "rate = \"fast\""] {
        let text = PIPELINE.replace("interval_ms = 37\n", &format!("interval_ms = 37\n{bad}\n"));
        let error = load_str(&text, Path::new("modes.toml"), dir.path(), None)
            .err()
            .expect(bad)
            .to_string();
        assert!(error.contains("modes.toml:9:"), "{bad}: {error}");
    }
}
