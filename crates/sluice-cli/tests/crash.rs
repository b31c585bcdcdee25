//! The crash harness: runs a pipeline over a large input with a short
//! checkpoint interval, kills it with SIGKILL at random moments, restarts it
//! until it completes, and compares every output (windows as JSON lines and
//! CSV, `late`, `dead_letter`) with a run that was never interrupted:
//! byte-identical with one worker, the same multiset of lines with two.
//!
//! CI runs 20 kills with one worker and 10 with two. The long mode:
//!
//! ```text
//! SLUICE_CRASH_KILLS=100 cargo test --release -p sluice-cli --test crash -- --nocapture
//! ```
//!
//! `SLUICE_CRASH_SEED` replays the kill times of a failed run (each run
//! prints its seed).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of input: large enough that a run takes seconds in a debug build.
const LINES: u64 = 100_000;

/// SplitMix64: the harness's randomness, replayable from a seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Sensor readings, mostly in order (up to 0.5 s out of order), with a
/// bad line every 9,973 lines and an event hours late every 40,000.
fn write_input(path: &Path) {
    let mut random = Random(42);
    let mut out = String::with_capacity(LINES as usize * 60);
    let mut t: u64 = 1_700_000_000_000;
    for i in 0..LINES {
        t += random.below(20);
        let ts = if i % 40_000 == 777 {
            t - 3_600_000
        } else {
            t - random.below(500)
        };
        let sensor = random.below(100);
        if i % 9_973 == 0 {
            out.push_str(&format!(
                "{{\"sensor\": \"s{sensor}\", \"temperature\": \"hot\", \"ts\": {ts}}}\n"
            ));
            continue;
        }
        let temperature = random.below(5_000) as f64 / 100.0 - 10.0;
        out.push_str(&format!(
            "{{\"sensor\": \"s{sensor}\", \"temperature\": {temperature}, \"ts\": {ts}}}\n"
        ));
    }
    fs::write(path, out).unwrap();
}

/// Filter; tumbling (with allowed lateness), session, sliding and count
/// windows, with aggregates whose state is a count, a sum, an extreme, a
/// sketch or moments; a rule; file sinks in two formats, and both reserved
/// streams. (Not percentiles: their t-digest is re-compressed when it is
/// restored; see docs/exactly-once.md.)
fn pipeline(input: &Path, workers: usize) -> String {
    format!(
        r#"name = "crash"

[source]
type = "file"
path = "{input}"
event_time = "ts"
max_out_of_orderness = "1s"

[execution]
batch_size = 1000
workers = {workers}

[[transform]]
name = "valid"
type = "filter"
where = "temperature > -5"

[[transform]]
name = "per_sensor"
type = "window"
from = "valid"
key = "sensor"
window = {{ type = "tumbling", size = "10s" }}
allowed_lateness = "2s"
aggregates = {{ n = "count(temperature)", total = "sum(temperature)", hi = "max(temperature)" }}

[[transform]]
name = "sessions"
type = "window"
from = "valid"
key = "sensor"
window = {{ type = "session", gap = "300ms" }}
aggregates = {{ n = "count(temperature)", lo = "min(temperature)" }}

[[transform]]
name = "sliding"
type = "window"
from = "valid"
key = "sensor"
window = {{ type = "sliding", size = "20s", slide = "5s" }}
aggregates = {{ mean = "avg(temperature)", lo = "min(temperature)", sd = "stddev(temperature)" }}

[[transform]]
name = "every50"
type = "window"
from = "valid"
key = "sensor"
window = {{ type = "count", size = 50 }}
aggregates = {{ avg = "avg(temperature)", distinct = "approx_distinct(sensor)", var = "var_pop(temperature)" }}

[[transform]]
name = "hot"
type = "rule"
from = "per_sensor"
when = "hi > 39.5"
emit = {{ sensor = "sensor", window_end = "window_end", level = "'hot'" }}

[[sink]]
from = "per_sensor"
type = "file"
path = "out/per_sensor.jsonl"

[[sink]]
from = "sessions"
type = "file"
path = "out/sessions.csv"

[[sink]]
from = "sliding"
type = "file"
path = "out/sliding.jsonl"

[[sink]]
from = "every50"
type = "file"
path = "out/every50.csv"

[[sink]]
from = "hot"
type = "file"
path = "out/hot.jsonl"

[[sink]]
from = "late"
type = "file"
path = "out/late.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead_letter.jsonl"
"#,
        input = input.display()
    )
}

