//! Distributed runs against real NATS servers (started here as child
//! processes on free loopback ports): two `sluice run` processes share a
//! pipeline's partitions; one is killed with SIGKILL mid-run and the other
//! takes its partitions over; a node of a 3-node cluster (replicated
//! streams and buckets) is killed mid-run. Every time, the output streams
//! hold each window result and each dead letter exactly once.

use serde_json::Value;
use sluice_nats::server::NatsServer;
use sluice_nats::NatsClient;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// These tests start NATS servers (a cluster of three in one) and several
/// `sluice` processes each, and time failovers and lease expiries: they run
/// one at a time, so that eight of them at once on two cores do not starve
/// the failovers they test.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const SENSORS: u64 = 20;
const PARTITIONS: u32 = 8;
/// Records that are not valid readings: dead letters.
const BAD: [&str; 3] = [
    "not json at all",
    r#"{"sensor": "s1", "temperature": "warm", "ts": 5}"#,
    r#"{"sensor": "s2", "temperature": 20.5}"#,
];

fn pipeline(dir: &Path, url: &str, replicas: u32, rate: Option<u32>, ttl: &str) -> PathBuf {
    let rate = rate.map_or(String::new(), |r| format!("rate = {r}\n"));
    let text = format!(
        r#"name = "fleet"

[source]
type = "nats"
url = "{url}"
stream = "readings"
subject = "readings.*"
partitions = {PARTITIONS}
replicas = {replicas}
schema = {{ sensor = "string", temperature = "float64", ts = "int64" }}
event_time = "ts"
end = "caught-up"
lease_ttl = "{ttl}"
max_ack_pending = 5000
{rate}
[execution]
mode = "micro-batch"
batch_size = 64
batch_interval = "20ms"

[[transform]]
name = "per_sensor"
type = "window"
key = ["sensor"]
window = {{ type = "tumbling", size = "1s" }}
aggregates = {{ readings = "count(*)", total = "sum(temperature)" }}

[[sink]]
from = "per_sensor"
type = "nats"
url = "{url}"
subject = "results.per_sensor.{{sensor}}"
stream = "results"
replicas = {replicas}

[[sink]]
from = "dead_letter"
type = "nats"
url = "{url}"
subject = "results.dead_letter"
stream = "results"
replicas = {replicas}
"#
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The same pipeline written in SQL.
fn sql_pipeline(dir: &Path, url: &str) -> PathBuf {
    let text = format!(
        r#"SET pipeline.name = 'fleet';
SET execution.batch_size = 64;
SET execution.batch_interval = '20ms';

CREATE TABLE readings (sensor VARCHAR, temperature DOUBLE, ts BIGINT) WITH (
    connector = 'nats', url = '{url}', stream = 'readings', subject = 'readings.*',
    partitions = {PARTITIONS}, replicas = 1, event_time = 'ts', end = 'caught-up',
    lease_ttl = '2s', max_ack_pending = 5000
);
CREATE TABLE per_sensor WITH (
    connector = 'nats', url = '{url}', subject = 'results.per_sensor.{{sensor}}',
    stream = 'results', replicas = 1
);
CREATE TABLE dead WITH (
    connector = 'nats', url = '{url}', subject = 'results.dead_letter', stream = 'results',
    replicas = 1
);

INSERT INTO per_sensor
    SELECT sensor, window_start, window_end, count(*) AS readings, sum(temperature) AS total
    FROM readings GROUP BY tumble(ts, INTERVAL '1' SECOND), sensor;
INSERT INTO dead SELECT * FROM dead_letter;
"#
    );
    let path = dir.join("fleet.sql");
    std::fs::write(&path, text).unwrap();
    path
}

fn sluice(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(args);
    command
}

/// `sluice setup`, then `events` readings (sensor `i % SENSORS`, event time
/// `i * 10` ms) and the bad records, published to `readings.<sensor>`.
fn publish_input(url: &str, path: &Path, events: u64) -> BTreeMap<(String, i64), u64> {
    let out = sluice(&["setup", path.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = NatsClient::connect(url).unwrap();
    let mut expected = BTreeMap::new();
    let mut acks = Vec::new();
    for i in 0..events {
        let sensor = format!("s{}", i % SENSORS);
        let ts = (i * 10) as i64;
        let record = format!(
            r#"{{"sensor":"{sensor}","temperature":{}.5,"ts":{ts}}}"#,
            i % 7
        );
        let subject = format!("readings.{sensor}");
        acks.push(
            client
                .publish_async(&subject, record.into_bytes(), None)
                .unwrap(),
        );
        *expected.entry((sensor, ts - ts % 1000)).or_insert(0) += 1;
        if acks.len() >= 2000 {
            NatsClient::wait_acks(std::mem::take(&mut acks), &subject).unwrap();
        }
        if i % (events / BAD.len() as u64) == 7 {
            let bad = BAD[(i / (events / BAD.len() as u64)) as usize % BAD.len()];
            acks.push(
                client
                    .publish_async("readings.s3", bad.into(), None)
                    .unwrap(),
            );
        }
    }
    NatsClient::wait_acks(acks, "readings").unwrap();
    expected
}

/// Every message on `subject` of stream `results`, as JSON with its subject.
fn read_output(url: &str, subject: &str) -> Vec<(Value, String)> {
    let client = NatsClient::connect(url).unwrap();
    let name = format!("check_{}", subject.replace(['.', '*'], "_"));
    let mut reader = client
        .pull_reader(
            "results",
            &name,
            subject,
            1,
            100_000,
            Duration::from_secs(60),
        )
        .unwrap();
    let mut out = Vec::new();
    while let Some(message) = reader.next(Duration::from_millis(1500)).unwrap() {
        out.push((
            serde_json::from_slice(&message.payload).unwrap(),
            message.subject.clone(),
        ));
    }
    out
}

/// Checks that the window results are complete with no duplicates, and
/// that each bad record is a dead letter exactly once.
fn check_outputs(url: &str, expected: &BTreeMap<(String, i64), u64>) {
    // One subject per sensor: `{sensor}` in the sink's subject.
    let rows = read_output(url, "results.per_sensor.*");
    let mut found: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (row, subject) in &rows {
        assert_eq!(
            subject,
            &format!("results.per_sensor.{}", row["sensor"].as_str().unwrap())
        );
        let key = (
            row["sensor"].as_str().unwrap().to_string(),
            row["window_start"].as_i64().unwrap(),
        );
        let readings = row["readings"].as_u64().unwrap();
        assert!(
            found.insert(key.clone(), readings).is_none(),
            "window {key:?} was published twice"
        );
    }
    assert_eq!(found.len(), expected.len(), "windows missing or extra");
    assert_eq!(&found, expected, "window counts differ");
    let dead = read_output(url, "results.dead_letter");
    assert_eq!(dead.len(), BAD.len(), "dead letters: {dead:?}");
    for (letter, _) in &dead {
        assert!(letter["origin"].as_str().unwrap().contains("readings"));
        assert!(letter["line"].as_u64().unwrap() > 0, "the stream sequence");
    }
}

fn start(path: &Path, member: &str) -> Child {
    sluice(&[
        "run",
        path.to_str().unwrap(),
        "--member",
        member,
        "--checkpoint-interval",
        "200ms",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Waits for `child` (at most `limit`, then kills it); whether it
/// succeeded, and its stderr.
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.success(), stderr);
        }
        if started.elapsed() > limit {
            // A failure, told with what the run said: the caller shows it
            // beside the other processes' (a hang in one can come from
            // another).
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (
                false,
                format!(
                    "the run did not end within {limit:?}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The partitions a process's summary says it completed.
fn completed_partitions(stderr: &str) -> Vec<u64> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let summary: Value = serde_json::from_str(line).unwrap();
    summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "completed")
        .map(|p| p["partition"].as_u64().unwrap())
        .collect()
}

#[test]
fn two_processes_split_the_partitions_and_publish_everything_once() {
    let _serial = one_at_a_time();
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), &server.url(), 1, None, "2s");
    let expected = publish_input(&server.url(), &path, 8_000);

    let a = start(&path, "worker-1");
    let b = start(&path, "worker-2");
    let (a_ok, a_err) = finish(a, Duration::from_secs(120));
    let (b_ok, b_err) = finish(b, Duration::from_secs(120));
    assert!(
        a_ok && b_ok,
        "worker-1 (succeeded: {a_ok}):\n{a_err}\nworker-2 (succeeded: {b_ok}):\n{b_err}"
    );

    let (mut a_parts, b_parts) = (completed_partitions(&a_err), completed_partitions(&b_err));
    assert!(!a_parts.is_empty(), "worker-1 ran no partition:\n{a_err}");
    assert!(!b_parts.is_empty(), "worker-2 ran no partition:\n{b_err}");
    a_parts.extend(&b_parts);
    a_parts.sort();
    assert_eq!(a_parts, (0..u64::from(PARTITIONS)).collect::<Vec<_>>());
    check_outputs(&server.url(), &expected);
}

/// A SQL pipeline file runs distributed as its TOML twin does.
#[test]
fn a_sql_pipeline_splits_the_partitions_and_publishes_everything_once() {
    let _serial = one_at_a_time();
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = sql_pipeline(dir.path(), &server.url());
    let expected = publish_input(&server.url(), &path, 4_000);
    let a = start(&path, "worker-1");
    let b = start(&path, "worker-2");
    let (a_ok, a_err) = finish(a, Duration::from_secs(120));
    let (b_ok, b_err) = finish(b, Duration::from_secs(120));
    assert!(
        a_ok && b_ok,
        "worker-1 (succeeded: {a_ok}):\n{a_err}\nworker-2 (succeeded: {b_ok}):\n{b_err}"
    );
    let mut parts = completed_partitions(&a_err);
    parts.extend(completed_partitions(&b_err));
    parts.sort();
    assert_eq!(parts, (0..u64::from(PARTITIONS)).collect::<Vec<_>>());
    check_outputs(&server.url(), &expected);
}

/// Starts worker-1 (saying when its checkpoints commit) and worker-2
/// (with the test-only `faults`), kills worker-1 once it has committed a
/// checkpoint of a partition, and checks that worker-2 takes its partitions
/// over from their checkpoints: it completes every partition, resumes at
/// least one from a numbered checkpoint, reads fewer records than the input
/// holds (it did not read the taken partitions from their start), and the
/// output holds every record once.
fn takeover(faults: &str) -> Result<(), String> {
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Paced, so that the kill comes while both are in the middle.
    let path = pipeline(dir.path(), &server.url(), 1, Some(400), "2s");
    let expected = publish_input(&server.url(), &path, 8_000);
    let messages = 8_000 + BAD.len() as u64;

    let mut a = sluice(&[
        "run",
        path.to_str().unwrap(),
        "--member",
        "worker-1",
        "--checkpoint-interval",
        "200ms",
        "--verbose",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let b = sluice(&[
        "run",
        path.to_str().unwrap(),
        "--member",
        "worker-2",
        "--checkpoint-interval",
        "200ms",
    ])
    .env("SLUICE_FAULT", faults)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Kill worker-1 once a checkpoint of one of its partitions committed.
    let stderr = a.stderr.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("worker-1 committed no checkpoint");
        if line.contains(" committed: ") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let (b_ok, b_err) = finish(b, Duration::from_secs(180));
    assert!(b_ok, "worker-2 failed:\n{b_err}");
    let parts = completed_partitions(&b_err);
    assert_eq!(
        parts.len(),
        PARTITIONS as usize,
        "worker-2 did not complete every partition:\n{b_err}"
    );
    check_outputs(&server.url(), &expected);
    let summary = summary(&b_err);
    let resumed: Vec<u64> = summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["resumed_from"].as_u64())
        .collect();
    if resumed.is_empty() {
        return Err(format!(
            "worker-2 resumed no partition from a checkpoint:\n{b_err}"
        ));
    }
    let skipped: u64 = summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["skipped"].as_u64())
        .sum();
    let read = summary["read"].as_u64().unwrap();
    if read >= messages || skipped == 0 {
        return Err(format!(
            "worker-2 read {read} of {messages} records and skipped {skipped}: it read the \
             partitions it took over from their start"
        ));
    }
    Ok(())
}

/// The `summary:` line of a process's stderr.
fn summary(stderr: &str) -> Value {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_killed_process_has_its_partitions_taken_over_exactly_once() {
    let _serial = one_at_a_time();
    takeover("").unwrap();
}

/// The same takeover, with the partitions taken over read from their start
/// (the checkpoint ignored): the output is still right (the sink's message
/// ids drop the replayed records), so only the resume checks can tell.
#[test]
fn a_takeover_that_starts_over_is_caught() {
    let _serial = one_at_a_time();
    let error = takeover("skip-partition-resume").expect_err("the takeover check passed");
    assert!(
        error.contains("resumed no partition") || error.contains("from their start"),
        "{error}"
    );
}

#[test]
fn a_cluster_node_killed_mid_run_loses_nothing() {
    let _serial = one_at_a_time();
    let mut cluster = NatsServer::cluster(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let urls = cluster.urls();
    // Long enough leases to outlast the election of new stream leaders.
    let path = pipeline(dir.path(), &urls, 3, Some(600), "10s");
    let expected = publish_input(&urls, &path, 6_000);

    let a = start(&path, "worker-1");
    let b = start(&path, "worker-2");
    std::thread::sleep(Duration::from_millis(1500));
    cluster.nodes()[1].kill();
    // A failover on shared cores can cost a process its leases (their
    // partitions then wait out the TTL and move): generous bounds.
    let (a_ok, a_err) = finish(a, Duration::from_secs(180));
    let (b_ok, b_err) = finish(b, Duration::from_secs(180));
    assert!(
        a_ok && b_ok,
        "worker-1 (succeeded: {a_ok}):\n{a_err}\nworker-2 (succeeded: {b_ok}):\n{b_err}"
    );
    check_outputs(&urls, &expected);
}

#[test]
fn without_an_event_time_field_the_message_timestamp_is_the_event_time() {
    let _serial = one_at_a_time();
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let text = format!(
        r#"name = "stamped"

[source]
type = "nats"
url = "{url}"
stream = "events"
subject = "events.*"
partitions = 2
schema = {{ sensor = "string", temperature = "float64" }}
end = "caught-up"
lease_ttl = "2s"

[[sink]]
from = "source"
type = "nats"
url = "{url}"
subject = "results.raw"
stream = "results"
"#
    );
    let path = dir.path().join("stamped.toml");
    std::fs::write(&path, text).unwrap();
    let out = sluice(&["setup", path.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now_ms();
    let client = NatsClient::connect(&url).unwrap();
    for i in 0..10 {
        let record = format!(r#"{{"sensor":"s{i}","temperature":{i}.0}}"#);
        client
            .publish_with_id(
                &format!("events.s{i}"),
                record.into_bytes(),
                &format!("in-{i}"),
            )
            .unwrap();
    }
    let after = now_ms();
    let (ok, stderr) = finish(start(&path, "solo"), Duration::from_secs(60));
    assert!(ok, "{stderr}");
    let rows = read_output(&url, "results.raw");
    assert_eq!(rows.len(), 10, "{rows:?}");
    for (row, _) in rows {
        let stamp = row["nats_time"].as_i64().unwrap();
        // The server's clock is this machine's: within a second either way.
        assert!(
            (before - 1000..=after + 1000).contains(&stamp),
            "nats_time {stamp} outside [{before}, {after}]"
        );
    }
}

#[test]
fn a_file_or_generator_pipeline_publishes_every_row_to_a_subject_per_key() {
    let _serial = one_at_a_time();
    // More rows than the client lets be unacknowledged at once (5,000).
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let text = format!(
        r#"name = "produce"

[source]
type = "generator"
events = 20000
keys = 7

[execution]
batch_size = 8192

[[sink]]
from = "source"
type = "nats"
url = "{url}"
subject = "produced.{{sensor}}"
stream = "produced"
"#
    );
    let path = dir.path().join("produce.toml");
    std::fs::write(&path, text).unwrap();
    let out = sluice(&["run", path.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = NatsClient::connect(&url).unwrap();
    assert_eq!(client.stream_messages("produced").unwrap(), 20_000);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_every_partition_at_a_checkpoint_and_the_next_run_resumes() {
    let _serial = one_at_a_time();
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), &server.url(), 1, Some(300), "2s");
    // Read forever: only a signal ends these runs.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#"end = "caught-up""#, r#"end = "never""#);
    std::fs::write(&path, text).unwrap();
    publish_input(&server.url(), &path, 6_000);

    let terminate = |child: &Child| {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let first = start(&path, "worker-1");
    std::thread::sleep(Duration::from_millis(2500));
    terminate(&first);
    let (ok, stderr) = finish(first, Duration::from_secs(60));
    assert!(ok, "the first run failed:\n{stderr}");
    assert!(stderr.contains("\"stopped\":true"), "{stderr}");
    assert!(!stderr.contains("\"outcome\":\"lost\""), "{stderr}");

    let second = start(&path, "worker-1");
    std::thread::sleep(Duration::from_millis(2500));
    terminate(&second);
    let (ok, stderr) = finish(second, Duration::from_secs(60));
    assert!(ok, "the second run failed:\n{stderr}");
    assert!(
        stderr.contains("resumed from checkpoint"),
        "the second run did not resume:\n{stderr}"
    );
    // Whatever fired so far fired once.
    let mut seen = std::collections::BTreeSet::new();
    for (row, _) in read_output(&server.url(), "results.per_sensor.*") {
        let key = (
            row["sensor"].as_str().unwrap().to_string(),
            row["window_start"].as_i64().unwrap(),
        );
        assert!(
            seen.insert(key.clone()),
            "window {key:?} was published twice"
        );
    }
    assert!(!seen.is_empty(), "no window fired in five seconds");
}

#[test]
fn many_partitions_publishing_at_once_deliver_every_record_once() {
    let _serial = one_at_a_time();
    // 8 partitions pass 24,000 records through, each sink with thousands
    // of publishes outstanding: more than one client lets be in flight by
    // default, so this stalls if the sinks' bounds are not the process's.
    let server = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), &server.url(), 1, None, "2s");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#"from = "per_sensor""#, r#"from = "source""#);
    std::fs::write(&path, text.replace("batch_size = 64", "batch_size = 4096")).unwrap();
    publish_input(&server.url(), &path, 24_000);
    let (ok, stderr) = finish(start(&path, "solo"), Duration::from_secs(120));
    assert!(ok, "{stderr}");
    let rows = read_output(&server.url(), "results.per_sensor.*");
    assert_eq!(rows.len(), 24_000, "records lost or repeated");
    let mut seen = std::collections::BTreeSet::new();
    for (row, _) in &rows {
        assert!(seen.insert(row["ts"].as_i64().unwrap()), "{row} twice");
    }
}
