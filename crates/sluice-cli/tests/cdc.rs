//! The postgres-cdc source against a real server (`support/postgres.rs`):
//! inserts, updates and deletes made while the pipeline runs, with the
//! pipeline killed (SIGKILL) six times and restarted, reach the output once each, in
//! commit order; a test-only fault that moves the slot before a checkpoint
//! holds the changes makes the same test miss some (or the resumed run
//! refuses the slot that moved past its checkpoint). A column the source
//! reads that goes away mid-stream is reported by name.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::postgres::Postgres;

fn pipeline(dir: &Path, url: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
name = "changes"

[source]
type = "postgres-cdc"
url = "{url}"
table = "readings"
schema = {{ id = "int", sensor = "string", temperature = "float" }}
end_after_idle = "3s"

[execution]
batch_interval = "20ms"

[[sink]]
from = "source"
type = "file"
path = "out/changes.jsonl"
"#
    );
    let file = dir.join("p.toml");
    fs::write(&file, text).unwrap();
    file
}

fn start(file: &Path, state: &Path, faults: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .args(["--checkpoint-interval", "300ms", "--state-dir"])
        .arg(state)
        .env("SLUICE_FAULT", faults)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The table, with the publication and slot the source uses, made before
/// any change so that none is missed.
fn prepare(pg: &Postgres) {
    let mut client = pg.client();
    // One statement a transaction: a slot cannot be made in one that
    // wrote.
    for statement in [
        "CREATE TABLE readings (id int PRIMARY KEY, sensor text, temperature float8)",
        "CREATE PUBLICATION sluice_public_readings FOR TABLE readings",
        "SELECT pg_create_logical_replication_slot('sluice_public_readings', 'pgoutput')",
    ] {
        client.batch_execute(statement).unwrap();
    }
}

/// Makes `transactions` transactions of inserts, updates and deletes;
/// returns the changes in commit order, as the output should say them.
fn write_changes(url: String, transactions: u32) -> Vec<String> {
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut changes = Vec::new();
    let mut next = 0;
    for t in 0..transactions {
        let mut tx = client.transaction().unwrap();
        for _ in 0..3 {
            let temperature = f64::from(next % 40) + 0.5;
            tx.execute(
                "INSERT INTO readings VALUES ($1, $2, $3)",
                &[&next, &format!("s{}", next % 4), &temperature],
            )
            .unwrap();
            changes.push(format!("insert {next} {temperature}"));
            next += 1;
        }
        let updated = next - 2;
        tx.execute(
            "UPDATE readings SET temperature = temperature + 100 WHERE id = $1",
            &[&updated],
        )
        .unwrap();
        changes.push(format!(
            "update {updated} {}",
            f64::from(updated % 40) + 100.5
        ));
        if t % 10 == 9 {
            let deleted = next - 3;
            tx.execute("DELETE FROM readings WHERE id = $1", &[&deleted])
                .unwrap();
            changes.push(format!("delete {deleted} -"));
        }
        tx.commit().unwrap();
        std::thread::sleep(Duration::from_millis(4));
    }
    changes
}

/// The output's changes, as `write_changes` says them.
fn output(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("out/changes.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v["op"].as_str().unwrap() {
                "delete" => format!("delete {} -", v["before_id"]),
                op => format!("{op} {} {:?}", v["id"], v["temperature"].as_f64().unwrap()),
            }
        })
        .collect()
}

/// What a kill test found wrong (its fields are read through `Debug`, in
/// assertion messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Wrong {
    /// The output is not the changes made, in order.
    Output {
        missing: usize,
        got: usize,
        made: usize,
    },
    /// A run failed or did not end.
    Run(String),
}

