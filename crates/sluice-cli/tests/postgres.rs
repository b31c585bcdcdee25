//! The postgres sink against a real server (a private cluster each test
//! starts, `support/postgres.rs`): upserted window results equal the
//! window results, a changelog's deletes are applied, and a run killed with
//! SIGKILL and restarted leaves every row in the tables exactly once; with
//! the recovery's undo switched off (a test-only fault) the same test
//! finds the repeats.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::postgres::Postgres;

/// Readings of 4 sensors, 20 a second of event time, a little out of
/// order and every 13th 600 ms late; every 97th has no temperature. The
/// temperatures run warm and cold by turns of 400 readings.
fn write_input(path: &Path, lines: u64) {
    let mut text = String::new();
    for i in 0..lines {
        let behind = if i % 13 == 0 { 600 } else { (i % 7) * 30 };
        let ts = 1_700_000_000_000 + i * 50 - behind;
        let sensor = format!("s{}", (i * 7919) % 4);
        if i % 97 == 0 {
            text.push_str(&format!("{{\"sensor\":\"{sensor}\",\"ts\":{ts}}}\n"));
        } else {
            let base = if (i / 400) % 2 == 0 { 75.0 } else { 25.0 };
            let temperature = base + ((i * 31) % 100) as f64 / 10.0;
            text.push_str(&format!(
                "{{\"sensor\":\"{sensor}\",\"temperature\":{temperature},\"ts\":{ts}}}\n"
            ));
        }
    }
    fs::write(path, text).unwrap();
}

/// Readings with a temperature, appended to `{prefix}rows`; per-sensor
/// one-second windows (a changelog: late readings update them), upserted
/// into `{prefix}windows` and written to a file.
fn pipeline(input: &Path, url: &str, prefix: &str, extra: &str) -> String {
    format!(
        r#"
name = "pg"

[source]
type = "file"
path = "{input}"
format = "jsonl"
event_time = "ts"
max_out_of_orderness = "100ms"

[execution]
batch_size = 16

[[transform]]
name = "valid"
type = "filter"
where = "temperature IS NOT NULL"

[[transform]]
name = "per_sensor"
type = "window"
key = ["sensor"]
window = {{ type = "tumbling", size = "1s" }}
aggregates = {{ n = "count(*)", avg_temp = "avg(temperature)", max_temp = "max(temperature)" }}
allowed_lateness = "1s"

[[sink]]
from = "valid"
type = "postgres"
url = "{url}"
table = "{prefix}rows"
create = true
{extra}

[[sink]]
from = "per_sensor"
type = "postgres"
url = "{url}"
table = "{prefix}windows"
key = ["sensor", "window_start"]
create = true
{extra}

[[sink]]
from = "per_sensor"
type = "file"
path = "out/windows.jsonl"
"#,
        input = input.display()
    )
}

/// Runs `sluice run` to its end; panics with what it said if it fails.
fn run_to_end(file: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sluice run failed:\n{stderr}");
    stderr
}

/// Every row of `query`, each as text, in order.
fn rows(pg: &mut postgres::Client, query: &str) -> Vec<String> {
    pg.query(
        &format!("SELECT row_to_json(q)::text FROM ({query}) q"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

/// The window results a changelog file ends with: the last revision of
/// each (sensor, window_start), as the table's columns would read.
fn applied(file: &Path) -> BTreeMap<(String, i64), (i64, i64, f64, f64)> {
    let mut out = BTreeMap::new();
    for line in fs::read_to_string(file).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            v["sensor"].as_str().unwrap().to_string(),
            v["window_start"].as_i64().unwrap(),
        );
        let row = (
            v["revision"].as_i64().unwrap(),
            v["n"].as_i64().unwrap(),
            float(line, "avg_temp"),
            float(line, "max_temp"),
        );
        if !out
            .get(&key)
            .is_some_and(|old: &(i64, i64, f64, f64)| old.0 >= row.0)
        {
            out.insert(key, row);
        }
    }
    out
}

/// The number `field` of a JSON line, read exactly (serde_json's own
/// reading of floats may miss by a bit).
fn float(line: &str, field: &str) -> f64 {
    let at = line.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
    let end = line[at..].find([',', '}']).unwrap() + at;
    line[at..end].parse().unwrap()
}

fn table(pg: &mut postgres::Client, name: &str) -> BTreeMap<(String, i64), (i64, i64, f64, f64)> {
    pg.query(
        &format!("SELECT sensor, window_start, revision, n, avg_temp, max_temp FROM {name}"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| {
        (
            (r.get(0), r.get(1)),
            (r.get(2), r.get(3), r.get(4), r.get(5)),
        )
    })
    .collect()
}

/// Panics with the first rows that differ, if any do.
fn same<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) {
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(k))
                .map(|(k, v)| format!("{k:?}: want none, got {v:?}")),
        )
        .take(5)
        .collect();
    assert!(differ.is_empty(), "rows differ:\n{}", differ.join("\n"));
}