/// The same kind of dataflow written in SQL: a filter; tumbling, session
/// and sliding windows (all with the source table's allowed lateness, so
/// their rows are changelogs); a running aggregate without a window; a
/// filter and select for the alerts; a join of two views within a time
/// range; an aggregate of the running aggregate's changelog; both reserved
/// streams.
fn sql_pipeline(input: &Path, workers: usize) -> String {
    format!(
        r#"SET execution.batch_size = 1000;
SET execution.workers = {workers};

CREATE TABLE readings WITH (
    connector = 'file', path = '{input}', event_time = 'ts', watermark = '1s',
    allowed_lateness = '2s'
);
CREATE TABLE per_sensor_file WITH (connector = 'file', path = 'out/per_sensor.jsonl');
CREATE TABLE sessions_file WITH (connector = 'file', path = 'out/sessions.csv');
CREATE TABLE sliding_file WITH (connector = 'file', path = 'out/sliding.jsonl');
CREATE TABLE hot_file WITH (connector = 'file', path = 'out/hot.jsonl');
CREATE TABLE totals_file WITH (connector = 'file', path = 'out/totals.jsonl');
CREATE TABLE late_file WITH (connector = 'file', path = 'out/late.jsonl');
CREATE TABLE dead_letter_file WITH (connector = 'file', path = 'out/dead_letter.jsonl');

CREATE VIEW valid AS SELECT * FROM readings WHERE temperature > -5;
CREATE VIEW per_sensor AS
    SELECT sensor, window_start, window_end, count(temperature) AS n,
           sum(temperature) AS total, max(temperature) AS hi
    FROM valid GROUP BY tumble(ts, INTERVAL '10' SECOND), sensor;
INSERT INTO per_sensor_file SELECT * FROM per_sensor;
INSERT INTO sessions_file
    SELECT sensor, window_start, window_end, count(temperature) AS n, min(temperature) AS lo
    FROM valid GROUP BY session(ts, INTERVAL '300' MILLISECOND), sensor;
INSERT INTO sliding_file
    SELECT sensor, window_end, avg(temperature) AS mean, max(temperature) - min(temperature) AS spread
    FROM valid GROUP BY hop(ts, INTERVAL '5' SECOND, INTERVAL '20' SECOND), sensor;
INSERT INTO hot_file SELECT sensor, window_end, 'hot' AS level FROM per_sensor WHERE hi > 39.5;
CREATE VIEW totals AS
    SELECT sensor, count(*) AS n, max(temperature) AS hi FROM valid GROUP BY sensor;
INSERT INTO totals_file SELECT * FROM totals;
CREATE TABLE overall_file WITH (connector = 'file', path = 'out/overall.jsonl');
INSERT INTO overall_file
    SELECT count(*) AS sensors, sum(n) AS readings, avg(hi) AS mean_hi FROM totals;
INSERT INTO late_file SELECT * FROM late;
INSERT INTO dead_letter_file SELECT * FROM dead_letter;

CREATE TABLE swings_file WITH (connector = 'file', path = 'out/swings.jsonl');
CREATE VIEW warm AS SELECT sensor, temperature, ts FROM valid WHERE temperature > 30;
CREATE VIEW cold AS SELECT sensor, temperature, ts FROM valid WHERE temperature < 0;
INSERT INTO swings_file
    SELECT w.sensor, w.ts AS warm_at, c.ts AS cold_at, w.temperature - c.temperature AS swing
    FROM warm AS w JOIN cold AS c
      ON w.sensor = c.sensor
     AND c.ts BETWEEN w.ts - INTERVAL '2' SECOND AND w.ts + INTERVAL '2' SECOND;
"#,
        input = input.display()
    )
}

/// The pipeline's language: the harness runs the same crashes on both.
#[derive(Clone, Copy)]
enum Written {
    Toml,
    /// The TOML pipeline without its count window, so that with several
    /// workers its input is read by as many readers, in stripes (a count
    /// window takes records in the order they come: one reader).
    TomlReadInParallel,
    /// The same, over the input written as Parquet (row groups of 4,000
    /// rows, dealt to the readers in turn).
    ParquetReadInParallel,
    Sql,
}

/// A folder with the pipeline file; its outputs go to `out/` in it.
fn workspace(root: &Path, name: &str, input: &Path, workers: usize) -> PathBuf {
    workspace_in(Written::Toml, root, name, input, workers)
}

