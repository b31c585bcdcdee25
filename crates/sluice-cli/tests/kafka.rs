//! The kafka source and sink against a real Kafka-compatible broker (a
//! private `tansu` each test starts, `support/kafka.rs`): windows read from
//! a topic and written to another equal an independent reference; runs
//! killed with SIGKILL and restarted leave every record in the output
//! topics exactly once (and with the sink's read-back switched off, a
//! test-only fault, the same test finds the repeats); bad records become
//! dead letters that say where they were; a broker restart mid-run loses
//! nothing; the start offsets and the group's committed offsets.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};
use support::kafka::{Broker, Produce};
use support::run::{run_to_end, Run};

/// A reading: sensor, temperature, event time.
type Reading = (String, i64, i64);

/// `n` readings of 8 sensors, 200 a second of event time, in time order;
/// about one in ten has a negative temperature (filtered out).
fn readings(n: i64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            (
                format!("s{}", i % 8),
                (i * 37) % 100 - 10,
                1_700_000_000_000 + i * 5,
            )
        })
        .collect()
}

/// Makes topic `readings` of 4 partitions and produces `input` to it,
/// keyed by sensor (each sensor's readings in one partition, in order).
fn produce_readings(broker: &Broker, input: &[Reading]) {
    produce_to(broker, input, 4, |_| None);
}

/// Makes topic `readings` of `partitions` and produces `input` to it, keyed
/// by sensor, each reading to the partition `partition` says (none: by key).
fn produce_to(
    broker: &Broker,
    input: &[Reading],
    partitions: i32,
    partition: impl Fn(&str) -> Option<i32>,
) {
    broker.create_topic("readings", partitions);
    let values: Vec<String> = input
        .iter()
        .map(|(s, t, ts)| format!("{{\"sensor\":\"{s}\",\"temperature\":{t},\"ts\":{ts}}}"))
        .collect();
    let records: Vec<Produce<'_>> = input
        .iter()
        .zip(&values)
        .map(|((sensor, ..), value)| Produce {
            partition: partition(sensor),
            key: Some(sensor),
            value: value.as_bytes(),
            timestamp: None,
        })
        .collect();
    broker.produce("readings", &records);
}

/// Readings with a temperature of 0 or more, to topic `valid`; per-sensor
/// one-second windows (count and sum) to topic `windows`.
fn pipeline(brokers: &str, extra_source: &str) -> String {
    format!(
        r#"
name = "kafka_windows"

[source]
type = "kafka"
brokers = "{brokers}"
topic = "readings"
end = "caught-up"
event_time = "ts"
schema = {{ sensor = "string", temperature = "int", ts = "int" }}
{extra_source}

[execution]
batch_size = 64
# Two readers of the topic's partitions in one process (a distributed run's
# partition has one).
workers = 2

[[transform]]
name = "valid"
type = "filter"
where = "temperature >= 0"

[[transform]]
name = "per_sensor"
type = "window"
key = ["sensor"]
window = {{ type = "tumbling", size = "1s" }}
aggregates = {{ n = "count(*)", total = "sum(temperature)" }}

[[sink]]
from = "valid"
type = "kafka"
brokers = "{brokers}"
topic = "valid"
key = "sensor"
partitions = 3

[[sink]]
from = "per_sensor"
type = "kafka"
brokers = "{brokers}"
topic = "windows"
key = "sensor"
partitions = 2
"#
    )
}

/// The readings the filter keeps (with how many times each), and each
/// window's count and sum.
type Expected = (
    BTreeMap<Reading, usize>,
    BTreeMap<(String, i64), (i64, i64)>,
);