#[test]
fn upserted_windows_equal_the_window_results_and_appended_rows_the_input() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    write_input(&input, 5_000);
    let file = dir.path().join("p.toml");
    fs::write(&file, pipeline(&input, &pg.url(), "", "")).unwrap();
    run_to_end(&file, &[]);
    let mut client = pg.client();

    let expected = applied(&dir.path().join("out/windows.jsonl"));
    assert!(expected.len() > 500, "{} windows", expected.len());
    let updated = expected.values().filter(|r| r.0 > 0).count();
    assert!(
        updated > 0,
        "no window was updated: the upsert is not tested"
    );
    same(&table(&mut client, "windows"), &expected);

    // The appended rows are the input's readings with a temperature.
    let mut readings: Vec<String> = fs::read_to_string(&input)
        .unwrap()
        .lines()
        .filter(|l| l.contains("temperature"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["sensor"], float(l, "temperature"), v["ts"])
        })
        .collect();
    readings.sort();
    let mut written: Vec<String> = client
        .query("SELECT sensor, temperature, ts FROM rows", &[])
        .unwrap()
        .iter()
        .map(|r| {
            let (sensor, t, ts): (String, f64, i64) = (r.get(0), r.get(1), r.get(2));
            format!("{} {t} {ts}", serde_json::json!(sensor))
        })
        .collect();
    written.sort();
    assert_eq!(written.len(), readings.len());
    assert!(written == readings, "the appended rows are not the input's");

    // A second run without state is a new run: the upsert leaves the same
    // table, the append adds its rows again.
    run_to_end(&file, &[]);
    same(&table(&mut client, "windows"), &expected);
    let count: i64 = client
        .query_one("SELECT count(*) FROM rows", &[])
        .unwrap()
        .get(0);
    assert_eq!(count as usize, 2 * readings.len());
}

#[test]
fn an_upsert_applies_a_changelogs_deletes() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    write_input(&input, 3_000);
    // A running average per sensor, kept while it is above 60: a sensor
    // whose average falls below it is deleted, and inserted again when it
    // rises.
    let sql = format!(
        "SET execution.batch_size = 16;\n\
         CREATE TABLE readings (sensor VARCHAR, temperature DOUBLE, ts BIGINT) \
           WITH (connector = 'file', path = '{input}', event_time = 'ts');\n\
         CREATE VIEW warm AS SELECT sensor, avg(temperature) AS avg_temp, count(*) AS n \
           FROM readings WHERE temperature IS NOT NULL GROUP BY sensor;\n\
         CREATE TABLE warm_table WITH (connector = 'postgres', url = '{url}', \
           table = 'warm', key = 'sensor', create = true);\n\
         CREATE TABLE warm_log WITH (connector = 'file', path = 'out/warm.jsonl');\n\
         INSERT INTO warm_table SELECT * FROM warm WHERE avg_temp > 60;\n\
         INSERT INTO warm_log SELECT * FROM warm WHERE avg_temp > 60;\n",
        input = input.display(),
        url = pg.url()
    );
    let file = dir.path().join("p.sql");
    fs::write(&file, sql).unwrap();
    run_to_end(&file, &[]);

    // The reference: the changelog applied in order.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut deletes = 0;
    for line in fs::read_to_string(dir.path().join("out/warm.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let sensor = v["sensor"].as_str().unwrap().to_string();
        if v["op"] == "delete" {
            deletes += 1;
            expected.remove(&sensor);
        } else {
            expected.insert(sensor, format!("{} {}", float(line, "avg_temp"), v["n"]));
        }
    }
    assert!(
        deletes > 0,
        "no delete in the changelog: the test tests nothing"
    );
    let mut client = pg.client();
    let got: BTreeMap<String, String> = client
        .query("SELECT sensor, avg_temp, n FROM warm", &[])
        .unwrap()
        .iter()
        .map(|r| {
            let avg: f64 = r.get(1);
            let n: i64 = r.get(2);
            (r.get(0), format!("{avg} {n}"))
        })
        .collect();
    assert_eq!(got, expected);
}

