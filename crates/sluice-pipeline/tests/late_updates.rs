//! One late-update semantics on both paths: the same events, one at a
//! time (one per batch), through a typed window (`sluice`) and a pipeline
//! file's window give the same changelog, row for row: what each row changes (insert,
//! update, delete), the window, the revision and the count. The expected
//! changelogs are also written out by hand, so that both paths agreeing on
//! something wrong fails too.

use sluice::prelude::*;
use sluice::watermark::WatermarkStrategy;
use sluice::window::Change;
use sluice_pipeline::{load_str, progress, run};
use std::path::Path;
use std::time::Duration;

/// One row of a window's changelog: op, key, start, end, revision, count.
type Row = (&'static str, String, i64, i64, u32, u64);

const SECOND: i64 = 1000;

/// The typed API, one event per poll and per batch.
fn typed(events: &[(&'static str, i64)], window: Window, lateness: i64) -> Vec<Row> {
    let pipeline = Pipeline::new().with_poll_size(1).with_workers(1);
    let windowed = pipeline
        .source(IterSource::new(events.to_vec()).with_event_time(|e| e.1))
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .batch(FlushPolicy::EachEvent)
        .key_by(|e| e.0.to_string())
        .window(window)
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .aggregate(Count);
    let rows = windowed.results.collect();
    pipeline.run().unwrap();
    rows.take()
        .into_iter()
        .map(|r| {
            let op = r.change().as_str();
            (op, r.key, r.window_start, r.window_end, r.revision, r.value)
        })
        .collect()
}

/// A pipeline file in event mode, one worker.
fn declared(events: &[(&'static str, i64)], window: &str, lateness: i64) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let input: String = events
        .iter()
        .map(|(user, ts)| format!("{{\"user\":\"{user}\",\"ts\":{ts}}}\n"))
        .collect();
    std::fs::write(dir.path().join("clicks.jsonl"), input).unwrap();
    let text = format!(
        r#"name = "late_updates"

[source]
type = "file"
path = "clicks.jsonl"
event_time = "ts"
max_out_of_orderness = "0ms"

[execution]
mode = "event"
workers = 1

[[transform]]
name = "visits"
type = "window"
key = ["user"]
window = {window}
aggregates = {{ n = "count(*)" }}
allowed_lateness = "{lateness}ms"

[[sink]]
from = "visits"
type = "file"
path = "visits.jsonl"
"#
    );
    let plan = load_str(&text, Path::new("late_updates.toml"), dir.path(), None).unwrap();
    let watch = progress(&plan);
    run(plan, &watch).unwrap();
    let written = std::fs::read_to_string(dir.path().join("visits.jsonl")).unwrap();
    written
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let op = match v["op"].as_str() {
                Some("insert") => Change::Insert,
                Some("update") => Change::Update,
                Some("delete") => Change::Delete,
                other => panic!("op {other:?} in {line}"),
            };
            (
                op.as_str(),
                v["user"].as_str().unwrap().to_string(),
                v["window_start"].as_i64().unwrap(),
                v["window_end"].as_i64().unwrap(),
                v["revision"].as_u64().unwrap() as u32,
                v["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row(op: &'static str, start: i64, end: i64, revision: u32, n: u64) -> Row {
    (op, "a".to_string(), start, end, revision, n)
}

#[test]
fn a_late_event_updates_a_time_window_the_same_on_both_paths() {
    // Window [0, 10 s) fires at 12 s; two late events update it (revisions
    // 1 and 2); one at 25 s is beyond 10 s + 10 s of lateness.
    let events = [
        ("a", SECOND),
        ("a", 12 * SECOND),
        ("a", 5 * SECOND),
        ("a", 9 * SECOND),
        ("a", 25 * SECOND),
        ("a", 3 * SECOND),
    ];
    let expected = vec![
        row("insert", 0, 10 * SECOND, 0, 1),
        row("update", 0, 10 * SECOND, 1, 2),
        row("update", 0, 10 * SECOND, 2, 3),
        row("insert", 10 * SECOND, 20 * SECOND, 0, 1),
        row("insert", 20 * SECOND, 30 * SECOND, 0, 1),
    ];
    let lateness = 10 * SECOND;
    let typed = typed(&events, Window::tumbling(Duration::from_secs(10)), lateness);
    assert_eq!(typed, expected, "typed");
    let declared = declared(&events, r#"{ type = "tumbling", size = "10s" }"#, lateness);
    assert_eq!(declared, expected, "pipeline file");
}

#[test]
fn a_late_event_that_opens_a_window_behind_the_watermark_emits_it_at_once_on_both_paths() {
    // At 25 s, [0, 10 s) fires; the event at 15 s opens [10 s, 20 s), whose
    // end is behind the watermark: it is emitted at once, before the update
    // the event at 5 s makes.
    let events = [
        ("a", SECOND),
        ("a", 25 * SECOND),
        ("a", 15 * SECOND),
        ("a", 5 * SECOND),
    ];
    let expected = vec![
        row("insert", 0, 10 * SECOND, 0, 1),
        row("insert", 10 * SECOND, 20 * SECOND, 0, 1),
        row("update", 0, 10 * SECOND, 1, 2),
        row("insert", 20 * SECOND, 30 * SECOND, 0, 1),
    ];
    let lateness = 30 * SECOND;
    let typed = typed(&events, Window::tumbling(Duration::from_secs(10)), lateness);
    assert_eq!(typed, expected, "typed");
    let declared = declared(&events, r#"{ type = "tumbling", size = "10s" }"#, lateness);
    assert_eq!(declared, expected, "pipeline file");
}

#[test]
fn a_late_event_that_bridges_sessions_deletes_them_the_same_on_both_paths() {
    // Gap 10 s. Sessions [0, 10 s) and [20 s, 30 s) fire; a late event at
    // 9 s grows the first to [0, 19 s) (delete, insert); one at 15 s
    // bridges it with the second into [0, 30 s) (two deletes, insert); one
    // at 25 s grows that to [0, 35 s). Each is emitted at once: its end
    // is behind the watermark (40 s). A delete carries the values of the
    // session it deletes; deletes come in the order of their starts.
    let events = [
        ("a", 0),
        ("a", 20 * SECOND),
        ("a", 40 * SECOND),
        ("a", 9 * SECOND),
        ("a", 15 * SECOND),
        ("a", 25 * SECOND),
    ];
    let expected = vec![
        row("insert", 0, 10 * SECOND, 0, 1),
        row("insert", 20 * SECOND, 30 * SECOND, 0, 1),
        row("delete", 0, 10 * SECOND, 1, 1),
        row("insert", 0, 19 * SECOND, 0, 2),
        row("delete", 0, 19 * SECOND, 1, 2),
        row("delete", 20 * SECOND, 30 * SECOND, 1, 1),
        row("insert", 0, 30 * SECOND, 0, 4),
        row("delete", 0, 30 * SECOND, 1, 4),
        row("insert", 0, 35 * SECOND, 0, 5),
        row("insert", 40 * SECOND, 50 * SECOND, 0, 1),
    ];
    let lateness = 60 * SECOND;
    let typed = typed(&events, Window::session(Duration::from_secs(10)), lateness);
    assert_eq!(typed, expected, "typed");
    let declared = declared(&events, r#"{ type = "session", gap = "10s" }"#, lateness);
    assert_eq!(declared, expected, "pipeline file");
}
