//! `sluice bench adaptive`: the adaptive flush policy against fixed ones.
//!
//! Each policy runs the same pipeline, source -> edge with the policy ->
//! sink, under an offered load in four phases, after a light warm-up phase
//! that is not reported:
//!
//! 1. `light`: events at `--light-rate` per second, each stamped when due;
//! 2. `saturating`: a closed loop, the source producing as fast as the
//!    edge takes events (stamped when produced), so throughput is the
//!    pipeline's capacity and latency is what the edge's queue adds;
//! 3. `light-again`: as 1, after the saturation;
//! 4. `burst`: `--burst` events due at once, then the light rate.
//!
//! The sink pays `--batch-cost-us` per batch (a busy wait, standing for a
//! flush with a round trip: a broker's acknowledgement, a database
//! commit) and records every event's latency, from when it was due (or
//! produced) to when its batch was flushed, in an HDR histogram per phase.
//! It prints one JSON line per policy and phase, writes the same figures as
//! CSV, and a last line that checks the targets.

use super::BenchArgs;
use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use serde_json::json;
use sluice::{Batch, BoxError, FlushPolicy, Pipeline, Sink, Source, SourceStatus};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// An event: its phase, and when it was due, in ns since the start.
#[derive(Debug, Clone, Copy)]
struct Probe {
    phase: u8,
    due_ns: u64,
}

#[derive(Debug, Clone, Copy)]
enum Load {
    /// Events at a rate per second.
    Open(u64),
    /// As fast as the pipeline takes them.
    Closed,
    /// A number of events due at once, then a rate.
    Burst(u64, u64),
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    load: Load,
}

/// The first phase warms the process up (threads, page faults, the CPU's
/// clock) and is not reported.
const WARM_UP: &str = "warm-up";

fn phases(args: &BenchArgs) -> [Phase; 5] {
    let light = args.light_rate;
    [
        Phase {
            name: WARM_UP,
            load: Load::Open(light),
        },
        Phase {
            name: "light",
            load: Load::Open(light),
        },
        Phase {
            name: "saturating",
            load: Load::Closed,
        },
        Phase {
            name: "light-again",
            load: Load::Open(light),
        },
        Phase {
            name: "burst",
            load: Load::Burst(args.burst, light),
        },
    ]
}

/// Offers the phases one after the other, each for `phase_ns`.
struct PhasedSource {
    start: Instant,
    phases: Vec<Phase>,
    phase_ns: u64,
    /// The current phase, and events emitted in it.
    at: usize,
    emitted: u64,
    /// Events emitted per phase.
    counts: Arc<Mutex<Vec<u64>>>,
}

impl PhasedSource {
    /// When the `seq`-th event of a phase that started at `begin` is due.
    fn due(load: Load, begin: u64, seq: u64) -> u64 {
        let at_rate =
            |rate: u64, n: u64| begin + (u128::from(n) * 1_000_000_000 / u128::from(rate)) as u64;
        match load {
            Load::Open(rate) => at_rate(rate, seq),
            Load::Burst(n, _) if seq < n => begin,
            Load::Burst(n, rate) => at_rate(rate, seq - n),
            Load::Closed => begin,
        }
    }
}

impl Source<Probe> for PhasedSource {
    fn poll(&mut self, out: &mut Batch<Probe>, max: usize) -> Result<SourceStatus, BoxError> {
        let now = self.start.elapsed().as_nanos() as u64;
        let begin = self.at as u64 * self.phase_ns;
        if now >= begin + self.phase_ns {
            self.counts.lock().unwrap_or_else(PoisonError::into_inner)[self.at] = self.emitted;
            self.at += 1;
            self.emitted = 0;
            if self.at == self.phases.len() {
                return Ok(SourceStatus::Exhausted);
            }
            return Ok(SourceStatus::Ready);
        }
        let phase = self.at as u8;
        let load = self.phases[self.at].load;
        let end = begin + self.phase_ns;
        for _ in 0..max {
            let due = match load {
                Load::Closed => now,
                _ => Self::due(load, begin, self.emitted),
            };
            if due > now || due >= end {
                break;
            }
            out.push(Probe { phase, due_ns: due }, (due / 1_000_000) as i64);
            self.emitted += 1;
        }
        if out.is_empty() {
            // Not due yet: wait without sleeping, which would add a
            // scheduler's tick to every latency.
            std::thread::yield_now();
        }
        Ok(SourceStatus::Ready)
    }
}

