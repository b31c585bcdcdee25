//! The http sink against receivers the tests run (`support/receiver.rs`):
//! every row arrives with its idempotency key through failed tries, a slow
//! receiver and refused rows (which go to `dead_letter`, counted); through
//! SIGKILLs, a receiver that keeps one row per key holds every row once (and
//! a sink that numbers its rows from 0 again on resume is caught).

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use support::receiver::{Answer, Receiver};

/// Readings of 5 sensors, every 7th hot.
fn write_input(path: &Path) {
    let mut text = String::new();
    for i in 0..400u64 {
        let temperature = if i % 7 == 0 {
            90.0
        } else {
            20.0 + (i % 10) as f64
        };
        text.push_str(&format!(
            "{{\"sensor\":\"s{}\",\"temperature\":{temperature},\"ts\":{}}}\n",
            i % 5,
            1_700_000_000_000 + i * 100
        ));
    }
    fs::write(path, text).unwrap();
}

/// Alerts of hot readings, POSTed to `url` and written to a file.
fn pipeline(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let input = dir.join("input.jsonl");
    write_input(&input);
    let text = format!(
        r#"
name = "alerts"

[source]
type = "file"
path = "{input}"
format = "jsonl"
event_time = "ts"

[[transform]]
name = "alerts"
type = "rule"
when = "temperature > 80"
emit = {{ sensor = "sensor", temperature = "temperature", ts = "ts" }}

[[sink]]
from = "alerts"
type = "http"
url = "{url}"
{extra}

[[sink]]
from = "alerts"
type = "file"
path = "out/alerts.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead_letter.jsonl"
"#,
        input = input.display()
    );
    let file = dir.join("p.toml");
    fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sluice run failed:\n{stderr}");
    stderr
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn each_row_arrives_once_with_its_key_through_failures_and_refusals_go_to_dead_letter() {
    // Sensor s3's alerts are refused (400); every third row's first two
    // tries fail (503, then a dropped answer's 500).
    let receiver = Receiver::start(Box::new(|request, n| {
        let key: u64 = request.key.rsplit('-').next().unwrap().parse().unwrap();
        let status = if request.body.contains("\"s3\"") {
            400
        } else if key % 3 == 0 && n < 2 {
            [503, 500][n]
        } else {
            200
        };
        Answer {
            status,
            retry_after: (status == 503).then_some(0),
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &receiver.url, "");
    run(&file);

    let alerts = lines(&dir.path().join("out/alerts.jsonl"));
    assert!(alerts.len() > 40, "{} alerts", alerts.len());
    let accepted = receiver.accepted.lock().unwrap().clone();
    // One request a row, in order, keyed by the row's number.
    let want: Vec<(String, String)> = alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.contains("\"s3\""))
        .map(|(i, a)| (format!("alerts-{i}"), format!("[{a}]")))
        .collect();
    let got: Vec<(String, String)> = accepted
        .iter()
        .map(|r| (r.key.clone(), r.body.clone()))
        .collect();
    assert_eq!(got, want);
    assert!(accepted
        .iter()
        .all(|r| r.headers["content-type"] == "application/json"));
    let tries = receiver.tries.lock().unwrap();
    let retried = tries.values().filter(|n| **n == 3).count();
    assert!(retried > 5, "{retried} rows were tried again");

    // The refused rows are dead letters, with the receiver's answer.
    let dead = lines(&dir.path().join("out/dead_letter.jsonl"));
    let refused = alerts.iter().filter(|a| a.contains("\"s3\"")).count();
    assert!(refused > 0);
    assert_eq!(dead.len(), refused, "{dead:?}");
    for letter in &dead {
        let v: serde_json::Value = serde_json::from_str(letter).unwrap();
        assert!(
            v["origin"].as_str().unwrap().starts_with("sink http:"),
            "{letter}"
        );
        assert!(
            v["reason"].as_str().unwrap().starts_with("HTTP 400"),
            "{letter}"
        );
        assert!(v["record"].as_str().unwrap().contains("\"s3\""), "{letter}");
    }
}

#[test]
fn batches_carry_headers_and_a_slow_receiver_is_tried_again_under_the_same_key() {
    // Requests without the token are refused; the first request's first
    // try is answered after the sink's timeout, so it is sent again.
    let receiver = Receiver::start(Box::new(|request, n| {
        if request.headers.get("authorization").map(String::as_str) != Some("Bearer t0k") {
            return Answer {
                status: 401,
                retry_after: None,
            };
        }
        if request.key == "hot-0-9" && n == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
        Answer {
            status: 200,
            retry_after: None,
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let extra = "batch_rows = 10\nformat = \"jsonl\"\ntimeout = \"500ms\"\nid = \"hot\"\n\
                 headers = { Authorization = \"Bearer t0k\" }";
    let file = pipeline(dir.path(), &receiver.url, extra);
    run(&file);

    let alerts = lines(&dir.path().join("out/alerts.jsonl"));
    let accepted = receiver.accepted.lock().unwrap().clone();
    // The slow first try was sent again: the receiver saw its key twice
    // (and may accept both, which is what the key is for).
    assert_eq!(receiver.tries.lock().unwrap()["hot-0-9"], 2);
    // Requests of 10 rows, whatever the batches the rows came in, each key
    // naming its rows' range; the last holds the rest.
    let mut ranges: Vec<(usize, usize)> = accepted
        .iter()
        .map(|r| {
            let mut parts = r.key.strip_prefix("hot-").unwrap().split('-');
            let first: usize = parts.next().unwrap().parse().unwrap();
            let last = parts.next().map_or(first, |l| l.parse().unwrap());
            assert_eq!(r.body.lines().count(), last - first + 1, "{}", r.key);
            (first, last)
        })
        .collect();
    ranges.sort_unstable();
    ranges.dedup();
    let want: Vec<(usize, usize)> = (0..alerts.len())
        .step_by(10)
        .map(|i| (i, (i + 9).min(alerts.len() - 1)))
        .collect();
    assert_eq!(ranges, want);
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<String> = accepted
        .iter()
        .filter(|r| seen.insert(r.key.clone()))
        .flat_map(|r| r.body.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    let mut rows_sorted = rows.clone();
    rows_sorted.sort();
    let mut alerts_sorted = alerts.clone();
    alerts_sorted.sort();
    assert_eq!(rows_sorted, alerts_sorted);
    assert!(lines(&dir.path().join("out/dead_letter.jsonl")).is_empty());
}

/// Every reading POSTed, one a request, to a receiver that takes 5 ms a
/// request, while the run is killed `kills` times; then run to its end.
/// Ok if each key names one row, and the rows of the keys are the input's.
/// A replay must have happened (a key sent twice), or the test tested
/// nothing.
fn kill_while_posting(kills: u64, faults: &str) -> Result<(), String> {
    let receiver = Receiver::start(Box::new(|_, _| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        Answer {
            status: 200,
            retry_after: None,
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &receiver.url, "");
    // Chunks of 10 rows: barriers pass between them, so checkpoints hold
    // some of the rows sent.
    let text = fs::read_to_string(&file).unwrap().replace(
        "from = \"alerts\"\ntype = \"http\"",
        "from = \"source\"\ntype = \"http\"",
    ) + "\n[execution]\nbatch_size = 10\n";
    fs::write(&file, text).unwrap();
    let state = dir.path().join("state");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg(&file)
            .args(["--checkpoint-interval", "100ms", "--state-dir"])
            .arg(&state)
            .env("SLUICE_FAULT", faults)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Each kill comes once the receiver has taken 30 more requests (and a
    // moment more), however slow the machine.
    for k in 0..kills {
        let mut run = start();
        let before = receiver.accepted.lock().unwrap().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while receiver.accepted.lock().unwrap().len() < before + 30
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis((k * 37) % 100));
        let _ = run.kill();
        let _ = run.wait();
    }
    if !start().wait().unwrap().success() {
        return Err("the last run failed".into());
    }
    let mut by_key: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for request in receiver.accepted.lock().unwrap().iter() {
        by_key
            .entry(request.key.clone())
            .or_default()
            .insert(request.body.clone());
    }
    if let Some((key, bodies)) = by_key.iter().find(|(_, b)| b.len() > 1) {
        return Err(format!("key {key} named {} different rows", bodies.len()));
    }
    let requests = receiver.accepted.lock().unwrap().len();
    if requests == by_key.len() {
        return Err("no key was sent twice: no replay was tested".into());
    }
    let mut got: Vec<String> = by_key
        .values()
        .flat_map(|b| {
            b.iter()
                .map(|r| r.trim_start_matches('[').trim_end_matches(']').to_string())
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = lines(&dir.path().join("input.jsonl"))
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.to_string()
        })
        .collect();
    want.sort();
    let got: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r)
                .unwrap()
                .to_string()
        })
        .collect();
    let mut got = got;
    got.sort();
    if got != want {
        return Err(format!(
            "{} rows by key, {} in the input",
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

#[test]
fn through_sigkills_each_key_names_one_row_and_every_row_arrives() {
    kill_while_posting(3, "").unwrap();
}

#[test]
fn the_kill_test_catches_a_resumed_sink_that_numbers_its_rows_again() {
    let outcome = kill_while_posting(3, "http-sink-renumber");
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.contains("different rows")),
        "{outcome:?}"
    );
}