/// A running `sluice run`: its stderr, line by line as it comes.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn start(file: &Path, state: &Path, faults: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .args(["--verbose", "--checkpoint-interval", "100ms", "--state-dir"])
        .arg(state)
        .env("SLUICE_FAULT", faults)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Run { child, lines }
}

/// Runs the pipeline `kills` times killed with SIGKILL at moments after a
/// checkpoint, then to its end; compares both tables with an uninterrupted
/// run's.
fn kill_and_compare(kills: usize, faults: &str) -> Result<(), String> {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    write_input(&input, 30_000);
    // One transaction a chunk: rows reach the table between checkpoints,
    // so most kills leave some past the checkpoint the next run resumes
    // from.
    let extra = "max_buffered_rows = 1";
    let reference = dir.path().join("reference.toml");
    fs::write(&reference, pipeline(&input, &pg.url(), "ref_", extra)).unwrap();
    let started = Instant::now();
    run_to_end(&reference, &[]);
    let clean = started.elapsed();

    let crashed = dir.path().join("crashed.toml");
    fs::write(&crashed, pipeline(&input, &pg.url(), "", extra)).unwrap();
    let state = dir.path().join("state");
    let mut seed = 0x5EED_u64 ^ started.elapsed().as_nanos() as u64;
    let mut killed = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= kills * 4 + 10, "no completion after {runs} runs");
        let mut run = start(&crashed, &state, faults);
        if killed < kills {
            // Wait for a commit, then a moment within the clean run's time.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut committed = false;
            while let Ok(line) = run.lines.recv_timeout(Duration::from_secs(60)) {
                if line.contains(" committed: ") {
                    committed = true;
                    break;
                }
                if Instant::now() > deadline {
                    break;
                }
            }
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let slice = (clean.as_millis() as u64 / (2 * kills as u64)).max(1);
            if committed {
                std::thread::sleep(Duration::from_millis((seed >> 33) % slice));
            }
            let _ = run.child.kill();
            let status = run.child.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            if status.signal() == Some(9) {
                killed += 1;
                continue;
            }
            if !status.success() {
                let said: Vec<String> = run.lines.try_iter().collect();
                return Err(format!("a run failed: {}", said.join("\n")));
            }
            break; // it ended before the kill
        }
        let status = run.child.wait().unwrap();
        let said: Vec<String> = run.lines.iter().collect();
        if !status.success() {
            return Err(format!("the last run failed: {}", said.join("\n")));
        }
        break;
    }
    println!("{killed} kills in {runs} runs");
    if killed == 0 {
        return Err("no run was killed: the test tested nothing".into());
    }
    let mut client = pg.client();
    for (table, order) in [("rows", "sensor, ts"), ("windows", "sensor, window_start")] {
        // Sorted as text: rows of equal keys come in any order.
        let mut got = rows(
            &mut client,
            &format!("SELECT * FROM {table} ORDER BY {order}"),
        );
        let mut want = rows(
            &mut client,
            &format!("SELECT * FROM ref_{table} ORDER BY {order}"),
        );
        got.sort();
        want.sort();
        if got != want {
            let (g, w): (BTreeSet<_>, BTreeSet<_>) = (got.iter().collect(), want.iter().collect());
            return Err(format!(
                "table {table}: {} rows, the uninterrupted run's {}; {} distinct against {}",
                got.len(),
                want.len(),
                g.len(),
                w.len()
            ));
        }
    }
    Ok(())
}

#[test]
fn tables_survive_sigkill_exactly_once() {
    kill_and_compare(5, "").unwrap();
}

#[test]
fn the_kill_test_catches_a_recovery_that_keeps_rows_past_the_checkpoint() {
    let outcome = kill_and_compare(5, "skip-postgres-undo");
    assert!(
        outcome.as_ref().is_err_and(|e| e.contains("table rows")),
        "{outcome:?}"
    );
}
