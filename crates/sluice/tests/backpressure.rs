//! A slow sink slows the source: the number of events between the source
//! and the sink never exceeds what the buffers are configured to hold.
//!
//! Here the source and the sink share a worker (stages of one instance run
//! on worker 0), so the sink's turns come between the source's polls; the
//! runtime's own test (`crates/sluice-runtime/tests/backpressure.rs`) puts
//! them on two workers, where the source is held back by the full queue.

use sluice::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_slow_sink_blocks_the_source_and_buffers_stay_bounded() {
    const EVENTS: u64 = 3_000;
    const BATCH: usize = 10;
    const CAPACITY: usize = 4;
    const POLL: usize = 10;

    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let mut consumed = 0u64;
    let mut max_lag = 0u64;
    let observed = produced.clone();
    let max_lag_out = Arc::new(AtomicU64::new(0));
    let report_lag = max_lag_out.clone();

    let pipeline = Pipeline::new()
        .with_workers(1)
        .with_channel_capacity(CAPACITY)
        .with_poll_size(POLL);
    pipeline
        .source(IterSource::new(0..EVENTS))
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .batch(FlushPolicy::Count(BATCH))
        .map_batch(|batch: &[u64]| batch.len() as u64)
        .for_each(move |n| {
            // A deliberately slow sink.
            std::thread::sleep(Duration::from_micros(200));
            let lag = observed.load(Ordering::SeqCst) - consumed;
            max_lag = max_lag.max(lag);
            report_lag.store(max_lag, Ordering::SeqCst);
            consumed += n;
        });
    let report = pipeline.run().unwrap();

    // Between the inspect and the sink: one poll, the batcher's partial
    // batch, one batch waiting to be sent, the channel, the batch in the sink.
    let bound = (POLL + BATCH + BATCH + CAPACITY * BATCH + BATCH) as u64;
    let max_lag = max_lag_out.load(Ordering::SeqCst);
    assert!(
        max_lag <= bound,
        "{max_lag} events were buffered; the bound is {bound}"
    );
    assert_eq!(produced.load(Ordering::SeqCst), EVENTS);

    let (_, edge) = &report.run.edges[0];
    assert_eq!(edge.events, EVENTS);
    // The channel's batches, plus at most the one the receiver is taking
    // out while the counter is updated.
    assert!(
        edge.max_in_channel <= ((CAPACITY + 1) * BATCH) as u64,
        "{edge:?}"
    );
}