fn workspace_in(
    written: Written,
    root: &Path,
    name: &str,
    input: &Path,
    workers: usize,
) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    match written {
        Written::Toml => fs::write(dir.join("p.toml"), pipeline(input, workers)).unwrap(),
        Written::TomlReadInParallel | Written::ParquetReadInParallel => {
            let text = match written {
                // Under a MiB: a reader per worker must be asked for.
                Written::ParquetReadInParallel => pipeline(&to_parquet(input), workers).replacen(
                    "event_time = ",
                    &format!("readers = {workers}\nevent_time = "),
                    1,
                ),
                _ => pipeline(input, workers),
            };
            let count_window = text.find("[[transform]]\nname = \"every50\"").unwrap();
            let after = count_window + text[count_window..].find("\n\n").unwrap() + 2;
            let sink = text.find("[[sink]]\nfrom = \"every50\"").unwrap();
            let after_sink = sink + text[sink..].find("\n\n").unwrap() + 2;
            let text = format!(
                "{}{}{}",
                &text[..count_window],
                &text[after..sink],
                &text[after_sink..]
            );
            fs::write(dir.join("p.toml"), text).unwrap()
        }
        Written::Sql => fs::write(dir.join("p.sql"), sql_pipeline(input, workers)).unwrap(),
    }
    dir
}

/// The input of `write_input` as Parquet beside it (written once): its bad
/// lines have no temperature and no event time (dead letters at their row).
fn to_parquet(input: &Path) -> PathBuf {
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let path = input.with_extension("parquet");
    if path.exists() {
        return path;
    }
    let (mut sensors, mut temperatures, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for line in fs::read_to_string(input).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let temperature = record["temperature"].as_f64();
        sensors.push(record["sensor"].as_str().unwrap().to_string());
        temperatures.push(temperature);
        times.push(temperature.and(record["ts"].as_i64()));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("sensor", DataType::Utf8, false),
        Field::new("temperature", DataType::Float64, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(sensors)),
            Arc::new(Float64Array::from(temperatures)),
            Arc::new(Int64Array::from(times)),
        ],
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(4_000))
        .build();
    let file = fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

/// The pipeline file of a workspace.
fn pipeline_file(dir: &Path) -> PathBuf {
    let sql = dir.join("p.sql");
    if sql.exists() {
        sql
    } else {
        dir.join("p.toml")
    }
}

/// A running `sluice run`: its stderr, line by line as it comes.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// Starts `sluice run -v` in `dir` with `extra` arguments and the test-only
/// faults `faults` (SLUICE_FAULT; empty for none).
fn start(dir: &Path, extra: &[&str], faults: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(pipeline_file(dir))
        .arg("--verbose")
        .args(extra)
        .env("SLUICE_FAULT", faults)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Run {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Run {
    /// Waits for a line containing `text`; `None` if the run ended (or
    /// said nothing for a minute) first.
    fn wait_for(&mut self, text: &str) -> Option<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(60)) {
            self.seen.push(line.clone());
            if line.contains(text) {
                return Some(line);
            }
        }
        None
    }

    /// Kills the run (SIGKILL) if it still runs; everything it said.
    /// `true` if it was killed, `false` if it had ended by itself; an error
    /// if it had ended by itself with a failure.
    fn kill(mut self) -> Result<(bool, Vec<String>), String> {
        use std::os::unix::process::ExitStatusExt;
        let _ = self.child.kill(); // fails only if it has ended
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        if status.signal() == Some(9) {
            Ok((true, self.seen))
        } else if status.success() {
            Ok((false, self.seen))
        } else {
            Err(format!(
                "a run failed on its own ({status}):\n{}",
                self.seen.join("\n")
            ))
        }
    }

    /// Waits for the run to end: whether it succeeded, and what it said.
    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.success(), self.seen.join("\n"))
    }
}

/// The checkpoint a run resumed from and the records it skipped, from its
/// first line (`resuming from checkpoint N: K records ...`, or `no
/// checkpoint yet`).
fn resumed(lines: &[String]) -> Option<(u64, u64)> {
    lines.iter().find_map(|line| {
        if line.contains("no checkpoint yet") {
            return Some((0, 0));
        }
        let rest = line.strip_prefix("resuming from checkpoint ")?;
        let (id, rest) = rest.split_once(": ")?;
        let skipped = rest.split_whitespace().next()?;
        Some((id.parse().ok()?, skipped.parse().ok()?))
    })
}