/// Per phase: latencies, events, batches, and when its last event was
/// flushed.
struct PhaseStats {
    latency: Histogram<u64>,
    events: u64,
    batches: u64,
    last_ns: u64,
}

/// Pays the per-batch cost and records each event's latency.
struct CostlySink {
    start: Instant,
    batch_cost: Duration,
    stats: Arc<Mutex<Vec<PhaseStats>>>,
}

impl Sink<Probe> for CostlySink {
    fn write(&mut self, batch: &mut Batch<Probe>) -> Result<(), BoxError> {
        let Some(first) = batch.items().first() else {
            return Ok(());
        };
        let spin = Instant::now();
        while spin.elapsed() < self.batch_cost {
            std::hint::spin_loop();
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats[usize::from(first.phase)].batches += 1;
        for probe in batch.items() {
            let phase = &mut stats[usize::from(probe.phase)];
            phase
                .latency
                .saturating_record(now.saturating_sub(probe.due_ns).max(1));
            phase.events += 1;
            phase.last_ns = now;
        }
        Ok(())
    }
}

/// The figures of one policy in one phase.
struct Row {
    policy: String,
    phase: &'static str,
    offered: String,
    events: u64,
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_batch: f64,
}

fn policy_name(policy: FlushPolicy) -> String {
    match policy {
        FlushPolicy::Adaptive { target_latency } => {
            format!("Adaptive({})", humantime::format_duration(target_latency))
        }
        FlushPolicy::CountOrInterval(n, d) => {
            format!("CountOrInterval({n}, {})", humantime::format_duration(d))
        }
        FlushPolicy::Count(n) => format!("Count({n})"),
        other => format!("{other:?}"),
    }
}

fn run_policy(args: &BenchArgs, policy: FlushPolicy) -> Result<Vec<Row>> {
    let phases = phases(args);
    let phase_ns = (args.phase_seconds * 1e9) as u64;
    let histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3);
    let stats = Arc::new(Mutex::new(
        phases
            .iter()
            .map(|_| {
                Ok(PhaseStats {
                    latency: histogram()?,
                    events: 0,
                    batches: 0,
                    last_ns: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    ));
    let counts = Arc::new(Mutex::new(vec![0u64; phases.len()]));
    let start = Instant::now();
    let pipeline = Pipeline::new().with_poll_size(256);
    pipeline
        .source(PhasedSource {
            start,
            phases: phases.to_vec(),
            phase_ns,
            at: 0,
            emitted: 0,
            counts: counts.clone(),
        })
        .batch(policy)
        .sink(CostlySink {
            start,
            batch_cost: Duration::from_micros(args.batch_cost_us),
            stats: stats.clone(),
        });
    pipeline.run()?;

    let stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    let counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
    let name = policy_name(policy);
    let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
    let mut rows = Vec::new();
    for (i, (phase, got)) in phases.iter().zip(stats.iter()).enumerate() {
        if got.events != counts[i] {
            return Err(anyhow!(
                "{name}, phase {}: the source offered {} events and the sink got {}",
                phase.name,
                counts[i],
                got.events
            ));
        }
        if phase.name == WARM_UP {
            continue;
        }
        let begin = i as u64 * phase_ns;
        let seconds = got.last_ns.saturating_sub(begin).max(1) as f64 / 1e9;
        rows.push(Row {
            policy: name.clone(),
            phase: phase.name,
            offered: match phase.load {
                Load::Open(rate) => rate.to_string(),
                Load::Closed => "max".to_string(),
                Load::Burst(n, rate) => format!("{n} at once, then {rate}"),
            },
            events: got.events,
            throughput: (got.events as f64 / seconds).round(),
            p50_us: us(got.latency.value_at_quantile(0.50)),
            p99_us: us(got.latency.value_at_quantile(0.99)),
            max_us: us(got.latency.max()),
            mean_batch: ((got.events as f64 / got.batches.max(1) as f64) * 10.0).round() / 10.0,
        });
    }
    Ok(rows)
}

/// A CSV field, quoted when it holds a comma or a quote.
fn quote(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Runs every policy, prints JSON lines, writes the CSV, checks the targets.
pub fn run(args: &BenchArgs) -> Result<()> {
    let target = args.target_latency;
    let policies = [
        FlushPolicy::Adaptive {
            target_latency: target,
        },
        FlushPolicy::EachEvent,
        FlushPolicy::Count(64),
        FlushPolicy::Count(4096),
        FlushPolicy::CountOrInterval(4096, Duration::from_millis(10)),
    ];
    let mut rows = Vec::new();
    for policy in policies {
        for row in run_policy(args, policy)? {
            println!(
                "{}",
                json!({
                    "workload": "adaptive",
                    "policy": row.policy,
                    "phase": row.phase,
                    "offered_per_sec": row.offered,
                    "events": row.events,
                    "events_per_sec": row.throughput,
                    "latency_p50_us": row.p50_us,
                    "latency_p99_us": row.p99_us,
                    "latency_max_us": row.max_us,
                    "mean_batch": row.mean_batch,
                    "batch_cost_us": args.batch_cost_us,
                })
            );
            rows.push(row);
        }
    }
    let mut csv = String::from(
        "policy,phase,offered_per_sec,events,events_per_sec,latency_p50_us,latency_p99_us,\
         latency_max_us,mean_batch\n",
    );
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            quote(&r.policy),
            r.phase,
            quote(&r.offered),
            r.events,
            r.throughput,
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.mean_batch
        );
    }
    std::fs::write(&args.csv, csv)
        .with_context(|| format!("cannot write {}", args.csv.display()))?;
    eprintln!("wrote {}", args.csv.display());

    // The targets: light-load p99 within 2x of EachEvent's; at saturation,
    // throughput at least 90% of the best fixed policy's with p99 under the
    // target.
    let find = |policy: &str, phase: &str| {
        rows.iter()
            .find(|r| r.policy == policy && r.phase == phase)
            .ok_or_else(|| anyhow!("no figures for {policy} in {phase}"))
    };
    let adaptive = policy_name(policies[0]);
    let each = policy_name(FlushPolicy::EachEvent);
    // The target is for steady light load; after saturation, the batches
    // still queued are drained first (reported, not judged).
    let ratio = |phase| -> Result<f64> {
        Ok(find(&adaptive, phase)?.p99_us / find(&each, phase)?.p99_us.max(1.0))
    };
    let light_ratio = ratio("light")?;
    let after_ratio = ratio("light-again")?;
    let saturated = find(&adaptive, "saturating")?;
    let best = rows
        .iter()
        .filter(|r| r.phase == "saturating" && r.policy != adaptive)
        .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
        .ok_or_else(|| anyhow!("no fixed policy ran"))?;
    let throughput_ratio = saturated.throughput / best.throughput.max(1.0);
    let target_us = target.as_secs_f64() * 1e6;
    let met = light_ratio <= 2.0 && throughput_ratio >= 0.9 && saturated.p99_us <= target_us;
    println!(
        "{}",
        json!({
            "workload": "adaptive",
            "summary": true,
            "target_latency_us": target_us,
            "light_p99_vs_each_event": (light_ratio * 100.0).round() / 100.0,
            "light_again_p99_vs_each_event": (after_ratio * 100.0).round() / 100.0,
            "saturating_throughput_vs_best_fixed": (throughput_ratio * 1000.0).round() / 1000.0,
            "best_fixed_at_saturation": best.policy,
            "saturating_p99_us": saturated.p99_us,
            "targets_met": met,
        })
    );
    Ok(())
}
