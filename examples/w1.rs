//! W1 of the shared benchmark workloads: events from an integer formula,
//! 1,000 keys, 1-second tumbling event-time windows, count / sum / mean /
//! min / max of the value per key and window. Prints the checksums that
//! every correct engine prints (see `W-expected-1M.json`) as one JSON line.
//!
//! Run: `cargo run --release --example w1 -- [EVENTS] [WORKERS] [event|micro-batch]`

use sluice::prelude::*;
use sluice_bench::{w1, W1Checksums};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let mode = args.next().unwrap_or_else(|| "micro-batch".to_string());
    let policy = match mode.as_str() {
        "event" => FlushPolicy::EachEvent,
        "micro-batch" => FlushPolicy::Count(4096),
        other => {
            return Err(format!("unknown mode `{other}`: use `event` or `micro-batch`").into())
        }
    };

    let pipeline = Pipeline::new().with_workers(workers);
    let checksums = Arc::new(Mutex::new(W1Checksums::default()));
    let totals = checksums.clone();
    w1(&pipeline, events, policy).for_each(move |row| {
        totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(&row);
    });
    let started = Instant::now();
    pipeline.run()?;
    let seconds = started.elapsed().as_secs_f64();
    let c = checksums.lock().unwrap_or_else(PoisonError::into_inner);
    println!(
        "{{\"workload\": \"w1\", \"mode\": \"{mode}\", \"workers\": {workers}, \"events\": {events}, \
         \"seconds\": {seconds:.3}, \"events_per_sec\": {:.0}, \"groups\": {}, \"sum_count\": {}, \
         \"sum_sum\": {}, \"sum_min\": {}, \"sum_max\": {}, \"sum_mean\": {}, \"max_count\": {}}}",
        events as f64 / seconds,
        c.groups,
        c.sum_count,
        c.sum_sum,
        c.sum_min,
        c.sum_max,
        c.sum_mean,
        c.max_count,
    );
    Ok(())
}
