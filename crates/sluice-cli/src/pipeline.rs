//! `sluice run` and `sluice validate`: pipeline files.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_pipeline::run::{progress, run as run_plan};
use sluice_pipeline::{load, LoadError};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// The pipeline file (TOML).
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
}

/// Options of `sluice validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Overrides a value of the file, as for `sluice run`.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
}

fn failed(error: &LoadError) -> ExitCode {
    eprintln!("error: {error}");
    match error {
        LoadError::Invalid(_) => ExitCode::from(INVALID),
        LoadError::Runtime(_) => ExitCode::from(RUNTIME_FAILURE),
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
    let result = run_plan(plan, &progress);
    done.store(true, Ordering::Relaxed);
    if let Some((bar, thread)) = bar {
        let _ = thread.join();
        bar.finish_and_clear();
    }
    match result {
        Ok(summary) => {
            let json = serde_json::to_string(&summary).unwrap_or_default();
            eprintln!("summary: {json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(RUNTIME_FAILURE)
        }
    }
}
