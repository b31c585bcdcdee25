//! `sluice run --state-dir` as a user meets it when something is off: what
//! cannot be exactly-once is refused with the reason, a state directory of
//! another pipeline or a damaged one is an error (never a silent fresh
//! start), a completed pipeline is not run twice, `--fresh` starts over.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const DATA: &str = r#"{"k":"a","v":1.0,"ts":1000}
{"k":"b","v":2.0,"ts":1500}
not json
{"k":"a","v":3.0,"ts":12500}
"#;

fn pipeline(sink: &str) -> String {
    format!(
        r#"name = "t"

[source]
type = "file"
path = "data.jsonl"
event_time = "ts"

[[transform]]
name = "per_key"
type = "window"
key = "k"
window = {{ type = "tumbling", size = "10s" }}
aggregates = {{ total = "sum(v)" }}

[[sink]]
from = "per_key"
{sink}

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#
    )
}

const FILE_SINK: &str = "type = \"file\"\npath = \"out/per_key.jsonl\"";

fn setup(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data.jsonl"), DATA).unwrap();
    fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

/// `sluice run p.toml --state-dir st --guarantee GUARANTEE`.
fn with_guarantee(dir: &Path, guarantee: &str) -> Output {
    let args = [
        "run",
        "p.toml",
        "--state-dir",
        "st",
        "--guarantee",
        guarantee,
    ];
    sluice(dir, &args)
}

#[test]
fn stdout_is_refused_under_exactly_once_and_allowed_at_least_once() {
    let dir = setup(&pipeline("type = \"stdout\""));
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("stdout cannot take back"), "{err}");
    assert!(err.contains("--guarantee at-least-once"), "{err}");

    let out = with_guarantee(dir.path(), "at-least-once");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn stdin_is_refused_unless_at_most_once() {
    let pipeline = pipeline(FILE_SINK).replace(
        "type = \"file\"\npath = \"data.jsonl\"",
        "type = \"stdin\"\nformat = \"jsonl\"\nschema = { k = \"string\", v = \"float64\", ts = \"int64\" }",
    );
    let dir = setup(&pipeline);
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("stdin cannot be read again"), "{err}");
    assert!(err.contains("--guarantee at-most-once"), "{err}");

    let out = with_guarantee(dir.path(), "at-most-once");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn parquet_sinks_are_refused_with_checkpoints() {
    let sink = "type = \"file\"\npath = \"out/per_key.parquet\"";
    let dir = setup(&pipeline(sink));
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Parquet files cannot be cut back"));
}

#[test]
fn a_completed_pipeline_is_not_run_twice_and_fresh_starts_over() {
    let dir = setup(&pipeline(FILE_SINK));
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = fs::read_to_string(dir.path().join("out/per_key.jsonl")).unwrap();
    assert_eq!(first.lines().count(), 3);

    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("already completed"),
        "{}",
        stderr(&out)
    );
    let again = fs::read_to_string(dir.path().join("out/per_key.jsonl")).unwrap();
    assert_eq!(first, again, "the outputs are left as they are");

    // New input, --fresh: the run starts over and rewrites the outputs.
    fs::write(
        dir.path().join("data.jsonl"),
        "{\"k\":\"c\",\"v\":7.0,\"ts\":1000}\n",
    )
    .unwrap();
    let out = sluice(
        dir.path(),
        &["run", "p.toml", "--state-dir", "st", "--fresh"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = fs::read_to_string(dir.path().join("out/per_key.jsonl")).unwrap();
    assert_eq!(fresh.lines().count(), 1);
    assert!(fresh.contains("\"c\""));
}

#[test]
fn a_state_directory_of_another_pipeline_is_refused() {
    let dir = setup(&pipeline(FILE_SINK));
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let changed = pipeline(FILE_SINK).replace("sum(v)", "max(v)");
    fs::write(dir.path().join("other.toml"), changed).unwrap();
    let out = sluice(dir.path(), &["run", "other.toml", "--state-dir", "st"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("written by another pipeline"), "{err}");
    assert!(err.contains("--fresh"), "{err}");

    // Another worker count changes how keyed state is split: refused too.
    let out = sluice(
        dir.path(),
        &["run", "p.toml", "--state-dir", "st", "--workers", "2"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("written by another pipeline"));
}

#[test]
fn a_damaged_state_is_an_error_not_a_fresh_start() {
    let dir = setup(&pipeline(FILE_SINK));
    fs::create_dir_all(dir.path().join("st")).unwrap();
    fs::write(
        dir.path().join("st/state.redb"),
        b"these bytes are not a redb database at all, they are damaged",
    )
    .unwrap();
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot be read or written"), "{err}");
    assert!(err.contains("--fresh"), "{err}");
    assert!(!dir.path().join("out/per_key.jsonl").exists());
}

#[test]
fn a_kill_while_the_state_is_first_created_leaves_nothing_to_trip_over() {
    // A run killed while it creates its store leaves at most the scratch
    // file (the store is renamed into place once it is whole); the next run
    // redoes it and completes.
    let dir = setup(&pipeline(FILE_SINK));
    fs::create_dir_all(dir.path().join("st")).unwrap();
    fs::write(dir.path().join("st/state.redb.new"), b"half written").unwrap();
    let out = sluice(dir.path(), &["run", "p.toml", "--state-dir", "st"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = fs::read_to_string(dir.path().join("out/per_key.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert!(!dir.path().join("st/state.redb.new").exists());
    assert!(dir.path().join("st/state.redb").exists());
}

/// An endless generator through a window into `sink_path`.
fn endless(sink_path: &str) -> String {
    format!(
        r#"name = "endless"

[source]
type = "generator"
events = 1000000000
keys = 10

[[transform]]
name = "per_key"
type = "window"
key = "sensor"
window = {{ type = "tumbling", size = "1s" }}
aggregates = {{ n = "count(*)" }}

[[sink]]
from = "per_key"
type = "file"
path = "{sink_path}"
format = "jsonl"
"#
    )
}

const CHECKPOINTED: [&str; 6] = [
    "run",
    "p.toml",
    "--state-dir",
    "st",
    "--checkpoint-interval",
    "50ms",
];

fn spawn(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(CHECKPOINTED)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_output_removed_behind_a_stopped_run_is_an_error() {
    let dir = setup(&endless("out/per_key.jsonl"));
    let child = spawn(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stopped after checkpoint"));

    fs::remove_file(dir.path().join("out/per_key.jsonl")).unwrap();
    let out = sluice(dir.path(), &CHECKPOINTED);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("moved or removed after the checkpoint"),
        "{err}"
    );
    assert!(err.contains("--fresh"), "{err}");
}

#[test]
fn a_bad_interval_is_a_usage_error() {
    let dir = setup(&pipeline(FILE_SINK));
    let out = sluice(
        dir.path(),
        &[
            "run",
            "p.toml",
            "--state-dir",
            "st",
            "--checkpoint-interval",
            "soon",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("500ms"), "{}", stderr(&out));
}

#[test]
fn a_failing_sink_ends_a_checkpointed_run_with_an_error_not_a_hang() {
    let dir = setup(&endless("/dev/full"));
    let mut child = spawn(dir.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the run hung after its sink failed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/dev/full"), "{}", stderr(&out));
}
