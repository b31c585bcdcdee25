//! A file read by several readers (stripes of blocks, one reader per
//! worker) gives what one reader gives: every record once, the same rows,
//! the same dead letters at the same lines, the same counts, and windows
//! with the same results; and a pipeline with a count window is read by one
//! reader.

use sluice_pipeline::load_str;
use sluice_pipeline::{progress, run, Summary};
use std::path::Path;

/// A CSV file with a header, blank lines among the
/// records, CRLF line ends, some records that do not decode, and no line
/// end after the last record.
fn csv_input(records: usize) -> String {
    let mut out = String::from("sensor,temperature,ts\r\n");
    for i in 0..records {
        let ts = 1_700_000_000_000u64 + i as u64 * 10;
        if i % 97 == 5 {
            out.push_str(&format!("s{},warm,{ts}\r\n", i % 13));
        } else {
            out.push_str(&format!("s{},{}.{},{ts}\r\n", i % 13, i % 50, i % 10));
        }
        if i % 211 == 0 {
            out.push_str("\r\n");
        }
    }
    out.pop();
    out.pop();
    out
}

fn pipeline(readers: usize, count_window: bool) -> String {
    let count = if count_window {
        "[[transform]]\nname = \"every\"\ntype = \"window\"\nfrom = \"source\"\nkey = \"sensor\"\n\
         window = { type = \"count\", size = 10 }\naggregates = { n = \"count(*)\" }\n\n\
         [[sink]]\nfrom = \"every\"\ntype = \"file\"\npath = \"every.jsonl\"\n\n"
    } else {
        ""
    };
    format!(
        r#"name = "readers"

[source]
type = "file"
path = "input.csv"
event_time = "ts"
max_out_of_orderness = "1s"
readers = {readers}

[execution]
workers = {readers}
batch_size = 100

[[transform]]
name = "warm"
type = "filter"
where = "temperature > 20"

[[transform]]
name = "per_sensor"
type = "window"
from = "source"
key = "sensor"
window = {{ type = "tumbling", size = "2s" }}
aggregates = {{ n = "count(*)", high = "max(temperature)" }}

{count}[[sink]]
from = "warm"
type = "file"
path = "warm.jsonl"

[[sink]]
from = "per_sensor"
type = "file"
path = "per_sensor.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "dead_letter.jsonl"
"#
    )
}