/// The reference: the readings the filter keeps, and the windows' counts
/// and sums, each with how many times it should be there (once).
fn expected(input: &[Reading]) -> Expected {
    let mut valid = BTreeMap::new();
    let mut windows: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for r in input.iter().filter(|r| r.1 >= 0) {
        *valid.entry(r.clone()).or_insert(0) += 1;
        let w = windows
            .entry((r.0.clone(), r.2 - r.2.rem_euclid(1000)))
            .or_default();
        w.0 += 1;
        w.1 += r.1;
    }
    (valid, windows)
}

/// What the output topics hold: each reading with how many times it is
/// there, and each window's rows (more than one is a repeat).
type Output = (
    BTreeMap<Reading, usize>,
    BTreeMap<(String, i64), Vec<(i64, i64)>>,
);

/// What the output topics hold, and the numbers each writer gave its
/// records (`sluice-writer`, `sluice-seq` headers).
fn output_and_numbers(broker: &Broker) -> (Output, BTreeMap<String, Vec<u64>>) {
    let valid_records = broker.read_all("valid");
    let window_records = broker.read_all("windows");
    let mut numbers: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in valid_records.iter().chain(&window_records) {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no header {name}: {r:?}"))
        };
        numbers
            .entry(header("sluice-writer"))
            .or_default()
            .push(header("sluice-seq").parse().unwrap());
    }
    let valid = valid_readings(valid_records);
    let mut windows: BTreeMap<(String, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for r in window_records {
        let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        windows
            .entry((
                v["sensor"].as_str().unwrap().to_string(),
                v["window_start"].as_i64().unwrap(),
            ))
            .or_default()
            .push((v["n"].as_i64().unwrap(), v["total"].as_i64().unwrap()));
    }
    ((valid, windows), numbers)
}

/// The readings of topic `valid`'s records, with how many times each is
/// there (each keyed by its sensor).
fn valid_readings(records: Vec<support::kafka::Record>) -> BTreeMap<Reading, usize> {
    let mut valid = BTreeMap::new();
    for r in records {
        let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        let sensor = v["sensor"].as_str().unwrap().to_string();
        assert_eq!(r.key.as_deref(), Some(sensor.as_str()), "{r:?}");
        let reading = (
            sensor,
            v["temperature"].as_i64().unwrap(),
            v["ts"].as_i64().unwrap(),
        );
        *valid.entry(reading).or_insert(0) += 1;
    }
    valid
}

fn output(broker: &Broker) -> Output {
    output_and_numbers(broker).0
}

