//! `sluice bench scaling`: the speed-up from workers. Runs W1, Nexmark q0,
//! q1, q2, q5 and q7, and the filter + window pipeline file, with 1, 2, ...
//! N workers, checks every run's results, and prints a JSON line per run
//! and a table of events/s, events per CPU-second and the ratio to one
//! worker.

use super::report::{children_cpu_seconds, Report};
use super::{workloads, BenchArgs, Workload};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One run's figures.
struct Run {
    workload: &'static str,
    workers: usize,
    events_per_sec: f64,
    per_cpu_second: Option<f64>,
}

/// The typed workloads of the table.
const TYPED: [(&str, Workload); 6] = [
    ("w1", Workload::W1),
    ("nexmark-q0", Workload::NexmarkQ0),
    ("nexmark-q1", Workload::NexmarkQ1),
    ("nexmark-q2", Workload::NexmarkQ2),
    ("nexmark-q5", Workload::NexmarkQ5),
    ("nexmark-q7", Workload::NexmarkQ7),
];

pub fn run(args: &BenchArgs) -> Result<()> {
    let most = args.workers();
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for (name, workload) in TYPED {
        for workers in 1..=most {
            let mut one = args.clone();
            one.workload = workload;
            one.workers = Some(workers as u64);
            let mut report = Report::new(&one);
            match workload {
                Workload::W1 => workloads::w1(&one, &mut report)?,
                other => {
                    let query = other.nexmark_query().context("not a Nexmark workload")?;
                    workloads::nexmark(&one, query, &mut report)?;
                }
            }
            println!("{}", report.to_json());
            if let Some(problem) = report.failure() {
                problems.push(format!("{name} with {workers} workers: {problem}"));
            }
            runs.push(Run {
                workload: name,
                workers,
                events_per_sec: report.number("events_per_sec").unwrap_or(0.0),
                per_cpu_second: report.number("events_per_sec_per_core"),
            });
        }
    }
    let pipeline_events = args.pipeline_events;
    let mut first_output: Option<Vec<String>> = None;
    for workers in 1..=most {
        let (run, output) = pipeline_file(pipeline_events, workers)?;
        match &first_output {
            None => first_output = Some(output),
            Some(want) if *want != output => problems.push(format!(
                "the pipeline file's output with {workers} workers differs from one worker's"
            )),
            Some(_) => {}
        }
        println!(
            "{}",
            json!({
                "workload": "pipeline-filter-window",
                "workers": workers,
                "events": pipeline_events,
                "events_per_sec": run.events_per_sec.round(),
                "events_per_sec_per_core": run.per_cpu_second.map(f64::round),
            })
        );
        runs.push(run);
    }
    print_table(&runs);
    if !problems.is_empty() {
        bail!("wrong results: {}", problems.join("; "));
    }
    Ok(())
}

/// The table, in Markdown.
fn print_table(runs: &[Run]) {
    println!();
    println!("| workload | workers | events/s | events per CPU-second | vs 1 worker |");
    println!("|---|---:|---:|---:|---:|");
    for run in runs {
        let one = runs
            .iter()
            .find(|r| r.workload == run.workload && r.workers == 1)
            .map_or(f64::NAN, |r| r.events_per_sec);
        println!(
            "| {} | {} | {:.2}M | {} | {:.2}x |",
            run.workload,
            run.workers,
            run.events_per_sec / 1e6,
            run.per_cpu_second
                .map_or_else(|| "-".to_string(), |c| format!("{:.2}M", c / 1e6)),
            run.events_per_sec / one,
        );
    }
}

/// `benches/pipelines/make_input.toml`: the pipeline file's input.
const MAKE_INPUT: &str = include_str!("../../../../benches/pipelines/make_input.toml");

/// `benches/pipelines/filter_window.toml`: the pipeline file measured.
const FILTER_WINDOW: &str = include_str!("../../../../benches/pipelines/filter_window.toml");

/// Runs `benches/pipelines/filter_window.toml` over `events` JSON lines
/// with `workers` workers, in a child `sluice run`; returns its figures and
/// its output, sorted.
fn pipeline_file(events: u64, workers: usize) -> Result<(Run, Vec<String>)> {
    let sluice = std::env::current_exe().context("cannot find the sluice binary")?;
    let dir = PathBuf::from("target/bench-pipeline");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    // The pipeline files are the repo's, built in: the bench runs from any
    // folder.
    let make_input = dir.join("make_input.toml");
    let filter_window = dir.join("filter_window.toml");
    for (path, text) in [(&make_input, MAKE_INPUT), (&filter_window, FILTER_WINDOW)] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let input = dir.join(format!("input-{events}.jsonl"));
    if !input.exists() {
        eprintln!("writing {} ...", input.display());
        let status = Command::new(&sluice)
            .arg("run")
            .arg(&make_input)
            .arg("--set")
            .arg(format!("source.events={events}"))
            .arg("--set")
            .arg(format!("sink.source.path={}", input.display()))
            .status()
            .context("cannot run sluice to write the input")?;
        if !status.success() {
            bail!("writing the pipeline's input failed: {status}");
        }
    }
    let output = dir.join(format!("per_sensor-{workers}.jsonl"));
    let dead = dir.join(format!("dead_letter-{workers}.jsonl"));
    let _ = std::fs::remove_file(&output);
    let _ = std::fs::remove_file(&dead);
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let status = Command::new(&sluice)
        .arg("run")
        .arg(&filter_window)
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--set")
        .arg(format!("source.path={}", input.display()))
        .arg("--set")
        .arg(format!("sink.per_sensor.path={}", output.display()))
        .arg("--set")
        .arg(format!("sink.dead_letter.path={}", dead.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run sluice on the pipeline file")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("the pipeline file failed with {workers} workers: {status}");
    }
    let cpu = children_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    // Several readers add a window's partial sums in varying order: its
    // floats are compared to 10 significant digits.
    let mut lines: Vec<String> = read_lines(&output)?.iter().map(|l| rounded(l)).collect();
    lines.sort();
    Ok((
        Run {
            workload: "pipeline-filter-window",
            workers,
            events_per_sec: events as f64 / seconds,
            per_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| events as f64 / c),
        },
        lines,
    ))
}

/// A JSON line with its fractional numbers to 10 significant digits.
fn rounded(line: &str) -> String {
    fn round(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or(0.0);
                *value = serde_json::Value::String(format!("{x:.9e}"));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(round),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(round),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut value) => {
            round(&mut value);
            value.to_string()
        }
        Err(_) => line.to_string(),
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .map(str::to_string)
        .collect())
}