/// The last checkpoint a run said it committed, and the records read then.
fn last_commit(lines: &[String]) -> Option<(u64, u64)> {
    lines.iter().rev().find_map(|line| {
        let rest = line.strip_prefix("checkpoint ")?;
        let (id, rest) = rest.split_once(" committed: ")?;
        let read = rest.split_whitespace().next()?;
        Some((id.parse().ok()?, read.parse().ok()?))
    })
}

/// Every output file of a workspace, by name.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir.join("out")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, fs::read(&path).unwrap());
    }
    files
}

/// The lines, sorted, with every decimal fraction to 10 significant
/// digits: with several workers (and readers) partial aggregates meet in
/// varying order, and a float sum's last digits with it.
fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = bytes
        .split(|b| *b == b'\n')
        .map(|line| rounded(&String::from_utf8_lossy(line)))
        .collect();
    lines.sort_unstable();
    lines
}

/// `line` with each number that has a fraction to 10 significant digits.
fn rounded(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut number = String::new();
    let flush = |number: &mut String, out: &mut String| {
        match number.parse::<f64>() {
            Ok(x) if number.contains('.') => out.push_str(&format!("{x:.9e}")),
            _ => out.push_str(number),
        }
        number.clear();
    };
    for c in line.chars() {
        if c.is_ascii_digit()
            || c == '.'
            || (c == '-' && number.is_empty())
            || "eE".contains(c) && !number.is_empty()
        {
            number.push(c);
        } else {
            flush(&mut number, &mut out);
            out.push(c);
        }
    }
    flush(&mut number, &mut out);
    out
}

fn compare(
    reference: &BTreeMap<String, Vec<u8>>,
    got: &BTreeMap<String, Vec<u8>>,
    exact: bool,
) -> Result<(), String> {
    if reference.keys().ne(got.keys()) {
        return Err(format!(
            "not the same output files: {:?} vs {:?}",
            reference.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        ));
    }
    for (name, expected) in reference {
        let found = &got[name];
        let lines = expected.iter().filter(|b| **b == b'\n').count();
        assert!(
            lines > 0 || name == "hot.jsonl",
            "{name} is empty: a weak test"
        );
        // A join makes a pair when its later row comes: which of two rows
        // that come close together is later depends on how the workers
        // took turns, so the order of pairs may differ, not the pairs.
        if exact && !name.starts_with("swings") {
            if expected != found {
                return Err(format!(
                    "{name} differs from the uninterrupted run ({} vs {} bytes)",
                    expected.len(),
                    found.len()
                ));
            }
        } else {
            let (a, b) = (sorted_lines(expected), sorted_lines(found));
            if a != b {
                let missing = a.iter().filter(|l| !b.contains(l)).count();
                return Err(format!(
                    "{name}: not the same lines as the uninterrupted run ({} vs {} lines, \
                     {missing} missing)",
                    a.len(),
                    b.len()
                ));
            }
        }
    }
    Ok(())
}

/// Kills a run `kills` times, then lets it complete, and compares with an
/// uninterrupted run. A tenth of the kills land in the first 40 ms after
/// the start (start-up and recovery); the others once the run has
/// committed a checkpoint, after a random delay. Every restart must resume
/// from the last checkpoint its predecessor said it committed (or a later
/// one), skipping the records read before it, and the final outputs must
/// equal the uninterrupted run's: a run that starts over, or one that keeps
/// what was written after its checkpoint, fails. `faults` are passed on to
/// every run (SLUICE_FAULT), to show the harness catches them.
fn crash_and_compare(workers: usize, kills: usize, faults: &str) -> Result<(), String> {
    crash_and_compare_in(Written::Toml, workers, kills, faults)
}