/// Where the output differs from the reference, if it does: losses and
/// repeats counted apart.
fn compare(input: &[Reading], got: &Output) -> Result<(), String> {
    let (valid, windows) = expected(input);
    let mut problems = Vec::new();
    let missing = valid.keys().filter(|r| !got.0.contains_key(*r)).count();
    let repeated: usize = got.0.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let foreign = got.0.keys().filter(|r| !valid.contains_key(*r)).count();
    if missing + repeated + foreign > 0 {
        problems.push(format!(
            "topic valid: {missing} readings missing, {repeated} repeated, {foreign} not in \
             the input (of {})",
            valid.len()
        ));
    }
    let missing = windows.keys().filter(|w| !got.1.contains_key(*w)).count();
    let repeated: usize = got.1.values().map(|rows| rows.len() - 1).sum();
    let wrong = windows
        .iter()
        .filter(|(w, want)| {
            got.1
                .get(*w)
                .is_some_and(|rows| rows.iter().any(|r| r != *want))
        })
        .count();
    if missing + repeated + wrong > 0 {
        problems.push(format!(
            "topic windows: {missing} windows missing, {repeated} repeated, {wrong} wrong (of {})",
            windows.len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// `compare`'s report says some readings or windows came more than once
/// (not only that some are missing).
fn repeats_found(report: &str) -> bool {
    // The word before each " repeated" is a count.
    let parts: Vec<&str> = report.split(" repeated").collect();
    parts[..parts.len() - 1]
        .iter()
        .filter_map(|before| before.rsplit(' ').next())
        .any(|count| count.parse::<usize>().is_ok_and(|n| n > 0))
}

#[test]
fn a_report_of_losses_alone_is_not_one_of_repeats() {
    let losses = "topic valid: 5 readings missing, 0 repeated, 0 not in the input (of 40); \
                  topic windows: 2 windows missing, 0 repeated, 0 wrong (of 9)";
    assert!(!repeats_found(losses));
    assert!(repeats_found(&losses.replacen(
        "2 windows missing, 0",
        "2 windows missing, 3",
        1
    )));
    assert!(repeats_found(
        "topic valid: 0 readings missing, 1 repeated, 0 not in the input (of 40)"
    ));
}

#[test]
fn windows_read_from_a_topic_and_written_to_another_equal_the_reference() {
    let t = Instant::now();
    let broker = Broker::start();
    println!("broker up: {:?}", t.elapsed());
    let input = readings(4_000);
    produce_readings(&broker, &input);
    println!("produced: {:?}", t.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    fs::write(&file, pipeline(&broker.brokers(), "")).unwrap();
    let said = run_to_end(&file, &[]);
    println!("ran: {:?}\n{said}", t.elapsed());
    let (got, numbers) = output_and_numbers(&broker);
    println!("read: {:?}", t.elapsed());
    assert!(got.1.len() >= 150, "{} windows\n{said}", got.1.len());
    compare(&input, &got).unwrap();

    // Each record names its writer and its number: 0, 1, ... per writer.
    assert_eq!(
        numbers.keys().collect::<Vec<_>>(),
        ["per_sensor", "valid"],
        "writers"
    );
    for (writer, mut seqs) in numbers {
        seqs.sort_unstable();
        let n = seqs.len() as u64;
        assert!(
            seqs.into_iter().eq(0..n),
            "{writer}: numbers are not 0..{n}"
        );
    }
}

/// Runs the pipeline with checkpoints every `interval`, killed with
/// SIGKILL `kills` times, each once a checkpoint that read records has
/// committed, the output has grown past it (or 60 s have gone) and up to
/// `linger` more has passed, then to its end; compares the output topics
/// with the reference. At least one kill must follow output past a
/// checkpoint, and the last run must resume from one that read records.
fn kill_and_compare(
    kills: usize,
    faults: &str,
    interval: &str,
    linger: Duration,
) -> Result<(), String> {
    let broker = Broker::start();
    let input = readings(6_000);
    produce_readings(&broker, &input);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    // Paced, so that output is being written whenever the kill comes.
    fs::write(&file, pipeline(&broker.brokers(), "rate = 1500")).unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let args = [
        "--verbose",
        "--checkpoint-interval",
        interval,
        "--state-dir",
        state,
    ];
    let mut seed = 0x5EED_u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    // Kills, and those that came after output past a checkpoint was seen
    // (a kill whose wait ran out proves less: it may leave nothing to skip).
    let (mut killed, mut past_checkpoint, mut runs) = (0, 0, 0);
    loop {
        runs += 1;
        assert!(runs <= kills * 4 + 10, "no completion after {runs} runs");
        let mut run = Run::start(&file, &args, faults);
        if killed < kills {
            let mut grew = false;
            // A checkpoint after records were read, then records in topic
            // `valid` that it does not cover: the kill leaves output past
            // the checkpoint, which the next run must not write again.
            let committed = run.wait_for_checkpoint_that_read(Duration::from_secs(120));
            if committed {
                // Until then, or the run's end, or 60 s (each look whose
                // broker answer is missing counts as no growth).
                let deadline = Instant::now() + Duration::from_secs(60);
                let reader = broker.reader();
                let mut covered = None;
                while Instant::now() < deadline && run.running() {
                    match (covered, support::kafka::count(&reader, "valid", 3)) {
                        (None, now) => covered = now,
                        (Some(before), Some(now)) if now > before => {
                            grew = true;
                            break;
                        }
                        _ => {}
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let linger = linger.as_millis() as u64;
                std::thread::sleep(Duration::from_millis((seed >> 33) % (linger + 1)));
            }
            if run.kill() {
                killed += 1;
                past_checkpoint += usize::from(grew);
                continue;
            }
            // It ended before the kill: the last run.
        }
        let (ok, said) = run.finish();
        if !ok {
            return Err(format!("the last run failed: {said}"));
        }
        // A restart from scratch would read everything again.
        let skipped = summary(&said)["checkpoints"]["skipped"].as_u64();
        if !skipped.is_some_and(|n| n > 0) {
            return Err(format!(
                "the last run resumed from no checkpoint that read records:\n{said}"
            ));
        }
        break;
    }
    println!("{killed} kills in {runs} runs, {past_checkpoint} after output past a checkpoint");
    if past_checkpoint == 0 {
        return Err(format!(
            "no run was killed after writing output past a checkpoint ({killed} kills): \
             the test tested nothing"
        ));
    }
    compare(&input, &output(&broker))
}

#[test]
fn output_topics_survive_sigkill_exactly_once() {
    kill_and_compare(6, "", "100ms", Duration::from_millis(400)).unwrap();
}

/// Checkpoints far apart and the kill right after records past one were
/// written: every kill leaves records a resumed sink must skip.
#[test]
fn the_kill_test_catches_a_sink_that_does_not_read_back_what_it_wrote() {
    let outcome = kill_and_compare(4, "kafka-sink-no-skip", "1s", Duration::ZERO);
    assert!(
        outcome.as_ref().is_err_and(|e| repeats_found(e)),
        "{outcome:?}"
    );
}

/// Runs a pipeline that reads `readings` without end and writes the valid
/// ones to topic `valid`, handing the producer one record at a time (so
/// that the sink holds most back while the broker answers); waits up to
/// `within` for every valid reading to be in the topic while the run goes
/// on, then stops it.
fn written_while_running(faults: &str, within: Duration) -> Result<(), String> {
    let broker = Broker::start();
    let input = readings(200);
    produce_readings(&broker, &input);
    let brokers = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    fs::write(
        &file,
        format!(
            r#"
name = "kafka_running"

[source]
type = "kafka"
brokers = "{brokers}"
topic = "readings"
end = "never"
event_time = "ts"
schema = {{ sensor = "string", temperature = "int", ts = "int" }}

[execution]
# The sink's stage receives from the two workers' filters: it is ticked
# only at the deadlines it asks for.
workers = 2

[[transform]]
name = "valid"
type = "filter"
where = "temperature >= 0"

[[sink]]
from = "valid"
type = "kafka"
brokers = "{brokers}"
topic = "valid"
key = "sensor"
properties = {{ "batch.num.messages" = "1" }}
"#
        ),
    )
    .unwrap();
    broker.create_topic("valid", 3);
    let mut run = Run::start(&file, &[], faults);
    let (want, _) = expected(&input);
    let deadline = Instant::now() + within;
    let outcome = loop {
        let got = valid_readings(broker.read_all("valid"));
        if got == want {
            break Ok(());
        }
        if Instant::now() >= deadline {
            let have: usize = got.values().sum();
            break Err(format!(
                "{have} of {} valid readings in topic `valid` after {within:?} of the run",
                want.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(run.kill(), "a run without end ended: {}", run.finish().1);
    outcome
}

#[test]
fn a_running_pipeline_writes_what_it_read_while_the_input_is_quiet() {
    written_while_running("", Duration::from_secs(120)).unwrap();
}

#[test]
fn the_running_test_catches_a_sink_that_holds_records_back_until_the_end() {
    // With the fault the held records wait for a checkpoint or the end,
    // which never come: however long the test waits.
    let outcome = written_while_running("kafka-sink-holds-back", Duration::from_secs(15));
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.contains("valid readings")),
        "{outcome:?}"
    );
}

#[test]
fn a_broker_restart_mid_run_loses_and_repeats_nothing() {
    let mut broker = Broker::start();
    let input = readings(4_000);
    produce_readings(&broker, &input);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    // Paced, so that the broker goes away while the run reads and writes.
    fs::write(&file, pipeline(&broker.brokers(), "rate = 1000")).unwrap();
    let state = dir.path().join("state");
    let args = [
        "--verbose",
        "--checkpoint-interval",
        "200ms",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut run = Run::start(&file, &args, "");
    assert!(
        run.wait_for(" committed: ", Duration::from_secs(120)),
        "no checkpoint before the restart"
    );
    assert!(run.running(), "the run ended before the broker went away");
    broker.restart(Duration::from_secs(2));
    let (ok, said) = run.finish();
    assert!(
        ok,
        "the run failed across the broker's restart:\n{said}\n{}",
        broker.log()
    );
    compare(&input, &output(&broker)).unwrap();
}

#[test]
fn bad_records_become_dead_letters_that_say_where_they_were() {
    let broker = Broker::start();
    broker.create_topic("mixed", 2);
    let values = [
        r#"{"sensor":"a","temperature":1,"ts":1000}"#,
        "not json",
        r#"{"sensor":"b","temperature":"warm","ts":2000}"#,
        r#"{"sensor":"c","temperature":3,"ts":3000}"#,
    ];
    let records: Vec<Produce<'_>> = values
        .iter()
        .map(|value| Produce {
            partition: Some(1),
            key: None,
            value: value.as_bytes(),
            timestamp: None,
        })
        .collect();
    broker.produce("mixed", &records);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    fs::write(
        &file,
        format!(
            r#"
name = "bad"
[source]
type = "kafka"
brokers = "{}"
topic = "mixed"
end = "caught-up"
event_time = "ts"
schema = {{ sensor = "string", temperature = "int", ts = "int" }}

[[sink]]
from = "source"
type = "file"
path = "out/good.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#,
            broker.brokers()
        ),
    )
    .unwrap();
    let said = run_to_end(&file, &[]);
    let good = fs::read_to_string(dir.path().join("out/good.jsonl")).unwrap();
    assert_eq!(good.lines().count(), 2, "{good}\n{said}");
    let dead: Vec<serde_json::Value> = fs::read_to_string(dir.path().join("out/dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let places: Vec<(String, i64)> = dead
        .iter()
        .map(|d| {
            (
                d["origin"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            ("kafka:mixed/1".to_string(), 1),
            ("kafka:mixed/1".to_string(), 2)
        ],
        "{dead:?}"
    );
    assert!(said.contains("dead_letter"), "{said}");
}

#[test]
fn raw_records_with_their_timestamps_from_a_time_and_from_the_groups_offsets() {
    let broker = Broker::start();
    broker.create_topic("lines", 1);
    let texts: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let records: Vec<Produce<'_>> = texts
        .iter()
        .enumerate()
        .map(|(i, value)| Produce {
            partition: None,
            key: Some("k"),
            value: value.as_bytes(),
            timestamp: Some(1_800_000_000_000 + i as i64 * 1000),
        })
        .collect();
    broker.produce("lines", &records);
    let dir = tempfile::tempdir().unwrap();
    let run = |start: &str, out: &str| -> Vec<serde_json::Value> {
        let file = dir.path().join(format!("{out}.toml"));
        fs::write(
            &file,
            format!(
                r#"
name = "raw"
[source]
type = "kafka"
brokers = "{}"
topic = "lines"
format = "raw"
start = "{start}"
end = "caught-up"
group = "readers"

[[sink]]
from = "source"
type = "file"
path = "out/{out}.jsonl"
"#,
                broker.brokers()
            ),
        )
        .unwrap();
        // With checkpoints: their commits also commit the group's offsets.
        let state = dir.path().join(format!("state-{out}"));
        run_to_end(
            &file,
            &[
                "--state-dir",
                state.to_str().unwrap(),
                "--checkpoint-interval",
                "100ms",
            ],
        );
        fs::read_to_string(dir.path().join(format!("out/{out}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // From a time: the 40 records at or after it, with their timestamps.
    let rows = run("2027-01-15T08:00:00Z", "from_time");
    let at = chrono_ms("2027-01-15T08:00:00Z");
    let first = (at - 1_800_000_000_000) / 1000;
    assert_eq!(rows.len() as i64, 100 - first, "{rows:?}");
    assert_eq!(rows[0]["value"], format!("line {first}"));
    assert_eq!(rows[0]["key"], "k");
    assert_eq!(rows[0]["kafka_time"], at);
    // The run committed its offsets to group `readers`: a run that starts
    // from them reads nothing more.
    let rows = run("committed", "from_committed");
    assert!(rows.is_empty(), "{rows:?}");
}

/// Epoch milliseconds of an RFC 3339 time (whole seconds, UTC).
fn chrono_ms(text: &str) -> i64 {
    // 2027-01-15T08:00:00Z: days from the civil date.
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000
}

/// The readings of topic `readings` of 8 partitions: sensor `sK` in
/// partition K (each partition one sensor, in time order).
fn produce_to_eight_partitions(broker: &Broker, input: &[Reading]) {
    produce_to(broker, input, 8, |sensor| sensor[1..].parse().ok());
}

/// The `summary:` line of a distributed run's stderr.
fn summary(said: &str) -> serde_json::Value {
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary in:\n{said}"));
    serde_json::from_str(line).unwrap()
}

/// Two `sluice run` processes share the 8 partitions of the input topic
/// (members, leases and checkpoints in NATS); the first is killed with
/// SIGKILL once one of its partitions has committed a checkpoint that read
/// records. The second takes its partitions over from their checkpoints
/// and finishes them; the output topics are compared with the reference,
/// and each partition's writers must have numbered their records 0..n-1.
fn two_processes_one_killed(faults: &str) -> Result<(), String> {
    // One at a time: 4 processes of 8 partitions each, with a client or
    // three per partition, are what one broker on SQLite takes on these
    // cores beside the other tests.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let nats = sluice_nats::server::NatsServer::start().unwrap();
    let broker = Broker::start();
    let input = readings(8_000);
    produce_to_eight_partitions(&broker, &input);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    // Paced (per partition), so that the kill comes in the middle.
    let extra = format!(
        "coordination = \"{}\"\nlease_ttl = \"9s\"\nrate = 150",
        nats.url()
    );
    fs::write(&file, pipeline(&broker.brokers(), &extra)).unwrap();
    let args = |member| {
        [
            "--member",
            member,
            "--verbose",
            "--checkpoint-interval",
            "500ms",
        ]
    };
    let mut a = Run::start(&file, &args("a"), "");
    let b = Run::start(&file, &args("b"), faults);
    let read_and_committed = a.wait_for_checkpoint_that_read(Duration::from_secs(120));
    if !read_and_committed {
        let (_, said) = a.finish_within(Duration::from_secs(1));
        let (_, b_said) = b.finish_within(Duration::from_secs(1));
        return Err(format!(
            "a committed no checkpoint that read records:\n{said}\n\nb said:\n{b_said}\n\nthe \
             broker said:\n{}",
            broker.log()
        ));
    }
    let wait = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 400;
    std::thread::sleep(Duration::from_millis(u64::from(wait)));
    assert!(a.kill(), "a ended before the kill:\n{}", a.said.join("\n"));
    // The partitions a ran ("partition N: taken (lease revision R)").
    let taken: std::collections::BTreeSet<u64> = a
        .said
        .iter()
        .filter(|l| l.contains(": taken"))
        .filter_map(|l| {
            l.strip_prefix("partition ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let (ok, said) = b.finish_within(Duration::from_secs(300));
    assert!(
        ok,
        "b failed:\n{said}\n\nthe broker said:\n{}",
        broker.log()
    );
    let summary = summary(&said);
    let partitions = summary["partitions"].as_array().unwrap();
    let completed: std::collections::BTreeSet<u64> = partitions
        .iter()
        .filter(|p| p["outcome"] == "completed")
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        completed.len(),
        8,
        "b did not complete every partition (a took {taken:?}):\n{said}"
    );
    // b completed some of a's partitions from a checkpoint that read
    // records (the first is taken before reading): a takeover, not a
    // start from scratch.
    let taken_over = partitions
        .iter()
        .filter(|p| p["outcome"] == "completed")
        .filter(|p| taken.contains(&p["partition"].as_u64().unwrap()))
        .filter(|p| p["resumed_from"].as_u64().is_some_and(|c| c > 1))
        .count();
    assert!(
        taken_over > 0,
        "b resumed none of a's partitions {taken:?} from a checkpoint that read records:\n{said}"
    );
    let (got, numbers) = output_and_numbers(&broker);
    compare(&input, &got)?;
    // A writer per sink and partition, each numbering its records 0..n-1.
    assert_eq!(numbers.len(), 16, "writers: {:?}", numbers.keys());
    for (writer, mut seqs) in numbers {
        seqs.sort_unstable();
        let n = seqs.len() as u64;
        assert!(
            seqs.into_iter().eq(0..n),
            "{writer}: numbers are not 0..{n}"
        );
    }
    Ok(())
}

#[test]
fn two_processes_split_eight_partitions_and_a_killed_one_loses_and_repeats_nothing() {
    two_processes_one_killed("").unwrap();
}

/// The same, with the survivor's sinks not reading back what the killed
/// process wrote after its checkpoints: the repeats are found.
#[test]
fn the_two_process_kill_test_catches_a_takeover_that_does_not_read_back() {
    let outcome = two_processes_one_killed("kafka-sink-no-skip");
    assert!(
        outcome.as_ref().is_err_and(|e| repeats_found(e)),
        "{outcome:?}"
    );
}

/// The typed API reads a topic with `sluice::connectors::kafka::KafkaSource`,
/// its 4 partitions shared by 3 sources that read in parallel: every
/// reading once, with its event time from the record (`ts`), through a
/// filter, against the reference.
#[test]
fn the_typed_api_reads_every_record_of_a_topic_once() {
    use sluice::connectors::kafka::KafkaSource;
    use sluice::Pipeline;

    let broker = Broker::start();
    let input = readings(3_000);
    produce_readings(&broker, &input);
    let brokers = broker.brokers();
    let source = |share| {
        KafkaSource::new(&brokers, &["readings"], |record| {
            let v: serde_json::Value = serde_json::from_slice(record.value.unwrap_or_default())?;
            let reading: Reading = (
                v["sensor"].as_str().ok_or("no sensor")?.to_string(),
                v["temperature"].as_i64().ok_or("no temperature")?,
                v["ts"].as_i64().ok_or("no ts")?,
            );
            Ok(reading)
        })
        .unwrap()
        .with_event_time(|r: &Reading| r.2)
        .until_caught_up()
        .share(share, 3)
    };
    let pipeline = Pipeline::new();
    let collected = pipeline
        .partitioned_source(3, source)
        .filter(|r| r.1 >= 0)
        .collect();
    pipeline.run().unwrap();
    let mut got: BTreeMap<Reading, usize> = BTreeMap::new();
    for (reading, time) in collected.take_with_times() {
        assert_eq!(reading.2, time, "event time");
        *got.entry(reading).or_insert(0) += 1;
    }
    assert_eq!(got, expected(&input).0);
}

/// A SQL pipeline reads and writes Kafka tables (`connector = 'kafka'`):
/// the same filter and windows as the TOML pipeline, against the reference.
#[test]
fn a_sql_pipeline_reads_and_writes_kafka_tables() {
    let broker = Broker::start();
    let input = readings(3_000);
    produce_readings(&broker, &input);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.sql");
    let brokers = broker.brokers();
    fs::write(
        &file,
        format!(
            r#"SET pipeline.name = 'kafka_sql';
SET execution.batch_size = 64;

CREATE TABLE readings (sensor VARCHAR, temperature BIGINT, ts BIGINT) WITH (
    connector = 'kafka', brokers = '{brokers}', topic = 'readings', event_time = 'ts',
    end = 'caught-up'
);
CREATE TABLE valid WITH (
    connector = 'kafka', brokers = '{brokers}', topic = 'valid', key = 'sensor',
    partitions = 3
);
CREATE TABLE windows WITH (
    connector = 'kafka', brokers = '{brokers}', topic = 'windows', key = 'sensor',
    partitions = 2
);

INSERT INTO valid SELECT * FROM readings WHERE temperature >= 0;
INSERT INTO windows
    SELECT sensor, window_start, count(*) AS n, sum(temperature) AS total
    FROM readings WHERE temperature >= 0
    GROUP BY tumble(ts, INTERVAL '1' SECOND), sensor;
"#
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let said = run_to_end(&file, &["--state-dir", state.to_str().unwrap()]);
    let (got, numbers) = output_and_numbers(&broker);
    assert!(got.1.len() >= 100, "{} windows\n{said}", got.1.len());
    compare(&input, &got).unwrap();
    assert_eq!(numbers.len(), 2, "writers: {:?}", numbers.keys());
}

/// The Avro schema of the readings.
const READING_AVSC: &str = r#"{"type": "record", "name": "reading", "fields": [
    {"name": "sensor", "type": "string"},
    {"name": "temperature", "type": "long"},
    {"name": "ts", "type": "long"}]}"#;

/// Records in Avro with Confluent's framing (`format = "avro-confluent"`,
/// `avro_schema`): the same windows and rows as from JSON, against the
/// reference; a record that is not Avro is a dead letter.
#[test]
fn avro_records_give_the_same_rows_and_windows_and_bad_ones_are_dead_letters() {
    use apache_avro::types::Record;
    let broker = Broker::start();
    let input = readings(3_000);
    broker.create_topic("readings", 4);
    let schema = apache_avro::Schema::parse_str(READING_AVSC).unwrap();
    let mut values: Vec<Vec<u8>> = input
        .iter()
        .map(|(sensor, temperature, ts)| {
            let mut record = Record::new(&schema).unwrap();
            record.put("sensor", sensor.as_str());
            record.put("temperature", *temperature);
            record.put("ts", *ts);
            // A zero, then the schema's id in a registry (4 bytes).
            let mut framed = vec![0, 0, 0, 0, 1];
            framed.extend(apache_avro::to_avro_datum(&schema, record).unwrap());
            framed
        })
        .collect();
    values.push(b"{\"not\": \"avro\"}".to_vec());
    let records: Vec<Produce<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Produce {
            partition: None,
            key: Some(input.get(i).map_or("s0", |r| r.0.as_str())),
            value,
            timestamp: None,
        })
        .collect();
    broker.produce("readings", &records);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("reading.avsc"), READING_AVSC).unwrap();
    let file = dir.path().join("p.toml");
    let toml = pipeline(&broker.brokers(), "").replace(
        r#"schema = { sensor = "string", temperature = "int", ts = "int" }"#,
        "format = \"avro-confluent\"\navro_schema = \"reading.avsc\"",
    );
    assert!(toml.contains("avro_schema"), "{toml}");
    fs::write(&file, toml).unwrap();
    let said = run_to_end(&file, &[]);
    compare(&input, &output(&broker)).unwrap();
    let summary = said
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary:\n{said}"));
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(summary["dead_letter"], 1, "{said}");
}
