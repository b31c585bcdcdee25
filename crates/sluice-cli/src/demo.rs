//! `sluice demo`: the two seed scenarios, each run in event mode and in
//! micro-batch mode on the same dataflow, with their results compared.

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use sluice::bus::{Bus, Handler};
use sluice::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `sluice demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many random values the micro-batch scenario processes.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// The seed of the random values.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per micro-batch in micro-batch mode.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    println!("Sluice demo: one dataflow, run event by event and in micro-batches.");
    println!();
    statistics(args)?;
    println!();
    rules()?;
    Ok(())
}

/// What one run of the statistics scenario produced.
struct Statistics {
    batches: usize,
    mean: f64,
    elapsed: Duration,
}

fn run_statistics(args: &DemoArgs, policy: FlushPolicy) -> Result<Statistics> {
    let pipeline = Pipeline::new();
    let batches = pipeline
        .source(UniformSource::new(args.seed, args.events))
        .batch(policy)
        .map_batch(|batch: &[f64]| batch.len())
        .collect();
    let mean = pipeline
        .source(UniformSource::new(args.seed, args.events))
        .batch(policy)
        .aggregate(Mean)
        .collect();
    let started = Instant::now();
    pipeline.run()?;
    let elapsed = started.elapsed();
    let mean = mean
        .take()
        .pop()
        .flatten()
        .context("the mean of no values")?;
    Ok(Statistics {
        batches: batches.len(),
        mean,
        elapsed,
    })
}

fn statistics(args: &DemoArgs) -> Result<()> {
    println!(
        "1. Statistics: {} values uniform in [0, 1) from seed {}; the mean of each batch, merged.",
        args.events, args.seed
    );
    let values = UniformSource::values(args.seed, args.events);
    let one_pass = Mean
        .finish(&Mean.fold(&values))
        .context("the mean of no values")?;
    let batch_size = usize::try_from(args.batch_size)?;
    let runs = [
        ("event mode (each event)", FlushPolicy::EachEvent),
        ("micro-batch mode", FlushPolicy::Count(batch_size)),
    ];
    println!(
        "   {:<26} {:>8}  {:<20} {:>10}",
        "mode", "batches", "global mean", "time"
    );
    let mut means = Vec::new();
    for (label, policy) in runs {
        let result = run_statistics(args, policy)?;
        println!(
            "   {:<26} {:>8}  {:<20.15} {:>10}",
            label,
            result.batches,
            result.mean,
            format_duration(result.elapsed)
        );
        means.push(result.mean);
    }
    println!(
        "   {:<26} {:>8}  {:<20.15}",
        "one pass, no batches", 1, one_pass
    );
    let agree = means
        .iter()
        .all(|m| (m - one_pass).abs() <= 1e-12 * one_pass);
    ensure!(agree, "the modes disagree: {means:?} vs {one_pass}");
    println!(
        "   The results agree (to 1e-12): each batch's (sum, count) is merged, never its mean."
    );
    Ok(())
}

/// What one run of the rules scenario produced.
struct Reactions {
    handled: Vec<i64>,
    propagated: Vec<i64>,
    fired: u64,
    elapsed: Duration,
}

fn run_rules(policy: FlushPolicy) -> Result<Reactions> {
    let bus = Bus::new();
    let actions = bus.topic::<i64>("rule.actions")?;
    let propagated = bus.topic::<i64>("propagated")?;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let printed = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    bus.subscribe(
        &actions,
        Handler::new("handler", move |x: &i64| {
            seen.lock().map_err(|e| e.to_string())?.push(*x);
            Ok::<(), String>(())
        }),
    )?;
    bus.subscribe(
        &actions,
        Handler::publishing("propagator", &propagated, |x: &i64| {
            Ok::<_, String>(Some(*x))
        }),
    )?;
    let out = printed.clone();
    bus.subscribe(
        &propagated,
        Handler::new("printer", move |x: &i64| {
            out.lock().map_err(|e| e.to_string())?.push(*x);
            Ok::<(), String>(())
        }),
    )?;
    let rule = Arc::new(RuleCounters::default());
    let pipeline = Pipeline::new();
    pipeline
        .source(IterSource::new([5_i64, 15, 25]))
        .batch(policy)
        .on_counted(|x| *x > 10, |x| x * 2, rule.clone())
        .publish(&actions);
    let started = Instant::now();
    pipeline.run()?;
    let report = bus.shutdown();
    let elapsed = started.elapsed();
    if report.dead_lettered > 0 {
        bail!(
            "{} events were dead-lettered: {:?}",
            report.dead_lettered,
            report.unclaimed
        );
    }
    let take = |v: &Arc<Mutex<Vec<i64>>>| -> Result<Vec<i64>> {
        let mut v = v.lock().map_err(|e| anyhow::anyhow!("{e}"))?.clone();
        v.sort_unstable();
        Ok(v)
    };
    Ok(Reactions {
        handled: take(&handled)?,
        propagated: take(&printed)?,
        fired: rule.fired(),
        elapsed,
    })
}

fn rules() -> Result<()> {
    println!("2. Rules and handlers: events 5, 15, 25; rule `x > 10 -> x * 2`; a handler and a propagator.");
    let runs = [
        ("event mode (each event)", FlushPolicy::EachEvent),
        ("micro-batch mode", FlushPolicy::Count(1_000)),
    ];
    let mut results = Vec::new();
    for (label, policy) in runs {
        let r = run_rules(policy)?;
        println!(
            "   {label}: the rule fired {} times ({})",
            r.fired,
            format_duration(r.elapsed)
        );
        println!("      handler received: {:?}", r.handled);
        for x in &r.propagated {
            println!("      Propagated event: {x}");
        }
        results.push((r.handled, r.propagated));
    }
    ensure!(
        results.iter().all(|r| *r == (vec![30, 50], vec![30, 50])),
        "unexpected reactions: {results:?}"
    );
    println!(
        "   The results agree: 5 does not trigger; the handlers receive the action's outputs."
    );
    Ok(())
}

fn format_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} us", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}
