//! W0, W1 and Nexmark, each checked against a plain loop.

use super::report::{cpu_seconds, Report};
use super::BenchArgs;
use anyhow::{Context, Result};
use serde_json::json;
use sluice::Pipeline;
use sluice_bench::nexmark::{self as queries, QueryChecksum};
use sluice_bench::{w0 as w0_pipeline, w0_reference, w1 as w1_pipeline, w1_reference, W1Checksums};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Runs the pipeline and records its throughput, CPU time and memory.
fn run_timed(pipeline: Pipeline, events: u64, report: &mut Report) -> Result<()> {
    let (started, cpu) = (Instant::now(), cpu_seconds());
    pipeline.run()?;
    let cpu = cpu_seconds().zip(cpu).map(|(after, before)| after - before);
    report.throughput(events, started.elapsed().as_secs_f64(), cpu);
    Ok(())
}

pub fn w0(args: &BenchArgs, report: &mut Report) -> Result<()> {
    let workers = args.workers();
    let pipeline = Pipeline::new().with_workers(workers);
    let totals = Arc::new(Mutex::new((
        0u64,
        sluice::aggregate::CompensatedSum::default(),
    )));
    let sink = totals.clone();
    w0_pipeline(&pipeline, args.events, args.policy()).for_each(move |(count, sum)| {
        let mut t = sink.lock().unwrap_or_else(PoisonError::into_inner);
        t.0 += count;
        t.1.add(sum);
    });
    run_timed(pipeline, args.events, report)?;
    let (count, sum) = {
        let t = totals.lock().unwrap_or_else(PoisonError::into_inner);
        (t.0, t.1.value())
    };
    let (want_count, want_sum) = w0_reference(args.events);
    report.check_exact("w0_count", count, want_count);
    report.check_close("w0_sum", sum, want_sum);
    Ok(())
}

pub fn w1(args: &BenchArgs, report: &mut Report) -> Result<()> {
    let workers = args.workers();
    let pipeline = Pipeline::new().with_workers(workers);
    let totals = Arc::new(Mutex::new(W1Checksums::default()));
    let sink = totals.clone();
    // Checksums are folded where the rows are made, one partial per batch.
    w1_pipeline(&pipeline, args.events, args.policy())
        .map_batch(W1Checksums::of)
        .for_each(move |partial| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .merge(&partial)
        });
    run_timed(pipeline, args.events, report)?;
    let got = totals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let want = w1_reference(args.events);
    report.check_exact("groups", got.groups, want.groups);
    report.check_exact("sum_count", got.sum_count, want.sum_count);
    report.check_close("sum_sum", got.sum_sum, want.sum_sum);
    report.check_close("sum_min", got.sum_min, want.sum_min);
    report.check_close("sum_max", got.sum_max, want.sum_max);
    report.check_close("sum_mean", got.sum_mean, want.sum_mean);
    report.check_exact("max_count", got.max_count, want.max_count);
    report.set(
        "reference",
        json!("plain single-threaded loop over the same formula"),
    );
    Ok(())
}

pub fn nexmark(args: &BenchArgs, query: &str, report: &mut Report) -> Result<()> {
    let workers = args.workers();
    let pipeline = Pipeline::new().with_workers(workers);
    let totals = Arc::new(Mutex::new(QueryChecksum::default()));
    let sink = totals.clone();
    queries::query(&pipeline, query, args.events, args.policy())
        .with_context(|| format!("unknown Nexmark query `{query}`"))?
        .for_each(move |partial| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .merge(&partial)
        });
    run_timed(pipeline, args.events, report)?;
    let got = *totals.lock().unwrap_or_else(PoisonError::into_inner);
    let want = queries::reference(query, args.events)
        .with_context(|| format!("no reference for `{query}`"))?;
    report.check_exact("result_rows", got.rows, want.rows);
    report.check_exact("checksum", got.checksum, want.checksum);
    report.set(
        "reference",
        json!("plain single-threaded loop over the same events"),
    );
    Ok(())
}