/// Waits for a run to end, killing it after two minutes.
fn finish(mut run: Child) -> Result<std::process::Output, Wrong> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while run
        .try_wait()
        .map_err(|e| Wrong::Run(e.to_string()))?
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = run.kill();
            return Err(Wrong::Run("a run did not end within two minutes".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    run.wait_with_output()
        .map_err(|e| Wrong::Run(e.to_string()))
}

fn kill_while_changing(kills: u64, faults: &str) -> Result<(), Wrong> {
    let pg = Postgres::start();
    prepare(&pg);
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &pg.url());
    let state = dir.path().join("state");
    let url = pg.url();
    let writer = std::thread::spawn(move || write_changes(url, 600));
    for k in 0..kills {
        let mut run = start(&file, &state, faults);
        std::thread::sleep(Duration::from_millis(400 + (k * 263) % 500));
        let _ = run.kill();
        let _ = run.wait();
    }
    let run = start(&file, &state, faults);
    let expected = writer.join().unwrap();
    let out = finish(run)?;
    if !out.status.success() {
        return Err(Wrong::Run(format!(
            "the last run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let got = output(dir.path());
    if got != expected {
        let first = expected
            .iter()
            .zip(&got)
            .position(|(e, g)| e != g)
            .unwrap_or(expected.len().min(got.len()));
        println!(
            "first difference at {first}: {:?} against {:?}",
            got.get(first),
            expected.get(first)
        );
        return Err(Wrong::Output {
            missing: expected.iter().filter(|c| !got.contains(c)).count(),
            got: got.len(),
            made: expected.len(),
        });
    }
    Ok(())
}

#[test]
fn changes_made_while_the_pipeline_is_killed_arrive_once_in_commit_order() {
    kill_while_changing(6, "").unwrap();
}

#[test]
fn the_kill_test_catches_a_slot_moved_before_the_checkpoint() {
    // A kill between a read and the next checkpoint's commit loses changes:
    // with checkpoints every 300 ms most moments are such.
    let outcome = kill_while_changing(6, "cdc-advance-early");
    // Either the output misses changes, or a resumed run sees that the
    // slot moved past its checkpoint and refuses to go on.
    let caught = match &outcome {
        Err(Wrong::Output { missing, .. }) => *missing > 0,
        Err(Wrong::Run(why)) => why.contains("has moved past this pipeline's checkpoint"),
        Ok(()) => false,
    };
    assert!(caught, "{outcome:?}");
}

#[test]
fn a_column_that_goes_away_mid_stream_is_reported_by_name() {
    let pg = Postgres::start();
    prepare(&pg);
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &pg.url());
    let mut client = pg.client();
    for statement in [
        "INSERT INTO readings VALUES (1, 'a', 1.5)",
        "ALTER TABLE readings RENAME COLUMN temperature TO celsius",
        "INSERT INTO readings VALUES (2, 'b', 2.5)",
    ] {
        client.batch_execute(statement).unwrap();
    }
    let out = finish(start(&file, &dir.path().join("state"), "")).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no column `temperature` any more (it has: id, sensor, celsius)"),
        "{stderr}"
    );
}

#[test]
fn a_snapshot_starts_with_the_tables_rows_then_its_changes() {
    let pg = Postgres::start();
    let mut client = pg.client();
    for statement in [
        "CREATE TABLE readings (id int PRIMARY KEY, sensor text, temperature float8)",
        "INSERT INTO readings VALUES (1, 'a', 1.5), (2, 'b', 2.5)",
    ] {
        client.batch_execute(statement).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &pg.url());
    let text = fs::read_to_string(&file).unwrap().replace(
        "end_after_idle = \"3s\"",
        "snapshot = true\nend_after_idle = \"10s\"",
    );
    fs::write(&file, text).unwrap();
    let run = start(&file, &dir.path().join("state"), "");
    // The slot exists once the snapshot is in the output.
    let deadline = Instant::now() + Duration::from_secs(60);
    while output(dir.path()).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    client
        .batch_execute("UPDATE readings SET temperature = 9.5 WHERE id = 2")
        .unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        output(dir.path()),
        ["insert 1 1.5", "insert 2 2.5", "update 2 9.5"]
    );
}
