//! A slow receiver on one worker holds back a fast source on another: the
//! source is not polled while the queue between them is full, so the
//! events between the two never exceed what the buffers hold, and the
//! edge counts the times the source was held back.

use sluice_core::Batch;
use sluice_runtime::{
    edge, BoxError, Executor, FlushPolicy, Operator, OperatorResult, Source, SourceStatus,
    SystemClock,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts 0..n, recording how many it has emitted.
struct Counting {
    next: u64,
    end: u64,
    emitted: Arc<AtomicU64>,
}

impl Source<u64> for Counting {
    fn poll(&mut self, out: &mut Batch<u64>, max: usize) -> Result<SourceStatus, BoxError> {
        let until = (self.next + max as u64).min(self.end);
        for n in self.next..until {
            out.push(n, n as i64);
        }
        self.emitted.fetch_add(until - self.next, Ordering::SeqCst);
        self.next = until;
        Ok(if self.next == self.end {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }
}

/// Sleeps on every batch and records the most events ever emitted and not
/// yet consumed.
struct Slow {
    emitted: Arc<AtomicU64>,
    consumed: u64,
    max_lag: Arc<AtomicU64>,
}

impl Operator<u64> for Slow {
    fn on_batch(&mut self, batch: &mut Batch<u64>) -> OperatorResult {
        std::thread::sleep(Duration::from_micros(200));
        let lag = self.emitted.load(Ordering::SeqCst) - self.consumed;
        self.max_lag.fetch_max(lag, Ordering::SeqCst);
        self.consumed += batch.len() as u64;
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}

#[test]
fn a_slow_receiver_on_another_worker_holds_the_source_back() {
    const EVENTS: u64 = 3_000;
    const BATCH: usize = 10;
    const CAPACITY: usize = 4;
    const POLL: usize = 10;

    let emitted = Arc::new(AtomicU64::new(0));
    let max_lag = Arc::new(AtomicU64::new(0));
    let mut executor = Executor::new(Arc::new(SystemClock::new()));
    executor.set_workers(2);
    executor.set_poll_size(POLL);
    let (sender, receiver) = edge::<u64>(
        "slow",
        FlushPolicy::Count(BATCH),
        CAPACITY,
        executor.clock(),
        None,
    )
    .unwrap();
    // Instance 0 on worker 0, instance 1 on worker 1.
    executor.spawn_receiver(
        "sink",
        0,
        receiver,
        Box::new(Slow {
            emitted: emitted.clone(),
            consumed: 0,
            max_lag: max_lag.clone(),
        }),
    );
    executor.spawn_source(
        "source",
        1,
        Box::new(Counting {
            next: 0,
            end: EVENTS,
            emitted: emitted.clone(),
        }),
        Box::new(sender),
    );
    let report = executor.run().unwrap();
    assert_eq!(report.worker_threads, 2);

    // Between the source and the sink: one poll, the batcher's partial
    // batch, the queue and the one batch a turn may send past it, the
    // batch in the sink.
    let bound = (POLL + BATCH + (CAPACITY + 1) * BATCH + BATCH) as u64;
    let max_lag = max_lag.load(Ordering::SeqCst);
    assert!(
        max_lag <= bound,
        "{max_lag} events were buffered; the bound is {bound}"
    );
    let edge = report.edge("slow").unwrap();
    assert_eq!(edge.events, EVENTS);
    assert!(
        edge.max_in_channel <= ((CAPACITY + 1) * BATCH) as u64,
        "{edge:?}"
    );
    assert!(
        edge.blocked_sends > 0,
        "the source was never held back: {edge:?}"
    );
}
