//! `sluice run` and `sluice validate`: pipeline files.

use crate::ui;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_pipeline::Watch;
use sluice_pipeline::{load, Error, Fix};
use sluice_pipeline::{progress, run_with, RunOptions, RunOutcome};
use sluice_pipeline::{CheckpointConfig, Guarantee, StateLocation};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Exit code of a run that failed (input, output).
const RUNTIME_FAILURE: u8 = 1;
/// Exit code of an invalid pipeline file or command line.
const INVALID: u8 = 2;

/// Options of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file: TOML, or SQL (`.sql`).
    pipeline: PathBuf,
    /// Overrides a value of the file: `--set source.path=other.jsonl`,
    /// `--set transform.valid.where="t > 0"`, `--set execution.workers=4`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
    /// Workers for keyed work (overrides `execution.workers`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    workers: Option<u64>,
    /// Serves Prometheus metrics at this address (`127.0.0.1:9898`) while
    /// the pipeline runs.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Shows a progress bar even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Keeps checkpoints in this directory: a run that was killed resumes
    /// from the last one, with exactly-once results; SIGINT or SIGTERM
    /// takes a last checkpoint and exits 0.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Time between checkpoints (default 10s with --state-dir, 1s in a
    /// distributed run).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Discards the state in --state-dir (in a distributed run: the state
    /// of every partition in NATS) and starts over.
    #[arg(long)]
    fresh: bool,
    /// What a checkpointed run promises: exactly-once (files only),
    /// at-least-once (allows stdout, which repeats lines after a crash) or
    /// at-most-once (also allows stdin, which loses lines after a crash).
    #[arg(long, value_name = "GUARANTEE", default_value = "exactly-once", value_parser = Guarantee::parse)]
    guarantee: Guarantee,
    /// This process's name among the processes of a distributed run (a
    /// nats source, or a kafka source with `coordination`); unique among
    /// them. Default: host name and process id.
    #[arg(long, value_name = "NAME")]
    member: Option<String>,
    /// Serves a live dashboard (a web page and a JSON API) at this address:
    /// `8080` or `127.0.0.1:8080` (port 0 picks a free one). An address
    /// other than loopback needs --ui-token.
    #[arg(long, value_name = "ADDR", value_parser = parse_ui_addr)]
    ui: Option<SocketAddr>,
    /// The token every request to the dashboard must carry
    /// (`?token=` or `Authorization: Bearer`); at least 16 characters.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SLUICE_UI_TOKEN",
        hide_env_values = true,
        requires = "ui"
    )]
    ui_token: Option<String>,
    /// How long the dashboard stays up once the input has ended (default:
    /// until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "ui")]
    ui_linger: Option<Duration>,
    /// Says on stderr where a run with --state-dir resumes (checkpoint,
    /// records already read) and when each checkpoint commits.
    #[arg(short, long)]
    verbose: bool,
}

/// A value of a flag that does not parse.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("`{0}` is not an address: write a port (8080) or IP:PORT (127.0.0.1:8080)")]
    Address(String),
    #[error("{0} (write it like 500ms, 10s or 1m)")]
    Duration(humantime::DurationError),
    #[error("the interval must be more than zero")]
    ZeroInterval,
}

fn parse_ui_addr(text: &str) -> Result<SocketAddr, ArgError> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    text.parse()
        .map_err(|_| ArgError::Address(text.to_string()))
}

fn parse_duration(text: &str) -> Result<Duration, ArgError> {
    let duration = humantime::parse_duration(text).map_err(ArgError::Duration)?;
    if duration.is_zero() {
        return Err(ArgError::ZeroInterval);
    }
    Ok(duration)
}

/// Options of `sluice validate` and `sluice explain`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline file: TOML, or SQL (`.sql`).
    pipeline: PathBuf,
    /// Overrides a value of the file, as for `sluice run`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
}

/// Prints `error` and what fixes it, in this command's words; its exit
/// code.
fn failed(error: &Error) -> ExitCode {
    explain(error);
    if error.is_invalid() {
        ExitCode::from(INVALID)
    } else {
        ExitCode::from(RUNTIME_FAILURE)
    }
}

/// Prints `error` and what fixes it.
fn explain(error: &Error) {
    eprintln!("error: {error}");
    if let Some(fix) = error.fix() {
        eprintln!("help: {}", fix_words(fix));
    }
}

/// What the flags of `sluice run` do about a failure.
fn fix_words(fix: Fix) -> &'static str {
    match fix {
        Fix::StartOver => "run with --fresh to discard the saved state and start over",
        Fix::OtherStateOrStartOver => {
            "use another --state-dir, or run with --fresh to discard that state and start over"
        }
        Fix::AcceptRepeats => "pass --guarantee at-least-once to accept repeats",
        Fix::AcceptLoss => "pass --guarantee at-most-once to accept that loss",
        Fix::NoCheckpoints => "run without --state-dir",
        Fix::CheckpointMoreOften => "shorten --checkpoint-interval (and lease_ttl in the file)",
        _ => "see the message above",
    }
}

