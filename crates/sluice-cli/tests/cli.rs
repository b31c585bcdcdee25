//! `sluice run` and `sluice validate` as a user meets them: exit codes,
//! messages that point into the file, bad data, overrides, stdin, metrics.

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn summary(output: &Output) -> serde_json::Value {
    let err = stderr(output);
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary in\n{err}"));
    serde_json::from_str(line).unwrap()
}

const DATA: &str = r#"{"k":"a","v":1.0,"ts":1000}
{"k":"b","v":2.0,"ts":1500}
{"k":"a","v":3.0,"ts":2500}
this is not json
{"k":"b","v":0.0,"ts":3500}
{"k":"a","v":5.0,"ts":12000}
"#;

/// A pipeline file and its data in a fresh folder.
fn setup(pipeline: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data.jsonl"), DATA).unwrap();
    let file = dir.path().join("p.toml");
    fs::write(&file, pipeline).unwrap();
    let file = file.to_string_lossy().into_owned();
    (dir, file)
}

const GOOD: &str = r#"name = "t"

[source]
type = "file"
path = "data.jsonl"
event_time = "ts"

[[transform]]
name = "ratio"
type = "select"
columns = { k = "k", r = "10 / cast(v as bigint)", ts = "ts" }

[[transform]]
name = "per_key"
type = "window"
from = "source"
key = "k"
window = { type = "tumbling", size = "10s" }
aggregates = { n = "count(*)", total = "sum(v)" }

[[sink]]
from = "per_key"
type = "file"
path = "out/per_key.jsonl"

[[sink]]
from = "ratio"
type = "file"
path = "out/ratio.csv"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#;