fn crash_and_compare_in(
    written: Written,
    workers: usize,
    kills: usize,
    faults: &str,
) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.jsonl");
    write_input(&input);

    let reference = workspace_in(written, root.path(), "reference", &input, workers);
    let started = Instant::now();
    let (ok, stderr) = start(&reference, &[], "").finish();
    let clean_run = started.elapsed();
    assert!(ok, "the uninterrupted run failed:\n{stderr}");
    let expected = outputs(&reference);

    let seed = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("workers {workers}: {kills} kills, seed {seed}, clean run {clean_run:?}");
    let mut random = Random(seed);
    let crashed = workspace_in(written, root.path(), "crashed", &input, workers);
    let state = crashed.join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let args = ["--state-dir", &state_arg, "--checkpoint-interval", "50ms"];
    // Each kill lands within a slice of the clean run's time after the
    // run's first commit, so that the kills use about half the input. If
    // a run completes before all the kills have landed (the machine got
    // faster), its outputs are checked and a fresh round goes on.
    let slice = clean_run.as_millis() as u64 / (2 * kills as u64);
    let (mut killed, mut runs, mut rounds) = (0, 0, 0);
    let (mut restarts, mut resumed_restarts) = (0, 0);
    while killed < kills {
        rounds += 1;
        assert!(rounds <= kills + 5, "{rounds} rounds for {kills} kills");
        let _ = fs::remove_dir_all(&state);
        let _ = fs::remove_dir_all(crashed.join("out"));
        // What the run before said it had committed: (checkpoint, records).
        let mut committed: Option<(u64, u64)> = None;
        let mut first = true;
        loop {
            runs += 1;
            assert!(runs <= kills * 4 + 10, "no completion after {runs} runs");
            let mut run = start(&crashed, &args, faults);
            let early = killed < kills && random.below(10) == 0;
            if early {
                std::thread::sleep(Duration::from_millis(random.below(40)));
            } else if killed < kills && run.wait_for(" committed: ").is_some() {
                std::thread::sleep(Duration::from_millis(random.below(slice)));
            }
            let (lines, completed) = if killed < kills {
                let (was_killed, lines) = run.kill()?;
                if was_killed {
                    killed += 1;
                }
                let done = !was_killed && lines.iter().any(|l| l.contains("\"stopped\":false"));
                (lines, done)
            } else {
                let (ok, stderr) = run.finish();
                if !ok {
                    return Err(format!("run {runs} failed:\n{stderr}"));
                }
                let lines: Vec<String> = stderr.lines().map(String::from).collect();
                let done = stderr.contains("\"stopped\":false");
                (lines, done)
            };
            // Where this run started, against what the one before committed.
            if let Some((id, skipped)) = resumed(&lines) {
                if !first {
                    restarts += 1;
                    resumed_restarts += u64::from(id > 0);
                }
                if let Some((before, read)) = committed {
                    if id < before || skipped < read {
                        return Err(format!(
                            "run {runs} resumed from checkpoint {id} ({skipped} records \
                             skipped), but the run before it had committed checkpoint \
                             {before} ({read} records read): it did not resume from its \
                             last checkpoint"
                        ));
                    }
                }
            }
            if let Some(commit) = last_commit(&lines) {
                committed = Some(commit);
            }
            first = false;
            if completed {
                break;
            }
        }
        compare(&expected, &outputs(&crashed), workers == 1)?;
    }
    println!(
        "workers {workers}: {killed} kills, {runs} runs, {rounds} round(s), \
         {resumed_restarts} of {restarts} restarts resumed from a checkpoint"
    );
    if resumed_restarts * 2 < restarts {
        return Err(format!(
            "only {resumed_restarts} of {restarts} restarts resumed from a checkpoint: \
             the kills did not test recovery"
        ));
    }

    // Once complete, a rerun says so and writes nothing.
    let (ok, stderr) = start(&crashed, &args, faults).finish();
    assert!(ok && stderr.contains("already completed"), "{stderr}");
    compare(&expected, &outputs(&crashed), workers == 1)
}

