//! The latency workload: events offered at a fixed rate flow event by
//! event through source -> rule -> handler -> sink; the handler records each
//! event's latency (from the moment it was due at the source to the moment
//! the handler has it) in an HDR histogram. The handler runs inline (a call
//! on the worker that publishes: no thread hop) or on a thread of its own
//! (`--handler thread`, polling `--spin-us` before it sleeps); the report
//! gives the CPU the run used, since both the source, which polls for the
//! next due event, and a spinning handler keep a core busy.

use super::report::cpu_seconds;
use super::report::Report;
use super::{BenchArgs, HandlerPlacement, Mode};
use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use serde_json::json;
use sluice::bus::{Bus, BusConfig, Handler};
use sluice::{Batch, BoxError, Pipeline, Source, SourceStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// A probe event: its number and when it was due, in ns since the start.
#[derive(Debug, Clone, Copy)]
struct Probe {
    seq: u64,
    due_ns: u64,
}

/// Offers `total` probes at `rate` per second, each when it is due.
struct RateSource {
    start: Instant,
    rate: u64,
    next: u64,
    total: u64,
}

impl Source<Probe> for RateSource {
    fn poll(&mut self, out: &mut Batch<Probe>, max: usize) -> Result<SourceStatus, BoxError> {
        let elapsed = self.start.elapsed().as_nanos() as u64;
        let due = (u128::from(elapsed) * u128::from(self.rate) / 1_000_000_000) as u64 + 1;
        let until = due.min(self.total).min(self.next + max as u64);
        for seq in self.next..until {
            let due_ns = (u128::from(seq) * 1_000_000_000 / u128::from(self.rate)) as u64;
            out.push(Probe { seq, due_ns }, (due_ns / 1_000_000) as i64);
        }
        self.next = until.max(self.next);
        if self.next >= self.total {
            return Ok(SourceStatus::Exhausted);
        }
        if out.is_empty() {
            // The next event is not due yet: wait briefly without sleeping,
            // which would add a scheduler's tick to every latency.
            std::thread::yield_now();
        }
        Ok(SourceStatus::Ready)
    }
}

pub fn run(args: &BenchArgs, report: &mut Report) -> Result<()> {
    let total = (args.rate as f64 * args.seconds).round().max(1.0) as u64;
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        60_000_000_000,
        3,
    )?));
    let first_result = Arc::new(AtomicU64::new(u64::MAX));
    let sunk = Arc::new(AtomicU64::new(0));

    // On a thread of its own, the handler polls its queue briefly before
    // sleeping: waking a sleeping thread costs up to milliseconds on a
    // virtual machine.
    let cpu_before = cpu_seconds();
    let bus = Bus::with_config(BusConfig {
        spin_before_park: std::time::Duration::from_micros(args.spin_us),
        ..BusConfig::default()
    })?;
    let alerts = bus.topic::<Probe>("alerts")?;
    let start = Instant::now();
    let (record, first, sink) = (histogram.clone(), first_result.clone(), sunk.clone());
    let handler = Handler::new("handler", move |probe: &Probe| {
        let now = start.elapsed().as_nanos() as u64;
        first.fetch_min(now, Ordering::Relaxed);
        let latency = now.saturating_sub(probe.due_ns).max(1);
        record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(latency);
        // The sink: count what arrives.
        sink.fetch_add(1, Ordering::Relaxed);
        Ok::<(), String>(())
    });
    let handler = match args.handler {
        HandlerPlacement::Inline => handler.inline(),
        HandlerPlacement::Thread => handler,
    };
    bus.subscribe(&alerts, handler)?;
    let pipeline = Pipeline::new().with_poll_size(64);
    let probes = pipeline.source(RateSource {
        start,
        rate: args.rate,
        next: 0,
        total,
    });
    // In event mode the rule is fused onto the source's worker; an event
    // crosses no queue to an inline handler, one to a handler's thread;
    // micro-batch mode adds an edge.
    let probes = match args.mode {
        Mode::Event => probes,
        Mode::MicroBatch => probes.batch(args.policy()),
    };
    probes
        .on(|p: &Probe| p.seq % 10 != 9, |p: Probe| p)
        .publish(&alerts);
    pipeline.run()?;
    bus.shutdown();
    let seconds = start.elapsed().as_secs_f64();

    let h = histogram.lock().unwrap_or_else(PoisonError::into_inner);
    let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    report.throughput(total, seconds, cpu);
    if let Some(cpu) = cpu {
        // Cores kept busy on average: the price of polling.
        report.set("cores_busy", json!((cpu / seconds * 100.0).round() / 100.0));
    }
    report.set("rate", json!(args.rate));
    report.set(
        "handler",
        json!(match args.handler {
            HandlerPlacement::Inline => "inline",
            HandlerPlacement::Thread => "thread",
        }),
    );
    report.set("handler_spin_us", json!(args.spin_us));
    report.set("latency_p50_us", json!(us(h.value_at_quantile(0.50))));
    report.set("latency_p99_us", json!(us(h.value_at_quantile(0.99))));
    report.set("latency_p999_us", json!(us(h.value_at_quantile(0.999))));
    report.set("latency_max_us", json!(us(h.max())));
    let first = first_result.load(Ordering::Relaxed);
    if first == u64::MAX {
        return Err(anyhow!("no event reached the handler"));
    }
    report.set(
        "start_to_first_result_ms",
        json!((first as f64 / 1e4).round() / 100.0),
    );
    // The rule fires for every event but each tenth.
    let fired = total - total / 10;
    report.check_exact("results", sunk.load(Ordering::Relaxed), fired);
    Ok(())
}