#[test]
fn a_run_reports_its_counts_and_dead_letters_bad_lines_and_failing_expressions() {
    let (dir, file) = setup(GOOD);
    let out = sluice(&["run", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    // Six records; the line that is not JSON is refused by the decoder.
    // The division by zero (v = 0) in `ratio` is a dead letter of `ratio`,
    // but `per_key` aggregates that record: it is processed.
    assert_eq!(s["read"], 6);
    assert_eq!(s["processed"], 5);
    assert_eq!(s["late"], 0);
    assert_eq!(s["dead_letter"], 1);
    assert_eq!(
        s["input"],
        serde_json::json!({"read": 6, "decoded": 5, "dead_letter": 1})
    );
    assert_eq!(
        s["transforms"]["ratio"],
        serde_json::json!({"in": 5, "out": 4, "filtered": 0, "late": 0, "dead_letter": 1})
    );
    // Windows a [0, 10s), b [0, 10s), a [10s, 20s).
    assert_eq!(
        s["transforms"]["per_key"],
        serde_json::json!({"in": 5, "out": 3, "filtered": 0, "aggregated": 5, "late": 0,
                           "dead_letter": 0})
    );
    assert_eq!(s["emitted"]["dead_letter -> out/dead.jsonl"], 2, "{s}");
    let dead = fs::read_to_string(dir.path().join("out/dead.jsonl")).unwrap();
    assert!(dead.contains(r#""line":4"#), "{dead}");
    assert!(dead.contains("this is not json"), "{dead}");
    assert!(dead.contains(r#""origin":"ratio""#), "{dead}");
    assert!(dead.to_lowercase().contains("divide by zero"), "{dead}");
    let windows = fs::read_to_string(dir.path().join("out/per_key.jsonl")).unwrap();
    // Window [0, 10s) of key a: 1.0 + 3.0; of key b: 2.0 + 0.0; [10s, 20s) of a: 5.0.
    assert!(
        windows.contains(r#""k":"a","window_start":0,"window_end":10000,"n":2,"total":4.0"#),
        "{windows}"
    );
    assert!(
        windows.contains(r#""k":"b","window_start":0,"window_end":10000,"n":2,"total":2.0"#),
        "{windows}"
    );
    assert!(
        windows.contains(r#""k":"a","window_start":10000,"window_end":20000,"n":1,"total":5.0"#),
        "{windows}"
    );
    let csv = fs::read_to_string(dir.path().join("out/ratio.csv")).unwrap();
    assert!(csv.starts_with("k,r,ts\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
}

fn assert_invalid_at(pipeline: &str, line_col: &str, words: &str) {
    let (_dir, file) = setup(pipeline);
    for command in ["validate", "run"] {
        let out = sluice(&[command, &file]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains(&format!("p.toml:{line_col}: ")),
            "{command}: wanted {line_col} in {err}"
        );
        assert!(err.contains(words), "{command}: wanted `{words}` in {err}");
    }
}

#[test]
fn an_invalid_pipeline_exits_2_with_the_place_and_a_fix() {
    // Unknown key.
    assert_invalid_at(
        &GOOD.replace("event_time", "evnt_time"),
        "6:1",
        "unknown field `evnt_time`",
    );
    // Unknown column in an expression.
    assert_invalid_at(
        &GOOD.replace("sum(v)", "sum(vv)"),
        "19:40",
        "No field named vv",
    );
    // A stream that doesn't exist.
    assert_invalid_at(
        &GOOD.replace("from = \"per_key\"", "from = \"per_kye\""),
        "22:8",
        "no stream named `per_kye`",
    );
    // A bad duration.
    assert_invalid_at(
        &GOOD.replace("\"10s\"", "\"ten seconds\""),
        "18:38",
        "not a duration",
    );
    // A TOML syntax error.
    assert_invalid_at(&GOOD.replace("name = \"t\"", "name = "), "1:8", "");
    // A key that does not apply to the type.
    assert_invalid_at(
        &GOOD
            .replace("where", "x")
            .replace("columns =", "where = \"true\"\ncolumns ="),
        "11:9",
        "does not apply",
    );
    // A reserved name.
    assert_invalid_at(
        &GOOD.replace("name = \"ratio\"", "name = \"late\""),
        "9:8",
        "reserved",
    );
}

#[test]
fn a_missing_input_or_an_unwritable_output_exits_1_naming_the_path() {
    let (dir, file) = setup(&GOOD.replace("data.jsonl", "missing.jsonl"));
    let out = sluice(&["run", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.jsonl"), "{}", stderr(&out));

    // The sink's folder is a file.
    fs::write(dir.path().join("blocker"), "").unwrap();
    let (dir2, file2) = setup(&GOOD.replace("out/per_key.jsonl", "blocker/per_key.jsonl"));
    fs::write(dir2.path().join("blocker"), "").unwrap();
    let out = sluice(&["run", &file2]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("blocker"), "{}", stderr(&out));
}

#[test]
fn overrides_change_the_file_and_validate_prints_the_dataflow() {
    let (dir, file) = setup(GOOD);
    let out = sluice(&[
        "run",
        &file,
        "--set",
        "transform.per_key.window.size=1s",
        "--set",
        "sink.per_key.path=out/other.jsonl",
        "--progress",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("progress: 100%"), "{}", stderr(&out));
    let windows = fs::read_to_string(dir.path().join("out/other.jsonl")).unwrap();
    // One-second windows: five windows instead of three.
    assert_eq!(windows.lines().count(), 5, "{windows}");

    let out = sluice(&["validate", &file]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "sources:",
        "streams:",
        "transforms:",
        "sinks:",
        "per_key <- source: window",
        "dead_letter",
        "valid",
    ] {
        assert!(text.contains(part), "`{part}` not in\n{text}");
    }
    let out = sluice(&["validate", &file, "--set", "transform.nothing.where=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no `transform` is named or numbered `nothing`"),
        "{}",
        stderr(&out)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn stdin_runs_until_closed_and_metrics_are_served_meanwhile() {
    let pipeline = r#"name = "live"
[source]
type = "stdin"
format = "jsonl"
event_time = "ts"
schema = { k = "string", v = "float64", ts = "int64" }
[execution]
batch_size = 2
batch_interval = "20ms"
[[transform]]
name = "hot"
type = "rule"
when = "v > 1"
emit = { k = "k", alert = "'hot'" }
[[sink]]
from = "hot"
type = "stdout"
"#;
    let (_dir, file) = setup(pipeline);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &file, "--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(DATA.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // While stdin stays open, the counts show on the metrics endpoint.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(body) = scrape(port) {
            if body.contains("sluice_records_total{stream=\"source\"} 5")
                && body.contains("sluice_records_total{stream=\"dead_letter\"} 1")
            {
                last.clear();
                break;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(last.is_empty(), "metrics never showed the counts:\n{last}");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = String::from_utf8_lossy(&out.stdout);
    assert_eq!(alerts.lines().count(), 3, "{alerts}");
    assert!(alerts.contains(r#"{"k":"a","alert":"hot"}"#), "{alerts}");
    let s = summary(&out);
    assert_eq!(
        (s["read"].as_u64(), s["dead_letter"].as_u64()),
        (Some(6), Some(1))
    );
}

/// Two windows read the input, one without allowed lateness and one with a
/// minute of it; each record goes on its own (event mode), so the watermark
/// follows every record.
const TWO_WINDOWS: &str = r#"name = "lateness"

[source]
type = "file"
path = "late.jsonl"
event_time = "ts"

[execution]
mode = "event"

[[transform]]
name = "strict"
type = "window"
key = "k"
window = { type = "tumbling", size = "10s" }
aggregates = { n = "count(*)" }

[[transform]]
name = "lenient"
type = "window"
from = "source"
key = "k"
window = { type = "tumbling", size = "10s" }
allowed_lateness = "1m"
aggregates = { n = "count(*)" }

[[sink]]
from = "strict"
type = "file"
path = "out/strict.jsonl"

[[sink]]
from = "lenient"
type = "file"
path = "out/lenient.jsonl"

[[sink]]
from = "late"
type = "file"
path = "out/late.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#;

#[test]
fn a_record_late_for_one_window_and_on_time_for_another_is_processed() {
    let (dir, file) = setup(TWO_WINDOWS);
    // Line 3 comes after the watermark passed 10 s: late for `strict`, on
    // time for `lenient`. Line 6 comes after the watermark passed 10 s plus
    // a minute: late for both. Lines 4 and 7 do not decode.
    fs::write(
        dir.path().join("late.jsonl"),
        concat!(
            "{\"k\":\"a\",\"ts\":1000}\n",
            "{\"k\":\"a\",\"ts\":12000}\n",
            "{\"k\":\"a\",\"ts\":2000}\n",
            "not json\n",
            "{\"k\":\"a\",\"ts\":75000}\n",
            "{\"k\":\"a\",\"ts\":3000}\n",
            "{\"k\":\"a\",\"ts\":\"soon\"}\n",
        ),
    )
    .unwrap();
    let out = sluice(&["run", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    // Records: 1, 2, 3 and 5 processed; 6 late; 4 and 7 dead letters.
    assert_eq!(
        (&s["read"], &s["processed"], &s["late"], &s["dead_letter"]),
        (&7.into(), &4.into(), &1.into(), &2.into()),
        "{s}"
    );
    assert_eq!(
        s["input"],
        serde_json::json!({"read": 7, "decoded": 5, "dead_letter": 2})
    );
    assert_eq!(s["transforms"]["strict"]["in"], 5);
    assert_eq!(s["transforms"]["strict"]["aggregated"], 3);
    assert_eq!(s["transforms"]["strict"]["late"], 2);
    assert_eq!(s["transforms"]["lenient"]["in"], 5);
    assert_eq!(s["transforms"]["lenient"]["aggregated"], 4);
    assert_eq!(s["transforms"]["lenient"]["late"], 1);
    // Results: `strict` fires [0, 10s), [10s, 20s) and [70s, 80s); `lenient`
    // also emits [0, 10s) again, updated by line 3.
    assert_eq!(s["transforms"]["strict"]["out"], 3);
    assert_eq!(s["transforms"]["lenient"]["out"], 4);
    // The `late` stream holds a row per refusal: 2 + 1.
    assert_eq!(s["emitted"]["late -> out/late.jsonl"], 3, "{s}");
    let late = fs::read_to_string(dir.path().join("out/late.jsonl")).unwrap();
    assert_eq!(late.lines().count(), 3, "{late}");
}

/// A run whose counts do not add up (a test-only fault: a filter loses
/// the count of the first rows it drops) fails with a bug report.
#[test]
fn counts_that_do_not_add_up_fail_the_run() {
    let (_dir, file) = setup(
        r#"name = "t"

[source]
type = "file"
path = "data.jsonl"
event_time = "ts"

[[transform]]
name = "small"
type = "filter"
where = "v < 2"

[[sink]]
from = "small"
type = "file"
path = "out/small.jsonl"
"#,
    );
    let out = sluice(&["run", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &file])
        .env("SLUICE_FAULT", "miscount")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bug: the run's counts do not add up"), "{err}");
    assert!(
        err.contains("transform small: in = out + filtered + dead_letter"),
        "{err}"
    );
}

/// A pipeline that keeps only the input's dead letters: its other records
/// are processed by being discarded, and the counts add up.
#[test]
fn a_pipeline_that_keeps_only_dead_letters_counts_every_record() {
    let (_dir, file) = setup(
        r#"name = "t"

[source]
type = "file"
path = "data.jsonl"
event_time = "ts"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#,
    );
    let out = sluice(&["run", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        (&s["read"], &s["processed"], &s["late"], &s["dead_letter"]),
        (&6.into(), &5.into(), &0.into(), &1.into()),
        "{s}"
    );
}

/// A session window with allowed lateness deletes a session that a late
/// event merged into another, so a consumer that applies the changelog
/// holds only the final sessions; with the test-only fault that keeps
/// merged sessions, the stale rows stay and this check fails.
#[test]
fn a_consumer_of_a_session_changelog_holds_only_the_final_sessions() {
    let (dir, file) = setup(
        r#"name = "t"

[source]
type = "file"
path = "clicks.jsonl"
event_time = "ts"
max_out_of_orderness = "0ms"

[execution]
mode = "event"

[[transform]]
name = "visits"
type = "window"
key = ["user"]
window = { type = "session", gap = "10s" }
aggregates = { n = "count(*)" }
allowed_lateness = "1m"

[[sink]]
from = "visits"
type = "file"
path = "visits.jsonl"
"#,
    );
    let clicks: String = [0, 20_000, 40_000, 9_000, 15_000, 25_000]
        .iter()
        .map(|ts| format!("{{\"user\":\"a\",\"ts\":{ts}}}\n"))
        .collect();
    fs::write(dir.path().join("clicks.jsonl"), clicks).unwrap();
    // What a consumer holds after applying the changelog: (start, end, n).
    let held = |faults: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", &file])
            .env("SLUICE_FAULT", faults)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = fs::read_to_string(dir.path().join("visits.jsonl")).unwrap();
        let mut held = std::collections::BTreeMap::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = (v["window_start"].as_i64(), v["window_end"].as_i64());
            match v["op"].as_str() {
                Some("delete") => {
                    held.remove(&id);
                }
                Some("insert" | "update") => {
                    held.insert(id, v["n"].as_u64());
                }
                other => panic!("op {other:?} in {line}"),
            }
        }
        held.into_iter()
            .map(|((s, e), n)| (s.unwrap(), e.unwrap(), n.unwrap()))
            .collect::<Vec<_>>()
    };
    let finals = vec![(0, 35_000, 5), (40_000, 50_000, 1)];
    assert_eq!(held(""), finals);
    assert_ne!(
        held("keep-merged-sessions"),
        finals,
        "the fault that keeps merged sessions went unnoticed"
    );
}