/// `sluice validate`.
pub fn validate(args: &ValidateArgs) -> ExitCode {
    match load(&args.pipeline, &args.set, None) {
        Ok(plan) => {
            print!("{}", plan.describe());
            println!("\n{}: valid", args.pipeline.display());
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}

/// `sluice explain`: the dataflow, without the verdict.
pub fn describe(args: &ValidateArgs) -> ExitCode {
    match load(&args.pipeline, &args.set, None) {
        Ok(plan) => {
            print!("{}", plan.describe());
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}

/// `sluice run`.
pub fn run(args: &RunArgs) -> ExitCode {
    let workers = args.workers.map(|w| w as usize);
    let plan = match load(&args.pipeline, &args.set, workers) {
        Ok(plan) => plan,
        Err(error) => return failed(&error),
    };
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    let distributed = sluice_pipeline::distributed::coordination(&plan).is_some();
    if args.state_dir.is_none() && !distributed {
        for (flag, given) in [
            ("--fresh", args.fresh),
            ("--guarantee", args.guarantee != Guarantee::ExactlyOnce),
            ("--checkpoint-interval", args.checkpoint_interval.is_some()),
        ] {
            if given {
                eprintln!("error: {flag} needs --state-dir (or a distributed run)");
                return ExitCode::from(INVALID);
            }
        }
    }
    if let Some(addr) = args.metrics_addr {
        let installed = metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install();
        if let Err(error) = installed {
            eprintln!("error: cannot serve metrics at {addr}: {error}");
            return ExitCode::from(RUNTIME_FAILURE);
        }
        eprintln!("metrics: http://{addr}/metrics");
    }
    let watch = match args.ui {
        None => None,
        Some(addr) => {
            if let Err(error) = ui::check(addr, args.ui_token.as_deref()) {
                eprintln!("error: {error}");
                return ExitCode::from(INVALID);
            }
            let watch = Watch::new(&plan);
            match ui::serve(watch.clone(), addr, args.ui_token.clone()) {
                Ok(bound) => {
                    let hint = if args.ui_token.is_some() {
                        "?token=TOKEN"
                    } else {
                        ""
                    };
                    eprintln!("dashboard: http://{bound}/{hint}");
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(RUNTIME_FAILURE);
                }
            }
            Some(watch)
        }
    };
    if distributed {
        if args.state_dir.is_some() || watch.is_some() {
            eprintln!(
                "error: a distributed run (a nats source, or a kafka source with \
                 `coordination`) keeps its state in NATS and runs without --state-dir or --ui"
            );
            return ExitCode::from(INVALID);
        }
        return run_distributed(args, workers);
    }
    let progress = progress(&plan);
    let done = Arc::new(AtomicBool::new(false));
    let terminal = std::io::stderr().is_terminal();
    let bar = match progress.total_bytes {
        Some(total) if args.progress && !terminal => {
            // Not a terminal: a plain line every second, and one at the end.
            let (counters, done2) = (progress.source.clone(), done.clone());
            let line = move || {
                let bytes = counters.bytes.load(Ordering::Relaxed);
                eprintln!(
                    "progress: {:.0}% {bytes}/{total} bytes, {} records",
                    100.0 * bytes as f64 / total.max(1) as f64,
                    counters.read.load(Ordering::Relaxed)
                );
            };
            let thread = std::thread::spawn(move || {
                let mut ticks = 0u32;
                while !done2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    ticks += 1;
                    if ticks % 10 == 0 {
                        line();
                    }
                }
                line();
            });
            Some((ProgressBar::hidden(), thread))
        }
        Some(total) if terminal => {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let (bar2, counters, done2) = (bar.clone(), progress.source.clone(), done.clone());
            let thread = std::thread::spawn(move || {
                while !done2.load(Ordering::Relaxed) {
                    bar2.set_position(counters.bytes.load(Ordering::Relaxed));
                    bar2.set_message(format!("{} records", counters.read.load(Ordering::Relaxed)));
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            Some((bar, thread))
        }
        _ => None,
    };
    let options = RunOptions {
        checkpoints: args.state_dir.as_ref().map(|dir| CheckpointConfig {
            location: StateLocation::Dir(dir.clone()),
            interval: args.checkpoint_interval.unwrap_or(Duration::from_secs(10)),
            fresh: args.fresh,
            guarantee: args.guarantee,
            log: args.verbose.then(String::new),
        }),
        stop: Arc::new(AtomicBool::new(false)),
        watch: watch
            .clone()
            .map(|w| w as Arc<dyn sluice_pipeline::Telemetry>),
        partition: None,
    };
    // Once the run is over, a signal ends the dashboard's lingering.
    let lingering = Arc::new(AtomicBool::new(false));
    // The run's exit code, for a signal that ends the lingering.
    let exit = Arc::new(std::sync::atomic::AtomicU8::new(0));
    if options.checkpoints.is_some() || watch.is_some() {
        // The first SIGINT/SIGTERM asks for a last checkpoint; a second one
        // exits at once (the next run resumes from the last checkpoint).
        let (stop, checkpoints, lingering, exit) = (
            options.stop.clone(),
            options.checkpoints.is_some(),
            lingering.clone(),
            exit.clone(),
        );
        let installed = ctrlc::set_handler(move || {
            if lingering.load(Ordering::SeqCst) {
                std::process::exit(i32::from(exit.load(Ordering::SeqCst)));
            }
            if !checkpoints || stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("stopping: taking a last checkpoint (again to exit at once)");
        });
        if let Err(error) = installed {
            eprintln!("error: cannot handle signals: {error}");
            return ExitCode::from(RUNTIME_FAILURE);
        }
    }
    let result = run_with(plan, &progress, &options);
    done.store(true, Ordering::Relaxed);
    if let Some((bar, thread)) = bar {
        let _ = thread.join();
        bar.finish_and_clear();
    }
    if let Some(watch) = &watch {
        watch.finish(result.as_ref().map(|_| ()));
        exit.store(
            if result.is_ok() { 0 } else { RUNTIME_FAILURE },
            Ordering::SeqCst,
        );
        lingering.store(true, Ordering::SeqCst);
    }
    let code = report(args, result);
    if let Some(watch) = &watch {
        watch.sample();
        lingering.store(true, Ordering::SeqCst);
        match args.ui_linger {
            Some(linger) => {
                eprintln!(
                    "dashboard: the run is over; it stays up for {}",
                    humantime::format_duration(linger)
                );
                std::thread::sleep(linger);
            }
            None => {
                eprintln!("dashboard: the run is over; it stays up until Ctrl-C");
                loop {
                    std::thread::park();
                }
            }
        }
    }
    code
}

/// `sluice run` of a pipeline with a nats source (or a kafka source with
/// `coordination`): this process's share of a distributed run.
fn run_distributed(args: &RunArgs, workers: Option<usize>) -> ExitCode {
    use sluice_pipeline::distributed::{self, DistributedOptions};
    let member = args.member.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        format!("{host}-{}", std::process::id())
    });
    let (path, set) = (args.pipeline.clone(), args.set.clone());
    let load: distributed::LoadPlan = Arc::new(move || load(&path, &set, workers));
    let options = DistributedOptions {
        member,
        checkpoint_interval: args.checkpoint_interval.unwrap_or(Duration::from_secs(1)),
        fresh: args.fresh,
        guarantee: args.guarantee,
        stop: Arc::new(AtomicBool::new(false)),
        log: args.verbose,
    };
    let stop = options.stop.clone();
    let installed = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "stopping: every partition takes a last checkpoint and its lease is given back \
             (again to exit at once)"
        );
    });
    if let Err(error) = installed {
        eprintln!("error: cannot handle signals: {error}");
        return ExitCode::from(RUNTIME_FAILURE);
    }
    eprintln!("member {} of pipeline group", options.member);
    match distributed::run(load, &options) {
        Ok(summary) => {
            let json = serde_json::to_string(&summary).unwrap_or_default();
            eprintln!("summary: {json}");
            ExitCode::SUCCESS
        }
        // The file was valid at the start: whatever fails now (even a
        // partition that reloads a file changed since) is a runtime failure.
        Err(error) => {
            explain(&error);
            ExitCode::from(RUNTIME_FAILURE)
        }
    }
}

/// Options of `sluice setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The pipeline file (TOML), with a nats source.
    pipeline: PathBuf,
    /// Overrides a value of the file, as for `sluice run`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
}