fn kills(default: usize) -> usize {
    std::env::var("SLUICE_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(default)
}

#[test]
fn one_worker_survives_sigkill_byte_for_byte() {
    crash_and_compare(1, kills(20), "").unwrap();
}

#[test]
fn two_workers_survive_sigkill_with_the_same_lines() {
    crash_and_compare(2, kills(10), "").unwrap();
}

/// Two readers, each reading stripes of the input file and checkpointing
/// its own position: the same lines as an uninterrupted run.
#[test]
fn two_readers_survive_sigkill_with_the_same_lines() {
    crash_and_compare_in(Written::TomlReadInParallel, 2, kills(10), "").unwrap();
}

/// The harness fails a resume whose second reader starts its stripes over
/// (its records are read twice).
#[test]
fn the_harness_catches_a_reader_that_starts_over() {
    let error = crash_and_compare_in(Written::TomlReadInParallel, 2, 4, "reader-starts-over")
        .expect_err("the harness passed");
    assert!(
        error.contains("did not resume from its last checkpoint")
            || error.contains("not the same lines"),
        "{error}"
    );
}

/// Two readers of a Parquet file, each taking every other row group and
/// checkpointing its position by row: the same lines as an uninterrupted run.
#[test]
fn two_readers_of_a_parquet_file_survive_sigkill_with_the_same_lines() {
    crash_and_compare_in(Written::ParquetReadInParallel, 2, kills(6), "").unwrap();
}

/// The harness fails a resume whose second Parquet reader starts over.
#[test]
fn the_harness_catches_a_parquet_reader_that_starts_over() {
    let error = crash_and_compare_in(Written::ParquetReadInParallel, 2, 4, "reader-starts-over")
        .expect_err("the harness passed");
    assert!(
        error.contains("did not resume from its last checkpoint")
            || error.contains("not the same lines"),
        "{error}"
    );
}

/// A SQL pipeline goes through the same plan, checkpoints and recovery.
#[test]
fn a_sql_pipeline_survives_sigkill_byte_for_byte() {
    crash_and_compare_in(Written::Sql, 1, kills(10), "").unwrap();
}

/// ... and the harness catches a restart from scratch there too.
#[test]
fn the_harness_catches_a_restart_from_scratch_of_a_sql_pipeline() {
    let error =
        crash_and_compare_in(Written::Sql, 1, 4, "skip-restore").expect_err("the harness passed");
    assert!(
        error.contains("did not resume from its last checkpoint"),
        "{error}"
    );
}

/// ... and a join that forgets the rows it held at a restart: the pairs of
/// a row before the checkpoint and one after it are missing.
#[test]
fn the_harness_catches_a_join_that_forgets_its_state() {
    let error = crash_and_compare_in(Written::Sql, 1, 4, "forget-join-state")
        .expect_err("the harness passed");
    assert!(error.contains("swings.jsonl"), "{error}");
}

/// ... and an aggregate of a changelog that forgets the rows it held at a
/// restart: their earlier values are never taken back out.
#[test]
fn the_harness_catches_an_aggregate_of_a_changelog_that_forgets_its_state() {
    let error = crash_and_compare_in(Written::Sql, 1, 4, "forget-changelog-state")
        .expect_err("the harness passed");
    assert!(error.contains("overall.jsonl"), "{error}");
}

/// The harness fails a run that restarts from nothing instead of resuming,
/// though its outputs are right (it recomputes everything).
#[test]
fn the_harness_catches_a_restart_from_scratch() {
    let error = crash_and_compare(1, 4, "skip-restore").expect_err("the harness passed");
    assert!(
        error.contains("did not resume from its last checkpoint"),
        "{error}"
    );
}

/// The harness fails a resume that keeps what was written after the
/// checkpoint (repeated output).
#[test]
fn the_harness_catches_a_resume_that_keeps_the_uncommitted_tail() {
    let error = crash_and_compare(1, 4, "skip-truncate").expect_err("the harness passed");
    assert!(
        error.contains("differs from the uninterrupted run"),
        "{error}"
    );
}

#[test]
fn sigterm_takes_a_last_checkpoint_and_the_next_run_resumes() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.jsonl");
    write_input(&input);
    let reference = workspace(root.path(), "reference", &input, 1);
    let started = Instant::now();
    let (ok, stderr) = start(&reference, &[], "").finish();
    assert!(ok, "{stderr}");
    // Stop a third of the way through (in a debug or a release build).
    let stop_after = (started.elapsed() / 3).max(Duration::from_millis(50));

    let stopped = workspace(root.path(), "stopped", &input, 1);
    let state = stopped.join("state").to_string_lossy().into_owned();
    let args = ["--state-dir", state.as_str(), "--checkpoint-interval", "1h"];
    let mut run = start(&stopped, &args, "");
    // Timed from the moment the state is open, not from the start.
    assert!(run.wait_for("no checkpoint yet").is_some());
    std::thread::sleep(stop_after);
    let status = Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, stderr) = run.finish();
    assert!(ok, "a graceful stop exits 0:\n{stderr}");
    assert!(stderr.contains("stopped after checkpoint 1"), "{stderr}");
    // The windows kept their state: no partial results were written.
    let partial = outputs(&stopped);
    let full = outputs(&reference);
    assert!(partial["per_sensor.jsonl"].len() < full["per_sensor.jsonl"].len());
    assert!(full["per_sensor.jsonl"].starts_with(&partial["per_sensor.jsonl"]));

    let (ok, stderr) = start(&stopped, &args, "").finish();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("resuming from checkpoint 1: "), "{stderr}");
    assert!(stderr.contains("resumed from checkpoint 1"), "{stderr}");
    compare(&full, &outputs(&stopped), true).unwrap();
}
