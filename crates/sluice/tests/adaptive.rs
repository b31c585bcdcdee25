//! `FlushPolicy::Adaptive` in a real run: a receiver that cannot keep up
//! gets large batches; a light load goes event by event; nothing is lost.

use sluice::prelude::*;
use sluice::{Batch, BoxError, SimulatedClock, Source, SourceStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TARGET: FlushPolicy = FlushPolicy::Adaptive {
    target_latency: Duration::from_millis(5),
};

#[test]
fn a_saturated_edge_batches_and_delivers_everything() {
    const EVENTS: u64 = 200_000;
    // Processing time is simulated: each batch costs the receiver 20 µs of
    // it, whatever the load on the cores, so what the controller measures
    // (and the batches it picks) is the same on a loaded machine.
    let clock = Arc::new(SimulatedClock::new());
    let p = Pipeline::new().with_clock(clock.clone());
    let sizes = p
        .source(IterSource::new(0..EVENTS))
        .batch(TARGET)
        .map_batch(move |batch: &[u64]| {
            clock.advance(Duration::from_micros(20));
            (batch.len() as u64, batch.iter().sum::<u64>())
        })
        .collect();
    let report = p.run().unwrap();
    let sizes = sizes.take();
    assert_eq!(sizes.iter().map(|(n, _)| n).sum::<u64>(), EVENTS);
    assert_eq!(
        sizes.iter().map(|(_, s)| s).sum::<u64>(),
        EVENTS * (EVENTS - 1) / 2
    );
    let (_, edge) = &report.run.edges[0];
    // Event by event, 200k batches at 20 µs would take 4 s of processing
    // time against a 5 ms latency target; the controller finds batches
    // that amortise the cost (84 here, every run). Event by event would be 1.
    let mean = edge.events as f64 / edge.batches as f64;
    assert!(mean >= 40.0, "mean batch {mean:.1}: {edge:?}");
}

/// One event per millisecond at most, each a millisecond after the one
/// before: a process descheduled for a while (a loaded machine) resumes at
/// the same light pace instead of catching up with a burst, so the load the
/// receiver sees stays light whatever else runs on the cores.
struct Paced {
    due: Instant,
    next: u64,
    total: u64,
}

impl Source<u64> for Paced {
    fn poll(&mut self, out: &mut Batch<u64>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.next == self.total {
            return Ok(SourceStatus::Exhausted);
        }
        let now = Instant::now();
        if now >= self.due {
            out.push(self.next, self.next as i64);
            self.next += 1;
            self.due = now + Duration::from_millis(1);
            return Ok(SourceStatus::Ready);
        }
        Ok(SourceStatus::Idle)
    }
}

#[test]
fn a_light_load_goes_event_by_event() {
    let p = Pipeline::new();
    let sizes = p
        .source(Paced {
            due: Instant::now(),
            next: 0,
            total: 300,
        })
        .batch(TARGET)
        .map_batch(|batch: &[u64]| batch.len())
        .collect();
    let report = p.run().unwrap();
    assert_eq!(sizes.take().iter().sum::<usize>(), 300);
    let (_, edge) = &report.run.edges[0];
    let mean = edge.events as f64 / edge.batches as f64;
    assert!(mean <= 2.0, "mean batch {mean:.1}: {edge:?}");
}