fn run_in(dir: &Path, input: &str, text: &str) -> Summary {
    std::fs::write(dir.join("input.csv"), input).unwrap();
    let plan = load_str(text, Path::new("readers.toml"), dir, None).unwrap();
    let watch = progress(&plan);
    run(plan, &watch).unwrap()
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn three_readers_give_what_one_gives() {
    let input = csv_input(20_000);
    let one = tempfile::tempdir().unwrap();
    let three = tempfile::tempdir().unwrap();
    let a = run_in(one.path(), &input, &pipeline(1, false));
    let b = run_in(three.path(), &input, &pipeline(3, false));
    assert_eq!(a.read, 20_000);
    assert_eq!(
        (a.read, a.processed, a.dead_letter),
        (b.read, b.processed, b.dead_letter)
    );
    assert!(a.dead_letter > 200, "{}", a.dead_letter);
    for file in ["warm.jsonl", "per_sensor.jsonl", "dead_letter.jsonl"] {
        let (x, y) = (
            sorted_lines(&one.path().join(file)),
            sorted_lines(&three.path().join(file)),
        );
        assert!(!x.is_empty(), "{file} is empty: a weak test");
        assert_eq!(x.len(), y.len(), "{file}");
        assert!(x == y, "{file} differs between one reader and three");
    }
    // The dead letters name the file's lines: the first bad record is line
    // 8 (the header, record 0, a blank line, records 1-4).
    let dead = std::fs::read_to_string(three.path().join("dead_letter.jsonl")).unwrap();
    assert!(
        dead.contains("\"line\":8,"),
        "{}",
        &dead[..dead.len().min(300)]
    );
}

#[test]
fn a_pipeline_with_a_count_window_is_read_by_one_reader() {
    // A count window takes a key's records in the order they come: with one
    // reader, the file's. Its rows are then the same on three workers as
    // on one, in order per key.
    let input = csv_input(5_000);
    let one = tempfile::tempdir().unwrap();
    let three = tempfile::tempdir().unwrap();
    run_in(one.path(), &input, &pipeline(1, true));
    run_in(three.path(), &input, &pipeline(3, true));
    let per_key = |path: &Path| {
        let mut rows: Vec<(String, String)> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["sensor"].to_string(), l.to_string())
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let (x, y) = (
        per_key(&one.path().join("every.jsonl")),
        per_key(&three.path().join("every.jsonl")),
    );
    assert!(x.len() > 400, "{}", x.len());
    assert_eq!(x, y);
}

/// JSON lines 10 ms apart, every 37th behind by 100 to 700 ms: the
/// watermark's lag is 100 ms and the windows 1 s, so where the chunks end
/// decides which of them are late.
fn disordered_input(records: usize) -> String {
    let mut out = String::new();
    for i in 0..records {
        let mut ts = 1_700_000_000_000u64 + i as u64 * 10;
        if i % 37 == 36 {
            ts -= 100 + (i as u64 * 7919) % 600;
        }
        out.push_str(&format!(
            "{{\"sensor\": \"s{}\", \"temperature\": {}, \"ts\": {ts}}}\n",
            i % 11,
            i % 40
        ));
    }
    out
}

fn late_pipeline(readers: usize) -> String {
    format!(
        r#"name = "late-readers"

[source]
type = "file"
path = "input.jsonl"
event_time = "ts"
max_out_of_orderness = "100ms"
readers = {readers}

[execution]
workers = 3
batch_size = 64

[[transform]]
name = "per_sensor"
type = "window"
key = "sensor"
window = {{ type = "tumbling", size = "1s" }}
aggregates = {{ n = "count(*)", high = "max(temperature)" }}

[[sink]]
from = "per_sensor"
type = "file"
path = "per_sensor.jsonl"

[[sink]]
from = "late"
type = "file"
path = "late.jsonl"
"#
    )
}

/// The lines of the late events of a run.
fn late_lines(dir: &Path) -> std::collections::BTreeSet<u64> {
    std::fs::read_to_string(dir.join("late.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn which_events_are_late_depends_on_their_reader_alone() {
    // Each reader's watermark is its own: an event is late when its
    // reader's watermark (when it read it) has passed its window, however
    // far the other readers are. So three runs of three readers agree, and
    // a reader's watermark is never ahead of the per-event watermark over
    // the whole file: what three readers find late, that one finds late.
    let input = disordered_input(30_000);
    let run_with = |readers: usize| {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("input.jsonl"), &input).unwrap();
        let plan = load_str(
            &late_pipeline(readers),
            Path::new("late.toml"),
            out.path(),
            None,
        )
        .unwrap();
        let watch = progress(&plan);
        run(plan, &watch).unwrap();
        (
            late_lines(out.path()),
            sorted_lines(&out.path().join("per_sensor.jsonl")),
        )
    };
    let (one, _) = run_with(1);
    // One reader, by a plain loop: the watermark moves between chunks of 64
    // lines to the latest time before them less 100 ms, and an event is
    // late once it has passed the end of its 1 s window.
    // And by the per-event watermark (the latest time of every line before,
    // less 100 ms), which no reader's is ahead of.
    let mut expected = std::collections::BTreeSet::new();
    let mut per_event = std::collections::BTreeSet::new();
    let mut latest = i64::MIN;
    for (chunk, lines) in input.lines().collect::<Vec<_>>().chunks(64).enumerate() {
        let watermark = latest.saturating_sub(100);
        for (i, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["ts"].as_i64().unwrap();
            let end = ts.div_euclid(1000) * 1000 + 1000;
            let line = (chunk * 64 + i + 1) as u64;
            if end <= watermark {
                expected.insert(line);
            }
            if end <= latest.saturating_sub(100) {
                per_event.insert(line);
            }
            latest = latest.max(ts);
        }
    }
    assert!(expected.len() > 40, "{}", expected.len());
    assert!(
        one == expected,
        "one reader's late events: {} found, {} expected; first differences {:?}",
        one.len(),
        expected.len(),
        one.symmetric_difference(&expected)
            .take(5)
            .collect::<Vec<_>>()
    );
    let (first, windows) = run_with(3);
    assert!(
        first.len() > one.len() / 2,
        "{} of {}",
        first.len(),
        one.len()
    );
    assert!(
        first.is_subset(&per_event),
        "{:?}",
        first.difference(&per_event).take(5).collect::<Vec<_>>()
    );
    for _ in 0..2 {
        let (again, again_windows) = run_with(3);
        assert_eq!(
            first, again,
            "late events differ between runs of three readers"
        );
        assert_eq!(windows, again_windows);
    }
}

/// A Parquet file of row groups of 700 rows is read by three readers, the
/// row groups dealt in turn: the same rows, windows and counts as one
/// reader, and dead letters (rows without an event time) at the file's row
/// numbers.
#[cfg(feature = "parquet")]
#[test]
fn three_readers_of_a_parquet_file_give_what_one_gives() {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("sensor", DataType::Utf8, false),
        Field::new("temperature", DataType::Float64, false),
        Field::new("ts", DataType::Int64, true),
    ]));
    let n = 10_000usize;
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("s{}", i % 13)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| (i % 50) as f64),
            )),
            // Every 97th row has no event time: a dead letter at its row.
            Arc::new(Int64Array::from_iter((0..n).map(|i| {
                (i % 97 != 5).then_some(1_700_000_000_000 + i as i64 * 10)
            }))),
        ],
    )
    .unwrap();
    let text = |readers: usize| {
        pipeline(readers, false).replace("path = \"input.csv\"", "path = \"input.parquet\"")
    };
    let run_parquet = |dir: &Path, readers: usize| {
        let file = std::fs::File::create(dir.join("input.parquet")).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(700))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let plan = load_str(&text(readers), Path::new("readers.toml"), dir, None).unwrap();
        let watch = progress(&plan);
        run(plan, &watch).unwrap()
    };
    let one = tempfile::tempdir().unwrap();
    let three = tempfile::tempdir().unwrap();
    let a = run_parquet(one.path(), 1);
    let b = run_parquet(three.path(), 3);
    assert_eq!(a.read, n as u64);
    assert_eq!(
        (a.read, a.processed, a.dead_letter),
        (b.read, b.processed, b.dead_letter)
    );
    assert!(a.dead_letter > 100, "{}", a.dead_letter);
    for file in ["warm.jsonl", "per_sensor.jsonl", "dead_letter.jsonl"] {
        let (x, y) = (
            sorted_lines(&one.path().join(file)),
            sorted_lines(&three.path().join(file)),
        );
        assert!(!x.is_empty(), "{file} is empty: a weak test");
        assert!(x == y, "{file} differs between one reader and three");
    }
    // Row 6 (from 1) is the first without a time; row 1461 is in the third
    // row group, the third reader's.
    let dead = std::fs::read_to_string(three.path().join("dead_letter.jsonl")).unwrap();
    assert!(
        dead.contains("\"line\":6,"),
        "{}",
        &dead[..dead.len().min(300)]
    );
    assert!(
        dead.contains("\"line\":1461,"),
        "{}",
        &dead[..dead.len().min(300)]
    );
}