/// `sluice setup`: creates the streams a pipeline with a nats source
/// reads and writes, before producers publish.
pub fn setup(args: &SetupArgs) -> ExitCode {
    let plan = match load(&args.pipeline, &args.set, None) {
        Ok(plan) => plan,
        Err(error) => return failed(&error),
    };
    match sluice_pipeline::distributed::setup(&plan) {
        Ok(made) => {
            for line in made {
                println!("ready: {line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}

/// Prints how the run ended; its exit code.
fn report(args: &RunArgs, result: Result<RunOutcome, Error>) -> ExitCode {
    match result {
        Ok(outcome) => {
            let summary = outcome.summary();
            let report = summary.checkpoints.clone().unwrap_or_default();
            let dir = args.state_dir.as_deref().unwrap_or(Path::new("."));
            match &outcome {
                RunOutcome::AlreadyCompleted(_) => eprintln!(
                    "pipeline `{}` already completed (state in {}): its outputs are final, \
                     nothing to do. Pass --fresh to run it again",
                    summary.pipeline,
                    dir.display()
                ),
                RunOutcome::Stopped(_) => eprintln!(
                    "stopped after checkpoint {}: run the same command to resume",
                    report.last.unwrap_or(0)
                ),
                RunOutcome::Completed(_) => {
                    if let Some(from) = report.resumed_from {
                        eprintln!(
                            "resumed from checkpoint {from} ({} records were read before it) \
                             and completed",
                            report.skipped
                        );
                    }
                }
            }
            let json = serde_json::to_string(summary).unwrap_or_default();
            eprintln!("summary: {json}");
            ExitCode::SUCCESS
        }
        Err(error) => failed(&error),
    }
}
