//! `sluice bench WORKLOAD`: runs a workload, prints one JSON line with its
//! throughput, memory, latency and checksums, and exits non-zero when the
//! checksums are wrong.

mod adaptive;
mod latency;
mod report;
mod scaling;
mod sql;
mod workloads;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use report::Report;
use sluice::FlushPolicy;
use std::time::Duration;

/// The workloads `sluice bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Stateless: keep value > 0.5, map to value * 2 (shared W0).
    W0,
    /// Per key, 1 s tumbling windows: count, sum, mean, min, max (shared W1).
    W1,
    /// Nexmark q0: pass-through of bids.
    NexmarkQ0,
    /// Nexmark q1: bid prices in euros.
    NexmarkQ1,
    /// Nexmark q2: bids on every 123rd auction.
    NexmarkQ2,
    /// Nexmark q3: sellers of category-10 auctions in OR, ID, CA (a join).
    NexmarkQ3,
    /// Nexmark q4: average closing price per category (join + aggregates).
    NexmarkQ4,
    /// Nexmark q5: hot items per 10 s window sliding by 2 s.
    NexmarkQ5,
    /// Nexmark q7: highest bid per 10 s window, joined back to the bids.
    NexmarkQ7,
    /// Nexmark q8: persons who sold in the 10 s window they joined in.
    NexmarkQ8,
    /// Nexmark q0 written in SQL (examples/nexmark/q0.sql), rows to a file.
    NexmarkSqlQ0,
    /// Nexmark q1 written in SQL.
    NexmarkSqlQ1,
    /// Nexmark q2 written in SQL.
    NexmarkSqlQ2,
    /// Nexmark q3 written in SQL (a join bounded by state.ttl).
    NexmarkSqlQ3,
    /// Nexmark q4 written in SQL (a join, a running maximum, an average of
    /// that changelog).
    NexmarkSqlQ4,
    /// Nexmark q5 written in SQL (a window over windows, joined back).
    NexmarkSqlQ5,
    /// Nexmark q7 written in SQL (a window joined back to the bids).
    NexmarkSqlQ7,
    /// Nexmark q8 written in SQL (a join of two windowed views).
    NexmarkSqlQ8,
    /// Event mode at an offered rate: source -> rule -> handler -> sink, with
    /// per-event latency in an HDR histogram.
    Latency,
    /// The adaptive flush policy against fixed ones, under light,
    /// saturating, light and bursty load: throughput and latency per phase.
    Adaptive,
    /// The speed-up from workers: W1, Nexmark q0-q2, q5, q7 and the filter +
    /// window pipeline file with 1, 2, ... `--workers` workers, each run
    /// checked; a table of events/s and the ratio to one worker.
    Scaling,
}

impl Workload {
    /// The Nexmark query name, for Nexmark workloads.
    fn nexmark_query(self) -> Option<&'static str> {
        Some(match self {
            Workload::NexmarkQ0 => "q0",
            Workload::NexmarkQ1 => "q1",
            Workload::NexmarkQ2 => "q2",
            Workload::NexmarkQ3 => "q3",
            Workload::NexmarkQ4 => "q4",
            Workload::NexmarkQ5 => "q5",
            Workload::NexmarkQ7 => "q7",
            Workload::NexmarkQ8 => "q8",
            _ => return None,
        })
    }

    /// The Nexmark query name, for Nexmark queries written in SQL.
    fn nexmark_sql_query(self) -> Option<&'static str> {
        Some(match self {
            Workload::NexmarkSqlQ0 => "q0",
            Workload::NexmarkSqlQ1 => "q1",
            Workload::NexmarkSqlQ2 => "q2",
            Workload::NexmarkSqlQ3 => "q3",
            Workload::NexmarkSqlQ4 => "q4",
            Workload::NexmarkSqlQ5 => "q5",
            Workload::NexmarkSqlQ7 => "q7",
            Workload::NexmarkSqlQ8 => "q8",
            _ => return None,
        })
    }
}

/// How events travel between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every event on its own.
    Event,
    /// Micro-batches of `--batch-size` (or `--batch-interval`).
    MicroBatch,
}

/// Where the latency workload's bus handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HandlerPlacement {
    /// As a call on the publishing worker's thread (`Handler::inline`).
    Inline,
    /// On a thread of its own behind a queue (the bus's default).
    Thread,
}

/// Options of `sluice bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum)]
    workload: Workload,
    /// Events to process (throughput workloads).
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Workers for keyed work, and source partitions. Default: the cores.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: Option<u64>,
    /// Event mode or micro-batches.
    #[arg(long, value_enum, default_value_t = Mode::MicroBatch)]
    mode: Mode,
    /// Events per micro-batch.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Also release a micro-batch after this many milliseconds.
    #[arg(long)]
    batch_interval: Option<u64>,
    /// Offered load of the latency workload, events per second.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Duration of the latency workload, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Latency workload: where the bus's handler runs.
    #[arg(long, value_enum, default_value_t = HandlerPlacement::Inline)]
    handler: HandlerPlacement,
    /// Latency workload: how long a handler on its own thread polls its
    /// queue before sleeping, µs.
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// Adaptive workload: the adaptive policy's target latency.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    target_latency: Duration,
    /// Adaptive workload: the length of each of its four phases, seconds.
    #[arg(long, default_value_t = 1.0)]
    phase_seconds: f64,
    /// Adaptive workload: the offered rate of its light phases, events/s.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    light_rate: u64,
    /// Adaptive workload: events due at once at the start of its burst phase.
    #[arg(long, default_value_t = 50_000)]
    burst: u64,
    /// Adaptive workload: the sink's cost per batch (a flush with a round
    /// trip), µs.
    #[arg(long, default_value_t = 20)]
    batch_cost_us: u64,
    /// Adaptive workload: where to write its figures as CSV.
    #[arg(long, default_value = "bench-adaptive.csv")]
    csv: std::path::PathBuf,
    /// Scaling workload: JSON lines through the pipeline file (its input is
    /// written once to target/bench-pipeline/).
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pipeline_events: u64,
}

impl BenchArgs {
    fn workers(&self) -> usize {
        self.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            |w| w as usize,
        )
    }

    fn policy(&self) -> FlushPolicy {
        let size = usize::try_from(self.batch_size).unwrap_or(usize::MAX);
        match (self.mode, self.batch_interval) {
            (Mode::Event, _) => FlushPolicy::EachEvent,
            (Mode::MicroBatch, None) => FlushPolicy::Count(size),
            (Mode::MicroBatch, Some(ms)) => {
                FlushPolicy::CountOrInterval(size, Duration::from_millis(ms.max(1)))
            }
        }
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> Result<()> {
    match args.workload {
        Workload::Adaptive => return adaptive::run(args),
        Workload::Scaling => return scaling::run(args),
        _ => {}
    }
    let mut report = Report::new(args);
    match args.workload {
        Workload::W0 => workloads::w0(args, &mut report)?,
        Workload::W1 => workloads::w1(args, &mut report)?,
        Workload::Latency => latency::run(args, &mut report)?,
        other if other.nexmark_sql_query().is_some() => {
            sql::run(
                args,
                other.nexmark_sql_query().unwrap_or_default(),
                &mut report,
            )?;
        }
        other => {
            let query = other.nexmark_query().context("not a Nexmark workload")?;
            workloads::nexmark(args, query, &mut report)?;
        }
    }
    println!("{}", report.to_json());
    if let Some(problem) = report.failure() {
        bail!("wrong results: {problem}");
    }
    Ok(())
}
